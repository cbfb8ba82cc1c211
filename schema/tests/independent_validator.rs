//! The schema files checked by an independent implementation: Python's `jsonschema` package
//! (installed into a venv by `ops/install-deps.sh`; `RIX_PYTHON` names its interpreter).
//!
//! It must agree with us that every file is a valid draft 2020-12 schema, that the fixtures,
//! thousands of generated samples and a real signed batch are valid, and that documents our
//! validator refuses for schema reasons are invalid there too.

use rix_schema::batch::{Entry, GENESIS_PREV_HASH, SignedBatch};
use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_schema::signing::SigningKey;
use rix_schema::{RecordKind, schemas, validate_record};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

fn python() -> String {
    std::env::var("RIX_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn case(schema: &str, document: Value, valid: bool) -> String {
    json!({"schema": schema, "document": document, "valid": valid}).to_string()
}

#[test]
fn python_jsonschema_agrees_with_rix() {
    let mut lines = Vec::new();
    let generator = SampleGenerator::new(SampleConfig::default());
    for i in 0..1_500 {
        let a = serde_json::to_value(generator.achievement(i)).unwrap();
        let p = serde_json::to_value(generator.project(i)).unwrap();
        assert_eq!(validate_record(RecordKind::Achievement, &a), Ok(()));
        assert_eq!(validate_record(RecordKind::FundedProject, &p), Ok(()));
        lines.push(case("achievement", a, true));
        lines.push(case("funded_project", p, true));
    }
    let fixture: Value = serde_json::from_str(include_str!("fixtures/achievement.json")).unwrap();
    lines.push(case("achievement", fixture.clone(), true));
    // Schema-level refusals must be refusals there too (code-list rules are ours alone).
    for (pointer, bad) in [
        ("/trl", json!(10)),
        ("/category", json!("应用研究")),
        ("/secrecy/level", json!("classified")),
        ("/institutions/0/uscc", json!("short")),
        ("/colour", json!("蓝色")),
    ] {
        let mut doc = fixture.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent).unwrap()[key] = bad;
        assert!(
            validate_record(RecordKind::Achievement, &doc).is_err(),
            "{pointer}"
        );
        lines.push(case("achievement", doc, false));
    }
    // A real signed batch is a valid envelope.
    let key = SigningKey::from_seed(&[7; 32]).unwrap();
    let entries = (1..=5)
        .map(|seq| {
            let record = serde_json::to_value(generator.achievement(seq)).unwrap();
            Entry::upsert(seq, RecordKind::Achievement, format!("A{seq}"), 1, record)
        })
        .chain([Entry::withdraw(6, RecordKind::Achievement, "A1", 2)])
        .collect();
    let created_at = time::macros::datetime!(2026-11-24 08:00 UTC);
    let batch = SignedBatch::sign(
        "prov-530000",
        1,
        GENESIS_PREV_HASH,
        entries,
        created_at,
        &key,
    )
    .unwrap();
    let batch_json: Value = serde_json::from_slice(&batch.to_bytes()).unwrap();
    lines.push(case("batch", batch_json, true));

    let mut cases = tempfile::NamedTempFile::new().unwrap();
    cases.write_all(lines.join("\n").as_bytes()).unwrap();
    let schema_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
    assert_eq!(
        std::fs::read_dir(&schema_dir).unwrap().count(),
        schemas::ALL.len(),
        "every shipped schema file is checked"
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/independent_validator.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(&schema_dir)
        .arg(cases.path())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run ops/install-deps.sh and set RIX_PYTHON",
                python()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python jsonschema disagrees (is the venv from ops/install-deps.sh in RIX_PYTHON?):\n{stdout}\n{stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["checked"], lines.len());
    assert_eq!(summary["disagreements"], 0);
    assert_eq!(
        summary["schemas"].as_array().unwrap().len(),
        schemas::ALL.len()
    );
}
