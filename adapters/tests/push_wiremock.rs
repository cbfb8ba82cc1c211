//! The push client against `wiremock` standing in for a node: chunking by size and kind,
//! retries (5xx, 429 with `Retry-After`, a node that is not there) and none on 4xx, a chunk too
//! large split in halves, the node's per-item answers tied back to their rows, and the
//! checkpoint that lets an interrupted push resume.

use std::time::{Duration, Instant};

use rix_adapters::outcome::MappedRecord;
use rix_adapters::push::{Checkpoint, ItemResult, NodeClient, PushError, PushOptions, RetryPolicy};
use rix_adapters::row::Origin;
use rix_schema::RecordKind;
use serde_json::{Value, json};
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "admin-token-000000000001";

fn origin(file: &str, row: u64) -> Origin {
    Origin {
        file: file.into(),
        sheet: Some("登记表".into()),
        row,
    }
}

fn record(kind: RecordKind, row: u64) -> MappedRecord {
    MappedRecord {
        origin: origin("成果.xlsx", row),
        kind,
        source_key: format!("成果.xlsx#{row}"),
        record: json!({"title": format!("成果{row}"), "secrecy": {"level": "public"}}),
        registration_no: None,
        registration_date: None,
        columns: Default::default(),
    }
}

fn achievements(rows: std::ops::RangeInclusive<u64>) -> Vec<MappedRecord> {
    rows.map(|r| record(RecordKind::Achievement, r)).collect()
}

/// Fast retries, so the tests wait for what they test only.
fn options(chunk_size: usize, max_attempts: u32) -> PushOptions {
    PushOptions {
        chunk_size,
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(5),
        },
        ..PushOptions::default()
    }
}

/// What a node answers when it registers every item: ids from the source keys.
fn accept_all(request: &Request) -> ResponseTemplate {
    let body: Value = request.body_json().unwrap();
    let items: Vec<Value> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let approved = item.get("approve").is_some() || item.get("registration_no").is_some();
            json!({
                "index": index,
                "source_key": item["source_key"],
                "id": format!("id-{}", item["source_key"].as_str().unwrap()),
                "version": 1,
                "state": if approved { "approved" } else { "submitted" },
                "registration_no": item.get("registration_no"),
                "published_version": if approved { json!(1) } else { Value::Null },
                "duplicate": false,
                "changed": false,
            })
        })
        .collect();
    let n = items.len();
    ResponseTemplate::new(200).set_body_json(
        json!({"items": items, "accepted": n, "duplicates": 0, "refused": 0, "approved": 0}),
    )
}

fn problem(status: u16, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        json!({"type": "about:blank", "title": "x", "status": status, "detail": detail,
               "errors": [{"pointer": "/headers/authorization", "message": detail}]})
        .to_string(),
        "application/problem+json",
    )
}

async fn requests(server: &MockServer) -> Vec<(String, Value)> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.url.path().to_owned(), r.body_json().unwrap()))
        .collect()
}

#[tokio::test]
async fn records_go_in_chunks_of_one_kind_in_source_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(accept_all)
        .mount(&server)
        .await;
    let mut records = achievements(1..=7);
    records.push(record(RecordKind::FundedProject, 8));
    records.push(record(RecordKind::FundedProject, 9));
    records.push(record(RecordKind::Achievement, 10));
    records[0].registration_no = Some("5300002019Y0042".into());
    let client = NodeClient::with_options(&server.uri(), TOKEN, options(3, 1)).unwrap();
    let outcome = client.push(&records, true).await.unwrap();

    let sent = requests(&server).await;
    let shape: Vec<(&str, usize)> = sent
        .iter()
        .map(|(p, b)| (p.as_str(), b["items"].as_array().unwrap().len()))
        .collect();
    assert_eq!(
        shape,
        [
            ("/v1/achievements/import", 3),
            ("/v1/achievements/import", 3),
            ("/v1/achievements/import", 1),
            ("/v1/projects/import", 2),
            ("/v1/achievements/import", 1),
        ]
    );
    // A numbered record is sent with its number (the node approves it as such); the others
    // carry `approve`.
    assert_eq!(
        sent[0].1["items"][0],
        json!({"source_key": "成果.xlsx#1", "record": records[0].record, "registration_no": "5300002019Y0042"})
    );
    assert_eq!(sent[0].1["items"][1]["approve"], true);

    assert_eq!(outcome.items.len(), 10);
    for (item, record) in outcome.items.iter().zip(&records) {
        assert_eq!(item.origin, record.origin);
        let ItemResult::Accepted(r) = &item.result else {
            panic!("{item:?}")
        };
        assert_eq!(r.id, format!("id-{}", record.source_key));
    }
    assert_eq!((outcome.accepted(), outcome.approved()), (10, 10));

    // Without `approve`, nothing asks for it.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accept_all)
        .mount(&server)
        .await;
    let client = NodeClient::with_options(&server.uri(), TOKEN, options(500, 1)).unwrap();
    let outcome = client.push(&achievements(1..=3), false).await.unwrap();
    assert_eq!(outcome.approved(), 0);
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].1["items"][0].get("approve").is_none());
}

