//! Baseline: plain tantivy 0.27 in-process, the "plain tantivy" column of DATASET.md "What to beat".
//! Measures what an engine built on tantivy could reach at best: no HTTP, no store, no JSON fields.
//!
//! What it does:
//! - reads a generated org (`kindred gen`, bulk NDJSON files 02..06) from `$KINDRED_BENCH_DATA`
//!   (default `target/bench-data/s`), one document per object in a typed schema (one field per
//!   attribute, u64 ids `obj_num` / `customer_num` / `conversation_num` for joins, fast fields for the
//!   queried attributes, `en_stem` text with freqs but no positions (the API has no phrase
//!   search) for subject, bio and body, no stored fields);
//! - indexes with 2 threads and a 1 GiB budget into `$KINDRED_BASELINE_INDEX` (reused when it already
//!   holds an index; load figures are then skipped) or a temp dir, and prints load objects/s and the
//!   index size;
//! - runs DATASET.md's Q1..Q7 (absolute parameters, now = 2026-01-01) warm on one searcher, single
//!   threaded, each result resolved to object ids from the `obj_num` fast field, and prints
//!   p50 / p99 ms and the result total. When it indexed the data itself it also computes the
//!   expected totals from the NDJSON while loading and prints `ok` or `MISMATCH` per query.
//! - Two "alt" rows time another formulation of the same query: Q1 with `priority >= 3` as three
//!   term queries instead of a fast-field range, Q6b as a `range` aggregation (12 month bounds, no
//!   date-filter query) instead of `composite` + `calendar_interval`. Both were faster at scale S:
//!   ranges on sparse fast columns (a field only orders or conversations have) pay for the
//!   optional-index doc id <-> row id mapping.
//!
//! Run (from the repo root; the data must exist first):
//!   cargo run --release -- gen --customers 100000 --seed 42 --out target/bench-data/s
//!   cargo bench --bench baseline_tantivy
//!   KINDRED_BENCH_DATA=/tmp/org-2k KINDRED_BASELINE_INDEX=/tmp/idx-2k cargo bench --bench baseline_tantivy

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::AggregationCollector;
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::query::{
    doc_predicate_query::{DocPredicateQuery, FunctionPredicate},
    BooleanQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
    FAST, INDEXED, STRING, TEXT,
};
use tantivy::{
    DateTime, DocAddress, DocId, Index, IndexReader, Order, ReloadPolicy, Score, Searcher, SegmentOrdinal,
    SegmentReader, TantivyDocument, Term,
};

const DAY_MS: i64 = 86_400_000;
/// 2025-12-01, 2025-10-01, 2025-01-01, 2026-01-01 (= now) in ms since the epoch.
const DEC_1_2025: i64 = 1_764_547_200_000;
const OCT_1_2025: i64 = 1_759_276_800_000;
const JAN_1_2025: i64 = 1_735_689_600_000;
const JAN_1_2026: i64 = 1_767_225_600_000;
const OBJECT_FILES: [&str; 5] = [
    "02-companies.ndjson",
    "03-customers.ndjson",
    "04-orders.ndjson",
    "05-conversations.ndjson",
    "06-messages.ndjson",
];

// ---------------------------------------------------------------------------------------------
// Schema

/// Every field of the typed schema. Fields are per klass attribute, so e.g. `status` only
/// exists on conversations and a query on it needs no `klass` filter.
struct Fields {
    klass: Field,
    id: Field,
    obj_num: Field,
    customer_num: Field,
    conversation_num: Field,
    company_num: Field,
    external_id: Field,
    created_at: Field,
    updated_at: Field,
    tags: Field,
    name: Field,
    email: Field,
    phone: Field,
    domain: Field,
    industry: Field,
    employees: Field,
    tier: Field,
    ltv: Field,
    country: Field,
    vip: Field,
    bio: Field,
    title: Field,
    order_number: Field,
    total: Field,
    order_status: Field,
    placed_at: Field,
    items: Field,
    sku: Field,
    order_channel: Field,
    subject: Field,
    status: Field,
    channel: Field,
    priority: Field,
    assigned_team: Field,
    assigned_user: Field,
    snoozed_until: Field,
    direction: Field,
    body: Field,
}

