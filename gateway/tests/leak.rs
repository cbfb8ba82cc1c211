//! The leak suite: records carrying unique markers in their hidden parts, every read endpoint,
//! every entitlement — no response byte contains a marker the consumer must not see.
//!
//! Markers: `MKINT…` in the title of internal records (hidden from consumers without
//! `internal`), `MKCOM…` in the schema-marked commercial field, `MKCONF…` in a field the
//! submitter listed in `confidential_fields` (both hidden without `commercial`), `MKPER…` in the
//! personal contact (hidden without `personal`), `MKSEC…` in classified records (never stored at
//! all). Funded projects carry numeric markers: a self-raised budget of `7731000xx` (commercial)
//! — a number, which a string search for a word would miss, so the suite looks for its digits
//! and for every total that would let a reader compute it. New endpoints must be added to the
//! paths below; every entitlement combination reads every path. The portal's pages are read like
//! the API's endpoints: the same markers must not appear in any HTML page either, nor in any
//! OAI-PMH response (every verb, both metadata formats).

mod common;

use actix_web::{App, test, web};
use common::{Backend, Gateway, Item, SigningNode, read_state};
use rix_gateway::access;
use rix_gateway::api;
use rix_gateway::oai;
use rix_gateway::portal;
use rix_gateway::snapshot;
use rix_schema::RecordKind;
use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_schema::sensitivity::Entitlements;
use serde_json::{Value, json};

const RECORDS: u64 = 400;

/// A catalogue of marked achievements, built through the real ingest path; with the records.
fn marked_catalogue() -> (Gateway, Vec<(String, Value)>) {
    marked_catalogue_of(false)
}

/// [`marked_catalogue`], with funded projects carrying a numeric secret when `with_projects`.
fn marked_catalogue_of(with_projects: bool) -> (Gateway, Vec<(String, Value)>) {
    let gw = Gateway::open(Backend::Sqlite);
    let mut node = SigningNode::trusted(&gw.db, "prov-530000");
    let generator = SampleGenerator::new(SampleConfig {
        share_internal: 0.3,
        share_classified: 0.1,
        share_commercial_secret: 0.0,
        ..SampleConfig::default()
    });
    let mut items: Vec<Item> = Vec::new();
    let mut records = Vec::new();
    for i in 0..RECORDS {
        let mut r = serde_json::to_value(generator.achievement(i)).unwrap();
        let level = r["secrecy"]["level"].as_str().unwrap().to_owned();
        match level.as_str() {
            "internal" => r["title"] = json!(format!("内部成果 MKINT{i:05}")),
            "public" => {}
            _ => r["title"] = json!(format!("秘密成果 MKSEC{i:05}")),
        }
        r["technical_indicators"] = json!(format!("能量密度 MKCOM{i:05}"));
        r["contact"] = json!({"name": format!("联系人MKPER{i:05}"), "phone": "0871-65031234"});
        // A submitter-declared commercial secret: the application description.
        r["application"] = json!({"industries": format!("应用于储能电站 MKCONF{i:05}")});
        r["confidential_fields"] = json!(["/application/industries"]);
        assert!(
            rix_schema::validate_record(RecordKind::Achievement, &r).is_ok(),
            "{:?}",
            rix_schema::validate_record(RecordKind::Achievement, &r)
        );
        let id = format!("ach-{i:05}");
        items.push((RecordKind::Achievement, id.clone(), 1, Some(r.clone())));
        records.push((id, r));
    }
    // Funded projects whose self-raised funds are a numeric commercial secret.
    for i in 0..if with_projects { RECORDS / 4 } else { 0 } {
        let mut p = serde_json::to_value(generator.project(i)).unwrap();
        if p["secrecy"]["level"] != "public" {
            continue;
        }
        let self_raised = 773_100_000 + i;
        p["budget"] = json!({
            "total": 1_000_000_000 + self_raised,
            "central_fiscal": 600_000_000,
            "local_fiscal": 400_000_000,
            "self_raised": self_raised,
        });
        assert!(rix_schema::validate_record(RecordKind::FundedProject, &p).is_ok());
        items.push((RecordKind::FundedProject, format!("prj-{i:05}"), 1, Some(p)));
    }
    node.publish(&gw.ingest, items, 100);
    (gw, records)
}

