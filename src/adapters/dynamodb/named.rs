//! Named objects (AWS connections, scheduler job configurations) in the KMS table, beside the KMS
//! resources: the object's item (`<prefix>#<id>`, the object as JSON) and its name guard
//! (`<prefix>-name#<name>`) are written and removed together. No secret is ever in either: a connection
//! names its Secrets Manager secret only.

use super::{Item, all_pages, condition_failed, s, store_error, transaction_condition_failed};
use crate::domain::AppError;
use crate::ports::{Named, NamedStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use std::marker::PhantomData;
use uuid::Uuid;

pub struct DynamoNamedStore<T> {
    client: Client,
    table: String,
    kind: PhantomData<fn() -> T>,
}

impl<T: Named> DynamoNamedStore<T> {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoNamedStore {
            client,
            table: table.to_string(),
            kind: PhantomData,
        }
    }

    fn item_id(id: Uuid) -> String {
        format!("{}#{id}", T::ITEM_PREFIX)
    }

    fn guard_id(name: &str) -> String {
        format!("{}-name#{name}", T::ITEM_PREFIX)
    }

    async fn get_item(&self, id: &str) -> Result<Option<Item>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("get named item", e))?;
        Ok(output.item)
    }

    fn to_item(item: &T) -> Result<Item, AppError> {
        let body =
            serde_json::to_string(item).map_err(|e| AppError::internal("encoding an item", e))?;
        Ok(Item::from([
            ("id".to_string(), s(Self::item_id(item.id()))),
            ("body".to_string(), AttributeValue::S(body)),
        ]))
    }

    fn from_item(item: &Item) -> Result<T, AppError> {
        let body = item
            .get("body")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| AppError::Internal(format!("a {} item without its body", T::KIND)))?;
        serde_json::from_str(body).map_err(|e| AppError::internal("decoding an item", e))
    }
}

fn build<B, E: std::fmt::Display>(built: Result<B, E>) -> Result<B, AppError> {
    built.map_err(|e| AppError::internal("building a request", e))
}

#[async_trait]
impl<T: Named> NamedStore<T> for DynamoNamedStore<T> {
    async fn insert(&self, item: &T) -> Result<(), AppError> {
        let guard = Put::builder()
            .table_name(&self.table)
            .item("id", s(Self::guard_id(item.name())))
            .item("named_id", s(item.id().to_string()))
            .condition_expression("attribute_not_exists(id)")
            .build();
        let body = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::to_item(item)?))
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
                "an {} named '{}' exists already",
                T::KIND,
                item.name()
            ))),
            Err(err) => Err(store_error("insert named item", err)),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<T>, AppError> {
        self.get_item(&Self::item_id(id))
            .await?
            .as_ref()
            .map(Self::from_item)
            .transpose()
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<T>, AppError> {
        let Some(guard) = self.get_item(&Self::guard_id(name)).await? else {
            return Ok(None);
        };
        match guard
            .get("named_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|id| Uuid::parse_str(id).ok())
        {
            Some(id) => self.get(id).await,
            None => Err(AppError::Internal(format!(
                "name guard of {} '{name}' names nothing",
                T::KIND
            ))),
        }
    }

    async fn list(&self) -> Result<Vec<T>, AppError> {
        let prefix = format!("{}#", T::ITEM_PREFIX);
        let prefix = &prefix;
        let items = all_pages(|start| async move {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(id, :prefix)")
                .expression_attribute_values(":prefix", s(prefix))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("scan named items", e))?;
            Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
        })
        .await?;
        items.iter().map(Self::from_item).collect()
    }

    async fn replace(&self, item: &T) -> Result<(), AppError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::to_item(item)?))
            .condition_expression("attribute_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Err(AppError::NotFound(format!(
                "{} '{}' not found",
                T::KIND,
                item.id()
            ))),
            Err(err) => Err(store_error("replace named item", err)),
        }
    }

    async fn remove(&self, item: &T) -> Result<(), AppError> {
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
                    .delete(delete(Self::item_id(item.id()))?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .delete(delete(Self::guard_id(item.name()))?)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| store_error("remove named item", e))?;
        Ok(())
    }
}
