//! The HTTP feed puller: the transport that needs nothing but the nodes themselves
//! (DESIGN.md §4). Every node serves its signed log at `GET {feed_url}/v1/feed?after=SEQ&limit=N`
//! as JSON Lines, one whole batch per line; the puller walks each node's log from the
//! catalogue's own position for that node and hands every line to [`Ingest::ingest`] in order.
//!
//! It is the whole transport when no broker is configured (the embedded default), and beside
//! the broker it repairs gaps (the consumer asks through a [`FillHandle`]), catches up a node
//! that was offline, and backfills a new gateway.
//!
//! What it guarantees:
//! - **The cursor is the catalogue.** A node's cursor is `next_seq - 1` of its stored chain
//!   position ([`ingest::chain_position`]), read again before every page. Nothing is kept in
//!   memory that a crash could lose or that could disagree with what the AMQP consumer applied
//!   meanwhile; a batch the consumer applied first simply comes back as a duplicate.
//! - **One node never stalls another.** [`Puller::run`] gives every node its own task; a node
//!   that is down, slow, endlessly trickling bytes, or serving refused batches only backs off
//!   its own task (exponentially, capped).
//! - **Bounded work per request.** A page is read as a stream with a total deadline and a byte
//!   ceiling, so neither an endless nor a huge response can hold the puller or its memory; and
//!   at most [`PAGES_AT_ONCE`] pages are ingested at once across all nodes, so a backfill from
//!   forty nodes holds a few pages, not forty, and at most [`PREPARED_AT_ONCE`] verified batches
//!   wait for their commit.
//! - **Stop at the first bad line.** A page is committed line by line, in order (the next few
//!   lines are verified meanwhile, [`PIPELINE`]); the first line that is refused (already
//!   counted and audited by ingest) or is a gap ends the page, and the node backs off. Lines
//!   after it are never applied out of order. A body cut mid-line applies its complete lines
//!   and drops the fragment without auditing it (the transfer failed, not the node).
//!
//! **Credentials.** A node's feed carries internal records and every disclosure, so it serves
//! enrolled gateways only (DESIGN.md §4). Every page request carries the bearer token the node
//! issued to this gateway, stored with the node's feed URL in the trust store
//! ([`crate::trust::feed_token`], read again at every catch-up so a rotated token takes effect
//! at once; never logged). For nodes that bind the gateway to a TLS client certificate the
//! client presents [`FeedTls::client_cert`], and [`FeedTls::server_ca`] verifies the nodes'
//! server certificates. A 401 or 403 is [`PullError::Unauthorized`], which says what to fix.
//!
//! What it does not do: verify or apply anything itself (ingest does, line by line), nor keep a
//! cursor of its own. What it reads of the catalogue: the trust store's feed URLs and tokens,
//! and each node's chain position, through ingest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use rix_runtime::health::{Link, LinkReport};
use rix_runtime::metrics::registered;
use rix_schema::batch::Refusal;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::db::StoreError;
use crate::ingest::{self, Ingest, IngestError, Outcome, Transport};

/// How the puller talks to the nodes' feeds.
///
/// The defaults suit a federation of a few dozen nodes over a WAN: generous timeouts (a node
/// answering a 2,000-entry page from PostgreSQL under load can take seconds), a page small
/// enough to keep a node's failure cheap to retry, and a poll every two seconds, which is the
/// freshness bound when the feed is the only transport.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// Time allowed to open the TCP (and TLS) connection to a node (default 10 s).
    pub connect_timeout: Duration,
    /// Time allowed for one page, from connecting to the last byte of the body (default 30 s):
    /// a node that trickles bytes forever is cut off here.
    pub request_timeout: Duration,
    /// Entries asked for per page (`limit=`; default 2,000). The node answers whole batches, so
    /// a page may hold more (one batch is never split).
    pub page_limit: u32,
    /// How often each node's feed is polled when there is nothing to fill (default 2 s).
    pub poll_interval: Duration,
    /// Largest page body accepted, in bytes (default 64 MiB); a bigger page is abandoned
    /// unread. Must exceed the largest batch the gateway accepts (16 MiB by default).
    pub max_page_bytes: usize,
    /// First wait after a failed pull (default 500 ms); doubles per consecutive failure.
    pub backoff_initial: Duration,
    /// Longest wait between retries of a failing node (default 60 s).
    pub backoff_max: Duration,
    /// How often the node list is re-read from the trust store (default 30 s); a fill request
    /// for a node the puller does not know yet re-reads it at once.
    pub rescan_interval: Duration,
    /// TLS toward the nodes: the gateway's client certificate, the nodes' CA.
    pub tls: FeedTls,
}

/// TLS material of the feed puller (`[pull]` in the gateway's config). All optional: without
/// any, the puller verifies nodes against the system's roots and presents no certificate.
#[derive(Debug, Clone, Default)]
pub struct FeedTls {
    /// The gateway's TLS client certificate chain (PEM, leaf first), presented to every node;
    /// nodes that enrol the gateway with `require_client_cert` refuse it without one.
    pub client_cert: Option<PathBuf>,
    /// The private key of `client_cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
    /// CA certificates (PEM) that nodes' server certificates must chain to, **instead of** the
    /// system's roots (a federation's private CA).
    pub server_ca: Option<PathBuf>,
}

