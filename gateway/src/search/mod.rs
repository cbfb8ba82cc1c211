//! The national full-text search index: Chinese and English search over the unified catalogue
//! entries, with filters, facets, highlights and cursor pagination (DESIGN.md §6, §9
//! `GET /v1/search`).
//!
//! **Derived, never authoritative.** The index is a tantivy index built from the catalogue's
//! change stream, each commit recording with its documents the change it reached; it holds
//! nothing the catalogue does not. [`SearchIndex::sync`] catches up from the last commit,
//! [`SearchIndex::rebuild`] (`rix gateway reindex`) starts again from change 0, and an index
//! that is lost, of another format or no longer of this catalogue is rebuilt or refused, never
//! trusted. How a sync stays exact through crashes and restores is said in `sync` and
//! `lineage`.
//!
//! **No leaks, by construction.** The only text and values that ever enter the index come from
//! one view: `sensitivity::redact(kind, record, Entitlements { internal: true, commercial:
//! false, personal: false })` — the *index view*. Commercial and personal fields (schema
//! `x-sensitivity`) and every field the submitter listed in `confidential_fields` are gone
//! before a single token is made, so no query, total, facet, highlight or stored value can
//! reveal them, whatever the caller's entitlements. Record-level secrecy is the one thing that
//! varies by caller: each document stores its audience (`document` says which, and why an
//! entry may have two documents), and [`SearchIndex::search`] adds the audience filter to the
//! query itself. Because the filter is part of the query, totals, facets, highlights and
//! cursors only ever reflect documents the caller may see. Callers with `commercial` or
//! `personal` entitlements get the same text search as everyone else; they read those fields
//! on the record page, through the same `redact`.
//!
//! **The map**, one module per step, in the order a document and a query take them:
//! - a document comes in through `sync`, which reads the catalogue's change stream and
//!   re-reads the entries a change touched, once `lineage` has checked that the index still
//!   reflects this catalogue; `document` cuts each entry through the index view into its
//!   documents; `text` tokenizes their text twice (grams to match, jieba's words to score);
//!   `facets` packs their facet values into one column;
//! - a query goes through [`SearchIndex::search`]: `query` checks it into a plan and builds
//!   the tantivy query, its terms split by `text`; `collect` runs it in one pass for the
//!   total, the `facets` and the page after the cursor; `highlight` reads the page's hits back
//!   and marks the terms in them. An export takes every match at once instead, through
//!   `matches`: one pass, sorted once, read a page at a time from the fast columns.
//!
//! This module holds what every step shares: the index itself and how it opens, its format,
//! its errors and the page a search returns.
//!
//! What it does not do: it keeps no secret of its own and serves no HTTP (the serve layer calls
//! [`SearchIndex::search`] and schedules [`SearchIndex::sync`]).

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Mutex, MutexGuard};

use rix_schema::sensitivity::Entitlements;
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};

use crate::db::StoreError;

mod collect;
mod document;
mod facets;
mod highlight;
mod lineage;
mod matches;
mod query;
mod ranked;
mod sync;
mod tallies;
mod text;

use tallies::Tallies;

pub use document::{INDEX_VIEW, Searchable, searchable};
pub use facets::{FacetCount, Facets};
pub use highlight::{Highlight, SearchHit};
pub use lineage::{CATCHING_UP_SECONDS, Divergence, Rebuild, SearchHealth};
pub use matches::{MatchRow, Matches};
pub use query::{DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_CHARS, SearchQuery, Sort};
pub use sync::{COMMIT_CHANGES, SYNC_PAGE, SyncReport};

use collect::PageCollector;
use document::{Fields, schema};
use lineage::{Lineage, Monitor};
use query::Plan;
use text::{GRAMS_TOKENIZER, GramsTokenizer, WORDS_TOKENIZER, WordsTokenizer};

/// Bumped whenever the schema or the tokenizers change: an index of another format must be
/// rebuilt, and opening one says so instead of answering wrongly.
const FORMAT: u32 = 7;

// -------------------------------------------------------------------------------------------
// Errors

