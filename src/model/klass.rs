//! Klasses: the schema of one kind of object, its typed attributes and its relationships.
//!
//! Standard klasses (company, customer, conversation, message, note) are defined as data in
//! `index-config/klasses/`, in the same format as the custom klasses an org posts. Every attribute
//! carries a stable `key`, assigned when it is declared and never reused, under which its values
//! are indexed: deleting an attribute and declaring it again with another type cannot mix values.

use serde::{Deserialize, Serialize};

use super::ids::check_name;
use super::time::{parse_time, Millis};
use super::value::Value;

/// Standard klass names, in the order they are listed.
pub const STANDARD_KLASSES: [&str; 5] = ["company", "customer", "conversation", "message", "note"];

/// Names a custom klass may not take: standard klasses, their reference attributes, and words the
/// query language gives a meaning to at the start of a path.
pub const RESERVED_KLASS_NAMES: [&str; 20] = [
    "company",
    "customer",
    "conversation",
    "message",
    "note",
    "kobject",
    "klass",
    "object",
    "user",
    "team",
    "author",
    "assignedTeam",
    "assignedUser",
    "custom",
    "relationships",
    "tags",
    "id",
    "externalId",
    "createdAt",
    "updatedAt",
];

/// Longest accepted value of a string-like attribute (bytes); text attributes are bounded by the body limit.
pub const MAX_STRING_BYTES: usize = 16 * 1024;

/// An attribute's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttrType {
    /// Exact, case-insensitive keyword; `contains` matches whole words.
    String,
    /// Full text: lowercased, English-stemmed; `contains` only; not sortable.
    Text,
    /// f64.
    Number,
    /// i64.
    Integer,
    /// true / false.
    Boolean,
    /// A time, milliseconds precision.
    Date,
    /// One of declared values, case-sensitive.
    Enum,
    /// A URL, matched case-insensitively.
    Url,
    /// An email address (one `@`), matched case-insensitively.
    Email,
    /// A phone number, matched case-insensitively.
    Phone,
    /// A dot path (`billing.refund.partial`); `starts_with` matches whole segments.
    Tree,
    /// The id of an object of the attribute's target klass.
    Reference,
}

impl AttrType {
    /// Every type, for listings and property tests.
    pub const ALL: [AttrType; 12] = [
        AttrType::String,
        AttrType::Text,
        AttrType::Number,
        AttrType::Integer,
        AttrType::Boolean,
        AttrType::Date,
        AttrType::Enum,
        AttrType::Url,
        AttrType::Email,
        AttrType::Phone,
        AttrType::Tree,
        AttrType::Reference,
    ];

    /// Parses the API name of a type.
    pub fn parse(s: &str) -> Option<AttrType> {
        AttrType::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The API name of the type.
    pub fn name(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Text => "text",
            AttrType::Number => "number",
            AttrType::Integer => "integer",
            AttrType::Boolean => "boolean",
            AttrType::Date => "date",
            AttrType::Enum => "enum",
            AttrType::Url => "url",
            AttrType::Email => "email",
            AttrType::Phone => "phone",
            AttrType::Tree => "tree",
            AttrType::Reference => "reference",
        }
    }

    /// Values are strings compared case-insensitively (and indexed lowercased).
    pub fn folds_case(self) -> bool {
        matches!(
            self,
            AttrType::String | AttrType::Url | AttrType::Email | AttrType::Phone | AttrType::Tree
        )
    }

    /// Values are strings of any kind.
    pub fn is_stringish(self) -> bool {
        matches!(
            self,
            AttrType::String
                | AttrType::Text
                | AttrType::Enum
                | AttrType::Url
                | AttrType::Email
                | AttrType::Phone
                | AttrType::Tree
                | AttrType::Reference
        )
    }

    /// Values are ordered numbers (number, integer, date).
    pub fn is_ordered(self) -> bool {
        matches!(self, AttrType::Number | AttrType::Integer | AttrType::Date)
    }

    /// May be a sort key (when single-valued).
    pub fn sortable(self) -> bool {
        matches!(
            self,
            AttrType::Number
                | AttrType::Integer
                | AttrType::Date
                | AttrType::Boolean
                | AttrType::String
                | AttrType::Enum
        )
    }

    /// May be used in aggregations (everything but text).
    pub fn aggregatable(self) -> bool {
        self != AttrType::Text
    }

