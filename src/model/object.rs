//! Objects: one customer, company, conversation, message, note or custom object (kobject).
//!
//! An object's standard attributes live at the top level of its JSON, custom ones under `custom`,
//! declared relationships under `relationships`. Internally every object also has a `num`, an
//! org-unique u64 that never changes, which the index uses for sorting ties and joins, and `links`:
//! the nums of the objects its references and relationships name, resolved when it was written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::klass::{Cardinality, Klass};
use super::time::{format_time, Millis};
use super::value::Value;

/// The value of one relationship: one id or a list of ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RelValue {
    /// A one-relationship.
    One(String),
    /// A many-relationship.
    Many(Vec<String>),
}

impl RelValue {
    /// The ids it names.
    pub fn ids(&self) -> &[String] {
        match self {
            RelValue::One(id) => std::slice::from_ref(id),
            RelValue::Many(ids) => ids,
        }
    }
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Internal org-unique number (never shown, never reused).
    pub num: u64,
    /// Public id, unique in the org.
    pub id: String,
    /// Klass name.
    pub klass: String,
    /// Caller's id, unique per klass in the org.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Standard attributes by name.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// Custom attributes by attribute key (`c12`), so a deleted attribute's values can never
    /// reappear under a new declaration of the same name.
    #[serde(default)]
    pub custom: BTreeMap<String, Value>,
    /// Relationships by name.
    #[serde(default)]
    pub relationships: BTreeMap<String, RelValue>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Last update time.
    pub updated_at: Millis,
    /// Revision, incremented by every write; the `If-Match` value.
    pub rev: u64,
    /// Attribute or relationship key -> nums of the objects it names.
    #[serde(default)]
    pub links: BTreeMap<String, Vec<u64>>,
}

impl Object {
    /// The value of an attribute by its key: standard attributes live in `fields` (their key is
    /// their name), custom ones in `custom`.
    pub fn attr(&self, key: &str, standard: bool) -> Option<&Value> {
        if standard {
            self.fields.get(key)
        } else {
            self.custom.get(key)
        }
    }

