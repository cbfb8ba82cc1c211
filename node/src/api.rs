//! The node's HTTP API (DESIGN.md §9). Handlers only translate: they authenticate, read the
//! body, call the stage that does the work ([`crate::register`], [`crate::import`],
//! [`crate::review`], [`crate::outbox`]) on the blocking pool, and shape the answer. Every refusal is a
//! [`NodeError`] and reads as `application/problem+json`.
//!
//! What it may not touch: SQL, rules, signing and seqs. A handler holds no query of its own (it
//! takes a connection and calls a stage's function with it), judges no record (the stages and the
//! schema crate do), and never signs or numbers anything (the outbox does both). Requests stop
//! here: the stages know nothing of HTTP, only of [`NodeError`].

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use rix_runtime::health::LinkState;
use rix_schema::codes::Issuer;
use rix_schema::signing::SigningKey;
use rix_schema::{FieldError, RecordKind};
use serde_json::{Value, json};
use tokio::sync::Notify;
use utoipa::OpenApi;

use crate::auth::{Principal, TokenTable};
use crate::db::Db;
use crate::error::{NodeError, Problem};
use crate::import;
use crate::metrics::Metrics;
use crate::outbox::{self, LogState};
use crate::register::{self, Idempotency, ListQuery, RecordPage, RecordView};
use crate::review;

/// Everything a handler needs, shared by all workers.
pub struct AppState {
    /// Storage.
    pub db: Db,
    /// This node's id.
    pub node_id: String,
    /// Display name.
    pub node_name: Option<String>,
    /// Registration-number issuer.
    pub issuer: Issuer,
    /// Bearer tokens.
    pub tokens: TokenTable,
    /// The signing key (its public half is served at `/v1/keys`).
    pub key: Arc<SigningKey>,
    /// Wakes the publisher after a commit that logged entries.
    pub wake: Arc<Notify>,
    /// Metrics.
    pub metrics: Metrics,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// The broker connection's health, when a broker is configured (for `/healthz`).
    pub broker: Option<rix_runtime::health::Link>,
}

type State = web::Data<AppState>;

fn kind_of(collection: &str) -> Result<RecordKind, NodeError> {
    match collection {
        "achievements" => Ok(RecordKind::Achievement),
        "projects" => Ok(RecordKind::FundedProject),
        other => Err(NodeError::NotFound {
            kind: "collection",
            id: other.to_owned(),
        }),
    }
}

fn principal(state: &AppState, req: &HttpRequest) -> Result<Principal, NodeError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state.tokens.authenticate(header)
}

/// Runs storage work on the blocking pool so actix workers never wait on the database.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    web::block(f)
        .await
        .map_err(|e| NodeError::Store(crate::db::StoreError::Task(e.to_string())))?
}

/// Reads a JSON body: content type, size limit, then strict JSON ([`rix_schema::strict_json`]:
/// UTF-8, syntax, no repeated key, bounded nesting), each with its own error and pointer.
async fn read_json(
    state: &AppState,
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<(Value, Vec<u8>), NodeError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(NodeError::UnsupportedMediaType(content_type.to_owned()));
    }
    let limit = state.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(NodeError::TooLarge { limit });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(4096).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            NodeError::BadJson(FieldError::new("", format!("reading the body failed: {e}")))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(NodeError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    // Strict: a repeated key (which serde_json would silently resolve to its last value), deep
    // nesting and invalid UTF-8 are refused with where they are, before anything reads the body.
    let value = rix_schema::strict_json::parse_value(&body)
        .map_err(|e| NodeError::BadJson(e.to_field_error()))?;
    Ok((value, body))
}

/// A POST to a collection (`/v1/{collection}`, `/batch`, `/import`), read as every one of them
/// reads it: the collection's kind, the caller, then the body ([`read_json`]) — in this order,
/// so an unknown collection is 404 and an unknown token 401 before any body is read.
struct Posted {
    kind: RecordKind,
    who: Principal,
    doc: Value,
    /// The body as sent (what an `Idempotency-Key` is bound to).
    body: Vec<u8>,
}

