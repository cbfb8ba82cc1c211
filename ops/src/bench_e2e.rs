//! `rix bench e2e`: the whole exchange as separate processes — N `rix node serve`, one
//! `rix gateway serve`, the signed feeds (and RabbitMQ with `--amqp`) between them — with
//! records registered at the nodes through their HTTP APIs as institutions and reviewers do.
//!
//! It measures, per record and from outside the services: when the node answered the approval,
//! which change id the gateway's catalogue gave the record (the harness tails `changes` in the
//! catalogue, opened read-only), and when the gateway's search index first reported, on
//! `/healthz`, that it has committed that change (`search.indexed_change_id`, set after the
//! index's searchers have reloaded: from then on a search finds the record). Freshness is
//! searchable − approved; throughput is published records over (last searchable − first
//! approval).
//!
//! What it does not do: it never writes to a node's database or the gateway's catalogue, and
//! it reuses nothing between runs (every run starts from empty databases in its data dir, and
//! from an empty database of its own with `--postgres`). Classified records are registered and
//! approved like the others but never leave their node, so they are counted apart and left out
//! of freshness and throughput.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use rix_schema::signing::SigningKey;
use rix_schema::{RecordKind, SecrecyLevel};
use serde_json::Value;

use crate::bench_search::{cpu_secs_of, memory_of};
use crate::demo::random_token;
use crate::loadgen::{self, Target};

/// The provinces the bench's nodes stand for, in order (one node each): the twelve of every
/// earlier run first, then the other nineteen mainland province-level divisions.
const PROVINCES: [&str; 31] = [
    "530000", "210000", "110000", "310000", "440000", "510000", "320000", "330000", "420000",
    "370000", "610000", "120000", "130000", "140000", "150000", "220000", "230000", "340000",
    "350000", "360000", "410000", "430000", "450000", "460000", "500000", "520000", "540000",
    "620000", "630000", "640000", "650000",
];

/// The central departments' nodes after the provinces (node id, name, department code). The
/// codes are distinct three-digit codes of the bench's own choosing, so that no two nodes issue
/// the same registration numbers; only 科学技术部's 348 is the one used everywhere else.
const DEPARTMENTS: [(&str, &str, &str); 9] = [
    ("most", "科学技术部", "348"),
    ("moe", "教育部", "360"),
    ("miit", "工业和信息化部", "373"),
    ("moa", "农业农村部", "381"),
    ("nhc", "国家卫生健康委员会", "394"),
    ("mnr", "自然资源部", "404"),
    ("mee", "生态环境部", "412"),
    ("cas", "中国科学院", "421"),
    ("cae", "中国工程院", "433"),
];

/// Node `n` of a run: a province, or past the provinces a central department.
pub(crate) fn profile_of(n: usize) -> NodeProfile {
    match PROVINCES.get(n) {
        Some(code) => NodeProfile::province(code),
        None => {
            let (id, name, code) = DEPARTMENTS[n - PROVINCES.len()];
            NodeProfile::ministry(id, name, code)
        }
    }
}

/// The most nodes a run can have.
const MAX_NODES: usize = PROVINCES.len() + DEPARTMENTS.len();

/// The PostgreSQL database of the bench's own (created, and emptied before each run).
const PG_DATABASE: &str = "rix_bench_e2e";

/// What `rix bench e2e` was asked to do.
#[derive(Debug, Clone)]
pub struct E2eBench {
    /// Node processes.
    pub nodes: usize,
    /// Records registered in all, across the nodes.
    pub records: u64,
    /// Offered approvals per second across all nodes (0: as fast as the nodes answer).
    pub rate: u64,
    /// RabbitMQ URL for nodes and gateway (`None`: the signed feeds are the only transport).
    pub amqp: Option<String>,
    /// PostgreSQL server URL for the gateway's catalogue (`None`: SQLite in the data dir).
    pub postgres: Option<String>,
    /// Where configs, keys, databases and logs are kept (emptied first).
    pub dir: PathBuf,
    /// Records per submit and approve request.
    pub batch: usize,
    /// Concurrent registering tasks per node.
    pub concurrency: usize,
    /// The gateway's pause between feed polls of a caught-up node, ms.
    pub pull_interval_ms: u64,
    /// Register every record first with no gateway running, then start an empty gateway and
    /// time how long it takes to pull them all from the nodes' feeds and index them.
    pub backfill: bool,
}

