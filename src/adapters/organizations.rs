//! AWS Organizations: the organization's accounts (ListAccounts), or those under some units
//! (ListAccountsForParent and ListOrganizationalUnitsForParent, walked down), read with the credentials of a
//! role in the management account. Every list is paged to its end.

use super::aws_error::reason;
use super::sts::RoleCredentials;
use crate::domain::AppError;
use crate::domain::organization::OrgAccount;
use crate::ports::{Organization, SourceError};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_organizations::Client;
use aws_sdk_organizations::types::Account;
use std::sync::Arc;

/// Organizations' one endpoint region per partition.
fn home_region(role_arn: &str) -> &'static str {
    match role_arn.split(':').nth(1) {
        Some("aws-cn") => "cn-northwest-1",
        Some("aws-us-gov") => "us-gov-west-1",
        _ => "us-east-1",
    }
}

pub struct AwsOrganization {
    sdk: SdkConfig,
    roles: Arc<RoleCredentials>,
}

impl AwsOrganization {
    pub fn new(sdk: SdkConfig, roles: Arc<RoleCredentials>) -> Self {
        AwsOrganization { sdk, roles }
    }

    async fn client(&self, role_arn: &str) -> Result<Client, AppError> {
        let credentials = self
            .roles
            .assume(role_arn, None)
            .await
            .map_err(|err| match err {
                SourceError::Refused(text) => AppError::Conflict(text),
                SourceError::Transient(text) => AppError::Internal(text),
            })?;
        let config = aws_sdk_organizations::config::Builder::from(&self.sdk)
            .region(aws_sdk_organizations::config::Region::new(home_region(
                role_arn,
            )))
            .credentials_provider(credentials)
            .build();
        Ok(Client::from_conf(config))
    }
}

fn org_error<E, R>(operation: &str, err: &aws_sdk_organizations::error::SdkError<E, R>) -> AppError
where
    E: aws_sdk_organizations::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let text = reason(operation, err);
    match err.as_service_error().and_then(|e| e.code()) {
        Some(
            "AccessDeniedException"
            | "AWSOrganizationsNotInUseException"
            | "ParentNotFoundException"
            | "InvalidInputException",
        ) => AppError::Conflict(text),
        _ => AppError::Internal(text),
    }
}

fn account_of(account: &Account) -> Option<OrgAccount> {
    let state = account
        .state()
        .map(|s| s.as_str().to_string())
        .or_else(|| account.status().map(|s| s.as_str().to_string()))?;
    Some(OrgAccount {
        id: account.id()?.to_string(),
        state,
    })
}

#[async_trait]
impl Organization for AwsOrganization {
    async fn accounts(&self, management_role_arn: &str) -> Result<Vec<OrgAccount>, AppError> {
        let client = self.client(management_role_arn).await?;
        // An account outside any organization: said plainly, rather than as an empty list.
        client
            .describe_organization()
            .send()
            .await
            .map_err(|e| org_error("organizations DescribeOrganization", &e))?;
        let accounts = client
            .list_accounts()
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| org_error("organizations ListAccounts", &e))?;
        Ok(accounts
            .iter()
            .flat_map(|page| page.accounts())
            .filter_map(account_of)
            .collect())
    }

    async fn accounts_under(
        &self,
        management_role_arn: &str,
        units: &[String],
    ) -> Result<Vec<OrgAccount>, AppError> {
        let client = self.client(management_role_arn).await?;
        let mut accounts = Vec::new();
        let mut parents: Vec<String> = units.to_vec();
        while let Some(parent) = parents.pop() {
            let listed = client
                .list_accounts_for_parent()
                .parent_id(&parent)
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| org_error("organizations ListAccountsForParent", &e))?;
            accounts.extend(
                listed
                    .iter()
                    .flat_map(|page| page.accounts())
                    .filter_map(account_of),
            );
            let children = client
                .list_organizational_units_for_parent()
                .parent_id(&parent)
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| org_error("organizations ListOrganizationalUnitsForParent", &e))?;
            parents.extend(
                children
                    .iter()
                    .flat_map(|page| page.organizational_units())
                    .filter_map(|unit| unit.id().map(str::to_string)),
            );
        }
        Ok(accounts)
    }
}
