//! Saved searches and segments over HTTP: who sees and may change what (the visibility matrix over
//! every endpoint), team departure, running a saved search (results, count, export, paging), a
//! saved search outdated by a schema change, and segments (`/objects/customer/{id}/saved-searches`)
//! checked against independently computed membership and against each saved search's results.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::helpers::{ids, Resp, TestApp, ADMIN_KEY as A};

/// 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600_000;

fn id_set(v: &Value) -> BTreeSet<String> {
    ids(v).into_iter().collect()
}

#[track_caller]
fn assert_error(r: &Resp, status: u16, what: &str) {
    assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text);
    assert!(
        r.body["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{what}: not an error body: {}",
        r.text
    );
}

async fn save(t: &TestApp, key: &str, body: Value) -> Value {
    t.post("/v1/saved-searches", key, body).await.expect(201)
}

fn gold() -> Value {
    json!({"queryContext": "customer", "and": [{"custom.tierStr": {"equals": "gold"}}], "sort": [{"id": "asc"}]})
}

async fn customers(t: &TestApp) {
    for (id, tier) in [
        ("c1", "gold"),
        ("c2", "silver"),
        ("c3", "gold"),
        ("c4", "bronze"),
        ("c5", "gold"),
    ] {
        t.create(
            A,
            "customer",
            json!({"id": id, "name": format!("Customer {id}"), "custom": {"tierStr": tier}}),
        )
        .await;
    }
}

