//! Search over HTTP: the query language end to end, errors naming the field, tenancy, exact
//! totals, cursor pagination under concurrent writes, count, export, schema, read-your-writes.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::{assert_invalid, TestApp, ADMIN_KEY as A};

async fn retail(t: &TestApp) {
    t.post("/v1/klasses", A, json!({"name": "order", "attributes": [
        {"name": "totalNum", "type": "number"}, {"name": "placedAt", "type": "date"}, {"name": "statusStr", "type": "string"}]}))
        .await
        .expect(201);
    let customers = [
        ("c1", "Ada Lovelace", "gold", "US", 900.0, true, vec!["vip"]),
        ("c2", "Alan Turing", "gold", "CA", 450.0, false, vec![]),
        ("c3", "Grace Hopper", "silver", "US", 1200.0, false, vec!["churned"]),
        ("c4", "Edsger Dijkstra", "gold", "NL", 700.0, false, vec![]),
        ("c5", "Barbara Liskov", "bronze", "US", 50.0, false, vec![]),
    ];
    for (id, name, tier, country, ltv, vip, tags) in customers {
        t.create(A, "customer", json!({"id": id, "name": name, "tags": tags,
            "custom": {"tierStr": tier, "countryStr": country, "ltvNum": ltv, "vipBool": vip, "bioTxt": format!("{name} refunds delayed shipments")}}))
            .await;
    }
    let orders = [
        ("o1", "c1", 250.0, "2025-12-05"),
        ("o2", "c1", 20.0, "2025-12-06"),
        ("o3", "c2", 300.0, "2025-11-01"),
        ("o4", "c4", 500.0, "2025-12-20"),
    ];
    for (id, c, total, at) in orders {
        t.create(
            A,
            "order",
            json!({"id": id, "customer": c, "custom": {"totalNum": total, "placedAt": at, "statusStr": "placed"}}),
        )
        .await;
    }
}

fn ids(v: &Value) -> Vec<&str> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_example_segment_finds_gold_north_americans_with_a_big_december_order() {
    let t = TestApp::new().await;
    retail(&t).await;
    let r = t
        .post("/v1/search", A, json!({
            "queryContext": "customer",
            "and": [
                {"custom.tierStr": {"equals": "gold"}},
                {"custom.countryStr": {"in": ["US", "CA"]}},
                {"or": [{"custom.ltvNum": {"gte": 500}}, {"custom.vipBool": {"equals": true}}]},
                {"has": {"klass": "order", "and": [{"custom.totalNum": {"gte": 200}}, {"custom.placedAt": {"gte": "2025-12-01"}}], "count": {"gte": 1}}}
            ],
            "not": [{"tags": {"equals": "churned"}}],
            "sort": [{"custom.ltvNum": "desc"}]
        }))
        .await
        .expect(200);
    assert_eq!(ids(&r), vec!["c1"]);
    assert_eq!(r["total"], 1);
    assert_eq!(r["nextCursor"], Value::Null);
}

