//! Interoperability with the `openssl` command-line tool: operators make and inspect keys with
//! it, and a ministry must be able to check a batch signature without any rix code.

use std::path::Path;
use std::process::{Command, Output};

use rix_schema::RecordKind;
use rix_schema::batch::{
    BatchLimits, Entry, GENESIS_PREV_HASH, MemoryKeyRing, SignedBatch, verify_batch,
};
use rix_schema::signing::{SigningKey, VerifyingKey};
use serde_json::json;
use time::macros::datetime;

fn openssl(args: &[&str], dir: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command-line tool is installed")
}

fn ok(out: &Output) -> bool {
    out.status.success()
}

fn sample_batch(key: &SigningKey) -> SignedBatch {
    let entries = vec![
        Entry::upsert(
            1,
            RecordKind::Achievement,
            "A-1",
            1,
            json!({"title": "高效光伏组件封装工艺", "trl": 6, "keywords": ["光伏", "封装"]}),
        ),
        Entry::withdraw(2, RecordKind::FundedProject, "P-7", 3),
    ];
    SignedBatch::sign(
        "prov-210000",
        1,
        GENESIS_PREV_HASH,
        entries,
        datetime!(2025-06-01 08:00:00 UTC),
        key,
    )
    .unwrap()
}

fn raw_signature(batch: &SignedBatch) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(&batch.signature)
        .unwrap()
}

#[test]
fn a_rix_signature_over_a_canonical_header_verifies_with_openssl_pkeyutl() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let batch = sample_batch(&key);
    std::fs::write(
        dir.path().join("pub.pem"),
        key.verifying_key().to_spki_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("msg"), batch.header.canonical_bytes()).unwrap();
    std::fs::write(dir.path().join("sig"), raw_signature(&batch)).unwrap();

    let verify = [
        "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg", "-sigfile",
        "sig",
    ];
    let out = openssl(&verify, dir.path());
    assert!(ok(&out), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"));

    // The signature covers the canonical header, not some other spelling of it.
    let pretty = serde_json::to_vec_pretty(&batch.header).unwrap();
    std::fs::write(dir.path().join("msg"), pretty).unwrap();
    let out = openssl(&verify, dir.path());
    assert!(!ok(&out), "openssl accepted the signature over other bytes");
}

#[test]
fn a_key_and_signature_made_by_openssl_verify_in_rix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(ok(&openssl(
        &["genpkey", "-algorithm", "ed25519", "-out", "key.pem"],
        d
    )));
    assert!(ok(&openssl(
        &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"],
        d
    )));

    let key = SigningKey::from_pkcs8_pem(&std::fs::read(d.join("key.pem")).unwrap()).unwrap();
    let public = VerifyingKey::from_spki_pem(&std::fs::read(d.join("pub.pem")).unwrap()).unwrap();
    assert_eq!(key.verifying_key(), &public);

    // openssl signs the canonical header of a batch built with that key…
    let mut batch = sample_batch(&key);
    std::fs::write(d.join("msg"), batch.header.canonical_bytes()).unwrap();
    let out = openssl(
        &[
            "pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-in", "msg", "-out", "sig",
        ],
        d,
    );
    assert!(ok(&out), "{}", String::from_utf8_lossy(&out.stderr));
    let sig = std::fs::read(d.join("sig")).unwrap();
    assert_eq!(sig.len(), 64);

    // …rix verifies it, and (Ed25519 being deterministic) made the very same signature.
    assert!(public.verify(&batch.header.canonical_bytes(), &sig));
    assert!(!public.verify(b"something else", &sig));
    assert_eq!(sig, raw_signature(&batch));

    // A batch carrying openssl's signature passes the gateway's check.
    use base64::Engine as _;
    batch.signature = base64::engine::general_purpose::STANDARD.encode(&sig);
    let mut ring = MemoryKeyRing::new();
    ring.trust("prov-210000", public);
    let verified = verify_batch(&batch.to_bytes(), &BatchLimits::default(), &ring, None).unwrap();
    assert_eq!(verified.entries().len(), 2);
}

#[test]
fn rix_key_files_are_readable_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = SigningKey::generate().unwrap();
    std::fs::write(d.join("key.pem"), key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let spki = key.verifying_key().to_spki_pem().unwrap();
    std::fs::write(d.join("pub.pem"), &spki).unwrap();

    let out = openssl(&["pkey", "-in", "key.pem", "-noout"], d);
    assert!(ok(&out), "{}", String::from_utf8_lossy(&out.stderr));
    let out = openssl(&["pkey", "-in", "key.pem", "-noout", "-text"], d);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ED25519 Private-Key"));
    let out = openssl(&["pkey", "-pubin", "-in", "pub.pem", "-noout"], d);
    assert!(ok(&out), "{}", String::from_utf8_lossy(&out.stderr));

    // openssl derives the same public key file rix wrote, and the same raw key bytes.
    let out = openssl(&["pkey", "-in", "key.pem", "-pubout"], d);
    assert!(ok(&out));
    assert_eq!(out.stdout, spki);
    let out = openssl(&["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"], d);
    assert!(ok(&out));
    assert_eq!(
        out.stdout.len(),
        44,
        "Ed25519 SPKI DER is a 12-byte prefix and the key"
    );
    assert_eq!(&out.stdout[12..], key.verifying_key().to_raw());

    // And openssl signs with rix's key file exactly as rix does.
    std::fs::write(d.join("msg"), b"rix interop").unwrap();
    let out = openssl(
        &[
            "pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-in", "msg", "-out", "sig",
        ],
        d,
    );
    assert!(ok(&out), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read(d.join("sig")).unwrap(),
        key.sign(b"rix interop")
    );
}
