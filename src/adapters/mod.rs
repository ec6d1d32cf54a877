//! Adapters: the ports of `crate::ports` implemented for AWS (DynamoDB, KMS, SQS, STS) and in memory.

pub mod aws_error;
pub mod cognito;
pub mod counting;
pub mod dynamodb;
pub mod kms;
pub mod kms_writes;
pub mod memory;
pub mod organizations;
pub mod rate_limit;
pub mod scheduler;
pub mod secrets;
pub mod sqs;
pub mod sts;
