//! A rough look at where a row's time goes (map vs. validate), for the bar of 20,000
//! rows/s parsed, mapped and validated per core. Ignored by default and never asserts on time
//! (DESIGN.md §7: figures belong in `rix bench`): run it with
//! `cargo test -p rix-adapters --test mapping_speed -- --ignored --nocapture`.

mod mapping_common;

use std::time::Instant;

use mapping_common::{row, uscc};
use rix_adapters::mapping;
use rix_adapters::schema::{RecordKind, validate_record};

#[test]
#[ignore = "prints timings; run by hand"]
fn where_a_rows_time_goes() {
    let m = mapping::shipped("achievement-form").unwrap().unwrap();
    let header = [
        "序号",
        "成果名称",
        "成果类别",
        "成果简介",
        "关键词",
        "技术领域",
        "所处阶段",
        "技术就绪度",
        "成果水平",
        "成果体现形式",
        "研究起止时间",
        "第一完成单位",
        "统一社会信用代码",
        "所在地区",
        "其他完成单位",
        "其他完成单位统一社会信用代码",
        "其他完成单位所在地区",
        "完成人",
        "联系人",
        "联系电话",
        "成果密级",
        "转让价格(万元)",
    ];
    let (a, b) = (uscc("91530100MA6K00000"), uscc("12530000431200000"));
    let rows: Vec<_> = (0..20_000u64)
        .map(|i| {
            let title = format!("高能量密度锂离子电池正极材料制备技术{i}");
            row(
                i + 2,
                &[
                    "#1", &title, "应用技术",
                    "本成果研究了高能量密度锂离子电池正极材料的制备工艺，实现了规模化生产，产品性能达到国内领先水平。",
                    "锂电池；正极材料；储能", "新能源与节能", "成熟", "7", "国内领先", "新产品、新工艺",
                    "2018.01-2020.12", "云南省能源研究院有限公司", &a, "云南省昆明市", "昆明理工大学", &b,
                    "云南省", "张三、李四、王五", "赵六", "0871-65123456", "公开", "125.5",
                ],
            )
        })
        .collect();
    let mut mapper = m.mapper();
    assert!(mapper.map(&row(1, &header)).is_none());
    let start = Instant::now();
    let records: Vec<_> = rows
        .iter()
        .map(|r| mapper.map(r).unwrap().unwrap().record)
        .collect();
    let mapped = start.elapsed();
    let start = Instant::now();
    for r in &records {
        validate_record(RecordKind::Achievement, r).unwrap();
    }
    let validated = start.elapsed();
    let n = rows.len() as f64;
    let per_row = mapped.as_secs_f64() / n * 1e6;
    let per_validation = validated.as_secs_f64() / n * 1e6;
    println!(
        "map + validate: {per_row:.1} µs/row ({:.0} rows/s); validate alone: {per_validation:.1} µs/record; mapping without validation ≈ {:.1} µs/row ({:.0} % of the row)",
        n / mapped.as_secs_f64(),
        per_row - per_validation,
        (per_row - per_validation) / per_row * 100.0
    );
}
