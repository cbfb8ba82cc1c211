//! A provincial platform's HTTP API as a source: a paginated JSON list of records, read a page
//! at a time ([`HttpSource::next_page`], async), each item a [`RowData::Tree`].
//!
//! Why it is built so:
//! - **Paging is configured, not coded** ([`Paging`]): page/size, offset/limit (the offset
//!   advances by the items actually received, so a platform that caps the page size loses
//!   nothing), a cursor read from the response, or a `next` link (from the response or the
//!   `Link` header). Numbered paging ends at the first empty page, never at a short one: a
//!   platform may return fewer items than asked without being at the end.
//! - **A platform is unreliable, the import must not be**: every request has a timeout;
//!   connection errors, timeouts, 5xx, 408, 429 and malformed pages (not JSON, no array of
//!   items: what a proxy's error page looks like) are retried with exponential backoff up to a
//!   bounded number of attempts ([`RetryPolicy`]), honouring `Retry-After`; other 4xx are
//!   final at once (asking again will not fix credentials). The final error names the URL, the
//!   page and what to do. Pages are parsed with the schema crate's strict parser (a repeated
//!   key is a malformed page).
//! - **Repeats are dropped**: items already read in this run (by [`HttpSourceConfig::id_pointer`])
//!   are not yielded again, as happens when records shift between pages while paging. A page
//!   of nothing but repeats, or a cursor or link that points back to itself, means the
//!   platform ignores the paging parameter: an error, not an endless loop.
//! - **Incremental runs** ([`IncrementalConfig`]): a checkpoint file holds the high-water mark
//!   of the items' modified field; the next run asks only for items modified since (a query
//!   parameter). The checkpoint is written only when the caller says its rows are safely
//!   stored ([`HttpSource::save_checkpoint`], after the last page): a crash before then makes
//!   the next run ask again, and the node's idempotency keys make that harmless. It is
//!   written atomically (a temporary file renamed over it).
//!
//! What it may not touch: the items' meaning (the mapping reads them); any secret in a message
//! or a log (credentials go in [`HttpAuth`], whose `Debug` hides them, never in the URL).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, LINK, RETRY_AFTER};
use rix_schema::strict_json;
use serde::Deserialize;
use serde_json::Value;

use super::SourceError;
use crate::row::{Origin, RowData, SourceRow};