fn build_schema() -> Schema {
    let mut s = Schema::builder();
    let num = || NumericOptions::default().set_indexed();
    let num_fast = || NumericOptions::default().set_indexed().set_fast();
    let date = |fast: bool| {
        let o = DateOptions::default()
            .set_indexed()
            .set_precision(DateTimePrecision::Milliseconds);
        if fast {
            o.set_fast()
        } else {
            o
        }
    };
    let stemmed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("en_stem")
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    s.add_text_field("klass", STRING);
    s.add_text_field("id", STRING);
    s.add_u64_field("obj_num", num_fast());
    s.add_u64_field("customer_num", num_fast());
    s.add_u64_field("conversation_num", num_fast());
    s.add_u64_field("company_num", num());
    s.add_text_field("external_id", STRING);
    s.add_date_field("created_at", date(true));
    s.add_date_field("updated_at", date(true));
    s.add_text_field("tags", STRING);
    s.add_text_field("name", TEXT);
    s.add_text_field("email", STRING);
    s.add_text_field("phone", STRING);
    s.add_text_field("domain", STRING);
    s.add_text_field("industry", STRING);
    s.add_i64_field("employees", num());
    s.add_text_field("tier", STRING);
    s.add_f64_field("ltv", num_fast());
    s.add_text_field("country", STRING);
    s.add_bool_field("vip", INDEXED);
    s.add_text_field("bio", stemmed.clone());
    s.add_text_field("title", STRING);
    s.add_text_field("order_number", STRING);
    s.add_f64_field("total", num_fast());
    s.add_text_field("order_status", STRING);
    s.add_date_field("placed_at", date(true));
    s.add_i64_field("items", num());
    s.add_text_field("sku", STRING);
    s.add_text_field("order_channel", STRING);
    s.add_text_field("subject", stemmed.clone());
    s.add_text_field("status", STRING | FAST);
    s.add_text_field("channel", STRING | FAST);
    s.add_u64_field("priority", num_fast());
    s.add_text_field("assigned_team", STRING);
    s.add_text_field("assigned_user", STRING);
    s.add_date_field("snoozed_until", date(false));
    s.add_text_field("direction", STRING);
    s.add_text_field("body", stemmed);
    s.build()
}

