//! Stage 4: publishing the sealed batches to RabbitMQ.
//!
//! One task per node. It seals what the outbox holds ([`crate::outbox::seal_next_batch`]),
//! then sends every unconfirmed batch, in batch order, to the topic exchange with routing key
//! `{kind}.{node_id}`, waits for the broker's publisher confirms, and only then marks the
//! batches published. A crash anywhere leaves batches sealed but unconfirmed; they are sent
//! again after restart — the same bytes, so a receiver sees a duplicate, never a gap or a fork.
//!
//! The broker being away never stops registration: the task keeps sealing (the feed serves
//! the batches), counts the failure, backs off (up to 10 s) and reconnects. Without an AMQP
//! URL the feed is the only transport and batches count as published once sealed.
//!
//! **A broker cluster.** `amqp_url` may list several addresses (the nodes of a RabbitMQ
//! cluster, [`BrokerUrls`]). The task uses one at a time; when its connection is lost, a
//! publish or a confirm fails, or no confirm comes within [`CONFIRM_TIMEOUT`], it moves to the
//! next address at once, and tries each address in turn before it backs off. Batches not
//! confirmed on the lost connection are sent again on the new one (at-least-once: the gateway
//! recognises the duplicates by `(node, batch_seq)` and applies each batch once).
//!
//! The exchange is declared at connect when the broker user may (embedded and test brokers).
//! A production node's broker user may only publish under its own routing keys
//! (`ops/rabbitmq/definitions.json`: no configure permission); the declare is then refused and
//! the node checks passively, on a fresh channel, that the operator's exchange exists.
//!
//! What it may not touch: the bytes or the chain. It sends stored batches exactly as sealed and
//! never builds, signs or renumbers one (it only asks the outbox to seal); it serves no HTTP.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use rix_runtime::config::BrokerUrls;
use rix_runtime::health::Link;
use rix_schema::signing::SigningKey;
use tokio::sync::{Notify, watch};

use crate::config::BatchConfig;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::outbox::{self, Sealing, StoredBatch};

/// Where batches go.
#[derive(Debug, Clone)]
pub struct AmqpTarget {
    /// The broker's addresses (one, or a cluster's nodes), tried in turn.
    pub urls: BrokerUrls,
    /// Topic exchange.
    pub exchange: String,
}

/// The publishing task's inputs.
pub struct Publisher {
    /// The node database.
    pub db: Db,
    /// This node's id.
    pub node_id: String,
    /// The key every batch is signed with.
    pub key: Arc<SigningKey>,
    /// Batch size and linger.
    pub batch: BatchConfig,
    /// The broker, if any.
    pub amqp: Option<AmqpTarget>,
    /// Woken after each commit that logs entries.
    pub wake: Arc<Notify>,
    /// Metrics.
    pub metrics: Metrics,
    /// The broker connection's health, for `/healthz` (unused without a broker).
    pub broker_health: Link,
}

/// A blocking task that did not finish: the runtime is shutting down (or the task panicked).
fn join_failed(e: tokio::task::JoinError) -> crate::db::StoreError {
    crate::db::StoreError::Task(e.to_string())
}

/// Closes a broker connection, but never waits long: lapin's close has been seen to hang
/// after the broker went away, and neither a reconnect nor a shutdown may hang with it.
async fn close_quietly(b: Broker) {
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        b.connection.close(0, "closing".into()),
    )
    .await;
}

/// How long shutdown waits for the broker to confirm what is sealed.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// Longest wait for one broker address to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the confirms of one round of publishes; a broker node cut off from its
/// cluster's majority never sends them, and another node may.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);
/// Most batches in flight before waiting for their confirms.
const IN_FLIGHT: i64 = 64;

struct Broker {
    connection: Connection,
    channel: Channel,
}

