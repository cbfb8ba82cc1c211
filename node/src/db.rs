//! Node storage: its tables and migrations, over the one diesel codebase both services share
//! (`rix_runtime::db`: SQLite by default, a file in the data dir; PostgreSQL when the database
//! URL says `postgres://`). Business code takes `&mut DbConn` and does not care which backend
//! it is; how connections are tuned and writes serialised is explained in `rix_runtime::db`.
//!
//! What it may not touch: what the rows mean. It declares the tables and opens the pool with this
//! service's migrations, counters and tuning; every read and write of a row is a stage's
//! ([`crate::register`], [`crate::import`], [`crate::review`], [`crate::outbox`],
//! [`crate::keys`]).

use std::ops::Deref;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use rix_runtime::db::Tuning;
pub use rix_runtime::db::{
    AsConflict, Backend, DbConn, StoreError, current_counter, lock_counter, next_counter,
    redact_url, take_counters,
};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Table definitions shared by both backends (the migrations are the source of truth).
pub mod schema {
    pub use rix_runtime::db::schema::counters;

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
        idempotency (principal, key) {
            principal -> Text,
            key -> Text,
            request_hash -> Text,
            status -> Integer,
            body -> Text,
            created_at -> Text,
        }
    }

    diesel::table! {
        import_keys (kind, key_sha256) {
            kind -> Text,
            key_sha256 -> Text,
            source_key -> Text,
            record_id -> Text,
            item_sha256 -> Text,
            imported_by -> Text,
            imported_at -> Text,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(records, record_versions);
}

/// What this service asks of its database: its migrations, its counters, its tuning.
const TUNING: Tuning = Tuning {
    what: "node database",
    sqlite_migrations: || SQLITE_MIGRATIONS,
    postgres_migrations: || POSTGRES_MIGRATIONS,
    // WAL lets readers run beside the writer; set once per file.
    sqlite_file: "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;",
    // NORMAL syncs at checkpoints only, which in WAL mode still never corrupts and loses at
    // most the last commits on power loss.
    sqlite_connection: "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                        PRAGMA foreign_keys = ON;",
    postgres_session: None,
    counters: &["outbox_seq", "id:achievement", "id:funded_project"],
};

/// The node database: the shared pool and write discipline ([`rix_runtime::db::Db`]) opened with this
/// service's migrations and counters. Dereferences to the shared type (`conn`, `write`,
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
