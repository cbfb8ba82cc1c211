//! The RabbitMQ consumer: the live push path (DESIGN.md §4). Nodes publish each signed batch
//! to the durable topic exchange `rix.records` with routing key `{kind}.{node_id}`; the gateway
//! consumes them from one durable queue bound with `#` and hands each body, exactly as it
//! arrived, to [`Ingest::ingest`].
//!
//! What each answer of ingest becomes:
//!
//! | ingest says | the consumer does |
//! |---|---|
//! | [`Outcome::Applied`] / [`Outcome::Duplicate`] | ack — strictly after ingest returned, i.e. after the commit |
//! | [`IngestError::Refused`] | republish the body to the dead-letter exchange with headers `rix-refusal-reason`, `rix-refusal-stage`, `rix-refusal-detail` (waiting for the broker's confirm), then ack — except an `unknown_node`/`unknown_key` refusal while the catalogue database cannot be read, which says nothing about the batch and is requeued |
//! | [`IngestError::Gap`] | ack, and ask the feed puller to fill the node now ([`FillHandle`]) |
//! | [`IngestError::Store`] | wait a moment, then nack with requeue (nothing was applied) |
//!
//! **Why a gap is acked.** A gap means earlier batches of the node have not arrived (lost to a
//! broker without the node's confirms, or still in flight behind this one). The node's signed
//! feed holds every batch it ever sealed, this one included, so the puller fetches the missing
//! batches *and* this one in order; the delivery itself carries nothing the feed does not.
//! Requeueing it instead would only spin it through the queue until the gap closed. Without a
//! puller (no [`FillHandle`]), or for a node the trust store knows no feed URL for, nothing can
//! repair the gap, so the consumer falls back to nack with requeue after a pause: the batch
//! waits on the queue until the missing ones come through it.
//!
//! **Why dead-lettering republishes.** `basic.reject(requeue=false)` would dead-letter through
//! the queue's `x-dead-letter-exchange` too, but the broker cannot carry *why*; an operator
//! looking at `rix.gateway.dead` needs the reason next to the body. The queue still names the
//! dead-letter exchange, so whatever the broker itself dead-letters (an operator's reject, a
//! policy's TTL) ends up in the same place. If the republish is not confirmed, the original is
//! nacked with requeue: nothing refused is ever silently dropped (it is refused and audited
//! again on redelivery).
//!
//! **Queue type.** The main queue and the dead-letter queue are declared as **quorum** queues
//! (`x-queue-type: quorum`) by default: replicated on a RabbitMQ cluster and safe across broker
//! restarts. Verified on the installed RabbitMQ 3.10 (quorum queues with
//! `x-dead-letter-exchange`, manual acks, prefetch and requeue all work; the consumer tests run
//! on them). [`QueueType::Classic`] (classic durable) remains for brokers without quorum queues.
//! A queue that already exists with other arguments is refused by the broker
//! (`PRECONDITION_FAILED`); the consumer then logs what to do and keeps retrying.
//!
//! **Throughput and order.** The prefetch (default 64 batches) is the backpressure: the broker
//! keeps that many unacknowledged batches in flight. Deliveries are spread over a few lanes by
//! node id, so one node's batches are committed one after another, in delivery order, while
//! different nodes' batches go in parallel; inside a lane the next few deliveries are already
//! verified and screened ([`Ingest::prepare`]) while one commits ([`Ingest::commit`]), so a
//! single busy node still keeps both cores working.
//!
//! **Least privilege.** The consumer declares its exchanges, queues and bindings at connect when
//! the broker user may (embedded and test brokers). A production gateway's broker user may
//! only read its queue and write the dead-letter exchange (`ops/rabbitmq/definitions.json`: no
//! configure permission, no write on `rix.records`); the first declare is then refused, and the
//! consumer checks passively, on a fresh channel, that the operator's exchanges and queues
//! exist, and consumes them as they are (the operator's definitions own the bindings).
//!
//! **Reconnects.** Whenever the connection or a channel dies, or the broker cancels the
//! consumer (the queue was deleted), the consumer reconnects with backoff (100 ms doubling to
//! 10 s) and declares everything again. Unacknowledged deliveries return to the queue and come
//! back as duplicates, which ingest recognises.
//!
//! **A broker cluster.** [`ConsumerConfig::url`] may list several addresses, comma-separated
//! (the nodes of a RabbitMQ cluster; [`BrokerUrls`]). The consumer uses one at a time and,
//! whenever a session ends in an error, reconnects to the next one round the list; with the
//! quorum queue replicated on the cluster, consuming resumes on whichever node is up, from the
//! same queue. Deliveries the lost node had not seen acked come again from the queue's new
//! leader — duplicates, which ingest recognises.
//!
//! What it may not touch: the catalogue. It judges and applies nothing — every body goes to
//! ingest as it arrived — and reads only the trust store's list of feeds, to know whether a gap
//! can be filled.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use rix_runtime::config::BrokerUrls;
use rix_runtime::health::Link;
use rix_runtime::metrics::registered;
use tokio::sync::{mpsc, watch};

