//! The one place errors become HTTP: a transport-agnostic [`ErrorKind`] picks the status, and the
//! body is a list of JSON:API error objects. Internal failures are logged with the request id and
//! answered with a generic title carrying that id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{ErrorKind, Problem, ProblemSource};
use crate::service::ServiceError;

tokio::task_local! {
    /// The id of the request being served (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

/// The current request id, or `-`.
pub fn request_id() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_else(|_| "-".into())
}

/// The status of a kind.
pub fn status(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(crate::error::error_status(kind)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error answered by the API.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl<E: Into<ServiceError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

/// The JSON of one problem.
pub fn problem_json(p: &Problem) -> serde_json::Value {
    let mut o = json!({"status": status(p.kind).as_u16().to_string(), "code": p.code, "title": p.title});
    match &p.source {
        Some(ProblemSource::Pointer(ptr)) => o["source"] = json!({"pointer": ptr}),
        Some(ProblemSource::Parameter(name)) => o["source"] = json!({"parameter": name}),
        Some(ProblemSource::Header(name)) => o["source"] = json!({"header": name}),
        None => {}
    }
    o
}

/// The body and status of a service error.
pub fn error_body(e: &ServiceError) -> (StatusCode, serde_json::Value) {
    match e.problems() {
        Some(problems) if !problems.is_empty() => {
            let st = status(problems[0].kind);
            (
                st,
                json!({"errors": problems.iter().map(problem_json).collect::<Vec<_>>()}),
            )
        }
        _ => {
            let id = request_id();
            tracing::error!(request_id = %id, error = %e, "request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"errors": [{"status": "500", "code": "internal", "title": "internal error; see the server log", "meta": {"requestId": id}}]}),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (st, body) = error_body(&self.0);
        (st, axum::Json(body)).into_response()
    }
}

/// API result.
pub type ApiResult<T> = Result<T, ApiError>;
