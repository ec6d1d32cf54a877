//! A scheduler job configuration of CCKM's scheduler API (`/v1/scheduler/job-configs`): a named, timed
//! `cckm_synchronization`, each one an EventBridge Scheduler schedule. Bodies are read as Terraform's
//! `ciphertrust_scheduler` sends them: every params object of every operation (null but the one in use),
//! Go's zero dates and empty strings meaning "not given". `run_at` is a five-field cron, converted here to
//! the six-field `cron(...)` EventBridge Scheduler takes.

use super::time::{Timestamp, rfc3339};
use super::{AppError, given};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The one operation served: a CCKM synchronization.
pub const OPERATION: &str = "cckm_synchronization";

/// What a scheduled synchronization starts: the params of CCKM's scheduler input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SyncParams {
    pub cloud_name: String,
    pub kms: Vec<String>,
    pub regions: Vec<String>,
    pub synchronize_all: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobConfig {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub run_at: String,
    pub run_on: String,
    pub disabled: bool,
    #[serde(with = "rfc3339::option")]
    pub start_date: Option<Timestamp>,
    #[serde(with = "rfc3339::option")]
    pub end_date: Option<Timestamp>,
    pub params: SyncParams,
    #[serde(rename = "createdAt", with = "rfc3339")]
    pub created_at: Timestamp,
    #[serde(rename = "updatedAt", with = "rfc3339")]
    pub updated_at: Timestamp,
}

/// The params object as the clients send it (`oci_vaults` is another cloud's: accepted when empty).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SyncParamsBody {
    pub cloud_name: Option<String>,
    pub kms: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
    pub synchronize_all: Option<bool>,
    pub oci_vaults: Option<Vec<String>>,
}

/// A create or patch body of `/v1/scheduler/job-configs`.
#[derive(Debug, Deserialize, Default)]
pub struct JobConfigBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub operation: Option<String>,
    pub run_at: Option<String>,
    pub run_on: Option<String>,
    pub disabled: Option<bool>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub cckm_synchronization_params: Option<SyncParamsBody>,
    /// The params of the other operations (Terraform sends each, null) and read-only fields a client
    /// echoes back: accepted when empty, refused by name otherwise.
    #[serde(flatten)]
    pub others: BTreeMap<String, Value>,
}

/// Fields only the server sets; a client may send them back.
const READ_ONLY: [&str; 8] = [
    "id",
    "uri",
    "account",
    "application",
    "devAccount",
    "createdAt",
    "updatedAt",
    "job_config_params",
];

/// A date as given; Go's zero time (year 1) and an empty string are "not given".
fn date(field: &str, value: Option<String>) -> Result<Option<Timestamp>, AppError> {
    let Some(text) = given(value) else {
        return Ok(None);
    };
    let parsed = chrono::DateTime::parse_from_rfc3339(&text)
        .map_err(|_| AppError::InvalidParam(format!("{field} '{text}' is not an RFC 3339 date")))?
        .with_timezone(&chrono::Utc);
    Ok((chrono::Datelike::year(&parsed) > 1).then_some(parsed))
}

/// A date of a PATCH body: absent or Go's zero date (Terraform 1.0.1 sends it for an unset date) leaves it
/// as it is; `""` clears it (the newest Terraform sends that when the plan drops it); a date replaces it.
fn patch_date(
    current: &mut Option<Timestamp>,
    field: &str,
    value: Option<String>,
) -> Result<(), AppError> {
    match value {
        Some(text) if text.trim().is_empty() => *current = None,
        value => {
            if let Some(date) = date(field, value)? {
                *current = Some(date);
            }
        }
    }
    Ok(())
}

impl JobConfigBody {
    fn check_others(&self) -> Result<(), AppError> {
        for (name, value) in &self.others {
            let empty = value.is_null()
                || value.as_str().is_some_and(str::is_empty)
                || value.as_object().is_some_and(|o| o.is_empty());
            let known = name.ends_with("_params") || READ_ONLY.contains(&name.as_str());
            if !known {
                return Err(AppError::InvalidParam(format!("unknown field '{name}'")));
            }
            if name.ends_with("_params") && !empty {
                return Err(AppError::InvalidParam(format!(
                    "{name}: only the cckm_synchronization operation is served here"
                )));
            }
        }
        Ok(())
    }