impl Fields {
    fn of(schema: &Schema) -> anyhow::Result<Fields> {
        let f = |n: &str| schema.get_field(n).with_context(|| format!("index lacks field {n}"));
        Ok(Fields {
            klass: f("klass")?,
            id: f("id")?,
            obj_num: f("obj_num")?,
            customer_num: f("customer_num")?,
            conversation_num: f("conversation_num")?,
            company_num: f("company_num")?,
            external_id: f("external_id")?,
            created_at: f("created_at")?,
            updated_at: f("updated_at")?,
            tags: f("tags")?,
            name: f("name")?,
            email: f("email")?,
            phone: f("phone")?,
            domain: f("domain")?,
            industry: f("industry")?,
            employees: f("employees")?,
            tier: f("tier")?,
            ltv: f("ltv")?,
            country: f("country")?,
            vip: f("vip")?,
            bio: f("bio")?,
            title: f("title")?,
            order_number: f("order_number")?,
            total: f("total")?,
            order_status: f("order_status")?,
            placed_at: f("placed_at")?,
            items: f("items")?,
            sku: f("sku")?,
            order_channel: f("order_channel")?,
            subject: f("subject")?,
            status: f("status")?,
            channel: f("channel")?,
            priority: f("priority")?,
            assigned_team: f("assigned_team")?,
            assigned_user: f("assigned_user")?,
            snoozed_until: f("snoozed_until")?,
            direction: f("direction")?,
            body: f("body")?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Input: the bulk line format, typed

#[derive(Deserialize)]
struct Line {
    klass: String,
    id: String,
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    object: Obj,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Obj {
    name: Option<String>,
    emails: Vec<String>,
    phones: Vec<String>,
    domains: Vec<String>,
    company: Option<String>,
    customer: Option<String>,
    conversation: Option<String>,
    tags: Vec<String>,
    title: Option<String>,
    subject: Option<String>,
    status: Option<String>,
    channel: Option<String>,
    priority: Option<u64>,
    assigned_team: Option<String>,
    assigned_user: Option<String>,
    snoozed_until: Option<String>,
    direction: Option<String>,
    body: Option<String>,
    custom: Custom,
    created_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Custom {
    industry_str: Option<String>,
    employees_num: Option<i64>,
    tier_str: Option<String>,
    ltv_num: Option<f64>,
    country_str: Option<String>,
    vip_bool: Option<bool>,
    bio_txt: Option<String>,
    order_number_str: Option<String>,
    total_num: Option<f64>,
    status_str: Option<String>,
    placed_at: Option<String>,
    items_num: Option<i64>,
    sku_str: Option<String>,
    channel_str: Option<String>,
}

/// `customer-123` -> 123.
fn num_of(id: &str) -> anyhow::Result<u64> {
    id.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .with_context(|| format!("id {id} does not end in -<number>"))
}

fn parse_ms(s: &str) -> anyhow::Result<i64> {
    let b = s.as_bytes();
    // fast path for the generator's `YYYY-MM-DDTHH:MM:SS.mmmZ`
    if b.len() == 24 && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z' {
        let n = |r: std::ops::Range<usize>| s[r].parse::<i64>();
        if let (Ok(y), Ok(mo), Ok(d), Ok(h), Ok(mi), Ok(se), Ok(ms)) =
            (n(0..4), n(5..7), n(8..10), n(11..13), n(14..16), n(17..19), n(20..23))
        {
            // days from civil (H. Hinnant)
            let y = if mo <= 2 { y - 1 } else { y };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let mp = (mo + 9) % 12;
            let doy = (153 * mp + 2) / 5 + d - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            let days = era * 146_097 + doe - 719_468;
            return Ok(days * DAY_MS + h * 3_600_000 + mi * 60_000 + se * 1000 + ms);
        }
    }
    let t = tantivy::time::OffsetDateTime::parse(s, &tantivy::time::format_description::well_known::Rfc3339)
        .with_context(|| format!("bad time {s}"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn date(ms: i64) -> DateTime {
    DateTime::from_timestamp_millis(ms)
}

/// Expected query answers, computed from the NDJSON while loading (a cross-check of the index).
#[derive(Default)]
struct Expected {
    q1: u64,
    q2: u64,
    q3: std::collections::HashSet<u64>,
    q4: u64,
    timeline: HashMap<u64, u64>,
    q6a: BTreeMap<(String, String), u64>,
    q6b_cents: BTreeMap<u32, (u64, i64)>,
}

impl Expected {
    fn observe(&mut self, l: &Line, customer: Option<u64>, created: i64) {
        let o = &l.object;
        let c = &o.custom;
        if let Some(cn) = customer {
            *self.timeline.entry(cn).or_default() += 1;
        }
        match l.klass.as_str() {
            "customer" => {
                let us_ca = matches!(c.country_str.as_deref(), Some("US" | "CA"));
                if c.tier_str.as_deref() == Some("gold") && us_ca && c.ltv_num >= Some(500.0) {
                    self.q2 += 1;
                }
            }
            "order" => {
                let placed = c.placed_at.as_deref().map(parse_ms).transpose().ok().flatten();
                if let (Some(t), Some(total), Some(cn)) = (placed, c.total_num, customer) {
                    if total >= 200.0 && t >= DEC_1_2025 {
                        self.q3.insert(cn);
                    }
                    if (JAN_1_2025..JAN_1_2026).contains(&t) {
                        let month = month_of(t);
                        let e = self.q6b_cents.entry(month).or_default();
                        e.0 += 1;
                        e.1 += (total * 100.0).round() as i64;
                    }
                }
            }
            "conversation" => {
                if o.status.as_deref() == Some("open")
                    && o.assigned_team.as_deref() == Some("team-3")
                    && o.priority >= Some(3)
                {
                    self.q1 += 1;
                }
                let key = (
                    o.channel.clone().unwrap_or_default(),
                    o.status.clone().unwrap_or_default(),
                );
                *self.q6a.entry(key).or_default() += 1;
            }
            "message" if created >= OCT_1_2025 => {
                let body = o.body.as_deref().unwrap_or("").to_lowercase();
                let has = |w: &str| body.split(|ch: char| !ch.is_alphanumeric()).any(|x| x == w);
                if has("refund") && has("delayed") {
                    self.q4 += 1;
                }
            }
            _ => {}
        }
    }
}

/// Month (1..12) of a 2025 timestamp.
fn month_of(ms: i64) -> u32 {
    const STARTS: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let day = (ms - JAN_1_2025) / DAY_MS;
    STARTS.iter().rposition(|&s| day >= s).unwrap() as u32 + 1
}

fn to_doc(f: &Fields, l: &Line) -> anyhow::Result<(TantivyDocument, Option<u64>, i64)> {
    let o = &l.object;
    let c = &o.custom;
    let mut d = TantivyDocument::new();
    d.add_text(f.klass, &l.klass);
    d.add_text(f.id, &l.id);
    d.add_u64(f.obj_num, num_of(&l.id)?);
    let customer = o.customer.as_deref().map(num_of).transpose()?;
    if let Some(n) = customer {
        d.add_u64(f.customer_num, n);
    }
    if let Some(x) = &o.conversation {
        d.add_u64(f.conversation_num, num_of(x)?);
    }
    if let Some(x) = &o.company {
        d.add_u64(f.company_num, num_of(x)?);
    }
    if let Some(x) = &l.external_id {
        d.add_text(f.external_id, x);
    }
    let created = o.created_at.as_deref().map(parse_ms).transpose()?.unwrap_or(0);
    d.add_date(f.created_at, date(created));
    if let Some(x) = &o.updated_at {
        d.add_date(f.updated_at, date(parse_ms(x)?));
    }
    for t in &o.tags {
        d.add_text(f.tags, t);
    }
    let text = |d: &mut TantivyDocument, field: Field, v: &Option<String>| {
        if let Some(v) = v {
            d.add_text(field, v);
        }
    };
    text(&mut d, f.name, &o.name);
    for e in &o.emails {
        d.add_text(f.email, e.to_lowercase());
    }
    for p in &o.phones {
        d.add_text(f.phone, p);
    }
    for x in &o.domains {
        d.add_text(f.domain, x);
    }
    text(&mut d, f.industry, &c.industry_str);
    if let Some(x) = c.employees_num {
        d.add_i64(f.employees, x);
    }
    text(&mut d, f.tier, &c.tier_str);
    if let Some(x) = c.ltv_num {
        d.add_f64(f.ltv, x);
    }
    text(&mut d, f.country, &c.country_str);
    if let Some(x) = c.vip_bool {
        d.add_bool(f.vip, x);
    }
    text(&mut d, f.bio, &c.bio_txt);
    text(&mut d, f.title, &o.title);
    text(&mut d, f.order_number, &c.order_number_str);
    if let Some(x) = c.total_num {
        d.add_f64(f.total, x);
    }
    text(&mut d, f.order_status, &c.status_str);
    if let Some(x) = &c.placed_at {
        d.add_date(f.placed_at, date(parse_ms(x)?));
    }
    if let Some(x) = c.items_num {
        d.add_i64(f.items, x);
    }
    text(&mut d, f.sku, &c.sku_str);
    text(&mut d, f.order_channel, &c.channel_str);
    text(&mut d, f.subject, &o.subject);
    text(&mut d, f.status, &o.status);
    text(&mut d, f.channel, &o.channel);
    if let Some(x) = o.priority {
        d.add_u64(f.priority, x);
    }
    text(&mut d, f.assigned_team, &o.assigned_team);
    text(&mut d, f.assigned_user, &o.assigned_user);
    if let Some(x) = &o.snoozed_until {
        d.add_date(f.snoozed_until, date(parse_ms(x)?));
    }
    text(&mut d, f.direction, &o.direction);
    text(&mut d, f.body, &o.body);
    Ok((d, customer, created))
}

/// Indexes every object file; returns (objects, expected answers).
fn load(index: &Index, data: &Path) -> anyhow::Result<(u64, Expected)> {
    let f = Fields::of(&index.schema())?;
    let mut writer = index.writer_with_num_threads::<TantivyDocument>(2, 1 << 30)?;
    let mut expected = Expected::default();
    let mut objects = 0u64;
    let t0 = Instant::now();
    let mut buf = String::new();
    for name in OBJECT_FILES {
        let path = data.join(name);
        let mut r = BufReader::with_capacity(
            1 << 20,
            File::open(&path).with_context(|| format!("cannot open {}", path.display()))?,
        );
        let mut lineno = 0;
        loop {
            buf.clear();
            if r.read_line(&mut buf)? == 0 {
                break;
            }
            lineno += 1;
            let l: Line = serde_json::from_str(&buf).with_context(|| format!("{}:{lineno}", path.display()))?;
            let (doc, customer, created) = to_doc(&f, &l)?;
            expected.observe(&l, customer, created);
            writer.add_document(doc)?;
            objects += 1;
        }
    }
    writer.commit()?;
    let t1 = t0.elapsed();
    writer.wait_merging_threads()?;
    let t2 = t0.elapsed();
    println!(
        "load: {objects} objects in {:.1} s to commit = {:.0} objects/s ({:.1} s with merges done)",
        t1.as_secs_f64(),
        objects as f64 / t1.as_secs_f64(),
        t2.as_secs_f64()
    );
    Ok((objects, expected))
}

fn dir_size(p: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() { dir_size(&e.path())? } else { m.len() };
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Queries

/// Collects the distinct values of a u64 fast field over the matching docs into a bitmap.
struct DistinctU64 {
    field: &'static str,
    max: u64,
}

struct DistinctU64Segment {
    col: Column<u64>,
    bits: Vec<u64>,
}

impl Collector for DistinctU64 {
    type Fruit = Vec<u64>;
    type Child = DistinctU64Segment;

    fn for_segment(&self, _: SegmentOrdinal, r: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(DistinctU64Segment {
            col: r.fast_fields().u64(self.field)?,
            bits: vec![0; (self.max / 64 + 1) as usize],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        let mut out = vec![0; (self.max / 64 + 1) as usize];
        for f in fruits {
            for (o, b) in out.iter_mut().zip(f) {
                *o |= b;
            }
        }
        Ok(out)
    }
}

impl SegmentCollector for DistinctU64Segment {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: DocId, _: Score) {
        for v in self.col.values_for_doc(doc) {
            if let Some(w) = self.bits.get_mut((v / 64) as usize) {
                *w |= 1 << (v % 64);
            }
        }
    }

    fn harvest(self) -> Vec<u64> {
        self.bits
    }
}

/// Counts the docs per value of a u64 fast field (values 0..=max).
struct CountsU64 {
    field: &'static str,
    max: u64,
}

struct CountsU64Segment {
    col: Column<u64>,
    counts: Vec<u32>,
}

impl Collector for CountsU64 {
    type Fruit = Vec<u32>;
    type Child = CountsU64Segment;

    fn for_segment(&self, _: SegmentOrdinal, r: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(CountsU64Segment {
            col: r.fast_fields().u64(self.field)?,
            counts: vec![0; self.max as usize + 1],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u32>>) -> tantivy::Result<Vec<u32>> {
        let mut out = vec![0; self.max as usize + 1];
        for f in fruits {
            for (o, n) in out.iter_mut().zip(f) {
                *o += n;
            }
        }
        Ok(out)
    }
}

impl SegmentCollector for CountsU64Segment {
    type Fruit = Vec<u32>;

    fn collect(&mut self, doc: DocId, _: Score) {
        for v in self.col.values_for_doc(doc) {
            if let Some(n) = self.counts.get_mut(v as usize) {
                *n += 1;
            }
        }
    }

    fn harvest(self) -> Vec<u32> {
        self.counts
    }
}

struct Bench<'a> {
    searcher: Searcher,
    f: Fields,
    /// `obj_num` column per segment, opened once per searcher as a service would.
    obj_nums: Vec<Column<u64>>,
    index: &'a Index,
}

type Q = Box<dyn Query>;

impl Bench<'_> {
    fn term(&self, field: Field, v: &str) -> Q {
        Box::new(TermQuery::new(
            Term::from_field_text(field, v),
            IndexRecordOption::Basic,
        ))
    }

    fn ids(&self, hits: &[DocAddress]) -> Vec<u64> {
        hits.iter()
            .map(|a| {
                self.obj_nums[a.segment_ord as usize]
                    .first(a.doc_id)
                    .unwrap_or(u64::MAX)
            })
            .collect()
    }

    /// Total + top `n` by a date fast field, newest first; ids resolved.
    fn top_by_date(&self, q: &dyn Query, field: &str, n: usize) -> tantivy::Result<(u64, Vec<u64>)> {
        let top = TopDocs::with_limit(n).order_by_fast_field::<DateTime>(field, Order::Desc);
        let (total, hits) = self.searcher.search(q, &(Count, top))?;
        let addrs: Vec<DocAddress> = hits.into_iter().map(|h| h.1).collect();
        Ok((total as u64, self.ids(&addrs)))
    }

    fn q1(&self) -> tantivy::Result<(u64, Vec<u64>)> {
        let f = &self.f;
        let q = BooleanQuery::intersection(vec![
            self.term(f.status, "open"),
            self.term(f.assigned_team, "team-3"),
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(f.priority, 3)),
                Bound::Unbounded,
            )),
        ]);
        self.top_by_date(&q, "updated_at", 50)
    }

    /// Q1 with `priority >= 3` as a union of term queries (inverted index) instead of a
    /// fast-field range.
    fn q1_terms(&self) -> tantivy::Result<(u64, Vec<u64>)> {
        let f = &self.f;
        let prio = |p: u64| -> Q {
            Box::new(TermQuery::new(
                Term::from_field_u64(f.priority, p),
                IndexRecordOption::Basic,
            ))
        };
        let q = BooleanQuery::intersection(vec![
            self.term(f.status, "open"),
            self.term(f.assigned_team, "team-3"),
            Box::new(BooleanQuery::union(vec![prio(3), prio(4), prio(5)])),
        ]);
        self.top_by_date(&q, "updated_at", 50)
    }

    fn q2(&self) -> tantivy::Result<(u64, Vec<u64>)> {
        let f = &self.f;
        let q = BooleanQuery::intersection(vec![
            self.term(f.tier, "gold"),
            Box::new(BooleanQuery::union(vec![
                self.term(f.country, "US"),
                self.term(f.country, "CA"),
            ])),
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_f64(f.ltv, 500.0)),
                Bound::Unbounded,
            )),
        ]);
        let top = TopDocs::with_limit(50).order_by_fast_field::<f64>("ltv", Order::Desc);
        let (total, hits) = self.searcher.search(&q, &(Count, top))?;
        let addrs: Vec<DocAddress> = hits.into_iter().map(|h| h.1).collect();
        Ok((total as u64, self.ids(&addrs)))
    }

    /// Two-phase join: customer_num of matching orders, then customers whose obj_num is in it.
    fn q3(&self, max_customer: u64) -> tantivy::Result<(u64, Vec<u64>)> {
        let f = &self.f;
        let orders = BooleanQuery::intersection(vec![
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_f64(f.total, 200.0)),
                Bound::Unbounded,
            )),
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_date(f.placed_at, date(DEC_1_2025))),
                Bound::Unbounded,
            )),
        ]);
        let bits = Arc::new(self.searcher.search(
            &orders,
            &DistinctU64 {
                field: "customer_num",
                max: max_customer,
            },
        )?);
        let pred = FunctionPredicate::from(move |seg: &SegmentReader| {
            let col = seg.fast_fields().u64("obj_num")?;
            let bits = bits.clone();
            Ok(move |doc: DocId| {
                col.first(doc)
                    .is_some_and(|v| bits.get((v / 64) as usize).is_some_and(|w| w & (1 << (v % 64)) != 0))
            })
        });
        let customers = BooleanQuery::intersection(vec![
            self.term(f.klass, "customer"),
            Box::new(DocPredicateQuery::from(pred)),
        ]);
        self.top_by_date(&customers, "updated_at", 50)
    }

    fn q4(&self) -> tantivy::Result<(u64, Vec<u64>)> {
        let f = &self.f;
        let mut clauses: Vec<Q> = Vec::new();
        for word in ["refund", "delayed"] {
            let mut analyzer = self.index.tokenizer_for_field(f.body)?;
            let mut stream = analyzer.token_stream(word);
            while let Some(t) = stream.next() {
                clauses.push(Box::new(TermQuery::new(
                    Term::from_field_text(f.body, &t.text),
                    IndexRecordOption::Basic,
                )));
            }
        }
        clauses.push(Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_date(f.created_at, date(OCT_1_2025))),
            Bound::Unbounded,
        )));
        self.top_by_date(&BooleanQuery::intersection(clauses), "created_at", 20)
    }

    fn q5(&self, customer: u64) -> tantivy::Result<(u64, Vec<u64>)> {
        let q = TermQuery::new(
            Term::from_field_u64(self.f.customer_num, customer),
            IndexRecordOption::Basic,
        );
        self.top_by_date(&q, "created_at", 50)
    }

    fn q6a(&self) -> tantivy::Result<(u64, serde_json::Value)> {
        let aggs: Aggregations = serde_json::from_value(serde_json::json!({
            "channel": {"terms": {"field": "channel", "size": 20},
                        "aggs": {"status": {"terms": {"field": "status", "size": 20}}}}
        }))
        .map_err(|e| tantivy::TantivyError::InvalidArgument(e.to_string()))?;
        let q = self.term(self.f.klass, "conversation");
        let res = self
            .searcher
            .search(&q, &AggregationCollector::from_aggs(aggs, Default::default()))?;
        let v = serde_json::to_value(res).map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?;
        let total = v["channel"]["buckets"]
            .as_array()
            .map(|b| b.iter().filter_map(|x| x["doc_count"].as_u64()).sum())
            .unwrap_or(0);
        Ok((total, v))
    }

    fn q6b(&self) -> tantivy::Result<(u64, serde_json::Value)> {
        let aggs: Aggregations = serde_json::from_value(serde_json::json!({
            "months": {"composite": {"size": 100, "sources": [
                          {"month": {"date_histogram": {"field": "placed_at", "calendar_interval": "month"}}}]},
                       "aggs": {"total": {"sum": {"field": "total"}}}}
        }))
        .map_err(|e| tantivy::TantivyError::InvalidArgument(e.to_string()))?;
        let q = RangeQuery::new(
            Bound::Included(Term::from_field_date(self.f.placed_at, date(JAN_1_2025))),
            Bound::Excluded(Term::from_field_date(self.f.placed_at, date(JAN_1_2026))),
        );
        let res = self
            .searcher
            .search(&q, &AggregationCollector::from_aggs(aggs, Default::default()))?;
        let v = serde_json::to_value(res).map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?;
        let total = v["months"]["buckets"]
            .as_array()
            .map(|b| b.iter().filter_map(|x| x["doc_count"].as_u64()).sum())
            .unwrap_or(0);
        Ok((total, v))
    }

    /// Q6b with a `range` aggregation over the 12 month bounds on all orders (no date filter
    /// query: the open-ended buckets below and above catch the other years) instead of `composite`.
    fn q6b_range(&self) -> tantivy::Result<(u64, serde_json::Value)> {
        const DAYS: [i64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
        let ns = |d: i64| (JAN_1_2025 + d * DAY_MS) * 1_000_000;
        let ranges: Vec<_> = DAYS
            .windows(2)
            .map(|w| serde_json::json!({"from": ns(w[0]), "to": ns(w[1])}))
            .collect();
        let aggs: Aggregations = serde_json::from_value(serde_json::json!({
            "months": {"range": {"field": "placed_at", "ranges": ranges, "keyed": false},
                       "aggs": {"total": {"sum": {"field": "total"}}}}
        }))
        .map_err(|e| tantivy::TantivyError::InvalidArgument(e.to_string()))?;
        let q = self.term(self.f.klass, "order");
        let res = self
            .searcher
            .search(&q, &AggregationCollector::from_aggs(aggs, Default::default()))?;
        let v = serde_json::to_value(res).map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?;
        let total = v["months"]["buckets"]
            .as_array()
            .map(|b| {
                b.iter()
                    .filter(|x| x["from"].is_number() && x["to"].is_number())
                    .filter_map(|x| x["doc_count"].as_u64())
                    .sum()
            })
            .unwrap_or(0);
        Ok((total, v))
    }

    fn q7(&self, field: Field, value: &str) -> tantivy::Result<(u64, Vec<u64>)> {
        let q = TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic);
        let (total, hits) = self
            .searcher
            .search(&q, &(Count, TopDocs::with_limit(1).order_by_score()))?;
        let addrs: Vec<DocAddress> = hits.into_iter().map(|h| h.1).collect();
        Ok((total as u64, self.ids(&addrs)))
    }
}