    /// The nums linked under an attribute or relationship key.
    pub fn link(&self, key: &str) -> &[u64] {
        self.links.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The string value of a standard reference (`customer`, `company`, `conversation`).
    pub fn reference(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// Renders the object as API JSON. With its klass, attributes come in declaration order and
    /// values of attributes no longer declared are left out.
    pub fn to_json(&self, klass: Option<&Klass>) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert("klass".into(), self.klass.clone().into());
        if let Some(ext) = &self.external_id {
            m.insert("externalId".into(), ext.clone().into());
        }
        let mut custom = serde_json::Map::new();
        match klass {
            Some(k) => {
                for a in &k.attributes {
                    if let Some(v) = self.attr(&a.key, a.standard) {
                        if a.standard {
                            m.insert(a.name.clone(), v.to_json());
                        } else {
                            custom.insert(a.name.clone(), v.to_json());
                        }
                    }
                }
            }
            None => {
                for (name, v) in &self.fields {
                    m.insert(name.clone(), v.to_json());
                }
                for (name, v) in &self.custom {
                    custom.insert(name.clone(), v.to_json());
                }
            }
        }
        m.insert("custom".into(), custom.into());
        let mut rels = serde_json::Map::new();
        for (name, v) in &self.relationships {
            let declared = klass.map(|k| k.relationship(name));
            match (declared, v) {
                (Some(None), _) => continue,
                (Some(Some(r)), RelValue::One(id)) if r.cardinality == Cardinality::Many => {
                    rels.insert(name.clone(), vec![id.clone()].into());
                }
                (_, RelValue::One(id)) => {
                    rels.insert(name.clone(), id.clone().into());
                }
                (_, RelValue::Many(ids)) => {
                    rels.insert(name.clone(), ids.clone().into());
                }
            }
        }
        m.insert("relationships".into(), rels.into());
        m.insert("tags".into(), self.tags.clone().into());
        m.insert("createdAt".into(), format_time(self.created_at).into());
        m.insert("updatedAt".into(), format_time(self.updated_at).into());
        m.insert("rev".into(), self.rev.into());
        serde_json::Value::Object(m)
    }

    /// The field paths whose values differ between two versions of an object
    /// (`status`, `custom.totalNum`, `relationships.shipment`, `tags`, `externalId`); custom
    /// attribute keys are named through the klass when given.
    pub fn changed_paths(before: Option<&Object>, after: Option<&Object>, klass: Option<&Klass>) -> Vec<String> {
        let empty = Object::empty();
        let (b, a) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
        let mut out = Vec::new();
        if b.external_id != a.external_id {
            out.push("externalId".to_string());
        }
        diff_maps(&b.fields, &a.fields, "", &mut out);
        let start = out.len();
        diff_maps(&b.custom, &a.custom, "custom.", &mut out);
        if let Some(k) = klass {
            for path in &mut out[start..] {
                let key = &path["custom.".len()..];
                if let Some(attr) = k.attributes.iter().find(|x| !x.standard && x.key == key) {
                    *path = format!("custom.{}", attr.name);
                }
            }
        }
        diff_maps(&b.relationships, &a.relationships, "relationships.", &mut out);
        if b.tags != a.tags {
            out.push("tags".to_string());
        }
        if b.created_at != a.created_at {
            out.push("createdAt".to_string());
        }
        out
    }

    /// An object with no id, klass or values (num, rev and times 0).
    pub(crate) fn empty() -> Object {
        Object {
            num: 0,
            id: String::new(),
            klass: String::new(),
            external_id: None,
            fields: BTreeMap::new(),
            custom: BTreeMap::new(),
            relationships: BTreeMap::new(),
            tags: Vec::new(),
            created_at: 0,
            updated_at: 0,
            rev: 0,
            links: BTreeMap::new(),
        }
    }
}

fn diff_maps<V: PartialEq>(b: &BTreeMap<String, V>, a: &BTreeMap<String, V>, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in a {
        if b.get(k) != Some(v) {
            out.push(format!("{prefix}{k}"));
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push(format!("{prefix}{k}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Object {
        let mut o = Object::empty();
        o.num = 7;
        o.id = "c-1".into();
        o.klass = "customer".into();
        o.fields.insert("name".into(), Value::Str("Ada".into()));
        o.custom.insert("tierStr".into(), Value::Str("gold".into()));
        o.created_at = 1_700_000_000_000;
        o.updated_at = 1_700_000_000_000;
        o.rev = 1;
        o
    }

    #[test]
    fn json_shape_has_every_top_level_field() {
        let j = sample().to_json(None);
        assert_eq!(j["id"], "c-1");
        assert_eq!(j["name"], "Ada");
        assert_eq!(j["custom"]["tierStr"], "gold");
        assert_eq!(j["createdAt"], "2023-11-14T22:13:20.000Z");
        assert_eq!(j["rev"], 1);
        assert!(j.get("externalId").is_none());
    }

    #[test]
    fn changed_paths_name_fields_by_their_api_path() {
        let a = sample();
        let mut b = a.clone();
        b.custom.insert("tierStr".into(), Value::Str("silver".into()));
        b.fields.remove("name");
        b.tags.push("vip".into());
        let mut changed = Object::changed_paths(Some(&a), Some(&b), None);
        changed.sort();
        assert_eq!(changed, vec!["custom.tierStr", "name", "tags"]);
    }

    #[test]
    fn stored_form_round_trips() {
        let o = sample();
        let bytes = rmp_serde::to_vec_named(&o).unwrap();
        assert_eq!(rmp_serde::from_slice::<Object>(&bytes).unwrap(), o);
    }
}

/// A value that must be unique in the org, maintained as a lookup entry beside the object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UniqueKey {
    /// The object's id, unique among all objects of the org.
    Id(String),
    /// An externalId, unique per klass.
    External {
        /// Klass name.
        klass: String,
        /// The external id.
        external_id: String,
    },
    /// A customer email, unique among customers, compared case-insensitively.
    Email(String),
}

impl Object {
    /// The lookup entries this object owns.
    pub fn unique_keys(&self) -> Vec<UniqueKey> {
        let mut keys = vec![UniqueKey::Id(self.id.clone())];
        if let Some(ext) = &self.external_id {
            keys.push(UniqueKey::External {
                klass: self.klass.clone(),
                external_id: ext.clone(),
            });
        }
        if self.klass == "customer" {
            if let Some(emails) = self.fields.get("emails") {
                for e in emails.elements() {
                    if let Some(s) = e.as_str().filter(|s| !s.is_empty()) {
                        let key = UniqueKey::Email(s.to_lowercase());
                        if !keys.contains(&key) {
                            keys.push(key);
                        }
                    }
                }
            }
        }
        keys
    }
}

/// Serializes an object to its API JSON without building an intermediate `serde_json::Value`
/// (the same shape as [`Object::to_json`]); `score` adds `_score`.
pub struct ObjectView<'a> {
    /// The object.
    pub obj: &'a Object,
    /// Its klass: attribute order and which values are still declared.
    pub klass: Option<&'a Klass>,
    /// Relevance, for free-text searches.
    pub score: Option<f32>,
}

struct ValueView<'a>(&'a Value);

impl serde::Serialize for ValueView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Str(v) => s.serialize_str(v),
            Value::Num(n) if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 => s.serialize_i64(*n as i64),
            Value::Num(n) if n.is_finite() => s.serialize_f64(*n),
            Value::Num(_) => s.serialize_none(),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Date(ms) => s.serialize_str(&format_time(*ms)),
            Value::List(items) => s.collect_seq(items.iter().map(ValueView)),
        }
    }
}

