//! Objects: create, read, patch, replace, delete, upsert by externalId, lookups by externalId and
//! email.
//!
//! Input is checked against the klass (types, enum values, bounds, references, directory ids,
//! required attributes) and every problem is reported with its JSON pointer; nothing is written
//! unless everything is valid. A write is acknowledged once the store has fsynced it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::time::Duration;

use serde_json::Value;

use super::auth::{Action, Caller};
use super::error::{Result, ServiceError};
use super::input::Body;
use super::{App, OrgRuntime};
use crate::error::Problem;
use crate::model::ids::{check_id, new_id};
use crate::model::klass::DirectoryKind;
use crate::model::time::parse_time;
use crate::model::{AttrType, Attribute, Cardinality, Klass, Object, OrgSchema, RelValue, UniqueKey, Value as V};
use crate::storage::{ObjectWrite, StorageError};

/// How long a `refresh=wait_for` write waits for the index.
pub const WAIT_FOR_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of a write.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Answer only once the change is searchable.
    pub refresh: bool,
    /// `If-Match`: the revision the caller read.
    pub if_match: Option<u64>,
    /// Automation depth (0 for people and integrations).
    pub depth: u8,
    /// Skip the wait for fsync; the caller waits once for a batch (bulk).
    pub defer_durability: bool,
}

/// How a body applies to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new object.
    Create,
    /// Merge into the current object (`custom` key by key; `null` removes).
    Patch,
    /// Replace every writable field; omitted ones are cleared.
    Replace,
}

/// Why an object could not be built from a body.
pub(crate) enum BuildError {
    /// Problems to report.
    Invalid(Vec<Problem>),
    /// Undeclared custom attributes with a type suffix: declare them, then build again.
    Declare(Vec<String>),
    /// Something failed underneath.
    Failed(ServiceError),
}

impl From<ServiceError> for BuildError {
    fn from(e: ServiceError) -> Self {
        BuildError::Failed(e)
    }
}

impl From<crate::storage::StorageError> for BuildError {
    fn from(e: crate::storage::StorageError) -> Self {
        BuildError::Failed(e.into())
    }
}

const CORE_KEYS: [&str; 9] = [
    "id",
    "klass",
    "externalId",
    "custom",
    "relationships",
    "tags",
    "createdAt",
    "updatedAt",
    "rev",
];
const MAX_EXTERNAL_ID: usize = 255;
const MAX_TAG: usize = 128;

fn invalid(code: &'static str, title: impl Into<String>, pointer: impl Into<String>) -> Problem {
    Problem::invalid(code, title).at(pointer)
}

impl App {
    fn klass_for(&self, rt: &OrgRuntime, name: &str) -> Result<Klass> {
        rt.schema()
            .klass(name)
            .cloned()
            .ok_or_else(|| Problem::not_found("klass", name).into())
    }

    /// The schema, checked to have `name` (no copy of the klass).
    fn schema_with(&self, rt: &OrgRuntime, name: &str) -> Result<std::sync::Arc<crate::model::OrgSchema>> {
        let schema = rt.schema();
        if schema.klass(name).is_none() {
            return Err(Problem::not_found("klass", name).into());
        }
        Ok(schema)
    }

    /// Loads an object of `klass` by id (404 when absent or of another klass).
    pub(crate) fn load_object(&self, org: u64, klass: &str, id: &str) -> Result<Object> {
        let not_found = || ServiceError::from(Problem::not_found(klass, id));
        let num = self.store().num_by_id(org, id)?.ok_or_else(not_found)?;
        let obj = self.store().object(org, num)?.ok_or_else(not_found)?;
        if obj.klass != klass {
            return Err(not_found());
        }
        Ok(obj)
    }

    /// The num of an object of `klass` by id, without reading the object; 404 when there is none.
    pub(crate) fn object_num(&self, org: u64, klass: &str, id: &str) -> Result<u64> {
        match self.store().num_and_klass_by_id(org, id)? {
            Some((num, k)) if k == klass => Ok(num),
            _ => Err(Problem::not_found(klass, id).into()),
        }
    }

    /// Renders an object with its klass.
    pub(crate) fn render(&self, schema: &OrgSchema, obj: &Object) -> Value {
        obj.to_json(schema.klass(&obj.klass))
    }

    /// `GET /v1/objects/{klass}/{id}`.
    pub fn get_object(&self, caller: &Caller, klass: &str, id: &str) -> Result<(Value, u64)> {
        caller.require(Action::Read)?;
        let rt = self.runtime(&caller.org)?;
        let obj = self.load_object(caller.org.num, klass, id)?;
        Ok((self.render(&rt.schema(), &obj), obj.rev))
    }

    /// `GET /v1/objects/{klass}/by-external-id/{externalId}`.
    pub fn get_by_external_id(&self, caller: &Caller, klass: &str, ext: &str) -> Result<(Value, u64)> {
        caller.require(Action::Read)?;
        let rt = self.runtime(&caller.org)?;
        self.klass_for(&rt, klass)?;
        let num = self
            .store()
            .num_by_external_id(caller.org.num, klass, ext)?
            .ok_or_else(|| Problem::not_found(klass, ext))?;
        let obj = self
            .store()
            .object(caller.org.num, num)?
            .ok_or_else(|| Problem::not_found(klass, ext))?;
        Ok((self.render(&rt.schema(), &obj), obj.rev))
    }

