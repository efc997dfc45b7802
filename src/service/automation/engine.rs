//! The automation engine of one org: a task that
//! 1. tails the change log with its own cursor and stores the runs each object event starts,
//!    atomically with the cursor (each event starts its runs exactly once);
//! 2. fires `schedule` (cron, UTC) and `date_reached` triggers, once per occurrence or object;
//! 3. executes runs step by step, persisting after every step: a step that succeeded is never
//!    repeated, failures retry with backoff, `delay` waits durably, a restart resumes every run
//!    that was not finished.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{watch, Notify, Semaphore};

use super::actions::{self, StepError};
use super::template;
use crate::model::automation::{Event, Run, RunStatus, Workflow};
use crate::model::time::{parse_duration, Millis};
use crate::model::{ChangeOp, Org, OrgSchema, Role, User};
use crate::query::ast::{BodyKind, SearchRequest};
use crate::query::eval::{matches, EvalContext};
use crate::query::validate::Validator;
use crate::service::auth::Caller;
use crate::service::error::Result;
use crate::service::indexing::blocking;
use crate::service::{App, OrgRuntime};
use crate::storage::{Collection, Expect, Op};

/// Attempts of a failing step before its run fails.
pub const MAX_ATTEMPTS: u32 = 5;
/// Runs executed at once per org.
const CONCURRENCY: usize = 8;

/// Handle on an org's engine.
#[derive(Clone, Default)]
pub struct AutomationHandle {
    notify: Arc<Notify>,
    queue: Arc<Mutex<RunQueue>>,
}

/// Run ids by due time, earliest first.
type RunQueue = BinaryHeap<Reverse<(Millis, String)>>;

impl AutomationHandle {
    /// The log grew, or workflows changed.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Schedules a run at `due`.
    pub fn enqueue(&self, run: String, due: Millis) {
        self.queue.lock().expect("queue lock").push(Reverse((due, run)));
        self.notify.notify_one();
    }

    fn next_due(&self) -> Option<Millis> {
        self.queue.lock().expect("queue lock").peek().map(|Reverse((d, _))| *d)
    }

    fn pop_due(&self, now: Millis) -> Vec<String> {
        let mut q = self.queue.lock().expect("queue lock");
        let mut out = Vec::new();
        while let Some(Reverse((d, _))) = q.peek() {
            if *d > now {
                break;
            }
            if let Some(Reverse((_, id))) = q.pop() {
                out.push(id);
            }
        }
        out
    }
}

/// Parses a 5-field cron expression.
pub fn parse_cron(s: &str) -> std::result::Result<croner::Cron, String> {
    croner::Cron::new(s)
        .parse()
        .map_err(|e| format!("`{s}` is not a cron expression: {e}"))
}

/// The klass of an object event type (`order.updated` -> `order`).
pub fn object_event_klass(schema: &OrgSchema, kind: &str) -> Option<String> {
    let (klass, op) = kind.rsplit_once('.')?;
    (matches!(op, "created" | "updated" | "deleted") && schema.klass(klass).is_some()).then(|| klass.to_string())
}

/// Whether an object event's trigger conditions hold on its `after` (`before` for deletes), with
/// the pseudo-field `changed`.
pub fn object_conditions_hold(app: &App, rt: &OrgRuntime, klass: &str, conds: &Value, event: &Event) -> bool {
    let Some(obj) = event
        .data
        .get("object_internal")
        .and_then(|o| serde_json::from_value::<crate::model::Object>(o.clone()).ok())
    else {
        return false;
    };
    let schema = rt.schema();
    let Some(k) = schema.klass(klass) else { return false };
    let Ok(req) = SearchRequest::parse_as(conds, BodyKind::Conditions) else {
        return false;
    };
    let mut v = Validator::new(&schema, app.now());
    v.allow_changed = true;
    let Ok(filter) = v.groups(k, &req.and, &req.or, &req.not) else {
        return false;
    };
    let changed: Vec<String> = event.data["changed"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let snap = app.snapshot(rt);
    let related = crate::service::saved::IndexRelated {
        app,
        snap: &snap,
        org: rt.org.num,
        cache: Default::default(),
    };
    matches(
        &filter,
        &obj,
        &EvalContext {
            schema: &schema,
            related: &related,
            changed: &changed,
        },
    )
}

/// The caller automation acts as in an org.
pub fn system_caller(org: &Org) -> Caller {
    Caller {
        org: org.clone(),
        user: User {
            id: "automation".into(),
            name: "Automation".into(),
            email: "automation@localhost".into(),
            role: Role::Admin,
            teams: vec![],
            created_at: 0,
            updated_at: 0,
        },
        key_id: "automation".into(),
        platform: false,
    }
}

/// Starts the engine of an org.
pub(crate) fn spawn(
    app: App,
    org: Org,
    handle: AutomationHandle,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { run(app, org, handle, shutdown).await })
}

