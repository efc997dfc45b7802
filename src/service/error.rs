//! Service errors: caller-fixable problems apart from internal failures.

use crate::error::{ErrorKind, Problem};
use crate::index::IndexError;
use crate::storage::StorageError;

/// What a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller's request is refused; each problem says what and where.
    #[error("{}", .0.first().map(|p| p.title.as_str()).unwrap_or("request refused"))]
    Rejected(Vec<Problem>),
    /// The store failed or refused a write (duplicates, stale revisions).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The service cannot serve this now (shutting down, index lagging).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or unexpected failure.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<Problem> for ServiceError {
    fn from(p: Problem) -> Self {
        ServiceError::Rejected(vec![p])
    }
}

impl From<Vec<Problem>> for ServiceError {
    fn from(p: Vec<Problem>) -> Self {
        ServiceError::Rejected(p)
    }
}

impl From<tokio::task::JoinError> for ServiceError {
    fn from(e: tokio::task::JoinError) -> Self {
        ServiceError::Internal(format!("background task failed: {e}"))
    }
}

impl ServiceError {
    /// The transport-agnostic kind of the (first) problem.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Rejected(p) => p.first().map(|p| p.kind).unwrap_or(ErrorKind::BadRequest),
            ServiceError::Storage(e) => e.kind(),
            ServiceError::Index(e) => e.kind(),
            ServiceError::Unavailable(_) => ErrorKind::Unavailable,
            ServiceError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The problems to show the caller; `None` for internal failures, which show a generic title.
    pub fn problems(&self) -> Option<Vec<Problem>> {
        match self {
            ServiceError::Rejected(p) => Some(p.clone()),
            ServiceError::Storage(e @ StorageError::Duplicate { what, .. }) => {
                let code = match *what {
                    "id" | "org id" => "duplicate_id",
                    "externalId" => "duplicate_external_id",
                    "email" => "duplicate_email",
                    _ => "conflict",
                };
                Some(vec![Problem::new(ErrorKind::Conflict, code, e.to_string())])
            }
            ServiceError::Storage(StorageError::Stale) => Some(vec![Problem::new(
                ErrorKind::PreconditionFailed,
                "stale_revision",
                "the object changed since it was read; read it again",
            )]),
            ServiceError::Storage(e @ StorageError::Missing { what, id }) => {
                let _ = e;
                Some(vec![Problem::not_found(what, id)])
            }
            ServiceError::Index(IndexError::Rejected(m)) => {
                Some(vec![Problem::bad_request("invalid_query", m.clone())])
            }
            ServiceError::Unavailable(m) => Some(vec![Problem::new(ErrorKind::Unavailable, "unavailable", m.clone())]),
            _ => None,
        }
    }
}

/// Service result.
pub type Result<T> = std::result::Result<T, ServiceError>;
