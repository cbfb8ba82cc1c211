//! Totals and facets kept per segment, and counted ahead of the readers.
//!
//! A query's total and facets are a pass over every match: 60–90 ms over the whole catalogue
//! at 1 M entries, where a page alone costs a few. A segment's count for a query holds as long
//! as the segment and its deletions do, so it is counted once and kept: a later page, or the
//! same query after a commit that added a segment, counts only what it has not counted.
//!
//! That still left the first page after each commit or merge to count the new segments, and
//! the first page after a merge of large segments to count most of the catalogue again. So the
//! queries asked most recently (and, from the start, the whole catalogue as an anonymous reader
//! sees it) are counted again in the background after each commit, before a reader asks: a
//! reader finds them counted unless they ask within those milliseconds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rix_schema::sensitivity::Entitlements;
use tantivy::query::Query;
use tantivy::{Searcher, SegmentOrdinal, SegmentReader};

use super::SearchIndex;
use super::collect::PageCollector;
use super::facets::FacetTally;
use super::query::{Plan, SearchQuery, Sort};

/// What identifies a query's total and facets within one segment: the matches (terms and
/// filters, [`Plan::matches_fingerprint`]), the reader's entitlements (the audience filter)
/// and whether facets were counted.
pub(super) type TallyKey = (u64, Entitlements, bool);

/// A segment as its tallies are kept: its id and its deletions (a delete makes it another).
type SegmentState = (tantivy::index::SegmentId, Option<u64>);

/// Most (segment, query) tallies kept (each ~10 KB).
const TALLIES_HELD: usize = 4096;

/// Most queries counted ahead after each commit: each costs a pass over the segments it has
/// not been counted in.
const WARM_QUERIES: usize = 8;

/// The totals and facets of recent queries, per segment, and the queries to count ahead.
/// Segments merged away or changed by deletes are forgotten as soon as a search no longer sees
/// them.
#[derive(Default)]
pub(super) struct Tallies {
    held: Mutex<HashMap<(SegmentState, TallyKey), (u64, FacetTally)>>,
    /// The queries asked most recently, newest first.
    recent: Mutex<VecDeque<Asked>>,
    /// A count ahead is running: the next commit's waits for it rather than running beside it.
    warming: AtomicBool,
}

/// A query as it is counted again: its tantivy query (audience filter included) and what the
/// collector needs to count it.
struct Asked {
    key: TallyKey,
    query: Box<dyn Query>,
    sort: Sort,
    scored: bool,
}

fn segment_state(reader: &SegmentReader) -> SegmentState {
    (reader.segment_id(), reader.delete_opstamp())
}

impl Tallies {
    /// The segments of `searcher` whose tallies for `key` are known, their summed total and
    /// their merged facets (merged only if `key` asks for facets). Tallies counted with facets
    /// serve a query without them.
    pub(super) fn known(
        &self,
        searcher: &Searcher,
        key: &TallyKey,
    ) -> (HashSet<SegmentOrdinal>, u64, FacetTally) {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let with_facets = (key.0, key.1, true);
        let (mut known, mut total, mut tally) = (HashSet::new(), 0, FacetTally::default());
        for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
            let state = segment_state(reader);
            let found = held
                .get(&(state, *key))
                .or_else(|| held.get(&(state, with_facets)));
            if let Some((count, facets)) = found {
                known.insert(ordinal as SegmentOrdinal);
                total += count;
                if key.2 {
                    tally.merge(facets.clone());
                }
            }
        }
        (known, total, tally)
    }

    /// Keeps the tallies `counted` for `key` in `searcher`'s segments, and forgets those of
    /// segments `searcher` no longer has.
    pub(super) fn keep(
        &self,
        searcher: &Searcher,
        key: TallyKey,
        counted: Vec<(SegmentOrdinal, u64, FacetTally)>,
    ) {
        if counted.is_empty() {
            return;
        }
        let readers = searcher.segment_readers();
        let live: HashSet<SegmentState> = readers.iter().map(segment_state).collect();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|(state, _), _| live.contains(state));
        if held.len() + counted.len() > TALLIES_HELD {
            held.clear();
        }
        for (ordinal, total, facets) in counted {
            if let Some(reader) = readers.get(ordinal as usize) {
                held.insert((segment_state(reader), key), (total, facets));
            }
        }
    }

    /// Remembers a query just asked as the newest, to be counted ahead after commits. A query
    /// already remembered moves to the front, so the set follows what readers ask.
    pub(super) fn asked(&self, key: TallyKey, query: &dyn Query, sort: Sort, scored: bool) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.front().is_some_and(|a| a.key == key) {
            return;
        }
        recent.retain(|a| a.key != key);
        recent.push_front(Asked {
            key,
            query: query.box_clone(),
            sort,
            scored,
        });
        recent.truncate(WARM_QUERIES);
    }
}

impl SearchIndex {
    /// Counts the recent queries' totals and facets in the segments they have not been counted
    /// in, so that the first page after a commit or a merge does not. Called after each commit
    /// that changed the index, off the sync's path; returns at once if a count is already
    /// running. Before any reader asks, the whole catalogue as an anonymous reader sees it (the
    /// portal's and the API's first page) is the one query counted. Returns how many queries
    /// it counted.
    pub fn warm_tallies(&self) -> usize {
        if self.tallies.warming.swap(true, Ordering::AcqRel) {
            return 0;
        }
        // Cleared however the counting ends.
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _done = Done(&self.tallies.warming);
        if self.tallies_recent_is_empty()
            && let Err(e) = self.remember_whole_catalogue()
        {
            tracing::warn!(error = %e, "search: the whole catalogue's query could not be built");
        }
        let asked: Vec<(TallyKey, Box<dyn Query>, Sort, bool)> = {
            let recent = self
                .tallies
                .recent
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            recent
                .iter()
                .map(|a| (a.key, a.query.box_clone(), a.sort, a.scored))
                .collect()
        };
        let searcher = self.reader.searcher();
        let segments = searcher.segment_readers().len();
        let mut counted = 0;
        for (key, query, sort, scored) in asked {
            let (known, _, _) = self.tallies.known(&searcher, &key);
            if known.len() == segments {
                continue;
            }
            let collector = PageCollector {
                sort,
                after: None,
                limit: 0,
                scored,
                facets: key.2,
                known,
                sorted_by_date: self.sorted_by_date,
            };
            match searcher.search(query.as_ref(), &collector) {
                Ok(fruit) => {
                    self.tallies.keep(&searcher, key, fruit.counted);
                    counted += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "search: counting a recent query ahead failed")
                }
            }
        }
        counted
    }

    fn tallies_recent_is_empty(&self) -> bool {
        let recent = self
            .tallies
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        recent.is_empty()
    }

    /// Remembers the whole catalogue as an anonymous reader asks for it, with its facets.
    fn remember_whole_catalogue(&self) -> Result<(), super::SearchError> {
        let query = SearchQuery {
            facets: true,
            ..SearchQuery::default()
        };
        let plan = Plan::new(&query)?;
        let tantivy_query = self.build_query(&plan, Entitlements::PUBLIC)?;
        self.tallies.asked(
            (plan.matches_fingerprint(), Entitlements::PUBLIC, true),
            tantivy_query.as_ref(),
            plan.sort,
            !plan.terms.is_empty(),
        );
        Ok(())
    }
}
