//! Integration tests: klasses and attributes — the standard klasses, custom klasses, adding and
//! removing attributes, deleting klasses, the role denials and tenancy.

use serde_json::{json, Value};

use crate::helpers::{assert_error, assert_invalid, pointers, TestApp, ADMIN_KEY};

// ---- local assertions ----

fn names(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect()
}

fn attr<'a>(klass: &'a Value, name: &str) -> Option<&'a Value> {
    klass["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
}

#[track_caller]
fn must_attr<'a>(klass: &'a Value, name: &str) -> &'a Value {
    attr(klass, name).unwrap_or_else(|| panic!("no attribute `{name}` in {klass}"))
}

fn order_def() -> Value {
    json!({
        "name": "order", "displayName": "Order", "icon": "cart", "color": "#3366ff",
        "attributes": [{"name": "totalNum", "type": "number", "displayName": "Total"}],
        "relationships": [{"name": "shipment", "klass": "shipment", "cardinality": "one"}]
    })
}

async fn with_order(app: &TestApp, key: &str) -> Value {
    app.post(
        "/v1/klasses",
        key,
        json!({"name": "shipment", "attributes": [{"name": "carrier", "type": "string"}]}),
    )
    .await
    .expect(201);
    app.post("/v1/klasses", key, order_def()).await.expect(201)
}

// ---- standard klasses ----

#[tokio::test]
async fn the_standard_klasses_are_listed_in_their_order() {
    let app = TestApp::new().await;
    let list = app.get("/v1/klasses", ADMIN_KEY).await.expect(200);
    assert_eq!(names(&list), ["company", "customer", "conversation", "message", "note"]);
    assert_eq!(list["total"], 5);
    for k in list["data"].as_array().unwrap() {
        assert_eq!(k["standard"], true, "{k}");
        assert!(!k["attributes"].as_array().unwrap().is_empty(), "{k}");
        assert_eq!(k["relationships"], json!([]), "{k}");
    }
}

#[tokio::test]
async fn a_standard_klass_shows_every_attribute_with_its_type() {
    let app = TestApp::new().await;
    let c = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    assert_eq!(c["name"], "customer");
    assert_eq!(c["standard"], true);
    let shape: Vec<(String, String, bool)> = c["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["type"].as_str().unwrap().to_string(),
                a["list"].as_bool().unwrap(),
            )
        })
        .collect();
    let expect = |v: &[(&str, &str, bool)]| {
        v.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shape,
        expect(&[
            ("name", "string", false),
            ("emails", "email", true),
            ("phones", "phone", true),
            ("company", "reference", false)
        ])
    );
    assert_eq!(must_attr(&c, "company")["klass"], "company");
    for a in c["attributes"].as_array().unwrap() {
        assert_eq!(a["standard"], true, "{a}");
    }

    let company = app.get("/v1/klasses/company", ADMIN_KEY).await.expect(200);
    assert_eq!(must_attr(&company, "name")["type"], "string");
    assert_eq!(must_attr(&company, "domains")["list"], true);

    let conv = app.get("/v1/klasses/conversation", ADMIN_KEY).await.expect(200);
    let customer = must_attr(&conv, "customer");
    assert_eq!(customer["type"], "reference");
    assert_eq!(customer["klass"], "customer");
    assert_eq!(customer["required"], true);
    assert_eq!(must_attr(&conv, "subject")["type"], "text");
    let status = must_attr(&conv, "status");
    assert_eq!(status["type"], "enum");
    assert_eq!(status["values"], json!(["open", "snoozed", "done"]));
    assert_eq!(status["default"], "open");
    assert_eq!(must_attr(&conv, "channel")["type"], "string");
    let prio = must_attr(&conv, "priority");
    assert_eq!(prio["type"], "integer");
    assert_eq!(prio["min"], 1);
    assert_eq!(prio["max"], 5);
    assert_eq!(must_attr(&conv, "assignedTeam")["type"], "string");
    assert_eq!(must_attr(&conv, "assignedUser")["type"], "string");
    assert_eq!(must_attr(&conv, "snoozedUntil")["type"], "date");

    let msg = app.get("/v1/klasses/message", ADMIN_KEY).await.expect(200);
    assert_eq!(must_attr(&msg, "conversation")["required"], true);
    assert_eq!(must_attr(&msg, "conversation")["klass"], "conversation");
    assert_eq!(must_attr(&msg, "customer")["klass"], "customer");
    assert_eq!(must_attr(&msg, "direction")["values"], json!(["in", "out"]));
    assert_eq!(must_attr(&msg, "body")["type"], "text");

    let note = app.get("/v1/klasses/note", ADMIN_KEY).await.expect(200);
    for n in ["customer", "conversation", "body", "author"] {
        must_attr(&note, n);
    }
}

#[tokio::test]
async fn an_unknown_klass_is_a_404() {
    let app = TestApp::new().await;
    for name in ["order", "kobject", "Customer", "customers"] {
        let r = app.get(&format!("/v1/klasses/{name}"), ADMIN_KEY).await;
        assert_eq!(r.status.as_u16(), 404, "{name}: {}", r.text);
        assert_error(&r, 404);
    }
}

