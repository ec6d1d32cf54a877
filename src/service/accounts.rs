//! CCKM's account lookups, as its clients call them before registering a KMS resource: which account a
//! connection (or a role assumed through it) reaches, the regions KMS serves there, and whether an alias
//! is taken in one resource's region.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::given;
use crate::domain::key::full_alias;
use crate::domain::kms::KmsResource;
use crate::domain::list::parse_json_body;
use crate::domain::region::{kms_regions, partition_of};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    connection: Option<String>,
    assume_role_arn: Option<String>,
    assume_role_external_id: Option<String>,
}

/// What `POST /cckm/aws/accounts` answers: the account and the regions a KMS resource may name.
pub struct AccountDetails {
    pub account_id: String,
    pub regions: &'static [&'static str],
}

/// The account the connection reaches (through the role, when one is given), or 400 with AWS's reason.
pub async fn details(app: &App, body: &[u8]) -> Result<AccountDetails, AppError> {
    let body: AccountBody = parse_json_body(body)?;
    let connection = match given(body.connection) {
        Some(name) => Some(super::connections::get(app, &name).await?),
        None => None,
    };
    let keys = match connection.as_ref().and_then(|c| c.secret_id.as_deref()) {
        Some(secret) => Some(app.secrets.read(secret).await?),
        None => None,
    };
    let role = given(body.assume_role_arn)
        .map(|arn| (arn, given(body.assume_role_external_id)))
        .or_else(|| {
            let c = connection.as_ref()?;
            Some((
                c.assume_role_arn.clone()?,
                c.assume_role_external_id.clone(),
            ))
        });
    let account_id = app
        .identity
        .account_of(
            keys.as_ref(),
            role.as_ref()
                .map(|(arn, ext)| (arn.as_str(), ext.as_deref())),
        )
        .await
        .map_err(|why| {
            AppError::InvalidParam(format!("the credentials do not reach AWS: {why}"))
        })?;
    let region = connection
        .as_ref()
        .and_then(|c| c.aws_region.clone())
        .unwrap_or_else(|| "us-east-1".into());
    Ok(AccountDetails {
        account_id,
        regions: kms_regions(partition_of(&region)),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    alias: String,
    region: String,
    kms: String,
}

/// Whether `alias` names a key in the KMS resource's account and region now (ListAliases); the alias with
/// its `alias/` prefix.
pub async fn alias_exists(
    app: &App,
    body: &[u8],
    allow: impl Fn(&KmsResource, &str) -> Result<(), AppError>,
) -> Result<(String, bool), AppError> {
    let body: AliasBody = parse_json_body(body)?;
    let alias = full_alias(&body.alias);
    let kms = super::kms::get(app, &body.kms).await?;
    allow(&kms, crate::domain::acl::VIEW)?;
    if !kms.regions.contains(&body.region) {
        return Err(AppError::InvalidParam(format!(
            "region: '{}' is not a region of KMS resource '{}'",
            body.region, kms.name
        )));
    }
    let exists = super::keys::alias_taken(app, &kms, &body.region, &alias).await?;
    Ok((alias, exists))
}
