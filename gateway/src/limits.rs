//! Bounds on the gateway's heavy read endpoints (DESIGN.md §6: "bounded concurrency and rate
//! limits on heavy endpoints"). An export, a deep search page (one that carries a `cursor`) and
//! a page of the change feed each hold a blocking thread, and exports and the feed a database
//! connection, for as long as they run; unbounded, 500 concurrent anonymous exports took 44 s
//! and pushed `/healthz` to 1.2 s.
//!
//! Each heavy class ([`Heavy`]) has, from the gateway config's `[limits.<class>]` table:
//! - a **concurrency bound**: `concurrent` slots on this replica. A request waits at most
//!   `queue_ms` for a free slot, then is refused with `429 Too Many Requests` and
//!   `Retry-After: 1`;
//! - a **rate limit per client**: a GCRA token bucket (the `governor` crate) holding `burst`
//!   requests and refilling at `per_minute`, keyed by the bearer token (by its SHA-256 digest;
//!   the token itself is neither kept nor logged) or, for anonymous callers, by the client
//!   address (an IPv6 address by its /64, which one subscriber usually holds whole). Over the
//!   limit: `429` with `Retry-After` = whole seconds until the client's next request of that
//!   class would be admitted. `per_minute = 0` turns the rate limit of a class off.
//!
//! Rate headers follow **draft-ietf-httpapi-ratelimit-headers-06** (the separate fields, as
//! most clients read them today), on every admitted and every refused request of a
//! rate-limited class: `RateLimit-Limit` (the burst), `RateLimit-Remaining` (requests the client
//! may still make at once), `RateLimit-Reset` (seconds until the bucket is full again, rounded
//! up) and `RateLimit-Policy: <burst>;w=<seconds a whole burst takes to refill>`.
//!
//! The client address is the TCP peer's. Behind a reverse proxy every request comes from the
//! proxy: set `trust_forwarded = true` there (and only there: the headers are the client's to
//! forge) to take the address the proxy saw — the last entry of `Forwarded` (its `for=`) or of
//! `X-Forwarded-For`, the one the proxy appended; earlier entries are the client's to write.
//!
//! Addresses in `exempt` (by default the loopback networks, `127.0.0.0/8` and `::1`) are not
//! rate-limited: they are the gateway host's own tools — monitoring, `rix demo`, benchmarks,
//! test harnesses that poll. They still take slots like anyone else. Set `exempt = []` to
//! rate-limit them too (a proxy on the same host without `trust_forwarded` would otherwise
//! make every client exempt).
//!
//! Every key can be overridden by an environment variable ([`ENV_OVERRIDES`]):
//! `RIX_LIMITS_TRUST_FORWARDED`, `RIX_LIMITS_<CLASS>_<KEY>` (e.g. `RIX_LIMITS_EXPORT_BURST`).
//!
//! What is never limited, and why it is never starved: `/healthz`, `/metrics`, record pages,
//! first search pages and stats do not pass through here, nor does the ingest path (the AMQP
//! consumer and the feed puller are tasks, not requests). Keeping heavy requests to a few
//! slots keeps the blocking pool and the database pool free for them: keep
//! `export.concurrent + changes.concurrent` below `db_connections`. An export writes with
//! one connection for sure and takes more (a writer per core) only while the pool keeps three
//! idle beside them.
//!
//! What it does not do: queue a request longer than `queue_ms`; share counts between replicas
//! (N replicas admit N × `concurrent` and N × the rate); give back the rate a request spent
//! when it is then refused for want of a slot (the rate is checked first, so a client over
//! its rate never takes a slot's place in the queue).
//!
//! What it may not touch: what a request asks or returns. It sees a request's headers and peer
//! address only, holds slots and buckets, and lets the handler run or answers 429; it reads no
//! body, record or database, and it checks no token (the handler does that before it asks).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A class of heavy read requests, each with its own slots and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Heavy {
    /// `GET /v1/export`.
    Export,
    /// `GET /v1/search` with a `cursor` (the first page is not heavy).
    SearchPages,
    /// `GET /v1/changes`.
    Changes,
}

impl Heavy {
    /// Every class.
    pub const ALL: [Heavy; 3] = [Heavy::Export, Heavy::SearchPages, Heavy::Changes];

