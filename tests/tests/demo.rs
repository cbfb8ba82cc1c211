//! `rix demo --check` as a user runs it: a real process that starts a gateway and three nodes,
//! seeds them — one province by importing a generated 登记表 workbook — verifies search, merge,
//! links and the secrecy filters, and exits 0; then `rix demo` again on the same data dir, left
//! running: it reuses everything, registers nothing twice, and the imported province's results,
//! read back from the workbook it names in demo.json, are found by searching the gateway. Then
//! `rix loadgen` against a real node process: it registers and approves, and a repeated command
//! adds nothing.

use std::io::BufRead;
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

fn demo_args(dir: &Path) -> Vec<&str> {
    vec![
        "demo",
        "--data-dir",
        dir.to_str().unwrap(),
        "--records",
        "120",
        "--port",
        "0",
        "--timeout",
        "60",
    ]
}

fn demo_check(dir: &Path) -> String {
    let mut args = demo_args(dir);
    args.insert(1, "--check");
    let out = run(&args, Duration::from_secs(90));
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

/// A running `rix demo`, stopped (SIGTERM) when dropped, also when a check fails.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        stop_child(&mut self.0, Duration::from_secs(60));
    }
}

/// `rix demo` left running: its output until the guide is printed, and the process.
fn demo_running(dir: &Path) -> (String, Running) {
    let mut child = Command::new(RIX)
        .args(demo_args(dir))
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rix-e2e");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        // Drains the demo's output to the end, also once nobody listens: a closed pipe would
        // make the demo's next line fail (EPIPE) and stop it while the test still reads from it.
        for l in std::io::BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut text = String::new();
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(l) => {
                let ready = l.starts_with("The exchange is running");
                text.push_str(&l);
                text.push('\n');
                if ready {
                    return (text, Running(child));
                }
            }
            Err(_) => {
                stop_child(&mut child, Duration::from_secs(30));
                panic!(
                    "rix demo did not get running:\n{text}\nlog:\n{}",
                    std::fs::read_to_string(dir.join("demo.log")).unwrap_or_default()
                );
            }
        }
    }
}

/// The titles of the results a workbook holds and their 成果密级, read as
/// `rix import --dry-run` reads it: the shipped mapping it names, over the file.
fn workbook_results(file: &Path, mapping: &str) -> Vec<(String, rix_schema::SecrecyLevel)> {
    let mapping = rix_adapters::mapping::shipped(mapping).unwrap().unwrap();
    let mut mapper = mapping.mapper();
    let rows = rix_adapters::source::open(file, &Default::default()).unwrap();
    rows.filter_map(|row| mapper.map(&row.unwrap()))
        .map(|mapped| {
            let r = mapped.unwrap().record;
            let level = rix_schema::SecrecyLevel::of_record(&r).unwrap();
            (r["title"].as_str().unwrap().to_owned(), level)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_check_passes_and_a_second_run_reuses_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo_check(dir.path());
    assert!(first.contains("check passed"), "{first}");
    assert!(
        line(&first, "registered 120 records").contains("(120 new, 0 already registered)"),
        "{first}"
    );
    // One province was seeded by importing a 登记表 workbook, which demo.json names and the
    // data dir keeps; the demo's own check found its results at the gateway.
    assert!(
        line(&first, "ok  imported:").contains("searchable"),
        "{first}"
    );
    let import = demo_json(dir.path())["import"].clone();
    assert_eq!(import["node_id"], "prov-210000", "{import}");
    assert_eq!(import["mapping"], "achievement-form", "{import}");
    let workbook = Path::new(import["file"].as_str().unwrap()).to_owned();
    assert!(
        workbook.starts_with(dir.path().canonicalize().unwrap()),
        "{import}"
    );
    assert!(
        line(&first, "imported ").contains(&workbook.display().to_string()),
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

    // Same dir again, left running: same tokens, nothing registered twice, the same catalogue,
    // and every public result of the workbook is found by an anonymous search of the gateway
    // under the node demo.json names.
    let (second, demo) = demo_running(dir.path());
    let running = demo_json(dir.path());
    let gateway = running["gateway"]["url"].as_str().unwrap();
    let node_id = import["node_id"].as_str().unwrap();
    let results = workbook_results(&workbook, import["mapping"].as_str().unwrap());
    assert_eq!(results.len() as u64, import["records"].as_u64().unwrap());
    let (_, hits) = gateway_search(
        &reqwest::Client::new(),
        gateway,
        &format!("node={node_id}&kind=achievement"),
    )
    .await
    .unwrap();
    let found: Vec<&str> = hits.iter().filter_map(|h| h["title"].as_str()).collect();
    let public: Vec<&String> = results
        .iter()
        .filter(|(_, level)| *level == rix_schema::SecrecyLevel::Public)
        .map(|(title, _)| title)
        .collect();
    let missing: Vec<&&String> = public
        .iter()
        .filter(|t| !found.contains(&t.as_str()))
        .collect();
    drop(demo);
    assert!(
        missing.is_empty(),
        "not searchable at the gateway: {missing:?}\n{second}"
    );
    assert!(!public.is_empty(), "{results:?}");
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
