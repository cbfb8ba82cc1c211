//! Starting a service's HTTP listener, written once: plain or TLS (with client certificates),
//! every HTTP/1 request head checked before actix-http reads it, a graceful stop, and the
//! signals that ask for one.
//!
//! Built from actix-server and actix-http's parts rather than with `actix_web::HttpServer`
//! because `HttpServer` hands the connection straight to actix-http: there is no place to put
//! the [`head::HeadGuard`] in between, and without it a URL with raw Chinese in it gets an
//! empty 400 that no middleware can reach. Everything else is as `HttpServer` sets it up
//! (the same timeouts, backlog, ALPN, TLS handshake limit, graceful shutdown of kept-alive
//! connections), so the services behave as they did.
//!
//! What it may not touch: routes, state and middleware. Each service builds its own
//! `actix_web::App`; this module only serves it.

pub mod head;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, Protocol, Request, Response};
use actix_server::{GracefulShutdownSignal, ServerHandle};
use actix_service::{
    IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt as _, fn_service, map_config,
};
use actix_tls::accept::TlsError;
use actix_tls::accept::openssl::{Acceptor, TlsStream};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Extensions};
use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite};

pub use head::HeadGuard;
pub use tls::{ClientCertificate, TlsConfig};

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS material could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where and how a service listens.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The service's name (`node`, `gateway`): the listener's name in logs.
    pub service: &'static str,
    /// The address to bind (port 0: any free port; [`RunningServer::addr`] says which).
    pub addr: SocketAddr,
    /// TLS, when the service terminates it itself.
    pub tls: Option<TlsConfig>,
    /// How long a stop waits for requests in flight.
    pub shutdown_timeout: Duration,
}

impl Listener {
    /// A plain listener on `addr` that gives requests in flight 30 s to finish at a stop.
    pub fn new(service: &'static str, addr: SocketAddr) -> Listener {
        Listener {
            service,
            addr,
            tls: None,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// A listening server.
pub struct RunningServer {
    /// Where it listens (the bound port when asked for port 0).
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The base URL, e.g. `https://127.0.0.1:8081`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops listening and lets requests in flight finish (within the shutdown timeout).
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// Serves the application `app` makes (one per worker thread) on `listener`. Call it inside a
/// Tokio runtime; the server runs on actix's worker threads until [`RunningServer::stop`].
pub fn serve<F, I, S, B>(listener: &Listener, app: F) -> Result<RunningServer, ServeError>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let bind_error = |source| ServeError::Bind {
        addr: listener.addr,
        source,
    };
    let acceptor = match &listener.tls {
        Some(tls) => Some(tls::acceptor(tls, listener.service)?),
        None => None,
    };
    // Bound as HttpServer binds (address reuse, a backlog of 1,024).
    let socket = bind(listener.addr).map_err(bind_error)?;
    let addr = socket.local_addr().map_err(bind_error)?;
    let builder = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(listener.shutdown_timeout.as_secs());
    let graceful = builder.graceful_shutdown_signal();
    let name = format!("rix-{}-{addr}", listener.service);
    let (builder, scheme) = match acceptor {
        None => (
            builder.listen(name, socket, move || {
                fn_service(|io: TcpStream| async move {
                    let peer = io.peer_addr().ok();
                    Ok((HeadGuard::http1(io), Protocol::Http1, peer))
                })
                .and_then(http_service(
                    app.clone(),
                    addr,
                    false,
                    graceful.clone(),
                    None,
                ))
            }),
            "http",
        ),
        Some(acceptor) => (
            builder.listen(name, socket, move || {
                Acceptor::new(acceptor.clone())
                    .map_init_err(|()| ())
                    .map_err(TlsError::into_service_error)
                    .map(|io: TlsStream<TcpStream>| {
                        let peer = io.get_ref().peer_addr().ok();
                        // HTTP/2 frames are not HTTP/1 heads: the guard leaves them alone.
                        if io.ssl().selected_alpn_protocol() == Some(b"h2") {
                            (HeadGuard::pass_through(io), Protocol::Http2, peer)
                        } else {
                            (HeadGuard::http1(io), Protocol::Http1, peer)
                        }
                    })
                    .and_then(
                        http_service(
                            app.clone(),
                            addr,
                            true,
                            graceful.clone(),
                            Some(client_certificate),
                        )
                        .map_err(TlsError::Service),
                    )
            }),
            "https",
        ),
    };
    let server = builder.map_err(bind_error)?.run();
    let handle = server.handle();
    Ok(RunningServer {
        addr,
        scheme,
        handle,
        task: tokio::spawn(server),
    })
}

/// One worker's HTTP service over connections of type `T`, set up as actix-web's HttpServer
/// sets it up.
fn http_service<T, F, I, S, B>(
    app: F,
    addr: SocketAddr,
    secure: bool,
    graceful: GracefulShutdownSignal,
    on_connect: Option<fn(&HeadGuard<T>, &mut Extensions)>,
) -> impl ServiceFactory<
    (HeadGuard<T>, Protocol, Option<SocketAddr>),
    Config = (),
    Response = (),
    Error = DispatchError,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    F: Fn() -> I,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    // HttpServer's own defaults, where the builder's differ: a connection being shut down gets
    // a second to drain before it is dropped (the builder waits without end).
    let mut builder = HttpService::build()
        .graceful_shutdown_signal(move || {
            let graceful = graceful.clone();
            async move { graceful.notified().await }
        })
        .keep_alive(actix_http::KeepAlive::default())
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .local_addr(addr);
    if let Some(on_connect) = on_connect {
        builder = builder.on_connect_ext(on_connect);
    }
    let app = app().into_factory().map_err(|e| e.into().error_response());
    builder.finish(map_config(app, move |()| {
        // What HttpServer passes. Its constructor is crate-private; this is the one actix-web
        // exports for servers assembled from parts (actix-test uses it), and the workspace
        // pins actix-web's version.
        AppConfig::__priv_test_new(secure, addr.to_string(), addr)
    }))
}

/// Hands a verified client certificate to the handlers (`conn_data::<ClientCertificate>()`).
fn client_certificate(io: &HeadGuard<TlsStream<TcpStream>>, data: &mut Extensions) {
    if let Some(cert) = ClientCertificate::of(io.get_ref().ssl()) {
        data.insert(cert);
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Waits for SIGINT or SIGTERM: the signals an operator or systemd stops a service with.
pub async fn stop_requested() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        // No SIGTERM handler to be had: Ctrl-C still stops it.
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
