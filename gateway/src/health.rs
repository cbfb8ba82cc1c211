//! What the gateway says about itself at `/healthz`: whether it can serve, and — for the
//! operators' monitoring — whether it is taking in what its nodes publish.
//!
//! **Why "ok" is not enough.** A gateway that answers searches while every batch of a trusted
//! node is refused (a key it does not know, a fork) or while a node's feed has been
//! unreachable for an hour serves a catalogue that silently goes stale. So `status` turns
//! `degraded` — still 200, the gateway can serve — and `problems` says in words what is wrong
//! and where the fix lies, when:
//! - a trusted node's latest batch was refused (its last refusal is newer than its last applied
//!   batch): the refusal's reason and detail are shown;
//! - a trusted node's feed has failed to answer for longer than
//!   [`HealthConfig::unreachable_after_s`] (shorter outages are shown, not alarmed on);
//! - the broker is configured and the consumer is failing to connect or consume;
//! - the search index is rebuilding, failing, or far behind the catalogue.
//!
//! Load balancers read only `status` (`unavailable`, 503, when the catalogue does not answer).
//! The detail is for monitoring only: positions and refusals tell how much the catalogue holds
//! that a reader may not see.
//!
//! What it may not touch: HTTP, and writes. It reads the trust store's nodes, their chain
//! positions and refusals, and the live states the transports and the index keep;
//! [`crate::serve`] renders the report and chooses the status code.

use std::sync::Arc;

use diesel::prelude::*;
use rix_runtime::health::{Link, LinkReport, LinkState};
use serde::{Deserialize, Serialize};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::schema::{node_chain, nodes, refusals};
use crate::db::{Db, StoreError};
use crate::pull::FeedHealth;
use crate::search::{SearchHealth, SearchIndex};

/// When `/healthz` calls the gateway degraded (`[health]` in the config).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// A trusted node whose feed has failed to answer for this long (seconds) makes the gateway
    /// `degraded`. Long enough to ride out a node's restart or a network blip.
    #[serde(default = "default_unreachable_after_s")]
    pub unreachable_after_s: u64,
}

fn default_unreachable_after_s() -> u64 {
    300
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            unreachable_after_s: default_unreachable_after_s(),
        }
    }
}

/// The latest refusal of a node's batches.
#[derive(Debug, Clone, Serialize)]
pub struct RefusalSeen {
    /// When (RFC 3339).
    pub at: String,
    /// The stable reason code (`unknown_key`, `fork`…).
    pub reason: String,
    /// What was found, with the fix.
    pub detail: String,
}

/// One trusted node, as ingest sees it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeHealth {
    /// The node.
    pub node_id: String,
    /// `ok`, `waiting` (nothing applied or refused yet), `refused` (its latest batch was
    /// refused) or `unreachable` (its feed has failed for too long).
    pub state: &'static str,
    /// The last batch applied (0: none).
    pub last_batch_seq: i64,
    /// The last entry applied (0: none).
    pub last_seq: i64,
    /// When the last batch was applied (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_applied_at: Option<String>,
    /// The latest refusal, when it is newer than the last applied batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusalSeen>,
    /// How its feed answered lately (`None`: no feed URL, or not pulled yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed: Option<LinkReport>,
    /// Entries it has sealed that the catalogue does not hold, as its feed last said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind: Option<i64>,
}

/// The whole `/healthz` answer for monitoring.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayHealth {
    /// `ok`, `degraded` (serving, but see `problems`) or `unavailable`.
    pub status: &'static str,
    /// What makes it degraded, in words.
    pub problems: Vec<String>,
    /// `ok` or the database error.
    pub database: String,
    /// `sqlite` or `postgresql`.
    pub backend: String,
    /// `none`, `connecting`, `connected` or `failing`.
    pub broker: &'static str,
    /// The broker connection in detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_detail: Option<LinkReport>,
    /// The search index against the catalogue.
    pub search: SearchHealth,
    /// Every trusted node.
    pub nodes: Vec<NodeHealth>,
}

/// Everything `/healthz` looks at.
#[derive(Clone)]
pub struct HealthSources {
    /// The catalogue.
    pub db: Db,
    /// This replica's search index.
    pub search: Arc<SearchIndex>,
    /// The AMQP consumer's connection, when a broker is configured.
    pub broker: Option<Link>,
    /// The feed puller's view of each node's feed.
    pub feeds: FeedHealth,
    /// Thresholds.
    pub config: HealthConfig,
}

