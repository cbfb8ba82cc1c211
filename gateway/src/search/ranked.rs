//! Relevance pages after the first, from one ranking per query and index state.
//!
//! A page in date order walks from its cursor (the index is sorted that way), but a page in
//! relevance order has no such order to walk: every match must be scored again to find the
//! page after the cursor, so each page of `电池` (120,000 matches at 1 M entries) cost a pass
//! over all of them, at any depth. The second page of a text query therefore ranks every match
//! once (one pass, one sort, 32 bytes a match: the export's [`AllCollector`]) and keeps the
//! ranking with the searcher it was made on; later pages find their place in it by the
//! cursor's rank, so a page costs the same at any depth. The first page is left as it was (a
//! pass with a page-sized heap): most readers never ask for a second.
//!
//! A ranking is only good for the searcher it was made on (the hits are addresses in its
//! segments, the scores its statistics): rankings of an older index state are dropped as soon
//! as a search sees a newer one, which also lets go of the segments they kept open.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rix_schema::sensitivity::Entitlements;
use tantivy::Searcher;
use tantivy::query::Query;

use super::collect::{AllCollector, Hit, Rank};
use super::query::Sort;

/// Most matches held over all rankings (32 bytes each: 64 MiB); a query with more matches
/// pages by passes, as before.
pub(super) const RANKED_HITS_HELD: usize = 2_000_000;

/// Which ranking: the query (its cursor fingerprint: terms, filters, sort) and the reader's
/// entitlements (the audience filter is in the query).
type RankingKey = (u64, Entitlements);

struct Ranking {
    key: RankingKey,
    generation: u64,
    /// Held so that the segments the hits point into stay readable.
    _searcher: Searcher,
    hits: Arc<Vec<Hit>>,
}

/// The rankings kept, most recently used first.
#[derive(Default)]
pub(super) struct Rankings {
    held: Mutex<VecDeque<Ranking>>,
}

impl Rankings {
    /// The ranking of every match of `query` on `searcher`, best first, made now unless kept.
    pub(super) fn ranking(
        &self,
        searcher: &Searcher,
        key: RankingKey,
        query: &dyn Query,
    ) -> tantivy::Result<Arc<Vec<Hit>>> {
        let generation = searcher.generation().generation_id();
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.retain(|r| r.generation == generation);
            if let Some(at) = held.iter().position(|r| r.key == key) {
                let ranking = held.remove(at).expect("found");
                let hits = ranking.hits.clone();
                held.push_front(ranking);
                return Ok(hits);
            }
        }
        let hits = Arc::new(searcher.search(
            query,
            &AllCollector {
                sort: Sort::Relevance,
                scored: true,
            },
        )?);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|r| r.generation == generation && r.key != key);
        held.push_front(Ranking {
            key,
            generation,
            _searcher: searcher.clone(),
            hits: hits.clone(),
        });
        let mut total = 0;
        held.retain(|r| {
            total += r.hits.len();
            total <= RANKED_HITS_HELD
        });
        Ok(hits)
    }
}

/// The hits of `ranking` after the cursor's rank `after`, at most `n`.
pub(super) fn after(ranking: &[Hit], after: Rank, n: usize) -> Vec<Hit> {
    let start = ranking.partition_point(|h| h.rank <= after);
    ranking[start..].iter().take(n).copied().collect()
}
