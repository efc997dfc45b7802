//! Automation over HTTP: business rules inside writes (order, at most once, one atomic write and
//! one event, failures that store nothing, rules the schema outgrew), workflows and every trigger
//! kind (object events with `changed`, web and email hooks, SMTP, app events, schedules,
//! date_reached), every step action and its output, templates, `http.request` against a local
//! server (success, retry after a 5xx, hosts that are not allowed), durable runs across SIGTERM
//! and SIGKILL, at-least-once deliveries without duplicate effects, loop protection, tenancy and
//! role denials; and the end-to-end flows: "Contact us" and an order system feeding the timeline.
//!
//! Runs are asynchronous: every wait polls the run (or the workflow's runs) with a deadline.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tower::ServiceExt;

use crate::helpers::{ids, Resp, TestApp, ADMIN_KEY as A};

/// How long a run may take to finish in the in-process tests.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// In-process helpers
// ---------------------------------------------------------------------------------------------

fn is_final(status: &str) -> bool {
    status == "succeeded" || status == "failed"
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("run without steps: {run}"))
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {run}"))
}

/// A request with any content type, no bearer key (hook endpoints).
async fn send(t: &TestApp, path: &str, content_type: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Resp {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", content_type);
    for (h, v) in headers {
        req = req.header(*h, *v);
    }
    let resp = t
        .router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
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

/// Asserts an error answer: one of `statuses`, and the first error's pointer starts with `pointer`.
#[track_caller]
fn assert_invalid(r: &Resp, statuses: &[u16], pointer: &str) {
    assert!(
        statuses.contains(&r.status.as_u16()),
        "expected one of {statuses:?}, got {}: {}",
        r.status,
        r.text
    );
    let p = r.pointer().unwrap_or_else(|| panic!("no source.pointer in {}", r.text));
    assert!(
        p.starts_with(pointer),
        "pointer {p} does not start with {pointer}: {}",
        r.text
    );
}

async fn create_workflow(t: &TestApp, key: &str, trigger: Value, steps: Value) -> String {
    let wf = t
        .post(
            "/v1/workflows",
            key,
            json!({"name": "wf", "enabled": true, "trigger": trigger, "steps": steps}),
        )
        .await
        .expect(201);
    wf["id"].as_str().unwrap().to_string()
}

/// A workflow on `event` whose one step (`s1`) does nothing: for tests about runs themselves.
async fn noop_workflow(t: &TestApp, key: &str, event: &str) -> String {
    create_workflow(
        t,
        key,
        json!({"event": event}),
        json!([{"id": "s1", "action": "noop", "params": {}}]),
    )
    .await
}

async fn create_rule(t: &TestApp, key: &str, body: Value) -> String {
    t.post("/v1/business-rules", key, body).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn create_hook(t: &TestApp, key: &str, kind: &str) -> Value {
    t.post("/v1/hooks", key, json!({"name": format!("{kind} hook"), "type": kind}))
        .await
        .expect(201)
}

/// Posts JSON to a web hook's URL (no key).
async fn post_hook(t: &TestApp, hook: &Value, body: Value) -> Resp {
    t.raw(
        "POST",
        hook["url"].as_str().unwrap(),
        None,
        Some(serde_json::to_vec(&body).unwrap()),
        &[],
    )
    .await
}

/// `POST /v1/events`; the ids of the runs it started.
async fn post_event(t: &TestApp, key: &str, kind: &str, data: Value) -> Vec<String> {
    let r = t
        .post("/v1/events", key, json!({"type": kind, "data": data}))
        .await
        .expect(202);
    assert_eq!(r["accepted"], true, "{r}");
    r["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("no runs in {r}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

async fn one_run(t: &TestApp, key: &str, kind: &str, data: Value) -> String {
    let runs = post_event(t, key, kind, data).await;
    assert_eq!(runs.len(), 1, "expected one run: {runs:?}");
    runs[0].clone()
}

async fn get_run(t: &TestApp, key: &str, run: &str) -> Value {
    t.get(&format!("/v1/workflow-runs/{run}"), key).await.expect(200)
}

/// Polls a run until it is final.
async fn wait_run(t: &TestApp, key: &str, run: &str) -> Value {
    wait_run_for(t, key, run, WAIT).await
}

async fn wait_run_for(t: &TestApp, key: &str, run: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let r = get_run(t, key, run).await;
        if is_final(r["status"].as_str().unwrap_or_default()) {
            return r;
        }
        assert!(Instant::now() < deadline, "run {run} did not finish in {limit:?}: {r}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls a run until it succeeds (and fails the test if it fails).
async fn wait_succeeded(t: &TestApp, key: &str, run: &str) -> Value {
    let r = wait_run(t, key, run).await;
    assert_eq!(r["status"], "succeeded", "run failed: {r}");
    r
}

async fn runs_of(t: &TestApp, key: &str, wf: &str) -> Vec<Value> {
    let r = t.get(&format!("/v1/workflows/{wf}/runs"), key).await.expect(200);
    r["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {r}"))
        .clone()
}

/// Polls until the workflow has at least `n` runs, all final; returns them (newest first).
async fn wait_runs(t: &TestApp, key: &str, wf: &str, n: usize) -> Vec<Value> {
    wait_runs_for(t, key, wf, n, WAIT).await
}

async fn wait_runs_for(t: &TestApp, key: &str, wf: &str, n: usize, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let runs = runs_of(t, key, wf).await;
        if runs.len() >= n && runs.iter().all(|r| is_final(r["status"].as_str().unwrap_or_default())) {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "workflow {wf}: expected {n} finished runs in {limit:?}, have {}: {runs:#?}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits for exactly `n` finished runs and checks the count stays `n` for `settle`.
async fn exactly_runs(t: &TestApp, key: &str, wf: &str, n: usize, settle: Duration) -> Vec<Value> {
    let runs = wait_runs(t, key, wf, n).await;
    assert_eq!(runs.len(), n, "workflow {wf}: more runs than expected: {runs:#?}");
    let until = Instant::now() + settle;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = runs_of(t, key, wf).await;
        assert_eq!(now.len(), n, "workflow {wf}: runs kept coming: {now:#?}");
    }
    runs_of(t, key, wf).await
}

/// A customer, searchable.
async fn customer(t: &TestApp, key: &str, id: &str, email: &str) -> Value {
    t.create(key, "customer", json!({"id": id, "name": id, "emails": [email]}))
        .await
}

/// Objects of a search, once every earlier write is searchable.
async fn count_after_refresh(t: &TestApp, key: &str, body: Value) -> u64 {
    // A write with refresh=wait_for is visible only once every write before it is.
    t.create(key, "note", json!({"body": "refresh marker"})).await;
    t.post("/v1/search/count", key, body).await.expect(200)["total"]
        .as_u64()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Business rules
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_rules_are_created_listed_updated_and_deleted_and_invalid_ones_are_refused() {
    let t = TestApp::new().await;
    let r = t
        .post("/v1/business-rules", A, json!({"name": "Tag refunds", "klass": "conversation",
            "conditions": {"and": [{"subject": {"contains": "refund"}}]}, "actions": [{"addTags": ["refund"]}], "order": 3}))
        .await
        .expect(201);
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["name"], "Tag refunds");
    assert_eq!(r["klass"], "conversation");
    assert_eq!(r["on"], json!(["created", "updated"]), "`on` defaults to both");
    assert_eq!(r["enabled"], true);
    assert_eq!(r["order"], 3);
    assert_eq!(r["actions"], json!([{"addTags": ["refund"]}]));

    let one = t.get(&format!("/v1/business-rules/{id}"), A).await.expect(200);
    assert_eq!(one["id"], id.as_str());
    let list = t.get("/v1/business-rules", A).await.expect(200);
    assert_eq!(ids(&list), vec![id.clone()]);
    assert_eq!(list["total"], 1);

    let p = t
        .patch(
            &format!("/v1/business-rules/{id}"),
            A,
            json!({"enabled": false, "order": 7, "on": ["created"]}),
        )
        .await
        .expect(200);
    assert_eq!(
        (p["enabled"].clone(), p["order"].clone(), p["on"].clone()),
        (json!(false), json!(7), json!(["created"]))
    );
    assert_eq!(p["name"], "Tag refunds", "PATCH keeps what it does not name");
    assert_eq!(
        t.get(&format!("/v1/business-rules/{id}"), A).await.expect(200)["enabled"],
        false
    );

    // Invalid rules.
    let r = t
        .post(
            "/v1/business-rules",
            A,
            json!({"name": "x", "klass": "nope", "actions": []}),
        )
        .await;
    assert_invalid(&r, &[422], "/klass");
    let r = t
        .post(
            "/v1/business-rules",
            A,
            json!({"name": "x", "klass": "conversation", "actions": [{"explode": {}}]}),
        )
        .await;
    assert_invalid(&r, &[422], "/actions/0");
    let r = t
        .post(
            "/v1/business-rules",
            A,
            json!({"name": "x", "klass": "conversation", "actions": [{"addTags": "vip"}]}),
        )
        .await;
    assert_invalid(&r, &[422], "/actions/0");
    let r = t
        .post(
            "/v1/business-rules",
            A,
            json!({"name": "x", "klass": "conversation", "on": ["deleted"], "actions": []}),
        )
        .await;
    assert_invalid(&r, &[422], "/on");
    // Actions that could never apply: refused when the rule is made, not at every write it matches.
    for (action, pointer) in [
        (json!({"set": {"priority": 9}}), "/actions/1/set/priority"),
        (json!({"set": {"nope": 1}}), "/actions/1/set/nope"),
        (
            json!({"set": {"custom": {"levelNum": "high"}}}),
            "/actions/1/set/custom/levelNum",
        ),
        (json!({"assign": {"team": "ghost"}}), "/actions/1/assign"),
        (json!({"assign": {"user": "ghost"}}), "/actions/1/assign"),
    ] {
        let r = t
            .post(
                "/v1/business-rules",
                A,
                json!({"name": "x", "klass": "conversation", "actions": [{"addTags": ["a"]}, action]}),
            )
            .await;
        assert_invalid(&r, &[422], pointer);
        assert_eq!(r.body["errors"][0]["code"], "invalid_action", "{}", r.text);
    }
    // Only the fields an action sets count: a required attribute it does not set is no reason.
    t.post(
        "/v1/klasses",
        A,
        json!({"name": "parcel", "attributes": [
        {"name": "sku", "type": "string", "required": true}, {"name": "note", "type": "string"}]}),
    )
    .await
    .expect(201);
    let parcel_rule = t
        .post(
            "/v1/business-rules",
            A,
            json!({"name": "note parcels", "klass": "parcel", "actions": [{"set": {"custom": {"note": "x"}}}]}),
        )
        .await
        .expect(201);
    // A klass changed alone is checked against the rule's actions too.
    let r = t
        .patch(
            &format!("/v1/business-rules/{}", parcel_rule["id"].as_str().unwrap()),
            A,
            json!({"klass": "customer"}),
        )
        .await;
    assert_invalid(&r, &[422], "/actions/0/set/custom/note");
    t.delete(
        &format!("/v1/business-rules/{}", parcel_rule["id"].as_str().unwrap()),
        A,
    )
    .await
    .expect(204);
    let r = t
        .post("/v1/business-rules", A, json!({"name": "x", "klass": "conversation", "conditions": {"and": [{"custom.nopeStr": {"equals": "x"}}]}, "actions": []}))
        .await;
    assert_invalid(&r, &[400, 422], "/conditions");
    let r = t
        .post("/v1/business-rules", A, json!({"name": "x", "klass": "conversation", "conditions": {"and": [{"priority": {"contains": "x"}}]}, "actions": []}))
        .await;
    assert_invalid(&r, &[400, 422], "/conditions");
    let r = t
        .post("/v1/business-rules", A, json!({"name": "x", "klass": "conversation", "conditions": {"and": [{"customer.custom.nopeBool": {"equals": true}}]}, "actions": []}))
        .await;
    assert_invalid(&r, &[400, 422], "/conditions");
    let r = t
        .patch(
            &format!("/v1/business-rules/{id}"),
            A,
            json!({"conditions": {"and": [{"status": {"equals": "archived"}}]}}),
        )
        .await;
    assert_invalid(&r, &[400, 422], "/conditions");
    assert_eq!(
        t.get("/v1/business-rules", A).await.expect(200)["total"],
        1,
        "refused rules are not stored"
    );

    t.delete(&format!("/v1/business-rules/{id}"), A).await.expect(204);
    t.get(&format!("/v1/business-rules/{id}"), A).await.expect(404);
    t.patch(&format!("/v1/business-rules/{id}"), A, json!({"enabled": true}))
        .await
        .expect(404);
    t.delete(&format!("/v1/business-rules/{id}"), A).await.expect(404);
    assert_eq!(t.get("/v1/business-rules", A).await.expect(200)["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_run_in_ascending_order_each_once_and_later_rules_see_earlier_changes() {
    let t = TestApp::new().await;
    customer(&t, A, "cu", "cu@example.com").await;
    // Order 5 runs first, before any other rule changed the priority, and is not run again
    // after r20 makes its condition hold.
    create_rule(
        &t,
        A,
        json!({"name": "r5 sees priority 3", "klass": "conversation", "order": 5,
        "conditions": {"and": [{"priority": {"equals": 3}}]}, "actions": [{"addTags": ["r5"]}]}),
    )
    .await;
    create_rule(&t, A, json!({"name": "r20 sees r10", "klass": "conversation", "order": 20,
        "conditions": {"and": [{"priority": {"equals": 2}}, {"tags": {"equals": "r10"}}]}, "actions": [{"set": {"priority": 3}}, {"addTags": ["r20"]}]})).await;
    create_rule(
        &t,
        A,
        json!({"name": "r10", "klass": "conversation", "order": 10,
        "actions": [{"set": {"priority": 2}}, {"addTags": ["r10"]}]}),
    )
    .await;
    create_rule(
        &t,
        A,
        json!({"name": "r30 removes", "klass": "conversation", "order": 30,
        "conditions": {"and": [{"tags": {"equals": "r20"}}]}, "actions": [{"removeTags": ["incoming"]}]}),
    )
    .await;
    create_rule(&t, A, json!({"name": "disabled", "klass": "conversation", "order": 1, "enabled": false, "actions": [{"addTags": ["disabled"]}]})).await;
    create_rule(&t, A, json!({"name": "updates only", "klass": "conversation", "order": 2, "on": ["updated"], "actions": [{"addTags": ["upd"]}]})).await;
    create_rule(
        &t,
        A,
        json!({"name": "other klass", "klass": "note", "order": 0, "actions": [{"addTags": ["note-rule"]}]}),
    )
    .await;

    let c = t
        .post(
            "/v1/objects/conversation",
            A,
            json!({"id": "cv1", "customer": "cu", "subject": "hello", "tags": ["incoming"]}),
        )
        .await
        .expect(201);
    assert_eq!(c["priority"], 3, "r10 then r20 ran: {c}");
    let tags: BTreeSet<String> = c["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tags,
        ["r10", "r20"].iter().map(|s| s.to_string()).collect(),
        "r5 ran before and not again; r30 removed `incoming`; no disabled or update-only rule: {c}"
    );
    assert_eq!(
        t.get("/v1/objects/conversation/cv1", A).await.expect(200),
        c,
        "the answer is what was stored"
    );

    // On update, the update-only rule runs too (and the others again, once each).
    let u = t
        .patch("/v1/objects/conversation/cv1", A, json!({"subject": "hello again"}))
        .await
        .expect(200);
    let tags: BTreeSet<String> = u["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // The update starts at priority 3 and tags {r10, r20}: r5 now holds, r10 sets 2 again, r20 sets 3.
    assert!(
        tags.contains("upd") && tags.contains("r5") && tags.contains("r10") && tags.contains("r20"),
        "{u}"
    );
    assert!(!tags.contains("disabled"), "{u}");
    assert_eq!(u["priority"], 3, "{u}");

    // Re-enabling the disabled rule makes it run on the next write.
    let rules = t.get("/v1/business-rules", A).await.expect(200);
    let disabled = rules["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "disabled")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.patch(&format!("/v1/business-rules/{disabled}"), A, json!({"enabled": true}))
        .await
        .expect(200);
    let u = t
        .patch("/v1/objects/conversation/cv1", A, json!({"subject": "third"}))
        .await
        .expect(200);
    assert!(u["tags"].as_array().unwrap().contains(&json!("disabled")), "{u}");
    // A note only sees the note rule.
    let n = t
        .post("/v1/objects/note", A, json!({"customer": "cu", "body": "x"}))
        .await
        .expect(201);
    assert_eq!(n["tags"], json!(["note-rule"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_changes_are_part_of_the_same_write_and_of_the_same_event() {
    let t = TestApp::new().await;
    customer(&t, A, "cu", "cu@example.com").await;
    t.post("/v1/teams", A, json!({"id": "support", "name": "Support"}))
        .await
        .expect(201);
    create_rule(
        &t,
        A,
        json!({"name": "route", "klass": "conversation", "on": ["created"],
        "actions": [{"assign": {"team": "support"}}, {"set": {"priority": 4}}, {"addTags": ["routed"]}]}),
    )
    .await;
    let created = noop_workflow(&t, A, "conversation.created").await;
    let updated = noop_workflow(&t, A, "conversation.updated").await;

    let c = t
        .post(
            "/v1/objects/conversation",
            A,
            json!({"id": "cv1", "customer": "cu", "subject": "hi"}),
        )
        .await
        .expect(201);
    assert_eq!(
        (c["assignedTeam"].clone(), c["priority"].clone(), c["tags"].clone()),
        (json!("support"), json!(4), json!(["routed"])),
        "{c}"
    );
    let stored = t.get("/v1/objects/conversation/cv1", A).await.expect(200);
    assert_eq!(stored, c);

    let runs = wait_runs(&t, A, &created, 1).await;
    let after = &runs[0]["trigger"]["data"]["after"];
    assert_eq!(runs[0]["trigger"]["type"], "conversation.created");
    assert_eq!(
        after["assignedTeam"], "support",
        "the event carries the rule's changes: {}",
        runs[0]
    );
    assert_eq!(after["priority"], 4);
    assert_eq!(after["tags"], json!(["routed"]));
    assert_eq!(after["rev"], c["rev"]);

    // The rule's changes were no separate update: the only update event is the next PATCH.
    t.patch("/v1/objects/conversation/cv1", A, json!({"subject": "changed"}))
        .await
        .expect(200);
    let ups = exactly_runs(&t, A, &updated, 1, Duration::from_millis(500)).await;
    assert_eq!(ups[0]["trigger"]["data"]["before"]["subject"], "hi", "{}", ups[0]);
    assert_eq!(ups[0]["trigger"]["data"]["after"]["subject"], "changed");
    assert_eq!(runs_of(&t, A, &created).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_rule_action_fails_the_whole_write_and_stores_nothing() {
    let t = TestApp::new().await;
    customer(&t, A, "cu", "cu@example.com").await;
    create_rule(
        &t,
        A,
        json!({"name": "tags everything", "klass": "conversation", "order": 1, "actions": [{"addTags": ["seen"]}]}),
    )
    .await;
    // Rules whose actions were valid when made, and no longer are: their user and team are gone.
    t.user_key(A, "u-gone", "agent", &[]).await;
    t.post("/v1/teams", A, json!({"id": "gone-team", "name": "Gone"}))
        .await
        .expect(201);
    create_rule(
        &t,
        A,
        json!({"name": "Gone user", "klass": "conversation", "order": 2,
        "conditions": {"and": [{"subject": {"contains": "explode"}}]}, "actions": [{"assign": {"user": "u-gone"}}]}),
    )
    .await;
    create_rule(
        &t,
        A,
        json!({"name": "Ghost team", "klass": "conversation", "order": 3,
        "conditions": {"and": [{"subject": {"contains": "ghost"}}]}, "actions": [{"assign": {"team": "gone-team"}}]}),
    )
    .await;
    t.delete("/v1/users/u-gone", A).await.expect(204);
    t.delete("/v1/teams/gone-team", A).await.expect(204);
    let wf = noop_workflow(&t, A, "conversation.created").await;
    let upd = noop_workflow(&t, A, "conversation.updated").await;

    // A create whose rule fails: 422 naming the rule, nothing stored, no event.
    let r = t
        .post(
            "/v1/objects/conversation",
            A,
            json!({"id": "bad", "customer": "cu", "subject": "please explode"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "business_rule_failed", "{}", r.text);
    assert!(
        r.body["errors"][0]["title"].as_str().unwrap().contains("Gone user"),
        "{}",
        r.text
    );
    t.get("/v1/objects/conversation/bad", A).await.expect(404);

    let r = t
        .post(
            "/v1/objects/conversation",
            A,
            json!({"id": "ghost", "customer": "cu", "subject": "ghost story"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "business_rule_failed", "{}", r.text);
    assert!(
        r.body["errors"][0]["title"].as_str().unwrap().contains("Ghost team"),
        "{}",
        r.text
    );
    t.get("/v1/objects/conversation/ghost", A).await.expect(404);

    // An update whose rule fails leaves the object as it was.
    let ok = t
        .post(
            "/v1/objects/conversation",
            A,
            json!({"id": "ok", "customer": "cu", "subject": "fine"}),
        )
        .await
        .expect(201);
    let r = t
        .patch(
            "/v1/objects/conversation/ok",
            A,
            json!({"subject": "now explode", "status": "done"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "business_rule_failed");
    let now = t.get("/v1/objects/conversation/ok", A).await.expect(200);
    assert_eq!(now, ok, "a failed update changes nothing");

    // The only events were the successful create (and a later successful update).
    t.patch("/v1/objects/conversation/ok", A, json!({"status": "done"}))
        .await
        .expect(200);
    let runs = exactly_runs(&t, A, &upd, 1, Duration::from_millis(300)).await;
    assert_eq!(runs[0]["trigger"]["data"]["after"]["status"], "done");
    assert_eq!(runs[0]["trigger"]["data"]["before"]["subject"], "fine");
    let created = runs_of(&t, A, &wf).await;
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(created[0]["trigger"]["data"]["after"]["id"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_whose_conditions_no_longer_fit_the_schema_is_skipped_and_writes_still_work() {
    let t = TestApp::new().await;
    customer(&t, A, "cu", "cu@example.com").await;
    t.patch(
        "/v1/klasses/conversation",
        A,
        json!({"attributes": [{"name": "tier", "type": "string"}]}),
    )
    .await
    .expect(200);
    create_rule(&t, A, json!({"name": "gold", "klass": "conversation", "conditions": {"and": [{"custom.tier": {"equals": "gold"}}]}, "actions": [{"addTags": ["gold"]}]})).await;
    create_rule(
        &t,
        A,
        json!({"name": "always", "klass": "conversation", "order": 9, "actions": [{"addTags": ["always"]}]}),
    )
    .await;
    let c = t
        .post(
            "/v1/objects/conversation",
            A,
            json!({"customer": "cu", "custom": {"tier": "gold"}}),
        )
        .await
        .expect(201);
    assert_eq!(c["tags"], json!(["gold", "always"]));

    t.delete("/v1/klasses/conversation/attributes/tier", A)
        .await
        .expect(204);
    let c = t
        .post(
            "/v1/objects/conversation",
            A,
            json!({"customer": "cu", "subject": "after the schema change"}),
        )
        .await
        .expect(201);
    assert_eq!(
        c["tags"],
        json!(["always"]),
        "the outgrown rule is skipped, the others run: {c}"
    );
    let id = c["id"].as_str().unwrap();
    t.patch(&format!("/v1/objects/conversation/{id}"), A, json!({"status": "done"}))
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_conditions_with_relative_dates_hold_at_each_writes_time() {
    // Compiled conditions are kept between writes; those that read `now` must not be.
    let (t, clock) = TestApp::with_clock(1_767_225_600_000).await; // 2026-01-01
    customer(&t, A, "cu", "cu@example.com").await;
    t.patch(
        "/v1/klasses/conversation",
        A,
        json!({"attributes": [{"name": "dueAt", "type": "date"}]}),
    )
    .await
    .expect(200);
    create_rule(
        &t,
        A,
        json!({"name": "upcoming", "klass": "conversation",
        "conditions": {"and": [{"custom.dueAt": {"gte": "now"}}]}, "actions": [{"addTags": ["upcoming"]}]}),
    )
    .await;
    create_rule(
        &t,
        A,
        json!({"name": "fresh", "klass": "conversation", "order": 2,
        "conditions": {"and": [{"custom.dueAt": {"within_last": "2d"}}]}, "actions": [{"addTags": ["fresh"]}]}),
    )
    .await;
    let write = |due: &'static str| {
        let t = &t;
        async move {
            t.post(
                "/v1/objects/conversation",
                A,
                json!({"customer": "cu", "custom": {"dueAt": due}}),
            )
            .await
            .expect(201)["tags"]
                .clone()
        }
    };
    assert_eq!(write("2026-01-05").await, json!(["upcoming"]));
    assert_eq!(write("2025-12-31").await, json!(["fresh"]));
    clock.0.store(1_768_003_200_000, std::sync::atomic::Ordering::SeqCst); // 2026-01-10
    assert_eq!(
        write("2026-01-05").await,
        json!([]),
        "no longer upcoming, not fresh either"
    );
    assert_eq!(write("2026-01-09").await, json!(["fresh"]));
    assert_eq!(write("2026-01-11").await, json!(["upcoming"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_change_applies_to_the_next_event_at_once() {
    // Workflows are kept in memory between events: a change must reach the very next one.
    let t = TestApp::new().await;
    let hook = create_hook(&t, A, "web").await;
    let kind = format!("hook.{}", hook["id"].as_str().unwrap());
    let wf = create_workflow(&t, A, json!({"event": kind}), json!([{"id": "s1", "action": "noop"}])).await;
    let runs = |r: Resp| r.expect(202)["runs"].as_array().unwrap().len();
    assert_eq!(runs(post_hook(&t, &hook, json!({"n": 1})).await), 1);
    t.patch(&format!("/v1/workflows/{wf}"), A, json!({"enabled": false}))
        .await
        .expect(200);
    assert_eq!(runs(post_hook(&t, &hook, json!({"n": 2})).await), 0, "disabled");
    t.patch(&format!("/v1/workflows/{wf}"), A, json!({"enabled": true}))
        .await
        .expect(200);
    let second = create_workflow(&t, A, json!({"event": kind}), json!([{"id": "s1", "action": "noop"}])).await;
    assert_eq!(
        runs(post_hook(&t, &hook, json!({"n": 3})).await),
        2,
        "enabled again, and a new one"
    );
    t.delete(&format!("/v1/workflows/{second}"), A).await.expect(204);
    assert_eq!(runs(post_hook(&t, &hook, json!({"n": 4})).await), 1, "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_object_events_cover_put_upserts_and_bulk_lines() {
    let t = TestApp::new().await;
    customer(&t, A, "cu", "cu@example.com").await;
    create_rule(
        &t,
        A,
        json!({"name": "route all", "klass": "conversation", "order": 1,
        "actions": [{"addTags": ["ruled"]}, {"set": {"priority": 2}}]}),
    )
    .await;
    // A rule whose action no longer applies: its team is gone.
    t.post("/v1/teams", A, json!({"id": "gone-team", "name": "Gone"}))
        .await
        .expect(201);
    create_rule(
        &t,
        A,
        json!({"name": "Exploder", "klass": "conversation", "order": 2,
        "conditions": {"and": [{"subject": {"contains": "explode"}}]}, "actions": [{"assign": {"team": "gone-team"}}]}),
    )
    .await;
    t.delete("/v1/teams/gone-team", A).await.expect(204);
    let created = noop_workflow(&t, A, "conversation.created").await;
    let updated = noop_workflow(&t, A, "conversation.updated").await;

    // PUT replaces every field, then the rules run on the result.
    t.post(
        "/v1/objects/conversation",
        A,
        json!({"id": "c1", "customer": "cu", "subject": "a"}),
    )
    .await
    .expect(201);
    let put = t
        .put(
            "/v1/objects/conversation/c1",
            A,
            json!({"customer": "cu", "subject": "b"}),
        )
        .await
        .expect(200);
    assert_eq!(
        (put["tags"].clone(), put["priority"].clone(), put["subject"].clone()),
        (json!(["ruled"]), json!(2), json!("b"))
    );
    // Upserts by externalId: created, then updated; a failing rule fails the upsert.
    let u = t
        .put(
            "/v1/objects/conversation/by-external-id/ext-1",
            A,
            json!({"customer": "cu", "subject": "x"}),
        )
        .await
        .expect(201);
    assert_eq!(u["tags"], json!(["ruled"]));
    t.put(
        "/v1/objects/conversation/by-external-id/ext-1",
        A,
        json!({"subject": "y"}),
    )
    .await
    .expect(200);
    let r = t
        .put(
            "/v1/objects/conversation/by-external-id/ext-1",
            A,
            json!({"subject": "explode now"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "business_rule_failed");
    assert_eq!(
        t.get("/v1/objects/conversation/by-external-id/ext-1", A)
            .await
            .expect(200)["subject"],
        "y"
    );

    // Bulk lines: each goes through the rules; a failing rule fails its line only.
    let lines = [
        json!({"op": "create", "klass": "conversation", "id": "c2", "object": {"customer": "cu", "subject": "bulk"}}),
        json!({"op": "upsert", "klass": "conversation", "externalId": "ext-2", "object": {"customer": "cu", "subject": "bulk upsert"}}),
        json!({"op": "create", "klass": "conversation", "id": "c3", "object": {"customer": "cu", "subject": "explode in bulk"}}),
        json!({"op": "update", "klass": "conversation", "id": "c1", "object": {"subject": "z"}}),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let auth = format!("Bearer {A}");
    let r = send(
        &t,
        "/v1/bulk",
        "application/x-ndjson",
        body.into_bytes(),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let answers: Vec<Value> = r.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let statuses: Vec<Value> = answers.iter().map(|a| a["status"].clone()).collect();
    assert_eq!(
        statuses,
        vec![json!(201), json!(201), json!(422), json!(200)],
        "{}",
        r.text
    );
    assert_eq!(answers[2]["errors"][0]["code"], "business_rule_failed", "{}", r.text);
    assert_eq!(
        t.get("/v1/objects/conversation/c2", A).await.expect(200)["tags"],
        json!(["ruled"])
    );
    assert_eq!(
        t.get("/v1/objects/conversation/by-external-id/ext-2", A)
            .await
            .expect(200)["priority"],
        2
    );
    t.get("/v1/objects/conversation/c3", A).await.expect(404);

    // Every stored write, and only those, started its workflow.
    let c = wait_runs(&t, A, &created, 4).await;
    let mut ids: Vec<String> = c
        .iter()
        .map(|r| r["trigger"]["data"]["after"]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 4, "{c:#?}");
    assert!(
        ids.contains(&"c1".to_string()) && ids.contains(&"c2".to_string()),
        "{ids:?}"
    );
    let u = exactly_runs(&t, A, &updated, 3, Duration::from_millis(500)).await;
    let subjects: BTreeSet<String> = u
        .iter()
        .map(|r| r["trigger"]["data"]["after"]["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects, ["b", "y", "z"].iter().map(|s| s.to_string()).collect());
    assert_eq!(runs_of(&t, A, &created).await.len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Workflows: definitions
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_created_read_updated_and_deleted_and_invalid_ones_are_refused() {
    let t = TestApp::new().await;
    let wf = t
        .post(
            "/v1/workflows",
            A,
            json!({"name": "Paid", "enabled": true, "trigger": {"event": "app.shop.paid"},
            "steps": [{"id": "s1", "action": "noop", "params": {"x": 1}}]}),
        )
        .await
        .expect(201);
    let id = wf["id"].as_str().unwrap().to_string();
    assert_eq!(wf["name"], "Paid");
    assert_eq!(wf["trigger"], json!({"event": "app.shop.paid"}));
    assert_eq!(wf["steps"], json!([{"id": "s1", "action": "noop", "params": {"x": 1}}]));
    assert_eq!(
        t.get(&format!("/v1/workflows/{id}"), A).await.expect(200)["name"],
        "Paid"
    );
    assert_eq!(ids(&t.get("/v1/workflows", A).await.expect(200)), vec![id.clone()]);
    assert!(runs_of(&t, A, &id).await.is_empty());
    let p = t
        .patch(&format!("/v1/workflows/{id}"), A, json!({"name": "Paid orders"}))
        .await
        .expect(200);
    assert_eq!(p["name"], "Paid orders");
    assert_eq!(
        p["trigger"],
        json!({"event": "app.shop.paid"}),
        "PATCH keeps what it does not name"
    );

    let bad = |trigger: Value, steps: Value| json!({"name": "bad", "trigger": trigger, "steps": steps});
    let noop = json!([{"id": "s1", "action": "noop"}]);
    let s422: &[u16] = &[422];
    let s4xx: &[u16] = &[400, 422];
    let cases: Vec<(Value, &[u16], &str)> = vec![
        (bad(json!({"event": "nope"}), noop.clone()), s422, "/trigger/event"),
        (
            bad(json!({"event": "conversation.archived"}), noop.clone()),
            s422,
            "/trigger/event",
        ),
        (bad(json!({}), noop.clone()), s422, "/trigger"),
        (
            bad(
                json!({"event": "conversation.updated", "conditions": {"and": [{"custom.nopeStr": {"equals": 1}}]}}),
                noop.clone(),
            ),
            s4xx,
            "/trigger/conditions",
        ),
        (
            bad(json!({"event": "schedule", "cron": "every day"}), noop.clone()),
            s422,
            "/trigger/cron",
        ),
        (bad(json!({"event": "schedule"}), noop.clone()), s422, "/trigger/cron"),
        (
            bad(
                json!({"event": "date_reached", "klass": "conversation", "field": "subject", "offset": "1d"}),
                noop.clone(),
            ),
            s422,
            "/trigger/field",
        ),
        (
            bad(
                json!({"event": "date_reached", "klass": "nope", "field": "createdAt"}),
                noop.clone(),
            ),
            s422,
            "/trigger/klass",
        ),
        (
            bad(
                json!({"event": "date_reached", "klass": "conversation", "field": "snoozedUntil", "offset": "soon"}),
                noop.clone(),
            ),
            s422,
            "/trigger/offset",
        ),
        (
            bad(json!({"event": "app.x.y"}), json!([{"id": "s1", "action": "explode"}])),
            s422,
            "/steps/0/action",
        ),
        (
            bad(
                json!({"event": "app.x.y"}),
                json!([{"id": "s1", "action": "noop"}, {"id": "s1", "action": "noop"}]),
            ),
            s422,
            "/steps/1/id",
        ),
        (
            bad(json!({"event": "app.x.y"}), json!([{"action": "noop"}])),
            s422,
            "/steps/0/id",
        ),
        (
            bad(
                json!({"event": "app.x.y"}),
                json!([{"id": "s1", "action": "noop", "params": []}]),
            ),
            s422,
            "/steps/0/params",
        ),
    ];
    for (body, statuses, pointer) in cases {
        let r = t.post("/v1/workflows", A, body.clone()).await;
        assert_invalid(&r, statuses, pointer);
    }
    assert_eq!(
        t.get("/v1/workflows", A).await.expect(200)["total"],
        1,
        "refused workflows are not stored"
    );

    // A finished run stays readable after its workflow is deleted; the event then starts nothing.
    let run = one_run(&t, A, "app.shop.paid", json!({"n": 1})).await;
    wait_succeeded(&t, A, &run).await;
    t.delete(&format!("/v1/workflows/{id}"), A).await.expect(204);
    t.get(&format!("/v1/workflows/{id}"), A).await.expect(404);
    t.patch(&format!("/v1/workflows/{id}"), A, json!({"name": "x"}))
        .await
        .expect(404);
    assert_eq!(get_run(&t, A, &run).await["status"], "succeeded");
    assert!(post_event(&t, A, "app.shop.paid", json!({})).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_event_triggers_hold_their_conditions_including_changed() {
    let t = TestApp::new().await;
    customer(&t, A, "cu", "cu@example.com").await;
    let closed = create_workflow(
        &t,
        A,
        json!({"event": "conversation.updated", "conditions": {"and": [{"changed": {"equals": "status"}}, {"status": {"equals": "done"}}]}}),
        json!([{"id": "tag", "action": "tags.add", "params": {"klass": "conversation", "id": "{{trigger.data.after.id}}", "tags": ["closed"]}}]),
    )
    .await;
    let created = create_workflow(
        &t,
        A,
        json!({"event": "conversation.created"}),
        json!([{"id": "s1", "action": "noop", "params": {"id": "{{trigger.data.after.id}}"}}]),
    )
    .await;
    let deleted = create_workflow(
        &t,
        A,
        json!({"event": "conversation.deleted", "conditions": {"and": [{"status": {"equals": "done"}}]}}),
        json!([{"id": "s1", "action": "noop", "params": {"id": "{{trigger.data.before.id}}"}}]),
    )
    .await;

    t.post(
        "/v1/objects/conversation",
        A,
        json!({"id": "cv1", "customer": "cu", "subject": "first"}),
    )
    .await
    .expect(201);
    let runs = wait_runs(&t, A, &created, 1).await;
    assert_eq!(runs[0]["trigger"]["type"], "conversation.created");
    assert_eq!(runs[0]["trigger"]["data"]["after"]["id"], "cv1");
    assert!(runs[0]["trigger"]["data"]["before"].is_null(), "{}", runs[0]);
    assert_eq!(step(&runs[0], "s1")["output"], json!({"id": "cv1"}));

    // Changes that do not make the conditions hold start nothing.
    t.patch("/v1/objects/conversation/cv1", A, json!({"subject": "renamed"}))
        .await
        .expect(200);
    t.patch("/v1/objects/conversation/cv1", A, json!({"status": "snoozed"}))
        .await
        .expect(200);
    t.patch("/v1/objects/conversation/cv1", A, json!({"status": "done"}))
        .await
        .expect(200);
    let runs = wait_runs(&t, A, &closed, 1).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let r = &runs[0];
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["trigger"]["type"], "conversation.updated");
    assert_eq!(r["trigger"]["data"]["before"]["status"], "snoozed");
    assert_eq!(r["trigger"]["data"]["after"]["status"], "done");
    assert!(
        r["trigger"]["data"]["changed"]
            .as_array()
            .unwrap()
            .contains(&json!("status")),
        "{r}"
    );
    assert!(t.get("/v1/objects/conversation/cv1", A).await.expect(200)["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("closed")));
    // Editing a done conversation without changing its status starts nothing either.
    t.patch("/v1/objects/conversation/cv1", A, json!({"subject": "still done"}))
        .await
        .expect(200);

    // Deletes: conditions hold on `before`. cv2 (open) goes first, cv1 (done) after.
    t.post("/v1/objects/conversation", A, json!({"id": "cv2", "customer": "cu"}))
        .await
        .expect(201);
    t.delete("/v1/objects/conversation/cv2", A).await.expect(204);
    t.delete("/v1/objects/conversation/cv1", A).await.expect(204);
    let runs = exactly_runs(&t, A, &deleted, 1, Duration::from_millis(300)).await;
    assert_eq!(runs[0]["trigger"]["type"], "conversation.deleted");
    assert_eq!(runs[0]["trigger"]["data"]["before"]["id"], "cv1");
    assert!(runs[0]["trigger"]["data"]["after"].is_null(), "{}", runs[0]);
    // Every event before the delete of cv1 was processed: `closed` ran once only.
    assert_eq!(runs_of(&t, A, &closed).await.len(), 1);
    assert_eq!(wait_runs(&t, A, &created, 2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_hooks_emit_events_with_body_query_and_lowercased_headers() {
    let t = TestApp::new().await;
    let h = create_hook(&t, A, "web").await;
    let (id, secret) = (
        h["id"].as_str().unwrap().to_string(),
        h["secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(h["type"], "web");
    assert!(!secret.is_empty());
    assert_eq!(h["url"], format!("/hooks/web/{id}/{secret}"));
    assert!(
        h.get("address").is_none() || h["address"].is_null(),
        "web hooks have no address: {h}"
    );
    assert_eq!(t.get(&format!("/v1/hooks/{id}"), A).await.expect(200)["url"], h["url"]);
    assert_eq!(ids(&t.get("/v1/hooks", A).await.expect(200)), vec![id.clone()]);
    let wf = create_workflow(
        &t,
        A,
        json!({"event": format!("hook.{id}")}),
        json!([{"id": "s1", "action": "noop", "params": {"email": "{{trigger.data.body.email}}"}}]),
    )
    .await;

    // JSON.
    let url = format!("/hooks/web/{id}/{secret}?source=shop&n=2");
    let r = t
        .raw(
            "POST",
            &url,
            None,
            Some(br#"{"email":"ada@example.com","items":[1,2]}"#.to_vec()),
            &[("X-Shop-Token", "tok-1")],
        )
        .await;
    let body = r.expect(202);
    assert_eq!(body["accepted"], true);
    let run1 = body["runs"][0].as_str().unwrap().to_string();
    let run = wait_succeeded(&t, A, &run1).await;
    assert_eq!(run["workflow"], wf.as_str());
    assert_eq!(run["trigger"]["type"], format!("hook.{id}"));
    let data = &run["trigger"]["data"];
    assert_eq!(data["body"], json!({"email": "ada@example.com", "items": [1, 2]}));
    assert_eq!(data["query"]["source"], "shop");
    assert_eq!(data["query"]["n"], "2");
    assert_eq!(
        data["headers"]["x-shop-token"], "tok-1",
        "header names are lowercased: {data}"
    );
    assert!(data["headers"].get("X-Shop-Token").is_none());
    assert_eq!(step(&run, "s1")["output"], json!({"email": "ada@example.com"}));

    // Form-encoded.
    let r = send(
        &t,
        &format!("/hooks/web/{id}/{secret}"),
        "application/x-www-form-urlencoded",
        b"email=grace%40example.com&name=Grace+Hopper".to_vec(),
        &[],
    )
    .await;
    let run2 = r.expect(202)["runs"][0].as_str().unwrap().to_string();
    let run = wait_succeeded(&t, A, &run2).await;
    assert_eq!(
        run["trigger"]["data"]["body"],
        json!({"email": "grace@example.com", "name": "Grace Hopper"})
    );
    assert_eq!(step(&run, "s1")["output"], json!({"email": "grace@example.com"}));

    // Wrong secret, wrong id, a key instead of the secret: 404 and no event.
    t.raw(
        "POST",
        &format!("/hooks/web/{id}/wrong{secret}"),
        None,
        Some(b"{}".to_vec()),
        &[],
    )
    .await
    .expect(404);
    t.raw(
        "POST",
        &format!("/hooks/web/{id}/{}", &secret[..secret.len() - 1]),
        None,
        Some(b"{}".to_vec()),
        &[],
    )
    .await
    .expect(404);
    t.raw(
        "POST",
        &format!("/hooks/web/nope{id}/{secret}"),
        None,
        Some(b"{}".to_vec()),
        &[],
    )
    .await
    .expect(404);
    t.raw(
        "POST",
        &format!("/hooks/email/{id}/{secret}"),
        None,
        Some(b"{}".to_vec()),
        &[],
    )
    .await
    .expect(404);
    // Over 256 KiB: 413 and no event.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(300 * 1024));
    let r = t
        .raw(
            "POST",
            &format!("/hooks/web/{id}/{secret}"),
            None,
            Some(big.into_bytes()),
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 413, "{}", r.text);
    // Just under the limit is fine.
    let fits = format!("{{\"pad\":\"{}\"}}", "x".repeat(200 * 1024));
    let r = t
        .raw(
            "POST",
            &format!("/hooks/web/{id}/{secret}"),
            None,
            Some(fits.into_bytes()),
            &[],
        )
        .await;
    let run3 = r.expect(202)["runs"][0].as_str().unwrap().to_string();
    let run = wait_run(&t, A, &run3).await;
    assert_eq!(run["status"], "failed", "`trigger.data.body.email` is missing: {run}");
    assert_eq!(
        runs_of(&t, A, &wf).await.len(),
        3,
        "only the three accepted posts started runs"
    );

    // Deleted: 404 at once, to the API and to posts.
    t.delete(&format!("/v1/hooks/{id}"), A).await.expect(204);
    t.get(&format!("/v1/hooks/{id}"), A).await.expect(404);
    t.delete(&format!("/v1/hooks/{id}"), A).await.expect(404);
    t.raw(
        "POST",
        &format!("/hooks/web/{id}/{secret}"),
        None,
        Some(b"{}".to_vec()),
        &[],
    )
    .await
    .expect(404);
    assert_eq!(runs_of(&t, A, &wf).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_hooks_posted_over_http_turn_messages_into_events() {
    let t = TestApp::new().await;
    let h = create_hook(&t, A, "email").await;
    let (id, secret) = (
        h["id"].as_str().unwrap().to_string(),
        h["secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(h["type"], "email");
    assert_eq!(h["address"], format!("hook-{id}@hooks.localhost"));
    assert_eq!(h["url"], format!("/hooks/email/{id}/{secret}"));
    let wf = create_workflow(
        &t,
        A,
        json!({"event": format!("hook.{id}")}),
        json!([
            {"id": "who", "action": "customers.upsert", "params": {"email": "{{trigger.data.from}}", "object": {"name": "{{trigger.data.fromName}}"}}},
            {"id": "what", "action": "noop", "params": {"order": "{{trigger.data.fields.orderId}}", "customer": "{{steps.who.output.id}}"}}
        ]),
    )
    .await;

    let raw = format!(
        "From: Ada Lovelace <ada@example.com>\r\nTo: hook-{id}@hooks.localhost\r\nSubject: Contact us\r\nContent-Type: text/plain; charset=utf-8\r\n\r\norderId: ORD-9\r\nmessage: my order is late\r\n"
    );
    let r = send(
        &t,
        &format!("/hooks/email/{id}/{secret}"),
        "message/rfc822",
        raw.into_bytes(),
        &[],
    )
    .await;
    let run = r.expect(202)["runs"][0].as_str().unwrap().to_string();
    let run = wait_succeeded(&t, A, &run).await;
    let d = &run["trigger"]["data"];
    assert_eq!(run["trigger"]["type"], format!("hook.{id}"));
    assert_eq!(d["from"], "ada@example.com");
    assert_eq!(d["fromName"], "Ada Lovelace");
    assert_eq!(d["to"], json!([format!("hook-{id}@hooks.localhost")]));
    assert_eq!(d["subject"], "Contact us");
    assert!(d["text"].as_str().unwrap().contains("my order is late"), "{d}");
    assert_eq!(d["fields"]["orderId"], "ORD-9");
    assert_eq!(d["fields"]["message"], "my order is late");
    let who = step(&run, "who")["output"].clone();
    assert_eq!(who["name"], "Ada Lovelace");
    assert_eq!(who["emails"], json!(["ada@example.com"]));
    assert_eq!(
        step(&run, "what")["output"],
        json!({"order": "ORD-9", "customer": who["id"]})
    );

    // A JSON body gives its fields.
    let raw = format!("From: Shop <shop@example.com>\r\nTo: hook-{id}@hooks.localhost\r\nSubject: order\r\n\r\n{{\"orderId\": \"ORD-10\", \"total\": 12.5}}\r\n");
    let r = send(
        &t,
        &format!("/hooks/email/{id}/{secret}"),
        "message/rfc822",
        raw.into_bytes(),
        &[],
    )
    .await;
    let run = wait_succeeded(&t, A, r.expect(202)["runs"][0].as_str().unwrap()).await;
    assert_eq!(
        run["trigger"]["data"]["fields"],
        json!({"orderId": "ORD-10", "total": 12.5})
    );
    assert_eq!(run["trigger"]["data"]["from"], "shop@example.com");

    // Wrong secret, or the web path of an email hook: 404, no event.
    send(
        &t,
        &format!("/hooks/email/{id}/x{secret}"),
        "message/rfc822",
        b"From: a@b.c\r\n\r\nx".to_vec(),
        &[],
    )
    .await
    .expect(404);
    send(
        &t,
        &format!("/hooks/web/{id}/{secret}"),
        "application/json",
        b"{}".to_vec(),
        &[],
    )
    .await
    .expect(404);
    assert_eq!(runs_of(&t, A, &wf).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_events_start_the_workflows_of_their_type() {
    let t = TestApp::new().await;
    let agent = t.user_key(A, "ann", "agent", &[]).await;
    let analyst = t.user_key(A, "al", "analyst", &[]).await;
    let wf = create_workflow(
        &t,
        A,
        json!({"event": "app.shop.order_paid"}),
        json!([{"id": "s1", "action": "noop", "params": {"order": "{{trigger.data.orderId}}"}}]),
    )
    .await;
    let big = create_workflow(
        &t,
        A,
        json!({"event": "app.shop.order_paid", "conditions": {"and": [{"trigger.data.total": {"gte": 100}}]}}),
        json!([{"id": "s1", "action": "noop", "params": {}}]),
    )
    .await;
    let off = t
        .post("/v1/workflows", A, json!({"name": "off", "enabled": false, "trigger": {"event": "app.shop.order_paid"}, "steps": [{"id": "s1", "action": "noop"}]}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();

    // An agent posts; one run for the plain workflow (the total is too small for the other).
    let r = t
        .post(
            "/v1/events",
            &agent,
            json!({"type": "app.shop.order_paid", "data": {"orderId": "O-1", "total": 20}}),
        )
        .await
        .expect(202);
    assert_eq!(r["accepted"], true);
    let runs: Vec<String> = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(runs.len(), 1, "{r}");
    let run = wait_succeeded(&t, A, &runs[0]).await;
    assert_eq!(run["workflow"], wf.as_str());
    assert_eq!(run["trigger"]["type"], "app.shop.order_paid");
    assert_eq!(run["trigger"]["data"], json!({"orderId": "O-1", "total": 20}));
    assert_eq!(run["trigger"]["depth"], 0);
    assert!(run["trigger"]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(step(&run, "s1")["output"], json!({"order": "O-1"}));
    assert_eq!(step(&run, "s1")["attempts"], 1);

    // A big one starts both.
    let second = post_event(&t, A, "app.shop.order_paid", json!({"orderId": "O-2", "total": 250})).await;
    assert_eq!(second.len(), 2, "{second:?}");
    for r in &second {
        wait_succeeded(&t, A, r).await;
    }
    // Newest first.
    let list = runs_of(&t, A, &wf).await;
    assert_eq!(
        list.iter()
            .map(|r| r["trigger"]["data"]["orderId"].clone())
            .collect::<Vec<_>>(),
        vec![json!("O-2"), json!("O-1")]
    );
    assert_eq!(runs_of(&t, A, &big).await.len(), 1);
    assert!(
        runs_of(&t, A, &off).await.is_empty(),
        "a disabled workflow starts nothing"
    );

    // Other types start nothing; enabling the disabled workflow makes it start.
    assert!(post_event(&t, A, "app.shop.order_refunded", json!({})).await.is_empty());
    t.patch(&format!("/v1/workflows/{off}"), A, json!({"enabled": true}))
        .await
        .expect(200);
    let r = post_event(&t, A, "app.shop.order_paid", json!({"orderId": "O-3", "total": 1})).await;
    assert_eq!(r.len(), 2, "{r:?}");

    // Denials and malformed types.
    t.post(
        "/v1/events",
        &analyst,
        json!({"type": "app.shop.order_paid", "data": {}}),
    )
    .await
    .expect(403);
    t.raw(
        "POST",
        "/v1/events",
        None,
        Some(br#"{"type":"app.shop.order_paid"}"#.to_vec()),
        &[],
    )
    .await
    .expect(401);
    for bad in [
        "shop.order_paid",
        "app.shop",
        "app..paid",
        "app.shop.",
        "conversation.created",
        "hook.x",
    ] {
        let r = t.post("/v1/events", A, json!({"type": bad, "data": {}})).await;
        assert_invalid(&r, &[422], "/type");
    }
    let r = t.post("/v1/events", A, json!({"data": {}})).await;
    assert!(matches!(r.status.as_u16(), 400 | 422), "{}", r.text);
    assert_eq!(runs_of(&t, A, &wf).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_trigger_fires_at_the_next_cron_occurrence() {
    let t = TestApp::new().await;
    let r = t.post("/v1/workflows", A, json!({"name": "tz", "trigger": {"event": "schedule", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "steps": []})).await;
    assert_invalid(&r, &[422], "/trigger/timezone");
    let wf = create_workflow(
        &t,
        A,
        json!({"event": "schedule", "cron": "* * * * *", "timezone": "UTC"}),
        json!([{"id": "s1", "action": "noop", "params": {"at": "{{trigger.data.scheduledAt}}"}}]),
    )
    .await;
    let started = Instant::now();
    // The next minute boundary comes within 60 s (plus the ~1 s scan).
    let runs = wait_runs_for(&t, A, &wf, 1, Duration::from_secs(75)).await;
    let r = &runs[0];
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["trigger"]["type"], "schedule");
    let at = r["trigger"]["data"]["scheduledAt"].as_str().unwrap();
    assert!(at.ends_with(":00.000Z"), "a per-minute cron fires on the minute: {at}");
    assert_eq!(step(r, "s1")["output"], json!({"at": at}));
    assert!(
        started.elapsed() < Duration::from_secs(70),
        "fired late: {:?}",
        started.elapsed()
    );
    // No backfill or repeats of the same occurrence.
    let now = runs_of(&t, A, &wf).await;
    assert_eq!(now.len(), 1, "{now:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_reached_fires_once_per_object_and_date_when_the_conditions_hold() {
    let t = TestApp::new().await;
    customer(&t, A, "cu", "cu@example.com").await;
    t.create(
        A,
        "conversation",
        json!({"id": "due", "customer": "cu", "status": "snoozed", "snoozedUntil": "now-2h"}),
    )
    .await;
    t.create(
        A,
        "conversation",
        json!({"id": "later", "customer": "cu", "status": "snoozed", "snoozedUntil": "now-30m"}),
    )
    .await;
    t.create(
        A,
        "conversation",
        json!({"id": "open", "customer": "cu", "status": "open", "snoozedUntil": "now-2h"}),
    )
    .await;
    t.create(
        A,
        "conversation",
        json!({"id": "none", "customer": "cu", "status": "snoozed"}),
    )
    .await;
    let wf = create_workflow(
        &t,
        A,
        json!({"event": "date_reached", "klass": "conversation", "field": "snoozedUntil", "offset": "1h",
               "conditions": {"and": [{"status": {"equals": "snoozed"}}]}}),
        json!([{"id": "tag", "action": "tags.add", "params": {"klass": "conversation", "id": "{{trigger.data.object.id}}", "tags": ["overdue"]}}]),
    )
    .await;

    // Only `due`: `later` is 30 min short, `open` fails the conditions, `none` has no date.
    let runs = exactly_runs(&t, A, &wf, 1, Duration::from_millis(2500)).await;
    let r = &runs[0];
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["trigger"]["type"], "date_reached");
    assert_eq!(r["trigger"]["data"]["object"]["id"], "due");
    let due = t.get("/v1/objects/conversation/due", A).await.expect(200);
    assert_eq!(r["trigger"]["data"]["date"], due["snoozedUntil"]);
    assert_eq!(due["tags"], json!(["overdue"]));

    // A new date value that has passed fires again, once; so does another object once it is due.
    t.patch(
        "/v1/objects/conversation/due?refresh=wait_for",
        A,
        json!({"snoozedUntil": "now-3h"}),
    )
    .await
    .expect(200);
    t.patch(
        "/v1/objects/conversation/later?refresh=wait_for",
        A,
        json!({"snoozedUntil": "now-90m"}),
    )
    .await
    .expect(200);
    let runs = exactly_runs(&t, A, &wf, 3, Duration::from_millis(2500)).await;
    let mut fired: Vec<String> = runs
        .iter()
        .map(|r| r["trigger"]["data"]["object"]["id"].as_str().unwrap().to_string())
        .collect();
    fired.sort();
    assert_eq!(fired, vec!["due", "due", "later"]);
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
}

// ---------------------------------------------------------------------------------------------
// Actions and templates
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_action_does_its_work_and_reports_its_output() {
    let t = TestApp::new().await;
    t.post("/v1/teams", A, json!({"id": "support", "name": "Support"}))
        .await
        .expect(201);
    t.user_key(A, "ann", "agent", &["support"]).await;
    let wf = create_workflow(
        &t,
        A,
        json!({"event": "app.test.actions"}),
        json!([
            {"id": "up", "action": "customers.upsert", "params": {"email": "{{trigger.data.email}}", "object": {"name": "{{trigger.data.name}}"}}},
            {"id": "up2", "action": "customers.upsert", "params": {"email": "{{trigger.data.email}}", "object": {"custom": {"planStr": "gold"}}}},
            {"id": "look", "action": "customers.lookup", "params": {"email": "{{trigger.data.email}}"}},
            {"id": "miss", "action": "customers.lookup", "params": {"email": "nobody@example.com"}},
            {"id": "conv", "action": "objects.create", "params": {"klass": "conversation", "object": {
                "customer": "{{steps.up.output.id}}", "subject": "Order {{trigger.data.orderId}} is late",
                "priority": "{{trigger.data.prio}}", "tags": "{{trigger.data.tags}}"}}},
            {"id": "upd", "action": "objects.update", "params": {"klass": "conversation", "id": "{{steps.conv.output.id}}", "object": {"status": "snoozed"}}},
            {"id": "asg", "action": "conversations.assign", "params": {"id": "{{steps.conv.output.id}}", "team": "support", "user": "ann"}},
            {"id": "tadd", "action": "tags.add", "params": {"klass": "conversation", "id": "{{steps.conv.output.id}}", "tags": ["x", "y"]}},
            {"id": "trm", "action": "tags.remove", "params": {"klass": "conversation", "id": "{{steps.conv.output.id}}", "tags": ["a", "x"]}},
            {"id": "ups", "action": "objects.upsert", "params": {"klass": "customer", "externalId": "crm-{{trigger.data.orderId}}", "object": {"name": "From CRM"}}},
            {"id": "ups2", "action": "objects.upsert", "params": {"klass": "customer", "externalId": "crm-{{trigger.data.orderId}}", "object": {"custom": {"planStr": "silver"}}}},
            {"id": "note", "action": "objects.create", "params": {"klass": "note", "object": {"customer": "{{steps.up.output.id}}", "body": "temporary"}}},
            {"id": "del", "action": "objects.delete", "params": {"klass": "note", "id": "{{steps.note.output.id}}"}},
            {"id": "echo", "action": "noop", "params": {"team": "{{steps.asg.output.assignedTeam}}", "status": "{{steps.upd.output.status}}"}},
            {"id": "skip", "if": {"and": [{"trigger.data.prio": {"gt": 10}}]}, "action": "noop", "params": {"never": true}},
            {"id": "go", "if": {"and": [{"trigger.data.prio": {"lte": 10}}]}, "action": "noop", "params": {"ran": true}},
            {"id": "halt", "action": "stop"},
            {"id": "after", "action": "objects.create", "params": {"klass": "note", "object": {"customer": "{{steps.up.output.id}}", "body": "never"}}}
        ]),
    )
    .await;
    let run = one_run(
        &t,
        A,
        "app.test.actions",
        json!({"email": "grace@example.com", "name": "Grace", "orderId": "ORD-7", "prio": 4, "tags": ["a", "b"]}),
    )
    .await;
    let run = wait_succeeded(&t, A, &run).await;
    assert_eq!(run["workflow"], wf.as_str());
    let out = |id: &str| step(&run, id)["output"].clone();

    let up = out("up");
    let cid = up["id"].as_str().unwrap().to_string();
    assert_eq!(
        (up["klass"].clone(), up["name"].clone(), up["emails"].clone()),
        (json!("customer"), json!("Grace"), json!(["grace@example.com"]))
    );
    let up2 = out("up2");
    assert_eq!(up2["id"], cid.as_str(), "the second upsert finds the customer by email");
    assert_eq!(
        (up2["name"].clone(), up2["custom"]["planStr"].clone()),
        (json!("Grace"), json!("gold"))
    );
    assert_eq!(out("look")["id"], cid.as_str());
    assert_eq!(out("look")["custom"]["planStr"], "gold");
    assert_eq!(step(&run, "miss")["status"], "succeeded");
    assert!(out("miss").is_null(), "an unknown email looks up null: {}", out("miss"));

    let conv = out("conv");
    let vid = conv["id"].as_str().unwrap().to_string();
    assert_eq!(conv["klass"], "conversation");
    assert_eq!(conv["customer"], cid.as_str());
    assert_eq!(conv["subject"], "Order ORD-7 is late");
    assert_eq!(conv["priority"], 4, "a lone placeholder keeps the number");
    assert_eq!(conv["tags"], json!(["a", "b"]), "a lone placeholder keeps the list");
    assert_eq!(
        step(&run, "conv")["input"]["object"]["priority"],
        4,
        "input holds the rendered params"
    );
    assert_eq!(out("upd")["status"], "snoozed");
    assert_eq!(
        (out("asg")["assignedTeam"].clone(), out("asg")["assignedUser"].clone()),
        (json!("support"), json!("ann"))
    );
    assert_eq!(out("tadd")["tags"], json!(["a", "b", "x", "y"]));
    assert_eq!(out("trm")["tags"], json!(["b", "y"]));

    let ups = out("ups");
    assert_eq!(
        (ups["externalId"].clone(), ups["name"].clone()),
        (json!("crm-ORD-7"), json!("From CRM"))
    );
    let ups2 = out("ups2");
    assert_eq!(ups2["id"], ups["id"], "upserts by externalId merge into one object");
    assert_eq!(
        (ups2["name"].clone(), ups2["custom"]["planStr"].clone()),
        (json!("From CRM"), json!("silver"))
    );

    let note_id = out("note")["id"].as_str().unwrap().to_string();
    assert_eq!(out("del")["deleted"], true);
    t.get(&format!("/v1/objects/note/{note_id}"), A).await.expect(404);

    assert_eq!(out("echo"), json!({"team": "support", "status": "snoozed"}));
    assert_eq!(step(&run, "skip")["status"], "skipped");
    assert_eq!(step(&run, "go")["status"], "succeeded");
    assert_eq!(out("go"), json!({"ran": true}));
    assert_eq!(step(&run, "halt")["status"], "succeeded");
    assert_eq!(
        step(&run, "after")["status"],
        "skipped",
        "steps after `stop` are skipped"
    );
    // Every action that ran did so once (`stop` is control flow, not an action).
    for s in run["steps"].as_array().unwrap() {
        if s["status"] == "succeeded" && s["id"] != "halt" {
            assert_eq!(s["attempts"], 1, "{s}");
            assert!(s["error"].is_null(), "{s}");
        }
    }
    assert!(run["error"].is_null());

    // What the steps did is stored.
    let c = t.get(&format!("/v1/objects/conversation/{vid}"), A).await.expect(200);
    assert_eq!(
        (
            c["status"].clone(),
            c["assignedTeam"].clone(),
            c["assignedUser"].clone(),
            c["tags"].clone()
        ),
        (json!("snoozed"), json!("support"), json!("ann"), json!(["b", "y"]))
    );
    let g = t
        .get("/v1/objects/customer/by-email/grace@example.com", A)
        .await
        .expect(200);
    assert_eq!(
        (g["id"].clone(), g["custom"]["planStr"].clone()),
        (json!(cid.clone()), json!("gold"))
    );
    let crm = t
        .get("/v1/objects/customer/by-external-id/crm-ORD-7", A)
        .await
        .expect(200);
    assert_eq!(crm["custom"]["planStr"], "silver");
    assert_eq!(
        count_after_refresh(
            &t,
            A,
            json!({"queryContext": "note", "and": [{"body": {"contains": "never"}}]})
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_action_fails_its_run_with_the_error_kept() {
    let t = TestApp::new().await;
    customer(&t, A, "cu", "cu@example.com").await;
    let wf = create_workflow(
        &t,
        A,
        json!({"event": "app.test.fail"}),
        json!([
            {"id": "ok", "action": "noop", "params": {}},
            {"id": "bad", "action": "objects.create", "params": {"klass": "conversation", "object": {"customer": "cu", "priority": 9}}},
            {"id": "later", "action": "noop", "params": {}}
        ]),
    )
    .await;
    let run = wait_run(&t, A, &one_run(&t, A, "app.test.fail", json!({})).await).await;
    assert_eq!(run["workflow"], wf.as_str());
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(step(&run, "ok")["status"], "succeeded");
    let bad = step(&run, "bad");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["attempts"], 1, "a validation error is not retried: {bad}");
    assert!(bad["error"].as_str().unwrap().contains("priority"), "{bad}");
    assert_eq!(step(&run, "later")["status"], "skipped");
    assert!(
        run["error"].as_str().unwrap().contains("bad"),
        "the run's error names the step: {run}"
    );

    // A host that is not allowed fails at once, without retries.
    create_workflow(
        &t,
        A,
        json!({"event": "app.test.http"}),
        json!([{"id": "call", "action": "http.request", "params": {"method": "GET", "url": "http://127.0.0.1:9/x"}}]),
    )
    .await;
    let run = wait_run(&t, A, &one_run(&t, A, "app.test.http", json!({})).await).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(step(&run, "call")["attempts"], 1);
    assert!(
        step(&run, "call")["error"].as_str().unwrap().contains("not allowed"),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_keep_json_types_render_strings_and_fail_on_missing_values() {
    let t = TestApp::new().await;
    let wf = create_workflow(
        &t,
        A,
        json!({"event": "app.test.tpl"}),
        json!([
            {"id": "a", "action": "noop", "params": {"n": "{{trigger.data.n}}", "spaced": "{{ trigger.data.n }}", "list": "{{trigger.data.list}}",
                "obj": "{{trigger.data.obj}}", "flag": "{{trigger.data.flag}}", "s": "n={{ trigger.data.n }} first={{ trigger.data.list[0] }}",
                "plain": "no template", "nested": {"deep": ["{{trigger.data.obj.k}}", 5]}}},
            {"id": "b", "action": "noop", "params": {"from_a": "{{steps.a.output.obj.k}}"}},
            {"id": "c", "action": "noop", "params": {"v": "{{trigger.data.missing}}"}},
            {"id": "d", "action": "noop", "params": {}}
        ]),
    )
    .await;
    let run = wait_run(
        &t,
        A,
        &one_run(
            &t,
            A,
            "app.test.tpl",
            json!({"n": 4, "list": ["x", "y"], "obj": {"k": "v"}, "flag": true}),
        )
        .await,
    )
    .await;
    assert_eq!(run["workflow"], wf.as_str());
    assert_eq!(
        step(&run, "a")["output"],
        json!({"n": 4, "spaced": 4, "list": ["x", "y"], "obj": {"k": "v"}, "flag": true, "s": "n=4 first=x", "plain": "no template", "nested": {"deep": ["v", 5]}})
    );
    assert_eq!(step(&run, "b")["output"], json!({"from_a": "v"}));
    assert_eq!(run["status"], "failed", "{run}");
    let c = step(&run, "c");
    assert_eq!(c["status"], "failed");
    let err = c["error"].as_str().unwrap();
    assert!(
        err.contains("trigger.data.missing") && err.contains("missing from the run context"),
        "{err}"
    );
    assert_eq!(step(&run, "d")["status"], "skipped");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing from the run context")),
        "the run keeps the error: {run}"
    );

    // A missing value inside a longer string fails too.
    create_workflow(
        &t,
        A,
        json!({"event": "app.test.tpl2"}),
        json!([{"id": "m", "action": "noop", "params": {"v": "hello {{ trigger.data.nope }}"}}]),
    )
    .await;
    let run = wait_run(&t, A, &one_run(&t, A, "app.test.tpl2", json!({})).await).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(step(&run, "m")["status"], "failed");
    assert!(step(&run, "m")["error"].as_str().unwrap().contains("nope"), "{run}");
    // A step reading a step that has not run yet fails as well.
    create_workflow(
        &t,
        A,
        json!({"event": "app.test.tpl3"}),
        json!([
            {"id": "first", "action": "noop", "params": {"v": "{{steps.second.output.x}}"}},
            {"id": "second", "action": "noop", "params": {"x": 1}}
        ]),
    )
    .await;
    let run = wait_run(&t, A, &one_run(&t, A, "app.test.tpl3", json!({})).await).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(step(&run, "second")["status"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_step_waits_then_resumes() {
    let t = TestApp::new().await;
    create_workflow(
        &t,
        A,
        json!({"event": "app.test.delay"}),
        json!([
            {"id": "before", "action": "noop", "params": {"x": 1}},
            {"id": "wait", "action": "delay", "params": {"for": "2s"}},
            {"id": "past", "action": "delay", "params": {"until": "2020-01-01T00:00:00Z"}},
            {"id": "after", "action": "noop", "params": {"x": 2}}
        ]),
    )
    .await;
    let started = Instant::now();
    let id = one_run(&t, A, "app.test.delay", json!({})).await;
    // It is seen waiting, with the time it resumes.
    let deadline = Instant::now() + WAIT;
    let waiting = loop {
        let r = get_run(&t, A, &id).await;
        if r["status"] == "waiting" {
            break r;
        }
        assert!(
            !is_final(r["status"].as_str().unwrap()),
            "finished without waiting: {r}"
        );
        assert!(Instant::now() < deadline, "never waiting: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(step(&waiting, "before")["status"], "succeeded");
    assert_eq!(step(&waiting, "wait")["status"], "waiting");
    assert_eq!(step(&waiting, "after")["status"], "pending");
    assert!(waiting["resumeAt"].is_string(), "{waiting}");
    let run = wait_succeeded(&t, A, &id).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "resumed early: {:?}",
        started.elapsed()
    );
    let resumed = step(&run, "wait")["output"]["resumedAt"]
        .as_str()
        .unwrap_or_else(|| panic!("no resumedAt: {run}"))
        .to_string();
    assert!(
        resumed.as_str() >= waiting["resumeAt"].as_str().unwrap(),
        "resumed {resumed} before {}",
        waiting["resumeAt"]
    );
    assert!(step(&run, "past")["output"]["resumedAt"].is_string(), "{run}");
    assert_eq!(step(&run, "after")["output"], json!({"x": 2}));

    // A delay without `for` or `until` fails the run.
    create_workflow(
        &t,
        A,
        json!({"event": "app.test.delay2"}),
        json!([{"id": "w", "action": "delay", "params": {}}]),
    )
    .await;
    let run = wait_run(&t, A, &one_run(&t, A, "app.test.delay2", json!({})).await).await;
    assert_eq!(run["status"], "failed", "{run}");
}

// ---------------------------------------------------------------------------------------------
// End-to-end flows, at-least-once, loops
// ---------------------------------------------------------------------------------------------

/// The steps of the "Contact us" workflow: the customer by email, a conversation, its message.
fn contact_us_steps() -> Value {
    json!([
        {"id": "customer", "action": "customers.upsert", "params": {"email": "{{trigger.data.body.email}}", "object": {"name": "{{trigger.data.body.name}}"}}},
        {"id": "conversation", "action": "objects.create", "params": {"klass": "conversation", "object": {
            "customer": "{{steps.customer.output.id}}", "subject": "{{trigger.data.body.subject}}", "channel": "web"}}},
        {"id": "message", "action": "objects.create", "params": {"klass": "message", "object": {
            "conversation": "{{steps.conversation.output.id}}", "direction": "in", "channel": "web", "body": "{{trigger.data.body.message}}"}}}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_us_form_creates_customer_conversation_and_message_and_vips_are_routed() {
    let t = TestApp::new().await;
    t.patch(
        "/v1/klasses/customer",
        A,
        json!({"attributes": [{"name": "vipBool", "type": "boolean"}]}),
    )
    .await
    .expect(200);
    t.post("/v1/teams", A, json!({"id": "vip-desk", "name": "VIP desk"}))
        .await
        .expect(201);
    create_rule(
        &t,
        A,
        json!({"name": "VIPs go to the VIP desk", "klass": "conversation", "on": ["created"],
        "conditions": {"and": [{"customer.custom.vipBool": {"equals": true}}]},
        "actions": [{"assign": {"team": "vip-desk"}}, {"set": {"priority": 5}}, {"addTags": ["vip"]}]}),
    )
    .await;
    t.create(
        A,
        "customer",
        json!({"id": "vera", "name": "Vera", "emails": ["vera@example.com"], "custom": {"vipBool": true}}),
    )
    .await;
    let hook = create_hook(&t, A, "web").await;
    let wf = create_workflow(
        &t,
        A,
        json!({"event": format!("hook.{}", hook["id"].as_str().unwrap())}),
        contact_us_steps(),
    )
    .await;

    // A VIP writes in.
    let r = post_hook(&t, &hook, json!({"email": "vera@example.com", "name": "Vera V.", "subject": "Where is my order?", "message": "It is late."})).await;
    let run = wait_succeeded(&t, A, r.expect(202)["runs"][0].as_str().unwrap()).await;
    assert_eq!(run["workflow"], wf.as_str());
    assert_eq!(
        step(&run, "customer")["output"]["id"],
        "vera",
        "the existing customer is found by email"
    );
    let conv = step(&run, "conversation")["output"].clone();
    assert_eq!(conv["customer"], "vera");
    assert_eq!(conv["assignedTeam"], "vip-desk", "the rule routed the VIP: {conv}");
    assert_eq!(conv["priority"], 5);
    assert_eq!(conv["tags"], json!(["vip"]));
    assert_eq!(conv["subject"], "Where is my order?");
    let msg = step(&run, "message")["output"].clone();
    assert_eq!(msg["conversation"], conv["id"]);
    assert_eq!(
        msg["customer"], "vera",
        "a message's customer defaults to its conversation's"
    );
    assert_eq!(msg["body"], "It is late.");
    assert_eq!(msg["direction"], "in");
    let stored = t
        .get(&format!("/v1/objects/conversation/{}", conv["id"].as_str().unwrap()), A)
        .await
        .expect(200);
    assert_eq!(
        (stored["assignedTeam"].clone(), stored["priority"].clone()),
        (json!("vip-desk"), json!(5))
    );
    t.get(&format!("/v1/objects/message/{}", msg["id"].as_str().unwrap()), A)
        .await
        .expect(200);
    assert_eq!(
        t.get("/v1/objects/customer/vera", A).await.expect(200)["name"],
        "Vera V."
    );

    // A newcomer writes twice: one customer, two conversations, no VIP routing.
    let mut customers = Vec::new();
    let mut convs = Vec::new();
    for (i, text) in ["First try", "Second try"].iter().enumerate() {
        let r = post_hook(
            &t,
            &hook,
            json!({"email": "new@example.com", "name": "Newton", "subject": format!("Question {i}"), "message": text}),
        )
        .await;
        let run = wait_succeeded(&t, A, r.expect(202)["runs"][0].as_str().unwrap()).await;
        customers.push(step(&run, "customer")["output"]["id"].as_str().unwrap().to_string());
        let c = step(&run, "conversation")["output"].clone();
        assert!(c["assignedTeam"].is_null(), "not a VIP: {c}");
        assert_ne!(c["priority"], 5, "{c}");
        assert_eq!(step(&run, "message")["output"]["body"], *text);
        convs.push(c["id"].as_str().unwrap().to_string());
    }
    assert_eq!(customers[0], customers[1], "the second post reuses the customer");
    assert_ne!(convs[0], convs[1]);
    let newton = t
        .get("/v1/objects/customer/by-email/new@example.com", A)
        .await
        .expect(200);
    assert_eq!(newton["id"], customers[0].as_str());
    assert_eq!(newton["emails"], json!(["new@example.com"]));
    assert_eq!(
        count_after_refresh(
            &t,
            A,
            json!({"queryContext": "customer", "and": [{"emails": {"equals": "new@example.com"}}]})
        )
        .await,
        1
    );
    assert_eq!(
        count_after_refresh(
            &t,
            A,
            json!({"queryContext": "conversation", "and": [{"customer": {"equals": customers[0].as_str()}}]})
        )
        .await,
        2
    );
    assert_eq!(
        count_after_refresh(
            &t,
            A,
            json!({"queryContext": "message", "and": [{"customer": {"equals": customers[0].as_str()}}]})
        )
        .await,
        2
    );
}

/// The klass `order` and a web hook whose workflow upserts orders by externalId for the
/// customer with the posted email. Returns the hook.
async fn order_system(t: &TestApp) -> Value {
    t.post(
        "/v1/klasses",
        A,
        json!({"name": "order", "displayName": "Order", "attributes": [
        {"name": "totalNum", "type": "number"}, {"name": "state", "type": "string"}]}),
    )
    .await
    .expect(201);
    let hook = create_hook(t, A, "web").await;
    create_workflow(
        t,
        A,
        json!({"event": format!("hook.{}", hook["id"].as_str().unwrap())}),
        json!([
            {"id": "who", "action": "customers.lookup", "params": {"email": "{{trigger.data.body.customerEmail}}"}},
            {"id": "order", "action": "objects.upsert", "params": {"klass": "order", "externalId": "{{trigger.data.body.orderId}}", "object": {
                "customer": "{{steps.who.output.id}}", "title": "Order {{trigger.data.body.orderId}}",
                "custom": {"totalNum": "{{trigger.data.body.total}}", "state": "{{trigger.data.body.state}}"}}}}
        ]),
    )
    .await;
    hook
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_system_hook_upserts_orders_that_appear_on_the_customer_timeline() {
    let t = TestApp::new().await;
    customer(&t, A, "buyer", "buyer@example.com").await;
    t.create(
        A,
        "conversation",
        json!({"id": "cv-b", "customer": "buyer", "subject": "hello", "createdAt": "2025-01-01"}),
    )
    .await;
    let hook = order_system(&t).await;

    let mut order_ids = Vec::new();
    for body in [
        json!({"orderId": "ORD-1", "customerEmail": "buyer@example.com", "total": 120.5, "state": "placed"}),
        json!({"orderId": "ORD-2", "customerEmail": "buyer@example.com", "total": 30, "state": "placed"}),
        json!({"orderId": "ORD-1", "customerEmail": "buyer@example.com", "total": 120.5, "state": "shipped"}),
    ] {
        let r = post_hook(&t, &hook, body).await;
        let run = wait_succeeded(&t, A, r.expect(202)["runs"][0].as_str().unwrap()).await;
        order_ids.push(step(&run, "order")["output"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(order_ids[0], order_ids[2], "the same externalId updates the same order");
    assert_ne!(order_ids[0], order_ids[1]);
    let o1 = t.get("/v1/objects/order/by-external-id/ORD-1", A).await.expect(200);
    assert_eq!(o1["id"], order_ids[0].as_str());
    assert_eq!(o1["klass"], "order");
    assert_eq!(o1["customer"], "buyer");
    assert_eq!(o1["title"], "Order ORD-1");
    assert_eq!(o1["custom"], json!({"totalNum": 120.5, "state": "shipped"}));
    let o2 = t.get("/v1/objects/order/by-external-id/ORD-2", A).await.expect(200);
    assert_eq!(o2["custom"]["totalNum"].as_f64(), Some(30.0));

    // The timeline shows both orders (newest first), next to the conversation.
    let deadline = Instant::now() + WAIT;
    loop {
        let tl = t
            .get("/v1/objects/customer/buyer/timeline?klasses=order", A)
            .await
            .expect(200);
        let ids = ids(&tl);
        if ids.len() == 2 {
            assert_eq!(ids, vec![order_ids[1].clone(), order_ids[0].clone()], "{tl}");
            assert!(tl["data"].as_array().unwrap().iter().all(|o| o["klass"] == "order"));
            break;
        }
        assert!(Instant::now() < deadline, "orders did not reach the timeline: {tl}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = ids(&t.get("/v1/objects/customer/buyer/timeline", A).await.expect(200));
    assert_eq!(
        all,
        vec![order_ids[1].clone(), order_ids[0].clone(), "cv-b".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_hook_deliveries_upsert_one_object() {
    let t = TestApp::new().await;
    customer(&t, A, "buyer", "buyer@example.com").await;
    let hook = order_system(&t).await;
    let body = json!({"orderId": "ORD-R", "customerEmail": "buyer@example.com", "total": 75, "state": "paid"});
    // A sender retrying: the same delivery several times at once, then once more later.
    let posts = (0..4).map(|_| post_hook(&t, &hook, body.clone()));
    let mut runs: Vec<String> = Vec::new();
    for r in futures::future::join_all(posts).await {
        runs.push(r.expect(202)["runs"][0].as_str().unwrap().to_string());
    }
    let mut ids = BTreeSet::new();
    for r in &runs {
        let run = wait_succeeded(&t, A, r).await;
        ids.insert(step(&run, "order")["output"]["id"].as_str().unwrap().to_string());
    }
    let late = post_hook(&t, &hook, body.clone()).await;
    let run = wait_succeeded(&t, A, late.expect(202)["runs"][0].as_str().unwrap()).await;
    ids.insert(step(&run, "order")["output"]["id"].as_str().unwrap().to_string());
    assert_eq!(ids.len(), 1, "every delivery upserted the same order: {ids:?}");
    assert_eq!(
        count_after_refresh(
            &t,
            A,
            json!({"queryContext": "order", "and": [{"externalId": {"equals": "ORD-R"}}]})
        )
        .await,
        1
    );
    let o = t.get("/v1/objects/order/by-external-id/ORD-R", A).await.expect(200);
    assert_eq!(
        (o["custom"]["totalNum"].as_f64(), o["custom"]["state"].clone()),
        (Some(75.0), json!("paid"))
    );
    assert_eq!(o["id"], ids.iter().next().unwrap().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_that_updates_its_own_trigger_object_stops_after_a_few_hops() {
    let t = TestApp::new().await;
    t.post(
        "/v1/klasses",
        A,
        json!({"name": "order", "attributes": [{"name": "state", "type": "string"}]}),
    )
    .await
    .expect(201);
    let wf = create_workflow(
        &t,
        A,
        json!({"event": "order.updated"}),
        json!([{"id": "touch", "action": "tags.add", "params": {"klass": "order", "id": "{{trigger.data.after.id}}", "tags": ["{{trigger.data.after.custom.state}}-{{trigger.depth}}"]}}]),
    )
    .await;
    t.post("/v1/objects/order", A, json!({"id": "o1", "custom": {"state": "new"}}))
        .await
        .expect(201);
    t.patch("/v1/objects/order/o1", A, json!({"custom": {"state": "paid"}}))
        .await
        .expect(200);

    // Depth 0 (the person) .. 4 start runs; the write at depth 5 starts none.
    let runs = exactly_runs(&t, A, &wf, 5, Duration::from_secs(2)).await;
    let mut depths: Vec<i64> = runs.iter().map(|r| r["trigger"]["depth"].as_i64().unwrap()).collect();
    depths.sort();
    assert_eq!(depths, vec![0, 1, 2, 3, 4], "{runs:#?}");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    let o = t.get("/v1/objects/order/o1", A).await.expect(200);
    assert_eq!(o["tags"], json!(["paid-0", "paid-1", "paid-2", "paid-3", "paid-4"]));
    // A person's next write starts a fresh chain at depth 0.
    t.patch("/v1/objects/order/o1", A, json!({"custom": {"state": "shipped"}}))
        .await
        .expect(200);
    let runs = exactly_runs(&t, A, &wf, 10, Duration::from_secs(1)).await;
    assert_eq!(runs.iter().filter(|r| r["trigger"]["depth"] == 0).count(), 2);
    let o = t.get("/v1/objects/order/o1", A).await.expect(200);
    assert_eq!(o["tags"].as_array().unwrap().len(), 10, "{o}");
}

// ---------------------------------------------------------------------------------------------
// Tenancy and roles
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_workflows_hooks_and_runs_never_cross_orgs() {
    let t = TestApp::new().await;
    let b = t.new_org("org-b").await;
    customer(&t, A, "ca", "a@example.com").await;
    customer(&t, &b, "cb", "b@example.com").await;
    let rule = create_rule(
        &t,
        A,
        json!({"name": "A tags", "klass": "conversation", "actions": [{"addTags": ["from-a-rule"]}]}),
    )
    .await;
    let wf = create_workflow(&t, A, json!({"event": "conversation.created"}),
        json!([{"id": "tag", "action": "tags.add", "params": {"klass": "conversation", "id": "{{trigger.data.after.id}}", "tags": ["from-a-wf"]}}])).await;
    let hook = create_hook(&t, A, "web").await;
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let hook_wf = create_workflow(&t, A, json!({"event": format!("hook.{hook_id}")}),
        json!([{"id": "make", "action": "objects.create", "params": {"klass": "customer", "object": {"id": "{{trigger.data.body.id}}", "name": "made by a hook"}}}])).await;

    // B's writes see none of A's rules or workflows.
    let cb = t
        .post("/v1/objects/conversation", &b, json!({"id": "cvb", "customer": "cb"}))
        .await
        .expect(201);
    assert_eq!(cb["tags"], json!([]), "{cb}");
    let ca = t
        .post("/v1/objects/conversation", A, json!({"id": "cva", "customer": "ca"}))
        .await
        .expect(201);
    assert_eq!(ca["tags"], json!(["from-a-rule"]));
    let runs = exactly_runs(&t, A, &wf, 1, Duration::from_millis(500)).await;
    assert_eq!(runs[0]["trigger"]["data"]["after"]["id"], "cva");
    assert_eq!(
        t.get("/v1/objects/conversation/cvb", &b).await.expect(200)["tags"],
        json!([])
    );

    // A's hook creates in A only; B has no object of that id.
    let r = post_hook(&t, &hook, json!({"id": "hooked"})).await;
    let run_id = r.expect(202)["runs"][0].as_str().unwrap().to_string();
    wait_succeeded(&t, A, &run_id).await;
    t.get("/v1/objects/customer/hooked", A).await.expect(200);
    t.get("/v1/objects/customer/hooked", &b).await.expect(404);
    // B may create its own object with that id.
    t.post("/v1/objects/customer", &b, json!({"id": "hooked", "name": "B's own"}))
        .await
        .expect(201);
    assert_eq!(
        t.get("/v1/objects/customer/hooked", A).await.expect(200)["name"],
        "made by a hook"
    );

    // B's key: 404 on every one of A's automation resources.
    for path in [
        format!("/v1/business-rules/{rule}"),
        format!("/v1/workflows/{wf}"),
        format!("/v1/workflows/{wf}/runs"),
        format!("/v1/workflow-runs/{run_id}"),
        format!("/v1/hooks/{hook_id}"),
    ] {
        t.get(&path, &b).await.expect(404);
    }
    t.patch(&format!("/v1/business-rules/{rule}"), &b, json!({"enabled": false}))
        .await
        .expect(404);
    t.patch(&format!("/v1/workflows/{wf}"), &b, json!({"enabled": false}))
        .await
        .expect(404);
    t.delete(&format!("/v1/business-rules/{rule}"), &b).await.expect(404);
    t.delete(&format!("/v1/workflows/{wf}"), &b).await.expect(404);
    t.delete(&format!("/v1/hooks/{hook_id}"), &b).await.expect(404);
    for list in ["/v1/business-rules", "/v1/workflows", "/v1/hooks"] {
        assert_eq!(t.get(list, &b).await.expect(200)["total"], 0, "{list}");
    }
    // B's events start none of A's workflows.
    assert!(post_event(&t, &b, "app.x.y", json!({})).await.is_empty());

    // Secrets do not mix across hooks of different orgs.
    let hb = create_hook(&t, &b, "web").await;
    let (a_secret, b_id, b_secret) = (
        hook["secret"].as_str().unwrap(),
        hb["id"].as_str().unwrap(),
        hb["secret"].as_str().unwrap(),
    );
    t.raw(
        "POST",
        &format!("/hooks/web/{hook_id}/{b_secret}"),
        None,
        Some(b"{\"id\":\"x1\"}".to_vec()),
        &[],
    )
    .await
    .expect(404);
    t.raw(
        "POST",
        &format!("/hooks/web/{b_id}/{a_secret}"),
        None,
        Some(b"{\"id\":\"x2\"}".to_vec()),
        &[],
    )
    .await
    .expect(404);
    // B's own hook starts nothing in A.
    post_hook(&t, &hb, json!({"id": "x3"})).await.expect(202);
    assert_eq!(runs_of(&t, A, &hook_wf).await.len(), 1);

    // A's things are untouched.
    assert_eq!(
        t.get(&format!("/v1/business-rules/{rule}"), A).await.expect(200)["enabled"],
        true
    );
    assert_eq!(
        t.get(&format!("/v1/workflows/{wf}"), A).await.expect(200)["enabled"],
        true
    );
    t.get(&format!("/v1/hooks/{hook_id}"), A).await.expect(200);
    t.get(&format!("/v1/workflow-runs/{run_id}"), A).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_manage_automation_and_analysts_may_not_post_events() {
    let t = TestApp::new().await;
    let agent = t.user_key(A, "ann", "agent", &[]).await;
    let analyst = t.user_key(A, "al", "analyst", &[]).await;
    let rule = create_rule(&t, A, json!({"name": "r", "klass": "conversation", "actions": []})).await;
    let wf = create_workflow(
        &t,
        A,
        json!({"event": "app.x.y"}),
        json!([{"id": "s1", "action": "noop"}]),
    )
    .await;
    let hook = create_hook(&t, A, "web").await;
    let hook_id = hook["id"].as_str().unwrap();
    let run = one_run(&t, A, "app.x.y", json!({})).await;
    wait_succeeded(&t, A, &run).await;

    let rule_body = json!({"name": "r2", "klass": "conversation", "actions": []});
    let wf_body = json!({"name": "w2", "trigger": {"event": "app.x.y"}, "steps": []});
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "/v1/business-rules".into(), Some(rule_body.clone())),
        ("GET", "/v1/business-rules".into(), None),
        ("GET", format!("/v1/business-rules/{rule}"), None),
        (
            "PATCH",
            format!("/v1/business-rules/{rule}"),
            Some(json!({"enabled": false})),
        ),
        ("DELETE", format!("/v1/business-rules/{rule}"), None),
        ("POST", "/v1/workflows".into(), Some(wf_body.clone())),
        ("GET", "/v1/workflows".into(), None),
        ("GET", format!("/v1/workflows/{wf}"), None),
        ("PATCH", format!("/v1/workflows/{wf}"), Some(json!({"enabled": false}))),
        ("DELETE", format!("/v1/workflows/{wf}"), None),
        ("GET", format!("/v1/workflows/{wf}/runs"), None),
        ("GET", format!("/v1/workflow-runs/{run}"), None),
        ("POST", "/v1/hooks".into(), Some(json!({"name": "h", "type": "web"}))),
        ("GET", "/v1/hooks".into(), None),
        ("GET", format!("/v1/hooks/{hook_id}"), None),
        ("DELETE", format!("/v1/hooks/{hook_id}"), None),
    ];
    for key in [&agent, &analyst] {
        for (method, path, body) in &calls {
            let r = t.call(method, path, key, body.clone()).await;
            assert_eq!(r.status.as_u16(), 403, "{method} {path}: {}", r.text);
        }
    }
    for (method, path, body) in &calls {
        let r = t
            .raw(
                method,
                path,
                None,
                body.as_ref().map(|b| serde_json::to_vec(b).unwrap()),
                &[],
            )
            .await;
        assert_eq!(r.status.as_u16(), 401, "{method} {path} without a key: {}", r.text);
    }
    // Agents post events; analysts may not.
    assert_eq!(post_event(&t, &agent, "app.x.y", json!({})).await.len(), 1);
    t.post("/v1/events", &analyst, json!({"type": "app.x.y", "data": {}}))
        .await
        .expect(403);

    // Nothing was changed by the denied calls.
    assert_eq!(
        t.get(&format!("/v1/business-rules/{rule}"), A).await.expect(200)["enabled"],
        true
    );
    assert_eq!(
        t.get(&format!("/v1/workflows/{wf}"), A).await.expect(200)["enabled"],
        true
    );
    t.get(&format!("/v1/hooks/{hook_id}"), A).await.expect(200);
    assert_eq!(t.get("/v1/business-rules", A).await.expect(200)["total"], 1);
    assert_eq!(t.get("/v1/workflows", A).await.expect(200)["total"], 1);
    assert_eq!(t.get("/v1/hooks", A).await.expect(200)["total"], 1);
    assert_eq!(wait_runs(&t, A, &wf, 2).await.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// The real binary: http.request, SMTP, restarts
// ---------------------------------------------------------------------------------------------

const KEY: &str = "kdr_automation_test_admin_key_0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_kindred");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// A running `kindred serve`.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    /// Starts `kindred serve --data DIR` with `extra` arguments on a free port; waits for /health.
    async fn start(data: &Path, log: &Path, extra: &[String]) -> Server {
        let port = free_port();
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut cmd = Command::new(BIN);
        for v in [
            "KINDRED_DATA",
            "KINDRED_LISTEN",
            "KINDRED_BODY_LIMIT",
            "KINDRED_INDEX_CONFIG",
            "KINDRED_STORE_CACHE_MB",
            "KINDRED_SMTP_LISTEN",
            "KINDRED_SMTP_DOMAIN",
            "KINDRED_HTTP_ALLOW",
            "KINDRED_LOG_FORMAT",
            "RUST_LOG",
        ] {
            cmd.env_remove(v);
        }
        cmd.env("KINDRED_ADMIN_KEY", KEY);
        cmd.args(["serve", "--data"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        let child = cmd.spawn().expect("spawning kindred");
        let mut s = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!(
                    "kindred exited before answering /health: {st}\n--- log ---\n{}",
                    log_text(&s.log)
                );
            }
            if let Ok(r) = client.get(format!("{}/health", s.base)).send().await {
                if r.status().as_u16() == 200 {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "kindred did not answer /health in time\n--- log ---\n{}",
                log_text(&s.log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn api(&self) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: self.base.clone(),
            log: self.log.clone(),
        }
    }

    /// SIGTERM, then waits for the exit.
    async fn terminate(mut self) -> ExitStatus {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(st.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "kindred did not exit after SIGTERM\n--- log ---\n{}",
                log_text(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, then reaps the process.
    fn kill_hard(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A JSON client of a running server.
struct Api {
    http: reqwest::Client,
    base: String,
    log: PathBuf,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, format!("{}{path}", self.base)).bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn expect(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let (st, v) = self.call(method, path, body).await;
        assert_eq!(st, status, "{method} {path}: {v}");
        v
    }

    async fn workflow(&self, trigger: Value, steps: Value) -> String {
        self.expect(
            "POST",
            "/v1/workflows",
            Some(json!({"name": "wf", "trigger": trigger, "steps": steps})),
            201,
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn event(&self, kind: &str, data: Value) -> String {
        let r = self
            .expect("POST", "/v1/events", Some(json!({"type": kind, "data": data})), 202)
            .await;
        assert_eq!(r["runs"].as_array().map(Vec::len), Some(1), "{r}");
        r["runs"][0].as_str().unwrap().to_string()
    }

    async fn run(&self, id: &str) -> Value {
        self.expect("GET", &format!("/v1/workflow-runs/{id}"), None, 200).await
    }

    /// Polls a run until `done` holds.
    async fn wait_until(&self, id: &str, limit: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let r = self.run(id).await;
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} not {what} in {limit:?}: {r}\n--- log ---\n{}",
                log_text(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_final(&self, id: &str, limit: Duration) -> Value {
        self.wait_until(id, limit, "final", |r| {
            is_final(r["status"].as_str().unwrap_or_default())
        })
        .await
    }

    /// Search count once every earlier write is searchable.
    async fn count_after_refresh(&self, body: Value) -> u64 {
        self.expect(
            "POST",
            "/v1/objects/note?refresh=wait_for",
            Some(json!({"body": "refresh marker"})),
            201,
        )
        .await;
        self.expect("POST", "/v1/search/count", Some(body), 200).await["total"]
            .as_u64()
            .unwrap()
    }
}

/// A local HTTP server for `http.request`: records every request; `/flaky` answers 500 while
/// `fail_left` > 0 (counting down), `/missing` 404, anything else echoes the JSON body.
/// One request the local server received: path, JSON body, `x-token` header.
type Hit = (String, Value, Option<String>);

#[derive(Clone, Default)]
struct Upstream {
    hits: Arc<Mutex<Vec<Hit>>>,
    fail_left: Arc<AtomicI64>,
}

impl Upstream {
    async fn start() -> (Upstream, u16) {
        let u = Upstream::default();
        let app = axum::Router::new().fallback(upstream_handler).with_state(u.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (u, port)
    }

    fn hits(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.0 == path)
            .cloned()
            .collect()
    }
}

async fn upstream_handler(
    axum::extract::State(u): axum::extract::State<Upstream>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path().to_string();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let token = headers.get("x-token").and_then(|h| h.to_str().ok()).map(str::to_string);
    u.hits.lock().unwrap().push((path.clone(), v.clone(), token.clone()));
    match path.as_str() {
        "/flaky" => {
            if u.fail_left.fetch_sub(1, Ordering::SeqCst) > 0 {
                (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
            } else {
                axum::Json(json!({"ok": true})).into_response()
            }
        }
        "/missing" => (StatusCode::NOT_FOUND, "no").into_response(),
        _ => axum::Json(json!({"got": v, "token": token})).into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_steps_call_allowed_hosts_and_retry_server_errors() {
    let (up, port) = Upstream::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &tmp.path().join("log"),
        &["--http-allow".into(), format!("127.0.0.1:{port}")],
    )
    .await;
    let api = server.api();
    let base = format!("http://127.0.0.1:{port}");

    // Success: method, headers and a JSON body go out; status, headers and parsed body come back.
    api.workflow(json!({"event": "app.http.echo"}), json!([
        {"id": "call", "action": "http.request", "params": {"method": "POST", "url": format!("{base}/echo"),
            "headers": {"x-token": "{{trigger.data.token}}"}, "body": {"order": "{{trigger.data.order}}", "n": "{{trigger.data.n}}"}}},
        {"id": "use", "action": "noop", "params": {"status": "{{steps.call.output.status}}", "echoed": "{{steps.call.output.body.got.order}}"}}
    ])).await;
    let id = api
        .event("app.http.echo", json!({"token": "t-1", "order": "ORD-1", "n": 3}))
        .await;
    let run = api.wait_final(&id, WAIT).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let out = &step(&run, "call")["output"];
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], json!({"got": {"order": "ORD-1", "n": 3}, "token": "t-1"}));
    assert!(
        out["headers"]["content-type"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{out}"
    );
    assert_eq!(step(&run, "use")["output"], json!({"status": 200, "echoed": "ORD-1"}));
    let hits = up.hits("/echo");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].1, json!({"order": "ORD-1", "n": 3}));
    assert_eq!(hits[0].2.as_deref(), Some("t-1"));

    // A 500 is retried (after about a second) and the 200 that follows succeeds.
    up.fail_left.store(1, Ordering::SeqCst);
    api.workflow(
        json!({"event": "app.http.flaky"}),
        json!([{"id": "call", "action": "http.request", "params": {"method": "GET", "url": format!("{base}/flaky")}}]),
    )
    .await;
    let started = Instant::now();
    let id = api.event("app.http.flaky", json!({})).await;
    let run = api.wait_final(&id, WAIT).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let call = step(&run, "call");
    assert_eq!(call["attempts"], 2, "{call}");
    assert_eq!(call["output"]["status"], 200);
    assert_eq!(call["output"]["body"], json!({"ok": true}));
    assert_eq!(up.hits("/flaky").len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "retried without backoff: {:?}",
        started.elapsed()
    );

    // A 4xx is final; a host or port not allowed is never called.
    api.workflow(
        json!({"event": "app.http.missing"}),
        json!([{"id": "call", "action": "http.request", "params": {"url": format!("{base}/missing")}}]),
    )
    .await;
    let run = api
        .wait_final(&api.event("app.http.missing", json!({})).await, WAIT)
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(step(&run, "call")["attempts"], 1);
    assert!(step(&run, "call")["error"].as_str().unwrap().contains("404"), "{run}");
    assert_eq!(up.hits("/missing").len(), 1);

    let other = free_port();
    api.workflow(json!({"event": "app.http.denied"}), json!([
        {"id": "call", "action": "http.request", "params": {"method": "POST", "url": format!("http://127.0.0.1:{other}/echo"), "body": {}}},
        {"id": "after", "action": "noop", "params": {}}
    ])).await;
    let run = api
        .wait_final(&api.event("app.http.denied", json!({})).await, WAIT)
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(step(&run, "call")["attempts"], 1, "not retried: {run}");
    assert!(
        step(&run, "call")["error"].as_str().unwrap().contains("not allowed"),
        "{run}"
    );
    assert_eq!(step(&run, "after")["status"], "skipped");
    assert_eq!(up.hits("/echo").len(), 1);

    assert!(server.terminate().await.success());
}

/// Reads one SMTP reply (all its lines) and returns its code and text.
async fn smtp_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> (u16, String) {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
            .await
            .expect("SMTP reply in time")
            .unwrap();
        assert!(n > 0, "SMTP connection closed; so far: {all}");
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return (
                line[..3].parse().unwrap_or_else(|_| panic!("bad SMTP reply {line:?}")),
                all,
            );
        }
    }
}

async fn smtp_cmd(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    cmd: &str,
) -> (u16, String) {
    w.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
    smtp_reply(r).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_over_smtp_to_a_hook_address_starts_its_workflow() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp_port = free_port();
    let server = Server::start(
        &tmp.path().join("data"),
        &tmp.path().join("log"),
        &["--smtp-listen".into(), format!("127.0.0.1:{smtp_port}")],
    )
    .await;
    let api = server.api();
    let hook = api
        .expect(
            "POST",
            "/v1/hooks",
            Some(json!({"name": "support inbox", "type": "email"})),
            201,
        )
        .await;
    let id = hook["id"].as_str().unwrap().to_string();
    let address = hook["address"].as_str().unwrap().to_string();
    assert_eq!(address, format!("hook-{id}@hooks.localhost"));
    let gone = api
        .expect(
            "POST",
            "/v1/hooks",
            Some(json!({"name": "old inbox", "type": "email"})),
            201,
        )
        .await;
    api.expect(
        "DELETE",
        &format!("/v1/hooks/{}", gone["id"].as_str().unwrap()),
        None,
        204,
    )
    .await;
    let wf = api
        .workflow(json!({"event": format!("hook.{id}")}), json!([
            {"id": "who", "action": "customers.upsert", "params": {"email": "{{trigger.data.from}}", "object": {"name": "{{trigger.data.fromName}}"}}},
            {"id": "conv", "action": "objects.create", "params": {"klass": "conversation", "object": {"customer": "{{steps.who.output.id}}", "subject": "{{trigger.data.subject}}", "channel": "email"}}}
        ]))
        .await;

    let stream = tokio::net::TcpStream::connect(("127.0.0.1", smtp_port)).await.unwrap();
    let (read, mut w) = stream.into_split();
    let mut r = BufReader::new(read);
    assert_eq!(smtp_reply(&mut r).await.0, 220);
    assert_eq!(smtp_cmd(&mut w, &mut r, "EHLO client.example").await.0, 250);
    assert_eq!(smtp_cmd(&mut w, &mut r, "MAIL FROM:<ada@example.com>").await.0, 250);
    assert_eq!(
        smtp_cmd(&mut w, &mut r, "RCPT TO:<nobody@hooks.localhost>").await.0,
        550
    );
    assert_eq!(
        smtp_cmd(&mut w, &mut r, "RCPT TO:<hook-nope@hooks.localhost>").await.0,
        550
    );
    assert_eq!(
        smtp_cmd(
            &mut w,
            &mut r,
            &format!("RCPT TO:<{}>", gone["address"].as_str().unwrap())
        )
        .await
        .0,
        550,
        "a deleted hook takes no mail"
    );
    assert_eq!(
        smtp_cmd(&mut w, &mut r, &format!("RCPT TO:<hook-{id}@other.example>"))
            .await
            .0,
        550
    );
    assert_eq!(smtp_cmd(&mut w, &mut r, &format!("RCPT TO:<{address}>")).await.0, 250);
    assert_eq!(smtp_cmd(&mut w, &mut r, "DATA").await.0, 354);
    let msg = format!(
        "From: Ada Lovelace <ada@example.com>\r\nTo: {address}\r\nSubject: Order late\r\nContent-Type: text/plain\r\n\r\norderId: ORD-5\r\n..dotted line\r\n.\r\n"
    );
    w.write_all(msg.as_bytes()).await.unwrap();
    assert_eq!(smtp_reply(&mut r).await.0, 250);
    assert_eq!(smtp_cmd(&mut w, &mut r, "QUIT").await.0, 221);

    let deadline = Instant::now() + WAIT;
    let runs = loop {
        let runs = api.expect("GET", &format!("/v1/workflows/{wf}/runs"), None, 200).await;
        let list = runs["data"].as_array().unwrap().clone();
        if list.len() == 1 && is_final(list[0]["status"].as_str().unwrap_or_default()) {
            break list;
        }
        assert!(Instant::now() < deadline, "no finished run: {runs}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let run = &runs[0];
    assert_eq!(run["status"], "succeeded", "{run}");
    let d = &run["trigger"]["data"];
    assert_eq!(run["trigger"]["type"], format!("hook.{id}"));
    assert_eq!(
        (d["from"].clone(), d["fromName"].clone(), d["subject"].clone()),
        (json!("ada@example.com"), json!("Ada Lovelace"), json!("Order late"))
    );
    assert_eq!(d["to"], json!([address]));
    assert_eq!(d["fields"]["orderId"], "ORD-5");
    assert!(d["text"].as_str().unwrap().contains(".dotted line"), "{d}");
    assert!(
        !d["text"].as_str().unwrap().contains("..dotted"),
        "dot-stuffing is undone: {d}"
    );
    let who = &step(run, "who")["output"];
    assert_eq!(
        (who["name"].clone(), who["emails"].clone()),
        (json!("Ada Lovelace"), json!(["ada@example.com"]))
    );
    assert_eq!(step(run, "conv")["output"]["subject"], "Order late");
    assert!(server.terminate().await.success());
}

/// The steps of the restart tests: an object, an HTTP call, a delay, another object.
fn restart_steps(http: Option<&str>) -> Value {
    let mut steps = vec![
        json!({"id": "make", "action": "objects.create", "params": {"klass": "customer", "object": {"name": "{{trigger.data.name}}", "tags": ["{{trigger.data.tag}}"]}}}),
    ];
    if let Some(url) = http {
        steps.push(json!({"id": "call", "action": "http.request", "params": {"method": "POST", "url": url, "body": {"name": "{{trigger.data.name}}"}}}));
    }
    steps.push(json!({"id": "wait", "action": "delay", "params": {"for": "3s"}}));
    steps.push(json!({"id": "note", "action": "objects.create", "params": {"klass": "note", "object": {"customer": "{{steps.make.output.id}}", "body": "after the delay"}}}));
    Value::Array(steps)
}

/// Checks a finished restart run: succeeded, `make` ran once and its object exists once.
async fn check_restart_run(api: &Api, run: &Value, tag: &str) {
    assert_eq!(run["status"], "succeeded", "{run}\n--- log ---\n{}", log_text(&api.log));
    let make = step(run, "make");
    assert_eq!(make["attempts"], 1, "a step that succeeded is not repeated: {run}");
    assert!(step(run, "wait")["output"]["resumedAt"].is_string(), "{run}");
    let cid = make["output"]["id"].as_str().unwrap();
    api.expect("GET", &format!("/v1/objects/customer/{cid}"), None, 200)
        .await;
    assert_eq!(step(run, "note")["output"]["customer"], cid);
    assert_eq!(
        api.count_after_refresh(json!({"queryContext": "customer", "and": [{"tags": {"equals": tag}}]}))
            .await,
        1,
        "one customer for the run"
    );
    assert_eq!(
        api.count_after_refresh(json!({"queryContext": "note", "and": [{"customer": {"equals": cid}}]}))
            .await,
        1,
        "one note for the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_in_a_delay_survives_sigterm_and_resumes_without_repeating_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, log) = (tmp.path().join("data"), tmp.path().join("log"));
    let server = Server::start(&data, &log, &[]).await;
    let api = server.api();
    api.workflow(json!({"event": "app.test.restart"}), restart_steps(None))
        .await;
    let id = api
        .event("app.test.restart", json!({"name": "Terminated", "tag": "term-1"}))
        .await;
    let waiting = api.wait_until(&id, WAIT, "waiting", |r| r["status"] == "waiting").await;
    assert_eq!(step(&waiting, "make")["status"], "succeeded");
    assert_eq!(step(&waiting, "wait")["status"], "waiting");
    assert!(server.terminate().await.success(), "exit 0 on SIGTERM");

    let server = Server::start(&data, &log, &[]).await;
    let api = server.api();
    let run = api.wait_final(&id, Duration::from_secs(15)).await;
    check_restart_run(&api, &run, "term-1").await;
    assert!(server.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_in_a_delay_survives_sigkill_without_repeating_finished_steps() {
    let (up, port) = Upstream::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (data, log) = (tmp.path().join("data"), tmp.path().join("log"));
    let allow = ["--http-allow".to_string(), format!("127.0.0.1:{port}")];
    let server = Server::start(&data, &log, &allow).await;
    let api = server.api();
    api.workflow(
        json!({"event": "app.test.restart"}),
        restart_steps(Some(&format!("http://127.0.0.1:{port}/echo"))),
    )
    .await;
    let id = api
        .event("app.test.restart", json!({"name": "Killed", "tag": "kill-1"}))
        .await;
    let waiting = api.wait_until(&id, WAIT, "waiting", |r| r["status"] == "waiting").await;
    assert_eq!(step(&waiting, "call")["status"], "succeeded");
    server.kill_hard();
    assert_eq!(up.hits("/echo").len(), 1);

    let server = Server::start(&data, &log, &allow).await;
    let api = server.api();
    let run = api.wait_final(&id, Duration::from_secs(15)).await;
    check_restart_run(&api, &run, "kill-1").await;
    assert_eq!(step(&run, "call")["attempts"], 1, "{run}");
    assert_eq!(
        up.hits("/echo").len(),
        1,
        "the HTTP call that had succeeded before the kill was made again: {:?}",
        up.hits("/echo")
    );
    assert!(server.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_backing_off_after_a_failed_step_resumes_after_a_restart() {
    let (up, port) = Upstream::start().await;
    up.fail_left.store(i64::MAX / 2, Ordering::SeqCst);
    let tmp = tempfile::tempdir().unwrap();
    let (data, log) = (tmp.path().join("data"), tmp.path().join("log"));
    let allow = ["--http-allow".to_string(), format!("127.0.0.1:{port}")];
    let server = Server::start(&data, &log, &allow).await;
    let api = server.api();
    api.workflow(json!({"event": "app.test.retry"}), json!([
        {"id": "make", "action": "objects.create", "params": {"klass": "customer", "object": {"name": "Retry", "tags": ["retry-1"]}}},
        {"id": "call", "action": "http.request", "params": {"method": "GET", "url": format!("http://127.0.0.1:{port}/flaky")}},
        {"id": "after", "action": "noop", "params": {"status": "{{steps.call.output.status}}"}}
    ])).await;
    let id = api.event("app.test.retry", json!({})).await;
    let backing_off = api
        .wait_until(&id, WAIT, "backing off", |r| {
            r["status"] == "waiting" && step(r, "call")["attempts"].as_u64() >= Some(1)
        })
        .await;
    assert!(
        step(&backing_off, "call")["error"].as_str().unwrap().contains("500"),
        "{backing_off}"
    );
    assert_eq!(step(&backing_off, "make")["status"], "succeeded");
    assert!(server.terminate().await.success());
    let failures = up.hits("/flaky").len();
    assert!(failures >= 1);

    // The upstream recovers while the service is down.
    up.fail_left.store(0, Ordering::SeqCst);
    let server = Server::start(&data, &log, &allow).await;
    let api = server.api();
    let run = api.wait_final(&id, Duration::from_secs(20)).await;
    assert_eq!(run["status"], "succeeded", "{run}\n--- log ---\n{}", log_text(&log));
    let call = step(&run, "call");
    assert_eq!(
        call["attempts"].as_u64().unwrap() as usize,
        failures + 1,
        "every attempt counted across the restart: {run}"
    );
    assert_eq!(up.hits("/flaky").len(), failures + 1);
    assert!(call["error"].is_null(), "{call}");
    assert_eq!(step(&run, "after")["output"], json!({"status": 200}));
    assert_eq!(step(&run, "make")["attempts"], 1, "{run}");
    assert_eq!(
        api.count_after_refresh(json!({"queryContext": "customer", "and": [{"tags": {"equals": "retry-1"}}]}))
            .await,
        1
    );
    assert!(server.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_hook_deliveries_and_app_events_survive_an_immediate_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, log) = (tmp.path().join("data"), tmp.path().join("log"));
    let server = Server::start(&data, &log, &[]).await;
    let api = server.api();
    let hook = api
        .expect("POST", "/v1/hooks", Some(json!({"name": "orders", "type": "web"})), 201)
        .await;
    // Each run waits a second, then upserts a customer by the delivery's reference.
    let steps = |reference: &str| {
        json!([
            {"id": "wait", "action": "delay", "params": {"for": "1s"}},
            {"id": "make", "action": "objects.upsert", "params": {"klass": "customer", "externalId": reference, "object": {"name": "Accepted"}}}
        ])
    };
    api.workflow(
        json!({"event": format!("hook.{}", hook["id"].as_str().unwrap())}),
        steps("{{trigger.data.body.ref}}"),
    )
    .await;
    api.workflow(json!({"event": "app.shop.paid"}), steps("{{trigger.data.ref}}"))
        .await;
    // A hook delivery and an app event, both answered 202; killed right after the answers.
    let r = reqwest::Client::new()
        .post(format!("{}{}", server.base, hook["url"].as_str().unwrap()))
        .json(&json!({"ref": "ext-hook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let body: Value = r.json().await.unwrap();
    let hook_run = body["runs"][0].as_str().unwrap().to_string();
    let event_run = api.event("app.shop.paid", json!({"ref": "ext-event"})).await;
    server.kill_hard();

    // Acknowledged means stored: both runs exist after the restart and finish.
    let server = Server::start(&data, &log, &[]).await;
    let api = server.api();
    let (hook_st, hook_body) = api.call("GET", &format!("/v1/workflow-runs/{hook_run}"), None).await;
    let (event_st, event_body) = api.call("GET", &format!("/v1/workflow-runs/{event_run}"), None).await;
    assert_eq!(
        (hook_st, event_st),
        (200, 200),
        "runs of acknowledged deliveries were lost by a SIGKILL: hook run {hook_body}, event run {event_body}"
    );
    for (run, ext) in [(hook_run, "ext-hook"), (event_run, "ext-event")] {
        let run = api.wait_final(&run, Duration::from_secs(15)).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        api.expect("GET", &format!("/v1/objects/customer/by-external-id/{ext}"), None, 200)
            .await;
    }
    assert!(server.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_runs_page_newest_first_with_store_cursors() {
    let t = TestApp::new().await;
    let wf = noop_workflow(&t, A, "app.paging.tick").await;
    let other = noop_workflow(&t, A, "app.paging.other").await;
    let mut started = Vec::new();
    for i in 0..7 {
        started.extend(post_event(&t, A, "app.paging.tick", json!({"i": i})).await);
    }
    post_event(&t, A, "app.paging.other", json!({})).await;
    assert_eq!(started.len(), 7);

    // Pages of 3: 3 + 3 + 1, newest first, each run once, the total on every page.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => format!("/v1/workflows/{wf}/runs?pageSize=3"),
            Some(c) => format!("/v1/workflows/{wf}/runs?pageSize=3&cursor={c}"),
        };
        let page = t.get(&path, A).await.expect(200);
        assert_eq!(page["total"], 7, "{page}");
        pages += 1;
        seen.extend(ids(&page));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut newest_first = started.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every run once, newest first");
    // The default page holds all of them; the other workflow's run is not among them.
    let all = t.get(&format!("/v1/workflows/{wf}/runs"), A).await.expect(200);
    assert_eq!(ids(&all), newest_first);
    assert_eq!(all["nextCursor"], Value::Null);
    let theirs = t.get(&format!("/v1/workflows/{other}/runs"), A).await.expect(200);
    assert_eq!(theirs["total"], 1);

    // Bad page sizes and cursors of other lists are refused, naming the parameter.
    for bad in ["pageSize=0", "pageSize=1001", "cursor=nonsense", "cursor=MTox"] {
        let r = t.get(&format!("/v1/workflows/{wf}/runs?{bad}"), A).await;
        assert_eq!(r.status.as_u16(), 400, "{bad}: {}", r.text);
        let param = bad.split('=').next().unwrap();
        assert_eq!(r.body["errors"][0]["source"]["parameter"], param, "{}", r.text);
    }
    // An unknown workflow is a 404, also with paging parameters.
    let r = t.get("/v1/workflows/nope/runs?pageSize=2", A).await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
}
