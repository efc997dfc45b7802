//! Orgs and their directory: users with roles, teams, API keys.

use serde::{Deserialize, Serialize};

use super::time::{format_time, Millis};

/// A tenant. Everything else belongs to exactly one org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Org {
    /// Internal number, the prefix of every stored key of the org.
    pub num: u64,
    /// Public id (`default` for the first org).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Creation time.
    pub created_at: Millis,
}

impl Org {
    /// Renders the org as API JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"id": self.id, "name": self.name, "createdAt": format_time(self.created_at)})
    }
}

/// What a user may do in its org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in the org.
    Admin,
    /// Objects (read/write), search, timeline, reports, events, own saved searches.
    Agent,
    /// Read-only objects, search, timeline, reports, own saved searches.
    Analyst,
}

impl Role {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Analyst => "analyst",
        }
    }

    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            "analyst" => Some(Role::Analyst),
            _ => None,
        }
    }
}

/// A person (or integration) with a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id, unique among the org's users.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Team ids, the source of truth for membership.
    pub teams: Vec<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Last update.
    pub updated_at: Millis,
}

impl User {
    /// Renders the user as API JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "name": self.name, "email": self.email, "role": self.role.name(),
            "teams": self.teams, "createdAt": format_time(self.created_at),
            "updatedAt": format_time(self.updated_at),
        })
    }
}

/// A group of users that saved searches can be shared with and conversations assigned to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    /// Id, unique among the org's teams.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: Millis,
    /// Last update.
    pub updated_at: Millis,
}

impl Team {
    /// Renders the team as API JSON with its members (derived from the users' team lists).
    pub fn to_json(&self, members: &[String]) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "name": self.name, "members": members,
            "createdAt": format_time(self.created_at), "updatedAt": format_time(self.updated_at),
        })
    }
}

/// A stored API key: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Key id (shown, used to revoke).
    pub id: String,
    /// Org num.
    pub org: u64,
    /// Owning user id.
    pub user: String,
    /// SHA-256 of the secret.
    pub hash: Vec<u8>,
    /// Creation time.
    pub created_at: Millis,
}