impl Publisher {
    /// Runs until `shutdown` turns true, then seals everything waiting and tries (for a
    /// bounded time) to get it confirmed before returning.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut broker: Option<Broker> = None;
        let mut urls = self.amqp.as_ref().map(|t| t.urls.clone());
        let mut backoff = Duration::from_millis(100);
        let mut drain_until: Option<tokio::time::Instant> = None;
        loop {
            let draining = drain_until.is_some();
            let next_wait = match self.seal_all(draining).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "sealing the outbox failed; retrying");
                    self.metrics
                        .publish_errors
                        .with_label_values(&["seal"])
                        .inc();
                    backoff
                }
            };
            let mut failed = false;
            if let (Some(target), Some(urls)) = (&self.amqp, urls.as_mut()) {
                match self.publish_pending(target, urls, &mut broker).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err((reason, e)) => {
                        tracing::warn!(error = %e, reason, "publishing to the broker failed; will retry");
                        self.broker_health.failed(format!("{reason}: {e}"));
                        self.metrics
                            .publish_errors
                            .with_label_values(&[reason])
                            .inc();
                        if let Some(b) = broker.take() {
                            close_quietly(b).await;
                            // The address that failed is likely down: the next one first.
                            urls.advance();
                        }
                        self.metrics.broker_connected.set(0);
                        failed = true;
                    }
                }
            }
            if let Some(deadline) = drain_until {
                let pending = self.pending_count().await;
                if pending == 0 || tokio::time::Instant::now() >= deadline {
                    if pending > 0 {
                        tracing::warn!(
                            pending,
                            "shutting down with batches the broker has not confirmed; they are sent again at the next start"
                        );
                    }
                    break;
                }
            }
            let wait = if failed {
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                w
            } else {
                next_wait
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                changed = shutdown.changed(), if !draining => {
                    if changed.is_err() || *shutdown.borrow() {
                        drain_until = Some(tokio::time::Instant::now() + DRAIN_DEADLINE);
                    }
                }
            }
        }
        if let Some(b) = broker {
            close_quietly(b).await;
        }
    }

    /// Seals batches until nothing is ready; returns how long to wait before looking again.
    async fn seal_all(&self, force: bool) -> Result<Duration, outbox::SealError> {
        loop {
            let db = self.db.clone();
            let key = self.key.clone();
            let node_id = self.node_id.clone();
            let batch = self.batch;
            let no_broker = self.amqp.is_none();
            let result = tokio::task::spawn_blocking(move || {
                outbox::seal_next_batch(
                    &db,
                    &node_id,
                    &key,
                    batch.max_entries,
                    Duration::from_millis(batch.linger_ms),
                    force,
                    no_broker,
                )
            })
            .await
            .map_err(|e| outbox::SealError::Store(join_failed(e)))??;
            match result {
                Sealing::Sealed(b) => {
                    self.metrics.batches_sealed.inc();
                    if self.amqp.is_none() {
                        self.count_published(&[b]);
                    }
                }
                Sealing::Lingering(left) => return Ok(left),
                Sealing::Empty => return Ok(Duration::from_secs(1)),
            }
        }
    }

    fn count_published(&self, batches: &[StoredBatch]) {
        for b in batches {
            self.metrics.batches_published.inc();
            self.metrics
                .entries_published
                .inc_by((b.last_seq - b.first_seq + 1) as u64);
        }
    }

    async fn pending_count(&self) -> usize {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.conn()?;
            let state = outbox::log_state(&mut conn)?;
            Ok::<_, crate::db::StoreError>(state.outbox_depth as usize)
        })
        .await
        .map_err(join_failed)
        .and_then(|r| r)
        .unwrap_or(usize::MAX)
    }

    /// Connects to the first address of `urls`, from the current one on, that accepts; makes
    /// it the current one. The error is the last address's.
    async fn connect_any(
        &self,
        target: &AmqpTarget,
        urls: &mut BrokerUrls,
    ) -> Result<Broker, (&'static str, String)> {
        let mut last = String::new();
        for _ in 0..urls.len() {
            let url = urls.current().to_owned();
            match tokio::time::timeout(CONNECT_TIMEOUT, self.connect(target, &url)).await {
                Ok(Ok(broker)) => {
                    tracing::info!(
                        broker = %rix_runtime::db::redact_url(&url),
                        exchange = %target.exchange,
                        "connected to the broker"
                    );
                    self.metrics.broker_connected.set(1);
                    self.broker_health.connected();
                    return Ok(broker);
                }
                Ok(Err(e)) => last = format!("{}: {e}", rix_runtime::db::redact_url(&url)),
                Err(_) => {
                    last = format!(
                        "{}: no connection within {CONNECT_TIMEOUT:?}",
                        rix_runtime::db::redact_url(&url)
                    )
                }
            }
            if urls.len() > 1 {
                tracing::warn!(error = %last, "broker address unavailable; trying the next one");
            }
            urls.advance();
        }
        Err(("connect", last))
    }

    async fn connect(&self, target: &AmqpTarget, url: &str) -> Result<Broker, lapin::Error> {
        let connection = Connection::connect(
            url,
            ConnectionProperties::default()
                .with_connection_name(format!("rix-node {}", self.node_id).into()),
        )
        .await?;
        let open = || async {
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>(channel)
        };
        let declare = |channel: Channel, passive: bool| async move {
            channel
                .exchange_declare(
                    target.exchange.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        passive,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map(|()| channel)
        };
        let channel = match declare(open().await?, false).await {
            Ok(channel) => channel,
            // A user without configure permission (the production setup): the refusal closed
            // the channel; the exchange must exist already.
            Err(e) if access_refused(&e) => {
                let channel = declare(open().await?, true).await?;
                tracing::info!(
                    exchange = %target.exchange,
                    "the broker user may not declare exchanges; publishing to the operator's"
                );
                channel
            }
            Err(e) => return Err(e),
        };
        Ok(Broker {
            connection,
            channel,
        })
    }

    /// Sends every unconfirmed batch in order, waits for confirms, marks them published.
    async fn publish_pending(
        &self,
        target: &AmqpTarget,
        urls: &mut BrokerUrls,
        broker: &mut Option<Broker>,
    ) -> Result<(), (&'static str, String)> {
        loop {
            // Connected before there is anything to send, and checked on every round (about
            // once a second when idle): `/healthz` then tells a wrong URL or a broker that went
            // away at once, not at the next approval.
            if broker
                .as_ref()
                .is_some_and(|b| !b.connection.status().connected())
            {
                return Err(("connection", "the broker connection was lost".to_owned()));
            }
            if broker.is_none() {
                *broker = Some(self.connect_any(target, urls).await?);
            }
            let db = self.db.clone();
            let pending = tokio::task::spawn_blocking(move || outbox::unpublished(&db, IN_FLIGHT))
                .await
                .map_err(join_failed)
                .and_then(|r| r)
                .map_err(|e| ("store", e.to_string()))?;
            if pending.is_empty() {
                return Ok(());
            }
            let channel = &broker.as_ref().expect("connected above").channel;
            let mut confirms = Vec::with_capacity(pending.len());
            for b in &pending {
                let routing_key = format!("{}.{}", b.kind, self.node_id);
                let mut headers = FieldTable::default();
                headers.insert(
                    "rix-node-id".into(),
                    AMQPValue::LongString(self.node_id.as_str().into()),
                );
                headers.insert("rix-batch-seq".into(), AMQPValue::LongLongInt(b.batch_seq));
                headers.insert("rix-first-seq".into(), AMQPValue::LongLongInt(b.first_seq));
                headers.insert("rix-last-seq".into(), AMQPValue::LongLongInt(b.last_seq));
                let properties = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(format!("{}:{}", self.node_id, b.batch_seq).into())
                    .with_app_id("rix-node".into())
                    .with_headers(headers);
                let confirm = channel
                    .basic_publish(
                        target.exchange.as_str().into(),
                        routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        &b.bytes,
                        properties,
                    )
                    .await
                    .map_err(|e| ("publish", e.to_string()))?;
                confirms.push(confirm);
            }
            let mut confirmed = Vec::with_capacity(pending.len());
            let confirm_by = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
            for (b, confirm) in pending.iter().zip(confirms) {
                let confirmation = match tokio::time::timeout_at(confirm_by, confirm).await {
                    Ok(c) => c.map_err(|e| ("publish", e.to_string()))?,
                    Err(_) => {
                        self.mark(&confirmed, &pending).await?;
                        return Err((
                            "confirm_timeout",
                            format!(
                                "the broker did not confirm batch {} within {CONFIRM_TIMEOUT:?}",
                                b.batch_seq
                            ),
                        ));
                    }
                };
                if !confirmation.is_ack() {
                    // Mark what was confirmed before the nack; the rest goes again, in order.
                    self.mark(&confirmed, &pending).await?;
                    return Err(("nack", format!("broker refused batch {}", b.batch_seq)));
                }
                confirmed.push(b.batch_seq);
            }
            self.mark(&confirmed, &pending).await?;
        }
    }

    async fn mark(
        &self,
        confirmed: &[i64],
        pending: &[StoredBatch],
    ) -> Result<(), (&'static str, String)> {
        if confirmed.is_empty() {
            return Ok(());
        }
        let db = self.db.clone();
        let seqs = confirmed.to_vec();
        tokio::task::spawn_blocking(move || outbox::mark_published(&db, &seqs))
            .await
            .map_err(join_failed)
            .and_then(|r| r)
            .map_err(|e| ("store", e.to_string()))?;
        let done: Vec<StoredBatch> = pending
            .iter()
            .filter(|b| confirmed.contains(&b.batch_seq))
            .cloned()
            .collect();
        self.count_published(&done);
        Ok(())
    }
}

/// Whether the broker refused an operation for lack of permission (ACCESS_REFUSED, 403).
fn access_refused(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(a) if a.get_id() == 403)
}
