//! `GET /v1/openapi.json`: a valid OpenAPI 3.1 document that cannot drift from the router. The
//! route table is read from `src/api/**/*.rs` at test time (every `.route("path", methods)`), and
//! every registered path and method must be documented, every documented operation must be
//! served, and each documented operation, called, must reach a handler (no `no_route`, no 405).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN_KEY as A};

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

/// One `.route(...)` call: its path and methods, and where it is.
#[derive(Debug, Clone)]
struct Route {
    path: String,
    methods: BTreeSet<String>,
    at: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
}

/// Source without `//` comments (good enough for route tables: their paths hold no `//`).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The methods of a method-router expression: `get(a).post(b)`, `post(x).layer(...)`,
/// `on(MethodFilter::GET, h)`, `any(h)`.
fn methods_of(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !is_ident(chars[i - 1])) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let before_path = start >= 2 && chars[start - 1] == ':' && chars[start - 2] == ':';
            if i < chars.len() && chars[i] == '(' && !before_path && METHODS.contains(&word.as_str()) {
                out.insert(word);
            } else if i < chars.len() && chars[i] == '(' && !before_path && word == "any" {
                out.extend(["get", "post", "put", "patch", "delete"].map(String::from));
            } else if before_path
                && word.chars().all(|c| c.is_ascii_uppercase())
                && METHODS.contains(&word.to_lowercase().as_str())
            {
                // MethodFilter::GET
                out.insert(word.to_lowercase());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Every `.route("...", ...)` call in `src/api`.
fn registered_routes() -> Vec<Route> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut routes = Vec::new();
    for f in &files {
        let src = strip_comments(&std::fs::read_to_string(f).unwrap());
        for unsupported in [".nest(", ".nest_service(", ".route_service(", ".route_layer("] {
            assert!(
                !src.contains(unsupported),
                "{} uses `{unsupported}`: teach tests/api/openapi.rs's route parser about it so the document check stays complete",
                f.display()
            );
        }
        let mut rest = src.as_str();
        while let Some(i) = rest.find(".route(") {
            let after = &rest[i + ".route(".len()..];
            let trimmed = after.trim_start();
            assert!(
                trimmed.starts_with('"'),
                "{}: `.route(` not followed by a string literal: {}",
                f.display(),
                &trimmed[..trimmed.len().min(80)]
            );
            let lit = &trimmed[1..];
            let end = lit.find('"').unwrap();
            let path = lit[..end].to_string();
            // The method router: up to the parenthesis closing `.route(`.
            let tail = &lit[end + 1..];
            let mut depth = 1;
            let mut close = tail.len();
            for (j, c) in tail.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let expr = &tail[..close];
            let methods = methods_of(expr);
            assert!(
                !methods.is_empty(),
                "{}: no methods found for route {path}: {expr}",
                f.display()
            );
            routes.push(Route {
                path,
                methods,
                at: format!("{}", f.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(f).display()),
            });
            rest = &tail[close..];
        }
    }
    routes
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param,
}

/// `/v1/users/{id}` -> [Lit(v1), Lit(users), Param]; axum `{*rest}` and `:id` are params too.
fn segments(path: &str) -> Vec<Seg> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            if (s.starts_with('{') && s.ends_with('}')) || s.starts_with(':') {
                Seg::Param
            } else {
                Seg::Lit(s.to_string())
            }
        })
        .collect()
}

/// Whether a route pattern serves a documented path: same length, literals equal, a route
/// parameter takes any documented segment (a literal keyword or a parameter).
fn serves(route: &[Seg], doc: &[Seg]) -> bool {
    route.len() == doc.len()
        && route.iter().zip(doc).all(|(r, d)| match (r, d) {
            (Seg::Param, _) => true,
            (Seg::Lit(a), Seg::Lit(b)) => a == b,
            (Seg::Lit(_), Seg::Param) => false,
        })
}

/// The routes of the registered table that serve a documented path, most specific first
/// (axum prefers literal segments).
fn route_for<'a>(routes: &'a [Route], doc_path: &str) -> Option<&'a Route> {
    let d = segments(doc_path);
    routes
        .iter()
        .filter(|r| serves(&segments(&r.path), &d))
        .max_by_key(|r| segments(&r.path).iter().filter(|s| matches!(s, Seg::Lit(_))).count())
}

