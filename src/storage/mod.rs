//! The durable store: sled, the source of truth for every org's objects, schema, directory,
//! change log and automation state. Everything else (the index, caches) is rebuilt from it.
//!
//! The interface is narrow and free of sled types: typed reads, atomic batches of documents, and
//! atomic object writes that also maintain lookup entries and append to the change log. Writes of
//! one org are serialised by a per-org lock, so reads and the batch that follows cannot interleave with another write, and the change
//! log is gap-free; each write is one atomic sled batch. Durability is explicit: [`Store::durable`] waits for a group fsync.
//! An import writes behind: [`Store::prepare_objects`] checks and builds a write under the lock,
//! another thread applies it, and every access to the store waits for writes so prepared.
//! Never imports tantivy or anything of HTTP.

pub mod codec;
mod durability;
pub mod error;
pub mod keys;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::{Result, StorageError};

use crate::model::time::Millis;
use crate::model::{ApiKey, ChangeOp, ChangeRecord, Object, Org, UniqueKey};
use durability::GroupCommit;
use keys::{global, org as okind};

/// Store tuning.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled page cache, bytes.
    pub cache_bytes: u64,
    /// Background flush interval; acknowledged writes are flushed explicitly regardless.
    pub flush_every_ms: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 256 << 20,
            flush_every_ms: Some(500),
        }
    }
}

/// Document collections of an org (schema, directory, saved searches, automation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Collection {
    /// Klass definitions, by name.
    Klass = b'k',
    /// Users, by id.
    User = b'u',
    /// Teams, by id.
    Team = b't',
    /// A user's keys: `user 0x00 keyid` -> key hash.
    UserKey = b'y',
    /// Saved searches, by id.
    SavedSearch = b's',
    /// Business rules, by id.
    Rule = b'r',
    /// Workflows, by id.
    Workflow = b'w',
    /// Workflow runs, by id.
    Run = b'x',
    /// Hooks, by id.
    Hook = b'h',
    /// Small internal state (timers, schedule marks), by name.
    State = b'm',
}

/// What a document put expects of the current entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Anything.
    Any,
    /// No entry (create).
    Absent,
    /// An entry (update).
    Present,
}

/// One operation of an atomic batch.
#[derive(Debug, Clone)]
pub enum Op {
    /// Write a document.
    PutDoc {
        /// Collection.
        coll: Collection,
        /// Document id.
        id: String,
        /// Encoded value.
        value: Vec<u8>,
        /// Precondition.
        expect: Expect,
    },
    /// Remove a document (no error when absent).
    DeleteDoc {
        /// Collection.
        coll: Collection,
        /// Document id.
        id: String,
    },
    /// Store an API key (global, by hash).
    PutApiKey(ApiKey),
    /// Remove an API key by hash.
    DeleteApiKey(Vec<u8>),
    /// Move a change-log consumer's cursor (with the effects of what it consumed).
    PutCursor(String, u64),
}

impl Op {
    /// A put of a serialisable document.
    pub fn put<T: Serialize>(coll: Collection, id: impl Into<String>, value: &T, expect: Expect) -> Op {
        Op::PutDoc {
            coll,
            id: id.into(),
            value: codec::encode(value),
            expect,
        }
    }

    /// A delete.
    pub fn delete(coll: Collection, id: impl Into<String>) -> Op {
        Op::DeleteDoc { coll, id: id.into() }
    }
}

/// One object write: `before` is the version it was computed from (None: create), `after` the new
/// version (None: delete). A create with `after.num == 0` gets the next num.
#[derive(Debug, Clone)]
pub struct ObjectWrite {
    /// Version read before the write.
    pub before: Option<Object>,
    /// Version to store.
    pub after: Option<Object>,
    /// Append a change-log record (false only for offline imports, which index directly).
    pub log: bool,
    /// Automation depth recorded in the change record.
    pub depth: u8,
    /// Changed field paths recorded in the change record.
    pub changed: Vec<String>,
}

/// What an object write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The object's num (assigned on create).
    pub num: u64,
    /// Change-log sequence, when logged.
    pub seq: Option<u64>,
}

#[derive(Debug, Default)]
struct OrgCounters {
    loaded: bool,
    next_num: u64,
    next_seq: u64,
    /// Objects per klass as last written (read from the tree once per klass), so that a write
    /// does not read the counts it updates.
    klass_counts: HashMap<String, u64>,
}

struct Inner {
    db: sled::Db,
    kv: sled::Tree,
    orgs: Mutex<HashMap<u64, Arc<Mutex<OrgCounters>>>>,
    global: Mutex<()>,
    flusher: GroupCommit,
    behind: Behind,
}

/// Object writes prepared but not yet applied to the tree (an import's write-behind, see
/// [`Store::prepare_objects`]). Every read and write of the store waits for them first, so no
/// caller ever sees the tree without a write it was told succeeded.
#[derive(Default)]
struct Behind {
    /// Prepared writes not yet applied (read without the lock on every store access).
    count: AtomicUsize,
    lock: Mutex<()>,
    applied: Condvar,
    /// Set for good once a prepared write failed or was dropped unapplied: the writes prepared
    /// after it, and the in-memory counters, assumed a tree that does not exist.
    failed: AtomicBool,
}

impl Behind {
    fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn done(&self, ok: bool) {
        let _g = self.lock.lock().expect("write-behind lock");
        if !ok {
            self.failed.store(true, Ordering::Release);
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.applied.notify_all();
    }

    /// Fails once a prepared write failed (without waiting for the others).
    fn check(&self) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StorageError::WriteBehind);
        }
        Ok(())
    }

    /// Waits until every prepared write is applied.
    fn settle(&self) -> Result<()> {
        if self.count.load(Ordering::Acquire) > 0 {
            let mut g = self.lock.lock().expect("write-behind lock");
            while self.count.load(Ordering::Acquire) > 0 {
                g = self.applied.wait(g).expect("write-behind lock");
            }
        }
        self.check()
    }
}

/// An object write prepared by [`Store::prepare_objects`]: [`PreparedWrite::apply`] puts it in the
/// tree, on any thread. Until then every other access to the store waits for it; dropped
/// unapplied, it fails the store's later accesses with [`StorageError::WriteBehind`].
#[must_use = "a prepared write must be applied"]
pub struct PreparedWrite {
    store: Store,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Counted in the store's pending writes until applied (or dropped, or panicked over).
    pending: bool,
}

impl PreparedWrite {
    /// Applies the write (atomically, like [`Store::write_objects`]).
    ///
    /// # Errors
    /// When sled fails; the store then refuses every later access.
    pub fn apply(mut self) -> Result<()> {
        let overlay = std::mem::take(&mut self.overlay);
        // Still pending until here: should sled panic, the drop marks the write failed, and
        // whoever waits for it wakes up with an error instead of waiting forever.
        let r = self.store.inner.kv.apply_batch(to_batch(overlay));
        self.pending = false;
        self.store.inner.behind.done(r.is_ok());
        collect_garbage();
        Ok(r?)
    }
}

