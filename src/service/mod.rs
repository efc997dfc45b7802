//! Use cases, scoped by org, and the background tasks that keep derived state up to date.
//!
//! A write goes: validate against the klass -> store (object, lookups, change record in one
//! transaction) -> wait for a group fsync -> wake the org's indexer; with `refresh=wait_for` it
//! also waits until the index has committed past the write's sequence number. Reads run queries
//! on the org's index in `spawn_blocking` and fetch the objects from the store.
//!
//! Never imports axum, sled or tantivy.

pub mod auth;
pub mod automation;
pub mod bulk;
pub mod directory;
pub mod error;
pub mod export;
pub mod import;
pub mod indexing;
pub mod input;
pub mod kustomer;
pub mod objects;
pub mod reports;
pub mod saved;
pub mod schema;
pub mod search;
pub mod standard;
pub mod timeline;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

pub use auth::{Action, Caller};
pub use error::{Result, ServiceError};
pub use standard::StandardKlasses;

use crate::error::{ErrorKind, Problem};
use crate::index::{IndexSettings, OrgIndex};
use crate::model::time::Millis;
use crate::model::{ApiKey, Org, OrgSchema, Role, User};
use crate::storage::{Collection, Expect, Op, Store, StoreOptions};
use indexing::IndexerHandle;

/// The source of "now" (tests may pin it).
pub trait Clock: Send + Sync {
    /// Milliseconds since the epoch.
    fn now(&self) -> Millis;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        d.as_millis() as Millis
    }
}

/// What the service needs to start.
#[derive(Clone)]
pub struct AppOptions {
    /// Data directory.
    pub data_dir: PathBuf,
    /// The first admin key (first start only).
    pub admin_key: Option<String>,
    /// Index settings.
    pub index: IndexSettings,
    /// Standard klasses.
    pub standard: StandardKlasses,
    /// Store options.
    pub store: StoreOptions,
    /// Hosts `http.request` may reach.
    pub http_allow: Vec<String>,
    /// Email hook domain.
    pub smtp_domain: String,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Print a generated admin key to stderr on first start.
    pub announce_admin_key: bool,
    /// Run the indexer and automation tasks (off for offline imports, which index directly).
    pub background: bool,
}

impl AppOptions {
    /// Options with defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> AppOptions {
        AppOptions {
            data_dir: data_dir.into(),
            admin_key: None,
            index: IndexSettings::default(),
            standard: StandardKlasses::load(None).expect("embedded klasses are valid"),
            store: StoreOptions::default(),
            http_allow: Vec::new(),
            smtp_domain: "hooks.localhost".into(),
            clock: Arc::new(SystemClock),
            announce_admin_key: true,
            background: true,
        }
    }
}

/// One org's live state: its schema cache, index and indexer.
pub struct OrgRuntime {
    /// The org.
    pub org: Org,
    schema: RwLock<Arc<OrgSchema>>,
    admin_write: Mutex<()>,
    /// The org's index.
    pub index: Arc<OrgIndex>,
    /// The org's indexer.
    pub indexer: IndexerHandle,
    /// The org's automation engine.
    pub automation: automation::engine::AutomationHandle,
    /// Business rules, cached until one changes.
    pub(crate) rules: Cached<automation::rules::RuleSet>,
    /// Workflows, cached until one changes.
    pub(crate) workflows: Cached<Vec<crate::model::automation::Workflow>>,
}

/// A value loaded from the store and kept until `invalidate`. A load that raced with an
/// invalidation is returned but not kept, so a change is never hidden by a stale copy.
pub(crate) struct Cached<T> {
    generation: std::sync::atomic::AtomicU64,
    slot: RwLock<Option<(u64, Arc<T>)>>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached {
            generation: std::sync::atomic::AtomicU64::new(0),
            slot: RwLock::new(None),
        }
    }
}

impl<T> Cached<T> {
    /// The kept value, or `load`'s.
    pub(crate) fn get_or_load(&self, load: impl FnOnce() -> Result<T>) -> Result<Arc<T>> {
        use std::sync::atomic::Ordering;
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((g, v)) = self.slot.read().expect("cache lock").as_ref() {
            if *g == generation {
                return Ok(v.clone());
            }
        }
        let v = Arc::new(load()?);
        let mut slot = self.slot.write().expect("cache lock");
        if self.generation.load(Ordering::Acquire) == generation {
            *slot = Some((generation, v.clone()));
        }
        Ok(v)
    }

