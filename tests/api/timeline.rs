//! Timelines over HTTP: every object linked to a customer (or a company and its customers), newest
//! first with ids breaking ties, across klasses; cursor pages that visit each object exactly once;
//! the klasses filter; POST filters whose paths start with the listed object's klass, including
//! what negation means for objects of other klasses; the errors.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::{ids, TestApp, ADMIN_KEY as A};

const T0: &str = "2025-03-01T10:00:00.000Z";
const T1: &str = "2025-03-02T10:00:00.000Z";
const T2: &str = "2025-03-03T10:00:00.000Z";
const T3: &str = "2025-03-04T10:00:00.000Z";

/// One object of the fixture: id, klass, createdAt, the rest of its body.
struct Item {
    id: &'static str,
    klass: &'static str,
    at: &'static str,
    body: Value,
}

fn item(id: &'static str, klass: &'static str, at: &'static str, body: Value) -> Item {
    Item { id, klass, at, body }
}

/// The objects of customer `cu`. Many share a createdAt, across klasses; `O-5` sorts below the
/// lowercase ids (ids compare byte-wise).
fn cu_items() -> Vec<Item> {
    vec![
        item(
            "cv-a",
            "conversation",
            T1,
            json!({"customer": "cu", "subject": "refund request", "status": "open"}),
        ),
        item(
            "m-a1",
            "message",
            T1,
            json!({"conversation": "cv-a", "direction": "in", "body": "I want a refund"}),
        ),
        item(
            "m-a2",
            "message",
            T2,
            json!({"conversation": "cv-a", "direction": "out", "body": "refund issued"}),
        ),
        item(
            "o-1",
            "order",
            T2,
            json!({"customer": "cu", "custom": {"totalNum": 150.0, "statusStr": "placed"}}),
        ),
        item(
            "o-2",
            "order",
            T2,
            json!({"customer": "cu", "custom": {"totalNum": 50.0, "statusStr": "returned"}}),
        ),
        item("n-1", "note", T2, json!({"customer": "cu", "body": "called back"})),
        item(
            "O-5",
            "order",
            T2,
            json!({"customer": "cu", "custom": {"totalNum": 120.0, "statusStr": "placed"}}),
        ),
        item(
            "cv-b",
            "conversation",
            T3,
            json!({"customer": "cu", "subject": "thanks", "status": "done"}),
        ),
        item(
            "o-3",
            "order",
            T3,
            json!({"customer": "cu", "custom": {"totalNum": 300.0, "statusStr": "placed"}}),
        ),
        item(
            "m-b1",
            "message",
            T3,
            json!({"conversation": "cv-b", "direction": "in", "body": "thanks a lot"}),
        ),
        item(
            "o-4",
            "order",
            T0,
            json!({"customer": "cu", "custom": {"statusStr": "placed"}}),
        ),
        item("n-2", "note", T0, json!({"customer": "cu", "body": "first contact"})),
    ]
}

/// Objects of the company's other customer, of a customer outside it, and of the company alone.
fn other_items() -> Vec<Item> {
    vec![
        item(
            "cv-x",
            "conversation",
            T2,
            json!({"customer": "cx", "subject": "other person", "status": "open"}),
        ),
        item(
            "m-x1",
            "message",
            T2,
            json!({"conversation": "cv-x", "direction": "in", "body": "refund please"}),
        ),
        item(
            "o-x",
            "order",
            T3,
            json!({"customer": "cx", "custom": {"totalNum": 999.0, "statusStr": "placed"}}),
        ),
        item(
            "cv-c2",
            "conversation",
            T1,
            json!({"customer": "cu2", "subject": "hello", "status": "open"}),
        ),
        item(
            "o-both",
            "order",
            T0,
            json!({"customer": "cu2", "company": "co1", "custom": {"totalNum": 10.0, "statusStr": "placed"}}),
        ),
        item(
            "o-co",
            "order",
            T2,
            json!({"company": "co1", "custom": {"totalNum": 500.0, "statusStr": "placed"}}),
        ),
    ]
}