/// How to read a platform's list API: the `[source]` section of a mapping file for an HTTP
/// source. Example:
///
/// ```toml
/// url = "https://kjt.example.gov.cn/api/v2/achievements"
/// items_pointer = "/data/list"
/// id_pointer = "/id"
/// query = { status = "published" }
/// paging = { style = "page", page_param = "pageNo", size_param = "pageSize", size = 200 }
/// auth = { type = "bearer", token_env = "YUNNAN_PLATFORM_TOKEN" }
/// incremental = { param = "updatedSince", modified_pointer = "/updateTime", checkpoint = "state/yunnan.json" }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// The list endpoint. A query it already has is kept; credentials do not belong in it
    /// (URLs appear in origins, reports and errors): use `auth`.
    pub url: String,
    /// Query parameters added to every request built from `url` (filters such as
    /// `status = "published"`).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Request headers added to every request (not for secrets: use `auth`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON Pointer to the array of items in a page (`/data/list`); `""`: the page is the
    /// array.
    pub items_pointer: String,
    /// JSON Pointer to an item's identifier (`/id`), used to drop items already read in this
    /// run. Without it, nothing is de-duplicated.
    #[serde(default)]
    pub id_pointer: Option<String>,
    /// How pages follow one another.
    pub paging: Paging,
    /// Credentials, if the platform wants them.
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    /// How long one request may take, headers and body, in milliseconds (default 30 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// When and how often to ask again.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Ask only for what changed since the last run.
    #[serde(default)]
    pub incremental: Option<IncrementalConfig>,
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// How pages follow one another.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Paging {
    /// One request returns everything.
    Single,
    /// Numbered pages: `?page=1&size=100`, then 2, 3… until a page has no items.
    Page {
        /// The page number's parameter (default `page`).
        #[serde(default = "default_page_param")]
        page_param: String,
        /// The page size's parameter (default `size`).
        #[serde(default = "default_size_param")]
        size_param: String,
        /// Items asked for per page (default 100).
        #[serde(default = "default_size")]
        size: u64,
        /// The first page's number (default 1; some platforms count from 0).
        #[serde(default = "default_first_page")]
        first: u64,
    },
    /// Offsets: `?offset=0&limit=100`, the offset advancing by the items received, until a
    /// page has no items.
    Offset {
        /// The offset's parameter (default `offset`).
        #[serde(default = "default_offset_param")]
        offset_param: String,
        /// The page size's parameter (default `limit`).
        #[serde(default = "default_limit_param")]
        limit_param: String,
        /// Items asked for per page (default 100).
        #[serde(default = "default_size")]
        limit: u64,
    },
    /// A cursor: each page names the next one's cursor; the first request has none. Ends when
    /// a page names no cursor (absent, `null` or `""`).
    Cursor {
        /// The cursor's parameter (default `cursor`).
        #[serde(default = "default_cursor_param")]
        cursor_param: String,
        /// JSON Pointer to the next cursor in a page (`/next_cursor`).
        next_cursor_pointer: String,
        /// The page size's parameter, if the platform takes one.
        #[serde(default)]
        size_param: Option<String>,
        /// Items asked for per page, with `size_param`.
        #[serde(default)]
        size: Option<u64>,
    },
    /// Links: each page gives the next page's URL (relative URLs are resolved against the
    /// page's), used as given. Ends when a page gives none.
    NextLink {
        /// JSON Pointer to the next page's URL in a page (`/links/next`); without it, the
        /// `Link` header's `rel="next"`.
        #[serde(default)]
        next_pointer: Option<String>,
        /// The page size's parameter on the first request, if the platform takes one.
        #[serde(default)]
        size_param: Option<String>,
        /// Items asked for per page, with `size_param`.
        #[serde(default)]
        size: Option<u64>,
    },
}

fn default_page_param() -> String {
    "page".to_owned()
}
fn default_size_param() -> String {
    "size".to_owned()
}
fn default_size() -> u64 {
    100
}
fn default_first_page() -> u64 {
    1
}
fn default_offset_param() -> String {
    "offset".to_owned()
}
fn default_limit_param() -> String {
    "limit".to_owned()
}
fn default_cursor_param() -> String {
    "cursor".to_owned()
}

/// Credentials. A secret is given either inline or, better, as the name of an environment
/// variable that holds it (`token_env`), so that mapping files can be shared and committed.
/// `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        #[serde(default)]
        token: Option<String>,
        /// The environment variable holding the token.
        #[serde(default)]
        token_env: Option<String>,
    },
    /// HTTP Basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        #[serde(default)]
        password: Option<String>,
        /// The environment variable holding the password.
        #[serde(default)]
        password_env: Option<String>,
    },
    /// An API key in a header of the platform's choosing (`X-Api-Key: <key>`).
    Header {
        /// The header's name.
        name: String,
        /// The key.
        #[serde(default)]
        value: Option<String>,
        /// The environment variable holding the key.
        #[serde(default)]
        value_env: Option<String>,
    },
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpAuth::Bearer { token_env, .. } => f
                .debug_struct("Bearer")
                .field("token", &"<hidden>")
                .field("token_env", token_env)
                .finish(),
            HttpAuth::Basic {
                username,
                password_env,
                ..
            } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<hidden>")
                .field("password_env", password_env)
                .finish(),
            HttpAuth::Header {
                name, value_env, ..
            } => f
                .debug_struct("Header")
                .field("name", name)
                .field("value", &"<hidden>")
                .field("value_env", value_env)
                .finish(),
        }
    }
}

