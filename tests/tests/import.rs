//! `rix import` against real node processes (SQLite), with fixture files made by the fixture
//! generator (`rix_ops::import::fixtures`): a 科技成果登记表 workbook, a GBK project list and an
//! XML export, with their messes and rows broken on purpose.
//!
//! What they prove: every generated record is recovered exactly — the node's stored record,
//! read back through its API, equals the generator's record less what the layout cannot carry
//! (decided and documented in the fixture module: `form_view`, `project_list_view`,
//! `xml_view`) — and historical 批准登记号 are kept; every broken row is in the error report
//! with its row, column and pointer; running an import twice registers nothing twice; an
//! import killed mid-run resumes from its checkpoint and ends with exactly the file's records;
//! the exit codes say 0 / 2 / 1; imported and approved records reach a gateway and are found
//! by search, classified ones never do.
//!
//! The import runs as the real `rix` program (a separate process, killed with SIGKILL in one
//! test) and, for one file, as the library call the CLI makes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rix_gateway::catalogue;
use rix_ops::import::fixtures::{self, ExpectedRecord, FixtureFile, FixtureSpec, Layout, Stage};
use rix_ops::import::{self, ImportOptions};
use rix_schema::canonical::canonical_value;
use rix_schema::sensitivity::Entitlements;
use rix_tests::*;
use serde_json::Value;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

/// A Yunnan node (issuer 530000, the fixtures' province) on SQLite, feed only.
fn yunnan(dir: &Path) -> NodeProcess {
    NodeProcess::start(RIX, dir, NodeSpec::new(&unique("prov-530000"), "530000"))
}

/// Runs `rix import --mapping M --node URL --token T FILE ARGS…`.
fn rix_import(node: &NodeProcess, token: &str, file: &FixtureFile, args: &[&str]) -> Output {
    let mut cmd = Command::new(RIX);
    cmd.args(["import", "--mapping", file.mapping, "--node", &node.url])
        .env("RIX_NODE_TOKEN", token)
        .args(args)
        .arg(&file.path);
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The numbers of the summary table's line for `file`: rows, skipped, mapped, refused
/// (mapping), accepted, approved, duplicates, changed, refused (node), classified, earlier
/// run (rows/s left out).
fn summary_line(out: &Output, file: &Path) -> Vec<u64> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let name = file.display().to_string();
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("no summary line for {name}: {}", text(out)));
    let numbers: Vec<u64> = line[name.len()..]
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    numbers[..numbers.len() - 1].to_vec()
}

/// Every record at the node of `collection`, as `GET /v1/{collection}/{id}` answers (admin).
async fn node_records(http: &reqwest::Client, node: &NodeProcess, collection: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = call(
            http,
            reqwest::Method::GET,
            &format!("{}/v1/{collection}?limit=1000{after}", node.url),
            tokens::ADMIN,
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap();
            out.push(get_record(http, &node.url, collection, id, tokens::ADMIN).await);
        }
        match page["next_cursor"].as_str() {
            Some(c) => after = format!("&after={c}"),
            None => return out,
        }
    }
}

/// How a record is found again: its 批准登记号 when it came with one, else its title and first
/// institution (achievements) or its program and number (projects).
fn identity(kind: Layout, record: &Value, number: Option<&str>) -> String {
    match (kind, number) {
        (Layout::ProjectListCsv, _) => format!("{}|{}", record["program"], record["project_no"]),
        (_, Some(n)) => n.to_owned(),
        (_, None) => format!("{}|{}", record["title"], record["institutions"][0]["name"]),
    }
}

fn canonical(v: &Value) -> String {
    String::from_utf8(canonical_value(v)).unwrap()
}

/// A record as the node holds it: the record without the node's `registration_no` and
/// `registration_date`, and those two beside it, and its state.
struct Held {
    record: Value,
    number: Option<String>,
    date: Option<String>,
    state: String,
}

