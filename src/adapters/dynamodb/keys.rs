//! Synced keys in DynamoDB: batch writes, the `by_unit` index for one account/region, gone flags.

use super::{Item, batch_put, condition_failed, for_each_page, from_item, s, store_error, to_item};
use crate::domain::AppError;
use crate::domain::key::KeyRecord;
use crate::domain::time::{Timestamp, format};
use crate::ports::{KeyStore, StoredKeyStub};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;
use uuid::Uuid;

const UNIT_INDEX: &str = "by_unit";
/// Gone flags written at once.
const GONE_CONCURRENCY: usize = 8;

#[derive(Deserialize)]
struct StubItem {
    id: Uuid,
    arn: String,
    #[serde(rename = "createdAt", with = "crate::domain::time::rfc3339")]
    created_at: Timestamp,
    gone: bool,
    #[serde(default)]
    last_seen_job: Option<Uuid>,
}

pub struct DynamoKeyStore {
    client: Client,
    table: String,
}

impl DynamoKeyStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoKeyStore {
            client,
            table: table.to_string(),
        }
    }

    /// Every item of one unit from the index; `projection` limits the attributes read back.
    /// Every item of one unit from the index, a page at a time; `projection` limits the attributes read.
    async fn query_unit(
        &self,
        unit_key: &str,
        projection: Option<&str>,
        visit: impl FnMut(Vec<Item>) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        let page = |start| async move {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(UNIT_INDEX)
                .key_condition_expression("#unit = :unit")
                .expression_attribute_names("#unit", "unit")
                .expression_attribute_values(":unit", s(unit_key))
                .set_exclusive_start_key(start);
            if let Some(projection) = projection {
                // `#unit` is already named; the projection's own names are plain attributes.
                query = query.projection_expression(projection);
            }
            let output = query
                .send()
                .await
                .map_err(|e| store_error("query keys of a unit", e))?;
            Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
        };
        for_each_page(page, visit).await
    }
}

#[async_trait]
impl KeyStore for DynamoKeyStore {
    async fn put_all(&self, keys: &[KeyRecord]) -> Result<(), AppError> {
        let items = keys.iter().map(to_item).collect::<Result<Vec<_>, _>>()?;
        batch_put(&self.client, &self.table, items).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<KeyRecord>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id.to_string()))
            .send()
            .await
            .map_err(|e| store_error("get key", e))?;
        output.item.map(from_item).transpose()
    }

    async fn delete(&self, id: Uuid) -> Result<bool, AppError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(id.to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("delete key", e))?;
        Ok(output.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn unit_stubs(&self, unit_key: &str) -> Result<Vec<StoredKeyStub>, AppError> {
        let mut items = Vec::new();
        self.query_unit(
            unit_key,
            Some("id, arn, createdAt, gone, last_seen_job"),
            |batch| {
                items.extend(batch);
                Ok(())
            },
        )
        .await?;
        items
            .into_iter()
            .map(|item| {
                let stub: StubItem = from_item(item)?;
                Ok(StoredKeyStub {
                    id: stub.id,
                    arn: stub.arn,
                    created_at: stub.created_at,
                    gone: stub.gone,
                    last_seen_job: stub.last_seen_job,
                })
            })
            .collect()
    }

    async fn mark_gone(&self, ids: &[Uuid], job_id: Uuid, now: Timestamp) -> Result<u64, AppError> {
        let stamp = format(&now);
        let job = job_id.to_string();
        let flags: Vec<bool> = stream::iter(ids.iter().copied())
            .map(|id| {
                let (stamp, job) = (stamp.clone(), job.clone());
                async move {
                    let result = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .key("id", s(id.to_string()))
                        .update_expression("SET gone = :yes, updatedAt = :now")
                        .condition_expression(
                            "attribute_exists(id) AND (attribute_not_exists(last_seen_job) OR last_seen_job <> :job)",
                        )
                        .expression_attribute_values(":yes", AttributeValue::Bool(true))
                        .expression_attribute_values(":now", s(stamp))
                        .expression_attribute_values(":job", s(job))
                        .send()
                        .await;
                    match result {
                        Ok(_) => Ok(true),
                        // Deleted by a user, or seen by this very job after all: nothing to flag.
                        Err(err) if condition_failed(&err) => Ok(false),
                        Err(err) => Err(store_error("flag key gone", err)),
                    }
                }
            })
            .buffer_unordered(GONE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(flags.into_iter().filter(|flagged| *flagged).count() as u64)
    }

    async fn scan(
        &self,
        units: Option<&[String]>,
        visit: &mut (dyn FnMut(KeyRecord) + Send),
    ) -> Result<(), AppError> {
        let mut decode = |batch: Vec<Item>| {
            for item in batch {
                visit(from_item(item)?);
            }
            Ok(())
        };
        match units {
            Some(units) => {
                for unit in units {
                    self.query_unit(unit, None, &mut decode).await?;
                }
                Ok(())
            }
            None => {
                let page = |start| async move {
                    let output = self
                        .client
                        .scan()
                        .table_name(&self.table)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| store_error("scan keys", e))?;
                    Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
                };
                for_each_page(page, decode).await
            }
        }
    }
}
