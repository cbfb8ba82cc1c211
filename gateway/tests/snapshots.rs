//! Bulk snapshots (`rix gateway snapshot`, `/v1/snapshots`): a ministry starts from a
//! snapshot's file and follows `/v1/changes` from its manifest's `changes_after`, and ends with
//! exactly the catalogue it may see; each reader lists and downloads only the views they may
//! read; files come with ranges, validators and 304; a half-written snapshot is never listed.

mod common;

use std::collections::BTreeMap;
use std::io::Read;

use actix_web::http::header;
use actix_web::{App, test, web};
use rix_gateway::access;
use rix_gateway::api;
use rix_gateway::ingest::Transport;
use rix_gateway::snapshot::{self, Manifest, Snapshots};
use rix_schema::sensitivity::Entitlements;
use serde_json::{Value, json};
use sha2::Digest;

use common::{Backend, Change, FakeNode, Published, on_both_backends, read_state};

fn level(record: &mut Value, level: &str) {
    record["secrecy"] = json!({"level": level});
}

fn internal() -> Entitlements {
    "internal".parse().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Entries by unified id, from JSON Lines of `{unified_id, kind, record}`.
fn entries_of(jsonl: &[u8]) -> BTreeMap<String, Value> {
    jsonl
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_slice(l).unwrap();
            (
                v["unified_id"].as_str().unwrap().to_owned(),
                json!({"kind": v["kind"], "record": v["record"]}),
            )
        })
        .collect()
}

macro_rules! get {
    ($app:expr, $uri:expr, $token:expr $(, $h:expr)*) => {{
        let mut req = test::TestRequest::get().uri($uri)$(.insert_header($h))*;
        if let Some(t) = $token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let resp = test::call_service($app, req.to_request()).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = test::read_body(resp).await.to_vec();
        (status, headers, body)
    }};
}

/// Applies `/v1/changes?after=…` to `state` until the feed has nothing more; returns the last
/// position.
macro_rules! follow {
    ($app:expr, $token:expr, $after:expr, $state:expr) => {{
        let mut after: String = $after;
        loop {
            let (status, headers, body) = get!(
                $app,
                &format!("/v1/changes?after={after}&limit=7"),
                $token
            );
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let change: Value = serde_json::from_slice(line).unwrap();
                let id = change["unified_id"].as_str().unwrap().to_owned();
                match change["op"].as_str().unwrap() {
                    "upsert" => {
                        $state.insert(
                            id,
                            json!({"kind": change["kind"], "record": change["record"]}),
                        );
                    }
                    "remove" => {
                        $state.remove(&id);
                    }
                    other => panic!("op {other}"),
                }
            }
            let next = headers
                .get("x-rix-next-after")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if body.is_empty() {
                break next;
            }
            after = next;
        }
    }};
}

