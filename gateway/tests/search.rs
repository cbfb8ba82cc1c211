//! The search index over a real SQLite catalogue fed through the real ingest path (genuine
//! signed batches of seeded sample records, a trusted key, `Ingest`), then `sync`ed.
//!
//! Every expectation is computed independently of the index: from the catalogue's unified
//! entries cut down by `redact` to what may be indexed, with the test's own substring and word
//! matching, its own facet extraction and its own filters.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use common::{Backend, Gateway, Item, SigningNode};
use rix_gateway::catalogue;
use rix_gateway::db::Db;
use rix_gateway::search::{Facets, SearchError, SearchHit, SearchIndex, SearchQuery, Sort};
use rix_schema::RecordKind;
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use rix_schema::sensitivity::{Entitlements, redact};
use serde_json::{Value, json};
use tantivy::Document as _;
use tantivy::schema::Value as _;
use tantivy::tokenizer::{TokenStream, Tokenizer};

const INTERNAL: Entitlements = Entitlements {
    internal: true,
    commercial: false,
    personal: false,
};

/// Every combination a caller can hold.
fn all_entitlements() -> Vec<Entitlements> {
    let mut out = Vec::new();
    for internal in [false, true] {
        for commercial in [false, true] {
            for personal in [false, true] {
                out.push(Entitlements {
                    internal,
                    commercial,
                    personal,
                });
            }
        }
    }
    out
}

// -------------------------------------------------------------------------------------------
// A gateway and its nodes

/// An empty SQLite catalogue with its ingest pipeline.
fn gateway() -> Gateway {
    Gateway::open(Backend::Sqlite)
}

/// Entries per batch a node here publishes: a few batches for the corpus, one for a change.
const PER_BATCH: usize = 400;

fn record<T: serde::Serialize>(r: T) -> Option<Value> {
    Some(serde_json::to_value(r).unwrap())
}

fn public(r: Option<Value>) -> Option<Value> {
    r.map(|mut v| {
        v["secrecy"] = json!({"level": "public"});
        v
    })
}

/// A province node and a ministry, with shared results both register (merged entries):
/// about 1,500 entries, 10 % internal, some with declared commercial secrets; the 3 % classified
/// are quarantined by the gateway.
struct Corpus {
    gw: Gateway,
    province: SigningNode,
    ministry: SigningNode,
    sample: SampleGenerator,
}

fn corpus() -> Corpus {
    let gw = gateway();
    let sample = SampleGenerator::new(SampleConfig::default());
    let ministry_gen = SampleGenerator::new(SampleConfig {
        node: NodeProfile::ministry("most", "科学技术部", "348"),
        ..SampleConfig::default()
    });
    let mut province = SigningNode::trusted(&gw.db, "prov-530000");
    let mut ministry = SigningNode::trusted(&gw.db, "most");
    let mut items: Vec<Item> = Vec::new();
    for i in 0..900 {
        items.push((
            RecordKind::Achievement,
            format!("a{i}"),
            1,
            record(sample.achievement(i)),
        ));
    }
    for i in 0..300 {
        items.push((
            RecordKind::FundedProject,
            format!("p{i}"),
            1,
            record(sample.project(i)),
        ));
    }
    for i in 0..30 {
        items.push((
            RecordKind::Achievement,
            format!("s{i}"),
            1,
            record(sample.shared_achievement(i)),
        ));
    }
    assert!(province.publish(&gw.ingest, items, PER_BATCH) > 1100);
    let mut items: Vec<Item> = Vec::new();
    for i in 0..300 {
        items.push((
            RecordKind::Achievement,
            format!("a{i}"),
            1,
            record(ministry_gen.achievement(i)),
        ));
    }
    for i in 0..30 {
        items.push((
            RecordKind::Achievement,
            format!("s{i}"),
            1,
            record(ministry_gen.shared_achievement(i)),
        ));
    }
    for i in 0..10 {
        items.push((
            RecordKind::FundedProject,
            format!("sp{i}"),
            1,
            record(ministry_gen.shared_project(i)),
        ));
    }
    assert!(ministry.publish(&gw.ingest, items, PER_BATCH) > 300);
    Corpus {
        gw,
        province,
        ministry,
        sample,
    }
}

// -------------------------------------------------------------------------------------------
// The independent model: what each entry may show, and the test's own matching

/// An entry as the test understands it, read from its index view.
#[derive(Debug, Clone)]
struct Model {
    uid: String,
    kind: RecordKind,
    public: bool,
    texts: Vec<String>,
    region: Option<String>,
    field: Option<String>,
    category: Option<String>,
    programs: BTreeSet<String>,
    trl: Option<u64>,
    year: Option<u64>,
    modes: BTreeSet<String>,
    nodes: BTreeSet<String>,
}

fn s(v: &Value, p: &str) -> Option<String> {
    v.pointer(p).and_then(Value::as_str).map(str::to_owned)
}

fn all(v: &Value, p: &str, member: Option<&str>) -> Vec<String> {
    v.pointer(p)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| match member {
            Some(m) => x.get(m).and_then(Value::as_str),
            None => x.as_str(),
        })
        .map(str::to_owned)
        .collect()
}

fn models(db: &Db) -> Vec<Model> {
    let mut conn = db.conn().unwrap();
    let mut out = Vec::new();
    for kind in RecordKind::ALL {
        for uid in catalogue::visible_unified_ids(&mut conn, kind).unwrap() {
            let u = catalogue::unified(&mut conn, &uid).unwrap().unwrap();
            let view = redact(kind, u.record.as_ref().unwrap(), INTERNAL).unwrap();
            let year = |p: &str| s(&view, p).map(|d| d[..4].parse::<u64>().unwrap());
            let province = |p: &str| s(&view, p).map(|r| format!("{}0000", &r[..2]));
            let mut texts: Vec<String> = [s(&view, "/title"), s(&view, "/abstract")]
                .into_iter()
                .flatten()
                .collect();
            texts.extend(all(&view, "/keywords", None));
            let mut m = Model {
                uid: uid.clone(),
                kind,
                public: view["secrecy"]["level"] == "public",
                texts,
                region: None,
                field: None,
                category: None,
                programs: BTreeSet::new(),
                trl: None,
                year: None,
                modes: BTreeSet::new(),
                nodes: u
                    .sources
                    .iter()
                    .filter(|s| !s.withdrawn)
                    .map(|s| s.node_id.clone())
                    .collect(),
            };
            match kind {
                RecordKind::Achievement => {
                    m.texts.extend(all(&view, "/institutions", Some("name")));
                    m.texts.extend(all(&view, "/completers", Some("name")));
                    m.texts.extend(s(&view, "/registration_no"));
                    m.region = province("/institutions/0/region");
                    m.field = s(&view, "/classification/field");
                    m.category = s(&view, "/category");
                    m.programs = all(&view, "/funding", Some("program"))
                        .into_iter()
                        .collect();
                    m.trl = view.pointer("/trl").and_then(Value::as_u64);
                    m.year = year("/registration_date").or_else(|| year("/research_period/end"));
                    m.modes = all(&view, "/transfer/modes", None).into_iter().collect();
                }
                RecordKind::FundedProject => {
                    m.texts.extend(s(&view, "/lead/name"));
                    m.texts.extend(all(&view, "/participants", Some("name")));
                    m.texts.extend(s(&view, "/pi/name"));
                    m.texts.extend(s(&view, "/project_no"));
                    m.region = province("/lead/region");
                    m.field = s(&view, "/field");
                    m.programs = s(&view, "/program").into_iter().collect();
                    m.year = year("/period/start");
                }
            }
            out.push(m);
        }
    }
    out
}

fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap(),
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

fn han(c: char) -> bool {
    ('\u{3400}'..='\u{9FFF}').contains(&c)
}

/// The letter/digit words of a text (Chinese characters separate words too).
fn words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric() || han(c))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A query term as the test states it.
#[derive(Debug, Clone)]
enum T {
    /// Chinese: must occur as a substring.
    Sub(&'static str),
    /// Letters/digits: must occur as a whole word (case-insensitive).
    Word(&'static str),
}

fn has_term(m: &Model, t: &str, chinese: bool) -> bool {
    if chinese {
        m.texts.iter().any(|x| fold(x).contains(t))
    } else {
        m.texts.iter().any(|x| words(x).iter().any(|w| w == t))
    }
}

/// The test's own filters.
#[derive(Debug, Clone, Default)]
struct Filter {
    kind: Option<RecordKind>,
    region: Option<&'static str>,
    field: Option<&'static str>,
    category: Option<&'static str>,
    program: Option<String>,
    trl_min: Option<u64>,
    year_from: Option<u64>,
    year_to: Option<u64>,
    mode: Option<&'static str>,
    node: Option<&'static str>,
}

impl Filter {
    fn accepts(&self, m: &Model) -> bool {
        self.kind.is_none_or(|k| k == m.kind)
            && self.region.is_none_or(|r| m.region.as_deref() == Some(r))
            && self.field.is_none_or(|f| m.field.as_deref() == Some(f))
            && self
                .category
                .is_none_or(|c| m.category.as_deref() == Some(c))
            && self.program.as_ref().is_none_or(|p| m.programs.contains(p))
            && self.trl_min.is_none_or(|t| m.trl.is_some_and(|x| x >= t))
            && self
                .year_from
                .is_none_or(|y| m.year.is_some_and(|x| x >= y))
            && self.year_to.is_none_or(|y| m.year.is_some_and(|x| x <= y))
            && self.mode.is_none_or(|x| m.modes.contains(x))
            && self.node.is_none_or(|n| m.nodes.contains(n))
    }

    fn query(&self, q: Option<&str>) -> SearchQuery {
        SearchQuery {
            q: q.map(str::to_owned),
            kind: self.kind.map(|k| k.as_str().to_owned()),
            region: self.region.map(str::to_owned),
            field: self.field.map(str::to_owned),
            category: self.category.map(str::to_owned),
            program: self.program.clone(),
            trl_min: self.trl_min,
            year_from: self.year_from,
            year_to: self.year_to,
            transfer_mode: self.mode.map(str::to_owned),
            node: self.node.map(str::to_owned),
            limit: 100,
            ..SearchQuery::default()
        }
    }
}

fn expected<'a>(
    models: &'a [Model],
    terms: &[T],
    filter: &Filter,
    e: Entitlements,
) -> Vec<&'a Model> {
    models
        .iter()
        .filter(|m| m.public || e.internal)
        .filter(|m| filter.accepts(m))
        .filter(|m| {
            terms.iter().all(|t| match t {
                T::Sub(x) => has_term(m, x, true),
                T::Word(x) => has_term(m, x, false),
            })
        })
        .collect()
}

type FacetMap = BTreeMap<&'static str, BTreeMap<String, u64>>;

fn expected_facets(matches: &[&Model]) -> FacetMap {
    let mut f: FacetMap = BTreeMap::new();
    let mut add = |name: &'static str, value: String| {
        *f.entry(name).or_default().entry(value).or_default() += 1;
    };
    for m in matches {
        m.region.iter().for_each(|v| add("region", v.clone()));
        m.field.iter().for_each(|v| add("field", v.clone()));
        m.category.iter().for_each(|v| add("category", v.clone()));
        m.programs.iter().for_each(|v| add("program", v.clone()));
        m.trl.iter().for_each(|v| add("trl", v.to_string()));
        m.year.iter().for_each(|v| add("year", v.to_string()));
        m.modes.iter().for_each(|v| add("transfer_mode", v.clone()));
    }
    f
}

fn facet_map(f: &Facets) -> FacetMap {
    let mut out: FacetMap = BTreeMap::new();
    for (name, counts) in [
        ("region", &f.region),
        ("field", &f.field),
        ("category", &f.category),
        ("program", &f.program),
        ("trl", &f.trl),
        ("year", &f.year),
        ("transfer_mode", &f.transfer_mode),
    ] {
        // Most frequent first, then by value.
        assert!(
            counts
                .windows(2)
                .all(|w| (w[0].count, &w[1].value) >= (w[1].count, &w[0].value)),
            "{name} facet out of order: {counts:?}"
        );
        if !counts.is_empty() {
            out.insert(
                name,
                counts.iter().map(|c| (c.value.clone(), c.count)).collect(),
            );
        }
    }
    out
}

/// Every page of `q`, checking as it goes that totals and facets stay put and that no entry
/// comes twice; returns the total, the items in order and the facets.
fn every_page(
    index: &SearchIndex,
    q: &SearchQuery,
    e: Entitlements,
) -> (u64, Vec<SearchHit>, Facets) {
    let mut q = q.clone();
    q.cursor = None;
    let first = index.search(&q, e).unwrap();
    let (total, facets) = (first.total, first.facets.clone());
    let mut items = first.items;
    let mut next = first.next_cursor;
    let mut pages = 1;
    while let Some(cursor) = next {
        q.cursor = Some(cursor);
        let page = index.search(&q, e).unwrap();
        assert_eq!(page.total, total, "the total moved between pages");
        assert_eq!(page.facets, facets, "facets moved between pages");
        assert!(!page.items.is_empty(), "a cursor led to an empty page");
        assert!(page.items.len() <= q.limit);
        items.extend(page.items);
        next = page.next_cursor;
        pages += 1;
    }
    let distinct: HashSet<&str> = items.iter().map(|i| i.unified_id.as_str()).collect();
    assert_eq!(distinct.len(), items.len(), "an entry came twice");
    assert_eq!(
        items.len() as u64,
        total,
        "pages do not add up to the total"
    );
    assert_eq!(pages, (total as usize).div_ceil(q.limit).max(1));
    (total, items, facets)
}

fn uids(items: &[SearchHit]) -> BTreeSet<String> {
    items.iter().map(|i| i.unified_id.clone()).collect()
}

fn model_uids(models: &[&Model]) -> BTreeSet<String> {
    models.iter().map(|m| m.uid.clone()).collect()
}

