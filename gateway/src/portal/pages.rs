//! The portal's pages as askama templates, and how each is built from what the read code
//! returned: a [`SearchPage`], a record detail
//! ([`crate::api::record_detail`]) or the facets that `/v1/stats` reads.
//!
//! Every value here is plain text: the templates escape it (askama's HTML escaping, on for
//! every `.html` template), and no template marks anything `|safe`. Highlights arrive from the
//! search index as escaped HTML with `<em>` around matches; [`marked`] turns them back into text
//! segments, so a match is marked by the template and the text around it escaped by it too.

use std::collections::BTreeMap;

use askama::Template;
use serde_json::Value;

use super::history::{SourceHistory, changed_fields};
use super::labels::{
    Lang, Ui, field_label, field_label_in, field_order, kind_label, region_label, secrecy_label,
    view_note,
};
use super::{PageQuery, SEARCH_FILTERS};
use crate::access::Consumer;
use crate::search::{FacetCount, SearchHit, SearchPage};

/// What every page shares: language, navigation and the stylesheet.
pub struct Chrome {
    pub ui: &'static Ui,
    pub lang: &'static str,
    pub css: &'static str,
    pub icon: &'static str,
    pub search_href: String,
    pub stats_href: String,
    pub about_href: String,
    /// The same page in the other interface language.
    pub other_lang_href: String,
    /// Which navigation entry is this page (`search`, `stats`, `about`, or none).
    pub current: &'static str,
    /// htmx, vendored ([`super::htmx_src`]).
    pub htmx: &'static str,
    /// What this reader's view shows and leaves out ([`view_note`]); empty on a page that
    /// could not tell who reads (an error).
    pub view: String,
}

impl Chrome {
    pub fn new(query: &PageQuery, path: &str, current: &'static str) -> Chrome {
        let lang = query.lang;
        let plain = PageQuery::bare(lang);
        Chrome {
            ui: lang.ui(),
            lang: lang.html(),
            css: super::css_href(),
            icon: super::icon_href(),
            search_href: plain.href("/", |_| {}),
            stats_href: plain.href("/stats", |_| {}),
            about_href: plain.href("/about", |_| {}),
            other_lang_href: query.other_lang().href(path, |_| {}),
            current,
            htmx: super::htmx_src(),
            view: String::new(),
        }
    }

    /// Names the reader `who` (`token`: named by a token), so that the footer says what their
    /// view is.
    pub fn set_reader(&mut self, who: &Consumer, token: bool, lang: Lang) {
        self.view = view_note(who.entitlements, token, lang);
    }
}

/// A piece of highlighted text: `(text, marked)`.
pub type Seg = (String, bool);

