//! Three real nodes (the Ministry of Science and Technology, Yunnan, Liaoning) and a real
//! gateway, as separate processes over real RabbitMQ: records approved at each node reach the
//! catalogue once each, the same result registered by two provinces is merged, projects and
//! achievements are linked across nodes — on SQLite and on PostgreSQL. Then the gateway is
//! SIGKILLed mid-ingest and a node goes offline while approving: the catalogue still ends up
//! exactly right — counted once the federation has settled and stayed so for a quiet window,
//! and holding exactly what the nodes signed.

use rix_gateway::catalogue;
use rix_schema::RecordKind;
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use rix_schema::sensitivity::Entitlements;
use rix_tests::*;
use serde_json::Value;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

/// A node on the test broker.
fn spec<'a>(node_id: &'a str, issuer: &'a str) -> NodeSpec<'a> {
    NodeSpec::new(node_id, issuer).with_broker(amqp_url())
}

/// Settles the gateway on the nodes' signed logs and requires exactly `n` changes: one change
/// and one record version per logged entry, each as the node signed it, one change-feed line
/// each, nothing refused or quarantined.
async fn settled_exactly(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    logs: &[&NodeLog],
    n: usize,
) {
    assert_eq!(
        logs.iter().map(|l| l.last_seq()).sum::<i64>(),
        n as i64,
        "the nodes logged one entry per approval and withdrawal"
    );
    let rest = settle(http, gateway, logs).await;
    assert_eq!((rest.refused, rest.quarantined), (0, 0), "{rest:?}");
    assert_eq!(
        (rest.changes, rest.versions),
        (n as i64, n as i64),
        "{rest:?}"
    );
    assert_catalogue_holds(gateway, logs);
    let lines = gateway_changes(http, &gateway.url, "").await.unwrap();
    assert_eq!(lines.len(), n, "one change-feed line per entry");
    assert_eq!(distinct_changes(&lines), n, "no change twice");
}

