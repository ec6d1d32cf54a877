//! How jobs, KMS resources and keys look on the wire: the domain objects plus the CCKM identity fields
//! (`uri`, `account`, `application`, `devAccount`) from configuration.

use crate::config::Tenancy;
use crate::domain::connection::{AwsConnection, ConnectionCheck};
use crate::domain::job::Job;
use crate::domain::job_config::{self, JobConfig};
use crate::domain::key::{KeyRecord, key_record_id};
use crate::domain::kms::KmsResource;
use crate::domain::time::format;
use crate::ports::KeyRotation;
use serde_json::{Map, Value, json};

/// `<account>:cckm:<kind>:<id>`, e.g. `kylo:kylo:cckm:synchronize:<id>`, from `kylo:kylo:admin:accounts:kylo`.
fn uri(tenancy: &Tenancy, kind: &str, id: &str) -> String {
    let owner = tenancy
        .account
        .split(':')
        .take(2)
        .collect::<Vec<_>>()
        .join(":");
    format!("{owner}:cckm:{kind}:{id}")
}

fn identity(tenancy: &Tenancy, kind: &str, id: &str) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("id".into(), Value::from(id));
    fields.insert("uri".into(), Value::from(uri(tenancy, kind, id)));
    fields.insert("account".into(), Value::from(tenancy.account.as_str()));
    fields.insert(
        "application".into(),
        Value::from(tenancy.application.as_str()),
    );
    fields.insert(
        "devAccount".into(),
        Value::from(tenancy.dev_account.as_str()),
    );
    fields
}

pub fn job(tenancy: &Tenancy, job: &Job) -> Value {
    let mut fields = identity(tenancy, "synchronize", &job.id.to_string());
    fields.insert("createdAt".into(), Value::from(format(&job.created_at)));
    fields.insert("updatedAt".into(), Value::from(format(&job.updated_at)));
    if let Some(completed_at) = &job.completed_at {
        fields.insert("completed_at".into(), Value::from(format(completed_at)));
    }
    fields.insert(
        "overall_status".into(),
        Value::from(job.overall_status.as_str()),
    );
    let detailed: Map<String, Value> = job
        .units
        .iter()
        .map(|(key, entry)| (key.clone(), Value::from(entry.status.to_string())))
        .collect();
    fields.insert("detailed_status".into(), Value::Object(detailed));
    fields.insert("cloud".into(), Value::from("aws"));
    fields.insert("kms".into(), json!(job.kms));
    fields.insert("regions".into(), json!(job.regions));
    fields.insert("abort".into(), Value::from(job.abort));
    fields.insert("progress".into(), json!(job.progress));
    Value::Object(fields)
}

pub fn kms(tenancy: &Tenancy, kms: &KmsResource) -> Value {
    let mut fields = identity(tenancy, "aws-kms", &kms.id.to_string());
    fields.insert("createdAt".into(), Value::from(format(&kms.created_at)));
    fields.insert("updatedAt".into(), Value::from(format(&kms.updated_at)));
    fields.insert("name".into(), Value::from(kms.name.as_str()));
    fields.insert("account_id".into(), Value::from(kms.account_id.as_str()));
    fields.insert("regions".into(), json!(kms.regions));
    fields.insert("arn".into(), Value::from(kms.root_arn()));
    fields.insert("assume_role_arn".into(), json!(kms.assume_role_arn));
    fields.insert(
        "assume_role_external_id".into(),
        json!(kms.assume_role_external_id),
    );
    fields.insert("status".into(), Value::from(kms.status()));
    fields.insert("cloud_name".into(), Value::from(kms.cloud_name()));
    fields.insert("auto_added".into(), Value::from(kms.auto_added));
    fields.insert("acls".into(), json!(kms.acls));
    fields.insert(
        "connection".into(),
        json!(kms.connection.as_ref().map(|c| c.name.as_str())),
    );
    fields.insert(
        "organization_status".into(),
        json!(kms.org_status.map(|s| s.as_str())),
    );
    Value::Object(fields)
}

