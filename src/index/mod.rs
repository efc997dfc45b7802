//! The search index: one tantivy index per org, derived from the store and rebuildable from it.
//!
//! - [`schema`]: the fixed tantivy schema; attributes live in typed JSON fields under their key.
//! - [`analysis`]: the text analyzers, shared with the in-memory query evaluator.
//! - [`mapper`]: object + klass -> tantivy document (types from the klass, never guessed).
//! - [`org_index`]: one org's index: lazy writer, commits carrying the change-log seq, reader.
//! - [`collect`]: collectors: top-K by sort keys with search_after, join sets, counts.
//! - [`settings`]: index settings from `index-config/index.json`.
//!
//! Never imports sled or anything of HTTP.

pub mod analysis;
pub mod collect;
pub mod columns;
pub mod error;
pub mod filter_query;
pub mod mapper;
pub mod org_index;
pub mod schema;
pub mod settings;

pub use error::{IndexError, Result};
pub use org_index::{on_read_pool, IndexOp, OrgIndex};
pub use schema::IndexSchema;
pub use settings::IndexSettings;