    fn check_operation(operation: Option<String>) -> Result<(), AppError> {
        match operation.as_deref() {
            None | Some(OPERATION) => Ok(()),
            Some(other) => Err(AppError::InvalidParam(format!(
                "operation '{other}' is not served here; only '{OPERATION}'"
            ))),
        }
    }

    pub fn validate_new(self, id: Uuid, now: Timestamp) -> Result<JobConfig, AppError> {
        self.check_others()?;
        let name =
            given(self.name).ok_or_else(|| AppError::InvalidParam("name is required".into()))?;
        super::kms::validate_name(&name)?;
        let operation = given(self.operation)
            .ok_or_else(|| AppError::InvalidParam("operation is required".into()))?;
        Self::check_operation(Some(operation))?;
        let run_at = given(self.run_at)
            .ok_or_else(|| AppError::InvalidParam("run_at is required".into()))?;
        scheduler_cron(&run_at)?;
        let params = self.cckm_synchronization_params.ok_or_else(|| {
            AppError::InvalidParam("cckm_synchronization_params is required".into())
        })?;
        let config = JobConfig {
            id,
            name,
            description: self.description.unwrap_or_default(),
            run_at,
            run_on: self.run_on.unwrap_or_default(),
            disabled: self.disabled.unwrap_or(false),
            start_date: date("start_date", self.start_date)?,
            end_date: date("end_date", self.end_date)?,
            params: params.apply(&SyncParams::default())?,
            created_at: now,
            updated_at: now,
        };
        check_dates(&config)?;
        Ok(config)
    }

    /// A copy of `current` with what the patch gives; empty strings and Go's zero dates change nothing.
    pub fn apply(self, current: &JobConfig, now: Timestamp) -> Result<JobConfig, AppError> {
        self.check_others()?;
        if let Some(name) = given(self.name)
            && name != current.name
        {
            return Err(AppError::InvalidParam("name cannot be changed".into()));
        }
        Self::check_operation(given(self.operation))?;
        let mut next = current.clone();
        if let Some(run_at) = given(self.run_at) {
            scheduler_cron(&run_at)?;
            next.run_at = run_at;
        }
        if let Some(description) = given(self.description) {
            next.description = description;
        }
        if let Some(run_on) = given(self.run_on) {
            next.run_on = run_on;
        }
        if let Some(disabled) = self.disabled {
            next.disabled = disabled;
        }
        patch_date(&mut next.start_date, "start_date", self.start_date)?;
        patch_date(&mut next.end_date, "end_date", self.end_date)?;
        if let Some(params) = self.cckm_synchronization_params {
            next.params = params.apply(&current.params)?;
        }
        check_dates(&next)?;
        next.updated_at = now;
        Ok(next)
    }
}

impl SyncParamsBody {
    /// `current` with what these params give; checked as a job request would be.
    fn apply(self, current: &SyncParams) -> Result<SyncParams, AppError> {
        if self.oci_vaults.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(AppError::InvalidParam(
                "cckm_synchronization_params.oci_vaults: only AWS is served here".into(),
            ));
        }
        let cloud_name = given(self.cloud_name).unwrap_or_else(|| {
            if current.cloud_name.is_empty() {
                "aws".into()
            } else {
                current.cloud_name.clone()
            }
        });
        if cloud_name != "aws" {
            return Err(AppError::InvalidParam(format!(
                "cckm_synchronization_params.cloud_name '{cloud_name}' is not served here; only 'aws'"
            )));
        }
        let params = SyncParams {
            cloud_name,
            kms: self.kms.unwrap_or_else(|| current.kms.clone()),
            regions: self.regions.unwrap_or_else(|| current.regions.clone()),
            synchronize_all: self.synchronize_all.unwrap_or(current.synchronize_all),
        };
        super::sync_request::SyncRequest::from_parts(
            params.kms.clone(),
            params.regions.clone(),
            Some(params.synchronize_all),
        )
        .map_err(|err| AppError::InvalidParam(format!("cckm_synchronization_params: {err}")))?;
        Ok(params)
    }
}

fn check_dates(config: &JobConfig) -> Result<(), AppError> {
    if let (Some(start), Some(end)) = (config.start_date, config.end_date)
        && end <= start
    {
        return Err(AppError::InvalidParam(
            "end_date must come after start_date".into(),
        ));
    }
    Ok(())
}

