//! Collection: one pass over a query's matches that yields the exact total, the facets and the
//! page after the cursor; and the cursors, which name a place in the result order.
//!
//! **Cursor pagination without a depth cap.** Results are ordered by (score desc, key asc) or
//! (date desc, key asc), where the key is unique per unified entry (the change id that first
//! stored the record naming the entry). A cursor names the last item returned; the next page
//! is the first `limit` matches strictly after it (search-after, not offsets), so every match is
//! returned exactly once, ties included, at any depth, as long as the index does not change
//! between pages. A cursor is bound to the query and sort that made it. No more than
//! `limit + 1` candidates are ever kept, which is why there is no depth to cap.
//!
//! **A page at the cost of a page.** A segment's total and facets for a query do not change
//! while the segment does not (its documents are fixed, its deletions are numbered), so the
//! search counts them once per segment and query (`SearchIndex::search` keeps them): the later
//! pages of a query count nothing, and after a commit only the new segments are counted. The
//! index is sorted by [`date_order`] (date descending, then key ascending: the date order of
//! results), so a date-ordered page that counts nothing starts at the cursor (by bisection) and
//! stops as soon as it holds its matches: it reads about a page per segment, whatever the
//! number of matches and the depth. A relevance-ordered page
//! still passes over every match (a score is known only once computed), and a page that counts
//! does too.
//!
//! **One pass, in blocks.** Every match is counted for the total and the facets, so the pass is
//! over every match; matches are buffered in blocks of [`BLOCK`] so that the dense columns (the
//! packed facets, the date, the first program) are read once per block, not per match, and the
//! ordering key only for the matches whose primary value does not already decide. A text query
//! in date order does not score every match: it scores only its candidates, afterwards.
//!
//! What it may not touch: text and stored fields (it reads fast columns only: `key`, `date`,
//! `year`, the packed `facets` and the programs); visibility, which the query already carries.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{ColumnValues, StrColumn};
use tantivy::query::Weight;
use tantivy::{DocId, DocSet, Score, SegmentOrdinal, SegmentReader, TERMINATED};

use super::document::fnv1a;
use super::facets::{FacetTally, NO_PROGRAM, YEAR_ODD};
use super::query::{Plan, Sort};
use super::{SearchError, invalid};

const CURSOR_BYTES: usize = 1 + 8 + 8 + 8;

impl Plan {
    /// Identifies the query a cursor belongs to: terms, filters and sort (not the limit, which
    /// may change between pages).
    pub(super) fn fingerprint(&self) -> u64 {
        let mut s = self.selection();
        let _ = write!(s, "|{:?}", self.sort);
        fnv1a(s.as_bytes())
    }

    /// Identifies the matches of the query: terms and filters. Its total and facets are the
    /// same in any order, so they are kept under this one.
    pub(super) fn matches_fingerprint(&self) -> u64 {
        fnv1a(self.selection().as_bytes())
    }

    fn selection(&self) -> String {
        let mut s = String::new();
        for t in &self.terms {
            let _ = write!(s, "{t:?}\u{1}");
        }
        let _ = write!(
            s,
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.kind,
            self.region,
            self.field,
            self.category,
            self.program,
            self.transfer_mode,
            self.node,
            self.trl_min,
            self.year_from,
            self.year_to,
        );
        s
    }

    fn sort_tag(&self) -> u8 {
        match self.sort {
            Sort::Relevance => 1,
            Sort::Date => 2,
        }
    }