#[tokio::test]
async fn server_errors_are_retried_and_a_refused_request_is_not() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(problem(503, "database unavailable"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(accept_all)
        .with_priority(2)
        .mount(&server)
        .await;
    let client = NodeClient::with_options(&server.uri(), TOKEN, options(500, 5)).unwrap();
    let outcome = client.push(&achievements(1..=4), false).await.unwrap();
    assert_eq!(outcome.accepted(), 4);
    assert_eq!(
        requests(&server).await.len(),
        3,
        "two 503s, then the answer"
    );

    // A node that keeps failing: the push gives up after its attempts, saying what it got.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(problem(500, "boom"))
        .expect(3)
        .mount(&server)
        .await;
    let client = NodeClient::with_options(&server.uri(), TOKEN, options(500, 3)).unwrap();
    let failed = client.push(&achievements(1..=2), false).await.unwrap_err();
    match &failed.error {
        PushError::Unavailable {
            status,
            attempts,
            detail,
        } => assert_eq!((*status, *attempts, detail.as_str()), (500, 3, "boom")),
        other => panic!("{other:?}"),
    }

    // 4xx: asked once. What was pushed before it is in the failure.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accept_all)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(problem(401, "a valid bearer token is required"))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let client = NodeClient::with_options(&server.uri(), TOKEN, options(2, 8)).unwrap();
    let failed = client.push(&achievements(1..=4), false).await.unwrap_err();
    assert_eq!(failed.done.accepted(), 2);
    match &failed.error {
        PushError::Refused { status, errors, .. } => {
            assert_eq!(*status, 401);
            assert_eq!(errors[0].pointer, "/headers/authorization");
        }
        other => panic!("{other:?}"),
    }
    assert!(failed.to_string().contains("--token"), "{failed}");
}

/// The `Idempotency-Key` of each request the server received, in order.
async fn idempotency_keys(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .expect("every import request carries an Idempotency-Key")
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_retried_request_carries_the_same_idempotency_key_and_another_push_another() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(problem(503, "database unavailable"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(accept_all)
        .with_priority(2)
        .mount(&server)
        .await;
    let records = achievements(1..=4);
    let client = NodeClient::with_options(&server.uri(), TOKEN, options(2, 5)).unwrap();
    client.push(&records, false).await.unwrap();
    let keys = idempotency_keys(&server).await;
    assert_eq!(keys.len(), 3, "a 503, its retry, then the second chunk");
    assert_eq!(keys[0], keys[1], "a retry is the same request");
    assert_ne!(keys[1], keys[2], "another chunk is another request");
    assert!(
        keys.iter()
            .all(|k| (1..=200).contains(&k.len()) && k.is_ascii())
    );

    // Pushing the same rows again — the same client, or a new one (another run) — is another
    // push: other keys, so the node's per-row keys answer it (duplicates) instead of a stored
    // answer.
    client.push(&records[..2], false).await.unwrap();
    let again = NodeClient::with_options(&server.uri(), TOKEN, options(2, 5)).unwrap();
    again.push(&records[..2], false).await.unwrap();
    let keys = idempotency_keys(&server).await;
    assert_eq!(keys.len(), 5);
    assert_ne!(
        keys[3], keys[0],
        "another push of the same rows: another key"
    );
    assert_ne!(keys[4], keys[0], "another run: another key");
    assert_ne!(keys[4], keys[3]);
}

#[tokio::test]
async fn retry_after_is_waited_for() {
    for as_date in [false, true] {
        // Seconds, or an HTTP date (whole seconds: two ahead is at least one away).
        let retry_after = match as_date {
            false => "1".to_owned(),
            true => http_date_in(Duration::from_secs(2)),
        };
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429).insert_header("retry-after", retry_after.as_str()),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(accept_all)
            .with_priority(2)
            .mount(&server)
            .await;
        let client = NodeClient::with_options(&server.uri(), TOKEN, options(500, 3)).unwrap();
        let started = Instant::now();
        let outcome = client.push(&achievements(1..=1), false).await.unwrap();
        assert_eq!(outcome.accepted(), 1);
        // The backoff alone is milliseconds; the header asks for (about) a second or more.
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "Retry-After {retry_after:?} waited only {:?}",
            started.elapsed()
        );
    }
}

fn http_date_in(d: Duration) -> String {
    let at = time::OffsetDateTime::now_utc() + d;
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.format(&format).unwrap()
}

#[tokio::test]
async fn a_node_that_is_not_there_is_retried_then_given_up() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client =
        NodeClient::with_options(&format!("http://127.0.0.1:{port}"), TOKEN, options(500, 3))
            .unwrap();
    let failed = client.push(&achievements(1..=2), false).await.unwrap_err();
    match &failed.error {
        PushError::Unreachable { attempts, url, .. } => {
            assert_eq!(*attempts, 3);
            assert_eq!(
                url,
                &format!("http://127.0.0.1:{port}/v1/achievements/import")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(failed.done.items.is_empty());
}

#[tokio::test]
async fn a_chunk_too_large_is_halved_and_a_record_too_large_alone_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(|request: &Request| {
            let body: Value = request.body_json().unwrap();
            let items = body["items"].as_array().unwrap();
            let huge = items.iter().any(|i| i["source_key"] == "成果.xlsx#4");
            if items.len() > 2 || huge {
                problem(413, "the request body is larger than 1024 bytes")
            } else {
                accept_all(request)
            }
        })
        .mount(&server)
        .await;
    let client = NodeClient::with_options(&server.uri(), TOKEN, options(500, 1)).unwrap();
    let outcome = client.push(&achievements(1..=6), false).await.unwrap();
    let rows: Vec<(u64, bool)> = outcome
        .items
        .iter()
        .map(|i| (i.origin.row, matches!(i.result, ItemResult::Accepted(_))))
        .collect();
    assert_eq!(
        rows,
        [
            (1, true),
            (2, true),
            (3, true),
            (4, false),
            (5, true),
            (6, true)
        ],
        "in order, only the huge one refused"
    );
    assert!(matches!(
        outcome.items[3].result,
        ItemResult::Refused { status: 413, .. }
    ));
}

#[tokio::test]
async fn the_nodes_answer_for_each_record_comes_back_with_its_row() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [
                {"index": 0, "source_key": "成果.xlsx#1", "id": "ach-000001", "version": 1, "state": "approved",
                 "registration_no": "5300002019Y0042", "published_version": null, "duplicate": false, "changed": false},
                {"index": 1, "source_key": "成果.xlsx#2", "id": "ach-000002", "version": 2, "state": "approved",
                 "registration_no": "5300002026Y0001", "published_version": 2, "duplicate": true, "changed": true},
                {"index": 2, "source_key": "成果.xlsx#3", "status": 422, "errors_total": 2, "errors": [
                    {"pointer": "/items/2/record/title", "message": "is required"},
                    {"pointer": "/items/2/approve", "message": "only reviewers may approve"}]},
                {"index": 3, "source_key": "成果.xlsx#4", "status": 409, "errors_total": 1, "errors": [
                    {"pointer": "/items/3/registration_no", "message": "already used at this node, by ach-000001"}]},
            ],
            "accepted": 1, "duplicates": 1, "refused": 2, "approved": 1
        })))
        .mount(&server)
        .await;
    let mut records = achievements(1..=4);
    records[0].record["secrecy"]["level"] = json!("secret");
    let client = NodeClient::new(&server.uri(), TOKEN).unwrap();
    let outcome = client.push(&records, false).await.unwrap();
    assert_eq!(
        (
            outcome.accepted(),
            outcome.duplicates(),
            outcome.changed(),
            outcome.refused(),
            outcome.classified()
        ),
        (1, 1, 1, 2, 1)
    );
    assert!(matches!(
        &outcome.items[1].result,
        ItemResult::Duplicate { changed: true, record } if record.id == "ach-000002"
    ));
    let errors = outcome.items[2].row_errors();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].origin, origin("成果.xlsx", 3));
    assert_eq!(errors[0].pointer, "/title");
    assert_eq!(
        errors[1].pointer, "",
        "an item member is no field of the record"
    );
    assert!(errors[1].message_en.contains("approve: only reviewers"));
    assert!(errors[0].message_zh.starts_with("节点拒绝（422）"));
    let errors = outcome.items[3].row_errors();
    assert_eq!(errors[0].pointer, "/registration_no");
    assert_eq!(errors[0].origin.row, 4);
    assert!(outcome.items[0].row_errors().is_empty());
    // An outcome reads as one flat JSON object per row (for a summary file).
    assert_eq!(
        serde_json::to_value(&outcome.items[1]).unwrap(),
        json!({"origin": {"file": "成果.xlsx", "sheet": "登记表", "row": 2}, "source_key": "成果.xlsx#2",
               "classified": false, "outcome": "duplicate", "changed": true,
               "record": {"id": "ach-000002", "version": 2, "state": "approved",
                          "registration_no": "5300002026Y0001", "published_version": 2}})
    );
    assert_eq!(
        serde_json::to_value(&outcome.items[0]).unwrap()["outcome"],
        "accepted"
    );

    // An answer that does not fit the request is an error, not a guess.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(&server)
        .await;
    let client = NodeClient::new(&server.uri(), TOKEN).unwrap();
    let failed = client.push(&records, false).await.unwrap_err();
    assert!(
        matches!(failed.error, PushError::BadResponse(_)),
        "{failed}"
    );
}