    /// Its table in the config.
    fn table(self) -> &'static str {
        match self {
            Heavy::Export => ".export",
            Heavy::SearchPages => ".search_pages",
            Heavy::Changes => ".changes",
        }
    }

    /// Its name in the config (`[limits.<name>]`) and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Heavy::Export => "export",
            Heavy::SearchPages => "search_pages",
            Heavy::Changes => "changes",
        }
    }

    /// What one request of the class is, for messages.
    fn what(self) -> &'static str {
        match self {
            Heavy::Export => "exports",
            Heavy::SearchPages => "search pages with a cursor",
            Heavy::Changes => "change feed pages",
        }
    }

    /// The limits of the class when the config says nothing.
    pub fn defaults(self) -> ClassLimits {
        match self {
            // An export walks the whole filtered catalogue: two at once keep both cores of a
            // small machine for everything else; ten in a burst, then one every six seconds.
            Heavy::Export => ClassLimits {
                concurrent: 2,
                queue_ms: 2000,
                burst: 10,
                per_minute: 10,
            },
            // A page costs the same at any depth (DESIGN.md §7); the rate stops scraping the
            // catalogue page by page faster than an export would deliver it.
            Heavy::SearchPages => ClassLimits {
                concurrent: 8,
                queue_ms: 500,
                burst: 300,
                per_minute: 3000,
            },
            // Up to 10,000 changes a page, each resolved against the catalogue; ministries
            // follow the feed in a loop.
            Heavy::Changes => ClassLimits {
                concurrent: 2,
                queue_ms: 2000,
                burst: 300,
                per_minute: 3000,
            },
        }
    }
}

/// The limits of one class, every key resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLimits {
    /// Requests of the class in flight at once on this replica (at least 1).
    pub concurrent: u32,
    /// How long a request may wait for a slot before it is refused, ms (0: refuse at once).
    pub queue_ms: u64,
    /// Requests a client may make at once (the bucket's size).
    pub burst: u32,
    /// Sustained requests per client per minute (the bucket's refill); 0: no rate limit.
    pub per_minute: u32,
}

/// One `[limits.<class>]` table as written: every key optional, the class's defaults filling in.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    /// See [`ClassLimits::concurrent`].
    pub concurrent: Option<u32>,
    /// See [`ClassLimits::queue_ms`].
    pub queue_ms: Option<u64>,
    /// See [`ClassLimits::burst`].
    pub burst: Option<u32>,
    /// See [`ClassLimits::per_minute`].
    pub per_minute: Option<u32>,
}

/// The `[limits]` section of the gateway config (annotated in `ops/config/gateway.example.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Take the client address from `Forwarded` / `X-Forwarded-For` (only behind a trusted
    /// reverse proxy).
    #[serde(default)]
    pub trust_forwarded: bool,
    /// Client addresses or networks (`127.0.0.0/8`, `::1`) that are not rate-limited.
    #[serde(default = "default_exempt")]
    pub exempt: Vec<String>,
    /// `GET /v1/export`.
    #[serde(default)]
    pub export: ClassConfig,
    /// `GET /v1/search` with a cursor.
    #[serde(default)]
    pub search_pages: ClassConfig,
    /// `GET /v1/changes`.
    #[serde(default)]
    pub changes: ClassConfig,
}

fn default_exempt() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1".into()]
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            trust_forwarded: false,
            exempt: default_exempt(),
            export: ClassConfig::default(),
            search_pages: ClassConfig::default(),
            changes: ClassConfig::default(),
        }
    }
}

