//! The listener over real TLS, and a graceful stop that publishes what was approved.

mod common;

use common::*;
use rix_node::config::TlsConfig;

/// A server certificate for `localhost` from a throw-away CA, written as PEM files; returns
/// the node's TLS config and the CA's certificate PEM (what a client must trust).
fn server_certificate(dir: &std::path::Path) -> (TlsConfig, Vec<u8>) {
    let ca = Issued::ca("rix test server CA");
    let server = Issued::server(&ca);
    let tls = TlsConfig {
        cert: dir.join("node.crt"),
        key: dir.join("node.tls.key"),
        client_ca: None,
    };
    std::fs::write(&tls.cert, server.cert_pem()).unwrap();
    std::fs::write(&tls.key, server.key_pem()).unwrap();
    (tls, ca.cert_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls_when_configured() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, ca_pem) = server_certificate(certs.path());
    let node = start_node(Backend::Sqlite, |c| c.tls = Some(tls)).await;
    assert_eq!(node.node.scheme, "https");
    let port = node.node.addr.port();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .build()
        .unwrap();
    let r = trusting
        .post(format!("https://localhost:{port}/v1/achievements"))
        .bearer_auth(SUBMITTER)
        .json(&fixture("achievement"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A client that does not trust the certificate is refused the handshake.
    let sceptical = reqwest::Client::new();
    assert!(
        sceptical
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
    // And plain HTTP is not spoken on the TLS port.
    assert!(
        reqwest::Client::new()
            .get(format!("http://localhost:{port}/healthz"))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );
    node.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_seals_and_publishes_what_was_approved() {
    let node_id = unique("stop");
    let queue = QueueTap::bind(&node_id).await;
    let node = start_node(Backend::Sqlite, |c| {
        c.node_id = node_id.clone();
        c.amqp_url = Some(amqp_url());
        // Without a stop, these approvals would wait ten minutes for company.
        c.batch.linger_ms = 600_000;
    })
    .await;
    for _ in 0..3 {
        node.register_approved("achievements", &fixture("achievement"))
            .await;
    }
    let health = node.get("/healthz", None).await;
    assert_eq!(health.body["log"]["sealed_seq"], 0, "nothing sealed yet");
    let key = node.key.clone();
    node.node.stop().await;
    let messages = queue
        .drain_until(3, std::time::Duration::from_secs(30))
        .await;
    let bodies: Vec<Vec<u8>> = messages.into_iter().map(|(_, b)| b).collect();
    let entries = verify_chain(&node_id, &key, &bodies);
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    queue.delete().await;
}
