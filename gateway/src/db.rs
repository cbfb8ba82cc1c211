//! Catalogue storage: its tables and migrations, over the one diesel codebase both services
//! share (`rix_runtime::db`: SQLite by default; PostgreSQL in production, shared by gateway
//! replicas). How connections are tuned and writes serialised is explained in
//! `rix_runtime::db`; what differs here is the tuning below.
//!
//! What it may not touch: what the rows mean. Tables, migrations, counters and tuning only; every
//! query lives with the module that needs it ([`crate::catalogue`], [`crate::trust`],
//! [`crate::access`], [`crate::ingest`], …).

use std::ops::Deref;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use rix_runtime::db::Tuning;
pub use rix_runtime::db::{
    AsConflict, Backend, DbConn, StoreError, current_counter, lock_counter, next_counter,
    redact_url,
};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Table definitions shared by both backends (the migrations are the source of truth).
pub mod schema {
    pub use rix_runtime::db::schema::counters;

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

/// What this service asks of its database: its migrations, its counters, its tuning.
const TUNING: Tuning = Tuning {
    what: "catalogue database",
    sqlite_migrations: || SQLITE_MIGRATIONS,
    postgres_migrations: || POSTGRES_MIGRATIONS,
    // Page size and WAL belong to the file: set once, before the first table.
    sqlite_file: "PRAGMA busy_timeout = 10000; PRAGMA page_size = 16384; \
                  PRAGMA journal_mode = WAL;",
    // NORMAL syncs at checkpoints only, which in WAL mode still never corrupts and loses at
    // most the last commits on power loss.
    sqlite_connection: "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                        PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; \
                        PRAGMA temp_store = MEMORY;",
    // Plan every execution with its own parameters: cached generic plans, made while a table
    // was still small (a new gateway backfilling), kept choosing sequential scans for
    // `= ANY(...)` lookups as the table grew.
    postgres_session: Some("SET plan_cache_mode = force_custom_plan"),
    counters: &["change_id"],
};

/// The catalogue database: the shared pool and write discipline ([`rix_runtime::db::Db`])
/// opened with this service's migrations and counters. Dereferences to the shared type (`conn`, `write`,
/// `backend`, `ensure_counters`).
#[derive(Clone)]
pub struct Db(rix_runtime::db::Db);

impl Deref for Db {
    type Target = rix_runtime::db::Db;

    fn deref(&self) -> &rix_runtime::db::Db {
        &self.0
    }
}

impl Db {
    /// Opens (creating a SQLite file if needed), tunes and migrates the database at `url`.
    pub fn open(url: &str, max_connections: u32) -> Result<Db, StoreError> {
        rix_runtime::db::Db::open(url, max_connections, &TUNING).map(Db)
    }
}

/// Keeps PostgreSQL's planner statistics of the tables the ingest looks rows up in (`records`,
/// `merge_keys`, `record_funding`) in step with a bulk load.
///
/// Why: until a table has been analysed the planner knows no column's distinct values and
/// takes every equality as 0.5 % selective, so a batch's `node_id = $1 AND id = ANY($2)` (the
/// `ANY` of 400 ids clamped to "every row") looked cheaper as "the node's rows, filtered" than
/// as 400 index probes — a scan of everything held, per lookup, that grows with the catalogue.
/// A gateway backfilling from empty fills these tables faster than autovacuum's analyse (once a
/// minute at best) notices: measured, 100,000 records at 2,400–4,900/s with lookups taking most
/// of the server's time, 8,400/s with the tables analysed. One `ANALYZE` gives the planner
/// "ids and keys are unique", which stays true as the tables grow; it runs again each time the
/// ingest has applied as many entries as `records` held at the last one (doubling: a handful of
/// times over a backfill of millions), on a thread of its own, never in the ingest's
/// transaction. SQLite plans these lookups by its indexes without statistics: nothing to do.
#[derive(Clone, Default)]
pub struct PlannerStatistics(std::sync::Arc<PlannerState>);

#[derive(Default)]
struct PlannerState {
    /// Entries applied since the last analyse was started.
    since: std::sync::atomic::AtomicU64,
    /// Rows `records` held at the last analyse (the planner's idea of its size then).
    analysed_rows: std::sync::atomic::AtomicU64,
    running: std::sync::atomic::AtomicBool,
}

/// Entries applied before the first analyse of a process: enough rows for the planner to see
/// that ids and keys do not repeat.
const FIRST_ANALYSE_AFTER: u64 = 2_000;

impl PlannerStatistics {
    /// Notes `applied` entries committed to `db`; starts an analyse when the tables have grown
    /// past what the planner last learned of them.
    pub fn applied(&self, db: &Db, applied: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        if applied == 0 || db.backend() != Backend::Postgres {
            return;
        }
        let since = self.0.since.fetch_add(applied, SeqCst) + applied;
        let threshold = self.0.analysed_rows.load(SeqCst).max(FIRST_ANALYSE_AFTER);
        if since < threshold || self.0.running.swap(true, SeqCst) {
            return;
        }
        self.0.since.store(0, SeqCst);
        let (db, state) = (db.clone(), self.0.clone());
        let spawned = std::thread::Builder::new()
            .name("rix-analyse".into())
            .spawn(move || {
                match analyse(&db) {
                    Ok(rows) => state.analysed_rows.store(rows, SeqCst),
                    Err(e) => tracing::warn!(error = %e, "analysing the catalogue's tables failed"),
                }
                state.running.store(false, SeqCst);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the analysing thread");
            self.0.running.store(false, SeqCst);
        }
    }
}

/// `ANALYZE` of the ingest's lookup tables; returns the rows `records` holds by the new
/// statistics.
fn analyse(db: &Db) -> Result<u64, StoreError> {
    use diesel::RunQueryDsl;
    let mut conn = db.conn()?;
    let DbConn::Postgresql(pg) = &mut *conn else {
        return Ok(0);
    };
    diesel::sql_query("ANALYZE records, merge_keys, record_funding").execute(pg)?;
    let rows: f32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Float>(
        "reltuples FROM pg_class WHERE oid = 'records'::regclass",
    ))
    .get_result(pg)?;
    Ok(rows.max(0.0) as u64)
}