async fn run(app: App, org: Org, h: AutomationHandle, mut shutdown: watch::Receiver<bool>) {
    // Let the runtime finish registering before using it.
    tokio::task::yield_now().await;
    let rt = match app.runtime(&org) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(org = %org.id, error = %e, "automation could not start");
            return;
        }
    };
    // Resume every run that was not finished.
    match app.store().list_docs::<Run>(org.num, Collection::Run) {
        Ok(runs) => {
            for r in runs.into_iter().filter(|r| !r.status.is_final()) {
                h.enqueue(r.id.clone(), r.resume_at.unwrap_or(0));
            }
        }
        Err(e) => tracing::error!(org = %org.id, error = %e, "loading runs failed"),
    }
    let running: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut last_scan = 0i64;
    loop {
        if *shutdown.borrow() {
            // Let executing runs reach their next persisted step.
            let _ = permits.acquire_many(CONCURRENCY as u32).await;
            return;
        }
        let (app2, rt2) = (app.clone(), rt.clone());
        if let Err(e) = blocking(move || consume_log(&app2, &rt2)).await {
            tracing::error!(org = %org.id, error = %e, "automation log consumer failed");
        }
        let now = app.now();
        if now - last_scan >= 1000 {
            last_scan = now;
            let (app2, rt2) = (app.clone(), rt.clone());
            if let Err(e) = blocking(move || fire_timed(&app2, &rt2)).await {
                tracing::error!(org = %org.id, error = %e, "automation timers failed");
            }
        }
        for id in h.pop_due(app.now()) {
            if !running.lock().expect("running lock").insert(id.clone()) {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (app2, rt2, h2, running2) = (app.clone(), rt.clone(), h.clone(), running.clone());
            tokio::spawn(async move {
                if let Some(due) = execute(&app2, &rt2, &id).await {
                    h2.enqueue(id.clone(), due);
                }
                running2.lock().expect("running lock").remove(&id);
                drop(permit);
            });
        }
        let now = app.now();
        let until_due = h.next_due().map(|d| (d - now).max(0) as u64).unwrap_or(1000).min(1000);
        tokio::select! {
            _ = h.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(until_due.max(5))) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Turns new change-log records into runs, moving the cursor in the same atomic write.
fn consume_log(app: &App, rt: &OrgRuntime) -> Result<()> {
    let org = rt.org.num;
    loop {
        let cursor = app.store().cursor(org, "automation")?;
        let workflows = app.workflows(rt)?;
        let schema = rt.schema();
        let wanted: HashSet<&str> = workflows.iter().filter(|w| w.enabled).map(Workflow::event).collect();
        if !wanted.iter().any(|e| object_event_klass(&schema, e).is_some()) {
            // Nobody listens to object events: skip the records without reading them.
            let last = app.store().last_seq(org)?;
            if last > cursor {
                app.store().apply(org, vec![Op::PutCursor("automation".into(), last)])?;
                crate::service::indexing::trim(app, &rt.org)?;
            }
            return Ok(());
        }
        let records = app.store().log_after(org, cursor, 500)?;
        let Some(last) = records.last().map(|r| r.seq) else {
            return Ok(());
        };
        let mut runs = Vec::new();
        for r in &records {
            let kind = format!("{}.{}", r.klass, r.op.name());
            if !wanted.contains(kind.as_str()) {
                continue;
            }
            let k = schema.klass(&r.klass);
            let render = |o: &Option<crate::model::Object>| o.as_ref().map(|o| o.to_json(k)).unwrap_or(Value::Null);
            let subject = if r.op == ChangeOp::Deleted { &r.before } else { &r.after };
            let event = Event {
                kind,
                data: json!({"before": render(&r.before), "after": render(&r.after), "changed": r.changed,
                    "object_internal": serde_json::to_value(subject).unwrap_or(Value::Null)}),
                at: r.at,
                depth: r.depth,
            };
            let mut started = app.runs_for(rt, &event)?;
            runs.append(&mut started);
        }
        for run in &mut runs {
            // The internal copy of the object served the conditions; runs keep the API shape.
            if let Value::Object(m) = &mut run.trigger.data {
                m.remove("object_internal");
            }
        }
        app.store_runs(rt, &runs, vec![Op::PutCursor("automation".into(), last)])?;
        crate::service::indexing::trim(app, &rt.org)?;
    }
}

/// Fires due `schedule` and `date_reached` triggers.
fn fire_timed(app: &App, rt: &OrgRuntime) -> Result<()> {
    let org = rt.org.num;
    let workflows = app.workflows(rt)?;
    let now = app.now();
    for wf in workflows.iter().filter(|w| w.enabled) {
        match wf.event() {
            "schedule" => {
                let Some(cron) = wf
                    .trigger
                    .get("cron")
                    .and_then(Value::as_str)
                    .and_then(|c| parse_cron(c).ok())
                else {
                    continue;
                };
                let key = format!("cron:{}", wf.id);
                // First sight: start counting from now (no backfill of past occurrences).
                let last: Millis = match app.store().get_doc::<Millis>(org, Collection::State, &key)? {
                    Some(l) => l,
                    None => {
                        app.store()
                            .apply(org, vec![Op::put(Collection::State, key.clone(), &now, Expect::Any)])?;
                        continue;
                    }
                };
                let from = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(last).unwrap_or_default();
                let Ok(next) = cron.find_next_occurrence(&from, false) else {
                    continue;
                };
                let next_ms = next.timestamp_millis();
                if next_ms > now {
                    continue;
                }
                let event = Event {
                    kind: "schedule".into(),
                    data: json!({"workflow": wf.id, "scheduledAt": crate::model::time::format_time(next_ms)}),
                    at: now,
                    depth: 0,
                };
                let runs = app.runs_for_workflow(rt, wf, &event);
                app.store_runs(rt, &runs, vec![Op::put(Collection::State, key, &next_ms, Expect::Any)])?;
            }
            "date_reached" => fire_dates(app, rt, wf, now)?,
            _ => {}
        }
    }
    Ok(())
}

fn fire_dates(app: &App, rt: &OrgRuntime, wf: &Workflow, now: Millis) -> Result<()> {
    let t = &wf.trigger;
    let (Some(klass), Some(field)) = (
        t.get("klass").and_then(Value::as_str),
        t.get("field").and_then(Value::as_str),
    ) else {
        return Ok(());
    };
    let offset = match t.get("offset").and_then(Value::as_str) {
        Some(o) => match o.strip_prefix('-') {
            Some(neg) => -parse_duration(neg).unwrap_or(0),
            None => parse_duration(o).unwrap_or(0),
        },
        None => 0,
    };
    // Objects whose date plus offset has passed, while the conditions hold.
    let cutoff = crate::model::time::format_time(now - offset);
    let mut body = json!({"queryContext": klass, "and": [{field: {"lte": cutoff}}]});
    if let Some(c) = t.get("conditions").filter(|c| !c.is_null()) {
        body["and"].as_array_mut().expect("array").push(c.clone());
    }
    let schema = rt.schema();
    let Ok(req) = SearchRequest::parse(&body) else {
        return Ok(());
    };
    let v = Validator::new(&schema, now);
    let Ok(k) = v.context(&req) else { return Ok(()) };
    let Ok(filter) = v.request_filter(k, &req) else {
        return Ok(());
    };
    let snap = app.snapshot(rt);
    let nums = snap.compile(klass, &filter)?.nums(&snap)?;
    let path: Vec<&str> = field.split('.').collect();
    let mut fired = 0;
    for num in nums {
        let Some(obj) = app.store().object(rt.org.num, num)? else {
            continue;
        };
        let json = obj.to_json(schema.klass(klass));
        let date = path
            .iter()
            .try_fold(&json, |cur, seg| cur.get(*seg))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let key = format!("fired:{}:{}:{}", wf.id, obj.id, date);
        if app
            .store()
            .get_doc::<u8>(rt.org.num, Collection::State, &key)?
            .is_some()
        {
            continue;
        }
        let event = Event {
            kind: "date_reached".into(),
            data: json!({"workflow": wf.id, "field": field, "date": date, "object": json}),
            at: now,
            depth: 0,
        };
        let runs = app.runs_for_workflow(rt, wf, &event);
        app.store_runs(rt, &runs, vec![Op::put(Collection::State, key, &1u8, Expect::Any)])?;
        fired += 1;
        if fired >= 1000 {
            break;
        }
    }
    Ok(())
}

impl App {
    /// A run of one workflow for an event (not stored).
    fn runs_for_workflow(&self, _rt: &OrgRuntime, wf: &Workflow, event: &Event) -> Vec<Run> {
        vec![super::new_run(self, wf, event)]
    }
}

fn save(app: &App, rt: &OrgRuntime, run: &Run) -> Result<()> {
    app.store().apply(
        rt.org.num,
        vec![Op::put(Collection::Run, run.id.clone(), run, Expect::Any)],
    )?;
    Ok(())
}

/// Executes a run as far as it can go now. Returns when to try again (delays, backoff).
async fn execute(app: &App, rt: &Arc<OrgRuntime>, id: &str) -> Option<Millis> {
    match execute_inner(app, rt, id).await {
        Ok(due) => due,
        Err(e) => {
            tracing::error!(org = %rt.org.id, run = id, error = %e, "run execution failed; retrying in 5 s");
            Some(app.now() + 5000)
        }
    }
}

async fn execute_inner(app: &App, rt: &Arc<OrgRuntime>, id: &str) -> Result<Option<Millis>> {
    let Some(mut run) = app.store().get_doc::<Run>(rt.org.num, Collection::Run, id)? else {
        return Ok(None);
    };
    if run.status.is_final() {
        return Ok(None);
    }
    let now = app.now();
    if let Some(at) = run.resume_at {
        if at > now {
            return Ok(Some(at));
        }
    }
    run.status = RunStatus::Running;
    run.resume_at = None;
    run.updated_at = now;
    // `running` is worth a write only before a step that may take a while; a run of local
    // steps goes from queued to its outcome, each step's result stored as it completes.
    let slow = run
        .definition
        .get(run.next_step)
        .is_some_and(|d| d["action"].as_str() == Some("http.request"));
    if slow {
        save(app, rt, &run)?;
    }
    let caller = system_caller(&rt.org);
    while run.next_step < run.definition.len() {
        let i = run.next_step;
        let def = run.definition[i].clone();
        let ctx = run_context(&run);
        if let Some(cond) = def.get("if") {
            match template::eval_conditions(cond, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    run.steps[i].status = RunStatus::Skipped;
                    run.next_step += 1;
                    save(app, rt, &run)?;
                    continue;
                }
                Err(e) => return fail(app, rt, &mut run, i, format!("`if`: {e}")),
            }
        }
        let action = def["action"].as_str().unwrap_or_default().to_string();
        let params = match template::render(def.get("params").unwrap_or(&Value::Null), &ctx) {
            Ok(p) => p,
            Err(e) => return fail(app, rt, &mut run, i, e),
        };
        run.steps[i].input = params.clone();
        match action.as_str() {
            "stop" => {
                run.steps[i].status = RunStatus::Succeeded;
                run.steps[i].attempts = 1;
                for s in run.steps.iter_mut().skip(i + 1) {
                    s.status = RunStatus::Skipped;
                }
                run.next_step = run.definition.len();
                break;
            }
            "delay" => {
                if run.steps[i].status == RunStatus::Waiting {
                    // Resumed after the wait.
                    run.steps[i].status = RunStatus::Succeeded;
                    run.steps[i].output = json!({"resumedAt": crate::model::time::format_time(app.now())});
                    run.next_step += 1;
                    save(app, rt, &run)?;
                    continue;
                }
                let until = match (
                    params.get("for").and_then(Value::as_str),
                    params.get("until").and_then(Value::as_str),
                ) {
                    (Some(d), _) => parse_duration(d).map(|ms| app.now() + ms).map_err(|e| e.to_string()),
                    (None, Some(u)) => crate::model::time::parse_time(u, app.now()).map_err(|e| e.to_string()),
                    _ => Err("`delay` takes `for` (\"1h\") or `until` (a time)".to_string()),
                };
                match until {
                    Ok(at) => {
                        run.steps[i].status = RunStatus::Waiting;
                        run.steps[i].attempts = 1;
                        run.status = RunStatus::Waiting;
                        run.resume_at = Some(at);
                        run.updated_at = app.now();
                        save(app, rt, &run)?;
                        return Ok(Some(at));
                    }
                    Err(e) => return fail(app, rt, &mut run, i, e),
                }
            }
            _ => {}
        }
        run.steps[i].attempts += 1;
        run.steps[i].status = RunStatus::Running;
        let step_key = format!("{}:{}", run.id, run.steps[i].id);
        let result = actions::run_action(app, rt, &caller, &action, &params, &step_key, run.trigger.depth).await;
        match result {
            Ok(output) => {
                run.steps[i].status = RunStatus::Succeeded;
                run.steps[i].output = output;
                run.steps[i].error = None;
                run.next_step += 1;
                run.updated_at = app.now();
                if run.next_step == run.definition.len() {
                    // The last step's result and the run's outcome in one write.
                    run.status = RunStatus::Succeeded;
                }
                save(app, rt, &run)?;
            }
            Err(StepError { message, retryable }) => {
                run.steps[i].error = Some(message.clone());
                if retryable && run.steps[i].attempts < MAX_ATTEMPTS {
                    let backoff = 1000 * 2i64.pow(run.steps[i].attempts - 1);
                    run.steps[i].status = RunStatus::Waiting;
                    run.status = RunStatus::Waiting;
                    run.resume_at = Some(app.now() + backoff);
                    run.updated_at = app.now();
                    save(app, rt, &run)?;
                    return Ok(run.resume_at);
                }
                return fail(app, rt, &mut run, i, message);
            }
        }
    }
    if run.status != RunStatus::Succeeded {
        run.status = RunStatus::Succeeded;
        run.updated_at = app.now();
        save(app, rt, &run)?;
    }
    Ok(None)
}

fn fail(app: &App, rt: &OrgRuntime, run: &mut Run, i: usize, message: String) -> Result<Option<Millis>> {
    run.steps[i].status = RunStatus::Failed;
    run.steps[i].error = Some(message.clone());
    for s in run.steps.iter_mut().skip(i + 1) {
        s.status = RunStatus::Skipped;
    }
    run.status = RunStatus::Failed;
    run.error = Some(format!("step `{}` failed: {message}", run.steps[i].id));
    run.updated_at = app.now();
    save(app, rt, run)?;
    tracing::warn!(org = %rt.org.id, run = %run.id, step = %run.steps[i].id, error = %message, "workflow run failed");
    Ok(None)
}

/// The context templates and `if` conditions read: `trigger` and `steps.<id>.{output,status}`.
pub fn run_context(run: &Run) -> Value {
    let mut steps = serde_json::Map::new();
    for s in &run.steps {
        steps.insert(s.id.clone(), json!({"output": s.output, "status": s.status.name()}));
    }
    json!({"trigger": run.trigger.to_json(), "steps": steps, "run": {"id": run.id, "workflow": run.workflow}})
}