/// When and how often a failed request is asked again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Requests made for one page at most, the first included (default 5; 1: no retry).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The wait before the second attempt, in milliseconds; it doubles after each failure
    /// (default 500).
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// The longest wait between attempts, in milliseconds, `Retry-After` included (default
    /// 30 000).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

fn default_max_attempts() -> u32 {
    5
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    30_000
}

impl RetryPolicy {
    /// The wait after the `failures`-th failed attempt.
    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u64 << failures.saturating_sub(1).min(30);
        Duration::from_millis(
            self.initial_backoff_ms
                .saturating_mul(factor)
                .min(self.max_backoff_ms),
        )
    }
}

/// Incremental reading: only what changed since the last completed run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalConfig {
    /// The query parameter that takes the mark (`modified_since`, `updatedAfter`…). Its value
    /// is the mark as the platform wrote it (a string as is, a number in decimal). Platforms
    /// differ on whether an item modified exactly at the mark is sent again; either is safe.
    pub param: String,
    /// JSON Pointer to an item's last-modified value (`/updated_at`). Values are compared as
    /// numbers when both are numbers, else as strings (ISO 8601 times in one format sort
    /// right); items without it do not move the mark.
    pub modified_pointer: String,
    /// The checkpoint file (a small JSON document), one per source.
    pub checkpoint: PathBuf,
}

/// The checkpoint file's content.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
struct Checkpoint {
    /// The source's URL, so that a checkpoint is never applied to another platform.
    url: String,
    /// The high-water mark of the items' modified values.
    modified_since: Value,
}

/// Where paging stands.
#[derive(Debug, Clone, PartialEq)]
enum Position {
    /// The next request is the first (or only) one.
    First,
    /// Numbered paging: the next page's number.
    Page(u64),
    /// Offset paging: the next offset.
    Offset(u64),
    /// Cursor paging: the next cursor.
    Cursor(String),
    /// Link paging: the next page's URL.
    Link(Url),
    /// Every page has been read.
    Done,
}

/// Credentials with their secrets resolved.
enum Credentials {
    Bearer(String),
    Basic(String, String),
    Header(HeaderName, HeaderValue),
}

/// Why one attempt failed, and whether another may succeed.
struct Failure {
    retryable: bool,
    message: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn retryable(message: String) -> Failure {
        Failure {
            retryable: true,
            message,
            retry_after: None,
        }
    }
}

/// A platform's list, read a page at a time.
pub struct HttpSource {
    config: HttpSourceConfig,
    base: Url,
    client: reqwest::Client,
    headers: HeaderMap,
    credentials: Option<Credentials>,
    /// The mark this run asks from (from the checkpoint).
    modified_since: Option<Value>,
    /// The highest modified value seen (at least `modified_since`).
    high_water: Option<Value>,
    seen: HashSet<String>,
    position: Position,
    pages: u64,
    items: u64,
}

