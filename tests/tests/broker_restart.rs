//! RabbitMQ restarted while a node publishes: registrations keep working during the outage,
//! the node reconnects, and every approved record reaches the queue, in order.
//!
//! Its own test binary, so no other broker test runs while the broker is down.

use std::time::Duration;

use rix_tests::tokens::SUBMITTER;
use rix_tests::*;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node_id = unique("restart");
    let queue = QueueTap::bind(&node_id).await;
    let http = reqwest::Client::new();
    let node = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec::new(&node_id, "530000")
            .with_broker(amqp_url())
            .with_batches(5, 5),
    );
    let ids = submit_batch(
        &http,
        &node.url,
        SUBMITTER,
        "projects",
        vec![fixture("funded_project"); 90],
    )
    .await;
    for id in &ids[..30] {
        approve(&http, &node.url, "projects", id).await;
    }
    drop(queue);
    rabbitmqctl(&["stop_app"]);
    // The broker is down: registration and approval go on.
    for id in &ids[30..60] {
        approve(&http, &node.url, "projects", id).await;
    }
    let (_, health) = get_json(&http, &format!("{}/healthz", node.url))
        .await
        .unwrap();
    assert_eq!(health["broker"], "failing", "{health}");
    assert!(
        health["broker_detail"]["last_error"].is_string(),
        "{health}"
    );
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    for id in &ids[60..] {
        approve(&http, &node.url, "projects", id).await;
    }
    let queue = QueueTap::bind(&node_id).await;
    let batches = queue.drain_batches_until(90, Duration::from_secs(90)).await;
    let entries = verify_log(&node_id, &node.key, batches);
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=90).collect::<Vec<u64>>(),
        "nothing lost, nothing out of order"
    );
    queue.delete().await;
}