/// Runs `q` for both public and internal callers and checks the result set and the facets
/// against the model; returns the number of internal matches.
fn check(
    index: &SearchIndex,
    models: &[Model],
    q: Option<&str>,
    terms: &[T],
    filter: &Filter,
) -> usize {
    let mut internal_count = 0;
    for e in [Entitlements::PUBLIC, INTERNAL, Entitlements::ALL] {
        let want = expected(models, terms, filter, e);
        let (total, items, facets) = every_page(index, &filter.query(q), e);
        assert_eq!(
            uids(&items),
            model_uids(&want),
            "q={q:?} filter={filter:?} entitlements={e}"
        );
        assert_eq!(total, want.len() as u64);
        assert_eq!(
            facet_map(&facets),
            expected_facets(&want),
            "facets of q={q:?} {filter:?} for {e}"
        );
        if !e.internal {
            assert!(items.iter().all(|i| i.secrecy == "public"));
        }
        for item in &items {
            check_highlights(item, terms);
        }
        if e == INTERNAL {
            internal_count = want.len();
        }
    }
    internal_count
}

/// Every hit shows each Chinese term marked in some highlight, and the marks hold only text
/// that matched.
fn check_highlights(item: &SearchHit, terms: &[T]) {
    if terms.is_empty() {
        assert!(item.highlights.is_empty());
        return;
    }
    assert!(
        !item.highlights.is_empty(),
        "{} matched without a highlight",
        item.unified_id
    );
    let marked: Vec<String> = item
        .highlights
        .iter()
        .flat_map(|h| {
            h.snippet
                .split("<em>")
                .skip(1)
                .map(|x| fold(x.split("</em>").next().unwrap()))
        })
        .collect();
    for t in terms {
        match t {
            T::Sub(x) => assert!(
                marked.iter().any(|m| m.contains(x)),
                "{x} not marked in {:?}",
                item.highlights
            ),
            T::Word(x) => assert!(
                marked.iter().any(|m| words(m).iter().any(|w| w == x)),
                "{x} not marked in {:?}",
                item.highlights
            ),
        }
    }
}

fn synced(c: &Corpus) -> SearchIndex {
    let index = SearchIndex::in_ram().unwrap();
    let report = index.sync(&c.gw.db).unwrap();
    assert!(report.changes > 1400, "{report:?}");
    assert_eq!(report.commits, 1);
    assert_eq!(index.cursor(), report.cursor);
    index
}

/// One corpus, index and model shared by the tests that only read.
struct Shared {
    _dir: tempfile::TempDir,
    index: SearchIndex,
    models: Vec<Model>,
}

fn shared() -> &'static Shared {
    static SHARED: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let c = corpus();
        let index = synced(&c);
        let models = models(&c.gw.db);
        assert_eq!(index.num_docs(), models.len() as u64);
        Shared {
            _dir: c.gw.dir,
            index,
            models,
        }
    })
}

// -------------------------------------------------------------------------------------------
// Tests

#[test]
fn chinese_and_mixed_queries_find_exactly_the_entries_whose_visible_text_contains_them() {
    let Shared { index, models, .. } = shared();
    let none = Filter::default();
    for (q, terms) in [
        ("电池", vec![T::Sub("电池")]),
        ("芯片", vec![T::Sub("芯片")]),
        ("锂离子电池", vec![T::Sub("锂离子电池")]),
        ("5G 通信", vec![T::Word("5g"), T::Sub("通信")]),
        ("５ｇ通信", vec![T::Word("5g"), T::Sub("通信")]),
    ] {
        let n = check(index, models, Some(q), &terms, &none);
        assert!(n > 0, "the corpus should hold matches for {q}");
    }
    for (q, terms) in [
        ("疫苗", vec![T::Sub("疫苗")]),
        ("大豆 育种", vec![T::Sub("大豆"), T::Sub("育种")]),
        ("光伏", vec![T::Sub("光伏")]),
        (
            "配电网 负荷预测",
            vec![T::Sub("配电网"), T::Sub("负荷预测")],
        ),
    ] {
        check(index, models, Some(q), &terms, &none);
    }
    // A term that appears nowhere finds nothing.
    assert_eq!(
        check(index, models, Some("麒麟"), &[T::Sub("麒麟")], &none),
        0
    );
}

#[test]
fn every_two_character_substring_is_found_including_where_jieba_cuts_across_it() {
    let Shared { index, models, .. } = shared();
    // Two-character windows of the visible texts, and those jieba's search mode never emits
    // for the text they occur in.
    let mut jieba = tantivy_jieba::JiebaTokenizer::new();
    let mut windows: BTreeSet<String> = BTreeSet::new();
    let mut missed: BTreeSet<String> = BTreeSet::new();
    for m in models.iter().take(400) {
        for text in &m.texts {
            let chars: Vec<char> = text.chars().collect();
            let mut cut = HashSet::new();
            let mut stream = jieba.token_stream(text);
            while stream.advance() {
                cut.insert(stream.token().text.clone());
            }
            for w in chars.windows(2).filter(|w| han(w[0]) && han(w[1])) {
                let w: String = w.iter().collect();
                if !cut.contains(&w) {
                    missed.insert(w.clone());
                }
                windows.insert(w);
            }
        }
    }
    let missed: Vec<String> = missed.into_iter().step_by(7).take(60).collect();
    let sample: Vec<String> = windows.into_iter().step_by(41).take(60).collect();
    assert!(missed.len() >= 30 && sample.len() >= 30);
    for term in missed.iter().chain(&sample) {
        let term: &'static str = Box::leak(term.clone().into_boxed_str());
        let want = expected(models, &[T::Sub(term)], &Filter::default(), INTERNAL);
        assert!(!want.is_empty());
        let (_, items, _) = every_page(index, &Filter::default().query(Some(term)), INTERNAL);
        assert_eq!(
            uids(&items),
            model_uids(&want),
            "recall or precision lost for {term}"
        );
    }
}