// ---- creating custom klasses ----

#[tokio::test]
async fn an_admin_creates_a_custom_klass_with_attributes_and_relationships() {
    let app = TestApp::new().await;
    let shipment = app
        .post("/v1/klasses", ADMIN_KEY, json!({"name": "shipment"}))
        .await
        .expect(201);
    assert_eq!(shipment["name"], "shipment");
    assert_eq!(shipment["standard"], false);
    let k = app.post("/v1/klasses", ADMIN_KEY, order_def()).await.expect(201);
    assert_eq!(k["name"], "order");
    assert_eq!(k["displayName"], "Order");
    assert_eq!(k["icon"], "cart");
    assert_eq!(k["color"], "#3366ff");
    assert_eq!(k["standard"], false);
    // Every custom klass has the kobject standard attributes.
    for (n, t) in [("customer", "reference"), ("company", "reference"), ("title", "string")] {
        let a = must_attr(&k, n);
        assert_eq!(a["type"], t, "{a}");
        assert_eq!(a["standard"], true, "{a}");
    }
    let total = must_attr(&k, "totalNum");
    assert_eq!(total["type"], "number");
    assert_eq!(total["displayName"], "Total");
    assert_eq!(total["standard"], false);
    assert_eq!(total["list"], false);
    assert_eq!(
        k["relationships"],
        json!([{"name": "shipment", "klass": "shipment", "cardinality": "one"}])
    );
    assert!(k["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    // Read back, alone and in the list (after the standard klasses).
    assert_eq!(app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200), k);
    let list = app.get("/v1/klasses", ADMIN_KEY).await.expect(200);
    assert_eq!(
        names(&list),
        [
            "company",
            "customer",
            "conversation",
            "message",
            "note",
            "order",
            "shipment"
        ]
    );
    assert_eq!(list["total"], 7);
    // Objects of it can be written.
    app.post(
        "/v1/objects/order",
        ADMIN_KEY,
        json!({"title": "first", "custom": {"totalNum": 12.5}}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn a_custom_klass_takes_every_attribute_type() {
    let app = TestApp::new().await;
    let attrs = json!([
        {"name": "aString", "type": "string"},
        {"name": "aText", "type": "text"},
        {"name": "aNumber", "type": "number", "min": 0, "max": 10},
        {"name": "anInteger", "type": "integer"},
        {"name": "aBoolean", "type": "boolean"},
        {"name": "aDate", "type": "date"},
        {"name": "anEnum", "type": "enum", "values": ["a", "b"]},
        {"name": "aUrl", "type": "url"},
        {"name": "anEmail", "type": "email"},
        {"name": "aPhone", "type": "phone"},
        {"name": "aTree", "type": "tree"},
        {"name": "aRef", "type": "reference", "klass": "customer"},
        {"name": "selfRef", "type": "reference", "klass": "widget"},
        {"name": "someStrings", "type": "string", "list": true},
        {"name": "someDates", "type": "date", "list": true}
    ]);
    let k = app
        .post("/v1/klasses", ADMIN_KEY, json!({"name": "widget", "attributes": attrs, "relationships": [{"name": "parts", "klass": "widget", "cardinality": "many"}]}))
        .await
        .expect(201);
    for a in attrs.as_array().unwrap() {
        let got = must_attr(&k, a["name"].as_str().unwrap());
        assert_eq!(got["type"], a["type"], "{got}");
        assert_eq!(got["list"], a.get("list").cloned().unwrap_or(json!(false)), "{got}");
    }
    assert_eq!(must_attr(&k, "anEnum")["values"], json!(["a", "b"]));
    assert_eq!(must_attr(&k, "aRef")["klass"], "customer");
    assert_eq!(must_attr(&k, "selfRef")["klass"], "widget");
    assert_eq!(k["relationships"][0]["cardinality"], "many");
}

#[tokio::test]
async fn a_custom_klass_may_not_take_a_reserved_or_standard_name() {
    let app = TestApp::new().await;
    for name in [
        "company",
        "customer",
        "conversation",
        "message",
        "note",
        "kobject",
        "custom",
        "relationships",
        "tags",
        "id",
        "externalId",
        "createdAt",
        "assignedTeam",
        "author",
        // in any case
        "Customer",
        "NOTE",
    ] {
        let r = app.post("/v1/klasses", ADMIN_KEY, json!({"name": name})).await;
        assert_eq!(r.status.as_u16(), 422, "`{name}`: {}", r.text);
        assert_invalid(&r, 422, "/name");
    }
    // The standard klasses are unchanged.
    let c = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    assert_eq!(c["standard"], true);
    assert_eq!(app.get("/v1/klasses", ADMIN_KEY).await.expect(200)["total"], 5);
}

#[tokio::test]
async fn a_klass_name_must_be_a_letter_then_letters_digits_or_underscores() {
    let app = TestApp::new().await;
    for name in [
        json!("1order"),
        json!("or-der"),
        json!("or der"),
        json!("_order"),
        json!(""),
        json!("o".repeat(65)),
        json!(7),
    ] {
        let r = app.post("/v1/klasses", ADMIN_KEY, json!({"name": name})).await;
        assert_eq!(r.status.as_u16(), 422, "{name}: {}", r.text);
        assert_invalid(&r, 422, "/name");
    }
    assert_invalid(
        &app.post("/v1/klasses", ADMIN_KEY, json!({"attributes": []})).await,
        422,
        "/name",
    );
    app.post("/v1/klasses", ADMIN_KEY, json!({"name": "o".repeat(64)}))
        .await
        .expect(201);
    app.post("/v1/klasses", ADMIN_KEY, json!({"name": "Order_2"}))
        .await
        .expect(201);
    assert_eq!(app.get("/v1/klasses", ADMIN_KEY).await.expect(200)["total"], 7);
}

#[tokio::test]
async fn a_duplicate_klass_is_a_409() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await;
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "other", "type": "string"}]}),
        )
        .await;
    assert_error(&r, 409);
    let k = app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200);
    assert!(attr(&k, "other").is_none(), "{k}");
    // A name that differs only by case is the same klass to a reader.
    let r = app.post("/v1/klasses", ADMIN_KEY, json!({"name": "Order"})).await;
    assert_invalid(&r, 409, "/name");
    app.get("/v1/klasses/Order", ADMIN_KEY).await.expect(404);
}