impl HttpSource {
    /// Checks the configuration, resolves credentials from the environment and reads the
    /// checkpoint, if any. Makes no request.
    pub fn new(config: HttpSourceConfig) -> Result<HttpSource, SourceError> {
        let invalid = |message: String| SourceError::Options { message };
        let base = Url::parse(&config.url)
            .map_err(|e| invalid(format!("url \"{}\" is not a URL: {e}", config.url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "url \"{}\" must be http:// or https://",
                config.url
            )));
        }
        check_pointer("items_pointer", &config.items_pointer)?;
        if let Some(pointer) = &config.id_pointer {
            check_pointer("id_pointer", pointer)?;
        }
        match &config.paging {
            Paging::Cursor {
                next_cursor_pointer,
                ..
            } => check_pointer("next_cursor_pointer", next_cursor_pointer)?,
            Paging::NextLink {
                next_pointer: Some(pointer),
                ..
            } => check_pointer("next_pointer", pointer)?,
            Paging::Page { size: 0, .. } | Paging::Offset { limit: 0, .. } => {
                return Err(invalid("a page size of 0 asks for nothing".to_owned()));
            }
            _ => {}
        }
        if config.retry.max_attempts == 0 {
            return Err(invalid(
                "retry.max_attempts counts the first attempt: it must be at least 1".to_owned(),
            ));
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("\"{name}\" is not a header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("the value of header {name} is not valid")))?;
            headers.insert(name, value);
        }
        let credentials = config.auth.as_ref().map(resolve_credentials).transpose()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .user_agent(concat!("rix-adapters/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        let modified_since = match &config.incremental {
            Some(incremental) => {
                check_pointer("modified_pointer", &incremental.modified_pointer)?;
                read_checkpoint(&incremental.checkpoint, &config.url)?
            }
            None => None,
        };
        Ok(HttpSource {
            base,
            client,
            headers,
            credentials,
            high_water: modified_since.clone(),
            modified_since,
            seen: HashSet::new(),
            position: Position::First,
            pages: 0,
            items: 0,
            config,
        })
    }

    /// The modified-since mark this run asks from (read from the checkpoint), if any.
    pub fn modified_since(&self) -> Option<&Value> {
        self.modified_since.as_ref()
    }

    /// The highest modified value read so far in this run (or the previous mark).
    pub fn high_water_mark(&self) -> Option<&Value> {
        self.high_water.as_ref()
    }

    /// Whether every page has been read.
    pub fn is_exhausted(&self) -> bool {
        self.position == Position::Done
    }

    /// Pages received so far.
    pub fn pages_read(&self) -> u64 {
        self.pages
    }

    /// Reads the next page: `Ok(Some(rows))` with the page's items not seen before in this run
    /// (possibly none, when a cursor or link page is empty but names a next one), `Ok(None)`
    /// once every page has been read (the empty page that ends numbered paging is not
    /// returned). An `Err` is final for this run (the retries are spent);
    /// calling again asks for the same page again.
    pub async fn next_page(&mut self) -> Result<Option<Vec<SourceRow>>, SourceError> {
        if self.position == Position::Done {
            return Ok(None);
        }
        let url = self.request_url();
        let page_number = self.pages + 1;
        let (mut page, link_next) = self.fetch(&url, page_number).await?;
        self.pages = page_number;
        let error = |message: String| SourceError::Http {
            url: url.to_string(),
            page: page_number,
            attempts: 1,
            message,
        };
        let items = match page
            .pointer_mut(&self.config.items_pointer)
            .map(Value::take)
        {
            Some(Value::Array(items)) => items,
            _ => unreachable!("fetch checks that the page has its array of items"),
        };
        let received = items.len() as u64;
        let page_url = url.to_string();
        let mut rows = Vec::with_capacity(items.len());
        for item in items {
            self.items += 1;
            if let Some(pointer) = &self.config.id_pointer
                && let Some(id) = item.pointer(pointer)
                && !self.seen.insert(identity(id))
            {
                continue;
            }
            if let Some(incremental) = &self.config.incremental
                && let Some(modified) = item.pointer(&incremental.modified_pointer)
                && !modified.is_null()
                && self
                    .high_water
                    .as_ref()
                    .is_none_or(|mark| is_later(modified, mark))
            {
                self.high_water = Some(modified.clone());
            }
            rows.push(SourceRow {
                origin: Origin {
                    file: page_url.clone(),
                    sheet: None,
                    row: self.items,
                },
                data: RowData::Tree(item),
            });
        }
        if received > 0 && rows.is_empty() {
            return Err(error(
                "every item on this page was already read in this run: the platform seems to ignore the paging parameter; check [source.paging]".to_owned(),
            ));
        }
        self.position = match (&self.config.paging, &self.position) {
            (Paging::Single, _) => Position::Done,
            (Paging::Page { .. }, _) | (Paging::Offset { .. }, _) if received == 0 => {
                Position::Done
            }
            (Paging::Page { first, .. }, Position::First) => Position::Page(first + 1),
            (Paging::Page { .. }, Position::Page(n)) => Position::Page(n + 1),
            (Paging::Offset { .. }, Position::First) => Position::Offset(received),
            (Paging::Offset { .. }, Position::Offset(offset)) => {
                Position::Offset(offset + received)
            }
            (
                Paging::Cursor {
                    next_cursor_pointer,
                    ..
                },
                current,
            ) => match page.pointer(next_cursor_pointer).and_then(cursor_text) {
                None => Position::Done,
                Some(cursor) if *current == Position::Cursor(cursor.clone()) => {
                    return Err(error(format!(
                        "the page names its own cursor \"{cursor}\" as the next one; the platform would be read forever"
                    )));
                }
                Some(cursor) => Position::Cursor(cursor),
            },
            (Paging::NextLink { next_pointer, .. }, _) => {
                let next = match next_pointer {
                    Some(pointer) => page
                        .pointer(pointer)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                    None => link_next,
                };
                match next {
                    None => Position::Done,
                    Some(link) => {
                        let next = url.join(&link).map_err(|e| {
                            error(format!("the next page's link \"{link}\" is not a URL: {e}"))
                        })?;
                        if next == url {
                            return Err(error(format!(
                                "the page links to itself ({next}) as the next page; the platform would be read forever"
                            )));
                        }
                        Position::Link(next)
                    }
                }
            }
            (_, position) => unreachable!("paging {:?} at {position:?}", self.config.paging),
        };
        if rows.is_empty() && self.position == Position::Done {
            return Ok(None);
        }
        Ok(Some(rows))
    }

    /// Writes the checkpoint: the next run asks only for items modified since the highest
    /// modified value this run read. Call it once every page has been read **and** the rows
    /// are stored where they were going; before the last page it refuses (pages not yet read
    /// may hold older changes). Without incremental reading, does nothing.
    pub fn save_checkpoint(&self) -> Result<(), SourceError> {
        let Some(incremental) = &self.config.incremental else {
            return Ok(());
        };
        let path = &incremental.checkpoint;
        if !self.is_exhausted() {
            return Err(SourceError::Checkpoint {
                path: path.display().to_string(),
                message: "not saved: the run has not read every page, and the pages not read may hold changes older than the mark".to_owned(),
            });
        }
        let Some(mark) = &self.high_water else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            url: self.config.url.clone(),
            modified_since: mark.clone(),
        };
        let text = serde_json::to_vec_pretty(&checkpoint).expect("a checkpoint serializes");
        write_atomically(path, &text).map_err(|e| SourceError::Checkpoint {
            path: path.display().to_string(),
            message: format!("cannot write it: {e}"),
        })
    }