use crate::db::redact_url;
use crate::ingest::{Ingest, IngestError, Transport};
use crate::pull::FillHandle;

#[cfg(doc)]
use crate::ingest::Outcome;

/// Header carrying the stable refusal reason code on a dead-lettered batch.
pub const HEADER_REASON: &str = "rix-refusal-reason";
/// Header carrying the pipeline stage that refused the batch.
pub const HEADER_STAGE: &str = "rix-refusal-stage";
/// Header carrying the refusal's full explanation (cut at [`MAX_DETAIL_BYTES`]).
pub const HEADER_DETAIL: &str = "rix-refusal-detail";
/// Longest `rix-refusal-detail` header, in bytes: a malformed body's parse error can quote it.
pub const MAX_DETAIL_BYTES: usize = 2048;

/// How the gateway's queues are declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    /// `x-queue-type: quorum`: replicated, durable; RabbitMQ ≥ 3.8.
    Quorum,
    /// A classic durable queue, for brokers without quorum queues.
    Classic,
}

impl QueueType {
    /// The `x-queue-type` argument value.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

/// Where and how the consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Broker URL (`amqp://user:pass@host:5672/%2f`), or the URLs of a cluster's nodes
    /// separated by commas, tried in turn; never logged with their passwords.
    pub url: String,
    /// The nodes' topic exchange (default `rix.records`).
    pub exchange: String,
    /// The gateway's queue (default `rix.gateway`); gateway replicas share it.
    pub queue: String,
    /// Binding key on the exchange (default `#`: every kind from every node).
    pub binding_key: String,
    /// Dead-letter exchange (default `rix.records.dlx`, fanout).
    pub dead_letter_exchange: String,
    /// Queue holding refused batches for operators (default `rix.gateway.dead`).
    pub dead_letter_queue: String,
    /// Queue type of both queues (default quorum).
    pub queue_type: QueueType,
    /// Unacknowledged batches the broker keeps in flight (default 64): the backpressure. At
    /// 100–10,000 entries a batch that is enough to keep ingest busy while the next batches
    /// travel, and small enough to bound memory (64 × 16 MiB at worst).
    pub prefetch: u16,
    /// Parallel ingest lanes; a node's batches always take the same lane (default 4).
    pub lanes: usize,
}

impl ConsumerConfig {
    /// The defaults for a broker at `url`.
    pub fn new(url: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            url: url.into(),
            exchange: rix_runtime::config::DEFAULT_AMQP_EXCHANGE.into(),
            queue: "rix.gateway".into(),
            binding_key: "#".into(),
            dead_letter_exchange: "rix.records.dlx".into(),
            dead_letter_queue: "rix.gateway.dead".into(),
            queue_type: QueueType::Quorum,
            prefetch: 64,
            lanes: 4,
        }
    }
}

/// Why a broker session ended (the consumer logs it and reconnects).
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The broker or the connection failed.
    #[error("broker at {url}: {source}")]
    Broker {
        /// The URL without its password.
        url: String,
        /// What lapin said.
        #[source]
        source: lapin::Error,
    },
    /// The broker did not accept the connection in time.
    #[error(
        "broker at {url} did not accept a connection within {timeout:?}; is it up and reachable?"
    )]
    ConnectTimeout {
        /// The URL without its password.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The broker cancelled the consumer (its queue was deleted) or closed the channel.
    #[error("the broker stopped delivering from queue {queue} (deleted, or the channel closed)")]
    Cancelled {
        /// The queue.
        queue: String,
    },
    /// The dead-letter exchange did not take a refused batch.
    #[error(
        "the broker did not confirm a refused batch on the dead-letter exchange {exchange} ({detail}); it stays on the queue and is refused again later"
    )]
    DeadLetter {
        /// The dead-letter exchange.
        exchange: String,
        /// What happened.
        detail: String,
    },
}