async fn a_ministry_starts_from_a_snapshot_and_follows_the_feed_to_exactly_the_catalogue(
    backend: Backend,
) {
    let gw = common::Gateway::open(backend);
    // Two nodes from one seed register the same results: their entries merge (patent, or
    // project and title), some through an internal source.
    let mut province = FakeNode::new("prov", 41, 0.0);
    let mut ministry = FakeNode::new("most", 41, 0.0);
    province.trust(&gw.db, None);
    ministry.trust(&gw.db, None);
    let ingest = |bytes: Vec<u8>| {
        gw.ingest.ingest(&bytes, Transport::Amqp).unwrap();
    };
    ingest(province.seal_edited(30, |i, r| {
        level(r, if i % 4 == 0 { "internal" } else { "public" })
    }));
    ingest(ministry.seal_edited(12, |i, r| {
        level(r, if i % 3 == 0 { "public" } else { "internal" })
    }));
    ingest(province.seal(vec![
        Change::Revise("a00001".into()),
        Change::Withdraw("a00002".into()),
    ]));
    // The last changes before the snapshot are internal only: the public position must not
    // move past them.
    ingest(province.seal_edited(3, |_, r| level(r, "internal")));

    let token = access::add_token(&gw.db, "ministry of finance", internal()).unwrap();
    let state = web::Data::new(read_state(&gw.db));
    let dir = tempfile::tempdir().unwrap();
    let snapshots = Snapshots {
        root: dir.path().join("snapshots"),
        views: vec![Entitlements::PUBLIC, internal()],
        keep: 3,
    };
    let app = test::init_service(
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(snapshots.clone()))
            .configure(api::configure)
            .configure(snapshot::configure),
    )
    .await;

    // Where a public follower from the start stands now: the snapshot must hand out the very
    // same position (a sealed one that never counted the hidden changes).
    let mut scratch = BTreeMap::new();
    let public_now = follow!(&app, None::<&str>, "0".to_owned(), scratch);
    let quiet = snapshots.take(&gw.db).unwrap();
    assert_eq!(
        quiet.manifests[0].changes_after, public_now,
        "the public position counts no hidden change (and is where the feed leaves a reader)"
    );

    // Another is taken while more changes arrive: whatever it catches of them, it is one
    // moment, and following from its position repairs the rest.
    let taken = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for round in 0..4 {
                let id = format!("a{:05}", 3 + round);
                let mut changes = vec![Change::New, Change::Revise(id)];
                if round == 2 {
                    changes.push(Change::Withdraw("a00010".into()));
                }
                gw.ingest
                    .ingest(&province.seal(changes), Transport::Amqp)
                    .unwrap();
            }
        });
        let taken = snapshots.take(&gw.db).unwrap();
        writer.join().unwrap();
        taken
    });
    assert_eq!(taken.manifests.len(), 2);

    // After the snapshot: new records, revisions, withdrawals, a public record turned internal,
    // an internal one made public, and a ministry source withdrawn from a merged entry.
    if let Some(Published::Active { record, .. }) = province.expected.get_mut("a00005") {
        level(record, "internal");
    }
    if let Some(Published::Active { record, .. }) = province.expected.get_mut("a00004") {
        level(record, "public");
    }
    ingest(province.seal(vec![
        Change::New,
        Change::Revise("a00005".into()),
        Change::Revise("a00004".into()),
        Change::Revise("a00007".into()),
        Change::Withdraw("a00009".into()),
    ]));
    let withdrawn = ministry.active_ids()[0].clone();
    ingest(ministry.seal(vec![Change::Withdraw(withdrawn), Change::New]));
    ingest(province.seal_edited(2, |_, r| level(r, "internal")));
    state.search.sync(&gw.db).unwrap();

    // The list, as an anonymous reader sees it: the public view of each, newest first.
    let (status, _, body) = get!(&app, "/v1/snapshots", None::<&str>);
    assert_eq!(status, 200);
    let listed: Vec<Manifest> = serde_json::from_value(
        serde_json::from_slice::<Value>(&body).unwrap()["snapshots"].clone(),
    )
    .unwrap();
    let ids: Vec<(&str, &str)> = listed
        .iter()
        .map(|m| (m.id.as_str(), m.view.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            (taken.manifests[0].id.as_str(), "public"),
            (quiet.manifests[0].id.as_str(), "public")
        ]
    );

    for (who, entitlements) in [(None, Entitlements::PUBLIC), (Some(&token), internal())] {
        let (status, _, body) = get!(&app, "/v1/snapshots", who);
        assert_eq!(status, 200);
        let listed: Vec<Manifest> = serde_json::from_value(
            serde_json::from_slice::<Value>(&body).unwrap()["snapshots"].clone(),
        )
        .unwrap();
        let mine: Vec<&Manifest> = listed
            .iter()
            .filter(|m| m.view == snapshot::view_name(entitlements))
            .collect();
        assert_eq!(mine.len(), 2, "{entitlements}: {listed:?}");
        // From either snapshot, the follower ends with the same catalogue.
        for manifest in mine {
            assert_eq!(manifest.schema_version, "v1");
            assert!(!manifest.changes_after.is_empty());
            let file = &manifest.files[0];
            let (status, headers, gz) = get!(&app, &file.url, who);
            assert_eq!(status, 200, "{}", file.url);
            assert_eq!(
                headers.get(header::CONTENT_TYPE).unwrap(),
                "application/gzip"
            );
            assert_eq!(gz.len() as u64, file.size);
            assert_eq!(hex::encode(sha2::Sha256::digest(&gz)), file.sha256);
            let mut catalogue = entries_of(&gunzip(&gz));
            assert_eq!(catalogue.len() as u64, file.count);
            assert_eq!(manifest.counts["total"], file.count);
            assert_eq!(
                manifest.counts["achievement"] + manifest.counts["funded_project"],
                file.count
            );
            assert!(file.count > 10, "{entitlements}: {}", file.count);

            let end = follow!(&app, who, manifest.changes_after.clone(), catalogue);
            // The catalogue as this reader sees it now, from the export.
            let (status, _, export) = get!(&app, "/v1/export?format=jsonl", who);
            assert_eq!(status, 200);
            let expected = entries_of(&export);
            assert_eq!(
                catalogue.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "{entitlements}: the same entries"
            );
            assert_eq!(catalogue, expected, "{entitlements}: the same records");
            // And the follower's position is where a follower from the start stands.
            let mut scratch = BTreeMap::new();
            let from_start = follow!(&app, who, "0".to_owned(), scratch);
            assert_eq!(end, from_start, "{entitlements}");
        }
    }
    // The internal view holds what the public one does not.
    let counts: Vec<u64> = taken.manifests.iter().map(|m| m.counts["total"]).collect();
    assert!(counts[1] > counts[0], "{counts:?}");
}

