//! Objects: CRUD, lookups by externalId and email, upserts; the four-segment paths
//! (`by-external-id`, `by-email`, `timeline`, `saved-searches`) share one dispatcher because their
//! second segment is either a keyword or an object id.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::error::{ApiError, ApiResult};
use super::extract::{write_options, Auth, JsonBody};
use super::{json_rev, ApiState};
use crate::error::{ErrorKind, Problem};
use crate::service::objects::Mode;

/// Routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/objects/{klass}", post(create))
        .route(
            "/v1/objects/{klass}/{id}",
            get(read).patch(patch).put(replace).delete(remove),
        )
        .route("/v1/objects/{klass}/{a}/{b}", get(get_sub).put(put_sub).post(post_sub))
}

type Params = Query<HashMap<String, String>>;

async fn create(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(klass): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    let opts = write_options(&q, &headers)?;
    let v = s.app.create_object(&c, &klass, &b, opts).await?;
    let rev = v["rev"].as_u64().unwrap_or(1);
    Ok(json_rev(StatusCode::CREATED, v, rev))
}

async fn read(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path((klass, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (v, rev) = s.app.get_object(&c, &klass, &id)?;
    Ok(json_rev(StatusCode::OK, v, rev))
}

async fn update(
    s: ApiState,
    c: crate::service::Caller,
    (klass, id): (String, String),
    q: HashMap<String, String>,
    headers: HeaderMap,
    b: serde_json::Value,
    mode: Mode,
) -> ApiResult<Response> {
    let opts = write_options(&q, &headers)?;
    let v = s.app.update_object(&c, &klass, &id, &b, mode, opts).await?;
    let rev = v["rev"].as_u64().unwrap_or(0);
    Ok(json_rev(StatusCode::OK, v, rev))
}

async fn patch(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path((klass, id)): Path<(String, String)>,
    Query(q): Params,
    headers: HeaderMap,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    update(s, c, (klass, id), q, headers, b, Mode::Patch).await
}

async fn replace(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path((klass, id)): Path<(String, String)>,
    Query(q): Params,
    headers: HeaderMap,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    update(s, c, (klass, id), q, headers, b, Mode::Replace).await
}

async fn remove(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path((klass, id)): Path<(String, String)>,
    Query(q): Params,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let opts = write_options(&q, &headers)?;
    s.app.delete_object(&c, &klass, &id, opts).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn no_route() -> ApiError {
    ApiError(
        Problem::new(
            ErrorKind::NotFound,
            "no_route",
            "no such endpoint (see /v1/openapi.json)",
        )
        .into(),
    )
}

async fn get_sub(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path((klass, a, b)): Path<(String, String, String)>,
    Query(q): Params,
) -> ApiResult<Response> {
    match (klass.as_str(), a.as_str(), b.as_str()) {
        (_, "by-external-id", ext) => {
            let (v, rev) = s.app.get_by_external_id(&c, &klass, ext)?;
            Ok(json_rev(StatusCode::OK, v, rev))
        }
        ("customer", "by-email", email) => {
            let (v, rev) = s.app.get_customer_by_email(&c, email)?;
            Ok(json_rev(StatusCode::OK, v, rev))
        }
        (_, id, "timeline") => Ok(super::json_bytes(s.app.timeline_get(&c, &klass, id, &q).await?)),
        (_, id, "saved-searches") => Ok(axum::Json(s.app.object_segments(&c, &klass, id).await?).into_response()),
        _ => Err(no_route()),
    }
}

async fn put_sub(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path((klass, a, ext)): Path<(String, String, String)>,
    Query(q): Params,
    headers: HeaderMap,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    if a != "by-external-id" {
        return Err(no_route());
    }
    let opts = write_options(&q, &headers)?;
    let (created, v) = s.app.upsert_by_external_id(&c, &klass, &ext, &b, opts).await?;
    let rev = v["rev"].as_u64().unwrap_or(0);
    Ok(json_rev(
        if created { StatusCode::CREATED } else { StatusCode::OK },
        v,
        rev,
    ))
}

async fn post_sub(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path((klass, id, b)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if b != "timeline" {
        return Err(no_route());
    }
    Ok(super::json_bytes(s.app.timeline_post(&c, &klass, &id, &body).await?))
}
