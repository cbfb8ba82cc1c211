//! The signed feed is closed (DESIGN.md §4): it carries internal records and every commercial
//! and personal value, so only enrolled gateways read it — by bearer token, and a gateway bound
//! to a TLS client certificate only over TLS with that certificate. Real TLS throughout: a
//! throw-away CA for the node's server certificate, one for the gateways' client certificates,
//! and a rogue one.

mod common;

use common::*;
use openssl::hash::MessageDigest;
use rix_node::config::{GatewayConfig, TlsConfig};
use serde_json::Value;

/// The identity reqwest presents as a TLS client certificate: `issued`.
fn client_identity(issued: &Issued) -> reqwest::Identity {
    reqwest::Identity::from_pkcs8_pem(&issued.cert_pem(), &issued.key_pem()).unwrap()
}

/// Registers and approves an **internal** achievement carrying personal and commercial values;
/// returns its id once it is on the feed.
async fn internal_record_on_the_feed(node: &TestNode) -> String {
    let doc = with_level(fixture("achievement"), "internal");
    let id = node.register_approved("achievements", &doc).await;
    node.wait_for_seq(1).await;
    id
}

/// Personal and commercial values of the fixture, and its title.
const SECRETS: [&str; 4] = [
    "53010219800101001X",
    "13800000000",
    "独占许可五年",
    "面向新能源汽车的高安全固态锂电池",
];

fn assert_reveals_nothing(reply: &Reply, id: &str) {
    let text = String::from_utf8_lossy(&reply.bytes);
    assert!(!text.contains(id), "the refusal names the record: {text}");
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "the refusal carries {secret}: {text}"
        );
    }
    assert_eq!(
        reply.headers["content-type"], "application/problem+json",
        "{text}"
    );
    assert!(
        reply.body["errors"][0]["pointer"] == "/headers/authorization",
        "{text}"
    );
}

