//! Reports: a search filter (or a saved search's) plus Elasticsearch-style aggregations, run by
//! tantivy's aggregation engine over fast fields.
//!
//! Requests are validated against the klass first (unknown field, text field, bad interval: 400
//! naming it), field paths are translated to index columns, and the answer is shaped like
//! Elasticsearch's. Dates are millisecond columns, so `date_histogram` is translated: a
//! `fixed_interval` becomes a histogram in milliseconds, and a `calendar_interval` (month, week,
//! quarter, year...) becomes a range aggregation over the exact calendar bounds between the first
//! and last matching date, found in a first pass.

use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::{Result, ServiceError};
use super::indexing::blocking_here;
use super::search::Prepared;
use super::App;
use crate::error::Problem;
use crate::model::time::{format_time, next_unit, parse_duration, parse_time, truncate, CalendarUnit, Millis};
use crate::model::{AttrType, Klass};
use crate::query::ast::{escape_pointer, BodyKind, SearchRequest};
use crate::query::compile::{agg_column, Compiled, Snapshot};
use std::ops::Bound;

use crate::query::filter::{AttrRef, Filter, Pred, Scalar, Target};

/// Most buckets a report may produce.
pub const MAX_BUCKETS: u32 = 10_000;

const METRICS: [&str; 9] = [
    "sum",
    "avg",
    "min",
    "max",
    "value_count",
    "cardinality",
    "stats",
    "percentiles",
    "extended_stats",
];

#[derive(Debug, Clone)]
enum Kind {
    Terms,
    Histogram,
    DateFixed(i64),
    DateCalendar(CalendarUnit),
    Range,
    Metric(String),
}

#[derive(Debug, Clone)]
struct Agg {
    name: String,
    kind: Kind,
    column: String,
    is_date: bool,
    /// The translated request body of this aggregation (without sub-aggregations).
    body: Map<String, Value>,
    subs: Vec<Agg>,
    /// Calendar bounds, filled after the first pass.
    calendar: Vec<(Millis, Millis)>,
}

fn bad(pointer: &str, title: impl Into<String>) -> ServiceError {
    Problem::bad_request("invalid_aggregation", title).at(pointer).into()
}

fn resolve_field(k: &Klass, path: &str) -> Option<(Target, AttrType)> {
    let attr = |a: &crate::model::Attribute| {
        (
            Target::Attr(AttrRef {
                name: a.name.clone(),
                key: a.key.clone(),
                ty: a.ty,
                list: a.list,
                standard: a.standard,
            }),
            a.ty,
        )
    };
    Some(match path {
        "id" => (Target::Id, AttrType::String),
        "klass" => (Target::Klass, AttrType::String),
        "externalId" => (Target::ExternalId, AttrType::String),
        "tags" => (Target::Tags, AttrType::String),
        "createdAt" => (Target::CreatedAt, AttrType::Date),
        "updatedAt" => (Target::UpdatedAt, AttrType::Date),
        p => match p.strip_prefix("custom.") {
            Some(name) => attr(k.custom_attribute(name)?),
            None => match p.strip_prefix("relationships.") {
                Some(name) => {
                    let r = k.relationship(name)?;
                    (
                        Target::Rel {
                            name: r.name.clone(),
                            key: r.key.clone(),
                        },
                        AttrType::Reference,
                    )
                }
                None => attr(k.standard_attribute(p)?),
            },
        },
    })
}

