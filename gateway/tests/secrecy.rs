//! Secrecy as an attacker tests it: not "is the marker absent" but "can I deduce it". Each test
//! reproduces an attack on the read APIs (issue 11) and shows it no longer works, with a
//! positive control showing that an entitled reader does get what the attacker may not.
//!
//! Everything goes through the real ingest path (signed batches of format 2, verified, sealed
//! values disclosed) and the real HTTP handlers.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use actix_web::{App, test, web};
use base64::Engine as _;
use common::{Backend, Chain, Gateway, SigningNode, read_state};
use rix_gateway::access;
use rix_gateway::api;
use rix_gateway::ingest::{Outcome, Transport};
use rix_schema::RecordKind;
use rix_schema::batch::Entry;
use rix_schema::canonical::{canonical_value, sha256};
use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_schema::sensitivity::{Entitlements, hidden_fields};
use serde_json::{Value, json};

/// A catalogue fed by several signing nodes through the real ingest pipeline.
struct World {
    gw: Gateway,
    nodes: HashMap<String, SigningNode>,
    tokens: HashMap<&'static str, String>,
}

impl World {
    fn new() -> World {
        let gw = Gateway::open(Backend::Sqlite);
        let mut tokens = HashMap::new();
        for (i, names) in [
            "internal",
            "commercial",
            "personal",
            "commercial,personal",
            "internal,commercial",
            "internal,personal",
            "internal,commercial,personal",
        ]
        .into_iter()
        .enumerate()
        {
            let token = format!("secrecy-test-token-{i:02}-abcdefgh");
            access::add_token_value(&gw.db, names, names.parse().unwrap(), &token).unwrap();
            tokens.insert(names, token);
        }
        World {
            gw,
            nodes: HashMap::new(),
            tokens,
        }
    }

    /// Signs `changes` as the next batch of `node_id` (trusted at its first batch) and
    /// ingests it; it must apply.
    fn publish(&mut self, node_id: &str, changes: Vec<(RecordKind, &str, u64, Option<Value>)>) {
        let db = &self.gw.db;
        let node = self
            .nodes
            .entry(node_id.to_owned())
            .or_insert_with(|| SigningNode::trusted(db, node_id));
        let items = changes
            .into_iter()
            .map(|(kind, id, version, record)| (kind, id.to_owned(), version, record))
            .collect();
        let outcome = self
            .gw
            .ingest
            .ingest(&node.batch(items), Transport::Amqp)
            .unwrap();
        assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    }

    async fn get(&self, path: &str, who: Option<&str>) -> (u16, String) {
        let (status, body, _) = self.get_with_next(path, who).await;
        (status, body)
    }

    /// [`World::get`], with the response's `X-Rix-Next-After`.
    async fn get_with_next(&self, path: &str, who: Option<&str>) -> (u16, String, Option<String>) {
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(read_state(&self.gw.db)))
                .configure(api::configure),
        )
        .await;
        let mut req = test::TestRequest::get().uri(path);
        if let Some(names) = who {
            req = req.insert_header(("Authorization", format!("Bearer {}", self.tokens[names])));
        }
        let resp = test::call_service(&app, req.to_request()).await;
        let status = resp.status().as_u16();
        let next = resp
            .headers()
            .get("x-rix-next-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = test::read_body(resp).await;
        (status, String::from_utf8(body.to_vec()).unwrap(), next)
    }

    async fn detail(&self, node: &str, id: &str, who: Option<&str>) -> Option<Value> {
        let (status, body) = self.get(&format!("/v1/records/{node}/{id}"), who).await;
        match status {
            200 => Some(serde_json::from_str(&body).unwrap()),
            404 => None,
            other => panic!("{other}: {body}"),
        }
    }
}

fn generator() -> SampleGenerator {
    SampleGenerator::new(SampleConfig {
        share_internal: 0.0,
        share_classified: 0.0,
        share_commercial_secret: 0.0,
        ..SampleConfig::default()
    })
}

/// A public achievement with a price, a personal id number and a submitter-declared secret.
fn priced_achievement(i: u64, price: u64) -> Value {
    let mut r = serde_json::to_value(generator().achievement(i)).unwrap();
    r["secrecy"] = json!({"level": "public"});
    r["transfer"] = json!({"modes": ["许可"], "price": price});
    r["completers"] = json!([{"name": "张三", "id_number": "530102198001011234"}]);
    r["application"] = json!({"industries": "储能电站"});
    r["confidential_fields"] = json!(["/application/industries"]);
    assert!(rix_schema::validate_record(RecordKind::Achievement, &r).is_ok());
    r
}

