//! What the read APIs accept and what they hand out, beyond the access filter: query strings
//! are parsed strictly (not UTF-8, repeated, malformed: 400 naming the parameter), CSV exports
//! are safe to open in a spreadsheet (read back with Python's `csv` module), and heavy reads
//! (exports, deep search pages, the change feed) are bounded and rate-limited per client while
//! `/healthz` and ingest carry on.
//!
//! Catalogues are built through the real ingest path from seeded generated records (the
//! harness in `common/`); the load test runs a whole gateway (`serve::start`) with its feed
//! puller, on SQLite and on PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, test, web};
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use rix_gateway::access;
use rix_gateway::api;
use rix_gateway::db::Db;
use rix_gateway::db::schema::records;
use rix_gateway::ingest::Transport;
use rix_gateway::limits::{Heavy, Limits, LimitsConfig};
use rix_schema::sensitivity::Entitlements;
use serde_json::{Value, json};

use common::{Backend, FakeNode, on_both_backends, read_state};

/// What the export must never let a cell begin with, with or without leading whitespace:
/// OWASP's CSV Injection list and NUL.
const TRIGGERS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\0'];

/// Values an attacker would plant, one per trigger (each at most 30 characters: a keyword's
/// limit), and the whitespace-led and separator-laden variants.
const PAYLOADS: [&str; 9] = [
    "=HYPERLINK(\"http://x.cn\",\"看\")",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1 制表符",
    "\r=1+1 回车",
    " =1+1 前导空格",
    "\u{3000}=1+1 全角空格",
    "=1+1;=2+2,\"引号\"",
];

/// The test's own reading of the rule: the cell would be read as a formula.
fn begins_formula(cell: &str) -> bool {
    let trimmed = cell.trim_start_matches(|c: char| c.is_whitespace() && !TRIGGERS.contains(&c));
    cell.starts_with(TRIGGERS) || trimmed.starts_with(TRIGGERS)
}

/// What the export should write for `text`: the text, with a `'` in front when it would begin
/// a formula.
fn neutralised(text: &str) -> String {
    if begins_formula(text) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// A public generated achievement (no declared commercial secret), as `seal_edited` edits it.
fn make_public(record: &mut Value) {
    record["secrecy"] = json!({"level": "public"});
    record
        .as_object_mut()
        .unwrap()
        .remove("confidential_fields");
}

/// A catalogue of `n` public generated achievements from one node.
fn catalogue(n: usize) -> (common::Gateway, FakeNode) {
    let gw = common::Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 11, 0.0);
    node.trust(&gw.db, None);
    let bytes = node.seal_edited(n, |_, r| make_public(r));
    let outcome = gw.ingest.ingest(&bytes, Transport::Amqp).unwrap();
    assert_eq!(gw.record_count(&node.node_id), n as i64, "{outcome:?}");
    (gw, node)
}

/// `(pointer, message)` of the 400 answer to `GET uri`.
macro_rules! refusal {
    ($app:expr, $uri:expr) => {{
        let uri: &str = $uri;
        let resp = test::call_service($app, test::TestRequest::get().uri(uri).to_request()).await;
        let status = resp.status().as_u16();
        let body = test::read_body(resp).await;
        assert_eq!(status, 400, "{uri}: {}", String::from_utf8_lossy(&body));
        let body: Value = serde_json::from_slice(&body).unwrap();
        (
            body["errors"][0]["pointer"].as_str().unwrap().to_owned(),
            body["errors"][0]["message"].as_str().unwrap().to_owned(),
        )
    }};
}

// -------------------------------------------------------------------------------------------
// Query strings

