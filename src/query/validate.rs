//! Validation: a parsed query meets the org schema and becomes a [`Filter`].
//!
//! Every problem is a 400 whose pointer names the clause (`/and/0/custom.tierStr`): an unknown
//! field, an operator that does not fit the field's type, a value of the wrong type.

use std::ops::Bound;

use serde_json::Value;

use super::ast::{Clause, HasClause, SearchRequest, SortDir};
use super::filter::{AttrRef, CountRange, Filter, Pred, Scalar, Target, TextQuery, TextWord};
use crate::error::Problem;
use crate::index::analysis::{fold, text_tokens, word_tokens};
use crate::model::time::{parse_duration, parse_time, Millis};
use crate::model::{AttrType, Klass, OrgSchema, Relation};

/// Most sort keys.
pub const MAX_SORT_KEYS: usize = crate::index::collect::MAX_SORT_KEYS;

/// A sort key, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum SortTarget {
    /// Relevance.
    Score,
    /// A field.
    Field(Target),
}

/// Validates queries against one org's schema at one `now`.
pub struct Validator<'a> {
    /// The org schema.
    pub schema: &'a OrgSchema,
    /// Reference time for relative dates.
    pub now: Millis,
    /// Accept the `changed` pseudo-field (workflow triggers).
    pub allow_changed: bool,
    /// Set once a clause read `now` (a relative date or `within_last`): the compiled filter then
    /// holds only at this `now` and must not be cached.
    relative: std::cell::Cell<bool>,
}

fn bad(pointer: &str, code: &'static str, title: impl Into<String>) -> Problem {
    Problem::bad_request(code, title).at(pointer)
}

/// How a field's values are compared.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind<'a> {
    Exact,
    Folded,
    Words,
    Text,
    Tree,
    Enum(&'a [String]),
    Number,
    Integer,
    Bool,
    Date,
}

impl<'a> Kind<'a> {
    fn of_target(t: &'a Target, enum_values: &'a [String]) -> Kind<'a> {
        match t {
            Target::Id | Target::ExternalId | Target::Klass | Target::Rel { .. } | Target::Changed => Kind::Exact,
            Target::Tags => Kind::Folded,
            Target::CreatedAt | Target::UpdatedAt => Kind::Date,
            Target::Attr(a) => match a.ty {
                AttrType::String => Kind::Words,
                AttrType::Text => Kind::Text,
                AttrType::Number => Kind::Number,
                AttrType::Integer => Kind::Integer,
                AttrType::Boolean => Kind::Bool,
                AttrType::Date => Kind::Date,
                AttrType::Enum => Kind::Enum(enum_values),
                AttrType::Url | AttrType::Email | AttrType::Phone => Kind::Folded,
                AttrType::Tree => Kind::Tree,
                AttrType::Reference => Kind::Exact,
            },
        }
    }
}

fn operators(t: &Target) -> &'static [&'static str] {
    match t {
        Target::Id | Target::ExternalId | Target::Tags => {
            &["equals", "not_equals", "in", "not_in", "starts_with", "set"]
        }
        Target::Klass | Target::Changed => &["equals", "not_equals", "in", "not_in"],
        Target::Rel { .. } => AttrType::Reference.operators(),
        Target::CreatedAt | Target::UpdatedAt => AttrType::Date.operators(),
        Target::Attr(a) => a.ty.operators(),
    }
}

impl<'a> Validator<'a> {
    /// A validator for searches.
    pub fn new(schema: &'a OrgSchema, now: Millis) -> Self {
        Validator {
            schema,
            now,
            allow_changed: false,
            relative: std::cell::Cell::new(false),
        }
    }

    /// Whether a filter validated so far depends on `now` (relative dates, `within_last`).
    pub fn used_now(&self) -> bool {
        self.relative.get()
    }

