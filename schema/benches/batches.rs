//! Signing and verifying 256-entry batches: the per-record cost of the wire format, against the
//! gateway's bar of 10,000 records/s end to end on two cores.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rix_schema::RecordKind;
use rix_schema::batch::{
    BatchLimits, ChainPosition, Entry, GENESIS_PREV_HASH, MemoryKeyRing, SignedBatch, verify_batch,
};
use rix_schema::signing::SigningKey;
use serde_json::{Value, json};
use std::hint::black_box;
use time::macros::datetime;

/// The allocator of the `rix` binary (ops/src/main.rs), so that the figures are those of the
/// gateway and the node as they run. (With glibc's malloc the same code is ~12 % slower: a
/// record is parsed into, and dropped as, hundreds of small allocations.)
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENTRIES: u64 = 256;
const NODE: &str = "prov-530000";

/// A record of about the size and shape of a real achievement registration (~1.5 KB).
fn record(seq: u64) -> Value {
    json!({
        "title": format!("基于多源遥感的高原湖泊水质智能监测关键技术研究与应用（{seq}）"),
        "abstract": "针对高原湖泊水质监测站点稀疏、时效性差的问题，融合卫星遥感、无人机与地面传感网数据，\
                     构建了水质参数反演模型和预警平台，在滇池、洱海等湖泊开展了示范应用，\
                     监测频次由每月一次提高到每日一次，预警准确率达到百分之九十以上。",
        "keywords": ["遥感", "水质监测", "高原湖泊", "预警"],
        "category": "applied_technology",
        "classification": ["X832", "TP79"],
        "innovation": "original",
        "stage": "pilot",
        "trl": 6 + (seq % 3),
        "level": "domestic_leading",
        "forms": ["paper", "patent", "software"],
        "period": {"start": "2019-01-01", "end": "2022-12-31"},
        "institutions": [
            {"name": "云南大学", "uscc": "12530000431200431L", "region": "530100"},
            {"name": "云南省生态环境科学研究院", "uscc": "12530000431201587H", "region": "530100"}
        ],
        "completers": [
            {"name": "王明", "institution": 0, "title": "教授"},
            {"name": "李华", "institution": 1, "title": "研究员"},
            {"name": "赵强", "institution": 0}
        ],
        "ip": [{"type": "invention_patent", "number": format!("ZL2021{seq:08}.X")}],
        "funding": [{"program": "国家重点研发计划", "project_no": format!("2019YFC{seq:07}")}],
        "transfer": {"intention": "license", "status": "negotiating"},
        "benefits": {"revenue_wan_yuan": 1520.5, "users": 14},
        "contact": {"name": "王明", "phone": "0871-65031234", "email": "wangm@example.cn"},
        "secrecy": {"level": "public"},
        "confidential_fields": ["/benefits/revenue_wan_yuan"]
    })
}

fn entries() -> Vec<Entry> {
    (1..=ENTRIES)
        .map(|seq| {
            Entry::upsert(
                seq,
                RecordKind::Achievement,
                format!("A-{seq:08}"),
                1,
                record(seq),
            )
        })
        .collect()
}

fn batches(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[7; 32]).unwrap();
    let created_at = datetime!(2025-06-01 08:00:00 UTC);
    let entries = entries();

    let mut group = c.benchmark_group("batch_256");
    group.throughput(Throughput::Elements(ENTRIES));

    group.bench_function("sign", |b| {
        b.iter_batched(
            || entries.clone(),
            |entries| {
                SignedBatch::sign(NODE, 1, GENESIS_PREV_HASH, entries, created_at, &key).unwrap()
            },
            BatchSize::LargeInput,
        )
    });

    let bytes = SignedBatch::sign(NODE, 1, GENESIS_PREV_HASH, entries, created_at, &key)
        .unwrap()
        .to_bytes();
    eprintln!(
        "batch of {ENTRIES} entries: {} bytes ({} bytes/entry)",
        bytes.len(),
        bytes.len() as u64 / ENTRIES
    );
    let mut ring = MemoryKeyRing::new();
    ring.trust(NODE, key.verifying_key().clone());
    let limits = BatchLimits::default();
    let genesis = ChainPosition::genesis();
    group.bench_function("verify_batch", |b| {
        b.iter(|| verify_batch(black_box(&bytes), &limits, &ring, Some(&genesis)).unwrap())
    });

    group.finish();
}

criterion_group!(benches, batches);
criterion_main!(benches);