impl FeedTls {
    /// Applies the material to a client under construction.
    fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, PullError> {
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| PullError::Client(format!("{what} {}: {e}", path.display())))
        };
        match (&self.client_cert, &self.client_key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                let cert_pem = read("client certificate", cert)?;
                let key_pem = read("client key", key)?;
                // reqwest's native TLS wants PKCS#8; accept what `openssl genrsa`/`ecparam`
                // write too.
                let bad_key = |e: openssl::error::ErrorStack| {
                    PullError::Client(format!("client key {}: {e}", key.display()))
                };
                let pkcs8 = openssl::pkey::PKey::private_key_from_pem(&key_pem)
                    .and_then(|k| k.private_key_to_pem_pkcs8())
                    .map_err(bad_key)?;
                let identity =
                    reqwest::Identity::from_pkcs8_pem(&cert_pem, &pkcs8).map_err(|e| {
                        PullError::Client(format!(
                            "client certificate {} with key {}: {e}",
                            cert.display(),
                            key.display()
                        ))
                    })?;
                builder = builder.identity(identity);
            }
            _ => {
                return Err(PullError::Client(
                    "set both client_cert and client_key, or neither".into(),
                ));
            }
        }
        if let Some(ca) = &self.server_ca {
            let certs = reqwest::Certificate::from_pem_bundle(&read("server CA", ca)?)
                .map_err(|e| PullError::Client(format!("server CA {}: {e}", ca.display())))?;
            if certs.is_empty() {
                return Err(PullError::Client(format!(
                    "server CA {}: no PEM certificate in the file",
                    ca.display()
                )));
            }
            builder = builder.tls_certs_only(certs);
        }
        Ok(builder)
    }
}

/// The HTTP client the gateway talks to nodes with: the puller's timeouts and TLS material
/// (its client certificate, the nodes' CA). `rix trust rotate` reads a node's `/v1/keys` with
/// it too, so that it reaches every node the puller reaches.
pub fn http_client(config: &PullConfig) -> Result<reqwest::Client, PullError> {
    let builder = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .user_agent(concat!("rix-gateway/", env!("CARGO_PKG_VERSION")));
    config
        .tls
        .apply(builder)?
        .build()
        .map_err(|e| PullError::Client(e.to_string()))
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            page_limit: 2000,
            poll_interval: Duration::from_secs(2),
            max_page_bytes: 64 * 1024 * 1024,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            rescan_interval: Duration::from_secs(30),
            tls: FeedTls::default(),
        }
    }
}

/// Why a pull of one node stopped before its feed was exhausted.
///
/// Transport failures (`Http`, `Timeout`, `Status`, `TooLarge`, `Truncated`) apply nothing from
/// the failed page's missing part and are retried with backoff; `Refused` and `Gap` mean the node
/// served something the catalogue cannot take, which retrying only helps once the node is fixed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The HTTP client could not be built (TLS backend unavailable).
    #[error("cannot build the HTTP client for the feed puller: {0}")]
    Client(String),
    /// Connecting or reading failed.
    #[error("feed of {node_id} at {url}: {cause}; retrying with backoff")]
    Http {
        /// Node.
        node_id: String,
        /// The request URL.
        url: String,
        /// What went wrong, in the operator's terms ([`network_cause`]).
        cause: String,
        /// What reqwest said.
        #[source]
        source: reqwest::Error,
    },
    /// No complete answer within the request timeout.
    #[error(
        "feed of {node_id} at {url} did not answer completely within {timeout:?}; is the node overloaded or the network slow? retrying with backoff"
    )]
    Timeout {
        /// Node.
        node_id: String,
        /// The request URL.
        url: String,
        /// The limit that was hit.
        timeout: Duration,
    },
    /// The node does not accept this gateway's credential (HTTP 401 or 403).
    #[error(
        "feed of {node_id} at {url} answered HTTP {status}: the node does not accept this gateway's credential. \
         Store the token the node enrolled for this gateway (its [[gateways]] entry) with \
         `rix trust add --node {node_id} --key … --feed-token-file FILE`; if the node binds the gateway \
         to a TLS client certificate, set [pull] client_cert and client_key. Retrying with backoff"
    )]
    Unauthorized {
        /// Node.
        node_id: String,
        /// The request URL.
        url: String,
        /// HTTP status (401 or 403).
        status: u16,
    },
    /// The node answered with an HTTP error.
    #[error("feed of {node_id} at {url} answered HTTP {status}; retrying with backoff")]
    Status {
        /// Node.
        node_id: String,
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// The page is bigger than `max_page_bytes`.
    #[error(
        "a page of {node_id}'s feed at {url} is larger than {limit} bytes; it was abandoned unread (raise max_page_bytes or lower page_limit if the node's batches are really this big)"
    )]
    TooLarge {
        /// Node.
        node_id: String,
        /// The request URL.
        url: String,
        /// The ceiling.
        limit: usize,
    },
    /// The body ended in the middle of a line (a cut connection): the complete lines before it
    /// were ingested, the fragment was not.
    #[error(
        "a page of {node_id}'s feed at {url} ended in the middle of a line after {complete_lines} complete lines; the fragment was dropped and the rest is fetched again"
    )]
    Truncated {
        /// Node.
        node_id: String,
        /// The request URL.
        url: String,
        /// Lines ingested before the fragment.
        complete_lines: usize,
    },
    /// The feed served a batch that ingest refused (counted and audited there).
    #[error(
        "{node_id}'s feed served a batch the gateway refuses (stage {stage}): {refusal}; {}",
        where_to_fix(node_id, refusal)
    )]
    Refused {
        /// Node.
        node_id: String,
        /// Pipeline stage.
        stage: &'static str,
        /// Why (boxed, as ingest gives it).
        refusal: Box<Refusal>,
    },
    /// The feed skipped batches: it served a later batch than the one the catalogue waits for.
    #[error(
        "{node_id}'s feed served batch {found_batch_seq} but the catalogue waits for batch {expected_batch_seq}; the node's feed is missing batches — check the node"
    )]
    Gap {
        /// Node.
        node_id: String,
        /// The batch the catalogue waits for.
        expected_batch_seq: u64,
        /// The batch the feed served.
        found_batch_seq: u64,
    },
    /// The catalogue database failed; nothing of the failed line was applied.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a failed request means for the operator: whether the node could not be reached at all