#[tokio::test]
async fn an_attribute_with_an_unknown_type_is_422_at_its_type() {
    let app = TestApp::new().await;
    let r = app
        .post("/v1/klasses", ADMIN_KEY, json!({"name": "order", "attributes": [{"name": "ok", "type": "string"}, {"name": "price", "type": "money"}]}))
        .await;
    assert_invalid(&r, 422, "/attributes/1/type");
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "price", "type": "String"}]}),
        )
        .await;
    assert_invalid(&r, 422, "/attributes/0/type");
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "price"}]}),
        )
        .await;
    assert_error(&r, 422);
    assert_error(&app.get("/v1/klasses/order", ADMIN_KEY).await, 404);
}

#[tokio::test]
async fn an_enum_needs_values() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "state", "type": "enum"}]}),
        )
        .await;
    assert_invalid(&r, 422, "/attributes/0/values");
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "state", "type": "enum", "values": []}]}),
        )
        .await;
    assert_invalid(&r, 422, "/attributes/0/values");
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "state", "type": "string", "values": ["a"]}]}),
        )
        .await;
    assert_invalid(&r, 422, "/attributes/0/values");
    assert_error(&app.get("/v1/klasses/order", ADMIN_KEY).await, 404);
}

#[tokio::test]
async fn a_reference_needs_an_existing_target_klass() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "buyer", "type": "reference"}]}),
        )
        .await;
    assert_invalid(&r, 422, "/attributes/0/klass");
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "buyer", "type": "reference", "klass": "buyer"}]}),
        )
        .await;
    assert_invalid(&r, 422, "/attributes/0/klass");
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "n", "type": "string", "klass": "customer"}]}),
        )
        .await;
    assert_invalid(&r, 422, "/attributes/0/klass");
    assert_error(&app.get("/v1/klasses/order", ADMIN_KEY).await, 404);
    app.post(
        "/v1/klasses",
        ADMIN_KEY,
        json!({"name": "order", "attributes": [{"name": "buyer", "type": "reference", "klass": "customer"}]}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn a_relationship_needs_an_existing_target_and_a_cardinality() {
    let app = TestApp::new().await;
    let r = app.post("/v1/klasses", ADMIN_KEY, order_def()).await; // shipment does not exist yet
    assert_invalid(&r, 422, "/relationships/0/klass");
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "relationships": [{"name": "buyer", "klass": "customer", "cardinality": "some"}]}),
        )
        .await;
    assert_invalid(&r, 422, "/relationships/0/cardinality");
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "relationships": [{"name": "9buyer", "klass": "customer", "cardinality": "one"}]}),
        )
        .await;
    assert_invalid(&r, 422, "/relationships/0/name");
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "relationships": [{"name": "b", "klass": "customer", "cardinality": "one"}, {"name": "b", "klass": "company", "cardinality": "one"}]}),
        )
        .await;
    assert_invalid(&r, 422, "/relationships/1/name");
    assert_error(&app.get("/v1/klasses/order", ADMIN_KEY).await, 404);
}

#[tokio::test]
async fn an_attribute_name_must_be_valid_and_declared_once() {
    let app = TestApp::new().await;
    for bad in ["9lives", "has-dash", "", "has space"] {
        let r = app
            .post(
                "/v1/klasses",
                ADMIN_KEY,
                json!({"name": "order", "attributes": [{"name": bad, "type": "string"}]}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 422, "{bad:?}: {}", r.text);
        assert_invalid(&r, 422, "/attributes/0/name");
    }
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "a", "type": "string"}, {"name": "a", "type": "number"}]}),
        )
        .await;
    assert_invalid(&r, 422, "/attributes/1/name");
    assert_error(&app.get("/v1/klasses/order", ADMIN_KEY).await, 404);
}

