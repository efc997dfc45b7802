//! Collectors: top-K by sort keys with `search_after`, the sets and counts of join phases, and
//! every matching num (exports).
//!
//! # Sorting across segments
//!
//! Each sort key reads a fast-field column as an order-preserving u64 (floats and signed ints are
//! mapped so that unsigned order is numeric order); string columns give per-segment term ordinals,
//! which order like their bytes only inside one segment. Each segment therefore keeps its own top K
//! by (keys, id ordinal), and the merge compares the K winners of every segment by the real values
//! (strings, ids as bytes). A missing value sorts last in both directions; ties break by id in the
//! direction of the first key. A cursor holds the real values of the last hit and is translated to
//! each segment's ordinals (`term_ord_or_next`), so paging is exact with no cap and no offsets.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn, TermOrdHit};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::columns::ColumnCache;
use super::mapper::LinkColumn;
use super::schema;
use std::sync::Arc;

/// Most sort keys a search may have.
pub const MAX_SORT_KEYS: usize = 4;

/// The column a sort key reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortSource {
    /// The BM25 score.
    Score,
    /// An i64 column (integers, dates, createdAt, updatedAt).
    I64(String),
    /// An f64 column.
    F64(String),
    /// A bool column.
    Bool(String),
    /// A string column (strings, enums).
    Str(String),
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// What to read.
    pub source: SortSource,
    /// Descending.
    pub desc: bool,
}

/// One sort value of a hit, comparable across segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyPart {
    /// No value.
    #[serde(rename = "m")]
    Missing,
    /// An order-preserving numeric value.
    #[serde(rename = "n")]
    Num(u64),
    /// A string value.
    #[serde(rename = "s")]
    Str(String),
}

/// Where a hit sits in the sort order: its sort values and id. Also the content of a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// One part per sort key.
    #[serde(rename = "p")]
    pub parts: Vec<KeyPart>,
    /// The id (tie-break).
    #[serde(rename = "i")]
    pub id: String,
}

/// One hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Object num.
    pub num: u64,
    /// Score (0 unless sorting by score).
    pub score: Score,
    /// Sort values, one per key.
    pub parts: Vec<KeyPart>,
    /// The id, when the merge needed it to break a tie across segments.
    pub id: Option<String>,
    /// Segment ordinal and doc, to read the id from the index when needed.
    pub seg: SegmentOrdinal,
    /// Doc in its segment.
    pub doc: DocId,
    /// Nonzero: this hit and its neighbours with the same `tie` are equal on every sort key,
    /// come from different segments and are in no particular order yet; the caller orders them
    /// by id with [`order_ties`] once it has read their objects (see
    /// [`TopCollector::deferring_ties`]).
    pub tie: u32,
    id_rank: u128,
}

impl Hit {
    /// The cursor position after this hit, given its id (read from the stored object, which the
    /// caller fetches anyway, so the index's id dictionary is rarely decoded).
    pub fn position(&self, id: &str) -> Position {
        Position {
            parts: self.parts.clone(),
            id: id.to_string(),
        }
    }
}

/// Maps an f64 to a u64 with the same order.
pub fn f64_key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    }
}

/// Maps an i64 to a u64 with the same order.
pub fn i64_key(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// Inverse of [`i64_key`].
pub fn i64_from_key(k: u64) -> i64 {
    (k ^ (1 << 63)) as i64
}

/// Inverse of [`f64_key`].
pub fn f64_from_key(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k ^ (1 << 63))
    } else {
        f64::from_bits(!k)
    }
}

