//! The services the tests share — PostgreSQL and RabbitMQ, started by `ops/start-services.sh`
//! — and the names that keep tests running side by side on them apart.

use std::sync::atomic::{AtomicU32, Ordering};

use diesel::{Connection, RunQueryDsl};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or earlier run) uses: `{prefix}-{process id}-{n}`; also a valid
/// node id.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// The test broker's URL (`ops/start-services.sh` writes it to `$RIX_SERVICES_DIR/env`).
pub fn amqp_url() -> String {
    std::env::var("RIX_TEST_AMQP_URL").expect(
        "RIX_TEST_AMQP_URL is not set: run ops/start-services.sh and `source $RIX_SERVICES_DIR/env` (ops/test.sh does both)",
    )
}

/// A fresh, empty database on the test PostgreSQL server; returns its URL.
pub fn fresh_postgres_database() -> String {
    let base = std::env::var("RIX_TEST_POSTGRES_URL").expect(
        "RIX_TEST_POSTGRES_URL is not set: run ops/start-services.sh and `source $RIX_SERVICES_DIR/env` (ops/test.sh does both)",
    );
    let name = unique("rix_test").replace('-', "_");
    let mut conn = diesel::PgConnection::establish(&base)
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {base}: {e}"));
    // A database an earlier run left under the same name (its process id came round again).
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .expect("drop a leftover test database");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .expect("create a test database");
    let (prefix, _) = base.rsplit_once('/').expect("URL has a database part");
    format!("{prefix}/{name}")
}