    /// Forgets the value: the next `get_or_load` loads again. Call after the change is stored.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        *self.slot.write().expect("cache lock") = None;
    }
}

impl OrgRuntime {
    /// The current schema.
    pub fn schema(&self) -> Arc<OrgSchema> {
        self.schema.read().expect("schema lock").clone()
    }
}

struct Inner {
    store: Store,
    opts: AppOptions,
    orgs: Mutex<HashMap<u64, Arc<OrgRuntime>>>,
    /// Held while a runtime is opened, so an org's index is opened (and found missing) once.
    opening: Mutex<()>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    platform_key: Option<String>,
}

/// The service: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

/// Id of the first org.
pub const DEFAULT_ORG: &str = "default";
const PLATFORM_KEY_META: &str = "platform_key_id";

impl App {
    /// Opens the data directory; on first start creates the `default` org, its admin user and
    /// the first admin key (also the platform key), written to `DIR/admin-key` when generated.
    ///
    /// # Errors
    /// The store cannot be opened (locked by another process, corrupt, permissions).
    pub fn open(opts: AppOptions) -> Result<App> {
        std::fs::create_dir_all(&opts.data_dir).map_err(|e| ServiceError::Internal(format!("data dir: {e}")))?;
        let store = Store::open(&opts.data_dir.join("store"), &opts.store)?;
        let (shutdown, _) = watch::channel(false);
        let mut inner = Inner {
            store,
            opts,
            orgs: Mutex::new(HashMap::new()),
            opening: Mutex::new(()),
            shutdown,
            tasks: Mutex::new(Vec::new()),
            platform_key: None,
        };
        if inner.store.orgs()?.is_empty() {
            bootstrap(&inner)?;
        }
        inner.platform_key = inner
            .store
            .meta(PLATFORM_KEY_META)?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        Ok(App { inner: Arc::new(inner) })
    }

    /// `kindred platform-key`: makes a new key of `user` (of org `org`) the platform key, the only
    /// key that may create orgs, and returns its secret (also written to `DATA/admin-key`). This is
    /// the way back after the platform key was revoked (leaked) or its user deleted: the user is
    /// created again, as an admin, when it no longer exists. The previous platform key, if it still
    /// exists, stays an ordinary key of its user. Run with the service stopped; the service reads
    /// the platform key when it starts.
    pub fn reset_platform_key(&self, org: &str, user: &str) -> Result<String> {
        let org = self
            .inner
            .store
            .org_by_id_or_name(org)?
            .ok_or_else(|| ServiceError::from(Problem::not_found("org", org)))?;
        let now = self.now();
        let mut ops = Vec::new();
        let holder: Option<User> = self.inner.store.get_doc(org.num, Collection::User, user)?;
        if holder.is_none() {
            crate::model::ids::check_id(user)
                .map_err(|e| ServiceError::from(Problem::invalid("invalid_id", format!("user id `{user}`: {e}"))))?;
            ops.push(Op::put(
                Collection::User,
                user.to_string(),
                &User {
                    id: user.into(),
                    name: "Admin".into(),
                    email: format!("{user}@localhost"),
                    role: Role::Admin,
                    teams: vec![],
                    created_at: now,
                    updated_at: now,
                },
                Expect::Absent,
            ));
        }
        let secret = auth::new_key_secret();
        let key_id = directory::new_key_id();
        ops.extend(directory::key_ops(org.num, user, &key_id, &secret, now));
        self.inner.store.apply(org.num, ops)?;
        self.inner.store.set_meta(PLATFORM_KEY_META, key_id.as_bytes())?;
        self.inner.store.flush()?;
        let path = self.inner.opts.data_dir.join("admin-key");
        write_secret_file(&path, &secret)
            .map_err(|e| ServiceError::Internal(format!("writing {}: {e}", path.display())))?;
        tracing::info!(org = %org.id, user, key = %key_id, "new platform key");
        Ok(secret)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Options the service was opened with.
    pub fn options(&self) -> &AppOptions {
        &self.inner.opts
    }

    /// Now, by the service clock.
    pub fn now(&self) -> Millis {
        self.inner.opts.clock.now()
    }

    /// Data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.opts.data_dir
    }