fn python() -> String {
    std::env::var("RIX_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs the independent verifier (Python + `cryptography`) on a record page.
fn verify_independently(detail: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verifier.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs (RIX_PYTHON from ops/start-services.sh, with cryptography)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(detail.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verifier said: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report
}

/// Every string in `v` that looks like a digest (64 hex digits or 43 base64url characters).
fn digests_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let hex = s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
            let b64 = s.len() == 43
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if hex || b64 {
                out.push(s.clone());
            }
            // Strings that are JSON (the signed entry) hold digests too.
            if let Ok(inner @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str(s) {
                digests_in(&inner, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| digests_in(x, out)),
        Value::Object(o) => o.values().for_each(|x| digests_in(x, out)),
        _ => {}
    }
}

#[actix_web::test]
async fn an_anonymous_reader_verifies_what_they_see_with_an_independent_verifier() {
    let mut w = World::new();
    w.publish(
        "prov-530000",
        vec![
            (
                RecordKind::Achievement,
                "a1",
                1,
                Some(priced_achievement(1, 300)),
            ),
            (
                RecordKind::Achievement,
                "a2",
                1,
                Some(priced_achievement(2, 450)),
            ),
            (
                RecordKind::Achievement,
                "a3",
                1,
                Some(priced_achievement(3, 120)),
            ),
        ],
    );
    for who in [
        None,
        Some("commercial"),
        Some("personal"),
        Some("internal,commercial,personal"),
    ] {
        let detail = w.detail("prov-530000", "a2", who).await.unwrap();
        let report = verify_independently(&detail);
        assert_eq!(report["ok"], true, "{who:?}: {report}");
        assert_eq!(report["primary_matches"], true, "{who:?}");
        let disclosed = report["disclosures"].as_u64().unwrap();
        let left = report["placeholders_left"].as_u64().unwrap();
        match who {
            // Price, id number, the declared secret: all sealed, none disclosed.
            None => assert!(disclosed == 0 && left >= 3, "{report}"),
            Some("internal,commercial,personal") => assert!(disclosed >= 3 && left == 0),
            Some(_) => assert!(disclosed >= 1 && left >= 1, "{who:?}: {report}"),
        }
    }
}

#[actix_web::test]
async fn a_hidden_price_cannot_be_recovered_by_guessing_against_any_hash_served() {
    // The attack of issue 11 §2: take the public view, guess the hidden price, hash, compare
    // with every hash in the response. It found the price in 4,322 guesses against leaf_hash.
    let mut w = World::new();
    let record = priced_achievement(7, 3_217);
    w.publish(
        "prov-530000",
        vec![(RecordKind::Achievement, "a7", 1, Some(record.clone()))],
    );
    let detail = w.detail("prov-530000", "a7", None).await.unwrap();
    assert!(detail["record"]["transfer"].get("price").is_none());
    let mut served = Vec::new();
    digests_in(&detail, &mut served);
    assert!(
        !served.is_empty(),
        "the response carries the proof and placeholders"
    );
    let text = detail.to_string();
    assert!(
        !text.contains("leaf_hash"),
        "no unsalted hash over the entry"
    );
    let hex = |b: [u8; 32]| hex::encode(b);
    let b64 = |b: [u8; 32]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let mut hits = 0;
    for guess in 0..10_000u64 {
        let mut full = record.clone();
        full["transfer"]["price"] = json!(guess);
        // Every unsalted thing the old page hashed, and the value itself.
        let entry = Entry::upsert(1, RecordKind::Achievement, "a7", 1, full.clone());
        let candidates = [
            rix_schema::merkle::leaf_hash(&entry.canonical_bytes()),
            sha256(&canonical_value(&full)),
            sha256(&canonical_value(&json!(guess))),
            sha256(guess.to_string().as_bytes()),
        ];
        for c in candidates {
            if served.contains(&hex(c)) || served.contains(&b64(c)) {
                hits += 1;
            }
        }
    }
    assert_eq!(hits, 0, "a guess matched a served hash");
    // Positive control: the commercial reader gets the price, bound to the signature.
    let detail = w
        .detail("prov-530000", "a7", Some("commercial"))
        .await
        .unwrap();
    assert_eq!(detail["record"]["transfer"]["price"], 3_217);
    assert_eq!(verify_independently(&detail)["ok"], true);
}

#[actix_web::test]
async fn no_hidden_value_or_disclosure_reaches_a_reader_without_the_entitlement() {
    let mut w = World::new();
    let record = priced_achievement(9, 888);
    w.publish(
        "prov-530000",
        vec![(RecordKind::Achievement, "a9", 1, Some(record.clone()))],
    );
    let hidden = hidden_fields(RecordKind::Achievement, &record);
    assert!(hidden.len() >= 3);
    for (who, e) in [
        (None, Entitlements::PUBLIC),
        (Some("commercial"), "commercial".parse().unwrap()),
        (Some("personal"), "personal".parse().unwrap()),
        (
            Some("internal,commercial"),
            "internal,commercial".parse().unwrap(),
        ),
    ] {
        let detail = w.detail("prov-530000", "a9", who).await.unwrap();
        let body = detail.to_string();
        let given: Vec<Value> = detail["sources"][0]["verification"]["disclosures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| serde_json::from_str(t.as_str().unwrap()).unwrap())
            .collect();
        for h in &hidden {
            let value = record.pointer(&h.pointer()).unwrap();
            let entitled = h.classes.entitled(e);
            let disclosed = given.iter().any(|d| d[1] == h.pointer());
            assert_eq!(disclosed, entitled, "{who:?} {}", h.pointer());
            if !entitled && let Some(s) = value.as_str() {
                assert!(!body.contains(s), "{who:?} sees {s}");
            }
            assert_eq!(
                detail["record"].pointer(&h.pointer()).is_some(),
                entitled,
                "{who:?} {}",
                h.pointer()
            );
        }
    }
}

#[actix_web::test]
async fn budget_parts_never_add_up_to_a_hidden_part() {
    let mut w = World::new();
    let mut p = serde_json::to_value(generator().project(3)).unwrap();
    p["secrecy"] = json!({"level": "public"});
    p["budget"] =
        json!({"total": 1000, "central_fiscal": 600, "local_fiscal": 150, "self_raised": 250});
    w.publish("most", vec![(RecordKind::FundedProject, "p3", 1, Some(p))]);
    let detail = w.detail("most", "p3", None).await.unwrap();
    let budget = &detail["record"]["budget"];
    assert!(budget.get("self_raised").is_none());
    // Whatever is shown, total − parts cannot give 250.
    let shown = |k: &str| budget.get(k).and_then(Value::as_f64);
    if let Some(total) = shown("total") {
        let parts = shown("central_fiscal").unwrap_or(0.0) + shown("local_fiscal").unwrap_or(0.0);
        assert!(
            (total - parts - 250.0).abs() > 1e-9,
            "total {total} − visible parts {parts} reveals self_raised"
        );
    }
    let full = w.detail("most", "p3", Some("commercial")).await.unwrap();
    assert_eq!(full["record"]["budget"]["self_raised"], 250);
    assert_eq!(full["record"]["budget"]["total"], 1000);
}

#[actix_web::test]
async fn a_link_through_a_hidden_funding_reference_is_shown_only_to_entitled_readers() {
    let mut w = World::new();
    let g = generator();
    let mut project =
        serde_json::to_value(g.project(rix_schema::sample::funding_project_index(5))).unwrap();
    project["secrecy"] = json!({"level": "public"});
    let mut a = serde_json::to_value(g.achievement(5)).unwrap();
    a["secrecy"] = json!({"level": "public"});
    a["confidential_fields"] = json!(["/funding"]);
    assert_eq!(a["funding"][0]["project_no"], project["project_no"]);
    w.publish(
        "most",
        vec![(RecordKind::FundedProject, "p5", 1, Some(project))],
    );
    w.publish(
        "prov-530000",
        vec![(RecordKind::Achievement, "a5", 1, Some(a))],
    );
    let anon = w.detail("prov-530000", "a5", None).await.unwrap();
    assert_eq!(anon["links"], json!([]), "{}", anon["links"]);
    let anon_project = w.detail("most", "p5", None).await.unwrap();
    assert_eq!(anon_project["links"], json!([]));
    let entitled = w
        .detail("prov-530000", "a5", Some("commercial"))
        .await
        .unwrap();
    let project = w.detail("most", "p5", Some("commercial")).await.unwrap();
    assert_eq!(entitled["links"][0]["unified_id"], project["unified_id"]);
    assert_eq!(project["links"][0]["unified_id"], entitled["unified_id"]);
}

#[actix_web::test]
async fn an_internal_source_merged_into_a_public_entry_is_invisible_to_public_readers() {
    let mut w = World::new();
    let public = (11..)
        .map(|i| priced_achievement(i, 100))
        .find(|r| r["registration_no"].is_string())
        .unwrap();
    let mut internal = public.clone();
    internal["secrecy"] = json!({"level": "internal"});
    internal["abstract"] = json!("内部版本的摘要，只给内部读者看。");
    w.publish(
        "prov-530000",
        vec![(RecordKind::Achievement, "pub", 1, Some(public))],
    );
    w.publish(
        "most",
        vec![(RecordKind::Achievement, "int", 1, Some(internal))],
    );

    // Internal readers see one entry with two sources.
    let inside = w
        .detail("prov-530000", "pub", Some("internal"))
        .await
        .unwrap();
    assert_eq!(inside["sources"].as_array().unwrap().len(), 2);
    assert_eq!(
        w.detail("most", "int", Some("internal")).await.unwrap()["unified_id"],
        inside["unified_id"]
    );

    // A public reader: one source, no id, node or count of the internal one, anywhere.
    let anon = w.detail("prov-530000", "pub", None).await.unwrap();
    assert_eq!(anon["sources"].as_array().unwrap().len(), 1);
    assert!(!anon.to_string().contains("\"int\""));
    assert!(
        w.detail("most", "int", None).await.is_none(),
        "404 for the internal id"
    );
    let (_, changes) = w.get("/v1/changes?after=0", None).await;
    assert!(!changes.contains("\"most\""), "{changes}");
    assert_eq!(changes.lines().count(), 1);
    let (_, found) = w.get("/v1/search?node=most", None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&found).unwrap()["total"],
        0,
        "{found}"
    );
    let (_, found) = w
        .get("/v1/search?q=%E5%86%85%E9%83%A8%E7%89%88%E6%9C%AC", None)
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&found).unwrap()["total"],
        0,
        "{found}"
    );
    let (_, found) = w.get("/v1/search?node=most", Some("internal")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&found).unwrap()["total"],
        1,
        "{found}"
    );

    // The internal record first, a public one later: the public reader sees the public one.
    let mut w = World::new();
    let mut first = priced_achievement(12, 100);
    first["secrecy"] = json!({"level": "internal"});
    first["title"] = json!("内部登记的名称");
    let mut later = priced_achievement(12, 100);
    later["title"] = json!("公开登记的名称");
    w.publish(
        "most",
        vec![(RecordKind::Achievement, "int", 1, Some(first))],
    );
    w.publish(
        "prov-530000",
        vec![(RecordKind::Achievement, "pub", 1, Some(later.clone()))],
    );
    let anon = w.detail("prov-530000", "pub", None).await.unwrap();
    assert_eq!(anon["record"]["title"], later["title"]);
    assert_eq!(anon["primary"]["node_id"], "prov-530000");
    assert!(!anon.to_string().contains("内部登记的名称"));
    let (_, found) = w.get("/v1/search?limit=10", None).await;
    let found: Value = serde_json::from_str(&found).unwrap();
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["title"], later["title"]);

    // The entry's name does not say which record opened it: not `most/int`, not a hash anyone
    // can compute from a guess, on every path that gives the name.
    let name = anon["unified_id"].as_str().unwrap().to_owned();
    assert!(
        name.len() == 25
            && name.starts_with('u')
            && name[1..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    assert_eq!(found["items"][0]["unified_id"], name.as_str());
    for path in [
        "/v1/changes?after=0".to_owned(),
        "/v1/export?format=jsonl".to_owned(),
        "/v1/export?format=csv".to_owned(),
        format!("/v1/entries/{name}"),
    ] {
        let (status, body) = w.get(&path, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.contains(&name), "{path}: {body}");
        assert!(
            !body.contains("\"most\"") && !body.contains("most/"),
            "{path}: {body}"
        );
        assert!(
            !body.contains("\"int\"") && !body.contains("/int"),
            "{path}: {body}"
        );
    }
    for guess in ["most/int", "most", "int"] {
        for digest in [
            hex::encode(openssl::sha::sha256(guess.as_bytes())),
            hex::encode(openssl::sha::sha1(guess.as_bytes())),
        ] {
            assert!(
                !digest.contains(&name[1..]),
                "the name is an unkeyed hash of {guess}"
            );
        }
    }
    // Keyed per catalogue: the same record opens an entry of another name in another one.
    let mut other = World::new();
    let mut again = priced_achievement(12, 100);
    again["secrecy"] = json!({"level": "internal"});
    other.publish(
        "most",
        vec![(RecordKind::Achievement, "int", 1, Some(again))],
    );
    let there = other.detail("most", "int", Some("internal")).await.unwrap();
    let here = w.detail("most", "int", Some("internal")).await.unwrap();
    assert_eq!(here["unified_id"], name.as_str(), "one entry, one name");
    assert_ne!(there["unified_id"], name.as_str());
}

#[actix_web::test]
async fn positions_are_sealed_and_polling_them_counts_no_hidden_change() {
    // Change ids are gap-free over the whole catalogue: seen by a reader, their gaps would
    // count the changes hidden from them. Changes 1 (public), 2 (internal), 3 (public).
    let mut w = World::new();
    let mut internal = priced_achievement(13, 100);
    internal["secrecy"] = json!({"level": "internal"});
    w.publish(
        "prov-530000",
        vec![(
            RecordKind::Achievement,
            "pub",
            1,
            Some(priced_achievement(12, 100)),
        )],
    );
    w.publish(
        "most",
        vec![(RecordKind::Achievement, "int", 1, Some(internal.clone()))],
    );
    w.publish(
        "prov-530000",
        vec![(
            RecordKind::Achievement,
            "other",
            1,
            Some(priced_achievement(31, 100)),
        )],
    );
    let lines = |body: &str| -> Vec<Value> {
        body.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect()
    };

    // The feed's lines carry sealed positions, not change ids.
    let (status, body, public_next) = w.get_with_next("/v1/changes?after=0", None).await;
    assert_eq!(status, 200, "{body}");
    let seen = lines(&body);
    let ids: Vec<&str> = seen.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["pub", "other"], "positive control: {body}");
    for line in &seen {
        assert!(line.get("change_id").is_none(), "{line}");
        let cursor = line["cursor"].as_str().unwrap();
        assert!(cursor.parse::<i64>().is_err(), "{line}");
        assert!(hex::decode(cursor).is_err(), "{line}");
    }
    assert_ne!(seen[0]["cursor"], seen[1]["cursor"]);
    let public_next = public_next.unwrap();
    assert_eq!(Some(public_next.as_str()), seen[1]["cursor"].as_str());

    // Hidden changes happen: polling from where the public reader stands shows nothing, and
    // hands back the very position sent — it cannot tell that anything happened.
    let (_, _, internal_next) = w
        .get_with_next("/v1/changes?after=0", Some("internal"))
        .await;
    let internal_next = internal_next.unwrap();
    let mut revised = internal.clone();
    revised["title"] = json!("内部成果 修订版");
    w.publish(
        "most",
        vec![(RecordKind::Achievement, "int", 2, Some(revised))],
    );
    let (status, body, next) = w
        .get_with_next(&format!("/v1/changes?after={public_next}"), None)
        .await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(next.as_deref(), Some(public_next.as_str()));
    // Positive control: the entitled reader hears of it.
    let (_, body, next) = w
        .get_with_next(
            &format!("/v1/changes?after={internal_next}"),
            Some("internal"),
        )
        .await;
    let theirs = lines(&body);
    assert_eq!(theirs.len(), 1, "{body}");
    assert_eq!(
        (theirs[0]["id"].as_str(), theirs[0]["version"].as_i64()),
        (Some("int"), Some(2))
    );
    assert_ne!(next.as_deref(), Some(internal_next.as_str()));
    // A public change after it is the public reader's next line, from the same position.
    w.publish(
        "prov-530000",
        vec![(
            RecordKind::Achievement,
            "later",
            1,
            Some(priced_achievement(32, 100)),
        )],
    );
    let (_, body, next) = w
        .get_with_next(&format!("/v1/changes?after={public_next}"), None)
        .await;
    let later = lines(&body);
    assert_eq!(later.len(), 1, "{body}");
    assert_eq!(later[0]["id"], "later");
    assert_ne!(next.as_deref(), Some(public_next.as_str()));

    // A position must be one this catalogue sealed: not a change id, not an altered token.
    let mut altered = public_next.clone().into_bytes();
    altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for after in ["1", "2", altered.as_str()] {
        let (status, body) = w.get(&format!("/v1/changes?after={after}"), None).await;
        assert_eq!(status, 400, "after={after}: {body}");
        assert!(body.contains("/query/after"), "{body}");
    }

    // Search cursors are sealed under a fresh nonce each time: the same page's cursor differs
    // from one call to the next, both lead on alike, and an altered one is refused.
    let page = |body: String| -> Value { serde_json::from_str(&body).unwrap() };
    let first = page(w.get("/v1/search?limit=1", None).await.1);
    let again = page(w.get("/v1/search?limit=1", None).await.1);
    let (c1, c2) = (
        first["next_cursor"].as_str().unwrap(),
        again["next_cursor"].as_str().unwrap(),
    );
    assert_ne!(c1, c2);
    assert!(hex::decode(c1).is_err(), "{c1}");
    let via = |c: &str| format!("/v1/search?limit=1&cursor={c}");
    let (s1, p1) = w.get(&via(c1), None).await;
    let (s2, p2) = w.get(&via(c2), None).await;
    assert_eq!((s1, s2), (200, 200), "{p1}");
    assert_eq!(page(p1)["items"], page(p2)["items"]);
    let mut bad = c1.to_owned().into_bytes();
    bad[20] = if bad[20] == b'A' { b'B' } else { b'A' };
    let (status, body) = w.get(&via(&String::from_utf8(bad).unwrap()), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("/query/cursor"), "{body}");
}

