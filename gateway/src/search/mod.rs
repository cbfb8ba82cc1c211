//! The national full-text search index: Chinese and English search over the unified catalogue
//! entries, with filters, facets, highlights and cursor pagination (DESIGN.md §6, §9
//! `GET /v1/search`).
//!
//! **Derived, never authoritative.** The index is a tantivy index built from the catalogue's
//! change stream: [`SearchIndex::sync`] reads [`catalogue::changes_after`] from the cursor it
//! stored in its last commit, re-reads every touched unified entry (the one a change names and
//! the one it moved the record out of) with [`catalogue::unified_many`] and replaces (or
//! deletes) its document, committing every [`COMMIT_CHANGES`] changes and when caught up. The
//! cursor is the tantivy commit payload, so it is durable exactly when the documents are: a
//! gateway killed mid-sync resumes from the last commit, and re-applying changes is harmless
//! (each document is deleted and re-added whole). [`SearchIndex::rebuild`] (`rix gateway
//! reindex`) starts again from change 0.
//!
//! **No leaks, by construction.** The only text and values that ever enter the index come from
//! one view: `sensitivity::redact(kind, record, Entitlements { internal: true, commercial:
//! false, personal: false })` — the *index view*. Commercial and personal fields (schema
//! `x-sensitivity`) and every field the submitter listed in `confidential_fields` are gone
//! before a single token is made, so no query, total, facet, highlight or stored value can
//! reveal them, whatever the caller's entitlements. Record-level secrecy is the one thing that
//! varies by caller: each document stores its audience in `secrecy` — `public` (everyone),
//! `internal` (internal readers only) or `public-view` (everyone *but* internal readers) — and
//! [`SearchIndex::search`] adds the audience filter to the query itself. An entry whose
//! sources are not all of one level gets two documents: the one internal readers see (its
//! oldest source overall, every source) and the one public readers see (its oldest public
//! source, public sources only), so that a public reader never finds an entry through, nor
//! sees the node of, an internal source merged into it. Because the filter is part of the
//! query, totals, facets, highlights and cursors only ever reflect documents the caller may
//! see. Callers with `commercial` or `personal` entitlements get the same text search as
//! everyone else; they read those fields on the record page, through the same `redact`.
//!
//! **Chinese text, two ways.** Every searchable text is indexed twice:
//! - `grams`: our own tokenizer — each run of CJK characters becomes its overlapping
//!   two-character grams (a lone character stays a one-character token), each run of other
//!   letters and digits becomes one lower-cased word, full-width forms fold to half-width.
//!   *Matching* uses only this field, which is what guarantees 100 % recall: a Chinese query
//!   term of two characters is one gram, a longer one is the phrase of its grams at consecutive
//!   positions (runs are separated by a position gap, so a phrase never spans two runs), a
//!   single character matches the grams that contain it. A Chinese term therefore matches
//!   exactly the documents whose text contains it as a substring.
//! - `title` and `body`: jieba (`tantivy-jieba`, search mode, no HMM, lower-cased) — *scoring*
//!   only: the query's jieba words add a BM25 bonus, title words weighing more. `body` holds
//!   keywords, institutions, people and numbers but not the abstract: the abstract is the bulk
//!   of the text, already scored through the `grams` phrase that must match, and leaving it to
//!   `grams` cut a 1,000,000-record rebuild from 58 s to 48 s. Jieba's search mode
//!   alone does not guarantee recall: it emits only the dictionary sub-words of a word it cut,
//!   and a two-character word across one of its cut points is never emitted (the company
//!   name `玉溪恒通信息科技` cuts as `恒通/信息`, so `通信` would be missed there); a unit test
//!   shows it, and the integration tests check every such word they find in the sample corpus.
//!
//! **Query semantics.** `q` is split like the text: each run of CJK characters and each run of
//! other letters and digits is a term; every term must match (AND), Chinese terms as substrings,
//! letters/digits as whole words (`5G` matches `5G通信`, `LTE` does not match `VoLTE`). Nothing
//! in `q` is syntax, so no user text can cause a parse error. Filters are exact and are ANDed.
//!
//! **Cursor pagination without a depth cap.** Results are ordered by (score desc, key asc) or
//! (date desc, key asc), where the key is unique per unified entry (the change id that first
//! stored the record naming the entry). A cursor names the last item returned; the next page
//! is the first `limit` matches strictly after it (search-after, not offsets), so every match is
//! returned exactly once, ties included, at any depth, as long as the index does not change
//! between pages. A cursor is bound to the query and sort that made it.
//!
//! What it does not do: it keeps no secret of its own and serves no HTTP (the serve layer calls
//! [`SearchIndex::search`] and schedules [`SearchIndex::sync`]); it does not compute facets
//! "disjunctively" (a facet's counts are over the filtered match set, its own filter included).

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt::Write as _;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};

