//! Typed attribute values, as stored and as indexed.
//!
//! The type of a value always comes from its attribute's declaration, never from the JSON it was
//! written with: `"2025-01-01"` is a date only where the attribute is a date.

use serde::de::{Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::time::{format_time, Millis};

/// One attribute value. Strings cover every string-like type (string, text, enum, url, email,
/// phone, tree, reference); dates are milliseconds since the epoch.
///
/// Stored untagged where the encoding tells the type (a string, a float, an integer, a boolean,
/// an array) and tagged only for dates (`{"Date": ms}`, which an integer cannot tell apart):
/// reading a value then needs no variant name, and values written tagged for every variant (the
/// derived encoding of earlier versions) still read.
#[derive(Debug, Clone, PartialEq)]
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

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Str(v) => s.serialize_str(v),
            Value::Num(n) => s.serialize_f64(*n),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Date(ms) => s.serialize_newtype_variant("Value", 4, "Date", ms),
            Value::List(items) => items.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an attribute value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} out of range")))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Num(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items))
    }

    /// A tagged value: a date, or any variant as earlier versions wrote it.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(tag) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(A::Error::custom("an empty map is not a value"));
        };
        let v = match tag.as_ref() {
            "Date" => Value::Date(map.next_value()?),
            "Str" => Value::Str(map.next_value()?),
            "Num" => Value::Num(map.next_value()?),
            "Int" => Value::Int(map.next_value()?),
            "Bool" => Value::Bool(map.next_value()?),
            "List" => Value::List(map.next_value()?),
            other => {
                return Err(A::Error::unknown_variant(
                    other,
                    &["Str", "Num", "Int", "Bool", "Date", "List"],
                ))
            }
        };
        if map.next_key::<std::borrow::Cow<'de, str>>()?.is_some() {
            return Err(A::Error::custom("a tagged value has one entry"));
        }
        Ok(v)
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

    /// The derived, every-variant-tagged encoding earlier versions stored.
    #[derive(Serialize)]
    enum Tagged {
        Str(String),
        Num(f64),
        Int(i64),
        Bool(bool),
        Date(i64),
        List(Vec<Tagged>),
    }

    fn tagged(v: &Value) -> Tagged {
        match v {
            Value::Str(s) => Tagged::Str(s.clone()),
            Value::Num(n) => Tagged::Num(*n),
            Value::Int(i) => Tagged::Int(*i),
            Value::Bool(b) => Tagged::Bool(*b),
            Value::Date(ms) => Tagged::Date(*ms),
            Value::List(items) => Tagged::List(items.iter().map(tagged).collect()),
        }
    }

    proptest! {
        #[test]
        fn msgpack_round_trips(v in value()) {
            let bytes = rmp_serde::to_vec_named(&v).unwrap();
            let back: Value = rmp_serde::from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &v);
            let compact = rmp_serde::to_vec(&v).unwrap();
            prop_assert_eq!(rmp_serde::from_slice::<Value>(&compact).unwrap(), v.clone());
            let old = rmp_serde::to_vec(&tagged(&v)).unwrap();
            prop_assert!(compact.len() <= old.len());
            prop_assert_eq!(rmp_serde::from_slice::<Value>(&old).unwrap(), v);
        }

        #[test]
        fn json_round_trips_in_both_encodings(v in value()) {
            // Automation events carry objects through JSON.
            let json = serde_json::to_value(&v).unwrap();
            prop_assert_eq!(serde_json::from_value::<Value>(json).unwrap(), v.clone());
            let old = serde_json::to_value(tagged(&v)).unwrap();
            prop_assert_eq!(serde_json::from_value::<Value>(old).unwrap(), v);
        }
    }

    #[test]
    fn dates_stay_tagged_and_malformed_values_are_refused() {
        assert_eq!(
            serde_json::to_value(Value::Date(5)).unwrap(),
            serde_json::json!({"Date": 5})
        );
        assert_eq!(serde_json::to_value(Value::Int(5)).unwrap(), serde_json::json!(5));
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"When": 1}),
            serde_json::json!({"Date": 1, "Int": 2}),
            serde_json::json!(null),
        ] {
            assert!(serde_json::from_value::<Value>(bad.clone()).is_err(), "{bad}");
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
