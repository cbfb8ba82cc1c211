//! Rotating and revoking a node's key (issue 12), as operators do it, with real processes:
//!
//! - the drill: a node publishes under key A; its operator makes key B (`rix keygen`) and
//!   restarts the node on it; the node publishes more; `GET /v1/keys` lists both keys with the
//!   windows the node's chain gives them; `rix trust rotate` takes them over on the gateway
//!   (before and after the switch; a third run changes nothing); the gateway ingests
//!   everything without a refusal; and a gateway rebuilt from the feeds alone, on a fresh data
//!   dir with the same trust store content, holds the identical catalogue (export, change
//!   stream, trust store) — node on PostgreSQL, gateway on SQLite;
//! - `rix trust revoke --compromised-since T`: a rebuild keeps what the key signed before T and
//!   refuses what it signed after, saying why; a plain `rix trust revoke` refuses it all — node
//!   on SQLite, gateway on PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use diesel::{Connection, RunQueryDsl};
use rix_schema::batch::SignedBatch;
use rix_schema::signing::SigningKey;
use rix_tests::*;
use serde_json::Value;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

fn node_spec(node_id: &str, database_url: Option<String>) -> NodeSpec<'_> {
    NodeSpec::new(node_id, "530000")
        .with_database(database_url)
        .with_batches(4, 20)
}

fn gateway_spec(database_url: Option<String>) -> GatewaySpec {
    GatewaySpec {
        database_url,
        pull_interval_ms: Some(200),
        ..GatewaySpec::default()
    }
}

