//! `rix bench search`: the search bars of DESIGN.md §7 measured on a catalogue of generated
//! records, through a real gateway process, side by side with what a team would otherwise
//! reach for — PostgreSQL (`ILIKE`, then `pg_trgm`) and SQLite FTS5 — on the same data.
//!
//! Phases, each timed and printed:
//! 1. fill: generated achievements and projects from several nodes, signed into chained
//!    batches and taken in by the gateway's own ingest pipeline (skipped when `DIR` already
//!    holds a filled catalogue of that size, so the slow part runs once);
//! 2. index: the search index built from scratch from the catalogue's change stream
//!    (`SearchIndex::rebuild`, what `rix gateway reindex` runs);
//! 3. serve: `rix gateway serve` as a child process on that catalogue and index; queries of a
//!    keyword plus two filters with facets go through its HTTP API one at a time; its resident
//!    memory is read from /proc;
//! 4. baselines: the text and facet values the index holds for the public view
//!    ([`rix_gateway::search::searchable`]) loaded into SQLite FTS5 (unicode61 and trigram
//!    tokenizers) and PostgreSQL (a plain table, then a `gin_trgm_ops` index), asked the same
//!    questions (count, top 20, the seven facets) in one statement each;
//! 5. recall: for two-character Chinese terms, every engine's match set against the exact
//!    set (the entries whose searchable text contains the term).
//!
//! What it may not touch: the gateway's rules. The catalogue is filled through the gateway's own
//! ingest and the index built by its own rebuild; the baselines get only the public view of each
//! entry (cut by `sensitivity::redact`, then [`rix_gateway::search::searchable`]), the text an
//! anonymous search of the gateway runs over. In the PostgreSQL database given it replaces its
//! own tables (`docs`, `prog`, `mode`) and nothing else.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use rix_gateway::catalogue;
use rix_gateway::db::Db;
use rix_gateway::search;
use rix_schema::RecordKind;
use rix_schema::batch::{Entry, GENESIS_PREV_HASH, SignedBatch};
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use rix_schema::sensitivity::{self, Entitlements};
use rix_schema::signing::SigningKey;
use serde_json::Value;

/// What `rix bench search` measures.
pub struct SearchBench {
    /// Records in the catalogue (achievements and projects, 3 : 1).
    pub records: u64,
    /// Publishing nodes the records are spread over.
    pub nodes: usize,
    /// Where the catalogue, index and baseline databases live (kept for the next run).
    pub dir: PathBuf,
    /// PostgreSQL database for the PostgreSQL baselines (emptied first); none skips them.
    pub postgres: Option<String>,
    /// Timed queries per engine (the slow baselines stop earlier, see `BASELINE_BUDGET`).
    pub queries: usize,
}

/// Wall time one baseline engine may spend on its timed queries.
const BASELINE_BUDGET: Duration = Duration::from_secs(60);

/// Two-character words, the case jieba segmentation and n-gram indexes disagree on.
const TWO_CHAR_TERMS: [&str; 8] = [
    "电池", "芯片", "疫苗", "大豆", "光伏", "材料", "算法", "育种",
];

/// Longer and mixed terms for the timed queries.
const LONGER_TERMS: [&str; 6] = [
    "锂离子电池",
    "钙钛矿太阳能电池",
    "水稻育种",
    "5G通信",
    "人工智能",
    "中药",
];

const PROVINCES: [&str; 7] = [
    "530000", "210000", "110000", "310000", "440000", "510000", "420000",
];

fn profiles(n: usize) -> Vec<NodeProfile> {
    (0..n.max(1))
        .map(|i| match i {
            0 => NodeProfile::ministry("most", "科学技术部", "348"),
            i => NodeProfile::province(PROVINCES[(i - 1) % PROVINCES.len()]),
        })
        .collect()
}

/// One timed question: a keyword and two filters.
#[derive(Debug, Clone)]
pub(crate) struct Question {
    pub(crate) term: &'static str,
    pub(crate) region: &'static str,
    pub(crate) year_from: u64,
}

impl Question {
    pub(crate) fn all() -> Vec<Question> {
        let mut out = Vec::new();
        for (n, term) in TWO_CHAR_TERMS.iter().chain(&LONGER_TERMS).enumerate() {
            for (m, region) in PROVINCES.iter().take(4).enumerate() {
                out.push(Question {
                    term,
                    region,
                    year_from: 2012 + ((n + m) % 8) as u64,
                });
            }
        }
        out
    }