#[actix_web::test]
async fn a_reader_hears_of_removals_only_of_entries_they_could_see() {
    let mut w = World::new();
    let mut internal = priced_achievement(21, 1);
    internal["secrecy"] = json!({"level": "internal"});
    let public = priced_achievement(22, 1);
    w.publish(
        "prov-530000",
        vec![
            (RecordKind::Achievement, "int", 1, Some(internal.clone())),
            (RecordKind::Achievement, "pub", 1, Some(public.clone())),
        ],
    );
    // The internal record is revised and withdrawn; the public one turns internal.
    let mut revised = internal.clone();
    revised["title"] = json!("修订后的内部成果");
    let mut now_internal = public.clone();
    now_internal["secrecy"] = json!({"level": "internal"});
    w.publish(
        "prov-530000",
        vec![
            (RecordKind::Achievement, "int", 2, Some(revised)),
            (RecordKind::Achievement, "int", 3, None),
            (RecordKind::Achievement, "pub", 2, Some(now_internal)),
        ],
    );
    let (_, lines) = w.get("/v1/changes?after=0", None).await;
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().all(|l| l["id"] == "pub"),
        "the internal record's changes are not listed: {lines:?}"
    );
    assert_eq!(
        lines.last().unwrap()["op"],
        "remove",
        "the public one left: {lines:?}"
    );
    // Internal readers see everything.
    let (_, inside) = w.get("/v1/changes?after=0", Some("internal")).await;
    assert_eq!(inside.lines().count(), 5);
}

