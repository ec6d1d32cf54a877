//! The keys of one account and region, generated from their index so that every run serves the same
//! ones, and the answers of the six reads about them. The mix, per 20 keys: 6 symmetric keys with
//! rotation, 4 without, RSA, ECC, HMAC, disabled, pending deletion, 2 AWS-managed, a multi-region primary
//! and 2 more symmetric keys; every third key has tags, every fourth an alias.

use serde_json::{Value, json};
use std::collections::HashMap;

/// Keys are made on this day (epoch seconds), a year before the simulator's "now".
const CREATED: i64 = 1_764_000_000;
const DAY: i64 = 86_400;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rotating,
    Symmetric,
    Rsa,
    Ecc,
    Hmac,
    Disabled,
    PendingDeletion,
    AwsManaged,
    MultiRegion,
}

fn kind_of(index: usize) -> Kind {
    match index % 20 {
        0..=5 => Kind::Rotating,
        10 => Kind::Rsa,
        11 => Kind::Ecc,
        12 => Kind::Hmac,
        13 => Kind::Disabled,
        14 => Kind::PendingDeletion,
        15 | 16 => Kind::AwsManaged,
        17 => Kind::MultiRegion,
        _ => Kind::Symmetric,
    }
}

struct Key {
    id: String,
    arn: String,
    kind: Kind,
    index: usize,
}

pub struct Region {
    account: String,
    region: String,
    keys: Vec<Key>,
    by_id: HashMap<String, usize>,
    aliases: Vec<(String, String)>,
}

type Failure = (&'static str, String);

/// A page of `items` from the positional `Marker` of `body`, at most `Limit` (`default`, `max`).
fn page<'a, T>(
    items: &'a [T],
    body: &Value,
    default: usize,
    max: usize,
) -> (&'a [T], Option<String>) {
    let start = body["Marker"]
        .as_str()
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(0)
        .min(items.len());
    let limit = body["Limit"]
        .as_u64()
        .map_or(default, |l| (l as usize).clamp(1, max));
    let end = (start + limit).min(items.len());
    (
        &items[start..end],
        (end < items.len()).then(|| end.to_string()),
    )
}

/// The three tags of every third key, with the field names of the API asked (KMS or tagging).
fn tags_of(index: usize, key: &str, value: &str) -> Vec<Value> {
    (0..3)
        .map(|t| json!({key: format!("tag{t}"), value: format!("value{index}")}))
        .collect()
}

fn paged(field: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut answer = json!({field: items, "Truncated": next.is_some()});
    if let Some(next) = next {
        answer["NextMarker"] = Value::from(next);
    }
    answer
}

impl Region {
    pub fn generate(account: &str, region: &str, count: usize) -> Region {
        let region_tag: u64 = region.bytes().fold(0, |h, b| h * 31 + u64::from(b)) % 0xFFFF_FFFF;
        let keys: Vec<Key> = (0..count)
            .map(|index| {
                let kind = kind_of(index);
                let prefix = if kind == Kind::MultiRegion {
                    "mrk-"
                } else {
                    ""
                };
                let id = format!("{prefix}{index:08x}-0000-4000-8000-{region_tag:012x}");
                let arn = format!("arn:aws:kms:{region}:{account}:key/{id}");
                Key {
                    id,
                    arn,
                    kind,
                    index,
                }
            })
            .collect();
        let by_id = keys
            .iter()
            .enumerate()
            .flat_map(|(i, k)| [(k.id.clone(), i), (k.arn.clone(), i)])
            .collect();
        let aliases = keys
            .iter()
            .filter(|k| k.index % 4 == 0 || k.kind == Kind::AwsManaged)
            .map(|k| {
                let name = if k.kind == Kind::AwsManaged {
                    format!("alias/aws/service{}", k.index)
                } else {
                    format!("alias/app-{}", k.index)
                };
                (name, k.id.clone())
            })
            .collect();
        Region {
            account: account.to_string(),
            region: region.to_string(),
            keys,
            by_id,
            aliases,
        }
    }

    fn key(&self, body: &Value) -> Result<&Key, Failure> {
        let id = body["KeyId"].as_str().unwrap_or_default();
        self.by_id
            .get(id)
            .map(|&i| &self.keys[i])
            .ok_or_else(|| ("NotFoundException", format!("Key '{id}' does not exist")))
    }

