//! Bulk lines: the NDJSON format of `POST /v1/bulk`, `kindred import` and `kindred export`.
//!
//! Object lines: `{"op":"create"|"upsert"|"update"|"delete","klass","id"?,"externalId"?,"object"}`
//! (`upsert` matches on `id` when given, else on `externalId`). Definition lines (admins only):
//! `{"op":"create"|"upsert","resource":"klass"|"team"|"user","object"}`. Each line is answered on
//! its own, `{"line":N,"status":201,"id":"..."}` or `{"line":N,"status":422,"errors":[...]}`; a bad
//! line never stops the others.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::auth::{Action, Caller};
use super::error::{Result, ServiceError};
use super::objects::{BatchLookup, Mode, StoreLookup, WriteOptions};
use super::App;
use crate::error::{ErrorKind, Problem};
use crate::model::{Object, Team, User};
use crate::storage::{Collection, ObjectWrite, StorageError};

/// What a line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkOp {
    /// Create (409 when the id or externalId exists).
    Create,
    /// Create or merge.
    Upsert,
    /// Merge into an existing object (404 when absent).
    Update,
    /// Delete (404 when absent).
    Delete,
}

/// A definition resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A klass.
    Klass,
    /// A team.
    Team,
    /// A user.
    User,
}

/// One parsed line.
#[derive(Debug, Clone)]
pub enum BulkLine {
    /// An object operation.
    Object {
        /// Operation.
        op: BulkOp,
        /// Klass.
        klass: String,
        /// Id.
        id: Option<String>,
        /// externalId.
        external_id: Option<String>,
        /// The object body.
        object: Value,
    },
    /// A definition.
    Definition {
        /// Operation (create or upsert).
        op: BulkOp,
        /// Resource.
        resource: Resource,
        /// Definition body.
        object: Value,
    },
}

/// The answer to one line.
#[derive(Debug, Clone)]
pub struct LineResult {
    /// HTTP-like status.
    pub status: u16,
    /// Id of the object or definition.
    pub id: Option<String>,
    /// Problems, when it failed.
    pub errors: Vec<Problem>,
}

impl LineResult {
    /// A failure.
    pub fn failed(e: &ServiceError) -> LineResult {
        let problems = e.problems().unwrap_or_else(|| {
            tracing::error!(error = %e, "bulk line failed");
            vec![Problem::new(
                ErrorKind::Internal,
                "internal",
                "internal error; see the server log",
            )]
        });
        let status = crate::error_status(problems[0].kind);
        LineResult {
            status,
            id: None,
            errors: problems,
        }
    }

    /// The output line.
    pub fn to_json(&self, line: u64, problem_json: impl Fn(&Problem) -> Value) -> Value {
        if self.errors.is_empty() {
            let mut v = json!({"line": line, "status": self.status});
            if let Some(id) = &self.id {
                v["id"] = json!(id);
            }
            v
        } else {
            json!({"line": line, "status": self.status, "errors": self.errors.iter().map(problem_json).collect::<Vec<_>>()})
        }
    }

    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

fn bad(pointer: &str, title: impl Into<String>) -> Problem {
    Problem::bad_request("invalid_line", title).at(pointer)
}

/// Parses one line's JSON (taken apart, not copied).
pub fn parse_line(v: Value) -> std::result::Result<BulkLine, Problem> {
    let Value::Object(mut m) = v else {
        return Err(bad("", "a line must be a JSON object"));
    };
    for k in m.keys() {
        if !["op", "klass", "id", "externalId", "object", "resource"].contains(&k.as_str()) {
            return Err(bad(&format!("/{k}"), format!("unknown key `{k}`")));
        }
    }
    let op = match m.get("op").and_then(Value::as_str) {
        Some("create") => BulkOp::Create,
        Some("upsert") => BulkOp::Upsert,
        Some("update") => BulkOp::Update,
        Some("delete") => BulkOp::Delete,
        _ => return Err(bad("/op", "`op` must be create, upsert, update or delete")),
    };
    let object = m.remove("object").unwrap_or_else(|| json!({}));
    if !object.is_object() {
        return Err(bad("/object", "`object` must be an object"));
    }
    let mut string = |k: &str| -> std::result::Result<Option<String>, Problem> {
        match m.remove(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(&format!("/{k}"), format!("`{k}` must be a string"))),
        }
    };
    if let Some(resource) = string("resource")? {
        let resource = match resource.as_str() {
            "klass" => Resource::Klass,
            "team" => Resource::Team,
            "user" => Resource::User,
            _ => return Err(bad("/resource", "`resource` must be klass, team or user")),
        };
        if !matches!(op, BulkOp::Create | BulkOp::Upsert) {
            return Err(bad("/op", "definitions take `create` or `upsert`"));
        }
        return Ok(BulkLine::Definition { op, resource, object });
    }
    let klass = string("klass")?.ok_or_else(|| bad("/klass", "`klass` is required"))?;
    Ok(BulkLine::Object {
        op,
        klass,
        id: string("id")?,
        external_id: string("externalId")?,
        object,
    })
}