#[actix_web::test]
async fn query_parameters_that_are_not_utf8_are_refused_naming_the_parameter() {
    let (gw, node) = catalogue(30);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .configure(api::configure),
    )
    .await;
    let record = format!("/v1/records/{}/a00001", node.node_id);
    for (uri, pointer) in [
        ("/v1/search?q=%FF%FE".to_owned(), "/query/q"),
        ("/v1/search?q=%E7%94%B5%FF".to_owned(), "/query/q"),
        ("/v1/search?region=%C3%28&q=x".to_owned(), "/query/region"),
        ("/v1/export?format=csv&q=%FF".to_owned(), "/query/q"),
        (
            "/v1/stats?by=region&program=%80".to_owned(),
            "/query/program",
        ),
        ("/v1/changes?node=%FE".to_owned(), "/query/node"),
        (format!("{record}?view=%FF"), "/query/view"),
        ("/v1/search?%FF=1".to_owned(), "/query/%FF"),
    ] {
        let (got, message) = refusal!(&app, &uri);
        assert_eq!(got, pointer, "{uri}: {message}");
        assert!(message.contains("UTF-8"), "{uri}: {message}");
    }
    // UTF-8, percent-encoded or with `+` for a space, is read as before.
    for uri in [
        "/v1/search?q=%E7%94%B5%E6%B1%A0",
        "/v1/search?q=%E6%9D%90%E6%96%99+%E7%94%B5%E6%B1%A0&limit=5",
        "/v1/stats?by=region",
        "/v1/changes?after=0&limit=5",
    ] {
        let resp = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(resp.status(), 200, "{uri}");
    }
    let resp = test::call_service(&app, test::TestRequest::get().uri(&record).to_request()).await;
    assert_eq!(resp.status(), 200, "{record}");
}

#[actix_web::test]
async fn repeated_parameters_are_refused_naming_them() {
    let (gw, _node) = catalogue(10);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .configure(api::configure),
    )
    .await;
    for (uri, pointer) in [
        ("/v1/search?q=a&q=b", "/query/q"),
        ("/v1/search?q=a&limit=5&q=a", "/query/q"),
        ("/v1/search?region=530000&region=", "/query/region"),
        ("/v1/export?format=csv&format=jsonl", "/query/format"),
        ("/v1/stats?by=region&by=year", "/query/by"),
        ("/v1/changes?after=0&after=5", "/query/after"),
        ("/v1/changes?node=a&n%6Fde=b", "/query/node"),
    ] {
        let (got, message) = refusal!(&app, uri);
        assert_eq!(got, pointer, "{uri}: {message}");
        assert!(message.contains("2 times"), "{uri}: {message}");
    }
}

#[actix_web::test]
async fn malformed_escapes_control_characters_and_unknown_names_are_refused() {
    let (gw, node) = catalogue(10);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .configure(api::configure),
    )
    .await;
    let record = format!("/v1/records/{}/a00001?fields=title", node.node_id);
    for (uri, pointer, says) in [
        ("/v1/search?q=%ZZ", "/query/q", "%25"),
        ("/v1/search?q=100%", "/query/q", "%25"),
        ("/v1/search?q=%0", "/query/q", "%25"),
        ("/v1/search?q=%00", "/query/q", "U+0000"),
        ("/v1/search?q=a%0Ab", "/query/q", "U+000A"),
        ("/v1/export?format=csv&q=%1B%5B31m", "/query/q", "U+001B"),
        ("/v1/changes?colour=red", "/query/colour", "known: after"),
        ("/v1/search?a%2Fb=1", "/query/a~1b", "unknown"),
        (&record, "/query/fields", "takes none"),
    ] {
        let (got, message) = refusal!(&app, uri);
        assert_eq!(got, pointer, "{uri}: {message}");
        assert!(message.contains(says), "{uri}: {message}");
    }
}

// -------------------------------------------------------------------------------------------
// CSV safe for spreadsheets