    /// `GET /v1/objects/customer/by-email/{email}`.
    pub fn get_customer_by_email(&self, caller: &Caller, email: &str) -> Result<(Value, u64)> {
        caller.require(Action::Read)?;
        let rt = self.runtime(&caller.org)?;
        let num = self
            .store()
            .num_by_email(caller.org.num, email)?
            .ok_or_else(|| Problem::not_found("customer", email))?;
        let obj = self
            .store()
            .object(caller.org.num, num)?
            .ok_or_else(|| Problem::not_found("customer", email))?;
        Ok((self.render(&rt.schema(), &obj), obj.rev))
    }

    /// `POST /v1/objects/{klass}`.
    pub async fn create_object(&self, caller: &Caller, klass: &str, body: &Value, opts: WriteOptions) -> Result<Value> {
        let rt = self.runtime(&caller.org)?;
        let stored = self.create_stored(caller, &rt, klass, body, opts).await?;
        Ok(self.render(&rt.schema(), &stored))
    }

    /// Creates an object and returns it as stored (callers that need no rendering: bulk).
    pub(crate) async fn create_stored(
        &self,
        caller: &Caller,
        rt: &OrgRuntime,
        klass: &str,
        body: &Value,
        opts: WriteOptions,
    ) -> Result<Object> {
        caller.require(Action::WriteObjects)?;
        let mut obj = self.build_with_declarations(rt, klass, body, None, Mode::Create)?;
        self.run_rules(rt, "created", &mut obj)?;
        self.write(rt, None, Some(obj), opts).await
    }

    /// `PATCH` (merge) or `PUT` (replace) `/v1/objects/{klass}/{id}`.
    pub async fn update_object(
        &self,
        caller: &Caller,
        klass: &str,
        id: &str,
        body: &Value,
        mode: Mode,
        opts: WriteOptions,
    ) -> Result<Value> {
        caller.require(Action::WriteObjects)?;
        let rt = self.runtime(&caller.org)?;
        for _ in 0..16 {
            let current = self.load_object(caller.org.num, klass, id)?;
            check_if_match(&current, opts.if_match)?;
            let mut next = self.build_with_declarations(&rt, klass, body, Some(&current), mode)?;
            self.run_rules(&rt, "updated", &mut next)?;
            match self.write(&rt, Some(current), Some(next), opts).await {
                Err(ServiceError::Storage(StorageError::Stale)) if opts.if_match.is_none() => continue,
                Err(e) => return Err(e),
                Ok(stored) => return Ok(self.render(&rt.schema(), &stored)),
            }
        }
        Err(ServiceError::Unavailable(
            "the object is changing too often to update; retry".into(),
        ))
    }

    /// `DELETE /v1/objects/{klass}/{id}`. Objects that reference it keep the (now dangling) id.
    pub async fn delete_object(&self, caller: &Caller, klass: &str, id: &str, opts: WriteOptions) -> Result<()> {
        caller.require(Action::WriteObjects)?;
        let rt = self.runtime(&caller.org)?;
        for _ in 0..16 {
            let current = self.load_object(caller.org.num, klass, id)?;
            check_if_match(&current, opts.if_match)?;
            match self.write(&rt, Some(current), None, opts).await {
                Err(ServiceError::Storage(StorageError::Stale)) if opts.if_match.is_none() => continue,
                other => return other.map(|_| ()),
            }
        }
        Err(ServiceError::Unavailable(
            "the object is changing too often to delete; retry".into(),
        ))
    }

    /// `PUT /v1/objects/{klass}/by-external-id/{externalId}`: creates the object with that
    /// externalId, or merges the body into the existing one. Returns whether it created.
    pub async fn upsert_by_external_id(
        &self,
        caller: &Caller,
        klass: &str,
        ext: &str,
        body: &Value,
        opts: WriteOptions,
    ) -> Result<(bool, Value)> {
        caller.require(Action::WriteObjects)?;
        let rt = self.runtime(&caller.org)?;
        self.klass_for(&rt, klass)?;
        if let Some(given) = body.get("externalId").and_then(Value::as_str) {
            if given != ext {
                return Err(invalid(
                    "immutable_field",
                    "`externalId` differs from the one in the path",
                    "/externalId",
                )
                .into());
            }
        }
        for _ in 0..16 {
            match self.store().num_by_external_id(caller.org.num, klass, ext)? {
                Some(num) => {
                    let current = self
                        .store()
                        .object(caller.org.num, num)?
                        .ok_or_else(|| Problem::not_found(klass, ext))?;
                    check_if_match(&current, opts.if_match)?;
                    let mut next = self.build_with_declarations(&rt, klass, body, Some(&current), Mode::Patch)?;
                    self.run_rules(&rt, "updated", &mut next)?;
                    match self.write(&rt, Some(current), Some(next), opts).await {
                        Err(ServiceError::Storage(StorageError::Stale)) if opts.if_match.is_none() => continue,
                        Err(e) => return Err(e),
                        Ok(stored) => return Ok((false, self.render(&rt.schema(), &stored))),
                    }
                }
                None => {
                    let mut b = body.clone();
                    if let Value::Object(m) = &mut b {
                        m.insert("externalId".into(), Value::String(ext.to_string()));
                    }
                    let mut obj = self.build_with_declarations(&rt, klass, &b, None, Mode::Create)?;
                    self.run_rules(&rt, "created", &mut obj)?;
                    match self.write(&rt, None, Some(obj), opts).await {
                        // Created concurrently by someone else: merge into theirs.
                        Err(ServiceError::Storage(StorageError::Duplicate { what: "externalId", .. })) => continue,
                        Err(e) => return Err(e),
                        Ok(stored) => return Ok((true, self.render(&rt.schema(), &stored))),
                    }
                }
            }
        }
        Err(ServiceError::Unavailable(
            "the object is changing too often to upsert; retry".into(),
        ))
    }

