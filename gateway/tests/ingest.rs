//! The ingest pipeline on real SQLite and PostgreSQL, fed genuine signed batches: apply, merge,
//! link, idempotency, the secrecy gate, and an adversarial corpus refused with the right reason.

mod common;

use common::{Backend, Gateway, SigningNode};
use diesel::{QueryDsl, RunQueryDsl};
use futures_util::FutureExt;
use rix_gateway::catalogue;
use rix_gateway::ingest::{IngestError, Outcome, Transport};
use rix_gateway::trust::{self, ListedKey, ListedKeys};
use rix_schema::RecordKind;
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use rix_schema::sensitivity::Entitlements;
use rix_schema::signing::SigningKey;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn public(mut v: Value) -> Value {
    v["secrecy"] = json!({"level": "public"});
    v
}

fn applied(outcome: Result<Outcome, IngestError>) -> usize {
    match outcome {
        Ok(Outcome::Applied { applied, .. }) => applied,
        other => panic!("expected Applied, got {other:?}"),
    }
}

fn merges_links_and_keeps_merged_entries_through_one_withdrawal(backend: Backend) {
    let gw = Gateway::open(backend);
    let province = SampleGenerator::new(SampleConfig::default());
    let ministry = SampleGenerator::new(SampleConfig {
        node: NodeProfile::ministry("most", "科学技术部", "348"),
        ..SampleConfig::default()
    });
    let mut yunnan = SigningNode::trusted(&gw.db, "prov-530000");
    let mut most = SigningNode::trusted(&gw.db, "most");
    let mut liaoning = SigningNode::trusted(&gw.db, "prov-210000");

    // The ministry publishes the funded project; both provinces register the same result
    // (same registration number); Liaoning also publishes an unrelated achievement.
    let project = public(serde_json::to_value(ministry.shared_project(0)).unwrap());
    let shared = public(serde_json::to_value(province.shared_achievement(0)).unwrap());
    let own = public(serde_json::to_value(province.achievement(7)).unwrap());
    assert_eq!(
        applied(gw.ingest.ingest(
            &most.batch(vec![(
                RecordKind::FundedProject,
                "prj-1".into(),
                1,
                Some(project)
            )]),
            Transport::Amqp
        )),
        1
    );
    applied(gw.ingest.ingest(
        &yunnan.batch(vec![(
            RecordKind::Achievement,
            "ach-1".into(),
            1,
            Some(shared.clone()),
        )]),
        Transport::Amqp,
    ));
    applied(gw.ingest.ingest(
        &liaoning.batch(vec![
            (
                RecordKind::Achievement,
                "ach-9".into(),
                1,
                Some(shared.clone()),
            ),
            (RecordKind::Achievement, "ach-10".into(), 1, Some(own)),
        ]),
        Transport::Feed,
    ));

    let mut conn = gw.db.conn().unwrap();
    let merged = catalogue::unified_id_of(&mut conn, "prov-210000", "ach-9", Entitlements::ALL)
        .unwrap()
        .unwrap();
    assert_eq!(
        Some(merged.clone()),
        catalogue::unified_id_of(&mut conn, "prov-530000", "ach-1", Entitlements::ALL).unwrap(),
        "one entry"
    );
    let entry = catalogue::unified(&mut conn, &merged).unwrap().unwrap();
    let sources: Vec<(&str, &str)> = entry
        .sources
        .iter()
        .map(|s| (s.node_id.as_str(), s.id.as_str()))
        .collect();
    assert_eq!(
        sources,
        vec![("prov-530000", "ach-1"), ("prov-210000", "ach-9")]
    );
    assert_eq!(entry.record.as_ref().unwrap()["title"], shared["title"]);
    let achievements = catalogue::visible_unified_ids(&mut conn, RecordKind::Achievement).unwrap();
    assert_eq!(achievements.len(), 2, "three registrations, two results");

    // Linked both ways, across nodes.
    let project = catalogue::unified_id_of(&mut conn, "most", "prj-1", Entitlements::ALL)
        .unwrap()
        .unwrap();
    assert_eq!(
        catalogue::links(&mut conn, &merged, Entitlements::ALL).unwrap(),
        vec![project.clone()]
    );
    assert_eq!(
        catalogue::links(&mut conn, &project, Entitlements::ALL).unwrap(),
        vec![merged.clone()]
    );

    // Yunnan withdraws: the entry stays (Liaoning still publishes it), Liaoning is primary.
    drop(conn);
    applied(gw.ingest.ingest(
        &yunnan.batch(vec![(RecordKind::Achievement, "ach-1".into(), 2, None)]),
        Transport::Amqp,
    ));
    let mut conn = gw.db.conn().unwrap();
    let entry = catalogue::unified(&mut conn, &merged).unwrap().unwrap();
    assert_eq!(entry.primary.as_ref().unwrap().node_id, "prov-210000");
    assert!(entry.record.is_some());
    assert_eq!(
        catalogue::visible_unified_ids(&mut conn, RecordKind::Achievement)
            .unwrap()
            .len(),
        2
    );
    // History is kept.
    use rix_gateway::db::schema::record_versions;
    let versions: i64 = record_versions::table
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(versions, 5);
}

