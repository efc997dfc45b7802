//! The HTTP API (axum): routes, authentication, request ids, metrics, and errors mapped once.
//!
//! `router(app)` builds the whole API so tests can drive it without a socket;
//! `serve(listener, app, shutdown)` runs it until `shutdown` resolves, then drains in-flight
//! requests, commits the indexes and flushes the store.
//!
//! Handlers are thin: parse the request, call one service use case, shape the response.

pub mod automation;
pub mod bulk;
pub mod directory;
pub mod error;
pub mod extract;
pub mod klasses;
pub mod metrics;
pub mod objects;
pub mod openapi;
pub mod saved;
pub mod search;
pub mod system;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::service::App;

/// Limits and settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Largest line of a bulk body, bytes.
    pub bulk_line_limit: usize,
    /// Largest hook body, bytes.
    pub hook_body_limit: usize,
    /// Request timeout (time to the response head).
    pub timeout: Duration,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            body_limit: 1 << 20,
            bulk_line_limit: 1 << 20,
            hook_body_limit: 256 << 10,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Shared state of the router.
#[derive(Clone)]
pub struct ApiState {
    /// The service.
    pub app: App,
    /// Request metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Limits.
    pub opts: Arc<ApiOptions>,
}

impl FromRef<ApiState> for App {
    fn from_ref(s: &ApiState) -> App {
        s.app.clone()
    }
}

/// The whole API.
pub fn router(app: App, opts: ApiOptions) -> Router {
    let state = ApiState {
        app,
        metrics: Arc::new(metrics::Metrics::default()),
        opts: Arc::new(opts.clone()),
    };
    let v1 = Router::new()
        .merge(directory::routes())
        .merge(klasses::routes())
        .merge(objects::routes())
        .merge(search::routes())
        .merge(saved::routes())
        .merge(bulk::routes())
        .layer(DefaultBodyLimit::max(opts.body_limit));
    let hooks = automation::routes(opts.hook_body_limit).layer(DefaultBodyLimit::max(opts.body_limit));
    Router::new()
        .merge(system::routes())
        .merge(v1)
        .merge(hooks)
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(CatchPanicLayer::custom(system::panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            opts.timeout,
        ))
        .with_state(state)
}

/// Request id, tracing span, metrics.
async fn track(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let mut resp = error::REQUEST_ID
        .scope(id.clone(), tracing::Instrument::instrument(next.run(req), span.clone()))
        .await;
    let status = resp.status().as_u16();
    let took = started.elapsed();
    state.metrics.record(&method, &route, status, took);
    let _e = span.enter();
    if status >= 500 {
        tracing::warn!(status, ms = took.as_secs_f64() * 1e3, "request failed");
    } else {
        tracing::debug!(status, ms = took.as_secs_f64() * 1e3, "request");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Serves the API on `listener` until `shutdown` resolves, then stops gracefully: in-flight
/// requests finish, indexes commit, the store flushes.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    opts: ApiOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(app.clone(), opts);
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    tracing::info!("http stopped; committing indexes and flushing the store");
    app.shutdown().await;
    Ok(())
}

/// A JSON response with a status.
pub fn json_status(status: StatusCode, v: serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// A response of pre-serialized JSON.
pub fn json_bytes(b: crate::service::search::JsonBytes) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], b.0).into_response()
}

/// A JSON object response with an `ETag` of its revision.
pub fn json_rev(status: StatusCode, v: serde_json::Value, rev: u64) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    if let Ok(h) = HeaderValue::from_str(&format!("\"{rev}\"")) {
        r.headers_mut().insert(axum::http::header::ETAG, h);
    }
    r
}
