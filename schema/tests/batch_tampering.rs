//! The signed batch envelope end to end: a valid chain verifies, and every way of damaging a
//! batch in transit is refused with the reason an operator needs to see.

use rix_schema::RecordKind;
use rix_schema::batch::{
    BatchLimits, ChainPosition, Entry, EntryProofError, GENESIS_PREV_HASH, Gap, MemoryKeyRing,
    Refusal, SignedBatch, SizeUnit, TrustedKey, VerifiedBatch, check_not_future, verify_batch,
    verify_entry,
};
use rix_schema::canonical::sha256;
use rix_schema::merkle::{self, InclusionProof};
use rix_schema::signing::SigningKey;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const NODE: &str = "prov-530000";
const OTHER_NODE: &str = "most";
const T0: OffsetDateTime = datetime!(2025-06-01 08:00:00 UTC);

/// A realistic achievement record, with a marker (`marker-{seq}-x`) a test can change one byte
/// of without breaking the JSON.
fn record(seq: u64) -> Value {
    json!({
        "title": format!("高原特色作物抗旱品种选育与推广 {seq}"),
        "abstract": format!("针对云南干旱频发的问题，选育抗旱品种并建立配套栽培技术体系。marker-{seq}-x"),
        "keywords": ["抗旱", "品种选育", "高原农业"],
        "category": "applied_technology",
        "trl": 7,
        "secrecy": {"level": "public"},
        "institutions": [
            {"name": "云南省农业科学院", "uscc": "12530000431201234X", "region": "530000"},
            {"name": "云南农业大学", "uscc": "12530000431205678Y", "region": "530100"}
        ],
        "completers": [{"name": "张三", "role": "负责人"}, {"name": "李四"}],
        "funding": [{"program": "国家重点研发计划", "project_no": format!("2021YFD{seq:07}")}],
        "period": {"start": "2019-01-01", "end": "2023-12-31"},
        "budget": {"central": 1250000.5, "local": 300000, "self_raised": 0},
        "transfer": {"modes": ["许可"], "price": 100 + seq}
    })
}

fn entries(first_seq: u64, n: u64) -> Vec<Entry> {
    (first_seq..first_seq + n)
        .map(|seq| {
            if seq % 5 == 0 {
                Entry::withdraw(seq, RecordKind::FundedProject, format!("P-{seq:06}"), 2)
            } else {
                Entry::upsert(
                    seq,
                    RecordKind::Achievement,
                    format!("A-{seq:06}"),
                    1,
                    record(seq),
                )
            }
        })
        .collect()
}

/// The node's two keys (a rotation in progress), another node's key, and a trust store that
/// holds all three.
struct Fixture {
    key: SigningKey,
    second_key: SigningKey,
    other_node_key: SigningKey,
    ring: MemoryKeyRing,
}

impl Fixture {
    fn new() -> Fixture {
        let key = SigningKey::from_seed(&[1; 32]).unwrap();
        let second_key = SigningKey::from_seed(&[2; 32]).unwrap();
        let other_node_key = SigningKey::from_seed(&[3; 32]).unwrap();
        let mut ring = MemoryKeyRing::new();
        ring.trust(NODE, key.verifying_key().clone())
            .trust(NODE, second_key.verifying_key().clone())
            .trust(OTHER_NODE, other_node_key.verifying_key().clone());
        Fixture {
            key,
            second_key,
            other_node_key,
            ring,
        }
    }

    /// Batch `batch_seq` of `n` entries from `first_seq`, after `prev`.
    fn batch(&self, batch_seq: u64, prev: [u8; 32], first_seq: u64, n: u64) -> SignedBatch {
        SignedBatch::sign(NODE, batch_seq, prev, entries(first_seq, n), T0, &self.key).unwrap()
    }

    fn verify(&self, bytes: &[u8]) -> Result<VerifiedBatch, Refusal> {
        verify_batch(bytes, &BatchLimits::default(), &self.ring, None)
    }

    fn verify_at(&self, bytes: &[u8], pos: &ChainPosition) -> Result<VerifiedBatch, Refusal> {
        verify_batch(bytes, &BatchLimits::default(), &self.ring, Some(pos))
    }
}

