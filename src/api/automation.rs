//! Business rules, workflows and runs, app events, hooks; and the public hook endpoints, which a
//! secret in the URL authenticates instead of a key.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{Auth, JsonBody};
use super::{json_status, ApiState};
use crate::error::{ErrorKind, Problem};

/// Routes.
pub fn routes(hook_limit: usize) -> Router<ApiState> {
    Router::new()
        .route("/v1/business-rules", post(create_rule).get(list_rules))
        .route(
            "/v1/business-rules/{id}",
            get(get_rule).patch(update_rule).delete(delete_rule),
        )
        .route("/v1/workflows", post(create_workflow).get(list_workflows))
        .route(
            "/v1/workflows/{id}",
            get(get_workflow).patch(update_workflow).delete(delete_workflow),
        )
        .route("/v1/workflows/{id}/runs", get(list_runs))
        .route("/v1/workflow-runs/{id}", get(get_run))
        .route("/v1/events", post(post_event))
        .route("/v1/hooks", post(create_hook).get(list_hooks))
        .route("/v1/hooks/{id}", get(get_hook).delete(delete_hook))
        .route(
            "/hooks/web/{id}/{secret}",
            post(web_hook).layer(DefaultBodyLimit::max(hook_limit)),
        )
        .route(
            "/hooks/email/{id}/{secret}",
            post(email_hook).layer(DefaultBodyLimit::max(hook_limit)),
        )
}

async fn create_rule(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::CREATED, s.app.create_rule(&c, &b)?))
}
async fn list_rules(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    Ok(json_status(
        StatusCode::OK,
        super::extract::paged(s.app.list_rules(&c)?, &q)?,
    ))
}
async fn get_rule(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.get_rule(&c, &id)?))
}
async fn update_rule(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.update_rule(&c, &id, &b)?))
}
async fn delete_rule(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.app.delete_rule(&c, &id)?;
    Ok(StatusCode::NO_CONTENT)
}
async fn create_workflow(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::CREATED, s.app.create_workflow(&c, &b)?))
}
async fn list_workflows(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    Ok(json_status(
        StatusCode::OK,
        super::extract::paged(s.app.list_workflows(&c)?, &q)?,
    ))
}
async fn get_workflow(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.get_workflow(&c, &id)?))
}
async fn update_workflow(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.update_workflow(&c, &id, &b)?))
}
async fn delete_workflow(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.app.delete_workflow(&c, &id)?;
    Ok(StatusCode::NO_CONTENT)
}
async fn list_runs(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let size = super::extract::page_size(&q)?;
    let after = super::extract::store_cursor_param(&q, "run")?;
    let mut page = s.app.list_runs(&c, &id, size, after.as_deref())?;
    if let Some(last) = page["nextCursor"].as_str().map(str::to_string) {
        page["nextCursor"] = serde_json::json!(super::extract::store_cursor("run", &last));
    }
    Ok(json_status(StatusCode::OK, page))
}
async fn get_run(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.get_run(&c, &id)?))
}
async fn post_event(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::ACCEPTED, s.app.post_event(&c, &b).await?))
}
async fn create_hook(State(s): State<ApiState>, Auth(c): Auth, JsonBody(b): JsonBody) -> ApiResult<Response> {
    Ok(json_status(StatusCode::CREATED, s.app.create_hook(&c, &b)?))
}
async fn list_hooks(
    State(s): State<ApiState>,
    Auth(c): Auth,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    Ok(json_status(
        StatusCode::OK,
        super::extract::paged(s.app.list_hooks(&c)?, &q)?,
    ))
}
async fn get_hook(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json_status(StatusCode::OK, s.app.get_hook(&c, &id)?))
}
async fn delete_hook(State(s): State<ApiState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.app.delete_hook(&c, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

fn too_large() -> ApiError {
    ApiError(
        Problem::new(
            ErrorKind::PayloadTooLarge,
            "payload_too_large",
            "the hook body is larger than the limit",
        )
        .into(),
    )
}

/// Parses `a=1&b=x+y` (repeated keys become lists).
fn form(body: &str) -> Value {
    let mut m = Map::new();
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            urlencoding::decode(&s.replace('+', " "))
                .map(|c| c.into_owned())
                .unwrap_or_else(|_| s.to_string())
        };
        let (k, v) = (dec(k), Value::String(dec(v)));
        match m.get_mut(&k) {
            Some(Value::Array(a)) => a.push(v),
            Some(existing) => *existing = Value::Array(vec![existing.clone(), v]),
            None => {
                m.insert(k, v);
            }
        }
    }
    Value::Object(m)
}

async fn web_hook(
    State(s): State<ApiState>,
    Path((id, secret)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError(Problem::bad_request("invalid_body", e.to_string()).into())
        }
    })?;
    let (rt, hook) = s.app.resolve_hook(&id, &secret, "web")?;
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_lowercase();
    let text = String::from_utf8_lossy(&body).into_owned();
    let parsed = if ctype.contains("application/x-www-form-urlencoded") {
        form(&text)
    } else if ctype.contains("json") || (ctype.is_empty() && text.trim_start().starts_with(['{', '['])) {
        crate::service::input::parse_json(&body)?
    } else if text.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    let mut hs = Map::new();
    for (k, v) in &headers {
        hs.insert(k.as_str().to_lowercase(), json!(v.to_str().unwrap_or_default()));
    }
    let data = json!({"body": parsed, "query": q, "headers": hs});
    Ok(json_status(
        StatusCode::ACCEPTED,
        s.app.deliver_hook(&rt, &hook, data).await?,
    ))
}

async fn email_hook(
    State(s): State<ApiState>,
    Path((id, secret)): Path<(String, String)>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError(Problem::bad_request("invalid_body", e.to_string()).into())
        }
    })?;
    let (rt, hook) = s.app.resolve_hook(&id, &secret, "email")?;
    let data = crate::service::automation::email::parse_message(&body).ok_or_else(|| {
        ApiError(Problem::bad_request("invalid_message", "the body is not an RFC 822 message").into())
    })?;
    Ok(json_status(
        StatusCode::ACCEPTED,
        s.app.deliver_hook(&rt, &hook, data).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_repeat() {
        assert_eq!(
            form("name=Ada+L%C3%B6&tag=a&tag=b"),
            json!({"name": "Ada Lö", "tag": ["a", "b"]})
        );
    }
}
