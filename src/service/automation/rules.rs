//! Business rules: enabled rules of the klass run in ascending `order` inside a create or update,
//! before the object is stored; each runs at most once per write, later rules see earlier rules'
//! changes, and everything is part of the same atomic write and of the same event. An action
//! that fails validation fails the write with a 422 naming the rule.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::error::Problem;
use crate::model::automation::BusinessRule;
use crate::model::time::Millis;
use crate::model::OrgSchema;
use crate::model::{Klass, Object};
use crate::query::ast::{BodyKind, SearchRequest};
use crate::query::eval::{matches, EvalContext};
use crate::query::filter::Filter;
use crate::query::validate::Validator;
use crate::service::error::{Result, ServiceError};
use crate::service::objects::{BuildError, Mode, StoreLookup};
use crate::service::saved::IndexRelated;
use crate::service::{App, OrgRuntime};
use crate::storage::Collection;

/// An org's rules in run order, with their conditions compiled against one schema.
pub struct RuleSet {
    rules: Vec<BusinessRule>,
    /// The schema the filters were compiled against, and one slot per rule: `Some` once its
    /// conditions compiled to a filter that does not depend on `now` (those with relative dates
    /// are validated again on every write, at that write's `now`).
    compiled: RwLock<Option<CompiledRules>>,
}

/// Filters compiled against one schema, one slot per rule.
type CompiledRules = (Arc<OrgSchema>, Vec<Option<Arc<Filter>>>);

/// What a rule's conditions are at one write.
enum Conditions {
    Filter(Arc<Filter>),
    /// The schema changed under the rule: it cannot hold, and must not block writes.
    Unfit(String),
}

impl RuleSet {
    /// The conditions of rule `i` at `now`: the cached filter when it holds at any `now`,
    /// otherwise parsed and validated (and cached when it does not depend on `now`).
    fn conditions(&self, i: usize, schema: &Arc<OrgSchema>, k: &Klass, now: Millis) -> Conditions {
        if let Some((s, filters)) = self.compiled.read().expect("rule cache lock").as_ref() {
            if Arc::ptr_eq(s, schema) {
                if let Some(f) = &filters[i] {
                    return Conditions::Filter(f.clone());
                }
            }
        }
        let rule = &self.rules[i];
        if rule.conditions.is_null() {
            return Conditions::Filter(Arc::new(Filter::All));
        }
        let validator = Validator::new(schema, now);
        let parsed = SearchRequest::parse_as(&rule.conditions, BodyKind::Conditions)
            .map_err(|p| p.title)
            .and_then(|req| validator.groups(k, &req.and, &req.or, &req.not).map_err(|p| p.title));
        let filter = match parsed {
            Ok(f) => Arc::new(f),
            Err(e) => return Conditions::Unfit(e),
        };
        if !validator.used_now() {
            let mut cache = self.compiled.write().expect("rule cache lock");
            let stale = cache.as_ref().is_none_or(|(s, _)| !Arc::ptr_eq(s, schema));
            if stale {
                *cache = Some((schema.clone(), vec![None; self.rules.len()]));
            }
            if let Some((_, filters)) = cache.as_mut() {
                filters[i] = Some(filter.clone());
            }
        }
        Conditions::Filter(filter)
    }
}

impl App {
    /// The org's rules, cached until one changes.
    fn rules(&self, rt: &OrgRuntime) -> Result<Arc<RuleSet>> {
        rt.rules.get_or_load(|| {
            let mut rules: Vec<BusinessRule> = self.store().list_docs(rt.org.num, Collection::Rule)?;
            rules.sort_by(|a, b| (a.order, &a.id).cmp(&(b.order, &b.id)));
            Ok(RuleSet {
                rules,
                compiled: RwLock::new(None),
            })
        })
    }

