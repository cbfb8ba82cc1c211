//! Test harness for the gateway's transports: a catalogue on real SQLite or PostgreSQL, fake
//! nodes that sign genuine batches of seeded sample records, a node's feed played by wiremock,
//! and checks that the catalogue holds exactly what a node published.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::{Connection, ExpressionMethods, QueryDsl, RunQueryDsl};
use rix_gateway::catalogue;
use rix_gateway::db::Db;
use rix_gateway::db::schema::{changes, quarantine, records, refusals};
use rix_gateway::ingest::{Ingest, IngestMetrics};
use rix_gateway::trust::{self, TrustStore};
use rix_schema::batch::{BatchLimits, Entry, GENESIS_PREV_HASH, SignedBatch};
use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_schema::signing::SigningKey;
use rix_schema::{RecordKind, SecrecyLevel};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Which database the catalogue runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A name no other test (or earlier run) uses; also a valid node id.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A fresh, empty database on the test PostgreSQL server.
pub fn fresh_postgres_database() -> String {
    let base = std::env::var("RIX_TEST_POSTGRES_URL").expect(
        "RIX_TEST_POSTGRES_URL is not set: run ops/start-services.sh and `source $RIX_SERVICES_DIR/env` (ops/test.sh does both)",
    );
    let name = unique("rix_gwt").replace('-', "_");
    let mut conn = diesel::PgConnection::establish(&base)
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {base}: {e}"));
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').expect("URL has a database part");
    format!("{prefix}/{name}")
}

/// The test broker.
pub fn amqp_url() -> String {
    std::env::var("RIX_TEST_AMQP_URL").expect(
        "RIX_TEST_AMQP_URL is not set: run ops/start-services.sh and `source $RIX_SERVICES_DIR/env`",
    )
}

/// A catalogue with its pipeline and a metrics registry of its own.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub db: Db,
    pub ingest: Ingest,
    pub metrics: IngestMetrics,
    pub registry: prometheus::Registry,
}

impl Gateway {
    pub fn open(backend: Backend) -> Gateway {
        Gateway::with_limits(backend, BatchLimits::default())
    }