fn parse_aggs(k: &Klass, v: &Value, pointer: &str, now: Millis) -> Result<Vec<Agg>> {
    let Value::Object(m) = v else {
        return Err(bad(pointer, "`aggs` must map names to aggregations"));
    };
    let mut out = Vec::new();
    for (name, spec) in m {
        let p = format!("{pointer}/{}", escape_pointer(name));
        let Value::Object(spec) = spec else {
            return Err(bad(&p, format!("aggregation `{name}` must be an object")));
        };
        let mut subs = Vec::new();
        let mut kind_entry = None;
        for (key, val) in spec {
            match key.as_str() {
                "aggs" | "aggregations" => subs = parse_aggs(k, val, &format!("{p}/{key}"), now)?,
                _ if kind_entry.is_none() => kind_entry = Some((key.clone(), val.clone())),
                _ => {
                    return Err(bad(
                        &format!("{p}/{key}"),
                        format!("aggregation `{name}` has more than one type"),
                    ))
                }
            }
        }
        let (kind_name, params) = kind_entry.ok_or_else(|| {
            bad(
                &p,
                format!("aggregation `{name}` needs a type (terms, date_histogram, sum...)"),
            )
        })?;
        let kp = format!("{p}/{kind_name}");
        let Value::Object(params) = params else {
            return Err(bad(&kp, format!("`{kind_name}` takes an object")));
        };
        let field = params
            .get("field")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&format!("{kp}/field"), "`field` is required"))?;
        let fp = format!("{kp}/field");
        let (target, ty) = resolve_field(k, field)
            .ok_or_else(|| bad(&fp, format!("field `{field}` does not exist on `{}`", k.name)))?;
        if ty == AttrType::Text {
            return Err(bad(&fp, format!("`{field}` is a text field and cannot be aggregated")));
        }
        let column = agg_column(&target).ok_or_else(|| bad(&fp, format!("`{field}` cannot be aggregated")))?;
        let is_date = ty == AttrType::Date;
        let numeric = matches!(ty, AttrType::Number | AttrType::Integer | AttrType::Date);
        let mut body = params.clone();
        body.insert("field".into(), Value::String(column.clone()));
        let kind = match kind_name.as_str() {
            "terms" => {
                let size = params
                    .get("size")
                    .map(|s| s.as_u64().filter(|n| (1..=MAX_BUCKETS as u64).contains(n)));
                if let Some(None) = size {
                    return Err(bad(&format!("{kp}/size"), format!("`size` must be 1..{MAX_BUCKETS}")));
                }
                Kind::Terms
            }
            "histogram" => {
                if !numeric {
                    return Err(bad(
                        &fp,
                        format!("`histogram` needs a number or date field; `{field}` is {}", ty.name()),
                    ));
                }
                let interval = params.get("interval").and_then(Value::as_f64).filter(|i| *i > 0.0);
                if interval.is_none() {
                    return Err(bad(&format!("{kp}/interval"), "`interval` must be a positive number"));
                }
                Kind::Histogram
            }
            "date_histogram" => {
                if !is_date {
                    return Err(bad(
                        &fp,
                        format!("`date_histogram` needs a date field; `{field}` is {}", ty.name()),
                    ));
                }
                match (params.get("calendar_interval"), params.get("fixed_interval")) {
                    (Some(c), None) => {
                        let unit = c.as_str().and_then(CalendarUnit::parse).ok_or_else(|| {
                            bad(
                                &format!("{kp}/calendar_interval"),
                                "`calendar_interval` must be minute, hour, day, week, month, quarter or year",
                            )
                        })?;
                        Kind::DateCalendar(unit)
                    }
                    (None, Some(f)) => {
                        let ms = f
                            .as_str()
                            .and_then(|s| parse_duration(s).ok())
                            .filter(|ms| *ms > 0)
                            .ok_or_else(|| {
                                bad(
                                    &format!("{kp}/fixed_interval"),
                                    "`fixed_interval` must be a duration like \"12h\"",
                                )
                            })?;
                        Kind::DateFixed(ms)
                    }
                    _ => {
                        return Err(bad(
                            &kp,
                            "`date_histogram` takes one of `calendar_interval` or `fixed_interval`",
                        ))
                    }
                }
            }
            "range" => {
                if !numeric {
                    return Err(bad(
                        &fp,
                        format!("`range` needs a number or date field; `{field}` is {}", ty.name()),
                    ));
                }
                let ranges = params
                    .get("ranges")
                    .and_then(Value::as_array)
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| bad(&format!("{kp}/ranges"), "`ranges` must be a non-empty list"))?;
                let mut out = Vec::new();
                for (i, r) in ranges.iter().enumerate() {
                    let rp = format!("{kp}/ranges/{i}");
                    let mut rr = Map::new();
                    for bound in ["from", "to"] {
                        match r.get(bound) {
                            None | Some(Value::Null) => {}
                            Some(Value::String(s)) if is_date => {
                                let ms =
                                    parse_time(s, now).map_err(|e| bad(&format!("{rp}/{bound}"), e.to_string()))?;
                                rr.insert(bound.into(), json!(ms as f64));
                            }
                            Some(Value::Number(n)) if numeric => {
                                rr.insert(bound.into(), json!(n.as_f64()));
                            }
                            Some(_) => {
                                return Err(bad(
                                    &format!("{rp}/{bound}"),
                                    format!("`{bound}` must be a {}", if is_date { "date" } else { "number" }),
                                ))
                            }
                        }
                    }
                    if let Some(key) = r.get("key") {
                        rr.insert("key".into(), key.clone());
                    }
                    out.push(Value::Object(rr));
                }
                if !numeric {
                    return Err(bad(
                        &fp,
                        format!("`range` needs a number or date field; `{field}` is {}", ty.name()),
                    ));
                }
                body.insert("ranges".into(), Value::Array(out));
                Kind::Range
            }
            m if METRICS.contains(&m) => {
                if m != "value_count" && m != "cardinality" && !numeric {
                    return Err(bad(
                        &fp,
                        format!("`{m}` needs a number or date field; `{field}` is {}", ty.name()),
                    ));
                }
                if !subs.is_empty() {
                    return Err(bad(&p, format!("metric `{m}` cannot have sub-aggregations")));
                }
                if m == "percentiles" {
                    if let Some(percents) = params.get("percents") {
                        let list = percents
                            .as_array()
                            .ok_or_else(|| bad(&format!("{kp}/percents"), "`percents` must be a list of numbers"))?;
                        for (i, v) in list.iter().enumerate() {
                            if !v.as_f64().is_some_and(|x| (0.0..=100.0).contains(&x)) {
                                return Err(bad(
                                    &format!("{kp}/percents/{i}"),
                                    "a percentile must be a number from 0 to 100",
                                ));
                            }
                        }
                    }
                }
                Kind::Metric(m.to_string())
            }
            other => return Err(bad(&kp, format!("unknown aggregation type `{other}`"))),
        };
        out.push(Agg {
            name: name.clone(),
            kind,
            column,
            is_date,
            body,
            subs,
            calendar: Vec::new(),
        });
    }
    Ok(out)
}

