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
