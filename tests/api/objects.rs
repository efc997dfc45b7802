//! Integration tests: objects — create, read, patch, replace, delete, `If-Match`, lookups and
//! upserts by externalId, lookups by email, references, validation, suffix declarations, bodies,
//! the role denials and tenancy.

use serde_json::{json, Value};

use crate::helpers::{assert_error, assert_invalid, pointers, Resp, TestApp, ADMIN_KEY};

/// 2026-01-01T00:00:00Z, the default pinned clock.
const T0: i64 = 1_767_225_600_000;

// ---- local assertions and helpers ----

fn etag(r: &Resp) -> Option<String> {
    r.headers.get("etag").and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn is_uuid_v7(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
        && s.as_bytes()[14] == b'7'
}

/// A request with extra headers (`If-Match`).
async fn with_headers(
    app: &TestApp,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Resp {
    app.raw(
        method,
        path,
        Some(key),
        body.map(|b| serde_json::to_vec(&b).unwrap()),
        headers,
    )
    .await
}

async fn get_obj(app: &TestApp, klass: &str, id: &str) -> Value {
    app.get(&format!("/v1/objects/{klass}/{id}"), ADMIN_KEY)
        .await
        .expect(200)
}

/// Order (custom klass) with a reference attribute and relationships, and shipment.
async fn with_order(app: &TestApp, key: &str) {
    app.post(
        "/v1/klasses",
        key,
        json!({"name": "shipment", "attributes": [{"name": "carrier", "type": "string"}]}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/klasses",
        key,
        json!({"name": "order", "attributes": [
            {"name": "totalNum", "type": "number"},
            {"name": "placedBy", "type": "reference", "klass": "customer"},
            {"name": "state", "type": "enum", "values": ["new", "paid"]}
        ],
        "relationships": [
            {"name": "shipment", "klass": "shipment", "cardinality": "one"},
            {"name": "related", "klass": "order", "cardinality": "many"}
        ]}),
    )
    .await
    .expect(201);
}

// ---- create and read ----

#[tokio::test]
async fn creating_a_customer_answers_201_with_the_whole_object_and_its_etag() {
    let (app, _clock) = TestApp::with_clock(T0).await;
    let r = app
        .post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"id": "cust-1", "externalId": "ext-1", "name": "Ada Lovelace", "emails": ["ada@example.com"],
                   "phones": ["+44 20 7946 0000"], "tags": ["vip", " vip ", "beta"], "custom": {"tierStr": "gold"}}),
        )
        .await;
    assert_eq!(etag(&r).as_deref(), Some("\"1\""), "{:?}", r.headers);
    let c = r.expect(201);
    assert_eq!(
        c,
        json!({"id": "cust-1", "klass": "customer", "externalId": "ext-1", "name": "Ada Lovelace",
               "emails": ["ada@example.com"], "phones": ["+44 20 7946 0000"], "custom": {"tierStr": "gold"},
               "relationships": {}, "tags": ["vip", "beta"],
               "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z", "rev": 1})
    );
    let r = app.get("/v1/objects/customer/cust-1", ADMIN_KEY).await;
    assert_eq!(etag(&r).as_deref(), Some("\"1\""));
    assert_eq!(r.expect(200), c);
}

#[tokio::test]
async fn an_object_created_without_an_id_gets_a_uuid_v7() {
    let app = TestApp::new().await;
    let a = app
        .post("/v1/objects/company", ADMIN_KEY, json!({"name": "Acme"}))
        .await
        .expect(201);
    let b = app
        .post("/v1/objects/company", ADMIN_KEY, json!({"name": "Bmce"}))
        .await
        .expect(201);
    let (ia, ib) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    assert!(is_uuid_v7(ia), "{ia}");
    assert!(is_uuid_v7(ib), "{ib}");
    assert_ne!(ia, ib);
    assert_eq!(a["klass"], "company");
    assert_eq!(get_obj(&app, "company", ia).await["name"], "Acme");
}

#[tokio::test]
async fn a_duplicate_object_id_is_a_409_even_across_klasses() {
    let app = TestApp::new().await;
    app.post("/v1/objects/customer", ADMIN_KEY, json!({"id": "x1", "name": "First"}))
        .await
        .expect(201);
    assert_error(
        &app.post("/v1/objects/customer", ADMIN_KEY, json!({"id": "x1", "name": "Second"}))
            .await,
        409,
    );
    assert_error(
        &app.post("/v1/objects/company", ADMIN_KEY, json!({"id": "x1", "name": "Co"}))
            .await,
        409,
    );
    assert_eq!(get_obj(&app, "customer", "x1").await["name"], "First");
    assert_error(&app.get("/v1/objects/company/x1", ADMIN_KEY).await, 404);
}

#[tokio::test]
async fn an_invalid_supplied_id_is_422_at_id() {
    let app = TestApp::new().await;
    for id in [
        json!("has space"),
        json!(""),
        json!("x".repeat(65)),
        json!("é"),
        json!("a/b"),
        json!("a#b"),
        json!(7),
    ] {
        let r = app
            .post("/v1/objects/customer", ADMIN_KEY, json!({"id": id, "name": "n"}))
            .await;
        assert_eq!(r.status.as_u16(), 422, "{id}: {}", r.text);
        assert_invalid(&r, 422, "/id");
    }
    let long = "Az09._:-".repeat(8);
    app.post("/v1/objects/customer", ADMIN_KEY, json!({"id": long, "name": "n"}))
        .await
        .expect(201);
    get_obj(&app, "customer", &long).await;
}

#[tokio::test]
async fn every_object_endpoint_answers_404_for_an_unknown_klass() {
    let app = TestApp::new().await;
    for (m, p, b) in [
        ("POST", "/v1/objects/ghost", Some(json!({}))),
        ("GET", "/v1/objects/ghost/x", None),
        ("PATCH", "/v1/objects/ghost/x", Some(json!({}))),
        ("PUT", "/v1/objects/ghost/x", Some(json!({}))),
        ("DELETE", "/v1/objects/ghost/x", None),
        ("GET", "/v1/objects/ghost/by-external-id/e", None),
        ("PUT", "/v1/objects/ghost/by-external-id/e", Some(json!({}))),
        ("POST", "/v1/objects/kobject", Some(json!({}))),
    ] {
        let r = app.call(m, p, ADMIN_KEY, b).await;
        assert_eq!(r.status.as_u16(), 404, "{m} {p}: {}", r.text);
        assert_error(&r, 404);
    }
}

#[tokio::test]
async fn an_object_is_not_found_under_another_klass() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1", "name": "n"}))
        .await;
    for (m, b) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "x"}))),
        ("PUT", Some(json!({"name": "x"}))),
        ("DELETE", None),
    ] {
        let r = app.call(m, "/v1/objects/company/c1", ADMIN_KEY, b).await;
        assert_eq!(r.status.as_u16(), 404, "{m}: {}", r.text);
        assert_error(&r, 404);
    }
    assert_error(&app.get("/v1/objects/customer/nope", ADMIN_KEY).await, 404);
    let c = get_obj(&app, "customer", "c1").await;
    assert_eq!(c["name"], "n");
    assert_eq!(c["rev"], 1);
}

#[tokio::test]
async fn a_klass_in_the_body_must_match_the_path() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"klass": "company", "name": "n"}),
        )
        .await;
    assert_invalid(&r, 422, "/klass");
    app.post(
        "/v1/objects/customer",
        ADMIN_KEY,
        json!({"klass": "customer", "name": "n"}),
    )
    .await
    .expect(201);
}

// ---- patch and put ----

#[tokio::test]
async fn patch_merges_custom_key_by_key_and_null_removes() {
    let (app, clock) = TestApp::with_clock(T0).await;
    app.post(
        "/v1/objects/customer",
        ADMIN_KEY,
        json!({"id": "c1", "externalId": "e1", "name": "Ann", "emails": ["ann@x.io"], "tags": ["a"],
               "custom": {"aStr": "one", "bNum": 2, "cBool": false}}),
    )
    .await
    .expect(201);
    clock.0.store(T0 + 5_000, std::sync::atomic::Ordering::SeqCst);
    let r = app
        .patch(
            "/v1/objects/customer/c1",
            ADMIN_KEY,
            json!({"custom": {"aStr": "uno", "bNum": null, "dAt": "2025-12-01"}}),
        )
        .await;
    assert_eq!(etag(&r).as_deref(), Some("\"2\""));
    let c = r.expect(200);
    assert_eq!(
        c,
        json!({"id": "c1", "klass": "customer", "externalId": "e1", "name": "Ann", "emails": ["ann@x.io"],
               "custom": {"aStr": "uno", "cBool": false, "dAt": "2025-12-01T00:00:00.000Z"}, "relationships": {}, "tags": ["a"],
               "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:05.000Z", "rev": 2})
    );
    assert_eq!(get_obj(&app, "customer", "c1").await, c);
    // Standard attributes: given ones change, null removes, omitted ones stay.
    let c = app
        .patch(
            "/v1/objects/customer/c1",
            ADMIN_KEY,
            json!({"name": null, "tags": ["b", "c"]}),
        )
        .await
        .expect(200);
    assert!(c.get("name").is_none(), "{c}");
    assert_eq!(c["emails"], json!(["ann@x.io"]));
    assert_eq!(c["tags"], json!(["b", "c"]));
    assert_eq!(c["custom"]["aStr"], "uno");
    assert_eq!(c["rev"], 3);
    // An empty patch changes nothing.
    let c2 = app
        .patch("/v1/objects/customer/c1", ADMIN_KEY, json!({}))
        .await
        .expect(200);
    assert!(c2["rev"].as_u64().unwrap() >= 3, "{c2}");
    assert_eq!(c2["custom"], c["custom"]);
    assert_eq!(c2["emails"], c["emails"]);
    assert_eq!(c2["tags"], c["tags"]);
    // externalId: null removes it, and its lookup.
    let c3 = app
        .patch("/v1/objects/customer/c1", ADMIN_KEY, json!({"externalId": null}))
        .await
        .expect(200);
    assert!(c3.get("externalId").is_none(), "{c3}");
    assert_error(&app.get("/v1/objects/customer/by-external-id/e1", ADMIN_KEY).await, 404);
    // Immutable fields.
    assert_invalid(
        &app.patch("/v1/objects/customer/c1", ADMIN_KEY, json!({"id": "c2"}))
            .await,
        422,
        "/id",
    );
    app.patch("/v1/objects/customer/c1", ADMIN_KEY, json!({"id": "c1"}))
        .await
        .expect(200);
    assert_invalid(
        &app.patch("/v1/objects/customer/c1", ADMIN_KEY, json!({"createdAt": "2020-01-01"}))
            .await,
        422,
        "/createdAt",
    );
    assert_eq!(
        get_obj(&app, "customer", "c1").await["createdAt"],
        "2026-01-01T00:00:00.000Z"
    );
    assert_error(
        &app.patch("/v1/objects/customer/ghost", ADMIN_KEY, json!({"name": "x"}))
            .await,
        404,
    );
}