/// (and the lowest-level reason: refused, unresolvable, TLS), or answered and then failed.
/// reqwest's own message ("error sending request for url") names neither.
pub fn network_cause(e: &reqwest::Error) -> String {
    let mut deepest = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        deepest = s.to_string();
        source = s.source();
    }
    let lower = deepest.to_lowercase();
    let what = if lower.contains("certificate") || lower.contains("ssl") || lower.contains("tls") {
        "the TLS handshake with the node failed (check the node's certificate, [pull] server_ca and client_cert)"
    } else if lower.contains("dns") || lower.contains("resolve") || lower.contains("lookup") {
        "the node's host name does not resolve (check the feed URL: rix trust list)"
    } else if e.is_connect() {
        "the node is unreachable (is it running, listening on that address, not behind a firewall?)"
    } else if e.is_body() || e.is_decode() {
        "the connection broke while the node was sending the page"
    } else {
        "the request to the node failed"
    };
    format!("{what}: {deepest}")
}

/// Where the fix for a refused batch lies: refusals about the key are the gateway's to fix
/// (its trust store), the others the node's.
fn where_to_fix(node_id: &str, refusal: &Refusal) -> String {
    match refusal.reason() {
        "unknown_node" => format!(
            "the fix is on the gateway: trust the node and its key (`rix trust add --node {node_id} --key …`); pulling from this node backs off until then"
        ),
        "unknown_key" | "key_not_valid" => format!(
            "the fix is on the gateway: trust the key the node signs with, with the window the node lists (`rix trust rotate --node {node_id}`); pulling from this node backs off until then"
        ),
        "key_revoked" | "key_compromised" => format!(
            "the key is revoked in this gateway's trust store (for this batch's date); if {node_id} has a new key, trust it (`rix trust rotate --node {node_id}`); pulling from this node backs off until then"
        ),
        "future_dated" => format!(
            "{node_id} dates its batches ahead of this gateway's clock: check both clocks (NTP); pulling from this node backs off and takes the batch once its time has come"
        ),
        _ => "pulling from this node backs off until the node's log is repaired".to_owned(),
    }
}

impl PullError {
    /// Whether the node's feed failed to answer usefully (unreachable, timed out, refused our
    /// credential, answered an error or garbage), as opposed to answering batches that were
    /// then refused, or our own storage failing.
    pub fn is_unanswered(&self) -> bool {
        !matches!(
            self,
            PullError::Refused { .. } | PullError::Gap { .. } | PullError::Store(_)
        )
    }

    /// Stable label for `rix_gateway_feed_pulls_total{result}`.
    pub fn kind(&self) -> &'static str {
        match self {
            PullError::Client(_) => "client",
            PullError::Http { .. } => "http",
            PullError::Timeout { .. } => "timeout",
            PullError::Unauthorized { .. } => "unauthorized",
            PullError::Status { .. } => "status",
            PullError::TooLarge { .. } => "too_large",
            PullError::Truncated { .. } => "truncated",
            PullError::Refused { .. } => "refused",
            PullError::Gap { .. } => "gap",
            PullError::Store(_) => "store",
        }
    }

    /// The refusal reason code when ingest refused a line (as in the audit table).
    pub fn refusal_reason(&self) -> Option<&'static str> {
        match self {
            PullError::Refused { refusal, .. } => Some(refusal.reason()),
            _ => None,
        }
    }

    fn from_ingest(node_id: &str, e: IngestError) -> PullError {
        match e {
            IngestError::Refused { stage, refusal } => PullError::Refused {
                node_id: node_id.to_owned(),
                stage,
                refusal,
            },
            IngestError::Gap {
                node_id,
                expected_batch_seq,
                found_batch_seq,
            } => PullError::Gap {
                node_id,
                expected_batch_seq,
                found_batch_seq,
            },
            IngestError::Store(e) => PullError::Store(e),
        }
    }
}

