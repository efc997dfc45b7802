//! Automation use cases: business rules, workflows and their runs, hooks, app events.
//!
//! - [`rules`]: business rules, run inside object writes.
//! - [`engine`]: the per-org task that turns change-log records into runs, fires schedules and
//!   date triggers, and executes runs step by step, persisting after every step.
//! - [`actions`]: what steps do.
//! - [`template`]: step params and conditions over the run context.
//! - [`email`]: inbound mail (RFC 822 parsing and the SMTP listener).

pub mod actions;
pub mod email;
pub mod engine;
pub mod rules;
pub mod template;

use serde_json::Value;

use super::auth::{Action, Caller};
use super::directory::list_json;
use super::error::{Result, ServiceError};
use super::input::Body;
use super::{App, OrgRuntime};
use crate::error::Problem;
use crate::model::automation::{BusinessRule, Event, Hook, Run, RunStatus, StepRun, Workflow};
use crate::model::ids::new_id;
use crate::model::time::parse_duration;
use crate::model::{AttrType, OrgSchema};
use crate::query::ast::{parse_list, BodyKind, SearchRequest};
use crate::query::validate::Validator;
use crate::storage::{Collection, Expect, Op};

/// Actions a step may take.
pub const STEP_ACTIONS: [&str; 13] = [
    "objects.create",
    "objects.update",
    "objects.upsert",
    "objects.delete",
    "customers.lookup",
    "customers.upsert",
    "conversations.assign",
    "tags.add",
    "tags.remove",
    "http.request",
    "delay",
    "stop",
    "noop",
];

/// Writes made by automation this many hops deep start no more workflows (loop protection).
pub const MAX_DEPTH: u8 = 5;

fn invalid(code: &'static str, title: impl Into<String>, pointer: &str) -> ServiceError {
    Problem::invalid(code, title).at(pointer).into()
}

/// Checks `{"and","or","not"}` conditions against a klass.
fn check_conditions(schema: &OrgSchema, klass: &str, conds: &Value, pointer: &str, changed: bool) -> Result<()> {
    if conds.is_null() {
        return Ok(());
    }
    let req = SearchRequest::parse_as(conds, BodyKind::Conditions).map_err(|p| p.nested_under(pointer))?;
    let k = schema
        .klass(klass)
        .ok_or_else(|| invalid("unknown_klass", format!("klass `{klass}` does not exist"), "/klass"))?;
    let mut v = Validator::new(schema, 0);
    v.allow_changed = changed;
    v.groups(k, &req.and, &req.or, &req.not)
        .map_err(|p| p.nested_under(pointer))?;
    Ok(())
}

/// A new, not yet stored run of `wf` for `event`, with the workflow's steps as they are now.
pub(crate) fn new_run(app: &App, wf: &Workflow, event: &Event) -> Run {
    let now = app.now();
    let steps = wf
        .steps
        .iter()
        .map(|s| StepRun {
            id: s["id"].as_str().unwrap_or_default().to_string(),
            status: RunStatus::Pending,
            input: Value::Null,
            output: Value::Null,
            error: None,
            attempts: 0,
        })
        .collect();
    Run {
        id: new_id(),
        workflow: wf.id.clone(),
        status: RunStatus::Pending,
        trigger: event.clone(),
        steps,
        definition: wf.steps.clone(),
        next_step: 0,
        resume_at: None,
        error: None,
        created_at: now,
        updated_at: now,
    }
}

impl App {
    fn automation_rt(&self, caller: &Caller) -> Result<std::sync::Arc<OrgRuntime>> {
        caller.require(Action::ManageAutomation)?;
        self.runtime(&caller.org)
    }

    // ---- business rules ----