    pub(crate) fn api_path(&self) -> String {
        format!(
            "/v1/search?q={}&region={}&year_from={}",
            urlencode(self.term),
            self.region,
            self.year_from
        )
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Latency of each timed question of one engine, and whether its term had two characters.
pub(crate) struct Latencies(pub(crate) Vec<(Duration, bool)>);

impl Latencies {
    pub(crate) fn quantile(&self, q: f64, which: Option<bool>) -> Duration {
        let mut v: Vec<Duration> = self
            .0
            .iter()
            .filter(|(_, two)| which.is_none_or(|w| w == *two))
            .map(|(d, _)| *d)
            .collect();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or_default()
    }

    fn line(&self, engine: &str) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "| {engine} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            self.0.len(),
            ms(self.quantile(0.5, None)),
            ms(self.quantile(0.95, None)),
            ms(self.quantile(0.99, None)),
            ms(self.quantile(1.0, None)),
            ms(self.quantile(0.5, Some(true))),
            ms(self.quantile(0.5, Some(false))),
        )
    }
}

/// Times `answer` over `questions` in turn, `n` times in all, or until `budget` is spent once
/// every question was asked.
fn timed(
    questions: &[Question],
    n: usize,
    budget: Duration,
    mut answer: impl FnMut(&Question) -> Result<()>,
) -> Result<Latencies> {
    let mut out = Vec::with_capacity(n);
    let started = Instant::now();
    for q in questions.iter().cycle().take(n) {
        let at = Instant::now();
        answer(q)?;
        out.push((at.elapsed(), q.term.chars().count() == 2));
        if started.elapsed() > budget && out.len() >= questions.len() {
            break;
        }
    }
    Ok(Latencies(out))
}

/// Phase 1: fills `spec.dir`'s catalogue, or reuses the one a previous run filled there with
/// the same size; says which, and whether it filled.
pub(crate) fn fill_or_reuse(spec: &SearchBench) -> Result<(String, bool)> {
    std::fs::create_dir_all(&spec.dir)
        .with_context(|| format!("creating {}", spec.dir.display()))?;
    let db_path = spec.dir.join("catalogue.db");
    fill_once(&spec.dir, spec, || {
        for stale in ["catalogue.db", "catalogue.db-wal", "catalogue.db-shm"] {
            let _ = std::fs::remove_file(spec.dir.join(stale));
        }
        Ok(Db::open(db_path.to_str().context("a UTF-8 path")?, 4)?)
    })
}

/// Fills `spec`'s catalogue once: kept while `dir/filled.json` says it holds this many records
/// from this many nodes (a fill of 1 M takes minutes to half an hour); otherwise `fresh`
/// empties the database and opens it, and the fill is timed and marked. Returns the fill's
/// note and whether it filled.
pub(crate) fn fill_once(
    dir: &Path,
    spec: &SearchBench,
    fresh: impl FnOnce() -> Result<Db>,
) -> Result<(String, bool)> {
    let marker = dir.join("filled.json");
    let filled: Option<Value> = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(f) = filled
        && f["records"] == spec.records
        && f["nodes"] == spec.nodes as u64
    {
        return Ok((format!("reused ({} s when filled)", f["secs"]), false));
    }
    let _ = std::fs::remove_file(&marker);
    let db = fresh()?;
    let started = Instant::now();
    let taken = fill(&db, spec)?;
    let secs = started.elapsed().as_secs_f64();
    std::fs::write(
        &marker,
        serde_json::json!({"records": spec.records, "nodes": spec.nodes, "secs": secs}).to_string(),
    )?;
    Ok((
        format!(
            "{taken} entries in {secs:.1} s = {:.0} records/s",
            taken as f64 / secs
        ),
        true,
    ))
}

