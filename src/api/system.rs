//! Health, metrics, the OpenAPI document, and the answers for unknown routes and panics.

use std::any::Any;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::error::{problem_json, ApiError};
use super::ApiState;
use crate::error::{ErrorKind, Problem};

/// Routes without authentication.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let text = s.metrics.render(&s.app);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi::DOCUMENT).into_response()
}

/// 404 for unknown routes, in the error format.
pub async fn not_found() -> ApiError {
    ApiError(
        Problem::new(
            ErrorKind::NotFound,
            "no_route",
            "no such endpoint (see /v1/openapi.json)",
        )
        .into(),
    )
}

/// 405 for a known path with another method, in the error format.
pub async fn method_not_allowed() -> Response {
    let p = Problem::new(
        ErrorKind::BadRequest,
        "method_not_allowed",
        "this endpoint does not take this method (see /v1/openapi.json)",
    );
    let mut body = problem_json(&p);
    body["status"] = json!("405");
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(json!({"errors": [body]}))).into_response()
}

/// A panic becomes a 500 in the error format; the service keeps running.
pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let id = super::error::request_id();
    tracing::error!(request_id = %id, panic = %detail, "handler panicked");
    let mut p = problem_json(&Problem::new(
        ErrorKind::Internal,
        "internal",
        "internal error; see the server log",
    ));
    p["meta"] = json!({"requestId": id});
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"errors": [p]}))).into_response()
}
