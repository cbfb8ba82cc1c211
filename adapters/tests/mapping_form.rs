//! The shipped national-form mapping on a sheet with the messes real sheets have: title rows
//! above the header, a note row, blank rows, merged cells, dates in every form, numbers as
//! text, full-width characters, trailing spaces, lists in one cell.

mod mapping_common;

use mapping_common::{row, uscc};
use rix_adapters::mapping::{self, Mapping};
use rix_adapters::outcome::MappedRecord;
use rix_adapters::row::SourceRow;
use serde_json::json;

fn form() -> Mapping {
    mapping::shipped("achievement-form").unwrap().unwrap()
}

const HEADER: [&str; 22] = [
    "序号",
    "成果名称*",
    "成果类别",
    "批准登记号",
    "成 果 简 介",
    "关键词",
    "技术领域",
    "所处\n阶段",
    "技术就绪度",
    "成果水平",
    "成果体现形式",
    "研究起止时间",
    "第一完成单位（必填）",
    "统一社会信用代码",
    "所在地区",
    "其他完成单位",
    "其他完成单位统一社会信用代码",
    "其他完成单位所在地区",
    "完成人",
    "成果密级",
    "转让价格（元）",
    "填报人",
];

/// A data row in the layout of [`HEADER`].
#[allow(clippy::too_many_arguments)]
fn data(
    n: u64,
    title: &str,
    category: &str,
    number: &str,
    period: &str,
    secrecy: &str,
    others: (&str, &str, &str),
) -> SourceRow {
    let a = uscc("91530100MA6K00000");
    let a = a.as_str();
    let abstract_ = "本成果研究了高能量密度锂离子电池正极材料的制备工艺，实现了规模化生产。 ";
    row(
        n,
        &[
            "#1",
            title,
            category,
            number,
            abstract_,
            "锂电池；正极材料 储能，储能",
            "新能源与节能",
            "成熟",
            "ＴＲＬ７",
            "国内领先水平",
            "新产品、新工艺；专利",
            period,
            "云南省能源研究院有限公司 ",
            a,
            "云南省昆明市",
            others.0,
            others.1,
            others.2,
            "张三、李四，王五",
            secrecy,
            "１２５,０００",
            "赵六",
        ],
    )
}

fn ok(outcome: Option<Result<MappedRecord, Vec<rix_adapters::outcome::RowError>>>) -> MappedRecord {
    match outcome {
        Some(Ok(record)) => record,
        Some(Err(errors)) => panic!("refused: {errors:#?}"),
        None => panic!("not a data row"),
    }
}

