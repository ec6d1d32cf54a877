//! The one Lambda entry point: tells the event's kind by its shape and hands it to the API, the worker or
//! the scheduler. Anything unrecognised is answered with an error object, never a panic. Only an SQS batch
//! that cannot be read, and a KMS event that met a passing failure, fail the invocation, so that Lambda
//! delivers them again instead of dropping them.

use crate::api::Api;
use crate::api::auth::Authenticator;
use crate::api::request::{HttpRequest, Payload};
use crate::api::response::HttpResponse;
use crate::app::App;
use crate::domain::AppError;
use crate::domain::time::Timestamp;
use crate::{cloudtrail, schedule, worker};
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::sqs::SqsEvent;
use serde_json::{Value, json};

/// The kinds of event this function serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    HttpV1,
    HttpV2,
    Sqs,
    ScheduledEvent,
    SchedulerInput,
    /// A CloudTrail KMS event routed by EventBridge.
    KmsEvent,
    Unknown,
}

pub fn classify(event: &Value) -> EventKind {
    let field = |name: &str| event.get(name);
    if field("version").and_then(Value::as_str) == Some("2.0")
        && event.pointer("/requestContext/http").is_some()
    {
        EventKind::HttpV2
    } else if field("httpMethod").is_some() && field("requestContext").is_some() {
        EventKind::HttpV1
    } else if event
        .pointer("/Records/0/eventSource")
        .and_then(Value::as_str)
        == Some("aws:sqs")
    {
        EventKind::Sqs
    } else if crate::domain::kms_event::is_kms_event(event) {
        EventKind::KmsEvent
    } else if field("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        EventKind::ScheduledEvent
    } else if field("cckm_synchronization_params").is_some() {
        EventKind::SchedulerInput
    } else {
        EventKind::Unknown
    }
}

/// An event to be delivered again: the invocation fails. An SQS batch that could not be read (with
/// `ReportBatchItemFailures`, an answer without `batchItemFailures` would count as the whole batch processed
/// and delete it), or a KMS event that met a passing failure (Lambda retries an asynchronous invocation).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Redeliver(String);

pub struct Entry {
    pub app: App,
    pub api: Api,
}

impl Entry {
    pub fn new(app: App, auth: Authenticator) -> Entry {
        Entry {
            api: Api::new(app.clone(), auth),
            app,
        }
    }

    /// `deadline` is the invocation's deadline, which the worker uses to stop at a page boundary in time.
    pub async fn handle(
        &self,
        event: Value,
        request_id: &str,
        deadline: Timestamp,
    ) -> Result<Value, Redeliver> {
        Ok(match classify(&event) {
            EventKind::HttpV1 => match serde_json::from_value::<ApiGatewayProxyRequest>(event) {
                Ok(request) => {
                    self.http(HttpRequest::from_v1(request), request_id, Payload::RestV1)
                        .await
                }
                Err(err) => bad_http_event(err, request_id, Payload::RestV1),
            },
            EventKind::HttpV2 => match serde_json::from_value::<ApiGatewayV2httpRequest>(event) {
                Ok(request) => {
                    self.http(HttpRequest::from_v2(request), request_id, Payload::HttpV2)
                        .await
                }
                Err(err) => bad_http_event(err, request_id, Payload::HttpV2),
            },
            EventKind::Sqs => match serde_json::from_value::<SqsEvent>(event) {
                // A message without an id could not be named in `batchItemFailures`.
                Ok(batch)
                    if batch
                        .records
                        .iter()
                        .all(|m| m.message_id.as_deref().is_some_and(|id| !id.is_empty())) =>
                {
                    json!(worker::handle_batch(&self.app, batch, deadline).await)
                }
                Ok(_) => {
                    tracing::error!(
                        "SQS event with a message without an id; the batch will come back"
                    );
                    return Err(Redeliver(
                        "unreadable SQS event: a message without an id".into(),
                    ));
                }
                Err(err) => {
                    tracing::error!(error = %err, "unreadable SQS event; the batch will come back");
                    return Err(Redeliver(format!("unreadable SQS event: {err}")));
                }
            },
            EventKind::ScheduledEvent => {
                schedule::run(&self.app, schedule::Trigger::ScheduledEvent).await
            }
            EventKind::SchedulerInput => {
                let params = event
                    .get("cckm_synchronization_params")
                    .cloned()
                    .unwrap_or(Value::Null);
                schedule::run(&self.app, schedule::Trigger::Params(params)).await
            }
            EventKind::KmsEvent => cloudtrail::handle(&self.app, &event)
                .await
                .map_err(|err| Redeliver(err.to_string()))?,
            EventKind::Unknown => {
                tracing::warn!("event of an unknown kind ignored");
                json!({"error": "unsupported event"})
            }
        })
    }

    async fn http(&self, mut request: HttpRequest, request_id: &str, payload: Payload) -> Value {
        if request.request_id.is_empty() {
            request.request_id = request_id.to_string();
        }
        let request_id = request.request_id.clone();
        let proxy = self.api.handle(request).await.into_proxy(payload);
        crate::api::within_lambda_limit(proxy, &request_id, payload)
    }
}

fn bad_http_event(err: serde_json::Error, request_id: &str, payload: Payload) -> Value {
    let err = AppError::BadRequest(format!("unreadable API Gateway event: {err}"));
    HttpResponse::error(&err, request_id).into_proxy(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_trigger_by_shape() {
        let v2 = json!({"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET"}}});
        let v1 = json!({"httpMethod": "GET", "path": "/", "requestContext": {"stage": "prod"}});
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]});
        let scheduled =
            json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        let scheduler = json!({"cckm_synchronization_params": {"synchronize_all": true}});
        let kms_event = json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.kms",
                               "detail": {"eventName": "EnableKey"}});
        assert_eq!(classify(&v2), EventKind::HttpV2);
        assert_eq!(classify(&v1), EventKind::HttpV1);
        assert_eq!(classify(&sqs), EventKind::Sqs);
        assert_eq!(classify(&scheduled), EventKind::ScheduledEvent);
        assert_eq!(classify(&scheduler), EventKind::SchedulerInput);
        assert_eq!(classify(&kms_event), EventKind::KmsEvent);
        assert_eq!(classify(&json!({"hello": 1})), EventKind::Unknown);
        assert_eq!(classify(&json!([1, 2])), EventKind::Unknown);
    }
}
