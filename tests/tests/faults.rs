//! Faults, each counted exactly once the federation has settled (every node's log sealed and
//! published, the gateway's chain position at every node's head, its queue empty with nothing
//! unacknowledged, its index at the catalogue's last change) and has stayed so for a quiet
//! window: every record once, at its latest version; exactly one change and one record version
//! per entry the nodes logged, with the entry's canonical bytes and disclosures as the node
//! signed them; the gateway's batches the nodes' own (hash, header, signature); every batch the
//! broker delivered — re-sends after a crash or a reconnect included — byte-identical to the
//! node's; search finding every visible record exactly once; nothing refused or quarantined.
//!
//! - the gateway is down while one node publishes to the broker and another has lost its
//!   broker; a node is offline while the gateway is back: everything catches up (gateway on
//!   PostgreSQL);
//! - the gateway's SQLite catalogue and search index are wiped and rebuilt from the nodes'
//!   signed feeds alone: the same unified entries, sources, links and counts;
//! - RabbitMQ restarted while the gateway consumes a stream of approvals;
//! - a node SIGKILLed mid-publish and restarted on the same data dir, while the gateway
//!   consumes its queue and polls its feed;
//! - the gateway SIGKILLed while it applies a backlog of 2,000 entries that waited on its
//!   queue (on PostgreSQL), and again while its search index commits (on SQLite).
//!
//! The broker restart stops RabbitMQ for everyone: it runs alone (the other scenarios of this
//! file wait for it, and it for them), and keeps the outage to a few seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_tests::tokens::{self, ADMIN};
use rix_tests::*;
use serde_json::{Value, json};
use tokio::sync::RwLock;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

/// Readers: scenarios that only need the broker up. Writer: the one that restarts it.
static BROKER: RwLock<()> = RwLock::const_new(());

fn node_spec<'a>(node_id: &'a str, issuer: &'a str) -> NodeSpec<'a> {
    NodeSpec::new(node_id, issuer)
        .with_broker(amqp_url())
        .with_batches(20, 10)
}

/// What the catalogue must hold: per `(node, id)` the latest version, `None` once withdrawn;
/// and how many entries each node logged.
#[derive(Default)]
struct Expected {
    records: BTreeMap<(String, String), Option<i64>>,
    logged: BTreeMap<String, i64>,
}

impl Expected {
    fn approved(&mut self, node: &NodeProcess, ids: &[String]) {
        for id in ids {
            self.records
                .insert((node.node_id.clone(), id.clone()), Some(1));
        }
        *self.logged.entry(node.node_id.clone()).or_default() += ids.len() as i64;
    }

    fn revised(&mut self, node: &NodeProcess, id: &str, version: i64) {
        self.records
            .insert((node.node_id.clone(), id.to_owned()), Some(version));
        *self.logged.entry(node.node_id.clone()).or_default() += 1;
    }

    fn withdrawn(&mut self, node: &NodeProcess, id: &str) {
        self.records
            .insert((node.node_id.clone(), id.to_owned()), None);
        *self.logged.entry(node.node_id.clone()).or_default() += 1;
    }

    fn changes(&self) -> usize {
        self.logged.values().sum::<i64>() as usize
    }

    fn visible(&self) -> usize {
        self.records.values().filter(|v| v.is_some()).count()
    }
}

/// Revises `id` at `node` (a new title, as the admin) from version `from`, and approves it.
async fn revise(http: &reqwest::Client, node: &NodeProcess, id: &str, from: i64) {
    let current = get_record(http, &node.url, "achievements", id, ADMIN).await;
    let mut record = current["record"].clone();
    record["title"] = json!(format!("{}（修订版）", record["title"].as_str().unwrap()));
    put_revision(http, &node.url, "achievements", id, from, &record).await;
    approve(http, &node.url, "achievements", id).await;
}

/// Withdraws the achievement `id` at `node`.
async fn withdraw(http: &reqwest::Client, node: &NodeProcess, id: &str) {
    rix_tests::withdraw(http, &node.url, "achievements", id).await;
}