/// Consumer metrics (`rix_gateway_*`); batch outcomes are counted by
/// [`crate::ingest::IngestMetrics`] with `transport="amqp"`.
#[derive(Clone)]
pub struct ConsumerMetrics {
    /// 1 while consuming from the broker, 0 otherwise.
    pub broker_connected: IntGauge,
    /// Reconnects after a lost connection, channel or consumer.
    pub reconnects: IntCounter,
    /// Refused batches moved to the dead-letter queue, by reason.
    pub dead_lettered: IntCounterVec,
    /// Deliveries put back on the queue (storage failure, unconfirmed dead-letter, gap without
    /// a puller).
    pub requeued: IntCounter,
    /// Gaps handed to the feed puller.
    pub gap_fills: IntCounter,
}

impl ConsumerMetrics {
    /// Registers the metrics in `registry`.
    ///
    /// # Panics
    ///
    /// If they are already registered there (one consumer per registry).
    pub fn new(registry: &Registry) -> ConsumerMetrics {
        let broker_connected = registered(
            registry,
            IntGauge::new(
                "rix_gateway_broker_connected",
                "1 while the gateway consumes from the broker.",
            ),
        );
        let reconnects = registered(
            registry,
            IntCounter::new(
                "rix_gateway_broker_reconnects_total",
                "Reconnects to the broker after a lost connection, channel or consumer.",
            ),
        );
        let dead_lettered = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "rix_gateway_dead_lettered_total",
                    "Refused batches moved to the dead-letter queue, by reason.",
                ),
                &["reason"],
            ),
        );
        for reason in rix_schema::batch::Refusal::REASONS {
            dead_lettered.with_label_values(&[reason]);
        }
        let requeued = registered(
            registry,
            IntCounter::new(
                "rix_gateway_deliveries_requeued_total",
                "Deliveries put back on the queue to be tried again.",
            ),
        );
        let gap_fills = registered(
            registry,
            IntCounter::new(
                "rix_gateway_gap_fills_total",
                "Batches that came before missing ones; the node's feed is pulled to fill the gap.",
            ),
        );
        ConsumerMetrics {
            broker_connected,
            reconnects,
            dead_lettered,
            requeued,
            gap_fills,
        }
    }
}

/// The AMQP consumer: configuration, the pipeline, and where gaps are sent.
pub struct Consumer {
    shared: Arc<Shared>,
}

struct Shared {
    config: ConsumerConfig,
    ingest: Ingest,
    fill: Option<FillHandle>,
    metrics: ConsumerMetrics,
    /// The broker connection's health, for `/healthz`.
    health: Link,
}

const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A session that lasted this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(5);
/// First pause before requeueing after a storage failure; doubles per failure in a row.
const RETRY_INITIAL: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Longest wait for the broker to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the broker to confirm a cancel or a close on the way out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a consuming session checks that its connection is still up.
const CONNECTION_CHECK: Duration = Duration::from_secs(1);
/// How long the lanes may take to finish after the connection failed, before they are let go.
const LANE_DRAIN: Duration = Duration::from_secs(10);

impl Consumer {
    /// A consumer feeding `ingest`, sending gaps to `fill` (the puller's
    /// [`crate::pull::Puller::fill_handle`]; `None` without a puller), with its metrics
    /// registered in `registry`.
    ///
    /// # Panics
    ///
    /// If the consumer's metrics are already registered in `registry`.
    pub fn new(
        config: ConsumerConfig,
        ingest: Ingest,
        fill: Option<FillHandle>,
        registry: &Registry,
    ) -> Consumer {
        Consumer {
            shared: Arc::new(Shared {
                metrics: ConsumerMetrics::new(registry),
                config,
                ingest,
                fill,
                health: Link::new(),
            }),
        }
    }

    /// The consumer's metrics.
    pub fn metrics(&self) -> &ConsumerMetrics {
        &self.shared.metrics
    }