    /// The search operators that fit the type.
    pub fn operators(self) -> &'static [&'static str] {
        const EQ: [&str; 4] = ["equals", "not_equals", "in", "not_in"];
        match self {
            AttrType::Text => &["contains", "not_contains", "set"],
            AttrType::String => &[
                EQ[0],
                EQ[1],
                EQ[2],
                EQ[3],
                "contains",
                "not_contains",
                "starts_with",
                "set",
            ],
            AttrType::Url | AttrType::Email | AttrType::Phone | AttrType::Tree => {
                &[EQ[0], EQ[1], EQ[2], EQ[3], "starts_with", "set"]
            }
            AttrType::Enum | AttrType::Boolean | AttrType::Reference => &[EQ[0], EQ[1], EQ[2], EQ[3], "set"],
            AttrType::Number | AttrType::Integer => {
                &[EQ[0], EQ[1], EQ[2], EQ[3], "gt", "gte", "lt", "lte", "between", "set"]
            }
            AttrType::Date => &[
                EQ[0],
                EQ[1],
                EQ[2],
                EQ[3],
                "gt",
                "gte",
                "lt",
                "lte",
                "between",
                "set",
                "within_last",
                "not_within_last",
            ],
        }
    }

    /// The type a Kustomer-style name suffix declares (`tierStr` string, `placedAt` date...).
    pub fn from_suffix(name: &str) -> Option<AttrType> {
        const SUFFIXES: [(&str, AttrType); 7] = [
            ("Bool", AttrType::Boolean),
            ("Tree", AttrType::Tree),
            ("Str", AttrType::String),
            ("Txt", AttrType::Text),
            ("Num", AttrType::Number),
            ("Url", AttrType::Url),
            ("At", AttrType::Date),
        ];
        SUFFIXES
            .iter()
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix))
            .map(|(_, t)| *t)
    }
}

/// Which directory entry a string attribute must name (`assignedTeam`, `assignedUser`, `author`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    /// A team id of the org.
    Team,
    /// A user id of the org.
    User,
}

/// One declared attribute of a klass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    /// Name as written in objects and queries.
    pub name: String,
    /// Stable index key, unique in the org for custom attributes (`c12`), the name for standard ones.
    pub key: String,
    /// Declared type.
    pub ty: AttrType,
    /// A list of values of `ty`.
    pub list: bool,
    /// Label for user interfaces.
    pub display_name: Option<String>,
    /// Allowed values of an enum.
    pub values: Vec<String>,
    /// Target klass of a reference.
    pub target: Option<String>,
    /// Defined by the standard klass (lives at the top level of the object, not under `custom`).
    pub standard: bool,
    /// Must be present on create.
    pub required: bool,
    /// Value given on create when absent.
    pub default: Option<serde_json::Value>,
    /// Lowest accepted number.
    pub min: Option<f64>,
    /// Highest accepted number.
    pub max: Option<f64>,
    /// The directory entry a string must name.
    pub directory: Option<DirectoryKind>,
}

/// How many objects a relationship holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cardinality {
    /// One id.
    One,
    /// A list of ids.
    Many,
}

/// A typed link from objects of this klass to objects of `klass`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relationship {
    /// Name, as written under `relationships`.
    pub name: String,
    /// Target klass.
    pub klass: String,
    /// One or many.
    pub cardinality: Cardinality,
    /// Stable index key (`r3`).
    pub key: String,
    /// Label for user interfaces.
    pub display_name: Option<String>,
}

/// The schema of one kind of object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Klass {
    /// Name (`customer`, `order`).
    pub name: String,
    /// Label for user interfaces.
    pub display_name: Option<String>,
    /// Icon name.
    pub icon: Option<String>,
    /// Color (`#3366ff`).
    pub color: Option<String>,
    /// One of the standard klasses.
    pub standard: bool,
    /// Standard attributes first, then custom ones in declaration order.
    pub attributes: Vec<Attribute>,
    /// Declared relationships.
    pub relationships: Vec<Relationship>,
    /// When the klass was created.
    pub created_at: Millis,
    /// When the klass last changed.
    pub updated_at: Millis,
}

