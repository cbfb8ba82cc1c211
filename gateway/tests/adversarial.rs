//! Transports that lie about where a batch comes from: a node's feed serving another node's
//! batches is refused as `misdirected` and applies nothing (the AMQP side of the same attack is
//! a case of the dead-letter corpus in `consumer.rs`).

mod common;

use common::{Backend, FakeNode, Feed, Gateway};
use rix_gateway::pull::{PullConfig, PullError, Puller};
use rix_gateway::trust;
use rix_schema::batch::Refusal;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_serving_another_nodes_batches_is_refused_and_applies_nothing() {
    let gw = Gateway::open(Backend::Sqlite);
    let mut honest = FakeNode::new("prov", 51, 0.0);
    honest.seal_new(5);
    let mut other = FakeNode::new("prov", 52, 0.0);
    other.seal_new(4);
    // Both are trusted nodes; the feed URL of `honest` serves `other`'s signed batches.
    let feed = Feed::default();
    feed.serve_node(&other);
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/feed"))
        .respond_with(feed.clone())
        .mount(&server)
        .await;
    honest.trust(&gw.db, Some(&server.uri()));
    trust::set_feed_token(
        &gw.db,
        &honest.node_id,
        Some("feed-token-of-the-honest-node"),
    )
    .unwrap();
    other.trust(&gw.db, None);
    let puller = Puller::new(gw.ingest.clone(), PullConfig::default(), &gw.registry).unwrap();
    let err = puller
        .catch_up_once(&honest.node_id, &server.uri())
        .await
        .unwrap_err();
    match &err {
        PullError::Refused { refusal, .. } => assert!(
            matches!(&**refusal, Refusal::Misdirected { node_id, .. } if *node_id == other.node_id),
            "{refusal}"
        ),
        e => panic!("expected a misdirected refusal, got {e}"),
    }
    assert_eq!(gw.refusal_reasons(), vec!["misdirected"]);
    assert_eq!(gw.change_count(), 0);
    assert_eq!(gw.record_count(&other.node_id), 0);
}
