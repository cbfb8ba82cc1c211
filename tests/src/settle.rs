//! Settling a federation before counting it, and comparing what the gateway holds with what
//! the nodes signed, byte for byte.
//!
//! A count taken while anything is still moving proves little: "at least N, and exactly N at
//! that instant" cannot see a duplicate that lands a moment later. So a fault test first
//! [`settle`]s — every node's log sealed and (with a broker) confirmed, the gateway's chain
//! position for every node at that node's head, its queue empty with nothing unacknowledged,
//! its search index at the catalogue's last change — then counts, then waits a quiet window
//! and checks that nothing moved meanwhile.
//!
//! Content, not just versions: [`NodeLog`] is a node's whole signed feed, verified as one
//! chain; [`assert_catalogue_holds`] requires the catalogue's batches and record versions to be
//! exactly the feed's (hash, header, signature; each entry's canonical bytes and disclosures),
//! and [`assert_deliveries_are_the_log`] requires every batch a [`QueueTap`] caught — re-sends
//! after a crash or a reconnect included — to be byte-identical to the batch in the feed.
//!
//! [`QueueTap`]: rix_test_support::queue::QueueTap

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::prelude::*;
use rix_gateway::db::schema::{batches, changes, quarantine, record_versions, refusals};
use rix_schema::batch::{BatchLimits, ChainPosition, MemoryKeyRing, Op, SignedBatch, verify_batch};
use rix_test_support::tokens;
use serde_json::Value;

use crate::WITHIN;
use crate::broker::{rabbitmqctl_output, vhost_of};
use crate::http::{get_json, metric, poll_until};
use crate::process::{GatewayProcess, NodeProcess};

/// How long a settled federation must stay exactly as it was (a late duplicate — a redelivery,
/// a re-send, a feed page — would land within it: the gateway polls feeds every 300 ms).
pub const QUIET: Duration = Duration::from_millis(1500);

/// One batch of a node's signed feed, as the node stored (and published) it.
#[derive(Debug, Clone)]
pub struct LoggedBatch {
    /// Its `batch_seq`.
    pub batch_seq: i64,
    /// The bytes exactly as served (and published).
    pub bytes: Vec<u8>,
    /// Hex SHA-256 of its canonical header (its identity).
    pub hash: String,
    /// Its header as the gateway stores it (`serde_json` of the header).
    pub header: String,
    /// Its signature.
    pub signature: String,
}

/// One entry of a node's signed feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEntry {
    /// Record id.
    pub id: String,
    /// Version.
    pub version: i64,
    /// Its seq.
    pub seq: i64,
    /// The batch it came in.
    pub batch_seq: i64,
    /// `upsert` or `withdraw`.
    pub op: String,
    /// Record kind.
    pub kind: String,
    /// RFC 8785 canonical JSON of the entry in placeholder form (its Merkle leaf).
    pub canonical: String,
    /// Its disclosures as the gateway stores them (upserts only).
    pub disclosures: Option<String>,
}

/// A node's whole signed log, read from its feed once it had sealed everything it logged.
#[derive(Debug, Clone)]
pub struct NodeLog {
    /// The node.
    pub node_id: String,
    /// Its batches in order.
    pub batches: Vec<LoggedBatch>,
    /// Its entries in seq order.
    pub entries: Vec<LoggedEntry>,
}

impl NodeLog {
    /// The last seq (0: nothing logged).
    pub fn last_seq(&self) -> i64 {
        self.entries.last().map_or(0, |e| e.seq)
    }

    /// The last batch (0: none).
    pub fn last_batch_seq(&self) -> i64 {
        self.batches.last().map_or(0, |b| b.batch_seq)
    }

    /// The batch `batch_seq`.
    pub fn batch(&self, batch_seq: i64) -> Option<&LoggedBatch> {
        self.batches.iter().find(|b| b.batch_seq == batch_seq)
    }
}

