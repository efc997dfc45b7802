//! Reading request bodies field by field, so every problem names its field with a JSON pointer.

use serde_json::{Map, Value};

use crate::error::Problem;
use crate::model::ids::{check_id, check_name};

/// A JSON object body being read.
pub struct Body<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

fn invalid(pointer: String, title: impl Into<String>) -> Problem {
    Problem::invalid("invalid_field", title).at(pointer)
}

impl<'a> Body<'a> {
    /// Reads `v`, which must be an object.
    pub fn new(v: &'a Value) -> Result<Body<'a>, Problem> {
        Body::at(v, "")
    }

    /// Reads `v` found at `prefix` in the request.
    pub fn at(v: &'a Value, prefix: &str) -> Result<Body<'a>, Problem> {
        match v {
            Value::Object(map) => Ok(Body {
                map,
                prefix: prefix.to_string(),
            }),
            _ => Err(Problem::bad_request("invalid_body", "the body must be a JSON object").at(prefix)),
        }
    }

    /// The underlying map.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    /// The pointer of a key.
    pub fn pointer(&self, key: &str) -> String {
        format!("{}/{}", self.prefix, crate::query::ast::escape_pointer(key))
    }

    /// Refuses keys outside `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), Problem> {
        for k in self.map.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(invalid(
                    self.pointer(k),
                    format!("unknown field `{k}` (expected one of {})", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// A value, when present and not null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Whether the key is present (even as null).
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// An optional string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, Problem> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(self.pointer(key), format!("`{key}` must be a string"))),
        }
    }

    /// A required, non-empty string.
    pub fn req_str(&self, key: &str) -> Result<&'a str, Problem> {
        match self.opt_str(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(Problem::invalid("missing_field", format!("`{key}` is required")).at(self.pointer(key))),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, Problem> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(self.pointer(key), format!("`{key}` must be true or false"))),
        }
    }

    /// An optional list of strings.
    pub fn opt_str_list(&self, key: &str) -> Result<Option<Vec<String>>, Problem> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        invalid(
                            format!("{}/{i}", self.pointer(key)),
                            format!("`{key}` must be a list of strings"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(invalid(self.pointer(key), format!("`{key}` must be a list of strings"))),
        }
    }

    /// An optional caller-supplied id.
    pub fn opt_id(&self, key: &str) -> Result<Option<&'a str>, Problem> {
        let id = self.opt_str(key)?;
        if let Some(id) = id {
            check_id(id).map_err(|e| invalid(self.pointer(key), e.to_string()))?;
        }
        Ok(id)
    }

    /// A required name (`[A-Za-z][A-Za-z0-9_]{0,63}`).
    pub fn req_name(&self, key: &str) -> Result<&'a str, Problem> {
        let s = self.req_str(key)?;
        check_name(s).map_err(|e| invalid(self.pointer(key), e.to_string()))?;
        Ok(s)
    }
}

/// Parses a JSON body, mapping syntax errors to a 400.
pub fn parse_json(bytes: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_request("malformed_json", format!("the body is not valid JSON: {e}")))
}
