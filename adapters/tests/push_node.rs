//! The push client against a real node, started in-process on SQLite and served over TLS under
//! a CA the client is given: new records approved at once, a historical 批准登记号 kept, a
//! number already taken refused and tied to its row, a classified record counted as kept at the
//! node, a second run registering nothing, and a resumed run sending nothing. Rows mapped from a
//! sheet: a historical 登记日期 kept by the node, and the node's refusals naming the source
//! column their pointer came from.

#[path = "mapping_common/mod.rs"]
mod mapping_common;

use rix_adapters::mapping::Mapping;
use rix_adapters::outcome::MappedRecord;
use rix_adapters::push::{Checkpoint, ItemResult, NodeClient, PushError, PushOptions};
use rix_adapters::row::Origin;
use rix_node::config::{BatchConfig, Config, Role, TlsConfig, TokenConfig};
use rix_schema::RecordKind;
use rix_test_support::keys::signing_key_file;
use rix_test_support::pki::{Issued, write_pem};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-000000000001";
const SHEET: &str = "云南省科技成果登记表2019.xlsx";

/// A server certificate for `localhost` from a throw-away CA, as the node's TLS files; returns
/// the CA's PEM file, which the client takes as its CA file.
fn tls_files(dir: &std::path::Path) -> (TlsConfig, std::path::PathBuf) {
    let ca = Issued::ca("rix test node CA");
    let server = Issued::server(&ca);
    let tls = TlsConfig {
        cert: write_pem(dir, "node.crt", &server.cert_pem()),
        key: write_pem(dir, "node.tls.key", &server.key_pem()),
        client_ca: None,
    };
    (tls, write_pem(dir, "ca.crt", &ca.cert_pem()))
}

fn node_config(dir: &std::path::Path, tls: TlsConfig) -> Config {
    let key_path = dir.join("node.key.pem");
    signing_key_file(&key_path);
    Config {
        node_id: format!("prov-530000-push-{}", std::process::id()),
        name: Some("云南省科学技术厅".into()),
        registration_issuer: "530000".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        database_url: None,
        db_connections: 4,
        amqp_url: None,
        amqp_exchange: "rix.records".into(),
        signing_key: key_path,
        batch: BatchConfig {
            max_entries: 100,
            linger_ms: 20,
        },
        max_body_bytes: 8 * 1024 * 1024,
        tls: Some(tls),
        tokens: vec![TokenConfig {
            token: ADMIN.into(),
            role: Role::Admin,
            institution: None,
            name: Some("导入管理员".into()),
        }],
        gateways: vec![],
        idempotency_retention_days: rix_node::config::default_idempotency_retention_days(),
    }
}

fn fixture() -> Value {
    let mut v: Value =
        serde_json::from_str(include_str!("../../schema/tests/fixtures/achievement.json")).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("registration_no");
    obj.remove("registration_date");
    v
}

fn mapped(row: u64, title: &str, number: Option<&str>) -> MappedRecord {
    let mut record = fixture();
    record["title"] = json!(title);
    MappedRecord {
        origin: Origin {
            file: SHEET.into(),
            sheet: Some("应用技术".into()),
            row,
        },
        kind: RecordKind::Achievement,
        source_key: format!("登记表/{row}"),
        record,
        registration_no: number.map(str::to_owned),
        registration_date: None,
        columns: Default::default(),
    }
}

