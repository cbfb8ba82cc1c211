//! RabbitMQ restarted while a node publishes: registrations keep working during the outage,
//! the node reconnects, and every approved record reaches the queue, in order.
//!
//! Its own test binary, so no other broker test runs while the broker is down.

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use rix_tests::tokens::{REVIEWER, SUBMITTER};
use rix_tests::*;
use serde_json::{Value, json};

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .env("RABBITMQ_NODENAME", "rabbit@localhost")
        .status()
        .expect("rabbitmqctl is installed by ops/install-deps.sh");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

fn record() -> Value {
    let mut v: Value = serde_json::from_str(include_str!(
        "../../schema/tests/fixtures/funded_project.json"
    ))
    .unwrap();
    v.as_object_mut().unwrap().remove("registration_no");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node_id = unique("restart");
    let queue = NodeQueue::bind(&node_id).await;
    let http = reqwest::Client::new();
    let node = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec {
            node_id: &node_id,
            issuer: "530000",
            database_url: None,
            amqp_url: Some(amqp_url()),
            max_entries: 5,
            linger_ms: 5,
        },
    );
    let (status, body) = call(
        &http,
        Method::POST,
        &format!("{}/v1/projects/batch", node.url),
        SUBMITTER,
        Some(&Value::Array(vec![record(); 90])),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let ids: Vec<String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let approve = |id: &str| {
        let url = format!("{}/v1/projects/{id}/approve", node.url);
        let http = http.clone();
        async move {
            let (status, body) = call(&http, Method::POST, &url, REVIEWER, Some(&json!({})))
                .await
                .unwrap();
            assert_eq!(status, 200, "{body}");
        }
    };
    for id in &ids[..30] {
        approve(id).await;
    }
    drop(queue);
    rabbitmqctl(&["stop_app"]);
    // The broker is down: registration and approval go on.
    for id in &ids[30..60] {
        approve(id).await;
    }
    let (_, health) = call(
        &http,
        Method::GET,
        &format!("{}/healthz", node.url),
        "",
        None,
    )
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
        approve(id).await;
    }
    let queue = NodeQueue::bind(&node_id).await;
    let batches = queue.drain_until(90, Duration::from_secs(90)).await;
    let entries = verify_log(&node_id, &node.key, &batches);
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=90).collect::<Vec<u64>>(),
        "nothing lost, nothing out of order"
    );
    queue.delete().await;
}
