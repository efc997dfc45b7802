//! One org's index: a lazily opened writer (live or bulk settings), commits that carry the last
//! applied change-log sequence as payload, and a manually reloaded reader, so a search right after
//! a commit sees it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tantivy::directory::MmapDirectory;
use tantivy::indexer::{LogMergePolicy, UserOperation};
use tantivy::schema::{Document, Term};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument};

use super::columns::ColumnCache;
use super::error::{IndexError, Result};
use super::schema::IndexSchema;
use super::settings::IndexSettings;

/// One change to apply.
#[derive(Debug)]
pub enum IndexOp {
    /// Replace whatever is indexed under `num` by `doc`.
    Upsert {
        /// Object num.
        num: u64,
        /// Its document.
        doc: TantivyDocument,
    },
    /// Add a document for an object known never to have been indexed (imports).
    Add {
        /// Its document.
        doc: TantivyDocument,
    },
    /// Remove the object.
    Delete {
        /// Object num.
        num: u64,
    },
}

/// Documents handed to the writer and not yet indexed. tantivy bounds its queue in batches, not
/// documents, so [`OrgIndex::apply`] waits while more than [`QUEUE_MAX`] are queued: memory stays
/// flat when indexing is slower than what feeds it (an import).
#[derive(Default)]
struct Queue {
    docs: AtomicUsize,
    /// The writer's indexing threads failed: its queue will not drain, nothing waits for it.
    stopped: AtomicBool,
    /// Held to wait for room, and to announce it.
    room: Mutex<()>,
    taken: Condvar,
}

/// Most documents queued for the indexing threads.
const QUEUE_MAX: usize = 20_000;

/// Most operations handed over at once: one indexing thread takes a whole run, and checks its
/// memory budget only between runs.
const RUN_MAX: usize = 2_000;

impl Queue {
    /// Waits until the queue holds at most [`QUEUE_MAX`] documents. Gives up when none has left
    /// it for a while (indexing threads that stopped: the writer reports their error).
    fn wait_for_room(&self) {
        if self.docs.load(Ordering::Acquire) <= QUEUE_MAX || self.stopped.load(Ordering::Acquire) {
            return;
        }
        let mut room = self.room.lock().expect("queue lock");
        loop {
            let before = self.docs.load(Ordering::Acquire);
            if before <= QUEUE_MAX {
                return;
            }
            let (r, timeout) = self
                .taken
                .wait_timeout(room, Duration::from_secs(30))
                .expect("queue lock");
            room = r;
            if timeout.timed_out() && self.docs.load(Ordering::Acquire) >= before {
                return;
            }
        }
    }

    fn enqueue(queue: &Arc<Queue>, doc: TantivyDocument) -> Queued {
        queue.docs.fetch_add(1, Ordering::AcqRel);
        Queued {
            doc,
            queue: queue.clone(),
        }
    }
}

/// A document in the queue; it leaves when an indexing thread drops it (indexed or discarded).
struct Queued {
    doc: TantivyDocument,
    queue: Arc<Queue>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        // The drop that makes room wakes the waiter (under the lock, so that a waiter between its
        // check and its wait cannot miss it).
        if self.queue.docs.fetch_sub(1, Ordering::AcqRel) == QUEUE_MAX + 1 {
            let _room = self.queue.room.lock().expect("queue lock");
            self.queue.taken.notify_all();
        }
    }
}

impl Document for Queued {
    type Value<'a> = <TantivyDocument as Document>::Value<'a>;
    type FieldsValuesIter<'a> = <TantivyDocument as Document>::FieldsValuesIter<'a>;

    fn iter_fields_and_values(&self) -> Self::FieldsValuesIter<'_> {
        self.doc.iter_fields_and_values()
    }

    fn into_tantivy_document(mut self) -> TantivyDocument {
        std::mem::take(&mut self.doc)
    }
}

struct WriterSlot {
    writer: Option<IndexWriter<Queued>>,
    bulk: bool,
    last_used: Instant,
}