#[test]
fn filters_and_facets_count_exactly_what_the_caller_may_see() {
    let Shared { index, models, .. } = shared();
    let program = models
        .iter()
        .filter(|m| m.kind == RecordKind::Achievement)
        .flat_map(|m| m.programs.iter().cloned())
        .next()
        .unwrap();
    let filters = [
        Filter::default(),
        Filter {
            kind: Some(RecordKind::FundedProject),
            ..Filter::default()
        },
        Filter {
            kind: Some(RecordKind::Achievement),
            region: Some("530000"),
            ..Filter::default()
        },
        Filter {
            field: Some("新能源与节能"),
            trl_min: Some(5),
            ..Filter::default()
        },
        Filter {
            category: Some("基础理论"),
            ..Filter::default()
        },
        Filter {
            year_from: Some(2021),
            year_to: Some(2023),
            ..Filter::default()
        },
        Filter {
            year_from: Some(2024),
            ..Filter::default()
        },
        Filter {
            mode: Some("许可"),
            ..Filter::default()
        },
        Filter {
            program: Some(program),
            ..Filter::default()
        },
        Filter {
            node: Some("most"),
            ..Filter::default()
        },
        Filter {
            node: Some("prov-530000"),
            kind: Some(RecordKind::Achievement),
            ..Filter::default()
        },
    ];
    for f in &filters {
        let n = check(index, models, None, &[], f);
        assert!(n > 0, "no entry passes {f:?}");
        check(index, models, Some("技术"), &[T::Sub("技术")], f);
    }
    // The whole catalogue: internal callers see everything, public ones only public entries.
    let everything = Filter::default().query(None);
    let public = index.search(&everything, Entitlements::PUBLIC).unwrap();
    let internal = index.search(&everything, INTERNAL).unwrap();
    let public_models = models.iter().filter(|m| m.public).count() as u64;
    assert_eq!(internal.total, models.len() as u64);
    assert_eq!(public.total, public_models);
    assert!(
        public_models < models.len() as u64,
        "the corpus should hold internal entries"
    );
    let sum = |f: &Facets| f.field.iter().map(|c| c.count).sum::<u64>();
    assert!(sum(&public.facets) < sum(&internal.facets));
}

#[test]
fn deep_cursor_pagination_returns_every_match_exactly_once_in_order() {
    let Shared { index, models, .. } = shared();
    // Later pages of a text query in relevance order come from one ranking of its matches:
    // counted, so that the walks below are known to have taken that path.
    let registry = prometheus::Registry::new();
    index.register_metrics(&registry).unwrap();
    let ranked_pages = || {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == "rix_search_ranked_pages_total")
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum::<u64>()
    };
    let cases = [
        (Some("技术"), vec![T::Sub("技术")]),
        (None, vec![]),
        (Some("研究 应用"), vec![T::Sub("研究"), T::Sub("应用")]),
    ];
    for (q, terms) in cases {
        for sort in [Sort::Relevance, Sort::Date] {
            for e in [Entitlements::PUBLIC, INTERNAL] {
                let want = expected(models, &terms, &Filter::default(), e);
                assert!(want.len() > 200, "{q:?}: only {} matches", want.len());
                let mut query = Filter::default().query(q);
                query.sort = sort;
                query.limit = 7;
                let (total, items, _) = every_page(index, &query, e);
                assert_eq!(total, want.len() as u64);
                assert_eq!(uids(&items), model_uids(&want));
                match sort {
                    Sort::Relevance => {
                        assert!(
                            items.windows(2).all(|w| w[0].score >= w[1].score),
                            "scores must not rise"
                        );
                        if q.is_some() {
                            assert!(ranked_pages() >= (items.len() / 7) as u64 - 1);
                        }
                    }
                    Sort::Date => {
                        let year = |h: &SearchHit| h.year.unwrap_or(0);
                        assert!(items.windows(2).all(|w| year(&w[0]) >= year(&w[1])));
                        // Date order still reports each match's relevance score.
                        let mut relevance = Filter::default().query(q);
                        relevance.limit = 100;
                        let scores: BTreeMap<String, f32> = every_page(index, &relevance, e)
                            .1
                            .into_iter()
                            .map(|h| (h.unified_id, h.score))
                            .collect();
                        for h in &items {
                            let want = scores[&h.unified_id];
                            assert!(
                                (h.score - want).abs() <= 1e-4 * want.abs().max(1.0),
                                "{} scored {} by date, {want} by relevance",
                                h.unified_id,
                                h.score
                            );
                        }
                    }
                }
                // The same walk with another page size gives the same order.
                query.limit = 100;
                let (_, again, _) = every_page(index, &query, e);
                let order =
                    |v: &[SearchHit]| v.iter().map(|h| h.unified_id.clone()).collect::<Vec<_>>();
                assert_eq!(order(&items), order(&again));
                // So does an export's single pass over every match (pages after the first
                // are walked from the cursor on, the export sorts everything once).
                let matches = index.matches(&query, e).unwrap();
                let rows = matches.rows(0..matches.len()).unwrap();
                let exported: Vec<String> = rows.into_iter().map(|r| r.unified_id).collect();
                assert_eq!(exported, order(&items), "{q:?} {sort:?} {e}");
                for (row, hit) in matches.rows(0..matches.len()).unwrap().iter().zip(&items) {
                    assert_eq!((row.year, &row.region), (hit.year, &hit.region));
                }
            }
        }
    }
    // Ties everywhere: without a query every score is 0, and relevance browses in date order.
    let mut query = Filter::default().query(None);
    query.limit = 7;
    let (_, items, _) = every_page(index, &query, INTERNAL);
    assert!(items.iter().all(|h| h.score == 0.0));
    query.sort = Sort::Date;
    let (_, by_date, _) = every_page(index, &query, INTERNAL);
    let order = |v: &[SearchHit]| v.iter().map(|h| h.unified_id.clone()).collect::<Vec<_>>();
    assert_eq!(order(&items), order(&by_date));
}

