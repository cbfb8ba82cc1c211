//! `rix bench`: throughput measured on the real thing, end to end, for ops/BENCHMARKS.md.
//!
//! `rix bench node` starts a node in this process (SQLite in a temporary directory, or the
//! PostgreSQL database given), optionally publishing to RabbitMQ, and drives it over HTTP the
//! way institutions and reviewers do: batch submits of generated records, then one approve
//! request per record from several concurrent reviewers. The clock stops when the node
//! reports every approval published (sealed, signed and — with a broker — confirmed).
//!
//! `rix bench ingest` pre-signs batches of generated achievements, then times the gateway's
//! ingest pipeline taking them in: directly, with no transport, or with `--amqp` from a warm
//! RabbitMQ queue through the gateway's own consumer.
//!
//! What it may not touch: the code it measures. It calls the node and the gateway as their
//! libraries export them — no copy of a stage, no shortcut past a check — so a figure in
//! BENCHMARKS.md is what production does; its own databases are scratch ones, in a temporary
//! directory or the PostgreSQL database given (emptied first).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rix_node::config::{BatchConfig, Config, Role, TokenConfig};
use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_schema::signing::SigningKey;
use serde_json::Value;

pub(crate) const ADMIN: &str = "bench-admin-token-00000001";

/// What `rix bench node` measures.
#[derive(Clone)]
pub struct NodeBench {
    /// Records to register and approve.
    pub records: u64,
    /// Concurrent approve requests.
    pub concurrency: usize,
    /// Records per batch submit.
    pub submit_batch: usize,
    /// Approve this many records per request (1: one approve request per record).
    pub approve_batch: usize,
    /// Publish to this broker (else the feed is the transport).
    pub amqp: Option<String>,
    /// Use this PostgreSQL database (else SQLite).
    pub postgres: Option<String>,
    /// Node batch size.
    pub batch_max_entries: usize,
}

/// Measured phases, seconds.
pub struct NodeBenchResult {
    /// Records approved (and so published, if publishable).
    pub records: u64,
    /// Log entries published.
    pub published: i64,
    /// Batch submit time.
    pub submit_secs: f64,
    /// From the first approve request to the last entry published.
    pub approve_to_published_secs: f64,
    /// From the first approve request to the last one answered (the rest is the log draining).
    pub approve_secs: f64,
}

async fn health(http: &reqwest::Client, url: &str) -> Result<Value> {
    Ok(http
        .get(format!("{url}/healthz"))
        .send()
        .await?
        .json()
        .await?)
}

/// A node for benchmarks, in `dir` (SQLite unless `postgres`), with one administrator token
/// ([`ADMIN`]) and nobody enrolled to read its feed.
pub(crate) async fn start_node(
    dir: &std::path::Path,
    postgres: Option<String>,
    amqp: Option<String>,
    batch_max_entries: usize,
) -> Result<rix_node::RunningNode> {
    let key_path = dir.join("bench.key.pem");
    crate::write_private(
        &key_path,
        SigningKey::generate()?.to_pkcs8_pem()?.as_bytes(),
    )?;
    let config = Config {
        node_id: "bench-530000".into(),
        name: Some("bench".into()),
        registration_issuer: "530000".into(),
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.to_owned(),
        database_url: postgres,
        db_connections: 16,
        amqp_url: amqp,
        amqp_exchange: "rix.records".into(),
        signing_key: key_path,
        batch: BatchConfig {
            max_entries: batch_max_entries,
            linger_ms: 20,
        },
        max_body_bytes: 64 * 1024 * 1024,
        tls: None,
        tokens: vec![TokenConfig {
            token: ADMIN.into(),
            role: Role::Admin,
            institution: None,
            name: Some("bench".into()),
        }],
        // Nothing pulls this node's feed.
        gateways: Vec::new(),
        idempotency_retention_days: rix_node::config::default_idempotency_retention_days(),
    };
    Ok(rix_node::start(config).await?)
}