pub fn key(tenancy: &Tenancy, key: &KeyRecord) -> Value {
    let mut fields = identity(tenancy, "aws-key", &key.id.to_string());
    if let Ok(Value::Object(record)) = serde_json::to_value(key) {
        for (name, value) in record {
            // Index attributes and sync bookkeeping are ours, not part of the CCKM object.
            if !matches!(
                name.as_str(),
                "unit" | "arn" | "last_seen_job" | "content_hash"
            ) {
                fields.insert(name, value);
            }
        }
    }
    // CCKM's clients (the Terraform provider) read the deletion date at the top level too.
    fields.insert(
        "deletion_date".into(),
        Value::from(key.aws_param.deletion_date.clone()),
    );
    fields.insert("key_source".into(), Value::from(KEY_SOURCE));
    // What CCKM shows of keys it manages itself (source keys, its rotation jobs, policy templates): a
    // synced key has none, so each is CCKM's empty value.
    for (name, empty) in [
        ("local_key_id", json!("")),
        ("local_key_name", json!("")),
        ("rotated_at", Value::Null),
        ("rotated_from", json!("")),
        ("rotated_to", json!("")),
        ("rotation_status", json!("")),
        ("replica_policy", Value::Null),
        ("policy_template", Value::Null),
        ("key_admins", json!([])),
        ("key_admins_roles", json!([])),
        ("key_users", json!([])),
        ("key_users_roles", json!([])),
        ("external_accounts", json!([])),
    ] {
        fields.entry(name).or_insert(empty);
    }
    // Terraform reads one MAC algorithm; AWS lists them.
    if let Some(Value::Object(param)) = fields.get_mut("aws_param") {
        let spec = key.aws_param.mac_algorithms.first().cloned();
        param.insert("MacAlgorithmSpec".into(), json!(spec));
    }
    Value::Object(fields)
}

/// A connection test's answer: `connection_ok`, and AWS's reason when it is false.
pub fn connection_check(check: &ConnectionCheck) -> Value {
    json!({
        "connection_ok": check.ok,
        "connection_error": check.error,
        "last_connection_at": format(&check.at),
    })
}

/// One rotation of a key's material as CCKM shows it: AWS's fields under `aws_param`, CCKM's around them
/// (a synced key's material has no CCKM source). Its id is stable: derived from the key and the rotation.
pub fn rotation(tenancy: &Tenancy, key: &KeyRecord, rotation: &KeyRotation) -> Value {
    let which = rotation
        .key_material_id
        .clone()
        .or_else(|| rotation.rotation_date.clone())
        .unwrap_or_default();
    let id = key_record_id(&format!("{}#rotation#{which}", key.arn)).to_string();
    let mut fields = identity(tenancy, "aws-key-rotation", &id);
    let at = json!(rotation.rotation_date);
    fields.insert("createdAt".into(), at.clone());
    fields.insert("updatedAt".into(), at);
    fields.insert("kms_id".into(), Value::from(key.kms_id.to_string()));
    fields.insert("key_source".into(), Value::from(KEY_SOURCE));
    fields.insert(
        "key_material_origin".into(),
        Value::from(key.key_material_origin.clone()),
    );
    for name in [
        "key_source_container_id",
        "source_key_identifier",
        "source_key_name",
    ] {
        fields.insert(name.into(), json!(""));
    }
    let mut param = json!(rotation);
    param["KeyId"] = Value::from(key.aws_param.key_id.clone());
    fields.insert("aws_param".into(), param);
    Value::Object(fields)
}

/// Where a synced key's material comes from, in CCKM's words: AWS itself, not a CCKM source.
pub const KEY_SOURCE: &str = "native";

/// A scheduler job configuration as CCKM's scheduler API shows it. The params read back under both names
/// the clients use: `job_config_params` (Terraform's resource) and `cckm_synchronization_params`.
pub fn job_config(tenancy: &Tenancy, config: &JobConfig) -> Value {
    let mut fields = identity(tenancy, "job-config", &config.id.to_string());
    fields.insert("createdAt".into(), Value::from(format(&config.created_at)));
    fields.insert("updatedAt".into(), Value::from(format(&config.updated_at)));
    fields.insert("name".into(), Value::from(config.name.as_str()));
    fields.insert(
        "description".into(),
        Value::from(config.description.as_str()),
    );
    fields.insert("operation".into(), Value::from(job_config::OPERATION));
    fields.insert("run_at".into(), Value::from(config.run_at.as_str()));
    fields.insert("run_on".into(), Value::from(config.run_on.as_str()));
    fields.insert("disabled".into(), Value::from(config.disabled));
    let date = |d: &Option<crate::domain::time::Timestamp>| json!(d.as_ref().map(format));
    fields.insert("start_date".into(), date(&config.start_date));
    fields.insert("end_date".into(), date(&config.end_date));
    let params = json!({
        "cloud_name": config.params.cloud_name,
        "kms": config.params.kms,
        "regions": config.params.regions,
        "synchronize_all": config.params.synchronize_all,
        "oci_vaults": null,
    });
    fields.insert("job_config_params".into(), params.clone());
    fields.insert("cckm_synchronization_params".into(), params);
    Value::Object(fields)
}