    /// The position after `rank`, as bytes (sealed before it leaves: `access::CursorSeal`).
    pub(super) fn cursor_after(&self, rank: Rank) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(CURSOR_BYTES);
        bytes.push(self.sort_tag());
        bytes.extend_from_slice(&self.fingerprint.to_be_bytes());
        bytes.extend_from_slice(&rank.primary.to_be_bytes());
        bytes.extend_from_slice(&rank.key.to_be_bytes());
        bytes
    }

    /// The rank a cursor of [`Plan::cursor_after`] (opened from its seal) stands after.
    pub(super) fn parse_cursor(&self, bytes: &[u8]) -> Result<Rank, SearchError> {
        let bad = |why: &str| invalid("/query/cursor", why.to_owned());
        if bytes.len() != CURSOR_BYTES {
            return Err(bad("not a cursor this API returned"));
        }
        let word = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        if bytes[0] != 1 && bytes[0] != 2 {
            return Err(bad("not a cursor this API returned"));
        }
        if bytes[0] != self.sort_tag() {
            return Err(bad(
                "the cursor was made for another sort order; start again without a cursor",
            ));
        }
        if word(1) != self.fingerprint {
            return Err(bad(
                "the cursor belongs to another query or other filters; start again without a cursor",
            ));
        }
        Ok(Rank {
            primary: word(9),
            key: word(17),
        })
    }
}

/// A position in the result order: `primary` descending (score or date), then `key`
/// ascending. `Ord` follows the result order: smaller comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rank {
    primary: u64,
    key: u64,
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .primary
            .cmp(&self.primary)
            .then(self.key.cmp(&other.key))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Bits of [`date_order`] that hold the key (change ids stay far below 2^39).
const ORDER_KEY_BITS: u32 = 39;

/// One number whose descending order is the date order of results — date descending, then key
/// ascending — for the `order` column the index is sorted by: within a segment, documents lie
/// in exactly the order a date-ordered page lists them, so a page reads its matches and stops.
/// (A date past 3355 or a key past 2^39, which never occur, only tie: still correct, less quick.)
pub(super) fn date_order(date: u64, key: u64) -> u64 {
    let key_mask = (1u64 << ORDER_KEY_BITS) - 1;
    (date.min((1 << (64 - ORDER_KEY_BITS)) - 1) << ORDER_KEY_BITS) | (key_mask - key.min(key_mask))
}

/// A score as an unsigned number with the same order.
fn score_bits(score: Score) -> u64 {
    let bits = score.to_bits();
    u64::from(if bits >> 31 == 1 {
        !bits
    } else {
        bits | (1 << 31)
    })
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    pub(super) rank: Rank,
    pub(super) score: Score,
    pub(super) segment: SegmentOrdinal,
    pub(super) doc: DocId,
}

impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        self.rank == other.rank
    }
}
impl Eq for Hit {}
impl Ord for Hit {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank.cmp(&other.rank)
    }
}
impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Collects, in one pass over a segment's matches, the total, the facets and the best
/// `limit` matches after the cursor (plus one, to know whether another page follows).
pub(super) struct PageCollector {
    pub(super) sort: Sort,
    pub(super) after: Option<Rank>,
    pub(super) limit: usize,
    /// The query has text terms, so matches have scores.
    pub(super) scored: bool,
    /// Count facets (else only the total and the page).
    pub(super) facets: bool,
    /// The segments whose total and facets for this query are already known (they are
    /// counted once per segment: `SearchIndex::search` keeps them), where only the page is
    /// looked for.
    pub(super) known: HashSet<SegmentOrdinal>,
    /// Every segment is sorted by [`date_order`] (the index's sort order), so a
    /// date-ordered page that counts nothing can start at the cursor and stop at its last
    /// date.
    pub(super) sorted_by_date: bool,
}

pub(super) struct PageFruit {
    /// The best `limit + 1` matches after the cursor: more than `limit` means another page.
    pub(super) hits: Vec<Hit>,
    /// The total and the facets of each segment counted this time (not a known one).
    pub(super) counted: Vec<(SegmentOrdinal, u64, FacetTally)>,
}

/// Matches are processed in blocks of this many: one column read per block, not per match.
const BLOCK: usize = 64;

