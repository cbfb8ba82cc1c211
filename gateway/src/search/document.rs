//! Documents: what one catalogue entry contributes to the index, and nothing else. A sync hands
//! it a unified entry as the catalogue holds it now; it cuts the entry's records through the one
//! access filter at [`INDEX_VIEW`], reads the searchable text and the facet values of that view
//! ([`EntryDoc`]) and writes them into the fields of the index schema ([`schema`]): one
//! document that every reader of the entry finds, or two when its readers see different
//! sources.
//!
//! **Audiences.** Each document stores its audience in `secrecy` — `public` (everyone),
//! `internal` (internal readers only) or `public-view` (everyone *but* internal readers);
//! [`audiences_for`] says which a reader may find, and the query filters on it
//! ([`super::query`]). An entry whose sources are not all of one level gets two documents: the
//! one internal readers see (its oldest source overall, every source) and the one public
//! readers see (its oldest public source, public sources only), so that a public reader never
//! finds an entry through, nor sees the node of, an internal source merged into it. For the
//! same reason a document's ordering key ([`entry_key`]) is taken over its own sources only:
//! the key travels in cursors.
//!
//! **Which text goes where.** `grams` holds every searched text in one value, a line each (see
//! [`super::text`]); it alone decides what matches. `title` and `body` hold jieba's words, for
//! scoring only. `body` holds keywords, institutions, people and numbers but not the abstract:
//! the abstract is the bulk of the text, already scored through the `grams` phrase that must
//! match, and leaving it to `grams` cut a 1,000,000-record rebuild from 58 s to 48 s. The
//! `hl_*` fields are stored, never indexed: they are what highlights are cut from. The
//! single-valued facets go into one packed column ([`super::facets`]).
//!
//! [`searchable`] gives the same text and values as plain data, so that a benchmark loads
//! exactly what the index holds into another engine.
//!
//! What it may not touch: a record other than through `AccessFilter::view_owned(…,
//! INDEX_VIEW)`, the one filter every indexed byte passes (the records come sealed: no
//! disclosure is read for a view that cuts every one); the index writer (it makes
//! documents, [`super::sync`] writes them). The schema and what goes into each field are part
//! of [`FORMAT`](super::FORMAT): a change here that changes either bumps it.

use std::collections::BTreeSet;

use rix_schema::RecordKind;
use rix_schema::SecrecyLevel;
use rix_schema::record::{Category, Field as TechField, TransferMode};
use rix_schema::sensitivity::Entitlements;
use serde_json::Value;
use tantivy::TantivyDocument;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};

use super::facets::{NO_PROGRAM, Packed};
use super::text::{GRAMS_TOKENIZER, WORDS_TOKENIZER};
use super::{SearchError, SearchIndex};
use crate::access::AccessFilter;
use crate::catalogue::{Source, Unified};

/// The view every indexed byte comes from: internal records' public fields. Never commercial,
/// never personal, never `confidential_fields`.
pub const INDEX_VIEW: Entitlements = Entitlements {
    internal: true,
    commercial: false,
    personal: false,
};

/// `secrecy` of a document only internal readers see.
pub(super) const AUDIENCE_INTERNAL: &str = "internal";
/// `secrecy` of a document everyone sees.
pub(super) const AUDIENCE_ALL: &str = "public";
/// `secrecy` of the public readers' document of an entry that internal readers see otherwise.
pub(super) const AUDIENCE_PUBLIC_ONLY: &str = "public-view";

/// The audiences of the documents a reader with `entitlements` may find.
pub(super) fn audiences_for(entitlements: Entitlements) -> [&'static str; 2] {
    if entitlements.internal {
        [AUDIENCE_ALL, AUDIENCE_INTERNAL]
    } else {
        [AUDIENCE_ALL, AUDIENCE_PUBLIC_ONLY]
    }
}