/// An order linked to shipments by two relationships (`main`, one; `parcels`, many): `has`,
/// `not has` and klass-prefixed paths follow both, in both directions; a `count` counts a shipment
/// reached through both once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn has_follows_every_relationship_between_two_klasses() {
    let t = TestApp::new().await;
    t.post(
        "/v1/klasses",
        A,
        json!({"name": "shipment", "attributes": [{"name": "weight", "type": "number"}]}),
    )
    .await
    .expect(201);
    t.post(
        "/v1/klasses",
        A,
        json!({"name": "order", "relationships": [
        {"name": "main", "klass": "shipment", "cardinality": "one"},
        {"name": "parcels", "klass": "shipment", "cardinality": "many"}]}),
    )
    .await
    .expect(201);
    for (id, w) in [("sh-1", 1), ("sh-2", 2), ("sh-3", 3), ("sh-4", 4)] {
        t.create(A, "shipment", json!({"id": id, "custom": {"weight": w}}))
            .await;
    }
    t.create(
        A,
        "order",
        json!({"id": "or-0", "relationships": {"main": "sh-1", "parcels": ["sh-2", "sh-3"]}}),
    )
    .await;
    t.create(A, "order", json!({"id": "or-1", "relationships": {"main": "sh-2"}}))
        .await;
    t.create(
        A,
        "order",
        json!({"id": "or-2", "relationships": {"parcels": ["sh-3"]}}),
    )
    .await;
    t.create(A, "order", json!({"id": "or-3"})).await;
    let search = |body: Value| {
        let t = &t;
        async move {
            let mut got = t.search_ids(A, body).await;
            got.sort();
            got
        }
    };
    let heavy = json!({"has": {"klass": "shipment", "and": [{"custom.weight": {"gte": 3}}]}});
    assert_eq!(
        search(json!({"queryContext": "order", "and": [heavy.clone()]})).await,
        ["or-0", "or-2"]
    );
    assert_eq!(
        search(json!({"queryContext": "order", "not": [heavy]})).await,
        ["or-1", "or-3"]
    );
    assert_eq!(
        search(json!({"queryContext": "order", "and": [{"has": {"klass": "shipment"}}]})).await,
        ["or-0", "or-1", "or-2"]
    );
    assert_eq!(
        search(json!({"queryContext": "order", "and": [{"has": {"klass": "shipment", "count": {"equals": 0}}}]})).await,
        ["or-3"]
    );
    assert_eq!(
        search(json!({"queryContext": "order", "and": [{"shipment.custom.weight": {"gte": 3}}]})).await,
        ["or-0", "or-2"],
        "a klass prefix follows both relationships too"
    );
    // From the shipments' side.
    assert_eq!(
        search(json!({"queryContext": "shipment", "not": [{"has": {"klass": "order"}}]})).await,
        ["sh-4"]
    );
    assert_eq!(
        search(json!({"queryContext": "shipment", "and": [{"has": {"klass": "order", "and": [{"id": {"equals": "or-2"}}]}}]})).await,
        ["sh-3"]
    );
    // A relationship named explicitly follows only itself.
    assert_eq!(
        search(json!({"queryContext": "order", "and": [{"main.custom.weight": {"gte": 1}}]})).await,
        ["or-0", "or-1"]
    );
    assert_eq!(
        search(json!({"queryContext": "order", "and": [{"relationships.parcels": {"equals": "sh-3"}}]})).await,
        ["or-0", "or-2"]
    );
    // Counts: a shipment an order reaches through both relationships counts once.
    t.create(
        A,
        "order",
        json!({"id": "or-4", "relationships": {"main": "sh-3", "parcels": ["sh-3"]}}),
    )
    .await;
    let count = |ctx: &str, klass: &str, count: Value| json!({"queryContext": ctx, "and": [{"has": {"klass": klass, "count": count}}]});
    assert_eq!(search(count("order", "shipment", json!({"gte": 2}))).await, ["or-0"]);
    assert_eq!(
        search(count("order", "shipment", json!({"equals": 1}))).await,
        ["or-1", "or-2", "or-4"]
    );
    assert_eq!(
        search(count("shipment", "order", json!({"gte": 2}))).await,
        ["sh-2", "sh-3"]
    );
    assert_eq!(
        search(count("shipment", "order", json!({"equals": 3}))).await,
        ["sh-3"],
        "or-0, or-2 and or-4 (through both relationships, once)"
    );
    assert_eq!(
        search(
            json!({"queryContext": "shipment", "and": [{"has": {"klass": "order", "count": {"lte": 1},
            "and": [{"id": {"in": ["or-0", "or-4"]}}]}}]})
        )
        .await,
        ["sh-1", "sh-2", "sh-4"],
        "sh-3 is reached by or-0 and or-4; the others by one of them or none"
    );
    // The in-memory evaluator (an object's segments) counts the same way.
    for (id, ctx, klass, n) in [
        ("busy", "shipment", "order", json!({"gte": 2})),
        ("single", "order", "shipment", json!({"equals": 1})),
    ] {
        t.post(
            "/v1/saved-searches",
            A,
            json!({"id": id, "name": id, "query": count(ctx, klass, n)}),
        )
        .await
        .expect(201);
    }
    let segments = |klass: &'static str, id: &'static str| {
        let t = &t;
        async move {
            let r = t
                .get(&format!("/v1/objects/{klass}/{id}/saved-searches"), A)
                .await
                .expect(200);
            let mut names: Vec<String> = r["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_string())
                .collect();
            names.sort();
            names
        }
    };
    for (sh, busy) in [("sh-1", false), ("sh-2", true), ("sh-3", true), ("sh-4", false)] {
        assert_eq!(segments("shipment", sh).await == ["busy"], busy, "{sh}");
    }
    for (or, single) in [
        ("or-0", false),
        ("or-1", true),
        ("or-2", true),
        ("or-3", false),
        ("or-4", true),
    ] {
        assert_eq!(segments("order", or).await == ["single"], single, "{or}");
    }
}