/// Which markers a consumer with `e` may see.
fn forbidden(e: Entitlements) -> Vec<&'static str> {
    let mut f = vec!["MKSEC"];
    if !e.internal {
        f.push("MKINT");
    }
    if !e.commercial {
        // The self-raised figures (7731000xx) and the totals that would give them away.
        f.extend(["MKCOM", "MKCONF", "7731000", "17731000"]);
    }
    if !e.personal {
        f.push("MKPER");
    }
    f
}

/// Every combination of entitlements a token may carry.
const EVERY_TOKEN_ENTITLEMENT: [&str; 7] = [
    "internal",
    "commercial",
    "personal",
    "internal,commercial",
    "internal,personal",
    "commercial,personal",
    "internal,commercial,personal",
];

/// The anonymous reader, then a token for each of `entitlements` (each a comma-separated list).
fn readers_of(
    db: &rix_gateway::db::Db,
    entitlements: &[&str],
) -> Vec<(Option<String>, Entitlements)> {
    let mut consumers: Vec<(Option<String>, Entitlements)> = vec![(None, Entitlements::PUBLIC)];
    for (i, names) in entitlements.iter().enumerate() {
        let token = format!("leak-test-token-{i:03}-abcdefgh");
        let e: Entitlements = names.parse().unwrap();
        access::add_token_value(db, &format!("consumer {names}"), e, &token).unwrap();
        consumers.push((Some(token), e));
    }
    consumers
}

