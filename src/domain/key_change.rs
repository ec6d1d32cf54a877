//! Changes to AWS keys that CCKM's clients ask for (`POST /keys`, `POST /keys/{id}/<action>`), read from
//! their bodies and validated before AWS is called: what to create, or what to change on one key. Only
//! what AWS KMS does itself is served; what needs CCKM-managed material (upload, import from a source
//! key, rotation jobs, HYOK) or CCKM's policy helpers is refused by name.

use super::AppError;
use super::given;
use super::key::{Tag, full_alias};
use super::list::parse_json_body;
use super::region::is_valid_region;
use serde::Deserialize;
use serde_json::Value;

/// A new key, as `POST /v1/cckm/aws/keys` asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    /// The KMS resource (id or name) whose account gets the key.
    pub kms: String,
    pub region: String,
    pub spec: String,
    pub usage: Option<String>,
    pub origin: String,
    pub description: Option<String>,
    pub multi_region: bool,
    pub policy: Option<String>,
    pub bypass_policy_lockout_safety_check: bool,
    pub tags: Vec<Tag>,
    /// With its `alias/` prefix.
    pub alias: Option<String>,
}

/// A change to one existing key; each is one AWS call (or two, for a replica's alias-free copy).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChange {
    AddAlias(String),
    DeleteAlias(String),
    UpdateDescription(String),
    AddTags(Vec<Tag>),
    RemoveTags(Vec<String>),
    PutPolicy {
        policy: String,
        bypass_policy_lockout_safety_check: bool,
    },
    Enable,
    Disable,
    EnableAutoRotation {
        period_in_days: Option<i32>,
    },
    DisableAutoRotation,
    ScheduleDeletion {
        days: i32,
    },
    CancelDeletion,
    /// On-demand rotation of AWS-generated material (RotateKeyOnDemand).
    RotateMaterial,
    /// Deletes imported material (DeleteImportedKeyMaterial): the current one, or the one named.
    DeleteMaterial {
        key_material_id: Option<String>,
    },
    /// A replica of a multi-region primary key in another region of the same account.
    Replicate(Replica),
    UpdatePrimaryRegion(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub region: String,
    pub description: Option<String>,
    pub policy: Option<String>,
    pub bypass_policy_lockout_safety_check: bool,
    pub tags: Vec<Tag>,
}