/// Runs every phase and prints a Markdown report.
pub fn run(spec: &SearchBench) -> Result<()> {
    let (fill_note, _) = fill_or_reuse(spec)?;
    println!("fill: {fill_note}");
    let db_path = spec.dir.join("catalogue.db");
    let db = Db::open(db_path.to_str().context("a UTF-8 path")?, 4)?;

    // Phase 2: the index from scratch, by the operator's command in its own process.
    let (config, port) = write_gateway_config(&spec.dir, None)?;
    let _ = std::fs::remove_dir_all(spec.dir.join("search"));
    // Read the catalogue file once so that the figure is the build, not this disk: a build
    // right after a compile found it evicted and spent a quarter of its time waiting on reads.
    warm_page_cache(&db_path)?;
    let reindex = reindex(&config)?;
    println!("index: {reindex}");

    // The public view of every entry, as the baselines will hold it.
    let started = Instant::now();
    let rows = public_rows(&db)?;
    println!(
        "public view: {} entries read in {:.1} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    let questions = Question::all();
    let exact = exact_sets(&rows);

    // Phase 3: the gateway process.
    let runtime = tokio::runtime::Runtime::new()?;
    println!("gateway: starting `rix gateway serve`, then timed queries and recall…");
    let mut gateway = GatewayChild::start(&config, port)?;
    let http = reqwest::Client::new();
    runtime.block_on(gateway.wait_ready(&http))?;
    let rss_idle = gateway.memory()?;
    let api = runtime.block_on(api_latencies(&http, &gateway.url, &questions, spec.queries))?;
    let api_recall = runtime.block_on(api_recall(&http, &gateway.url, &rows))?;
    let rss_after = gateway.memory()?;
    gateway.stop();

    let mut report = vec![
        format!(
            "rix bench search: {} records from {} nodes, {} entries in the public view",
            spec.records,
            spec.nodes,
            rows.len()
        ),
        format!("fill: {fill_note}"),
        format!("index build (`rix gateway reindex`): {reindex}"),
        format!("gateway memory after start: {rss_idle}"),
        format!("gateway memory after the queries: {rss_after}"),
        String::new(),
        "| engine | queries | p50 ms | p95 ms | p99 ms | max ms | p50 2-char terms | p50 longer terms |"
            .into(),
        "|---|---|---|---|---|---|---|---|".into(),
        api.line("rix /v1/search (tantivy + jieba), HTTP"),
    ];
    let mut recall_lines = vec![recall_line("rix /v1/search", &api_recall, &exact)];

    // Phase 4: baselines.
    println!("SQLite FTS5: building…");
    let mut fts = Fts5::build(&spec.dir.join("fts5.db"), &rows)?;
    report.push(format!("(SQLite FTS5 built in {:.1} s)", fts.build_secs));
    for tokenizer in [FtsTokenizer::Unicode61, FtsTokenizer::Trigram] {
        let l = fts.latencies(tokenizer, &questions, spec.queries)?;
        report.push(l.line(&format!("SQLite FTS5 {}", tokenizer.name())));
        recall_lines.push(recall_line(
            &format!("SQLite FTS5 {}", tokenizer.name()),
            &fts.recall(tokenizer)?,
            &exact,
        ));
    }
    if let Some(url) = &spec.postgres {
        println!("PostgreSQL: loading…");
        let mut pg = Postgres::build(url, &rows)?;
        report.push(format!(
            "(PostgreSQL table loaded in {:.1} s)",
            pg.load_secs
        ));
        let l = pg.latencies(&questions, spec.queries)?;
        report.push(l.line("PostgreSQL ILIKE (no index)"));
        recall_lines.push(recall_line("PostgreSQL ILIKE", &pg.recall()?, &exact));
        let trgm_secs = pg.add_trigram_index()?;
        report.push(format!("(pg_trgm GIN index built in {trgm_secs:.1} s)"));
        let l = pg.latencies(&questions, spec.queries)?;
        report.push(l.line("PostgreSQL ILIKE + pg_trgm GIN"));
        recall_lines.push(recall_line("PostgreSQL pg_trgm", &pg.recall()?, &exact));
    }
    report.push(String::new());
    report.push(format!(
        "Recall for two-character terms ({}), no filters, public view:",
        TWO_CHAR_TERMS.join(" ")
    ));
    report.push(String::new());
    report.push("| engine | recall | matched / expected | extra |".into());
    report.push("|---|---|---|---|".into());
    report.extend(recall_lines);
    println!();
    for line in &report {
        println!("{line}");
    }
    Ok(())
}

/// CPU time (user + system) of the process whose stat file is `path`, in seconds.
pub(crate) fn cpu_secs_of(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

// -------------------------------------------------------------------------------------------
// Phase 1: fill

/// Signs each node's records into chained batches and runs them through the gateway's
/// ingest pipeline: generate + sign, prepare (verify, validate, secrecy gate) and commit on
/// three threads, as the consumer overlaps them.
pub(crate) fn fill(db: &Db, spec: &SearchBench) -> Result<u64> {
    let profiles = profiles(spec.nodes);
    let per_node = spec.records / profiles.len() as u64;
    let mut keys = Vec::new();
    for p in &profiles {
        let key = SigningKey::generate()?;
        rix_gateway::trust::add(db, p.node_id(), None, None, key.verifying_key(), None, None)?;
        keys.push(key);
    }
    let ingest = crate::bench::catalogue_ingest(db)?;
    let (signed_tx, signed_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let producer = std::thread::spawn(move || -> Result<()> {
        for (profile, key) in profiles.into_iter().zip(keys) {
            let node_id = profile.node_id().to_owned();
            let generator = SampleGenerator::new(SampleConfig {
                node: profile,
                ..SampleConfig::default()
            });
            let achievements = per_node - per_node / 4;
            let projects = per_node / 4;
            let mut prev = GENESIS_PREV_HASH;
            let mut seq = 1u64;
            let mut batch_seq = 1u64;
            let mut pending: Vec<Entry> = Vec::with_capacity(500);
            let mut seal = |entries: Vec<Entry>, prev: &mut [u8; 32]| -> Result<Vec<u8>> {
                let b = SignedBatch::sign(
                    &node_id,
                    batch_seq,
                    *prev,
                    entries,
                    time::OffsetDateTime::now_utc(),
                    &key,
                )?;
                batch_seq += 1;
                *prev = b.hash();
                Ok(b.to_bytes())
            };
            // Projects first, so achievements link to projects already there.
            for (kind, n) in [
                (RecordKind::FundedProject, projects),
                (RecordKind::Achievement, achievements),
            ] {
                for i in 0..n {
                    let (id, record) = match kind {
                        RecordKind::Achievement => (
                            format!("ach-{i:07}"),
                            serde_json::to_value(generator.achievement(i))?,
                        ),
                        RecordKind::FundedProject => (
                            format!("prj-{i:07}"),
                            serde_json::to_value(generator.project(i))?,
                        ),
                    };
                    pending.push(Entry::upsert(seq, kind, id, 1, record));
                    seq += 1;
                    if pending.len() == 500 {
                        let bytes = seal(std::mem::take(&mut pending), &mut prev)?;
                        if signed_tx.send(bytes).is_err() {
                            return Ok(());
                        }
                    }
                }
                if !pending.is_empty() {
                    let bytes = seal(std::mem::take(&mut pending), &mut prev)?;
                    if signed_tx.send(bytes).is_err() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    });
    let started = Instant::now();
    let mut shown = Instant::now();
    let taken = crate::bench::apply_all(&ingest, signed_rx, |taken| {
        if shown.elapsed() > Duration::from_secs(10) {
            shown = Instant::now();
            println!(
                "  fill: {taken} entries, {:.0} records/s",
                taken as f64 / started.elapsed().as_secs_f64()
            );
        }
    })?;
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the generating thread panicked"))??;
    Ok(taken)
}

// -------------------------------------------------------------------------------------------
// The public view, and the exact answers

/// One entry as an anonymous consumer may see it, reduced to what search uses.
struct Row {
    uid: String,
    s: search::Searchable,
}

fn public_rows(db: &Db) -> Result<Vec<Row>> {
    let mut conn = db.conn()?;
    let mut out = Vec::new();
    for kind in [RecordKind::Achievement, RecordKind::FundedProject] {
        let uids = catalogue::visible_unified_ids(&mut conn, kind)?;
        for chunk in uids.chunks(2000) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let entries = catalogue::unified_many(&mut conn, &refs)?;
            for uid in chunk {
                let Some(record) = entries.get(uid).and_then(|u| u.record.as_ref()) else {
                    continue;
                };
                let Some(view) = sensitivity::redact(kind, record, Entitlements::PUBLIC) else {
                    continue;
                };
                if let Some(s) = search::searchable(kind, &view) {
                    out.push(Row {
                        uid: uid.clone(),
                        s,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// For each two-character term, the indexes (into `rows`) whose text contains it.
fn exact_sets(rows: &[Row]) -> BTreeMap<&'static str, HashSet<usize>> {
    TWO_CHAR_TERMS
        .iter()
        .map(|t| {
            let set = rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.s.text.contains(t))
                .map(|(i, _)| i)
                .collect();
            (*t, set)
        })
        .collect()
}

/// What one engine matched for each two-character term (indexes into the rows).
type Matched = BTreeMap<&'static str, HashSet<usize>>;

fn recall_line(engine: &str, got: &Matched, exact: &Matched) -> String {
    let (mut hit, mut expected, mut extra) = (0usize, 0usize, 0usize);
    for (term, want) in exact {
        let have = got.get(term).cloned().unwrap_or_default();
        hit += want.intersection(&have).count();
        extra += have.difference(want).count();
        expected += want.len();
    }
    format!(
        "| {engine} | {:.1} % | {hit} / {expected} | {extra} |",
        100.0 * hit as f64 / expected.max(1) as f64
    )
}

// -------------------------------------------------------------------------------------------
// Phase 3: the gateway process

pub(crate) struct GatewayChild {
    child: std::process::Child,
    pub(crate) url: String,
}

/// Resident memory of a process, from /proc/PID/status.
pub(crate) struct Memory {
    rss_kib: u64,
    pub(crate) hwm_kib: u64,
    anon_kib: u64,
    file_kib: u64,
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |k: u64| k as f64 / 1024.0;
        write!(
            f,
            "RSS {:.0} MiB (anonymous {:.0} MiB, file-backed {:.0} MiB, peak {:.0} MiB)",
            mib(self.rss_kib),
            mib(self.anon_kib),
            mib(self.file_kib),
            mib(self.hwm_kib)
        )
    }
}

/// A gateway config for the bench's data dir on a free port.
pub(crate) fn write_gateway_config(
    dir: &Path,
    database_url: Option<&str>,
) -> Result<(PathBuf, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("gateway.toml");
    let mut text = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\ndb_connections = 8\n",
        dir.display().to_string()
    );
    if let Some(url) = database_url {
        text.push_str(&format!("database_url = {url:?}\n"));
    }
    std::fs::write(&config, text)?;
    Ok((config, port))
}

/// What `rix gateway reindex` took.
pub(crate) struct Reindex {
    line: String,
    secs: f64,
    cpu_secs: f64,
    peak: Memory,
}

impl std::fmt::Display for Reindex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} — {:.1} s wall, {:.1} CPU s, peak RSS {:.0} MiB",
            self.line,
            self.secs,
            self.cpu_secs,
            self.peak.hwm_kib as f64 / 1024.0
        )
    }
}

/// Runs `rix gateway reindex`, sampling its CPU time and peak memory from /proc while it runs.
pub(crate) fn reindex(config: &Path) -> Result<Reindex> {
    let started = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["gateway", "reindex", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting `rix gateway reindex`")?;
    let pid = child.id();
    let (mut peak, mut cpu) = (None, 0.0);
    while child.try_wait()?.is_none() {
        // An exited process not yet reaped still has a status file, without its memory: the
        // last reading with memory is the one to keep.
        if let Ok(m) = memory_of(pid)
            && m.hwm_kib > 0
        {
            peak = Some(m);
        }
        cpu = cpu_secs_of(&format!("/proc/{pid}/stat")).max(cpu);
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = started.elapsed().as_secs_f64();
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("`rix gateway reindex` failed: {}", output.status);
    }
    Ok(Reindex {
        line: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        secs,
        cpu_secs: cpu,
        peak: peak.context("the reindex process was never seen running")?,
    })
}

/// Reads `path` through once (into the OS page cache).
pub(crate) fn warm_page_cache(path: &Path) -> Result<()> {
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut std::io::sink())?;
    Ok(())
}

/// Resident memory of process `pid`.
pub(crate) fn memory_of(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        anon_kib: field("RssAnon:"),
        file_kib: field("RssFile:"),
    })
}

impl GatewayChild {
    pub(crate) fn start(config: &Path, port: u16) -> Result<GatewayChild> {
        let child = std::process::Command::new(std::env::current_exe()?)
            .args(["gateway", "serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting `rix gateway serve`")?;
        Ok(GatewayChild {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    pub(crate) async fn wait_ready(&mut self, http: &reqwest::Client) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the gateway exited at start: {status}");
            }
            if let Ok(r) = http.get(format!("{}/healthz", self.url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the gateway did not answer /healthz within 300 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn memory(&self) -> Result<Memory> {
        memory_of(self.child.id())
    }

    pub(crate) fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayChild {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn api_latencies(
    http: &reqwest::Client,
    base: &str,
    questions: &[Question],
    n: usize,
) -> Result<Latencies> {
    let ask = |q: &Question| {
        let url = format!("{base}{}", q.api_path());
        async move {
            let r = http.get(&url).send().await?;
            if !r.status().is_success() {
                bail!("{url} answered {}", r.status());
            }
            let body: Value = r.json().await?;
            if body["facets"].is_null() {
                bail!("{url} answered without facets");
            }
            Ok::<_, anyhow::Error>(())
        }
    };
    // Warm the connection and the page cache once over every question.
    for q in questions {
        ask(q).await?;
    }
    let mut out = Vec::with_capacity(n);
    for q in questions.iter().cycle().take(n) {
        let started = Instant::now();
        ask(q).await?;
        out.push((started.elapsed(), q.term.chars().count() == 2));
    }
    Ok(Latencies(out))
}

/// Every match of each two-character term through the API, page by page.
async fn api_recall(http: &reqwest::Client, base: &str, rows: &[Row]) -> Result<Matched> {
    let position: std::collections::HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.uid.as_str(), i))
        .collect();
    let mut out = Matched::new();
    for term in TWO_CHAR_TERMS {
        let mut set = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{base}/v1/search?q={}&limit=100", urlencode(term));
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={}", urlencode(c)));
            }
            let page: Value = http.get(&url).send().await?.json().await?;
            for item in page["items"].as_array().into_iter().flatten() {
                let uid = item["unified_id"].as_str().unwrap_or_default();
                // An entry outside the public view would be a leak, not a match: count it
                // as extra by giving it no position.
                set.insert(position.get(uid).copied().unwrap_or(usize::MAX - set.len()));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        out.insert(term, set);
    }
    Ok(out)
}

// -------------------------------------------------------------------------------------------
// Phase 4: SQLite FTS5

#[derive(Clone, Copy)]
enum FtsTokenizer {
    Unicode61,
    Trigram,
}

impl FtsTokenizer {
    fn name(self) -> &'static str {
        match self {
            FtsTokenizer::Unicode61 => "unicode61",
            FtsTokenizer::Trigram => "trigram",
        }
    }

    fn table(self) -> &'static str {
        match self {
            FtsTokenizer::Unicode61 => "fts_words",
            FtsTokenizer::Trigram => "fts_tri",
        }
    }

    /// The match condition for `term` and the score to rank by. The trigram tokenizer
    /// cannot look up fewer than three characters: FTS5 answers such a LIKE by scanning.
    fn condition(self, term: &str) -> (String, &'static str) {
        let table = self.table();
        match self {
            FtsTokenizer::Trigram if term.chars().count() < 3 => {
                (format!("f.text LIKE '%{term}%'"), "-d.year")
            }
            _ => (format!("{table} MATCH '\"{term}\"'"), "f.rank"),
        }
    }
}

/// The rows a baseline holds: one per entry, plus its programs and transfer modes.
const BASELINE_COLUMNS: &str = "rid, uid, region, field, category, trl, year";

struct Fts5 {
    conn: diesel::SqliteConnection,
    rows: usize,
    build_secs: f64,
}

#[derive(QueryableByName)]
struct JsonResult {
    #[diesel(sql_type = Text)]
    result: String,
}

#[derive(QueryableByName)]
struct RowId {
    #[diesel(sql_type = BigInt)]
    rid: i64,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn opt_quote(s: &Option<String>) -> String {
    s.as_deref().map_or("NULL".into(), quote)
}

fn opt_num(n: Option<u64>) -> String {
    n.map_or("NULL".into(), |n| n.to_string())
}

/// Multi-row INSERT statements for the baseline tables (the values are generated, quoted).
fn insert_statements(rows: &[Row], with_text: bool) -> Vec<String> {
    let mut out = Vec::new();
    for (c, chunk) in rows.chunks(500).enumerate() {
        let base = c * 500;
        let mut docs = format!(
            "INSERT INTO docs ({BASELINE_COLUMNS}{}) VALUES ",
            if with_text { ", text" } else { "" }
        );
        let mut progs = String::from("INSERT INTO prog (rid, program) VALUES ");
        let mut modes = String::from("INSERT INTO mode (rid, mode) VALUES ");
        let (mut any_prog, mut any_mode) = (false, false);
        for (i, r) in chunk.iter().enumerate() {
            let rid = base + i;
            if i > 0 {
                docs.push(',');
            }
            docs.push_str(&format!(
                "({rid}, {}, {}, {}, {}, {}, {}{})",
                quote(&r.uid),
                opt_quote(&r.s.region),
                opt_quote(&r.s.field),
                opt_quote(&r.s.category),
                opt_num(r.s.trl),
                opt_num(r.s.year),
                if with_text {
                    format!(", {}", quote(&r.s.text))
                } else {
                    String::new()
                }
            ));
            for p in &r.s.programs {
                if any_prog {
                    progs.push(',');
                }
                any_prog = true;
                progs.push_str(&format!("({rid}, {})", quote(p)));
            }
            for m in &r.s.transfer_modes {
                if any_mode {
                    modes.push(',');
                }
                any_mode = true;
                modes.push_str(&format!("({rid}, {})", quote(m)));
            }
        }
        out.push(docs);
        if any_prog {
            out.push(progs);
        }
        if any_mode {
            out.push(modes);
        }
    }
    out
}

/// One statement answering a question the way /v1/search does: the total, the first 20 by
/// `m.score`, and the seven facets over the matches.
fn answer_sql(matches: &str, json_object: &str, group_object: &str) -> String {
    let facet = |column: &str| {
        format!(
            "'{column}', (SELECT {group_object}(coalesce(cast(k AS TEXT), '-'), n) FROM \
             (SELECT {column} AS k, count(*) AS n FROM m GROUP BY {column}) g)"
        )
    };
    let joined = |table: &str, column: &str| {
        format!(
            "'{table}', (SELECT {group_object}(k, n) FROM (SELECT x.{column} AS k, count(*) AS n \
             FROM m JOIN {table} x ON x.rid = m.rid GROUP BY x.{column}) g)"
        )
    };
    format!(
        "WITH m AS MATERIALIZED ({matches}) SELECT cast({json_object}('total', (SELECT count(*) \
         FROM m), 'top', (SELECT count(*) FROM (SELECT rid FROM m ORDER BY score LIMIT 20) t), \
         {}, {}, {}, {}, {}, {}, {}) AS TEXT) AS result",
        facet("region"),
        facet("field"),
        facet("category"),
        facet("trl"),
        facet("year"),
        joined("prog", "program"),
        joined("mode", "mode"),
    )
}

impl Fts5 {
    fn build(path: &Path, rows: &[Row]) -> Result<Fts5> {
        let _ = std::fs::remove_file(path);
        let started = Instant::now();
        let mut conn = diesel::SqliteConnection::establish(path.to_str().context("UTF-8 path")?)?;
        conn.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;
             CREATE TABLE docs (rid INTEGER PRIMARY KEY, uid TEXT NOT NULL, region TEXT,
                 field TEXT, category TEXT, trl INTEGER, year INTEGER, text TEXT NOT NULL);
             CREATE TABLE prog (rid INTEGER NOT NULL, program TEXT NOT NULL);
             CREATE TABLE mode (rid INTEGER NOT NULL, mode TEXT NOT NULL);
             CREATE VIRTUAL TABLE fts_words USING fts5(text, content='docs', content_rowid='rid',
                 tokenize='unicode61');
             CREATE VIRTUAL TABLE fts_tri USING fts5(text, content='docs', content_rowid='rid',
                 tokenize='trigram');",
        )?;
        conn.batch_execute("BEGIN")?;
        for statement in insert_statements(rows, true) {
            conn.batch_execute(&statement)?;
        }
        conn.batch_execute(
            "CREATE INDEX prog_rid ON prog (rid); CREATE INDEX mode_rid ON mode (rid);
             CREATE INDEX docs_region_year ON docs (region, year);
             INSERT INTO fts_words (rowid, text) SELECT rid, text FROM docs;
             INSERT INTO fts_tri (rowid, text) SELECT rid, text FROM docs;
             COMMIT; ANALYZE;",
        )?;
        Ok(Fts5 {
            conn,
            rows: rows.len(),
            build_secs: started.elapsed().as_secs_f64(),
        })
    }

    fn answer(&mut self, t: FtsTokenizer, q: &Question) -> Result<String> {
        let (condition, score) = t.condition(q.term);
        let matches = format!(
            "SELECT d.rid AS rid, d.region AS region, d.field AS field, d.category AS category, \
             d.trl AS trl, d.year AS year, {score} AS score FROM {} f JOIN docs d ON d.rid = \
             f.rowid WHERE {condition} AND d.region = {} AND d.year >= {}",
            t.table(),
            quote(q.region),
            q.year_from
        );
        let sql = answer_sql(&matches, "json_object", "json_group_object");
        Ok(diesel::sql_query(sql)
            .get_result::<JsonResult>(&mut self.conn)?
            .result)
    }

    fn latencies(&mut self, t: FtsTokenizer, qs: &[Question], n: usize) -> Result<Latencies> {
        timed(qs, n, BASELINE_BUDGET, |q| self.answer(t, q).map(drop))
    }

    fn recall(&mut self, t: FtsTokenizer) -> Result<Matched> {
        let mut out = Matched::new();
        for term in TWO_CHAR_TERMS {
            let (condition, _) = t.condition(term);
            let sql = format!(
                "SELECT f.rowid AS rid FROM {} f WHERE {condition}",
                t.table()
            );
            let ids: Vec<RowId> = diesel::sql_query(sql).load(&mut self.conn)?;
            out.insert(
                term,
                ids.into_iter()
                    .map(|r| r.rid as usize)
                    .filter(|r| *r < self.rows)
                    .collect(),
            );
        }
        Ok(out)
    }
}

// -------------------------------------------------------------------------------------------
// Phase 4: PostgreSQL

struct Postgres {
    conn: diesel::PgConnection,
    load_secs: f64,
}

impl Postgres {
    fn build(url: &str, rows: &[Row]) -> Result<Postgres> {
        let mut conn = diesel::PgConnection::establish(url)
            .with_context(|| format!("connecting to {}", rix_node::db::redact_url(url)))?;
        let started = Instant::now();
        conn.batch_execute(
            "DROP TABLE IF EXISTS docs, prog, mode;
             CREATE EXTENSION IF NOT EXISTS pg_trgm;
             CREATE TABLE docs (rid BIGINT PRIMARY KEY, uid TEXT NOT NULL, region TEXT,
                 field TEXT, category TEXT, trl BIGINT, year BIGINT, text TEXT NOT NULL);
             CREATE TABLE prog (rid BIGINT NOT NULL, program TEXT NOT NULL);
             CREATE TABLE mode (rid BIGINT NOT NULL, mode TEXT NOT NULL);",
        )?;
        let statements = insert_statements(rows, true);
        for chunk in statements.chunks(50) {
            conn.batch_execute(&format!("BEGIN; {}; COMMIT;", chunk.join(";\n")))?;
        }
        conn.batch_execute(
            "CREATE INDEX prog_rid ON prog (rid); CREATE INDEX mode_rid ON mode (rid);
             CREATE INDEX docs_region_year ON docs (region, year); ANALYZE docs; ANALYZE prog;
             ANALYZE mode;",
        )?;
        Ok(Postgres {
            conn,
            load_secs: started.elapsed().as_secs_f64(),
        })
    }

    fn add_trigram_index(&mut self) -> Result<f64> {
        let started = Instant::now();
        self.conn.batch_execute(
            "SET maintenance_work_mem = '1GB';
             CREATE INDEX docs_text_trgm ON docs USING gin (text gin_trgm_ops); ANALYZE docs;",
        )?;
        Ok(started.elapsed().as_secs_f64())
    }

    fn answer(&mut self, q: &Question) -> Result<String> {
        let matches = format!(
            "SELECT rid, region, field, category, trl, year, -year AS score FROM docs WHERE text \
             ILIKE {} AND region = {} AND year >= {}",
            quote(&format!("%{}%", q.term)),
            quote(q.region),
            q.year_from
        );
        let sql = answer_sql(&matches, "json_build_object", "json_object_agg");
        Ok(diesel::sql_query(sql)
            .get_result::<JsonResult>(&mut self.conn)?
            .result)
    }

    fn latencies(&mut self, qs: &[Question], n: usize) -> Result<Latencies> {
        timed(qs, n, BASELINE_BUDGET, |q| self.answer(q).map(drop))
    }

    fn recall(&mut self) -> Result<Matched> {
        let mut out = Matched::new();
        for term in TWO_CHAR_TERMS {
            let sql = format!(
                "SELECT rid FROM docs WHERE text ILIKE {}",
                quote(&format!("%{term}%"))
            );
            let ids: Vec<RowId> = diesel::sql_query(sql).load(&mut self.conn)?;
            out.insert(term, ids.into_iter().map(|r| r.rid as usize).collect());
        }
        Ok(out)
    }
}
