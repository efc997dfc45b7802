//! Compiles a validated [`Filter`] to a tantivy query over one org's index, and runs it.
//!
//! Joins run here in two phases: the related klass is searched first, collecting either the nums
//! its matches link to (with counts) or the nums of the matches themselves; the context objects
//! are then filtered by that set, with a term set for small sets and a fast-field predicate for
//! large ones or when a count bound needs the exact number. `Not` around a join is plain
//! exclusion, so "customers with no such order" is exact.
//!
//! This is the one file of `query` that imports tantivy.

use std::ops::Bound;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use tantivy::collector::Count;
use tantivy::query::doc_predicate_query::{DocPredicateQuery, FunctionPredicate};
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, EmptyQuery, ExistsQuery, InvertedIndexRangeQuery, Occur, Query,
    RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Term};
use tantivy::{DocId, DocSet, Searcher, SegmentReader};

use super::filter::{CountRange, Filter, Pred, Scalar, Target, TextQuery};
use super::validate::SortTarget;
use crate::index::collect::{Hit, LinkCounts, LinkPairs, Links, Nums, Position, SortKey, SortSource, TopCollector};
use crate::index::columns::{any_value, ColumnCache};
use crate::index::error::Result;
use crate::index::filter_query::{Counter, FilterQuery, PredicateFactory, SegmentPredicate};
use crate::index::mapper::LinkColumn;
use crate::index::schema::{self, IndexSchema, EXTERNAL_ID_KEY, TAGS_KEY};
use crate::model::{AttrType, Relation, Side};

/// A point-in-time view of one org's index.
#[derive(Clone)]
pub struct Snapshot {
    searcher: Searcher,
    schema: IndexSchema,
    term_set_max: usize,
    columns: Arc<ColumnCache>,
}

impl Snapshot {
    /// A snapshot of an org index's last commit.
    pub fn of(index: &crate::index::OrgIndex, term_set_max: usize) -> Snapshot {
        Snapshot {
            searcher: index.searcher(),
            schema: index.schema().clone(),
            term_set_max,
            columns: index.columns().clone(),
        }
    }

    /// How many documents link to a customer (deleted ones included, so an upper bound): what a
    /// timeline of that customer walks. One dictionary lookup per segment.
    pub fn linked_count(&self, customer: u64) -> Result<u64> {
        Ok(self
            .searcher
            .doc_freq(&Term::from_field_u64(self.schema.customer, customer))?)
    }

    fn compiler(&self) -> Compiler<'_> {
        Compiler {
            s: &self.schema,
            searcher: &self.searcher,
            term_set_max: self.term_set_max,
            columns: &self.columns,
            ctx: None,
        }
    }

    /// Number of live documents.
    pub fn num_docs(&self) -> u64 {
        self.searcher.num_docs()
    }

    /// Nums of the objects of `klass` whose link `key` holds `num` (the children of one object).
    pub fn linked_to(&self, klass: &str, key: &str, num: u64) -> Result<Vec<u64>> {
        let link_term = match LinkColumn::of(key) {
            LinkColumn::Customer => Term::from_field_u64(self.schema.customer, num),
            LinkColumn::Company => Term::from_field_u64(self.schema.company, num),
            LinkColumn::Json(k) => {
                let mut t = Term::from_field_json_path(self.schema.links, &k, false);
                t.append_type_and_fast_value(num as i64);
                t
            }
        };
        let q = BooleanQuery::new(vec![
            (Occur::Must, term_q(Term::from_field_text(self.schema.klass, klass))),
            (Occur::Must, term_q(link_term)),
        ]);
        let mut v = self.search_here(&q, &Nums(self.columns.clone()))?;
        v.sort_unstable();
        Ok(v)
    }

    /// Runs a search on this thread: for queries led by a few short postings, where handing
    /// segments to the search pool costs more than walking them.
    fn search_here<C: tantivy::collector::Collector>(&self, q: &dyn Query, c: &C) -> tantivy::Result<C::Fruit> {
        let scoring = if c.requires_scoring() {
            tantivy::query::EnableScoring::enabled_from_searcher(&self.searcher)
        } else {
            tantivy::query::EnableScoring::disabled_from_searcher(&self.searcher)
        };
        self.searcher
            .search_with_executor(q, c, &tantivy::Executor::single_thread(), scoring)
    }

    /// The id of a hit, read from the index (when its object is no longer in the store).
    pub fn hit_id(&self, hit: &Hit) -> String {
        let mut id = String::new();
        if let Some(h) = &hit.id {
            return h.clone();
        }
        let seg = self.searcher.segment_reader(hit.seg);
        if let Ok(Some(col)) = self.columns.str(seg, schema::ID) {
            if let Some(o) = col.ords().first(hit.doc) {
                let _ = col.ord_to_str(o, &mut id);
            }
        }
        id
    }

    /// (num, updatedAt) of every live document, sorted by num.
    pub fn inventory(&self) -> Result<Vec<(u64, i64)>> {
        let mut v = self.searcher.search(&AllQuery, &crate::index::collect::Inventory)?;
        v.sort_unstable();
        Ok(v)
    }

    /// Compiles the filter over the objects of `klass`.
    pub fn compile(&self, klass: &str, f: &Filter) -> Result<Compiled> {
        Ok(Compiled {
            query: self.compiler().klass_query(klass, f)?,
            scored: f.has_text(),
            narrow: false,
        })
    }

    /// Compiles a filter over every object of the listed klasses linked to one customer (by
    /// `customer`) or, with `company`, also to any of a set of customers (timelines).
    pub fn compile_linked(
        &self,
        customers: &[u64],
        company: Option<u64>,
        klasses: &[String],
        f: &Filter,
    ) -> Result<Compiled> {
        let c = self.compiler();
        let mut linked: Vec<(Occur, Box<dyn Query>)> = customers
            .iter()
            .map(|n| (Occur::Should, term_q(Term::from_field_u64(self.schema.customer, *n))))
            .collect();
        if customers.len() > 64 {
            linked = vec![(
                Occur::Should,
                Box::new(TermSetQuery::new(
                    customers.iter().map(|n| Term::from_field_u64(self.schema.customer, *n)),
                )),
            )];
        }
        if let Some(n) = company {
            linked.push((Occur::Should, term_q(Term::from_field_u64(self.schema.company, n))));
        }
        let must: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, Box::new(BooleanQuery::new(linked))),
            (Occur::Must, c.filter(f)?),
        ];
        let mut query: Box<dyn Query> = Box::new(BooleanQuery::new(must));
        if !klasses.is_empty() {
            // The linked objects are few and each klass has many: checking the klass column of
            // each linked object beats seeking a union of the klasses' long postings.
            let cache = self.columns.clone();
            let names: Arc<Vec<String>> = Arc::new(klasses.to_vec());
            let factory: PredicateFactory = Arc::new(move |seg: &SegmentReader| {
                Ok(Box::new(str_member(&cache, seg, schema::KLASS, &names)?) as SegmentPredicate)
            });
            query = Box::new(FilterQuery::new(query, factory));
        }
        Ok(Compiled {
            query,
            scored: false,
            narrow: true,
        })
    }
}