/// Reads a segment's columns and keeps its tallies and candidate hits.
pub(super) struct PageSegmentCollector {
    segment: SegmentOrdinal,
    sort: Sort,
    after: Option<Rank>,
    keep: usize,
    /// This segment's total (and facets, if wanted) are not known yet: count them.
    counting: bool,
    facets_wanted: bool,
    key: Arc<dyn ColumnValues<u64>>,
    date: Arc<dyn ColumnValues<u64>>,
    year: Arc<dyn ColumnValues<u64>>,
    facets: Arc<dyn ColumnValues<u64>>,
    /// The first program: one value per entry (dense).
    program1: Option<StrColumn>,
    program1_counts: Vec<u64>,
    /// Further programs (few entries have any).
    program_more: Option<StrColumn>,
    program_more_counts: Vec<u64>,
    tally: FacetTally,
    total: u64,
    heap: BinaryHeap<Hit>,
    // Scratch space for one block.
    docs: Vec<DocId>,
    scores: Vec<Score>,
    values: Vec<u64>,
    row_docs: Vec<DocId>,
    rows: Vec<u32>,
    ords: Vec<u64>,
}

impl PageSegmentCollector {
    fn new(
        c: &PageCollector,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Self> {
        let fast = reader.fast_fields();
        let dense = |name: &str| -> tantivy::Result<Arc<dyn ColumnValues<u64>>> {
            Ok(fast.u64(name)?.first_or_default_col(0))
        };
        let program1 = fast.str("program1")?;
        let program_more = fast.str("program_more")?;
        let terms = |p: &Option<StrColumn>| vec![0; p.as_ref().map_or(0, |p| p.num_terms())];
        Ok(PageSegmentCollector {
            segment,
            sort: c.sort,
            after: c.after,
            keep: c.limit + 1,
            counting: !c.known.contains(&segment),
            facets_wanted: c.facets,
            key: dense("key")?,
            date: dense("date")?,
            year: dense("year")?,
            facets: dense("facets")?,
            program1_counts: terms(&program1),
            program_more_counts: terms(&program_more),
            program1,
            program_more,
            tally: FacetTally::default(),
            total: 0,
            heap: BinaryHeap::with_capacity(c.limit + 2),
            docs: Vec::with_capacity(BLOCK),
            scores: Vec::with_capacity(BLOCK),
            values: vec![0; BLOCK],
            row_docs: Vec::with_capacity(BLOCK),
            rows: Vec::with_capacity(BLOCK),
            ords: Vec::with_capacity(BLOCK),
        })
    }

    /// Buffers one match; full blocks are processed at once.
    #[inline]
    fn push(&mut self, doc: DocId, score: Score) {
        self.docs.push(doc);
        self.scores.push(score);
        if self.docs.len() == BLOCK {
            self.flush();
        }
    }

    /// Processes the buffered matches: total, facets, candidates.
    fn flush(&mut self) {
        let n = self.docs.len();
        if n == 0 {
            return;
        }
        if self.counting {
            self.total += n as u64;
            if self.facets_wanted {
                self.count_facets();
            }
        }
        self.offer_candidates();
        self.docs.clear();
        self.scores.clear();
    }

    fn count_facets(&mut self) {
        let n = self.docs.len();
        let docs = &self.docs[..];
        let packed = &mut self.values[..n];
        self.facets.get_vals(docs, packed);
        for (i, &p) in packed.iter().enumerate() {
            self.tally.count(p);
            if (p >> 24) & 0x3ff == YEAR_ODD {
                let year = self.year.get_val(docs[i]);
                *self.tally.odd_years.entry(year).or_default() += 1;
            }
            if p >> 34 & 1 == 1
                && let Some(more) = &self.program_more
            {
                for ord in more.term_ords(docs[i]) {
                    self.program_more_counts[ord as usize] += 1;
                }
            }
        }
        if let Some(p) = &self.program1 {
            let column = p.ords();
            self.row_docs.clear();
            self.rows.clear();
            column
                .index
                .docids_to_rowids(docs, &mut self.row_docs, &mut self.rows);
            self.ords.resize(self.rows.len(), 0);
            column.values.get_vals(&self.rows, &mut self.ords);
            for &ord in &self.ords {
                self.program1_counts[ord as usize] += 1;
            }
        }
    }

    /// Keeps the matches that could be among the best `keep` after the cursor. The key is read
    /// only for matches whose primary value does not already decide.
    fn offer_candidates(&mut self) {
        let n = self.docs.len();
        let primaries = &mut self.values[..n];
        match self.sort {
            Sort::Date => self.date.get_vals(&self.docs, primaries),
            Sort::Relevance => {
                for (v, s) in primaries.iter_mut().zip(&self.scores) {
                    *v = score_bits(*s);
                }
            }
        }
        for (i, &primary) in primaries.iter().enumerate().take(n) {
            // Ranks are (primary desc, key asc): a larger primary comes first.
            if let Some(a) = self.after
                && primary > a.primary
            {
                continue;
            }
            let full = self.heap.len() == self.keep;
            if full && self.heap.peek().is_some_and(|w| primary < w.rank.primary) {
                continue;
            }
            let doc = self.docs[i];
            let rank = Rank {
                primary,
                key: self.key.get_val(doc),
            };
            if self.after.is_some_and(|a| rank <= a)
                || (full && self.heap.peek().is_some_and(|w| rank >= w.rank))
            {
                continue;
            }
            self.heap.push(Hit {
                rank,
                score: self.scores[i],
                segment: self.segment,
                doc,
            });
            if self.heap.len() > self.keep {
                self.heap.pop();
            }
        }
    }

    /// The page of a segment sorted by [`date_order`] when nothing is to be counted: from the
    /// cursor on, in document order — which is result order — until the page is full. What it
    /// reads is about a page, however many matches the query has and however deep the cursor
    /// is.
    fn walk_by_date(&mut self, weight: &dyn Weight, reader: &SegmentReader) -> tantivy::Result<()> {
        let max_doc = reader.max_doc();
        let order = reader.fast_fields().u64("order")?.first_or_default_col(0);
        let start = match self.after {
            // The order does not increase with the document id: the first document not before
            // the cursor is found by bisection.
            Some(a) => {
                let after = date_order(a.primary, a.key);
                let (mut lo, mut hi) = (0, max_doc);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if order.get_val(mid) > after {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            }
            None => 0,
        };
        if start >= max_doc {
            return Ok(());
        }
        let alive = reader.alive_bitset();
        let mut scorer = weight.scorer(reader, 1.0)?;
        let mut doc = scorer.doc();
        if doc < start {
            doc = scorer.seek(start);
        }
        while doc != TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                let primary = self.date.get_val(doc);
                let full = self.heap.len() == self.keep;
                if full
                    && self.heap.peek().is_some_and(|w| {
                        order.get_val(doc) < date_order(w.rank.primary, w.rank.key)
                    })
                {
                    break;
                }
                let rank = Rank {
                    primary,
                    key: self.key.get_val(doc),
                };
                let passed = self.after.is_some_and(|a| rank <= a);
                let beaten = full && self.heap.peek().is_some_and(|w| rank >= w.rank);
                if !passed && !beaten {
                    self.heap.push(Hit {
                        rank,
                        score: 0.0,
                        segment: self.segment,
                        doc,
                    });
                    if self.heap.len() > self.keep {
                        self.heap.pop();
                    }
                }
            }
            doc = scorer.advance();
        }
        Ok(())
    }

