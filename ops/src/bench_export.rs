//! `rix bench export`: a ministry's bulk pull (issue 16) — a full anonymous export of the search
//! bench's catalogue ([`crate::bench_search`], filled or reused in the same data dir) as JSON
//! Lines and as CSV through a real `rix gateway serve` process, beside the catalogue's own
//! reading of the same current versions straight out of SQLite (what the disk allows), and the
//! latency of search pages by depth (a page should cost the same at any depth).
//!
//! Each export is read to its last byte over HTTP and its lines counted; the baseline reads the
//! entries of the current versions of every active record in key order, a few thousand at a
//! time, and writes them as lines to a sink. Exports and baselines alternate, so a busy moment
//! of the shared machine falls on both.
//!
//! What it may not touch: the gateway. It measures through HTTP only, as a ministry's script
//! would; the baseline opens the catalogue file read-only.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use diesel::prelude::*;

use crate::bench_import::{bench_database, empty_postgres};
use crate::bench_search::{
    GatewayChild, SearchBench, fill_once, fill_or_reuse, reindex, warm_page_cache,
    write_gateway_config,
};

/// What `rix bench export` measures.
pub struct ExportBench {
    /// Records in the catalogue (as `rix bench search` fills it).
    pub records: u64,
    /// Publishing nodes.
    pub nodes: usize,
    /// The search bench's data dir (its catalogue and index are reused when there).
    pub dir: PathBuf,
    /// Rounds of (JSON Lines, CSV, baseline).
    pub rounds: usize,
    /// Search pages walked for the latency by depth.
    pub pages: usize,
    /// Also on PostgreSQL (the bench's own database on this server): the same catalogue
    /// filled there, a gateway on it, beside `psql \copy … TO STDOUT` of the same entries.
    pub postgres: Option<String>,
}

/// One timed pull: how long, how many lines, how many bytes.
struct Pull {
    took: Duration,
    lines: u64,
    bytes: u64,
}