/// Settles the federation (see [`settle`]) on the nodes' signed logs `logs` — one per node
/// `expected` knows — then checks that the catalogue is exactly `expected` and exactly the
/// logs: one change and one record version per logged entry (canonical bytes and disclosures
/// as signed, see [`assert_catalogue_holds`]), every record at its latest version, every
/// withdrawn one gone, search finding exactly the visible records, each once; nothing refused
/// or quarantined. Returns what the settled gateway showed.
async fn assert_exactly(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    expected: &Expected,
    logs: &[&NodeLog],
) -> Rest {
    let want = expected.changes();
    assert_eq!(
        logs.iter().map(|l| &l.node_id).collect::<BTreeSet<_>>(),
        expected.logged.keys().collect::<BTreeSet<_>>(),
        "a log for every node"
    );
    for log in logs {
        assert_eq!(
            log.last_seq(),
            expected.logged[&log.node_id],
            "{} logged one entry per approval, revision and withdrawal the test made",
            log.node_id
        );
    }
    let rest = settle(http, gateway, logs).await;
    assert_eq!(rest.refused, 0, "no batch of these nodes refused: {rest:?}");
    assert_eq!(rest.quarantined, 0, "no entry quarantined: {rest:?}");
    assert_eq!(
        rest.changes, want as i64,
        "one change per logged entry: {rest:?}"
    );
    assert_eq!(
        rest.versions, want as i64,
        "one version per logged entry: {rest:?}"
    );
    assert_catalogue_holds(gateway, logs);

    // The change feed as ministries read it: settled, so no read straddles a new change.
    let changes = gateway_changes(http, &gateway.url, "").await.unwrap();
    assert_eq!(changes.len(), want, "one change line per logged entry");
    // A change's sealed position (`cursor`) tells changes apart.
    let mut applied: BTreeMap<String, (String, String, i64)> = BTreeMap::new();
    for c in &changes {
        applied.insert(
            c["cursor"].as_str().unwrap().to_owned(),
            (
                c["node_id"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
                c["version"].as_i64().unwrap(),
            ),
        );
    }
    assert_eq!(applied.len(), want, "exactly one change per logged entry");
    let distinct: BTreeSet<&(String, String, i64)> = applied.values().collect();
    assert_eq!(distinct.len(), want, "no entry applied twice");
    for (node_id, logged) in &expected.logged {
        let per_node = applied.values().filter(|(n, _, _)| n == node_id).count();
        assert_eq!(per_node as i64, *logged, "changes of {node_id}");
    }
    // Every record as it is now, through the record API: all of them, or every n-th of a
    // large backlog (its content is checked above, version by version, in the catalogue).
    let stride = expected.records.len().div_ceil(50);
    let mut visible: BTreeSet<String> = BTreeSet::new();
    for ((node_id, id), version) in expected.records.iter().step_by(stride) {
        let (status, body) = get_json(http, &format!("{}/v1/records/{node_id}/{id}", gateway.url))
            .await
            .unwrap();
        match version {
            Some(v) => {
                assert_eq!(status, 200, "{node_id}/{id}: {body}");
                let source = body["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["node_id"] == node_id.as_str() && s["id"] == id.as_str())
                    .unwrap_or_else(|| panic!("{node_id}/{id} is a source: {body}"));
                assert_eq!(source["version"], *v, "{node_id}/{id}");
                visible.insert(body["unified_id"].as_str().unwrap().to_owned());
            }
            None => assert_eq!(status, 404, "withdrawn {node_id}/{id}: {body}"),
        }
    }
    // Searchable: exactly the visible records, each once (no record here is merged); the
    // index has committed the catalogue's last change, so this is no race.
    let (total, hits) = gateway_search(http, &gateway.url, "").await.unwrap();
    assert_eq!(total, expected.visible() as u64, "search total");
    assert_eq!(
        hits.len(),
        expected.visible(),
        "every visible entry found once"
    );
    let found: BTreeSet<&str> = hits
        .iter()
        .map(|h| h["unified_id"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), expected.visible(), "each entry found once");
    assert!(
        visible.iter().all(|u| found.contains(u.as_str())),
        "every visible record is found"
    );
    // The index is the catalogue: the entries search finds are exactly those it holds visible.
    let db = gateway.catalogue();
    let held: BTreeSet<String> = rix_gateway::catalogue::visible_unified_ids(
        &mut db.conn().unwrap(),
        rix_schema::RecordKind::Achievement,
    )
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(
        found,
        held.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "search finds exactly the catalogue's visible entries"
    );
    rest
}

/// Takes every batch `tap` holds (it must reach `log`'s last seq, and nothing may be left
/// after it), requires each to be byte-identical to the batch of that number in `log` and every
/// batch of `log` to be among them, deletes the tap; returns how many were re-sends.
async fn assert_tap_is_the_log(tap: QueueTap, log: &NodeLog) -> usize {
    let deliveries = tap.drain_batches_until(log.last_seq() as u64, WITHIN).await;
    assert_eq!(
        tap.depth().await,
        0,
        "{}: nothing published after its last batch",
        log.node_id
    );
    let resent = assert_deliveries_are_the_log(&deliveries, log);
    tap.delete().await;
    resent
}

/// (a) The gateway is down while Yunnan publishes to the broker (its batches wait on the
/// gateway's durable queue) and Liaoning has lost its broker (its entries wait in its outbox
/// and on its signed feed), with revisions and withdrawals among them; when the gateway is
/// back, Yunnan is offline (its queued batches still arrive); then everyone is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_down_and_node_offline_catch_up_exactly_on_postgres() {
    let _broker = BROKER.read().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let yunnan_id = unique("prov-530000");
    let liaoning_id = unique("prov-210000");
    // Every batch either node publishes, re-sends included, to compare with its feed.
    let yunnan_tap = QueueTap::bind(&yunnan_id).await;
    let liaoning_tap = QueueTap::bind(&liaoning_id).await;
    let mut yunnan = NodeProcess::start(RIX, dir.path(), node_spec(&yunnan_id, "530000"));
    let mut liaoning = NodeProcess::start(RIX, dir.path(), node_spec(&liaoning_id, "210000"));
    let mut gateway = GatewayProcess::start(
        RIX,
        dir.path(),
        Some(fresh_postgres_database()),
        Some(amqp_url()),
        &[&yunnan, &liaoning],
    );
    let yn = public_achievements("530000", 0, 30);
    let ln = public_achievements("210000", 0, 30);
    let mut expected = Expected::default();

    // Everyone up.
    let yn_ids = register_approved(&http, &yunnan.url, "achievements", yn[..8].to_vec()).await;
    expected.approved(&yunnan, &yn_ids);
    let ln_ids = register_approved(&http, &liaoning.url, "achievements", ln[..8].to_vec()).await;
    expected.approved(&liaoning, &ln_ids);
    assert_exactly(
        &http,
        &gateway,
        &expected,
        &[
            &node_log(&http, &yunnan, true).await,
            &node_log(&http, &liaoning, true).await,
        ],
    )
    .await;

    // The gateway is down (SIGKILL); Liaoning loses its broker.
    gateway.kill();
    liaoning.set_env("RIX_AMQP_URL", &unreachable_amqp_url());
    liaoning.restart();
    let ids = register_approved(&http, &yunnan.url, "achievements", yn[8..16].to_vec()).await;
    expected.approved(&yunnan, &ids);
    revise(&http, &yunnan, &yn_ids[0], 1).await;
    expected.revised(&yunnan, &yn_ids[0], 2);
    withdraw(&http, &yunnan, &yn_ids[1]).await;
    expected.withdrawn(&yunnan, &yn_ids[1]);
    let ids = register_approved(&http, &liaoning.url, "achievements", ln[8..16].to_vec()).await;
    expected.approved(&liaoning, &ids);
    revise(&http, &liaoning, &ln_ids[0], 1).await;
    expected.revised(&liaoning, &ln_ids[0], 2);
    withdraw(&http, &liaoning, &ln_ids[1]).await;
    expected.withdrawn(&liaoning, &ln_ids[1]);
    // Yunnan's batches are confirmed by the broker (they wait on the gateway's queue);
    // Liaoning's stay in its outbox, sealed.
    let yunnan_log = node_log(&http, &yunnan, true).await;
    let liaoning_log = node_log(&http, &liaoning, false).await;

    // Yunnan goes offline (a graceful stop), and the gateway comes back: Yunnan's batches
    // come off the queue, Liaoning's from its feed.
    yunnan.stop();
    gateway.restart();
    assert_exactly(&http, &gateway, &expected, &[&yunnan_log, &liaoning_log]).await;

    // Everyone back, and more of everything.
    yunnan.restart();
    liaoning.set_env("RIX_AMQP_URL", &amqp_url());
    liaoning.restart();
    let ids = register_approved(&http, &yunnan.url, "achievements", yn[16..20].to_vec()).await;
    expected.approved(&yunnan, &ids);
    let ids = register_approved(&http, &liaoning.url, "achievements", ln[16..20].to_vec()).await;
    expected.approved(&liaoning, &ids);
    withdraw(&http, &liaoning, &ln_ids[0]).await;
    expected.withdrawn(&liaoning, &ln_ids[0]);
    let yunnan_log = node_log(&http, &yunnan, true).await;
    let liaoning_log = node_log(&http, &liaoning, true).await;
    // Whatever a node re-sent after reconnecting was recognised, not applied again: the
    // counts and contents are exact however many duplicates came.
    let rest = assert_exactly(&http, &gateway, &expected, &[&yunnan_log, &liaoning_log]).await;
    let (_, health) = get_json(&http, &format!("{}/healthz", gateway.url))
        .await
        .unwrap();
    assert_eq!(health["backend"], "postgres", "{health}");
    // What the broker carried, Liaoning's batches sealed while it had no broker included,
    // is the nodes' signed log byte for byte.
    let resent = assert_tap_is_the_log(yunnan_tap, &yunnan_log).await
        + assert_tap_is_the_log(liaoning_tap, &liaoning_log).await;
    eprintln!(
        "caught up exactly; {resent} batches re-sent, {} duplicate batches recognised since \
         the gateway's restart",
        rest.duplicates
    );
}

/// An order-independent picture of the catalogue as a public reader sees it: per unified
/// entry, its kind, title and sources, and the entries it links to (each named by its
/// sources: which node's record became an entry's id depends on arrival order).
async fn catalogue_picture(http: &reqwest::Client, gateway: &GatewayProcess) -> BTreeSet<Entry> {
    let (status, jsonl) = get_text(http, &format!("{}/v1/export?format=jsonl", gateway.url))
        .await
        .unwrap();
    assert_eq!(status, 200, "{jsonl}");
    let mut details = BTreeMap::new();
    for line in jsonl.lines().filter(|l| !l.is_empty()) {
        let hit: Value = serde_json::from_str(line).unwrap();
        let unified = hit["unified_id"].as_str().unwrap().to_owned();
        let (status, detail) = get_json(http, &format!("{}/v1/entries/{unified}", gateway.url))
            .await
            .unwrap();
        assert_eq!(status, 200, "{detail}");
        details.insert(unified, detail);
    }
    let sources_of = |detail: &Value| {
        let mut sources: Vec<String> = detail["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}/{}@{}{}",
                    s["node_id"].as_str().unwrap(),
                    s["id"].as_str().unwrap(),
                    s["version"],
                    if s["withdrawn"] == true {
                        " withdrawn"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        sources.sort();
        sources.join(" + ")
    };
    let names: BTreeMap<&String, String> =
        details.iter().map(|(u, d)| (u, sources_of(d))).collect();
    details
        .values()
        .map(|d| {
            let mut links: Vec<String> = d["links"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    let id = l["unified_id"].as_str().unwrap().to_owned();
                    names
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| format!("not exported: {id}"))
                })
                .collect();
            links.sort();
            Entry {
                kind: d["kind"].as_str().unwrap().to_owned(),
                title: d["record"]["title"].as_str().unwrap().to_owned(),
                sources: sources_of(d),
                links,
            }
        })
        .collect()
}

/// One unified entry in [`catalogue_picture`].
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    kind: String,
    title: String,
    /// `node/id@version` of each source, sorted, joined with ` + `.
    sources: String,
    /// The linked entries' `sources`, sorted.
    links: Vec<String>,
}

