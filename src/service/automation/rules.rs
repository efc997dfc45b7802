//! Business rules: enabled rules of the klass run in ascending `order` inside a create or update,
//! before the object is stored; each runs at most once per write, later rules see earlier rules'
//! changes, and everything is part of the same atomic write and of the same event. An action
//! that fails validation fails the write with a 422 naming the rule.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::Problem;
use crate::model::automation::BusinessRule;
use crate::model::{Klass, Object};
use crate::query::ast::{BodyKind, SearchRequest};
use crate::query::eval::{matches, EvalContext};
use crate::query::validate::Validator;
use crate::service::error::{Result, ServiceError};
use crate::service::objects::{BuildError, Mode, StoreLookup};
use crate::service::saved::IndexRelated;
use crate::service::{App, OrgRuntime};
use crate::storage::Collection;

impl OrgRuntime {
    /// Forgets the cached rules (after a rule changes).
    pub fn rules_changed(&self) {
        *self.rules.write().expect("rules lock") = None;
    }
}

impl App {
    /// The org's rules, cached until one changes.
    fn rules(&self, rt: &OrgRuntime) -> Result<Arc<Vec<BusinessRule>>> {
        if let Some(r) = rt.rules.read().expect("rules lock").as_ref() {
            return Ok(r.clone());
        }
        let mut rules: Vec<BusinessRule> = self.store().list_docs(rt.org.num, Collection::Rule)?;
        rules.sort_by(|a, b| (a.order, &a.id).cmp(&(b.order, &b.id)));
        let rules = Arc::new(rules);
        *rt.rules.write().expect("rules lock") = Some(rules.clone());
        Ok(rules)
    }

    /// Runs the rules of `k` for a write (`created` or `updated`) on `obj` before it is stored.
    pub(crate) fn apply_rules(&self, rt: &OrgRuntime, k: &Klass, op: &str, obj: &mut Object) -> Result<()> {
        let rules = self.rules(rt)?;
        let mut applicable = rules
            .iter()
            .filter(|r| r.enabled && r.klass == k.name && r.on.iter().any(|o| o == op))
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
        for rule in applicable {
            let filter = if rule.conditions.is_null() {
                crate::query::filter::Filter::All
            } else {
                let parsed = SearchRequest::parse_as(&rule.conditions, BodyKind::Conditions)
                    .map_err(|p| p.title)
                    .and_then(|req| {
                        Validator::new(&schema, now)
                            .groups(k, &req.and, &req.or, &req.not)
                            .map_err(|p| p.title)
                    });
                match parsed {
                    Ok(f) => f,
                    Err(e) => {
                        // The schema changed under the rule: it cannot hold, and must not block writes.
                        tracing::warn!(org = %rt.org.id, rule = %rule.id, error = %e, "business rule no longer fits the schema; skipped");
                        continue;
                    }
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
            "set" => arg.clone(),
            "assign" => {
                let mut p = serde_json::Map::new();
                if let Some(t) = arg.get("team") {
                    p.insert("assignedTeam".into(), t.clone());
                }
                if let Some(u) = arg.get("user") {
                    p.insert("assignedUser".into(), u.clone());
                }
                Value::Object(p)
            }
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
