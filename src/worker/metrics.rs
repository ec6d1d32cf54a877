//! What one delivery of a unit did, as a CloudWatch Embedded Metric Format line on stdout (CloudWatch turns
//! it into metrics, with no PutMetricData call): keys, duration, the achieved rate against the allowed
//! one, and calls and throttles per KMS operation. The account and region are properties, not dimensions,
//! so that thousands of units do not make thousands of metrics.

use crate::ports::SourceReport;
use serde_json::{Map, Value, json};
use std::time::Duration;
use uuid::Uuid;

const NAMESPACE: &str = "CckmAwsSync";

pub struct Delivered<'a> {
    pub job_id: Uuid,
    pub unit_key: &'a str,
    pub keys: u64,
    /// Keys written to the store: the others had not changed.
    pub written: u64,
    pub elapsed: Duration,
    pub outcome: &'a str,
    pub report: SourceReport,
}

/// The EMF document of one delivery.
pub fn document(delivered: &Delivered<'_>, timestamp_ms: i64) -> Value {
    let seconds = delivered.elapsed.as_secs_f64().max(1e-6);
    let rate = delivered.keys as f64 / seconds;
    let allowed = delivered.report.allowed_keys_per_second;
    let mut values = Map::new();
    let mut metric = |name: String, unit: &str, value: Value| {
        values.insert(name.clone(), value);
        json!({"Name": name, "Unit": unit})
    };
    let mut metrics = vec![
        metric("Keys".into(), "Count", json!(delivered.keys)),
        metric("KeysWritten".into(), "Count", json!(delivered.written)),
        metric(
            "DurationMs".into(),
            "Milliseconds",
            json!(delivered.elapsed.as_millis() as u64),
        ),
        metric("KeysPerSecond".into(), "Count/Second", json!(rate)),
        metric(
            "AllowedKeysPerSecond".into(),
            "Count/Second",
            json!(allowed),
        ),
        metric("AchievedOfAllowed".into(), "None", json!(rate / allowed)),
    ];
    for (operation, calls, throttles) in &delivered.report.operations {
        metrics.push(metric(format!("Calls.{operation}"), "Count", json!(calls)));
        metrics.push(metric(
            format!("Throttles.{operation}"),
            "Count",
            json!(throttles),
        ));
    }
    values.insert(
        "_aws".into(),
        json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": [
            {"Namespace": NAMESPACE, "Dimensions": [[]], "Metrics": metrics}
        ]}),
    );
    values.insert("job_id".into(), json!(delivered.job_id));
    values.insert("unit".into(), json!(delivered.unit_key));
    values.insert("outcome".into(), json!(delivered.outcome));
    Value::Object(values)
}

/// Prints the delivery's metrics: one line, as EMF wants it (not inside a tracing event).
pub fn emit(delivered: &Delivered<'_>) {
    println!(
        "{}",
        document(delivered, chrono::Utc::now().timestamp_millis())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_of_emf_with_every_metric_declared_and_valued() {
        let delivered = Delivered {
            job_id: Uuid::nil(),
            unit_key: "111122223333/us-east-1",
            keys: 1000,
            written: 10,
            elapsed: Duration::from_secs(2),
            outcome: "done",
            report: SourceReport {
                operations: vec![("DescribeKey", 1010, 10)],
                allowed_keys_per_second: 500.0,
            },
        };
        let doc = document(&delivered, 1_700_000_000_000);
        let declared = &doc["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        for metric in declared.as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc.get(name).is_some(), "{name} has no value");
        }
        assert_eq!(doc["KeysPerSecond"], 500.0);
        assert_eq!(doc["AchievedOfAllowed"], 1.0);
        assert_eq!(doc["Throttles.DescribeKey"], 10);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert!(!doc.to_string().contains('\n'));
    }
}
