//! The researchers' portal (DESIGN.md §6, §9): the national catalogue as web pages for people —
//! search `/`, a record `/records/{node_id}/{id}` (and `/entries/{unified_id}`, where search
//! results and links point), statistics `/stats` and `/about`.
//!
//! **The same reads as the API.** Every page is a translation of what the JSON API returns:
//! search and statistics call [`SearchIndex::search`](crate::search::SearchIndex::search) with
//! the query [`api::search_query`] parses, a record page renders [`api::record_detail`]; the
//! consumer is identified by `api::consumer` from the same `Authorization` header, and
//! non-public reads are audited like the API's. So a page shows exactly what the API would
//! give the same reader, and no page has a field list of its own: the record page walks the
//! visible record, whatever fields it has (labels come from [`labels`], visibility never does).
//!
//! **Safe to open.** Pages are askama templates, compiled with the gateway, escaping every
//! value; no template marks a value `|safe` (highlights are text segments, see
//! [`pages::marked`]). Every response carries a strict Content-Security-Policy (`default-src
//! 'self'`, no inline script or style), `nosniff`, a same-origin referrer policy and no
//! framing. Pages need no JavaScript: every filter and page is a link or a GET form, and the
//! URL holds the whole query, so it can be shared and bookmarked.
//!
//! **Assets.** The stylesheet and the icon are compiled in and served at content-hashed URLs
//! (`/static/portal.<hash>.css`) with a year-long immutable cache lifetime; a changed file has a
//! new URL.
//!
//! What it does not do: write anything but the read audit, or serve anything from another
//! origin (no CDN, no web fonts).

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use rix_schema::sensitivity::Entitlements;
use sha2::{Digest, Sha256};

use crate::access::{AccessError, Consumer};
use crate::api::{self, ApiError, Params, ReadState};
use crate::limits::Heavy;

pub mod history;
pub mod labels;
pub mod pages;

use labels::Lang;
use pages::{
    AboutTemplate, Chrome, ErrorTemplate, ParamMap, RecordTemplate, SearchTemplate, StatsTemplate,
};

/// The search filters a page carries in its URL, in the order chips show them: the API's.
pub use crate::api::SEARCH_FILTERS;

/// The Content-Security-Policy of every portal response: nothing but this origin, no inline
/// script or style, no plugins, no framing, forms only to here.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A file compiled into the gateway and served under a name that changes with its bytes.
struct Asset {
    /// `stem.<first 12 hex digits of SHA-256>.ext`.
    name: String,
    href: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
        let digest = hex::encode(Sha256::digest(body.as_bytes()));
        let name = format!("{stem}.{}.{ext}", &digest[..12]);
        Asset {
            href: format!("/static/{name}"),
            name,
            content_type,
            body,
        }
    }
}

/// The stylesheet, the icon (named by every page, so the browser asks for no
/// `/favicon.ico`) and htmx.
///
/// htmx is vendored: `static/htmx-2.0.11.min.js` is the npm package `htmx.org@2.0.11`'s
/// `dist/htmx.min.js` byte for byte (integrity in `static/VENDORED.md`), under its Zero-Clause
/// BSD licence (`static/htmx-2.0.11.LICENSE`). Its URL names the release and the hash of its
/// bytes, so an upgrade is a new URL. It only enhances: every page works without it.
static ASSETS: LazyLock<[Asset; 3]> = LazyLock::new(|| {
    [
        Asset::new(
            "portal",
            "css",
            "text/css; charset=utf-8",
            include_str!("../../static/portal.css"),
        ),
        Asset::new(
            "icon",
            "svg",
            "image/svg+xml",
            include_str!("../../static/favicon.svg"),
        ),
        Asset::new(
            "htmx-2.0.11",
            "js",
            "text/javascript; charset=utf-8",
            include_str!("../../static/htmx-2.0.11.min.js"),
        ),
    ]
});

/// htmx's URL.
pub fn htmx_src() -> &'static str {
    &ASSETS[2].href
}

/// The stylesheet's URL.
pub fn css_href() -> &'static str {
    &ASSETS[0].href
}

/// The icon's URL.
pub fn icon_href() -> &'static str {
    &ASSETS[1].href
}

/// The parameters of a page (without `lang`) and its language: what its links are made of.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// Every non-empty parameter but `lang`, by name.
    pub params: ParamMap,
    /// The interface language.
    pub lang: Lang,
}