#[tokio::test]
async fn unknown_fields_of_a_definition_are_422_at_their_pointer() {
    let app = TestApp::new().await;
    let top = app
        .post("/v1/klasses", ADMIN_KEY, json!({"name": "order", "colour": "#fff"}))
        .await;
    assert_error(&top, 422);
    let nested = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "a", "type": "string", "indexed": true}]}),
        )
        .await;
    assert_error(&nested, 422);
    let rel = app
        .post("/v1/klasses", ADMIN_KEY, json!({"name": "order", "relationships": [{"name": "r", "klass": "customer", "cardinality": "one", "many": 1}]}))
        .await;
    assert_error(&rel, 422);
    assert_eq!(
        (top.pointer(), nested.pointer(), rel.pointer()),
        (
            Some("/colour"),
            Some("/attributes/0/indexed"),
            Some("/relationships/0/many")
        ),
        "bodies: {} / {} / {}",
        top.text,
        nested.text,
        rel.text
    );
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": {"name": "a"}}),
        )
        .await;
    assert_error(&r, 422);
    let r = app.post("/v1/klasses", ADMIN_KEY, json!(["order"])).await;
    assert_error(&r, 400);
    let r = app
        .raw(
            "POST",
            "/v1/klasses",
            Some(ADMIN_KEY),
            Some(b"{\"name\":\"order\"".to_vec()),
            &[],
        )
        .await;
    assert_error(&r, 400);
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "displayName": "x".repeat((1 << 20) + 1)}),
        )
        .await;
    assert_error(&r, 413);
    assert_error(&app.get("/v1/klasses/order", ADMIN_KEY).await, 404);
}

#[tokio::test]
async fn every_problem_of_a_definition_is_reported() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [
                {"name": "price", "type": "money"},
                {"name": "ok", "type": "string"},
                {"name": "state", "type": "enum"},
                {"name": "buyer", "type": "reference", "klass": "nobody"}
            ]}),
        )
        .await;
    assert_error(&r, 422);
    let p = pointers(&r);
    for want in ["/attributes/0/type", "/attributes/2/values", "/attributes/3/klass"] {
        assert!(p.iter().any(|x| x == want), "missing {want} in {}", r.text);
    }
}

// ---- patching klasses ----

#[tokio::test]
async fn patching_a_standard_klass_adds_custom_attributes() {
    let app = TestApp::new().await;
    let k = app
        .patch(
            "/v1/klasses/customer",
            ADMIN_KEY,
            json!({"attributes": [{"name": "tier", "type": "enum", "values": ["gold", "silver"]}, {"name": "ltv", "type": "number", "displayName": "LTV"}]}),
        )
        .await
        .expect(200);
    assert_eq!(k["name"], "customer");
    assert_eq!(k["standard"], true);
    let tier = must_attr(&k, "tier");
    assert_eq!(tier["standard"], false);
    assert_eq!(tier["values"], json!(["gold", "silver"]));
    assert_eq!(must_attr(&k, "ltv")["displayName"], "LTV");
    assert_eq!(must_attr(&k, "name")["standard"], true);
    assert_eq!(app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200), k);
    // The new attributes are accepted under `custom` and checked.
    let c = app
        .create(ADMIN_KEY, "customer", json!({"custom": {"tier": "gold", "ltv": 12}}))
        .await;
    assert_eq!(c["custom"], json!({"tier": "gold", "ltv": 12}));
    let r = app
        .post("/v1/objects/customer", ADMIN_KEY, json!({"custom": {"tier": "Gold"}}))
        .await;
    assert_invalid(&r, 422, "/custom/tier");
    let r = app
        .post("/v1/objects/customer", ADMIN_KEY, json!({"custom": {"ltv": "much"}}))
        .await;
    assert_invalid(&r, 422, "/custom/ltv");
    // And searchable.
    let id = c["id"].as_str().unwrap().to_string();
    let found = app
        .search_ids(
            ADMIN_KEY,
            json!({"queryContext": "customer", "and": [{"custom.tier": {"equals": "gold"}}]}),
        )
        .await;
    assert_eq!(found, [id]);
}

#[tokio::test]
async fn patching_a_klass_adds_relationships_and_changes_display_metadata() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await;
    let k = app
        .patch(
            "/v1/klasses/order",
            ADMIN_KEY,
            json!({"displayName": "Purchase", "icon": "bag", "color": "#000000",
                   "attributes": [{"name": "placedAt", "type": "date"}],
                   "relationships": [{"name": "related", "klass": "order", "cardinality": "many"}]}),
        )
        .await
        .expect(200);
    assert_eq!(k["displayName"], "Purchase");
    assert_eq!(k["icon"], "bag");
    assert_eq!(k["color"], "#000000");
    must_attr(&k, "totalNum");
    assert_eq!(must_attr(&k, "placedAt")["type"], "date");
    let rels: Vec<&str> = k["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(rels, ["shipment", "related"]);
    assert_eq!(app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200), k);
    // A metadata-only patch keeps attributes.
    let k2 = app
        .patch("/v1/klasses/order", ADMIN_KEY, json!({"displayName": "Order"}))
        .await
        .expect(200);
    assert_eq!(k2["displayName"], "Order");
    assert_eq!(k2["attributes"], k["attributes"]);
    // The same name may be given, another may not.
    app.patch("/v1/klasses/order", ADMIN_KEY, json!({"name": "order"}))
        .await
        .expect(200);
    assert_invalid(
        &app.patch("/v1/klasses/order", ADMIN_KEY, json!({"name": "purchase"}))
            .await,
        422,
        "/name",
    );
    assert_error(&app.get("/v1/klasses/purchase", ADMIN_KEY).await, 404);
}