fn doc_methods(item: &Value) -> BTreeSet<String> {
    item.as_object()
        .unwrap()
        .keys()
        .filter(|k| METHODS.contains(&k.as_str()))
        .cloned()
        .collect()
}

async fn document(t: &TestApp) -> Value {
    // No key needed.
    let r = t.raw("GET", "/v1/openapi.json", None, None, &[]).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let doc: Value = serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("the document is not valid JSON: {e}"));
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(kindred::api::openapi::DOCUMENT).unwrap()
    );
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_and_documents_every_registered_route_and_method() {
    let t = TestApp::new().await;
    let doc = document(&t).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi {version:?}");
    assert!(
        doc["info"]["title"].is_string() && doc["info"]["version"].is_string(),
        "{}",
        doc["info"]
    );
    let paths = doc["paths"].as_object().expect("paths");

    let routes = registered_routes();
    assert!(
        routes.len() >= 30,
        "the parser found only {} routes: {routes:#?}",
        routes.len()
    );
    for must in [
        "/health",
        "/metrics",
        "/v1/openapi.json",
        "/v1/bulk",
        "/v1/objects/{klass}/{id}",
    ] {
        assert!(
            routes.iter().any(|r| r.path == must),
            "the parser missed {must}: {routes:#?}"
        );
    }
    let documented: Vec<(Vec<Seg>, &String, BTreeSet<String>)> = paths
        .iter()
        .map(|(p, item)| (segments(p), p, doc_methods(item)))
        .collect();
    let mut missing = Vec::new();
    for r in &routes {
        let rs = segments(&r.path);
        // The same shape: exactly this route, documented with each of its methods.
        if let Some((_, p, ms)) = documented.iter().find(|(d, _, _)| *d == rs) {
            for m in &r.methods {
                if !ms.contains(m) {
                    missing.push(format!(
                        "{} {} ({}): documented as {p} without {m}",
                        m.to_uppercase(),
                        r.path,
                        r.at
                    ));
                }
            }
            continue;
        }
        // A dispatcher (`/v1/objects/{klass}/{a}/{b}`): each method on some documented path it serves.
        let served: Vec<&(Vec<Seg>, &String, BTreeSet<String>)> =
            documented.iter().filter(|(d, _, _)| serves(&rs, d)).collect();
        for m in &r.methods {
            if !served.iter().any(|(_, _, ms)| ms.contains(m)) {
                missing.push(format!(
                    "{} {} ({}): no documented path it serves has {m}",
                    m.to_uppercase(),
                    r.path,
                    r.at
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from src/api/openapi.json:\n{}",
        missing.join("\n")
    );

    // The dispatcher's paths, by name.
    let want = [
        ("/v1/objects/{klass}/by-external-id/{externalId}", &["get", "put"][..]),
        ("/v1/objects/customer/by-email/{email}", &["get"][..]),
        ("/v1/objects/{klass}/{id}/timeline", &["get", "post"][..]),
        ("/v1/objects/{klass}/{id}/saved-searches", &["get"][..]),
        ("/health", &["get"][..]),
        ("/metrics", &["get"][..]),
        ("/v1/openapi.json", &["get"][..]),
    ];
    for (p, ms) in want {
        let item = paths.get(p).unwrap_or_else(|| panic!("{p} is not documented"));
        for m in ms {
            assert!(item.get(*m).is_some(), "{} {p} is not documented", m.to_uppercase());
        }
    }

    // Nothing documented that the router does not serve.
    let mut extra = Vec::new();
    for (p, item) in paths {
        match route_for(&routes, p) {
            None => extra.push(format!("{p}: no registered route serves it")),
            Some(r) => {
                for m in doc_methods(item) {
                    if !r.methods.contains(&m) {
                        extra.push(format!(
                            "{} {p}: the route {} ({}) has no {m}",
                            m.to_uppercase(),
                            r.path,
                            r.at
                        ));
                    }
                }
            }
        }
    }
    assert!(extra.is_empty(), "documented but not served:\n{}", extra.join("\n"));
}

/// Resolves a local `$ref`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved $ref {r}"));
            resolve(doc, target)
        }
        None => v,
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_complete_and_every_reference_resolves() {
    let t = TestApp::new().await;
    let doc = document(&t).await;
    // References.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "{}", refs.len());
    for r in &refs {
        assert!(r.starts_with("#/"), "only local references: {r}");
        assert!(doc.pointer(&r[1..]).is_some(), "unresolved $ref {r}");
    }
    // The bearer scheme, required by default.
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer")),
        "{scheme}"
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    // The JSON:API error schema.
    let errors = resolve(&doc, &doc["components"]["schemas"]["Errors"]);
    let item = resolve(&doc, &errors["properties"]["errors"]["items"]);
    for f in ["status", "code", "title", "source"] {
        assert!(
            item["properties"].get(f).is_some(),
            "error objects document `{f}`: {item}"
        );
    }
    for f in ["pointer", "parameter"] {
        assert!(item["properties"]["source"]["properties"].get(f).is_some(), "{item}");
    }
    // Documented choices.
    let text = doc.to_string();
    for phrase in [
        "wait_for",
        "If-Match",
        "ETag",
        "405",
        "lowercased",
        "analysts may read klasses, users and teams",
        "merge",
    ] {
        assert!(text.contains(phrase), "the document says something about `{phrase}`");
    }

    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    for (p, item) in doc["paths"].as_object().unwrap() {
        let path_params: Vec<Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for m in doc_methods(item) {
            let op = &item[&m];
            let at = format!("{} {p}", m.to_uppercase());
            if op["summary"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{at}: no summary"));
            }
            if let Some(id) = op["operationId"].as_str() {
                if !ids.insert(id.to_string()) {
                    problems.push(format!("{at}: duplicate operationId {id}"));
                }
            } else {
                problems.push(format!("{at}: no operationId"));
            }
            // Every template variable is a declared path parameter.
            let mut params: Vec<Value> = path_params.clone();
            params.extend(
                op.get("parameters")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            let declared: BTreeSet<String> = params
                .iter()
                .map(|x| resolve(&doc, x))
                .filter(|x| x["in"] == "path")
                .map(|x| {
                    assert_eq!(x["required"], true, "{at}: path parameters are required: {x}");
                    x["name"].as_str().unwrap().to_string()
                })
                .collect();
            let vars: BTreeSet<String> = p
                .split('/')
                .filter(|s| s.starts_with('{'))
                .map(|s| s.trim_matches(|c| c == '{' || c == '}').to_string())
                .collect();
            if declared != vars {
                problems.push(format!("{at}: path parameters {declared:?}, template {vars:?}"));
            }
            // Responses: a success, and errors in the JSON:API format.
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{at}: no responses"));
            if !responses.keys().any(|c| c.starts_with('2')) {
                problems.push(format!("{at}: no success response"));
            }
            let public = op.get("security") == Some(&json!([]));
            if !public {
                for code in ["401", "405"] {
                    if !responses.contains_key(code) {
                        problems.push(format!("{at}: no {code} response"));
                    }
                }
            }
            for (code, r) in responses {
                let r = resolve(&doc, r);
                if !r["description"].is_string() {
                    problems.push(format!("{at} {code}: no description"));
                }
                if code.starts_with('4') || code.starts_with('5') {
                    let schema = &r["content"]["application/json"]["schema"];
                    if schema.get("$ref").and_then(Value::as_str) != Some("#/components/schemas/Errors") {
                        problems.push(format!("{at} {code}: not the JSON:API error schema"));
                    }
                }
            }
            // Writes with a body describe it.
            if ["post", "put", "patch"].contains(&m.as_str()) {
                let body = resolve(&doc, &op["requestBody"]);
                let content = body["content"].as_object();
                if content.is_none_or(|c| c.values().all(|x| x.get("schema").is_none())) {
                    problems.push(format!("{at}: no request body schema"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Schemas the brief names exist.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "KlassInput",
        "ObjectInput",
        "Object",
        "SearchBody",
        "SavedSearchInput",
        "ReportBody",
        "BulkLine",
        "BulkAnswerLine",
        "Errors",
    ] {
        assert!(schemas.contains_key(s), "schema {s}");
    }
}

/// A concrete URL for a documented path.
fn concrete(p: &str) -> String {
    p.split('/')
        .map(|s| match s {
            "{klass}" | "{name}" => "customer".to_string(),
            "{email}" => "nobody@example.com".to_string(),
            "{externalId}" => "ext-nobody".to_string(),
            s if s.starts_with('{') => "nobody".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_reaches_a_handler_and_keys_are_required_where_documented() {
    let t = TestApp::new().await;
    let doc = document(&t).await;
    let mut problems = Vec::new();
    let mut calls: BTreeMap<String, u16> = BTreeMap::new();
    for (p, item) in doc["paths"].as_object().unwrap() {
        for m in doc_methods(item) {
            let url = concrete(p);
            let method = m.to_uppercase();
            let body = ["post", "put", "patch"].contains(&m.as_str()).then(|| b"{}".to_vec());
            let public = item[&m].get("security") == Some(&json!([]));
            // Without a key: 401 unless the operation is documented as public.
            let r = t.raw(&method, &url, None, body.clone(), &[]).await;
            if public {
                // Public: no key needed (hooks answer 404 to a wrong id or secret, but not 401).
                let ok = r.status.as_u16() == 200
                    || (p.starts_with("/hooks/")
                        && r.status.as_u16() == 404
                        && r.body["errors"][0]["code"] != "no_route");
                if !ok {
                    problems.push(format!("{method} {url} (public): {} {}", r.status, r.text));
                }
            } else if r.status.as_u16() != 401 {
                problems.push(format!("{method} {url} without a key: {} instead of 401", r.status));
            }
            // With the admin key: a handler answers (whatever it thinks of the placeholders).
            let r = t.raw(&method, &url, Some(A), body, &[]).await;
            calls.insert(format!("{method} {url}"), r.status.as_u16());
            if r.status.as_u16() == 405 || r.body["errors"][0]["code"] == "no_route" {
                problems.push(format!(
                    "{method} {url}: documented but not routed: {} {}",
                    r.status, r.text
                ));
            }
            if r.status.as_u16() >= 500 {
                problems.push(format!("{method} {url}: {} {}", r.status, r.text));
            }
        }
    }
    assert!(problems.is_empty(), "{}\n(all calls: {calls:#?})", problems.join("\n"));
    // A known path with another method: 405 in the error format, as documented.
    let r = t.raw("DELETE", "/v1/search", Some(A), None, &[]).await;
    assert_eq!(r.status.as_u16(), 405, "{}", r.text);
    assert_eq!(r.body["errors"][0]["status"], "405", "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "method_not_allowed", "{}", r.text);
    // An unknown path: 404 in the error format.
    let r = t.raw("GET", "/v1/nothing-here", Some(A), None, &[]).await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "no_route", "{}", r.text);
    // The dispatcher's unknown keywords are 404 no_route too (and not documented).
    let r = t
        .raw("GET", "/v1/objects/customer/c1/frobnicate", Some(A), None, &[])
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["errors"][0]["code"].as_str()),
        (404, Some("no_route")),
        "{}",
        r.text
    );
}

#[test]
fn the_route_parser_reads_method_chains() {
    let m = |s: &str| methods_of(s).into_iter().collect::<Vec<_>>();
    assert_eq!(m(r#", get(list).post(create))"#), ["get", "post"]);
    assert_eq!(m(r#", post(bulk).layer(DefaultBodyLimit::disable()))"#), ["post"]);
    assert_eq!(
        m(r#", get(get_sub).put(put_sub).post(post_sub))"#),
        ["get", "post", "put"]
    );
    assert_eq!(m(r#", delete(delete_user))"#), ["delete"]);
    assert_eq!(m(r#", on(MethodFilter::PATCH, h))"#), ["patch"]);
    assert!(
        segments("/v1/objects/{klass}/{a}/{b}")
            .iter()
            .filter(|s| **s == Seg::Param)
            .count()
            == 3
    );
    assert!(serves(
        &segments("/v1/objects/{klass}/{a}/{b}"),
        &segments("/v1/objects/customer/by-email/{email}")
    ));
    assert!(!serves(
        &segments("/v1/objects/{klass}/{id}"),
        &segments("/v1/objects/{klass}/{id}/timeline")
    ));
    assert!(!serves(&segments("/v1/search/count"), &segments("/v1/search/{x}")));
}
