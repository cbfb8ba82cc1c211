//! Starting and stopping a gateway: catalogue, ingest, transports (RabbitMQ consumer, feed
//! puller), the search index's sync task, the snapshot schedule, and the HTTP listener (`/healthz`, `/metrics`, and the
//! read APIs of [`crate::api`] under the bounds of [`crate::limits`], which never apply to
//! `/healthz` or to ingest).
//!
//! The listener is the one both services share ([`rix_runtime::serve`]: TLS, request heads
//! checked before the HTTP parser, graceful stop). What is the gateway's own is the wiring and
//! its order: the catalogue opens (and migrates) before anything reads it, the transports start
//! before the listener so `/healthz` reports them from the first request, and a stop closes the
//! listener first, then lets the consumer ack what it has committed.
//!
//! What it may not touch: records. It moves no data itself; `/healthz` and `/metrics` count
//! what readers may not see, so they answer in full only to the operators' monitoring.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, web};
use prometheus::Registry;
use rix_runtime::serve::{Listener, RunningServer, ServeError};
use rix_schema::batch::BatchLimits;
use serde_json::json;
use tokio::sync::watch;

use crate::config::Config;
use crate::consume::{Consumer, ConsumerConfig};
use crate::db::{Db, StoreError};
use crate::ingest::{Ingest, IngestMetrics};
use crate::limits::Limits;
use crate::pull::Puller;
use crate::trust::TrustStore;

/// How often an idle search index looks for changes it was not told of: those another replica
/// applied to the shared catalogue (this process's own wake it at once).
const SEARCH_POLL: Duration = Duration::from_millis(200);

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The catalogue could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The search index could not be opened.
    #[error("search index: {0}")]
    Search(String),
    /// The puller could not be built.
    #[error("feed puller: {0}")]
    Pull(String),
    /// The `[limits]` section cannot be used.
    #[error(transparent)]
    Limits(#[from] crate::limits::LimitsError),
    /// The configuration cannot be used as it is.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The `[snapshots]` section cannot be used.
    #[error("snapshots: {0}")]
    Snapshots(String),
    /// The listener could not start (TLS material, address).
    #[error(transparent)]
    Listen(#[from] ServeError),
}

/// A started gateway.
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The catalogue.
    pub db: Db,
    limits: web::Data<Limits>,
    server: RunningServer,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl RunningGateway {
    /// Base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The bounds on heavy reads this gateway enforces (to hold slots: drains, tests).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Stops: the listener first, then the transports (the consumer finishes and acks what it
    /// holds; unacknowledged deliveries return to the queue).
    pub async fn stop(self) {
        self.server.stop().await;
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
    }

    /// Runs until SIGINT or SIGTERM, then stops.
    pub async fn run_until_signalled(self) {
        rix_runtime::serve::stop_requested().await;
        tracing::info!("stopping the gateway");
        self.stop().await;
    }
}

struct State {
    registry: Registry,
    metrics_token: Option<String>,
    health: crate::health::HealthSources,
}

/// Whether `req` comes from the operators' monitoring: the metrics token, or — when none is
/// configured — a loopback peer. Counters and chain positions count records a reader may not
/// see (internal, quarantined), so they are not for everyone.
fn from_monitoring(state: &State, req: &HttpRequest) -> bool {
    match &state.metrics_token {
        Some(token) => req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| {
                t.len() == token.len() && openssl::memcmp::eq(t.as_bytes(), token.as_bytes())
            }),
        None => req.peer_addr().is_some_and(|a| a.ip().is_loopback()),
    }
}

/// `/healthz`: `ok`, `degraded` or `unavailable` (503) for everyone (load balancers); the
/// whole [`crate::health::GatewayHealth`] — every node's position and refusals, the broker, the
/// search index, the problems in words — only for the operators' monitoring
/// ([`from_monitoring`]).
async fn healthz(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let detailed = from_monitoring(&state, &req);
    let sources = state.health.clone();
    match web::block(move || sources.check()).await {
        Ok(Ok(health)) if detailed => HttpResponse::Ok().json(health),
        Ok(Ok(health)) => {
            HttpResponse::Ok().json(json!({"status": health.status, "database": "ok"}))
        }
        Ok(Err(e)) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "database": e.to_string()})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "database": e.to_string()})),
    }
}

