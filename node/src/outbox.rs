//! Stage 3: the node's log — the transactional outbox, sealed into signed batches, served as
//! the signed feed.
//!
//! [`SEQ_COUNTER`] is the one counter that assigns seqs, and [`append`] the one place that writes
//! entries: inside the approving (or withdrawing) transaction that reserved their seqs, so a log
//! entry exists exactly when its cause committed, with the next gap-free seq. [`enqueue`] is the
//! two for one entry; approval reserves the seqs of a whole set together with its serials
//! ([`crate::review`]). [`seal_next_batch`] is the one place that signs: in one transaction it
//! takes the oldest unsealed entries (one kind at a time, since the routing key names the
//! kind), chains them to the last batch, signs, records the key's window ([`crate::keys`]),
//! and stores the batch bytes. Those stored bytes
//! are what the publisher sends and what the feed serves, byte for byte — so a batch sealed
//! before a crash and re-sent after it is the same batch, and the chain never forks.
//!
//! What it may not touch: transports, and the decision what may be logged. It knows no broker and
//! no HTTP (the publisher sends its batches, the API serves its pages), and it logs what it is
//! handed: whether a record may enter the log at all is decided before [`enqueue`] is called
//! ([`crate::review`], by `SecrecyLevel::may_leave_node`).

use diesel::prelude::*;
use rix_runtime::clock::now;
use rix_schema::RecordKind;
use rix_schema::batch::{Entry, GENESIS_PREV_HASH, Op, SignedBatch};
use rix_schema::canonical::parse_sha256_hex;
use rix_schema::signing::SigningKey;

use crate::db::schema::{batches, outbox};
use crate::db::{Db, DbConn, StoreError, take_counters};

/// The counter behind the log's seqs. A caller that reserves seqs together with other
/// counters (approval: [`crate::review`]) takes it with `take_counters` (`rix_runtime::db`)
/// and hands the seqs to [`append`].
pub const SEQ_COUNTER: &str = "outbox_seq";

/// Appends an entry to the log inside the caller's transaction; returns its seq.
pub fn enqueue(
    conn: &mut DbConn,
    kind: RecordKind,
    op: Op,
    id: &str,
    version: i64,
    record: Option<&str>,
) -> Result<i64, diesel::result::Error> {
    let seq = take_counters(conn, &[(SEQ_COUNTER, 1)])?[0];
    let entry = Appended {
        seq,
        op,
        id,
        version,
        record,
    };
    append(conn, kind, &[entry], &now())?;
    Ok(seq)
}

/// A log entry whose seq the caller reserved from [`SEQ_COUNTER`] in its transaction.
pub struct Appended<'a> {
    /// Its seq.
    pub seq: i64,
    /// Upsert or withdraw.
    pub op: Op,
    /// The record's id.
    pub id: &'a str,
    /// The record's version.
    pub version: i64,
    /// The record, for an upsert.
    pub record: Option<&'a str>,
}

/// Rows per multi-row insert of [`append`] (7 values a row, within both backends' limits).
const ENTRIES_PER_INSERT: usize = 500;

/// Writes log entries whose seqs were reserved in the caller's transaction, in multi-row
/// inserts: the seqs must be the ones reserved, all of them, so that the log stays gap-free.
pub fn append(
    conn: &mut DbConn,
    kind: RecordKind,
    entries: &[Appended<'_>],
    at: &str,
) -> Result<(), diesel::result::Error> {
    for chunk in entries.chunks(ENTRIES_PER_INSERT) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|e| {
                (
                    outbox::seq.eq(e.seq),
                    outbox::kind.eq(kind.as_str()),
                    outbox::op.eq(e.op.as_str()),
                    outbox::id.eq(e.id),
                    outbox::version.eq(e.version),
                    outbox::record.eq(e.record),
                    outbox::created_at.eq(at),
                )
            })
            .collect();
        rix_runtime::batch_insert!(conn, diesel::insert_into(outbox::table).values(rows))?;
    }
    Ok(())
}

/// A stored batch, as the publisher and the feed use it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = batches)]
pub struct StoredBatch {
    /// Position in the node's chain of batches.
    pub batch_seq: i64,
    /// First entry seq.
    pub first_seq: i64,
    /// Last entry seq.
    pub last_seq: i64,
    /// Kind of every entry (the routing key's first part).
    pub kind: String,
    /// Hex batch hash.
    pub hash: String,
    /// The signed batch, JSON, exactly as published.
    pub bytes: Vec<u8>,
    /// When the broker confirmed it (or, without a broker, when it was sealed).
    pub published_at: Option<String>,
}

/// Why sealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Storage failed; nothing was sealed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored log is inconsistent (an entry that cannot be signed).
    #[error("the outbox cannot be sealed: {0}")]
    Sign(#[from] rix_schema::batch::SignError),
    /// The key may not sign (retired: a newer key has signed since).
    #[error(transparent)]
    Key(crate::keys::KeyHistoryError),
    /// A stored record is not JSON.
    #[error("outbox entry {seq} holds a record that is not JSON: {detail}")]
    Corrupt {
        /// The entry.
        seq: i64,
        /// The parse error.
        detail: String,
    },
}

