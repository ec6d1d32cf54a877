//! KMS resources in DynamoDB: the resource item (`KmsItem`, its stored names declared here, apart from
//! the API's) and its name guard are written and removed together.

use super::guarded::GuardedItems;
use super::{Item, from_item, to_item};
use crate::domain::AppError;
use crate::domain::acl::AclEntry;
use crate::domain::kms::{ConnectionLink, KmsResource, OrgStatus};
use crate::domain::time::{Timestamp, rfc3339};
use crate::ports::KmsRegistry;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
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
    #[serde(default)]
    acls: Vec<AclEntry>,
    #[serde(default)]
    archived: bool,
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
            acls: kms.acls.clone(),
            archived: kms.archived,
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
            acls: item.acls,
            archived: item.archived,
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
    items: GuardedItems,
}

impl DynamoKmsRegistry {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoKmsRegistry {
            items: GuardedItems {
                client,
                table: table.to_string(),
                kind: "KMS resource",
            },
        }
    }

    fn guard_id(name: &str) -> String {
        format!("name#{name}")
    }
}

#[async_trait]
impl KmsRegistry for DynamoKmsRegistry {
    async fn insert(&self, kms: &KmsResource) -> Result<(), AppError> {
        self.items
            .insert(to_kms_item(kms)?, &kms.name, Self::guard_id(&kms.name))
            .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<KmsResource>, AppError> {
        self.items
            .get(&id.to_string())
            .await?
            .map(from_kms_item)
            .transpose()
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<KmsResource>, AppError> {
        match self.items.guarded_by(&Self::guard_id(name)).await? {
            Some(id) => match Uuid::parse_str(&id) {
                Ok(id) => self.get(id).await,
                Err(_) => Err(AppError::Internal(format!(
                    "name guard of '{name}' names no resource"
                ))),
            },
            None => Ok(None),
        }
    }

    async fn list(&self) -> Result<Vec<KmsResource>, AppError> {
        let items = self.items.scan("attribute_exists(account_id)", &[]).await?;
        items.into_iter().map(from_kms_item).collect()
    }

    async fn replace(&self, kms: &KmsResource) -> Result<(), AppError> {
        self.items.replace(to_kms_item(kms)?, kms.id).await
    }

    async fn replace_seen(&self, kms: &KmsResource, seen: Timestamp) -> Result<bool, AppError> {
        self.items
            .replace_seen(to_kms_item(kms)?, &crate::domain::time::format(&seen))
            .await
    }

    async fn remove(&self, kms: &KmsResource) -> Result<(), AppError> {
        self.items
            .remove(kms.id.to_string(), Self::guard_id(&kms.name))
            .await
    }
}