    /// The URL of the next request.
    fn request_url(&self) -> Url {
        if let Position::Link(url) = &self.position {
            return url.clone();
        }
        let mut pairs: Vec<(&str, String)> = self
            .config
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if let (Some(incremental), Some(since)) = (&self.config.incremental, &self.modified_since) {
            pairs.push((incremental.param.as_str(), mark_text(since)));
        }
        match (&self.config.paging, &self.position) {
            (Paging::Single, _) => {}
            (
                Paging::Page {
                    page_param,
                    size_param,
                    size,
                    first,
                },
                position,
            ) => {
                let number = match position {
                    Position::Page(n) => *n,
                    _ => *first,
                };
                pairs.push((page_param, number.to_string()));
                pairs.push((size_param, size.to_string()));
            }
            (
                Paging::Offset {
                    offset_param,
                    limit_param,
                    limit,
                },
                position,
            ) => {
                let offset = match position {
                    Position::Offset(n) => *n,
                    _ => 0,
                };
                pairs.push((offset_param, offset.to_string()));
                pairs.push((limit_param, limit.to_string()));
            }
            (
                Paging::Cursor {
                    cursor_param,
                    size_param,
                    size,
                    ..
                },
                position,
            ) => {
                if let Position::Cursor(cursor) = position {
                    pairs.push((cursor_param, cursor.clone()));
                }
                if let (Some(param), Some(size)) = (size_param, size) {
                    pairs.push((param, size.to_string()));
                }
            }
            (
                Paging::NextLink {
                    size_param, size, ..
                },
                _,
            ) => {
                if let (Some(param), Some(size)) = (size_param, size) {
                    pairs.push((param, size.to_string()));
                }
            }
        }
        let mut url = self.base.clone();
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        url
    }