async fn three_nodes_one_catalogue(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    // Node ids unique per run: the records exchange is shared by every test.
    let most_id = unique("most");
    let yunnan_id = unique("prov-530000");
    let liaoning_id = unique("prov-210000");
    let most = NodeProcess::start(RIX, dir.path(), spec(&most_id, "348"));
    let yunnan = NodeProcess::start(RIX, dir.path(), spec(&yunnan_id, "530000"));
    // Every batch Liaoning publishes, the ones it re-sends after losing its broker included.
    let liaoning_tap = QueueTap::bind(&liaoning_id).await;
    let mut liaoning = NodeProcess::start(RIX, dir.path(), spec(&liaoning_id, "210000"));
    let mut gateway = GatewayProcess::start(
        RIX,
        dir.path(),
        database_url,
        Some(amqp_url()),
        &[&most, &yunnan, &liaoning],
    );

    let shared = SampleGenerator::new(SampleConfig::default());
    let liaoning_gen = SampleGenerator::new(SampleConfig {
        node: NodeProfile::province("210000"),
        ..SampleConfig::default()
    });
    // The ministry publishes 4 funded projects; Yunnan registers 12 results of them, Liaoning
    // registers 6 of the same results (co-completed) and 10 of its own.
    let projects: Vec<Value> = (0..4)
        .map(|i| as_public_submission(serde_json::to_value(shared.shared_project(i)).unwrap()))
        .collect();
    let results: Vec<Value> = (0..12)
        .map(|i| as_public_submission(serde_json::to_value(shared.shared_achievement(i)).unwrap()))
        .collect();
    let own: Vec<Value> = (0..40)
        .map(|i| liaoning_gen.achievement(i))
        .filter(|a| a.secrecy.level.may_leave_node())
        .take(10)
        .map(|a| as_public_submission(serde_json::to_value(a).unwrap()))
        .collect();
    register_approved(&http, &most.url, "projects", projects).await;
    register_approved(&http, &yunnan.url, "achievements", results.clone()).await;
    register_approved(&http, &liaoning.url, "achievements", results[..6].to_vec()).await;

    // Liaoning registers its own results while the gateway is killed mid-ingest.
    let own_ids = register_approved(&http, &liaoning.url, "achievements", own[..5].to_vec()).await;
    gateway.kill();
    register_approved(&http, &liaoning.url, "achievements", own[5..].to_vec()).await;
    gateway.restart();
    settled_exactly(
        &http,
        &gateway,
        &[
            &node_log(&http, &most, true).await,
            &node_log(&http, &yunnan, true).await,
            &node_log(&http, &liaoning, true).await,
        ],
        4 + 12 + 6 + 10,
    )
    .await;

    let db = gateway.catalogue();
    let mut conn = db.conn().unwrap();
    let achievements = catalogue::visible_unified_ids(&mut conn, RecordKind::Achievement).unwrap();
    assert_eq!(
        achievements.len(),
        12 + 10,
        "22 results from 28 registrations"
    );
    let projects = catalogue::visible_unified_ids(&mut conn, RecordKind::FundedProject).unwrap();
    assert_eq!(projects.len(), 4);
    // The first co-registered result: two sources (in the order the gateway took them in —
    // nodes publish independently); linked to the ministry's project.
    let merged = catalogue::unified_id_of(
        &mut conn,
        &liaoning_id,
        &format!("ach-{:06}", 1),
        Entitlements::ALL,
    )
    .unwrap()
    .unwrap();
    let entry = catalogue::unified(&mut conn, &merged).unwrap().unwrap();
    let mut nodes: Vec<&str> = entry.sources.iter().map(|s| s.node_id.as_str()).collect();
    nodes.sort();
    let mut expected = vec![yunnan_id.as_str(), liaoning_id.as_str()];
    expected.sort();
    assert_eq!(nodes, expected);
    assert_eq!(entry.record.as_ref().unwrap()["title"], results[0]["title"]);
    let linked = catalogue::links(&mut conn, &merged, Entitlements::ALL).unwrap();
    let project = catalogue::unified_id_of(&mut conn, &most_id, "prj-000001", Entitlements::ALL)
        .unwrap()
        .unwrap();
    assert_eq!(linked, vec![project.clone()]);
    let project_links = catalogue::links(&mut conn, &project, Entitlements::ALL).unwrap();
    assert_eq!(
        project_links.len(),
        3,
        "results 0, 1 and 2 come from project 0"
    );
    drop(conn);

    // Liaoning loses the broker (restarted pointing at a port nothing listens on): its
    // withdrawals and new approvals reach the gateway through its signed feed alone; then it
    // is back on the broker and everything stays exactly right.
    liaoning.set_env("RIX_AMQP_URL", &unreachable_amqp_url());
    liaoning.restart();
    for id in &own_ids[..2] {
        withdraw(&http, &liaoning.url, "achievements", id).await;
    }
    let more: Vec<Value> = (40..80)
        .map(|i| liaoning_gen.achievement(i))
        .filter(|a| a.secrecy.level.may_leave_node())
        .take(3)
        .map(|a| as_public_submission(serde_json::to_value(a).unwrap()))
        .collect();
    register_approved(&http, &liaoning.url, "achievements", more).await;
    let most_log = node_log(&http, &most, true).await;
    let yunnan_log = node_log(&http, &yunnan, true).await;
    // Liaoning's new entries are sealed and served on its feed, not confirmed by any broker.
    let liaoning_log = node_log(&http, &liaoning, false).await;
    settled_exactly(
        &http,
        &gateway,
        &[&most_log, &yunnan_log, &liaoning_log],
        4 + 12 + 6 + 10 + 2 + 3,
    )
    .await;
    liaoning.set_env("RIX_AMQP_URL", &amqp_url());
    liaoning.restart();
    let mut conn = db.conn().unwrap();
    assert_eq!(
        catalogue::visible_unified_ids(&mut conn, RecordKind::Achievement)
            .unwrap()
            .len(),
        22 - 2 + 3
    );
    drop(conn);
    // Back on the broker, Liaoning publishes what waited in its outbox: batches the gateway
    // already took from the feed. Once it has (its outbox empty), nothing of it changes the
    // catalogue, and its log is the one the gateway took in.
    let republished = node_log(&http, &liaoning, true).await;
    assert_eq!(
        republished
            .batches
            .iter()
            .map(|b| &b.bytes)
            .collect::<Vec<_>>(),
        liaoning_log
            .batches
            .iter()
            .map(|b| &b.bytes)
            .collect::<Vec<_>>(),
        "the same signed log"
    );
    settled_exactly(
        &http,
        &gateway,
        &[&most_log, &yunnan_log, &republished],
        4 + 12 + 6 + 10 + 2 + 3,
    )
    .await;
    // What the broker carried of Liaoning — before, and after it got its broker back — is
    // its signed log, byte for byte.
    let deliveries = liaoning_tap
        .drain_batches_until(republished.last_seq() as u64, WITHIN)
        .await;
    assert_eq!(
        liaoning_tap.depth().await,
        0,
        "nothing after its last batch"
    );
    let resent = assert_deliveries_are_the_log(&deliveries, &republished);
    liaoning_tap.delete().await;
    eprintln!("Liaoning re-sent {resent} batches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_on_sqlite() {
    three_nodes_one_catalogue(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_on_postgres() {
    three_nodes_one_catalogue(Some(fresh_postgres_database())).await;
}
