//! A sheet's refused rows end up in the error report (CSV with BOM and JSON Lines) while the
//! valid rows are mapped: the path a person takes from a refused import to a fixed sheet.

mod mapping_common;

use mapping_common::{row, uscc};
use rix_adapters::mapping;
use rix_adapters::report::{ErrorReport, ReportSummary};

#[test]
fn refused_rows_go_to_both_reports_and_valid_rows_are_kept() {
    let m = mapping::shipped("achievement-form").unwrap().unwrap();
    let mut mapper = m.mapper();
    let dir = tempfile::tempdir().unwrap();
    let (csv, jsonl) = (
        dir.path().join("errors.csv"),
        dir.path().join("errors.jsonl"),
    );
    let mut report = ErrorReport::create(&csv, &jsonl).unwrap();
    let a = uscc("91530100MA6K00000");
    let header = [
        "成果名称",
        "成果类别",
        "成果简介",
        "关键词",
        "技术领域",
        "研究起止时间",
        "第一完成单位",
        "统一社会信用代码",
        "所在地区",
        "完成人",
        "成果密级",
    ];
    let good = |title: &str| -> Vec<String> {
        [
            title,
            "软科学",
            "关于云南省科技成果转化体系建设的政策研究报告。",
            "成果转化 政策",
            "其他",
            "2021.01-2021.12",
            "云南省科学技术发展研究院",
            &a,
            "云南省",
            "王十二",
            "公开",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let mut rows = vec![header.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()];
    rows.push(good("云南省科技成果转化政策研究"));
    let mut bad = good("=HYPERLINK(\"http://evil\")");
    bad[10] = "保密".into();
    rows.push(bad);
    rows.push(good("云南省技术市场发展研究"));
    let mut accepted = Vec::new();
    for (i, cells) in rows.iter().enumerate() {
        let refs: Vec<&str> = cells.iter().map(String::as_str).collect();
        match mapper.map(&row(i as u64 + 1, &refs)) {
            None => {}
            Some(Ok(record)) => accepted.push(record.origin.row),
            Some(Err(errors)) => report.refused(&errors).unwrap(),
        }
    }
    assert_eq!(accepted, [2, 4]);
    assert_eq!(
        report.finish().unwrap(),
        ReportSummary { rows: 1, errors: 1 }
    );

    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with('\u{FEFF}'));
    let lines: Vec<&str> = text.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].starts_with("登记表.xlsx,Sheet1,3,成果密级,/secrecy/level,"),
        "{}",
        lines[1]
    );
    let json: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&jsonl).unwrap().trim()).unwrap();
    assert_eq!(json["row"], 3);
    assert_eq!(json["column"], "成果密级");
    assert!(json["message_zh"].as_str().unwrap().contains("保密"));
}
