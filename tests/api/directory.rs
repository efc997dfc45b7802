//! Integration tests: authentication, orgs, `/v1/me`, users, teams and API keys, including the
//! role x endpoint matrix of denials and tenancy between orgs.

use serde_json::{json, Value};

use crate::helpers::{assert_error, assert_invalid, ids, TestApp, ADMIN_KEY};

// ---- local assertions ----

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

async fn team(app: &TestApp, id: &str, members: &[&str]) -> Value {
    app.post(
        "/v1/teams",
        ADMIN_KEY,
        json!({"id": id, "name": format!("Team {id}"), "members": members}),
    )
    .await
    .expect(201)
}

// ---- health and authentication ----

#[tokio::test]
async fn health_answers_ok_without_a_key() {
    let app = TestApp::new().await;
    let r = app.raw("GET", "/health", None, None, &[]).await;
    assert_eq!(r.expect(200), json!({"status": "ok"}));
}

#[tokio::test]
async fn every_v1_endpoint_answers_401_without_a_key() {
    let app = TestApp::new().await;
    let body = || Some(b"{}".to_vec());
    let cases: Vec<(&str, &str, Option<Vec<u8>>)> = vec![
        ("GET", "/v1/me", None),
        ("POST", "/v1/orgs", Some(br#"{"name":"x"}"#.to_vec())),
        ("GET", "/v1/users", None),
        ("POST", "/v1/users", body()),
        ("GET", "/v1/users/admin", None),
        ("PATCH", "/v1/users/admin", body()),
        ("DELETE", "/v1/users/admin", None),
        ("POST", "/v1/users/admin/keys", body()),
        ("GET", "/v1/users/admin/keys", None),
        ("DELETE", "/v1/users/admin/keys/key_x", None),
        ("GET", "/v1/teams", None),
        ("POST", "/v1/teams", body()),
        ("GET", "/v1/teams/t", None),
        ("PATCH", "/v1/teams/t", body()),
        ("DELETE", "/v1/teams/t", None),
        ("GET", "/v1/klasses", None),
        ("POST", "/v1/klasses", body()),
        ("GET", "/v1/klasses/customer", None),
        ("PATCH", "/v1/klasses/customer", body()),
        ("DELETE", "/v1/klasses/order", None),
        ("DELETE", "/v1/klasses/customer/attributes/x", None),
        ("POST", "/v1/objects/customer", body()),
        ("GET", "/v1/objects/customer/c1", None),
        ("PATCH", "/v1/objects/customer/c1", body()),
        ("PUT", "/v1/objects/customer/c1", body()),
        ("DELETE", "/v1/objects/customer/c1", None),
        ("GET", "/v1/objects/customer/by-external-id/e1", None),
        ("PUT", "/v1/objects/customer/by-external-id/e1", body()),
        ("GET", "/v1/objects/customer/by-email/a@b.c", None),
        ("POST", "/v1/search", Some(br#"{"queryContext":"customer"}"#.to_vec())),
    ];
    for (method, path, b) in cases {
        let r = app.raw(method, path, None, b, &[]).await;
        assert_eq!(r.status.as_u16(), 401, "{method} {path} without a key: {}", r.text);
        assert_error(&r, 401);
    }
}

#[tokio::test]
async fn an_unknown_key_is_refused_with_401() {
    let app = TestApp::new().await;
    for path in ["/v1/me", "/v1/users", "/v1/klasses", "/v1/objects/customer/x"] {
        let r = app.get(path, "kdr_not_a_real_key_000000000000000000000000").await;
        assert_error(&r, 401);
    }
    let r = app.post("/v1/objects/customer", "kdr_nope", json!({"name": "x"})).await;
    assert_error(&r, 401);
}

#[tokio::test]
async fn a_key_given_without_the_bearer_scheme_is_refused_with_401() {
    let app = TestApp::new().await;
    let basic = format!("Basic {ADMIN_KEY}");
    for header in [
        ADMIN_KEY.to_string(),
        basic,
        "Bearer ".to_string(),
        "Bearer".to_string(),
    ] {
        let r = app
            .raw("GET", "/v1/me", None, None, &[("authorization", header.as_str())])
            .await;
        assert_eq!(r.status.as_u16(), 401, "Authorization: {header:?} -> {}", r.text);
        assert_error(&r, 401);
    }
    // The right scheme works.
    let r = app
        .raw(
            "GET",
            "/v1/me",
            None,
            None,
            &[("authorization", &format!("Bearer {ADMIN_KEY}"))],
        )
        .await;
    r.expect(200);
}

// ---- orgs and me ----

#[tokio::test]
async fn the_platform_key_creates_an_org_whose_admin_key_works() {
    let app = TestApp::new().await;
    let o = app
        .post("/v1/orgs", ADMIN_KEY, json!({"name": "acme"}))
        .await
        .expect(201);
    assert_eq!(o["name"], "acme");
    let id = o["id"].as_str().expect("org id");
    assert!(!id.is_empty());
    let key = o["adminKey"].as_str().expect("adminKey");
    assert_ne!(key, ADMIN_KEY);
    let me = app.get("/v1/me", key).await.expect(200);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["org"]["id"], id);
    assert_eq!(me["org"]["name"], "acme");
    // The new org starts with the standard klasses.
    let k = app.get("/v1/klasses", key).await.expect(200);
    let names: Vec<&str> = k["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["company", "customer", "conversation", "message", "note"]);
    // ...and no objects of the default org.
    app.create(ADMIN_KEY, "customer", json!({"id": "c-default", "name": "Ada"}))
        .await;
    app.get("/v1/objects/customer/c-default", key).await.expect(404);
}

#[tokio::test]
async fn only_the_platform_key_may_create_orgs() {
    let app = TestApp::new().await;
    let other_admin = app.new_org("other").await;
    let agent = app.user_key(ADMIN_KEY, "agent1", "agent", &[]).await;
    let analyst = app.user_key(ADMIN_KEY, "analyst1", "analyst", &[]).await;
    let admin2 = app.user_key(ADMIN_KEY, "admin2", "admin", &[]).await;
    // A second key of the platform admin's own user is not the platform key.
    let second = app.post("/v1/users/admin/keys", ADMIN_KEY, json!({})).await.expect(201);
    let second = second["key"].as_str().unwrap().to_string();
    for (who, key) in [
        ("other org admin", &other_admin),
        ("agent", &agent),
        ("analyst", &analyst),
        ("second admin", &admin2),
        ("second key of admin", &second),
    ] {
        let r = app.post("/v1/orgs", key, json!({"name": format!("by {who}")})).await;
        assert_eq!(r.status.as_u16(), 403, "{who}: {}", r.text);
        assert_error(&r, 403);
    }
    app.post("/v1/orgs", ADMIN_KEY, json!({"name": "by platform"}))
        .await
        .expect(201);
}

#[tokio::test]
async fn an_org_needs_a_unique_name() {
    let app = TestApp::new().await;
    app.post("/v1/orgs", ADMIN_KEY, json!({"name": "acme"}))
        .await
        .expect(201);
    let r = app.post("/v1/orgs", ADMIN_KEY, json!({"name": "acme"})).await;
    assert_error(&r, 409);
    let r = app.post("/v1/orgs", ADMIN_KEY, json!({"name": "default"})).await;
    assert_error(&r, 409);
    let r = app.post("/v1/orgs", ADMIN_KEY, json!({})).await;
    assert_invalid(&r, 422, "/name");
    let r = app.post("/v1/orgs", ADMIN_KEY, json!({"name": ""})).await;
    assert_invalid(&r, 422, "/name");
    let r = app.post("/v1/orgs", ADMIN_KEY, json!({"name": 7})).await;
    assert_invalid(&r, 422, "/name");
    let r = app
        .post("/v1/orgs", ADMIN_KEY, json!({"name": "x", "plan": "gold"}))
        .await;
    assert_invalid(&r, 422, "/plan");
}

#[tokio::test]
async fn me_returns_the_caller_and_its_org() {
    let app = TestApp::new().await;
    let me = app.get("/v1/me", ADMIN_KEY).await.expect(200);
    assert_eq!(me["id"], "admin");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["org"]["id"], "default");
    assert_eq!(me["org"]["name"], "default");
    team(&app, "support", &[]).await;
    let key = app.user_key(ADMIN_KEY, "ann", "agent", &["support"]).await;
    let me = app.get("/v1/me", &key).await.expect(200);
    assert_eq!(me["id"], "ann");
    assert_eq!(me["name"], "ann");
    assert_eq!(me["email"], "ann@example.com");
    assert_eq!(me["role"], "agent");
    assert_eq!(me["teams"], json!(["support"]));
    assert_eq!(me["org"]["id"], "default");
}

// ---- users ----

#[tokio::test]
async fn an_admin_creates_a_user_and_reads_it_back() {
    let app = TestApp::new().await;
    team(&app, "t1", &[]).await;
    let u = app
        .post(
            "/v1/users",
            ADMIN_KEY,
            json!({"id": "user-1", "name": "Bea", "email": "bea@example.com", "role": "agent", "teams": ["t1"]}),
        )
        .await
        .expect(201);
    assert_eq!(u["id"], "user-1");
    assert_eq!(u["name"], "Bea");
    assert_eq!(u["email"], "bea@example.com");
    assert_eq!(u["role"], "agent");
    assert_eq!(u["teams"], json!(["t1"]));
    assert!(
        u["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
        "{u}"
    );
    let got = app.get("/v1/users/user-1", ADMIN_KEY).await.expect(200);
    assert_eq!(got, u);
    let list = app.get("/v1/users", ADMIN_KEY).await.expect(200);
    let mut listed = ids(&list);
    listed.sort();
    assert_eq!(listed, ["admin", "user-1"]);
    assert_eq!(list["total"], 2);
    assert!(list.get("nextCursor").is_some(), "{list}");
}

#[tokio::test]
async fn a_user_created_without_an_id_gets_a_uuid_v7() {
    let app = TestApp::new().await;
    let u = app
        .post(
            "/v1/users",
            ADMIN_KEY,
            json!({"name": "Cy", "email": "cy@example.com", "role": "analyst"}),
        )
        .await
        .expect(201);
    let id = u["id"].as_str().unwrap();
    assert!(is_uuid_v7(id), "{id}");
    assert_eq!(u["teams"], json!([]));
    app.get(&format!("/v1/users/{id}"), ADMIN_KEY).await.expect(200);
}

#[tokio::test]
async fn an_invalid_user_is_refused_with_422_naming_the_field() {
    let app = TestApp::new().await;
    team(&app, "t1", &[]).await;
    let good = json!({"id": "u1", "name": "Dee", "email": "dee@example.com", "role": "agent", "teams": ["t1"]});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v;
        }
        b
    };
    let cases = [
        (with("name", Value::Null), "/name"),
        (with("name", json!("")), "/name"),
        (with("name", json!(3)), "/name"),
        (with("email", Value::Null), "/email"),
        (with("email", json!("no-at-sign")), "/email"),
        (with("email", json!("a@b@c")), "/email"),
        (with("email", json!("@example.com")), "/email"),
        (with("role", Value::Null), "/role"),
        (with("role", json!("boss")), "/role"),
        (with("role", json!("Admin")), "/role"),
        (with("id", json!("has space")), "/id"),
        (with("id", json!("a/b")), "/id"),
        (with("id", json!("x".repeat(65))), "/id"),
        (with("teams", json!("t1")), "/teams"),
        (with("teams", json!([1])), "/teams/0"),
        (with("teams", json!(["nope"])), "/teams/0"),
        (with("teams", json!(["t1", "nope"])), "/teams/1"),
        (with("nickname", json!("d")), "/nickname"),
    ];
    for (body, pointer) in cases {
        let r = app.post("/v1/users", ADMIN_KEY, body.clone()).await;
        assert_eq!(r.status.as_u16(), 422, "{body} -> {}", r.text);
        assert_eq!(r.pointer(), Some(pointer), "{body} -> {}", r.text);
        assert_error(&r, 422);
    }
    // Nothing was created by the refused requests.
    app.get("/v1/users/u1", ADMIN_KEY).await.expect(404);
    // The same body, valid, is accepted; 64 characters of the id alphabet are a valid id.
    app.post("/v1/users", ADMIN_KEY, good).await.expect(201);
    let long = "A-z.0_9:".repeat(8);
    app.post(
        "/v1/users",
        ADMIN_KEY,
        json!({"id": long, "name": "L", "email": "l@x.io", "role": "analyst"}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn a_duplicate_user_id_is_a_409() {
    let app = TestApp::new().await;
    let body = json!({"id": "dup", "name": "A", "email": "a@example.com", "role": "agent"});
    app.post("/v1/users", ADMIN_KEY, body.clone()).await.expect(201);
    let r = app
        .post(
            "/v1/users",
            ADMIN_KEY,
            json!({"id": "dup", "name": "B", "email": "b@example.com", "role": "analyst"}),
        )
        .await;
    assert_error(&r, 409);
    let r = app
        .post(
            "/v1/users",
            ADMIN_KEY,
            json!({"id": "admin", "name": "B", "email": "b@example.com", "role": "analyst"}),
        )
        .await;
    assert_error(&r, 409);
    // The first one is unchanged.
    let u = app.get("/v1/users/dup", ADMIN_KEY).await.expect(200);
    assert_eq!(u["name"], "A");
    assert_eq!(app.get("/v1/users/admin", ADMIN_KEY).await.expect(200)["role"], "admin");
}

#[tokio::test]
async fn malformed_empty_and_non_object_bodies_are_400() {
    let app = TestApp::new().await;
    for path in ["/v1/users", "/v1/teams", "/v1/orgs"] {
        let r = app
            .raw("POST", path, Some(ADMIN_KEY), Some(b"{\"name\": ".to_vec()), &[])
            .await;
        assert_eq!(r.status.as_u16(), 400, "{path}: {}", r.text);
        assert_error(&r, 400);
        let r = app.raw("POST", path, Some(ADMIN_KEY), Some(Vec::new()), &[]).await;
        assert_eq!(r.status.as_u16(), 400, "{path} empty: {}", r.text);
        assert_error(&r, 400);
        let r = app.post(path, ADMIN_KEY, json!(["not", "an", "object"])).await;
        assert_eq!(r.status.as_u16(), 400, "{path} array: {}", r.text);
        assert_error(&r, 400);
    }
    let r = app
        .raw("PATCH", "/v1/users/admin", Some(ADMIN_KEY), Some(b"nope".to_vec()), &[])
        .await;
    assert_error(&r, 400);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413() {
    let app = TestApp::new().await;
    let big = json!({"name": "x".repeat((1 << 20) + 10), "email": "a@b.c", "role": "agent"});
    let r = app.post("/v1/users", ADMIN_KEY, big).await;
    assert_error(&r, 413);
    let big = json!({"name": "x".repeat((1 << 20) + 10)});
    let r = app.post("/v1/teams", ADMIN_KEY, big.clone()).await;
    assert_error(&r, 413);
    let r = app.patch("/v1/users/admin", ADMIN_KEY, big).await;
    assert_error(&r, 413);
    assert_eq!(app.get("/v1/users", ADMIN_KEY).await.expect(200)["total"], 1);
}

#[tokio::test]
async fn patching_a_user_changes_only_the_given_fields() {
    let app = TestApp::new().await;
    team(&app, "t1", &[]).await;
    team(&app, "t2", &[]).await;
    app.post(
        "/v1/users",
        ADMIN_KEY,
        json!({"id": "eve", "name": "Eve", "email": "eve@example.com", "role": "agent", "teams": ["t1"]}),
    )
    .await
    .expect(201);
    let u = app
        .patch("/v1/users/eve", ADMIN_KEY, json!({"name": "Eve Ng"}))
        .await
        .expect(200);
    assert_eq!(u["name"], "Eve Ng");
    assert_eq!(u["email"], "eve@example.com");
    assert_eq!(u["role"], "agent");
    assert_eq!(u["teams"], json!(["t1"]));
    let u = app
        .patch(
            "/v1/users/eve",
            ADMIN_KEY,
            json!({"role": "analyst", "teams": ["t2"], "email": "eve@corp.io"}),
        )
        .await
        .expect(200);
    assert_eq!(u["role"], "analyst");
    assert_eq!(u["teams"], json!(["t2"]));
    assert_eq!(u["email"], "eve@corp.io");
    assert_eq!(app.get("/v1/users/eve", ADMIN_KEY).await.expect(200), u);
    // Membership follows the user's teams.
    assert_eq!(
        app.get("/v1/teams/t1", ADMIN_KEY).await.expect(200)["members"],
        json!([])
    );
    assert_eq!(
        app.get("/v1/teams/t2", ADMIN_KEY).await.expect(200)["members"],
        json!(["eve"])
    );
    // The same id may be given; another may not.
    app.patch("/v1/users/eve", ADMIN_KEY, json!({"id": "eve"}))
        .await
        .expect(200);
    assert_invalid(
        &app.patch("/v1/users/eve", ADMIN_KEY, json!({"id": "eva"})).await,
        422,
        "/id",
    );
    assert_invalid(
        &app.patch("/v1/users/eve", ADMIN_KEY, json!({"email": "nope"})).await,
        422,
        "/email",
    );
    assert_invalid(
        &app.patch("/v1/users/eve", ADMIN_KEY, json!({"role": "root"})).await,
        422,
        "/role",
    );
    assert_invalid(
        &app.patch("/v1/users/eve", ADMIN_KEY, json!({"teams": ["t2", "t9"]}))
            .await,
        422,
        "/teams/1",
    );
    assert_invalid(
        &app.patch("/v1/users/eve", ADMIN_KEY, json!({"name": ""})).await,
        422,
        "/name",
    );
    assert_invalid(
        &app.patch("/v1/users/eve", ADMIN_KEY, json!({"shoe": 9})).await,
        422,
        "/shoe",
    );
    // Refused patches changed nothing.
    assert_eq!(
        app.get("/v1/users/eve", ADMIN_KEY).await.expect(200)["email"],
        "eve@corp.io"
    );
    assert_error(
        &app.patch("/v1/users/nobody", ADMIN_KEY, json!({"name": "x"})).await,
        404,
    );
}

#[tokio::test]
async fn a_changed_role_applies_to_existing_keys_at_once() {
    let app = TestApp::new().await;
    let key = app.user_key(ADMIN_KEY, "fay", "agent", &[]).await;
    app.post("/v1/objects/customer", &key, json!({"name": "x"}))
        .await
        .expect(201);
    app.patch("/v1/users/fay", ADMIN_KEY, json!({"role": "analyst"}))
        .await
        .expect(200);
    assert_error(&app.post("/v1/objects/customer", &key, json!({"name": "y"})).await, 403);
    app.patch("/v1/users/fay", ADMIN_KEY, json!({"role": "admin"}))
        .await
        .expect(200);
    app.post("/v1/teams", &key, json!({"name": "by fay"})).await.expect(201);
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_or_deleted() {
    let app = TestApp::new().await;
    let r = app.patch("/v1/users/admin", ADMIN_KEY, json!({"role": "agent"})).await;
    assert_error(&r, 409);
    let r = app.delete("/v1/users/admin", ADMIN_KEY).await;
    assert_error(&r, 409);
    assert_eq!(app.get("/v1/users/admin", ADMIN_KEY).await.expect(200)["role"], "admin");
    // With a second admin, one of them may go.
    let k2 = app.user_key(ADMIN_KEY, "admin2", "admin", &[]).await;
    let u = app
        .patch("/v1/users/admin2", ADMIN_KEY, json!({"role": "analyst"}))
        .await
        .expect(200);
    assert_eq!(u["role"], "analyst");
    assert_error(
        &app.patch("/v1/users/admin", ADMIN_KEY, json!({"role": "analyst"}))
            .await,
        409,
    );
    app.patch("/v1/users/admin2", ADMIN_KEY, json!({"role": "admin"}))
        .await
        .expect(200);
    // admin2 deletes the original admin; then admin2 is the last one.
    let r = app.delete("/v1/users/admin", &k2).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert!(r.text.is_empty(), "a delete answers without a body: {:?}", r.text);
    assert_error(&app.get("/v1/me", ADMIN_KEY).await, 401);
    assert_error(&app.delete("/v1/users/admin2", &k2).await, 409);
    assert_error(&app.patch("/v1/users/admin2", &k2, json!({"role": "agent"})).await, 409);
    // A non-admin's role change does not count against the last admin.
    app.user_key(&k2, "ag", "agent", &[]).await;
    app.patch("/v1/users/ag", &k2, json!({"role": "analyst"}))
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    for round in 0..5 {
        let app = std::sync::Arc::new(TestApp::new().await);
        let k2 = app.user_key(ADMIN_KEY, "admin2", "admin", &[]).await;
        let (a1, a2) = (app.clone(), app.clone());
        let t1 = tokio::spawn(async move { a1.patch("/v1/users/admin", &k2, json!({"role": "agent"})).await });
        let t2 = tokio::spawn(async move { a2.delete("/v1/users/admin2", ADMIN_KEY).await });
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        let ok = [&r1, &r2].iter().filter(|r| r.status.is_success()).count();
        assert_eq!(
            ok, 1,
            "round {round}: {} {} / {} {}",
            r1.status, r1.text, r2.status, r2.text
        );
        // ADMIN_KEY stays valid either way (as admin, or as an agent, who may read users).
        let users = app.get("/v1/users", ADMIN_KEY).await.expect(200);
        let admins = users["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["role"] == "admin")
            .count();
        assert_eq!(admins, 1, "round {round}: {users}");
    }
}

#[tokio::test]
async fn deleting_a_user_revokes_its_keys_and_memberships() {
    let app = TestApp::new().await;
    team(&app, "t1", &[]).await;
    let key = app.user_key(ADMIN_KEY, "gus", "agent", &["t1"]).await;
    let key2 = app.post("/v1/users/gus/keys", ADMIN_KEY, json!({})).await.expect(201)["key"]
        .as_str()
        .unwrap()
        .to_string();
    app.get("/v1/me", &key).await.expect(200);
    app.get("/v1/me", &key2).await.expect(200);
    assert_eq!(
        app.get("/v1/teams/t1", ADMIN_KEY).await.expect(200)["members"],
        json!(["gus"])
    );
    let r = app.delete("/v1/users/gus", ADMIN_KEY).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_error(&app.get("/v1/me", &key).await, 401);
    assert_error(&app.get("/v1/me", &key2).await, 401);
    assert_error(&app.get("/v1/objects/customer/x", &key).await, 401);
    assert_error(&app.get("/v1/users/gus", ADMIN_KEY).await, 404);
    assert_error(&app.delete("/v1/users/gus", ADMIN_KEY).await, 404);
    assert_error(&app.get("/v1/users/gus/keys", ADMIN_KEY).await, 404);
    assert_eq!(
        app.get("/v1/teams/t1", ADMIN_KEY).await.expect(200)["members"],
        json!([])
    );
    assert!(!ids(&app.get("/v1/users", ADMIN_KEY).await.expect(200)).contains(&"gus".to_string()));
    // The id may be used again, and the old keys stay revoked.
    app.post(
        "/v1/users",
        ADMIN_KEY,
        json!({"id": "gus", "name": "Gus 2", "email": "g@x.io", "role": "agent"}),
    )
    .await
    .expect(201);
    assert_error(&app.get("/v1/me", &key).await, 401);
}

// ---- keys ----

#[tokio::test]
async fn a_new_key_is_shown_once_and_works_at_once() {
    let app = TestApp::new().await;
    app.post(
        "/v1/users",
        ADMIN_KEY,
        json!({"id": "hal", "name": "Hal", "email": "hal@x.io", "role": "analyst"}),
    )
    .await
    .expect(201);
    let k = app.post("/v1/users/hal/keys", ADMIN_KEY, json!({})).await.expect(201);
    let id = k["id"].as_str().expect("key id").to_string();
    let secret = k["key"].as_str().expect("key secret").to_string();
    assert!(k["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{k}");
    assert_ne!(id, secret);
    assert!(secret.len() >= 32, "{secret}");
    let me = app.get("/v1/me", &secret).await.expect(200);
    assert_eq!(me["id"], "hal");
    // The listing names the key but never its secret.
    let list = app.get("/v1/users/hal/keys", ADMIN_KEY).await;
    assert!(!list.text.contains(&secret), "the secret is listed: {}", list.text);
    let list = list.expect(200);
    assert_eq!(ids(&list), std::slice::from_ref(&id));
    assert_eq!(list["total"], 1);
    assert!(list["data"][0].get("key").is_none(), "{list}");
    // A second key is another key.
    let k2 = app.post("/v1/users/hal/keys", ADMIN_KEY, json!({})).await.expect(201);
    assert_ne!(k2["key"], k["key"]);
    assert_ne!(k2["id"], k["id"]);
    let mut listed = ids(&app.get("/v1/users/hal/keys", ADMIN_KEY).await.expect(200));
    listed.sort();
    let mut expected = vec![id, k2["id"].as_str().unwrap().to_string()];
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_and_others_keep_working() {
    let app = TestApp::new().await;
    app.post(
        "/v1/users",
        ADMIN_KEY,
        json!({"id": "ivy", "name": "Ivy", "email": "ivy@x.io", "role": "agent"}),
    )
    .await
    .expect(201);
    let k1 = app.post("/v1/users/ivy/keys", ADMIN_KEY, json!({})).await.expect(201);
    let k2 = app.post("/v1/users/ivy/keys", ADMIN_KEY, json!({})).await.expect(201);
    let (id1, s1) = (k1["id"].as_str().unwrap(), k1["key"].as_str().unwrap());
    let s2 = k2["key"].as_str().unwrap();
    app.post(
        "/v1/objects/customer?refresh=wait_for",
        s1,
        json!({"id": "c1", "name": "x"}),
    )
    .await
    .expect(201);
    let r = app.delete(&format!("/v1/users/ivy/keys/{id1}"), ADMIN_KEY).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert!(r.text.is_empty());
    for (m, p, b) in [
        ("GET", "/v1/me", None),
        ("GET", "/v1/objects/customer/c1", None),
        ("POST", "/v1/objects/customer", Some(json!({"name": "y"}))),
        ("PATCH", "/v1/objects/customer/c1", Some(json!({"name": "y"}))),
        ("DELETE", "/v1/objects/customer/c1", None),
        ("POST", "/v1/search", Some(json!({"queryContext": "customer"}))),
        ("GET", "/v1/klasses", None),
        ("GET", "/v1/users", None),
    ] {
        let r = app.call(m, p, s1, b).await;
        assert_eq!(r.status.as_u16(), 401, "{m} {p} with a revoked key: {}", r.text);
        assert_error(&r, 401);
    }
    assert_eq!(app.get("/v1/me", s2).await.expect(200)["id"], "ivy");
    assert_eq!(app.get("/v1/objects/customer/c1", s2).await.expect(200)["name"], "x");
    let listed = ids(&app.get("/v1/users/ivy/keys", ADMIN_KEY).await.expect(200));
    assert_eq!(listed, [k2["id"].as_str().unwrap()]);
    // Revoking again, or an unknown key, or through another user: 404.
    assert_error(&app.delete(&format!("/v1/users/ivy/keys/{id1}"), ADMIN_KEY).await, 404);
    assert_error(&app.delete("/v1/users/ivy/keys/key_unknown", ADMIN_KEY).await, 404);
    let k2id = k2["id"].as_str().unwrap();
    assert_error(
        &app.delete(&format!("/v1/users/admin/keys/{k2id}"), ADMIN_KEY).await,
        404,
    );
    app.get("/v1/me", s2).await.expect(200);
    assert_error(
        &app.delete(&format!("/v1/users/nobody/keys/{k2id}"), ADMIN_KEY).await,
        404,
    );
}

#[tokio::test]
async fn the_platform_key_can_be_listed_and_revoked_like_any_other() {
    let app = TestApp::new().await;
    let list = app.get("/v1/users/admin/keys", ADMIN_KEY).await.expect(200);
    assert_eq!(list["total"], 1);
    let id = list["data"][0]["id"].as_str().unwrap().to_string();
    let k2 = app.post("/v1/users/admin/keys", ADMIN_KEY, json!({})).await.expect(201)["key"]
        .as_str()
        .unwrap()
        .to_string();
    app.delete(&format!("/v1/users/admin/keys/{id}"), &k2).await.expect(204);
    assert_error(&app.get("/v1/me", ADMIN_KEY).await, 401);
    assert_error(&app.post("/v1/orgs", ADMIN_KEY, json!({"name": "late"})).await, 401);
    app.get("/v1/me", &k2).await.expect(200);
}

#[tokio::test]
async fn keys_of_an_unknown_user_are_404() {
    let app = TestApp::new().await;
    assert_error(&app.post("/v1/users/ghost/keys", ADMIN_KEY, json!({})).await, 404);
    assert_error(&app.get("/v1/users/ghost/keys", ADMIN_KEY).await, 404);
    assert_error(&app.delete("/v1/users/ghost/keys/key_x", ADMIN_KEY).await, 404);
    assert_error(&app.get("/v1/users/ghost", ADMIN_KEY).await, 404);
    assert_error(&app.delete("/v1/users/ghost", ADMIN_KEY).await, 404);
}

// ---- teams ----

#[tokio::test]
async fn an_admin_creates_a_team_with_members() {
    let app = TestApp::new().await;
    app.user_key(ADMIN_KEY, "jo", "agent", &[]).await;
    app.user_key(ADMIN_KEY, "kim", "analyst", &[]).await;
    let t = app
        .post(
            "/v1/teams",
            ADMIN_KEY,
            json!({"id": "billing", "name": "Billing", "members": ["jo", "kim", "jo"]}),
        )
        .await
        .expect(201);
    assert_eq!(t["id"], "billing");
    assert_eq!(t["name"], "Billing");
    let mut members: Vec<&str> = t["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, ["jo", "kim"]);
    assert_eq!(app.get("/v1/teams/billing", ADMIN_KEY).await.expect(200), t);
    // Membership shows on the users.
    assert_eq!(
        app.get("/v1/users/jo", ADMIN_KEY).await.expect(200)["teams"],
        json!(["billing"])
    );
    assert_eq!(
        app.get("/v1/users/kim", ADMIN_KEY).await.expect(200)["teams"],
        json!(["billing"])
    );
    // Without an id or members.
    let t2 = app
        .post("/v1/teams", ADMIN_KEY, json!({"name": "Empty"}))
        .await
        .expect(201);
    assert!(is_uuid_v7(t2["id"].as_str().unwrap()), "{t2}");
    assert_eq!(t2["members"], json!([]));
    let list = app.get("/v1/teams", ADMIN_KEY).await.expect(200);
    assert_eq!(list["total"], 2);
    let mut listed = ids(&list);
    listed.sort();
    let mut expected = vec!["billing".to_string(), t2["id"].as_str().unwrap().to_string()];
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn a_user_created_with_teams_is_listed_as_a_member() {
    let app = TestApp::new().await;
    team(&app, "a", &[]).await;
    team(&app, "b", &[]).await;
    app.user_key(ADMIN_KEY, "lou", "agent", &["a", "b"]).await;
    assert_eq!(
        app.get("/v1/teams/a", ADMIN_KEY).await.expect(200)["members"],
        json!(["lou"])
    );
    assert_eq!(
        app.get("/v1/teams/b", ADMIN_KEY).await.expect(200)["members"],
        json!(["lou"])
    );
    let list = app.get("/v1/teams", ADMIN_KEY).await.expect(200);
    for t in list["data"].as_array().unwrap() {
        assert_eq!(t["members"], json!(["lou"]), "{t}");
    }
}

#[tokio::test]
async fn an_invalid_team_is_refused_with_422_naming_the_field() {
    let app = TestApp::new().await;
    app.user_key(ADMIN_KEY, "mo", "agent", &[]).await;
    let cases = [
        (json!({"id": "t", "members": []}), "/name"),
        (json!({"id": "t", "name": ""}), "/name"),
        (json!({"id": "bad id", "name": "T"}), "/id"),
        (json!({"id": "t", "name": "T", "members": ["ghost"]}), "/members/0"),
        (
            json!({"id": "t", "name": "T", "members": ["mo", "ghost"]}),
            "/members/1",
        ),
        (json!({"id": "t", "name": "T", "members": "mo"}), "/members"),
        (json!({"id": "t", "name": "T", "lead": "mo"}), "/lead"),
    ];
    for (body, pointer) in cases {
        let r = app.post("/v1/teams", ADMIN_KEY, body.clone()).await;
        assert_eq!(r.status.as_u16(), 422, "{body} -> {}", r.text);
        assert_eq!(r.pointer(), Some(pointer), "{body} -> {}", r.text);
        assert_error(&r, 422);
    }
    assert_error(&app.get("/v1/teams/t", ADMIN_KEY).await, 404);
    assert_eq!(app.get("/v1/users/mo", ADMIN_KEY).await.expect(200)["teams"], json!([]));
}

#[tokio::test]
async fn a_duplicate_team_id_is_a_409() {
    let app = TestApp::new().await;
    team(&app, "ops", &[]).await;
    let r = app
        .post("/v1/teams", ADMIN_KEY, json!({"id": "ops", "name": "Other"}))
        .await;
    assert_error(&r, 409);
    assert_eq!(
        app.get("/v1/teams/ops", ADMIN_KEY).await.expect(200)["name"],
        "Team ops"
    );
}

#[tokio::test]
async fn patching_a_team_replaces_its_members() {
    let app = TestApp::new().await;
    for u in ["n1", "n2", "n3"] {
        app.user_key(ADMIN_KEY, u, "agent", &[]).await;
    }
    team(&app, "other", &["n1"]).await;
    team(&app, "sales", &["n1", "n2"]).await;
    let t = app
        .patch("/v1/teams/sales", ADMIN_KEY, json!({"members": ["n2", "n3"]}))
        .await
        .expect(200);
    let mut m: Vec<&str> = t["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    m.sort();
    assert_eq!(m, ["n2", "n3"]);
    assert_eq!(t["name"], "Team sales");
    assert_eq!(
        app.get("/v1/users/n1", ADMIN_KEY).await.expect(200)["teams"],
        json!(["other"])
    );
    assert_eq!(
        app.get("/v1/users/n2", ADMIN_KEY).await.expect(200)["teams"],
        json!(["sales"])
    );
    assert_eq!(
        app.get("/v1/users/n3", ADMIN_KEY).await.expect(200)["teams"],
        json!(["sales"])
    );
    // A name-only patch keeps the members.
    let t = app
        .patch("/v1/teams/sales", ADMIN_KEY, json!({"name": "Sales EU"}))
        .await
        .expect(200);
    assert_eq!(t["name"], "Sales EU");
    assert_eq!(t["members"].as_array().unwrap().len(), 2);
    // An empty list empties it.
    let t = app
        .patch("/v1/teams/sales", ADMIN_KEY, json!({"members": []}))
        .await
        .expect(200);
    assert_eq!(t["members"], json!([]));
    assert_eq!(app.get("/v1/users/n2", ADMIN_KEY).await.expect(200)["teams"], json!([]));
    // Refusals.
    assert_invalid(
        &app.patch("/v1/teams/sales", ADMIN_KEY, json!({"members": ["n1", "ghost"]}))
            .await,
        422,
        "/members/1",
    );
    assert_invalid(
        &app.patch("/v1/teams/sales", ADMIN_KEY, json!({"id": "renamed"})).await,
        422,
        "/id",
    );
    assert_invalid(
        &app.patch("/v1/teams/sales", ADMIN_KEY, json!({"name": ""})).await,
        422,
        "/name",
    );
    assert_eq!(
        app.get("/v1/teams/sales", ADMIN_KEY).await.expect(200)["members"],
        json!([])
    );
    assert_error(
        &app.patch("/v1/teams/ghost", ADMIN_KEY, json!({"name": "x"})).await,
        404,
    );
}

#[tokio::test]
async fn deleting_a_team_removes_every_membership() {
    let app = TestApp::new().await;
    team(&app, "keep", &[]).await;
    team(&app, "gone", &[]).await;
    app.user_key(ADMIN_KEY, "pat", "agent", &["keep", "gone"]).await;
    let r = app.delete("/v1/teams/gone", ADMIN_KEY).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_error(&app.get("/v1/teams/gone", ADMIN_KEY).await, 404);
    assert_error(&app.delete("/v1/teams/gone", ADMIN_KEY).await, 404);
    assert_eq!(
        app.get("/v1/users/pat", ADMIN_KEY).await.expect(200)["teams"],
        json!(["keep"])
    );
    assert_eq!(ids(&app.get("/v1/teams", ADMIN_KEY).await.expect(200)), ["keep"]);
    // A deleted team can no longer be joined or assigned.
    assert_invalid(
        &app.patch("/v1/users/pat", ADMIN_KEY, json!({"teams": ["gone"]})).await,
        422,
        "/teams/0",
    );
    app.create(ADMIN_KEY, "customer", json!({"id": "c1"})).await;
    let r = app
        .post(
            "/v1/objects/conversation",
            ADMIN_KEY,
            json!({"customer": "c1", "assignedTeam": "gone"}),
        )
        .await;
    assert_invalid(&r, 422, "/assignedTeam");
    // Recreating the team does not bring the old members back.
    team(&app, "gone", &[]).await;
    assert_eq!(
        app.get("/v1/teams/gone", ADMIN_KEY).await.expect(200)["members"],
        json!([])
    );
}

// ---- roles ----

/// Every directory write (and key listing) that only an admin may do.
fn admin_only_directory_calls() -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        (
            "POST",
            "/v1/users".into(),
            Some(json!({"id": "new1", "name": "N", "email": "n@x.io", "role": "agent"})),
        ),
        ("PATCH", "/v1/users/target".into(), Some(json!({"name": "Changed"}))),
        ("PATCH", "/v1/users/target".into(), Some(json!({"role": "admin"}))),
        ("POST", "/v1/users/target/keys".into(), Some(json!({}))),
        ("GET", "/v1/users/target/keys".into(), None),
        ("DELETE", "/v1/users/target/keys/TARGET_KEY".into(), None),
        (
            "POST",
            "/v1/teams".into(),
            Some(json!({"id": "new-team", "name": "New"})),
        ),
        (
            "PATCH",
            "/v1/teams/crew".into(),
            Some(json!({"name": "Changed", "members": []})),
        ),
        ("DELETE", "/v1/teams/crew".into(), None),
        ("DELETE", "/v1/users/target".into(), None),
        ("POST", "/v1/orgs".into(), Some(json!({"name": "by-role"}))),
    ]
}

async fn role_matrix_setup(app: &TestApp) -> (String, String, String) {
    app.post(
        "/v1/users",
        ADMIN_KEY,
        json!({"id": "target", "name": "Target", "email": "t@x.io", "role": "agent"}),
    )
    .await
    .expect(201);
    let tk = app
        .post("/v1/users/target/keys", ADMIN_KEY, json!({}))
        .await
        .expect(201);
    team(app, "crew", &["target"]).await;
    let agent = app.user_key(ADMIN_KEY, "the-agent", "agent", &["crew"]).await;
    let analyst = app.user_key(ADMIN_KEY, "the-analyst", "analyst", &["crew"]).await;
    (agent, analyst, tk["id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn agents_and_analysts_get_403_on_every_directory_write_and_key_listing() {
    let app = TestApp::new().await;
    let (agent, analyst, target_key) = role_matrix_setup(&app).await;
    for (role, key) in [("agent", &agent), ("analyst", &analyst)] {
        for (m, p, b) in admin_only_directory_calls() {
            let p = p.replace("TARGET_KEY", &target_key);
            let r = app.call(m, &p, key, b).await;
            assert_eq!(r.status.as_u16(), 403, "{role}: {m} {p} -> {}", r.text);
            assert_error(&r, 403);
        }
        // Also on their own user and keys.
        let own = if role == "agent" { "the-agent" } else { "the-analyst" };
        for (m, p, b) in [
            ("PATCH", format!("/v1/users/{own}"), Some(json!({"role": "admin"}))),
            ("POST", format!("/v1/users/{own}/keys"), Some(json!({}))),
            ("GET", format!("/v1/users/{own}/keys"), None),
            ("DELETE", format!("/v1/users/{own}"), None),
        ] {
            let r = app.call(m, &p, key, b).await;
            assert_eq!(r.status.as_u16(), 403, "{role}: {m} {p} -> {}", r.text);
        }
    }
    // Nothing changed.
    let t = app.get("/v1/users/target", ADMIN_KEY).await.expect(200);
    assert_eq!(t["name"], "Target");
    assert_eq!(t["role"], "agent");
    assert_eq!(
        app.get("/v1/users/target/keys", ADMIN_KEY).await.expect(200)["total"],
        1
    );
    assert_error(&app.get("/v1/users/new1", ADMIN_KEY).await, 404);
    assert_error(&app.get("/v1/teams/new-team", ADMIN_KEY).await, 404);
    let crew = app.get("/v1/teams/crew", ADMIN_KEY).await.expect(200);
    assert_eq!(crew["name"], "Team crew");
    assert_eq!(crew["members"].as_array().unwrap().len(), 3);
    assert_eq!(app.get("/v1/me", &agent).await.expect(200)["role"], "agent");
    assert_eq!(app.get("/v1/me", &analyst).await.expect(200)["role"], "analyst");
}

#[tokio::test]
async fn agents_and_analysts_may_read_users_teams_and_themselves() {
    let app = TestApp::new().await;
    let (agent, analyst, _) = role_matrix_setup(&app).await;
    for key in [&agent, &analyst] {
        let users = app.get("/v1/users", key).await.expect(200);
        assert_eq!(users["total"], 4);
        assert_eq!(app.get("/v1/users/target", key).await.expect(200)["email"], "t@x.io");
        let teams = app.get("/v1/teams", key).await.expect(200);
        assert_eq!(ids(&teams), ["crew"]);
        assert_eq!(app.get("/v1/teams/crew", key).await.expect(200)["id"], "crew");
        app.get("/v1/me", key).await.expect(200);
    }
}

#[tokio::test]
async fn the_admin_may_do_every_directory_call() {
    let app = TestApp::new().await;
    let (_, _, target_key) = role_matrix_setup(&app).await;
    let admin2 = app.user_key(ADMIN_KEY, "admin-two", "admin", &[]).await;
    for (m, p, b) in admin_only_directory_calls() {
        if p == "/v1/orgs" {
            continue;
        }
        let p = p.replace("TARGET_KEY", &target_key);
        let r = app.call(m, &p, &admin2, b).await;
        assert!(r.status.is_success(), "admin: {m} {p} -> {} {}", r.status, r.text);
    }
}

// ---- tenancy ----

#[tokio::test]
async fn another_orgs_admin_gets_404_for_every_user_team_and_key_of_this_org() {
    let app = TestApp::new().await;
    team(&app, "a-team", &[]).await;
    let alice = app.user_key(ADMIN_KEY, "alice", "agent", &["a-team"]).await;
    let alice_key_id = app.get("/v1/users/alice/keys", ADMIN_KEY).await.expect(200)["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = app.new_org("org-b").await;
    for (m, p, body) in [
        ("GET", "/v1/users/alice".to_string(), None),
        ("PATCH", "/v1/users/alice".to_string(), Some(json!({"name": "Mallory"}))),
        ("DELETE", "/v1/users/alice".to_string(), None),
        ("POST", "/v1/users/alice/keys".to_string(), Some(json!({}))),
        ("GET", "/v1/users/alice/keys".to_string(), None),
        ("DELETE", format!("/v1/users/alice/keys/{alice_key_id}"), None),
        ("GET", "/v1/teams/a-team".to_string(), None),
        ("PATCH", "/v1/teams/a-team".to_string(), Some(json!({"members": []}))),
        ("DELETE", "/v1/teams/a-team".to_string(), None),
    ] {
        let r = app.call(m, &p, &b, body).await;
        assert_eq!(r.status.as_u16(), 404, "org B: {m} {p} -> {}", r.text);
        assert_error(&r, 404);
    }
    // B's lists hold only B's directory.
    assert_eq!(ids(&app.get("/v1/users", &b).await.expect(200)), ["admin"]);
    assert_eq!(app.get("/v1/teams", &b).await.expect(200)["total"], 0);
    // B cannot point at A's team or user.
    let r = app
        .post(
            "/v1/users",
            &b,
            json!({"id": "bob", "name": "Bob", "email": "b@x.io", "role": "agent", "teams": ["a-team"]}),
        )
        .await;
    assert_invalid(&r, 422, "/teams/0");
    let r = app
        .post(
            "/v1/teams",
            &b,
            json!({"id": "b-team", "name": "B", "members": ["alice"]}),
        )
        .await;
    assert_invalid(&r, 422, "/members/0");
    // Ids are per org: B may use A's ids.
    app.post("/v1/teams", &b, json!({"id": "a-team", "name": "B's own"}))
        .await
        .expect(201);
    app.post(
        "/v1/users",
        &b,
        json!({"id": "alice", "name": "Other Alice", "email": "oa@x.io", "role": "analyst", "teams": ["a-team"]}),
    )
    .await
    .expect(201);
    // A is untouched.
    let a = app.get("/v1/users/alice", ADMIN_KEY).await.expect(200);
    assert_eq!(a["name"], "alice");
    assert_eq!(a["role"], "agent");
    assert_eq!(
        app.get("/v1/teams/a-team", ADMIN_KEY).await.expect(200)["members"],
        json!(["alice"])
    );
    assert_eq!(app.get("/v1/me", &alice).await.expect(200)["org"]["id"], "default");
    // And A's admin cannot see B's.
    let b_me = app.get("/v1/me", &b).await.expect(200);
    assert_ne!(b_me["org"]["id"], "default");
    let b_alice = app.get("/v1/users/alice", &b).await.expect(200);
    assert_eq!(b_alice["name"], "Other Alice");
}

#[tokio::test]
async fn a_key_of_one_org_never_acts_in_another() {
    let app = TestApp::new().await;
    let b = app.new_org("org-b").await;
    let b_agent = app.user_key(&b, "b-agent", "agent", &[]).await;
    assert_eq!(app.get("/v1/me", &b_agent).await.expect(200)["org"]["name"], "org-b");
    // b-agent exists only in B.
    assert_error(&app.get("/v1/users/b-agent", ADMIN_KEY).await, 404);
    app.get("/v1/users/b-agent", &b).await.expect(200);
    // A's admin revoking through its own org cannot touch B's key.
    let kid = app.get("/v1/users/b-agent/keys", &b).await.expect(200)["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_error(
        &app.delete(&format!("/v1/users/b-agent/keys/{kid}"), ADMIN_KEY).await,
        404,
    );
    app.get("/v1/me", &b_agent).await.expect(200);
    // B's admin is not the platform.
    assert_error(&app.post("/v1/orgs", &b, json!({"name": "c"})).await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_page_size_and_cursor_and_refuse_bad_parameters() {
    let app = TestApp::new().await;
    for i in 0..7 {
        app.post(
            "/v1/teams",
            ADMIN_KEY,
            json!({"id": format!("t{i}"), "name": format!("Team {i}")}),
        )
        .await
        .expect(201);
    }
    let all = app.get("/v1/teams", ADMIN_KEY).await.expect(200);
    assert_eq!(all["total"], 7);
    assert!(all["nextCursor"].is_null(), "{all}");
    let everything = ids(&all);
    assert_eq!(everything.len(), 7);
    // Pages of 3: every team once, in the same order, then no cursor.
    let mut seen = Vec::new();
    let mut url = "/v1/teams?pageSize=3".to_string();
    let mut pages = 0;
    loop {
        let page = app.get(&url, ADMIN_KEY).await.expect(200);
        assert_eq!(page["total"], 7, "total is exact on every page: {page}");
        pages += 1;
        seen.extend(ids(&page));
        match page["nextCursor"].as_str() {
            Some(c) => url = format!("/v1/teams?pageSize=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, everything);
    // A cursor still works after the item before it is deleted: no skip, no repeat.
    let first = app.get("/v1/teams?pageSize=3", ADMIN_KEY).await.expect(200);
    let cursor = first["nextCursor"].as_str().unwrap().to_string();
    app.delete(&format!("/v1/teams/{}", everything[0]), ADMIN_KEY)
        .await
        .expect(204);
    let next = app
        .get(&format!("/v1/teams?pageSize=3&cursor={cursor}"), ADMIN_KEY)
        .await
        .expect(200);
    assert_eq!(ids(&next), everything[3..6].to_vec());
    // Bad parameters name themselves.
    for (q, param) in [
        ("pageSize=0", "pageSize"),
        ("pageSize=1001", "pageSize"),
        ("pageSize=x", "pageSize"),
        ("cursor=bm9wZQ", "cursor"),
    ] {
        let r = app.get(&format!("/v1/teams?{q}"), ADMIN_KEY).await;
        let e = assert_error(&r, 400);
        assert_eq!(e["source"]["parameter"], param, "{q}: {}", r.text);
    }
    // Other lists page the same way.
    for path in [
        "/v1/klasses",
        "/v1/users",
        "/v1/saved-searches",
        "/v1/business-rules",
        "/v1/workflows",
        "/v1/hooks",
    ] {
        let r = app.get(&format!("{path}?pageSize=1"), ADMIN_KEY).await.expect(200);
        assert!(r["data"].as_array().unwrap().len() <= 1, "{path}: {r}");
        app.get(&format!("{path}?pageSize=0"), ADMIN_KEY).await.expect(400);
    }
}
