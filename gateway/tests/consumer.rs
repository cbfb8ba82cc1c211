//! The AMQP consumer on the real RabbitMQ: genuine signed batches published straight onto the
//! exchange reach a real catalogue (SQLite and PostgreSQL); duplicates and reordering end
//! exactly right with the feed filling gaps; every kind of refused batch lands on the
//! dead-letter queue with its reason; the consumer survives losing its queue and its connection.
//!
//! Each test has its own exchange, queues and dead-letter exchange, so tests running at the
//! same time (and the node's tests, which publish to `rix.records`) never see each other's
//! messages.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Backend, Change, FakeNode, Feed, Gateway, eventually, on_both_backends};
use diesel::{QueryDsl, RunQueryDsl};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rix_gateway::consume::{
    Consumer, ConsumerConfig, ConsumerMetrics, HEADER_DETAIL, HEADER_REASON, HEADER_STAGE,
    QueueType,
};
use rix_gateway::pull::{FillHandle, PullConfig, Puller};
use rix_gateway::trust;
use rix_schema::batch::{BatchLimits, SignedBatch};
use rix_schema::signing::SigningKey;
use tokio::sync::watch;

/// A consumer running on its own exchange and queues, and the test's own connection to the
/// broker to publish and inspect.
struct Rig {
    config: ConsumerConfig,
    metrics: ConsumerMetrics,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    connection: Connection,
    channel: Channel,
}

/// A message taken from the dead-letter queue.
#[derive(Debug)]
struct DeadLetter {
    headers: BTreeMap<String, String>,
    routing_key: String,
    body: Vec<u8>,
}

fn text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

impl Rig {
    async fn start(gw: &Gateway, fill: Option<FillHandle>) -> Rig {
        Rig::start_at(gw, fill, &common::amqp_url()).await
    }

    /// [`Rig::start`] with the consumer given the broker address (list) `url`.
    async fn start_at(gw: &Gateway, fill: Option<FillHandle>, url: &str) -> Rig {
        let tag = common::unique("t");
        let config = ConsumerConfig {
            exchange: format!("rix.test.{tag}"),
            queue: format!("rix.gateway.{tag}"),
            dead_letter_exchange: format!("rix.test.{tag}.dlx"),
            dead_letter_queue: format!("rix.gateway.{tag}.dead"),
            prefetch: 16,
            lanes: 2,
            ..ConsumerConfig::new(url)
        };
        let consumer = Consumer::new(config.clone(), gw.ingest.clone(), fill, &gw.registry);
        let metrics = consumer.metrics().clone();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(consumer.run(stopped));
        eventually(
            Duration::from_secs(20),
            "the consumer never connected",
            || metrics.broker_connected.get() == 1,
        )
        .await;
        let connection = Connection::connect(&common::amqp_url(), ConnectionProperties::default())
            .await
            .expect("the test broker is reachable");
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Rig {
            config,
            metrics,
            stop,
            task: Some(task),
            connection,
            channel,
        }
    }

    /// Publishes onto the test's exchange as a node would (persistent, confirmed), with a
    /// `x-test-case` header naming the case.
    async fn publish(&self, routing_key: &str, body: &[u8], case: &str) {
        self.publish_as(routing_key, None, body, case).await;
    }

    /// [`Rig::publish`] with the header `rix-node-id` set to `node_header`.
    async fn publish_as(
        &self,
        routing_key: &str,
        node_header: Option<&str>,
        body: &[u8],
        case: &str,
    ) {
        let mut headers = FieldTable::default();
        headers.insert("x-test-case".into(), AMQPValue::LongString(case.into()));
        if let Some(node) = node_header {
            headers.insert("rix-node-id".into(), AMQPValue::LongString(node.into()));
        }
        let confirmation = self
            .channel
            .basic_publish(
                self.config.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_headers(headers),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirmation.is_ack(), "the broker took the message");
    }

