//! Kindred: a self-hostable, search-centric customer data service.
//!
//! It keeps customers, companies, conversations, messages, notes and the custom objects each org
//! defines, indexes every attribute, and answers searches, timelines and reports over HTTP.
//!
//! # Layout
//!
//! - [`model`]: pure domain types (orgs, users, klasses, objects, values, times); no I/O.
//! - [`storage`]: the durable store on sled, the source of truth; never imports tantivy.
//! - [`index`]: the tantivy index of one org, derived and rebuildable; never imports sled.
//! - [`query`]: the query language: request parsing, validation against the schema, in-memory
//!   evaluation, and compilation to tantivy (`query::compile` is the one place it touches tantivy).
//! - [`service`]: org-scoped use cases; orders "sled write, then index"; owns background tasks.
//! - [`api`]: axum only: routes, authentication, DTOs, errors mapped to HTTP once.
//! - [`cli`]: the command line (`serve`, `import`, `export`, `reindex`, `verify`, `gen`, `bench`).
//! - [`config`], [`error`], [`telemetry`]: leaves.
//!
//! # Dependency rule
//!
//! `api -> service -> {query, index, storage} -> model`. Only `api` (and the binary) import axum;
//! only `storage` imports sled; only `index` and `query::compile` import tantivy.
//! `tests/layering.rs` enforces it.
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod config;
pub mod error;
pub mod index;
pub mod model;
pub mod query;
pub mod service;
pub mod storage;
pub mod telemetry;

pub use error::error_status;
