//! `rix bench import`: how fast a province's existing records come in (issue 14's bar: ≥ 20,000
//! spreadsheet or CSV rows per second parsed, mapped and validated on one core, and pushed into
//! a node at its batch-submit speed, in bounded memory).
//!
//! The files are the fixture generator's (`rix import-fixtures`): a 科技成果登记表 workbook and a
//! GBK project list, with every mess real files have but no broken rows, so every row is work
//! of the same kind. Per file, each phase timed on its own and in a fresh state:
//! - the source alone (read and decode); the source with mapping and validation (what the
//!   import does before any node sees a row); `rix import --dry-run`'s whole loop (the same,
//!   plus the import's bookkeeping: counts, checkpoint spans, the summary);
//! - with `--push`, on a node started in this process for each phase (SQLite in a temporary
//!   directory; with `--postgres`, the same again on PostgreSQL), the import beside the node's
//!   plain batch submit of the same records (`POST /v1/{collection}/batch`, as many per request
//!   as the import sends): `rix import` without `--approve` against batch submit, and `rix
//!   import --approve` against batch submit followed by `POST /v1/{collection}/approve` of the
//!   ids it returned. Both sides read and map the file the same way, one request at a time, so
//!   the ratio is the node's import endpoint and the import's client against the plain API.
//!
//! CPU time is the process's, so a reader thread (XLSX) and, in push phases, the node count;
//! rows per CPU second is the per-core figure of the phases without a node. Peak RSS is per
//! phase: the high-water mark is reset before each (`/proc/self/clear_refs`), so fixture
//! generation and earlier phases do not count.
//!
//! What it may not touch: the import itself. It calls the same source, mapping and
//! `crate::import::run` as `rix import` does, and only measures around them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rix_adapters::source::{self, SourceOptions};
use rix_schema::RecordKind;
use rix_schema::sample::SampleGenerator;
use serde_json::{Value, json};

use crate::import::fixtures::{self, FixtureSpec, Layout};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ImportBench {
    /// Rows per file.
    pub rows: u64,
    /// Where the fixture files are written (and reused when they hold `rows` rows).
    pub data_dir: PathBuf,
    /// Also import into nodes started in this process, beside their batch submit.
    pub push: bool,
    /// Also push into a node on this PostgreSQL server (a database `rix_bench_import` is
    /// created there and emptied before each phase).
    pub postgres: Option<String>,
    /// Only this layout (`form` or `csv`), e.g. for the peak memory of one file.
    pub only: Option<String>,
}

/// Requests of this many records, on both sides of the side by side: the import's default.
const CHUNK: usize = rix_adapters::push::DEFAULT_CHUNK_SIZE;

/// The PostgreSQL database the push phases use.
const PG_DATABASE: &str = "rix_bench_import";

/// One timed pass over a file.
struct Pass {
    rows: u64,
    wall: f64,
    cpu: f64,
    /// Peak RSS during the pass, KiB.
    peak_kib: u64,
}

impl Pass {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.wall.max(1e-9)
    }

    fn line(&self, what: &str) -> String {
        format!(
            "| {what} | {} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} |",
            self.rows,
            self.wall,
            self.cpu,
            self.rate(),
            self.rows as f64 / self.cpu.max(1e-9),
            self.peak_kib as f64 / 1024.0,
        )
    }
}

/// A node's database for the push phases.
#[derive(Debug, Clone)]
enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }
}