/// The environment variables that override `[limits]`: `RIX_LIMITS_TRUST_FORWARDED` and
/// `RIX_LIMITS_EXEMPT` (comma-separated) and `RIX_LIMITS_<CLASS>_<KEY>` for every class and key.
pub const ENV_OVERRIDES: [(&str, Option<Heavy>, &str); 14] = [
    ("RIX_LIMITS_TRUST_FORWARDED", None, "trust_forwarded"),
    ("RIX_LIMITS_EXEMPT", None, "exempt"),
    (
        "RIX_LIMITS_EXPORT_CONCURRENT",
        Some(Heavy::Export),
        "concurrent",
    ),
    (
        "RIX_LIMITS_EXPORT_QUEUE_MS",
        Some(Heavy::Export),
        "queue_ms",
    ),
    ("RIX_LIMITS_EXPORT_BURST", Some(Heavy::Export), "burst"),
    (
        "RIX_LIMITS_EXPORT_PER_MINUTE",
        Some(Heavy::Export),
        "per_minute",
    ),
    (
        "RIX_LIMITS_SEARCH_PAGES_CONCURRENT",
        Some(Heavy::SearchPages),
        "concurrent",
    ),
    (
        "RIX_LIMITS_SEARCH_PAGES_QUEUE_MS",
        Some(Heavy::SearchPages),
        "queue_ms",
    ),
    (
        "RIX_LIMITS_SEARCH_PAGES_BURST",
        Some(Heavy::SearchPages),
        "burst",
    ),
    (
        "RIX_LIMITS_SEARCH_PAGES_PER_MINUTE",
        Some(Heavy::SearchPages),
        "per_minute",
    ),
    (
        "RIX_LIMITS_CHANGES_CONCURRENT",
        Some(Heavy::Changes),
        "concurrent",
    ),
    (
        "RIX_LIMITS_CHANGES_QUEUE_MS",
        Some(Heavy::Changes),
        "queue_ms",
    ),
    ("RIX_LIMITS_CHANGES_BURST", Some(Heavy::Changes), "burst"),
    (
        "RIX_LIMITS_CHANGES_PER_MINUTE",
        Some(Heavy::Changes),
        "per_minute",
    ),
];

impl LimitsConfig {
    /// Applies the [`ENV_OVERRIDES`] that `get` returns; a bad value names its variable.
    pub fn apply_env(
        &mut self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<(), (&'static str, String)> {
        for (name, heavy, key) in ENV_OVERRIDES {
            let Some(value) = get(name) else { continue };
            let value = value.trim();
            let Some(heavy) = heavy else {
                if key == "exempt" {
                    self.exempt = value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                        .collect();
                } else {
                    self.trust_forwarded = value
                        .parse()
                        .map_err(|_| (name, format!("true or false, got {value:?}")))?;
                }
                continue;
            };
            let number: u64 = value
                .parse()
                .map_err(|_| (name, format!("a whole number, got {value:?}")))?;
            let small = || {
                u32::try_from(number)
                    .map_err(|_| (name, format!("at most {}, got {number}", u32::MAX)))
            };
            let class = match heavy {
                Heavy::Export => &mut self.export,
                Heavy::SearchPages => &mut self.search_pages,
                Heavy::Changes => &mut self.changes,
            };
            match key {
                "concurrent" => class.concurrent = Some(small()?),
                "queue_ms" => class.queue_ms = Some(number),
                "burst" => class.burst = Some(small()?),
                _ => class.per_minute = Some(small()?),
            }
        }
        Ok(())
    }

    /// The limits in effect for `heavy`.
    pub fn class(&self, heavy: Heavy) -> ClassLimits {
        let d = heavy.defaults();
        let c = match heavy {
            Heavy::Export => &self.export,
            Heavy::SearchPages => &self.search_pages,
            Heavy::Changes => &self.changes,
        };
        ClassLimits {
            concurrent: c.concurrent.unwrap_or(d.concurrent),
            queue_ms: c.queue_ms.unwrap_or(d.queue_ms),
            burst: c.burst.unwrap_or(d.burst),
            per_minute: c.per_minute.unwrap_or(d.per_minute),
        }
    }
}

/// A `[limits]` section that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("[limits{table}] {key}: {message}")]
pub struct LimitsError {
    /// The table under `[limits]`: `""` or `.export`, `.search_pages`, `.changes`.
    pub table: &'static str,
    /// The key.
    pub key: &'static str,
    /// What to do.
    pub message: &'static str,
}

type KeyedLimiter =
    RateLimiter<String, DashMapStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Where a client stands against its rate limit, for the draft-06 headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// `RateLimit-Limit`: the burst.
    pub limit: u32,
    /// `RateLimit-Remaining`.
    pub remaining: u32,
    /// `RateLimit-Reset`: whole seconds until the bucket is full again.
    pub reset_secs: u64,
    /// The `w` of `RateLimit-Policy`: whole seconds a whole burst takes to refill.
    pub window_secs: u64,
}

