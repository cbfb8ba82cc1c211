//! A node's registration API as institutions and reviewers use it, sample records to register,
//! and waiting for the node's log. Functions take the node's base URL, so that they serve a
//! node process, an in-process node and a spawned task alike.

use reqwest::Method;
use rix_schema::SecrecyLevel;
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use rix_test_support::fixtures::as_submission;
use rix_test_support::tokens;
use serde_json::{Value, json};

use crate::WITHIN;
use crate::http::{call, get_json, poll_until};
use crate::process::NodeProcess;

/// `n` generated public achievements of the province `province` (its region code), from the
/// `from`-th draw on, as an institution submits them.
pub fn public_achievements(province: &str, from: u64, n: usize) -> Vec<Value> {
    let generator = SampleGenerator::new(SampleConfig {
        node: NodeProfile::province(province),
        ..SampleConfig::default()
    });
    (from..)
        .map(|i| generator.achievement(i))
        .filter(|a| a.secrecy.level == SecrecyLevel::Public)
        .take(n)
        .map(|a| as_submission(serde_json::to_value(a).unwrap()))
        .collect()
}

/// Submits `docs` with `token` in one batch (`POST /v1/{collection}/batch`); returns the new
/// ids in order.
pub async fn submit_batch(
    http: &reqwest::Client,
    node_url: &str,
    token: &str,
    collection: &str,
    docs: Vec<Value>,
) -> Vec<String> {
    let (status, body) = call(
        http,
        Method::POST,
        &format!("{node_url}/v1/{collection}/batch"),
        token,
        Some(&Value::Array(docs)),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Submits `docs` as the admin (`POST /v1/{collection}/batch`) and approves them all as the
/// reviewer (bulk `POST /v1/{collection}/approve`); returns the new ids in order.
pub async fn register_approved(
    http: &reqwest::Client,
    node_url: &str,
    collection: &str,
    docs: Vec<Value>,
) -> Vec<String> {
    let ids = submit_batch(http, node_url, tokens::ADMIN, collection, docs).await;
    let (status, body) = call(
        http,
        Method::POST,
        &format!("{node_url}/v1/{collection}/approve"),
        tokens::REVIEWER,
        Some(&json!({ "ids": ids })),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    ids
}

/// Approves one record as the reviewer; returns the answer (`Err`: the node did not answer,
/// e.g. because a test killed it).
pub async fn try_approve(
    http: &reqwest::Client,
    node_url: &str,
    collection: &str,
    id: &str,
) -> Result<(u16, Value), reqwest::Error> {
    call(
        http,
        Method::POST,
        &format!("{node_url}/v1/{collection}/{id}/approve"),
        tokens::REVIEWER,
        Some(&json!({})),
    )
    .await
}

/// Approves one record as the reviewer.
pub async fn approve(http: &reqwest::Client, node_url: &str, collection: &str, id: &str) {
    let (status, body) = try_approve(http, node_url, collection, id).await.unwrap();
    assert_eq!(status, 200, "approve {id}: {body}");
}

/// Withdraws one record as the admin.
pub async fn withdraw(http: &reqwest::Client, node_url: &str, collection: &str, id: &str) {
    let (status, body) = call(
        http,
        Method::DELETE,
        &format!("{node_url}/v1/{collection}/{id}"),
        tokens::ADMIN,
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "withdraw {id}: {body}");
}

/// One record as `token` reads it (`GET /v1/{collection}/{id}`: state, record, registration
/// number…).
pub async fn get_record(
    http: &reqwest::Client,
    node_url: &str,
    collection: &str,
    id: &str,
    token: &str,
) -> Value {
    let (status, body) = call(
        http,
        Method::GET,
        &format!("{node_url}/v1/{collection}/{id}"),
        token,
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "get {id}: {body}");
    body
}

/// Revises one record as the admin: `record` as the version after `from`
/// (`PUT` with `If-Match: "{from}"`); it then waits for review.
pub async fn put_revision(
    http: &reqwest::Client,
    node_url: &str,
    collection: &str,
    id: &str,
    from: i64,
    record: &Value,
) {
    let resp = http
        .put(format!("{node_url}/v1/{collection}/{id}"))
        .bearer_auth(tokens::ADMIN)
        .header("If-Match", format!("\"{from}\""))
        .json(record)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// Approves, one by one, those of `ids` still waiting for review; returns how many that was.
pub async fn approve_waiting(
    http: &reqwest::Client,
    node_url: &str,
    collection: &str,
    ids: &[String],
) -> usize {
    let mut approved = 0;
    for id in ids {
        let record = get_record(http, node_url, collection, id, tokens::REVIEWER).await;
        if record["state"] == "submitted" {
            approve(http, node_url, collection, id).await;
            approved += 1;
        }
    }
    approved
}

/// Waits until `node`'s log ends at `last_seq` with nothing left in its outbox (everything
/// approved is sealed, and confirmed by the broker if it has one).
pub async fn wait_node_published(http: &reqwest::Client, node: &NodeProcess, last_seq: i64) {
    wait_node_log(http, node, last_seq, true).await
}

/// Waits until `node`'s log ends at `last_seq`; with `confirmed`, also until its outbox is
/// empty (a node whose broker is unreachable keeps its entries there, serving them on its
/// feed only).
pub async fn wait_node_log(
    http: &reqwest::Client,
    node: &NodeProcess,
    last_seq: i64,
    confirmed: bool,
) {
    let health_url = format!("{}/healthz", node.url);
    poll_until(
        &format!("node {} logs up to seq {last_seq}", node.node_id),
        WITHIN,
        || async {
            let (_, h) = get_json(http, &health_url)
                .await
                .map_err(|e| e.to_string())?;
            if h["log"]["last_seq"] == last_seq && (!confirmed || h["log"]["outbox_depth"] == 0) {
                Ok(())
            } else {
                Err(h.to_string())
            }
        },
    )
    .await
}
