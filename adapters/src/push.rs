//! Pushing mapped records into a node: the client of the node's import endpoint,
//! `POST /v1/{achievements|projects}/import` (DESIGN.md §9), and the checkpoint that lets an
//! interrupted import resume.
//!
//! What for: `rix import` maps a province's sheets into records ([`MappedRecord`]); this module
//! takes them to the node — new results for review (or approved at once by a reviewer's token,
//! `approve`), historical ones with their 批准登记号 and 登记日期 (an administrator's token) —
//! and brings back what became of each, tied to the row it came from ([`Origin`]).
//!
//! Why it is built so:
//! - **Chunks.** Records go in requests of up to [`PushOptions::chunk_size`] items (default
//!   [`DEFAULT_CHUNK_SIZE`]; the node takes [`MAX_CHUNK_SIZE`] at most), consecutive records of
//!   one kind per request, in source order. A node that finds a chunk too large (413) gets it
//!   again in halves; a single record too large for it is refused on its own.
//! - **Retries that cannot duplicate.** Connection failures, timeouts, 5xx and 429 are retried
//!   with exponential backoff and jitter, waiting at least what `Retry-After` asks (capped at
//!   [`RetryPolicy::max_retry_after`]). Any other 4xx stops the push at once: a wrong token or
//!   URL does not mend by asking again. Re-sending is harmless because the node registers one
//!   record per `source_key`; and each request carries an `Idempotency-Key` (the push and the
//!   request's rows, `idempotency_key`), so a request whose answer was lost is answered again
//!   with that answer — its records `accepted`, as they were — rather than as duplicates.
//! - **The node's word per record.** Each record comes back accepted (with its id, state and
//!   number), a duplicate (and whether the source changed since it was first imported — the node
//!   never applies such an edit silently), or refused with the node's reasons as pointers into
//!   the record, each with the source column the value came from ([`PushedItem::row_errors`],
//!   for the error report). A refused record never stops the others.
//! - **A checkpoint.** [`Checkpoint`] keeps, per source (file and sheet), the last row the node
//!   has answered for, in a small JSON file replaced atomically (written beside it, synced, then
//!   renamed over it) after every chunk. [`NodeClient::push_resumable`] skips the rows it
//!   covers: the keys already make a re-push harmless, the checkpoint makes it fast.
//!
//! What it may not touch: the node's storage or code. It speaks HTTP to the node's public API
//! as any client would — this crate depends on no rix crate but the schema — and it neither
//! maps nor validates records (the mapping did) nor writes the error report (the report does).

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use rix_schema::{RecordKind, SecrecyLevel};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::outcome::{MappedRecord, RowError, SourceColumns};
use crate::row::Origin;

/// Records per request unless told otherwise.
pub const DEFAULT_CHUNK_SIZE: usize = 500;

/// Most records the node takes in one request.
pub const MAX_CHUNK_SIZE: usize = 1000;

/// When and how long to retry a request that failed in a way that may pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each further one.
    pub initial_backoff: Duration,
    /// The longest wait the doubling reaches.
    pub max_backoff: Duration,
    /// The longest wait a `Retry-After` header is granted.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, after `attempt` failures: exponential, with
    /// "equal jitter" (between half and all of it) so that many importers do not retry in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let full = doubled.min(self.max_backoff);
        let fraction = RandomState::new().hash_one(attempt) as f64 / u64::MAX as f64;
        full.mul_f64(0.5 + fraction / 2.0)
    }
}

/// How a [`NodeClient`] talks to its node.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// A PEM file of the CA (or CAs) that issued the node's TLS certificate; only these are
    /// trusted for an `https://` node when given (a province's own CA), the system's otherwise.
    pub ca_file: Option<PathBuf>,
    /// Records per request (1–[`MAX_CHUNK_SIZE`]).
    pub chunk_size: usize,
    /// Retries.
    pub retry: RetryPolicy,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for one request's answer: a chunk of approvals on a busy node takes seconds.
    pub request_timeout: Duration,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            ca_file: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
        }
    }
}