    pub fn with_limits(backend: Backend, limits: BatchLimits) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => dir
                .path()
                .join("catalogue.db")
                .to_string_lossy()
                .into_owned(),
            Backend::Postgres => fresh_postgres_database(),
        };
        let db = Db::open(&url, 8).unwrap();
        let registry = prometheus::Registry::new();
        let metrics = IngestMetrics::new(&registry);
        let ingest = Ingest::new(
            db.clone(),
            TrustStore::new(db.clone()).unwrap(),
            limits,
            metrics.clone(),
        );
        Gateway {
            dir,
            url,
            db,
            ingest,
            metrics,
            registry,
        }
    }

    /// Rows in the change stream.
    pub fn change_count(&self) -> i64 {
        changes::table
            .count()
            .get_result(&mut *self.db.conn().unwrap())
            .unwrap()
    }

    /// Reasons of every audited refusal, oldest first.
    pub fn refusal_reasons(&self) -> Vec<String> {
        let mut rows: Vec<(String, String)> = refusals::table
            .select((refusals::at, refusals::reason))
            .load(&mut *self.db.conn().unwrap())
            .unwrap();
        rows.sort();
        rows.into_iter().map(|(_, r)| r).collect()
    }

    /// Source records held for `node_id`.
    pub fn record_count(&self, node_id: &str) -> i64 {
        records::table
            .filter(records::node_id.eq(node_id))
            .count()
            .get_result(&mut *self.db.conn().unwrap())
            .unwrap()
    }

    /// The last seq the catalogue holds for the node.
    pub fn position(&self, node_id: &str) -> u64 {
        rix_gateway::ingest::chain_position(&self.db, node_id)
            .unwrap()
            .next_seq
            - 1
    }

    /// Waits (up to `within`) until the catalogue holds `seq` of the node.
    pub async fn wait_for_seq(&self, node_id: &str, seq: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let held = self.position(node_id);
            if held >= seq {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the catalogue holds {node_id} up to seq {held}, not {seq}, after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The catalogue holds exactly what `node` published: every record at its latest version
    /// with the same content, withdrawals withdrawn, classified records quarantined and nowhere
    /// else.
    pub fn assert_holds_exactly(&self, node: &FakeNode) {
        let mut conn = self.db.conn().unwrap();
        let rows: Vec<(String, i64, i32)> = records::table
            .filter(records::node_id.eq(&node.node_id))
            .select((records::id, records::version, records::withdrawn))
            .load(&mut *conn)
            .unwrap();
        let held: BTreeMap<String, (i64, i32)> =
            rows.into_iter().map(|(id, v, w)| (id, (v, w))).collect();
        assert_eq!(
            held.keys().collect::<Vec<_>>(),
            node.expected.keys().collect::<Vec<_>>(),
            "the catalogue holds other records of {} than it published",
            node.node_id
        );
        for (id, state) in &node.expected {
            let (version, withdrawn) = held[id];
            match state {
                Published::Active { version: v, record } => {
                    assert_eq!((version, withdrawn), (*v as i64, 0), "{id}");
                    let content = catalogue::current_record(&mut conn, &node.node_id, id, version)
                        .unwrap()
                        .unwrap_or_else(|| panic!("{id}: no content"));
                    assert_eq!(&content, record, "{id}: content differs");
                }
                Published::Withdrawn { version: v } => {
                    assert_eq!((version, withdrawn), (*v as i64, 1), "{id}");
                }
            }
        }
        let quarantined: Vec<String> = quarantine::table
            .filter(quarantine::node_id.eq(&node.node_id))
            .select(quarantine::id)
            .load(&mut *conn)
            .unwrap();
        let mut quarantined = quarantined;
        quarantined.sort();
        assert_eq!(
            quarantined, node.classified,
            "classified records must be quarantined, never stored"
        );
    }
}

/// What a node has published about one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Published {
    Active { version: u64, record: Value },
    Withdrawn { version: u64 },
}

/// One change to put in a batch.
pub enum Change {
    /// A new achievement from the generator.
    New,
    /// A new version of a published record, with a changed title.
    Revise(String),
    /// Withdraw a published record.
    Withdraw(String),
}

/// A node as far as the gateway can tell: an id, a key, and a chain of genuine signed batches
/// of seeded sample achievements.
pub struct FakeNode {
    pub node_id: String,
    pub key: SigningKey,
    generator: SampleGenerator,
    next_record: u64,
    next_seq: u64,
    prev: [u8; 32],
    /// Every batch sealed, in order (batch `n` is `batches[n - 1]`).
    pub batches: Vec<SignedBatch>,
    /// What the catalogue should hold once every batch is applied (publishable records only).
    pub expected: BTreeMap<String, Published>,
    /// Ids of classified records published (quarantined by the gateway), sorted.
    pub classified: Vec<String>,
}

impl FakeNode {
    /// A node with a fresh key; `share_classified` of its records are classified.
    pub fn new(prefix: &str, seed: u64, share_classified: f64) -> FakeNode {
        FakeNode::with_key(
            &unique(prefix),
            SigningKey::generate().unwrap(),
            seed,
            share_classified,
        )
    }

    /// A node with this id and key, at genesis.
    pub fn with_key(node_id: &str, key: SigningKey, seed: u64, share_classified: f64) -> FakeNode {
        FakeNode {
            node_id: node_id.to_owned(),
            key,
            generator: SampleGenerator::new(SampleConfig {
                seed,
                share_classified,
                ..SampleConfig::default()
            }),
            next_record: 0,
            next_seq: 1,
            prev: GENESIS_PREV_HASH,
            batches: Vec::new(),
            expected: BTreeMap::new(),
            classified: Vec::new(),
        }
    }