impl Klass {
    /// An attribute by name, standard or custom.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// A standard (top-level) attribute by name.
    pub fn standard_attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.standard && a.name == name)
    }

    /// A custom attribute by name.
    pub fn custom_attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| !a.standard && a.name == name)
    }

    /// A relationship by name.
    pub fn relationship(&self, name: &str) -> Option<&Relationship> {
        self.relationships.iter().find(|r| r.name == name)
    }

    /// Renders the klass as API JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let attributes: Vec<serde_json::Value> = self.attributes.iter().map(Attribute::to_json).collect();
        let relationships: Vec<serde_json::Value> = self
            .relationships
            .iter()
            .map(|r| {
                let mut m = serde_json::Map::new();
                m.insert("name".into(), r.name.clone().into());
                m.insert("klass".into(), r.klass.clone().into());
                m.insert(
                    "cardinality".into(),
                    if r.cardinality == Cardinality::One {
                        "one"
                    } else {
                        "many"
                    }
                    .into(),
                );
                if let Some(d) = &r.display_name {
                    m.insert("displayName".into(), d.clone().into());
                }
                serde_json::Value::Object(m)
            })
            .collect();
        let mut m = serde_json::Map::new();
        m.insert("name".into(), self.name.clone().into());
        m.insert("displayName".into(), self.display_name.clone().into());
        m.insert("icon".into(), self.icon.clone().into());
        m.insert("color".into(), self.color.clone().into());
        m.insert("standard".into(), self.standard.into());
        m.insert("attributes".into(), attributes.into());
        m.insert("relationships".into(), relationships.into());
        m.insert("createdAt".into(), super::time::format_time(self.created_at).into());
        m.insert("updatedAt".into(), super::time::format_time(self.updated_at).into());
        serde_json::Value::Object(m)
    }
}

impl Attribute {
    /// Renders the attribute as API JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), self.name.clone().into());
        m.insert("type".into(), self.ty.name().into());
        m.insert("list".into(), self.list.into());
        m.insert("displayName".into(), self.display_name.clone().into());
        m.insert("standard".into(), self.standard.into());
        if self.ty == AttrType::Enum {
            m.insert("values".into(), self.values.clone().into());
        }
        if let Some(t) = &self.target {
            m.insert("klass".into(), t.clone().into());
        }
        if self.required {
            m.insert("required".into(), true.into());
        }
        if let Some(d) = &self.default {
            m.insert("default".into(), d.clone());
        }
        if let Some(v) = self.min {
            m.insert("min".into(), super::value::number_to_json(v));
        }
        if let Some(v) = self.max {
            m.insert("max".into(), super::value::number_to_json(v));
        }
        if let Some(d) = self.directory {
            m.insert(
                "directory".into(),
                if d == DirectoryKind::Team { "team" } else { "user" }.into(),
            );
        }
        serde_json::Value::Object(m)
    }

    /// Checks and converts one JSON value (not null) to a typed value, or says what is wrong.
    ///
    /// `now` resolves relative dates (`now-1d`).
    pub fn coerce(&self, json: &serde_json::Value, now: Millis) -> Result<Value, String> {
        if self.list {
            let serde_json::Value::Array(items) = json else {
                return Err(format!("`{}` must be a list of {}", self.name, type_phrase(self.ty)));
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if item.is_array() {
                    return Err(format!("`{}` must be a list of {}", self.name, type_phrase(self.ty)));
                }
                out.push(self.coerce_scalar(item, now)?);
            }
            Ok(Value::List(out))
        } else {
            self.coerce_scalar(json, now)
        }
    }

    fn coerce_scalar(&self, json: &serde_json::Value, now: Millis) -> Result<Value, String> {
        let name = &self.name;
        let wrong = || format!("`{name}` must be {}", type_phrase(self.ty));
        let value = match self.ty {
            AttrType::Number => {
                let n = json.as_f64().filter(|n| n.is_finite()).ok_or_else(wrong)?;
                self.check_bounds(n)?;
                Value::Num(n)
            }
            AttrType::Integer => {
                let n = match json {
                    serde_json::Value::Number(n) => n.as_i64().or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                            .map(|f| f as i64)
                    }),
                    _ => None,
                }
                .ok_or_else(wrong)?;
                self.check_bounds(n as f64)?;
                Value::Int(n)
            }
            AttrType::Boolean => Value::Bool(json.as_bool().ok_or_else(wrong)?),
            AttrType::Date => {
                let s = json.as_str().ok_or_else(wrong)?;
                Value::Date(parse_time(s, now).map_err(|e| format!("`{name}`: {e}"))?)
            }
            _ => {
                let s = json.as_str().ok_or_else(wrong)?;
                self.check_string(s)?;
                Value::Str(s.to_string())
            }
        };
        Ok(value)
    }

    fn check_bounds(&self, n: f64) -> Result<(), String> {
        let name = &self.name;
        match (self.min, self.max) {
            (Some(lo), Some(hi)) if n < lo || n > hi => Err(format!("`{name}` must be between {lo} and {hi}")),
            (Some(lo), None) if n < lo => Err(format!("`{name}` must be at least {lo}")),
            (None, Some(hi)) if n > hi => Err(format!("`{name}` must be at most {hi}")),
            _ => Ok(()),
        }
    }

    fn check_string(&self, s: &str) -> Result<(), String> {
        let name = &self.name;
        if self.ty != AttrType::Text && s.len() > MAX_STRING_BYTES {
            return Err(format!("`{name}` is longer than {MAX_STRING_BYTES} bytes"));
        }
        match self.ty {
            AttrType::Enum if !self.values.iter().any(|v| v == s) => {
                Err(format!("`{name}` must be one of {}", self.values.join(", ")))
            }
            AttrType::Email if !s.is_empty() && !is_email(s) => {
                Err(format!("`{name}` must be an email address with one `@`"))
            }
            AttrType::Tree if !s.is_empty() && s.split('.').any(str::is_empty) => {
                Err(format!("`{name}` must be a dot path without empty segments"))
            }
            _ => Ok(()),
        }
    }
}

