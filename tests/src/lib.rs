//! rix-tests: the end-to-end harness. It runs the real `rix` program as separate processes
//! (so tests can SIGKILL them), against RabbitMQ and PostgreSQL started by
//! `ops/start-services.sh`, and drives everything over public interfaces only: HTTP, the
//! broker, the signed feed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};
use rix_schema::batch::{
    BatchLimits, ChainPosition, Entry, MemoryKeyRing, SignedBatch, verify_batch,
};
use rix_schema::signing::SigningKey;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// The test broker's URL (`ops/start-services.sh` writes it to `$RIX_SERVICES_DIR/env`).
pub fn amqp_url() -> String {
    std::env::var("RIX_TEST_AMQP_URL").expect(
        "RIX_TEST_AMQP_URL is not set: run ops/start-services.sh and `source $RIX_SERVICES_DIR/env` (ops/test.sh does both)",
    )
}

/// A fresh, empty database on the test PostgreSQL server.
pub fn fresh_postgres_database() -> String {
    let base = std::env::var("RIX_TEST_POSTGRES_URL").expect(
        "RIX_TEST_POSTGRES_URL is not set: run ops/start-services.sh and `source $RIX_SERVICES_DIR/env`",
    );
    let name = unique("rix_e2e").replace('-', "_");
    let mut conn = diesel::PgConnection::establish(&base)
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {base}: {e}"));
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("URL has a database part");
    format!("{prefix}/{name}")
}

/// A free loopback port (bound and released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Tokens every test node accepts.
pub mod tokens {
    /// Submitter for [`SUBMITTER_USCC`].
    pub const SUBMITTER: &str = "e2e-submitter-token-000001";
    /// Reviewer.
    pub const REVIEWER: &str = "e2e-reviewer-token-0000001";
    /// The submitter's institution (a real, valid USCC).
    pub const SUBMITTER_USCC: &str = "91330100799655058B";
    /// Admin: registers for any institution (the federation tests use generated records).
    pub const ADMIN: &str = "e2e-admin-token-0000000001";
}

/// A node running as a separate `rix node serve` process.
pub struct NodeProcess {
    exe: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// Its id.
    pub node_id: String,
    /// Base URL.
    pub url: String,
    /// Its signing key.
    pub key: SigningKey,
    extra_env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
}

/// What a test node is made of.
pub struct NodeSpec<'a> {
    /// Node id.
    pub node_id: &'a str,
    /// Registration issuer code.
    pub issuer: &'a str,
    /// Database URL (`None`: SQLite in the data dir).
    pub database_url: Option<String>,
    /// Broker URL.
    pub amqp_url: Option<String>,
    /// Batch size.
    pub max_entries: usize,
    /// Batch linger.
    pub linger_ms: u64,
}

impl NodeProcess {
    /// Writes a config (and key) under `dir` and starts the node; returns when it is healthy.
    pub fn start(exe: &str, dir: &Path, spec: NodeSpec<'_>) -> NodeProcess {
        let key = SigningKey::generate().unwrap();
        let key_path = dir.join(format!("{}.key.pem", spec.node_id));
        std::fs::write(&key_path, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        let port = free_port();
        let data_dir = dir.join(spec.node_id);
        let mut toml = format!(
            "node_id = \"{}\"\nregistration_issuer = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n\
             data_dir = \"{}\"\nsigning_key = \"{}\"\n",
            spec.node_id,
            spec.issuer,
            data_dir.display(),
            key_path.display()
        );
        if let Some(db) = &spec.database_url {
            toml.push_str(&format!("database_url = \"{db}\"\n"));
        }
        if let Some(amqp) = &spec.amqp_url {
            toml.push_str(&format!("amqp_url = \"{amqp}\"\n"));
        }
        toml.push_str(&format!(
            "[batch]\nmax_entries = {}\nlinger_ms = {}\n\n\
             [[tokens]]\ntoken = \"{}\"\nrole = \"submitter\"\ninstitution = \"{}\"\n\n\
             [[tokens]]\ntoken = \"{}\"\nrole = \"reviewer\"\n\n\
             [[tokens]]\ntoken = \"{}\"\nrole = \"admin\"\n",
            spec.max_entries,
            spec.linger_ms,
            tokens::SUBMITTER,
            tokens::SUBMITTER_USCC,
            tokens::REVIEWER,
            tokens::ADMIN
        ));
        let config = dir.join(format!("{}.toml", spec.node_id));
        std::fs::write(&config, toml).unwrap();
        let mut node = NodeProcess {
            exe: PathBuf::from(exe),
            config,
            node_id: spec.node_id.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            key,
            extra_env: Vec::new(),
            child: None,
            log: dir.join(format!("{}.log", spec.node_id)),
        };
        node.spawn();
        node
    }

    /// Sets an environment variable for the next (re)start.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.extra_env.push((name.to_owned(), value.to_owned()));
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["node", "serve", "--config"]).arg(&self.config);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        self.child = Some(spawn_healthy(cmd, &self.log, &self.url, &self.node_id));
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts the node again with the same config and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The node's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `cmd` with its output appended to `log` and waits until `{url}/healthz` answers 200.
fn spawn_healthy(mut cmd: Command, log: &Path, url: &str, name: &str) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    cmd.stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if probe::healthy(&format!("{url}/healthz")).unwrap_or(false) {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{name} exited with {status}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{name} never became healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The gateway running as a separate `rix gateway serve` process.
pub struct GatewayProcess {
    exe: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// Base URL.
    pub url: String,
    /// The catalogue database URL (SQLite path or postgres://).
    pub database_url: String,
    child: Option<Child>,
    log: PathBuf,
    queue: String,
}

impl GatewayProcess {
    /// Writes a gateway config under `dir`; trusts `nodes` with `rix trust add` (the CLI, as an
    /// operator would); starts the gateway and waits until it is healthy.
    pub fn start(
        exe: &str,
        dir: &Path,
        database_url: Option<String>,
        amqp_url: Option<String>,
        nodes: &[&NodeProcess],
    ) -> GatewayProcess {
        let port = free_port();
        let data_dir = dir.join("gateway");
        let database_url = database_url
            .unwrap_or_else(|| data_dir.join("catalogue.db").to_string_lossy().into_owned());
        let queue = unique("rix.gateway.e2e");
        let mut toml = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ndatabase_url = \"{database_url}\"\n\
             amqp_queue = \"{queue}\"\n",
            data_dir.display()
        );
        if let Some(a) = &amqp_url {
            toml.push_str(&format!("amqp_url = \"{a}\"\n"));
        }
        toml.push_str(
            "[pull]\ninterval_ms = 300\nrequest_timeout_ms = 5000\nconnect_timeout_ms = 2000\n",
        );
        std::fs::create_dir_all(&data_dir).unwrap();
        let config = dir.join("gateway.toml");
        std::fs::write(&config, toml).unwrap();
        for node in nodes {
            let out = Command::new(exe)
                .args(["trust", "add", "--config"])
                .arg(&config)
                .args(["--node", &node.node_id, "--key"])
                .arg(node.key.verifying_key().to_base64())
                .args(["--feed-url", &node.url])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "rix trust add failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut gw = GatewayProcess {
            exe: PathBuf::from(exe),
            config,
            url: format!("http://127.0.0.1:{port}"),
            database_url,
            child: None,
            log: dir.join("gateway.log"),
            queue,
        };
        gw.spawn();
        gw
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["gateway", "serve", "--config"]).arg(&self.config);
        self.child = Some(spawn_healthy(cmd, &self.log, &self.url, "gateway"));
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts again on the same config and catalogue.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The catalogue, opened directly (the read APIs come with issue 5).
    pub fn catalogue(&self) -> rix_gateway::db::Db {
        rix_gateway::db::Db::open(&self.database_url, 2).expect("open the catalogue")
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
        // Its queue is bound to every node's batches: leave nothing filling up behind.
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", &self.queue])
            .env("RABBITMQ_NODENAME", "rabbit@localhost")
            .output();
    }
}

/// A blocking health probe for waiting on a process, usable with or without a runtime.
mod probe {
    /// True if GET `url` answers 200 within a second.
    pub fn healthy(url: &str) -> std::io::Result<bool> {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(1)))?;
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    }
}