    fn harvest(mut self) -> PageFruit {
        self.flush();
        for (column, counts) in [
            (&self.program1, &self.program1_counts),
            (&self.program_more, &self.program_more_counts),
        ] {
            let Some(p) = column else { continue };
            for (ord, &count) in counts.iter().enumerate() {
                let mut value = String::new();
                if count > 0
                    && p.ord_to_str(ord as u64, &mut value).unwrap_or(false)
                    && value != NO_PROGRAM
                {
                    *self.tally.program.entry(value).or_default() += count;
                }
            }
        }
        PageFruit {
            hits: self.heap.into_vec(),
            counted: if self.counting {
                vec![(self.segment, self.total, self.tally)]
            } else {
                Vec::new()
            },
        }
    }
}

impl SegmentCollector for PageSegmentCollector {
    type Fruit = PageFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.push(doc, score);
    }

    fn harvest(self) -> PageFruit {
        PageSegmentCollector::harvest(self)
    }
}

impl Collector for PageCollector {
    type Fruit = PageFruit;
    type Child = PageSegmentCollector;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<PageSegmentCollector> {
        PageSegmentCollector::new(self, segment, reader)
    }

    /// The weight must score whenever there is text (date order scores its page afterwards).
    fn requires_scoring(&self) -> bool {
        self.scored
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<PageFruit> {
        let mut c = PageSegmentCollector::new(self, segment, reader)?;
        // Only relevance order needs every match's score.
        let score_all = self.scored && self.sort == Sort::Relevance;
        if !c.counting && self.sorted_by_date && self.sort == Sort::Date {
            c.walk_by_date(weight, reader)?;
        } else {
            for_each_alive(weight, reader, score_all, |doc, score| c.push(doc, score))?;
        }
        let mut fruit = c.harvest();
        if self.scored && !score_all && !fruit.hits.is_empty() {
            // Score just the candidates, in doc order, with one scorer.
            fruit.hits.sort_unstable_by_key(|h| h.doc);
            let mut scorer = weight.scorer(reader, 1.0)?;
            for hit in &mut fruit.hits {
                if scorer.doc() < hit.doc {
                    scorer.seek(hit.doc);
                }
                if scorer.doc() == hit.doc {
                    hit.score = scorer.score();
                }
            }
        }
        Ok(fruit)
    }

    fn merge_fruits(&self, fruits: Vec<PageFruit>) -> tantivy::Result<PageFruit> {
        let mut merged = PageFruit {
            hits: Vec::new(),
            counted: Vec::new(),
        };
        for f in fruits {
            merged.hits.extend(f.hits);
            merged.counted.extend(f.counted);
        }
        merged.hits.sort_unstable();
        merged.hits.truncate(self.limit + 1);
        Ok(merged)
    }
}

/// Hands every match of `weight` in `reader` that is not deleted to `push`, with its score if
/// `scored` (else 0.0, and nothing is scored). The collectors take over `collect_segment`, so
/// the deleted documents tantivy's own loop would skip are skipped here.
fn for_each_alive(
    weight: &dyn Weight,
    reader: &SegmentReader,
    scored: bool,
    mut push: impl FnMut(DocId, Score),
) -> tantivy::Result<()> {
    let alive = reader.alive_bitset();
    let is_alive = |doc: DocId| alive.is_none_or(|a| a.is_alive(doc));
    if scored {
        weight.for_each(reader, &mut |doc, score| {
            if is_alive(doc) {
                push(doc, score);
            }
        })
    } else {
        weight.for_each_no_score(reader, &mut |docs| {
            for &doc in docs {
                if is_alive(doc) {
                    push(doc, 0.0);
                }
            }
        })
    }
}

/// Collects every match with its rank, in one pass: what an export walks. No total, no facets,
/// no heap: the caller sorts the whole list once and reads it a page at a time, so an export
/// costs one pass over the matches instead of one per page.
pub(super) struct AllCollector {
    pub(super) sort: Sort,
    /// The query has text terms, so matches have scores.
    pub(super) scored: bool,
}

impl AllCollector {
    fn score_all(&self) -> bool {
        self.scored && self.sort == Sort::Relevance
    }
}

/// One segment's matches, ranked.
pub(super) struct AllSegmentCollector {
    segment: SegmentOrdinal,
    sort: Sort,
    key: Arc<dyn ColumnValues<u64>>,
    date: Arc<dyn ColumnValues<u64>>,
    hits: Vec<Hit>,
    docs: Vec<DocId>,
    scores: Vec<Score>,
    primaries: Vec<u64>,
    keys: Vec<u64>,
}

impl AllSegmentCollector {
    fn new(sort: Sort, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<Self> {
        let fast = reader.fast_fields();
        Ok(AllSegmentCollector {
            segment,
            sort,
            key: fast.u64("key")?.first_or_default_col(0),
            date: fast.u64("date")?.first_or_default_col(0),
            hits: Vec::new(),
            docs: Vec::with_capacity(BLOCK),
            scores: Vec::with_capacity(BLOCK),
            primaries: vec![0; BLOCK],
            keys: vec![0; BLOCK],
        })
    }

    #[inline]
    fn push(&mut self, doc: DocId, score: Score) {
        self.docs.push(doc);
        self.scores.push(score);
        if self.docs.len() == BLOCK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let n = self.docs.len();
        if n == 0 {
            return;
        }
        let (primaries, keys) = (&mut self.primaries[..n], &mut self.keys[..n]);
        match self.sort {
            Sort::Date => self.date.get_vals(&self.docs, primaries),
            Sort::Relevance => {
                for (v, s) in primaries.iter_mut().zip(&self.scores) {
                    *v = score_bits(*s);
                }
            }
        }
        self.key.get_vals(&self.docs, keys);
        for i in 0..n {
            self.hits.push(Hit {
                rank: Rank {
                    primary: primaries[i],
                    key: keys[i],
                },
                score: self.scores[i],
                segment: self.segment,
                doc: self.docs[i],
            });
        }
        self.docs.clear();
        self.scores.clear();
    }
}

impl SegmentCollector for AllSegmentCollector {
    type Fruit = Vec<Hit>;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.push(doc, score);
    }

