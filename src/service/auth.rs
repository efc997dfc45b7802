//! Who is calling, and what each role may do: the one place permissions are decided.
//!
//! Every use case takes a [`Caller`] and calls [`Caller::require`] with its [`Action`]; tenancy is
//! structural, since every read and write is scoped by the caller's org num.

use rand::Rng;
use sha2::{Digest, Sha256};

use super::error::Result;
use crate::error::Problem;
use crate::model::{Org, Role, User};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's org.
    pub org: Org,
    /// The caller's user.
    pub user: User,
    /// Id of the key used.
    pub key_id: String,
    /// Whether the key is the platform key (may create orgs).
    pub platform: bool,
}

/// Things a caller may try to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read objects, search, timelines, reports; read klasses; read users and teams.
    Read,
    /// Create, change, delete objects; bulk object lines.
    WriteObjects,
    /// Post app events.
    PostEvents,
    /// Create or change klasses and attributes.
    WriteSchema,
    /// Create or change users, teams, keys.
    ManageDirectory,
    /// Read or change business rules, workflows, runs, hooks.
    ManageAutomation,
    /// See every saved search (`?all=true`) and change others'.
    AdministerSavedSearches,
    /// Create orgs (platform key only).
    CreateOrgs,
}

impl Caller {
    /// Whether the caller may do `action`.
    pub fn may(&self, action: Action) -> bool {
        match action {
            Action::CreateOrgs => self.platform,
            Action::Read => true,
            Action::WriteObjects | Action::PostEvents => matches!(self.user.role, Role::Admin | Role::Agent),
            Action::WriteSchema
            | Action::ManageDirectory
            | Action::ManageAutomation
            | Action::AdministerSavedSearches => self.user.role == Role::Admin,
        }
    }

    /// Refuses with 403 unless the caller may do `action`.
    pub fn require(&self, action: Action) -> Result<()> {
        if self.may(action) {
            return Ok(());
        }
        let what = match action {
            Action::CreateOrgs => "only the platform key may create orgs",
            Action::WriteObjects => "role `analyst` may not change objects",
            Action::PostEvents => "role `analyst` may not post events",
            Action::WriteSchema => "only admins may change the schema",
            Action::ManageDirectory => "only admins may manage users, teams and keys",
            Action::ManageAutomation => "only admins may manage business rules, workflows and hooks",
            Action::AdministerSavedSearches => "only admins may manage other users' saved searches",
            Action::Read => "reading is not allowed",
        };
        Err(Problem::forbidden(what).into())
    }
}

/// A new API key secret: `kdr_` and 40 random base62 characters.
pub fn new_key_secret() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let body: String = (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("kdr_{body}")
}

/// A short random id (keys, hooks secrets).
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The stored hash of a key secret. Keys are high-entropy random tokens, so one SHA-256 is
/// enough (no slow password hash), and lookups by hash cost microseconds.
pub fn hash_key(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, platform: bool) -> Caller {
        Caller {
            org: Org {
                num: 1,
                id: "o".into(),
                name: "o".into(),
                created_at: 0,
            },
            user: User {
                id: "u".into(),
                name: "u".into(),
                email: "u@x".into(),
                role,
                teams: vec![],
                created_at: 0,
                updated_at: 0,
            },
            key_id: "k".into(),
            platform,
        }
    }

    #[test]
    fn roles_get_exactly_their_permissions() {
        use Action::*;
        let all = [
            Read,
            WriteObjects,
            PostEvents,
            WriteSchema,
            ManageDirectory,
            ManageAutomation,
            AdministerSavedSearches,
            CreateOrgs,
        ];
        let allowed = |c: &Caller| all.iter().filter(|a| c.may(**a)).copied().collect::<Vec<_>>();
        assert_eq!(allowed(&caller(Role::Analyst, false)), vec![Read]);
        assert_eq!(
            allowed(&caller(Role::Agent, false)),
            vec![Read, WriteObjects, PostEvents]
        );
        assert_eq!(allowed(&caller(Role::Admin, false)).len(), all.len() - 1);
        assert!(caller(Role::Admin, true).may(CreateOrgs));
    }

    #[test]
    fn keys_are_random_and_hashed() {
        let a = new_key_secret();
        assert!(a.starts_with("kdr_") && a.len() == 44);
        assert_ne!(a, new_key_secret());
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_eq!(hash_key(&a).len(), 32);
    }
}
