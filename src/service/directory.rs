//! Orgs, users, teams and API keys.
//!
//! Team membership is stored once, as each user's `teams` list; a team's `members` is derived from
//! it, so the two can never disagree and a user removed from a team loses its saved searches at once.

use serde_json::Value;

use super::auth::{self, Action, Caller};
use super::error::Result;
use super::input::Body;
use super::{org_seed_ops, App};
use crate::error::Problem;
use crate::model::ids::new_id;
use crate::model::time::{format_time, Millis};
use crate::model::{ApiKey, Org, Role, Team, User};
use crate::storage::{Collection, Expect, Op};

/// A new key id.
pub(crate) fn new_key_id() -> String {
    format!("key_{}", auth::random_token(12))
}

/// The ops that store a key of `user` whose secret is `secret`: the key (found by the hash of its
/// secret) and its index under the user (for listing and revocation).
pub(crate) fn key_ops(org: u64, user: &str, key_id: &str, secret: &str, now: Millis) -> [Op; 2] {
    let hash = auth::hash_key(secret);
    [
        Op::put(Collection::UserKey, format!("{user}\u{0}{key_id}"), &hash, Expect::Any),
        Op::PutApiKey(ApiKey {
            id: key_id.to_string(),
            org,
            user: user.to_string(),
            hash,
            created_at: now,
        }),
    ]
}

fn check_email(body: &Body<'_>, key: &str) -> Result<String> {
    let email = body.req_str(key)?;
    let mut parts = email.split('@');
    let ok = matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty());
    if !ok {
        return Err(Problem::invalid(
            "invalid_field",
            format!("`{key}` must be an email address with one `@`"),
        )
        .at(body.pointer(key))
        .into());
    }
    Ok(email.to_string())
}

fn parse_role(body: &Body<'_>) -> Result<Option<Role>> {
    match body.opt_str("role")? {
        None => Ok(None),
        Some(r) => Role::parse(r).map(Some).ok_or_else(|| {
            Problem::invalid("invalid_field", "`role` must be admin, agent or analyst")
                .at(body.pointer("role"))
                .into()
        }),
    }
}

impl App {
    /// `POST /v1/orgs`: a new org with the standard klasses, an admin user and its first key.
    pub fn create_org(&self, caller: &Caller, body: &Value) -> Result<Value> {
        caller.require(Action::CreateOrgs)?;
        let b = Body::new(body)?;
        b.only(&["name"])?;
        let name = b.req_str("name")?.trim().to_string();
        let now = self.now();
        let admin = User {
            id: "admin".into(),
            name: "Admin".into(),
            email: "admin@localhost".into(),
            role: Role::Admin,
            teams: vec![],
            created_at: now,
            updated_at: now,
        };
        let secret = auth::new_key_secret();
        let key_id = new_key_id();
        let org = Org {
            num: 0,
            id: new_id(),
            name,
            created_at: now,
        };
        let org = self.store().create_org(org, |num| {
            org_seed_ops(&self.options().standard, &admin, &key_id, &secret, num, now)
        })?;
        tracing::info!(org = %org.id, name = %org.name, "org created");
        Ok(serde_json::json!({"id": org.id, "name": org.name, "adminKey": secret, "createdAt": format_time(now)}))
    }

    /// `GET /v1/me`.
    pub fn me(&self, caller: &Caller) -> Value {
        let mut u = caller.user.to_json();
        u["org"] = caller.org.to_json();
        u
    }

    fn users(&self, org: u64) -> Result<Vec<User>> {
        Ok(self.store().list_docs(org, Collection::User)?)
    }

    fn user(&self, org: u64, id: &str) -> Result<User> {
        self.store()
            .get_doc(org, Collection::User, id)?
            .ok_or_else(|| Problem::not_found("user", id).into())
    }

    fn team(&self, org: u64, id: &str) -> Result<Team> {
        self.store()
            .get_doc(org, Collection::Team, id)?
            .ok_or_else(|| Problem::not_found("team", id).into())
    }

    fn check_teams(&self, org: u64, body: &Body<'_>, teams: &[String]) -> Result<()> {
        for (i, t) in teams.iter().enumerate() {
            if self.store().get_doc::<Team>(org, Collection::Team, t)?.is_none() {
                return Err(Problem::invalid("unknown_team", format!("team `{t}` does not exist"))
                    .at(format!("{}/{i}", body.pointer("teams")))
                    .into());
            }
        }
        Ok(())
    }

