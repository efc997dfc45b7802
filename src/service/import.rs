//! Offline import (`kindred import`, service stopped): bulk lines or Kustomer's export shape,
//! validated exactly like the API, written in batches of one sled transaction each (with a resume
//! marker), and indexed directly with the bulk writer. Each batch's write is built on the
//! validating thread and applied by the index thread before it indexes the batch (write-behind),
//! so validating the next batch overlaps writing this one.
//!
//! Crash safety: the org's index is flagged dirty before the first write and clean after the final
//! commit; a dirty index is rebuilt from the store when the org is next opened. A batch and its
//! resume marker commit together, so a rerun resumes after the last batch and never half-writes
//! an object.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::auth::Caller;
use super::bulk::{line_body_owned, parse_line, BulkLine, BulkOp, LineResult};
use super::error::{Result, ServiceError};
use super::objects::{BatchLookup, BuildError, KnownIds, Mode, StoreLookup};
use super::{App, OrgRuntime};
use crate::error::Problem;
use crate::index::{mapper, IndexOp};
use crate::model::{Object, Org, OrgSchema, Role, User};
use crate::storage::{Collection, Expect, ObjectWrite, Op, PreparedWrite, StorageError};

/// Lines per batch (one sled transaction).
pub const BATCH: usize = 2000;

/// What an import did.
#[derive(Debug, Default, Clone)]
pub struct ImportSummary {
    /// Lines read (blank lines not counted).
    pub lines: u64,
    /// Objects created.
    pub created: u64,
    /// Objects updated.
    pub updated: u64,
    /// Objects deleted.
    pub deleted: u64,
    /// Definitions applied.
    pub definitions: u64,
    /// Lines that failed.
    pub failed: u64,
    /// The first failures: `file:line: status title (pointer)`.
    pub failures: Vec<String>,
    /// Kustomer fields skipped, by `type.field`.
    pub skipped: BTreeMap<String, u64>,
    /// Files resumed, with the line they resumed after.
    pub resumed: Vec<(String, u64)>,
    /// Seconds.
    pub seconds: f64,
    /// Seconds spent reading and parsing lines.
    pub parse_seconds: f64,
    /// Seconds spent validating and building objects.
    pub build_seconds: f64,
    /// Seconds spent writing the store: building each batch's write (this thread), then
    /// applying it (the index thread, overlapping the others).
    pub store_seconds: f64,
    /// Seconds spent mapping objects to documents and handing them to the index (its own
    /// thread, so they overlap the others), and the final commit.
    pub index_seconds: f64,
}