/// A compiled query, ready to run on the snapshot it was compiled on.
pub struct Compiled {
    query: Box<dyn Query>,
    scored: bool,
    /// Led by a few short postings (a timeline): handing its segments to other threads would
    /// cost more than walking them here.
    narrow: bool,
}

impl Compiled {
    /// The exact total and the first `limit` hits after `after`.
    pub fn top(
        &self,
        snap: &Snapshot,
        keys: Vec<SortKey>,
        limit: usize,
        after: Option<Position>,
    ) -> Result<(u64, Vec<Hit>)> {
        self.top_with(snap, TopCollector::new(keys, limit, after, snap.columns.clone()))
    }

    /// [`Compiled::top`] leaving ties across segments inside the page to the caller, who orders
    /// them with [`crate::index::collect::order_ties`] once it has loaded their objects.
    pub fn top_deferring_ties(
        &self,
        snap: &Snapshot,
        keys: Vec<SortKey>,
        limit: usize,
        after: Option<Position>,
    ) -> Result<(u64, Vec<Hit>)> {
        self.top_with(
            snap,
            TopCollector::new(keys, limit, after, snap.columns.clone()).deferring_ties(),
        )
    }

    fn top_with(&self, snap: &Snapshot, collector: TopCollector) -> Result<(u64, Vec<Hit>)> {
        if self.narrow {
            return Ok(snap.search_here(&*self.query, &collector)?);
        }
        Ok(snap.searcher.search(&*self.query, &collector)?)
    }

    /// The exact number of matches.
    pub fn count(&self, snap: &Snapshot) -> Result<u64> {
        Ok(snap.searcher.search(&*self.query, &Counter)?)
    }

    /// The nums of every match, ascending.
    pub fn nums(&self, snap: &Snapshot) -> Result<Vec<u64>> {
        let mut v = snap.searcher.search(&*self.query, &Nums(snap.columns.clone()))?;
        v.sort_unstable();
        Ok(v)
    }

    /// Runs tantivy aggregations (Elasticsearch JSON over index column names).
    pub fn aggregate(
        &self,
        snap: &Snapshot,
        aggs: serde_json::Value,
        max_buckets: u32,
    ) -> Result<(u64, serde_json::Value)> {
        use tantivy::aggregation::agg_req::Aggregations;
        use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
        let req: Aggregations = serde_json::from_value(aggs)
            .map_err(|e| crate::index::IndexError::Rejected(format!("invalid aggregation: {e}")))?;
        let params = AggContextParams {
            limits: AggregationLimitsGuard::new(Some(500_000_000), Some(max_buckets)),
            ..Default::default()
        };
        let collector = AggregationCollector::from_aggs(req, params);
        let (count, res) = snap
            .searcher
            .search(&*self.query, &(Count, collector))
            .map_err(|e| match e {
                tantivy::TantivyError::AggregationError(a) => crate::index::IndexError::Rejected(a.to_string()),
                other => other.into(),
            })?;
        let json = serde_json::to_value(res).map_err(|e| crate::index::IndexError::Rejected(e.to_string()))?;
        Ok((count as u64, json))
    }