/// An AWS connection as CCKM's connection manager shows it. The secret access key is never in it.
pub fn connection(tenancy: &Tenancy, connection: &AwsConnection) -> Value {
    let id = connection.id.to_string();
    let mut fields = identity(tenancy, "connection", &id);
    fields.insert(
        "createdAt".into(),
        Value::from(format(&connection.created_at)),
    );
    fields.insert(
        "updatedAt".into(),
        Value::from(format(&connection.updated_at)),
    );
    fields.insert("name".into(), Value::from(connection.name.as_str()));
    fields.insert(
        "description".into(),
        Value::from(connection.description.as_str()),
    );
    fields.insert("service".into(), Value::from("aws"));
    fields.insert("category".into(), Value::from("cloud"));
    fields.insert("products".into(), json!(connection.products));
    fields.insert("labels".into(), json!(connection.labels));
    fields.insert("meta".into(), connection.meta.clone());
    fields.insert(
        "resource_url".into(),
        Value::from(format!("/v1/connectionmgmt/services/aws/connections/{id}")),
    );
    // Null until the connection is tested (`POST .../connections/{id}/test`).
    let check = connection.last_check.as_ref();
    fields.insert("last_connection_ok".into(), json!(check.map(|c| c.ok)));
    fields.insert(
        "last_connection_error".into(),
        Value::from(check.map_or("", |c| c.error.as_str())),
    );
    fields.insert(
        "last_connection_at".into(),
        json!(check.map(|c| format(&c.at))),
    );
    fields.insert("access_key_id".into(), json!(connection.access_key_id));
    fields.insert("assume_role_arn".into(), json!(connection.assume_role_arn));
    fields.insert(
        "assume_role_external_id".into(),
        json!(connection.assume_role_external_id),
    );
    fields.insert("aws_region".into(), json!(connection.aws_region));
    fields.insert(
        "aws_sts_regional_endpoints".into(),
        Value::from(connection.aws_sts_regional_endpoints.as_str()),
    );
    fields.insert(
        "cloud_name".into(),
        Value::from(connection.cloud_name.as_str()),
    );
    fields.insert("is_role_anywhere".into(), Value::from(false));
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::Unit;
    use uuid::Uuid;

    #[test]
    fn a_key_shows_its_first_mac_algorithm_and_cckms_empty_values() {
        let mut details = crate::domain::key::KeyDetails::default();
        details.aws_param.arn = "arn:aws:kms:us-east-1:111122223333:key/k".into();
        details.aws_param.mac_algorithms = vec!["HMAC_SHA_256".into(), "HMAC_SHA_384".into()];
        let sighting = crate::domain::key::Sighting {
            kms_id: Uuid::nil(),
            kms_name: "prod",
            region: "us-east-1",
            job_id: None,
            now: crate::domain::time::now(),
            first_stored: None,
        };
        let view = key(
            &Tenancy::default(),
            &KeyRecord::from_details(details, sighting),
        );
        assert_eq!(view["aws_param"]["MacAlgorithmSpec"], "HMAC_SHA_256");
        assert_eq!(view["key_source"], "native");
        assert_eq!(view["rotated_at"], Value::Null);
        assert_eq!(view["key_users"], json!([]));
    }

    #[test]
    fn a_new_job_renders_every_documented_field() {
        let unit = Unit {
            kms_id: Uuid::nil(),
            account_id: "123456789012".into(),
            region: "ap-south-1".into(),
        };
        let job = Job::start(
            Uuid::new_v4(),
            crate::domain::time::now(),
            vec![unit],
            vec!["kms".into()],
            vec!["ap-south-1".into()],
        );
        let view = job_view(&job);
        for field in [
            "id",
            "uri",
            "account",
            "application",
            "devAccount",
            "createdAt",
            "updatedAt",
            "overall_status",
            "detailed_status",
            "cloud",
            "kms",
            "regions",
            "abort",
        ] {
            assert!(view.get(field).is_some(), "{field}");
        }
        assert!(view.get("completed_at").is_none());
        assert_eq!(
            view["uri"],
            format!("kylo:kylo:cckm:synchronize:{}", job.id)
        );
        assert_eq!(
            view["detailed_status"]["123456789012/ap-south-1"],
            "in_progress"
        );
        assert_eq!(view["overall_status"], "in_progress");
        assert!(view["createdAt"].as_str().unwrap().ends_with('Z'));
    }

    fn job_view(job: &Job) -> Value {
        super::job(&Tenancy::default(), job)
    }
}
