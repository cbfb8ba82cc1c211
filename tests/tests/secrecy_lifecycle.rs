//! A record's whole secrecy lifecycle across a real node and a real gateway over RabbitMQ:
//! approved as `secret`, it stays at the node — the gateway never holds it, on any read path,
//! not even in quarantine; declassified (an approved revision at `public` with the decision),
//! it reaches the gateway exactly once and is searchable; withdrawn at the node, it leaves
//! search, record detail and both exports, and the change feed reports its removal.

use rix_schema::SecrecyLevel;
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use rix_tests::tokens::ADMIN;
use rix_tests::*;
use serde_json::Value;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");
/// Public records registered beside the secret one.
const PUBLIC_RECORDS: usize = 4;

/// What every anonymous read path of the gateway says about one node's records now.
struct GatewayReads {
    /// `/v1/changes?node=`: every line.
    changes: Vec<Value>,
    /// `/v1/search?node=`: the unified ids of every hit.
    searched: Vec<String>,
    /// `/v1/export?format=csv&node=`.
    csv: String,
    /// `/v1/export?format=jsonl&node=`.
    jsonl: String,
    /// `/v1/stats?by=category&node=`: the total.
    stats_total: u64,
}

async fn reads(http: &reqwest::Client, gateway: &GatewayProcess, node_id: &str) -> GatewayReads {
    let changes = gateway_changes(http, &gateway.url, &format!("&node={node_id}"))
        .await
        .unwrap();
    let (total, items) = gateway_search(http, &gateway.url, &format!("node={node_id}"))
        .await
        .unwrap();
    let searched: Vec<String> = items
        .iter()
        .map(|i| i["unified_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(total as usize, searched.len(), "total counts every hit");
    let export = |format: &'static str| {
        let url = format!("{}/v1/export?format={format}&node={node_id}", gateway.url);
        async move {
            let (status, text) = get_text(http, &url).await.unwrap();
            assert_eq!(status, 200, "{text}");
            text
        }
    };
    let csv = export("csv").await;
    let jsonl = export("jsonl").await;
    let (status, stats) = get_json(
        http,
        &format!("{}/v1/stats?by=category&node={node_id}", gateway.url),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{stats}");
    GatewayReads {
        changes,
        searched,
        csv,
        jsonl,
        stats_total: stats["total"].as_u64().unwrap(),
    }
}

/// Waits until the gateway's change feed for `node_id` has `changes` changes and search finds
/// `searchable` entries of it (the index follows the change stream); then reads every path.
async fn wait_for_gateway(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    node_id: &str,
    changes: usize,
    searchable: usize,
) -> GatewayReads {
    wait_for_changes(http, gateway, &format!("&node={node_id}"), changes).await;
    wait_for_search(http, gateway, &format!("node={node_id}"), searchable as u64).await;
    let now = reads(http, gateway, node_id).await;
    assert_eq!(distinct_changes(&now.changes), changes);
    assert_eq!(now.searched.len(), searchable);
    now
}

/// The record detail's status and body (`/v1/records/{node}/{id}`, anonymous).
async fn detail(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    node_id: &str,
    id: &str,
) -> (u16, Value) {
    get_json(http, &format!("{}/v1/records/{node_id}/{id}", gateway.url))
        .await
        .unwrap()
}

/// The name of the catalogue entry the record `node_id/id` belongs to, read from the catalogue
/// itself (whoever may see it).
fn entry_name(gateway: &GatewayProcess, node_id: &str, id: &str) -> Option<String> {
    rix_gateway::catalogue::unified_id_of(
        &mut gateway.catalogue().conn().unwrap(),
        node_id,
        id,
        rix_schema::sensitivity::Entitlements::ALL,
    )
    .unwrap()
}

/// Asserts that no read path of the gateway mentions the record `id` titled `title`.
async fn assert_absent(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    node_id: &str,
    id: &str,
    title: &str,
    now: &GatewayReads,
    why: &str,
) {
    let (status, body) = detail(http, gateway, node_id, id).await;
    assert_eq!(status, 404, "{why}: record detail answers {body}");
    // The name of its entry, if the catalogue holds it at all (an internal record): no public
    // read path may give it.
    let global = entry_name(gateway, node_id, id).unwrap_or_else(|| format!("{node_id}/{id}"));
    assert!(
        !now.searched.contains(&global),
        "{why}: search finds {global}"
    );
    let (total, _) = gateway_search(
        http,
        &gateway.url,
        &query(&[("q", title), ("node", node_id)]),
    )
    .await
    .unwrap();
    assert_eq!(total, 0, "{why}: a search for its title finds it");
    for (name, export) in [("csv", &now.csv), ("jsonl", &now.jsonl)] {
        assert!(
            !export.contains(&global) && !export.contains(title),
            "{why}: the {name} export holds it:\n{export}"
        );
    }
}

/// `k=v&…`, percent-encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    reqwest::Url::parse_with_params("http://x/", pairs)
        .unwrap()
        .query()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_record_stays_home_until_declassified_and_leaves_every_read_path_when_withdrawn() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node_id = unique("prov-530000");
    let node = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec::new(&node_id, "530000").with_broker(amqp_url()),
    );
    let gateway = GatewayProcess::start(RIX, dir.path(), None, Some(amqp_url()), &[&node]);

    let generator = SampleGenerator::new(SampleConfig {
        node: NodeProfile::province("530000"),
        ..SampleConfig::default()
    });
    let public = public_achievements("530000", 0, PUBLIC_RECORDS);
    let mut secret = (0..200)
        .map(|i| generator.achievement(i))
        .find(|a| a.secrecy.level == SecrecyLevel::Secret)
        .expect("the generator draws secret results");
    let title = secret.title.clone();

    // 1. The secret result is approved among public ones (secret in the middle, so that the
    //    public ones after it prove the gateway has read past the point where it would be).
    let ids = register_approved(&http, &node.url, "achievements", public[..2].to_vec()).await;
    let secret_id = register_approved(
        &http,
        &node.url,
        "achievements",
        vec![as_submission(serde_json::to_value(&secret).unwrap())],
    )
    .await
    .remove(0);
    let ids = [
        ids,
        register_approved(&http, &node.url, "achievements", public[2..].to_vec()).await,
    ]
    .concat();
    // At the node: approved, with a registration number — and not in its log.
    let at_node = get_record(&http, &node.url, "achievements", &secret_id, ADMIN).await;
    assert_eq!(at_node["state"], "approved", "{at_node}");
    assert!(at_node["registration_no"].is_string(), "{at_node}");
    wait_node_published(&http, &node, PUBLIC_RECORDS as i64).await;

    let now = wait_for_gateway(&http, &gateway, &node_id, PUBLIC_RECORDS, PUBLIC_RECORDS).await;
    assert_absent(
        &http, &gateway, &node_id, &secret_id, &title, &now, "secret",
    )
    .await;
    assert!(
        now.changes.iter().all(|c| c["id"] != secret_id.as_str()),
        "the change feed never names it"
    );
    assert_eq!(now.stats_total, PUBLIC_RECORDS as u64);
    // Not even quarantined, nor raised as an alert: the node never let it out.
    for never in [
        "rix_gateway_entries_quarantined_total",
        "rix_gateway_classified_alerts_total",
    ] {
        assert_eq!(metric(&http, &gateway.url, never).await, 0.0, "{never}");
    }
    assert!(
        metric(&http, &gateway.url, "rix_gateway_entries_applied_total").await
            >= PUBLIC_RECORDS as f64,
        "the metrics are read from the live gateway"
    );
    assert!(
        catalogue_lacks(&gateway, &node_id, &secret_id),
        "the catalogue has no trace of it"
    );

    // 2. Declassified (降解密): a revision at public naming the decision, approved.
    secret.registration_no = at_node["registration_no"].as_str().map(str::to_owned);
    secret.registration_date = at_node["registration_date"].as_str().map(str::to_owned);
    assert!(generator.declassify(&mut secret, "云科密解〔2026〕12号"));
    let mut lowered = serde_json::to_value(&secret).unwrap();
    lowered
        .as_object_mut()
        .unwrap()
        .remove("confidential_fields");
    put_revision(&http, &node.url, "achievements", &secret_id, 1, &lowered).await;
    approve(&http, &node.url, "achievements", &secret_id).await;
    wait_node_published(&http, &node, PUBLIC_RECORDS as i64 + 1).await;

    let now = wait_for_gateway(
        &http,
        &gateway,
        &node_id,
        PUBLIC_RECORDS + 1,
        PUBLIC_RECORDS + 1,
    )
    .await;
    let global = entry_name(&gateway, &node_id, &secret_id).expect("declassified: catalogued");
    let its_changes: Vec<&Value> = now
        .changes
        .iter()
        .filter(|c| c["id"] == secret_id.as_str())
        .collect();
    assert_eq!(its_changes.len(), 1, "exactly one change: {its_changes:?}");
    assert_eq!(its_changes[0]["op"], "upsert");
    assert_eq!(its_changes[0]["version"], 2, "the declassified version");
    assert_eq!(its_changes[0]["record"]["secrecy"]["level"], "public");
    assert_eq!(
        now.searched.iter().filter(|u| **u == global).count(),
        1,
        "searchable, once"
    );
    let (total, hits) = gateway_search(
        &http,
        &gateway.url,
        &query(&[("q", title.as_str()), ("node", node_id.as_str())]),
    )
    .await
    .unwrap();
    assert!(
        total >= 1 && hits.iter().any(|h| h["unified_id"] == global.as_str()),
        "found by its title: {hits:?}"
    );
    let (status, body) = detail(&http, &gateway, &node_id, &secret_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["secrecy"]["level"], "public");
    assert_eq!(
        body["record"]["secrecy"]["decision"]["reference"],
        "云科密解〔2026〕12号"
    );
    assert_eq!(
        body["record"]["secrecy"]["decision"]["previous_level"],
        "secret"
    );
    assert_eq!(body["sources"].as_array().unwrap().len(), 1);
    assert_eq!(body["sources"][0]["version"], 2);
    assert_eq!(now.jsonl.matches(&format!("\"{global}\"")).count(), 1);
    assert_eq!(now.csv.matches(&global).count(), 1);
    assert_eq!(now.stats_total, PUBLIC_RECORDS as u64 + 1);

    // 3. Withdrawn at the node: gone from every read path; the change feed says so.
    withdraw(&http, &node.url, "achievements", &secret_id).await;
    wait_node_published(&http, &node, PUBLIC_RECORDS as i64 + 2).await;
    let now = wait_for_gateway(
        &http,
        &gateway,
        &node_id,
        PUBLIC_RECORDS + 2,
        PUBLIC_RECORDS,
    )
    .await;
    assert_absent(
        &http,
        &gateway,
        &node_id,
        &secret_id,
        &title,
        &now,
        "withdrawn",
    )
    .await;
    let its_changes: Vec<&Value> = now
        .changes
        .iter()
        .filter(|c| c["id"] == secret_id.as_str())
        .collect();
    assert_eq!(its_changes.len(), 2, "{its_changes:?}");
    assert!(
        its_changes
            .iter()
            .all(|c| c["op"] == "remove" && c.get("record").is_none()),
        "a follower replaying the feed ends without it: {its_changes:?}"
    );
    assert_eq!(its_changes[1]["version"], 3, "the withdrawal");
    assert_eq!(now.stats_total, PUBLIC_RECORDS as u64);
    // The public records are untouched, each searchable once.
    let mut expected: Vec<String> = ids
        .iter()
        .map(|id| entry_name(&gateway, &node_id, id).expect("catalogued"))
        .collect();
    expected.sort();
    let mut searched = now.searched.clone();
    searched.sort();
    assert_eq!(searched, expected);
}

/// True if the gateway's catalogue has no trace of `node_id/id`: no version, no current
/// record, no quarantined entry.
fn catalogue_lacks(gateway: &GatewayProcess, node_id: &str, id: &str) -> bool {
    use diesel::prelude::*;
    use rix_gateway::db::schema::{quarantine, record_versions, records};
    let db = gateway.catalogue();
    let mut conn = db.conn().unwrap();
    let versions: i64 = record_versions::table
        .filter(record_versions::node_id.eq(node_id))
        .filter(record_versions::id.eq(id))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    let current: i64 = records::table
        .filter(records::node_id.eq(node_id))
        .filter(records::id.eq(id))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    let quarantined: i64 = quarantine::table
        .filter(quarantine::node_id.eq(node_id))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    versions + current + quarantined == 0
}
