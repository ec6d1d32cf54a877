//! An AWS connection of CCKM's connection manager: how to reach AWS, with static access keys, a role to
//! assume, or both. The secret access key is never part of it: it lives in AWS Secrets Manager, and the
//! connection keeps only where (`secret_id`). Bodies are read as CCKM's clients send them: Terraform sends
//! every field, read-only ones and Go's empty strings included; an empty string means "not given".

use super::region::is_valid_region;
use super::time::{Timestamp, rfc3339};
use super::{AppError, given};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwsConnection {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub access_key_id: Option<String>,
    /// The Secrets Manager secret that holds the secret access key; None without static keys.
    pub secret_id: Option<String>,
    pub assume_role_arn: Option<String>,
    pub assume_role_external_id: Option<String>,
    pub aws_region: Option<String>,
    pub aws_sts_regional_endpoints: String,
    pub cloud_name: String,
    pub labels: BTreeMap<String, String>,
    pub meta: Value,
    pub products: Vec<String>,
    #[serde(rename = "createdAt", with = "rfc3339")]
    pub created_at: Timestamp,
    #[serde(rename = "updatedAt", with = "rfc3339")]
    pub updated_at: Timestamp,
    /// The last test of the connection (`POST .../connections/{id}/test`); None before the first.
    #[serde(default)]
    pub last_check: Option<ConnectionCheck>,
}

/// What a connection test found: the account the credentials reach, or why AWS refused them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionCheck {
    pub ok: bool,
    pub error: String,
    #[serde(with = "rfc3339")]
    pub at: Timestamp,
}

/// A create or patch body of `/v1/connectionmgmt/services/aws/connections`, as the clients send it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub assume_role_arn: Option<String>,
    pub assume_role_external_id: Option<String>,
    pub aws_region: Option<String>,
    pub aws_sts_regional_endpoints: Option<String>,
    pub cloud_name: Option<String>,
    pub is_role_anywhere: Option<bool>,
    pub iam_role_anywhere: Option<Value>,
    pub labels: Option<BTreeMap<String, String>>,
    pub meta: Option<Value>,
    pub products: Option<Vec<String>>,
    // Read-only fields a client echoes back from what it read (Terraform sends them empty): ignored.
    #[serde(rename = "id")]
    _id: Option<Value>,
    #[serde(rename = "uri")]
    _uri: Option<Value>,
    #[serde(rename = "account")]
    _account: Option<Value>,
    #[serde(rename = "Application", alias = "application")]
    _application: Option<Value>,
    #[serde(rename = "DevAccount", alias = "devAccount")]
    _dev_account: Option<Value>,
    #[serde(rename = "createdAt")]
    _created_at: Option<Value>,
    #[serde(rename = "updatedAt")]
    _updated_at: Option<Value>,
    #[serde(rename = "service")]
    _service: Option<Value>,
    #[serde(rename = "category")]
    _category: Option<Value>,
    #[serde(rename = "resource_url")]
    _resource_url: Option<Value>,
    #[serde(rename = "last_connection_ok")]
    _last_connection_ok: Option<Value>,
    #[serde(rename = "last_connection_error")]
    _last_connection_error: Option<Value>,
    #[serde(rename = "last_connection_at")]
    _last_connection_at: Option<Value>,
}

/// What the secret holds: the static keys, never stored anywhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl StaticKeys {
    /// Keys shaped as AWS makes them: an access key id of 16 to 128 letters and digits, a secret of 1 to
    /// 128 visible ASCII characters. Anything else could never sign a request (and would not fit in the
    /// signature's header). The secret is never named in the refusal.
    pub fn new(access_key_id: String, secret_access_key: String) -> Result<StaticKeys, AppError> {
        let id_ok = (16..=128).contains(&access_key_id.len())
            && access_key_id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !id_ok {
            return Err(AppError::InvalidParam(
                "access_key_id: 16 to 128 letters and digits, as AWS makes them".into(),
            ));
        }
        let secret_ok = (1..=128).contains(&secret_access_key.len())
            && secret_access_key.bytes().all(|b| b.is_ascii_graphic());
        if !secret_ok {
            return Err(AppError::InvalidParam(
                "secret_access_key: 1 to 128 visible ASCII characters, as AWS makes them".into(),
            ));
        }
        Ok(StaticKeys {
            access_key_id,
            secret_access_key,
        })
    }
}

/// Never prints the secret key.
impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// A validated create: the connection, and the keys to keep in a secret when it has some.
pub struct NewConnection {
    pub connection: AwsConnection,
    pub keys: Option<StaticKeys>,
}

const CLOUDS: [&str; 3] = ["aws", "aws-us-gov", "aws-cn"];
const STS_ENDPOINTS: [&str; 2] = ["legacy", "regional"];

