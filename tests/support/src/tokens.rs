//! The bearer tokens every test node accepts, and the institutions its submitters act for.
//! The node harness puts them in a `Config`, the end-to-end one in a TOML file.

/// A submitter of [`SUBMITTER_USCC`].
pub const SUBMITTER: &str = "test-submitter-token-yunnan-univ";
/// A submitter of [`OTHER_USCC`]: another institution's.
pub const OTHER_SUBMITTER: &str = "test-submitter-token-other-inst";
/// A reviewer.
pub const REVIEWER: &str = "test-reviewer-token-0000000001";
/// An admin: registers for any institution (generated records name many).
pub const ADMIN: &str = "test-admin-token-00000000001";
/// The institution of [`SUBMITTER`] (a real, valid USCC: the fixtures' second institution).
pub const SUBMITTER_USCC: &str = "91330100799655058B";
/// The institution of [`OTHER_SUBMITTER`].
pub const OTHER_USCC: &str = "91440300708461136T";

/// The feed token `node_id` enrols its gateway with (its `[[gateways]]` entry): one per node,
/// as in production, so that a gateway presenting one node's token to another is refused.
pub fn feed_token(node_id: &str) -> String {
    format!("test-feed-token-for-{node_id}")
}
