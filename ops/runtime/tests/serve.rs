//! The shared listener over real sockets: what a person's curl sends (raw UTF-8 in the URL, a
//! space in it) reaches the application or gets a problem document, on plain HTTP and on TLS,
//! and a TLS client certificate verified against `client_ca` reaches the handlers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, web};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use rix_runtime::serve::{ClientCertificate, Listener, TlsConfig, serve};
use rix_test_support::pki::{Issued, write_pem};
use serde_json::{Value, json};

/// Echoes what the application saw: the decoded query, the body's length, the client
/// certificate's CN.
async fn echo(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let query: Vec<(String, String)> =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let cn = req
        .conn_data::<ClientCertificate>()
        .and_then(|c| c.subject_cn.clone());
    HttpResponse::Ok().json(json!({
        "path": req.path(),
        "query": query,
        "body": body.len(),
        "client_cn": cn,
        "secure": req.connection_info().scheme() == "https",
    }))
}

fn app() -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(rix_runtime::problem::problem_errors())
        .default_service(web::to(echo))
}

/// Every response on a connection after `sent` (the server closes it: `Connection: close` on
/// the last request, or a refusal).
fn exchange(stream: &mut (impl Read + Write), sent: &[u8]) -> Vec<(u16, Value)> {
    stream.write_all(sent).unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let mut responses = Vec::new();
    let mut rest = &all[..];
    while !rest.is_empty() {
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = std::str::from_utf8(&rest[..head_end])
            .unwrap()
            .to_ascii_lowercase();
        let status = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .expect("every response says its length");
        let body = &rest[head_end..head_end + length];
        responses.push((status, serde_json::from_slice(body).unwrap_or(Value::Null)));
        rest = &rest[head_end + length..];
    }
    responses
}

/// What a person's curl sends on one kept-alive connection: a POST with a body, a search with
/// raw Chinese in it, then a URL with a space in it.
fn pasted_requests() -> Vec<u8> {
    let body = "{\"q\": \"电池\"}";
    format!(
        "POST /v1/things HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\
         GET /v1/search?q=电池&region=530000 HTTP/1.1\r\nHost: h\r\n\r\n\
         GET /v1/search?q=固态 电池 HTTP/1.1\r\nHost: h\r\n\r\n",
        body.len()
    )
    .into_bytes()
}

fn check_pasted(responses: &[(u16, Value)], secure: bool) {
    assert_eq!(responses.len(), 3, "{responses:?}");
    let (status, post) = &responses[0];
    assert_eq!(*status, 200);
    assert_eq!(post["body"], "{\"q\": \"电池\"}".len());
    assert_eq!(post["secure"], secure);
    let (status, search) = &responses[1];
    assert_eq!(*status, 200, "raw UTF-8 in the URL is served: {search}");
    assert_eq!(search["path"], "/v1/search");
    assert_eq!(
        search["query"],
        json!([["q", "电池"], ["region", "530000"]])
    );
    let (status, problem) = &responses[2];
    assert_eq!(*status, 400);
    assert_eq!(problem["errors"][0]["pointer"], "/target");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("space") && detail.contains("--data-urlencode"),
        "{detail}"
    );
}

#[actix_web::test]
async fn plain_http_serves_raw_utf8_urls_and_explains_what_it_refuses() {
    let server = serve(&Listener::new("test", "127.0.0.1:0".parse().unwrap()), app).unwrap();
    assert_eq!(server.scheme, "http");
    let addr = server.addr;
    let responses = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        exchange(&mut stream, &pasted_requests())
    })
    .await
    .unwrap();
    check_pasted(&responses, false);

    // A head too large gets 431 as a problem document, not actix's empty one.
    let responses = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(140_000));
        exchange(&mut stream, huge.as_bytes())
    })
    .await
    .unwrap();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].0, 431);
    assert_eq!(responses[0].1["errors"][0]["pointer"], "/headers");
    server.stop().await;
}

fn tls_exchange(
    addr: SocketAddr,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    sent: &[u8],
) -> Vec<(u16, Value)> {
    let mut connector = SslConnector::builder(SslMethod::tls()).unwrap();
    connector.set_ca_file(ca).unwrap();
    connector.set_verify(SslVerifyMode::PEER);
    connector.set_alpn_protos(b"\x08http/1.1").unwrap();
    if let Some((cert, key)) = client {
        connector
            .set_certificate_file(cert, SslFiletype::PEM)
            .unwrap();
        connector
            .set_private_key_file(key, SslFiletype::PEM)
            .unwrap();
    }
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = connector.build().connect("localhost", tcp).unwrap();
    exchange(&mut stream, sent)
}

#[actix_web::test]
async fn tls_serves_the_same_and_hands_a_verified_client_certificate_to_the_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Issued::ca("throwaway test CA");
    let ca_path = write_pem(dir.path(), "ca.crt", &ca.cert_pem());
    let server_cert = Issued::server(&ca);
    let cert = write_pem(dir.path(), "server.crt", &server_cert.cert_pem());
    let key = write_pem(dir.path(), "server.key", &server_cert.key_pem());
    let gateway = Issued::client("national-gateway", &ca);
    let client_cert = write_pem(dir.path(), "client.crt", &gateway.cert_pem());
    let client_key = write_pem(dir.path(), "client.key", &gateway.key_pem());
    let server = serve(
        &Listener {
            tls: Some(TlsConfig {
                cert,
                key,
                client_ca: Some(ca_path.clone()),
            }),
            ..Listener::new("test", "127.0.0.1:0".parse().unwrap())
        },
        app,
    )
    .unwrap();
    assert_eq!(server.scheme, "https");
    let addr = server.addr;

    let responses = tokio::task::spawn_blocking({
        let ca_path = ca_path.clone();
        move || tls_exchange(addr, &ca_path, None, &pasted_requests())
    })
    .await
    .unwrap();
    check_pasted(&responses, true);
    assert_eq!(
        responses[0].1["client_cn"],
        Value::Null,
        "no certificate, none handed on"
    );

    let responses = tokio::task::spawn_blocking({
        let ca_path = ca_path.clone();
        move || {
            tls_exchange(
                addr,
                &ca_path,
                Some((&client_cert, &client_key)),
                b"GET /v1/feed?after=0 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(responses[0].0, 200);
    assert_eq!(responses[0].1["client_cn"], "national-gateway");

    // A certificate from another CA ends the handshake.
    let stray = Issued::client("national-gateway", &Issued::ca("throwaway test CA"));
    let stray_cert = write_pem(dir.path(), "stray.crt", &stray.cert_pem());
    let stray_key = write_pem(dir.path(), "stray.key", &stray.key_pem());
    let refused = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(|| {
            tls_exchange(
                addr,
                &ca_path,
                Some((&stray_cert, &stray_key)),
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            )
        })
    })
    .await
    .unwrap();
    assert!(
        refused.is_err() || refused.as_ref().unwrap().is_empty(),
        "an unverified client certificate is not served: {refused:?}"
    );
    server.stop().await;
}