#[tokio::test]
async fn a_refused_patch_changes_nothing() {
    let app = TestApp::new().await;
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "c1", "name": "Ann", "custom": {"aNum": 1}}),
    )
    .await;
    let r = app
        .patch(
            "/v1/objects/customer/c1",
            ADMIN_KEY,
            json!({"name": "Bob", "custom": {"aNum": "two"}}),
        )
        .await;
    assert_invalid(&r, 422, "/custom/aNum");
    let c = get_obj(&app, "customer", "c1").await;
    assert_eq!(c["name"], "Ann");
    assert_eq!(c["custom"], json!({"aNum": 1}));
    assert_eq!(c["rev"], 1);
}

#[tokio::test]
async fn put_replaces_every_writable_field_and_keeps_id_created_at_and_rev() {
    let (app, clock) = TestApp::with_clock(T0).await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c2"})).await;
    app.post(
        "/v1/objects/conversation",
        ADMIN_KEY,
        json!({"id": "v1", "externalId": "ext-v1", "customer": "c1", "subject": "Refund", "status": "snoozed", "channel": "email",
               "priority": 4, "tags": ["t"], "custom": {"reasonStr": "late"}, "createdAt": "2025-06-01T00:00:00Z"}),
    )
    .await
    .expect(201);
    clock.0.store(T0 + 60_000, std::sync::atomic::Ordering::SeqCst);
    let r = app
        .put(
            "/v1/objects/conversation/v1",
            ADMIN_KEY,
            json!({"customer": "c2", "subject": "Refund, again"}),
        )
        .await;
    assert_eq!(etag(&r).as_deref(), Some("\"2\""));
    let v = r.expect(200);
    assert_eq!(
        v,
        json!({"id": "v1", "klass": "conversation", "customer": "c2", "subject": "Refund, again", "status": "open",
               "custom": {}, "relationships": {}, "tags": [],
               "createdAt": "2025-06-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:01:00.000Z", "rev": 2})
    );
    assert_eq!(get_obj(&app, "conversation", "v1").await, v);
    // The cleared externalId no longer finds it.
    assert_error(
        &app.get("/v1/objects/conversation/by-external-id/ext-v1", ADMIN_KEY)
            .await,
        404,
    );
    // Required attributes stay required; id and createdAt cannot change.
    assert_invalid(
        &app.put(
            "/v1/objects/conversation/v1",
            ADMIN_KEY,
            json!({"subject": "no customer"}),
        )
        .await,
        422,
        "/customer",
    );
    assert_invalid(
        &app.put(
            "/v1/objects/conversation/v1",
            ADMIN_KEY,
            json!({"customer": "c1", "id": "v2"}),
        )
        .await,
        422,
        "/id",
    );
    assert_invalid(
        &app.put(
            "/v1/objects/conversation/v1",
            ADMIN_KEY,
            json!({"customer": "c1", "createdAt": "2025-06-02T00:00:00Z"}),
        )
        .await,
        422,
        "/createdAt",
    );
    app.put(
        "/v1/objects/conversation/v1",
        ADMIN_KEY,
        json!({"customer": "c1", "id": "v1", "createdAt": "2025-06-01T00:00:00.000Z"}),
    )
    .await
    .expect(200);
    assert_eq!(get_obj(&app, "conversation", "v1").await["rev"], 3);
    assert_error(
        &app.put("/v1/objects/conversation/ghost", ADMIN_KEY, json!({"customer": "c1"}))
            .await,
        404,
    );
}

#[tokio::test]
async fn deleting_an_object_answers_204_and_frees_its_id() {
    let app = TestApp::new().await;
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "c1", "externalId": "e1", "emails": ["gone@x.io"]}),
    )
    .await;
    let r = app.delete("/v1/objects/customer/c1?refresh=wait_for", ADMIN_KEY).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert!(r.text.is_empty(), "a delete answers without a body: {:?}", r.text);
    assert_error(&app.get("/v1/objects/customer/c1", ADMIN_KEY).await, 404);
    assert_error(&app.get("/v1/objects/customer/by-external-id/e1", ADMIN_KEY).await, 404);
    assert_error(
        &app.get("/v1/objects/customer/by-email/gone@x.io", ADMIN_KEY).await,
        404,
    );
    assert_error(
        &app.patch("/v1/objects/customer/c1", ADMIN_KEY, json!({"name": "x"}))
            .await,
        404,
    );
    assert_error(&app.delete("/v1/objects/customer/c1", ADMIN_KEY).await, 404);
    assert!(app
        .search_ids(ADMIN_KEY, json!({"queryContext": "customer"}))
        .await
        .is_empty());
    // The id, externalId and email may be used again.
    let c = app
        .create(
            ADMIN_KEY,
            "customer",
            json!({"id": "c1", "externalId": "e1", "emails": ["gone@x.io"], "name": "New"}),
        )
        .await;
    assert_eq!(c["rev"], 1);
    assert_eq!(
        app.get("/v1/objects/customer/by-email/gone@x.io", ADMIN_KEY)
            .await
            .expect(200)["name"],
        "New"
    );
}

// ---- If-Match ----

#[tokio::test]
async fn if_match_with_a_stale_revision_is_a_412_and_changes_nothing() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1", "name": "v1"}))
        .await;
    let r = with_headers(
        &app,
        "PATCH",
        "/v1/objects/customer/c1",
        ADMIN_KEY,
        Some(json!({"name": "v2"})),
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(etag(&r).as_deref(), Some("\"2\""));
    assert_eq!(r.expect(200)["rev"], 2);
    for (m, b) in [
        ("PATCH", Some(json!({"name": "v3"}))),
        ("PUT", Some(json!({"name": "v3"}))),
        ("DELETE", None),
    ] {
        let r = with_headers(
            &app,
            m,
            "/v1/objects/customer/c1",
            ADMIN_KEY,
            b,
            &[("if-match", "\"1\"")],
        )
        .await;
        assert_eq!(r.status.as_u16(), 412, "{m}: {}", r.text);
        assert_error(&r, 412);
    }
    let c = get_obj(&app, "customer", "c1").await;
    assert_eq!(c["name"], "v2");
    assert_eq!(c["rev"], 2);
    // Other spellings of the current revision; `*` matches any.
    with_headers(
        &app,
        "PATCH",
        "/v1/objects/customer/c1",
        ADMIN_KEY,
        Some(json!({"name": "v3"})),
        &[("if-match", "2")],
    )
    .await
    .expect(200);
    with_headers(
        &app,
        "PUT",
        "/v1/objects/customer/c1",
        ADMIN_KEY,
        Some(json!({"name": "v4"})),
        &[("if-match", "W/\"3\"")],
    )
    .await
    .expect(200);
    with_headers(
        &app,
        "PATCH",
        "/v1/objects/customer/c1",
        ADMIN_KEY,
        Some(json!({"name": "v5"})),
        &[("if-match", "*")],
    )
    .await
    .expect(200);
    // A malformed header is a 400.
    let r = with_headers(
        &app,
        "PATCH",
        "/v1/objects/customer/c1",
        ADMIN_KEY,
        Some(json!({"name": "x"})),
        &[("if-match", "\"abc\"")],
    )
    .await;
    assert_error(&r, 400);
    // Deleting at the current revision works.
    let r = with_headers(
        &app,
        "DELETE",
        "/v1/objects/customer/c1",
        ADMIN_KEY,
        None,
        &[("if-match", "\"5\"")],
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert_error(&app.get("/v1/objects/customer/c1", ADMIN_KEY).await, 404);
}

#[tokio::test]
async fn the_etag_follows_the_revision() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "company", json!({"id": "co"})).await;
    for rev in 2..=4 {
        let r = app
            .patch("/v1/objects/company/co", ADMIN_KEY, json!({"name": format!("n{rev}")}))
            .await;
        assert_eq!(etag(&r), Some(format!("\"{rev}\"")));
        let g = app.get("/v1/objects/company/co", ADMIN_KEY).await;
        assert_eq!(etag(&g), Some(format!("\"{rev}\"")));
        assert_eq!(g.expect(200)["rev"], rev);
    }
}

// ---- externalId ----