fn collect_calendar_columns(aggs: &[Agg], out: &mut Vec<String>) {
    for a in aggs {
        if matches!(a.kind, Kind::DateCalendar(_)) && !out.contains(&a.column) {
            out.push(a.column.clone());
        }
        collect_calendar_columns(&a.subs, out);
    }
}

fn fill_calendars(aggs: &mut [Agg], bounds: &Map<String, Value>) -> std::result::Result<u64, String> {
    let mut total = 0u64;
    for a in aggs.iter_mut() {
        if let Kind::DateCalendar(unit) = a.kind {
            let b = &bounds[&a.column];
            if let (Some(min), Some(max)) = (b["min"].as_f64(), b["max"].as_f64()) {
                let (min, max) = (min as Millis, max as Millis);
                let mut start = truncate(min, unit);
                while start <= max {
                    let end = next_unit(start, unit);
                    a.calendar.push((start, end));
                    start = end;
                    if a.calendar.len() as u32 > MAX_BUCKETS {
                        return Err(format!("`{}` would make more than {MAX_BUCKETS} buckets", a.name));
                    }
                }
            }
            total += a.calendar.len() as u64;
        }
        total += fill_calendars(&mut a.subs, bounds)?;
    }
    Ok(total)
}

fn to_request(aggs: &[Agg]) -> Value {
    let mut m = Map::new();
    for a in aggs {
        let mut body = a.body.clone();
        let (kind, params) = match &a.kind {
            Kind::Terms => ("terms".to_string(), Value::Object(body)),
            Kind::Histogram => ("histogram".to_string(), Value::Object(body)),
            Kind::Range => ("range".to_string(), Value::Object(body)),
            Kind::Metric(m) => (m.clone(), Value::Object(body)),
            Kind::DateFixed(ms) => {
                let mut h = Map::new();
                h.insert("field".into(), json!(a.column));
                h.insert("interval".into(), json!(*ms as f64));
                if let Some(v) = body.remove("min_doc_count") {
                    h.insert("min_doc_count".into(), v);
                }
                ("histogram".to_string(), Value::Object(h))
            }
            Kind::DateCalendar(_) => {
                // No match: one empty range, which the answer drops.
                let ranges: Vec<Value> = if a.calendar.is_empty() {
                    vec![json!({"from": 0.0, "to": 0.0})]
                } else {
                    a.calendar
                        .iter()
                        .map(|(f, t)| json!({"from": *f as f64, "to": *t as f64}))
                        .collect()
                };
                ("range".to_string(), json!({"field": a.column, "ranges": ranges}))
            }
        };
        let mut entry = Map::new();
        entry.insert(kind, params);
        if !a.subs.is_empty() {
            entry.insert("aggs".into(), to_request(&a.subs));
        }
        m.insert(a.name.clone(), Value::Object(entry));
    }
    Value::Object(m)
}