#[test]
fn a_messy_sheet_maps_every_data_row_and_skips_the_rest() {
    let m = form();
    let mut mapper = m.mapper();
    let b = uscc("12530000431200000");
    let c = uscc("91530100MA6K00011");
    let title_row = vec!["2023年度云南省科技成果登记汇总表"; 22];
    let sheet = vec![
        row(1, &title_row),
        row(
            2,
            &[
                "填报单位：云南省科学技术厅",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "日期：2024年1月",
            ],
        ),
        row(3, &[""; 22]),
        row(4, &HEADER),
        row(5, &["注：带*为必填项；金额单位为元。"; 22]),
        data(
            6,
            "高能量密度锂离子电池正极材料",
            "应用技术",
            "",
            "2018.01-2020.12",
            "公开",
            ("", "", ""),
        ),
        row(7, &["", "", "   "]),
        data(
            8,
            "新型储能系统集成技术",
            "☑应用技术 □基础理论 □软科学",
            "5300002021Y0012",
            "2018年1月至2020年6月",
            "内部",
            (
                "昆明理工大学；云南电网有限责任公司",
                &format!("{b}；{c}"),
                "530000;云南",
            ),
        ),
        row(9, &HEADER),
        row(10, &["说明：本表由系统导出"]),
    ];
    let outcomes: Vec<_> = sheet
        .iter()
        .map(|r| (r.origin.row, mapper.map(r)))
        .collect();
    let mapped: Vec<u64> = outcomes
        .iter()
        .filter(|(_, o)| o.is_some())
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(mapped, [6, 8], "only the data rows are outcomes");
    let header = mapper.header().unwrap();
    assert_eq!(header.rows, [4]);
    assert_eq!(mapper.unmapped_columns(), ["序号", "填报人"]);
    assert!(
        mapper
            .missing_columns()
            .iter()
            .any(|c| c.column == "联系人" && !c.required)
    );
    let mut outcomes = outcomes.into_iter().filter_map(|(_, o)| o);

    let first = ok(outcomes.next());
    assert_eq!(first.origin.row, 6);
    assert_eq!(first.registration_no, None);
    assert_eq!(
        first.source_key,
        "kjcg-dengjibiao:高能量密度锂离子电池正极材料|云南省能源研究院有限公司"
    );
    let r = &first.record;
    assert_eq!(r["title"], "高能量密度锂离子电池正极材料");
    assert_eq!(r["category"], "应用技术");
    assert_eq!(
        r["abstract"],
        "本成果研究了高能量密度锂离子电池正极材料的制备工艺，实现了规模化生产。"
    );
    assert_eq!(r["keywords"], json!(["锂电池", "正极材料", "储能"]));
    assert_eq!(r["classification"], json!({"field": "新能源与节能"}));
    assert_eq!(r["stage"], "成熟应用阶段");
    assert_eq!(r["trl"], 7);
    assert_eq!(r["level"], "国内领先");
    assert_eq!(r["forms"], json!(["新产品", "新工艺", "专利"]));
    assert_eq!(
        r["research_period"],
        json!({"start": "2018-01-01", "end": "2020-12-31"})
    );
    assert_eq!(
        r["institutions"],
        json!([{"name": "云南省能源研究院有限公司", "uscc": uscc("91530100MA6K00000"), "region": "530000"}])
    );
    assert_eq!(
        r["completers"],
        json!([{"name": "张三"}, {"name": "李四"}, {"name": "王五"}])
    );
    assert_eq!(r["secrecy"], json!({"level": "public"}));
    assert_eq!(r["transfer"], json!({"price": 12.5}));
    assert!(r.get("registration_no").is_none());

    let second = ok(outcomes.next());
    assert_eq!(second.registration_no.as_deref(), Some("5300002021Y0012"));
    assert_eq!(second.source_key, "kjcg-dengjibiao:5300002021y0012");
    let r = &second.record;
    assert!(
        r.get("registration_no").is_none(),
        "the node assigns it; it travels beside"
    );
    assert_eq!(r["category"], "应用技术");
    assert_eq!(
        r["research_period"],
        json!({"start": "2018-01-01", "end": "2020-06-30"})
    );
    assert_eq!(r["secrecy"]["level"], "internal");
    assert_eq!(
        r["institutions"],
        json!([
            {"name": "云南省能源研究院有限公司", "uscc": uscc("91530100MA6K00000"), "region": "530000"},
            {"name": "昆明理工大学", "uscc": b, "region": "530000"},
            {"name": "云南电网有限责任公司", "uscc": c, "region": "530000"},
        ])
    );
}

#[test]
fn dates_in_every_form_reach_the_schema_format() {
    let m = Mapping::from_toml(
        r#"
kind = "achievement"
name = "dates"
[[field]]
column = "开始"
target = "/research_period/start"
convert = "date"
[[field]]
column = "结束"
target = "/research_period/end"
convert = "date"
[[field]]
column = "评价日期"
target = "/evaluation/date"
convert = "date"
"#,
    )
    .unwrap();
    let mut mapper = m.mapper();
    assert!(mapper.map(&row(1, &["开始", "结束", "评价日期"])).is_none());
    for (n, (start, end, eval), expected) in [
        (
            2,
            ("@43525", "@43890.5", "#20200315"),
            ("2019-03-01", "2020-02-29", "2020-03-15"),
        ),
        (
            3,
            ("2019年3月", "2020.12", "2020/03/05"),
            ("2019-03-01", "2020-12-31", "2020-03-05"),
        ),
        (
            4,
            ("２０１９－３", "201912", "2020年3月5日"),
            ("2019-03-01", "2019-12-31", "2020-03-05"),
        ),
        (
            5,
            ("#43525", "2019", "2020-03-05 00:00:00"),
            ("2019-03-01", "2019-12-31", "2020-03-05"),
        ),
    ] {
        let mut lines = Vec::new();
        let (outcome, explained) = mapper.map_explained(&row(n, &[start, end, eval])).unwrap();
        lines.extend(explained);
        // The record is refused (most required fields are missing) but the dates are read:
        // the dry-run view shows them.
        assert!(outcome.is_err());
        let got: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.pointer.as_str(), l.value.as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("/research_period/start", expected.0),
                ("/research_period/end", expected.1),
                ("/evaluation/date", expected.2)
            ],
            "row {n}"
        );
    }
}

