//! The import path (`POST /v1/{collection}/import`) on a real node, on SQLite and on PostgreSQL:
//! idempotent per source key, per item (never all or none), historical 批准登记号 taken as
//! approved and published like any approval, refused when they are not this node's to take,
//! classified records kept at the node, and each role importing only what it may.

mod common;

use common::*;
use serde_json::{Value, json};

fn item(key: &str, record: &Value) -> Value {
    json!({"source_key": key, "record": record})
}

fn numbered(key: &str, record: &Value, number: &str) -> Value {
    json!({"source_key": key, "record": record, "registration_no": number})
}

fn titled(title: &str) -> Value {
    let mut doc = fixture("achievement");
    doc["title"] = json!(title);
    doc
}

/// A basic-theory result (flag J): no TRL needed.
fn basic_theory(title: &str) -> Value {
    let mut doc = titled(title);
    doc["category"] = json!("基础理论");
    doc
}

fn year() -> i32 {
    rix_runtime::clock::now()[..4].parse().unwrap()
}

async fn import(node: &TestNode, collection: &str, token: &str, items: Vec<Value>) -> Value {
    let r = node
        .post(
            &format!("/v1/{collection}/import"),
            token,
            &json!({ "items": items }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let n = r.body["items"].as_array().unwrap().len() as u64;
    let counted = ["accepted", "duplicates", "refused"]
        .iter()
        .map(|c| r.body[c].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(counted, n, "every item is counted once: {}", r.body);
    r.body
}

/// The pointers of a refused item's errors.
fn refusal(body: &Value, index: usize) -> (u64, Vec<String>) {
    let item = &body["items"][index];
    assert_eq!(item["index"], index);
    assert!(
        item.get("id").is_none(),
        "item {index} was not refused: {item}"
    );
    let pointers = item["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_owned())
        .collect();
    (item["status"].as_u64().unwrap(), pointers)
}

fn message(body: &Value, index: usize) -> String {
    body["items"][index]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn last_seq(node: &TestNode) -> i64 {
    node.get("/healthz", None).await.body["log"]["last_seq"]
        .as_i64()
        .unwrap()
}

async fn record_count(node: &TestNode, collection: &str) -> usize {
    let r = node
        .get(&format!("/v1/{collection}?limit=1000"), Some(ADMIN))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().unwrap().len()
}

/// The feed's upserts, verified with the node key: `(id, record)`.
async fn feed_upserts(node: &TestNode) -> Vec<(String, Value)> {
    let lines = node.feed_lines().await;
    verify_chain(&node.node_id, &node.key, &lines)
        .into_iter()
        .filter_map(|e| e.record.map(|r| (e.id, r)))
        .collect()
}

async fn the_same_import_twice_registers_nothing_twice(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let items = vec![
        numbered("sheet#1", &titled("历史成果一"), "5300002019Y0042"),
        json!({"source_key": "sheet#2", "record": titled("新成果二"), "approve": true}),
        item("sheet#3", &titled("待审成果三")),
    ];
    let first = import(&node, "achievements", ADMIN, items.clone()).await;
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(3), Some(0)),
        "{first}"
    );
    assert_eq!(first["approved"], 2);
    let states: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["approved", "approved", "submitted"]);
    assert_eq!(first["items"][0]["registration_no"], "5300002019Y0042");
    assert_eq!(
        first["items"][1]["registration_no"],
        format!("530000{}Y0001", year())
    );
    let logged = last_seq(&node).await;
    assert_eq!(logged, 2, "the two approvals, once each");

    let second = import(&node, "achievements", ADMIN, items.clone()).await;
    assert_eq!(
        (second["accepted"].as_u64(), second["duplicates"].as_u64()),
        (Some(0), Some(3)),
        "{second}"
    );
    for i in 0..3 {
        let (a, b) = (&first["items"][i], &second["items"][i]);
        assert_eq!(b["id"], a["id"], "the same record, not a new one");
        assert_eq!(b["state"], a["state"]);
        assert_eq!(b["registration_no"], a["registration_no"]);
        assert_eq!(b["duplicate"], true);
        assert_eq!(b["changed"], false);
    }
    assert_eq!(last_seq(&node).await, logged, "nothing new in the outbox");
    assert_eq!(record_count(&node, "achievements").await, 3);

    // The source was edited: still a duplicate, reported changed, and the node's record stays.
    let mut edited = items.clone();
    edited[2]["record"]["title"] = json!("待审成果三（修订）");
    let third = import(&node, "achievements", ADMIN, edited).await;
    assert_eq!(third["duplicates"], 3);
    assert_eq!(third["items"][2]["changed"], true);
    assert_eq!(third["items"][0]["changed"], false);
    let id = third["items"][2]["id"].as_str().unwrap();
    let got = node
        .get(&format!("/v1/achievements/{id}"), Some(ADMIN))
        .await;
    assert_eq!(got.body["record"]["title"], "待审成果三");
    assert_eq!(got.body["version"], 1, "not silently revised");

    // Within one request the second use of a key is a duplicate of the first.
    let twice = import(
        &node,
        "achievements",
        ADMIN,
        vec![
            item("sheet#4", &titled("成果四")),
            item("sheet#4", &titled("成果四")),
        ],
    )
    .await;
    assert_eq!(twice["accepted"], 1);
    assert_eq!(twice["duplicates"], 1);
    assert_eq!(twice["items"][1]["id"], twice["items"][0]["id"]);

    // Keys are per kind: a project may use the same key.
    let project = import(
        &node,
        "projects",
        ADMIN,
        vec![item("sheet#1", &fixture("funded_project"))],
    )
    .await;
    assert_eq!(project["accepted"], 1, "{project}");
    assert!(
        project["items"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("prj-")
    );

    // Achievements: 4 accepted (3 + 1), 7 duplicates (3 + 3 + 1); 2 approvals.
    let metrics = String::from_utf8(node.get("/metrics", None).await.bytes).unwrap();
    for line in [
        "rix_node_import_items_total{kind=\"achievement\",outcome=\"accepted\"} 4",
        "rix_node_import_items_total{kind=\"achievement\",outcome=\"duplicate\"} 7",
        "rix_node_import_items_total{kind=\"funded_project\",outcome=\"accepted\"} 1",
        "rix_node_approvals_total{kind=\"achievement\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    let doc = node.get("/openapi.json", None).await.body;
    assert!(doc["paths"]["/v1/{collection}/import"]["post"].is_object());
    assert!(doc["components"]["schemas"]["ImportReport"].is_object());
}
on_both_backends!(
    the_same_import_twice_registers_nothing_twice,
    the_same_import_twice_registers_nothing_twice
);

async fn valid_items_register_and_each_invalid_one_is_refused_with_pointers(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let mut untitled = fixture("achievement");
    untitled.as_object_mut().unwrap().remove("title");
    let mut numbered_in_record = titled("自带登记号");
    numbered_in_record["registration_no"] = json!("5300002019Y0001");
    let body = import(
        &node,
        "achievements",
        SUBMITTER,
        vec![
            item("r1", &titled("成果甲")),
            item("r2", &untitled),
            json!({"source_key": "", "record": titled("成果乙")}),
            json!("not an item"),
            json!({"source_key": "r5", "record": titled("成果丙"), "colour": "red"}),
            item("r6", &titled("成果丁")),
            json!({"source_key": "r7", "record": []}),
            item("r8", &numbered_in_record),
            json!({"source_key": "r9\u{0007}", "record": titled("成果戊")}),
        ],
    )
    .await;
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(body["refused"], 7);
    assert_eq!(body["items"][0]["state"], "submitted");
    assert_eq!(body["items"][5]["state"], "submitted");
    assert_eq!(
        refusal(&body, 1),
        (422, vec!["/items/1/record/title".into()])
    );
    assert_eq!(refusal(&body, 2), (422, vec!["/items/2/source_key".into()]));
    assert_eq!(refusal(&body, 3), (422, vec!["/items/3".into()]));
    assert_eq!(refusal(&body, 4), (422, vec!["/items/4/colour".into()]));
    assert_eq!(refusal(&body, 6), (422, vec!["/items/6/record".into()]));
    assert_eq!(
        refusal(&body, 7),
        (422, vec!["/items/7/record/registration_no".into()])
    );
    assert_eq!(refusal(&body, 8), (422, vec!["/items/8/source_key".into()]));
    assert_eq!(body["items"][1]["source_key"], "r2");
    assert!(body["items"][3].get("source_key").is_none());
    assert_eq!(record_count(&node, "achievements").await, 2);

    // The refused ones come in once fixed; the registered ones are duplicates.
    let again = import(
        &node,
        "achievements",
        SUBMITTER,
        vec![item("r1", &titled("成果甲")), item("r2", &titled("成果乙"))],
    )
    .await;
    assert_eq!(
        (again["duplicates"].as_u64(), again["accepted"].as_u64()),
        (Some(1), Some(1))
    );

    // Requests that are no import are refused whole, as problem+json.
    for (bad, pointer) in [
        (json!({"items": []}), "/items"),
        (json!([item("x", &titled("成果"))]), ""),
        (
            json!({"items": [item("x", &titled("成果"))], "extra": 1}),
            "/extra",
        ),
        (json!({"items": vec![json!({}); 1001]}), "/items"),
    ] {
        let r = node.post("/v1/achievements/import", SUBMITTER, &bad).await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(r.body["errors"][0]["pointer"], pointer, "{}", r.body);
    }
    let r = node
        .send(
            reqwest::Method::POST,
            "/v1/achievements/import",
            None,
            Some(&json!({"items": [item("x", &titled("成果"))]})),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = node
        .post("/v1/widgets/import", ADMIN, &json!({"items": []}))
        .await;
    assert_eq!(r.status, 404);
}
on_both_backends!(
    valid_items_register_and_each_invalid_one_is_refused_with_pointers,
    valid_items_register_and_each_invalid_one_is_refused_with_pointers
);

async fn a_historical_number_is_imported_approved_and_published_with_it(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let y = year();
    let mut dated = basic_theory("二〇一九年的基础研究");
    dated["registration_date"] = json!("2019-06-30");
    dated["registration_no"] = json!("5300002019J0007");
    let body = import(
        &node,
        "achievements",
        ADMIN,
        vec![
            numbered("old#1", &titled("历史成果"), "5300002019Y0042"),
            // A serial of five digits names the same number as its four-digit form.
            numbered("old#2", &dated, "5300002019J00007"),
            // This year's numbers, as a province's system issued them before the node ran.
            numbered(
                "old#3",
                &titled("今年已登记的成果"),
                &format!("530000{y}Y0005"),
            ),
        ],
    )
    .await;
    assert_eq!(body["accepted"], 3, "{body}");
    assert_eq!(body["items"][0]["state"], "approved");
    assert_eq!(body["items"][0]["registration_no"], "5300002019Y0042");
    assert_eq!(body["items"][0]["published_version"], 1);
    assert_eq!(body["items"][1]["registration_no"], "5300002019J0007");
    let id = body["items"][1]["id"].as_str().unwrap();
    let got = node
        .get(&format!("/v1/achievements/{id}"), Some(ADMIN))
        .await;
    assert_eq!(
        got.body["registration_date"], "2019-06-30",
        "the historical 登记日期 is kept"
    );
    assert_eq!(got.body["record"]["registration_no"], "5300002019J0007");

    // The node's own numbering goes on after the imported serial, never over it.
    let normal = node
        .register_approved("achievements", &titled("在线登记的成果"))
        .await;
    let normal = node
        .get(&format!("/v1/achievements/{normal}"), Some(ADMIN))
        .await;
    assert_eq!(normal.body["registration_no"], format!("530000{y}Y0006"));
    // A lower serial no record holds may still be imported; one approval took may not.
    let more = import(
        &node,
        "achievements",
        ADMIN,
        vec![
            numbered("old#4", &titled("补录成果"), &format!("530000{y}Y0003")),
            numbered("old#5", &titled("重号成果"), &format!("530000{y}Y0006")),
        ],
    )
    .await;
    assert_eq!(more["accepted"], 1, "{more}");
    assert_eq!(
        refusal(&more, 1),
        (409, vec!["/items/1/registration_no".into()])
    );
    assert!(message(&more, 1).contains(normal.body["id"].as_str().unwrap()));
    // Within one request a number names the first item that brings it; the request's other
    // items register beside the refusal, in their order.
    let same = import(
        &node,
        "achievements",
        ADMIN,
        vec![
            numbered("old#6", &titled("同号其一"), "5300002018Y0100"),
            item("new#1", &titled("同批新成果")),
            numbered("old#7", &titled("同号其二"), "5300002018Y0100"),
            item("new#1", &titled("同批新成果")),
        ],
    )
    .await;
    assert_eq!(
        (&same["accepted"], &same["refused"], &same["duplicates"]),
        (&json!(2), &json!(1), &json!(1)),
        "{same}"
    );
    assert_eq!(same["items"][0]["registration_no"], "5300002018Y0100");
    assert_eq!(
        refusal(&same, 2),
        (409, vec!["/items/2/registration_no".into()])
    );
    assert!(message(&same, 2).contains(same["items"][0]["id"].as_str().unwrap()));
    assert_eq!(same["items"][3]["id"], same["items"][1]["id"]);
    assert_eq!(same["items"][1]["state"], "submitted");
    let next = node
        .register_approved("achievements", &titled("又一项在线登记"))
        .await;
    let next = node
        .get(&format!("/v1/achievements/{next}"), Some(ADMIN))
        .await;
    assert_eq!(next.body["registration_no"], format!("530000{y}Y0007"));

    // Every approval, imported or not, is in the signed feed with its number.
    node.wait_for_seq(7).await;
    let feed = feed_upserts(&node).await;
    let numbers: Vec<&str> = feed
        .iter()
        .map(|(_, r)| r["registration_no"].as_str().unwrap())
        .collect();
    let y = y.to_string();
    assert_eq!(
        numbers,
        [
            "5300002019Y0042".to_owned(),
            "5300002019J0007".into(),
            format!("530000{y}Y0005"),
            format!("530000{y}Y0006"),
            format!("530000{y}Y0003"),
            "5300002018Y0100".into(),
            format!("530000{y}Y0007"),
        ]
    );
    assert_eq!(feed[0].0, body["items"][0]["id"].as_str().unwrap());
    assert_eq!(feed[1].1["registration_date"], "2019-06-30");
}
on_both_backends!(
    a_historical_number_is_imported_approved_and_published_with_it,
    a_historical_number_is_imported_approved_and_published_with_it
);

async fn numbers_that_are_not_this_nodes_to_take_are_refused(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let taken = import(
        &node,
        "achievements",
        ADMIN,
        vec![numbered("a", &titled("已有成果"), "5300002018Y0010")],
    )
    .await;
    let holder = taken["items"][0]["id"].as_str().unwrap().to_owned();
    let next_year = year() + 1;
    let mut wrong_in_record = titled("记录里的号不同");
    wrong_in_record["registration_no"] = json!("5300002018Y0012");
    let mut future_date = titled("登记日期在未来");
    future_date["registration_date"] = json!(format!("{next_year}-01-01"));
    let body = import(
        &node,
        "achievements",
        ADMIN,
        vec![
            numbered("b", &titled("外省成果"), "1100002018Y0001"),
            numbered("c", &titled("重号"), "5300002018Y0010"),
            numbered("d", &titled("类别不符"), "5300002018J0011"),
            numbered("e", &titled("未来年份"), &format!("530000{next_year}Y0001")),
            numbered("f", &titled("序号为零"), "5300002018Y0000"),
            numbered("g", &titled("格式不对"), "530000-2018-Y-1"),
            numbered("h", &wrong_in_record, "5300002018Y0011"),
            numbered("i", &future_date, "5300002018Y0013"),
            numbered("j", &titled("部门号"), "3482018Y0001"),
        ],
    )
    .await;
    assert_eq!(body["refused"], 9, "{body}");
    for i in [0, 2, 3, 4, 5, 8] {
        assert_eq!(
            refusal(&body, i),
            (422, vec![format!("/items/{i}/registration_no")]),
            "item {i}: {}",
            body["items"][i]
        );
    }
    assert_eq!(
        refusal(&body, 1),
        (409, vec!["/items/1/registration_no".into()])
    );
    assert!(message(&body, 1).contains(&holder), "names the holder");
    assert!(message(&body, 0).contains("110000"));
    assert!(message(&body, 2).contains("基础理论") && message(&body, 2).contains("应用技术"));
    assert_eq!(
        refusal(&body, 6),
        (422, vec!["/items/6/record/registration_no".into()])
    );
    assert_eq!(
        refusal(&body, 7),
        (422, vec!["/items/7/record/registration_date".into()])
    );
    // Projects carry no registration number.
    let project = import(
        &node,
        "projects",
        ADMIN,
        vec![numbered("p", &fixture("funded_project"), "5300002018Y0020")],
    )
    .await;
    assert_eq!(
        refusal(&project, 0),
        (422, vec!["/items/0/registration_no".into()])
    );
    // Nothing of the refused was written; the two numbers in one request cannot both win.
    assert_eq!(record_count(&node, "achievements").await, 1);
    let pair = import(
        &node,
        "achievements",
        ADMIN,
        vec![
            numbered("k", &titled("先到"), "5300002018Y0030"),
            numbered("l", &titled("后到"), "5300002018Y0030"),
        ],
    )
    .await;
    assert_eq!(pair["accepted"], 1);
    assert_eq!(
        refusal(&pair, 1),
        (409, vec!["/items/1/registration_no".into()])
    );
    assert!(message(&pair, 1).contains(pair["items"][0]["id"].as_str().unwrap()));
    assert_eq!(last_seq(&node).await, 2);
}
on_both_backends!(
    numbers_that_are_not_this_nodes_to_take_are_refused,
    numbers_that_are_not_this_nodes_to_take_are_refused
);

async fn a_classified_record_is_imported_and_never_enters_the_feed(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let body = import(
        &node,
        "achievements",
        ADMIN,
        vec![
            numbered("s1", &with_level(titled("秘密成果"), "secret"), "5300002020Y0001"),
            json!({"source_key": "s2", "record": with_level(titled("机密成果"), "confidential"), "approve": true}),
            numbered("s3", &titled("公开成果"), "5300002020Y0002"),
        ],
    )
    .await;
    assert_eq!(body["accepted"], 3, "{body}");
    for i in [0, 1] {
        assert_eq!(body["items"][i]["state"], "approved");
        assert_eq!(body["items"][i]["published_version"], Value::Null);
    }
    assert_eq!(body["items"][0]["registration_no"], "5300002020Y0001");
    assert_eq!(last_seq(&node).await, 1, "only the public record is logged");
    node.wait_for_seq(1).await;
    let feed = feed_upserts(&node).await;
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].0, body["items"][2]["id"].as_str().unwrap());
}
on_both_backends!(
    a_classified_record_is_imported_and_never_enters_the_feed,
    a_classified_record_is_imported_and_never_enters_the_feed
);

async fn each_role_imports_only_what_it_may(backend: Backend) {
    let node = start_node(backend, |_| {}).await;
    let mut foreign = fixture("achievement");
    foreign["institutions"] = json!([foreign["institutions"][0].clone()]);
    let body = import(
        &node,
        "achievements",
        SUBMITTER,
        vec![
            numbered("m1", &titled("带号"), "5300002019Y0001"),
            json!({"source_key": "m2", "record": titled("自批"), "approve": true}),
            item("m3", &titled("本单位成果")),
        ],
    )
    .await;
    assert_eq!(
        refusal(&body, 0),
        (403, vec!["/items/0/registration_no".into()])
    );
    assert_eq!(refusal(&body, 1), (403, vec!["/items/1/approve".into()]));
    assert_eq!(body["items"][2]["state"], "submitted");

    let reviewer = import(
        &node,
        "achievements",
        REVIEWER,
        vec![
            item("v1", &titled("审核员登记")),
            json!({"source_key": "v2", "record": titled("审核员批准"), "approve": true}),
            numbered("v3", &titled("审核员带号"), "5300002019Y0002"),
        ],
    )
    .await;
    assert_eq!(
        refusal(&reviewer, 0),
        (403, vec!["/items/0/approve".into()])
    );
    assert_eq!(reviewer["items"][1]["state"], "approved");
    assert_eq!(
        reviewer["items"][1]["registration_no"],
        format!("530000{}Y0001", year())
    );
    assert_eq!(
        refusal(&reviewer, 2),
        (403, vec!["/items/2/registration_no".into()])
    );

    // Another institution's submitter: its record must name it, and it learns nothing of a key
    // a record it may not see holds.
    let other = import(
        &node,
        "achievements",
        OTHER_SUBMITTER,
        vec![item("m3", &titled("本单位成果")), item("o1", &foreign)],
    )
    .await;
    assert_eq!(
        refusal(&other, 0),
        (409, vec!["/items/0/source_key".into()])
    );
    assert!(!message(&other, 0).contains("ach-"));
    assert_eq!(
        refusal(&other, 1),
        (422, vec!["/items/1/record/institutions".into()])
    );
    // The submitter's own import comes back as its duplicate.
    let mine = import(
        &node,
        "achievements",
        SUBMITTER,
        vec![item("m3", &titled("本单位成果"))],
    )
    .await;
    assert_eq!(mine["duplicates"], 1);
    assert_eq!(mine["items"][0]["id"], body["items"][2]["id"]);
}
on_both_backends!(
    each_role_imports_only_what_it_may,
    each_role_imports_only_what_it_may
);

async fn concurrent_imports_of_the_same_rows_register_each_once(backend: Backend) {
    let node = std::sync::Arc::new(start_node(backend, |_| {}).await);
    let items: Vec<Value> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                numbered(
                    &format!("row#{i}"),
                    &titled(&format!("并发成果{i}")),
                    &format!("5300002017Y{:04}", i + 1),
                )
            } else {
                json!({"source_key": format!("row#{i}"), "record": titled(&format!("并发成果{i}")), "approve": true})
            }
        })
        .collect();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let node = node.clone();
            let items = items.clone();
            tokio::spawn(async move { import(&node, "achievements", ADMIN, items).await })
        })
        .collect();
    let mut ids = Vec::new();
    let mut accepted = 0;
    for run in runs {
        let body = run.await.unwrap();
        assert_eq!(body["refused"], 0, "{body}");
        accepted += body["accepted"].as_u64().unwrap();
        let these: Vec<Value> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        ids.push(these);
    }
    assert_eq!(accepted, 20, "each row registered once in all");
    assert!(
        ids.iter().all(|these| *these == ids[0]),
        "every run names the same records"
    );
    assert_eq!(record_count(&node, "achievements").await, 20);
    assert_eq!(last_seq(&node).await, 20, "each approval logged once");
}
on_both_backends!(
    concurrent_imports_of_the_same_rows_register_each_once,
    concurrent_imports_of_the_same_rows_register_each_once
);

