//! The read APIs for researchers and ministries (DESIGN.md §9). Handlers only translate: they
//! identify the consumer, read the catalogue on the blocking pool, and pass every record through
//! [`AccessFilter::view`] before any byte of it leaves.
//!
//! What it may not touch: writes, and fields. It reads — through [`crate::catalogue`]'s functions,
//! and for a record's proof the `record_versions`, `batches` and `node_keys` rows directly — and
//! writes nothing but the read audit, through [`AccessFilter::audit`]. No handler cuts a field
//! itself, and search goes through [`crate::search::SearchIndex::search`], which applies the
//! same view.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use diesel::prelude::*;
use rix_schema::RecordKind;
use rix_schema::sensitivity::Entitlements;
use serde_json::{Value, json};

use crate::access::{AccessError, AccessFilter, Consumer};
use crate::catalogue;
use crate::db::schema::{batches, node_keys, record_versions};
use crate::db::{Db, StoreError};
use crate::limits::{Admission, Heavy, Limits, Refusal};
use crate::representation::{self, FieldSelection};
use crate::search::{MatchRow, SearchError, SearchIndex, SearchQuery, Sort};

/// Why a read was refused; reads as `application/problem+json` with `errors: [{pointer,
/// message}]`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is wrong.
    #[error("bad parameter {pointer}: {message}")]
    BadParameter {
        /// `/query/NAME`.
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// Unknown token.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Not there, or not visible to this consumer (the same answer on purpose).
    #[error("no such record")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The search index failed.
    #[error("search is unavailable: {0}")]
    Search(String),
    /// A heavy request over its client's rate or beyond the gateway's slots (429).
    #[error(transparent)]
    Limited(#[from] Refusal),
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Invalid { pointer, message } => ApiError::BadParameter {
                pointer: pointer.to_owned(),
                message,
            },
            other => ApiError::Search(other.to_string()),
        }
    }
}

impl ApiError {
    /// A bad query parameter, at `/query/NAME` (the name escaped as a JSON Pointer token).
    fn bad(name: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadParameter {
            pointer: rix_schema::validate::child_pointer("/query", name),
            message: message.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::Access(AccessError::UnknownToken) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Access(AccessError::Store(_)) | ApiError::Store(_) | ApiError::Search(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let pointer = match self {
            ApiError::BadParameter { pointer, .. } => pointer.clone(),
            ApiError::Access(AccessError::UnknownToken) => "/headers/authorization".into(),
            _ => String::new(),
        };
        let problem = rix_runtime::problem::Problem::new(status, &pointer, &self.to_string());
        let mut response = problem.builder();
        if let ApiError::Limited(refusal) = self {
            for h in refusal.headers() {
                response.insert_header(h);
            }
        }
        response.body(problem.body())
    }
}

/// The query string of a read request, parsed strictly — the one parser every read endpoint
/// uses. `web::Query<HashMap<…>>` decoded lossily (`%FF%FE` became two U+FFFD, which matched
/// nothing and so searched the whole catalogue) and kept the last of repeated names; here the
/// request is refused with 400, the parameter named in `errors[].pointer` (`/query/NAME`), when:
/// - a percent-escape is malformed (`%` not followed by two hex digits; a literal `%` is `%25`);
/// - a name or value is not UTF-8 once percent-decoded;
/// - a value holds a control character (U+0000–U+001F, U+007F–U+009F): DESIGN.md §7;
/// - a name is given twice (`q=a&q=b`): every parameter of the API takes one value, and which
///   one was meant is the client's to say.
///
/// `+` is a space, as in HTML forms; an empty piece (`a=1&&b=2`) is skipped. Which names an
/// endpoint knows is checked by [`Params::only`] (or [`search_query`]).
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses a raw (still percent-encoded) query string.
    pub fn parse(query: &str) -> Result<Params, ApiError> {
        let mut out = HashMap::new();
        for piece in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
            let name = match percent_decode(raw_name).map(String::from_utf8) {
                Ok(Ok(name)) => name,
                Ok(Err(_)) => {
                    return Err(ApiError::bad(
                        raw_name,
                        "the parameter name is not valid UTF-8 once percent-decoded; send names as UTF-8",
                    ));
                }
                Err(message) => return Err(ApiError::bad(raw_name, message)),
            };
            let value = match percent_decode(raw_value) {
                Err(message) => return Err(ApiError::bad(&name, message)),
                Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
                    let bad = e.utf8_error().valid_up_to();
                    ApiError::bad(
                        &name,
                        format!(
                            "is not valid UTF-8 once percent-decoded (byte {bad} is 0x{:02X}); send text as UTF-8, percent-encoded",
                            e.as_bytes()[bad]
                        ),
                    )
                })?,
            };
            if let Some(c) = value.chars().find(|c| c.is_control()) {
                return Err(ApiError::bad(
                    &name,
                    format!(
                        "contains the control character U+{:04X}; remove it",
                        c as u32
                    ),
                ));
            }
            if out.insert(name.clone(), value).is_some() {
                let times = query
                    .split('&')
                    .filter(|p| {
                        let raw = p.split_once('=').map_or(*p, |(n, _)| n);
                        percent_decode(raw).is_ok_and(|n| n == name.as_bytes())
                    })
                    .count();
                return Err(ApiError::bad(
                    &name,
                    format!("is given {times} times; give it once"),
                ));
            }
        }
        Ok(Params(out))
    }

    /// Refuses a name the endpoint does not know, naming it and listing the known ones.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        let mut unknown: Vec<&String> = self
            .0
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(name) if known.is_empty() => Err(ApiError::bad(
                name,
                "unknown parameter; this endpoint takes none",
            )),
            Some(name) => Err(ApiError::bad(
                name,
                format!("unknown parameter; known: {}", known.join(", ")),
            )),
        }
    }
}

impl std::ops::Deref for Params {
    type Target = HashMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for Params {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Params, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Params::parse(req.query_string()))
    }
}

/// `+` to space and `%HH` to the byte; a malformed escape is an error saying how to fix it.
pub(crate) fn percent_decode(raw: &str) -> Result<Vec<u8>, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => out.push(b),
                    None => {
                        return Err(format!(
                            "has a malformed percent-escape at byte {i}: % must be followed by two hex digits (a literal % is %25)"
                        ));
                    }
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

/// Admits a heavy request through the gateway's [`Limits`]. An app without them (tests that
/// build the read routes alone) is unbounded; `serve::start` always installs them.
pub(crate) async fn admit(req: &HttpRequest, heavy: Heavy) -> Result<Option<Admission>, ApiError> {
    match req.app_data::<web::Data<Limits>>() {
        None => Ok(None),
        Some(limits) => Ok(Some(limits.admit(heavy, req).await?)),
    }
}