#[test]
fn bad_parameters_are_refused_naming_the_parameter_and_no_text_is_syntax() {
    let index = &shared().index;
    let pointer = |q: SearchQuery| match index.search(&q, Entitlements::PUBLIC) {
        Err(SearchError::Invalid { pointer, message }) => {
            assert!(!message.is_empty());
            pointer
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    let base = SearchQuery {
        q: Some("技术".into()),
        limit: 5,
        ..SearchQuery::default()
    };
    assert_eq!(
        pointer(SearchQuery {
            limit: 0,
            ..base.clone()
        }),
        "/query/limit"
    );
    assert_eq!(
        pointer(SearchQuery {
            limit: 101,
            ..base.clone()
        }),
        "/query/limit"
    );
    assert_eq!(
        pointer(SearchQuery {
            year_from: Some(2024),
            year_to: Some(2020),
            ..base.clone()
        }),
        "/query/year_from"
    );
    assert_eq!(
        pointer(SearchQuery {
            cursor: Some("zz".into()),
            ..base.clone()
        }),
        "/query/cursor"
    );
    assert_eq!(
        pointer(SearchQuery {
            cursor: Some("00".repeat(25)),
            ..base.clone()
        }),
        "/query/cursor"
    );
    assert_eq!(
        pointer(SearchQuery {
            kind: Some("patent".into()),
            ..base.clone()
        }),
        "/query/kind"
    );
    assert_eq!(
        pointer(SearchQuery {
            region: Some("530100".into()),
            ..base.clone()
        }),
        "/query/region"
    );
    assert_eq!(
        pointer(SearchQuery {
            trl_min: Some(10),
            ..base.clone()
        }),
        "/query/trl_min"
    );
    assert_eq!(
        pointer(SearchQuery {
            field: Some("化学".into()),
            ..base.clone()
        }),
        "/query/field"
    );
    assert_eq!(
        pointer(SearchQuery {
            q: Some("电".repeat(501)),
            ..base.clone()
        }),
        "/query/q"
    );
    // A cursor belongs to its query and its sort.
    let first = index.search(&base, Entitlements::PUBLIC).unwrap();
    let cursor = first.next_cursor.unwrap();
    let other = SearchQuery {
        q: Some("电池".into()),
        cursor: Some(cursor.clone()),
        ..base.clone()
    };
    assert_eq!(pointer(other), "/query/cursor");
    let by_date = SearchQuery {
        sort: Sort::Date,
        cursor: Some(cursor.clone()),
        ..base.clone()
    };
    assert_eq!(pointer(by_date), "/query/cursor");
    // The limit may change between pages.
    let next = SearchQuery {
        limit: 9,
        cursor: Some(cursor),
        ..base.clone()
    };
    assert_eq!(
        index
            .search(&next, Entitlements::PUBLIC)
            .unwrap()
            .items
            .len(),
        9
    );
    // Query-parser syntax, quotes, emoji, lone characters: all plain text, never an error.
    for q in [
        "AND OR NOT",
        "\"电池",
        "title:电池 +芯片 -疫苗 (5G) [1 TO 9] *",
        "🔋 电池 \\ ~2 ^3",
        "电",
        "",
        "   ",
        "a' OR 1=1 --",
    ] {
        let query = SearchQuery {
            q: Some(q.into()),
            ..base.clone()
        };
        index.search(&query, Entitlements::PUBLIC).unwrap();
    }
    // An empty query searches everything.
    let empty = SearchQuery {
        q: Some("  ".into()),
        ..base.clone()
    };
    let all = SearchQuery { q: None, ..base };
    assert_eq!(
        index.search(&empty, INTERNAL).unwrap().total,
        index.search(&all, INTERNAL).unwrap().total
    );
}

#[test]
fn single_characters_match_every_entry_containing_them() {
    let Shared { index, models, .. } = shared();
    for ch in ["池", "芯", "钠"] {
        let term: &'static str = ch;
        let want = expected(models, &[T::Sub(term)], &Filter::default(), INTERNAL);
        let (_, items, _) = every_page(index, &Filter::default().query(Some(ch)), INTERNAL);
        assert_eq!(uids(&items), model_uids(&want), "{ch}");
    }
}

// Markers placed only in fields no consumer of the index may see.
const MARKERS: [&str; 16] = [
    "璇玑暗码",
    "zqxcommercial",
    "天璇条款",
    "zqxterms",
    "玄武联系人",
    "摇光路",
    "zqxaddress",
    "zqxmail",
    "天枢秘词",
    "开阳秘文",
    "zqxabstract",
    "天权秘名",
    "北斗秘密研究院",
    "洞明秘文",
    "zqxproject",
    "zqxpi",
];

fn with_secrets(sample: &SampleGenerator) -> Vec<Item> {
    let mut items = Vec::new();
    for i in 0..6u64 {
        let mut a = public(record(sample.achievement(2000 + i))).unwrap();
        a["technical_indicators"] = json!("璇玑暗码 zqxcommercial 能量密度400Wh/kg");
        a["transfer"] =
            json!({"intention": true, "modes": ["许可"], "conditions": "天璇条款 zqxterms"});
        a["contact"] = json!({"name": "玄武联系人", "address": "摇光路 zqxaddress 号"});
        a["completers"][0]["email"] = json!("zqxmail@example.cn");
        let mut confidential = vec![];
        if i % 2 == 0 {
            a["abstract"] = json!("开阳秘文 zqxabstract：本成果的摘要由提交单位声明为商业秘密。");
            confidential.push("/abstract".to_owned());
        }
        let keywords = a["keywords"].as_array_mut().unwrap();
        if keywords.len() < 10 {
            keywords.push(json!("天枢秘词"));
            confidential.push(format!("/keywords/{}", keywords.len() - 1));
        }
        let completers = a["completers"].as_array_mut().unwrap();
        completers.push(json!({"name": "天权秘名"}));
        confidential.push(format!("/completers/{}/name", completers.len() - 1));
        a["institutions"][0]["name"] = json!("北斗秘密研究院");
        confidential.push("/institutions/0/name".to_owned());
        a["confidential_fields"] = json!(confidential);
        if i == 5 {
            a["secrecy"] = json!({"level": "internal"});
        }
        items.push((RecordKind::Achievement, format!("secret-a{i}"), 1, Some(a)));

        let mut p = public(record(sample.project(2000 + i))).unwrap();
        p["abstract"] = json!("洞明秘文 zqxproject 项目简介由提交单位声明为商业秘密");
        p["confidential_fields"] = json!(["/abstract"]);
        p["pi"]["email"] = json!("zqxpi@example.cn");
        p["contact"] = json!({"name": "玄武联系人", "address": "摇光路 zqxaddress 号"});
        items.push((
            RecordKind::FundedProject,
            format!("secret-p{i}"),
            1,
            Some(p),
        ));
    }
    items
}

#[test]
fn commercial_personal_and_confidential_text_never_enters_the_index() {
    let c = corpus();
    let mut province = c.province;
    let secret_items = with_secrets(&c.sample);
    let titles: Vec<String> = secret_items
        .iter()
        .map(|(_, _, _, r)| r.as_ref().unwrap()["title"].as_str().unwrap().to_owned())
        .collect();
    let secret_ids: Vec<String> = secret_items
        .iter()
        .map(|(_, id, _, _)| id.clone())
        .collect();
    assert_eq!(province.publish(&c.gw.ingest, secret_items, PER_BATCH), 12);
    let dir = c.gw.dir.path().join("index");
    let index = SearchIndex::open_or_create(&dir).unwrap();
    index.sync(&c.gw.db).unwrap();
    let secret_entries: HashSet<String> = {
        let mut conn = c.gw.db.conn().unwrap();
        secret_ids
            .iter()
            .filter_map(|id| {
                catalogue::unified_id_of(&mut conn, "prov-530000", id, Entitlements::ALL).unwrap()
            })
            .collect()
    };

    // The marked records are indexed (found by their public title) ...
    for title in &titles {
        let q = SearchQuery {
            q: Some(title.clone()),
            limit: 100,
            ..SearchQuery::default()
        };
        let page = index.search(&q, Entitlements::ALL).unwrap();
        assert!(
            page.items
                .iter()
                .any(|h| secret_entries.contains(&h.unified_id)),
            "{title} not found"
        );
        let json = serde_json::to_string(&page).unwrap();
        for marker in MARKERS {
            assert!(
                !json.contains(marker),
                "{marker} leaked into results for {title}"
            );
        }
    }
    // ... but no marker is found, counted or shown, whoever asks.
    for e in all_entitlements() {
        for marker in MARKERS {
            let q = SearchQuery {
                q: Some(marker.into()),
                ..SearchQuery::default()
            };
            let page = index.search(&q, e).unwrap();
            assert_eq!(page.total, 0, "{marker} found by a caller with {e}");
            assert_eq!(page.facets, Facets::default());
        }
        for q in [None, Some("技术"), Some("研究"), Some("成果")] {
            let mut query = Filter::default().query(q);
            query.limit = 100;
            loop {
                let page = index.search(&query, e).unwrap();
                let json = serde_json::to_string(&page).unwrap();
                for marker in MARKERS {
                    assert!(!json.contains(marker), "{marker} shown to {e} for {q:?}");
                }
                match page.next_cursor {
                    Some(c) => query.cursor = Some(c),
                    None => break,
                }
            }
        }
    }
    // Nor is any marker anywhere in the index files' stored documents or term dictionaries.
    assert_index_free_of(&dir, &MARKERS);
}

/// Opens the index with tantivy itself and reads every stored document and every indexed term.
fn assert_index_free_of(dir: &Path, markers: &[&str]) {
    let index = tantivy::Index::open_in_dir(dir).unwrap();
    let schema = index.schema();
    let searcher = index.reader().unwrap().searcher();
    let mut docs = 0;
    let mut terms = 0;
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        for doc in 0..segment.max_doc() {
            let d: tantivy::TantivyDocument = searcher
                .doc(tantivy::DocAddress::new(ord as u32, doc))
                .unwrap();
            let json = serde_json::to_string(&d.to_named_doc(&schema)).unwrap();
            for m in markers {
                assert!(!json.contains(m), "{m} stored in {json}");
            }
            for (_, v) in d.field_values() {
                if let Some(text) = v.as_str() {
                    assert!(!text.contains("zqx"));
                }
            }
            docs += 1;
        }
        for (field, entry) in schema.fields() {
            if !entry.is_indexed() {
                continue;
            }
            let inverted = segment.inverted_index(field).unwrap();
            let mut stream = inverted.terms().stream().unwrap();
            while stream.advance() {
                let term = String::from_utf8_lossy(stream.key());
                for m in markers.iter().filter(|m| m.is_ascii()) {
                    assert!(!term.contains(m), "{m} indexed in {}", entry.name());
                }
                assert!(!term.contains("zqx"), "{term} indexed in {}", entry.name());
                terms += 1;
            }
        }
    }
    assert!(
        docs > 1000 && terms > 10_000,
        "scanned {docs} documents and {terms} terms"
    );
}

#[test]
fn withdrawn_entry_leaves_the_index_after_sync_and_a_merged_one_stays_while_a_source_remains() {
    let c = corpus();
    let (gw, mut province, mut ministry) = (c.gw, c.province, c.ministry);
    let index = SearchIndex::in_ram().unwrap();
    index.sync(&gw.db).unwrap();
    let before = index.num_docs();
    let everything = SearchQuery {
        limit: 100,
        ..SearchQuery::default()
    };
    let find = |uid: &str, node: Option<&str>| -> bool {
        let mut q = everything.clone();
        q.node = node.map(str::to_owned);
        every_page(&index, &q, INTERNAL)
            .1
            .iter()
            .any(|h| h.unified_id == uid)
    };
    // A province-only public achievement, and a shared one both nodes publish.
    let mut conn = gw.db.conn().unwrap();
    // The first province achievement that is an entry of its own.
    let (own_id, own) = (0..900)
        .find_map(|i| {
            let id = format!("a{i}");
            let uid = catalogue::unified_id_of(&mut conn, "prov-530000", &id, Entitlements::ALL)
                .unwrap()?;
            let u = catalogue::unified(&mut conn, &uid).unwrap()?;
            (u.sources.len() == 1).then_some((id, uid))
        })
        .unwrap();
    let shared = catalogue::unified_id_of(&mut conn, "most", "s3", Entitlements::ALL)
        .unwrap()
        .unwrap();
    assert_eq!(
        catalogue::unified_id_of(&mut conn, "prov-530000", "s3", Entitlements::ALL)
            .unwrap()
            .unwrap(),
        shared,
        "shared results merge"
    );
    drop(conn);
    assert!(find(&own, None) && find(&shared, Some("most")) && find(&shared, Some("prov-530000")));

    province.publish(
        &gw.ingest,
        vec![(RecordKind::Achievement, own_id, 2, None)],
        PER_BATCH,
    );
    ministry.publish(
        &gw.ingest,
        vec![(RecordKind::Achievement, "s3".into(), 2, None)],
        PER_BATCH,
    );
    let report = index.sync(&gw.db).unwrap();
    assert_eq!((report.changes, report.removed, report.indexed), (2, 1, 1));
    assert!(!find(&own, None), "the withdrawn entry is still searchable");
    assert!(
        find(&shared, Some("prov-530000")),
        "the merged entry lost its remaining source"
    );
    assert!(
        !find(&shared, Some("most")),
        "the withdrawn source still counts for its node"
    );
    assert_eq!(index.num_docs(), before - 1);
    let models = models(&gw.db);
    assert_eq!(index.num_docs(), models.len() as u64);
    // A sync with nothing new does nothing.
    let idle = index.sync(&gw.db).unwrap();
    assert_eq!((idle.changes, idle.commits), (0, 0));
}

#[actix_web::test]
async fn a_record_that_moves_to_another_entry_leaves_its_old_one() {
    let gw = gateway();
    let sample = SampleGenerator::new(SampleConfig {
        share_internal: 0.0,
        share_classified: 0.0,
        ..SampleConfig::default()
    });
    let mut a = SigningNode::trusted(&gw.db, "prov-530000");
    let mut b = SigningNode::trusted(&gw.db, "prov-210000");
    let x = record(sample.achievement(1)).unwrap();
    // Another result of the same category: a registration number carries the category flag.
    let y = (2..)
        .map(|i| record(sample.achievement(i)).unwrap())
        .find(|y| y["category"] == x["category"])
        .unwrap();
    a.publish(
        &gw.ingest,
        vec![(RecordKind::Achievement, "x".into(), 1, Some(x.clone()))],
        PER_BATCH,
    );
    b.publish(
        &gw.ingest,
        vec![(RecordKind::Achievement, "y".into(), 1, Some(y.clone()))],
        PER_BATCH,
    );
    let index = SearchIndex::in_ram().unwrap();
    index.sync(&gw.db).unwrap();
    assert_eq!(index.num_docs(), 2);
    let name_of = |node: &str, id: &str| {
        catalogue::unified_id_of(&mut gw.db.conn().unwrap(), node, id, Entitlements::ALL)
            .unwrap()
            .unwrap()
    };
    let (x_entry, y_entry) = (name_of("prov-530000", "x"), name_of("prov-210000", "y"));
    // y's revision carries x's registration number: the catalogue merges it into x's entry.
    let mut y2 = y;
    y2["registration_no"] = x["registration_no"].clone();
    let applied = b.publish(
        &gw.ingest,
        vec![(RecordKind::Achievement, "y".into(), 2, Some(y2))],
        PER_BATCH,
    );
    assert_eq!(applied, 1, "the revision was not applied");
    index.sync(&gw.db).unwrap();
    assert_eq!(name_of("prov-210000", "y"), x_entry);
    let all = every_page(&index, &SearchQuery::default(), INTERNAL).1;
    assert_eq!(uids(&all), BTreeSet::from([x_entry.clone()]));
    let by_node = SearchQuery {
        node: Some("prov-210000".into()),
        ..SearchQuery::default()
    };
    assert_eq!(uids(&every_page(&index, &by_node, INTERNAL).1), uids(&all));

    // A ministry following the change feed hears that y's old entry lost it.
    let app = actix_web::test::init_service(
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(rix_gateway::api::ReadState {
                db: gw.db.clone(),
                access: rix_gateway::access::AccessFilter::new(gw.db.clone()),
                search: std::sync::Arc::new(index),
            }))
            .configure(rix_gateway::api::configure),
    )
    .await;
    let body = actix_web::test::call_and_read_body(
        &app,
        actix_web::test::TestRequest::get()
            .uri("/v1/changes?after=0")
            .to_request(),
    )
    .await;
    let mut followed: BTreeSet<String> = BTreeSet::new();
    let mut lines = Vec::new();
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let change: Value = serde_json::from_slice(line).unwrap();
        let uid = change["unified_id"].as_str().unwrap().to_owned();
        lines.push((change["cursor"].as_str().unwrap().to_owned(), uid.clone()));
        match change["op"].as_str().unwrap() {
            "upsert" => followed.insert(uid),
            _ => followed.remove(&uid),
        };
    }
    assert_eq!(followed, BTreeSet::from([x_entry.clone()]));
    // The move is one change in two lines: the entry left, then the entry joined. Lines of
    // one change share their (sealed) position; different changes have different ones.
    let entries: Vec<&String> = lines.iter().map(|(_, uid)| uid).collect();
    assert_eq!(entries, [&x_entry, &y_entry, &y_entry, &x_entry]);
    let changes: Vec<&String> = lines.iter().map(|(cursor, _)| cursor).collect();
    assert_eq!(changes[2], changes[3]);
    assert_eq!(BTreeSet::from_iter(&changes).len(), 3, "{changes:?}");
}