struct CustomView<'a>(&'a Object, Option<&'a Klass>);

impl serde::Serialize for CustomView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self.1 {
            Some(k) => {
                for a in k.attributes.iter().filter(|a| !a.standard) {
                    if let Some(v) = self.0.custom.get(&a.key) {
                        m.serialize_entry(&a.name, &ValueView(v))?;
                    }
                }
            }
            None => {
                for (name, v) in &self.0.custom {
                    m.serialize_entry(name, &ValueView(v))?;
                }
            }
        }
        m.end()
    }
}

struct RelsView<'a>(&'a Object, Option<&'a Klass>);

impl serde::Serialize for RelsView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (name, v) in &self.0.relationships {
            let declared = self.1.map(|k| k.relationship(name));
            match (declared, v) {
                (Some(None), _) => continue,
                (Some(Some(r)), RelValue::One(id)) if r.cardinality == Cardinality::Many => {
                    m.serialize_entry(name, &[id])?
                }
                (_, RelValue::One(id)) => m.serialize_entry(name, id)?,
                (_, RelValue::Many(ids)) => m.serialize_entry(name, ids)?,
            }
        }
        m.end()
    }
}

impl serde::Serialize for ObjectView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let o = self.obj;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &o.id)?;
        m.serialize_entry("klass", &o.klass)?;
        if let Some(ext) = &o.external_id {
            m.serialize_entry("externalId", ext)?;
        }
        match self.klass {
            Some(k) => {
                for a in k.attributes.iter().filter(|a| a.standard) {
                    if let Some(v) = o.fields.get(&a.key) {
                        m.serialize_entry(&a.name, &ValueView(v))?;
                    }
                }
            }
            None => {
                for (name, v) in &o.fields {
                    m.serialize_entry(name, &ValueView(v))?;
                }
            }
        }
        m.serialize_entry("custom", &CustomView(o, self.klass))?;
        m.serialize_entry("relationships", &RelsView(o, self.klass))?;
        m.serialize_entry("tags", &o.tags)?;
        m.serialize_entry("createdAt", &format_time(o.created_at))?;
        m.serialize_entry("updatedAt", &format_time(o.updated_at))?;
        m.serialize_entry("rev", &o.rev)?;
        if let Some(score) = self.score {
            m.serialize_entry("_score", &score)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;

    #[test]
    fn the_view_serializes_like_to_json() {
        let mut o = Object {
            num: 1,
            id: "o-1".into(),
            klass: "order".into(),
            external_id: Some("X-1".into()),
            fields: BTreeMap::new(),
            custom: BTreeMap::new(),
            relationships: BTreeMap::new(),
            tags: vec!["a".into()],
            created_at: 1_700_000_000_123,
            updated_at: 1_700_000_000_456,
            rev: 3,
            links: BTreeMap::new(),
        };
        o.fields.insert("title".into(), Value::Str("T".into()));
        o.custom.insert("c1".into(), Value::Num(2.0));
        o.custom
            .insert("c2".into(), Value::List(vec![Value::Date(0), Value::Date(1)]));
        o.relationships
            .insert("ships".into(), RelValue::Many(vec!["s1".into()]));
        let view = serde_json::to_value(ObjectView {
            obj: &o,
            klass: None,
            score: None,
        })
        .unwrap();
        assert_eq!(view, o.to_json(None));
    }
}
