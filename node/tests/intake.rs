//! Intake that cannot be tricked (issue 11 §4), end to end on a real node, on SQLite and on
//! PostgreSQL: bodies that read two ways, declassifications without a decision, text that
//! displays differently from what it says, and error lists that would not end.

mod common;

use common::*;
use diesel::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};

fn pointers(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e["pointer"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Sends `body` as it is, bytes and all, as `application/json`.
async fn send_raw(
    node: &TestNode,
    method: Method,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut req = node
        .http
        .request(method, node.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body);
    if let Some(v) = if_match {
        req = req.header("if-match", v);
    }
    reply(req.send().await.unwrap()).await
}

async fn count(node: &TestNode, collection: &str) -> usize {
    let r = node
        .get(&format!("/v1/{collection}?limit=1000"), Some(ADMIN))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().unwrap().len()
}

/// Revises `id` (at `version`) with `doc`.
async fn revise(node: &TestNode, id: &str, version: i64, doc: &Value) -> Reply {
    send_raw(
        node,
        Method::PUT,
        &format!("/v1/achievements/{id}"),
        SUBMITTER,
        Some(&format!("\"{version}\"")),
        serde_json::to_vec(doc).unwrap(),
    )
    .await
}

/// The fixture with the registration number a node assigned to `id`, ready to revise.
async fn revision_of(node: &TestNode, id: &str, level: Value) -> Value {
    let current = node
        .get(&format!("/v1/achievements/{id}"), Some(SUBMITTER))
        .await;
    let mut doc = fixture("achievement");
    doc["secrecy"] = level;
    doc["registration_no"] = current.body["registration_no"].clone();
    doc["registration_date"] = current.body["registration_date"].clone();
    doc
}

fn decision(previous: &str) -> Value {
    json!({
        "reference": "云科密解〔2026〕7号",
        "date": "2026-06-01",
        "authority": "云南省科学技术厅",
        "previous_level": previous,
    })
}

/// Replaces the stored document of one version behind the API's back: what a version stored
/// before a rule existed looks like to the reviewer.
fn overwrite_version(node: &TestNode, id: &str, version: i64, doc: &Value) {
    use rix_node::db::schema::record_versions::dsl as v;
    let text = doc.to_string();
    let mut conn = node.node.db.conn().unwrap();
    let changed = diesel::update(v::record_versions.find(("achievement", id, version)))
        .set(v::document.eq(&text))
        .execute(&mut *conn)
        .unwrap();
    assert_eq!(changed, 1);
}

async fn duplicate_keys_are_refused_before_anything_reads_them(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    // The fixture at secret, followed by a second "secrecy" saying public: with last-key-wins
    // the record was stored and published as public.
    let secret = with_level(fixture("achievement"), "secret");
    let text = serde_json::to_string(&secret).unwrap();
    let two_faced = format!(
        "{},\"secrecy\":{{\"level\":\"public\"}}}}",
        text.strip_suffix('}').unwrap()
    );
    let r = send_raw(
        &node,
        Method::POST,
        "/v1/achievements",
        SUBMITTER,
        None,
        two_faced.into_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(pointers(&r.body), ["/secrecy"], "{}", r.body);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("twice"),
        "{}",
        r.body
    );
    // Nested, and in a batch submit, and in a revision: the pointer names the path.
    let mut doc = fixture("achievement");
    doc["institutions"][1]["name"] = json!("@@NAME@@");
    let nested = serde_json::to_string(&doc)
        .unwrap()
        .replace("\"@@NAME@@\"", "\"甲单位\",\"name\":\"乙单位\"");
    let r = send_raw(
        &node,
        Method::POST,
        "/v1/achievements/batch",
        SUBMITTER,
        None,
        format!(
            "[{},{nested}]",
            serde_json::to_string(&fixture("achievement")).unwrap()
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(pointers(&r.body), ["/1/institutions/1/name"]);
    assert_eq!(count(&node, "achievements").await, 0, "nothing was stored");

    let id = node
        .register_approved("achievements", &fixture("achievement"))
        .await;
    let r = send_raw(
        &node,
        Method::PUT,
        &format!("/v1/achievements/{id}"),
        SUBMITTER,
        Some("\"1\""),
        nested.into_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(pointers(&r.body), ["/institutions/1/name"]);
    // Review bodies are read the same way.
    let r = send_raw(
        &node,
        Method::POST,
        &format!("/v1/achievements/{id}/reject"),
        REVIEWER,
        None,
        br#"{"reason":"ok","version":1,"version":2}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(pointers(&r.body), ["/version"]);

    // Deep nesting and invalid UTF-8 are refused with where they are.
    let deep = format!("{{\"title\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    let r = send_raw(
        &node,
        Method::POST,
        "/v1/achievements",
        SUBMITTER,
        None,
        deep.into_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        pointers(&r.body)[0].starts_with("/title/0/0/"),
        "{}",
        r.body
    );
    let mut bad_utf8 = serde_json::to_vec(&fixture("achievement")).unwrap();
    let at = bad_utf8.iter().position(|b| *b >= 0x80).unwrap();
    bad_utf8[at] = 0xFF;
    let r = send_raw(
        &node,
        Method::POST,
        "/v1/achievements",
        SUBMITTER,
        None,
        bad_utf8,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("UTF-8") && message.contains(&format!("offset {at}")),
        "{message}"
    );
    assert_eq!(count(&node, "achievements").await, 1);
    node.node.stop().await;
}
on_both_backends!(
    duplicate_keys,
    duplicate_keys_are_refused_before_anything_reads_them
);

async fn declassification_needs_the_decision(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let secret_id = node
        .register_approved(
            "achievements",
            &with_level(fixture("achievement"), "secret"),
        )
        .await;

    // Lowering without the decision: refused at revision, nothing written.
    let lowered = revision_of(&node, &secret_id, json!({"level": "public"})).await;
    let r = revise(&node, &secret_id, 1, &lowered).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(pointers(&r.body), ["/secrecy/decision"], "{}", r.body);
    // A decision that names another level, or no authority, does not cover it.
    let mut wrong = lowered.clone();
    wrong["secrecy"]["decision"] = decision("internal");
    let r = revise(&node, &secret_id, 1, &wrong).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(pointers(&r.body), ["/secrecy/decision/previous_level"]);
    let mut anonymous = lowered.clone();
    anonymous["secrecy"]["decision"] = decision("secret");
    anonymous["secrecy"]["decision"]
        .as_object_mut()
        .unwrap()
        .remove("authority");
    let r = revise(&node, &secret_id, 1, &anonymous).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(pointers(&r.body), ["/secrecy/decision/authority"]);
    let got = node
        .get(&format!("/v1/achievements/{secret_id}"), Some(SUBMITTER))
        .await;
    assert_eq!(got.body["version"], 1, "no refused revision was stored");

    // A rejected declassification does not open the way for one without a decision.
    let mut proper = lowered.clone();
    proper["secrecy"]["decision"] = decision("secret");
    let r = revise(&node, &secret_id, 1, &proper).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = node
        .post(
            &format!("/v1/achievements/{secret_id}/reject"),
            REVIEWER,
            &json!({"reason": "决定文号有误"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = revise(&node, &secret_id, 2, &lowered).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(pointers(&r.body), ["/secrecy/decision"]);

    // With the decision: accepted, approved, published.
    let r = revise(&node, &secret_id, 2, &proper).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = node
        .post(
            &format!("/v1/achievements/{secret_id}/approve"),
            REVIEWER,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["published_version"], 3);
    // Once public, later revisions stay public without a new decision.
    let mut retitled = revision_of(&node, &secret_id, proper["secrecy"].clone()).await;
    retitled["title"] = json!("面向新能源汽车的高安全固态锂电池关键技术（修订）");
    let r = revise(&node, &secret_id, 3, &retitled).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Approval checks again: a version stored without the check (before it existed) that
    // lowers a secret record is refused at approval, and nothing is published.
    let other = node
        .register_approved(
            "achievements",
            &with_level(fixture("achievement"), "secret"),
        )
        .await;
    let same_level = revision_of(&node, &other, json!({"level": "secret"})).await;
    let r = revise(&node, &other, 1, &same_level).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sneaked = revision_of(&node, &other, json!({"level": "public"})).await;
    overwrite_version(&node, &other, 2, &sneaked);
    let r = node
        .post(
            &format!("/v1/achievements/{other}/approve"),
            REVIEWER,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(pointers(&r.body), ["/secrecy/decision"]);

    // Fail closed: a version whose level cannot be read is refused, not taken for public.
    let mut unreadable = sneaked.clone();
    unreadable["secrecy"] = json!({"level": "unclassified"});
    overwrite_version(&node, &other, 2, &unreadable);
    let r = node
        .post(
            &format!("/v1/achievements/{other}/approve"),
            REVIEWER,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(pointers(&r.body), ["/secrecy/level"]);
    // Bulk approval refuses the same, naming the record.
    let r = node
        .post(
            "/v1/achievements/approve",
            REVIEWER,
            &json!({"ids": [other.clone()]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("/ids/0"),
        "{}",
        r.body
    );

    node.wait_for_seq(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let entries = verify_chain(&node.node_id, &node.key, &node.feed_lines().await);
    let logged: Vec<(&str, u64)> = entries.iter().map(|e| (e.id.as_str(), e.version)).collect();
    assert_eq!(
        logged,
        [(secret_id.as_str(), 3)],
        "only the declassification with its decision was published"
    );
    node.node.stop().await;
}
on_both_backends!(declassification, declassification_needs_the_decision);

async fn text_that_displays_otherwise_is_refused(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let mut doc = fixture("achievement");
    doc["title"] = json!("固态锂电池\u{202E}7.0 lvl");
    doc["completers"][0]["name"] = json!("张\u{0}明");
    doc["keywords"][1] = json!("锂\n电池");
    doc["abstract"] = json!("第一段。\n第二段：研制了高离子电导率硫化物固态电解质。");
    let r = node.post("/v1/achievements", SUBMITTER, &doc).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        pointers(&r.body),
        ["/completers/0/name", "/keywords/1", "/title"],
        "{}",
        r.body
    );
    // In a batch, each record's pointers say which record.
    let mut clean = fixture("achievement");
    clean["abstract"] = json!("第一段。\n第二段：研制了高离子电导率硫化物固态电解质。");
    let r = node
        .post(
            "/v1/achievements/batch",
            SUBMITTER,
            &json!([clean.clone(), doc]),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        pointers(&r.body),
        ["/1/completers/0/name", "/1/keywords/1", "/1/title"]
    );
    assert_eq!(count(&node, "achievements").await, 0);
    // A multi-line abstract alone is fine; so is a rejection reason over lines, but not one
    // with a bidirectional override.
    let id = node.register_approved("achievements", &clean).await;
    let mut revised = revision_of(&node, &id, json!({"level": "public"})).await;
    revised["abstract"] = clean["abstract"].clone();
    assert_eq!(revise(&node, &id, 1, &revised).await.status, 200);
    let r = node
        .post(
            &format!("/v1/achievements/{id}/reject"),
            REVIEWER,
            &json!({"reason": "请核对：\u{2066}摘要\u{2069}"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(pointers(&r.body), ["/reason"]);
    let r = node
        .post(
            &format!("/v1/achievements/{id}/reject"),
            REVIEWER,
            &json!({"reason": "请核对：\n1. 摘要\n2. 完成人"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    node.node.stop().await;
}
on_both_backends!(text, text_that_displays_otherwise_is_refused);

async fn a_flood_of_errors_gets_a_short_answer(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    // 20,000 keywords no schema knows, in a body under the node's size limit.
    let mut doc = fixture("achievement");
    let obj = doc.as_object_mut().unwrap();
    for i in 0..20_000 {
        obj.insert(format!("k{i}"), json!(0));
    }
    let r = node.post("/v1/achievements", SUBMITTER, &doc).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 100);
    assert_eq!(r.body["errors_total"], 20_000);
    assert!(r.bytes.len() < 20_000, "{} bytes", r.bytes.len());
    // A batch of bad records: the count covers every record, the list the first 100 errors.
    let mut bad = fixture("achievement");
    bad["trl"] = json!(12);
    bad["title"] = json!("");
    let r = node
        .post("/v1/achievements/batch", SUBMITTER, &json!(vec![bad; 60]))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 100);
    assert_eq!(r.body["errors_total"], 120);
    assert_eq!(r.body["errors"][0]["pointer"], "/0/title");
    // A short list is complete, and says so.
    let r = node
        .post("/v1/achievements", SUBMITTER, &json!({"title": "固态电池"}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["errors_total"].as_u64().unwrap() as usize,
        r.body["errors"].as_array().unwrap().len()
    );
    let r = node.get("/v1/achievements/none", Some(SUBMITTER)).await;
    assert_eq!((r.status, r.body["errors_total"].as_u64()), (404, Some(1)));
    node.node.stop().await;
}
on_both_backends!(error_flood, a_flood_of_errors_gets_a_short_answer);