/// One query's answer: the total, each item with what it shows, and the facets.
type Answer = (u64, Vec<(String, Vec<String>)>, Facets);

/// Everything a set of queries answers, for comparing two indexes.
fn answers(index: &SearchIndex) -> Vec<Answer> {
    let mut out = Vec::new();
    for q in [
        None,
        Some("电池"),
        Some("技术"),
        Some("5G 通信"),
        Some("锂离子电池"),
    ] {
        for e in [Entitlements::PUBLIC, INTERNAL] {
            let mut query = Filter::default().query(q);
            query.sort = Sort::Date;
            let (total, items, facets) = every_page(index, &query, e);
            let listed: Vec<(String, Vec<String>)> = items
                .iter()
                .map(|h| {
                    let hl = h
                        .highlights
                        .iter()
                        .map(|x| format!("{}:{}", x.field, x.snippet));
                    let fields = [
                        h.kind.clone(),
                        h.title.clone(),
                        format!("{:?}{:?}", h.year, h.region),
                        h.secrecy.clone(),
                    ];
                    (h.unified_id.clone(), fields.into_iter().chain(hl).collect())
                })
                .collect();
            // Date order is exact; relevance order is checked as a set (scores depend on
            // deleted documents not yet merged away).
            let mut relevance = Filter::default().query(q);
            relevance.limit = 100;
            let (rtotal, ritems, _) = every_page(index, &relevance, e);
            assert_eq!(rtotal, total);
            assert_eq!(uids(&ritems), uids(&items));
            out.push((total, listed, facets));
        }
    }
    out
}

