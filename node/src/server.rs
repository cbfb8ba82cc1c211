//! Starting and stopping a node: storage, key, publisher task, and the HTTP listener.
//!
//! The listener is the one both services share ([`rix_runtime::serve`]: TLS with client
//! certificates, request heads checked before the HTTP parser, graceful stop); what is the
//! node's own is the order things start in — the key is checked and recorded before anything
//! listens, so `/v1/keys` lists it before it signs — and what it stops: requests first, then
//! the publisher, which seals what is waiting.
//!
//! What it may not touch: rules and records. It holds no handler and no business rule; it
//! wires configuration, storage, key, publisher and listener together, and refuses a key file
//! that other users can read.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, web};
use rix_runtime::config::BrokerUrls;
use rix_runtime::serve::{Listener, RunningServer, ServeError};
use rix_schema::signing::SigningKey;
use tokio::sync::{Notify, watch};

use crate::api::{self, AppState};
use crate::auth::TokenTable;
use crate::config::Config;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::publish::{AmqpTarget, Publisher};

/// Why a node could not start, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] crate::db::StoreError),
    /// The signing key could not be read.
    #[error("signing key {path}: {detail} (create one with `rix keygen --out {path}`)")]
    Key {
        /// The key file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The listener could not start (TLS material, address).
    #[error(transparent)]
    Listen(#[from] ServeError),
}

/// A started node.
pub struct RunningNode {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    server: RunningServer,
    publisher_task: tokio::task::JoinHandle<()>,
    pruner_task: Option<tokio::task::JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    /// The node's metrics (tests read them).
    pub metrics: Metrics,
    /// The node's database (tests inspect it).
    pub db: Db,
}

impl RunningNode {
    /// The base URL, e.g. `http://127.0.0.1:8081`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops gracefully: the listener finishes in-flight requests, then the publisher seals
    /// what is waiting and waits (bounded) for the broker's confirms.
    pub async fn stop(self) {
        self.server.stop().await;
        if let Some(pruner) = &self.pruner_task {
            pruner.abort();
        }
        let _ = self.shutdown.send(true);
        let _ = self.publisher_task.await;
    }

    /// Runs until SIGINT or SIGTERM, then stops gracefully.
    pub async fn run_until_signalled(self) {
        rix_runtime::serve::stop_requested().await;
        tracing::info!("stopping: finishing requests and publishing what is sealed");
        self.stop().await;
    }
}

fn load_key(config: &Config) -> Result<SigningKey, StartError> {
    let path = config.signing_key.display().to_string();
    let pem = std::fs::read(&config.signing_key).map_err(|e| StartError::Key {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    // Whoever can read the key can sign as this node: refuse one that every local user can
    // read (or its group can change) rather than run with it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&config.signing_key)
            .map_err(|e| StartError::Key {
                path: path.clone(),
                detail: e.to_string(),
            })?
            .permissions()
            .mode();
        if mode & 0o027 != 0 {
            return Err(StartError::Key {
                path: path.clone(),
                detail: format!(
                    "the private key is open to other users (mode {:04o}); make it readable by the node's user only: chmod 600 {path} (or 640 with the node's group)",
                    mode & 0o7777
                ),
            });
        }
    }
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| StartError::Key {
        path,
        detail: e.to_string(),
    })
}

/// Starts a node from its configuration and returns once it listens.
pub async fn start(config: Config) -> Result<RunningNode, StartError> {
    config.check()?;
    let issuer = config.issuer()?;
    let key = Arc::new(load_key(&config)?);
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| crate::db::StoreError::Connect {
            what: "node database",
            url: config.data_dir.display().to_string(),
            detail: format!("cannot create the data dir: {e}"),
        })?;
    }
    let url = config.effective_database_url();
    let connections = config.db_connections;
    let db = tokio::task::spawn_blocking(move || Db::open(&url, connections))
        .await
        .expect("opening the database does not panic")?;
    // The key history learns the configured key now, so /v1/keys lists it before it signs
    // anything; a key a newer one has replaced is refused here rather than at the first seal.
    {
        let db = db.clone();
        let public = key.verifying_key().clone();
        let key_path = config.signing_key.display().to_string();
        tokio::task::spawn_blocking(move || {
            db.write(|conn| crate::keys::note_loaded(conn, &public, &rix_runtime::clock::now()))
                .map_err(|e| match e {
                    crate::keys::KeyHistoryError::Store(e) => StartError::Store(e),
                    retired => StartError::Key {
                        path: key_path,
                        detail: retired.to_string(),
                    },
                })
        })
        .await
        .expect("recording the signing key does not panic")?;
    }
    let metrics = Metrics::new();
    let wake = Arc::new(Notify::new());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let broker_health = rix_runtime::health::Link::new();

    let publisher = Publisher {
        db: db.clone(),
        node_id: config.node_id.clone(),
        key: key.clone(),
        batch: config.batch,
        amqp: config
            .amqp_url
            .as_deref()
            .and_then(BrokerUrls::parse)
            .map(|urls| AmqpTarget {
                urls,
                exchange: config.amqp_exchange.clone(),
            }),
        wake: wake.clone(),
        metrics: metrics.clone(),
        broker_health: broker_health.clone(),
    };
    let publisher_task = tokio::spawn(publisher.run(shutdown_rx));
    let pruner_task = (config.idempotency_retention_days > 0).then(|| {
        tokio::spawn(prune_idempotency(
            db.clone(),
            config.idempotency_retention_days,
        ))
    });

    let state = web::Data::new(AppState {
        db: db.clone(),
        node_id: config.node_id.clone(),
        node_name: config.name.clone(),
        issuer,
        tokens: TokenTable::new(&config.tokens).with_gateways(&config.gateways),
        key,
        wake,
        metrics: metrics.clone(),
        max_body_bytes: config.max_body_bytes,
        broker: config.amqp_url.is_some().then_some(broker_health),
    });
    let listener = Listener {
        tls: config.tls.clone(),
        ..Listener::new("node", config.listen)
    };
    let server = rix_runtime::serve::serve(&listener, move || {
        App::new()
            .app_data(state.clone())
            .wrap(rix_runtime::problem::problem_errors())
            .wrap(tracing_actix())
            .configure(api::configure)
    })?;
    let (addr, scheme) = (server.addr, server.scheme);
    tracing::info!(node_id = %config.node_id, %addr, scheme, backend = ?db.backend(), "node listening");
    if config.gateways.is_empty() {
        tracing::warn!(
            "no [[gateways]] configured: nobody may read the signed feed (GET /v1/feed answers 401); \
             enrol the gateways that pull this node"
        );
    }
    Ok(RunningNode {
        addr,
        scheme,
        server,
        publisher_task,
        pruner_task,
        shutdown,
        metrics,
        db,
    })
}

/// How often stored idempotent replies are checked for age.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes the replies stored under idempotency keys once they are `days` old: at start, then
/// every [`PRUNE_EVERY`]. A failure is logged and tried again next time.
async fn prune_idempotency(db: Db, days: u32) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let cutoff = rix_runtime::clock::rfc3339(
            time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days)),
        );
        let db = db.clone();
        match tokio::task::spawn_blocking(move || crate::register::prune_idempotency(&db, &cutoff))
            .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(deleted = n, days, "stored idempotent replies expired"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not delete expired idempotent replies"),
            Err(_) => return,
        }
    }
}

fn tracing_actix() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%r %s %b %Dms").log_target("rix_node::http")
}
