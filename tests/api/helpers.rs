//! Shared harness: a service on a temp dir, driven through the real router without a socket.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use kindred::service::{App, AppOptions, Clock};
use serde_json::{json, Value};
use tower::ServiceExt;

pub const ADMIN_KEY: &str = "kdr_test_admin_key_0123456789";

/// A pinned clock (2026-01-01T00:00:00Z unless moved).
pub struct FixedClock(pub std::sync::atomic::AtomicI64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[allow(dead_code)] // not every test module reaches into the service or the data dir
pub struct TestApp {
    pub app: App,
    pub router: Router,
    pub dir: tempfile::TempDir,
}

/// The answer to a request.
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Resp {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        self.body
    }

    /// The first error's pointer.
    pub fn pointer(&self) -> Option<&str> {
        self.body["errors"][0]["source"]["pointer"].as_str()
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        Self::open(dir).await
    }

    pub async fn open(dir: tempfile::TempDir) -> TestApp {
        let mut opts = AppOptions::new(dir.path());
        opts.admin_key = Some(ADMIN_KEY.into());
        opts.announce_admin_key = false;
        opts.index.commit_interval_ms = 50;
        let app = App::open(opts).unwrap();
        let router = kindred::api::router(app.clone(), kindred::api::ApiOptions::default());
        TestApp { app, router, dir }
    }

    pub async fn with_clock(now: i64) -> (TestApp, Arc<FixedClock>) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock(std::sync::atomic::AtomicI64::new(now)));
        let mut opts = AppOptions::new(dir.path());
        opts.admin_key = Some(ADMIN_KEY.into());
        opts.announce_admin_key = false;
        opts.index.commit_interval_ms = 50;
        opts.clock = clock.clone();
        let app = App::open(opts).unwrap();
        let router = kindred::api::router(app.clone(), kindred::api::ApiOptions::default());
        (TestApp { app, router, dir }, clock)
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        for (h, v) in headers {
            req = req.header(*h, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            headers,
            text,
        }
    }

    pub async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Resp {
        self.raw(
            method,
            path,
            Some(key),
            body.map(|b| serde_json::to_vec(&b).unwrap()),
            &[],
        )
        .await
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.call("GET", path, key, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call("POST", path, key, Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call("PATCH", path, key, Some(body)).await
    }

    pub async fn put(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call("PUT", path, key, Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Resp {
        self.call("DELETE", path, key, None).await
    }

    /// Creates a user with a role and returns a key of theirs.
    pub async fn user_key(&self, admin: &str, id: &str, role: &str, teams: &[&str]) -> String {
        self.post(
            "/v1/users",
            admin,
            json!({"id": id, "name": id, "email": format!("{id}@example.com"), "role": role, "teams": teams}),
        )
        .await
        .expect(201);
        let k = self
            .post(&format!("/v1/users/{id}/keys"), admin, json!({}))
            .await
            .expect(201);
        k["key"].as_str().unwrap().to_string()
    }

    /// Creates an org with the platform key and returns its admin key.
    pub async fn new_org(&self, name: &str) -> String {
        let o = self
            .post("/v1/orgs", ADMIN_KEY, json!({"name": name}))
            .await
            .expect(201);
        o["adminKey"].as_str().unwrap().to_string()
    }

    /// Creates an object and waits until it is searchable.
    pub async fn create(&self, key: &str, klass: &str, body: Value) -> Value {
        self.post(&format!("/v1/objects/{klass}?refresh=wait_for"), key, body)
            .await
            .expect(201)
    }

    /// Ids of a search's results.
    pub async fn search_ids(&self, key: &str, body: Value) -> Vec<String> {
        let r = self.post("/v1/search", key, body).await.expect(200);
        r["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    }
}

// ---- shared assertions ----

/// Asserts a JSON:API error answer with this status, and returns the first error.
#[track_caller]
pub fn assert_error(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status.as_u16(), status, "unexpected status; body: {}", r.text);
    let errors = r.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no `errors` list in {}", r.text));
    assert!(!errors.is_empty(), "empty `errors` in {}", r.text);
    for e in errors {
        assert_eq!(e["status"], status.to_string(), "error status; body: {}", r.text);
        assert!(
            e["code"].as_str().is_some_and(|c| !c.is_empty()),
            "error without code: {}",
            r.text
        );
        assert!(
            e["title"].as_str().is_some_and(|t| !t.is_empty()),
            "error without title: {}",
            r.text
        );
    }
    errors[0].clone()
}

/// Asserts a JSON:API error with this status whose first problem points at `pointer`.
#[track_caller]
pub fn assert_invalid(r: &Resp, status: u16, pointer: &str) -> Value {
    let e = assert_error(r, status);
    assert_eq!(r.pointer(), Some(pointer), "unexpected pointer; body: {}", r.text);
    e
}

/// Every pointer of an error answer.
pub fn pointers(r: &Resp) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .map(|es| {
            es.iter()
                .filter_map(|e| e["source"]["pointer"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The ids of a list answer's `data`, in order.
#[track_caller]
pub fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no `data` list in {list}"))
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}
