//! `/healthz` tells the truth about ingest (issue 12): for each trusted node, the last batch
//! applied, a refusal with its reason and fix, a feed that does not answer; for the broker,
//! whether the consumer is connected and why not; for the search index, how it stands — and
//! `degraded` with the problems in words when any of it is wrong. The nodes' feeds are played
//! by wiremock (other parties' HTTP services); the catalogue, the batches and their signatures
//! are real.

mod common;

use std::time::Duration;

use common::*;
use rix_gateway::config::{Config, PullConfig};
use rix_gateway::health::HealthConfig;
use rix_gateway::serve::RunningGateway;
use rix_schema::signing::SigningKey;
use serde_json::Value;

/// A port nothing listens on.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn health(http: &reqwest::Client, gw: &RunningGateway) -> Value {
    http.get(format!("http://{}/healthz", gw.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn node<'a>(health: &'a Value, node_id: &str) -> &'a Value {
    health["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == node_id)
        .unwrap_or_else(|| panic!("{node_id} missing from {health}"))
}

/// Polls `/healthz` until `done` holds (at most 20 s).
async fn until(
    http: &reqwest::Client,
    gw: &RunningGateway,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = health(http, gw).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: never happened; last /healthz: {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_each_nodes_ingest_and_turns_degraded_when_a_trusted_node_is_refused_or_unreachable()
 {
    let dir = tempfile::tempdir().unwrap();
    // A node whose feed is in order.
    let mut good = FakeNode::new("good", 31, 0.0);
    good.seal_new(5);
    good.seal_new(5);
    let good_feed = Feed::default();
    good_feed.serve_node(&good);
    let good_server = good_feed.start().await;
    // A node that rotated its key without telling the gateway: every batch is refused.
    let known_key = SigningKey::generate().unwrap();
    let mut rotated = FakeNode::new("rotated", 32, 0.0);
    rotated.seal_new(3);
    let rotated_feed = Feed::default();
    rotated_feed.serve_node(&rotated);
    let rotated_server = rotated_feed.start().await;
    // A node whose feed nobody answers.
    let gone = unique("gone");

    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        amqp_url: Some(format!("amqp://guest:guest@127.0.0.1:{}/%2f", dead_port())),
        pull: PullConfig {
            interval_ms: 100,
            connect_timeout_ms: 500,
            request_timeout_ms: 1000,
            ..PullConfig::default()
        },
        health: HealthConfig {
            unreachable_after_s: 1,
        },
        ..Config::default()
    };
    let db = config.open_database().unwrap();
    good.trust(&db, Some(&good_server.uri()));
    let rotated_view = FakeNode::with_key(&rotated.node_id, known_key.clone(), 0, 0.0);
    rotated_view.trust(&db, Some(&rotated_server.uri()));
    FakeNode::with_key(&gone, SigningKey::generate().unwrap(), 0, 0.0)
        .trust(&db, Some(&format!("http://127.0.0.1:{}", dead_port())));
    let gw = rix_gateway::serve::start(config).await.unwrap();
    let http = reqwest::Client::new();

    let h = until(&http, &gw, "the three nodes' states", |h| {
        node(h, &good.node_id)["last_seq"] == 10
            && node(h, &rotated.node_id)["state"] == "refused"
            && node(h, &gone)["state"] == "unreachable"
            && h["broker"] == "failing"
    })
    .await;
    assert_eq!(h["status"], "degraded", "{h:#}");

    let ok = node(&h, &good.node_id);
    assert_eq!(ok["state"], "ok", "{ok}");
    assert_eq!(ok["last_batch_seq"], 2);
    assert!(ok["last_applied_at"].is_string());
    assert_eq!(ok["feed"]["state"], "connected");
    assert_eq!(ok["behind"], 0);

    let refused = node(&h, &rotated.node_id);
    assert_eq!(refused["refused"]["reason"], "unknown_key", "{refused}");
    let detail = refused["refused"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("rix trust add"),
        "the fix is named: {detail}"
    );
    assert_eq!(refused["last_seq"], 0);
    assert_eq!(
        refused["feed"]["state"], "connected",
        "its feed answers; its batches are what is refused"
    );

    let unreachable = node(&h, &gone);
    assert_eq!(unreachable["feed"]["state"], "failing");
    let error = unreachable["feed"]["last_error"].as_str().unwrap();
    assert!(error.contains("unreachable"), "the cause is named: {error}");

    let broker_error = h["broker_detail"]["last_error"].as_str().unwrap();
    assert!(!broker_error.is_empty());
    assert_eq!(h["search"]["state"], "current", "{h:#}");

    let problems: Vec<&str> = h["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&rotated.node_id) && p.contains("unknown_key"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&gone) && p.contains("unreachable"))
    );
    assert!(problems.iter().any(|p| p.starts_with("broker:")));

    // The operator trusts the node's new key: its next batches apply and it is no longer
    // refused — nor reported as such.
    rotated.trust(&gw.db, None);
    let h = until(&http, &gw, "the rotated node applied", |h| {
        node(h, &rotated.node_id)["state"] == "ok"
    })
    .await;
    let mended = node(&h, &rotated.node_id);
    assert_eq!(mended["last_seq"], 3, "{mended}");
    assert!(mended.get("refused").is_none(), "{mended}");
    let problems = h["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        !problems
            .iter()
            .any(|p| p.as_str().unwrap().contains(&rotated.node_id))
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_gateway_says_ok_with_nothing_to_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut fine = FakeNode::new("fine", 33, 0.0);
    fine.seal_new(4);
    let feed = Feed::default();
    feed.serve_node(&fine);
    let server = feed.start().await;
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        pull: PullConfig {
            interval_ms: 100,
            ..PullConfig::default()
        },
        ..Config::default()
    };
    let db = config.open_database().unwrap();
    fine.trust(&db, Some(&server.uri()));
    let gw = rix_gateway::serve::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let h = until(&http, &gw, "the node applied and indexed", |h| {
        node(h, &fine.node_id)["last_seq"] == 4 && h["search"]["indexed_change_id"] == 4
    })
    .await;
    assert_eq!(h["status"], "ok", "{h:#}");
    assert_eq!(h["problems"], serde_json::json!([]));
    assert_eq!(h["broker"], "none");
    assert!(h.get("broker_detail").is_none());
    assert_eq!(h["search"]["lag_changes"], 0);

    // A path it does not serve, and a method a path does not take, are problem documents too
    // (actix-web answers them before any handler of ours).
    for (method, path) in [
        (reqwest::Method::GET, "/v1/nothing-here"),
        (reqwest::Method::POST, "/v1/search"),
    ] {
        let res = http
            .request(method.clone(), format!("http://{}{path}", gw.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{method} {path}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
        let problem: Value = res.json().await.unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("{method} {path}")),
            "{problem}"
        );
    }
    gw.stop().await;
}
