//! Sync: keeping the index in step with the catalogue's change stream. The only code that
//! writes documents to the index, and commits them.
//!
//! [`SearchIndex::sync`] reads [`catalogue::changes_after`] from the cursor it stored in its
//! last commit, re-reads every touched unified entry (the one a change names and the one it
//! moved the record out of) with [`catalogue::unified_many_reading`] and replaces (or deletes)
//! its document, committing every [`COMMIT_CHANGES`] changes and when caught up. The cursor is the
//! tantivy commit payload, so it is durable exactly when the documents are: a gateway killed
//! mid-sync resumes from the last commit, and re-applying changes is harmless (each document is
//! deleted and re-added whole). [`SearchIndex::rebuild`] (`rix gateway reindex`) starts again
//! from change 0.
//!
//! Before reading a change, a sync checks that the index still reflects this catalogue
//! ([`super::lineage`]), and rebuilds it when it does not. A sync that fails rolls back what it
//! had not committed, so that nothing rides along with a later commit and its cursor.
//!
//! What it may not touch: what a document holds ([`super::document`] makes them from an
//! entry); the catalogue other than by reading it; the writer other than under its lock
//! ([`SearchIndex::writer`]), so that syncs and rebuilds take turns.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering as AtomicOrdering;

use serde::Serialize;
use tantivy::Term;

use super::lineage::{self, Lineage};
use super::{FORMAT, Payload, SearchError, SearchIndex, WriterState, committed_payload};
use crate::catalogue::{self, ChangeRow};
use crate::db::Db;

/// Changes read per page of [`SearchIndex::sync`].
pub const SYNC_PAGE: i64 = 10_000;

/// Changes indexed between two commits while catching up. Each commit closes the segments
/// in progress; committing every 10,000 changes made a 1,000,000-record rebuild write ~200
/// small segments and spend a fifth of its time merging them.
pub const COMMIT_CHANGES: u64 = 200_000;

/// Entries read from the catalogue per round of statements while syncing.
const SYNC_READ: usize = 400;

/// What one [`SearchIndex::sync`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Changes read from the catalogue's change stream.
    pub changes: u64,
    /// Documents (re)written.
    pub indexed: u64,
    /// Entries removed (every source withdrawn, or nothing visible left).
    pub removed: u64,
    /// Commits made (every [`COMMIT_CHANGES`] changes, and at the end).
    pub commits: u64,
    /// The change id the index has now seen everything up to.
    pub cursor: i64,
}

impl SearchIndex {
    /// Brings the index up to date with the catalogue's change stream, reading pages of
    /// [`SYNC_PAGE`] changes and committing every [`COMMIT_CHANGES`] changes and at the end,
    /// each commit recording its cursor and lineage. On failure what was not committed is
    /// rolled back; the next call starts again from the last commit.
    ///
    /// First checks that the index still reflects this catalogue (see the `lineage` module):
    /// when it does not, it is emptied and rebuilt from change 0, loudly.
    pub fn sync(&self, db: &Db) -> Result<SyncReport, SearchError> {
        let mut state = self.writer();
        let result = self.sync_checked(&mut state, db);
        match &result {
            Ok(_) => self.monitor.sync_succeeded(),
            Err(e) => self.monitor.sync_failed(&e.to_string()),
        }
        result
    }

    fn sync_checked(&self, state: &mut WriterState, db: &Db) -> Result<SyncReport, SearchError> {
        let check = lineage::check(&mut *db.conn()?, &state.lineage, state.cursor)?;
        let standing = match check {
            Ok(standing) => standing,
            Err(divergence) => {
                tracing::warn!(
                    reason = divergence.reason(),
                    "search index does not reflect the catalogue: {divergence}; emptying it and \
                     rebuilding it from the catalogue's change stream"
                );
                self.monitor
                    .rebuild_started(divergence.reason(), divergence.to_string());
                // Its documents are wrong, not merely old: they go before the rebuild starts.
                state.writer.delete_all_documents()?;
                state.catalogue = Some(catalogue::catalogue_id(&mut *db.conn()?)?);
                self.commit(state, db, 0)?;
                let report = self.sync_locked(state, db, true)?;
                tracing::warn!(
                    changes = report.changes,
                    documents = self.num_docs(),
                    "search index rebuilt from the catalogue"
                );
                return Ok(report);
            }
        };
        self.monitor.observe(&standing, state.cursor);
        state.catalogue = Some(standing.catalogue);
        self.sync_locked(state, db, false)
    }

