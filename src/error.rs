//! Transport-agnostic error vocabulary shared by every layer.
//!
//! A [`Problem`] is one thing a caller got wrong (or one refusal), with a stable snake_case code,
//! a title that names the offending field in backticks, and where in the request it is. Layers
//! build problems; only `api::error` turns an [`ErrorKind`] into an HTTP status.

use std::borrow::Cow;
use std::fmt;

/// What kind of failure a problem is, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Malformed input: bad JSON, a bad query or parameter.
    BadRequest,
    /// No valid credentials.
    Unauthorized,
    /// Credentials valid, but the role may not do this.
    Forbidden,
    /// The thing does not exist, or the caller may not see it.
    NotFound,
    /// The request conflicts with the current state (duplicate id, klass in use...).
    Conflict,
    /// An `If-Match` precondition did not hold.
    PreconditionFailed,
    /// The body is larger than allowed.
    PayloadTooLarge,
    /// Well-formed input that fails validation against the schema.
    Unprocessable,
    /// The service cannot serve this right now (shutting down, overloaded).
    Unavailable,
    /// A bug or an I/O failure on our side.
    Internal,
}

/// The HTTP-like status number of a kind (used in bulk answers, which carry one per line).
pub fn error_status(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::BadRequest => 400,
        ErrorKind::Unauthorized => 401,
        ErrorKind::Forbidden => 403,
        ErrorKind::NotFound => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::PreconditionFailed => 412,
        ErrorKind::PayloadTooLarge => 413,
        ErrorKind::Unprocessable => 422,
        ErrorKind::Unavailable => 503,
        ErrorKind::Internal => 500,
    }
}

/// Where in the request a problem lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemSource {
    /// A JSON pointer into the request body (`/custom/totalNum`).
    Pointer(String),
    /// A query-string parameter (`pageSize`).
    Parameter(String),
    /// A request header (`If-Match`).
    Header(String),
}

/// One caller-facing problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The failure kind, which decides the status code at the edge.
    pub kind: ErrorKind,
    /// Stable machine-readable code (`invalid_attribute_value`).
    pub code: Cow<'static, str>,
    /// Human-readable sentence naming the offending thing in backticks.
    pub title: String,
    /// Where in the request the problem is, when it is in the request.
    pub source: Option<ProblemSource>,
}

impl Problem {
    /// Builds a problem without a source.
    pub fn new(kind: ErrorKind, code: impl Into<Cow<'static, str>>, title: impl Into<String>) -> Self {
        Problem {
            kind,
            code: code.into(),
            title: title.into(),
            source: None,
        }
    }

    /// Attaches a JSON pointer into the request body.
    pub fn at(mut self, pointer: impl Into<String>) -> Self {
        self.source = Some(ProblemSource::Pointer(pointer.into()));
        self
    }

    /// Attaches a query-string parameter name.
    pub fn param(mut self, name: impl Into<String>) -> Self {
        self.source = Some(ProblemSource::Parameter(name.into()));
        self
    }

    /// Attaches a header name.
    pub fn header(mut self, name: impl Into<String>) -> Self {
        self.source = Some(ProblemSource::Header(name.into()));
        self
    }

    /// Prefixes the pointer with `prefix` (used when a nested body is validated on its own).
    pub fn nested_under(mut self, prefix: &str) -> Self {
        match &mut self.source {
            Some(ProblemSource::Pointer(p)) => *p = format!("{prefix}{p}"),
            None => self.source = Some(ProblemSource::Pointer(prefix.to_string())),
            _ => {}
        }
        self
    }

    /// A 400 for a malformed request.
    pub fn bad_request(code: &'static str, title: impl Into<String>) -> Self {
        Problem::new(ErrorKind::BadRequest, code, title)
    }

    /// A 422 for input that fails validation.
    pub fn invalid(code: &'static str, title: impl Into<String>) -> Self {
        Problem::new(ErrorKind::Unprocessable, code, title)
    }

    /// A 404 for something absent or invisible to the caller.
    pub fn not_found(what: &str, id: &str) -> Self {
        Problem::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{what} `{id}` does not exist"),
        )
    }

    /// A 409.
    pub fn conflict(code: &'static str, title: impl Into<String>) -> Self {
        Problem::new(ErrorKind::Conflict, code, title)
    }

    /// A 403.
    pub fn forbidden(title: impl Into<String>) -> Self {
        Problem::new(ErrorKind::Forbidden, "forbidden", title)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.title)
    }
}