#[actix_web::test]
async fn no_endpoint_leaks_a_marker_to_any_entitlement() {
    let (gw, records) = marked_catalogue_of(true);
    let db = gw.db.clone();
    let consumers = readers_of(&db, &EVERY_TOKEN_ENTITLEMENT);
    // A snapshot of every view: each reader must find in the list and the files exactly what
    // the feed gives them.
    let snapshot_dir = tempfile::tempdir().unwrap();
    let snapshots = snapshot::Snapshots {
        root: snapshot_dir.path().to_owned(),
        views: consumers.iter().map(|(_, e)| *e).collect(),
        keep: 1,
    };
    let taken = snapshots.take(&db).unwrap();
    assert_eq!(taken.manifests.len(), consumers.len());
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&db)))
            .app_data(web::Data::new(snapshots.clone()))
            .configure(snapshot::configure)
            // One page holds every record: a list shows each reader all it may see.
            .app_data(web::Data::new(oai::OaiConfig {
                page_size: 10_000,
                ..oai::OaiConfig::default()
            }))
            .configure(api::configure)
            .configure(portal::configure)
            .configure(oai::configure),
    )
    .await;

    let mut paths: Vec<String> = vec![
        "/v1/changes?after=0&limit=10000".into(),
        "/v1/changes?after=0&limit=10000&kind=achievement".into(),
        "/v1/export?format=csv".into(),
        "/v1/export?format=jsonl".into(),
        "/v1/stats?by=region".into(),
        "/v1/stats?by=program".into(),
        "/v1/search?limit=100".into(),
        "/v1/search?q=%E7%94%B5%E6%B1%A0&limit=100".into(),
        // The discovery document, and `fields=` naming every field there is: a selection
        // picks from the reader's view, it never reaches past it.
        "/v1".into(),
    ];
    let every_record_field = rix_gateway::representation::record_fields().join(",");
    paths.push(format!(
        "/v1/export?format=jsonl&fields={every_record_field}"
    ));
    paths.push(format!(
        "/v1/changes?after=0&limit=10000&fields={every_record_field}"
    ));
    paths.push(format!(
        "/v1/search?limit=100&fields={}",
        rix_gateway::representation::HIT_FIELDS.join(",")
    ));
    paths.push(
        "/v1/export?format=csv&fields=year,trl,registration_no,project_no,program,region,institutions,keywords,category,title,kind,unified_id"
            .into(),
    );
    // Searching for the markers themselves must find nothing hidden: a match, a count or a
    // highlight would reveal them.
    for marker in ["MKINT", "MKCOM", "MKCONF", "MKPER", "MKSEC"] {
        for i in [0u64, 1, 2, 3, 7, 11, 42] {
            paths.push(format!("/v1/search?q={marker}{i:05}"));
        }
    }
    // A path that shows one record carries its level: a reader who may not see the record
    // sees none of its markers, whatever else they may see.
    let mut paths: Vec<(String, Option<String>)> = paths.into_iter().map(|p| (p, None)).collect();
    // Every record by its source, as JSON and as a page.
    for prefix in ["/v1/records", "/records"] {
        paths.extend(records.iter().map(|(id, r)| {
            (
                format!("{prefix}/prov-530000/{id}"),
                r["secrecy"]["level"].as_str().map(str::to_owned),
            )
        }));
        paths.extend((0..RECORDS / 4).map(|i| (format!("{prefix}/prov-530000/prj-{i:05}"), None)));
    }
    // Every entry by its name too, the internal ones' included: a name may reach a reader
    // (a colleague's link) without the right to what it names. The page by an entry's name
    // renders what the page by its source does (one function): every third name, internal
    // ones included, checks that route at a third of the cost.
    let names: std::collections::BTreeMap<String, String> = {
        use diesel::prelude::*;
        use rix_gateway::db::schema::records;
        records::table
            .select((records::unified_id, records::secrecy))
            .load(&mut *db.conn().unwrap())
            .unwrap()
            .into_iter()
            .collect()
    };
    paths.extend(
        names
            .iter()
            .map(|(u, level)| (format!("/v1/entries/{u}"), Some(level.clone()))),
    );
    paths.extend(
        names
            .iter()
            .step_by(3)
            .map(|(u, level)| (format!("/entries/{u}"), Some(level.clone()))),
    );
    // The portal's pages: search (with every facet), statistics and their CSV.
    paths.extend(
        [
            "/?limit=100",
            "/?q=%E7%94%B5%E6%B1%A0&limit=100",
            "/?kind=funded_project&limit=100",
            "/?sort=date&limit=100&lang=en",
            "/stats",
            "/stats?kind=funded_project",
            "/stats.csv?by=region",
            "/stats.csv?by=program",
            "/stats.csv?by=year",
            "/stats.csv?by=field",
        ]
        .map(|p| (p.to_owned(), None)),
    );
    // A page echoes its query (the box, the title, the links), so the markers are asked for
    // in lower case: search folds case, and what comes back in upper case came from a record.
    for marker in ["MKINT", "MKCOM", "MKCONF", "MKPER", "MKSEC"] {
        for i in [0u64, 1, 7] {
            paths.push((format!("/?q={}{i:05}", marker.to_lowercase()), None));
        }
    }
    // OAI-PMH: every verb, both formats, lists by set; every third entry by its identifier
    // (the internal ones' included), in both formats.
    paths.extend(
        [
            "/oai?verb=Identify",
            "/oai?verb=ListMetadataFormats",
            "/oai?verb=ListSets",
            "/oai?verb=ListIdentifiers&metadataPrefix=oai_dc",
            "/oai?verb=ListRecords&metadataPrefix=oai_dc",
            "/oai?verb=ListRecords&metadataPrefix=rix",
            "/oai?verb=ListRecords&metadataPrefix=rix&set=kind:funded_project",
            "/oai?verb=ListRecords&metadataPrefix=rix&set=region",
        ]
        .map(|p| (p.to_owned(), None)),
    );
    for (n, (u, level)) in names.iter().enumerate().filter(|(n, _)| n % 3 == 1) {
        let prefix = if n % 2 == 0 { "rix" } else { "oai_dc" };
        paths.push((
            format!(
                "/oai?verb=GetRecord&identifier=oai:rix.example.invalid:{u}&metadataPrefix={prefix}"
            ),
            Some(level.clone()),
        ));
        paths.push((
            format!("/oai?verb=ListMetadataFormats&identifier=oai:rix.example.invalid:{u}"),
            Some(level.clone()),
        ));
    }
    paths.push(("/v1/export?format=csv&kind=funded_project".into(), None));
    paths.push((
        "/v1/changes?after=0&limit=10000&kind=funded_project".into(),
        None,
    ));
    // Snapshots: the list, and every view's file and manifest; a view a reader may not read is
    // absent to them (404), so only readers of it are held to show what it shows.
    let mut snapshot_views: std::collections::HashMap<String, Entitlements> = Default::default();
    paths.push(("/v1/snapshots".into(), None));
    for m in &taken.manifests {
        let view: Entitlements = m.entitlements.join(",").parse().unwrap();
        for url in [&m.files[0].url, &m.manifest_url] {
            paths.push((url.clone(), None));
            snapshot_views.insert(url.clone(), view);
        }
    }
    let full_view_file = taken.manifests.last().unwrap().files[0].url.clone();
    const ALLOWED: [&str; 5] = ["MKINT", "MKCOM", "MKCONF", "MKPER", "7731000"];
    let read = |token: Option<&str>, path: &str| {
        let mut req = test::TestRequest::get().uri(path);
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let app = &app;
        let path = path.to_owned();
        async move {
            let resp = test::call_service(app, req.to_request()).await;
            let status = resp.status().as_u16();
            let mut body = test::read_body(resp).await.to_vec();
            // A snapshot's file is read as its reader reads it: uncompressed.
            if status == 200 && path.ends_with(".gz") {
                let mut plain = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(&body[..]),
                    &mut plain,
                )
                .unwrap();
                body = plain;
            }
            let text = String::from_utf8_lossy(&body).into_owned();
            assert!(matches!(status, 200 | 404), "{path}: {status} {text}");
            (status, text)
        }
    };
    let shown = |text: &str| -> std::collections::BTreeSet<&'static str> {
        ALLOWED.into_iter().filter(|m| text.contains(m)).collect()
    };

    // Positive controls, per path: what each path shows the reader entitled to everything. A
    // path whose filter hid everything from everyone would fail here, not pass as "no leak".
    let full_token = consumers.last().unwrap().0.clone();
    let mut full: std::collections::HashMap<&str, std::collections::BTreeSet<&str>> =
        Default::default();
    let mut audited_reads = 0;
    // Every read of records is audited; the discovery document names no record.
    let audited = |path: &str| path != "/v1";
    for (path, _) in &paths {
        let (status, text) = read(full_token.as_deref(), path).await;
        if status == 200 && audited(path) {
            audited_reads += 1;
        }
        full.insert(path.as_str(), shown(&text));
    }
    for (path, expected) in [
        ("/v1/changes?after=0&limit=10000", &ALLOWED[..]),
        ("/v1/export?format=jsonl", &ALLOWED[..]),
        (
            "/v1/changes?after=0&limit=10000&kind=achievement",
            &ALLOWED[..4],
        ),
        ("/v1/search?limit=100", &ALLOWED[..1]),
        ("/v1/records/prov-530000/prj-00000", &ALLOWED[4..]),
        ("/?limit=100", &ALLOWED[..1]),
        ("/records/prov-530000/prj-00000", &ALLOWED[4..]),
        ("/oai?verb=ListRecords&metadataPrefix=rix", &ALLOWED[..]),
        (
            "/oai?verb=ListRecords&metadataPrefix=rix&set=region",
            &ALLOWED[..4],
        ),
        (
            "/oai?verb=ListRecords&metadataPrefix=rix&set=kind:funded_project",
            &ALLOWED[4..],
        ),
        ("/oai?verb=ListRecords&metadataPrefix=oai_dc", &ALLOWED[..1]),
        ("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc", &[]),
        (full_view_file.as_str(), &ALLOWED[..]),
    ] {
        for marker in expected {
            assert!(
                full[path].contains(marker),
                "{path} shows no {marker} even to a reader entitled to everything"
            );
        }
    }
    assert!(
        records
            .iter()
            .any(|(id, r)| r["secrecy"]["level"] == "internal"
                && full[format!("/v1/records/prov-530000/{id}").as_str()].len() == 4),
        "an internal record's page shows all four markers to a reader entitled to everything"
    );

    let mut checked = 0;
    for (token, entitlements) in &consumers {
        let bad = forbidden(*entitlements);
        for (path, level) in &paths {
            let (status, text) = read(token.as_deref(), path).await;
            if status == 200 && token.is_some() && audited(path) {
                audited_reads += 1;
            }
            for marker in &bad {
                assert!(
                    !text.contains(marker),
                    "{path} leaks {marker} to {entitlements}: {}",
                    &text[text.find(marker).unwrap().saturating_sub(80)..][..160.min(text.len())]
                );
            }
            // The filter is not simply hiding everything: on this very path, what this reader
            // is allowed of what the path can show does show.
            let record_hidden = (level.as_deref() == Some("internal") && !entitlements.internal)
                || snapshot_views
                    .get(path)
                    .is_some_and(|view| !snapshot::may_read(*entitlements, *view));
            if !record_hidden {
                let seen = shown(&text);
                for marker in &full[path.as_str()] {
                    if !bad.contains(marker) {
                        assert!(
                            seen.contains(marker),
                            "{path}: {entitlements} should see {marker}"
                        );
                    }
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, consumers.len() * paths.len());

    // A text query walked page by page with its cursor, by relevance (later pages come from a
    // ranking kept with the searcher) and by date: every page is the reader's, and the walk
    // finds exactly the hits the one-page answer holds — a page of someone else's ranking
    // would show a hit too many, or a marker.
    const Q: &str = "/v1/search?q=%E7%94%B5%E6%B1%A0";
    let encode = |cursor: &str| -> String {
        cursor
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| hit["unified_id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (token, entitlements) in &consumers {
        let bad = forbidden(*entitlements);
        let (_, whole) = read(token.as_deref(), &format!("{Q}&limit=100")).await;
        let whole: Value = serde_json::from_str(&whole).unwrap();
        if token.is_some() {
            audited_reads += 1;
        }
        let total = whole["total"].as_u64().unwrap() as usize;
        assert!(
            total > 14 && total <= 100,
            "{entitlements}: {total} hits for 电池"
        );
        for sort in ["", "&sort=date"] {
            let mut walked: Vec<String> = Vec::new();
            let mut pages = 0;
            let mut path = format!("{Q}&limit=7{sort}");
            loop {
                let (status, text) = read(token.as_deref(), &path).await;
                assert_eq!(status, 200, "{path}: {text}");
                if token.is_some() {
                    audited_reads += 1;
                }
                for marker in &bad {
                    assert!(
                        !text.contains(marker),
                        "{path} leaks {marker} to {entitlements}"
                    );
                }
                let page: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(page["total"], whole["total"], "{path}");
                walked.extend(ids(&page));
                pages += 1;
                match page["next_cursor"].as_str() {
                    Some(cursor) => path = format!("{Q}&limit=7{sort}&cursor={}", encode(cursor)),
                    None => break,
                }
            }
            assert!(pages >= 3, "{entitlements}{sort}: {pages} pages");
            let mut walked_set = walked.clone();
            walked_set.sort();
            walked_set.dedup();
            assert_eq!(
                walked_set.len(),
                walked.len(),
                "{entitlements}{sort}: a hit twice"
            );
            let mut expected = ids(&whole);
            if sort.is_empty() {
                expected.sort();
                assert_eq!(walked_set, expected, "{entitlements}: the walk's hits");
            } else {
                let (_, dated) = read(token.as_deref(), &format!("{Q}&limit=100{sort}")).await;
                if token.is_some() {
                    audited_reads += 1;
                }
                let dated: Value = serde_json::from_str(&dated).unwrap();
                assert_eq!(walked, ids(&dated), "{entitlements}: the walk by date");
            }
        }
    }

    // Every successful non-public read was audited, and no public one. A streamed export writes
    // its audit row when the stream ends, which may be just after the client has read it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while api::audit_count(&db).unwrap() < audited_reads && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(api::audit_count(&db).unwrap(), audited_reads);
}

#[actix_web::test]
async fn a_ministry_following_the_change_feed_ends_with_exactly_the_visible_catalogue() {
    let (gw, records) = marked_catalogue();
    let db = gw.db.clone();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&db)))
            .configure(api::configure),
    )
    .await;
    // Follow as public, 37 changes a page.
    let mut state: std::collections::BTreeMap<String, Value> = Default::default();
    let mut sources: std::collections::BTreeMap<String, String> = Default::default();
    let mut after = "0".to_owned();
    loop {
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri(&format!("/v1/changes?after={after}&limit=37"))
                .to_request(),
        )
        .await;
        let next = resp
            .headers()
            .get("x-rix-next-after")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let body = test::read_body(resp).await;
        if body.is_empty() {
            break;
        }
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let change: Value = serde_json::from_slice(line).unwrap();
            let key = change["unified_id"].as_str().unwrap().to_owned();
            match change["op"].as_str().unwrap() {
                "upsert" => {
                    // Each record here is its entry's only source: name the entry by it.
                    let source = format!(
                        "{}/{}",
                        change["node_id"].as_str().unwrap(),
                        change["id"].as_str().unwrap()
                    );
                    sources.insert(key.clone(), source);
                    state.insert(key, change["record"].clone())
                }
                _ => state.remove(&key),
            };
        }
        after = next;
    }
    let expected: std::collections::BTreeMap<String, Value> = records
        .iter()
        .filter_map(|(id, r)| {
            rix_schema::sensitivity::redact(RecordKind::Achievement, r, Entitlements::PUBLIC)
                .map(|v| (format!("prov-530000/{id}"), v))
        })
        .collect();
    let state: std::collections::BTreeMap<String, Value> = state
        .into_iter()
        .map(|(uid, record)| (sources[&uid].clone(), record))
        .collect();
    assert_eq!(state.len(), expected.len());
    for (k, v) in &expected {
        // The catalogue's copy carries what the node published; compare the visible fields.
        assert_eq!(state[k]["title"], v["title"], "{k}");
        assert!(state[k].get("technical_indicators").is_none());
    }
}

