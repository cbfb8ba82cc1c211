//! `rix demo`: the whole exchange in one process — a gateway and three nodes (the Ministry of
//! Science and Technology, Yunnan and Liaoning) — seeded with generated records through the
//! nodes' real HTTP APIs, so a newcomer can search the national catalogue a minute after
//! `cargo run`.
//!
//! Everything lives in one data dir (default `./rix-demo`): node keys, SQLite databases, the
//! gateway's search index, the generated tokens (`state.json`), the services' log (`demo.log`)
//! and `demo.json`, the file scripts read to find every URL and one bearer token per role
//! (DESIGN.md §9). A second run on the same dir reuses all of it: the same keys and tokens, and
//! no record registered twice — every submit carries an `Idempotency-Key`, so the nodes answer
//! a repeated seed with the ids they gave the first time.
//!
//! The seed shows what the exchange is for: records of every secrecy level (classified ones
//! stay at their node), commercial secrets (`confidential_fields`), the same result registered
//! by two provinces (merged into one catalogue entry with two sources) and the ministry's funded
//! projects that results link to. One province's own results arrive the way a province's
//! history really does: as a 科技成果登记表 workbook (generated, and kept in the data dir under
//! `import/` for the user to open) read by `rix import` with the shipped `achievement-form`
//! mapping and sent to the node's import endpoint — historical 批准登记号 and 登记日期 kept, the
//! rest approved in the same run. `demo.json` names that node and file (`import`). `--check`
//! verifies all of it over the gateway's public API and exits; without it the demo runs until
//! Ctrl-C.
//!
//! What it does not do: it is not a deployment. Production runs `rix node serve` and
//! `rix gateway serve` as separate services (README.md).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rix_node::config::{BatchConfig, GatewayConfig, Role, TokenConfig};
use rix_runtime::serve::ServeError;
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use rix_schema::sensitivity::Entitlements;
use rix_schema::signing::SigningKey;
use rix_schema::{RecordKind, SecrecyLevel};
use serde_json::{Value, json};

use crate::import::fixtures::{self, ExpectedRecord};
use crate::import::{self, ImportOptions};
use crate::loadgen::{self, Target};

/// What `rix demo` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where everything is kept.
    pub data_dir: PathBuf,
    /// Publish over RabbitMQ at this URL (the feeds stay on as gap fill).
    pub amqp: Option<String>,
    /// Keep the catalogue and the nodes' databases on this PostgreSQL server.
    pub postgres: Option<String>,
    /// Verify, print a summary and exit instead of running until Ctrl-C.
    pub check: bool,
    /// Records to register (a data dir keeps the number it was first seeded with).
    pub records: u64,
    /// The gateway's port; the nodes take the next three. 0: free ports.
    pub port: u16,
    /// Longest wait for the gateway to take in the records, seconds.
    pub timeout_secs: u64,
}

/// A word the generator puts in the titles, abstracts and keywords of its energy results
/// (锂离子电池, 钙钛矿太阳能电池…): the search the demo suggests and checks.
pub const KEYWORD: &str = "电池";

/// The sample generator's seed: the same records on every machine.
const SEED: u64 = 20161;

/// One of the demo's nodes.
struct DemoNode {
    node_id: &'static str,
    issuer: &'static str,
    /// Province code; `None` for the ministry.
    region: Option<&'static str>,
}

const MOST: usize = 0;
const YUNNAN: usize = 1;
const LIAONING: usize = 2;

/// The node whose own results come in through an import of a 登记表 workbook; the rest of the
/// seed goes through the registration API. Not Yunnan: the checks take their classified,
/// internal and commercial-secret examples from its API-registered results, and a sheet has no
/// column for commercial secrets.
const IMPORTED: usize = LIAONING;

/// The shipped mapping the demo's workbook is read with.
const IMPORT_MAPPING: &str = "achievement-form";

/// The workbook the imported node's results are read from, kept in the data dir so that a user
/// can open it (and import it again: nothing is registered twice).
fn import_file(dir: &Path) -> PathBuf {
    dir.join("import").join(format!(
        "{}科技成果登记表.xlsx",
        NODES[IMPORTED].profile().name()
    ))
}

const NODES: [DemoNode; 3] = [
    DemoNode {
        node_id: "most",
        issuer: "348",
        region: None,
    },
    DemoNode {
        node_id: "prov-530000",
        issuer: "530000",
        region: Some("530000"),
    },
    DemoNode {
        node_id: "prov-210000",
        issuer: "210000",
        region: Some("210000"),
    },
];

impl DemoNode {
    fn profile(&self) -> NodeProfile {
        match self.region {
            Some(region) => NodeProfile::province(region),
            None => NodeProfile::ministry(self.node_id, "科学技术部", self.issuer),
        }
    }

    fn generator(&self) -> SampleGenerator {
        SampleGenerator::new(SampleConfig {
            seed: SEED,
            node: self.profile(),
            share_internal: 0.10,
            // More than the generator's default 3 %, so that a few hundred records surely hold
            // some that must stay at their node.
            share_classified: 0.05,
            share_commercial_secret: 0.15,
        })
    }
}

/// Consumer roles at the gateway and what each may read; `public` needs no token.
const CONSUMERS: [(&str, Entitlements); 3] = [
    (
        "internal",
        Entitlements {
            internal: true,
            commercial: false,
            personal: false,
        },
    ),
    (
        "commercial",
        Entitlements {
            internal: true,
            commercial: true,
            personal: false,
        },
    ),
    ("ministry", Entitlements::ALL),
];

const NODE_ROLES: [&str; 3] = ["admin", "submitter", "reviewer"];

// ------------------------------------------------------------------------------------------
// The data dir and what it keeps between runs

/// Creates the data dir and proves it writable, so that a bad `--data-dir` fails first, with
/// its name, not halfway through starting services.
fn prepare_data_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the data dir {}; choose another with --data-dir",
            dir.display()
        )
    })?;
    let dir = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot resolve the data dir {}", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"ok").with_context(|| {
        format!(
            "the data dir {} is not writable; choose another with --data-dir",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(dir)
}

/// A fresh random token: 20 bytes from the kernel's CSPRNG, hex.
pub(crate) fn random_token(prefix: &str) -> Result<String> {
    use std::io::Read;
    let mut raw = [0u8; 20];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .context("reading /dev/urandom for a token")?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}{hex}"))
}

/// What a data dir keeps between runs (`state.json`, owner-only): the tokens — the nodes'
/// idempotency keys belong to the submitter token, so a new token would register everything
/// again — and the number of records it was seeded with.
struct State {
    records: u64,
    created_at: String,
    /// node id → role → token.
    node_tokens: HashMap<String, HashMap<String, String>>,
    /// consumer role → token.
    consumer_tokens: HashMap<String, String>,
    /// node id → the feed token the node enrols the demo gateway with (`[[gateways]]`); the
    /// gateway stores it with the node's feed URL.
    feed_tokens: HashMap<String, String>,
    /// Made by this run (nothing to reuse).
    fresh: bool,
}

