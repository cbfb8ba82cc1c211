//! One diesel codebase over SQLite (the embedded default, a file in the data dir) and
//! PostgreSQL (production, when the URL says `postgres://`), for the node and the gateway alike.
//!
//! Business code takes `&mut DbConn` and does not care which backend it is. The places where
//! the backends differ live here:
//! - **How a connection is tuned.** SQLite's journal mode and page size belong to the file, so
//!   they are set once, on one connection, before the pool opens its connections in parallel:
//!   switching to WAL takes an exclusive lock that SQLite may refuse at once, without waiting,
//!   to a connection racing others (every first start logged `database is locked`). The rest
//!   (busy timeout, synchronous, foreign keys, cache) is set on every connection.
//! - **Who copies SQLite's log back.** Not the writer: a thread of the pool's own
//!   ([`checkpoint`]), so that no commit pays for the checkpoint that its size happened to
//!   trigger.
//! - **How write transactions are serialised.** SQLite has one writer at a time; rather than
//!   let concurrent writers race for the lock and fail with `SQLITE_BUSY` on upgrade,
//!   [`Db::write`] takes a process-wide mutex first, and begins `IMMEDIATE` so that the
//!   checkpoint thread's lock is waited out rather than failed on. PostgreSQL writers run concurrently and
//!   meet only on counter rows (created outside long transactions, [`Db::ensure_counters`]),
//!   with a retry on unique, serialisation or deadlock conflicts.
//!
//! What stays with each service: its tables (`diesel::table!`), its migrations, its counters'
//! names and its tuning ([`Tuning`]). Both services keep a `counters (name, value)` table, which
//! [`next_counter`] and its siblings use.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

pub mod checkpoint;

/// A connection of either backend, chosen from the URL at start.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// A PostgreSQL connection (`postgres://` or `postgresql://` URLs).
    Postgresql(diesel::PgConnection),
    /// A SQLite connection (a path or `sqlite://` URL).
    Sqlite(diesel::SqliteConnection),
}

/// The counters table both services keep.
pub mod schema {
    diesel::table! {
        /// Gap-free counters (seqs, serials, change ids).
        counters (name) {
            /// The counter's name.
            name -> Text,
            /// Its last value taken (0: none yet).
            value -> BigInt,
        }
    }
}

/// Which backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `postgres://` and `postgresql://` select PostgreSQL; anything else is a SQLite path.
    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// A storage failure, said in terms an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not open or pool connections.
    #[error("cannot connect to the {what} {url}: {detail}")]
    Connect {
        /// Which database (`node database`, `catalogue database`).
        what: &'static str,
        /// The URL with any password removed.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// Migrations failed.
    #[error("cannot migrate the {what}: {detail}")]
    Migrate {
        /// Which database.
        what: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] DieselError),
    /// A storage task on the blocking pool did not finish (shutdown, or a panic).
    #[error("storage task did not finish: {0}")]
    Task(String),
    /// No pooled connection became free.
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// The database holds something the service's own code never writes (damage or a hand
    /// edit).
    #[error("the database is damaged: {0}")]
    Corrupt(String),
}

/// What a service asks of its database, beyond the tables of its migrations.
pub struct Tuning {
    /// Which database this is, for messages (`node database`).
    pub what: &'static str,
    /// The service's SQLite migrations (a function: `EmbeddedMigrations` is a constant that
    /// cannot be copied out of a shared value).
    pub sqlite_migrations: fn() -> EmbeddedMigrations,
    /// The service's PostgreSQL migrations.
    pub postgres_migrations: fn() -> EmbeddedMigrations,
    /// SQLite settings of the file, run once before the pool opens (journal mode, page size).
    pub sqlite_file: &'static str,
    /// SQLite settings of every connection (busy timeout first).
    pub sqlite_connection: &'static str,
    /// PostgreSQL settings of every session (`None`: none).
    pub postgres_session: Option<&'static str>,
    /// Counters whose rows must exist before any writer takes them.
    pub counters: &'static [&'static str],
}