/// Applies `f` to the batch as JSON and returns the new bytes.
fn tamper(batch: &SignedBatch, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&batch.to_bytes()).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn refusal(result: Result<VerifiedBatch, Refusal>) -> Refusal {
    match result {
        Ok(v) => panic!("batch {} was accepted", v.header().batch_seq),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------------------------------------
// The happy path.

#[test]
fn a_chain_of_three_batches_verifies_with_the_position_advancing() {
    let fx = Fixture::new();
    let mut pos = ChainPosition::genesis();
    let mut next_seq = 1;
    for (batch_seq, n) in [(1u64, 4u64), (2, 1), (3, 9)] {
        let batch = fx.batch(batch_seq, pos.prev_batch_hash, next_seq, n);
        let verified = fx.verify_at(&batch.to_bytes(), &pos).unwrap();
        assert_eq!(verified.header(), &batch.header);
        // The signed form is kept byte for byte; the entries come back with their disclosures
        // put back.
        for (i, e) in batch.entries.iter().enumerate() {
            assert_eq!(
                verified.canonical_entry(i),
                Some(e.canonical_bytes().as_slice())
            );
        }
        assert_eq!(verified.signature(), batch.signature);
        assert_eq!(verified.batch_hash(), batch.hash());
        assert_eq!(
            verified.batch_hash(),
            sha256(&batch.header.canonical_bytes())
        );

        let after = verified.next_position();
        assert_eq!(after, ChainPosition::after(&batch.header));
        assert_eq!(after.next_batch_seq, batch_seq + 1);
        assert_eq!(after.next_seq, next_seq + n);
        assert_eq!(after.prev_batch_hash, batch.hash());
        if batch_seq == 1 {
            assert_eq!(batch.header.prev_batch_hash, "0".repeat(64));
        } else {
            assert_eq!(
                batch.header.prev_batch_hash,
                hex::encode(pos.prev_batch_hash)
            );
        }
        pos = after;
        next_seq += n;
    }
    assert_eq!(pos.next_batch_seq, 4);
    assert_eq!(pos.next_seq, 15);
}

#[test]
fn the_node_sees_the_same_bytes_and_hash_the_gateway_verifies() {
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 6);
    let bytes = batch.to_bytes();
    let verified = fx.verify(&bytes).unwrap();
    assert_eq!(verified.header(), &batch.header);
    for (i, e) in batch.entries.iter().enumerate() {
        assert_eq!(
            verified.canonical_entry(i),
            Some(e.canonical_bytes().as_slice())
        );
    }
    // Every disclosure travelled with the entry it belongs to (one each here).
    let all: Vec<&str> = (0..batch.entries.len())
        .flat_map(|i| verified.disclosures(i))
        .collect();
    assert_eq!(
        all,
        batch
            .disclosures
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
}

#[test]
fn signed_batches_conform_to_the_published_json_schema() {
    let schema: Value = serde_json::from_str(include_str!("../schemas/batch.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let fx = Fixture::new();
    for n in [1, 5, 12] {
        let batch = fx.batch(1, GENESIS_PREV_HASH, 1, n);
        let instance: Value = serde_json::from_slice(&batch.to_bytes()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Damage to the entries.

#[test]
fn one_changed_byte_in_any_entry_is_a_merkle_mismatch() {
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 8);
    let bytes = batch.to_bytes();
    for entry in &batch.entries {
        // A byte inside the record, where the entry carries one…
        if entry.record.is_some() {
            let marker = format!("marker-{}-x", entry.seq);
            let at = find(&bytes, marker.as_bytes()) + marker.len() - 1;
            let mut damaged = bytes.clone();
            damaged[at] = b'y';
            let r = refusal(fx.verify(&damaged));
            assert!(
                matches!(&r, Refusal::MerkleMismatch { batch_seq: 1, .. }),
                "seq {}: {r}",
                entry.seq
            );
            assert_eq!(r.reason(), "merkle_mismatch");
        }
        // …and the version, which the record does not repeat.
        let mut damaged = batch.clone();
        let i = (entry.seq - 1) as usize;
        damaged.entries[i].version += 1;
        let r = refusal(fx.verify(&damaged.to_bytes()));
        assert_eq!(r.reason(), "merkle_mismatch", "seq {}: {r}", entry.seq);
    }
}

#[test]
fn a_changed_kind_op_or_id_is_a_merkle_mismatch() {
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 4);
    let changes: [fn(&mut Value); 3] = [
        |v| v["entries"][1]["kind"] = json!("funded_project"),
        |v| v["entries"][2]["id"] = json!("A-999999"),
        |v| {
            v["entries"][3]["op"] = json!("withdraw");
            v["entries"][3].as_object_mut().unwrap().remove("record");
        },
    ];
    for change in changes {
        let r = refusal(fx.verify(&tamper(&batch, change)));
        assert_eq!(r.reason(), "merkle_mismatch", "{r}");
    }
}

#[test]
fn reordered_entries_are_out_of_order() {
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 6);
    let mut swapped = batch.clone();
    swapped.entries.swap(2, 4);
    let r = refusal(fx.verify(&swapped.to_bytes()));
    assert_eq!(
        r,
        Refusal::OutOfOrder {
            node_id: NODE.into(),
            batch_seq: 1,
            index: 2,
            seq: 5,
            first_seq: 1,
            last_seq: 6
        }
    );
    assert_eq!(r.reason(), "out_of_order");

    let mut reversed = batch.clone();
    reversed.entries.reverse();
    assert_eq!(
        refusal(fx.verify(&reversed.to_bytes())).reason(),
        "out_of_order"
    );

    // An entry delivered twice (appended) is misplaced too.
    let mut padded = batch.clone();
    padded.entries.push(batch.entries[0].clone());
    let r = refusal(fx.verify(&padded.to_bytes()));
    assert!(
        matches!(
            r,
            Refusal::OutOfOrder {
                index: 6,
                seq: 1,
                ..
            }
        ),
        "{r}"
    );
}

#[test]
fn a_dropped_entry_is_a_seq_gap_naming_the_missing_seq() {
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 11, 7);
    for drop in 0..batch.entries.len() {
        let mut damaged = batch.clone();
        let dropped = damaged.entries.remove(drop);
        let r = refusal(fx.verify(&damaged.to_bytes()));
        assert_eq!(
            r,
            Refusal::SeqGap {
                node_id: NODE.into(),
                batch_seq: 1,
                gap: Gap::MissingEntry { seq: dropped.seq }
            },
            "dropping entry #{drop}"
        );
        assert_eq!(r.reason(), "seq_gap");
        assert!(
            r.to_string().contains(&format!("seq {}", dropped.seq)),
            "{r}"
        );
    }

    // An entry replaced by a copy of its neighbour leaves its own seq missing.
    let mut duplicated = batch.clone();
    duplicated.entries[3] = batch.entries[2].clone();
    assert_eq!(
        refusal(fx.verify(&duplicated.to_bytes())),
        Refusal::SeqGap {
            node_id: NODE.into(),
            batch_seq: 1,
            gap: Gap::MissingEntry { seq: 14 }
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Damage to the header and the signature.

#[test]
fn a_header_naming_another_trusted_key_of_the_node_is_a_bad_signature() {
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 3);
    let rekeyed = tamper(&batch, |v| {
        v["header"]["key_id"] = json!(fx.second_key.key_id());
    });
    let r = refusal(fx.verify(&rekeyed));
    assert_eq!(
        r,
        Refusal::BadSignature {
            node_id: NODE.into(),
            batch_seq: 1,
            key_id: fx.second_key.key_id()
        }
    );
    assert_eq!(r.reason(), "bad_signature");
}

#[test]
fn a_header_naming_a_key_not_trusted_for_the_node_is_an_unknown_key() {
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 3);
    let stranger = SigningKey::from_seed(&[9; 32]).unwrap();
    for key_id in [fx.other_node_key.key_id(), stranger.key_id()] {
        let rekeyed = tamper(&batch, |v| v["header"]["key_id"] = json!(key_id));
        let r = refusal(fx.verify(&rekeyed));
        assert_eq!(
            r,
            Refusal::UnknownKey {
                node_id: NODE.into(),
                batch_seq: 1,
                key_id: key_id.clone()
            }
        );
        assert_eq!(r.reason(), "unknown_key");
        assert!(r.to_string().contains("rix trust add"), "{r}");
    }
}

#[test]
fn a_trusted_node_cannot_publish_under_another_nodes_id() {
    let fx = Fixture::new();
    // The other node signs, with its own trusted key, a batch that claims to come from NODE.
    let forged = SignedBatch::sign(
        NODE,
        1,
        GENESIS_PREV_HASH,
        entries(1, 2),
        T0,
        &fx.other_node_key,
    )
    .unwrap();
    assert_eq!(
        refusal(fx.verify(&forged.to_bytes())).reason(),
        "unknown_key"
    );
    // And it cannot relabel NODE's batch as its own either.
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 2);
    let relabelled = tamper(&batch, |v| v["header"]["node_id"] = json!(OTHER_NODE));
    assert_eq!(refusal(fx.verify(&relabelled)).reason(), "unknown_key");
}

#[test]
fn a_batch_from_a_node_the_trust_store_does_not_know_is_refused() {
    let fx = Fixture::new();
    let batch = SignedBatch::sign(
        "city-530100",
        1,
        GENESIS_PREV_HASH,
        entries(1, 2),
        T0,
        &fx.key,
    )
    .unwrap();
    let r = refusal(fx.verify(&batch.to_bytes()));
    assert_eq!(
        r,
        Refusal::UnknownNode {
            node_id: "city-530100".into(),
            batch_seq: 1
        }
    );
    assert_eq!(r.reason(), "unknown_node");
    assert_eq!(r.node_id(), Some("city-530100"));
    assert_eq!(r.batch_seq(), Some(1));

    // A node known but with no key at all: its batches name an unknown key.
    let mut ring = MemoryKeyRing::new();
    ring.add_node("city-530100");
    let r = verify_batch(&batch.to_bytes(), &BatchLimits::default(), &ring, None);
    assert_eq!(refusal(r).reason(), "unknown_key");
}

#[test]
fn flipped_signature_bytes_are_a_bad_signature() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 3);
    let sig = b64.decode(&batch.signature).unwrap();
    for byte in 0..64 {
        for bit in [0, 7] {
            let mut flipped = sig.clone();
            flipped[byte] ^= 1 << bit;
            let mut damaged = batch.clone();
            damaged.signature = b64.encode(&flipped);
            let r = refusal(fx.verify(&damaged.to_bytes()));
            assert_eq!(r.reason(), "bad_signature", "byte {byte} bit {bit}: {r}");
        }
    }
    // A signature that is not even 64 bytes of base64 is malformed.
    for bad in [
        "",
        "AAAA",
        &batch.signature[..86],
        &format!("{}!=", &batch.signature[..86]),
    ] {
        let mut damaged = batch.clone();
        damaged.signature = bad.to_owned();
        assert_eq!(
            refusal(fx.verify(&damaged.to_bytes())).reason(),
            "malformed"
        );
    }
}

#[test]
fn any_changed_header_field_is_a_bad_signature() {
    let fx = Fixture::new();
    let batch = fx.batch(2, sha256(b"batch one"), 5, 4);
    let changes: Vec<(&str, Value)> = vec![
        ("batch_seq", json!(3)),
        ("first_seq", json!(6)),
        ("last_seq", json!(7)),
        (
            "prev_batch_hash",
            json!(hex::encode(sha256(b"another batch"))),
        ),
        ("merkle_root", json!(hex::encode(sha256(b"other entries")))),
        ("created_at", json!("2025-06-01T08:00:01Z")),
    ];
    for (field, value) in changes {
        let damaged = tamper(&batch, |v| v["header"][field] = value);
        let r = refusal(fx.verify(&damaged));
        assert_eq!(r.reason(), "bad_signature", "{field}: {r}");
    }
    // Same instant written another way is still a different header: the signature covers
    // the bytes, not the meaning.
    let damaged = tamper(&batch, |v| {
        v["header"]["created_at"] = json!("2025-06-01T08:00:00.000Z")
    });
    assert_eq!(refusal(fx.verify(&damaged)).reason(), "bad_signature");
}

// ---------------------------------------------------------------------------------------------
// The chain.

#[test]
fn a_batch_that_names_another_predecessor_is_a_broken_chain() {
    let fx = Fixture::new();
    let one = fx.batch(1, GENESIS_PREV_HASH, 1, 3);
    let pos = fx
        .verify_at(&one.to_bytes(), &ChainPosition::genesis())
        .unwrap()
        .next_position();

    // Correctly signed by the node, but continuing another history (a fork).
    let fork = fx.batch(2, sha256(b"some other batch 1"), 4, 3);
    let r = refusal(fx.verify_at(&fork.to_bytes(), &pos));
    assert_eq!(
        r,
        Refusal::BrokenChain {
            node_id: NODE.into(),
            batch_seq: 2,
            expected: hex::encode(one.hash()),
            found: hex::encode(sha256(b"some other batch 1")),
        }
    );
    assert_eq!(r.reason(), "broken_chain");

    // A second first batch (the node restarted from an empty database) is a fork too.
    let restarted = fx.batch(2, GENESIS_PREV_HASH, 4, 1);
    assert_eq!(
        refusal(fx.verify_at(&restarted.to_bytes(), &pos)).reason(),
        "broken_chain"
    );

    // The genuine batch 2 goes through.
    let two = fx.batch(2, one.hash(), 4, 3);
    fx.verify_at(&two.to_bytes(), &pos).unwrap();
}

#[test]
fn a_batch_delivered_again_is_a_replay() {
    let fx = Fixture::new();
    let one = fx.batch(1, GENESIS_PREV_HASH, 1, 2);
    let two = fx.batch(2, one.hash(), 3, 2);
    let mut pos = ChainPosition::genesis();
    for b in [&one, &two] {
        pos = fx.verify_at(&b.to_bytes(), &pos).unwrap().next_position();
    }
    for b in [&one, &two] {
        let r = refusal(fx.verify_at(&b.to_bytes(), &pos));
        assert_eq!(
            r,
            Refusal::Replay {
                node_id: NODE.into(),
                batch_seq: b.header.batch_seq,
                next_batch_seq: 3,
                batch_hash: hex::encode(b.hash()),
            }
        );
        assert_eq!(r.reason(), "replay");
    }
    // Without a chain position the same bytes verify: replay is a property of the receiver.
    fx.verify(&one.to_bytes()).unwrap();
}

#[test]
fn a_skipped_batch_is_a_seq_gap() {
    let fx = Fixture::new();
    let one = fx.batch(1, GENESIS_PREV_HASH, 1, 2);
    let two = fx.batch(2, one.hash(), 3, 2);
    let three = fx.batch(3, two.hash(), 5, 2);
    let pos = fx
        .verify_at(&one.to_bytes(), &ChainPosition::genesis())
        .unwrap()
        .next_position();
    let r = refusal(fx.verify_at(&three.to_bytes(), &pos));
    assert_eq!(
        r,
        Refusal::SeqGap {
            node_id: NODE.into(),
            batch_seq: 3,
            gap: Gap::MissingBatches {
                expected_batch_seq: 2,
                found_batch_seq: 3
            }
        }
    );
    assert_eq!(r.reason(), "seq_gap");

    // The first batch of a node must be batch 1.
    let r = refusal(fx.verify_at(&two.to_bytes(), &ChainPosition::genesis()));
    assert_eq!(r.reason(), "seq_gap");
}

#[test]
fn a_next_batch_whose_seqs_do_not_continue_is_a_seq_gap() {
    let fx = Fixture::new();
    let one = fx.batch(1, GENESIS_PREV_HASH, 1, 2);
    let pos = ChainPosition::after(&one.header);
    for first_seq in [4, 2] {
        let two = fx.batch(2, one.hash(), first_seq, 2);
        let r = refusal(fx.verify_at(&two.to_bytes(), &pos));
        assert_eq!(
            r,
            Refusal::SeqGap {
                node_id: NODE.into(),
                batch_seq: 2,
                gap: Gap::Discontinuity {
                    expected_seq: 3,
                    found_first_seq: first_seq
                }
            }
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Size and shape.

#[test]
fn oversized_batches_are_refused_before_any_work() {
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 10);
    let bytes = batch.to_bytes();

    let tight = BatchLimits {
        max_bytes: bytes.len() - 1,
        ..BatchLimits::default()
    };
    let r = refusal(verify_batch(&bytes, &tight, &fx.ring, None));
    assert_eq!(
        r,
        Refusal::Oversized {
            unit: SizeUnit::Bytes,
            size: bytes.len(),
            limit: bytes.len() - 1
        }
    );
    assert_eq!(r.reason(), "oversized");
    // The byte limit comes first: even garbage over the limit is `oversized`, not `malformed`.
    let garbage = vec![b'{'; tight.max_bytes + 1];
    assert_eq!(
        refusal(verify_batch(&garbage, &tight, &fx.ring, None)).reason(),
        "oversized"
    );

    let exact = BatchLimits {
        max_bytes: bytes.len(),
        max_entries: 10,
    };
    verify_batch(&bytes, &exact, &fx.ring, None).unwrap();

    let few = BatchLimits {
        max_entries: 9,
        ..BatchLimits::default()
    };
    let r = refusal(verify_batch(&bytes, &few, &fx.ring, None));
    assert_eq!(
        r,
        Refusal::Oversized {
            unit: SizeUnit::Entries,
            size: 10,
            limit: 9
        }
    );
    assert_eq!(r.reason(), "oversized");
}

#[test]
fn garbage_and_truncated_json_are_malformed() {
    let fx = Fixture::new();
    let bytes = fx.batch(1, GENESIS_PREV_HASH, 1, 3).to_bytes();
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"garbage".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        vec![0xff, 0xfe, 0x00],
    ];
    inputs.extend((0..bytes.len()).step_by(7).map(|n| bytes[..n].to_vec()));
    inputs.push(bytes[..bytes.len() - 1].to_vec());
    for input in inputs {
        let r = refusal(fx.verify(&input));
        assert_eq!(r.reason(), "malformed", "{} bytes: {r}", input.len());
        assert_eq!(r.node_id(), None);
    }
    // serde's message, with where it stopped, reaches the operator.
    let r = refusal(fx.verify(&bytes[..40]));
    assert!(r.to_string().contains("EOF"), "{r}");
}

#[test]
fn fields_outside_the_format_are_malformed() {
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 5);
    // (what, a phrase the operator must see, the change)
    type Case = (&'static str, &'static str, fn(&mut Value));
    let changes: Vec<Case> = vec![
        ("extra header field", "unknown field `note`", |v| {
            v["header"]["note"] = json!("x")
        }),
        ("extra entry field", "unknown field `extra`", |v| {
            v["entries"][0]["extra"] = json!(1)
        }),
        ("extra top-level field", "unknown field `proofs`", |v| {
            v["proofs"] = json!([])
        }),
        ("missing key_id", "missing field `key_id`", |v| {
            v["header"].as_object_mut().unwrap().remove("key_id");
        }),
        ("negative seq", "integer `-1`", |v| {
            v["entries"][0]["seq"] = json!(-1)
        }),
        ("zero seq", "/entries/0/seq", |v| {
            v["entries"][0]["seq"] = json!(0)
        }),
        ("seq beyond exact doubles", "above 2^53 - 1", |v| {
            v["entries"][0]["seq"] = json!(1u64 << 53)
        }),
        ("version beyond exact doubles", "/entries/1/version", |v| {
            v["entries"][1]["version"] = json!(u64::MAX)
        }),
        ("uppercase hex", "/header/merkle_root", |v| {
            let root = v["header"]["merkle_root"].as_str().unwrap().to_uppercase();
            v["header"]["merkle_root"] = json!(root);
        }),
        ("short prev hash", "/header/prev_batch_hash", |v| {
            v["header"]["prev_batch_hash"] = json!("00")
        }),
        ("non-UTC time", "must be in UTC", |v| {
            v["header"]["created_at"] = json!("2025-06-01T16:00:00+08:00")
        }),
        ("not a time", "/header/created_at", |v| {
            v["header"]["created_at"] = json!("yesterday")
        }),
        ("bad node id", "/header/node_id", |v| {
            v["header"]["node_id"] = json!("Prov 53")
        }),
        ("bad key id", "/header/key_id", |v| {
            v["header"]["key_id"] = json!("rsa:0123456789abcdef")
        }),
        ("last before first", "is before first_seq", |v| {
            v["header"]["first_seq"] = json!(99)
        }),
        ("unknown kind", "unknown variant `patent`", |v| {
            v["entries"][0]["kind"] = json!("patent")
        }),
        ("unknown op", "unknown variant `delete`", |v| {
            v["entries"][0]["op"] = json!("delete")
        }),
        (
            "upsert without record",
            "an upsert must carry the record",
            |v| {
                v["entries"][0].as_object_mut().unwrap().remove("record");
            },
        ),
        (
            "withdrawal with record",
            "a withdrawal must not carry a record",
            |v| v["entries"][4]["record"] = json!({}),
        ),
        (
            "record not an object",
            "/entries/0/record: must be a JSON object",
            |v| v["entries"][0]["record"] = json!([1]),
        ),
        ("bad record id", "/entries/0/id", |v| {
            v["entries"][0]["id"] = json!("../etc/passwd")
        }),
        ("no entries", "at least one entry", |v| {
            v["entries"] = json!([])
        }),
    ];
    for (what, phrase, change) in changes {
        let r = refusal(fx.verify(&tamper(&batch, change)));
        assert_eq!(r.reason(), "malformed", "{what}: {r}");
        assert!(r.to_string().contains(phrase), "{what}: {r}");
    }
}

// ---------------------------------------------------------------------------------------------
// Key lifecycle.

#[test]
fn a_revoked_key_is_refused_for_every_batch_it_signed() {
    let mut fx = Fixture::new();
    let batch = fx.batch(17, sha256(b"16"), 100, 2);
    let revoked_at = T0 + time::Duration::days(1);
    assert!(fx.ring.revoke(NODE, &fx.key.key_id(), revoked_at));
    let r = refusal(fx.verify(&batch.to_bytes()));
    assert_eq!(
        r,
        Refusal::KeyRevoked {
            node_id: NODE.into(),
            batch_seq: 17,
            key_id: fx.key.key_id(),
            revoked_at
        }
    );
    assert_eq!(r.reason(), "key_revoked");
    let msg = r.to_string();
    assert!(msg.contains("batch 17 from prov-530000"), "{msg}");
    assert!(msg.contains(&fx.key.key_id()), "{msg}");
    assert!(msg.contains("revoked at 2025-06-02T08:00:00Z"), "{msg}");
    assert!(msg.contains("rotate its key"), "{msg}");

    // The node's other key still works.
    let rotated =
        SignedBatch::sign(NODE, 17, sha256(b"16"), entries(100, 2), T0, &fx.second_key).unwrap();
    fx.verify(&rotated.to_bytes()).unwrap();
}

#[test]
fn a_key_outside_its_validity_window_is_refused() {
    let mut fx = Fixture::new();
    let rotation = datetime!(2025-01-01 00:00:00 UTC);
    fx.ring.key_mut(NODE, &fx.key.key_id()).unwrap().valid_until = Some(rotation);
    fx.ring
        .key_mut(NODE, &fx.second_key.key_id())
        .unwrap()
        .valid_from = Some(rotation);

    let sign = |key: &SigningKey, at: OffsetDateTime| {
        SignedBatch::sign(NODE, 1, GENESIS_PREV_HASH, entries(1, 1), at, key)
            .unwrap()
            .to_bytes()
    };
    let before = rotation - time::Duration::seconds(1);

    // The old key until the rotation, the new one from it; the boundary belongs to the new key.
    fx.verify(&sign(&fx.key, before)).unwrap();
    fx.verify(&sign(&fx.second_key, rotation)).unwrap();

    let expired = refusal(fx.verify(&sign(&fx.key, rotation)));
    assert_eq!(expired.reason(), "key_not_valid");
    assert!(
        expired
            .to_string()
            .contains("valid until 2025-01-01T00:00:00Z"),
        "{expired}"
    );
    let early = refusal(fx.verify(&sign(&fx.second_key, before)));
    assert_eq!(early.reason(), "key_not_valid");
    assert!(matches!(
        early,
        Refusal::KeyNotValid { ref created_at, .. } if created_at == "2024-12-31T23:59:59Z"
    ));
}

#[test]
fn a_compromised_key_is_refused_from_its_compromise_on_and_trusted_before() {
    let mut fx = Fixture::new();
    let since = datetime!(2025-06-01 12:00:00 UTC);
    fx.ring
        .key_mut(NODE, &fx.key.key_id())
        .unwrap()
        .compromised_since = Some(since);
    let sign = |at: OffsetDateTime| {
        SignedBatch::sign(NODE, 1, GENESIS_PREV_HASH, entries(1, 1), at, &fx.key)
            .unwrap()
            .to_bytes()
    };
    // Before: still trusted (a rebuild from the feeds keeps this history).
    fx.verify(&sign(since - time::Duration::seconds(1)))
        .unwrap();
    // At and after: refused, saying since when and what to do.
    for at in [since, since + time::Duration::days(3)] {
        let r = refusal(fx.verify(&sign(at)));
        assert_eq!(r.reason(), "key_compromised");
        assert!(
            matches!(r, Refusal::KeyCompromised { compromised_since, .. } if compromised_since == since)
        );
        let msg = r.to_string();
        assert!(
            msg.contains("compromised since 2025-06-01T12:00:00Z"),
            "{msg}"
        );
        assert!(msg.contains("earlier ones stay accepted"), "{msg}");
        assert!(msg.contains("rix trust rotate"), "{msg}");
    }
    // A plain revocation still refuses everything, and is named as such.
    fx.ring.revoke(NODE, &fx.key.key_id(), since);
    assert_eq!(
        refusal(fx.verify(&sign(since - time::Duration::days(1)))).reason(),
        "key_revoked"
    );
}

#[test]
fn a_batch_dated_before_the_one_it_follows_is_backdated() {
    let fx = Fixture::new();
    let first = fx.batch(1, GENESIS_PREV_HASH, 1, 2);
    let pos = fx
        .verify_at(&first.to_bytes(), &ChainPosition::genesis())
        .unwrap()
        .next_position();
    assert_eq!(pos.last_created_at, Some(T0));
    let sign = |at: OffsetDateTime, key: &SigningKey| {
        SignedBatch::sign(NODE, 2, first.hash(), entries(3, 1), at, key)
            .unwrap()
            .to_bytes()
    };
    // Same instant, or later: in order.
    fx.verify_at(&sign(T0, &fx.key), &pos).unwrap();
    fx.verify_at(&sign(T0 + time::Duration::seconds(1), &fx.second_key), &pos)
        .unwrap();
    // A second earlier, by a key that is trusted at that time: refused all the same.
    let r = refusal(fx.verify_at(&sign(T0 - time::Duration::seconds(1), &fx.second_key), &pos));
    assert_eq!(r.reason(), "backdated");
    assert_eq!(
        r,
        Refusal::Backdated {
            node_id: NODE.into(),
            batch_seq: 2,
            created_at: "2025-06-01T07:59:59Z".into(),
            previous_created_at: T0,
        }
    );
    assert!(
        r.to_string()
            .contains("before the batch it follows (2025-06-01T08:00:00Z)")
    );
    // A receiver that does not know the last time (an old position) cannot judge it.
    let unknown = ChainPosition {
        last_created_at: None,
        ..pos
    };
    fx.verify_at(&sign(T0 - time::Duration::days(1), &fx.key), &unknown)
        .unwrap();
}

#[test]
fn a_batch_dated_beyond_the_receivers_clock_and_skew_is_future_dated() {
    let fx = Fixture::new();
    let now = T0;
    let skew = std::time::Duration::from_secs(300);
    let header = |at: OffsetDateTime| {
        SignedBatch::sign(NODE, 1, GENESIS_PREV_HASH, entries(1, 1), at, &fx.key)
            .unwrap()
            .header
    };
    check_not_future(&header(now), now, skew).unwrap();
    check_not_future(&header(now + time::Duration::seconds(300)), now, skew).unwrap();
    let r = check_not_future(&header(now + time::Duration::seconds(301)), now, skew).unwrap_err();
    assert_eq!(r.reason(), "future_dated");
    assert_eq!(r.node_id(), Some(NODE));
    assert_eq!(r.batch_seq(), Some(1));
    let msg = r.to_string();
    assert!(
        msg.contains("more than 300 s after the receiver's clock (2025-06-01T08:00:00Z)"),
        "{msg}"
    );
    assert!(msg.contains("Check the node's clock"), "{msg}");
}

#[test]
fn key_checks_come_before_the_signature_check() {
    // A revoked key with a damaged signature: the operator must learn about the revocation.
    let mut fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 2);
    fx.ring.revoke(NODE, &fx.key.key_id(), T0);
    let mut damaged = batch.clone();
    damaged.signature = batch.signature.replace(&batch.signature[..4], "AAAA");
    assert_eq!(
        refusal(fx.verify(&damaged.to_bytes())).reason(),
        "key_revoked"
    );
}