impl State {
    fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    fn load_or_create(dir: &Path, records: u64) -> Result<State> {
        let path = State::path(dir);
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let (state, complete) = State::parse(&text).with_context(|| {
                format!(
                    "{} is damaged; remove the data dir {} to start afresh",
                    path.display(),
                    dir.display()
                )
            })?;
            if !complete {
                // A data dir from before the feeds were closed: its nodes get feed tokens now.
                state.save(dir)?;
            }
            return Ok(state);
        }
        let mut node_tokens = HashMap::new();
        for node in &NODES {
            let mut roles = HashMap::new();
            for role in NODE_ROLES {
                roles.insert(role.to_owned(), random_token(&format!("rixn_{role}_"))?);
            }
            node_tokens.insert(node.node_id.to_owned(), roles);
        }
        let mut consumer_tokens = HashMap::new();
        for (role, _) in CONSUMERS {
            consumer_tokens.insert(role.to_owned(), random_token("rixc_")?);
        }
        let state = State {
            records,
            created_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .context("formatting the time")?,
            node_tokens,
            consumer_tokens,
            feed_tokens: new_feed_tokens()?,
            fresh: true,
        };
        state.save(dir)?;
        Ok(state)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let path = State::path(dir);
        let text = serde_json::to_string_pretty(&json!({
            "version": 1,
            "records": self.records,
            "created_at": self.created_at,
            "node_tokens": self.node_tokens,
            "consumer_tokens": self.consumer_tokens,
            "feed_tokens": self.feed_tokens,
        }))?;
        crate::write_private(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The state, and whether it had everything (an older one lacks the feed tokens, which
    /// are made here).
    fn parse(text: &str) -> Result<(State, bool)> {
        let v: Value = serde_json::from_str(text)?;
        let records = v["records"].as_u64().context("no `records`")?;
        let node_tokens: HashMap<String, HashMap<String, String>> =
            serde_json::from_value(v["node_tokens"].clone()).context("bad `node_tokens`")?;
        let consumer_tokens: HashMap<String, String> =
            serde_json::from_value(v["consumer_tokens"].clone())
                .context("bad `consumer_tokens`")?;
        for node in &NODES {
            for role in NODE_ROLES {
                node_tokens
                    .get(node.node_id)
                    .and_then(|r| r.get(role))
                    .with_context(|| format!("no {role} token for {}", node.node_id))?;
            }
        }
        for (role, _) in CONSUMERS {
            consumer_tokens
                .get(role)
                .with_context(|| format!("no {role} consumer token"))?;
        }
        let feed_tokens: Option<HashMap<String, String>> = match v.get("feed_tokens") {
            None => None,
            Some(t) => Some(serde_json::from_value(t.clone()).context("bad `feed_tokens`")?),
        };
        let complete = feed_tokens
            .as_ref()
            .is_some_and(|t| NODES.iter().all(|n| t.contains_key(n.node_id)));
        let feed_tokens = match feed_tokens {
            Some(t) if complete => t,
            _ => new_feed_tokens()?,
        };
        Ok((
            State {
                records,
                created_at: v["created_at"].as_str().unwrap_or("").to_owned(),
                node_tokens,
                consumer_tokens,
                feed_tokens,
                fresh: false,
            },
            complete,
        ))
    }

    fn node_token(&self, node: usize, role: &str) -> &str {
        &self.node_tokens[NODES[node].node_id][role]
    }

    fn consumer_token(&self, role: &str) -> &str {
        &self.consumer_tokens[role]
    }

    fn feed_token(&self, node: usize) -> &str {
        &self.feed_tokens[NODES[node].node_id]
    }
}

/// One feed token per node, for the demo gateway.
fn new_feed_tokens() -> Result<HashMap<String, String>> {
    NODES
        .iter()
        .map(|n| Ok((n.node_id.to_owned(), random_token("rixf_")?)))
        .collect()
}

/// The node's signing key, made on the first run (`DIR/keys/{node_id}.key.pem`, owner-only,
/// with the public key beside it as `rix keygen` writes them).
fn node_key(dir: &Path, node_id: &str) -> Result<(PathBuf, SigningKey)> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).with_context(|| format!("creating {}", keys.display()))?;
    let path = keys.join(format!("{node_id}.key.pem"));
    if !path.exists() {
        let key = SigningKey::generate().context("generating an Ed25519 key with OpenSSL")?;
        crate::write_private(&path, key.to_pkcs8_pem()?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        std::fs::write(
            keys.join(format!("{node_id}.key.pem.pub")),
            key.verifying_key().to_spki_pem()?,
        )
        .context("writing the public key")?;
    }
    let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let key = SigningKey::from_pkcs8_pem(&pem)
        .with_context(|| format!("{} is not a usable key", path.display()))?;
    Ok((path, key))
}

/// `base` with its database name replaced by `name` (query parameters kept).
fn with_database(base: &str, name: &str) -> Result<String> {
    let (main, query) = match base.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (base, None),
    };
    let after_scheme = main
        .split_once("://")
        .map(|(_, rest)| rest)
        .with_context(|| format!("{} is not a postgres:// URL", redact(base)))?;
    let server = match after_scheme.split_once('/') {
        Some((server, _)) => server,
        None => after_scheme,
    };
    let scheme = &main[..main.len() - after_scheme.len()];
    let mut url = format!("{scheme}{server}/{name}");
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Ok(url)
}

fn redact(url: &str) -> String {
    rix_node::db::redact_url(url)
}

/// The database of one demo component on the PostgreSQL server, created if missing: one
/// database each, because every component runs its own migrations into its own tables.
fn postgres_database(base: &str, name: &str) -> Result<String> {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::PgConnection::establish(base).with_context(|| {
        format!(
            "cannot reach PostgreSQL at {}; start it (ops/start-services.sh) or leave out --postgres",
            redact(base)
        )
    })?;
    match diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn) {
        Ok(_) => {}
        Err(e) if e.to_string().contains("already exists") => {}
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "creating database {name} on {} (the user needs CREATEDB)",
                    redact(base)
                )
            });
        }
    }
    with_database(base, name)
}

// ------------------------------------------------------------------------------------------
// The seed plan

/// What the demo registers at one node in one request series.
struct Part {
    node: usize,
    kind: RecordKind,
    /// `own` (the node's generated records) or `shared` (co-registered results and the
    /// projects that fund them).
    label: &'static str,
    /// Generator indices (for the checks: which shared result is which).
    indices: Vec<u64>,
    docs: Vec<Value>,
    /// Registered by importing a 登记表 workbook of the same generated results ([`IMPORTED`]),
    /// not through the registration API.
    imported: bool,
}

/// The whole seed: every part, and the institution each node's submitter token acts for.
struct Plan {
    parts: Vec<Part>,
    institutions: Vec<Value>,
}

/// A generated record (as `serde_json::to_value` gives it) as its submitter sends it.
fn to_doc(record: serde_json::Result<Value>) -> Value {
    loadgen::submission(record.expect("generated records serialise"))
}

fn level_of(doc: &Value) -> SecrecyLevel {
    SecrecyLevel::of_record(doc).unwrap_or(SecrecyLevel::Public)
}