/// The node's records of a fixture's kind by identity.
async fn held(
    http: &reqwest::Client,
    node: &NodeProcess,
    layout: Layout,
) -> BTreeMap<String, std::sync::Arc<Held>> {
    let collection = match layout {
        Layout::ProjectListCsv => "projects",
        _ => "achievements",
    };
    let mut by_identity = BTreeMap::new();
    for body in node_records(http, node, collection).await {
        let mut record = body["record"].clone();
        let number = body["registration_no"].as_str().map(str::to_owned);
        let date = record["registration_date"].as_str().map(str::to_owned);
        if let Some(map) = record.as_object_mut() {
            map.remove("registration_no");
            map.remove("registration_date");
        }
        let keys = [
            identity(layout, &record, number.as_deref()),
            identity(layout, &record, None),
        ];
        let held = std::sync::Arc::new(Held {
            record,
            number,
            date,
            state: body["state"].as_str().unwrap().to_owned(),
        });
        for key in keys {
            by_identity.insert(key, held.clone());
        }
    }
    by_identity
}

/// Asserts that the node holds every expected record exactly, approved, with its number and
/// its 登记日期 when the source gave them.
fn assert_recovered(
    file: &FixtureFile,
    held: &BTreeMap<String, std::sync::Arc<Held>>,
    records: &[ExpectedRecord],
) {
    for e in records {
        let key = identity(file.layout, &e.record, e.registration_no.as_deref());
        let Held {
            record,
            number,
            date,
            state,
        } = &**held.get(&key).unwrap_or_else(|| {
            panic!(
                "{} row {}: {key} is not at the node",
                file.path.display(),
                e.row
            )
        });
        assert_eq!(
            canonical(record),
            canonical(&e.record),
            "{} row {}: the node's record differs from the generated one",
            file.path.display(),
            e.row
        );
        assert_eq!(state, "approved", "{} row {}", file.path.display(), e.row);
        if let Some(n) = &e.registration_no {
            assert_eq!(number.as_ref(), Some(n), "the historical number is kept");
        }
        if let Some(d) = &e.registration_date {
            assert_eq!(
                date.as_ref(),
                Some(d),
                "{} row {}: the historical 登记日期 is kept",
                file.path.display(),
                e.row
            );
        }
    }
}

/// The error report's lines (JSON Lines) as (sheet, row, column, pointer), sorted.
fn report_lines(path: &Path) -> Vec<(Option<String>, u64, Option<String>, String)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut lines: Vec<_> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["sheet"].as_str().map(str::to_owned),
                v["row"].as_u64().unwrap(),
                v["column"].as_str().map(str::to_owned),
                v["pointer"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    lines.sort();
    lines
}

