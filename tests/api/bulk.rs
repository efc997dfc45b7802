//! `POST /v1/bulk`: one answer per non-blank input line, in order, with the input's line numbers;
//! a bad line (malformed, invalid, unknown klass, duplicate, forbidden, over 1 MiB) never stops
//! the others; objects and definitions; no total body limit; `?refresh=wait_for`.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::helpers::{TestApp, ADMIN_KEY as A};

/// A bulk call's answer: the HTTP status and the parsed answer lines.
struct BulkAnswer {
    status: u16,
    content_type: String,
    lines: Vec<Value>,
    text: String,
}

impl BulkAnswer {
    /// The answer for input line `n`.
    #[track_caller]
    fn at(&self, n: u64) -> &Value {
        self.lines
            .iter()
            .find(|l| l["line"] == n)
            .unwrap_or_else(|| panic!("no answer for line {n}; answer:\n{}", self.text))
    }

    /// Asserts line `n`'s status and returns its answer.
    #[track_caller]
    fn expect(&self, n: u64, status: u16) -> &Value {
        let l = self.at(n);
        assert_eq!(l["status"], status, "line {n}: {l}");
        if status < 300 {
            assert!(l.get("errors").is_none(), "line {n}: {l}");
        } else {
            let errors = l["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("line {n} has no errors: {l}"));
            assert!(!errors.is_empty(), "line {n}: {l}");
            for e in errors {
                assert_eq!(
                    e["status"],
                    status.to_string(),
                    "line {n}: each error carries the line's status: {l}"
                );
                assert!(
                    e["code"].is_string() && e["title"].is_string(),
                    "line {n}: JSON:API error objects: {l}"
                );
            }
        }
        l
    }

    /// Line `n`'s first error pointer.
    fn pointer(&self, n: u64) -> Option<&str> {
        self.at(n)["errors"][0]["source"]["pointer"].as_str()
    }
}

/// Posts an NDJSON body, streamed in chunks of `chunk` bytes (0: one piece).
async fn bulk_chunked(t: &TestApp, path: &str, key: Option<&str>, body: Vec<u8>, chunk: usize) -> BulkAnswer {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/x-ndjson");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let body = if chunk == 0 {
        Body::from(body)
    } else {
        let pieces: Vec<Result<bytes::Bytes, std::io::Error>> = body
            .chunks(chunk)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures::stream::iter(pieces))
    };
    let resp = t.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let lines = if status == 200 {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("answer line is not JSON ({e}): {l}")))
            .collect()
    } else {
        vec![]
    };
    BulkAnswer {
        status,
        content_type,
        lines,
        text,
    }
}

async fn bulk(t: &TestApp, path: &str, key: &str, body: &str) -> BulkAnswer {
    let a = bulk_chunked(t, path, Some(key), body.as_bytes().to_vec(), 0).await;
    assert_eq!(a.status, 200, "bulk answered {}: {}", a.status, a.text);
    a
}

