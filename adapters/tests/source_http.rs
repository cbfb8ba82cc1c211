//! The HTTP source against a provincial platform played by wiremock: each paging style, bearer,
//! basic and header credentials checked by the platform, a 500 and a slow page in the middle of
//! a run, repeated items, malformed pages, and the checkpoint that makes the next run ask only
//! for what changed. Configurations are written as the TOML a mapping file holds.

use std::path::Path;
use std::time::Duration;

use rix_adapters::row::{Origin, RowData, SourceRow};
use rix_adapters::source::{HttpSource, HttpSourceConfig, SourceError};
use serde_json::{Value, json};
use wiremock::matchers::{
    basic_auth, bearer_token, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LIST: &str = "/api/achievements";

fn item(id: u64) -> Value {
    json!({"id": id, "title": format!("成果{id}")})
}

fn items(ids: &[u64]) -> Value {
    Value::Array(ids.iter().map(|&id| item(id)).collect())
}

/// A page as the platform wraps it: `{"code":0,"data":{"list":[…]}}`.
fn page(ids: &[u64]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"code": 0, "data": {"list": items(ids)}}))
}

/// A configuration from TOML lines (url and items pointer given, fast retries), as a mapping
/// file's `[source]` section holds it.
fn config(server: &MockServer, extra: &str) -> HttpSourceConfig {
    let text = format!(
        "url = \"{}{LIST}\"\nitems_pointer = \"/data/list\"\nretry = {{ max_attempts = 3, initial_backoff_ms = 10, max_backoff_ms = 50 }}\n{extra}",
        server.uri()
    );
    toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Every page's rows, or the first error.
async fn read_all(source: &mut HttpSource) -> Result<Vec<SourceRow>, SourceError> {
    let mut rows = Vec::new();
    while let Some(page) = source.next_page().await? {
        rows.extend(page);
    }
    assert!(source.is_exhausted());
    Ok(rows)
}

/// (origin file, origin row, id) of each row.
fn summary(rows: &[SourceRow]) -> Vec<(String, u64, u64)> {
    rows.iter()
        .map(|row| match &row.data {
            RowData::Tree(tree) => (
                row.origin.file.clone(),
                row.origin.row,
                tree["id"].as_u64().unwrap(),
            ),
            RowData::Cells(_) => panic!("an API item is a tree"),
        })
        .collect()
}

async fn requests_with(server: &MockServer, query: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.query() == Some(query))
        .count()
}

#[tokio::test]
async fn page_paging_reads_every_page_with_the_bearer_token() {
    let server = MockServer::start().await;
    for (number, ids) in [("1", &[1, 2][..]), ("2", &[3, 4]), ("3", &[])] {
        Mock::given(method("GET"))
            .and(path(LIST))
            .and(query_param("status", "published"))
            .and(query_param("pageNo", number))
            .and(query_param("pageSize", "2"))
            .and(bearer_token("t0k3n"))
            .respond_with(page(ids))
            .expect(1)
            .mount(&server)
            .await;
    }
    let mut source = HttpSource::new(config(
        &server,
        r#"query = { status = "published" }
paging = { style = "page", page_param = "pageNo", size_param = "pageSize", size = 2 }
auth = { type = "bearer", token = "t0k3n" }"#,
    ))
    .unwrap();
    let rows = read_all(&mut source).await.unwrap();
    let url = |n: u32| {
        format!(
            "{}{LIST}?status=published&pageNo={n}&pageSize=2",
            server.uri()
        )
    };
    assert_eq!(
        summary(&rows),
        vec![
            (url(1), 1, 1),
            (url(1), 2, 2),
            (url(2), 3, 3),
            (url(2), 4, 4)
        ]
    );
    assert_eq!(rows[0].data, RowData::Tree(item(1)));
    assert_eq!(source.pages_read(), 3);
    assert_eq!(source.next_page().await.unwrap(), None);
}

#[tokio::test]
async fn offset_paging_advances_by_the_items_received_with_basic_auth() {
    let server = MockServer::start().await;
    // The platform caps pages at 2 items although 3 are asked for.
    for (offset, ids) in [("0", &[1, 2][..]), ("2", &[3, 4]), ("4", &[5]), ("5", &[])] {
        Mock::given(path(LIST))
            .and(query_param("offset", offset))
            .and(query_param("limit", "3"))
            .and(basic_auth("yunnan", "口令pw"))
            .respond_with(page(ids))
            .expect(1)
            .mount(&server)
            .await;
    }
    let mut source = HttpSource::new(config(
        &server,
        r#"paging = { style = "offset", limit = 3 }
auth = { type = "basic", username = "yunnan", password = "口令pw" }"#,
    ))
    .unwrap();
    let rows = read_all(&mut source).await.unwrap();
    let ids: Vec<u64> = summary(&rows).into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        rows[4].origin,
        Origin {
            file: format!("{}{LIST}?offset=4&limit=3", server.uri()),
            sheet: None,
            row: 5
        }
    );
}