use rix_schema::RecordKind;
use rix_schema::record::{Category, Field as TechField, TransferMode};
use rix_schema::sensitivity::Entitlements;
use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{ColumnValues, StrColumn};
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhraseQuery, Query, RangeQuery,
    RegexQuery, TermQuery, Weight,
};
use tantivy::schema::{Field, IndexRecordOption, Value as _};
use tantivy::tokenizer::{TextAnalyzer, TokenStream};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher,
    SegmentOrdinal, SegmentReader, TantivyDocument, Term,
};

use crate::catalogue::{self, ChangeRow};
use crate::db::{Db, StoreError};

mod lineage;
pub use lineage::{CATCHING_UP_SECONDS, Divergence, Rebuild, SearchHealth};
use lineage::{Lineage, Monitor};
mod document;
mod text;
use document::{
    AUDIENCE_ALL, AUDIENCE_PUBLIC_ONLY, Fields, audiences_for, category_code, field_code, fnv1a,
    schema,
};
pub use document::{INDEX_VIEW, Searchable, searchable};
mod facets;
pub use facets::{FacetCount, Facets};
use facets::{FacetTally, NO_PROGRAM, YEAR_ODD};
use text::{Folded, GRAMS_TOKENIZER, GramsTokenizer, RunKind, WORDS_TOKENIZER, WordsTokenizer};

/// Changes read per page of [`SearchIndex::sync`].
pub const SYNC_PAGE: i64 = 10_000;

/// Changes indexed between two commits while catching up. Each commit closes the segments
/// in progress; committing every 10,000 changes made a 1,000,000-record rebuild write ~200
/// small segments and spend a fifth of its time merging them.
pub const COMMIT_CHANGES: u64 = 200_000;

/// Entries read from the catalogue per round of statements while syncing.
const SYNC_READ: usize = 400;

/// Most items one page may ask for.
pub const MAX_LIMIT: usize = 100;

/// Items per page when the query does not say.
pub const DEFAULT_LIMIT: usize = 20;

/// Longest `q` accepted, in characters (and it may hold at most 32 terms).
pub const MAX_QUERY_CHARS: usize = 500;
const MAX_QUERY_TERMS: usize = 32;

/// Bumped whenever the schema or the tokenizers change: an index of another format must be
/// rebuilt, and opening one says so instead of answering wrongly.
const FORMAT: u32 = 5;

/// Longest highlight snippet, in characters (before marks and ellipses).
const SNIPPET_CHARS: usize = 100;
/// How much text a snippet shows before its first match.
const SNIPPET_LEAD: usize = 24;

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

// -------------------------------------------------------------------------------------------
// Public query and result types

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Best BM25 score first (ties by entry, oldest first); without `q`, by entry.
    #[default]
    Relevance,
    /// Newest first by registration date (else research end; projects: start), ties by entry.
    Date,
}

/// One search request, as `GET /v1/search` receives it. Empty strings count as absent, so a
/// form that submits every field empty searches everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    /// Full text, Chinese and English mixed; every term must match.
    pub q: Option<String>,
    /// `achievement` or `funded_project`.
    pub kind: Option<String>,
    /// Province code of the main institution (achievements) or lead (projects), e.g. `530000`.
    pub region: Option<String>,
    /// Technology field (技术领域), e.g. `新能源与节能`.
    pub field: Option<String>,
    /// Achievement category (成果类别), e.g. `应用技术`.
    pub category: Option<String>,
    /// Program (计划类别): an achievement's funding program or a project's own.
    pub program: Option<String>,
    /// Lowest technology readiness level, 1–9.
    pub trl_min: Option<u64>,
    /// First year, inclusive.
    pub year_from: Option<u64>,
    /// Last year, inclusive.
    pub year_to: Option<u64>,
    /// Transfer mode (转化方式), e.g. `许可`.
    pub transfer_mode: Option<String>,
    /// Publishing node: entries with an active source from this node.
    pub node: Option<String>,
    /// Order of results.
    pub sort: Sort,
    /// Items per page, 1–100.
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Count the facets (the default). An export walking every page turns it off: the facets
    /// of a page cost a pass over every match, which it would pay once per page.
    #[serde(skip)]
    pub facets: bool,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            q: None,
            kind: None,
            region: None,
            field: None,
            category: None,
            program: None,
            trl_min: None,
            year_from: None,
            year_to: None,
            transfer_mode: None,
            node: None,
            sort: Sort::Relevance,
            limit: DEFAULT_LIMIT,
            cursor: None,
            facets: true,
        }
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