#[derive(Debug)]
struct Tune {
    sqlite: &'static str,
    postgres: Option<&'static str>,
}

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for Tune {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        match conn {
            DbConn::Sqlite(c) => c
                .batch_execute(self.sqlite)
                .and_then(|()| c.batch_execute(checkpoint::CONNECTION_PRAGMA)),
            DbConn::Postgresql(c) => match self.postgres {
                Some(session) => c.batch_execute(session),
                None => Ok(()),
            },
        }
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// A database: a connection pool plus the write discipline of its backend. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager<DbConn>>,
    backend: Backend,
    sqlite_writer: Arc<Mutex<()>>,
    known_counters: Arc<Mutex<HashSet<String>>>,
    /// Held only to be dropped with the last clone, which stops the thread.
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

impl Db {
    /// Opens (creating a SQLite file if needed), tunes and migrates the database at `url`, with
    /// at most `max_connections` pooled connections (at least 2), and creates `tuning.counters`.
    pub fn open(url: &str, max_connections: u32, tuning: &Tuning) -> Result<Db, StoreError> {
        let backend = Backend::of_url(url);
        let connect_url = match backend {
            Backend::Sqlite => url.strip_prefix("sqlite://").unwrap_or(url).to_owned(),
            Backend::Postgres => url.to_owned(),
        };
        let connect_error = |detail: String| StoreError::Connect {
            what: tuning.what,
            url: redact_url(url),
            detail,
        };
        if backend == Backend::Sqlite {
            diesel::SqliteConnection::establish(&connect_url)
                .and_then(|mut c| {
                    c.batch_execute(tuning.sqlite_file)
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
                })
                .map_err(|e| connect_error(e.to_string()))?;
        }
        let checkpointer = match backend {
            Backend::Sqlite => checkpoint::Checkpointer::start(&connect_url)
                .map_err(|e| connect_error(e.to_string()))?
                .map(Arc::new),
            Backend::Postgres => None,
        };
        let manager = ConnectionManager::<DbConn>::new(connect_url);
        let pool = Pool::builder()
            .max_size(max_connections.max(2))
            .connection_timeout(Duration::from_secs(30))
            .connection_customizer(Box::new(Tune {
                sqlite: tuning.sqlite_connection,
                postgres: tuning.postgres_session,
            }))
            .build(manager)
            .map_err(|e| connect_error(e.to_string()))?;
        let db = Db {
            pool,
            backend,
            sqlite_writer: Arc::new(Mutex::new(())),
            known_counters: Arc::default(),
            _checkpointer: checkpointer,
        };
        db.migrate(tuning)?;
        db.ensure_counters(tuning.counters)?;
        Ok(db)
    }

    fn migrate(&self, tuning: &Tuning) -> Result<(), StoreError> {
        let mut conn = self.pool.get()?;
        let result = match &mut *conn {
            DbConn::Sqlite(c) => c
                .run_pending_migrations((tuning.sqlite_migrations)())
                .map(|_| ()),
            DbConn::Postgresql(c) => c
                .run_pending_migrations((tuning.postgres_migrations)())
                .map(|_| ()),
        };
        result.map_err(|e| StoreError::Migrate {
            what: tuning.what,
            detail: e.to_string(),
        })
    }

    /// Makes sure these counters' rows exist, each created in its own short transaction.
    ///
    /// A counter row born inside a long transaction would make concurrent writers that need
    /// it wait on each other's uncommitted inserts — on PostgreSQL, a deadlock. Creating rows
    /// first means the writers only ever lock existing rows, in a fixed order.
    pub fn ensure_counters(&self, names: &[&str]) -> Result<(), StoreError> {
        use schema::counters::dsl as c;
        for name in names {
            if self
                .known_counters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(*name)
            {
                continue;
            }
            let created = self.write(|conn| {
                let exists = c::counters
                    .filter(c::name.eq(name))
                    .count()
                    .get_result::<i64>(conn)?
                    > 0;
                if !exists {
                    diesel::insert_into(c::counters)
                        .values((c::name.eq(name), c::value.eq(0i64)))
                        .execute(conn)?;
                }
                Ok::<_, StoreError>(())
            });
            match created {
                Ok(()) => {}
                // Someone else created it first: just as good.
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
            self.known_counters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((*name).to_owned());
        }
        Ok(())
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A pooled connection for reads.
    pub fn conn(&self) -> Result<PooledConnection<ConnectionManager<DbConn>>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// A pooled connection only if one is idle now and more than `keep` others stay idle after
    /// it; never waits. For work that goes faster with one more connection but must not take
    /// the last ones from the ingest and the other readers (an export's extra writers): without
    /// it, two exports on a four-core host held eight connections, the whole default pool.
    pub fn spare_conn(&self, keep: u32) -> Option<PooledConnection<ConnectionManager<DbConn>>> {
        if self.pool.state().idle_connections <= keep {
            return None;
        }
        self.pool.try_get()
    }

    /// Runs `f` in one write transaction: all of it commits or none of it does.
    ///
    /// On PostgreSQL a unique-key, serialisation or deadlock conflict with a concurrent writer
    /// retries the whole transaction (a few times), so `f` must be safe to run again: it only
    /// talks to the database. Errors of `f` roll back and come back unchanged.
    pub fn write<T, E>(&self, mut f: impl FnMut(&mut DbConn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DieselError> + From<StoreError> + AsConflict,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        match self.backend {
            Backend::Sqlite => {
                let _writer = self
                    .sqlite_writer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                immediate_transaction(&mut conn, f)
            }
            Backend::Postgres => {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match conn.transaction(|c| f(c)) {
                        Err(e) if attempt < 8 && e.is_conflict() => {
                            std::thread::sleep(Duration::from_millis(2 * attempt));
                        }
                        other => return other,
                    }
                }
            }
        }
    }
}

/// A SQLite write transaction begun with `BEGIN IMMEDIATE`, committed when `f` succeeds and
/// rolled back when it fails (as diesel's `transaction` does).
///
/// Why not a plain (deferred) `BEGIN`: a deferred transaction reads first and takes the write
/// lock at its first write, and SQLite does not wait on the busy handler for a reader that
/// wants to become a writer (it could deadlock) — it fails at once with `database is locked`.
/// The checkpoint thread's `RESTART` checkpoint holds the write lock while it waits for
/// readers, so a commit that had begun reading just then failed (the ingest bench saw it when
/// commits grew to several batches). `IMMEDIATE` takes the write lock before reading, waiting
/// out the checkpoint within the busy timeout.
fn immediate_transaction<T, E>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <DbConn as Connection>::TransactionManager;
    match conn {
        DbConn::Sqlite(sqlite) => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?
        }
        DbConn::Postgresql(_) => Manager::begin_transaction(conn)?,
    }
    match f(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => match Manager::rollback_transaction(conn) {
            Ok(()) | Err(DieselError::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// Lets [`Db::write`] recognise a retryable conflict inside a caller's error type.
pub trait AsConflict {
    /// True for a unique violation, serialisation failure or deadlock caused by a concurrent
    /// writer.
    fn is_conflict(&self) -> bool;
}

impl AsConflict for DieselError {
    fn is_conflict(&self) -> bool {
        match self {
            DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
                _,
            ) => true,
            // PostgreSQL breaks a lock cycle by failing one transaction (SQLSTATE 40P01);
            // running it again is the documented remedy.
            DieselError::DatabaseError(_, info) => info.message().contains("deadlock detected"),
            _ => false,
        }
    }
}

impl AsConflict for StoreError {
    fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Query(e) if e.is_conflict())
    }
}

/// Runs a multi-row `INSERT` on the concrete connection underneath `DbConn` (still inside the
/// caller's transaction): diesel's `MultiConnection` does not support batch inserts, which are
/// what keep many rows a handful of statements (a gateway applying a batch, a node's outbox, a
/// batch submit, an import).
#[macro_export]
macro_rules! batch_insert {
    ($conn:expr, $query:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite(c) => diesel::RunQueryDsl::execute($query, c),
            $crate::db::DbConn::Postgresql(c) => diesel::RunQueryDsl::execute($query, c),
        }
    };
}

/// Takes the next value of a gap-free counter inside the caller's transaction.
///
/// Rolled back with the transaction, so a failed write never burns a number. On PostgreSQL the
/// `UPDATE` locks the counter's row until commit: concurrent writers queue here, which is what
/// keeps seqs, serials and change ids gap-free and in commit order.
pub fn next_counter(conn: &mut DbConn, name: &str) -> Result<i64, DieselError> {
    use schema::counters::dsl as c;
    let next: Option<i64> = diesel::update(c::counters.filter(c::name.eq(name)))
        .set(c::value.eq(c::value + 1))
        .returning(c::value)
        .get_result(conn)
        .optional()?;
    match next {
        Some(value) => Ok(value),
        None => {
            diesel::insert_into(c::counters)
                .values((c::name.eq(name), c::value.eq(1i64)))
                .execute(conn)?;
            Ok(1)
        }
    }
}

/// Takes `n` consecutive values of each named counter inside the caller's transaction, in one
/// statement, and returns for each name (in the order given) the first of its values: the name
/// with `n` gets `first..first + n`. An `n` of 0 takes nothing and returns the value after the
/// counter's last. As [`next_counter`], rolled back with the transaction, so gap-free.
///
/// The rows should exist ([`Db::ensure_counters`]); one that does not is created, as by
/// [`next_counter`]. On PostgreSQL they are locked in the order
/// given, until commit: callers that take several counters give them in one global order, so
/// that concurrent writers cannot deadlock. Taking them late, in one round trip, is what keeps
/// concurrent writers from queueing on them for longer than the rest of their commit.
pub fn take_counters(conn: &mut DbConn, wants: &[(&str, i64)]) -> Result<Vec<i64>, DieselError> {
    use diesel::sql_types::{Array, BigInt, Text};
    use schema::counters::dsl as c;
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = BigInt)]
        value: i64,
    }
    if wants.is_empty() {
        return Ok(Vec::new());
    }
    let taken: Vec<(String, i64)> = match conn {
        DbConn::Postgresql(pg) => {
            let names: Vec<&str> = wants.iter().map(|(name, _)| *name).collect();
            let counts: Vec<i64> = wants.iter().map(|(_, n)| *n).collect();
            // The subquery locks the rows in the order given (its sort sits below the lock);
            // the update then finds them locked by this transaction and reads their latest
            // committed values.
            diesel::sql_query(
                "UPDATE counters AS c SET value = c.value + w.n \
                 FROM (SELECT c2.name FROM counters AS c2 \
                       JOIN unnest($1::text[]) WITH ORDINALITY AS o(name, ord) ON c2.name = o.name \
                       ORDER BY o.ord FOR UPDATE OF c2) AS l, \
                      unnest($1::text[], $2::bigint[]) AS w(name, n) \
                 WHERE c.name = l.name AND c.name = w.name \
                 RETURNING c.name, c.value",
            )
            .bind::<Array<Text>, _>(&names)
            .bind::<Array<BigInt>, _>(&counts)
            .load::<Taken>(pg)?
            .into_iter()
            .map(|t| (t.name, t.value))
            .collect()
        }
        // One writer at a time already: a statement per counter, in process.
        DbConn::Sqlite(_) => {
            let mut taken = Vec::with_capacity(wants.len());
            for (name, n) in wants {
                let value: Option<i64> = diesel::update(c::counters.filter(c::name.eq(*name)))
                    .set(c::value.eq(c::value + *n))
                    .returning(c::value)
                    .get_result(conn)
                    .optional()?;
                if let Some(value) = value {
                    taken.push(((*name).to_owned(), value));
                }
            }
            taken
        }
    };
    let mut firsts = Vec::with_capacity(wants.len());
    for (name, n) in wants {
        match taken.iter().find(|(t, _)| t == name) {
            Some((_, last)) => firsts.push(last - n + 1),
            // A counter never created: as `next_counter`, born here (which makes concurrent
            // writers wait on this transaction's insert; `Db::ensure_counters` avoids it).
            None => {
                diesel::insert_into(c::counters)
                    .values((c::name.eq(*name), c::value.eq(*n)))
                    .execute(conn)?;
                firsts.push(1);
            }
        }
    }
    Ok(firsts)
}