fn shape(aggs: &[Agg], res: &mut Map<String, Value>) {
    for a in aggs {
        let Some(r) = res.get_mut(&a.name) else { continue };
        match &a.kind {
            Kind::Metric(_) => {
                if a.is_date {
                    if let Some(v) = r.get("value").and_then(Value::as_f64) {
                        r["value_as_string"] = json!(format_time(v as Millis));
                    }
                }
            }
            kind => {
                let buckets = r.get_mut("buckets").and_then(Value::as_array_mut);
                let Some(buckets) = buckets else { continue };
                for b in buckets.iter_mut() {
                    if let Value::Object(bm) = b {
                        shape(&a.subs, bm);
                    }
                }
                match kind {
                    Kind::DateFixed(_) => {
                        for b in buckets.iter_mut() {
                            if let Some(k) = b["key"].as_f64() {
                                b["key"] = json!(k as i64);
                                b["key_as_string"] = json!(format_time(k as Millis));
                            }
                        }
                    }
                    Kind::DateCalendar(_) => {
                        let mut out: Vec<Value> = buckets
                            .drain(..)
                            .filter(|b| {
                                b["from"].as_f64().is_some() && b["to"].as_f64().is_some() && b["from"] != b["to"]
                            })
                            .map(|mut b| {
                                let from = b["from"].as_f64().unwrap_or(0.0) as Millis;
                                if let Value::Object(m) = &mut b {
                                    for k in ["from", "to", "from_as_string", "to_as_string", "key"] {
                                        m.remove(k);
                                    }
                                }
                                b["key"] = json!(from);
                                b["key_as_string"] = json!(format_time(from));
                                b
                            })
                            .collect();
                        // Like Elasticsearch: empty buckets only between the first and last non-empty one.
                        while out.first().is_some_and(|b| b["doc_count"].as_u64() == Some(0)) {
                            out.remove(0);
                        }
                        while out.last().is_some_and(|b| b["doc_count"].as_u64() == Some(0)) {
                            out.pop();
                        }
                        // Order the bucket fields like Elasticsearch: key, key_as_string, doc_count, subs.
                        let out = out
                            .into_iter()
                            .map(|b| {
                                let mut m = Map::new();
                                m.insert("key".into(), b["key"].clone());
                                m.insert("key_as_string".into(), b["key_as_string"].clone());
                                m.insert("doc_count".into(), b["doc_count"].clone());
                                if let Value::Object(bm) = b {
                                    for (k, v) in bm {
                                        if !m.contains_key(&k) {
                                            m.insert(k, v);
                                        }
                                    }
                                }
                                Value::Object(m)
                            })
                            .collect();
                        *buckets = out;
                    }
                    Kind::Range => {
                        // tantivy fills the gaps between requested ranges; answer only what was asked.
                        let asked: Vec<(Option<f64>, Option<f64>)> = a.body["ranges"]
                            .as_array()
                            .map(|rs| rs.iter().map(|r| (r["from"].as_f64(), r["to"].as_f64())).collect())
                            .unwrap_or_default();
                        let mut kept = Vec::with_capacity(asked.len());
                        for (from, to) in &asked {
                            let found = buckets
                                .iter()
                                .position(|b| b["from"].as_f64() == *from && b["to"].as_f64() == *to);
                            if let Some(i) = found {
                                let mut b = buckets.remove(i);
                                if a.is_date {
                                    let side = |v: Option<f64>| {
                                        v.map(|v| format_time(v as Millis)).unwrap_or_else(|| "*".into())
                                    };
                                    for (bound, v) in [("from", from), ("to", to)] {
                                        if let Some(v) = v {
                                            b[format!("{bound}_as_string")] = json!(format_time(*v as Millis));
                                        }
                                    }
                                    if b.get("key")
                                        .and_then(Value::as_str)
                                        .is_some_and(|k| k.contains(|c: char| c.is_ascii_digit()))
                                    {
                                        b["key"] = json!(format!("{}-{}", side(*from), side(*to)));
                                    }
                                }
                                kept.push(b);
                            }
                        }
                        *buckets = kept;
                    }
                    _ => {}
                }
            }
        }
    }
}