impl RateState {
    fn headers(&self) -> [(&'static str, String); 4] {
        [
            ("RateLimit-Limit", self.limit.to_string()),
            ("RateLimit-Remaining", self.remaining.to_string()),
            ("RateLimit-Reset", self.reset_secs.to_string()),
            (
                "RateLimit-Policy",
                format!("{};w={}", self.limit, self.window_secs),
            ),
        ]
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000_000) as u64
}

/// Why a heavy request was refused (`429 Too Many Requests`).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The client used up its rate.
    #[error(
        "rate limit for {what} reached for this client ({per_minute} a minute, {burst} at once); retry after {retry_after} s, and pace requests by the RateLimit-* headers"
    )]
    Rate {
        /// What was refused.
        what: &'static str,
        /// The class's sustained rate.
        per_minute: u32,
        /// The class's burst.
        burst: u32,
        /// `Retry-After`, seconds.
        retry_after: u64,
        /// The client's bucket.
        rate: RateState,
    },
    /// Every slot of the class stayed taken for the whole queue wait.
    #[error(
        "the gateway is serving as many {what} as it may at once ({concurrent}); retry after {retry_after} s"
    )]
    Busy {
        /// What was refused.
        what: &'static str,
        /// The class's slots.
        concurrent: u32,
        /// `Retry-After`, seconds.
        retry_after: u64,
        /// The client's bucket, when the class is rate-limited.
        rate: Option<RateState>,
    },
}

impl Refusal {
    /// `Retry-After` and the rate headers to send with the refusal.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let (retry_after, rate) = match self {
            Refusal::Rate {
                retry_after, rate, ..
            } => (*retry_after, Some(rate)),
            Refusal::Busy {
                retry_after, rate, ..
            } => (*retry_after, rate.as_ref()),
        };
        let mut out = vec![(header::RETRY_AFTER.as_str(), retry_after.to_string())];
        out.extend(rate.into_iter().flat_map(RateState::headers));
        out
    }
}

/// A slot of a heavy class, held until dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    in_flight: prometheus::IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// An admitted heavy request: its slot (released when this is dropped, so keep it for as long
/// as the response is produced, streaming included) and the client's rate state.
pub struct Admission {
    _slot: Slot,
    rate: Option<RateState>,
}

impl Admission {
    /// The rate headers to send with the response (none when the class has no rate limit).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        self.rate
            .iter()
            .flat_map(RateState::headers)
            .collect::<Vec<_>>()
    }
}

struct Class {
    heavy: Heavy,
    limits: ClassLimits,
    slots: Arc<Semaphore>,
    rate: Option<KeyedLimiter>,
}

/// The gateway's bounds on heavy reads: one per replica, shared by every HTTP worker.
pub struct Limits {
    classes: Vec<Class>,
    trust_forwarded: bool,
    exempt: Vec<(IpAddr, u8)>,
    refused: IntCounterVec,
    in_flight: IntGaugeVec,
}

impl Limits {
    /// Limits as configured, with their metrics registered in `registry`:
    /// `rix_gateway_requests_limited_total{endpoint, reason="rate"|"busy"}` and
    /// `rix_gateway_heavy_requests_in_flight{endpoint}`.
    pub fn new(config: &LimitsConfig, registry: &Registry) -> Result<Limits, LimitsError> {
        let refused = IntCounterVec::new(
            Opts::new(
                "rix_gateway_requests_limited_total",
                "Heavy read requests refused with 429, by endpoint class and reason",
            ),
            &["endpoint", "reason"],
        )
        .expect("valid metric");
        let in_flight = IntGaugeVec::new(
            Opts::new(
                "rix_gateway_heavy_requests_in_flight",
                "Heavy read requests holding a slot, by endpoint class",
            ),
            &["endpoint"],
        )
        .expect("valid metric");
        // A second gateway in one process (tests, rix demo) brings its own registry; a
        // registry that already has them keeps counting in the first.
        let _ = registry.register(Box::new(refused.clone()));
        let _ = registry.register(Box::new(in_flight.clone()));
        let mut classes = Vec::new();
        for heavy in Heavy::ALL {
            let limits = config.class(heavy);
            let table = heavy.table();
            if limits.concurrent == 0 {
                return Err(LimitsError {
                    table,
                    key: "concurrent",
                    message: "must be at least 1 (a class with no slot could never be served)",
                });
            }
            let rate = if limits.per_minute == 0 {
                None
            } else {
                let burst = NonZeroU32::new(limits.burst).ok_or(LimitsError {
                    table,
                    key: "burst",
                    message: "must be at least 1 when per_minute is set (per_minute = 0 turns the rate limit off)",
                })?;
                let period = Duration::from_nanos(60_000_000_000 / u64::from(limits.per_minute));
                let quota = Quota::with_period(period)
                    .ok_or(LimitsError {
                        table,
                        key: "per_minute",
                        message: "is too high (at most 60,000,000,000 a minute)",
                    })?
                    .allow_burst(burst);
                Some(RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>())
            };
            classes.push(Class {
                heavy,
                limits,
                slots: Arc::new(Semaphore::new(limits.concurrent as usize)),
                rate,
            });
        }
        let exempt = config
            .exempt
            .iter()
            .map(|net| parse_network(net))
            .collect::<Option<Vec<_>>>()
            .ok_or(LimitsError {
                table: "",
                key: "exempt",
                message: "every entry must be an address or a network such as 127.0.0.0/8 or ::1/128",
            })?;
        Ok(Limits {
            classes,
            trust_forwarded: config.trust_forwarded,
            exempt,
            refused,
            in_flight,
        })
    }