#[tokio::test]
async fn an_object_is_found_by_its_external_id_within_its_klass() {
    let app = TestApp::new().await;
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "c1", "externalId": "shop-42", "name": "Cus"}),
    )
    .await;
    app.create(
        ADMIN_KEY,
        "company",
        json!({"id": "k1", "externalId": "shop-42", "name": "Com"}),
    )
    .await;
    let r = app.get("/v1/objects/customer/by-external-id/shop-42", ADMIN_KEY).await;
    assert_eq!(etag(&r).as_deref(), Some("\"1\""));
    let c = r.expect(200);
    assert_eq!(c["id"], "c1");
    assert_eq!(c, get_obj(&app, "customer", "c1").await);
    assert_eq!(
        app.get("/v1/objects/company/by-external-id/shop-42", ADMIN_KEY)
            .await
            .expect(200)["id"],
        "k1"
    );
    assert_error(
        &app.get("/v1/objects/customer/by-external-id/shop-43", ADMIN_KEY).await,
        404,
    );
    assert_error(
        &app.get("/v1/objects/note/by-external-id/shop-42", ADMIN_KEY).await,
        404,
    );
}

#[tokio::test]
async fn external_ids_and_emails_with_reserved_characters_are_found_through_percent_encoded_paths() {
    let app = TestApp::new().await;
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "c1", "externalId": "shop/42 ä?x#y", "emails": ["ann+tag@example.com"]}),
    )
    .await;
    let r = app
        .get(
            "/v1/objects/customer/by-external-id/shop%2F42%20%C3%A4%3Fx%23y",
            ADMIN_KEY,
        )
        .await;
    assert_eq!(r.expect(200)["id"], "c1");
    let r = app
        .get("/v1/objects/customer/by-email/ann+tag@example.com", ADMIN_KEY)
        .await;
    assert_eq!(r.expect(200)["id"], "c1");
    let r = app
        .get("/v1/objects/customer/by-email/ann%2Btag%40example.com", ADMIN_KEY)
        .await;
    assert_eq!(r.expect(200)["id"], "c1");
    let c = app
        .put(
            "/v1/objects/customer/by-external-id/shop%2F42%20%C3%A4%3Fx%23y",
            ADMIN_KEY,
            json!({"name": "Merged"}),
        )
        .await
        .expect(200);
    assert_eq!(c["id"], "c1");
    assert_eq!(c["externalId"], "shop/42 ä?x#y");
    let c = app
        .put(
            "/v1/objects/company/by-external-id/a%20b",
            ADMIN_KEY,
            json!({"name": "Spaced"}),
        )
        .await
        .expect(201);
    assert_eq!(c["externalId"], "a b");
}

#[tokio::test]
async fn an_external_id_is_unique_per_klass() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1", "externalId": "e1"}))
        .await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c2", "externalId": "e2"}))
        .await;
    assert_error(
        &app.post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"id": "c3", "externalId": "e1"}),
        )
        .await,
        409,
    );
    assert_error(&app.get("/v1/objects/customer/c3", ADMIN_KEY).await, 404);
    assert_error(
        &app.patch("/v1/objects/customer/c2", ADMIN_KEY, json!({"externalId": "e1"}))
            .await,
        409,
    );
    assert_error(
        &app.put("/v1/objects/customer/c2", ADMIN_KEY, json!({"externalId": "e1"}))
            .await,
        409,
    );
    assert_eq!(
        app.get("/v1/objects/customer/by-external-id/e1", ADMIN_KEY)
            .await
            .expect(200)["id"],
        "c1"
    );
    assert_eq!(
        app.get("/v1/objects/customer/by-external-id/e2", ADMIN_KEY)
            .await
            .expect(200)["id"],
        "c2"
    );
    // Changing it moves the lookup.
    app.patch("/v1/objects/customer/c2", ADMIN_KEY, json!({"externalId": "e3"}))
        .await
        .expect(200);
    assert_error(&app.get("/v1/objects/customer/by-external-id/e2", ADMIN_KEY).await, 404);
    assert_eq!(
        app.get("/v1/objects/customer/by-external-id/e3", ADMIN_KEY)
            .await
            .expect(200)["id"],
        "c2"
    );
    // Invalid values.
    for bad in [json!(""), json!(5), json!("x".repeat(256)), json!(["e"])] {
        let r = app
            .post("/v1/objects/customer", ADMIN_KEY, json!({"externalId": bad}))
            .await;
        assert_eq!(r.status.as_u16(), 422, "{bad}: {}", r.text);
        assert_invalid(&r, 422, "/externalId");
    }
}

#[tokio::test]
async fn put_by_external_id_creates_with_201_then_merges_with_200() {
    let app = TestApp::new().await;
    let r = app
        .put(
            "/v1/objects/customer/by-external-id/crm-1",
            ADMIN_KEY,
            json!({"name": "Ann", "custom": {"aStr": "x", "bNum": 1}}),
        )
        .await;
    assert_eq!(etag(&r).as_deref(), Some("\"1\""));
    let c = r.expect(201);
    assert_eq!(c["externalId"], "crm-1");
    assert_eq!(c["name"], "Ann");
    assert_eq!(c["rev"], 1);
    let id = c["id"].as_str().unwrap().to_string();
    assert!(is_uuid_v7(&id), "{id}");
    let r = app
        .put(
            "/v1/objects/customer/by-external-id/crm-1",
            ADMIN_KEY,
            json!({"custom": {"bNum": 2, "cBool": true}}),
        )
        .await;
    assert_eq!(etag(&r).as_deref(), Some("\"2\""));
    let c = r.expect(200);
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["name"], "Ann");
    assert_eq!(c["custom"], json!({"aStr": "x", "bNum": 2, "cBool": true}));
    assert_eq!(c["rev"], 2);
    assert_eq!(
        app.get("/v1/objects/customer/by-external-id/crm-1", ADMIN_KEY)
            .await
            .expect(200),
        c
    );
    // The body may repeat the externalId, not change it.
    app.put(
        "/v1/objects/customer/by-external-id/crm-1",
        ADMIN_KEY,
        json!({"externalId": "crm-1", "name": "Ann B"}),
    )
    .await
    .expect(200);
    let r = app
        .put(
            "/v1/objects/customer/by-external-id/crm-1",
            ADMIN_KEY,
            json!({"externalId": "crm-2"}),
        )
        .await;
    assert_invalid(&r, 422, "/externalId");
    // A supplied id on create is kept.
    let c = app
        .put(
            "/v1/objects/customer/by-external-id/crm-9",
            ADMIN_KEY,
            json!({"id": "c9"}),
        )
        .await
        .expect(201);
    assert_eq!(c["id"], "c9");
    // Validation applies: nothing is created by a refused upsert.
    let r = app
        .put(
            "/v1/objects/conversation/by-external-id/zd-1",
            ADMIN_KEY,
            json!({"subject": "no customer"}),
        )
        .await;
    assert_invalid(&r, 422, "/customer");
    assert_error(
        &app.get("/v1/objects/conversation/by-external-id/zd-1", ADMIN_KEY).await,
        404,
    );
    let r = app
        .put(
            "/v1/objects/customer/by-external-id/crm-1",
            ADMIN_KEY,
            json!({"custom": {"bNum": "NaN"}}),
        )
        .await;
    assert_invalid(&r, 422, "/custom/bNum");
    // If-Match applies to the merge.
    let r = with_headers(
        &app,
        "PUT",
        "/v1/objects/customer/by-external-id/crm-1",
        ADMIN_KEY,
        Some(json!({"name": "late"})),
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_error(&r, 412);
    assert_eq!(
        app.get("/v1/objects/customer/by-external-id/crm-1", ADMIN_KEY)
            .await
            .expect(200)["name"],
        "Ann B"
    );
}

// ---- email ----

#[tokio::test]
async fn a_customer_is_found_by_any_of_its_emails_case_insensitively() {
    let app = TestApp::new().await;
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "c1", "name": "Ann", "emails": ["Ann@Example.com", "ann.work@corp.io"]}),
    )
    .await;
    for e in [
        "ann@example.com",
        "ANN@EXAMPLE.COM",
        "Ann@Example.com",
        "ann.work@corp.io",
    ] {
        let r = app.get(&format!("/v1/objects/customer/by-email/{e}"), ADMIN_KEY).await;
        assert_eq!(etag(&r).as_deref(), Some("\"1\""), "{e}");
        assert_eq!(r.expect(200)["id"], "c1", "{e}");
    }
    assert_eq!(
        get_obj(&app, "customer", "c1").await["emails"],
        json!(["Ann@Example.com", "ann.work@corp.io"])
    );
    assert_error(
        &app.get("/v1/objects/customer/by-email/bob@example.com", ADMIN_KEY)
            .await,
        404,
    );
    // Only customers have this lookup.
    assert_error(
        &app.get("/v1/objects/company/by-email/ann@example.com", ADMIN_KEY).await,
        404,
    );
}

#[tokio::test]
async fn a_duplicate_email_among_customers_is_a_409() {
    let app = TestApp::new().await;
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "c1", "emails": ["ann@example.com"]}),
    )
    .await;
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "c2", "emails": ["bob@example.com"]}),
    )
    .await;
    assert_error(
        &app.post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"id": "c3", "emails": ["ANN@example.com"]}),
        )
        .await,
        409,
    );
    assert_error(&app.get("/v1/objects/customer/c3", ADMIN_KEY).await, 404);
    assert_error(
        &app.patch(
            "/v1/objects/customer/c2",
            ADMIN_KEY,
            json!({"emails": ["bob@example.com", "Ann@Example.COM"]}),
        )
        .await,
        409,
    );
    assert_error(
        &app.put(
            "/v1/objects/customer/by-external-id/e3",
            ADMIN_KEY,
            json!({"emails": ["ann@example.com"]}),
        )
        .await,
        409,
    );
    assert_eq!(
        get_obj(&app, "customer", "c2").await["emails"],
        json!(["bob@example.com"])
    );
    assert_eq!(
        app.get("/v1/objects/customer/by-email/ann@example.com", ADMIN_KEY)
            .await
            .expect(200)["id"],
        "c1"
    );
    // One customer may list the same address twice.
    app.post(
        "/v1/objects/customer",
        ADMIN_KEY,
        json!({"id": "c4", "emails": ["dup@x.io", "DUP@x.io"]}),
    )
    .await
    .expect(201);
    // Changing an email frees the old one and moves the lookup.
    app.patch("/v1/objects/customer/c1", ADMIN_KEY, json!({"emails": ["ann@new.io"]}))
        .await
        .expect(200);
    assert_error(
        &app.get("/v1/objects/customer/by-email/ann@example.com", ADMIN_KEY)
            .await,
        404,
    );
    assert_eq!(
        app.get("/v1/objects/customer/by-email/ann@new.io", ADMIN_KEY)
            .await
            .expect(200)["id"],
        "c1"
    );
    app.patch(
        "/v1/objects/customer/c2",
        ADMIN_KEY,
        json!({"emails": ["ann@example.com"]}),
    )
    .await
    .expect(200);
    assert_eq!(
        app.get("/v1/objects/customer/by-email/ann@example.com", ADMIN_KEY)
            .await
            .expect(200)["id"],
        "c2"
    );
    // Emails of other klasses (a note's text, a custom email attribute) do not count.
    app.patch(
        "/v1/klasses/company",
        ADMIN_KEY,
        json!({"attributes": [{"name": "contact", "type": "email"}]}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/objects/company",
        ADMIN_KEY,
        json!({"custom": {"contact": "ann@new.io"}}),
    )
    .await
    .expect(201);
}