/// Lines of a page verified at once ahead of the in-order commits: enough to keep both cores
/// busy verifying while one line commits.
pub const PIPELINE: usize = 4;

/// Pages ingested at once across all nodes. Each holds up to `2 × PIPELINE` batches verified
/// ahead of its commits; unbounded, a backfill from 40 nodes held 40 pages' worth of parsed
/// batches (and as many blocking threads) at once — a gateway of 4.4 GB RSS pulling 1,000,000
/// records (ops/BENCHMARKS.md, "Backfill from 40 nodes") — while the catalogue commits one
/// group at a time anyway. With 4 the backfill was 12 % slower; 8 keeps its pace. Fetching is
/// not bounded by it, so a slow or silent node never holds a permit the others wait for.
pub const PAGES_AT_ONCE: usize = 8;

/// Batches verified and waiting for their commit, across all pages being ingested. The
/// catalogue commits one group of at most [`PIPELINE`] batches at a time, so a few groups
/// prepared ahead keep it busy; more only wait in memory, each parsed batch several times the
/// size of its text. Bounded by pages alone, eight pages held up to `8 × 2 × PIPELINE` of them:
/// at 1,000,000 records from 40 nodes this bound took the gateway's peak from 2.0 to 1.6 GB
/// (ops/BENCHMARKS.md, "The C heap's arenas").
pub const PREPARED_AT_ONCE: usize = 4 * PIPELINE;

const RESULTS: [&str; 11] = [
    "ok",
    "client",
    "http",
    "timeout",
    "unauthorized",
    "status",
    "too_large",
    "truncated",
    "refused",
    "gap",
    "store",
];

/// Puller metrics (`rix_gateway_feed_*`); batch outcomes are counted by
/// [`crate::ingest::IngestMetrics`] with `transport="feed"`.
#[derive(Clone)]
pub struct PullMetrics {
    /// Page requests, by result (`ok` or a [`PullError::kind`]).
    pub pulls: IntCounterVec,
    /// Page bytes received.
    pub bytes: IntCounter,
    /// Entries a node has sealed that the catalogue does not hold yet, per node (from the
    /// feed's `X-Rix-Last-Seq`): the backlog an operator watches.
    pub behind: IntGaugeVec,
    /// Gap fills asked for by the AMQP consumer.
    pub fill_requests: IntCounter,
    /// Nodes with a running pull task.
    pub nodes: IntGauge,
}

impl PullMetrics {
    /// Registers the metrics in `registry`.
    ///
    /// # Panics
    ///
    /// If they are already registered there (one puller per registry).
    pub fn new(registry: &Registry) -> PullMetrics {
        let pulls = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "rix_gateway_feed_pulls_total",
                    "Feed page requests, by result (ok, or why the pull stopped).",
                ),
                &["result"],
            ),
        );
        for r in RESULTS {
            pulls.with_label_values(&[r]);
        }
        let bytes = registered(
            registry,
            IntCounter::new(
                "rix_gateway_feed_bytes_total",
                "Bytes of feed pages received.",
            ),
        );
        let behind = registered(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    "rix_gateway_feed_behind_entries",
                    "Entries a node has sealed that the catalogue does not hold yet.",
                ),
                &["node"],
            ),
        );
        let fill_requests = registered(
            registry,
            IntCounter::new(
                "rix_gateway_feed_fill_requests_total",
                "Gap fills asked for by the AMQP consumer.",
            ),
        );
        let nodes = registered(
            registry,
            IntGauge::new(
                "rix_gateway_feed_nodes",
                "Nodes with a running feed pull task.",
            ),
        );
        PullMetrics {
            pulls,
            bytes,
            behind,
            fill_requests,
            nodes,
        }
    }
}

/// What one [`Puller::catch_up_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    /// Node.
    pub node_id: String,
    /// Pages fetched.
    pub pages: usize,
    /// Batches applied.
    pub batches_applied: usize,
    /// Batches already held (applied earlier, or by the consumer meanwhile).
    pub batches_duplicate: usize,
    /// Entries that changed the catalogue.
    pub entries_applied: usize,
    /// Entries at or below the version held.
    pub entries_stale: usize,
    /// Entries quarantined (classified or invalid).
    pub entries_quarantined: usize,
    /// The last seq the catalogue holds for the node afterwards.
    pub position: u64,
    /// The node's last sealed seq, as its feed last said (`X-Rix-Last-Seq`).
    pub remote_last_seq: Option<u64>,
}

/// Lets the AMQP consumer say "node X has a gap, pull it now".
///
/// Cheap to clone; requests coalesce (many requests for a node while its pull runs cause one
/// more pull, not many). A node's task waits out an error backoff before it acts on a request,
/// so a broken node is not hammered by every batch the broker brings for it.
#[derive(Clone, Default)]
pub struct FillHandle {
    inner: Arc<FillInner>,
}

