//! The API cases of `api_cases` on the real AWS adapters (DynamoDB, SQS, STS) against the moto emulator.

mod api_cases;
mod common;

api_tests!(common::backend::Backend::emulator().await);
