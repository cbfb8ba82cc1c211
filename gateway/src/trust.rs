//! The trust store: which nodes belong to the federation and which Ed25519 keys may sign their
//! batches, with validity windows (rotation) and revocation. Kept in the catalogue database,
//! managed with `rix trust add|list|revoke`, read by ingest as a [`KeyRing`].
//!
//! Ingest reads it straight from the database for every batch, so that a key revoked by the
//! operator on another process (or another gateway replica) takes effect at once.
//!
//! Beside each node's feed URL it keeps the **feed token**: the bearer credential the node
//! issued to this gateway (its `[[gateways]]` entry), which the puller presents on every page
//! because a node's feed serves enrolled gateways only (DESIGN.md §4). It lives here, with the
//! URL it belongs to, so that every replica sharing the catalogue pulls with it and an operator
//! rotates it with one `rix trust add`. It is a secret: [`list`] says only whether one is set,
//! and nothing logs it.

use diesel::prelude::*;
use rix_schema::batch::{KeyLookup, KeyRing, TrustedKey};
use rix_schema::signing::VerifyingKey;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::schema::{node_chain, node_keys, nodes};
use crate::db::{Db, StoreError};

/// A trust-store change that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The public key is not an Ed25519 key.
    #[error("not a usable Ed25519 public key: {0}")]
    Key(String),
    /// A time is not RFC 3339.
    #[error("{field}: {value:?} is not an RFC 3339 time (e.g. 2027-01-01T00:00:00Z)")]
    Time {
        /// Which option.
        field: &'static str,
        /// What was given.
        value: String,
    },
    /// The node or key does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A feed token that cannot be a node's `[[gateways]]` token.
    #[error("{0}")]
    FeedToken(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for TrustError {
    fn from(e: diesel::result::Error) -> Self {
        TrustError::Store(StoreError::Query(e))
    }
}

impl crate::db::AsConflict for TrustError {
    fn is_conflict(&self) -> bool {
        matches!(self, TrustError::Store(e) if e.is_conflict())
    }
}

/// One trusted key as listed.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// The node.
    pub node_id: String,
    /// The key id (`ed25519:` + 16 hex).
    pub key_id: String,
    /// Raw public key, base64.
    pub public_key: String,
    /// Validity start.
    pub valid_from: Option<String>,
    /// Validity end.
    pub valid_until: Option<String>,
    /// Revocation time.
    pub revoked_at: Option<String>,
}

/// One node as listed.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    /// Node id.
    pub node_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Its signed feed.
    pub feed_url: Option<String>,
    /// Whether a feed token is stored for it (never the token).
    pub feed_token_set: bool,
    /// Its keys.
    pub keys: Vec<KeyInfo>,
}

/// A public key from an operator: raw base64 (as `rix keygen` prints) or SPKI PEM.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, TrustError> {
    let text = text.trim();
    let key = if text.starts_with("-----BEGIN") {
        VerifyingKey::from_spki_pem(text.as_bytes())
    } else {
        VerifyingKey::from_base64(text)
    };
    key.map_err(|e| TrustError::Key(e.to_string()))
}

fn parse_time(field: &'static str, value: Option<&str>) -> Result<Option<String>, TrustError> {
    match value {
        None => Ok(None),
        Some(v) => OffsetDateTime::parse(v, &Rfc3339)
            .map(|t| Some(t.format(&Rfc3339).expect("a parsed time formats")))
            .map_err(|_| TrustError::Time {
                field,
                value: v.to_owned(),
            }),
    }
}

fn now() -> String {
    crate::catalogue::now()
}