    /// The broker connection's health: connecting, consuming (`connected`) or failing with
    /// the last error.
    pub fn health(&self) -> Link {
        self.shared.health.clone()
    }

    /// Consumes until `shutdown` turns true, reconnecting with backoff whenever the broker goes
    /// away. On shutdown it stops taking deliveries, finishes (and acks) the ones it holds, and
    /// closes the connection; unacknowledged deliveries return to the queue.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let shared = &self.shared;
        let mut backoff = BACKOFF_INITIAL;
        let mut first = true;
        let Some(mut urls) = BrokerUrls::parse(&shared.config.url) else {
            tracing::error!("the AMQP consumer has no broker address; not consuming");
            shared
                .health
                .failed("no broker address configured".to_owned());
            return;
        };
        loop {
            if *shutdown.borrow() {
                break;
            }
            if !first {
                shared.metrics.reconnects.inc();
            }
            first = false;
            let started = Instant::now();
            match shared.session(urls.current(), &mut shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    if started.elapsed() >= STABLE_SESSION {
                        backoff = BACKOFF_INITIAL;
                    }
                    // Whatever failed, the next address is tried next (a cluster's other node).
                    urls.advance();
                    let hint = if e.to_string().contains("PRECONDITION_FAILED") {
                        "; a queue or exchange exists with other arguments: delete it, or configure the queue type it was created with"
                    } else {
                        ""
                    };
                    tracing::warn!(error = %e, retry_in = ?backoff, "AMQP consumer disconnected{hint}");
                    shared.health.failed(format!("{e}{hint}"));
                }
            }
            tokio::select! {
                _ = stopped(&mut shutdown) => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        shared.metrics.broker_connected.set(0);
    }
}