/// `externalId` sorts (exactly, as it compares: it is an identifier), missing values last in
/// both directions, and pages by cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_sort_by_external_id() {
    let t = TestApp::new().await;
    for (id, ext) in [
        ("a", Some("EXT-2")),
        ("b", None),
        ("c", Some("EXT-10")),
        ("d", Some("EXT-1")),
    ] {
        let mut body = json!({"id": id, "name": id});
        if let Some(e) = ext {
            body["externalId"] = json!(e);
        }
        t.create(A, "customer", body).await;
    }
    let sorted = |dir: &str| json!({"queryContext": "customer", "sort": [{"externalId": dir}]});
    assert_eq!(t.search_ids(A, sorted("asc")).await, ["d", "c", "a", "b"]);
    assert_eq!(t.search_ids(A, sorted("desc")).await, ["a", "c", "d", "b"]);
    let mut body = sorted("asc");
    body["pageSize"] = json!(3);
    let first = t.post("/v1/search", A, body.clone()).await.expect(200);
    body["cursor"] = first["nextCursor"].clone();
    let second = t.post("/v1/search", A, body).await.expect(200);
    assert_eq!(second["data"][0]["id"], "b", "{second}");
    let schema = t.get("/v1/search/schema", A).await.expect(200);
    let ext = schema["klasses"]["customer"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "externalId")
        .unwrap()
        .clone();
    assert_eq!(ext["sortable"], true, "{ext}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_has_finds_customers_without_such_orders_and_counts_bound_exactly() {
    let t = TestApp::new().await;
    retail(&t).await;
    let none = json!({"queryContext": "customer", "not": [{"has": {"klass": "order", "and": [{"custom.totalNum": {"gte": 200}}]}}], "sort": [{"id": "asc"}]});
    assert_eq!(t.search_ids(A, none).await, vec!["c3", "c5"]);
    let at_most_one = json!({"queryContext": "customer", "and": [{"has": {"klass": "order", "count": {"lte": 1}}}], "sort": [{"id": "asc"}]});
    assert_eq!(t.search_ids(A, at_most_one).await, vec!["c2", "c3", "c4", "c5"]);
    let two = json!({"queryContext": "customer", "and": [{"has": {"klass": "order", "count": {"equals": 2}}}]});
    assert_eq!(t.search_ids(A, two).await, vec!["c1"]);
    let prefixed = json!({"queryContext": "customer", "and": [{"order.custom.totalNum": {"gt": 400}}]});
    assert_eq!(t.search_ids(A, prefixed).await, vec!["c4"]);
    let up = json!({"queryContext": "order", "and": [{"customer.custom.tierStr": {"equals": "gold"}}], "sort": [{"id": "asc"}]});
    assert_eq!(t.search_ids(A, up).await, vec!["o1", "o2", "o3", "o4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_400s_naming_the_field() {
    let t = TestApp::new().await;
    retail(&t).await;
    let cases = [
        (
            json!({"queryContext": "customer", "and": [{"custom.tierStr": {"gt": 5}}]}),
            "/and/0/custom.tierStr",
            "invalid_operator",
        ),
        (
            json!({"queryContext": "customer", "and": [{"custom.nope": {"equals": 1}}]}),
            "/and/0/custom.nope",
            "unknown_field",
        ),
        (
            json!({"queryContext": "customer", "and": [{"or": [{"custom.ltvNum": {"gte": "lots"}}]}]}),
            "/and/0/or/0/custom.ltvNum",
            "invalid_value",
        ),
        (
            json!({"queryContext": "customer", "and": [{"custom.bioTxt": {"equals": "x"}}]}),
            "/and/0/custom.bioTxt",
            "invalid_operator",
        ),
        (
            json!({"queryContext": "customer", "and": [{"has": {"klass": "note", "and": [{"body": {"contains": ""}}]}}]}),
            "/and/0/has/and/0/body",
            "invalid_value",
        ),
        (json!({"queryContext": "unicorn"}), "/queryContext", "unknown_klass"),
        (
            json!({"queryContext": "customer", "sort": [{"custom.bioTxt": "asc"}]}),
            "/sort/0/custom.bioTxt",
            "invalid_sort",
        ),
        (
            json!({"queryContext": "customer", "pageSize": 0}),
            "/pageSize",
            "invalid_page_size",
        ),
        (
            json!({"queryContext": "customer", "pageSize": 1001}),
            "/pageSize",
            "invalid_page_size",
        ),
        (
            json!({"queryContext": "customer", "cursor": "nope"}),
            "/cursor",
            "invalid_cursor",
        ),
        (
            json!({"queryContext": "customer", "and": [{"createdAt": {"gte": "yesterday"}}]}),
            "/and/0/createdAt",
            "invalid_value",
        ),
        (
            json!({"queryContext": "customer", "filters": []}),
            "/filters",
            "invalid_query",
        ),
    ];
    for (body, pointer, code) in cases {
        let r = t.post("/v1/search", A, body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(r.pointer(), Some(pointer), "{body}: {}", r.text);
        assert_eq!(r.body["errors"][0]["code"], code, "{body}: {}", r.text);
    }
    let r = t
        .raw("POST", "/v1/search", Some(A), Some(b"{not json".to_vec()), &[])
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(r.body["errors"][0]["code"], "malformed_json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_org_sees_nothing_of_this_one() {
    let t = TestApp::new().await;
    retail(&t).await;
    let other = t.new_org("other").await;
    let r = t
        .post("/v1/search", &other, json!({"queryContext": "customer"}))
        .await
        .expect(200);
    assert_eq!(r["total"], 0);
    let r = t.post("/v1/search", &other, json!({"queryContext": "order"})).await;
    assert_eq!(r.status.as_u16(), 400, "the other org has no klass `order`");
    assert_eq!(
        t.post("/v1/search/count", &other, json!({"queryContext": "customer"}))
            .await
            .expect(200)["total"],
        0
    );
    let own = t
        .post("/v1/search/count", A, json!({"queryContext": "customer"}))
        .await
        .expect(200);
    assert_eq!(own["total"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_with_wait_for_are_searchable_at_once_and_others_within_a_second() {
    let t = TestApp::new().await;
    for i in 0..20 {
        t.create(
            A,
            "customer",
            json!({"id": format!("w{i}"), "custom": {"tierStr": "gold"}}),
        )
        .await;
        let n = t
            .post(
                "/v1/search/count",
                A,
                json!({"queryContext": "customer", "and": [{"id": {"equals": format!("w{i}")}}]}),
            )
            .await
            .expect(200);
        assert_eq!(n["total"], 1, "w{i} visible right after the write");
    }
    t.post("/v1/objects/customer", A, json!({"id": "late"}))
        .await
        .expect(201);
    let started = std::time::Instant::now();
    loop {
        let n = t
            .post(
                "/v1/search/count",
                A,
                json!({"queryContext": "customer", "and": [{"id": {"equals": "late"}}]}),
            )
            .await
            .expect(200);
        if n["total"] == 1 {
            break;
        }
        assert!(started.elapsed().as_millis() < 1000, "not searchable within 1 s");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    t.patch(
        "/v1/objects/customer/late?refresh=wait_for",
        A,
        json!({"custom": {"tierStr": "silver"}}),
    )
    .await
    .expect(200);
    let r = t
        .post(
            "/v1/search",
            A,
            json!({"queryContext": "customer", "and": [{"custom.tierStr": {"equals": "silver"}}]}),
        )
        .await
        .expect(200);
    assert_eq!(ids(&r), vec!["late"]);
    t.delete("/v1/objects/customer/late?refresh=wait_for", A)
        .await
        .expect(204);
    let r = t
        .post(
            "/v1/search/count",
            A,
            json!({"queryContext": "customer", "and": [{"custom.tierStr": {"equals": "silver"}}]}),
        )
        .await
        .expect(200);
    assert_eq!(r["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_reaches_every_result_once_while_writes_continue() {
    let t = TestApp::new().await;
    let mut bulk = Vec::new();
    for i in 0..180 {
        // Equal ltv values across many customers exercise the id tie-break.
        bulk.push(json!({"id": format!("p{i:03}"), "custom": {"ltvNum": (i % 7) as f64, "tierStr": if i % 3 == 0 { "gold" } else { "silver" }}}));
    }
    for b in bulk {
        t.post("/v1/objects/customer", A, b).await.expect(201);
    }
    t.create(A, "customer", json!({"id": "sync"})).await;
    let query = |cursor: Value| json!({"queryContext": "customer", "and": [{"id": {"starts_with": "p"}}], "sort": [{"custom.ltvNum": "desc"}], "pageSize": 25, "cursor": cursor});
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    let mut page = 0;
    loop {
        let r = t.post("/v1/search", A, query(cursor.clone())).await.expect(200);
        assert!(r["total"].as_u64().unwrap() >= 180);
        seen.extend(ids(&r).into_iter().map(str::to_string));
        // New objects and updates of other fields while paging: the walk still sees each original once.
        t.post(
            "/v1/objects/customer",
            A,
            json!({"id": format!("q{page}"), "custom": {"ltvNum": 3.0}}),
        )
        .await
        .expect(201);
        page += 1;
        match r["nextCursor"].as_str() {
            Some(c) => cursor = json!(c),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 180, "no duplicates");
    assert_eq!(unique.len(), 180, "no gaps");
    // Order: ltv desc, then id desc.
    let all = t.post("/v1/search", A, json!({"queryContext": "customer", "and": [{"id": {"starts_with": "p"}}], "sort": [{"custom.ltvNum": "desc"}], "pageSize": 1000})).await.expect(200);
    let once: Vec<String> = ids(&all).into_iter().map(str::to_string).collect();
    assert_eq!(once, seen);
    assert!(once.windows(2).all(|w| {
        let ltv = |id: &str| id[1..].parse::<u32>().unwrap() % 7;
        (ltv(&w[0]), &w[0]) > (ltv(&w[1]), &w[1])
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_values_sort_last_both_ways_and_text_ranks_by_relevance() {
    let t = TestApp::new().await;
    retail(&t).await;
    t.create(A, "customer", json!({"id": "c6", "name": "No Ltv"})).await;
    for dir in ["asc", "desc"] {
        let r = t
            .post(
                "/v1/search",
                A,
                json!({"queryContext": "customer", "sort": [{"custom.ltvNum": dir}]}),
            )
            .await
            .expect(200);
        assert_eq!(*ids(&r).last().unwrap(), "c6", "{dir}");
    }
    let r = t
        .post(
            "/v1/search",
            A,
            json!({"queryContext": "customer", "sort": [{"name": "asc"}]}),
        )
        .await
        .expect(200);
    assert_eq!(
        ids(&r),
        vec!["c1", "c2", "c5", "c4", "c3", "c6"],
        "names sort case-insensitively: ada, alan, barbara, edsger, grace, no"
    );
    let r = t
        .post(
            "/v1/search",
            A,
            json!({"queryContext": "customer", "text": "grace refund"}),
        )
        .await
        .expect(200);
    assert_eq!(
        ids(&r),
        vec!["c3"],
        "every word must match: grace (a name word) and refund (stem of refunds)"
    );
    assert!(r["data"][0]["_score"].as_f64().unwrap() > 0.0);
    let r = t
        .post(
            "/v1/search",
            A,
            json!({"queryContext": "customer", "text": "hopper lovelace"}),
        )
        .await
        .expect(200);
    assert_eq!(r["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_dates_resolve_against_the_body_now() {
    let t = TestApp::new().await;
    retail(&t).await;
    let q = |now: &str| json!({"queryContext": "order", "now": now, "and": [{"custom.placedAt": {"within_last": "30d"}}], "sort": [{"id": "asc"}]});
    assert_eq!(t.search_ids(A, q("2026-01-01T00:00:00Z")).await, vec!["o1", "o2", "o4"]);
    assert_eq!(t.search_ids(A, q("2025-11-15T00:00:00Z")).await, vec!["o3"]);
    let not = json!({"queryContext": "order", "now": "2026-01-01T00:00:00Z", "and": [{"custom.placedAt": {"not_within_last": "30d"}}]});
    assert_eq!(t.search_ids(A, not).await, vec!["o3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_every_match_as_ndjson_and_csv() {
    let t = TestApp::new().await;
    retail(&t).await;
    let r = t
        .post(
            "/v1/search/export?format=ndjson",
            A,
            json!({"queryContext": "customer", "and": [{"custom.tierStr": {"equals": "gold"}}]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    let lines: Vec<Value> = r.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut got: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    got.sort();
    assert_eq!(got, vec!["c1", "c2", "c4"]);
    let r = t
        .post(
            "/v1/search/export?format=csv",
            A,
            json!({"queryContext": "customer", "sort": [{"id": "asc"}]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    let mut rows = r.text.lines();
    let header = rows.next().unwrap();
    assert!(
        header.starts_with("id,klass,externalId,createdAt,updatedAt,name,emails,phones,company,custom.bioTxt"),
        "{header}"
    );
    assert_eq!(rows.count(), 5);
    let r = t
        .post(
            "/v1/search/export?format=csv",
            A,
            json!({"queryContext": "customer", "fields": ["name", "tags"], "sort": [{"id": "asc"}]}),
        )
        .await;
    assert_eq!(r.text.lines().next().unwrap(), "id,name,tags");
    assert_eq!(r.text.lines().nth(1).unwrap(), "c1,Ada Lovelace,vip");
    // A column that is no field of the klass is a 400 naming it, not an empty column.
    for (fields, pointer) in [
        (json!(["name", "nope"]), "/fields/1"),
        (json!(["custom.nopeStr"]), "/fields/0"),
        (json!(["relationships.x"]), "/fields/0"),
    ] {
        let r = t
            .post(
                "/v1/search/export?format=csv",
                A,
                json!({"queryContext": "customer", "fields": fields}),
            )
            .await;
        let e = assert_invalid(&r, 400, pointer);
        assert_eq!(e["code"], "unknown_field", "{e}");
    }
    // A search's results do not use `fields`: they are not checked there.
    t.post("/v1/search", A, json!({"queryContext": "customer", "fields": ["nope"]}))
        .await
        .expect(200);
    let r = t
        .post("/v1/search/export?format=xml", A, json!({"queryContext": "customer"}))
        .await;
    assert_eq!(r.status.as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_schema_lists_fields_with_their_operators() {
    let t = TestApp::new().await;
    retail(&t).await;
    let r = t.get("/v1/search/schema", A).await.expect(200);
    let fields = r["klasses"]["order"]["fields"].as_array().unwrap();
    let total = fields.iter().find(|f| f["path"] == "custom.totalNum").unwrap();
    assert_eq!(total["type"], "number");
    assert_eq!(total["sortable"], true);
    assert!(total["operators"].as_array().unwrap().contains(&json!("between")));
    let body = r["klasses"]["message"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "body")
        .unwrap()
        .clone();
    assert_eq!(body["aggregatable"], false);
    assert_eq!(body["operators"], json!(["contains", "not_contains", "set"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_attribute_is_no_longer_searchable_or_returned() {
    let t = TestApp::new().await;
    retail(&t).await;
    t.delete("/v1/klasses/customer/attributes/countryStr", A)
        .await
        .expect(204);
    let r = t
        .post(
            "/v1/search",
            A,
            json!({"queryContext": "customer", "and": [{"custom.countryStr": {"equals": "US"}}]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400);
    let c = t.get("/v1/objects/customer/c1", A).await.expect(200);
    assert!(c["custom"].get("countryStr").is_none());
    // Declared again with another type: the old values do not come back.
    t.patch(
        "/v1/klasses/customer",
        A,
        json!({"attributes": [{"name": "countryStr", "type": "number"}]}),
    )
    .await
    .expect(200);
    let c = t.get("/v1/objects/customer/c1", A).await.expect(200);
    assert!(c["custom"].get("countryStr").is_none());
    let r = t
        .post(
            "/v1/search/count",
            A,
            json!({"queryContext": "customer", "and": [{"custom.countryStr": {"set": true}}]}),
        )
        .await
        .expect(200);
    assert_eq!(r["total"], 0);
}