fn confidential_fields(doc: &Value) -> Vec<String> {
    doc["confidential_fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect()
}

fn is_classified(doc: &Value) -> bool {
    !level_of(doc).may_leave_node()
}
fn is_internal(doc: &Value) -> bool {
    level_of(doc) == SecrecyLevel::Internal
}
fn is_commercial(doc: &Value) -> bool {
    level_of(doc) == SecrecyLevel::Public && !confidential_fields(doc).is_empty()
}

/// `records` registrations over the three nodes: a tenth are results co-registered by Yunnan
/// (all of them) and Liaoning (half of them), with the funding ministry's projects behind them;
/// the rest are each node's own results and projects (result `i` is funded by project `i/3`
/// of the same node), about three results to a project.
fn plan(records: u64) -> Plan {
    let generators: Vec<SampleGenerator> = NODES.iter().map(DemoNode::generator).collect();
    let shared = (records / 10).max(3);
    let shared_at_liaoning = shared / 2;
    let shared_projects = shared.div_ceil(loadgen_per_project());
    let own = records.saturating_sub(shared + shared_at_liaoning + shared_projects);

    let mut parts = Vec::new();
    let shared_gen = &generators[MOST];
    parts.push(Part {
        node: MOST,
        kind: RecordKind::FundedProject,
        label: "shared",
        indices: (0..shared_projects).collect(),
        docs: (0..shared_projects)
            .map(|i| to_doc(serde_json::to_value(shared_gen.shared_project(i))))
            .collect(),
        imported: false,
    });
    for (node, count) in [(YUNNAN, shared), (LIAONING, shared_at_liaoning)] {
        parts.push(Part {
            node,
            kind: RecordKind::Achievement,
            label: "shared",
            indices: (0..count).collect(),
            docs: (0..count)
                .map(|i| to_doc(serde_json::to_value(shared_gen.shared_achievement(i))))
                .collect(),
            imported: false,
        });
    }
    for (node, generator) in generators.iter().enumerate() {
        let mine = own / 3 + u64::from((node as u64) < own % 3);
        let achievements = (mine * 3).div_ceil(4);
        let projects = mine - achievements;
        parts.push(Part {
            node,
            kind: RecordKind::FundedProject,
            label: "own",
            indices: (0..projects).collect(),
            docs: (0..projects)
                .map(|i| to_doc(serde_json::to_value(generator.project(i))))
                .collect(),
            imported: false,
        });
        parts.push(Part {
            node,
            kind: RecordKind::Achievement,
            label: "own",
            indices: (0..achievements).collect(),
            docs: (0..achievements)
                .map(|i| to_doc(serde_json::to_value(generator.achievement(i))))
                .collect(),
            imported: node == IMPORTED,
        });
    }
    ensure_variety(&mut parts, &generators[YUNNAN]);

    let institutions: Vec<Value> = (0..NODES.len())
        .map(|node| submitter_institution(&parts, node))
        .collect();
    for part in &mut parts {
        for doc in &mut part.docs {
            loadgen::adopt(part.kind, doc, &institutions[part.node]);
        }
    }
    Plan {
        parts,
        institutions,
    }
}

fn loadgen_per_project() -> u64 {
    rix_schema::sample::ACHIEVEMENTS_PER_PROJECT
}

/// Makes sure the seed holds at least one classified, one internal and one commercial-secret
/// result, whatever the record count: the checks need one of each. A missing kind replaces
/// Yunnan's last own result by the first later result of that kind.
fn ensure_variety(parts: &mut [Part], yunnan: &SampleGenerator) {
    let needs: [fn(&Value) -> bool; 3] = [is_classified, is_internal, is_commercial];
    for need in needs {
        if parts.iter().any(|p| !p.imported && p.docs.iter().any(need)) {
            continue;
        }
        let Some(part) = parts
            .iter_mut()
            .find(|p| p.node == YUNNAN && p.label == "own" && p.kind == RecordKind::Achievement)
        else {
            return;
        };
        let from = part.indices.last().map_or(0, |i| i + 1);
        let found = (from..from + 10_000)
            .map(|i| (i, to_doc(serde_json::to_value(yunnan.achievement(i)))))
            .find(|(_, doc)| need(doc));
        if let (Some((i, doc)), Some(last)) = (found, part.docs.len().checked_sub(1)) {
            part.indices[last] = i;
            part.docs[last] = doc;
        }
    }
}

/// The institution named most often in a node's own records: its submitter token acts for it,
/// and the records that do not name it get it as a co-completing institution.
fn submitter_institution(parts: &[Part], node: usize) -> Value {
    let mut seen: HashMap<String, (usize, Value)> = HashMap::new();
    for part in parts.iter().filter(|p| p.node == node && p.label == "own") {
        for doc in &part.docs {
            let main = match part.kind {
                RecordKind::Achievement => &doc["institutions"][0],
                RecordKind::FundedProject => &doc["lead"],
            };
            if let Some(uscc) = main["uscc"].as_str() {
                seen.entry(uscc.to_owned())
                    .or_insert_with(|| (0, main.clone()))
                    .0 += 1;
            }
        }
    }
    let best = seen
        .into_iter()
        .max_by(|(a_uscc, (a, _)), (b_uscc, (b, _))| a.cmp(b).then(b_uscc.cmp(a_uscc)));
    match best {
        Some((_, (_, institution))) => institution,
        // No own records at all (a tiny seed): take the first shared result's institution.
        None => parts
            .iter()
            .flat_map(|p| p.docs.iter())
            .map(|d| d["institutions"][0].clone())
            .find(|i| i.is_object())
            .unwrap_or(Value::Null),
    }
}

/// One registered record, as the checks need it.
struct Seeded {
    node: usize,
    kind: RecordKind,
    id: String,
    level: SecrecyLevel,
    confidential: Vec<String>,
    /// Index of a shared result or project, for co-registered records.
    shared: Option<u64>,
}

// ------------------------------------------------------------------------------------------
// Services

/// What is running, so that every exit path can stop it.
#[derive(Default)]
struct Running {
    nodes: Vec<rix_node::RunningNode>,
    gateway: Option<rix_gateway::serve::RunningGateway>,
}

impl Running {
    /// The gateway first (no pull finds a node gone), then the nodes, which publish what they
    /// have sealed before they stop.
    async fn stop(self) {
        if let Some(gateway) = self.gateway {
            gateway.stop().await;
        }
        // Side by side: each may wait (bounded) for broker confirms that will not come.
        let stops: Vec<_> = self
            .nodes
            .into_iter()
            .map(|node| tokio::spawn(node.stop()))
            .collect();
        for stop in stops {
            let _ = stop.await;
        }
    }
}

fn listen(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts a node on its preferred port, or on a free one if that is taken.
async fn start_node(mut config: rix_node::Config) -> Result<rix_node::RunningNode> {
    let node_id = config.node_id.clone();
    let first = rix_node::start(config.clone()).await;
    let started = match first {
        Err(rix_node::StartError::Listen(ServeError::Bind { addr, .. })) if addr.port() != 0 => {
            println!("  port {} is in use; taking a free one", addr.port());
            config.listen = listen(0);
            rix_node::start(config).await
        }
        other => other,
    };
    started.with_context(|| format!("starting node {node_id}"))
}

async fn start_gateway(
    mut config: rix_gateway::config::Config,
) -> Result<rix_gateway::serve::RunningGateway> {
    let started = match rix_gateway::serve::start(config.clone()).await {
        Err(rix_gateway::serve::StartError::Listen(ServeError::Bind { addr, .. }))
            if addr.port() != 0 =>
        {
            println!("  port {} is in use; taking a free one", addr.port());
            config.listen = listen(0);
            rix_gateway::serve::start(config).await
        }
        other => other,
    };
    started.context("starting the gateway")
}

/// The services write their logs here, so the terminal shows the demo's own progress.
fn init_logging(log: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening the log {}", log.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RIX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}

// ------------------------------------------------------------------------------------------
// HTTP helpers

async fn get_json(http: &reqwest::Client, url: &str, token: Option<&str>) -> Result<(u16, Value)> {
    let mut request = http.get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("GET {url}"))?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// `GET {gateway}/v1/search` with `params`.
async fn search(
    http: &reqwest::Client,
    gateway: &str,
    params: &[(&str, &str)],
    token: Option<&str>,
) -> Result<Value> {
    let mut url = reqwest::Url::parse(&format!("{gateway}/v1/search"))?;
    url.query_pairs_mut().extend_pairs(params);
    let (status, body) = get_json(http, url.as_str(), token).await?;
    if status != 200 {
        bail!("search {params:?} answered {status}: {body}");
    }
    Ok(body)
}

/// Every line of the gateway's change feed as `token`'s holder sees it.
async fn changes(http: &reqwest::Client, gateway: &str, token: &str) -> Result<Vec<Value>> {
    let mut lines = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let url = format!("{gateway}/v1/changes?after={after}&limit=10000");
        let response = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !response.status().is_success() {
            bail!("GET {url} answered {}", response.status());
        }
        // Positions are sealed: the feed is followed to the end when it hands back the one sent.
        let next = response
            .headers()
            .get("X-Rix-Next-After")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| after.clone());
        let text = response.text().await?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            lines.push(serde_json::from_str(line).context("a change feed line is not JSON")?);
        }
        if next == after {
            return Ok(lines);
        }
        after = next;
    }
}