impl KeyChange {
    /// CCKM's ACL action that the change needs on the key's KMS resource.
    pub fn acl_action(&self) -> &'static str {
        match self {
            KeyChange::Replicate(_) => "keycreate",
            KeyChange::ScheduleDeletion { .. } => "keydelete",
            KeyChange::CancelDeletion => "keycanceldelete",
            KeyChange::RotateMaterial => "keyrotate",
            KeyChange::DeleteMaterial { .. } => "keymaterialdelete",
            _ => "keyupdate",
        }
    }

    /// The change `action` (the last path segment) asks for with `body`.
    pub fn parse(action: &str, body: &[u8]) -> Result<KeyChange, AppError> {
        let change = match action {
            "enable" => KeyChange::Enable,
            "disable" => KeyChange::Disable,
            "cancel-deletion" => KeyChange::CancelDeletion,
            "disable-auto-rotation" => KeyChange::DisableAutoRotation,
            "rotate-material" => KeyChange::RotateMaterial,
            "delete-material" => {
                let body: MaterialBody = parse_optional_body(body)?;
                KeyChange::DeleteMaterial {
                    key_material_id: given(body.key_material_id),
                }
            }
            "add-alias" | "delete-alias" => {
                let body: AliasBody = parse_json_body(body)?;
                let alias = alias_name(&body.alias)?;
                match action {
                    "add-alias" => KeyChange::AddAlias(alias),
                    _ => KeyChange::DeleteAlias(alias),
                }
            }
            "update-description" => {
                let body: DescriptionBody = parse_json_body(body)?;
                KeyChange::UpdateDescription(description(body.description)?.unwrap_or_default())
            }
            "add-tags" => {
                let body: TagsBody = parse_json_body(body)?;
                let tags = tags(&body.tags)?;
                if tags.is_empty() {
                    return Err(invalid("tags: give at least one tag"));
                }
                KeyChange::AddTags(tags)
            }
            "remove-tags" => {
                let body: TagsBody = parse_json_body(body)?;
                let keys = tag_keys(&body.tags)?;
                if keys.is_empty() {
                    return Err(invalid("tags: give at least one tag key"));
                }
                KeyChange::RemoveTags(keys)
            }
            "policy" => {
                let body: PolicyBody = parse_json_body(body)?;
                refuse_policy_helpers(&body.helpers())?;
                let policy = body
                    .policy
                    .or(body.policy_aws)
                    .map(policy_text)
                    .transpose()?
                    .flatten()
                    .ok_or_else(|| invalid("policy: give the key policy (a JSON document)"))?;
                KeyChange::PutPolicy {
                    policy,
                    bypass_policy_lockout_safety_check: body
                        .bypass_policy_lockout_safety_check
                        .unwrap_or(false),
                }
            }
            "enable-auto-rotation" => {
                let body: RotationBody = parse_optional_body(body)?;
                if let Some(days) = body.rotation_period_in_days
                    && !(90..=2560).contains(&days)
                {
                    return Err(invalid(
                        "rotation_period_in_days: AWS takes 90 to 2560 days",
                    ));
                }
                KeyChange::EnableAutoRotation {
                    period_in_days: body.rotation_period_in_days,
                }
            }
            "schedule-deletion" => {
                let body: DeletionBody = parse_optional_body(body)?;
                let days = body.days.unwrap_or(30);
                if !(7..=30).contains(&days) {
                    return Err(invalid("days: AWS takes a waiting period of 7 to 30 days"));
                }
                KeyChange::ScheduleDeletion { days }
            }
            "update-primary-region" => {
                let body: PrimaryRegionBody = parse_json_body(body)?;
                let region = given(body.primary_region.or(body.primary_region_snake))
                    .ok_or_else(|| invalid("PrimaryRegion: give the region of the new primary"))?;
                KeyChange::UpdatePrimaryRegion(region_name("PrimaryRegion", region)?)
            }
            "replicate-key" => {
                let body: ReplicateBody = parse_json_body(body)?;
                refuse_policy_helpers(&body.helpers())?;
                let region = given(body.replica_region)
                    .ok_or_else(|| invalid("replica_region: give the region of the replica"))?;
                let param = body.aws_param.unwrap_or_default();
                KeyChange::Replicate(Replica {
                    region: region_name("replica_region", region)?,
                    description: description(param.description)?,
                    policy: param.policy.map(policy_text).transpose()?.flatten(),
                    bypass_policy_lockout_safety_check: param
                        .bypass_policy_lockout_safety_check
                        .unwrap_or(false),
                    tags: tags(&param.tags.unwrap_or(Value::Null))?,
                })
            }
            other => return Err(not_served(other)),
        };
        Ok(change)
    }
}

/// Why an action CCKM has is not served here, or 404 for one CCKM does not have either.
fn not_served(action: &str) -> AppError {
    let why = match action {
        "import-material" | "upload-key" => {
            "it takes key material from a CCKM key source; import it into AWS directly"
        }
        "rotate" => {
            "it rotates to material from a CCKM key source; use rotate-material for AWS's own rotation"
        }
        "enable-rotation-job" | "disable-rotation-job" => "CCKM rotation jobs are not served",
        "block" | "unblock" | "link" => "it acts on CCKM HYOK keys, which are not served",
        _ => return AppError::NotFound(format!("no key action '{action}'")),
    };
    AppError::InvalidParam(format!("key action '{action}' is not served: {why}"))
}