impl ImportSummary {
    /// Objects written.
    pub fn objects(&self) -> u64 {
        self.created + self.updated + self.deleted
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Marker {
    offset: u64,
    line: u64,
}

const DIRTY: &str = "index_dirty:";

/// The id of a file's resume marker: its canonical path.
fn marker_id(path: &std::path::Path) -> String {
    format!(
        "import:{}",
        std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
    )
}

/// Whether an org's index was left dirty by an interrupted import.
pub fn index_dirty(app: &App, org: u64) -> Result<bool> {
    Ok(app
        .store()
        .meta(&format!("{DIRTY}{org}"))?
        .is_some_and(|v| !v.is_empty()))
}

/// Clears the dirty flag (after a rebuild).
pub fn clear_dirty(app: &App, org: u64) -> Result<()> {
    // An empty value means clean.
    app.store().set_meta(&format!("{DIRTY}{org}"), b"")?;
    Ok(())
}

struct Pending {
    file: String,
    line: u64,
    op: BulkOp,
    klass: String,
    id: Option<String>,
    external_id: Option<String>,
    object: Value,
    /// Kustomer kobjects create their klass on first sight.
    from_kustomer: bool,
}

impl App {
    /// Imports files into an org. `progress(bytes_done, bytes_total, objects)` is called as it goes.
    pub fn import_files(
        &self,
        org: &Org,
        files: &[PathBuf],
        progress: &mut dyn FnMut(u64, u64, u64),
    ) -> Result<ImportSummary> {
        let started = Instant::now();
        let rt = self.runtime(org)?;
        let now = self.now();
        let caller = Caller {
            org: org.clone(),
            user: User {
                id: "import".into(),
                name: "import".into(),
                email: "import@localhost".into(),
                role: Role::Admin,
                teams: vec![],
                created_at: now,
                updated_at: now,
            },
            key_id: "import".into(),
            platform: false,
        };
        let total: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        // An earlier import was interrupted: its unlogged objects may be missing from the index, so
        // this one ends with a rebuild rather than trusting the index.
        // So does one whose index was lost or built by an earlier version.
        let rebuild_at_end = index_dirty(self, org.num)? || rt.index.is_lost();
        let mut summary = ImportSummary::default();
        self.store().set_meta(&format!("{DIRTY}{}", org.num), b"1")?;
        rt.index.set_bulk(true)?;
        // Three threads share the work: one reads and parses each file's lines, this one validates
        // them and writes the store, one maps the written objects to documents and hands them to
        // the index (whose own threads index them). Bounded channels keep memory flat; a batch
        // reaches the index only once the store holds it.
        let busy = std::thread::scope(|scope| -> Result<Busy> {
            let (feed, feed_rx) = std::sync::mpsc::sync_channel::<IndexBatch>(4);
            let rt_ref = &rt;
            let indexer = scope.spawn(move || index_batches(rt_ref, feed_rx));
            // Into an org without objects, the ids this import writes are all the store holds.
            let mut known = KnownIds::default();
            if !self.store().has_objects(org.num) {
                known.set_complete();
            }
            let mut written = Written { feed, known };
            let read = self.import_each_file(&rt, &caller, files, total, &mut written, &mut summary, progress, scope);
            drop(written);
            let indexed = indexer
                .join()
                .map_err(|_| ServiceError::Internal("the import's index thread panicked".into()))?;
            // The first failure is the one reported: the reading side's, unless all it knows is
            // that the index thread stopped (then the index thread's own error says why).
            match (read, indexed) {
                (Err(e), _) if !is_index_stopped(&e) => Err(e),
                (_, Err(e)) => Err(e),
                (Err(e), Ok(_)) => Err(e),
                (Ok(()), Ok(busy)) => Ok(busy),
            }
        })?;
        summary.index_seconds += busy.index;
        summary.store_seconds += busy.store;
        // The store first: the index must never know objects the store could lose.
        self.store().flush()?;
        let t0 = Instant::now();
        if rebuild_at_end {
            rt.index.close_writer()?;
            crate::service::indexing::rebuild(self, org, &rt.index, &mut |_, _| {})?;
        } else {
            rt.index.commit(self.store().last_seq(org.num)?)?;
            rt.index.close_writer()?;
            rt.index.set_bulk(false)?;
        }
        summary.index_seconds += t0.elapsed().as_secs_f64();
        // Finished: forget resume markers, mark the index clean, make it all durable.
        let mut ops = Vec::new();
        for path in files {
            ops.push(Op::delete(Collection::State, marker_id(path)));
        }
        self.store().apply(org.num, ops)?;
        clear_dirty(self, org.num)?;
        self.store()
            .set_cursor(org.num, "index", self.store().last_seq(org.num)?)?;
        self.store().flush()?;
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Reads every file through a parser thread and writes its objects batch by batch; the
    /// batches go to `written`.
    #[allow(clippy::too_many_arguments)]
    fn import_each_file<'scope, 'env>(
        &self,
        rt: &OrgRuntime,
        caller: &Caller,
        files: &'env [PathBuf],
        total: u64,
        written: &mut Written,
        summary: &mut ImportSummary,
        progress: &mut dyn FnMut(u64, u64, u64),
        scope: &'scope std::thread::Scope<'scope, 'env>,
    ) -> Result<()> {
        let mut done_before = 0u64;
        // Every resume marker is read before the first write (read later, each would wait for
        // the writes still being applied), and kept up to date here as files end: a file
        // listed twice is read once.
        let mut markers: HashMap<String, Option<Marker>> = HashMap::new();
        for path in files {
            let id = marker_id(path);
            if let std::collections::hash_map::Entry::Vacant(e) = markers.entry(id) {
                let marker = self.store().get_doc::<Marker>(rt.org.num, Collection::State, e.key())?;
                e.insert(marker);
            }
        }
        for path in files {
            let marker_id = marker_id(path);
            let marker = markers.get(&marker_id).cloned().flatten();
            let name = path.display().to_string();
            let file = std::fs::File::open(path).map_err(|e| ServiceError::Internal(format!("{name}: {e}")))?;
            let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
            let mut start = Resume::default();
            if let Some(m) = marker {
                reader
                    .seek(SeekFrom::Start(m.offset))
                    .map_err(|e| ServiceError::Internal(format!("{name}: {e}")))?;
                start = Resume {
                    offset: m.offset,
                    line: m.line,
                };
                summary.resumed.push((name.clone(), m.line));
            }
            let (lines_tx, lines_rx) = std::sync::mpsc::sync_channel::<Parsed>(8);
            let parser_name = name.clone();
            let parser = scope.spawn(move || parse_file(reader, &parser_name, start, lines_tx));
            let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
            let mut outcome = Ok(());
            // Byte offset just past the last line taken from this file (for progress).
            let mut taken = 0u64;
            for item in lines_rx.iter() {
                let step = match item {
                    Parsed::Lines(lines) => lines.into_iter().try_for_each(|l| {
                        taken = l.end;
                        self.import_line(rt, caller, &name, &marker_id, l, &mut batch, written, summary)
                    }),
                    Parsed::End(end) => {
                        let r = self.flush_batch(
                            rt,
                            &mut batch,
                            summary,
                            Some((&marker_id, end.offset, end.line)),
                            written,
                        );
                        markers.insert(
                            marker_id.clone(),
                            Some(Marker {
                                offset: end.offset,
                                line: end.line,
                            }),
                        );
                        done_before += end.offset;
                        taken = 0;
                        r
                    }
                    Parsed::Failed(e) => Err(e),
                };
                if step.is_err() {
                    outcome = step;
                    break;
                }
                progress(done_before + taken, total, summary.objects());
            }
            // Dropping the receiver stops a parser still reading (after an error here).
            drop(lines_rx);
            let parsed = parser
                .join()
                .map_err(|_| ServiceError::Internal(format!("{name}: the parser thread panicked")))?;
            summary.parse_seconds += parsed.seconds;
            for (k, n) in parsed.skipped {
                *summary.skipped.entry(k).or_insert(0) += n;
            }
            outcome?;
        }
        Ok(())
    }

    /// One parsed line: a failure is counted, a definition applied in order, an object batched.
    #[allow(clippy::too_many_arguments)]
    fn import_line(
        &self,
        rt: &OrgRuntime,
        caller: &Caller,
        name: &str,
        marker_id: &str,
        l: ParsedLine,
        batch: &mut Vec<Pending>,
        written: &mut Written,
        summary: &mut ImportSummary,
    ) -> Result<()> {
        summary.lines += 1;
        match l.parsed {
            Err(p) => fail(
                summary,
                name,
                l.line,
                &LineResult {
                    status: 400,
                    id: None,
                    errors: vec![p],
                },
            ),
            Ok(BulkLine::Definition { op, resource, object }) => {
                // Everything before the definition is written first; a resume restarts at it.
                self.flush_batch(rt, batch, summary, Some((marker_id, l.start, l.line - 1)), written)?;
                written.known.forget_directory();
                match self.apply_definition(caller, op, resource, &object) {
                    Ok(_) => summary.definitions += 1,
                    Err(e) => fail(summary, name, l.line, &LineResult::failed(&e)),
                }
            }
            Ok(BulkLine::Object {
                op,
                klass,
                id,
                external_id,
                object,
            }) => {
                batch.push(Pending {
                    file: name.to_string(),
                    line: l.line,
                    op,
                    klass,
                    id,
                    external_id,
                    object,
                    from_kustomer: l.from_kustomer,
                });
                if batch.len() >= BATCH {
                    self.flush_batch(rt, batch, summary, Some((marker_id, l.end, l.line)), written)?;
                }
            }
        }
        Ok(())
    }

    fn flush_batch(
        &self,
        rt: &OrgRuntime,
        batch: &mut Vec<Pending>,
        summary: &mut ImportSummary,
        marker: Option<(&str, u64, u64)>,
        written: &mut Written,
    ) -> Result<()> {
        let marker_op = marker.map(|(id, offset, line)| {
            Op::put(Collection::State, id.to_string(), &Marker { offset, line }, Expect::Any)
        });
        if batch.is_empty() {
            if marker_op.is_none() {
                return Ok(());
            }
            // A marker alone is written now when nothing waits to be applied (a definition line
            // after it then need not wait for the index thread), and otherwise written behind
            // like a batch, below, so as not to wait for the batches before it.
            if !self.store().writes_behind() {
                self.store().apply(rt.org.num, marker_op.into_iter().collect())?;
                return Ok(());
            }
        }
        let org = rt.org.num;
        let mut lookup = BatchLookup {
            store: StoreLookup { app: self, org },
            pending: HashMap::with_capacity(batch.len()),
            deleted: Default::default(),
            known: Some(&written.known),
        };
        let mut nums = Nums {
            next: self.store().reserve_nums(org, batch.len() as u64)?,
            reuse: HashMap::new(),
            replaced: HashSet::new(),
        };
        let mut writes: Vec<ObjectWrite> = Vec::with_capacity(batch.len());
        let mut lines: Vec<(String, u64)> = Vec::with_capacity(batch.len());
        // Ids in the order of their first line; a batch writes each object once.
        let mut seen: HashSet<String> = HashSet::with_capacity(batch.len());
        let mut ids: Vec<String> = Vec::with_capacity(batch.len());
        let mut ext_pending: HashMap<(String, String), String> = HashMap::new();
        let t0 = Instant::now();
        for mut p in batch.drain(..) {
            match self.import_one(rt, &mut lookup, &mut ext_pending, &mut p, &mut nums) {
                // Changed earlier in this batch: the batch writes it once, in its last state.
                Ok((id, _)) if seen.contains(&id) => {}
                Ok((id, before)) => {
                    seen.insert(id.clone());
                    ids.push(id);
                    lines.push((p.file.clone(), p.line));
                    writes.push(ObjectWrite {
                        before,
                        after: None,
                        log: false,
                        depth: 0,
                        changed: vec![],
                    });
                }
                Err(e) => fail(summary, &p.file, p.line, &LineResult::failed(&e)),
            }
        }
        // The last state of each object is the batch's pending version (none once deleted),
        // moved out rather than copied line by line.
        for (w, id) in writes.iter_mut().zip(&ids) {
            w.after = lookup.pending.remove(id);
        }
        // Created and deleted within the batch: nothing to write.
        if writes.iter().any(|w| w.before.is_none() && w.after.is_none()) {
            (writes, lines) = writes
                .into_iter()
                .zip(lines)
                .filter(|(w, _)| w.before.is_some() || w.after.is_some())
                .unzip();
        }
        summary.build_seconds += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let now = self.now();
        let extra: Vec<Op> = marker_op.into_iter().collect();
        // Checked and built here, applied by the index thread while this one validates the next
        // batch; the store makes every later access wait for it.
        let known = &written.known;
        let prepared = self
            .store()
            .prepare_objects(org, &mut writes, now, &extra, &|k| known.absent_key(k));
        let prepared = match prepared {
            Ok((_, p)) => Some(p),
            Err(_) => {
                // Something in the batch conflicts: write line by line to name the culprits.
                let mut kept = Vec::new();
                for (w, l) in writes.into_iter().zip(lines) {
                    let mut one = [w];
                    match self.store().write_objects(org, &mut one, now) {
                        Ok(_) => {
                            let [w] = one;
                            kept.push(w);
                        }
                        Err(e) => fail(summary, &l.0, l.1, &LineResult::failed(&e.into())),
                    }
                }
                if !extra.is_empty() {
                    self.store().apply(org, extra)?;
                }
                writes = kept;
                None
            }
        };
        summary.store_seconds += t0.elapsed().as_secs_f64();
        for w in &writes {
            match (&w.before, &w.after) {
                (None, Some(a)) => {
                    summary.created += 1;
                    written.known.insert(a);
                }
                (Some(_), Some(a)) if nums.replaced.contains(&a.id) => {
                    summary.deleted += 1;
                    summary.created += 1;
                    written.known.insert(a);
                }
                (Some(_), Some(a)) => {
                    summary.updated += 1;
                    written.known.insert(a);
                }
                (Some(b), None) => {
                    summary.deleted += 1;
                    written.known.remove(&b.id);
                }
                (None, None) => {}
            }
        }
        if written.feed.send((rt.schema(), writes, prepared)).is_err() {
            // The index thread stopped on an error; the import returns it.
            return Err(ServiceError::Internal(INDEX_STOPPED.into()));
        }
        Ok(())
    }

    /// One line: its id and the stored version (the one before the batch); the new version stays
    /// in the batch's pending objects (none once deleted).
    fn import_one(
        &self,
        rt: &OrgRuntime,
        lookup: &mut BatchLookup<'_>,
        ext_pending: &mut HashMap<(String, String), String>,
        p: &mut Pending,
        nums: &mut Nums,
    ) -> Result<(String, Option<Object>)> {
        let org = rt.org.num;
        let object = std::mem::take(&mut p.object);
        let body = line_body_owned(&p.id, &p.external_id, object)
            .map_err(|e| ServiceError::from(e.nested_under("/object")))?;
        let p = &*p;
        // Absent from the store for sure: not written by this import into an org that was empty.
        let absent = |id: &str| lookup.known.is_some_and(|k| k.absent(id));
        // The current version: earlier in this batch, or stored. A create looks only in the batch:
        // the store refuses a taken id or externalId when the batch is written, and the batch is
        // then written line by line to name the lines that clash.
        let in_store = p.op != BulkOp::Create;
        // Found by its externalId in the store: the stored version, read once.
        let mut by_external_id: Option<Object> = None;
        let existing_id = match (&p.id, &p.external_id) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(ext)) => match ext_pending.get(&(p.klass.clone(), ext.clone())) {
                Some(id) => Some(id.clone()),
                None if in_store => match self.store().num_by_external_id(org, &p.klass, ext)? {
                    Some(num) => {
                        by_external_id = self.store().object(org, num)?;
                        by_external_id.as_ref().map(|o| o.id.clone())
                    }
                    None => None,
                },
                None => None,
            },
            (None, None) => None,
        };
        // Read from the store, it is also the stored version the line returns (not read twice).
        let mut from_store = false;
        let current: Option<Object> = match &existing_id {
            Some(id) => match lookup.pending.get(id) {
                Some(o) => Some(o.clone()),
                None if lookup.deleted.contains(id) => None,
                None if by_external_id.is_some() => {
                    from_store = true;
                    by_external_id.take()
                }
                None if in_store && !absent(id) => {
                    from_store = true;
                    self.stored_version(org, id)?
                }
                None => None,
            },
            None => None,
        };
        if let Some(c) = &current {
            if c.klass != p.klass {
                return Err(Problem::conflict(
                    "duplicate_id",
                    format!("id `{}` is an object of klass `{}`", c.id, c.klass),
                )
                .into());
            }
        }
        let (base, mode) = match (p.op, &current) {
            (BulkOp::Create, Some(c)) => {
                return Err(Problem::conflict("duplicate_id", format!("id `{}` already exists", c.id)).into())
            }
            (BulkOp::Create, None) | (BulkOp::Upsert, None) => (None, Mode::Create),
            (BulkOp::Upsert | BulkOp::Update, Some(c)) => (Some(c.clone()), Mode::Patch),
            (BulkOp::Update | BulkOp::Delete, None) => {
                return Err(
                    Problem::not_found(&p.klass, p.id.as_deref().or(p.external_id.as_deref()).unwrap_or("?")).into(),
                )
            }
            (BulkOp::Delete, Some(c)) => {
                let stored = if from_store {
                    Some(c.clone())
                } else {
                    self.stored_version(org, &c.id)?
                };
                lookup.pending.remove(&c.id);
                lookup.deleted.insert(c.id.clone());
                if let Some(s) = &stored {
                    nums.reuse.insert(c.id.clone(), s.num);
                }
                return Ok((c.id.clone(), stored));
            }
        };
        if p.op == BulkOp::Upsert && current.is_none() && p.id.is_none() && p.external_id.is_none() {
            return Err(
                Problem::bad_request("invalid_line", "`upsert` needs `id` or `externalId`")
                    .at("/id")
                    .into(),
            );
        }
        let mut obj = loop {
            // The klass is borrowed from the schema, not cloned for every line; declaring an
            // attribute or a klass loads a new schema for the next turn.
            let schema = rt.schema();
            let Some(k) = schema.klass(&p.klass) else {
                self.missing_klass(rt, p)?;
                continue;
            };
            match self.build_with(lookup, k, &body, base.as_ref(), mode) {
                Ok(o) => break o,
                Err(BuildError::Declare(names)) => {
                    match self.declare_for(rt, lookup, k, &body, base.as_ref(), mode, &names) {
                        Ok(()) | Err(BuildError::Declare(_)) => {}
                        Err(BuildError::Invalid(ps)) => {
                            return Err(ServiceError::Rejected(
                                ps.into_iter().map(|x| x.nested_under("/object")).collect(),
                            ))
                        }
                        Err(BuildError::Failed(e)) => return Err(e),
                    }
                }
                Err(BuildError::Invalid(ps)) => {
                    return Err(ServiceError::Rejected(
                        ps.into_iter().map(|x| x.nested_under("/object")).collect(),
                    ))
                }
                Err(BuildError::Failed(e)) => return Err(e),
            }
        };
        if base.is_none() {
            obj.num = match nums.reuse.remove(&obj.id) {
                Some(num) => {
                    nums.replaced.insert(obj.id.clone());
                    num
                }
                None => {
                    nums.next += 1;
                    nums.next - 1
                }
            };
            lookup.deleted.remove(&obj.id);
        }
        if let Some(ext) = &obj.external_id {
            ext_pending.insert((obj.klass.clone(), ext.clone()), obj.id.clone());
        }
        let stored = match &base {
            Some(_) if from_store => current,
            Some(b) => self.stored_version(org, &b.id)?,
            None => None,
        };
        let id = obj.id.clone();
        lookup.pending.insert(id.clone(), obj);
        Ok((id, stored))
    }

    /// The stored version of an object (None when it was created in this batch).
    fn stored_version(&self, org: u64, id: &str) -> Result<Option<Object>> {
        Ok(match self.store().num_and_klass_by_id(org, id)? {
            Some((num, _)) => self.store().object(org, num)?,
            None => None,
        })
    }

    /// A Kustomer kobject's klass is created on first sight; any other unknown klass is a 404,
    /// as in `POST /v1/bulk`.
    fn missing_klass(&self, rt: &OrgRuntime, p: &Pending) -> Result<()> {
        if !p.from_kustomer {
            return Err(Problem::not_found("klass", &p.klass).into());
        }
        let caller = super::automation::engine::system_caller(&rt.org);
        match self.create_klass(&caller, &serde_json::json!({"name": p.klass})) {
            Ok(_) => Ok(()),
            Err(ServiceError::Rejected(ps)) => Err(ServiceError::Rejected(
                ps.into_iter()
                    .map(|x| x.nested_under("/data/relationships/klass"))
                    .collect(),
            )),
            Err(e) => Err(e),
        }
    }
}

/// What the main thread knows when the index thread has stopped.
const INDEX_STOPPED: &str = "the import's index thread stopped";

/// Whether an error of the reading side only says that the index thread stopped (which then
/// reports why): it could not hand over a batch, or the store refuses access because a write the
/// index thread was to apply was not.
fn is_index_stopped(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Internal(m) if m == INDEX_STOPPED)
        || matches!(e, ServiceError::Storage(StorageError::WriteBehind))
}

