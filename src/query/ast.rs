//! The query as written in a request body, before it meets a schema.
//!
//! ```
//! use kindred::query::ast::SearchRequest;
//! let body = serde_json::json!({"queryContext": "customer",
//!     "and": [{"custom.tierStr": {"equals": "gold"}}], "sort": [{"custom.ltvNum": "desc"}]});
//! let req = SearchRequest::parse(&body).unwrap();
//! assert_eq!(req.query_context, "customer");
//! assert_eq!(req.and.len(), 1);
//! ```

use serde_json::{Map, Value};

use crate::error::Problem;

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// One clause as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// All hold.
    And(Vec<Clause>),
    /// At least one holds (vacuous when empty).
    Or(Vec<Clause>),
    /// None holds.
    Not(Vec<Clause>),
    /// Related objects exist (within count bounds) where the inner clauses hold on each.
    Has(Box<HasClause>),
    /// `{"<path>": {"<op>": value, ...}}`.
    Field {
        /// Field path.
        path: String,
        /// Operators and their values, all of which must hold.
        ops: Vec<(String, Value)>,
        /// Pointer of the field key in the body.
        pointer: String,
    },
}

/// The body of a `has` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct HasClause {
    /// Related klass.
    pub klass: String,
    /// All hold.
    pub and: Vec<Clause>,
    /// One holds.
    pub or: Vec<Clause>,
    /// None holds.
    pub not: Vec<Clause>,
    /// Count bounds: (operator, value, pointer).
    pub count: Vec<(String, u64, String)>,
    /// Pointer of the `has` object.
    pub pointer: String,
}

/// The filter part of a search body (also used by reports, saved searches, timelines).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchRequest {
    /// Klass of the results.
    pub query_context: String,
    /// All hold.
    pub and: Vec<Clause>,
    /// One holds when non-empty.
    pub or: Vec<Clause>,
    /// None holds.
    pub not: Vec<Clause>,
    /// Free text.
    pub text: Option<String>,
    /// Sort keys as written, with their pointers.
    pub sort: Vec<(String, SortDir, String)>,
    /// Page size.
    pub page_size: Option<u64>,
    /// Cursor from a previous page.
    pub cursor: Option<String>,
    /// Reference time for relative dates.
    pub now: Option<String>,
    /// Export columns.
    pub fields: Option<Vec<String>>,
    /// Saved search to take the filter from (reports).
    pub saved_search: Option<String>,
    /// Aggregations (reports), unparsed.
    pub aggs: Option<Value>,
    /// Klasses filter (timeline bodies).
    pub klasses: Option<Vec<String>>,
}

/// Which top-level keys a body may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `POST /v1/search`, `/count`, `/export`, saved search queries.
    Search,
    /// `POST /v1/reports`.
    Report,
    /// `POST .../timeline`.
    Timeline,
    /// Conditions of rules and triggers (`and`/`or`/`not` only).
    Conditions,
}

fn bad(pointer: &str, title: impl Into<String>) -> Problem {
    Problem::bad_request("invalid_query", title).at(pointer)
}