/// Verifies batches as a gateway would: re-sent batches (already seen) are skipped, anything
/// else must chain exactly. Returns the entries in log order.
pub fn verify_log(node_id: &str, key: &SigningKey, batches: &[Vec<u8>]) -> Vec<Entry> {
    let mut ring = MemoryKeyRing::new();
    ring.trust(node_id, key.verifying_key().clone());
    let mut position = ChainPosition::genesis();
    let mut entries = Vec::new();
    for bytes in batches {
        let batch: SignedBatch = serde_json::from_slice(bytes).expect("a batch");
        if batch.header.batch_seq < position.next_batch_seq {
            continue;
        }
        let verified = verify_batch(bytes, &BatchLimits::default(), &ring, Some(&position))
            .unwrap_or_else(|r| panic!("batch {} refused: {r}", batch.header.batch_seq));
        position = verified.next_position();
        entries.extend(verified.entries().iter().cloned());
    }
    entries
}

/// A durable queue bound to one node's batches on the records exchange, as a gateway would
/// have it.
pub struct NodeQueue {
    connection: lapin::Connection,
    channel: lapin::Channel,
    name: String,
}

impl NodeQueue {
    /// Declares the exchange and a durable queue for `*.{node_id}`.
    pub async fn bind(node_id: &str) -> NodeQueue {
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
        let name = format!("rix-e2e-{node_id}");
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
        NodeQueue {
            connection,
            channel,
            name,
        }
    }

    /// Takes messages until batches up to `last_seq` arrived; fails after `within`.
    pub async fn drain_until(&self, last_seq: u64, within: Duration) -> Vec<Vec<u8>> {
        use lapin::options::{BasicAckOptions, BasicGetOptions};
        let mut out = Vec::new();
        let mut highest = 0u64;
        let deadline = Instant::now() + within;
        while highest < last_seq {
            assert!(
                Instant::now() < deadline,
                "only seqs up to {highest} of {last_seq} arrived on the queue"
            );
            match self
                .channel
                .basic_get(self.name.as_str().into(), BasicGetOptions::default())
                .await
                .unwrap()
            {
                Some(message) => {
                    let batch: SignedBatch =
                        serde_json::from_slice(&message.delivery.data).unwrap();
                    highest = highest.max(batch.header.last_seq);
                    out.push(message.delivery.data.clone());
                    message
                        .delivery
                        .ack(BasicAckOptions::default())
                        .await
                        .unwrap();
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        out
    }

    /// How many messages wait in the queue now.
    pub async fn depth(&self) -> u32 {
        use lapin::options::QueueDeclareOptions;
        self.channel
            .queue_declare(
                self.name.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    durable: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Deletes the queue.
    pub async fn delete(self) {
        let _ = self
            .channel
            .queue_delete(self.name.as_str().into(), Default::default())
            .await;
        let _ = self.connection.close(0, "done".into()).await;
    }
}

/// JSON over HTTP with a bearer token; returns status and body.
pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}
