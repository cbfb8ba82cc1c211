//! A test's own tap on the broker: a durable queue bound to one node's batches on the records
//! exchange, as a gateway's queue would be.

use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use rix_schema::batch::SignedBatch;

use crate::services::amqp_url;

/// The exchange nodes publish to by default.
const RECORDS_EXCHANGE: &str = "rix.records";

/// A durable queue bound to `*.{node_id}` on the records exchange.
pub struct QueueTap {
    connection: lapin::Connection,
    channel: lapin::Channel,
    name: String,
}

impl QueueTap {
    /// Declares the exchange (as a node does) and the queue, bound to `node_id`'s batches of
    /// every kind.
    pub async fn bind(node_id: &str) -> QueueTap {
        let connection =
            lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                .await
                .expect("the test broker is reachable");
        let channel = connection.create_channel().await.unwrap();
        channel
            .exchange_declare(
                RECORDS_EXCHANGE.into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let name = format!("rix-test-{node_id}");
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                name.as_str().into(),
                RECORDS_EXCHANGE.into(),
                format!("*.{node_id}").as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        QueueTap {
            connection,
            channel,
            name,
        }
    }

    /// Takes (and acks) messages until batches up to `last_seq` arrived; fails after `within`.
    /// Returns `(routing_key, body)` in delivery order, re-sent batches included.
    pub async fn drain_until(&self, last_seq: u64, within: Duration) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut highest = 0u64;
        let deadline = Instant::now() + within;
        while highest < last_seq {
            assert!(
                Instant::now() < deadline,
                "only seqs up to {highest} of {last_seq} arrived on the queue"
            );
            match self
                .channel
                .basic_get(self.name.as_str().into(), BasicGetOptions::default())
                .await
                .unwrap()
            {
                Some(message) => {
                    let delivery = &message.delivery;
                    let batch: SignedBatch = serde_json::from_slice(&delivery.data).unwrap();
                    highest = highest.max(batch.header.last_seq);
                    out.push((delivery.routing_key.to_string(), delivery.data.clone()));
                    delivery.ack(BasicAckOptions::default()).await.unwrap();
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        out
    }

    /// [`QueueTap::drain_until`], the bodies only.
    pub async fn drain_batches_until(&self, last_seq: u64, within: Duration) -> Vec<Vec<u8>> {
        self.drain_until(last_seq, within)
            .await
            .into_iter()
            .map(|(_, body)| body)
            .collect()
    }

    /// How many messages wait in the queue now.
    pub async fn depth(&self) -> u32 {
        self.channel
            .queue_declare(
                self.name.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Deletes the queue and closes the connection.
    pub async fn delete(self) {
        let _ = self
            .channel
            .queue_delete(self.name.as_str().into(), Default::default())
            .await;
        let _ = self.connection.close(0, "done".into()).await;
    }
}