/// Reads a CSV file with Python's `csv` module (as a spreadsheet user's script would), every
/// row as a list of cells.
fn python_csv_rows(path: &std::path::Path) -> Vec<Vec<String>> {
    let python = std::env::var("RIX_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import csv, json, sys\n\
                  with open(sys.argv[1], newline='', encoding='utf-8-sig') as f:\n\
                  \x20   json.dump(list(csv.reader(f)), sys.stdout, ensure_ascii=True)\n";
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set RIX_PYTHON): {e}"));
    assert!(
        out.status.success(),
        "{python}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[actix_web::test]
async fn csv_export_cells_never_begin_a_formula_read_back_with_python() {
    let gw = common::Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 23, 0.0);
    node.trust(&gw.db, None);
    // Record 3j carries payload j in its title, 3j+1 as its first keyword, 3j+2 as its first
    // institution's name; every one in its abstract too. Then ordinary records.
    let planted = PAYLOADS.len() as u64 * 3;
    let bytes = node.seal_edited(planted as usize + 20, |i, r| {
        make_public(r);
        if i >= planted {
            return;
        }
        let payload = PAYLOADS[(i / 3) as usize];
        // No patent to merge it by: each planted record is an entry of its own.
        r.as_object_mut().unwrap().remove("ip");
        r["abstract"] = json!(format!("{payload}，这是一段足够长的成果简介。"));
        match i % 3 {
            0 => r["title"] = json!(format!("{payload} 成果名称")),
            1 => r["keywords"][0] = json!(payload),
            _ => r["institutions"][0]["name"] = json!(payload),
        }
    });
    gw.ingest.ingest(&bytes, Transport::Amqp).unwrap();
    // Every planted record is in the catalogue, or (were control characters refused at ingest)
    // quarantined; the four printable triggers must all be there.
    let held: BTreeMap<String, Value> = node
        .expected
        .iter()
        .filter(|(id, _)| is_held(&gw.db, &node.node_id, id))
        .map(|(id, p)| match p {
            common::Published::Active { record, .. } => (id.clone(), record.clone()),
            other => panic!("{id}: {other:?}"),
        })
        .collect();
    for i in 0..12u64 {
        assert!(
            held.contains_key(&format!("a{i:05}")),
            "a{i:05} ({:?}) was not stored",
            PAYLOADS[(i / 3) as usize]
        );
    }

    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .configure(api::configure),
    )
    .await;
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/v1/export?format=csv")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body = test::read_body(resp).await;
    let file = gw.dir.path().join("export.csv");
    std::fs::write(&file, &body).unwrap();
    let rows = python_csv_rows(&file);
    assert_eq!(
        rows[0],
        [
            "unified_id",
            "kind",
            "title",
            "category",
            "keywords",
            "institutions",
            "region",
            "program",
            "project_no",
            "registration_no",
            "trl",
            "year"
        ]
    );
    let entries: Vec<String> = records::table
        .filter(records::node_id.eq(&node.node_id))
        .select(records::unified_id)
        .distinct()
        .load(&mut *gw.db.conn().unwrap())
        .unwrap();
    assert_eq!(rows.len() - 1, entries.len(), "one row per visible entry");
    // No cell of any row can start a formula.
    for row in &rows {
        assert_eq!(row.len(), 12, "{row:?}");
        for cell in row {
            assert!(!begins_formula(cell), "a formula cell: {cell:?} in {row:?}");
        }
    }
    // The planted cells carry the quote, and otherwise exactly the text the node sent.
    // Each row by the record that opened its entry (the source stored first).
    let mut opened_by: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let sources: Vec<(String, String, i64)> = records::table
        .filter(records::node_id.eq(&node.node_id))
        .select((records::unified_id, records::id, records::first_change))
        .load(&mut *gw.db.conn().unwrap())
        .unwrap();
    for (uid, id, first) in sources {
        let slot = opened_by.entry(uid).or_insert((first, id.clone()));
        if first < slot.0 {
            *slot = (first, id);
        }
    }
    let by_id: BTreeMap<&str, &Vec<String>> = rows[1..]
        .iter()
        .map(|r| (opened_by[&r[0]].1.as_str(), r))
        .collect();
    let mut quoted = 0;
    for (id, record) in &held {
        // A generated record merged into another entry shows that entry's values.
        let Some(row) = by_id.get(id.as_str()) else {
            assert!(
                id[1..].parse::<u64>().unwrap() >= planted,
                "{id} is planted and has a row of its own"
            );
            continue;
        };
        let names = |r: &Value, f: &str| -> String {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| if f.is_empty() { v } else { &v[f] })
                .map(|v| v.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join("；")
        };
        let expected = [
            (2, record["title"].as_str().unwrap().to_owned()),
            (4, names(&record["keywords"], "")),
            (5, names(&record["institutions"], "name")),
        ];
        for (column, text) in expected {
            assert_eq!(row[column], neutralised(&text), "{id} column {column}");
            if begins_formula(&text) {
                assert!(row[column].starts_with('\''));
                assert_eq!(&row[column][1..], text, "{id}: the text after the quote");
                quoted += 1;
            }
        }
    }
    assert_eq!(
        quoted,
        held.keys()
            .filter(|id| id[1..].parse::<u64>().unwrap() < planted)
            .count(),
        "every planted value was neutralised"
    );
}

fn is_held(db: &Db, node_id: &str, id: &str) -> bool {
    records::table
        .filter(records::node_id.eq(node_id))
        .filter(records::id.eq(id))
        .count()
        .get_result::<i64>(&mut *db.conn().unwrap())
        .unwrap()
        == 1
}

// -------------------------------------------------------------------------------------------
// Rate limits and slots