impl Drop for PreparedWrite {
    fn drop(&mut self) {
        if self.pending {
            self.store.inner.behind.done(false);
        }
    }
}

impl std::fmt::Debug for PreparedWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedWrite")
            .field("keys", &self.overlay.len())
            .field("pending", &self.pending)
            .finish()
    }
}

/// Lets sled free what a large write replaced. sled frees old page versions, and the log space
/// they hold, in functions deferred until every thread has left the epoch they were made in;
/// they run only as threads pin and unpin, and a whole batch applies under one pin. Without
/// this, an import (which reads the store little) left those frees waiting: its store file
/// grew 19% larger and its memory by up to 1 GiB.
fn collect_garbage() {
    for _ in 0..16 {
        sled::pin().flush();
    }
}

fn to_batch(overlay: HashMap<Vec<u8>, Option<Vec<u8>>>) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for (k, v) in overlay {
        match v {
            Some(v) => batch.insert(k, v),
            None => batch.remove(k),
        }
    }
    batch
}

/// Handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

const COUNTER_NUM: &[u8] = b"num";
const COUNTER_SEQ: &[u8] = b"seq";

/// An atomic write built under a lock: reads see the tree plus this write's own changes, and
/// the changes land together in one sled batch (atomic, also across a crash). Every writer of an
/// org holds that org's lock, so no other write can interleave between the reads and the batch.
struct Tx<'a> {
    store: &'a Store,
    /// Every write of the transaction (None = removal), the last per key; also what `get` sees
    /// before the commit. The sled batch is built from it at commit, so values are copied once.
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Tx<'a> {
    fn new(store: &'a Store, writes: usize) -> Tx<'a> {
        Tx {
            store,
            overlay: HashMap::with_capacity(writes),
        }
    }

    fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        match self.overlay.get(key.as_ref()) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.store.tree()?.get(key)?.map(|v| v.to_vec())),
        }
    }

    /// What this transaction itself wrote under `key` (a key the tree is known not to hold).
    fn get_written(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.overlay.get(key).cloned().flatten()
    }

    fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.overlay.insert(key.into(), Some(value.into()));
    }

    fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.overlay.insert(key.into(), None);
    }

    fn commit(self) -> Result<()> {
        self.store.tree()?.apply_batch(to_batch(self.overlay))?;
        Ok(())
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// When sled cannot open the directory (locked by another process, corrupt, permissions).
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            .flush_every_ms(opts.flush_every_ms)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let kv = db.open_tree("kindred")?;
        let flusher = GroupCommit::start(db.clone());
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                kv,
                orgs: Mutex::new(HashMap::new()),
                global: Mutex::new(()),
                flusher,
                behind: Behind::default(),
            }),
        })
    }

    /// Waits until every write made before the call is on disk (group commit).
    pub async fn durable(&self) -> Result<()> {
        // Writes prepared before the call count as made (only imports prepare, and never while
        // the service runs, so this does not block a runtime thread in practice).
        self.inner.behind.settle()?;
        self.inner.flusher.durable().await
    }

    /// Flushes synchronously (command line paths, shutdown).
    pub fn flush(&self) -> Result<()> {
        self.inner.behind.settle()?;
        self.inner.db.flush()?;
        Ok(())
    }

    /// Bytes on disk, as sled reports them.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.inner.behind.settle()?;
        Ok(self.inner.db.size_on_disk()?)
    }

    // ---- platform: orgs, keys, metadata ----

    /// Reads platform metadata.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tree()?
            .get(keys::global_key(global::META, name.as_bytes()))?
            .map(|v| v.to_vec()))
    }

    /// Writes platform metadata.
    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        self.tree()?
            .insert(keys::global_key(global::META, name.as_bytes()), value)?;
        Ok(())
    }

    /// Creates an org with its first documents (klasses, admin user, API key), atomically.
    /// The org's num is assigned here and passed to `docs`; id and name must be unused.
    pub fn create_org(&self, mut org: Org, docs: impl FnOnce(u64) -> Vec<Op>) -> Result<Org> {
        let _g = self.inner.global.lock().expect("global lock");
        let counter_key = keys::global_key(global::COUNTER, b"org");
        let last = self
            .tree()?
            .get(&counter_key)?
            .and_then(|v| keys::read_u64(&v))
            .unwrap_or(0);
        org.num = last + 1;
        let docs = docs(org.num);
        let mut tx = Tx::new(self, 8);
        if tx.get(keys::global_key(global::ORG_ID, org.id.as_bytes()))?.is_some() {
            return Err(StorageError::Duplicate {
                what: "org id",
                value: org.id.clone(),
            });
        }
        if tx
            .get(keys::global_key(global::ORG_NAME, org.name.as_bytes()))?
            .is_some()
        {
            return Err(StorageError::Duplicate {
                what: "org name",
                value: org.name.clone(),
            });
        }
        let num = keys::u64_value(org.num);
        tx.insert(counter_key, num);
        tx.insert(keys::global_key(global::ORG, &num), codec::encode(&org));
        tx.insert(keys::global_key(global::ORG_ID, org.id.as_bytes()), num);
        tx.insert(keys::global_key(global::ORG_NAME, org.name.as_bytes()), num);
        apply_ops(&mut tx, org.num, &docs)?;
        tx.commit()?;
        Ok(org)
    }

    /// Every org.
    pub fn orgs(&self) -> Result<Vec<Org>> {
        self.tree()?
            .scan_prefix(keys::global_key(global::ORG, &[]))
            .map(|kv| codec::decode(&kv?.1, "org"))
            .collect()
    }

    /// An org by num.
    pub fn org(&self, num: u64) -> Result<Option<Org>> {
        self.get_decoded(keys::global_key(global::ORG, &keys::u64_value(num)), "org")
    }

    /// An org by id, or else by name.
    pub fn org_by_id_or_name(&self, s: &str) -> Result<Option<Org>> {
        for kind in [global::ORG_ID, global::ORG_NAME] {
            if let Some(v) = self.tree()?.get(keys::global_key(kind, s.as_bytes()))? {
                if let Some(num) = keys::read_u64(&v) {
                    return self.org(num);
                }
            }
        }
        Ok(None)
    }

    /// An API key by the hash of its secret.
    pub fn api_key(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        self.get_decoded(keys::global_key(global::API_KEY, hash), "api key")
    }

    // ---- documents ----

    /// A document.
    pub fn get_doc<T: DeserializeOwned>(&self, org: u64, coll: Collection, id: &str) -> Result<Option<T>> {
        self.get_decoded(keys::doc_key(org, coll as u8, id), "document")
    }

    /// Every document of a collection, in id order.
    pub fn list_docs<T: DeserializeOwned>(&self, org: u64, coll: Collection) -> Result<Vec<T>> {
        self.list_docs_with_prefix(org, coll, "")
    }

    /// Documents whose id starts with `prefix`, in id order.
    pub fn list_docs_with_prefix<T: DeserializeOwned>(
        &self,
        org: u64,
        coll: Collection,
        prefix: &str,
    ) -> Result<Vec<T>> {
        self.tree()?
            .scan_prefix(keys::doc_key(org, coll as u8, prefix))
            .map(|kv| codec::decode(&kv?.1, "document"))
            .collect()
    }

    /// Ids of the documents whose id starts with `prefix`.
    pub fn doc_ids_with_prefix(&self, org: u64, coll: Collection, prefix: &str) -> Result<Vec<String>> {
        let base = keys::doc_key(org, coll as u8, "").len();
        self.tree()?
            .scan_prefix(keys::doc_key(org, coll as u8, prefix))
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?[base..]).into_owned()))
            .collect()
    }

    /// Up to `limit` document ids starting with `prefix`, last first, below `before` (an id
    /// without the prefix) when given: a page of a list kept in key order, read from the end.
    pub fn doc_ids_with_prefix_rev(
        &self,
        org: u64,
        coll: Collection,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let base = keys::doc_key(org, coll as u8, "").len();
        let lo = keys::doc_key(org, coll as u8, prefix);
        let hi = match before {
            Some(b) => keys::doc_key(org, coll as u8, &format!("{prefix}{b}")),
            None => {
                // 0xFF never occurs in UTF-8, so it sorts after every id with the prefix.
                let mut hi = lo.clone();
                hi.push(0xFF);
                hi
            }
        };
        self.tree()?
            .range(lo..hi)
            .keys()
            .rev()
            .take(limit)
            .map(|k| Ok(String::from_utf8_lossy(&k?[base..]).into_owned()))
            .collect()
    }

    /// How many document ids start with `prefix` (keys only; no document is read).
    pub fn count_prefix(&self, org: u64, coll: Collection, prefix: &str) -> Result<usize> {
        let mut n = 0;
        for k in self.tree()?.scan_prefix(keys::doc_key(org, coll as u8, prefix)).keys() {
            k?;
            n += 1;
        }
        Ok(n)
    }

    /// Applies a batch of document and key operations atomically, under the org's write lock.
    ///
    /// # Errors
    /// [`StorageError::Duplicate`] or [`StorageError::Missing`] when an expectation fails; then
    /// nothing is written.
    pub fn apply(&self, org: u64, ops: Vec<Op>) -> Result<()> {
        let lock = self.org_lock(org);
        let _g = lock.lock().expect("org lock");
        let mut tx = Tx::new(self, ops.len());
        apply_ops(&mut tx, org, &ops)?;
        tx.commit()
    }

    /// Adds `n` to an org counter and returns the value before (attribute keys, ids).
    pub fn counter_add(&self, org: u64, name: &str, n: u64) -> Result<u64> {
        let key = keys::org_key(org, okind::COUNTER, name.as_bytes());
        let lock = self.org_lock(org);
        let _g = lock.lock().expect("org lock");
        let tree = self.tree()?;
        let before = tree.get(&key)?.and_then(|v| keys::read_u64(&v)).unwrap_or(0);
        tree.insert(key, &keys::u64_value(before + n))?;
        Ok(before)
    }

    // ---- objects ----

    /// An object by num.
    pub fn object(&self, org: u64, num: u64) -> Result<Option<Object>> {
        self.get_decoded(keys::org_num_key(org, okind::OBJECT, num), "object")
    }

    /// The num of an object by id.
    pub fn num_by_id(&self, org: u64, id: &str) -> Result<Option<u64>> {
        Ok(self.num_and_klass_by_id(org, id)?.map(|(n, _)| n))
    }

    /// The num and klass of an object by id (one read, no object decoding).
    pub fn num_and_klass_by_id(&self, org: u64, id: &str) -> Result<Option<(u64, String)>> {
        Ok(self
            .tree()?
            .get(keys::org_key(org, okind::ID, id.as_bytes()))?
            .and_then(|v| {
                let num = keys::read_u64(v.get(..8)?)?;
                Some((num, String::from_utf8_lossy(&v[8..]).into_owned()))
            }))
    }

    /// The num of an object by klass and externalId.
    pub fn num_by_external_id(&self, org: u64, klass: &str, external_id: &str) -> Result<Option<u64>> {
        self.get_u64_prefix(keys::external_id_key(org, klass, external_id))
    }

    /// The num of a customer by email (case-insensitive).
    pub fn num_by_email(&self, org: u64, email: &str) -> Result<Option<u64>> {
        self.get_u64_prefix(keys::org_key(org, okind::EMAIL, email.to_lowercase().as_bytes()))
    }

    /// How many objects of a klass exist.
    pub fn klass_count(&self, org: u64, klass: &str) -> Result<u64> {
        Ok(self.get_u64(klass_count_key(org, klass))?.unwrap_or(0))
    }

    /// Walks every object of an org in num order.
    pub fn scan_objects(&self, org: u64) -> impl Iterator<Item = Result<Object>> + Send + 'static {
        self.scan_objects_from(org, 0)
    }

    /// Whether the org holds any object. A read error answers yes: callers then take the path
    /// that reads the store, which reports it.
    pub fn has_objects(&self, org: u64) -> bool {
        match self.tree() {
            Ok(t) => t.range(object_keys(org, 0)).next().is_some(),
            Err(_) => true,
        }
    }

    /// Walks objects with num >= `from`, in num order.
    pub fn scan_objects_from(&self, org: u64, from: u64) -> impl Iterator<Item = Result<Object>> + Send + 'static {
        // A failed write-behind is the walk's one item.
        let (settled, failed) = match self.inner.behind.settle() {
            Ok(()) => (Some(self.inner.kv.range(object_keys(org, from))), None),
            Err(e) => (None, Some(Err(e))),
        };
        failed
            .into_iter()
            .chain(settled.into_iter().flatten().map(|kv| codec::decode(&kv?.1, "object")))
    }

    /// Writes objects atomically: every write or none. Checks that each `before` is still the
    /// stored version, keeps the id / externalId / email lookups and the per-klass counts, and
    /// appends one change record per logged write. Returns one outcome per write, in order.
    ///
    /// # Errors
    /// [`StorageError::Stale`] when an object changed since it was read, [`StorageError::Duplicate`]
    /// when a unique value is taken (a create's id by a concurrent write, say).
    pub fn write_objects(&self, org: u64, writes: &mut [ObjectWrite], at: Millis) -> Result<Vec<WriteOutcome>> {
        self.write_objects_with(org, writes, at, &[])
    }

    /// [`Store::write_objects`], with document operations applied in the same atomic batch
    /// (an import's progress marker commits with its batch).
    pub fn write_objects_with(
        &self,
        org: u64,
        writes: &mut [ObjectWrite],
        at: Millis,
        extra: &[Op],
    ) -> Result<Vec<WriteOutcome>> {
        let lock = self.org_lock(org);
        let mut counters = lock.lock().expect("org lock");
        let (outcomes, tx, after) = self.build_object_writes(org, &mut counters, writes, at, extra, &|_| false)?;
        tx.commit()?;
        after.apply_to(&mut counters);
        Ok(outcomes)
    }

    /// [`Store::write_objects_with`], checked and built now but put in the tree by
    /// [`PreparedWrite::apply`], on another thread while this one goes on: an import validates its
    /// next batch while the previous one is applied. Until it is applied, every other access to
    /// the store waits for it, so nothing can observe the tree without it.
    ///
    /// `absent` names unique keys the caller knows the tree does not hold (an import into an
    /// empty org knows every key it wrote): they are checked against this write alone, without
    /// reading the tree, which would wait for the write before.
    ///
    /// # Errors
    /// As [`Store::write_objects`]; then nothing is prepared.
    pub fn prepare_objects(
        &self,
        org: u64,
        writes: &mut [ObjectWrite],
        at: Millis,
        extra: &[Op],
        absent: &dyn Fn(&UniqueKey) -> bool,
    ) -> Result<(Vec<WriteOutcome>, PreparedWrite)> {
        self.inner.behind.check()?;
        let lock = self.org_lock(org);
        let mut counters = lock.lock().expect("org lock");
        let (outcomes, tx, after) = self.build_object_writes(org, &mut counters, writes, at, extra, absent)?;
        after.apply_to(&mut counters);
        self.inner.behind.add();
        let prepared = PreparedWrite {
            store: self.clone(),
            overlay: tx.overlay,
            pending: true,
        };
        Ok((outcomes, prepared))
    }

    /// Whether writes prepared by [`Store::prepare_objects`] wait to be applied.
    pub fn writes_behind(&self) -> bool {
        self.inner.behind.count.load(Ordering::Acquire) > 0
    }

    /// Checks and builds an object write under the org's lock; the counters move once it lands.
    fn build_object_writes<'s>(
        &'s self,
        org: u64,
        counters: &mut MutexGuard<'_, OrgCounters>,
        writes: &mut [ObjectWrite],
        at: Millis,
        extra: &[Op],
        absent: &dyn Fn(&UniqueKey) -> bool,
    ) -> Result<(Vec<WriteOutcome>, Tx<'s>, CountersAfter)> {
        self.load_counters(org, counters)?;
        let (start_num, start_seq) = (counters.next_num, counters.next_seq);
        // Creates without a num get the next ones.
        let mut next_num = start_num;
        for w in writes.iter_mut() {
            if let (None, Some(after)) = (&w.before, &mut w.after) {
                if after.num == 0 {
                    after.num = next_num;
                    next_num += 1;
                }
            }
        }
        let mut tx = Tx::new(self, 3 * writes.len() + extra.len() + 8);
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut tally = Tally {
            seq: start_seq,
            counts: HashMap::new(),
            log: LogBlocks::new(org),
        };
        for w in writes.iter() {
            outcomes.push(write_one(&mut tx, org, w, at, &mut tally, absent)?);
        }
        let Tally { seq, counts, log } = tally;
        for (key, block) in log.finish() {
            tx.insert(key, block);
        }
        let mut klass_counts = Vec::with_capacity(counts.len());
        for (klass, delta) in counts {
            let key = klass_count_key(org, &klass);
            let n = match counters.klass_counts.get(&klass) {
                Some(&n) => n,
                None => tx.get(&key)?.and_then(|v| keys::read_u64(&v)).unwrap_or(0),
            };
            let n = (n as i64 + delta).max(0) as u64;
            tx.insert(key, keys::u64_value(n));
            klass_counts.push((klass, n));
        }
        tx.insert(
            keys::org_key(org, okind::COUNTER, COUNTER_NUM),
            keys::u64_value(next_num),
        );
        tx.insert(keys::org_key(org, okind::COUNTER, COUNTER_SEQ), keys::u64_value(seq));
        apply_ops(&mut tx, org, extra)?;
        let after = CountersAfter {
            next_num,
            // Past the last logged write's seq (start_seq when none was logged).
            next_seq: seq,
            klass_counts,
        };
        Ok((outcomes, tx, after))
    }

    /// Reserves `n` nums for creates the caller numbers itself (imports); returns the first.
    ///
    /// Only in memory: a num reaches the tree only inside an object write, which also stores
    /// the counter past it, so after a restart no stored num can be handed out again.
    pub fn reserve_nums(&self, org: u64, n: u64) -> Result<u64> {
        let lock = self.org_lock(org);
        let mut counters = lock.lock().expect("org lock");
        self.load_counters(org, &mut counters)?;
        let first = counters.next_num;
        counters.next_num = first + n;
        Ok(first)
    }

    // ---- change log ----

    /// The last sequence number written to the org's log (0 when none).
    pub fn last_seq(&self, org: u64) -> Result<u64> {
        let lock = self.org_lock(org);
        let mut counters = lock.lock().expect("org lock");
        self.load_counters(org, &mut counters)?;
        Ok(counters.next_seq - 1)
    }

    /// Up to `limit` log records with seq > `after`, in order.
    pub fn log_after(&self, org: u64, after: u64, limit: usize) -> Result<Vec<ChangeRecord>> {
        let from = after.saturating_add(1);
        let mut out: Vec<ChangeRecord> = Vec::new();
        // Records kept one per key by earlier versions come first: every block is newer.
        let start = keys::org_num_key(org, okind::LOG, from);
        let end = keys::org_key(org, okind::LOG + 1, &[]);
        let tree = self.tree()?;
        for kv in tree.range(start..end).take(limit) {
            out.push(codec::decode(&kv?.1, "change record")?);
        }
        // The block holding `from` is the last one starting at or before it.
        let (blocks, blocks_end) = log_block_bounds(org);
        let probe = keys::log_block_key(org, from, u64::MAX);
        let start = match tree.range(blocks.clone()..=probe).next_back() {
            Some(kv) => kv?.0.to_vec(),
            None => blocks,
        };
        for kv in tree.range(start..blocks_end) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv?;
            if keys::log_block_range(&k).is_some_and(|(_, last)| last < from) {
                continue;
            }
            let records: Vec<ChangeRecord> = codec::decode(&v, "change-log block")?;
            let room = limit - out.len();
            out.extend(records.into_iter().filter(|r| r.seq >= from).take(room));
        }
        Ok(out)
    }

    /// The oldest log record still kept (0 when the log is empty).
    pub fn first_seq(&self, org: u64) -> Result<u64> {
        let start = keys::org_num_key(org, okind::LOG, 0);
        let end = keys::org_key(org, okind::LOG + 1, &[]);
        let tree = self.tree()?;
        if let Some(kv) = tree.range(start..end).next() {
            return Ok(keys::trailing_u64(&kv?.0).unwrap_or(0));
        }
        let (blocks, blocks_end) = log_block_bounds(org);
        Ok(match tree.range(blocks..blocks_end).next() {
            Some(kv) => keys::log_block_range(&kv?.0).map_or(0, |(first, _)| first),
            None => 0,
        })
    }

    /// A consumer's cursor: the last seq it has durably processed.
    pub fn cursor(&self, org: u64, consumer: &str) -> Result<u64> {
        Ok(self
            .get_u64(keys::org_key(org, okind::CURSOR, consumer.as_bytes()))?
            .unwrap_or(0))
    }

    /// Moves a consumer's cursor.
    pub fn set_cursor(&self, org: u64, consumer: &str, seq: u64) -> Result<()> {
        self.tree()?.insert(
            keys::org_key(org, okind::CURSOR, consumer.as_bytes()),
            &keys::u64_value(seq),
        )?;
        Ok(())
    }

    /// Removes log records with seq <= `upto`; returns how many. A block that also holds later
    /// records stays whole until they are trimmed too.
    pub fn trim_log(&self, org: u64, upto: u64) -> Result<usize> {
        let start = keys::org_num_key(org, okind::LOG, 0);
        let end = keys::org_num_key(org, okind::LOG, upto.saturating_add(1));
        let mut batch = sled::Batch::default();
        let mut n = 0;
        let tree = self.tree()?;
        for k in tree.range(start..end).keys() {
            batch.remove(k?);
            n += 1;
        }
        let (blocks, blocks_end) = log_block_bounds(org);
        for k in tree.range(blocks..blocks_end).keys() {
            let k = k?;
            match keys::log_block_range(&k) {
                Some((first, last)) if last <= upto => {
                    n += (last - first + 1) as usize;
                    batch.remove(k);
                }
                _ => break,
            }
        }
        // A write waits again for writes prepared meanwhile.
        self.tree()?.apply_batch(batch)?;
        Ok(n)
    }

    // ---- helpers ----

    /// The tree, once every prepared write is in it.
    fn tree(&self) -> Result<&sled::Tree> {
        self.inner.behind.settle()?;
        Ok(&self.inner.kv)
    }

    fn org_lock(&self, org: u64) -> Arc<Mutex<OrgCounters>> {
        self.inner
            .orgs
            .lock()
            .expect("orgs lock")
            .entry(org)
            .or_default()
            .clone()
    }

    fn load_counters(&self, org: u64, c: &mut MutexGuard<'_, OrgCounters>) -> Result<()> {
        if !c.loaded {
            c.next_num = self
                .get_u64(keys::org_key(org, okind::COUNTER, COUNTER_NUM))?
                .unwrap_or(1);
            c.next_seq = self
                .get_u64(keys::org_key(org, okind::COUNTER, COUNTER_SEQ))?
                .unwrap_or(1);
            c.loaded = true;
        }
        Ok(())
    }

    fn get_u64_prefix(&self, key: Vec<u8>) -> Result<Option<u64>> {
        Ok(self.tree()?.get(key)?.and_then(|v| keys::read_u64(v.get(..8)?)))
    }

    fn get_u64(&self, key: Vec<u8>) -> Result<Option<u64>> {
        Ok(self.tree()?.get(key)?.and_then(|v| keys::read_u64(&v)))
    }

    fn get_decoded<T: DeserializeOwned>(&self, key: Vec<u8>, what: &'static str) -> Result<Option<T>> {
        self.tree()?.get(key)?.map(|v| codec::decode(&v, what)).transpose()
    }
}