#[tokio::test]
async fn changing_an_attributes_type_is_a_409() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await;
    let r = app
        .patch(
            "/v1/klasses/order",
            ADMIN_KEY,
            json!({"attributes": [{"name": "totalNum", "type": "string"}]}),
        )
        .await;
    assert_invalid(&r, 409, "/attributes/0/type");
    let r = app
        .patch(
            "/v1/klasses/order",
            ADMIN_KEY,
            json!({"attributes": [{"name": "totalNum", "type": "number", "list": true}]}),
        )
        .await;
    assert_error(&r, 409);
    let r = app
        .patch(
            "/v1/klasses/order",
            ADMIN_KEY,
            json!({"relationships": [{"name": "shipment", "klass": "shipment", "cardinality": "many"}]}),
        )
        .await;
    assert_error(&r, 409);
    // Suffix-declared attributes keep their type too.
    app.post(
        "/v1/objects/customer",
        ADMIN_KEY,
        json!({"custom": {"tierStr": "gold"}}),
    )
    .await
    .expect(201);
    let r = app
        .patch(
            "/v1/klasses/customer",
            ADMIN_KEY,
            json!({"attributes": [{"name": "tierStr", "type": "number"}]}),
        )
        .await;
    assert_error(&r, 409);
    let k = app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200);
    assert_eq!(must_attr(&k, "totalNum")["type"], "number");
    assert_eq!(must_attr(&k, "totalNum")["list"], false);
    assert_eq!(k["relationships"][0]["cardinality"], "one");
    // Declaring it again with the same type only changes its label.
    let k = app
        .patch(
            "/v1/klasses/order",
            ADMIN_KEY,
            json!({"attributes": [{"name": "totalNum", "type": "number", "displayName": "Grand total"}]}),
        )
        .await
        .expect(200);
    assert_eq!(must_attr(&k, "totalNum")["displayName"], "Grand total");
    assert_eq!(
        k["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"] == "totalNum")
            .count(),
        1
    );
}

#[tokio::test]
async fn declaring_a_standard_attribute_again_never_yields_two_attributes_of_one_name() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await;
    let count = |k: &Value, n: &str| {
        k["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"] == n)
            .count()
    };
    // Another type for a standard attribute is a type change (409), on a standard klass...
    let before = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    let r1 = app
        .patch(
            "/v1/klasses/customer",
            ADMIN_KEY,
            json!({"attributes": [{"name": "name", "type": "number"}]}),
        )
        .await;
    let customer = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    // ...on a custom klass's standard kobject attributes...
    let r2 = app
        .patch(
            "/v1/klasses/order",
            ADMIN_KEY,
            json!({"attributes": [{"name": "title", "type": "integer"}]}),
        )
        .await;
    let order = app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200);
    // ...and when a new custom klass declares one.
    let r3 = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "invoice", "attributes": [{"name": "customer", "type": "string"}]}),
        )
        .await;
    let invoice = app.get("/v1/klasses/invoice", ADMIN_KEY).await;
    let invoice_customers = if invoice.status.as_u16() == 200 {
        count(&invoice.body, "customer")
    } else {
        1
    };
    assert_eq!(
        (r1.status.as_u16(), count(&customer, "name"), r2.status.as_u16(), count(&order, "title"), r3.status.as_u16() >= 400, invoice_customers),
        (409, 1, 409, 1, true, 1),
        "\nPATCH customer name:number -> {} {}\nPATCH order title:integer -> {} {}\nPOST invoice customer:string -> {} {}\ncustomer klass now: {customer}",
        r1.status,
        r1.text,
        r2.status,
        r2.text,
        r3.status,
        r3.text
    );
    assert_eq!(customer["attributes"], before["attributes"]);
}

#[tokio::test]
async fn patching_an_unknown_klass_is_a_404_and_bad_patches_are_422() {
    let app = TestApp::new().await;
    assert_error(
        &app.patch("/v1/klasses/ghost", ADMIN_KEY, json!({"displayName": "G"}))
            .await,
        404,
    );
    assert_invalid(
        &app.patch(
            "/v1/klasses/customer",
            ADMIN_KEY,
            json!({"attributes": [{"name": "x", "type": "nope"}]}),
        )
        .await,
        422,
        "/attributes/0/type",
    );
    assert_invalid(
        &app.patch(
            "/v1/klasses/customer",
            ADMIN_KEY,
            json!({"attributes": [{"name": "x", "type": "enum"}]}),
        )
        .await,
        422,
        "/attributes/0/values",
    );
    assert_invalid(
        &app.patch(
            "/v1/klasses/customer",
            ADMIN_KEY,
            json!({"relationships": [{"name": "r", "klass": "ghost", "cardinality": "one"}]}),
        )
        .await,
        422,
        "/relationships/0/klass",
    );
    let r = app
        .patch("/v1/klasses/customer", ADMIN_KEY, json!({"shape": "round"}))
        .await;
    assert_error(&r, 422);
    let c = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    assert!(attr(&c, "x").is_none());
    assert_eq!(c["relationships"], json!([]));
}