impl NewKey {
    pub fn parse(body: &[u8]) -> Result<NewKey, AppError> {
        let body: CreateBody = parse_json_body(body)?;
        refuse_policy_helpers(&body.helpers())?;
        let kms = given(body.kms).ok_or_else(|| invalid("kms: name the KMS resource"))?;
        let region = given(body.region).ok_or_else(|| invalid("region: give the key's region"))?;
        let param = body.aws_param.unwrap_or_default();
        let spec = given(param.customer_master_key_spec.or(param.key_spec))
            .unwrap_or_else(|| "SYMMETRIC_DEFAULT".to_string());
        if !KEY_SPECS.contains(&spec.as_str()) {
            return Err(invalid(&format!(
                "CustomerMasterKeySpec: '{spec}' is not an AWS key spec ({})",
                KEY_SPECS.join(", ")
            )));
        }
        let usage = match given(param.key_usage) {
            Some(usage) if !KEY_USAGES.contains(&usage.as_str()) => {
                return Err(invalid(&format!(
                    "KeyUsage: '{usage}' is not an AWS key usage ({})",
                    KEY_USAGES.join(", ")
                )));
            }
            // An HMAC key has one usage; AWS refuses the default for it.
            None if spec.starts_with("HMAC_") => Some("GENERATE_VERIFY_MAC".to_string()),
            usage => usage,
        };
        let origin = given(param.origin).unwrap_or_else(|| "AWS_KMS".to_string());
        if !["AWS_KMS", "EXTERNAL"].contains(&origin.as_str()) {
            return Err(invalid(&format!(
                "Origin: '{origin}' is not served; AWS_KMS or EXTERNAL (custom key stores are not served)"
            )));
        }
        if given(param.valid_to).is_some() {
            return Err(invalid(
                "ValidTo: it applies to imported material; import it into AWS directly",
            ));
        }
        Ok(NewKey {
            kms,
            region: region_name("region", region)?,
            spec,
            usage,
            origin,
            description: description(param.description)?,
            multi_region: param.multi_region.unwrap_or(false),
            policy: param.policy.map(policy_text).transpose()?.flatten(),
            bypass_policy_lockout_safety_check: param
                .bypass_policy_lockout_safety_check
                .unwrap_or(false),
            tags: tags(&param.tags.unwrap_or(Value::Null))?,
            alias: param
                .alias
                .filter(|a| !a.trim().is_empty())
                .map(|a| alias_name(&a))
                .transpose()?,
        })
    }
}

/// AWS's key specs (`CreateKey` `KeySpec`).
const KEY_SPECS: [&str; 19] = [
    "SYMMETRIC_DEFAULT",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "ECC_NIST_EDWARDS25519",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ECC_NIST_P256K1",
    "SYMMETRIC_DEFAULT_SM4",
];

const KEY_USAGES: [&str; 4] = [
    "ENCRYPT_DECRYPT",
    "SIGN_VERIFY",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
];

/// CCKM builds a key policy from these; here the caller sends the policy itself.
const POLICY_HELPERS: [&str; 6] = [
    "external_accounts",
    "key_admins",
    "key_admins_roles",
    "key_users",
    "key_users_roles",
    "policytemplate",
];

/// The policy helpers a body set to something: each may be absent, null, "" or [] (Go's and Ansible's
/// way of not giving one).
fn refuse_policy_helpers(values: &[&Option<Value>; 6]) -> Result<(), AppError> {
    for (name, value) in POLICY_HELPERS.iter().zip(values) {
        let set = match value {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Array(items)) => !items.is_empty(),
            Some(Value::Object(fields)) => !fields.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(invalid(&format!(
                "{name}: CCKM policy templates and helpers are not served; send the key policy itself (Policy)"
            )));
        }
    }
    Ok(())
}

fn invalid(text: &str) -> AppError {
    AppError::InvalidParam(text.to_string())
}

fn parse_optional_body<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json_body(body)
}