#[test]
fn a_trusted_key_record_round_trips_through_the_ring() {
    let fx = Fixture::new();
    let mut ring = MemoryKeyRing::new();
    let mut k = TrustedKey::new(fx.key.verifying_key().clone());
    k.valid_from = Some(T0);
    ring.add_key(NODE, k.clone());
    use rix_schema::batch::{KeyLookup, KeyRing};
    assert_eq!(ring.lookup(NODE, &fx.key.key_id()), KeyLookup::Found(k));
    assert_eq!(
        ring.lookup(NODE, &fx.second_key.key_id()),
        KeyLookup::UnknownKey
    );
    assert_eq!(
        ring.lookup(OTHER_NODE, &fx.key.key_id()),
        KeyLookup::UnknownNode
    );
    assert!(!ring.revoke(OTHER_NODE, &fx.key.key_id(), T0));
}

// ---------------------------------------------------------------------------------------------
// Inclusion proofs.

#[test]
fn every_entry_of_batches_of_1_to_17_entries_has_a_proof_that_verifies() {
    let fx = Fixture::new();
    for n in 1..=17u64 {
        let batch = fx.batch(1, GENESIS_PREV_HASH, 40, n);
        let verified = fx.verify(&batch.to_bytes()).unwrap();
        let root: [u8; 32] = hex::decode(&verified.header().merkle_root)
            .unwrap()
            .try_into()
            .unwrap();
        let from_batch = batch.inclusion_proofs();
        assert_eq!(from_batch.len() as u64, n);
        for (i, entry) in batch.entries.iter().enumerate() {
            let proof = verified.inclusion_proof(i).unwrap();
            assert_eq!(proof, from_batch[i]);
            assert_eq!(Some(&proof), batch.inclusion_proof(i).as_ref());
            assert_eq!(proof.leaf_index, i as u64);
            assert_eq!(proof.tree_size, n);

            let leaf = verified.canonical_entry(i).unwrap();
            assert_eq!(leaf, entry.canonical_bytes().as_slice());
            assert_eq!(verified.leaf_hash(i), Some(entry.leaf_hash()));
            assert!(merkle::verify_inclusion(leaf, &proof, &root));

            // The ministry's check: entry + proof + header + signature + public key.
            let stored: InclusionProof =
                serde_json::from_str(&serde_json::to_string(&proof).unwrap()).unwrap();
            verify_entry(
                entry,
                &stored,
                verified.header(),
                verified.signature(),
                fx.key.verifying_key(),
            )
            .unwrap();
        }
        assert!(verified.inclusion_proof(n as usize).is_none());
    }
}