/// Waits until `node` has sealed every entry it logged (and, with `confirmed`, until the broker
/// confirmed every batch: its outbox is empty), then reads its whole signed feed (as the
/// enrolled test gateway) and verifies it as one chain from genesis with the node's key.
pub async fn node_log(http: &reqwest::Client, node: &NodeProcess, confirmed: bool) -> NodeLog {
    let health_url = format!("{}/healthz", node.url);
    let sealed = poll_until(
        &format!(
            "node {} has sealed{} everything it logged",
            node.node_id,
            if confirmed { " and published" } else { "" }
        ),
        WITHIN,
        || async {
            let (_, h) = get_json(http, &health_url)
                .await
                .map_err(|e| e.to_string())?;
            let log = &h["log"];
            if log["last_seq"] == log["sealed_seq"]
                && (!confirmed || log["outbox_depth"] == 0)
                && log["last_seq"].is_i64()
            {
                Ok(log["sealed_seq"].as_i64().unwrap())
            } else {
                Err(h.to_string())
            }
        },
    )
    .await;

    let mut bodies = Vec::new();
    let mut after = 0i64;
    loop {
        let resp = http
            .get(format!("{}/v1/feed?after={after}&limit=10000", node.url))
            .bearer_auth(tokens::feed_token(&node.node_id))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "the feed of {}", node.node_id);
        let next: i64 = resp.headers()["X-Rix-Next-After"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let text = resp.bytes().await.unwrap();
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            bodies.push(line.to_vec());
        }
        if next == after {
            break;
        }
        after = next;
    }

    let mut ring = MemoryKeyRing::new();
    ring.trust(&node.node_id, node.key.verifying_key().clone());
    let mut position = ChainPosition::genesis();
    let mut log = NodeLog {
        node_id: node.node_id.clone(),
        batches: Vec::new(),
        entries: Vec::new(),
    };
    for bytes in bodies {
        let verified = verify_batch(&bytes, &BatchLimits::default(), &ring, Some(&position))
            .unwrap_or_else(|r| panic!("{}'s feed: batch refused: {r}", node.node_id));
        position = verified.next_position();
        let header = verified.header();
        for (i, e) in verified.entries().iter().enumerate() {
            log.entries.push(LoggedEntry {
                id: e.id.clone(),
                version: e.version as i64,
                seq: e.seq as i64,
                batch_seq: header.batch_seq as i64,
                op: e.op.as_str().to_owned(),
                kind: e.kind.as_str().to_owned(),
                canonical: String::from_utf8(verified.canonical_entry(i).unwrap().to_vec())
                    .unwrap(),
                disclosures: (e.op == Op::Upsert)
                    .then(|| serde_json::to_string(&verified.disclosures(i)).unwrap()),
            });
        }
        log.batches.push(LoggedBatch {
            batch_seq: header.batch_seq as i64,
            hash: verified.batch_hash_hex(),
            header: serde_json::to_string(header).unwrap(),
            signature: verified.signature().to_owned(),
            bytes,
        });
    }
    assert_eq!(
        log.last_seq(),
        sealed,
        "{}'s feed ends where its log does",
        node.node_id
    );
    log
}

/// What a settled gateway showed: compared before and after [`QUIET`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rest {
    /// Rows of the catalogue's change stream.
    pub changes: i64,
    /// Its last change id (what the search index must have committed).
    pub last_change: i64,
    /// Record versions held.
    pub versions: i64,
    /// `rix_gateway_batches_applied_total` of this gateway process.
    pub batches_applied: f64,
    /// `rix_gateway_entries_applied_total` of this gateway process.
    pub entries_applied: f64,
    /// `rix_gateway_batches_duplicate_total` of this gateway process: batches received again
    /// and recognised (re-sends, redeliveries, feed pages), never applied.
    pub duplicates: f64,
    /// Refusals of the logs' nodes' batches in the catalogue's audit table (the gateway's
    /// metric counts the batches of other tests' nodes too: the records exchange is shared).
    pub refused: i64,
    /// Entries of the logs' nodes quarantined.
    pub quarantined: i64,
}

/// Waits until the federation is at rest, then checks that it stays so for [`QUIET`]:
/// - for each of `logs` (see [`node_log`]), the gateway's chain position (`/healthz`) is at
///   that node's last batch and seq;
/// - the gateway's search index has committed the catalogue's last change;
/// - its queue holds nothing, ready or unacknowledged (`rabbitmqctl list_queues`; a gateway
///   without a broker has no queue).
///
/// Returns what it saw last; panics if anything was applied, refused or quarantined during
/// the quiet window. A batch that came again within it and was recognised as a duplicate is
/// allowed (it only moves [`Rest::duplicates`]): delivery is at-least-once, and the broker's
/// queue counts (`list_queues`) lag a few seconds behind its queues.
pub async fn settle(http: &reqwest::Client, gateway: &GatewayProcess, logs: &[&NodeLog]) -> Rest {
    let first = settled(http, gateway, logs).await;
    tokio::time::sleep(QUIET).await;
    let again = settled(http, gateway, logs).await;
    assert_eq!(
        Rest {
            duplicates: first.duplicates,
            ..again.clone()
        },
        first,
        "the settled gateway changed within {QUIET:?}: something arrived late; gateway log:\n{}",
        gateway.log_tail()
    );
    again
}