#[actix_web::test]
async fn the_openapi_document_describes_the_read_endpoints() {
    let gw = Gateway::open(Backend::Sqlite);
    let db = gw.db.clone();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&db)))
            .configure(api::configure),
    )
    .await;
    let doc: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::get().uri("/openapi.json").to_request(),
    )
    .await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/records/{node_id}/{id}",
        "/v1/entries/{unified_id}",
        "/v1/changes",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    // Bad parameters are named.
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/v1/changes?limit=0")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["errors"][0]["pointer"], "/query/limit");
    // An unknown token is refused rather than silently read as public.
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/v1/changes")
            .insert_header(("Authorization", "Bearer nobody-knows-this-token"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 401);
}

#[actix_web::test]
async fn search_export_and_stats_agree_and_name_bad_parameters() {
    let (gw, records) = marked_catalogue();
    let db = gw.db.clone();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&db)))
            .configure(api::configure),
    )
    .await;
    let public_visible = records
        .iter()
        .filter(|(_, r)| r["secrecy"]["level"] == "public")
        .count() as u64;
    let page: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::get()
            .uri("/v1/search?limit=5")
            .to_request(),
    )
    .await;
    assert_eq!(page["total"], public_visible);
    let stats: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::get()
            .uri("/v1/stats?by=region")
            .to_request(),
    )
    .await;
    let summed: u64 = stats["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(stats["total"], public_visible);
    assert_eq!(summed, public_visible, "every visible entry has one region");
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/v1/export?format=csv")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body = test::read_body(resp).await;
    assert!(body.starts_with(&[0xEF, 0xBB, 0xBF]), "UTF-8 BOM for Excel");
    let text = String::from_utf8(body[3..].to_vec()).unwrap();
    assert!(text.starts_with("unified_id,kind,title"));
    assert_eq!(
        text.lines().count() as u64,
        public_visible + 1,
        "one row per visible entry"
    );
    for (uri, pointer) in [
        ("/v1/search?trl_min=high", "/query/trl_min"),
        ("/v1/search?sort=random", "/query/sort"),
        ("/v1/search?limit=1000", "/query/limit"),
        ("/v1/search?cursor=not-a-cursor", "/query/cursor"),
        ("/v1/export?format=xlsx", "/query/format"),
        ("/v1/stats?by=colour", "/query/by"),
        ("/v1/search?colour=red", "/query/colour"),
    ] {
        let resp = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(resp.status(), 400, "{uri}");
        let body: Value = test::read_body_json(resp).await;
        assert_eq!(body["errors"][0]["pointer"], pointer, "{uri}: {body}");
    }
}

