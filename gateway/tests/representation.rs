//! HTTP as researchers' tools expect it: validators and `304 Not Modified` on record details
//! and statistics, `Link: rel="next"` on paged answers, `fields=` on search, the change feed and
//! exports, gzip and brotli negotiated, and the discovery document at `/v1`.
//!
//! Tried as an attacker too: a change hidden from a reader moves neither validator of what
//! that reader gets (an `ETag` or a date that moved would tell them something changed).

mod common;

use std::io::Read;
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::{App, test, web};
use rix_gateway::access;
use rix_gateway::api;
use rix_gateway::ingest::Transport;
use rix_schema::sensitivity::Entitlements;
use serde_json::{Value, json};

use common::{Backend, FakeNode, read_state};

fn public(record: &mut Value) {
    record["secrecy"] = json!({"level": "public"});
    record
        .as_object_mut()
        .unwrap()
        .remove("confidential_fields");
}

fn internal(record: &mut Value) {
    public(record);
    record["secrecy"] = json!({"level": "internal"});
}

fn header_of(resp: &ServiceResponse, name: header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// `GET uri` with `headers`: status, ETag, Last-Modified, body.
macro_rules! get {
    ($app:expr, $uri:expr $(, $h:expr)*) => {{
        let req = test::TestRequest::get().uri($uri)$(.insert_header($h))*.to_request();
        let resp = test::call_service($app, req).await;
        let status = resp.status().as_u16();
        let etag = header_of(&resp, header::ETAG);
        let modified = header_of(&resp, header::LAST_MODIFIED);
        let link = header_of(&resp, header::LINK);
        let body = test::read_body(resp).await.to_vec();
        (status, etag, modified, link, body)
    }};
}

#[actix_web::test]
async fn details_and_stats_carry_validators_and_answer_304_until_they_change() {
    let gw = common::Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 21, 0.0);
    node.trust(&gw.db, None);
    gw.ingest
        .ingest(&node.seal_edited(12, |_, r| public(r)), Transport::Amqp)
        .unwrap();
    let state = web::Data::new(read_state(&gw.db));
    let app =
        test::init_service(App::new().app_data(state.clone()).configure(api::configure)).await;
    let record = format!("/v1/records/{}/a00001", node.node_id);
    for uri in [record.as_str(), "/v1/stats?by=region"] {
        let (status, etag, modified, _, body) = get!(&app, uri);
        assert_eq!(status, 200, "{uri}");
        let etag = etag.expect("an ETag");
        assert!(etag.starts_with("W/\""), "{uri}: {etag}");
        let modified = modified.expect("a Last-Modified");
        assert!(!body.is_empty());
        // The tag names these bytes: asked again, the same.
        let (_, again, _, _, _) = get!(&app, uri);
        assert_eq!(again.as_deref(), Some(etag.as_str()), "{uri}");

        let (status, etag_304, _, _, body) = get!(&app, uri, (header::IF_NONE_MATCH, etag.clone()));
        assert_eq!(status, 304, "{uri}: If-None-Match");
        assert!(body.is_empty(), "{uri}: a 304 has no body");
        assert_eq!(etag_304.as_deref(), Some(etag.as_str()));
        let (status, ..) = get!(&app, uri, (header::IF_NONE_MATCH, "*".to_owned()));
        assert_eq!(status, 304, "{uri}: any tag");
        let (status, ..) = get!(
            &app,
            uri,
            (
                header::IF_NONE_MATCH,
                format!("\"other\", {}", etag.trim_start_matches("W/"))
            )
        );
        assert_eq!(status, 304, "{uri}: its tag in a list, compared weakly");
        let (status, ..) = get!(&app, uri, (header::IF_NONE_MATCH, "\"other\"".to_owned()));
        assert_eq!(status, 200, "{uri}: another tag");
        let (status, ..) = get!(&app, uri, (header::IF_MODIFIED_SINCE, modified.clone()));
        assert_eq!(status, 304, "{uri}: If-Modified-Since its own date");
        let (status, ..) = get!(
            &app,
            uri,
            (
                header::IF_MODIFIED_SINCE,
                "Mon, 01 Jan 2001 00:00:00 GMT".to_owned()
            )
        );
        assert_eq!(status, 200, "{uri}: modified since 2001");
        // If-None-Match decides when both are sent (RFC 9110 §13.2.2).
        let (status, ..) = get!(
            &app,
            uri,
            (header::IF_NONE_MATCH, "\"other\"".to_owned()),
            (header::IF_MODIFIED_SINCE, modified.clone())
        );
        assert_eq!(status, 200, "{uri}: If-None-Match first");
    }

    // A new version of the record (and a new record for the counts): the old tags no longer
    // match, and a client holding them gets the new bytes.
    let (_, record_tag, ..) = get!(&app, &record);
    let (_, stats_tag, ..) = get!(&app, "/v1/stats?by=region");
    std::thread::sleep(Duration::from_millis(1100));
    gw.ingest
        .ingest(
            &node.seal(vec![
                common::Change::Revise("a00001".into()),
                common::Change::New,
            ]),
            Transport::Amqp,
        )
        .unwrap();
    state.search.sync(&gw.db).unwrap();
    for (uri, old) in [
        (record.as_str(), record_tag.unwrap()),
        ("/v1/stats?by=region", stats_tag.unwrap()),
    ] {
        let (status, etag, ..) = get!(&app, uri, (header::IF_NONE_MATCH, old.clone()));
        assert_eq!(status, 200, "{uri}: changed");
        assert_ne!(etag.unwrap(), old, "{uri}");
    }
}