async fn settled(http: &reqwest::Client, gateway: &GatewayProcess, logs: &[&NodeLog]) -> Rest {
    let db = gateway.catalogue();
    poll_until("the federation settles", WITHIN, || async {
        let (_, health) = get_json(http, &format!("{}/healthz", gateway.url))
            .await
            .map_err(|e| e.to_string())?;
        for log in logs {
            let node = health["nodes"]
                .as_array()
                .and_then(|n| n.iter().find(|n| n["node_id"] == log.node_id.as_str()))
                .ok_or_else(|| format!("{} not in /healthz: {health}", log.node_id))?;
            if node["last_seq"] != log.last_seq() || node["last_batch_seq"] != log.last_batch_seq()
            {
                return Err(format!(
                    "{} at batch {} seq {}, the gateway at {node}",
                    log.node_id,
                    log.last_batch_seq(),
                    log.last_seq()
                ));
            }
        }
        let node_ids: Vec<&str> = logs.iter().map(|l| l.node_id.as_str()).collect();
        let (count, last, versions, refused, quarantined) = {
            let mut conn = db.conn().map_err(|e| e.to_string())?;
            let refused: i64 = refusals::table
                .filter(refusals::node_id.eq_any(&node_ids))
                .count()
                .get_result(&mut *conn)
                .map_err(|e| e.to_string())?;
            let quarantined: i64 = quarantine::table
                .filter(quarantine::node_id.eq_any(&node_ids))
                .count()
                .get_result(&mut *conn)
                .map_err(|e| e.to_string())?;
            let count: i64 = changes::table
                .count()
                .get_result(&mut *conn)
                .map_err(|e| e.to_string())?;
            let last: Option<i64> = changes::table
                .select(diesel::dsl::max(changes::change_id))
                .first(&mut *conn)
                .map_err(|e| e.to_string())?;
            let versions: i64 = record_versions::table
                .count()
                .get_result(&mut *conn)
                .map_err(|e| e.to_string())?;
            (count, last.unwrap_or(0), versions, refused, quarantined)
        };
        let indexed = &health["search"]["indexed_change_id"];
        if *indexed != last {
            return Err(format!(
                "search index at change {indexed}, catalogue at {last}"
            ));
        }
        let (ready, unacked) = queue_depth(&gateway.queue);
        if ready + unacked > 0 {
            return Err(format!(
                "queue {}: {ready} ready, {unacked} unacknowledged; the gateway's broker: {} {}; \
                 its log:\n{}",
                gateway.queue,
                health["broker"],
                health["broker_detail"],
                gateway.log_tail()
            ));
        }
        Ok(Rest {
            changes: count,
            last_change: last,
            versions,
            batches_applied: metric(http, &gateway.url, "rix_gateway_batches_applied_total").await,
            entries_applied: metric(http, &gateway.url, "rix_gateway_entries_applied_total").await,
            duplicates: metric(http, &gateway.url, "rix_gateway_batches_duplicate_total").await,
            refused,
            quarantined,
        })
    })
    .await
}

/// Messages ready and unacknowledged on `queue` in the test broker's virtual host (0, 0 when
/// there is no such queue).
pub fn queue_depth(queue: &str) -> (u64, u64) {
    let vhost = std::env::var("RIX_TEST_AMQP_URL")
        .map(|u| vhost_of(&u))
        .unwrap_or_else(|_| "/".to_owned());
    let out = rabbitmqctl_output(&[
        "list_queues",
        "-q",
        "-p",
        &vhost,
        "name",
        "messages_ready",
        "messages_unacknowledged",
    ]);
    assert!(
        out.status.success(),
        "rabbitmqctl list_queues: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut cols = l.split('\t');
            (cols.next() == Some(queue)).then(|| {
                let ready = cols.next().and_then(|c| c.trim().parse().ok()).unwrap_or(0);
                let unacked = cols.next().and_then(|c| c.trim().parse().ok()).unwrap_or(0);
                (ready, unacked)
            })
        })
        .unwrap_or((0, 0))
}