    fn parse_rule(&self, rt: &OrgRuntime, b: &Body<'_>, mut rule: BusinessRule) -> Result<BusinessRule> {
        b.only(&["id", "name", "klass", "on", "conditions", "actions", "order", "enabled"])?;
        if b.get("name").is_some() || rule.name.is_empty() {
            rule.name = b.req_str("name")?.to_string();
        }
        if let Some(k) = b.opt_str("klass")? {
            rule.klass = k.to_string();
        }
        let schema = rt.schema();
        if schema.klass(&rule.klass).is_none() {
            return Err(invalid(
                "unknown_klass",
                format!("klass `{}` does not exist", rule.klass),
                "/klass",
            ));
        }
        if let Some(on) = b.opt_str_list("on")? {
            if on.is_empty() || on.iter().any(|o| o != "created" && o != "updated") {
                return Err(invalid(
                    "invalid_field",
                    "`on` must list `created` and/or `updated`",
                    "/on",
                ));
            }
            rule.on = on;
        }
        if let Some(c) = b.get("conditions") {
            rule.conditions = c.clone();
        }
        check_conditions(&schema, &rule.klass, &rule.conditions, "/conditions", false)?;
        if let Some(a) = b.get("actions") {
            let Value::Array(actions) = a else {
                return Err(invalid("invalid_field", "`actions` must be a list", "/actions"));
            };
            for (i, act) in actions.iter().enumerate() {
                let p = format!("/actions/{i}");
                let Some(m) = act.as_object().filter(|m| m.len() == 1) else {
                    return Err(invalid(
                        "invalid_action",
                        "an action is an object with one of set, addTags, removeTags, assign",
                        &p,
                    ));
                };
                let (kind, arg) = m.iter().next().expect("one");
                let ok = match kind.as_str() {
                    "set" => arg.is_object(),
                    "addTags" | "removeTags" => arg.as_array().is_some_and(|t| t.iter().all(Value::is_string)),
                    "assign" => arg
                        .as_object()
                        .is_some_and(|o| o.keys().all(|k| k == "team" || k == "user")),
                    _ => false,
                };
                if !ok {
                    return Err(invalid(
                        "invalid_action",
                        format!("`{kind}` is not an action or its argument is malformed"),
                        &p,
                    ));
                }
            }
            rule.actions = actions.clone();
        }
        // Checked against the rule's klass, new or changed (a PATCH may change the klass alone).
        let k = schema.klass(&rule.klass).expect("checked");
        for (i, act) in rule.actions.iter().enumerate() {
            if let Some((kind, arg)) = act.as_object().and_then(|m| m.iter().next()) {
                self.check_action(rt, k, kind, arg, &format!("/actions/{i}/{kind}"))?;
            }
        }
        if let Some(o) = b.get("order") {
            rule.order = o
                .as_i64()
                .ok_or_else(|| invalid("invalid_field", "`order` must be an integer", "/order"))?;
        }
        if let Some(e) = b.opt_bool("enabled")? {
            rule.enabled = e;
        }
        Ok(rule)
    }

    /// `POST /v1/business-rules`.
    pub fn create_rule(&self, caller: &Caller, body: &Value) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let b = Body::new(body)?;
        let now = self.now();
        let blank = BusinessRule {
            id: b.opt_id("id")?.map(str::to_string).unwrap_or_else(new_id),
            name: String::new(),
            klass: b.req_str("klass")?.to_string(),
            on: vec!["created".into(), "updated".into()],
            conditions: Value::Null,
            actions: Vec::new(),
            order: 0,
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        let rule = self.parse_rule(&rt, &b, blank)?;
        self.store().apply(
            rt.org.num,
            vec![Op::put(Collection::Rule, rule.id.clone(), &rule, Expect::Absent)],
        )?;
        rt.rules.invalidate();
        Ok(rule.to_json())
    }

    fn rule(&self, org: u64, id: &str) -> Result<BusinessRule> {
        self.store()
            .get_doc(org, Collection::Rule, id)?
            .ok_or_else(|| Problem::not_found("business rule", id).into())
    }