/// Why a search or a sync failed, said so that the caller knows what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A query parameter is not acceptable; `pointer` names it (`/query/limit`), so the HTTP
    /// layer can answer 400 with a problem document pointing at it.
    #[error("{pointer}: {message}")]
    Invalid {
        /// JSON Pointer of the parameter, e.g. `/query/cursor`.
        pointer: &'static str,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// The index directory cannot be opened or created.
    #[error("cannot open the search index at {path}: {detail}")]
    Open {
        /// The directory.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The directory holds an index of another format (an older or newer gateway).
    #[error(
        "the search index at {path} has format {found:?}, this gateway needs {FORMAT}; it is \
         derived data: delete the directory (the next sync rebuilds it) or run `rix gateway reindex`"
    )]
    Format {
        /// The directory.
        path: String,
        /// The format found in its commit payload, if any was readable.
        found: Option<u32>,
    },
    /// Tantivy failed (I/O, a full disk, a corrupt segment).
    #[error("search index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// Reading the catalogue failed.
    #[error("cannot read the catalogue for the search index: {0}")]
    Store(#[from] StoreError),
    /// The index returned a document the caller may not see: a bug, refused rather than served.
    #[error("search index is inconsistent: {0}; run `rix gateway reindex`")]
    Inconsistent(String),
}

fn invalid(pointer: &'static str, message: impl Into<String>) -> SearchError {
    SearchError::Invalid {
        pointer,
        message: message.into(),
    }
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchPage {
    /// Exact number of matches the caller may see (all pages together).
    pub total: u64,
    /// This page's matches, in order.
    pub items: Vec<SearchHit>,
    /// Counts per value over every visible match (not just this page).
    pub facets: Facets,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

// -------------------------------------------------------------------------------------------
// The index

/// How the index is laid out: documents in the date order of results (`order`: date
/// descending, then key ascending) in every segment, new and merged alike, so that a
/// date-ordered page can be read from its cursor on (`collect::PageCollector`). Part of the
/// format: an index laid out otherwise is rebuilt.
fn index_settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        sort_by_field: Some(tantivy::IndexSortByField {
            field: "order".to_owned(),
            order: tantivy::Order::Desc,
        }),
        ..tantivy::IndexSettings::default()
    }
}

/// What the last commit recorded.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    format: u32,
    cursor: i64,
    #[serde(flatten)]
    lineage: Lineage,
}

/// The cursor and lineage recorded by the last commit (0 and none for an index never
/// committed).
fn committed_payload(index: &Index) -> (i64, Lineage) {
    index
        .load_metas()
        .ok()
        .and_then(|m| m.payload)
        .and_then(|p| serde_json::from_str::<Payload>(&p).ok())
        .map_or((0, Lineage::default()), |p| (p.cursor, p.lineage))
}

/// The writer, the cursor it has committed and where that cursor came from, kept together
/// under one lock.
struct WriterState {
    writer: IndexWriter<TantivyDocument>,
    cursor: i64,
    lineage: Lineage,
    /// The catalogue the sync in progress reads (from its lineage check), recorded by each
    /// commit it makes.
    catalogue: Option<String>,
}

