//! Key lists after real syncs, on both stores (in memory, and DynamoDB on the emulator through the real
//! SDK): a page reads about its size whatever the number of keys, through the index that holds the fewest
//! of the query's keys, and the totals that come from the kept counts follow deletes and refreshes.

mod common;

use cckm_aws_sync::adapters::counting::CountingKeyStore;
use common::rig::*;
use common::*;
use serde_json::Value;
use std::sync::Arc;

/// One rig per store, its key store counted.
async fn counted_rigs() -> Vec<(Rig, Arc<CountingKeyStore>)> {
    let mut rigs = Vec::new();
    for stores in [Stores::Memory, Stores::DynamoDb] {
        let counting: Arc<std::sync::Mutex<Option<Arc<CountingKeyStore>>>> = Arc::default();
        let slot = counting.clone();
        let rig = Rig::new(stores, 100, &move |app: &mut cckm_aws_sync::app::App| {
            let counted = Arc::new(CountingKeyStore::new(Some(app.keys.clone())));
            app.keys = counted.clone();
            *slot.lock().unwrap() = Some(counted);
        })
        .await;
        let counted = counting.lock().unwrap().take().expect("tuned");
        rigs.push((rig, counted));
    }
    rigs
}

async fn page(rig: &Rig, query: &str) -> Value {
    let (status, page) = request(
        &rig.entry,
        "GET",
        &format!("/v1/cckm/aws/keys?{query}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{query}: {page}");
    page
}

/// Items the store read for one page of `query`, and the page.
async fn priced(rig: &Rig, counted: &CountingKeyStore, query: &str) -> (u64, Value) {
    counted.take_read();
    let page = page(rig, query).await;
    (counted.take_read(), page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_reads_about_its_size_whatever_the_number_of_keys() {
    for (rig, counted) in counted_rigs().await {
        let stores = rig.stores;
        let mut costs = Vec::new();
        for keys in [40, 400] {
            rig.put_keys(0..keys);
            rig.run_job().await;
            for query in [
                "limit=5",
                "limit=5&keystate=Enabled",
                "limit=5&kms=demo",
                "limit=5&gone=false",
            ] {
                let (read, page) = priced(&rig, &counted, query).await;
                assert_eq!(
                    page["total"].as_u64(),
                    Some(keys as u64),
                    "{stores:?} {query}"
                );
                assert_eq!(page["resources"].as_array().map(Vec::len), Some(5));
                costs.push((keys, query, read));
            }
        }
        // A key id names one key: its index entry and its record.
        let one = &page(&rig, "limit=1").await["resources"][0];
        let (read, found) = priced(
            &rig,
            &counted,
            &format!(
                "keyid={}&region={}",
                one["aws_param"]["KeyID"].as_str().unwrap(),
                one["region"].as_str().unwrap()
            ),
        )
        .await;
        assert_eq!(found["total"], 1, "{stores:?}");
        assert_eq!(found["resources"][0]["id"], one["id"]);
        assert!(read <= 2, "{stores:?}: keyid read {read} items");
        // An empty alias or key id names no key (DynamoDB refuses an empty key value: never asked).
        for query in [
            "alias=",
            "keyid=",
            "alias=&alias=%F0%9F%94%91",
            "keyid=&region=us-east-1",
            // The same record named twice is read once (DynamoDB refuses a BatchGetItem with duplicates).
            "arn=x&arn=x&arn=",
            "id=00000000-0000-0000-0000-000000000000&id=00000000-0000-0000-0000-000000000000",
        ] {
            assert_eq!(page(&rig, query).await["total"], 0, "{stores:?} {query}");
        }
        for (keys, query, read) in &costs {
            // 5 records, and at most 2 index entries from each of 8 shards (or 1 unit partition) and a
            // refill: the same at 40 keys as at 400.
            assert!(
                *read <= 5 + 2 * 8 + 16,
                "{stores:?}: {query} at {keys} keys read {read} items"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_follow_deletes_and_refreshes() {
    for (rig, _) in counted_rigs().await {
        let stores = rig.stores;
        rig.put_keys(0..30);
        rig.run_job().await;
        let total = |page: &Value| page["total"].as_u64();
        assert_eq!(total(&page(&rig, "limit=1").await), Some(30));
        let first = page(&rig, "limit=2").await;
        let gone_id = first["resources"][0]["id"].as_str().unwrap().to_string();
        let (status, _) = request(
            &rig.entry,
            "DELETE",
            &format!("/v1/cckm/aws/keys/{gone_id}"),
            None,
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(total(&page(&rig, "limit=1").await), Some(29), "{stores:?}");
        // AWS disables a key; a refresh reads it again, and the counts move it.
        let refreshed = first["resources"][1].clone();
        let number: usize = refreshed["aws_param"]["KeyID"].as_str().unwrap()[..8]
            .parse()
            .unwrap();
        let mut disabled = key(number);
        disabled.aws_param.key_state = Some("Disabled".into());
        disabled.aws_param.enabled = Some(false);
        rig.source.put_key(ACCOUNT, REGION, disabled);
        let (status, answer) = request(
            &rig.entry,
            "POST",
            &format!(
                "/v1/cckm/aws/keys/{}/refresh",
                refreshed["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            total(&page(&rig, "keystate=Disabled").await),
            Some(1),
            "{stores:?}"
        );
        assert_eq!(
            total(&page(&rig, "keystate=Enabled").await),
            Some(28),
            "{stores:?}"
        );
        assert_eq!(
            total(&page(&rig, "kms=demo&keystate=Enabled").await),
            Some(28)
        );
    }
}