impl SearchIndex {
    /// The documents of entry `u` as the catalogue holds it now: none if nothing of it may be
    /// indexed (every source withdrawn, or no visible record); one when every reader who may
    /// see it sees the same sources; else one for internal readers and one for public readers.
    pub(super) fn documents(&self, mut u: Unified) -> Result<Vec<TantivyDocument>, SearchError> {
        let Ok(kind) = u.kind.parse::<RecordKind>() else {
            return Ok(Vec::new());
        };
        let public_primary = u.primary_for(Entitlements::PUBLIC).cloned();
        let public_sources: Vec<Source> = u
            .sources_for(Entitlements::PUBLIC)
            .into_iter()
            .cloned()
            .collect();
        let all_sources: Vec<Source> = u.sources_for(INDEX_VIEW).into_iter().cloned().collect();
        let same_for_all = public_primary.is_some()
            && public_primary.as_ref() == u.primary_for(INDEX_VIEW)
            && public_sources.len() == all_sources.len();
        // The records leave the entry: cut in place, not copied (a rebuild indexes every one).
        let internal_record = u.record.take();
        let public_record = u.public.take().map(|(_, r)| r);
        // THE access filter, at the one entitlement the index is built for.
        let entry_of = |record: Option<Value>| {
            record
                .and_then(|r| AccessFilter::view_owned(kind, r, INDEX_VIEW))
                .and_then(|view| EntryDoc::from_view(kind, &view))
        };
        let all_refs: Vec<&Source> = all_sources.iter().collect();
        let public_refs: Vec<&Source> = public_sources.iter().collect();
        let mut docs = Vec::new();
        if same_for_all {
            if let Some(entry) = entry_of(internal_record) {
                let key = entry_key(&u.unified_id, &all_refs);
                docs.push(entry.to_document(&self.fields, kind, &u.unified_id, &all_refs, key));
            }
            return Ok(docs);
        }
        if let Some(mut entry) = entry_of(internal_record.clone()) {
            entry.secrecy = AUDIENCE_INTERNAL;
            let key = entry_key(&u.unified_id, &all_refs);
            docs.push(entry.to_document(&self.fields, kind, &u.unified_id, &all_refs, key));
        }
        // The public readers' record: the public primary's, which is the internal readers'
        // record when both have the same primary, else the one loaded beside it.
        let public_view_record = match (&public_primary, u.primary_for(INDEX_VIEW)) {
            (Some(p), Some(i)) if p == i => internal_record,
            (Some(_), _) => public_record,
            (None, _) => None,
        };
        if let Some(mut entry) = entry_of(public_view_record) {
            entry.secrecy = AUDIENCE_PUBLIC_ONLY;
            let key = entry_key(&u.unified_id, &public_refs);
            docs.push(entry.to_document(&self.fields, kind, &u.unified_id, &public_refs, key));
        }
        Ok(docs)
    }
}

/// The ordering key of an entry's document: the change id that first stored one of the
/// sources that document shows (its oldest). Unique (one record, one first change, one entry)
/// and stable (rebuilds in the same order keep it), so it breaks every tie between equal scores
/// or dates. Taken over the document's own sources, never the entry's: the key travels in
/// cursors, and a public reader must not find in it the change id of a source they cannot
/// see. Without sources — which never happens — a hash in the upper half, away from change ids.
fn entry_key(unified_id: &str, sources: &[&Source]) -> u64 {
    match sources.iter().map(|s| s.first_change).min() {
        Some(c) if c >= 0 => c as u64,
        _ => hashed_key(unified_id),
    }
}

fn hashed_key(uid: &str) -> u64 {
    (1 << 63) | (fnv1a(uid.as_bytes()) >> 1)
}

pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What one entry contributes to the index, all of it read from the index view.
#[derive(Debug, Default)]
struct EntryDoc {
    secrecy: &'static str,
    title: String,
    abstract_text: Option<String>,
    keywords: Vec<String>,
    institutions: Vec<String>,
    people: Vec<String>,
    numbers: Vec<String>,
    region: Option<String>,
    field: Option<String>,
    category: Option<String>,
    programs: BTreeSet<String>,
    trl: Option<u64>,
    date: Option<(u64, u64)>,
    transfer_modes: BTreeSet<String>,
}