on_both_backends!(
    snapshot_then_follow,
    a_ministry_starts_from_a_snapshot_and_follows_the_feed_to_exactly_the_catalogue
);

/// A catalogue of public and internal records with a snapshot of the public view and of every
/// view given, kept 2 at a time.
fn catalogue(views: &[&str]) -> (common::Gateway, tempfile::TempDir, Snapshots) {
    let gw = common::Gateway::open(Backend::Sqlite);
    let mut node = FakeNode::new("prov", 43, 0.0);
    node.trust(&gw.db, None);
    gw.ingest
        .ingest(
            &node.seal_edited(20, |i, r| {
                level(r, if i % 2 == 0 { "internal" } else { "public" })
            }),
            Transport::Amqp,
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut entitlements = vec![Entitlements::PUBLIC];
    entitlements.extend(views.iter().map(|v| v.parse::<Entitlements>().unwrap()));
    let snapshots = Snapshots {
        root: dir.path().to_owned(),
        views: entitlements,
        keep: 2,
    };
    snapshots.take(&gw.db).unwrap();
    (gw, dir, snapshots)
}

/// The read API and the snapshot routes over `gw`, compression negotiated as the server does.
macro_rules! app {
    ($gw:expr, $snapshots:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new(read_state(&$gw.db)))
                .app_data(web::Data::new($snapshots.clone()))
                .wrap(actix_web::middleware::Compress::default())
                .configure(api::configure)
                .configure(snapshot::configure),
        )
        .await
    };
}

fn listed(body: &[u8]) -> Vec<Manifest> {
    serde_json::from_value(serde_json::from_slice::<Value>(body).unwrap()["snapshots"].clone())
        .unwrap()
}

#[actix_web::test]
async fn each_reader_lists_and_downloads_only_the_views_they_may_read() {
    let (gw, _dir, snapshots) = catalogue(&["internal", "internal,commercial", "commercial"]);
    let app = app!(gw, snapshots);
    let internal_token = access::add_token(&gw.db, "i", internal()).unwrap();
    let commercial_token = access::add_token(&gw.db, "c", "commercial".parse().unwrap()).unwrap();
    let both_token =
        access::add_token(&gw.db, "ic", "internal,commercial".parse().unwrap()).unwrap();

    let views_of = |body: &[u8]| -> Vec<String> {
        let mut v: Vec<String> = listed(body).into_iter().map(|m| m.view).collect();
        v.sort();
        v
    };
    let (_, _, body) = get!(&app, "/v1/snapshots", None::<&str>);
    assert_eq!(views_of(&body), ["public"]);
    let (_, _, body) = get!(&app, "/v1/snapshots", Some(&internal_token));
    assert_eq!(views_of(&body), ["internal", "public"]);
    let (_, _, body) = get!(&app, "/v1/snapshots", Some(&commercial_token));
    assert_eq!(views_of(&body), ["commercial", "public"]);
    let (_, _, body) = get!(&app, "/v1/snapshots", Some(&both_token));
    assert_eq!(
        views_of(&body),
        ["commercial", "internal", "internal-commercial", "public"]
    );
    let all = listed(&body);
    let id = &all[0].id;
    // The public list names no other view, not even in passing.
    let (_, _, public_list) = get!(&app, "/v1/snapshots", None::<&str>);
    let text = String::from_utf8_lossy(&public_list);
    assert!(
        !text.contains("internal") && !text.contains("commercial"),
        "{text}"
    );

    let missing = get!(
        &app,
        &format!("/v1/snapshots/{id}/personal.jsonl.gz"),
        None::<&str>
    );
    assert_eq!(missing.0, 404);
    for m in &all {
        let view: Entitlements = m.entitlements.join(",").parse().unwrap();
        for url in [&m.files[0].url, &m.manifest_url] {
            for (token, reader) in [
                (None, Entitlements::PUBLIC),
                (Some(&internal_token), internal()),
                (Some(&commercial_token), "commercial".parse().unwrap()),
                (Some(&both_token), "internal,commercial".parse().unwrap()),
            ] {
                let (status, headers, body) = get!(&app, url, token);
                if snapshot::may_read(reader, view) {
                    assert_eq!(status, 200, "{url} for {reader}");
                } else {
                    // Exactly the answer for a file that does not exist.
                    assert_eq!(status, missing.0, "{url} for {reader}");
                    assert_eq!(body, missing.2, "{url} for {reader}");
                    assert_eq!(
                        headers.get(header::CONTENT_TYPE),
                        missing.1.get(header::CONTENT_TYPE)
                    );
                }
            }
        }
    }
    // Paths that are not files of a snapshot.
    for path in [
        format!("/v1/snapshots/{id}/public.csv"),
        format!("/v1/snapshots/{id}/public-internal.jsonl.gz"),
        "/v1/snapshots/..%2F..%2Fetc/public.jsonl.gz".to_owned(),
        "/v1/snapshots/20991231T000000000Z-00000000/public.jsonl.gz".to_owned(),
    ] {
        assert_eq!(get!(&app, &path, None::<&str>).0, 404, "{path}");
    }
}

