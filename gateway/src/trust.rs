//! The trust store: which nodes belong to the federation and which Ed25519 keys may sign their
//! batches, with validity windows (rotation) and revocation. Kept in the catalogue database,
//! managed with `rix trust add|list|rotate|revoke`, read by ingest as a [`KeyRing`].
//!
//! **Rotation is mechanical** ([`rotate`]): a node lists at `GET /v1/keys` every key it ever
//! signed with, each with the window its own batch chain gives it (from the `created_at` of the
//! first batch it signed to the `created_at` of the first batch its successor signed). The
//! gateway copies those windows as they are, so the switch time is the node's, exact to the
//! nanosecond, never an operator's guess.
//!
//! **Revocation** comes in two strengths: [`revoke`] refuses every batch the key ever signed
//! (its history too); [`mark_compromised`] refuses the batches dated from a given time on and
//! keeps the earlier ones, so that the catalogue can still be rebuilt from the feeds. A key
//! cannot sign its way back in time past either: ingest refuses a batch dated before the batch
//! it follows, or beyond the gateway's clock (see [`crate::ingest`]).
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
//!
//! What it may not touch: records. It knows nodes, keys, feed URLs and tokens (`nodes`,
//! `node_keys`; `node_chain` it only reads, to tell whether a node's chain has begun); whether a
//! batch verifies is `rix_schema::batch::verify_batch`'s, asking this store as its [`KeyRing`].
//! Its one network call is [`fetch_node_keys`], for `rix trust rotate`.

use diesel::prelude::*;
use rix_runtime::clock::now;
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
    /// A node's `/v1/keys` could not be read.
    #[error("{0}")]
    Fetch(String),
    /// What a node answers at `/v1/keys` cannot be applied as it is.
    #[error("{0}")]
    Inconsistent(String),
    /// A key the node lists is in the trust store with another public key.
    #[error("{0}")]
    Conflict(String),
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
    /// Revocation time (every batch the key signed is refused).
    pub revoked_at: Option<String>,
    /// Batches the key signed from this time on are refused; earlier ones are kept.
    pub compromised_since: Option<String>,
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
        // Stored in UTC, as batch headers carry their times: one form to read and compare.
        Some(v) => OffsetDateTime::parse(v, &Rfc3339)
            .map(|t| Some(rfc3339(t.to_offset(time::UtcOffset::UTC))))
            .map_err(|_| TrustError::Time {
                field,
                value: v.to_owned(),
            }),
    }
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

