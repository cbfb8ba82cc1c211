//! The node's key history: every key it ever signed with, each with the window its own batch
//! chain gives it, served at `GET /v1/keys` so that batches signed before a rotation stay
//! verifiable from the node, and so that a gateway can take the rotation over mechanically
//! (`rix trust rotate`).
//!
//! A key's window is read off the chain, never off a clock or an operator's note: it opens at
//! the `created_at` of the first batch the key signed and closes at the `created_at` of the
//! first batch the next key signed. Both are written by [`note_signing`], inside the very
//! transaction that seals that batch ([`crate::outbox::seal_next_batch`]), so a window exists
//! exactly when its batch does. A key the node has loaded but not signed with yet is listed
//! from the time it was first loaded, with no end.
//!
//! Keys take over in one direction only: once a newer key has signed, the older one is retired
//! for good, and the node refuses to start or seal with it. Two keys signing in turn would
//! make windows that overlap, and a gateway could no longer tell a batch from a stolen old key
//! from a genuine one.
//!
//! What it may not touch: key material. It records which key signed when and reads that history
//! back; loading the key is the server's, signing is the outbox's.

use diesel::prelude::*;
use rix_schema::signing::VerifyingKey;

use crate::db::schema::{batches, signing_keys};
use crate::db::{DbConn, StoreError};

/// One key of the history, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
pub struct KeyRecord {
    /// `ed25519:` + 16 hex digits.
    pub key_id: String,
    /// Raw public key, base64.
    pub public_key: String,
    /// When the node first started with the key.
    pub loaded_at: String,
    /// The first batch it signed (`None`: none yet).
    pub first_batch_seq: Option<i64>,
    /// The `created_at` of that batch.
    pub valid_from: Option<String>,
    /// The `created_at` of the first batch the next key signed (`None`: not retired).
    pub valid_until: Option<String>,
}

impl KeyRecord {
    /// Where the key's window starts as the node saw it: its first batch, or when it was
    /// loaded if it has signed none.
    pub fn window_start(&self) -> &str {
        self.valid_from.as_deref().unwrap_or(&self.loaded_at)
    }
}