/// Locks a counter's row until the transaction ends, without moving it (no-op on SQLite,
/// whose writers are already serialised). Used to take several counters in a fixed order.
pub fn lock_counter(conn: &mut DbConn, name: &str) -> Result<(), DieselError> {
    use schema::counters::dsl as c;
    if let DbConn::Postgresql(_) = conn {
        diesel::update(c::counters.filter(c::name.eq(name)))
            .set(c::value.eq(c::value))
            .execute(conn)?;
    }
    Ok(())
}

/// Reads a counter without moving it (0 if never used).
pub fn current_counter(conn: &mut DbConn, name: &str) -> Result<i64, DieselError> {
    use schema::counters::dsl as c;
    Ok(c::counters
        .filter(c::name.eq(name))
        .select(c::value)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use diesel_migrations::embed_migrations;

    use super::*;

    const MIGRATIONS: EmbeddedMigrations = embed_migrations!("test-migrations");

    /// A service with nothing but the counters table.
    const COUNTERS_ONLY: Tuning = Tuning {
        what: "test database",
        sqlite_migrations: || MIGRATIONS,
        postgres_migrations: || MIGRATIONS,
        sqlite_file: "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;",
        sqlite_connection: "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
        postgres_session: None,
        counters: &["seq"],
    };

    #[test]
    fn a_spare_connection_never_takes_the_last_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("n.db").to_str().unwrap(), 4, &COUNTERS_ONLY).unwrap();
        let first = db.conn().unwrap();
        let spare = db.spare_conn(2).expect("3 idle of 4: one may go");
        assert!(db.spare_conn(2).is_none(), "2 idle: none to spare");
        drop(spare);
        assert!(db.spare_conn(2).is_some(), "3 idle again");
        let (_a, _b) = (db.conn().unwrap(), db.conn().unwrap());
        assert!(db.spare_conn(0).is_some(), "one idle, none kept");
        drop(first);
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://rix:s3cret@db.example:5432/rix"),
            "postgres://rix@db.example:5432/rix"
        );
        assert_eq!(redact_url("/var/lib/rix/node.db"), "/var/lib/rix/node.db");
    }

    #[test]
    fn counters_are_gap_free_and_roll_back_with_their_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("n.db").to_str().unwrap(), 2, &COUNTERS_ONLY).unwrap();
        let first = db
            .write(|c| next_counter(c, "seq").map_err(StoreError::from))
            .unwrap();
        let failed: Result<i64, StoreError> = db.write(|c| {
            next_counter(c, "seq")?;
            Err(StoreError::Task("forced rollback".into()))
        });
        assert!(failed.is_err());
        let second = db
            .write(|c| next_counter(c, "seq").map_err(StoreError::from))
            .unwrap();
        assert_eq!((first, second), (1, 2));
        assert_eq!(current_counter(&mut db.conn().unwrap(), "seq").unwrap(), 2);
    }

    #[test]
    fn counters_taken_together_are_consecutive_and_roll_back_with_their_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("n.db").to_str().unwrap(), 2, &COUNTERS_ONLY).unwrap();
        db.ensure_counters(&["a", "b"]).unwrap();
        let first = db
            .write(|c| {
                take_counters(c, &[("seq", 3), ("a", 2), ("b", 0)]).map_err(StoreError::from)
            })
            .unwrap();
        assert_eq!(first, [1, 1, 1]);
        let failed: Result<Vec<i64>, StoreError> = db.write(|c| {
            take_counters(c, &[("seq", 5)])?;
            Err(StoreError::Task("forced rollback".into()))
        });
        assert!(failed.is_err());
        let second = db
            .write(|c| take_counters(c, &[("a", 1), ("seq", 1)]).map_err(StoreError::from))
            .unwrap();
        assert_eq!(second, [3, 4]);
        let born = db
            .write(|c| take_counters(c, &[("new", 2)]).map_err(StoreError::from))
            .unwrap();
        assert_eq!(born, [1]);
        assert_eq!(current_counter(&mut db.conn().unwrap(), "new").unwrap(), 2);
    }

    #[test]
    fn a_new_sqlite_file_opened_by_many_connections_at_once_is_never_busy() {
        // The pool opens its connections in parallel; each must find the file in WAL already.
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            dir.path().join("n.db").to_str().unwrap(),
            16,
            &COUNTERS_ONLY,
        )
        .unwrap();
        let mut held: Vec<_> = (0..16).map(|_| db.conn().unwrap()).collect();
        #[derive(diesel::QueryableByName)]
        struct Mode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        let DbConn::Sqlite(c) = &mut *held[15] else {
            panic!("a SQLite path opened another backend");
        };
        let mode: Vec<String> = diesel::sql_query("PRAGMA journal_mode")
            .load::<Mode>(c)
            .unwrap()
            .into_iter()
            .map(|m| m.journal_mode)
            .collect();
        assert_eq!(mode, ["wal"]);
    }

    #[test]
    fn a_write_that_reads_first_waits_out_a_restart_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.db");
        let path = path.to_str().unwrap().to_owned();
        let db = Db::open(&path, 2, &COUNTERS_ONLY).unwrap();
        db.write(|c| next_counter(c, "seq").map_err(StoreError::from))
            .unwrap();
        // A reader whose snapshot uses the log: a RESTART checkpoint must wait for it to end,
        // holding the write lock meanwhile (as the checkpoint thread does past RESTART_PAGES).
        let mut reader = diesel::SqliteConnection::establish(&path).unwrap();
        reader
            .batch_execute("BEGIN; SELECT value FROM counters;")
            .unwrap();
        let checkpointing = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut c = diesel::SqliteConnection::establish(&path).unwrap();
                c.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA wal_checkpoint(RESTART);")
                    .unwrap();
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        let reader_done = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            reader.batch_execute("COMMIT;").unwrap();
        });
        // Reads, then writes: as ingest's commit does (chain check, then apply).
        let taken = db.write(|c| {
            let before = current_counter(c, "seq")?;
            Ok::<_, StoreError>((before, next_counter(c, "seq")?))
        });
        reader_done.join().unwrap();
        checkpointing.join().unwrap();
        assert_eq!(taken.unwrap(), (1, 2));
    }
}
