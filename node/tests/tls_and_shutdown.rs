//! The listener over real TLS, and a graceful stop that publishes what was approved.

mod common;

use common::*;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Builder, X509NameBuilder};
use rix_node::config::TlsConfig;

/// A self-signed certificate for `localhost`, written as PEM files; returns the cert PEM.
fn self_signed(dir: &std::path::Path) -> (TlsConfig, Vec<u8>) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "localhost").unwrap();
    let name = name.build();
    let mut cert = X509Builder::new().unwrap();
    cert.set_version(2).unwrap();
    cert.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .build(&cert.x509v3_context(None, None))
        .unwrap();
    cert.append_extension(san).unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let cert_pem = cert.build().to_pem().unwrap();
    let tls = TlsConfig {
        cert: dir.join("node.crt"),
        key: dir.join("node.tls.key"),
        client_ca: None,
    };
    std::fs::write(&tls.cert, &cert_pem).unwrap();
    std::fs::write(&tls.key, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (tls, cert_pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls_when_configured() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, cert_pem) = self_signed(certs.path());
    let node = start_node(Backend::Sqlite, |c| c.tls = Some(tls)).await;
    assert_eq!(node.node.scheme, "https");
    let port = node.node.addr.port();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert_pem).unwrap())
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
    let node_id = unique_node_id("stop");
    let queue = TestQueue::bind(&node_id).await;
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
    let messages = queue.drain_until(3).await;
    let bodies: Vec<Vec<u8>> = messages.into_iter().map(|(_, b)| b).collect();
    let entries = verify_chain(&node_id, &key, &bodies);
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    queue.delete().await;
}
