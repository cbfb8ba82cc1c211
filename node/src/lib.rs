//! rix-node: the registration node a ministry or a province runs (DESIGN.md §5).
//!
//! Institutions register their results (科技成果) and funded projects (科技计划项目) here;
//! the node's reviewers approve them; approved, publishable records leave the node as signed
//! batches — on RabbitMQ, and always on the node's own signed feed.
//!
//! A record's journey is the module order:
//! [`register`] (submit, revise, withdraw, read, list) → [`review`] (approve with a
//! registration number, or reject) → [`outbox`] (the gap-free log, sealed and signed into
//! batches, served as the feed) → [`publish`] (RabbitMQ with publisher confirms).
//! [`api`] translates HTTP to those stages; [`db`] is the storage both SQLite and PostgreSQL
//! serve; [`server`] starts and stops it all.
//!
//! What it guarantees: a refused request writes nothing; an approval and its log entry commit
//! together; seqs are gap-free; a batch is signed once and the same bytes are published,
//! re-published after a crash and served by the feed; records classified `secret` or above
//! never enter the log. What it does not do: merge, search or serve other nodes' records —
//! that is the gateway, which it never imports.
//!
//! What it may depend on: [`schema`] (every rule, the wire format, signing) and `rix-runtime` (the
//! database pool, config loading, problem+json, health); never the gateway. The two share only the
//! schema crate and the wire format (DESIGN.md §2), so either can be rebuilt, redeployed or
//! replaced without the other.

pub use rix_schema as schema;

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod import;
pub mod keys;
pub mod metrics;
pub mod outbox;
pub mod publish;
pub mod register;
pub mod review;
pub mod server;

pub use config::Config;
pub use server::{RunningNode, StartError, start};