/// Adds (or updates) a node and trusts `key` for it. Returns the key id.
///
/// Adding a second key to a node is how keys rotate: trust the new key, let the node switch,
/// then end the old key's window (`valid_until`) or revoke it.
pub fn add(
    db: &Db,
    node_id: &str,
    name: Option<&str>,
    feed_url: Option<&str>,
    key: &VerifyingKey,
    valid_from: Option<&str>,
    valid_until: Option<&str>,
) -> Result<String, TrustError> {
    let valid_from = parse_time("--valid-from", valid_from)?;
    let valid_until = parse_time("--valid-until", valid_until)?;
    let key_id = key.key_id();
    db.write(|conn| {
        let exists: i64 = nodes::table
            .filter(nodes::node_id.eq(node_id))
            .count()
            .get_result(conn)?;
        if exists == 0 {
            diesel::insert_into(nodes::table)
                .values((
                    nodes::node_id.eq(node_id),
                    nodes::name.eq(name),
                    nodes::feed_url.eq(feed_url),
                    nodes::added_at.eq(now()),
                ))
                .execute(conn)?;
        } else {
            if name.is_some() {
                diesel::update(nodes::table.find(node_id))
                    .set(nodes::name.eq(name))
                    .execute(conn)?;
            }
            if feed_url.is_some() {
                diesel::update(nodes::table.find(node_id))
                    .set(nodes::feed_url.eq(feed_url))
                    .execute(conn)?;
            }
        }
        diesel::delete(node_keys::table.find((node_id, &key_id))).execute(conn)?;
        diesel::insert_into(node_keys::table)
            .values((
                node_keys::node_id.eq(node_id),
                node_keys::key_id.eq(&key_id),
                node_keys::public_key.eq(key.to_base64()),
                node_keys::valid_from.eq(&valid_from),
                node_keys::valid_until.eq(&valid_until),
                node_keys::added_at.eq(now()),
            ))
            .execute(conn)?;
        Ok::<_, TrustError>(())
    })?;
    Ok(key_id)
}

/// Revokes a key: every batch it signed is refused from now on.
pub fn revoke(db: &Db, node_id: &str, key_id: &str) -> Result<(), TrustError> {
    let changed = db.write(|conn| {
        diesel::update(node_keys::table.find((node_id, key_id)))
            .set(node_keys::revoked_at.eq(now()))
            .execute(conn)
            .map_err(TrustError::from)
    })?;
    if changed == 0 {
        return Err(TrustError::NotFound(format!(
            "node {node_id} has no key {key_id}; `rix trust list` shows the trusted keys"
        )));
    }
    Ok(())
}

/// Every node with its keys.
pub fn list(db: &Db) -> Result<Vec<NodeInfo>, TrustError> {
    let mut conn = db.conn()?;
    let all_nodes: Vec<(String, Option<String>, Option<String>, bool)> = nodes::table
        .order(nodes::node_id.asc())
        .select((
            nodes::node_id,
            nodes::name,
            nodes::feed_url,
            nodes::feed_token.is_not_null(),
        ))
        .load(&mut *conn)?;
    let keys: Vec<KeyRow> = node_keys::table
        .order((node_keys::node_id.asc(), node_keys::added_at.asc()))
        .select(KEY_COLUMNS)
        .load(&mut *conn)?;
    Ok(all_nodes
        .into_iter()
        .map(|(node_id, name, feed_url, feed_token_set)| NodeInfo {
            keys: keys
                .iter()
                .filter(|k| k.0 == node_id)
                .map(|k| KeyInfo {
                    node_id: k.0.clone(),
                    key_id: k.1.clone(),
                    public_key: k.2.clone(),
                    valid_from: k.3.clone(),
                    valid_until: k.4.clone(),
                    revoked_at: k.5.clone(),
                })
                .collect(),
            node_id,
            name,
            feed_url,
            feed_token_set,
        })
        .collect())
}

type KeyRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);
const KEY_COLUMNS: (
    node_keys::node_id,
    node_keys::key_id,
    node_keys::public_key,
    node_keys::valid_from,
    node_keys::valid_until,
    node_keys::revoked_at,
) = (
    node_keys::node_id,
    node_keys::key_id,
    node_keys::public_key,
    node_keys::valid_from,
    node_keys::valid_until,
    node_keys::revoked_at,
);

