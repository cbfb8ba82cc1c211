//! Faults, each counted exactly at the end (every record once, at its latest version; exactly
//! one change per entry the nodes logged; nothing else):
//!
//! - the gateway is down while one node publishes to the broker and another has lost its
//!   broker; a node is offline while the gateway is back: everything catches up (gateway on
//!   PostgreSQL);
//! - the gateway's SQLite catalogue and search index are wiped and rebuilt from the nodes'
//!   signed feeds alone: the same unified entries, sources, links and counts;
//! - RabbitMQ restarted while the gateway consumes a stream of approvals;
//! - a node SIGKILLed mid-publish and restarted on the same data dir, while the gateway
//!   consumes its queue and polls its feed.
//!
//! The broker restart stops RabbitMQ for everyone: it runs alone (the other scenarios of this
//! file wait for it, and it for them), and keeps the outage to a few seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_tests::tokens::ADMIN;
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

/// Waits until the gateway's change feed holds `expected.changes()` changes, then checks that
/// the catalogue is exactly `expected`: no change applied twice, every record at its latest
/// version, every withdrawn one gone, nothing else searchable.
async fn assert_exactly(http: &reqwest::Client, gateway: &GatewayProcess, expected: &Expected) {
    let want = expected.changes();
    let changes = wait_for_changes(http, gateway, "", want).await;
    // One change per logged entry: the same (node, id, version) never applied twice.
    // A change's sealed position (`cursor`) tells changes apart, as its id did.
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
    // Every record as it is now.
    let mut visible: BTreeSet<String> = BTreeSet::new();
    for ((node_id, id), version) in &expected.records {
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
    // Searchable: exactly the visible records, each once (no record here is merged).
    let hits = wait_for_search(http, gateway, "", expected.visible() as u64).await;
    let found: BTreeSet<&str> = hits
        .iter()
        .map(|h| h["unified_id"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), expected.visible(), "each entry found once");
    assert_eq!(
        found,
        visible.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
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
    assert_exactly(&http, &gateway, &expected).await;

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
    // Liaoning's stay in its outbox.
    wait_node_published(&http, &yunnan, expected.logged[&yunnan_id]).await;
    wait_node_log(&http, &liaoning, expected.logged[&liaoning_id], false).await;

    // Yunnan goes offline (a graceful stop), and the gateway comes back: Yunnan's batches
    // come off the queue, Liaoning's from its feed.
    yunnan.stop();
    gateway.restart();
    assert_exactly(&http, &gateway, &expected).await;

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
    wait_node_published(&http, &yunnan, expected.logged[&yunnan_id]).await;
    wait_node_published(&http, &liaoning, expected.logged[&liaoning_id]).await;
    assert_exactly(&http, &gateway, &expected).await;
    // Whatever a node re-sent after reconnecting was recognised, not applied again.
    let duplicates = metric(&http, &gateway.url, "rix_gateway_batches_duplicate_total").await;
    let (_, health) = get_json(&http, &format!("{}/healthz", gateway.url))
        .await
        .unwrap();
    assert_eq!(health["backend"], "postgres", "{health}");
    eprintln!("caught up exactly; {duplicates} duplicate batches recognised");
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
    let before = wait_caught_up(&http, &gateway, logged, visible).await;
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

    let after = wait_caught_up(&http, &gateway, logged, visible).await;
    assert_eq!(after, before, "the same change count and search total");
    let rebuilt = catalogue_picture(&http, &gateway).await;
    assert_eq!(rebuilt, picture, "the same catalogue");
    // Rebuilt from the signed feeds (the nodes published nothing new since).
    assert!(batches_applied(&http, &gateway.url, "feed").await > 0.0);
}

/// Waits until the gateway's change feed holds `changes` changes (checked exact) and search
/// finds `visible` entries; returns both counts.
async fn wait_caught_up(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    changes: usize,
    visible: usize,
) -> (usize, u64) {
    let lines = wait_for_changes(http, gateway, "", changes).await;
    let hits = wait_for_search(http, gateway, "", visible as u64).await;
    (distinct_changes(&lines), hits.len() as u64)
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
    assert_exactly(&http, &gateway, &expected).await;
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
    let approving = {
        let http = http.clone();
        let base = node.url.clone();
        let ids = streamed.clone();
        tokio::spawn(async move {
            for id in ids {
                approve(&http, &base, "achievements", &id).await;
                // Paced, so that the stream spans the outage.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    rabbitmqctl(&["stop_app"]);
    // A short outage: other people's tests share this broker.
    tokio::time::sleep(Duration::from_secs(3)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    approving.await.unwrap();
    expected.approved(&node, &streamed);
    let ids = register_approved(&http, &node.url, "achievements", docs[50..].to_vec()).await;
    expected.approved(&node, &ids);
    wait_node_published(&http, &node, expected.logged[&node_id]).await;

    assert_exactly(&http, &gateway, &expected).await;
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
/// The gateway (consuming the broker, with the node's feed trusted too) ends up with every
/// approved record once, at its latest version: whatever the node re-sent after the restart
/// is recognised, whatever it had not sent arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sigkilled_mid_publish_and_restarted_is_counted_exactly() {
    let _broker = BROKER.read().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node_id = unique("prov-530000");
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
    assert_exactly(&http, &gateway, &expected).await;
    let base = expected.logged[&node_id];

    // Submitted now, approved one by one while the node publishes them; the kill cuts the
    // stream off.
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
            let mut done = 0;
            for id in ids {
                match try_approve(&http, &base_url, "achievements", &id).await {
                    Ok((200, _)) => done += 1,
                    Ok((status, body)) => panic!("approve {id}: {status} {body}"),
                    Err(_) => break, // cut off by the kill
                }
                // Paced, so that the stream is still running when the kill lands.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            done
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
    let done_before_kill = approving.await.unwrap();
    assert!(
        (1..40).contains(&done_before_kill),
        "the kill should land mid-stream; {done_before_kill} of 40 approvals had completed \
         (log at the kill: {at_kill})"
    );

    // Back on the same data dir: nothing approved was lost (the approval the kill cut off
    // either committed with its outbox entry or not at all); approve what still waits.
    node.restart();
    let (_, health) = get_json(&http, &health_url).await.unwrap();
    assert!(
        health["log"]["last_seq"].as_i64().unwrap() >= at_kill["last_seq"].as_i64().unwrap(),
        "the log survived the kill: {health} (at the kill: {at_kill})"
    );
    let approved_after_restart = approve_waiting(&http, &node.url, "achievements", &streamed).await;
    assert!(
        (40 - done_before_kill - 1..=40 - done_before_kill).contains(&approved_after_restart),
        "{approved_after_restart} approved after the restart, {done_before_kill} before: \
         only the approval the kill cut off may have committed unanswered"
    );
    expected.approved(&node, &streamed);
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
    wait_node_published(&http, &node, expected.logged[&node_id]).await;

    assert_exactly(&http, &gateway, &expected).await;
    let duplicates =
        metric(&http, &gateway.url, "rix_gateway_batches_duplicate_total").await as u64;
    eprintln!(
        "killed after {done_before_kill} of 40 approvals (log at the kill: {at_kill}); \
         counted exactly; {duplicates} duplicate batches recognised"
    );
}