struct Row {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    total: u64,
    iters: usize,
    check: String,
}

/// Warm-up (20 runs, or fewer when one takes over 100 ms), then up to 200 timed runs within
/// about 4 s (at least 20).
fn measure<T>(
    name: &'static str,
    expected: Option<u64>,
    mut run: impl FnMut() -> tantivy::Result<(u64, T)>,
) -> anyhow::Result<Row> {
    let t0 = Instant::now();
    let mut warm = 0u32;
    let mut total = 0;
    while warm < 20 {
        total = black_box(run()?).0;
        warm += 1;
        if t0.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let each = t0.elapsed().as_secs_f64() / warm as f64;
    let iters = ((4.0 / each) as usize).clamp(20, 200);
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let (n, out) = run()?;
        samples.push(t.elapsed());
        black_box(out);
        if n != total {
            bail!("{name}: total changed between runs ({total} then {n})");
        }
    }
    samples.sort();
    let check = match expected {
        None => "-".to_string(),
        Some(e) if e == total => "ok".to_string(),
        Some(e) => format!("MISMATCH, expected {e}"),
    };
    Ok(Row {
        name,
        p50: samples[iters / 2],
        p99: samples[((iters * 99).div_ceil(100)).min(iters) - 1],
        total,
        iters,
        check,
    })
}