/// The escaped snippet of the search index (`<em>` around matches) as text segments.
///
/// The index escapes `& < > " '` before it inserts `<em>`, so every literal `<em>` or `</em>` in
/// a snippet is one it inserted, and the rest unescapes back to the text as written.
pub fn marked(snippet: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut rest = snippet;
    while let Some(start) = rest.find("<em>") {
        if start > 0 {
            out.push((unescape(&rest[..start]), false));
        }
        let after = &rest[start + 4..];
        let end = after.find("</em>").unwrap_or(after.len());
        out.push((unescape(&after[..end]), true));
        rest = after.get(end + 5..).unwrap_or("");
    }
    if !rest.is_empty() {
        out.push((unescape(rest), false));
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

// -------------------------------------------------------------------------------------------
// Search

#[derive(Template)]
#[template(path = "portal/search.html", blocks = ["region"])]
pub struct SearchTemplate {
    pub chrome: Chrome,
    pub q: String,
    pub kind: String,
    pub date_sort: bool,
    /// Active filters the form carries along (besides `q`, `kind` and `sort`).
    pub hidden: Vec<(String, String)>,
    pub total: u64,
    pub items: Vec<ResultItem>,
    pub facets: Vec<FacetGroup>,
    pub chips: Vec<Chip>,
    pub clear_href: String,
    pub sort_links: Vec<SortLink>,
    pub next_href: Option<String>,
    pub prev_href: Option<String>,
    pub first_href: Option<String>,
    /// Which page this is (1 is the first).
    pub page_no: u64,
    pub csv_href: String,
    pub jsonl_href: String,
    /// Something narrows the search (terms or filters): the empty state says what to change.
    pub narrowed: bool,
    pub has_query: bool,
}

pub struct ResultItem {
    pub href: String,
    pub title: Vec<Seg>,
    /// `(field label, segments)` of the first highlight outside the title.
    pub snippet: Option<(String, Vec<Seg>)>,
    pub kind: String,
    pub region: String,
    pub year: String,
}

pub struct FacetGroup {
    pub id: &'static str,
    pub label: &'static str,
    pub items: Vec<FacetItem>,
}

pub struct FacetItem {
    pub label: String,
    pub count: u64,
    pub href: String,
    pub active: bool,
}

pub struct Chip {
    pub label: String,
    pub remove_href: String,
}

pub struct SortLink {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// Most values one facet lists (the most frequent first); the rest are in `/stats` and the API.
const FACET_VALUES: usize = 15;

impl SearchTemplate {
    pub fn build(query: &PageQuery, page: &SearchPage) -> SearchTemplate {
        let lang = query.lang;
        let ui = lang.ui();
        let p = &query.params;
        let get = |k: &str| p.get(k).cloned().unwrap_or_default();
        let items = page.items.iter().map(|h| result_item(h, lang)).collect();
        let f = &page.facets;
        let facet = |id: &'static str,
                     label: &'static str,
                     counts: &[FacetCount],
                     show: &dyn Fn(&str) -> String| {
            let items = counts
                .iter()
                .take(FACET_VALUES)
                .map(|c| FacetItem {
                    label: show(&c.value),
                    count: c.count,
                    active: p.get(id) == Some(&c.value),
                    href: query.href("/", |m| {
                        Trail::reset(m);
                        m.insert(id.to_owned(), c.value.clone());
                    }),
                })
                .collect();
            FacetGroup { id, label, items }
        };
        let same = |v: &str| -> String { v.to_owned() };
        let mut facets = vec![
            facet("region", ui.facet_region, &f.region, &|v: &str| {
                region_label(v)
            }),
            facet("field", ui.facet_field, &f.field, &same),
            facet("category", ui.facet_category, &f.category, &same),
            facet("program", ui.facet_program, &f.program, &same),
            facet(
                "transfer_mode",
                ui.facet_transfer_mode,
                &f.transfer_mode,
                &same,
            ),
        ];
        // Readiness filters by "at least": each level is offered with the count that filter
        // gives (the matches at that level or above), so a click finds the number it showed.
        let mut at_least: Vec<FacetCount> = Vec::new();
        let mut running = 0;
        let mut levels: Vec<&FacetCount> = f.trl.iter().collect();
        levels.sort_by_key(|c| std::cmp::Reverse(c.value.parse::<u64>().unwrap_or(0)));
        for c in levels {
            running += c.count;
            at_least.push(FacetCount {
                value: c.value.clone(),
                count: running,
            });
        }
        at_least.reverse();
        let trl_label = |v: &str| -> String { format!("{} {v}", ui.trl_at_least) };
        facets.push(facet("trl_min", ui.facet_trl, &at_least, &trl_label));
        // A year is the range of one year.
        let mut years: Vec<&FacetCount> = f.year.iter().take(FACET_VALUES).collect();
        years.sort_by(|a, b| b.value.cmp(&a.value));
        facets.push(FacetGroup {
            id: "year",
            label: ui.facet_year,
            items: years
                .into_iter()
                .map(|c| FacetItem {
                    label: c.value.clone(),
                    count: c.count,
                    active: p.get("year_from") == Some(&c.value)
                        && p.get("year_to") == Some(&c.value),
                    href: query.href("/", |m| {
                        Trail::reset(m);
                        m.insert("year_from".into(), c.value.clone());
                        m.insert("year_to".into(), c.value.clone());
                    }),
                })
                .collect(),
        });
        facets.retain(|g| !g.items.is_empty());

        // Sort has its own control, not a chip ("relevance" is no filter to remove).
        let chips = SEARCH_FILTERS
            .iter()
            .filter(|&&name| name != "sort")
            .filter_map(|&name| {
                let value = p.get(name)?;
                let shown = match name {
                    "region" => region_label(value),
                    "kind" => kind_label(value, lang),
                    "trl_min" => format!("{} {value}", ui.trl_at_least),
                    "year_from" => format!("≥ {value}"),
                    "year_to" => format!("≤ {value}"),
                    _ => value.clone(),
                };
                let what = match name {
                    "q" => ui.facet_query,
                    "kind" => ui.facet_kind,
                    "region" => ui.facet_region,
                    "field" => ui.facet_field,
                    "category" => ui.facet_category,
                    "program" => ui.facet_program,
                    "trl_min" => ui.facet_trl,
                    "transfer_mode" => ui.facet_transfer_mode,
                    "year_from" | "year_to" => ui.facet_year,
                    _ => ui.facet_node,
                };
                Some(Chip {
                    label: format!("{what}：{shown}"),
                    remove_href: query.href("/", |m| {
                        Trail::reset(m);
                        m.remove(name);
                    }),
                })
            })
            .collect();
        let date_sort = get("sort") == "date";
        let sort_links = [("relevance", ui.sort_relevance), ("date", ui.sort_date)]
            .into_iter()
            .map(|(value, label)| SortLink {
                label,
                current: (value == "date") == date_sort,
                href: query.href("/", |m| {
                    Trail::reset(m);
                    if value == "date" {
                        m.insert("sort".into(), "date".into());
                    } else {
                        m.remove("sort");
                    }
                }),
            })
            .collect();
        let trail = Trail::of(p);
        let next_href = page
            .next_cursor
            .as_ref()
            .map(|c| query.href("/", |m| trail.next(c).apply(m)));
        let prev_href = trail.prev().map(|prev| query.href("/", |m| prev.apply(m)));
        // "First page" only where "previous" is not already it.
        let first_href = (trail.page > 2).then(|| query.href("/", Trail::reset));
        let export = |format: &str| {
            // The export takes the search filters and nothing of the page (cursor, limit).
            query.without_lang().href("/v1/export", |m| {
                Trail::reset(m);
                m.remove("limit");
                m.insert("format".into(), format.into());
            })
        };
        let hidden = p
            .iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), "q" | "kind" | "sort") && !PAGING.contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        SearchTemplate {
            chrome: Chrome::new(query, "/", "search"),
            q: get("q"),
            kind: get("kind"),
            date_sort,
            hidden,
            total: page.total,
            items,
            facets,
            chips,
            clear_href: PageQuery::bare(lang).href("/", |_| {}),
            sort_links,
            next_href,
            prev_href,
            first_href,
            page_no: trail.page,
            csv_href: export("csv"),
            jsonl_href: export("jsonl"),
            narrowed: SEARCH_FILTERS.iter().any(|k| p.contains_key(*k)),
            has_query: p.contains_key("q"),
        }
    }
}

/// The parameters of a page's place in its result list, which every link but paging drops.
pub const PAGING: [&str; 3] = ["cursor", "back", "page"];

/// Previous pages the URL remembers at most: 20 cursors of 50 characters keep the URL near
/// 1 KB; from further down, "previous" walks back 20 pages and then offers the first page.
pub const TRAIL_MAX: usize = 20;

/// Where a search page is in its list, as its URL says: `cursor` (the API's opaque
/// search-after cursor of this page; none on the first), `back` (the cursors of the pages
/// before it, oldest first, `.`-separated, the first page's absent) and `page` (its number).
///
/// Why a trail in the URL and not a reverse cursor: the API's cursor only walks forward (a
/// search-after position in one sort order), and walking backward would need the index to
/// search in the reverse order from that position and flip the page — a second paging code
/// path in the search, for one button. The cursors already walked are exactly the pages
/// before this one, so keeping them in the URL gives "previous" for free, keeps every page
/// stateless and bookmarkable (nothing on the server remembers a reader's walk), and costs
/// the same at any depth. The trail is capped ([`TRAIL_MAX`]); past it, "first page" remains.
#[derive(Debug, Clone, PartialEq)]
pub struct Trail {
    pub cursor: Option<String>,
    pub back: Vec<String>,
    pub page: u64,
}

impl Trail {
    /// The trail of a page's parameters (checked by [`Trail::check`] before).
    pub fn of(p: &ParamMap) -> Trail {
        let cursor = p.get("cursor").cloned();
        let back: Vec<String> = p
            .get("back")
            .map(|b| b.split('.').map(str::to_owned).collect())
            .unwrap_or_default();
        let least = if cursor.is_some() {
            2 + back.len() as u64
        } else {
            1
        };
        let page = p
            .get("page")
            .and_then(|n| n.parse().ok())
            .unwrap_or(least)
            .max(least);
        Trail { cursor, back, page }
    }

    /// Refuses a `back` or `page` this portal would not have written, naming it.
    pub fn check(p: &ParamMap) -> Result<(), (&'static str, String)> {
        if let Some(b) = p.get("back") {
            let cursors: Vec<&str> = b.split('.').collect();
            if cursors.len() > TRAIL_MAX {
                return Err(("back", format!("at most {TRAIL_MAX} cursors")));
            }
            if p.get("cursor").is_none() {
                return Err(("back", "only beside a cursor".into()));
            }
            // Search cursors are sealed, URL-safe base64 (`access::CursorSeal`): never a '.'.
            let sealed = |c: &str| {
                !c.is_empty()
                    && c.len() <= 128
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            if !cursors.iter().all(|c| sealed(c)) {
                return Err(("back", "cursors this portal wrote, separated by '.'".into()));
            }
        }
        if let Some(n) = p.get("page")
            && !n.parse::<u32>().is_ok_and(|n| n >= 1)
        {
            return Err(("page", format!("a page number from 1, got {n:?}")));
        }
        Ok(())
    }

    /// The page after this one, which starts at `next_cursor`.
    pub fn next(&self, next_cursor: &str) -> Trail {
        let mut back = self.back.clone();
        back.extend(self.cursor.clone());
        if back.len() > TRAIL_MAX {
            back.drain(..back.len() - TRAIL_MAX);
        }
        Trail {
            cursor: Some(next_cursor.to_owned()),
            back,
            page: self.page + 1,
        }
    }

    /// The page before this one, if the URL still remembers it.
    pub fn prev(&self) -> Option<Trail> {
        self.cursor.as_ref()?;
        if self.page <= 2 {
            return Some(Trail {
                cursor: None,
                back: Vec::new(),
                page: 1,
            });
        }
        let mut back = self.back.clone();
        let cursor = back.pop()?;
        Some(Trail {
            cursor: Some(cursor),
            back,
            page: self.page - 1,
        })
    }

    /// Drops the paging parameters: the first page of whatever else `m` asks.
    pub fn reset(m: &mut ParamMap) {
        for k in PAGING {
            m.remove(k);
        }
    }

    /// Writes this place into `m`.
    pub fn apply(&self, m: &mut ParamMap) {
        Trail::reset(m);
        if let Some(c) = &self.cursor {
            m.insert("cursor".into(), c.clone());
            if !self.back.is_empty() {
                m.insert("back".into(), self.back.join("."));
            }
            m.insert("page".into(), self.page.to_string());
        }
    }
}

fn result_item(hit: &SearchHit, lang: Lang) -> ResultItem {
    let ui = lang.ui();
    let title = hit
        .highlights
        .iter()
        .find(|h| h.field == "title")
        .map(|h| marked(&h.snippet))
        .unwrap_or_else(|| vec![(hit.title.clone(), false)]);
    let snippet = hit
        .highlights
        .iter()
        .find(|h| h.field != "title")
        .map(|h| (field_label(&h.field, lang), marked(&h.snippet)));
    ResultItem {
        href: PageQuery::bare(lang).href(&format!("/entries/{}", encode(&hit.unified_id)), |_| {}),
        title,
        snippet,
        kind: kind_label(&hit.kind, lang),
        region: hit
            .region
            .as_deref()
            .map_or_else(|| ui.region_unknown.to_owned(), region_label),
        year: hit
            .year
            .map_or_else(|| ui.year_unknown.to_owned(), |y| y.to_string()),
    }
}

/// Percent-encodes `s` for a URL path segment or query value (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// -------------------------------------------------------------------------------------------
// Record

#[derive(Template)]
#[template(path = "portal/record.html")]
pub struct RecordTemplate {
    pub chrome: Chrome,
    pub title: String,
    pub kind: String,
    pub unified_id: String,
    pub fields: Vec<FieldRow>,
    pub links: Vec<LinkItem>,
    pub sources: Vec<SourceBox>,
    pub history: Vec<HistoryBox>,
}

/// The version history of one source, as the reader may see it ([`super::history`]).
pub struct HistoryBox {
    pub node_id: String,
    pub id: String,
    pub rows: Vec<HistoryRow>,
}

pub struct HistoryRow {
    /// "第 1 版": 1, 2, 3 … over the versions shown (never the node's version number).
    pub label: String,
    /// The day the gateway received it (UTC).
    pub received: String,
    pub level: String,
    pub withdrawn: bool,
    /// Labels of the fields whose visible value changed since the version shown before.
    pub changed: Vec<String>,
    pub first: bool,
    pub current: bool,
}

pub struct FieldRow {
    pub key: String,
    pub label: String,
    pub value: Shown,
}

/// How a field's value shows.
pub enum Shown {
    /// One line (lists of words joined).
    Text(String),
    /// Long text, kept in paragraphs.
    Long(String),
    /// One object: its fields.
    Pairs(Vec<(String, String)>),
    /// A list of objects (institutions, completers, IP, funding…), each with its fields.
    Items(Vec<Vec<(String, String)>>),
}

pub struct LinkItem {
    pub href: String,
    pub title: String,
    pub kind: String,
}

pub struct SourceBox {
    pub node_id: String,
    pub id: String,
    pub version: String,
    pub withdrawn: bool,
    pub record_href: String,
    pub json_href: String,
    pub verification: Option<Verification>,
}

pub struct Verification {
    pub key_id: String,
    pub batch_seq: String,
    pub seq: String,
    pub merkle_root: String,
    pub leaf: String,
    pub path: Vec<String>,
}

fn text_of(key: &str, v: &Value, lang: Lang) -> String {
    let ui = lang.ui();
    match v {
        Value::String(s) if key == "region" => region_label(s),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { ui.yes } else { ui.no }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .map(|i| text_of(key, i, lang))
            .collect::<Vec<_>>()
            .join("、"),
        Value::Object(o) if o.contains_key("_sd") => ui.hidden_value.to_owned(),
        Value::Object(_) => pairs(key, v, lang)
            .into_iter()
            .map(|(k, v)| format!("{k}：{v}"))
            .collect::<Vec<_>>()
            .join("；"),
    }
}

/// The fields of an object of field `parent` as `(label, text)`, nested objects flattened into
/// their parent.
fn pairs(parent: &str, v: &Value, lang: Lang) -> Vec<(String, String)> {
    let Value::Object(o) = v else {
        return vec![(String::new(), text_of("", v, lang))];
    };
    let mut keys: Vec<&String> = o.keys().collect();
    keys.sort_by_key(|k| field_order(k));
    let mut out = Vec::new();
    for k in keys {
        let value = &o[k.as_str()];
        match value {
            Value::Object(inner) if !inner.contains_key("_sd") => {
                let outer = field_label_in(parent, k, lang);
                for (label, text) in pairs(k, value, lang) {
                    out.push((format!("{outer} · {label}"), text));
                }
            }
            _ => out.push((field_label_in(parent, k, lang), text_of(k, value, lang))),
        }
    }
    out
}

fn shown(key: &str, v: &Value, lang: Lang) -> Shown {
    match v {
        Value::String(s) if s.chars().count() > 80 || s.contains('\n') => Shown::Long(s.clone()),
        Value::Array(items) if items.iter().any(Value::is_object) => {
            Shown::Items(items.iter().map(|i| pairs(key, i, lang)).collect())
        }
        Value::Object(o) if !o.contains_key("_sd") => Shown::Pairs(pairs(key, v, lang)),
        other => Shown::Text(text_of(key, other, lang)),
    }
}

impl RecordTemplate {
    /// The page of `detail` (as [`crate::api::record_detail`] gives it), asked for at `path`.
    pub fn build(
        query: &PageQuery,
        path: &str,
        detail: &Value,
        history: &[SourceHistory],
    ) -> RecordTemplate {
        let lang = query.lang;
        let ui = lang.ui();
        let history: Vec<HistoryBox> = history.iter().map(|h| history_box(h, lang)).collect();
        let record = &detail["record"];
        let mut fields = Vec::new();
        if let Value::Object(o) = record {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort_by_key(|k| field_order(k));
            for k in keys {
                let v = &o[k.as_str()];
                if k == "title" {
                    continue;
                }
                let value = if k == "secrecy" {
                    let mut text = secrecy_label(v["level"].as_str().unwrap_or(""), lang);
                    if let Some(d) = v.get("decision") {
                        text = format!("{text}（{}）", text_of("decision", d, lang));
                    }
                    Shown::Text(text)
                } else {
                    shown(k, v, lang)
                };
                fields.push(FieldRow {
                    key: k.clone(),
                    label: field_label(k, lang),
                    value,
                });
            }
        }
        let plain = PageQuery::bare(lang);
        let links = detail["links"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| LinkItem {
                href: plain.href(
                    &format!(
                        "/entries/{}",
                        encode(l["unified_id"].as_str().unwrap_or(""))
                    ),
                    |_| {},
                ),
                title: l["title"].as_str().unwrap_or("").to_owned(),
                kind: kind_label(l["kind"].as_str().unwrap_or(""), lang),
            })
            .collect();
        let sources = detail["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let node_id = s["node_id"].as_str().unwrap_or("").to_owned();
                let id = s["id"].as_str().unwrap_or("").to_owned();
                let at = format!("{}/{}", encode(&node_id), encode(&id));
                let verification = s.get("verification").map(|v| Verification {
                    key_id: v["header"]["key_id"].as_str().unwrap_or("").to_owned(),
                    batch_seq: v["batch_seq"].to_string(),
                    seq: v["seq"].to_string(),
                    merkle_root: v["header"]["merkle_root"].as_str().unwrap_or("").to_owned(),
                    leaf: format!(
                        "{} / {}",
                        v["inclusion_proof"]["leaf_index"], v["inclusion_proof"]["tree_size"]
                    ),
                    path: v["inclusion_proof"]["path"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect(),
                });
                // The number of the version shown, as the history numbers it: the node's own
                // version number would count versions this reader may not see.
                let shown_version = history
                    .iter()
                    .find(|h| h.node_id == node_id && h.id == id)
                    .map_or(0, |h| h.rows.len());
                SourceBox {
                    version: version_label(shown_version, ui),
                    withdrawn: s["withdrawn"].as_bool().unwrap_or(false),
                    record_href: plain.href(&format!("/records/{at}"), |_| {}),
                    json_href: format!("/v1/records/{at}"),
                    node_id,
                    id,
                    verification,
                }
            })
            .collect();
        RecordTemplate {
            chrome: Chrome::new(query, path, ""),
            title: record["title"].as_str().unwrap_or(ui.site).to_owned(),
            kind: kind_label(detail["kind"].as_str().unwrap_or(""), lang),
            unified_id: detail["unified_id"].as_str().unwrap_or("").to_owned(),
            fields,
            links,
            sources,
            history,
        }
    }
}

/// "第 3 版" / "Version 3".
pub fn version_label(n: usize, ui: &Ui) -> String {
    format!("{} {n} {}", ui.h_version_before, ui.h_version_after)
        .trim()
        .to_owned()
}

fn history_box(h: &SourceHistory, lang: Lang) -> HistoryBox {
    let last = h.versions.len();
    let mut rows = Vec::with_capacity(last);
    let mut before: Option<&Value> = None;
    for (i, v) in h.versions.iter().enumerate() {
        let changed = match (&v.view, before) {
            (Some(now), Some(then)) => changed_fields(then, now)
                .iter()
                .map(|k| field_label(k, lang))
                .collect(),
            _ => Vec::new(),
        };
        let level = v
            .view
            .as_ref()
            .or(before)
            .and_then(|r| r["secrecy"]["level"].as_str())
            .map(|l| secrecy_label(l, lang))
            .unwrap_or_default();
        rows.push(HistoryRow {
            label: version_label(i + 1, lang.ui()),
            received: v.received.chars().take(10).collect(),
            level,
            withdrawn: v.view.is_none(),
            changed,
            first: i == 0,
            current: i + 1 == last,
        });
        if let Some(now) = &v.view {
            before = Some(now);
        }
    }
    HistoryBox {
        node_id: h.node_id.clone(),
        id: h.id.clone(),
        rows,
    }
}

// -------------------------------------------------------------------------------------------
// Statistics

#[derive(Template)]
#[template(path = "portal/stats.html")]
pub struct StatsTemplate {
    pub chrome: Chrome,
    pub total: u64,
    pub charts: Vec<Chart>,
}

pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    pub csv_href: String,
    /// Every value, for the table.
    pub rows: Vec<(String, u64)>,
    /// The bars drawn (the largest values).
    pub bars: Vec<Bar>,
    pub height: u32,
    pub cut: bool,
}

pub struct Bar {
    pub label: String,
    pub count: u64,
    pub y: u32,
    pub text_y: u32,
    pub width: u32,
    pub count_x: u32,
}

/// Bars drawn per chart; the table lists every value.
const CHART_BARS: usize = 15;
/// Rows a table lists at most (the CSV has all).
pub const TABLE_ROWS: usize = 200;
const BAR_HEIGHT: u32 = 22;
const BAR_GAP: u32 = 6;
const LABEL_WIDTH: u32 = 200;
const BAR_SPACE: u32 = 360;

/// Characters of a bar's label that fit beside it; the table has the whole label.
const BAR_LABEL_CHARS: usize = 14;

fn short(label: &str) -> String {
    if label.chars().count() <= BAR_LABEL_CHARS {
        return label.to_owned();
    }
    let mut cut: String = label.chars().take(BAR_LABEL_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// The statistics a chart can be drawn of, with the label of its values.
pub fn stats_rows(by: &str, counts: &[FacetCount]) -> Vec<(String, String, u64)> {
    let mut rows: Vec<(String, String, u64)> = counts
        .iter()
        .map(|c| {
            let label = if by == "region" {
                region_label(&c.value)
            } else {
                c.value.clone()
            };
            (c.value.clone(), label, c.count)
        })
        .collect();
    if by == "year" {
        rows.sort_by(|a, b| b.0.cmp(&a.0));
    }
    rows
}

impl StatsTemplate {
    pub fn build(query: &PageQuery, page: &SearchPage) -> StatsTemplate {
        let ui = query.lang.ui();
        let f = &page.facets;
        let charts = [
            ("region", ui.stats_by_region, &f.region),
            ("year", ui.stats_by_year, &f.year),
            ("field", ui.stats_by_field, &f.field),
            ("program", ui.stats_by_program, &f.program),
        ]
        .into_iter()
        .map(|(id, title, counts)| {
            let rows = stats_rows(id, counts);
            let max = rows.iter().map(|r| r.2).max().unwrap_or(1).max(1);
            let bars: Vec<Bar> = rows
                .iter()
                .take(CHART_BARS)
                .enumerate()
                .map(|(i, (_, label, count))| {
                    let y = i as u32 * (BAR_HEIGHT + BAR_GAP);
                    let width = ((*count as f64 / max as f64) * BAR_SPACE as f64).round() as u32;
                    Bar {
                        label: short(label),
                        count: *count,
                        y,
                        text_y: y + BAR_HEIGHT / 2 + 5,
                        width: width.max(1),
                        count_x: LABEL_WIDTH + width.max(1) + 6,
                    }
                })
                .collect();
            let height = (bars.len() as u32 * (BAR_HEIGHT + BAR_GAP)).max(BAR_HEIGHT);
            Chart {
                id,
                title,
                csv_href: query.without_lang().href("/stats.csv", |m| {
                    m.insert("by".into(), id.into());
                }),
                cut: rows.len() > CHART_BARS,
                rows: rows
                    .into_iter()
                    .take(TABLE_ROWS)
                    .map(|(_, l, c)| (l, c))
                    .collect(),
                bars,
                height,
            }
        })
        .collect();
        StatsTemplate {
            chrome: Chrome::new(query, "/stats", "stats"),
            total: page.total,
            charts,
        }
    }
}

// -------------------------------------------------------------------------------------------
// About and errors

#[derive(Template)]
#[template(path = "portal/about.html")]
pub struct AboutTemplate {
    pub chrome: Chrome,
    pub en: bool,
    /// The reader may see internal records (the about page says so).
    pub internal: bool,
}

#[derive(Template)]
#[template(path = "portal/error.html")]
pub struct ErrorTemplate {
    pub chrome: Chrome,
    pub status: u16,
    pub message: String,
}

/// The parameters a page was asked with, minus `lang`: what links change and carry.
pub type ParamMap = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_become_text_segments_and_stay_text() {
        assert_eq!(
            marked("&lt;script&gt;<em>电池</em>&amp;&quot;x&#39;"),
            vec![
                ("<script>".to_owned(), false),
                ("电池".to_owned(), true),
                ("&\"x'".to_owned(), false)
            ]
        );
        assert_eq!(marked("plain"), vec![("plain".to_owned(), false)]);
        assert_eq!(marked("<em>a</em>"), vec![("a".to_owned(), true)]);
        // A literal "&lt;em&gt;" the submitter typed unescapes to text, never to a mark.
        assert_eq!(marked("&lt;em&gt;"), vec![("<em>".to_owned(), false)]);
    }

    #[test]
    fn the_trail_walks_back_exactly_as_far_as_it_remembers() {
        let mut p = ParamMap::new();
        let first = Trail::of(&p);
        assert_eq!(first.page, 1);
        assert_eq!(first.prev(), None);
        // Forward 25 pages: the trail keeps the last TRAIL_MAX cursors.
        let mut at = first;
        for n in 0..25 {
            at = at.next(&format!("{n:02x}"));
        }
        assert_eq!(at.page, 26);
        assert_eq!(at.back.len(), TRAIL_MAX);
        // Through the URL and back: the same place.
        at.apply(&mut p);
        assert_eq!(Trail::check(&p), Ok(()));
        assert_eq!(Trail::of(&p), at);
        // Back: one page at a time, each the cursor that page had, until the trail ends.
        let mut steps = 0;
        while let Some(prev) = at.prev() {
            assert_eq!(prev.page, at.page - 1);
            assert_eq!(prev.cursor, Some(format!("{:02x}", prev.page - 2)));
            at = prev;
            steps += 1;
        }
        assert_eq!(steps, TRAIL_MAX);
        // From page 2, previous is the first page, which has no cursor at all.
        let two = Trail::of(&ParamMap::new()).next("aa");
        let one = two.prev().unwrap();
        let mut m = ParamMap::new();
        one.apply(&mut m);
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode("电池 a&b=c/d"), "%E7%94%B5%E6%B1%A0%20a%26b%3Dc%2Fd");
        assert_eq!(encode("prov-530000"), "prov-530000");
    }
}