/// One field of a five-field cron: its name, bounds, and names for its values.
struct Field {
    name: &'static str,
    low: u32,
    high: u32,
    names: &'static [&'static str],
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        low: 0,
        high: 59,
        names: &[],
    },
    Field {
        name: "hour",
        low: 0,
        high: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        low: 1,
        high: 31,
        names: &[],
    },
    Field {
        name: "month",
        low: 1,
        high: 12,
        names: &MONTHS,
    },
    Field {
        name: "day of week",
        low: 0,
        high: 7,
        names: &DAYS,
    },
];

/// The EventBridge Scheduler expression of a five-field cron (`minute hour day-of-month month
/// day-of-week`; names case-insensitive; `*`, `/`, `,`, `-` and `?`). AWS counts weekdays 1 (Sunday) to 7
/// and needs `?` in one of the two day fields, so a cron that restricts both days is refused.
pub fn scheduler_cron(run_at: &str) -> Result<String, AppError> {
    let bad = |why: String| AppError::InvalidParam(format!("run_at '{run_at}': {why}"));
    let parts: Vec<&str> = run_at.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(bad(format!(
            "a cron of five fields (minute hour day-of-month month day-of-week), not {}",
            parts.len()
        )));
    }
    let mut converted = Vec::with_capacity(6);
    for (text, field) in parts.iter().zip(&FIELDS) {
        converted.push(convert_field(text, field).map_err(bad)?);
    }
    let any = |s: &str| s == "*" || s == "?";
    match (any(&converted[2]), any(&converted[4])) {
        (true, true) => {
            converted[2] = "*".into();
            converted[4] = "?".into();
        }
        (false, true) => converted[4] = "?".into(),
        (true, false) => converted[2] = "?".into(),
        (false, false) => {
            return Err(bad(
                "day of month and day of week cannot both be restricted (EventBridge Scheduler runs one)"
                    .into(),
            ));
        }
    }
    Ok(format!("cron({} *)", converted.join(" ")))
}

fn convert_field(text: &str, field: &Field) -> Result<String, String> {
    let upper = text.to_ascii_uppercase();
    if upper == "?" {
        return if field.name.starts_with("day") {
            Ok("?".into())
        } else {
            Err(format!(
                "'?' only goes in a day field, not in the {}",
                field.name
            ))
        };
    }
    let mut items = Vec::new();
    for item in upper.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("'{item}': the step of the {} is not a number", field.name)
                })?;
                (range, Some(step))
            }
            None => (item, None),
        };
        let range = if range == "*" {
            "*".to_string()
        } else {
            let bounds: Vec<&str> = range.split('-').collect();
            if bounds.is_empty() || bounds.len() > 2 {
                return Err(format!("'{item}' is not a value of the {}", field.name));
            }
            let values: Vec<String> = bounds
                .iter()
                .map(|b| value_of(b, field))
                .collect::<Result<_, _>>()?;
            values.join("-")
        };
        items.push(match step {
            Some(step) => format!("{range}/{step}"),
            None => range,
        });
    }
    Ok(items.join(","))
}