/// Why a push stopped (or could not start).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The client could not be set up: a bad URL, token, option or CA file.
    #[error("cannot set up the node client: {0}")]
    Setup(String),
    /// The node could not be reached, every attempt.
    #[error(
        "the node at {url} could not be reached ({attempts} attempts): {source}; check the URL \
         and that the node runs, then run the import again (it resumes)"
    )]
    Unreachable {
        /// The request's URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        source: reqwest::Error,
    },
    /// The node's TLS certificate is not trusted (or not for its name): not retried.
    #[error(
        "the node at {url} is not trusted: {detail}; give the CA that issued its certificate \
         (PushOptions::ca_file, `rix import --ca-file`) or use the name it was issued for"
    )]
    Untrusted {
        /// The request's URL.
        url: String,
        /// The TLS library's words.
        detail: String,
    },
    /// The node kept failing (5xx) or asking to slow down (429), every attempt.
    #[error(
        "the node answered {status} to each of {attempts} attempts: {detail}; run the import \
         again later (it resumes)"
    )]
    Unavailable {
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The node's own words (its problem `detail`), if any.
        detail: String,
    },
    /// The node refused the request as a whole (401, 403, 404, 422…): not retried.
    #[error("the node refused the import request with {status}: {detail}{}", hint(*.status))]
    Refused {
        /// The status.
        status: u16,
        /// The node's problem `detail`.
        detail: String,
        /// The node's `{pointer, message}` list.
        errors: Vec<NodeFieldError>,
    },
    /// The node's answer is not the import report this client understands.
    #[error("the node's answer to an import is not understood: {0}")]
    BadResponse(String),
    /// The checkpoint could not be written: progress is not recorded.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

fn hint(status: u16) -> &'static str {
    match status {
        401 => " (the token is unknown to the node: check --token)",
        403 => " (the token may not import here)",
        404 => " (no import endpoint there: check the node URL, e.g. https://node.example:8081)",
        _ => "",
    }
}

/// A push that stopped part way: the error, and what the node had answered until then (its
/// records are registered; the checkpoint, if any, covers them).
#[derive(Debug, thiserror::Error)]
#[error("{error} ({} records were pushed before it stopped)", done.items.len())]
pub struct PushFailed {
    /// Why it stopped.
    #[source]
    pub error: PushError,
    /// The outcomes of the records before it stopped, in order.
    pub done: PushOutcome,
}

impl From<PushError> for PushFailed {
    fn from(error: PushError) -> Self {
        PushFailed {
            error,
            done: PushOutcome::default(),
        }
    }
}

/// One `{pointer, message}` of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFieldError {
    /// Where: for a refused record, a JSON Pointer into the record (`/title`; `/registration_no`
    /// for the number it was sent with; `""` for the record as a whole); for a refused request,
    /// into the request.
    pub pointer: String,
    /// What is wrong there, as the node says it.
    pub message: String,
}

/// A record as the node holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registered {
    /// The node-local id (global id: `{node_id}/{id}`).
    pub id: String,
    /// Its latest version.
    pub version: i64,
    /// Its state: `submitted`, `approved`… (for a duplicate, whatever it is now).
    pub state: String,
    /// 批准登记号, once approved.
    pub registration_no: Option<String>,
    /// The version standing in the node's feed (`None`: not approved, or classified and kept
    /// at the node).
    pub published_version: Option<i64>,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ItemResult {
    /// Registered by this push.
    Accepted(Registered),
    /// Its source key was imported before (by an earlier run, an earlier record of this push,
    /// or an attempt whose answer was lost): nothing changed at the node.
    Duplicate {
        /// The record the key names.
        record: Registered,
        /// The record (or its number) differs from what was first imported under the key: the
        /// source was edited since. The node keeps its version; revise it there if needed.
        changed: bool,
    },
    /// Refused: nothing of it was written.
    Refused {
        /// What the node would have answered it alone: 422 invalid, 403 not for this token,
        /// 409 number or key taken, 413 too large.
        status: u16,
        /// The node's reasons, pointers into the record.
        errors: Vec<NodeFieldError>,
    },
    /// Not sent: the checkpoint says an earlier run pushed it.
    Skipped,
}