/// An NDJSON body of JSON values and raw lines.
fn ndjson(lines: &[Value]) -> String {
    lines
        .iter()
        .map(|l| {
            if let Value::String(raw) = l {
                raw.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that the answer has exactly the given line numbers, in this order.
#[track_caller]
fn assert_numbers(a: &BulkAnswer, want: &[u64]) {
    let got: Vec<u64> = a
        .lines
        .iter()
        .map(|l| l["line"].as_u64().unwrap_or_else(|| panic!("no line number: {l}")))
        .collect();
    assert_eq!(got, want, "answer:\n{}", a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_and_bad_lines_are_answered_one_by_one_in_order() {
    let t = TestApp::new().await;
    t.patch(
        "/v1/klasses/customer",
        A,
        json!({"attributes": [{"name": "scoreNum", "type": "number"}]}),
    )
    .await
    .expect(200);
    let body = ndjson(&[
        /* 1 */
        json!({"op": "create", "klass": "customer", "id": "c1", "object": {"name": "Ada", "custom": {"tierStr": "gold"}}}),
        /* 2 */ json!("{\"op\": \"create\", \"klass\": \"customer\", \"object\": {"),
        /* 3 */ json!({"op": "create", "klass": "customer", "id": "c1", "object": {"name": "Ada again"}}),
        /* 4 */ json!(""),
        /* 5 */ json!({"op": "create", "klass": "nosuchklass", "object": {"title": "x"}}),
        /* 6 */
        json!({"op": "create", "klass": "customer", "object": {"name": "Bad score", "custom": {"scoreNum": "high"}}}),
        /* 7 */
        json!({"op": "create", "klass": "customer", "object": {"name": "Zed", "emails": ["zed@example.com"]}}),
        /* 8 */ json!("   "),
        /* 9 */
        json!({"op": "create", "klass": "conversation", "object": {"customer": "ghost", "subject": "Nobody"}}),
        /* 10 */ json!([1, 2, 3]),
        /* 11 */ json!({"op": "frobnicate", "klass": "customer", "object": {}}),
        /* 12 */
        json!({"op": "create", "klass": "customer", "id": "c2", "object": {"id": "c3", "name": "Mismatch"}}),
        /* 13 */
        json!({"op": "create", "klass": "customer", "object": {"name": "Unknown attr", "custom": {"loyalty": 3}}}),
        /* 14 */
        json!({"op": "create", "klass": "conversation", "id": "v1", "object": {"customer": "c1", "subject": "Refund", "status": "open"}}),
        /* 15 */
        json!({"op": "create", "klass": "conversation", "object": {"customer": "c1", "status": "closed"}}),
        /* 16 */ json!({"op": "create", "klass": "customer", "id": "bad id!", "object": {"name": "Bad id"}}),
        /* 17 */
        json!({"op": "create", "klass": "customer", "externalId": "ext-z", "object": {"name": "External"}}),
        /* 18 */
        json!({"op": "create", "klass": "customer", "externalId": "ext-z", "object": {"name": "External twin"}}),
        // The last line has no newline after it.
        /* 19 */
        json!({"op": "create", "klass": "message", "object": {"conversation": "v1", "body": "hello", "direction": "in"}}),
    ]);
    let a = bulk(&t, "/v1/bulk?refresh=wait_for", A, &body).await;
    assert!(
        a.content_type.starts_with("application/x-ndjson"),
        "content-type {}",
        a.content_type
    );
    assert_numbers(&a, &[1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);

    assert_eq!(a.expect(1, 201)["id"], "c1");
    a.expect(2, 400);
    a.expect(3, 409);
    a.expect(5, 404);
    a.expect(6, 422);
    assert_eq!(a.pointer(6), Some("/object/custom/scoreNum"), "{}", a.at(6));
    let zed = a.expect(7, 201)["id"].as_str().expect("a generated id").to_string();
    assert_eq!(zed.len(), 36, "a UUID v7: {zed}");
    a.expect(9, 422);
    assert_eq!(a.pointer(9), Some("/object/customer"), "{}", a.at(9));
    a.expect(10, 400);
    a.expect(11, 400);
    assert_eq!(a.pointer(11), Some("/op"), "{}", a.at(11));
    a.expect(12, 422);
    assert_eq!(a.pointer(12), Some("/object/id"), "{}", a.at(12));
    a.expect(13, 422);
    assert_eq!(a.pointer(13), Some("/object/custom/loyalty"), "{}", a.at(13));
    assert_eq!(a.expect(14, 201)["id"], "v1");
    a.expect(15, 422);
    assert_eq!(a.pointer(15), Some("/object/status"), "{}", a.at(15));
    a.expect(16, 422);
    assert_eq!(a.pointer(16), Some("/object/id"), "{}", a.at(16));
    let ext = a.expect(17, 201)["id"].as_str().unwrap().to_string();
    a.expect(18, 409);
    let msg = a.expect(19, 201)["id"].as_str().unwrap().to_string();

    // What the good lines wrote is there, and nothing of the bad ones.
    let c1 = t.get("/v1/objects/customer/c1", A).await.expect(200);
    assert_eq!(c1["name"], "Ada");
    assert_eq!(c1["custom"]["tierStr"], "gold");
    assert_eq!(
        t.get(&format!("/v1/objects/customer/{zed}"), A).await.expect(200)["emails"],
        json!(["zed@example.com"])
    );
    assert_eq!(
        t.get("/v1/objects/customer/by-external-id/ext-z", A).await.expect(200)["id"],
        ext.as_str()
    );
    assert_eq!(
        t.get(&format!("/v1/objects/message/{msg}"), A).await.expect(200)["customer"],
        "c1",
        "a message's customer defaults to its conversation's"
    );
    t.get("/v1/objects/customer/c2", A).await.expect(404);
    t.get("/v1/objects/customer/c3", A).await.expect(404);
    // refresh=wait_for: the three customers are searchable now.
    assert_eq!(
        t.post("/v1/search/count", A, json!({"queryContext": "customer"}))
            .await
            .expect(200)["total"],
        3
    );
    // An empty body: an empty answer.
    let a = bulk(&t, "/v1/bulk", A, "").await;
    assert!(a.lines.is_empty(), "an empty body has no answers: {}", a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_updates_and_deletes_by_id_and_external_id() {
    let t = TestApp::new().await;
    let body = ndjson(&[
        /* 1 */
        json!({"op": "upsert", "klass": "customer", "externalId": "ext-1", "object": {"name": "Bob", "custom": {"tierStr": "gold"}, "tags": ["a"]}}),
        /* 2 */
        json!({"op": "upsert", "klass": "customer", "externalId": "ext-1", "object": {"custom": {"ltvNum": 10}}}),
        /* 3 */
        json!({"op": "upsert", "klass": "customer", "id": "c1", "object": {"name": "Cy", "emails": ["cy@example.com"]}}),
        /* 4 */
        json!({"op": "upsert", "klass": "customer", "id": "c1", "object": {"custom": {"tierStr": "silver"}}}),
        /* 5 */
        json!({"op": "update", "klass": "customer", "id": "c1", "object": {"name": "Cyd", "custom": {"tierStr": null}}}),
        /* 6 */
        json!({"op": "update", "klass": "customer", "externalId": "ext-1", "object": {"tags": ["a", "b"]}}),
        /* 7 */ json!({"op": "update", "klass": "customer", "id": "nobody", "object": {"name": "x"}}),
        /* 8 */
        json!({"op": "update", "klass": "customer", "externalId": "ext-nobody", "object": {"name": "x"}}),
        /* 9 */
        json!({"op": "create", "klass": "customer", "id": "c2", "externalId": "ext-2", "object": {"name": "Doomed"}}),
        /* 10 */ json!({"op": "delete", "klass": "customer", "id": "c2"}),
        /* 11 */ json!({"op": "delete", "klass": "customer", "id": "c2"}),
        /* 12 */
        json!({"op": "create", "klass": "customer", "id": "c3", "externalId": "ext-3", "object": {"name": "Doomed too"}}),
        /* 13 */ json!({"op": "delete", "klass": "customer", "externalId": "ext-3"}),
        /* 14 */ json!({"op": "upsert", "klass": "customer", "object": {"name": "No key"}}),
        /* 15 */ json!({"op": "update", "klass": "customer", "object": {"name": "No key"}}),
        /* 16 */
        json!({"op": "upsert", "klass": "customer", "id": "c1", "object": {"emails": ["not an email"]}}),
        /* 17 */
        json!({"op": "upsert", "klass": "customer", "id": "c4", "externalId": "ext-4", "object": {"name": "Dee"}}),
        /* 18 */
        json!({"op": "upsert", "klass": "customer", "id": "c4", "externalId": "ext-4", "object": {"phones": ["+15550001"]}}),
        /* 19 */
        json!({"op": "update", "klass": "conversation", "id": "c1", "object": {"subject": "wrong klass"}}),
    ]);
    let a = bulk(&t, "/v1/bulk?refresh=wait_for", A, &body).await;
    assert_numbers(&a, &(1..=19).collect::<Vec<_>>());
    let bob = a.expect(1, 201)["id"].as_str().unwrap().to_string();
    assert_eq!(
        a.expect(2, 200)["id"],
        bob.as_str(),
        "an upsert on the same externalId updates the same object"
    );
    assert_eq!(a.expect(3, 201)["id"], "c1");
    assert_eq!(a.expect(4, 200)["id"], "c1");
    assert_eq!(a.expect(5, 200)["id"], "c1");
    assert_eq!(a.expect(6, 200)["id"], bob.as_str());
    a.expect(7, 404);
    a.expect(8, 404);
    assert_eq!(a.expect(9, 201)["id"], "c2");
    let del = a.expect(10, 204);
    assert_eq!(del["id"], "c2");
    a.expect(11, 404);
    a.expect(12, 201);
    assert_eq!(a.expect(13, 204)["id"], "c3");
    a.expect(14, 400);
    a.expect(15, 400);
    a.expect(16, 422);
    assert!(
        a.pointer(16)
            .is_some_and(|p| p == "/object/emails" || p == "/object/emails/0"),
        "{}",
        a.at(16)
    );
    assert_eq!(a.expect(17, 201)["id"], "c4");
    assert_eq!(a.expect(18, 200)["id"], "c4");
    a.expect(19, 404);

    // Upserts merge into the existing object.
    let b = t.get(&format!("/v1/objects/customer/{bob}"), A).await.expect(200);
    assert_eq!(b["externalId"], "ext-1");
    assert_eq!(b["name"], "Bob", "an upsert keeps the fields it does not name: {b}");
    assert_eq!(b["custom"]["tierStr"], "gold", "{b}");
    assert_eq!(b["custom"]["ltvNum"], 10, "{b}");
    assert_eq!(b["tags"], json!(["a", "b"]), "{b}");
    assert_eq!(b["rev"], 3, "{b}");
    let c1 = t.get("/v1/objects/customer/c1", A).await.expect(200);
    assert_eq!(c1["name"], "Cyd", "{c1}");
    assert_eq!(
        c1["emails"],
        json!(["cy@example.com"]),
        "the failed line 16 changed nothing: {c1}"
    );
    assert!(
        c1["custom"].get("tierStr").is_none(),
        "null removes a custom attribute: {c1}"
    );
    assert_eq!(c1["rev"], 3, "{c1}");
    let c4 = t.get("/v1/objects/customer/by-external-id/ext-4", A).await.expect(200);
    assert_eq!(
        (c4["id"].as_str(), c4["name"].as_str()),
        (Some("c4"), Some("Dee")),
        "{c4}"
    );
    assert_eq!(c4["phones"], json!(["+15550001"]), "{c4}");
    t.get("/v1/objects/customer/c2", A).await.expect(404);
    t.get("/v1/objects/customer/c3", A).await.expect(404);
    t.get("/v1/objects/customer/by-external-id/ext-3", A).await.expect(404);
    // And the index agrees (refresh=wait_for).
    let mut ids = t
        .search_ids(A, json!({"queryContext": "customer", "sort": [{"id": "asc"}]}))
        .await;
    ids.sort();
    let mut want = vec![bob.clone(), "c1".into(), "c4".into()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        t.search_ids(
            A,
            json!({"queryContext": "customer", "and": [{"name": {"equals": "cyd"}}]})
        )
        .await,
        ["c1"]
    );
    assert_eq!(
        t.search_ids(
            A,
            json!({"queryContext": "customer", "and": [{"tags": {"equals": "b"}}]})
        )
        .await,
        [bob]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definition_lines_create_and_upsert_klasses_teams_and_users_for_admins_only() {
    let t = TestApp::new().await;
    let body = ndjson(&[
        /* 1 */
        json!({"op": "create", "resource": "klass", "object": {"name": "order", "displayName": "Order", "attributes": [{"name": "totalNum", "type": "number"}]}}),
        /* 2 */
        json!({"op": "upsert", "resource": "klass", "object": {"name": "order", "attributes": [{"name": "skuStr", "type": "string"}]}}),
        /* 3 */
        json!({"op": "upsert", "resource": "klass", "object": {"name": "customer", "attributes": [{"name": "tier", "type": "enum", "values": ["gold", "silver"]}]}}),
        /* 4 */ json!({"op": "create", "resource": "team", "object": {"id": "t1", "name": "Support"}}),
        /* 5 */ json!({"op": "upsert", "resource": "team", "object": {"id": "t1", "name": "Support EU"}}),
        /* 6 */ json!({"op": "upsert", "resource": "team", "object": {"id": "t2", "name": "Billing"}}),
        /* 7 */
        json!({"op": "create", "resource": "user", "object": {"id": "u1", "name": "Una", "email": "una@example.com", "role": "agent", "teams": ["t1"]}}),
        /* 8 */
        json!({"op": "upsert", "resource": "user", "object": {"id": "u1", "name": "Una", "email": "una@example.com", "role": "analyst", "teams": ["t1", "t2"]}}),
        /* 9 */ json!({"op": "create", "resource": "team", "object": {"id": "t1", "name": "Dup"}}),
        /* 10 */ json!({"op": "create", "resource": "klass", "object": {"name": "1order", "attributes": []}}),
        /* 11 */ json!({"op": "delete", "resource": "team", "object": {"id": "t1"}}),
        /* 12 */ json!({"op": "create", "resource": "widget", "object": {"id": "w"}}),
        /* 13 */
        json!({"op": "create", "klass": "order", "id": "o1", "object": {"title": "First", "custom": {"totalNum": 12.5, "skuStr": "SKU-1"}}}),
        /* 14 */
        json!({"op": "create", "klass": "customer", "id": "c1", "object": {"name": "Ada", "custom": {"tier": "gold"}}}),
        /* 15 */
        json!({"op": "create", "klass": "customer", "id": "c2", "object": {"name": "Bo", "custom": {"tier": "bronze"}}}),
        /* 16 */
        json!({"op": "create", "klass": "conversation", "id": "v1", "object": {"customer": "c1", "assignedTeam": "t2", "assignedUser": "u1"}}),
        /* 17 */
        json!({"op": "create", "resource": "user", "object": {"id": "u2", "name": "No email", "role": "agent"}}),
    ]);
    let a = bulk(&t, "/v1/bulk", A, &body).await;
    assert_numbers(&a, &(1..=17).collect::<Vec<_>>());
    assert_eq!(a.expect(1, 201)["id"], "order");
    assert_eq!(a.expect(2, 200)["id"], "order");
    assert_eq!(a.expect(3, 200)["id"], "customer");
    assert_eq!(a.expect(4, 201)["id"], "t1");
    assert_eq!(a.expect(5, 200)["id"], "t1");
    assert_eq!(a.expect(6, 201)["id"], "t2");
    assert_eq!(a.expect(7, 201)["id"], "u1");
    assert_eq!(a.expect(8, 200)["id"], "u1");
    a.expect(9, 409);
    a.expect(10, 422);
    assert_eq!(a.pointer(10), Some("/object/name"), "{}", a.at(10));
    a.expect(11, 400);
    a.expect(12, 400);
    assert_eq!(a.pointer(12), Some("/resource"), "{}", a.at(12));
    a.expect(13, 201);
    a.expect(14, 201);
    a.expect(15, 422);
    assert_eq!(a.pointer(15), Some("/object/custom/tier"), "{}", a.at(15));
    a.expect(16, 201);
    a.expect(17, 422);
    assert!(a.pointer(17).is_some_and(|p| p.starts_with("/object/")), "{}", a.at(17));

    // A klass upsert merges: the attributes of line 1 stay.
    let k = t.get("/v1/klasses/order", A).await.expect(200);
    let names: Vec<&str> = k["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"totalNum") && names.contains(&"skuStr"), "{k}");
    assert_eq!(k["displayName"], "Order", "{k}");
    assert_eq!(t.get("/v1/teams/t1", A).await.expect(200)["name"], "Support EU");
    let u = t.get("/v1/users/u1", A).await.expect(200);
    assert_eq!(
        (u["role"].as_str(), u["teams"].clone()),
        (Some("analyst"), json!(["t1", "t2"])),
        "{u}"
    );
    assert_eq!(
        t.get("/v1/objects/order/o1", A).await.expect(200)["custom"]["skuStr"],
        "SKU-1"
    );
    t.get("/v1/users/u2", A).await.expect(404);

    // Agents: definition lines are 403 each, their object lines still apply.
    let agent = t.user_key(A, "agent1", "agent", &[]).await;
    let body = ndjson(&[
        json!({"op": "create", "resource": "klass", "object": {"name": "shipment", "attributes": []}}),
        json!({"op": "create", "klass": "customer", "id": "c9", "object": {"name": "By agent"}}),
        json!({"op": "upsert", "resource": "team", "object": {"id": "t9", "name": "Agents' team"}}),
        json!({"op": "upsert", "resource": "user", "object": {"id": "u1", "name": "Una", "email": "una@example.com", "role": "admin"}}),
        json!({"op": "upsert", "resource": "klass", "object": {"name": "order", "attributes": [{"name": "hackStr", "type": "string"}]}}),
    ]);
    let a = bulk(&t, "/v1/bulk", &agent, &body).await;
    assert_numbers(&a, &[1, 2, 3, 4, 5]);
    a.expect(1, 403);
    assert_eq!(a.expect(2, 201)["id"], "c9");
    a.expect(3, 403);
    a.expect(4, 403);
    a.expect(5, 403);
    t.get("/v1/klasses/shipment", A).await.expect(404);
    t.get("/v1/teams/t9", A).await.expect(404);
    assert_eq!(t.get("/v1/users/u1", A).await.expect(200)["role"], "analyst");
    let k = t.get("/v1/klasses/order", A).await.expect(200);
    assert!(
        !k["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "hackStr"),
        "{k}"
    );

    // Analysts: every line is 403, one by one.
    let analyst = t.user_key(A, "analyst1", "analyst", &[]).await;
    let body = ndjson(&[
        json!({"op": "create", "klass": "customer", "id": "c10", "object": {"name": "By analyst"}}),
        json!(""),
        json!({"op": "update", "klass": "customer", "id": "c1", "object": {"name": "Changed"}}),
        json!({"op": "delete", "klass": "customer", "id": "c1"}),
        json!({"op": "upsert", "klass": "customer", "externalId": "e", "object": {"name": "x"}}),
        json!({"op": "create", "resource": "team", "object": {"id": "t10", "name": "x"}}),
        json!("not json"),
    ]);
    let a = bulk(&t, "/v1/bulk", &analyst, &body).await;
    assert_numbers(&a, &[1, 3, 4, 5, 6, 7]);
    for n in [1, 3, 4, 5, 6] {
        a.expect(n, 403);
    }
    a.expect(7, 400);
    t.get("/v1/objects/customer/c10", A).await.expect(404);
    assert_eq!(t.get("/v1/objects/customer/c1", A).await.expect(200)["name"], "Ada");

    // Without a key the whole request is a 401 in the error format.
    let r = bulk_chunked(&t, "/v1/bulk", None, body.into_bytes(), 0).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let v: Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(v["errors"][0]["status"], "401", "{v}");
    // A bad refresh parameter is a 400 naming it.
    let r = bulk_chunked(&t, "/v1/bulk?refresh=later", Some(A), b"{}".to_vec(), 0).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let v: Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(v["errors"][0]["source"]["parameter"], "refresh", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blank_lines_and_crlf_count_for_numbering_but_get_no_answer() {
    let t = TestApp::new().await;
    let l = |id: &str| json!({"op": "create", "klass": "customer", "id": id, "object": {"name": id}}).to_string();
    let body = format!(
        "\n{}\r\n\r\n  \t \n{}\n\n\n{}\r\n{}\n\n",
        l("a"),
        l("b"),
        l("c"),
        l("a")
    );
    let a = bulk(&t, "/v1/bulk", A, &body).await;
    assert_numbers(&a, &[2, 5, 8, 9]);
    a.expect(2, 201);
    a.expect(5, 201);
    a.expect(8, 201);
    a.expect(9, 409);
    // Only blank lines: an empty answer.
    let a = bulk(&t, "/v1/bulk", A, "\n\n   \n").await;
    assert!(a.lines.is_empty(), "{}", a.text);
}

/// A valid customer line of about `len` bytes.
fn big_line(id: &str, len: usize) -> String {
    let bio = "lorem ipsum ".repeat(len / 12 + 1);
    json!({"op": "create", "klass": "customer", "id": id, "object": {"name": id, "custom": {"bioTxt": &bio[..len]}}})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_over_one_mib_is_413_and_the_lines_around_it_still_apply() {
    let t = TestApp::new().await;
    let limit = 1 << 20;
    let small = |id: &str| json!({"op": "create", "klass": "customer", "id": id, "object": {"name": id}}).to_string();
    let body = [
        small("before"),
        big_line("huge", limit + 1000),
        big_line("fits", limit - 2000),
        small("between"),
        big_line("huge2", 3 * limit),
        small("after"),
    ]
    .join("\n");
    assert!(big_line("fits", limit - 2000).len() <= limit);
    // In one piece, and streamed in small chunks (the long line never arrives whole).
    for (chunk, prefix) in [(0usize, "a"), (64 << 10, "b"), (1000, "c")] {
        let body = body.replace("\"id\":\"", &format!("\"id\":\"{prefix}-"));
        let a = bulk_chunked(&t, "/v1/bulk?refresh=wait_for", Some(A), body.into_bytes(), chunk).await;
        assert_eq!(a.status, 200, "chunk {chunk}: {}", &a.text[..a.text.len().min(2000)]);
        assert_numbers(&a, &[1, 2, 3, 4, 5, 6]);
        for (n, st) in [(1, 201), (2, 413), (3, 201), (4, 201), (5, 413), (6, 201)] {
            a.expect(n, st);
        }
        for id in ["before", "fits", "between", "after"] {
            t.get(&format!("/v1/objects/customer/{prefix}-{id}"), A)
                .await
                .expect(200);
        }
        for id in ["huge", "huge2"] {
            t.get(&format!("/v1/objects/customer/{prefix}-{id}"), A)
                .await
                .expect(404);
        }
    }
    assert_eq!(
        t.post("/v1/search/count", A, json!({"queryContext": "customer"}))
            .await
            .expect(200)["total"],
        12
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_body_is_answered_line_by_line_without_a_total_limit_and_refresh_waits_for_all() {
    let t = TestApp::new().await;
    const N: u64 = 20_000;
    let pad = "x".repeat(100);
    let mut body = String::new();
    let mut bad = Vec::new();
    for i in 1..=N {
        if i % 997 == 0 {
            body.push_str("{\"op\": \"create\", broken\n");
            bad.push(i);
        } else {
            body.push_str(&json!({"op": "create", "klass": "customer", "id": format!("c{i}"), "object": {"name": format!("Customer {i}"), "custom": {"seqNum": i, "padStr": pad}}}).to_string());
            body.push('\n');
        }
    }
    assert!(
        body.len() > 3 << 20,
        "the body is well over the 1 MiB request limit ({} bytes)",
        body.len()
    );
    let a = bulk_chunked(&t, "/v1/bulk?refresh=wait_for", Some(A), body.into_bytes(), 256 << 10).await;
    assert_eq!(a.status, 200, "{}", &a.text[..a.text.len().min(2000)]);
    assert_eq!(a.lines.len() as u64, N, "one answer per line");
    for (i, l) in a.lines.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(l["line"], n, "answers in order");
        if bad.contains(&n) {
            assert_eq!(l["status"], 400, "{l}");
        } else {
            assert_eq!(l["status"], 201, "{l}");
            assert_eq!(l["id"], format!("c{n}"), "{l}");
        }
    }
    // refresh=wait_for: all of it is searchable as soon as the answer ends.
    let want = N - bad.len() as u64;
    assert_eq!(
        t.post("/v1/search/count", A, json!({"queryContext": "customer"}))
            .await
            .expect(200)["total"],
        want
    );
    assert_eq!(
        t.search_ids(
            A,
            json!({"queryContext": "customer", "and": [{"custom.seqNum": {"equals": N}}]})
        )
        .await,
        [format!("c{N}")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_wait_for_makes_creates_updates_and_deletes_visible_when_the_answer_ends() {
    let t = TestApp::new().await;
    for round in 0..5 {
        let mut lines = Vec::new();
        for i in 0..50 {
            lines.push(json!({"op": "upsert", "klass": "customer", "id": format!("c{i}"), "object": {"name": format!("Round {round}"), "custom": {"roundNum": round}}}));
        }
        if round > 0 {
            lines.push(json!({"op": "delete", "klass": "customer", "id": format!("c{}", 50 + round - 1)}));
        }
        lines.push(json!({"op": "create", "klass": "customer", "id": format!("c{}", 50 + round), "object": {"name": "Extra", "custom": {"roundNum": round}}}));
        let a = bulk(&t, "/v1/bulk?refresh=wait_for", A, &ndjson(&lines)).await;
        assert!(
            a.lines.iter().all(|l| l["status"].as_u64().is_some_and(|s| s < 300)),
            "{}",
            a.text
        );
        // Immediately: the round's values, the previous extra gone, the new one there.
        let total = t
            .post(
                "/v1/search/count",
                A,
                json!({"queryContext": "customer", "and": [{"custom.roundNum": {"equals": round}}]}),
            )
            .await
            .expect(200);
        assert_eq!(total["total"], 51, "round {round}");
        let all = t
            .post("/v1/search/count", A, json!({"queryContext": "customer"}))
            .await
            .expect(200);
        assert_eq!(all["total"], 51, "round {round}");
        assert_eq!(
            t.search_ids(
                A,
                json!({"queryContext": "customer", "and": [{"name": {"equals": "extra"}}]})
            )
            .await,
            [format!("c{}", 50 + round)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_creates_is_one_batch_with_rules_references_and_per_line_answers() {
    let t = TestApp::new().await;
    t.post(
        "/v1/business-rules",
        A,
        json!({"name": "VIP tag", "klass": "conversation", "conditions": {"and": [{"subject": {"contains": "vip"}}]}, "actions": [{"addTags": ["vip"]}]}),
    )
    .await
    .expect(201);
    // A rule whose action no longer applies: its team is gone.
    t.post("/v1/teams", A, json!({"id": "gone-team", "name": "Gone"}))
        .await
        .expect(201);
    t.post(
        "/v1/business-rules",
        A,
        json!({"name": "Gone team", "klass": "conversation", "conditions": {"and": [{"subject": {"contains": "explode"}}]}, "actions": [{"assign": {"team": "gone-team"}}]}),
    )
    .await
    .expect(201);
    t.delete("/v1/teams/gone-team", A).await.expect(204);
    // Every line a create: one run, written as one batch. Later lines reference earlier ones.
    let body = ndjson(&[
        /* 1 */
        json!({"op": "create", "klass": "customer", "id": "r1", "object": {"name": "Rita", "emails": ["r1@example.com"]}}),
        /* 2 */
        json!({"op": "create", "klass": "conversation", "id": "k1", "object": {"customer": "r1", "subject": "vip call"}}),
        /* 3 */
        json!({"op": "create", "klass": "conversation", "id": "k2", "object": {"customer": "r1", "subject": "explode"}}),
        /* 4 */
        json!({"op": "create", "klass": "message", "id": "m1", "object": {"conversation": "k1", "body": "hi", "direction": "in"}}),
        /* 5 */
        json!({"op": "create", "klass": "conversation", "object": {"customer": "nobody", "subject": "x"}}),
        /* 6 */
        json!({"op": "create", "klass": "message", "object": {"conversation": "k2", "body": "to a refused conversation", "direction": "in"}}),
    ]);
    let a = bulk(&t, "/v1/bulk?refresh=wait_for", A, &body).await;
    assert_numbers(&a, &[1, 2, 3, 4, 5, 6]);
    a.expect(1, 201);
    a.expect(2, 201);
    assert_eq!(
        a.expect(3, 422)["errors"][0]["code"],
        "business_rule_failed",
        "{}",
        a.text
    );
    a.expect(4, 201);
    assert_eq!(a.pointer(5), Some("/object/customer"), "{}", a.at(5));
    a.expect(5, 422);
    a.expect(6, 422);
    assert_eq!(a.pointer(6), Some("/object/conversation"), "{}", a.at(6));
    assert_eq!(
        t.get("/v1/objects/conversation/k1", A).await.expect(200)["tags"],
        json!(["vip"])
    );
    t.get("/v1/objects/conversation/k2", A).await.expect(404);
    assert_eq!(t.get("/v1/objects/message/m1", A).await.expect(200)["customer"], "r1");
    // Each object of the batch has its own change-log record: the index saw them all.
    for (klass, n) in [("customer", 1), ("conversation", 1), ("message", 1)] {
        assert_eq!(
            t.post("/v1/search/count", A, json!({"queryContext": klass}))
                .await
                .expect(200)["total"],
            n,
            "{klass}"
        );
    }
    // A duplicate inside a run: the batch is refused as a whole and its lines applied one by one,
    // so only the duplicate fails.
    let body = ndjson(&[
        /* 1 */
        json!({"op": "create", "klass": "customer", "id": "r2", "object": {"name": "Rob", "emails": ["r2@example.com"]}}),
        /* 2 */
        json!({"op": "create", "klass": "customer", "id": "r3", "object": {"name": "Rob twin", "emails": ["r2@example.com"]}}),
        /* 3 */
        json!({"op": "create", "klass": "conversation", "id": "k3", "object": {"customer": "r2", "subject": "vip again"}}),
        /* 4 */ json!({"op": "create", "klass": "customer", "id": "r1", "object": {"name": "Rita twin"}}),
    ]);
    let a = bulk(&t, "/v1/bulk?refresh=wait_for", A, &body).await;
    a.expect(1, 201);
    a.expect(2, 409);
    a.expect(3, 201);
    a.expect(4, 409);
    t.get("/v1/objects/customer/r3", A).await.expect(404);
    assert_eq!(
        t.get("/v1/objects/conversation/k3", A).await.expect(200)["tags"],
        json!(["vip"])
    );
    assert_eq!(t.get("/v1/objects/customer/r1", A).await.expect(200)["name"], "Rita");
    assert_eq!(
        t.post("/v1/search/count", A, json!({"queryContext": "customer"}))
            .await
            .expect(200)["total"],
        2
    );
}

/// A client that sends a few lines and waits for their answers before it sends more (or ends its
/// body) gets them: lines do not wait for a full batch while no input comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_answered_while_the_body_is_still_open() {
    let t = TestApp::new().await;
    let (feed, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|x| (x, rx))
    }));
    let req = Request::builder()
        .method("POST")
        .uri("/v1/bulk")
        .header("content-type", "application/x-ndjson")
        .header("authorization", format!("Bearer {A}"))
        .body(body)
        .unwrap();
    let resp = t.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut answers = resp.into_body();
    let mut text = String::new();
    for round in 0..2 {
        let lines: String = (0..3)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({"op": "create", "klass": "customer", "id": format!("w{round}-{i}"), "object": {"name": "W"}})
                )
            })
            .collect();
        feed.send(Ok(bytes::Bytes::from(lines))).await.unwrap();
        // The body stays open; the three answers come anyway.
        let want = 3 * (round + 1);
        while text.lines().count() < want {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), answers.frame())
                .await
                .unwrap_or_else(|_| panic!("round {round}: no answer while the body is open; so far:\n{text}"))
                .expect("the answer goes on")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }
    drop(feed);
    while let Some(frame) = answers.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    let got: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got.len(), 6, "{text}");
    for (i, l) in got.iter().enumerate() {
        assert_eq!(
            (l["line"].as_u64(), l["status"].as_u64()),
            (Some(i as u64 + 1), Some(201)),
            "{text}"
        );
    }
}

/// A klass upsert (what `kindred export` writes) compares names exactly, so an org made with
/// `Order` beside `order` loads again; a create refuses the second spelling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn klass_upserts_compare_names_exactly_and_creates_regardless_of_case() {
    let t = TestApp::new().await;
    let body = ndjson(&[
        json!({"op": "upsert", "resource": "klass", "object": {"name": "order"}}),
        json!({"op": "upsert", "resource": "klass", "object": {"name": "Order"}}),
        json!({"op": "create", "resource": "klass", "object": {"name": "ORDER"}}),
    ]);
    let a = bulk(&t, "/v1/bulk", A, &body).await;
    a.expect(1, 201);
    a.expect(2, 201);
    a.expect(3, 409);
}
