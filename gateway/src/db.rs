//! Catalogue storage: one diesel codebase over SQLite (default) and PostgreSQL (production,
//! shared by gateway replicas).
//!
//! The same discipline as a node's storage, for the same reasons: SQLite writers are
//! serialised by a process-wide mutex (one writer at a time is SQLite's rule anyway, and taking
//! the mutex first avoids `SQLITE_BUSY` on lock upgrade); PostgreSQL writers run concurrently,
//! meet only on counter rows (created outside long transactions), and retry on conflicts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The gateway's connection: SQLite or PostgreSQL, chosen from the URL at start.
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
        nodes (node_id) {
            node_id -> Text,
            name -> Nullable<Text>,
            feed_url -> Nullable<Text>,
            added_at -> Text,
            feed_token -> Nullable<Text>,
        }
    }

    diesel::table! {
        node_keys (node_id, key_id) {
            node_id -> Text,
            key_id -> Text,
            public_key -> Text,
            valid_from -> Nullable<Text>,
            valid_until -> Nullable<Text>,
            revoked_at -> Nullable<Text>,
            added_at -> Text,
            compromised_since -> Nullable<Text>,
        }
    }

    diesel::table! {
        node_chain (node_id) {
            node_id -> Text,
            next_batch_seq -> BigInt,
            next_seq -> BigInt,
            prev_batch_hash -> Text,
            updated_at -> Text,
            last_created_at -> Nullable<Text>,
        }
    }

    diesel::table! {
        batches (node_id, batch_seq) {
            node_id -> Text,
            batch_seq -> BigInt,
            hash -> Text,
            header -> Text,
            signature -> Text,
            transport -> Text,
            received_at -> Text,
        }
    }

    diesel::table! {
        record_versions (node_id, id, version) {
            node_id -> Text,
            id -> Text,
            version -> BigInt,
            kind -> Text,
            op -> Text,
            seq -> BigInt,
            batch_seq -> BigInt,
            entry -> Text,
            proof -> Text,
            applied_at -> Text,
            disclosures -> Nullable<Text>,
        }
    }

    diesel::table! {
        records (node_id, id) {
            node_id -> Text,
            id -> Text,
            kind -> Text,
            version -> BigInt,
            withdrawn -> Integer,
            secrecy -> Text,
            title -> Text,
            registration_no -> Nullable<Text>,
            program -> Nullable<Text>,
            project_no -> Nullable<Text>,
            unified_id -> Text,
            first_change -> BigInt,
            last_change -> BigInt,
        }
    }

    diesel::table! {
        record_funding (node_id, id, program, project_no) {
            node_id -> Text,
            id -> Text,
            program -> Text,
            project_no -> Text,
            classes -> Text,
        }
    }

    diesel::table! {
        merge_keys (kind, merge_key) {
            kind -> Text,
            merge_key -> Text,
            unified_id -> Text,
        }
    }

    diesel::table! {
        changes (change_id) {
            change_id -> BigInt,
            node_id -> Text,
            id -> Text,
            kind -> Text,
            version -> BigInt,
            op -> Text,
            unified_id -> Text,
            at -> Text,
            moved_from -> Nullable<Text>,
            source_audience -> Nullable<BigInt>,
        }
    }

    diesel::table! {
        refusals (at, transport) {
            at -> Text,
            node_id -> Nullable<Text>,
            batch_seq -> Nullable<BigInt>,
            transport -> Text,
            reason -> Text,
            detail -> Text,
        }
    }

    diesel::table! {
        quarantine (node_id, seq) {
            at -> Text,
            node_id -> Text,
            seq -> BigInt,
            id -> Text,
            version -> BigInt,
            reason -> Text,
        }
    }

    diesel::table! {
        consumer_tokens (token_sha256) {
            token_sha256 -> Text,
            name -> Text,
            entitlements -> Text,
            created_at -> Text,
            revoked_at -> Nullable<Text>,
        }
    }

    diesel::table! {
        read_audit (at, consumer) {
            at -> Text,
            consumer -> Text,
            entitlements -> Text,
            endpoint -> Text,
            subject -> Text,
        }
    }

    diesel::table! {
        counters (name) {
            name -> Text,
            value -> BigInt,
        }
    }

    diesel::table! {
        catalogue_meta (name) {
            name -> Text,
            value -> Text,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(
        records,
        record_funding,
        record_versions,
        nodes,
        node_keys
    );
}

/// Runs a multi-row `INSERT` on the concrete connection underneath `DbConn` (still inside the
/// caller's transaction): diesel's `MultiConnection` does not support batch inserts, which are
/// what makes applying a batch of thousands of entries a handful of statements.
#[macro_export]
macro_rules! batch_insert {
    ($conn:expr, $query:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite(c) => diesel::RunQueryDsl::execute($query, c),
            $crate::db::DbConn::Postgresql(c) => diesel::RunQueryDsl::execute($query, c),
        }
    };
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
    #[error("cannot connect to the catalogue database {url}: {detail}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// Migrations failed.
    #[error("cannot migrate the catalogue database: {0}")]
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
    /// The catalogue holds something its own code never writes (damage or a hand edit).
    #[error("the catalogue is damaged: {0}")]
    Corrupt(String),
}

#[derive(Debug)]
struct Tune;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for Tune {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        if let DbConn::Sqlite(c) = conn {
            // WAL lets readers run beside the writer; NORMAL syncs at checkpoints only, which
            // in WAL mode still never corrupts and loses at most the last commits on power loss.
            // Page size and WAL are set once per file, before the pool opens (`Db::open`).
            c.batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; \
                 PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        if let DbConn::Postgresql(c) = conn {
            // Plan every execution with its own parameters: cached generic plans, made while a
            // table was still small (a new gateway backfilling), kept choosing sequential scans
            // for `= ANY(...)` lookups as the table grew.
            c.batch_execute("SET plan_cache_mode = force_custom_plan")
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// The catalogue database: a connection pool plus the write discipline of its backend.
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
                    c.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA page_size = 16384; PRAGMA journal_mode = WAL;")
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
        db.ensure_counters(&["change_id"])?;
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
