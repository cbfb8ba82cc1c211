//! `rix bench import`: how fast a province's existing records come in (issue 14's bar: ≥ 20,000
//! spreadsheet or CSV rows per second parsed, mapped and validated on one core, and pushed into
//! a SQLite node at its batch-submit speed, in bounded memory).
//!
//! The files are the fixture generator's (`rix import-fixtures`): a 科技成果登记表 workbook and a
//! GBK project list, with every mess real files have but no broken rows, so every row is work
//! of the same kind. Three phases per file, each timed on its own: the source alone (read and
//! decode), the source with mapping and validation (what `rix import --dry-run` does), and the
//! whole import into a node started in this process with an administrator's token (`--push`).
//! CPU time is the process's, so a reader thread (XLSX) counts; rows per CPU second is the
//! per-core figure.
//!
//! What it may not touch: the import itself. It calls the same source, mapping and
//! `crate::import::run` as `rix import` does, and only measures around them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rix_adapters::source::{self, SourceOptions};

use crate::import::fixtures::{self, FixtureSpec, Layout};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ImportBench {
    /// Rows per file.
    pub rows: u64,
    /// Where the fixture files are written (and reused when they hold `rows` rows).
    pub data_dir: PathBuf,
    /// Also import into a node started in this process (SQLite, or `postgres`).
    pub push: bool,
    /// The node's PostgreSQL database (else SQLite in the data dir).
    pub postgres: Option<String>,
    /// Only this layout (`form` or `csv`), e.g. for the peak memory of one file.
    pub only: Option<String>,
}

/// One timed pass over a file.
struct Pass {
    rows: u64,
    wall: f64,
    cpu: f64,
}

impl Pass {
    fn line(&self, what: &str) -> String {
        format!(
            "| {what} | {} | {:.2} | {:.2} | {:.0} | {:.0} |",
            self.rows,
            self.wall,
            self.cpu,
            self.rows as f64 / self.wall.max(1e-9),
            self.rows as f64 / self.cpu.max(1e-9),
        )
    }
}

/// Runs the benchmark and prints a table.
pub fn run(bench: &ImportBench) -> Result<()> {
    std::fs::create_dir_all(&bench.data_dir)
        .with_context(|| format!("creating {}", bench.data_dir.display()))?;
    let files = fixture_files(bench)?;
    let mut table = vec![
        "| file · phase | rows | wall s | CPU s | rows/s | rows per CPU s |".to_owned(),
        "|---|---|---|---|---|---|".to_owned(),
    ];
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
            let mut mapper = mapping.mapper();
            let (mut records, mut refused) = (0u64, 0u64);
            for row in source::open(path, &options)? {
                match mapper.map(&row?) {
                    Some(Ok(_)) => records += 1,
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
            Ok(records)
        })?;
        table.push(mapped.line(&format!("{name} · read, map, validate")));
        if bench.push {
            let pushed = push(bench, path, layout.mapping())?;
            table.push(pushed.line(&format!("{name} · import into a node (approve)")));
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
    let memory = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(hwm) = memory.lines().find(|l| l.starts_with("VmHWM:")) {
        println!();
        println!(
            "peak RSS of this process (generation included): {}",
            hwm.trim_start_matches("VmHWM:").trim()
        );
    }
    Ok(())
}

/// The fixture files for `bench`, written unless the data dir holds them for this size.
fn fixture_files(bench: &ImportBench) -> Result<Vec<(Layout, PathBuf)>> {
    let marker = bench.data_dir.join(format!("rows-{}", bench.rows));
    let spec = FixtureSpec {
        form_achievements: bench.rows,
        projects: bench.rows,
        xml_achievements: 0,
        broken: false,
        ..FixtureSpec::default()
    };
    let written = if marker.exists() {
        None
    } else {
        let started = Instant::now();
        let files = fixtures::write_all(&bench.data_dir, &spec)?;
        std::fs::write(&marker, b"")?;
        println!(
            "fixtures: {} files written in {:.1} s",
            files.len(),
            started.elapsed().as_secs_f64()
        );
        Some(files)
    };
    let mut out = Vec::new();
    for (layout, file) in [
        (Layout::AchievementForm, "科技成果登记表.xlsx"),
        (Layout::ProjectListCsv, "科技计划项目一览表.csv"),
    ] {
        let wanted = match (bench.only.as_deref(), layout) {
            (None, _) => true,
            (Some("form"), Layout::AchievementForm) | (Some("csv"), Layout::ProjectListCsv) => true,
            (Some("form" | "csv"), _) => false,
            (Some(other), _) => bail!("--only takes form or csv, not {other}"),
        };
        if wanted {
            out.push((layout, bench.data_dir.join(file)));
        }
    }
    drop(written);
    Ok(out)
}

fn source_options(mapping: &rix_adapters::mapping::Mapping) -> Result<SourceOptions> {
    let table = mapping.source().cloned().unwrap_or_default();
    toml::Value::Table(table)
        .try_into()
        .context("the mapping's [source] options")
}

/// Runs `work` (which returns the rows it handled) and measures it.
fn timed(work: impl FnOnce() -> Result<u64>) -> Result<Pass> {
    let (cpu0, started) = (cpu_secs(), Instant::now());
    let rows = work()?;
    Ok(Pass {
        rows,
        wall: started.elapsed().as_secs_f64(),
        cpu: cpu_secs() - cpu0,
    })
}

/// CPU time of this process (user + system, every thread), in seconds.
fn cpu_secs() -> f64 {
    crate::bench_search::cpu_secs_of("/proc/self/stat")
}

/// Imports `path` into a node started for it, approving as an administrator.
fn push(bench: &ImportBench, path: &Path, mapping: &str) -> Result<Pass> {
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let node = runtime.block_on(crate::bench::start_node(
        dir.path(),
        bench.postgres.clone(),
        None,
        500,
    ))?;
    let options = crate::import::ImportOptions {
        mapping: mapping.to_owned(),
        inputs: vec![path.to_owned()],
        node: Some(node.url()),
        token: Some(crate::bench::ADMIN.to_owned()),
        approve: true,
        errors: Some(dir.path().join("errors")),
        checkpoint: Some(dir.path().join("checkpoint.json")),
        ..Default::default()
    };
    let mut sink = std::io::sink();
    let pass = timed(|| {
        let summary = crate::import::run(&options, &mut sink)?;
        if let Some(failure) = &summary.failure {
            bail!("the import stopped: {failure}");
        }
        Ok(summary.total.accepted + summary.total.duplicates)
    })?;
    runtime.block_on(node.stop());
    Ok(pass)
}
