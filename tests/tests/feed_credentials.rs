//! A node's feed is closed to everyone but its enrolled gateways (DESIGN.md §4, issue 11), and
//! the gateway's puller opens it with its credentials: the bearer token the node issued it
//! (stored with the feed URL in the trust store) and, for a node that binds the gateway to a
//! TLS client certificate, that certificate — over real TLS, with throw-away CAs for the node's
//! server certificate and the gateways' client certificates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use rix_node::config::{BatchConfig, GatewayConfig, Role, TlsConfig, TokenConfig};
use rix_schema::SecrecyLevel;
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use rix_schema::signing::SigningKey;
use rix_tests::*;
use serde_json::{Value, json};

const FEED_TOKEN: &str = "feed-token-national-gateway-0001";

struct Issued {
    cert: X509,
    key: PKey<Private>,
}

/// A CA (no `issuer`) or a leaf signed by `issuer`: a server certificate for `localhost`, or
/// a client certificate.
fn certificate(cn: &str, issuer: Option<&Issued>, server: bool) -> Issued {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    if let Some(ca) = issuer {
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
        let mut eku = ExtendedKeyUsage::new();
        if server {
            eku.server_auth();
        } else {
            eku.client_auth();
        }
        b.append_extension(eku.build().unwrap()).unwrap();
        if server {
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .build(&b.x509v3_context(Some(&ca.cert), None))
                .unwrap();
            b.append_extension(san).unwrap();
        }
    } else {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    b.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())
        .unwrap();
    Issued {
        cert: b.build(),
        key,
    }
}

fn write(dir: &Path, name: &str, pem: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// A node over TLS that asks for client certificates under `gateways_ca` and enrols one
/// gateway bound to the certificate named `national-gateway`.
async fn closed_node(dir: &Path, tls: TlsConfig) -> (rix_node::RunningNode, String) {
    let node_id = unique("prov-530000");
    let key_path = dir.join("node.key.pem");
    rix_tests::write_private(
        &key_path,
        SigningKey::generate()
            .unwrap()
            .to_pkcs8_pem()
            .unwrap()
            .as_bytes(),
    );
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
        tokens: vec![TokenConfig {
            token: tokens::ADMIN.into(),
            role: Role::Admin,
            institution: None,
            name: None,
        }],
        gateways: vec![GatewayConfig {
            name: "national".into(),
            token: FEED_TOKEN.into(),
            require_client_cert: true,
            client_cert_subject: Some("national-gateway".into()),
            client_cert_sha256: None,
        }],
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
    let (_, health) = get_json(http, &format!("{gateway}/healthz")).await.unwrap();
    health["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["node_id"] == node_id)
        .and_then(|n| n["last_seq"].as_i64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_pulls_a_closed_feed_with_its_token_and_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path();
    let server_ca = certificate("rix e2e nodes CA", None, false);
    let server = certificate("localhost", Some(&server_ca), true);
    let gateways_ca = certificate("rix e2e gateways CA", None, false);
    let client = certificate("national-gateway", Some(&gateways_ca), false);
    let tls = TlsConfig {
        cert: write(pki, "node.crt", &server.cert.to_pem().unwrap()),
        key: write(
            pki,
            "node.key",
            &server.key.private_key_to_pem_pkcs8().unwrap(),
        ),
        client_ca: Some(write(
            pki,
            "gateways-ca.crt",
            &gateways_ca.cert.to_pem().unwrap(),
        )),
    };
    let server_ca_path = write(pki, "nodes-ca.crt", &server_ca.cert.to_pem().unwrap());
    let client_cert = write(pki, "gateway.crt", &client.cert.to_pem().unwrap());
    // The key as `openssl ecparam -genkey` writes it (SEC1, not PKCS#8): the puller takes it.
    let client_key = write(
        pki,
        "gateway.key",
        &client.key.ec_key().unwrap().private_key_to_pem().unwrap(),
    );

    let (node, node_id) = closed_node(dir.path(), tls).await;
    let port = node.addr.port();
    let feed_url = format!("https://localhost:{port}");
    let https = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&server_ca.cert.to_pem().unwrap()).unwrap(),
        ])
        .build()
        .unwrap();

    // Public records approved at the node.
    let generator = SampleGenerator::new(SampleConfig {
        node: NodeProfile::province("530000"),
        ..SampleConfig::default()
    });
    let docs: Vec<Value> = (0..)
        .map(|i| generator.achievement(i))
        .filter(|a| a.secrecy.level == SecrecyLevel::Public)
        .take(8)
        .map(|a| as_submission(serde_json::to_value(a).unwrap()))
        .collect();
    let (status, body) = call(
        &https,
        reqwest::Method::POST,
        &format!("{feed_url}/v1/achievements/batch"),
        tokens::ADMIN,
        Some(&Value::Array(docs)),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let ids: Vec<Value> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    let (status, body) = call(
        &https,
        reqwest::Method::POST,
        &format!("{feed_url}/v1/achievements/approve"),
        tokens::ADMIN,
        Some(&json!({ "ids": ids })),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
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
    poll_until(
        "the gateway without its certificate is refused",
        Duration::from_secs(30),
        || async {
            let refused = metric(
                &http,
                &without_cert_url,
                "rix_gateway_feed_pulls_total{result=\"unauthorized\"}",
            )
            .await;
            if refused >= 1.0 {
                Ok(())
            } else {
                Err(format!("{refused} refusals so far"))
            }
        },
    )
    .await;
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
    poll_until(
        "the gateway without its token is refused",
        Duration::from_secs(30),
        || async {
            let refused = metric(
                &http,
                &without_token_url,
                "rix_gateway_feed_pulls_total{result=\"unauthorized\"}",
            )
            .await;
            if refused >= 1.0 {
                Ok(())
            } else {
                Err(format!("{refused} refusals so far"))
            }
        },
    )
    .await;
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
        Duration::from_secs(60),
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
    assert!(
        metric(
            &http,
            &enrolled_url,
            "rix_gateway_batches_applied_total{transport=\"feed\"}"
        )
        .await
            > 0.0
    );
    enrolled.stop().await;
    node.stop().await;
}