/// A node on SQLite in `dir`, served over TLS: the node, its base URL and the CA file that
/// trusts it.
async fn start_node(dir: &std::path::Path) -> (rix_node::RunningNode, String, std::path::PathBuf) {
    let (tls, ca) = tls_files(dir);
    let node = rix_node::start(node_config(dir, tls))
        .await
        .expect("node starts");
    let base = format!("https://localhost:{}", node.addr.port());
    (node, base, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_pushed_to_a_real_node_register_once_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (node, base, ca) = start_node(dir.path()).await;

    let mut records: Vec<MappedRecord> = (3..=6)
        .map(|row| mapped(row, &format!("高原特色作物新品种{row}"), None))
        .collect();
    records.push(mapped(7, "历史登记的成果", Some("5300002019Y0042")));
    records.push(mapped(8, "重复登记号的成果", Some("5300002019Y0042")));
    let mut secret = mapped(9, "涉密成果", None);
    secret.record["secrecy"] = json!({"level": "secret"});
    records.push(secret);

    // The client trusts the node's certificate only through the CA file it is given, and does
    // not ask again when it does not.
    let started = std::time::Instant::now();
    let untrusted = NodeClient::new(&base, ADMIN)
        .unwrap()
        .push(&records[..1], true)
        .await
        .unwrap_err();
    assert!(
        matches!(untrusted.error, PushError::Untrusted { .. }),
        "{untrusted}"
    );
    assert!(untrusted.to_string().contains("CA"), "{untrusted}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let options = PushOptions {
        ca_file: Some(ca),
        chunk_size: 3,
        ..PushOptions::default()
    };
    let client = NodeClient::with_options(&base, ADMIN, options).unwrap();

    let first = client.push(&records, true).await.unwrap();
    assert_eq!(
        (first.accepted(), first.approved(), first.refused()),
        (6, 6, 1),
        "{first:#?}"
    );
    assert_eq!(first.classified(), 1);
    let ItemResult::Accepted(historical) = &first.items[4].result else {
        panic!("{:?}", first.items[4])
    };
    assert_eq!(
        historical.registration_no.as_deref(),
        Some("5300002019Y0042")
    );
    assert_eq!(historical.published_version, Some(1));
    let errors = first.items[5].row_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].origin.row, 8);
    assert_eq!(errors[0].pointer, "/registration_no");
    assert!(errors[0].message_en.contains(&historical.id), "{errors:?}");
    let ItemResult::Accepted(kept) = &first.items[6].result else {
        panic!("{:?}", first.items[6])
    };
    assert_eq!(
        (kept.state.as_str(), kept.published_version),
        ("approved", None)
    );

    // Run again: every registered row is a duplicate of itself, nothing new at the node.
    let second = client.push(&records, true).await.unwrap();
    assert_eq!(
        (
            second.accepted(),
            second.duplicates(),
            second.changed(),
            second.refused()
        ),
        (0, 6, 0, 1)
    );
    for (a, b) in first.items.iter().zip(&second.items) {
        if let (ItemResult::Accepted(a), ItemResult::Duplicate { record: b, .. }) =
            (&a.result, &b.result)
        {
            assert_eq!(a.id, b.id);
        }
    }

    // Resumable: the first run records its progress; the next one sends nothing.
    let checkpoint_path = dir.path().join("import.checkpoint.json");
    let mut checkpoint = Checkpoint::open(&checkpoint_path).unwrap();
    let resumed = client
        .push_resumable(&records, true, &mut checkpoint)
        .await
        .unwrap();
    assert_eq!(resumed.duplicates(), 6);
    assert_eq!(checkpoint.rows_through(SHEET, Some("应用技术")), 9);
    let mut checkpoint = Checkpoint::open(&checkpoint_path).unwrap();
    let again = client
        .push_resumable(&records, true, &mut checkpoint)
        .await
        .unwrap();
    assert_eq!(again.skipped(), records.len());

    let metrics = node.metrics.render();
    assert!(
        metrics
            .contains("rix_node_import_items_total{kind=\"achievement\",outcome=\"accepted\"} 6"),
        "{metrics}"
    );
    node.stop().await;
}