impl PageQuery {
    /// No parameters, in `lang`.
    pub fn bare(lang: Lang) -> PageQuery {
        PageQuery {
            params: BTreeMap::new(),
            lang,
        }
    }

    fn from_params(params: &Params) -> PageQuery {
        PageQuery {
            lang: Lang::from_param(params.get("lang").map(String::as_str)),
            params: params
                .iter()
                .filter(|(k, v)| k.as_str() != "lang" && !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The same parameters in the other language.
    pub fn other_lang(&self) -> PageQuery {
        PageQuery {
            params: self.params.clone(),
            lang: match self.lang {
                Lang::Zh => Lang::En,
                Lang::En => Lang::Zh,
            },
        }
    }

    /// The same parameters, for an endpoint that takes no `lang` (the API).
    pub fn without_lang(&self) -> PageQuery {
        PageQuery {
            params: self.params.clone(),
            lang: Lang::Zh,
        }
    }

    /// `path` with these parameters changed by `change`, and `lang=en` kept when English.
    pub fn href(&self, path: &str, change: impl FnOnce(&mut ParamMap)) -> String {
        let mut params = self.params.clone();
        change(&mut params);
        let mut pieces: Vec<String> = params
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{}={}", pages::encode(k), pages::encode(v)))
            .collect();
        if self.lang == Lang::En {
            pieces.push("lang=en".into());
        }
        if pieces.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", pieces.join("&"))
        }
    }
}

/// A page that could not be shown, said in the reader's language with the status the API
/// would answer.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct PortalError {
    error: ApiError,
    lang: Lang,
}

impl PortalError {
    fn new(error: impl Into<ApiError>, lang: Lang) -> PortalError {
        PortalError {
            error: error.into(),
            lang,
        }
    }
}

impl ResponseError for PortalError {
    fn status_code(&self) -> StatusCode {
        self.error.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let ui = self.lang.ui();
        let message = match &self.error {
            ApiError::BadParameter { .. } => self.error.to_string(),
            ApiError::NotFound => ui.not_found.to_owned(),
            ApiError::Access(AccessError::UnknownToken) => ui.unauthorized.to_owned(),
            ApiError::Limited(_) => ui.busy.to_owned(),
            _ => ui.unavailable.to_owned(),
        };
        let status = self.status_code();
        let page = ErrorTemplate {
            chrome: Chrome::new(&PageQuery::bare(self.lang), "/", ""),
            status: status.as_u16(),
            message,
        };
        let mut response = html(status, page.render());
        if let ApiError::Limited(refusal) = &self.error {
            for (name, value) in refusal.headers() {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    header::HeaderValue::from_str(&value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
        }
        response
    }
}

/// The security headers every portal response carries.
fn secure(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
}

/// A rendered page. A page read with a token shows what that token may see: it is kept out
/// of shared caches (`private`), and revalidated, like any page built from a live catalogue.
fn html(status: StatusCode, rendered: askama::Result<String>) -> HttpResponse {
    let mut response = match rendered {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "private, no-cache"))
            // A search page answers an htmx request with its results region alone.
            .insert_header((header::VARY, "Authorization, HX-Request"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "a portal template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("the page could not be rendered")
        }
    };
    secure(&mut response);
    response
}

type State = web::Data<ReadState>;

/// The query of `req`, parsed by the API's strict parser, with only `known` names; the
/// language is read first so that even a refusal is in the reader's language.
fn page_query(req: &HttpRequest, known: &[&str]) -> Result<PageQuery, PortalError> {
    let lang = Lang::from_param(
        req.query_string()
            .split('&')
            .any(|p| p == "lang=en")
            .then_some("en"),
    );
    let params = Params::parse(req.query_string()).map_err(|e| PortalError::new(e, lang))?;
    params.only(known).map_err(|e| PortalError::new(e, lang))?;
    Ok(PageQuery::from_params(&params))
}

/// Who reads, from the `Authorization` header as the API reads it.
fn reader(state: &ReadState, req: &HttpRequest, lang: Lang) -> Result<Consumer, PortalError> {
    api::consumer(state, req).map_err(|e| PortalError::new(e, lang))
}

/// The search the page's parameters ask for, parsed as `/v1/search` parses them.
fn search_query(params: &ParamMap, lang: Lang) -> Result<crate::search::SearchQuery, PortalError> {
    let map: HashMap<String, String> = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    api::search_query(&map).map_err(|e| PortalError::new(e, lang))
}

/// Whether `req` is htmx asking for a part of a page to swap in: not a history restore
/// (htmx asks for the whole page then, and puts its body back).
fn wants_fragment(req: &HttpRequest) -> bool {
    let h = req.headers();
    h.get("HX-Request").is_some_and(|v| v == "true")
        && !h.contains_key("HX-History-Restore-Request")
}

/// `text` escaped for an HTML text node or attribute, as the templates escape values.
fn text_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&#38;"),
            '<' => out.push_str("&#60;"),
            '>' => out.push_str("&#62;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether the request named its reader with a token (the footer says so).
fn has_token(req: &HttpRequest) -> bool {
    req.headers().contains_key(header::AUTHORIZATION)
}

/// `GET /`: the search page; to htmx, its results region alone (the same read, the same
/// filter, the same template: the region is a block of the page).
#[utoipa::path(get, path = "/", tag = "portal",
    params(("q" = Option<String>, Query), ("kind" = Option<String>, Query), ("region" = Option<String>, Query),
           ("field" = Option<String>, Query), ("category" = Option<String>, Query), ("program" = Option<String>, Query),
           ("trl_min" = Option<u64>, Query), ("year_from" = Option<u64>, Query), ("year_to" = Option<u64>, Query),
           ("transfer_mode" = Option<String>, Query), ("node" = Option<String>, Query),
           ("sort" = Option<String>, Query, description = "relevance (default) or date"),
           ("limit" = Option<u64>, Query, description = "1–100, default 20"),
           ("cursor" = Option<String>, Query, description = "this page's place, as the page's own links give it"),
           ("back" = Option<String>, Query, description = "the cursors of the pages before this one, `.`-separated (for \"previous\"; at most 20)"),
           ("page" = Option<u64>, Query, description = "this page's number"),
           ("lang" = Option<String>, Query, description = "`en` for English interface labels"),
           ("HX-Request" = Option<String>, Header, description = "`true` (htmx): only the results region `<div id=\"region\">`, same read and filter")),
    responses((status = 200, description = "the search page for people (the same search as `/v1/search`, as the consumer may see it)", content_type = "text/html"),
              (status = 400, description = "bad parameter, said on an HTML page", content_type = "text/html"),
              (status = 429, description = "a page with a cursor over this client's rate", content_type = "text/html")),
    security((), ("bearer" = [])))]
pub async fn search_page(state: State, req: HttpRequest) -> Result<HttpResponse, PortalError> {
    // The filters, the page (`cursor`, `limit`, the trail of `back` cursors and the `page`
    // number) and `lang`.
    let known: Vec<&str> = SEARCH_FILTERS
        .into_iter()
        .chain(["cursor", "limit", "back", "page", "lang"])
        .collect();
    let query = page_query(&req, &known)?;
    let lang = query.lang;
    pages::Trail::check(&query.params).map_err(|(name, message)| {
        PortalError::new(
            ApiError::BadParameter {
                pointer: format!("/query/{name}"),
                message,
            },
            lang,
        )
    })?;
    let who = reader(&state, &req, lang)?;
    let mut search_params = query.params.clone();
    search_params.remove("back");
    search_params.remove("page");
    let q = search_query(&search_params, lang)?;
    // A page after the first is heavy, as it is in the API.
    let _admission = match q.cursor {
        Some(_) => api::admit(&req, Heavy::SearchPages)
            .await
            .map_err(|e| PortalError::new(e, lang))?,
        None => None,
    };
    let st = state.clone();
    let e = who.entitlements;
    let page = api::blocking(move || Ok(st.search.search(&q, e)?))
        .await
        .map_err(|e| PortalError::new(e, lang))?;
    state.access.audit(&who, "/", req.query_string());
    let mut template = SearchTemplate::build(&query, &page);
    template.chrome.set_reader(&who, has_token(&req), lang);
    let rendered = if wants_fragment(&req) {
        // The region, and the page's title at its root, which htmx puts in the tab (a page
        // of other results under the old title would name the wrong search).
        let title = if template.q.is_empty() {
            lang.ui().nav_search
        } else {
            &template.q
        };
        let title = format!("{} · {}", title, lang.ui().site);
        template
            .as_region()
            .render()
            .map(|region| format!("<title>{}</title>\n{region}", text_escaped(&title)))
    } else {
        template.render()
    };
    Ok(html(StatusCode::OK, rendered))
}

/// `GET /records/{node_id}/{id}`: a record page, by one of its sources.
#[utoipa::path(get, path = "/records/{node_id}/{id}", tag = "portal",
    params(("node_id" = String, Path, description = "publishing node"),
           ("id" = String, Path, description = "the node's record id"),
           ("lang" = Option<String>, Query, description = "`en` for English interface labels")),
    responses((status = 200, description = "the record page for people: the fields, links, version history and verification material `GET /v1/records/{node_id}/{id}` gives the same consumer", content_type = "text/html"),
              (status = 404, description = "no such record, or not visible to this consumer", content_type = "text/html")),
    security((), ("bearer" = [])))]