/// Every batch header of the node's feed, read as an enrolled gateway.
async fn feed_headers(
    http: &reqwest::Client,
    node: &NodeProcess,
) -> Vec<rix_schema::batch::BatchHeader> {
    let resp = http
        .get(format!("{}/v1/feed?after=0&limit=10000", node.url))
        .bearer_auth(tokens::feed_token(&node.node_id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text()
        .await
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<SignedBatch>(l).unwrap().header)
        .collect()
}

/// The gateway's change stream without the time each change was applied (the one thing a
/// rebuild cannot reproduce), once it holds `changes` changes.
async fn change_stream(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    changes: usize,
) -> Vec<Value> {
    // The feed shows each entry as it is now, page by page: a read that straddles the last
    // change can show an entry as it was before it. Two equal reads in a row are a settled
    // catalogue.
    let deadline = std::time::Instant::now() + WITHIN;
    let mut previous: Option<Vec<Value>> = None;
    loop {
        let lines: Vec<Value> = gateway_changes(http, &gateway.url, "")
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                c.as_object_mut().unwrap().remove("at");
                c
            })
            .collect();
        if lines.len() == changes && previous.as_ref() == Some(&lines) {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{changes} settled changes at the gateway; saw {}; gateway log tail:\n{}",
            lines.len(),
            gateway.log_tail()
        );
        previous = (lines.len() == changes).then_some(lines);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The catalogue's public export, line for line, once it holds `entries` entries (the export
/// reads the search index, which follows the change stream).
async fn export(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    entries: usize,
) -> BTreeSet<String> {
    poll_until(&format!("{entries} entries exported"), WITHIN, || async {
        let (status, text) = get_text(http, &format!("{}/v1/export?format=jsonl", gateway.url))
            .await
            .map_err(|e| e.to_string())?;
        let lines: BTreeSet<String> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if status == 200 && lines.len() == entries {
            Ok(lines)
        } else {
            Err(format!("{status}: {} lines", lines.len()))
        }
    })
    .await
}

/// The secret entry names are made with (DEPLOY.md §6): carried over, a rebuilt catalogue
/// names its entries as the lost one did. The operator does it with psql or sqlite3.
fn entry_name_key(database_url: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let query = "SELECT value FROM catalogue_meta WHERE name = 'entry_name_key'";
    let rows: Vec<Row> = if database_url.starts_with("postgres") {
        let mut c = diesel::PgConnection::establish(database_url).unwrap();
        diesel::sql_query(query).load(&mut c).unwrap()
    } else {
        let mut c = diesel::SqliteConnection::establish(database_url).unwrap();
        diesel::sql_query(query).load(&mut c).unwrap()
    };
    rows.into_iter().next().unwrap().value
}

fn set_entry_name_key(database_url: &str, key: &str) {
    let update = format!("UPDATE catalogue_meta SET value = '{key}' WHERE name = 'entry_name_key'");
    if database_url.starts_with("postgres") {
        let mut c = diesel::PgConnection::establish(database_url).unwrap();
        diesel::sql_query(update).execute(&mut c).unwrap();
    } else {
        let mut c = diesel::SqliteConnection::establish(database_url).unwrap();
        diesel::sql_query(update).execute(&mut c).unwrap();
    }
}

/// `rix trust revoke --compromised-since SINCE` of the node's key `key_id` on `gateway`;
/// returns what it said.
fn revoke_compromised(
    gateway: &GatewayProcess,
    node_id: &str,
    key_id: &str,
    since: &str,
) -> String {
    gateway.rix(&[
        "trust",
        "revoke",
        "--node",
        node_id,
        "--key-id",
        key_id,
        "--compromised-since",
        since,
    ])
}

/// The node's keys as `rix trust list --json` shows them: its windows and revocations.
fn trusted_keys(gateway: &GatewayProcess) -> Value {
    let listed: Value = serde_json::from_str(&gateway.rix(&["trust", "list", "--json"])).unwrap();
    listed[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotation_drill_keeps_every_batch_verifiable_and_a_rebuild_identical() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node_id = unique("prov-530000");
    let mut node = NodeProcess::start(
        RIX,
        dir.path(),
        node_spec(&node_id, Some(fresh_postgres_database())),
    );
    let key_a = node.key.clone();
    let gateway_dir = dir.path().join("gateway-1");
    std::fs::create_dir_all(&gateway_dir).unwrap();
    let mut gateway = GatewayProcess::start_with(RIX, &gateway_dir, gateway_spec(None), &[&node]);

    // Key A signs the first records.
    let first = register_approved(
        &http,
        &node.url,
        "achievements",
        public_achievements("530000", 0, 6),
    )
    .await;
    wait_node_published(&http, &node, 6).await;

    // The node's operator makes key B and restarts the node on it.
    let key_b_path = dir.path().join("node-2027.key.pem");
    let out = std::process::Command::new(RIX)
        .args(["keygen", "--out"])
        .arg(&key_b_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_b = SigningKey::from_pkcs8_pem(&std::fs::read(&key_b_path).unwrap()).unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("key id:      {}", key_b.key_id())),
        "{printed}"
    );
    node.stop();
    node.set_env("RIX_SIGNING_KEY", key_b_path.to_str().unwrap());
    node.restart();
    node.key = key_b.clone();

    // The gateway's operator takes the rotation over at once: B is trusted from when the
    // node loaded it, A stays open until B signs.
    let said = gateway.rix(&["trust", "rotate", "--node", &node_id]);
    assert!(
        said.contains(&format!("trusted {}", key_b.key_id())),
        "{said}"
    );
    assert!(said.contains("has signed no batch yet"), "{said}");

    // Key B signs the rest: more records, a revision's worth of new ones, a withdrawal.
    let second = register_approved(
        &http,
        &node.url,
        "achievements",
        public_achievements("530000", 6, 5),
    )
    .await;
    withdraw(&http, &node.url, "achievements", &first[0]).await;
    let logged = first.len() + second.len() + 1;
    wait_node_published(&http, &node, logged as i64).await;

    // The node lists both keys; the switch is the created_at of B's first batch.
    let headers = feed_headers(&http, &node).await;
    let switch = headers
        .iter()
        .find(|h| h.key_id == key_b.key_id())
        .expect("B signed");
    assert!(
        headers[..switch.batch_seq as usize - 1]
            .iter()
            .all(|h| h.key_id == key_a.key_id())
    );
    let (status, keys) = get_json(&http, &format!("{}/v1/keys", node.url))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let listed = keys["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{keys}");
    assert_eq!(listed[0]["key_id"], key_a.key_id());
    assert_eq!(listed[0]["valid_from"], headers[0].created_at.as_str());
    assert_eq!(listed[0]["valid_until"], switch.created_at.as_str());
    assert_eq!(listed[0]["first_batch_seq"], 1);
    assert_eq!(listed[1]["key_id"], key_b.key_id());
    assert_eq!(listed[1]["valid_from"], switch.created_at.as_str());
    assert_eq!(listed[1]["valid_until"], Value::Null);
    assert_eq!(listed[1]["first_batch_seq"], switch.batch_seq);

    // Now the exact switch time; then nothing left to do.
    let said = gateway.rix(&["trust", "rotate", "--node", &node_id]);
    assert!(
        said.contains(&format!("window of {}", key_a.key_id()))
            && said.contains(&format!(
                "-> {} .. {}",
                headers[0].created_at, switch.created_at
            )),
        "{said}"
    );
    let said = gateway.rix(&[
        "trust",
        "rotate",
        "--node",
        &node_id,
        "--node-url",
        &node.url,
    ]);
    assert!(said.contains("nothing to change"), "{said}");
    let report: Value =
        serde_json::from_str(&gateway.rix(&["trust", "rotate", "--node", &node_id, "--json"]))
            .unwrap();
    assert_eq!(report["steps"], serde_json::json!([]), "{report}");
    // Asked at a URL where no node answers, it changes nothing and says what it tried.
    let port = free_port();
    let out = gateway.rix_output(&[
        "trust",
        "rotate",
        "--node",
        &node_id,
        "--node-url",
        &format!("http://127.0.0.1:{port}"),
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains(&format!("GET http://127.0.0.1:{port}/v1/keys")),
        "{said}"
    );
    let trusted = trusted_keys(&gateway);
    let windows: Vec<(String, Value, Value)> = trusted["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key_id"].as_str().unwrap().to_owned(),
                k["valid_from"].clone(),
                k["valid_until"].clone(),
            )
        })
        .collect();
    assert_eq!(
        windows,
        [
            (
                key_a.key_id(),
                Value::from(headers[0].created_at.as_str()),
                Value::from(switch.created_at.as_str())
            ),
            (
                key_b.key_id(),
                Value::from(switch.created_at.as_str()),
                Value::Null
            ),
        ]
    );

    // The gateway took in everything, refusing nothing.
    let changes = change_stream(&http, &gateway, logged).await;
    // Every record but the withdrawn one.
    let catalogue = export(&http, &gateway, logged - 2).await;
    assert_eq!(
        metric(&http, &gateway.url, "rix_gateway_batches_refused_total").await,
        0.0
    );

    // Lost: the whole catalogue. A fresh data dir, the same trust store content (the node's
    // first key by `rix trust add`, the rest by `rix trust rotate`), the entry-name secret
    // carried over (DEPLOY.md §6); the feeds do the rest.
    let name_key = entry_name_key(&gateway.database_url);
    gateway.kill();
    let rebuilt_dir = dir.path().join("gateway-2");
    std::fs::create_dir_all(&rebuilt_dir).unwrap();
    let mut rebuilt = GatewayProcess::prepare(RIX, &rebuilt_dir, gateway_spec(None));
    rebuilt.trust_key(&node, key_a.verifying_key());
    set_entry_name_key(&rebuilt.database_url, &name_key);
    let said = rebuilt.rix(&["trust", "rotate", "--node", &node_id]);
    assert!(
        said.contains(&format!("trusted {}", key_b.key_id())),
        "{said}"
    );
    assert_eq!(
        trusted_keys(&rebuilt),
        trusted,
        "the same trust store content"
    );
    rebuilt.restart();

    assert_eq!(
        change_stream(&http, &rebuilt, logged).await,
        changes,
        "the same change stream"
    );
    assert_eq!(
        export(&http, &rebuilt, catalogue.len()).await,
        catalogue,
        "the same catalogue"
    );
    assert_eq!(
        metric(&http, &rebuilt.url, "rix_gateway_batches_refused_total").await,
        0.0
    );
    assert!(batches_applied(&http, &rebuilt.url, "feed").await >= headers.len() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compromised_since_keeps_the_keys_earlier_batches_through_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node_id = unique("prov-530000");
    let node = NodeProcess::start(RIX, dir.path(), node_spec(&node_id, None));
    let gateway_dir = dir.path().join("gateway-1");
    std::fs::create_dir_all(&gateway_dir).unwrap();
    let mut gateway = GatewayProcess::start_with(
        RIX,
        &gateway_dir,
        gateway_spec(Some(fresh_postgres_database())),
        &[&node],
    );

    let early = register_approved(
        &http,
        &node.url,
        "achievements",
        public_achievements("530000", 0, 4),
    )
    .await;
    wait_node_published(&http, &node, 4).await;
    // The key leaked after these: everything it signs from now on is suspect.
    let since = rix_gateway::catalogue::now();
    let late = register_approved(
        &http,
        &node.url,
        "achievements",
        public_achievements("530000", 4, 3),
    )
    .await;
    wait_node_published(&http, &node, 7).await;
    assert!(
        feed_headers(&http, &node).await.len() >= 2,
        "batches on both sides of T"
    );
    change_stream(&http, &gateway, 7).await;

    let key_id = node.key.key_id();
    let said = revoke_compromised(&gateway, &node_id, &key_id, &since);
    assert!(
        said.contains(&format!("compromised since {since}")),
        "{said}"
    );
    let listed = gateway.rix(&["trust", "list"]);
    assert!(
        listed.contains(&format!("COMPROMISED since {since}")),
        "{listed}"
    );
    let trusted = trusted_keys(&gateway);
    gateway.kill();

    // Rebuilt from the feed with the same trust store: the early records are back, the late
    // ones are refused with the reason.
    let rebuilt_dir = dir.path().join("gateway-2");
    std::fs::create_dir_all(&rebuilt_dir).unwrap();
    let mut rebuilt = GatewayProcess::prepare(
        RIX,
        &rebuilt_dir,
        gateway_spec(Some(fresh_postgres_database())),
    );
    rebuilt.trust(&node);
    revoke_compromised(&rebuilt, &node_id, &key_id, &since);
    assert_eq!(trusted_keys(&rebuilt), trusted);
    rebuilt.restart();
    let changes = change_stream(&http, &rebuilt, early.len()).await;
    let ids: BTreeSet<&str> = changes.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        early.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    assert!(late.iter().all(|id| !ids.contains(id.as_str())));
    let refusals = poll_until("the late batch refused", WITHIN, || async {
        #[derive(diesel::QueryableByName)]
        struct Refusal {
            #[diesel(sql_type = diesel::sql_types::Text)]
            reason: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        let mut c =
            diesel::PgConnection::establish(&rebuilt.database_url).map_err(|e| e.to_string())?;
        let rows: Vec<Refusal> = diesel::sql_query("SELECT reason, detail FROM refusals")
            .load(&mut c)
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            Err("no refusal yet".into())
        } else {
            Ok(rows)
        }
    })
    .await;
    assert!(
        refusals.iter().all(|r| r.reason == "key_compromised"),
        "{:?}",
        refusals.iter().map(|r| &r.detail).collect::<Vec<_>>()
    );
    assert!(
        refusals[0]
            .detail
            .contains(&format!("compromised since {since}")),
        "{}",
        refusals[0].detail
    );
    assert!(
        metric(
            &http,
            &rebuilt.url,
            "rix_gateway_batches_refused_total{reason=\"key_compromised\"}"
        )
        .await
            > 0.0
    );
    rebuilt.kill();

    // A plain revocation refuses the key's whole history: a rebuild gets nothing back.
    let revoked_dir = dir.path().join("gateway-3");
    std::fs::create_dir_all(&revoked_dir).unwrap();
    let mut revoked = GatewayProcess::prepare(RIX, &revoked_dir, gateway_spec(None));
    revoked.trust(&node);
    let said = revoked.rix(&["trust", "revoke", "--node", &node_id, "--key-id", &key_id]);
    assert!(said.contains("every batch it signed is refused"), "{said}");
    revoked.restart();
    poll_until("the first batch refused as key_revoked", WITHIN, || async {
        let n = metric(
            &http,
            &revoked.url,
            "rix_gateway_batches_refused_total{reason=\"key_revoked\"}",
        )
        .await;
        if n > 0.0 {
            Ok(())
        } else {
            Err(revoked.log_tail())
        }
    })
    .await;
    assert!(
        gateway_changes(&http, &revoked.url, "")
            .await
            .unwrap()
            .is_empty()
    );
}
