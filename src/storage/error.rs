//! Storage errors.

use crate::error::ErrorKind;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// sled failed (I/O, corruption it detected).
    #[error("store i/o failed: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Decoder message.
        detail: String,
    },
    /// A unique value (id, externalId, email, name) is already taken.
    #[error("{what} `{value}` already exists")]
    Duplicate {
        /// Which kind of value (`id`, `externalId`, `email`).
        what: &'static str,
        /// The value.
        value: String,
    },
    /// The stored revision is not the one the write was computed from.
    #[error("the object changed since it was read")]
    Stale,
    /// An earlier write prepared to be applied later failed or was abandoned, so the store no
    /// longer holds what later writes assumed (see `Store::prepare_objects`).
    #[error("an earlier write-behind batch was not applied; the store refuses further access")]
    WriteBehind,
    /// A document the write expected is missing.
    #[error("{what} `{id}` does not exist")]
    Missing {
        /// What kind.
        what: &'static str,
        /// Its id.
        id: String,
    },
}

impl StorageError {
    /// The transport-agnostic kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::Sled(_) | StorageError::Corrupt { .. } | StorageError::WriteBehind => ErrorKind::Internal,
            StorageError::Duplicate { .. } => ErrorKind::Conflict,
            StorageError::Stale => ErrorKind::PreconditionFailed,
            StorageError::Missing { .. } => ErrorKind::NotFound,
        }
    }
}

/// Storage result.
pub type Result<T> = std::result::Result<T, StorageError>;
