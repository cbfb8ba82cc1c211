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
    /// How the feed tokens test nodes issue to the test gateway begin ([`feed_token`]).
    pub const GATEWAY_PREFIX: &str = "e2e-feed-token-for-";

    /// The feed token `node_id` enrols the test gateway with (its `[[gateways]]` entry; one
    /// per node, as in production): the gateway stores it with `rix trust add
    /// --feed-token-file`.
    pub fn feed_token(node_id: &str) -> String {
        format!("{GATEWAY_PREFIX}{node_id}")
    }
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

/// Writes a secret (a private key) readable by its owner only, as the node demands.
pub fn write_private(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl NodeProcess {
    /// Writes a config (and key) under `dir` and starts the node; returns when it is healthy.
    pub fn start(exe: &str, dir: &Path, spec: NodeSpec<'_>) -> NodeProcess {
        let key = SigningKey::generate().unwrap();
        let key_path = dir.join(format!("{}.key.pem", spec.node_id));
        write_private(&key_path, key.to_pkcs8_pem().unwrap().as_bytes());
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
             [[tokens]]\ntoken = \"{}\"\nrole = \"admin\"\n\n\
             [[gateways]]\nname = \"e2e gateway\"\ntoken = \"{}\"\n",
            spec.max_entries,
            spec.linger_ms,
            tokens::SUBMITTER,
            tokens::SUBMITTER_USCC,
            tokens::REVIEWER,
            tokens::ADMIN,
            tokens::feed_token(spec.node_id)
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

    /// SIGTERM, and waits for the graceful stop (sealed batches are published first).
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, &self.node_id, &self.log);
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
    /// Its data directory (SQLite catalogue `catalogue.db`, search index `search/`).
    pub data_dir: PathBuf,
    /// The durable queue it consumes from.
    pub queue: String,
    amqp_url: Option<String>,
    child: Option<Child>,
    log: PathBuf,
}

/// What a test gateway is made of, beyond its trusted nodes.
#[derive(Default)]
pub struct GatewaySpec {
    /// Catalogue database URL (`None`: SQLite in the data dir).
    pub database_url: Option<String>,
    /// Broker URL (`None`: the feed puller is the only transport).
    pub amqp_url: Option<String>,
    /// Queue name (`None`: a name no other test uses).
    pub amqp_queue: Option<String>,
    /// Pause between feed polls of a caught-up node, ms (`None`: 300). A long pause leaves the
    /// broker as the live path, with the feed only filling the gaps it reports.
    pub pull_interval_ms: Option<u64>,
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
        GatewayProcess::start_with(
            exe,
            dir,
            GatewaySpec {
                database_url,
                amqp_url,
                ..GatewaySpec::default()
            },
            nodes,
        )
    }

    /// [`GatewayProcess::start`] with every option of [`GatewaySpec`].
    pub fn start_with(
        exe: &str,
        dir: &Path,
        spec: GatewaySpec,
        nodes: &[&NodeProcess],
    ) -> GatewayProcess {
        let mut gw = GatewayProcess::prepare(exe, dir, spec);
        for node in nodes {
            gw.trust(node);
        }
        gw.spawn();
        gw
    }

    /// Writes a gateway config under `dir` without starting anything: for a test that
    /// prepares the trust store with the CLI first ([`GatewayProcess::rix`]), then starts it
    /// with [`GatewayProcess::restart`].
    pub fn prepare(exe: &str, dir: &Path, spec: GatewaySpec) -> GatewayProcess {
        let port = free_port();
        let data_dir = dir.join("gateway");
        let database_url = spec
            .database_url
            .unwrap_or_else(|| data_dir.join("catalogue.db").to_string_lossy().into_owned());
        let queue = spec.amqp_queue.unwrap_or_else(|| unique("rix.gateway.e2e"));
        let mut toml = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ndatabase_url = \"{database_url}\"\n\
             amqp_queue = \"{queue}\"\n",
            data_dir.display()
        );
        if let Some(a) = &spec.amqp_url {
            toml.push_str(&format!("amqp_url = \"{a}\"\n"));
        }
        toml.push_str(&format!(
            "[pull]\ninterval_ms = {}\nrequest_timeout_ms = 5000\nconnect_timeout_ms = 2000\n",
            spec.pull_interval_ms.unwrap_or(300)
        ));
        std::fs::create_dir_all(&data_dir).unwrap();
        let config = dir.join("gateway.toml");
        std::fs::write(&config, toml).unwrap();
        GatewayProcess {
            exe: PathBuf::from(exe),
            config,
            url: format!("http://127.0.0.1:{port}"),
            database_url,
            data_dir,
            queue,
            amqp_url: spec.amqp_url,
            child: None,
            log: dir.join("gateway.log"),
        }
    }

    /// Trusts `node`'s key and feed, with the feed token the node enrolled the gateway with,
    /// by `rix trust add`, as an operator would (the gateway may be running or not).
    pub fn trust(&self, node: &NodeProcess) {
        self.trust_key(node, node.key.verifying_key());
    }

    /// [`GatewayProcess::trust`] with a key of the node's other than the one it signs with
    /// now (its first key, when a rebuilt gateway re-enters the trust store).
    pub fn trust_key(&self, node: &NodeProcess, key: &rix_schema::signing::VerifyingKey) {
        let token_file = self
            .data_dir
            .with_file_name(format!("feed-token-{}", node.node_id));
        std::fs::write(&token_file, tokens::feed_token(&node.node_id)).unwrap();
        let key = key.to_base64();
        let token_file = token_file.to_string_lossy().into_owned();
        self.rix(&[
            "trust",
            "add",
            "--node",
            &node.node_id,
            "--key",
            &key,
            "--feed-url",
            &node.url,
            "--feed-token-file",
            &token_file,
        ]);
    }

    /// Runs `rix ARGS --config GATEWAY.toml` (a `trust` or `token` command, as the operator
    /// would on this gateway's host); panics with its output if it fails; returns its standard
    /// output.
    pub fn rix(&self, args: &[&str]) -> String {
        let out = self.rix_output(args);
        assert!(
            out.status.success(),
            "rix {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`GatewayProcess::rix`] that may fail: the whole output.
    pub fn rix_output(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.exe)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
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

    /// SIGTERM, and waits for the graceful stop (what it holds is committed and acked).
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, "gateway", &self.log);
        }
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
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
        // Its queue is bound to every node's batches: leave nothing filling up behind (in its
        // own virtual host: another vhost may have a queue of the same name).
        if let Some(url) = &self.amqp_url {
            let _ = Command::new("rabbitmqctl")
                .args(["delete_queue", "-p", &vhost_of(url), &self.queue])
                .env("RABBITMQ_NODENAME", "rabbit@localhost")
                .output();
        }
    }
}