async fn fixture(t: &TestApp) {
    t.post("/v1/klasses", A, json!({"name": "order", "attributes": [{"name": "totalNum", "type": "number"}, {"name": "statusStr", "type": "string"}]}))
        .await
        .expect(201);
    t.create(
        A,
        "company",
        json!({"id": "co1", "name": "Acme", "createdAt": "2024-12-01T00:00:00.000Z"}),
    )
    .await;
    t.create(
        A,
        "company",
        json!({"id": "co2", "name": "Empty", "createdAt": "2024-12-01T00:00:00.000Z"}),
    )
    .await;
    t.create(
        A,
        "customer",
        json!({"id": "cu", "name": "Cu", "company": "co1", "createdAt": "2025-01-01T00:00:00.000Z"}),
    )
    .await;
    t.create(
        A,
        "customer",
        json!({"id": "cu2", "name": "Cu Two", "company": "co1", "createdAt": "2025-02-01T00:00:00.000Z"}),
    )
    .await;
    t.create(
        A,
        "customer",
        json!({"id": "cx", "name": "Outsider", "createdAt": "2025-01-15T00:00:00.000Z"}),
    )
    .await;
    t.create(
        A,
        "customer",
        json!({"id": "lonely", "createdAt": "2025-01-20T00:00:00.000Z"}),
    )
    .await;
    for it in cu_items().into_iter().chain(other_items()) {
        let mut body = it.body.clone();
        body["id"] = json!(it.id);
        body["createdAt"] = json!(it.at);
        t.create(A, it.klass, body).await;
    }
}

/// Newest createdAt first, ties by id descending (byte-wise).
fn ordered<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut v: Vec<(&str, &str)> = items.into_iter().collect();
    v.sort_by(|a, b| b.0.cmp(a.0).then(b.1.as_bytes().cmp(a.1.as_bytes())));
    v.into_iter().map(|(_, id)| id.to_string()).collect()
}

fn cu_order() -> Vec<String> {
    let items = cu_items();
    ordered(items.iter().map(|i| (i.at, i.id)).collect::<Vec<_>>())
}

/// The full customer order, keeping only `keep`.
fn cu_only(keep: &[&str]) -> Vec<String> {
    let keep: BTreeSet<&str> = keep.iter().copied().collect();
    assert!(keep.iter().all(|k| cu_items().iter().any(|i| i.id == *k)), "{keep:?}");
    cu_order().into_iter().filter(|id| keep.contains(id.as_str())).collect()
}

/// The full customer order without `drop`.
fn cu_without(drop: &[&str]) -> Vec<String> {
    assert!(drop.iter().all(|k| cu_items().iter().any(|i| i.id == *k)), "{drop:?}");
    cu_order()
        .into_iter()
        .filter(|id| !drop.contains(&id.as_str()))
        .collect()
}

/// Walks a GET timeline with `pageSize` and returns every id in order, checking each page.
async fn walk_get(t: &TestApp, key: &str, base: &str, size: usize, total: usize) -> Vec<String> {
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("{base}{sep}pageSize={size}&cursor={}", urlencoding::encode(c)),
            None => format!("{base}{sep}pageSize={size}"),
        };
        let r = t.get(&path, key).await.expect(200);
        assert_eq!(r["total"], total, "{path}: {r}");
        let page = ids(&r);
        assert!(page.len() <= size, "{path}: {r}");
        out.extend(page.iter().cloned());
        match r["nextCursor"].as_str() {
            Some(c) => {
                assert_eq!(page.len(), size, "a page before the last is full: {path}");
                cursor = Some(c.to_string());
            }
            None => return out,
        }
    }
    panic!("paging {base} does not end");
}

