//! The indexer of one org: tails the change log from the index's commit payload, applies records
//! in batches, commits with the last applied sequence as payload, reloads the reader and publishes
//! the indexed watermark. A write asked with `refresh=wait_for` marks itself urgent so the next
//! commit happens at once; otherwise commits happen at most every `commitIntervalMs`.
//!
//! On start it replays whatever the index missed; when the log no longer reaches back that far
//! (the index directory was lost), it rebuilds the index from the store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::error::{Result, ServiceError};
use super::App;
use crate::index::{mapper, IndexOp, OrgIndex};
use crate::model::{ChangeRecord, Org, OrgSchema};

/// Change-log consumers whose cursors bound log trimming.
pub const LOG_CONSUMERS: &[&str] = &["index", "automation"];

/// Handle on an org's indexer.
#[derive(Clone)]
pub struct IndexerHandle {
    notify: Arc<Notify>,
    watermark: watch::Receiver<u64>,
    urgent: Arc<AtomicUsize>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl IndexerHandle {
    /// A handle with no indexer behind it (offline commands index directly).
    pub fn idle(committed: u64) -> IndexerHandle {
        let (_, watermark) = watch::channel(committed);
        IndexerHandle {
            notify: Arc::new(Notify::new()),
            watermark,
            urgent: Arc::new(AtomicUsize::new(0)),
            last_error: Arc::new(Mutex::new(None)),
        }
    }

    /// Tells the indexer the log has grown.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// The sequence number the index has committed.
    pub fn indexed(&self) -> u64 {
        *self.watermark.borrow()
    }

    /// The last indexing error, if the indexer is failing.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("error lock").clone()
    }

    /// Waits until the index has committed `seq` (read-your-writes).
    ///
    /// # Errors
    /// 503 when the index does not catch up within `timeout`.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> Result<()> {
        if self.indexed() >= seq {
            return Ok(());
        }
        self.urgent.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
        let mut rx = self.watermark.clone();
        let r = tokio::time::timeout(timeout, rx.wait_for(|w| *w >= seq)).await;
        self.urgent.fetch_sub(1, Ordering::SeqCst);
        match r {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ServiceError::Unavailable(format!(
                "the write is stored but not yet searchable{}",
                self.last_error()
                    .map(|e| format!(" (indexer: {e})"))
                    .unwrap_or_default()
            ))),
        }
    }
}

/// Starts the indexer task of an org.
pub(crate) fn spawn(
    app: App,
    org: Org,
    index: Arc<OrgIndex>,
    shutdown: watch::Receiver<bool>,
) -> (IndexerHandle, tokio::task::JoinHandle<()>) {
    let (wm_tx, wm_rx) = watch::channel(index.committed_seq());
    let handle = IndexerHandle {
        notify: Arc::new(Notify::new()),
        watermark: wm_rx,
        urgent: Arc::new(AtomicUsize::new(0)),
        last_error: Arc::new(Mutex::new(None)),
    };
    let h = handle.clone();
    let task = tokio::spawn(async move {
        run(app, org, index, h, wm_tx, shutdown).await;
    });
    (handle, task)
}