    fn class(&self, heavy: Heavy) -> &Class {
        self.classes
            .iter()
            .find(|c| c.heavy == heavy)
            .expect("every class is built")
    }

    /// The limits in effect for `heavy`.
    pub fn limits(&self, heavy: Heavy) -> ClassLimits {
        self.class(heavy).limits
    }

    /// The client's address: the TCP peer's or, with `trust_forwarded`, the one the nearest
    /// proxy saw (IPv4-mapped IPv6 addresses as IPv4).
    fn client_addr(&self, req: &HttpRequest) -> Option<IpAddr> {
        let forwarded = if self.trust_forwarded {
            last_forwarded(req)
        } else {
            None
        };
        forwarded
            .or_else(|| req.peer_addr().map(|a| a.ip()))
            .map(|ip| match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            })
    }

    /// Who a request counts against: its bearer token (by digest) or its client address.
    /// Call it after the token was checked: an unknown token is refused before it costs a slot.
    pub fn client_key(&self, req: &HttpRequest) -> String {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim);
        if let Some(token) = token {
            let digest = rix_schema::canonical::sha256_hex(token.as_bytes());
            return format!("token:{}", &digest[..32]);
        }
        match self.client_addr(req) {
            Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            None => "ip:unknown".into(),
        }
    }

    /// Whether the request comes from an `exempt` address (not rate-limited).
    pub fn is_exempt(&self, req: &HttpRequest) -> bool {
        self.client_addr(req).is_some_and(|ip| {
            self.exempt
                .iter()
                .any(|(net, bits)| in_network(ip, *net, *bits))
        })
    }

    /// Admits a request of class `heavy` from `req`'s client, or says why not: its rate first,
    /// then a slot (waiting up to the class's `queue_ms`).
    pub async fn admit(&self, heavy: Heavy, req: &HttpRequest) -> Result<Admission, Refusal> {
        let class = self.class(heavy);
        let limits = class.limits;
        let rate = match &class.rate {
            None => None,
            Some(_) if self.is_exempt(req) => None,
            Some(limiter) => {
                let key = self.client_key(req);
                let burst = limits.burst;
                let interval = Duration::from_nanos(60_000_000_000 / u64::from(limits.per_minute));
                let window_secs = ceil_secs(interval * burst);
                match limiter.check_key(&key) {
                    Ok(snapshot) => {
                        let remaining = snapshot.remaining_burst_capacity().min(burst);
                        Some(RateState {
                            limit: burst,
                            remaining,
                            reset_secs: ceil_secs(interval * (burst - remaining)),
                            window_secs,
                        })
                    }
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(limiter.clock().now());
                        self.refused
                            .with_label_values(&[heavy.name(), "rate"])
                            .inc();
                        return Err(Refusal::Rate {
                            what: heavy.what(),
                            per_minute: limits.per_minute,
                            burst,
                            retry_after: ceil_secs(wait).max(1),
                            rate: RateState {
                                limit: burst,
                                remaining: 0,
                                reset_secs: ceil_secs(wait + interval * (burst - 1)).max(1),
                                window_secs,
                            },
                        });
                    }
                }
            }
        };
        let permit = if limits.queue_ms == 0 {
            class.slots.clone().try_acquire_owned().ok()
        } else {
            tokio::time::timeout(
                Duration::from_millis(limits.queue_ms),
                class.slots.clone().acquire_owned(),
            )
            .await
            .ok()
            .and_then(Result::ok)
        };
        match permit {
            Some(permit) => Ok(Admission {
                _slot: self.slot(heavy, permit),
                rate,
            }),
            None => {
                self.refused
                    .with_label_values(&[heavy.name(), "busy"])
                    .inc();
                Err(Refusal::Busy {
                    what: heavy.what(),
                    concurrent: limits.concurrent,
                    retry_after: 1,
                    rate,
                })
            }
        }
    }

    fn slot(&self, heavy: Heavy, permit: OwnedSemaphorePermit) -> Slot {
        let in_flight = self.in_flight.with_label_values(&[heavy.name()]);
        in_flight.inc();
        Slot {
            _permit: permit,
            in_flight,
        }
    }

    /// Takes a free slot of `heavy` as a request would, without waiting (`None` when all are
    /// taken): for draining a replica of heavy work, and for tests.
    pub fn hold(&self, heavy: Heavy) -> Option<Slot> {
        let permit = self.class(heavy).slots.clone().try_acquire_owned().ok()?;
        Some(self.slot(heavy, permit))
    }

    /// Forgets the buckets of clients that are full again (they would admit a whole burst
    /// anyway), so the map holds only recently active clients. Run it now and then.
    pub fn forget_idle(&self) {
        for class in &self.classes {
            if let Some(limiter) = &class.rate {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}

/// The address the nearest proxy saw: the last `for=` of `Forwarded`, else the last entry of
/// `X-Forwarded-For` (the entries before it are whatever the client sent).
fn last_forwarded(req: &HttpRequest) -> Option<IpAddr> {
    let joined = |name: &str| {
        let values: Vec<&str> = req
            .headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    if let Some(forwarded) = joined("forwarded") {
        let last = forwarded.split(',').rev().find_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.eq_ignore_ascii_case("for")
                    .then(|| v.trim().trim_matches('"'))
            })
        })?;
        return parse_ip(last);
    }
    let xff = joined("x-forwarded-for")?;
    parse_ip(xff.rsplit(',').next()?.trim())
}

