//! Klasses and attributes.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use axum::Router;

use super::error::ApiResult;
use super::extract::{Auth, JsonBody};
use super::{json_status, ApiState};

/// Routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/klasses", get(list).post(create))
        .route("/v1/klasses/{name}", get(read).patch(update).delete(remove))
        .route("/v1/klasses/{name}/attributes/{attr}", delete(remove_attribute))
}

async fn list(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    Ok(json_status(
        StatusCode::OK,
        super::extract::paged(s.app.list_klasses(&c)?, &q)?,
    ))
}

async fn create(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::CREATED, s.app.create_klass(&c, &b)?))
}

async fn read(State(s): State<ApiState>, Auth(c): Auth, Path(name): Path<String>) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.get_klass(&c, &name)?))
}

async fn update(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(name): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.update_klass(&c, &name, &b)?))
}

async fn remove(State(s): State<ApiState>, Auth(c): Auth, Path(name): Path<String>) -> ApiResult<StatusCode> {
    s.app.delete_klass(&c, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_attribute(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path((name, attr)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_attribute(&c, &name, &attr)?;
    Ok(StatusCode::NO_CONTENT)
}