/// The key range of an org's change-log blocks.
fn log_block_bounds(org: u64) -> (Vec<u8>, Vec<u8>) {
    (
        keys::org_key(org, okind::LOG_BLOCK, &[]),
        keys::org_key(org, okind::LOG_BLOCK + 1, &[]),
    )
}

/// Uncompressed bytes after which a change-log block is closed. sled's cost is per key (a leaf
/// splits past 16 entries, and every insert copies its leaf), so the records of one write share
/// keys; small blocks keep a leaf of them far below the size sled writes out as a separate blob.
const LOG_BLOCK_BYTES: usize = 8 << 10;

/// The change records of one write, packed into blocks of consecutive seqs.
struct LogBlocks {
    org: u64,
    writer: codec::SeqWriter,
    first: u64,
    last: u64,
    blocks: Vec<(Vec<u8>, Vec<u8>)>,
}

impl LogBlocks {
    fn new(org: u64) -> LogBlocks {
        LogBlocks {
            org,
            writer: codec::SeqWriter::default(),
            first: 0,
            last: 0,
            blocks: Vec::new(),
        }
    }

    fn push(&mut self, record: &RecordView<'_>) {
        if self.writer.is_empty() {
            self.first = record.seq;
        }
        self.last = record.seq;
        self.writer.push(record);
        if self.writer.bytes() >= LOG_BLOCK_BYTES {
            self.close();
        }
    }