// ---- removing attributes ----

#[tokio::test]
async fn a_removed_custom_attribute_is_no_longer_returned_accepted_or_searchable() {
    let app = TestApp::new().await;
    app.patch(
        "/v1/klasses/customer",
        ADMIN_KEY,
        json!({"attributes": [{"name": "segment", "type": "string"}]}),
    )
    .await
    .expect(200);
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "c1", "name": "Ann", "custom": {"segment": "smb", "keepStr": "k"}}),
    )
    .await;
    assert_eq!(
        app.search_ids(
            ADMIN_KEY,
            json!({"queryContext": "customer", "and": [{"custom.segment": {"equals": "smb"}}]})
        )
        .await,
        ["c1"]
    );
    let r = app.delete("/v1/klasses/customer/attributes/segment", ADMIN_KEY).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert!(r.text.is_empty());
    let k = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    assert!(attr(&k, "segment").is_none(), "{k}");
    must_attr(&k, "keepStr");
    // Not returned.
    let c = app.get("/v1/objects/customer/c1", ADMIN_KEY).await.expect(200);
    assert_eq!(c["custom"], json!({"keepStr": "k"}));
    assert_eq!(c["name"], "Ann");
    // Not accepted.
    let r = app
        .post("/v1/objects/customer", ADMIN_KEY, json!({"custom": {"segment": "ent"}}))
        .await;
    assert_invalid(&r, 422, "/custom/segment");
    let r = app
        .patch(
            "/v1/objects/customer/c1",
            ADMIN_KEY,
            json!({"custom": {"segment": "ent"}}),
        )
        .await;
    assert_invalid(&r, 422, "/custom/segment");
    // Not searchable.
    let r = app
        .post(
            "/v1/search",
            ADMIN_KEY,
            json!({"queryContext": "customer", "and": [{"custom.segment": {"equals": "smb"}}]}),
        )
        .await;
    assert_invalid(&r, 400, "/and/0/custom.segment");
    // Removing it again: 404.
    assert_error(
        &app.delete("/v1/klasses/customer/attributes/segment", ADMIN_KEY).await,
        404,
    );
}

#[tokio::test]
async fn a_removed_attribute_declared_again_does_not_bring_old_values_back() {
    let app = TestApp::new().await;
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "old", "custom": {"planStr": "gold"}}),
    )
    .await;
    app.delete("/v1/klasses/customer/attributes/planStr", ADMIN_KEY)
        .await
        .expect(204);
    assert_eq!(
        app.get("/v1/objects/customer/old", ADMIN_KEY).await.expect(200)["custom"],
        json!({})
    );
    // A suffix name is declared again on the next write, as a new attribute.
    app.create(
        ADMIN_KEY,
        "customer",
        json!({"id": "new", "custom": {"planStr": "silver"}}),
    )
    .await;
    let k = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    assert_eq!(must_attr(&k, "planStr")["type"], "string");
    assert_eq!(
        app.get("/v1/objects/customer/old", ADMIN_KEY).await.expect(200)["custom"],
        json!({})
    );
    assert_eq!(
        app.get("/v1/objects/customer/new", ADMIN_KEY).await.expect(200)["custom"],
        json!({"planStr": "silver"})
    );
    assert_eq!(
        app.search_ids(
            ADMIN_KEY,
            json!({"queryContext": "customer", "and": [{"custom.planStr": {"equals": "gold"}}]})
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        app.search_ids(
            ADMIN_KEY,
            json!({"queryContext": "customer", "and": [{"custom.planStr": {"set": true}}]})
        )
        .await,
        ["new"]
    );
    // Declared again explicitly with another type: still no old values.
    app.delete("/v1/klasses/customer/attributes/planStr", ADMIN_KEY)
        .await
        .expect(204);
    app.patch(
        "/v1/klasses/customer",
        ADMIN_KEY,
        json!({"attributes": [{"name": "planStr", "type": "number"}]}),
    )
    .await
    .expect(200);
    assert_eq!(
        app.get("/v1/objects/customer/new", ADMIN_KEY).await.expect(200)["custom"],
        json!({})
    );
}

