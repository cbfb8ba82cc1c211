//! `rix bench e2e --backfill`: an empty gateway catching up with a federation that already holds
//! its records — a new national gateway, a rebuild after a lost catalogue, a replica started
//! from nothing. The nodes (up to 40 processes: the 31 provinces and the central departments)
//! are filled first, through their HTTP APIs, with no gateway running; then a gateway with an
//! empty catalogue is started, trusts them all, and pulls every feed. The harness times, from the
//! gateway's start, when the catalogue holds every published record (it tails `changes`, as
//! `rix bench e2e` does) and when the search index has committed the last change.
//!
//! Filling a million records takes minutes while the pull is what is measured, so a filled
//! federation is kept in the data dir (`backfill-nodes.json` names its nodes and credentials)
//! and reused by the next run of the same size: each run starts a new, empty gateway (and
//! empties its PostgreSQL database) against the same nodes. A run of another size fills anew.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rix_schema::signing::SigningKey;
use serde_json::{Value, json};

use crate::bench_e2e::{
    E2eBench, NodeSetup, Service, StopOnDrop, harness_client, indexed_change_id, key_path,
    new_node, node_setup, profile_of, register_all, start_nodes, tail_changes, trust,
    write_gateway, write_node_config,
};

/// The PostgreSQL database of the bench's own (emptied before each run).
const PG_DATABASE: &str = "rix_bench_backfill";

/// The filled federation's description, in the data dir.
const MANIFEST: &str = "backfill-nodes.json";

/// The nodes and what they hold.
struct Federation {
    setups: Vec<NodeSetup>,
    /// Records that may leave their nodes (the gateway must end with exactly these).
    published: u64,
    /// Records kept at their nodes (classified).
    classified: u64,
}

/// The federation a previous run filled in `dir`, if it has the size asked for.
fn filled(dir: &Path, bench: &E2eBench) -> Result<Option<Federation>> {
    let Ok(text) = std::fs::read_to_string(dir.join(MANIFEST)) else {
        return Ok(None);
    };
    let manifest: Value = serde_json::from_str(&text).context("reading the backfill manifest")?;
    if manifest["nodes"].as_u64() != Some(bench.nodes as u64)
        || manifest["records"].as_u64() != Some(bench.records)
    {
        return Ok(None);
    }
    let tokens = manifest["tokens"]
        .as_array()
        .context("the backfill manifest has no tokens")?;
    let mut setups = Vec::new();
    for (n, pair) in tokens.iter().enumerate() {
        let path = key_path(dir, profile_of(n).node_id());
        let key = SigningKey::from_pkcs8_pem(&std::fs::read(&path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        setups.push(node_setup(
            dir,
            n,
            key,
            pair[0].as_str().context("an admin token")?.to_owned(),
            pair[1].as_str().context("a feed token")?.to_owned(),
        ));
    }
    Ok(Some(Federation {
        setups,
        published: manifest["published"].as_u64().context("published")?,
        classified: manifest["classified"].as_u64().context("classified")?,
    }))
}

/// Runs `rix bench e2e --backfill` and prints its report.
pub async fn run(bench: &E2eBench) -> Result<()> {
    std::fs::create_dir_all(&bench.dir)?;
    let dir = std::fs::canonicalize(&bench.dir)?;
    let reused = filled(&dir, bench)?;
    let reusing = reused.is_some();
    let mut federation = match reused {
        Some(f) => {
            // The configs and feed tokens are written anew (new ports, a new gateway); the
            // nodes' databases and keys stay.
            for entry in std::fs::read_dir(&dir)?.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".toml") || name.starts_with("feed-token-") {
                    std::fs::remove_file(entry.path())?;
                }
            }
            f
        }
        None => {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("emptying the data dir {}", dir.display()))?;
            std::fs::create_dir_all(&dir)?;
            Federation {
                setups: (0..bench.nodes)
                    .map(|n| new_node(&dir, n))
                    .collect::<Result<_>>()?,
                published: 0,
                classified: 0,
            }
        }
    };
    for node in &mut federation.setups {
        write_node_config(&dir, node, bench, "")?;
    }
    // Every run's gateway starts from nothing.
    let gateway_dir = dir.join("gateway");
    if gateway_dir.exists() {
        std::fs::remove_dir_all(&gateway_dir)?;
    }
    let database_url = match &bench.postgres {
        Some(server) => {
            let url = crate::bench_import::bench_database(server, PG_DATABASE)?;
            crate::bench_import::empty_postgres(&url)?;
            Some(url)
        }
        None => None,
    };
    let catalogue_url = database_url.clone().unwrap_or_else(|| {
        gateway_dir
            .join("catalogue.db")
            .to_string_lossy()
            .into_owned()
    });

    let http = harness_client()?;
    let mut nodes = start_nodes(&dir, &federation.setups, &http).await?;
    let fill = if reusing {
        None
    } else {
        let started = Instant::now();
        fill_nodes(bench, &http, &nodes, &mut federation).await?;
        let secs = started.elapsed().as_secs_f64();
        let manifest = json!({
            "nodes": bench.nodes,
            "records": bench.records,
            "published": federation.published,
            "classified": federation.classified,
            "tokens": federation.setups.iter()
                .map(|s| [s.admin_token.clone(), s.feed_token.clone()])
                .collect::<Vec<_>>(),
        });
        crate::write_private(&dir.join(MANIFEST), manifest.to_string().as_bytes())?;
        Some(secs)
    };

    let (gateway_config, gateway_port) = write_gateway(&dir, bench, database_url.as_deref(), "")?;
    for node in &federation.setups {
        trust(&gateway_config, &dir, node)?;
    }
    let nodes_before: f64 = nodes.iter().map(|n| n.usage().1).sum();
    let t0 = Instant::now();
    let mut gateway = Service::start(
        "the gateway",
        &["gateway", "serve"],
        &gateway_config,
        gateway_port,
        dir.join("gateway.log"),
        &http,
    )
    .await?;
    let outcome = follow(&http, &gateway, &catalogue_url, federation.published, t0).await;
    let nodes_cpu = nodes.iter().map(|n| n.usage().1).sum::<f64>() - nodes_before;
    let gateway_usage = gateway.usage();
    gateway.stop();
    for node in &mut nodes {
        node.stop();
    }
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("gateway log (last lines):\n{}", gateway.log_tail());
            return Err(e);
        }
    };
    let catalogue_bytes = match &database_url {
        Some(url) => postgres_size(url)?,
        None => files_size(&gateway_dir, |name| name.starts_with("catalogue.db")),
    };
    let index_bytes = files_size(&gateway_dir.join("search"), |_| true);

    let store = if bench.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "\n## rix bench e2e --backfill: {} nodes, {} records, an empty gateway on {store} pulling every feed\n",
        bench.nodes, bench.records
    );
    match fill {
        Some(secs) => println!(
            "The nodes were filled in this run: {} records in {secs:.1} s ({:.0} records/s \
             registered and approved across the nodes).\n",
            bench.records,
            bench.records as f64 / secs
        ),
        None => println!("The nodes filled by an earlier run were reused.\n"),
    }
    let per_s = |secs: f64| federation.published as f64 / secs.max(1e-9);
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| records published (classified, kept at their nodes) | {} ({}) |",
        federation.published, federation.classified
    );
    println!(
        "| gateway start → every record in the catalogue | {:.1} s = {:.0} records/s |",
        outcome.in_catalogue,
        per_s(outcome.in_catalogue)
    );
    println!(
        "| gateway start → the last record searchable | **{:.1} s = {:.0} records/s** |",
        outcome.searchable,
        per_s(outcome.searchable)
    );
    println!(
        "| gateway peak RSS, CPU | {:.0} MiB, {:.1} CPU s |",
        gateway_usage.0, gateway_usage.1
    );
    println!("| nodes' CPU while serving their feeds | {nodes_cpu:.1} CPU s |");
    println!(
        "| catalogue on disk | {:.2} GB ({:.0} bytes per published record) |",
        catalogue_bytes as f64 / 1e9,
        catalogue_bytes as f64 / federation.published.max(1) as f64
    );
    println!(
        "| search index on disk | {:.2} GB ({:.0} bytes per published record) |",
        index_bytes as f64 / 1e9,
        index_bytes as f64 / federation.published.max(1) as f64
    );
    Ok(())
}

