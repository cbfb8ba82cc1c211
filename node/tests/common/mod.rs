//! Test harness of the node's own tests: a real node on real SQLite or PostgreSQL (from
//! ops/start-services.sh), started in-process and driven over HTTP with reqwest. What the
//! gateway's and the end-to-end tests share with it (the test services, tokens, key files,
//! TLS material, a tap on the node's queue, chain checks) comes from `rix-test-support`.
// Each test binary uses its own part of the harness.
#![allow(dead_code, unused_imports)]

use rix_node::config::{BatchConfig, Config, GatewayConfig, Role, TokenConfig};
use rix_node::{RunningNode, start};
use rix_schema::signing::SigningKey;
pub use rix_test_support::chain::verify_chain;
pub use rix_test_support::fixtures::fixture;
pub use rix_test_support::keys::signing_key_file;
pub use rix_test_support::pki::Issued;
pub use rix_test_support::queue::QueueTap;
pub use rix_test_support::tokens::*;
pub use rix_test_support::{Backend, amqp_url, fresh_postgres_database, on_both_backends, unique};
use serde_json::Value;

/// A node started in-process, with a client for it.
pub struct TestNode {
    pub node: RunningNode,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub key: SigningKey,
    pub node_id: String,
    /// The feed token of the gateway the node enrols (`[[gateways]]`, name `national`).
    pub feed_token: String,
}

/// The config of a test node `node_id` under `dir` on `backend`: a fresh signing key, the
/// test [tokens](rix_test_support::tokens), one gateway (`national`) enrolled with
/// [`feed_token`]`(node_id)`, small batches that linger 20 ms, no broker, no TLS.
pub fn config(backend: Backend, dir: &std::path::Path, node_id: &str) -> Config {
    let key_path = dir.join("node.key.pem");
    signing_key_file(&key_path);
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
            token: feed_token(node_id),
            require_client_cert: false,
            client_cert_subject: None,
            client_cert_sha256: None,
        }],
        idempotency_retention_days: rix_node::config::default_idempotency_retention_days(),
    }
}

/// Starts a node on `backend` with [`config`], changed by `tweak` first.
pub async fn start_node(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let node_id = unique("prov");
    let mut cfg = config(backend, dir.path(), &node_id);
    // What `config` enrolled the gateway with, whatever `tweak` does to the node's id.
    let feed_token = feed_token(&node_id);
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
        feed_token,
    }
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
                .get(
                    &format!("/v1/feed?after={after}&limit=1000"),
                    Some(&self.feed_token),
                )
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