/// A `rix … serve` child process with its output in a log file.
pub(crate) struct Service {
    pub(crate) name: String,
    child: Child,
    pub(crate) url: String,
    log: PathBuf,
}

impl Service {
    /// Starts `rix ARGS --config CONFIG` (listening on `port`) and waits until its `/healthz`
    /// answers 200.
    pub(crate) async fn start(
        name: &str,
        args: &[&str],
        config: &Path,
        port: u16,
        log: PathBuf,
        http: &reqwest::Client,
    ) -> Result<Service> {
        let file = std::fs::File::create(&log)?;
        let child = Command::new(std::env::current_exe()?)
            .args(args)
            .arg("--config")
            .arg(config)
            // As deployed: the services log every request at `info`.
            .env("RIX_LOG", "info")
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting `rix {}` for {name}", args.join(" ")))?;
        let mut service = Service {
            name: name.to_owned(),
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = service.child.try_wait()? {
                bail!(
                    "{name} exited at start ({status}); its log {}:\n{}",
                    service.log.display(),
                    service.log_tail()
                );
            }
            // Ready once it says it listens and its port answers: on a shared machine another
            // program may hold the port this config names (chosen free when it was written),
            // and its answer must not pass for ours while our child fails to bind.
            let listening = std::fs::read_to_string(&service.log)
                .is_ok_and(|log| log.contains(" listening on http"));
            if listening
                && let Ok(r) = http.get(format!("{}/healthz", service.url)).send().await
                && r.status().is_success()
            {
                return Ok(service);
            }
            if Instant::now() > deadline {
                bail!("{name} did not answer /healthz within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Peak resident memory (VmHWM), MiB, and CPU seconds so far.
    pub(crate) fn usage(&self) -> (f64, f64) {
        let pid = self.child.id();
        let peak = memory_of(pid).map_or(0.0, |m| m.hwm_kib as f64 / 1024.0);
        (peak, cpu_secs_of(&format!("/proc/{pid}/stat")))
    }

    /// SIGTERM, then SIGKILL if it has not stopped within 30 s.
    pub(crate) fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok(None) = self.child.try_wait() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A node as the bench set it up (before it runs).
pub(crate) struct NodeSetup {
    pub(crate) profile: NodeProfile,
    pub(crate) config: PathBuf,
    pub(crate) port: u16,
    pub(crate) key: SigningKey,
    pub(crate) admin_token: String,
    pub(crate) feed_token: String,
}

/// Node `n` with its key and credentials (its config path under `dir`, its port not chosen).
pub(crate) fn node_setup(
    dir: &Path,
    n: usize,
    key: SigningKey,
    admin_token: String,
    feed_token: String,
) -> NodeSetup {
    let profile = profile_of(n);
    NodeSetup {
        config: dir.join(format!("{}.toml", profile.node_id())),
        profile,
        port: 0,
        key,
        admin_token,
        feed_token,
    }
}

/// The key file of `node_id` under `dir`.
pub(crate) fn key_path(dir: &Path, node_id: &str) -> PathBuf {
    dir.join(format!("{node_id}.key.pem"))
}

/// Node `n` with a new key (written under `dir`) and new credentials.
pub(crate) fn new_node(dir: &Path, n: usize) -> Result<NodeSetup> {
    let key = SigningKey::generate().context("generating an Ed25519 key with OpenSSL")?;
    crate::write_private(
        &key_path(dir, profile_of(n).node_id()),
        key.to_pkcs8_pem()?.as_bytes(),
    )?;
    Ok(node_setup(
        dir,
        n,
        key,
        random_token("bench-admin-")?,
        random_token("bench-feed-")?,
    ))
}

/// The harness's HTTP client.
pub(crate) fn harness_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(64)
        // Shorter than the services' keep-alive, so that no request goes out on a connection
        // the server is closing.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()?)
}

/// Starts a `rix node serve` for each of `setups` (logs under `dir`), in order.
pub(crate) async fn start_nodes(
    dir: &Path,
    setups: &[NodeSetup],
    http: &reqwest::Client,
) -> Result<Vec<Service>> {
    let mut nodes = Vec::new();
    for node in setups {
        let id = node.profile.node_id();
        nodes.push(
            Service::start(
                id,
                &["node", "serve"],
                &node.config,
                node.port,
                dir.join(format!("{id}.log")),
                http,
            )
            .await?,
        );
    }
    Ok(nodes)
}

/// Registers `bench.records` across the nodes (each its share, paced to `bench.rate`), saying
/// every 10 s how far it is; what each node's loader saw, in node order.
pub(crate) async fn register_all(
    bench: &E2eBench,
    http: &reqwest::Client,
    nodes: &[Service],
    setups: &[NodeSetup],
    t0: Instant,
) -> Result<Vec<Approved>> {
    let sent = Arc::new(AtomicU64::new(0));
    let per_node = bench.records / bench.nodes as u64;
    let per_node_rate = bench.rate as f64 / bench.nodes as f64;
    let mut loaders = Vec::new();
    for (n, setup) in setups.iter().enumerate() {
        let count = per_node + u64::from((n as u64) < bench.records % bench.nodes as u64);
        let target = Target {
            url: nodes[n].url.clone(),
            submitter_token: setup.admin_token.clone(),
            reviewer_token: setup.admin_token.clone(),
        };
        loaders.push(tokio::spawn(load_node(
            http.clone(),
            target,
            setup.profile.clone(),
            count,
            per_node_rate,
            bench.clone(),
            t0,
            sent.clone(),
        )));
    }
    let progress = {
        let (sent, total) = (sent.clone(), bench.records);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!(
                    "  {:>5.0} s: {} of {total} records approved",
                    t0.elapsed().as_secs_f64(),
                    sent.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut approved = Vec::new();
    for (n, l) in loaders.into_iter().enumerate() {
        let a = l.await.context("a node's loader panicked");
        let a = a.and_then(|a| a.with_context(|| format!("registering at {}", nodes[n].name)));
        match a {
            Ok(a) => approved.push(a),
            Err(e) => {
                progress.abort();
                return Err(e);
            }
        }
    }
    progress.abort();
    Ok(approved)
}

/// Writes `node`'s config under `dir` with a free port of this run (its database, key and
/// tokens stay what they were).
pub(crate) fn write_node_config(
    dir: &Path,
    node: &mut NodeSetup,
    bench: &E2eBench,
    exchange: &str,
) -> Result<()> {
    let node_id = node.profile.node_id().to_owned();
    let issuer = node.profile.issuer().code().to_owned();
    node.port = free_port()?;
    let mut toml = format!(
        "node_id = {node_id:?}\nregistration_issuer = {issuer:?}\nlisten = \"127.0.0.1:{}\"\n\
         data_dir = {:?}\nsigning_key = {:?}\n",
        node.port,
        dir.join(&node_id).display().to_string(),
        key_path(dir, &node_id).display().to_string(),
    );
    if let Some(amqp) = &bench.amqp {
        toml.push_str(&format!(
            "amqp_url = {amqp:?}\namqp_exchange = {exchange:?}\n"
        ));
    }
    toml.push_str(&format!(
        "\n[[tokens]]\ntoken = {:?}\nrole = \"admin\"\nname = \"bench\"\n\n\
         [[gateways]]\nname = \"bench gateway\"\ntoken = {:?}\n",
        node.admin_token, node.feed_token
    ));
    crate::write_private(&node.config, toml.as_bytes())?;
    Ok(())
}

/// Writes the gateway's config under `dir`; returns it and the port.
pub(crate) fn write_gateway(
    dir: &Path,
    bench: &E2eBench,
    database_url: Option<&str>,
    exchange: &str,
) -> Result<(PathBuf, u16)> {
    let port = free_port()?;
    let data_dir = dir.join("gateway");
    std::fs::create_dir_all(&data_dir)?;
    let mut toml = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\ndb_connections = 8\n",
        data_dir.display().to_string()
    );
    if let Some(url) = database_url {
        toml.push_str(&format!("database_url = {url:?}\n"));
    }
    if let Some(amqp) = &bench.amqp {
        toml.push_str(&format!(
            "amqp_url = {amqp:?}\namqp_exchange = {exchange:?}\namqp_queue = {exchange:?}\n"
        ));
    }
    toml.push_str(&format!(
        "\n[pull]\ninterval_ms = {}\n",
        bench.pull_interval_ms
    ));
    let config = dir.join("gateway.toml");
    std::fs::write(&config, toml)?;
    Ok((config, port))
}

/// `rix trust add` for `node`, as an operator would.
pub(crate) fn trust(gateway_config: &Path, dir: &Path, node: &NodeSetup) -> Result<()> {
    let node_id = node.profile.node_id();
    let token_file = dir.join(format!("feed-token-{node_id}"));
    crate::write_private(&token_file, node.feed_token.as_bytes())?;
    let out = Command::new(std::env::current_exe()?)
        .args(["trust", "add", "--config"])
        .arg(gateway_config)
        .args([
            "--node",
            node_id,
            "--key",
            &node.key.verifying_key().to_base64(),
        ])
        .args(["--feed-url", &format!("http://127.0.0.1:{}", node.port)])
        .arg("--feed-token-file")
        .arg(&token_file)
        .env("RUST_LOG", "warn")
        .output()
        .context("running `rix trust add`")?;
    if !out.status.success() {
        bail!(
            "rix trust add --node {node_id} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The gateway's catalogue, opened by the harness to read `changes`.
enum Catalogue {
    Sqlite(diesel::SqliteConnection),
    Postgres(diesel::PgConnection),
}

#[derive(diesel::QueryableByName)]
struct ChangeRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    change_id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    node_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

impl Catalogue {
    fn open(url: &str) -> Result<Catalogue> {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        if url.starts_with("postgres") {
            let conn = diesel::PgConnection::establish(url)
                .with_context(|| format!("opening {}", rix_node::db::redact_url(url)))?;
            Ok(Catalogue::Postgres(conn))
        } else {
            let mut conn = diesel::SqliteConnection::establish(url)
                .with_context(|| format!("opening the catalogue {url}"))?;
            conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA query_only = 1")?;
            Ok(Catalogue::Sqlite(conn))
        }
    }

    /// Up to `limit` changes after `after`, in order.
    fn changes_after(&mut self, after: i64, limit: i64) -> Result<Vec<ChangeRow>> {
        use diesel::RunQueryDsl;
        use diesel::sql_types::BigInt;
        let query = diesel::sql_query(
            "SELECT change_id, node_id, id FROM changes WHERE change_id > $1 \
             ORDER BY change_id LIMIT $2",
        )
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(limit);
        Ok(match self {
            Catalogue::Sqlite(c) => query.load(c)?,
            Catalogue::Postgres(c) => query.load(c)?,
        })
    }
}

/// What the harness saw of one node's records: each published record's id and the second
/// (since the start) its approval was answered.
#[derive(Default)]
pub(crate) struct Approved {
    pub(crate) published: Vec<(String, f64)>,
    pub(crate) classified: u64,
    pub(crate) first_submit: Option<f64>,
}

/// The instant (seconds since the start) record `change` became searchable: the first
/// observation of the index's committed change id at or past it. `observations` are
/// (indexed change id, first seen at) in the order seen, both increasing.
pub fn searchable_at(observations: &[(i64, f64)], change: i64) -> Option<f64> {
    let i = observations.partition_point(|(indexed, _)| *indexed < change);
    observations.get(i).map(|(_, at)| *at)
}

/// The value below which `q` (0..=1) of `sorted` lies (nearest rank); `sorted` ascending.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The gateway's search index position as `/healthz` reports it.
pub(crate) async fn indexed_change_id(http: &reqwest::Client, gateway: &str) -> Result<i64> {
    let health: Value = http
        .get(format!("{gateway}/healthz"))
        .send()
        .await?
        .json()
        .await?;
    health["search"]["indexed_change_id"]
        .as_i64()
        .context("/healthz has no search.indexed_change_id (is the harness on loopback?)")
}

/// Registers node `n`'s share of the records, paced to `per_node_rate` (0: flat out), with
/// `bench.concurrency` tasks.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn load_node(
    http: reqwest::Client,
    target: Target,
    profile: NodeProfile,
    count: u64,
    per_node_rate: f64,
    bench: E2eBench,
    t0: Instant,
    sent: Arc<AtomicU64>,
) -> Result<Approved> {
    let generator = Arc::new(SampleGenerator::new(SampleConfig {
        node: profile.clone(),
        ..SampleConfig::default()
    }));
    let batch = bench.batch.clamp(1, 1000) as u64;
    let chunks = count.div_ceil(batch);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..bench.concurrency.max(1) {
        let (http, target, generator, next, sent) = (
            http.clone(),
            target.clone(),
            generator.clone(),
            next.clone(),
            sent.clone(),
        );
        let node_id = profile.node_id().to_owned();
        workers.push(tokio::spawn(async move {
            let mut mine = Approved::default();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= chunks {
                    return Ok::<_, anyhow::Error>(mine);
                }
                let range = k * batch..((k + 1) * batch).min(count);
                if per_node_rate > 0.0 {
                    let due = t0 + Duration::from_secs_f64(range.start as f64 / per_node_rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let docs: Vec<Value> = range
                    .clone()
                    .map(|i| {
                        loadgen::submission(
                            serde_json::to_value(generator.achievement(i))
                                .expect("generated records serialise"),
                        )
                    })
                    .collect();
                let submitted = t0.elapsed().as_secs_f64();
                mine.first_submit = Some(mine.first_submit.map_or(submitted, |f| f.min(submitted)));
                // A dropped connection (a keep-alive closed under the request) or a node that
                // timed out reading a request is retried: the submit's Idempotency-Key and the
                // approval's conflict handling make a retry register nothing twice.
                let key = format!("bench-e2e-{node_id}-{}-{}", range.start, range.end);
                let mut attempt = 0;
                let done = loop {
                    attempt += 1;
                    match loadgen::register(
                        &http,
                        &target,
                        RecordKind::Achievement,
                        &docs,
                        docs.len(),
                        &key,
                    )
                    .await
                    {
                        Ok(done) => break done,
                        Err(e)
                            if attempt < 5
                                && e.chain().any(|c| {
                                    c.is::<reqwest::Error>()
                                        || c.downcast_ref::<loadgen::Refused>()
                                            .is_some_and(loadgen::Refused::is_transient)
                                }) =>
                        {
                            eprintln!("  {node_id}: {e:#}; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => return Err(e),
                    }
                };
                let approved = t0.elapsed().as_secs_f64();
                for (doc, id) in docs.iter().zip(done.ids) {
                    let level = SecrecyLevel::of_record(doc).unwrap_or(SecrecyLevel::Public);
                    if level.may_leave_node() {
                        mine.published.push((id, approved));
                    } else {
                        mine.classified += 1;
                    }
                }
                sent.fetch_add(docs.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    let mut all = Approved::default();
    for w in workers {
        let part = w.await.context("a registering task panicked")??;
        all.published.extend(part.published);
        all.classified += part.classified;
        all.first_submit = match (all.first_submit, part.first_submit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(all)
}

/// What one run measured.
struct Outcome {
    published: usize,
    classified: u64,
    first_approval: f64,
    last_approval: f64,
    last_searchable: f64,
    freshness_ms: Vec<f64>,
    /// Approval → the change seen in the catalogue (transport and ingest).
    applied_ms: Vec<f64>,
    /// The change seen in the catalogue → searchable (the index's sync).
    indexing_ms: Vec<f64>,
    /// Distinct index positions seen on `/healthz` (about the index's commits).
    index_commits: usize,
    /// The `/healthz` polls' round trips, sorted.
    round_trips_ms: Vec<f64>,
    gateway: (f64, f64),
    nodes: Vec<(f64, f64)>,
    /// This process's CPU seconds (generating records, HTTP, observing).
    harness_cpu: f64,
    wall: f64,
}

/// Runs `rix bench e2e` and prints its report.
pub fn run(bench: &E2eBench) -> Result<()> {
    if bench.nodes == 0 || bench.nodes > MAX_NODES {
        bail!("--nodes must be 1 to {MAX_NODES}");
    }
    if bench.backfill && bench.amqp.is_some() {
        bail!("--backfill pulls the nodes' feeds: it takes no --amqp");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if bench.backfill {
        runtime.block_on(crate::bench_backfill::run(bench))
    } else {
        runtime.block_on(run_async(bench))
    }
}

async fn run_async(bench: &E2eBench) -> Result<()> {
    let dir = &bench.dir;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("emptying the data dir {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let dir = std::fs::canonicalize(dir)?;
    let exchange = format!("rix.bench.e2e.{}", std::process::id());

    let database_url = match &bench.postgres {
        Some(server) => {
            let url = crate::bench_import::bench_database(server, PG_DATABASE)?;
            crate::bench_import::empty_postgres(&url)?;
            Some(url)
        }
        None => None,
    };
    let catalogue_url = database_url.clone().unwrap_or_else(|| {
        dir.join("gateway/catalogue.db")
            .to_string_lossy()
            .into_owned()
    });

    let mut setups: Vec<NodeSetup> = (0..bench.nodes)
        .map(|n| new_node(&dir, n))
        .collect::<Result<_>>()?;
    for node in &mut setups {
        write_node_config(&dir, node, bench, &exchange)?;
    }
    let (gateway_config, gateway_port) =
        write_gateway(&dir, bench, database_url.as_deref(), &exchange)?;
    for node in &setups {
        trust(&gateway_config, &dir, node)?;
    }

    let http = harness_client()?;
    let mut gateway = Service::start(
        "the gateway",
        &["gateway", "serve"],
        &gateway_config,
        gateway_port,
        dir.join("gateway.log"),
        &http,
    )
    .await?;
    let mut nodes = start_nodes(&dir, &setups, &http).await?;

    let outcome = measure(bench, &http, &gateway, &nodes, &setups, &catalogue_url).await;
    for node in &mut nodes {
        node.stop();
    }
    gateway.stop();
    if let Some(amqp) = &bench.amqp {
        delete_queue(amqp, &exchange).await;
    }
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("gateway log (last lines):\n{}", gateway.log_tail());
            for n in &nodes {
                eprintln!("{} log (last lines):\n{}", n.name, n.log_tail());
            }
            return Err(e);
        }
    };
    report(bench, &outcome);
    Ok(())
}

/// Deletes the gateway's queue on the shared broker (it is bound to this run's exchange only).
async fn delete_queue(amqp: &str, queue: &str) {
    let Ok(conn) = lapin::Connection::connect(amqp, Default::default()).await else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        let _ = ch.queue_delete(queue.into(), Default::default()).await;
        let _ = ch.exchange_delete(queue.into(), Default::default()).await;
    }
    let _ = conn.close(0, "bench done".into()).await;
}

/// Sets its flag when dropped.
pub(crate) struct StopOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the catalogue's tail saw: (node id, record id) → (its first change id, seconds since
/// the start when the harness first read it).
pub(crate) type SeenChanges = HashMap<(String, String), (i64, f64)>;

/// Tails the catalogue's `changes` on a blocking thread, keeping `records_seen` (distinct
/// source records) and `head` (the newest change id) current, until `stop` is set and the
/// tail has read to the end.
pub(crate) fn tail_changes(
    catalogue_url: &str,
    t0: Instant,
    stop: &Arc<AtomicBool>,
    records_seen: &Arc<AtomicU64>,
    head: &Arc<AtomicI64>,
) -> tokio::task::JoinHandle<Result<SeenChanges>> {
    let (stop, url) = (stop.clone(), catalogue_url.to_owned());
    let (records_seen, head) = (records_seen.clone(), head.clone());
    tokio::task::spawn_blocking(move || {
        let mut catalogue = Catalogue::open(&url)?;
        let mut changes = HashMap::new();
        let mut after = 0;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let rows = catalogue.changes_after(after, 10_000)?;
            let full = rows.len() == 10_000;
            for row in rows {
                after = row.change_id;
                let at = t0.elapsed().as_secs_f64();
                changes
                    .entry((row.node_id, row.id))
                    .or_insert((row.change_id, at));
            }
            records_seen.store(changes.len() as u64, Ordering::Relaxed);
            head.store(after, Ordering::Relaxed);
            if stopping && !full {
                return Ok(changes);
            }
            if !full {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    })
}

async fn measure(
    bench: &E2eBench,
    http: &reqwest::Client,
    gateway: &Service,
    nodes: &[Service],
    setups: &[NodeSetup],
    catalogue_url: &str,
) -> Result<Outcome> {
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // On an early return too: the tailing thread must end, or the runtime waits for it.
    let _stop_on_return = StopOnDrop(stop.clone());

    // The index's position, polled: (indexed change id, first seen at).
    let observer = {
        let (http, url, stop) = (http.clone(), gateway.url.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen: Vec<(i64, f64)> = Vec::new();
            let mut round_trips_ms: Vec<f64> = Vec::new();
            let mut last = i64::MIN;
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let answer = indexed_change_id(&http, &url).await;
                round_trips_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
                // Dated by the answer: late by up to one round trip, never early.
                if let Ok(id) = answer
                    && id > last
                {
                    last = id;
                    seen.push((id, t0.elapsed().as_secs_f64()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            round_trips_ms.sort_by(f64::total_cmp);
            (seen, round_trips_ms)
        })
    };
    // The catalogue's changes, tailed: (node id, record id) → its first change id; how many
    // records it has seen, and the newest change id.
    let (records_seen, head) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicI64::new(0)));
    let tail = tail_changes(catalogue_url, t0, &stop, &records_seen, &head);

    let approved = register_all(bench, http, nodes, setups, t0).await?;
    let last_approval = approved
        .iter()
        .flat_map(|a| a.published.iter().map(|(_, at)| *at))
        .fold(0.0, f64::max);

    // Until the index has committed every published record's change (or nothing moves for
    // a minute).
    let published: usize = approved.iter().map(|a| a.published.len()).sum();
    let mut last_progress = (Instant::now(), -1i64);
    loop {
        let indexed = indexed_change_id(http, &gateway.url).await.unwrap_or(-1);
        let applied = records_seen.load(Ordering::Relaxed);
        if applied >= published as u64 && indexed >= head.load(Ordering::Relaxed) {
            break;
        }
        if indexed > last_progress.1 {
            last_progress = (Instant::now(), indexed);
        } else if last_progress.0.elapsed() > Duration::from_secs(60) {
            bail!(
                "stalled: {applied} of {published} published records in the catalogue, the index at \
                 change {indexed}, nothing moved for 60 s"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One more poll round so the observer has seen the last position.
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    let (observations, round_trips_ms) = observer.await?;
    // For a closer look: every index position and when it was first seen.
    let positions: String = observations
        .iter()
        .map(|(id, at)| format!("{id}\t{at:.3}\n"))
        .collect();
    std::fs::write(bench.dir.join("index-positions.tsv"), positions)?;
    let changes = tail.await??;
    let wall = t0.elapsed().as_secs_f64();

    let mut freshness_ms = Vec::with_capacity(published);
    let mut applied_ms = Vec::with_capacity(published);
    let mut indexing_ms = Vec::with_capacity(published);
    let mut last_searchable: f64 = 0.0;
    let mut first_approval = f64::MAX;
    for (n, a) in approved.iter().enumerate() {
        let node_id = setups[n].profile.node_id();
        for (id, at) in &a.published {
            let (change, applied) = changes
                .get(&(node_id.to_owned(), id.clone()))
                .with_context(|| format!("record {id} of {node_id} never reached the catalogue"))?;
            let searchable = searchable_at(&observations, *change).with_context(|| {
                format!("record {id} of {node_id} (change {change}) was never seen indexed")
            })?;
            freshness_ms.push((searchable - at) * 1000.0);
            applied_ms.push((applied - at) * 1000.0);
            indexing_ms.push((searchable - applied).max(0.0) * 1000.0);
            last_searchable = last_searchable.max(searchable);
            first_approval = first_approval.min(*at);
        }
    }
    for v in [&mut freshness_ms, &mut applied_ms, &mut indexing_ms] {
        v.sort_by(f64::total_cmp);
    }
    Ok(Outcome {
        published,
        classified: approved.iter().map(|a| a.classified).sum(),
        first_approval,
        last_approval,
        last_searchable,
        freshness_ms,
        applied_ms,
        indexing_ms,
        index_commits: observations.len(),
        round_trips_ms,
        gateway: gateway.usage(),
        nodes: nodes.iter().map(Service::usage).collect(),
        harness_cpu: cpu_secs_of("/proc/self/stat"),
        wall,
    })
}

fn report(bench: &E2eBench, o: &Outcome) {
    let transport = if bench.amqp.is_some() {
        "RabbitMQ (feeds as gap fill)"
    } else {
        "signed feeds only"
    };
    let store = if bench.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let offered = if bench.rate == 0 {
        "flat out".to_owned()
    } else {
        format!("{} records/s offered", bench.rate)
    };
    println!(
        "\n## rix bench e2e: {} nodes × {} records, {offered}, {transport}, gateway on {store}\n",
        bench.nodes,
        bench.records / bench.nodes as u64
    );
    println!(
        "Batches of {} per submit/approve request, {} concurrent requests per node, gateway feed \
         poll {} ms; wall {:.1} s.\n",
        bench.batch, bench.concurrency, bench.pull_interval_ms, o.wall
    );
    let span = (o.last_searchable - o.first_approval).max(1e-9);
    let approving = (o.last_approval - o.first_approval).max(1e-9);
    let f = &o.freshness_ms;
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| records published (classified, kept at their nodes) | {} ({}) |",
        o.published, o.classified
    );
    println!(
        "| end to end: first approval → last searchable | {:.1} s = **{:.0} records/s** |",
        span,
        o.published as f64 / span
    );
    println!(
        "| approvals answered (first → last) | {:.1} s = {:.0} records/s |",
        approving,
        o.published as f64 / approving
    );
    println!(
        "| freshness approval → searchable p50 / p99 / max | **{:.0} / {:.0} / {:.0} ms** (min {:.0} ms) |",
        percentile(f, 0.50),
        percentile(f, 0.99),
        f.last().copied().unwrap_or(f64::NAN),
        f.first().copied().unwrap_or(f64::NAN)
    );
    let legs = |v: &[f64]| {
        format!(
            "{:.0} / {:.0} / {:.0} ms",
            percentile(v, 0.50),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        )
    };
    println!(
        "| of which approval → in the catalogue (transport, ingest) | {} |",
        legs(&o.applied_ms)
    );
    println!(
        "| of which in the catalogue → searchable (index sync; {} positions seen) | {} |",
        o.index_commits,
        legs(&o.indexing_ms)
    );
    println!(
        "| `/healthz` poll round trip p50 / p99 (the observation's resolution) | {:.1} / {:.1} ms |",
        percentile(&o.round_trips_ms, 0.50),
        percentile(&o.round_trips_ms, 0.99)
    );
    println!(
        "| gateway peak RSS, CPU | {:.0} MiB, {:.1} CPU s |",
        o.gateway.0, o.gateway.1
    );
    let peak = o.nodes.iter().map(|n| n.0).fold(0.0, f64::max);
    let cpu: f64 = o.nodes.iter().map(|n| n.1).sum();
    println!("| nodes: largest peak RSS, CPU in all | {peak:.0} MiB, {cpu:.1} CPU s |");
    println!(
        "| the harness (generator, requests, observation) | {:.1} CPU s |",
        o.harness_cpu
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_searchable_when_the_index_first_reaches_its_change() {
        let seen = [(0, 0.1), (5, 0.3), (9, 0.5), (20, 0.9)];
        assert_eq!(searchable_at(&seen, 1), Some(0.3));
        assert_eq!(searchable_at(&seen, 5), Some(0.3));
        assert_eq!(searchable_at(&seen, 6), Some(0.5));
        assert_eq!(searchable_at(&seen, 20), Some(0.9));
        assert_eq!(searchable_at(&seen, 21), None);
        assert_eq!(searchable_at(&[], 1), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.50), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&sorted, 1.0), 100.0);
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