fn is_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty())
        && !s.chars().any(char::is_whitespace)
}

fn type_phrase(ty: AttrType) -> &'static str {
    match ty {
        AttrType::Number => "a number",
        AttrType::Integer => "an integer",
        AttrType::Boolean => "a boolean",
        AttrType::Date => "a date (RFC 3339, YYYY-MM-DD or now-Nd)",
        AttrType::Enum => "one of its enum values",
        AttrType::Reference => "an object id",
        AttrType::Email => "an email address",
        _ => "a string",
    }
}

/// A klass as posted (`POST /v1/klasses`) or patched, before keys are assigned.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KlassDef {
    /// Name; required on create, optional (and must match) on patch.
    #[serde(default)]
    pub name: Option<String>,
    /// Label.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Icon.
    #[serde(default)]
    pub icon: Option<String>,
    /// Color.
    #[serde(default)]
    pub color: Option<String>,
    /// Attributes to declare.
    #[serde(default)]
    pub attributes: Vec<AttributeDef>,
    /// Relationships to declare.
    #[serde(default)]
    pub relationships: Vec<RelationshipDef>,
}

/// An attribute as posted.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeDef {
    /// Name.
    pub name: String,
    /// Type name.
    #[serde(rename = "type")]
    pub ty: String,
    /// List of values.
    #[serde(default)]
    pub list: bool,
    /// Label.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Enum values.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// Reference target.
    #[serde(default)]
    pub klass: Option<String>,
    /// Required on create.
    #[serde(default)]
    pub required: bool,
    /// Default on create.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// Lowest number.
    #[serde(default)]
    pub min: Option<f64>,
    /// Highest number.
    #[serde(default)]
    pub max: Option<f64>,
    /// Directory entry the value names.
    #[serde(default)]
    pub directory: Option<DirectoryKind>,
}

/// A relationship as posted.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RelationshipDef {
    /// Name.
    pub name: String,
    /// Target klass.
    pub klass: String,
    /// `one` or `many`.
    pub cardinality: Cardinality,
    /// Label.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A problem found in a definition: where (JSON pointer), a code, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefError {
    /// JSON pointer into the posted definition.
    pub pointer: String,
    /// Stable code.
    pub code: &'static str,
    /// What is wrong.
    pub title: String,
}