    /// Asks for a page until it comes, well-formed, or the retries are spent. Returns the page
    /// and the `Link` header's next URL.
    async fn fetch(&self, url: &Url, page: u64) -> Result<(Value, Option<String>), SourceError> {
        let retry = &self.config.retry;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self.attempt(url).await {
                Ok(fetched) => return Ok(fetched),
                Err(failure) => failure,
            };
            if !failure.retryable || attempts >= retry.max_attempts {
                return Err(SourceError::Http {
                    url: url.to_string(),
                    page,
                    attempts,
                    message: failure.message,
                });
            }
            let mut wait = retry.backoff(attempts);
            if let Some(asked) = failure.retry_after {
                wait = wait.max(asked);
            }
            tokio::time::sleep(wait.min(Duration::from_millis(retry.max_backoff_ms))).await;
        }
    }

    async fn attempt(&self, url: &Url) -> Result<(Value, Option<String>), Failure> {
        let mut request = self.client.get(url.clone()).headers(self.headers.clone());
        request = match &self.credentials {
            None => request,
            Some(Credentials::Bearer(token)) => request.bearer_auth(token),
            Some(Credentials::Basic(user, password)) => request.basic_auth(user, Some(password)),
            Some(Credentials::Header(name, value)) => request.header(name, value),
        };
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_failure(e))?;
        let status = response.status();
        if !status.is_success() {
            let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
            let hint = match status.as_u16() {
                401 | 403 => "; check the credentials in [source.auth]",
                404 => "; check [source] url",
                _ if retryable => "",
                _ => "; the request was refused, asking again will not help",
            };
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Failure {
                retryable,
                message: format!("the platform answered {status}{hint}"),
                retry_after,
            });
        }
        let link_next = response
            .headers()
            .get_all(LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link);
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_failure(e))?;
        let page = strict_json::parse_value(&body).map_err(|e| {
            Failure::retryable(format!(
                "the page is not JSON ({e}); it starts {:?}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            ))
        })?;
        if !matches!(
            page.pointer(&self.config.items_pointer),
            Some(Value::Array(_))
        ) {
            return Err(Failure::retryable(format!(
                "the page has no array of items at \"{}\"; check [source] items_pointer",
                self.config.items_pointer
            )));
        }
        Ok((page, link_next))
    }

    fn transport_failure(&self, error: reqwest::Error) -> Failure {
        let retryable = !error.is_builder();
        let message = if error.is_timeout() {
            format!(
                "no complete answer within {} ms (timeout_ms)",
                self.config.timeout_ms
            )
        } else if error.is_connect() {
            format!("cannot connect: {}", error.without_url())
        } else {
            error.without_url().to_string()
        };
        Failure {
            retryable,
            message,
            retry_after: None,
        }
    }
}

fn check_pointer(what: &str, pointer: &str) -> Result<(), SourceError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(SourceError::Options {
            message: format!(
                "{what} \"{pointer}\" is not a JSON Pointer; it starts with / (\"/{pointer}\"), or is \"\" for the whole document"
            ),
        })
    }
}

