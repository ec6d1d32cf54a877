//! Pure domain model: jobs, KMS resources, key records, request validation and the rules that move a job
//! from `in_progress` to `completed` or `failed`. Nothing here knows about AWS, DynamoDB or Lambda.

pub mod acl;
pub mod connection;
pub mod error;
pub mod job;
pub mod job_config;
pub mod key;
pub mod key_change;
pub mod key_query;
pub mod kms;
pub mod kms_event;
pub mod list;
pub mod organization;
pub mod region;
pub mod sync_request;
pub mod time;

pub use error::AppError;

/// A string field as CCKM's Terraform client sends it: Go's zero value (empty, or blank) is "not given".
pub(crate) fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}