    /// Runs the rules of `k` for a write (`created` or `updated`) on `obj` before it is stored.
    pub(crate) fn apply_rules(&self, rt: &OrgRuntime, k: &Klass, op: &str, obj: &mut Object) -> Result<()> {
        let set = self.rules(rt)?;
        let mut applicable = set
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.enabled && r.klass == k.name && r.on.iter().any(|o| o == op))
            .peekable();
        if applicable.peek().is_none() {
            return Ok(());
        }
        let schema = rt.schema();
        let snap = self.snapshot(rt);
        let related = IndexRelated {
            app: self,
            snap: &snap,
            org: rt.org.num,
            cache: RefCell::new(HashMap::new()),
        };
        let now = self.now();
        for (i, rule) in applicable {
            let filter = match set.conditions(i, &schema, k, now) {
                Conditions::Filter(f) => f,
                Conditions::Unfit(e) => {
                    tracing::warn!(org = %rt.org.id, rule = %rule.id, error = %e, "business rule no longer fits the schema; skipped");
                    continue;
                }
            };
            let ctx = EvalContext {
                schema: &schema,
                related: &related,
                changed: &[],
            };
            if !matches(&filter, obj, &ctx) {
                continue;
            }
            for (i, action) in rule.actions.iter().enumerate() {
                self.apply_action(rt, k, rule, i, action, obj)?;
            }
        }
        Ok(())
    }

    /// Refuses (422 at `at`) a `set` or `assign` action that could never apply to the klass: an
    /// unknown attribute, a value of the wrong type or out of range, a team or user that does not
    /// exist. It is applied, as a PATCH, to an empty object of the klass; only the problems of the
    /// fields it sets count.
    pub(crate) fn check_action(&self, rt: &OrgRuntime, k: &Klass, kind: &str, arg: &Value, at: &str) -> Result<()> {
        let Some(patch) = action_patch(kind, arg) else {
            return Ok(());
        };
        let mut base = Object::empty();
        base.klass = k.name.clone();
        let lookup = StoreLookup {
            app: self,
            org: rt.org.num,
        };
        let mut result = self.build_with(&lookup, k, &patch, Some(&base), Mode::Patch);
        // Attributes the action would declare by their suffix: checked as declared.
        if let Err(BuildError::Declare(names)) = &result {
            result = self.build_as_declared(rt, &lookup, k, &patch, Some(&base), Mode::Patch, names);
        }
        let problems = match result {
            Err(BuildError::Invalid(ps)) => ps,
            Err(BuildError::Failed(e)) => return Err(e),
            Ok(_) | Err(BuildError::Declare(_)) => return Ok(()),
        };
        // The fields the action sets, one level down in `custom` and `relationships`: a problem of
        // another field (a required attribute the empty object lacks) is not the action's.
        let esc = crate::query::ast::escape_pointer;
        let mut fields: Vec<String> = Vec::new();
        for (f, v) in patch.as_object().into_iter().flatten() {
            match (f.as_str(), v) {
                ("custom" | "relationships", Value::Object(m)) => {
                    fields.extend(m.keys().map(|n| format!("/{f}/{}", esc(n))));
                }
                _ => fields.push(format!("/{}", esc(f))),
            }
        }
        for p in problems {
            let Some(crate::error::ProblemSource::Pointer(ptr)) = &p.source else {
                continue;
            };
            if fields.iter().any(|f| ptr == f || ptr.starts_with(&format!("{f}/"))) {
                let pointer = if kind == "set" {
                    format!("{at}{ptr}")
                } else {
                    at.to_string()
                };
                return Err(Problem::invalid("invalid_action", format!("`{kind}`: {}", p.title))
                    .at(pointer)
                    .into());
            }
        }
        Ok(())
    }

    fn apply_action(
        &self,
        rt: &OrgRuntime,
        k: &Klass,
        rule: &BusinessRule,
        i: usize,
        action: &Value,
        obj: &mut Object,
    ) -> Result<()> {
        let failed = |p: Problem| -> ServiceError {
            Problem::invalid(
                "business_rule_failed",
                format!("business rule `{}` ({}): {}", rule.name, rule.id, p.title),
            )
            .at(format!("/actions/{i}"))
            .into()
        };
        let Some((kind, arg)) = action.as_object().and_then(|m| m.iter().next()) else {
            return Ok(());
        };
        let patch = match kind.as_str() {
            "set" | "assign" => action_patch(kind, arg).expect("a patch action"),
            "addTags" | "removeTags" => {
                let tags: Vec<String> = arg
                    .as_array()
                    .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                if kind == "addTags" {
                    for t in tags {
                        if !obj.tags.contains(&t) {
                            obj.tags.push(t);
                        }
                    }
                } else {
                    obj.tags.retain(|t| !tags.contains(t));
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let kept = (obj.rev, obj.created_at, obj.updated_at);
        let mut attempt = 0;
        let next = loop {
            let k = rt.schema().klass(&k.name).cloned().unwrap_or_else(|| k.clone());
            match self.build_with(
                &StoreLookup {
                    app: self,
                    org: rt.org.num,
                },
                &k,
                &patch,
                Some(obj),
                Mode::Patch,
            ) {
                Ok(o) => break o,
                Err(BuildError::Invalid(ps)) => {
                    return Err(failed(
                        ps.into_iter()
                            .next()
                            .unwrap_or_else(|| Problem::invalid("invalid", "invalid")),
                    ))
                }
                Err(BuildError::Declare(names)) if attempt == 0 => {
                    attempt += 1;
                    self.declare_suffix_attributes(rt, &k.name, &names)?;
                }
                Err(BuildError::Declare(names)) => {
                    return Err(failed(Problem::invalid("invalid", format!("cannot declare {names:?}"))))
                }
                Err(BuildError::Failed(e)) => return Err(e),
            }
        };
        *obj = next;
        (obj.rev, obj.created_at, obj.updated_at) = kept;
        Ok(())
    }
}

/// The PATCH body a `set` or `assign` action applies; None for the tag actions.
fn action_patch(kind: &str, arg: &Value) -> Option<Value> {
    match kind {
        "set" => Some(arg.clone()),
        "assign" => {
            let mut p = serde_json::Map::new();
            if let Some(t) = arg.get("team") {
                p.insert("assignedTeam".into(), t.clone());
            }
            if let Some(u) = arg.get("user") {
                p.insert("assignedUser".into(), u.clone());
            }
            Some(Value::Object(p))
        }
        _ => None,
    }
}