fn expected_report(file: &FixtureFile) -> Vec<(Option<String>, u64, Option<String>, String)> {
    let mut lines: Vec<_> = file
        .refusals
        .iter()
        .map(|r| (r.sheet.clone(), r.row, r.column.clone(), r.pointer.clone()))
        .collect();
    lines.sort();
    lines
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_recovers_every_generated_record_and_reports_every_broken_row() {
    recovers_every_record(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_into_a_node_on_postgresql_recovers_every_record_alike() {
    recovers_every_record(Some(fresh_postgres_database())).await;
}

/// The round trip of every fixture file into a node on `database_url` (SQLite without).
async fn recovers_every_record(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec::new(&unique("prov-530000"), "530000").with_database(database_url),
    );
    let files = fixtures::write_all(&dir.path().join("fixtures"), &FixtureSpec::default()).unwrap();
    for file in &files {
        let node_refusals = file
            .refusals
            .iter()
            .filter(|r| r.stage() == Stage::Node)
            .count() as u64;
        let mapping_refusals = file.refusals.len() as u64 - node_refusals;
        let n = file.records.len() as u64;
        let classified = file.records.iter().filter(|r| r.classified).count() as u64;
        match file.layout {
            // The XML through the library call the CLI makes, in this process.
            Layout::AchievementXml => {
                let options = ImportOptions {
                    mapping: file.mapping.to_owned(),
                    inputs: vec![file.path.clone()],
                    node: Some(node.url.clone()),
                    token: Some(tokens::ADMIN.to_owned()),
                    approve: true,
                    ..ImportOptions::default()
                };
                let (summary, out) = tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    let summary = import::run(&options, &mut out).unwrap();
                    (summary, String::from_utf8(out).unwrap())
                })
                .await
                .unwrap();
                let t = &summary.total;
                assert_eq!(summary.exit_code(), 2, "{out}");
                assert_eq!(
                    (t.mapped, t.refused_mapping, t.accepted, t.approved),
                    (n + node_refusals, mapping_refusals, n, n),
                    "{out}"
                );
                assert_eq!(
                    (t.refused_node, t.classified),
                    (node_refusals, classified),
                    "{out}"
                );
                assert_eq!(t.rows, t.skipped + t.mapped + t.refused_mapping, "{out}");
            }
            // The workbook and the GBK CSV through the real program.
            _ => {
                let out = rix_import(&node, tokens::ADMIN, file, &["--approve"]);
                assert_eq!(out.status.code(), Some(2), "{}", text(&out));
                let line = summary_line(&out, &file.path);
                let (rows, skipped, mapped, refused_mapping) = (line[0], line[1], line[2], line[3]);
                assert_eq!(rows, skipped + mapped + refused_mapping, "{}", text(&out));
                assert_eq!(
                    (
                        mapped,
                        refused_mapping,
                        line[4],
                        line[5],
                        line[6],
                        line[8],
                        line[9]
                    ),
                    (
                        n + node_refusals,
                        mapping_refusals,
                        n,
                        n,
                        0,
                        node_refusals,
                        classified
                    ),
                    "{}",
                    text(&out)
                );
                if classified > 0 {
                    assert!(
                        String::from_utf8_lossy(&out.stdout).contains(&format!(
                            "{classified} record(s) are classified 秘密 or above"
                        )),
                        "{}",
                        text(&out)
                    );
                }
            }
        }
        // Each broken row in the report, with its row, column and pointer; the node's
        // refusals (a number issued by another province) too, pointing at /registration_no.
        assert_eq!(
            report_lines(&beside(&file.path, ".errors.jsonl")),
            expected_report(file),
            "{}",
            file.path.display()
        );
        let csv = std::fs::read(beside(&file.path, ".errors.csv")).unwrap();
        assert!(csv.starts_with("\u{FEFF}file,sheet,row,column,pointer".as_bytes()));
        assert!(
            !beside(&file.path, ".rix-checkpoint.json").exists(),
            "a finished import removes its checkpoint"
        );
        let held = held(&http, &node, file.layout).await;
        assert_recovered(file, &held, &file.records);
    }
    // Nothing else was registered: achievements of two files, projects of one.
    let achievements: usize = files
        .iter()
        .filter(|f| f.layout != Layout::ProjectListCsv)
        .map(|f| f.records.len())
        .sum();
    assert_eq!(
        node_records(&http, &node, "achievements").await.len(),
        achievements
    );
    let projects = files[1].records.len();
    assert_eq!(node_records(&http, &node, "projects").await.len(), projects);
}