impl From<crate::keys::KeyHistoryError> for SealError {
    fn from(e: crate::keys::KeyHistoryError) -> Self {
        match e {
            crate::keys::KeyHistoryError::Store(e) => SealError::Store(e),
            retired => SealError::Key(retired),
        }
    }
}

impl From<diesel::result::Error> for SealError {
    fn from(e: diesel::result::Error) -> Self {
        SealError::Store(StoreError::Query(e))
    }
}

impl crate::db::AsConflict for SealError {
    fn is_conflict(&self) -> bool {
        matches!(self, SealError::Store(e) if e.is_conflict())
    }
}

type OutboxRow = (i64, String, String, String, i64, Option<String>, String);

/// What [`seal_next_batch`] did.
#[derive(Debug)]
pub enum Sealing {
    /// Sealed this batch.
    Sealed(StoredBatch),
    /// Entries wait, but the oldest is younger than the linger: try again after this long.
    Lingering(std::time::Duration),
    /// Nothing waits.
    Empty,
}

/// Seals the oldest unsealed entries (at most `max_entries`, all of one kind) into the next
/// signed batch — unless fewer than `max_entries` wait and the oldest is younger than
/// `linger`, so that entries arriving together share one signature. With `force` the linger is
/// ignored (shutdown). With `mark_published` the batch counts as published when sealed (no
/// broker: the feed is the transport).
pub fn seal_next_batch(
    db: &Db,
    node_id: &str,
    key: &SigningKey,
    max_entries: usize,
    linger: std::time::Duration,
    force: bool,
    mark_published: bool,
) -> Result<Sealing, SealError> {
    db.write(|conn| {
        let rows: Vec<OutboxRow> = outbox::table
            .filter(outbox::batch_seq.is_null())
            .order(outbox::seq.asc())
            .limit(max_entries as i64)
            .select((
                outbox::seq,
                outbox::kind,
                outbox::op,
                outbox::id,
                outbox::version,
                outbox::record,
                outbox::created_at,
            ))
            .load(conn)?;
        let Some(first) = rows.first() else {
            return Ok(Sealing::Empty);
        };
        if !force && rows.len() < max_entries {
            let waited = time::OffsetDateTime::parse(
                &first.6,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|t| time::OffsetDateTime::now_utc() - t)
            .unwrap_or(time::Duration::ZERO);
            let linger_t = time::Duration::try_from(linger).unwrap_or(time::Duration::MAX);
            if waited < linger_t {
                let left = (linger_t - waited).try_into().unwrap_or(linger);
                return Ok(Sealing::Lingering(left));
            }
        }
        let kind_text = first.1.clone();
        let kind: RecordKind = kind_text.parse().map_err(|_| SealError::Corrupt {
            seq: first.0,
            detail: format!("unknown kind {kind_text:?}"),
        })?;
        let mut entries = Vec::with_capacity(rows.len());
        for (seq, k, op, id, version, record, _) in rows {
            if k != kind_text {
                break;
            }
            let entry = if op == Op::Withdraw.as_str() {
                Entry::withdraw(seq as u64, kind, id, version as u64)
            } else {
                let text = record.unwrap_or_default();
                let value = serde_json::from_str(&text).map_err(|e| SealError::Corrupt {
                    seq,
                    detail: e.to_string(),
                })?;
                Entry::upsert(seq as u64, kind, id, version as u64, value)
            };
            entries.push(entry);
        }

        let last: Option<(i64, String, String)> = batches::table
            .order(batches::batch_seq.desc())
            .select((batches::batch_seq, batches::hash, batches::created_at))
            .first(conn)
            .optional()?;
        let (batch_seq, prev, created_at) = match &last {
            Some((seq, hash, prev_created_at)) => (
                seq + 1,
                parse_sha256_hex(hash).ok_or_else(|| SealError::Corrupt {
                    seq: *seq,
                    detail: "stored batch hash is not hex SHA-256".into(),
                })?,
                created_after(prev_created_at),
            ),
            None => (1, GENESIS_PREV_HASH, time::OffsetDateTime::now_utc()),
        };
        let batch = SignedBatch::sign(node_id, batch_seq as u64, prev, entries, created_at, key)?;
        // The key's window is the chain's: its first batch opens it (and closes the previous
        // key's), in this transaction. A retired key signs nothing.
        crate::keys::note_signing(
            conn,
            key.verifying_key(),
            batch_seq,
            &batch.header.created_at,
        )?;
        let stored = StoredBatch {
            batch_seq,
            first_seq: batch.header.first_seq as i64,
            last_seq: batch.header.last_seq as i64,
            kind: kind_text.clone(),
            hash: hex::encode(batch.hash()),
            bytes: batch.to_bytes(),
            published_at: mark_published.then(now),
        };
        diesel::insert_into(batches::table)
            .values((
                batches::batch_seq.eq(stored.batch_seq),
                batches::first_seq.eq(stored.first_seq),
                batches::last_seq.eq(stored.last_seq),
                batches::kind.eq(&stored.kind),
                batches::hash.eq(&stored.hash),
                batches::bytes.eq(&stored.bytes),
                batches::created_at.eq(&batch.header.created_at),
                batches::published_at.eq(&stored.published_at),
                batches::key_id.eq(&batch.header.key_id),
            ))
            .execute(conn)?;
        diesel::update(
            outbox::table
                .filter(outbox::seq.ge(stored.first_seq))
                .filter(outbox::seq.le(stored.last_seq)),
        )
        .set(outbox::batch_seq.eq(batch_seq))
        .execute(conn)?;
        Ok(Sealing::Sealed(stored))
    })
}