#[actix_web::test]
async fn a_change_hidden_from_a_reader_moves_none_of_their_validators() {
    let gw = common::Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 22, 0.0);
    node.trust(&gw.db, None);
    gw.ingest
        .ingest(&node.seal_edited(10, |_, r| public(r)), Transport::Amqp)
        .unwrap();
    let token = "representation-internal-reader-0123456789";
    let internal_reader = Entitlements {
        internal: true,
        ..Entitlements::PUBLIC
    };
    access::add_token_value(&gw.db, "internal reader", internal_reader, token).unwrap();
    let state = web::Data::new(read_state(&gw.db));
    let app =
        test::init_service(App::new().app_data(state.clone()).configure(api::configure)).await;
    let record = format!("/v1/records/{}/a00001", node.node_id);
    let bearer = (header::AUTHORIZATION, format!("Bearer {token}"));
    let before_public = {
        let (_, s_tag, s_mod, _, _) = get!(&app, "/v1/stats?by=region");
        let (_, r_tag, r_mod, _, _) = get!(&app, &record);
        (s_tag, s_mod, r_tag, r_mod)
    };
    let (_, before_internal, ..) = get!(&app, "/v1/stats?by=region", bearer.clone());

    // A second later, internal records arrive: the public reader may not hear of them.
    std::thread::sleep(Duration::from_millis(1100));
    gw.ingest
        .ingest(&node.seal_edited(5, |_, r| internal(r)), Transport::Amqp)
        .unwrap();
    state.search.sync(&gw.db).unwrap();
    let after_public = {
        let (_, s_tag, s_mod, _, _) = get!(&app, "/v1/stats?by=region");
        let (_, r_tag, r_mod, _, _) = get!(&app, &record);
        (s_tag, s_mod, r_tag, r_mod)
    };
    assert_eq!(
        after_public, before_public,
        "the public reader's ETag and Last-Modified do not move for a change hidden from them"
    );
    let (status, ..) = get!(
        &app,
        "/v1/stats?by=region",
        (header::IF_NONE_MATCH, before_public.0.clone().unwrap())
    );
    assert_eq!(status, 304);
    // Positive control: the internal reader's counts did change, and so did their tag.
    let (_, after_internal, ..) = get!(&app, "/v1/stats?by=region", bearer.clone());
    assert_ne!(after_internal, before_internal);
}

