//! Tree rows — an XML record element as JSON (attributes `@name`, text `$text`, repeated
//! children as arrays), a JSON Lines object, a platform's API item — mapped by paths.

mod mapping_common;

use mapping_common::{tree, uscc};
use rix_adapters::mapping::{self, Mapping};
use serde_json::json;

const XML_MAPPING: &str = r#"
kind = "achievement"
name = "desktop-xml"
identity = ["/title", "/institutions/0/name"]

[source]
format = "xml"
record = "成果"

[constants]
"/category" = "应用技术"

[defaults]
"/secrecy/level" = "public"
"/institutions/*/region" = "530000"

[[field]]
path = "/基本信息/成果名称"
target = "/title"

[[field]]
path = "/基本信息/简介"
target = "/abstract"

[[field]]
path = "/基本信息/关键词"
target = "/keywords"
convert = "keywords"

[[field]]
path = "/基本信息/@领域"
target = "/classification/field"
convert = "field"

[[field]]
path = "/基本信息/就绪度"
target = "/trl"
convert = "trl"

[[field]]
path = "/基本信息/起止"
target = "/research_period"
convert = "period"

[[field]]
path = "/单位/*/名称"
target = "/institutions/*/name"

[[field]]
path = "/单位/*/@代码"
target = "/institutions/*/uscc"
convert = "uscc"

[[field]]
path = "/完成人/*/姓名"
target = "/completers/*/name"

[[field]]
path = "/完成人/*/职称"
target = "/completers/*/title"

[[field]]
column = "密级"
target = "/secrecy/level"
convert = "secrecy"
"#;

#[test]
fn an_xml_record_element_maps_by_paths_with_repeated_and_single_children() {
    let m = Mapping::from_toml(XML_MAPPING).unwrap();
    let mut mapper = m.mapper();
    let a = uscc("91530100MA6K00000");
    let b = uscc("12530000431200000");
    let element = json!({
        "@id": "17",
        "基本信息": {
            "@领域": "新材料",
            "成果名称": {"@lang": "zh", "$text": "稀土功能材料制备技术"},
            "简介": "  研究了稀土永磁材料的低成本制备工艺，产品性能达到国内先进水平。 ",
            "关键词": "稀土；永磁材料",
            "就绪度": "TRL6",
            "起止": "2017.06-2019.05",
            "备注": "无"
        },
        "单位": [
            {"@代码": a, "名称": "云南稀土新材料有限公司"},
            {"@代码": b, "名称": "昆明理工大学"}
        ],
        // One completer: a single child, not an array.
        "完成人": {"姓名": "吴十", "职称": "研究员"},
        "密级": "内部"
    });
    let record = mapper.map(&tree(17, element)).unwrap().unwrap();
    assert_eq!(
        record.source_key,
        "desktop-xml:稀土功能材料制备技术|云南稀土新材料有限公司"
    );
    assert_eq!(
        record.record,
        json!({
            "title": "稀土功能材料制备技术",
            "category": "应用技术",
            "abstract": "研究了稀土永磁材料的低成本制备工艺，产品性能达到国内先进水平。",
            "keywords": ["稀土", "永磁材料"],
            "classification": {"field": "新材料"},
            "trl": 6,
            "research_period": {"start": "2017-06-01", "end": "2019-05-31"},
            "institutions": [
                {"name": "云南稀土新材料有限公司", "uscc": a, "region": "530000"},
                {"name": "昆明理工大学", "uscc": b, "region": "530000"}
            ],
            "completers": [{"name": "吴十", "title": "研究员"}],
            "secrecy": {"level": "internal"}
        })
    );
    let mut unmapped = mapper.unmapped_columns();
    unmapped.sort();
    assert_eq!(unmapped, ["/@id", "/基本信息/备注"]);
}

#[test]
fn a_broken_tree_row_names_its_path() {
    let m = Mapping::from_toml(XML_MAPPING).unwrap();
    let mut mapper = m.mapper();
    let mut bad = uscc("91530100MA6K00000");
    let last = bad.pop().unwrap();
    bad.push(if last == '1' { '2' } else { '1' });
    let element = json!({
        "基本信息": {"成果名称": "稀土功能材料制备技术", "简介": "研究了稀土永磁材料的低成本制备工艺。",
                   "关键词": "稀土", "@领域": "新材料", "就绪度": "6", "起止": "2017.06-2019.05"},
        "单位": {"@代码": bad, "名称": "云南稀土新材料有限公司"},
        "完成人": [{"姓名": "吴十"}]
    });
    let errors = mapper.map(&tree(3, element)).unwrap().unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].column.as_deref(), Some("/单位/*/@代码"));
    assert_eq!(errors[0].pointer, "/institutions/0/uscc");
}

