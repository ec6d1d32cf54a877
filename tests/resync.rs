//! A resync writes only the keys that changed in AWS, and still finds what is gone (issue 7: cost): on
//! both stores, in memory and DynamoDB on the emulator.

mod common;

use common::rig::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_writes_only_what_changed_and_still_flags_what_is_gone() {
    for rig in rigs(3, |_| {}).await {
        let stores = rig.stores;
        rig.put_keys(0..7);
        rig.run_job().await;
        let before = rig.keys().await;
        let unchanged = rig.run_job().await;
        rig.completed(unchanged, &[("keys_synced", 7), ("keys_gone", 0)])
            .await;
        assert_eq!(
            rig.keys().await,
            before,
            "{stores:?}: no key item written again"
        );
        // One key changes in AWS and one is deleted: only the changed one is written, the other flagged.
        let mut changed = key(1);
        changed.aws_param.description = Some("rotated by hand".into());
        rig.source.put_key(ACCOUNT, REGION, changed);
        rig.source
            .remove_key(ACCOUNT, REGION, &key(4).aws_param.key_id);
        let third = rig.run_job().await;
        rig.completed(third, &[("keys_synced", 6), ("keys_gone", 1)])
            .await;
        let after = rig.keys().await;
        for (n, key) in &after {
            match n {
                1 => {
                    assert_eq!(key.last_seen_job, Some(third), "{stores:?}");
                    assert_eq!(
                        key.aws_param.description.as_deref(),
                        Some("rotated by hand")
                    );
                    assert_eq!(key.created_at, before[n].created_at, "{stores:?}");
                }
                4 => assert!(key.gone, "{stores:?}"),
                _ => assert_eq!(key, &before[n], "{stores:?}: key {n} not written"),
            }
        }
    }
}
