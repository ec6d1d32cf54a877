//! Named objects (AWS connections, scheduler job configurations) in the KMS table, beside the KMS
//! resources: the object's item (`<prefix>#<id>`, the object as JSON) and its name guard
//! (`<prefix>-name#<name>`) are written and removed together. No secret is ever in either: a connection
//! names its Secrets Manager secret only.

use super::guarded::GuardedItems;
use super::{Item, s};
use crate::domain::AppError;
use crate::ports::{Named, NamedStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::marker::PhantomData;
use uuid::Uuid;

pub struct DynamoNamedStore<T> {
    items: GuardedItems,
    kind: PhantomData<fn() -> T>,
}

impl<T: Named> DynamoNamedStore<T> {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoNamedStore {
            items: GuardedItems {
                client,
                table: table.to_string(),
                kind: T::KIND,
            },
            kind: PhantomData,
        }
    }

    fn item_id(id: Uuid) -> String {
        format!("{}#{id}", T::ITEM_PREFIX)
    }

    fn guard_id(name: &str) -> String {
        format!("{}-name#{name}", T::ITEM_PREFIX)
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

#[async_trait]
impl<T: Named> NamedStore<T> for DynamoNamedStore<T> {
    async fn insert(&self, item: &T) -> Result<(), AppError> {
        self.items
            .insert(
                Self::to_item(item)?,
                item.name(),
                Self::guard_id(item.name()),
            )
            .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<T>, AppError> {
        self.items
            .get(&Self::item_id(id))
            .await?
            .as_ref()
            .map(Self::from_item)
            .transpose()
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<T>, AppError> {
        let Some(item_id) = self.items.guarded_by(&Self::guard_id(name)).await? else {
            return Ok(None);
        };
        self.items
            .get(&item_id)
            .await?
            .as_ref()
            .map(Self::from_item)
            .transpose()
    }

    async fn list(&self) -> Result<Vec<T>, AppError> {
        let prefix = s(format!("{}#", T::ITEM_PREFIX));
        let items = self
            .items
            .scan("begins_with(id, :prefix)", &[(":prefix", prefix)])
            .await?;
        items.iter().map(Self::from_item).collect()
    }

    async fn replace(&self, item: &T) -> Result<(), AppError> {
        self.items.replace(Self::to_item(item)?, item.id()).await
    }

    async fn remove(&self, item: &T) -> Result<(), AppError> {
        self.items
            .remove(Self::item_id(item.id()), Self::guard_id(item.name()))
            .await
    }
}