/// (b) The gateway's SQLite catalogue and search index are lost; the operator re-adds the trust
/// entries and starts it again: the nodes' signed feeds rebuild the same catalogue — merged
/// entries with the same sources, the same links, revisions and withdrawals, the same counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_gateway_rebuilds_the_same_catalogue_from_the_signed_feeds() {
    let _broker = BROKER.read().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let most_id = unique("most");
    let yunnan_id = unique("prov-530000");
    let most = NodeProcess::start(RIX, dir.path(), node_spec(&most_id, "348"));
    let yunnan = NodeProcess::start(RIX, dir.path(), node_spec(&yunnan_id, "530000"));
    let mut gateway =
        GatewayProcess::start(RIX, dir.path(), None, Some(amqp_url()), &[&most, &yunnan]);

    // The ministry registers 3 funded projects and 6 results of them; Yunnan registers 4 of
    // the same results (merged) and 5 of its own; one result is revised, one withdrawn.
    let shared = SampleGenerator::new(SampleConfig::default());
    let projects: Vec<Value> = (0..3)
        .map(|i| as_public_submission(serde_json::to_value(shared.shared_project(i)).unwrap()))
        .collect();
    let results: Vec<Value> = (0..6)
        .map(|i| as_public_submission(serde_json::to_value(shared.shared_achievement(i)).unwrap()))
        .collect();
    let mut logged = 0;
    logged += register_approved(&http, &most.url, "projects", projects)
        .await
        .len();
    let most_results = register_approved(&http, &most.url, "achievements", results.clone()).await;
    logged += most_results.len();
    logged += register_approved(&http, &yunnan.url, "achievements", results[..4].to_vec())
        .await
        .len();
    let own = register_approved(
        &http,
        &yunnan.url,
        "achievements",
        public_achievements("530000", 0, 5),
    )
    .await;
    logged += own.len();
    revise(&http, &yunnan, &own[0], 1).await;
    withdraw(&http, &yunnan, &own[1]).await;
    withdraw(&http, &most, &most_results[5]).await;
    logged += 3;

    let visible = 3 + 6 - 1 + 5 - 1;
    let most_log = node_log(&http, &most, true).await;
    let yunnan_log = node_log(&http, &yunnan, true).await;
    assert_eq!(
        (most_log.last_seq() + yunnan_log.last_seq()) as usize,
        logged
    );
    let before = caught_up(&http, &gateway, &[&most_log, &yunnan_log], visible).await;
    let picture = catalogue_picture(&http, &gateway).await;
    assert_eq!(picture.len(), visible, "{picture:#?}");
    assert_eq!(
        picture.iter().filter(|e| e.sources.contains(" + ")).count(),
        4,
        "4 results merged from two nodes: {picture:#?}"
    );
    assert!(
        picture.iter().any(|e| e.title.ends_with("（修订版）")),
        "the revision: {picture:#?}"
    );
    assert!(
        picture.iter().any(|e| !e.links.is_empty()),
        "results linked to projects: {picture:#?}"
    );

    // Lost: the catalogue (with its trust store) and the search index.
    gateway.kill();
    for file in ["catalogue.db", "catalogue.db-wal", "catalogue.db-shm"] {
        let _ = std::fs::remove_file(gateway.data_dir.join(file));
    }
    std::fs::remove_dir_all(gateway.data_dir.join("search")).unwrap();
    assert!(!gateway.data_dir.join("catalogue.db").exists());
    gateway.trust(&most);
    gateway.trust(&yunnan);
    gateway.restart();

    let after = caught_up(&http, &gateway, &[&most_log, &yunnan_log], visible).await;
    assert_eq!(after, before, "the same change count and search total");
    let rebuilt = catalogue_picture(&http, &gateway).await;
    assert_eq!(rebuilt, picture, "the same catalogue");
    // Rebuilt from the signed feeds (the nodes published nothing new since).
    assert!(batches_applied(&http, &gateway.url, "feed").await > 0.0);
}