    /// Resolves an API key to its caller.
    ///
    /// # Errors
    /// 401 when the key is unknown or revoked, or its user is gone.
    pub fn authenticate(&self, secret: &str) -> Result<Caller> {
        let unauthorized = || {
            Problem::new(
                ErrorKind::Unauthorized,
                "unauthorized",
                "the API key is missing, unknown or revoked",
            )
        };
        let key: ApiKey = self
            .inner
            .store
            .api_key(&auth::hash_key(secret))?
            .ok_or_else(unauthorized)?;
        let org = self.inner.store.org(key.org)?.ok_or_else(unauthorized)?;
        let user: User = self
            .inner
            .store
            .get_doc(org.num, Collection::User, &key.user)?
            .ok_or_else(unauthorized)?;
        let platform = self.inner.platform_key.as_deref() == Some(key.id.as_str());
        Ok(Caller {
            org,
            user,
            key_id: key.id,
            platform,
        })
    }

    /// The live state of an org, opened on first use.
    pub fn runtime(&self, org: &Org) -> Result<Arc<OrgRuntime>> {
        if let Some(rt) = self.inner.orgs.lock().expect("orgs lock").get(&org.num) {
            return Ok(rt.clone());
        }
        let _opening = self.inner.opening.lock().expect("opening lock");
        if let Some(rt) = self.inner.orgs.lock().expect("orgs lock").get(&org.num) {
            return Ok(rt.clone());
        }
        let schema = self.load_schema(org.num)?;
        let index = Arc::new(OrgIndex::open(&self.index_dir(org.num), &self.inner.opts.index)?);
        // Decided before the runtime is published, so before any write through it: objects the
        // store holds now were written before this index existed, whereas the writes that follow
        // are in the log the indexer replays (deciding later raced them and rebuilt every new org).
        if index.was_reset() {
            // Built by an earlier version with another schema: rebuilt now, before the runtime
            // is published, so that no search ever answers from a partial index.
            self.rebuild_reset_index(org, &index, &schema)?;
        } else if !index.had_commit() && self.inner.store.has_objects(org.num) {
            // Objects the index cannot know: its directory was lost (an index created now holds no
            // commit), or a rebuild (or the first indexing) was interrupted before it committed.
            // Only a rebuild can know them.
            index.mark_lost();
        }
        let mut orgs = self.inner.orgs.lock().expect("orgs lock");
        let (indexer, tasks) = if self.inner.opts.background {
            let (indexer, task) = indexing::spawn(
                self.clone(),
                org.clone(),
                index.clone(),
                self.inner.shutdown.subscribe(),
            );
            let automation = automation::engine::AutomationHandle::default();
            let engine = automation::engine::spawn(
                self.clone(),
                org.clone(),
                automation.clone(),
                self.inner.shutdown.subscribe(),
            );
            ((indexer, automation), vec![task, engine])
        } else {
            (
                (
                    indexing::IndexerHandle::idle(index.committed_seq()),
                    automation::engine::AutomationHandle::default(),
                ),
                vec![],
            )
        };
        let (indexer, automation) = indexer;
        let rt = Arc::new(OrgRuntime {
            org: org.clone(),
            schema: RwLock::new(Arc::new(schema)),
            admin_write: Mutex::new(()),
            index,
            indexer,
            automation,
            rules: Cached::default(),
            workflows: Cached::default(),
        });
        orgs.insert(org.num, rt.clone());
        self.inner.tasks.lock().expect("tasks lock").extend(tasks);
        Ok(rt)
    }

    /// The runtime of an org by id or name (command line).
    pub fn runtime_by_name(&self, id_or_name: &str) -> Result<Arc<OrgRuntime>> {
        let org = self
            .inner
            .store
            .org_by_id_or_name(id_or_name)?
            .ok_or_else(|| ServiceError::from(Problem::not_found("org", id_or_name)))?;
        self.runtime(&org)
    }

    fn index_dir(&self, org: u64) -> PathBuf {
        self.inner.opts.data_dir.join("index").join(org.to_string())
    }