/// The body of an object line with its line-level id and externalId merged in.
pub fn line_body(
    id: &Option<String>,
    external_id: &Option<String>,
    object: &Value,
) -> std::result::Result<Value, Problem> {
    line_body_owned(id, external_id, object.clone())
}

/// [`line_body`] of a line's object the caller no longer needs.
pub fn line_body_owned(
    id: &Option<String>,
    external_id: &Option<String>,
    mut body: Value,
) -> std::result::Result<Value, Problem> {
    let m = body.as_object_mut().expect("checked by parse_line");
    for (key, v) in [("id", id), ("externalId", external_id)] {
        if let Some(v) = v {
            match m.get(key).and_then(Value::as_str) {
                Some(inner) if inner != v => {
                    return Err(Problem::invalid(
                        "conflicting_field",
                        format!("`{key}` differs between the line and its object"),
                    )
                    .at(format!("/object/{key}")))
                }
                _ => {
                    m.insert(key.into(), json!(v));
                }
            }
        }
    }
    Ok(body)
}

impl App {
    /// Applies lines in order as the caller, without waiting for durability (the caller waits once
    /// before answering them). Runs of `create` lines are written as one atomic store batch each
    /// (one change-log record per object, rules applied per object, references to objects created
    /// earlier in the run resolved); when such a batch cannot be written as a whole (a duplicate
    /// id or email, say) its lines are applied one by one, so every line still gets its own answer.
    pub async fn apply_lines(&self, caller: &Caller, lines: Vec<Value>) -> Vec<LineResult> {
        let mut results: Vec<Option<LineResult>> = vec![None; lines.len()];
        let mut run: Vec<(usize, String, Value)> = Vec::new();
        for (i, v) in lines.into_iter().enumerate() {
            let parsed = match parse_line(v) {
                Ok(l) => l,
                Err(p) => {
                    results[i] = Some(LineResult {
                        status: 400,
                        id: None,
                        errors: vec![p],
                    });
                    continue;
                }
            };
            let parsed = match parsed {
                BulkLine::Object {
                    op: BulkOp::Create,
                    klass,
                    id,
                    external_id,
                    object,
                } => {
                    match line_body_owned(&id, &external_id, object) {
                        Ok(body) => run.push((i, klass, body)),
                        Err(p) => results[i] = Some(LineResult::failed(&p.into())),
                    }
                    continue;
                }
                other => other,
            };
            self.create_run(caller, &mut run, &mut results).await;
            results[i] = Some(match self.apply_parsed(caller, &parsed).await {
                Ok(r) => r,
                Err(e) => LineResult::failed(&e),
            });
        }
        self.create_run(caller, &mut run, &mut results).await;
        results.into_iter().map(|r| r.expect("every line answered")).collect()
    }

    /// Writes a run of create lines as one batch (see [`App::apply_lines`]).
    async fn create_run(
        &self,
        caller: &Caller,
        run: &mut Vec<(usize, String, Value)>,
        results: &mut [Option<LineResult>],
    ) {
        if run.is_empty() {
            return;
        }
        let lines = std::mem::take(run);
        if let Err(e) = self.try_create_run(caller, &lines, results) {
            tracing::debug!(error = %e, lines = lines.len(), "bulk batch not writable as a whole; line by line");
            let opts = WriteOptions {
                defer_durability: true,
                ..WriteOptions::default()
            };
            for (i, klass, body) in lines {
                results[i] = Some(match self.create_line(caller, &klass, &body, opts).await {
                    Ok(id) => LineResult {
                        status: 201,
                        id: Some(id),
                        errors: vec![],
                    },
                    Err(e) => LineResult::failed(&e),
                });
            }
        }
    }