impl AttributeDef {
    /// Checks the definition on its own (name, type, enum values, reference target given).
    /// `at` is the pointer of this attribute in the request.
    pub fn check(&self, at: &str, errors: &mut Vec<DefError>) -> Option<AttrType> {
        let mut err = |p: &str, code, title: String| {
            errors.push(DefError {
                pointer: format!("{at}{p}"),
                code,
                title,
            })
        };
        if let Err(e) = check_name(&self.name) {
            err("/name", "invalid_name", e.to_string());
        }
        let Some(ty) = AttrType::parse(&self.ty) else {
            err(
                "/type",
                "invalid_type",
                format!(
                    "`{}` is not a type (one of {})",
                    self.ty,
                    AttrType::ALL.map(AttrType::name).join(", ")
                ),
            );
            return None;
        };
        match (ty, &self.values) {
            (AttrType::Enum, None) => err(
                "/values",
                "missing_values",
                format!("enum `{}` needs `values`", self.name),
            ),
            (AttrType::Enum, Some(v)) if v.is_empty() => err(
                "/values",
                "missing_values",
                format!("enum `{}` needs at least one value", self.name),
            ),
            (AttrType::Enum, Some(_)) | (_, None) => {}
            (_, Some(_)) => err(
                "/values",
                "unexpected_values",
                format!("`values` only applies to enums, not `{}`", self.ty),
            ),
        }
        match (ty, &self.klass) {
            (AttrType::Reference, None) => err(
                "/klass",
                "missing_klass",
                format!("reference `{}` needs a target `klass`", self.name),
            ),
            (AttrType::Reference, Some(_)) | (_, None) => {}
            (_, Some(_)) => err(
                "/klass",
                "unexpected_klass",
                "`klass` only applies to references".to_string(),
            ),
        }
        if (self.min.is_some() || self.max.is_some()) && !matches!(ty, AttrType::Number | AttrType::Integer) {
            err(
                "/min",
                "unexpected_bounds",
                "`min` and `max` only apply to numbers".to_string(),
            );
        }
        Some(ty)
    }

    /// Builds the attribute with its index key, once checked.
    pub fn into_attribute(self, ty: AttrType, key: String, standard: bool) -> Attribute {
        Attribute {
            name: self.name,
            key,
            ty,
            list: self.list,
            display_name: self.display_name,
            values: self.values.unwrap_or_default(),
            target: self.klass,
            standard,
            required: self.required,
            default: self.default,
            min: self.min,
            max: self.max,
            directory: self.directory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: AttrType, list: bool) -> Attribute {
        Attribute {
            name: "x".into(),
            key: "c1".into(),
            ty,
            list,
            display_name: None,
            values: vec!["open".into(), "done".into()],
            target: None,
            standard: false,
            required: false,
            default: None,
            min: Some(1.0),
            max: Some(5.0),
            directory: None,
        }
    }

    #[test]
    fn suffixes_declare_kustomer_types() {
        assert_eq!(AttrType::from_suffix("tierStr"), Some(AttrType::String));
        assert_eq!(AttrType::from_suffix("placedAt"), Some(AttrType::Date));
        assert_eq!(AttrType::from_suffix("vipBool"), Some(AttrType::Boolean));
        assert_eq!(AttrType::from_suffix("bioTxt"), Some(AttrType::Text));
        assert_eq!(AttrType::from_suffix("Str"), None);
        assert_eq!(AttrType::from_suffix("total"), None);
    }

    #[test]
    fn numbers_are_checked_against_type_and_bounds() {
        let a = attr(AttrType::Integer, false);
        assert_eq!(a.coerce(&serde_json::json!(3), 0), Ok(Value::Int(3)));
        assert_eq!(a.coerce(&serde_json::json!(3.0), 0), Ok(Value::Int(3)));
        assert!(a.coerce(&serde_json::json!(3.5), 0).is_err());
        assert!(a.coerce(&serde_json::json!(9), 0).unwrap_err().contains("between"));
        assert!(a
            .coerce(&serde_json::json!("3"), 0)
            .unwrap_err()
            .contains("must be an integer"));
    }

    #[test]
    fn enums_are_case_sensitive() {
        let a = attr(AttrType::Enum, false);
        assert!(a.coerce(&serde_json::json!("open"), 0).is_ok());
        assert!(a.coerce(&serde_json::json!("Open"), 0).is_err());
    }

    #[test]
    fn lists_take_arrays_of_the_scalar_type() {
        let a = attr(AttrType::Email, true);
        assert!(a.coerce(&serde_json::json!(["a@b.c"]), 0).is_ok());
        assert!(a.coerce(&serde_json::json!("a@b.c"), 0).is_err());
        assert!(a.coerce(&serde_json::json!(["a@@b"]), 0).is_err());
        assert!(a.coerce(&serde_json::json!([["a@b.c"]]), 0).is_err());
    }

    #[test]
    fn attribute_definitions_are_checked() {
        let def: AttributeDef = serde_json::from_value(serde_json::json!({"name":"s","type":"enum"})).unwrap();
        let mut errors = vec![];
        def.check("/attributes/0", &mut errors);
        assert_eq!(errors[0].pointer, "/attributes/0/values");
        let def: AttributeDef = serde_json::from_value(serde_json::json!({"name":"9","type":"nope"})).unwrap();
        let mut errors = vec![];
        def.check("/attributes/1", &mut errors);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[1].pointer, "/attributes/1/type");
    }
}
