//! Copying a SQLite file's write-ahead log back into the database, on a thread of its own.
//!
//! **Why not let SQLite do it.** By default the connection whose commit takes the WAL past
//! 1,000 pages copies the log into the database and syncs it, inside that commit. For a
//! service with one busy writer (the gateway applying batches, the node approving) that is the
//! writer itself: measured on the gateway's ingest, a 100,000-record run spent about a quarter
//! of its commit thread's wall time in checkpoint writes and `fsync`, during which no batch
//! was applied. In WAL mode a checkpoint needs no writer lock, so it can run beside the
//! writer: this thread checkpoints (`PASSIVE`: it never waits for anyone) every
//! [`INTERVAL`], and the connections' own automatic checkpoint is raised to
//! [`BACKSTOP_PAGES`] so that it fires only if this thread has fallen far behind.
//!
//! **Why the log still gets reset.** A passive checkpoint copies frames but cannot make the
//! next writer start the log from the beginning while a reader still reads from it; under a
//! steady stream of reads and writes the file would only grow. Once the log is larger than
//! [`RESTART_PAGES`], the thread asks for a `RESTART` checkpoint, which waits (within the busy
//! timeout) for the readers to move on — by then a passive pass has copied nearly everything,
//! so the writer is held up only briefly.
//!
//! Durability is unchanged: a checkpoint only moves committed pages from one file to the
//! other, and a crash at any point leaves the WAL to be replayed at the next open.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// How often the thread checkpoints.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The connections' own automatic checkpoint threshold, in pages: far above what the thread
/// lets the log reach, so that it fires only when the thread is not keeping up.
pub const BACKSTOP_PAGES: i64 = 16_000;

/// The log size, in pages, past which the thread waits for readers to let the log restart.
pub const RESTART_PAGES: i64 = 4_000;

/// The settings every pooled connection of a file with a checkpointer gets.
pub const CONNECTION_PRAGMA: &str = "PRAGMA wal_autocheckpoint = 16000;";

/// The running thread; stops (and is joined) when dropped, i.e. when the last clone of the
/// database handle goes.
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection of its own to the SQLite file at `path` and starts checkpointing it.
    /// `None` for an in-memory database, which has no log.
    pub fn start(path: &str) -> Result<Option<Checkpointer>, diesel::ConnectionError> {
        if path == ":memory:" || path.contains("mode=memory") {
            return Ok(None);
        }
        let mut conn = diesel::SqliteConnection::establish(path)?;
        conn.batch_execute("PRAGMA busy_timeout = 10000;")
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, &signal))
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
        Ok(Some(Checkpointer {
            stop,
            thread: Some(thread),
        }))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The row `PRAGMA wal_checkpoint` answers with.
#[derive(diesel::QueryableByName, Debug)]
struct Pass {
    /// 1 when the checkpoint could not take a lock it needed.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
    /// Pages in the log.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
}

fn checkpoint(conn: &mut diesel::SqliteConnection, mode: &str) -> Option<Pass> {
    match diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})")).load::<Pass>(conn) {
        Ok(mut rows) => rows.pop(),
        Err(e) => {
            tracing::warn!(error = %e, mode, "SQLite checkpoint failed; retrying later");
            None
        }
    }
}

fn run(mut conn: diesel::SqliteConnection, stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    loop {
        {
            let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, _) = wake
                .wait_timeout_while(guard, INTERVAL, |s| !*s)
                .unwrap_or_else(|p| p.into_inner());
            if *guard {
                return;
            }
        }
        if let Some(pass) = checkpoint(&mut conn, "PASSIVE")
            && pass.busy == 0
            && i64::from(pass.log) > RESTART_PAGES
        {
            let after = checkpoint(&mut conn, "RESTART");
            tracing::debug!(before = ?pass, ?after, "SQLite log restarted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    #[test]
    fn the_log_is_copied_back_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let path = path.to_str().unwrap();
        let mut writer = diesel::SqliteConnection::establish(path).unwrap();
        // The writer's own checkpoint fires only past 16,000 pages of 4 KiB (64 MiB).
        writer
            .batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                 PRAGMA wal_autocheckpoint = 16000; CREATE TABLE t (v BLOB);",
            )
            .unwrap();
        let checkpointer = Checkpointer::start(path)
            .unwrap()
            .expect("a file has a log");
        // About 24 MiB in 60 commits.
        for _ in 0..60 {
            writer
                .batch_execute(
                    "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                     WHERE i < 100) INSERT INTO t SELECT randomblob(4000) FROM n; COMMIT;",
                )
                .unwrap();
        }
        // Only the thread can have moved the pages into the database file.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(path).unwrap().len() < 20 << 20 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file never received the log's pages"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(checkpointer);
        let rows: Vec<Count> = diesel::sql_query("SELECT count(*) AS n FROM t")
            .load(&mut writer)
            .unwrap();
        assert_eq!(rows[0].n, 6_000);
    }

    #[test]
    fn an_in_memory_database_has_no_checkpointer() {
        assert!(Checkpointer::start(":memory:").unwrap().is_none());
    }
}