#[derive(Default)]
struct FillInner {
    nodes: Mutex<HashMap<String, Arc<Notify>>>,
    rescan: Notify,
    requests: Mutex<Option<IntCounter>>,
}

impl FillHandle {
    /// Asks for `node_id`'s feed to be pulled now.
    pub fn request(&self, node_id: &str) {
        if let Some(c) = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            c.inc();
        }
        self.signal(node_id).notify_one();
        // The node may have been trusted since the last scan.
        self.inner.rescan.notify_one();
    }

    fn signal(&self, node_id: &str) -> Arc<Notify> {
        self.inner
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(node_id.to_owned())
            .or_default()
            .clone()
    }
}

/// The feed puller: an [`Ingest`], an HTTP client with timeouts, and one task per node.
///
/// Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Puller {
    inner: Arc<Inner>,
}

struct Inner {
    ingest: Ingest,
    client: reqwest::Client,
    /// [`PAGES_AT_ONCE`] permits, one held by each page being ingested.
    ingesting: tokio::sync::Semaphore,
    /// [`PREPARED_AT_ONCE`] permits, one held by each line from its preparation to its commit.
    preparing: Arc<tokio::sync::Semaphore>,
    config: PullConfig,
    metrics: PullMetrics,
    fills: FillHandle,
    feeds: FeedHealth,
}

/// Whether each node's feed answers, for `/healthz`: a node whose feed fails (unreachable,
/// timing out, refusing our credential, answering garbage) is `failing` with the cause. A feed
/// that answered is `connected`, even if its batches were then refused: refusals are the
/// catalogue's to report. Cheap to clone (shared inside).
#[derive(Clone, Default)]
pub struct FeedHealth {
    links: Arc<Mutex<HashMap<String, Link>>>,
    behind: Option<IntGaugeVec>,
}

impl FeedHealth {
    fn link(&self, node_id: &str) -> Link {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(node_id.to_owned())
            .or_default()
            .clone()
    }

    /// How `node_id`'s feed answered lately (`None`: never pulled by this process).
    pub fn report(&self, node_id: &str) -> Option<LinkReport> {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links.get(node_id).map(Link::report)
    }

    /// Entries `node_id` has sealed that the catalogue does not hold, as its feed last said.
    pub fn behind(&self, node_id: &str) -> Option<i64> {
        let gauge = self
            .behind
            .as_ref()?
            .get_metric_with_label_values(&[node_id])
            .ok()?;
        Some(gauge.get())
    }
}

/// One fetched page.
struct Page {
    url: String,
    body: Vec<u8>,
    remote_last_seq: Option<u64>,
}

/// What ingesting a page's lines did, on the blocking pool.
#[derive(Default)]
struct LinesDone {
    lines: usize,
    applied: usize,
    duplicate: usize,
    entries_applied: usize,
    entries_stale: usize,
    entries_quarantined: usize,
    entries_seen: u64,
}

impl Puller {
    /// A puller feeding `ingest`, with its metrics registered in `registry`.
    ///
    /// # Panics
    ///
    /// If the puller's metrics are already registered in `registry`.
    pub fn new(
        ingest: Ingest,
        config: PullConfig,
        registry: &Registry,
    ) -> Result<Puller, PullError> {
        let client = http_client(&config)?;
        let metrics = PullMetrics::new(registry);
        let fills = FillHandle::default();
        let feeds = FeedHealth {
            links: Arc::default(),
            behind: Some(metrics.behind.clone()),
        };
        *fills
            .inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(metrics.fill_requests.clone());
        Ok(Puller {
            inner: Arc::new(Inner {
                ingest,
                client,
                ingesting: tokio::sync::Semaphore::new(PAGES_AT_ONCE),
                preparing: Arc::new(tokio::sync::Semaphore::new(PREPARED_AT_ONCE)),
                config,
                metrics,
                fills,
                feeds,
            }),
        })
    }

    /// The handle the AMQP consumer uses to ask for a node's gap to be filled.
    pub fn fill_handle(&self) -> FillHandle {
        self.inner.fills.clone()
    }

    /// The puller's metrics.
    pub fn metrics(&self) -> &PullMetrics {
        &self.inner.metrics
    }

