//! Node storage: one diesel codebase over SQLite (the default, a file in the data dir) and
//! PostgreSQL (when the database URL says `postgres://`).
//!
//! Business code takes `&mut DbConn` and does not care which backend it is. The two places
//! where the backends differ live here: how a connection is tuned when it opens, and how write
//! transactions are serialised. SQLite has one writer at a time; rather than let concurrent
//! writers race for the lock and fail with `SQLITE_BUSY` on upgrade, [`Db::write`] takes a
//! process-wide mutex first. PostgreSQL writers run concurrently and are serialised only where
//! they touch the same counter row (row locks), with a retry on unique or serialisation
//! conflicts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The node's connection: SQLite or PostgreSQL, chosen from the URL at start.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// A PostgreSQL connection (`postgres://` or `postgresql://` URLs).
    Postgresql(diesel::PgConnection),
    /// A SQLite connection (a path or `sqlite://` URL).
    Sqlite(diesel::SqliteConnection),
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Table definitions shared by both backends (the migrations are the source of truth).
pub mod schema {
    diesel::table! {
        records (kind, id) {
            kind -> Text,
            id -> Text,
            serial -> BigInt,
            owner_uscc -> Text,
            version -> BigInt,
            state -> Text,
            published_version -> Nullable<BigInt>,
            registration_no -> Nullable<Text>,
            registration_date -> Nullable<Text>,
            title -> Text,
            secrecy -> Text,
            created_at -> Text,
            updated_at -> Text,
        }
    }

    diesel::table! {
        record_versions (kind, id, version) {
            kind -> Text,
            id -> Text,
            version -> BigInt,
            state -> Text,
            document -> Nullable<Text>,
            submitted_by -> Text,
            submitted_at -> Text,
            reviewed_by -> Nullable<Text>,
            reviewed_at -> Nullable<Text>,
            reason -> Nullable<Text>,
        }
    }

    diesel::table! {
        outbox (seq) {
            seq -> BigInt,
            kind -> Text,
            op -> Text,
            id -> Text,
            version -> BigInt,
            record -> Nullable<Text>,
            created_at -> Text,
            batch_seq -> Nullable<BigInt>,
        }
    }

    diesel::table! {
        batches (batch_seq) {
            batch_seq -> BigInt,
            first_seq -> BigInt,
            last_seq -> BigInt,
            kind -> Text,
            hash -> Text,
            bytes -> Binary,
            created_at -> Text,
            published_at -> Nullable<Text>,
            key_id -> Nullable<Text>,
        }
    }

    diesel::table! {
        signing_keys (key_id) {
            key_id -> Text,
            public_key -> Text,
            loaded_at -> Text,
            first_batch_seq -> Nullable<BigInt>,
            valid_from -> Nullable<Text>,
            valid_until -> Nullable<Text>,
        }
    }

    diesel::table! {
        counters (name) {
            name -> Text,
            value -> BigInt,
        }
    }

    diesel::table! {
        idempotency (principal, key) {
            principal -> Text,
            key -> Text,
            request_hash -> Text,
            status -> Integer,
            body -> Text,
            created_at -> Text,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(records, record_versions);
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
    #[error("cannot connect to the node database {url}: {detail}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// Migrations failed.
    #[error("cannot migrate the node database: {0}")]
    Migrate(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] DieselError),
    /// A storage task on the blocking pool did not finish (shutdown, or a panic).
    #[error("storage task did not finish: {0}")]
    Task(String),
    /// No pooled connection became free.
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
}

#[derive(Debug)]
struct Tune;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for Tune {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        if let DbConn::Sqlite(c) = conn {
            // WAL lets readers run beside the writer; NORMAL syncs at checkpoints only, which
            // in WAL mode still never corrupts and loses at most the last commits on power loss.
            // WAL itself is set once per file, before the pool opens (`Db::open`).
            c.batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// The node database: a connection pool plus the write discipline of its backend.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager<DbConn>>,
    backend: Backend,
    sqlite_writer: Arc<Mutex<()>>,
    known_counters: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl Db {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`.
    pub fn open(url: &str, max_connections: u32) -> Result<Db, StoreError> {
        let backend = Backend::of_url(url);
        let connect_url = match backend {
            Backend::Sqlite => url.strip_prefix("sqlite://").unwrap_or(url).to_owned(),
            Backend::Postgres => url.to_owned(),
        };
        if backend == Backend::Sqlite {
            // WAL is a property of the file. Switching to it takes an exclusive lock that
            // SQLite may refuse at once, without waiting, to a connection racing others: set
            // it here, on one connection, before the pool opens its connections in parallel
            // (which made every first start log "database is locked").
            use diesel::Connection as _;
            diesel::SqliteConnection::establish(&connect_url)
                .and_then(|mut c| {
                    c.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;")
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
                })
                .map_err(|e| StoreError::Connect {
                    url: redact_url(url),
                    detail: e.to_string(),
                })?;
        }
        let manager = ConnectionManager::<DbConn>::new(connect_url);
        let pool = Pool::builder()
            .max_size(max_connections.max(2))
            .connection_timeout(Duration::from_secs(30))
            .connection_customizer(Box::new(Tune))
            .build(manager)
            .map_err(|e| StoreError::Connect {
                url: redact_url(url),
                detail: e.to_string(),
            })?;
        let db = Db {
            pool,
            backend,
            sqlite_writer: Arc::new(Mutex::new(())),
            known_counters: Arc::default(),
        };
        db.migrate()?;
        db.ensure_counters(&["outbox_seq", "id:achievement", "id:funded_project"])?;
        Ok(db)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.get()?;
        let result = match &mut *conn {
            DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
            DbConn::Postgresql(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
        };
        result.map_err(|e| StoreError::Migrate(e.to_string()))
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

    /// Runs `f` in one write transaction: all of it commits or none of it does.
    ///
    /// On PostgreSQL a unique-key or serialisation conflict with a concurrent writer retries
    /// the whole transaction (a few times), so `f` must be safe to run again: it only talks to
    /// the database. Errors of `f` roll back and come back unchanged.
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
                conn.transaction(|c| f(c))
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

/// Lets [`Db::write`] recognise a retryable conflict inside a caller's error type.
pub trait AsConflict {
    /// True for a unique violation or serialisation failure caused by a concurrent writer.
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

/// Takes the next value of a gap-free counter inside the caller's transaction.
///
/// Rolled back with the transaction, so a failed write never burns a number. On PostgreSQL the
/// `UPDATE` locks the counter's row until commit: concurrent writers queue here, which is what
/// keeps seqs and serials gap-free and in commit order.
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
    use super::*;

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
        let db = Db::open(dir.path().join("n.db").to_str().unwrap(), 2).unwrap();
        let first = db
            .write(|c| next_counter(c, "seq").map_err(StoreError::from))
            .unwrap();
        let failed: Result<i64, StoreError> = db.write(|c| {
            next_counter(c, "seq")?;
            Err(StoreError::Migrate("forced rollback".into()))
        });
        assert!(failed.is_err());
        let second = db
            .write(|c| next_counter(c, "seq").map_err(StoreError::from))
            .unwrap();
        assert_eq!((first, second), (1, 2));
        assert_eq!(current_counter(&mut db.conn().unwrap(), "seq").unwrap(), 2);
    }
}
