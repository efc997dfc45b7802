//! Saved searches and segments: create, list what the caller may see, read, change, delete; run
//! as they stand now (results, count, export); and the saved searches one object matches now.
//!
//! Visibility: the owner, everyone (`org`), or the listed users and teams (`shared`). A saved
//! search the caller may not see is a 404 everywhere; one it sees but does not own is a 403 to
//! change or delete, unless the caller is an admin. Membership is read from the user's current
//! teams, so leaving a team loses its saved searches at once.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use super::auth::{Action, Caller};
use super::directory::list_json;
use super::error::{Result, ServiceError};
use super::indexing::blocking_here;
use super::input::Body;
use super::search::{ExportFormat, Prepared};
use super::App;
use crate::error::{ErrorKind, Problem};
use crate::model::ids::new_id;
use crate::model::saved::{SavedSearch, Visibility};
use crate::model::{Object, Relation, Side, Team, User};
use crate::query::ast::{BodyKind, SearchRequest};
use crate::query::compile::Snapshot;
use crate::query::eval::{matches, EvalContext, Related};
use crate::query::validate::Validator;
use crate::storage::{Collection, Expect, Op};

impl App {
    fn saved(&self, caller: &Caller, id: &str) -> Result<SavedSearch> {
        let ss: Option<SavedSearch> = self.store().get_doc(caller.org.num, Collection::SavedSearch, id)?;
        match ss {
            Some(s) if s.visible_to(&caller.user) || caller.may(Action::AdministerSavedSearches) => Ok(s),
            _ => Err(Problem::not_found("saved search", id).into()),
        }
    }

    fn check_query(&self, caller: &Caller, query: &Value) -> Result<()> {
        let req = SearchRequest::parse_as(query, BodyKind::Search).map_err(|p| p.nested_under("/query"))?;
        match self.prepare_request(caller, req) {
            Ok(_) => Ok(()),
            Err(ServiceError::Rejected(ps)) => Err(ServiceError::Rejected(
                ps.into_iter().map(|p| p.nested_under("/query")).collect(),
            )),
            Err(e) => Err(e),
        }
    }

    fn check_audience(&self, org: u64, b: &Body<'_>, users: &[String], teams: &[String]) -> Result<()> {
        for (i, u) in users.iter().enumerate() {
            if self.store().get_doc::<User>(org, Collection::User, u)?.is_none() {
                return Err(Problem::invalid("unknown_user", format!("user `{u}` does not exist"))
                    .at(format!("{}/{i}", b.pointer("users")))
                    .into());
            }
        }
        for (i, t) in teams.iter().enumerate() {
            if self.store().get_doc::<Team>(org, Collection::Team, t)?.is_none() {
                return Err(Problem::invalid("unknown_team", format!("team `{t}` does not exist"))
                    .at(format!("{}/{i}", b.pointer("teams")))
                    .into());
            }
        }
        Ok(())
    }

    fn parse_visibility(b: &Body<'_>) -> Result<Option<Visibility>> {
        match b.opt_str("visibility")? {
            None => Ok(None),
            Some(v) => Visibility::parse(v).map(Some).ok_or_else(|| {
                Problem::invalid("invalid_field", "`visibility` must be private, org or shared")
                    .at("/visibility")
                    .into()
            }),
        }
    }

    /// `POST /v1/saved-searches`: any role may save its own.
    pub fn create_saved_search(&self, caller: &Caller, body: &Value) -> Result<Value> {
        caller.require(Action::Read)?;
        let b = Body::new(body)?;
        b.only(&["id", "name", "query", "visibility", "users", "teams", "pinned"])?;
        let id = b.opt_id("id")?.map(str::to_string).unwrap_or_else(new_id);
        let name = b.req_str("name")?.to_string();
        let query = b
            .get("query")
            .cloned()
            .ok_or_else(|| Problem::invalid("missing_field", "`query` is required").at("/query"))?;
        self.check_query(caller, &query)?;
        let visibility = Self::parse_visibility(&b)?.unwrap_or(Visibility::Private);
        let users = b.opt_str_list("users")?.unwrap_or_default();
        let teams = b.opt_str_list("teams")?.unwrap_or_default();
        self.check_audience(caller.org.num, &b, &users, &teams)?;
        let now = self.now();
        let ss = SavedSearch {
            id,
            name,
            owner: caller.user.id.clone(),
            query,
            visibility,
            users,
            teams,
            pinned: b.opt_bool("pinned")?.unwrap_or(false),
            created_at: now,
            updated_at: now,
        };
        self.store().apply(
            caller.org.num,
            vec![Op::put(Collection::SavedSearch, ss.id.clone(), &ss, Expect::Absent)],
        )?;
        Ok(ss.to_json())
    }

