//! rix-adapters: getting records out of systems no one will rewrite (spreadsheet and CSV
//! exports, XML exports, other platforms' HTTP APIs, OAI-PMH) and into a node through its API.
//!
//! No adapter exists yet; this crate is reserved so the workspace matches DESIGN.md §2.
//!
//! What it may not touch: a node's database, and the node and gateway crates. An adapter is one
//! more client of a node's registration API, so its records are validated, reviewed and signed
//! like any institution's; it depends on [`schema`] alone, to build and pre-check them.

pub use rix_schema as schema;