// ---- references ----

#[tokio::test]
async fn a_customers_company_must_be_an_existing_company() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "company", json!({"id": "co1", "name": "Acme"}))
        .await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    assert_invalid(
        &app.post("/v1/objects/customer", ADMIN_KEY, json!({"company": "nope"}))
            .await,
        422,
        "/company",
    );
    assert_invalid(
        &app.post("/v1/objects/customer", ADMIN_KEY, json!({"company": "c1"}))
            .await,
        422,
        "/company",
    );
    assert_invalid(
        &app.post("/v1/objects/customer", ADMIN_KEY, json!({"company": 7})).await,
        422,
        "/company",
    );
    let c = app
        .post("/v1/objects/customer", ADMIN_KEY, json!({"id": "c2", "company": "co1"}))
        .await
        .expect(201);
    assert_eq!(c["company"], "co1");
    assert_invalid(
        &app.patch("/v1/objects/customer/c2", ADMIN_KEY, json!({"company": "c1"}))
            .await,
        422,
        "/company",
    );
    assert_eq!(get_obj(&app, "customer", "c2").await["company"], "co1");
}

#[tokio::test]
async fn a_conversation_requires_an_existing_customer() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    app.create(ADMIN_KEY, "company", json!({"id": "co1"})).await;
    let e = assert_invalid(
        &app.post("/v1/objects/conversation", ADMIN_KEY, json!({"subject": "hi"}))
            .await,
        422,
        "/customer",
    );
    assert_eq!(e["code"], "missing_attribute");
    let e = assert_invalid(
        &app.post("/v1/objects/conversation", ADMIN_KEY, json!({"customer": null}))
            .await,
        422,
        "/customer",
    );
    assert_eq!(e["code"], "missing_attribute");
    assert_invalid(
        &app.post("/v1/objects/conversation", ADMIN_KEY, json!({"customer": ""}))
            .await,
        422,
        "/customer",
    );
    assert_invalid(
        &app.post("/v1/objects/conversation", ADMIN_KEY, json!({"customer": "nope"}))
            .await,
        422,
        "/customer",
    );
    assert_invalid(
        &app.post("/v1/objects/conversation", ADMIN_KEY, json!({"customer": "co1"}))
            .await,
        422,
        "/customer",
    );
    let v = app
        .post(
            "/v1/objects/conversation",
            ADMIN_KEY,
            json!({"id": "v1", "customer": "c1"}),
        )
        .await
        .expect(201);
    assert_eq!(v["customer"], "c1");
    assert_invalid(
        &app.patch("/v1/objects/conversation/v1", ADMIN_KEY, json!({"customer": null}))
            .await,
        422,
        "/customer",
    );
    assert_invalid(
        &app.patch("/v1/objects/conversation/v1", ADMIN_KEY, json!({"customer": "co1"}))
            .await,
        422,
        "/customer",
    );
    assert_eq!(get_obj(&app, "conversation", "v1").await["customer"], "c1");
}

#[tokio::test]
async fn a_message_requires_a_conversation_and_defaults_to_its_customer() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c2"})).await;
    app.create(ADMIN_KEY, "conversation", json!({"id": "v1", "customer": "c1"}))
        .await;
    let e = assert_invalid(
        &app.post("/v1/objects/message", ADMIN_KEY, json!({"body": "hello"}))
            .await,
        422,
        "/conversation",
    );
    assert_eq!(e["code"], "missing_attribute");
    assert_invalid(
        &app.post("/v1/objects/message", ADMIN_KEY, json!({"conversation": "nope"}))
            .await,
        422,
        "/conversation",
    );
    assert_invalid(
        &app.post("/v1/objects/message", ADMIN_KEY, json!({"conversation": "c1"}))
            .await,
        422,
        "/conversation",
    );
    let m = app
        .post(
            "/v1/objects/message",
            ADMIN_KEY,
            json!({"conversation": "v1", "direction": "in", "body": "hello"}),
        )
        .await
        .expect(201);
    assert_eq!(m["customer"], "c1");
    assert_eq!(m["conversation"], "v1");
    let m = app
        .post(
            "/v1/objects/message",
            ADMIN_KEY,
            json!({"conversation": "v1", "customer": "c2"}),
        )
        .await
        .expect(201);
    assert_eq!(m["customer"], "c2");
    assert_invalid(
        &app.post(
            "/v1/objects/message",
            ADMIN_KEY,
            json!({"conversation": "v1", "customer": "v1"}),
        )
        .await,
        422,
        "/customer",
    );
    assert_invalid(
        &app.post(
            "/v1/objects/message",
            ADMIN_KEY,
            json!({"conversation": "v1", "direction": "sideways"}),
        )
        .await,
        422,
        "/direction",
    );
}

#[tokio::test]
async fn a_notes_references_must_exist() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    app.create(ADMIN_KEY, "conversation", json!({"id": "v1", "customer": "c1"}))
        .await;
    app.post("/v1/objects/note", ADMIN_KEY, json!({"body": "free-standing"}))
        .await
        .expect(201);
    assert_invalid(
        &app.post("/v1/objects/note", ADMIN_KEY, json!({"customer": "v1"})).await,
        422,
        "/customer",
    );
    assert_invalid(
        &app.post("/v1/objects/note", ADMIN_KEY, json!({"conversation": "c1"}))
            .await,
        422,
        "/conversation",
    );
    let n = app
        .post(
            "/v1/objects/note",
            ADMIN_KEY,
            json!({"conversation": "v1", "body": "x"}),
        )
        .await
        .expect(201);
    assert_eq!(n["conversation"], "v1");
}

#[tokio::test]
async fn reference_attributes_and_relationships_must_name_objects_of_their_klass() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    app.create(ADMIN_KEY, "shipment", json!({"id": "s1", "custom": {"carrier": "ups"}}))
        .await;
    app.create(ADMIN_KEY, "order", json!({"id": "o0"})).await;
    // The standard kobject references.
    assert_invalid(
        &app.post("/v1/objects/order", ADMIN_KEY, json!({"customer": "s1"}))
            .await,
        422,
        "/customer",
    );
    assert_invalid(
        &app.post("/v1/objects/order", ADMIN_KEY, json!({"company": "c1"})).await,
        422,
        "/company",
    );
    // A declared reference attribute.
    assert_invalid(
        &app.post("/v1/objects/order", ADMIN_KEY, json!({"custom": {"placedBy": "nope"}}))
            .await,
        422,
        "/custom/placedBy",
    );
    assert_invalid(
        &app.post("/v1/objects/order", ADMIN_KEY, json!({"custom": {"placedBy": "s1"}}))
            .await,
        422,
        "/custom/placedBy",
    );
    // Relationships.
    assert_invalid(
        &app.post(
            "/v1/objects/order",
            ADMIN_KEY,
            json!({"relationships": {"shipment": "nope"}}),
        )
        .await,
        422,
        "/relationships/shipment",
    );
    assert_invalid(
        &app.post(
            "/v1/objects/order",
            ADMIN_KEY,
            json!({"relationships": {"shipment": "c1"}}),
        )
        .await,
        422,
        "/relationships/shipment",
    );
    assert_invalid(
        &app.post(
            "/v1/objects/order",
            ADMIN_KEY,
            json!({"relationships": {"shipment": ["s1"]}}),
        )
        .await,
        422,
        "/relationships/shipment",
    );
    assert_invalid(
        &app.post(
            "/v1/objects/order",
            ADMIN_KEY,
            json!({"relationships": {"related": ["o0", "s1"]}}),
        )
        .await,
        422,
        "/relationships/related",
    );
    assert_invalid(
        &app.post(
            "/v1/objects/order",
            ADMIN_KEY,
            json!({"relationships": {"invoice": "s1"}}),
        )
        .await,
        422,
        "/relationships/invoice",
    );
    assert_invalid(
        &app.post("/v1/objects/order", ADMIN_KEY, json!({"relationships": ["s1"]}))
            .await,
        422,
        "/relationships",
    );
    // Valid ones; a single id for a many-relationship becomes a list.
    let o = app
        .post(
            "/v1/objects/order",
            ADMIN_KEY,
            json!({"id": "o1", "customer": "c1", "title": "First", "custom": {"placedBy": "c1", "totalNum": 9.5, "state": "new"},
                   "relationships": {"shipment": "s1", "related": "o0"}}),
        )
        .await
        .expect(201);
    assert_eq!(o["customer"], "c1");
    assert_eq!(o["custom"], json!({"totalNum": 9.5, "placedBy": "c1", "state": "new"}));
    assert_eq!(o["relationships"], json!({"shipment": "s1", "related": ["o0"]}));
    assert_eq!(get_obj(&app, "order", "o1").await, o);
    // A relationship patched to null is removed.
    let o = app
        .patch(
            "/v1/objects/order/o1",
            ADMIN_KEY,
            json!({"relationships": {"shipment": null, "related": ["o0", "o0"]}}),
        )
        .await
        .expect(200);
    assert_eq!(o["relationships"], json!({"related": ["o0"]}));
    // Enum values of a custom attribute are checked, case-sensitively.
    assert_invalid(
        &app.patch("/v1/objects/order/o1", ADMIN_KEY, json!({"custom": {"state": "Paid"}}))
            .await,
        422,
        "/custom/state",
    );
}