async fn pull(http: &reqwest::Client, url: &str) -> Result<Pull> {
    let start = Instant::now();
    let mut response = http.get(url).send().await?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading {url}"))?
    {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok(Pull {
        took: start.elapsed(),
        lines,
        bytes,
    })
}

#[derive(QueryableByName)]
struct EntryText {
    #[diesel(sql_type = diesel::sql_types::Text)]
    node_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    entry: String,
}

/// The catalogue's own reading of what an export holds: each active record's current signed
/// entry, in key order, a page at a time, written as lines to a sink.
fn baseline(db: &std::path::Path) -> Result<Pull> {
    let start = Instant::now();
    let url = format!("file:{}?mode=ro", db.display());
    let mut conn = diesel::SqliteConnection::establish(&url)
        .with_context(|| format!("opening {}", db.display()))?;
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut sink = std::io::sink();
    let (mut node, mut id) = (String::new(), String::new());
    loop {
        let page: Vec<EntryText> = diesel::sql_query(
            "SELECT r.node_id, r.id, v.entry FROM records r \
             JOIN record_versions v ON v.node_id = r.node_id AND v.id = r.id \
             AND v.version = r.version \
             WHERE r.withdrawn = 0 AND (r.node_id, r.id) > (?, ?) \
             ORDER BY r.node_id, r.id LIMIT 5000",
        )
        .bind::<diesel::sql_types::Text, _>(&node)
        .bind::<diesel::sql_types::Text, _>(&id)
        .load(&mut conn)?;
        let Some(last) = page.last() else { break };
        (node, id) = (last.node_id.clone(), last.id.clone());
        for row in &page {
            std::io::Write::write_all(&mut sink, row.entry.as_bytes())?;
            std::io::Write::write_all(&mut sink, b"\n")?;
            bytes += row.entry.len() as u64 + 1;
            lines += 1;
        }
    }
    Ok(Pull {
        took: start.elapsed(),
        lines,
        bytes,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The entries an export holds, as PostgreSQL reads them for `COPY`: each active record's
/// current signed entry (in no particular order: the cheapest read there is).
const CURRENT_ENTRIES: &str = "SELECT v.entry FROM records r \
     JOIN record_versions v ON v.node_id = r.node_id AND v.id = r.id AND v.version = r.version \
     WHERE r.withdrawn = 0";

/// `psql \copy (CURRENT_ENTRIES) TO STDOUT`, as text (one entry a line) or as CSV, read to
/// the last byte: what the issue measured PostgreSQL's own export at.
fn psql_copy(url: &str, csv: bool) -> Result<Pull> {
    let psql = ["/usr/bin/psql", "/usr/lib/postgresql/15/bin/psql"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("psql");
    let copy = format!(
        "\\copy ({CURRENT_ENTRIES}) TO STDOUT{}",
        if csv { " WITH (FORMAT csv)" } else { "" }
    );
    let start = Instant::now();
    let mut child = std::process::Command::new(psql)
        .args(["-X", "-q", "-d", url, "-c", &copy])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting psql")?;
    let mut out = child.stdout.take().context("psql's output")?;
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut out, &mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("psql \\copy failed: {status}");
    }
    Ok(Pull {
        took: start.elapsed(),
        lines,
        bytes,
    })
}

/// Where one half of the bench keeps its catalogue.
enum Catalogue {
    /// The search bench's SQLite file.
    Sqlite(PathBuf),
    /// The bench's own PostgreSQL database (its URL).
    Postgres(String),
}

/// A catalogue filled (or reused) and indexed, with a gateway config for it.
struct Side {
    catalogue: Catalogue,
    config: PathBuf,
    port: u16,
    fill_note: String,
}

fn sqlite_side(spec: &ExportBench, search: &SearchBench) -> Result<Side> {
    let (fill_note, filled) = fill_or_reuse(search)?;
    println!("SQLite fill: {fill_note}");
    let (config, port) = write_gateway_config(&spec.dir, None)?;
    let index_dir = spec.dir.join("search");
    let catalogue = spec.dir.join("catalogue.db");
    if filled || !index_dir.exists() {
        let _ = std::fs::remove_dir_all(&index_dir);
        warm_page_cache(&catalogue)?;
        println!("SQLite index: {}", reindex(&config)?);
    }
    Ok(Side {
        catalogue: Catalogue::Sqlite(catalogue),
        config,
        port,
        fill_note,
    })
}

/// The same catalogue on PostgreSQL, in `<data dir>/postgres` (config, index, fill marker) and
/// the database `rix_bench_export` on the server at `url`.
fn postgres_side(spec: &ExportBench, search: &SearchBench, url: &str) -> Result<Side> {
    let dir = spec.dir.join("postgres");
    std::fs::create_dir_all(&dir)?;
    let db_url = bench_database(url, "rix_bench_export")?;
    let (fill_note, _) = fill_once(&dir, search, || {
        let _ = std::fs::remove_dir_all(dir.join("search"));
        empty_postgres(&db_url)?;
        Ok(rix_gateway::db::Db::open(&db_url, 4)?)
    })?;
    println!("PostgreSQL fill: {fill_note}");
    let (config, port) = write_gateway_config(&dir, Some(&db_url))?;
    if !dir.join("search").exists() {
        println!("PostgreSQL index: {}", reindex(&config)?);
    }
    Ok(Side {
        catalogue: Catalogue::Postgres(db_url),
        config,
        port,
        fill_note,
    })
}

/// What one side measured: medians of the exports and of the database's own reads, sizes,
/// memory and the search pages by depth.
struct Measured {
    jsonl: Pull,
    csv: Pull,
    /// The database's own read for JSON Lines and for CSV (SQLite: the same read for both).
    own_jsonl: Pull,
    own_csv: Pull,
    memory: String,
    depth: Vec<(usize, Duration)>,
    /// The first page of a query not asked before (`kind=achievement`): every match counted.
    cold: Duration,
    /// Pages of `q=电池` in relevance order, walked by cursor.
    text_depth: Vec<(usize, Duration)>,
}

/// Walks the pages of `first` by cursor, at most `pages` of them: each page's time.
async fn walk(http: &reqwest::Client, first: &str, pages: usize) -> Result<Vec<(usize, Duration)>> {
    let mut times = Vec::new();
    let mut url = first.to_owned();
    for page in 0..pages {
        let start = Instant::now();
        let body: serde_json::Value = http.get(&url).send().await?.json().await?;
        times.push((page, start.elapsed()));
        match body["next_cursor"].as_str() {
            Some(c) => url = format!("{first}&cursor={c}"),
            None => break,
        }
    }
    Ok(times)
}

/// The pull of median duration among `pulls` (they hold the same lines).
fn median_pull(mut pulls: Vec<Pull>) -> Pull {
    pulls.sort_unstable_by_key(|p| p.took);
    let mid = pulls.len() / 2;
    pulls.swap_remove(mid)
}

fn measure(side: &Side, spec: &ExportBench, runtime: &tokio::runtime::Runtime) -> Result<Measured> {
    let mut gateway = GatewayChild::start(&side.config, side.port)?;
    let http = reqwest::Client::new();
    runtime.block_on(gateway.wait_ready(&http))?;
    let base = gateway.url.clone();
    let (mut jsonl, mut csv, mut own_jsonl, mut own_csv) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut memory = String::new();
    for round in 0..spec.rounds {
        println!("round {}/{}…", round + 1, spec.rounds);
        jsonl.push(runtime.block_on(pull(&http, &format!("{base}/v1/export?format=jsonl")))?);
        csv.push(runtime.block_on(pull(&http, &format!("{base}/v1/export?format=csv")))?);
        memory = gateway.memory()?.to_string();
        match &side.catalogue {
            Catalogue::Sqlite(path) => own_jsonl.push(baseline(path)?),
            Catalogue::Postgres(url) => {
                own_jsonl.push(psql_copy(url, false)?);
                own_csv.push(psql_copy(url, true)?);
            }
        }
    }

    // Search pages by depth, 100 a page, cursor after cursor: a text query in relevance order
    // (120,000 matches at 1 M: later pages from the query's one ranking), then the whole
    // catalogue by date. Its totals and facets were counted ahead when the gateway started; a
    // query nobody has asked yet counts every match on its first page, measured between.
    let (text_depth, cold, depth) = runtime.block_on(async {
        let text_depth = walk(
            &http,
            &format!("{base}/v1/search?q=%E7%94%B5%E6%B1%A0&limit=100"),
            spec.pages,
        )
        .await?;
        let start = Instant::now();
        http.get(format!(
            "{base}/v1/search?kind=achievement&sort=date&limit=100"
        ))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
        let cold = start.elapsed();
        let depth = walk(
            &http,
            &format!("{base}/v1/search?sort=date&limit=100"),
            spec.pages,
        )
        .await?;
        Ok::<_, anyhow::Error>((text_depth, cold, depth))
    })?;
    gateway.stop();
    let own_jsonl = median_pull(own_jsonl);
    let own_csv = if own_csv.is_empty() {
        Pull {
            took: own_jsonl.took,
            lines: own_jsonl.lines,
            bytes: own_jsonl.bytes,
        }
    } else {
        median_pull(own_csv)
    };
    Ok(Measured {
        jsonl: median_pull(jsonl),
        csv: median_pull(csv),
        own_jsonl,
        own_csv,
        memory,
        depth,
        cold,
        text_depth,
    })
}

/// The report lines of one side.
fn report(name: &str, side: &Side, m: &Measured) -> Vec<String> {
    let rate = |p: &Pull| p.lines as f64 / p.took.as_secs_f64().max(1e-9);
    let micros = |p: &Pull| p.took.as_secs_f64() * 1e6 / p.lines.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let row = |what: &str, p: &Pull, own: &Pull, lines: u64| {
        format!(
            "| {what} | {lines} | {:.1} | {:.2} | {:.0} | {:.1} | {:.1} |",
            p.bytes as f64 / 1e6,
            p.took.as_secs_f64(),
            rate(p),
            micros(p),
            p.took.as_secs_f64() / own.took.as_secs_f64().max(1e-9)
        )
    };
    let (own_name_j, own_name_c) = match side.catalogue {
        Catalogue::Sqlite(_) => (
            "SQLite: current signed entries in key order".to_owned(),
            None,
        ),
        Catalogue::Postgres(_) => (
            "PostgreSQL: `psql \\copy (current entries) TO STDOUT`".to_owned(),
            Some("PostgreSQL: the same `WITH (FORMAT csv)`".to_owned()),
        ),
    };
    let mut lines = vec![
        format!("### {name}"),
        format!("fill: {}", side.fill_note),
        format!("gateway memory after the exports: {}", m.memory),
        String::new(),
        "| pull | lines | MB | median s | records/s | µs per record | × the database's own read |"
            .into(),
        "|---|---|---|---|---|---|---|".into(),
        row("export JSON Lines", &m.jsonl, &m.own_jsonl, m.jsonl.lines),
        row(
            "export CSV",
            &m.csv,
            &m.own_csv,
            m.csv.lines.saturating_sub(1),
        ),
        row(&own_name_j, &m.own_jsonl, &m.own_jsonl, m.own_jsonl.lines),
    ];
    if let Some(name) = own_name_c {
        lines.push(row(&name, &m.own_csv, &m.own_csv, m.own_csv.lines));
    }
    let bucket_of = |walk: &[(usize, Duration)], from: usize, to: usize| {
        median(
            walk.iter()
                .filter(|(p, _)| *p >= from && *p < to)
                .map(|(_, d)| *d)
                .collect(),
        )
    };
    let bucket = |from: usize, to: usize| bucket_of(&m.depth, from, to);
    let walked = m.depth.len();
    lines.push(String::new());
    lines.push(format!(
        "search pages of 100 by date, walked by cursor ({walked} pages): first page {:.2} ms \
         (counted ahead; a query not asked before, `kind=achievement`: {:.2} ms); \
         median ms at pages 2–11 {:.2}, {}–{} {:.2}, last ten {:.2}",
        m.depth.first().map_or(0.0, |(_, d)| ms(*d)),
        ms(m.cold),
        ms(bucket(1, 11)),
        walked / 2,
        walked / 2 + 10,
        ms(bucket(walked / 2, walked / 2 + 10)),
        ms(bucket(walked.saturating_sub(10), walked)),
    ));
    let walked = m.text_depth.len();
    lines.push(format!(
        "pages of 100 of `q=电池` by relevance ({walked} pages): first page {:.2} ms; median ms \
         at pages 2–11 {:.2}, {}–{} {:.2}, last ten {:.2}",
        m.text_depth.first().map_or(0.0, |(_, d)| ms(*d)),
        ms(bucket_of(&m.text_depth, 1, 11)),
        walked / 2,
        walked / 2 + 10,
        ms(bucket_of(&m.text_depth, walked / 2, walked / 2 + 10)),
        ms(bucket_of(&m.text_depth, walked.saturating_sub(10), walked)),
    ));
    lines.push(String::new());
    lines
}

/// Runs the bench and prints its report (Markdown tables for ops/BENCHMARKS.md).
pub fn run(spec: &ExportBench) -> Result<()> {
    let search = SearchBench {
        records: spec.records,
        nodes: spec.nodes,
        dir: spec.dir.clone(),
        postgres: None,
        queries: 0,
    };
    let mut sides = vec![("SQLite", sqlite_side(spec, &search)?)];
    if let Some(url) = &spec.postgres {
        sides.push(("PostgreSQL", postgres_side(spec, &search, url)?));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let mut out = vec![
        format!(
            "rix bench export: {} records from {} nodes; {} rounds, medians",
            spec.records, spec.nodes, spec.rounds
        ),
        String::new(),
    ];
    for (name, side) in &sides {
        println!("{name}: exports…");
        let measured = measure(side, spec, &runtime)?;
        out.extend(report(name, side, &measured));
    }
    println!();
    for line in &out {
        println!("{line}");
    }
    Ok(())
}