#[test]
fn rebuild_from_scratch_answers_exactly_as_the_incrementally_synced_index() {
    let c = corpus();
    let (gw, mut province) = (c.gw, c.province);
    let index = SearchIndex::in_ram().unwrap();
    index.sync(&gw.db).unwrap();
    // Asked before the changes: their totals and facets are kept per segment, and counted
    // ahead in the new segments after the next commit.
    let before = answers(&index);
    let mut items: Vec<Item> = (0..40)
        .map(|i| {
            (
                RecordKind::Achievement,
                format!("a{i}"),
                2,
                record(c.sample.achievement(500 + i)),
            )
        })
        .collect();
    items.extend((40..60).map(|i| (RecordKind::Achievement, format!("a{i}"), 2, None)));
    province.publish(&gw.ingest, items, PER_BATCH);
    index.sync(&gw.db).unwrap();
    assert!(
        index.warm_tallies() > 0,
        "the recent queries are counted ahead in the new segments"
    );
    let incremental = answers(&index);
    assert_ne!(incremental, before);
    let cursor = index.cursor();

    let report = index.rebuild(&gw.db).unwrap();
    assert_eq!(report.cursor, cursor);
    assert_eq!(index.cursor(), cursor);
    assert_eq!(answers(&index), incremental);
    let fresh = SearchIndex::in_ram().unwrap();
    fresh.sync(&gw.db).unwrap();
    assert_eq!(answers(&fresh), incremental);
    assert_eq!(fresh.num_docs(), index.num_docs());
}

#[test]
fn a_reopened_index_continues_from_its_stored_cursor() {
    let gw = gateway();
    let sample = SampleGenerator::new(SampleConfig::default());
    let mut node = SigningNode::trusted(&gw.db, "prov-530000");
    let first: Vec<Item> = (0..300)
        .map(|i| {
            (
                RecordKind::Achievement,
                format!("a{i}"),
                1,
                record(sample.achievement(i)),
            )
        })
        .collect();
    let applied_first = node.publish(&gw.ingest, first, PER_BATCH) as u64;
    let dir = gw.dir.path().join("index");
    let cursor = {
        let index = SearchIndex::open_or_create(&dir).unwrap();
        assert_eq!(index.cursor(), 0);
        let report = index.sync(&gw.db).unwrap();
        assert_eq!(report.changes, applied_first);
        index.cursor()
    };
    let entries_first = models(&gw.db).len() as u64;
    let second: Vec<Item> = (300..500)
        .map(|i| {
            (
                RecordKind::Achievement,
                format!("a{i}"),
                1,
                record(sample.achievement(i)),
            )
        })
        .collect();
    let applied_second = node.publish(&gw.ingest, second, PER_BATCH) as u64;

    let index = SearchIndex::open_or_create(&dir).unwrap();
    assert_eq!(
        index.cursor(),
        cursor,
        "the cursor did not survive the restart"
    );
    assert_eq!(index.num_docs(), entries_first);
    let report = index.sync(&gw.db).unwrap();
    assert_eq!(
        report.changes, applied_second,
        "the reopened index re-read old changes"
    );
    assert_eq!(index.num_docs(), models(&gw.db).len() as u64);
    assert!(index.num_docs() > entries_first);
    let fresh = SearchIndex::in_ram().unwrap();
    fresh.sync(&gw.db).unwrap();
    assert_eq!(answers(&index), answers(&fresh));
    drop(index);
    // And again with nothing new: the same cursor, no work.
    let index = SearchIndex::open_or_create(&dir).unwrap();
    assert_eq!(index.sync(&gw.db).unwrap().changes, 0);
}