#[tokio::test]
async fn assigned_team_assigned_user_and_author_must_name_existing_directory_entries() {
    let app = TestApp::new().await;
    app.post("/v1/teams", ADMIN_KEY, json!({"id": "support", "name": "Support"}))
        .await
        .expect(201);
    app.user_key(ADMIN_KEY, "ann", "agent", &["support"]).await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    assert_invalid(
        &app.post(
            "/v1/objects/conversation",
            ADMIN_KEY,
            json!({"customer": "c1", "assignedTeam": "ghosts"}),
        )
        .await,
        422,
        "/assignedTeam",
    );
    assert_invalid(
        &app.post(
            "/v1/objects/conversation",
            ADMIN_KEY,
            json!({"customer": "c1", "assignedUser": "ghost"}),
        )
        .await,
        422,
        "/assignedUser",
    );
    // A user id is not a team id, and the other way round.
    assert_invalid(
        &app.post(
            "/v1/objects/conversation",
            ADMIN_KEY,
            json!({"customer": "c1", "assignedTeam": "ann"}),
        )
        .await,
        422,
        "/assignedTeam",
    );
    assert_invalid(
        &app.post(
            "/v1/objects/conversation",
            ADMIN_KEY,
            json!({"customer": "c1", "assignedUser": "support"}),
        )
        .await,
        422,
        "/assignedUser",
    );
    assert_invalid(
        &app.post(
            "/v1/objects/note",
            ADMIN_KEY,
            json!({"customer": "c1", "author": "ghost"}),
        )
        .await,
        422,
        "/author",
    );
    let v = app
        .post(
            "/v1/objects/conversation",
            ADMIN_KEY,
            json!({"id": "v1", "customer": "c1", "assignedTeam": "support", "assignedUser": "ann"}),
        )
        .await
        .expect(201);
    assert_eq!(v["assignedTeam"], "support");
    assert_eq!(v["assignedUser"], "ann");
    let n = app
        .post(
            "/v1/objects/note",
            ADMIN_KEY,
            json!({"customer": "c1", "author": "ann", "body": "called"}),
        )
        .await
        .expect(201);
    assert_eq!(n["author"], "ann");
    assert_invalid(
        &app.patch(
            "/v1/objects/conversation/v1",
            ADMIN_KEY,
            json!({"assignedUser": "ghost"}),
        )
        .await,
        422,
        "/assignedUser",
    );
    let v = app
        .patch(
            "/v1/objects/conversation/v1",
            ADMIN_KEY,
            json!({"assignedUser": "admin", "assignedTeam": null}),
        )
        .await
        .expect(200);
    assert_eq!(v["assignedUser"], "admin");
    assert!(v.get("assignedTeam").is_none(), "{v}");
}

// ---- standard attribute values ----

#[tokio::test]
async fn a_conversations_status_defaults_to_open_and_priority_is_1_to_5() {
    let (app, _clock) = TestApp::with_clock(T0).await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    let v = app
        .post(
            "/v1/objects/conversation",
            ADMIN_KEY,
            json!({"id": "v1", "customer": "c1"}),
        )
        .await
        .expect(201);
    assert_eq!(v["status"], "open");
    assert!(v.get("priority").is_none(), "{v}");
    for s in ["open", "snoozed", "done"] {
        app.patch("/v1/objects/conversation/v1", ADMIN_KEY, json!({"status": s}))
            .await
            .expect(200);
    }
    for bad in [json!("Open"), json!("closed"), json!(""), json!(1)] {
        let r = app
            .patch("/v1/objects/conversation/v1", ADMIN_KEY, json!({"status": bad}))
            .await;
        assert_eq!(r.status.as_u16(), 422, "status {bad}: {}", r.text);
        assert_invalid(&r, 422, "/status");
    }
    for p in [1, 3, 5] {
        assert_eq!(
            app.patch("/v1/objects/conversation/v1", ADMIN_KEY, json!({"priority": p}))
                .await
                .expect(200)["priority"],
            p
        );
    }
    for bad in [json!(0), json!(6), json!(-1), json!(2.5), json!("3"), json!(true)] {
        let r = app
            .post(
                "/v1/objects/conversation",
                ADMIN_KEY,
                json!({"customer": "c1", "priority": bad}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 422, "priority {bad}: {}", r.text);
        assert_invalid(&r, 422, "/priority");
    }
    // Dates take RFC 3339, a date alone, or a relative form.
    let v = app
        .patch(
            "/v1/objects/conversation/v1",
            ADMIN_KEY,
            json!({"snoozedUntil": "now+2h"}),
        )
        .await
        .expect(200);
    assert_eq!(v["snoozedUntil"], "2026-01-01T02:00:00.000Z");
    let v = app
        .patch(
            "/v1/objects/conversation/v1",
            ADMIN_KEY,
            json!({"snoozedUntil": "2026-02-03"}),
        )
        .await
        .expect(200);
    assert_eq!(v["snoozedUntil"], "2026-02-03T00:00:00.000Z");
    let v = app
        .patch(
            "/v1/objects/conversation/v1",
            ADMIN_KEY,
            json!({"snoozedUntil": "2026-02-03T10:00:00+02:00"}),
        )
        .await
        .expect(200);
    assert_eq!(v["snoozedUntil"], "2026-02-03T08:00:00.000Z");
    assert_invalid(
        &app.patch(
            "/v1/objects/conversation/v1",
            ADMIN_KEY,
            json!({"snoozedUntil": "tomorrow"}),
        )
        .await,
        422,
        "/snoozedUntil",
    );
}

#[tokio::test]
async fn standard_attribute_values_are_checked_against_their_types() {
    let app = TestApp::new().await;
    let cases = [
        ("customer", json!({"name": 5}), "/name"),
        ("customer", json!({"name": "x".repeat(16 * 1024 + 1)}), "/name"),
        ("customer", json!({"emails": "a@b.c"}), "/emails"),
        ("customer", json!({"emails": ["not-an-email"]}), "/emails"),
        ("customer", json!({"emails": ["a@b@c"]}), "/emails"),
        ("customer", json!({"phones": [5]}), "/phones"),
        ("company", json!({"domains": "acme.com"}), "/domains"),
        ("customer", json!({"tags": "vip"}), "/tags"),
        ("customer", json!({"tags": ["ok", ""]}), "/tags/1"),
        ("customer", json!({"tags": ["x".repeat(129)]}), "/tags/0"),
        ("customer", json!({"custom": "nope"}), "/custom"),
        ("customer", json!({"createdAt": "yesterday"}), "/createdAt"),
        ("customer", json!({"createdAt": 5}), "/createdAt"),
        ("customer", json!({"updatedAt": "2025-13-01"}), "/updatedAt"),
    ];
    for (klass, body, pointer) in cases {
        let r = app.post(&format!("/v1/objects/{klass}"), ADMIN_KEY, body.clone()).await;
        assert_eq!(r.status.as_u16(), 422, "{klass} {body}: {}", r.text);
        assert_eq!(r.pointer(), Some(pointer), "{klass} {body}: {}", r.text);
        assert_error(&r, 422);
    }
    assert!(app
        .search_ids(ADMIN_KEY, json!({"queryContext": "customer"}))
        .await
        .is_empty());
    let ok = app
        .post(
            "/v1/objects/company",
            ADMIN_KEY,
            json!({"name": "Acme", "domains": ["acme.com", "acme.io"], "tags": ["x".repeat(128)]}),
        )
        .await
        .expect(201);
    assert_eq!(ok["domains"], json!(["acme.com", "acme.io"]));
}

#[tokio::test]
async fn every_problem_of_a_body_is_reported_with_its_pointer() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    let r = app
        .post(
            "/v1/objects/conversation",
            ADMIN_KEY,
            json!({"customer": "c1", "status": "bad", "priority": 9, "custom": {"nosuffix": 1}, "color": "red"}),
        )
        .await;
    assert_error(&r, 422);
    let p = pointers(&r);
    for want in ["/status", "/priority", "/custom/nosuffix", "/color"] {
        assert!(p.iter().any(|x| x == want), "missing {want} in {}", r.text);
    }
}

#[tokio::test]
async fn errors_are_json_api_error_objects() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"custom": {"totalNum": "many"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    let errors = r.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{}", r.text);
    let e = errors[0].as_object().unwrap();
    assert_eq!(e["status"], "422");
    assert_eq!(e["code"], "invalid_attribute_value");
    assert!(
        e["title"].as_str().unwrap().contains("totalNum"),
        "the title names the field: {}",
        r.text
    );
    assert_eq!(e["source"], json!({"pointer": "/custom/totalNum"}));
    // The first write declared totalNum as a number; nothing else was stored.
    assert!(app
        .search_ids(ADMIN_KEY, json!({"queryContext": "customer"}))
        .await
        .is_empty());
}

// ---- suffix attributes ----