/// One record's outcome, with the row it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushedItem {
    /// The row.
    pub origin: Origin,
    /// Its source key.
    pub source_key: String,
    /// Whether the record is classified `secret` or above, so stays at the node (as any such
    /// record registered online).
    pub classified: bool,
    /// What became of it.
    #[serde(flatten)]
    pub result: ItemResult,
    /// For a refused record, the source columns its values came from (empty otherwise), so
    /// that [`PushedItem::row_errors`] names the column of each of the node's pointers.
    #[serde(skip)]
    pub columns: SourceColumns,
}

impl PushedItem {
    /// The node's refusal as rows of the error report (none unless refused).
    pub fn row_errors(&self) -> Vec<RowError> {
        let ItemResult::Refused { status, errors } = &self.result else {
            return Vec::new();
        };
        errors
            .iter()
            .map(|e| RowError {
                origin: self.origin.clone(),
                column: self.columns.column_of(&e.pointer).map(str::to_owned),
                pointer: e.pointer.clone(),
                message_zh: format!("节点拒绝（{status}）：{}", e.message),
                message_en: format!("refused by the node ({status}): {}", e.message),
            })
            .collect()
    }
}

/// What became of every record of a push, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PushOutcome {
    /// One per record.
    pub items: Vec<PushedItem>,
}

impl PushOutcome {
    fn count(&self, f: impl Fn(&PushedItem) -> bool) -> usize {
        self.items.iter().filter(|i| f(i)).count()
    }

    /// Records registered by this push.
    pub fn accepted(&self) -> usize {
        self.count(|i| matches!(i.result, ItemResult::Accepted(_)))
    }

    /// Of those, the ones approved (historical numbers, or `approve`).
    pub fn approved(&self) -> usize {
        self.count(|i| matches!(&i.result, ItemResult::Accepted(r) if r.state == "approved"))
    }

    /// Records the node already had.
    pub fn duplicates(&self) -> usize {
        self.count(|i| matches!(i.result, ItemResult::Duplicate { .. }))
    }

    /// Duplicates whose source changed since they were first imported.
    pub fn changed(&self) -> usize {
        self.count(|i| matches!(i.result, ItemResult::Duplicate { changed: true, .. }))
    }

    /// Records the node refused.
    pub fn refused(&self) -> usize {
        self.count(|i| matches!(i.result, ItemResult::Refused { .. }))
    }

    /// Records not sent because the checkpoint covered them.
    pub fn skipped(&self) -> usize {
        self.count(|i| matches!(i.result, ItemResult::Skipped))
    }

    /// Records registered now or before that are classified, so stay at the node.
    pub fn classified(&self) -> usize {
        self.count(|i| {
            i.classified
                && matches!(
                    i.result,
                    ItemResult::Accepted(_) | ItemResult::Duplicate { .. }
                )
        })
    }
}

/// A client of one node's import endpoint, with one bearer token.
#[derive(Debug, Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    base: String,
    token: String,
    options: PushOptions,
}

fn collection(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Achievement => "achievements",
        RecordKind::FundedProject => "projects",
    }
}

impl NodeClient {
    /// A client of the node at `base_url` (`http://` or `https://`, e.g.
    /// `https://node.example:8081`) with the default options.
    pub fn new(base_url: &str, token: &str) -> Result<NodeClient, PushError> {
        NodeClient::with_options(base_url, token, PushOptions::default())
    }

