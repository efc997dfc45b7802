//! Evaluates a filter against one object in memory, with the index's semantics: a positive
//! predicate holds when any set element satisfies it, `Not` is exact negation, joins count the
//! related objects that satisfy the inner filter (once each, however many relationships reach
//! them). Automation conditions and segment membership use it; the differential property test
//! checks it against the index.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ops::Bound;
use std::rc::Rc;

use super::filter::{Filter, Pred, Scalar, Target, TextWord};
use crate::index::analysis::{fold, text_tokens, word_tokens};
use crate::model::{AttrType, Object, OrgSchema, Relation, Side, Value};

/// Finds the objects related to an object.
pub trait Related {
    /// The objects of `rel.related` that `obj` reaches through `rel`.
    fn related(&self, obj: &Object, rel: &Relation) -> Vec<Object>;
}

/// No related objects (conditions that use no joins).
pub struct NoRelated;

impl Related for NoRelated {
    fn related(&self, _obj: &Object, _rel: &Relation) -> Vec<Object> {
        Vec::new()
    }
}

/// Related objects from an in-memory list (tests, small sets).
pub struct InMemory<'a>(pub &'a [Object]);

impl Related for InMemory<'_> {
    fn related(&self, obj: &Object, rel: &Relation) -> Vec<Object> {
        match rel.side {
            Side::Child => self
                .0
                .iter()
                .filter(|o| o.klass == rel.related && o.link(&rel.key).contains(&obj.num))
                .cloned()
                .collect(),
            Side::Parent => {
                let nums = obj.link(&rel.key);
                self.0
                    .iter()
                    .filter(|o| o.klass == rel.related && nums.contains(&o.num))
                    .cloned()
                    .collect()
            }
        }
    }
}

/// What evaluation may consult besides the object.
pub struct EvalContext<'a> {
    /// The org schema (free text needs the types of attributes).
    pub schema: &'a OrgSchema,
    /// Related objects.
    pub related: &'a dyn Related,
    /// Changed paths of the event being evaluated (automation).
    pub changed: &'a [String],
}

/// Whether `f` holds for `obj`.
pub fn matches(f: &Filter, obj: &Object, ctx: &EvalContext<'_>) -> bool {
    match f {
        Filter::All => true,
        Filter::Nothing => false,
        Filter::And(cs) => cs.iter().all(|c| matches(c, obj, ctx)),
        Filter::Or(cs) => cs.iter().any(|c| matches(c, obj, ctx)),
        Filter::Not(c) => !matches(c, obj, ctx),
        Filter::Cond { target, pred } => cond(target, pred, obj, ctx),
        Filter::Join { rels, filter, count } => {
            // An object counts once, however many relationships (or repeated links) reach it.
            let mut reached: Vec<Object> = rels.iter().flat_map(|rel| ctx.related.related(obj, rel)).collect();
            reached.sort_by_key(|r| r.num);
            reached.dedup_by_key(|r| r.num);
            let n = reached.iter().filter(|r| matches(filter, r, ctx)).count() as u64;
            count.contains(n)
        }
        Filter::Text(q) => text(&q.words, obj, ctx.schema),
    }
}