    /// Runs the business rules of the object's klass on it.
    pub(crate) fn run_rules(&self, rt: &OrgRuntime, op: &str, obj: &mut Object) -> Result<()> {
        let schema = self.schema_with(rt, &obj.klass)?;
        let k = schema.klass(&obj.klass).expect("checked");
        self.apply_rules(rt, k, op, obj)
    }

    /// Builds an object, declaring Kustomer-suffix attributes first when the body uses new ones.
    pub(crate) fn build_with_declarations(
        &self,
        rt: &OrgRuntime,
        klass: &str,
        body: &Value,
        base: Option<&Object>,
        mode: Mode,
    ) -> Result<Object> {
        let lookup = StoreLookup {
            app: self,
            org: rt.org.num,
        };
        self.build_declaring(rt, &lookup, klass, body, base, mode)
    }

    /// [`App::build_with_declarations`] with references resolved through `lookup`.
    pub(crate) fn build_declaring(
        &self,
        rt: &OrgRuntime,
        lookup: &dyn Lookup,
        klass: &str,
        body: &Value,
        base: Option<&Object>,
        mode: Mode,
    ) -> Result<Object> {
        for _ in 0..3 {
            let schema = self.schema_with(rt, klass)?;
            let k = schema.klass(klass).expect("checked");
            match self.build_with(lookup, k, body, base, mode) {
                Ok(obj) => return Ok(obj),
                Err(BuildError::Invalid(p)) => return Err(ServiceError::Rejected(p)),
                Err(BuildError::Failed(e)) => return Err(e),
                Err(BuildError::Declare(names)) => match self.declare_for(rt, lookup, k, body, base, mode, &names) {
                    Err(BuildError::Invalid(p)) => return Err(ServiceError::Rejected(p)),
                    Err(BuildError::Failed(e)) => return Err(e),
                    Ok(()) | Err(BuildError::Declare(_)) => {}
                },
            }
        }
        Err(ServiceError::Internal("attribute declaration did not settle".into()))
    }

