//! A change to KMS keys that CloudTrail reported through EventBridge (`source` "aws.kms"): which keys of
//! which account and region it may have changed. The event only says where to look; the keys are then
//! read again from AWS, so an event's own contents (possibly old, repeated or out of order) never become
//! the stored state.

use serde_json::Value;

/// The CloudTrail event names this function follows: every KMS call that changes what a synced key shows,
/// and `DeleteKey`, the service event of a key whose deletion window ended.
pub const FOLLOWED_EVENTS: [&str; 20] = [
    "CreateKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "EnableKey",
    "DisableKey",
    "TagResource",
    "UntagResource",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "RotateKeyOnDemand",
    "PutKeyPolicy",
    "ReplicateKey",
    "ImportKeyMaterial",
    "DeleteImportedKeyMaterial",
    "UpdateKeyDescription",
    "UpdatePrimaryRegion",
    "DeleteKey",
];

/// The EventBridge detail types of CloudTrail events: a caller's API call, and AWS's own action.
pub const DETAIL_TYPES: [&str; 2] = [
    "AWS API Call via CloudTrail",
    "AWS Service Event via CloudTrail",
];

/// One key, as an event names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyRef {
    pub region: String,
    pub key_id: String,
}

/// What one event may have changed.
#[derive(Debug, Clone, PartialEq)]
pub struct KmsChange {
    /// CloudTrail's event id, for the logs.
    pub event_id: String,
    pub event_name: String,
    /// The account that owns the keys (`recipientAccountId`).
    pub account_id: String,
    /// The region of the call.
    pub region: String,
    /// The keys to read again, sorted, each once.
    pub keys: Vec<KeyRef>,
    /// Aliases of `region` the call created, moved or deleted: the key that held one before must be read
    /// again too, and only our records know which key that was.
    pub aliases: Vec<String>,
}

/// Why an event is not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("not a KMS change this function follows ({0})")]
    NotFollowed(String),
    /// CloudTrail records refused and failed calls too; they changed nothing.
    #[error("the call failed ({0}); nothing changed")]
    CallFailed(String),
    #[error("unreadable event: {0}")]
    Unreadable(String),
}

/// Whether an EventBridge event is a CloudTrail KMS event, by its envelope.
pub fn is_kms_event(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some("aws.kms")
        && event
            .get("detail-type")
            .and_then(Value::as_str)
            .is_some_and(|kind| DETAIL_TYPES.contains(&kind))
}

/// Reads an EventBridge CloudTrail event into the change it reports.
pub fn parse(event: &Value) -> Result<KmsChange, Skip> {
    let detail = event
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or_else(|| Skip::Unreadable("no detail".into()))?;
    let text = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let event_name = text(detail.get("eventName"))
        .ok_or_else(|| Skip::Unreadable("no detail.eventName".into()))?;
    if !FOLLOWED_EVENTS.contains(&event_name.as_str()) {
        return Err(Skip::NotFollowed(event_name));
    }
    if let Some(code) = text(detail.get("errorCode")) {
        return Err(Skip::CallFailed(code));
    }
    let account_id = text(detail.get("recipientAccountId"))
        .or_else(|| text(event.get("account")))
        .ok_or_else(|| Skip::Unreadable("no account".into()))?;
    let region = text(detail.get("awsRegion"))
        .or_else(|| text(event.get("region")))
        .ok_or_else(|| Skip::Unreadable("no region".into()))?;
    let event_id = text(detail.get("eventID"))
        .or_else(|| text(event.get("id")))
        .unwrap_or_default();

    let mut change = KmsChange {
        event_id,
        event_name,
        account_id,
        region,
        keys: Vec::new(),
        aliases: Vec::new(),
    };
    for resource in detail
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(arn) = resource
            .get("ARN")
            .or_else(|| resource.get("arn"))
            .and_then(Value::as_str)
        {
            change.add_reference(arn);
        }
    }
    let request = detail.get("requestParameters").unwrap_or(&Value::Null);
    let response = detail.get("responseElements").unwrap_or(&Value::Null);
    for field in ["keyId", "targetKeyId"] {
        if let Some(reference) = request.get(field).and_then(Value::as_str) {
            change.add_reference(reference);
        }
    }
    for metadata in ["/keyMetadata", "/replicaKeyMetadata"] {
        if let Some(arn) = response
            .pointer(&format!("{metadata}/arn"))
            .and_then(Value::as_str)
        {
            change.add_reference(arn);
        }
    }
    if let Some(alias) = text(request.get("aliasName")) {
        change.add_reference(&alias);
    }
    // The same key in another region: the new replica, or the region that became the primary.
    for field in ["replicaRegion", "primaryRegion"] {
        if let Some(other) = text(request.get(field)) {
            let in_other: Vec<KeyRef> = change
                .keys
                .iter()
                .filter(|k| k.region == change.region)
                .map(|k| KeyRef {
                    region: other.clone(),
                    key_id: k.key_id.clone(),
                })
                .collect();
            change.keys.extend(in_other);
        }
    }
    change.keys.sort();
    change.keys.dedup();
    change.aliases.sort();
    change.aliases.dedup();
    if change.keys.is_empty() && change.aliases.is_empty() {
        return Err(Skip::Unreadable(format!(
            "{} names no key and no alias",
            change.event_name
        )));
    }
    Ok(change)
}