impl Shared {
    fn broker_error(url: &str) -> impl Fn(lapin::Error) -> ConsumeError + '_ {
        move |source| ConsumeError::Broker {
            url: redact_url(url),
            source,
        }
    }

    /// One connection's life, to the broker at `url`: declare, consume, dispatch to lanes.
    /// `Ok` on shutdown.
    async fn session(
        self: &Arc<Self>,
        url: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ConsumeError> {
        let config = &self.config;
        let err = Self::broker_error(url);
        let connect = Connection::connect(
            url,
            ConnectionProperties::default()
                .with_connection_name(format!("rix-gateway {}", config.queue).into()),
        );
        // A broker host that swallows packets would hold the connect for minutes: bound it,
        // and never let it hold up shutdown.
        let connection = tokio::select! {
            connected = tokio::time::timeout(CONNECT_TIMEOUT, connect) => match connected {
                Ok(c) => c.map_err(&err)?,
                Err(_) => return Err(ConsumeError::ConnectTimeout {
                    url: redact_url(url),
                    timeout: CONNECT_TIMEOUT,
                }),
            },
            _ = stopped(shutdown) => return Ok(()),
        };
        let result = self.consume(url, &connection, shutdown).await;
        self.metrics.broker_connected.set(0);
        // Bounded: lapin's close waits for the broker's close-ok, which has been seen never to
        // come after a consumer was cancelled; the socket goes with the connection anyway.
        let closing = connection.close(200, "rix gateway consumer done".into());
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            tracing::debug!("the broker did not confirm closing the connection; dropping it");
        }
        result
    }

    async fn consume(
        self: &Arc<Self>,
        url: &str,
        connection: &Connection,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ConsumeError> {
        let config = &self.config;
        let err = Self::broker_error(url);
        let channel = connection.create_channel().await.map_err(&err)?;
        let publisher = connection.create_channel().await.map_err(&err)?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(&err)?;
        let channel = self
            .declare_or_check(connection, channel)
            .await
            .map_err(&err)?;
        channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await
            .map_err(&err)?;
        let mut consumer = channel
            .basic_consume(
                config.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(&err)?;
        self.metrics.broker_connected.set(1);
        self.health.connected();
        tracing::info!(
            broker = %redact_url(url),
            queue = %config.queue,
            exchange = %config.exchange,
            prefetch = config.prefetch,
            "consuming from the broker"
        );

        let lanes = config.lanes.max(1);
        // The broker never has more than `prefetch` deliveries unacknowledged, so lanes this
        // deep never make the dispatcher wait, whichever lane the deliveries fall in.
        let per_lane = usize::from(config.prefetch).max(1);
        let mut senders = Vec::with_capacity(lanes);
        let mut workers = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            let (tx, rx) = mpsc::channel::<Delivery>(per_lane);
            senders.push(tx);
            workers.push(tokio::spawn(self.clone().lane(rx, publisher.clone())));
        }

        // lapin does not always end the delivery stream when the broker closes the connection
        // (a broker shutting down closes it cleanly, CONNECTION_FORCED): seen once, the gateway
        // then never reconnected. So the session also watches the connection itself.
        let mut watchdog = tokio::time::interval(CONNECTION_CHECK);
        let ended = loop {
            tokio::select! {
                _ = watchdog.tick() => if !connection.status().connected() {
                    break Err(ConsumeError::Cancelled { queue: config.queue.clone() });
                },
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let lane = lane_of(&delivery, lanes);
                        if senders[lane].send(delivery).await.is_err() {
                            break Err(ConsumeError::Cancelled { queue: config.queue.clone() });
                        }
                    }
                    Some(Err(e)) => break Err(err(e)),
                    None => break Err(ConsumeError::Cancelled { queue: config.queue.clone() }),
                },
                _ = stopped(shutdown) => {
                    // No new deliveries; what the lanes hold is finished and acked below.
                    let cancel = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default());
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, cancel).await;
                    break Ok(());
                }
            }
        };
        drop(senders);
        if ended.is_ok() {
            for w in workers {
                let _ = w.await;
            }
        } else {
            // After a broker failure a lane may wait for good on the dead connection (a
            // publisher confirm, an ack lapin never answers): give the lanes a moment, then let
            // them go. What they held unacknowledged returns to the queue with the connection; a
            // batch they had committed comes back as a duplicate.
            let drained = tokio::time::timeout(LANE_DRAIN, async {
                for w in workers.iter_mut() {
                    let _ = w.await;
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    "the consumer's lanes did not finish within {LANE_DRAIN:?} of the broker connection failing; leaving them"
                );
                for w in &workers {
                    w.abort();
                }
            }
        }
        ended
    }

    /// Declares the topology, or — for a broker user without configure permission, whose
    /// declare the broker refused (closing `channel`) — checks on a fresh channel that the
    /// operator declared it. Returns the channel to consume on.
    async fn declare_or_check(
        &self,
        connection: &Connection,
        channel: Channel,
    ) -> Result<Channel, lapin::Error> {
        match self.declare(&channel).await {
            Ok(()) => Ok(channel),
            Err(e) if matches!(e.kind(), lapin::ErrorKind::ProtocolError(a) if a.get_id() == 403) =>
            {
                let channel = connection.create_channel().await?;
                let config = &self.config;
                let passive = ExchangeDeclareOptions {
                    passive: true,
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                };
                for (exchange, kind) in [
                    (&config.exchange, ExchangeKind::Topic),
                    (&config.dead_letter_exchange, ExchangeKind::Fanout),
                ] {
                    channel
                        .exchange_declare(
                            exchange.as_str().into(),
                            kind,
                            passive,
                            FieldTable::default(),
                        )
                        .await?;
                }
                let passive = QueueDeclareOptions {
                    passive: true,
                    durable: true,
                    ..QueueDeclareOptions::default()
                };
                for queue in [&config.dead_letter_queue, &config.queue] {
                    channel
                        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                        .await?;
                }
                tracing::info!(
                    queue = %config.queue,
                    "the broker user may not declare: consuming the operator's queue and exchanges as they are"
                );
                Ok(channel)
            }
            Err(e) => Err(e),
        }
    }

    async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let config = &self.config;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                config.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                config.dead_letter_exchange.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let mut dead_args = FieldTable::default();
        dead_args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(config.queue_type.as_str().into()),
        );
        channel
            .queue_declare(
                config.dead_letter_queue.as_str().into(),
                durable_queue,
                dead_args,
            )
            .await?;
        channel
            .queue_bind(
                config.dead_letter_queue.as_str().into(),
                config.dead_letter_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                config.queue.as_str().into(),
                durable_queue,
                main_queue_arguments(config),
            )
            .await?;
        channel
            .queue_bind(
                config.queue.as_str().into(),
                config.exchange.as_str().into(),
                config.binding_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// One lane: its deliveries committed one after another, in delivery order, while up to
    /// [`PIPELINE`] of the next ones are already being verified ([`Ingest::prepare`]).
    async fn lane(self: Arc<Self>, rx: mpsc::Receiver<Delivery>, publisher: Channel) {
        let deliveries =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|d| (d, rx)) },
            );
        let prepared = deliveries
            .map(|delivery| {
                let ingest = self.ingest.clone();
                let Delivery {
                    data,
                    routing_key,
                    exchange,
                    properties,
                    acker,
                    ..
                } = delivery;
                let (origin, arrived_as) = claimed_origin(&routing_key, &properties);
                // Started here, as `buffered` takes the delivery in, not when the future is
                // first polled: `buffered` hands out finished results it already holds
                // without polling the futures behind them, so lazily started preparations
                // ran in bursts of PIPELINE, none of them beside a commit (measured: a warm
                // queue drained at two thirds of the pipeline's rate).
                let preparing = tokio::task::spawn_blocking(move || {
                    let prepared =
                        ingest.prepare_from(&data, Transport::Amqp, Some((&origin, &arrived_as)));
                    (data, prepared)
                });
                async move {
                    (
                        Received {
                            routing_key,
                            exchange,
                            properties,
                            acker,
                        },
                        preparing.await,
                    )
                }
            })
            .buffered(PIPELINE);
        let mut prepared = std::pin::pin!(prepared);
        let mut retry = RETRY_INITIAL;
        while let Some((received, joined)) = prepared.next().await {
            let (data, result) = match joined {
                Ok((data, Ok(p))) => {
                    let ingest = self.ingest.clone();
                    match tokio::task::spawn_blocking(move || ingest.commit(p)).await {
                        Ok(result) => (data, Ok(result)),
                        Err(e) => (data, Err(e)),
                    }
                }
                Ok((data, Err(e))) => (data, Ok(Err(e))),
                Err(e) => (Vec::new(), Err(e)),
            };
            match self.settle(received, data, result, &publisher, retry).await {
                Handled::Done => retry = RETRY_INITIAL,
                Handled::Retried => retry = (retry * 2).min(RETRY_MAX),
            }
        }
    }

    /// Acts on ingest's answer for one delivery: ack, dead-letter, fill, or requeue.
    async fn settle(
        &self,
        received: Received,
        data: Vec<u8>,
        result: Result<Result<crate::ingest::Outcome, IngestError>, tokio::task::JoinError>,
        publisher: &Channel,
        retry: Duration,
    ) -> Handled {
        let Received {
            routing_key,
            exchange,
            properties,
            acker,
        } = received;
        let result = match result {
            Ok(r) => r,
            Err(e) if e.is_panic() => {
                // A panic on these bytes would repeat on every redelivery: park them instead of
                // spinning. The body went down with the panicked task, so let the broker
                // dead-letter its own copy through the queue's x-dead-letter-exchange (it
                // carries `x-death`, not our reason headers; the log has the reason).
                tracing::error!(routing_key = %routing_key, "ingest panicked on a delivery; dead-lettering it");
                let nack = BasicNackOptions {
                    requeue: false,
                    ..BasicNackOptions::default()
                };
                let _ = acker.nack(nack).await;
                self.metrics
                    .dead_lettered
                    .with_label_values(&["internal_error"])
                    .inc();
                return Handled::Done;
            }
            Err(e) => {
                self.requeue(&acker, retry, format!("ingest task did not finish: {e}"))
                    .await;
                return Handled::Retried;
            }
        };
        match result {
            Ok(_) => {
                ack(&acker).await;
                Handled::Done
            }
            Err(IngestError::Gap {
                node_id,
                expected_batch_seq,
                found_batch_seq,
            }) => match &self.fill {
                Some(fill) if self.has_feed(&node_id).await => {
                    tracing::info!(
                        node_id = %node_id, expected_batch_seq, found_batch_seq,
                        "batches missing before this one; pulling them from the node's feed"
                    );
                    self.metrics.gap_fills.inc();
                    fill.request(&node_id);
                    ack(&acker).await;
                    Handled::Done
                }
                _ => {
                    // Nothing can fetch the missing batches: keep this one on the queue until
                    // they arrive through it (or the operator gives the node a feed URL).
                    self.requeue(&acker, retry, format!(
                        "{node_id}: waiting for batch {expected_batch_seq}, got {found_batch_seq}, and no feed to fill the gap from (`rix trust add --feed-url` gives the node one)"
                    ))
                    .await;
                    Handled::Retried
                }
            },
            Err(IngestError::Refused { stage, refusal }) => {
                let reason = refusal.reason();
                // The trust store answers "unknown" when it cannot be read at all; such a
                // refusal says nothing about the batch, so it must not be parked for good.
                if matches!(reason, "unknown_node" | "unknown_key")
                    && !self.catalogue_readable(refusal.node_id()).await
                {
                    self.requeue(
                        &acker,
                        retry,
                        format!("refused as {reason} while the catalogue database is unreadable"),
                    )
                    .await;
                    return Handled::Retried;
                }
                let detail = refusal.to_string();
                let detail = cut(&detail, MAX_DETAIL_BYTES);
                let refused = Refused {
                    stage,
                    reason,
                    detail,
                };
                match self
                    .dead_letter(
                        publisher,
                        &data,
                        &exchange,
                        &routing_key,
                        &properties,
                        &refused,
                    )
                    .await
                {
                    Ok(()) => {
                        self.metrics
                            .dead_lettered
                            .with_label_values(&[reason])
                            .inc();
                        ack(&acker).await;
                        Handled::Done
                    }
                    Err(dl) => {
                        self.requeue(&acker, retry, dl.to_string()).await;
                        Handled::Retried
                    }
                }
            }
            Err(IngestError::Store(e)) => {
                self.requeue(&acker, retry, format!("catalogue storage failed: {e}"))
                    .await;
                Handled::Retried
            }
        }
    }

    /// Whether the trust store knows a feed URL for the node (so the puller can fill its gap).
    async fn has_feed(&self, node_id: &str) -> bool {
        let db = self.ingest.db().clone();
        let node = node_id.to_owned();
        tokio::task::spawn_blocking(move || {
            crate::trust::feeds(&db).is_ok_and(|feeds| feeds.iter().any(|(n, _)| *n == node))
        })
        .await
        .unwrap_or(false)
    }

    /// Whether the catalogue database answers a query now.
    async fn catalogue_readable(&self, node_id: Option<&str>) -> bool {
        let db = self.ingest.db().clone();
        let node = node_id.unwrap_or("-").to_owned();
        tokio::task::spawn_blocking(move || crate::ingest::chain_position(&db, &node).is_ok())
            .await
            .unwrap_or(false)
    }

    /// Puts a delivery back on the queue after a pause (`retry`, longer after each failure in
    /// a row), so a struggling database is not hammered by redeliveries.
    async fn requeue(&self, acker: &lapin::Acker, retry: Duration, why: String) {
        self.metrics.requeued.inc();
        tracing::warn!(reason = %why, pause = ?retry, "putting a delivery back on the queue");
        tokio::time::sleep(retry).await;
        let nack = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        if let Err(e) = acker.nack(nack).await {
            tracing::debug!(error = %e, "nack failed; the broker requeues it with the channel");
        }
    }

    /// Republishes a refused batch to the dead-letter exchange with the reason in its headers,
    /// and waits for the broker's confirm.
    async fn dead_letter(
        &self,
        publisher: &Channel,
        body: &[u8],
        exchange: &ShortString,
        routing_key: &ShortString,
        original: &BasicProperties,
        refused: &Refused<'_>,
    ) -> Result<(), ConsumeError> {
        let dlx = &self.config.dead_letter_exchange;
        let failed = |detail: String| ConsumeError::DeadLetter {
            exchange: dlx.clone(),
            detail,
        };
        let mut headers = original.headers().clone().unwrap_or_default();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        headers.insert(HEADER_REASON.into(), text(refused.reason));
        headers.insert(HEADER_STAGE.into(), text(refused.stage));
        headers.insert(HEADER_DETAIL.into(), text(refused.detail));
        headers.insert("rix-refused-at".into(), text(&crate::catalogue::now()));
        headers.insert("rix-original-exchange".into(), text(exchange.as_str()));
        headers.insert(
            "rix-original-routing-key".into(),
            text(routing_key.as_str()),
        );
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers);
        if let Some(t) = original.content_type() {
            properties = properties.with_content_type(t.clone());
        }
        if let Some(id) = original.message_id() {
            properties = properties.with_message_id(id.clone());
        }
        if let Some(app) = original.app_id() {
            properties = properties.with_app_id(app.clone());
        }
        let confirmation = publisher
            .basic_publish(
                dlx.as_str().into(),
                routing_key.clone(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .map_err(|e| failed(e.to_string()))?
            .await
            .map_err(|e| failed(e.to_string()))?;
        match confirmation {
            lapin::Confirmation::Ack(None) => Ok(()),
            lapin::Confirmation::Ack(Some(_)) => Err(failed(format!(
                "no queue is bound to it (declare {} again or restart the gateway)",
                self.config.dead_letter_queue
            ))),
            other => Err(failed(format!("{other:?}"))),
        }
    }
}