/// The catalogue entries a change feed leaves visible: each entry's last line decides.
fn visible_entries(lines: &[Value]) -> HashSet<String> {
    let mut last: HashMap<&str, bool> = HashMap::new();
    for line in lines {
        if let Some(id) = line["unified_id"].as_str() {
            last.insert(id, line["op"] == "upsert");
        }
    }
    last.into_iter()
        .filter(|(_, upsert)| *upsert)
        .map(|(id, _)| id.to_owned())
        .collect()
}

// ------------------------------------------------------------------------------------------
// The demo

/// Everything the running demo knows.
struct Demo {
    dir: PathBuf,
    options: Options,
    state: State,
    plan: Plan,
    http: reqwest::Client,
    node_urls: Vec<String>,
    gateway_url: String,
}

impl Demo {
    fn target(&self, node: usize) -> Target {
        Target {
            url: self.node_urls[node].clone(),
            submitter_token: self.state.node_token(node, "submitter").to_owned(),
            reviewer_token: self.state.node_token(node, "reviewer").to_owned(),
        }
    }

    fn ministry(&self) -> &str {
        self.state.consumer_token("ministry")
    }
}

/// Runs `rix demo`.
pub fn run(options: Options) -> Result<()> {
    let dir = prepare_data_dir(&options.data_dir)?;
    init_logging(&dir.join("demo.log"))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(demo(options, dir))
}

async fn demo(options: Options, dir: PathBuf) -> Result<()> {
    let began = Instant::now();
    let state = State::load_or_create(&dir, options.records)?;
    if state.fresh {
        println!("rix demo: new data dir {}", dir.display());
    } else {
        println!(
            "rix demo: reusing the data dir {} (created {}, seeded with {} records)",
            dir.display(),
            state.created_at,
            state.records
        );
        if options.records != state.records {
            println!(
                "  --records {} is ignored: this data dir keeps its {} (use a new --data-dir for another size)",
                options.records, state.records
            );
        }
    }
    println!("  services log to {}", dir.join("demo.log").display());
    let plan = plan(state.records);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let mut running = Running::default();
    let check = options.check;
    let mut demo = Demo {
        dir,
        options,
        state,
        plan,
        http,
        node_urls: Vec::new(),
        gateway_url: String::new(),
    };
    let outcome = tokio::select! {
        r = start_and_seed(&mut demo, &mut running) => r.map(Some),
        _ = rix_runtime::serve::stop_requested() => Ok(None),
    };
    let outcome = match outcome {
        Ok(Some((seeded, imported))) if check => {
            let started = Instant::now();
            let checked = verify(&demo, &seeded, imported.as_ref()).await;
            if checked.is_ok() {
                println!(
                    "check passed: checks {:.1} s, start to verified {:.1} s",
                    started.elapsed().as_secs_f64(),
                    began.elapsed().as_secs_f64()
                );
            }
            checked
        }
        Ok(Some((seeded, imported))) => {
            print_guide(&demo, &seeded, imported.as_ref());
            rix_runtime::serve::stop_requested().await;
            Ok(())
        }
        Ok(None) => {
            println!("interrupted");
            Ok(())
        }
        Err(e) => Err(e),
    };
    println!("stopping the gateway and the nodes…");
    running.stop().await;
    println!("stopped");
    outcome.with_context(|| {
        format!(
            "rix demo failed; the services' log is {}",
            demo.dir.join("demo.log").display()
        )
    })
}