#[test]
fn json_lines_in_the_common_schema_pass_through_and_node_fields_are_set_aside() {
    let m = mapping::shipped("jsonl-achievement").unwrap().unwrap();
    let mut mapper = m.mapper();
    let a = uscc("91530100MA6K00000");
    let line = json!({
        "title": "高原特色农产品冷链保鲜技术",
        "category": "应用技术",
        "abstract": "研究了高原特色农产品的冷链保鲜工艺，延长货架期三倍。",
        "keywords": ["冷链", "保鲜"],
        "classification": {"field": "现代农业"},
        "trl": 8,
        "research_period": {"start": "2016-01-01", "end": "2018-12-31"},
        "institutions": [{"name": "云南农业大学", "uscc": a, "region": "530000"}],
        "completers": [{"name": "郑十一"}],
        "secrecy": {"level": "public"},
        "registration_no": "5300002019Y0123",
        "registration_date": "2019-05-20"
    });
    let record = mapper.map(&tree(1, line.clone())).unwrap().unwrap();
    assert_eq!(record.registration_no.as_deref(), Some("5300002019Y0123"));
    assert_eq!(record.source_key, "jsonl-achievement:5300002019y0123");
    let mut expected = line;
    let map = expected.as_object_mut().unwrap();
    map.remove("registration_no");
    map.remove("registration_date");
    assert_eq!(record.record, expected);

    // A line with a field the schema does not have is refused at that field.
    let errors = mapper
        .map(&tree(2, json!({"title": "x", "id": "ach-000001"})))
        .unwrap()
        .unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.pointer == "/id" && e.message_zh.contains("不是")),
        "{errors:#?}"
    );
}

#[test]
fn a_platform_item_with_chinese_member_names_matches_by_column() {
    let m = mapping::shipped("funded-project-list").unwrap().unwrap();
    let mut mapper = m.mapper();
    let lead = uscc("12530000431200000");
    let item = json!({
        "项目编号": "２０２３ＹＦＢ１２３４５６",
        "项目名称": "高原电网智能调度关键技术",
        "计划类别": "国家重点研发计划",
        "项目管理部门": "科学技术部",
        "承担单位": "昆明理工大学",
        "承担单位统一社会信用代码": lead,
        "承担单位所在地区": "云南省",
        "执行期": "2023.01-2025.12",
        "总经费（万元）": "1,200",
        "中央财政经费": 800,
        "自筹经费": "400万元",
        "项目状态": "执行中",
        "密级": "公开",
        "更新时间": "2024-01-01"
    });
    let record = mapper.map(&tree(1, item)).unwrap().unwrap();
    assert_eq!(
        record.source_key,
        "kjjh-xiangmu:国家重点研发计划|2023yfb123456"
    );
    assert_eq!(record.record["project_no"], "2023YFB123456");
    assert_eq!(
        record.record["budget"],
        json!({"total": 1200, "central_fiscal": 800, "self_raised": 400})
    );
    assert_eq!(record.record["status"], "在研");
    assert_eq!(record.record["lead"]["region"], "530000");
    assert_eq!(mapper.unmapped_columns(), ["/更新时间"]);
}

#[test]
fn parallel_star_paths_stay_aligned_when_an_element_lacks_a_value() {
    let m = Mapping::from_toml(XML_MAPPING).unwrap();
    let mut mapper = m.mapper();
    let a = uscc("91530100MA6K00000");
    let element = json!({
        "基本信息": {"成果名称": "稀土功能材料制备技术", "简介": "研究了稀土永磁材料的低成本制备工艺。",
                   "关键词": "稀土", "@领域": "新材料", "就绪度": "6", "起止": "2017.06-2019.05"},
        "单位": {"@代码": a, "名称": "云南稀土新材料有限公司"},
        // The first has no 职称 element, the second an empty one: the third's title stays his.
        "完成人": [{"姓名": "吴十"}, {"姓名": "郑十一", "职称": ""}, {"姓名": "王十二", "职称": "研究员"}],
        "密级": "公开"
    });
    let record = mapper.map(&tree(4, element)).unwrap().unwrap();
    assert_eq!(
        record.record["completers"],
        json!([{"name": "吴十"}, {"name": "郑十一"}, {"name": "王十二", "title": "研究员"}])
    );
}
