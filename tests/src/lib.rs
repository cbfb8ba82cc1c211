//! rix-tests: the end-to-end harness. It runs the real `rix` program as separate processes
//! (so tests can SIGKILL them), against RabbitMQ and PostgreSQL started by
//! `ops/start-services.sh`, and drives everything over public interfaces only: HTTP, the
//! broker, the signed feed.
//!
//! One harness for every test under `tests/tests/`:
//! - [`process`]: nodes and gateways as processes (start, kill, stop, restart, trust);
//! - [`node_api`]: registering, reviewing and withdrawing records at a node, and waiting for
//!   its log;
//! - [`gateway_api`]: reading what a gateway holds (change feed, search, health) and waiting
//!   for it;
//! - [`http`]: the HTTP calls, polling and metrics the two above are made of;
//! - [`broker`]: `rabbitmqctl` and broker URLs;
//! - [`mod@settle`]: waiting until a federation is at rest, and comparing the gateway's catalogue
//!   and what the broker delivered with the nodes' signed feeds, byte for byte.
//!
//! What the node's and the gateway's own tests need as well (the test services, tokens, key
//! files, TLS material, a tap on a node's queue, chain checks) comes from `rix-test-support`
//! and is re-exported here.

pub mod broker;
pub mod gateway_api;
pub mod http;
pub mod node_api;
pub mod process;
pub mod settle;

use std::time::Duration;

pub use broker::*;
pub use gateway_api::*;
pub use http::*;
pub use node_api::*;
pub use process::*;
pub use rix_test_support::chain::verify_log;
pub use rix_test_support::fixtures::{as_public_submission, as_submission, fixture};
pub use rix_test_support::keys::{signing_key_file, write_private};
pub use rix_test_support::queue::QueueTap;
pub use rix_test_support::{amqp_url, fresh_postgres_database, pki, tokens, unique};
pub use settle::*;

/// How long a test waits for something the system does on its own (a gateway catching up, a
/// node sealing): long enough for a debug build on a busy two-core machine; every wait ends
/// as soon as it is true.
pub const WITHIN: Duration = Duration::from_secs(90);
