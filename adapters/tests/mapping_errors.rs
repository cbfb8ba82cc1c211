//! Broken rows, one per kind of failure: each is refused with the exact pointer and source
//! column, a message in Chinese and English, and the rows around it are still mapped.

mod mapping_common;

use mapping_common::{row, uscc};
use rix_adapters::mapping::{self, Mapping};
use rix_adapters::outcome::{Mapped, RowError};

const HEADER: [&str; 17] = [
    "成果名称",
    "成果类别",
    "批准登记号",
    "成果简介",
    "关键词",
    "技术领域",
    "技术就绪度",
    "成果体现形式",
    "研究起止时间",
    "第一完成单位",
    "统一社会信用代码",
    "所在地区",
    "其他完成单位",
    "其他完成单位统一社会信用代码",
    "完成人",
    "成果密级",
    "转让价格(万元)",
];

fn form() -> Mapping {
    mapping::shipped("achievement-form.toml").unwrap().unwrap()
}

/// A valid row; `change` replaces the cells named by header.
fn cells(change: &[(&str, &str)]) -> Vec<String> {
    let a = uscc("91530100MA6K00000");
    let mut values: Vec<String> = [
        "智能电网故障诊断方法",
        "应用技术",
        "",
        "提出了一种基于深度学习的配电网故障诊断方法，并在示范区应用。",
        "电网；故障诊断",
        "电子信息",
        "5",
        "软件；专利",
        "2019.01-2020.12",
        "云南电网有限责任公司",
        &a,
        "云南省",
        "",
        "",
        "周九",
        "公开",
        "30",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for (column, value) in change {
        let at = HEADER.iter().position(|h| h == column).unwrap();
        values[at] = (*value).to_owned();
    }
    values
}

/// Maps a valid row, the broken one and another valid row; returns the broken row's errors.
fn refused(change: &[(&str, &str)]) -> Vec<RowError> {
    let m = form();
    let mut mapper = m.mapper();
    assert!(mapper.map(&row(1, &HEADER)).is_none());
    let good = |n: u64, mapper: &mut rix_adapters::mapping::Mapper<'_>| {
        let values = cells(&[("成果名称", &format!("智能电网故障诊断方法{n}"))]);
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        match mapper.map(&row(n, &refs)) {
            Some(Ok(_)) => {}
            other => panic!("row {n} should map: {other:?}"),
        }
    };
    good(2, &mut mapper);
    let values = cells(change);
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let outcome: Mapped = mapper.map(&row(3, &refs)).expect("a data row");
    good(4, &mut mapper);
    let errors = outcome.expect_err("the row is refused");
    for e in &errors {
        assert_eq!(e.origin.row, 3);
        assert!(
            !e.message_zh.is_empty() && !e.message_en.is_empty(),
            "{e:?}"
        );
    }
    errors
}

