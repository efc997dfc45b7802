//! Orgs, me, users, teams, keys.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;

use super::error::ApiResult;
use super::extract::{Auth, JsonBody};
use super::{json_status, ApiState};

/// Routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/orgs", post(create_org))
        .route("/v1/me", get(me))
        .route("/v1/users", post(create_user).get(list_users))
        .route("/v1/users/{id}", get(get_user).patch(update_user).delete(delete_user))
        .route("/v1/users/{id}/keys", post(create_key).get(list_keys))
        .route("/v1/users/{id}/keys/{key_id}", delete(revoke_key))
        .route("/v1/teams", post(create_team).get(list_teams))
        .route("/v1/teams/{id}", get(get_team).patch(update_team).delete(delete_team))
}

async fn create_org(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::CREATED, s.app.create_org(&c, &b)?))
}

async fn me(State(s): State<ApiState>, Auth(c): Auth) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.me(&c)))
}

async fn create_user(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::CREATED, s.app.create_user(&c, &b)?))
}

async fn list_users(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    Ok(json_status(
        StatusCode::OK,
        super::extract::paged(s.app.list_users(&c)?, &q)?,
    ))
}

async fn get_user(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.get_user(&c, &id)?))
}

async fn update_user(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.update_user(&c, &id, &b)?))
}

async fn delete_user(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.app.delete_user(&c, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_key(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json_status(StatusCode::CREATED, s.app.create_key(&c, &id)?))
}

async fn list_keys(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    Ok(json_status(
        StatusCode::OK,
        super::extract::paged(s.app.list_keys(&c, &id)?, &q)?,
    ))
}

async fn revoke_key(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.revoke_key(&c, &id, &key)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_team(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::CREATED, s.app.create_team(&c, &b)?))
}

async fn list_teams(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    Ok(json_status(
        StatusCode::OK,
        super::extract::paged(s.app.list_teams(&c)?, &q)?,
    ))
}

async fn get_team(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.get_team(&c, &id)?))
}

async fn update_team(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.update_team(&c, &id, &b)?))
}

async fn delete_team(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.app.delete_team(&c, &id)?;
    Ok(StatusCode::NO_CONTENT)
}