    /// Another chain under the same node id and key, from genesis, with other records: what a
    /// node restored from an old backup (or a second node under one id) would publish.
    pub fn fork(&self, seed: u64) -> FakeNode {
        FakeNode::with_key(&self.node_id, self.key.clone(), seed, 0.0)
    }

    /// Trusts the node's key in the catalogue, with its feed URL if any.
    pub fn trust(&self, db: &Db, feed_url: Option<&str>) {
        trust::add(
            db,
            &self.node_id,
            None,
            feed_url,
            self.key.verifying_key(),
            None,
            None,
        )
        .unwrap();
    }

    /// Seals a batch of `n` new achievements; returns its bytes.
    pub fn seal_new(&mut self, n: usize) -> Vec<u8> {
        self.seal((0..n).map(|_| Change::New).collect())
    }

    /// Seals the next batch; returns its bytes.
    pub fn seal(&mut self, changes: Vec<Change>) -> Vec<u8> {
        let mut entries = Vec::with_capacity(changes.len());
        for change in changes {
            let seq = self.next_seq;
            self.next_seq += 1;
            let entry = match change {
                Change::New => {
                    let i = self.next_record;
                    self.next_record += 1;
                    let id = format!("a{i:05}");
                    let record = serde_json::to_value(self.generator.achievement(i)).unwrap();
                    let classified = SecrecyLevel::of_record(&record)
                        .is_some_and(|level| !level.may_leave_node());
                    if classified {
                        self.classified.push(id.clone());
                        self.classified.sort();
                    } else {
                        self.expected.insert(
                            id.clone(),
                            Published::Active {
                                version: 1,
                                record: record.clone(),
                            },
                        );
                    }
                    Entry::upsert(seq, RecordKind::Achievement, id, 1, record)
                }
                Change::Revise(id) => {
                    let Some(Published::Active { version, record }) = self.expected.get(&id) else {
                        panic!("{id} is not an active record");
                    };
                    let mut record = record.clone();
                    let title = record["title"].as_str().unwrap().to_owned();
                    record["title"] = Value::String(format!("{title}（修订）"));
                    let version = version + 1;
                    self.expected.insert(
                        id.clone(),
                        Published::Active {
                            version,
                            record: record.clone(),
                        },
                    );
                    Entry::upsert(seq, RecordKind::Achievement, id, version, record)
                }
                Change::Withdraw(id) => {
                    let version = match self.expected.get(&id) {
                        Some(Published::Active { version, .. }) => version + 1,
                        other => panic!("{id} cannot be withdrawn: {other:?}"),
                    };
                    self.expected
                        .insert(id.clone(), Published::Withdrawn { version });
                    Entry::withdraw(seq, RecordKind::Achievement, id, version)
                }
            };
            entries.push(entry);
        }
        let batch = SignedBatch::sign(
            &self.node_id,
            self.batches.len() as u64 + 1,
            self.prev,
            entries,
            time::OffsetDateTime::now_utc(),
            &self.key,
        )
        .unwrap();
        self.prev = batch.hash();
        let bytes = batch.to_bytes();
        self.batches.push(batch);
        bytes
    }

    /// The bytes of batch `batch_seq` (from 1).
    pub fn bytes(&self, batch_seq: u64) -> Vec<u8> {
        self.batches[batch_seq as usize - 1].to_bytes()
    }