fn header(resp: &actix_web::dev::ServiceResponse, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn metric(registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| {
            labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            })
        })
        // A counter's family has no gauge value and the other way round.
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
}

/// Percent-encodes a cursor for a query string.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[actix_web::test]
async fn heavy_reads_are_rate_limited_per_client_with_retry_after_and_ratelimit_headers() {
    let (gw, _node) = catalogue(30);
    let token = "limits-test-token-0001-abcdefgh";
    access::add_token_value(&gw.db, "ministry", Entitlements::PUBLIC, token).unwrap();
    let config: LimitsConfig = toml::from_str(
        "[export]\nburst = 3\nper_minute = 1\n\
         [search_pages]\nburst = 2\nper_minute = 1\n\
         [changes]\nburst = 2\nper_minute = 1\n",
    )
    .unwrap();
    let registry = prometheus::Registry::new();
    let limits = web::Data::new(Limits::new(&config, &registry).unwrap());
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .app_data(limits.clone())
            .configure(api::configure),
    )
    .await;
    let a: SocketAddr = "192.0.2.1:40000".parse().unwrap();
    let b: SocketAddr = "192.0.2.2:40000".parse().unwrap();
    let get = |uri: &str, from: SocketAddr| test::TestRequest::get().uri(uri).peer_addr(from);

    // Three exports at once, then the bucket is empty.
    for remaining in [2, 1, 0] {
        let resp = test::call_service(&app, get("/v1/export?format=jsonl", a).to_request()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            header(&resp, "ratelimit-remaining"),
            Some(remaining.to_string())
        );
        assert_eq!(
            header(&resp, "ratelimit-policy").as_deref(),
            Some("3;w=180")
        );
        let reset: u64 = header(&resp, "ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset <= 180, "{reset}");
        assert!(!test::read_body(resp).await.is_empty());
    }
    let resp = test::call_service(&app, get("/v1/export?format=csv", a).to_request()).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(header(&resp, "ratelimit-limit").as_deref(), Some("3"));
    assert_eq!(header(&resp, "ratelimit-remaining").as_deref(), Some("0"));
    assert!(header(&resp, "ratelimit-reset").is_some());
    assert_eq!(
        header(&resp, "ratelimit-policy").as_deref(),
        Some("3;w=180")
    );
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["status"], 429);
    assert!(body["detail"].as_str().unwrap().contains("retry after"));

    // Another address, and a token (even from the same address), have buckets of their own;
    // a forged X-Forwarded-For does not (the address is not taken from it unless configured).
    let resp = test::call_service(&app, get("/v1/export?format=csv", b).to_request()).await;
    assert_eq!(resp.status(), 200);
    let resp = test::call_service(
        &app,
        get("/v1/export?format=csv", a)
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "ratelimit-remaining").as_deref(), Some("2"));
    let resp = test::call_service(
        &app,
        get("/v1/export?format=csv", a)
            .insert_header(("X-Forwarded-For", "198.51.100.7"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 429);

    // First search pages, record pages and stats are not heavy: never limited, no headers.
    let mut cursor = None;
    for _ in 0..6 {
        let resp = test::call_service(&app, get("/v1/search?limit=1", a).to_request()).await;
        assert_eq!(resp.status(), 200);
        assert!(header(&resp, "ratelimit-limit").is_none());
        let page: Value = test::read_body_json(resp).await;
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        let resp = test::call_service(&app, get("/v1/stats?by=region", a).to_request()).await;
        assert_eq!(resp.status(), 200);
    }
    // Pages with a cursor are.
    let deep = format!("/v1/search?limit=1&cursor={}", enc(&cursor.unwrap()));
    for remaining in ["1", "0"] {
        let resp = test::call_service(&app, get(&deep, a).to_request()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            header(&resp, "ratelimit-remaining").as_deref(),
            Some(remaining)
        );
    }
    let resp = test::call_service(&app, get(&deep, a).to_request()).await;
    assert_eq!(resp.status(), 429);
    assert!(header(&resp, "retry-after").is_some());
    // So is the change feed.
    for _ in 0..2 {
        let resp = test::call_service(&app, get("/v1/changes?after=0", a).to_request()).await;
        assert_eq!(resp.status(), 200);
        assert!(header(&resp, "x-rix-next-after").is_some());
        assert!(header(&resp, "ratelimit-limit").is_some());
    }
    let resp = test::call_service(&app, get("/v1/changes?after=0", a).to_request()).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "ratelimit-remaining").as_deref(), Some("0"));

    // Every refusal is counted.
    let refused = |endpoint| {
        metric(
            &registry,
            "rix_gateway_requests_limited_total",
            &[("endpoint", endpoint), ("reason", "rate")],
        )
    };
    assert_eq!(refused("export"), 2.0);
    assert_eq!(refused("search_pages"), 1.0);
    assert_eq!(refused("changes"), 1.0);
}