    /// Drops every document and indexes the whole catalogue again from change 0 (`rix gateway
    /// reindex`). Searches see the old documents until the first commit, then the new ones
    /// commit by commit; on failure the old index stays as it was.
    pub fn rebuild(&self, db: &Db) -> Result<SyncReport, SearchError> {
        let mut state = self.writer();
        self.monitor
            .rebuild_started("requested", "rebuild requested".to_owned());
        state.catalogue = Some(catalogue::catalogue_id(&mut *db.conn()?)?);
        state.writer.delete_all_documents()?;
        state.cursor = 0;
        let report = self.sync_locked(&mut state, db, true);
        match &report {
            Ok(_) => self.monitor.sync_succeeded(),
            Err(e) => self.monitor.sync_failed(&e.to_string()),
        }
        report
    }

    fn sync_locked(
        &self,
        state: &mut WriterState,
        db: &Db,
        force_commit: bool,
    ) -> Result<SyncReport, SearchError> {
        let result = self.sync_pages(state, db, force_commit);
        if result.is_err() {
            // Nothing uncommitted may ride along with a later commit and its cursor.
            let _ = state.writer.rollback();
            (state.cursor, state.lineage) = committed_payload(&self.index);
            self.committed.store(state.cursor, AtomicOrdering::Release);
        }
        result
    }

    fn sync_pages(
        &self,
        state: &mut WriterState,
        db: &Db,
        mut force_commit: bool,
    ) -> Result<SyncReport, SearchError> {
        let mut report = SyncReport {
            cursor: state.cursor,
            ..SyncReport::default()
        };
        // Read as a reader of the index view would be: no disclosure is read, since none
        // survives the cut ([`catalogue::Reading::for_reader`]).
        let reading = catalogue::Reading::for_reader(super::document::INDEX_VIEW);
        let mut read = state.cursor;
        let mut uncommitted = 0u64;
        loop {
            let mut conn = db.conn()?;
            let rows = catalogue::changes_after(&mut conn, read, SYNC_PAGE)?;
            let Some(last) = rows.last().map(|r| r.change_id) else {
                if force_commit || uncommitted > 0 {
                    self.commit(state, db, read)?;
                    report.commits += 1;
                }
                break;
            };
            // Every entry a change names: the one the record is in, and the one it left.
            let uids: BTreeSet<&str> = rows.iter().flat_map(ChangeRow::entries).collect();
            let uids: Vec<&str> = uids.into_iter().collect();
            for chunk in uids.chunks(SYNC_READ) {
                let mut entries = catalogue::unified_many_reading(&mut conn, chunk, reading)?;
                for uid in chunk {
                    // Deletes reach every document added before them, committed or not.
                    state
                        .writer
                        .delete_term(Term::from_field_text(self.fields.uid, uid));
                    let docs = match entries.remove(*uid) {
                        Some(u) => self.documents(u)?,
                        None => Vec::new(),
                    };
                    if docs.is_empty() {
                        report.removed += 1;
                    } else {
                        report.indexed += 1;
                    }
                    for doc in docs {
                        state.writer.add_document(doc)?;
                    }
                }
            }
            drop(conn);
            read = last;
            uncommitted += rows.len() as u64;
            report.changes += rows.len() as u64;
            let caught_up = (rows.len() as i64) < SYNC_PAGE;
            if caught_up || uncommitted >= COMMIT_CHANGES {
                self.commit(state, db, last)?;
                force_commit = false;
                uncommitted = 0;
                report.commits += 1;
            }
            if caught_up {
                break;
            }
        }
        report.cursor = state.cursor;
        Ok(report)
    }

    /// Commits what was written, recording `cursor`, the catalogue it was read from and the
    /// fingerprint of the change at `cursor`, so that the next sync can tell whether the
    /// catalogue still holds what the index reflects.
    fn commit(&self, state: &mut WriterState, db: &Db, cursor: i64) -> Result<(), SearchError> {
        let mut conn = db.conn()?;
        let lineage = Lineage {
            catalogue: state.catalogue.clone(),
            fingerprint: match cursor {
                0 => None,
                c => catalogue::change_fingerprint(&mut conn, c)?,
            },
        };
        let (head, next_at) = catalogue::change_head(&mut conn, cursor)?;
        drop(conn);
        let payload = serde_json::to_string(&Payload {
            format: FORMAT,
            cursor,
            lineage: lineage.clone(),
        })
        .expect("a payload is JSON");
        let mut prepared = state.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        state.cursor = cursor;
        state.lineage = lineage;
        // Searchers first, then the position: whoever reads the position and then searches
        // gets results at least that fresh (`/v1/stats` dates its counts by it).
        self.reader.reload()?;
        self.committed.store(cursor, AtomicOrdering::Release);
        self.monitor
            .committed(cursor, head, next_at.as_deref(), self.num_docs());
        Ok(())
    }
}