    /// One batch for the whole run; Err (nothing written, no line answered) when the store refuses
    /// it. Lines that fail validation are answered and left out of the batch.
    fn try_create_run(
        &self,
        caller: &Caller,
        lines: &[(usize, String, Value)],
        results: &mut [Option<LineResult>],
    ) -> Result<()> {
        caller.require(Action::WriteObjects)?;
        let rt = self.runtime(&caller.org)?;
        let org = rt.org.num;
        let mut lookup = BatchLookup {
            store: StoreLookup { app: self, org },
            pending: HashMap::new(),
            deleted: Default::default(),
            known: None,
        };
        let mut next_num = self.store().reserve_nums(org, lines.len() as u64)?;
        let mut writes = Vec::with_capacity(lines.len());
        let mut answered = Vec::with_capacity(lines.len());
        let mut failed = Vec::new();
        for (i, klass, body) in lines {
            let built = self
                .build_declaring(&rt, &lookup, klass, body, None, Mode::Create)
                .and_then(|mut obj| {
                    self.run_rules(&rt, "created", &mut obj)?;
                    Ok(obj)
                });
            match built {
                Ok(mut obj) => {
                    obj.num = next_num;
                    next_num += 1;
                    let schema = rt.schema();
                    let changed = Object::changed_paths(None, Some(&obj), schema.klass(&obj.klass));
                    lookup.pending.insert(obj.id.clone(), obj.clone());
                    answered.push((*i, obj.id.clone()));
                    writes.push(ObjectWrite {
                        before: None,
                        after: Some(obj),
                        log: true,
                        depth: 0,
                        changed,
                    });
                }
                Err(e) => failed.push((*i, LineResult::failed(&nest_error(e)))),
            }
        }
        if !writes.is_empty() {
            self.store().write_objects(org, &mut writes, self.now())?;
            rt.indexer.wake();
            rt.automation.wake();
        }
        for (i, id) in answered {
            results[i] = Some(LineResult {
                status: 201,
                id: Some(id),
                errors: vec![],
            });
        }
        for (i, r) in failed {
            results[i] = Some(r);
        }
        Ok(())
    }

    async fn create_line(&self, caller: &Caller, klass: &str, body: &Value, opts: WriteOptions) -> Result<String> {
        let rt = self.runtime(&caller.org)?;
        let stored = self
            .create_stored(caller, &rt, klass, body, opts)
            .await
            .map_err(nest_error)?;
        Ok(stored.id)
    }