/// The search index: one tantivy index, its reader, and its single writer.
///
/// `Send + Sync`: share it in an `Arc`; searches run concurrently with each other and with a
/// sync (they see the last commit), syncs and rebuilds take turns on the writer.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<WriterState>,
    /// The cursor of the last commit, readable without the writer's lock.
    committed: AtomicI64,
    /// Metrics and status: how far behind, rebuilds, failures.
    monitor: Monitor,
    /// Seals the cursors handed out (they hold change ids: [`crate::access::CursorSeal`]).
    seal: crate::access::CursorSeal,
    /// Totals and facets of recent queries, for the index state they were counted in.
    tallies: Tallies,
    /// Rankings of recent text queries, for their later pages in relevance order.
    rankings: ranked::Rankings,
    /// The index's documents are in date order, newest first, in every segment.
    sorted_by_date: bool,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("docs", &self.reader.searcher().num_docs())
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, creating the directory and an empty index (cursor 0) if there
    /// is none. An index of another format is refused with [`SearchError::Format`].
    pub fn open_or_create(dir: &Path) -> Result<SearchIndex, SearchError> {
        let path = dir.display().to_string();
        let open_err = |detail: String| SearchError::Open {
            path: path.clone(),
            detail,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let directory = MmapDirectory::open(dir).map_err(|e| open_err(e.to_string()))?;
        let exists = Index::exists(&directory).map_err(|e| open_err(e.to_string()))?;
        let (schema, fields) = schema();
        let index = if exists {
            let index = Index::open(directory)?;
            let metas = index.load_metas()?;
            let never_committed = metas.payload.is_none() && metas.segments.is_empty();
            let payload = metas
                .payload
                .and_then(|p| serde_json::from_str::<Payload>(&p).ok());
            let same_schema = index.schema() == schema
                && index.settings().sort_by_field == index_settings().sort_by_field;
            match payload {
                Some(p) if p.format == FORMAT && same_schema => {}
                // Created by this version and stopped before its first commit: empty, cursor 0.
                None if never_committed && same_schema => {}
                other => {
                    return Err(SearchError::Format {
                        path,
                        found: other.map(|p| p.format),
                    });
                }
            }
            index
        } else {
            Index::create(directory, schema, index_settings())?
        };
        // Two indexing threads (the machine's cores) sharing 192 MiB: at 1,000,000 records a
        // rebuild took 56 s with 128 MiB (more, smaller segments to merge), 47 s with 192 MiB
        // and 45 s with 256 MiB, whose peak RSS was 1.2 GB against 0.9 GB.
        SearchIndex::with_index(index, fields, 2, 192 << 20)
    }

    /// Opens the index in `dir` like [`SearchIndex::open_or_create`], but starts afresh when the
    /// one there is of another format (or was killed before its first commit): it is derived
    /// data, and the next [`SearchIndex::sync`] rebuilds it from the change stream. Said in the
    /// log and counted as a rebuild with reason `format`.
    pub fn open_or_rebuild(dir: &Path) -> Result<SearchIndex, SearchError> {
        match SearchIndex::open_or_create(dir) {
            Err(e @ SearchError::Format { .. }) => {
                tracing::warn!(dir = %dir.display(), "{e}; rebuilding it from the catalogue");
                std::fs::remove_dir_all(dir).map_err(|io| SearchError::Open {
                    path: dir.display().to_string(),
                    detail: format!("removing the unusable index: {io}"),
                })?;
                let index = SearchIndex::open_or_create(dir)?;
                index.monitor.rebuild_started("format", e.to_string());
                Ok(index)
            }
            other => other,
        }
    }

    /// An index in memory (tests, tools): empty, cursor 0, gone when dropped.
    pub fn in_ram() -> Result<SearchIndex, SearchError> {
        let (schema, fields) = schema();
        let index = Index::builder()
            .schema(schema)
            .settings(index_settings())
            .create_in_ram()?;
        SearchIndex::with_index(index, fields, 1, 32 << 20)
    }

    fn with_index(
        index: Index,
        fields: Fields,
        threads: usize,
        memory: usize,
    ) -> Result<SearchIndex, SearchError> {
        index
            .tokenizers()
            .register(GRAMS_TOKENIZER, TextAnalyzer::from(GramsTokenizer));
        index.tokenizers().register(
            WORDS_TOKENIZER,
            // Without jieba's HMM guesses at unknown words: the grams field already finds every
            // substring, the words only rank, and the HMM cost 6 % of the index build.
            TextAnalyzer::from(WordsTokenizer::default()),
        );
        let (cursor, lineage) = committed_payload(&index);
        let sorted_by_date = index.settings().sort_by_field == index_settings().sort_by_field;
        let writer = index.writer_with_num_threads(threads, memory)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            index,
            reader,
            fields,
            writer: Mutex::new(WriterState {
                writer,
                cursor,
                lineage,
                catalogue: None,
            }),
            committed: AtomicI64::new(cursor),
            monitor: Monitor::new(),
            seal: crate::access::CursorSeal::ephemeral(),
            tallies: Tallies::default(),
            rankings: ranked::Rankings::default(),
            sorted_by_date,
        })
    }

    fn writer(&self) -> MutexGuard<'_, WriterState> {
        match self.writer.lock() {
            Ok(state) => state,
            Err(poisoned) => {
                // A panic mid-sync may have left uncommitted work: drop it, so that nothing
                // rides along with a later commit and its cursor.
                let mut state = poisoned.into_inner();
                let _ = state.writer.rollback();
                (state.cursor, state.lineage) = committed_payload(&self.index);
                self.writer.clear_poison();
                state
            }
        }
    }

    /// The change id the index has committed everything up to (0 when empty). Does not wait
    /// for a sync in progress.
    pub fn cursor(&self) -> i64 {
        self.committed.load(AtomicOrdering::Acquire)
    }

    /// Documents searchable now (every secrecy level).
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// How the index stands against the catalogue, for `/healthz`.
    pub fn health(&self) -> SearchHealth {
        self.monitor.health()
    }

    /// Registers the index's metrics (`rix_search_*`) with the server's registry.
    pub fn register_metrics(
        &self,
        registry: &prometheus::Registry,
    ) -> Result<(), prometheus::Error> {
        self.monitor.register(registry)
    }

    /// Seals the cursors this index hands out with `seal` (the catalogue's, so that every
    /// replica takes every replica's cursors); until then, with a key of this process's own.
    pub fn seal_cursors_with(&mut self, seal: crate::access::CursorSeal) {
        self.seal = seal;
    }

    /// Runs `query` for a caller with `entitlements`: one page of results, the exact total and
    /// the facets, all over the matches the caller may see.
    pub fn search(
        &self,
        query: &SearchQuery,
        entitlements: Entitlements,
    ) -> Result<SearchPage, SearchError> {
        let mut plan = Plan::new(query)?;
        if let Some(sealed) = query
            .cursor
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            let raw = self
                .seal
                .open_cursor(sealed)
                .map_err(|e| invalid("/query/cursor", e.to_string()))?;
            plan.after = Some(plan.parse_cursor(&raw)?);
        }
        let tantivy_query = self.build_query(&plan, entitlements)?;
        let searcher = self.reader.searcher();
        let tally_key = (plan.matches_fingerprint(), entitlements, query.facets);
        let (known, known_total, mut tally) = self.tallies.known(&searcher, &tally_key);
        let scored = !plan.terms.is_empty();
        let counted_everywhere = known.len() == searcher.segment_readers().len();
        let (total, mut hits) = match plan.after {
            // A later page of a text query in relevance order, its total and facets known:
            // its place in the query's ranking (the `ranked` module says why).
            Some(after)
                if scored
                    && plan.sort == Sort::Relevance
                    && counted_everywhere
                    && known_total <= ranked::RANKED_HITS_HELD as u64 =>
            {
                let ranking = self.rankings.ranking(
                    &searcher,
                    (plan.fingerprint, entitlements),
                    tantivy_query.as_ref(),
                )?;
                self.monitor.ranked_page();
                (known_total, ranked::after(&ranking, after, plan.limit + 1))
            }
            _ => {
                let collector = PageCollector {
                    sort: plan.sort,
                    after: plan.after,
                    limit: plan.limit,
                    scored,
                    facets: query.facets,
                    known,
                    sorted_by_date: self.sorted_by_date,
                };
                let mut fruit = searcher.search(tantivy_query.as_ref(), &collector)?;
                let mut total = known_total;
                for (_, counted, segment_tally) in &fruit.counted {
                    total += counted;
                    tally.merge(segment_tally.clone());
                }
                self.tallies
                    .keep(&searcher, tally_key, std::mem::take(&mut fruit.counted));
                (total, fruit.hits)
            }
        };
        self.tallies
            .asked(tally_key, tantivy_query.as_ref(), plan.sort, scored);
        let facets = tally.into_facets();
        // One more than a page was kept: if it is there, another page follows.
        let more = hits.len() > plan.limit;
        hits.truncate(plan.limit);
        let mut items = Vec::with_capacity(hits.len());
        for hit in &hits {
            items.push(self.hit(&searcher, hit, &plan.terms, entitlements)?);
        }
        let next_cursor = more
            .then(|| hits.last())
            .flatten()
            .map(|h| self.seal.seal_cursor(&plan.cursor_after(h.rank)));
        Ok(SearchPage {
            total,
            items,
            facets,
            next_cursor,
        })
    }
}