fn check_role(arn: &Option<String>) -> Result<(), AppError> {
    if let Some(arn) = arn
        && !(arn.starts_with("arn:aws") && arn.contains(":iam::") && arn.contains(":role/"))
    {
        return Err(AppError::InvalidParam(format!(
            "assume_role_arn '{arn}' must be an IAM role ARN"
        )));
    }
    Ok(())
}

fn check_choice(name: &str, value: &str, allowed: &[&str]) -> Result<(), AppError> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(AppError::InvalidParam(format!(
        "{name} '{value}' must be one of {}",
        allowed.join(", ")
    )))
}

impl ConnectionBody {
    fn refuse_role_anywhere(&self) -> Result<(), AppError> {
        if self.is_role_anywhere == Some(true)
            || self
                .iam_role_anywhere
                .as_ref()
                .is_some_and(|v| !v.is_null())
        {
            return Err(AppError::InvalidParam(
                "IAM Roles Anywhere connections are not served here; give access keys or a role"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn validate_new(self, id: Uuid, now: Timestamp) -> Result<NewConnection, AppError> {
        self.refuse_role_anywhere()?;
        let name =
            given(self.name).ok_or_else(|| AppError::InvalidParam("name is required".into()))?;
        super::kms::validate_name(&name)?;
        let keys = match (given(self.access_key_id), given(self.secret_access_key)) {
            (Some(access_key_id), Some(secret_access_key)) => {
                Some(StaticKeys::new(access_key_id, secret_access_key)?)
            }
            (None, None) => None,
            _ => {
                return Err(AppError::InvalidParam(
                    "access_key_id and secret_access_key go together".into(),
                ));
            }
        };
        let assume_role_arn = given(self.assume_role_arn);
        check_role(&assume_role_arn)?;
        if keys.is_none() && assume_role_arn.is_none() {
            return Err(AppError::InvalidParam(
                "give access_key_id and secret_access_key, or assume_role_arn".into(),
            ));
        }
        let mut connection = AwsConnection {
            id,
            name,
            description: self.description.unwrap_or_default(),
            access_key_id: keys.as_ref().map(|k| k.access_key_id.clone()),
            secret_id: None,
            assume_role_arn,
            assume_role_external_id: given(self.assume_role_external_id),
            aws_region: None,
            aws_sts_regional_endpoints: "legacy".into(),
            cloud_name: "aws".into(),
            labels: self.labels.unwrap_or_default(),
            meta: self.meta.unwrap_or(Value::Object(Default::default())),
            products: self.products.unwrap_or_else(|| vec!["cckm".into()]),
            created_at: now,
            updated_at: now,
            last_check: None,
        };
        apply_settings(
            &mut connection,
            given(self.aws_region),
            given(self.aws_sts_regional_endpoints),
            given(self.cloud_name),
        )?;
        Ok(NewConnection { connection, keys })
    }

    /// Applies a patch to a copy of `current`; the keys to keep when new ones are given. Empty strings
    /// (Go's unset fields) change nothing; the name never changes.
    pub fn apply(
        self,
        current: &AwsConnection,
        now: Timestamp,
    ) -> Result<(AwsConnection, Option<StaticKeys>), AppError> {
        self.refuse_role_anywhere()?;
        if let Some(name) = given(self.name)
            && name != current.name
        {
            return Err(AppError::InvalidParam("name cannot be changed".into()));
        }
        let mut next = current.clone();
        let keys = match (given(self.access_key_id), given(self.secret_access_key)) {
            (Some(access_key_id), Some(secret_access_key)) => {
                Some(StaticKeys::new(access_key_id, secret_access_key)?)
            }
            (None, None) => None,
            (Some(access_key_id), None)
                if current.access_key_id.as_ref() == Some(&access_key_id) =>
            {
                None
            }
            _ => {
                return Err(AppError::InvalidParam(
                    "a new access_key_id needs its secret_access_key".into(),
                ));
            }
        };
        if let Some(keys) = &keys {
            next.access_key_id = Some(keys.access_key_id.clone());
        }
        if let Some(arn) = given(self.assume_role_arn) {
            next.assume_role_arn = Some(arn);
        }
        check_role(&next.assume_role_arn)?;
        if let Some(external_id) = given(self.assume_role_external_id) {
            next.assume_role_external_id = Some(external_id);
        }
        if let Some(description) = given(self.description) {
            next.description = description;
        }
        if let Some(labels) = self.labels.filter(|l| !l.is_empty()) {
            next.labels = labels;
        }
        if let Some(meta) = self
            .meta
            .filter(|m| m.as_object().is_none_or(|o| !o.is_empty()))
        {
            next.meta = meta;
        }
        if let Some(products) = self.products.filter(|p| !p.is_empty()) {
            next.products = products;
        }
        apply_settings(
            &mut next,
            given(self.aws_region),
            given(self.aws_sts_regional_endpoints),
            given(self.cloud_name),
        )?;
        next.updated_at = now;
        Ok((next, keys))
    }
}

fn apply_settings(
    connection: &mut AwsConnection,
    region: Option<String>,
    sts_endpoints: Option<String>,
    cloud: Option<String>,
) -> Result<(), AppError> {
    if let Some(region) = region {
        if !is_valid_region(&region) {
            return Err(AppError::InvalidParam(format!(
                "aws_region '{region}' is not a region"
            )));
        }
        connection.aws_region = Some(region);
    }
    if let Some(endpoints) = sts_endpoints {
        check_choice("aws_sts_regional_endpoints", &endpoints, &STS_ENDPOINTS)?;
        connection.aws_sts_regional_endpoints = endpoints;
    }
    if let Some(cloud) = cloud {
        check_choice("cloud_name", &cloud, &CLOUDS)?;
        connection.cloud_name = cloud;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> ConnectionBody {
        serde_json::from_value(value).unwrap()
    }

    /// Terraform's create body: every field, zero values where unset.
    fn terraform(name: &str, access: &str, secret: &str) -> Value {
        json!({"uri": "", "account": "", "createdAt": "", "updatedAt": "", "service": "", "category": "",
               "resource_url": "", "last_connection_ok": false, "last_connection_error": "",
               "last_connection_at": "", "Application": {}, "DevAccount": {}, "id": "", "name": name,
               "description": "", "access_key_id": access, "assume_role_arn": "", "assume_role_external_id": "",
               "aws_region": "", "aws_sts_regional_endpoints": "", "cloud_name": "", "is_role_anywhere": false,
               "iam_role_anywhere": null, "labels": {}, "meta": {}, "products": null,
               "secret_access_key": secret})
    }

    #[test]
    fn terraforms_create_body_is_read_with_its_empty_strings_as_unset() {
        let created = body(terraform("prod", "AKIAEXAMPLE00001", "s3cr3t"))
            .validate_new(Uuid::nil(), chrono::Utc::now())
            .unwrap();
        let connection = created.connection;
        assert_eq!(connection.cloud_name, "aws");
        assert_eq!(connection.aws_sts_regional_endpoints, "legacy");
        assert_eq!(connection.assume_role_arn, None);
        assert_eq!(connection.secret_id, None, "the store names the secret");
        assert_eq!(created.keys.unwrap().secret_access_key, "s3cr3t");
        assert!(
            !serde_json::to_string(&connection)
                .unwrap()
                .contains("s3cr3t")
        );
    }

    #[test]
    fn a_patch_of_empty_strings_changes_nothing() {
        let now = chrono::Utc::now();
        let current = body(terraform("prod", "AKIAEXAMPLE00001", "s3cr3t"))
            .validate_new(Uuid::nil(), now)
            .unwrap()
            .connection;
        let mut patch = terraform("", "", "");
        patch["description"] = json!("");
        let (next, keys) = body(patch).apply(&current, now).unwrap();
        assert_eq!(keys, None);
        assert_eq!(
            AwsConnection {
                updated_at: current.updated_at,
                ..next
            },
            current
        );
    }

    #[test]
    fn bad_bodies_are_refused() {
        let now = chrono::Utc::now();
        for bad in [
            json!({"name": "a", "access_key_id": "AKIA"}),
            json!({"name": "a"}),
            json!({"name": "a", "assume_role_arn": "role"}),
            json!({"name": "a", "assume_role_arn": "arn:aws:iam::111122223333:role/r", "cloud_name": "gcp"}),
            json!({"name": "a", "assume_role_arn": "arn:aws:iam::111122223333:role/r", "is_role_anywhere": true}),
            // Keys that could never sign a request (the signature is a header): refused, never sent.
            json!({"name": "a", "access_key_id": "AKIA\u{1F600}EXAMPLE00001", "secret_access_key": "s"}),
            json!({"name": "a", "access_key_id": "AKIAEXAMPLE00001", "secret_access_key": "line\nbreak"}),
            json!({"name": "a", "access_key_id": "AKIAEXAMPLE00001", "secret_access_key": "caf\u{e9}"}),
        ] {
            assert!(
                matches!(
                    body(bad.clone()).validate_new(Uuid::nil(), now),
                    Err(AppError::InvalidParam(_))
                ),
                "{bad}"
            );
        }
        assert!(
            serde_json::from_value::<ConnectionBody>(json!({"name": "a", "color": "red"})).is_err()
        );
    }
}