#[actix_web::test]
async fn pages_link_to_the_next_and_fields_take_only_what_is_named() {
    let gw = common::Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 23, 0.0);
    node.trust(&gw.db, None);
    gw.ingest
        .ingest(&node.seal_edited(7, |_, r| public(r)), Transport::Amqp)
        .unwrap();
    let state = web::Data::new(read_state(&gw.db));
    let app =
        test::init_service(App::new().app_data(state.clone()).configure(api::configure)).await;
    let link_target = |link: &str| {
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        link[1..link.find('>').unwrap()].to_owned()
    };

    // Search: following Link walks every page exactly once; the last page has no Link.
    let mut uri = "/v1/search?sort=date&limit=3&fields=title".to_owned();
    let mut seen = Vec::new();
    loop {
        let (status, _, _, link, body) = get!(&app, &uri);
        assert_eq!(status, 200, "{uri}");
        let page: Value = serde_json::from_slice(&body).unwrap();
        for item in page["items"].as_array().unwrap() {
            let keys: Vec<&str> = item
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                ["title", "unified_id"],
                "fields=title keeps the title and the id"
            );
            seen.push(item["unified_id"].as_str().unwrap().to_owned());
        }
        match (link, page["next_cursor"].as_str()) {
            (Some(link), Some(_)) => {
                uri = link_target(&link);
                assert!(uri.starts_with("/v1/search?"), "{uri}");
                assert!(
                    uri.contains("limit=3") && uri.contains("fields=title"),
                    "{uri}"
                );
            }
            (None, None) => break,
            (link, cursor) => panic!("Link {link:?} and next_cursor {cursor:?} disagree"),
        }
    }
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((seen.len(), distinct.len()), (7, 7));

    // The change feed: Link carries the next position, and fields cut each record.
    let (_, _, _, link, body) = get!(&app, "/v1/changes?limit=4&fields=title,keywords");
    let lines: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for line in &lines {
        let mut keys: Vec<&str> = line["record"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(keys, ["keywords", "title"]);
        assert!(line["unified_id"].is_string() && line["cursor"].is_string());
    }
    let next = link_target(&link.expect("the feed links to what follows"));
    let (_, _, _, _, rest) = get!(&app, &next);
    let rest = String::from_utf8(rest).unwrap();
    assert_eq!(
        rest.lines().count(),
        3,
        "the three changes after the first four"
    );

    // Exports: CSV columns in the order asked; JSON Lines records cut to the fields.
    let (status, _, _, _, csv) = get!(&app, "/v1/export?format=csv&fields=title,unified_id");
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.starts_with("\u{feff}title,unified_id\r\n")
            || csv.starts_with("\u{feff}title,unified_id\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 8);
    let (_, _, _, _, jsonl) = get!(&app, "/v1/export?format=jsonl&fields=title");
    for line in String::from_utf8(jsonl).unwrap().lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["record"].as_object().unwrap().len(), 1, "{line}");
    }

    // A name the endpoint does not have is refused where it is.
    for uri in [
        "/v1/search?fields=title,price",
        "/v1/changes?fields=nonsense",
        "/v1/export?format=csv&fields=abstract",
        "/v1/export?format=jsonl&fields=score",
    ] {
        let (status, _, _, _, body) = get!(&app, uri);
        assert_eq!(status, 400, "{uri}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["errors"][0]["pointer"], "/query/fields", "{uri}");
    }
}