/// The time to date a batch that follows one dated `previous`: now, unless the clock has gone
/// back (NTP stepping it, a restored VM), then just after `previous`. A gateway refuses a batch
/// dated before the one it follows (it would let a retired key sign into its old window), and a
/// key's window ends at its successor's first batch, so the chain's times strictly increase.
fn created_after(previous: &str) -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    match time::OffsetDateTime::parse(previous, &time::format_description::well_known::Rfc3339) {
        Ok(p) if p >= now => p + time::Duration::nanoseconds(1),
        _ => now,
    }
}

/// Sealed batches the broker has not confirmed yet, oldest first.
pub fn unpublished(db: &Db, limit: i64) -> Result<Vec<StoredBatch>, StoreError> {
    let mut conn = db.conn()?;
    Ok(batches::table
        .filter(batches::published_at.is_null())
        .order(batches::batch_seq.asc())
        .limit(limit)
        .select(StoredBatch::as_select())
        .load(&mut *conn)?)
}

/// Records the broker's confirm of these batches.
pub fn mark_published(db: &Db, batch_seqs: &[i64]) -> Result<(), StoreError> {
    if batch_seqs.is_empty() {
        return Ok(());
    }
    db.write(|conn| {
        diesel::update(batches::table.filter(batches::batch_seq.eq_any(batch_seqs)))
            .set(batches::published_at.eq(now()))
            .execute(conn)
            .map_err(StoreError::from)
    })?;
    Ok(())
}

/// The batches holding entries after `after`, whole, oldest first, up to about `limit`
/// entries (at least one batch, so a page always makes progress).
pub fn feed_page(db: &Db, after: i64, limit: i64) -> Result<Vec<StoredBatch>, StoreError> {
    let mut conn = db.conn()?;
    let mut out: Vec<StoredBatch> = Vec::new();
    let mut entries = 0i64;
    let mut cursor = after;
    while entries < limit {
        let page: Vec<StoredBatch> = batches::table
            .filter(batches::last_seq.gt(cursor))
            .order(batches::last_seq.asc())
            .limit(64)
            .select(StoredBatch::as_select())
            .load(&mut *conn)?;
        if page.is_empty() {
            break;
        }
        for b in page {
            let n = b.last_seq - b.first_seq.max(cursor + 1) + 1;
            if !out.is_empty() && entries + n > limit {
                return Ok(out);
            }
            entries += n;
            cursor = b.last_seq;
            out.push(b);
        }
    }
    Ok(out)
}

/// What the log holds: last seq written, last seq sealed, last batch, unpublished entries.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, utoipa::ToSchema)]
pub struct LogState {
    /// Highest seq in the outbox.
    pub last_seq: i64,
    /// Highest seq inside a sealed batch.
    pub sealed_seq: i64,
    /// Highest batch_seq.
    pub last_batch_seq: i64,
    /// Entries not yet confirmed by the broker (unsealed or sealed but unconfirmed).
    pub outbox_depth: i64,
}

/// Reads the log's state (for `/healthz`, `/metrics` and the feed head).
pub fn log_state(conn: &mut DbConn) -> Result<LogState, StoreError> {
    let last_seq = crate::db::current_counter(conn, "outbox_seq")?;
    let last_batch: Option<(i64, i64)> = batches::table
        .order(batches::batch_seq.desc())
        .select((batches::batch_seq, batches::last_seq))
        .first(conn)
        .optional()?;
    let (last_batch_seq, sealed_seq) = last_batch.unwrap_or((0, 0));
    let first_unconfirmed: Option<i64> = batches::table
        .filter(batches::published_at.is_null())
        .order(batches::batch_seq.asc())
        .select(batches::first_seq)
        .first(conn)
        .optional()?;
    let confirmed_up_to = first_unconfirmed.map(|f| f - 1).unwrap_or(sealed_seq);
    Ok(LogState {
        last_seq,
        sealed_seq,
        last_batch_seq,
        outbox_depth: last_seq - confirmed_up_to,
    })
}

/// Every seq assigned by [`enqueue`] is one of these; used by tests to prove gap-freedom.
pub fn outbox_seqs(conn: &mut DbConn) -> Result<Vec<i64>, StoreError> {
    Ok(outbox::table
        .order(outbox::seq.asc())
        .select(outbox::seq)
        .load(conn)?)
}