    /// The context klass of a request.
    pub fn context(&self, req: &SearchRequest) -> Result<&'a Klass, Problem> {
        if req.query_context.is_empty() {
            return Err(bad("/queryContext", "invalid_query", "`queryContext` is required"));
        }
        self.schema.klass(&req.query_context).ok_or_else(|| {
            bad(
                "/queryContext",
                "unknown_klass",
                format!("klass `{}` does not exist", req.query_context),
            )
        })
    }

    /// The filter of a request over `ctx`: its `and`, `or`, `not` and `text`.
    pub fn request_filter(&self, ctx: &Klass, req: &SearchRequest) -> Result<Filter, Problem> {
        let mut f = self.groups(ctx, &req.and, &req.or, &req.not)?;
        if let Some(text) = &req.text {
            let words = text_words(text);
            if !words.is_empty() {
                f = Filter::and(vec![f, Filter::Text(text_query(words, [ctx]))]);
            }
        }
        Ok(f)
    }

    /// `and` all hold, one of a non-empty `or` holds, no `not` holds.
    pub fn groups(&self, ctx: &Klass, and: &[Clause], or: &[Clause], not: &[Clause]) -> Result<Filter, Problem> {
        let mut parts = Vec::with_capacity(and.len() + 2);
        for c in and {
            parts.push(self.clause(ctx, c)?);
        }
        if !or.is_empty() {
            parts.push(Filter::or(
                or.iter().map(|c| self.clause(ctx, c)).collect::<Result<_, _>>()?,
            ));
        }
        for c in not {
            parts.push(Filter::negate(self.clause(ctx, c)?));
        }
        Ok(Filter::and(parts))
    }

    /// The filter of a timeline body: every field path starts with the klass of the listed
    /// object (`order.custom.totalNum`), and an object of another klass has no value there, so
    /// positive predicates are false and negative ones true on it.
    pub fn timeline_filter(&self, req: &SearchRequest) -> Result<Filter, Problem> {
        let mut parts = Vec::new();
        for c in &req.and {
            parts.push(self.timeline_clause(c)?);
        }
        if !req.or.is_empty() {
            parts.push(Filter::or(
                req.or
                    .iter()
                    .map(|c| self.timeline_clause(c))
                    .collect::<Result<_, _>>()?,
            ));
        }
        for c in &req.not {
            parts.push(Filter::negate(self.timeline_clause(c)?));
        }
        if let Some(text) = &req.text {
            let words = text_words(text);
            if !words.is_empty() {
                // Over the listed klasses' attributes (every klass's when none are listed).
                let listed: Vec<&Klass> = req
                    .klasses
                    .iter()
                    .flatten()
                    .filter_map(|k| self.schema.klass(k))
                    .collect();
                let q = if listed.is_empty() {
                    text_query(words, self.schema.klasses.values())
                } else {
                    text_query(words, listed)
                };
                parts.push(Filter::Text(q));
            }
        }
        Ok(Filter::and(parts))
    }

    fn timeline_clause(&self, c: &Clause) -> Result<Filter, Problem> {
        match c {
            Clause::And(cs) => Ok(Filter::and(
                cs.iter().map(|c| self.timeline_clause(c)).collect::<Result<_, _>>()?,
            )),
            Clause::Or(cs) => Ok(Filter::or(
                cs.iter().map(|c| self.timeline_clause(c)).collect::<Result<_, _>>()?,
            )),
            Clause::Not(cs) => Ok(Filter::and(
                cs.iter()
                    .map(|c| self.timeline_clause(c).map(Filter::negate))
                    .collect::<Result<_, _>>()?,
            )),
            Clause::Has(h) => Err(bad(
                &h.pointer,
                "invalid_query",
                "on a timeline, `has` goes inside a klass path, like {\"conversation.message.body\": {...}}",
            )),
            Clause::Field { path, ops, pointer } => {
                let segments: Vec<&str> = path.split('.').collect();
                let klass = self.schema.klass(segments[0]).filter(|_| segments.len() > 1).ok_or_else(|| {
                    bad(pointer, "unknown_field", format!("on a timeline a field starts with a klass name, like `order.custom.totalNum`; `{path}` does not"))
                })?;
                let inner = self.field(klass, path, &segments[1..], ops, pointer)?;
                Ok(only_klass(inner, &klass.name))
            }
        }
    }

    /// One clause.
    pub fn clause(&self, ctx: &Klass, c: &Clause) -> Result<Filter, Problem> {
        match c {
            Clause::And(cs) => Ok(Filter::and(
                cs.iter().map(|c| self.clause(ctx, c)).collect::<Result<_, _>>()?,
            )),
            Clause::Or(cs) => Ok(Filter::or(
                cs.iter().map(|c| self.clause(ctx, c)).collect::<Result<_, _>>()?,
            )),
            Clause::Not(cs) => Ok(Filter::and(
                cs.iter()
                    .map(|c| self.clause(ctx, c).map(Filter::negate))
                    .collect::<Result<_, _>>()?,
            )),
            Clause::Has(h) => self.has(ctx, h),
            Clause::Field { path, ops, pointer } => {
                let segments: Vec<&str> = path.split('.').collect();
                self.field(ctx, path, &segments, ops, pointer)
            }
        }
    }

    fn has(&self, ctx: &Klass, h: &HasClause) -> Result<Filter, Problem> {
        let kp = format!("{}/klass", h.pointer);
        let related = self
            .schema
            .klass(&h.klass)
            .ok_or_else(|| bad(&kp, "unknown_klass", format!("klass `{}` does not exist", h.klass)))?;
        let rels = self.schema.relations(&ctx.name, &h.klass);
        if rels.is_empty() {
            return Err(bad(
                &kp,
                "unrelated_klass",
                format!("klass `{}` is not related to `{}`", h.klass, ctx.name),
            ));
        }
        let inner = self.groups(related, &h.and, &h.or, &h.not)?;
        let mut count = CountRange { min: 0, max: None };
        if h.count.is_empty() {
            count = CountRange::ANY;
        }
        for (op, n, _) in &h.count {
            let n = *n;
            match op.as_str() {
                "gt" => count.min = count.min.max(n + 1),
                "gte" => count.min = count.min.max(n),
                "lt" => {
                    if n == 0 {
                        return Ok(Filter::Nothing);
                    }
                    count.max = Some(count.max.map_or(n - 1, |m| m.min(n - 1)))
                }
                "lte" => count.max = Some(count.max.map_or(n, |m| m.min(n))),
                _ => {
                    count.min = count.min.max(n);
                    count.max = Some(count.max.map_or(n, |m| m.min(n)));
                }
            }
        }
        if count.max.is_some_and(|m| m < count.min) {
            return Ok(Filter::Nothing);
        }
        if count.min == 0 && count.max.is_none() {
            return Ok(Filter::All);
        }
        Ok(join(rels, inner, count))
    }

    fn field(
        &self,
        ctx: &Klass,
        path: &str,
        seg: &[&str],
        ops: &[(String, Value)],
        p: &str,
    ) -> Result<Filter, Problem> {
        let unknown = || {
            bad(
                p,
                "unknown_field",
                format!("field `{path}` does not exist on `{}`", ctx.name),
            )
        };
        let first = seg[0];
        if seg.len() == 1 {
            let target = match first {
                "id" => Target::Id,
                "externalId" => Target::ExternalId,
                "klass" => Target::Klass,
                "tags" => Target::Tags,
                "createdAt" => Target::CreatedAt,
                "updatedAt" => Target::UpdatedAt,
                "changed" if self.allow_changed => Target::Changed,
                "rev" => return Err(bad(p, "not_searchable", "`rev` is not searchable")),
                name => match ctx.standard_attribute(name) {
                    Some(a) => Target::Attr(attr_ref(a)),
                    None => {
                        return self
                            .klass_prefix(ctx, path, seg, ops, p)
                            .unwrap_or_else(|| Err(unknown()))
                    }
                },
            };
            let values: &[String] = match &target {
                Target::Attr(a) => ctx.attribute(&a.name).map(|a| a.values.as_slice()).unwrap_or(&[]),
                _ => &[],
            };
            return self.ops(&target, Kind::of_target(&target, values), path, ops, p);
        }
        match first {
            "custom" => {
                let a = ctx.custom_attribute(seg[1]).ok_or_else(unknown)?;
                if seg.len() == 2 {
                    let target = Target::Attr(attr_ref(a));
                    return self.ops(&target, Kind::of_target(&target, &a.values), path, ops, p);
                }
                let rel = self.schema.upward_custom(ctx, seg[1]).ok_or_else(unknown)?;
                self.follow(vec![rel], path, &seg[2..], ops, p)
            }
            "relationships" => {
                let r = ctx.relationship(seg[1]).ok_or_else(unknown)?;
                if seg.len() == 2 {
                    let target = Target::Rel {
                        name: r.name.clone(),
                        key: r.key.clone(),
                    };
                    return self.ops(&target, Kind::Exact, path, ops, p);
                }
                let rel = self.schema.upward(ctx, seg[1]).ok_or_else(unknown)?;
                self.follow(vec![rel], path, &seg[2..], ops, p)
            }
            _ => {
                if let Some(rel) = self.schema.upward(ctx, first) {
                    return self.follow(vec![rel], path, &seg[1..], ops, p);
                }
                self.klass_prefix(ctx, path, seg, ops, p)
                    .unwrap_or_else(|| Err(unknown()))
            }
        }
    }

    /// `order.custom.totalNum` on customers: one `has`.
    fn klass_prefix(
        &self,
        ctx: &Klass,
        path: &str,
        seg: &[&str],
        ops: &[(String, Value)],
        p: &str,
    ) -> Option<Result<Filter, Problem>> {
        if seg.len() < 2 {
            return None;
        }
        let rels = self.schema.relations(&ctx.name, seg[0]);
        if rels.is_empty() {
            return None;
        }
        Some(self.follow(rels, path, &seg[1..], ops, p))
    }

    /// A condition on the objects reached through `rels` (one relationship or more, all to the
    /// same klass): some related object satisfies the rest of the path.
    fn follow(
        &self,
        rels: Vec<Relation>,
        path: &str,
        rest: &[&str],
        ops: &[(String, Value)],
        p: &str,
    ) -> Result<Filter, Problem> {
        let name = &rels[0].related;
        let related = self.schema.klass(name).ok_or_else(|| {
            bad(
                p,
                "unknown_klass",
                format!("klass `{name}` named by `{path}` does not exist"),
            )
        })?;
        let inner = self.field(related, path, rest, ops, p)?;
        Ok(join(rels, inner, CountRange::ANY))
    }

    fn ops(
        &self,
        target: &Target,
        kind: Kind<'_>,
        path: &str,
        ops: &[(String, Value)],
        p: &str,
    ) -> Result<Filter, Problem> {
        let allowed = operators(target);
        let mut parts = Vec::with_capacity(ops.len());
        for (op, v) in ops {
            if !allowed.contains(&op.as_str()) {
                return Err(bad(
                    p,
                    "invalid_operator",
                    format!(
                        "operator `{op}` does not apply to `{path}` (use one of {})",
                        allowed.join(", ")
                    ),
                ));
            }
            parts.push(self.op(target, kind, path, op, v, p)?);
        }
        Ok(Filter::and(parts))
    }

    fn op(&self, target: &Target, kind: Kind<'_>, path: &str, op: &str, v: &Value, p: &str) -> Result<Filter, Problem> {
        let cond = |pred: Pred| Filter::Cond {
            target: target.clone(),
            pred,
        };
        let bad_value = |what: &str| bad(p, "invalid_value", format!("`{op}` on `{path}` takes {what}"));
        Ok(match op {
            "equals" | "not_equals" => {
                let f = cond(Pred::Eq(vec![self.scalar(kind, path, op, v, p)?]));
                if op == "equals" {
                    f
                } else {
                    Filter::negate(f)
                }
            }
            "in" | "not_in" => {
                let items = v.as_array().ok_or_else(|| bad_value("a list of values"))?;
                let vals = items
                    .iter()
                    .map(|i| self.scalar(kind, path, op, i, p))
                    .collect::<Result<Vec<_>, _>>()?;
                let f = if vals.is_empty() {
                    Filter::Nothing
                } else {
                    cond(Pred::Eq(vals))
                };
                if op == "in" {
                    f
                } else {
                    Filter::negate(f)
                }
            }
            "contains" | "not_contains" => {
                let s = v.as_str().ok_or_else(|| bad_value("a string of words"))?;
                let tokens = if kind == Kind::Text {
                    text_tokens(s)
                } else {
                    word_tokens(s)
                };
                if tokens.is_empty() {
                    return Err(bad_value("at least one word"));
                }
                let f = cond(Pred::Contains(tokens));
                if op == "contains" {
                    f
                } else {
                    Filter::negate(f)
                }
            }
            "starts_with" => {
                let s = v
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad_value("a non-empty string"))?;
                match kind {
                    Kind::Tree => cond(Pred::TreePrefix(fold(s.trim_end_matches('.')))),
                    Kind::Exact => cond(Pred::Prefix(s.to_string())),
                    _ => cond(Pred::Prefix(fold(s))),
                }
            }
            "gt" | "gte" | "lt" | "lte" => {
                let x = self.range_scalar(kind, path, op, v, p)?;
                let (lo, hi) = match op {
                    "gt" => (Bound::Excluded(x), Bound::Unbounded),
                    "gte" => (Bound::Included(x), Bound::Unbounded),
                    "lt" => (Bound::Unbounded, Bound::Excluded(x)),
                    _ => (Bound::Unbounded, Bound::Included(x)),
                };
                range(target, kind, lo, hi)
            }
            "between" => {
                let pair = v
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or_else(|| bad_value("a list of two values [low, high]"))?;
                let lo = self.range_scalar(kind, path, op, &pair[0], p)?;
                let hi = self.range_scalar(kind, path, op, &pair[1], p)?;
                range(target, kind, Bound::Included(lo), Bound::Included(hi))
            }
            "set" => {
                let b = v.as_bool().ok_or_else(|| bad_value("true or false"))?;
                if b {
                    cond(Pred::Set)
                } else {
                    Filter::negate(cond(Pred::Set))
                }
            }
            "within_last" | "not_within_last" => {
                let d = v
                    .as_str()
                    .and_then(|s| parse_duration(s).ok())
                    .ok_or_else(|| bad_value("a duration like \"30d\""))?;
                self.relative.set(true);
                let f = range(
                    target,
                    kind,
                    Bound::Included(Scalar::Int(self.now - d)),
                    Bound::Included(Scalar::Int(self.now)),
                );
                if op == "within_last" {
                    f
                } else {
                    Filter::negate(f)
                }
            }
            _ => return Err(bad(p, "invalid_operator", format!("unknown operator `{op}`"))),
        })
    }

    fn scalar(&self, kind: Kind<'_>, path: &str, op: &str, v: &Value, p: &str) -> Result<Scalar, Problem> {
        let wrong = |what: &str| bad(p, "invalid_value", format!("`{op}` on `{path}` takes {what}"));
        Ok(match kind {
            Kind::Exact => Scalar::Str(v.as_str().ok_or_else(|| wrong("a string"))?.to_string()),
            Kind::Folded | Kind::Words | Kind::Tree => Scalar::Str(fold(v.as_str().ok_or_else(|| wrong("a string"))?)),
            Kind::Text => return Err(wrong("words through `contains`")),
            Kind::Enum(values) => {
                let s = v.as_str().ok_or_else(|| wrong("a string"))?;
                if !values.iter().any(|x| x == s) {
                    return Err(wrong(&format!("one of {}", values.join(", "))));
                }
                Scalar::Str(s.to_string())
            }
            Kind::Number => Scalar::Num(v.as_f64().filter(|f| f.is_finite()).ok_or_else(|| wrong("a number"))?),
            Kind::Integer => {
                let f = v.as_f64().ok_or_else(|| wrong("an integer"))?;
                match v.as_i64() {
                    Some(i) => Scalar::Int(i),
                    None if f.fract() == 0.0 && f.abs() < 9.2e18 => Scalar::Int(f as i64),
                    None => return Err(wrong("an integer")),
                }
            }
            Kind::Bool => Scalar::Bool(v.as_bool().ok_or_else(|| wrong("true or false"))?),
            Kind::Date => {
                let s = v
                    .as_str()
                    .ok_or_else(|| wrong("a date (RFC 3339, YYYY-MM-DD or now-30d)"))?;
                if s.trim().starts_with("now") {
                    self.relative.set(true);
                }
                Scalar::Int(parse_time(s, self.now).map_err(|e| bad(p, "invalid_value", format!("`{path}`: {e}")))?)
            }
        })
    }

    /// Range bounds: like scalars, but integers accept fractional bounds (adjusted by the caller).
    fn range_scalar(&self, kind: Kind<'_>, path: &str, op: &str, v: &Value, p: &str) -> Result<Scalar, Problem> {
        match kind {
            Kind::Integer => {
                Ok(Scalar::Num(v.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
                    bad(p, "invalid_value", format!("`{op}` on `{path}` takes a number"))
                })?))
            }
            _ => self.scalar(kind, path, op, v, p),
        }
    }

    /// Validates sort keys; defaults to score when there is text, else `updatedAt` desc.
    pub fn sort(&self, ctx: &Klass, req: &SearchRequest, has_text: bool) -> Result<Vec<(SortTarget, bool)>, Problem> {
        if req.sort.is_empty() {
            return Ok(vec![if has_text {
                (SortTarget::Score, true)
            } else {
                (SortTarget::Field(Target::UpdatedAt), true)
            }]);
        }
        if req.sort.len() > MAX_SORT_KEYS {
            return Err(bad(
                "/sort",
                "invalid_sort",
                format!("at most {MAX_SORT_KEYS} sort keys"),
            ));
        }
        let mut out = Vec::new();
        for (field, dir, p) in &req.sort {
            let desc = *dir == SortDir::Desc;
            let not_sortable = |why: &str| bad(p, "invalid_sort", format!("`{field}` cannot be sorted on: {why}"));
            let target = match field.as_str() {
                "_score" if has_text => {
                    out.push((SortTarget::Score, desc));
                    continue;
                }
                "_score" => return Err(not_sortable("there is no `text`")),
                "id" => Target::Id,
                "externalId" => Target::ExternalId,
                "createdAt" => Target::CreatedAt,
                "updatedAt" => Target::UpdatedAt,
                other => {
                    let a = match other.strip_prefix("custom.") {
                        Some(name) => ctx.custom_attribute(name),
                        None => ctx.standard_attribute(other),
                    }
                    .ok_or_else(|| {
                        bad(
                            p,
                            "unknown_field",
                            format!("field `{field}` does not exist on `{}`", ctx.name),
                        )
                    })?;
                    if !a.ty.sortable() {
                        return Err(not_sortable(&format!("type {} is not sortable", a.ty.name())));
                    }
                    if a.list {
                        return Err(not_sortable("it is a list"));
                    }
                    Target::Attr(attr_ref(a))
                }
            };
            out.push((SortTarget::Field(target), desc));
        }
        Ok(out)
    }
}