/// Starts the nodes and the gateway, writes demo.json, registers the seed and waits until the
/// gateway has taken it in and made it searchable.
async fn start_and_seed(
    demo: &mut Demo,
    running: &mut Running,
) -> Result<(Vec<Seeded>, Option<ImportSeed>)> {
    let started = Instant::now();
    let databases = match &demo.options.postgres {
        None => None,
        Some(base) => {
            let base = base.clone();
            let names: Vec<String> = std::iter::once("rix_demo_gateway".to_owned())
                .chain(
                    NODES
                        .iter()
                        .map(|n| format!("rix_demo_{}", n.node_id.replace('-', "_"))),
                )
                .collect();
            println!(
                "PostgreSQL: databases {} on {}",
                names.join(", "),
                redact(&base)
            );
            let urls = tokio::task::spawn_blocking(move || {
                names
                    .iter()
                    .map(|n| postgres_database(&base, n))
                    .collect::<Result<Vec<String>>>()
            })
            .await??;
            Some(urls)
        }
    };
    let (exchange, queue) = ("rix.demo.records", "rix.demo.gateway");
    if let Some(amqp) = &demo.options.amqp {
        println!(
            "RabbitMQ: {} (exchange {exchange}, gateway queue {queue})",
            redact(amqp)
        );
    }

    // 1. The nodes.
    let mut keys = Vec::new();
    for (n, node) in NODES.iter().enumerate() {
        let (key_path, key) = node_key(&demo.dir, node.node_id)?;
        let institution = &demo.plan.institutions[n];
        let tokens = NODE_ROLES
            .iter()
            .map(|role| TokenConfig {
                token: demo.state.node_token(n, role).to_owned(),
                role: match *role {
                    "admin" => Role::Admin,
                    "submitter" => Role::Submitter,
                    _ => Role::Reviewer,
                },
                institution: (*role == "submitter")
                    .then(|| institution["uscc"].as_str().unwrap_or_default().to_owned()),
                name: Some(format!("demo {role}")),
            })
            .collect();
        let port = match demo.options.port {
            0 => 0,
            p => p.saturating_add(1 + n as u16),
        };
        let config = rix_node::Config {
            node_id: node.node_id.to_owned(),
            name: Some(node.profile().name().to_owned()),
            registration_issuer: node.issuer.to_owned(),
            listen: listen(port),
            data_dir: demo.dir.join("nodes").join(node.node_id),
            database_url: databases.as_ref().map(|d| d[1 + n].clone()),
            db_connections: 4,
            amqp_url: demo.options.amqp.clone(),
            amqp_exchange: exchange.to_owned(),
            signing_key: key_path,
            batch: BatchConfig {
                max_entries: 500,
                linger_ms: 20,
            },
            max_body_bytes: 16 * 1024 * 1024,
            tls: None,
            tokens,
            // The demo gateway reads the node's feed with the token stored beside its URL.
            gateways: vec![GatewayConfig {
                name: "demo gateway".to_owned(),
                token: demo.state.feed_token(n).to_owned(),
                require_client_cert: false,
                client_cert_subject: None,
                client_cert_sha256: None,
            }],
            idempotency_retention_days: rix_node::config::default_idempotency_retention_days(),
        };
        println!(
            "starting node {} ({})…",
            node.node_id,
            node.profile().name()
        );
        let running_node = start_node(config).await?;
        let url = running_node.url();
        println!("  {} listening on {url}", node.node_id);
        running.nodes.push(running_node);
        demo.node_urls.push(url);
        keys.push(key);
    }
    if demo.state.fresh {
        // A fresh data dir with records already at a node: PostgreSQL databases of another
        // demo, whose idempotency keys belong to other tokens; seeding would register twice.
        for (n, node) in NODES.iter().enumerate() {
            let held = loadgen::count_records(&demo.http, &demo.target(n), RecordKind::Achievement)
                .await?
                .values()
                .sum::<usize>();
            if held > 0 {
                bail!(
                    "node {} already holds {held} records, from a demo with another data dir \
                     (its PostgreSQL databases rix_demo_*); run with that --data-dir, or drop the \
                     rix_demo_* databases to start afresh",
                    node.node_id
                );
            }
        }
    }

    // 2. The gateway: trust the nodes' keys and feeds, enrol the consumer tokens, start.
    let gateway_config = rix_gateway::config::Config {
        listen: listen(demo.options.port),
        data_dir: demo.dir.join("gateway"),
        database_url: databases.as_ref().map(|d| d[0].clone()),
        amqp_url: demo.options.amqp.clone(),
        amqp_exchange: exchange.to_owned(),
        amqp_queue: queue.to_owned(),
        pull: rix_gateway::config::PullConfig {
            interval_ms: 300,
            ..Default::default()
        },
        ..rix_gateway::config::Config::default()
    };
    {
        let config = gateway_config.clone();
        type Trusted = (
            String,
            String,
            String,
            rix_schema::signing::VerifyingKey,
            String,
        );
        let trusted: Vec<Trusted> = NODES
            .iter()
            .enumerate()
            .map(|(n, node)| {
                (
                    node.node_id.to_owned(),
                    node.profile().name().to_owned(),
                    demo.node_urls[n].clone(),
                    keys[n].verifying_key().clone(),
                    demo.state.feed_token(n).to_owned(),
                )
            })
            .collect();
        let consumers: Vec<(String, Entitlements, String)> = CONSUMERS
            .iter()
            .map(|(role, e)| {
                (
                    role.to_string(),
                    *e,
                    demo.state.consumer_token(role).to_owned(),
                )
            })
            .collect();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let db = config
                .open_database()
                .context("opening the gateway's catalogue")?;
            for (node_id, name, url, key, feed_token) in &trusted {
                // Re-run on every start: it updates the feed URL when a node's port changed.
                rix_gateway::trust::add(&db, node_id, Some(name), Some(url), key, None, None)
                    .with_context(|| format!("trusting {node_id}"))?;
                rix_gateway::trust::set_feed_token(&db, node_id, Some(feed_token))
                    .with_context(|| format!("storing the feed token of {node_id}"))?;
            }
            for (role, entitlements, token) in &consumers {
                rix_gateway::access::add_token_value(
                    &db,
                    &format!("demo {role}"),
                    *entitlements,
                    token,
                )
                .with_context(|| format!("enrolling the {role} consumer token"))?;
            }
            Ok(())
        })
        .await??;
    }
    println!("starting the gateway…");
    let gateway = start_gateway(gateway_config).await?;
    demo.gateway_url = gateway.url();
    println!("  gateway listening on {}", demo.gateway_url);
    running.gateway = Some(gateway);
    write_demo_json(demo, databases.is_some())?;
    println!(
        "  wrote {} (every URL and one token per role); started in {:.1} s",
        demo.dir.join("demo.json").display(),
        started.elapsed().as_secs_f64()
    );

    // 3. The seed, through the nodes' APIs.
    let (seeded, imported, new_at) = seed(demo).await?;

    // 4. The gateway takes it in.
    wait_for_ingest(demo, &new_at).await?;
    wait_for_search(demo).await?;
    Ok((seeded, imported))
}

fn write_demo_json(demo: &Demo, postgres: bool) -> Result<()> {
    let gateway = &demo.gateway_url;
    let mut tokens = serde_json::Map::new();
    tokens.insert("public".into(), Value::Null);
    let mut entitlements = serde_json::Map::new();
    entitlements.insert("public".into(), json!("public"));
    for (role, e) in CONSUMERS {
        tokens.insert(role.into(), json!(demo.state.consumer_token(role)));
        entitlements.insert(role.into(), json!(e.to_string()));
    }
    let nodes: Vec<Value> = NODES
        .iter()
        .enumerate()
        .map(|(n, node)| {
            let tokens: serde_json::Map<String, Value> = NODE_ROLES
                .iter()
                .map(|r| (r.to_string(), json!(demo.state.node_token(n, r))))
                .collect();
            let inst = &demo.plan.institutions[n];
            json!({
                "node_id": node.node_id,
                "name": node.profile().name(),
                "url": demo.node_urls[n],
                "registration_issuer": node.issuer,
                "tokens": tokens,
                // The node's signed feed serves enrolled gateways only: this is the demo
                // gateway's credential for it (`Authorization: Bearer …` on GET /v1/feed).
                "feed_token": demo.state.feed_token(n),
                "submitter_institution": {"name": inst["name"], "uscc": inst["uscc"]},
            })
        })
        .collect();
    let doc = json!({
        "version": 1,
        "data_dir": demo.dir,
        "log": demo.dir.join("demo.log"),
        "database": if postgres { "postgresql" } else { "sqlite" },
        "transport": if demo.options.amqp.is_some() { "amqp+feed" } else { "feed" },
        "gateway": {
            "url": gateway,
            "search_url": format!("{gateway}/v1/search"),
            "changes_url": format!("{gateway}/v1/changes"),
            "openapi_url": format!("{gateway}/openapi.json"),
            "tokens": tokens,
            "entitlements": entitlements,
        },
        "nodes": nodes,
        // Which node's own results were seeded by importing a 登记表 workbook, and from which
        // file (kept in the data dir; a refused row would be in `report`).
        "import": {
            "node_id": NODES[IMPORTED].node_id,
            "file": import_file(&demo.dir),
            "mapping": IMPORT_MAPPING,
            "records": demo.plan.parts.iter().filter(|p| p.imported).map(|p| p.docs.len()).sum::<usize>(),
            "report": import_file(&demo.dir).with_extension("xlsx.errors.csv"),
        },
    });
    let path = demo.dir.join("demo.json");
    let tmp = demo.dir.join("demo.json.tmp");
    // Written aside and renamed, so a script never reads half a file; owner-only (tokens).
    let _ = std::fs::remove_file(&tmp);
    crate::write_private(&tmp, serde_json::to_string_pretty(&doc)?.as_bytes())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// What importing the 登记表 workbook did.
struct ImportSeed {
    file: PathBuf,
    /// The workbook's records, as the node must hold them.
    records: Vec<ExpectedRecord>,
    /// Registered by this run.
    accepted: usize,
    /// Of those, historical results registered under their own 批准登记号.
    historical: usize,
}

/// Writes the [`IMPORTED`] node's own results (the plan's part for them) as a 登记表 workbook
/// and imports it as `rix import --mapping achievement-form --approve FILE` does, with the
/// node's administrator token (a historical 批准登记号 needs one). First, before any review at
/// that node has numbered a record: the historical numbers raise the node's serial counters,
/// so review never issues one of them again.
async fn import_seed(demo: &Demo) -> Result<Option<ImportSeed>> {
    let Some(part) = demo
        .plan
        .parts
        .iter()
        .find(|p| p.imported && !p.docs.is_empty())
    else {
        return Ok(None);
    };
    let file = import_file(&demo.dir);
    let generator = NODES[IMPORTED].generator();
    let (n, path) = (part.docs.len() as u64, file.clone());
    let written = tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fixtures::achievement_form_xlsx(&path, &generator, n, false)
            .context("writing the demo's 登记表 workbook")
    })
    .await??;
    let options = ImportOptions {
        mapping: IMPORT_MAPPING.to_owned(),
        inputs: vec![file.clone()],
        node: Some(demo.node_urls[IMPORTED].clone()),
        token: Some(demo.state.node_token(IMPORTED, "admin").to_owned()),
        approve: true,
        ..ImportOptions::default()
    };
    let (summary, out) = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let summary = import::run(&options, &mut out);
        (summary, String::from_utf8_lossy(&out).into_owned())
    })
    .await?;
    let summary = summary.with_context(|| format!("importing {}", file.display()))?;
    if summary.exit_code() != 0 {
        bail!(
            "importing {} into {} did not accept every row:\n{out}",
            file.display(),
            NODES[IMPORTED].node_id
        );
    }
    let historical = written
        .records
        .iter()
        .filter(|r| r.registration_no.is_some())
        .count();
    let classified = written.records.iter().filter(|r| r.classified).count();
    println!(
        "  imported {} results into {} from {} (rix import, mapping {IMPORT_MAPPING}): {} new, \
         {} already registered; {historical} historical ones kept their 批准登记号 and 登记日期, \
         {classified} classified stay at the node",
        written.records.len(),
        NODES[IMPORTED].node_id,
        file.display(),
        summary.total.accepted,
        summary.total.duplicates,
    );
    Ok(Some(ImportSeed {
        file,
        records: written.records,
        accepted: summary.total.accepted as usize,
        historical,
    }))
}