    /// Declares the suffix attributes `names` of `k` once the body is valid with them, so that a
    /// rejected write leaves the schema as it was; otherwise the body's problems.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn declare_for(
        &self,
        rt: &OrgRuntime,
        lookup: &dyn Lookup,
        k: &Klass,
        body: &Value,
        base: Option<&Object>,
        mode: Mode,
        names: &[String],
    ) -> std::result::Result<(), BuildError> {
        match self.build_as_declared(rt, lookup, k, body, base, mode, names) {
            Err(e @ (BuildError::Invalid(_) | BuildError::Failed(_))) => return Err(e),
            Ok(_) | Err(BuildError::Declare(_)) => {}
        }
        self.declare_suffix_attributes(rt, &k.name, names)
            .map_err(BuildError::Failed)
    }

    /// Builds the object against `k` with the undeclared suffix attributes `names` declared in
    /// memory only (nothing is stored): whether the body is valid once they are.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build_as_declared(
        &self,
        rt: &OrgRuntime,
        lookup: &dyn Lookup,
        k: &Klass,
        body: &Value,
        base: Option<&Object>,
        mode: Mode,
        names: &[String],
    ) -> std::result::Result<Object, BuildError> {
        match self.with_suffix_attributes(rt, k, names).map_err(BuildError::Failed)? {
            Some(provisional) => self.build_with(lookup, &provisional, body, base, mode),
            None => self.build_with(lookup, k, body, base, mode),
        }
    }

    /// Stores a write and waits for durability (and, when asked, for the index).
    pub(crate) async fn write(
        &self,
        rt: &OrgRuntime,
        before: Option<Object>,
        after: Option<Object>,
        opts: WriteOptions,
    ) -> Result<Object> {
        let now = self.now();
        let schema = rt.schema();
        let klass_name = after
            .as_ref()
            .or(before.as_ref())
            .map(|o| o.klass.clone())
            .unwrap_or_default();
        let changed = Object::changed_paths(before.as_ref(), after.as_ref(), schema.klass(&klass_name));
        let result_obj = after.clone().or_else(|| before.clone()).expect("one side");
        let mut w = [ObjectWrite {
            before,
            after,
            log: true,
            depth: opts.depth,
            changed,
        }];
        let out = self.store().write_objects(rt.org.num, &mut w, now)?;
        if !opts.defer_durability {
            self.store().durable().await?;
        }
        rt.indexer.wake();
        rt.automation.wake();
        if opts.refresh {
            if let Some(seq) = out[0].seq {
                rt.indexer.wait_for(seq, WAIT_FOR_TIMEOUT).await?;
            }
        }
        let mut stored = w[0].after.take().unwrap_or(result_obj);
        stored.num = out[0].num;
        Ok(stored)
    }

    /// Checks `body` against the klass and produces the object to store, with references resolved
    /// through `lookup` (a batch resolves ids created earlier in the same batch).
    pub(crate) fn build_with(
        &self,
        lookup: &dyn Lookup,
        k: &Klass,
        body: &Value,
        base: Option<&Object>,
        mode: Mode,
    ) -> std::result::Result<Object, BuildError> {
        let b = Body::new(body).map_err(|p| BuildError::Invalid(vec![p]))?;
        let now = self.now();
        let mut problems: Vec<Problem> = Vec::new();
        for key in b.map().keys() {
            if !CORE_KEYS.contains(&key.as_str()) && k.standard_attribute(key).is_none() {
                let hint = if AttrType::from_suffix(key).is_some() {
                    " (custom attributes go under `custom`)"
                } else {
                    ""
                };
                problems.push(invalid(
                    "unknown_attribute",
                    format!("`{key}` is not an attribute of `{}`{hint}", k.name),
                    b.pointer(key),
                ));
            }
        }
        let mut obj = match (mode, base) {
            (Mode::Create, _) => Object {
                num: 0,
                id: String::new(),
                klass: k.name.clone(),
                external_id: None,
                fields: BTreeMap::new(),
                custom: BTreeMap::new(),
                relationships: BTreeMap::new(),
                tags: Vec::new(),
                created_at: now,
                updated_at: now,
                rev: 1,
                links: BTreeMap::new(),
            },
            (Mode::Patch, Some(base)) => {
                let mut o = base.clone();
                o.rev += 1;
                o.updated_at = now;
                o
            }
            (Mode::Replace, Some(base)) => Object {
                num: base.num,
                id: base.id.clone(),
                klass: k.name.clone(),
                external_id: None,
                fields: BTreeMap::new(),
                custom: BTreeMap::new(),
                relationships: BTreeMap::new(),
                tags: Vec::new(),
                created_at: base.created_at,
                updated_at: now,
                rev: base.rev + 1,
                links: BTreeMap::new(),
            },
            (_, None) => {
                return Err(BuildError::Failed(ServiceError::Internal(
                    "update without a base object".into(),
                )))
            }
        };
        // A patch keeps only values of attributes still declared.
        obj.custom
            .retain(|key, _| k.attributes.iter().any(|a| !a.standard && &a.key == key));

        // id, klass
        match (mode, b.opt_str("id")) {
            (_, Err(p)) => problems.push(p),
            (Mode::Create, Ok(Some(id))) => match check_id(id) {
                Ok(()) => obj.id = id.to_string(),
                Err(e) => problems.push(invalid("invalid_id", e.to_string(), "/id")),
            },
            (Mode::Create, Ok(None)) => obj.id = new_id(),
            (_, Ok(Some(id))) if id != obj.id => problems.push(invalid("immutable_field", "`id` cannot change", "/id")),
            _ => {}
        }
        if let Ok(Some(kl)) = b.opt_str("klass") {
            if kl != k.name {
                problems.push(invalid(
                    "klass_mismatch",
                    format!("`klass` is `{kl}` but the path names `{}`", k.name),
                    "/klass",
                ));
            }
        }
        // externalId
        if b.has("externalId") {
            match b.get("externalId") {
                None => obj.external_id = None,
                Some(Value::String(s))
                    if !s.is_empty() && s.len() <= MAX_EXTERNAL_ID && !s.chars().any(char::is_control) =>
                {
                    obj.external_id = Some(s.clone())
                }
                Some(_) => problems.push(invalid(
                    "invalid_field",
                    format!("`externalId` must be a non-empty string of at most {MAX_EXTERNAL_ID} bytes"),
                    "/externalId",
                )),
            }
        }
        // tags
        if b.has("tags") {
            match b.opt_str_list("tags") {
                Ok(tags) => {
                    let mut out: Vec<String> = Vec::new();
                    for (i, t) in tags.unwrap_or_default().into_iter().enumerate() {
                        let t = t.trim().to_string();
                        if t.is_empty() || t.len() > MAX_TAG {
                            problems.push(invalid(
                                "invalid_field",
                                format!("a tag must be 1-{MAX_TAG} bytes"),
                                format!("/tags/{i}"),
                            ));
                        } else if !out.contains(&t) {
                            out.push(t);
                        }
                    }
                    obj.tags = out;
                }
                Err(p) => problems.push(p),
            }
        }
        // times
        match b.opt_str("createdAt") {
            Ok(Some(s)) => match parse_time(s, now) {
                Ok(t) if mode == Mode::Create => obj.created_at = t,
                Ok(t) if t == obj.created_at => {}
                Ok(_) => problems.push(invalid("immutable_field", "`createdAt` cannot change", "/createdAt")),
                Err(e) => problems.push(invalid("invalid_field", format!("`createdAt`: {e}"), "/createdAt")),
            },
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
        match b.opt_str("updatedAt") {
            Ok(Some(s)) => match parse_time(s, now) {
                Ok(t) => obj.updated_at = t,
                Err(e) => problems.push(invalid("invalid_field", format!("`updatedAt`: {e}"), "/updatedAt")),
            },
            Ok(None) if mode == Mode::Create && b.get("createdAt").is_some() => {
                obj.updated_at = obj.updated_at.max(obj.created_at)
            }
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
        // standard attributes
        for a in k.attributes.iter().filter(|a| a.standard) {
            if !b.has(&a.name) {
                continue;
            }
            match b.get(&a.name) {
                None => {
                    obj.fields.remove(&a.name);
                }
                Some(v) => match a.coerce(v, now) {
                    Ok(val) => {
                        obj.fields.insert(a.name.clone(), val);
                    }
                    Err(m) => problems.push(invalid("invalid_attribute_value", m, b.pointer(&a.name))),
                },
            }
        }
        // custom attributes
        let mut declare = Vec::new();
        if b.has("custom") {
            match b.get("custom") {
                None => obj.custom.clear(),
                Some(Value::Object(custom)) => {
                    for (name, v) in custom {
                        // Built only for a problem to report.
                        let p = || format!("/custom/{}", crate::query::ast::escape_pointer(name));
                        let Some(a) = k.custom_attribute(name) else {
                            if AttrType::from_suffix(name).is_some() && crate::model::ids::check_name(name).is_ok() {
                                declare.push(name.clone());
                            } else {
                                problems.push(invalid(
                                    "unknown_attribute",
                                    format!("`{name}` is not an attribute of `{}`; declare it, or name it with a type suffix (Str, Txt, Num, At, Bool, Url, Tree)", k.name),
                                    p(),
                                ));
                            }
                            continue;
                        };
                        if v.is_null() {
                            obj.custom.remove(&a.key);
                            continue;
                        }
                        match a.coerce(v, now) {
                            Ok(val) => {
                                obj.custom.insert(a.key.clone(), val);
                            }
                            Err(m) => problems.push(invalid("invalid_attribute_value", m, p())),
                        }
                    }
                }
                Some(_) => problems.push(invalid("invalid_field", "`custom` must be an object", "/custom")),
            }
        }
        if !declare.is_empty() && problems.is_empty() {
            return Err(BuildError::Declare(declare));
        }
        // relationships
        if b.has("relationships") {
            match b.get("relationships") {
                None => obj.relationships.clear(),
                Some(Value::Object(rels)) => {
                    for (name, v) in rels {
                        let p = format!("/relationships/{}", crate::query::ast::escape_pointer(name));
                        let Some(r) = k.relationship(name) else {
                            problems.push(invalid(
                                "unknown_relationship",
                                format!("`{name}` is not a relationship of `{}`", k.name),
                                p,
                            ));
                            continue;
                        };
                        match (v, r.cardinality) {
                            (Value::Null, _) => {
                                obj.relationships.remove(name);
                            }
                            (Value::String(id), Cardinality::One) => {
                                obj.relationships.insert(name.clone(), RelValue::One(id.clone()));
                            }
                            (Value::String(id), Cardinality::Many) => {
                                obj.relationships.insert(name.clone(), RelValue::Many(vec![id.clone()]));
                            }
                            (Value::Array(items), Cardinality::Many) if items.iter().all(Value::is_string) => {
                                let mut ids: Vec<String> = Vec::new();
                                for i in items.iter().filter_map(Value::as_str) {
                                    if !ids.iter().any(|x| x == i) {
                                        ids.push(i.to_string());
                                    }
                                }
                                obj.relationships.insert(name.clone(), RelValue::Many(ids));
                            }
                            (_, Cardinality::One) => {
                                problems.push(invalid("invalid_relationship", format!("`{name}` takes one id"), p))
                            }
                            (_, Cardinality::Many) => problems.push(invalid(
                                "invalid_relationship",
                                format!("`{name}` takes a list of ids"),
                                p,
                            )),
                        }
                    }
                }
                Some(_) => problems.push(invalid(
                    "invalid_field",
                    "`relationships` must be an object",
                    "/relationships",
                )),
            }
        }
        if !problems.is_empty() {
            return Err(BuildError::Invalid(problems));
        }
        // defaults: a create or replacement that omits an attribute with one, or a PATCH that sets
        // it to `null`, gets the default (a PATCH that does not name it leaves it as it is)
        for a in k.attributes.iter().filter(|a| a.standard && a.default.is_some()) {
            if !obj.fields.contains_key(&a.name) && (mode != Mode::Patch || b.has(&a.name)) {
                if let Ok(v) = a.coerce(a.default.as_ref().expect("filtered"), now) {
                    obj.fields.insert(a.name.clone(), v);
                }
            }
        }
        inherit_customer(lookup, k, &mut obj)?;
        for a in k.attributes.iter().filter(|a| a.required) {
            if obj.attr(&a.key, a.standard).is_none_or(|v| !v.is_set()) {
                problems.push(invalid(
                    "missing_attribute",
                    format!("`{}` is required", a.name),
                    attr_pointer(a),
                ));
            }
        }
        self.resolve_links(lookup, k, &mut obj, base, &mut problems)?;
        if !problems.is_empty() {
            return Err(BuildError::Invalid(problems));
        }
        Ok(obj)
    }

    /// Resolves references and relationships to nums (only the changed ones are looked up again,
    /// so a dangling reference does not block unrelated updates) and checks directory ids.
    fn resolve_links(
        &self,
        lookup: &dyn Lookup,
        k: &Klass,
        obj: &mut Object,
        base: Option<&Object>,
        problems: &mut Vec<Problem>,
    ) -> std::result::Result<(), BuildError> {
        let mut links = BTreeMap::new();
        for a in &k.attributes {
            let Some(v) = obj.attr(&a.key, a.standard) else {
                continue;
            };
            if a.ty == AttrType::Reference {
                let unchanged = base.and_then(|b| b.attr(&a.key, a.standard)) == Some(v);
                if unchanged {
                    if let Some(nums) = base.and_then(|b| b.links.get(&a.key)) {
                        links.insert(a.key.clone(), nums.clone());
                        continue;
                    }
                }
                let target = a.target.as_deref().unwrap_or_default();
                let mut nums = Vec::new();
                for e in v.elements().iter().filter_map(V::as_str).filter(|s| !s.is_empty()) {
                    match lookup.num(e, target)? {
                        Some(n) => nums.push(n),
                        None => problems.push(invalid(
                            "invalid_reference",
                            format!("`{}` must name an existing {target} (`{e}` does not exist)", a.name),
                            attr_pointer(a),
                        )),
                    }
                }
                if !nums.is_empty() {
                    links.insert(a.key.clone(), nums);
                }
            }
            if let Some(dir) = a.directory {
                check_directory(lookup, a, v, dir, problems)?;
            }
        }
        for r in &k.relationships {
            let Some(v) = obj.relationships.get(&r.name) else {
                continue;
            };
            let unchanged = base.and_then(|b| b.relationships.get(&r.name)) == Some(v);
            if unchanged {
                if let Some(nums) = base.and_then(|b| b.links.get(&r.key)) {
                    links.insert(r.key.clone(), nums.clone());
                    continue;
                }
            }
            let mut nums = Vec::new();
            for id in v.ids() {
                match lookup.num(id, &r.klass)? {
                    Some(n) => nums.push(n),
                    None => problems.push(invalid(
                        "invalid_reference",
                        format!(
                            "relationship `{}` must name an existing {} (`{id}` does not exist)",
                            r.name, r.klass
                        ),
                        format!("/relationships/{}", r.name),
                    )),
                }
            }
            if !nums.is_empty() {
                links.insert(r.key.clone(), nums);
            }
        }
        obj.links = links;
        Ok(())
    }

    /// The num of an object of `klass` by id.
    pub(crate) fn lookup_num(&self, org: u64, id: &str, klass: &str) -> crate::storage::Result<Option<u64>> {
        Ok(self
            .store()
            .num_and_klass_by_id(org, id)?
            .filter(|(_, k)| k == klass)
            .map(|(n, _)| n))
    }
}

/// A message or note without a customer takes its conversation's.
fn inherit_customer(lookup: &dyn Lookup, k: &Klass, obj: &mut Object) -> std::result::Result<(), BuildError> {
    if !matches!(k.name.as_str(), "message" | "note") || obj.fields.contains_key("customer") {
        return Ok(());
    }
    let Some(conv_id) = obj.reference("conversation").map(str::to_string) else {
        return Ok(());
    };
    if let Some(c) = lookup.customer_of_conversation(&conv_id)? {
        obj.fields.insert("customer".into(), V::Str(c));
    }
    Ok(())
}

/// How a build finds the objects its references name.
pub(crate) trait Lookup {
    /// The num of an object of `klass` by id.
    fn num(&self, id: &str, klass: &str) -> crate::storage::Result<Option<u64>>;
    /// The customer id of a conversation.
    fn customer_of_conversation(&self, id: &str) -> crate::storage::Result<Option<String>>;
    /// Whether a team (or else a user) exists.
    fn directory_has(&self, team: bool, id: &str) -> crate::storage::Result<bool>;
}

/// The (num, klass) of every id an import has written, so that the references of later lines
/// (a message's conversation and customer) resolve without a store read. Only an import may keep
/// one: it is the store's only writer, so an entry cannot go stale, and it forgets deleted ids.
/// Bounded: past [`KnownIds::CAPACITY`] ids it starts over, and misses read the store.
#[derive(Debug, Default)]
pub(crate) struct KnownIds {
    ids: HashMap<String, (u64, u16)>,
    klasses: Vec<String>,
    /// Hashes of the other unique keys written (externalIds, emails); never forgotten, so a
    /// key not among them is certainly not in the store (when `complete`).
    other_keys: HashSet<u64>,
    hasher: std::collections::hash_map::RandomState,
    /// Teams (true) and users found or not, so that a batch's directory checks need not read
    /// the store (which would wait for the write of the batch before); forgotten whenever the
    /// import applies a definition.
    directory: std::cell::RefCell<HashMap<(bool, String), bool>>,
    /// The ids are every id of the store (the import began with no objects and has kept all).
    complete: bool,
}

impl KnownIds {
    /// Most ids kept (about 100 bytes each).
    pub const CAPACITY: usize = 4_000_000;

    /// The num and klass of a written id.
    pub fn get(&self, id: &str) -> Option<(u64, &str)> {
        let &(num, k) = self.ids.get(id)?;
        Some((num, self.klasses.get(usize::from(k))?.as_str()))
    }

    /// Declares the ids kept the store's only ones (an import into an org without objects).
    pub fn set_complete(&mut self) {
        self.complete = self.ids.is_empty();
    }

    /// Whether `id` is certainly not in the store.
    pub fn absent(&self, id: &str) -> bool {
        self.complete && !self.ids.contains_key(id)
    }

    /// Whether a unique key is certainly not in the store.
    pub fn absent_key(&self, key: &UniqueKey) -> bool {
        match key {
            UniqueKey::Id(id) => self.absent(id),
            _ => self.complete && !self.other_keys.contains(&self.hasher.hash_one(key)),
        }
    }

    /// Records a written object.
    pub fn insert(&mut self, obj: &Object) {
        if self.ids.len() >= Self::CAPACITY {
            self.ids.clear();
            self.other_keys.clear();
            self.complete = false;
        }
        if self.complete {
            for key in obj.unique_keys() {
                if !matches!(key, UniqueKey::Id(_)) {
                    self.other_keys.insert(self.hasher.hash_one(&key));
                }
            }
        }
        let k = match self.klasses.iter().position(|k| *k == obj.klass) {
            Some(k) => k,
            None => {
                self.klasses.push(obj.klass.clone());
                self.klasses.len() - 1
            }
        };
        match u16::try_from(k) {
            Ok(k) => {
                self.ids.insert(obj.id.clone(), (obj.num, k));
            }
            // More klasses than any org has: not kept, read from the store.
            Err(_) => {
                self.ids.remove(&obj.id);
                self.complete = false;
            }
        }
    }

    /// Forgets a deleted id.
    pub fn remove(&mut self, id: &str) {
        self.ids.remove(id);
    }

    /// Forgets which teams and users exist (a definition may have changed them).
    pub fn forget_directory(&mut self) {
        self.directory.get_mut().clear();
    }
}

/// Lookups in the store.
pub(crate) struct StoreLookup<'a> {
    pub app: &'a App,
    pub org: u64,
}

