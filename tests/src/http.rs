//! HTTP as the tests speak it to nodes and gateways, polling, and Prometheus metrics.

use std::time::{Duration, Instant};

/// JSON over HTTP with a bearer token; returns status and body (`null` if not JSON).
pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}

/// GET `url` anonymously (no `Authorization` header at all: an empty bearer token is an
/// unknown token to the gateway); returns status and JSON body (`null` if not JSON).
pub async fn get_json(
    http: &reqwest::Client,
    url: &str,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let (status, text) = get_text(http, url).await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    ))
}

/// GET `url` anonymously; returns status and body text.
pub async fn get_text(http: &reqwest::Client, url: &str) -> Result<(u16, String), reqwest::Error> {
    let resp = http.get(url).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Calls `probe` every 100 ms until it returns `Ok`, and returns that; after `within`, panics
/// naming `what` and the last `Err` (what the probe saw instead).
pub async fn poll_until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not reached within {within:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A Prometheus value at `{base_url}/metrics`: with labels (`rix_gateway_batches_applied_total{transport="amqp"}`,
/// exactly as rendered) the one sample; without, the sum of every sample of that metric
/// whatever its labels. 0 if there is none.
pub async fn metric(http: &reqwest::Client, base_url: &str, name: &str) -> f64 {
    let (status, text) = get_text(http, &format!("{base_url}/metrics"))
        .await
        .expect("metrics answer");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let matches = if name.contains('{') {
                key == name
            } else {
                key.split('{').next() == Some(name)
            };
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Waits until the metric `name` at `base_url` (as [`metric`] reads it) is at least `min`;
/// returns its value.
pub async fn wait_for_metric(http: &reqwest::Client, base_url: &str, name: &str, min: f64) -> f64 {
    poll_until(&format!("{name} >= {min}"), crate::WITHIN, || async {
        let value = metric(http, base_url, name).await;
        if value >= min {
            Ok(value)
        } else {
            Err(format!("{value}"))
        }
    })
    .await
}