/// Runs the benchmark and prints a table.
pub fn run(bench: &ImportBench) -> Result<()> {
    std::fs::create_dir_all(&bench.data_dir)
        .with_context(|| format!("creating {}", bench.data_dir.display()))?;
    let files = fixture_files(bench)?;
    let mut backends = Vec::new();
    if bench.push {
        backends.push(Backend::Sqlite);
        if let Some(url) = &bench.postgres {
            backends.push(Backend::Postgres(postgres_database(url)?));
        }
    }
    let mut table = vec![
        "| file · phase | rows | wall s | CPU s | rows/s | rows per CPU s | peak RSS MiB |"
            .to_owned(),
        "|---|---|---|---|---|---|---|".to_owned(),
    ];
    let mut ratios = Vec::new();
    for (layout, path) in &files {
        let name = match layout {
            Layout::AchievementForm => "登记表 XLSX",
            Layout::ProjectListCsv => "项目 CSV (GBK)",
            Layout::AchievementXml => "XML",
        };
        let (mapping, _) = crate::import::load_mapping(layout.mapping())?;
        let options = source_options(&mapping)?;
        let read = timed(|| {
            let mut rows = 0;
            for row in source::open(path, &options)? {
                row?;
                rows += 1;
            }
            Ok(rows)
        })?;
        table.push(read.line(&format!("{name} · read")));
        let mapped = timed(|| {
            let mut records = 0;
            map_file(&mapping, &options, path, |_| {
                records += 1;
                Ok(())
            })?;
            Ok(records)
        })?;
        table.push(mapped.line(&format!("{name} · read, map, validate")));
        let dry = dry_run(path, layout.mapping())?;
        table.push(dry.line(&format!("{name} · rix import --dry-run")));
        for backend in &backends {
            let db = backend.name();
            let batch = batch_submit(backend, &mapping, &options, path, false)?;
            table.push(batch.line(&format!("{name} · {db}: batch submit (POST /batch)")));
            let import = push(backend, path, layout.mapping(), false)?;
            table.push(import.line(&format!("{name} · {db}: rix import")));
            let both = batch_submit(backend, &mapping, &options, path, true)?;
            table.push(both.line(&format!("{name} · {db}: batch submit + approve")));
            let approved = push(backend, path, layout.mapping(), true)?;
            table.push(approved.line(&format!("{name} · {db}: rix import --approve")));
            ratios.push(format!(
                "{name} · {db}: rix import / batch submit = {:.2}; rix import --approve / (batch submit + approve) = {:.2}",
                import.rate() / batch.rate(),
                approved.rate() / both.rate(),
            ));
        }
    }
    println!();
    println!(
        "rix bench import: {} rows per file (fixtures in {})",
        bench.rows,
        bench.data_dir.display()
    );
    println!();
    for line in table {
        println!("{line}");
    }
    if !ratios.is_empty() {
        println!();
        println!("wall rates, import against the node's own API (1.00 = as fast):");
        for line in ratios {
            println!("- {line}");
        }
    }
    Ok(())
}

/// The fixture files for `bench`, each written unless the data dir holds it for this size.
/// The project list is written a line at a time (a million lines fit in any memory); the
/// workbook is built in memory by the writer (about 4 GB at 100,000 rows).
fn fixture_files(bench: &ImportBench) -> Result<Vec<(Layout, PathBuf)>> {
    let mut out = Vec::new();
    for (layout, file, short) in [
        (Layout::AchievementForm, "科技成果登记表.xlsx", "form"),
        (Layout::ProjectListCsv, "科技计划项目一览表.csv", "csv"),
    ] {
        match bench.only.as_deref() {
            None => {}
            Some(only) if only == short => {}
            Some("form" | "csv") => continue,
            Some(other) => bail!("--only takes form or csv, not {other}"),
        }
        let path = bench.data_dir.join(file);
        // `rows-N` marks files written by an earlier version of this benchmark, all at once.
        let marker = bench.data_dir.join(format!("rows-{}.{short}", bench.rows));
        let old_marker = bench.data_dir.join(format!("rows-{}", bench.rows));
        if !(path.exists() && (marker.exists() || old_marker.exists())) {
            // The file is written again for this size: no marker may name it at another.
            for entry in std::fs::read_dir(&bench.data_dir)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if let Some(rest) = name.strip_prefix("rows-")
                    && (rest.ends_with(&format!(".{short}")) || !rest.contains('.'))
                {
                    std::fs::remove_file(bench.data_dir.join(&name))?;
                }
            }
            let started = Instant::now();
            let spec = FixtureSpec {
                broken: false,
                ..FixtureSpec::default()
            };
            let generator = SampleGenerator::new(spec.config.clone());
            match layout {
                Layout::AchievementForm => {
                    fixtures::achievement_form_xlsx(&path, &generator, bench.rows, false)?;
                }
                _ => fixtures::project_list_gbk_csv_unchecked(&path, &generator, bench.rows)?,
            }
            std::fs::write(&marker, b"")?;
            println!(
                "fixtures: {} written in {:.1} s",
                path.display(),
                started.elapsed().as_secs_f64()
            );
        }
        out.push((layout, path));
    }
    Ok(out)
}

