//! A node's feed is closed to everyone but its enrolled gateways (DESIGN.md §4, issue 11), and
//! the gateway's puller opens it with its credentials: the bearer token the node issued it
//! (stored with the feed URL in the trust store) and, for a node that binds the gateway to a
//! TLS client certificate, that certificate — over real TLS, with throw-away CAs for the node's
//! server certificate and the gateways' client certificates.

use std::path::Path;

use rix_node::config::{BatchConfig, GatewayConfig, Role, TlsConfig, TokenConfig};
use rix_tests::pki::{Issued, write_pem};
use rix_tests::*;

const FEED_TOKEN: &str = "feed-token-national-gateway-0001";

/// A node over TLS that asks for client certificates under `gateways_ca` and enrols one
/// gateway bound to the certificate named `national-gateway`.
async fn closed_node(dir: &Path, tls: TlsConfig) -> (rix_node::RunningNode, String) {
    let node_id = unique("prov-530000");
    let key_path = dir.join("node.key.pem");
    signing_key_file(&key_path);
    let config = rix_node::Config {
        node_id: node_id.clone(),
        name: None,
        registration_issuer: "530000".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("node"),
        database_url: None,
        db_connections: 4,
        amqp_url: None,
        amqp_exchange: "rix.records".into(),
        signing_key: key_path,
        batch: BatchConfig {
            max_entries: 5,
            linger_ms: 5,
        },
        max_body_bytes: 8 * 1024 * 1024,
        tls: Some(tls),
        tokens: [
            (tokens::ADMIN, Role::Admin),
            (tokens::REVIEWER, Role::Reviewer),
        ]
        .into_iter()
        .map(|(token, role)| TokenConfig {
            token: token.into(),
            role,
            institution: None,
            name: None,
        })
        .collect(),
        gateways: vec![GatewayConfig {
            name: "national".into(),
            token: FEED_TOKEN.into(),
            require_client_cert: true,
            client_cert_subject: Some("national-gateway".into()),
            client_cert_sha256: None,
        }],
        idempotency_retention_days: rix_node::config::default_idempotency_retention_days(),
    };
    (rix_node::start(config).await.unwrap(), node_id)
}

/// A gateway (feed transport only) that trusts the node with `token` and pulls with `pull`.
async fn gateway(
    dir: &Path,
    node_id: &str,
    node_key: &rix_schema::signing::VerifyingKey,
    feed_url: &str,
    token: Option<&str>,
    pull: rix_gateway::config::PullConfig,
) -> rix_gateway::serve::RunningGateway {
    let config = rix_gateway::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        pull,
        ..rix_gateway::config::Config::default()
    };
    let db = config.open_database().unwrap();
    rix_gateway::trust::add(&db, node_id, None, Some(feed_url), node_key, None, None).unwrap();
    rix_gateway::trust::set_feed_token(&db, node_id, token).unwrap();
    rix_gateway::serve::start(config).await.unwrap()
}

/// The last seq the gateway holds for `node_id`, from its `/healthz`.
async fn held(http: &reqwest::Client, gateway: &str, node_id: &str) -> i64 {
    gateway_node_health(http, gateway, node_id)
        .await
        .unwrap()
        .and_then(|n| n["last_seq"].as_i64())
        .unwrap_or(0)
}

/// Waits until the gateway at `gateway` counts a feed pull refused as unauthorized.
async fn wait_refused(http: &reqwest::Client, gateway: &str) {
    wait_for_metric(
        http,
        gateway,
        "rix_gateway_feed_pulls_total{result=\"unauthorized\"}",
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_pulls_a_closed_feed_with_its_token_and_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path();
    let server_ca = Issued::ca("rix e2e nodes CA");
    let server = Issued::server(&server_ca);
    let gateways_ca = Issued::ca("rix e2e gateways CA");
    let client = Issued::client("national-gateway", &gateways_ca);
    let tls = TlsConfig {
        cert: write_pem(pki, "node.crt", &server.cert_pem()),
        key: write_pem(pki, "node.key", &server.key_pem()),
        client_ca: Some(write_pem(pki, "gateways-ca.crt", &gateways_ca.cert_pem())),
    };
    let server_ca_path = write_pem(pki, "nodes-ca.crt", &server_ca.cert_pem());
    let client_cert = write_pem(pki, "gateway.crt", &client.cert_pem());
    // The key as `openssl ecparam -genkey` writes it (SEC1, not PKCS#8): the puller takes it.
    let client_key = write_pem(pki, "gateway.key", &client.sec1_key_pem());

    let (node, node_id) = closed_node(dir.path(), tls).await;
    let port = node.addr.port();
    let feed_url = format!("https://localhost:{port}");
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server_ca.cert_pem()).unwrap()])
        .build()
        .unwrap();

    // Public records approved at the node.
    let docs = public_achievements("530000", 0, 8);
    let ids = register_approved(&https, &feed_url, "achievements", docs).await;
    let last_seq = ids.len() as i64;
    let node_key = {
        let (_, keys) = get_json(&https, &format!("{feed_url}/v1/keys"))
            .await
            .unwrap();
        rix_gateway::trust::parse_public_key(keys["keys"][0]["public_key"].as_str().unwrap())
            .unwrap()
    };

    let http = reqwest::Client::new();
    let pull = |cert: bool| rix_gateway::config::PullConfig {
        interval_ms: 200,
        request_timeout_ms: 5000,
        connect_timeout_ms: 2000,
        client_cert: cert.then(|| client_cert.clone()),
        client_key: cert.then(|| client_key.clone()),
        server_ca: Some(server_ca_path.clone()),
        ..rix_gateway::config::PullConfig::default()
    };

    // A gateway with the token but without the certificate the node binds it to: refused,
    // and it says why in its metrics; nothing reaches its catalogue.
    let without_cert = gateway(
        &dir.path().join("gw-no-cert"),
        &node_id,
        &node_key,
        &feed_url,
        Some(FEED_TOKEN),
        pull(false),
    )
    .await;
    let without_cert_url = without_cert.url();
    wait_refused(&http, &without_cert_url).await;
    assert_eq!(held(&http, &without_cert_url, &node_id).await, 0);
    without_cert.stop().await;

    // The certificate without the token: refused too.
    let without_token = gateway(
        &dir.path().join("gw-no-token"),
        &node_id,
        &node_key,
        &feed_url,
        None,
        pull(true),
    )
    .await;
    let without_token_url = without_token.url();
    wait_refused(&http, &without_token_url).await;
    assert_eq!(held(&http, &without_token_url, &node_id).await, 0);
    without_token.stop().await;

    // Token and certificate: the whole log arrives over the feed.
    let enrolled = gateway(
        &dir.path().join("gw"),
        &node_id,
        &node_key,
        &feed_url,
        Some(FEED_TOKEN),
        pull(true),
    )
    .await;
    let enrolled_url = enrolled.url();
    poll_until(
        "the enrolled gateway pulls the whole feed",
        WITHIN,
        || async {
            let seq = held(&http, &enrolled_url, &node_id).await;
            if seq == last_seq {
                Ok(())
            } else {
                Err(format!("holds seq {seq} of {last_seq}"))
            }
        },
    )
    .await;
    assert!(batches_applied(&http, &enrolled_url, "feed").await > 0.0);
    enrolled.stop().await;
    node.stop().await;
}
