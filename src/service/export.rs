//! Offline export (`kindred export`): an org as bulk lines that `kindred import` reads back.
//!
//! Definitions come first: custom attributes of standard klasses and custom klasses (references
//! and relationships in a second pass, so klasses may reference each other), teams, users. Then
//! objects, klass after klass, each klass after the klasses its references and relationships name
//! (companies, customers, custom objects, conversations, messages, notes where nothing says
//! otherwise), and within a klass in creation order. So an import finds what a line names already
//! written. What that order cannot put first (a klass that names itself, klasses that name each
//! other) is left out of the object's line and set by an `update` line after every object: a
//! round trip loses nothing. API keys are not exported.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;

use serde_json::{json, Map, Value};

use super::error::{Result, ServiceError};
use super::App;
use crate::model::{AttrType, Attribute, Klass, Object, Org, OrgSchema, Team, User};
use crate::storage::Collection;

/// What an export wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExportSummary {
    /// Definition lines.
    pub definitions: u64,
    /// Object lines.
    pub objects: u64,
    /// `update` lines after the objects, for links the object order could not put first.
    pub link_updates: u64,
}

fn attribute_def(a: &Attribute) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(a.name));
    m.insert("type".into(), json!(a.ty.name()));
    if a.list {
        m.insert("list".into(), json!(true));
    }
    if let Some(d) = &a.display_name {
        m.insert("displayName".into(), json!(d));
    }
    if a.ty == AttrType::Enum {
        m.insert("values".into(), json!(a.values));
    }
    if let Some(t) = &a.target {
        m.insert("klass".into(), json!(t));
    }
    if a.required {
        m.insert("required".into(), json!(true));
    }
    if let Some(d) = &a.default {
        m.insert("default".into(), d.clone());
    }
    if let Some(v) = a.min {
        m.insert("min".into(), json!(v));
    }
    if let Some(v) = a.max {
        m.insert("max".into(), json!(v));
    }
    Value::Object(m)
}

fn klass_lines(k: &Klass, second_pass: bool) -> Option<Value> {
    let linking = |a: &&Attribute| a.ty == AttrType::Reference;
    let custom: Vec<&Attribute> = k.attributes.iter().filter(|a| !a.standard).collect();
    let attrs: Vec<Value> = custom
        .iter()
        .filter(|a| linking(a) == second_pass)
        .map(|a| attribute_def(a))
        .collect();
    let rels: Vec<Value> = if second_pass {
        k.relationships.iter().map(|r| json!({"name": r.name, "klass": r.klass, "cardinality": if r.cardinality == crate::model::Cardinality::One { "one" } else { "many" }})).collect()
    } else {
        vec![]
    };
    if k.standard && attrs.is_empty() && rels.is_empty() {
        return None;
    }
    if second_pass && attrs.is_empty() && rels.is_empty() {
        return None;
    }
    let mut object = json!({"name": k.name, "attributes": attrs});
    if !second_pass && !k.standard {
        for (key, v) in [("displayName", &k.display_name), ("icon", &k.icon), ("color", &k.color)] {
            if let Some(v) = v {
                object[key] = json!(v);
            }
        }
    }
    if !rels.is_empty() {
        object["relationships"] = json!(rels);
    }
    Some(json!({"op": "upsert", "resource": "klass", "object": object}))
}

fn rank(klass: &str) -> u8 {
    match klass {
        "company" => 0,
        "customer" => 1,
        "conversation" => 3,
        "message" => 4,
        "note" => 5,
        _ => 2,
    }
}

/// The position of each klass in the export: every klass after the klasses its references and
/// relationships name, the standard order ([`rank`], then the name) among those ready. Among
/// klasses that name each other, the first whose required references are all placed goes first
/// (its optional links to the others are set by `update` lines); then the standard order.
fn klass_order(schema: &OrgSchema) -> HashMap<String, usize> {
    // For each klass, the klasses it names, and those it names by a required reference.
    let mut deps: HashMap<&str, (BTreeSet<&str>, BTreeSet<&str>)> = HashMap::new();
    for k in schema.klasses.values() {
        let named = |t: &&str| *t != k.name && schema.klasses.contains_key(*t);
        let refs = k.attributes.iter().filter(|a| a.ty == AttrType::Reference);
        let all = refs
            .clone()
            .filter_map(|a| a.target.as_deref())
            .chain(k.relationships.iter().map(|r| r.klass.as_str()))
            .filter(named)
            .collect();
        let required = refs
            .filter(|a| a.required)
            .filter_map(|a| a.target.as_deref())
            .filter(named)
            .collect();
        deps.insert(k.name.as_str(), (all, required));
    }
    let mut remaining: BTreeSet<(u8, &str)> = deps.keys().map(|k| (rank(k), *k)).collect();
    let mut order = HashMap::new();
    while !remaining.is_empty() {
        let placed = |ds: &BTreeSet<&str>| ds.iter().all(|d| order.contains_key(*d));
        let next = remaining
            .iter()
            .find(|(_, k)| placed(&deps[k].0))
            .or_else(|| remaining.iter().find(|(_, k)| placed(&deps[k].1)))
            .or_else(|| remaining.iter().next())
            .copied()
            .expect("not empty");
        remaining.remove(&next);
        order.insert(next.1.to_string(), order.len());
    }
    order
}