/// The set values of a target, typed like query scalars.
pub fn values(target: &Target, obj: &Object, changed: &[String]) -> Vec<Scalar> {
    match target {
        Target::Id => vec![Scalar::Str(obj.id.clone())],
        Target::Klass => vec![Scalar::Str(obj.klass.clone())],
        Target::ExternalId => obj
            .external_id
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| Scalar::Str(e.clone()))
            .collect(),
        Target::Tags => obj
            .tags
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| Scalar::Str(fold(t)))
            .collect(),
        Target::CreatedAt => vec![Scalar::Int(obj.created_at)],
        Target::UpdatedAt => vec![Scalar::Int(obj.updated_at)],
        Target::Changed => changed.iter().map(|c| Scalar::Str(c.clone())).collect(),
        Target::Rel { name, .. } => obj
            .relationships
            .get(name)
            .map(|r| {
                r.ids()
                    .iter()
                    .filter(|i| !i.is_empty())
                    .map(|i| Scalar::Str(i.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        Target::Attr(a) => match obj.attr(&a.key, a.standard) {
            None => Vec::new(),
            Some(v) => v
                .elements()
                .iter()
                .filter(|e| e.is_set())
                .filter_map(|e| scalar_of(a.ty, e))
                .collect(),
        },
    }
}

fn scalar_of(ty: AttrType, v: &Value) -> Option<Scalar> {
    Some(match v {
        Value::Str(s) if ty.folds_case() => Scalar::Str(fold(s)),
        Value::Str(s) => Scalar::Str(s.clone()),
        Value::Num(n) => Scalar::Num(*n),
        Value::Int(i) => Scalar::Int(*i),
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Date(ms) => Scalar::Int(*ms),
        Value::List(_) => return None,
    })
}

fn cond(target: &Target, pred: &Pred, obj: &Object, ctx: &EvalContext<'_>) -> bool {
    let vals = values(target, obj, ctx.changed);
    match pred {
        Pred::Set => !vals.is_empty(),
        Pred::Eq(wanted) => vals.iter().any(|v| wanted.iter().any(|w| scalar_eq(v, w))),
        Pred::Prefix(p) => vals.iter().any(|v| matches!(v, Scalar::Str(s) if s.starts_with(p.as_str()))),
        Pred::TreePrefix(p) => vals.iter().any(|v| {
            matches!(v, Scalar::Str(s) if s == p || (s.starts_with(p.as_str()) && s.as_bytes().get(p.len()) == Some(&b'.')))
        }),
        Pred::Range(lo, hi) => vals.iter().any(|v| in_range(v, lo, hi)),
        Pred::Contains(tokens) => {
            let is_text = matches!(target, Target::Attr(a) if a.ty == AttrType::Text);
            let have: Vec<Rc<Vec<String>>> = vals
                .iter()
                .filter_map(|v| match v {
                    Scalar::Str(s) => Some(tokens_of(s, is_text)),
                    _ => None,
                })
                .collect();
            tokens.iter().all(|t| have.iter().any(|h| h.contains(t)))
        }
    }
}

/// The tokens of a value, remembered for the last few values seen on this thread: the rules of
/// one write, or the saved searches tried on one object, analyse the same text again and again.
fn tokens_of(s: &str, is_text: bool) -> Rc<Vec<String>> {
    const KEPT: usize = 8;
    /// (analysed as text, the value, its tokens).
    type Recent = VecDeque<(bool, String, Rc<Vec<String>>)>;
    thread_local! {
        static RECENT: RefCell<Recent> = const { RefCell::new(VecDeque::new()) };
    }
    RECENT.with(|r| {
        if let Some((_, _, t)) = r.borrow().iter().find(|(k, v, _)| *k == is_text && v == s) {
            return t.clone();
        }
        let t = Rc::new(if is_text { text_tokens(s) } else { word_tokens(s) });
        let mut r = r.borrow_mut();
        if r.len() == KEPT {
            r.pop_front();
        }
        r.push_back((is_text, s.to_string(), t.clone()));
        t
    })
}

fn scalar_eq(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Str(x), Scalar::Str(y)) => x == y,
        (Scalar::Num(x), Scalar::Num(y)) => x == y,
        (Scalar::Int(x), Scalar::Int(y)) => x == y,
        (Scalar::Num(x), Scalar::Int(y)) | (Scalar::Int(y), Scalar::Num(x)) => *x == *y as f64,
        (Scalar::Bool(x), Scalar::Bool(y)) => x == y,
        _ => false,
    }
}

fn cmp(a: &Scalar, b: &Scalar) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => Some(x.cmp(y)),
        (Scalar::Num(x), Scalar::Num(y)) => x.partial_cmp(y),
        (Scalar::Num(x), Scalar::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Scalar::Int(x), Scalar::Num(y)) => (*x as f64).partial_cmp(y),
        _ => None,
    }
}

fn in_range(v: &Scalar, lo: &Bound<Scalar>, hi: &Bound<Scalar>) -> bool {
    use std::cmp::Ordering::*;
    let lo_ok = match lo {
        Bound::Unbounded => true,
        Bound::Included(b) => matches!(cmp(v, b), Some(Greater | Equal)),
        Bound::Excluded(b) => matches!(cmp(v, b), Some(Greater)),
    };
    let hi_ok = match hi {
        Bound::Unbounded => true,
        Bound::Included(b) => matches!(cmp(v, b), Some(Less | Equal)),
        Bound::Excluded(b) => matches!(cmp(v, b), Some(Less)),
    };
    lo_ok && hi_ok
}

fn text(words: &[TextWord], obj: &Object, schema: &OrgSchema) -> bool {
    let Some(klass) = schema.klass(&obj.klass) else {
        return false;
    };
    let mut stems: Vec<String> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    for a in &klass.attributes {
        let Some(v) = obj.attr(&a.key, a.standard) else {
            continue;
        };
        for e in v.elements() {
            let Some(s) = e.as_str().filter(|s| !s.is_empty()) else {
                continue;
            };
            match a.ty {
                AttrType::Text => stems.extend(text_tokens(s)),
                AttrType::String => plain.extend(word_tokens(s)),
                _ => {}
            }
        }
    }
    words
        .iter()
        .all(|w| w.stem.as_ref().is_some_and(|s| stems.contains(s)) || plain.contains(&w.word))
}