#[tokio::test]
async fn kustomer_suffix_attributes_are_declared_on_first_write() {
    let app = TestApp::new().await;
    let c = app
        .create(
            ADMIN_KEY,
            "customer",
            json!({"id": "c1", "custom": {"fooStr": "Gold", "barNum": 12.5, "bazAt": "2025-12-01", "quxBool": true,
                                          "bioTxt": "Likes tea", "siteUrl": "https://example.com", "catTree": "billing.refund.partial"}}),
        )
        .await;
    assert_eq!(
        c["custom"],
        json!({"fooStr": "Gold", "barNum": 12.5, "bazAt": "2025-12-01T00:00:00.000Z", "quxBool": true,
               "bioTxt": "Likes tea", "siteUrl": "https://example.com", "catTree": "billing.refund.partial"})
    );
    let k = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    for (name, ty) in [
        ("fooStr", "string"),
        ("barNum", "number"),
        ("bazAt", "date"),
        ("quxBool", "boolean"),
        ("bioTxt", "text"),
        ("siteUrl", "url"),
        ("catTree", "tree"),
    ] {
        let a = k["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} not declared: {k}"));
        assert_eq!(a["type"], ty, "{a}");
        assert_eq!(a["standard"], false, "{a}");
        assert_eq!(a["list"], false, "{a}");
    }
    // Declared attributes are checked from then on.
    for (body, pointer) in [
        (json!({"custom": {"barNum": "lots"}}), "/custom/barNum"),
        (json!({"custom": {"bazAt": "soon"}}), "/custom/bazAt"),
        (json!({"custom": {"quxBool": "yes"}}), "/custom/quxBool"),
        (json!({"custom": {"fooStr": 3}}), "/custom/fooStr"),
        (json!({"custom": {"catTree": "a..b"}}), "/custom/catTree"),
    ] {
        let r = app.post("/v1/objects/customer", ADMIN_KEY, body.clone()).await;
        assert_eq!(r.status.as_u16(), 422, "{body}: {}", r.text);
        assert_invalid(&r, 422, pointer);
    }
    // They are searchable.
    assert_eq!(
        app.search_ids(
            ADMIN_KEY,
            json!({"queryContext": "customer", "and": [{"custom.fooStr": {"equals": "gold"}}]})
        )
        .await,
        ["c1"]
    );
    assert_eq!(
        app.search_ids(
            ADMIN_KEY,
            json!({"queryContext": "customer", "and": [{"custom.barNum": {"gt": 12}}]})
        )
        .await,
        ["c1"]
    );
    // Suffixes work on every klass, also for agents.
    let agent = app.user_key(ADMIN_KEY, "ag", "agent", &[]).await;
    app.post("/v1/klasses", ADMIN_KEY, json!({"name": "order"}))
        .await
        .expect(201);
    app.post("/v1/objects/order", &agent, json!({"custom": {"totalNum": 3}}))
        .await
        .expect(201);
    let k = app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200);
    assert!(
        k["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "totalNum" && a["type"] == "number"),
        "{k}"
    );
    app.create(ADMIN_KEY, "company", json!({"custom": {"sizeNum": 10}}))
        .await;
}

/// A write refused for its values declares none of its new suffix attributes: the schema and
/// the searchable fields stay as they were.
#[tokio::test]
async fn a_rejected_write_declares_no_suffix_attribute() {
    let app = TestApp::new().await;
    async fn custom_names(app: &TestApp) -> Vec<String> {
        let k = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
        k["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    }
    let before = custom_names(&app).await;
    let refused = [
        (json!({"name": "x", "custom": {"okNum": "notnum"}}), "/custom/okNum"),
        (
            json!({"name": "x", "custom": {"twoAt": "2025-01-01", "badAt": "nope"}}),
            "/custom/badAt",
        ),
        (
            json!({"name": "x", "custom": {"listStr": ["a", "b"]}}),
            "/custom/listStr",
        ),
        (
            json!({"name": "x", "emails": ["no-at-sign"], "custom": {"sideStr": "v"}}),
            "/emails",
        ),
    ];
    for (body, pointer) in refused {
        assert_invalid(&app.post("/v1/objects/customer", ADMIN_KEY, body).await, 422, pointer);
    }
    assert_eq!(custom_names(&app).await, before, "no attribute declared");
    let schema = app.get("/v1/search/schema", ADMIN_KEY).await.expect(200);
    assert!(!schema.to_string().contains("sideStr"), "{schema}");
    // The same names in a valid write are declared, with the type of their suffix.
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"name": "y", "custom": {"okNum": 1, "listStr": "a"}}),
    )
    .await;
    let after = custom_names(&app).await;
    assert!(
        after.iter().any(|n| n == "okNum") && after.iter().any(|n| n == "listStr"),
        "{after:?}"
    );
    assert!(!after.iter().any(|n| n == "badAt" || n == "sideStr"), "{after:?}");
}

/// `null` in a PATCH of an attribute with a default (a conversation's `status`) resets it to the
/// default, as a PUT that omits it does: it is never left without a value.
#[tokio::test]
async fn patching_a_defaulted_attribute_to_null_resets_it_to_its_default() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "cu-1", "name": "C"}))
        .await;
    let c = app
        .create(
            ADMIN_KEY,
            "conversation",
            json!({"id": "cv-1", "customer": "cu-1", "status": "done"}),
        )
        .await;
    assert_eq!(c["status"], "done");
    let c = app
        .patch(
            "/v1/objects/conversation/cv-1?refresh=wait_for",
            ADMIN_KEY,
            json!({"status": null}),
        )
        .await
        .expect(200);
    assert_eq!(c["status"], "open", "{c}");
    let found = app
        .search_ids(
            ADMIN_KEY,
            json!({"queryContext": "conversation", "and": [{"status": {"equals": "open"}}]}),
        )
        .await;
    assert_eq!(found, ["cv-1"]);
}

#[tokio::test]
async fn an_undeclared_attribute_without_a_type_suffix_is_422() {
    let app = TestApp::new().await;
    let e = assert_invalid(
        &app.post("/v1/objects/customer", ADMIN_KEY, json!({"custom": {"total": 5}}))
            .await,
        422,
        "/custom/total",
    );
    assert_eq!(e["code"], "unknown_attribute");
    // A bare suffix is not a suffixed name.
    assert_invalid(
        &app.post("/v1/objects/customer", ADMIN_KEY, json!({"custom": {"Str": "x"}}))
            .await,
        422,
        "/custom/Str",
    );
    // An unknown top-level field, even with a suffix (custom attributes go under `custom`).
    assert_invalid(
        &app.post("/v1/objects/customer", ADMIN_KEY, json!({"nickname": "x"}))
            .await,
        422,
        "/nickname",
    );
    assert_invalid(
        &app.post("/v1/objects/customer", ADMIN_KEY, json!({"tierStr": "gold"}))
            .await,
        422,
        "/tierStr",
    );
    // A standard attribute of another klass.
    assert_invalid(
        &app.post("/v1/objects/customer", ADMIN_KEY, json!({"status": "open"}))
            .await,
        422,
        "/status",
    );
    let k = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    for n in ["total", "Str", "nickname", "tierStr"] {
        assert!(
            !k["attributes"].as_array().unwrap().iter().any(|a| a["name"] == n),
            "{n} declared: {k}"
        );
    }
    assert!(app
        .search_ids(ADMIN_KEY, json!({"queryContext": "customer"}))
        .await
        .is_empty());
}

// ---- times ----

#[tokio::test]
async fn created_at_and_updated_at_may_be_given_on_create() {
    let (app, _clock) = TestApp::with_clock(T0).await;
    let c = app
        .post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"id": "a", "createdAt": "2024-05-06T07:08:09.123Z"}),
        )
        .await
        .expect(201);
    assert_eq!(c["createdAt"], "2024-05-06T07:08:09.123Z");
    assert_eq!(c["updatedAt"], "2026-01-01T00:00:00.000Z");
    let c = app
        .post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"id": "b", "createdAt": "2024-05-06", "updatedAt": "2024-06-01T00:00:00+02:00"}),
        )
        .await
        .expect(201);
    assert_eq!(c["createdAt"], "2024-05-06T00:00:00.000Z");
    assert_eq!(c["updatedAt"], "2024-05-31T22:00:00.000Z");
    let c = app
        .post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"id": "c", "createdAt": "now-30d"}),
        )
        .await
        .expect(201);
    assert_eq!(c["createdAt"], "2025-12-02T00:00:00.000Z");
    assert_eq!(
        get_obj(&app, "customer", "b").await["createdAt"],
        "2024-05-06T00:00:00.000Z"
    );
    // Without them, the server's clock.
    let c = app
        .post("/v1/objects/customer", ADMIN_KEY, json!({"id": "d"}))
        .await
        .expect(201);
    assert_eq!(c["createdAt"], "2026-01-01T00:00:00.000Z");
    assert_eq!(c["updatedAt"], "2026-01-01T00:00:00.000Z");
}

// ---- bodies ----

