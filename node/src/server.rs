//! Starting and stopping a node: storage, key, publisher task, HTTP listener (optionally TLS).
//!
//! With `tls.client_ca` the listener asks every client for a certificate (verify mode PEER, not
//! FAIL_IF_NO_PEER_CERT: institutions use the same port without one). A certificate that does
//! not chain to the CA ends the handshake; a verified one is handed to the handlers as the
//! connection's [`PeerCertificate`], which is how a gateway bound to its certificate reads the
//! feed.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpServer, dev::ServerHandle, web};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::{X509, X509VerifyResult};
use rix_schema::signing::SigningKey;
use tokio::sync::{Notify, watch};

use crate::api::{self, AppState};
use crate::auth::{PeerCertificate, TokenTable};
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
    if let Some(ca) = &tls.client_ca {
        let what =
            |e: &dyn std::fmt::Display| StartError::Tls(format!("client CA {}: {e}", ca.display()));
        let pem = std::fs::read(ca).map_err(|e| what(&e))?;
        let certs = X509::stack_from_pem(&pem).map_err(|e| what(&e))?;
        if certs.is_empty() {
            return Err(what(&"no PEM certificate in the file"));
        }
        for cert in &certs {
            // Trusted for verifying clients, and named in the CertificateRequest so a client
            // with several certificates picks the right one.
            builder
                .cert_store_mut()
                .add_cert(cert.clone())
                .map_err(|e| what(&e))?;
            builder.add_client_ca(cert).map_err(|e| what(&e))?;
        }
        builder.set_verify(SslVerifyMode::PEER);
        // Sessions resumed under client verification need a context id.
        builder
            .set_session_id_context(b"rix-node")
            .map_err(|e| what(&e))?;
    }
    Ok(builder)
}

/// Puts a verified TLS client certificate into the connection's data for the handlers.
fn client_certificate(conn: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    type Tls = actix_tls::accept::openssl::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(tls) = conn.downcast_ref::<Tls>() else {
        return;
    };
    let ssl = tls.ssl();
    if let Some(cert) = ssl.peer_certificate()
        && ssl.verify_result() == X509VerifyResult::OK
    {
        data.insert(PeerCertificate::from_x509(&cert));
    }
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
        amqp: config.amqp_url.clone().map(|url| AmqpTarget {
            url,
            exchange: config.amqp_exchange.clone(),
        }),
        wake: wake.clone(),
        metrics: metrics.clone(),
        broker_health: broker_health.clone(),
    };
    let publisher_task = tokio::spawn(publisher.run(shutdown_rx));

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
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(rix_runtime::problem::problem_errors())
            .wrap(tracing_actix())
            .configure(api::configure)
    })
    .on_connect(client_certificate)
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
    if config.gateways.is_empty() {
        tracing::warn!(
            "no [[gateways]] configured: nobody may read the signed feed (GET /v1/feed answers 401); \
             enrol the gateways that pull this node"
        );
    }
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