    /// `POST /v1/users`.
    pub fn create_user(&self, caller: &Caller, body: &Value) -> Result<Value> {
        caller.require(Action::ManageDirectory)?;
        let b = Body::new(body)?;
        b.only(&["id", "name", "email", "role", "teams"])?;
        let id = b.opt_id("id")?.map(str::to_string).unwrap_or_else(new_id);
        let name = b.req_str("name")?.to_string();
        let email = check_email(&b, "email")?;
        let role =
            parse_role(&b)?.ok_or_else(|| Problem::invalid("missing_field", "`role` is required").at("/role"))?;
        let mut teams = b.opt_str_list("teams")?.unwrap_or_default();
        dedup(&mut teams);
        let rt = self.runtime(&caller.org)?;
        let _g = rt.admin_write.lock().expect("admin lock");
        self.check_teams(caller.org.num, &b, &teams)?;
        let now = self.now();
        let user = User {
            id,
            name,
            email,
            role,
            teams,
            created_at: now,
            updated_at: now,
        };
        self.store().apply(
            caller.org.num,
            vec![Op::put(Collection::User, user.id.clone(), &user, Expect::Absent)],
        )?;
        Ok(user.to_json())
    }

    /// `GET /v1/users`.
    pub fn list_users(&self, caller: &Caller) -> Result<Value> {
        caller.require(Action::Read)?;
        let users: Vec<Value> = self.users(caller.org.num)?.iter().map(User::to_json).collect();
        Ok(list_json(users))
    }

    /// `GET /v1/users/{id}`.
    pub fn get_user(&self, caller: &Caller, id: &str) -> Result<Value> {
        caller.require(Action::Read)?;
        Ok(self.user(caller.org.num, id)?.to_json())
    }

    /// `PATCH /v1/users/{id}`.
    pub fn update_user(&self, caller: &Caller, id: &str, body: &Value) -> Result<Value> {
        caller.require(Action::ManageDirectory)?;
        let b = Body::new(body)?;
        b.only(&["id", "name", "email", "role", "teams"])?;
        let rt = self.runtime(&caller.org)?;
        let _g = rt.admin_write.lock().expect("admin lock");
        let mut user = self.user(caller.org.num, id)?;
        if let Some(new_id) = b.opt_str("id")? {
            if new_id != id {
                return Err(Problem::invalid("immutable_field", "`id` cannot change")
                    .at("/id")
                    .into());
            }
        }
        if b.get("name").is_some() {
            user.name = b.req_str("name")?.to_string();
        }
        if b.get("email").is_some() {
            user.email = check_email(&b, "email")?;
        }
        if let Some(role) = parse_role(&b)? {
            if user.role == Role::Admin && role != Role::Admin && self.admin_count(caller.org.num)? <= 1 {
                return Err(Problem::conflict("last_admin", "the org's last admin cannot lose the admin role").into());
            }
            user.role = role;
        }
        if let Some(mut teams) = b.opt_str_list("teams")? {
            dedup(&mut teams);
            self.check_teams(caller.org.num, &b, &teams)?;
            user.teams = teams;
        }
        user.updated_at = self.now();
        self.store().apply(
            caller.org.num,
            vec![Op::put(Collection::User, user.id.clone(), &user, Expect::Present)],
        )?;
        Ok(user.to_json())
    }

    fn admin_count(&self, org: u64) -> Result<usize> {
        Ok(self.users(org)?.iter().filter(|u| u.role == Role::Admin).count())
    }

    /// `DELETE /v1/users/{id}`: the user and every key of theirs.
    pub fn delete_user(&self, caller: &Caller, id: &str) -> Result<()> {
        caller.require(Action::ManageDirectory)?;
        let rt = self.runtime(&caller.org)?;
        let _g = rt.admin_write.lock().expect("admin lock");
        let user = self.user(caller.org.num, id)?;
        if user.role == Role::Admin && self.admin_count(caller.org.num)? <= 1 {
            return Err(Problem::conflict("last_admin", "the org's last admin cannot be deleted").into());
        }
        let mut ops = vec![Op::delete(Collection::User, id)];
        ops.extend(self.key_revocations(caller.org.num, id, None)?);
        self.store().apply(caller.org.num, ops)?;
        Ok(())
    }

