//! The gateway over its own TLS (`[tls]`, the listener both services share): readers reach the
//! read API over HTTPS, and a search pasted with raw Chinese in the URL answers as its
//! percent-encoded form does — the request head is mended before the HTTP parser sees it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod};
use rix_gateway::ingest::Transport;
use rix_runtime::serve::TlsConfig;
use rix_test_support::pki::{Issued, write_pem};
use serde_json::{Value, json};

use common::{Backend, FakeNode};

/// `GET target` over TLS exactly as written (no client-side encoding): status and JSON body.
fn raw_get(port: u16, ca: &std::path::Path, target: &str) -> (u16, Value) {
    let mut connector = SslConnector::builder(SslMethod::tls()).unwrap();
    connector.set_ca_file(ca).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = connector.build().connect("localhost", tcp).unwrap();
    write!(
        tls,
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head[9..12].parse().unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_search_over_the_gateways_own_tls_with_raw_chinese_in_the_url() {
    let gw = common::Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 17, 0.0);
    node.trust(&gw.db, None);
    let bytes = node.seal_edited(40, |_, r| {
        r["secrecy"] = json!({"level": "public"});
        r.as_object_mut().unwrap().remove("confidential_fields");
    });
    gw.ingest.ingest(&bytes, Transport::Amqp).unwrap();

    let ca = Issued::ca("rix test gateway CA");
    let server = Issued::server(&ca);
    let dir = gw.dir.path();
    let ca_path = write_pem(dir, "ca.crt", &ca.cert_pem());
    let config = rix_gateway::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        database_url: Some(gw.url.clone()),
        tls: Some(TlsConfig {
            cert: write_pem(dir, "gateway.crt", &server.cert_pem()),
            key: write_pem(dir, "gateway.key", &server.key_pem()),
            client_ca: None,
        }),
        ..Default::default()
    };
    let gateway = rix_gateway::serve::start(config).await.unwrap();
    assert!(gateway.url().starts_with("https://"), "{}", gateway.url());
    let port = gateway.addr.port();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca.cert_pem()).unwrap()])
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");

    // The index follows the catalogue: wait until every entry is found.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let first: Value = loop {
        let page: Value = http
            .get(format!("{base}/v1/search?limit=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["total"] == 40 {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let title = first["items"][0]["title"].as_str().unwrap().to_owned();
    let term: String = title.chars().take(2).collect();
    assert!(!term.is_ascii(), "a Chinese title: {title}");

    let encoded: Value = http
        .get(
            reqwest::Url::parse_with_params(
                &format!("{base}/v1/search"),
                [("q", term.as_str()), ("limit", "5")],
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(encoded["total"].as_u64().unwrap() >= 1, "{encoded}");
    let ca_for_raw = ca_path.clone();
    let raw_target = format!("/v1/search?q={term}&limit=5");
    let (status, raw) =
        tokio::task::spawn_blocking(move || raw_get(port, &ca_for_raw, &raw_target))
            .await
            .unwrap();
    assert_eq!(status, 200, "{raw}");
    assert_eq!(raw["total"], encoded["total"]);
    assert_eq!(raw["items"], encoded["items"]);

    // A space in a pasted URL is explained, not answered with an empty 400.
    let (status, problem) = tokio::task::spawn_blocking(move || {
        raw_get(port, &ca_path, &format!("/v1/search?q={term} {term}"))
    })
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["pointer"], "/target");
    gateway.stop().await;
}