#[tokio::test]
async fn an_interrupted_push_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("import.checkpoint.json");
    let records = achievements(2..=7);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/v1/achievements/import"))
        .respond_with(accept_all)
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(problem(502, "bad gateway"))
        .with_priority(2)
        .mount(&server)
        .await;
    let client = NodeClient::with_options(&server.uri(), TOKEN, options(2, 2)).unwrap();
    let mut checkpoint = Checkpoint::open(&path).unwrap();
    assert_eq!(
        checkpoint.begin("成果.xlsx", Some("登记表"), Some("size=1")),
        0
    );
    let failed = client
        .push_resumable(&records, false, &mut checkpoint)
        .await
        .unwrap_err();
    assert_eq!(failed.done.accepted(), 4);
    let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        saved,
        json!({"format": "rix-import-checkpoint/1", "sources": [
            {"file": "成果.xlsx", "sheet": "登记表", "fingerprint": "size=1", "rows_through": 5}]})
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    // The next run reads the checkpoint and sends only what is left.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accept_all)
        .mount(&server)
        .await;
    let client = NodeClient::with_options(&server.uri(), TOKEN, options(2, 2)).unwrap();
    let mut checkpoint = Checkpoint::open(&path).unwrap();
    assert_eq!(
        checkpoint.begin("成果.xlsx", Some("登记表"), Some("size=1")),
        5
    );
    let outcome = client
        .push_resumable(&records, false, &mut checkpoint)
        .await
        .unwrap();
    assert_eq!((outcome.skipped(), outcome.accepted()), (4, 2));
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1["items"][0]["source_key"], "成果.xlsx#6");
    assert_eq!(
        Checkpoint::open(&path)
            .unwrap()
            .rows_through("成果.xlsx", Some("登记表")),
        7
    );

    // A changed source starts again from its first row; the node's keys make that harmless.
    let mut checkpoint = Checkpoint::open(&path).unwrap();
    assert_eq!(
        checkpoint.begin("成果.xlsx", Some("登记表"), Some("size=2")),
        0
    );
    assert!(!checkpoint.is_done(&origin("成果.xlsx", 2)));
    checkpoint.remove().unwrap();
    assert!(!path.exists());

    // A file that is not a checkpoint is not taken for an empty one.
    std::fs::write(&path, b"{\"rows\": 12}").unwrap();
    let err = Checkpoint::open(&path).unwrap_err();
    assert!(err.to_string().contains("delete it"), "{err}");
}

#[test]
fn a_client_is_refused_what_it_cannot_use() {
    for (url, token) in [
        ("ftp://node.example", TOKEN),
        ("not a url", TOKEN),
        ("http://127.0.0.1:8081", ""),
        ("http://127.0.0.1:8081", "two words"),
    ] {
        assert!(
            matches!(NodeClient::new(url, token), Err(PushError::Setup(_))),
            "{url} {token:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, b"not a certificate").unwrap();
    for ca in [dir.path().join("missing.pem"), not_pem] {
        let options = PushOptions {
            ca_file: Some(ca.clone()),
            ..PushOptions::default()
        };
        let err = NodeClient::with_options("https://127.0.0.1:8081", TOKEN, options).unwrap_err();
        assert!(err.to_string().contains(&ca.display().to_string()), "{err}");
    }
    let options = PushOptions {
        chunk_size: 1001,
        ..PushOptions::default()
    };
    assert!(NodeClient::with_options("http://127.0.0.1:8081", TOKEN, options).is_err());
}