    /// A client with these options (a CA file, a chunk size, retries, timeouts).
    pub fn with_options(
        base_url: &str,
        token: &str,
        options: PushOptions,
    ) -> Result<NodeClient, PushError> {
        let url = reqwest::Url::parse(base_url)
            .map_err(|e| PushError::Setup(format!("node URL {base_url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(PushError::Setup(format!(
                "node URL {base_url:?}: must be http:// or https:// with a host"
            )));
        }
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PushError::Setup(
                "the token must be the node's bearer token: visible ASCII, no spaces".into(),
            ));
        }
        if !(1..=MAX_CHUNK_SIZE).contains(&options.chunk_size) {
            return Err(PushError::Setup(format!(
                "chunk size {} is outside 1–{MAX_CHUNK_SIZE}",
                options.chunk_size
            )));
        }
        if options.retry.max_attempts == 0 {
            return Err(PushError::Setup("max_attempts must be at least 1".into()));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(concat!("rix-adapters/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &options.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| PushError::Setup(format!("CA file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| PushError::Setup(format!("CA file {}: {e}", ca.display())))?;
            if certs.is_empty() {
                return Err(PushError::Setup(format!(
                    "CA file {}: no PEM certificate in it",
                    ca.display()
                )));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| PushError::Setup(e.to_string()))?;
        Ok(NodeClient {
            http,
            base: url.as_str().trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            options,
        })
    }

    /// The node's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Pushes `records` (in source order; kinds may be mixed), `approve` asking the node to
    /// approve new records without a number at once (a reviewer's or administrator's token).
    /// Returns one outcome per record, in order; stops at the first request the node refuses
    /// as a whole or cannot be brought to answer, with what was done until then.
    pub async fn push(
        &self,
        records: &[MappedRecord],
        approve: bool,
    ) -> Result<PushOutcome, PushFailed> {
        self.push_inner(records, approve, None).await
    }

    /// As [`NodeClient::push`], skipping the records `checkpoint` covers (an earlier run pushed
    /// them: [`ItemResult::Skipped`]) and advancing it, saved, after each chunk the node
    /// answered. The records of one source must come in row order, as sources read them.
    pub async fn push_resumable(
        &self,
        records: &[MappedRecord],
        approve: bool,
        checkpoint: &mut Checkpoint,
    ) -> Result<PushOutcome, PushFailed> {
        self.push_inner(records, approve, Some(checkpoint)).await
    }

    async fn push_inner(
        &self,
        records: &[MappedRecord],
        approve: bool,
        mut checkpoint: Option<&mut Checkpoint>,
    ) -> Result<PushOutcome, PushFailed> {
        let push = push_id();
        let mut outcome = PushOutcome {
            items: Vec::with_capacity(records.len()),
        };
        let done = |cp: &Option<&mut Checkpoint>, r: &MappedRecord| {
            cp.as_deref().is_some_and(|cp| cp.is_done(&r.origin))
        };
        let mut start = 0;
        while start < records.len() {
            if done(&checkpoint, &records[start]) {
                outcome
                    .items
                    .push(pushed(&records[start], ItemResult::Skipped));
                start += 1;
                continue;
            }
            let kind = records[start].kind;
            let mut end = start + 1;
            while end < records.len()
                && end - start < self.options.chunk_size
                && records[end].kind == kind
                && !done(&checkpoint, &records[end])
            {
                end += 1;
            }
            let chunk = &records[start..end];
            match self.send_chunk(&push, kind, chunk, approve).await {
                Ok(items) => outcome.items.extend(items),
                Err(error) => {
                    return Err(PushFailed {
                        error,
                        done: outcome,
                    });
                }
            }
            if let Some(cp) = checkpoint.as_deref_mut() {
                for r in chunk {
                    cp.mark(&r.origin);
                }
                if let Err(e) = cp.save() {
                    return Err(PushFailed {
                        error: e.into(),
                        done: outcome,
                    });
                }
            }
            start = end;
        }
        Ok(outcome)
    }

    /// One chunk, in halves while the node finds it too large.
    async fn send_chunk(
        &self,
        push: &str,
        kind: RecordKind,
        chunk: &[MappedRecord],
        approve: bool,
    ) -> Result<Vec<PushedItem>, PushError> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut pending = vec![chunk];
        while let Some(part) = pending.pop() {
            match self.post_import(push, kind, part, approve).await {
                Ok(items) => out.extend(items),
                Err(PushError::Refused {
                    status: 413,
                    detail,
                    ..
                }) => {
                    if part.len() > 1 {
                        let (first, second) = part.split_at(part.len() / 2);
                        pending.push(second);
                        pending.push(first);
                    } else {
                        out.push(pushed(
                            &part[0],
                            ItemResult::Refused {
                                status: 413,
                                errors: vec![NodeFieldError {
                                    pointer: String::new(),
                                    message: format!(
                                        "the record alone is larger than the node accepts: {detail}"
                                    ),
                                }],
                            },
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// One request, retried while the failure may pass.
    async fn post_import(
        &self,
        push: &str,
        kind: RecordKind,
        part: &[MappedRecord],
        approve: bool,
    ) -> Result<Vec<PushedItem>, PushError> {
        let url = format!("{}/v1/{}/import", self.base, collection(kind));
        let body = request_body(part, approve);
        let key = idempotency_key(push, kind, part, approve);
        let retry = &self.options.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .http
                .post(&url)
                .bearer_auth(&self.token)
                .header(CONTENT_TYPE, "application/json")
                .header("Idempotency-Key", &key)
                .body(body.clone())
                .send()
                .await;
            let (wait, failure) = match sent {
                Err(e) if e.is_builder() => return Err(PushError::Setup(e.to_string())),
                Err(e) if let Some(detail) = certificate_refusal(&e) => {
                    return Err(PushError::Untrusted {
                        url: url.clone(),
                        detail,
                    });
                }
                Err(e) => (
                    retry.backoff(attempt),
                    PushError::Unreachable {
                        url: url.clone(),
                        attempts: attempt,
                        source: e,
                    },
                ),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    match response.bytes().await {
                        Err(e) => (
                            retry.backoff(attempt),
                            PushError::Unreachable {
                                url: url.clone(),
                                attempts: attempt,
                                source: e,
                            },
                        ),
                        Ok(bytes) if status.is_success() => {
                            return read_report(part, &bytes);
                        }
                        Ok(bytes)
                            if status == StatusCode::TOO_MANY_REQUESTS
                                || status.is_server_error() =>
                        {
                            let wait = retry_after
                                .map(|d| d.min(retry.max_retry_after))
                                .unwrap_or_else(|| retry.backoff(attempt));
                            let (detail, _) = problem(&bytes);
                            (
                                wait,
                                PushError::Unavailable {
                                    status: status.as_u16(),
                                    attempts: attempt,
                                    detail,
                                },
                            )
                        }
                        Ok(bytes) => {
                            let (detail, errors) = problem(&bytes);
                            return Err(PushError::Refused {
                                status: status.as_u16(),
                                detail,
                                errors,
                            });
                        }
                    }
                }
            };
            if attempt >= retry.max_attempts {
                return Err(failure);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// The TLS library's complaint about the node's certificate, if that is why a request failed:
/// a certificate does not become trusted by asking again. (The TLS error reaches us only as
/// the text of some error in the chain.)
fn certificate_refusal(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains("certificate") {
            return Some(text);
        }
        source = s.source();
    }
    None
}

fn pushed(record: &MappedRecord, result: ItemResult) -> PushedItem {
    let columns = match &result {
        ItemResult::Refused { .. } => record.columns.clone(),
        _ => SourceColumns::default(),
    };
    PushedItem {
        origin: record.origin.clone(),
        source_key: record.source_key.clone(),
        classified: SecrecyLevel::of_record(&record.record)
            .is_none_or(|level| !level.may_leave_node()),
        result,
        columns,
    }
}

/// `{"items": [{"source_key", "record", "registration_no"?, "approve"?}]}`; a historical
/// record's 登记日期 goes in its record, where the node's import reads it. Written straight from
/// the borrowed records: a chunk is not copied into a second tree of values first.
fn request_body(part: &[MappedRecord], approve: bool) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        items: Vec<BodyItem<'a>>,
    }
    #[derive(Serialize)]
    struct BodyItem<'a> {
        source_key: &'a str,
        record: RecordWithDate<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        registration_no: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        approve: Option<bool>,
    }
    let items = part
        .iter()
        .map(|r| BodyItem {
            source_key: &r.source_key,
            record: RecordWithDate {
                record: &r.record,
                date: r
                    .registration_no
                    .as_ref()
                    .and(r.registration_date.as_deref()),
            },
            registration_no: r.registration_no.as_deref(),
            approve: (r.registration_no.is_none() && approve).then_some(true),
        })
        .collect();
    serde_json::to_vec(&Body { items }).expect("JSON values serialize")
}

/// A record with its 登记日期 set (when it has one to set), serialized as that object.
struct RecordWithDate<'a> {
    record: &'a Value,
    date: Option<&'a str>,
}

impl Serialize for RecordWithDate<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (Some(date), Value::Object(map)) = (self.date, self.record) else {
            return self.record.serialize(serializer);
        };
        let mut out = serializer.serialize_map(None)?;
        for (key, value) in map {
            if key != "registration_date" {
                out.serialize_entry(key, value)?;
            }
        }
        out.serialize_entry("registration_date", date)?;
        out.end()
    }
}

/// The `Idempotency-Key` of one request: the push it belongs to ([`push_id`]) and the
/// request's items (their kind, source keys and whether they ask for approval). A request sent
/// again after its answer was lost carries the same key, and the node answers it with the first
/// answer, word for word. Another push of the same rows — the next run of an import, a resumed
/// one — has other keys, so the node's per-row keys answer it (duplicates, and what changed),
/// as they should; a key made of the rows alone would replay the first run's `accepted`.
fn idempotency_key(push: &str, kind: RecordKind, part: &[MappedRecord], approve: bool) -> String {
    let mut material = Vec::with_capacity(64 + part.len() * 48);
    material.extend_from_slice(collection(kind).as_bytes());
    material.push(if approve { b'+' } else { b'-' });
    for r in part {
        material.push(b'\n');
        material.extend_from_slice(r.source_key.as_bytes());
    }
    let digest = rix_schema::canonical::sha256_hex(&material);
    format!("rix-import-{push}-{}", &digest[..32])
}

/// 128 bits that no other push shares: the process's random hasher keys (a fresh pair for each
/// `RandomState`), the time and the pid.
fn push_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = (now, std::process::id());
    let a = RandomState::new().hash_one(seed);
    let b = RandomState::new().hash_one((seed, a));
    format!("{a:016x}{b:016x}")
}

