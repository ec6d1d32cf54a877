//! What a failed AWS call may tell a user, and what only the log gets. A reason a user can read (a unit's
//! `detailed_status`, a key's `sync_errors`, an error answer) is `<operation>: <AWS error code>: <AWS
//! message>`. The whole error (raw answer, headers, connector detail) is logged here, with AWS's request
//! id; the invocation's span adds the Lambda request id.

use aws_sdk_kms::error::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The readable reason of a failed call, logged in full: for a failure that leaves the adapter.
pub fn reason<E, R>(operation: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    log(operation, err);
    readable(operation, err)
}

/// The readable reason alone, for an attempt that may still be retried (`log` once it is final).
pub fn readable<E, R>(operation: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, message) = match err {
        SdkError::ServiceError(_) => (
            err.code().unwrap_or("UnknownError"),
            err.message().unwrap_or("AWS gave no message"),
        ),
        SdkError::TimeoutError(_) => ("Timeout", "AWS did not answer in time"),
        SdkError::DispatchFailure(_) => ("NetworkError", "the request could not reach AWS"),
        SdkError::ResponseError(_) => ("UnreadableResponse", "AWS's answer could not be read"),
        SdkError::ConstructionFailure(_) => ("InvalidRequest", "the request could not be built"),
        _ => ("UnknownError", "the call failed"),
    };
    format!("{operation}: {code}: {message}")
}

/// Logs the whole error, with AWS's request id.
pub fn log<E, R>(operation: &str, err: &SdkError<E, R>)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    tracing::warn!(operation, aws_request_id = err.meta().extra("aws_request_id"),
        error = %DisplayErrorContext(err), "AWS call failed");
}

#[cfg(test)]
mod tests {
    use super::reason;
    use aws_sdk_kms::error::{ErrorMetadata, SdkError};
    use aws_sdk_kms::operation::list_keys::ListKeysError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn raw_answer() -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(
                r#"{"__type":"AccessDeniedException","message":"nope","x-internal":"hyper"}"#,
            ),
        )
    }

    #[test]
    fn a_service_error_reads_operation_code_and_message_and_nothing_of_the_raw_answer() {
        let err: SdkError<ListKeysError, HttpResponse> = SdkError::service_error(
            ListKeysError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("User is not authorized to perform kms:ListKeys")
                    .build(),
            ),
            raw_answer(),
        );
        assert_eq!(
            reason("ListKeys", &err),
            "ListKeys: AccessDeniedException: User is not authorized to perform kms:ListKeys"
        );
    }

    #[test]
    fn a_call_without_an_answer_says_what_kind_of_failure_it_was() {
        let timeout: SdkError<ListKeysError, HttpResponse> =
            SdkError::timeout_error("connect timed out after 3.1s to 10.0.0.1:443");
        assert_eq!(
            reason("ListKeys", &timeout),
            "ListKeys: Timeout: AWS did not answer in time"
        );
        let unreadable: SdkError<ListKeysError, HttpResponse> =
            SdkError::response_error("invalid JSON at byte 17", raw_answer());
        assert_eq!(
            reason("ListKeys", &unreadable),
            "ListKeys: UnreadableResponse: AWS's answer could not be read"
        );
    }
}