#[test]
fn an_index_stopped_before_its_first_commit_reopens_empty() {
    let dir = tempfile::tempdir().unwrap();
    drop(SearchIndex::open_or_create(dir.path()).unwrap());
    let index = SearchIndex::open_or_create(dir.path()).unwrap();
    assert_eq!((index.cursor(), index.num_docs()), (0, 0));
}

#[test]
fn a_directory_holding_something_else_is_refused_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    // An index with another schema (as an older gateway would have left).
    let mut b = tantivy::schema::Schema::builder();
    b.add_text_field("title", tantivy::schema::TEXT);
    let other = tantivy::Index::create_in_dir(dir.path(), b.build()).unwrap();
    let mut w: tantivy::IndexWriter = other.writer(15_000_000).unwrap();
    w.commit().unwrap();
    drop(w);
    match SearchIndex::open_or_create(dir.path()) {
        Err(e @ SearchError::Format { .. }) => assert!(e.to_string().contains("reindex")),
        other => panic!("expected a format refusal, got {other:?}"),
    }
}

/// `sample` achievements `from..to` of `node`'s chain, version 1.
fn achievements(sample: &SampleGenerator, from: u64, to: u64) -> Vec<Item> {
    (from..to)
        .map(|i| {
            (
                RecordKind::Achievement,
                format!("a{i}"),
                1,
                record(sample.achievement(i)),
            )
        })
        .collect()
}

/// A consistent copy of the SQLite catalogue `db` at `to`, as a backup would take it.
fn backup(db: &Db, to: &Path) {
    use diesel::RunQueryDsl as _;
    diesel::sql_query(format!("VACUUM INTO '{}'", to.display()))
        .execute(&mut *db.conn().unwrap())
        .unwrap();
}

/// Copies the (closed) index directory `from` to `to`.
fn copy_index(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in std::fs::read_dir(from).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
    }
}

/// `rix_search_rebuilds_total{reason}` in `registry` (every reason's, summed, for `None`).
fn rebuilds(registry: &prometheus::Registry, reason: Option<&str>) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "rix_search_rebuilds_total")
        .flat_map(|f| f.get_metric())
        .filter(|m| reason.is_none_or(|r| m.get_label().iter().any(|l| l.value() == r)))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Opens the index at `dir`, syncs it with `db`, and returns why it rebuilt itself (`None`:
/// it did not), checking that it then answers exactly as an index built afresh from `db`.
fn sync_after_restore(dir: &Path, db: &Db) -> Option<String> {
    let index = SearchIndex::open_or_rebuild(dir).unwrap();
    let registry = prometheus::Registry::new();
    index.register_metrics(&registry).unwrap();
    index.sync(db).unwrap();
    let fresh = SearchIndex::in_ram().unwrap();
    fresh.sync(db).unwrap();
    assert_eq!(index.num_docs(), fresh.num_docs());
    assert_eq!(answers(&index), answers(&fresh));
    let health = index.health();
    assert_eq!(health.state, "current", "{health:?}");
    assert_eq!(health.indexed_change_id, fresh.cursor());
    assert_eq!(health.lag_changes, 0);
    let reason = health.last_rebuild.map(|r| {
        assert!(r.finished_at.is_some(), "{r:?}");
        assert_eq!(rebuilds(&registry, Some(&r.reason)), 1);
        r.reason
    });
    // Once rebuilt it is in step: the next sync neither rebuilds nor re-reads anything.
    let before = rebuilds(&registry, None);
    assert_eq!(index.sync(db).unwrap().changes, 0);
    assert_eq!(rebuilds(&registry, None), before);
    reason
}

#[test]
fn an_index_that_does_not_reflect_its_catalogue_rebuilds_itself_and_says_why() {
    let gw = gateway();
    let sample = SampleGenerator::new(SampleConfig::default());
    let mut node = SigningNode::trusted(&gw.db, "prov-530000");
    node.publish(&gw.ingest, achievements(&sample, 0, 200), PER_BATCH);
    let index_dir = gw.dir.path().join("index");
    let saved = |name: &str| gw.dir.path().join(name);
    {
        let index = SearchIndex::open_or_create(&index_dir).unwrap();
        index.sync(&gw.db).unwrap();
    }
    // The backups an operator takes: the catalogue, and the index beside it.
    backup(&gw.db, &saved("backup.db"));
    copy_index(&index_dir, &saved("index-at-backup"));
    node.publish(&gw.ingest, achievements(&sample, 200, 260), PER_BATCH);
    {
        let index = SearchIndex::open_or_create(&index_dir).unwrap();
        index.sync(&gw.db).unwrap();
    }
    copy_index(&index_dir, &saved("index-ahead"));
    copy_index(&index_dir, &saved("index-ahead-2"));

    // 1. The catalogue restored from the backup under the newer index: the index holds 60
    //    entries the catalogue lost.
    let restored = Db::open(saved("backup.db").to_str().unwrap(), 2).unwrap();
    assert_eq!(
        sync_after_restore(&saved("index-ahead"), &restored).as_deref(),
        Some("ahead_of_catalogue")
    );

    // 2. Restored and fed again (another node's records took the lost change ids): the
    //    index's cursor names a change the catalogue holds, but another one.
    std::fs::copy(saved("backup.db"), saved("refed.db")).unwrap();
    let refed = Gateway::on_database(saved("refed.db").to_str().unwrap());
    let other_sample = SampleGenerator::new(SampleConfig {
        node: NodeProfile::ministry("most", "科学技术部", "348"),
        ..SampleConfig::default()
    });
    let mut ministry = SigningNode::trusted(&refed.db, "most");
    ministry.publish(&refed.ingest, achievements(&other_sample, 0, 80), PER_BATCH);
    let refed_head = catalogue::changes_after(&mut refed.db.conn().unwrap(), 0, 1_000_000)
        .unwrap()
        .len();
    let original_head = catalogue::changes_after(&mut gw.db.conn().unwrap(), 0, 1_000_000)
        .unwrap()
        .len();
    assert!(
        refed_head >= original_head,
        "the test needs the refed catalogue to hold the index's cursor"
    );
    assert_eq!(
        sync_after_restore(&saved("index-ahead-2"), &refed.db).as_deref(),
        Some("catalogue_rewritten")
    );

    // 3. Another catalogue altogether (a new database, a wrong URL).
    let other = gateway();
    SigningNode::trusted(&other.db, "prov-530000").publish(
        &other.ingest,
        achievements(&sample, 0, 300),
        PER_BATCH,
    );
    copy_index(&index_dir, &saved("index-elsewhere"));
    assert_eq!(
        sync_after_restore(&saved("index-elsewhere"), &other.db).as_deref(),
        Some("other_catalogue")
    );

    // 4. The index restored from the older backup under the current catalogue: merely behind,
    //    so it catches up from its cursor without a rebuild.
    assert_eq!(sync_after_restore(&saved("index-at-backup"), &gw.db), None);

    // 5. The index in step: nothing to rebuild, nothing to read.
    assert_eq!(sync_after_restore(&index_dir, &gw.db), None);
}
