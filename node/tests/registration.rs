//! The registration API end to end on a real node, on SQLite and on PostgreSQL.

mod common;

use common::*;
use reqwest::Method;
use rix_schema::batch::Op;
use serde_json::{Value, json};

fn pointers(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e["pointer"].as_str().unwrap_or("?").to_owned())
        .collect()
}

async fn count(node: &TestNode, collection: &str) -> usize {
    let r = node
        .get(&format!("/v1/{collection}?limit=1000"), Some(ADMIN))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().unwrap().len()
}

async fn registration_flow_publishes_each_approved_version(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let year = &rix_runtime::clock::now()[..4];

    // Achievement: submit, read, approve (registration number), revise, approve, withdraw.
    let doc = fixture("achievement");
    let r = node.post("/v1/achievements", SUBMITTER, &doc).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["state"], "submitted");
    assert_eq!(r.headers["etag"], "\"1\"");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        format!("/v1/achievements/{id}")
    );
    let got = node
        .get(&format!("/v1/achievements/{id}"), Some(SUBMITTER))
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["record"], doc, "the record round-trips exactly");

    let approved = node
        .post(
            &format!("/v1/achievements/{id}/approve"),
            REVIEWER,
            &json!({"version": 1}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    let number = approved.body["registration_no"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(number, format!("530000{year}Y0001"));
    assert_eq!(approved.body["record"]["registration_no"], number.as_str());
    assert_eq!(approved.body["published_version"], 1);

    let mut revised = doc.clone();
    revised["title"] = json!("高比能锂离子电池正极材料及其制备技术（修订）");
    let r = node
        .http
        .put(node.url(&format!("/v1/achievements/{id}")))
        .bearer_auth(SUBMITTER)
        .header("If-Match", "\"1\"")
        .json(&revised)
        .send()
        .await
        .unwrap();
    let r = reply(r).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["state"], "submitted");
    assert_eq!(
        r.body["published_version"], 1,
        "the approved version stays published while the revision waits"
    );
    let approved = node
        .post(
            &format!("/v1/achievements/{id}/approve"),
            REVIEWER,
            &json!({}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(
        approved.body["registration_no"],
        number.as_str(),
        "a revision keeps its number"
    );

    // A project: submit and approve (no registration number; projects have their own).
    let project_id = node
        .register_approved("projects", &fixture("funded_project"))
        .await;
    let p = node
        .get(&format!("/v1/projects/{project_id}"), Some(REVIEWER))
        .await;
    assert_eq!(p.body["state"], "approved");
    assert!(p.body["registration_no"].is_null());

    let w = node
        .send(
            Method::DELETE,
            &format!("/v1/achievements/{id}"),
            Some(SUBMITTER),
            None,
        )
        .await;
    assert_eq!(w.status, 200, "{}", w.body);
    assert_eq!(w.body["state"], "withdrawn");
    assert_eq!(w.body["version"], 3);
    assert!(w.body["published_version"].is_null());

    // The feed holds exactly: achievement v1, v2, project v1, achievement withdrawal v3.
    node.wait_for_seq(4).await;
    let entries = verify_chain(&node.node_id, &node.key, &node.feed_lines().await);
    let summary: Vec<(u64, String, Op, u64)> = entries
        .iter()
        .map(|e| (e.seq, e.id.clone(), e.op, e.version))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, id.clone(), Op::Upsert, 1),
            (2, id.clone(), Op::Upsert, 2),
            (3, project_id.clone(), Op::Upsert, 1),
            (4, id.clone(), Op::Withdraw, 3),
        ]
    );
    assert_eq!(
        entries[1].record.as_ref().unwrap()["title"],
        revised["title"]
    );
    assert_eq!(
        entries[0].record.as_ref().unwrap()["registration_no"],
        number.as_str()
    );
    node.node.stop().await;
}
on_both_backends!(
    registration_flow,
    registration_flow_publishes_each_approved_version
);