    /// Whether the query scores (free text).
    pub fn scored(&self) -> bool {
        self.scored
    }
}

/// The index sort keys of validated sort targets.
pub fn sort_keys(sort: &[(SortTarget, bool)]) -> Vec<SortKey> {
    sort.iter()
        .map(|(t, desc)| {
            let source = match t {
                SortTarget::Score => SortSource::Score,
                SortTarget::Field(Target::CreatedAt) => SortSource::I64(schema::CREATED.into()),
                SortTarget::Field(Target::UpdatedAt) => SortSource::I64(schema::UPDATED.into()),
                SortTarget::Field(Target::Attr(a)) => {
                    let col = IndexSchema::column("kw", &a.key);
                    match a.ty {
                        AttrType::Number => SortSource::F64(col),
                        AttrType::Integer | AttrType::Date => SortSource::I64(col),
                        AttrType::Boolean => SortSource::Bool(col),
                        _ => SortSource::Str(col),
                    }
                }
                SortTarget::Field(Target::ExternalId) => SortSource::Str(IndexSchema::column("kw", EXTERNAL_ID_KEY)),
                SortTarget::Field(_) => SortSource::Str(schema::ID.into()),
            };
            SortKey { source, desc: *desc }
        })
        .collect()
}

/// The column name an aggregation reads for a field, when it has one.
pub fn agg_column(t: &Target) -> Option<String> {
    Some(match t {
        Target::CreatedAt => schema::CREATED.into(),
        Target::UpdatedAt => schema::UPDATED.into(),
        Target::Klass => schema::KLASS.into(),
        Target::Id => schema::ID.into(),
        Target::Tags => IndexSchema::column("kw", TAGS_KEY),
        Target::ExternalId => IndexSchema::column("kw", EXTERNAL_ID_KEY),
        Target::Attr(a) if a.ty != AttrType::Text => IndexSchema::column("kw", &a.key),
        Target::Rel { key, .. } => IndexSchema::column("kw", key),
        _ => return None,
    })
}

#[derive(Clone)]
struct Compiler<'a> {
    s: &'a IndexSchema,
    searcher: &'a Searcher,
    term_set_max: usize,
    columns: &'a Arc<ColumnCache>,
    /// Klass of the objects being filtered, when known (joins walk its postings).
    ctx: Option<String>,
}

fn term_q(t: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(t, IndexRecordOption::Basic))
}

fn bool_q(clauses: Vec<(Occur, Box<dyn Query>)>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(clauses))
}