impl App {
    /// `POST /v1/reports`.
    pub async fn report(&self, caller: &Caller, body: &Value) -> Result<Value> {
        let req = SearchRequest::parse_as(body, BodyKind::Report)?;
        let aggs_json = req.aggs.clone();
        let prepared: Prepared = match &req.saved_search {
            Some(id) => {
                let has_filter = !req.query_context.is_empty()
                    || !req.and.is_empty()
                    || !req.or.is_empty()
                    || !req.not.is_empty()
                    || req.text.is_some();
                if has_filter {
                    return Err(Problem::bad_request(
                        "invalid_query",
                        "give either `savedSearch` or filter keys, not both",
                    )
                    .at("/savedSearch")
                    .into());
                }
                self.prepare_saved(caller, id, None, None)?.1
            }
            None => self.prepare_request(caller, req)?,
        };
        let mut aggs = match &aggs_json {
            Some(v) => parse_aggs(&prepared.klass, v, "/aggs", prepared.now)?,
            None => Vec::new(),
        };
        let app = self.clone();
        blocking_here(move || {
            let snap = app.snapshot(&prepared.rt);
            let compiled = snap.compile(&prepared.klass.name, &prepared.filter)?;
            run_report(&snap, &compiled, &prepared.filter, &mut aggs)
        })
        .await
    }
}

/// The bounds a filter puts on a date column, when it bounds it on both sides at the top level
/// (then calendar buckets need no first pass to find the first and last date).
fn filter_bounds(f: &Filter, column: &str) -> Option<(f64, f64)> {
    let children: Vec<&Filter> = match f {
        Filter::And(cs) => cs.iter().collect(),
        other => vec![other],
    };
    for c in children {
        if let Filter::Cond {
            target,
            pred: Pred::Range(lo, hi),
        } = c
        {
            if agg_column(target).as_deref() == Some(column) {
                let v = |b: &Bound<Scalar>| match b {
                    Bound::Included(Scalar::Int(i)) | Bound::Excluded(Scalar::Int(i)) => Some(*i as f64),
                    _ => None,
                };
                if let (Some(l), Some(h)) = (v(lo), v(hi)) {
                    return Some((l, h));
                }
            }
        }
    }
    None
}

fn run_report(snap: &Snapshot, compiled: &Compiled, filter: &Filter, aggs: &mut [Agg]) -> Result<Value> {
    if aggs.is_empty() {
        return Ok(json!({"total": compiled.count(snap)?, "aggs": {}}));
    }
    let mut columns = Vec::new();
    collect_calendar_columns(aggs, &mut columns);
    if !columns.is_empty() {
        let mut bounds = Map::new();
        let mut req = Map::new();
        for c in &columns {
            match filter_bounds(filter, c) {
                // Bounded by the filter to a span of at most a few years of days: no first pass.
                Some((lo, hi)) if hi - lo <= 1000.0 * 86_400_000.0 => {
                    bounds.insert(c.clone(), json!({"min": lo, "max": hi}));
                }
                _ => {
                    req.insert(c.clone(), json!({"stats": {"field": c}}));
                }
            }
        }
        if !req.is_empty() {
            let (_, found) = compiled.aggregate(snap, Value::Object(req), MAX_BUCKETS)?;
            if let Value::Object(m) = found {
                bounds.extend(m);
            }
        }
        let n = fill_calendars(aggs, &bounds)
            .map_err(|m| ServiceError::from(Problem::bad_request("too_many_buckets", m).at("/aggs")))?;
        if n > MAX_BUCKETS as u64 {
            return Err(Problem::bad_request(
                "too_many_buckets",
                format!("the report would make more than {MAX_BUCKETS} buckets"),
            )
            .at("/aggs")
            .into());
        }
    }
    let (total, res) = compiled
        .aggregate(snap, to_request(aggs), MAX_BUCKETS)
        .map_err(|e| match e {
            crate::index::IndexError::Rejected(m) if m.contains("bucket limit") => ServiceError::from(
                Problem::bad_request(
                    "too_many_buckets",
                    format!(
                        "the report would make more than {MAX_BUCKETS} buckets: widen an `interval` or `fixed_interval`, or lower a `size`"
                    ),
                )
                .at("/aggs"),
            ),
            crate::index::IndexError::Rejected(m) => {
                ServiceError::from(Problem::bad_request("invalid_aggregation", m).at("/aggs"))
            }
            other => other.into(),
        })?;
    let mut res = match res {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    shape(aggs, &mut res);
    Ok(json!({"total": total, "aggs": res}))
}