    async fn apply_parsed(&self, caller: &Caller, line: &BulkLine) -> Result<LineResult> {
        let opts = WriteOptions {
            defer_durability: true,
            ..WriteOptions::default()
        };
        let done = |status: u16, v: &Value| LineResult {
            status,
            id: v["id"].as_str().map(str::to_string),
            errors: vec![],
        };
        match line {
            BulkLine::Definition { op, resource, object } => self.apply_definition(caller, *op, *resource, object),
            BulkLine::Object {
                op,
                klass,
                id,
                external_id,
                object,
            } => {
                let body = line_body(id, external_id, object)?;
                let nested = nest_error;
                match op {
                    BulkOp::Create => Ok(LineResult {
                        status: 201,
                        id: Some(self.create_line(caller, klass, &body, opts).await?),
                        errors: vec![],
                    }),
                    BulkOp::Upsert => match (id, external_id) {
                        (Some(id), _) => {
                            let exists = self.load_object(caller.org.num, klass, id).is_ok();
                            if exists {
                                Ok(done(
                                    200,
                                    &self
                                        .update_object(caller, klass, id, &body, Mode::Patch, opts)
                                        .await
                                        .map_err(nested)?,
                                ))
                            } else {
                                match self.create_object(caller, klass, &body, opts).await {
                                    Ok(v) => Ok(done(201, &v)),
                                    // Created concurrently: merge.
                                    Err(ServiceError::Storage(StorageError::Duplicate { what: "id", .. })) => Ok(done(
                                        200,
                                        &self
                                            .update_object(caller, klass, id, &body, Mode::Patch, opts)
                                            .await
                                            .map_err(nested)?,
                                    )),
                                    Err(e) => Err(nested(e)),
                                }
                            }
                        }
                        (None, Some(ext)) => {
                            let (created, v) = self
                                .upsert_by_external_id(caller, klass, ext, &body, opts)
                                .await
                                .map_err(nested)?;
                            Ok(done(if created { 201 } else { 200 }, &v))
                        }
                        (None, None) => Err(bad("/id", "`upsert` needs `id` or `externalId`").into()),
                    },
                    BulkOp::Update | BulkOp::Delete => {
                        let target = match (id, external_id) {
                            (Some(id), _) => id.clone(),
                            (None, Some(ext)) => {
                                let (v, _) = self.get_by_external_id(caller, klass, ext)?;
                                v["id"].as_str().unwrap_or_default().to_string()
                            }
                            (None, None) => return Err(bad("/id", "this op needs `id` or `externalId`").into()),
                        };
                        if *op == BulkOp::Delete {
                            self.delete_object(caller, klass, &target, opts).await?;
                            Ok(LineResult {
                                status: 204,
                                id: Some(target),
                                errors: vec![],
                            })
                        } else {
                            Ok(done(
                                200,
                                &self
                                    .update_object(caller, klass, &target, &body, Mode::Patch, opts)
                                    .await
                                    .map_err(nested)?,
                            ))
                        }
                    }
                }
            }
        }
    }

    /// Applies a definition line (admins only).
    pub fn apply_definition(
        &self,
        caller: &Caller,
        op: BulkOp,
        resource: Resource,
        object: &Value,
    ) -> Result<LineResult> {
        caller.require(Action::WriteSchema)?;
        let nested = |e: ServiceError| match e {
            ServiceError::Rejected(ps) => ServiceError::Rejected(ps.into_iter().map(|p| nest(p, "/object")).collect()),
            other => other,
        };
        let upsert = op == BulkOp::Upsert;
        let id_of = |v: &Value, key: &str| v[key].as_str().map(str::to_string);
        let (status, id) = match resource {
            Resource::Klass => {
                if upsert {
                    let (created, v) = self.upsert_klass(caller, object).map_err(nested)?;
                    (if created { 201 } else { 200 }, id_of(&v, "name"))
                } else {
                    (201, id_of(&self.create_klass(caller, object).map_err(nested)?, "name"))
                }
            }
            Resource::Team => {
                let existing = object["id"].as_str().filter(|_| upsert).and_then(|id| {
                    self.store()
                        .get_doc::<Team>(caller.org.num, Collection::Team, id)
                        .ok()
                        .flatten()
                });
                match existing {
                    Some(t) => (
                        200,
                        id_of(&self.update_team(caller, &t.id, object).map_err(nested)?, "id"),
                    ),
                    None => (201, id_of(&self.create_team(caller, object).map_err(nested)?, "id")),
                }
            }
            Resource::User => {
                let existing = object["id"].as_str().filter(|_| upsert).and_then(|id| {
                    self.store()
                        .get_doc::<User>(caller.org.num, Collection::User, id)
                        .ok()
                        .flatten()
                });
                match existing {
                    Some(u) => (
                        200,
                        id_of(&self.update_user(caller, &u.id, object).map_err(nested)?, "id"),
                    ),
                    None => (201, id_of(&self.create_user(caller, object).map_err(nested)?, "id")),
                }
            }
        };
        Ok(LineResult {
            status,
            id,
            errors: vec![],
        })
    }
}

/// Points an object's problems into the line's `object`.
fn nest_error(e: ServiceError) -> ServiceError {
    match e {
        ServiceError::Rejected(ps) => ServiceError::Rejected(ps.into_iter().map(|p| nest(p, "/object")).collect()),
        other => other,
    }
}

fn nest(p: Problem, prefix: &str) -> Problem {
    match &p.source {
        Some(crate::error::ProblemSource::Pointer(_)) | None => p.nested_under(prefix),
        _ => p,
    }
}