    fn close(&mut self) {
        let block = self.writer.finish();
        self.blocks
            .push((keys::log_block_key(self.org, self.first, self.last), block));
    }

    /// The (key, value) of every block.
    fn finish(mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        if !self.writer.is_empty() {
            self.close();
        }
        self.blocks
    }
}

/// A [`ChangeRecord`] borrowing the write it describes: the same fields in the same order, so it
/// encodes to the same positional bytes without copying both versions of the object.
#[derive(Serialize)]
struct RecordView<'a> {
    seq: u64,
    op: ChangeOp,
    klass: &'a str,
    num: u64,
    id: &'a str,
    at: Millis,
    before: Option<&'a Object>,
    after: Option<&'a Object>,
    changed: &'a [String],
    depth: u8,
}

/// The counters once an object write lands.
struct CountersAfter {
    next_num: u64,
    next_seq: u64,
    klass_counts: Vec<(String, u64)>,
}

impl CountersAfter {
    fn apply_to(self, c: &mut OrgCounters) {
        c.next_num = self.next_num;
        c.next_seq = self.next_seq;
        c.klass_counts.extend(self.klass_counts);
    }
}

/// The keys of an org's objects with num >= `from`.
fn object_keys(org: u64, from: u64) -> std::ops::Range<Vec<u8>> {
    keys::org_num_key(org, okind::OBJECT, from)..keys::org_key(org, okind::OBJECT + 1, &[])
}

