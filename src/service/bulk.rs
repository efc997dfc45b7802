//! Bulk lines: the NDJSON format of `POST /v1/bulk`, `kindred import` and `kindred export`.
//!
//! Object lines: `{"op":"create"|"upsert"|"update"|"delete","klass","id"?,"externalId"?,"object"}`
//! (`upsert` matches on `id` when given, else on `externalId`). Definition lines (admins only):
//! `{"op":"create"|"upsert","resource":"klass"|"team"|"user","object"}`. Each line is answered on
//! its own, `{"line":N,"status":201,"id":"..."}` or `{"line":N,"status":422,"errors":[...]}`; a bad
//! line never stops the others.

use serde_json::{json, Value};

use super::auth::{Action, Caller};
use super::error::{Result, ServiceError};
use super::objects::{Mode, WriteOptions};
use super::App;
use crate::error::{ErrorKind, Problem};
use crate::model::{Team, User};
use crate::storage::{Collection, StorageError};

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

/// Parses one line's JSON.
pub fn parse_line(v: &Value) -> std::result::Result<BulkLine, Problem> {
    let Value::Object(m) = v else {
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
    let object = m.get("object").cloned().unwrap_or_else(|| json!({}));
    if !object.is_object() {
        return Err(bad("/object", "`object` must be an object"));
    }
    let string = |k: &str| -> std::result::Result<Option<String>, Problem> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
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
    let mut body = object.clone();
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
    /// Applies one line as the caller, without waiting for durability (the caller waits once per
    /// batch of lines before answering them).
    pub async fn apply_line(&self, caller: &Caller, v: &Value) -> LineResult {
        let line = match parse_line(v) {
            Ok(l) => l,
            Err(p) => {
                return LineResult {
                    status: 400,
                    id: None,
                    errors: vec![p],
                }
            }
        };
        match self.apply_parsed(caller, &line).await {
            Ok(r) => r,
            Err(e) => LineResult::failed(&e),
        }
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
                let nested = |e: ServiceError| match e {
                    ServiceError::Rejected(ps) => {
                        ServiceError::Rejected(ps.into_iter().map(|p| nest(p, "/object")).collect())
                    }
                    other => other,
                };
                match op {
                    BulkOp::Create => {
                        let rt = self.runtime(&caller.org)?;
                        let stored = self
                            .create_stored(caller, &rt, klass, &body, opts)
                            .await
                            .map_err(nested)?;
                        Ok(LineResult {
                            status: 201,
                            id: Some(stored.id),
                            errors: vec![],
                        })
                    }
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

fn nest(p: Problem, prefix: &str) -> Problem {
    match &p.source {
        Some(crate::error::ProblemSource::Pointer(_)) | None => p.nested_under(prefix),
        _ => p,
    }
}