/// `127.0.0.0/8`, `::1/128`, or a single address.
fn parse_network(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match text.trim().split_once('/') {
        Some((a, b)) => (a.parse::<IpAddr>().ok()?, b.parse::<u8>().ok()?),
        None => {
            let a = text.trim().parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((addr, bits))
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limits(config: &str) -> Limits {
        let config: LimitsConfig = toml::from_str(config).unwrap();
        Limits::new(&config, &Registry::new()).unwrap()
    }

    #[test]
    fn partial_tables_keep_the_class_defaults() {
        let config: LimitsConfig = toml::from_str("[export]\nconcurrent = 7\n").unwrap();
        let export = config.class(Heavy::Export);
        assert_eq!(export.concurrent, 7);
        assert_eq!(export.burst, Heavy::Export.defaults().burst);
        assert_eq!(
            config.class(Heavy::Changes),
            Heavy::Changes.defaults(),
            "other classes untouched"
        );
        assert!(toml::from_str::<LimitsConfig>("[export]\nconcurent = 7\n").is_err());
        let zero: LimitsConfig = toml::from_str("[changes]\nconcurrent = 0\n").unwrap();
        let err = Limits::new(&zero, &Registry::new()).err().unwrap();
        assert_eq!((err.table, err.key), (".changes", "concurrent"), "{err}");
        assert_eq!(
            err.to_string().split(':').next(),
            Some("[limits.changes] concurrent")
        );
        let bad: LimitsConfig = toml::from_str("exempt = [\"localhost\"]").unwrap();
        let err = Limits::new(&bad, &Registry::new()).err().unwrap();
        assert_eq!((err.table, err.key), ("", "exempt"), "{err}");
    }

    #[test]
    fn the_annotated_example_shows_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ops/config/gateway.example.toml");
        let config = crate::config::Config::load(&path).unwrap();
        assert!(!config.limits.trust_forwarded);
        assert_eq!(config.limits.exempt, LimitsConfig::default().exempt);
        for heavy in Heavy::ALL {
            assert_eq!(config.limits.class(heavy), heavy.defaults(), "{heavy:?}");
        }
    }

    #[test]
    fn environment_variables_override_single_keys() {
        let mut config: LimitsConfig = toml::from_str("[export]\nburst = 4\n").unwrap();
        config
            .apply_env(|n| match n {
                "RIX_LIMITS_TRUST_FORWARDED" => Some("true".into()),
                "RIX_LIMITS_SEARCH_PAGES_PER_MINUTE" => Some("0".into()),
                "RIX_LIMITS_EXPORT_QUEUE_MS" => Some("250".into()),
                _ => None,
            })
            .unwrap();
        assert!(config.trust_forwarded);
        assert_eq!(config.class(Heavy::SearchPages).per_minute, 0);
        let export = config.class(Heavy::Export);
        assert_eq!((export.burst, export.queue_ms), (4, 250));
        let err = config
            .apply_env(|n| (n == "RIX_LIMITS_CHANGES_BURST").then(|| "many".into()))
            .unwrap_err();
        assert_eq!(err.0, "RIX_LIMITS_CHANGES_BURST");
        for (name, heavy, key) in ENV_OVERRIDES {
            let expected = match heavy {
                None => format!("RIX_LIMITS_{key}").to_uppercase(),
                Some(h) => format!("RIX_LIMITS_{}_{}", h.name(), key).to_uppercase(),
            };
            assert_eq!(name, expected);
        }
    }

    #[test]
    fn clients_are_told_apart_by_token_then_address() {
        let l = limits("");
        let a = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().unwrap())
            .to_http_request();
        let a_other_port = TestRequest::default()
            .peer_addr("10.0.0.1:4001".parse().unwrap())
            .to_http_request();
        let spoofed = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "192.0.2.9"))
            .to_http_request();
        let token = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().unwrap())
            .insert_header(("Authorization", "Bearer s3cret-token"))
            .to_http_request();
        let v6a = TestRequest::default()
            .peer_addr("[2001:db8:1:2:aaaa::1]:1".parse().unwrap())
            .to_http_request();
        let v6b = TestRequest::default()
            .peer_addr("[2001:db8:1:2:bbbb::9]:1".parse().unwrap())
            .to_http_request();
        assert_eq!(l.client_key(&a), "ip:10.0.0.1");
        assert_eq!(l.client_key(&a), l.client_key(&a_other_port));
        assert_eq!(
            l.client_key(&a),
            l.client_key(&spoofed),
            "X-Forwarded-For is ignored unless trusted"
        );
        assert!(l.client_key(&token).starts_with("token:"));
        assert!(!l.client_key(&token).contains("s3cret"));
        assert_eq!(l.client_key(&v6a), l.client_key(&v6b), "one /64");
        let trusting = limits("trust_forwarded = true");
        assert_eq!(trusting.client_key(&spoofed), "ip:192.0.2.9");
        // Only the last hop counts: what the client wrote before it is ignored.
        let appended = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "127.0.0.1, 203.0.113.5"))
            .to_http_request();
        assert_eq!(trusting.client_key(&appended), "ip:203.0.113.5");
        assert!(!trusting.is_exempt(&appended));
        let forwarded = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().unwrap())
            .insert_header((
                "Forwarded",
                "for=127.0.0.1;proto=https, for=\"[2001:db8:cafe::17]:4711\"",
            ))
            .to_http_request();
        assert_eq!(trusting.client_key(&forwarded), "ip:2001:db8:cafe:0::/64");
    }

    #[test]
    fn loopback_is_exempt_from_rates_unless_configured_otherwise() {
        let from = |addr: &str| {
            TestRequest::default()
                .peer_addr(addr.parse().unwrap())
                .to_http_request()
        };
        let l = limits("");
        assert!(l.is_exempt(&from("127.0.0.1:1")));
        assert!(l.is_exempt(&from("127.8.9.1:1")));
        assert!(l.is_exempt(&from("[::1]:1")));
        assert!(l.is_exempt(&from("[::ffff:127.0.0.1]:1")));
        assert!(!l.is_exempt(&from("10.0.0.1:1")));
        assert!(!l.is_exempt(&TestRequest::default().to_http_request()));
        assert!(!limits("exempt = []").is_exempt(&from("127.0.0.1:1")));
        let office = limits("exempt = [\"192.0.2.0/24\", \"2001:db8::/32\"]");
        assert!(office.is_exempt(&from("192.0.2.77:1")));
        assert!(office.is_exempt(&from("[2001:db8:1::5]:1")));
        assert!(!office.is_exempt(&from("192.0.3.1:1")));
        assert!(!office.is_exempt(&from("127.0.0.1:1")));
    }
}