#[actix_web::test]
async fn when_every_slot_is_taken_heavy_reads_are_refused_and_the_rest_are_served() {
    let (gw, _node) = catalogue(30);
    let config: LimitsConfig = toml::from_str(
        "[export]\nconcurrent = 2\nqueue_ms = 50\nper_minute = 0\n\
         [changes]\nconcurrent = 1\nqueue_ms = 0\n",
    )
    .unwrap();
    let registry = prometheus::Registry::new();
    let limits = web::Data::new(Limits::new(&config, &registry).unwrap());
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .app_data(limits.clone())
            .configure(api::configure),
    )
    .await;
    let held: Vec<_> = (0..2)
        .map(|_| limits.hold(Heavy::Export).unwrap())
        .collect();
    assert!(limits.hold(Heavy::Export).is_none());
    let changes_slot = limits.hold(Heavy::Changes).unwrap();
    assert_eq!(
        metric(
            &registry,
            "rix_gateway_heavy_requests_in_flight",
            &[("endpoint", "export")]
        ),
        2.0
    );
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/v1/export?format=csv")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after").as_deref(), Some("1"));
    assert!(
        header(&resp, "ratelimit-limit").is_none(),
        "no rate limit on exports here"
    );
    let body: Value = test::read_body_json(resp).await;
    assert!(body["detail"].as_str().unwrap().contains("at once (2)"));
    let resp = test::call_service(
        &app,
        test::TestRequest::get().uri("/v1/changes").to_request(),
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert!(
        header(&resp, "ratelimit-limit").is_some(),
        "the rate headers ride along"
    );
    // The rest is served meanwhile.
    for uri in ["/v1/search?limit=5", "/v1/stats?by=year"] {
        let resp = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(resp.status(), 200, "{uri}");
    }
    drop(held);
    drop(changes_slot);
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/v1/export?format=csv")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body = test::read_body(resp).await;
    assert_eq!(String::from_utf8_lossy(&body).lines().count(), 31);
    assert_eq!(
        metric(
            &registry,
            "rix_gateway_heavy_requests_in_flight",
            &[("endpoint", "export")]
        ),
        0.0,
        "the slot is given back once the export is sent"
    );
    assert_eq!(
        metric(
            &registry,
            "rix_gateway_requests_limited_total",
            &[("reason", "busy")]
        ),
        2.0
    );
}

// -------------------------------------------------------------------------------------------
// A crowd of exports against a running gateway

fn held_records(db: &Db, node_id: &str) -> i64 {
    records::table
        .filter(records::node_id.eq(node_id))
        .count()
        .get_result(&mut *db.conn().unwrap())
        .unwrap()
}