impl HealthSources {
    /// Looks at everything (blocking: reads the catalogue). `Err` when the catalogue does not
    /// answer.
    pub fn check(&self) -> Result<GatewayHealth, StoreError> {
        let nodes = self.nodes()?;
        let mut problems = Vec::new();
        for n in &nodes {
            match (n.state, &n.refused, &n.feed) {
                ("refused", Some(r), _) => problems.push(format!(
                    "node {}: its batches are refused ({}) since {}: {}",
                    n.node_id, r.reason, r.at, r.detail
                )),
                ("unreachable", _, Some(f)) => problems.push(format!(
                    "node {}: its feed has not answered since {}: {}",
                    n.node_id,
                    f.since,
                    f.last_error.as_deref().unwrap_or("no answer")
                )),
                _ => {}
            }
        }
        let broker_detail = self.broker.as_ref().map(Link::report);
        if let Some(b) = broker_detail
            .as_ref()
            .filter(|b| b.state == LinkState::Failing)
        {
            problems.push(format!(
                "broker: the consumer cannot consume since {}: {}",
                b.since,
                b.last_error.as_deref().unwrap_or("unknown error")
            ));
        }
        let search = self.search.health();
        if search.degraded() {
            problems.push(match (&search.last_error, &search.last_rebuild) {
                (Some(e), _) => format!("search index: syncing fails: {e}"),
                (None, Some(r)) if search.state == "rebuilding" => format!(
                    "search index: rebuilding since {} ({}: {}); searches are incomplete until it catches up",
                    r.started_at, r.reason, r.detail
                ),
                _ => format!(
                    "search index: {} changes ({:.0} s) behind the catalogue",
                    search.lag_changes, search.lag_seconds
                ),
            });
        }
        Ok(GatewayHealth {
            status: if problems.is_empty() {
                "ok"
            } else {
                "degraded"
            },
            problems,
            database: "ok".to_owned(),
            backend: format!("{:?}", self.db.backend()).to_lowercase(),
            broker: broker_detail.as_ref().map_or("none", |b| b.state.as_str()),
            broker_detail,
            search,
            nodes,
        })
    }

    fn nodes(&self) -> Result<Vec<NodeHealth>, StoreError> {
        let mut conn = self.db.conn()?;
        let trusted: Vec<(String, Option<String>)> = nodes::table
            .select((nodes::node_id, nodes::feed_url))
            .order(nodes::node_id.asc())
            .load(&mut *conn)?;
        let mut out = Vec::with_capacity(trusted.len());
        for (node_id, feed_url) in trusted {
            let chain: Option<(i64, i64, String)> = node_chain::table
                .find(&node_id)
                .select((
                    node_chain::next_batch_seq,
                    node_chain::next_seq,
                    node_chain::updated_at,
                ))
                .first(&mut *conn)
                .optional()?;
            let latest_refusal: Option<(String, String, String)> = refusals::table
                .filter(refusals::node_id.eq(&node_id))
                .order(refusals::at.desc())
                .select((refusals::at, refusals::reason, refusals::detail))
                .first(&mut *conn)
                .optional()?;
            let last_applied_at = chain.as_ref().map(|c| c.2.clone());
            let refused = latest_refusal
                .filter(|(at, _, _)| {
                    last_applied_at
                        .as_deref()
                        .is_none_or(|applied| later(at, applied))
                })
                .map(|(at, reason, detail)| RefusalSeen { at, reason, detail });
            let feed = feed_url.and_then(|_| self.feeds.report(&node_id));
            let unreachable = feed.as_ref().is_some_and(|f| {
                f.state == LinkState::Failing
                    && f.seconds_in_state() >= self.config.unreachable_after_s as f64
            });
            let state = if refused.is_some() {
                "refused"
            } else if unreachable {
                "unreachable"
            } else if chain.is_none() {
                "waiting"
            } else {
                "ok"
            };
            out.push(NodeHealth {
                state,
                last_batch_seq: chain.as_ref().map_or(0, |c| c.0 - 1),
                last_seq: chain.as_ref().map_or(0, |c| c.1 - 1),
                last_applied_at,
                refused,
                behind: feed.as_ref().and(self.feeds.behind(&node_id)),
                feed,
                node_id,
            });
        }
        Ok(out)
    }
}

/// Whether RFC 3339 time `a` is after `b` (compared as times: the subsecond digits vary in
/// length, so the strings do not sort). Unparseable reads as "after", which shows a refusal
/// rather than hiding it.
fn later(a: &str, b: &str) -> bool {
    match (
        OffsetDateTime::parse(a, &Rfc3339),
        OffsetDateTime::parse(b, &Rfc3339),
    ) {
        (Ok(a), Ok(b)) => a > b,
        _ => true,
    }
}