#[test]
fn merge_link_sqlite() {
    merges_links_and_keeps_merged_entries_through_one_withdrawal(Backend::Sqlite);
}

#[test]
fn merge_link_postgres() {
    merges_links_and_keeps_merged_entries_through_one_withdrawal(Backend::Postgres);
}

fn duplicates_reordering_and_old_versions_change_nothing(backend: Backend) {
    let gw = Gateway::open(backend);
    let g = SampleGenerator::new(SampleConfig::default());
    let mut node = SigningNode::trusted(&gw.db, "prov-530000");
    let rec = |i: u64| public(serde_json::to_value(g.achievement(i)).unwrap());
    let b1 = node.batch(vec![
        (RecordKind::Achievement, "a1".into(), 1, Some(rec(1))),
        (RecordKind::Achievement, "a2".into(), 1, Some(rec(2))),
    ]);
    let b2 = node.batch(vec![(
        RecordKind::Achievement,
        "a1".into(),
        2,
        Some(rec(3)),
    )]);
    let b3 = node.batch(vec![(RecordKind::Achievement, "a2".into(), 2, None)]);

    // The search index waits on this signal: raised by a commit that applied entries (kept
    // for the next wait), not by a duplicate or a gap.
    let signal = gw.ingest.applied_signal();
    let signalled = || signal.notified().now_or_never().is_some();
    assert!(!signalled());
    assert_eq!(applied(gw.ingest.ingest(&b1, Transport::Amqp)), 2);
    assert!(signalled());
    assert!(!signalled(), "one permit per wait");
    assert!(matches!(
        gw.ingest.ingest(&b1, Transport::Feed),
        Ok(Outcome::Duplicate { batch_seq: 1, .. })
    ));
    // Batch 3 before 2: a gap, nothing applied.
    let before = gw.change_count();
    assert!(matches!(
        gw.ingest.ingest(&b3, Transport::Amqp),
        Err(IngestError::Gap {
            expected_batch_seq: 2,
            found_batch_seq: 3,
            ..
        })
    ));
    assert_eq!(gw.change_count(), before);
    assert!(!signalled());
    assert_eq!(applied(gw.ingest.ingest(&b2, Transport::Amqp)), 1);
    assert!(signalled());
    assert_eq!(applied(gw.ingest.ingest(&b3, Transport::Amqp)), 1);
    for b in [&b1, &b2, &b3] {
        assert!(matches!(
            gw.ingest.ingest(b, Transport::Amqp),
            Ok(Outcome::Duplicate { .. })
        ));
    }
    // A later batch re-publishing an old version of a1 is ignored (stale), not applied.
    let b4 = node.batch(vec![(
        RecordKind::Achievement,
        "a1".into(),
        1,
        Some(rec(1)),
    )]);
    match gw.ingest.ingest(&b4, Transport::Amqp) {
        Ok(Outcome::Applied { applied, stale, .. }) => assert_eq!((applied, stale), (0, 1)),
        other => panic!("{other:?}"),
    }
    let mut conn = gw.db.conn().unwrap();
    let a1 = catalogue::unified_id_of(&mut conn, "prov-530000", "a1", Entitlements::ALL)
        .unwrap()
        .and_then(|u| catalogue::unified(&mut conn, &u).unwrap())
        .unwrap();
    assert_eq!(a1.sources[0].version, 2);
    assert_eq!(a1.record.unwrap()["title"], rec(3)["title"]);
    let a2 = catalogue::unified_id_of(&mut conn, "prov-530000", "a2", Entitlements::ALL)
        .unwrap()
        .and_then(|u| catalogue::unified(&mut conn, &u).unwrap())
        .unwrap();
    assert!(a2.record.is_none(), "withdrawn");
    // Exactly four changes: a1 v1, a2 v1, a1 v2, a2 withdrawn; ids gap-free from 1.
    let ids: Vec<i64> = catalogue::changes_after(&mut conn, 0, 100)
        .unwrap()
        .into_iter()
        .map(|c| c.change_id)
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
}