#[tokio::test]
async fn cursor_paging_follows_the_next_cursor_with_an_api_key_header() {
    let server = MockServer::start().await;
    let body = |ids: &[u64], next: Value| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"data": {"list": items(ids)}, "meta": {"next": next}}))
    };
    Mock::given(path(LIST))
        .and(query_param_is_missing("cursor"))
        .and(query_param("n", "2"))
        .and(header("X-Api-Key", "key-530000"))
        .respond_with(body(&[1, 2], json!("c2")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(LIST))
        .and(query_param("cursor", "c2"))
        .and(header("X-Api-Key", "key-530000"))
        .respond_with(body(&[3], json!(17)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(LIST))
        .and(query_param("cursor", "17"))
        .and(header("X-Api-Key", "key-530000"))
        .respond_with(body(&[4], Value::Null))
        .expect(1)
        .mount(&server)
        .await;
    let mut source = HttpSource::new(config(
        &server,
        r#"paging = { style = "cursor", next_cursor_pointer = "/meta/next", size_param = "n", size = 2 }
auth = { type = "header", name = "X-Api-Key", value = "key-530000" }"#,
    ))
    .unwrap();
    let rows = read_all(&mut source).await.unwrap();
    let ids: Vec<u64> = summary(&rows).into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn next_link_paging_follows_the_link_header_or_a_link_in_the_page() {
    let server = MockServer::start().await;
    Mock::given(path(LIST))
        .and(query_param_is_missing("p"))
        .respond_with(page(&[1]).insert_header(
            "Link",
            format!("<{LIST}?p=0>; rel=\"prev\", <{LIST}?p=2>; rel=\"next\"").as_str(),
        ))
        .mount(&server)
        .await;
    Mock::given(path(LIST))
        .and(query_param("p", "2"))
        .respond_with(page(&[2]))
        .mount(&server)
        .await;
    let mut source =
        HttpSource::new(config(&server, r#"paging = { style = "next_link" }"#)).unwrap();
    let rows = read_all(&mut source).await.unwrap();
    assert_eq!(
        summary(&rows),
        vec![
            (format!("{}{LIST}", server.uri()), 1, 1),
            (format!("{}{LIST}?p=2", server.uri()), 2, 2),
        ]
    );

    let server = MockServer::start().await;
    Mock::given(path(LIST))
        .and(query_param_is_missing("p"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"list": items(&[1, 2])},
            "links": {"next": format!("{}{LIST}?p=2", server.uri())}
        })))
        .mount(&server)
        .await;
    Mock::given(path(LIST))
        .and(query_param("p", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"list": items(&[3])},
            "links": {"next": null}
        })))
        .mount(&server)
        .await;
    let mut source = HttpSource::new(config(
        &server,
        r#"paging = { style = "next_link", next_pointer = "/links/next" }"#,
    ))
    .unwrap();
    let ids: Vec<u64> = summary(&read_all(&mut source).await.unwrap())
        .into_iter()
        .map(|(_, _, id)| id)
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
}

/// Pages 1 [1,2], 2 [3,4], 3 [] at `page=N&size=2`, with `second` answering page 2.
async fn three_pages(server: &MockServer, second: ResponseTemplate) {
    Mock::given(path(LIST))
        .and(query_param("page", "1"))
        .respond_with(page(&[1, 2]))
        .mount(server)
        .await;
    Mock::given(path(LIST))
        .and(query_param("page", "2"))
        .respond_with(second)
        .mount(server)
        .await;
    Mock::given(path(LIST))
        .and(query_param("page", "3"))
        .respond_with(page(&[]))
        .mount(server)
        .await;
}

const PAGES_OF_TWO: &str = r#"paging = { style = "page", size = 2 }
id_pointer = "/id""#;