async fn team(t: &TestApp, id: &str) {
    t.post(
        "/v1/teams",
        A,
        json!({"id": id, "name": format!("Team {id}"), "members": []}),
    )
    .await
    .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_role_saves_a_search_and_gets_id_owner_and_created_at() {
    let (t, _clock) = TestApp::with_clock(NOW).await;
    customers(&t).await;
    team(&t, "sales").await;
    let ana = t.user_key(A, "ana", "analyst", &[]).await;
    let olive = t.user_key(A, "olive", "agent", &["sales"]).await;

    // An analyst (read-only elsewhere) may save its own; defaults: private, unpinned, nobody else.
    let s = save(&t, &ana, json!({"name": "Gold", "query": gold()})).await;
    let id = s["id"].as_str().unwrap().to_string();
    assert!(!id.is_empty());
    assert_eq!(s["owner"], "ana");
    assert_eq!(s["createdAt"], "2026-01-01T00:00:00.000Z");
    assert_eq!(s["name"], "Gold");
    assert_eq!(s["visibility"], "private");
    assert_eq!(s["pinned"], false);
    assert_eq!(s["users"], json!([]));
    assert_eq!(s["teams"], json!([]));
    assert_eq!(s["query"], gold());
    assert_eq!(t.get(&format!("/v1/saved-searches/{id}"), &ana).await.expect(200), s);

    // A supplied id is kept; the owner is always the caller, whatever the body says elsewhere.
    let s = save(&t, &olive, json!({"id": "olive-gold", "name": "Gold team", "query": gold(), "visibility": "shared", "teams": ["sales"], "users": ["ana"], "pinned": true})).await;
    assert_eq!(s["id"], "olive-gold");
    assert_eq!(s["owner"], "olive");
    assert_eq!(s["visibility"], "shared");
    assert_eq!(s["teams"], json!(["sales"]));
    assert_eq!(s["users"], json!(["ana"]));
    assert_eq!(s["pinned"], true);
    // The id is unique.
    let r = t
        .post(
            "/v1/saved-searches",
            &olive,
            json!({"id": "olive-gold", "name": "again", "query": gold()}),
        )
        .await;
    assert_error(&r, 409, "duplicate id");

    // The analyst changes and deletes its own.
    let p = t
        .patch(
            &format!("/v1/saved-searches/{id}"),
            &ana,
            json!({"name": "Gold customers", "pinned": true}),
        )
        .await
        .expect(200);
    assert_eq!(p["name"], "Gold customers");
    assert_eq!(p["pinned"], true);
    assert_eq!(p["owner"], "ana");
    assert_eq!(p["createdAt"], "2026-01-01T00:00:00.000Z");
    let r = t.delete(&format!("/v1/saved-searches/{id}"), &ana).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_error(&t.get(&format!("/v1/saved-searches/{id}"), &ana).await, 404, "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_saved_search_is_refused_naming_the_field_under_query() {
    let t = TestApp::new().await;
    customers(&t).await;
    team(&t, "sales").await;
    let olive = t.user_key(A, "olive", "agent", &["sales"]).await;
    let cases = [
        (
            json!({"name": "x", "query": {"queryContext": "customer", "and": [{"custom.x": {"equals": 1}}]}}),
            400,
            "/query/and/0/custom.x",
        ),
        (
            json!({"name": "x", "query": {"queryContext": "customer", "and": [{"custom.tierStr": {"gt": 1}}]}}),
            400,
            "/query/and/0/custom.tierStr",
        ),
        (
            json!({"name": "x", "query": {"queryContext": "customer", "or": [{"and": [{"custom.tierStr": {"equals": "gold"}}, {"custom.nope": {"set": true}}]}]}}),
            400,
            "/query/or/0/and/1/custom.nope",
        ),
        (
            json!({"name": "x", "query": {"queryContext": "unicorn"}}),
            400,
            "/query/queryContext",
        ),
        (
            json!({"name": "x", "query": {"queryContext": "customer", "sort": [{"custom.nope": "asc"}]}}),
            400,
            "/query/sort/0/custom.nope",
        ),
        (
            json!({"name": "x", "query": gold(), "users": ["nobody"]}),
            422,
            "/users/0",
        ),
        (
            json!({"name": "x", "query": gold(), "teams": ["sales", "ghosts"]}),
            422,
            "/teams/1",
        ),
        (
            json!({"name": "x", "query": gold(), "visibility": "public"}),
            422,
            "/visibility",
        ),
    ];
    for (body, status, pointer) in cases {
        let r = t.post("/v1/saved-searches", &olive, body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text);
        assert_eq!(r.pointer(), Some(pointer), "{body}: {}", r.text);
    }
    // Missing name or query: refused, naming the field.
    for (body, pointer) in [(json!({"query": gold()}), "/name"), (json!({"name": "x"}), "/query")] {
        let r = t.post("/v1/saved-searches", &olive, body.clone()).await;
        assert!(matches!(r.status.as_u16(), 400 | 422), "{body}: {}", r.text);
        assert_eq!(r.pointer(), Some(pointer), "{body}: {}", r.text);
    }
    // Nothing was saved.
    assert_eq!(t.get("/v1/saved-searches", &olive).await.expect(200)["total"], 0);
    // An update with a bad query is refused the same way and changes nothing.
    let s = save(&t, &olive, json!({"id": "s", "name": "Gold", "query": gold()})).await;
    let r = t
        .patch(
            "/v1/saved-searches/s",
            &olive,
            json!({"query": {"queryContext": "customer", "and": [{"custom.x": {"equals": 1}}]}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_eq!(r.pointer(), Some("/query/and/0/custom.x"));
    let r = t
        .patch(
            "/v1/saved-searches/s",
            &olive,
            json!({"visibility": "shared", "users": ["nobody"]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    assert_eq!(r.pointer(), Some("/users/0"));
    assert_eq!(t.get("/v1/saved-searches/s", &olive).await.expect(200), s);
}

/// Who may see which saved search, by caller.
struct Matrix {
    keys: BTreeMap<&'static str, String>,
}

const SEARCHES: [&str; 6] = ["s-private", "s-team", "s-org", "s-user", "s-ana", "s-admin"];

/// What each caller sees by listing (admins see any by id besides).
fn listed(caller: &str) -> Vec<&'static str> {
    match caller {
        // Pinned first (s-org), then by name: Alpha, Bravo, Charlie.
        "olive" => vec!["s-org", "s-private", "s-team", "s-user"],
        "sam" => vec!["s-org", "s-team"],
        "tom" => vec!["s-org"],
        "zed" => vec!["s-org"],
        "ana" => vec!["s-org", "s-ana", "s-user"],
        "admin" => vec!["s-org", "s-admin"],
        "other" => vec![],
        c => panic!("{c}"),
    }
}

fn owner(search: &str) -> &'static str {
    match search {
        "s-ana" => "ana",
        "s-admin" => "admin",
        _ => "olive",
    }
}

async fn matrix(t: &TestApp) -> Matrix {
    customers(t).await;
    team(t, "sales").await;
    team(t, "support").await;
    let mut keys = BTreeMap::new();
    keys.insert("olive", t.user_key(A, "olive", "agent", &["sales"]).await);
    keys.insert("sam", t.user_key(A, "sam", "agent", &["sales"]).await);
    keys.insert("tom", t.user_key(A, "tom", "agent", &["support"]).await);
    keys.insert("zed", t.user_key(A, "zed", "agent", &[]).await);
    keys.insert("ana", t.user_key(A, "ana", "analyst", &["support"]).await);
    keys.insert("admin", A.to_string());
    keys.insert("other", t.new_org("elsewhere").await);
    let olive = keys["olive"].clone();
    // Private stays private even when users and teams are listed.
    save(t, &olive, json!({"id": "s-private", "name": "Alpha private", "query": gold(), "visibility": "private", "users": ["sam", "ana"], "teams": ["sales"]})).await;
    save(
        t,
        &olive,
        json!({"id": "s-team", "name": "Bravo team", "query": gold(), "visibility": "shared", "teams": ["sales"]}),
    )
    .await;
    save(
        t,
        &olive,
        json!({"id": "s-org", "name": "Zulu org", "query": gold(), "visibility": "org", "pinned": true}),
    )
    .await;
    save(
        t,
        &olive,
        json!({"id": "s-user", "name": "Charlie user", "query": gold(), "visibility": "shared", "users": ["ana"]}),
    )
    .await;
    save(
        t,
        &keys["ana"],
        json!({"id": "s-ana", "name": "Analyst own", "query": gold()}),
    )
    .await;
    save(t, A, json!({"id": "s-admin", "name": "Admin own", "query": gold()})).await;
    Matrix { keys }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_shows_owned_org_wide_and_shared_searches_pinned_first_then_by_name() {
    let t = TestApp::new().await;
    let m = matrix(&t).await;
    for (caller, key) in &m.keys {
        let list = t.get("/v1/saved-searches", key).await.expect(200);
        let want = listed(caller);
        assert_eq!(ids(&list), want, "{caller}: {list}");
        assert_eq!(list["total"], want.len(), "{caller}");
    }
    // Admins add ?all=true for every one of their org (and only their org).
    let all = t.get("/v1/saved-searches?all=true", A).await.expect(200);
    assert_eq!(
        ids(&all),
        vec!["s-org", "s-admin", "s-private", "s-ana", "s-team", "s-user"]
    );
    assert_eq!(all["total"], 6);
    let other = t.get("/v1/saved-searches?all=true", &m.keys["other"]).await.expect(200);
    assert_eq!(other["total"], 0, "{other}");
    // Anyone else asking for all: 403, agent and analyst alike.
    for caller in ["olive", "sam", "ana"] {
        assert_error(
            &t.get("/v1/saved-searches?all=true", &m.keys[caller]).await,
            403,
            caller,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visibility_matrix_holds_on_every_endpoint() {
    let t = TestApp::new().await;
    let m = matrix(&t).await;
    let gold_ids = vec!["c1", "c3", "c5"];
    for (caller, key) in &m.keys {
        let admin = *caller == "admin";
        for s in SEARCHES {
            let sees = listed(caller).contains(&s) || admin;
            let may_change = sees && (owner(s) == *caller || admin);
            let what = format!("{caller} on {s}");
            let base = format!("/v1/saved-searches/{s}");

            let r = t.get(&base, key).await;
            let r_res = t.get(&format!("{base}/results"), key).await;
            let r_count = t.get(&format!("{base}/count"), key).await;
            let r_nd = t.get(&format!("{base}/export?format=ndjson"), key).await;
            let r_csv = t.get(&format!("{base}/export?format=csv"), key).await;
            if sees {
                let got = r.expect(200);
                assert_eq!(got["id"], s, "{what}");
                assert_eq!(got["owner"], owner(s), "{what}");
                let res = r_res.expect(200);
                assert_eq!(ids(&res), gold_ids, "{what}");
                assert_eq!(res["total"], 3, "{what}");
                assert_eq!(res["nextCursor"], Value::Null, "{what}");
                assert_eq!(r_count.expect(200), json!({"total": 3}), "{what}");
                assert_eq!(r_nd.status.as_u16(), 200, "{what}: {}", r_nd.text);
                let mut nd: Vec<String> = r_nd
                    .text
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<Value>(l).unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_string()
                    })
                    .collect();
                nd.sort();
                assert_eq!(nd, gold_ids, "{what}");
                assert_eq!(r_csv.status.as_u16(), 200, "{what}: {}", r_csv.text);
                let mut rows = r_csv.text.lines();
                assert!(rows.next().unwrap().starts_with("id,"), "{what}");
                let mut csv_ids: Vec<&str> = rows.map(|l| l.split(',').next().unwrap()).collect();
                csv_ids.sort();
                assert_eq!(csv_ids, gold_ids, "{what}");
            } else {
                for (r, ep) in [
                    (r, "get"),
                    (r_res, "results"),
                    (r_count, "count"),
                    (r_nd, "export ndjson"),
                    (r_csv, "export csv"),
                ] {
                    assert_error(&r, 404, &format!("{what} {ep}"));
                }
            }

            // Changing and deleting: 404 unseen, 403 seen but not owned (non-admin).
            let r = t.patch(&base, key, json!({"pinned": s == "s-org"})).await;
            let d = t.delete(&base, key).await;
            if may_change {
                let p = r.expect(200);
                assert_eq!(p["owner"], owner(s), "{what}: an update keeps the owner");
                assert_eq!(d.status.as_u16(), 204, "{what}: {}", d.text);
                // Put it back as it was, as its owner.
                let owner_key = m.keys[owner(s)].clone();
                let restore = match s {
                    "s-private" => {
                        json!({"id": s, "name": "Alpha private", "query": gold(), "visibility": "private", "users": ["sam", "ana"], "teams": ["sales"]})
                    }
                    "s-team" => {
                        json!({"id": s, "name": "Bravo team", "query": gold(), "visibility": "shared", "teams": ["sales"]})
                    }
                    "s-org" => {
                        json!({"id": s, "name": "Zulu org", "query": gold(), "visibility": "org", "pinned": true})
                    }
                    "s-user" => {
                        json!({"id": s, "name": "Charlie user", "query": gold(), "visibility": "shared", "users": ["ana"]})
                    }
                    "s-ana" => json!({"id": s, "name": "Analyst own", "query": gold()}),
                    _ => json!({"id": s, "name": "Admin own", "query": gold()}),
                };
                save(&t, &owner_key, restore).await;
            } else if sees {
                assert_error(&r, 403, &format!("{what} patch"));
                assert_error(&d, 403, &format!("{what} delete"));
            } else {
                assert_error(&r, 404, &format!("{what} patch"));
                assert_error(&d, 404, &format!("{what} delete"));
            }
        }
    }
    // Nothing was lost or changed by the refused calls.
    let all = t.get("/v1/saved-searches?all=true", A).await.expect(200);
    assert_eq!(
        ids(&all),
        vec!["s-org", "s-admin", "s-private", "s-ana", "s-team", "s-user"]
    );
    let s = t.get("/v1/saved-searches/s-team", A).await.expect(200);
    assert_eq!(
        (s["name"].as_str(), s["owner"].as_str(), s["pinned"].as_bool()),
        (Some("Bravo team"), Some("olive"), Some(false))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_changes_and_deletes_someone_elses_private_search_but_a_teammate_cannot() {
    let t = TestApp::new().await;
    let m = matrix(&t).await;
    // The teammate sees the team search but may not change it.
    assert_error(
        &t.patch("/v1/saved-searches/s-team", &m.keys["sam"], json!({"name": "mine now"}))
            .await,
        403,
        "sam renames",
    );
    assert_error(
        &t.patch(
            "/v1/saved-searches/s-team",
            &m.keys["sam"],
            json!({"visibility": "org"}),
        )
        .await,
        403,
        "sam widens",
    );
    // The owner cannot be changed, even by its owner.
    let r = t
        .patch("/v1/saved-searches/s-team", &m.keys["olive"], json!({"owner": "sam"}))
        .await;
    assert!(matches!(r.status.as_u16(), 400 | 422), "{}", r.text);
    // The admin renames, reshares and finally deletes another user's searches.
    let p = t
        .patch("/v1/saved-searches/s-private", A, json!({"name": "Renamed by admin"}))
        .await
        .expect(200);
    assert_eq!(p["owner"], "olive");
    assert_eq!(
        t.get("/v1/saved-searches/s-private", &m.keys["olive"])
            .await
            .expect(200)["name"],
        "Renamed by admin"
    );
    // Shared with user zed now: zed sees it, sam (listed earlier under private) still does not.
    t.patch(
        "/v1/saved-searches/s-private",
        A,
        json!({"visibility": "shared", "users": ["zed"], "teams": []}),
    )
    .await
    .expect(200);
    t.get("/v1/saved-searches/s-private", &m.keys["zed"]).await.expect(200);
    assert_error(&t.get("/v1/saved-searches/s-private", &m.keys["sam"]).await, 404, "sam");
    assert!(ids(&t.get("/v1/saved-searches", &m.keys["zed"]).await.expect(200)).contains(&"s-private".to_string()));
    assert_eq!(t.delete("/v1/saved-searches/s-ana", A).await.status.as_u16(), 204);
    assert_error(
        &t.get("/v1/saved-searches/s-ana", &m.keys["ana"]).await,
        404,
        "deleted by admin",
    );
    assert_error(
        &t.get("/v1/saved-searches/s-ana", A).await,
        404,
        "deleted by admin, admin",
    );
    // Another org's admin cannot reach any of them, even with ?all=true.
    let other = &m.keys["other"];
    assert_error(
        &t.delete("/v1/saved-searches/s-org", other).await,
        404,
        "other org delete",
    );
    assert_error(
        &t.get("/v1/saved-searches/s-org/count", other).await,
        404,
        "other org count",
    );
    t.get("/v1/saved-searches/s-org", A).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_team_loses_its_saved_searches_at_once() {
    let t = TestApp::new().await;
    customers(&t).await;
    team(&t, "sales").await;
    team(&t, "support").await;
    let olive = t.user_key(A, "olive", "agent", &["sales"]).await;
    let sam = t.user_key(A, "sam", "agent", &["sales"]).await;
    let tom = t.user_key(A, "tom", "analyst", &["support"]).await;
    save(&t, &olive, json!({"id": "team-gold", "name": "Team gold", "query": gold(), "visibility": "shared", "teams": ["sales", "support"]})).await;
    save(
        &t,
        &olive,
        json!({"id": "sales-only", "name": "Sales only", "query": gold(), "visibility": "shared", "teams": ["sales"]}),
    )
    .await;
    for (who, key) in [("sam", &sam), ("tom", &tom)] {
        t.get("/v1/saved-searches/team-gold", key).await.expect(200);
        t.get("/v1/saved-searches/team-gold/count", key).await.expect(200);
        let segs = t.get("/v1/objects/customer/c1/saved-searches", key).await.expect(200);
        assert!(ids(&segs).contains(&"team-gold".to_string()), "{who}: {segs}");
    }
    assert_eq!(
        ids(&t.get("/v1/saved-searches", &sam).await.expect(200)),
        vec!["sales-only", "team-gold"]
    );

    // Removed from the team's members: sam loses both at once, everywhere.
    t.patch("/v1/teams/sales", A, json!({"members": ["olive"]}))
        .await
        .expect(200);
    assert_eq!(t.get("/v1/saved-searches", &sam).await.expect(200)["total"], 0);
    for ep in ["", "/results", "/count", "/export?format=ndjson"] {
        assert_error(
            &t.get(&format!("/v1/saved-searches/team-gold{ep}"), &sam).await,
            404,
            &format!("sam {ep}"),
        );
        assert_error(
            &t.get(&format!("/v1/saved-searches/sales-only{ep}"), &sam).await,
            404,
            &format!("sam {ep}"),
        );
    }
    assert_eq!(
        t.get("/v1/objects/customer/c1/saved-searches", &sam).await.expect(200)["data"],
        json!([])
    );
    assert_error(
        &t.post("/v1/reports", &sam, json!({"savedSearch": "team-gold", "aggs": {}}))
            .await,
        404,
        "sam report",
    );

    // Teams removed from the user itself: tom loses the one shared with support.
    t.patch("/v1/users/tom", A, json!({"teams": []})).await.expect(200);
    assert_error(&t.get("/v1/saved-searches/team-gold", &tom).await, 404, "tom");
    assert_error(
        &t.get("/v1/saved-searches/team-gold/results", &tom).await,
        404,
        "tom results",
    );
    assert_eq!(t.get("/v1/saved-searches", &tom).await.expect(200)["total"], 0);
    assert_eq!(
        t.get("/v1/objects/customer/c1/saved-searches", &tom).await.expect(200)["data"],
        json!([])
    );

    // The owner keeps them, and rejoining gives access back.
    assert_eq!(
        ids(&t.get("/v1/saved-searches", &olive).await.expect(200)),
        vec!["sales-only", "team-gold"]
    );
    t.patch("/v1/users/sam", A, json!({"teams": ["sales"]}))
        .await
        .expect(200);
    assert_eq!(
        t.get("/v1/saved-searches/team-gold/count", &sam).await.expect(200)["total"],
        3
    );
    assert_eq!(
        ids(&t.get("/v1/saved-searches", &sam).await.expect(200)),
        vec!["sales-only", "team-gold"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_page_by_cursor_and_refuse_a_bad_page_size_as_a_parameter() {
    let t = TestApp::new().await;
    for i in 0..7 {
        t.create(
            A,
            "customer",
            json!({"id": format!("g{i}"), "custom": {"tierStr": if i == 3 { "silver" } else { "gold" }}}),
        )
        .await;
    }
    save(&t, A, json!({"id": "golds", "name": "Golds", "query": {"queryContext": "customer", "and": [{"custom.tierStr": {"equals": "GOLD"}}], "sort": [{"id": "desc"}], "pageSize": 4}})).await;
    // The saved page size applies unless the caller gives one.
    let r = t.get("/v1/saved-searches/golds/results", A).await.expect(200);
    assert_eq!(ids(&r), vec!["g6", "g5", "g4", "g2"]);
    assert_eq!(r["total"], 6);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/v1/saved-searches/golds/results?pageSize=2&cursor={}",
                urlencoding::encode(c)
            ),
            None => "/v1/saved-searches/golds/results?pageSize=2".to_string(),
        };
        let r = t.get(&path, A).await.expect(200);
        assert_eq!(r["total"], 6);
        let page = ids(&r);
        assert!(page.len() <= 2);
        seen.extend(page);
        pages += 1;
        match r["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen, vec!["g6", "g5", "g4", "g2", "g1", "g0"]);
    assert_eq!(pages, 3);
    assert_eq!(
        t.get("/v1/saved-searches/golds/count", A).await.expect(200),
        json!({"total": 6})
    );

    for (q, param) in [
        ("pageSize=0", "pageSize"),
        ("pageSize=1001", "pageSize"),
        ("pageSize=abc", "pageSize"),
        ("cursor=garbage", "cursor"),
    ] {
        let r = t.get(&format!("/v1/saved-searches/golds/results?{q}"), A).await;
        assert_eq!(r.status.as_u16(), 400, "{q}: {}", r.text);
        assert_eq!(r.body["errors"][0]["source"]["parameter"], param, "{q}: {}", r.text);
    }
    t.get("/v1/saved-searches/golds/results?pageSize=1000", A)
        .await
        .expect(200);
    t.get("/v1/saved-searches/golds/results?pageSize=1", A)
        .await
        .expect(200);
    let r = t.get("/v1/saved-searches/golds/export?format=xml", A).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_error(&t.get("/v1/saved-searches/nope/results", A).await, 404, "unknown id");
    // It runs as it stands now: a new gold customer shows at once.
    t.create(A, "customer", json!({"id": "g9", "custom": {"tierStr": "Gold"}}))
        .await;
    assert_eq!(
        t.get("/v1/saved-searches/golds/count", A).await.expect(200),
        json!({"total": 7})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_search_on_a_removed_attribute_answers_409_outdated() {
    let t = TestApp::new().await;
    t.post("/v1/klasses", A, json!({"name": "order", "attributes": [{"name": "totalNum", "type": "number"}, {"name": "statusStr", "type": "string"}]}))
        .await
        .expect(201);
    t.create(
        A,
        "customer",
        json!({"id": "c1", "custom": {"tierStr": "gold", "countryStr": "US"}}),
    )
    .await;
    t.create(
        A,
        "order",
        json!({"id": "o1", "customer": "c1", "custom": {"totalNum": 10.0, "statusStr": "placed"}}),
    )
    .await;
    let agent = t.user_key(A, "olive", "agent", &[]).await;
    save(&t, &agent, json!({"id": "by-country", "name": "US", "query": {"queryContext": "customer", "and": [{"custom.countryStr": {"equals": "US"}}]}, "visibility": "org"})).await;
    save(&t, &agent, json!({"id": "placed", "name": "Placed", "query": {"queryContext": "customer", "and": [{"order.custom.statusStr": {"equals": "placed"}}]}, "visibility": "org"})).await;
    save(
        &t,
        &agent,
        json!({"id": "still-fine", "name": "Gold", "query": gold(), "visibility": "org"}),
    )
    .await;
    assert_eq!(
        t.get("/v1/saved-searches/by-country/count", &agent).await.expect(200)["total"],
        1
    );
    let segs = t
        .get("/v1/objects/customer/c1/saved-searches", &agent)
        .await
        .expect(200);
    assert_eq!(
        id_set(&segs),
        ["by-country", "placed", "still-fine"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    t.delete("/v1/klasses/customer/attributes/countryStr", A)
        .await
        .expect(204);
    t.delete("/v1/klasses/order/attributes/statusStr", A).await.expect(204);
    for id in ["by-country", "placed"] {
        for ep in ["/results", "/count", "/export?format=ndjson", "/export?format=csv"] {
            for key in [agent.as_str(), A] {
                let r = t.get(&format!("/v1/saved-searches/{id}{ep}"), key).await;
                assert_eq!(r.status.as_u16(), 409, "{id}{ep}: {}", r.text);
                assert_eq!(
                    r.body["errors"][0]["code"], "saved_search_outdated",
                    "{id}{ep}: {}",
                    r.text
                );
            }
        }
        let r = t
            .post(
                "/v1/reports",
                &agent,
                json!({"savedSearch": id, "aggs": {"n": {"value_count": {"field": "id"}}}}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 409, "report over {id}: {}", r.text);
        assert_eq!(r.body["errors"][0]["code"], "saved_search_outdated", "{}", r.text);
        // The saved search itself is still there to read, fix or delete.
        t.get(&format!("/v1/saved-searches/{id}"), &agent).await.expect(200);
    }
    // Segments skip an outdated saved search instead of failing.
    let segs = t
        .get("/v1/objects/customer/c1/saved-searches", &agent)
        .await
        .expect(200);
    assert_eq!(ids(&segs), vec!["still-fine"]);
    // Fixed by its owner, it runs again.
    t.patch(
        "/v1/saved-searches/by-country",
        &agent,
        json!({"query": {"queryContext": "customer", "and": [{"custom.tierStr": {"equals": "gold"}}]}}),
    )
    .await
    .expect(200);
    assert_eq!(
        t.get("/v1/saved-searches/by-country/count", &agent).await.expect(200)["total"],
        1
    );
    t.delete("/v1/saved-searches/placed", &agent).await.expect(204);
}

// ---- segments ----

struct Cust {
    id: String,
    tier: &'static str,
    country: &'static str,
    ltv: f64,
    vip: bool,
}

struct Order {
    customer: usize,
    total: f64,
    status: &'static str,
    month: u32,
}

fn segment_data() -> (Vec<Cust>, Vec<Order>) {
    let mut cs = Vec::new();
    let mut os = Vec::new();
    for i in 0..20usize {
        cs.push(Cust {
            id: format!("c{i:02}"),
            tier: ["gold", "silver", "bronze"][i % 3],
            country: if i % 2 == 0 { "US" } else { "CA" },
            ltv: ((i * 53) % 1000) as f64,
            vip: i % 5 == 0,
        });
        for j in 0..(i % 4) {
            os.push(Order {
                customer: i,
                total: ((i * 37 + j * 91) % 400) as f64,
                status: if (i + j) % 3 == 0 { "returned" } else { "placed" },
                month: ((i + j * 5) % 12) as u32 + 1,
            });
        }
    }
    (cs, os)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_agree_with_each_saved_searchs_results_and_with_the_data() {
    let t = TestApp::new().await;
    t.post("/v1/klasses", A, json!({"name": "order", "attributes": [
        {"name": "totalNum", "type": "number"}, {"name": "statusStr", "type": "string"}, {"name": "placedAt", "type": "date"}]}))
        .await
        .expect(201);
    let (cs, os) = segment_data();
    for c in &cs {
        let tags: Vec<&str> = if c.vip { vec!["vip"] } else { vec![] };
        t.create(
            A,
            "customer",
            json!({"id": c.id, "tags": tags, "custom": {"tierStr": c.tier, "countryStr": c.country, "ltvNum": c.ltv}}),
        )
        .await;
    }
    for (n, o) in os.iter().enumerate() {
        t.create(
            A,
            "order",
            json!({"id": format!("o{n:02}"), "customer": cs[o.customer].id,
            "custom": {"totalNum": o.total, "statusStr": o.status, "placedAt": format!("2025-{:02}-10", o.month)}}),
        )
        .await;
    }
    let seg = t.user_key(A, "seg", "agent", &[]).await;
    let sid = t.user_key(A, "sid", "agent", &[]).await;

    type Pred = Box<dyn Fn(&Cust, &[&Order]) -> bool>;
    let searches: Vec<(&str, Value, Pred)> = vec![
        (
            "gold",
            json!({"queryContext": "customer", "and": [{"custom.tierStr": {"equals": "gold"}}]}),
            Box::new(|c: &Cust, _: &[&Order]| c.tier == "gold"),
        ),
        (
            "big",
            json!({"queryContext": "customer", "and": [{"has": {"klass": "order", "and": [{"custom.totalNum": {"gte": 300}}]}}]}),
            Box::new(|_: &Cust, o: &[&Order]| o.iter().any(|o| o.total >= 300.0)),
        ),
        (
            "no-returns",
            json!({"queryContext": "customer", "not": [{"has": {"klass": "order", "and": [{"custom.statusStr": {"equals": "returned"}}]}}]}),
            Box::new(|_: &Cust, o: &[&Order]| !o.iter().any(|o| o.status == "returned")),
        ),
        (
            "few-orders",
            json!({"queryContext": "customer", "and": [{"has": {"klass": "order", "count": {"lte": 1}}}]}),
            Box::new(|_: &Cust, o: &[&Order]| o.len() <= 1),
        ),
        (
            "two-late",
            json!({"queryContext": "customer", "and": [{"has": {"klass": "order", "and": [{"custom.placedAt": {"gte": "2025-07-01"}}], "count": {"gte": 2}}}]}),
            Box::new(|_: &Cust, o: &[&Order]| o.iter().filter(|o| o.month >= 7).count() >= 2),
        ),
        (
            "vip-or-rich",
            json!({"queryContext": "customer", "or": [{"tags": {"equals": "vip"}}, {"custom.ltvNum": {"gte": 800}}]}),
            Box::new(|c: &Cust, _: &[&Order]| c.vip || c.ltv >= 800.0),
        ),
        (
            "ca-big-prefixed",
            json!({"queryContext": "customer", "and": [{"custom.countryStr": {"not_equals": "us"}}, {"order.custom.totalNum": {"gt": 150}}]}),
            Box::new(|c: &Cust, o: &[&Order]| c.country != "US" && o.iter().any(|o| o.total > 150.0)),
        ),
        (
            "recent-120d",
            json!({"queryContext": "customer", "now": "2026-01-01T00:00:00Z", "and": [{"has": {"klass": "order", "and": [{"custom.placedAt": {"within_last": "120d"}}]}}]}),
            // 2026-01-01 minus 120 days is 2025-09-03: orders placed on the 10th of September or later.
            Box::new(|_: &Cust, o: &[&Order]| o.iter().any(|o| o.month >= 9)),
        ),
        (
            "text-silver",
            json!({"queryContext": "customer", "text": "Silver"}),
            Box::new(|c: &Cust, _: &[&Order]| c.tier == "silver"),
        ),
        (
            "ltv-between-in",
            json!({"queryContext": "customer", "and": [{"custom.ltvNum": {"between": [200, 600]}}, {"custom.countryStr": {"in": ["ca", "MX"]}}]}),
            Box::new(|c: &Cust, _: &[&Order]| (200.0..=600.0).contains(&c.ltv) && c.country == "CA"),
        ),
        (
            // A prefixed path with a negative operator: some order whose status is not "placed".
            "prefixed-negative",
            json!({"queryContext": "customer", "and": [{"order.custom.statusStr": {"not_equals": "placed"}}]}),
            Box::new(|_: &Cust, o: &[&Order]| o.iter().any(|o| o.status != "placed")),
        ),
        (
            "nested-not",
            json!({"queryContext": "customer", "and": [
                {"or": [{"custom.tierStr": {"equals": "silver"}}, {"custom.tierStr": {"equals": "bronze"}}]},
                {"not": [{"has": {"klass": "order", "count": {"gte": 3}}}]},
                {"or": [{"custom.ltvNum": {"lt": 500}}, {"has": {"klass": "order", "and": [{"custom.statusStr": {"not_equals": "placed"}}]}}]}
            ]}),
            Box::new(|c: &Cust, o: &[&Order]| {
                c.tier != "gold" && o.len() < 3 && (c.ltv < 500.0 || o.iter().any(|o| o.status != "placed"))
            }),
        ),
    ];
    for (id, q, _) in &searches {
        save(&t, &seg, json!({"id": id, "name": id, "query": q})).await;
    }
    // Visible to seg: an org-wide one of sid's. Invisible: sid's private one. Other klass: an order search.
    save(&t, &sid, json!({"id": "sid-org-ca", "name": "CA", "visibility": "org", "query": {"queryContext": "customer", "and": [{"custom.countryStr": {"equals": "CA"}}]}})).await;
    save(
        &t,
        &sid,
        json!({"id": "sid-private", "name": "All", "query": {"queryContext": "customer"}}),
    )
    .await;
    save(
        &t,
        &seg,
        json!({"id": "orders", "name": "Orders", "query": {"queryContext": "order"}}),
    )
    .await;

    // Expected membership, from the data.
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, c) in cs.iter().enumerate() {
        let mine: Vec<&Order> = os.iter().filter(|o| o.customer == i).collect();
        let mut set: BTreeSet<String> = searches
            .iter()
            .filter(|(_, _, p)| p(c, &mine))
            .map(|(id, _, _)| id.to_string())
            .collect();
        if c.country == "CA" {
            set.insert("sid-org-ca".into());
        }
        expected.insert(c.id.clone(), set);
    }
    // Every search matches some customers and misses others, so the comparison means something.
    for (id, _, _) in &searches {
        let n = expected.values().filter(|s| s.contains(*id)).count();
        assert!(n > 0 && n < cs.len(), "{id} matches {n} of {}", cs.len());
    }

    // Segments of each customer, as seg sees them.
    let mut by_segments: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &cs {
        let r = t
            .get(&format!("/v1/objects/customer/{}/saved-searches", c.id), &seg)
            .await
            .expect(200);
        for s in r["data"].as_array().unwrap() {
            assert!(
                s["name"].is_string() && s["owner"].is_string() && s["query"].is_object(),
                "{s}"
            );
        }
        by_segments.insert(c.id.clone(), id_set(&r));
    }
    // The same, by running every visible customer saved search.
    let mut by_results: BTreeMap<String, BTreeSet<String>> =
        cs.iter().map(|c| (c.id.clone(), BTreeSet::new())).collect();
    let mut runnable: Vec<String> = searches.iter().map(|(id, _, _)| id.to_string()).collect();
    runnable.push("sid-org-ca".into());
    for s in &runnable {
        let r = t
            .get(&format!("/v1/saved-searches/{s}/results?pageSize=1000"), &seg)
            .await
            .expect(200);
        let n = t.get(&format!("/v1/saved-searches/{s}/count"), &seg).await.expect(200);
        assert_eq!(n["total"], r["total"], "{s}");
        assert_eq!(r["total"], ids(&r).len(), "{s}");
        for c in ids(&r) {
            by_results.get_mut(&c).unwrap().insert(s.clone());
        }
    }
    for c in &cs {
        assert_eq!(
            by_results[&c.id], expected[&c.id],
            "{}: results disagree with the data",
            c.id
        );
        assert_eq!(
            by_segments[&c.id], expected[&c.id],
            "{}: segments disagree with the data",
            c.id
        );
    }

    // Membership is "now": an order changes it at once.
    let c = &cs[4]; // c04: no orders yet (4 % 4 == 0).
    assert!(by_segments["c04"].contains("few-orders") && !by_segments["c04"].contains("big"));
    t.create(A, "order", json!({"id": "new1", "customer": c.id, "custom": {"totalNum": 350.0, "statusStr": "placed", "placedAt": "2025-12-01"}})).await;
    t.create(A, "order", json!({"id": "new2", "customer": c.id, "custom": {"totalNum": 5.0, "statusStr": "returned", "placedAt": "2025-11-01"}})).await;
    let segs = id_set(&t.get("/v1/objects/customer/c04/saved-searches", &seg).await.expect(200));
    for s in ["big", "two-late", "recent-120d"] {
        assert!(segs.contains(s), "c04 now in {s}: {segs:?}");
    }
    for s in ["few-orders", "no-returns"] {
        assert!(!segs.contains(s), "c04 no longer in {s}: {segs:?}");
    }
    assert!(ids(&t
        .get("/v1/saved-searches/big/results?pageSize=1000", &seg)
        .await
        .expect(200))
    .contains(&"c04".to_string()));

    // Other klasses, unknown objects.
    let r = t.get("/v1/objects/order/o01/saved-searches", &seg).await.expect(200);
    assert_eq!(ids(&r), vec!["orders"]);
    assert_error(
        &t.get("/v1/objects/customer/nobody/saved-searches", &seg).await,
        404,
        "unknown customer",
    );
}