impl Lookup for StoreLookup<'_> {
    fn num(&self, id: &str, klass: &str) -> crate::storage::Result<Option<u64>> {
        self.app.lookup_num(self.org, id, klass)
    }

    fn customer_of_conversation(&self, id: &str) -> crate::storage::Result<Option<String>> {
        let Some(num) = self.app.lookup_num(self.org, id, "conversation")? else {
            return Ok(None);
        };
        Ok(self
            .app
            .store()
            .object(self.org, num)?
            .and_then(|c| c.reference("customer").map(str::to_string)))
    }

    fn directory_has(&self, team: bool, id: &str) -> crate::storage::Result<bool> {
        use crate::model::{Team, User};
        use crate::storage::Collection;
        let store = self.app.store();
        Ok(if team {
            store.get_doc::<Team>(self.org, Collection::Team, id)?.is_some()
        } else {
            store.get_doc::<User>(self.org, Collection::User, id)?.is_some()
        })
    }
}

/// A batch's lookups: ids created or changed earlier in the batch first, then the ids an import
/// has written (when it keeps them), then the store.
pub(crate) struct BatchLookup<'a> {
    pub store: StoreLookup<'a>,
    pub pending: HashMap<String, Object>,
    /// Ids deleted earlier in the batch (and not created again since): gone, whatever the
    /// store still holds until the batch is written.
    pub deleted: HashSet<String>,
    pub known: Option<&'a KnownIds>,
}

