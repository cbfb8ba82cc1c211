//! What a gateway holds, as its public read APIs say — the change feed, search, `/healthz` —
//! and waiting until it holds what the nodes published.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::WITHIN;
use crate::http::{get_json, poll_until};
use crate::process::GatewayProcess;

/// Every line of the gateway's change feed (`GET /v1/changes`, anonymous), following the
/// cursor to the end; `filter` is added to the query (e.g. `&node=prov-530000`).
pub async fn gateway_changes(
    http: &reqwest::Client,
    gateway_url: &str,
    filter: &str,
) -> Result<Vec<Value>, String> {
    let mut lines = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let resp = http
            .get(format!(
                "{gateway_url}/v1/changes?after={after}&limit=10000{filter}"
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("/v1/changes answered {}", resp.status()));
        }
        let next = resp
            .headers()
            .get("X-Rix-Next-After")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or("/v1/changes without X-Rix-Next-After")?;
        let text = resp.text().await.map_err(|e| e.to_string())?;
        for line in text.lines().filter(|l| !l.is_empty()) {
            lines.push(serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?);
        }
        if next == after {
            return Ok(lines);
        }
        after = next;
    }
}

/// How many different changes `lines` of the change feed hold (a read that straddles a new
/// change may show one twice).
pub fn distinct_changes(lines: &[Value]) -> usize {
    lines
        .iter()
        .map(|c| c["cursor"].as_str().unwrap().to_owned())
        .collect::<BTreeSet<_>>()
        .len()
}

/// Waits until the gateway's change feed (`filter` as in [`gateway_changes`]) holds `n`
/// changes, and checks that it holds no more: nothing was applied twice. Returns its lines.
pub async fn wait_for_changes(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    filter: &str,
    n: usize,
) -> Vec<Value> {
    let lines = poll_until(
        &format!("the gateway's change feed{filter} holds {n} changes"),
        WITHIN,
        || async {
            let lines = gateway_changes(http, &gateway.url, filter).await?;
            let held = distinct_changes(&lines);
            if held >= n {
                Ok(lines)
            } else {
                Err(format!(
                    "{held} changes; gateway log:\n{}",
                    gateway.log_tail()
                ))
            }
        },
    )
    .await;
    assert_eq!(
        distinct_changes(&lines),
        n,
        "no change applied twice: {lines:#?}"
    );
    lines
}

/// Every hit of a gateway search (`GET /v1/search?QUERY`, anonymous), following
/// `next_cursor` to the end; with the first page's `total`. Pages of 100 unless `QUERY` sets
/// `limit` (the gateway refuses a parameter given twice).
pub async fn gateway_search(
    http: &reqwest::Client,
    gateway_url: &str,
    query: &str,
) -> Result<(u64, Vec<Value>), String> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut total = None;
    let limit = if query.split('&').any(|p| p.starts_with("limit=")) {
        ""
    } else {
        "limit=100&"
    };
    loop {
        let mut url = format!("{gateway_url}/v1/search?{limit}{query}");
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        let (status, body) = get_json(http, &url).await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("/v1/search answered {status}: {body}"));
        }
        total.get_or_insert(body["total"].as_u64().unwrap_or(0));
        items.extend(body["items"].as_array().cloned().unwrap_or_default());
        match body["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
            _ => return Ok((total.unwrap_or(0), items)),
        }
    }
}

/// Waits until a search (`query` as in [`gateway_search`]) finds `n` entries (the index
/// follows the change stream); returns its hits.
pub async fn wait_for_search(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    query: &str,
    n: u64,
) -> Vec<Value> {
    poll_until(
        &format!("a search for `{query}` finds {n} entries"),
        WITHIN,
        || async {
            match gateway_search(http, &gateway.url, query).await? {
                (total, hits) if total == n => Ok(hits),
                (total, _) => Err(format!("{total} found")),
            }
        },
    )
    .await
}

/// What the gateway's `/healthz` says of `node_id` (its entry in `nodes`: state, last seq…);
/// `None` while it lists no such node.
pub async fn gateway_node_health(
    http: &reqwest::Client,
    gateway_url: &str,
    node_id: &str,
) -> Result<Option<Value>, String> {
    let (_, health) = get_json(http, &format!("{gateway_url}/healthz"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(health["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node_id"] == node_id).cloned()))
}

/// How many batches the gateway at `gateway_url` applied that came by `transport` (`amqp`:
/// the broker, `feed`: a node's signed feed), from its metrics.
pub async fn batches_applied(http: &reqwest::Client, gateway_url: &str, transport: &str) -> f64 {
    crate::http::metric(
        http,
        gateway_url,
        &format!("rix_gateway_batches_applied_total{{transport=\"{transport}\"}}"),
    )
    .await
}