#[actix_web::test]
async fn a_record_that_moves_entries_names_only_the_sides_a_reader_could_see() {
    let mut w = World::new();
    // Records with a registration number (the merge key the moves below go by).
    let mut numbered = (31..)
        .map(|i| priced_achievement(i, 1))
        .filter(|r| r["registration_no"].is_string());
    let mut internal = numbered.next().unwrap();
    internal["secrecy"] = json!({"level": "internal"});
    let public = numbered.next().unwrap();
    let mut other_internal = numbered.next().unwrap();
    other_internal["secrecy"] = json!({"level": "internal"});
    w.publish(
        "prov-530000",
        vec![
            (RecordKind::Achievement, "int", 1, Some(internal.clone())),
            (RecordKind::Achievement, "pub", 1, Some(public.clone())),
            (
                RecordKind::Achievement,
                "int2",
                1,
                Some(other_internal.clone()),
            ),
        ],
    );
    let entry_of = |w: &World, id: &str| {
        rix_gateway::catalogue::unified_id_of(
            &mut w.gw.db.conn().unwrap(),
            "prov-530000",
            id,
            Entitlements::ALL,
        )
        .unwrap()
        .unwrap()
    };
    let internal_entry = entry_of(&w, "int");
    let other_internal_entry = entry_of(&w, "int2");
    // Declassified into the public entry (same registration number), and, the other way, the
    // public record made internal joining the other internal entry.
    let mut declassified = public.clone();
    declassified["title"] = json!("解密后并入公开成果");
    w.publish(
        "prov-530000",
        vec![(RecordKind::Achievement, "int", 2, Some(declassified))],
    );
    assert_ne!(entry_of(&w, "int"), internal_entry, "it moved");
    let mut made_internal = other_internal.clone();
    made_internal["title"] = json!("转为内部并入内部成果");
    w.publish(
        "prov-530000",
        vec![(RecordKind::Achievement, "pub", 2, Some(made_internal))],
    );
    assert_eq!(entry_of(&w, "pub"), other_internal_entry, "it moved");

    let (_, feed) = w.get("/v1/changes?after=0", None).await;
    for hidden in [&internal_entry, &other_internal_entry] {
        assert!(
            !feed.contains(hidden.as_str()),
            "the public feed names an entry the public never could see ({hidden}): {feed}"
        );
    }
    // Positive control: the internal reader hears of both sides of both moves.
    let (_, inside) = w.get("/v1/changes?after=0", Some("internal")).await;
    for entry in [&internal_entry, &other_internal_entry] {
        assert!(inside.contains(entry.as_str()), "{entry}: {inside}");
    }
}