#[actix_web::test]
async fn snapshot_files_answer_ranges_validators_and_304_as_stored() {
    let (gw, _dir, snapshots) = catalogue(&[]);
    let app = app!(gw, snapshots);
    let (_, _, body) = get!(&app, "/v1/snapshots", None::<&str>);
    let m = listed(&body).remove(0);
    let url = m.files[0].url.clone();
    // Asked for gzip, the file comes as it is stored (not compressed twice).
    let (status, headers, whole) = get!(
        &app,
        &url,
        None::<&str>,
        (header::ACCEPT_ENCODING, "gzip, br")
    );
    assert_eq!(status, 200);
    assert_eq!(whole.len() as u64, m.files[0].size);
    assert_eq!(hex::encode(sha2::Sha256::digest(&whole)), m.files[0].sha256);
    assert_eq!(headers.get(header::ACCEPT_RANGES).unwrap(), "bytes");
    let etag = headers
        .get(header::ETAG)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(etag.starts_with('"'), "a strong tag: {etag}");
    let modified = headers
        .get(header::LAST_MODIFIED)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let size = whole.len();

    let (status, headers, part) = get!(&app, &url, None::<&str>, (header::RANGE, "bytes=10-19"));
    assert_eq!(status, 206);
    assert_eq!(part, whole[10..20]);
    assert_eq!(
        headers
            .get(header::CONTENT_RANGE)
            .unwrap()
            .to_str()
            .unwrap(),
        format!("bytes 10-19/{size}")
    );
    let (status, _, tail) = get!(&app, &url, None::<&str>, (header::RANGE, "bytes=-7"));
    assert_eq!(status, 206);
    assert_eq!(tail, whole[size - 7..]);
    let (status, _, rest) = get!(
        &app,
        &url,
        None::<&str>,
        (header::RANGE, format!("bytes={}-", size - 3))
    );
    assert_eq!(status, 206);
    assert_eq!(rest, whole[size - 3..]);
    // A download resumed in pieces is the file.
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < size {
        let (_, _, piece) = get!(
            &app,
            &url,
            None::<&str>,
            (header::RANGE, format!("bytes={at}-{}", at + 99)),
            (header::IF_RANGE, etag.clone())
        );
        at += piece.len();
        pieces.extend(piece);
    }
    assert_eq!(pieces, whole);
    let (status, headers, _) = get!(
        &app,
        &url,
        None::<&str>,
        (header::RANGE, format!("bytes={size}-"))
    );
    assert_eq!(status, 416);
    assert_eq!(
        headers
            .get(header::CONTENT_RANGE)
            .unwrap()
            .to_str()
            .unwrap(),
        format!("bytes */{size}")
    );
    // If-Range naming another version: the whole file.
    let (status, _, body) = get!(
        &app,
        &url,
        None::<&str>,
        (header::RANGE, "bytes=0-9"),
        (header::IF_RANGE, "\"other\"")
    );
    assert_eq!((status, body.len()), (200, size));
    let (status, _, body) = get!(
        &app,
        &url,
        None::<&str>,
        (header::RANGE, "bytes=0-9"),
        (header::IF_RANGE, modified.clone())
    );
    assert_eq!((status, body.len()), (206, 10));

    for (name, value) in [
        (header::IF_NONE_MATCH, etag.clone()),
        (header::IF_MODIFIED_SINCE, modified.clone()),
    ] {
        let (status, headers, body) = get!(&app, &url, None::<&str>, (name.clone(), value));
        assert_eq!(status, 304, "{name}");
        assert!(body.is_empty());
        assert_eq!(headers.get(header::ETAG).unwrap().to_str().unwrap(), etag);
    }
    let (status, ..) = get!(
        &app,
        &url,
        None::<&str>,
        (header::IF_NONE_MATCH, "\"other\"")
    );
    assert_eq!(status, 200);
    // The manifest and the list carry validators too.
    let (status, headers, _) = get!(&app, &m.manifest_url, None::<&str>);
    assert_eq!(status, 200);
    let tag = headers
        .get(header::ETAG)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let (status, ..) = get!(
        &app,
        &m.manifest_url,
        None::<&str>,
        (header::IF_NONE_MATCH, tag)
    );
    assert_eq!(status, 304);
    let (_, headers, _) = get!(&app, "/v1/snapshots", None::<&str>);
    let tag = headers
        .get(header::ETAG)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let (status, ..) = get!(
        &app,
        "/v1/snapshots",
        None::<&str>,
        (header::IF_NONE_MATCH, tag)
    );
    assert_eq!(status, 304);
}