fn klass_count_key(org: u64, klass: &str) -> Vec<u8> {
    keys::org_key(org, okind::COUNTER, format!("klass:{klass}").as_bytes())
}

fn unique_key_bytes(org: u64, key: &UniqueKey) -> Vec<u8> {
    match key {
        UniqueKey::Id(id) => keys::org_key(org, okind::ID, id.as_bytes()),
        UniqueKey::External { klass, external_id } => keys::external_id_key(org, klass, external_id),
        UniqueKey::Email(e) => keys::org_key(org, okind::EMAIL, e.as_bytes()),
    }
}

fn unique_what(key: &UniqueKey) -> (&'static str, String) {
    match key {
        UniqueKey::Id(id) => ("id", id.clone()),
        UniqueKey::External { external_id, .. } => ("externalId", external_id.clone()),
        UniqueKey::Email(e) => ("email", e.clone()),
    }
}

/// What the writes of one batch add up to: the next seq, the change of each klass count, and
/// the change-log blocks.
struct Tally {
    seq: u64,
    counts: HashMap<String, i64>,
    log: LogBlocks,
}

fn write_one(
    tx: &mut Tx<'_>,
    org: u64,
    w: &ObjectWrite,
    at: Millis,
    tally: &mut Tally,
    absent: &dyn Fn(&UniqueKey) -> bool,
) -> Result<WriteOutcome> {
    let num = match (&w.before, &w.after) {
        (Some(b), _) => b.num,
        (None, Some(a)) => a.num,
        (None, None) => {
            return Err(StorageError::Missing {
                what: "object",
                id: String::new(),
            })
        }
    };
    let obj_key = keys::org_num_key(org, okind::OBJECT, num);
    // A create's key is new: nums are handed out once (under the org lock, or by `reserve_nums`)
    // and never reused, so only a change of an existing object reads the stored revision.
    if let Some(b) = &w.before {
        match tx.get(&obj_key)? {
            Some(cur) => {
                let cur: Object = codec::decode(&cur, "object")?;
                if cur.rev != b.rev {
                    return Err(StorageError::Stale);
                }
            }
            None => {
                return Err(StorageError::Missing {
                    what: "object",
                    id: b.id.clone(),
                })
            }
        }
    }
    let before_keys = w.before.as_ref().map(Object::unique_keys).unwrap_or_default();
    let after_keys = w.after.as_ref().map(Object::unique_keys).unwrap_or_default();
    for k in &before_keys {
        if !after_keys.contains(k) {
            tx.remove(unique_key_bytes(org, k));
        }
    }
    for k in &after_keys {
        if !before_keys.contains(k) {
            let kb = unique_key_bytes(org, k);
            let existing = if absent(k) { tx.get_written(&kb) } else { tx.get(&kb)? };
            if let Some(existing) = existing {
                if existing.get(..8).and_then(keys::read_u64) != Some(num) {
                    let (what, value) = unique_what(k);
                    return Err(StorageError::Duplicate { what, value });
                }
            }
            let mut value = keys::u64_value(num).to_vec();
            if let (UniqueKey::Id(_), Some(a)) = (k, &w.after) {
                value.extend_from_slice(a.klass.as_bytes());
            }
            tx.insert(kb, value);
        }
    }
    let op = match (&w.before, &w.after) {
        (None, Some(a)) => {
            tx.insert(obj_key, codec::encode_positional(a));
            *tally.counts.entry(a.klass.clone()).or_insert(0) += 1;
            ChangeOp::Created
        }
        (Some(b), Some(a)) => {
            tx.insert(obj_key, codec::encode_positional(a));
            // An import that deletes an id and creates it again as another klass in one batch
            // writes the replacement over the old object.
            if b.klass != a.klass {
                *tally.counts.entry(b.klass.clone()).or_insert(0) -= 1;
                *tally.counts.entry(a.klass.clone()).or_insert(0) += 1;
            }
            ChangeOp::Updated
        }
        (Some(b), None) => {
            tx.remove(obj_key);
            *tally.counts.entry(b.klass.clone()).or_insert(0) -= 1;
            ChangeOp::Deleted
        }
        (None, None) => unreachable!("checked above"),
    };
    let mut out = WriteOutcome { num, seq: None };
    if w.log {
        let obj = w.after.as_ref().or(w.before.as_ref()).expect("one side present");
        tally.log.push(&RecordView {
            seq: tally.seq,
            op,
            klass: &obj.klass,
            num,
            id: &obj.id,
            at,
            before: w.before.as_ref(),
            after: w.after.as_ref(),
            changed: &w.changed,
            depth: w.depth,
        });
        out.seq = Some(tally.seq);
        tally.seq += 1;
    }
    Ok(out)
}