/// Walks a POST timeline, the filter in `body`, paging with the body's pageSize and cursor.
async fn walk_post(t: &TestApp, path: &str, body: Value, size: usize) -> (Vec<String>, Value) {
    let mut out = Vec::new();
    let mut cursor = Value::Null;
    let mut total = Value::Null;
    for _ in 0..100 {
        let mut b = body.clone();
        b["pageSize"] = json!(size);
        b["cursor"] = cursor.clone();
        let r = t.post(path, A, b.clone()).await.expect(200);
        if total.is_null() {
            total = r["total"].clone();
        }
        assert_eq!(r["total"], total, "total is stable across pages: {b}");
        let page = ids(&r);
        assert!(page.len() <= size);
        out.extend(page);
        match r["nextCursor"].as_str() {
            Some(c) => cursor = json!(c),
            None => return (out, total),
        }
    }
    panic!("paging {path} {body} does not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_timeline_lists_every_linked_object_newest_first_with_ids_breaking_ties() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let want = cu_order();
    assert_eq!(
        want,
        vec!["o-3", "m-b1", "cv-b", "o-2", "o-1", "n-1", "m-a2", "O-5", "m-a1", "cv-a", "o-4", "n-2"],
        "the fixture's own order"
    );
    let r = t.get("/v1/objects/customer/cu/timeline", A).await.expect(200);
    assert_eq!(ids(&r), want);
    assert_eq!(r["total"], 12);
    assert_eq!(r["nextCursor"], Value::Null);
    // Whole objects, each with its klass and createdAt; messages carry their conversation.
    for o in r["data"].as_array().unwrap() {
        let it = cu_items().into_iter().find(|i| i.id == o["id"]).unwrap();
        assert_eq!(o["klass"], it.klass, "{o}");
        assert_eq!(o["createdAt"], it.at, "{o}");
        assert_eq!(o["customer"], "cu", "{o}");
        if it.klass == "message" {
            assert_eq!(o["conversation"], it.body["conversation"], "{o}");
            assert_eq!(o["body"], it.body["body"], "{o}");
        }
    }
    // An analyst reads timelines too.
    let analyst = t.user_key(A, "ana", "analyst", &[]).await;
    assert_eq!(
        ids(&t.get("/v1/objects/customer/cu/timeline", &analyst).await.expect(200)),
        want
    );
    // Other customers' timelines are their own.
    let r = t.get("/v1/objects/customer/cx/timeline", A).await.expect(200);
    assert_eq!(ids(&r), vec!["o-x", "m-x1", "cv-x"]);
    let r = t.get("/v1/objects/customer/lonely/timeline", A).await.expect(200);
    assert_eq!(r["total"], 0);
    assert_eq!(r["data"], json!([]));
    assert_eq!(r["nextCursor"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_pages_of_two_and_three_visit_every_object_once_in_order() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let want = cu_order();
    for size in [1, 2, 3, 5, 12, 13] {
        let got = walk_get(&t, A, "/v1/objects/customer/cu/timeline", size, 12).await;
        assert_eq!(got, want, "pages of {size}");
    }
    for size in [2, 3] {
        let (got, total) = walk_post(&t, "/v1/objects/customer/cu/timeline", json!({}), size).await;
        assert_eq!(got, want, "POST pages of {size}");
        assert_eq!(total, 12);
    }
    // New objects with older timestamps, written while walking, do not disturb the pages already
    // handed out: the walk still sees every original once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut n = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/v1/objects/customer/cu/timeline?pageSize=3&cursor={}",
                urlencoding::encode(c)
            ),
            None => "/v1/objects/customer/cu/timeline?pageSize=3".to_string(),
        };
        let r = t.get(&path, A).await.expect(200);
        seen.extend(ids(&r));
        t.create(A, "note", json!({"id": format!("late-{n}"), "customer": "cu", "createdAt": "2024-01-01T00:00:00.000Z", "body": "old"})).await;
        n += 1;
        match r["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let originals: Vec<String> = seen.iter().filter(|id| !id.starts_with("late-")).cloned().collect();
    assert_eq!(originals, want);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no object twice: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_klasses_parameter_keeps_only_those_klasses() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let r = t
        .get("/v1/objects/customer/cu/timeline?klasses=conversation,order", A)
        .await
        .expect(200);
    let want = cu_only(&["cv-a", "cv-b", "o-1", "o-2", "o-3", "o-4", "O-5"]);
    assert_eq!(ids(&r), want);
    assert_eq!(r["total"], 7);
    assert_eq!(
        walk_get(
            &t,
            A,
            "/v1/objects/customer/cu/timeline?klasses=conversation,order",
            2,
            7
        )
        .await,
        want
    );
    let r = t
        .get("/v1/objects/customer/cu/timeline?klasses=message", A)
        .await
        .expect(200);
    assert_eq!(ids(&r), cu_only(&["m-a1", "m-a2", "m-b1"]));
    for o in r["data"].as_array().unwrap() {
        assert_eq!(o["klass"], "message");
        assert!(o["conversation"] == "cv-a" || o["conversation"] == "cv-b", "{o}");
    }
    let r = t
        .get("/v1/objects/customer/cu/timeline?klasses=note", A)
        .await
        .expect(200);
    assert_eq!(ids(&r), vec!["n-1", "n-2"]);
    // A klass with nothing linked: an empty page.
    t.post(
        "/v1/klasses",
        A,
        json!({"name": "visit", "attributes": [{"name": "pageStr", "type": "string"}]}),
    )
    .await
    .expect(201);
    let r = t
        .get("/v1/objects/customer/cu/timeline?klasses=visit", A)
        .await
        .expect(200);
    assert_eq!(r["total"], 0);
    // The same filter in a POST body.
    let r = t
        .post(
            "/v1/objects/customer/cu/timeline",
            A,
            json!({"klasses": ["note", "message"]}),
        )
        .await
        .expect(200);
    assert_eq!(ids(&r), cu_only(&["n-1", "n-2", "m-a1", "m-a2", "m-b1"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_errors_name_the_parameter_and_unknown_owners_are_404() {
    let t = TestApp::new().await;
    fixture(&t).await;
    for (q, param) in [
        ("klasses=unicorn", "klasses"),
        ("klasses=order,unicorn", "klasses"),
        ("pageSize=0", "pageSize"),
        ("pageSize=1001", "pageSize"),
        ("pageSize=lots", "pageSize"),
    ] {
        let r = t.get(&format!("/v1/objects/customer/cu/timeline?{q}"), A).await;
        assert_eq!(r.status.as_u16(), 400, "{q}: {}", r.text);
        assert_eq!(r.body["errors"][0]["source"]["parameter"], param, "{q}: {}", r.text);
    }
    t.get("/v1/objects/customer/cu/timeline?pageSize=1000", A)
        .await
        .expect(200);
    for path in [
        "/v1/objects/customer/nobody/timeline",
        "/v1/objects/company/nobody/timeline",
        "/v1/objects/conversation/cv-a/timeline",
        "/v1/objects/order/o-1/timeline",
        "/v1/objects/message/m-a1/timeline",
        "/v1/objects/unicorn/x/timeline",
    ] {
        let r = t.get(path, A).await;
        assert_eq!(r.status.as_u16(), 404, "{path}: {}", r.text);
        let r = t.post(path, A, json!({})).await;
        assert_eq!(r.status.as_u16(), 404, "POST {path}: {}", r.text);
    }
    // Another org does not see this org's customer.
    let other = t.new_org("other").await;
    assert_eq!(
        t.get("/v1/objects/customer/cu/timeline", &other).await.status.as_u16(),
        404
    );
    // POST body errors: pointers into the body.
    let cases = [
        (
            json!({"and": [{"custom.totalNum": {"gte": 1}}]}),
            "/and/0/custom.totalNum",
        ),
        (
            json!({"and": [{"order.custom.nope": {"equals": 1}}]}),
            "/and/0/order.custom.nope",
        ),
        (
            json!({"not": [{"order.custom.totalNum": {"gte": "many"}}]}),
            "/not/0/order.custom.totalNum",
        ),
        (
            json!({"or": [{"order.custom.statusStr": {"gt": 1}}]}),
            "/or/0/order.custom.statusStr",
        ),
        (json!({"and": [{"unicorn.horn": {"equals": 1}}]}), "/and/0/unicorn.horn"),
        (json!({"klasses": ["order", "unicorn"]}), "/klasses/1"),
        (json!({"pageSize": 0}), "/pageSize"),
        (json!({"cursor": "garbage"}), "/cursor"),
        (json!({"queryContext": "order"}), "/queryContext"),
        (
            json!({"now": "whenever", "and": [{"order.createdAt": {"within_last": "1d"}}]}),
            "/now",
        ),
    ];
    for (body, pointer) in cases {
        let r = t.post("/v1/objects/customer/cu/timeline", A, body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(r.pointer(), Some(pointer), "{body}: {}", r.text);
    }
    let r = t
        .post(
            "/v1/objects/customer/cu/timeline",
            A,
            json!({"and": [{"has": {"klass": "order"}}]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_filters_hold_on_the_listed_objects_klass_and_negations_keep_other_klasses() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let all_orders_100 = ["o-1", "o-3", "O-5"];
    let cases: Vec<(Value, Vec<String>)> = vec![
        // Positive conditions hold only on objects of the named klass.
        (
            json!({"and": [{"order.custom.totalNum": {"gte": 100}}]}),
            cu_only(&all_orders_100),
        ),
        // o-4 has no total: a positive operator is false on a missing value.
        (
            json!({"and": [{"order.custom.totalNum": {"lt": 100}}]}),
            cu_only(&["o-2"]),
        ),
        // A negated clause: every object that is not an order of 100 or more, o-4 included.
        (
            json!({"not": [{"order.custom.totalNum": {"gte": 100}}]}),
            cu_without(&all_orders_100),
        ),
        // Negative operators hold on objects of other klasses, which have no value there.
        (
            json!({"and": [{"order.custom.statusStr": {"not_equals": "returned"}}]}),
            cu_without(&["o-2"]),
        ),
        (
            json!({"and": [{"order.custom.statusStr": {"not_in": ["placed", "lost"]}}]}),
            cu_without(&["o-1", "o-3", "o-4", "O-5"]),
        ),
        (
            json!({"and": [{"order.custom.totalNum": {"set": false}}]}),
            cu_without(&["o-1", "o-2", "o-3", "O-5"]),
        ),
        (
            json!({"and": [{"order.custom.totalNum": {"set": true}}]}),
            cu_only(&["o-1", "o-2", "o-3", "O-5"]),
        ),
        (
            json!({"and": [{"conversation.status": {"not_equals": "done"}}]}),
            cu_without(&["cv-b"]),
        ),
        (
            json!({"and": [{"conversation.status": {"equals": "done"}}]}),
            cu_only(&["cv-b"]),
        ),
        // Either klass.
        (
            json!({"or": [{"order.custom.totalNum": {"gte": 200}}, {"message.direction": {"equals": "in"}}]}),
            cu_only(&["o-3", "m-a1", "m-b1"]),
        ),
        (
            json!({"and": [{"or": [{"order.custom.statusStr": {"equals": "RETURNED"}}, {"note.body": {"contains": "contact"}}]}]}),
            cu_only(&["o-2", "n-2"]),
        ),
        // Text attributes of the klass, with stemming.
        (
            json!({"and": [{"message.body": {"contains": "refunds"}}]}),
            cu_only(&["m-a1", "m-a2"]),
        ),
        (
            json!({"and": [{"message.body": {"not_contains": "refund"}}]}),
            cu_without(&["m-a1", "m-a2"]),
        ),
        // Free text over any klass's text and string attributes.
        (json!({"text": "refund"}), cu_only(&["cv-a", "m-a1", "m-a2"])),
        // ... or over the listed klasses' only.
        (
            json!({"text": "refund", "klasses": ["message"]}),
            cu_only(&["m-a1", "m-a2"]),
        ),
        (
            json!({"text": "refund", "klasses": ["conversation", "order"]}),
            cu_only(&["cv-a"]),
        ),
        // Common fields through the klass prefix.
        (json!({"and": [{"note.createdAt": {"gte": T2}}]}), cu_only(&["n-1"])),
        (
            json!({"and": [{"order.createdAt": {"within_last": "1d"}}], "now": "2025-03-04T12:00:00Z"}),
            cu_only(&["o-3"]),
        ),
        (
            json!({"and": [{"order.createdAt": {"within_last": "2d"}}], "now": "2025-03-04T12:00:00Z"}),
            cu_only(&["o-1", "o-2", "o-3", "O-5"]),
        ),
        (
            json!({"not": [{"order.createdAt": {"within_last": "2d"}}], "now": "2025-03-04T12:00:00Z"}),
            cu_without(&["o-1", "o-2", "o-3", "O-5"]),
        ),
        (
            json!({"and": [{"message.id": {"in": ["m-a1", "m-b1", "o-1"]}}]}),
            cu_only(&["m-a1", "m-b1"]),
        ),
        // klasses and a filter together.
        (
            json!({"klasses": ["order"], "not": [{"order.custom.totalNum": {"gte": 100}}]}),
            cu_only(&["o-2", "o-4"]),
        ),
        (
            json!({"klasses": ["order", "note"], "and": [{"order.custom.statusStr": {"not_equals": "placed"}}]}),
            cu_only(&["o-2", "n-1", "n-2"]),
        ),
        // A path over another klass's attribute only: nothing matches, nothing fails.
        (
            json!({"and": [{"order.custom.totalNum": {"gte": 100}}, {"note.body": {"contains": "called"}}]}),
            vec![],
        ),
    ];
    for (body, want) in cases {
        let r = t.post("/v1/objects/customer/cu/timeline", A, body.clone()).await;
        let r = match r.status.as_u16() {
            200 => r.body,
            _ => panic!("{body}: {} {}", r.status, r.text),
        };
        assert_eq!(ids(&r), want, "{body}");
        assert_eq!(r["total"], want.len(), "{body}");
        assert_eq!(r["nextCursor"], Value::Null, "{body}");
        // And walked in pages of two.
        let (walked, total) = walk_post(&t, "/v1/objects/customer/cu/timeline", body.clone(), 2).await;
        assert_eq!(walked, want, "{body} in pages of 2");
        assert_eq!(total, want.len(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_timeline_holds_its_objects_its_customers_and_their_objects() {
    let t = TestApp::new().await;
    fixture(&t).await;
    let mut items: Vec<(&str, &str)> = cu_items().iter().map(|i| (i.at, i.id)).collect();
    items.extend([
        ("2025-01-01T00:00:00.000Z", "cu"),
        ("2025-02-01T00:00:00.000Z", "cu2"),
        (T1, "cv-c2"),
        (T0, "o-both"),
        (T2, "o-co"),
    ]);
    let want = ordered(items);
    assert_eq!(want.len(), 17);
    let r = t.get("/v1/objects/company/co1/timeline", A).await.expect(200);
    assert_eq!(ids(&r), want);
    assert_eq!(r["total"], 17);
    assert_eq!(r["nextCursor"], Value::Null);
    assert!(
        !ids(&r)
            .iter()
            .any(|id| ["co1", "cx", "cv-x", "m-x1", "o-x"].contains(&id.as_str())),
        "neither the company itself nor outsiders: {r}"
    );
    // o-both is linked both ways yet listed once; pages of 2 and 3 see every object once.
    for size in [2, 3] {
        assert_eq!(
            walk_get(&t, A, "/v1/objects/company/co1/timeline", size, 17).await,
            want,
            "pages of {size}"
        );
    }
    let r = t
        .get("/v1/objects/company/co1/timeline?klasses=customer", A)
        .await
        .expect(200);
    assert_eq!(ids(&r), vec!["cu2", "cu"]);
    let r = t
        .get("/v1/objects/company/co1/timeline?klasses=order", A)
        .await
        .expect(200);
    let orders: Vec<String> = want
        .iter()
        .filter(|id| id.starts_with("o-") || id.starts_with("O-"))
        .cloned()
        .collect();
    assert_eq!(ids(&r), orders);
    assert_eq!(orders.len(), 7);
    // POST filters work the same way here.
    let r = t
        .post(
            "/v1/objects/company/co1/timeline",
            A,
            json!({"and": [{"order.custom.totalNum": {"gte": 100}}]}),
        )
        .await
        .expect(200);
    let big: Vec<String> = want
        .iter()
        .filter(|id| ["o-1", "o-3", "O-5", "o-co"].contains(&id.as_str()))
        .cloned()
        .collect();
    assert_eq!(ids(&r), big);
    let r = t
        .post(
            "/v1/objects/company/co1/timeline",
            A,
            json!({"not": [{"customer.name": {"equals": "cu two"}}], "klasses": ["customer", "conversation"]}),
        )
        .await
        .expect(200);
    assert_eq!(ids(&r), vec!["cv-b", "cv-c2", "cv-a", "cu"]);
    // An empty company.
    let r = t.get("/v1/objects/company/co2/timeline", A).await.expect(200);
    assert_eq!(r["total"], 0);
    // Moving a customer out of the company moves its objects out of the company timeline at once.
    t.patch("/v1/objects/customer/cu2?refresh=wait_for", A, json!({"company": null}))
        .await
        .expect(200);
    let r = t.get("/v1/objects/company/co1/timeline", A).await.expect(200);
    let without: Vec<String> = want
        .iter()
        .filter(|id| !["cu2", "cv-c2"].contains(&id.as_str()))
        .cloned()
        .collect();
    assert_eq!(ids(&r), without, "o-both stays: it is linked to co1 itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cursor_in_the_query_string_is_named_as_a_parameter() {
    let t = TestApp::new().await;
    fixture(&t).await;
    for path in [
        "/v1/objects/customer/cu/timeline?cursor=garbage",
        "/v1/objects/company/co1/timeline?pageSize=2&cursor=garbage",
    ] {
        let r = t.get(path, A).await;
        assert_eq!(r.status.as_u16(), 400, "{path}: {}", r.text);
        assert_eq!(r.body["errors"][0]["code"], "invalid_cursor", "{path}: {}", r.text);
        assert_eq!(
            r.body["errors"][0]["source"],
            json!({"parameter": "cursor"}),
            "{path}: {}",
            r.text
        );
    }
    // In a POST body it is a pointer.
    let r = t
        .post("/v1/objects/customer/cu/timeline", A, json!({"cursor": "garbage"}))
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_eq!(r.pointer(), Some("/cursor"), "{}", r.text);
}
