//! Kustomer's export shape, one `{"data":{"type","id","attributes","relationships"}}` a line,
//! converted to bulk upsert lines. Fields Kindred does not model are skipped and counted.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::bulk::{BulkLine, BulkOp};
use crate::error::Problem;

/// Whether a line is in Kustomer's shape.
pub fn is_kustomer(v: &Value) -> bool {
    v.get("data").is_some_and(|d| d.get("type").is_some()) && v.get("op").is_none()
}

fn rel_id(rels: &Map<String, Value>, name: &str) -> Option<String> {
    rels.get(name)?.get("data")?.get("id")?.as_str().map(str::to_string)
}

/// Converts one Kustomer line; `skipped` counts the fields left out (`customer.birthdayAt`).
pub fn convert(v: &Value, skipped: &mut BTreeMap<String, u64>) -> Result<BulkLine, Problem> {
    let bad = |t: &str| Problem::bad_request("invalid_line", t.to_string()).at("/data");
    let data = v
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("`data` must be an object"))?;
    let ty = data
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`data.type` is required"))?;
    let id = data.get("id").and_then(Value::as_str).map(str::to_string);
    let empty = Map::new();
    let attrs = data.get("attributes").and_then(Value::as_object).unwrap_or(&empty);
    let rels = data.get("relationships").and_then(Value::as_object).unwrap_or(&empty);
    let mut obj = Map::new();
    let mut skip = |field: &str| *skipped.entry(format!("{ty}.{field}")).or_insert(0) += 1;
    let klass = match ty {
        "customer" | "company" | "conversation" | "message" | "note" => ty.to_string(),
        "kobject" => rel_id(rels, "klass").ok_or_else(|| bad("a kobject needs `relationships.klass.data.id`"))?,
        other => return Err(bad(&format!("Kustomer type `{other}` is not imported"))),
    };
    let common = ["externalId", "createdAt", "updatedAt", "custom", "tags"];
    for (k, val) in attrs {
        let mapped: Option<(&str, Value)> = match (ty, k.as_str()) {
            (_, key) if common.contains(&key) => Some((key, val.clone())),
            ("customer", "name") | ("company", "name") | ("kobject", "title") | ("note", "body") => {
                Some((k.as_str(), val.clone()))
            }
            ("customer", "emails") => Some(("emails", list_of(val, "email"))),
            ("customer", "phones") => Some(("phones", list_of(val, "phone"))),
            ("company", "domains") => Some(("domains", val.clone())),
            ("conversation", "name") => Some(("subject", val.clone())),
            ("conversation", "status") | ("conversation", "priority") | ("conversation", "snoozedUntil") => {
                Some((k.as_str(), val.clone()))
            }
            // A `channel` wins over the first of `channels`, a `body` over the `preview`; the
            // one that loses is used, not skipped (a null value inserts nothing).
            ("conversation", "channel") => Some(("channel", val.clone())),
            ("conversation", "channels") if has_value(attrs, "channel") => Some(("channel", Value::Null)),
            ("conversation", "channels") => val.as_array().and_then(|a| a.first()).map(|c| ("channel", c.clone())),
            ("message", "direction") | ("message", "channel") | ("message", "subject") => {
                Some((k.as_str(), val.clone()))
            }
            ("message", "body") => Some(("body", val.clone())),
            ("message", "preview") if has_value(attrs, "body") => Some(("body", Value::Null)),
            ("message", "preview") => Some(("body", val.clone())),
            _ => None,
        };
        match mapped {
            Some((key, value)) if !value.is_null() => {
                obj.insert(key.to_string(), value);
            }
            Some(_) => {}
            None => skip(k),
        }
    }
    for (name, r) in rels {
        let target = r.get("data").and_then(|d| d.get("id")).and_then(Value::as_str);
        let field = match (ty, name.as_str()) {
            (_, "klass") if ty == "kobject" => continue,
            ("customer", "company") | ("kobject", "company") => Some("company"),
            ("conversation" | "message" | "note" | "kobject", "customer") => Some("customer"),
            ("message" | "note", "conversation") => Some("conversation"),
            _ => None,
        };
        match (field, target) {
            (Some(f), Some(t)) => {
                obj.insert(f.to_string(), json!(t));
            }
            _ => skip(&format!("relationships.{name}")),
        }
    }
    let external_id = obj.get("externalId").and_then(Value::as_str).map(str::to_string);
    Ok(BulkLine::Object {
        op: BulkOp::Upsert,
        klass,
        id,
        external_id,
        object: Value::Object(obj),
    })
}