impl Compiler<'_> {
    /// `klass = k AND f`, with free text scored and everything else constant.
    fn klass_query(&self, klass: &str, f: &Filter) -> Result<Box<dyn Query>> {
        let this = Compiler {
            ctx: Some(klass.to_string()),
            ..self.clone()
        };
        this.klass_query_in(klass, f)
    }

    fn klass_query_in(&self, klass: &str, f: &Filter) -> Result<Box<dyn Query>> {
        let klass_term = term_q(Term::from_field_text(self.s.klass, klass));
        let children: Vec<&Filter> = match f {
            Filter::And(cs) => cs.iter().collect(),
            other => vec![other],
        };
        let (texts, rest): (Vec<&Filter>, Vec<&Filter>) =
            children.into_iter().partition(|c| matches!(c, Filter::Text(_)));
        // A positive condition on a custom attribute already implies the klass (custom keys are
        // unique to their klass): walking the klass's postings would only add seeks.
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !rest.iter().any(|c| implies_klass(c)) {
            clauses.push((Occur::Must, klass_term));
        }
        self.push_and_children(&rest, !texts.is_empty(), &mut clauses)?;
        if texts.is_empty() {
            return Ok(bool_q(clauses));
        }
        let filter = Box::new(ConstScoreQuery::new(bool_q(clauses), 0.0));
        let mut scored: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, filter)];
        for t in texts {
            scored.push((Occur::Must, self.filter(t)?));
        }
        Ok(bool_q(scored))
    }

    /// Adds the children of an `and`. Ranges are walked by tantivy only when nothing more
    /// selective can lead: then the range expected to match the fewest docs leads and the others
    /// are checked on its candidates.
    fn push_and_children(&self, cs: &[&Filter], text: bool, clauses: &mut Vec<(Occur, Box<dyn Query>)>) -> Result<()> {
        let mut led = text || cs.iter().any(|c| selective(c));
        if !led {
            let leader = cs
                .iter()
                .enumerate()
                .filter_map(|(i, c)| match c {
                    Filter::Cond {
                        target,
                        pred: Pred::Range(lo, hi),
                    } => Some((i, self.range_fraction(target, lo, hi))),
                    _ => None,
                })
                .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
            if let Some((i, _)) = leader {
                clauses.push((Occur::Must, self.filter(cs[i])?));
                led = true;
                for (j, c) in cs.iter().enumerate() {
                    if j != i {
                        self.push_and_child(c, led, clauses)?;
                    }
                }
                if !clauses.iter().any(|(o, _)| *o == Occur::Must) {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                return Ok(());
            }
        }
        // A one-value condition leads: a several-value `in` beside it is cheaper checked on the
        // leader's candidates through the column than seeked as a union of postings.
        let point_led = text || cs.iter().any(|c| point(c));
        for c in cs {
            match c {
                Filter::Cond {
                    target: Target::Attr(a),
                    pred: Pred::Eq(vals),
                } if point_led && vals.len() > 1 && vals.iter().all(|v| matches!(v, Scalar::Str(_))) => {
                    clauses.push((Occur::Must, self.in_predicate(&a.key, vals)));
                }
                _ => self.push_and_child(c, led, clauses)?,
            }
        }
        if !clauses.iter().any(|(o, _)| *o == Occur::Must) {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        Ok(())
    }

    /// Docs with one of the strings `vals` under `key`: the values' postings are read into a
    /// bitset of the segment, then each candidate of the leader is one bit test. Reading postings
    /// costs a few nanoseconds a doc, where looking a candidate up in the keyword column (an
    /// optional index rank, then a bit-packed read) cost 20-30 and was a fifth of Q2's CPU.
    fn in_predicate(&self, key: &str, vals: &[Scalar]) -> Box<dyn Query> {
        let terms: Arc<Vec<Term>> = Arc::new(vals.iter().map(|v| self.kw_value_term(key, v)).collect());
        let field = self.s.kw;
        let q: DocPredicateQuery = FunctionPredicate::from(move |seg: &SegmentReader| {
            let inverted = seg.inverted_index(field)?;
            let mut docs = tantivy::BitSet::with_max_value(seg.max_doc());
            for t in terms.iter() {
                if let Some(mut postings) = inverted.read_postings(t, IndexRecordOption::Basic)? {
                    let mut doc = postings.doc();
                    while doc != tantivy::TERMINATED {
                        docs.insert(doc);
                        doc = postings.advance();
                    }
                }
            }
            Ok(move |doc: DocId| docs.contains(doc))
        })
        .into();
        Box::new(q)
    }

    /// Estimated share of a column's values inside a range (linear between min and max).
    fn range_fraction(&self, target: &Target, lo: &Bound<Scalar>, hi: &Bound<Scalar>) -> f64 {
        let column = match target {
            Target::CreatedAt => schema::CREATED.to_string(),
            Target::UpdatedAt => schema::UPDATED.to_string(),
            Target::Attr(a) => IndexSchema::column("kw", &a.key),
            _ => return 1.0,
        };
        let float = matches!(target, Target::Attr(a) if a.ty == AttrType::Number);
        let (mut inside, mut total) = (0.0f64, 0.0f64);
        for seg in self.searcher.segment_readers() {
            let (min, max, n) = if float {
                match self.columns.f64(seg, &column) {
                    Ok(Some(c)) => (c.min_value(), c.max_value(), c.values.num_vals() as f64),
                    _ => continue,
                }
            } else {
                match self.columns.i64(seg, &column) {
                    Ok(Some(c)) => (c.min_value() as f64, c.max_value() as f64, c.values.num_vals() as f64),
                    _ => continue,
                }
            };
            let l = match lo {
                Bound::Included(v) | Bound::Excluded(v) => num_of(v).max(min),
                Bound::Unbounded => min,
            };
            let h = match hi {
                Bound::Included(v) | Bound::Excluded(v) => num_of(v).min(max),
                Bound::Unbounded => max,
            };
            let share = if max > min {
                ((h - l) / (max - min)).clamp(0.0, 1.0)
            } else {
                1.0
            };
            inside += share * n;
            total += n;
        }
        if total == 0.0 {
            0.0
        } else {
            inside / total
        }
    }

    /// Adds one child of an `and`. `led`: a selective sibling drives the intersection, so a
    /// range is cheaper checked on its candidates through a cached column than walked by
    /// tantivy's range doc set (which maps rows to docs on sparse JSON columns).
    fn push_and_child(&self, c: &Filter, led: bool, clauses: &mut Vec<(Occur, Box<dyn Query>)>) -> Result<()> {
        match c {
            Filter::All => {}
            Filter::Not(inner) => clauses.push((Occur::MustNot, self.filter(inner)?)),
            Filter::Cond {
                target,
                pred: Pred::Range(lo, hi),
            } if led => match self.range_predicate(target, lo, hi) {
                Some(q) => clauses.push((Occur::Must, q)),
                None => clauses.push((Occur::Must, self.filter(c)?)),
            },
            other => clauses.push((Occur::Must, self.filter(other)?)),
        }
        Ok(())
    }

    /// A range checked per candidate doc on a cached fast-field column.
    fn range_predicate(&self, target: &Target, lo: &Bound<Scalar>, hi: &Bound<Scalar>) -> Option<Box<dyn Query>> {
        let (column, float) = match target {
            Target::CreatedAt => (schema::CREATED.to_string(), false),
            Target::UpdatedAt => (schema::UPDATED.to_string(), false),
            Target::Attr(a) => match a.ty {
                AttrType::Number => (IndexSchema::column("kw", &a.key), true),
                AttrType::Integer | AttrType::Date => (IndexSchema::column("kw", &a.key), false),
                _ => return None,
            },
            _ => return None,
        };
        let f = |b: &Bound<Scalar>| -> Bound<f64> {
            match b {
                Bound::Included(v) => Bound::Included(num_of(v)),
                Bound::Excluded(v) => Bound::Excluded(num_of(v)),
                Bound::Unbounded => Bound::Unbounded,
            }
        };
        let i = |b: &Bound<Scalar>| -> Bound<i64> {
            match b {
                Bound::Included(v) => Bound::Included(int_of(v)),
                Bound::Excluded(v) => Bound::Excluded(int_of(v)),
                Bound::Unbounded => Bound::Unbounded,
            }
        };
        let cache = self.columns.clone();
        let q: DocPredicateQuery = if float {
            let range = (f(lo), f(hi));
            FunctionPredicate::from(move |seg: &SegmentReader| {
                let col = cache.f64(seg, &column)?;
                let range = range;
                Ok(move |doc: DocId| {
                    col.as_ref()
                        .is_some_and(|c| any_value(c, doc, |v| std::ops::RangeBounds::contains(&range, &v)))
                })
            })
            .into()
        } else {
            let range = (i(lo), i(hi));
            FunctionPredicate::from(move |seg: &SegmentReader| {
                let col = cache.i64(seg, &column)?;
                let range = range;
                Ok(move |doc: DocId| {
                    col.as_ref()
                        .is_some_and(|c| any_value(c, doc, |v| std::ops::RangeBounds::contains(&range, &v)))
                })
            })
            .into()
        };
        Some(Box::new(q))
    }

    fn filter(&self, f: &Filter) -> Result<Box<dyn Query>> {
        Ok(match f {
            Filter::All => Box::new(AllQuery),
            Filter::Nothing => Box::new(EmptyQuery),
            Filter::And(cs) => {
                let mut clauses = Vec::with_capacity(cs.len() + 1);
                let refs: Vec<&Filter> = cs.iter().collect();
                self.push_and_children(&refs, false, &mut clauses)?;
                bool_q(clauses)
            }
            Filter::Or(cs) => bool_q(
                cs.iter()
                    .map(|c| Ok((Occur::Should, self.filter(c)?)))
                    .collect::<Result<_>>()?,
            ),
            Filter::Not(inner) => bool_q(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, self.filter(inner)?),
            ]),
            Filter::Cond { target, pred } => self.cond(target, pred),
            Filter::Join { rels, filter, count } => self.join(rels, filter, *count)?,
            Filter::Text(q) => self.text(q),
        })
    }

    /// Every word in some attribute: the word in a string attribute's words or its stem in a
    /// text attribute's, each scored (BM25) on its own attribute's postings.
    fn text(&self, q: &TextQuery) -> Box<dyn Query> {
        let scored = |field: Field, key: &str, token: &str| -> (Occur, Box<dyn Query>) {
            let mut t = self.json_term(field, key);
            t.append_type_and_str(token);
            (Occur::Should, Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)))
        };
        let per_word = q
            .words
            .iter()
            .map(|w| {
                let mut either: Vec<(Occur, Box<dyn Query>)> = q
                    .string_keys
                    .iter()
                    .map(|key| scored(self.s.words, key, &w.word))
                    .collect();
                if let Some(stem) = &w.stem {
                    either.extend(q.text_keys.iter().map(|key| scored(self.s.txt, key, stem)));
                }
                let any: Box<dyn Query> = if either.is_empty() {
                    Box::new(EmptyQuery)
                } else {
                    bool_q(either)
                };
                (Occur::Must, any)
            })
            .collect();
        bool_q(per_word)
    }

    fn json_term(&self, field: Field, key: &str) -> Term {
        Term::from_field_json_path(field, key, false)
    }

    fn kw_value_term(&self, key: &str, v: &Scalar) -> Term {
        let mut t = self.json_term(self.s.kw, key);
        match v {
            Scalar::Str(s) => t.append_type_and_str(s),
            // The inverted index stores integral f64 values as i64 (tantivy normalizes them).
            Scalar::Num(f) if f.fract() == 0.0 && *f >= -9.2e18 && *f <= 9.2e18 => {
                t.append_type_and_fast_value(*f as i64)
            }
            Scalar::Num(f) => t.append_type_and_fast_value(*f),
            Scalar::Int(i) => t.append_type_and_fast_value(*i),
            Scalar::Bool(b) => t.append_type_and_fast_value(*b),
        }
        t
    }

    fn kw_bound_term(&self, key: &str, v: &Scalar) -> Term {
        let mut t = self.json_term(self.s.kw, key);
        match v {
            Scalar::Num(f) => t.append_type_and_fast_value(*f),
            Scalar::Int(i) => t.append_type_and_fast_value(*i),
            Scalar::Str(s) => t.append_type_and_str(s),
            Scalar::Bool(b) => t.append_type_and_fast_value(*b),
        }
        t
    }

    /// Objects where the attribute `key` is set: text attributes are listed in `exists`; every
    /// other attribute, relationship, `externalId` and `tags` has a `kw` column with a value
    /// exactly when set.
    fn exists(&self, key: &str, ty: Option<AttrType>) -> Box<dyn Query> {
        if ty == Some(AttrType::Text) {
            term_q(Term::from_field_text(self.s.exists, key))
        } else {
            Box::new(ExistsQuery::new(IndexSchema::column("kw", key), false))
        }
    }

    fn any_of(&self, terms: Vec<Term>) -> Box<dyn Query> {
        match terms.len() {
            0 => Box::new(EmptyQuery),
            1 => term_q(terms.into_iter().next().expect("one")),
            n if n <= 16 => bool_q(terms.into_iter().map(|t| (Occur::Should, term_q(t))).collect()),
            _ => Box::new(TermSetQuery::new(terms)),
        }
    }

    fn prefix(&self, lower: Term) -> Box<dyn Query> {
        let mut upper = lower.clone();
        upper.append_bytes(&[0xff]);
        Box::new(InvertedIndexRangeQuery::new(
            Bound::Included(lower),
            Bound::Excluded(upper),
        ))
    }

    fn cond(&self, target: &Target, pred: &Pred) -> Box<dyn Query> {
        let s = self.s;
        match target {
            Target::Id | Target::Klass => {
                let field = if *target == Target::Id { s.id } else { s.klass };
                match pred {
                    Pred::Eq(vals) => self.any_of(
                        vals.iter()
                            .filter_map(|v| str_of(v).map(|x| Term::from_field_text(field, x)))
                            .collect(),
                    ),
                    Pred::Prefix(p) => self.prefix(Term::from_field_text(field, p)),
                    Pred::Set => Box::new(AllQuery),
                    _ => Box::new(EmptyQuery),
                }
            }
            Target::CreatedAt | Target::UpdatedAt => {
                let field = if *target == Target::CreatedAt {
                    s.created
                } else {
                    s.updated
                };
                let t = |v: &Scalar| Term::from_field_i64(field, int_of(v));
                match pred {
                    // The times are fast-field columns, not indexed: an equality is a range of
                    // one value.
                    Pred::Eq(vals) => bool_q(
                        vals.iter()
                            .map(|v| {
                                let at = t(v);
                                let point: Box<dyn Query> =
                                    Box::new(RangeQuery::new(Bound::Included(at.clone()), Bound::Included(at)));
                                (Occur::Should, point)
                            })
                            .collect(),
                    ),
                    Pred::Range(lo, hi) => Box::new(RangeQuery::new(map_bound(lo, t), map_bound(hi, t))),
                    Pred::Set => Box::new(AllQuery),
                    _ => Box::new(EmptyQuery),
                }
            }
            Target::ExternalId | Target::Tags | Target::Rel { .. } | Target::Attr(_) => {
                let key: &str = match target {
                    Target::ExternalId => EXTERNAL_ID_KEY,
                    Target::Tags => TAGS_KEY,
                    Target::Rel { key, .. } => key,
                    Target::Attr(a) => &a.key,
                    _ => unreachable!("matched above"),
                };
                let ty = if let Target::Attr(a) = target { Some(a.ty) } else { None };
                match pred {
                    Pred::Set => self.exists(key, ty),
                    Pred::Eq(vals) => self.any_of(vals.iter().map(|v| self.kw_value_term(key, v)).collect()),
                    Pred::Prefix(p) => {
                        let mut t = self.json_term(s.kw, key);
                        t.append_type_and_str(p);
                        self.prefix(t)
                    }
                    Pred::TreePrefix(p) => {
                        let mut t = self.json_term(s.tprefix, key);
                        t.append_type_and_str(p);
                        term_q(t)
                    }
                    Pred::Range(lo, hi) => Box::new(RangeQuery::new(
                        map_bound(lo, |v| self.kw_bound_term(key, v)),
                        map_bound(hi, |v| self.kw_bound_term(key, v)),
                    )),
                    Pred::Contains(tokens) => {
                        let field = if ty == Some(AttrType::Text) { s.txt } else { s.words };
                        bool_q(
                            tokens
                                .iter()
                                .map(|tok| {
                                    let mut t = self.json_term(field, key);
                                    t.append_type_and_str(tok);
                                    (Occur::Must, term_q(t))
                                })
                                .collect(),
                        )
                    }
                }
            }
            Target::Changed => Box::new(EmptyQuery),
        }
    }

    /// Context objects with a number of related objects (of one klass, reached through any of
    /// `rels`) matching `inner` within `count`; a related object reached through several
    /// relationships counts once.
    fn join(&self, rels: &[Relation], inner: &Filter, count: CountRange) -> Result<Box<dyn Query>> {
        let related = rels.first().map(|r| r.related.as_str()).unwrap_or_default();
        let sub = self.klass_query(related, inner)?;
        let held_by = |side: Side| -> Vec<LinkColumn> {
            rels.iter()
                .filter(|r| r.side == side)
                .map(|r| LinkColumn::of(&r.key))
                .collect()
        };
        let (theirs, ours) = (held_by(Side::Child), held_by(Side::Parent));
        if ours.is_empty() {
            // Related objects link to context objects: count per context num.
            let counts: FxHashMap<u64, u32> = self.searcher.search(&*sub, &LinkCounts(theirs, self.columns.clone()))?;
            if count.is_any() && counts.len() <= self.term_set_max {
                let terms = counts.keys().map(|n| Term::from_field_u64(self.s.num, *n)).collect();
                return Ok(self.any_of(terms));
            }
            return Ok(self.counted(counts, count));
        }
        if !theirs.is_empty() {
            return self.join_both_ways(&*sub, theirs, ours, count);
        }
        // Context objects link to related objects: collect the related nums.
        let matched: FxHashSet<u64> = self
            .searcher
            .search(&*sub, &Nums(self.columns.clone()))?
            .into_iter()
            .collect();
        if count.is_any() && matched.len() * ours.len() <= self.term_set_max {
            let terms = ours
                .iter()
                .flat_map(|link| matched.iter().map(move |n| self.link_term(link, *n)))
                .collect();
            return Ok(self.any_of(terms));
        }
        let (matched, ours) = (Arc::new(matched), Arc::new(ours));
        let cache = self.columns.clone();
        let factory: PredicateFactory = Arc::new(move |seg: &SegmentReader| {
            let mut links = Links::open(&ours, seg, &cache)?;
            let matched = matched.clone();
            Ok(Box::new(move |doc: DocId| {
                let mut n = 0u64;
                links.for_each(doc, |v| {
                    if matched.contains(&v) {
                        n += 1;
                    }
                });
                count.contains(n)
            }) as SegmentPredicate)
        });
        Ok(Box::new(FilterQuery::new(self.ctx_query(), factory)))
    }

    /// The term of a context doc linking to `num` through `link`.
    fn link_term(&self, link: &LinkColumn, num: u64) -> Term {
        match link {
            LinkColumn::Customer => Term::from_field_u64(self.s.customer, num),
            LinkColumn::Company => Term::from_field_u64(self.s.company, num),
            LinkColumn::Json(k) => {
                let mut t = self.json_term(self.s.links, k);
                t.append_type_and_fast_value(num as i64);
                t
            }
        }
    }

    /// The context objects whose num has a number of related matches within `count`.
    fn counted(&self, counts: FxHashMap<u64, u32>, count: CountRange) -> Box<dyn Query> {
        let counts = Arc::new(counts);
        let cache = self.columns.clone();
        let factory: PredicateFactory = Arc::new(move |seg: &SegmentReader| {
            let nums = cache
                .u64(seg, schema::NUM)?
                .ok_or_else(|| tantivy::TantivyError::SchemaError("num column missing".into()))?;
            let counts = counts.clone();
            Ok(Box::new(move |doc: DocId| {
                let n = nums.first(doc).and_then(|num| counts.get(&num).copied()).unwrap_or(0);
                count.contains(n as u64)
            }) as SegmentPredicate)
        });
        Box::new(FilterQuery::new(self.ctx_query(), factory))
    }

    /// A join where related objects hold some of the links (`theirs`) and context objects the
    /// others (`ours`). `has` never makes one (it takes the links of one side); joins built by
    /// hand may. The matches are collected as (context num, match num) pairs, and each context
    /// object counts the distinct matches it reaches either way.
    fn join_both_ways(
        &self,
        sub: &dyn Query,
        theirs: Vec<LinkColumn>,
        ours: Vec<LinkColumn>,
        count: CountRange,
    ) -> Result<Box<dyn Query>> {
        // One pass over the matches: the pairs through their links, and their own nums.
        let (pairs, matched): (Vec<(u64, u64)>, Vec<u64>) = self.searcher.search(
            sub,
            &(LinkPairs(theirs, self.columns.clone()), Nums(self.columns.clone())),
        )?;
        let matched: FxHashSet<u64> = matched.into_iter().collect();
        // Where each context num's pairs start and end (pairs are sorted by context num).
        let mut spans: FxHashMap<u64, (usize, usize)> = FxHashMap::default();
        for (i, (ctx, _)) in pairs.iter().enumerate() {
            spans.entry(*ctx).or_insert((i, i)).1 = i + 1;
        }
        let shared = Arc::new((pairs, spans, matched, ours));
        let cache = self.columns.clone();
        let factory: PredicateFactory = Arc::new(move |seg: &SegmentReader| {
            let nums = cache
                .u64(seg, schema::NUM)?
                .ok_or_else(|| tantivy::TantivyError::SchemaError("num column missing".into()))?;
            let mut links = Links::open(&shared.3, seg, &cache)?;
            let shared = shared.clone();
            let mut reached: Vec<u64> = Vec::new();
            Ok(Box::new(move |doc: DocId| {
                let (pairs, spans, matched, _) = &*shared;
                reached.clear();
                if let Some((from, to)) = nums.first(doc).and_then(|num| spans.get(&num)) {
                    reached.extend(pairs[*from..*to].iter().map(|p| p.1));
                }
                links.for_each(doc, |v| {
                    if matched.contains(&v) {
                        reached.push(v);
                    }
                });
                reached.sort_unstable();
                reached.dedup();
                count.contains(reached.len() as u64)
            }) as SegmentPredicate)
        });
        Ok(Box::new(FilterQuery::new(self.ctx_query(), factory)))
    }

    /// The objects being filtered: their klass's postings, or every doc when unknown.
    fn ctx_query(&self) -> Box<dyn Query> {
        match &self.ctx {
            Some(k) => term_q(Term::from_field_text(self.s.klass, k)),
            None => Box::new(AllQuery),
        }
    }
}