impl Lookup for BatchLookup<'_> {
    fn num(&self, id: &str, klass: &str) -> crate::storage::Result<Option<u64>> {
        if let Some(o) = self.pending.get(id) {
            return Ok((o.klass == klass).then_some(o.num));
        }
        if self.deleted.contains(id) {
            return Ok(None);
        }
        if let Some(known) = self.known {
            if let Some((num, k)) = known.get(id) {
                return Ok((k == klass).then_some(num));
            }
            if known.absent(id) {
                return Ok(None);
            }
        }
        self.store.num(id, klass)
    }

    fn customer_of_conversation(&self, id: &str) -> crate::storage::Result<Option<String>> {
        match self.pending.get(id) {
            Some(o) if o.klass == "conversation" => Ok(o.reference("customer").map(str::to_string)),
            Some(_) => Ok(None),
            None if self.deleted.contains(id) => Ok(None),
            None => self.store.customer_of_conversation(id),
        }
    }

    fn directory_has(&self, team: bool, id: &str) -> crate::storage::Result<bool> {
        let Some(known) = self.known else {
            return self.store.directory_has(team, id);
        };
        if let Some(&has) = known.directory.borrow().get(&(team, id.to_string())) {
            return Ok(has);
        }
        let has = self.store.directory_has(team, id)?;
        known.directory.borrow_mut().insert((team, id.to_string()), has);
        Ok(has)
    }
}

