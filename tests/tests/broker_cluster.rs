//! A RabbitMQ cluster losing a node while nodes publish and the gateway consumes: two nodes
//! stream approvals to the three-node cluster of `ops/rabbitmq-cluster.sh` (the address list
//! in `amqp_url`), the gateway consumes its quorum queue; the broker node they are connected
//! to is stopped (`stop_app`) and started again, then the next one is killed (SIGKILL) and
//! started again. Nothing is lost, nothing is applied twice, and publishing resumes within
//! seconds on another node (the times are printed, not judged).
//!
//! The cluster is started through the ops script when it is not running and left running (as
//! the other test services are); only its own nodes are stopped here, never the shared broker.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rix_test_support::cluster::BrokerCluster;
use rix_tests::*;
use serde_json::Value;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

/// Records a node registers per request of the stream.
const CHUNK: usize = 5;

/// What a node has confirmed at the broker: its log's last seq less what waits in its outbox.
async fn confirmed(http: &reqwest::Client, node_url: &str) -> i64 {
    let (_, h) = get_json(http, &format!("{node_url}/healthz"))
        .await
        .unwrap();
    h["log"]["last_seq"].as_i64().unwrap() - h["log"]["outbox_depth"].as_i64().unwrap()
}

/// Approvals streamed to `node` in chunks until `stop` is set; returns every id approved.
fn stream(
    http: &reqwest::Client,
    node: &NodeProcess,
    province: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    let http = http.clone();
    let url = node.url.clone();
    tokio::spawn(async move {
        let docs = public_achievements(province, 0, 3000);
        let mut ids = Vec::new();
        for chunk in docs.chunks(CHUNK) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            ids.extend(register_approved(&http, &url, "achievements", chunk.to_vec()).await);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert!(
            stop.load(Ordering::SeqCst),
            "the stream ran out of records before the test ended"
        );
        ids
    })
}

/// What a failover cost one node's publishing.
struct Pause {
    /// How long the stop took (`stop_app` closes the connections early in it; a kill drops
    /// them at once).
    stop_took: Duration,
    /// The longest time without a new confirmed entry at any node, from the stop on until
    /// every node had entries confirmed after the stop had ended: how long publishing stalled.
    longest_stall: Duration,
}

/// How a broker node goes away.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// `rabbitmqctl stop_app`: the broker closes its connections and leaves the cluster's
    /// quorum in order.
    Stop,
    /// SIGKILL of its Erlang VM: a crash.
    Kill,
}

/// Fails broker node `n` of `cluster` (`how`) while `nodes` publish, sampling every 20 ms what
/// each node has confirmed; returns once every node has had entries confirmed after the
/// failure (so on another broker node).
async fn fail_over(
    http: &reqwest::Client,
    cluster: &BrokerCluster,
    n: u8,
    how: Failure,
    nodes: &[&NodeProcess],
) -> Pause {
    let began = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let mut samplers = Vec::new();
    for node in nodes {
        let (http, url, done) = (http.clone(), node.url.clone(), done.clone());
        let mut last = confirmed(&http, &url).await;
        samplers.push(tokio::spawn(async move {
            // (time of the last increase, longest time between increases)
            let (mut since, mut longest) = (Instant::now(), Duration::ZERO);
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let now = confirmed(&http, &url).await;
                if now > last {
                    longest = longest.max(since.elapsed());
                    (since, last) = (Instant::now(), now);
                }
            }
            longest.max(since.elapsed())
        }));
    }
    tokio::task::block_in_place(|| match how {
        Failure::Stop => cluster.stop_node(n),
        Failure::Kill => cluster.kill_node(n),
    });
    let stop_took = began.elapsed();
    for node in nodes {
        let at_stop = confirmed(http, &node.url).await;
        poll_until(
            &format!(
                "node {} publishes again after broker node {n} stopped",
                node.node_id
            ),
            WITHIN,
            || async {
                let now = confirmed(http, &node.url).await;
                if now > at_stop {
                    Ok(())
                } else {
                    Err(format!("{now} confirmed; node log:\n{}", node.log_tail()))
                }
            },
        )
        .await;
    }
    done.store(true, Ordering::SeqCst);
    let mut longest_stall = Duration::ZERO;
    for s in samplers {
        longest_stall = longest_stall.max(s.await.unwrap());
    }
    Pause {
        stop_took,
        longest_stall,
    }
}

