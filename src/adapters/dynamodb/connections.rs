//! AWS connections in the KMS table, beside the KMS resources: the connection item (`connection#<id>`, the
//! connection as JSON) and its name guard (`connection-name#<name>`) are written and removed together. No
//! secret is ever in either: the connection names its Secrets Manager secret only.

use super::{Item, all_pages, condition_failed, s, store_error, transaction_condition_failed};
use crate::domain::AppError;
use crate::domain::connection::AwsConnection;
use crate::ports::ConnectionStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use uuid::Uuid;

const ITEM_PREFIX: &str = "connection#";
const GUARD_PREFIX: &str = "connection-name#";

pub struct DynamoConnectionStore {
    client: Client,
    table: String,
}

impl DynamoConnectionStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoConnectionStore {
            client,
            table: table.to_string(),
        }
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
            .map_err(|e| store_error("get connection", e))?;
        Ok(output.item)
    }
}

fn to_item(connection: &AwsConnection) -> Result<Item, AppError> {
    let body = serde_json::to_string(connection)
        .map_err(|e| AppError::internal("encoding a connection", e))?;
    Ok(Item::from([
        (
            "id".to_string(),
            s(format!("{ITEM_PREFIX}{}", connection.id)),
        ),
        ("connection".to_string(), AttributeValue::S(body)),
    ]))
}

fn from_item(item: &Item) -> Result<AwsConnection, AppError> {
    let body = item
        .get("connection")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| AppError::Internal("a connection item without its connection".into()))?;
    serde_json::from_str(body).map_err(|e| AppError::internal("decoding a connection", e))
}

fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, AppError> {
    built.map_err(|e| AppError::internal("building a request", e))
}

#[async_trait]
impl ConnectionStore for DynamoConnectionStore {
    async fn insert(&self, connection: &AwsConnection) -> Result<(), AppError> {
        let guard = Put::builder()
            .table_name(&self.table)
            .item("id", s(format!("{GUARD_PREFIX}{}", connection.name)))
            .item("connection_id", s(connection.id.to_string()))
            .condition_expression("attribute_not_exists(id)")
            .build();
        let item = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(connection)?))
            .condition_expression("attribute_not_exists(id)")
            .build();
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(build(guard)?).build())
            .transact_items(TransactWriteItem::builder().put(build(item)?).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if transaction_condition_failed(&err) => Err(AppError::Conflict(format!(
                "an AWS connection named '{}' exists already",
                connection.name
            ))),
            Err(err) => Err(store_error("insert connection", err)),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<AwsConnection>, AppError> {
        self.get_item(&format!("{ITEM_PREFIX}{id}"))
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<AwsConnection>, AppError> {
        let Some(guard) = self.get_item(&format!("{GUARD_PREFIX}{name}")).await? else {
            return Ok(None);
        };
        match guard
            .get("connection_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|id| Uuid::parse_str(id).ok())
        {
            Some(id) => self.get(id).await,
            None => Err(AppError::Internal(format!(
                "name guard of connection '{name}' names no connection"
            ))),
        }
    }

    async fn list(&self) -> Result<Vec<AwsConnection>, AppError> {
        let items = all_pages(|start| async move {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(id, :prefix)")
                .expression_attribute_values(":prefix", s(ITEM_PREFIX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("scan connections", e))?;
            Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
        })
        .await?;
        items.iter().map(from_item).collect()
    }

    async fn replace(&self, connection: &AwsConnection) -> Result<(), AppError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(connection)?))
            .condition_expression("attribute_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Err(AppError::NotFound(format!(
                "AWS connection '{}' not found",
                connection.id
            ))),
            Err(err) => Err(store_error("replace connection", err)),
        }
    }

    async fn remove(&self, connection: &AwsConnection) -> Result<(), AppError> {
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
                    .delete(delete(format!("{ITEM_PREFIX}{}", connection.id))?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .delete(delete(format!("{GUARD_PREFIX}{}", connection.name))?)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| store_error("remove connection", e))?;
        Ok(())
    }
}
