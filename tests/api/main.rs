//! The integration test binary: drives the real HTTP router (and, for restart and kill tests, the
//! real binary) through every endpoint, including the denials.

mod helpers;

mod directory;
mod klasses;
mod objects;
mod process;
mod search;

mod automation;
mod bulk;
mod compat;
mod import;
mod openapi;
mod reports;
mod saved;
mod timeline;