fn has_value(attrs: &Map<String, Value>, key: &str) -> bool {
    attrs.get(key).is_some_and(|v| !v.is_null())
}

fn list_of(v: &Value, key: &str) -> Value {
    match v {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter_map(|i| match i {
                    Value::Object(m) => m.get(key).cloned(),
                    Value::String(_) => Some(i.clone()),
                    _ => None,
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_maps_emails_phones_and_company() {
        let mut skipped = BTreeMap::new();
        let line = json!({"data": {"type": "customer", "id": "5c1", "attributes": {
            "name": "Ada", "emails": [{"email": "a@x.io", "type": "home"}], "phones": [{"phone": "+1"}],
            "birthdayAt": "1815-12-10", "custom": {"tierStr": "gold"}},
            "relationships": {"company": {"data": {"type": "company", "id": "co1"}}, "org": {"data": {"id": "o"}}}}});
        let BulkLine::Object {
            op, klass, id, object, ..
        } = convert(&line, &mut skipped).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (op, klass.as_str(), id.as_deref()),
            (BulkOp::Upsert, "customer", Some("5c1"))
        );
        assert_eq!(object["emails"], json!(["a@x.io"]));
        assert_eq!(object["phones"], json!(["+1"]));
        assert_eq!(object["company"], "co1");
        assert_eq!(object["custom"]["tierStr"], "gold");
        assert_eq!(skipped.get("customer.birthdayAt"), Some(&1));
        assert_eq!(skipped.get("customer.relationships.org"), Some(&1));
    }

    #[test]
    fn conversations_take_their_name_as_subject_and_kobjects_their_klass() {
        let mut skipped = BTreeMap::new();
        let c = json!({"data": {"type": "conversation", "id": "cv", "attributes": {"name": "Where is it", "channels": ["email"]},
            "relationships": {"customer": {"data": {"id": "5c1"}}}}});
        let BulkLine::Object { object, .. } = convert(&c, &mut skipped).unwrap() else {
            panic!()
        };
        assert_eq!(object["subject"], "Where is it");
        assert_eq!(object["channel"], "email");
        let k = json!({"data": {"type": "kobject", "id": "k1", "attributes": {"title": "Order 1", "custom": {"totalNum": 5}},
            "relationships": {"klass": {"data": {"id": "order"}}, "customer": {"data": {"id": "5c1"}}}}});
        let BulkLine::Object { klass, object, .. } = convert(&k, &mut skipped).unwrap() else {
            panic!()
        };
        assert_eq!(klass, "order");
        assert_eq!(object["customer"], "5c1");
        assert!(convert(&json!({"data": {"type": "kobject", "id": "x"}}), &mut skipped).is_err());
    }

    #[test]
    fn a_body_wins_over_the_preview_and_a_channel_over_channels_in_any_order_and_neither_is_skipped() {
        let mut skipped = BTreeMap::new();
        for attrs in [
            json!({"preview": "short", "body": "the whole body"}),
            json!({"body": "the whole body", "preview": "short"}),
        ] {
            let m = json!({"data": {"type": "message", "id": "m", "attributes": attrs}});
            let BulkLine::Object { object, .. } = convert(&m, &mut skipped).unwrap() else {
                panic!()
            };
            assert_eq!(object["body"], "the whole body", "{attrs}");
        }
        let m = json!({"data": {"type": "message", "id": "m", "attributes": {"preview": "only a preview"}}});
        let BulkLine::Object { object, .. } = convert(&m, &mut skipped).unwrap() else {
            panic!()
        };
        assert_eq!(object["body"], "only a preview");
        for attrs in [
            json!({"channels": ["email", "sms"], "channel": "chat"}),
            json!({"channel": "chat", "channels": ["email"]}),
        ] {
            let c = json!({"data": {"type": "conversation", "id": "c", "attributes": attrs}});
            let BulkLine::Object { object, .. } = convert(&c, &mut skipped).unwrap() else {
                panic!()
            };
            assert_eq!(object["channel"], "chat", "{attrs}");
        }
        assert!(skipped.is_empty(), "{skipped:?}");
    }
}