    /// `GET /v1/saved-searches[?all=true]`: pinned first, then by name.
    pub fn list_saved_searches(&self, caller: &Caller, all: bool) -> Result<Value> {
        caller.require(Action::Read)?;
        if all {
            caller.require(Action::AdministerSavedSearches)?;
        }
        let mut list: Vec<SavedSearch> = self.store().list_docs(caller.org.num, Collection::SavedSearch)?;
        list.retain(|s| all || s.visible_to(&caller.user));
        list.sort_by(|a, b| (!a.pinned, &a.name, &a.id).cmp(&(!b.pinned, &b.name, &b.id)));
        Ok(list_json(list.iter().map(SavedSearch::to_json).collect()))
    }

    /// `GET /v1/saved-searches/{id}`.
    pub fn get_saved_search(&self, caller: &Caller, id: &str) -> Result<Value> {
        Ok(self.saved(caller, id)?.to_json())
    }

    fn require_owner(caller: &Caller, ss: &SavedSearch) -> Result<()> {
        if ss.owner == caller.user.id || caller.may(Action::AdministerSavedSearches) {
            Ok(())
        } else {
            Err(Problem::forbidden("only the owner (or an admin) may change or delete this saved search").into())
        }
    }

    /// `PATCH /v1/saved-searches/{id}`.
    pub fn update_saved_search(&self, caller: &Caller, id: &str, body: &Value) -> Result<Value> {
        let mut ss = self.saved(caller, id)?;
        Self::require_owner(caller, &ss)?;
        let b = Body::new(body)?;
        b.only(&["id", "name", "query", "visibility", "users", "teams", "pinned", "owner"])?;
        if b.opt_str("id")?.is_some_and(|x| x != id) {
            return Err(Problem::invalid("immutable_field", "`id` cannot change")
                .at("/id")
                .into());
        }
        if b.opt_str("owner")?.is_some_and(|x| x != ss.owner) {
            return Err(Problem::invalid("immutable_field", "`owner` cannot change")
                .at("/owner")
                .into());
        }
        if b.get("name").is_some() {
            ss.name = b.req_str("name")?.to_string();
        }
        if let Some(q) = b.get("query") {
            self.check_query(caller, q)?;
            ss.query = q.clone();
        }
        if let Some(v) = Self::parse_visibility(&b)? {
            ss.visibility = v;
        }
        if let Some(u) = b.opt_str_list("users")? {
            ss.users = u;
        }
        if let Some(t) = b.opt_str_list("teams")? {
            ss.teams = t;
        }
        self.check_audience(caller.org.num, &b, &ss.users, &ss.teams)?;
        if let Some(p) = b.opt_bool("pinned")? {
            ss.pinned = p;
        }
        ss.updated_at = self.now();
        self.store().apply(
            caller.org.num,
            vec![Op::put(Collection::SavedSearch, ss.id.clone(), &ss, Expect::Present)],
        )?;
        Ok(ss.to_json())
    }

    /// `DELETE /v1/saved-searches/{id}`.
    pub fn delete_saved_search(&self, caller: &Caller, id: &str) -> Result<()> {
        let ss = self.saved(caller, id)?;
        Self::require_owner(caller, &ss)?;
        self.store()
            .apply(caller.org.num, vec![Op::delete(Collection::SavedSearch, id)])?;
        Ok(())
    }

    /// Prepares a saved search's query as it stands now, with the caller's rights. A query the
    /// current schema no longer accepts (an attribute removed or changed) is a 409 naming it.
    pub fn prepare_saved(
        &self,
        caller: &Caller,
        id: &str,
        page_size: Option<u64>,
        cursor: Option<String>,
    ) -> Result<(SavedSearch, Prepared)> {
        let ss = self.saved(caller, id)?;
        let outdated = |p: Problem| {
            Problem::new(
                ErrorKind::Conflict,
                "saved_search_outdated",
                format!("saved search `{}` no longer fits the schema: {}", ss.name, p.title),
            )
            .nested_under("/query")
        };
        let mut req = SearchRequest::parse_as(&ss.query, BodyKind::Search).map_err(outdated)?;
        if page_size.is_some() {
            req.page_size = page_size;
        }
        req.cursor = cursor;
        let prepared = match self.prepare_request(caller, req) {
            Ok(p) => p,
            Err(ServiceError::Rejected(ps)) => {
                // Paging parameters are the caller's; everything else is the saved query's.
                let (params, schema): (Vec<Problem>, Vec<Problem>) = ps.into_iter().partition(|p| {
                    matches!(&p.source, Some(crate::error::ProblemSource::Pointer(ptr)) if ptr == "/pageSize" || ptr == "/cursor")
                });
                if let Some(p) = params.into_iter().next() {
                    let param = if p.code == "invalid_cursor" {
                        "cursor"
                    } else {
                        "pageSize"
                    };
                    return Err(Problem { source: None, ..p }.param(param).into());
                }
                return Err(ServiceError::Rejected(schema.into_iter().map(outdated).collect()));
            }
            Err(e) => return Err(e),
        };
        Ok((ss, prepared))
    }