    /// The last seq sealed.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Ids of the active records, for revisions and withdrawals.
    pub fn active_ids(&self) -> Vec<String> {
        self.expected
            .iter()
            .filter(|(_, p)| matches!(p, Published::Active { .. }))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// A node's signed feed, played by wiremock: `GET /v1/feed?after=SEQ&limit=N` answered from
/// the batches the test has "sealed", exactly as a node answers (whole batches holding entries
/// after SEQ, about N entries, `X-Rix-Next-After` and `X-Rix-Last-Seq`).
#[derive(Clone, Default)]
pub struct Feed {
    batches: Arc<Mutex<Vec<SignedBatch>>>,
}

impl Feed {
    /// Serves these batches (replacing any before).
    pub fn serve(&self, batches: &[SignedBatch]) {
        *self.batches.lock().unwrap() = batches.to_vec();
    }

    /// Serves every batch of `node`.
    pub fn serve_node(&self, node: &FakeNode) {
        self.serve(&node.batches);
    }

    /// The page a node would answer.
    pub fn page(&self, after: u64, limit: u64) -> (Vec<u8>, u64, u64) {
        let batches = self.batches.lock().unwrap();
        let last_seq = batches.iter().map(|b| b.header.last_seq).max().unwrap_or(0);
        let mut body = Vec::new();
        let mut entries = 0;
        let mut next_after = after;
        for b in batches.iter().filter(|b| b.header.last_seq > after) {
            let n = b.header.last_seq - b.header.first_seq.max(after + 1) + 1;
            if !body.is_empty() && entries + n > limit {
                break;
            }
            entries += n;
            next_after = b.header.last_seq;
            body.extend_from_slice(&b.to_bytes());
            body.push(b'\n');
        }
        (body, next_after, last_seq)
    }

    /// A wiremock server playing this feed.
    pub async fn start(&self) -> MockServer {
        let server = MockServer::start().await;
        self.mount(&server).await;
        server
    }

    /// Plays this feed on `server` (at the lowest priority, so a test's one-off failures
    /// mounted with a higher priority come first).
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(method("GET"))
            .and(path("/v1/feed"))
            .respond_with(self.clone())
            .with_priority(10)
            .mount(server)
            .await;
    }
}

impl Respond for Feed {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let after = query.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let limit = query
            .get("limit")
            .and_then(|a| a.parse().ok())
            .unwrap_or(1000);
        let (body, next_after, last_seq) = self.page(after, limit);
        ResponseTemplate::new(200)
            .insert_header("X-Rix-Next-After", next_after.to_string().as_str())
            .insert_header("X-Rix-Last-Seq", last_seq.to_string().as_str())
            .set_body_raw(body, "application/x-ndjson")
    }
}

/// The `after=` of every feed request the server received, in order.
pub async fn requested_afters(server: &MockServer) -> Vec<u64> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "after")
                .and_then(|(_, v)| v.parse().ok())
        })
        .collect()
}

/// Waits until `check` holds, polling, or panics with `what` after `within`.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} (waited {within:?})");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs an async test body on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body(common::Backend::Postgres).await;
            }
        }
    };
}

impl FakeNode {
    /// Seals a batch of `n` new generated achievements, each changed by `edit(i, &mut record)`
    /// before it is signed (to plant a value, or make it public); returns its bytes. What the
    /// catalogue should hold follows the edited records.
    pub fn seal_edited(&mut self, n: usize, mut edit: impl FnMut(u64, &mut Value)) -> Vec<u8> {
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let seq = self.next_seq;
            self.next_seq += 1;
            let i = self.next_record;
            self.next_record += 1;
            let id = format!("a{i:05}");
            let mut record = serde_json::to_value(self.generator.achievement(i)).unwrap();
            edit(i, &mut record);
            let classified =
                SecrecyLevel::of_record(&record).is_some_and(|level| !level.may_leave_node());
            if classified {
                self.classified.push(id.clone());
                self.classified.sort();
            } else {
                self.expected.insert(
                    id.clone(),
                    Published::Active {
                        version: 1,
                        record: record.clone(),
                    },
                );
            }
            entries.push(Entry::upsert(seq, RecordKind::Achievement, id, 1, record));
        }
        let batch = SignedBatch::sign(
            &self.node_id,
            self.batches.len() as u64 + 1,
            self.prev,
            entries,
            time::OffsetDateTime::now_utc(),
            &self.key,
        )
        .unwrap();
        self.prev = batch.hash();
        let bytes = batch.to_bytes();
        self.batches.push(batch);
        bytes
    }
}