/// The one error of a broken row: its column and pointer.
fn one(change: &[(&str, &str)]) -> RowError {
    let errors = refused(change);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

fn at(e: &RowError) -> (Option<&str>, &str) {
    (e.column.as_deref(), e.pointer.as_str())
}

#[test]
fn a_date_that_is_not_one() {
    let e = one(&[("研究起止时间", "2019.13-2020.12")]);
    assert_eq!(at(&e), (Some("研究起止时间"), "/research_period"));
    assert!(e.message_zh.contains("2019.13-2020.12"), "{e:?}");
}

#[test]
fn a_period_that_ends_before_it_starts() {
    let e = one(&[("研究起止时间", "2020.12-2019.01")]);
    assert_eq!(at(&e), (Some("研究起止时间"), "/research_period/end"));
    assert!(e.message_zh.contains("结束日期早于开始日期"), "{e:?}");
}

#[test]
fn a_wrong_uscc_check_character() {
    let mut bad = uscc("91530100MA6K00000");
    let last = bad.pop().unwrap();
    bad.push(if last == '0' { '1' } else { '0' });
    let e = one(&[("统一社会信用代码", &bad)]);
    assert_eq!(at(&e), (Some("统一社会信用代码"), "/institutions/0/uscc"));
    assert!(
        e.message_zh.contains("校验码") && e.message_en.contains("check character"),
        "{e:?}"
    );
}

#[test]
fn a_secrecy_level_not_on_the_list() {
    let e = one(&[("成果密级", "保密")]);
    assert_eq!(at(&e), (Some("成果密级"), "/secrecy/level"));
    assert!(e.message_zh.contains("公开(public)"), "{e:?}");
}

#[test]
fn an_unknown_form_in_a_list_points_at_its_element() {
    let e = one(&[("成果体现形式", "软件；新方法")]);
    assert_eq!(at(&e), (Some("成果体现形式"), "/forms/1"));
}

#[test]
fn a_keyword_too_long_is_found_by_the_validator_and_traced_to_its_column() {
    let long = "一".repeat(31);
    let e = one(&[("关键词", &format!("电网；{long}"))]);
    assert_eq!(at(&e), (Some("关键词"), "/keywords/1"));
    assert!(e.message_zh.contains("至多 30 个字符"), "{e:?}");
}

#[test]
fn an_abstract_too_short() {
    let e = one(&[("成果简介", "很短")]);
    assert_eq!(at(&e), (Some("成果简介"), "/abstract"));
    assert!(
        e.message_zh.contains("内容过短：至少 10 个字符，实为 2 个"),
        "{e:?}"
    );
}

#[test]
fn an_empty_required_cell() {
    let e = one(&[("成果名称", "  ")]);
    assert_eq!(at(&e), (Some("成果名称"), "/title"));
    assert!(e.message_zh.contains("必填项「成果名称」为空"), "{e:?}");
}

#[test]
fn applied_technology_without_a_readiness_level() {
    let e = one(&[("技术就绪度", "")]);
    assert_eq!(at(&e), (Some("技术就绪度"), "/trl"));
}

#[test]
fn a_readiness_level_out_of_range() {
    let e = one(&[("技术就绪度", "10级")]);
    assert_eq!(at(&e), (Some("技术就绪度"), "/trl"));
    assert!(e.message_zh.contains("10级"), "{e:?}");
}

#[test]
fn a_registration_number_with_the_wrong_category_flag() {
    let e = one(&[
        ("成果类别", "基础理论"),
        ("技术就绪度", ""),
        ("批准登记号", "5300002020Y0001"),
    ]);
    assert_eq!(at(&e), (Some("批准登记号"), "/registration_no"));
    assert!(e.message_zh.contains("类别标志"), "{e:?}");
}

#[test]
fn a_registration_number_that_is_not_one() {
    let e = one(&[("批准登记号", "云2020Y0001")]);
    assert_eq!(at(&e), (Some("批准登记号"), "/registration_no"));
}

#[test]
fn other_institutions_with_fewer_codes_than_names() {
    let b = uscc("12530000431200000");
    let errors = refused(&[
        ("其他完成单位", "昆明理工大学；云南大学"),
        ("其他完成单位统一社会信用代码", &b),
    ]);
    let mut got: Vec<(Option<&str>, &str)> = errors.iter().map(at).collect();
    got.sort();
    // Institution 2 (云南大学) has no code; and this sheet has no column for the other
    // institutions' regions at all.
    assert_eq!(
        got,
        [
            (Some("其他完成单位所在地区"), "/institutions/1/region"),
            (Some("其他完成单位所在地区"), "/institutions/2/region"),
            (Some("其他完成单位统一社会信用代码"), "/institutions/2/uscc"),
        ]
    );
}

#[test]
fn an_amount_that_is_not_a_number() {
    let e = one(&[("转让价格(万元)", "面议")]);
    assert_eq!(at(&e), (Some("转让价格(万元)"), "/transfer/price"));
}

#[test]
fn a_province_that_does_not_exist() {
    let e = one(&[("所在地区", "火星")]);
    assert_eq!(at(&e), (Some("所在地区"), "/institutions/0/region"));
}

#[test]
fn a_bidirectional_override_in_a_title() {
    let e = one(&[("成果名称", "智能电网\u{202E}故障诊断")]);
    assert_eq!(at(&e), (Some("成果名称"), "/title"));
    assert!(e.message_zh.contains("显示方向"), "{e:?}");
}

#[test]
fn several_errors_in_one_row_are_all_reported() {
    let errors = refused(&[
        ("成果密级", "保密"),
        ("研究起止时间", "去年"),
        ("技术就绪度", "高"),
    ]);
    let mut got: Vec<(Option<&str>, &str)> = errors.iter().map(at).collect();
    got.sort();
    assert_eq!(
        got,
        [
            (Some("成果密级"), "/secrecy/level"),
            (Some("技术就绪度"), "/trl"),
            (Some("研究起止时间"), "/research_period"),
        ]
    );
}

#[test]
fn other_institutions_regions_without_a_column_in_the_sheet() {
    let m = form();
    let mut mapper = m.mapper();
    assert!(mapper.map(&row(1, &HEADER)).is_none());
    let b = uscc("12530000431200000");
    let values = cells(&[
        ("其他完成单位", "昆明理工大学"),
        ("其他完成单位统一社会信用代码", &b),
    ]);
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let errors = mapper.map(&row(2, &refs)).unwrap().unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        at(&errors[0]),
        (Some("其他完成单位所在地区"), "/institutions/1/region")
    );
    assert!(
        errors[0]
            .message_zh
            .contains("表头中没有「其他完成单位所在地区」列"),
        "{errors:?}"
    );
}