    /// Publishes a node's batch with the node's routing key.
    async fn publish_batch(&self, node: &FakeNode, bytes: &[u8], case: &str) {
        self.publish(&format!("achievement.{}", node.node_id), bytes, case)
            .await;
    }

    /// Ready messages on a queue.
    async fn depth(&self, queue: &str) -> u32 {
        let probe = self.connection.create_channel().await.unwrap();
        let q = probe
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = probe.close(200, "done".into()).await;
        q.message_count()
    }

    /// Takes `n` messages from the dead-letter queue (waiting up to `within`), then checks
    /// that no more come.
    async fn dead_letters(&self, n: usize, within: Duration) -> Vec<DeadLetter> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < n {
            assert!(
                Instant::now() < deadline,
                "{} dead letters of {n} after {within:?}: {out:?}",
                out.len()
            );
            match self
                .channel
                .basic_get(
                    self.config.dead_letter_queue.as_str().into(),
                    BasicGetOptions::default(),
                )
                .await
                .unwrap()
            {
                Some(message) => {
                    let d = &message.delivery;
                    let headers = d
                        .properties
                        .headers()
                        .as_ref()
                        .map(|h| {
                            h.inner()
                                .iter()
                                .map(|(k, v)| (k.as_str().to_owned(), text(v)))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(DeadLetter {
                        headers,
                        routing_key: d.routing_key.as_str().to_owned(),
                        body: d.data.clone(),
                    });
                    d.ack(BasicAckOptions::default()).await.unwrap();
                }
                None => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
        out
    }

    /// Stops the consumer (which must return promptly) and removes the test's broker objects.
    async fn finish(mut self) {
        self.stop.send(true).unwrap();
        let task = self.task.take().expect("finished once");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the consumer stops on shutdown")
            .unwrap();
        assert_eq!(self.metrics.broker_connected.get(), 0);
        remove_objects(&self.channel, &self.config).await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// Deletes a test's queues and exchanges.
async fn remove_objects(channel: &Channel, config: &ConsumerConfig) {
    for q in [&config.queue, &config.dead_letter_queue] {
        let _ = channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for e in [&config.exchange, &config.dead_letter_exchange] {
        let _ = channel
            .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
}

impl Drop for Rig {
    /// A test that failed before [`Rig::finish`] still leaves no durable queues behind.
    fn drop(&mut self) {
        if self.task.is_none() {
            return;
        }
        let _ = self.stop.send(true);
        let config = self.config.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok(connection) =
                    Connection::connect(&common::amqp_url(), ConnectionProperties::default()).await
                else {
                    return;
                };
                if let Ok(channel) = connection.create_channel().await {
                    remove_objects(&channel, &config).await;
                }
                let _ = connection.close(200, "done".into()).await;
            });
        })
        .join();
    }
}

async fn published_batches_reach_the_catalogue_exactly(backend: Backend) {
    let gw = Gateway::open(backend);
    let mut node = FakeNode::new("prov", 31, 0.1);
    node.trust(&gw.db, None);
    let rig = Rig::start(&gw, None).await;

    for n in [5, 8, 3, 6] {
        let bytes = node.seal_new(n);
        rig.publish_batch(&node, &bytes, "genuine").await;
    }
    let ids = node.active_ids();
    let bytes = node.seal(vec![
        Change::Revise(ids[3].clone()),
        Change::Withdraw(ids[4].clone()),
        Change::New,
    ]);
    rig.publish_batch(&node, &bytes, "genuine").await;

    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;
    gw.assert_holds_exactly(&node);
    assert_eq!(
        gw.metrics
            .batches_applied
            .with_label_values(&["amqp"])
            .get(),
        5
    );
    assert_eq!(
        gw.metrics
            .batches_duplicate
            .with_label_values(&["amqp"])
            .get(),
        0
    );
    assert!(gw.refusal_reasons().is_empty());
    // Everything acknowledged, nothing dead-lettered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.depth(&rig.config.queue).await > 0 {
        assert!(Instant::now() < deadline, "deliveries left on the queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rig.depth(&rig.config.dead_letter_queue).await, 0);
    rig.finish().await;
}
on_both_backends!(
    published_batches_reach_the_catalogue_exactly_on,
    published_batches_reach_the_catalogue_exactly
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_address_of_a_broker_list_is_passed_over() {
    // A cluster of two addresses whose first node is down: the consumer moves on to the
    // second and consumes there.
    let gw = Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 33, 0.1);
    node.trust(&gw.db, None);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("amqp://guest:guest@{}/%2f", dead.local_addr().unwrap());
    drop(dead);
    let rig = Rig::start_at(&gw, None, &format!("{dead_url},{}", common::amqp_url())).await;
    assert!(
        rig.metrics.reconnects.get() >= 1,
        "the dead first address was tried, then the next"
    );
    let bytes = node.seal_new(5);
    rig.publish_batch(&node, &bytes, "genuine").await;
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;
    gw.assert_holds_exactly(&node);
    rig.finish().await;
}

async fn duplicated_and_reordered_deliveries_end_exactly_right(backend: Backend) {
    let gw = Gateway::open(backend);
    let mut node = FakeNode::new("prov", 32, 0.1);
    for n in [4, 6, 5, 7] {
        node.seal_new(n);
    }
    let ids = node.active_ids();
    node.seal(vec![
        Change::Revise(ids[0].clone()),
        Change::Withdraw(ids[1].clone()),
        Change::New,
    ]);
    // The node's feed, holding nothing yet: the puller can only act on a fill request.
    let feed = Feed::default();
    let server = feed.start().await;
    node.trust(&gw.db, Some(&server.uri()));
    let puller = Puller::new(
        gw.ingest.clone(),
        PullConfig {
            poll_interval: Duration::from_secs(3600),
            rescan_interval: Duration::from_secs(3600),
            backoff_initial: Duration::from_millis(50),
            ..PullConfig::default()
        },
        &gw.registry,
    )
    .unwrap();
    let (stop_puller, puller_stopped) = watch::channel(false);
    let puller_task = tokio::spawn(puller.clone().run(puller_stopped));
    let rig = Rig::start(&gw, Some(puller.fill_handle())).await;
    let seq_after = |b: usize| node.batches[b - 1].header.last_seq;

    // Batch 1, then batch 2 twice: the second copy is a duplicate.
    rig.publish_batch(&node, &node.bytes(1), "b1").await;
    rig.publish_batch(&node, &node.bytes(2), "b2").await;
    rig.publish_batch(&node, &node.bytes(2), "b2 again").await;
    gw.wait_for_seq(&node.node_id, seq_after(2), Duration::from_secs(30))
        .await;
    let duplicates = || {
        gw.metrics
            .batches_duplicate
            .with_label_values(&["amqp"])
            .get()
    };
    eventually(
        Duration::from_secs(10),
        "batch 2 again was no duplicate",
        || duplicates() == 1,
    )
    .await;

    // The node has sealed batches 3 and 4, but the broker brings 4 first: a gap, filled from
    // the feed (which holds 3 and 4).
    feed.serve(&node.batches[..4]);
    rig.publish_batch(&node, &node.bytes(4), "b4 before b3")
        .await;
    gw.wait_for_seq(&node.node_id, seq_after(4), Duration::from_secs(30))
        .await;
    assert_eq!(rig.metrics.gap_fills.get(), 1);
    assert_eq!(puller.metrics().fill_requests.get(), 1);
    assert!(
        common::requested_afters(&server)
            .await
            .contains(&seq_after(2)),
        "the fill pulled from the catalogue's position"
    );

    // Batch 3 arrives late: a duplicate; then batch 5 in order.
    rig.publish_batch(&node, &node.bytes(3), "b3 late").await;
    rig.publish_batch(&node, &node.bytes(5), "b5").await;
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;
    eventually(
        Duration::from_secs(10),
        "batch 3 late was no duplicate",
        || duplicates() == 2,
    )
    .await;

    gw.assert_holds_exactly(&node);
    let entries: usize = node.batches.iter().map(|b| b.entries.len()).sum();
    assert_eq!(
        gw.change_count() as usize,
        entries - node.classified.len(),
        "every change exactly once"
    );
    let batches: i64 = rix_gateway::db::schema::batches::table
        .count()
        .get_result(&mut *gw.db.conn().unwrap())
        .unwrap();
    assert_eq!(batches, 5);
    let applied = |t: &str| gw.metrics.batches_applied.with_label_values(&[t]).get();
    assert_eq!((applied("amqp"), applied("feed")), (3, 2));
    assert!(gw.refusal_reasons().is_empty());
    assert_eq!(rig.depth(&rig.config.dead_letter_queue).await, 0);

    rig.finish().await;
    stop_puller.send(true).unwrap();
    puller_task.await.unwrap();
}
on_both_backends!(
    duplicated_and_reordered_deliveries_end_exactly_right_on,
    duplicated_and_reordered_deliveries_end_exactly_right
);

/// A copy of a batch with `change` applied to its JSON.
fn tampered(batch: &SignedBatch, change: impl FnOnce(&mut SignedBatch)) -> Vec<u8> {
    let mut b = batch.clone();
    change(&mut b);
    b.to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_batches_are_dead_lettered_with_their_reason_and_change_nothing() {
    let limits = BatchLimits {
        max_bytes: 256 * 1024,
        ..BatchLimits::default()
    };
    let gw = Gateway::with_limits(Backend::Sqlite, limits);
    let mut node = FakeNode::new("prov", 33, 0.0);
    node.trust(&gw.db, None);
    let rig = Rig::start(&gw, None).await;
    let bytes = node.seal_new(4);
    rig.publish_batch(&node, &bytes, "b1").await;
    let bytes = node.seal_new(5);
    rig.publish_batch(&node, &bytes, "b2").await;
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;
    let changes = gw.change_count();

    // The corpus: (case, routing key, body, expected reason, expected stage).
    let mut corpus: Vec<(&str, String, Vec<u8>, &str, &str)> = Vec::new();
    let route = |n: &str| format!("achievement.{n}");

    let mut ghost = FakeNode::new("ghost", 34, 0.0);
    corpus.push((
        "unknown node",
        route(&ghost.node_id),
        ghost.seal_new(2),
        "unknown_node",
        "verify",
    ));
    let mut impostor = FakeNode::with_key(&node.node_id, SigningKey::generate().unwrap(), 35, 0.0);
    corpus.push((
        "unknown key",
        route(&node.node_id),
        impostor.seal_new(2),
        "unknown_key",
        "verify",
    ));
    let mut revoked = FakeNode::new("revoked", 36, 0.0);
    revoked.trust(&gw.db, None);
    trust::revoke(&gw.db, &revoked.node_id, &revoked.key.key_id()).unwrap();
    corpus.push((
        "revoked key",
        route(&revoked.node_id),
        revoked.seal_new(2),
        "key_revoked",
        "verify",
    ));
    let mut early = FakeNode::new("early", 37, 0.0);
    trust::add(
        &gw.db,
        &early.node_id,
        None,
        None,
        early.key.verifying_key(),
        Some("2099-01-01T00:00:00Z"),
        None,
    )
    .unwrap();
    corpus.push((
        "key not valid yet",
        route(&early.node_id),
        early.seal_new(2),
        "key_not_valid",
        "verify",
    ));

    // Batch 3 of the node, genuine; tampered copies go first, the genuine one last.
    let genuine = node.seal_new(6);
    let third = node.batches[2].clone();
    corpus.push((
        "bad signature",
        route(&node.node_id),
        tampered(&third, |b| {
            // Another base64 character in the middle: still 64 bytes, no longer the signature.
            let mut sig = b.signature.clone().into_bytes();
            sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
            b.signature = String::from_utf8(sig).unwrap();
        }),
        "bad_signature",
        "verify",
    ));
    corpus.push((
        "altered entry",
        route(&node.node_id),
        tampered(&third, |b| {
            b.entries[2].record.as_mut().unwrap()["title"] = "篡改的成果名称".into();
        }),
        "merkle_mismatch",
        "verify",
    ));
    corpus.push((
        "dropped entry",
        route(&node.node_id),
        tampered(&third, |b| {
            b.entries.remove(3);
        }),
        "seq_gap",
        "verify",
    ));
    corpus.push((
        "swapped entries",
        route(&node.node_id),
        tampered(&third, |b| b.entries.swap(1, 2)),
        "out_of_order",
        "verify",
    ));
    // Another history signed with the node's own key: its batch 1 is a replay of a different
    // batch, its batch 3 does not follow the batch 2 the catalogue holds.
    let mut fork = node.fork(38);
    let other_first = fork.seal_new(4);
    fork.seal_new(5);
    let other_third = fork.seal_new(6);
    corpus.push((
        "different batch 1",
        route(&node.node_id),
        other_first,
        "replay",
        "check_chain",
    ));
    corpus.push((
        "forked batch 3",
        route(&node.node_id),
        other_third,
        "broken_chain",
        "check_chain",
    ));
    let mut big = FakeNode::new("big", 39, 0.0);
    let oversized = big.seal_new(300);
    assert!(oversized.len() > limits.max_bytes);
    corpus.push((
        "oversized",
        route(&big.node_id),
        oversized,
        "oversized",
        "verify",
    ));
    // A trusted node's own, valid batch published under another node's routing key.
    let mut mallory = FakeNode::new("mallory", 40, 0.0);
    mallory.trust(&gw.db, None);
    corpus.push((
        "another node's routing key",
        route(&node.node_id),
        mallory.seal_new(2),
        "misdirected",
        "verify",
    ));
    // Its own routing key, but a header that names another node: which one sent it?
    let mut mallet = FakeNode::new("mallet", 41, 0.0);
    mallet.trust(&gw.db, None);
    corpus.push((
        "header names another node",
        route(&mallet.node_id),
        mallet.seal_new(2),
        "misdirected",
        "verify",
    ));
    let node_header: BTreeMap<&str, &str> =
        [("header names another node", node.node_id.as_str())].into();
    corpus.push((
        "extra disclosure",
        route(&node.node_id),
        tampered(&third, |b| {
            b.disclosures
                .push(r#"["AAAAAAAAAAAAAAAAAAAAAA","/title","伪造的名称"]"#.to_owned());
        }),
        "bad_disclosure",
        "verify",
    ));
    corpus.push((
        "not json",
        route(&node.node_id),
        b"{\"header\": {\"node_id\": ".to_vec(),
        "malformed",
        "verify",
    ));

    for (case, key, body, _, _) in &corpus {
        rig.publish_as(key, node_header.get(case).copied(), body, case)
            .await;
    }
    rig.publish_batch(&node, &genuine, "b3").await;

    let letters = rig
        .dead_letters(corpus.len(), Duration::from_secs(30))
        .await;
    let by_case: BTreeMap<&str, &DeadLetter> = letters
        .iter()
        .map(|l| (l.headers["x-test-case"].as_str(), l))
        .collect();
    assert_eq!(by_case.len(), corpus.len(), "one dead letter per case");
    for (case, key, body, reason, stage) in &corpus {
        let letter = by_case
            .get(case)
            .unwrap_or_else(|| panic!("{case}: not dead-lettered"));
        assert_eq!(letter.headers[HEADER_REASON], *reason, "{case}");
        assert_eq!(letter.headers[HEADER_STAGE], *stage, "{case}");
        assert!(
            !letter.headers[HEADER_DETAIL].is_empty(),
            "{case}: no detail"
        );
        assert_eq!(&letter.routing_key, key, "{case}");
        assert_eq!(&letter.headers["rix-original-routing-key"], key, "{case}");
        assert_eq!(&letter.body, body, "{case}: the body travels unchanged");
        assert_eq!(
            rig.metrics.dead_lettered.with_label_values(&[reason]).get(),
            corpus.iter().filter(|c| c.3 == *reason).count() as u64,
            "{case}"
        );
    }

    // The genuine batch 3 still applies after all that; nothing else changed.
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;
    gw.assert_holds_exactly(&node);
    assert_eq!(gw.change_count(), changes + 6);
    for other in [&ghost, &revoked, &early, &big, &mallory, &mallet] {
        assert_eq!(gw.record_count(&other.node_id), 0);
    }
    let mut audited = gw.refusal_reasons();
    audited.sort();
    let mut expected: Vec<String> = corpus.iter().map(|c| c.3.to_owned()).collect();
    expected.sort();
    assert_eq!(audited, expected, "every refusal audited once");
    assert_eq!(rig.depth(&rig.config.dead_letter_queue).await, 0);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queues_are_durable_quorum_queues_with_a_dead_letter_exchange() {
    let gw = Gateway::open(Backend::Sqlite);
    let rig = Rig::start(&gw, None).await;
    assert_eq!(rig.config.queue_type, QueueType::Quorum);
    let declare = |args: FieldTable| {
        let connection = &rig.connection;
        let queue = rig.config.queue.clone();
        async move {
            let channel = connection.create_channel().await.unwrap();
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    args,
                )
                .await
        }
    };
    let args = |queue_type: &str| {
        let mut t = FieldTable::default();
        t.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(rig.config.dead_letter_exchange.as_str().into()),
        );
        t.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(queue_type.into()),
        );
        t
    };
    // The broker accepts a declaration only if it is equivalent to the existing queue: durable,
    // quorum, with this dead-letter exchange.
    declare(args("quorum"))
        .await
        .expect("the queue is a durable quorum queue with the dead-letter exchange");
    let classic = declare(args("classic")).await;
    assert!(
        classic
            .as_ref()
            .is_err_and(|e| e.to_string().contains("PRECONDITION_FAILED")),
        "a classic declaration must be refused: {classic:?}"
    );
    let mut no_dlx = FieldTable::default();
    no_dlx.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    assert!(
        declare(no_dlx).await.is_err(),
        "the queue must name its dead-letter exchange"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_comes_back_after_losing_its_queue_or_its_connection() {
    let gw = Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 40, 0.0);
    node.trust(&gw.db, None);
    let rig = Rig::start(&gw, None).await;
    let bytes = node.seal_new(3);
    rig.publish_batch(&node, &bytes, "b1").await;
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;

    // An operator deletes the queue: the broker cancels the consumer, which reconnects and
    // declares everything again.
    rig.channel
        .queue_delete(
            rig.config.queue.as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "no reconnect after the queue went",
        || rig.metrics.reconnects.get() >= 1 && rig.metrics.broker_connected.get() == 1,
    )
    .await;
    wait_for_queue(&rig).await;
    let bytes = node.seal_new(4);
    rig.publish_batch(&node, &bytes, "b2").await;
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;

    // The broker closes the consumer's connection.
    let reconnects = rig.metrics.reconnects.get();
    close_connection(&format!("rix-gateway {}", rig.config.queue));
    eventually(
        Duration::from_secs(20),
        "no reconnect after the connection was closed",
        || rig.metrics.reconnects.get() > reconnects && rig.metrics.broker_connected.get() == 1,
    )
    .await;
    let bytes = node.seal_new(5);
    rig.publish_batch(&node, &bytes, "b3").await;
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;
    gw.assert_holds_exactly(&node);
    rig.finish().await;
}

/// Waits until the consumer's queue exists again (declared by the consumer on reconnect).
async fn wait_for_queue(rig: &Rig) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let probe = rig.connection.create_channel().await.unwrap();
        let found = probe
            .queue_declare(
                rig.config.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .is_ok();
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "the queue never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Closes, from the broker's side, the connection with this client-provided name.
fn close_connection(name: &str) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("rabbitmqctl")
            .args(args)
            .env("RABBITMQ_NODENAME", "rabbit@localhost")
            .output()
            .expect("rabbitmqctl is installed by ops/install-deps.sh");
        assert!(out.status.success(), "rabbitmqctl {args:?} failed: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // Table output: one connection a line, the pid first (in the form close_connection takes),
    // then its client properties, which carry the connection name.
    let listing = run(&["list_connections", "pid", "client_properties", "-q", "-s"]);
    let pid = listing
        .lines()
        .find(|line| line.contains(name))
        .and_then(|line| line.split('\t').next())
        .unwrap_or_else(|| panic!("no connection named {name:?} in {listing}"))
        .trim()
        .to_owned();
    run(&[
        "close_connection",
        &pid,
        "test closes the gateway's connection",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_puller_a_batch_after_a_gap_waits_on_the_queue_until_the_gap_closes() {
    let gw = Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 41, 0.0);
    node.trust(&gw.db, None);
    node.seal_new(3);
    node.seal_new(4);
    let rig = Rig::start(&gw, None).await;
    rig.publish_batch(&node, &node.bytes(2), "b2 first").await;
    eventually(
        Duration::from_secs(20),
        "batch 2 was never requeued",
        || rig.metrics.requeued.get() >= 1,
    )
    .await;
    assert_eq!(gw.position(&node.node_id), 0);
    rig.publish_batch(&node, &node.bytes(1), "b1 late").await;
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;
    gw.assert_holds_exactly(&node);
    assert_eq!(rig.depth(&rig.config.dead_letter_queue).await, 0);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_puts_the_batch_back_and_it_applies_once_storage_recovers() {
    let gw = Gateway::open(Backend::Postgres);
    let mut node = FakeNode::new("prov", 42, 0.0);
    node.trust(&gw.db, None);
    let rig = Rig::start(&gw, None).await;
    let bytes = node.seal_new(3);
    rig.publish_batch(&node, &bytes, "b1").await;
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;

    // The change stream's table disappears (a botched migration): applying fails.
    let sql = |q: &str| {
        use diesel::Connection;
        let mut conn = diesel::PgConnection::establish(&gw.url).unwrap();
        diesel::sql_query(q).execute(&mut conn).unwrap();
    };
    sql("ALTER TABLE changes RENAME TO changes_away");
    let bytes = node.seal_new(4);
    rig.publish_batch(&node, &bytes, "b2").await;
    eventually(
        Duration::from_secs(20),
        "batch 2 was never requeued",
        || rig.metrics.requeued.get() >= 2,
    )
    .await;
    assert_eq!(gw.position(&node.node_id), node.batches[0].header.last_seq);

    sql("ALTER TABLE changes_away RENAME TO changes");
    gw.wait_for_seq(&node.node_id, node.last_seq(), Duration::from_secs(30))
        .await;
    gw.assert_holds_exactly(&node);
    assert_eq!(gw.change_count(), 7);
    assert!(gw.refusal_reasons().is_empty());
    assert_eq!(rig.depth(&rig.config.dead_letter_queue).await, 0);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_retried_with_backoff_and_shutdown_stays_prompt() {
    let gw = Gateway::open(Backend::Sqlite);
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let consumer = Consumer::new(
        ConsumerConfig::new(format!("amqp://guest:guest@127.0.0.1:{port}/%2f")),
        gw.ingest.clone(),
        None,
        &gw.registry,
    );
    let metrics = consumer.metrics().clone();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(consumer.run(stopped));
    // 100 ms, 200 ms, 400 ms…: a few attempts in the first second, not hundreds.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let attempts = metrics.reconnects.get();
    assert!(
        (2..=6).contains(&attempts),
        "{attempts} reconnects in 1.2 s: backoff is not doubling from 100 ms"
    );
    assert_eq!(metrics.broker_connected.get(), 0);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("shutdown does not wait out the backoff")
        .unwrap();
}