/// Compares two positions under the sort keys.
pub fn compare_positions(a: &Position, b: &Position, keys: &[SortKey]) -> Ordering {
    for (i, key) in keys.iter().enumerate() {
        let ord = match (a.parts.get(i), b.parts.get(i)) {
            (Some(KeyPart::Missing), Some(KeyPart::Missing)) => Ordering::Equal,
            (Some(KeyPart::Missing), _) => Ordering::Greater,
            (_, Some(KeyPart::Missing)) => Ordering::Less,
            (Some(x), Some(y)) => {
                let o = match (x, y) {
                    (KeyPart::Num(x), KeyPart::Num(y)) => x.cmp(y),
                    (KeyPart::Str(x), KeyPart::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
                    (KeyPart::Num(_), _) => Ordering::Less,
                    _ => Ordering::Greater,
                };
                if key.desc {
                    o.reverse()
                } else {
                    o
                }
            }
            _ => Ordering::Equal,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    let o = a.id.as_bytes().cmp(b.id.as_bytes());
    if keys.first().is_some_and(|k| k.desc) {
        o.reverse()
    } else {
        o
    }
}

const MISSING: u128 = 1 << 64;

#[inline]
fn adj(v: u64, desc: bool) -> u128 {
    (if desc { !v } else { v }) as u128
}

/// A hit's rank inside one segment: smaller is earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SegRank {
    parts: [u128; MAX_SORT_KEYS],
    id: u128,
}

enum SegColumn {
    Score,
    I64(Option<Column<i64>>),
    F64(Option<Column<f64>>),
    Bool(Option<Column<bool>>),
    Str(Option<StrColumn>),
}

impl SegColumn {
    fn open(source: &SortSource, seg: &SegmentReader, cache: &ColumnCache) -> tantivy::Result<SegColumn> {
        Ok(match source {
            SortSource::Score => SegColumn::Score,
            SortSource::I64(name) => SegColumn::I64(cache.i64(seg, name)?),
            SortSource::F64(name) => SegColumn::F64(cache.f64(seg, name)?),
            SortSource::Bool(name) => SegColumn::Bool(cache.bool(seg, name)?),
            SortSource::Str(name) => SegColumn::Str(cache.str(seg, name)?),
        })
    }

    /// The order-preserving value of a doc (string columns: 2 * ordinal + 1).
    #[inline]
    fn value(&self, doc: DocId, score: Score) -> Option<u64> {
        match self {
            SegColumn::Score => Some(f64_key(score as f64)),
            SegColumn::I64(c) => c.as_ref()?.first(doc).map(i64_key),
            SegColumn::F64(c) => c.as_ref()?.first(doc).map(f64_key),
            SegColumn::Bool(c) => c.as_ref()?.first(doc).map(u64::from),
            SegColumn::Str(c) => c.as_ref()?.ords().first(doc).map(|o| 2 * o + 1),
        }
    }

    /// The real value of a doc, for positions.
    fn part(&self, doc: DocId, score: Score) -> KeyPart {
        match self {
            SegColumn::Str(Some(c)) => match c.ords().first(doc) {
                Some(ord) => {
                    let mut s = String::new();
                    match c.ord_to_str(ord, &mut s) {
                        Ok(true) => KeyPart::Str(s),
                        _ => KeyPart::Missing,
                    }
                }
                None => KeyPart::Missing,
            },
            other => match other.value(doc, score) {
                Some(v) => KeyPart::Num(v),
                None => KeyPart::Missing,
            },
        }
    }

    /// A cursor part translated to this segment's value space.
    fn cursor_value(&self, part: &KeyPart) -> tantivy::Result<Option<u64>> {
        Ok(match (part, self) {
            (KeyPart::Missing, _) => None,
            (KeyPart::Num(v), _) => Some(*v),
            (KeyPart::Str(s), SegColumn::Str(Some(c))) => Some(ord_position(c, s)?),
            (KeyPart::Str(_), _) => Some(0),
        })
    }
}

/// Where a string falls among a segment's ordinals: 2*ord+1 when present, 2*next when not.
fn ord_position(c: &StrColumn, s: &str) -> tantivy::Result<u64> {
    let n = c.dictionary().num_terms() as u64;
    Ok(match c.dictionary().term_ord_or_next(s.as_bytes())? {
        TermOrdHit::Exact(o) => 2 * o + 1,
        TermOrdHit::Next(o) => 2 * o.min(n),
    })
}

/// Collects the exact total and the first `limit` hits after `after`, by `keys` then id.
pub struct TopCollector {
    keys: Vec<SortKey>,
    limit: usize,
    after: Option<Position>,
    cache: Arc<ColumnCache>,
    defer_ties: bool,
}

impl TopCollector {
    /// A collector; `keys` must have at most [`MAX_SORT_KEYS`] entries.
    pub fn new(keys: Vec<SortKey>, limit: usize, after: Option<Position>, cache: Arc<ColumnCache>) -> TopCollector {
        assert!(keys.len() <= MAX_SORT_KEYS, "validated by the query layer");
        TopCollector {
            keys,
            limit,
            after,
            cache,
            defer_ties: false,
        }
    }

    /// Leaves ties across segments that lie wholly before the last of the `limit` hits to the
    /// caller (marked in [`Hit::tie`]) instead of reading their ids from the index's dictionary:
    /// a page of a timeline or search loads those objects anyway, and each dictionary read
    /// decompresses a block (12% of a timeline's CPU, whose conversations and messages share
    /// timestamps across segments). The last hit's group is still resolved here, since it decides
    /// which hits are in.
    pub fn deferring_ties(mut self) -> TopCollector {
        self.defer_ties = true;
        self
    }
}

/// Orders the runs of items whose hits [`TopCollector::deferring_ties`] left tied by their ids,
/// in the direction of the first sort key (`desc`), as the collector orders all other ties.
pub fn order_ties<T>(items: &mut [T], tie: impl Fn(&T) -> u32, id: impl Fn(&T) -> &str, desc: bool) {
    let mut start = 0;
    while start < items.len() {
        let t = tie(&items[start]);
        let mut end = start + 1;
        while t != 0 && end < items.len() && tie(&items[end]) == t {
            end += 1;
        }
        if end - start > 1 {
            items[start..end].sort_by(|a, b| {
                let o = id(a).as_bytes().cmp(id(b).as_bytes());
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        start = end;
    }
}

fn missing(what: &str) -> tantivy::TantivyError {
    tantivy::TantivyError::SchemaError(format!("{what} column missing"))
}

/// The per-segment part of [`TopCollector`].
pub struct SegTop {
    seg_ord: SegmentOrdinal,
    columns: Vec<SegColumn>,
    desc: Vec<bool>,
    id_desc: bool,
    ids: StrColumn,
    nums: Column<u64>,
    after: Option<SegRank>,
    heap: BinaryHeap<(SegRank, DocId, u32)>,
    limit: usize,
    count: u64,
}

/// What one segment found: its count, its best hits, and its id column.
pub type SegFruit = (u64, Vec<Hit>, Option<StrColumn>);

impl Collector for TopCollector {
    type Fruit = (u64, Vec<Hit>);
    type Child = SegTop;

    fn for_segment(&self, seg_ord: SegmentOrdinal, seg: &SegmentReader) -> tantivy::Result<SegTop> {
        let columns = self
            .keys
            .iter()
            .map(|k| SegColumn::open(&k.source, seg, &self.cache))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let ids = self.cache.str(seg, schema::ID)?.ok_or_else(|| missing("id"))?;
        let nums = self.cache.u64(seg, schema::NUM)?.ok_or_else(|| missing("num"))?;
        let desc: Vec<bool> = self.keys.iter().map(|k| k.desc).collect();
        let id_desc = desc.first().copied().unwrap_or(false);
        let after = match &self.after {
            None => None,
            Some(pos) => {
                let mut parts = [0u128; MAX_SORT_KEYS];
                for (i, col) in columns.iter().enumerate() {
                    let part = pos.parts.get(i).unwrap_or(&KeyPart::Missing);
                    parts[i] = match col.cursor_value(part)? {
                        Some(v) => adj(v, desc[i]),
                        None => MISSING,
                    };
                }
                Some(SegRank {
                    parts,
                    id: adj(ord_position(&ids, &pos.id)?, id_desc),
                })
            }
        };
        Ok(SegTop {
            seg_ord,
            columns,
            desc,
            id_desc,
            ids,
            nums,
            after,
            heap: BinaryHeap::with_capacity(self.limit.min(10_000) + 1),
            limit: self.limit,
            count: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.keys.iter().any(|k| k.source == SortSource::Score)
    }

    fn merge_fruits(&self, fruits: Vec<SegFruit>) -> tantivy::Result<(u64, Vec<Hit>)> {
        let total = fruits.iter().map(|f| f.0).sum();
        let mut id_columns: Vec<(SegmentOrdinal, StrColumn)> = Vec::new();
        let mut hits: Vec<Hit> = Vec::new();
        for (_, seg_hits, ids) in fruits {
            if let (Some(ids), Some(first)) = (ids, seg_hits.first()) {
                id_columns.push((first.seg, ids));
            }
            hits.extend(seg_hits);
        }
        let parts_order = |a: &Hit, b: &Hit| {
            let pa = Position {
                parts: a.parts.clone(),
                id: String::new(),
            };
            let pb = Position {
                parts: b.parts.clone(),
                id: String::new(),
            };
            compare_positions(&pa, &pb, &self.keys)
        };
        hits.sort_by(parts_order);
        // Equal sort values: order by id. Inside one segment the id's ordinal orders like its
        // bytes; across segments the ids themselves are read. Only groups that reach into the
        // first `limit` hits matter.
        let id_desc = self.keys.first().is_some_and(|k| k.desc);
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        while start < hits.len() && start < self.limit {
            let mut end = start + 1;
            while end < hits.len() && parts_order(&hits[start], &hits[end]) == Ordering::Equal {
                end += 1;
            }
            if end - start > 1 {
                groups.push((start, end));
            }
            start = end;
        }
        let mixed = |g: &[Hit]| g.iter().any(|h| h.seg != g[0].seg);
        // Mixed groups the caller orders itself (before the last slot, which decides membership).
        let mut deferred = 0u32;
        groups.retain(|&(s, e)| {
            if self.defer_ties && e < self.limit && mixed(&hits[s..e]) {
                deferred += 1;
                hits[s..e].iter_mut().for_each(|h| h.tie = deferred);
                false
            } else {
                true
            }
        });
        // The ids of hits in mixed groups, read per segment in one ordered pass over the
        // dictionary (one block decompression per block instead of one per id).
        let mut wanted: FxHashMap<SegmentOrdinal, Vec<(u64, usize)>> = FxHashMap::default();
        for &(s, e) in &groups {
            if mixed(&hits[s..e]) {
                for (i, h) in hits.iter().enumerate().take(e).skip(s) {
                    if let Some((_, col)) = id_columns.iter().find(|(seg, _)| *seg == h.seg) {
                        if let Some(o) = col.ords().first(h.doc) {
                            wanted.entry(h.seg).or_default().push((o, i));
                        }
                    }
                }
            }
        }
        for (seg, mut ords) in wanted {
            let Some((_, col)) = id_columns.iter().find(|(s, _)| *s == seg) else {
                continue;
            };
            ords.sort_unstable();
            let mut distinct: Vec<u64> = ords.iter().map(|(o, _)| *o).collect();
            distinct.dedup();
            let mut ids: Vec<String> = Vec::with_capacity(distinct.len());
            col.dictionary()
                .sorted_ords_to_term_cb(&distinct, |b| ids.push(String::from_utf8_lossy(b).into_owned()))?;
            for (o, i) in ords {
                if let Ok(k) = distinct.binary_search(&o) {
                    hits[i].id = ids.get(k).cloned();
                }
            }
        }
        for (s, e) in groups {
            let group = &mut hits[s..e];
            if !mixed(group) {
                group.sort_by_key(|h| h.id_rank);
            } else {
                group.sort_by(|a, b| {
                    let o =
                        a.id.as_deref()
                            .unwrap_or("")
                            .as_bytes()
                            .cmp(b.id.as_deref().unwrap_or("").as_bytes());
                    if id_desc {
                        o.reverse()
                    } else {
                        o
                    }
                });
            }
        }
        hits.truncate(self.limit);
        Ok((total, hits))
    }
}

impl SegmentCollector for SegTop {
    type Fruit = SegFruit;

    #[inline]
    fn collect(&mut self, doc: DocId, score: Score) {
        self.count += 1;
        if self.limit == 0 {
            return;
        }
        let mut parts = [0u128; MAX_SORT_KEYS];
        for (i, col) in self.columns.iter().enumerate() {
            parts[i] = match col.value(doc, score) {
                Some(v) => adj(v, self.desc[i]),
                None => MISSING,
            };
        }
        if self.heap.len() >= self.limit {
            if let Some((worst, _, _)) = self.heap.peek() {
                if parts > worst.parts {
                    return;
                }
            }
        }
        if let Some(after) = &self.after {
            if parts < after.parts {
                return;
            }
        }
        let id = match self.ids.ords().first(doc) {
            Some(o) => adj(2 * o + 1, self.id_desc),
            None => MISSING,
        };
        let rank = SegRank { parts, id };
        if let Some(after) = &self.after {
            if rank <= *after {
                return;
            }
        }
        if self.heap.len() < self.limit {
            self.heap.push((rank, doc, score.to_bits()));
        } else if let Some(mut top) = self.heap.peek_mut() {
            if rank < top.0 {
                *top = (rank, doc, score.to_bits());
            }
        }
    }

    fn harvest(self) -> SegFruit {
        let mut hits = Vec::with_capacity(self.heap.len());
        for (rank, doc, score_bits) in self.heap.into_vec() {
            let score = f32::from_bits(score_bits);
            let parts = self.columns.iter().map(|c| c.part(doc, score)).collect();
            let num = self.nums.first(doc).unwrap_or(0);
            hits.push(Hit {
                num,
                score,
                parts,
                id: None,
                seg: self.seg_ord,
                doc,
                tie: 0,
                id_rank: rank.id,
            });
        }
        (self.count, hits, Some(self.ids))
    }
}

/// Reads the nums a link column holds for a doc.
pub enum LinkReader {
    /// A typed u64 field.
    U64(Column<u64>),
    /// A JSON i64 path.
    I64(Column<i64>),
    /// The column does not exist in this segment.
    Empty,
}

impl LinkReader {
    /// Opens the column of a link in a segment.
    pub fn open(link: &LinkColumn, seg: &SegmentReader, cache: &ColumnCache) -> tantivy::Result<LinkReader> {
        Ok(match link {
            LinkColumn::Json(_) => match cache.i64(seg, &link.column_name())? {
                Some(c) => LinkReader::I64(c),
                None => LinkReader::Empty,
            },
            _ => match cache.u64(seg, &link.column_name())? {
                Some(c) => LinkReader::U64(c),
                None => LinkReader::Empty,
            },
        })
    }

    /// Calls `f` once per distinct num the doc links to.
    #[inline]
    pub fn for_each(&self, doc: DocId, mut f: impl FnMut(u64)) {
        match self {
            LinkReader::U64(c) => dedup_each(c.values_for_doc(doc), &mut f),
            LinkReader::I64(c) => dedup_each(c.values_for_doc(doc).map(|v| v as u64), &mut f),
            LinkReader::Empty => {}
        }
    }
}

#[inline]
fn dedup_each(values: impl Iterator<Item = u64>, f: &mut impl FnMut(u64)) {
    let mut seen: [u64; 8] = [0; 8];
    let mut n = 0usize;
    let mut overflow: Option<FxHashSet<u64>> = None;
    for v in values {
        if n < 8 {
            if seen[..n].contains(&v) {
                continue;
            }
            seen[n] = v;
            n += 1;
        } else {
            let set = overflow.get_or_insert_with(|| seen.iter().copied().collect());
            if !set.insert(v) {
                continue;
            }
        }
        f(v);
    }
}

/// The link columns of one relationship or several in a segment, read together.
pub enum Links {
    /// One column (the common case: read as is).
    One(LinkReader),
    /// Several, with a scratch buffer to merge their values.
    Many(Vec<LinkReader>, Vec<u64>),
}

impl Links {
    /// Opens the columns of `links` in a segment.
    pub fn open(links: &[LinkColumn], seg: &SegmentReader, cache: &ColumnCache) -> tantivy::Result<Links> {
        Ok(match links {
            [link] => Links::One(LinkReader::open(link, seg, cache)?),
            _ => Links::Many(
                links
                    .iter()
                    .map(|link| LinkReader::open(link, seg, cache))
                    .collect::<tantivy::Result<_>>()?,
                Vec::new(),
            ),
        })
    }

    /// Calls `f` once per distinct num the doc links to through any of the columns.
    #[inline]
    pub fn for_each(&mut self, doc: DocId, mut f: impl FnMut(u64)) {
        match self {
            Links::One(reader) => reader.for_each(doc, f),
            Links::Many(readers, buf) => {
                buf.clear();
                for reader in readers.iter() {
                    reader.for_each(doc, |v| buf.push(v));
                }
                buf.sort_unstable();
                buf.dedup();
                buf.iter().for_each(|v| f(*v));
            }
        }
    }
}

/// Counts, for every num a matching doc links to through any of the columns, how many matching
/// docs link to it (a doc linking to a num through two columns counts once).
pub struct LinkCounts(pub Vec<LinkColumn>, pub Arc<ColumnCache>);

/// The per-segment part of [`LinkCounts`].
pub struct SegLinkCounts {
    links: Links,
    counts: FxHashMap<u64, u32>,
}

impl Collector for LinkCounts {
    type Fruit = FxHashMap<u64, u32>;
    type Child = SegLinkCounts;

    fn for_segment(&self, _ord: SegmentOrdinal, seg: &SegmentReader) -> tantivy::Result<SegLinkCounts> {
        Ok(SegLinkCounts {
            links: Links::open(&self.0, seg, &self.1)?,
            counts: FxHashMap::default(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FxHashMap<u64, u32>>) -> tantivy::Result<FxHashMap<u64, u32>> {
        let mut it = fruits.into_iter();
        let mut out = it.next().unwrap_or_default();
        for f in it {
            for (k, v) in f {
                *out.entry(k).or_insert(0) += v;
            }
        }
        Ok(out)
    }
}

impl SegmentCollector for SegLinkCounts {
    type Fruit = FxHashMap<u64, u32>;

    #[inline]
    fn collect(&mut self, doc: DocId, _score: Score) {
        let counts = &mut self.counts;
        self.links.for_each(doc, |v| *counts.entry(v).or_insert(0) += 1);
    }

    fn harvest(self) -> FxHashMap<u64, u32> {
        self.counts
    }
}

/// (linked num, num) for every num a matching doc links to through any of the columns, each pair
/// once, sorted: which matches link to each num.
pub struct LinkPairs(pub Vec<LinkColumn>, pub Arc<ColumnCache>);

/// The per-segment part of [`LinkPairs`].
pub struct SegLinkPairs {
    nums: Column<u64>,
    links: Links,
    pairs: Vec<(u64, u64)>,
}

impl Collector for LinkPairs {
    type Fruit = Vec<(u64, u64)>;
    type Child = SegLinkPairs;

    fn for_segment(&self, _ord: SegmentOrdinal, seg: &SegmentReader) -> tantivy::Result<SegLinkPairs> {
        Ok(SegLinkPairs {
            nums: self.1.u64(seg, schema::NUM)?.ok_or_else(|| missing("num"))?,
            links: Links::open(&self.0, seg, &self.1)?,
            pairs: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<(u64, u64)>>) -> tantivy::Result<Vec<(u64, u64)>> {
        let mut out: Vec<(u64, u64)> = fruits.into_iter().flatten().collect();
        out.sort_unstable();
        Ok(out)
    }
}

impl SegmentCollector for SegLinkPairs {
    type Fruit = Vec<(u64, u64)>;

    #[inline]
    fn collect(&mut self, doc: DocId, _score: Score) {
        let Some(num) = self.nums.first(doc) else {
            return;
        };
        let pairs = &mut self.pairs;
        self.links.for_each(doc, |v| pairs.push((v, num)));
    }

    fn harvest(self) -> Vec<(u64, u64)> {
        self.pairs
    }
}

/// Collects the nums of every matching doc.
pub struct Nums(pub Arc<ColumnCache>);

/// The per-segment part of [`Nums`].
pub struct SegNums {
    nums: Column<u64>,
    out: Vec<u64>,
}

impl Collector for Nums {
    type Fruit = Vec<u64>;
    type Child = SegNums;

    fn for_segment(&self, _ord: SegmentOrdinal, seg: &SegmentReader) -> tantivy::Result<SegNums> {
        Ok(SegNums {
            nums: self.0.u64(seg, schema::NUM)?.ok_or_else(|| missing("num"))?,
            out: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegNums {
    type Fruit = Vec<u64>;

    #[inline]
    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(n) = self.nums.first(doc) {
            self.out.push(n);
        }
    }

    fn harvest(self) -> Vec<u64> {
        self.out
    }
}

/// Collects (num, updatedAt) of every matching doc: what `verify` compares with the store.
pub struct Inventory;

/// The per-segment part of [`Inventory`].
pub struct SegInventory {
    nums: Column<u64>,
    updated: Option<Column<i64>>,
    out: Vec<(u64, i64)>,
}

impl Collector for Inventory {
    type Fruit = Vec<(u64, i64)>;
    type Child = SegInventory;

    fn for_segment(&self, _ord: SegmentOrdinal, seg: &SegmentReader) -> tantivy::Result<SegInventory> {
        Ok(SegInventory {
            nums: seg.fast_fields().u64(schema::NUM)?,
            updated: seg.fast_fields().column_opt::<i64>(schema::UPDATED)?,
            out: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<(u64, i64)>>) -> tantivy::Result<Vec<(u64, i64)>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegInventory {
    type Fruit = Vec<(u64, i64)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(n) = self.nums.first(doc) {
            let u = self.updated.as_ref().and_then(|c| c.first(doc)).unwrap_or(i64::MIN);
            self.out.push((n, u));
        }
    }

    fn harvest(self) -> Vec<(u64, i64)> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn f64_keys_preserve_order(a in any::<f64>(), b in any::<f64>()) {
            prop_assume!(a.is_finite() && b.is_finite());
            if a < b { prop_assert!(f64_key(a) < f64_key(b)); }
            prop_assert_eq!(f64_from_key(f64_key(a)), a);
        }

        #[test]
        fn i64_keys_preserve_order(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(a.cmp(&b), i64_key(a).cmp(&i64_key(b)));
            prop_assert_eq!(i64_from_key(i64_key(a)), a);
        }
    }

    #[test]
    fn missing_sorts_last_in_both_directions() {
        let pos = |p: KeyPart, id: &str| Position {
            parts: vec![p],
            id: id.into(),
        };
        for desc in [false, true] {
            let keys = vec![SortKey {
                source: SortSource::I64("x".into()),
                desc,
            }];
            assert_eq!(
                compare_positions(&pos(KeyPart::Missing, "a"), &pos(KeyPart::Num(1), "b"), &keys),
                Ordering::Greater
            );
            assert_eq!(
                compare_positions(&pos(KeyPart::Num(1), "a"), &pos(KeyPart::Missing, "b"), &keys),
                Ordering::Less
            );
        }
        let desc = vec![SortKey {
            source: SortSource::I64("x".into()),
            desc: true,
        }];
        assert_eq!(
            compare_positions(&pos(KeyPart::Num(1), "a"), &pos(KeyPart::Num(1), "b"), &desc),
            Ordering::Greater
        );
    }

    #[test]
    fn order_ties_sorts_each_tied_run_by_id_and_leaves_the_rest() {
        // (tie, id): two tied runs (1 and 2) around untied items, which keep their places.
        let mut items = vec![
            (0, "m"),
            (1, "c"),
            (1, "a"),
            (1, "b"),
            (0, "z"),
            (2, "y"),
            (2, "x"),
            (0, "a"),
        ];
        order_ties(&mut items, |i| i.0, |i| i.1, false);
        assert_eq!(
            items,
            vec![
                (0, "m"),
                (1, "a"),
                (1, "b"),
                (1, "c"),
                (0, "z"),
                (2, "x"),
                (2, "y"),
                (0, "a")
            ]
        );
        order_ties(&mut items, |i| i.0, |i| i.1, true);
        assert_eq!(
            items,
            vec![
                (0, "m"),
                (1, "c"),
                (1, "b"),
                (1, "a"),
                (0, "z"),
                (2, "y"),
                (2, "x"),
                (0, "a")
            ]
        );
        // Untied neighbours with equal ids are never reordered.
        let mut untied = vec![(0, "b"), (0, "a")];
        order_ties(&mut untied, |i| i.0, |i| i.1, false);
        assert_eq!(untied, vec![(0, "b"), (0, "a")]);
    }
}
