//! rix-node: the registration node a ministry or a province runs.
//!
//! This crate will hold the registration API, the review workflow, node storage, the
//! transactional outbox, the AMQP publisher and the signed HTTP feed (issue 3). Today it only
//! re-exports what it will build on, so that the workspace map of DESIGN.md §2 is in place and
//! nothing here pretends to serve requests yet.

pub use rix_schema as schema;