    fn key_revocations(&self, org: u64, user: &str, only: Option<&str>) -> Result<Vec<Op>> {
        let prefix = format!("{user}\u{0}");
        let ids = self.store().doc_ids_with_prefix(org, Collection::UserKey, &prefix)?;
        let mut ops = Vec::new();
        for doc_id in ids {
            let key_id = &doc_id[prefix.len()..];
            if only.is_some_and(|o| o != key_id) {
                continue;
            }
            if let Some(hash) = self.store().get_doc::<Vec<u8>>(org, Collection::UserKey, &doc_id)? {
                ops.push(Op::DeleteApiKey(hash));
            }
            ops.push(Op::delete(Collection::UserKey, doc_id.clone()));
        }
        Ok(ops)
    }

    /// `POST /v1/users/{id}/keys`: a new key, shown once.
    pub fn create_key(&self, caller: &Caller, user_id: &str) -> Result<Value> {
        caller.require(Action::ManageDirectory)?;
        let user = self.user(caller.org.num, user_id)?;
        let secret = auth::new_key_secret();
        let now = self.now();
        let id = new_key_id();
        self.store().apply(
            caller.org.num,
            key_ops(caller.org.num, &user.id, &id, &secret, now).to_vec(),
        )?;
        Ok(serde_json::json!({"id": id, "key": secret, "user": user.id, "createdAt": format_time(now)}))
    }

    /// `GET /v1/users/{id}/keys`: ids and creation times (never the secrets).
    pub fn list_keys(&self, caller: &Caller, user_id: &str) -> Result<Value> {
        caller.require(Action::ManageDirectory)?;
        let user = self.user(caller.org.num, user_id)?;
        let prefix = format!("{}\u{0}", user.id);
        let mut out = Vec::new();
        for doc_id in self
            .store()
            .doc_ids_with_prefix(caller.org.num, Collection::UserKey, &prefix)?
        {
            if let Some(hash) = self
                .store()
                .get_doc::<Vec<u8>>(caller.org.num, Collection::UserKey, &doc_id)?
            {
                if let Some(k) = self.store().api_key(&hash)? {
                    out.push(serde_json::json!({"id": k.id, "user": k.user, "createdAt": format_time(k.created_at)}));
                }
            }
        }
        Ok(list_json(out))
    }

    /// `DELETE /v1/users/{id}/keys/{keyId}`: refused at once afterwards.
    pub fn revoke_key(&self, caller: &Caller, user_id: &str, key_id: &str) -> Result<()> {
        caller.require(Action::ManageDirectory)?;
        self.user(caller.org.num, user_id)?;
        let ops = self.key_revocations(caller.org.num, user_id, Some(key_id))?;
        if ops.is_empty() {
            return Err(Problem::not_found("key", key_id).into());
        }
        self.store().apply(caller.org.num, ops)?;
        Ok(())
    }

    fn team_json(&self, org: u64, team: &Team) -> Result<Value> {
        let members: Vec<String> = self
            .users(org)?
            .into_iter()
            .filter(|u| u.teams.iter().any(|t| t == &team.id))
            .map(|u| u.id)
            .collect();
        Ok(team.to_json(&members))
    }

    /// Ops that make exactly `members` the members of `team`.
    fn membership_ops(&self, org: u64, b: &Body<'_>, team: &str, members: &[String]) -> Result<Vec<Op>> {
        let users = self.users(org)?;
        for (i, m) in members.iter().enumerate() {
            if !users.iter().any(|u| &u.id == m) {
                return Err(Problem::invalid("unknown_user", format!("user `{m}` does not exist"))
                    .at(format!("{}/{i}", b.pointer("members")))
                    .into());
            }
        }
        let now = self.now();
        let mut ops = Vec::new();
        for mut u in users {
            let is_member = u.teams.iter().any(|t| t == team);
            let should = members.contains(&u.id);
            if is_member != should {
                if should {
                    u.teams.push(team.to_string());
                } else {
                    u.teams.retain(|t| t != team);
                }
                u.updated_at = now;
                ops.push(Op::put(Collection::User, u.id.clone(), &u, Expect::Present));
            }
        }
        Ok(ops)
    }

