//! SCRATCH (not committed): 100k build time and query latency.
use rix_gateway::db::Db;
use rix_gateway::ingest::{Ingest, IngestMetrics, Outcome, Transport};
use rix_gateway::search::{SearchIndex, SearchQuery, Sort};
use rix_gateway::trust::{self, TrustStore};
use rix_schema::RecordKind;
use rix_schema::batch::{BatchLimits, Entry, GENESIS_PREV_HASH, SignedBatch};
use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_schema::sensitivity::Entitlements;
use rix_schema::signing::SigningKey;
use std::time::Instant;

#[test]
fn scratch_100k() {
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::path::PathBuf::from("/var/tmp/rix-search-scratch/run");
    let reuse = dir.join("c.db").exists() && std::env::var("FRESH").is_err();
    if !reuse {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(dir.join("index"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = Db::open(dir.join("c.db").to_str().unwrap(), 4).unwrap();
    let ingest = Ingest::new(
        db.clone(),
        TrustStore::new(db.clone()).unwrap(),
        BatchLimits::default(),
        IngestMetrics::new(&prometheus::Registry::new()),
    );
    let key = SigningKey::generate().unwrap();
    if !reuse {
        trust::add(
            &db,
            "prov-530000",
            None,
            None,
            key.verifying_key(),
            None,
            None,
        )
        .unwrap();
    }
    let g = SampleGenerator::new(SampleConfig::default());
    let t = Instant::now();
    let (mut seq, mut bs, mut prev) = (1u64, 1u64, GENESIS_PREV_HASH);
    let mut i = if reuse { n } else { 0 };
    while i < n {
        let entries: Vec<Entry> = (i..(i + 5000).min(n))
            .map(|j| {
                let e = Entry::upsert(
                    seq,
                    RecordKind::Achievement,
                    format!("a{j}"),
                    1,
                    serde_json::to_value(g.achievement(j)).unwrap(),
                );
                seq += 1;
                e
            })
            .collect();
        i += entries.len() as u64;
        let b = SignedBatch::sign(
            "prov-530000",
            bs,
            prev,
            entries,
            time::OffsetDateTime::now_utc(),
            &key,
        )
        .unwrap();
        bs += 1;
        prev = b.hash();
        assert!(matches!(
            ingest.ingest(&b.to_bytes(), Transport::Amqp).unwrap(),
            Outcome::Applied { .. }
        ));
    }
    if !reuse {
        eprintln!("ingest {n}: {:?}", t.elapsed());
    }
    let index = SearchIndex::open_or_create(&dir.join("index")).unwrap();
    let t = Instant::now();
    let r = index.sync(&db).unwrap();
    eprintln!(
        "sync (index build) {:?}: {:?}, docs {}",
        r,
        t.elapsed(),
        index.num_docs()
    );
    let t = Instant::now();
    let r = index.rebuild(&db).unwrap();
    eprintln!("rebuild {:?}: {:?}", r, t.elapsed());
    let du = std::process::Command::new("du")
        .arg("-sh")
        .arg(dir.join("index"))
        .output()
        .unwrap();
    eprintln!("index size {}", String::from_utf8_lossy(&du.stdout));
    let internal = Entitlements {
        internal: true,
        commercial: false,
        personal: false,
    };
    let qs: Vec<(&str, SearchQuery)> = vec![
        (
            "电池",
            SearchQuery {
                q: Some("电池".into()),
                ..Default::default()
            },
        ),
        (
            "芯片",
            SearchQuery {
                q: Some("芯片".into()),
                ..Default::default()
            },
        ),
        (
            "锂离子电池",
            SearchQuery {
                q: Some("锂离子电池".into()),
                ..Default::default()
            },
        ),
        (
            "5G 通信",
            SearchQuery {
                q: Some("5G 通信".into()),
                ..Default::default()
            },
        ),
        (
            "疫苗 region",
            SearchQuery {
                q: Some("疫苗".into()),
                region: Some("530000".into()),
                ..Default::default()
            },
        ),
        (
            "技术 (broad)",
            SearchQuery {
                q: Some("技术".into()),
                ..Default::default()
            },
        ),
        (
            "技术 date",
            SearchQuery {
                q: Some("技术".into()),
                sort: Sort::Date,
                ..Default::default()
            },
        ),
        (
            "no q, field",
            SearchQuery {
                field: Some("新能源与节能".into()),
                ..Default::default()
            },
        ),
        ("no q (all)", SearchQuery::default()),
        (
            "电 (1 char)",
            SearchQuery {
                q: Some("电".into()),
                ..Default::default()
            },
        ),
    ];
    for (name, q) in &qs {
        for (en, e) in [("public", Entitlements::PUBLIC), ("internal", internal)] {
            let mut times = Vec::new();
            let mut total = 0;
            for _ in 0..201 {
                let t = Instant::now();
                let p = index.search(q, e).unwrap();
                times.push(t.elapsed());
                total = p.total;
            }
            times.sort();
            eprintln!(
                "{name:>14} {en:>8}: total {total:>6}  p50 {:>9.3?}  p90 {:>9.3?}",
                times[100], times[180]
            );
        }
    }
    let mut q = SearchQuery {
        q: Some("技术".into()),
        limit: 100,
        ..Default::default()
    };
    for _ in 0..20 {
        let p = index.search(&q, internal).unwrap();
        q.cursor = p.next_cursor;
    }
    let t = Instant::now();
    for _ in 0..20 {
        index.search(&q, internal).unwrap();
    }
    eprintln!("page 21 of 技术 limit 100: {:?} each", t.elapsed() / 20);
}