    fn load_schema(&self, org: u64) -> Result<OrgSchema> {
        let klasses: Vec<crate::model::Klass> = self.inner.store.list_docs(org, Collection::Klass)?;
        Ok(OrgSchema {
            klasses: klasses.into_iter().map(|k| (k.name.clone(), k)).collect(),
        })
    }

    /// Reloads an org's schema cache from the store (after a schema change).
    pub(crate) fn reload_schema(&self, rt: &OrgRuntime) -> Result<()> {
        let schema = self.load_schema(rt.org.num)?;
        *rt.schema.write().expect("schema lock") = Arc::new(schema);
        Ok(())
    }

    /// Every org runtime opened so far.
    pub fn open_runtimes(&self) -> Vec<Arc<OrgRuntime>> {
        self.inner.orgs.lock().expect("orgs lock").values().cloned().collect()
    }

    /// Stops background tasks, commits every index and flushes the store.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock().expect("tasks lock"));
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = self.inner.store.flush() {
            tracing::error!(error = %e, "store flush at shutdown failed");
        }
    }

    fn rebuild_reset_index(&self, org: &Org, index: &OrgIndex, schema: &OrgSchema) -> Result<()> {
        tracing::warn!(org = %org.id, "the index was built by an earlier version; rebuilding it from the store before the org answers");
        let started = std::time::Instant::now();
        let mut logged = started;
        let mut objects = 0;
        indexing::rebuild_with(self, org, index, schema, &mut |done, total| {
            objects = done;
            if logged.elapsed() >= std::time::Duration::from_secs(5) {
                logged = std::time::Instant::now();
                tracing::info!(org = %org.id, done, total, "rebuilding the index");
            }
        })?;
        tracing::info!(org = %org.id, objects, seconds = started.elapsed().as_secs_f64(), "index rebuilt");
        Ok(())
    }

    /// Opens every org's runtime (so indexers catch up after a restart).
    pub fn open_all(&self) -> Result<()> {
        for org in self.inner.store.orgs()? {
            self.runtime(&org)?;
        }
        Ok(())
    }
}

fn bootstrap(inner: &Inner) -> Result<()> {
    let now = inner.opts.clock.now();
    let (secret, generated) = match &inner.opts.admin_key {
        Some(k) => (k.clone(), false),
        None => (auth::new_key_secret(), true),
    };
    let org = Org {
        num: 0,
        id: DEFAULT_ORG.into(),
        name: DEFAULT_ORG.into(),
        created_at: now,
    };
    let admin = User {
        id: "admin".into(),
        name: "Admin".into(),
        email: "admin@localhost".into(),
        role: Role::Admin,
        teams: vec![],
        created_at: now,
        updated_at: now,
    };
    let key_id = directory::new_key_id();
    inner.store.create_org(org, |num| {
        org_seed_ops(&inner.opts.standard, &admin, &key_id, &secret, num, now)
    })?;
    inner.store.set_meta(PLATFORM_KEY_META, key_id.as_bytes())?;
    if generated {
        let path = inner.opts.data_dir.join("admin-key");
        write_secret_file(&path, &secret)
            .map_err(|e| ServiceError::Internal(format!("writing {}: {e}", path.display())))?;
        if inner.opts.announce_admin_key {
            eprintln!(
                "kindred: first start; admin key (also written to {}): {secret}",
                path.display()
            );
        }
    }
    inner.store.flush()?;
    tracing::info!(org = DEFAULT_ORG, "created the default org and its admin");
    Ok(())
}

/// The documents a new org starts with: the standard klasses, its first admin and that admin's key.
pub(crate) fn org_seed_ops(
    standard: &StandardKlasses,
    admin: &User,
    key_id: &str,
    secret: &str,
    org: u64,
    now: Millis,
) -> Vec<Op> {
    let mut ops: Vec<Op> = standard
        .klasses
        .iter()
        .map(|k| {
            let mut k = k.clone();
            k.created_at = now;
            k.updated_at = now;
            Op::put(Collection::Klass, k.name.clone(), &k, Expect::Any)
        })
        .collect();
    ops.push(Op::put(Collection::User, admin.id.clone(), admin, Expect::Absent));
    ops.extend(directory::key_ops(org, &admin.id, key_id, secret, now));
    ops
}

fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    writeln!(f, "{secret}")?;
    f.sync_all()
}