async fn read_post(
    state: &AppState,
    req: &HttpRequest,
    collection: &str,
    payload: web::Payload,
) -> Result<Posted, NodeError> {
    let kind = kind_of(collection)?;
    let who = principal(state, req)?;
    let (doc, body) = read_json(state, req, payload).await?;
    Ok(Posted {
        kind,
        who,
        doc,
        body,
    })
}

/// Adds `n` to a per-kind counter.
fn count(counter: &prometheus::IntCounterVec, kind: RecordKind, n: usize) {
    counter.with_label_values(&[kind.as_str()]).inc_by(n as u64);
}

fn idempotency(req: &HttpRequest, body: &[u8]) -> Result<Option<Idempotency>, NodeError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=200).contains(&k.len()))
        .ok_or_else(|| {
            NodeError::BadParameter(FieldError::new(
                "/headers/idempotency-key",
                "must be 1–200 visible ASCII characters",
            ))
        })?;
    let mut material = Vec::with_capacity(body.len() + 64);
    material.extend_from_slice(req.method().as_str().as_bytes());
    material.push(b' ');
    material.extend_from_slice(req.path().as_bytes());
    material.push(b'\n');
    material.extend_from_slice(body);
    Ok(Some(Idempotency {
        key: key.to_owned(),
        request_hash: rix_schema::canonical::sha256_hex(&material),
    }))
}

fn if_match(req: &HttpRequest) -> Result<Option<i64>, NodeError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            NodeError::BadParameter(FieldError::new(
                "/headers/if-match",
                "must be the record's version as sent in ETag, e.g. \"3\"",
            ))
        })
}

fn record_response(status: u16, body: Value) -> HttpResponse {
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK),
    );
    if let Some(version) = body.get("version").and_then(Value::as_i64) {
        response.insert_header((header::ETAG, format!("\"{version}\"")));
    }
    response.json(body)
}

fn view_response(view: RecordView) -> HttpResponse {
    record_response(200, serde_json::to_value(view).expect("view is JSON"))
}