/// Escapes a key for use in a JSON pointer.
pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl SearchRequest {
    /// Parses a search body.
    pub fn parse(body: &Value) -> Result<SearchRequest, Problem> {
        SearchRequest::parse_as(body, BodyKind::Search)
    }

    /// Parses a body of the given kind; unknown keys are a 400 naming them.
    pub fn parse_as(body: &Value, kind: BodyKind) -> Result<SearchRequest, Problem> {
        let Value::Object(m) = body else {
            return Err(bad("", "the body must be a JSON object"));
        };
        let mut req = SearchRequest::default();
        for (key, v) in m {
            let p = format!("/{}", escape_pointer(key));
            match (key.as_str(), kind) {
                ("queryContext", BodyKind::Search | BodyKind::Report) => {
                    req.query_context = v
                        .as_str()
                        .ok_or_else(|| bad(&p, "`queryContext` must be a klass name"))?
                        .to_string();
                }
                ("and", _) => req.and = parse_list(v, &p)?,
                ("or", _) => req.or = parse_list(v, &p)?,
                ("not", _) => req.not = parse_list(v, &p)?,
                ("text", BodyKind::Search | BodyKind::Report | BodyKind::Timeline) => {
                    req.text = match v {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        _ => return Err(bad(&p, "`text` must be a string")),
                    }
                }
                ("now", BodyKind::Search | BodyKind::Report | BodyKind::Timeline) => {
                    req.now = match v {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        _ => return Err(bad(&p, "`now` must be an RFC 3339 time")),
                    }
                }
                ("sort", BodyKind::Search) => req.sort = parse_sort(v, &p)?,
                ("pageSize", BodyKind::Search | BodyKind::Timeline) => {
                    req.page_size = match v {
                        Value::Null => None,
                        _ => Some(
                            v.as_u64()
                                .ok_or_else(|| bad(&p, "`pageSize` must be an integer 1..1000"))?,
                        ),
                    }
                }
                ("cursor", BodyKind::Search | BodyKind::Timeline) => {
                    req.cursor = match v {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        _ => return Err(bad(&p, "`cursor` must be a string from `nextCursor`")),
                    }
                }
                ("fields", BodyKind::Search) => {
                    let list = v
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .map(|f| f.as_str().map(str::to_string))
                                .collect::<Option<Vec<_>>>()
                        })
                        .ok_or_else(|| bad(&p, "`fields` must be a list of field paths"))?;
                    req.fields = Some(list);
                }
                ("savedSearch", BodyKind::Report) => {
                    req.saved_search = Some(
                        v.as_str()
                            .ok_or_else(|| bad(&p, "`savedSearch` must be an id"))?
                            .to_string(),
                    );
                }
                ("aggs" | "aggregations", BodyKind::Report) => req.aggs = Some(v.clone()),
                ("klasses", BodyKind::Timeline) => {
                    let list = v
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .map(|f| f.as_str().map(str::to_string))
                                .collect::<Option<Vec<_>>>()
                        })
                        .ok_or_else(|| bad(&p, "`klasses` must be a list of klass names"))?;
                    req.klasses = Some(list);
                }
                _ => return Err(bad(&p, format!("unknown key `{key}`"))),
            }
        }
        Ok(req)
    }
}

fn parse_sort(v: &Value, p: &str) -> Result<Vec<(String, SortDir, String)>, Problem> {
    let Value::Array(items) = v else {
        return Err(bad(p, "`sort` must be a list like [{\"createdAt\": \"desc\"}]"));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}/{i}");
        let Value::Object(m) = item else {
            return Err(bad(&ip, "a sort key must be an object like {\"createdAt\": \"desc\"}"));
        };
        if m.len() != 1 {
            return Err(bad(&ip, "a sort key must name exactly one field"));
        }
        let (field, dir) = m.iter().next().expect("one entry");
        let fp = format!("{ip}/{}", escape_pointer(field));
        let dir = match dir.as_str() {
            Some("asc") => SortDir::Asc,
            Some("desc") => SortDir::Desc,
            _ => {
                return Err(bad(
                    &fp,
                    format!("the direction of `{field}` must be \"asc\" or \"desc\""),
                ))
            }
        };
        out.push((field.clone(), dir, fp));
    }
    Ok(out)
}

/// Parses a list of clauses at `p`.
pub fn parse_list(v: &Value, p: &str) -> Result<Vec<Clause>, Problem> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, c)| parse_clause(c, &format!("{p}/{i}")))
            .collect(),
        _ => Err(bad(p, "expected a list of clauses")),
    }
}

/// Parses one clause object at `p`. Several keys in one object all hold.
pub fn parse_clause(v: &Value, p: &str) -> Result<Clause, Problem> {
    let Value::Object(m) = v else {
        return Err(bad(
            p,
            "a clause must be an object like {\"field\": {\"equals\": value}}",
        ));
    };
    if m.is_empty() {
        return Err(bad(p, "a clause must not be empty"));
    }
    let mut parts = Vec::with_capacity(m.len());
    for (key, val) in m {
        let kp = format!("{p}/{}", escape_pointer(key));
        parts.push(match key.as_str() {
            "and" => Clause::And(parse_list(val, &kp)?),
            "or" => Clause::Or(parse_list(val, &kp)?),
            "not" => Clause::Not(parse_list(val, &kp)?),
            "has" => Clause::Has(Box::new(parse_has(val, &kp)?)),
            _ => parse_field(key, val, &kp)?,
        });
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one")
    } else {
        Clause::And(parts)
    })
}

