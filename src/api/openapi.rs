//! The OpenAPI document served at `GET /v1/openapi.json`.

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");