fn resolve_credentials(auth: &HttpAuth) -> Result<Credentials, SourceError> {
    fn secret(
        what: &str,
        inline: &Option<String>,
        env: &Option<String>,
    ) -> Result<String, SourceError> {
        match (inline, env) {
            (Some(value), None) => Ok(value.clone()),
            (None, Some(variable)) => std::env::var(variable).map_err(|_| SourceError::Options {
                message: format!(
                    "the environment variable {variable} ({what}) is not set; export it before the import"
                ),
            }),
            _ => Err(SourceError::Options {
                message: format!("give the {what} either inline or as an environment variable's name (…_env), exactly one of them"),
            }),
        }
    }
    Ok(match auth {
        HttpAuth::Bearer { token, token_env } => {
            Credentials::Bearer(secret("bearer token", token, token_env)?)
        }
        HttpAuth::Basic {
            username,
            password,
            password_env,
        } => Credentials::Basic(
            username.clone(),
            secret("password", password, password_env)?,
        ),
        HttpAuth::Header {
            name,
            value,
            value_env,
        } => {
            let header =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| SourceError::Options {
                    message: format!("\"{name}\" is not a header name"),
                })?;
            let mut value =
                HeaderValue::from_str(&secret("API key", value, value_env)?).map_err(|_| {
                    SourceError::Options {
                        message: format!("the value for header {name} is not a valid header value"),
                    }
                })?;
            value.set_sensitive(true);
            Credentials::Header(header, value)
        }
    })
}

/// An item's identity for de-duplication: a string as is, anything else as JSON.
fn identity(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A cursor value as text; `None` for absent, null or empty.
fn cursor_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The mark as a query parameter's value.
fn mark_text(mark: &Value) -> String {
    match mark {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Whether modified value `a` is later than `b` (numbers as numbers, strings as strings;
/// values of different kinds are not compared).
fn is_later(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a > b,
            _ => false,
        },
        (Value::String(a), Value::String(b)) => a > b,
        _ => false,
    }
}

/// The `rel="next"` target of one `Link` header value (RFC 8288), if it has one.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once('>')?;
        let target = target.trim().strip_prefix('<')?;
        let is_next = params.split(';').any(|param| {
            param.trim().split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            })
        });
        is_next.then(|| target.to_owned())
    })
}

fn read_checkpoint(path: &Path, url: &str) -> Result<Option<Value>, SourceError> {
    let failed = |message: String| SourceError::Checkpoint {
        path: path.display().to_string(),
        message,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(format!("cannot read it: {e}"))),
    };
    let checkpoint: Checkpoint = strict_json::from_slice(&bytes).map_err(|e| {
        failed(format!(
            "it is not a checkpoint ({e}); remove it to read everything again"
        ))
    })?;
    if checkpoint.url != url {
        return Err(failed(format!(
            "it was written for {}, not {url}; give each source its own checkpoint file",
            checkpoint.url
        )));
    }
    Ok(Some(checkpoint.modified_since).filter(|mark| !mark.is_null()))
}

/// Writes `bytes` to `path` so that a reader sees the old content or the new, never a part:
/// a temporary file beside it, flushed to disk, renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&directory)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".to_owned());
    let temporary = directory.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_others() {
        assert_eq!(
            next_link(
                r#"<https://p.example/api?page=1>; rel="prev", <https://p.example/api?page=3>; rel="next""#
            ),
            Some("https://p.example/api?page=3".to_owned())
        );
        assert_eq!(
            next_link(r#"</api?c=2>; rel=next"#),
            Some("/api?c=2".to_owned())
        );
        assert_eq!(next_link(r#"<https://p.example/a>; rel="last""#), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
        };
        let waits: Vec<u64> = (1..=6)
            .map(|n| policy.backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn marks_compare_as_numbers_or_as_strings() {
        assert!(is_later(&serde_json::json!(10), &serde_json::json!(9)));
        assert!(is_later(
            &serde_json::json!("2024-03-02T00:00:00Z"),
            &serde_json::json!("2024-03-01T23:59:59Z")
        ));
        assert!(!is_later(&serde_json::json!("10"), &serde_json::json!(9)));
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let auth = HttpAuth::Basic {
            username: "yunnan".into(),
            password: Some("s3cret".into()),
            password_env: None,
        };
        let shown = format!("{auth:?}");
        assert!(
            shown.contains("yunnan") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