async fn a_retried_import_request_gets_its_first_answer_and_applies_nothing_again(
    backend: Backend,
) {
    let node = start_node(backend, |_| {}).await;
    let items = json!({"items": [
        numbered("retry#1", &titled("重试成果一"), "5300002018Y0007"),
        json!({"source_key": "retry#2", "record": titled("重试成果二"), "approve": true}),
        item("retry#3", &titled("重试成果三")),
    ]});
    let send = |body: &Value, key: &str| {
        node.http
            .post(node.url("/v1/achievements/import"))
            .bearer_auth(ADMIN)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let first = reply(send(&items, "rix-import-run-a-1").await.unwrap()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["accepted"], 3, "{}", first.body);
    let logged = last_seq(&node).await;

    // The answer was lost; the client asks again under the same key: the same answer, items
    // accepted (not duplicates), and nothing registered, numbered or logged again.
    let again = reply(send(&items, "rix-import-run-a-1").await.unwrap()).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.bytes, first.bytes, "word for word");
    assert_eq!(record_count(&node, "achievements").await, 3);
    assert_eq!(last_seq(&node).await, logged);
    let metrics = String::from_utf8(node.get("/metrics", None).await.bytes).unwrap();
    assert!(
        metrics
            .contains("rix_node_import_items_total{kind=\"achievement\",outcome=\"accepted\"} 3"),
        "a replay counts nothing: {metrics}"
    );

    // Another key (another run of the same import): the per-row keys answer, as duplicates.
    let rerun = reply(send(&items, "rix-import-run-b-1").await.unwrap()).await;
    assert_eq!(rerun.status, 200, "{}", rerun.body);
    assert_eq!(
        (
            rerun.body["accepted"].as_u64(),
            rerun.body["duplicates"].as_u64()
        ),
        (Some(0), Some(3)),
        "{}",
        rerun.body
    );

    // The same key with another body is refused, and writes nothing.
    let mut other = items.clone();
    other["items"][2]["source_key"] = json!("retry#4");
    let reused = reply(send(&other, "rix-import-run-a-1").await.unwrap()).await;
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(
        reused.body["errors"][0]["pointer"],
        "/headers/idempotency-key"
    );
    assert_eq!(record_count(&node, "achievements").await, 3);
    node.node.stop().await;
}
on_both_backends!(
    a_retried_import_request_gets_its_first_answer_and_applies_nothing_again,
    a_retried_import_request_gets_its_first_answer_and_applies_nothing_again
);
