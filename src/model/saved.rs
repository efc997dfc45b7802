//! Saved searches: a named query with an owner and a visibility.

use serde::{Deserialize, Serialize};

use super::time::{format_time, Millis};
use super::User;

/// Who may see a saved search besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// The owner only.
    Private,
    /// Everyone in the org.
    Org,
    /// The listed users and the members of the listed teams.
    Shared,
}

impl Visibility {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Org => "org",
            Visibility::Shared => "shared",
        }
    }

    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "private" => Some(Visibility::Private),
            "org" => Some(Visibility::Org),
            "shared" => Some(Visibility::Shared),
            _ => None,
        }
    }
}

/// A saved search (a segment when its query is over customers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSearch {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Owner's user id.
    pub owner: String,
    /// The search body, as posted (validated against the schema each time it runs).
    pub query: serde_json::Value,
    /// Visibility.
    pub visibility: Visibility,
    /// Users it is shared with.
    pub users: Vec<String>,
    /// Teams it is shared with.
    pub teams: Vec<String>,
    /// Pinned in the owner's list.
    pub pinned: bool,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

impl SavedSearch {
    /// Whether `user` may see it (admins are decided by the caller).
    pub fn visible_to(&self, user: &User) -> bool {
        self.owner == user.id
            || self.visibility == Visibility::Org
            || (self.visibility == Visibility::Shared
                && (self.users.iter().any(|u| u == &user.id) || self.teams.iter().any(|t| user.teams.contains(t))))
    }

    /// The klass of its results.
    pub fn context(&self) -> Option<&str> {
        self.query.get("queryContext").and_then(serde_json::Value::as_str)
    }

    /// Renders it as API JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "name": self.name, "owner": self.owner, "query": self.query,
            "visibility": self.visibility.name(), "users": self.users, "teams": self.teams,
            "pinned": self.pinned, "createdAt": format_time(self.created_at), "updatedAt": format_time(self.updated_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    fn user(id: &str, teams: &[&str]) -> User {
        User {
            id: id.into(),
            name: id.into(),
            email: "x@y".into(),
            role: Role::Agent,
            teams: teams.iter().map(|t| t.to_string()).collect(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn search(visibility: Visibility, users: &[&str], teams: &[&str]) -> SavedSearch {
        SavedSearch {
            id: "s".into(),
            name: "s".into(),
            owner: "owner".into(),
            query: serde_json::json!({"queryContext": "customer"}),
            visibility,
            users: users.iter().map(|t| t.to_string()).collect(),
            teams: teams.iter().map(|t| t.to_string()).collect(),
            pinned: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn visibility_follows_sharing() {
        let owner = user("owner", &[]);
        let teammate = user("t", &["support"]);
        let named = user("n", &[]);
        let other = user("o", &["sales"]);
        let private = search(Visibility::Private, &["n"], &["support"]);
        assert!(private.visible_to(&owner));
        assert!(!private.visible_to(&teammate) && !private.visible_to(&named));
        let shared = search(Visibility::Shared, &["n"], &["support"]);
        assert!(shared.visible_to(&teammate) && shared.visible_to(&named) && !shared.visible_to(&other));
        assert!(search(Visibility::Org, &[], &[]).visible_to(&other));
    }
}
