//! The HTTP feed puller against nodes' feeds played by wiremock (and, for a body that never
//! ends, a raw TCP server), feeding a real catalogue on SQLite and PostgreSQL with genuine
//! signed batches of seeded sample records.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    Backend, Change, FakeNode, Feed, Gateway, eventually, on_both_backends, requested_afters,
};
use rix_gateway::pull::{PullConfig, PullError, Puller};
use rix_gateway::trust;
use rix_schema::batch::Refusal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Small pages (so every feed here takes several), short timeouts and backoffs.
fn config() -> PullConfig {
    PullConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        page_limit: 10,
        poll_interval: Duration::from_millis(200),
        max_page_bytes: 64 * 1024 * 1024,
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        rescan_interval: Duration::from_millis(200),
        ..PullConfig::default()
    }
}

/// The bearer token `node` enrolled the test gateway with (its `[[gateways]]` entry).
fn feed_token(node: &FakeNode) -> String {
    rix_test_support::tokens::feed_token(&node.node_id)
}

/// Trusts `node`'s key with its feed URL, and stores the token its feed demands, as
/// `rix trust add --feed-url … --feed-token-file …` does.
fn trust(gw: &Gateway, node: &FakeNode, feed_url: &str) {
    node.trust(&gw.db, Some(feed_url));
    trust::set_feed_token(&gw.db, &node.node_id, Some(&feed_token(node))).unwrap();
}

/// A node's feed played by wiremock, closed as a node's is: `feed` to the holder of `node`'s
/// feed token, 401 problem+json to anyone else.
async fn closed_feed(feed: &Feed, node: &FakeNode) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/feed"))
        .and(header(
            "authorization",
            format!("Bearer {}", feed_token(node)).as_str(),
        ))
        .respond_with(feed.clone())
        .with_priority(10)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/feed"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Bearer")
                .set_body_raw(
                    r#"{"type":"https://schema.rix.cn/problems/unauthorized","status":401}"#,
                    "application/problem+json",
                ),
        )
        .with_priority(20)
        .mount(&server)
        .await;
    server
}

/// A node with six batches: new records, then revisions and a withdrawal, then more records.
fn busy_node(seed: u64) -> FakeNode {
    let mut node = FakeNode::new("prov", seed, 0.1);
    node.seal_new(7);
    node.seal_new(5);
    node.seal_new(12);
    node.seal_new(3);
    let ids = node.active_ids();
    node.seal(vec![
        Change::Revise(ids[0].clone()),
        Change::Withdraw(ids[1].clone()),
        Change::New,
        Change::Revise(ids[2].clone()),
    ]);
    node.seal_new(6);
    node
}

fn pulls(puller: &Puller, result: &str) -> u64 {
    puller.metrics().pulls.with_label_values(&[result]).get()
}

async fn a_multi_page_feed_fills_the_catalogue_exactly(backend: Backend) {
    let gw = Gateway::open(backend);
    let node = busy_node(11);
    assert!(
        !node.classified.is_empty(),
        "the seed should give the secrecy gate something to stop"
    );
    let feed = Feed::default();
    feed.serve_node(&node);
    let server = closed_feed(&feed, &node).await;
    trust(&gw, &node, &server.uri());
    let puller = Puller::new(gw.ingest.clone(), config(), &gw.registry).unwrap();

    let report = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap();
    assert_eq!(report.batches_applied, 6);
    assert_eq!(report.batches_duplicate, 0);
    assert_eq!(report.position, node.last_seq());
    assert_eq!(report.remote_last_seq, Some(node.last_seq()));
    assert_eq!(report.entries_quarantined, node.classified.len());
    gw.assert_holds_exactly(&node);
    assert_eq!(gw.change_count() as usize, report.entries_applied);
    // The cursor is the catalogue's position, page after page, at batch boundaries (whole
    // batches of about 10 entries: 7 | 5 | 12 | 3+4 | 6).
    assert_eq!(requested_afters(&server).await, vec![0, 7, 12, 24, 31]);
    assert_eq!(report.pages, 5);
    assert_eq!(pulls(&puller, "ok"), 5);
    assert_eq!(
        gw.metrics
            .batches_applied
            .with_label_values(&["feed"])
            .get(),
        6
    );

    // Pulled again: one request, nothing new, nothing twice.
    let changes = gw.change_count();
    let again = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap();
    assert_eq!((again.pages, again.batches_applied), (1, 0));
    assert_eq!(gw.change_count(), changes);
    gw.assert_holds_exactly(&node);
}
on_both_backends!(
    a_multi_page_feed_fills_the_catalogue_exactly_on,
    a_multi_page_feed_fills_the_catalogue_exactly
);

