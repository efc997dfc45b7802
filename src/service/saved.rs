//! Saved searches and segments (being written).

use serde_json::Value;

use super::auth::Caller;
use super::error::{Result, ServiceError};
use super::App;

impl App {
    /// `GET /v1/objects/{klass}/{id}/saved-searches`.
    pub async fn object_segments(&self, _caller: &Caller, _klass: &str, _id: &str) -> Result<Value> {
        Err(ServiceError::Internal("not implemented yet".into()))
    }
}
