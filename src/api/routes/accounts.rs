//! `/v1/cckm/aws/accounts`, `/get-all-regions` and `/alias/verify`: the lookups CCKM's clients make before
//! they register a KMS resource or create a key (Terraform's `ciphertrust_aws_account_details`, Ansible's
//! `cckm_aws_account_info` and `cckm_aws_alias_info`).

use crate::api::auth::Principal;
use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::app::App;
use crate::domain::AppError;
use crate::service::accounts as service;
use serde_json::json;

pub async fn details(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let found = service::details(app, &request.body).await?;
    Ok(HttpResponse::json(
        200,
        json!({
            "account_id": found.account_id,
            "regions": found.regions,
            "accounts": [found.account_id],
        }),
    ))
}

pub async fn regions(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let found = service::details(app, &request.body).await?;
    Ok(HttpResponse::json(200, json!({"regions": found.regions})))
}

/// A read, so a reader (or a `viewnative` grant) may ask it.
pub async fn verify_alias(
    app: &App,
    request: &HttpRequest,
    caller: &Principal,
) -> Result<HttpResponse, AppError> {
    let (alias, exists) =
        service::alias_exists(app, &request.body, |kms, action| caller.may(kms, action)).await?;
    Ok(HttpResponse::json(
        200,
        json!({"alias": alias, "exists": exists}),
    ))
}