/// More nodes than pages ingested at once, each page longer than the batches that may wait for
/// their commit across all pages (`PREPARED_AT_ONCE`): every page still completes. A page whose
/// permits were taken out of line order, or held while it waits for another page's, would
/// leave all of them waiting here for ever.
async fn many_long_pages_at_once_all_complete(backend: Backend) {
    use rix_gateway::pull::{PAGES_AT_ONCE, PREPARED_AT_ONCE};
    let gw = Gateway::open(backend);
    let lines_per_page = PREPARED_AT_ONCE + 5;
    let mut nodes = Vec::new();
    let mut servers = Vec::new();
    for n in 0..PAGES_AT_ONCE as u64 + 2 {
        let mut node = FakeNode::new("prov", 40 + n, 0.1);
        for _ in 0..lines_per_page {
            node.seal_new(2);
        }
        let feed = Feed::default();
        feed.serve_node(&node);
        let server = closed_feed(&feed, &node).await;
        trust(&gw, &node, &server.uri());
        nodes.push(node);
        servers.push(server);
    }
    let puller = Puller::new(
        gw.ingest.clone(),
        PullConfig {
            // One page each: every node's whole feed is ingested at once with the others'.
            page_limit: 1000,
            request_timeout: Duration::from_secs(30),
            ..config()
        },
        &gw.registry,
    )
    .unwrap();
    let uris: Vec<String> = servers.iter().map(MockServer::uri).collect();
    let pulls = nodes
        .iter()
        .zip(&uris)
        .map(|(node, uri)| puller.catch_up_once(&node.node_id, uri));
    let reports = tokio::time::timeout(
        Duration::from_secs(120),
        futures_util::future::join_all(pulls),
    )
    .await
    .expect("the pages held each other up");
    for (node, report) in nodes.iter().zip(reports) {
        let report = report.unwrap();
        assert_eq!(report.pages, 1);
        assert_eq!(report.batches_applied, lines_per_page);
        assert_eq!(report.position, node.last_seq());
        gw.assert_holds_exactly(node);
    }
}
on_both_backends!(
    many_long_pages_at_once_all_complete_on,
    many_long_pages_at_once_all_complete
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answering_500_is_pulled_completely_on_a_later_try() {
    let gw = Gateway::open(Backend::Sqlite);
    let node = busy_node(12);
    let feed = Feed::default();
    feed.serve_node(&node);
    let server = closed_feed(&feed, &node).await;
    Mock::given(method("GET"))
        .and(path("/v1/feed"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    trust(&gw, &node, &server.uri());
    let puller = Puller::new(gw.ingest.clone(), config(), &gw.registry).unwrap();

    let err = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PullError::Status { status: 500, .. }),
        "{err}"
    );
    assert_eq!(gw.change_count(), 0);
    assert_eq!(pulls(&puller, "status"), 1);

    // The running puller retries on its own (after a backoff) and gets everything.
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(puller.clone().run(stopped));
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(10))
        .await;
    gw.assert_holds_exactly(&node);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the puller stops on shutdown")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_slower_than_the_timeout_is_abandoned_and_fetched_again() {
    let gw = Gateway::open(Backend::Sqlite);
    let node = busy_node(13);
    let feed = Feed::default();
    feed.serve_node(&node);
    let server = closed_feed(&feed, &node).await;
    let (body, _, last) = feed.page(0, 10);
    Mock::given(method("GET"))
        .and(path("/v1/feed"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Rix-Last-Seq", last.to_string().as_str())
                .set_body_raw(body, "application/x-ndjson")
                .set_delay(Duration::from_secs(5)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    trust(&gw, &node, &server.uri());
    let puller = Puller::new(
        gw.ingest.clone(),
        PullConfig {
            request_timeout: Duration::from_millis(500),
            ..config()
        },
        &gw.registry,
    )
    .unwrap();

    let started = Instant::now();
    let err = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up after {:?}, not at the 500 ms timeout",
        started.elapsed()
    );
    assert_eq!(gw.change_count(), 0);
    assert_eq!(pulls(&puller, "timeout"), 1);

    let report = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap();
    assert_eq!(report.batches_applied, 6);
    gw.assert_holds_exactly(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_or_corrupt_line_applies_nothing_of_itself_and_a_later_page_completes() {
    let gw = Gateway::open(Backend::Sqlite);
    let node = busy_node(14);
    let feed = Feed::default();
    feed.serve_node(&node);
    let server = closed_feed(&feed, &node).await;
    trust(&gw, &node, &server.uri());
    let puller = Puller::new(gw.ingest.clone(), config(), &gw.registry).unwrap();
    let first = node.batches[0].header.clone();
    let second = node.bytes(2);

    // The connection is cut in the middle of batch 2: batch 1 applies, the fragment does not,
    // and nothing is audited (the node did nothing wrong).
    let mut cut = node.bytes(1);
    cut.push(b'\n');
    cut.extend_from_slice(&second[..second.len() / 2]);
    Mock::given(method("GET"))
        .and(path("/v1/feed"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(cut, "application/x-ndjson"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let err = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PullError::Truncated {
                complete_lines: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(gw.position(&node.node_id), first.last_seq);
    assert_eq!(gw.change_count(), 7 - count_classified(&node, 1) as i64);
    assert!(gw.refusal_reasons().is_empty());

    // A whole line that is not JSON: refused as malformed, audited, nothing applied.
    let mut corrupt = second[..second.len() / 2].to_vec();
    corrupt.push(b'\n');
    Mock::given(method("GET"))
        .and(path("/v1/feed"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(corrupt, "application/x-ndjson"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let changes = gw.change_count();
    let err = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap_err();
    assert_eq!(err.refusal_reason(), Some("malformed"), "{err}");
    assert_eq!(gw.change_count(), changes);
    assert_eq!(gw.refusal_reasons(), vec!["malformed"]);

    // The node's next good page completes the catalogue.
    let report = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap();
    assert_eq!(report.batches_applied, 5);
    gw.assert_holds_exactly(&node);
}

/// Classified records among the first `batches` batches of `node`.
fn count_classified(node: &FakeNode, batches: usize) -> usize {
    node.batches[..batches]
        .iter()
        .flat_map(|b| b.entries.iter())
        .filter(|e| node.classified.contains(&e.id))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_missing_a_batch_stops_at_the_gap_and_applies_nothing_after_it() {
    let gw = Gateway::open(Backend::Sqlite);
    let node = busy_node(15);
    let feed = Feed::default();
    // Batch 2 is missing from the feed.
    let mut holey = node.batches.clone();
    holey.remove(1);
    feed.serve(&holey);
    let server = closed_feed(&feed, &node).await;
    trust(&gw, &node, &server.uri());
    let puller = Puller::new(gw.ingest.clone(), config(), &gw.registry).unwrap();

    let err = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PullError::Gap {
                expected_batch_seq: 2,
                found_batch_seq: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(gw.position(&node.node_id), node.batches[0].header.last_seq);
    assert_eq!(gw.change_count(), 7 - count_classified(&node, 1) as i64);
    assert_eq!(pulls(&puller, "gap"), 1);
    assert_eq!(gw.metrics.batches_gap.get(), 1);

    // Once the node serves batch 2, everything applies in order.
    feed.serve_node(&node);
    puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap();
    gw.assert_holds_exactly(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_feed_is_refused_as_a_broken_chain_audited_and_applies_nothing() {
    let gw = Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 16, 0.0);
    node.seal_new(7);
    node.seal_new(5);
    let feed = Feed::default();
    feed.serve_node(&node);
    let server = closed_feed(&feed, &node).await;
    trust(&gw, &node, &server.uri());
    let puller = Puller::new(gw.ingest.clone(), config(), &gw.registry).unwrap();
    puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap();
    gw.assert_holds_exactly(&node);
    let changes = gw.change_count();

    // The node comes back from an old backup and signs another history with the same key:
    // its batch 3 names a batch 2 the catalogue never saw.
    let mut fork = node.fork(99);
    fork.seal_new(7);
    fork.seal_new(5);
    fork.seal_new(4);
    feed.serve(&fork.batches);
    let err = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap_err();
    match &err {
        PullError::Refused { stage, refusal, .. } => {
            assert_eq!(*stage, "check_chain");
            assert!(
                matches!(**refusal, Refusal::BrokenChain { batch_seq: 3, .. }),
                "{refusal}"
            );
        }
        other => panic!("expected a broken chain, got {other}"),
    }
    assert_eq!(gw.refusal_reasons(), vec!["broken_chain"]);
    assert_eq!(gw.change_count(), changes);
    gw.assert_holds_exactly(&node);
    assert_eq!(pulls(&puller, "refused"), 1);
    assert_eq!(
        gw.metrics
            .batches_refused
            .with_label_values(&["broken_chain"])
            .get(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_over_the_byte_ceiling_is_abandoned_unread() {
    let gw = Gateway::open(Backend::Sqlite);
    let node = busy_node(17);
    let feed = Feed::default();
    feed.serve_node(&node);
    let server = closed_feed(&feed, &node).await;
    trust(&gw, &node, &server.uri());
    let puller = Puller::new(
        gw.ingest.clone(),
        PullConfig {
            max_page_bytes: 4096,
            ..config()
        },
        &gw.registry,
    )
    .unwrap();
    let err = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PullError::TooLarge { limit: 4096, .. }),
        "{err}"
    );
    assert_eq!(gw.change_count(), 0);
}

/// A feed that answers 200 and then sends one byte every 100 ms, forever.
async fn trickling_server() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n\
                            content-length: 10000000\r\nx-rix-last-seq: 100\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    if socket.write_all(b" ").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    });
    (url, connections, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_and_stalled_nodes_time_out_without_holding_up_a_healthy_one() {
    let gw = Gateway::open(Backend::Sqlite);
    let request_timeout = Duration::from_secs(3);
    let puller = Puller::new(
        gw.ingest.clone(),
        PullConfig {
            request_timeout,
            ..config()
        },
        &gw.registry,
    )
    .unwrap();

    // A node whose body never ends: the whole page is bounded by the request timeout, however
    // steadily the bytes trickle.
    let trickler = FakeNode::new("trickle", 18, 0.0);
    let (trickle_url, trickle_connections, trickle_task) = trickling_server().await;
    trickler.trust(&gw.db, Some(&trickle_url));
    let started = Instant::now();
    let err = puller
        .catch_up_once(&trickler.node_id, &trickle_url)
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < request_timeout + Duration::from_secs(2),
        "an endless body held the pull for {:?}",
        started.elapsed()
    );

    // A node that never answers at all.
    let staller = FakeNode::new("stall", 19, 0.0);
    let stalled = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(120)))
        .mount(&stalled)
        .await;
    staller.trust(&gw.db, Some(&stalled.uri()));

    // And a healthy one.
    let mut healthy = busy_node(20);
    let feed = Feed::default();
    feed.serve_node(&healthy);
    let server = closed_feed(&feed, &healthy).await;
    trust(&gw, &healthy, &server.uri());

    let timeouts_before = pulls(&puller, "timeout");
    let (stop, stopped) = watch::channel(false);
    let run_started = Instant::now();
    let task = tokio::spawn(puller.clone().run(stopped));
    gw.wait_for_seq(&healthy.node_id, healthy.last_seq(), request_timeout)
        .await;
    // All three were asked at once: the healthy node was pulled while the others hung.
    assert!(run_started.elapsed() < request_timeout);
    assert_eq!(pulls(&puller, "timeout"), timeouts_before);
    let trickling_now = trickle_connections.load(Ordering::SeqCst);
    assert!(trickling_now >= 2, "the endless node was not being pulled");
    wait_for_requests(&stalled, 1, Duration::from_secs(5)).await;
    gw.assert_holds_exactly(&healthy);

    // The two broken nodes time out and back off; the healthy one keeps being polled.
    eventually(
        request_timeout + Duration::from_secs(5),
        "the broken nodes never timed out",
        || pulls(&puller, "timeout") >= timeouts_before + 2,
    )
    .await;
    healthy.seal_new(4);
    feed.serve_node(&healthy);
    gw.wait_for_seq(&healthy.node_id, healthy.last_seq(), Duration::from_secs(5))
        .await;
    gw.assert_holds_exactly(&healthy);
    assert_eq!(gw.position(&trickler.node_id), 0);
    assert_eq!(gw.position(&staller.node_id), 0);
    assert_eq!(puller.metrics().nodes.get(), 3);

    // Shutdown does not wait for the hung requests.
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the puller stops at once, hung requests or not")
        .unwrap();
    trickle_task.abort();
}

/// Waits until the wiremock server has received `n` requests.
async fn wait_for_requests(server: &MockServer, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let seen = server
            .received_requests()
            .await
            .map(|r| r.len())
            .unwrap_or(0);
        if seen >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{seen} requests of {n} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_request_pulls_at_once_even_for_a_node_trusted_after_start() {
    let gw = Gateway::open(Backend::Sqlite);
    let mut first = FakeNode::new("prov", 21, 0.0);
    let feed = Feed::default();
    let server = closed_feed(&feed, &first).await;
    trust(&gw, &first, &server.uri());
    // Polls and rescans so rare that only a fill request can explain a pull.
    let puller = Puller::new(
        gw.ingest.clone(),
        PullConfig {
            poll_interval: Duration::from_secs(3600),
            rescan_interval: Duration::from_secs(3600),
            ..config()
        },
        &gw.registry,
    )
    .unwrap();
    let fill = puller.fill_handle();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(puller.clone().run(stopped));
    wait_for_requests(&server, 1, Duration::from_secs(5)).await;

    first.seal_new(3);
    first.seal_new(4);
    feed.serve_node(&first);
    fill.request(&first.node_id);
    gw.wait_for_seq(&first.node_id, first.last_seq(), Duration::from_secs(5))
        .await;
    gw.assert_holds_exactly(&first);

    // A node trusted while the puller runs: the fill request makes it look again.
    let second = busy_node(22);
    let second_feed = Feed::default();
    second_feed.serve_node(&second);
    let second_server = closed_feed(&second_feed, &second).await;
    trust(&gw, &second, &second_server.uri());
    fill.request(&second.node_id);
    gw.wait_for_seq(&second.node_id, second.last_seq(), Duration::from_secs(5))
        .await;
    gw.assert_holds_exactly(&second);
    assert_eq!(puller.metrics().fill_requests.get(), 2);
    assert_eq!(puller.metrics().nodes.get(), 2);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_puller_presents_each_nodes_feed_token_and_a_refusal_names_the_fix() {
    let gw = Gateway::open(Backend::Sqlite);
    let node = busy_node(23);
    let feed = Feed::default();
    feed.serve_node(&node);
    let server = closed_feed(&feed, &node).await;
    // Trusted, but without the token the node issued: the node refuses, nothing applies.
    node.trust(&gw.db, Some(&server.uri()));
    let puller = Puller::new(gw.ingest.clone(), config(), &gw.registry).unwrap();
    let err = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PullError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--feed-token-file"), "{err}");
    assert_eq!(pulls(&puller, "unauthorized"), 1);
    assert_eq!(gw.change_count(), 0);

    // Another node's token is no better.
    trust::set_feed_token(&gw.db, &node.node_id, Some("feed-token-of-another-node")).unwrap();
    let err = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::Unauthorized { .. }), "{err}");

    // With the node's own token (taken from the trust store at the next pull, no restart).
    trust::set_feed_token(&gw.db, &node.node_id, Some(&feed_token(&node))).unwrap();
    let report = puller
        .catch_up_once(&node.node_id, &server.uri())
        .await
        .unwrap();
    assert_eq!(report.batches_applied, 6);
    gw.assert_holds_exactly(&node);
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| {
        r.headers
            .get("authorization")
            .is_none_or(|v| v.to_str().unwrap().starts_with("Bearer "))
    }));

    // The trust store says a token is set, never what it is.
    let listed = trust::list(&gw.db).unwrap();
    let entry = listed.iter().find(|n| n.node_id == node.node_id).unwrap();
    assert!(entry.feed_token_set);
    let shown = serde_json::to_string(&listed).unwrap();
    assert!(!shown.contains(&feed_token(&node)), "{shown}");
    assert!(trust::set_feed_token(&gw.db, &node.node_id, Some("short")).is_err());
    assert!(trust::set_feed_token(&gw.db, "no-such-node", Some(&feed_token(&node))).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_node_is_reported_as_unreachable_with_the_reason() {
    let gw = Gateway::open(Backend::Sqlite);
    let node = busy_node(29);
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    node.trust(&gw.db, Some(&url));
    let puller = Puller::new(gw.ingest.clone(), config(), &gw.registry).unwrap();
    let err = puller.catch_up_once(&node.node_id, &url).await.unwrap_err();
    let said = err.to_string();
    assert!(matches!(err, PullError::Http { .. }), "{said}");
    assert!(said.contains("the node is unreachable"), "{said}");
    assert!(said.to_lowercase().contains("connection refused"), "{said}");
    assert!(!said.contains("error sending request"), "{said}");
}
