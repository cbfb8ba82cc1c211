//! Per-record cost of what the gateway does to every record it ingests: JSON Schema + code-rule
//! validation, RFC 8785 canonicalization and SHA-256 hashing.
//!
//! The bar (issue 2): validate + canonicalize + hash ≥ 20,000 records/s on one core, so that a
//! 2-core gateway can ingest ≥ 10,000 records/s end to end. Run:
//! `cargo bench -p rix-schema --bench records`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rix_schema::canonical::{canonical_value, sha256};
use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_schema::{RecordKind, validate_record};
use serde_json::Value;
use std::hint::black_box;

const RECORDS: usize = 1_000;

fn sample_records() -> Vec<(RecordKind, Value)> {
    let generator = SampleGenerator::new(SampleConfig::default());
    (0..RECORDS as u64)
        .map(|i| {
            // Three achievements to one project, as in a real registration mix.
            if i % 4 == 3 {
                let p = generator.project(i);
                (RecordKind::FundedProject, serde_json::to_value(p).unwrap())
            } else {
                let a = generator.achievement(i);
                (RecordKind::Achievement, serde_json::to_value(a).unwrap())
            }
        })
        .collect()
}

fn per_record(c: &mut Criterion) {
    let records = sample_records();
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("validate", |b| {
        b.iter(|| {
            for (kind, record) in &records {
                black_box(validate_record(*kind, record)).unwrap();
            }
        })
    });
    group.bench_function("canonicalize+sha256", |b| {
        b.iter(|| {
            for (_, record) in &records {
                black_box(sha256(&canonical_value(record)));
            }
        })
    });
    group.bench_function("validate+canonicalize+sha256", |b| {
        b.iter(|| {
            for (kind, record) in &records {
                validate_record(*kind, record).unwrap();
                black_box(sha256(&canonical_value(record)));
            }
        })
    });
    // What ingest really starts from: bytes off the wire.
    let bytes: Vec<(RecordKind, Vec<u8>)> = records
        .iter()
        .map(|(k, r)| (*k, serde_json::to_vec(r).unwrap()))
        .collect();
    group.bench_function("parse+validate+canonicalize+sha256", |b| {
        b.iter_batched(
            || (),
            |()| {
                for (kind, raw) in &bytes {
                    let record: Value = serde_json::from_slice(raw).unwrap();
                    validate_record(*kind, &record).unwrap();
                    black_box(sha256(&canonical_value(&record)));
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The strict parser every outside document goes through (`rix_schema::strict_json`) against
/// plain `serde_json`, on the same bytes: the price of refusing repeated keys and deep nesting.
fn strict_parse(c: &mut Criterion) {
    let bytes: Vec<Vec<u8>> = sample_records()
        .iter()
        .map(|(_, r)| serde_json::to_vec(r).unwrap())
        .collect();
    let mut group = c.benchmark_group("strict_json");
    group.throughput(Throughput::Bytes(
        bytes.iter().map(|b| b.len() as u64).sum(),
    ));
    group.bench_function("serde_json::from_slice", |b| {
        b.iter(|| {
            for raw in &bytes {
                black_box(serde_json::from_slice::<Value>(raw).unwrap());
            }
        })
    });
    // The same parser as strict_json uses underneath (whole-text UTF-8 check, then `from_str`),
    // without the duplicate and depth checks: what those checks cost.
    group.bench_function("serde_json::from_str(from_utf8)", |b| {
        b.iter(|| {
            for raw in &bytes {
                let text = std::str::from_utf8(raw).unwrap();
                black_box(serde_json::from_str::<Value>(text).unwrap());
            }
        })
    });
    group.bench_function("strict_json::parse_value", |b| {
        b.iter(|| {
            for raw in &bytes {
                black_box(rix_schema::strict_json::parse_value(raw).unwrap());
            }
        })
    });
    group.bench_function("strict_json::check", |b| {
        b.iter(|| {
            for raw in &bytes {
                rix_schema::strict_json::check(raw).unwrap();
            }
        })
    });
    group.bench_function("strict_json::from_slice::<Value>", |b| {
        b.iter(|| {
            for raw in &bytes {
                black_box(rix_schema::strict_json::from_slice::<Value>(raw).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, per_record, strict_parse);
criterion_main!(benches);