/// Makes every positive predicate of `f` also require the object's klass to be `klass`.
fn only_klass(f: Filter, klass: &str) -> Filter {
    let is_klass = || Filter::Cond {
        target: Target::Klass,
        pred: Pred::Eq(vec![Scalar::Str(klass.to_string())]),
    };
    match f {
        Filter::And(cs) => Filter::and(cs.into_iter().map(|c| only_klass(c, klass)).collect()),
        Filter::Or(cs) => Filter::or(cs.into_iter().map(|c| only_klass(c, klass)).collect()),
        Filter::Not(inner) => Filter::negate(only_klass(*inner, klass)),
        Filter::All => is_klass(),
        Filter::Nothing => Filter::Nothing,
        positive => Filter::and(vec![is_klass(), positive]),
    }
}

fn join(rels: Vec<Relation>, inner: Filter, count: CountRange) -> Filter {
    if inner == Filter::Nothing && count.min > 0 {
        return Filter::Nothing;
    }
    Filter::Join {
        rels,
        filter: Box::new(inner),
        count,
    }
}

fn range(target: &Target, kind: Kind<'_>, lo: Bound<Scalar>, hi: Bound<Scalar>) -> Filter {
    let (lo, hi) = if kind == Kind::Integer {
        (int_lower(lo), int_upper(hi))
    } else {
        (lo, hi)
    };
    Filter::Cond {
        target: target.clone(),
        pred: Pred::Range(lo, hi),
    }
}