async fn anonymous_reader_cannot_read_the_feed(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let id = internal_record_on_the_feed(&node).await;

    // Anonymous, and with a token the node never issued: 401, nothing of the log.
    for token in [None, Some("not-a-token-of-this-node-at-all")] {
        let r = node.get("/v1/feed?after=0&limit=1000", token).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        assert_reveals_nothing(&r, &id);
    }
    // Staff tokens work the registration API, not the feed: 403.
    for token in [SUBMITTER, REVIEWER, ADMIN] {
        let r = node.get("/v1/feed?after=0", Some(token)).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_reveals_nothing(&r, &id);
    }
    // And the gateway's feed token opens the feed, and nothing else.
    let r = node
        .get("/v1/feed?after=0", Some(node.feed_token.as_str()))
        .await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.bytes).contains(&id));
    let r = node
        .get(
            &format!("/v1/achievements/{id}"),
            Some(node.feed_token.as_str()),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = node
        .get("/v1/achievements", Some(node.feed_token.as_str()))
        .await;
    assert_eq!(r.status, 401, "{}", r.body);

    // The keys that verify the feed stay public.
    let keys = node.get("/v1/keys", None).await;
    assert_eq!(keys.status, 200);
    assert_eq!(keys.body["keys"][0]["key_id"], node.key.key_id());
    // The OpenAPI document says the feed needs a token.
    let doc = node.get("/openapi.json", None).await.body;
    let feed = &doc["paths"]["/v1/feed"]["get"];
    assert!(feed["security"].is_array(), "{feed}");
    assert!(feed["responses"].get("401").is_some(), "{feed}");
    node.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reader_cannot_read_the_feed_on_sqlite() {
    anonymous_reader_cannot_read_the_feed(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reader_cannot_read_the_feed_on_postgres() {
    anonymous_reader_cannot_read_the_feed(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_gateways_serves_its_feed_to_nobody() {
    let node = start_node(Backend::Sqlite, |c| c.gateways.clear()).await;
    let id = internal_record_on_the_feed(&node).await;
    for token in [None, Some(node.feed_token.as_str()), Some(ADMIN)] {
        let r = node.get("/v1/feed", token).await;
        assert!(r.status == 401 || r.status == 403, "{}", r.body);
        assert_reveals_nothing(&r, &id);
    }
    node.node.stop().await;
}

const BOUND: &str = "gateway-token-bound-to-cert-01";
const PINNED: &str = "gateway-token-pinned-cert-0001";

/// Everything a TLS node with client certificates needs, and the clients' material.
struct Pki {
    _dir: tempfile::TempDir,
    tls: TlsConfig,
    server_ca: Issued,
    gateway: Issued,
    other_gateway: Issued,
    rogue: Issued,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Issued::ca("rix test server CA");
    let server = Issued::server(&server_ca);
    let gateways_ca = Issued::ca("rix test gateways CA");
    let gateway = Issued::client("national-gateway", &gateways_ca);
    let other_gateway = Issued::client("provincial-gateway", &gateways_ca);
    // Same subject as the enrolled gateway, but from a CA the node does not trust.
    let rogue_ca = Issued::ca("rix test gateways CA");
    let rogue = Issued::client("national-gateway", &rogue_ca);
    let tls = TlsConfig {
        cert: dir.path().join("node.crt"),
        key: dir.path().join("node.key"),
        client_ca: Some(dir.path().join("gateways-ca.crt")),
    };
    std::fs::write(&tls.cert, server.cert_pem()).unwrap();
    std::fs::write(&tls.key, server.key_pem()).unwrap();
    std::fs::write(tls.client_ca.as_ref().unwrap(), gateways_ca.cert_pem()).unwrap();
    Pki {
        _dir: dir,
        tls,
        server_ca,
        gateway,
        other_gateway,
        rogue,
    }
}

fn client(pki: &Pki, identity: Option<&Issued>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pki.server_ca.cert_pem()).unwrap()]);
    if let Some(id) = identity {
        b = b.identity(client_identity(id));
    }
    b.build().unwrap()
}

/// GET the feed: `Ok(status, body)`, or `Err` when the TLS handshake or connection failed.
async fn get_feed(
    client: &reqwest::Client,
    port: u16,
    token: Option<&str>,
) -> Result<(u16, String), reqwest::Error> {
    let mut req = client.get(format!("https://localhost:{port}/v1/feed?after=0"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_bound_to_its_client_certificate_reads_the_feed_only_with_it() {
    let pki = pki();
    let fingerprint = hex::encode(pki.gateway.cert.digest(MessageDigest::sha256()).unwrap());
    let tls = pki.tls.clone();
    let node = start_node(Backend::Sqlite, move |c| {
        c.tls = Some(tls);
        // `national` (the harness's) keeps bearer-only access; these two need the certificate.
        c.gateways.push(GatewayConfig {
            name: "bound".into(),
            token: BOUND.into(),
            require_client_cert: true,
            client_cert_subject: Some("national-gateway".into()),
            client_cert_sha256: None,
        });
        c.gateways.push(GatewayConfig {
            name: "pinned".into(),
            token: PINNED.into(),
            require_client_cert: true,
            client_cert_subject: None,
            client_cert_sha256: Some(fingerprint),
        });
    })
    .await;
    assert_eq!(node.node.scheme, "https");
    let port = node.node.addr.port();

    // Institutions use the same port without a client certificate.
    let plain = client(&pki, None);
    let r = plain
        .post(format!("https://localhost:{port}/v1/achievements"))
        .bearer_auth(SUBMITTER)
        .json(&with_level(fixture("achievement"), "internal"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = plain
        .post(format!(
            "https://localhost:{port}/v1/achievements/{id}/approve"
        ))
        .bearer_auth(REVIEWER)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut sealed = 0;
    for _ in 0..500 {
        let health: Value = plain
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sealed = health["log"]["sealed_seq"].as_i64().unwrap_or(0);
        if sealed >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sealed, 1, "the approved record never reached the feed");

    // The bound gateway's bearer token alone, over TLS without a certificate: refused.
    let (status, body) = get_feed(&plain, port, Some(BOUND)).await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(
        !body.contains(&id) && body.contains("client certificate"),
        "{body}"
    );
    // A certificate with the enrolled subject from a CA the node does not trust: the
    // handshake is refused, nothing is served.
    let rogue = client(&pki, Some(&pki.rogue));
    match get_feed(&rogue, port, Some(BOUND)).await {
        Err(_) => {}
        Ok((status, body)) => panic!("a rogue certificate got HTTP {status}: {body}"),
    }
    // A certificate from the right CA, but not the gateway's: its subject or its fingerprint
    // does not match.
    let other = client(&pki, Some(&pki.other_gateway));
    for token in [BOUND, PINNED] {
        let (status, body) = get_feed(&other, port, Some(token)).await.unwrap();
        assert_eq!(status, 403, "{body}");
        assert!(!body.contains(&id), "{body}");
    }
    // The right certificate without a token: the certificate alone is not a credential.
    let right = client(&pki, Some(&pki.gateway));
    let (status, body) = get_feed(&right, port, None).await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains(&id), "{body}");
    let (status, _) = get_feed(&right, port, Some(SUBMITTER)).await.unwrap();
    assert_eq!(status, 403);
    // The right certificate and the right token: the feed.
    for token in [BOUND, PINNED] {
        let (status, body) = get_feed(&right, port, Some(token)).await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&id), "{body}");
    }
    // A gateway enrolled without a certificate requirement reads with its token alone.
    let (status, body) = get_feed(&plain, port, Some(node.feed_token.as_str()))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    node.node.stop().await;
}