#[actix_web::test]
async fn a_revoked_or_unknown_token_reads_nothing_not_even_as_public() {
    let (gw, records) = marked_catalogue();
    let db = gw.db.clone();
    let token = "leak-test-revoked-token-abcdefgh";
    access::add_token_value(&db, "soon revoked", Entitlements::ALL, token).unwrap();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&db)))
            .configure(api::configure),
    )
    .await;
    let (id, _) = &records[0];
    let path = format!("/v1/records/prov-530000/{id}");
    let call = |t: &'static str| {
        test::TestRequest::get()
            .uri(&path)
            .insert_header(("Authorization", format!("Bearer {t}")))
            .to_request()
    };
    let ok = test::call_service(&app, call(token)).await;
    assert_eq!(ok.status().as_u16(), 200, "positive control");
    access::revoke_tokens(&db, "soon revoked").unwrap();
    for t in [token, "never-issued-token-0123456789"] {
        for p in [
            path.clone(),
            "/v1/search?q=MKINT00001".to_owned(),
            "/v1/changes?after=0".to_owned(),
            "/v1/export?format=jsonl".to_owned(),
            "/v1/stats?by=region".to_owned(),
        ] {
            let resp = test::call_service(
                &app,
                test::TestRequest::get()
                    .uri(&p)
                    .insert_header(("Authorization", format!("Bearer {t}")))
                    .to_request(),
            )
            .await;
            assert_eq!(resp.status().as_u16(), 401, "{p} with {t}");
            let body = test::read_body(resp).await;
            let text = String::from_utf8_lossy(&body);
            for marker in ["MKINT", "MKCOM", "MKCONF", "MKPER", "MKSEC", "7731000"] {
                assert!(!text.contains(marker), "{p}: {text}");
            }
        }
    }
}

