//! Change-log records: one per object write, in a per-org sequence that the indexer and the
//! automation tail with their own cursors.

use serde::{Deserialize, Serialize};

use super::object::Object;
use super::time::Millis;

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// The object did not exist before.
    Created,
    /// The object changed.
    Updated,
    /// The object is gone.
    Deleted,
}

impl ChangeOp {
    /// The event suffix (`created`, `updated`, `deleted`).
    pub fn name(self) -> &'static str {
        match self {
            ChangeOp::Created => "created",
            ChangeOp::Updated => "updated",
            ChangeOp::Deleted => "deleted",
        }
    }
}

/// One change-log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// Position in the org's log, from 1.
    pub seq: u64,
    /// What happened.
    pub op: ChangeOp,
    /// Klass of the object.
    pub klass: String,
    /// Num of the object.
    pub num: u64,
    /// Id of the object.
    pub id: String,
    /// When it was written.
    pub at: Millis,
    /// The object before (updates, deletes).
    pub before: Option<Object>,
    /// The object after (creates, updates).
    pub after: Option<Object>,
    /// Changed field paths.
    pub changed: Vec<String>,
    /// How many automation hops led to this write (0 for a write by a person or integration).
    #[serde(default)]
    pub depth: u8,
}
