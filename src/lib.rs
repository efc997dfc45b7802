//! temp
pub mod error;
pub mod index;
pub mod model;
pub mod query;
pub mod storage;