/// Why a key may not sign.
#[derive(Debug, thiserror::Error)]
pub enum KeyHistoryError {
    /// A newer key has signed since: this one is retired.
    #[error(
        "signing key {key_id} was retired at {retired_at}, when {successor} signed its first batch; \
         a node never goes back to a retired key (gateways close its window at that time). Start \
         the node with its current key, or with a new one (`rix keygen`, then `rix trust rotate` \
         on the gateways)"
    )]
    Retired {
        /// The retired key.
        key_id: String,
        /// The switch time.
        retired_at: String,
        /// The key that took over (as far as the history knows it).
        successor: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for KeyHistoryError {
    fn from(e: diesel::result::Error) -> Self {
        KeyHistoryError::Store(StoreError::Query(e))
    }
}

impl crate::db::AsConflict for KeyHistoryError {
    fn is_conflict(&self) -> bool {
        matches!(self, KeyHistoryError::Store(e) if e.is_conflict())
    }
}

fn find(conn: &mut DbConn, key_id: &str) -> Result<Option<KeyRecord>, diesel::result::Error> {
    signing_keys::table
        .find(key_id)
        .select(KeyRecord::as_select())
        .first(conn)
        .optional()
}

fn retired(conn: &mut DbConn, record: &KeyRecord) -> Result<KeyHistoryError, KeyHistoryError> {
    let retired_at = record.valid_until.clone().unwrap_or_default();
    let successor: Option<String> = signing_keys::table
        .filter(signing_keys::valid_from.eq(&retired_at))
        .filter(signing_keys::key_id.ne(&record.key_id))
        .select(signing_keys::key_id)
        .first(conn)
        .optional()?;
    Ok(KeyHistoryError::Retired {
        key_id: record.key_id.clone(),
        retired_at,
        successor: successor.unwrap_or_else(|| "a newer key".to_owned()),
    })
}

/// Records, at start, that the node signs with `key` from now on (inside the caller's
/// transaction). A key seen for the first time is listed from `now`; a key that signed batches
/// before the history existed (a node upgraded in place) gets its window from the first of
/// them. Keys loaded earlier but never signed with are forgotten: nothing needs them to verify.
///
/// Refuses a retired key ([`KeyHistoryError::Retired`]).
pub fn note_loaded(
    conn: &mut DbConn,
    key: &VerifyingKey,
    now: &str,
) -> Result<(), KeyHistoryError> {
    let key_id = key.key_id();
    match find(conn, &key_id)? {
        Some(record) if record.valid_until.is_some() => return Err(retired(conn, &record)?),
        Some(_) => {}
        None => {
            let first: Option<(i64, String)> = batches::table
                .filter(batches::key_id.eq(&key_id))
                .order(batches::batch_seq.asc())
                .select((batches::batch_seq, batches::created_at))
                .first(conn)
                .optional()?;
            diesel::insert_into(signing_keys::table)
                .values((
                    signing_keys::key_id.eq(&key_id),
                    signing_keys::public_key.eq(key.to_base64()),
                    signing_keys::loaded_at.eq(now),
                    signing_keys::first_batch_seq.eq(first.as_ref().map(|f| f.0)),
                    signing_keys::valid_from.eq(first.as_ref().map(|f| &f.1)),
                ))
                .execute(conn)?;
        }
    }
    diesel::delete(
        signing_keys::table
            .filter(signing_keys::first_batch_seq.is_null())
            .filter(signing_keys::key_id.ne(&key_id)),
    )
    .execute(conn)?;
    Ok(())
}

/// Records that `key` signs batch `batch_seq`, created at `created_at`, inside the sealing
/// transaction. The key's first batch opens its window and closes the window of the key that
/// signed before it, at this very `created_at`: the switch time is the chain's.
///
/// Refuses a retired key ([`KeyHistoryError::Retired`]): another process that still holds it
/// (an old node process during a restart) must not extend the chain after the new key did.
pub fn note_signing(
    conn: &mut DbConn,
    key: &VerifyingKey,
    batch_seq: i64,
    created_at: &str,
) -> Result<(), KeyHistoryError> {
    let key_id = key.key_id();
    let record = match find(conn, &key_id)? {
        Some(r) => r,
        None => {
            note_loaded(conn, key, created_at)?;
            find(conn, &key_id)?.expect("just recorded")
        }
    };
    if record.valid_until.is_some() {
        return Err(retired(conn, &record)?);
    }
    if record.first_batch_seq.is_none() {
        // The switch: the key that signed until now is retired at this batch's created_at.
        diesel::update(
            signing_keys::table
                .filter(signing_keys::key_id.ne(&key_id))
                .filter(signing_keys::first_batch_seq.is_not_null())
                .filter(signing_keys::valid_until.is_null()),
        )
        .set(signing_keys::valid_until.eq(created_at))
        .execute(conn)?;
        diesel::update(signing_keys::table.find(&key_id))
            .set((
                signing_keys::first_batch_seq.eq(batch_seq),
                signing_keys::valid_from.eq(created_at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Every key of the history, oldest first (the order they took over); a key that has signed
/// nothing yet last.
pub fn history(conn: &mut DbConn) -> Result<Vec<KeyRecord>, StoreError> {
    let mut keys: Vec<KeyRecord> = signing_keys::table
        .select(KeyRecord::as_select())
        .load(conn)?;
    keys.sort_by(|a, b| {
        (a.first_batch_seq.is_none(), a.first_batch_seq, &a.loaded_at).cmp(&(
            b.first_batch_seq.is_none(),
            b.first_batch_seq,
            &b.loaded_at,
        ))
    });
    Ok(keys)
}
