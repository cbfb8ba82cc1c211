//! Test harness: a real node on real SQLite or PostgreSQL (from ops/start-services.sh), driven
//! over HTTP with reqwest.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use diesel::{Connection, RunQueryDsl};
use rix_node::config::{BatchConfig, Config, GatewayConfig, Role, TokenConfig};
use rix_node::{RunningNode, start};
use rix_schema::signing::SigningKey;
use serde_json::Value;

pub const SUBMITTER: &str = "submitter-token-yunnan-univ";
pub const OTHER_SUBMITTER: &str = "submitter-token-other-inst";
pub const REVIEWER: &str = "reviewer-token-0000000001";
pub const ADMIN: &str = "admin-token-000000000001";
/// The feed token of the gateway every test node serves (`[[gateways]]`, name `national`).
pub const GATEWAY: &str = "gateway-token-national-0001";
/// The institution of SUBMITTER: the fixtures' second institution.
pub const SUBMITTER_USCC: &str = "91330100799655058B";
pub const OTHER_USCC: &str = "91440300708461136T";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestNode {
    pub node: RunningNode,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub key: SigningKey,
    pub node_id: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty PostgreSQL database on the test server.
pub fn fresh_postgres_database() -> String {
    let base = std::env::var("RIX_TEST_POSTGRES_URL").expect(
        "RIX_TEST_POSTGRES_URL is not set: run ops/start-services.sh and `source $RIX_SERVICES_DIR/env` (ops/test.sh does both)",
    );
    let name = format!(
        "rix_node_t{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
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

pub fn amqp_url() -> String {
    std::env::var("RIX_TEST_AMQP_URL").expect(
        "RIX_TEST_AMQP_URL is not set: run ops/start-services.sh and `source $RIX_SERVICES_DIR/env`",
    )
}

pub fn unique_node_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn config(backend: Backend, dir: &std::path::Path, node_id: &str) -> Config {
    let key = SigningKey::generate().unwrap();
    let key_path = dir.join("node.key.pem");
    std::fs::write(&key_path, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    // The node refuses a key other users may read.
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let token = |token: &str, role, institution: Option<&str>| TokenConfig {
        token: token.into(),
        role,
        institution: institution.map(Into::into),
        name: Some(format!("test {token}")),
    };
    Config {
        node_id: node_id.into(),
        name: Some("云南省科学技术厅".into()),
        registration_issuer: "530000".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        database_url: match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres_database()),
        },
        db_connections: 8,
        amqp_url: None,
        amqp_exchange: "rix.records".into(),
        signing_key: key_path,
        batch: BatchConfig {
            max_entries: 100,
            linger_ms: 20,
        },
        max_body_bytes: 256 * 1024,
        tls: None,
        tokens: vec![
            token(SUBMITTER, Role::Submitter, Some(SUBMITTER_USCC)),
            token(OTHER_SUBMITTER, Role::Submitter, Some(OTHER_USCC)),
            token(REVIEWER, Role::Reviewer, None),
            token(ADMIN, Role::Admin, None),
        ],
        gateways: vec![GatewayConfig {
            name: "national".into(),
            token: GATEWAY.into(),
            require_client_cert: false,
            client_cert_subject: None,
            client_cert_sha256: None,
        }],
    }
}

pub async fn start_node(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let node_id = unique_node_id("prov");
    let mut cfg = config(backend, dir.path(), &node_id);
    tweak(&mut cfg);
    let key = SigningKey::from_pkcs8_pem(&std::fs::read(&cfg.signing_key).unwrap()).unwrap();
    let node_id = cfg.node_id.clone();
    let node = start(cfg).await.expect("node starts");
    TestNode {
        node,
        dir,
        http: reqwest::Client::new(),
        key,
        node_id,
    }
}

pub fn fixture(kind: &str) -> Value {
    let text = match kind {
        "achievement" => include_str!("../../../schema/tests/fixtures/achievement.json"),
        _ => include_str!("../../../schema/tests/fixtures/funded_project.json"),
    };
    let mut v: Value = serde_json::from_str(text).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("registration_no");
    obj.remove("registration_date");
    v
}

pub fn with_level(mut doc: Value, level: &str) -> Value {
    doc["secrecy"] = serde_json::json!({ "level": level });
    doc
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl TestNode {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.node.url())
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        reply(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    /// Submits and approves; returns the record id.
    pub async fn register_approved(&self, collection: &str, doc: &Value) -> String {
        let r = self
            .post(&format!("/v1/{collection}"), SUBMITTER, doc)
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let a = self
            .post(
                &format!("/v1/{collection}/{id}/approve"),
                REVIEWER,
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        id
    }

    /// Every batch of the feed, as raw lines, following the cursor to the end.
    pub async fn feed_lines(&self) -> Vec<Vec<u8>> {
        let mut after = 0i64;
        let mut lines = Vec::new();
        loop {
            let r = self
                .get(&format!("/v1/feed?after={after}&limit=1000"), Some(GATEWAY))
                .await;
            assert_eq!(r.status, 200);
            let next: i64 = r.headers["x-rix-next-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let page: Vec<Vec<u8>> = r
                .bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            if page.is_empty() {
                return lines;
            }
            lines.extend(page);
            after = next;
        }
    }

    /// Waits until the feed holds `seq` (the publisher seals asynchronously).
    pub async fn wait_for_seq(&self, seq: i64) {
        for _ in 0..500 {
            let r = self.get("/healthz", None).await;
            if r.body["log"]["sealed_seq"].as_i64().unwrap_or(0) >= seq {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the feed never reached seq {seq}");
    }
}

pub async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap().to_vec();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        bytes,
    }
}

/// Verifies a chain of feed lines with the node key; returns the entries in order.
pub fn verify_chain(
    node_id: &str,
    key: &SigningKey,
    lines: &[Vec<u8>],
) -> Vec<rix_schema::batch::Entry> {
    use rix_schema::batch::{BatchLimits, ChainPosition, MemoryKeyRing, verify_batch};
    let mut ring = MemoryKeyRing::new();
    ring.trust(node_id, key.verifying_key().clone());
    let mut position = ChainPosition::genesis();
    let mut entries = Vec::new();
    for line in lines {
        let verified = verify_batch(line, &BatchLimits::default(), &ring, Some(&position))
            .unwrap_or_else(|r| panic!("batch refused: {r}"));
        position = verified.next_position();
        entries.extend(verified.entries().iter().cloned());
    }
    entries
}

/// Runs an async test body on both backends.
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

/// A test's own view of the broker: a durable queue bound to one node's batches.
pub struct TestQueue {
    pub connection: lapin::Connection,
    pub channel: lapin::Channel,
    pub name: String,
}

impl TestQueue {
    pub async fn bind(node_id: &str) -> TestQueue {
        use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
        use lapin::types::FieldTable;
        let connection =
            lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                .await
                .expect("the test broker is reachable");
        let channel = connection.create_channel().await.unwrap();
        channel
            .exchange_declare(
                "rix.records".into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let name = format!("rix-test-{node_id}");
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                name.as_str().into(),
                "rix.records".into(),
                format!("*.{node_id}").as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        TestQueue {
            connection,
            channel,
            name,
        }
    }

    /// Takes every message until batches covering `last_seq` arrived (or 30 s pass).
    /// Returns `(routing_key, body)` in delivery order.
    pub async fn drain_until(&self, last_seq: u64) -> Vec<(String, Vec<u8>)> {
        use lapin::options::{BasicAckOptions, BasicGetOptions};
        let mut out = Vec::new();
        let mut highest = 0u64;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while highest < last_seq {
            assert!(
                std::time::Instant::now() < deadline,
                "only seqs up to {highest} of {last_seq} arrived on the queue"
            );
            match self
                .channel
                .basic_get(self.name.as_str().into(), BasicGetOptions::default())
                .await
                .unwrap()
            {
                Some(message) => {
                    let delivery = &message.delivery;
                    let batch: rix_schema::batch::SignedBatch =
                        serde_json::from_slice(&delivery.data).unwrap();
                    highest = highest.max(batch.header.last_seq);
                    out.push((delivery.routing_key.to_string(), delivery.data.clone()));
                    delivery.ack(BasicAckOptions::default()).await.unwrap();
                }
                None => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        out
    }

    pub async fn delete(self) {
        let _ = self
            .channel
            .queue_delete(self.name.as_str().into(), Default::default())
            .await;
        let _ = self.connection.close(0, "done".into()).await;
    }
}

/// Drops re-sent batches (a batch seen before, as after a crash or a broker restart): what a
/// gateway does with a `replay`. Anything else out of order fails the chain check.
pub fn without_resends(batches: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut next = 1u64;
    let mut out = Vec::new();
    for bytes in batches {
        let b: rix_schema::batch::SignedBatch = serde_json::from_slice(&bytes).unwrap();
        if b.header.batch_seq < next {
            continue;
        }
        next = b.header.batch_seq + 1;
        out.push(bytes);
    }
    out
}