/// `response` with the client's rate headers, if the request was admitted under a rate.
fn with_rate(admission: Option<&Admission>, mut response: HttpResponse) -> HttpResponse {
    for (name, value) in admission.map(Admission::headers).unwrap_or_default() {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Shared by the read handlers.
pub struct ReadState {
    /// The catalogue.
    pub db: Db,
    /// Tokens and audit.
    pub access: AccessFilter,
    /// The search index (derived from the catalogue's change stream).
    pub search: std::sync::Arc<SearchIndex>,
}

type State = web::Data<ReadState>;

/// The consumer behind the request's `Authorization` header (none: public).
pub(crate) fn consumer(state: &ReadState, req: &HttpRequest) -> Result<Consumer, ApiError> {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    Ok(state.access.consumer(auth)?)
}

/// Runs `f` on the blocking pool (diesel and tantivy are synchronous).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|e| ApiError::Store(StoreError::Task(e.to_string())))?
}

fn kind_of(text: &str) -> Option<RecordKind> {
    text.parse().ok()
}

/// The detail of one unified entry as `who` may see it, or `None` if not visible.
///
/// Everything in it is cut to the reader: the primary and the sources are the ones they may
/// see ([`catalogue::Unified::sources_for`]), links only through sources and funding
/// references they may see, and each source's verification material is the signed entry in
/// placeholder form (the Merkle leaf, as the node signed it) with exactly the disclosures the
/// reader may receive ([`AccessFilter::disclosures`]) — never a hash over a hidden value.
pub fn record_detail(
    db: &Db,
    unified_id: &str,
    entitlements: Entitlements,
) -> Result<Option<Value>, StoreError> {
    let mut conn = db.conn()?;
    let Some(entry) = catalogue::unified(&mut conn, unified_id)? else {
        return Ok(None);
    };
    let Some(kind) = kind_of(&entry.kind) else {
        return Ok(None);
    };
    let Some(view) = entry
        .record_for(entitlements)
        .and_then(|r| AccessFilter::view(kind, r, entitlements))
    else {
        return Ok(None);
    };
    let mut sources = Vec::new();
    for s in entry.sources_for(entitlements) {
        let version: Option<(i64, i64, String, String, Option<String>)> = record_versions::table
            .find((&s.node_id, &s.id, s.version))
            .select((
                record_versions::seq,
                record_versions::batch_seq,
                record_versions::entry,
                record_versions::proof,
                record_versions::disclosures,
            ))
            .first(&mut *conn)
            .optional()?;
        let mut source = json!({
            "node_id": s.node_id, "id": s.id, "version": s.version, "withdrawn": s.withdrawn,
        });
        if let Some((seq, batch_seq, entry_text, proof, disclosures)) = version {
            let texts: Vec<String> = disclosures
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_default();
            let given = match catalogue::full_record(&entry_text, disclosures.as_deref()) {
                Some(full) => AccessFilter::disclosures(kind, &full, &texts, entitlements),
                None => Vec::new(),
            };
            let signed: Option<(String, String)> = batches::table
                .find((&s.node_id, batch_seq))
                .select((batches::header, batches::signature))
                .first(&mut *conn)
                .optional()?;
            let mut verification = json!({
                "seq": seq,
                "batch_seq": batch_seq,
                "entry": entry_text,
                "disclosures": given,
                "inclusion_proof": serde_json::from_str::<Value>(&proof).unwrap_or(Value::Null),
            });
            if let Some((header, signature)) = signed {
                let header: Value = serde_json::from_str(&header).unwrap_or(Value::Null);
                let key_id = header["key_id"].as_str().unwrap_or_default().to_owned();
                let public_key: Option<String> = node_keys::table
                    .find((&s.node_id, &key_id))
                    .select(node_keys::public_key)
                    .first(&mut *conn)
                    .optional()?;
                verification["header_canonical"] = Value::String(
                    String::from_utf8(rix_schema::canonical::canonical_value(&header))
                        .unwrap_or_default(),
                );
                verification["header"] = header;
                verification["signature"] = Value::String(signature);
                verification["public_key"] = json!(public_key);
            }
            source["verification"] = verification;
        }
        sources.push(source);
    }
    let mut links = Vec::new();
    for other in catalogue::links(&mut conn, unified_id, entitlements)? {
        let Some(linked) = catalogue::unified(&mut conn, &other)? else {
            continue;
        };
        let visible = kind_of(&linked.kind).and_then(|k| {
            linked
                .record_for(entitlements)
                .and_then(|r| AccessFilter::view(k, r, entitlements))
        });
        if let Some(v) = visible {
            links.push(json!({"unified_id": other, "kind": linked.kind, "title": v["title"]}));
        }
    }
    Ok(Some(json!({
        "unified_id": entry.unified_id,
        "kind": entry.kind,
        "record": view,
        "primary": entry.primary_for(entitlements),
        "sources": sources,
        "links": links,
    })))
}

/// `GET /v1/records/{node_id}/{id}`: the unified entry the source record belongs to.
#[utoipa::path(get, path = "/v1/records/{node_id}/{id}",
    params(("node_id" = String, Path, description = "publishing node"),
           ("id" = String, Path, description = "the node's record id")),
    responses((status = 200, description = "`{unified_id, kind, record, primary, sources: [{node_id, id, version, withdrawn, verification: {seq, batch_seq, entry, disclosures, inclusion_proof, header, header_canonical, signature, public_key}}], links}` — `record`, the sources and the links as the consumer may see them; `entry` is the signed entry in placeholder form (the Merkle leaf's bytes) and `disclosures` exactly those of its hidden values the consumer may see (schema/VERIFYING.md); ETag (weak, of these bytes) and Last-Modified (the latest version shown), 304 on If-None-Match / If-Modified-Since"),
              (status = 404, description = "no such record, or not visible to this consumer", content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn record(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (node_id, id) = path.into_inner();
    detail_response(state, req, "/v1/records", move |db, entitlements| {
        record_by_source(db, &node_id, &id, entitlements)
    })
    .await
}

/// [`record_detail`] of the entry that source `node_id/id` belongs to, or [`ApiError::NotFound`].
pub fn record_by_source(
    db: &Db,
    node_id: &str,
    id: &str,
    entitlements: Entitlements,
) -> Result<Value, ApiError> {
    // The source asked for must itself be one the consumer may know of: an internal record
    // merged into a public entry is as absent as any other internal record.
    let unified = catalogue::unified_id_of(&mut *db.conn()?, node_id, id, entitlements)?
        .ok_or(ApiError::NotFound)?;
    record_detail(db, &unified, entitlements)?.ok_or(ApiError::NotFound)
}

/// The record page of whatever entry `find` names, for this consumer, read off the async
/// threads and audited under `endpoint`.
async fn detail_response(
    state: State,
    req: HttpRequest,
    endpoint: &str,
    find: impl FnOnce(&Db, Entitlements) -> Result<Value, ApiError> + Send + 'static,
) -> Result<HttpResponse, ApiError> {
    Params::parse(req.query_string())?.only(&[])?;
    let who = consumer(&state, &req)?;
    let st = state.clone();
    let entitlements = who.entitlements;
    let (detail, modified) = blocking(move || {
        let detail = find(&st.db, entitlements)?;
        let modified = last_modified_of(&st.db, &detail)?;
        Ok((detail, modified))
    })
    .await?;
    state
        .access
        .audit(&who, endpoint, detail["unified_id"].as_str().unwrap_or(""));
    let body = serde_json::to_vec(&detail).expect("a detail is JSON");
    Ok(representation::with_validators(
        &req,
        HttpResponse::Ok(),
        "application/json",
        body,
        modified.as_deref().and_then(representation::http_date),
    ))
}

/// When the entry last changed as this reader sees it: the latest application among the source
/// versions the detail shows (the sources they may see, and nothing else).
fn last_modified_of(db: &Db, detail: &Value) -> Result<Option<String>, ApiError> {
    let mut conn = db.conn()?;
    let mut latest: Option<String> = None;
    for source in detail["sources"].as_array().into_iter().flatten() {
        let (Some(node_id), Some(id), Some(version)) = (
            source["node_id"].as_str(),
            source["id"].as_str(),
            source["version"].as_i64(),
        ) else {
            continue;
        };
        let at: Option<String> = record_versions::table
            .find((node_id, id, version))
            .select(record_versions::applied_at)
            .first(&mut *conn)
            .optional()
            .map_err(StoreError::from)?;
        // RFC 3339 in UTC with a fixed form: the text orders as the time.
        if at.as_deref() > latest.as_deref() {
            latest = at;
        }
    }
    Ok(latest)
}

/// `GET /v1/entries/{unified_id}`: a unified entry by its name (as search, the change feed and
/// exports give it).
#[utoipa::path(get, path = "/v1/entries/{unified_id}",
    params(("unified_id" = String, Path, description = "the entry's opaque name (`u` and 24 hex digits)")),
    responses((status = 200, description = "the same document as `GET /v1/records/{node_id}/{id}`, with the same validators"),
              (status = 404, description = "no such entry, or not visible to this consumer", content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn entry(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let unified_id = path.into_inner();
    detail_response(state, req, "/v1/entries", move |db, entitlements| {
        record_detail(db, &unified_id, entitlements)?.ok_or(ApiError::NotFound)
    })
    .await
}

fn int_param(
    query: &HashMap<String, String>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    rix_runtime::query::int_in_range(query, name, default, range)
        .map_err(|message| ApiError::bad(name, message))
}

/// `GET /v1/changes?after=&limit=&kind=&node=`: every change the consumer may see, in order,
/// as JSON Lines. A change shows the entry as it is now: `upsert` with the visible record, or
/// `remove` when it is withdrawn everywhere or no longer visible to this consumer — so a
/// ministry that follows the feed from 0 ends with exactly the catalogue it may see. Changes
/// to source records the consumer could never see (before or after the change) are not
/// listed at all: no ids, versions, merges or removals of what they may not know of. A change that
/// moved a record from one entry to another gives two lines with the same `cursor`: the
/// entry it left first, then the one it joined; `limit` counts changes, not lines.
#[utoipa::path(get, path = "/v1/changes",
    params(("after" = Option<String>, Query, description = "where the previous page ended: its X-Rix-Next-After (or a line's `cursor`), sealed — positions carry no change id; 0 or absent: from the start"),
           ("limit" = Option<i64>, Query, description = "1–10000, default 1000"),
           ("kind" = Option<String>, Query, description = "achievement or funded_project"),
           ("node" = Option<String>, Query, description = "only changes published by this node"),
           ("fields" = Option<String>, Query, description = "comma-separated top-level record fields to keep in each line's `record` (as GET /v1 lists them); absent: all")),
    responses((status = 200, content_type = "application/x-ndjson", description = "header Link: <…>; rel=\"next\" (this request with `after` moved on); one line per entry a change touched (two when a record moved between entries): `{cursor, op: upsert|remove, unified_id, kind, node_id, id, version, record?}` (`cursor`: the sealed position after this change); header X-Rix-Next-After (the sealed position to pass as `after`; the same as sent when nothing new is visible); RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers-06)"),
              (status = 400, description = "bad parameter, named in errors[].pointer", content_type = "application/problem+json"),
              (status = 429, description = "over this client's rate, or every slot for the feed busy: Retry-After (seconds) and the RateLimit-* headers", content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn changes(
    state: State,
    req: HttpRequest,
    query: Params,
) -> Result<HttpResponse, ApiError> {
    let who = consumer(&state, &req)?;
    query.only(&["after", "limit", "kind", "node", "fields"])?;
    let fields = FieldSelection::parse(query.get("fields"), &representation::record_fields())?;
    // A position leaves and comes back sealed (CursorSeal): "0" or nothing is the start.
    let after = match query
        .get("after")
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
    {
        None | Some("0") => 0,
        Some(token) => state
            .access
            .cursor_seal()?
            .open_position(token)
            .map_err(|e| {
                ApiError::bad(
                    "after",
                    format!("{e}: pass the X-Rix-Next-After of the previous page, or 0"),
                )
            })?,
    };
    let limit = int_param(&query, "limit", 1000, 1..=10_000)?;
    let kind = match query.get("kind").filter(|v| !v.is_empty()) {
        None => None,
        Some(k) => Some(
            kind_of(k)
                .ok_or_else(|| ApiError::bad("kind", "must be achievement or funded_project"))?,
        ),
    };
    let node = query.get("node").filter(|v| !v.is_empty()).cloned();
    let admission = admit(&req, Heavy::Changes).await?;
    let st = state.clone();
    let entitlements = who.entitlements;
    let (body, next) = blocking(move || {
        let seal = st.access.cursor_seal()?;
        let reading = catalogue::Reading::for_reader(entitlements);
        let mut conn = st.db.conn()?;
        let mut out = Vec::new();
        // `scanned` walks every change; `position`, what the reader gets back, moves only past
        // changes they may see (filtered out by kind or node or not): moved past a hidden
        // change, the sealed position would change with it, and polling the feed would count
        // the hidden changes. Trailing hidden changes are read again on the next call.
        let (mut scanned, mut position) = (after, after);
        let mut emitted = 0;
        while emitted < limit {
            let page = catalogue::changes_after(&mut conn, scanned, 1000)?;
            if page.is_empty() {
                break;
            }
            for change in page {
                scanned = change.change_id;
                // A change to a source this consumer could never see alters nothing they
                // see: they are not told of it, not even as a removal.
                if !change.visible_to(entitlements) {
                    continue;
                }
                position = change.change_id;
                if kind.is_some_and(|k| k.as_str() != change.kind)
                    || node.as_deref().is_some_and(|n| n != change.node_id)
                {
                    continue;
                }
                let sealed = seal.seal_position(change.change_id);
                // A change that moved the record names the entry it left too: that entry lost
                // a source (and maybe its content), so the follower hears about both — each
                // side only if they could see the source on that side. A record made public
                // that leaves its internal entry must not name that entry, even as a removal;
                // one made internal that joins an internal entry must not name that one.
                let (left, joined) = match change.moved_from {
                    Some(_) => {
                        let mut may_see = |before: bool| -> Result<bool, ApiError> {
                            let level = catalogue::level_as_of(
                                &mut conn,
                                &change.node_id,
                                &change.id,
                                change.version,
                                before,
                            )?;
                            Ok(level
                                .as_deref()
                                .and_then(rix_schema::SecrecyLevel::parse)
                                .is_some_and(|l| entitlements.may_see(l)))
                        };
                        (may_see(true)?, may_see(false)?)
                    }
                    None => (false, true),
                };
                let heard = change
                    .moved_from
                    .as_deref()
                    .filter(|_| left)
                    .into_iter()
                    .chain(Some(change.unified_id.as_str()).filter(|_| joined));
                for unified_id in heard {
                    let current = catalogue::unified_reading(&mut conn, unified_id, reading)?;
                    let view = current.as_ref().and_then(|u| {
                        let k = kind_of(&u.kind)?;
                        u.record_for(entitlements)
                            .and_then(|r| AccessFilter::view(k, r, entitlements))
                    });
                    let mut line = json!({
                        "cursor": sealed,
                        "op": if view.is_some() { "upsert" } else { "remove" },
                        "unified_id": unified_id,
                        "kind": change.kind, "node_id": change.node_id, "id": change.id,
                        "version": change.version,
                    });
                    if let Some(mut record) = view {
                        fields.retain(&mut record, &[]);
                        line["record"] = record;
                    }
                    out.extend_from_slice(line.to_string().as_bytes());
                    out.push(b'\n');
                }
                emitted += 1;
                if emitted >= limit {
                    break;
                }
            }
        }
        Ok((out, seal.seal_position(position)))
    })
    .await?;
    state
        .access
        .audit(&who, "/v1/changes", &format!("after={after}"));
    // The feed has no last page: the next one may be empty now and hold changes later.
    let link = representation::next_link(&req, "after", &next);
    Ok(with_rate(
        admission.as_ref(),
        HttpResponse::Ok()
            .content_type("application/x-ndjson; charset=utf-8")
            .insert_header(("X-Rix-Next-After", next))
            .insert_header((header::LINK, link))
            .body(body),
    ))
}

/// The search filters, as `/v1/search`, the exports and the portal's search page take them (a
/// page's URL holds them in this order, which is the order its chips show).
pub const SEARCH_FILTERS: [&str; 12] = [
    "q",
    "kind",
    "region",
    "field",
    "category",
    "program",
    "trl_min",
    "year_from",
    "year_to",
    "transfer_mode",
    "node",
    "sort",
];

/// Reads the search parameters of DESIGN.md §9, naming the parameter that is wrong.
pub fn search_query(query: &HashMap<String, String>) -> Result<SearchQuery, ApiError> {
    let text = |name: &str| query.get(name).filter(|v| !v.is_empty()).cloned();
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        match text(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| ApiError::bad(name, format!("must be a whole number, got {v:?}"))),
        }
    };
    let known: Vec<&str> = SEARCH_FILTERS
        .into_iter()
        .chain(["limit", "cursor", "format", "by", "fields"])
        .collect();
    if let Some(unknown) = query.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::bad(
            unknown,
            format!("unknown parameter; known: {}", known.join(", ")),
        ));
    }
    Ok(SearchQuery {
        q: text("q"),
        kind: text("kind"),
        region: text("region"),
        field: text("field"),
        category: text("category"),
        program: text("program"),
        trl_min: number("trl_min")?,
        year_from: number("year_from")?,
        year_to: number("year_to")?,
        transfer_mode: text("transfer_mode"),
        node: text("node"),
        sort: match text("sort").as_deref() {
            None | Some("relevance") => Sort::Relevance,
            Some("date") => Sort::Date,
            Some(other) => {
                return Err(ApiError::bad(
                    "sort",
                    format!("relevance or date, got {other:?}"),
                ));
            }
        },
        limit: number("limit")?.map_or(crate::search::DEFAULT_LIMIT, |l| l as usize),
        cursor: text("cursor"),
        facets: true,
    })
}

/// `GET /v1/search`: full text (Chinese and English), filters, facets, highlights, cursor
/// pagination. Only what the consumer may see is matched, counted and highlighted. Pages after
/// the first (with a `cursor`) are heavy: bounded and rate-limited per client
/// ([`crate::limits`]).
#[utoipa::path(get, path = "/v1/search",
    params(("q" = Option<String>, Query, description = "full text; every term must match"),
           ("kind" = Option<String>, Query), ("region" = Option<String>, Query), ("field" = Option<String>, Query),
           ("category" = Option<String>, Query), ("program" = Option<String>, Query),
           ("trl_min" = Option<u64>, Query), ("year_from" = Option<u64>, Query), ("year_to" = Option<u64>, Query),
           ("transfer_mode" = Option<String>, Query), ("node" = Option<String>, Query),
           ("sort" = Option<String>, Query, description = "relevance (default; without q every score is equal and the order is that of date) or date (newest first)"),
           ("limit" = Option<u64>, Query, description = "1–100, default 20"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
           ("fields" = Option<String>, Query, description = "comma-separated fields of each item to keep (unified_id always stays); absent: all")),
    responses((status = 200, description = "header Link: <…>; rel=\"next\" unless this is the last page; `{total, items: [{unified_id, kind, title, year, region, secrecy, score, highlights}], facets, next_cursor}`; a page with a cursor carries RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers-06)"),
              (status = 400, description = "bad parameter (also: not UTF-8, a control character, or given twice), named in errors[].pointer", content_type = "application/problem+json"),
              (status = 429, description = "a page with a cursor over this client's rate, or every slot for such pages busy: Retry-After (seconds) and the RateLimit-* headers", content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn search(
    state: State,
    req: HttpRequest,
    query: Params,
) -> Result<HttpResponse, ApiError> {
    let who = consumer(&state, &req)?;
    let q = search_query(&query)?;
    // A page after the first is heavy: bounded and rate-limited (DESIGN.md §6).
    let admission = match q.cursor {
        Some(_) => admit(&req, Heavy::SearchPages).await?,
        None => None,
    };
    let st = state.clone();
    let entitlements = who.entitlements;
    let fields = FieldSelection::parse(query.get("fields"), &representation::HIT_FIELDS)?;
    let page = blocking(move || Ok(st.search.search(&q, entitlements)?)).await?;
    state.access.audit(&who, "/v1/search", req.query_string());
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = &page.next_cursor {
        response.insert_header((
            header::LINK,
            representation::next_link(&req, "cursor", cursor),
        ));
    }
    let mut body = serde_json::to_value(&page).expect("a page is JSON");
    for item in body["items"].as_array_mut().into_iter().flatten() {
        fields.retain(item, &["unified_id"]);
    }
    Ok(with_rate(admission.as_ref(), response.json(body)))
}

/// `GET /v1/stats?by=region|year|field|program|category` (and any search filter): how many
/// visible entries have each value.
#[utoipa::path(get, path = "/v1/stats",
    params(("by" = String, Query, description = "region, year, field, program, category, trl or transfer_mode")),
    responses((status = 200, description = "`{by, total, counts: [{value, count}]}`, with ETag (weak, of these bytes) and Last-Modified (the last change this reader may know of); 304 on If-None-Match / If-Modified-Since"),
              (status = 400, description = "bad parameter", content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn stats(
    state: State,
    req: HttpRequest,
    query: Params,
) -> Result<HttpResponse, ApiError> {
    let who = consumer(&state, &req)?;
    let by = query.get("by").cloned().unwrap_or_default();
    let mut q = search_query(&query)?;
    q.limit = 1;
    q.cursor = None;
    let st = state.clone();
    let entitlements = who.entitlements;
    let (page, modified) = blocking(move || {
        // The index's position first: the page read after it reflects at least that much, so
        // the date never claims more than the counts hold.
        let upto = st.search.cursor();
        let page = st.search.search(&q, entitlements)?;
        let modified = catalogue::last_visible_change_at(&mut *st.db.conn()?, upto, entitlements)?;
        Ok((page, modified))
    })
    .await?;
    let f = &page.facets;
    let counts = match by.as_str() {
        "region" => &f.region,
        "year" => &f.year,
        "field" => &f.field,
        "program" => &f.program,
        "category" => &f.category,
        "trl" => &f.trl,
        "transfer_mode" => &f.transfer_mode,
        other => {
            return Err(ApiError::bad(
                "by",
                format!("one of {}; got {other:?}", STATS_BY.join(", ")),
            ));
        }
    };
    state.access.audit(&who, "/v1/stats", req.query_string());
    let body = json!({"by": by, "total": page.total, "counts": counts}).to_string();
    Ok(representation::with_validators(
        &req,
        HttpResponse::Ok(),
        "application/json",
        body.into_bytes(),
        modified.as_deref().and_then(representation::http_date),
    ))
}

/// What `/v1/stats` counts by.
pub const STATS_BY: [&str; 7] = [
    "region",
    "year",
    "field",
    "program",
    "category",
    "trl",
    "transfer_mode",
];

/// Columns of the CSV export, from the visible record.
const CSV_COLUMNS: [&str; 12] = [
    "unified_id",
    "kind",
    "title",
    "category",
    "keywords",
    "institutions",
    "region",
    "program",
    "project_no",
    "registration_no",
    "trl",
    "year",
];

fn csv_row(
    unified_id: &str,
    kind: &str,
    view: &Value,
    year: Option<u64>,
    region: Option<&str>,
) -> Vec<String> {
    let s = |p: &str| {
        view.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let joined = |p: &str, field: Option<&str>| {
        view.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| match field {
                        Some(f) => v.get(f).and_then(Value::as_str),
                        None => v.as_str(),
                    })
                    .collect::<Vec<_>>()
                    .join("；")
            })
            .unwrap_or_default()
    };
    let institutions = if kind == RecordKind::FundedProject.as_str() {
        s("/lead/name")
    } else {
        joined("/institutions", Some("name"))
    };
    let program = if kind == RecordKind::FundedProject.as_str() {
        s("/program")
    } else {
        joined("/funding", Some("program"))
    };
    let project_no = if kind == RecordKind::FundedProject.as_str() {
        s("/project_no")
    } else {
        joined("/funding", Some("project_no"))
    };
    vec![
        unified_id.to_owned(),
        kind.to_owned(),
        s("/title"),
        s("/category"),
        joined("/keywords", None),
        institutions,
        region.unwrap_or("").to_owned(),
        program,
        project_no,
        s("/registration_no"),
        view.get("trl").map(|t| t.to_string()).unwrap_or_default(),
        year.map(|y| y.to_string()).unwrap_or_default(),
    ]
}

/// What makes a spreadsheet read a cell as a formula when the cell begins with it: OWASP's
/// CSV Injection list — `=`, `+`, `-`, `@`, tab (0x09), carriage return (0x0D) — and NUL,
/// which OWASP ASVS 5.0 (V1.2.10) adds to it.
const FORMULA_TRIGGERS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\0'];

/// One cell as a spreadsheet must read it: as text, never as a formula. This follows OWASP's
/// CSV Injection guidance exactly:
/// - a cell that begins with one of [`FORMULA_TRIGGERS`] gets a single quote (`'`) in front
///   (`=HYPERLINK(…)` is exported as `'=HYPERLINK(…)`); the rest of the text is unchanged;
/// - the field separator and quotes cannot start a new cell inside the text: a cell holding
///   `,`, `;` (the separator Excel uses in many locales), tab, `"`, CR or LF is wrapped in
///   double quotes with every `"` doubled (RFC 4180).
///
/// One step beyond OWASP's list: a cell whose first character after leading whitespace
/// (spaces, U+3000 ideographic spaces…) is a trigger gets the quote too, because LibreOffice's
/// "trim spaces" import option strips the whitespace before it evaluates the cell.
///
/// Numbers: the export's numeric columns (`trl` 1–9 and `year`) are never negative, so no
/// number is altered; a cell such as a project number that begins with `-` is text and gets
/// the quote like any other.
fn csv_cell(text: &str) -> String {
    let trimmed =
        text.trim_start_matches(|c: char| c.is_whitespace() && !FORMULA_TRIGGERS.contains(&c));
    let neutralised = if text.starts_with(FORMULA_TRIGGERS) || trimmed.starts_with(FORMULA_TRIGGERS)
    {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if neutralised.contains([',', ';', '\t', '"', '\n', '\r']) {
        format!("\"{}\"", neutralised.replace('"', "\"\""))
    } else {
        neutralised
    }
}

/// One CSV line of spreadsheet-safe cells ([`csv_cell`]), CRLF-terminated.
pub(crate) fn csv_line(fields: &[String]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_cell(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// Entries an export reads from the catalogue at a time.
pub const EXPORT_PAGE: usize = 1000;

/// Rows an export reads from the index at a time (~100 bytes each).
const EXPORT_ROWS: usize = 16 * EXPORT_PAGE;

/// How an export writes its lines: the format, the columns or fields asked for, and the reader.
struct ExportRender {
    csv: bool,
    columns: Vec<usize>,
    fields: FieldSelection,
    entitlements: Entitlements,
}

/// One JSON line of an export, members in the order `json!` gave them (sorted), so that the
/// bytes do not depend on how the line is built.
#[derive(serde::Serialize)]
struct ExportLine<'a> {
    kind: &'a str,
    record: &'a Value,
    unified_id: &'a str,
}

impl ExportRender {
    /// Writes every match, a page at a time, handing each page's lines to `emit` (which says
    /// whether the reader still wants more), in the order of the matches.
    ///
    /// Reading a page's entries (the statements, parsing each signed entry, putting its
    /// disclosures back), cutting the views and writing them cost tens of microseconds a record,
    /// so pages are written by up to [`export_writers`] threads at once, each taking the next
    /// page as it is done with its last, on its own connection (the first always; the others
    /// only when the pool can spare one, see [`EXPORT_KEEPS_IDLE`]); this thread reads the
    /// rows, hands out the pages and passes their lines on in order. Writers do not wait for
    /// each other: while one waits for the database to answer, another writes — a page cut in
    /// parts for all of them at once, joined before the next, left a quarter of both cores idle
    /// on PostgreSQL.
    /// The writers live as long as the export: a thread per page leaves an allocator heap behind
    /// each time (the gateway's RSS reached 1.1 GB over a 1 M export that way).
    fn pages(
        &self,
        db: &Db,
        matches: &crate::search::Matches,
        mut emit: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<(), String> {
        let writers = export_writers();
        let page_lines =
            |conn: &mut crate::db::DbConn, rows: &[MatchRow]| -> Result<Vec<u8>, String> {
                let ids: Vec<&str> = rows.iter().map(|r| r.unified_id.as_str()).collect();
                let reading = catalogue::Reading::for_reader(self.entitlements);
                let mut entries = catalogue::unified_many_reading(conn, &ids, reading)
                    .map_err(|e| e.to_string())?;
                let mut page: Vec<(&MatchRow, Option<catalogue::Unified>)> = rows
                    .iter()
                    .map(|row| (row, entries.remove(&row.unified_id)))
                    .collect();
                Ok(self.lines(&mut page))
            };
        let page_lines = &page_lines;
        let stopped = || "an export writer stopped".to_owned();
        let (job_tx, job_rx) = std::sync::mpsc::channel::<(usize, Vec<MatchRow>)>();
        let job_rx = std::sync::Mutex::new(job_rx);
        let (out_tx, out_rx) = std::sync::mpsc::channel::<(usize, Result<Vec<u8>, String>)>();
        std::thread::scope(|scope| {
            for writer in 0..writers {
                let (job_rx, out_tx) = (&job_rx, out_tx.clone());
                scope.spawn(move || {
                    // Each writer holds one connection for the whole export: taking one from
                    // the pool per page warmed every pooled connection's page cache in turn
                    // (64 MiB each on SQLite). The first waits for its connection; the others
                    // write only with connections the pool can spare, so that exports never
                    // hold the ones ingest and readers need.
                    let mut conn = if writer == 0 {
                        match db.conn() {
                            Ok(conn) => conn,
                            Err(e) => {
                                let _ = out_tx.send((usize::MAX, Err(e.to_string())));
                                return;
                            }
                        }
                    } else {
                        match db.spare_conn(EXPORT_KEEPS_IDLE) {
                            Some(conn) => conn,
                            None => return,
                        }
                    };
                    loop {
                        let job = job_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((seq, rows)) = job else { return };
                        if out_tx.send((seq, page_lines(&mut conn, &rows))).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(out_tx);
            let handed_out = (|| {
                // The rows (unified ids from the index's compressed dictionary) are read
                // [`EXPORT_ROWS`] at a time: a page's thousand ids in date order lie in nearly
                // as many dictionary blocks, each opened with its own decompressor, so a larger
                // window opens each block once for many pages (6 % of an export's CPU, page by
                // page).
                let mut window: std::vec::IntoIter<MatchRow> = Vec::new().into_iter();
                let mut next_row = 0;
                let (mut handed, mut emitted) = (0usize, 0usize);
                let mut written: std::collections::BTreeMap<usize, Vec<u8>> = Default::default();
                loop {
                    // Two pages a writer at most on their way: the memory an export holds
                    // stays a few pages whatever its size.
                    while (window.len() > 0 || next_row < matches.len())
                        && handed - emitted < 2 * writers
                    {
                        if window.len() == 0 {
                            window = matches
                                .rows(next_row..next_row + EXPORT_ROWS)
                                .map_err(|e| e.to_string())?
                                .into_iter();
                            next_row += EXPORT_ROWS;
                            continue;
                        }
                        // An entry gone since the pass matched it is left out; a failing read
                        // ends the stream with an error rather than a silently shorter file.
                        let rows: Vec<MatchRow> = window.by_ref().take(EXPORT_PAGE).collect();
                        job_tx.send((handed, rows)).map_err(|_| stopped())?;
                        handed += 1;
                    }
                    if emitted == handed {
                        return Ok(());
                    }
                    let (seq, lines) = out_rx.recv().map_err(|_| stopped())?;
                    written.insert(seq, lines?);
                    while let Some(lines) = written.remove(&emitted) {
                        emitted += 1;
                        if !lines.is_empty() && !emit(lines) {
                            return Ok(());
                        }
                    }
                }
            })();
            // No more pages: the writers end once they are done with theirs.
            drop(job_tx);
            handed_out
        })
    }

    fn lines(&self, chunk: &mut [(&MatchRow, Option<catalogue::Unified>)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() * 1024);
        for (row, entry) in chunk {
            let Some(u) = entry.take() else { continue };
            let Some(kind) = kind_of(&u.kind) else {
                continue;
            };
            let kind_name = u.kind.clone();
            let Some(mut view) = u
                .into_record_for(self.entitlements)
                .and_then(|r| AccessFilter::view_owned(kind, r, self.entitlements))
            else {
                continue;
            };
            if self.csv {
                let mut cells = csv_row(
                    &row.unified_id,
                    &kind_name,
                    &view,
                    row.year,
                    row.region.as_deref(),
                );
                let cells: Vec<String> = self
                    .columns
                    .iter()
                    .map(|&i| std::mem::take(&mut cells[i]))
                    .collect();
                out.extend(csv_line(&cells).into_bytes());
            } else {
                self.fields.retain(&mut view, &[]);
                let line = ExportLine {
                    kind: &kind_name,
                    record: &view,
                    unified_id: &row.unified_id,
                };
                // Writing a `Value` to a `Vec` cannot fail.
                let _ = serde_json::to_writer(&mut out, &line);
                out.push(b'\n');
            }
        }
        out
    }
}

/// Most threads one export writes its lines with: exports are admitted a few at a time
/// ([`crate::limits`]), and each should leave cores to the rest of the gateway.
const EXPORT_THREADS: usize = 4;

/// Connections an export's extra writers leave idle in the pool: enough for the ingest's
/// writes, a change feed page and record pages while exports run.
const EXPORT_KEEPS_IDLE: u32 = 3;

/// Threads one export writes its pages with, each holding a connection: as many as the
/// machine has cores, at least two (so that one writes while the other waits for the
/// database) and at most [`EXPORT_THREADS`].
fn export_writers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(2, EXPORT_THREADS)
}

/// `GET /v1/export?format=csv|jsonl&<search filters>`: every visible match, streamed. CSV is
/// UTF-8 with a byte-order mark so that Excel opens Chinese text correctly, and safe to open
/// in a spreadsheet (OWASP's CSV Injection guidance, see `csv_cell`): a cell that begins with
/// `=`, `+`, `-`, `@`, tab, carriage return or NUL — also after leading whitespace — is
/// prefixed with `'`, and a cell holding `,` `;` tab `"` or a line break is quoted. Exports are
/// heavy: bounded and rate-limited per client ([`crate::limits`]); the slot is held until the
/// last byte is sent.
#[utoipa::path(get, path = "/v1/export",
    params(("format" = String, Query, description = "csv or jsonl"),
           ("q" = Option<String>, Query, description = "and every filter of /v1/search"),
           ("fields" = Option<String>, Query, description = "csv: which columns, in this order; jsonl: which top-level record fields to keep; absent: all")),
    responses((status = 200, description = "text/csv (UTF-8 with BOM) or application/x-ndjson, streamed. CSV is safe to open in a spreadsheet, following OWASP's CSV Injection guidance: a cell that begins with `=`, `+`, `-`, `@`, tab, carriage return or NUL (also after leading whitespace) is prefixed with a single quote `'` (the text after it is unchanged; the numeric columns trl and year are never negative, so no number is altered), and a cell holding `,` `;` tab `\"` or a line break is wrapped in double quotes with `\"` doubled. Headers RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers-06)."),
              (status = 400, description = "bad parameter", content_type = "application/problem+json"),
              (status = 429, description = "over this client's export rate, or every export slot busy: Retry-After (seconds) and the RateLimit-* headers", content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn export(
    state: State,
    req: HttpRequest,
    query: Params,
) -> Result<HttpResponse, ApiError> {
    let who = consumer(&state, &req)?;
    let csv = match query.get("format").map(String::as_str) {
        Some("csv") => true,
        Some("jsonl") => false,
        other => {
            return Err(ApiError::bad(
                "format",
                format!("csv or jsonl, got {:?}", other.unwrap_or("")),
            ));
        }
    };
    let mut q = search_query(&query)?;
    q.cursor = None;
    q.facets = false;
    // CSV: which columns, in the order asked; JSON Lines: which fields of each record.
    let fields = if csv {
        FieldSelection::parse(query.get("fields"), &CSV_COLUMNS)?
    } else {
        FieldSelection::parse(query.get("fields"), &representation::record_fields())?
    };
    let columns: Vec<usize> = fields
        .names_or(&CSV_COLUMNS)
        .iter()
        .filter_map(|name| CSV_COLUMNS.iter().position(|c| c == name))
        .collect();
    // Held by the producer and the response stream alike: the slot is free once both are done
    // (the last byte sent, or the reader gone and the producer stopped).
    let admission = std::sync::Arc::new(admit(&req, Heavy::Export).await?);
    // The one pass over the index, before the first byte: bad parameters are refused here, and
    // the export lists exactly the entries that matched now, each once.
    let st = state.clone();
    let entitlements = who.entitlements;
    let matches = blocking(move || Ok(st.search.matches(&q, entitlements)?)).await?;
    state.access.audit(&who, "/v1/export", req.query_string());

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(4);
    let st = state.clone();
    let producing = admission.clone();
    let render = ExportRender {
        csv,
        columns,
        fields,
        entitlements,
    };
    tokio::task::spawn_blocking(move || {
        let _slot = producing;
        let send = |bytes: Vec<u8>| tx.blocking_send(Ok(web::Bytes::from(bytes))).is_ok();
        let fail = |e: String| {
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        };
        if csv {
            let mut head = vec![0xEF, 0xBB, 0xBF];
            let names: Vec<String> = render
                .columns
                .iter()
                .map(|&i| CSV_COLUMNS[i].to_owned())
                .collect();
            head.extend(csv_line(&names).into_bytes());
            if !send(head) {
                return;
            }
        }
        // The pages' entries in a few statements each (not a record page each: sources,
        // proofs and links are not exported), each record through the access filter, as of
        // now.
        if let Err(e) = render.pages(&st.db, &matches, send) {
            fail(e);
        }
    });
    let rate = (*admission).as_ref().map(Admission::headers);
    let stream = futures_util::stream::unfold((rx, admission), |(mut rx, slot)| async move {
        rx.recv().await.map(|item| (item, (rx, slot)))
    });
    let mut response = HttpResponse::Ok();
    for h in rate.unwrap_or_default() {
        response.insert_header(h);
    }
    Ok(response
        .content_type(if csv {
            "text/csv; charset=utf-8"
        } else {
            "application/x-ndjson; charset=utf-8"
        })
        .insert_header((
            header::CONTENT_DISPOSITION,
            if csv {
                "attachment; filename=\"rix-export.csv\""
            } else {
                "attachment; filename=\"rix-export.jsonl\""
            },
        ))
        .streaming(stream))
}

/// The OpenAPI 3.1 document of the gateway, generated from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "rix gateway API", description = "The national catalogue's read APIs (DESIGN.md §9). Anonymous callers read as `public`; bearer tokens carry entitlements."),
    paths(discovery, record, entry, changes, search, stats, export,
          crate::portal::search_page, crate::portal::record_page, crate::portal::entry_page,
          crate::portal::stats_page, crate::portal::stats_csv, crate::portal::about_page,
          crate::oai::get, crate::oai::post,
          crate::snapshot::list_snapshots, crate::snapshot::download),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(<ApiDoc as utoipa::OpenApi>::openapi())
}

/// The discovery document: every endpoint with its methods and summary, taken from the OpenAPI
/// document (so the two cannot disagree), and what search, export and the change feed accept —
/// the filters, the sort keys, the facets, the fields `fields=` may name — taken from the code
/// that reads them.
pub fn discovery_document() -> Value {
    let doc = <ApiDoc as utoipa::OpenApi>::openapi();
    let endpoints: Vec<Value> = doc
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let operations = [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("DELETE", &item.delete),
            ];
            let methods: Vec<&str> = operations
                .iter()
                .filter(|(_, op)| op.is_some())
                .map(|(m, _)| *m)
                .collect();
            let summary = operations
                .iter()
                .find_map(|(_, op)| op.as_ref())
                .and_then(|op| op.summary.clone().or_else(|| op.description.clone()));
            json!({"path": path, "methods": methods, "summary": summary})
        })
        .collect();
    let facets = serde_json::to_value(crate::search::Facets::default()).expect("facets are JSON");
    let facet_names: Vec<&String> = facets
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .collect();
    json!({
        "api": "rix gateway",
        "openapi": "/openapi.json",
        "endpoints": endpoints,
        "search": {
            "path": "/v1/search",
            "filters": SEARCH_FILTERS.iter().filter(|f| **f != "sort").collect::<Vec<_>>(),
            "sort": ["relevance", "date"],
            "facets": facet_names,
            "fields": representation::HIT_FIELDS,
            "limit": {"default": crate::search::DEFAULT_LIMIT, "max": crate::search::MAX_LIMIT},
        },
        "stats": {"path": "/v1/stats", "by": STATS_BY},
        "export": {"path": "/v1/export", "formats": ["csv", "jsonl"],
                   "csv_columns": CSV_COLUMNS, "record_fields": representation::record_fields()},
        "changes": {"path": "/v1/changes", "record_fields": representation::record_fields()},
    })
}

/// `GET /v1`: [`discovery_document`].
#[utoipa::path(get, path = "/v1",
    responses((status = 200, description = "`{endpoints: [{path, methods, summary}], search: {filters, sort, facets, fields, limit}, stats: {by}, export: {formats, csv_columns, record_fields}, changes: {record_fields}, openapi}` — generated from the OpenAPI document and the code that reads the parameters")))]
pub async fn discovery(req: HttpRequest) -> HttpResponse {
    representation::with_validators(
        &req,
        HttpResponse::Ok(),
        "application/json",
        discovery_document().to_string().into_bytes(),
        None,
    )
}

/// Registers the read routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let query_errors = web::QueryConfig::default().error_handler(|err, _| {
        ApiError::BadParameter {
            pointer: "/query".into(),
            message: err.to_string(),
        }
        .into()
    });
    cfg.app_data(query_errors)
        .route("/v1/records/{node_id}/{id}", web::get().to(record))
        .route("/v1/entries/{unified_id}", web::get().to(entry))
        .route("/v1/changes", web::get().to(changes))
        .route("/v1/search", web::get().to(search))
        .route("/v1/stats", web::get().to(stats))
        .route("/v1/export", web::get().to(export))
        .route("/v1", web::get().to(discovery))
        .route("/openapi.json", web::get().to(openapi));
}

/// Counts rows of the read audit (tests, operators).
pub fn audit_count(db: &Db) -> Result<i64, StoreError> {
    use crate::db::schema::read_audit;
    Ok(read_audit::table.count().get_result(&mut *db.conn()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_would_begin_a_formula_get_a_quote() {
        for (text, cell) in [
            ("=1+1", "'=1+1"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "\"'\t=1\""),
            ("\r=1", "\"'\r=1\""),
            ("\0=1", "'\0=1"),
            (" =1", "' =1"),
            ("\u{3000}+1", "'\u{3000}+1"),
            ("=A1,B1", "\"'=A1,B1\""),
            ("=A1;B1", "\"'=A1;B1\""),
            ("=\"x\"", "\"'=\"\"x\"\"\""),
            ("锂电池=储能", "锂电池=储能"),
            ("a-b", "a-b"),
            ("  plain", "  plain"),
            ("", ""),
            ("2019", "2019"),
        ] {
            assert_eq!(csv_cell(text), cell, "{text:?}");
        }
    }

    #[test]
    fn query_strings_are_decoded_strictly() {
        let p = Params::parse("q=%E7%94%B5%E6%B1%A0+a&&limit=5&empty&x=").unwrap();
        assert_eq!(p["q"], "电池 a");
        assert_eq!(p["limit"], "5");
        assert_eq!(p["empty"], "");
        assert_eq!(p["x"], "");
        let pointer = |q: &str| match Params::parse(q) {
            Err(ApiError::BadParameter { pointer, .. }) => pointer,
            other => panic!("{q}: {other:?}"),
        };
        assert_eq!(pointer("q=%FF%FE"), "/query/q");
        assert_eq!(pointer("a=1&q=%C3"), "/query/q");
        assert_eq!(pointer("q=%G1"), "/query/q");
        assert_eq!(pointer("q=%7"), "/query/q");
        assert_eq!(pointer("q=%7F"), "/query/q");
        assert_eq!(pointer("q=%C2%85"), "/query/q", "C1 control NEL");
        assert_eq!(pointer("q=1&q=1"), "/query/q");
        assert_eq!(pointer("%71=1&q=2"), "/query/q", "the same name, escaped");
        assert_eq!(pointer("%FF=1"), "/query/%FF");
        assert_eq!(pointer("a%2Fb~c=%FF"), "/query/a~1b~0c");
        assert!(Params::parse("").unwrap().is_empty());
    }
}
