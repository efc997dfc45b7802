//! Maps an object and its klass to a tantivy document. Types always come from the klass: a value
//! of an attribute no longer declared is not indexed, and a string is never guessed to be a date.

use std::borrow::Cow;

use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf};
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
pub fn to_document<'o>(s: &IndexSchema, klass: &'o Klass, obj: &'o Object) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_text(s.klass, &obj.klass);
    doc.add_u64(s.num, obj.num);
    doc.add_text(s.id, &obj.id);
    doc.add_i64(s.created, obj.created_at);
    doc.add_i64(s.updated, obj.updated_at);

    let mut kw: Vec<(&str, Node<'_>)> = Vec::new();
    let mut words: Vec<(&str, Node<'_>)> = Vec::new();
    let mut txt: Vec<(&str, Node<'_>)> = Vec::new();
    let mut tprefix: Vec<(&str, Node<'_>)> = Vec::new();
    let mut links: Vec<(&str, Node<'_>)> = Vec::new();

    if let Some(ext) = obj.external_id.as_deref().filter(|e| !e.is_empty()) {
        kw.push((EXTERNAL_ID_KEY, Node::Str(Cow::Borrowed(ext))));
    }
    let tags: Vec<Node<'_>> = obj
        .tags
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| Node::Str(Cow::Owned(fold(t))))
        .collect();
    if !tags.is_empty() {
        kw.push((TAGS_KEY, Node::Array(tags)));
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
                let vals: Vec<Node<'_>> = elems
                    .iter()
                    .filter_map(|v| v.as_str())
                    .map(|t| Node::Str(Cow::Borrowed(t)))
                    .collect();
                txt.push((&attr.key, Node::Array(vals)));
            }
            ty => {
                let vals: Vec<Node<'_>> = elems.iter().map(|v| keyword_value(ty, v)).collect();
                if ty == AttrType::String {
                    let raw: Vec<Node<'_>> = elems
                        .iter()
                        .filter_map(|v| v.as_str())
                        .map(|t| Node::Str(Cow::Borrowed(t)))
                        .collect();
                    words.push((&attr.key, Node::Array(raw)));
                }
                if ty == AttrType::Tree {
                    let mut prefixes = Vec::new();
                    for v in elems.iter().filter_map(|v| v.as_str()) {
                        let folded = fold(v);
                        for (i, c) in folded.char_indices() {
                            if c == '.' {
                                prefixes.push(Node::Str(Cow::Owned(folded[..i].to_string())));
                            }
                        }
                        prefixes.push(Node::Str(Cow::Owned(folded)));
                    }
                    tprefix.push((&attr.key, Node::Array(prefixes)));
                }
                if ty == AttrType::Reference {
                    add_links(s, &mut doc, &mut links, &attr.key, obj.link(&attr.key));
                }
                kw.push((&attr.key, Node::Array(vals)));
            }
        }
    }

    for rel in &klass.relationships {
        let Some(value) = obj.relationships.get(&rel.name) else {
            continue;
        };
        let ids: Vec<Node<'_>> = value
            .ids()
            .iter()
            .filter(|i| !i.is_empty())
            .map(|i| Node::Str(Cow::Borrowed(i.as_str())))
            .collect();
        if ids.is_empty() {
            continue;
        }
        kw.push((&rel.key, Node::Array(ids)));
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
            doc.add_field_value(field, &Node::Object(entries));
        }
    }
    doc
}

fn add_links<'o>(
    s: &IndexSchema,
    doc: &mut TantivyDocument,
    links: &mut Vec<(&'o str, Node<'o>)>,
    key: &'o str,
    nums: &[u64],
) {
    if nums.is_empty() {
        return;
    }
    match LinkColumn::of(key) {
        LinkColumn::Customer => nums.iter().for_each(|n| doc.add_u64(s.customer, *n)),
        LinkColumn::Company => nums.iter().for_each(|n| doc.add_u64(s.company, *n)),
        LinkColumn::Json(_) => {
            links.push((key, Node::Array(nums.iter().map(|n| Node::I64(*n as i64)).collect())));
        }
    }
}

/// The keyword form of a value of a non-text attribute: folded strings for case-insensitive types,
/// milliseconds for dates.
fn keyword_value(ty: AttrType, v: &Value) -> Node<'_> {
    match v {
        Value::Str(s) if ty.folds_case() => Node::Str(Cow::Owned(fold(s))),
        Value::Str(s) => Node::Str(Cow::Borrowed(s)),
        Value::Num(n) => Node::F64(*n),
        Value::Int(i) => Node::I64(*i),
        Value::Bool(b) => Node::Bool(*b),
        Value::Date(ms) => Node::I64(*ms),
        Value::List(_) => Node::Null,
    }
}

/// A JSON value handed to tantivy, which copies it into the document: keys and strings that
/// need no folding borrow from the klass and the object instead of being copied twice.
#[derive(Debug)]
enum Node<'o> {
    Null,
    Str(Cow<'o, str>),
    I64(i64),
    F64(f64),
    Bool(bool),
    Array(Vec<Node<'o>>),
    Object(Vec<(&'o str, Node<'o>)>),
}

impl<'a, 'o: 'a> tantivy::schema::Value<'a> for &'a Node<'o> {
    type ArrayIter = std::slice::Iter<'a, Node<'o>>;
    type ObjectIter = Entries<'a, 'o>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        match *self {
            Node::Null => ReferenceValue::Leaf(ReferenceValueLeaf::Null),
            Node::Str(s) => ReferenceValue::Leaf(ReferenceValueLeaf::Str(s)),
            Node::I64(n) => ReferenceValue::Leaf(ReferenceValueLeaf::I64(*n)),
            Node::F64(n) => ReferenceValue::Leaf(ReferenceValueLeaf::F64(*n)),
            Node::Bool(b) => ReferenceValue::Leaf(ReferenceValueLeaf::Bool(*b)),
            Node::Array(items) => ReferenceValue::Array(items.iter()),
            Node::Object(entries) => ReferenceValue::Object(Entries(entries.iter())),
        }
    }
}

/// The entries of a [`Node::Object`], as tantivy walks them.
struct Entries<'a, 'o>(std::slice::Iter<'a, (&'o str, Node<'o>)>);

impl<'a, 'o: 'a> Iterator for Entries<'a, 'o> {
    type Item = (&'a str, &'a Node<'o>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (*k, v))
    }
}