/// Stores (or with `None` removes) the bearer token the puller presents to `node_id`'s feed.
///
/// The node must be in the trust store already ([`add`]).
pub fn set_feed_token(db: &Db, node_id: &str, token: Option<&str>) -> Result<(), TrustError> {
    if let Some(t) = token {
        check_feed_token(t)?;
    }
    let changed = db.write(|conn| {
        diesel::update(nodes::table.find(node_id))
            .set(nodes::feed_token.eq(token))
            .execute(conn)
            .map_err(TrustError::from)
    })?;
    if changed == 0 {
        return Err(TrustError::NotFound(format!(
            "node {node_id} is not in the trust store; `rix trust add` it with its key first"
        )));
    }
    Ok(())
}

/// Whether `token` can be a node's `[[gateways]]` token (checked before anything is stored).
pub fn check_feed_token(token: &str) -> Result<(), TrustError> {
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TrustError::FeedToken(
            "a feed token is at least 16 characters without spaces or control characters (the \
             value the node has in its [[gateways]] entry)"
                .into(),
        ));
    }
    Ok(())
}

/// The bearer token the puller presents to `node_id`'s feed, if one is stored.
pub fn feed_token(db: &Db, node_id: &str) -> Result<Option<String>, StoreError> {
    let mut conn = db.conn()?;
    Ok(nodes::table
        .find(node_id)
        .select(nodes::feed_token)
        .first::<Option<String>>(&mut *conn)
        .optional()?
        .flatten())
}

/// Nodes with a feed URL, for the puller.
pub fn feeds(db: &Db) -> Result<Vec<(String, String)>, StoreError> {
    let mut conn = db.conn()?;
    Ok(nodes::table
        .filter(nodes::feed_url.is_not_null())
        .select((nodes::node_id, nodes::feed_url.assume_not_null()))
        .load(&mut *conn)?)
}

/// The trust store as ingest reads it: straight from the database, one small query per batch,
/// so that a key revoked by the operator (from another process, or on another gateway replica)
/// refuses the very next batch. Per batch, not per record, so it costs nothing measurable.
#[derive(Clone)]
pub struct TrustStore {
    db: Db,
}

impl TrustStore {
    /// The trust store kept in `db`.
    pub fn new(db: Db) -> Result<TrustStore, StoreError> {
        Ok(TrustStore { db })
    }

    /// The key, or which of node and key is unknown — or a storage error, which ingest must
    /// not mistake for an unknown node.
    pub fn find(&self, node_id: &str, key_id: &str) -> Result<KeyLookup, StoreError> {
        let mut conn = self.db.conn()?;
        let key: Option<KeyRow> = node_keys::table
            .find((node_id, key_id))
            .select(KEY_COLUMNS)
            .first(&mut *conn)
            .optional()?;
        let Some((_, _, public_key, from, until, revoked)) = key else {
            let known: i64 = nodes::table
                .filter(nodes::node_id.eq(node_id))
                .count()
                .get_result(&mut *conn)?;
            return Ok(if known > 0 {
                KeyLookup::UnknownKey
            } else {
                KeyLookup::UnknownNode
            });
        };
        let time = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        };
        // A stored key that no longer parses is treated as unknown: its batches are refused.
        Ok(match VerifyingKey::from_base64(&public_key) {
            Ok(key) => KeyLookup::Found(TrustedKey {
                key,
                valid_from: time(&from),
                valid_until: time(&until),
                revoked_at: time(&revoked),
            }),
            Err(_) => KeyLookup::UnknownKey,
        })
    }
}

impl KeyRing for TrustStore {
    fn lookup(&self, node_id: &str, key_id: &str) -> KeyLookup {
        match self.find(node_id, key_id) {
            Ok(found) => found,
            Err(e) => {
                // Verification cannot wait for storage: answer "unknown" here; ingest asks
                // `find` again before refusing and turns a storage error into a retry.
                tracing::error!(error = %e, node_id, "trust store unreadable");
                KeyLookup::UnknownNode
            }
        }
    }
}

/// Whether the node has a chain position yet (used by `rix trust list`).
pub fn chain_started(db: &Db, node_id: &str) -> Result<bool, StoreError> {
    let mut conn = db.conn()?;
    let n: i64 = node_chain::table
        .filter(node_chain::node_id.eq(node_id))
        .count()
        .get_result(&mut *conn)?;
    Ok(n > 0)
}
