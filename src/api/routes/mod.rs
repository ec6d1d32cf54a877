//! Route handlers, one module per resource. Each reads the request, calls a service, renders the answer.

pub mod connections;
pub mod discovery;
pub mod job_configs;
pub mod jobs;
pub mod keys;
pub mod kms;
pub mod tokens;
