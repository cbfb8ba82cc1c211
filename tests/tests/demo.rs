//! `rix demo --check` as a user runs it: a real process that starts a gateway and three nodes,
//! seeds them, verifies search, merge, links and the secrecy filters, and exits 0 — and that a
//! second run on the same data dir reuses everything and registers nothing twice. Then
//! `rix loadgen` against a real node process: it registers and approves, and a repeated command
//! adds nothing.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use rix_tests::tokens::{ADMIN, REVIEWER};
use rix_tests::*;
use serde_json::Value;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

/// Runs the CLI with `args`, killing it if it outlives `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(RIX)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rix-e2e");
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

fn demo_check(dir: &Path) -> String {
    let out = run(
        &[
            "demo",
            "--check",
            "--data-dir",
            dir.to_str().unwrap(),
            "--records",
            "120",
            "--port",
            "0",
            "--timeout",
            "60",
        ],
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rix demo --check failed ({}):\n{stdout}\n{}\nlog:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("demo.log")).unwrap_or_default()
    );
    stdout
}

/// The line that starts with `prefix` (trimmed).
fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

fn demo_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("demo.json")).unwrap()).unwrap()
}

#[test]
fn demo_check_passes_and_a_second_run_reuses_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo_check(dir.path());
    assert!(first.contains("check passed"), "{first}");
    assert!(
        line(&first, "registered 120 records").contains("(120 new, 0 already registered)"),
        "{first}"
    );

    let json = demo_json(dir.path());
    let gateway = json["gateway"]["url"].as_str().unwrap();
    assert!(gateway.starts_with("http://127.0.0.1:"), "{json}");
    assert_eq!(
        json["gateway"]["search_url"],
        format!("{gateway}/v1/search")
    );
    assert!(json["gateway"]["tokens"]["public"].is_null());
    for role in ["internal", "commercial", "ministry"] {
        let token = json["gateway"]["tokens"][role].as_str().unwrap_or_default();
        assert!(token.len() >= 16, "{role} token in {json}");
    }
    let nodes = json["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["most", "prov-530000", "prov-210000"]);
    for node in nodes {
        assert!(
            node["url"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:")
        );
        for role in ["admin", "submitter", "reviewer"] {
            assert!(
                node["tokens"][role].as_str().unwrap_or_default().len() >= 16,
                "{role} token of {node}"
            );
        }
    }

    // Same dir again: same tokens, nothing registered twice, the same catalogue.
    let second = demo_check(dir.path());
    assert!(second.contains("reusing the data dir"), "{second}");
    assert!(
        line(&second, "registered 120 records").contains("(0 new, 120 already registered)"),
        "{second}"
    );
    assert_eq!(
        line(&first, "records at the nodes:"),
        line(&second, "records at the nodes:")
    );
    assert_eq!(line(&first, "catalogue:"), line(&second, "catalogue:"));
    let again = demo_json(dir.path());
    assert_eq!(again["gateway"]["tokens"], json["gateway"]["tokens"]);
    for (a, b) in again["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .zip(json["nodes"].as_array().unwrap())
    {
        assert_eq!(a["tokens"], b["tokens"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_registers_and_approves_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec::new("prov-530000", "530000").with_batches(100, 10),
    );
    let args = [
        "loadgen",
        "--node",
        &node.url,
        "--submitter-token",
        ADMIN,
        "--reviewer-token",
        REVIEWER,
        "--count",
        "40",
        "--kind",
        "project",
        "--batch",
        "15",
    ];
    for round in 0..2 {
        let out = run(&args, Duration::from_secs(60));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "round {round}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("registered 40 funded_project records"),
            "{stdout}"
        );
        let approved_now = if round == 0 {
            "40 approved now"
        } else {
            "0 approved now"
        };
        assert!(stdout.contains(approved_now), "round {round}: {stdout}");
    }
    let http = reqwest::Client::new();
    let (status, page) = call(
        &http,
        Method::GET,
        &format!("{}/v1/projects?limit=1000", node.url),
        ADMIN,
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 40, "the second run registered nothing");
    assert!(items.iter().all(|i| i["state"] == "approved"), "{page}");
}
