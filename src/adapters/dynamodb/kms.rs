//! KMS resources in DynamoDB: the resource item (`KmsItem`, its stored names declared here, apart from
//! the API's) and its name guard are written and removed together.

use super::{
    Item, all_pages, condition_failed, from_item, s, store_error, to_item,
    transaction_condition_failed,
};
use crate::domain::AppError;
use crate::domain::kms::{ConnectionLink, KmsResource, OrgStatus};
use crate::domain::time::{Timestamp, rfc3339};
use crate::ports::KmsRegistry;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A KMS resource as the KMS table stores it.
#[derive(Serialize, Deserialize)]
struct KmsItem {
    id: Uuid,
    name: String,
    account_id: String,
    regions: Vec<String>,
    assume_role_arn: Option<String>,
    assume_role_external_id: Option<String>,
    #[serde(rename = "createdAt", with = "rfc3339")]
    created_at: Timestamp,
    #[serde(rename = "updatedAt", with = "rfc3339")]
    updated_at: Timestamp,
    #[serde(default)]
    auto_added: bool,
    #[serde(default)]
    org_status: Option<OrgStatus>,
    #[serde(default)]
    connection: Option<ConnectionLink>,
}

impl From<&KmsResource> for KmsItem {
    fn from(kms: &KmsResource) -> KmsItem {
        KmsItem {
            id: kms.id,
            name: kms.name.clone(),
            account_id: kms.account_id.clone(),
            regions: kms.regions.clone(),
            assume_role_arn: kms.assume_role_arn.clone(),
            assume_role_external_id: kms.assume_role_external_id.clone(),
            created_at: kms.created_at,
            updated_at: kms.updated_at,
            auto_added: kms.auto_added,
            org_status: kms.org_status,
            connection: kms.connection.clone(),
        }
    }
}

impl From<KmsItem> for KmsResource {
    fn from(item: KmsItem) -> KmsResource {
        KmsResource {
            id: item.id,
            name: item.name,
            account_id: item.account_id,
            regions: item.regions,
            assume_role_arn: item.assume_role_arn,
            assume_role_external_id: item.assume_role_external_id,
            created_at: item.created_at,
            updated_at: item.updated_at,
            auto_added: item.auto_added,
            org_status: item.org_status,
            connection: item.connection,
        }
    }
}

fn to_kms_item(kms: &KmsResource) -> Result<Item, AppError> {
    to_item(&KmsItem::from(kms))
}

fn from_kms_item(item: Item) -> Result<KmsResource, AppError> {
    from_item::<KmsItem>(item).map(KmsResource::from)
}

pub struct DynamoKmsRegistry {
    client: Client,
    table: String,
}

impl DynamoKmsRegistry {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoKmsRegistry {
            client,
            table: table.to_string(),
        }
    }

    fn guard_id(name: &str) -> String {
        format!("name#{name}")
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
            .map_err(|e| store_error("get kms", e))?;
        Ok(output.item)
    }
}

fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, AppError> {
    built.map_err(|e| AppError::internal("building a request", e))
}

#[async_trait]
impl KmsRegistry for DynamoKmsRegistry {
    async fn insert(&self, kms: &KmsResource) -> Result<(), AppError> {
        let guard = Put::builder()
            .table_name(&self.table)
            .item("id", s(Self::guard_id(&kms.name)))
            .item("kms_id", s(kms.id.to_string()))
            .condition_expression("attribute_not_exists(id)")
            .build();
        let resource = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_kms_item(kms)?))
            .condition_expression("attribute_not_exists(id)")
            .build();
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(build(guard)?).build())
            .transact_items(TransactWriteItem::builder().put(build(resource)?).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if transaction_condition_failed(&err) => Err(AppError::Conflict(format!(
                "a KMS resource named '{}' exists already",
                kms.name
            ))),
            Err(err) => Err(store_error("insert kms", err)),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<KmsResource>, AppError> {
        self.get_item(&id.to_string())
            .await?
            .map(from_kms_item)
            .transpose()
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<KmsResource>, AppError> {
        let Some(guard) = self.get_item(&Self::guard_id(name)).await? else {
            return Ok(None);
        };
        match guard
            .get("kms_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|id| Uuid::parse_str(id).ok())
        {
            Some(id) => self.get(id).await,
            None => Err(AppError::Internal(format!(
                "name guard of '{name}' names no resource"
            ))),
        }
    }

    async fn list(&self) -> Result<Vec<KmsResource>, AppError> {
        let items = all_pages(|start| async move {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("attribute_exists(account_id)")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("scan kms", e))?;
            Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
        })
        .await?;
        items.into_iter().map(from_kms_item).collect()
    }

    async fn replace(&self, kms: &KmsResource) -> Result<(), AppError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_kms_item(kms)?))
            .condition_expression("attribute_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Err(AppError::NotFound(format!(
                "KMS resource '{}' not found",
                kms.id
            ))),
            Err(err) => Err(store_error("replace kms", err)),
        }
    }

    async fn remove(&self, kms: &KmsResource) -> Result<(), AppError> {
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
                    .delete(delete(kms.id.to_string())?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .delete(delete(Self::guard_id(&kms.name))?)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| store_error("remove kms", e))?;
        Ok(())
    }
}