/// The history of a record whose first versions were internal, as a public reader and as an
/// internal reader see it: the hidden versions leave no row, no number, no count and no date.
///
/// The versions' reception dates are set to marker days (2001-01-0N) after ingest, so that a
/// hidden version's date would be recognisable anywhere in a page. Positive control: the
/// internal reader sees all four versions with their dates, and a record that was always public
/// shows both its versions to everyone; negative control: the public reader sees versions
/// numbered 1 and 2 only, neither hidden date, no hidden title, and the source box counts the
/// versions shown, not the node's version number.
#[actix_web::test]
async fn version_history_shows_no_trace_of_versions_the_reader_may_not_see() {
    use diesel::RunQueryDsl;
    let gw = Gateway::open(Backend::Sqlite);
    let mut node = SigningNode::trusted(&gw.db, "prov-530000");
    let generator = SampleGenerator::new(SampleConfig {
        share_internal: 0.0,
        share_classified: 0.0,
        share_commercial_secret: 0.0,
        ..SampleConfig::default()
    });
    let version = |i: u64, level: &str, title: &str, abstract_text: &str| {
        let mut r = serde_json::to_value(generator.achievement(i)).unwrap();
        r["secrecy"] = json!({"level": level});
        r["title"] = json!(title);
        r["abstract"] = json!(abstract_text);
        assert!(
            rix_schema::validate_record(RecordKind::Achievement, &r).is_ok(),
            "{:?}",
            rix_schema::validate_record(RecordKind::Achievement, &r)
        );
        r
    };
    // Declassified at its third version, revised at its fourth.
    let declassified = [
        version(
            1,
            "internal",
            "内部版本 MKHISTA",
            "第一稿：储能电池的内部说明 MKHISTB",
        ),
        version(
            1,
            "internal",
            "内部版本二 MKHISTC",
            "第二稿：储能电池的内部说明 MKHISTD",
        ),
        version(
            1,
            "public",
            "解密后的公开成果",
            "解密后公开的储能电池研究摘要",
        ),
        version(
            1,
            "public",
            "解密后的公开成果",
            "修订后公开的储能电池研究摘要",
        ),
    ];
    // Always public, revised once.
    let public = [
        version(2, "public", "一直公开的成果", "一直公开的储能电池研究摘要"),
        version(
            2,
            "public",
            "一直公开的成果",
            "修订后一直公开的储能电池研究摘要",
        ),
    ];
    for (v, r) in declassified.iter().enumerate() {
        let items = vec![(
            RecordKind::Achievement,
            "hist-1".to_owned(),
            v as u64 + 1,
            Some(r.clone()),
        )];
        assert_eq!(node.publish(&gw.ingest, items, 10), 1);
    }
    for (v, r) in public.iter().enumerate() {
        let items = vec![(
            RecordKind::Achievement,
            "hist-2".to_owned(),
            v as u64 + 1,
            Some(r.clone()),
        )];
        assert_eq!(node.publish(&gw.ingest, items, 10), 1);
    }
    {
        let mut conn = gw.db.conn().unwrap();
        for (id, v, day) in [
            ("hist-1", 1, "2001-01-01"),
            ("hist-1", 2, "2001-01-02"),
            ("hist-1", 3, "2001-01-03"),
            ("hist-1", 4, "2001-01-04"),
            ("hist-2", 1, "2001-02-01"),
            ("hist-2", 2, "2001-02-02"),
        ] {
            let n = diesel::sql_query(format!(
                "UPDATE record_versions SET applied_at = '{day}T00:00:00Z' \
                 WHERE node_id = 'prov-530000' AND id = '{id}' AND version = {v}"
            ))
            .execute(&mut *conn)
            .unwrap();
            assert_eq!(n, 1);
        }
    }
    let token = "leak-history-internal-token-0123456789";
    let internal = Entitlements {
        internal: true,
        ..Entitlements::PUBLIC
    };
    access::add_token_value(&gw.db, "history reader", internal, token).unwrap();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .configure(api::configure)
            .configure(portal::configure),
    )
    .await;
    let page = |uri: &'static str, token: Option<&'static str>| {
        let mut req = test::TestRequest::get().uri(uri);
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        req.to_request()
    };
    let read = async |uri: &'static str, token: Option<&'static str>| -> String {
        let resp = test::call_service(&app, page(uri, token)).await;
        assert_eq!(resp.status(), 200, "{uri}");
        String::from_utf8(test::read_body(resp).await.to_vec()).unwrap()
    };
    let rows = |html: &str| html.matches("<li class=\"version").count();

    // Negative control: the public reader.
    let seen = read("/records/prov-530000/hist-1", None).await;
    let history =
        &seen[seen.find("id=\"history-h\"").unwrap()..seen.find("id=\"verify-h\"").unwrap()];
    assert_eq!(rows(history), 2, "{history}");
    assert!(history.contains("第 1 版") && history.contains("第 2 版"));
    for hidden in ["第 3 版", "第 4 版", "2001-01-01", "2001-01-02", "MKHIST"] {
        assert!(!seen.contains(hidden), "{hidden} in the public page");
    }
    assert!(history.contains("2001-01-03") && history.contains("2001-01-04"));
    // The first version shown is the first the reader may see, not "changed since" a hidden
    // one; the second names what changed in the reader's view.
    assert!(history.contains("首个可见版本"));
    assert!(history.contains("有变化的字段：简介"), "{history}");
    // The verification box counts the versions shown too (the node's number would be 4).
    let verify = &seen[seen.find("id=\"verify-h\"").unwrap()..];
    assert!(verify.contains("<dd>第 2 版</dd>"), "{verify}");
    // The English page, the same.
    let english = read("/records/prov-530000/hist-1?lang=en", None).await;
    assert!(english.contains("Version 2") && !english.contains("Version 3"));
    assert!(!english.contains("2001-01-01") && !english.contains("2001-01-02"));

    // Positive control: the internal reader sees every version, with its date.
    let all = read("/records/prov-530000/hist-1", Some(token)).await;
    let history = &all[all.find("id=\"history-h\"").unwrap()..all.find("id=\"verify-h\"").unwrap()];
    assert_eq!(rows(history), 4, "{history}");
    for shown in [
        "第 4 版",
        "2001-01-01",
        "2001-01-02",
        "2001-01-03",
        "2001-01-04",
    ] {
        assert!(history.contains(shown), "{shown} for the internal reader");
    }
    assert!(history.contains("有变化的字段：") && history.contains("密级"));
    // A record that was always public shows both versions to everyone.
    for token in [None, Some(token)] {
        let always = read("/records/prov-530000/hist-2", token).await;
        assert_eq!(rows(&always), 2);
        assert!(always.contains("2001-02-01") && always.contains("2001-02-02"));
    }
}