#[tokio::test]
async fn malformed_empty_and_non_object_bodies_are_400() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1", "name": "n"}))
        .await;
    for (m, p) in [
        ("POST", "/v1/objects/customer"),
        ("PATCH", "/v1/objects/customer/c1"),
        ("PUT", "/v1/objects/customer/c1"),
        ("PUT", "/v1/objects/customer/by-external-id/e1"),
    ] {
        for (what, body) in [
            ("malformed", b"{\"name\": \"x\",}".to_vec()),
            ("truncated", b"{\"name\": ".to_vec()),
            ("empty", Vec::new()),
            ("array", b"[1,2]".to_vec()),
            ("string", b"\"x\"".to_vec()),
        ] {
            let r = app.raw(m, p, Some(ADMIN_KEY), Some(body), &[]).await;
            assert_eq!(r.status.as_u16(), 400, "{m} {p} {what}: {}", r.text);
            assert_error(&r, 400);
        }
    }
    let c = get_obj(&app, "customer", "c1").await;
    assert_eq!(c["name"], "n");
    assert_eq!(c["rev"], 1);
    assert_error(&app.get("/v1/objects/customer/by-external-id/e1", ADMIN_KEY).await, 404);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413_and_one_just_under_is_accepted() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    app.create(ADMIN_KEY, "conversation", json!({"id": "v1", "customer": "c1"}))
        .await;
    let big = json!({"conversation": "v1", "body": "word ".repeat((1 << 20) / 5 + 10)});
    assert!(serde_json::to_vec(&big).unwrap().len() > 1 << 20);
    for (m, p) in [
        ("POST", "/v1/objects/message"),
        ("PATCH", "/v1/objects/conversation/v1"),
        ("PUT", "/v1/objects/conversation/v1"),
        ("PUT", "/v1/objects/message/by-external-id/m1"),
    ] {
        let r = app.call(m, p, ADMIN_KEY, Some(big.clone())).await;
        assert_eq!(r.status.as_u16(), 413, "{m} {p}: {}", r.text);
        assert_error(&r, 413);
    }
    let just_under = json!({"id": "m-big", "conversation": "v1", "body": "word ".repeat(((1 << 20) - 200) / 5)});
    let n = serde_json::to_vec(&just_under).unwrap().len();
    assert!(n < 1 << 20 && n > (1 << 20) - 400, "{n}");
    let m = app.post("/v1/objects/message", ADMIN_KEY, just_under).await.expect(201);
    assert_eq!(m["body"].as_str().unwrap().len(), ((1 << 20) - 200) / 5 * 5);
    assert_eq!(get_obj(&app, "conversation", "v1").await["rev"], 1);
}

#[tokio::test]
async fn an_unsupported_method_on_an_object_path_answers_405_in_the_error_format() {
    let app = TestApp::new().await;
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    for (m, p) in [
        ("DELETE", "/v1/objects/customer"),
        ("POST", "/v1/objects/customer/c1"),
        ("PATCH", "/v1/objects/customer/by-email/a@b.c"),
    ] {
        let r = app.call(m, p, ADMIN_KEY, Some(json!({}))).await;
        assert_eq!(r.status.as_u16(), 405, "{m} {p}: {}", r.text);
        assert_error(&r, 405);
    }
    get_obj(&app, "customer", "c1").await;
}

#[tokio::test]
async fn refresh_wait_for_makes_a_write_searchable_and_other_values_are_400() {
    let app = TestApp::new().await;
    for (i, v) in ["wait_for", "true"].iter().enumerate() {
        let id = format!("c{i}");
        app.post(
            &format!("/v1/objects/customer?refresh={v}"),
            ADMIN_KEY,
            json!({"id": id, "name": "Zed"}),
        )
        .await
        .expect(201);
        let found = app
            .search_ids(
                ADMIN_KEY,
                json!({"queryContext": "customer", "and": [{"id": {"equals": id}}]}),
            )
            .await;
        assert_eq!(found, std::slice::from_ref(&id), "refresh={v}");
    }
    app.patch(
        "/v1/objects/customer/c0?refresh=wait_for",
        ADMIN_KEY,
        json!({"name": "Yan"}),
    )
    .await
    .expect(200);
    assert_eq!(
        app.search_ids(
            ADMIN_KEY,
            json!({"queryContext": "customer", "and": [{"name": {"equals": "yan"}}]})
        )
        .await,
        ["c0"]
    );
    app.delete("/v1/objects/customer/c0?refresh=wait_for", ADMIN_KEY)
        .await
        .expect(204);
    assert_eq!(
        app.search_ids(ADMIN_KEY, json!({"queryContext": "customer"})).await,
        ["c1"]
    );
    let r = app
        .post("/v1/objects/customer?refresh=soon", ADMIN_KEY, json!({"id": "c9"}))
        .await;
    assert_error(&r, 400);
    assert_eq!(r.body["errors"][0]["source"]["parameter"], "refresh", "{}", r.text);
    assert_error(&app.get("/v1/objects/customer/c9", ADMIN_KEY).await, 404);
}

// ---- concurrency ----

/// Runs `n` copies of a request at once on a multi-threaded runtime and returns the answers.
async fn at_once<F, Fut>(app: &std::sync::Arc<TestApp>, n: usize, f: F) -> Vec<Resp>
where
    F: Fn(std::sync::Arc<TestApp>, usize) -> Fut,
    Fut: std::future::Future<Output = Resp> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(app.clone(), i))).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_of_one_external_id_create_exactly_one_object() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let rs = at_once(&app, 12, |app, i| async move {
        app.put(
            "/v1/objects/customer/by-external-id/same",
            ADMIN_KEY,
            json!({"custom": {format!("k{i}Str"): "v"}}),
        )
        .await
    })
    .await;
    let created = rs.iter().filter(|r| r.status.as_u16() == 201).count();
    let merged = rs.iter().filter(|r| r.status.as_u16() == 200).count();
    assert_eq!(
        (created, merged),
        (1, 11),
        "{:?}",
        rs.iter()
            .map(|r| (r.status.as_u16(), r.text.clone()))
            .collect::<Vec<_>>()
    );
    let c = app
        .get("/v1/objects/customer/by-external-id/same", ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(c["rev"], 12, "{c}");
    assert_eq!(c["custom"].as_object().unwrap().len(), 12, "every merge kept: {c}");
    let ids: std::collections::HashSet<String> =
        rs.iter().map(|r| r.body["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_of_one_object_lose_no_update() {
    let app = std::sync::Arc::new(TestApp::new().await);
    app.create(ADMIN_KEY, "customer", json!({"id": "c1", "custom": {"baseStr": "b"}}))
        .await;
    let rs = at_once(&app, 16, |app, i| async move {
        app.patch(
            "/v1/objects/customer/c1",
            ADMIN_KEY,
            json!({"custom": {format!("p{i}Num"): i}}),
        )
        .await
    })
    .await;
    for r in &rs {
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    }
    let mut revs: Vec<u64> = rs.iter().map(|r| r.body["rev"].as_u64().unwrap()).collect();
    revs.sort();
    assert_eq!(revs, (2..=17).collect::<Vec<u64>>(), "each patch got its own revision");
    let c = get_obj(&app, "customer", "c1").await;
    assert_eq!(c["rev"], 17);
    let custom = c["custom"].as_object().unwrap();
    assert_eq!(custom.len(), 17, "{c}");
    for i in 0..16 {
        assert_eq!(custom[&format!("p{i}Num")], i, "{c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_id_or_one_email_let_exactly_one_through() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let rs = at_once(&app, 10, |app, i| async move {
        app.post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"id": "same-id", "name": format!("n{i}")}),
        )
        .await
    })
    .await;
    let codes: Vec<u16> = rs.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 9, "{codes:?}");
    let rs = at_once(&app, 10, |app, i| async move {
        app.post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"id": format!("e{i}"), "emails": [if i % 2 == 0 { "Same@X.io" } else { "same@x.IO" }]}),
        )
        .await
    })
    .await;
    let codes: Vec<u16> = rs.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 9, "{codes:?}");
    let winner = rs.iter().find(|r| r.status.as_u16() == 201).unwrap().body["id"].clone();
    assert_eq!(
        app.get("/v1/objects/customer/by-email/same@x.io", ADMIN_KEY)
            .await
            .expect(200)["id"],
        winner
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_writes_declare_every_suffix_attribute() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let rs = at_once(&app, 12, |app, i| async move {
        app.post(
            "/v1/objects/customer",
            ADMIN_KEY,
            json!({"id": format!("c{i}"), "custom": {format!("f{i}Str"): format!("v{i}"), "sharedNum": i}}),
        )
        .await
    })
    .await;
    for r in &rs {
        assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    }
    let k = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    let attrs = k["attributes"].as_array().unwrap();
    for i in 0..12 {
        let name = format!("f{i}Str");
        assert_eq!(
            attrs.iter().filter(|a| a["name"] == name.as_str()).count(),
            1,
            "{name}: {k}"
        );
        let c = get_obj(&app, "customer", &format!("c{i}")).await;
        assert_eq!(c["custom"][&name], format!("v{i}"), "{c}");
        assert_eq!(c["custom"]["sharedNum"], i, "{c}");
    }
    assert_eq!(attrs.iter().filter(|a| a["name"] == "sharedNum").count(), 1, "{k}");
}

// ---- roles ----

/// Every object write, in an order that works for a role allowed to write.
fn object_writes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        (
            "POST",
            "/v1/objects/customer",
            Some(json!({"id": "new1", "name": "New"})),
        ),
        (
            "POST",
            "/v1/objects/conversation",
            Some(json!({"id": "v2", "customer": "c1"})),
        ),
        ("PATCH", "/v1/objects/customer/c1", Some(json!({"name": "Patched"}))),
        (
            "PUT",
            "/v1/objects/customer/c1",
            Some(json!({"name": "Replaced", "emails": ["c1@x.io"], "externalId": "e1"})),
        ),
        (
            "PUT",
            "/v1/objects/customer/by-external-id/e1",
            Some(json!({"custom": {"upStr": "merged"}})),
        ),
        (
            "PUT",
            "/v1/objects/customer/by-external-id/e-new",
            Some(json!({"name": "Upserted"})),
        ),
        (
            "PATCH",
            "/v1/objects/order/o1",
            Some(json!({"custom": {"totalNum": 2}})),
        ),
        ("DELETE", "/v1/objects/order/o1", None),
        ("DELETE", "/v1/objects/conversation/v1", None),
    ]
}