impl KmsChange {
    /// Adds what a key reference names: a key ARN, an alias ARN or name, or a bare key id (of the call's
    /// region). A reference to another account is not this event's business and is left out.
    fn add_reference(&mut self, reference: &str) {
        if let Some(rest) = reference.strip_prefix("arn:") {
            // arn:<partition>:kms:<region>:<account>:<resource>
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let [_, service, region, account, resource] = parts[..] else {
                return;
            };
            if service != "kms" || account != self.account_id {
                return;
            }
            if let Some(key_id) = resource.strip_prefix("key/") {
                self.keys.push(KeyRef {
                    region: region.to_string(),
                    key_id: key_id.to_string(),
                });
            } else if resource.starts_with("alias/") && region == self.region {
                self.aliases.push(resource.to_string());
            }
        } else if reference.starts_with("alias/") {
            self.aliases.push(reference.to_string());
        } else if is_key_id(reference) {
            self.keys.push(KeyRef {
                region: self.region.clone(),
                key_id: reference.to_string(),
            });
        }
    }
}

/// A KMS key id: a UUID, or `mrk-` and one (32 hex digits, dashes or not) for a multi-Region key.
fn is_key_id(text: &str) -> bool {
    uuid::Uuid::try_parse(text.strip_prefix("mrk-").unwrap_or(text)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
    const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn event(name: &str, detail: Value) -> Value {
        let mut detail = detail;
        let fields = detail.as_object_mut().unwrap();
        fields.insert("eventName".into(), json!(name));
        fields.insert("eventSource".into(), json!("kms.amazonaws.com"));
        fields.insert("awsRegion".into(), json!("us-east-1"));
        fields.insert("recipientAccountId".into(), json!("111122223333"));
        fields.insert("eventID".into(), json!("e-1"));
        json!({"source": "aws.kms", "detail-type": "AWS API Call via CloudTrail",
               "account": "111122223333", "region": "us-east-1", "detail": detail})
    }

    fn key(region: &str, id: &str) -> KeyRef {
        KeyRef {
            region: region.into(),
            key_id: id.into(),
        }
    }

    #[test]
    fn a_key_call_names_its_key_once_from_resources_and_parameters() {
        let change = parse(&event(
            "DisableKey",
            json!({"requestParameters": {"keyId": ARN},
                   "resources": [{"ARN": ARN, "accountId": "111122223333", "type": "AWS::KMS::Key"}]}),
        ))
        .unwrap();
        assert_eq!(change.keys, vec![key("us-east-1", KEY)]);
        assert!(change.aliases.is_empty());
        assert_eq!(
            (change.account_id.as_str(), change.region.as_str()),
            ("111122223333", "us-east-1")
        );
    }

    #[test]
    fn create_key_names_the_key_from_its_answer() {
        let change = parse(&event(
            "CreateKey",
            json!({"requestParameters": {"keySpec": "SYMMETRIC_DEFAULT"},
                   "responseElements": {"keyMetadata": {"keyId": KEY, "arn": ARN}}}),
        ))
        .unwrap();
        assert_eq!(change.keys, vec![key("us-east-1", KEY)]);
    }

    #[test]
    fn an_alias_call_names_the_alias_and_its_new_target() {
        let change = parse(&event(
            "UpdateAlias",
            json!({"requestParameters": {"aliasName": "alias/app", "targetKeyId": KEY}}),
        ))
        .unwrap();
        assert_eq!(change.keys, vec![key("us-east-1", KEY)]);
        assert_eq!(change.aliases, vec!["alias/app".to_string()]);
        let deleted = parse(&event(
            "DeleteAlias",
            json!({"requestParameters": {"aliasName": "alias/app"}}),
        ))
        .unwrap();
        assert!(deleted.keys.is_empty());
        assert_eq!(deleted.aliases, vec!["alias/app".to_string()]);
    }

    #[test]
    fn replicate_and_primary_region_name_the_key_in_both_regions() {
        let mrk = "mrk-1234abcd12ab34cd56ef1234567890ab";
        let replicated = parse(&event(
            "ReplicateKey",
            json!({"requestParameters": {"keyId": mrk, "replicaRegion": "eu-west-1"}}),
        ))
        .unwrap();
        assert_eq!(
            replicated.keys,
            vec![key("eu-west-1", mrk), key("us-east-1", mrk)]
        );
        let moved = parse(&event(
            "UpdatePrimaryRegion",
            json!({"requestParameters": {"keyId": mrk, "primaryRegion": "eu-west-1"}}),
        ))
        .unwrap();
        assert_eq!(moved.keys, replicated.keys);
    }

    #[test]
    fn failed_calls_other_events_and_other_accounts_are_skipped() {
        let failed = event(
            "DisableKey",
            json!({"errorCode": "AccessDenied", "requestParameters": {"keyId": KEY}}),
        );
        assert_eq!(parse(&failed), Err(Skip::CallFailed("AccessDenied".into())));
        let read = event("DescribeKey", json!({"requestParameters": {"keyId": KEY}}));
        assert_eq!(parse(&read), Err(Skip::NotFollowed("DescribeKey".into())));
        let foreign = event(
            "EnableKey",
            json!({"requestParameters": {"keyId": ARN.replace("111122223333", "999999999999")}}),
        );
        assert!(matches!(parse(&foreign), Err(Skip::Unreadable(_))));
        assert!(matches!(
            parse(&json!({"source": "aws.kms"})),
            Err(Skip::Unreadable(_))
        ));
    }

    #[test]
    fn only_cloudtrail_kms_envelopes_are_kms_events() {
        assert!(is_kms_event(&event("EnableKey", json!({}))));
        let service_event =
            json!({"source": "aws.kms", "detail-type": "AWS Service Event via CloudTrail"});
        assert!(is_kms_event(&service_event));
        assert!(!is_kms_event(
            &json!({"source": "aws.events", "detail-type": "Scheduled Event"})
        ));
    }
}