    /// `GET /v1/saved-searches/{id}/results`.
    pub async fn saved_results(
        &self,
        caller: &Caller,
        id: &str,
        page_size: Option<u64>,
        cursor: Option<String>,
    ) -> Result<super::search::JsonBytes> {
        if let Some(n) = page_size {
            super::search::page_size(Some(n), true)?;
        }
        let (_, p) = self.prepare_saved(caller, id, page_size, cursor)?;
        self.run_search(p).await
    }

    /// `GET /v1/saved-searches/{id}/count`.
    pub async fn saved_count(&self, caller: &Caller, id: &str) -> Result<Value> {
        let (_, p) = self.prepare_saved(caller, id, None, None)?;
        Ok(serde_json::json!({"total": self.run_count(p).await?}))
    }

    /// `GET /v1/saved-searches/{id}/export?format=`.
    pub fn saved_export(
        &self,
        caller: &Caller,
        id: &str,
        format: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<std::result::Result<bytes::Bytes, std::io::Error>>> {
        let format = ExportFormat::parse(format)?;
        let (_, p) = self.prepare_saved(caller, id, None, None)?;
        Ok(self.run_export(p, format))
    }

    /// `GET /v1/objects/{klass}/{id}/saved-searches`: the visible saved searches over `klass`
    /// this object matches now, evaluated against the object itself (related objects are fetched
    /// once), without running any saved search over the index.
    pub async fn object_segments(&self, caller: &Caller, klass: &str, id: &str) -> Result<Value> {
        caller.require(Action::Read)?;
        let rt = self.runtime(&caller.org)?;
        let obj = self.load_object(caller.org.num, klass, id)?;
        let mut list: Vec<SavedSearch> = self.store().list_docs(caller.org.num, Collection::SavedSearch)?;
        list.retain(|s| s.visible_to(&caller.user) && s.context() == Some(klass));
        list.sort_by(|a, b| (!a.pinned, &a.name, &a.id).cmp(&(!b.pinned, &b.name, &b.id)));
        let app = self.clone();
        let snap = self.snapshot(&rt);
        let schema = rt.schema();
        let org = caller.org.num;
        let now = self.now();
        blocking_here(move || {
            let related = IndexRelated {
                app: &app,
                snap: &snap,
                org,
                cache: RefCell::new(HashMap::new()),
            };
            let mut out = Vec::new();
            for ss in list {
                let Ok(req) = SearchRequest::parse_as(&ss.query, BodyKind::Search) else {
                    continue;
                };
                let at = match req.now.as_deref() {
                    Some(n) => crate::model::time::parse_time(n, now).unwrap_or(now),
                    None => now,
                };
                let v = Validator::new(&schema, at);
                let Ok(k) = v.context(&req) else { continue };
                // A saved search the schema no longer accepts matches nothing.
                let Ok(filter) = v.request_filter(k, &req) else {
                    continue;
                };
                let ctx = EvalContext {
                    schema: &schema,
                    related: &related,
                    changed: &[],
                };
                if matches(&filter, &obj, &ctx) {
                    out.push(ss.to_json());
                }
            }
            Ok(serde_json::json!({"data": out}))
        })
        .await
    }
}

/// (related klass, link key, child side, object num).
pub type RelatedKey = (String, String, bool, u64);

/// Related objects of one object, found through the index (children) or its links (parents),
/// read from the store, and cached for the request.
pub struct IndexRelated<'a> {
    /// The service.
    pub app: &'a App,
    /// The index snapshot.
    pub snap: &'a Snapshot,
    /// Org num.
    pub org: u64,
    /// (related klass, key, side, num) -> objects.
    pub cache: RefCell<HashMap<RelatedKey, Vec<Object>>>,
}

impl Related for IndexRelated<'_> {
    fn related(&self, obj: &Object, rel: &Relation) -> Vec<Object> {
        let key = (rel.related.clone(), rel.key.clone(), rel.side == Side::Child, obj.num);
        if let Some(v) = self.cache.borrow().get(&key) {
            return v.clone();
        }
        let nums: Vec<u64> = match rel.side {
            Side::Child => self.snap.linked_to(&rel.related, &rel.key, obj.num).unwrap_or_default(),
            Side::Parent => obj.link(&rel.key).to_vec(),
        };
        let objs: Vec<Object> = nums
            .into_iter()
            .filter_map(|n| self.app.store().object(self.org, n).ok().flatten())
            .filter(|o| o.klass == rel.related)
            .collect();
        self.cache.borrow_mut().insert(key, objs.clone());
        objs
    }
}