/// `Retry-After`: whole seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &format)
        .ok()?
        .assume_utc();
    let wait = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// A problem document's `detail` and `errors` (or the body's first characters, if it is none).
fn problem(bytes: &[u8]) -> (String, Vec<NodeFieldError>) {
    #[derive(Deserialize)]
    struct Problem {
        #[serde(default)]
        detail: String,
        #[serde(default)]
        errors: Vec<NodeFieldError>,
    }
    match serde_json::from_slice::<Problem>(bytes) {
        Ok(p) => (p.detail, p.errors),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            (text.chars().take(200).collect(), Vec::new())
        }
    }
}

/// The node's import report, as far as this client reads it.
#[derive(Deserialize)]
struct Report {
    items: Vec<ReportItem>,
}

#[derive(Deserialize)]
struct ReportItem {
    index: usize,
    id: Option<String>,
    version: Option<i64>,
    state: Option<String>,
    registration_no: Option<String>,
    published_version: Option<i64>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    changed: bool,
    status: Option<u16>,
    #[serde(default)]
    errors: Vec<NodeFieldError>,
}

fn read_report(part: &[MappedRecord], bytes: &[u8]) -> Result<Vec<PushedItem>, PushError> {
    let report: Report =
        serde_json::from_slice(bytes).map_err(|e| PushError::BadResponse(e.to_string()))?;
    if report.items.len() != part.len() {
        return Err(PushError::BadResponse(format!(
            "{} outcomes for {} records",
            report.items.len(),
            part.len()
        )));
    }
    part.iter()
        .zip(report.items)
        .enumerate()
        .map(|(i, (record, item))| {
            if item.index != i {
                return Err(PushError::BadResponse(format!(
                    "outcome {i} is for item {}",
                    item.index
                )));
            }
            let result = match (item.id, item.version, item.state) {
                (Some(id), Some(version), Some(state)) => {
                    let registered = Registered {
                        id,
                        version,
                        state,
                        registration_no: item.registration_no,
                        published_version: item.published_version,
                    };
                    if item.duplicate {
                        ItemResult::Duplicate {
                            record: registered,
                            changed: item.changed,
                        }
                    } else {
                        ItemResult::Accepted(registered)
                    }
                }
                _ => ItemResult::Refused {
                    status: item.status.unwrap_or(422),
                    errors: item
                        .errors
                        .into_iter()
                        .map(|e| record_error(i, e))
                        .collect(),
                },
            };
            Ok(pushed(record, result))
        })
        .collect()
}