fn apply_ops(tx: &mut Tx<'_>, org: u64, ops: &[Op]) -> Result<()> {
    for op in ops {
        match op {
            Op::PutDoc {
                coll,
                id,
                value,
                expect,
            } => {
                let key = keys::doc_key(org, *coll as u8, id);
                match expect {
                    Expect::Any => {}
                    Expect::Absent => {
                        if tx.get(&key)?.is_some() {
                            return Err(StorageError::Duplicate {
                                what: coll_name(*coll),
                                value: id.clone(),
                            });
                        }
                    }
                    Expect::Present => {
                        if tx.get(&key)?.is_none() {
                            return Err(StorageError::Missing {
                                what: coll_name(*coll),
                                id: id.clone(),
                            });
                        }
                    }
                }
                tx.insert(key, value.clone());
            }
            Op::DeleteDoc { coll, id } => {
                tx.remove(keys::doc_key(org, *coll as u8, id));
            }
            Op::PutApiKey(k) => {
                tx.insert(keys::global_key(global::API_KEY, &k.hash), codec::encode(k));
            }
            Op::DeleteApiKey(hash) => {
                tx.remove(keys::global_key(global::API_KEY, hash));
            }
            Op::PutCursor(consumer, seq) => {
                tx.insert(
                    keys::org_key(org, okind::CURSOR, consumer.as_bytes()),
                    keys::u64_value(*seq),
                );
            }
        }
    }
    Ok(())
}