/// One value of a field, as EventBridge Scheduler reads it: numbers checked against the field's bounds,
/// weekday numbers moved from 0-7 (0 and 7: Sunday) to AWS's 1-7 (1: Sunday).
fn value_of(text: &str, field: &Field) -> Result<String, String> {
    if field.names.contains(&text) {
        return Ok(text.to_string());
    }
    let number: u32 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a value of the {}", field.name))?;
    if number < field.low || number > field.high {
        return Err(format!(
            "{number} is outside {}-{} for the {}",
            field.low, field.high, field.name
        ));
    }
    Ok(if field.name == "day of week" {
        (number % 7 + 1).to_string()
    } else {
        number.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn five_field_crons_become_scheduler_expressions() {
        for (cron, expected) in [
            ("0 2 * * *", "cron(0 2 * * ? *)"),
            ("*/15 * * * *", "cron(*/15 * * * ? *)"),
            ("30 1 * * sun", "cron(30 1 ? * SUN *)"),
            ("0 6 * * 1-5", "cron(0 6 ? * 2-6 *)"),
            ("0 0 1,15 jan,Jul ?", "cron(0 0 1,15 JAN,JUL ? *)"),
            ("5 4 * * 0,7", "cron(5 4 ? * 1,1 *)"),
            ("0 12 ? * MON-FRI", "cron(0 12 ? * MON-FRI *)"),
        ] {
            assert_eq!(scheduler_cron(cron).unwrap(), expected, "{cron}");
        }
    }

    #[test]
    fn bad_crons_are_refused_naming_run_at() {
        for cron in [
            "0 2 * *",
            "60 * * * *",
            "0 24 * * *",
            "0 0 0 * *",
            "0 0 * 13 *",
            "0 0 * * 8",
            "0 0 1 * 1",
            "? 0 * * *",
            "*/0 * * * *",
            "0 0 * * FUNDAY",
        ] {
            let err = scheduler_cron(cron).unwrap_err();
            assert!(err.to_string().starts_with("run_at"), "{cron}: {err}");
        }
    }

    /// Terraform's create body: every operation's params, null but the one in use, and Go's zero dates.
    fn terraform(name: &str, run_at: &str) -> Value {
        json!({"name": name, "description": "", "operation": "cckm_synchronization", "run_at": run_at,
               "run_on": "", "disabled": false, "start_date": "0001-01-01T00:00:00Z",
               "end_date": "0001-01-01T00:00:00Z", "database_backup_params": null,
               "cckm_key_rotation_params": null,
               "cckm_synchronization_params": {"cloud_name": "aws", "kms": ["prod"], "oci_vaults": null,
                                               "synchronize_all": false}})
    }

    #[test]
    fn terraforms_body_is_read_with_its_zero_values_as_unset() {
        let body: JobConfigBody =
            serde_json::from_value(terraform("nightly", "0 2 * * *")).unwrap();
        let config = body.validate_new(Uuid::nil(), chrono::Utc::now()).unwrap();
        assert_eq!(config.start_date, None);
        assert_eq!(config.params.kms, vec!["prod".to_string()]);
        assert!(!config.params.synchronize_all);
        // Terraform's update: name and operation empty, the cloud forced empty.
        let mut update = terraform("", "30 3 * * *");
        update["operation"] = json!("");
        update["cckm_synchronization_params"]["cloud_name"] = json!("");
        let body: JobConfigBody = serde_json::from_value(update).unwrap();
        let next = body.apply(&config, chrono::Utc::now()).unwrap();
        assert_eq!(
            (next.name.as_str(), next.run_at.as_str()),
            ("nightly", "30 3 * * *")
        );
        assert_eq!(next.params.cloud_name, "aws");
    }

    #[test]
    fn the_newest_terraform_clears_a_date_with_an_empty_string_and_leaves_an_absent_one() {
        let now = chrono::Utc::now();
        let mut dated = terraform("dated", "0 2 * * *");
        dated["start_date"] = json!("2030-01-01T00:00:00Z");
        dated["end_date"] = json!("2031-01-01T00:00:00Z");
        let body: JobConfigBody = serde_json::from_value(dated).unwrap();
        let config = body.validate_new(Uuid::nil(), now).unwrap();
        // resource_scheduler.go (3e9c295b) update: dates omitted when unchanged, "" when the plan drops one.
        let update = json!({"name": "", "run_at": "0 2 * * *", "start_date": "",
                            "cckm_synchronization_params": {"cloud_name": "", "kms": ["prod"],
                                                            "synchronize_all": false}});
        let body: JobConfigBody = serde_json::from_value(update).unwrap();
        let next = body.apply(&config, now).unwrap();
        assert_eq!(next.start_date, None);
        assert_eq!(next.end_date, config.end_date);
    }

    #[test]
    fn other_operations_and_clouds_are_refused() {
        let now = chrono::Utc::now();
        let mut other = terraform("x", "0 2 * * *");
        other["operation"] = json!("database_backup");
        let mut params = terraform("x", "0 2 * * *");
        params["database_backup_params"] = json!({"scope": "system"});
        let mut both = terraform("x", "0 2 * * *");
        both["cckm_synchronization_params"]["synchronize_all"] = json!(true);
        let mut unknown = terraform("x", "0 2 * * *");
        unknown["colour"] = json!("red");
        for bad in [other, params, both, unknown] {
            let body: JobConfigBody = serde_json::from_value(bad.clone()).unwrap();
            assert!(body.validate_new(Uuid::nil(), now).is_err(), "{bad}");
        }
    }
}