#[tokio::test]
async fn a_custom_klass_attribute_can_be_removed() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await;
    app.patch(
        "/v1/klasses/order",
        ADMIN_KEY,
        json!({"attributes": [{"name": "amount", "type": "integer"}]}),
    )
    .await
    .expect(200);
    app.create(
        ADMIN_KEY,
        "order",
        json!({"id": "o1", "title": "T", "custom": {"totalNum": 5, "amount": 7}}),
    )
    .await;
    app.delete("/v1/klasses/order/attributes/amount", ADMIN_KEY)
        .await
        .expect(204);
    let o = app.get("/v1/objects/order/o1", ADMIN_KEY).await.expect(200);
    assert_eq!(o["custom"], json!({"totalNum": 5}));
    assert_eq!(o["title"], "T");
    let r = app
        .post("/v1/objects/order", ADMIN_KEY, json!({"custom": {"amount": 1}}))
        .await;
    assert_invalid(&r, 422, "/custom/amount");
    let r = app
        .post(
            "/v1/search",
            ADMIN_KEY,
            json!({"queryContext": "order", "and": [{"custom.amount": {"equals": 7}}]}),
        )
        .await;
    assert_invalid(&r, 400, "/and/0/custom.amount");
    // The declared (non-suffix) attribute is gone from the klass; the others stay.
    let k = app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200);
    assert!(attr(&k, "amount").is_none(), "{k}");
    must_attr(&k, "totalNum");
}

#[tokio::test]
async fn a_standard_attribute_cannot_be_removed() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await;
    for (k, a) in [
        ("customer", "name"),
        ("customer", "emails"),
        ("conversation", "status"),
        ("conversation", "customer"),
        ("order", "title"),
        ("order", "customer"),
    ] {
        let r = app.delete(&format!("/v1/klasses/{k}/attributes/{a}"), ADMIN_KEY).await;
        assert_eq!(r.status.as_u16(), 409, "{k}.{a}: {}", r.text);
        assert_error(&r, 409);
    }
    must_attr(&app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200), "name");
    must_attr(&app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200), "title");
}

#[tokio::test]
async fn removing_an_unknown_attribute_or_from_an_unknown_klass_is_a_404() {
    let app = TestApp::new().await;
    assert_error(
        &app.delete("/v1/klasses/customer/attributes/nothing", ADMIN_KEY).await,
        404,
    );
    assert_error(&app.delete("/v1/klasses/ghost/attributes/name", ADMIN_KEY).await, 404);
}

// ---- deleting klasses ----

#[tokio::test]
async fn a_custom_klass_can_be_deleted_once_it_has_no_objects() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await;
    app.create(ADMIN_KEY, "order", json!({"id": "o1"})).await;
    app.create(ADMIN_KEY, "order", json!({"id": "o2"})).await;
    let r = app.delete("/v1/klasses/order", ADMIN_KEY).await;
    assert_error(&r, 409);
    app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200);
    app.delete("/v1/objects/order/o1", ADMIN_KEY).await.expect(204);
    assert_error(&app.delete("/v1/klasses/order", ADMIN_KEY).await, 409);
    app.delete("/v1/objects/order/o2", ADMIN_KEY).await.expect(204);
    let r = app.delete("/v1/klasses/order", ADMIN_KEY).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_error(&app.get("/v1/klasses/order", ADMIN_KEY).await, 404);
    assert!(!names(&app.get("/v1/klasses", ADMIN_KEY).await.expect(200)).contains(&"order".to_string()));
    assert_error(&app.post("/v1/objects/order", ADMIN_KEY, json!({})).await, 404);
    assert_error(&app.delete("/v1/klasses/order", ADMIN_KEY).await, 404);
    // The name is free again.
    let k = app
        .post(
            "/v1/klasses",
            ADMIN_KEY,
            json!({"name": "order", "attributes": [{"name": "totalNum", "type": "string"}]}),
        )
        .await
        .expect(201);
    assert_eq!(must_attr(&k, "totalNum")["type"], "string");
}

#[tokio::test]
async fn a_klass_referenced_by_another_cannot_be_deleted() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await; // order -> shipment
    assert_error(&app.delete("/v1/klasses/shipment", ADMIN_KEY).await, 409);
    app.post("/v1/klasses", ADMIN_KEY, json!({"name": "invoice"}))
        .await
        .expect(201);
    app.patch(
        "/v1/klasses/customer",
        ADMIN_KEY,
        json!({"attributes": [{"name": "lastInvoice", "type": "reference", "klass": "invoice"}]}),
    )
    .await
    .expect(200);
    assert_error(&app.delete("/v1/klasses/invoice", ADMIN_KEY).await, 409);
    app.get("/v1/klasses/invoice", ADMIN_KEY).await.expect(200);
    app.get("/v1/klasses/shipment", ADMIN_KEY).await.expect(200);
}

#[tokio::test]
async fn a_standard_klass_cannot_be_deleted() {
    let app = TestApp::new().await;
    for k in ["company", "customer", "conversation", "message", "note"] {
        let r = app.delete(&format!("/v1/klasses/{k}"), ADMIN_KEY).await;
        assert_eq!(r.status.as_u16(), 409, "{k}: {}", r.text);
        assert_error(&r, 409);
    }
    assert_error(&app.delete("/v1/klasses/ghost", ADMIN_KEY).await, 404);
    assert_eq!(app.get("/v1/klasses", ADMIN_KEY).await.expect(200)["total"], 5);
}

// ---- roles ----