fn source_options(mapping: &rix_adapters::mapping::Mapping) -> Result<SourceOptions> {
    let table = mapping.source().cloned().unwrap_or_default();
    toml::Value::Table(table)
        .try_into()
        .context("the mapping's [source] options")
}

/// Reads and maps every row of `path`, handing each record to `each`; a refused row is an
/// error (the fixtures have none).
fn map_file(
    mapping: &rix_adapters::mapping::Mapping,
    options: &SourceOptions,
    path: &Path,
    mut each: impl FnMut(rix_adapters::outcome::MappedRecord) -> Result<()>,
) -> Result<()> {
    let mut mapper = mapping.mapper();
    let mut refused = 0u64;
    for row in source::open(path, options)? {
        match mapper.map(&row?) {
            Some(Ok(record)) => each(record)?,
            Some(Err(_)) => refused += 1,
            None => {}
        }
    }
    if refused > 0 {
        bail!(
            "{refused} rows of {} refused: the fixture has no broken rows",
            path.display()
        );
    }
    Ok(())
}

/// Runs `work` (which returns the rows it handled) and measures it.
fn timed(work: impl FnOnce() -> Result<u64>) -> Result<Pass> {
    reset_peak_rss();
    let (cpu0, started) = (cpu_secs(), Instant::now());
    let rows = work()?;
    Ok(Pass {
        rows,
        wall: started.elapsed().as_secs_f64(),
        cpu: cpu_secs() - cpu0,
        peak_kib: peak_rss_kib(),
    })
}

/// CPU time of this process (user + system, every thread), in seconds.
fn cpu_secs() -> f64 {
    crate::bench_search::cpu_secs_of("/proc/self/stat")
}

/// Resets this process's peak RSS to its current RSS (Linux 4.0 and later; elsewhere the peak
/// stays the process's whole life's, which only overstates it).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", b"5");
}

/// The peak RSS (`VmHWM`) since the last reset, KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `rix import --dry-run` of `path`: every row read, mapped, validated and counted.
fn dry_run(path: &Path, mapping: &str) -> Result<Pass> {
    let options = crate::import::ImportOptions {
        mapping: mapping.to_owned(),
        inputs: vec![path.to_owned()],
        dry_run: true,
        rows: 0,
        ..Default::default()
    };
    let mut sink = std::io::sink();
    timed(|| {
        let summary = crate::import::run(&options, &mut sink)?;
        if let Some(failure) = &summary.failure {
            bail!("the dry run stopped: {failure}");
        }
        if summary.total.refused_mapping > 0 {
            bail!("the dry run refused rows: the fixture has no broken rows");
        }
        Ok(summary.total.mapped)
    })
}

/// A runtime and a fresh node on `backend` for one phase.
fn fresh_node(
    backend: &Backend,
    dir: &Path,
) -> Result<(tokio::runtime::Runtime, rix_node::RunningNode)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres(url) => {
            empty_postgres(url)?;
            Some(url.clone())
        }
    };
    let node = runtime.block_on(crate::bench::start_node(dir, url, None, 500))?;
    Ok((runtime, node))
}

/// Imports `path` into a fresh node with an administrator's token (`approve`: approving new
/// records in the same requests).
fn push(backend: &Backend, path: &Path, mapping: &str, approve: bool) -> Result<Pass> {
    let dir = tempfile::tempdir()?;
    let (runtime, node) = fresh_node(backend, dir.path())?;
    let options = crate::import::ImportOptions {
        mapping: mapping.to_owned(),
        inputs: vec![path.to_owned()],
        node: Some(node.url()),
        token: Some(crate::bench::ADMIN.to_owned()),
        approve,
        errors: Some(dir.path().join("errors")),
        checkpoint: Some(dir.path().join("checkpoint.json")),
        chunk: Some(CHUNK),
        ..Default::default()
    };
    let mut sink = std::io::sink();
    let pass = timed(|| {
        let summary = crate::import::run(&options, &mut sink)?;
        if let Some(failure) = &summary.failure {
            bail!("the import stopped: {failure}");
        }
        if summary.total.refused_node > 0 || summary.total.refused_mapping > 0 {
            bail!("the import refused rows: the fixture has no broken rows");
        }
        Ok(summary.total.accepted + summary.total.duplicates)
    });
    runtime.block_on(node.stop());
    pass
}

