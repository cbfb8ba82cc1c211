//! The node's key history (issue 12): after a rotation `GET /v1/keys` still lists the old key,
//! each key with the window its own batch chain gives it, so every batch the node ever signed
//! verifies against what the node lists; a retired key is never used again.

mod common;

use common::*;
use rix_node::start;
use rix_schema::batch::{
    BatchLimits, ChainPosition, MemoryKeyRing, SignedBatch, TrustedKey, verify_batch,
};
use rix_schema::signing::{SigningKey, VerifyingKey};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn headers(lines: &[Vec<u8>]) -> Vec<rix_schema::batch::BatchHeader> {
    lines
        .iter()
        .map(|l| serde_json::from_slice::<SignedBatch>(l).unwrap().header)
        .collect()
}

fn time(v: &Value) -> Option<OffsetDateTime> {
    v.as_str()
        .map(|t| OffsetDateTime::parse(t, &Rfc3339).unwrap())
}

async fn the_key_history_outlives_a_rotation(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let node_id = unique("prov");
    let mut cfg = config(backend, dir.path(), &node_id);
    let old_key = SigningKey::from_pkcs8_pem(&std::fs::read(&cfg.signing_key).unwrap()).unwrap();
    let mut node = TestNode {
        node: start(cfg.clone()).await.expect("node starts"),
        dir,
        http: reqwest::Client::new(),
        key: old_key.clone(),
        node_id: node_id.clone(),
        feed_token: feed_token(&node_id),
    };

    // Key A, before and after its first batch.
    let keys = node.get("/v1/keys", None).await.body;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys["keys"][0]["first_batch_seq"], Value::Null, "{keys}");
    assert!(
        keys["keys"][0]["valid_from"].is_string(),
        "listed from its load: {keys}"
    );
    node.register_approved("achievements", &fixture("achievement"))
        .await;
    node.wait_for_seq(1).await;
    let keys = node.get("/v1/keys", None).await.body;
    let batch_1 = headers(&node.feed_lines().await)[0].clone();
    assert_eq!(keys["current_key_id"], old_key.key_id());
    assert_eq!(keys["keys"][0]["key_id"], old_key.key_id());
    assert_eq!(keys["keys"][0]["first_batch_seq"], 1);
    assert_eq!(keys["keys"][0]["valid_from"], batch_1.created_at.as_str());
    assert_eq!(keys["keys"][0]["valid_until"], Value::Null);

    // The operator rotates: a new key file, and a restart on it.
    node.node.stop().await;
    let new_path = node.dir.path().join("node-2.key.pem");
    let new_key = signing_key_file(&new_path);
    cfg.signing_key = new_path;
    node.node = start(cfg.clone())
        .await
        .expect("node starts on its new key");
    node.key = new_key.clone();

    // Loaded, not signing yet: listed after the old key, which stays open.
    let keys = node.get("/v1/keys", None).await.body;
    assert_eq!(keys["current_key_id"], new_key.key_id());
    let listed = keys["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{keys}");
    assert_eq!(listed[0]["key_id"], old_key.key_id());
    assert_eq!(listed[0]["valid_until"], Value::Null);
    assert_eq!(listed[1]["key_id"], new_key.key_id());
    assert_eq!(listed[1]["first_batch_seq"], Value::Null);

    // Its first batch is the switch: the old window ends exactly where the new one begins.
    node.register_approved("achievements", &fixture("achievement"))
        .await;
    node.wait_for_seq(2).await;
    node.register_approved("projects", &fixture("funded_project"))
        .await;
    node.wait_for_seq(3).await;
    let lines = node.feed_lines().await;
    let hs = headers(&lines);
    assert_eq!(hs.len(), 3);
    assert_eq!(hs[0].key_id, old_key.key_id());
    assert_eq!(hs[1].key_id, new_key.key_id());
    assert_eq!(hs[2].key_id, new_key.key_id());
    let times: Vec<OffsetDateTime> = hs
        .iter()
        .map(|h| OffsetDateTime::parse(&h.created_at, &Rfc3339).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "dated in chain order: {times:?}"
    );

    let keys = node.get("/v1/keys", None).await.body;
    let listed = keys["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{keys}");
    assert_eq!(listed[0]["valid_from"], hs[0].created_at.as_str());
    assert_eq!(listed[0]["valid_until"], hs[1].created_at.as_str());
    assert_eq!(listed[1]["valid_from"], hs[1].created_at.as_str());
    assert_eq!(listed[1]["valid_until"], Value::Null);
    assert_eq!(listed[1]["first_batch_seq"], 2);

    // Every batch verifies with the keys and windows the node lists, and no batch verifies
    // under the other key's window.
    let mut ring = MemoryKeyRing::new();
    for k in listed {
        let key = VerifyingKey::from_base64(k["public_key"].as_str().unwrap()).unwrap();
        assert_eq!(key.key_id(), k["key_id"].as_str().unwrap());
        let pem = VerifyingKey::from_spki_pem(k["spki_pem"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(pem, key);
        ring.add_key(
            &node_id,
            TrustedKey {
                valid_from: time(&k["valid_from"]),
                valid_until: time(&k["valid_until"]),
                ..TrustedKey::new(key)
            },
        );
    }
    let mut position = ChainPosition::genesis();
    for line in &lines {
        let verified = verify_batch(line, &BatchLimits::default(), &ring, Some(&position))
            .unwrap_or_else(|r| panic!("{r}"));
        position = verified.next_position();
    }

    // Back to the retired key: refused at start, naming the key that replaced it.
    node.node.stop().await;
    let mut back = cfg.clone();
    back.signing_key = node.dir.path().join("node.key.pem");
    let refused = match start(back).await {
        Ok(_) => panic!("the node started on a retired key"),
        Err(e) => e.to_string(),
    };
    assert!(
        refused.contains(&format!("signing key {} was retired", old_key.key_id())),
        "{refused}"
    );
    assert!(refused.contains(&new_key.key_id()), "{refused}");
    assert!(refused.contains("rix trust rotate"), "{refused}");

    // A key loaded but never used is forgotten when the node starts on another one.
    let unused_path = node.dir.path().join("node-3.key.pem");
    signing_key_file(&unused_path);
    cfg.signing_key = unused_path;
    start(cfg.clone()).await.unwrap().stop().await;
    cfg.signing_key = node.dir.path().join("node-2.key.pem");
    node.node = start(cfg.clone()).await.unwrap();
    let keys = node.get("/v1/keys", None).await.body;
    let ids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [old_key.key_id(), new_key.key_id()], "{keys}");
    node.node.stop().await;
}

on_both_backends!(key_history, the_key_history_outlives_a_rotation);
