//! Index errors.

use crate::error::ErrorKind;

/// What can go wrong in the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// tantivy failed.
    #[error("index failed: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// Opening the index directory failed.
    #[error("index directory failed: {0}")]
    Directory(String),
    /// Filesystem error.
    #[error("index i/o failed: {0}")]
    Io(#[from] std::io::Error),
    /// The index settings file is invalid.
    #[error("index settings: {0}")]
    Settings(String),
    /// A query cannot run (too many buckets...); the caller's fault.
    #[error("{0}")]
    Rejected(String),
}

impl IndexError {
    /// The transport-agnostic kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            IndexError::Rejected(_) => ErrorKind::BadRequest,
            _ => ErrorKind::Internal,
        }
    }
}

impl From<tantivy::directory::error::OpenReadError> for IndexError {
    fn from(e: tantivy::directory::error::OpenReadError) -> Self {
        IndexError::Directory(e.to_string())
    }
}

impl From<tantivy::directory::error::OpenDirectoryError> for IndexError {
    fn from(e: tantivy::directory::error::OpenDirectoryError) -> Self {
        IndexError::Directory(e.to_string())
    }
}

/// Index result.
pub type Result<T> = std::result::Result<T, IndexError>;
