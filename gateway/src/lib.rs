//! rix-gateway: the national gateway (DESIGN.md §6). It turns the nodes' signed feeds into one
//! national catalogue.
//!
//! A batch's journey is the module order: a transport brings it in — [`ingest`] takes it
//! through verification against the [`trust`] store, the chain check, validation and the
//! secrecy gate — and [`catalogue`] applies it idempotently, merging the same result from
//! several nodes and linking achievements to projects, writing the change stream that the
//! search index and the ministries' feeds read. [`db`] is the storage SQLite and PostgreSQL
//! both serve. [`health`] says whether all of that is happening.
//!
//! What it guarantees: nothing is applied that did not verify against a trusted, unrevoked key
//! on an unbroken chain; nothing classified `secret` or above is ever stored; applying the same
//! batch twice, or versions out of order, changes nothing; no record or field leaves through
//! [`api`] (search, detail, change feed, export, stats) or [`oai`] except through [`access`]'s
//! one filter, and the [`search`] index holds only what that filter lets an internal reader see.
//!
//! The rest is the service around that journey: [`consume`] and [`pull`] are the two transports,
//! [`serve`] starts them beside the HTTP listener, [`portal`] is the researchers' web pages over the
//! same reads as [`api`], [`oai`] is the OAI-PMH provider that aggregators harvest, [`snapshot`] writes and serves the
//! bulk files ministries start from, [`limits`]
//! bounds the listener's heavy endpoints, and [`config`] is the file all of them read.
//!
//! What it may depend on: [`schema`] and `rix-runtime`; never the node. It learns what a node
//! publishes only through the wire format — the queue, the signed feed and a node's `/v1/keys` —
//! so that a node built by someone else, to the same format, is as good as ours.

pub use rix_schema as schema;

pub mod access;
pub mod api;
pub mod catalogue;
pub mod config;
pub mod consume;
pub mod db;
pub mod health;
pub mod ingest;
pub mod limits;
pub mod oai;
pub mod portal;
pub mod pull;
pub mod representation;
pub mod search;
pub mod serve;
pub mod snapshot;
pub mod trust;