/// Nums for a batch's creates: the reserved range, and the stored nums of objects the batch
/// deleted (an id created again in the same batch keeps its num, so that the batch writes one
/// consistent replacement instead of an object stored under another's num).
struct Nums {
    next: u64,
    reuse: HashMap<String, u64>,
    /// Ids deleted and created again: one write, counted as a delete and a create.
    replaced: HashSet<String>,
}

/// Where written batches go: their objects to the index thread, their ids to the lookups of the
/// lines that follow.
struct Written {
    feed: IndexFeed,
    known: KnownIds,
}

/// Writes on their way to the index, with the schema they were validated against and, unless
/// they are in the store already, the prepared store write that puts them there.
type IndexBatch = (Arc<OrgSchema>, Vec<ObjectWrite>, Option<PreparedWrite>);
type IndexFeed = std::sync::mpsc::SyncSender<IndexBatch>;

/// Applies each batch's prepared store write, then maps its objects to documents and hands them
/// to the index (so the index never holds an object the store does not); returns the seconds
/// it spent on each.
fn index_batches(rt: &OrgRuntime, batches: std::sync::mpsc::Receiver<IndexBatch>) -> Result<Busy> {
    let mut busy = Busy::default();
    for (schema, writes, prepared) in batches {
        let t0 = Instant::now();
        if let Some(p) = prepared {
            p.apply()?;
        }
        busy.store += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let mut ops = Vec::with_capacity(writes.len());
        for w in &writes {
            match (&w.before, &w.after) {
                (None, Some(a)) => {
                    if let Some(k) = schema.klass(&a.klass) {
                        ops.push(IndexOp::Add {
                            doc: mapper::to_document(rt.index.schema(), k, a),
                        });
                    }
                }
                (Some(_), Some(a)) => {
                    if let Some(k) = schema.klass(&a.klass) {
                        ops.push(IndexOp::Upsert {
                            num: a.num,
                            doc: mapper::to_document(rt.index.schema(), k, a),
                        });
                    }
                }
                (Some(b), None) => ops.push(IndexOp::Delete { num: b.num }),
                (None, None) => {}
            }
        }
        rt.index.apply(ops)?;
        busy.index += t0.elapsed().as_secs_f64();
    }
    Ok(busy)
}

