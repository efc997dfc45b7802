//! The query language of searches, saved searches, reports, timelines and automation conditions.
//!
//! - [`ast`]: the request as written (`and`/`or`/`not`/`has`/field clauses), schema-agnostic,
//!   each clause remembering its JSON pointer for error messages.
//! - [`filter`]: the validated form: fields resolved to attribute keys and types, values typed,
//!   relative dates resolved, negative operators turned into `Not`.
//! - [`validate`]: ast + org schema -> filter, with 400 problems naming the field.
//! - [`eval`]: evaluates a filter against one object in memory (automation, segments).
//! - [`compile`]: filter -> tantivy query, running join phases; the only file here that touches tantivy.
//!
//! The in-memory evaluator and the index must agree; `tests/api/differential.rs` holds them to it.

pub mod ast;
pub mod compile;
pub mod eval;
pub mod filter;
pub mod validate;

pub use ast::{Clause, SearchRequest, SortDir};
pub use filter::{CountRange, Filter, Pred, Scalar, Target, TextQuery, TextWord};

#[cfg(test)]
mod differential_tests;
