//! rix-adapters: getting records out of systems no one will rewrite (spreadsheet and CSV
//! exports, XML exports, other platforms' HTTP APIs, OAI-PMH) and into a node through its API.
//!
//! No adapter exists yet; this crate is reserved so the workspace matches DESIGN.md §2.

pub use rix_schema as schema;