/// Seconds the index thread spent applying store writes and indexing.
#[derive(Debug, Default, Clone, Copy)]
struct Busy {
    store: f64,
    index: f64,
}

/// Where a file's reading starts (after a resume marker) or ended.
#[derive(Debug, Default, Clone, Copy)]
struct Resume {
    /// Byte offset just past the last line read.
    offset: u64,
    /// Number of that line (1-based; 0 before the first).
    line: u64,
}

/// One non-blank line, parsed.
struct ParsedLine {
    line: u64,
    /// Byte offsets of the line's start and of the next line's start.
    start: u64,
    end: u64,
    from_kustomer: bool,
    parsed: std::result::Result<BulkLine, Problem>,
}

/// What the parser thread sends: lines in chunks, then the file's end, or a read failure.
enum Parsed {
    Lines(Vec<ParsedLine>),
    End(Resume),
    Failed(ServiceError),
}

/// What the parser thread did.
struct ParseOutcome {
    seconds: f64,
    /// Non-blank lines parsed.
    lines: u64,
    skipped: BTreeMap<String, u64>,
}

/// Lines per message from the parser thread.
const PARSE_CHUNK: usize = 256;

/// Reads and parses one file's lines from `at`, sending them in chunks; stops early when the
/// receiver is gone.
fn parse_file(
    mut reader: impl BufRead,
    name: &str,
    at: Resume,
    out: std::sync::mpsc::SyncSender<Parsed>,
) -> ParseOutcome {
    let mut outcome = ParseOutcome {
        seconds: 0.0,
        lines: 0,
        skipped: BTreeMap::new(),
    };
    let (mut offset, mut line) = (at.offset, at.line);
    let mut chunk = Vec::with_capacity(PARSE_CHUNK);
    let mut buf = Vec::with_capacity(4096);
    loop {
        let t0 = Instant::now();
        buf.clear();
        let n = match reader.read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = out.send(Parsed::Failed(ServiceError::Internal(format!("{name}: {e}"))));
                return outcome;
            }
        };
        if n == 0 {
            break;
        }
        let start = offset;
        offset += n as u64;
        line += 1;
        let text = trim_ascii(&buf);
        if text.is_empty() {
            continue;
        }
        let mut from_kustomer = false;
        let parsed = serde_json::from_slice::<Value>(text)
            .map_err(|e| Problem::bad_request("malformed_json", format!("not valid JSON: {e}")))
            .and_then(|v| {
                if super::kustomer::is_kustomer(&v) {
                    from_kustomer = true;
                    super::kustomer::convert(&v, &mut outcome.skipped)
                } else {
                    parse_line(v)
                }
            });
        outcome.seconds += t0.elapsed().as_secs_f64();
        outcome.lines += 1;
        chunk.push(ParsedLine {
            line,
            start,
            end: offset,
            from_kustomer,
            parsed,
        });
        if chunk.len() >= PARSE_CHUNK
            && out
                .send(Parsed::Lines(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(PARSE_CHUNK),
                )))
                .is_err()
        {
            return outcome;
        }
    }
    if !chunk.is_empty() && out.send(Parsed::Lines(chunk)).is_err() {
        return outcome;
    }
    let _ = out.send(Parsed::End(Resume { offset, line }));
    outcome
}