/// The index of one org.
pub struct OrgIndex {
    index: Index,
    schema: IndexSchema,
    reader: IndexReader,
    writer: Mutex<WriterSlot>,
    settings: IndexSettings,
    committed: AtomicU64,
    dir: PathBuf,
    columns: Arc<ColumnCache>,
    queue: Arc<Queue>,
    fresh: bool,
    /// Started over empty because it was built with another schema.
    reset: bool,
    /// Some commit of Kindred's (with its payload) was found when opened.
    has_commit: bool,
    /// Created empty while its store already held objects: only a rebuild can know them.
    lost: std::sync::atomic::AtomicBool,
}

/// The one pool of the read path: every org's searches spread their segments over it, and pages
/// and exports decode objects on it ([`read_pool`]). One per process, so a thousand orgs do not
/// mean a thousand pools, and one rather than two so idle workers of a second pool do not spin
/// beside the busy ones (on 2 cores, a second pool's spinning took a tenth of a search's CPU).
static READ_POOL: std::sync::OnceLock<Option<Arc<rayon::ThreadPool>>> = std::sync::OnceLock::new();

/// The read pool, created on first use with `threads` workers (none for one thread: work then
/// runs on the caller's thread).
fn read_pool_with(threads: usize) -> Result<Option<Arc<rayon::ThreadPool>>> {
    if let Some(p) = READ_POOL.get() {
        return Ok(p.clone());
    }
    let pool = if threads <= 1 {
        None
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kindred-read-{i}"))
            .build()
            .map_err(|e| IndexError::Directory(format!("starting the read pool: {e}")))?;
        Some(Arc::new(pool))
    };
    Ok(READ_POOL.get_or_init(|| pool).clone())
}

/// Runs `f` on the read pool (where rayon's parallel iterators then spread), or on the caller's
/// thread when the pool has one thread or no index opened it yet.
pub fn on_read_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match READ_POOL.get() {
        Some(Some(pool)) => pool.install(f),
        _ => f(),
    }
}

/// The index in `dir`, and whether it was created now.
fn open_or_create(dir: &Path) -> Result<(Index, bool)> {
    let mmap = MmapDirectory::open(dir)?;
    Ok(if Index::exists(&mmap)? {
        (Index::open(mmap)?, false)
    } else {
        (
            Index::create(mmap, IndexSchema::build().schema, tantivy::IndexSettings::default())?,
            true,
        )
    })
}

fn search_executor(threads: usize) -> Result<tantivy::Executor> {
    Ok(match read_pool_with(threads)? {
        Some(pool) => tantivy::Executor::ThreadPool(pool),
        None => tantivy::Executor::single_thread(),
    })
}