    pub fn answer(&self, operation: &str, body: &Value) -> Result<Value, Failure> {
        match operation {
            "ListKeys" => {
                let (keys, next) = page(&self.keys, body, 100, 1000);
                let keys = keys
                    .iter()
                    .map(|k| json!({"KeyId": k.id, "KeyArn": k.arn}))
                    .collect();
                Ok(paged("Keys", keys, next))
            }
            "ListAliases" => {
                let (aliases, next) = page(&self.aliases, body, 50, 100);
                let aliases = aliases
                    .iter()
                    .map(|(name, target)| {
                        json!({"AliasName": name, "TargetKeyId": target,
                            "AliasArn": format!("arn:aws:kms:{}:{}:{name}", self.region, self.account)})
                    })
                    .collect();
                Ok(paged("Aliases", aliases, next))
            }
            "DescribeKey" => Ok(json!({"KeyMetadata": self.metadata(self.key(body)?)})),
            "ListResourceTags" => {
                let key = self.key(body)?;
                let tags = if key.index % 3 == 0 {
                    tags_of(key.index, "TagKey", "TagValue")
                } else {
                    Vec::new()
                };
                let (tags, next) = page(&tags, body, 50, 50);
                Ok(paged("Tags", tags.to_vec(), next))
            }
            "GetKeyRotationStatus" => {
                let key = self.key(body)?;
                match key.kind {
                    Kind::Rsa | Kind::Ecc | Kind::Hmac => Err((
                        "UnsupportedOperationException",
                        "rotation is not supported for this key".into(),
                    )),
                    kind => {
                        let on = matches!(kind, Kind::Rotating | Kind::AwsManaged);
                        let mut answer = json!({"KeyRotationEnabled": on});
                        if on {
                            answer["RotationPeriodInDays"] = Value::from(365);
                            answer["NextRotationDate"] = Value::from(CREATED + 365 * DAY);
                        }
                        Ok(answer)
                    }
                }
            }
            "GetResources" => {
                let tagged: Vec<Value> = self
                    .keys
                    .iter()
                    .filter(|k| k.index % 3 == 0)
                    .map(
                        |k| json!({"ResourceARN": k.arn, "Tags": tags_of(k.index, "Key", "Value")}),
                    )
                    .collect();
                let start = body["PaginationToken"]
                    .as_str()
                    .and_then(|t| t.parse::<usize>().ok())
                    .unwrap_or(0)
                    .min(tagged.len());
                let end = (start + 100).min(tagged.len());
                let token = if end < tagged.len() {
                    end.to_string()
                } else {
                    String::new()
                };
                Ok(json!({"ResourceTagMappingList": tagged[start..end], "PaginationToken": token}))
            }
            "GetKeyPolicy" => {
                let key = self.key(body)?;
                let policy = json!({"Version": "2012-10-17", "Id": "key-default-1", "Statement": [{
                    "Sid": "Enable IAM User Permissions", "Effect": "Allow",
                    "Principal": {"AWS": format!("arn:aws:iam::{}:root", self.account)},
                    "Action": "kms:*", "Resource": key.arn}]});
                Ok(json!({"Policy": policy.to_string(), "PolicyName": "default"}))
            }
            _ => Err((
                "UnknownOperationException",
                format!("operation '{operation}' is not simulated"),
            )),
        }
    }

    fn metadata(&self, key: &Key) -> Value {
        let (spec, usage) = match key.kind {
            Kind::Rsa => ("RSA_2048", "SIGN_VERIFY"),
            Kind::Ecc => ("ECC_NIST_P256", "SIGN_VERIFY"),
            Kind::Hmac => ("HMAC_256", "GENERATE_VERIFY_MAC"),
            _ => ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        };
        let state = match key.kind {
            Kind::Disabled => "Disabled",
            Kind::PendingDeletion => "PendingDeletion",
            _ => "Enabled",
        };
        let mut meta = json!({
            "AWSAccountId": self.account, "KeyId": key.id, "Arn": key.arn,
            "CreationDate": CREATED + key.index as i64, "Enabled": state == "Enabled",
            "Description": if key.kind == Kind::AwsManaged { "Default key that protects my data" } else { "" },
            "KeyUsage": usage, "KeyState": state, "Origin": "AWS_KMS",
            "KeyManager": if key.kind == Kind::AwsManaged { "AWS" } else { "CUSTOMER" },
            "CustomerMasterKeySpec": spec, "KeySpec": spec,
            "MultiRegion": key.kind == Kind::MultiRegion,
        });
        match key.kind {
            Kind::Rsa => {
                meta["SigningAlgorithms"] =
                    json!(["RSASSA_PSS_SHA_256", "RSASSA_PKCS1_V1_5_SHA_256"])
            }
            Kind::Ecc => meta["SigningAlgorithms"] = json!(["ECDSA_SHA_256"]),
            Kind::Hmac => meta["MacAlgorithms"] = json!(["HMAC_SHA_256"]),
            _ => meta["EncryptionAlgorithms"] = json!(["SYMMETRIC_DEFAULT"]),
        }
        if key.kind == Kind::PendingDeletion {
            meta["DeletionDate"] = Value::from(CREATED + 400 * DAY);
            meta["PendingDeletionWindowInDays"] = Value::from(7);
        }
        if key.kind == Kind::MultiRegion {
            meta["MultiRegionConfiguration"] = json!({"MultiRegionKeyType": "PRIMARY",
                "PrimaryKey": {"Arn": key.arn, "Region": self.region}, "ReplicaKeys": []});
        }
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_keys_pages_with_limit_and_marker_and_every_key_describes() {
        let region = Region::generate("111122223333", "us-east-1", 45);
        let first = region.answer("ListKeys", &json!({"Limit": 20})).unwrap();
        assert_eq!(first["Keys"].as_array().unwrap().len(), 20);
        assert_eq!(first["NextMarker"], "20");
        let last = region
            .answer("ListKeys", &json!({"Limit": 1000, "Marker": "40"}))
            .unwrap();
        assert_eq!(last["Keys"].as_array().unwrap().len(), 5);
        assert_eq!(last["Truncated"], false);
        for key in &region.keys {
            let described = region
                .answer("DescribeKey", &json!({"KeyId": key.id}))
                .unwrap();
            assert_eq!(described["KeyMetadata"]["Arn"], key.arn.as_str());
        }
        let states: std::collections::BTreeSet<String> = region
            .keys
            .iter()
            .map(|k| region.metadata(k)["KeyState"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(states.len(), 3, "{states:?}");
        assert_eq!(
            region
                .answer("DescribeKey", &json!({"KeyId": "nope"}))
                .unwrap_err()
                .0,
            "NotFoundException"
        );
    }
}
