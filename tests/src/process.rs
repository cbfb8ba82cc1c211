//! Nodes and gateways as separate `rix … serve` processes: written configs, started and waited
//! for until healthy, killed (SIGKILL), stopped (SIGTERM), restarted on the same data, and
//! the gateway's trust store managed with the CLI as an operator would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rix_schema::signing::SigningKey;
use rix_test_support::keys::signing_key_file;
use rix_test_support::tokens;

use crate::broker::{rabbitmqctl_output, vhost_of};

/// A free loopback port (bound and released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The last lines of a log, for failure messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
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
    /// Broker URL (`None`: its signed feed is its only transport).
    pub amqp_url: Option<String>,
    /// Batch size.
    pub max_entries: usize,
    /// Batch linger.
    pub linger_ms: u64,
}

impl<'a> NodeSpec<'a> {
    /// Node `node_id`, registering under `issuer`: on SQLite, without a broker, batches of up
    /// to 50 entries sealed 10 ms after their first.
    pub fn new(node_id: &'a str, issuer: &'a str) -> NodeSpec<'a> {
        NodeSpec {
            node_id,
            issuer,
            database_url: None,
            amqp_url: None,
            max_entries: 50,
            linger_ms: 10,
        }
    }

    /// Publishing to the broker at `amqp_url` as well.
    pub fn with_broker(self, amqp_url: String) -> NodeSpec<'a> {
        NodeSpec {
            amqp_url: Some(amqp_url),
            ..self
        }
    }

    /// On the database at `database_url` (`None`: SQLite in the data dir).
    pub fn with_database(self, database_url: Option<String>) -> NodeSpec<'a> {
        NodeSpec {
            database_url,
            ..self
        }
    }

    /// Batches of up to `max_entries`, sealed `linger_ms` after their first entry.
    pub fn with_batches(self, max_entries: usize, linger_ms: u64) -> NodeSpec<'a> {
        NodeSpec {
            max_entries,
            linger_ms,
            ..self
        }
    }
}

impl NodeProcess {
    /// Writes a config (and key) under `dir` and starts the node; returns when it is healthy.
    /// It accepts the [`tokens`] and enrols the test gateway with [`tokens::feed_token`].
    pub fn start(exe: &str, dir: &Path, spec: NodeSpec<'_>) -> NodeProcess {
        let key_path = dir.join(format!("{}.key.pem", spec.node_id));
        let key = signing_key_file(&key_path);
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
        node.spawn(true);
        node
    }

    /// Sets an environment variable for the next (re)start.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.extra_env.push((name.to_owned(), value.to_owned()));
    }

    /// Starts the process; on its first start (`may_move`) it moves to another port if its
    /// own was taken meanwhile. Not later: the gateway knows its feed by its URL.
    fn spawn(&mut self, may_move: bool) {
        let serve = || {
            let mut cmd = Command::new(&self.exe);
            cmd.args(["node", "serve", "--config"]).arg(&self.config);
            for (k, v) in &self.extra_env {
                cmd.env(k, v);
            }
            cmd
        };
        let child = serve_on_own_port(serve, &self.config, &mut self.url, &self.log, may_move);
        self.child = Some(child);
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
        self.spawn(false);
    }

    /// The node's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of [`NodeProcess::log`].
    pub fn log_tail(&self) -> String {
        tail(&self.log())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the service `serve()` makes, listening at `url` as its `config` says, with its output
/// appended to `log`; returns once it serves there. With `may_move`, a port another process
/// took between [`free_port`] and the start is exchanged for a free one, in `config` and `url`.
fn serve_on_own_port(
    serve: impl Fn() -> Command,
    config: &Path,
    url: &mut String,
    log: &Path,
    may_move: bool,
) -> Child {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match spawn_healthy(serve(), log, url) {
            Ok(child) => return child,
            Err(said) if may_move && attempts < 3 && said.contains("Address already in use") => {
                let taken = url.trim_start_matches("http://").to_owned();
                let free = format!("127.0.0.1:{}", free_port());
                let text = std::fs::read_to_string(config).unwrap();
                let moved = text.replace(
                    &format!("listen = \"{taken}\""),
                    &format!("listen = \"{free}\""),
                );
                std::fs::write(config, moved).unwrap();
                *url = format!("http://{free}");
            }
            Err(said) => panic!("{} did not start:\n{said}", config.display()),
        }
    }
}

/// Starts `cmd` with its output appended to `log` and waits until it serves `url`: it says it
/// listens there, and `{url}/healthz` answers 200 (a `/healthz` alone may be another
/// process's, on a port taken before this one could bind it). `Err` with what it logged if it
/// exits first.
fn spawn_healthy(mut cmd: Command, log: &Path, url: &str) -> Result<Child, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let logged_before = file.metadata().unwrap().len() as usize;
    let said = || {
        let text = std::fs::read(log).unwrap_or_default();
        String::from_utf8_lossy(&text[logged_before.min(text.len())..]).into_owned()
    };
    cmd.stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let listening = format!("listening on {url}\n");
    loop {
        if said().contains(&listening) && probe::healthy(&format!("{url}/healthz")).unwrap_or(false)
        {
            return Ok(child);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("exited with {status}; log:\n{}", said()));
        }
        assert!(
            Instant::now() < deadline,
            "{cmd:?} never became healthy; log:\n{}",
            said()
        );
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
        let queue = spec
            .amqp_queue
            .unwrap_or_else(|| rix_test_support::unique("rix.gateway.e2e"));
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

    /// Starts the process (on another port if its own was taken: no node needs to know it).
    fn spawn(&mut self) {
        let serve = || {
            let mut cmd = Command::new(&self.exe);
            cmd.args(["gateway", "serve", "--config"]).arg(&self.config);
            cmd
        };
        let child = serve_on_own_port(serve, &self.config, &mut self.url, &self.log, true);
        self.child = Some(child);
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

    /// The last lines of [`GatewayProcess::log`].
    pub fn log_tail(&self) -> String {
        tail(&self.log())
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
        // Its queue is bound to every node's batches: leave nothing filling up behind (in its
        // own virtual host: another vhost may have a queue of the same name).
        if let Some(url) = &self.amqp_url {
            let _ = rabbitmqctl_output(&["delete_queue", "-p", &vhost_of(url), &self.queue]);
        }
    }
}

/// Sends SIGTERM to `child` and waits (at most a minute) for it to exit.
fn terminate(mut child: Child, name: &str, log: &Path) {
    if !stop_child(&mut child, Duration::from_secs(60)) {
        panic!(
            "{name} did not stop within 60 s of SIGTERM; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// Stops `child` as systemd stops a service: SIGTERM, then up to `within` for it to exit, then
/// SIGKILL. A wrapper such as `runuser` passes SIGTERM on to the program it runs, where a
/// SIGKILL would leave that program running. Returns whether it stopped on the SIGTERM.
pub fn stop_child(child: &mut Child, within: Duration) -> bool {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
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