/// Registers the plan; returns every record registered through the API, what the import did,
/// and how many each node approved in this run.
async fn seed(demo: &Demo) -> Result<(Vec<Seeded>, Option<ImportSeed>, [usize; 3])> {
    let started = Instant::now();
    let total: usize = demo.plan.parts.iter().map(|p| p.docs.len()).sum();
    let by_import: usize = demo
        .plan
        .parts
        .iter()
        .filter(|p| p.imported)
        .map(|p| p.docs.len())
        .sum();
    println!(
        "registering {total} records: {by_import} by importing a 登记表 workbook into {}, the rest \
         through the nodes' APIs (submitter and reviewer tokens)…",
        NODES[IMPORTED].node_id
    );
    let mut seeded = Vec::new();
    let mut approved_now = 0;
    let mut new_at = [0; 3];
    let imported = import_seed(demo).await?;
    if let Some(i) = &imported {
        approved_now += i.accepted;
        new_at[IMPORTED] += i.accepted;
    }
    for part in &demo.plan.parts {
        if part.docs.is_empty() || part.imported {
            continue;
        }
        let node = &NODES[part.node];
        let key_prefix = format!("rix-demo-{}-{}-{}", node.node_id, part.label, part.kind);
        let done = loadgen::register(
            &demo.http,
            &demo.target(part.node),
            part.kind,
            &part.docs,
            100,
            &key_prefix,
        )
        .await
        .with_context(|| format!("seeding {} {} {}", node.node_id, part.label, part.kind))?;
        approved_now += done.approved_now;
        new_at[part.node] += done.approved_now;
        for ((id, doc), index) in done.ids.iter().zip(&part.docs).zip(&part.indices) {
            seeded.push(Seeded {
                node: part.node,
                kind: part.kind,
                id: id.clone(),
                level: level_of(doc),
                confidential: confidential_fields(doc),
                shared: (part.label == "shared").then_some(*index),
            });
        }
    }
    let classified = seeded.iter().filter(|s| !s.level.may_leave_node()).count();
    let internal = seeded
        .iter()
        .filter(|s| s.level == SecrecyLevel::Internal)
        .count();
    let commercial = seeded.iter().filter(|s| !s.confidential.is_empty()).count();
    let shared = seeded.iter().filter(|s| s.shared.is_some()).count();
    println!(
        "  registered {total} records ({approved_now} new, {} already registered) in {:.1} s: \
         {internal} internal, {classified} classified (kept at their nodes), {commercial} with \
         commercial secrets, {shared} co-registered results and their funding projects",
        total - approved_now,
        started.elapsed().as_secs_f64()
    );
    let mut held = Vec::new();
    for (n, node) in NODES.iter().enumerate() {
        let target = demo.target(n);
        let mut count = 0;
        for kind in [RecordKind::Achievement, RecordKind::FundedProject] {
            count += loadgen::count_records(&demo.http, &target, kind)
                .await?
                .values()
                .sum::<usize>();
        }
        held.push(format!("{} {count}", node.node_id));
    }
    println!("  records at the nodes: {}", held.join(", "));
    Ok((seeded, imported, new_at))
}

