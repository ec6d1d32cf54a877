//! The one error type every layer speaks. Each variant maps to exactly one CCKM error (`api::error`).

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AppError {
    /// A parameter is present but its value is not acceptable (400, NCERRInvalidParamValue).
    #[error("{0}")]
    InvalidParam(String),
    /// The request itself cannot be read: invalid JSON or UTF-8, a body too large (400, NCERRBadRequest).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not allowed this (403, NCERRForbidden).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A known path asked with a method it does not take; `allow` lists those it takes (the `Allow` header).
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: &'static str,
    },
    #[error("{0}")]
    Conflict(String),
    /// Something broke on our side or in AWS. The text is logged, never returned to the caller.
    #[error("internal: {0}")]
    Internal(String),
}

impl AppError {
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        AppError::Internal(format!("{context}: {err}"))
    }
}