#[tokio::test]
async fn agents_and_analysts_get_403_on_every_schema_write() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await;
    app.patch(
        "/v1/klasses/customer",
        ADMIN_KEY,
        json!({"attributes": [{"name": "segment", "type": "string"}]}),
    )
    .await
    .expect(200);
    let agent = app.user_key(ADMIN_KEY, "agent1", "agent", &[]).await;
    let analyst = app.user_key(ADMIN_KEY, "analyst1", "analyst", &[]).await;
    let before_order = app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200);
    let before_customer = app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200);
    for (role, key) in [("agent", &agent), ("analyst", &analyst)] {
        for (m, p, b) in [
            ("POST", "/v1/klasses", Some(json!({"name": "invoice"}))),
            (
                "PATCH",
                "/v1/klasses/order",
                Some(json!({"displayName": "Hacked", "attributes": [{"name": "x", "type": "string"}]})),
            ),
            (
                "PATCH",
                "/v1/klasses/customer",
                Some(json!({"attributes": [{"name": "y", "type": "string"}]})),
            ),
            ("DELETE", "/v1/klasses/shipment/attributes/carrier", None),
            ("DELETE", "/v1/klasses/customer/attributes/segment", None),
            ("DELETE", "/v1/klasses/order", None),
            ("DELETE", "/v1/klasses/ghost", None),
        ] {
            let r = app.call(m, p, key, b).await;
            assert_eq!(r.status.as_u16(), 403, "{role}: {m} {p} -> {}", r.text);
            assert_error(&r, 403);
        }
    }
    assert_eq!(app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200), before_order);
    assert_eq!(
        app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200),
        before_customer
    );
    assert_error(&app.get("/v1/klasses/invoice", ADMIN_KEY).await, 404);
    must_attr(&app.get("/v1/klasses/shipment", ADMIN_KEY).await.expect(200), "carrier");
}

#[tokio::test]
async fn agents_and_analysts_may_read_every_klass() {
    let app = TestApp::new().await;
    let order = with_order(&app, ADMIN_KEY).await;
    let agent = app.user_key(ADMIN_KEY, "agent1", "agent", &[]).await;
    let analyst = app.user_key(ADMIN_KEY, "analyst1", "analyst", &[]).await;
    let all = app.get("/v1/klasses", ADMIN_KEY).await.expect(200);
    for key in [&agent, &analyst] {
        assert_eq!(app.get("/v1/klasses", key).await.expect(200), all);
        assert_eq!(app.get("/v1/klasses/order", key).await.expect(200), order);
        app.get("/v1/klasses/customer", key).await.expect(200);
        assert_error(&app.get("/v1/klasses/ghost", key).await, 404);
    }
}

// ---- tenancy ----

#[tokio::test]
async fn another_org_gets_404_for_this_orgs_custom_klasses_and_keeps_its_own_schema() {
    let app = TestApp::new().await;
    with_order(&app, ADMIN_KEY).await;
    app.patch(
        "/v1/klasses/customer",
        ADMIN_KEY,
        json!({"attributes": [{"name": "segment", "type": "string"}]}),
    )
    .await
    .expect(200);
    let b = app.new_org("org-b").await;
    for (m, p, body) in [
        ("GET", "/v1/klasses/order", None),
        ("PATCH", "/v1/klasses/order", Some(json!({"displayName": "Mine"}))),
        ("DELETE", "/v1/klasses/order", None),
        ("DELETE", "/v1/klasses/order/attributes/totalNum", None),
        ("DELETE", "/v1/klasses/customer/attributes/segment", None),
        ("POST", "/v1/objects/order", Some(json!({"title": "x"}))),
    ] {
        let r = app.call(m, p, &b, body).await;
        assert_eq!(r.status.as_u16(), 404, "org B: {m} {p} -> {}", r.text);
        assert_error(&r, 404);
    }
    assert_eq!(
        names(&app.get("/v1/klasses", &b).await.expect(200)),
        ["company", "customer", "conversation", "message", "note"]
    );
    let bc = app.get("/v1/klasses/customer", &b).await.expect(200);
    assert!(attr(&bc, "segment").is_none(), "A's attribute leaked into B: {bc}");
    // B's `segment` is not A's.
    let r = app
        .post("/v1/objects/customer", &b, json!({"custom": {"segment": "x"}}))
        .await;
    assert_invalid(&r, 422, "/custom/segment");
    // B may define its own `order`, differently; A's stays as it was.
    let bo = app
        .post(
            "/v1/klasses",
            &b,
            json!({"name": "order", "attributes": [{"name": "totalNum", "type": "integer"}]}),
        )
        .await
        .expect(201);
    assert_eq!(must_attr(&bo, "totalNum")["type"], "integer");
    assert!(bo["relationships"].as_array().unwrap().is_empty());
    let ao = app.get("/v1/klasses/order", ADMIN_KEY).await.expect(200);
    assert_eq!(must_attr(&ao, "totalNum")["type"], "number");
    assert_eq!(ao["displayName"], "Order");
    // Suffix declarations stay in their org.
    app.post("/v1/objects/customer", &b, json!({"custom": {"onlyInBStr": "x"}}))
        .await
        .expect(201);
    assert!(attr(
        &app.get("/v1/klasses/customer", ADMIN_KEY).await.expect(200),
        "onlyInBStr"
    )
    .is_none());
}