/// Per node: what its log holds (`/healthz` log.last_seq) and what the gateway has of it.
/// Brokers: `(node, "connected" | "disconnected")` for nodes with a broker configured.
async fn ingest_progress(demo: &Demo) -> Result<(i64, i64, Vec<(usize, String)>)> {
    let (status, gw) = get_json(&demo.http, &format!("{}/healthz", demo.gateway_url), None).await?;
    if status != 200 {
        bail!("the gateway's /healthz answered {status}: {gw}");
    }
    let mut published = 0;
    let mut ingested = 0;
    let mut brokers = Vec::new();
    for (n, node) in NODES.iter().enumerate() {
        let (_, health) =
            get_json(&demo.http, &format!("{}/healthz", demo.node_urls[n]), None).await?;
        let last = health["log"]["last_seq"].as_i64().unwrap_or(0);
        let taken = gw["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["node_id"] == node.node_id)
            .and_then(|x| x["last_seq"].as_i64())
            .unwrap_or(0);
        published += last;
        ingested += taken.min(last);
        if let Some(b) = health["broker"].as_str().filter(|b| *b != "none") {
            brokers.push((n, b.to_owned()));
        }
    }
    Ok((published, ingested, brokers))
}

async fn wait_for_ingest(demo: &Demo, new_at: &[usize; 3]) -> Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(demo.options.timeout_secs);
    let mut shown = (-1, -1);
    let mut last_print = Instant::now();
    loop {
        let (published, ingested, brokers) = ingest_progress(demo).await?;
        // With --amqp, done also means that every node that published in this run reached the
        // broker: the feeds alone would hide a broker that is not there. (A node connects when
        // it has something to publish, so an idle node of a reused data dir shows
        // "disconnected".)
        let brokers_ok = brokers
            .iter()
            .all(|(n, state)| new_at[*n] == 0 || state == "connected");
        let done = published == ingested && brokers_ok;
        let brokers: Vec<String> = brokers
            .iter()
            .map(|(n, state)| format!("{}: broker {state}", NODES[*n].node_id))
            .collect();
        if ((published, ingested) != shown && last_print.elapsed() >= Duration::from_secs(1))
            || done
        {
            println!(
                "  gateway: {ingested} of {published} published records ingested{}",
                if brokers.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", brokers.join(", "))
                }
            );
            shown = (published, ingested);
            last_print = Instant::now();
        }
        if done {
            println!("  ingested in {:.1} s", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if Instant::now() > deadline {
            if published == ingested {
                bail!(
                    "--amqp was given but the nodes that published did not reach the broker within \
                     {} s ({}); is RabbitMQ running at that URL?",
                    demo.options.timeout_secs,
                    brokers.join(", ")
                );
            }
            bail!(
                "the gateway took in only {ingested} of {published} published records within {} s; \
                 look for refused batches in {} (or raise --timeout)",
                demo.options.timeout_secs,
                demo.dir.join("demo.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the search index holds every entry the catalogue shows the ministry (the index
/// follows the catalogue's change stream a moment behind).
async fn wait_for_search(demo: &Demo) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(demo.options.timeout_secs);
    loop {
        let lines = changes(&demo.http, &demo.gateway_url, demo.ministry()).await?;
        let visible = visible_entries(&lines).len() as u64;
        let page = search(
            &demo.http,
            &demo.gateway_url,
            &[("limit", "1")],
            Some(demo.ministry()),
        )
        .await?;
        let indexed = page["total"].as_u64().unwrap_or(0);
        if indexed == visible {
            let public = search(&demo.http, &demo.gateway_url, &[("limit", "1")], None).await?;
            println!(
                "  catalogue: {visible} entries ({} public, the rest internal), all searchable",
                public["total"].as_u64().unwrap_or(0)
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the search index holds {indexed} of the catalogue's {visible} entries after {} s; \
                 see {}",
                demo.options.timeout_secs,
                demo.dir.join("demo.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The first co-registered result that both provinces registered.
fn merged_example(seeded: &[Seeded]) -> Option<&Seeded> {
    let at_liaoning: HashSet<u64> = seeded
        .iter()
        .filter(|s| s.node == LIAONING && s.kind == RecordKind::Achievement)
        .filter_map(|s| s.shared)
        .collect();
    seeded.iter().find(|s| {
        s.node == YUNNAN
            && s.kind == RecordKind::Achievement
            && s.shared.is_some_and(|i| at_liaoning.contains(&i))
    })
}

fn record_url(demo: &Demo, s: &Seeded) -> String {
    format!(
        "{}/v1/records/{}/{}",
        demo.gateway_url, NODES[s.node].node_id, s.id
    )
}

/// `--check`: what the demo promises, verified over the gateway's API.
async fn verify(demo: &Demo, seeded: &[Seeded], imported: Option<&ImportSeed>) -> Result<()> {
    let http = &demo.http;
    let gw = &demo.gateway_url;
    println!("checking…");

    // Search with a Chinese keyword, anonymously.
    let page = search(http, gw, &[("q", KEYWORD)], None).await?;
    let hits = page["total"].as_u64().unwrap_or(0);
    if hits == 0 {
        bail!("searching {gw}/v1/search?q={KEYWORD} found nothing");
    }
    println!("  ok  search q={KEYWORD}: {hits} public hits");

    // A facet value narrows the search to exactly its count.
    let facet = &page["facets"]["region"][0];
    let (region, count) = (
        facet["value"]
            .as_str()
            .context("the search has no region facet")?,
        facet["count"].as_u64().unwrap_or(0),
    );
    let narrowed = search(http, gw, &[("q", KEYWORD), ("region", region)], None).await?;
    let narrowed = narrowed["total"].as_u64().unwrap_or(0);
    if narrowed != count || narrowed == 0 {
        bail!("the region facet promised {count} hits for {region}, the filter found {narrowed}");
    }
    println!("  ok  facet region={region}: {narrowed} of the {hits} hits");

    // The same result from two provinces: one entry, two sources, linked to its project.
    let merged = merged_example(seeded).context("the seed has no co-registered result")?;
    let (status, entry) = get_json(http, &record_url(demo, merged), Some(demo.ministry())).await?;
    if status != 200 {
        bail!("{} answered {status}: {entry}", record_url(demo, merged));
    }
    let mut sources: Vec<&str> = entry["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["node_id"].as_str())
        .collect();
    sources.sort_unstable();
    if sources != [NODES[LIAONING].node_id, NODES[YUNNAN].node_id] {
        bail!(
            "{} should have sources prov-210000 and prov-530000, has {sources:?}",
            record_url(demo, merged)
        );
    }
    let links = entry["links"].as_array().map_or(0, Vec::len);
    if links == 0 {
        bail!(
            "{} is not linked to the ministry's project that funds it",
            record_url(demo, merged)
        );
    }
    println!(
        "  ok  merged: {} has 2 sources ({}) and {links} linked project(s)",
        entry["unified_id"].as_str().unwrap_or("?"),
        sources.join(", ")
    );

    // Classified records never reached the gateway, even for the most entitled consumer.
    let classified: Vec<&Seeded> = seeded
        .iter()
        .filter(|s| !s.level.may_leave_node())
        .collect();
    if classified.is_empty() {
        bail!("the seed holds no classified record to check");
    }
    for s in &classified {
        let (status, _) = get_json(http, &record_url(demo, s), Some(demo.ministry())).await?;
        if status != 404 {
            bail!(
                "classified record {}/{} is visible at the gateway ({status})",
                NODES[s.node].node_id,
                s.id
            );
        }
    }
    let lines = changes(http, gw, demo.ministry()).await?;
    let leaked = lines.iter().find(|l| {
        l["record"]["secrecy"]["level"]
            .as_str()
            .and_then(SecrecyLevel::parse)
            .is_some_and(|level| !level.may_leave_node())
    });
    if let Some(l) = leaked {
        bail!(
            "the change feed carries a classified record: {}",
            l["unified_id"]
        );
    }
    println!(
        "  ok  classified: none of the {} classified records is at the gateway",
        classified.len()
    );

    // Internal records: hidden from the public, shown to an internal consumer.
    let internal = seeded
        .iter()
        .find(|s| s.level == SecrecyLevel::Internal && s.shared.is_none())
        .context("the seed has no internal record")?;
    let url = record_url(demo, internal);
    let (public, _) = get_json(http, &url, None).await?;
    let (entitled, _) = get_json(http, &url, Some(demo.state.consumer_token("internal"))).await?;
    if (public, entitled) != (404, 200) {
        bail!("{url}: public answered {public} (want 404), internal token {entitled} (want 200)");
    }
    println!("  ok  internal: {url} is 404 in public, 200 with the internal token");

    // Commercial secrets: the fields the submitter marked leave only with the entitlement.
    let secret = seeded
        .iter()
        .find(|s| {
            s.level == SecrecyLevel::Public && !s.confidential.is_empty() && s.shared.is_none()
        })
        .context("the seed has no public record with commercial secrets")?;
    let url = record_url(demo, secret);
    let (s1, public) = get_json(http, &url, None).await?;
    let (s2, full) = get_json(http, &url, Some(demo.ministry())).await?;
    if (s1, s2) != (200, 200) {
        bail!("{url}: public {s1}, ministry {s2} (want 200, 200)");
    }
    for pointer in &secret.confidential {
        if public["record"].pointer(pointer).is_some() {
            bail!("{url}: the commercial secret {pointer} is shown in public");
        }
        if full["record"].pointer(pointer).is_none() {
            bail!("{url}: the commercial secret {pointer} is missing for the ministry");
        }
    }
    println!(
        "  ok  commercial secrets: {} hidden in public, shown with the ministry token",
        secret.confidential.join(", ")
    );

    // The ministries' change feed.
    if lines.is_empty() {
        bail!("the change feed is empty for the ministry token");
    }
    println!(
        "  ok  change feed: {} changes for the ministry token, {} entries",
        lines.len(),
        visible_entries(&lines).len()
    );

    if let Some(imported) = imported {
        verify_import(demo, imported, &lines).await?;
    }
    Ok(())
}

/// The imported workbook's results are at the gateway like any others: each one that may leave
/// its node is found by searching its title at that node, and a historical one came with the
/// 批准登记号 and 登记日期 of its row.
async fn verify_import(demo: &Demo, imported: &ImportSeed, lines: &[Value]) -> Result<()> {
    let node_id = NODES[IMPORTED].node_id;
    let file = imported.file.display();
    let leaving: Vec<&ExpectedRecord> = imported.records.iter().filter(|r| !r.classified).collect();
    for r in &leaving {
        let page = search(
            &demo.http,
            &demo.gateway_url,
            &[("q", r.title()), ("node", node_id), ("limit", "10")],
            Some(demo.ministry()),
        )
        .await?;
        let hit = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|item| item["title"] == r.title());
        if !hit {
            bail!(
                "{file} row {}: the imported result {:?} is not found at the gateway under {node_id}",
                r.row,
                r.title()
            );
        }
    }
    if let Some(r) = leaving.iter().find(|r| r.registration_no.is_some()) {
        let at_gateway = lines
            .iter()
            .map(|l| &l["record"])
            .find(|record| record["title"] == r.title())
            .with_context(|| format!("{file} row {}: not in the change feed", r.row))?;
        let kept = (
            at_gateway["registration_no"].as_str(),
            at_gateway["registration_date"].as_str(),
        );
        if kept != (r.registration_no.as_deref(), r.registration_date.as_deref()) {
            bail!(
                "{file} row {}: the gateway has 批准登记号 {:?} and 登记日期 {:?}, the row {:?} and {:?}",
                r.row,
                kept.0,
                kept.1,
                r.registration_no,
                r.registration_date
            );
        }
    }
    println!(
        "  ok  imported: the {} results of {file} that may leave {node_id} are searchable at the \
         gateway ({} classified stay at the node); historical ones keep their 批准登记号 and 登记日期",
        leaving.len(),
        imported.records.len() - leaving.len()
    );
    Ok(())
}

fn print_guide(demo: &Demo, seeded: &[Seeded], imported: Option<&ImportSeed>) {
    let gw = &demo.gateway_url;
    let ministry = demo.ministry();
    let internal = demo.state.consumer_token("internal");
    println!();
    println!("The researchers' portal: {gw}/");
    println!("The exchange is running. Try:");
    println!();
    println!(
        "  # full-text search, anonymously (public records, no commercial or personal fields)"
    );
    println!("  curl -sG {gw}/v1/search --data-urlencode 'q={KEYWORD}'");
    println!(
        "  # narrowed by a facet (region: province code; also field, category, program, trl_min, year_from…)"
    );
    println!("  curl -sG {gw}/v1/search --data-urlencode 'q={KEYWORD}' -d region=530000");
    println!("  # counts per province");
    println!("  curl -s '{gw}/v1/stats?by=region'");
    if let Some(m) = merged_example(seeded) {
        println!(
            "  # one result registered by Yunnan and Liaoning: one entry, two sources, linked to its project"
        );
        println!("  curl -s {}", record_url(demo, m));
    }
    println!("  # internal records too, with a consumer token");
    println!("  curl -sG {gw}/v1/search -d kind=achievement -H 'Authorization: Bearer {internal}'");
    println!("  # the ministries' change feed (JSON Lines; every field)");
    println!("  curl -s '{gw}/v1/changes?after=0&limit=5' -H 'Authorization: Bearer {ministry}'");
    println!("  # a node's registration API (its admin token)");
    println!(
        "  curl -s '{}/v1/achievements?limit=5' -H 'Authorization: Bearer {}'",
        demo.node_urls[YUNNAN],
        demo.state.node_token(YUNNAN, "admin")
    );
    if let Some(imported) = imported {
        println!(
            "  # {}'s own results came from this 登记表 workbook ({} of them with a historical 批准登记号);",
            NODES[IMPORTED].node_id, imported.historical
        );
        println!("  # open it, or import it again (nothing is registered twice):");
        println!(
            "  rix import --mapping {IMPORT_MAPPING} --node {} --token {} --approve '{}'",
            demo.node_urls[IMPORTED],
            demo.state.node_token(IMPORTED, "admin"),
            imported.file.display()
        );
    }
    println!("  # every endpoint");
    println!("  curl -s {gw}/openapi.json");
    println!();
    println!(
        "URLs and tokens for scripts: {}",
        demo.dir.join("demo.json").display()
    );
    println!("Press Ctrl-C to stop; run again with the same --data-dir to continue where it was.");
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_name_replaces_the_one_in_the_url() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:55432/postgres", "rix_demo_most").unwrap(),
            "postgres://u:p@127.0.0.1:55432/rix_demo_most"
        );
        assert_eq!(
            with_database("postgresql://h/db?sslmode=disable", "x").unwrap(),
            "postgresql://h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x").unwrap(),
            "postgres://h:5432/x"
        );
        assert!(with_database("not a url", "x").is_err());
    }

    #[test]
    fn the_seed_has_every_kind_of_record_the_checks_need() {
        for records in [60, 120, 300] {
            let plan = plan(records);
            let docs: Vec<&Value> = plan.parts.iter().flat_map(|p| p.docs.iter()).collect();
            assert_eq!(docs.len() as u64, records);
            assert!(docs.iter().any(|d| is_classified(d)), "{records}");
            assert!(docs.iter().any(|d| is_internal(d)), "{records}");
            assert!(docs.iter().any(|d| is_commercial(d)), "{records}");
            assert!(
                docs.iter().any(|d| level_of(d) == SecrecyLevel::Public
                    && d["title"].as_str().is_some_and(|t| t.contains(KEYWORD))),
                "{records}: a public title with {KEYWORD}"
            );
            for part in &plan.parts {
                let uscc = &plan.institutions[part.node]["uscc"];
                for doc in &part.docs {
                    rix_schema::validate_record(part.kind, doc).unwrap();
                    let named = match part.kind {
                        RecordKind::Achievement => doc["institutions"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|i| &i["uscc"] == uscc),
                        RecordKind::FundedProject => {
                            &doc["lead"]["uscc"] == uscc
                                || doc["participants"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .any(|i| &i["uscc"] == uscc)
                        }
                    };
                    assert!(named, "every record names its submitter's institution");
                }
            }
        }
    }
}
