//! rix-test-support: the pieces every test harness of the workspace needs alike — the node's
//! (`node/tests/common`), the gateway's (`gateway/tests/common`) and the end-to-end one
//! (`rix-tests`) — written once. It knows the schema crate and the wire format, never a
//! service's internals: each harness builds its own node or gateway on top.

pub mod backends;
pub mod chain;
pub mod cluster;
pub mod fixtures;
pub mod keys;
pub mod pki;
pub mod queue;
pub mod services;
pub mod tokens;

pub use backends::Backend;
pub use services::{amqp_url, fresh_postgres_database, unique};