/// Whether a filter holds only for objects of the klass it was validated for.
fn implies_klass(f: &Filter) -> bool {
    match f {
        Filter::Cond {
            target: Target::Attr(a),
            ..
        } => !a.standard,
        Filter::And(cs) => cs.iter().any(implies_klass),
        Filter::Or(cs) => !cs.is_empty() && cs.iter().all(implies_klass),
        _ => false,
    }
}

/// The test "has one of the strings `wanted` in the string column `column`" for one segment: the
/// strings become the segment's term ordinals once, then each doc compares ordinals.
fn str_member(
    cache: &ColumnCache,
    seg: &SegmentReader,
    column: &str,
    wanted: &[String],
) -> tantivy::Result<impl Fn(DocId) -> bool + Send + Sync + 'static> {
    let col = cache.str(seg, column)?;
    let mut ords: Vec<u64> = Vec::new();
    if let Some(c) = &col {
        for w in wanted {
            if let Some(o) = c.dictionary().term_ord(w.as_bytes())? {
                ords.push(o);
            }
        }
    }
    Ok(move |doc: DocId| {
        !ords.is_empty()
            && col
                .as_ref()
                .is_some_and(|c| any_value(c.ords(), doc, |o| ords.contains(&o)))
    })
}

/// A condition on one value (or words, or a prefix): short postings that can lead an `and`.
fn point(f: &Filter) -> bool {
    match f {
        Filter::Cond { pred, .. } => match pred {
            Pred::Eq(vals) => vals.len() == 1,
            Pred::Contains(_) | Pred::Prefix(_) | Pred::TreePrefix(_) => true,
            _ => false,
        },
        _ => false,
    }
}

