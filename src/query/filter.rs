//! The validated query: every field resolved to what is indexed for it, every value typed.

use std::ops::Bound;

use crate::model::{AttrType, Relation};

/// A typed query value. Strings of case-insensitive types are already lowercased; dates are ms.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Str(String),
    /// A number (f64 attributes).
    Num(f64),
    /// An integer, or a date in ms.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// What a condition reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The object id (exact).
    Id,
    /// The externalId (exact).
    ExternalId,
    /// The klass name (exact).
    Klass,
    /// Tags (case-insensitive).
    Tags,
    /// createdAt.
    CreatedAt,
    /// updatedAt.
    UpdatedAt,
    /// A declared attribute.
    Attr(AttrRef),
    /// A relationship's ids.
    Rel {
        /// Relationship name.
        name: String,
        /// Index key.
        key: String,
    },
    /// The changed paths of an event (automation only).
    Changed,
}

/// A resolved attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrRef {
    /// Name.
    pub name: String,
    /// Index key.
    pub key: String,
    /// Type.
    pub ty: AttrType,
    /// Is a list.
    pub list: bool,
    /// Standard (top-level) or custom.
    pub standard: bool,
}

/// A positive predicate on a field's values; it holds when any element satisfies it.
#[derive(Debug, Clone, PartialEq)]
pub enum Pred {
    /// Equal to one of these (`equals`, `in`).
    Eq(Vec<Scalar>),
    /// Every token appears among the field's tokens (text: stems; string: words).
    Contains(Vec<String>),
    /// Starts with (already lowercased where the type folds case).
    Prefix(String),
    /// Tree value equals this path or lies below it.
    TreePrefix(String),
    /// In a range.
    Range(Bound<Scalar>, Bound<Scalar>),
    /// Has a value.
    Set,
}

/// Inclusive bounds on a count of related objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountRange {
    /// Fewest.
    pub min: u64,
    /// Most, if bounded.
    pub max: Option<u64>,
}

impl CountRange {
    /// At least one (a `has` without `count`).
    pub const ANY: CountRange = CountRange { min: 1, max: None };

    /// Whether `n` lies in the range.
    pub fn contains(&self, n: u64) -> bool {
        n >= self.min && self.max.is_none_or(|m| n <= m)
    }

    /// Whether the range is exactly "at least one".
    pub fn is_any(&self) -> bool {
        *self == CountRange::ANY
    }
}

/// One word of a free-text query.
#[derive(Debug, Clone, PartialEq)]
pub struct TextWord {
    /// The lowercased word, matched against words of string attributes.
    pub word: String,
    /// Its stem, matched against text attributes (None when the analyzer drops the word).
    pub stem: Option<String>,
}

/// A free-text query: every word matches the stem of some text attribute or a word of some
/// string attribute, among the attributes of the klasses searched.
#[derive(Debug, Clone, PartialEq)]
pub struct TextQuery {
    /// The words.
    pub words: Vec<TextWord>,
    /// Keys of the text attributes of the klasses searched.
    pub text_keys: Vec<String>,
    /// Keys of the string attributes of the klasses searched.
    pub string_keys: Vec<String>,
}

/// A validated filter over the objects of one klass.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every object.
    All,
    /// No object.
    Nothing,
    /// All hold.
    And(Vec<Filter>),
    /// One holds.
    Or(Vec<Filter>),
    /// Does not hold.
    Not(Box<Filter>),
    /// A predicate on a field.
    Cond {
        /// The field.
        target: Target,
        /// The predicate.
        pred: Pred,
    },
    /// Related objects where `filter` holds number within `count`, each counted once however
    /// many of the relationships reach it.
    Join {
        /// How to reach them: one relationship or more, all to the same klass.
        rels: Vec<Relation>,
        /// Condition on each related object (of the relationships' klass).
        filter: Box<Filter>,
        /// How many must exist.
        count: CountRange,
    },
    /// Free text: every word matches some text or string attribute.
    Text(TextQuery),
}

impl Filter {
    /// `And` that drops `All` and collapses to `Nothing` or a single child where it can.
    pub fn and(children: Vec<Filter>) -> Filter {
        let mut out = Vec::with_capacity(children.len());
        for c in children {
            match c {
                Filter::All => {}
                Filter::Nothing => return Filter::Nothing,
                Filter::And(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Filter::All,
            1 => out.pop().expect("one"),
            _ => Filter::And(out),
        }
    }

    /// `Or` of the children; an empty `or` is vacuous (`All`), as in the API.
    pub fn or(children: Vec<Filter>) -> Filter {
        if children.is_empty() {
            return Filter::All;
        }
        let mut out = Vec::with_capacity(children.len());
        for c in children {
            match c {
                Filter::All => return Filter::All,
                Filter::Nothing => {}
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Filter::Nothing,
            1 => out.pop().expect("one"),
            _ => Filter::Or(out),
        }
    }

    /// Negation.
    pub fn negate(f: Filter) -> Filter {
        match f {
            Filter::All => Filter::Nothing,
            Filter::Nothing => Filter::All,
            Filter::Not(inner) => *inner,
            other => Filter::Not(Box::new(other)),
        }
    }

    /// Whether the filter (or a join inside it) uses free text.
    pub fn has_text(&self) -> bool {
        match self {
            Filter::Text(_) => true,
            Filter::And(c) | Filter::Or(c) => c.iter().any(Filter::has_text),
            Filter::Not(f) => f.has_text(),
            _ => false,
        }
    }
}