#[actix_web::test]
async fn only_the_same_result_is_merged() {
    let mut w = World::new();
    let base = |i: u64, title: &str| {
        let mut r = priced_achievement(i, 1);
        r.as_object_mut().unwrap().remove("registration_no");
        r["title"] = json!(title);
        r["ip"] = json!([{"type": "发明专利", "number": "ZL202110000001.X"}]);
        r
    };
    // Two different results of one group cite the same patent, at one node.
    w.publish(
        "prov-530000",
        vec![
            (
                RecordKind::Achievement,
                "x1",
                1,
                Some(base(31, "固态电解质膜的制备方法")),
            ),
            (
                RecordKind::Achievement,
                "x2",
                1,
                Some(base(32, "固态电池的封装工艺")),
            ),
            // Same patent, same title, same node: still two registrations of this node.
            (
                RecordKind::Achievement,
                "x3",
                1,
                Some(base(33, "固态电解质膜的制备方法")),
            ),
        ],
    );
    // The same result (patent + title) registered at another node merges.
    w.publish(
        "most",
        vec![(
            RecordKind::Achievement,
            "y1",
            1,
            Some(base(34, "固态电解质膜 的制备方法")),
        )],
    );
    let uid = |node: &'static str, id: &'static str| {
        let w = &w;
        async move {
            w.detail(node, id, Some("internal")).await.unwrap()["unified_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (x1, x2, x3, y1) = (
        uid("prov-530000", "x1").await,
        uid("prov-530000", "x2").await,
        uid("prov-530000", "x3").await,
        uid("most", "y1").await,
    );
    assert_ne!(x1, x2, "different titles are different results");
    assert_ne!(x1, x3, "one node does not register a result twice");
    assert!(
        y1 == x1 || y1 == x3,
        "same patent and title from another node: {y1}"
    );
    // The newer title stays searchable.
    let (_, found) = w
        .get("/v1/search?q=%E5%B0%81%E8%A3%85%E5%B7%A5%E8%89%BA", None)
        .await;
    assert_eq!(serde_json::from_str::<Value>(&found).unwrap()["total"], 1);
}

/// A merge made through a value some reader may not see would tell that reader the value
/// (it equals the other record's, which they do see): a patent the submitter lists among its
/// commercial secrets merges nothing, for any reader, while the same patent in the open does.
#[actix_web::test]
async fn a_value_hidden_from_some_readers_makes_no_merge() {
    let mut w = World::new();
    let cited = |i: u64, hidden: bool| {
        let mut r = priced_achievement(i, 1);
        r.as_object_mut().unwrap().remove("registration_no");
        r["title"] = json!("钠离子电池正极材料");
        r["ip"] = json!([{"type": "发明专利", "number": "ZL202310000002.5"}]);
        if hidden {
            r["confidential_fields"] = json!(["/application/industries", "/ip"]);
        }
        assert!(rix_schema::validate_record(RecordKind::Achievement, &r).is_ok());
        r
    };
    w.publish(
        "prov-530000",
        vec![(RecordKind::Achievement, "hidden", 1, Some(cited(41, true)))],
    );
    w.publish(
        "most",
        vec![(RecordKind::Achievement, "open", 1, Some(cited(42, false)))],
    );
    w.publish(
        "prov-210000",
        vec![(RecordKind::Achievement, "open2", 1, Some(cited(43, false)))],
    );
    for who in [
        None,
        Some("commercial"),
        Some("internal,commercial,personal"),
    ] {
        let hidden = w.detail("prov-530000", "hidden", who).await.unwrap();
        let open = w.detail("most", "open", who).await.unwrap();
        let open2 = w.detail("prov-210000", "open2", who).await.unwrap();
        assert_ne!(
            hidden["unified_id"], open["unified_id"],
            "{who:?}: merged through a patent hidden from some readers"
        );
        assert_eq!(
            hidden["sources"].as_array().unwrap().len(),
            1,
            "{who:?}: {hidden}"
        );
        // Positive control: the same patent and title in the open do merge.
        assert_eq!(open["unified_id"], open2["unified_id"], "{who:?}");
    }
    // The anonymous reader cannot find the hidden patent on the record either.
    let (_, page) = w.get("/v1/records/prov-530000/hidden", None).await;
    assert!(!page.contains("ZL202310000002"), "{page}");
}

#[actix_web::test]
async fn a_node_publishing_another_nodes_registration_number_cannot_take_the_entry_over() {
    let mut w = World::new();
    let genuine = (41..)
        .map(|i| priced_achievement(i, 1))
        .find(|r| r["registration_no"].is_string())
        .unwrap();
    let mut hijack = genuine.clone();
    hijack["title"] = json!("冒名顶替的成果名称");
    w.publish(
        "prov-530000",
        vec![(RecordKind::Achievement, "g", 1, Some(genuine.clone()))],
    );
    w.publish(
        "prov-210000",
        vec![(RecordKind::Achievement, "h", 1, Some(hijack))],
    );
    // The entry shows the genuine registration; the late claimant is listed as a source, and
    // its record is its own page's provenance, never the entry's content.
    let page = w.detail("prov-210000", "h", None).await.unwrap();
    assert_eq!(page["primary"]["node_id"], "prov-530000");
    assert_eq!(page["record"]["title"], genuine["title"]);
    assert_eq!(page["sources"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn an_id_republished_as_the_other_kind_is_quarantined_and_changes_nothing() {
    let mut w = World::new();
    let a = priced_achievement(61, 1);
    w.publish(
        "prov-530000",
        vec![(RecordKind::Achievement, "x61", 1, Some(a.clone()))],
    );
    let mut p = serde_json::to_value(generator().project(61)).unwrap();
    p["secrecy"] = json!({"level": "public"});
    w.publish(
        "prov-530000",
        vec![(RecordKind::FundedProject, "x61", 2, Some(p))],
    );
    let page = w
        .detail("prov-530000", "x61", Some("internal"))
        .await
        .unwrap();
    assert_eq!(page["kind"], "achievement");
    assert_eq!(page["record"]["title"], a["title"]);
    let reasons: Vec<String> = {
        use diesel::prelude::*;
        use rix_gateway::db::schema::quarantine;
        let mut conn = w.gw.db.conn().unwrap();
        quarantine::table
            .select(quarantine::reason)
            .load(&mut *conn)
            .unwrap()
    };
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("was published as achievement"),
        "{reasons:?}"
    );
}

/// Merge precision and recall on the generator's data, with the old rule (any shared patent
/// number) computed on the very same records for comparison. Two province nodes each register
/// 400 results of their own; 80 results are co-registered by both (the shared set), and each
/// node assigns its own registration numbers, as real nodes do — so only patents, projects and
/// titles can tell that two registrations are one result.
#[actix_web::test]
async fn merging_keeps_distinct_results_apart_and_joins_co_registered_ones() {
    let mut w = World::new();
    let nodes = ["prov-530000", "prov-210000"];
    let mut truth: HashMap<(String, String), String> = HashMap::new();
    let mut patents: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (n, node_id) in nodes.iter().enumerate() {
        let g = SampleGenerator::new(SampleConfig {
            node: rix_schema::sample::NodeProfile::province(if n == 0 {
                "530000"
            } else {
                "210000"
            }),
            share_internal: 0.0,
            share_classified: 0.0,
            share_commercial_secret: 0.0,
            ..SampleConfig::default()
        });
        let mut changes = Vec::new();
        let mut records = Vec::new();
        for i in 0..400u64 {
            records.push((
                format!("own-{i}"),
                format!("{node_id}/own-{i}"),
                serde_json::to_value(g.achievement(i)).unwrap(),
            ));
        }
        for i in 0..80u64 {
            let mut r = serde_json::to_value(g.shared_achievement(i)).unwrap();
            r.as_object_mut().unwrap().remove("registration_no");
            records.push((format!("shared-{i}"), format!("shared/{i}"), r));
        }
        for (id, result, r) in &records {
            truth.insert((node_id.to_string(), id.clone()), result.clone());
            for ip in r["ip"].as_array().into_iter().flatten() {
                if ip["type"].as_str().is_some_and(|t| t.contains("专利")) {
                    patents
                        .entry(ip["number"].as_str().unwrap().to_owned())
                        .or_default()
                        .push((node_id.to_string(), id.clone()));
                }
            }
        }
        for (id, _, r) in records {
            changes.push((RecordKind::Achievement, id, r));
        }
        for chunk in changes.chunks(100) {
            let batch: Vec<(RecordKind, &str, u64, Option<Value>)> = chunk
                .iter()
                .map(|(k, id, r)| (*k, id.as_str(), 1, Some(r.clone())))
                .collect();
            w.publish(node_id, batch);
        }
    }
    // Pairs of registrations put together, by the catalogue and by the old rule.
    let mut entry_of: HashMap<(String, String), String> = HashMap::new();
    {
        use diesel::prelude::*;
        use rix_gateway::db::schema::records;
        let mut conn = w.gw.db.conn().unwrap();
        let rows: Vec<(String, String, String)> = records::table
            .select((records::node_id, records::id, records::unified_id))
            .load(&mut *conn)
            .unwrap();
        for (n, i, u) in rows {
            entry_of.insert((n, i), u);
        }
    }
    let keys: Vec<&(String, String)> = truth.keys().collect();
    let (mut tp, mut fp, mut fneg) = (0u64, 0u64, 0u64);
    for (a, x) in keys.iter().enumerate() {
        for y in &keys[a + 1..] {
            let same = truth[*x] == truth[*y];
            let merged = entry_of.contains_key(*x) && entry_of.get(*x) == entry_of.get(*y);
            match (same, merged) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fneg += 1,
                _ => {}
            }
        }
    }
    // The old rule: any two registrations citing one patent number are one entry.
    let mut old_fp = 0u64;
    for regs in patents.values() {
        for (a, x) in regs.iter().enumerate() {
            for y in &regs[a + 1..] {
                if x != y && truth[x] != truth[y] {
                    old_fp += 1;
                }
            }
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fneg).max(1) as f64;
    println!(
        "merge quality: {tp} pairs joined rightly, {fp} wrongly, {fneg} missed: precision {precision:.4}, recall {recall:.4}; the old patent-only rule joins {old_fp} pairs of different results on the same data"
    );
    assert_eq!(fp, 0, "different results were merged");
    assert!(
        recall >= 0.95,
        "co-registered results left apart: recall {recall}"
    );
}

/// `/metrics` counts applied, quarantined and refused entries — how much the catalogue holds
/// that a reader may not see — so it is the operators' only: with a metrics token configured
/// it asks for it (even on loopback), and `/healthz` gives everyone else only its status.
#[actix_web::test]
async fn metrics_and_chain_positions_are_for_the_operators_monitoring_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = rix_gateway::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        metrics_token: Some("metrics-token-0123456789abcdef".into()),
        ..Default::default()
    };
    let gateway = rix_gateway::serve::start(config).await.unwrap();
    let url = gateway.url();
    let http = reqwest::Client::new();
    let anonymous = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body = anonymous.text().await.unwrap();
    assert!(!body.contains("rix_gateway_"), "{body}");
    let wrong = http
        .get(format!("{url}/metrics"))
        .bearer_auth("metrics-token-0123456789abcdeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let operator = http
        .get(format!("{url}/metrics"))
        .bearer_auth("metrics-token-0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(operator.status(), 200);
    assert!(operator.text().await.unwrap().contains("rix_gateway_"));

    let health: Value = http
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health.get("nodes").is_none(), "{health}");
    let detailed: Value = http
        .get(format!("{url}/healthz"))
        .bearer_auth("metrics-token-0123456789abcdef")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(detailed["nodes"].is_array(), "{detailed}");
    gateway.stop().await;
}

/// Fail closed: a damaged chain position in the catalogue is not read as the start of the
/// chain (which would let any batch 1 in again); ingest stops with an error naming the repair.
#[actix_web::test]
async fn a_damaged_chain_position_stops_ingest_instead_of_restarting_the_chain() {
    let mut w = World::new();
    w.publish(
        "prov-530000",
        vec![(
            RecordKind::Achievement,
            "c1",
            1,
            Some(priced_achievement(71, 1)),
        )],
    );
    {
        use diesel::prelude::*;
        use rix_gateway::db::schema::node_chain;
        let mut conn = w.gw.db.conn().unwrap();
        diesel::update(node_chain::table)
            .set(node_chain::prev_batch_hash.eq("not a hash"))
            .execute(&mut *conn)
            .unwrap();
    }
    // The node's first batch again, but another one: what a node restored from an old backup
    // would send.
    let mut replay = w.nodes["prov-530000"].clone();
    replay.chain = Chain::genesis();
    let replay = replay.batch(vec![(
        RecordKind::Achievement,
        "c9".into(),
        1,
        Some(priced_achievement(72, 1)),
    )]);
    let err = w.gw.ingest.ingest(&replay, Transport::Feed).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(
        w.detail("prov-530000", "c9", Some("internal"))
            .await
            .is_none()
    );
}
