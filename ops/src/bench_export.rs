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

use crate::bench_search::{
    GatewayChild, SearchBench, fill_or_reuse, reindex, warm_page_cache, write_gateway_config,
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

/// Runs the bench and prints its report (Markdown tables for ops/BENCHMARKS.md).
pub fn run(spec: &ExportBench) -> Result<()> {
    let search = SearchBench {
        records: spec.records,
        nodes: spec.nodes,
        dir: spec.dir.clone(),
        postgres: None,
        queries: 0,
    };
    let (fill_note, filled) = fill_or_reuse(&search)?;
    println!("fill: {fill_note}");
    let (config, port) = write_gateway_config(&spec.dir)?;
    let index_dir = spec.dir.join("search");
    let catalogue = spec.dir.join("catalogue.db");
    if filled || !index_dir.exists() {
        let _ = std::fs::remove_dir_all(&index_dir);
        warm_page_cache(&catalogue)?;
        println!("index: {}", reindex(&config)?);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let mut gateway = GatewayChild::start(&config, port)?;
    let http = reqwest::Client::new();
    runtime.block_on(gateway.wait_ready(&http))?;
    let base = gateway.url.clone();

    let (mut jsonl, mut csv, mut own) = (Vec::new(), Vec::new(), Vec::new());
    let mut sizes = (0, 0, 0, 0, 0);
    let mut peak_rss = String::new();
    for round in 0..spec.rounds {
        println!("round {}/{}…", round + 1, spec.rounds);
        let j = runtime.block_on(pull(&http, &format!("{base}/v1/export?format=jsonl")))?;
        let c = runtime.block_on(pull(&http, &format!("{base}/v1/export?format=csv")))?;
        peak_rss = gateway.memory()?.to_string();
        let b = baseline(&catalogue)?;
        sizes = (
            j.lines,
            j.bytes,
            c.lines.saturating_sub(1),
            c.bytes,
            b.lines,
        );
        jsonl.push(j.took);
        csv.push(c.took);
        own.push(b.took);
    }

    // Search pages by depth: the whole catalogue by date, 100 a page, cursor after cursor.
    let mut depth: Vec<(usize, Duration)> = Vec::new();
    runtime.block_on(async {
        let mut url = format!("{base}/v1/search?sort=date&limit=100");
        for page in 0..spec.pages {
            let start = Instant::now();
            let body: serde_json::Value = http.get(&url).send().await?.json().await?;
            depth.push((page, start.elapsed()));
            match body["next_cursor"].as_str() {
                Some(c) => url = format!("{base}/v1/search?sort=date&limit=100&cursor={c}"),
                None => break,
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    gateway.stop();

    let rate = |lines: u64, d: Duration| lines as f64 / d.as_secs_f64().max(1e-9);
    let (jl, jb, cl, cb, bl) = sizes;
    let (mj, mc, mb) = (median(jsonl), median(csv), median(own));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let bucket = |from: usize, to: usize| {
        median(
            depth
                .iter()
                .filter(|(p, _)| *p >= from && *p < to)
                .map(|(_, d)| *d)
                .collect(),
        )
    };
    let walked = depth.len();
    let report = [
        format!(
            "rix bench export: {} records from {} nodes; {} rounds, medians",
            spec.records, spec.nodes, spec.rounds
        ),
        format!("fill: {fill_note}"),
        format!("gateway memory after the exports: {peak_rss}"),
        String::new(),
        "| pull | lines | MB | median s | records/s | µs per record | × the catalogue's own read |"
            .into(),
        "|---|---|---|---|---|---|---|".into(),
        format!(
            "| export JSON Lines | {jl} | {:.1} | {:.2} | {:.0} | {:.1} | {:.1} |",
            jb as f64 / 1e6,
            mj.as_secs_f64(),
            rate(jl, mj),
            mj.as_secs_f64() * 1e6 / jl.max(1) as f64,
            mj.as_secs_f64() / mb.as_secs_f64().max(1e-9)
        ),
        format!(
            "| export CSV | {cl} | {:.1} | {:.2} | {:.0} | {:.1} | {:.1} |",
            cb as f64 / 1e6,
            mc.as_secs_f64(),
            rate(cl, mc),
            mc.as_secs_f64() * 1e6 / cl.max(1) as f64,
            mc.as_secs_f64() / mb.as_secs_f64().max(1e-9)
        ),
        format!(
            "| SQLite: current signed entries in key order | {bl} | — | {:.2} | {:.0} | {:.1} | 1 |",
            mb.as_secs_f64(),
            rate(bl, mb),
            mb.as_secs_f64() * 1e6 / bl.max(1) as f64,
        ),
        String::new(),
        format!(
            "search pages of 100 by date, walked by cursor ({walked} pages): median ms at pages 1–10 {:.2}, \
             {}–{} {:.2}, last ten {:.2}",
            ms(bucket(0, 10)),
            walked / 2,
            walked / 2 + 10,
            ms(bucket(walked / 2, walked / 2 + 10)),
            ms(bucket(walked.saturating_sub(10), walked)),
        ),
    ];
    println!();
    for line in &report {
        println!("{line}");
    }
    Ok(())
}
