//! Every match of a query, for a bulk pull: what an export walks from the first match to the
//! last.
//!
//! **One pass, then pages from memory.** Paging an export by cursor makes every page a pass
//! over every match (the total and the page after the cursor need them all), so walking a
//! million matches a thousand at a time is a thousand passes. [`SearchIndex::matches`] makes
//! the one pass, keeps each match's rank and address (32 bytes a match), sorts them once in the
//! query's order, and then hands out rows a page at a time from the fast columns alone: the
//! stored documents (titles, highlight text) are never decompressed, since an export reads the
//! records themselves from the catalogue.
//!
//! **One index state for the whole pull.** The searcher taken for the pass is kept until the
//! last row is read: commits made meanwhile change nothing in what the export lists, so every
//! entry that matched is listed exactly once.
//!
//! What it may not touch: visibility, which the query carries exactly as for a page of results
//! ([`SearchIndex::build_query`]), so an export lists only what the caller's searches would.

use std::ops::Range;

use rix_schema::sensitivity::Entitlements;
use tantivy::Searcher;
use tantivy::columnar::{Column, StrColumn};

use super::collect::{AllCollector, Hit};
use super::query::Plan;
use super::{SearchError, SearchIndex, SearchQuery};

/// One match as an export lists it: the entry, and the two values its CSV row takes from the
/// index view (the year and the province the search filters on), so that a row and the filter
/// that chose it agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRow {
    /// The unified entry.
    pub unified_id: String,
    /// Year (registration, else research end; projects: start), if known.
    pub year: Option<u64>,
    /// Province code (six digits), if known.
    pub region: Option<String>,
}

/// The columns a row is read from, per segment.
struct SegmentColumns {
    uid: Option<StrColumn>,
    year: Column<u64>,
    region: Column<u64>,
}

/// Every match of one query a caller may see, in the query's order, against the index as it was
/// when the pass was made.
pub struct Matches {
    /// Held so that the segments the hits point into stay readable.
    _searcher: Searcher,
    hits: Vec<Hit>,
    columns: Vec<SegmentColumns>,
}

impl std::fmt::Debug for Matches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matches")
            .field("len", &self.hits.len())
            .finish_non_exhaustive()
    }
}

impl Matches {
    /// How many matches.
    pub fn len(&self) -> usize {
        self.hits.len()
    }

    /// No match at all.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// The rows of the matches at `range` of the order (clamped to the matches there are).
    ///
    /// The unified ids come from each segment's dictionary of `uid` terms, whose blocks are
    /// compressed: looked up one at a time, every id would open (and decompress) a block, so a
    /// page's ids are looked up per segment in dictionary order, each block opened once.
    pub fn rows(&self, range: Range<usize>) -> Result<Vec<MatchRow>, SearchError> {
        let end = range.end.min(self.hits.len());
        let start = range.start.min(end);
        let page = &self.hits[start..end];
        let inconsistent = |hit: &Hit| {
            SearchError::Inconsistent(format!(
                "a matching document (segment {}, doc {}) has no unified id",
                hit.segment, hit.doc
            ))
        };
        // Per segment: (term ordinal, place in the page).
        let mut wanted: Vec<Vec<(u64, usize)>> = vec![Vec::new(); self.columns.len()];
        for (place, hit) in page.iter().enumerate() {
            let ord = self.columns[hit.segment as usize]
                .uid
                .as_ref()
                .and_then(|column| column.term_ords(hit.doc).next())
                .ok_or_else(|| inconsistent(hit))?;
            wanted[hit.segment as usize].push((ord, place));
        }
        let mut uids: Vec<Option<String>> = vec![None; page.len()];
        for (segment, mut places) in wanted.into_iter().enumerate() {
            let Some(column) = &self.columns[segment].uid else {
                continue;
            };
            places.sort_unstable();
            let ords: Vec<u64> = places.iter().map(|(ord, _)| *ord).collect();
            let mut next = places.iter();
            column
                .dictionary()
                .sorted_ords_to_term_cb(&ords, |term| {
                    if let Some((_, place)) = next.next() {
                        uids[*place] = Some(String::from_utf8_lossy(term).into_owned());
                    }
                })
                .map_err(|e| SearchError::Index(e.into()))?;
        }
        page.iter()
            .zip(uids)
            .map(|(hit, uid)| {
                let c = &self.columns[hit.segment as usize];
                Ok(MatchRow {
                    unified_id: uid.ok_or_else(|| inconsistent(hit))?,
                    year: c.year.first(hit.doc).filter(|y| *y > 0),
                    region: c
                        .region
                        .first(hit.doc)
                        .filter(|r| *r > 0)
                        .map(|r| format!("{r:06}")),
                })
            })
            .collect()
    }
}

impl SearchIndex {
    /// Every match of `query` a caller with `entitlements` may see, in the query's order
    /// (`limit`, `cursor` and `facets` are not used: it is every match), for an export to read a
    /// page at a time with [`Matches::rows`]. Refuses what [`SearchIndex::search`] refuses, with
    /// the same errors.
    pub fn matches(
        &self,
        query: &SearchQuery,
        entitlements: Entitlements,
    ) -> Result<Matches, SearchError> {
        let plan = Plan::new(&SearchQuery {
            limit: 1,
            cursor: None,
            ..query.clone()
        })?;
        let tantivy_query = self.build_query(&plan, entitlements)?;
        let searcher = self.reader.searcher();
        let collector = AllCollector {
            sort: plan.sort,
            scored: !plan.terms.is_empty(),
        };
        let hits = searcher.search(tantivy_query.as_ref(), &collector)?;
        let mut columns = Vec::with_capacity(searcher.segment_readers().len());
        for reader in searcher.segment_readers() {
            let fast = reader.fast_fields();
            columns.push(SegmentColumns {
                uid: fast.str("uid")?,
                year: fast.u64("year")?,
                region: fast.u64("region")?,
            });
        }
        Ok(Matches {
            _searcher: searcher,
            hits,
            columns,
        })
    }
}