pub async fn record_page(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let (node_id, id) = path.into_inner();
    let at = format!(
        "/records/{}/{}",
        pages::encode(&node_id),
        pages::encode(&id)
    );
    detail_page(state, req, at, move |db, e| {
        api::record_by_source(db, &node_id, &id, e)
    })
    .await
}

/// `GET /entries/{unified_id}`: a record page, by the entry's name (search results and links).
#[utoipa::path(get, path = "/entries/{unified_id}", tag = "portal",
    params(("unified_id" = String, Path, description = "the entry's opaque name"),
           ("lang" = Option<String>, Query, description = "`en` for English interface labels")),
    responses((status = 200, description = "the same page as `/records/{node_id}/{id}`, by the entry's name", content_type = "text/html"),
              (status = 404, description = "no such entry, or not visible to this consumer", content_type = "text/html")),
    security((), ("bearer" = [])))]
pub async fn entry_page(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let unified_id = path.into_inner();
    let at = format!("/entries/{}", pages::encode(&unified_id));
    detail_page(state, req, at, move |db, e| {
        api::record_detail(db, &unified_id, e)?.ok_or(ApiError::NotFound)
    })
    .await
}

async fn detail_page(
    state: State,
    req: HttpRequest,
    at: String,
    find: impl FnOnce(&crate::db::Db, Entitlements) -> Result<serde_json::Value, ApiError>
    + Send
    + 'static,
) -> Result<HttpResponse, PortalError> {
    let query = page_query(&req, &["lang"])?;
    let lang = query.lang;
    let who = reader(&state, &req, lang)?;
    let st = state.clone();
    let e = who.entitlements;
    // The record and its history in one read, both cut to this reader.
    let (detail, history) = api::blocking(move || {
        let detail = find(&st.db, e)?;
        let unified_id = detail["unified_id"].as_str().unwrap_or("").to_owned();
        let history = history::history(&st.db, &unified_id, e)?;
        Ok((detail, history))
    })
    .await
    .map_err(|e| PortalError::new(e, lang))?;
    state.access.audit(
        &who,
        "/records",
        detail["unified_id"].as_str().unwrap_or(""),
    );
    let mut page = RecordTemplate::build(&query, &at, &detail, &history);
    page.chrome.set_reader(&who, has_token(&req), lang);
    Ok(html(StatusCode::OK, page.render()))
}