/// One matching unified entry, as a result list shows it. Everything here comes from the index
/// view, so nothing in it is commercial, personal or submitter-confidential.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The unified entry (`GET /v1/entries/{unified_id}`).
    pub unified_id: String,
    /// `achievement` or `funded_project`.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Year (registration, else research end; projects: start), if known.
    pub year: Option<u64>,
    /// Province code, if known.
    pub region: Option<String>,
    /// `public` or `internal`.
    pub secrecy: String,
    /// BM25 score (0 without `q`).
    pub score: f32,
    /// Where the terms were found, HTML-escaped, matches wrapped in `<em>`.
    pub highlights: Vec<Highlight>,
}

/// A snippet of one text field with the query's matches marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Highlight {
    /// `title`, `abstract`, `keywords`, `institutions`, `people` or `numbers`.
    pub field: String,
    /// HTML: escaped text, matches in `<em>…</em>`, `…` where the text was cut.
    pub snippet: String,
}

/// What one [`SearchIndex::sync`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Changes read from the catalogue's change stream.
    pub changes: u64,
    /// Documents (re)written.
    pub indexed: u64,
    /// Entries removed (every source withdrawn, or nothing visible left).
    pub removed: u64,
    /// Commits made (every [`COMMIT_CHANGES`] changes, and at the end).
    pub commits: u64,
    /// The change id the index has now seen everything up to.
    pub cursor: i64,
}

/// One term of a query: a run of CJK characters (matched as a substring) or of other letters
/// and digits (matched as a whole word). Folded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum QueryTerm {
    Cjk(String),
    Word(String),
}

impl QueryTerm {
    fn text(&self) -> &str {
        match self {
            QueryTerm::Cjk(t) | QueryTerm::Word(t) => t,
        }
    }
}