/// Runs the node benchmark.
pub async fn node(bench: &NodeBench) -> Result<NodeBenchResult> {
    let dir = tempfile::tempdir()?;
    let node = start_node(
        dir.path(),
        bench.postgres.clone(),
        bench.amqp.clone(),
        bench.batch_max_entries,
    )
    .await?;
    let url = node.url();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(bench.concurrency * 2)
        .build()?;

    let generator = SampleGenerator::new(SampleConfig::default());
    // The generator writes records as published (with registration numbers); a submission
    // leaves those to the node.
    let docs: Vec<Value> = (0..bench.records)
        .map(|i| {
            let mut doc = serde_json::to_value(generator.achievement(i)).expect("records are JSON");
            let obj = doc.as_object_mut().expect("a record is an object");
            obj.remove("registration_no");
            obj.remove("registration_date");
            doc
        })
        .collect();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(docs.len());
    for chunk in docs.chunks(bench.submit_batch.max(1)) {
        let reply: Value = http
            .post(format!("{url}/v1/achievements/batch"))
            .bearer_auth(ADMIN)
            .json(chunk)
            .send()
            .await?
            .json()
            .await?;
        let items = reply["items"].as_array().with_context(|| {
            let text = reply.to_string();
            format!("batch submit refused: {}", &text[..text.len().min(600)])
        })?;
        ids.extend(
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned)),
        );
    }
    let submit_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let chunks: Vec<Vec<String>> = ids
        .chunks(bench.approve_batch.max(1))
        .map(<[String]>::to_vec)
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(chunks));
    let mut workers = Vec::new();
    for _ in 0..bench.concurrency {
        let queue = queue.clone();
        let http = http.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let Some(chunk) = queue.lock().expect("queue lock").pop() else {
                    return Ok::<(), anyhow::Error>(());
                };
                let request = if let [id] = chunk.as_slice() {
                    http.post(format!("{url}/v1/achievements/{id}/approve"))
                } else {
                    http.post(format!("{url}/v1/achievements/approve"))
                        .json(&serde_json::json!({ "ids": chunk }))
                };
                let response = request.bearer_auth(ADMIN).send().await?;
                let status = response.status();
                if !status.is_success() {
                    let body = response.text().await.unwrap_or_default();
                    bail!(
                        "approving {} records answered {status}: {body}",
                        chunk.len()
                    );
                }
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let approve_secs = started.elapsed().as_secs_f64();
    let published = loop {
        let h = health(&http, &url).await?;
        if h["log"]["outbox_depth"] == 0 {
            break h["log"]["last_seq"].as_i64().unwrap_or(0);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let approve_to_published_secs = started.elapsed().as_secs_f64();
    node.stop().await;
    Ok(NodeBenchResult {
        records: bench.records,
        published,
        submit_secs,
        approve_to_published_secs,
        approve_secs,
    })
}

/// What `rix bench ingest` measures.
pub struct IngestBench {
    /// Records (spread over batches).
    pub records: u64,
    /// Entries per batch.
    pub batch_entries: usize,
    /// Catalogue in PostgreSQL (else SQLite in a temporary directory).
    pub postgres: Option<String>,
}

/// `records` generated achievements signed into a chain of batches by a fresh key.
fn signed_batches(
    node_id: &str,
    records: u64,
    batch_entries: usize,
) -> Result<(SigningKey, Vec<Vec<u8>>)> {
    use rix_schema::batch::{Entry, GENESIS_PREV_HASH, SignedBatch};
    let key = SigningKey::generate()?;
    let generator = SampleGenerator::new(SampleConfig::default());
    let mut batches = Vec::new();
    let mut prev = GENESIS_PREV_HASH;
    let mut seq = 1u64;
    let ids: Vec<u64> = (0..records).collect();
    for (n, chunk) in ids.chunks(batch_entries.max(1)).enumerate() {
        let entries: Vec<Entry> = chunk
            .iter()
            .map(|i| {
                let e = Entry::upsert(
                    seq,
                    rix_schema::RecordKind::Achievement,
                    format!("ach-{i:07}"),
                    1,
                    serde_json::to_value(generator.achievement(*i)).expect("JSON"),
                );
                seq += 1;
                e
            })
            .collect();
        let b = SignedBatch::sign(
            node_id,
            n as u64 + 1,
            prev,
            entries,
            time::OffsetDateTime::now_utc(),
            &key,
        )?;
        prev = b.hash();
        batches.push(b.to_bytes());
    }
    Ok((key, batches))
}

fn bench_catalogue(
    dir: &std::path::Path,
    postgres: &Option<String>,
) -> Result<rix_gateway::db::Db> {
    let url = postgres
        .clone()
        .unwrap_or_else(|| dir.join("catalogue.db").to_string_lossy().into_owned());
    Ok(rix_gateway::db::Db::open(&url, 4)?)
}

/// Pre-signs `records` generated achievements into batches, then times the gateway pipeline
/// (verify, chain, validate, secrecy gate, apply) taking them in, no transport.
pub fn ingest_pipeline(bench: &IngestBench) -> Result<(u64, f64)> {
    let dir = tempfile::tempdir()?;
    let db = bench_catalogue(dir.path(), &bench.postgres)?;
    let (key, batches) = signed_batches("prov-530000", bench.records, bench.batch_entries)?;
    rix_gateway::trust::add(
        &db,
        "prov-530000",
        None,
        None,
        key.verifying_key(),
        None,
        None,
    )?;
    let ingest = catalogue_ingest(&db)?;
    let started = Instant::now();
    let taken = apply_all(&ingest, batches, |_| {})?;
    Ok((taken, started.elapsed().as_secs_f64()))
}

/// The gateway's ingest over `db`, with metrics nobody scrapes.
pub(crate) fn catalogue_ingest(db: &rix_gateway::db::Db) -> Result<rix_gateway::ingest::Ingest> {
    use rix_gateway::ingest::{Ingest, IngestMetrics};
    use rix_schema::batch::BatchLimits;
    Ok(Ingest::new(
        db.clone(),
        rix_gateway::trust::TrustStore::new(db.clone())?,
        BatchLimits::default(),
        IngestMetrics::new(&prometheus::Registry::new()),
    ))
}

/// Takes fresh signed batches in through `ingest` in two stages on two cores: `prepare`
/// (verify, validate, secrecy gate) of the next batches on another thread overlaps `commit`
/// (chain check, apply) of those prepared before, together, as the feed puller commits them.
/// (The RabbitMQ consumer commits one batch at a time: grouping measured no gain from a warm
/// queue, where the broker shares the cores.) `committed` hears the running total of entries
/// taken (applied or quarantined). A duplicate is an error: every batch is new here.
pub(crate) fn apply_all(
    ingest: &rix_gateway::ingest::Ingest,
    batches: impl IntoIterator<Item = Vec<u8>, IntoIter: Send> + Send + 'static,
    mut committed: impl FnMut(u64),
) -> Result<u64> {
    use rix_gateway::ingest::{Outcome, Transport};
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let preparer = {
        let ingest = ingest.clone();
        std::thread::spawn(move || {
            for b in batches {
                if tx.send(ingest.prepare(&b, Transport::Amqp)).is_err() {
                    return;
                }
            }
        })
    };
    let mut taken = 0u64;
    while let Ok(first) = rx.recv() {
        // What is prepared already commits together, as the feed puller does.
        let mut group = vec![first?];
        while group.len() < rix_gateway::pull::PIPELINE
            && let Ok(next) = rx.try_recv()
        {
            group.push(next?);
        }
        for outcome in ingest.commit_group(group) {
            match outcome? {
                Outcome::Applied {
                    applied,
                    quarantined,
                    ..
                } => taken += (applied + quarantined) as u64,
                Outcome::Duplicate { .. } => bail!("a fresh batch was seen as a duplicate"),
            }
        }
        committed(taken);
    }
    preparer
        .join()
        .map_err(|_| anyhow::anyhow!("the preparing thread panicked"))?;
    Ok(taken)
}

/// Publishes pre-signed batches onto a queue while no consumer runs, then starts the gateway's
/// consumer and times it until the catalogue holds every entry: ingest from a warm queue.
pub async fn ingest_from_queue(bench: &IngestBench, amqp: &str) -> Result<(u64, f64)> {
    use lapin::options::BasicPublishOptions;
    use rix_gateway::consume::{Consumer, ConsumerConfig};
    let dir = tempfile::tempdir()?;
    let db = bench_catalogue(dir.path(), &bench.postgres)?;
    let node_id = format!("bench-{}", std::process::id());
    let (key, batches) = signed_batches(&node_id, bench.records, bench.batch_entries)?;
    rix_gateway::trust::add(&db, &node_id, None, None, key.verifying_key(), None, None)?;
    let ingest = catalogue_ingest(&db)?;
    let mut config = ConsumerConfig::new(amqp);
    config.queue = format!("rix.bench.{node_id}");
    config.binding_key = format!("*.{node_id}");
    config.dead_letter_queue = format!("rix.bench.{node_id}.dead");

    // 1. Let a consumer declare the queue and its bindings, then stop it.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let first = Consumer::new(
        config.clone(),
        ingest.clone(),
        None,
        &prometheus::Registry::new(),
    );
    let task = tokio::spawn(first.run(stopped));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(true)?;
    task.await?;

    // 2. Warm the queue.
    let connection =
        lapin::Connection::connect(amqp, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    for b in &batches {
        channel
            .basic_publish(
                config.exchange.as_str().into(),
                format!("achievement.{node_id}").as_str().into(),
                BasicPublishOptions::default(),
                b,
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
    }
    channel.wait_for_confirms().await?;

    // 3. Consume and time.
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consumer = Consumer::new(config.clone(), ingest, None, &prometheus::Registry::new());
    let task = tokio::spawn(consumer.run(stopped));
    let total = bench.records as usize;
    loop {
        let db = db.clone();
        // Done when the node's chain position has passed the last entry (classified entries
        // are quarantined, not changes, so the change count would never reach the total).
        let node = node_id.clone();
        let done = tokio::task::spawn_blocking(move || {
            rix_gateway::ingest::chain_position(&db, &node).map(|p| p.next_seq > total as u64)
        })
        .await??;
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.send(true)?;
    task.await?;
    let _ = channel
        .queue_delete(config.queue.as_str().into(), Default::default())
        .await;
    let _ = channel
        .queue_delete(config.dead_letter_queue.as_str().into(), Default::default())
        .await;
    Ok((bench.records, secs))
}