impl EntryDoc {
    /// Reads `view` — which must already be the index view — of a record of `kind`.
    fn from_view(kind: RecordKind, view: &Value) -> Option<EntryDoc> {
        let secrecy = match SecrecyLevel::of_record(view)? {
            SecrecyLevel::Public => "public",
            SecrecyLevel::Internal => "internal",
            _ => return None,
        };
        let own = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
        let mut doc = EntryDoc {
            secrecy,
            title: text_at(view, "/title").unwrap_or_default().to_owned(),
            abstract_text: text_at(view, "/abstract").map(str::to_owned),
            keywords: own(texts_in(view, "/keywords", None)),
            ..EntryDoc::default()
        };
        match kind {
            RecordKind::Achievement => {
                doc.institutions = own(texts_in(view, "/institutions", Some("name")));
                doc.people = own(texts_in(view, "/completers", Some("name")));
                doc.numbers = own(text_at(view, "/registration_no").into_iter().collect());
                doc.region = text_at(view, "/institutions/0/region").and_then(province_of);
                doc.field = text_at(view, "/classification/field").map(str::to_owned);
                doc.category = text_at(view, "/category").map(str::to_owned);
                doc.programs = texts_in(view, "/funding", Some("program"))
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                doc.trl = view.pointer("/trl").and_then(Value::as_u64);
                doc.date = text_at(view, "/registration_date")
                    .and_then(date_of)
                    .or_else(|| text_at(view, "/research_period/end").and_then(date_of));
                doc.transfer_modes = texts_in(view, "/transfer/modes", None)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
            }
            RecordKind::FundedProject => {
                let mut institutions = own(text_at(view, "/lead/name").into_iter().collect());
                institutions.extend(own(texts_in(view, "/participants", Some("name"))));
                doc.institutions = institutions;
                doc.people = own(text_at(view, "/pi/name").into_iter().collect());
                doc.numbers = own(text_at(view, "/project_no").into_iter().collect());
                doc.region = text_at(view, "/lead/region").and_then(province_of);
                doc.field = text_at(view, "/field").map(str::to_owned);
                doc.programs = text_at(view, "/program")
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                doc.date = text_at(view, "/period/start").and_then(date_of);
            }
        }
        Some(doc)
    }

    fn to_document(
        &self,
        f: &Fields,
        kind: RecordKind,
        unified_id: &str,
        sources: &[&Source],
        key: u64,
    ) -> TantivyDocument {
        let mut d = TantivyDocument::new();
        d.add_text(f.uid, unified_id);
        d.add_text(f.kind, kind.as_str());
        d.add_text(f.secrecy, self.secrecy);
        d.add_u64(f.key, key);
        let (date, year) = self.date.unwrap_or((0, 0));
        d.add_u64(f.date, date);
        d.add_u64(f.order, super::collect::date_order(date, key));
        d.add_u64(f.year, year);
        let trl = self.trl.unwrap_or(0);
        d.add_u64(f.trl, trl);
        let region: u64 = self
            .region
            .as_deref()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        d.add_u64(f.region, region);
        let field = self.field.as_deref().map_or(0, field_code);
        d.add_u64(f.field, field);
        let category = self.category.as_deref().map_or(0, category_code);
        d.add_u64(f.category, category);
        for p in &self.programs {
            d.add_text(f.program, p);
        }
        let mut programs = self.programs.iter();
        d.add_text(
            f.program1,
            programs.next().map_or(NO_PROGRAM, String::as_str),
        );
        let mut more = false;
        for p in programs {
            d.add_text(f.program_more, p);
            more = true;
        }
        let mut modes = 0;
        for m in &self.transfer_modes {
            d.add_text(f.transfer_mode, m);
            modes |= mode_bit(m);
        }
        let packed = Packed {
            region: region / 10_000,
            field,
            category,
            trl,
            modes,
            year: if self.date.is_some() { year } else { 0 },
            more_programs: more,
        };
        d.add_u64(f.facets, packed.pack());
        let mut nodes = BTreeSet::new();
        for s in sources {
            d.add_text(f.source, format!("{}/{}", s.node_id, s.id));
            if !s.withdrawn {
                nodes.insert(s.node_id.as_str());
            }
        }
        for n in nodes {
            d.add_text(f.node, n);
        }
        d.add_text(f.title, &self.title);
        let keywords = self.keywords.join("；");
        let institutions = self.institutions.join("；");
        let people = self.people.join("；");
        let numbers = self.numbers.join("；");
        let abstract_text = self.abstract_text.as_deref().unwrap_or_default();
        // One value, runs separated by newlines: the grams tokenizer's gaps keep phrases
        // inside a run, and BM25 sees one field.
        let mut grams = String::with_capacity(
            self.title.len() + abstract_text.len() + keywords.len() + institutions.len() + 64,
        );
        for (field, text) in [
            (None, self.title.as_str()),
            (Some(f.hl_abstract), abstract_text),
            (Some(f.hl_keywords), keywords.as_str()),
            (Some(f.hl_institutions), institutions.as_str()),
            (Some(f.hl_people), people.as_str()),
            (Some(f.hl_numbers), numbers.as_str()),
        ] {
            if text.is_empty() {
                continue;
            }
            grams.push_str(text);
            grams.push('\n');
            if let Some(field) = field {
                // The abstract is scored through `grams` only (see the module doc).
                if field != f.hl_abstract {
                    d.add_text(f.body, text);
                }
                d.add_text(field, text);
            }
        }
        d.add_text(f.grams, grams);
        d
    }
}