/// The terms of `q`, in order, without repeats.
fn query_terms(q: &str) -> Vec<QueryTerm> {
    let folded = Folded::new(q);
    let mut terms: Vec<QueryTerm> = Vec::new();
    for (kind, start, end) in folded.runs() {
        let text: String = folded.chars[start..end].iter().collect();
        let term = match kind {
            RunKind::Cjk => QueryTerm::Cjk(text),
            RunKind::Word => QueryTerm::Word(text),
        };
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    terms
}

/// Where `terms` occur in `text`: sorted, merged ranges of original character indexes.
fn match_ranges(text: &str, terms: &[QueryTerm]) -> Vec<(usize, usize)> {
    let folded = Folded::new(text);
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut runs: Option<Vec<(RunKind, usize, usize)>> = None;
    for term in terms {
        match term {
            QueryTerm::Cjk(t) => {
                let needle: Vec<char> = t.chars().collect();
                if needle.is_empty() || needle.len() > folded.chars.len() {
                    continue;
                }
                for i in 0..=folded.chars.len() - needle.len() {
                    if folded.chars[i..i + needle.len()] == needle[..] {
                        ranges.push((folded.origin[i], folded.origin[i + needle.len() - 1] + 1));
                    }
                }
            }
            QueryTerm::Word(w) => {
                let runs = runs.get_or_insert_with(|| folded.runs());
                for &(kind, start, end) in runs.iter() {
                    if kind == RunKind::Word
                        && end - start == w.chars().count()
                        && folded.chars[start..end].iter().copied().eq(w.chars())
                    {
                        ranges.push((folded.origin[start], folded.origin[end - 1] + 1));
                    }
                }
            }
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

fn escape_into(out: &mut String, chars: &[char]) {
    for &c in chars {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

/// A snippet of `text` around its first match, HTML-escaped, matches in `<em>`; `None` if no
/// term occurs in it.
fn snippet(text: &str, terms: &[QueryTerm]) -> Option<String> {
    let ranges = match_ranges(text, terms);
    let first = ranges.first()?;
    let chars: Vec<char> = text.chars().collect();
    let (start, end) = if chars.len() <= SNIPPET_CHARS {
        (0, chars.len())
    } else {
        let end = (first.0.saturating_sub(SNIPPET_LEAD) + SNIPPET_CHARS).min(chars.len());
        (end.saturating_sub(SNIPPET_CHARS), end)
    };
    let mut out = String::with_capacity((end - start) * 3 + 16);
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(s, e) in &ranges {
        let (s, e) = (s.max(start), e.min(end));
        if s >= e {
            continue;
        }
        escape_into(&mut out, &chars[at..s]);
        out.push_str("<em>");
        escape_into(&mut out, &chars[s..e]);
        out.push_str("</em>");
        at = e;
    }
    escape_into(&mut out, &chars[at..end]);
    if end < chars.len() {
        out.push('…');
    }
    Some(out)
}

/// The stored-only text fields a highlight may come from, after the title, with their names.
const HIGHLIGHT_FIELDS: [&str; 5] = ["abstract", "keywords", "institutions", "people", "numbers"];

// -------------------------------------------------------------------------------------------
// The index

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
            let same_schema = index.schema() == schema;
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
            Index::create(directory, schema, tantivy::IndexSettings::default())?
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
        SearchIndex::with_index(Index::create_in_ram(schema), fields, 1, 32 << 20)
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

    /// Brings the index up to date with the catalogue's change stream, reading pages of
    /// [`SYNC_PAGE`] changes and committing every [`COMMIT_CHANGES`] changes and at the end,
    /// each commit recording its cursor and lineage. On failure what was not committed is
    /// rolled back; the next call starts again from the last commit.
    ///
    /// First checks that the index still reflects this catalogue (see [`lineage`]): when it
    /// does not, it is emptied and rebuilt from change 0, loudly.
    pub fn sync(&self, db: &Db) -> Result<SyncReport, SearchError> {
        let mut state = self.writer();
        let result = self.sync_checked(&mut state, db);
        match &result {
            Ok(_) => self.monitor.sync_succeeded(),
            Err(e) => self.monitor.sync_failed(&e.to_string()),
        }
        result
    }

    fn sync_checked(&self, state: &mut WriterState, db: &Db) -> Result<SyncReport, SearchError> {
        let check = lineage::check(&mut *db.conn()?, &state.lineage, state.cursor)?;
        let standing = match check {
            Ok(standing) => standing,
            Err(divergence) => {
                tracing::warn!(
                    reason = divergence.reason(),
                    "search index does not reflect the catalogue: {divergence}; emptying it and \
                     rebuilding it from the catalogue's change stream"
                );
                self.monitor
                    .rebuild_started(divergence.reason(), divergence.to_string());
                // Its documents are wrong, not merely old: they go before the rebuild starts.
                state.writer.delete_all_documents()?;
                state.catalogue = Some(catalogue::catalogue_id(&mut *db.conn()?)?);
                self.commit(state, db, 0)?;
                let report = self.sync_locked(state, db, true)?;
                tracing::warn!(
                    changes = report.changes,
                    documents = self.num_docs(),
                    "search index rebuilt from the catalogue"
                );
                return Ok(report);
            }
        };
        self.monitor.observe(&standing, state.cursor);
        state.catalogue = Some(standing.catalogue);
        self.sync_locked(state, db, false)
    }

    /// Drops every document and indexes the whole catalogue again from change 0 (`rix gateway
    /// reindex`). Searches see the old documents until the first commit, then the new ones
    /// commit by commit; on failure the old index stays as it was.
    pub fn rebuild(&self, db: &Db) -> Result<SyncReport, SearchError> {
        let mut state = self.writer();
        self.monitor
            .rebuild_started("requested", "rebuild requested".to_owned());
        state.catalogue = Some(catalogue::catalogue_id(&mut *db.conn()?)?);
        state.writer.delete_all_documents()?;
        state.cursor = 0;
        let report = self.sync_locked(&mut state, db, true);
        match &report {
            Ok(_) => self.monitor.sync_succeeded(),
            Err(e) => self.monitor.sync_failed(&e.to_string()),
        }
        report
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

    fn sync_locked(
        &self,
        state: &mut WriterState,
        db: &Db,
        force_commit: bool,
    ) -> Result<SyncReport, SearchError> {
        let result = self.sync_pages(state, db, force_commit);
        if result.is_err() {
            // Nothing uncommitted may ride along with a later commit and its cursor.
            let _ = state.writer.rollback();
            (state.cursor, state.lineage) = committed_payload(&self.index);
            self.committed.store(state.cursor, AtomicOrdering::Release);
        }
        result
    }

    fn sync_pages(
        &self,
        state: &mut WriterState,
        db: &Db,
        mut force_commit: bool,
    ) -> Result<SyncReport, SearchError> {
        let mut report = SyncReport {
            cursor: state.cursor,
            ..SyncReport::default()
        };
        let mut read = state.cursor;
        let mut uncommitted = 0u64;
        loop {
            let mut conn = db.conn()?;
            let rows = catalogue::changes_after(&mut conn, read, SYNC_PAGE)?;
            let Some(last) = rows.last().map(|r| r.change_id) else {
                if force_commit || uncommitted > 0 {
                    self.commit(state, db, read)?;
                    report.commits += 1;
                }
                break;
            };
            // Every entry a change names: the one the record is in, and the one it left.
            let uids: BTreeSet<&str> = rows.iter().flat_map(ChangeRow::entries).collect();
            let uids: Vec<&str> = uids.into_iter().collect();
            for chunk in uids.chunks(SYNC_READ) {
                let mut entries = catalogue::unified_many(&mut conn, chunk)?;
                for uid in chunk {
                    // Deletes reach every document added before them, committed or not.
                    state
                        .writer
                        .delete_term(Term::from_field_text(self.fields.uid, uid));
                    let docs = match entries.remove(*uid) {
                        Some(u) => self.documents(u)?,
                        None => Vec::new(),
                    };
                    if docs.is_empty() {
                        report.removed += 1;
                    } else {
                        report.indexed += 1;
                    }
                    for doc in docs {
                        state.writer.add_document(doc)?;
                    }
                }
            }
            drop(conn);
            read = last;
            uncommitted += rows.len() as u64;
            report.changes += rows.len() as u64;
            let caught_up = (rows.len() as i64) < SYNC_PAGE;
            if caught_up || uncommitted >= COMMIT_CHANGES {
                self.commit(state, db, last)?;
                force_commit = false;
                uncommitted = 0;
                report.commits += 1;
            }
            if caught_up {
                break;
            }
        }
        report.cursor = state.cursor;
        Ok(report)
    }

    /// Commits what was written, recording `cursor`, the catalogue it was read from and the
    /// fingerprint of the change at `cursor`, so that the next sync can tell whether the
    /// catalogue still holds what the index reflects.
    fn commit(&self, state: &mut WriterState, db: &Db, cursor: i64) -> Result<(), SearchError> {
        let mut conn = db.conn()?;
        let lineage = Lineage {
            catalogue: state.catalogue.clone(),
            fingerprint: match cursor {
                0 => None,
                c => catalogue::change_fingerprint(&mut conn, c)?,
            },
        };
        let (head, next_at) = catalogue::change_head(&mut conn, cursor)?;
        drop(conn);
        let payload = serde_json::to_string(&Payload {
            format: FORMAT,
            cursor,
            lineage: lineage.clone(),
        })
        .expect("a payload is JSON");
        let mut prepared = state.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        state.cursor = cursor;
        state.lineage = lineage;
        self.committed.store(cursor, AtomicOrdering::Release);
        self.reader.reload()?;
        self.monitor
            .committed(cursor, head, next_at.as_deref(), self.num_docs());
        Ok(())
    }

    /// Runs `query` for a caller with `entitlements`: one page of results, the exact total and
    /// the facets, all over the matches the caller may see.
    pub fn search(
        &self,
        query: &SearchQuery,
        entitlements: Entitlements,
    ) -> Result<SearchPage, SearchError> {
        let plan = Plan::new(query)?;
        let tantivy_query = self.build_query(&plan, entitlements)?;
        let searcher = self.reader.searcher();
        let collector = PageCollector {
            sort: plan.sort,
            after: plan.after,
            limit: plan.limit,
            scored: !plan.terms.is_empty(),
            facets: query.facets,
        };
        let mut fruit = searcher.search(tantivy_query.as_ref(), &collector)?;
        // One more than a page was kept: if it is there, another page follows.
        let more = fruit.hits.len() > plan.limit;
        fruit.hits.truncate(plan.limit);
        let mut items = Vec::with_capacity(fruit.hits.len());
        for hit in &fruit.hits {
            items.push(self.hit(&searcher, hit, &plan.terms, entitlements)?);
        }
        let next_cursor = more
            .then(|| fruit.hits.last().map(|h| plan.cursor_after(h.rank)))
            .flatten();
        Ok(SearchPage {
            total: fruit.total,
            items,
            facets: fruit.facets.into_facets(),
            next_cursor,
        })
    }

    fn hit(
        &self,
        searcher: &Searcher,
        hit: &Hit,
        terms: &[QueryTerm],
        entitlements: Entitlements,
    ) -> Result<SearchHit, SearchError> {
        let f = &self.fields;
        let doc: TantivyDocument = searcher.doc(DocAddress::new(hit.segment, hit.doc))?;
        let text = |field: Field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let mut secrecy = text(f.secrecy).unwrap_or_default();
        let uid = text(f.uid).unwrap_or_default();
        let visible = audiences_for(entitlements).contains(&secrecy.as_str());
        if secrecy == AUDIENCE_PUBLIC_ONLY {
            secrecy = AUDIENCE_ALL.to_owned();
        }
        if !visible {
            return Err(SearchError::Inconsistent(format!(
                "entry {uid} ({secrecy}) matched a query for {entitlements}"
            )));
        }
        let mut highlights = Vec::new();
        if !terms.is_empty() {
            let stored = [
                f.hl_abstract,
                f.hl_keywords,
                f.hl_institutions,
                f.hl_people,
                f.hl_numbers,
            ];
            let sources = std::iter::once(("title", f.title))
                .chain(HIGHLIGHT_FIELDS.iter().copied().zip(stored));
            for (name, field) in sources {
                if let Some(s) = text(field).and_then(|t| snippet(&t, terms)) {
                    highlights.push(Highlight {
                        field: name.to_owned(),
                        snippet: s,
                    });
                }
            }
        }
        Ok(SearchHit {
            unified_id: uid,
            kind: text(f.kind).unwrap_or_default(),
            title: text(f.title).unwrap_or_default(),
            year: doc
                .get_first(f.year)
                .and_then(|v| v.as_u64())
                .filter(|y| *y > 0),
            region: doc
                .get_first(f.region)
                .and_then(|v| v.as_u64())
                .filter(|r| *r > 0)
                .map(|r| format!("{r:06}")),
            secrecy,
            score: hit.score,
            highlights,
        })
    }

    fn build_query(
        &self,
        plan: &Plan,
        entitlements: Entitlements,
    ) -> Result<Box<dyn Query>, SearchError> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let filter = |q: Box<dyn Query>| -> (Occur, Box<dyn Query>) {
            (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)))
        };
        let exact = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        // Visibility first: it is the one filter that must never be missing.
        let audience: Vec<(Occur, Box<dyn Query>)> = audiences_for(entitlements)
            .iter()
            .map(|a| (Occur::Should, exact(f.secrecy, a)))
            .collect();
        clauses.push(filter(Box::new(BooleanQuery::new(audience))));
        for (field, value) in [
            (f.kind, &plan.kind),
            (f.program, &plan.program),
            (f.transfer_mode, &plan.transfer_mode),
            (f.node, &plan.node),
        ] {
            if let Some(v) = value {
                clauses.push(filter(exact(field, v)));
            }
        }
        let number = |field: Field, value: u64| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_u64(field, value),
                IndexRecordOption::Basic,
            ))
        };
        if let Some(r) = &plan.region {
            clauses.push(filter(number(f.region, r.parse().unwrap_or(u64::MAX))));
        }
        if let Some(v) = &plan.field {
            clauses.push(filter(number(f.field, field_code(v))));
        }
        if let Some(v) = &plan.category {
            clauses.push(filter(number(f.category, category_code(v))));
        }
        // Ranges start at 1: 0 is "none" in these columns.
        let range = |field: Field, from: Option<u64>, to: Option<u64>| -> Box<dyn Query> {
            let to = match to {
                Some(t) => Bound::Included(Term::from_field_u64(field, t)),
                None => Bound::Unbounded,
            };
            let from = Term::from_field_u64(field, from.unwrap_or(1).max(1));
            Box::new(RangeQuery::new(Bound::Included(from), to))
        };
        if plan.trl_min.is_some() {
            clauses.push(filter(range(f.trl, plan.trl_min, None)));
        }
        if plan.year_from.is_some() || plan.year_to.is_some() {
            clauses.push(filter(range(f.year, plan.year_from, plan.year_to)));
        }
        // Matching: every term in the grams field.
        for term in &plan.terms {
            clauses.push((Occur::Must, self.grams_query(term)?));
        }
        // Scoring: the query's jieba words in the title (weighing more) and the body.
        if !plan.terms.is_empty() {
            let mut words = BTreeSet::new();
            let mut analyzer = self.index.tokenizer_for_field(f.title)?;
            for term in &plan.terms {
                let mut stream = analyzer.token_stream(term.text());
                while let Some(token) = stream.next() {
                    words.insert(token.text.clone());
                }
            }
            for word in words.iter().take(4 * MAX_QUERY_TERMS) {
                for (field, boost) in [(f.title, 2.0), (f.body, 1.0)] {
                    let q = TermQuery::new(
                        Term::from_field_text(field, word),
                        IndexRecordOption::WithFreqs,
                    );
                    clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost))));
                }
            }
        }
        if clauses.is_empty() {
            return Ok(Box::new(AllQuery));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn grams_query(&self, term: &QueryTerm) -> Result<Box<dyn Query>, SearchError> {
        let field = self.fields.grams;
        let gram = |s: &str| Term::from_field_text(field, s);
        Ok(match term {
            QueryTerm::Word(w) => Box::new(TermQuery::new(gram(w), IndexRecordOption::WithFreqs)),
            QueryTerm::Cjk(t) => {
                let chars: Vec<char> = t.chars().collect();
                match chars.len() {
                    // A lone character: itself (a one-character run) or any gram holding it.
                    // Only CJK characters get here, none of which is regex syntax.
                    1 => Box::new(RegexQuery::from_pattern(
                        &format!("{c}.?|.{c}", c = chars[0]),
                        field,
                    )?),
                    2 => Box::new(TermQuery::new(gram(t), IndexRecordOption::WithFreqs)),
                    _ => {
                        let grams = chars
                            .windows(2)
                            .enumerate()
                            .map(|(i, w)| (i, gram(&w.iter().collect::<String>())))
                            .collect();
                        Box::new(PhraseQuery::new_with_offset(grams))
                    }
                }
            }
        })
    }
}

