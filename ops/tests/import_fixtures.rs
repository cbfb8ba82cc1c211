//! The fixture generator against the mappings alone (no node): every generated record comes
//! back from its file exactly as the fixture says the layout carries it, every broken row is
//! refused by the mapping where the fixture says (or passes it, when only the node can refuse
//! it), and `rix import --dry-run` (the library call) counts and reports the same.

use std::collections::BTreeMap;

use rix_adapters::mapping;
use rix_adapters::source::{self, SourceOptions};
use rix_ops::import::fixtures::{self, FixtureFile, FixtureSpec, Stage};
use rix_ops::import::{self, ImportOptions};
use rix_schema::canonical::canonical_value;
use serde_json::Value;

type Key = (Option<String>, u64);
/// Mapped records by row: the record, its 批准登记号 and its 登记日期.
type Records = BTreeMap<Key, (Value, Option<String>, Option<String>)>;
/// Refused rows: (column, pointer) of each error.
type Refusals = BTreeMap<Key, Vec<(Option<String>, String)>>;

/// Maps a fixture file with its shipped mapping: the records and the refusals by row.
fn map_file(f: &FixtureFile) -> (Records, Refusals) {
    let m = mapping::shipped(f.mapping).unwrap().unwrap();
    let options: SourceOptions = match m.source() {
        Some(t) => toml::Value::Table(t.clone()).try_into().unwrap(),
        None => SourceOptions::default(),
    };
    let mut mapper = m.mapper();
    let mut records = BTreeMap::new();
    let mut refusals = BTreeMap::new();
    for row in source::open(&f.path, &options).unwrap() {
        let row = row.unwrap();
        let key = (row.origin.sheet.clone(), row.origin.row);
        match mapper.map(&row) {
            None => {}
            Some(Ok(r)) => {
                records.insert(key, (r.record, r.registration_no, r.registration_date));
            }
            Some(Err(errors)) => {
                refusals.insert(
                    key,
                    errors.into_iter().map(|e| (e.column, e.pointer)).collect(),
                );
            }
        }
    }
    (records, refusals)
}

fn canonical(v: &Value) -> String {
    String::from_utf8(canonical_value(v)).unwrap()
}

#[test]
fn every_generated_record_comes_back_and_every_broken_row_is_refused_where_it_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::write_all(dir.path(), &FixtureSpec::default()).unwrap();
    assert_eq!(files.len(), 3);
    for f in &files {
        let (records, refusals) = map_file(f);
        for e in &f.records {
            let key = (e.sheet.clone(), e.row);
            let Some((got, number, date)) = records.get(&key) else {
                panic!(
                    "{} {key:?}: no record; refused with {:?}",
                    f.path.display(),
                    refusals.get(&key)
                );
            };
            assert_eq!(
                canonical(got),
                canonical(&e.record),
                "{} {key:?}: the record differs",
                f.path.display()
            );
            assert_eq!(number, &e.registration_no, "{} {key:?}", f.path.display());
            // A historical record's 登记日期 travels beside it, as its number does.
            assert_eq!(date, &e.registration_date, "{} {key:?}", f.path.display());
        }
        let mut expected_refused = 0;
        for e in &f.refusals {
            let key = (e.sheet.clone(), e.row);
            match e.stage() {
                Stage::Mapping => {
                    expected_refused += 1;
                    let got = refusals.get(&key).unwrap_or_else(|| {
                        panic!(
                            "{} {key:?} ({:?}) was not refused",
                            f.path.display(),
                            e.breakage
                        )
                    });
                    assert_eq!(
                        got,
                        &vec![(e.column.clone(), e.pointer.clone())],
                        "{} {key:?} ({:?})",
                        f.path.display(),
                        e.breakage
                    );
                }
                Stage::Node => assert!(
                    records.contains_key(&key),
                    "{} {key:?}: only the node refuses {:?}",
                    f.path.display(),
                    e.breakage
                ),
            }
        }
        assert_eq!(
            refusals.len(),
            expected_refused,
            "{}: {refusals:#?}",
            f.path.display()
        );
        let node_stage = f
            .refusals
            .iter()
            .filter(|r| r.stage() == Stage::Node)
            .count();
        assert_eq!(
            records.len(),
            f.records.len() + node_stage,
            "{}",
            f.path.display()
        );
    }
}

#[test]
fn a_dry_run_counts_what_the_fixtures_hold_and_reports_each_broken_row() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::write_all(dir.path(), &FixtureSpec::default()).unwrap();
    for f in &files {
        let prefix = dir.path().join(format!("{}.errors", f.mapping));
        let options = ImportOptions {
            mapping: f.mapping.to_owned(),
            inputs: vec![f.path.clone()],
            dry_run: true,
            rows: 3,
            errors: Some(prefix.clone()),
            ..ImportOptions::default()
        };
        let mut out = Vec::new();
        let summary = import::run(&options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let refused_by_mapping = f
            .refusals
            .iter()
            .filter(|r| r.stage() == Stage::Mapping)
            .count() as u64;
        assert_eq!(summary.total.refused_mapping, refused_by_mapping, "{text}");
        assert_eq!(
            summary.total.mapped,
            (f.data_rows() as u64) - refused_by_mapping,
            "{text}"
        );
        assert_eq!(
            summary.total.classified,
            f.records.iter().filter(|r| r.classified).count() as u64,
            "{text}"
        );
        assert_eq!(summary.exit_code(), 2, "{text}");
        assert!(text.contains("→"), "the side-by-side view: {text}");
        // The JSON Lines report: one line per mapping refusal, with its row, column, pointer.
        let report = std::fs::read_to_string(prefix.with_extension("errors.jsonl")).unwrap();
        let mut lines: Vec<(Option<String>, u64, Option<String>, String)> = report
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["sheet"].as_str().map(str::to_owned),
                    v["row"].as_u64().unwrap(),
                    v["column"].as_str().map(str::to_owned),
                    v["pointer"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        lines.sort();
        let mut expected: Vec<_> = f
            .refusals
            .iter()
            .filter(|r| r.stage() == Stage::Mapping)
            .map(|r| (r.sheet.clone(), r.row, r.column.clone(), r.pointer.clone()))
            .collect();
        expected.sort();
        assert_eq!(lines, expected, "{}", f.path.display());
        let csv = std::fs::read(prefix.with_extension("errors.csv")).unwrap();
        assert!(csv.starts_with("\u{FEFF}file,sheet,row".as_bytes()));
    }
}