    /// `POST /v1/teams`.
    pub fn create_team(&self, caller: &Caller, body: &Value) -> Result<Value> {
        caller.require(Action::ManageDirectory)?;
        let b = Body::new(body)?;
        b.only(&["id", "name", "members"])?;
        let id = b.opt_id("id")?.map(str::to_string).unwrap_or_else(new_id);
        let name = b.req_str("name")?.to_string();
        let mut members = b.opt_str_list("members")?.unwrap_or_default();
        dedup(&mut members);
        let rt = self.runtime(&caller.org)?;
        let _g = rt.admin_write.lock().expect("admin lock");
        let now = self.now();
        let team = Team {
            id,
            name,
            created_at: now,
            updated_at: now,
        };
        let mut ops = vec![Op::put(Collection::Team, team.id.clone(), &team, Expect::Absent)];
        ops.extend(self.membership_ops(caller.org.num, &b, &team.id, &members)?);
        self.store().apply(caller.org.num, ops)?;
        self.team_json(caller.org.num, &team)
    }

    /// `GET /v1/teams`.
    pub fn list_teams(&self, caller: &Caller) -> Result<Value> {
        caller.require(Action::Read)?;
        let teams: Vec<Team> = self.store().list_docs(caller.org.num, Collection::Team)?;
        let users = self.users(caller.org.num)?;
        let out: Vec<Value> = teams
            .iter()
            .map(|t| {
                let members: Vec<String> = users
                    .iter()
                    .filter(|u| u.teams.iter().any(|x| x == &t.id))
                    .map(|u| u.id.clone())
                    .collect();
                t.to_json(&members)
            })
            .collect();
        Ok(list_json(out))
    }

    /// `GET /v1/teams/{id}`.
    pub fn get_team(&self, caller: &Caller, id: &str) -> Result<Value> {
        caller.require(Action::Read)?;
        let team = self.team(caller.org.num, id)?;
        self.team_json(caller.org.num, &team)
    }

    /// `PATCH /v1/teams/{id}`: name and/or the full member list.
    pub fn update_team(&self, caller: &Caller, id: &str, body: &Value) -> Result<Value> {
        caller.require(Action::ManageDirectory)?;
        let b = Body::new(body)?;
        b.only(&["id", "name", "members"])?;
        let rt = self.runtime(&caller.org)?;
        let _g = rt.admin_write.lock().expect("admin lock");
        let mut team = self.team(caller.org.num, id)?;
        if let Some(new_id) = b.opt_str("id")? {
            if new_id != id {
                return Err(Problem::invalid("immutable_field", "`id` cannot change")
                    .at("/id")
                    .into());
            }
        }
        if b.get("name").is_some() {
            team.name = b.req_str("name")?.to_string();
        }
        team.updated_at = self.now();
        let mut ops = vec![Op::put(Collection::Team, team.id.clone(), &team, Expect::Present)];
        if let Some(mut members) = b.opt_str_list("members")? {
            dedup(&mut members);
            ops.extend(self.membership_ops(caller.org.num, &b, &team.id, &members)?);
        }
        self.store().apply(caller.org.num, ops)?;
        self.team_json(caller.org.num, &team)
    }

    /// `DELETE /v1/teams/{id}`: the team and every membership in it.
    pub fn delete_team(&self, caller: &Caller, id: &str) -> Result<()> {
        caller.require(Action::ManageDirectory)?;
        let rt = self.runtime(&caller.org)?;
        let _g = rt.admin_write.lock().expect("admin lock");
        self.team(caller.org.num, id)?;
        let empty = serde_json::json!({});
        let b = Body::new(&empty)?;
        let mut ops = vec![Op::delete(Collection::Team, id)];
        ops.extend(self.membership_ops(caller.org.num, &b, id, &[])?);
        self.store().apply(caller.org.num, ops)?;
        Ok(())
    }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

/// `{"data": [...], "total": n, "nextCursor": null}`.
pub fn list_json(items: Vec<Value>) -> Value {
    let total = items.len();
    serde_json::json!({"data": items, "total": total, "nextCursor": null})
}
