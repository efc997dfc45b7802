//! Typed attribute values, as stored and as indexed.
//!
//! The type of a value always comes from its attribute's declaration, never from the JSON it was
//! written with: `"2025-01-01"` is a date only where the attribute is a date.

use serde::{Deserialize, Serialize};

use super::time::{format_time, Millis};

/// One attribute value. Strings cover every string-like type (string, text, enum, url, email,
/// phone, tree, reference); dates are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// Any string-like value.
    Str(String),
    /// A `number` (f64).
    Num(f64),
    /// An `integer` (i64).
    Int(i64),
    /// A `boolean`.
    Bool(bool),
    /// A `date`, milliseconds since the epoch (UTC).
    Date(Millis),
    /// A list attribute's elements, each of the attribute's scalar type.
    List(Vec<Value>),
}

impl Value {
    /// Renders the value as API JSON (dates in RFC 3339, integral numbers without a fraction).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Num(n) => number_to_json(*n),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Date(ms) => serde_json::Value::String(format_time(*ms)),
            Value::List(items) => serde_json::Value::Array(items.iter().map(Value::to_json).collect()),
        }
    }

    /// The scalar elements: the value itself, or a list's elements.
    pub fn elements(&self) -> &[Value] {
        match self {
            Value::List(items) => items,
            other => std::slice::from_ref(other),
        }
    }

    /// The string content, for string-like values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// True when the value counts as "set": not `""` and not `[]`.
    pub fn is_set(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::List(items) => items.iter().any(Value::is_set),
            _ => true,
        }
    }
}

/// Renders an f64 as JSON, without a trailing `.0` for integral values that fit exactly.
pub fn number_to_json(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            ".{0,12}".prop_map(Value::Str),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::Num),
            any::<i64>().prop_map(Value::Int),
            any::<bool>().prop_map(Value::Bool),
            (-62_135_596_800_000i64..253_402_300_799_999).prop_map(Value::Date),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![scalar(), prop::collection::vec(scalar(), 0..4).prop_map(Value::List)]
    }

    proptest! {
        #[test]
        fn msgpack_round_trips(v in value()) {
            let bytes = rmp_serde::to_vec_named(&v).unwrap();
            let back: Value = rmp_serde::from_slice(&bytes).unwrap();
            prop_assert_eq!(back, v);
        }
    }

    #[test]
    fn empty_values_are_not_set() {
        assert!(!Value::Str(String::new()).is_set());
        assert!(!Value::List(vec![]).is_set());
        assert!(!Value::List(vec![Value::Str(String::new())]).is_set());
        assert!(Value::Bool(false).is_set());
    }

    #[test]
    fn integral_numbers_render_without_fraction() {
        assert_eq!(Value::Num(420.0).to_json().to_string(), "420");
        assert_eq!(Value::Num(4.25).to_json().to_string(), "4.25");
    }
}