#[test]
fn a_proof_does_not_vouch_for_a_modified_entry() {
    let fx = Fixture::new();
    let batch = fx.batch(1, GENESIS_PREV_HASH, 1, 9);
    let verified = fx.verify(&batch.to_bytes()).unwrap();
    let vk = fx.key.verifying_key();
    let (header, sig) = (verified.header(), verified.signature());
    for (i, entry) in verified.entries().iter().enumerate() {
        let proof = verified.inclusion_proof(i).unwrap();

        let mut changed = entry.clone();
        match &mut changed.record {
            Some(r) => r["trl"] = json!(9),
            None => changed.version += 1,
        }
        assert_eq!(
            verify_entry(&changed, &proof, header, sig, vk),
            Err(EntryProofError::NotIncluded)
        );
        let root: [u8; 32] = hex::decode(&header.merkle_root)
            .unwrap()
            .try_into()
            .unwrap();
        assert!(!merkle::verify_inclusion(
            &changed.canonical_bytes(),
            &proof,
            &root
        ));

        // Another entry's proof, or this proof under another seq, does not fit.
        let other = verified.inclusion_proof((i + 1) % 9).unwrap();
        assert_eq!(
            verify_entry(entry, &other, header, sig, vk),
            Err(EntryProofError::WrongPosition)
        );
        let mut moved = entry.clone();
        moved.seq = (moved.seq % 9) + 1;
        assert_eq!(
            verify_entry(&moved, &proof, header, sig, vk),
            Err(EntryProofError::WrongPosition)
        );

        // A header that is not the one signed, or another node's key, proves nothing.
        let mut forged = header.clone();
        forged.merkle_root = hex::encode(sha256(b"x"));
        assert_eq!(
            verify_entry(entry, &proof, &forged, sig, vk),
            Err(EntryProofError::BadSignature)
        );
        assert_eq!(
            verify_entry(
                entry,
                &proof,
                header,
                sig,
                fx.other_node_key.verifying_key()
            ),
            Err(EntryProofError::BadSignature)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Messages.

#[test]
fn every_refusal_message_names_the_batch_and_what_to_do() {
    let fx = Fixture::new();
    let batch = fx.batch(3, sha256(b"2"), 7, 4);
    let mut dropped = batch.clone();
    dropped.entries.remove(1);
    let mut swapped = batch.clone();
    swapped.entries.swap(0, 1);
    let mut changed = batch.clone();
    changed.entries[0].version = 9;
    let refusals = [
        refusal(fx.verify(&dropped.to_bytes())),
        refusal(fx.verify(&swapped.to_bytes())),
        refusal(fx.verify(&changed.to_bytes())),
        refusal(fx.verify(&tamper(&batch, |v| v["header"]["batch_seq"] = json!(3 + 1)))),
    ];
    for r in refusals {
        let msg = r.to_string();
        assert!(msg.contains("prov-530000"), "{msg}");
        assert!(msg.contains("batch"), "{msg}");
        assert!(msg.contains("; "), "no advice in {msg}");
        assert!(Refusal::REASONS.contains(&r.reason()));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

// ---------------------------------------------------------------------------------------------
// Format 2: strict parsing and selective disclosure.

#[test]
fn a_repeated_key_is_malformed_and_named() {
    let f = Fixture::new();
    let b = f.batch(1, GENESIS_PREV_HASH, 1, 3);
    let text = String::from_utf8(b.to_bytes()).unwrap();
    // The last one would win in serde, and it names another node.
    let forged = text.replacen("\"header\":{", "\"header\":{\"node_id\":\"most\",", 1);
    assert_ne!(forged, text);
    match refusal(f.verify(forged.as_bytes())) {
        Refusal::Malformed { detail } => {
            assert!(detail.contains("duplicate field `node_id`"), "{detail}")
        }
        other => panic!("{other}"),
    }
    // Inside a record: the secrecy level given twice.
    let forged = text.replacen(
        "\"secrecy\":{",
        "\"secrecy\":{\"level\":\"secret\"},\"secrecy\":{",
        1,
    );
    assert_ne!(forged, text);
    match refusal(f.verify(forged.as_bytes())) {
        Refusal::Malformed { detail } => {
            assert!(detail.contains("repeated key at /secrecy"), "{detail}")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn every_hidden_value_travels_sealed_and_its_disclosure_must_match() {
    let f = Fixture::new();
    let b = f.batch(1, GENESIS_PREV_HASH, 1, 4);
    assert!(!b.disclosures.is_empty());
    let price = b.entries[0].record.as_ref().unwrap()["transfer"]["price"].clone();
    assert!(
        price.get("_sd").is_some(),
        "the price is a placeholder: {price}"
    );
    let v = f.verify(&b.to_bytes()).unwrap();
    assert_eq!(v.record(0).unwrap()["transfer"]["price"], 101);

    // Altered value: its digest no longer matches any placeholder.
    let altered = tamper(&b, |v| {
        let d = v["disclosures"][0]
            .as_str()
            .unwrap()
            .replace(",101]", ",9999]");
        v["disclosures"][0] = json!(d);
    });
    assert_eq!(refusal(f.verify(&altered)).reason(), "bad_disclosure");
    // Dropped: a placeholder without its disclosure.
    let dropped = tamper(&b, |v| {
        v["disclosures"].as_array_mut().unwrap().remove(0);
    });
    assert_eq!(refusal(f.verify(&dropped)).reason(), "bad_disclosure");
    // Extra: a disclosure that belongs to nothing.
    let extra = tamper(&b, |v| {
        v["disclosures"]
            .as_array_mut()
            .unwrap()
            .push(json!(r#"["AAAAAAAAAAAAAAAAAAAAAA","/title","伪造"]"#));
    });
    assert_eq!(refusal(f.verify(&extra)).reason(), "bad_disclosure");
    // The value put back in clear in the entry: the entry is no longer the signed leaf.
    let in_clear = tamper(&b, |v| {
        v["entries"][0]["record"]["transfer"]["price"] = json!(101);
        v["disclosures"].as_array_mut().unwrap().remove(0);
    });
    assert_eq!(refusal(f.verify(&in_clear)).reason(), "merkle_mismatch");
    // No salt: not a format-2 entry.
    let unsalted = tamper(&b, |v| {
        v["entries"][0].as_object_mut().unwrap().remove("salt");
    });
    assert_eq!(refusal(f.verify(&unsalted)).reason(), "malformed");
    // Format 1 headers are refused with what to do.
    let old = tamper(&b, |v| v["header"]["format"] = json!(1));
    match refusal(f.verify(&old)) {
        Refusal::Malformed { detail } => assert!(detail.contains("format"), "{detail}"),
        other => panic!("{other}"),
    }
}
