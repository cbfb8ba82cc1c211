//! rix-adapters: getting records out of systems no one will rewrite — spreadsheet and CSV
//! exports of the national registration form (科技成果登记表), XML exports of the desktop
//! registration system, JSON Lines from another exchange, provincial platforms' HTTP APIs —
//! and into a node through its API (DESIGN.md §2; seed 003: 存量与增量数据资源互联互通).
//!
//! A row travels one way through the modules:
//! [`source`] reads rows as the source has them ([`row::SourceRow`]: typed cells or a tree,
//! with where it came from) → [`mapping`] turns a row into a record of the common schema as a
//! declared mapping file says (header names and aliases, converters in [`convert`]) and
//! validates it with `rix-schema` → rows that fail go to the [`report`]; records that pass go
//! to a node through [`push`], idempotently per source row, resumable from a checkpoint.
//!
//! What it may not touch: the node's storage or the gateway. It talks to a node only over the
//! node's HTTP API, as any institution's client would, and depends on no rix crate but the
//! schema.

pub mod convert;
pub mod mapping;
pub mod outcome;
pub mod push;
pub mod report;
pub mod row;
pub mod source;

pub use rix_schema as schema;
