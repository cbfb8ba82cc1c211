//! Starting and stopping a node: storage, key, publisher task, HTTP listener (optionally TLS).

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpServer, dev::ServerHandle, web};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
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
    /// TLS material could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A started node.
pub struct RunningNode {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    server: ServerHandle,
    server_task: tokio::task::JoinHandle<std::io::Result<()>>,
    publisher_task: tokio::task::JoinHandle<()>,
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
        self.server.stop(true).await;
        let _ = self.server_task.await;
        let _ = self.shutdown.send(true);
        let _ = self.publisher_task.await;
    }

    /// Runs until SIGINT or SIGTERM, then stops gracefully.
    pub async fn run_until_signalled(self) {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
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
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| StartError::Key {
        path,
        detail: e.to_string(),
    })
}

fn tls_acceptor(
    tls: &crate::config::TlsConfig,
) -> Result<openssl::ssl::SslAcceptorBuilder, StartError> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .map_err(|e| StartError::Tls(e.to_string()))?;
    builder
        .set_private_key_file(&tls.key, SslFiletype::PEM)
        .map_err(|e| StartError::Tls(format!("key {}: {e}", tls.key.display())))?;
    builder
        .set_certificate_chain_file(&tls.cert)
        .map_err(|e| StartError::Tls(format!("certificate {}: {e}", tls.cert.display())))?;
    Ok(builder)
}

/// Starts a node from its configuration and returns once it listens.
pub async fn start(config: Config) -> Result<RunningNode, StartError> {
    config.check()?;
    let issuer = config.issuer()?;
    let key = Arc::new(load_key(&config)?);
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| crate::db::StoreError::Connect {
            url: config.data_dir.display().to_string(),
            detail: format!("cannot create the data dir: {e}"),
        })?;
    }
    let url = config.effective_database_url();
    let connections = config.db_connections;
    let db = tokio::task::spawn_blocking(move || Db::open(&url, connections))
        .await
        .expect("opening the database does not panic")?;
    let metrics = Metrics::new();
    let wake = Arc::new(Notify::new());
    let (shutdown, shutdown_rx) = watch::channel(false);

    let publisher = Publisher {
        db: db.clone(),
        node_id: config.node_id.clone(),
        key: key.clone(),
        batch: config.batch,
        amqp: config.amqp_url.clone().map(|url| AmqpTarget {
            url,
            exchange: config.amqp_exchange.clone(),
        }),
        wake: wake.clone(),
        metrics: metrics.clone(),
    };
    let publisher_task = tokio::spawn(publisher.run(shutdown_rx));

    let state = web::Data::new(AppState {
        db: db.clone(),
        node_id: config.node_id.clone(),
        node_name: config.name.clone(),
        issuer,
        tokens: TokenTable::new(&config.tokens),
        key,
        wake,
        metrics: metrics.clone(),
        max_body_bytes: config.max_body_bytes,
        broker_configured: config.amqp_url.is_some(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(tracing_actix())
            .configure(api::configure)
    })
    .disable_signals()
    .shutdown_timeout(30);
    let (server, scheme) = match &config.tls {
        Some(tls) => (
            server
                .bind_openssl(config.listen, tls_acceptor(tls)?)
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?,
            "https",
        ),
        None => (
            server
                .bind(config.listen)
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?,
            "http",
        ),
    };
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let server_task = tokio::spawn(server);
    tracing::info!(node_id = %config.node_id, %addr, scheme, backend = ?db.backend(), "node listening");
    Ok(RunningNode {
        addr,
        scheme,
        server: handle,
        server_task,
        publisher_task,
        shutdown,
        metrics,
        db,
    })
}

fn tracing_actix() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%r %s %b %Dms").log_target("rix_node::http")
}