    fn harvest(mut self) -> Vec<Hit> {
        self.flush();
        self.hits
    }
}

impl Collector for AllCollector {
    type Fruit = Vec<Hit>;
    type Child = AllSegmentCollector;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<AllSegmentCollector> {
        AllSegmentCollector::new(self.sort, segment, reader)
    }

    /// Only relevance order needs the scores; a filter-only or date-ordered export never
    /// scores.
    fn requires_scoring(&self) -> bool {
        self.score_all()
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Vec<Hit>> {
        let mut c = AllSegmentCollector::new(self.sort, segment, reader)?;
        for_each_alive(weight, reader, self.score_all(), |doc, score| {
            c.push(doc, score)
        })?;
        Ok(SegmentCollector::harvest(c))
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Hit>>) -> tantivy::Result<Vec<Hit>> {
        let mut all: Vec<Hit> = Vec::with_capacity(fruits.iter().map(Vec::len).sum());
        for f in fruits {
            all.extend(f);
        }
        all.sort_unstable();
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_order_by_primary_descending_then_key() {
        let r = |primary, key| Rank { primary, key };
        assert!(r(5, 9) < r(4, 1));
        assert!(r(5, 1) < r(5, 2));
        assert!(score_bits(1.5) > score_bits(1.25));
        assert!(score_bits(0.0) > score_bits(-1.0));
    }

    #[test]
    fn the_index_order_is_the_date_order_of_results() {
        let r = |primary, key| Rank { primary, key };
        let ranks = [
            r(20_251_231, 7),
            r(20_251_231, 8),
            r(20_251_231, 1 << 38),
            r(20_240_101, 1),
            r(20_240_101, 2),
            r(0, 3),
        ];
        for w in ranks.windows(2) {
            assert!(w[0] < w[1]);
            assert!(
                date_order(w[0].primary, w[0].key) > date_order(w[1].primary, w[1].key),
                "{:?} {:?}",
                w[0],
                w[1]
            );
        }
    }
}