fn text_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn texts_in<'a>(v: &'a Value, array: &str, member: Option<&str>) -> Vec<&'a str> {
    v.pointer(array)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| match member {
            Some(m) => item.get(m).and_then(Value::as_str),
            None => item.as_str(),
        })
        .filter(|s| !s.trim().is_empty())
        .collect()
}

/// `530000` for any six-digit code of Yunnan.
fn province_of(code: &str) -> Option<String> {
    (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{}0000", &code[..2]))
}

/// `YYYY-MM-DD` as the number `YYYYMMDD`, and the year.
fn date_of(date: &str) -> Option<(u64, u64)> {
    let mut parts = date.splitn(3, '-');
    let y: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let d: u64 = parts.next()?.get(..2)?.parse().ok()?;
    Some((y * 10_000 + m * 100 + d, y))
}

/// The number a technology field is indexed as: 1 + its place in the schema's list (0: none).
pub(super) fn field_code(value: &str) -> u64 {
    TechField::ALL
        .iter()
        .position(|f| f.as_str() == value)
        .map_or(0, |i| i as u64 + 1)
}

/// The number a category is indexed as: 1 + its place in the schema's list (0: none).
pub(super) fn category_code(value: &str) -> u64 {
    Category::ALL
        .iter()
        .position(|c| c.as_str() == value)
        .map_or(0, |i| i as u64 + 1)
}

/// A transfer mode's bit in an entry's mode set.
fn mode_bit(value: &str) -> u64 {
    TransferMode::ALL
        .iter()
        .position(|m| m.as_str() == value)
        .map_or(0, |i| 1 << i)
}

/// What the index makes searchable and filterable of one record, as plain values: for loading
/// exactly the same text and facet values into another engine (`rix bench search` compares
/// PostgreSQL and SQLite FTS5 with this index on the same data).
#[derive(Debug, Clone, PartialEq)]
pub struct Searchable {
    /// `public` or `internal`.
    pub secrecy: &'static str,
    /// Every searched text (title, abstract, keywords, institutions, people, numbers), one
    /// per line.
    pub text: String,
    /// Province code (`530000`).
    pub region: Option<String>,
    /// Technology field.
    pub field: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Programs (funding programs of an achievement, the program of a project).
    pub programs: Vec<String>,
    /// Technology readiness level.
    pub trl: Option<u64>,
    /// Year (registration, or research end; a project's start).
    pub year: Option<u64>,
    /// Transfer modes.
    pub transfer_modes: Vec<String>,
}

/// What the index holds of `view` (a record of `kind` as one consumer sees it), or `None` if
/// it would not be indexed at all (classified).
pub fn searchable(kind: RecordKind, view: &Value) -> Option<Searchable> {
    let d = EntryDoc::from_view(kind, view)?;
    let mut text = d.title.clone();
    for part in d
        .abstract_text
        .iter()
        .chain(&d.keywords)
        .chain(&d.institutions)
        .chain(&d.people)
        .chain(&d.numbers)
    {
        text.push('\n');
        text.push_str(part);
    }
    Some(Searchable {
        secrecy: d.secrecy,
        text,
        region: d.region,
        field: d.field,
        category: d.category,
        programs: d.programs.into_iter().collect(),
        trl: d.trl,
        year: d.date.map(|(_, y)| y),
        transfer_modes: d.transfer_modes.into_iter().collect(),
    })
}

/// The fields of the index schema.
#[derive(Clone, Copy)]
pub(super) struct Fields {
    pub(super) uid: Field,
    pub(super) kind: Field,
    pub(super) secrecy: Field,
    pub(super) key: Field,
    pub(super) date: Field,
    pub(super) order: Field,
    pub(super) year: Field,
    pub(super) trl: Field,
    pub(super) region: Field,
    pub(super) field: Field,
    pub(super) category: Field,
    pub(super) program: Field,
    pub(super) program1: Field,
    pub(super) program_more: Field,
    pub(super) transfer_mode: Field,
    pub(super) facets: Field,
    pub(super) node: Field,
    pub(super) source: Field,
    pub(super) title: Field,
    pub(super) body: Field,
    pub(super) grams: Field,
    pub(super) hl_abstract: Field,
    pub(super) hl_keywords: Field,
    pub(super) hl_institutions: Field,
    pub(super) hl_people: Field,
    pub(super) hl_numbers: Field,
}

pub(super) fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let words = |stored: bool| {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(WORDS_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs);
        let options = TextOptions::default().set_indexing_options(indexing);
        if stored {
            options.set_stored()
        } else {
            options
        }
    };
    let grams = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(GRAMS_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let stored_text = TextOptions::default().set_stored();
    let fields = Fields {
        uid: b.add_text_field("uid", STRING | STORED | FAST),
        kind: b.add_text_field("kind", STRING | STORED),
        secrecy: b.add_text_field("secrecy", STRING | STORED),
        // Filters read the indexed fields; facets read one packed dense column (see
        // `Packed`) and the programs, so counting a match costs a couple of column reads.
        key: b.add_u64_field("key", FAST),
        date: b.add_u64_field("date", FAST),
        // The index's sort order: `collect::date_order` of the date and the key.
        order: b.add_u64_field("order", FAST),
        year: b.add_u64_field("year", INDEXED | FAST | STORED),
        trl: b.add_u64_field("trl", INDEXED),
        region: b.add_u64_field("region", INDEXED | STORED | FAST),
        field: b.add_u64_field("field", INDEXED),
        category: b.add_u64_field("category", INDEXED),
        program: b.add_text_field("program", STRING),
        program1: b.add_text_field("program1", STRING | FAST),
        program_more: b.add_text_field("program_more", STRING | FAST),
        transfer_mode: b.add_text_field("transfer_mode", STRING),
        facets: b.add_u64_field("facets", FAST),
        node: b.add_text_field("node", STRING),
        source: b.add_text_field("source", STRING),
        title: b.add_text_field("title", words(true)),
        body: b.add_text_field("body", words(false)),
        grams: b.add_text_field("grams", grams),
        hl_abstract: b.add_text_field("hl_abstract", stored_text.clone()),
        hl_keywords: b.add_text_field("hl_keywords", stored_text.clone()),
        hl_institutions: b.add_text_field("hl_institutions", stored_text.clone()),
        hl_people: b.add_text_field("hl_people", stored_text.clone()),
        hl_numbers: b.add_text_field("hl_numbers", stored_text),
    };
    (b.build(), fields)
}
