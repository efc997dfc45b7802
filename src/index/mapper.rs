//! Maps an object and its klass to a tantivy document. Types always come from the klass: a value
//! of an attribute no longer declared is not indexed, and a string is never guessed to be a date.

use tantivy::schema::OwnedValue;
use tantivy::TantivyDocument;

use super::analysis::fold;
use super::schema::{IndexSchema, EXTERNAL_ID_KEY, TAGS_KEY};
use crate::model::{AttrType, Klass, Object, Value};

/// Where the nums of a link key are indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkColumn {
    /// The typed `customer` field.
    Customer,
    /// The typed `company` field.
    Company,
    /// `links.<key>` (i64 values).
    Json(String),
}

impl LinkColumn {
    /// The column of a link key.
    pub fn of(key: &str) -> LinkColumn {
        match key {
            "customer" => LinkColumn::Customer,
            "company" => LinkColumn::Company,
            other => LinkColumn::Json(other.to_string()),
        }
    }

    /// The fast-field column name.
    pub fn column_name(&self) -> String {
        match self {
            LinkColumn::Customer => super::schema::CUSTOMER.to_string(),
            LinkColumn::Company => super::schema::COMPANY.to_string(),
            LinkColumn::Json(k) => IndexSchema::column("links", k),
        }
    }
}

/// Builds the document of one object.
pub fn to_document(s: &IndexSchema, klass: &Klass, obj: &Object) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_text(s.klass, &obj.klass);
    doc.add_u64(s.num, obj.num);
    doc.add_text(s.id, &obj.id);
    doc.add_i64(s.created, obj.created_at);
    doc.add_i64(s.updated, obj.updated_at);

    let mut kw: Vec<(String, OwnedValue)> = Vec::new();
    let mut words: Vec<(String, OwnedValue)> = Vec::new();
    let mut txt: Vec<(String, OwnedValue)> = Vec::new();
    let mut tprefix: Vec<(String, OwnedValue)> = Vec::new();
    let mut links: Vec<(String, OwnedValue)> = Vec::new();

    if let Some(ext) = obj.external_id.as_deref().filter(|e| !e.is_empty()) {
        kw.push((EXTERNAL_ID_KEY.into(), OwnedValue::Str(ext.to_string())));
    }
    let tags: Vec<OwnedValue> = obj
        .tags
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| OwnedValue::Str(fold(t)))
        .collect();
    if !tags.is_empty() {
        kw.push((TAGS_KEY.into(), OwnedValue::Array(tags)));
    }

    for attr in &klass.attributes {
        let Some(value) = obj.attr(&attr.key, attr.standard) else {
            continue;
        };
        let elems: Vec<&Value> = value.elements().iter().filter(|v| v.is_set()).collect();
        if elems.is_empty() {
            continue;
        }
        match attr.ty {
            AttrType::Text => {
                // Only text has no column to tell that it is set.
                doc.add_text(s.exists, &attr.key);
                let vals: Vec<OwnedValue> = elems
                    .iter()
                    .filter_map(|v| v.as_str())
                    .map(|t| OwnedValue::Str(t.to_string()))
                    .collect();
                txt.push((attr.key.clone(), OwnedValue::Array(vals)));
            }
            ty => {
                let vals: Vec<OwnedValue> = elems.iter().map(|v| keyword_value(ty, v)).collect();
                if ty == AttrType::String {
                    let raw: Vec<OwnedValue> = elems
                        .iter()
                        .filter_map(|v| v.as_str())
                        .map(|t| OwnedValue::Str(t.to_string()))
                        .collect();
                    words.push((attr.key.clone(), OwnedValue::Array(raw)));
                }
                if ty == AttrType::Tree {
                    let mut prefixes = Vec::new();
                    for v in elems.iter().filter_map(|v| v.as_str()) {
                        let folded = fold(v);
                        for (i, c) in folded.char_indices() {
                            if c == '.' {
                                prefixes.push(OwnedValue::Str(folded[..i].to_string()));
                            }
                        }
                        prefixes.push(OwnedValue::Str(folded));
                    }
                    tprefix.push((attr.key.clone(), OwnedValue::Array(prefixes)));
                }
                if ty == AttrType::Reference {
                    add_links(s, &mut doc, &mut links, &attr.key, obj.link(&attr.key));
                }
                kw.push((attr.key.clone(), OwnedValue::Array(vals)));
            }
        }
    }

    for rel in &klass.relationships {
        let Some(value) = obj.relationships.get(&rel.name) else {
            continue;
        };
        let ids: Vec<OwnedValue> = value
            .ids()
            .iter()
            .filter(|i| !i.is_empty())
            .map(|i| OwnedValue::Str(i.clone()))
            .collect();
        if ids.is_empty() {
            continue;
        }
        kw.push((rel.key.clone(), OwnedValue::Array(ids)));
        add_links(s, &mut doc, &mut links, &rel.key, obj.link(&rel.key));
    }

    for (field, entries) in [
        (s.kw, kw),
        (s.words, words),
        (s.txt, txt),
        (s.tprefix, tprefix),
        (s.links, links),
    ] {
        if !entries.is_empty() {
            doc.add_field_value(field, &OwnedValue::Object(entries));
        }
    }
    doc
}

fn add_links(
    s: &IndexSchema,
    doc: &mut TantivyDocument,
    links: &mut Vec<(String, OwnedValue)>,
    key: &str,
    nums: &[u64],
) {
    if nums.is_empty() {
        return;
    }
    match LinkColumn::of(key) {
        LinkColumn::Customer => nums.iter().for_each(|n| doc.add_u64(s.customer, *n)),
        LinkColumn::Company => nums.iter().for_each(|n| doc.add_u64(s.company, *n)),
        LinkColumn::Json(k) => {
            links.push((
                k,
                OwnedValue::Array(nums.iter().map(|n| OwnedValue::I64(*n as i64)).collect()),
            ));
        }
    }
}

/// The keyword form of a value of a non-text attribute: folded strings for case-insensitive types,
/// milliseconds for dates.
pub fn keyword_value(ty: AttrType, v: &Value) -> OwnedValue {
    match v {
        Value::Str(s) if ty.folds_case() => OwnedValue::Str(fold(s)),
        Value::Str(s) => OwnedValue::Str(s.clone()),
        Value::Num(n) => OwnedValue::F64(*n),
        Value::Int(i) => OwnedValue::I64(*i),
        Value::Bool(b) => OwnedValue::Bool(*b),
        Value::Date(ms) => OwnedValue::I64(*ms),
        Value::List(_) => OwnedValue::Null,
    }
}