fn region_name(field: &str, region: String) -> Result<String, AppError> {
    if is_valid_region(&region) {
        Ok(region)
    } else {
        Err(invalid(&format!(
            "{field}: '{region}' is not an AWS region name"
        )))
    }
}

/// An alias as AWS names it: `alias/` and up to 250 letters, digits, `/`, `_` or `-`; not `alias/aws/`,
/// which AWS keeps for its own keys. CCKM's clients may leave the prefix out.
fn alias_name(alias: &str) -> Result<String, AppError> {
    let alias = alias.trim();
    let full = full_alias(alias);
    let name = &full["alias/".len()..];
    if name.is_empty()
        || full.len() > 256
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
    {
        return Err(invalid(&format!(
            "alias: '{alias}' is not an AWS alias name (letters, digits, '/', '_' and '-', up to 250)"
        )));
    }
    if full.starts_with("alias/aws/") {
        return Err(invalid(
            "alias: 'alias/aws/' is reserved for AWS managed keys",
        ));
    }
    Ok(full)
}

fn description(text: Option<String>) -> Result<Option<String>, AppError> {
    match text {
        Some(text) if text.len() > 8192 => Err(invalid("description: at most 8192 characters")),
        text => Ok(text),
    }
}

/// The key policy as text: clients send it as a JSON object or as its text. Null or "" is none.
fn policy_text(policy: Value) -> Result<Option<String>, AppError> {
    let text = match policy {
        Value::Null => return Ok(None),
        Value::String(text) if text.trim().is_empty() => return Ok(None),
        Value::String(text) => {
            serde_json::from_str::<Value>(&text)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| invalid("Policy: not a JSON policy document"))?;
            text
        }
        Value::Object(_) => policy.to_string(),
        _ => return Err(invalid("Policy: not a JSON policy document")),
    };
    if text.len() > 32_768 {
        return Err(invalid("Policy: AWS takes at most 32768 bytes"));
    }
    Ok(Some(text))
}

/// Tags as the clients send them: `[{"TagKey", "TagValue"}]` (aws_param) or `[{"tag_key", "tag_value"}]`
/// (add-tags). Null is none.
fn tags(value: &Value) -> Result<Vec<Tag>, AppError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(invalid("tags: a list of {TagKey, TagValue}")),
    };
    items
        .iter()
        .map(|item| {
            let field = |names: [&str; 2]| {
                names
                    .iter()
                    .find_map(|n| item.get(*n))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let key = field(["TagKey", "tag_key"])
                .filter(|k| !k.is_empty() && k.len() <= 128)
                .ok_or_else(|| invalid("tags: each tag needs a TagKey of 1 to 128 characters"))?;
            let value = field(["TagValue", "tag_value"]).unwrap_or_default();
            if value.len() > 256 {
                return Err(invalid("tags: a TagValue has at most 256 characters"));
            }
            Ok(Tag { key, value })
        })
        .collect()
}

