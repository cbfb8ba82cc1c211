//! Test harness of the gateway's own tests: a catalogue on real SQLite or PostgreSQL with its
//! ingest pipeline, nodes that sign genuine batches — of entries the test writes
//! ([`SigningNode`]) or of seeded sample records ([`FakeNode`]) — a node's feed played by
//! wiremock, the read APIs' state, and checks that the catalogue holds exactly what a node
//! published. What the node's and the end-to-end tests share with it comes from
//! `rix-test-support`.
// Each test binary uses its own part of the harness.
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use rix_gateway::access::AccessFilter;
use rix_gateway::api::ReadState;
use rix_gateway::catalogue;
use rix_gateway::db::Db;
use rix_gateway::db::schema::{changes, quarantine, records, refusals};
use rix_gateway::ingest::{Ingest, IngestMetrics, Outcome, Transport};
use rix_gateway::search::SearchIndex;
use rix_gateway::trust::{self, TrustStore};
use rix_schema::batch::{BatchLimits, Entry, GENESIS_PREV_HASH, SignedBatch};
use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_schema::signing::SigningKey;
use rix_schema::{RecordKind, SecrecyLevel};
pub use rix_test_support::{Backend, amqp_url, fresh_postgres_database, on_both_backends, unique};
use serde_json::Value;
use time::OffsetDateTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A catalogue with its pipeline and a metrics registry of its own.
pub struct Gateway {
    /// A directory of its own (the SQLite catalogue's, and room for a test's files).
    pub dir: tempfile::TempDir,
    /// The catalogue database URL.
    pub url: String,
    pub db: Db,
    pub ingest: Ingest,
    pub metrics: IngestMetrics,
    pub registry: prometheus::Registry,
}

impl Gateway {
    /// An empty catalogue on `backend`, taking batches within the default limits.
    pub fn open(backend: Backend) -> Gateway {
        Gateway::with_limits(backend, BatchLimits::default())
    }

    /// An empty catalogue on `backend`, taking batches within `limits`.
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
        Gateway::build(dir, url, limits)
    }

    /// A pipeline over the catalogue that already is at `url` (a restored copy, say).
    pub fn on_database(url: &str) -> Gateway {
        Gateway::build(
            tempfile::tempdir().unwrap(),
            url.to_owned(),
            BatchLimits::default(),
        )
    }

    fn build(dir: tempfile::TempDir, url: String, limits: BatchLimits) -> Gateway {
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

/// One entry as a test writes it: kind, id, version, and the record (`None`: a withdrawal).
pub type Item = (RecordKind, String, u64, Option<Value>);

/// Where a node's log stands: the next batch and entry numbers, and the hash the next batch
/// chains to. Cloned and changed, it makes the forks, replays and impostors a gateway must
/// refuse.
#[derive(Debug, Clone)]
pub struct Chain {
    pub next_batch_seq: u64,
    pub next_seq: u64,
    pub prev: [u8; 32],
}

impl Chain {
    /// A log with nothing in it.
    pub fn genesis() -> Chain {
        Chain {
            next_batch_seq: 1,
            next_seq: 1,
            prev: GENESIS_PREV_HASH,
        }
    }

    /// `item` as the next entry of the log.
    pub fn entry(&mut self, (kind, id, version, record): Item) -> Entry {
        let seq = self.next_seq;
        self.next_seq += 1;
        match record {
            Some(r) => Entry::upsert(seq, kind, id, version, r),
            None => Entry::withdraw(seq, kind, id, version),
        }
    }

    /// Signs `entries` (made by [`Chain::entry`]) as `node_id`'s next batch, dated `at`.
    pub fn seal(
        &mut self,
        node_id: &str,
        key: &SigningKey,
        at: OffsetDateTime,
        entries: Vec<Entry>,
    ) -> SignedBatch {
        let batch =
            SignedBatch::sign(node_id, self.next_batch_seq, self.prev, entries, at, key).unwrap();
        self.next_batch_seq += 1;
        self.prev = batch.hash();
        batch
    }
}

/// A node that signs the batches a test writes entry by entry ([`Item`]s).
#[derive(Clone)]
pub struct SigningNode {
    pub node_id: String,
    pub key: SigningKey,
    pub chain: Chain,
}

impl SigningNode {
    /// A node with a fresh key, at genesis, that no catalogue trusts yet.
    pub fn new(node_id: &str) -> SigningNode {
        SigningNode {
            node_id: node_id.to_owned(),
            key: SigningKey::generate().unwrap(),
            chain: Chain::genesis(),
        }
    }

    /// [`SigningNode::new`], trusted by the catalogue `db`.
    pub fn trusted(db: &Db, node_id: &str) -> SigningNode {
        let node = SigningNode::new(node_id);
        node.trust(db);
        node
    }

    /// Trusts the node's key in the catalogue `db`, as `rix trust add` does.
    pub fn trust(&self, db: &Db) {
        trust::add(
            db,
            &self.node_id,
            None,
            None,
            self.key.verifying_key(),
            None,
            None,
        )
        .unwrap();
    }

    /// Signs `items` as the next batch, now; returns its bytes.
    pub fn batch(&mut self, items: Vec<Item>) -> Vec<u8> {
        let key = self.key.clone();
        self.batch_by(&key, OffsetDateTime::now_utc(), items)
    }

    /// Signs `items` as the next batch with `key`, dated `at`; returns its bytes.
    pub fn batch_by(&mut self, key: &SigningKey, at: OffsetDateTime, items: Vec<Item>) -> Vec<u8> {
        let entries = items.into_iter().map(|i| self.chain.entry(i)).collect();
        self.chain.seal(&self.node_id, key, at, entries).to_bytes()
    }

    /// Signs `items` in batches of at most `per_batch` entries and ingests each as the broker
    /// would deliver it; every batch must apply. Returns how many entries were applied.
    pub fn publish(&mut self, ingest: &Ingest, items: Vec<Item>, per_batch: usize) -> usize {
        let mut applied_total = 0;
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let batch = self.batch(items.by_ref().take(per_batch).collect());
            match ingest.ingest(&batch, Transport::Amqp) {
                Ok(Outcome::Applied { applied, .. }) => applied_total += applied,
                other => panic!("expected the batch to be applied, got {other:?}"),
            }
        }
        applied_total
    }
}