fn fail(summary: &mut ImportSummary, file: &str, line: u64, r: &LineResult) {
    summary.failed += 1;
    if summary.failures.len() < 50 {
        let p = &r.errors[0];
        let at = match &p.source {
            Some(crate::error::ProblemSource::Pointer(ptr)) => format!(" ({ptr})"),
            _ => String::new(),
        };
        summary
            .failures
            .push(format!("{file}:{line}: {} {}{at}", r.status, p.title));
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let mut s = b;
    while let Some((l, rest)) = s.split_last() {
        if l.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Files to import: each path, or the `*.ndjson` files of a directory in name order.
pub fn expand_inputs(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "ndjson" || x == "jsonl"))
                .collect();
            entries.sort();
            out.extend(entries);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &str, at: Resume) -> (Vec<ParsedLine>, Resume) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let reader = std::io::Cursor::new(text.as_bytes().to_vec());
        let parser = std::thread::spawn(move || parse_file(reader, "f.ndjson", at, tx));
        let (mut lines, mut end) = (Vec::new(), None);
        for item in rx {
            match item {
                Parsed::Lines(l) => lines.extend(l),
                Parsed::End(e) => end = Some(e),
                Parsed::Failed(e) => panic!("{e}"),
            }
        }
        parser.join().unwrap();
        (lines, end.expect("an end"))
    }

    /// Line numbers and byte offsets are the file's, blank lines included, so a resume marker
    /// taken after any line restarts exactly at the next one; a bad line is one failed line.
    #[test]
    fn parsed_lines_keep_the_files_numbers_and_offsets() {
        let good = r#"{"op":"create","klass":"customer","object":{"name":"A"}}"#;
        let text = format!("{good}\n\n{{not json\r\n{good}");
        let (lines, end) = parse_all(&text, Resume::default());
        let shape: Vec<(u64, u64, u64, bool)> = lines
            .iter()
            .map(|l| (l.line, l.start, l.end, l.parsed.is_ok()))
            .collect();
        let first = good.len() as u64 + 1;
        assert_eq!(
            shape,
            vec![
                (1, 0, first, true),
                (3, first + 1, first + 1 + 11, false),
                (4, first + 12, first + 12 + good.len() as u64, true),
            ]
        );
        assert_eq!((end.line, end.offset), (4, text.len() as u64));
        // Resuming after line 3 (as a marker would say) reads line 4 only, numbered 4.
        let tail = &text[(first + 12) as usize..];
        let (lines, end) = parse_all(
            tail,
            Resume {
                offset: first + 12,
                line: 3,
            },
        );
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].line, lines[0].start), (4, first + 12));
        assert_eq!((end.line, end.offset), (4, text.len() as u64));
    }

    /// Lines come in chunks, and a parser whose receiver is gone stops instead of reading on.
    #[test]
    fn parsing_stops_when_the_importer_does() {
        let line = r#"{"op":"create","klass":"customer","object":{}}"#;
        let text: String = (0..PARSE_CHUNK * 10).map(|_| format!("{line}\n")).collect();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let reader = std::io::Cursor::new(text.into_bytes());
        let parser = std::thread::spawn(move || parse_file(reader, "f.ndjson", Resume::default(), tx));
        match rx.recv().unwrap() {
            Parsed::Lines(l) => assert_eq!(l.len(), PARSE_CHUNK),
            _ => panic!("expected a chunk of lines"),
        }
        drop(rx);
        let outcome = parser.join().unwrap();
        assert!(
            outcome.lines < (PARSE_CHUNK * 4) as u64,
            "read on: {} lines",
            outcome.lines
        );
    }
}