async fn objects_role_setup(app: &TestApp) -> (String, String) {
    app.post(
        "/v1/klasses",
        ADMIN_KEY,
        json!({"name": "order", "attributes": [{"name": "totalNum", "type": "number"}]}),
    )
    .await
    .expect(201);
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "c1", "name": "Orig", "externalId": "e1", "emails": ["c1@x.io"]}),
    )
    .await;
    app.create(ADMIN_KEY, "conversation", json!({"id": "v1", "customer": "c1"}))
        .await;
    app.create(ADMIN_KEY, "order", json!({"id": "o1", "custom": {"totalNum": 1}}))
        .await;
    let agent = app.user_key(ADMIN_KEY, "agent1", "agent", &[]).await;
    let analyst = app.user_key(ADMIN_KEY, "analyst1", "analyst", &[]).await;
    (agent, analyst)
}

#[tokio::test]
async fn an_analyst_gets_403_on_every_object_write_and_nothing_changes() {
    let app = TestApp::new().await;
    let (_, analyst) = objects_role_setup(&app).await;
    for (m, p, b) in object_writes() {
        let r = app.call(m, p, &analyst, b).await;
        assert_eq!(r.status.as_u16(), 403, "analyst: {m} {p} -> {}", r.text);
        assert_error(&r, 403);
    }
    // Also on unknown objects and klasses, and with refresh.
    assert_error(
        &app.post(
            "/v1/objects/customer?refresh=wait_for",
            &analyst,
            json!({"custom": {"newStr": "x"}}),
        )
        .await,
        403,
    );
    assert_error(&app.delete("/v1/objects/customer/ghost", &analyst).await, 403);
    let c = get_obj(&app, "customer", "c1").await;
    assert_eq!(c["name"], "Orig");
    assert_eq!(c["rev"], 1);
    assert_eq!(get_obj(&app, "order", "o1").await["custom"]["totalNum"], 1);
    get_obj(&app, "conversation", "v1").await;
    assert_error(&app.get("/v1/objects/customer/new1", ADMIN_KEY).await, 404);
    assert_error(
        &app.get("/v1/objects/customer/by-external-id/e-new", ADMIN_KEY).await,
        404,
    );
    // An analyst's refused write declared nothing.
    let k = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    assert!(
        !k["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "newStr"),
        "{k}"
    );
}

#[tokio::test]
async fn agents_and_analysts_may_read_objects_and_search() {
    let app = TestApp::new().await;
    let (agent, analyst) = objects_role_setup(&app).await;
    for key in [&agent, &analyst] {
        assert_eq!(
            app.get("/v1/objects/customer/c1", key).await.expect(200),
            get_obj(&app, "customer", "c1").await
        );
        assert_eq!(
            app.get("/v1/objects/customer/by-external-id/e1", key).await.expect(200)["id"],
            "c1"
        );
        assert_eq!(
            app.get("/v1/objects/customer/by-email/C1@x.io", key).await.expect(200)["id"],
            "c1"
        );
        assert_eq!(
            app.get("/v1/objects/order/o1", key).await.expect(200)["custom"]["totalNum"],
            1
        );
        assert_eq!(app.search_ids(key, json!({"queryContext": "customer"})).await, ["c1"]);
        assert_eq!(
            app.post("/v1/search/count", key, json!({"queryContext": "conversation"}))
                .await
                .expect(200)["total"],
            1
        );
    }
}

#[tokio::test]
async fn agents_and_admins_may_do_every_object_write() {
    for who in ["agent", "admin"] {
        let app = TestApp::new().await;
        let (agent, _) = objects_role_setup(&app).await;
        let key = if who == "agent" { agent } else { ADMIN_KEY.to_string() };
        for (m, p, b) in object_writes() {
            let r = app.call(m, p, &key, b).await;
            assert!(r.status.is_success(), "{who}: {m} {p} -> {} {}", r.status, r.text);
        }
        let c = get_obj(&app, "customer", "c1").await;
        assert_eq!(c["name"], "Replaced");
        assert_eq!(c["custom"], json!({"upStr": "merged"}));
        assert_eq!(c["rev"], 4);
        assert_eq!(
            app.get("/v1/objects/customer/by-external-id/e-new", ADMIN_KEY)
                .await
                .expect(200)["name"],
            "Upserted"
        );
        assert_error(&app.get("/v1/objects/order/o1", ADMIN_KEY).await, 404);
        assert_error(&app.get("/v1/objects/conversation/v1", ADMIN_KEY).await, 404);
        get_obj(&app, "conversation", "v2").await;
    }
}

// ---- tenancy ----

#[tokio::test]
async fn another_org_gets_404_for_every_object_of_this_org_and_cannot_find_it() {
    let app = TestApp::new().await;
    app.post("/v1/klasses", ADMIN_KEY, json!({"name": "order"}))
        .await
        .expect(201);
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "c1", "name": "Secret Ada", "externalId": "e1", "emails": ["ada@a.io"], "tags": ["org-a"]}),
    )
    .await;
    app.create(
        ADMIN_KEY,
        "conversation",
        json!({"id": "v1", "customer": "c1", "subject": "secret refund"}),
    )
    .await;
    app.create(ADMIN_KEY, "order", json!({"id": "o1", "title": "Secret order"}))
        .await;
    app.post("/v1/teams", ADMIN_KEY, json!({"id": "a-team", "name": "A team"}))
        .await
        .expect(201);
    app.user_key(ADMIN_KEY, "alice", "agent", &["a-team"]).await;
    let b = app.new_org("org-b").await;
    let b_agent = app.user_key(&b, "b-agent", "agent", &[]).await;
    app.create(&b, "customer", json!({"id": "b-own", "name": "Bea"})).await;
    for key in [&b, &b_agent] {
        for (m, p, body) in [
            ("GET", "/v1/objects/customer/c1", None),
            ("PATCH", "/v1/objects/customer/c1", Some(json!({"name": "Mallory"}))),
            ("PUT", "/v1/objects/customer/c1", Some(json!({"name": "Mallory"}))),
            ("DELETE", "/v1/objects/customer/c1", None),
            ("GET", "/v1/objects/conversation/v1", None),
            ("DELETE", "/v1/objects/conversation/v1", None),
            ("GET", "/v1/objects/customer/by-external-id/e1", None),
            ("GET", "/v1/objects/customer/by-email/ada@a.io", None),
            ("GET", "/v1/objects/order/o1", None),
            ("PATCH", "/v1/objects/order/o1", Some(json!({"title": "x"}))),
            ("DELETE", "/v1/objects/order/o1", None),
        ] {
            let r = app.call(m, p, key, body).await;
            assert_eq!(r.status.as_u16(), 404, "org B: {m} {p} -> {}", r.text);
            assert_error(&r, 404);
        }
        // Search sees nothing of A.
        assert_eq!(
            app.search_ids(key, json!({"queryContext": "customer"})).await,
            ["b-own"]
        );
        assert!(app
            .search_ids(key, json!({"queryContext": "customer", "text": "secret ada"}))
            .await
            .is_empty());
        assert!(app
            .search_ids(
                key,
                json!({"queryContext": "customer", "and": [{"tags": {"equals": "org-a"}}]})
            )
            .await
            .is_empty());
        assert!(app
            .search_ids(
                key,
                json!({"queryContext": "customer", "and": [{"id": {"equals": "c1"}}]})
            )
            .await
            .is_empty());
        assert!(app
            .search_ids(key, json!({"queryContext": "conversation"}))
            .await
            .is_empty());
        assert_eq!(
            app.post("/v1/search/count", key, json!({"queryContext": "customer"}))
                .await
                .expect(200)["total"],
            1
        );
        assert_invalid(
            &app.post("/v1/search", key, json!({"queryContext": "order"})).await,
            400,
            "/queryContext",
        );
        // References into A (objects, users, teams) are refused.
        let r = app
            .post("/v1/objects/conversation", key, json!({"customer": "c1"}))
            .await;
        assert_invalid(&r, 422, "/customer");
        let r = app
            .post(
                "/v1/objects/conversation",
                key,
                json!({"customer": "b-own", "assignedUser": "alice"}),
            )
            .await;
        assert_invalid(&r, 422, "/assignedUser");
        let r = app
            .post(
                "/v1/objects/conversation",
                key,
                json!({"customer": "b-own", "assignedTeam": "a-team"}),
            )
            .await;
        assert_invalid(&r, 422, "/assignedTeam");
        let r = app.post("/v1/objects/customer", key, json!({"company": "c1"})).await;
        assert_invalid(&r, 422, "/company");
    }
    // B's writes under A's ids, externalIds and emails are B's own.
    let bc = app
        .create(
            &b,
            "customer",
            json!({"id": "c1", "name": "B's Ada", "emails": ["ada@a.io"]}),
        )
        .await;
    assert_eq!(bc["rev"], 1);
    let up = app
        .put(
            "/v1/objects/customer/by-external-id/e1",
            &b,
            json!({"name": "B upsert"}),
        )
        .await
        .expect(201);
    assert_ne!(up["id"], "c1");
    assert_eq!(
        app.get("/v1/objects/customer/by-email/ada@a.io", &b).await.expect(200)["name"],
        "B's Ada"
    );
    assert_eq!(
        app.search_ids(
            &b,
            json!({"queryContext": "customer", "and": [{"id": {"equals": "c1"}}]})
        )
        .await,
        ["c1"]
    );
    // A is untouched and still sees only its own.
    let a = get_obj(&app, "customer", "c1").await;
    assert_eq!(a["name"], "Secret Ada");
    assert_eq!(a["rev"], 1);
    assert_eq!(
        app.get("/v1/objects/customer/by-external-id/e1", ADMIN_KEY)
            .await
            .expect(200)["id"],
        "c1"
    );
    assert_eq!(
        app.get("/v1/objects/customer/by-email/ada@a.io", ADMIN_KEY)
            .await
            .expect(200)["name"],
        "Secret Ada"
    );
    assert_eq!(
        app.search_ids(ADMIN_KEY, json!({"queryContext": "customer"})).await,
        ["c1"]
    );
    get_obj(&app, "conversation", "v1").await;
    get_obj(&app, "order", "o1").await;
}