// -------------------------------------------------------------------------------------------
// Query validation and cursors

/// A validated query.
struct Plan {
    terms: Vec<QueryTerm>,
    kind: Option<String>,
    region: Option<String>,
    field: Option<String>,
    category: Option<String>,
    program: Option<String>,
    transfer_mode: Option<String>,
    node: Option<String>,
    trl_min: Option<u64>,
    year_from: Option<u64>,
    year_to: Option<u64>,
    sort: Sort,
    limit: usize,
    after: Option<Rank>,
    fingerprint: u64,
}

fn present(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn one_of(
    pointer: &'static str,
    value: Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, SearchError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(invalid(
            pointer,
            format!("{v:?} is not one of: {}", allowed.join(", ")),
        )),
        other => Ok(other),
    }
}

const CURSOR_BYTES: usize = 1 + 8 + 8 + 8;

impl Plan {
    fn new(q: &SearchQuery) -> Result<Plan, SearchError> {
        if !(1..=MAX_LIMIT).contains(&q.limit) {
            return Err(invalid(
                "/query/limit",
                format!(
                    "{} is out of range; ask for 1 to {MAX_LIMIT} items",
                    q.limit
                ),
            ));
        }
        let text = present(&q.q).unwrap_or_default();
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(invalid(
                "/query/q",
                format!("the query is longer than {MAX_QUERY_CHARS} characters"),
            ));
        }
        let terms = query_terms(&text);
        if terms.len() > MAX_QUERY_TERMS {
            return Err(invalid(
                "/query/q",
                format!(
                    "the query has {} terms; at most {MAX_QUERY_TERMS} are searched together",
                    terms.len()
                ),
            ));
        }
        let kinds: Vec<&str> = RecordKind::ALL.iter().map(|k| k.as_str()).collect();
        let fields: Vec<&str> = TechField::ALL.iter().map(|f| f.as_str()).collect();
        let categories: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        let modes: Vec<&str> = TransferMode::ALL.iter().map(|m| m.as_str()).collect();
        let region = present(&q.region);
        if let Some(r) = &region
            && !(r.len() == 6 && r.bytes().all(|b| b.is_ascii_digit()) && r.ends_with("0000"))
        {
            return Err(invalid(
                "/query/region",
                format!("{r:?} is not a province code; regions filter by province, e.g. 530000"),
            ));
        }
        if let Some(t) = q.trl_min
            && !(1..=9).contains(&t)
        {
            return Err(invalid(
                "/query/trl_min",
                format!("{t} is not a readiness level 1–9"),
            ));
        }
        if let (Some(from), Some(to)) = (q.year_from, q.year_to)
            && from > to
        {
            return Err(invalid(
                "/query/year_from",
                format!("year_from {from} is after year_to {to}"),
            ));
        }
        let mut plan = Plan {
            terms,
            kind: one_of("/query/kind", present(&q.kind), &kinds)?,
            region,
            field: one_of("/query/field", present(&q.field), &fields)?,
            category: one_of("/query/category", present(&q.category), &categories)?,
            program: present(&q.program),
            transfer_mode: one_of("/query/transfer_mode", present(&q.transfer_mode), &modes)?,
            node: present(&q.node),
            trl_min: q.trl_min,
            year_from: q.year_from,
            year_to: q.year_to,
            sort: q.sort,
            limit: q.limit,
            after: None,
            fingerprint: 0,
        };
        plan.fingerprint = plan.fingerprint();
        if let Some(c) = present(&q.cursor) {
            plan.after = Some(plan.parse_cursor(&c)?);
        }
        Ok(plan)
    }

    /// Identifies the query a cursor belongs to: terms, filters and sort (not the limit, which
    /// may change between pages).
    fn fingerprint(&self) -> u64 {
        let mut s = String::new();
        for t in &self.terms {
            let _ = write!(s, "{t:?}\u{1}");
        }
        let _ = write!(
            s,
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
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
            self.sort
        );
        fnv1a(s.as_bytes())
    }

    fn sort_tag(&self) -> u8 {
        match self.sort {
            Sort::Relevance => 1,
            Sort::Date => 2,
        }
    }

    fn cursor_after(&self, rank: Rank) -> String {
        let mut bytes = Vec::with_capacity(CURSOR_BYTES);
        bytes.push(self.sort_tag());
        bytes.extend_from_slice(&self.fingerprint.to_be_bytes());
        bytes.extend_from_slice(&rank.primary.to_be_bytes());
        bytes.extend_from_slice(&rank.key.to_be_bytes());
        hex::encode(bytes)
    }

    fn parse_cursor(&self, cursor: &str) -> Result<Rank, SearchError> {
        let bad = |why: &str| invalid("/query/cursor", why.to_owned());
        let bytes = hex::decode(cursor).map_err(|_| bad("not a cursor this API returned"))?;
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

// -------------------------------------------------------------------------------------------
// Collection: total, facets and one page after the cursor, in one pass

/// A position in the result order: `primary` descending (score or date), then `key`
/// ascending. `Ord` follows the result order: smaller comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rank {
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
struct Hit {
    rank: Rank,
    score: Score,
    segment: SegmentOrdinal,
    doc: DocId,
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
struct PageCollector {
    sort: Sort,
    after: Option<Rank>,
    limit: usize,
    /// The query has text terms, so matches have scores.
    scored: bool,
    /// Count facets (else only the total and the page).
    facets: bool,
}

struct PageFruit {
    total: u64,
    /// The best `limit + 1` matches after the cursor: more than `limit` means another page.
    hits: Vec<Hit>,
    facets: FacetTally,
}

/// Matches are processed in blocks of this many: one column read per block, not per match.
const BLOCK: usize = 64;

/// Reads a segment's columns and keeps its tallies and candidate hits.
struct PageSegmentCollector {
    segment: SegmentOrdinal,
    sort: Sort,
    after: Option<Rank>,
    keep: usize,
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
        self.total += n as u64;
        if self.facets_wanted {
            self.count_facets();
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
            total: self.total,
            hits: self.heap.into_vec(),
            facets: self.tally,
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
        let alive = reader.alive_bitset();
        let is_alive = |doc: DocId| alive.is_none_or(|a| a.is_alive(doc));
        // Only relevance order needs every match's score.
        let score_all = self.scored && self.sort == Sort::Relevance;
        if score_all {
            weight.for_each(reader, &mut |doc, score| {
                if is_alive(doc) {
                    c.push(doc, score);
                }
            })?;
        } else {
            weight.for_each_no_score(reader, &mut |docs| {
                for &doc in docs {
                    if is_alive(doc) {
                        c.push(doc, 0.0);
                    }
                }
            })?;
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
            total: 0,
            hits: Vec::new(),
            facets: FacetTally::default(),
        };
        for f in fruits {
            merged.total += f.total;
            merged.hits.extend(f.hits);
            merged.facets.merge(f.facets);
        }
        merged.hits.sort_unstable();
        merged.hits.truncate(self.limit + 1);
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_split_into_cjk_and_word_terms_without_syntax() {
        assert_eq!(
            query_terms("5G通信 AND (\"锂电池\") OR -x:y* 5g"),
            vec![
                QueryTerm::Word("5g".into()),
                QueryTerm::Cjk("通信".into()),
                QueryTerm::Word("and".into()),
                QueryTerm::Cjk("锂电池".into()),
                QueryTerm::Word("or".into()),
                QueryTerm::Word("x".into()),
                QueryTerm::Word("y".into()),
            ]
        );
        assert!(query_terms(" ，。!!\"\" ").is_empty());
    }

    #[test]
    fn snippets_escape_html_and_mark_every_match() {
        let terms = query_terms("电池 5g");
        assert_eq!(
            snippet("<b>电池</b>与5G电池&", &terms).unwrap(),
            "&lt;b&gt;<em>电池</em>&lt;/b&gt;与<em>5G电池</em>&amp;"
        );
        assert!(snippet("VoLTE 通信", &query_terms("lte")).is_none());
        let long = format!("{}电池{}", "甲".repeat(300), "乙".repeat(300));
        let s = snippet(&long, &query_terms("电池")).unwrap();
        assert!(s.starts_with('…') && s.ends_with('…') && s.contains("<em>电池</em>"));
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 2 + "<em></em>".len());
    }

    #[test]
    fn ranks_order_by_primary_descending_then_key() {
        let r = |primary, key| Rank { primary, key };
        assert!(r(5, 9) < r(4, 1));
        assert!(r(5, 1) < r(5, 2));
        assert!(score_bits(1.5) > score_bits(1.25));
        assert!(score_bits(0.0) > score_bits(-1.0));
    }
}