/// Batches committed as one group (what the consumer and the puller do with a backlog) end
/// as if committed one by one: in order, each seeing the ones before it, and a batch that
/// cannot apply holding back nothing but what truly follows it.
fn a_group_commits_as_one_by_one_would(backend: Backend) {
    let gw = Gateway::open(backend);
    let province = SampleGenerator::new(SampleConfig::default());
    let mut yunnan = SigningNode::trusted(&gw.db, "prov-530000");
    let mut liaoning = SigningNode::trusted(&gw.db, "prov-210000");
    let rec = |i: u64| public(serde_json::to_value(province.achievement(i)).unwrap());
    let shared = public(serde_json::to_value(province.shared_achievement(0)).unwrap());
    let y1 = yunnan.batch(vec![
        (RecordKind::Achievement, "a1".into(), 1, Some(rec(1))),
        (
            RecordKind::Achievement,
            "a2".into(),
            1,
            Some(shared.clone()),
        ),
    ]);
    let y2 = yunnan.batch(vec![(
        RecordKind::Achievement,
        "a1".into(),
        2,
        Some(rec(3)),
    )]);
    let y3 = yunnan.batch(vec![(RecordKind::Achievement, "a1".into(), 3, None)]);
    // Liaoning registers the same result as Yunnan's a2: merged with an entry made earlier in
    // the same, still uncommitted, transaction.
    let l1 = liaoning.batch(vec![(
        RecordKind::Achievement,
        "b1".into(),
        1,
        Some(shared),
    )]);
    let prepare = |b: &[u8]| gw.ingest.prepare(b, Transport::Amqp).unwrap();

    let answers = gw.ingest.commit_group(vec![
        prepare(&y1),
        prepare(&y3),
        prepare(&l1),
        prepare(&y2),
        prepare(&y1),
    ]);
    let summary: Vec<String> = answers
        .into_iter()
        .map(|a| match a {
            Ok(Outcome::Applied { applied, .. }) => format!("applied {applied}"),
            Ok(Outcome::Duplicate { batch_seq, .. }) => format!("duplicate {batch_seq}"),
            Err(IngestError::Gap {
                expected_batch_seq,
                found_batch_seq,
                ..
            }) => format!("gap {expected_batch_seq}<{found_batch_seq}"),
            Err(e) => format!("{e}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "applied 2",
            "gap 2<3",
            "applied 1",
            "applied 1",
            "duplicate 1"
        ]
    );
    // The batch held back by its gap applies once its predecessor is in.
    let answers = gw.ingest.commit_group(vec![prepare(&y3)]);
    assert!(matches!(
        answers[..],
        [Ok(Outcome::Applied { applied: 1, .. })]
    ));

    let mut conn = gw.db.conn().unwrap();
    let entry = |node: &str, id: &str, conn: &mut _| {
        catalogue::unified_id_of(conn, node, id, Entitlements::ALL)
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        entry("prov-530000", "a2", &mut conn),
        entry("prov-210000", "b1", &mut conn),
        "merged inside the group"
    );
    let changes: Vec<(i64, String, i64)> = catalogue::changes_after(&mut conn, 0, 100)
        .unwrap()
        .into_iter()
        .map(|c| (c.change_id, c.id, c.version))
        .collect();
    assert_eq!(
        changes,
        [
            (1, "a1".to_owned(), 1),
            (2, "a2".to_owned(), 1),
            (3, "b1".to_owned(), 1),
            (4, "a1".to_owned(), 2),
            (5, "a1".to_owned(), 3),
        ],
        "gap-free change ids in commit order"
    );
}

#[test]
fn group_sqlite() {
    a_group_commits_as_one_by_one_would(Backend::Sqlite);
}

#[test]
fn group_postgres() {
    a_group_commits_as_one_by_one_would(Backend::Postgres);
}

#[test]
fn idempotent_sqlite() {
    duplicates_reordering_and_old_versions_change_nothing(Backend::Sqlite);
}

#[test]
fn idempotent_postgres() {
    duplicates_reordering_and_old_versions_change_nothing(Backend::Postgres);
}

#[test]
fn classified_and_invalid_entries_are_quarantined_never_stored() {
    let gw = Gateway::open(Backend::Sqlite);
    let g = SampleGenerator::new(SampleConfig::default());
    let mut node = SigningNode::trusted(&gw.db, "prov-530000");
    let mut secret = public(serde_json::to_value(g.achievement(1)).unwrap());
    secret["secrecy"] = json!({"level": "secret"});
    secret["title"] = json!("不应出现的秘密成果");
    let mut invalid = public(serde_json::to_value(g.achievement(2)).unwrap());
    invalid["trl"] = json!(12);
    let good = public(serde_json::to_value(g.achievement(3)).unwrap());
    // Fail closed: a level the gateway cannot read is treated as classified, not as public.
    let mut unknown = public(serde_json::to_value(g.achievement(4)).unwrap());
    unknown["secrecy"] = json!({"level": "unclassified"});
    let mut unreadable = public(serde_json::to_value(g.achievement(5)).unwrap());
    unreadable["secrecy"] = json!({"level": 1});
    let outcome = gw.ingest.ingest(
        &node.batch(vec![
            (RecordKind::Achievement, "s".into(), 1, Some(secret)),
            (RecordKind::Achievement, "i".into(), 1, Some(invalid)),
            (RecordKind::Achievement, "g".into(), 1, Some(good)),
            (RecordKind::Achievement, "u".into(), 1, Some(unknown)),
            (RecordKind::Achievement, "r".into(), 1, Some(unreadable)),
            // The withdrawal of a record the catalogue never held: of unknown level, so no
            // reader is told of it.
            (RecordKind::Achievement, "never".into(), 2, None),
        ]),
        Transport::Amqp,
    );
    match outcome {
        Ok(Outcome::Applied {
            applied,
            quarantined,
            ..
        }) => assert_eq!((applied, quarantined), (2, 4)),
        other => panic!("{other:?}"),
    }
    use rix_gateway::db::schema::{quarantine, records};
    let mut conn = gw.db.conn().unwrap();
    let stored: Vec<(String, String)> = records::table
        .select((records::id, records::secrecy))
        .order(records::id)
        .load(&mut *conn)
        .unwrap();
    assert_eq!(
        stored,
        [
            ("g".to_owned(), "public".to_owned()),
            ("never".to_owned(), "unknown".to_owned())
        ]
    );
    let withdrawal = catalogue::changes_after(&mut conn, 0, 10)
        .unwrap()
        .into_iter()
        .find(|c| c.id == "never")
        .unwrap();
    assert!(!withdrawal.visible_to(Entitlements::PUBLIC));
    assert!(!withdrawal.visible_to(Entitlements::ALL));
    let reasons: Vec<String> = quarantine::table
        .select(quarantine::reason)
        .load(&mut *conn)
        .unwrap();
    assert_eq!(reasons.len(), 4);
    assert!(reasons[0].starts_with("classified: secret"), "{reasons:?}");
    assert!(reasons[1].starts_with("invalid: /trl"), "{reasons:?}");
    assert_eq!(reasons[2], "classified: unreadable", "{reasons:?}");
    assert_eq!(reasons[3], "classified: unreadable", "{reasons:?}");
    // No byte of the secret record is anywhere in the catalogue.
    use rix_gateway::db::schema::record_versions;
    let entries: Vec<String> = record_versions::table
        .select(record_versions::entry)
        .load(&mut *conn)
        .unwrap();
    assert!(entries.iter().all(|e| !e.contains("不应出现的秘密成果")));
}

fn an_adversarial_corpus_is_refused_with_reasons_and_applies_nothing(backend: Backend) {
    let gw = Gateway::open(backend);
    let g = SampleGenerator::new(SampleConfig::default());
    let rec = |i: u64| public(serde_json::to_value(g.achievement(i)).unwrap());
    let mut node = SigningNode::trusted(&gw.db, "prov-530000");
    applied(gw.ingest.ingest(
        &node.batch(vec![(
            RecordKind::Achievement,
            "a1".into(),
            1,
            Some(rec(1)),
        )]),
        Transport::Amqp,
    ));
    let baseline = gw.change_count();

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Unknown node.
    let mut stranger = SigningNode::new("prov-650000");
    cases.push((
        "unknown_node",
        stranger.batch(vec![(RecordKind::Achievement, "x".into(), 1, Some(rec(2)))]),
    ));
    // Unknown key: the right node id, another key.
    let mut impostor = SigningNode {
        key: SigningKey::generate().unwrap(),
        ..node.clone()
    };
    cases.push((
        "unknown_key",
        impostor.batch(vec![(RecordKind::Achievement, "x".into(), 1, Some(rec(2)))]),
    ));
    // Bad signature: the header altered after signing.
    let forged = node
        .clone()
        .batch(vec![(RecordKind::Achievement, "x".into(), 1, Some(rec(2)))]);
    let mut v: Value = serde_json::from_slice(&forged).unwrap();
    v["header"]["created_at"] = json!("2020-01-01T00:00:00Z");
    cases.push(("bad_signature", serde_json::to_vec(&v).unwrap()));
    // Merkle mismatch: an entry altered after signing.
    let honest = node
        .clone()
        .batch(vec![(RecordKind::Achievement, "x".into(), 1, Some(rec(2)))]);
    let mut v: Value = serde_json::from_slice(&honest).unwrap();
    v["entries"][0]["record"]["title"] = json!("篡改后的标题");
    cases.push(("merkle_mismatch", serde_json::to_vec(&v).unwrap()));
    // Fork: batch 2 chained to some other history.
    let mut fork = node.clone();
    fork.chain.prev = [7; 32];
    cases.push((
        "broken_chain",
        fork.batch(vec![(RecordKind::Achievement, "x".into(), 1, Some(rec(2)))]),
    ));
    // Replay: a different batch 1.
    let mut replay = node.clone();
    replay.chain = common::Chain::genesis();
    cases.push((
        "replay",
        replay.batch(vec![(RecordKind::Achievement, "x".into(), 1, Some(rec(3)))]),
    ));
    // Malformed and oversized.
    cases.push(("malformed", b"{\"header\": 1".to_vec()));
    cases.push(("oversized", vec![b' '; 17 * 1024 * 1024]));

    for (reason, bytes) in &cases {
        match gw.ingest.ingest(bytes, Transport::Amqp) {
            Err(e @ IngestError::Refused { .. }) => assert_eq!(e.reason(), *reason, "{e}"),
            other => panic!("{reason}: expected a refusal, got {other:?}"),
        }
    }
    // Revoked key: the node's real key, revoked by the operator.
    let key_id = node.key.key_id();
    trust::revoke(&gw.db, "prov-530000", &key_id).unwrap();
    let after_revocation = node.batch(vec![(RecordKind::Achievement, "x".into(), 1, Some(rec(4)))]);
    match gw.ingest.ingest(&after_revocation, Transport::Amqp) {
        Err(e) => assert_eq!(e.reason(), "key_revoked"),
        other => panic!("{other:?}"),
    }
    assert_eq!(gw.change_count(), baseline, "nothing was applied");
    let mut audited = gw.refusal_reasons();
    audited.sort();
    let mut expected: Vec<String> = cases
        .iter()
        .map(|(r, _)| (*r).to_owned())
        .chain(["key_revoked".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(
        audited, expected,
        "every refusal is audited with its reason"
    );
}

#[test]
fn adversarial_sqlite() {
    an_adversarial_corpus_is_refused_with_reasons_and_applies_nothing(Backend::Sqlite);
}

#[test]
fn adversarial_postgres() {
    an_adversarial_corpus_is_refused_with_reasons_and_applies_nothing(Backend::Postgres);
}

fn refused_as(result: Result<Outcome, IngestError>) -> (&'static str, String) {
    match result {
        Err(e @ IngestError::Refused { .. }) => {
            let IngestError::Refused { stage, .. } = &e else {
                unreachable!()
            };
            (e.reason(), format!("{stage}: {e}"))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn listed(
    key: &SigningKey,
    from: OffsetDateTime,
    until: Option<OffsetDateTime>,
    first: u64,
) -> ListedKey {
    let rfc = |t: OffsetDateTime| t.format(&Rfc3339).unwrap();
    ListedKey {
        key_id: key.key_id(),
        algorithm: "Ed25519".into(),
        public_key: key.verifying_key().to_base64(),
        spki_pem: None,
        valid_from: Some(rfc(from)),
        valid_until: until.map(rfc),
        first_batch_seq: Some(first),
    }
}

/// After a rotation the retired key is still valid inside its old window; what stops it from
/// signing a batch dated back into that window is the chain: a batch may not be dated before
/// the batch it follows, nor beyond the gateway's clock.
fn a_retired_key_cannot_backdate_and_nobody_can_postdate(backend: Backend) {
    let gw = Gateway::open(backend);
    let g = SampleGenerator::new(SampleConfig::default());
    let item = |i: u64| {
        vec![(
            RecordKind::Achievement,
            format!("a{i}"),
            1,
            Some(public(serde_json::to_value(g.achievement(i)).unwrap())),
        )]
    };
    let mut node = SigningNode::trusted(&gw.db, "prov-530000");
    let (old_key, new_key) = (node.key.clone(), SigningKey::generate().unwrap());
    let now = OffsetDateTime::now_utc();
    let first = now - time::Duration::hours(2);
    let switch = now - time::Duration::hours(1);

    assert_eq!(
        applied(
            gw.ingest
                .ingest(&node.batch_by(&old_key, first, item(1)), Transport::Feed)
        ),
        1
    );
    // The node switched keys at batch 2; the gateway takes the windows over.
    trust::rotate(
        &gw.db,
        "prov-530000",
        &ListedKeys {
            node_id: "prov-530000".into(),
            keys: vec![
                listed(&old_key, first, Some(switch), 1),
                listed(&new_key, switch, None, 2),
            ],
        },
    )
    .unwrap();
    assert_eq!(
        applied(
            gw.ingest
                .ingest(&node.batch_by(&new_key, switch, item(2)), Transport::Feed)
        ),
        1
    );

    // The retired key signs batch 3 dated a second before the switch: inside its window, but
    // before batch 2.
    let backdated = node
        .clone()
        .batch_by(&old_key, switch - time::Duration::seconds(1), item(3));
    let (reason, detail) = refused_as(gw.ingest.ingest(&backdated, Transport::Amqp));
    assert_eq!(reason, "backdated", "{detail}");
    assert!(detail.starts_with("check_chain: "), "{detail}");
    // Dated honestly, it is outside its window.
    let late = node.clone().batch_by(&old_key, now, item(3));
    assert_eq!(
        refused_as(gw.ingest.ingest(&late, Transport::Amqp)).0,
        "key_not_valid"
    );
    // The current key, dated an hour ahead of the gateway's clock.
    let ahead = node
        .clone()
        .batch_by(&new_key, now + time::Duration::hours(1), item(3));
    let (reason, detail) = refused_as(gw.ingest.ingest(&ahead, Transport::Feed));
    assert_eq!(reason, "future_dated", "{detail}");
    assert!(detail.contains("Check the node's clock"), "{detail}");
    // A narrower skew is a gateway setting; within it, a little ahead is fine.
    let strict = gw
        .ingest
        .clone()
        .with_max_future_skew(std::time::Duration::from_secs(0));
    let slightly = node.clone().batch_by(
        &new_key,
        OffsetDateTime::now_utc() + time::Duration::seconds(60),
        item(3),
    );
    assert_eq!(
        refused_as(strict.ingest(&slightly, Transport::Feed)).0,
        "future_dated"
    );

    // In order and on time: accepted.
    assert_eq!(
        applied(
            gw.ingest
                .ingest(&node.batch_by(&new_key, now, item(3)), Transport::Feed)
        ),
        1
    );
    assert_eq!(gw.change_count(), 3);
    let mut audited = gw.refusal_reasons();
    audited.sort();
    assert_eq!(
        audited,
        ["backdated", "future_dated", "future_dated", "key_not_valid"]
    );
}

#[test]
fn backdating_sqlite() {
    a_retired_key_cannot_backdate_and_nobody_can_postdate(Backend::Sqlite);
}

#[test]
fn backdating_postgres() {
    a_retired_key_cannot_backdate_and_nobody_can_postdate(Backend::Postgres);
}

/// `--compromised-since T` keeps what the key signed before T, also in a catalogue rebuilt
/// from the same batches; a plain revocation refuses it all.
fn a_key_compromised_since_t_keeps_its_earlier_batches(backend: Backend) {
    let g = SampleGenerator::new(SampleConfig::default());
    let item = |i: u64| {
        vec![(
            RecordKind::Achievement,
            format!("a{i}"),
            1,
            Some(public(serde_json::to_value(g.achievement(i)).unwrap())),
        )]
    };
    let now = OffsetDateTime::now_utc();
    let since = now - time::Duration::minutes(30);
    let gw = Gateway::open(backend);
    let mut node = SigningNode::trusted(&gw.db, "prov-530000");
    let key = node.key.clone();
    let before = node.batch_by(&key, now - time::Duration::hours(1), item(1));
    let after = node.batch_by(&key, now - time::Duration::minutes(10), item(2));
    let since_text = trust::mark_compromised(
        &gw.db,
        "prov-530000",
        &key.key_id(),
        &since.format(&Rfc3339).unwrap(),
    )
    .unwrap();

    for (gw, fresh) in [(gw, false), (Gateway::open(backend), true)] {
        if fresh {
            // The rebuild: the same trust store content, the same batches from the feed.
            node.trust(&gw.db);
            trust::mark_compromised(&gw.db, "prov-530000", &key.key_id(), &since_text).unwrap();
        }
        assert_eq!(applied(gw.ingest.ingest(&before, Transport::Feed)), 1);
        let (reason, detail) = refused_as(gw.ingest.ingest(&after, Transport::Feed));
        assert_eq!(reason, "key_compromised", "{detail}");
        assert!(
            detail.contains(&format!("compromised since {since_text}")),
            "{detail}"
        );
        assert_eq!(gw.change_count(), 1);
        assert_eq!(gw.refusal_reasons(), ["key_compromised"]);
    }

    let revoked = Gateway::open(backend);
    node.trust(&revoked.db);
    trust::revoke(&revoked.db, "prov-530000", &key.key_id()).unwrap();
    assert_eq!(
        refused_as(revoked.ingest.ingest(&before, Transport::Feed)).0,
        "key_revoked"
    );
    assert_eq!(revoked.change_count(), 0);
}

#[test]
fn compromised_since_sqlite() {
    a_key_compromised_since_t_keeps_its_earlier_batches(Backend::Sqlite);
}

#[test]
fn compromised_since_postgres() {
    a_key_compromised_since_t_keeps_its_earlier_batches(Backend::Postgres);
}

/// A gateway filling an empty PostgreSQL catalogue analyses the tables it looks rows up in,
/// without waiting for autovacuum: with no statistics the planner took a batch's 400-key
/// lookup for "every row" and scanned all of a kind's keys per batch (growing with the
/// catalogue); analysed, the keys are found by the index.
#[test]
fn a_bulk_load_keeps_the_planners_statistics_postgres() {
    use diesel::sql_types::{Nullable, Text};
    #[derive(diesel::QueryableByName)]
    struct Analysed {
        #[diesel(sql_type = Text)]
        relname: String,
        #[diesel(sql_type = Nullable<Text>)]
        last_analyze: Option<String>,
    }
    let gw = Gateway::open(Backend::Postgres);
    let province = SampleGenerator::new(SampleConfig::default());
    let mut yunnan = SigningNode::trusted(&gw.db, "prov-530000");
    let items = (0..2_500u64)
        .map(|i| {
            let record = public(serde_json::to_value(province.achievement(i)).unwrap());
            (RecordKind::Achievement, format!("a{i}"), 1, Some(record))
        })
        .collect();
    assert_eq!(yunnan.publish(&gw.ingest, items, 500), 2_500);

    // The analyse runs on a thread of its own, after the commit that crossed the threshold.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let analysed = loop {
        let rows: Vec<Analysed> = diesel::sql_query(
            "SELECT relname::text AS relname, last_analyze::text AS last_analyze \
             FROM pg_stat_user_tables \
             WHERE relname IN ('records', 'merge_keys', 'record_funding') ORDER BY relname",
        )
        .load(&mut *gw.db.conn().unwrap())
        .unwrap();
        if rows.len() == 3 && rows.iter().all(|r| r.last_analyze.is_some()) {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not analysed after 2,500 entries: {:?}",
            rows.iter()
                .map(|r| (&r.relname, &r.last_analyze))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        analysed
            .iter()
            .map(|r| r.relname.as_str())
            .collect::<Vec<_>>(),
        ["merge_keys", "record_funding", "records"]
    );

    // What the lookups need the planner to know: keys and ids do not repeat (n_distinct -1,
    // "as many distinct values as rows"), so 400 of them are 400 rows, not "every row".
    #[derive(diesel::QueryableByName)]
    struct Distinct {
        #[diesel(sql_type = Text)]
        column: String,
        #[diesel(sql_type = diesel::sql_types::Float)]
        n_distinct: f32,
    }
    let distinct: Vec<Distinct> = diesel::sql_query(
        "SELECT tablename::text || '.' || attname::text AS column, n_distinct FROM pg_stats \
         WHERE (tablename, attname) IN (('merge_keys', 'merge_key'), ('records', 'id')) \
         ORDER BY 1",
    )
    .load(&mut *gw.db.conn().unwrap())
    .unwrap();
    assert_eq!(
        distinct
            .iter()
            .map(|d| (d.column.as_str(), d.n_distinct))
            .collect::<Vec<_>>(),
        [("merge_keys.merge_key", -1.0), ("records.id", -1.0)]
    );
}