/// What a lane did with a delivery: settled it, or put it back to try again (which lengthens
/// the lane's pause before the next requeue).
enum Handled {
    Done,
    Retried,
}

/// A delivery's envelope while its body is being ingested.
struct Received {
    routing_key: ShortString,
    exchange: ShortString,
    properties: BasicProperties,
    acker: lapin::Acker,
}

/// Why a batch goes to the dead-letter exchange.
struct Refused<'a> {
    stage: &'a str,
    reason: &'a str,
    detail: &'a str,
}

/// Deliveries of a lane verified at once ahead of the in-order commits.
pub const PIPELINE: usize = 4;

/// The main queue's arguments: its dead-letter exchange and its type.
fn main_queue_arguments(config: &ConsumerConfig) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(config.dead_letter_exchange.as_str().into()),
    );
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(config.queue_type.as_str().into()),
    );
    args
}

/// The `rix-node-id` header of a delivery, if it has one.
fn header_node_id(properties: &lapin::BasicProperties) -> Option<String> {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("rix-node-id"))
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
            _ => None,
        })
}

/// The node a delivery claims to come from — its routing key `{kind}.{node_id}`, and its
/// `rix-node-id` header if it has one — and how to say so in a refusal. Both must name the node
/// that signed the batch; when they disagree with each other the claim is empty, which no
/// signed header matches.
fn claimed_origin(
    routing_key: &ShortString,
    properties: &lapin::BasicProperties,
) -> (String, String) {
    let key = routing_key.as_str();
    let routed = key.split_once('.').map(|(_, n)| n).unwrap_or_default();
    match header_node_id(properties) {
        Some(h) if h != routed => (
            String::new(),
            format!("routing key {key} with header rix-node-id {h}"),
        ),
        _ => (routed.to_owned(), format!("routing key {key}")),
    }
}