/// Tag keys as remove-tags takes them: strings, or tags whose key is taken.
fn tag_keys(value: &Value) -> Result<Vec<String>, AppError> {
    match value {
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()),
        other => Ok(tags(other)?.into_iter().map(|t| t.key).collect()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    alias: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DescriptionBody {
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsBody {
    tags: Value,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotationBody {
    rotation_period_in_days: Option<i32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MaterialBody {
    key_material_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeletionBody {
    days: Option<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrimaryRegionBody {
    #[serde(rename = "PrimaryRegion")]
    primary_region: Option<String>,
    #[serde(rename = "primary_region")]
    primary_region_snake: Option<String>,
}

/// The policy helpers every writing body may carry.
macro_rules! policy_helper_fields {
    ($(#[$meta:meta])* struct $name:ident { $($(#[$field_meta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        struct $name {
            $($(#[$field_meta])* $field: $ty,)*
            external_accounts: Option<Value>,
            key_admins: Option<Value>,
            key_admins_roles: Option<Value>,
            key_users: Option<Value>,
            key_users_roles: Option<Value>,
            policytemplate: Option<Value>,
        }

        impl $name {
            fn helpers(&self) -> [&Option<Value>; 6] {
                [
                    &self.external_accounts,
                    &self.key_admins,
                    &self.key_admins_roles,
                    &self.key_users,
                    &self.key_users_roles,
                    &self.policytemplate,
                ]
            }
        }
    };
}

policy_helper_fields! {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CreateBody {
        kms: Option<String>,
        region: Option<String>,
        aws_param: Option<KeyParams>,
    }
}

policy_helper_fields! {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ReplicateBody {
        replica_region: Option<String>,
        aws_param: Option<KeyParams>,
    }
}

policy_helper_fields! {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PolicyBody {
        policy: Option<Value>,
        #[serde(rename = "Policy")]
        policy_aws: Option<Value>,
        #[serde(rename = "BypassPolicyLockoutSafetyCheck")]
        bypass_policy_lockout_safety_check: Option<bool>,
    }
}

/// `aws_param` of a create or replicate body, in AWS's spellings.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct KeyParams {
    alias: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
    customer_master_key_spec: Option<String>,
    key_spec: Option<String>,
    description: Option<String>,
    key_usage: Option<String>,
    multi_region: Option<bool>,
    policy: Option<Value>,
    tags: Option<Value>,
    origin: Option<String>,
    valid_to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(value: Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    #[test]
    fn terraform_create_body_with_go_zero_values_reads_as_a_default_key() {
        // cckm/aws/resource_aws_key.go: nulls for the policy helpers, "" for unset strings.
        let body = json!({"kms": "kms-a", "region": "us-east-1", "external_accounts": null,
            "key_admins": null, "key_admins_roles": null, "key_users": null, "key_users_roles": null,
            "policytemplate": null, "aws_param": {"Alias": "app", "BypassPolicyLockoutSafetyCheck": false,
            "CustomerMasterKeySpec": "", "Description": "", "KeyUsage": "", "MultiRegion": false,
            "Policy": null, "Tags": [{"TagKey": "env", "TagValue": "prod"}], "Origin": ""}});
        let key = NewKey::parse(&bytes(body)).unwrap();
        assert_eq!(key.spec, "SYMMETRIC_DEFAULT");
        assert_eq!(key.origin, "AWS_KMS");
        assert_eq!(key.alias.as_deref(), Some("alias/app"));
        assert_eq!(key.usage, None);
        assert_eq!(
            key.tags,
            vec![Tag {
                key: "env".into(),
                value: "prod".into()
            }]
        );
        assert_eq!(key.description.as_deref(), Some(""));
    }

    #[test]
    fn an_hmac_key_gets_its_only_usage() {
        let body = json!({"kms": "k", "region": "eu-west-1",
            "aws_param": {"CustomerMasterKeySpec": "HMAC_256"}});
        let key = NewKey::parse(&bytes(body)).unwrap();
        assert_eq!(key.usage.as_deref(), Some("GENERATE_VERIFY_MAC"));
    }

    #[test]
    fn bad_create_bodies_are_refused_naming_the_field() {
        for (body, field) in [
            (json!({"region": "us-east-1"}), "kms"),
            (json!({"kms": "k", "region": "mars-1"}), "region"),
            (
                json!({"kms": "k", "region": "us-east-1", "aws_param": {"CustomerMasterKeySpec": "AES"}}),
                "CustomerMasterKeySpec",
            ),
            (
                json!({"kms": "k", "region": "us-east-1", "aws_param": {"Origin": "AWS_CLOUDHSM"}}),
                "Origin",
            ),
            (
                json!({"kms": "k", "region": "us-east-1", "aws_param": {"Alias": "aws/mine"}}),
                "alias",
            ),
            (
                json!({"kms": "k", "region": "us-east-1", "aws_param": {"Policy": "not json"}}),
                "Policy",
            ),
            (
                json!({"kms": "k", "region": "us-east-1", "key_users": ["bob"]}),
                "key_users",
            ),
            (
                json!({"kms": "k", "region": "us-east-1", "aws_param": {"Tags": [{"TagValue": "v"}]}}),
                "tags",
            ),
        ] {
            let err = NewKey::parse(&bytes(body.clone())).unwrap_err();
            assert!(
                matches!(&err, AppError::InvalidParam(text) if text.contains(field)),
                "{body}: {err:?}"
            );
        }
        let unknown = NewKey::parse(&bytes(
            json!({"kms": "k", "region": "us-east-1", "colour": 1}),
        ));
        assert!(matches!(unknown, Err(AppError::InvalidParam(text)) if text.contains("colour")));
    }

    #[test]
    fn key_actions_read_both_clients_bodies() {
        let parse = |action: &str, body: Value| KeyChange::parse(action, &bytes(body)).unwrap();
        assert_eq!(
            parse("add-alias", json!({"alias": "app"})),
            KeyChange::AddAlias("alias/app".into())
        );
        assert_eq!(
            parse(
                "add-tags",
                json!({"tags": [{"tag_key": "a", "tag_value": "b"}]})
            ),
            KeyChange::AddTags(vec![Tag {
                key: "a".into(),
                value: "b".into()
            }])
        );
        assert_eq!(
            parse("remove-tags", json!({"tags": ["a"]})),
            KeyChange::RemoveTags(vec!["a".into()])
        );
        assert_eq!(
            parse(
                "policy",
                json!({"Policy": {"Version": "2012-10-17"}, "policytemplate": null, "key_users": []})
            ),
            KeyChange::PutPolicy {
                policy: r#"{"Version":"2012-10-17"}"#.into(),
                bypass_policy_lockout_safety_check: false
            }
        );
        assert_eq!(
            parse("schedule-deletion", json!({"days": 7})),
            KeyChange::ScheduleDeletion { days: 7 }
        );
        assert_eq!(
            KeyChange::parse("schedule-deletion", b"").unwrap(),
            KeyChange::ScheduleDeletion { days: 30 }
        );
        assert_eq!(KeyChange::parse("enable", b"").unwrap(), KeyChange::Enable);
        assert_eq!(
            parse(
                "enable-auto-rotation",
                json!({"rotation_period_in_days": 180})
            ),
            KeyChange::EnableAutoRotation {
                period_in_days: Some(180)
            }
        );
        assert_eq!(
            parse(
                "update-primary-region",
                json!({"PrimaryRegion": "eu-west-1"})
            ),
            KeyChange::UpdatePrimaryRegion("eu-west-1".into())
        );
        match parse(
            "replicate-key",
            json!({"replica_region": "eu-west-1", "aws_param": {"Description": "r"}}),
        ) {
            KeyChange::Replicate(replica) => {
                assert_eq!(replica.region, "eu-west-1");
                assert_eq!(replica.description.as_deref(), Some("r"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn out_of_range_and_unserved_actions_are_refused() {
        let refused =
            |action: &str, body: Value| KeyChange::parse(action, &bytes(body)).unwrap_err();
        assert!(
            matches!(refused("schedule-deletion", json!({"days": 3})), AppError::InvalidParam(t) if t.contains("days"))
        );
        assert!(matches!(
            refused(
                "enable-auto-rotation",
                json!({"rotation_period_in_days": 30})
            ),
            AppError::InvalidParam(_)
        ));
        assert!(
            matches!(refused("import-material", json!({})), AppError::InvalidParam(t) if t.contains("not served"))
        );
        assert!(
            matches!(refused("rotate", json!({})), AppError::InvalidParam(t) if t.contains("rotate-material"))
        );
        assert!(matches!(refused("fly", json!({})), AppError::NotFound(_)));
        assert!(matches!(
            refused("add-tags", json!({"tags": []})),
            AppError::InvalidParam(_)
        ));
    }
}