#[test]
fn a_grouped_two_row_header_and_merged_cells() {
    let m = form();
    let mut mapper = m.mapper();
    let a = uscc("91530100MA6K00000");
    let top = [
        "成果名称",
        "成果类别",
        "成果简介",
        "关键词",
        "技术领域",
        "技术就绪度",
        "研究起止时间",
        "第一完成单位",
        "第一完成单位",
        "第一完成单位",
        "完成人",
        "成果密级",
    ];
    let bottom = [
        "成果名称",
        "成果类别",
        "成果简介",
        "关键词",
        "技术领域",
        "技术就绪度",
        "研究起止时间",
        "名称",
        "统一社会信用代码",
        "所在地区",
        "完成人",
        "成果密级",
    ];
    assert!(mapper.map(&row(1, &top)).is_none());
    assert!(mapper.map(&row(2, &bottom)).is_none());
    let abstract_ = "面向高原地区的光伏电站运维技术研究与示范应用。";
    // Rows 3 and 4 share a vertically merged institution block: the source repeats the value.
    for n in [3, 4] {
        let title = format!("高原光伏电站智能运维技术{n}");
        let record = ok(mapper.map(&row(
            n,
            &[
                &title,
                "应用技术",
                abstract_,
                "光伏 运维",
                "新能源与节能",
                "6",
                "2019.01-2021.12",
                "云南省光伏研究所",
                &a,
                "530100",
                "钱七",
                "公开",
            ],
        )));
        assert_eq!(record.record["institutions"][0]["name"], "云南省光伏研究所");
        assert_eq!(record.record["institutions"][0]["uscc"], a.as_str());
        assert_eq!(record.record["institutions"][0]["region"], "530100");
    }
    let header = mapper.header().unwrap();
    assert_eq!(header.rows, [1, 2]);
    assert!(
        header
            .columns
            .iter()
            .any(|c| c.text == "第一完成单位/统一社会信用代码")
    );
}