/// The lane of a delivery: by its node (header `rix-node-id`, else the routing key's second
/// word), so a node's batches stay in order.
fn lane_of(delivery: &Delivery, lanes: usize) -> usize {
    let from_header = header_node_id(&delivery.properties);
    let node = from_header.unwrap_or_else(|| {
        delivery
            .routing_key
            .as_str()
            .split_once('.')
            .map(|(_, n)| n.to_owned())
            .unwrap_or_default()
    });
    let mut h = std::hash::DefaultHasher::new();
    node.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// Acknowledges a settled delivery.
async fn ack(acker: &lapin::Acker) {
    if let Err(e) = acker.ack(BasicAckOptions::default()).await {
        // The broker redelivers it; ingest will call it a duplicate.
        tracing::debug!(error = %e, "ack failed; the delivery comes back");
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Resolves once `shutdown` is true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_cut_on_a_character_boundary() {
        assert_eq!(cut("批次被拒绝", 4), "批");
        assert_eq!(cut("abc", 10), "abc");
    }

    #[test]
    fn the_main_queue_names_its_dead_letter_exchange_and_type() {
        let args = main_queue_arguments(&ConsumerConfig::new("amqp://localhost"));
        let get = |k: &str| match args.inner().get(k) {
            Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(get("x-dead-letter-exchange"), "rix.records.dlx");
        assert_eq!(get("x-queue-type"), "quorum");
    }
}