async fn run(
    app: App,
    org: Org,
    index: Arc<OrgIndex>,
    h: IndexerHandle,
    wm: watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = app.options().index.clone();
    let interval = Duration::from_millis(settings.commit_interval_ms);
    let idle = Duration::from_secs(settings.idle_close_secs);
    let mut applied = index.committed_seq();
    match recover(&app, &org, &index).await {
        Ok(seq) => applied = seq,
        Err(e) => {
            tracing::error!(org = %org.id, error = %e, "index recovery failed");
            *h.last_error.lock().expect("error lock") = Some(e.to_string());
        }
    }
    wm.send_replace(applied);
    let mut dirty_since: Option<Instant> = None;
    let mut last_activity = Instant::now();
    loop {
        let stopping = *shutdown.borrow();
        let (app2, org2, index2, from) = (app.clone(), org.clone(), index.clone(), applied);
        let batch = settings.batch_max_ops;
        let n = match blocking(move || apply_batch(&app2, &org2, &index2, from, batch)).await {
            Ok((new_applied, n)) => {
                if n > 0 {
                    applied = new_applied;
                    dirty_since.get_or_insert_with(Instant::now);
                    last_activity = Instant::now();
                }
                n
            }
            Err(e) => {
                fail(&h, &org, &e.to_string()).await;
                continue;
            }
        };
        let more = n >= batch;
        if let Some(since) = dirty_since {
            // Commit when the interval is up, when stopping, or at once for a waiting writer
            // as soon as the log is drained.
            let urgent = h.urgent.load(Ordering::SeqCst) > 0;
            if since.elapsed() >= interval || stopping || (urgent && !more) {
                let (app2, org2, index2, seq) = (app.clone(), org.clone(), index.clone(), applied);
                match blocking(move || commit(&app2, &org2, &index2, seq)).await {
                    Ok(()) => {
                        dirty_since = None;
                        *h.last_error.lock().expect("error lock") = None;
                        wm.send_replace(seq);
                    }
                    Err(e) => {
                        fail(&h, &org, &e.to_string()).await;
                        continue;
                    }
                }
            }
        }
        if more {
            continue;
        }
        if stopping {
            let index2 = index.clone();
            if let Err(e) = blocking(move || Ok(index2.close_writer()?)).await {
                tracing::error!(org = %org.id, error = %e, "closing the index writer failed");
            }
            return;
        }
        let sleep_for = match dirty_since {
            Some(since) => interval.saturating_sub(since.elapsed()),
            None => idle,
        };
        tokio::select! {
            _ = h.notify.notified() => {}
            _ = tokio::time::sleep(sleep_for) => {
                if dirty_since.is_none() && last_activity.elapsed() >= idle {
                    let index2 = index.clone();
                    let _ = blocking(move || Ok(index2.close_writer_if_idle(idle)?)).await;
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}

/// Runs blocking work (tantivy, sled scans) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Runs a request's blocking work (a search, a report, a timeline) on the request's own thread,
/// once the thread's other tasks have been handed to another worker (`block_in_place`): the
/// request then waits on no thread hand-off, there and back. In an interleaved A/B at scale S a
/// Q2 search answered 7% faster than through [`blocking`]. On a current-thread runtime (tests),
/// where that hand-over is impossible, it falls back to [`blocking`]. The request's timeout is
/// checked when the work returns (a search that outlives it still answers, instead of leaving
/// its work running after a 408).
pub(crate) async fn blocking_here<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        return tokio::task::block_in_place(f);
    }
    blocking(f).await
}

async fn fail(h: &IndexerHandle, org: &Org, e: &str) {
    tracing::error!(org = %org.id, error = %e, "indexing failed; retrying");
    *h.last_error.lock().expect("error lock") = Some(e.to_string());
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Replays or rebuilds so the index can tail the log; returns the sequence it covers.
async fn recover(app: &App, org: &Org, index: &Arc<OrgIndex>) -> Result<u64> {
    let committed = index.committed_seq();
    let store = app.store();
    let last = store.last_seq(org.num)?;
    let first = store.first_seq(org.num)?;
    // Replay covers (committed, last] only when the log still holds all of it.
    let log_gap = committed < last && (first == 0 || first > committed + 1);
    let ahead = committed > last;
    // A missing index directory (created empty beside stored objects) cannot know what was
    // imported unlogged.
    let lost = index.is_lost();
    let dirty = super::import::index_dirty(app, org.num)?;
    if log_gap || ahead || lost || dirty {
        tracing::warn!(org = %org.id, committed, first, last, log_gap, ahead, lost, dirty, "index cannot replay from the log; rebuilding from the store");
        let (app2, org2, index2) = (app.clone(), org.clone(), index.clone());
        let seq = blocking(move || rebuild(&app2, &org2, &index2, &mut |_, _| {})).await?;
        super::import::clear_dirty(app, org.num)?;
        return Ok(seq);
    }
    Ok(committed)
}

fn apply_batch(app: &App, org: &Org, index: &OrgIndex, from: u64, max: usize) -> Result<(u64, usize)> {
    let records = app.store().log_after(org.num, from, max)?;
    let Some(last) = records.last().map(|r| r.seq) else {
        return Ok((from, 0));
    };
    let schema = app.runtime(org)?.schema();
    let ops = records.iter().filter_map(|r| to_op(index, &schema, r)).collect();
    index.apply(ops)?;
    Ok((last, records.len()))
}

/// The index operation of a change record.
pub fn to_op(index: &OrgIndex, schema: &OrgSchema, r: &ChangeRecord) -> Option<IndexOp> {
    match &r.after {
        Some(obj) => match schema.klass(&obj.klass) {
            Some(k) => Some(IndexOp::Upsert {
                num: obj.num,
                doc: mapper::to_document(index.schema(), k, obj),
            }),
            None => {
                tracing::warn!(klass = %obj.klass, id = %obj.id, "object of an unknown klass is not indexed");
                Some(IndexOp::Delete { num: r.num })
            }
        },
        None => Some(IndexOp::Delete { num: r.num }),
    }
}

fn commit(app: &App, org: &Org, index: &OrgIndex, seq: u64) -> Result<()> {
    index.commit(seq)?;
    let store = app.store();
    store.set_cursor(org.num, "index", seq)?;
    trim(app, org)?;
    Ok(())
}

/// Drops change records every consumer has processed.
pub(crate) fn trim(app: &App, org: &Org) -> Result<()> {
    let store = app.store();
    let mut upto = u64::MAX;
    for c in LOG_CONSUMERS {
        upto = upto.min(store.cursor(org.num, c)?);
    }
    if upto > 0 && upto != u64::MAX {
        store.trim_log(org.num, upto)?;
    }
    Ok(())
}

/// Rebuilds an org's index from the store, reporting (done, total) as it goes. Returns the
/// sequence the rebuilt index covers.
pub fn rebuild(app: &App, org: &Org, index: &OrgIndex, progress: &mut dyn FnMut(u64, u64)) -> Result<u64> {
    rebuild_with(app, org, index, &app.runtime(org)?.schema(), progress)
}

/// [`rebuild`] with the org's schema at hand (while its runtime is being opened).
pub(crate) fn rebuild_with(
    app: &App,
    org: &Org,
    index: &OrgIndex,
    schema: &OrgSchema,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64> {
    let store = app.store();
    let seq = store.last_seq(org.num)?;
    let total: u64 = schema
        .klasses
        .keys()
        .map(|k| store.klass_count(org.num, k).unwrap_or(0))
        .sum();
    index.set_bulk(true)?;
    index.delete_all()?;
    let mut done = 0u64;
    let mut ops = Vec::with_capacity(10_000);
    for obj in store.scan_objects(org.num) {
        let obj = obj?;
        if let Some(k) = schema.klass(&obj.klass) {
            ops.push(IndexOp::Add {
                doc: mapper::to_document(index.schema(), k, &obj),
            });
        }
        done += 1;
        if ops.len() == 10_000 {
            index.apply(std::mem::take(&mut ops))?;
            progress(done, total);
        }
    }
    index.apply(ops)?;
    progress(done, total);
    index.commit(seq)?;
    index.close_writer()?;
    index.set_bulk(false)?;
    store.set_cursor(org.num, "index", seq)?;
    Ok(seq)
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Objects in the store.
    pub store_objects: u64,
    /// Documents in the index.
    pub index_docs: u64,
    /// Ids stored but not indexed (first 100).
    pub missing: Vec<String>,
    /// Nums indexed but not stored (first 100).
    pub extra: Vec<u64>,
    /// Ids indexed with another updatedAt than stored (first 100).
    pub stale: Vec<String>,
    /// Totals of the three kinds.
    pub counts: (u64, u64, u64),
}

impl VerifyReport {
    /// Index and store agree.
    pub fn ok(&self) -> bool {
        self.counts == (0, 0, 0)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.ok(), "storeObjects": self.store_objects, "indexDocuments": self.index_docs,
            "missingFromIndex": {"count": self.counts.0, "ids": self.missing},
            "notInStore": {"count": self.counts.1, "nums": self.extra},
            "stale": {"count": self.counts.2, "ids": self.stale},
        })
    }
}

impl App {
    /// Waits for the index to catch up with the log, then compares it with the store.
    pub async fn verify(&self, rt: &super::OrgRuntime) -> Result<VerifyReport> {
        let last = self.store().last_seq(rt.org.num)?;
        rt.indexer.wait_for(last, Duration::from_secs(600)).await?;
        let app = self.clone();
        let snap = self.snapshot(rt);
        let org = rt.org.num;
        blocking(move || {
            let indexed = snap.inventory()?;
            let mut r = VerifyReport {
                index_docs: indexed.len() as u64,
                ..Default::default()
            };
            let mut i = 0usize;
            for obj in app.store().scan_objects(org) {
                let obj = obj?;
                r.store_objects += 1;
                while i < indexed.len() && indexed[i].0 < obj.num {
                    r.counts.1 += 1;
                    if r.extra.len() < 100 {
                        r.extra.push(indexed[i].0);
                    }
                    i += 1;
                }
                if i < indexed.len() && indexed[i].0 == obj.num {
                    if indexed[i].1 != obj.updated_at {
                        r.counts.2 += 1;
                        if r.stale.len() < 100 {
                            r.stale.push(obj.id.clone());
                        }
                    }
                    i += 1;
                } else {
                    r.counts.0 += 1;
                    if r.missing.len() < 100 {
                        r.missing.push(obj.id.clone());
                    }
                }
            }
            for (n, _) in &indexed[i..] {
                r.counts.1 += 1;
                if r.extra.len() < 100 {
                    r.extra.push(*n);
                }
            }
            Ok(r)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::automation::engine::system_caller;
    use crate::service::objects::WriteOptions;
    use crate::service::AppOptions;
    use serde_json::json;

    fn open(dir: &std::path::Path) -> App {
        let mut opts = AppOptions::new(dir);
        opts.background = false;
        opts.announce_admin_key = false;
        App::open(opts).unwrap()
    }

    /// (seq the recovered index covers, objects it finds).
    fn default_org(app: &App) -> Org {
        app.store()
            .org_by_id_or_name(crate::service::DEFAULT_ORG)
            .unwrap()
            .unwrap()
    }

    async fn recovered(app: &App) -> (u64, u64) {
        let org = default_org(app);
        let rt = app.runtime(&org).unwrap();
        let seq = recover(app, &org, &rt.index).await.unwrap();
        let applied = apply_batch(app, &org, &rt.index, seq, 1000).unwrap().0;
        rt.index.commit(applied).unwrap();
        let snap = app.snapshot(&rt);
        (seq, snap.num_docs())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_index_replays_the_writes_after_it_and_a_lost_one_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let app = open(dir.path());
        let org = default_org(&app);
        // The index is created by the first use of the org; writes follow before the indexer
        // looks at the store. They are in the log: replayed, not a reason to rebuild.
        let rt = app.runtime(&org).unwrap();
        assert!(rt.index.was_created() && !rt.index.is_lost());
        let caller = system_caller(&org);
        for i in 0..3 {
            app.create_object(
                &caller,
                "customer",
                &json!({"name": format!("c{i}")}),
                WriteOptions::default(),
            )
            .await
            .unwrap();
        }
        assert_eq!(recovered(&app).await, (0, 3), "replayed from the start of the log");
        app.shutdown().await;
        drop((rt, app));

        // The index directory disappears while the store keeps its objects: rebuilt.
        std::fs::remove_dir_all(dir.path().join("index").join(org.num.to_string())).unwrap();
        let app = open(dir.path());
        let rt = app.runtime(&org).unwrap();
        assert!(rt.index.is_lost());
        let (seq, docs) = recovered(&app).await;
        assert!(seq >= 3, "rebuilt up to the last write: {seq}");
        assert_eq!(docs, 3);
        app.shutdown().await;
        drop((rt, app));

        // A rebuild interrupted before its commit leaves an index that exists, with this
        // version's schema, but without any commit: it is rebuilt again, not trusted.
        let index_dir = dir.path().join("index").join(org.num.to_string());
        std::fs::remove_dir_all(&index_dir).unwrap();
        drop(OrgIndex::open(&index_dir, &crate::index::IndexSettings::default()).unwrap());
        let app = open(dir.path());
        let rt = app.runtime(&org).unwrap();
        assert!(!rt.index.was_created() && !rt.index.had_commit());
        assert!(rt.index.is_lost());
        assert_eq!(recovered(&app).await.1, 3);
        app.shutdown().await;
    }
}