    /// Whether each node's feed answers.
    pub fn feed_health(&self) -> FeedHealth {
        self.inner.feeds.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &PullConfig {
        &self.inner.config
    }

    /// Pulls `node_id`'s feed at `feed_url` until it is exhausted (the catalogue holds the
    /// node's last sealed seq, or a page brings nothing new), or until the first failure.
    ///
    /// Everything ingested before a failure stays applied: the next pull starts right after it.
    /// Used by the per-node tasks of [`Puller::run`], and directly for backfill and tests.
    pub async fn catch_up_once(
        &self,
        node_id: &str,
        feed_url: &str,
    ) -> Result<PullReport, PullError> {
        let result = self.catch_up(node_id, feed_url).await;
        let link = self.inner.feeds.link(node_id);
        match &result {
            Err(e) if e.is_unanswered() => link.failed(e),
            _ => link.connected(),
        }
        if let Err(e) = &result {
            self.inner
                .metrics
                .pulls
                .with_label_values(&[e.kind()])
                .inc();
        }
        result
    }

    async fn catch_up(&self, node_id: &str, feed_url: &str) -> Result<PullReport, PullError> {
        let mut report = PullReport {
            node_id: node_id.to_owned(),
            ..PullReport::default()
        };
        let mut held = self.position(node_id).await?;
        let token = self.feed_token(node_id).await?;
        loop {
            let page = self
                .fetch(node_id, feed_url, token.as_deref(), held)
                .await?;
            report.pages += 1;
            report.remote_last_seq = page.remote_last_seq.or(report.remote_last_seq);
            let (lines, fragment) = split_lines(&page.body);
            let line_count = lines.len();
            let (done, failure) = {
                // Never closed: the semaphore lives as long as the puller.
                let _permit = self.inner.ingesting.acquire().await;
                self.ingest_lines(node_id, page.body, lines).await
            };
            report.batches_applied += done.applied;
            report.batches_duplicate += done.duplicate;
            report.entries_applied += done.entries_applied;
            report.entries_stale += done.entries_stale;
            report.entries_quarantined += done.entries_quarantined;
            if let Some(e) = failure {
                return Err(PullError::from_ingest(node_id, e));
            }
            if fragment {
                return Err(PullError::Truncated {
                    node_id: node_id.to_owned(),
                    url: page.url,
                    complete_lines: done.lines,
                });
            }
            self.inner.metrics.pulls.with_label_values(&["ok"]).inc();
            let now_held = self.position(node_id).await?;
            report.position = now_held;
            if let Some(last) = page.remote_last_seq {
                self.inner
                    .metrics
                    .behind
                    .with_label_values(&[node_id])
                    .set(last.saturating_sub(now_held).min(i64::MAX as u64) as i64);
            }
            let progressed = now_held > held;
            held = now_held;
            let more = match page.remote_last_seq {
                Some(last) => held < last,
                // A feed without the header: go on while pages come back full.
                None => done.entries_seen >= u64::from(self.inner.config.page_limit),
            };
            // A page of duplicates only (a feed ignoring `after`) must not loop forever.
            if line_count == 0 || !progressed || !more {
                return Ok(report);
            }
        }
    }

    /// The last seq the catalogue holds for the node.
    async fn position(&self, node_id: &str) -> Result<u64, PullError> {
        let db = self.inner.ingest.db().clone();
        let node = node_id.to_owned();
        let position = tokio::task::spawn_blocking(move || ingest::chain_position(&db, &node))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(position.next_seq.saturating_sub(1))
    }

    /// The bearer token to present to the node's feed, from the trust store.
    async fn feed_token(&self, node_id: &str) -> Result<Option<String>, PullError> {
        let db = self.inner.ingest.db().clone();
        let node = node_id.to_owned();
        Ok(
            tokio::task::spawn_blocking(move || crate::trust::feed_token(&db, &node))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??,
        )
    }

    /// One page: the body read as a stream, under a total deadline and a byte ceiling.
    async fn fetch(
        &self,
        node_id: &str,
        feed_url: &str,
        token: Option<&str>,
        after: u64,
    ) -> Result<Page, PullError> {
        let config = &self.inner.config;
        let url = format!(
            "{}/v1/feed?after={after}&limit={}",
            feed_url.trim_end_matches('/'),
            config.page_limit
        );
        let http = |source: reqwest::Error| {
            if source.is_timeout() {
                PullError::Timeout {
                    node_id: node_id.to_owned(),
                    url: url.clone(),
                    timeout: config.request_timeout,
                }
            } else {
                PullError::Http {
                    node_id: node_id.to_owned(),
                    url: url.clone(),
                    cause: network_cause(&source),
                    source,
                }
            }
        };
        let too_large = || PullError::TooLarge {
            node_id: node_id.to_owned(),
            url: url.clone(),
            limit: config.max_page_bytes,
        };
        let read = async {
            let mut request = self.inner.client.get(&url);
            if let Some(token) = token {
                // Marked sensitive by reqwest: never in its debug output.
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(http)?;
            let status = response.status();
            if matches!(status.as_u16(), 401 | 403) {
                return Err(PullError::Unauthorized {
                    node_id: node_id.to_owned(),
                    url: url.clone(),
                    status: status.as_u16(),
                });
            }
            if !status.is_success() {
                return Err(PullError::Status {
                    node_id: node_id.to_owned(),
                    url: url.clone(),
                    status: status.as_u16(),
                });
            }
            let declared = response.content_length();
            if declared.is_some_and(|n| n > config.max_page_bytes as u64) {
                return Err(too_large());
            }
            let remote_last_seq = response
                .headers()
                .get("x-rix-last-seq")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let mut body = Vec::with_capacity(declared.unwrap_or(0).min(1 << 20) as usize);
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(http)?;
                if body.len() + chunk.len() > config.max_page_bytes {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Page {
                url: url.clone(),
                body,
                remote_last_seq,
            })
        };
        // reqwest's own timeout covers the body too; this deadline is the belt to its braces,
        // so that no future change of client settings can let a trickling body hang a task.
        let page = match tokio::time::timeout(config.request_timeout, read).await {
            Ok(page) => page?,
            Err(_) => {
                return Err(PullError::Timeout {
                    node_id: node_id.to_owned(),
                    url,
                    timeout: config.request_timeout,
                });
            }
        };
        self.inner.metrics.bytes.inc_by(page.body.len() as u64);
        Ok(page)
    }

    /// Ingests the lines in order, stopping at the first failure: up to [`PIPELINE`] lines are
    /// verified and screened ([`Ingest::prepare`]) at once on the blocking pool, and committed
    /// in feed order, those already prepared together ([`Ingest::commit_group`]).
    ///
    /// Lines prepared ahead of a failing one are dropped uncommitted; one of them that is
    /// itself refused is audited then and again when the page is fetched again.
    async fn ingest_lines(
        &self,
        node_id: &str,
        body: Vec<u8>,
        lines: Vec<std::ops::Range<usize>>,
    ) -> (LinesDone, Option<IngestError>) {
        let body = Arc::new(body);
        let task = |e: tokio::task::JoinError| IngestError::Store(StoreError::Task(e.to_string()));
        let prepared = futures_util::stream::iter(lines)
            // Permits are taken in line order and given back as lines commit, in that order: a
            // page that holds any permit holds its next line's, so it can always commit and free
            // it, whatever the other pages hold. (Never closed: `ok()` is always `Some`.)
            .then(|range| {
                let preparing = self.inner.preparing.clone();
                async move { (preparing.acquire_owned().await.ok(), range) }
            })
            .map(|(permit, range)| {
                let ingest = self.inner.ingest.clone();
                let body = body.clone();
                // A node's feed carries that node's batches only.
                let origin = node_id.to_owned();
                let arrived_as = format!("the feed of {node_id}");
                let preparing = tokio::task::spawn_blocking(move || {
                    ingest.prepare_from(&body[range], Transport::Feed, Some((&origin, &arrived_as)))
                });
                async move { (permit, preparing.await) }
            })
            // Twice PIPELINE: a group taken out leaves PIPELINE preparations running beside its
            // commit (`buffered` starts new ones only when next polled, after it).
            .buffered(2 * PIPELINE);
        let mut done = LinesDone::default();
        // The lines already prepared when a commit begins commit together, in one transaction
        // (Ingest::commit_group; `ready_chunks` never waits to fill a group); the first line
        // that fails ends the page.
        let mut ready = std::pin::pin!(prepared.ready_chunks(PIPELINE));
        while let Some(chunk) = ready.next().await {
            let mut group = Vec::new();
            let mut refused = None;
            // Held until the group's commit is over: the batches stay in memory until then.
            let mut permits = Vec::with_capacity(chunk.len());
            for (permit, joined) in chunk {
                permits.push(permit);
                match joined.map_err(task).and_then(|p| p) {
                    Ok(p) => group.push(p),
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            let outcomes = if group.is_empty() {
                Vec::new()
            } else {
                let ingest = self.inner.ingest.clone();
                let n = group.len();
                match tokio::task::spawn_blocking(move || ingest.commit_group(group)).await {
                    Ok(outcomes) => outcomes,
                    Err(e) => {
                        let why = e.to_string();
                        (0..n)
                            .map(|_| Err(IngestError::Store(StoreError::Task(why.clone()))))
                            .collect()
                    }
                }
            };
            drop(permits);
            for outcome in outcomes.into_iter().chain(refused.map(Err)) {
                match outcome {
                    Ok(Outcome::Applied {
                        applied,
                        stale,
                        quarantined,
                        ..
                    }) => {
                        done.applied += 1;
                        done.entries_applied += applied;
                        done.entries_stale += stale;
                        done.entries_quarantined += quarantined;
                        done.entries_seen += (applied + stale + quarantined) as u64;
                    }
                    Ok(Outcome::Duplicate { .. }) => done.duplicate += 1,
                    Err(e) => return (done, Some(e)),
                }
                done.lines += 1;
            }
        }
        (done, None)
    }

    /// Pulls every node with a feed URL in the trust store until `shutdown` turns true: one
    /// task per node, polling every `poll_interval`, at once on a fill request, backing off on
    /// failure. The node list is re-read every `rescan_interval` (and on a fill request), so
    /// nodes trusted later are picked up and changed feed URLs take effect.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut tasks: HashMap<String, (String, JoinHandle<()>)> = HashMap::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let db = self.inner.ingest.db().clone();
            match tokio::task::spawn_blocking(move || crate::trust::feeds(&db)).await {
                Ok(Ok(feeds)) => self.reconcile(&mut tasks, feeds, &shutdown),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the nodes' feed URLs; keeping the current ones")
                }
                Err(e) => tracing::warn!(error = %e, "reading the nodes' feed URLs did not finish"),
            }
            tokio::select! {
                _ = stopped(&mut shutdown) => break,
                _ = tokio::time::sleep(self.inner.config.rescan_interval) => {}
                _ = self.inner.fills.inner.rescan.notified() => {}
            }
        }
        for (_, (_, task)) in tasks.drain() {
            let _ = task.await;
        }
        self.inner.metrics.nodes.set(0);
    }

    fn reconcile(
        &self,
        tasks: &mut HashMap<String, (String, JoinHandle<()>)>,
        feeds: Vec<(String, String)>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let wanted: HashMap<String, String> = feeds.into_iter().collect();
        tasks.retain(|node, (url, task)| {
            let keep = wanted.get(node) == Some(url) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (node, url) in wanted {
            if tasks.contains_key(&node) {
                continue;
            }
            tracing::info!(node_id = %node, feed_url = %url, "pulling the node's feed");
            let signal = self.inner.fills.signal(&node);
            let task = tokio::spawn(self.clone().node_loop(
                node.clone(),
                url.clone(),
                signal,
                shutdown.clone(),
            ));
            tasks.insert(node, (url, task));
        }
        self.inner.metrics.nodes.set(tasks.len() as i64);
    }

    async fn node_loop(
        self,
        node_id: String,
        feed_url: String,
        signal: Arc<Notify>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let config = &self.inner.config;
        let mut backoff = config.backoff_initial;
        loop {
            let result = tokio::select! {
                r = self.catch_up_once(&node_id, &feed_url) => r,
                _ = stopped(&mut shutdown) => return,
            };
            let wait = match &result {
                Ok(report) => {
                    backoff = config.backoff_initial;
                    if report.batches_applied > 0 {
                        tracing::debug!(
                            node_id = %node_id,
                            batches = report.batches_applied,
                            entries = report.entries_applied,
                            position = report.position,
                            "pulled the node's feed"
                        );
                    }
                    config.poll_interval
                }
                Err(e) => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(config.backoff_max);
                    tracing::warn!(node_id = %node_id, error = %e, retry_in = ?wait, "pulling the node's feed failed");
                    wait
                }
            };
            let healthy = result.is_ok();
            tokio::select! {
                _ = stopped(&mut shutdown) => return,
                _ = tokio::time::sleep(wait) => {}
                _ = signal.notified(), if healthy => {}
            }
        }
    }
}

/// Resolves once `shutdown` is true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The complete lines of a page (without their `\n` or `\r\n`; blank lines skipped), and
/// whether the page ends in a fragment that is not a complete JSON value (a cut body).
///
/// The node ends every line with `\n`; a last line without it is accepted when it is whole
/// JSON, so a feed that omits the final newline still works.
fn split_lines(body: &[u8]) -> (Vec<std::ops::Range<usize>>, bool) {
    let mut lines = Vec::new();
    let mut start = 0;
    let trim = |s: usize, mut e: usize| {
        while e > s && matches!(body[e - 1], b'\r' | b' ' | b'\t') {
            e -= 1;
        }
        s..e
    };
    for (i, b) in body.iter().enumerate() {
        if *b == b'\n' {
            let r = trim(start, i);
            if !r.is_empty() {
                lines.push(r);
            }
            start = i + 1;
        }
    }
    let rest = trim(start, body.len());
    let mut fragment = false;
    if !rest.is_empty() {
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body[rest.clone()]).is_ok() {
            lines.push(rest);
        } else {
            fragment = true;
        }
    }
    (lines, fragment)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_refusal_says_whose_fix_it_is() {
        let refused = |refusal: Refusal| {
            PullError::Refused {
                node_id: "prov-530000".into(),
                stage: "verify",
                refusal: Box::new(refusal),
            }
            .to_string()
        };
        let unknown = refused(Refusal::UnknownKey {
            node_id: "prov-530000".into(),
            batch_seq: 7,
            key_id: "ed25519:abc".into(),
        });
        assert!(unknown.contains("the fix is on the gateway"), "{unknown}");
        assert!(
            unknown.contains("rix trust rotate --node prov-530000"),
            "{unknown}"
        );
        let ahead = refused(Refusal::FutureDated {
            node_id: "prov-530000".into(),
            batch_seq: 7,
            created_at: "2030-01-01T00:00:00Z".into(),
            now: time::OffsetDateTime::UNIX_EPOCH,
            max_skew_secs: 300,
        });
        assert!(ahead.contains("check both clocks"), "{ahead}");
        assert!(!unknown.contains("log is repaired"), "{unknown}");
        let fork = refused(Refusal::MerkleMismatch {
            node_id: "prov-530000".into(),
            batch_seq: 7,
            expected: "00".into(),
            computed: "11".into(),
        });
        assert!(fork.contains("the node's log is repaired"), "{fork}");
    }

    use super::*;

    #[test]
    fn a_page_splits_into_whole_lines_and_a_cut_tail_is_a_fragment() {
        let body = b"{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":";
        let (lines, fragment) = split_lines(body);
        let texts: Vec<&[u8]> = lines.iter().map(|r| &body[r.clone()]).collect();
        assert_eq!(texts, vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
        assert!(fragment);

        let (lines, fragment) = split_lines(b"{\"a\":1}\n{\"b\":2}");
        assert_eq!(
            lines.len(),
            2,
            "a whole last line without its newline is kept"
        );
        assert!(!fragment);

        let (lines, fragment) = split_lines(b"");
        assert!(lines.is_empty() && !fragment);
    }
}