#[actix_web::test]
async fn the_discovery_document_lists_what_the_openapi_document_does() {
    let gw = common::Gateway::open(Backend::Sqlite);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .configure(api::configure),
    )
    .await;
    let (status, etag, _, _, body) = get!(&app, "/v1");
    assert_eq!(status, 200);
    assert!(etag.is_some());
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let (_, _, _, _, openapi) = get!(&app, "/openapi.json");
    let openapi: Value = serde_json::from_slice(&openapi).unwrap();
    let mut listed: Vec<&str> = doc["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let mut documented: Vec<&str> = openapi["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    listed.sort();
    documented.sort();
    assert_eq!(listed, documented);
    for path in [
        "/v1",
        "/v1/search",
        "/v1/changes",
        "/v1/export",
        "/v1/stats",
    ] {
        assert!(listed.contains(&path), "{path}");
    }
    let filters: Vec<&str> = doc["search"]["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = api::SEARCH_FILTERS
        .into_iter()
        .filter(|f| *f != "sort")
        .collect();
    assert_eq!(filters, expected);
    assert_eq!(doc["search"]["sort"], json!(["relevance", "date"]));
    assert!(
        doc["search"]["facets"]
            .as_array()
            .unwrap()
            .contains(&json!("region"))
    );
    assert!(
        doc["export"]["record_fields"]
            .as_array()
            .unwrap()
            .contains(&json!("title"))
    );
    assert_eq!(doc["stats"]["by"], json!(api::STATS_BY));
}

#[actix_web::test]
async fn answers_are_compressed_as_the_client_asks() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = rix_gateway::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        ..Default::default()
    };
    config.pull.interval_ms = 100;
    // A node whose feed the gateway pulls, trusted before the gateway starts.
    let feed = common::Feed::default();
    let server = feed.start().await;
    let mut node = FakeNode::new("prov", 24, 0.0);
    node.trust(&config.open_database().unwrap(), Some(&server.uri()));
    let gateway = rix_gateway::serve::start(config).await.unwrap();
    let url = gateway.url();
    let http = reqwest::Client::new();
    node.seal_edited(20, |_, r| public(r));
    feed.serve_node(&node);
    let export = format!("{url}/v1/export?format=jsonl");
    let mut plain = String::new();
    for _ in 0..600 {
        plain = http
            .get(&export)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if plain.lines().count() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(plain.lines().count(), 20, "the index caught up");

    let gz = http
        .get(&export)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let bytes = gz.bytes().await.unwrap();
    assert!(
        bytes.len() < plain.len() / 2,
        "{} of {}",
        bytes.len(),
        plain.len()
    );
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);

    let br = http
        .get(format!("{url}/v1/search?q="))
        .header("Accept-Encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(br.status(), 200);
    assert_eq!(br.headers()["content-encoding"], "br");
    // Errors are negotiated too, and without Accept-Encoding nothing is encoded.
    let bad = http
        .get(format!("{url}/v1/search?sort=sideways"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let identity = http.get(format!("{url}/v1")).send().await.unwrap();
    assert!(identity.headers().get("content-encoding").is_none());
    gateway.stop().await;
}

#[actix_web::test]
async fn an_export_longer_than_a_page_holds_every_entry_once_in_search_order_on_sqlite() {
    an_export_longer_than_a_page_holds_every_entry_once_in_search_order(Backend::Sqlite).await;
}

#[actix_web::test]
async fn an_export_longer_than_a_page_holds_every_entry_once_in_search_order_on_postgres() {
    an_export_longer_than_a_page_holds_every_entry_once_in_search_order(Backend::Postgres).await;
}

/// Pages are written by several threads at once and may be done in any order: the file must
/// still hold them in the order of the matches, which is the order a reader paging through the
/// same search sees.
async fn an_export_longer_than_a_page_holds_every_entry_once_in_search_order(backend: Backend) {
    let gw = common::Gateway::open(backend);
    let mut node = FakeNode::new("prov", 25, 0.0);
    node.trust(&gw.db, None);
    // More than one export page (rix_gateway::api::EXPORT_PAGE), and not a multiple of it.
    let n = rix_gateway::api::EXPORT_PAGE * 2 + 37;
    for _ in 0..(n / 500) {
        gw.ingest
            .ingest(&node.seal_edited(500, |_, r| public(r)), Transport::Amqp)
            .unwrap();
    }
    gw.ingest
        .ingest(
            &node.seal_edited(n % 500, |_, r| public(r)),
            Transport::Amqp,
        )
        .unwrap();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .configure(api::configure),
    )
    .await;
    let mut searched: Vec<String> = Vec::new();
    let mut uri = "/v1/search?limit=100".to_owned();
    loop {
        let (status, _, _, _, body) = get!(&app, &uri);
        assert_eq!(status, 200, "{uri}");
        let page: Value = serde_json::from_slice(&body).unwrap();
        for item in page["items"].as_array().unwrap() {
            searched.push(item["unified_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1/search?limit=100&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(searched.len(), n);
    for format in ["jsonl", "csv"] {
        let (status, _, _, _, body) = get!(&app, &format!("/v1/export?format={format}"));
        assert_eq!(status, 200);
        let text = String::from_utf8(body).unwrap();
        let mut ids: Vec<String> = text
            .lines()
            .skip(usize::from(format == "csv"))
            .map(|line| match format {
                "jsonl" => serde_json::from_str::<Value>(line).unwrap()["unified_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                _ => line.split(',').next().unwrap().to_owned(),
            })
            .collect();
        assert_eq!(ids.len(), n, "{format}");
        assert!(
            ids == searched,
            "{format}: the export's order is the search's"
        );
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{format}: every entry once");
    }
}
