//! Use cases: each one a short sequence of port calls around the domain rules. The API, the scheduler and
//! the worker all go through here, so a rule lives in one place whatever the trigger.

pub mod accounts;
pub mod connections;
pub mod discovery;
pub mod job_configs;
pub mod jobs;
pub mod key_writes;
pub mod keys;
pub mod kms;
pub mod kms_events;