fn coll_name(c: Collection) -> &'static str {
    match c {
        Collection::Klass => "klass",
        Collection::User => "user",
        Collection::Team => "team",
        Collection::UserKey => "key",
        Collection::SavedSearch => "saved search",
        Collection::Rule => "business rule",
        Collection::Workflow => "workflow",
        Collection::Run => "workflow run",
        Collection::Hook => "hook",
        Collection::State => "state",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn obj(id: &str, email: Option<&str>) -> Object {
        let mut fields = BTreeMap::new();
        if let Some(e) = email {
            fields.insert(
                "emails".into(),
                crate::model::Value::List(vec![crate::model::Value::Str(e.into())]),
            );
        }
        Object {
            id: id.into(),
            klass: "customer".into(),
            fields,
            created_at: 1,
            updated_at: 1,
            rev: 1,
            ..Object::empty()
        }
    }

    fn create(o: Object) -> ObjectWrite {
        ObjectWrite {
            before: None,
            after: Some(o),
            log: true,
            depth: 0,
            changed: vec![],
        }
    }

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        (dir, store)
    }

    #[test]
    fn creates_assign_nums_lookups_and_log_records() {
        let (_d, s) = temp_store();
        let out = s
            .write_objects(1, &mut [create(obj("a", Some("A@x.io"))), create(obj("b", None))], 5)
            .unwrap();
        assert_eq!(out[0], WriteOutcome { num: 1, seq: Some(1) });
        assert_eq!(out[1], WriteOutcome { num: 2, seq: Some(2) });
        assert_eq!(s.num_by_id(1, "b").unwrap(), Some(2));
        assert_eq!(s.num_by_email(1, "a@X.IO").unwrap(), Some(1));
        assert_eq!(s.klass_count(1, "customer").unwrap(), 2);
        let log = s.log_after(1, 0, 10).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].id, "b");
        assert_eq!(s.last_seq(1).unwrap(), 2);
    }

    #[test]
    fn a_duplicate_in_a_batch_writes_nothing() {
        let (_d, s) = temp_store();
        s.write_objects(1, &mut [create(obj("a", Some("a@x.io")))], 5).unwrap();
        let err = s
            .write_objects(1, &mut [create(obj("b", None)), create(obj("c", Some("A@x.io")))], 5)
            .unwrap_err();
        assert!(matches!(err, StorageError::Duplicate { what: "email", .. }));
        assert_eq!(s.num_by_id(1, "b").unwrap(), None);
        assert_eq!(s.last_seq(1).unwrap(), 1);
        // The next create gets the next num and seq, without gaps.
        let out = s.write_objects(1, &mut [create(obj("d", None))], 5).unwrap();
        assert_eq!(out[0], WriteOutcome { num: 2, seq: Some(2) });
    }

    #[test]
    fn stale_updates_are_refused_and_deletes_free_lookups() {
        let (_d, s) = temp_store();
        s.write_objects(1, &mut [create(obj("a", Some("a@x.io")))], 5).unwrap();
        let v1 = s.object(1, 1).unwrap().unwrap();
        let mut v2 = v1.clone();
        v2.rev = 2;
        s.write_objects(
            1,
            &mut [ObjectWrite {
                before: Some(v1.clone()),
                after: Some(v2.clone()),
                log: true,
                depth: 0,
                changed: vec![],
            }],
            6,
        )
        .unwrap();
        let err = s
            .write_objects(
                1,
                &mut [ObjectWrite {
                    before: Some(v1),
                    after: None,
                    log: true,
                    depth: 0,
                    changed: vec![],
                }],
                7,
            )
            .unwrap_err();
        assert!(matches!(err, StorageError::Stale));
        s.write_objects(
            1,
            &mut [ObjectWrite {
                before: Some(v2),
                after: None,
                log: true,
                depth: 0,
                changed: vec![],
            }],
            7,
        )
        .unwrap();
        assert_eq!(s.num_by_email(1, "a@x.io").unwrap(), None);
        assert_eq!(s.num_by_id(1, "a").unwrap(), None);
        assert_eq!(s.klass_count(1, "customer").unwrap(), 0);
        assert_eq!(s.log_after(1, 2, 10).unwrap()[0].op, ChangeOp::Deleted);
    }

    #[test]
    fn orgs_never_see_each_others_objects() {
        let (_d, s) = temp_store();
        s.write_objects(1, &mut [create(obj("a", None))], 5).unwrap();
        s.write_objects(2, &mut [create(obj("a", None))], 5).unwrap();
        assert_eq!(s.scan_objects(1).count(), 1);
        assert_eq!(s.scan_objects(2).count(), 1);
        assert_eq!(s.num_by_id(3, "a").unwrap(), None);
    }

    #[test]
    fn log_trimming_keeps_later_records() {
        let (_d, s) = temp_store();
        for i in 0..5 {
            s.write_objects(1, &mut [create(obj(&format!("o{i}"), None))], 5)
                .unwrap();
        }
        assert_eq!(s.trim_log(1, 3).unwrap(), 3);
        assert_eq!(s.first_seq(1).unwrap(), 4);
        assert_eq!(s.log_after(1, 0, 10).unwrap().len(), 2);
    }

    fn seqs(records: &[ChangeRecord]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    fn block_keys(s: &Store, org: u64) -> Vec<(u64, u64)> {
        let (start, end) = log_block_bounds(org);
        s.inner
            .kv
            .range(start..end)
            .keys()
            .map(|k| keys::log_block_range(&k.unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn one_write_logs_in_blocks_that_read_back_from_any_seq_and_trim_whole() {
        let (_d, s) = temp_store();
        let mut writes: Vec<ObjectWrite> = (0..300)
            .map(|i| {
                let mut o = obj(&format!("o{i}"), None);
                o.custom
                    .insert("note".into(), crate::model::Value::Str(format!("{i} ").repeat(20)));
                create(o)
            })
            .collect();
        s.write_objects(1, &mut writes, 5).unwrap();
        let blocks = block_keys(&s, 1);
        assert!(blocks.len() > 2, "{blocks:?}");
        assert_eq!(blocks.first().unwrap().0, 1);
        assert_eq!(blocks.last().unwrap().1, 300);
        assert!(
            blocks.windows(2).all(|w| w[1].0 == w[0].1 + 1),
            "consecutive: {blocks:?}"
        );
        let (_, first_end) = blocks[0];
        for after in [0, 1, first_end - 1, first_end, first_end + 1, 150, 299, 300, 400] {
            let got = s.log_after(1, after, 1000).unwrap();
            assert_eq!(seqs(&got), ((after + 1)..=300).collect::<Vec<_>>(), "after {after}");
        }
        let page = s.log_after(1, first_end - 2, 5).unwrap();
        assert_eq!(seqs(&page), ((first_end - 1)..first_end + 4).collect::<Vec<_>>());
        assert_eq!(page[0].id, format!("o{}", first_end - 2));
        assert_eq!(page[0].after.as_ref().unwrap().id, page[0].id);

        // A block with records past `upto` stays whole.
        let removed = s.trim_log(1, first_end + 1).unwrap();
        assert_eq!(removed as u64, first_end);
        assert_eq!(s.first_seq(1).unwrap(), first_end + 1);
        assert_eq!(
            seqs(&s.log_after(1, first_end + 1, 3).unwrap()),
            vec![first_end + 2, first_end + 3, first_end + 4]
        );
        assert_eq!(s.trim_log(1, 300).unwrap() as u64, 300 - first_end);
        assert_eq!(s.first_seq(1).unwrap(), 0);
        assert!(s.log_after(1, 0, 10).unwrap().is_empty());
        assert_eq!(s.last_seq(1).unwrap(), 300);
    }

    #[test]
    fn records_kept_one_per_key_by_earlier_versions_still_read_before_the_blocks() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            for seq in 1..=3 {
                let o = obj(&format!("old{seq}"), None);
                let rec = ChangeRecord {
                    seq,
                    op: ChangeOp::Created,
                    klass: o.klass.clone(),
                    num: seq,
                    id: o.id.clone(),
                    at: 5,
                    before: None,
                    after: Some(o),
                    changed: vec![],
                    depth: 0,
                };
                s.inner
                    .kv
                    .insert(keys::org_num_key(1, okind::LOG, seq), codec::encode_positional(&rec))
                    .unwrap();
            }
            s.inner
                .kv
                .insert(keys::org_key(1, okind::COUNTER, COUNTER_SEQ), &keys::u64_value(4))
                .unwrap();
            s.inner
                .kv
                .insert(keys::org_key(1, okind::COUNTER, COUNTER_NUM), &keys::u64_value(4))
                .unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        s.write_objects(1, &mut [create(obj("new4", None)), create(obj("new5", None))], 6)
            .unwrap();
        assert_eq!(seqs(&s.log_after(1, 0, 10).unwrap()), vec![1, 2, 3, 4, 5]);
        assert_eq!(seqs(&s.log_after(1, 2, 2).unwrap()), vec![3, 4]);
        assert_eq!(s.log_after(1, 3, 10).unwrap()[0].id, "new4");
        assert_eq!(s.first_seq(1).unwrap(), 1);
        assert_eq!(
            s.trim_log(1, 4).unwrap(),
            3,
            "old records go; the block holding 5 stays"
        );
        assert_eq!(s.first_seq(1).unwrap(), 4);
        assert_eq!(seqs(&s.log_after(1, 0, 10).unwrap()), vec![4, 5]);
    }

    #[test]
    fn a_borrowed_record_encodes_like_the_change_record_it_reads_as() {
        let before = obj("a", Some("a@x.io"));
        let mut after = before.clone();
        after.rev = 2;
        let changed = vec!["fields.emails".to_string()];
        let view = RecordView {
            seq: 9,
            op: ChangeOp::Updated,
            klass: "customer",
            num: 3,
            id: "a",
            at: 77,
            before: Some(&before),
            after: Some(&after),
            changed: &changed,
            depth: 2,
        };
        let owned = ChangeRecord {
            seq: 9,
            op: ChangeOp::Updated,
            klass: "customer".into(),
            num: 3,
            id: "a".into(),
            at: 77,
            before: Some(before.clone()),
            after: Some(after.clone()),
            changed: changed.clone(),
            depth: 2,
        };
        assert_eq!(codec::encode_positional(&view), codec::encode_positional(&owned));
    }

    #[test]
    fn counters_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            s.write_objects(1, &mut [create(obj("a", None))], 5).unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let out = s.write_objects(1, &mut [create(obj("b", None))], 5).unwrap();
        assert_eq!(out[0], WriteOutcome { num: 2, seq: Some(2) });
    }

    #[test]
    fn a_prepared_write_applied_on_another_thread_is_seen_by_every_later_access() {
        let (_d, s) = temp_store();
        s.write_objects(1, &mut [create(obj("a", None))], 5).unwrap();
        let (out, prepared) = s
            .prepare_objects(
                1,
                &mut [create(obj("b", Some("b@x.io"))), create(obj("c", None))],
                5,
                &[],
                &|_| true,
            )
            .unwrap();
        assert_eq!(out[0], WriteOutcome { num: 2, seq: Some(2) });
        assert!(s.writes_behind());
        let applier = std::thread::spawn(move || {
            // Late on purpose: the reads below must wait for it rather than miss the write.
            std::thread::sleep(std::time::Duration::from_millis(200));
            prepared.apply()
        });
        assert_eq!(s.num_by_id(1, "c").unwrap(), Some(3));
        assert!(!s.writes_behind());
        applier.join().unwrap().unwrap();
        assert_eq!(s.num_by_email(1, "b@x.io").unwrap(), Some(2));
        assert_eq!(s.klass_count(1, "customer").unwrap(), 3);
        assert_eq!(s.scan_objects(1).count(), 3);
        // The counters moved on when the write was prepared: the next write follows it.
        let out = s.write_objects(1, &mut [create(obj("d", None))], 5).unwrap();
        assert_eq!(out[0], WriteOutcome { num: 4, seq: Some(4) });
        assert_eq!(s.klass_count(1, "customer").unwrap(), 4);
        assert_eq!(seqs(&s.log_after(1, 0, 10).unwrap()), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_replacement_of_another_klass_moves_the_klass_counts() {
        let (_d, s) = temp_store();
        s.write_objects(1, &mut [create(obj("a", None))], 5).unwrap();
        let before = s.object(1, 1).unwrap().unwrap();
        let mut after = obj("a", None);
        after.klass = "order".into();
        after.num = before.num;
        let mut w = [ObjectWrite {
            before: Some(before),
            after: Some(after),
            log: false,
            depth: 0,
            changed: vec![],
        }];
        s.write_objects(1, &mut w, 5).unwrap();
        assert_eq!(s.klass_count(1, "customer").unwrap(), 0);
        assert_eq!(s.klass_count(1, "order").unwrap(), 1);
    }

    #[test]
    fn keys_known_absent_are_still_checked_within_the_write() {
        let (_d, s) = temp_store();
        let err = s
            .prepare_objects(
                1,
                &mut [create(obj("a", Some("x@x.io"))), create(obj("b", Some("X@x.io")))],
                5,
                &[],
                &|_| true,
            )
            .unwrap_err();
        assert!(matches!(err, StorageError::Duplicate { what: "email", .. }));
        // Nothing was prepared, so nothing waits and nothing fails.
        assert!(!s.writes_behind());
        assert_eq!(s.num_by_id(1, "a").unwrap(), None);
        assert_eq!(s.klass_count(1, "customer").unwrap(), 0);
        // A key not declared absent is read from the tree.
        s.write_objects(1, &mut [create(obj("a", Some("x@x.io")))], 5).unwrap();
        let err = s
            .prepare_objects(1, &mut [create(obj("b", Some("x@x.io")))], 5, &[], &|_| false)
            .unwrap_err();
        assert!(matches!(err, StorageError::Duplicate { what: "email", .. }));
    }

    #[test]
    fn a_prepared_write_dropped_unapplied_fails_every_later_access() {
        let (_d, s) = temp_store();
        let (_, prepared) = s
            .prepare_objects(1, &mut [create(obj("a", None))], 5, &[], &|_| true)
            .unwrap();
        drop(prepared);
        assert!(matches!(s.num_by_id(1, "a"), Err(StorageError::WriteBehind)));
        assert!(matches!(
            s.write_objects(1, &mut [create(obj("b", None))], 5),
            Err(StorageError::WriteBehind)
        ));
        assert!(matches!(s.scan_objects(1).next(), Some(Err(StorageError::WriteBehind))));
        assert!(s.flush().is_err());
    }

    #[test]
    fn reserved_nums_are_not_stored_but_a_stored_num_is_never_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            assert_eq!(s.reserve_nums(1, 10).unwrap(), 1);
            let mut o = obj("a", None);
            o.num = 7;
            s.write_objects(1, &mut [create(o)], 5).unwrap();
            // Reserved after the write, never used: forgotten on restart.
            assert_eq!(s.reserve_nums(1, 10).unwrap(), 11);
            s.flush().unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let out = s.write_objects(1, &mut [create(obj("b", None))], 5).unwrap();
        assert_eq!(out[0].num, 11);
        assert_eq!(s.object(1, 7).unwrap().unwrap().id, "a");
    }

    #[tokio::test]
    async fn durable_returns_after_a_flush() {
        let (_d, s) = temp_store();
        s.write_objects(1, &mut [create(obj("a", None))], 5).unwrap();
        let waits: Vec<_> = (0..8).map(|_| s.durable()).collect();
        for w in futures::future::join_all(waits).await {
            w.unwrap();
        }
    }
}
