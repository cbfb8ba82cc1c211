//! Record secrecy levels (成果密级) and the one rule about which may leave a node
//! ([`SecrecyLevel::may_leave_node`]).
//!
//! The node's review (what enters its log) and the gateway's secrecy gate (what it stores) ask
//! that one function, so the two sides cannot draw the line in different places.
//!
//! What it may not touch: who may read what below that line — a reader's entitlements and
//! field redaction are [`crate::sensitivity`]'s — or the rules of a level change (降解密),
//! which are [`crate::validate::check_level_change`]'s.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The secrecy level of a whole record, ordered from least to most restricted.
///
/// A declassification (降解密) is an ordinary new version of the record with a lower level and a
/// `secrecy.decision` that names the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecrecyLevel {
    /// 公开: may be shown to anyone.
    Public,
    /// 内部: shown only to consumers entitled to internal records.
    Internal,
    /// 秘密: classified; stays on the registering node.
    Secret,
    /// 机密: classified; stays on the registering node.
    Confidential,
    /// 绝密: classified; stays on the registering node.
    TopSecret,
}

impl SecrecyLevel {
    /// Every level, least restricted first.
    pub const ALL: [SecrecyLevel; 5] = [
        SecrecyLevel::Public,
        SecrecyLevel::Internal,
        SecrecyLevel::Secret,
        SecrecyLevel::Confidential,
        SecrecyLevel::TopSecret,
    ];

    /// Whether a record at this level may ever leave the node that registered it: enter the
    /// outbox, the signed feed or the queue. Only public and internal records may; state secrets
    /// are kept locally, and a gateway that receives one anyway must quarantine it.
    pub fn may_leave_node(self) -> bool {
        matches!(self, SecrecyLevel::Public | SecrecyLevel::Internal)
    }

    /// The wire name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            SecrecyLevel::Public => "public",
            SecrecyLevel::Internal => "internal",
            SecrecyLevel::Secret => "secret",
            SecrecyLevel::Confidential => "confidential",
            SecrecyLevel::TopSecret => "top_secret",
        }
    }

    /// The level named by a wire string, if any.
    pub fn parse(s: &str) -> Option<SecrecyLevel> {
        SecrecyLevel::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The level of a record given as JSON (`/secrecy/level`), if present and known.
    pub fn of_record(record: &serde_json::Value) -> Option<SecrecyLevel> {
        record
            .pointer("/secrecy/level")
            .and_then(|v| v.as_str())
            .and_then(SecrecyLevel::parse)
    }
}

impl fmt::Display for SecrecyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_and_internal_leave_a_node() {
        let leaving: Vec<_> = SecrecyLevel::ALL
            .into_iter()
            .filter(|l| l.may_leave_node())
            .collect();
        assert_eq!(leaving, [SecrecyLevel::Public, SecrecyLevel::Internal]);
    }

    #[test]
    fn levels_are_ordered_by_restriction_and_round_trip() {
        assert!(SecrecyLevel::Public < SecrecyLevel::Internal);
        assert!(SecrecyLevel::Confidential < SecrecyLevel::TopSecret);
        for level in SecrecyLevel::ALL {
            let json = serde_json::to_value(level).unwrap();
            assert_eq!(json, level.as_str());
            assert_eq!(SecrecyLevel::parse(level.as_str()), Some(level));
        }
        assert_eq!(SecrecyLevel::parse("classified"), None);
    }
}