/// Settles the gateway on the nodes' logs, requires its catalogue to hold exactly what they
/// signed (one change and one version per entry, as signed), its change feed one line per
/// entry and search exactly `visible` entries, each once; returns both counts.
async fn caught_up(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    logs: &[&NodeLog],
    visible: usize,
) -> (usize, u64) {
    let rest = settle(http, gateway, logs).await;
    assert_eq!((rest.refused, rest.quarantined), (0, 0), "{rest:?}");
    assert_catalogue_holds(gateway, logs);
    let logged: i64 = logs.iter().map(|l| l.last_seq()).sum();
    let lines = gateway_changes(http, &gateway.url, "").await.unwrap();
    assert_eq!(lines.len() as i64, logged, "one change per logged entry");
    assert_eq!(distinct_changes(&lines), lines.len());
    let (total, hits) = gateway_search(http, &gateway.url, "").await.unwrap();
    assert_eq!((total, hits.len()), (visible as u64, visible));
    let found: BTreeSet<&str> = hits
        .iter()
        .map(|h| h["unified_id"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), visible, "each entry found once");
    (lines.len(), total)
}

/// (c) RabbitMQ is stopped and started again while a node approves one record after another
/// and the gateway consumes them. The gateway polls feeds only once a minute here, so the
/// broker stays its live path: it must reconnect, and anything the outage cost must come back
/// through the node's re-sends and the gateway's gap fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_while_the_gateway_consumes_loses_and_duplicates_nothing() {
    let _broker = BROKER.write().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node_id = unique("prov-530000");
    let tap = QueueTap::bind(&node_id).await;
    let node = NodeProcess::start(
        RIX,
        dir.path(),
        node_spec(&node_id, "530000").with_batches(5, 5),
    );
    let gateway = GatewayProcess::start_with(
        RIX,
        dir.path(),
        GatewaySpec {
            amqp_url: Some(amqp_url()),
            pull_interval_ms: Some(60_000),
            ..GatewaySpec::default()
        },
        &[&node],
    );
    let docs = public_achievements("530000", 0, 60);
    let mut expected = Expected::default();
    let ids = register_approved(&http, &node.url, "achievements", docs[..20].to_vec()).await;
    expected.approved(&node, &ids);
    assert_exactly(
        &http,
        &gateway,
        &expected,
        &[&node_log(&http, &node, true).await],
    )
    .await;
    assert!(
        batches_applied(&http, &gateway.url, "amqp").await > 0.0,
        "the gateway consumes from the broker"
    );

    // Submitted now, approved one by one below, across the outage.
    let streamed = submit_batch(
        &http,
        &node.url,
        ADMIN,
        "achievements",
        docs[20..50].to_vec(),
    )
    .await;
    let approved = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let approving = {
        let http = http.clone();
        let base = node.url.clone();
        let ids = streamed.clone();
        let approved = approved.clone();
        tokio::spawn(async move {
            for id in ids {
                approve(&http, &base, "achievements", &id).await;
                approved.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Paced, so that the stream spans the outage.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // The stream is under way (some approvals published) when the broker goes.
    poll_until("the stream is under way", WITHIN, || async {
        match approved.load(std::sync::atomic::Ordering::SeqCst) {
            n if n >= 5 => Ok(()),
            n => Err(format!("{n} approved")),
        }
    })
    .await;
    // The tap's connection goes with the broker; its durable queue keeps what it holds.
    drop(tap);
    rabbitmqctl(&["stop_app"]);
    // A short outage (its length is the fault, not a wait): other people's tests share this
    // broker.
    tokio::time::sleep(Duration::from_secs(3)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    let tap = QueueTap::bind(&node_id).await;
    approving.await.unwrap();
    expected.approved(&node, &streamed);
    let ids = register_approved(&http, &node.url, "achievements", docs[50..].to_vec()).await;
    expected.approved(&node, &ids);
    let log = node_log(&http, &node, true).await;

    let rest = assert_exactly(&http, &gateway, &expected, &[&log]).await;
    // One gateway process throughout: it applied every entry exactly once, and whatever came
    // again (the node's re-sends after reconnecting, redeliveries) was recognised as such.
    assert_eq!(
        rest.entries_applied,
        expected.changes() as f64,
        "entries applied by the gateway: {rest:?}"
    );
    let resent = assert_tap_is_the_log(tap, &log).await;
    assert!(
        rest.duplicates >= resent as f64,
        "each of the {resent} re-sent batches reached the gateway again and was recognised: {rest:?}"
    );
    poll_until("the gateway consumes again", WITHIN, || async {
        let connected = metric(&http, &gateway.url, "rix_gateway_broker_connected").await;
        let reconnects = metric(&http, &gateway.url, "rix_gateway_broker_reconnects_total").await;
        if connected == 1.0 && reconnects >= 1.0 {
            Ok(())
        } else {
            Err(format!("connected {connected}, reconnects {reconnects}"))
        }
    })
    .await;
}

/// (d) A node is SIGKILLed while it publishes a stream of approvals (some batches confirmed by
/// the broker, one sealed but not yet confirmed, the rest of the stream not yet approved), and
/// restarted on the same data dir; more is approved, revised and withdrawn after the restart.
/// The gateway (consuming the broker, with the node's feed trusted too) ends up with exactly
/// the approvals the node acknowledged (and the one the kill cut off, if it committed), once
/// each, at their latest versions: whatever the node re-sent after the restart is the same
/// bytes and is recognised, whatever it had not sent arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sigkilled_mid_publish_and_restarted_is_counted_exactly() {
    let _broker = BROKER.read().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node_id = unique("prov-530000");
    let tap = QueueTap::bind(&node_id).await;
    let mut node = NodeProcess::start(
        RIX,
        dir.path(),
        node_spec(&node_id, "530000").with_batches(5, 20),
    );
    let gateway = GatewayProcess::start(RIX, dir.path(), None, Some(amqp_url()), &[&node]);
    let docs = public_achievements("530000", 0, 60);
    let mut expected = Expected::default();
    let before = register_approved(&http, &node.url, "achievements", docs[..10].to_vec()).await;
    expected.approved(&node, &before);
    assert_exactly(
        &http,
        &gateway,
        &expected,
        &[&node_log(&http, &node, true).await],
    )
    .await;
    let base = expected.logged[&node_id];

    // Submitted now, approved one by one while the node publishes them; the kill cuts the
    // stream off. The task returns the approvals the node answered 200 to, and the one it
    // was sending when the kill cut it off.
    let streamed = submit_batch(
        &http,
        &node.url,
        ADMIN,
        "achievements",
        docs[10..50].to_vec(),
    )
    .await;
    let approving = {
        let http = http.clone();
        let base_url = node.url.clone();
        let ids = streamed.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for id in ids {
                match try_approve(&http, &base_url, "achievements", &id).await {
                    Ok((200, _)) => acknowledged.push(id),
                    Ok((status, body)) => panic!("approve {id}: {status} {body}"),
                    Err(_) => return (acknowledged, Some(id)), // cut off by the kill
                }
                // Paced, so that the stream is still running when the kill lands.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            (acknowledged, None)
        })
    };
    // Kill once some of the new entries are confirmed by the broker while others are not yet:
    // the node is mid-publish. Best with a batch sealed but not yet confirmed (re-sent after
    // the restart, the same bytes); failing that, later in the stream, with entries waiting
    // to be sealed. (Polled closely: each entry waits at most a linger and a confirm.)
    let health_url = format!("{}/healthz", node.url);
    let at_kill = loop {
        assert!(
            !approving.is_finished(),
            "the stream ended before the node was seen mid-publish; node log:\n{}",
            node.log_tail()
        );
        let (_, h) = get_json(&http, &health_url).await.unwrap();
        let last = h["log"]["last_seq"].as_i64().unwrap();
        let sealed = h["log"]["sealed_seq"].as_i64().unwrap();
        let confirmed = last - h["log"]["outbox_depth"].as_i64().unwrap();
        if (confirmed >= base + 5 && confirmed < sealed)
            || (confirmed >= base + 20 && confirmed < last)
        {
            break h["log"].clone();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    node.kill();
    let (acknowledged, cut_off) = approving.await.unwrap();
    assert!(
        (1..40).contains(&acknowledged.len()),
        "the kill should land mid-stream; {} of 40 approvals had completed \
         (log at the kill: {at_kill})",
        acknowledged.len()
    );

    // Back on the same data dir: nothing approved was lost (the approval the kill cut off
    // either committed with its outbox entry or not at all).
    node.restart();
    let (_, health) = get_json(&http, &health_url).await.unwrap();
    assert!(
        health["log"]["last_seq"].as_i64().unwrap() >= at_kill["last_seq"].as_i64().unwrap(),
        "the log survived the kill: {health} (at the kill: {at_kill})"
    );
    // Every acknowledged approval stands; the cut-off one committed or not.
    let mut approved: Vec<String> = acknowledged.clone();
    for id in &acknowledged {
        let record = get_record(&http, &node.url, "achievements", id, tokens::REVIEWER).await;
        assert_ne!(
            record["state"], "submitted",
            "{id} was acknowledged: {record}"
        );
    }
    if let Some(id) = &cut_off {
        let record = get_record(&http, &node.url, "achievements", id, tokens::REVIEWER).await;
        if record["state"] != "submitted" {
            approved.push(id.clone());
        }
    }
    // What still waits is approved now, each acknowledged with 200 (`approve` requires it).
    let waiting: Vec<String> = streamed
        .iter()
        .filter(|id| !approved.contains(id))
        .cloned()
        .collect();
    let approved_after_restart = approve_waiting(&http, &node.url, "achievements", &waiting).await;
    assert_eq!(
        approved_after_restart,
        waiting.len(),
        "every approval not acknowledged before the kill (nor committed by it) was still waiting"
    );
    approved.extend(waiting);
    // Exactly the approvals that stand, from the node's answers: the acknowledged ones, the
    // cut-off one if it committed, and those made after the restart.
    expected.approved(&node, &approved);
    // More after the restart: new records, a revision of one approved before the kill and of
    // one from the stream, a withdrawal.
    let ids = register_approved(&http, &node.url, "achievements", docs[50..60].to_vec()).await;
    expected.approved(&node, &ids);
    revise(&http, &node, &before[0], 1).await;
    expected.revised(&node, &before[0], 2);
    revise(&http, &node, &streamed[0], 1).await;
    expected.revised(&node, &streamed[0], 2);
    withdraw(&http, &node, &before[1]).await;
    expected.withdrawn(&node, &before[1]);
    let log = node_log(&http, &node, true).await;

    let rest = assert_exactly(&http, &gateway, &expected, &[&log]).await;
    // One gateway process throughout: every entry applied exactly once.
    assert_eq!(
        rest.entries_applied,
        expected.changes() as f64,
        "entries applied by the gateway: {rest:?}"
    );
    // What the node re-sent after the restart is the very batch it had sealed before the kill.
    let resent = assert_tap_is_the_log(tap, &log).await;
    assert!(
        rest.duplicates >= resent as f64,
        "each of the {resent} re-sent batches reached the gateway again and was recognised: {rest:?}"
    );
    eprintln!(
        "killed after {} of 40 approvals (cut off: {cut_off:?}; log at the kill: {at_kill}); \
         counted exactly; {resent} batches re-sent; {} duplicate batches recognised",
        acknowledged.len(),
        rest.duplicates
    );
}

/// Waits until the gateway's chain position for `log`'s node is at its head and its index has
/// committed everything: the backlog a test queues next is all it has left to take in.
async fn caught_up_with(http: &reqwest::Client, gateway: &GatewayProcess, log: &NodeLog) {
    poll_until("the gateway catches up", WITHIN, || async {
        let position = gateway_position(http, &gateway.url, &log.node_id).await;
        let (_, health) = get_json(http, &format!("{}/healthz", gateway.url))
            .await
            .map_err(|e| e.to_string())?;
        let indexed = health["search"]["indexed_change_id"].as_i64();
        if position == Some((log.last_batch_seq(), log.last_seq()))
            && indexed == Some(log.last_seq())
        {
            Ok(())
        } else {
            Err(format!("at {position:?}, index at {indexed:?}"))
        }
    })
    .await;
}

/// Registers and approves `docs` at `node` in requests of 500 (the node takes up to 1,000);
/// returns the ids.
async fn register_many(http: &reqwest::Client, node: &NodeProcess, docs: &[Value]) -> Vec<String> {
    let mut ids = Vec::with_capacity(docs.len());
    for chunk in docs.chunks(500) {
        ids.extend(register_approved(http, &node.url, "achievements", chunk.to_vec()).await);
    }
    ids
}

/// What the catalogue of a stopped gateway has committed for `node_id`: its chain position
/// (`next_seq - 1`), record versions and changes.
fn committed(gateway: &GatewayProcess, node_id: &str) -> (i64, i64, i64) {
    use diesel::prelude::*;
    use rix_gateway::db::schema::{changes, node_chain, record_versions};
    let db = gateway.catalogue();
    let mut conn = db.conn().unwrap();
    let position: i64 = node_chain::table
        .find(node_id)
        .select(node_chain::next_seq)
        .first::<i64>(&mut *conn)
        .optional()
        .unwrap()
        .map_or(0, |next| next - 1);
    let versions: i64 = record_versions::table
        .filter(record_versions::node_id.eq(node_id))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    let changes: i64 = changes::table
        .filter(changes::node_id.eq(node_id))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    (position, versions, changes)
}

/// (e) The gateway is down while a node approves 2,000 records: 100 batches wait on the
/// gateway's durable queue. The gateway comes back and is SIGKILLed while it applies that
/// backlog (its chain position past the first batches, short of the node's head). What it had
/// committed is whole batches only; restarted, it applies exactly the rest — each entry once
/// across the two processes, the redelivered batches it had committed but not acknowledged
/// recognised as duplicates. On PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sigkilled_mid_backlog_applies_each_entry_once_on_postgres() {
    let _broker = BROKER.read().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node_id = unique("prov-530000");
    let tap = QueueTap::bind(&node_id).await;
    let node = NodeProcess::start(
        RIX,
        dir.path(),
        node_spec(&node_id, "530000").with_batches(20, 10),
    );
    // Feeds polled once a minute: the queue is the backlog's path (the feed fills gaps).
    let mut gateway = GatewayProcess::start_with(
        RIX,
        dir.path(),
        GatewaySpec {
            database_url: Some(fresh_postgres_database()),
            amqp_url: Some(amqp_url()),
            pull_interval_ms: Some(60_000),
            ..GatewaySpec::default()
        },
        &[&node],
    );
    let docs = public_achievements("530000", 0, 2_010);
    let mut expected = Expected::default();
    let ids = register_many(&http, &node, &docs[..10]).await;
    expected.approved(&node, &ids);
    caught_up_with(&http, &gateway, &node_log(&http, &node, true).await).await;

    // Down while the backlog piles up on its queue.
    gateway.kill();
    let ids = register_many(&http, &node, &docs[10..]).await;
    expected.approved(&node, &ids);
    let log = node_log(&http, &node, true).await;
    // (Other tests' batches may wait there too: the records exchange is shared. The broker's
    // counts lag a little behind its queues.)
    poll_until(
        "every batch after the first waits on the gateway's queue",
        WITHIN,
        || async {
            match queue_depth(&gateway.queue) {
                (ready, _) if ready as i64 >= log.last_batch_seq() - 1 => Ok(()),
                (ready, _) => Err(format!("{ready} ready")),
            }
        },
    )
    .await;

    // Back, and killed mid-apply.
    gateway.restart();
    let head = log.last_seq();
    let at_kill = loop {
        let (_, seq) = gateway_position(&http, &gateway.url, &node_id)
            .await
            .unwrap_or((0, 0));
        assert!(
            seq < head,
            "the gateway applied the whole backlog before it was seen mid-apply"
        );
        // A quarter of the backlog in: well under way, far from done.
        if seq > head / 4 {
            break seq;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    gateway.kill();
    let (position, versions, changes) = committed(&gateway, &node_id);
    assert!(
        position >= at_kill && position < head,
        "killed mid-apply: committed up to seq {position} of {head} (seen at {at_kill})"
    );
    assert_eq!(
        (versions, changes),
        (position, position),
        "what the killed gateway committed is its chain position, whole batches only"
    );

    gateway.restart();
    let rest = assert_exactly(&http, &gateway, &expected, &[&log]).await;
    assert_eq!(
        rest.entries_applied,
        (head - position) as f64,
        "the restarted gateway applied exactly what the killed one had not committed: {rest:?}"
    );
    assert_eq!(
        assert_tap_is_the_log(tap, &log).await,
        0,
        "no node re-sends"
    );
    eprintln!(
        "killed with seq {position} of {head} committed; {} duplicate batches recognised after \
         the restart",
        rest.duplicates
    );
}

/// The segment ids tantivy's `meta.json` in `index_dir` lists (no dashes), and the segment ids
/// of the files in the directory that it does not list: segments being written that no commit
/// has recorded yet.
fn unrecorded_segments(index_dir: &std::path::Path) -> (BTreeSet<String>, BTreeSet<String>) {
    // The directory first: a commit that completes between the two reads then shows its
    // segments in meta.json, not as unrecorded.
    let on_disk: BTreeSet<String> = std::fs::read_dir(index_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let stem = name.split('.').next()?.to_owned();
                    (stem.len() == 32 && stem.chars().all(|c| c.is_ascii_hexdigit()))
                        .then_some(stem)
                })
                .collect()
        })
        .unwrap_or_default();
    let recorded: BTreeSet<String> = std::fs::read_to_string(index_dir.join("meta.json"))
        .ok()
        .and_then(|m| serde_json::from_str::<Value>(&m).ok())
        .and_then(|m| {
            m["segments"].as_array().map(|segs| {
                segs.iter()
                    .filter_map(|s| s["segment_id"].as_str())
                    .map(|id| id.replace('-', ""))
                    .collect()
            })
        })
        .unwrap_or_default();
    let unrecorded = on_disk.difference(&recorded).cloned().collect();
    (recorded, unrecorded)
}

/// (f) The gateway is SIGKILLed while its search index commits. Its index is lost while it is
/// down (so that the only segment files it writes are those of the commit in flight, visible
/// from outside: on disk, not yet in `meta.json`), and a backlog of 2,000 entries waits on its
/// queue; started again, it applies the backlog while its index syncs and commits, and is
/// killed the moment a commit's segments are seen being written. Restarted, the index
/// recovers: search finds every visible record exactly once, the catalogue is exact. On SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sigkilled_mid_index_commit_recovers_an_exact_index() {
    let _broker = BROKER.read().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node_id = unique("prov-530000");
    let tap = QueueTap::bind(&node_id).await;
    let node = NodeProcess::start(
        RIX,
        dir.path(),
        node_spec(&node_id, "530000").with_batches(50, 10),
    );
    let mut gateway = GatewayProcess::start(RIX, dir.path(), None, Some(amqp_url()), &[&node]);
    let docs = public_achievements("530000", 0, 2_010);
    let mut expected = Expected::default();
    let ids = register_many(&http, &node, &docs[..10]).await;
    expected.approved(&node, &ids);
    caught_up_with(&http, &gateway, &node_log(&http, &node, true).await).await;

    gateway.kill();
    let index_dir = gateway.data_dir.join("search");
    std::fs::remove_dir_all(&index_dir).unwrap();
    let ids = register_many(&http, &node, &docs[10..]).await;
    expected.approved(&node, &ids);
    let log = node_log(&http, &node, true).await;

    gateway.restart();
    // Watch the index directory closely: a segment on disk that meta.json does not list is a
    // commit being written. Kill then.
    let (mid_commit, in_flight) = loop {
        let (_, unrecorded) = unrecorded_segments(&index_dir);
        if !unrecorded.is_empty() {
            break (true, unrecorded);
        }
        let (_, health) = get_json(&http, &format!("{}/healthz", gateway.url))
            .await
            .unwrap();
        // Missed it: the index committed the whole backlog between two looks.
        if health["search"]["indexed_change_id"].as_i64() >= Some(log.last_seq()) {
            break (false, BTreeSet::new());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    gateway.kill();
    // Killed before the commit recorded them: its segments are still unlisted.
    let (recorded, _) = unrecorded_segments(&index_dir);
    let cut_short = mid_commit && in_flight.iter().all(|s| !recorded.contains(s));
    let (position, versions, changes) = committed(&gateway, &node_id);
    assert_eq!(
        (versions, changes),
        (position, position),
        "what the killed gateway committed is its chain position, whole batches only"
    );

    gateway.restart();
    let rest = assert_exactly(&http, &gateway, &expected, &[&log]).await;
    assert_eq!(
        rest.entries_applied,
        (log.last_seq() - position) as f64,
        "the restarted gateway applied exactly what the killed one had not committed: {rest:?}"
    );
    assert_eq!(
        assert_tap_is_the_log(tap, &log).await,
        0,
        "no node re-sends"
    );
    eprintln!(
        "killed {} ({} segments in flight); {} duplicate batches recognised after the restart",
        if cut_short {
            "mid-commit, before meta.json recorded its segments"
        } else if mid_commit {
            "as a commit completed"
        } else {
            "after the index caught up (no commit seen in flight)"
        },
        in_flight.len(),
        rest.duplicates
    );
}
