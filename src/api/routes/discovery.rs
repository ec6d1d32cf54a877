//! `POST /v1/cckm/aws/organization-discoveries`: an AWS Organizations discovery now. The body (optional;
//! `{}` or none uses the configured `ORG_*` settings) may give any of `management_role_arn`,
//! `member_role_name`, `member_external_id`, `organizational_units` and `regions`. The answer says what was
//! registered and marked.

use crate::api::request::HttpRequest;
use crate::api::response::HttpResponse;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::list::parse_json_body;
use crate::domain::organization::DiscoveryInput;
use crate::service::discovery as service;

pub async fn run(app: &App, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let input = if request.body.iter().all(u8::is_ascii_whitespace) {
        DiscoveryInput::default()
    } else {
        parse_json_body(&request.body)?
    };
    let report = service::discover(app, input).await?;
    Ok(HttpResponse::json(
        200,
        serde_json::to_value(report).map_err(|e| AppError::internal("rendering a discovery", e))?,
    ))
}