/// A refused item's error with its pointer into the record: `/items/3/record/title` → `/title`;
/// `/items/3/registration_no` → `/registration_no` (where the number goes in the record); any
/// other member of the item → the record as a whole, the member named in the message.
fn record_error(index: usize, e: NodeFieldError) -> NodeFieldError {
    let prefix = format!("/items/{index}");
    let rest = e.pointer.strip_prefix(&prefix).unwrap_or(&e.pointer);
    if let Some(inside) = rest.strip_prefix("/record") {
        NodeFieldError {
            pointer: inside.to_owned(),
            message: e.message,
        }
    } else if rest == "/registration_no" {
        NodeFieldError {
            pointer: rest.to_owned(),
            message: e.message,
        }
    } else if let Some(member) = rest.strip_prefix('/') {
        NodeFieldError {
            pointer: String::new(),
            message: format!("{member}: {}", e.message),
        }
    } else {
        NodeFieldError {
            pointer: String::new(),
            message: e.message,
        }
    }
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a checkpoint this version wrote.
    #[error(
        "checkpoint {path} is not an import checkpoint ({detail}); delete it to start the \
         import from the first row (the node registers nothing twice)"
    )]
    Malformed {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// The checkpoint file's format name.
const CHECKPOINT_FORMAT: &str = "rix-import-checkpoint/1";

/// How far one source has been pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceProgress {
    /// The source file (or URL), as [`Origin::file`] names it.
    pub file: String,
    /// The sheet, in a workbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// What the source was when this progress was made (e.g. its size and modification time:
    /// [`file_fingerprint`]); a source that changed since starts again from its first row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The node has answered for every row up to this one ([`Origin::row`]).
    pub rows_through: u64,
}

