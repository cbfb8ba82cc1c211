//! The worked example of `schema/VERIFYING.md`, computed by the code it documents: if the format
//! changes, this test fails until the page is brought up to date with it.

use rix_schema::RecordKind;
use rix_schema::batch::{
    BatchLimits, Entry, GENESIS_PREV_HASH, MemoryKeyRing, SignedBatch, verify_batch,
};
use rix_schema::disclosure;
use rix_schema::signing::SigningKey;
use serde_json::{Value, json};

const PAGE: &str = include_str!("../VERIFYING.md");

fn example() -> SignedBatch {
    let key = SigningKey::from_seed(&[7; 32]).unwrap();
    let record = json!({
        "title": "高安全固态锂电池",
        "category": "应用技术",
        "secrecy": {"level": "public"},
        "transfer": {"modes": ["许可"], "price": 300},
        "confidential_fields": []
    });
    let mut n = 0u8;
    SignedBatch::sign_with_salts(
        "prov-530000",
        1,
        GENESIS_PREV_HASH,
        vec![
            Entry::upsert(1, RecordKind::Achievement, "A1", 1, record),
            Entry::withdraw(2, RecordKind::Achievement, "A0", 3),
        ],
        time::macros::datetime!(2026-11-29 08:00:00 UTC),
        &key,
        &mut || {
            n += 1;
            [n; 16]
        },
    )
    .unwrap()
}

#[test]
fn the_worked_example_of_verifying_md_is_what_the_code_computes() {
    let batch = example();
    let entry = String::from_utf8(batch.entries[0].canonical_bytes()).unwrap();
    let header = String::from_utf8(batch.header.canonical_bytes()).unwrap();
    let disclosure = &batch.disclosures[0];
    let digest = disclosure::digest(disclosure);
    let proof = batch.inclusion_proof(0).unwrap();
    let values = [
        ("disclosure", disclosure.clone()),
        ("digest", digest),
        ("entry", entry),
        ("header", header),
        ("signature", batch.signature.clone()),
        ("merkle_root", batch.header.merkle_root.clone()),
        ("proof path", proof.path.join(",")),
        (
            "public key",
            SigningKey::from_seed(&[7; 32])
                .unwrap()
                .verifying_key()
                .to_base64(),
        ),
    ];
    let mut missing = Vec::new();
    for (name, value) in &values {
        if !PAGE.contains(value.as_str()) {
            missing.push(format!("{name}: {value}"));
        }
    }
    assert!(
        missing.is_empty(),
        "VERIFYING.md is out of date:\n{}",
        missing.join("\n")
    );

    // And the example verifies.
    let mut ring = MemoryKeyRing::new();
    ring.trust(
        "prov-530000",
        SigningKey::from_seed(&[7; 32])
            .unwrap()
            .verifying_key()
            .clone(),
    );
    let v = verify_batch(&batch.to_bytes(), &BatchLimits::default(), &ring, None).unwrap();
    assert_eq!(v.record(0).unwrap()["transfer"]["price"], 300);
    let sealed: &Value = batch.entries[0].record.as_ref().unwrap();
    assert_eq!(
        disclosure::disclosed_view(sealed, &[]).unwrap()["transfer"],
        json!({"modes": ["许可"]})
    );
}