/// Registers and approves `bench.records` across the nodes, flat out.
async fn fill_nodes(
    bench: &E2eBench,
    http: &reqwest::Client,
    nodes: &[Service],
    federation: &mut Federation,
) -> Result<()> {
    let mut flat_out = bench.clone();
    flat_out.rate = 0;
    let approved = register_all(&flat_out, http, nodes, &federation.setups, Instant::now()).await?;
    for a in approved {
        federation.published += a.published.len() as u64;
        federation.classified += a.classified;
    }
    Ok(())
}

/// When the catalogue held every published record, and when the index had committed it all
/// (seconds since the gateway was started).
struct Backfilled {
    in_catalogue: f64,
    searchable: f64,
}

async fn follow(
    http: &reqwest::Client,
    gateway: &Service,
    catalogue_url: &str,
    published: u64,
    t0: Instant,
) -> Result<Backfilled> {
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_return = StopOnDrop(stop.clone());
    let (records_seen, head) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicI64::new(0)));
    let tail = tail_changes(catalogue_url, t0, &stop, &records_seen, &head);
    let mut in_catalogue = None;
    let mut last_progress = (Instant::now(), -1i64, 0u64);
    let mut last_report = Instant::now();
    let searchable = loop {
        let indexed = indexed_change_id(http, &gateway.url).await.unwrap_or(-1);
        let applied = records_seen.load(Ordering::Relaxed);
        let now = t0.elapsed().as_secs_f64();
        if applied >= published && in_catalogue.is_none() {
            in_catalogue = Some(now);
        }
        if applied >= published && indexed >= head.load(Ordering::Relaxed) {
            break now;
        }
        if indexed > last_progress.1 || applied > last_progress.2 {
            last_progress = (Instant::now(), indexed, applied);
        } else if last_progress.0.elapsed() > Duration::from_secs(60) {
            bail!(
                "stalled: {applied} of {published} published records in the catalogue, the index \
                 at change {indexed}, nothing moved for 60 s"
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  backfill: {now:>5.0} s, {applied} of {published} records in the catalogue, \
                 the index at change {indexed}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let changes = tail.await??;
    if changes.len() as u64 != published {
        bail!(
            "the catalogue holds {} source records where the nodes published {published}",
            changes.len()
        );
    }
    Ok(Backfilled {
        in_catalogue: in_catalogue.unwrap_or(searchable),
        searchable,
    })
}

/// Bytes of the files directly under `dir` whose names `take` accepts.
fn files_size(dir: &Path, take: impl Fn(&str) -> bool) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| take(&e.file_name().to_string_lossy()))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// The database's size on disk (`pg_database_size`: tables, indexes, TOAST).
fn postgres_size(url: &str) -> Result<u64> {
    use diesel::{Connection, QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Size {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        bytes: i64,
    }
    let mut conn = diesel::PgConnection::establish(url)
        .with_context(|| format!("connecting to {}", rix_node::db::redact_url(url)))?;
    let size: Size = diesel::sql_query("SELECT pg_database_size(current_database()) AS bytes")
        .get_result(&mut conn)?;
    Ok(size.bytes as u64)
}