/// The JSON pointer of an attribute in an object body (built only for a problem to report).
fn attr_pointer(a: &Attribute) -> String {
    if a.standard {
        format!("/{}", a.name)
    } else {
        format!("/custom/{}", a.name)
    }
}

fn check_directory(
    lookup: &dyn Lookup,
    a: &Attribute,
    v: &V,
    dir: DirectoryKind,
    problems: &mut Vec<Problem>,
) -> std::result::Result<(), BuildError> {
    for e in v.elements().iter().filter_map(V::as_str).filter(|s| !s.is_empty()) {
        let team = dir == DirectoryKind::Team;
        if !lookup.directory_has(team, e)? {
            let what = if team { "team" } else { "user" };
            problems.push(invalid(
                "invalid_reference",
                format!("`{}` must name an existing {what} (`{e}` does not exist)", a.name),
                attr_pointer(a),
            ));
        }
    }
    Ok(())
}

fn check_if_match(current: &Object, if_match: Option<u64>) -> Result<()> {
    match if_match {
        Some(rev) if rev != current.rev => Err(Problem::new(
            crate::error::ErrorKind::PreconditionFailed,
            "precondition_failed",
            format!("`If-Match` is \"{rev}\" but the object is at revision {}", current.rev),
        )
        .header("If-Match")
        .into()),
        _ => Ok(()),
    }
}