/// The facets of every visible match of the page's filters: what `/stats` draws.
async fn stats_facets(
    state: &State,
    req: &HttpRequest,
    query: &PageQuery,
) -> Result<(crate::search::SearchPage, Consumer), PortalError> {
    let lang = query.lang;
    let who = reader(state, req, lang)?;
    let mut params = query.params.clone();
    params.remove("by");
    let mut q = search_query(&params, lang)?;
    q.limit = 1;
    q.cursor = None;
    let st = state.clone();
    let e = who.entitlements;
    let page = api::blocking(move || Ok(st.search.search(&q, e)?))
        .await
        .map_err(|e| PortalError::new(e, lang))?;
    state.access.audit(&who, "/stats", req.query_string());
    Ok((page, who))
}

/// The parameters `/stats` and `/stats.csv` take: the search's filters (no paging), the chart
/// and the interface language.
fn stats_params() -> Vec<&'static str> {
    SEARCH_FILTERS.into_iter().chain(["by", "lang"]).collect()
}

/// `GET /stats`: records by province, year, field and program, as charts with their tables.
#[utoipa::path(get, path = "/stats", tag = "portal",
    params(("lang" = Option<String>, Query, description = "`en` for English interface labels; any search filter of `/` narrows the counts")),
    responses((status = 200, description = "records by province, year, field and program as SVG charts, each with its table", content_type = "text/html"),
              (status = 400, description = "bad parameter", content_type = "text/html")),
    security((), ("bearer" = [])))]