async fn metrics(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    if !from_monitoring(&state, &req) {
        let problem = rix_runtime::problem::Problem::new(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "/headers/authorization",
            "/metrics is for the operators' monitoring: send the gateway's metrics_token as a bearer token (or scrape from loopback when none is set)",
        );
        return problem
            .builder()
            .insert_header(("WWW-Authenticate", "Bearer"))
            .body(problem.body());
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(rix_runtime::metrics::render(&state.registry))
}

/// Starts a gateway and returns once it listens.
pub async fn start(config: Config) -> Result<RunningGateway, StartError> {
    config.check()?;
    let cfg = config.clone();
    let db = tokio::task::spawn_blocking(move || cfg.open_database())
        .await
        .map_err(|e| StartError::Store(StoreError::Task(e.to_string())))??;
    let registry = Registry::new();
    let ingest = Ingest::new(
        db.clone(),
        TrustStore::new(db.clone())?,
        BatchLimits::default(),
        IngestMetrics::new(&registry),
    )
    .with_max_future_skew(Duration::from_secs(config.max_clock_skew_secs));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    // One set of slots and buckets for every HTTP worker; idle clients' buckets are forgotten
    // every minute, so the map holds only clients active within their refill time.
    let limits = web::Data::new(Limits::new(&config.limits, &registry)?);
    {
        let limits = limits.clone();
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => limits.forget_idle(),
                    _ = stop.changed() => return,
                }
            }
        }));
    }

    let puller = Puller::new(ingest.clone(), config.pull.puller(), &registry)
        .map_err(|e| StartError::Pull(e.to_string()))?;
    let fill = puller.fill_handle();
    let feeds = puller.feed_health();
    tasks.push(tokio::spawn(puller.run(shutdown_rx.clone())));

    let mut broker_health = None;
    if let Some(url) = &config.amqp_url {
        let mut consumer_config = ConsumerConfig::new(url.clone());
        consumer_config.exchange = config.amqp_exchange.clone();
        consumer_config.queue = config.amqp_queue.clone();
        consumer_config.prefetch = config.amqp_prefetch;
        let consumer = Consumer::new(consumer_config, ingest.clone(), Some(fill), &registry);
        broker_health = Some(consumer.health());
        tasks.push(tokio::spawn(consumer.run(shutdown_rx.clone())));
    }

    // The search index: derived from the catalogue's change stream, one per replica, kept
    // up to date by a task that syncs as soon as this process applies a batch, and at least
    // every `SEARCH_POLL` for what other replicas apply.
    let search_dir = config.data_dir.join("search");
    // The access filter's seal (the catalogue's) seals the index's cursors too.
    let access = crate::access::AccessFilter::new(db.clone());
    let seal = {
        let access = access.clone();
        tokio::task::spawn_blocking(move || access.cursor_seal().cloned())
            .await
            .map_err(|e| StartError::Store(StoreError::Task(e.to_string())))??
    };
    let search = std::sync::Arc::new(
        tokio::task::spawn_blocking(move || {
            let mut index = crate::search::SearchIndex::open_or_rebuild(&search_dir)?;
            index.seal_cursors_with(seal);
            Ok::<_, crate::search::SearchError>(index)
        })
        .await
        .map_err(|e| StartError::Store(StoreError::Task(e.to_string())))?
        .map_err(|e| StartError::Search(e.to_string()))?,
    );
    search
        .register_metrics(&registry)
        .map_err(|e| StartError::Search(format!("metrics: {e}")))?;
    let state = web::Data::new(State {
        registry,
        metrics_token: config.metrics_token.clone(),
        health: crate::health::HealthSources {
            db: db.clone(),
            search: search.clone(),
            broker: broker_health,
            feeds,
            config: config.health,
        },
    });
    {
        // The whole catalogue's first page is counted before anyone asks for it.
        let search = search.clone();
        tokio::task::spawn_blocking(move || search.warm_tallies());
    }
    {
        let search = search.clone();
        let db = db.clone();
        let applied = ingest.applied_signal();
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let (s, d) = (search.clone(), db.clone());
                let found = match tokio::task::spawn_blocking(move || s.sync(&d)).await {
                    Ok(Ok(report)) => {
                        if report.commits > 0 {
                            // Counted ahead off the sync's path: freshness does not wait for it.
                            let s = search.clone();
                            tokio::task::spawn_blocking(move || s.warm_tallies());
                        }
                        report.changes > 0
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "search index sync failed; retrying");
                        false
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "search index sync task failed");
                        false
                    }
                };
                // Adaptive: a sync that found changes is followed at once by the next (what
                // arrived meanwhile, however much, in one more sync and one commit: the busier
                // the catalogue, the larger each sync); an idle index waits for this process
                // to apply a batch, or for the poll that sees what other replicas applied.
                if found {
                    if *stop.borrow() {
                        return;
                    }
                    continue;
                }
                tokio::select! {
                    _ = applied.notified() => {}
                    _ = tokio::time::sleep(SEARCH_POLL) => {}
                    _ = stop.changed() => return,
                }
            }
        }));
    }
    let read = web::Data::new(crate::api::ReadState {
        db: db.clone(),
        access,
        search,
    });
    let oai = web::Data::new(config.oai.clone());
    let snapshots = web::Data::new(
        crate::snapshot::Snapshots::of_config(&config)
            .map_err(|e| StartError::Snapshots(e.to_string()))?,
    );
    if config.snapshots.every_hours > 0.0 {
        tasks.push(tokio::spawn(crate::snapshot::run_schedule(
            (*snapshots.clone().into_inner()).clone(),
            db.clone(),
            Duration::from_secs_f64(config.snapshots.every_hours * 3600.0),
            shutdown_rx.clone(),
        )));
    }
    let limits_handle = limits.clone();
    let listener = Listener {
        tls: config.tls.clone(),
        ..Listener::new("gateway", config.listen)
    };
    let server = rix_runtime::serve::serve(&listener, move || {
        App::new()
            .app_data(state.clone())
            .app_data(read.clone())
            .app_data(limits.clone())
            .app_data(oai.clone())
            .app_data(snapshots.clone())
            .wrap(rix_runtime::problem::problem_errors())
            // Outermost: every answer, errors included, negotiated as gzip or brotli.
            .wrap(actix_web::middleware::Compress::default())
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics))
            .configure(crate::api::configure)
            .configure(crate::portal::configure)
            .configure(crate::oai::configure)
            .configure(crate::snapshot::configure)
    })?;
    let addr = server.addr;
    tracing::info!(%addr, backend = ?db.backend(), broker = config.amqp_url.is_some(), "gateway listening");
    Ok(RunningGateway {
        addr,
        db,
        limits: limits_handle,
        server,
        tasks,
        shutdown,
    })
}
