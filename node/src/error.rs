//! Every way a request can be refused, and how it reads as RFC 7807 `application/problem+json`.
//!
//! Each refusal carries `errors: [{pointer, message}]`: a JSON Pointer into the request (the
//! body, or `/headers/…` and `/query/…` for what is not in the body) and what to fix there.
//! The list holds at most [`MAX_PROBLEM_ERRORS`] entries, the first found; `errors_total` says
//! how many problems there were in all, so a body with a million bad fields gets a short
//! answer, not a 70 MB one.
//!
//! What it may not touch: which refusal applies. The stages and the handlers choose one; this
//! module only says how each reads (status, `type`, pointers, what to do), so that every refusal
//! of the node has one shape and one place to change it. Its document shape is
//! `rix_runtime::problem`'s, shared with the gateway.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use rix_schema::FieldError;
use rix_schema::validate::FieldErrors;

use crate::db::{AsConflict, StoreError};

/// Most `{pointer, message}` entries in one problem document.
pub const MAX_PROBLEM_ERRORS: usize = rix_schema::validate::MAX_ERRORS;

/// Why the node refused a request.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The body is not JSON (or not UTF-8).
    #[error("the request body is not valid JSON")]
    BadJson(FieldError),
    /// A query parameter or header is wrong.
    #[error("bad request parameter")]
    BadParameter(FieldError),
    /// The record breaks the schema or a code-list rule: the first errors found, and how many
    /// there were.
    #[error("the record is not valid")]
    Invalid(FieldErrors),
    /// No or unknown bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such record (or not one this submitter may see).
    #[error("no {kind} with id {id:?}")]
    NotFound {
        /// Record kind.
        kind: &'static str,
        /// Record id.
        id: String,
    },
    /// The request contradicts the record's current state (stale version, wrong state).
    #[error("{message}")]
    Conflict {
        /// Where the conflict is visible in the request.
        pointer: String,
        /// What happened and what to do.
        message: String,
    },
    /// A revision without `If-Match`.
    #[error("revisions must say which version they revise (If-Match)")]
    PreconditionRequired,
    /// The body is larger than the configured limit.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Not `application/json`.
    #[error("unsupported content type")]
    UnsupportedMediaType(String),
    /// The same Idempotency-Key was used for a different request.
    #[error("Idempotency-Key reused for a different request")]
    IdempotencyMismatch,
    /// Storage failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for NodeError {
    fn from(e: diesel::result::Error) -> Self {
        NodeError::Store(StoreError::Query(e))
    }
}

impl AsConflict for NodeError {
    fn is_conflict(&self) -> bool {
        matches!(self, NodeError::Store(e) if e.is_conflict())
    }
}

pub use rix_runtime::problem::{Problem, ProblemField};

impl NodeError {
    fn type_name(&self) -> &'static str {
        match self {
            NodeError::BadJson(_) => "bad-json",
            NodeError::BadParameter(_) => "bad-parameter",
            NodeError::Invalid(_) => "invalid-record",
            NodeError::Unauthorized => "unauthorized",
            NodeError::Forbidden(_) => "forbidden",
            NodeError::NotFound { .. } => "not-found",
            NodeError::Conflict { .. } => "conflict",
            NodeError::PreconditionRequired => "precondition-required",
            NodeError::TooLarge { .. } => "too-large",
            NodeError::UnsupportedMediaType(_) => "unsupported-media-type",
            NodeError::IdempotencyMismatch => "idempotency-key-reused",
            NodeError::Store(_) => "storage",
        }
    }

    /// The `{pointer, message}` list (cut to [`MAX_PROBLEM_ERRORS`]) and how many there were.
    fn field_errors(&self) -> (Vec<ProblemField>, usize) {
        let mut list = self.all_field_errors();
        let total = match self {
            NodeError::Invalid(e) => e.total.max(list.len()),
            _ => list.len(),
        };
        list.truncate(MAX_PROBLEM_ERRORS);
        (list, total)
    }

    fn all_field_errors(&self) -> Vec<ProblemField> {
        let one = |pointer: &str, message: String| {
            vec![ProblemField {
                pointer: pointer.to_owned(),
                message,
            }]
        };
        match self {
            NodeError::BadJson(e) | NodeError::BadParameter(e) => {
                one(&e.pointer, e.message.clone())
            }
            NodeError::Invalid(errors) => errors
                .errors
                .iter()
                .take(MAX_PROBLEM_ERRORS)
                .map(|e| ProblemField {
                    pointer: e.pointer.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            NodeError::Unauthorized => one(
                "/headers/authorization",
                "send `Authorization: Bearer <token>` with a token this node issued".into(),
            ),
            NodeError::Forbidden(m) => one("/headers/authorization", m.clone()),
            NodeError::NotFound { .. } => one("", self.to_string()),
            NodeError::Conflict { pointer, message } => one(pointer, message.clone()),
            NodeError::PreconditionRequired => one(
                "/headers/if-match",
                "send If-Match with the version you revise, as returned in ETag".into(),
            ),
            NodeError::TooLarge { limit } => one(
                "",
                format!("the body exceeds {limit} bytes; split a batch submit into smaller ones"),
            ),
            NodeError::UnsupportedMediaType(got) => one(
                "/headers/content-type",
                format!("expected application/json, got {got:?}"),
            ),
            NodeError::IdempotencyMismatch => one(
                "/headers/idempotency-key",
                "this key was already used for a different request; use a new key".into(),
            ),
            NodeError::Store(e) => one("", format!("nothing was written: {e}")),
        }
    }

    /// The problem document for this refusal.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let (errors, errors_total) = self.field_errors();
        Problem {
            type_uri: format!("https://schema.rix.cn/problems/{}", self.type_name()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors,
            errors_total: Some(errors_total),
        }
    }
}

impl ResponseError for NodeError {
    fn status_code(&self) -> StatusCode {
        match self {
            NodeError::BadJson(_) | NodeError::BadParameter(_) => StatusCode::BAD_REQUEST,
            NodeError::Invalid(_) | NodeError::IdempotencyMismatch => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            NodeError::Unauthorized => StatusCode::UNAUTHORIZED,
            NodeError::Forbidden(_) => StatusCode::FORBIDDEN,
            NodeError::NotFound { .. } => StatusCode::NOT_FOUND,
            NodeError::Conflict { .. } => StatusCode::CONFLICT,
            NodeError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            NodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            NodeError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            NodeError::Store(StoreError::Pool(_)) => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let NodeError::Store(e) = self {
            tracing::error!(error = %e, "request failed in storage");
        }
        let problem = self.problem();
        let mut response = problem.builder();
        if matches!(self, NodeError::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.body(problem.body())
    }
}