/// Clean fixtures (no broken rows), small.
fn clean(form: u64, xml: u64, projects: u64) -> FixtureSpec {
    FixtureSpec {
        form_achievements: form,
        xml_achievements: xml,
        projects,
        broken: false,
        ..FixtureSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_the_same_import_twice_registers_nothing_twice_and_says_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node = yunnan(dir.path());
    let files = fixtures::write_all(&dir.path().join("fixtures"), &clean(8, 3, 9)).unwrap();
    let list = &files[1];
    assert_eq!(list.layout, Layout::ProjectListCsv);
    let n = list.records.len() as u64;

    let first = rix_import(&node, tokens::ADMIN, list, &["--approve"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(summary_line(&first, &list.path)[4], n, "{}", text(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("every row was accepted"));
    assert!(
        !beside(&list.path, ".errors.csv").exists(),
        "no refusal, no report"
    );

    let again = rix_import(&node, tokens::ADMIN, list, &["--approve"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let line = summary_line(&again, &list.path);
    assert_eq!(
        (line[4], line[6], line[7]),
        (0, n, 0),
        "all duplicates: {}",
        text(&again)
    );

    // One project's name edited in the sheet: still the same project (program and number),
    // so a duplicate — changed, which the summary warns about; the node keeps the first.
    let bytes = std::fs::read(&list.path).unwrap();
    let (csv, _, _) = encoding_rs::GBK.decode(&bytes);
    let title = list.records[0].record["title"].as_str().unwrap();
    let edited = csv.replacen(title, &format!("{title}（修订）"), 1);
    let (bytes, _, _) = encoding_rs::GBK.encode(&edited);
    std::fs::write(&list.path, &bytes).unwrap();
    let edited_run = rix_import(&node, tokens::ADMIN, list, &["--approve"]);
    assert_eq!(edited_run.status.code(), Some(0), "{}", text(&edited_run));
    let line = summary_line(&edited_run, &list.path);
    assert_eq!(
        (line[4], line[6], line[7]),
        (0, n, 1),
        "{}",
        text(&edited_run)
    );
    assert!(
        String::from_utf8_lossy(&edited_run.stdout)
            .contains("warning: 1 duplicate(s) changed in the source"),
        "{}",
        text(&edited_run)
    );
    let held = held(&http, &node, Layout::ProjectListCsv).await;
    assert_recovered(list, &held, &list.records);
    assert_eq!(node_records(&http, &node, "projects").await.len() as u64, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_mid_run_resumes_from_its_checkpoint_and_ends_with_exactly_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node = yunnan(dir.path());
    let files = fixtures::write_all(&dir.path().join("fixtures"), &clean(90, 1, 1)).unwrap();
    let form = &files[0];
    let n = form.records.len();
    let checkpoint = beside(&form.path, ".rix-checkpoint.json");

    // Two records a request, so the run takes many requests; killed once the checkpoint says
    // some rows are done.
    let mut child = Command::new(RIX)
        .args(["import", "--mapping", form.mapping, "--node", &node.url])
        .args(["--approve", "--chunk", "2"])
        .env("RIX_NODE_TOKEN", tokens::ADMIN)
        .arg(&form.path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WITHIN;
    loop {
        let progress = std::fs::read_to_string(&checkpoint)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .map(|cp| {
                cp["sources"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .map(|s| s["rows_through"].as_u64().unwrap())
                            .sum::<u64>()
                    })
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        if progress > 0 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no checkpoint was written");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running when killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(checkpoint.exists(), "the checkpoint survives the kill");
    let before = node_records(&http, &node, "achievements").await.len();
    assert!(before < n, "interrupted part way: {before} of {n}");

    let resumed = rix_import(&node, tokens::ADMIN, form, &["--approve"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        stdout.contains("resumed from the checkpoint"),
        "{}",
        text(&resumed)
    );
    let line = summary_line(&resumed, &form.path);
    let (accepted, duplicates, earlier) = (line[4], line[6], line[10]);
    assert!(
        earlier > 0,
        "rows the checkpoint covers are not sent again: {}",
        text(&resumed)
    );
    assert_eq!(
        accepted + duplicates + earlier,
        n as u64,
        "{}",
        text(&resumed)
    );
    assert!(!checkpoint.exists(), "removed once the import finished");

    let all = node_records(&http, &node, "achievements").await;
    assert_eq!(all.len(), n, "exactly the file's records, none twice");
    let held = held(&http, &node, Layout::AchievementForm).await;
    assert_recovered(form, &held, &form.records);
}

/// A reverse proxy in front of the node, as a province may run one, that fails every attempt at
/// one request (a 502, as a gateway whose upstream dropped the connection answers) and passes
/// the others to the node: the node behind it is real.
struct ProxyFailingOneRequest {
    node: String,
    /// The title of the first record of the request it fails.
    title: String,
}

impl wiremock::Respond for ProxyFailingOneRequest {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if body["items"][0]["record"]["title"] == self.title.as_str() {
            return wiremock::ResponseTemplate::new(502).set_body_string("bad gateway");
        }
        let url = format!("{}{}", self.node, request.url.path());
        let headers: Vec<(String, String)> = ["authorization", "content-type", "idempotency-key"]
            .into_iter()
            .filter_map(|h| {
                Some((
                    h.to_owned(),
                    request.headers.get(h)?.to_str().ok()?.to_owned(),
                ))
            })
            .collect();
        let sent = request.body.clone();
        // The responder is synchronous: the forward runs on a thread with a runtime of its own.
        let (status, reply) = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut forward = reqwest::Client::new().post(url).body(sent);
                for (name, value) in headers {
                    forward = forward.header(name, value);
                }
                let answer = forward.send().await.unwrap();
                let status = answer.status().as_u16();
                (status, answer.bytes().await.unwrap().to_vec())
            })
        })
        .join()
        .unwrap();
        wiremock::ResponseTemplate::new(status).set_body_raw(reply, "application/json")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_chunk_keeps_the_checkpoint_before_its_rows_though_the_chunk_after_it_landed() {
    // Two chunks are on their way at once: the first fails (every attempt), the second lands.
    // The run stops and counts the second's records, but its checkpoint must not move past the
    // first's rows, or the resumed run would never send them.
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node = yunnan(dir.path());
    let files = fixtures::write_all(&dir.path().join("fixtures"), &clean(1, 1, 6)).unwrap();
    let list = &files[1];
    assert_eq!(list.layout, Layout::ProjectListCsv);
    let n = list.records.len() as u64;
    let checkpoint = beside(&list.path, ".rix-checkpoint.json");

    let proxy = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ProxyFailingOneRequest {
            node: node.url.clone(),
            title: list.records[0].record["title"].as_str().unwrap().to_owned(),
        })
        .mount(&proxy)
        .await;
    let failed = Command::new(RIX)
        .args(["import", "--mapping", list.mapping, "--node", &proxy.uri()])
        .args(["--approve", "--chunk", "2", "--attempts", "2"])
        .env("RIX_NODE_TOKEN", tokens::ADMIN)
        .arg(&list.path)
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let line = summary_line(&failed, &list.path);
    assert_eq!(
        line[4],
        2,
        "the chunk after the failed one is counted: {}",
        text(&failed)
    );
    assert_eq!(node_records(&http, &node, "projects").await.len(), 2);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    let first_row = list.records[0].row;
    for source in saved["sources"].as_array().unwrap() {
        assert!(
            source["rows_through"].as_u64().unwrap() < first_row,
            "the checkpoint stays before the failed chunk's rows: {saved}"
        );
    }

    let resumed = rix_import(&node, tokens::ADMIN, list, &["--approve"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let line = summary_line(&resumed, &list.path);
    assert_eq!(
        (line[4], line[6], line[10]),
        (n - 2, 2, 0),
        "the failed chunk's rows sent again, the landed ones come back duplicates: {}",
        text(&resumed)
    );
    assert_eq!(node_records(&http, &node, "projects").await.len() as u64, n);
    let held = held(&http, &node, Layout::ProjectListCsv).await;
    assert_recovered(list, &held, &list.records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_messages_say_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let node = yunnan(dir.path());
    let files = fixtures::write_all(&dir.path().join("fixtures"), &clean(10, 1, 1)).unwrap();
    let form = &files[0];

    // A node that is not there: 1, and what to do.
    let mut cmd = Command::new(RIX);
    let gone = format!("http://127.0.0.1:{}", free_port());
    let out = cmd
        .args(["import", "--mapping", form.mapping, "--node", &gone])
        .args(["--token", tokens::ADMIN, "--attempts", "1"])
        .arg(&form.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not be reached"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(beside(&form.path, ".rix-checkpoint.json")).ok();

    // A token the node does not know: the whole request refused, 1.
    let out = rix_import(&node, "not-a-token-of-this-node", form, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(beside(&form.path, ".rix-checkpoint.json")).ok();

    // A mapping that does not exist: 1, naming the shipped ones.
    let out = Command::new(RIX)
        .args(["import", "--mapping", "no-such-mapping", "--dry-run"])
        .arg(&form.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("achievement-form"));

    // A reviewer's token: rows with a 批准登记号 need an administrator's, refused with that
    // said; the others are approved. 2.
    let with_numbers = form
        .records
        .iter()
        .filter(|r| r.registration_no.is_some())
        .count() as u64;
    assert!(with_numbers > 0);
    let out = rix_import(&node, tokens::REVIEWER, form, &["--approve"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let line = summary_line(&out, &form.path);
    assert_eq!(line[8], with_numbers, "{}", text(&out));
    assert_eq!(
        line[4],
        form.records.len() as u64 - with_numbers,
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "{with_numbers} row(s) carry a 批准登记号 and were refused because the token is not an administrator's"
        )),
        "{}",
        text(&out)
    );

    // The same again with the admin's token: the numbered rows now, the rest duplicates. 0.
    let out = rix_import(&node, tokens::ADMIN, form, &["--approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let line = summary_line(&out, &form.path);
    assert_eq!(
        (line[4], line[6]),
        (with_numbers, form.records.len() as u64 - with_numbers)
    );

    // A dry run needs no node: 0 on clean files.
    let out = Command::new(RIX)
        .args([
            "import",
            "--mapping",
            form.mapping,
            "--dry-run",
            "--rows",
            "1",
        ])
        .arg(&form.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("unmapped columns: 序号, 填报人"),
        "{stdout}"
    );
    assert!(stdout.contains("→  /title"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_and_approved_records_reach_the_gateway_and_are_found_by_search() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node = yunnan(dir.path());
    let gateway = GatewayProcess::start(RIX, dir.path(), None, None, &[&node]);
    let spec = FixtureSpec {
        form_achievements: 30,
        xml_achievements: 1,
        projects: 1,
        broken: false,
        config: rix_schema::sample::SampleConfig {
            share_classified: 0.15,
            ..FixtureSpec::default().config
        },
    };
    let files = fixtures::write_all(&dir.path().join("fixtures"), &spec).unwrap();
    let form = &files[0];
    let classified: Vec<&ExpectedRecord> = form.records.iter().filter(|r| r.classified).collect();
    assert!(!classified.is_empty(), "the fixture has classified rows");

    let out = rix_import(&node, tokens::ADMIN, form, &["--approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let line = summary_line(&out, &form.path);
    assert_eq!(
        line[9],
        classified.len() as u64,
        "the summary counts them: {}",
        text(&out)
    );

    // Every public record reaches the catalogue once (the anonymous change feed counts them),
    // every internal one too (read with every entitlement), a classified one never.
    let public: Vec<&ExpectedRecord> = form
        .records
        .iter()
        .filter(|r| r.record["secrecy"]["level"] == "public")
        .collect();
    wait_for_changes(&http, &gateway, "", public.len()).await;
    let at_node = node_records(&http, &node, "achievements").await;
    assert_eq!(at_node.len(), form.records.len());
    let node_id = node.node_id.clone();
    let ids: Vec<(String, bool)> = at_node
        .iter()
        .map(|body| {
            let level = body["record"]["secrecy"]["level"].as_str().unwrap();
            (
                body["id"].as_str().unwrap().to_owned(),
                !matches!(level, "public" | "internal"),
            )
        })
        .collect();
    assert_eq!(ids.iter().filter(|(_, c)| *c).count(), classified.len());
    let db = gateway.catalogue();
    poll_until(
        "every record that may leave the node is in the catalogue",
        WITHIN,
        || async {
            let mut conn = db.conn().map_err(|e| e.to_string())?;
            for (id, classified) in &ids {
                let held = catalogue::unified_id_of(&mut conn, &node_id, id, Entitlements::ALL)
                    .map_err(|e| e.to_string())?
                    .is_some();
                if !classified && !held {
                    return Err(format!("{node_id}/{id} is not there yet"));
                }
            }
            Ok(())
        },
    )
    .await;
    let mut conn = db.conn().unwrap();
    for (id, classified) in &ids {
        if *classified {
            assert!(
                catalogue::unified_id_of(&mut conn, &node_id, id, Entitlements::ALL)
                    .unwrap()
                    .is_none(),
                "{node_id}/{id} is classified and never leaves the node"
            );
        }
    }

    // A public record is found by its title's words.
    let found = public[0];
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.query_pairs_mut().append_pair("q", found.title());
    let query = url.query().unwrap().to_owned();
    poll_until(
        &format!("a search for {} finds it", found.title()),
        WITHIN,
        || async {
            let (_, hits) = gateway_search(&http, &gateway.url, &query).await?;
            if hits.iter().any(|h| h["title"] == found.title()) {
                Ok(())
            } else {
                Err(format!("{} hits, not it", hits.len()))
            }
        },
    )
    .await;
    // A classified one is not, even by its exact title.
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.query_pairs_mut()
        .append_pair("q", classified[0].title());
    let (_, hits) = gateway_search(&http, &gateway.url, url.query().unwrap())
        .await
        .unwrap();
    assert!(
        !hits.iter().any(|h| h["title"] == classified[0].title()),
        "{hits:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platforms_api_is_imported_page_by_page_and_its_mark_saved_only_once_pushed() {
    use wiremock::matchers::{method, path, query_param, query_param_is_missing};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node = yunnan(dir.path());
    let generator = rix_schema::sample::SampleGenerator::new(FixtureSpec::default().config);
    let projects: Vec<Value> = (0..5)
        .map(|i| serde_json::to_value(generator.project(i)).unwrap())
        .collect();
    // The platform: numbered pages of two, each item the list's columns by name and its
    // modification time; asked for what changed since a mark, it has nothing new.
    let platform = MockServer::start().await;
    let items: Vec<Value> = projects
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut item = fixtures::project_list_item(p, k as u64);
            item["更新时间"] = Value::String(format!("2025-03-0{}T08:00:00", k + 1));
            item
        })
        .collect();
    for (page, chunk) in items.chunks(2).chain([&[][..]]).enumerate() {
        Mock::given(method("GET"))
            .and(path("/api/projects"))
            .and(query_param("pageNo", (page + 1).to_string()))
            .and(query_param_is_missing("updatedSince"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"code": 0, "data": {"list": chunk}})),
            )
            .mount(&platform)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/api/projects"))
        .and(query_param("updatedSince", "2025-03-05T08:00:00"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"code": 0, "data": {"list": []}})),
        )
        .mount(&platform)
        .await;
    // The shipped project-list mapping, its [source] the platform's API.
    let url = format!("{}/api/projects", platform.uri());
    let shipped = rix_adapters::mapping::SHIPPED
        .iter()
        .find(|(f, _)| *f == "funded-project-list.toml")
        .unwrap()
        .1;
    let source = format!(
        "[source]\nurl = \"{url}\"\nitems_pointer = \"/data/list\"\nid_pointer = \"/项目编号\"\n\
         paging = {{ style = \"page\", page_param = \"pageNo\", size_param = \"pageSize\", size = 2 }}\n\
         incremental = {{ param = \"updatedSince\", modified_pointer = \"/更新时间\", checkpoint = \"state/platform.json\" }}\n"
    );
    assert!(shipped.contains("\n[source]\n"));
    let mapping = dir.path().join("platform.toml");
    std::fs::write(
        &mapping,
        shipped.replacen("\n[source]\n", &format!("\n{source}"), 1),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let mark = dir.path().join("state/platform.json");
    let run = |node_url: &str, extra: &[&str]| {
        Command::new(RIX)
            .args(["import", "--mapping"])
            .arg(&mapping)
            .args(["--node", node_url, "--approve"])
            .args(extra)
            .env("RIX_NODE_TOKEN", tokens::ADMIN)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };

    // The node cannot be reached: the pages were read, nothing was stored, so no mark.
    let gone = format!("http://127.0.0.1:{}", free_port());
    let out = run(&gone, &["--attempts", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!mark.exists(), "no mark before the rows are pushed");

    let out = run(&node.url, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let line = summary_line(&out, Path::new(&url));
    assert_eq!((line[2], line[4], line[5]), (5, 5, 5), "{}", text(&out));
    let saved: Value = serde_json::from_slice(&std::fs::read(&mark).unwrap()).unwrap();
    assert_eq!(saved["modified_since"], "2025-03-05T08:00:00", "{saved}");

    // The next run asks only for what changed since, and finds nothing.
    let out = run(&node.url, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("changed since \"2025-03-05T08:00:00\""),
        "{}",
        text(&out)
    );
    assert_eq!(summary_line(&out, Path::new(&url))[0], 0, "{}", text(&out));

    let held = held(&http, &node, Layout::ProjectListCsv).await;
    assert_eq!(node_records(&http, &node, "projects").await.len(), 5);
    for p in &projects {
        let expected = fixtures::project_list_view(p);
        let key = identity(Layout::ProjectListCsv, &expected, None);
        let found = held.get(&key).unwrap_or_else(|| panic!("{key} is missing"));
        assert_eq!(canonical(&found.record), canonical(&expected), "{key}");
        assert_eq!(found.state, "approved");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_over_tls_trusts_the_node_only_through_the_given_ca() {
    use rix_node::config::{BatchConfig, Role, TlsConfig, TokenConfig};
    use rix_tests::pki::{Issued, write_pem};

    let dir = tempfile::tempdir().unwrap();
    let ca = Issued::ca("rix e2e province CA");
    let server = Issued::server(&ca);
    let key_path = dir.path().join("node.key.pem");
    signing_key_file(&key_path);
    let config = rix_node::Config {
        node_id: unique("prov-530000"),
        name: None,
        registration_issuer: "530000".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("node"),
        database_url: None,
        db_connections: 4,
        amqp_url: None,
        amqp_exchange: "rix.records".into(),
        signing_key: key_path,
        batch: BatchConfig {
            max_entries: 50,
            linger_ms: 10,
        },
        max_body_bytes: 8 * 1024 * 1024,
        tls: Some(TlsConfig {
            cert: write_pem(dir.path(), "node.crt", &server.cert_pem()),
            key: write_pem(dir.path(), "node.key", &server.key_pem()),
            client_ca: None,
        }),
        tokens: vec![TokenConfig {
            token: tokens::ADMIN.into(),
            role: Role::Admin,
            institution: None,
            name: None,
        }],
        gateways: Vec::new(),
        idempotency_retention_days: rix_node::config::default_idempotency_retention_days(),
    };
    let node = rix_node::start(config).await.unwrap();
    let url = format!("https://localhost:{}", node.addr.port());
    let ca_file = write_pem(dir.path(), "province-ca.pem", &ca.cert_pem());
    let files = fixtures::write_all(&dir.path().join("fixtures"), &clean(6, 1, 1)).unwrap();
    let form = files[0].clone();
    let import = |extra: Vec<String>| {
        let (url, form) = (url.clone(), form.path.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(RIX)
                .args(["import", "--mapping", "achievement-form", "--node", &url])
                .args(["--approve", "--attempts", "1"])
                .args(extra)
                .env("RIX_NODE_TOKEN", tokens::ADMIN)
                .arg(&form)
                .output()
                .unwrap()
        })
    };

    // A certificate from the province's own CA is not trusted without it: 1, and what to do.
    let out = import(Vec::new()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--ca-file"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(beside(&form.path, ".rix-checkpoint.json")).ok();

    let out = import(vec!["--ca-file".into(), ca_file.display().to_string()])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        summary_line(&out, &form.path)[4],
        form.records.len() as u64,
        "{}",
        text(&out)
    );
    node.stop().await;
}
