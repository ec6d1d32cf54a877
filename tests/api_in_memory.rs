//! The API cases of `api_cases` on in-memory adapters: fast, no emulator.

mod api_cases;
mod common;

api_tests!(common::backend::Backend::memory());