/// Sends SIGTERM to `child` and waits (at most a minute) for it to exit.
fn terminate(mut child: Child, name: &str, log: &Path) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name} did not stop within 60 s of SIGTERM; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The virtual host an `amqp://…/VHOST` URL names (`/` when it names none).
pub fn vhost_of(amqp_url: &str) -> String {
    let rest = amqp_url.split_once("://").map_or(amqp_url, |(_, r)| r);
    match rest.split_once('/') {
        Some((_, v)) if !v.is_empty() => {
            let v = v.split('?').next().unwrap_or(v);
            v.replace("%2f", "/").replace("%2F", "/")
        }
        _ => "/".to_owned(),
    }
}

/// Runs `rabbitmqctl ARGS` against the test broker's node; panics with its output on failure.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .env("RABBITMQ_NODENAME", "rabbit@localhost")
        .output()
        .expect("rabbitmqctl is installed by ops/install-deps.sh");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A blocking health probe for waiting on a process, usable with or without a runtime.
pub mod probe {
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

/// GET `url` anonymously (no `Authorization` header at all: an empty bearer token is an
/// unknown token to the gateway); returns status and JSON body (`null` if not JSON).
pub async fn get_json(
    http: &reqwest::Client,
    url: &str,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let (status, text) = get_text(http, url).await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    ))
}

