//! The plumbing the rix node and the gateway share, written once (DESIGN.md §2: `rix-runtime`).
//!
//! The node and the gateway never import each other; what both need that is not the schema —
//! the database pool and migrations runner over SQLite and PostgreSQL ([`db`]), reading a
//! config file with its environment overrides ([`config`]), the HTTP listener with TLS and its
//! checked request heads ([`serve`]), problem documents ([`problem`]), metrics ([`metrics`]), the health of a
//! connection a service keeps ([`health`]), the clock ([`clock`]) — lives here, so that an
//! operator reads the same shapes from both and a fix lands in both at once.
//!
//! What it may not touch: no business logic (nothing here knows what a record, a batch or a
//! catalogue is), and it depends on no rix crate but the schema's at most, so both services
//! can use it without importing each other.

pub mod clock;
pub mod config;
pub mod db;
pub mod health;
pub mod metrics;
pub mod problem;
pub mod query;
pub mod serve;