/// The same records through the node's plain API: read and mapped as the import does, then
/// `POST /v1/{collection}/batch` per [`CHUNK`] records and, with `approve`,
/// `POST /v1/{collection}/approve` of the ids it returned.
fn batch_submit(
    backend: &Backend,
    mapping: &rix_adapters::mapping::Mapping,
    options: &SourceOptions,
    path: &Path,
    approve: bool,
) -> Result<Pass> {
    let dir = tempfile::tempdir()?;
    let (runtime, node) = fresh_node(backend, dir.path())?;
    let http = reqwest::Client::new();
    let base = node.url();
    let collection = match mapping.kind() {
        RecordKind::Achievement => "achievements",
        RecordKind::FundedProject => "projects",
    };
    let send = |docs: &mut Vec<Value>| -> Result<u64> {
        if docs.is_empty() {
            return Ok(0);
        }
        let n = docs.len() as u64;
        let body = serde_json::to_vec(&*docs)?;
        docs.clear();
        runtime.block_on(async {
            let reply = post(&http, &format!("{base}/v1/{collection}/batch"), body).await?;
            if approve {
                let ids: Vec<&Value> = reply["items"]
                    .as_array()
                    .context("a batch reply has items")?
                    .iter()
                    .map(|item| &item["id"])
                    .collect();
                let body = serde_json::to_vec(&json!({ "ids": ids }))?;
                post(&http, &format!("{base}/v1/{collection}/approve"), body).await?;
            }
            anyhow::Ok(())
        })?;
        Ok(n)
    };
    let pass = timed(|| {
        let mut docs = Vec::with_capacity(CHUNK);
        let mut sent = 0;
        map_file(mapping, options, path, |record| {
            docs.push(record.record);
            if docs.len() == CHUNK {
                sent += send(&mut docs)?;
            }
            Ok(())
        })?;
        sent += send(&mut docs)?;
        Ok(sent)
    });
    runtime.block_on(node.stop());
    pass
}

/// POSTs `body` (JSON) as the administrator and returns the answer. A 5xx is asked again a
/// few times: the node answers 500 "database is locked" when a SQLite write waits too long for
/// its publisher, and says nothing was written, as an importing client would retry it.
async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<Value> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let response = http
            .post(url)
            .bearer_auth(crate::bench::ADMIN)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.json().await?);
        }
        let text = response.text().await?;
        if !status.is_server_error() || attempt >= 8 {
            bail!("{url}: {status}: {text}");
        }
        eprintln!("{url}: {status}, asked again: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The benchmark's own database on the server at `url`, created if missing.
fn postgres_database(url: &str) -> Result<String> {
    bench_database(url, PG_DATABASE)
}

/// The database `name` on the server at `url`, created if missing: a benchmark's own, so that
/// it never writes into the database the operator named.
pub(crate) fn bench_database(url: &str, name: &str) -> Result<String> {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::PgConnection::establish(url).with_context(|| {
        format!(
            "cannot reach PostgreSQL at {}",
            rix_node::db::redact_url(url)
        )
    })?;
    match diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn) {
        Ok(_) => {}
        Err(e) if e.to_string().contains("already exists") => {}
        Err(e) => return Err(e).context("creating the benchmark's database"),
    }
    let mut parsed = reqwest::Url::parse(url).context("the PostgreSQL URL")?;
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.to_string())
}

/// Empties the benchmark's database so every phase starts alike.
pub(crate) fn empty_postgres(url: &str) -> Result<()> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let mut conn = diesel::PgConnection::establish(url)
        .with_context(|| format!("connecting to {}", rix_node::db::redact_url(url)))?;
    conn.batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        .context("emptying the benchmark's database")?;
    Ok(())
}