/// Requires the catalogue to hold exactly what `logs` hold for their nodes: the same batches
/// (hash, header, signature), and one record version per entry with the entry's seq, batch,
/// op, kind, canonical bytes and disclosures — nothing missing, nothing twice, nothing else;
/// and exactly one change per entry.
pub fn assert_catalogue_holds(gateway: &GatewayProcess, logs: &[&NodeLog]) {
    let db = gateway.catalogue();
    let mut conn = db.conn().unwrap();
    for log in logs {
        let node = log.node_id.as_str();
        let held: Vec<(i64, String, String, String)> = batches::table
            .filter(batches::node_id.eq(node))
            .order(batches::batch_seq.asc())
            .select((
                batches::batch_seq,
                batches::hash,
                batches::header,
                batches::signature,
            ))
            .load(&mut *conn)
            .unwrap();
        let signed: Vec<(i64, String, String, String)> = log
            .batches
            .iter()
            .map(|b| {
                (
                    b.batch_seq,
                    b.hash.clone(),
                    b.header.clone(),
                    b.signature.clone(),
                )
            })
            .collect();
        assert_eq!(
            held, signed,
            "{node}: the catalogue's batches are the feed's"
        );

        type Row = (
            String,
            i64,
            i64,
            i64,
            String,
            String,
            String,
            Option<String>,
        );
        let rows: Vec<Row> = record_versions::table
            .filter(record_versions::node_id.eq(node))
            .order(record_versions::seq.asc())
            .select((
                record_versions::id,
                record_versions::version,
                record_versions::seq,
                record_versions::batch_seq,
                record_versions::op,
                record_versions::kind,
                record_versions::entry,
                record_versions::disclosures,
            ))
            .load(&mut *conn)
            .unwrap();
        let held: Vec<LoggedEntry> = rows
            .into_iter()
            .map(
                |(id, version, seq, batch_seq, op, kind, canonical, disclosures)| LoggedEntry {
                    id,
                    version,
                    seq,
                    batch_seq,
                    op,
                    kind,
                    canonical,
                    disclosures,
                },
            )
            .collect();
        assert_eq!(
            held.len(),
            log.entries.len(),
            "{node}: one version per entry"
        );
        for (h, e) in held.iter().zip(&log.entries) {
            assert_eq!(h, e, "{node}: seq {} as the node signed it", e.seq);
        }

        let applied: Vec<(String, i64)> = changes::table
            .filter(changes::node_id.eq(node))
            .order(changes::change_id.asc())
            .select((changes::id, changes::version))
            .load(&mut *conn)
            .unwrap();
        let logged: Vec<(String, i64)> = log
            .entries
            .iter()
            .map(|e| (e.id.clone(), e.version))
            .collect();
        let (mut a, mut l) = (applied.clone(), logged.clone());
        a.sort();
        l.sort();
        assert_eq!(a, l, "{node}: exactly one change per entry");
    }
}

/// Requires every batch in `deliveries` (what a [`QueueTap`] on the node caught, re-sends
/// included) to be byte-identical to the batch of the same `batch_seq` in `log`, and every
/// batch of `log` to have been delivered. Returns how many deliveries were re-sends.
///
/// [`QueueTap`]: rix_test_support::queue::QueueTap
pub fn assert_deliveries_are_the_log(deliveries: &[Vec<u8>], log: &NodeLog) -> usize {
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for body in deliveries {
        let batch: SignedBatch = serde_json::from_slice(body).expect("a batch");
        let batch_seq = batch.header.batch_seq as i64;
        let original = log.batch(batch_seq).unwrap_or_else(|| {
            panic!(
                "{}: batch {batch_seq} was delivered but is not in the feed",
                log.node_id
            )
        });
        assert!(
            *body == original.bytes,
            "{}: batch {batch_seq} as delivered (delivery {} of it) differs from the feed's:\n{}\n{}",
            log.node_id,
            seen.get(&batch_seq).copied().unwrap_or(0) + 1,
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(&original.bytes)
        );
        *seen.entry(batch_seq).or_default() += 1;
    }
    let missing: Vec<i64> = log
        .batches
        .iter()
        .map(|b| b.batch_seq)
        .filter(|b| !seen.contains_key(b))
        .collect();
    assert!(
        missing.is_empty(),
        "{}: batches never delivered: {missing:?}",
        log.node_id
    );
    seen.values().map(|n| n - 1).sum()
}

/// The gateway's view of `node_id` in `/healthz` (its chain position), for a test that waits
/// for a particular moment of ingest.
pub async fn gateway_position(
    http: &reqwest::Client,
    gateway_url: &str,
    node_id: &str,
) -> Option<(i64, i64)> {
    let (_, health) = get_json(http, &format!("{gateway_url}/healthz"))
        .await
        .ok()?;
    let node: &Value = health["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["node_id"] == node_id)?;
    Some((node["last_batch_seq"].as_i64()?, node["last_seq"].as_i64()?))
}