#[test]
fn a_sheet_without_a_required_column_says_so_on_every_row() {
    let m = form();
    let mut mapper = m.mapper();
    let header: Vec<&str> = HEADER
        .iter()
        .copied()
        .filter(|h| *h != "成果密级")
        .collect();
    assert!(mapper.map(&row(1, &header)).is_none());
    let missing = mapper.missing_columns();
    assert!(
        missing.iter().any(|c| c.column == "成果密级" && c.required),
        "{missing:?}"
    );
    let mut values = cells(&[]);
    values.remove(HEADER.iter().position(|h| *h == "成果密级").unwrap());
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let errors = mapper.map(&row(2, &refs)).unwrap().unwrap_err();
    // The schema misses the whole /secrecy object; the column that gives its level is named.
    assert_eq!(at(&errors[0]), (Some("成果密级"), "/secrecy"));
    assert!(
        errors[0].message_zh.contains("表头中没有「成果密级」列"),
        "{errors:?}"
    );
}

#[test]
fn a_sheet_whose_header_is_not_found_refuses_its_rows_and_says_why_once() {
    let m = Mapping::from_toml(
        "kind = \"achievement\"\nname = \"t\"\n[layout]\nheader_scan_rows = 3\n\
         [[field]]\ncolumn = \"成果名称\"\ntarget = \"/title\"\n\
         [[field]]\ncolumn = \"成果类别\"\ntarget = \"/category\"\nconvert = \"category\"\n\
         [[field]]\ncolumn = \"关键词\"\ntarget = \"/keywords\"\nconvert = \"keywords\"\n",
    )
    .unwrap();
    let mut mapper = m.mapper();
    assert!(mapper.map(&row(1, &["标题", "类别"])).is_none());
    assert!(mapper.map(&row(2, &["成果名称", "类别"])).is_none());
    let first = mapper.map(&row(3, &["a", "b"])).unwrap().unwrap_err();
    assert!(
        first[0].message_zh.contains("没有找到表头") && first[0].message_zh.contains("第 2 行"),
        "{first:?}"
    );
    let later = mapper.map(&row(4, &["c", "d"])).unwrap().unwrap_err();
    assert!(
        later[0].message_en.contains("header was not found"),
        "{later:?}"
    );
    // A new sheet starts over.
    let other = mapping_common::row_in(
        "登记表.xlsx",
        "Sheet2",
        1,
        &["成果名称", "成果类别", "关键词"],
    );
    assert!(mapper.map(&other).is_none());
    assert!(mapper.header().is_some());
}