/// Parses an `If-Match` header value (`"3"`, `3`, `W/"3"`).
pub fn parse_if_match(v: &str) -> Option<u64> {
    v.trim().trim_start_matches("W/").trim_matches('"').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(id: &str, klass: &str, num: u64) -> Object {
        Object {
            num,
            id: id.into(),
            klass: klass.into(),
            ..Object::empty()
        }
    }

    #[test]
    fn known_ids_answer_with_num_and_klass_and_forget_deleted_ones() {
        let mut known = KnownIds::default();
        known.insert(&object("conversation-1", "conversation", 7));
        known.insert(&object("customer-1", "customer", 3));
        known.insert(&object("conversation-2", "conversation", 9));
        assert_eq!(known.get("conversation-1"), Some((7, "conversation")));
        assert_eq!(known.get("customer-1"), Some((3, "customer")));
        assert_eq!(known.get("conversation-2"), Some((9, "conversation")));
        assert_eq!(known.get("order-1"), None);
        known.remove("conversation-1");
        assert_eq!(
            known.get("conversation-1"),
            None,
            "a deleted id is read from the store again"
        );
        assert_eq!(known.klasses.len(), 2, "klass names are kept once");
        assert!(!known.absent("customer-9"), "not complete: a miss reads the store");
    }

    #[test]
    fn complete_known_ids_tell_absent_ones_until_they_overflow() {
        let mut known = KnownIds::default();
        known.set_complete();
        known.insert(&object("customer-1", "customer", 3));
        assert!(known.absent("customer-2"));
        assert!(!known.absent("customer-1"));
        known.remove("customer-1");
        assert!(known.absent("customer-1"), "deleted by the import");
        for i in 0..KnownIds::CAPACITY {
            known.ids.insert(format!("x{i}"), (i as u64, 0));
        }
        known.insert(&object("customer-4", "customer", 4));
        assert!(!known.complete, "forgotten ids may be in the store");
        assert!(!known.absent("customer-2"));
        let mut late = KnownIds::default();
        late.insert(&object("customer-1", "customer", 3));
        late.set_complete();
        assert!(!late.complete, "only an empty map can be declared complete");
    }

    #[test]
    fn complete_known_ids_tell_absent_external_ids_and_emails() {
        let mut known = KnownIds::default();
        known.set_complete();
        let mut customer = object("customer-1", "customer", 3);
        customer.fields.insert(
            "emails".into(),
            V::List(vec![V::Str("Ann@x.io".into()), V::Str("ann2@x.io".into())]),
        );
        let mut order = object("order-1", "order", 4);
        order.external_id = Some("ORD-1".into());
        known.insert(&customer);
        known.insert(&order);
        let email = |e: &str| UniqueKey::Email(e.into());
        let ext = |k: &str, e: &str| UniqueKey::External {
            klass: k.into(),
            external_id: e.into(),
        };
        assert!(!known.absent_key(&email("ann@x.io")), "emails are kept lowercased");
        assert!(!known.absent_key(&email("ann2@x.io")));
        assert!(known.absent_key(&email("bob@x.io")));
        assert!(!known.absent_key(&ext("order", "ORD-1")));
        assert!(known.absent_key(&ext("order", "ORD-2")));
        assert!(known.absent_key(&ext("shipment", "ORD-1")), "externalIds are per klass");
        assert!(!known.absent_key(&UniqueKey::Id("order-1".into())));
        assert!(known.absent_key(&UniqueKey::Id("order-2".into())));
        // A deleted object's other keys stay: the store is read for them, which is safe.
        known.remove("order-1");
        assert!(!known.absent_key(&ext("order", "ORD-1")));
        let open = KnownIds::default();
        assert!(!open.absent_key(&email("bob@x.io")), "not complete: read the store");
    }
}