    /// `GET /v1/business-rules`.
    pub fn list_rules(&self, caller: &Caller) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let mut rules: Vec<BusinessRule> = self.store().list_docs(rt.org.num, Collection::Rule)?;
        rules.sort_by(|a, b| (&a.klass, a.order, &a.id).cmp(&(&b.klass, b.order, &b.id)));
        Ok(list_json(rules.iter().map(BusinessRule::to_json).collect()))
    }

    /// `GET /v1/business-rules/{id}`.
    pub fn get_rule(&self, caller: &Caller, id: &str) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        Ok(self.rule(rt.org.num, id)?.to_json())
    }

    /// `PATCH /v1/business-rules/{id}`.
    pub fn update_rule(&self, caller: &Caller, id: &str, body: &Value) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let b = Body::new(body)?;
        if b.opt_str("id")?.is_some_and(|x| x != id) {
            return Err(invalid("immutable_field", "`id` cannot change", "/id"));
        }
        let mut rule = self.parse_rule(&rt, &b, self.rule(rt.org.num, id)?)?;
        rule.updated_at = self.now();
        self.store().apply(
            rt.org.num,
            vec![Op::put(Collection::Rule, rule.id.clone(), &rule, Expect::Present)],
        )?;
        rt.rules.invalidate();
        Ok(rule.to_json())
    }

    /// `DELETE /v1/business-rules/{id}`.
    pub fn delete_rule(&self, caller: &Caller, id: &str) -> Result<()> {
        let rt = self.automation_rt(caller)?;
        self.rule(rt.org.num, id)?;
        self.store().apply(rt.org.num, vec![Op::delete(Collection::Rule, id)])?;
        rt.rules.invalidate();
        Ok(())
    }

    // ---- workflows ----

    fn check_trigger(&self, rt: &OrgRuntime, trigger: &Value) -> Result<()> {
        let schema = rt.schema();
        let t = trigger
            .as_object()
            .ok_or_else(|| invalid("invalid_trigger", "`trigger` must be an object", "/trigger"))?;
        let event = t
            .get("event")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("invalid_trigger", "`trigger.event` is required", "/trigger/event"))?;
        let conds = t.get("conditions").cloned().unwrap_or(Value::Null);
        if let Some((klass, op)) = event.split_once('.').filter(|(k, _)| schema.klass(k).is_some()) {
            if !matches!(op, "created" | "updated" | "deleted") {
                return Err(invalid(
                    "invalid_trigger",
                    format!("`{event}`: object events end in created, updated or deleted"),
                    "/trigger/event",
                ));
            }
            check_conditions(&schema, klass, &conds, "/trigger/conditions", true)?;
            return Ok(());
        }
        match event {
            e if e.starts_with("hook.") || e.starts_with("app.") => {
                if !conds.is_null() {
                    template::eval_conditions(&conds, &Value::Null).map_err(|m| invalid("invalid_trigger", m, "/trigger/conditions"))?;
                }
            }
            "schedule" => {
                let cron = t.get("cron").and_then(Value::as_str).ok_or_else(|| invalid("invalid_trigger", "a schedule needs `cron`", "/trigger/cron"))?;
                engine::parse_cron(cron).map_err(|m| invalid("invalid_trigger", m, "/trigger/cron"))?;
                if let Some(tz) = t.get("timezone").and_then(Value::as_str) {
                    if tz != "UTC" && tz != "Etc/UTC" {
                        return Err(invalid("invalid_trigger", "only the `UTC` timezone is supported", "/trigger/timezone"));
                    }
                }
            }
            "date_reached" => {
                let klass = t.get("klass").and_then(Value::as_str).ok_or_else(|| invalid("invalid_trigger", "`date_reached` needs `klass`", "/trigger/klass"))?;
                let k = schema.klass(klass).ok_or_else(|| invalid("unknown_klass", format!("klass `{klass}` does not exist"), "/trigger/klass"))?;
                let field = t.get("field").and_then(Value::as_str).ok_or_else(|| invalid("invalid_trigger", "`date_reached` needs `field`", "/trigger/field"))?;
                let is_date = match field.strip_prefix("custom.") {
                    Some(n) => k.custom_attribute(n).is_some_and(|a| a.ty == AttrType::Date && !a.list),
                    None => matches!(field, "createdAt" | "updatedAt") || k.standard_attribute(field).is_some_and(|a| a.ty == AttrType::Date && !a.list),
                };
                if !is_date {
                    return Err(invalid("invalid_trigger", format!("`{field}` is not a date attribute of `{klass}`"), "/trigger/field"));
                }
                if let Some(o) = t.get("offset") {
                    let s = o.as_str().unwrap_or_default();
                    let s = s.strip_prefix('-').unwrap_or(s);
                    parse_duration(s).map_err(|e| invalid("invalid_trigger", e.to_string(), "/trigger/offset"))?;
                }
                check_conditions(&schema, klass, &conds, "/trigger/conditions", false)?;
            }
            other => return Err(invalid("invalid_trigger", format!("unknown event `{other}` (klass.created|updated|deleted, hook.ID, app.NAME.EVENT, schedule, date_reached)"), "/trigger/event")),
        }
        Ok(())
    }

    fn check_steps(steps: &[Value]) -> Result<()> {
        let mut ids = std::collections::HashSet::new();
        for (i, s) in steps.iter().enumerate() {
            let p = format!("/steps/{i}");
            let m = s
                .as_object()
                .ok_or_else(|| invalid("invalid_step", "a step must be an object", &p))?;
            for k in m.keys() {
                if !matches!(k.as_str(), "id" | "if" | "action" | "params") {
                    return Err(invalid(
                        "invalid_step",
                        format!("unknown step key `{k}`"),
                        &format!("{p}/{k}"),
                    ));
                }
            }
            let id = m
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| invalid("invalid_step", "a step needs an `id`", &format!("{p}/id")))?;
            crate::model::ids::check_id(id).map_err(|e| invalid("invalid_step", e.to_string(), &format!("{p}/id")))?;
            if !ids.insert(id.to_string()) {
                return Err(invalid(
                    "invalid_step",
                    format!("step id `{id}` is used twice"),
                    &format!("{p}/id"),
                ));
            }
            let action = m.get("action").and_then(Value::as_str).unwrap_or_default();
            if !STEP_ACTIONS.contains(&action) {
                return Err(invalid(
                    "invalid_step",
                    format!("`{action}` is not an action ({})", STEP_ACTIONS.join(", ")),
                    &format!("{p}/action"),
                ));
            }
            if let Some(params) = m.get("params") {
                if !params.is_object() {
                    return Err(invalid(
                        "invalid_step",
                        "`params` must be an object",
                        &format!("{p}/params"),
                    ));
                }
            }
            if let Some(cond) = m.get("if") {
                parse_list(cond.get("and").unwrap_or(&Value::Null), "/if")
                    .map_err(|e| invalid("invalid_step", e.title, &format!("{p}/if")))?;
            }
        }
        Ok(())
    }

    fn parse_workflow(&self, rt: &OrgRuntime, b: &Body<'_>, mut wf: Workflow) -> Result<Workflow> {
        b.only(&["id", "name", "enabled", "trigger", "steps"])?;
        if b.get("name").is_some() || wf.name.is_empty() {
            wf.name = b.req_str("name")?.to_string();
        }
        if let Some(e) = b.opt_bool("enabled")? {
            wf.enabled = e;
        }
        if let Some(t) = b.get("trigger") {
            wf.trigger = t.clone();
        }
        self.check_trigger(rt, &wf.trigger)?;
        if let Some(s) = b.get("steps") {
            wf.steps = s
                .as_array()
                .cloned()
                .ok_or_else(|| invalid("invalid_field", "`steps` must be a list", "/steps"))?;
        }
        Self::check_steps(&wf.steps)?;
        Ok(wf)
    }

    /// `POST /v1/workflows`.
    pub fn create_workflow(&self, caller: &Caller, body: &Value) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let b = Body::new(body)?;
        let now = self.now();
        let blank = Workflow {
            id: b.opt_id("id")?.map(str::to_string).unwrap_or_else(new_id),
            name: String::new(),
            enabled: true,
            trigger: b
                .get("trigger")
                .cloned()
                .ok_or_else(|| invalid("missing_field", "`trigger` is required", "/trigger"))?,
            steps: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let wf = self.parse_workflow(&rt, &b, blank)?;
        self.store().apply(
            rt.org.num,
            vec![Op::put(Collection::Workflow, wf.id.clone(), &wf, Expect::Absent)],
        )?;
        rt.workflows.invalidate();
        rt.automation.wake();
        Ok(wf.to_json())
    }

    fn workflow(&self, org: u64, id: &str) -> Result<Workflow> {
        self.store()
            .get_doc(org, Collection::Workflow, id)?
            .ok_or_else(|| Problem::not_found("workflow", id).into())
    }

    /// `GET /v1/workflows`.
    pub fn list_workflows(&self, caller: &Caller) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let wfs: Vec<Workflow> = self.store().list_docs(rt.org.num, Collection::Workflow)?;
        Ok(list_json(wfs.iter().map(Workflow::to_json).collect()))
    }

    /// `GET /v1/workflows/{id}`.
    pub fn get_workflow(&self, caller: &Caller, id: &str) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        Ok(self.workflow(rt.org.num, id)?.to_json())
    }

    /// `PATCH /v1/workflows/{id}` (running runs keep the steps they started with).
    pub fn update_workflow(&self, caller: &Caller, id: &str, body: &Value) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let b = Body::new(body)?;
        if b.opt_str("id")?.is_some_and(|x| x != id) {
            return Err(invalid("immutable_field", "`id` cannot change", "/id"));
        }
        let mut wf = self.parse_workflow(&rt, &b, self.workflow(rt.org.num, id)?)?;
        wf.updated_at = self.now();
        self.store().apply(
            rt.org.num,
            vec![Op::put(Collection::Workflow, wf.id.clone(), &wf, Expect::Present)],
        )?;
        rt.workflows.invalidate();
        rt.automation.wake();
        Ok(wf.to_json())
    }

    /// `DELETE /v1/workflows/{id}` (its runs stay readable).
    pub fn delete_workflow(&self, caller: &Caller, id: &str) -> Result<()> {
        let rt = self.automation_rt(caller)?;
        self.workflow(rt.org.num, id)?;
        self.store()
            .apply(rt.org.num, vec![Op::delete(Collection::Workflow, id)])?;
        rt.workflows.invalidate();
        Ok(())
    }

    /// `GET /v1/workflows/{id}/runs`: newest first, a page of `page_size` after the run `after`
    /// (the last one of the previous page). Paged in the store (run ids sort by creation time),
    /// so a workflow with millions of runs lists as fast as one with ten; `total` counts index
    /// keys without reading runs.
    pub fn list_runs(&self, caller: &Caller, id: &str, page_size: usize, after: Option<&str>) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let prefix = format!("wfrun:{id}:");
        let org = rt.org.num;
        let total = self.store().count_prefix(org, Collection::State, &prefix)?;
        if total == 0 {
            self.workflow(org, id)?;
        }
        // One more than the page tells whether another page follows.
        let keys = self
            .store()
            .doc_ids_with_prefix_rev(org, Collection::State, &prefix, after, page_size + 1)?;
        let more = keys.len() > page_size;
        let mut runs = Vec::with_capacity(page_size);
        let mut last = None;
        for key in keys.iter().take(page_size) {
            let run_id = &key[prefix.len()..];
            if let Some(r) = self.store().get_doc::<Run>(org, Collection::Run, run_id)? {
                runs.push(r.to_json());
            }
            last = Some(run_id.to_string());
        }
        Ok(serde_json::json!({
            "data": runs,
            "total": total,
            "nextCursor": if more { last } else { None },
        }))
    }

    /// `GET /v1/workflow-runs/{id}`.
    pub fn get_run(&self, caller: &Caller, id: &str) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let run: Run = self
            .store()
            .get_doc(rt.org.num, Collection::Run, id)?
            .ok_or_else(|| Problem::not_found("workflow run", id))?;
        Ok(run.to_json())
    }

    /// Stores runs of every enabled workflow `event` starts (with `extra` ops in the same atomic
    /// write) and hands them to the engine. Returns their ids.
    pub(crate) fn start_runs(&self, rt: &OrgRuntime, event: &Event, extra: Vec<Op>) -> Result<Vec<String>> {
        let runs = self.runs_for(rt, event)?;
        self.store_runs(rt, &runs, extra)?;
        Ok(runs.into_iter().map(|r| r.id).collect())
    }

    /// Stores runs, their per-workflow index entries and `extra` ops in one atomic write, then
    /// queues the runs.
    pub(crate) fn store_runs(&self, rt: &OrgRuntime, runs: &[Run], extra: Vec<Op>) -> Result<()> {
        let mut ops = extra;
        for r in runs {
            ops.push(Op::put(Collection::Run, r.id.clone(), r, Expect::Absent));
            ops.push(Op::put(
                Collection::State,
                format!("wfrun:{}:{}", r.workflow, r.id),
                &1u8,
                Expect::Any,
            ));
        }
        if !ops.is_empty() {
            self.store().apply(rt.org.num, ops)?;
        }
        for r in runs {
            rt.automation.enqueue(r.id.clone(), 0);
        }
        Ok(())
    }

    /// The org's workflows, cached until one changes.
    pub(crate) fn workflows(&self, rt: &OrgRuntime) -> Result<std::sync::Arc<Vec<Workflow>>> {
        rt.workflows
            .get_or_load(|| Ok(self.store().list_docs(rt.org.num, Collection::Workflow)?))
    }

    /// The runs an event starts (not stored).
    pub(crate) fn runs_for(&self, rt: &OrgRuntime, event: &Event) -> Result<Vec<Run>> {
        if event.depth >= MAX_DEPTH {
            tracing::warn!(org = %rt.org.id, event = %event.kind, depth = event.depth, "automation loop limit reached; no workflow started");
            return Ok(Vec::new());
        }
        let workflows = self.workflows(rt)?;
        let mut out = Vec::new();
        for wf in workflows.iter().filter(|w| w.enabled && w.event() == event.kind) {
            if !self.trigger_holds(rt, wf, event) {
                continue;
            }
            out.push(new_run(self, wf, event));
        }
        Ok(out)
    }

    fn trigger_holds(&self, rt: &OrgRuntime, wf: &Workflow, event: &Event) -> bool {
        let conds = wf.trigger.get("conditions").cloned().unwrap_or(Value::Null);
        if conds.is_null() {
            return true;
        }
        match engine::object_event_klass(&rt.schema(), &event.kind) {
            Some(klass) => engine::object_conditions_hold(self, rt, &klass, &conds, event),
            None => {
                // Paths may start at the run context (`trigger.data.x`) or at the event (`data.x`).
                let ctx = serde_json::json!({"trigger": event.to_json(), "data": event.data});
                template::eval_conditions(&conds, &ctx).unwrap_or(false)
            }
        }
    }

    /// `POST /v1/events`: an integration's event; the runs it starts are stored before the answer.
    pub async fn post_event(&self, caller: &Caller, body: &Value) -> Result<Value> {
        caller.require(Action::PostEvents)?;
        let rt = self.runtime(&caller.org)?;
        let b = Body::new(body)?;
        b.only(&["type", "data"])?;
        let kind = b.req_str("type")?;
        let valid = kind.strip_prefix("app.").is_some_and(|rest| {
            let mut parts = rest.splitn(2, '.');
            matches!((parts.next(), parts.next()), (Some(a), Some(e)) if !a.is_empty() && !e.is_empty())
        });
        if !valid {
            return Err(invalid(
                "invalid_field",
                "`type` must look like app.NAME.EVENT",
                "/type",
            ));
        }
        let event = Event {
            kind: kind.to_string(),
            data: b.get("data").cloned().unwrap_or(Value::Null),
            at: self.now(),
            depth: 0,
        };
        let runs = self.start_runs(&rt, &event, Vec::new())?;
        self.store().durable().await?;
        Ok(serde_json::json!({"accepted": true, "type": kind, "runs": runs}))
    }

    // ---- hooks ----

    /// `POST /v1/hooks`.
    pub fn create_hook(&self, caller: &Caller, body: &Value) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let b = Body::new(body)?;
        b.only(&["id", "name", "type"])?;
        let kind = b.req_str("type")?;
        if kind != "web" && kind != "email" {
            return Err(invalid("invalid_field", "`type` must be web or email", "/type"));
        }
        let hook = Hook {
            id: b
                .opt_id("id")?
                .map(str::to_string)
                .unwrap_or_else(|| super::auth::random_token(16)),
            name: b.req_str("name")?.to_string(),
            kind: kind.to_string(),
            secret: super::auth::random_token(32),
            created_at: self.now(),
        };
        if self
            .store()
            .meta(&format!("hook:{}", hook.id))?
            .is_some_and(|v| !v.is_empty())
        {
            return Err(Problem::conflict("duplicate_id", format!("hook `{}` already exists", hook.id)).into());
        }
        self.store().apply(
            rt.org.num,
            vec![Op::put(Collection::Hook, hook.id.clone(), &hook, Expect::Absent)],
        )?;
        self.store()
            .set_meta(&format!("hook:{}", hook.id), &rt.org.num.to_be_bytes())?;
        Ok(hook.to_json(&self.options().smtp_domain))
    }

    /// `GET /v1/hooks`.
    pub fn list_hooks(&self, caller: &Caller) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let hooks: Vec<Hook> = self.store().list_docs(rt.org.num, Collection::Hook)?;
        Ok(list_json(
            hooks.iter().map(|h| h.to_json(&self.options().smtp_domain)).collect(),
        ))
    }

    /// `GET /v1/hooks/{id}`.
    pub fn get_hook(&self, caller: &Caller, id: &str) -> Result<Value> {
        let rt = self.automation_rt(caller)?;
        let h: Hook = self
            .store()
            .get_doc(rt.org.num, Collection::Hook, id)?
            .ok_or_else(|| Problem::not_found("hook", id))?;
        Ok(h.to_json(&self.options().smtp_domain))
    }

    /// `DELETE /v1/hooks/{id}`: posts to it answer 404 at once.
    pub fn delete_hook(&self, caller: &Caller, id: &str) -> Result<()> {
        let rt = self.automation_rt(caller)?;
        let _: Hook = self
            .store()
            .get_doc(rt.org.num, Collection::Hook, id)?
            .ok_or_else(|| Problem::not_found("hook", id))?;
        self.store().apply(rt.org.num, vec![Op::delete(Collection::Hook, id)])?;
        self.store().set_meta(&format!("hook:{id}"), b"")?;
        Ok(())
    }

    /// Finds a hook by id and secret (404 otherwise, saying nothing about which was wrong).
    pub fn resolve_hook(&self, id: &str, secret: &str, kind: &str) -> Result<(std::sync::Arc<OrgRuntime>, Hook)> {
        let not_found = || ServiceError::from(Problem::not_found("hook", id));
        let org = self
            .store()
            .meta(&format!("hook:{id}"))?
            .filter(|v| v.len() == 8)
            .ok_or_else(not_found)?;
        let org_num = u64::from_be_bytes(org.as_slice().try_into().map_err(|_| not_found())?);
        let org = self.store().org(org_num)?.ok_or_else(not_found)?;
        let rt = self.runtime(&org)?;
        let hook: Hook = self
            .store()
            .get_doc(org_num, Collection::Hook, id)?
            .ok_or_else(not_found)?;
        let equal = hook.secret.len() == secret.len()
            && hook
                .secret
                .bytes()
                .zip(secret.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !equal || hook.kind != kind {
            return Err(not_found());
        }
        Ok((rt, hook))
    }

    /// An email hook by id (SMTP has the address, not the secret).
    pub fn email_hook(&self, id: &str) -> Option<(std::sync::Arc<OrgRuntime>, Hook)> {
        let org = self.store().meta(&format!("hook:{id}")).ok()??;
        let num = u64::from_be_bytes(org.as_slice().try_into().ok()?);
        let org = self.store().org(num).ok()??;
        let rt = self.runtime(&org).ok()?;
        let hook: Hook = self.store().get_doc(num, Collection::Hook, id).ok()??;
        (hook.kind == "email").then_some((rt, hook))
    }

    /// A hook delivery: the event `hook.{id}` and the runs it starts, durable before the answer.
    pub async fn deliver_hook(&self, rt: &OrgRuntime, hook: &Hook, data: Value) -> Result<Value> {
        let event = Event {
            kind: format!("hook.{}", hook.id),
            data,
            at: self.now(),
            depth: 0,
        };
        let runs = self.start_runs(rt, &event, Vec::new())?;
        self.store().durable().await?;
        Ok(serde_json::json!({"accepted": true, "event": event.kind, "runs": runs}))
    }
}
