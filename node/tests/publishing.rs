//! Publishing to a real RabbitMQ: batches verify with the node key, arrive gap-free and in
//! order, carry the `{kind}.{node_id}` routing key, and equal the feed byte for byte.

mod common;

use common::*;
use serde_json::{Value, json};

async fn approved_records_reach_the_queue_signed_in_order_and_as_in_the_feed(backend: Backend) {
    let amqp = amqp_url();
    let node_id = unique("pub");
    let queue = QueueTap::bind(&node_id).await;
    let node = start_node(backend, |c| {
        c.node_id = node_id.clone();
        c.amqp_url = Some(amqp);
        c.batch.max_entries = 25;
    })
    .await;
    // The node connects at start, not at its first publish: before anything is approved,
    // `/healthz` already says the broker is connected.
    let mut health = node.get("/healthz", None).await;
    for _ in 0..200 {
        if health.body["broker"] != "connecting" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        health = node.get("/healthz", None).await;
    }
    assert_eq!(health.body["broker"], "connected", "{}", health.body);
    assert_eq!(health.body["status"], "ok");
    assert!(health.body["broker_detail"]["last_connected_at"].is_string());

    let mut expected = 0u64;
    for (collection, kind, n) in [
        ("projects", "funded_project", 30),
        ("achievements", "achievement", 70),
    ] {
        let doc = fixture(kind);
        let r = node
            .post(
                &format!("/v1/{collection}/batch"),
                SUBMITTER,
                &Value::Array(vec![doc; n]),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        for item in r.body["items"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap();
            let a = node
                .post(
                    &format!("/v1/{collection}/{id}/approve"),
                    REVIEWER,
                    &json!({}),
                )
                .await;
            assert_eq!(a.status, 200, "{}", a.body);
            expected += 1;
        }
    }

    let messages = queue
        .drain_until(expected, std::time::Duration::from_secs(30))
        .await;
    for (routing_key, bytes) in &messages {
        let b: rix_schema::batch::SignedBatch = serde_json::from_slice(bytes).unwrap();
        let kind = b.entries[0].kind.as_str();
        assert_eq!(routing_key, &format!("{kind}.{node_id}"));
        assert!(
            b.entries.iter().all(|e| e.kind.as_str() == kind),
            "one kind per batch"
        );
        assert!(b.entries.len() <= 25);
    }
    let bodies: Vec<Vec<u8>> = messages.into_iter().map(|(_, b)| b).collect();
    let entries = verify_chain(&node_id, &node.key, &bodies);
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=expected).collect::<Vec<u64>>(),
        "gap-free, in order, once"
    );
    assert_eq!(
        node.feed_lines().await,
        bodies,
        "the feed serves the very same bytes"
    );

    // Confirms were recorded: nothing left to publish.
    let health = node.get("/healthz", None).await;
    assert_eq!(health.body["broker"], "connected");
    assert_eq!(health.body["log"]["outbox_depth"], 0);
    node.node.stop().await;
    queue.delete().await;
}
on_both_backends!(
    publishing,
    approved_records_reach_the_queue_signed_in_order_and_as_in_the_feed
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_registering_while_the_broker_is_unreachable_and_publishes_later() {
    // A port nothing listens on: the broker is "down" from the start.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let node = start_node(Backend::Sqlite, |c| {
        c.amqp_url = Some(format!("amqp://guest:guest@127.0.0.1:{dead_port}/%2f"));
    })
    .await;
    // Before anything is approved the node has tried, and says why it failed.
    let mut health = node.get("/healthz", None).await;
    for _ in 0..200 {
        if health.body["broker"] == "failing" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        health = node.get("/healthz", None).await;
    }
    assert_eq!(health.body["broker"], "failing", "{}", health.body);
    assert_eq!(health.body["status"], "degraded");
    let error = health.body["broker_detail"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("connect") && error.to_lowercase().contains("refused"),
        "{error}"
    );
    assert!(health.body["broker_detail"]["last_connected_at"].is_null());
    for _ in 0..5 {
        node.register_approved("achievements", &fixture("achievement"))
            .await;
    }
    node.wait_for_seq(5).await;
    let health = node.get("/healthz", None).await;
    assert_eq!(health.body["status"], "degraded");
    assert_eq!(health.body["broker"], "failing");
    assert_eq!(
        health.body["log"]["outbox_depth"], 5,
        "sealed but unconfirmed"
    );
    // The publisher counts a failed connect when the attempt ends, which may be after the
    // batch was sealed: wait for it rather than race it.
    let mut text = String::new();
    for _ in 0..200 {
        text = String::from_utf8(node.get("/metrics", None).await.bytes).unwrap();
        if text.contains("rix_node_publish_errors_total{reason=\"connect\"}") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        text.contains("rix_node_publish_errors_total{reason=\"connect\"}"),
        "{text}"
    );
    // The feed serves them all the same.
    let entries = verify_chain(&node.node_id, &node.key, &node.feed_lines().await);
    assert_eq!(entries.len(), 5);
    node.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_address_of_a_broker_list_is_passed_over() {
    // A cluster of two addresses whose first node is down: the node publishes through the
    // second.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let node_id = unique("pub-list");
    let queue = QueueTap::bind(&node_id).await;
    let node = start_node(Backend::Sqlite, |c| {
        c.node_id = node_id.clone();
        c.amqp_url = Some(format!(
            "amqp://guest:guest@127.0.0.1:{dead_port}/%2f,{}",
            amqp_url()
        ));
    })
    .await;
    for _ in 0..5 {
        node.register_approved("achievements", &fixture("achievement"))
            .await;
    }
    let bodies: Vec<Vec<u8>> = queue
        .drain_until(5, std::time::Duration::from_secs(30))
        .await
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let entries = verify_chain(&node_id, &node.key, &bodies);
    assert_eq!(entries.len(), 5, "all through the second address");
    let health = node.get("/healthz", None).await;
    assert_eq!(health.body["broker"], "connected", "{}", health.body);
    assert_eq!(health.body["log"]["outbox_depth"], 0);
    node.node.stop().await;
    queue.delete().await;
}