/// Takes out of `body` (the object's line) the links to objects exported after it, and returns
/// them as the body of an `update` line (with the object's `updatedAt`, which the update keeps).
/// Required references stay: the object's line could not be written without them.
fn split_late_links(klass: &Klass, obj: &Object, order: &HashMap<String, usize>, body: &mut Value) -> Option<Value> {
    let at = |k: &str, num: u64| (order.get(k).copied().unwrap_or(0), num);
    let here = at(&obj.klass, obj.num);
    let late =
        |target: &str, key: &str| order.contains_key(target) && obj.link(key).iter().any(|n| at(target, *n) >= here);
    let mut update = Map::new();
    for a in klass
        .attributes
        .iter()
        .filter(|a| a.ty == AttrType::Reference && !a.required)
    {
        let Some(target) = a.target.as_deref() else {
            continue;
        };
        if !late(target, &a.key) {
            continue;
        }
        let (from, to) = if a.standard {
            (body.as_object_mut()?, &mut update)
        } else {
            let custom = update.entry("custom").or_insert_with(|| json!({}));
            (body.get_mut("custom")?.as_object_mut()?, custom.as_object_mut()?)
        };
        if let Some(v) = from.remove(&a.name) {
            to.insert(a.name.clone(), v);
        }
    }
    for r in &klass.relationships {
        if !late(&r.klass, &r.key) {
            continue;
        }
        let rels = update.entry("relationships").or_insert_with(|| json!({}));
        if let Some(v) = body.get_mut("relationships")?.as_object_mut()?.remove(&r.name) {
            rels.as_object_mut()?.insert(r.name.clone(), v);
        }
    }
    if update.is_empty() {
        return None;
    }
    update.insert("updatedAt".into(), body.get("updatedAt")?.clone());
    Some(Value::Object(update))
}

impl App {
    /// Writes an org as bulk lines; `progress(done, total)` counts objects.
    pub fn export_org(
        &self,
        org: &Org,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ExportSummary> {
        let io = |e: std::io::Error| ServiceError::Internal(format!("writing the export: {e}"));
        let rt = self.runtime(org)?;
        let schema = rt.schema();
        let mut summary = ExportSummary::default();
        let line = |out: &mut dyn Write, v: &Value| -> Result<()> {
            serde_json::to_writer(&mut *out, v).map_err(|e| ServiceError::Internal(e.to_string()))?;
            out.write_all(b"\n").map_err(io)
        };
        for second in [false, true] {
            for k in schema.klasses.values() {
                if let Some(v) = klass_lines(k, second) {
                    line(out, &v)?;
                    summary.definitions += 1;
                }
            }
        }
        let teams: Vec<Team> = self.store().list_docs(org.num, Collection::Team)?;
        for t in &teams {
            line(
                out,
                &json!({"op": "upsert", "resource": "team", "object": {"id": t.id, "name": t.name}}),
            )?;
            summary.definitions += 1;
        }
        let users: Vec<User> = self.store().list_docs(org.num, Collection::User)?;
        for u in &users {
            line(
                out,
                &json!({"op": "upsert", "resource": "user", "object": {"id": u.id, "name": u.name, "email": u.email, "role": u.role.name(), "teams": u.teams}}),
            )?;
            summary.definitions += 1;
        }
        let positions = klass_order(&schema);
        // (klass position, num) per object: 16 bytes each, the one thing held per object.
        let mut order: Vec<(usize, u64)> = Vec::new();
        for obj in self.store().scan_objects(org.num) {
            let obj = obj?;
            order.push((positions.get(&obj.klass).copied().unwrap_or(usize::MAX), obj.num));
        }
        order.sort_unstable();
        let total = order.len() as u64;
        // The objects (indexes into `order`, one bit each) whose links were left for `update` lines.
        let mut late = vec![0u64; order.len().div_ceil(64)];
        // An object's line body without its late links, and the `update` body that sets them.
        let split = |obj: &Object| -> (Value, Option<Value>) {
            let mut body = self.render(&schema, obj);
            let update = schema
                .klass(&obj.klass)
                .and_then(|k| split_late_links(k, obj, &positions, &mut body));
            (body, update)
        };
        for (i, (_, num)) in order.iter().enumerate() {
            let Some(obj) = self.store().object(org.num, *num)? else {
                continue;
            };
            let (mut body, update) = split(&obj);
            if update.is_some() {
                late[i / 64] |= 1 << (i % 64);
            }
            if let Value::Object(m) = &mut body {
                m.remove("rev");
                m.remove("klass");
                m.remove("id");
            }
            line(
                out,
                &json!({"op": "upsert", "klass": obj.klass, "id": obj.id, "object": body}),
            )?;
            summary.objects += 1;
            if i % 10_000 == 0 {
                progress(i as u64, total);
            }
        }
        // The links left out: a second pass over those objects only, so no line waits in memory
        // (the store does not change under an export: the service is stopped).
        let marked = |i: &usize| late[i / 64] & (1 << (i % 64)) != 0;
        for (_, num) in order.iter().enumerate().filter(|(i, _)| marked(i)).map(|(_, o)| o) {
            let Some(obj) = self.store().object(org.num, *num)? else {
                continue;
            };
            if let (_, Some(update)) = split(&obj) {
                line(
                    out,
                    &json!({"op": "update", "klass": obj.klass, "id": obj.id, "object": update}),
                )?;
                summary.link_updates += 1;
            }
        }
        progress(total, total);
        out.flush().map_err(io)?;
        Ok(summary)
    }
}