/// Email of `customer-{n}`, read from the customers file.
fn email_of(data: &Path, n: u64) -> anyhow::Result<String> {
    let path = data.join("03-customers.ndjson");
    let needle = format!("\"id\":\"customer-{n}\"");
    for line in BufReader::new(File::open(&path)?).lines() {
        let line = line?;
        if line.contains(&needle) {
            let l: Line = serde_json::from_str(&line)?;
            return l
                .object
                .emails
                .first()
                .map(|e| e.to_lowercase())
                .context("customer without email");
        }
    }
    bail!("customer-{n} not found in {}", path.display())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let data = PathBuf::from(std::env::var("KINDRED_BENCH_DATA").unwrap_or_else(|_| "target/bench-data/s".into()));
    if !data.join(OBJECT_FILES[0]).is_file() {
        bail!(
            "no generated org in {} (run `kindred gen --customers 100000 --seed 42 --out {}` or set KINDRED_BENCH_DATA)",
            data.display(),
            data.display()
        );
    }
    let mut _tmp = None;
    let index_dir = match std::env::var_os("KINDRED_BASELINE_INDEX") {
        Some(p) => PathBuf::from(p),
        None => {
            let t = tempfile::tempdir()?;
            let p = t.path().to_path_buf();
            _tmp = Some(t);
            p
        }
    };
    println!("data {}  index {}", data.display(), index_dir.display());

    let (index, expected) = if index_dir.join("meta.json").is_file() {
        println!("reusing the existing index (no load figures, no cross-check)");
        (Index::open_in_dir(&index_dir)?, None)
    } else {
        std::fs::create_dir_all(&index_dir)?;
        let index = Index::create_in_dir(&index_dir, build_schema())?;
        let (_, expected) = load(&index, &data)?;
        (index, Some(expected))
    };
    let size = dir_size(&index_dir)?;
    let reader: IndexReader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
    let searcher = reader.searcher();
    println!(
        "index: {:.1} MiB on disk, {} docs, {} segments",
        size as f64 / (1 << 20) as f64,
        searcher.num_docs(),
        searcher.segment_readers().len()
    );

    let f = Fields::of(&index.schema())?;
    let obj_nums = searcher
        .segment_readers()
        .iter()
        .map(|s| s.fast_fields().u64("obj_num"))
        .collect::<tantivy::Result<Vec<_>>>()?;
    let b = Bench {
        searcher,
        f,
        obj_nums,
        index: &index,
    };

    // parameters taken from the index: customer count, and the customer with the most objects
    let customers = b.searcher.search(&b.term(b.f.klass, "customer"), &Count)? as u64;
    if customers == 0 {
        bail!("no customers in the index");
    }
    let per_customer = b.searcher.search(
        &tantivy::query::AllQuery,
        &CountsU64 {
            field: "customer_num",
            max: customers,
        },
    )?;
    let (q5_customer, q5_objects) = per_customer
        .iter()
        .enumerate()
        .max_by_key(|&(i, &n)| (n, std::cmp::Reverse(i)))
        .map(|(i, &n)| (i as u64, n))
        .context("no timeline objects")?;
    let q7_customer = customers / 2;
    let q7_id = format!("customer-{q7_customer}");
    let q7_email = email_of(&data, q7_customer)?;
    println!("Q5 customer-{q5_customer} ({q5_objects} objects), Q7 {q7_id} / {q7_email}");

    let e = expected.as_ref();
    let q6a_expected = e.map(|e| e.q6a.values().sum());
    let q6b_expected = e.map(|e| e.q6b_cents.values().map(|x| x.0).sum());
    let mut rows = vec![
        measure("Q1 queue", e.map(|e| e.q1), || b.q1())?,
        measure("Q1 alt: priority terms", e.map(|e| e.q1), || b.q1_terms())?,
        measure("Q2 segment", e.map(|e| e.q2), || b.q2())?,
        measure("Q3 join segment", e.map(|e| e.q3.len() as u64), || b.q3(customers))?,
        measure("Q4 full text", e.map(|e| e.q4), || b.q4())?,
        measure(
            "Q5 timeline",
            e.map(|e| e.timeline.get(&q5_customer).copied().unwrap_or(0)),
            || b.q5(q5_customer),
        )?,
        measure("Q6a channel x status", q6a_expected, || b.q6a())?,
        measure("Q6b monthly sums", q6b_expected, || b.q6b())?,
        measure("Q6b alt: range agg", q6b_expected, || b.q6b_range())?,
        measure("Q7a customer by id", Some(1), || b.q7(b.f.id, &q7_id))?,
        measure("Q7b customer by email", Some(1), || b.q7(b.f.email, &q7_email))?,
    ];

    // deep checks of the aggregations against the NDJSON
    if let Some(e) = e {
        let (_, v) = b.q6a()?;
        let mut got = BTreeMap::new();
        for ch in v["channel"]["buckets"].as_array().into_iter().flatten() {
            for st in ch["status"]["buckets"].as_array().into_iter().flatten() {
                let key = (
                    ch["key"].as_str().unwrap_or("").to_string(),
                    st["key"].as_str().unwrap_or("").to_string(),
                );
                got.insert(key, st["doc_count"].as_u64().unwrap_or(0));
            }
        }
        if got != e.q6a {
            rows[6].check = "MISMATCH in buckets".into();
        }
        for (row, v) in [(7, b.q6b()?.1), (8, b.q6b_range()?.1)] {
            // the range agg adds open-ended buckets (other years): keep the bounded ones
            let is_month = |b: &&serde_json::Value| row == 7 || b["from"].is_number() && b["to"].is_number();
            let buckets: Vec<_> = v["months"]["buckets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(is_month)
                .cloned()
                .collect();
            let ok = buckets.len() == e.q6b_cents.len()
                && buckets.iter().zip(&e.q6b_cents).all(|(b, (_, (n, cents)))| {
                    b["doc_count"].as_u64() == Some(*n)
                        && (b["total"]["value"].as_f64().unwrap_or(-1.0) - *cents as f64 / 100.0).abs() < 0.01
                });
            if !ok {
                rows[row].check = "MISMATCH in buckets".into();
            }
        }
    }

    println!(
        "\n{:<24} {:>9} {:>9} {:>9} {:>6}  check",
        "query", "p50 ms", "p99 ms", "total", "iters"
    );
    for r in &rows {
        println!(
            "{:<24} {:>9.3} {:>9.3} {:>9} {:>6}  {}",
            r.name,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.total,
            r.iters,
            r.check
        );
    }
    if rows.iter().any(|r| r.check.starts_with("MISMATCH")) {
        bail!("some results disagree with the data");
    }
    Ok(())
}