fn parse_field(path: &str, val: &Value, p: &str) -> Result<Clause, Problem> {
    let Value::Object(ops) = val else {
        return Err(bad(
            p,
            format!("`{path}` must map operators to values, like {{\"equals\": value}}"),
        ));
    };
    if ops.is_empty() {
        return Err(bad(p, format!("`{path}` needs an operator")));
    }
    Ok(Clause::Field {
        path: path.to_string(),
        ops: ops.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        pointer: p.to_string(),
    })
}

fn parse_has(v: &Value, p: &str) -> Result<HasClause, Problem> {
    let Value::Object(m) = v else {
        return Err(bad(p, "`has` must be an object with a `klass`"));
    };
    let mut has = HasClause {
        klass: String::new(),
        and: vec![],
        or: vec![],
        not: vec![],
        count: vec![],
        pointer: p.to_string(),
    };
    for (key, val) in m {
        let kp = format!("{p}/{}", escape_pointer(key));
        match key.as_str() {
            "klass" => {
                has.klass = val
                    .as_str()
                    .ok_or_else(|| bad(&kp, "`klass` must be a klass name"))?
                    .to_string()
            }
            "and" => has.and = parse_list(val, &kp)?,
            "or" => has.or = parse_list(val, &kp)?,
            "not" => has.not = parse_list(val, &kp)?,
            "count" => has.count = parse_count(val, &kp)?,
            _ => return Err(bad(&kp, format!("unknown key `{key}` in `has`"))),
        }
    }
    if has.klass.is_empty() {
        return Err(bad(p, "`has` needs a `klass`"));
    }
    Ok(has)
}

fn parse_count(v: &Value, p: &str) -> Result<Vec<(String, u64, String)>, Problem> {
    let Value::Object(m): &Value = v else {
        return Err(bad(p, "`count` must be an object like {\"gte\": 1}"));
    };
    let m: &Map<String, Value> = m;
    let mut out = Vec::new();
    for (op, val) in m {
        let kp = format!("{p}/{}", escape_pointer(op));
        if !matches!(op.as_str(), "gt" | "gte" | "lt" | "lte" | "equals") {
            return Err(bad(
                &kp,
                format!("`count` takes gt, gte, lt, lte or equals, not `{op}`"),
            ));
        }
        let n = val
            .as_u64()
            .ok_or_else(|| bad(&kp, format!("`count.{op}` must be a non-negative integer")))?;
        out.push((op.clone(), n, kp));
    }
    if out.is_empty() {
        return Err(bad(p, "`count` needs a bound"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_groups_keep_their_pointers() {
        let req = SearchRequest::parse(&json!({"queryContext":"customer","and":[{"or":[{"custom.a":{"equals":1}}]}]}))
            .unwrap();
        let Clause::Or(inner) = &req.and[0] else { panic!() };
        let Clause::Field { pointer, .. } = &inner[0] else {
            panic!()
        };
        assert_eq!(pointer, "/and/0/or/0/custom.a");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = SearchRequest::parse(&json!({"queryContext":"customer","filter":[]})).unwrap_err();
        assert!(err.title.contains("`filter`"));
        assert_eq!(err.source, Some(crate::error::ProblemSource::Pointer("/filter".into())));
    }

    #[test]
    fn has_needs_a_klass_and_valid_counts() {
        assert!(parse_clause(&json!({"has":{"and":[]}}), "/and/0").is_err());
        assert!(parse_clause(&json!({"has":{"klass":"order","count":{"most":1}}}), "/and/0").is_err());
        let c = parse_clause(&json!({"has":{"klass":"order","count":{"lte":1}}}), "/and/0").unwrap();
        assert!(matches!(c, Clause::Has(h) if h.count.len() == 1));
    }

    #[test]
    fn several_keys_in_one_clause_all_hold() {
        let c = parse_clause(&json!({"a":{"equals":1},"b":{"equals":2}}), "/and/0").unwrap();
        assert!(matches!(c, Clause::And(v) if v.len() == 2));
    }

    #[test]
    fn sort_directions_are_checked() {
        assert!(SearchRequest::parse(&json!({"queryContext":"x","sort":[{"a":"up"}]})).is_err());
        let r = SearchRequest::parse(&json!({"queryContext":"x","sort":[{"a":"desc"}]})).unwrap();
        assert_eq!(r.sort[0].1, SortDir::Desc);
    }
}
