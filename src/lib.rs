//! cckm-aws-sync: the CipherTrust CCKM AWS key-synchronization API as one AWS Lambda function.
//!
//! - `domain`: jobs, KMS resources, keys, validation and status rules (no AWS, no Lambda).
//! - `ports`: the traits the domain needs; `adapters`: those traits for DynamoDB, KMS, SQS, STS and memory.
//! - `service`: the use cases; `api`, `worker`, `schedule`, `cloudtrail`: the kinds of trigger; `entry`: the
//!   router.

pub mod adapters;
pub mod api;
pub mod app;
pub mod cloudtrail;
pub mod config;
pub mod domain;
pub mod entry;
pub mod ports;
pub mod schedule;
pub mod service;
pub mod wiring;
pub mod worker;