/// Fires `n` anonymous CSV exports at once; returns each answer's status, headers and body.
async fn crowd(
    http: reqwest::Client,
    url: String,
    n: usize,
) -> Vec<(u16, reqwest::header::HeaderMap, String)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let http = http.clone();
        let url = format!("{url}/v1/export?format=csv");
        tasks.push(tokio::spawn(async move {
            let resp = http.get(&url).send().await.unwrap();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            (status, headers, resp.text().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// How many entries an anonymous reader may see, by following the change feed from 0 (which
/// reads the catalogue, not the index): the same merges and the same visibility as search.
async fn visible_entries(http: &reqwest::Client, url: &str) -> usize {
    let mut entries = std::collections::BTreeSet::new();
    let mut after = "0".to_owned();
    loop {
        let resp = http
            .get(format!("{url}/v1/changes?after={after}&limit=10000"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let next = resp.headers()["x-rix-next-after"]
            .to_str()
            .unwrap()
            .to_owned();
        for line in resp.text().await.unwrap().lines() {
            let change: Value = serde_json::from_str(line).unwrap();
            let id = change["unified_id"].as_str().unwrap().to_owned();
            if change["op"] == "upsert" {
                entries.insert(id);
            } else {
                entries.remove(&id);
            }
        }
        if next == after {
            return entries.len();
        }
        after = next;
    }
}

/// Waits until anonymous search finds every visible entry (the index follows the catalogue);
/// returns how many that is.
async fn wait_searchable(http: &reqwest::Client, url: &str) -> u64 {
    let visible = visible_entries(http, url).await as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page: Value = http
            .get(format!("{url}/v1/search?limit=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["total"] == visible {
            return visible;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "search finds {} entries, not {visible}",
            page["total"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_refused_properly(status: u16, headers: &reqwest::header::HeaderMap, body: &str) {
    assert_eq!(status, 429, "{body}");
    let h = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    let retry: u64 = h("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    for name in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "ratelimit-policy",
    ] {
        assert!(h(name).is_some(), "{name} missing on a 429");
    }
    assert_eq!(
        h("content-type").as_deref(),
        Some("application/problem+json")
    );
    let problem: Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["status"], 429);
}

async fn healthz_and_ingest_carry_on_under_a_crowd_of_exports(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = rix_gateway::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        database_url: (backend == Backend::Postgres).then(common::fresh_postgres_database),
        // Two exports at a time, a short queue, and a rate no client here reaches, counted for
        // loopback too (exempt by default).
        limits: toml::from_str(
            "exempt = []\n\
             [export]\nconcurrent = 2\nqueue_ms = 100\nburst = 100000\nper_minute = 100000\n",
        )
        .unwrap(),
        ..Default::default()
    };
    config.pull.interval_ms = 100;
    // A node whose feed the gateway pulls, trusted before the gateway starts.
    let feed = common::Feed::default();
    let server = feed.start().await;
    let mut node = FakeNode::new("prov", 5, 0.0);
    node.trust(&config.open_database().unwrap(), Some(&server.uri()));
    let gateway = rix_gateway::serve::start(config).await.unwrap();
    let url = gateway.url();
    let http = reqwest::Client::new();
    node.seal_edited(200, |_, r| make_public(r));
    feed.serve_node(&node);
    let db = gateway.db.clone();
    let node_id = node.node_id.clone();
    common::eventually(Duration::from_secs(60), "the first batch arrives", || {
        held_records(&db, &node_id) == 200
    })
    .await;
    wait_searchable(&http, &url).await;

    // Every export slot taken: a crowd is refused, each with Retry-After and the rate headers,
    // while /healthz answers and a new batch is ingested.
    let slots: Vec<_> = (0..2)
        .map(|_| gateway.limits().hold(Heavy::Export).unwrap())
        .collect();
    let refused = tokio::spawn(crowd(http.clone(), url.clone(), 60));
    node.seal_edited(50, |_, r| make_public(r));
    feed.serve_node(&node);
    for _ in 0..5 {
        let health = http.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
    for (status, headers, body) in refused.await.unwrap() {
        assert_refused_properly(status, &headers, &body);
    }
    common::eventually(
        Duration::from_secs(60),
        "the batch sent during the crowd is ingested",
        || held_records(&db, &node_id) == 250,
    )
    .await;
    drop(slots);
    let visible = wait_searchable(&http, &url).await as usize;

    // Slots free: waves of real exports, two at a time, the rest refused; /healthz answers
    // between waves and a batch sent during them is ingested.
    node.seal_edited(50, |_, r| make_public(r));
    feed.serve_node(&node);
    let (mut served, mut refused) = (0, 0);
    loop {
        let wave = tokio::spawn(crowd(http.clone(), url.clone(), 40));
        let health = http.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let body: Value = health.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        for (status, headers, body) in wave.await.unwrap() {
            if status == 200 {
                served += 1;
                let rows = body.trim_start_matches('\u{feff}').lines().count();
                assert!(rows > visible, "a whole export: {rows} lines");
                assert!(headers.get("ratelimit-remaining").is_some());
            } else {
                refused += 1;
                assert_refused_properly(status, &headers, &body);
            }
        }
        if held_records(&db, &node_id) == 300 {
            break;
        }
    }
    assert!(served >= 1, "exports are still served");
    assert!(refused + served >= 40);
    // The crowd gone, an export holds everything ingested meanwhile.
    let visible = wait_searchable(&http, &url).await as usize;
    let resp = http
        .get(format!("{url}/v1/export?format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap().lines().count(),
        visible + 1,
        "header and one row per visible entry"
    );
    gateway.stop().await;
}

on_both_backends!(
    healthz_and_ingest_carry_on_under_a_crowd_of_exports,
    healthz_and_ingest_carry_on_under_a_crowd_of_exports
);