/// A mapping of three columns — 成果名称, 批准登记号, 登记日期 — whose other values are the
/// schema fixture's, as `[defaults]`.
fn three_column_mapping() -> Mapping {
    let mut defaults = toml::Table::new();
    for (key, value) in fixture().as_object().unwrap() {
        if key != "title" {
            defaults.insert(format!("/{key}"), toml::Value::try_from(value).unwrap());
        }
    }
    let text = format!(
        "kind = \"achievement\"\nname = \"hist\"\nidentity = [[\"/registration_no\"], [\"/title\"]]\n\
         [[field]]\ncolumn = \"成果名称\"\ntarget = \"/title\"\n\
         [[field]]\ncolumn = \"批准登记号\"\ntarget = \"/registration_no\"\nconvert = \"registration_no\"\n\
         [[field]]\ncolumn = \"登记日期\"\ntarget = \"/registration_date\"\nconvert = \"date\"\n\
         {}",
        toml::to_string(&toml::Table::from_iter([(
            "defaults".to_owned(),
            toml::Value::Table(defaults)
        )]))
        .unwrap()
    );
    Mapping::from_toml(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_historical_date_is_kept_and_node_refusals_name_their_source_column() {
    let dir = tempfile::tempdir().unwrap();
    let (node, base, ca) = start_node(dir.path()).await;
    let options = PushOptions {
        ca_file: Some(ca),
        ..PushOptions::default()
    };
    let client = NodeClient::with_options(&base, ADMIN, options).unwrap();

    let mapping = three_column_mapping();
    let mut mapper = mapping.mapper();
    let row = mapping_common::row;
    assert!(
        mapper
            .map(&row(1, &["成果名称", "批准登记号", "登记日期"]))
            .is_none()
    );
    let mut map = |n: u64, cells: &[&str]| mapper.map(&row(n, cells)).unwrap();
    let kept = map(2, &["历史登记的成果", "5300002019Y0042", "2019年5月20日"]).unwrap();
    assert_eq!(kept.registration_date.as_deref(), Some("2019-05-20"));
    assert_eq!(
        kept.record.get("registration_date"),
        None,
        "beside the record"
    );
    let future = map(
        3,
        &["登记日期在将来的成果", "5300002019Y0043", "2099-01-01"],
    )
    .unwrap();
    let foreign = map(4, &["外省登记的成果", "5100002019Y0044", "2019-06-01"]).unwrap();
    // A date without a number: the node would date the record itself, so the row is refused
    // rather than its date dropped.
    let undated = map(5, &["尚未登记的新成果", "", "2019-06-01"]).unwrap_err();
    assert_eq!(undated.len(), 1, "{undated:?}");
    assert_eq!(
        (undated[0].column.as_deref(), undated[0].pointer.as_str()),
        (Some("登记日期"), "/registration_date")
    );
    assert!(
        undated[0].message_zh.contains("没有批准登记号"),
        "{undated:?}"
    );

    let outcome = client.push(&[kept, future, foreign], false).await.unwrap();
    assert_eq!(
        (outcome.accepted(), outcome.refused()),
        (1, 2),
        "{outcome:#?}"
    );

    // The node keeps the source's 登记日期, not the day of the import.
    let ItemResult::Accepted(registered) = &outcome.items[0].result else {
        panic!("{:?}", outcome.items[0])
    };
    let trusting = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.crt")).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap();
    let url = format!("{base}/v1/achievements/{}", registered.id);
    let response = trusting.get(url).bearer_auth(ADMIN).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["registration_no"], "5300002019Y0042", "{body}");
    assert_eq!(body["record"]["registration_date"], "2019-05-20", "{body}");

    // Each refusal of the node names the column its pointer came from.
    let at = |i: usize| -> Vec<(Option<String>, String)> {
        outcome.items[i]
            .row_errors()
            .into_iter()
            .map(|e| (e.column, e.pointer))
            .collect()
    };
    assert_eq!(
        at(1),
        [(Some("登记日期".to_owned()), "/registration_date".to_owned())]
    );
    assert_eq!(
        at(2),
        [(Some("批准登记号".to_owned()), "/registration_no".to_owned())]
    );
    node.stop().await;
}