#[test]
fn every_shipped_mapping_loads() {
    for (file, text) in mapping::SHIPPED {
        let m = Mapping::from_toml(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(mapping::shipped(file).is_some());
        assert!(mapping::shipped(m.name()).is_some(), "{file}");
    }
}

#[test]
fn the_form_maps_each_of_its_three_kinds() {
    let m = form();
    let mut mapper = m.mapper();
    let header = [
        "成果名称",
        "成果类别",
        "批准登记号",
        "成果简介",
        "关键词",
        "学科分类",
        "技术领域",
        "成果体现形式",
        "研究起止时间",
        "第一完成单位",
        "统一社会信用代码",
        "所在地区",
        "完成人",
        "成果密级",
    ];
    assert!(mapper.map(&row(1, &header)).is_none());
    let a = uscc("12100000400000000");
    let cases = [
        ("基础理论", "1100002022J0007", "论文", "基础理论"),
        ("软科学", "3482022R0001", "研究报告", "软科学"),
        ("软科学成果", "", "咨询报告", "软科学"),
    ];
    for (i, (category, number, form, expected)) in cases.iter().enumerate() {
        let record = ok(mapper.map(&row(
            2 + i as u64,
            &[
                &format!("区域创新体系研究{i}"),
                category,
                number,
                "关于区域科技创新体系建设的理论与政策研究报告。",
                "创新体系",
                "630",
                "其他",
                form,
                "2020.03-2021.02",
                "中国科学技术发展战略研究院",
                &a,
                "北京市",
                "孙八",
                "公开",
            ],
        )));
        assert_eq!(record.record["category"], *expected);
        assert_eq!(record.record["classification"]["discipline"], "630");
        assert_eq!(
            record.registration_no.as_deref(),
            (!number.is_empty()).then_some(*number)
        );
        assert!(
            record.record.get("trl").is_none(),
            "only applied technology needs a TRL"
        );
    }
}

#[test]
fn the_readme_documents_every_column_of_the_shipped_mappings() {
    let readme = include_str!("../mappings/README.md");
    for (file, text) in mapping::SHIPPED {
        let m = Mapping::from_toml(text).unwrap();
        assert!(readme.contains(file), "{file} is not in the README");
        for field in m.fields() {
            for column in field.columns() {
                assert!(
                    readme.contains(column.as_str()),
                    "{file}: column {column} is not in the README"
                );
            }
            assert!(
                readme.contains(&format!("`{}`", field.target()))
                    || field.target() == "/registration_no"
                    || field.target().is_empty(),
                "{file}: target {} is not in the README",
                field.target()
            );
        }
    }
}

#[test]
fn a_header_merged_over_two_columns_feeds_one_field_from_either() {
    let m = Mapping::from_toml(
        "kind = \"achievement\"\nname = \"t\"\n[layout]\nheader_min_matches = 2\n\
         [[field]]\ncolumn = \"成果名称\"\ntarget = \"/title\"\n\
         [[field]]\ncolumn = \"关键词\"\ntarget = \"/keywords\"\nconvert = \"keywords\"\n",
    )
    .unwrap();
    let mut mapper = m.mapper();
    // 关键词 merged over columns 1 and 2: the source repeats the header text.
    assert!(
        mapper
            .map(&row(1, &["成果名称", "关键词", "关键词", "备注"]))
            .is_none()
    );
    assert_eq!(mapper.unmapped_columns(), ["备注"]);
    for (n, cells, expected) in [
        (2, ["甲", "电池", "电池"], json!(["电池"])),
        (3, ["乙", "", "储能"], json!(["储能"])),
    ] {
        let (_, lines) = mapper.map_explained(&row(n, &cells)).unwrap();
        let keywords = lines.iter().find(|l| l.pointer == "/keywords").unwrap();
        assert_eq!(keywords.value, expected, "row {n}");
        assert_eq!(keywords.column, "关键词");
    }
}

#[test]
fn the_dry_run_view_puts_each_source_value_beside_its_field() {
    let m = form();
    let mut mapper = m.mapper();
    let b = uscc("12530000431200000");
    assert!(mapper.map(&row(1, &HEADER)).is_none());
    let (outcome, lines) = mapper
        .map_explained(&data(
            2,
            "高能量密度锂离子电池正极材料",
            "应用技术",
            "",
            "2018.01-2020.12",
            "公开",
            ("昆明理工大学", &b, "云南"),
        ))
        .unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
    let line = |pointer: &str| {
        let l = lines
            .iter()
            .find(|l| l.pointer == pointer)
            .unwrap_or_else(|| panic!("{pointer}"));
        (l.column.as_str(), l.source.as_str(), l.value.clone())
    };
    assert_eq!(line("/trl"), ("技术就绪度", "ＴＲＬ７", json!(7)));
    assert_eq!(
        line("/research_period"),
        (
            "研究起止时间",
            "2018.01-2020.12",
            json!({"start": "2018-01-01", "end": "2020-12-31"})
        )
    );
    assert_eq!(
        line("/institutions/1/name"),
        ("其他完成单位", "昆明理工大学", json!("昆明理工大学"))
    );
    assert_eq!(
        line("/institutions/1/region"),
        ("其他完成单位所在地区", "云南", json!("530000"))
    );
    assert_eq!(
        line("/completers/2/name"),
        ("完成人", "张三、李四，王五", json!("王五"))
    );
    assert_eq!(
        line("/secrecy/level"),
        ("成果密级", "公开", json!("public"))
    );
    assert_eq!(
        line("/transfer/price"),
        ("转让价格（元）", "１２５,０００", json!(12.5))
    );
}

#[test]
fn a_column_is_missing_only_when_no_alternative_of_it_is_in_the_header() {
    let m = form();
    let missing = |header: &[&str]| -> Vec<String> {
        let mut mapper = m.mapper();
        assert!(mapper.map(&row(1, header)).is_none());
        mapper
            .missing_columns()
            .into_iter()
            .map(|c| c.column)
            .collect()
    };
    let all = missing(&HEADER);
    // 研究起止时间 gives the whole period, and 转让价格（元） the price (in 元): the columns
    // that would give the same values another way are not missing.
    for alternative in ["研究开始时间", "研究结束时间", "转让价格(万元)"] {
        assert!(
            !all.iter().any(|c| c == alternative),
            "{alternative}: {all:?}"
        );
    }
    // Columns nothing in the header stands for are.
    for absent in ["联系人", "评价方式", "保密期限", "完成人职称"] {
        assert!(all.iter().any(|c| c == absent), "{absent}: {all:?}");
    }
    // The start alone stands for the period, not for its end.
    let start_only = missing(&["成果名称", "成果类别", "研究开始时间"]);
    assert!(
        !start_only.iter().any(|c| c == "研究起止时间"),
        "{start_only:?}"
    );
    assert!(
        start_only.iter().any(|c| c == "研究结束时间"),
        "{start_only:?}"
    );
}
