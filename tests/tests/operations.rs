//! What an operator meets when starting and running the services (issue 12): a signing key
//! others can read is refused with the fix in the message, and logs written to a file carry
//! no terminal colour codes, as text or as JSON lines.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rix_tests::*;
use serde_json::Value;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

fn spec(node_id: &str) -> NodeSpec<'_> {
    NodeSpec::new(node_id, "530000").with_batches(10, 200)
}

/// `rix node serve` on `config`, its standard error to `stderr`.
fn serve(config: &Path, stderr: Stdio) -> Child {
    Command::new(RIX)
        .args(["node", "serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

#[test]
fn a_node_refuses_a_signing_key_other_users_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(RIX, dir.path(), spec(&unique("keymode")));
    let key = dir.path().join(format!("{}.key.pem", node.node_id));
    let config = node.config.clone();
    let url = node.url.clone();
    drop(node);

    for mode in [0o644, 0o604, 0o660] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut child = serve(&config, Stdio::piped());
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("the node started on a key of mode {mode:o}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "mode {mode:o}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(&format!("chmod 600 {}", key.display()))
                && said.contains(&format!("{mode:04o}")),
            "mode {mode:o}: {said}"
        );
    }
    // Owner-only, or shared with the node's group only: the node starts.
    for mode in [0o600, 0o640, 0o400] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut child = serve(&config, Stdio::null());
        let deadline = Instant::now() + Duration::from_secs(30);
        let healthy = loop {
            if probe::healthy(&format!("{url}/healthz")).unwrap_or(false) {
                break true;
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(healthy, "the node did not start on a key of mode {mode:o}");
    }
}

#[test]
fn logs_in_a_file_have_no_colour_codes_and_can_be_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(RIX, dir.path(), spec(&unique("logs")));
    let text = node.log();
    assert!(text.contains("INFO"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape codes in a file: {text:?}");

    node.stop();
    let before = node.log().len();
    node.set_env("RIX_LOG_FORMAT", "json");
    node.restart();
    node.stop();
    let log = node.log();
    let lines: Vec<&str> = log[before..]
        .lines()
        .filter(|l| l.starts_with('{'))
        .collect();
    assert!(!lines.is_empty(), "no JSON log line:\n{}", &log[before..]);
    for line in lines {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            event["level"].is_string() && event["timestamp"].is_string(),
            "{line}"
        );
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }
}

/// Every `.rs` file under `dir`, read.
fn sources_under(dir: &Path, into: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources_under(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn every_metric_the_alert_rules_watch_is_one_the_code_exports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let rules = std::fs::read_to_string(root.join("ops/prometheus/rix-alerts.yml")).unwrap();
    let mut code = String::new();
    for crate_dir in ["node/src", "gateway/src"] {
        sources_under(&root.join(crate_dir), &mut code);
    }
    let mut names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("rix_") && !w.ends_with('_'))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(
        names.contains(&"rix_search_lag_seconds"),
        "the search index is watched: {names:?}"
    );
    let unknown: Vec<&&str> = names
        .iter()
        .filter(|n| !code.contains(&format!("\"{n}\"")))
        .collect();
    assert!(
        unknown.is_empty(),
        "alert rules name metrics no code registers (a typo, or a renamed metric): {unknown:?}"
    );
    // Every rule alerts on something and says what to do.
    let alerts = rules.matches("- alert:").count();
    assert!(alerts >= 15, "{alerts} rules");
    assert_eq!(rules.matches("expr:").count(), alerts);
    assert_eq!(rules.matches("summary:").count(), alerts);
}
