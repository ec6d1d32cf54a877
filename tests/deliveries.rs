//! Two deliveries of one unit at once, as SQS delivers at least once and Lambda runs them on two instances:
//! one works the unit, the other finds it claimed and comes back later, so each key is read and counted
//! once and the unit's KMS rate is one delivery's. On both stores, in memory and DynamoDB on the emulator.

mod common;

use common::rig::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliveries_of_one_unit_at_once_work_it_one_at_a_time() {
    for rig in rigs(5, |_| {}).await {
        let stores = rig.stores;
        rig.put_keys(0..20);
        rig.source.slow_reads(Duration::from_millis(20));
        let (job, items) = rig.start().await;
        let (first, second) =
            tokio::join!(rig.deliver(&items, 1, 900), rig.deliver(&items, 1, 900));
        let mut failures = vec![
            first["batchItemFailures"].clone(),
            second["batchItemFailures"].clone(),
        ];
        failures.sort_by_key(|f| f.to_string());
        assert_eq!(
            failures,
            vec![json!([]), json!([{"itemIdentifier": "m0"}])],
            "{stores:?}: one worked, the other comes back"
        );
        assert_eq!(rig.source.reads(), 20, "{stores:?}: each key read once");
        rig.completed(job, &[("keys_synced", 20)]).await;
        // The copy that came back finds the unit ended.
        let later = rig.deliver(&items, 2, 900).await;
        assert_eq!(later["batchItemFailures"], json!([]), "{stores:?}");
        assert_eq!(rig.source.reads(), 20, "{stores:?}");
    }
}