#[tokio::test]
async fn a_server_error_in_the_middle_is_retried_and_the_run_completes() {
    let server = MockServer::start().await;
    Mock::given(path(LIST))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(500).set_body_string("数据库繁忙"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    three_pages(&server, page(&[3, 4])).await;
    let mut source = HttpSource::new(config(&server, PAGES_OF_TWO)).unwrap();
    let rows = read_all(&mut source).await.unwrap();
    let ids: Vec<u64> = summary(&rows).into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    assert_eq!(requests_with(&server, "page=2&size=2").await, 2);
}

#[tokio::test]
async fn a_page_slower_than_the_timeout_is_asked_again() {
    let server = MockServer::start().await;
    Mock::given(path(LIST))
        .and(query_param("page", "2"))
        .respond_with(page(&[3, 4]).set_delay(Duration::from_secs(2)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    three_pages(&server, page(&[3, 4])).await;
    let mut source = HttpSource::new(config(
        &server,
        &format!("{PAGES_OF_TWO}\ntimeout_ms = 300"),
    ))
    .unwrap();
    let rows = read_all(&mut source).await.unwrap();
    let ids: Vec<u64> = summary(&rows).into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    assert_eq!(requests_with(&server, "page=2&size=2").await, 2);
}

#[tokio::test]
async fn items_repeated_on_a_later_page_are_yielded_once() {
    let server = MockServer::start().await;
    three_pages(&server, page(&[2, 3])).await;
    let mut source = HttpSource::new(config(&server, PAGES_OF_TWO)).unwrap();
    let rows = read_all(&mut source).await.unwrap();
    let url = |n: u32| format!("{}{LIST}?page={n}&size=2", server.uri());
    // Item 2 is the third item received, but the second yielded.
    assert_eq!(
        summary(&rows),
        vec![(url(1), 1, 1), (url(1), 2, 2), (url(2), 4, 3)]
    );
}

#[tokio::test]
async fn a_page_of_nothing_but_repeats_stops_the_run_instead_of_looping() {
    let server = MockServer::start().await;
    three_pages(&server, page(&[1, 2])).await;
    let mut source = HttpSource::new(config(&server, PAGES_OF_TWO)).unwrap();
    match read_all(&mut source).await {
        Err(SourceError::Http {
            url, page, message, ..
        }) => {
            assert_eq!(url, format!("{}{LIST}?page=2&size=2", server.uri()));
            assert_eq!(page, 2);
            assert!(message.contains("already read"), "{message}");
        }
        other => panic!("expected the repeating page refused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_page_fails_after_the_retries_naming_the_url_and_the_page() {
    for (body, expected) in [
        (
            ResponseTemplate::new(200).set_body_string("<html>系统维护中</html>"),
            "the page is not JSON (line 1 column 1: expected value); it starts \"<html>系统维护中</html>\"",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"code": 500, "data": null})),
            "the page has no array of items at \"/data/list\"; check [source] items_pointer",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_string(r#"{"data":{"list":[]},"data":{"list":[{"id":9}]}}"#),
            "the page is not JSON (/data is given twice (line 1 column 26); a key may appear only once in an object); it starts \"{\\\"data\\\":{\\\"list\\\":[]},\\\"data\\\":{\\\"list\\\":[{\\\"id\\\":9}]}}\"",
        ),
    ] {
        let server = MockServer::start().await;
        three_pages(&server, body).await;
        let mut source = HttpSource::new(config(&server, PAGES_OF_TWO)).unwrap();
        let first = source.next_page().await.unwrap().unwrap();
        assert_eq!(first.len(), 2);
        match source.next_page().await {
            Err(SourceError::Http {
                url,
                page,
                attempts,
                message,
            }) => {
                assert_eq!(url, format!("{}{LIST}?page=2&size=2", server.uri()));
                assert_eq!((page, attempts), (2, 3));
                assert_eq!(message, expected);
            }
            other => panic!("expected the malformed page refused, got {other:?}"),
        }
        assert_eq!(requests_with(&server, "page=2&size=2").await, 3);
        assert!(!source.is_exhausted());
    }
}

#[tokio::test]
async fn a_refused_request_is_not_asked_again() {
    let server = MockServer::start().await;
    Mock::given(path(LIST))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let mut source = HttpSource::new(config(
        &server,
        r#"paging = { style = "single" }
auth = { type = "bearer", token = "expired" }"#,
    ))
    .unwrap();
    match source.next_page().await {
        Err(SourceError::Http {
            attempts, message, ..
        }) => {
            assert_eq!(attempts, 1);
            assert_eq!(
                message,
                "the platform answered 403 Forbidden; check the credentials in [source.auth]"
            );
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

fn incremental(checkpoint: &Path) -> String {
    format!(
        r#"paging = {{ style = "page", size = 10 }}
id_pointer = "/id"
incremental = {{ param = "updatedSince", modified_pointer = "/updated_at", checkpoint = "{}" }}"#,
        checkpoint.display()
    )
}

fn changed(id: u64, updated_at: &str) -> Value {
    json!({"id": id, "updated_at": updated_at})
}

#[tokio::test]
async fn the_checkpoint_makes_the_next_run_ask_only_for_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("state").join("yunnan.json");
    let server = MockServer::start().await;
    let list = |items: Vec<Value>| {
        ResponseTemplate::new(200).set_body_json(json!({"data": {"list": items}}))
    };
    Mock::given(path(LIST))
        .and(query_param_is_missing("updatedSince"))
        .and(query_param("page", "1"))
        .respond_with(list(vec![
            changed(1, "2024-03-01T08:00:00Z"),
            changed(2, "2024-03-05T10:00:00Z"),
            changed(3, "2024-03-03T09:00:00Z"),
        ]))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(LIST))
        .and(query_param_is_missing("updatedSince"))
        .and(query_param("page", "2"))
        .respond_with(list(vec![]))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(LIST))
        .and(query_param("updatedSince", "2024-03-05T10:00:00Z"))
        .and(query_param("page", "1"))
        .respond_with(list(vec![changed(3, "2024-03-06T11:30:00Z")]))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(LIST))
        .and(query_param("updatedSince", "2024-03-05T10:00:00Z"))
        .and(query_param("page", "2"))
        .respond_with(list(vec![]))
        .expect(1)
        .mount(&server)
        .await;

    let mut first = HttpSource::new(config(&server, &incremental(&checkpoint))).unwrap();
    assert_eq!(first.modified_since(), None);
    assert_eq!(first.next_page().await.unwrap().unwrap().len(), 3);
    // Not every page is read yet: saving now could skip changes on the pages left.
    assert!(matches!(
        first.save_checkpoint(),
        Err(SourceError::Checkpoint { .. })
    ));
    assert!(!checkpoint.exists());
    assert_eq!(first.next_page().await.unwrap(), None);
    first.save_checkpoint().unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(
        saved,
        json!({"url": format!("{}{LIST}", server.uri()), "modified_since": "2024-03-05T10:00:00Z"})
    );

    let mut second = HttpSource::new(config(&server, &incremental(&checkpoint))).unwrap();
    assert_eq!(
        second.modified_since(),
        Some(&json!("2024-03-05T10:00:00Z"))
    );
    let rows = read_all(&mut second).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].origin.file,
        format!(
            "{}{LIST}?updatedSince=2024-03-05T10%3A00%3A00Z&page=1&size=10",
            server.uri()
        )
    );
    second.save_checkpoint().unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(saved["modified_since"], json!("2024-03-06T11:30:00Z"));
    let left: Vec<String> = std::fs::read_dir(checkpoint.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec!["yunnan.json"],
        "no temporary file is left behind"
    );
}