pub async fn stats_page(state: State, req: HttpRequest) -> Result<HttpResponse, PortalError> {
    let query = page_query(&req, &stats_params())?;
    let (page, who) = stats_facets(&state, &req, &query).await?;
    let mut template = StatsTemplate::build(&query, &page);
    template
        .chrome
        .set_reader(&who, has_token(&req), query.lang);
    Ok(html(StatusCode::OK, template.render()))
}

/// `GET /stats.csv?by=region|year|field|program`: one chart's table as CSV (UTF-8 with a BOM
/// for Excel, cells safe to open in a spreadsheet as the export's are).
#[utoipa::path(get, path = "/stats.csv", tag = "portal",
    params(("by" = String, Query, description = "region, year, field or program; any search filter of `/` narrows the counts")),
    responses((status = 200, description = "one chart's table: `value,label,count` (UTF-8 with a BOM)", content_type = "text/csv"),
              (status = 400, description = "bad parameter", content_type = "text/html")),
    security((), ("bearer" = [])))]
pub async fn stats_csv(state: State, req: HttpRequest) -> Result<HttpResponse, PortalError> {
    let query = page_query(&req, &stats_params())?;
    let lang = query.lang;
    let by = query.params.get("by").cloned().unwrap_or_default();
    let (page, _) = stats_facets(&state, &req, &query).await?;
    let f = &page.facets;
    let counts = match by.as_str() {
        "region" => &f.region,
        "year" => &f.year,
        "field" => &f.field,
        "program" => &f.program,
        other => {
            return Err(PortalError::new(
                ApiError::BadParameter {
                    pointer: "/query/by".into(),
                    message: format!("one of region, year, field, program; got {other:?}"),
                },
                lang,
            ));
        }
    };
    let mut body = vec![0xEF, 0xBB, 0xBF];
    body.extend(api::csv_line(&["value".into(), "label".into(), "count".into()]).into_bytes());
    for (value, label, count) in pages::stats_rows(&by, counts) {
        body.extend(api::csv_line(&[value, label, count.to_string()]).into_bytes());
    }
    let mut response = HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"rix-stats-{by}.csv\""),
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .insert_header((header::VARY, "Authorization"))
        .body(body);
    secure(&mut response);
    Ok(response)
}

/// `GET /about`: what the catalogue is, what it does not show, and what this reader's view
/// is (a token reads more than the public view).
#[utoipa::path(get, path = "/about", tag = "portal",
    params(("lang" = Option<String>, Query, description = "`en` for English")),
    responses((status = 200, description = "what the catalogue is, what it does not show, and this reader's view", content_type = "text/html")),
    security((), ("bearer" = [])))]
pub async fn about_page(state: State, req: HttpRequest) -> Result<HttpResponse, PortalError> {
    let query = page_query(&req, &["lang"])?;
    let who = reader(&state, &req, query.lang)?;
    let mut page = AboutTemplate {
        chrome: Chrome::new(&query, "/about", "about"),
        en: query.lang == Lang::En,
        internal: who.entitlements.internal,
    };
    page.chrome.set_reader(&who, has_token(&req), query.lang);
    Ok(html(StatusCode::OK, page.render()))
}

/// `GET /static/{name}`: an asset under its current name, cached for a year; any other name
/// (an old hash included) is 404, so a stale page never gets a mismatched file cached under
/// the new name.
async fn asset(path: web::Path<String>) -> HttpResponse {
    let found = ASSETS.iter().find(|a| a.name == path.as_str());
    let mut response = if let Some(a) = found {
        HttpResponse::Ok()
            .content_type(a.content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .body(a.body)
    } else {
        HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such asset")
    };
    secure(&mut response);
    response
}

/// Registers the portal's routes (beside [`api::configure`], whose state they read).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(search_page))
        .route("/records/{node_id}/{id}", web::get().to(record_page))
        .route("/entries/{unified_id}", web::get().to(entry_page))
        .route("/stats", web::get().to(stats_page))
        .route("/stats.csv", web::get().to(stats_csv))
        .route("/about", web::get().to(about_page))
        .route("/static/{name}", web::get().to(asset));
}