/// Marks a key compromised since `since` (RFC 3339): the batches it signed dated at or after
/// that instant are refused, the earlier ones stay accepted — also when the catalogue is rebuilt
/// from the feeds. Returns the time as stored.
///
/// Choose `since` no earlier than the first moment the key may have been in other hands. A
/// batch the node itself signed with the key after `since` is refused too, and the node's chain
/// stops there; for a key the node has already retired (`rix trust rotate` closed its window)
/// the switch time is the natural `since`, and nothing the node signed is lost.
pub fn mark_compromised(
    db: &Db,
    node_id: &str,
    key_id: &str,
    since: &str,
) -> Result<String, TrustError> {
    let since = parse_time("--compromised-since", Some(since))?.expect("a time was given");
    let changed = db.write(|conn| {
        diesel::update(node_keys::table.find((node_id, key_id)))
            .set(node_keys::compromised_since.eq(&since))
            .execute(conn)
            .map_err(TrustError::from)
    })?;
    if changed == 0 {
        return Err(TrustError::NotFound(format!(
            "node {node_id} has no key {key_id}; `rix trust list` shows the trusted keys"
        )));
    }
    Ok(since)
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
                    compromised_since: k.6.clone(),
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
    Option<String>,
);
const KEY_COLUMNS: (
    node_keys::node_id,
    node_keys::key_id,
    node_keys::public_key,
    node_keys::valid_from,
    node_keys::valid_until,
    node_keys::revoked_at,
    node_keys::compromised_since,
) = (
    node_keys::node_id,
    node_keys::key_id,
    node_keys::public_key,
    node_keys::valid_from,
    node_keys::valid_until,
    node_keys::revoked_at,
    node_keys::compromised_since,
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
        let Some((_, _, public_key, from, until, revoked, compromised)) = key else {
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
        // A revocation whose time no longer parses still revokes: from the first instant.
        let revocation = |t: &Option<String>| {
            t.as_deref()
                .map(|t| OffsetDateTime::parse(t, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH))
        };
        // A stored key that no longer parses is treated as unknown: its batches are refused.
        Ok(match VerifyingKey::from_base64(&public_key) {
            Ok(key) => KeyLookup::Found(TrustedKey {
                key,
                valid_from: time(&from),
                valid_until: time(&until),
                revoked_at: revocation(&revoked),
                compromised_since: revocation(&compromised),
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

/// One key as a node lists it at `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct ListedKey {
    /// `ed25519:` + 16 hex digits, derived from the public key.
    pub key_id: String,
    /// `Ed25519`.
    pub algorithm: String,
    /// Raw public key, base64.
    pub public_key: String,
    /// The same key as SubjectPublicKeyInfo PEM.
    #[serde(default)]
    pub spki_pem: Option<String>,
    /// Start of the key's window as the node saw it: the `created_at` of the first batch it
    /// signed, or when the node first loaded it if it has signed none yet.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// End of the window: the `created_at` of the first batch signed by the next key (`None`
    /// for the key the node signs with now).
    #[serde(default)]
    pub valid_until: Option<String>,
    /// The first batch the key signed (`None`: none yet).
    #[serde(default)]
    pub first_batch_seq: Option<u64>,
}

/// A node's answer at `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct ListedKeys {
    /// The node that answered.
    pub node_id: String,
    /// Every key it ever signed with, and the one it has loaded.
    pub keys: Vec<ListedKey>,
}

/// Most bytes read from a node's `/v1/keys`: a node's key history is a few KB.
const MAX_KEYS_BODY: usize = 1024 * 1024;

/// Reads `GET {base_url}/v1/keys` with `client` (the puller's TLS settings: see
/// [`crate::pull::http_client`]).
pub async fn fetch_node_keys(
    client: &reqwest::Client,
    base_url: &str,
) -> Result<ListedKeys, TrustError> {
    let url = format!("{}/v1/keys", base_url.trim_end_matches('/'));
    let fetch = |detail: String| TrustError::Fetch(format!("GET {url}: {detail}"));
    let mut resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| fetch(crate::pull::network_cause(&e)))?;
    if !resp.status().is_success() {
        return Err(fetch(format!(
            "the node answered {}; check --node-url (the node's base URL, as in its feed URL)",
            resp.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| fetch(crate::pull::network_cause(&e)))?
    {
        if body.len() + chunk.len() > MAX_KEYS_BODY {
            return Err(fetch(format!(
                "the answer is larger than {MAX_KEYS_BODY} bytes; this is not a rix node's key list"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| {
        fetch(format!(
            "not a rix node's key list ({e}); check --node-url and the node's version"
        ))
    })
}

/// The feed URL the trust store holds for `node_id`: where `rix trust rotate` asks for the
/// node's keys unless told otherwise.
pub fn node_url(db: &Db, node_id: &str) -> Result<String, TrustError> {
    let mut conn = db.conn()?;
    let url: Option<Option<String>> = nodes::table
        .find(node_id)
        .select(nodes::feed_url)
        .first(&mut *conn)
        .optional()?;
    match url {
        None => Err(TrustError::NotFound(format!(
            "node {node_id} is not in the trust store; trust its first key with `rix trust add` (comparing the key id with the node's operator), then rotate"
        ))),
        Some(None) => Err(TrustError::NotFound(format!(
            "the trust store has no feed URL for node {node_id}; give the node's base URL with --node-url"
        ))),
        Some(Some(url)) => Ok(url),
    }
}

/// A change [`rotate`] made to the trust store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RotationStep {
    /// A key the node lists that the store did not hold: trusted with the node's window.
    Added {
        /// The key.
        key_id: String,
        /// Its window's start.
        valid_from: String,
        /// Its window's end (`None`: open).
        valid_until: Option<String>,
    },
    /// A key whose window in the store was not the node's: set to the node's.
    Window {
        /// The key.
        key_id: String,
        /// Start before.
        from_before: Option<String>,
        /// Start now.
        valid_from: String,
        /// End before.
        until_before: Option<String>,
        /// End now (`None`: open).
        valid_until: Option<String>,
    },
}

impl std::fmt::Display for RotationStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = |t: &Option<String>, none: &'static str| t.clone().unwrap_or(none.to_owned());
        match self {
            RotationStep::Added {
                key_id,
                valid_from,
                valid_until,
            } => write!(
                f,
                "trusted {key_id}: valid {valid_from} .. {}",
                open(valid_until, "open")
            ),
            RotationStep::Window {
                key_id,
                from_before,
                valid_from,
                until_before,
                valid_until,
            } => write!(
                f,
                "window of {key_id}: {} .. {} -> {valid_from} .. {}",
                open(from_before, "always"),
                open(until_before, "open"),
                open(valid_until, "open")
            ),
        }
    }
}

/// What [`rotate`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    /// The node.
    pub node_id: String,
    /// The changes, oldest key first; empty when the store already held the node's windows.
    pub steps: Vec<RotationStep>,
    /// What the operator should know beyond the changes (a key not yet in use, a key the
    /// node does not list).
    pub notes: Vec<String>,
}

/// A listed key, checked.
struct NodeWindow {
    key_id: String,
    public_key: VerifyingKey,
    from: OffsetDateTime,
    until: Option<OffsetDateTime>,
    first_batch_seq: Option<u64>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("a parsed time formats")
}

/// Checks a node's key list on its own: every key is what its id says, every window is a
/// window, and the windows of the keys that signed follow each other without gap or overlap
/// in the order they signed. Returns the keys oldest first (a key that signed nothing yet last).
fn check_listed(node_id: &str, listed: &ListedKeys) -> Result<Vec<NodeWindow>, TrustError> {
    let bad = |what: String| {
        TrustError::Inconsistent(format!(
            "node {node_id} lists its keys inconsistently: {what}. Nothing was changed; ask the \
             node's operator to check the node (its log and GET /v1/keys) before trusting any \
             key it lists"
        ))
    };
    if listed.node_id != node_id {
        return Err(TrustError::Inconsistent(format!(
            "the node asked answers as node {}, not {node_id}: check --node-url (or the feed URL \
             the trust store holds for {node_id}). Nothing was changed",
            listed.node_id
        )));
    }
    if listed.keys.is_empty() {
        return Err(bad("it lists no key".into()));
    }
    let time = |key_id: &str, field: &str, value: &str| {
        OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
            bad(format!(
                "key {key_id} has {field} {value:?}, which is not an RFC 3339 time"
            ))
        })
    };
    let mut windows: Vec<NodeWindow> = Vec::new();
    for k in &listed.keys {
        if k.algorithm != "Ed25519" {
            return Err(bad(format!(
                "key {} is of algorithm {:?}; rix nodes sign with Ed25519",
                k.key_id, k.algorithm
            )));
        }
        let public_key = VerifyingKey::from_base64(&k.public_key).map_err(|e| {
            bad(format!(
                "key {} is not a usable Ed25519 public key ({e})",
                k.key_id
            ))
        })?;
        if public_key.key_id() != k.key_id {
            return Err(bad(format!(
                "key {} does not belong to the public key listed with it (whose id is {})",
                k.key_id,
                public_key.key_id()
            )));
        }
        if let Some(pem) = k.spki_pem.as_deref().filter(|p| !p.trim().is_empty())
            && VerifyingKey::from_spki_pem(pem.as_bytes()).ok().as_ref() != Some(&public_key)
        {
            return Err(bad(format!(
                "key {}: its spki_pem is not the same key as its public_key",
                k.key_id
            )));
        }
        if windows.iter().any(|w| w.key_id == k.key_id) {
            return Err(bad(format!("key {} is listed twice", k.key_id)));
        }
        let from = match &k.valid_from {
            Some(v) => time(&k.key_id, "valid_from", v)?,
            None => return Err(bad(format!("key {} has no valid_from", k.key_id))),
        };
        let until = match &k.valid_until {
            Some(v) => Some(time(&k.key_id, "valid_until", v)?),
            None => None,
        };
        if until.is_some_and(|u| u <= from) {
            return Err(bad(format!(
                "the window of key {} ends ({}) no later than it starts ({})",
                k.key_id,
                rfc3339(until.expect("checked")),
                rfc3339(from)
            )));
        }
        windows.push(NodeWindow {
            key_id: k.key_id.clone(),
            public_key,
            from,
            until,
            first_batch_seq: k.first_batch_seq,
        });
    }
    // Keys that signed, in the order they took over; then the one not used yet.
    windows.sort_by_key(|w| (w.first_batch_seq.is_none(), w.first_batch_seq));
    let signed = windows
        .iter()
        .filter(|w| w.first_batch_seq.is_some())
        .count();
    for pair in windows[..signed].windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        if old.first_batch_seq == new.first_batch_seq {
            return Err(bad(format!(
                "keys {} and {} both say they signed batch {} first",
                old.key_id,
                new.key_id,
                new.first_batch_seq.expect("signed")
            )));
        }
        if old.until != Some(new.from) {
            return Err(bad(format!(
                "key {} took over at batch {} on {}, but the window of key {} before it ends {} \
                 (overlapping or gapped windows)",
                new.key_id,
                new.first_batch_seq.expect("signed"),
                rfc3339(new.from),
                old.key_id,
                old.until.map_or("never".to_owned(), rfc3339)
            )));
        }
    }
    if let Some(newest) = windows[..signed].last()
        && let Some(until) = newest.until
    {
        return Err(bad(format!(
            "its newest signing key {} has a window that ends ({}), with no key after it",
            newest.key_id,
            rfc3339(until)
        )));
    }
    let unused = &windows[signed..];
    if unused.len() > 1 {
        return Err(bad(format!(
            "{} keys have signed nothing yet ({}); a node loads one key at a time",
            unused.len(),
            unused
                .iter()
                .map(|w| w.key_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(w) = unused.first()
        && w.until.is_some()
    {
        return Err(bad(format!(
            "key {} has signed nothing yet but its window ends",
            w.key_id
        )));
    }
    Ok(windows)
}

/// Applies a node's key windows (its `GET /v1/keys`, from [`fetch_node_keys`]) to the trust
/// store, in one transaction: a key the store does not hold is trusted with the node's window;
/// a key it holds gets the node's window (so the old key is closed exactly at the switch: the
/// `created_at` of the first batch under the new key). Revocations stay as they are, and so do
/// keys the node does not list. Running it again changes nothing.
///
/// Refuses, changing nothing, when the list is inconsistent ([`TrustError::Inconsistent`]:
/// another node answered, a key id that is not its key's, overlapping windows…), when a key it
/// lists is stored under the same id with another public key ([`TrustError::Conflict`]), or
/// when none of the keys it lists is trusted yet: trust extends from a key already trusted,
/// and a node's first key is added with `rix trust add` after comparing it out of band.
pub fn rotate(db: &Db, node_id: &str, listed: &ListedKeys) -> Result<RotationReport, TrustError> {
    let windows = check_listed(node_id, listed)?;
    db.write(|conn| {
        let known: i64 = nodes::table
            .filter(nodes::node_id.eq(node_id))
            .count()
            .get_result(conn)?;
        if known == 0 {
            return Err(TrustError::NotFound(format!(
                "node {node_id} is not in the trust store; trust its first key with `rix trust add` (comparing the key id with the node's operator), then rotate"
            )));
        }
        let stored: Vec<KeyRow> = node_keys::table
            .filter(node_keys::node_id.eq(node_id))
            .order(node_keys::added_at.asc())
            .select(KEY_COLUMNS)
            .load(conn)?;
        let stored_key = |key_id: &str| stored.iter().find(|k| k.1 == key_id);

        for w in &windows {
            if let Some(k) = stored_key(&w.key_id)
                && VerifyingKey::from_base64(&k.2).ok().as_ref() != Some(&w.public_key)
            {
                return Err(TrustError::Conflict(format!(
                    "key {} of node {node_id} is in the trust store with the public key {}, but \
                     the node lists {} under that id. Key ids are derived from the key, so one of \
                     the two is not what it claims. Nothing was changed; find out which with the \
                     node's operator (`rix keygen` printed the key id and key) and `rix trust \
                     revoke` the wrong one",
                    w.key_id,
                    k.2,
                    w.public_key.to_base64()
                )));
            }
        }
        if !windows.iter().any(|w| stored_key(&w.key_id).is_some()) {
            return Err(TrustError::Conflict(format!(
                "none of the keys node {node_id} lists ({}) is in the trust store: rotation extends \
                 trust from a key already trusted. Nothing was changed; if the node really has \
                 lost every key the store holds, compare the new key id with the node's operator \
                 and trust it with `rix trust add`",
                windows
                    .iter()
                    .map(|w| w.key_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }

        let parse = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        };
        let mut steps = Vec::new();
        let mut notes = Vec::new();
        let added_at = now();
        for w in &windows {
            let valid_from = rfc3339(w.from);
            let valid_until = w.until.map(rfc3339);
            match stored_key(&w.key_id) {
                None => {
                    diesel::insert_into(node_keys::table)
                        .values((
                            node_keys::node_id.eq(node_id),
                            node_keys::key_id.eq(&w.key_id),
                            node_keys::public_key.eq(w.public_key.to_base64()),
                            node_keys::valid_from.eq(&valid_from),
                            node_keys::valid_until.eq(&valid_until),
                            node_keys::added_at.eq(&added_at),
                        ))
                        .execute(conn)?;
                    steps.push(RotationStep::Added {
                        key_id: w.key_id.clone(),
                        valid_from,
                        valid_until,
                    });
                }
                Some(k) => {
                    if parse(&k.3) != Some(w.from) || parse(&k.4) != w.until {
                        diesel::update(node_keys::table.find((node_id, &w.key_id)))
                            .set((
                                node_keys::valid_from.eq(&valid_from),
                                node_keys::valid_until.eq(&valid_until),
                            ))
                            .execute(conn)?;
                        steps.push(RotationStep::Window {
                            key_id: w.key_id.clone(),
                            from_before: k.3.clone(),
                            valid_from,
                            until_before: k.4.clone(),
                            valid_until,
                        });
                    }
                    if let Some(at) = &k.5 {
                        notes.push(format!(
                            "{} is revoked (since {at}): every batch it signed stays refused",
                            w.key_id
                        ));
                    } else if let Some(since) = &k.6 {
                        notes.push(format!(
                            "{} is compromised since {since}: the batches it signed from then on stay refused",
                            w.key_id
                        ));
                    }
                }
            }
            if w.first_batch_seq.is_none() && windows.len() > 1 {
                notes.push(format!(
                    "{} has signed no batch yet (the node loaded it at {}): the key before it \
                     stays open until it does; run `rix trust rotate` again after the node's \
                     first batch under {} to close the old key at the exact switch time",
                    w.key_id,
                    rfc3339(w.from),
                    w.key_id
                ));
            }
        }
        for k in &stored {
            if !windows.iter().any(|w| w.key_id == k.1) {
                notes.push(format!(
                    "{} is in the trust store but the node does not list it: left as it is \
                     (`rix trust revoke` it if the node never signed with it)",
                    k.1
                ));
            }
        }
        Ok(RotationReport {
            node_id: node_id.to_owned(),
            steps,
            notes,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rix_schema::signing::SigningKey;

    const NODE: &str = "prov-530000";

    fn store() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("catalogue.db").to_str().unwrap(), 2).unwrap();
        (dir, db)
    }

    fn listed(key: &SigningKey, from: &str, until: Option<&str>, first: Option<u64>) -> ListedKey {
        let public = key.verifying_key();
        ListedKey {
            key_id: public.key_id(),
            algorithm: "Ed25519".into(),
            public_key: public.to_base64(),
            spki_pem: Some(String::from_utf8(public.to_spki_pem().unwrap()).unwrap()),
            valid_from: Some(from.into()),
            valid_until: until.map(str::to_owned),
            first_batch_seq: first,
        }
    }

    fn keys(list: Vec<ListedKey>) -> ListedKeys {
        ListedKeys {
            node_id: NODE.into(),
            keys: list,
        }
    }

    fn window(db: &Db, key_id: &str) -> (Option<String>, Option<String>) {
        let k = list(db).unwrap()[0]
            .keys
            .iter()
            .find(|k| k.key_id == key_id)
            .cloned()
            .unwrap();
        (k.valid_from, k.valid_until)
    }

    const T1: &str = "2026-11-01T08:00:00.123456789Z";
    const SWITCH: &str = "2026-12-01T10:30:00.5Z";

    #[test]
    fn rotate_trusts_the_new_key_and_closes_the_old_one_at_the_switch_once() {
        let (_dir, db) = store();
        let (a, b) = (
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        );
        add(&db, NODE, None, None, a.verifying_key(), None, None).unwrap();
        let answer = keys(vec![
            listed(&b, SWITCH, None, Some(7)),
            listed(&a, T1, Some(SWITCH), Some(1)),
        ]);

        let report = rotate(&db, NODE, &answer).unwrap();
        assert_eq!(
            report.steps,
            vec![
                RotationStep::Window {
                    key_id: a.key_id(),
                    from_before: None,
                    valid_from: T1.into(),
                    until_before: None,
                    valid_until: Some(SWITCH.into()),
                },
                RotationStep::Added {
                    key_id: b.key_id(),
                    valid_from: SWITCH.into(),
                    valid_until: None,
                },
            ]
        );
        assert_eq!(
            window(&db, &a.key_id()),
            (Some(T1.into()), Some(SWITCH.into()))
        );
        assert_eq!(window(&db, &b.key_id()), (Some(SWITCH.into()), None));

        // The gateway's judgement follows the windows exactly: the switch belongs to the new key.
        let trust = TrustStore::new(db.clone()).unwrap();
        let KeyLookup::Found(old) = trust.find(NODE, &a.key_id()).unwrap() else {
            panic!("the old key is kept")
        };
        assert_eq!(
            old.valid_until,
            Some(OffsetDateTime::parse(SWITCH, &Rfc3339).unwrap())
        );

        // Again: nothing changes.
        let again = rotate(&db, NODE, &answer).unwrap();
        assert!(again.steps.is_empty(), "{:?}", again.steps);
        assert_eq!(
            window(&db, &a.key_id()),
            (Some(T1.into()), Some(SWITCH.into()))
        );
    }

    #[test]
    fn a_key_not_used_yet_is_trusted_from_its_load_and_the_old_key_stays_open_until_it_signs() {
        let (_dir, db) = store();
        let (a, b) = (
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        );
        add(&db, NODE, None, None, a.verifying_key(), None, None).unwrap();
        let loaded = "2026-12-01T10:00:00Z";
        let report = rotate(
            &db,
            NODE,
            &keys(vec![
                listed(&a, T1, None, Some(1)),
                listed(&b, loaded, None, None),
            ]),
        )
        .unwrap();
        assert_eq!(window(&db, &a.key_id()), (Some(T1.into()), None));
        assert_eq!(window(&db, &b.key_id()), (Some(loaded.into()), None));
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("run `rix trust rotate` again")),
            "{:?}",
            report.notes
        );
        // Once it signed: the old key closes and the new one starts at its first batch.
        rotate(
            &db,
            NODE,
            &keys(vec![
                listed(&a, T1, Some(SWITCH), Some(1)),
                listed(&b, SWITCH, None, Some(4)),
            ]),
        )
        .unwrap();
        assert_eq!(
            window(&db, &a.key_id()),
            (Some(T1.into()), Some(SWITCH.into()))
        );
        assert_eq!(window(&db, &b.key_id()), (Some(SWITCH.into()), None));
    }

    fn refused(db: &Db, answer: &ListedKeys) -> String {
        let before = list(db).unwrap()[0].keys.len();
        let e = rotate(db, NODE, answer).unwrap_err();
        assert_eq!(list(db).unwrap()[0].keys.len(), before, "nothing added");
        e.to_string()
    }

    #[test]
    fn an_inconsistent_answer_is_refused_saying_why_and_changes_nothing() {
        let (_dir, db) = store();
        let (a, b, c) = (
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        );
        add(&db, NODE, None, None, a.verifying_key(), None, None).unwrap();

        let mut other = keys(vec![listed(&a, T1, None, Some(1))]);
        other.node_id = "most".into();
        assert!(refused(&db, &other).contains("answers as node most, not prov-530000"));

        let overlapping = keys(vec![
            listed(&a, T1, Some("2026-12-02T00:00:00Z"), Some(1)),
            listed(&b, SWITCH, None, Some(5)),
        ]);
        let msg = refused(&db, &overlapping);
        assert!(msg.contains("overlapping or gapped windows"), "{msg}");
        assert!(msg.contains("Nothing was changed"), "{msg}");

        let mut wrong_id = listed(&b, SWITCH, None, Some(5));
        wrong_id.key_id = c.key_id();
        let msg = refused(
            &db,
            &keys(vec![listed(&a, T1, Some(SWITCH), Some(1)), wrong_id]),
        );
        assert!(msg.contains("does not belong to the public key"), "{msg}");

        let mut wrong_pem = listed(&b, SWITCH, None, Some(5));
        wrong_pem.spki_pem =
            Some(String::from_utf8(c.verifying_key().to_spki_pem().unwrap()).unwrap());
        let msg = refused(
            &db,
            &keys(vec![listed(&a, T1, Some(SWITCH), Some(1)), wrong_pem]),
        );
        assert!(msg.contains("spki_pem is not the same key"), "{msg}");

        let two_unused = keys(vec![
            listed(&a, T1, None, Some(1)),
            listed(&b, SWITCH, None, None),
            listed(&c, SWITCH, None, None),
        ]);
        assert!(refused(&db, &two_unused).contains("have signed nothing yet"));

        let newest_ended = keys(vec![listed(&a, T1, Some(SWITCH), Some(1))]);
        assert!(refused(&db, &newest_ended).contains("newest signing key"));

        let backwards = keys(vec![listed(&a, SWITCH, Some(T1), Some(1))]);
        assert!(refused(&db, &backwards).contains("no later than it starts"));
    }

    #[test]
    fn a_key_id_held_with_another_public_key_or_no_trusted_key_at_all_is_refused() {
        let (_dir, db) = store();
        let (a, b, c) = (
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        );
        add(&db, NODE, None, None, a.verifying_key(), None, None).unwrap();
        // A row under b's id holding c's key: what a damaged or tampered store would have.
        db.write(|conn| {
            diesel::insert_into(node_keys::table)
                .values((
                    node_keys::node_id.eq(NODE),
                    node_keys::key_id.eq(b.key_id()),
                    node_keys::public_key.eq(c.verifying_key().to_base64()),
                    node_keys::added_at.eq(now()),
                ))
                .execute(conn)
                .map_err(TrustError::from)
        })
        .unwrap();
        let answer = keys(vec![
            listed(&a, T1, Some(SWITCH), Some(1)),
            listed(&b, SWITCH, None, Some(3)),
        ]);
        let e = rotate(&db, NODE, &answer).unwrap_err();
        assert!(matches!(e, TrustError::Conflict(_)), "{e}");
        assert!(e.to_string().contains("with the public key"), "{e}");
        assert_eq!(window(&db, &a.key_id()), (None, None), "nothing changed");

        // A node none of whose keys is trusted cannot hand itself a new one.
        let (_dir2, db2) = store();
        add(&db2, NODE, None, None, c.verifying_key(), None, None).unwrap();
        let e = rotate(&db2, NODE, &keys(vec![listed(&b, T1, None, Some(1))])).unwrap_err();
        assert!(
            e.to_string()
                .contains("rotation extends trust from a key already trusted"),
            "{e}"
        );
        // Nor can a node the store does not know.
        let e = rotate(
            &db2,
            "most",
            &ListedKeys {
                node_id: "most".into(),
                keys: vec![listed(&b, T1, None, Some(1))],
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("rix trust add"), "{e}");
    }

    #[test]
    fn a_compromised_key_is_found_with_its_time_and_a_plain_revocation_stays_total() {
        let (_dir, db) = store();
        let a = SigningKey::generate().unwrap();
        add(&db, NODE, None, None, a.verifying_key(), None, None).unwrap();
        let since = mark_compromised(&db, NODE, &a.key_id(), "2026-12-01T18:30:00+08:00").unwrap();
        assert_eq!(since, "2026-12-01T10:30:00Z", "stored in UTC");
        let trust = TrustStore::new(db.clone()).unwrap();
        let KeyLookup::Found(k) = trust.find(NODE, &a.key_id()).unwrap() else {
            panic!()
        };
        assert_eq!(
            k.compromised_since,
            Some(
                OffsetDateTime::parse(SWITCH, &Rfc3339).unwrap()
                    - time::Duration::milliseconds(500)
            )
        );
        assert_eq!(k.revoked_at, None);
        assert_eq!(
            list(&db).unwrap()[0].keys[0].compromised_since.as_deref(),
            Some("2026-12-01T10:30:00Z")
        );
        assert!(matches!(
            mark_compromised(&db, NODE, "ed25519:0000000000000000", SWITCH),
            Err(TrustError::NotFound(_))
        ));
        assert!(matches!(
            mark_compromised(&db, NODE, &a.key_id(), "yesterday"),
            Err(TrustError::Time { .. })
        ));
        revoke(&db, NODE, &a.key_id()).unwrap();
        let KeyLookup::Found(k) = trust.find(NODE, &a.key_id()).unwrap() else {
            panic!()
        };
        assert!(k.revoked_at.is_some());
    }
}
