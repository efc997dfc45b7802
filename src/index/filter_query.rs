//! A query that walks an inner query's matches and keeps those a per-segment predicate accepts.
//!
//! tantivy's `DocPredicateQuery` walks every doc of the segment under its predicate, and in a
//! counting intersection fills whole windows of docs, evaluating the predicate on all of them.
//! Walking the context klass's postings instead evaluates it only on objects of that klass: the
//! second phase of a join over 100,000 customers in an index of 1.6 M objects went from ~29 ms to
//! the cost of the customers alone.

use std::fmt;
use std::sync::Arc;

use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Score, SeekDangerResult, SegmentReader, TERMINATED};

/// A per-doc test for one segment.
pub type SegmentPredicate = Box<dyn FnMut(DocId) -> bool + Send>;

/// Builds the test of a segment.
pub type PredicateFactory = Arc<dyn Fn(&SegmentReader) -> tantivy::Result<SegmentPredicate> + Send + Sync>;

/// Matches of `inner` that `predicate` accepts.
pub struct FilterQuery {
    inner: Box<dyn Query>,
    predicate: PredicateFactory,
}

impl FilterQuery {
    /// Filters `inner` by `predicate`.
    pub fn new(inner: Box<dyn Query>, predicate: PredicateFactory) -> FilterQuery {
        FilterQuery { inner, predicate }
    }
}

impl Clone for FilterQuery {
    fn clone(&self) -> Self {
        FilterQuery {
            inner: self.inner.box_clone(),
            predicate: self.predicate.clone(),
        }
    }
}

impl fmt::Debug for FilterQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterQuery")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Query for FilterQuery {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(FilterWeight {
            inner: self.inner.weight(enable_scoring)?,
            predicate: self.predicate.clone(),
        }))
    }
}

struct FilterWeight {
    inner: Box<dyn Weight>,
    predicate: PredicateFactory,
}

impl Weight for FilterWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let inner = self.inner.scorer(reader, boost)?;
        let predicate = (self.predicate)(reader)?;
        let mut s = FilterScorer { inner, predicate };
        let first = s.inner.doc();
        if first != TERMINATED && !(s.predicate)(first) {
            s.advance();
        }
        Ok(Box::new(s))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut s = self.scorer(reader, 1.0)?;
        if s.seek(doc) == doc {
            Ok(Explanation::new("FilterQuery", 1.0))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} does not match"
            )))
        }
    }
}

struct FilterScorer {
    inner: Box<dyn Scorer>,
    predicate: SegmentPredicate,
}

impl DocSet for FilterScorer {
    fn advance(&mut self) -> DocId {
        loop {
            let doc = self.inner.advance();
            if doc == TERMINATED || (self.predicate)(doc) {
                return doc;
            }
        }
    }

    fn seek(&mut self, target: DocId) -> DocId {
        let doc = self.inner.seek(target);
        if doc == TERMINATED || (self.predicate)(doc) {
            return doc;
        }
        self.advance()
    }

    fn seek_danger(&mut self, target: DocId) -> SeekDangerResult {
        // Like tantivy's predicate doc set: test only the target, never scan ahead for a match.
        match self.inner.seek_danger(target) {
            SeekDangerResult::Found if (self.predicate)(target) => SeekDangerResult::Found,
            SeekDangerResult::Found => SeekDangerResult::SeekLowerBound(target + 1),
            lower => lower,
        }
    }

    fn doc(&self) -> DocId {
        self.inner.doc()
    }

    fn size_hint(&self) -> u32 {
        self.inner.size_hint()
    }

    fn cost(&self) -> u64 {
        // Walking it costs its inner walk plus a predicate per doc.
        self.inner.cost().saturating_mul(4)
    }
}

impl Scorer for FilterScorer {
    fn score(&mut self) -> Score {
        1.0
    }
}

/// Counts matches by walking them (a leader-driven walk never evaluates a filter outside its
/// candidates, unlike the block-bitset count of intersections).
pub struct Counter;

/// The per-segment part of [`Counter`].
pub struct SegCounter(u64);

impl tantivy::collector::Collector for Counter {
    type Fruit = u64;
    type Child = SegCounter;

    fn for_segment(&self, _ord: tantivy::SegmentOrdinal, _seg: &SegmentReader) -> tantivy::Result<SegCounter> {
        Ok(SegCounter(0))
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<u64>) -> tantivy::Result<u64> {
        Ok(fruits.into_iter().sum())
    }
}

impl tantivy::collector::SegmentCollector for SegCounter {
    type Fruit = u64;

    fn collect(&mut self, _doc: DocId, _score: Score) {
        self.0 += 1;
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        self.0 += docs.len() as u64;
    }

    fn harvest(self) -> u64 {
        self.0
    }
}