#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    format: String,
    sources: Vec<SourceProgress>,
}

type SourceId = (String, Option<String>);

/// How far each source of an import has been pushed, kept in a JSON file:
/// `{"format": "rix-import-checkpoint/1", "sources": [{"file", "sheet"?, "fingerprint"?,
/// "rows_through"}]}`.
///
/// It only moves forward, and is saved by replacing the file whole (a temporary file beside it,
/// synced, renamed over it), so a crash leaves the previous checkpoint or the next, never half
/// of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    path: PathBuf,
    sources: BTreeMap<SourceId, SourceProgress>,
}

impl Checkpoint {
    /// The checkpoint at `path`: read if the file exists, empty if it does not.
    pub fn open(path: impl Into<PathBuf>) -> Result<Checkpoint, CheckpointError> {
        let path = path.into();
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Checkpoint {
                    path,
                    sources: BTreeMap::new(),
                });
            }
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        let malformed = |detail: String| CheckpointError::Malformed {
            path: path.clone(),
            detail,
        };
        let file: CheckpointFile =
            serde_json::from_slice(&text).map_err(|e| malformed(e.to_string()))?;
        if file.format != CHECKPOINT_FORMAT {
            return Err(malformed(format!(
                "format {:?}, expected {CHECKPOINT_FORMAT:?}",
                file.format
            )));
        }
        let sources = file
            .sources
            .into_iter()
            .map(|s| ((s.file.clone(), s.sheet.clone()), s))
            .collect();
        Ok(Checkpoint { path, sources })
    }

    /// The file it is kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every source's progress.
    pub fn sources(&self) -> impl Iterator<Item = &SourceProgress> {
        self.sources.values()
    }

    /// Starts (or resumes) a source: the row it is done through, 0 if it is new or if its
    /// `fingerprint` differs from the one recorded (the source changed: its rows may have
    /// moved, so it starts again — the node's keys keep that harmless).
    pub fn begin(&mut self, file: &str, sheet: Option<&str>, fingerprint: Option<&str>) -> u64 {
        let id = (file.to_owned(), sheet.map(str::to_owned));
        let progress = self.sources.entry(id).or_insert_with(|| SourceProgress {
            file: file.to_owned(),
            sheet: sheet.map(str::to_owned),
            fingerprint: fingerprint.map(str::to_owned),
            rows_through: 0,
        });
        if progress.fingerprint.as_deref() != fingerprint {
            progress.fingerprint = fingerprint.map(str::to_owned);
            progress.rows_through = 0;
        }
        progress.rows_through
    }

    /// The row a source is done through (0: none).
    pub fn rows_through(&self, file: &str, sheet: Option<&str>) -> u64 {
        self.sources
            .get(&(file.to_owned(), sheet.map(str::to_owned)))
            .map_or(0, |s| s.rows_through)
    }

    /// Whether the node has answered for this row in an earlier run.
    pub fn is_done(&self, origin: &Origin) -> bool {
        origin.row <= self.rows_through(&origin.file, origin.sheet.as_deref())
    }

    /// Records that the node has answered for every row of `origin`'s source up to `origin`
    /// (also rows refused before pushing: they are in the error report). Never moves back.
    /// Not saved until [`Checkpoint::save`].
    pub fn mark(&mut self, origin: &Origin) {
        let progress = self
            .sources
            .entry((origin.file.clone(), origin.sheet.clone()))
            .or_insert_with(|| SourceProgress {
                file: origin.file.clone(),
                sheet: origin.sheet.clone(),
                fingerprint: None,
                rows_through: 0,
            });
        progress.rows_through = progress.rows_through.max(origin.row);
    }

    /// Writes the checkpoint: a temporary file beside it, synced, then renamed over it.
    pub fn save(&self) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: self.path.clone(),
            source,
        };
        let file = CheckpointFile {
            format: CHECKPOINT_FORMAT.to_owned(),
            sources: self.sources.values().cloned().collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("a checkpoint serializes");
        bytes.push(b'\n');
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "checkpoint".into());
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut f = std::fs::File::create(&temp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&temp, &self.path)?;
            // The rename itself is durable once the directory is synced.
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.map_err(io)
    }

    /// Deletes the checkpoint file (the import finished); a missing file is no error.
    pub fn remove(self) -> Result<(), CheckpointError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CheckpointError::Io {
                path: self.path,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// A cheap fingerprint of a source file for [`Checkpoint::begin`]: its size and modification
/// time. An edited file gets another one and is pushed again from its first row.
pub fn file_fingerprint(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(format!(
        "size={};mtime={}.{:09}",
        meta.len(),
        modified.as_secs(),
        modified.subsec_nanos()
    ))
}

impl fmt::Display for ItemResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemResult::Accepted(r) => write!(f, "accepted as {} ({})", r.id, r.state),
            ItemResult::Duplicate { record, changed } => write!(
                f,
                "already imported as {} ({}){}",
                record.id,
                record.state,
                if *changed {
                    "; the source changed since"
                } else {
                    ""
                }
            ),
            ItemResult::Refused { status, errors } => {
                write!(f, "refused ({status})")?;
                for e in errors {
                    write!(f, "; {} {}", e.pointer, e.message)?;
                }
                Ok(())
            }
            ItemResult::Skipped => f.write_str("skipped (pushed by an earlier run)"),
        }
    }
}