/// Whether a filter matches few docs through postings (terms), so it can lead an intersection.
fn selective(f: &Filter) -> bool {
    match f {
        Filter::Cond { pred, .. } => matches!(
            pred,
            Pred::Eq(_) | Pred::Contains(_) | Pred::Prefix(_) | Pred::TreePrefix(_)
        ),
        Filter::Join { count, .. } => count.min > 0,
        Filter::Text(_) => true,
        Filter::And(cs) => cs.iter().any(selective),
        Filter::Or(cs) => !cs.is_empty() && cs.iter().all(selective),
        _ => false,
    }
}

fn num_of(v: &Scalar) -> f64 {
    match v {
        Scalar::Num(f) => *f,
        Scalar::Int(i) => *i as f64,
        _ => 0.0,
    }
}

fn str_of(v: &Scalar) -> Option<&str> {
    match v {
        Scalar::Str(s) => Some(s),
        _ => None,
    }
}

fn int_of(v: &Scalar) -> i64 {
    match v {
        Scalar::Int(i) => *i,
        Scalar::Num(f) => *f as i64,
        _ => 0,
    }
}

fn map_bound(b: &Bound<Scalar>, f: impl Fn(&Scalar) -> Term) -> Bound<Term> {
    match b {
        Bound::Included(v) => Bound::Included(f(v)),
        Bound::Excluded(v) => Bound::Excluded(f(v)),
        Bound::Unbounded => Bound::Unbounded,
    }
}