/// An export reads the catalogue for its reader: a reader entitled to no sealed value (public,
/// internal) gets records read without their disclosures, the placeholders cut by the access
/// filter. Whatever the reading, each line's record must be exactly what the entry's own page
/// shows that reader (read with every disclosure put back, then cut): not a value more — the
/// budget totals that would give a hidden part away included — and not one less.
#[actix_web::test]
async fn every_readers_export_shows_each_record_as_its_page_does() {
    let (gw, _) = marked_catalogue_of(true);
    let db = gw.db.clone();
    let consumers = readers_of(&db, &EVERY_TOKEN_ENTITLEMENT);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&db)))
            .configure(api::configure),
    )
    .await;
    let get = |uri: String, token: &Option<String>| {
        let mut req = test::TestRequest::get().uri(&uri);
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        req.to_request()
    };
    for (token, e) in &consumers {
        let resp = test::call_service(&app, get("/v1/export?format=jsonl".into(), token)).await;
        assert_eq!(resp.status(), 200, "{e}");
        let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
        assert!(
            !body.contains("\"_sd\""),
            "{e}: a placeholder left in the export"
        );
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let projects_with_budget = lines
            .iter()
            .filter(|l| l["record"].get("budget").is_some())
            .count();
        assert!(projects_with_budget > 0, "{e}: the budgets are exported");
        for forbidden in forbidden(*e) {
            assert!(!body.contains(forbidden), "{e}: {forbidden} in the export");
        }
        for line in &lines {
            let unified_id = line["unified_id"].as_str().unwrap();
            let page: Value = test::call_and_read_body_json(
                &app,
                get(format!("/v1/entries/{unified_id}"), token),
            )
            .await;
            assert_eq!(
                line["record"], page["record"],
                "{e}: {unified_id} exported otherwise than its page shows it"
            );
        }
        let search: Value =
            test::call_and_read_body_json(&app, get("/v1/search?limit=1".into(), token)).await;
        assert_eq!(
            search["total"],
            lines.len(),
            "{e}: every visible entry exported once"
        );
    }
}
