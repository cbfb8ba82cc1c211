//! The record kinds the exchange carries, and their wire names.
//!
//! Why an enum and not the wire strings: a kind the exchange does not carry cannot be named, and
//! every `match` on it shows where a new kind must be handled. The wire names (`achievement`,
//! `funded_project`, [`RecordKind::as_str`]) are part of the contract: feed entries, routing
//! keys and schema URLs carry them.
//!
//! What it may not touch: fields. A kind is only a name; its schema is in [`crate::schemas`],
//! its Rust types in [`crate::record`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A kind of record. The wire name (`achievement`, `funded_project`) appears in feed entries,
/// routing keys (`{kind}.{node_id}`) and schema URLs; it never changes for an existing kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// 科技成果: a registered research result.
    Achievement,
    /// 科技计划项目: a project funded by a science and technology program.
    FundedProject,
}

impl RecordKind {
    /// Every kind, in a stable order.
    pub const ALL: [RecordKind; 2] = [RecordKind::Achievement, RecordKind::FundedProject];

    /// The wire name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Achievement => "achievement",
            RecordKind::FundedProject => "funded_project",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string was not the wire name of any kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown record kind {0:?}; expected one of: achievement, funded_project")]
pub struct UnknownKind(pub String);

impl FromStr for RecordKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}