fn query_i64(
    query: &HashMap<String, String>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, NodeError> {
    rix_runtime::query::int_in_range(query, name, default, range).map_err(|message| {
        NodeError::BadParameter(FieldError::new(format!("/query/{name}"), message))
    })
}

/// Registers a record (version 1, submitted for review).
#[utoipa::path(post, path = "/v1/{collection}",
    params(("collection" = String, Path, description = "`achievements` or `projects`"),
           ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first result")),
    request_body(content = Object, description = "an achievement or funded_project record (GET /v1/schema/{kind})"),
    responses((status = 201, body = RecordView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn submit(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, NodeError> {
    let post = read_post(&state, &req, &path, payload).await?;
    let (kind, idem) = (post.kind, idempotency(&req, &post.body)?);
    let st = state.clone();
    let (status, reply) =
        blocking(move || register::submit(&st.db, &post.who, kind, &post.doc, idem.as_ref()))
            .await?;
    count(&state.metrics.submissions, kind, 1);
    let mut response = record_response(status, reply.clone());
    if let Some(id) = reply.get("id").and_then(Value::as_str) {
        response.headers_mut().insert(
            header::LOCATION,
            header::HeaderValue::from_str(&format!("/v1/{}/{id}", path.as_str()))
                .expect("ids are ASCII"),
        );
    }
    Ok(response)
}

/// Registers many records in one transaction: all or none.
#[utoipa::path(post, path = "/v1/{collection}/batch",
    params(("collection" = String, Path, description = "`achievements` or `projects`")),
    request_body(content = Vec<Object>, description = "records; errors point at `/INDEX/...`"),
    responses((status = 201, description = "`{items: [{id, version, state}]}`"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn submit_batch(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, NodeError> {
    let post = read_post(&state, &req, &path, payload).await?;
    let Value::Array(docs) = post.doc else {
        return Err(NodeError::Invalid(
            vec![FieldError::new(
                "",
                "a batch submit is a JSON array of records",
            )]
            .into(),
        ));
    };
    let (kind, who, idem) = (post.kind, post.who, idempotency(&req, &post.body)?);
    let st = state.clone();
    let n = docs.len();
    let (status, reply) =
        blocking(move || register::submit_many(&st.db, &who, kind, &docs, idem.as_ref())).await?;
    count(&state.metrics.submissions, kind, n);
    Ok(HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK),
    )
    .json(reply))
}

/// Imports records that already exist elsewhere (存量数据导入: spreadsheets, exports, other
/// platforms, through `rix import`), item by item and idempotently by each item's `source_key`.
///
/// Body `{"items": [{"source_key": "…", "record": {…}, "registration_no": "…"?, "approve": bool?}]}`,
/// 1–1000 items. Not all or none: each item is registered or refused on its own, in one
/// transaction for the request. A `source_key` (1–512 characters, the row's identity in its
/// source) already imported returns the record it names with `duplicate: true` and changes
/// nothing; `changed` says whether the item differs from the one first imported (canonical
/// JSON), so edits in the source show without being applied. An item with `registration_no` (a
/// historical 批准登记号; administrators only; achievements only) is stored approved under that
/// number — this node's issuer code, a year not after this one, the flag of the record's
/// category, a serial above 0, a number no record here holds — and published like any approval
/// unless classified `secret` or above. `approve: true` (reviewers and administrators) approves a
/// new record at once, numbered as approval numbers it; otherwise it waits for review.
/// Submitters import their own institution's records for review.
///
/// 200 with one outcome per item, in order: `{index, source_key, id, version, state,
/// registration_no, published_version, duplicate, changed}` or `{index, source_key?, status,
/// errors: [{pointer, message}], errors_total}`, the pointers into the request
/// (`/items/3/record/title`, `/items/3/registration_no`) and `status` what the item alone would
/// have got: 422 invalid, 403 not allowed to this token (a number without an admin token,
/// `approve` with a submitter's, no `approve` with a reviewer's), 409 number or key taken. The
/// request as a whole is refused (problem+json) only when it is no import: not
/// `{"items": [...]}`, or 0 or more than 1000 items (422 at `/items`).
///
/// `Idempotency-Key` (optional; `rix import` sends one per request): a retry of the same
/// request under the same key gets the first answer word for word — items it registered are
/// `accepted` again, not `duplicate` — and changes nothing; the key with another body is 422.
#[utoipa::path(post, path = "/v1/{collection}/import",
    params(("collection" = String, Path, description = "`achievements` or `projects`"),
           ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer and applies nothing")),
    request_body(content = Object, description = "`{\"items\": [{\"source_key\": \"登记表2019.xlsx#5300002019Y0012\", \"record\": {…}, \"registration_no\": \"5300002019Y0012\", \"approve\": false}]}`, 1–1000 items"),
    responses((status = 200, body = import::ImportReport, description = "one outcome per item; `accepted + duplicates + refused` = items"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "not an import request")),
    security(("bearer" = [])))]
pub async fn import(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, NodeError> {
    let Posted {
        kind,
        who,
        doc,
        body,
    } = read_post(&state, &req, &path, payload).await?;
    let idem = idempotency(&req, &body)?;
    drop(body);
    let st = state.clone();
    let reply =
        blocking(move || import::import(&st.db, &st.issuer, &who, kind, doc, idem.as_ref()))
            .await?;
    let (report, stored) = match reply {
        import::ImportReply::Applied(report, stored) => (report, stored),
        // Nothing was applied again, so nothing is counted again.
        import::ImportReply::Replayed(stored) => {
            return Ok(HttpResponse::Ok()
                .content_type(header::ContentType::json())
                .body(stored));
        }
    };
    let m = &state.metrics;
    for (outcome, n) in [
        ("accepted", report.accepted),
        ("duplicate", report.duplicates),
        ("refused", report.refused),
    ] {
        m.import_items
            .with_label_values(&[kind.as_str(), outcome])
            .inc_by(n as u64);
    }
    count(&m.submissions, kind, report.accepted);
    count(&m.approvals, kind, report.approved);
    if report.approved > 0 {
        state.wake.notify_one();
    }
    Ok(match stored {
        // The body as stored for a retry, so that both answers are the same bytes.
        Some(body) => HttpResponse::Ok()
            .content_type(header::ContentType::json())
            .body(body),
        None => HttpResponse::Ok().json(report),
    })
}

/// Reads a record's latest version.
#[utoipa::path(get, path = "/v1/{collection}/{id}",
    params(("collection" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RecordView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_record(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NodeError> {
    let (collection, id) = path.into_inner();
    let kind = kind_of(&collection)?;
    let who = principal(&state, &req)?;
    let st = state.clone();
    let view = blocking(move || register::get(&st.db, &who, kind, &id)).await?;
    Ok(view_response(view))
}

/// Files a revision (a new version, submitted for review). Requires `If-Match`.
#[utoipa::path(put, path = "/v1/{collection}/{id}",
    params(("collection" = String, Path), ("id" = String, Path),
           ("If-Match" = String, Header, description = "the version being revised, as in ETag")),
    request_body(content = Object),
    responses((status = 200, body = RecordView), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 428, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn revise(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, NodeError> {
    let (collection, id) = path.into_inner();
    let kind = kind_of(&collection)?;
    let who = principal(&state, &req)?;
    let expected = if_match(&req)?.ok_or(NodeError::PreconditionRequired)?;
    let (doc, body) = read_json(&state, &req, payload).await?;
    let idem = idempotency(&req, &body)?;
    let st = state.clone();
    let (status, reply) =
        blocking(move || register::revise(&st.db, &who, kind, &id, expected, &doc, idem.as_ref()))
            .await?;
    count(&state.metrics.submissions, kind, 1);
    Ok(record_response(status, reply))
}

/// Withdraws a record; a published record leaves the feed with a withdraw entry.
#[utoipa::path(delete, path = "/v1/{collection}/{id}",
    params(("collection" = String, Path), ("id" = String, Path),
           ("If-Match" = Option<String>, Header, description = "optional: refuse if the record changed")),
    responses((status = 200, body = RecordView), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn withdraw(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NodeError> {
    let (collection, id) = path.into_inner();
    let kind = kind_of(&collection)?;
    let who = principal(&state, &req)?;
    let expected = if_match(&req)?;
    let st = state.clone();
    let view = blocking(move || register::withdraw(&st.db, &who, kind, &id, expected)).await?;
    count(&state.metrics.withdrawals, kind, 1);
    state.wake.notify_one();
    Ok(view_response(view))
}

/// Lists the records this token may see, oldest first.
#[utoipa::path(get, path = "/v1/{collection}",
    params(("collection" = String, Path),
           ("state" = Option<String>, Query, description = "submitted, approved, rejected or withdrawn"),
           ("after" = Option<String>, Query, description = "cursor from the previous page"),
           ("limit" = Option<i64>, Query, description = "1–1000, default 100")),
    responses((status = 200, body = RecordPage)),
    security(("bearer" = [])))]
pub async fn list(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, NodeError> {
    let kind = kind_of(&path)?;
    let who = principal(&state, &req)?;
    let list_query = ListQuery {
        state: match query.get("state").map(String::as_str) {
            None => None,
            Some(s @ ("submitted" | "approved" | "rejected" | "withdrawn")) => Some(s.to_owned()),
            Some(other) => {
                return Err(NodeError::BadParameter(FieldError::new(
                    "/query/state",
                    format!("{other:?} is not one of submitted, approved, rejected, withdrawn"),
                )));
            }
        },
        after: Some(query_i64(&query, "after", 0, 0..=i64::MAX)?),
        limit: query_i64(&query, "limit", 100, 1..=1000)?,
    };
    let st = state.clone();
    let page = blocking(move || register::list(&st.db, &who, kind, &list_query)).await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn optional_json(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Value, NodeError> {
    let empty = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0")
        || req.headers().get(header::CONTENT_TYPE).is_none();
    if empty {
        return Ok(Value::Object(Default::default()));
    }
    Ok(read_json(state, req, payload).await?.0)
}

fn review_version(body: &Value) -> Result<Option<i64>, NodeError> {
    match body.get("version") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            NodeError::Invalid(
                vec![FieldError::new(
                    "/version",
                    "must be the integer version you reviewed",
                )]
                .into(),
            )
        }),
    }
}

/// Approves the latest version (reviewer): assigns the registration number and, unless the
/// record is classified, publishes it. Optional body `{"version": N}`.
#[utoipa::path(post, path = "/v1/{collection}/{id}/approve",
    params(("collection" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RecordView), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn approve(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, NodeError> {
    let (collection, id) = path.into_inner();
    let kind = kind_of(&collection)?;
    let who = principal(&state, &req)?;
    who.require_reviewer()?;
    let body = optional_json(&state, &req, payload).await?;
    let expected = review_version(&body)?;
    let st = state.clone();
    let view =
        blocking(move || review::approve(&st.db, &st.issuer, &who, kind, &id, expected)).await?;
    count(&state.metrics.approvals, kind, 1);
    state.wake.notify_one();
    Ok(view_response(view))
}

/// Approves many records in one transaction (reviewer): all, or none if any cannot be
/// approved. Body `{"ids": [...]}` (1–1000).
#[utoipa::path(post, path = "/v1/{collection}/approve",
    params(("collection" = String, Path)),
    request_body(content = Object, description = "`{\"ids\": [\"ach-000001\", ...]}`"),
    responses((status = 200, description = "`{items: [{id, version, state, registration_no}]}`"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn approve_batch(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, NodeError> {
    let kind = kind_of(&path)?;
    let who = principal(&state, &req)?;
    who.require_reviewer()?;
    let (body, _) = read_json(&state, &req, payload).await?;
    let ids: Vec<String> = body
        .get("ids")
        .and_then(Value::as_array)
        .filter(|a| (1..=1000).contains(&a.len()))
        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
        .ok_or_else(|| {
            NodeError::Invalid(
                vec![FieldError::new(
                    "/ids",
                    "must be an array of 1–1000 record ids",
                )]
                .into(),
            )
        })?;
    let st = state.clone();
    let views =
        blocking(move || review::approve_many(&st.db, &st.issuer, &who, kind, &ids)).await?;
    count(&state.metrics.approvals, kind, views.len());
    state.wake.notify_one();
    let items: Vec<Value> = views
        .into_iter()
        .map(|v| {
            json!({"id": v.id, "version": v.version, "state": v.state,
                   "registration_no": v.registration_no, "published_version": v.published_version})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// Rejects the latest version (reviewer). Body `{"reason": "...", "version": N?}`.
#[utoipa::path(post, path = "/v1/{collection}/{id}/reject",
    params(("collection" = String, Path), ("id" = String, Path)),
    request_body(content = Object, description = "`{\"reason\": \"...\"}`"),
    responses((status = 200, body = RecordView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn reject(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, NodeError> {
    let (collection, id) = path.into_inner();
    let kind = kind_of(&collection)?;
    let who = principal(&state, &req)?;
    who.require_reviewer()?;
    let (body, _) = read_json(&state, &req, payload).await?;
    let expected = review_version(&body)?;
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let st = state.clone();
    let view = blocking(move || review::reject(&st.db, &who, kind, &id, expected, &reason)).await?;
    count(&state.metrics.rejections, kind, 1);
    Ok(view_response(view))
}

/// The signed log: whole batches holding entries after `after`, one per line (JSON Lines),
/// byte-identical to what was published.
///
/// **Enrolled gateways only** (DESIGN.md §4): the log carries internal records and every
/// disclosure of commercial and personal values, so it is as closed as the queue. A request
/// needs the bearer token of a gateway in the node's `[[gateways]]`; a gateway enrolled with
/// `require_client_cert` must also come over TLS with a client certificate that chains to the
/// node's `tls.client_ca` (and matches its pinned subject or fingerprint, if any). No token:
/// 401. A submitter, reviewer or admin token, or a gateway's token without its certificate:
/// 403. The public keys that verify the batches stay public at `/v1/keys`.
#[utoipa::path(get, path = "/v1/feed",
    params(("after" = Option<i64>, Query, description = "last seq already held (default 0)"),
           ("limit" = Option<i64>, Query, description = "about this many entries, 1–10000 (default 1000); whole batches")),
    responses((status = 200, content_type = "application/x-ndjson", description = "one signed batch per line; headers X-Rix-Next-After and X-Rix-Last-Seq"),
              (status = 401, body = Problem, content_type = "application/problem+json", description = "no gateway's bearer token"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "not a gateway's token, or a gateway's token without its TLS client certificate")),
    security(("bearer" = [])))]
pub async fn feed(
    state: State,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, NodeError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let peer = req.conn_data::<rix_runtime::serve::ClientCertificate>();
    let reader = state
        .tokens
        .authenticate_gateway(authorization, peer)
        .inspect_err(|e| {
            tracing::info!(refusal = %e, client_cert = peer.is_some(), "feed request refused");
        })?;
    let after = query_i64(&query, "after", 0, 0..=i64::MAX)?;
    let limit = query_i64(&query, "limit", 1000, 1..=10_000)?;
    let st = state.clone();
    let (batches, log) = blocking(move || {
        let batches = outbox::feed_page(&st.db, after, limit)?;
        let log = outbox::log_state(&mut *st.db.conn()?)?;
        Ok((batches, log))
    })
    .await?;
    let next_after = batches.last().map(|b| b.last_seq).unwrap_or(after);
    tracing::debug!(gateway = %reader.name, gateway_token = %reader.id, after, next_after, "feed page served");
    let mut body = Vec::with_capacity(batches.iter().map(|b| b.bytes.len() + 1).sum());
    for b in &batches {
        body.extend_from_slice(&b.bytes);
        body.push(b'\n');
    }
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(("X-Rix-Next-After", next_after.to_string()))
        .insert_header(("X-Rix-Last-Seq", log.sealed_seq.to_string()))
        .body(body))
}

/// Every key this node ever signed with, oldest first, for verifying its batches — also the
/// ones signed before a rotation.
///
/// Each key carries its window as the node's own chain gives it: `valid_from` is the
/// `created_at` of the first batch it signed (`first_batch_seq`), or when the node first loaded
/// it if it has signed none yet; `valid_until` is the `created_at` of the first batch the next
/// key signed, `null` for the key in use. A gateway applies them as they are
/// (`rix trust rotate`). Public: keys verify, they do not open anything.
#[utoipa::path(get, path = "/v1/keys",
    responses((status = 200, description = "`{node_id, current_key_id, keys: [{key_id, algorithm, public_key, spki_pem, valid_from, valid_until, first_batch_seq}]}`")))]
pub async fn keys(state: State) -> Result<HttpResponse, NodeError> {
    let st = state.clone();
    let history = blocking(move || Ok(crate::keys::history(&mut *st.db.conn()?)?)).await?;
    let listed: Vec<Value> = history
        .iter()
        .map(|k| {
            // Stored from a key the node loaded; one that no longer parses is listed without PEM.
            let pem = rix_schema::signing::VerifyingKey::from_base64(&k.public_key)
                .ok()
                .and_then(|key| key.to_spki_pem().ok())
                .map(|p| String::from_utf8_lossy(&p).into_owned())
                .unwrap_or_default();
            json!({
                "key_id": k.key_id,
                "algorithm": "Ed25519",
                "public_key": k.public_key,
                "spki_pem": pem,
                "valid_from": k.window_start(),
                "valid_until": k.valid_until,
                "first_batch_seq": k.first_batch_seq,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "node_id": state.node_id,
        "current_key_id": state.key.key_id(),
        "keys": listed,
    })))
}

/// A JSON Schema file: `achievement`, `funded_project`, `common` or `batch` (with or without
/// `.json`).
///
/// The files reference each other relatively (`"$ref": "common.json#/$defs/date"`), and a
/// client resolves such a reference against the schema's `$id`. Their published `$id`s name
/// the schema registry (`https://schema.rix.cn/v1/…`), which a node cannot vouch for being
/// reachable; so the node serves each file with its `$id` set to where it serves it
/// (`…/v1/schema/{name}.json`), and every reference resolves to this node.
#[utoipa::path(get, path = "/v1/schema/{name}",
    params(("name" = String, Path, description = "achievement, funded_project, common or batch, optionally ending in .json")),
    responses((status = 200, content_type = "application/schema+json", description = "the schema, its `$id` the URL it is served at"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn schema(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, NodeError> {
    let asked = path.into_inner();
    let name = asked.strip_suffix(".json").unwrap_or(&asked);
    let file = rix_schema::schemas::by_name(name).ok_or_else(|| NodeError::NotFound {
        kind: "schema",
        id: asked.clone(),
    })?;
    let mut json = file.json().clone();
    if let Some(id) = json.get_mut("$id") {
        let info = req.connection_info();
        *id = Value::String(format!(
            "{}://{}/v1/schema/{name}.json",
            info.scheme(),
            info.host()
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("application/schema+json")
        .json(json))
}

/// Liveness and readiness: database, broker, log.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "`{status, node_id, database, broker: connecting|connected|failing|none, broker_detail: {state, since, last_connected_at, last_error, failures}, log}`"), (status = 503, description = "database unavailable")))]
pub async fn healthz(state: State) -> HttpResponse {
    let st = state.clone();
    let log: Result<LogState, NodeError> =
        blocking(move || Ok(outbox::log_state(&mut *st.db.conn()?)?)).await;
    let broker = state.broker.as_ref().map(|link| link.report());
    let (status, database, log) = match log {
        Ok(l) => (
            // Connecting is not degraded: a node just started has not had its answer yet.
            if broker
                .as_ref()
                .is_some_and(|b| b.state == LinkState::Failing)
            {
                "degraded"
            } else {
                "ok"
            },
            "ok".to_owned(),
            Some(l),
        ),
        Err(e) => ("unavailable", e.to_string(), None),
    };
    let body = json!({
        "status": status,
        "node_id": state.node_id,
        "name": state.node_name,
        "database": database,
        "backend": format!("{:?}", state.db.backend()).to_lowercase(),
        "broker": broker.as_ref().map_or("none", |b| b.state.as_str()),
        "broker_detail": broker,
        "log": log,
    });
    if status == "unavailable" {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, content_type = "text/plain; version=0.0.4", description = "Prometheus text")))]
pub async fn metrics(state: State) -> HttpResponse {
    let st = state.clone();
    if let Ok(log) = blocking(move || Ok(outbox::log_state(&mut *st.db.conn()?)?)).await {
        state.metrics.outbox_depth.set(log.outbox_depth);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// The OpenAPI 3.1 document, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "rix node API", description = "Registration, review and the signed feed of one rix node (DESIGN.md §9)."),
    paths(submit, submit_batch, import, list, get_record, revise, withdraw, approve, approve_batch, reject, feed, keys, schema, healthz, metrics),
    components(schemas(Problem, crate::error::ProblemField, import::ImportReport, import::ItemOutcome, import::ImportedItem, import::RefusedItem, RecordView, register::ReviewView, RecordPage, register::RecordSummary, LogState)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /openapi.json`.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, NodeError> {
    Err(NodeError::NotFound {
        kind: "route",
        id: format!("{} {}", req.method(), req.path()),
    })
}

/// Registers every route on an actix app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let query_errors = web::QueryConfig::default().error_handler(|err, _| {
        NodeError::BadParameter(FieldError::new("/query", err.to_string())).into()
    });
    cfg.app_data(query_errors)
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi))
        .route("/v1/feed", web::get().to(feed))
        .route("/v1/keys", web::get().to(keys))
        .route("/v1/schema/{name}", web::get().to(schema))
        .route("/v1/{collection}", web::post().to(submit))
        .route("/v1/{collection}", web::get().to(list))
        .route("/v1/{collection}/batch", web::post().to(submit_batch))
        .route("/v1/{collection}/import", web::post().to(import))
        .route("/v1/{collection}/approve", web::post().to(approve_batch))
        .route("/v1/{collection}/{id}", web::get().to(get_record))
        .route("/v1/{collection}/{id}", web::put().to(revise))
        .route("/v1/{collection}/{id}", web::delete().to(withdraw))
        .route("/v1/{collection}/{id}/approve", web::post().to(approve))
        .route("/v1/{collection}/{id}/reject", web::post().to(reject))
        .default_service(web::to(not_found));
}