fn as_f64(s: &Scalar) -> f64 {
    match s {
        Scalar::Num(f) => *f,
        Scalar::Int(i) => *i as f64,
        _ => 0.0,
    }
}

fn clamp_i64(f: f64) -> i64 {
    f.clamp(i64::MIN as f64, i64::MAX as f64) as i64
}

/// Integer lower bound from a possibly fractional one.
fn int_lower(b: Bound<Scalar>) -> Bound<Scalar> {
    match b {
        Bound::Included(s) => Bound::Included(Scalar::Int(clamp_i64(as_f64(&s).ceil()))),
        Bound::Excluded(s) => {
            let f = as_f64(&s);
            if f.fract() == 0.0 {
                Bound::Excluded(Scalar::Int(clamp_i64(f)))
            } else {
                Bound::Included(Scalar::Int(clamp_i64(f.ceil())))
            }
        }
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Integer upper bound from a possibly fractional one.
fn int_upper(b: Bound<Scalar>) -> Bound<Scalar> {
    match b {
        Bound::Included(s) => Bound::Included(Scalar::Int(clamp_i64(as_f64(&s).floor()))),
        Bound::Excluded(s) => {
            let f = as_f64(&s);
            if f.fract() == 0.0 {
                Bound::Excluded(Scalar::Int(clamp_i64(f)))
            } else {
                Bound::Included(Scalar::Int(clamp_i64(f.floor())))
            }
        }
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn attr_ref(a: &crate::model::Attribute) -> AttrRef {
    AttrRef {
        name: a.name.clone(),
        key: a.key.clone(),
        ty: a.ty,
        list: a.list,
        standard: a.standard,
    }
}

/// A free-text query over the text and string attributes of `klasses`.
fn text_query<'k>(words: Vec<TextWord>, klasses: impl IntoIterator<Item = &'k Klass>) -> TextQuery {
    let mut text_keys = Vec::new();
    let mut string_keys = Vec::new();
    for a in klasses.into_iter().flat_map(|k| &k.attributes) {
        let keys = match a.ty {
            AttrType::Text => &mut text_keys,
            AttrType::String => &mut string_keys,
            _ => continue,
        };
        if !keys.contains(&a.key) {
            keys.push(a.key.clone());
        }
    }
    TextQuery {
        words,
        text_keys,
        string_keys,
    }
}

/// The words of a free-text query.
pub fn text_words(text: &str) -> Vec<TextWord> {
    word_tokens(text)
        .into_iter()
        .map(|word| {
            let stem = text_tokens(&word).into_iter().next();
            TextWord { word, stem }
        })
        .collect()
}
