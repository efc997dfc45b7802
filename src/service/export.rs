//! Offline export (`kindred export`): an org as bulk lines that `kindred import` reads back.
//!
//! Definitions come first: custom attributes of standard klasses and custom klasses (references
//! and relationships in a second pass, so klasses may reference each other), teams, users. Then
//! objects by klass, so referenced objects come before the objects that name them: companies,
//! customers, custom objects, conversations, messages, notes. API keys are not exported.

use std::io::Write;

use serde_json::{json, Map, Value};

use super::error::{Result, ServiceError};
use super::App;
use crate::model::{AttrType, Attribute, Klass, Org, Team, User};
use crate::storage::Collection;

/// What an export wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExportSummary {
    /// Definition lines.
    pub definitions: u64,
    /// Object lines.
    pub objects: u64,
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
        let mut order: Vec<(u8, String, u64)> = Vec::new();
        for obj in self.store().scan_objects(org.num) {
            let obj = obj?;
            order.push((rank(&obj.klass), obj.klass.clone(), obj.num));
        }
        order.sort_unstable();
        let total = order.len() as u64;
        for (i, (_, klass, num)) in order.into_iter().enumerate() {
            let Some(obj) = self.store().object(org.num, num)? else {
                continue;
            };
            let mut body = self.render(&schema, &obj);
            if let Value::Object(m) = &mut body {
                m.remove("rev");
                m.remove("klass");
                m.remove("id");
            }
            line(
                out,
                &json!({"op": "upsert", "klass": klass, "id": obj.id, "object": body}),
            )?;
            summary.objects += 1;
            if i % 10_000 == 0 {
                progress(i as u64, total);
            }
        }
        progress(total, total);
        out.flush().map_err(io)?;
        Ok(summary)
    }
}