/// GET `url` anonymously; returns status and body text.
pub async fn get_text(http: &reqwest::Client, url: &str) -> Result<(u16, String), reqwest::Error> {
    let resp = http.get(url).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Calls `probe` every 100 ms until it returns `Ok`, and returns that; after `within`, panics
/// naming `what` and the last `Err` (what the probe saw instead).
pub async fn poll_until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not reached within {within:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A record as an institution submits it: without the fields the node assigns
/// (`registration_no`, `registration_date`) and without `confidential_fields`; its secrecy as
/// given.
pub fn as_submission(mut record: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = record.as_object_mut() {
        obj.remove("registration_no");
        obj.remove("registration_date");
        obj.remove("confidential_fields");
    }
    record
}

/// Submits `docs` with `token` in one batch (`POST /v1/{collection}/batch`); returns the new
/// ids in order.
pub async fn submit_batch(
    http: &reqwest::Client,
    node: &NodeProcess,
    token: &str,
    collection: &str,
    docs: Vec<serde_json::Value>,
) -> Vec<String> {
    let (status, body) = call(
        http,
        reqwest::Method::POST,
        &format!("{}/v1/{collection}/batch", node.url),
        token,
        Some(&serde_json::Value::Array(docs)),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Submits `docs` as the admin (`POST /v1/{collection}/batch`) and approves them all as the
/// reviewer (bulk `POST /v1/{collection}/approve`); returns the new ids in order.
pub async fn register_approved(
    http: &reqwest::Client,
    node: &NodeProcess,
    collection: &str,
    docs: Vec<serde_json::Value>,
) -> Vec<String> {
    let ids = submit_batch(http, node, tokens::ADMIN, collection, docs).await;
    let (status, body) = call(
        http,
        reqwest::Method::POST,
        &format!("{}/v1/{collection}/approve", node.url),
        tokens::REVIEWER,
        Some(&serde_json::json!({ "ids": ids })),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    ids
}

/// Waits until `node`'s log ends at `last_seq` with nothing left in its outbox (everything
/// approved is sealed, and confirmed by the broker if it has one).
pub async fn wait_node_published(http: &reqwest::Client, node: &NodeProcess, last_seq: i64) {
    wait_node_log(http, node, last_seq, true).await
}

/// Waits until `node`'s log ends at `last_seq`; with `confirmed`, also until its outbox is
/// empty (a node whose broker is unreachable keeps its entries there, serving them on its
/// feed only).
pub async fn wait_node_log(
    http: &reqwest::Client,
    node: &NodeProcess,
    last_seq: i64,
    confirmed: bool,
) {
    let health_url = format!("{}/healthz", node.url);
    poll_until(
        &format!("node {} logs up to seq {last_seq}", node.node_id),
        Duration::from_secs(60),
        || async {
            let (_, h) = get_json(http, &health_url)
                .await
                .map_err(|e| e.to_string())?;
            if h["log"]["last_seq"] == last_seq && (!confirmed || h["log"]["outbox_depth"] == 0) {
                Ok(())
            } else {
                Err(h.to_string())
            }
        },
    )
    .await
}

/// A Prometheus value at `{base_url}/metrics`: with labels (`rix_gateway_batches_applied_total{transport="amqp"}`,
/// exactly as rendered) the one sample; without, the sum of every sample of that metric
/// whatever its labels. 0 if there is none.
pub async fn metric(http: &reqwest::Client, base_url: &str, name: &str) -> f64 {
    let (status, text) = get_text(http, &format!("{base_url}/metrics"))
        .await
        .expect("metrics answer");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let matches = if name.contains('{') {
                key == name
            } else {
                key.split('{').next() == Some(name)
            };
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Every line of the gateway's change feed (`GET /v1/changes`, anonymous), following the
/// cursor to the end; `filter` is added to the query (e.g. `&node=prov-530000`).
pub async fn gateway_changes(
    http: &reqwest::Client,
    gateway_url: &str,
    filter: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let mut lines = Vec::new();
    let mut after = 0i64;
    loop {
        let resp = http
            .get(format!(
                "{gateway_url}/v1/changes?after={after}&limit=10000{filter}"
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("/v1/changes answered {}", resp.status()));
        }
        let next: i64 = resp
            .headers()
            .get("X-Rix-Next-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or("/v1/changes without X-Rix-Next-After")?;
        let text = resp.text().await.map_err(|e| e.to_string())?;
        for line in text.lines().filter(|l| !l.is_empty()) {
            lines.push(serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?);
        }
        if next == after {
            return Ok(lines);
        }
        after = next;
    }
}

/// Every hit of a gateway search (`GET /v1/search?QUERY`, anonymous), following
/// `next_cursor` to the end; with the first page's `total`. Pages of 100 unless `QUERY` sets
/// `limit` (the gateway refuses a parameter given twice).
pub async fn gateway_search(
    http: &reqwest::Client,
    gateway_url: &str,
    query: &str,
) -> Result<(u64, Vec<serde_json::Value>), String> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut total = None;
    let limit = if query.split('&').any(|p| p.starts_with("limit=")) {
        ""
    } else {
        "limit=100&"
    };
    loop {
        let mut url = format!("{gateway_url}/v1/search?{limit}{query}");
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        let (status, body) = get_json(http, &url).await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("/v1/search answered {status}: {body}"));
        }
        total.get_or_insert(body["total"].as_u64().unwrap_or(0));
        items.extend(body["items"].as_array().cloned().unwrap_or_default());
        match body["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
            _ => return Ok((total.unwrap_or(0), items)),
        }
    }
}
