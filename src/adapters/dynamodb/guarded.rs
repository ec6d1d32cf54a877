//! Items whose name must stay unique in the KMS table: each written with a guard item (`<guard id>`,
//! pointing back at it), and both removed together, in one transaction each time. KMS resources, AWS
//! connections and scheduler job configurations are stored this way.

use super::{Item, all_pages, condition_failed, s, store_error, transaction_condition_failed};
use crate::domain::AppError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use uuid::Uuid;

/// The attribute of a guard item that names the item it guards.
const GUARDS: &str = "guards";

pub(super) struct GuardedItems {
    pub client: Client,
    pub table: String,
    /// What the items are, for messages ("KMS resource").
    pub kind: &'static str,
}

fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, AppError> {
    built.map_err(|e| AppError::internal("building a request", e))
}

impl GuardedItems {
    /// One item by its key, read consistently.
    pub async fn get(&self, id: &str) -> Result<Option<Item>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("get item", e))?;
        Ok(output.item)
    }

    /// Writes `item` and its name guard together; `Conflict` when the name (or the item) exists.
    pub async fn insert(&self, item: Item, name: &str, guard_id: String) -> Result<(), AppError> {
        let item_id = item
            .get("id")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let guard = Put::builder()
            .table_name(&self.table)
            .item("id", s(guard_id))
            .item(GUARDS, s(item_id))
            .condition_expression("attribute_not_exists(id)")
            .build();
        let body = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .build();
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(build(guard)?).build())
            .transact_items(TransactWriteItem::builder().put(build(body)?).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if transaction_condition_failed(&err) => Err(AppError::Conflict(format!(
                "a {} named '{name}' exists already",
                self.kind
            ))),
            Err(err) => Err(store_error("insert item", err)),
        }
    }

    /// The key of the item a name guard points at; None when no item has the name.
    pub async fn guarded_by(&self, guard_id: &str) -> Result<Option<String>, AppError> {
        let Some(guard) = self.get(guard_id).await? else {
            return Ok(None);
        };
        guard
            .get(GUARDS)
            .or_else(|| guard.get("kms_id"))
            .and_then(|v| v.as_s().ok())
            .cloned()
            .map(Some)
            .ok_or_else(|| AppError::Internal(format!("name guard '{guard_id}' guards nothing")))
    }

    /// Replaces an item that exists; `NotFound` naming `id` otherwise.
    pub async fn replace(&self, item: Item, id: Uuid) -> Result<(), AppError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Err(AppError::NotFound(format!(
                "{} '{id}' not found",
                self.kind
            ))),
            Err(err) => Err(store_error("replace item", err)),
        }
    }

    /// Replaces an item only if its `updatedAt` is still `seen` (what its writer read): false when another
    /// writer changed it since, or it is gone.
    pub async fn replace_seen(&self, item: Item, seen: &str) -> Result<bool, AppError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(id) AND #updated = :seen")
            .expression_attribute_names("#updated", "updatedAt")
            .expression_attribute_values(":seen", s(seen.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(store_error("replace item", err)),
        }
    }

    /// Removes an item and its name guard together.
    pub async fn remove(&self, item_id: String, guard_id: String) -> Result<(), AppError> {
        let delete = |id: String| {
            build(
                Delete::builder()
                    .table_name(&self.table)
                    .key("id", s(id))
                    .build(),
            )
        };
        self.client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .delete(delete(item_id)?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .delete(delete(guard_id)?)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| store_error("remove item", e))?;
        Ok(())
    }

    /// Every item the filter keeps, all pages.
    pub async fn scan(
        &self,
        filter: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Vec<Item>, AppError> {
        all_pages(|start| async move {
            let mut scan = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(filter)
                .set_exclusive_start_key(start);
            for (name, value) in values {
                scan = scan.expression_attribute_values(*name, value.clone());
            }
            let output = scan
                .send()
                .await
                .map_err(|e| store_error("scan items", e))?;
            Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
        })
        .await
    }
}
