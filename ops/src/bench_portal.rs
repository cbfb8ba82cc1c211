//! `rix bench portal`: the portal's bar of DESIGN.md §7 — a search page costs at most twice the
//! JSON API's latency, and weighs at most 100 KB before compression — measured on the search
//! bench's catalogue ([`crate::bench_search`], filled or reused in the same data dir), through
//! a real `rix gateway serve` process.
//!
//! The same questions as the search bench (a keyword and two filters) are asked of
//! `GET /v1/search?…` (JSON), of `GET /?…` (the whole HTML page) and of `GET /?…` with
//! `HX-Request: true` (the results region htmx swaps in), one request at a time over HTTP
//! keep-alive, interleaved question by question with the order rotated, so that a busy moment
//! of this shared machine falls on all three alike. Each latency is the time to the last byte
//! of the body (no client-side parsing on either side). Pages that answer other than 200 stop
//! the bench.
//!
//! What it may not touch: the gateway. It measures through HTTP only, as a browser or a script
//! would.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench_search::{
    GatewayChild, Latencies, Question, SearchBench, fill_or_reuse, reindex, warm_page_cache,
    write_gateway_config,
};

/// What `rix bench portal` measures.
pub struct PortalBench {
    /// Records in the catalogue (as `rix bench search` fills it).
    pub records: u64,
    /// Publishing nodes.
    pub nodes: usize,
    /// The search bench's data dir (its catalogue and index are reused when there).
    pub dir: PathBuf,
    /// Timed requests per endpoint.
    pub queries: usize,
}

/// The portal's weight bar: a page before compression, assets excluded.
const PAGE_BAR_BYTES: usize = 100 * 1024;

/// One endpoint's timings and body sizes.
struct Endpoint {
    name: &'static str,
    latencies: Vec<(Duration, bool)>,
    bytes: Vec<usize>,
}

impl Endpoint {
    fn new(name: &'static str) -> Endpoint {
        Endpoint {
            name,
            latencies: Vec::new(),
            bytes: Vec::new(),
        }
    }

    fn quantile(&self, q: f64) -> Duration {
        Latencies(self.latencies.clone()).quantile(q, None)
    }

    fn bytes_quantile(&self, q: f64) -> usize {
        let mut v = self.bytes.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or_default()
    }

    fn line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            self.name,
            self.latencies.len(),
            ms(self.quantile(0.5)),
            ms(self.quantile(0.95)),
            ms(self.quantile(0.99)),
            ms(self.quantile(1.0)),
            self.bytes_quantile(0.5),
            self.bytes_quantile(1.0),
        )
    }
}

/// The portal's path of a question: the same parameters as the API's.
fn page_path(q: &Question) -> String {
    q.api_path().replacen("/v1/search?", "/?", 1)
}

async fn fetch(http: &reqwest::Client, url: &str, fragment: bool) -> Result<(Duration, usize)> {
    let started = Instant::now();
    let mut request = http.get(url);
    if fragment {
        request = request.header("HX-Request", "true");
    }
    let r = request.send().await?;
    if !r.status().is_success() {
        bail!("{url} answered {}", r.status());
    }
    let body = r.bytes().await?;
    Ok((started.elapsed(), body.len()))
}

/// Runs the bench and prints a Markdown report.
pub fn run(spec: &PortalBench) -> Result<()> {
    let search = SearchBench {
        records: spec.records,
        nodes: spec.nodes,
        dir: spec.dir.clone(),
        postgres: None,
        queries: spec.queries,
    };
    let (fill_note, filled) = fill_or_reuse(&search)?;
    println!("fill: {fill_note}");
    let (config, port) = write_gateway_config(&spec.dir, None)?;
    let index_dir = spec.dir.join("search");
    // The search bench's index is reused when it is there and the catalogue was not refilled
    // (the gateway catches it up from the change stream at start); otherwise built afresh.
    let index_note = if filled || !index_dir.exists() {
        let _ = std::fs::remove_dir_all(&index_dir);
        warm_page_cache(&spec.dir.join("catalogue.db"))?;
        let r = reindex(&config)?;
        println!("index: {r}");
        format!("built: {r}")
    } else {
        "reused".to_owned()
    };

    let runtime = tokio::runtime::Runtime::new()?;
    println!("gateway: starting `rix gateway serve`, then timed requests…");
    let mut gateway = GatewayChild::start(&config, port)?;
    let http = reqwest::Client::new();
    runtime.block_on(gateway.wait_ready(&http))?;
    let base = gateway.url.clone();
    let questions = Question::all();
    let mut endpoints = [
        Endpoint::new("JSON API `GET /v1/search?…`"),
        Endpoint::new("portal page `GET /?…`"),
        Endpoint::new("portal results region `GET /?…` + `HX-Request`"),
    ];
    runtime.block_on(async {
        // Warm the connection, the page cache and the templates once over every question.
        for q in &questions {
            fetch(&http, &format!("{base}{}", q.api_path()), false).await?;
            fetch(&http, &format!("{base}{}", page_path(q)), false).await?;
            fetch(&http, &format!("{base}{}", page_path(q)), true).await?;
        }
        for (i, q) in questions.iter().cycle().take(spec.queries).enumerate() {
            let two = q.term.chars().count() == 2;
            for k in 0..3 {
                let which = (i + k) % 3;
                let (url, fragment) = match which {
                    0 => (format!("{base}{}", q.api_path()), false),
                    1 => (format!("{base}{}", page_path(q)), false),
                    _ => (format!("{base}{}", page_path(q)), true),
                };
                let (took, bytes) = fetch(&http, &url, fragment).await?;
                endpoints[which].latencies.push((took, two));
                endpoints[which].bytes.push(bytes);
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let rss = gateway.memory().context("reading the gateway's memory")?;
    gateway.stop();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let [api, page, region] = &endpoints;
    let ratio = |e: &Endpoint, q: f64| ms(e.quantile(q)) / ms(api.quantile(q)).max(1e-9);
    let heaviest = page.bytes_quantile(1.0);
    let report = [
        format!(
            "rix bench portal: {} records from {} nodes; {} requests per endpoint, interleaved",
            spec.records, spec.nodes, spec.queries
        ),
        format!("fill: {fill_note}"),
        format!("index: {index_note}"),
        format!("gateway memory after the requests: {rss}"),
        String::new(),
        "| endpoint | requests | p50 ms | p95 ms | p99 ms | max ms | median bytes | max bytes |"
            .into(),
        "|---|---|---|---|---|---|---|---|".into(),
        api.line(),
        page.line(),
        region.line(),
        String::new(),
        format!(
            "page / API: p50 {:.2}×, p99 {:.2}× (bar ≤ 2×: {}); results region / API: p50 {:.2}×, p99 {:.2}×",
            ratio(page, 0.5),
            ratio(page, 0.99),
            if ratio(page, 0.5) <= 2.0 {
                "met"
            } else {
                "NOT met"
            },
            ratio(region, 0.5),
            ratio(region, 0.99),
        ),
        format!(
            "heaviest page: {heaviest} bytes before compression (bar ≤ {PAGE_BAR_BYTES}: {})",
            if heaviest <= PAGE_BAR_BYTES {
                "met"
            } else {
                "NOT met"
            }
        ),
    ];
    println!();
    for line in &report {
        println!("{line}");
    }
    Ok(())
}