/// A node as far as the gateway can tell: an id, a key, and a chain of genuine signed batches
/// of seeded sample achievements.
pub struct FakeNode {
    pub node_id: String,
    pub key: SigningKey,
    generator: SampleGenerator,
    next_record: u64,
    chain: Chain,
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
            chain: Chain::genesis(),
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

    /// Seals a batch of `n` new generated achievements, each changed by `edit(i, &mut record)`
    /// before it is signed (to plant a value, or make it public); returns its bytes. What the
    /// catalogue should hold follows the edited records.
    pub fn seal_edited(&mut self, n: usize, mut edit: impl FnMut(u64, &mut Value)) -> Vec<u8> {
        let entries = (0..n).map(|_| self.new_achievement(&mut edit)).collect();
        self.sign(entries)
    }

    /// Seals the next batch; returns its bytes.
    pub fn seal(&mut self, changes: Vec<Change>) -> Vec<u8> {
        let mut entries = Vec::with_capacity(changes.len());
        for change in changes {
            let entry = match change {
                Change::New => self.new_achievement(&mut |_, _| {}),
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
                    self.chain
                        .entry((RecordKind::Achievement, id, version, Some(record)))
                }
                Change::Withdraw(id) => {
                    let version = match self.expected.get(&id) {
                        Some(Published::Active { version, .. }) => version + 1,
                        other => panic!("{id} cannot be withdrawn: {other:?}"),
                    };
                    self.expected
                        .insert(id.clone(), Published::Withdrawn { version });
                    self.chain
                        .entry((RecordKind::Achievement, id, version, None))
                }
            };
            entries.push(entry);
        }
        self.sign(entries)
    }

    /// The next generated achievement, changed by `edit`, as the next entry; noted in what the
    /// catalogue should hold (or quarantine).
    fn new_achievement(&mut self, edit: &mut impl FnMut(u64, &mut Value)) -> Entry {
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
        self.chain
            .entry((RecordKind::Achievement, id, 1, Some(record)))
    }

    /// Signs `entries` as the next batch, now, and keeps it; returns its bytes.
    fn sign(&mut self, entries: Vec<Entry>) -> Vec<u8> {
        let batch = self
            .chain
            .seal(&self.node_id, &self.key, OffsetDateTime::now_utc(), entries);
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
        self.chain.next_seq - 1
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

/// The state of the read APIs over `db`, with an in-RAM search index synced with it that
/// seals its cursors with the catalogue's key, as a server's does (so that a cursor from one
/// state opens in the next).
pub fn read_state(db: &Db) -> ReadState {
    let access = AccessFilter::new(db.clone());
    let mut search = SearchIndex::in_ram().unwrap();
    search.seal_cursors_with(access.cursor_seal().unwrap().clone());
    search.sync(db).unwrap();
    ReadState {
        db: db.clone(),
        access,
        search: Arc::new(search),
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