#[tokio::test]
async fn a_checkpoint_of_another_platform_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("guizhou.json");
    std::fs::write(
        &checkpoint,
        r#"{"url": "https://gz.example/api", "modified_since": 17}"#,
    )
    .unwrap();
    let server = MockServer::start().await;
    match HttpSource::new(config(&server, &incremental(&checkpoint))) {
        Err(SourceError::Checkpoint { path, message }) => {
            assert_eq!(path, checkpoint.display().to_string());
            assert!(message.contains("https://gz.example/api"), "{message}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("another platform's checkpoint was accepted"),
    }
}

#[tokio::test]
async fn a_source_and_its_page_futures_can_move_to_another_task() {
    fn sendable<T: Send>(value: T) -> T {
        value
    }
    let server = MockServer::start().await;
    Mock::given(path(LIST))
        .respond_with(page(&[7]))
        .mount(&server)
        .await;
    let mut source =
        sendable(HttpSource::new(config(&server, r#"paging = { style = "single" }"#)).unwrap());
    let rows = tokio::spawn(async move { sendable(source.next_page()).await })
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(rows.len(), 1);
}

#[test]
fn the_configuration_refuses_unknown_keys_and_unset_secrets() {
    let refused = toml::from_str::<HttpSourceConfig>(
        "url = \"https://p.example/api\"\nitems_pointer = \"\"\npaging = { style = \"page\", pages = 3 }\n",
    );
    assert!(refused.unwrap_err().to_string().contains("pages"));
    let refused = toml::from_str::<HttpSourceConfig>(
        "url = \"https://p.example/api\"\nitems_pointer = \"\"\npaging = { style = \"single\" }\ntimeout = 5\n",
    );
    assert!(refused.unwrap_err().to_string().contains("timeout"));
    let config: HttpSourceConfig = toml::from_str(
        "url = \"https://p.example/api\"\nitems_pointer = \"\"\npaging = { style = \"single\" }\nauth = { type = \"bearer\", token_env = \"RIX_TEST_TOKEN_THAT_IS_NEVER_SET\" }\n",
    )
    .unwrap();
    match HttpSource::new(config) {
        Err(SourceError::Options { message }) => {
            assert!(
                message.contains("RIX_TEST_TOKEN_THAT_IS_NEVER_SET"),
                "{message}"
            )
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("an unset token was accepted"),
    }
    let config: HttpSourceConfig = toml::from_str(
        "url = \"https://p.example/api\"\nitems_pointer = \"data\"\npaging = { style = \"single\" }\n",
    )
    .unwrap();
    assert!(matches!(
        HttpSource::new(config),
        Err(SourceError::Options { .. })
    ));
}