#[actix_web::test]
async fn a_half_written_snapshot_is_never_listed_and_only_the_newest_are_kept() {
    let (gw, dir, snapshots) = catalogue(&["internal"]);
    let app = app!(gw, snapshots);
    // What a crash mid-write leaves: a temporary directory with a manifest in it.
    let first = snapshot::list(dir.path(), Entitlements::ALL).unwrap();
    let tmp = dir
        .path()
        .join(format!(".tmp-{}", first[0].id.replace("Z-", "Z-f")));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(
        tmp.join("public.manifest.json"),
        serde_json::to_vec(&first[0]).unwrap(),
    )
    .unwrap();
    let (_, _, body) = get!(&app, "/v1/snapshots", None::<&str>);
    assert_eq!(listed(&body).len(), 1);

    let mut ids = vec![first[0].id.clone()];
    for _ in 0..3 {
        let taken = snapshots.take(&gw.db).unwrap();
        ids.push(taken.manifests[0].id.clone());
    }
    ids.sort();
    let (_, _, body) = get!(&app, "/v1/snapshots", None::<&str>);
    let now: Vec<String> = listed(&body).into_iter().map(|m| m.id).collect();
    // keep = 2: the two newest, newest first.
    assert_eq!(now, [ids[3].clone(), ids[2].clone()]);
    let (status, ..) = get!(
        &app,
        &format!("/v1/snapshots/{}/public.jsonl.gz", ids[0]),
        None::<&str>
    );
    assert_eq!(status, 404, "a pruned snapshot is gone");
    assert!(
        tmp.exists(),
        "another writer's temporary directory is left alone"
    );
}

/// The served gateway takes snapshots on its schedule and serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_gateway_takes_snapshots_on_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = rix_gateway::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        ..Default::default()
    };
    config.snapshots.every_hours = 1.0;
    config.snapshots.views = vec!["internal".into()];
    let gateway = rix_gateway::serve::start(config).await.unwrap();
    let url = format!("{}/v1/snapshots", gateway.url());
    // None on disk: the first is due at once.
    let mut found = Vec::new();
    common::eventually(
        std::time::Duration::from_secs(30),
        "a scheduled snapshot",
        || {
            found = snapshot::list(&dir.path().join("snapshots"), Entitlements::ALL).unwrap();
            found.len() == 2
        },
    )
    .await;
    let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(body["snapshots"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["snapshots"][0]["view"], "public");
    // On the wire, through the server's compression: a range is the stored bytes, sized.
    let file = format!(
        "{}{}",
        gateway.url(),
        body["snapshots"][0]["files"][0]["url"].as_str().unwrap()
    );
    let whole = reqwest::get(&file).await.unwrap().bytes().await.unwrap();
    let resp = reqwest::Client::new()
        .get(&file)
        .header("Range", "bytes=2-9")
        .header("Accept-Encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(resp.headers()["content-length"], "8");
    assert!(
        resp.headers()
            .get("content-encoding")
            .is_none_or(|v| v == "identity"),
        "{:?}",
        resp.headers()
    );
    assert_eq!(resp.bytes().await.unwrap(), whole[2..10]);
    gateway.stop().await;
}

/// The OpenAPI document and the discovery document name the snapshot paths.
#[actix_web::test]
async fn the_openapi_document_lists_the_snapshot_paths() {
    let gw = common::Gateway::open(Backend::Sqlite);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .configure(api::configure),
    )
    .await;
    let doc: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::get().uri("/openapi.json").to_request(),
    )
    .await;
    for path in ["/v1/snapshots", "/v1/snapshots/{id}/{file}"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    let discovery: Value =
        test::call_and_read_body_json(&app, test::TestRequest::get().uri("/v1").to_request()).await;
    assert!(
        discovery.to_string().contains("/v1/snapshots"),
        "{discovery}"
    );
}
