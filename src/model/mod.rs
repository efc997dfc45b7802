//! Pure domain types: orgs and their directory, klasses and attributes, objects and values, times.
//!
//! Nothing here does I/O, reads the clock or imports an engine or web crate: callers pass `now`.

pub mod automation;
pub mod change;
pub mod directory;
pub mod ids;
pub mod klass;
pub mod object;
pub mod saved;
pub mod schema;
pub mod time;
pub mod value;

pub use change::{ChangeOp, ChangeRecord};
pub use directory::{ApiKey, Org, Role, Team, User};
pub use klass::{AttrType, Attribute, Cardinality, Klass, Relationship};
pub use object::{Object, ObjectView, RelValue, UniqueKey};
pub use schema::{OrgSchema, Relation, Side};
pub use value::Value;
