//! The plumbing the rix node and the gateway share, written once (DESIGN.md §2: `rix-runtime`).
//!
//! The node and the gateway never import each other; what both need that is not the schema —
//! how a service reports the health of a connection it keeps, how it answers a request refused
//! before any handler ran — lives here, so that an operator reads the same shapes from both.
//! No business logic: nothing here knows what a record, a batch or a catalogue is.

pub mod clock;
pub mod config;
pub mod db;
pub mod health;
pub mod problem;
pub mod query;