impl OrgIndex {
    /// Opens the index in `dir`, creating it when absent. An index built with another schema (by
    /// an earlier version) is started over empty, like a lost one: the store holds everything, and
    /// [`OrgIndex::was_created`] tells the caller to rebuild it.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open(dir: &Path, settings: &IndexSettings) -> Result<OrgIndex> {
        std::fs::create_dir_all(dir)?;
        let (mut index, mut fresh) = open_or_create(dir)?;
        let mut reset = false;
        let schema = match IndexSchema::from_schema(index.schema()) {
            Ok(schema) => schema,
            Err(why) => {
                reset = true;
                tracing::warn!(dir = %dir.display(), "{why}; it starts over empty and is rebuilt from the store");
                drop(index);
                std::fs::remove_dir_all(dir)?;
                std::fs::create_dir_all(dir)?;
                (index, fresh) = open_or_create(dir)?;
                IndexSchema::from_schema(index.schema()).map_err(IndexError::Directory)?
            }
        };
        index.set_executor(search_executor(settings.search_threads)?);
        super::analysis::register(index.tokenizers());
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let payload = index.load_metas()?.payload;
        let has_commit = payload.is_some();
        let committed = payload.and_then(|p| p.parse().ok()).unwrap_or(0);
        Ok(OrgIndex {
            index,
            schema,
            reader,
            writer: Mutex::new(WriterSlot {
                writer: None,
                bulk: false,
                last_used: Instant::now(),
            }),
            settings: settings.clone(),
            committed: AtomicU64::new(committed),
            dir: dir.to_path_buf(),
            columns: Arc::new(ColumnCache::default()),
            queue: Arc::default(),
            fresh,
            reset,
            has_commit,
            lost: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The schema's field handles.
    pub fn schema(&self) -> &IndexSchema {
        &self.schema
    }

    /// Whether this index was created empty when opened (it was missing, or started over).
    pub fn was_created(&self) -> bool {
        self.fresh
    }

    /// Whether this index was started over empty when opened because an earlier version built
    /// it with another schema.
    pub fn was_reset(&self) -> bool {
        self.reset
    }

    /// Whether the index held a commit of Kindred's when opened. Every commit records the log
    /// sequence it covers; an index without one was created and never committed (a rebuild that
    /// was interrupted, or an org whose first writes were never indexed).
    pub fn had_commit(&self) -> bool {
        self.has_commit
    }

    /// Marks an index created empty beside a store that already holds objects of its org (the
    /// index directory was lost): its indexer rebuilds it from the store before tailing the log.
    pub fn mark_lost(&self) {
        self.lost.store(true, Ordering::Release);
    }

    /// Whether [`OrgIndex::mark_lost`] was called.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Opened columns of this index's segments.
    pub fn columns(&self) -> &Arc<ColumnCache> {
        &self.columns
    }

    /// The change-log sequence the last commit covers.
    pub fn committed_seq(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// A searcher over the last commit.
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// Switches between live settings (small writer) and bulk settings (imports, reindex).
    pub fn set_bulk(&self, bulk: bool) -> Result<()> {
        let mut slot = self.writer.lock().expect("writer lock");
        if slot.bulk != bulk {
            if let Some(w) = slot.writer.take() {
                w.wait_merging_threads()?;
            }
            slot.bulk = bulk;
        }
        Ok(())
    }

    fn open_writer(&self, bulk: bool) -> Result<IndexWriter<Queued>> {
        let (threads, memory) = if bulk {
            (self.settings.bulk_threads, self.settings.bulk_memory)
        } else {
            (self.settings.writer_threads, self.settings.writer_memory)
        };
        let writer: IndexWriter<Queued> = self.index.writer_with_num_threads(threads, memory)?;
        self.queue.stopped.store(false, Ordering::Release);
        let m = &self.settings.merge;
        let mut policy = LogMergePolicy::default();
        policy.set_min_num_segments(m.min_num_segments);
        policy.set_min_layer_size(m.min_layer_docs);
        policy.set_max_docs_before_merge(m.max_docs_before_merge);
        policy.set_del_docs_ratio_before_merge(m.del_docs_ratio_before_merge);
        writer.set_merge_policy(Box::new(policy));
        Ok(writer)
    }

    /// Applies changes (not yet visible: see [`OrgIndex::commit`]).
    pub fn apply(&self, ops: Vec<IndexOp>) -> Result<()> {
        let mut slot = self.writer.lock().expect("writer lock");
        if slot.writer.is_none() {
            slot.writer = Some(self.open_writer(slot.bulk)?);
        }
        slot.last_used = Instant::now();
        let writer = slot.writer.as_mut().expect("opened above");
        self.queue.wait_for_room();
        // Runs: the adds reach an indexing thread a run at a time (one hand-off, not one per
        // document), and each upsert's delete precedes its add (opstamps grow across runs too).
        let mut run = Vec::with_capacity(ops.len() + ops.len() / 8);
        for op in ops {
            match op {
                IndexOp::Upsert { num, doc } => {
                    run.push(UserOperation::Delete(Term::from_field_u64(self.schema.num, num)));
                    run.push(UserOperation::Add(Queue::enqueue(&self.queue, doc)));
                }
                IndexOp::Add { doc } => run.push(UserOperation::Add(Queue::enqueue(&self.queue, doc))),
                IndexOp::Delete { num } => run.push(UserOperation::Delete(Term::from_field_u64(self.schema.num, num))),
            }
        }
        let mut ops = run.into_iter();
        while ops.len() > 0 {
            if let Err(e) = writer.run(ops.by_ref().take(RUN_MAX).collect::<Vec<_>>()) {
                self.queue.stopped.store(true, Ordering::Release);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Removes every document (a rebuild starts with this).
    pub fn delete_all(&self) -> Result<()> {
        let mut slot = self.writer.lock().expect("writer lock");
        if slot.writer.is_none() {
            slot.writer = Some(self.open_writer(slot.bulk)?);
        }
        slot.writer.as_mut().expect("opened above").delete_all_documents()?;
        Ok(())
    }

    /// Commits what was applied, recording `seq` as the covered change-log sequence, and reloads
    /// the reader so the next search sees it.
    pub fn commit(&self, seq: u64) -> Result<()> {
        let mut slot = self.writer.lock().expect("writer lock");
        if slot.writer.is_none() {
            if seq == self.committed_seq() {
                return Ok(());
            }
            slot.writer = Some(self.open_writer(slot.bulk)?);
        }
        slot.last_used = Instant::now();
        let writer = slot.writer.as_mut().expect("opened above");
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&seq.to_string());
        prepared.commit()?;
        self.reader.reload()?;
        let live = self
            .reader
            .searcher()
            .segment_readers()
            .iter()
            .map(|s| s.segment_id())
            .collect();
        self.columns.retain(&live);
        self.committed.store(seq, Ordering::Release);
        Ok(())
    }

    /// Closes the writer when unused for `idle`, after its merges finish. Returns whether it closed.
    pub fn close_writer_if_idle(&self, idle: Duration) -> Result<bool> {
        let mut slot = self.writer.lock().expect("writer lock");
        if slot.writer.is_some() && slot.last_used.elapsed() >= idle {
            let w = slot.writer.take().expect("checked");
            w.wait_merging_threads()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Closes the writer, waiting for merges (shutdown, end of import). Uncommitted changes are lost.
    pub fn close_writer(&self) -> Result<()> {
        let mut slot = self.writer.lock().expect("writer lock");
        if let Some(w) = slot.writer.take() {
            w.wait_merging_threads()?;
        }
        Ok(())
    }

    /// Bytes the index takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        dir_size(&self.dir)
    }

    /// Number of segments of the last commit.
    pub fn segment_count(&self) -> usize {
        self.searcher().segment_readers().len()
    }
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_holds_back_its_feeder_until_an_indexing_thread_takes_a_document() {
        let queue = Arc::new(Queue::default());
        let mut queued: Vec<Queued> = (0..=QUEUE_MAX)
            .map(|_| Queue::enqueue(&queue, TantivyDocument::new()))
            .collect();
        assert_eq!(queue.docs.load(Ordering::Acquire), QUEUE_MAX + 1);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waiter = {
            let (queue, done) = (queue.clone(), done.clone());
            std::thread::spawn(move || {
                queue.wait_for_room();
                done.store(true, Ordering::Release);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!done.load(Ordering::Acquire), "the feeder went on with a full queue");
        // An indexing thread takes one document: there is room again.
        queued.pop();
        waiter.join().expect("waiter");
        assert!(done.load(Ordering::Acquire));
        drop(queued);
        assert_eq!(queue.docs.load(Ordering::Acquire), 0);
        // With room, nothing waits.
        queue.wait_for_room();
        // Nor when the indexing threads failed, however full their queue.
        let _full: Vec<Queued> = (0..=QUEUE_MAX)
            .map(|_| Queue::enqueue(&queue, TantivyDocument::new()))
            .collect();
        queue.stopped.store(true, Ordering::Release);
        queue.wait_for_room();
    }
}