/// When the test ends, passed or not: starts again a broker node a failed test left stopped,
/// and deletes the test gateway's queue on the cluster (bound to every batch, it would fill up
/// with later runs' batches).
struct Cleanup<'a>(&'a BrokerCluster, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if std::thread::panicking() {
                // A broker node this test stopped is started again.
                BrokerCluster::start();
            }
            self.0.ctl(1, &["-q", "delete_queue", &self.1])
        }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_broker_nodes_loses_nothing_and_applies_nothing_twice() {
    let cluster = BrokerCluster::start();
    let urls = cluster.url_list();
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let yunnan_id = unique("prov-530000");
    let liaoning_id = unique("prov-210000");
    let yunnan = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec::new(&yunnan_id, "530000")
            .with_broker(urls.clone())
            .with_batches(5, 5),
    );
    let liaoning = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec::new(&liaoning_id, "210000")
            .with_broker(urls.clone())
            .with_batches(5, 5),
    );
    // Dropped after the gateway (declared before it): deleted once nothing consumes it.
    let queue = Cleanup(&cluster, unique("rix.gateway.cluster"));
    // Feeds polled once a minute: the cluster is the gateway's live path.
    let gateway = GatewayProcess::start_with(
        RIX,
        dir.path(),
        GatewaySpec {
            amqp_url: Some(urls.clone()),
            amqp_queue: Some(queue.1.clone()),
            pull_interval_ms: Some(60_000),
            ..GatewaySpec::default()
        },
        &[&yunnan, &liaoning],
    );
    let nodes = [&yunnan, &liaoning];

    let stop = Arc::new(AtomicBool::new(false));
    let streams = [
        stream(&http, &yunnan, "530000", stop.clone()),
        stream(&http, &liaoning, "210000", stop.clone()),
    ];
    // The stream flows through the cluster before anything fails.
    for node in nodes {
        poll_until("the first batches confirmed", WITHIN, || async {
            (confirmed(&http, &node.url).await >= 10)
                .then_some(())
                .ok_or_else(|| node.log_tail())
        })
        .await;
    }
    wait_for_metric(
        &http,
        &gateway.url,
        "rix_gateway_batches_applied_total{transport=\"amqp\"}",
        1.0,
    )
    .await;

    // The gateway's queue is a quorum queue with a member on each broker node.
    let listed = tokio::task::block_in_place(|| {
        cluster.ctl(1, &["-q", "list_queues", "name", "type", "members"])
    });
    let line = listed
        .lines()
        .find(|l| l.split_whitespace().next() == Some(queue.1.as_str()))
        .unwrap_or_else(|| panic!("queue {} on the cluster:\n{listed}", queue.1));
    assert!(
        line.contains("quorum") && (1..=3).all(|n| line.contains(&format!("rix-c{n}@"))),
        "{line}"
    );

    // Everyone is connected to the first address, node 1: stop it, then (with node 1 back)
    // kill node 2, where they went next. Two of three stay up, so the quorum queue stays
    // available.
    let mut stalls = Vec::new();
    for (n, how) in [(1u8, Failure::Stop), (2, Failure::Kill)] {
        let pause = fail_over(&http, &cluster, n, how, &nodes).await;
        eprintln!(
            "broker node {n} failed ({how:?}, took {:?}); publishing stalled at most {:?}",
            pause.stop_took, pause.longest_stall
        );
        stalls.push(pause.longest_stall);
        // Publishing goes on a while on the remaining two before the node comes back.
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| cluster.start_node(n));
    }
    // The nodes come back while the stream goes on; then it ends.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let mut approved: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (node, s) in nodes.iter().zip(streams) {
        approved.insert(node.node_id.clone(), s.await.unwrap());
    }

    // Settle: each node's outbox empty (everything confirmed by the cluster), the gateway at
    // each node's head, the queue empty.
    for node in nodes {
        let head = approved[&node.node_id].len() as i64;
        wait_node_published(&http, node, head).await;
        poll_until(
            &format!("the gateway holds {} up to seq {head}", node.node_id),
            WITHIN,
            || async {
                let h = gateway_node_health(&http, &gateway.url, &node.node_id).await?;
                match h {
                    Some(h) if h["last_seq"] == head => Ok(()),
                    other => Err(format!("{other:?}; gateway log:\n{}", gateway.log_tail())),
                }
            },
        )
        .await;
    }
    poll_until("the gateway's queue is empty", WITHIN, || async {
        let listed = tokio::task::block_in_place(|| {
            cluster.ctl(1, &["-q", "list_queues", "name", "messages"])
        });
        let line = listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(gateway.queue.as_str()))
            .map(str::to_owned);
        match line.as_deref().and_then(|l| l.split_whitespace().nth(1)) {
            Some("0") => Ok(()),
            _ => Err(format!("{line:?}")),
        }
    })
    .await;

    // Exact counts: one change per approval, each (node, id, version) once; every record at
    // version 1; the catalogue changed exactly once per entry.
    let total: usize = approved.values().map(Vec::len).sum();
    let changes = wait_for_changes(&http, &gateway, "", total).await;
    let applied: BTreeSet<(String, String, i64)> = changes
        .iter()
        .map(|c| {
            (
                c["node_id"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
                c["version"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, i64)> = approved
        .iter()
        .flat_map(|(node, ids)| ids.iter().map(|id| (node.clone(), id.clone(), 1)))
        .collect();
    assert_eq!(expected.len(), total, "every approval a new record");
    assert_eq!(
        applied, expected,
        "every approved record, at its version, once"
    );
    for (node_id, ids) in &approved {
        for id in ids {
            let (status, body): (u16, Value) =
                get_json(&http, &format!("{}/v1/records/{node_id}/{id}", gateway.url))
                    .await
                    .unwrap();
            assert_eq!(status, 200, "{node_id}/{id}: {body}");
        }
    }
    let entries_applied = metric(&http, &gateway.url, "rix_gateway_entries_applied_total").await;
    assert_eq!(
        entries_applied as usize, total,
        "each entry changed the catalogue once: a re-delivered batch is a duplicate, not applied"
    );
    let duplicates =
        metric(&http, &gateway.url, "rix_gateway_batches_duplicate_total").await as u64;
    let by_amqp = batches_applied(&http, &gateway.url, "amqp").await as u64;
    let by_feed = batches_applied(&http, &gateway.url, "feed").await as u64;
    let reconnects = metric(&http, &gateway.url, "rix_gateway_broker_reconnects_total").await;
    assert!(
        reconnects >= 2.0,
        "the gateway failed over twice: {reconnects}"
    );
    // Each failover went to the next address of the list: broker nodes 2, then 3.
    for address in &cluster.urls[1..] {
        let host = address
            .split('@')
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        for node in nodes {
            assert!(
                node.log()
                    .lines()
                    .any(|l| l.contains("connected to the broker") && l.contains(host)),
                "node {} connected to {host}; its log:\n{}",
                node.node_id,
                node.log_tail()
            );
        }
        assert!(
            gateway
                .log()
                .lines()
                .any(|l| l.contains("consuming from the broker") && l.contains(host)),
            "the gateway consumed from {host}; its log:\n{}",
            gateway.log_tail()
        );
    }
    eprintln!(
        "{total} records ({} + {}) approved across two broker-node failures; applied exactly \
         once each; batches applied {by_amqp} by the broker, {by_feed} by the feed; \
         {duplicates} duplicate batches recognised; gateway reconnects {reconnects}; \
         publishing stalled at most {:?} and {:?}",
        approved[&yunnan_id].len(),
        approved[&liaoning_id].len(),
        stalls[0],
        stalls[1],
    );
}