async fn every_refusal_is_a_problem_with_pointers_and_writes_nothing(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let doc = fixture("achievement");
    let id = node.register_approved("achievements", &doc).await;
    let before = count(&node, "achievements").await;

    let check = |r: &Reply, status: u16, pointer: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(
            r.headers["content-type"], "application/problem+json",
            "{}",
            r.body
        );
        assert_eq!(r.body["status"], status);
        assert!(
            pointers(&r.body).iter().any(|p| p == pointer),
            "expected pointer {pointer:?} in {}",
            r.body
        );
    };

    // 401: no token, unknown token.
    let r = node
        .send(Method::POST, "/v1/achievements", None, Some(&doc))
        .await;
    check(&r, 401, "/headers/authorization");
    let r = node
        .send(Method::GET, "/v1/achievements", Some("not-a-token"), None)
        .await;
    check(&r, 401, "/headers/authorization");
    // 403: a reviewer cannot submit, a submitter cannot approve.
    let r = node.post("/v1/achievements", REVIEWER, &doc).await;
    check(&r, 403, "/headers/authorization");
    let r = node
        .post(
            &format!("/v1/achievements/{id}/approve"),
            SUBMITTER,
            &json!({}),
        )
        .await;
    check(&r, 403, "/headers/authorization");
    // 404: unknown id; another institution's record looks absent too.
    let r = node
        .get("/v1/achievements/ach-999999", Some(SUBMITTER))
        .await;
    check(&r, 404, "");
    let r = node
        .get(&format!("/v1/achievements/{id}"), Some(OTHER_SUBMITTER))
        .await;
    check(&r, 404, "");
    // 422: schema and code-list errors, each with its pointer.
    let mut bad = doc.clone();
    bad["institutions"][0]["uscc"] = json!("91330100799655058C");
    bad["trl"] = json!(12);
    bad.as_object_mut().unwrap().remove("title");
    let r = node.post("/v1/achievements", SUBMITTER, &bad).await;
    check(&r, 422, "/institutions/0/uscc");
    check(&r, 422, "/trl");
    check(&r, 422, "/title");
    let mut numbered = doc.clone();
    numbered["registration_no"] = json!("5300002024Y0012");
    let r = node.post("/v1/achievements", SUBMITTER, &numbered).await;
    check(&r, 422, "/registration_no");
    // A submitter registers only for its own institution.
    let r = node.post("/v1/achievements", OTHER_SUBMITTER, &doc).await;
    check(&r, 422, "/institutions");
    // 400: not JSON; not UTF-8.
    let raw = |body: Vec<u8>, content_type: &'static str| {
        node.http
            .post(node.url("/v1/achievements"))
            .bearer_auth(SUBMITTER)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let r = reply(
        raw(b"{\"title\": ".to_vec(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    check(&r, 400, "");
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 1")
    );
    let r = reply(
        raw(b"{\"title\": \"\xff\xfe\"}".to_vec(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    check(&r, 400, "");
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
    // 415: wrong content type.
    let r = reply(
        raw(doc.to_string().into_bytes(), "text/plain")
            .await
            .unwrap(),
    )
    .await;
    check(&r, 415, "/headers/content-type");
    // 413: over the body limit (256 KiB in tests).
    let mut huge = doc.clone();
    huge["abstract"] = json!("电".repeat(100_000));
    let r = node.post("/v1/achievements", SUBMITTER, &huge).await;
    check(&r, 413, "");
    // 428 and 409: revisions need If-Match, and a stale one is refused.
    let r = node
        .send(
            Method::PUT,
            &format!("/v1/achievements/{id}"),
            Some(SUBMITTER),
            Some(&doc),
        )
        .await;
    check(&r, 428, "/headers/if-match");
    let r = reply(
        node.http
            .put(node.url(&format!("/v1/achievements/{id}")))
            .bearer_auth(SUBMITTER)
            .header("If-Match", "\"7\"")
            .json(&doc)
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(&r, 409, "/headers/if-match");
    // 409: approving what is not waiting for review.
    let r = node
        .post(
            &format!("/v1/achievements/{id}/approve"),
            REVIEWER,
            &json!({}),
        )
        .await;
    check(&r, 409, "");
    // 422: a rejection needs a reason.
    let fresh = node.post("/v1/achievements", SUBMITTER, &doc).await;
    let fresh_id = fresh.body["id"].as_str().unwrap().to_owned();
    let r = node
        .post(
            &format!("/v1/achievements/{fresh_id}/reject"),
            REVIEWER,
            &json!({}),
        )
        .await;
    check(&r, 422, "/reason");
    // 400: bad query parameter, named.
    let r = node
        .get("/v1/feed?limit=0", Some(node.feed_token.as_str()))
        .await;
    check(&r, 400, "/query/limit");
    // A batch submit with one bad record stores none of them.
    let mut second_bad = doc.clone();
    second_bad["research_period"] = json!({"start": "2024-01-01", "end": "2020-01-01"});
    let r = node
        .post(
            "/v1/achievements/batch",
            SUBMITTER,
            &json!([doc.clone(), second_bad, doc.clone()]),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        pointers(&r.body).iter().all(|p| p.starts_with("/1/")),
        "{}",
        r.body
    );

    assert_eq!(
        count(&node, "achievements").await,
        before + 1,
        "only the one valid single submit was written"
    );
    let r = node
        .post(
            &format!("/v1/achievements/{fresh_id}/reject"),
            REVIEWER,
            &json!({"reason": "缺少第三方评价报告"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["state"], "rejected");
    assert_eq!(r.body["review"]["reason"], "缺少第三方评价报告");
    node.node.stop().await;
}
on_both_backends!(
    refusals,
    every_refusal_is_a_problem_with_pointers_and_writes_nothing
);

async fn a_retried_submit_returns_the_first_result(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let doc = fixture("funded_project");
    let send = |body: Value, key: &'static str| {
        node.http
            .post(node.url("/v1/projects"))
            .bearer_auth(SUBMITTER)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = reply(send(doc.clone(), "retry-1").await.unwrap()).await;
    let again = reply(send(doc.clone(), "retry-1").await.unwrap()).await;
    assert_eq!(first.status, 201);
    assert_eq!(again.status, 201);
    assert_eq!(first.body, again.body);
    assert_eq!(count(&node, "projects").await, 1);
    let mut other = doc.clone();
    other["title"] = json!("另一个项目");
    let reused = reply(send(other, "retry-1").await.unwrap()).await;
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(pointers(&reused.body), vec!["/headers/idempotency-key"]);
    let batch = |key: &'static str| {
        node.http
            .post(node.url("/v1/projects/batch"))
            .bearer_auth(SUBMITTER)
            .header("Idempotency-Key", key)
            .json(&json!([doc.clone(), doc.clone()]))
            .send()
    };
    let b1 = reply(batch("batch-1").await.unwrap()).await;
    let b2 = reply(batch("batch-1").await.unwrap()).await;
    assert_eq!(b1.status, 201, "{}", b1.body);
    assert_eq!(b1.body, b2.body);
    assert_eq!(count(&node, "projects").await, 3);
    node.node.stop().await;
}
on_both_backends!(idempotency, a_retried_submit_returns_the_first_result);

async fn an_expired_idempotency_key_is_forgotten_and_a_fresh_one_kept(backend: Backend) {
    use diesel::prelude::*;
    use rix_node::db::schema::idempotency::dsl as i;
    let node = start_node(backend, |_| {}).await;
    let doc = fixture("funded_project");
    let send = |key: &'static str| {
        node.http
            .post(node.url("/v1/projects"))
            .bearer_auth(SUBMITTER)
            .header("Idempotency-Key", key)
            .json(&doc)
            .send()
    };
    let old = reply(send("kept-8-days").await.unwrap()).await;
    let fresh = reply(send("kept-1-day").await.unwrap()).await;
    assert_eq!((old.status, fresh.status), (201, 201));
    let days_ago = |days: i64| {
        rix_runtime::clock::rfc3339(time::OffsetDateTime::now_utc() - time::Duration::days(days))
    };
    {
        let mut conn = node.node.db.conn().unwrap();
        for (key, days) in [("kept-8-days", 8), ("kept-1-day", 1)] {
            let changed = diesel::update(i::idempotency.filter(i::key.eq(key)))
                .set(i::created_at.eq(days_ago(days)))
                .execute(&mut *conn)
                .unwrap();
            assert_eq!(changed, 1);
        }
    }
    // What the node's hourly pass does with the default retention (7 days).
    let cutoff = days_ago(i64::from(
        rix_node::config::default_idempotency_retention_days(),
    ));
    assert_eq!(
        rix_node::register::prune_idempotency(&node.node.db, &cutoff).unwrap(),
        1
    );
    // The fresh key still answers with its first reply; the expired one is a new request.
    let again = reply(send("kept-1-day").await.unwrap()).await;
    assert_eq!(again.body, fresh.body);
    let anew = reply(send("kept-8-days").await.unwrap()).await;
    assert_eq!(anew.status, 201, "{}", anew.body);
    assert_ne!(anew.body["id"], old.body["id"]);
    assert_eq!(count(&node, "projects").await, 3);
    node.node.stop().await;
}
on_both_backends!(
    idempotency_retention,
    an_expired_idempotency_key_is_forgotten_and_a_fresh_one_kept
);

async fn submitters_see_only_their_institution(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let mine = fixture("achievement");
    let mut theirs = fixture("achievement");
    theirs["institutions"][1]["uscc"] = json!(OTHER_USCC);
    assert_eq!(
        node.post("/v1/achievements", SUBMITTER, &mine).await.status,
        201
    );
    let r = node
        .post("/v1/achievements", OTHER_SUBMITTER, &theirs)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let other_id = r.body["id"].as_str().unwrap().to_owned();
    let listed = node.get("/v1/achievements", Some(SUBMITTER)).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(count(&node, "achievements").await, 2, "reviewers see all");
    let r = node
        .send(
            Method::DELETE,
            &format!("/v1/achievements/{other_id}"),
            Some(SUBMITTER),
            None,
        )
        .await;
    assert_eq!(
        r.status, 404,
        "another institution's record cannot be withdrawn"
    );
    // Cursor pagination returns each record once.
    for _ in 0..5 {
        node.post("/v1/achievements", SUBMITTER, &mine).await;
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = node
            .get(
                &format!("/v1/achievements?limit=2&after={after}"),
                Some(ADMIN),
            )
            .await;
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => after = c.to_owned(),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (7, 7));
    node.node.stop().await;
}
on_both_backends!(roles, submitters_see_only_their_institution);

async fn classified_records_stay_home_until_declassified(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let public_id = node
        .register_approved("achievements", &fixture("achievement"))
        .await;
    let secret = with_level(fixture("achievement"), "secret");
    let secret_id = node.register_approved("achievements", &secret).await;
    let top = with_level(fixture("funded_project"), "top_secret");
    node.register_approved("projects", &top).await;
    node.wait_for_seq(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let entries = verify_chain(&node.node_id, &node.key, &node.feed_lines().await);
    assert_eq!(entries.len(), 1, "only the public record was logged");
    assert_eq!(entries[0].id, public_id);
    let health = node.get("/healthz", None).await;
    assert_eq!(
        health.body["log"]["last_seq"], 1,
        "nothing classified in the outbox"
    );

    // Declassify: a revision at public with the decision, approved.
    let mut lowered = fixture("achievement");
    lowered["secrecy"] = json!({
        "level": "public",
        "decision": {"reference": "云科密解〔2026〕7号", "date": "2026-06-01",
                     "authority": "云南省科学技术厅", "previous_level": "secret"}
    });
    let current = node
        .get(&format!("/v1/achievements/{secret_id}"), Some(SUBMITTER))
        .await;
    lowered["registration_no"] = current.body["registration_no"].clone();
    lowered["registration_date"] = current.body["registration_date"].clone();
    let r = reply(
        node.http
            .put(node.url(&format!("/v1/achievements/{secret_id}")))
            .bearer_auth(SUBMITTER)
            .header("If-Match", "\"1\"")
            .json(&lowered)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = node
        .post(
            &format!("/v1/achievements/{secret_id}/approve"),
            REVIEWER,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    node.wait_for_seq(2).await;
    let entries = verify_chain(&node.node_id, &node.key, &node.feed_lines().await);
    let ids: Vec<(&str, u64)> = entries.iter().map(|e| (e.id.as_str(), e.version)).collect();
    assert_eq!(ids, vec![(public_id.as_str(), 1), (secret_id.as_str(), 2)]);

    // Raising a published record to secret takes it out of circulation: a withdrawal.
    // (The node's own copy: the feed's carries placeholders for hidden values.)
    let mut raised = node
        .get(&format!("/v1/achievements/{secret_id}"), Some(SUBMITTER))
        .await
        .body["record"]
        .clone();
    raised["secrecy"] = json!({"level": "confidential"});
    let r = reply(
        node.http
            .put(node.url(&format!("/v1/achievements/{secret_id}")))
            .bearer_auth(SUBMITTER)
            .header("If-Match", "\"2\"")
            .json(&raised)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    node.post(
        &format!("/v1/achievements/{secret_id}/approve"),
        REVIEWER,
        &json!({}),
    )
    .await;
    node.wait_for_seq(3).await;
    let entries = verify_chain(&node.node_id, &node.key, &node.feed_lines().await);
    assert_eq!(entries[2].op, Op::Withdraw);
    assert!(entries.iter().all(|e| {
        e.record.as_ref().is_none_or(|r| {
            r["secrecy"]["level"] == "public" || r["secrecy"]["level"] == "internal"
        })
    }));
    node.node.stop().await;
}
on_both_backends!(secrecy, classified_records_stay_home_until_declassified);

async fn concurrent_approvals_get_gap_free_seqs_and_serials(backend: Backend) {
    let node = std::sync::Arc::new(start_node(backend, |_| {}).await);
    let doc = fixture("achievement");
    let r = node
        .post(
            "/v1/achievements/batch",
            SUBMITTER,
            &Value::Array(vec![doc; 40]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ids: Vec<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let mut tasks = Vec::new();
    for id in ids {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let r = node
                .post(
                    &format!("/v1/achievements/{id}/approve"),
                    REVIEWER,
                    &json!({}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["registration_no"].as_str().unwrap().to_owned()
        }));
    }
    let mut serials: Vec<u32> = Vec::new();
    for t in tasks {
        let number = t.await.unwrap();
        serials.push(number[number.len() - 4..].parse().unwrap());
    }
    serials.sort();
    assert_eq!(serials, (1..=40).collect::<Vec<u32>>());
    node.wait_for_seq(40).await;
    let entries = verify_chain(&node.node_id, &node.key, &node.feed_lines().await);
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
}
on_both_backends!(
    concurrency,
    concurrent_approvals_get_gap_free_seqs_and_serials
);

#[tokio::test]
async fn service_endpoints_describe_the_node() {
    let node = start_node(Backend::Sqlite, |_| {}).await;
    node.register_approved("achievements", &fixture("achievement"))
        .await;
    let health = node.get("/healthz", None).await;
    assert_eq!(health.body["status"], "ok");
    assert_eq!(health.body["broker"], "none");
    assert_eq!(health.body["database"], "ok");
    let metrics = node.get("/metrics", None).await;
    let text = String::from_utf8(metrics.bytes).unwrap();
    assert!(
        text.contains("rix_node_approvals_total{kind=\"achievement\"} 1"),
        "{text}"
    );
    assert!(text.contains("rix_node_outbox_depth_entries"));
    let doc = node.get("/openapi.json", None).await.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/{collection}",
        "/v1/{collection}/{id}/approve",
        "/v1/feed",
        "/v1/keys",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    let keys = node.get("/v1/keys", None).await.body;
    assert_eq!(keys["keys"][0]["key_id"], node.key.key_id());
    // The schemas reference each other relatively; following every reference from where the
    // node serves them reaches files it serves.
    let schema = node.get("/v1/schema/achievement", None).await;
    let id = schema.body["$id"].as_str().unwrap().to_owned();
    assert_eq!(id, node.url("/v1/schema/achievement.json"));
    assert_eq!(
        node.get("/v1/schema/achievement.json", None).await.body,
        schema.body
    );
    let mut refs = Vec::new();
    collect_refs(&schema.body, &mut refs);
    assert!(
        refs.iter().any(|r| r.starts_with("common.json")),
        "{refs:?}"
    );
    let base = reqwest::Url::parse(&id).unwrap();
    for r in refs {
        let target = base.join(&r).unwrap();
        let file = reqwest::get(target.as_str()).await.unwrap();
        assert_eq!(file.status(), 200, "{r} -> {target}");
        let doc: Value = file.json().await.unwrap();
        let fragment = target.fragment().unwrap_or("");
        assert!(
            doc.pointer(fragment).is_some(),
            "{r}: no {fragment} in {target}"
        );
    }
    let missing = node.get("/v1/nothing/here/at/all", None).await;
    assert_eq!(missing.status, 404);
    node.node.stop().await;
}

async fn bulk_approval_is_all_or_nothing_and_safe_to_run_concurrently(backend: Backend) {
    let node = std::sync::Arc::new(start_node(backend, |_| {}).await);
    let mut docs = Vec::new();
    for (i, category) in ["应用技术", "基础理论", "软科学"]
        .iter()
        .cycle()
        .take(45)
        .enumerate()
    {
        let mut doc = fixture("achievement");
        doc["category"] = json!(category);
        if *category != "应用技术" {
            doc.as_object_mut().unwrap().remove("trl");
        }
        doc["title"] = json!(format!("批量审核测试成果{i}"));
        docs.push(doc);
    }
    let r = node
        .post("/v1/achievements/batch", SUBMITTER, &Value::Array(docs))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ids: Vec<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    // One of them is already approved: the bulk request names it and approves nothing.
    node.post(
        &format!("/v1/achievements/{}/approve", ids[3]),
        REVIEWER,
        &json!({}),
    )
    .await;
    let r = node
        .post(
            "/v1/achievements/approve",
            REVIEWER,
            &json!({"ids": &ids[..5]}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(pointers(&r.body), vec!["/ids/3"]);
    let pending = node
        .get(
            "/v1/achievements?state=submitted&limit=1000",
            Some(REVIEWER),
        )
        .await;
    assert_eq!(pending.body["items"].as_array().unwrap().len(), 44);

    // Four reviewers approve the rest in bulk at the same time, categories interleaved.
    let rest: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, id)| id.clone())
        .collect();
    let mut tasks = Vec::new();
    for chunk in rest.chunks(11) {
        let node = node.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            let r = node
                .post(
                    "/v1/achievements/approve",
                    REVIEWER,
                    &json!({ "ids": chunk }),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["registration_no"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }));
    }
    let mut numbers = vec![];
    for t in tasks {
        numbers.extend(t.await.unwrap());
    }
    let first = node
        .get(&format!("/v1/achievements/{}", ids[3]), Some(REVIEWER))
        .await;
    numbers.push(first.body["registration_no"].as_str().unwrap().to_owned());
    // Serials are gap-free per category flag: 15 each of Y, J and R.
    for flag in ['Y', 'J', 'R'] {
        let mut serials: Vec<u32> = numbers
            .iter()
            .filter(|n| n.chars().nth(10) == Some(flag))
            .map(|n| n[11..].parse().unwrap())
            .collect();
        serials.sort();
        assert_eq!(serials, (1..=15).collect::<Vec<u32>>(), "flag {flag}");
    }
    node.wait_for_seq(45).await;
    let entries = verify_chain(&node.node_id, &node.key, &node.feed_lines().await);
    assert_eq!(entries.len(), 45);
}
on_both_backends!(
    bulk_approval,
    bulk_approval_is_all_or_nothing_and_safe_to_run_concurrently
);

async fn overlapping_bulk_approvals_approve_each_record_once(backend: Backend) {
    let node = std::sync::Arc::new(start_node(backend, |_| {}).await);
    let mut docs = vec![fixture("achievement"); 20];
    // A submitter who writes approval's own stand-in for the number gets it back as written.
    let odd = "rix:registration_no:placeholder:5f0c2a";
    docs[7]["abstract"] = json!(odd);
    let r = node
        .post("/v1/achievements/batch", SUBMITTER, &Value::Array(docs))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ids: Vec<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();

    // An id named twice in one request: the second time it is already approved.
    let r = node
        .post(
            "/v1/achievements/approve",
            REVIEWER,
            &json!({"ids": [&ids[0], &ids[1], &ids[0]]}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(pointers(&r.body), vec!["/ids/2"]);

    // Three reviewers approve the same records at once, in different orders: each record is
    // approved once, by whoever came first; the others are told it is approved already.
    let mut tasks = Vec::new();
    for turn in 0..3 {
        let node = node.clone();
        let mut mine = ids.clone();
        mine.rotate_left(turn * 7);
        tasks.push(tokio::spawn(async move {
            node.post(
                "/v1/achievements/approve",
                REVIEWER,
                &json!({ "ids": mine }),
            )
            .await
        }));
    }
    let mut approved = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => approved += 1,
            409 => assert!(
                r.body
                    .to_string()
                    .contains("is approved; only a submitted version can be reviewed"),
                "{}",
                r.body
            ),
            other => panic!("{other}: {}", r.body),
        }
    }
    assert_eq!(approved, 1);
    let mut serials = Vec::new();
    for id in &ids {
        let r = node
            .get(&format!("/v1/achievements/{id}"), Some(REVIEWER))
            .await;
        assert_eq!(r.body["state"], "approved", "{}", r.body);
        let number = r.body["registration_no"].as_str().unwrap();
        assert_eq!(r.body["record"]["registration_no"], number);
        serials.push(number[number.len() - 4..].parse::<u32>().unwrap());
    }
    serials.sort();
    assert_eq!(serials, (1..=20).collect::<Vec<u32>>());
    let odd_one = node
        .get(&format!("/v1/achievements/{}", ids[7]), Some(REVIEWER))
        .await;
    assert_eq!(odd_one.body["record"]["abstract"], odd);
    node.wait_for_seq(20).await;
    let entries = verify_chain(&node.node_id, &node.key, &node.feed_lines().await);
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
}
on_both_backends!(
    overlapping_bulk_approval,
    overlapping_bulk_approvals_approve_each_record_once
);

/// Every `$ref` in a schema document.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}
