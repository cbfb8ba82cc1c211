//! Code lists by their Chinese names: what people write on the form (公开, 成熟, 国际领先水平,
//! 农业、生物新品种…) to the values the schema's enums take.
//!
//! The values are never invented here: each list only names synonyms for values of one enum of
//! the schema, a test checks every target against the schema file, and a mapping that puts a
//! code converter on a field whose enum lacks a target is refused when it is loaded. What a
//! value is called in the schema is always accepted as it is.
//!
//! A cell from a form with check boxes ("☑应用技术 □基础理论 □软科学") gives the ticked items.
//!
//! What it may not touch: the schema's enums (read from `rix-schema`), or where a value goes.

use super::ConvertError;
use super::text::to_halfwidth;

/// A named code list: synonyms for the values of one enum of the schema.
#[derive(Debug, PartialEq, Eq)]
pub struct CodeList {
    /// The converter's name in mapping files (`secrecy`, `stage`, …).
    pub name: &'static str,
    /// What it is, in Chinese, for messages.
    pub label_zh: &'static str,
    /// What it is, in English, for messages.
    pub label_en: &'static str,
    /// Where in the schema its enum is (kind file and JSON Pointer of a field using it); the
    /// tests check the targets against it.
    pub schema_field: (&'static str, &'static str),
    /// Written form → schema value. Keys are compared after [`code_key`].
    pub synonyms: &'static [(&'static str, &'static str)],
}

/// The key a written code is compared by: half-width, white space removed, ASCII lower-cased,
/// and 其它 (a common variant) written 其他.
pub fn code_key(s: &str) -> String {
    to_halfwidth(s)
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect::<String>()
        .replace("其它", "其他")
}

/// Every built-in code list.
pub const CODE_LISTS: &[CodeList] = &[
    CodeList {
        name: "category",
        label_zh: "成果类别",
        label_en: "result category",
        schema_field: ("achievement", "/category"),
        synonyms: &[
            ("应用技术成果", "应用技术"),
            ("应用技术类", "应用技术"),
            ("应用类", "应用技术"),
            ("应用", "应用技术"),
            ("y", "应用技术"),
            ("基础理论成果", "基础理论"),
            ("基础理论类", "基础理论"),
            ("基础研究", "基础理论"),
            ("基础研究成果", "基础理论"),
            ("j", "基础理论"),
            ("软科学成果", "软科学"),
            ("软科学类", "软科学"),
            ("软科学研究", "软科学"),
            ("r", "软科学"),
        ],
    },
    CodeList {
        name: "secrecy",
        label_zh: "成果密级",
        label_en: "secrecy level",
        schema_field: ("achievement", "/secrecy/level"),
        synonyms: &[
            ("公开", "public"),
            ("非密", "public"),
            ("不涉密", "public"),
            ("无", "public"),
            ("内部", "internal"),
            ("秘密", "secret"),
            ("机密", "confidential"),
            ("绝密", "top_secret"),
        ],
    },
    CodeList {
        name: "stage",
        label_zh: "所处阶段",
        label_en: "stage",
        schema_field: ("achievement", "/stage"),
        synonyms: &[
            ("初期", "初期阶段"),
            ("初级阶段", "初期阶段"),
            ("中期", "中期阶段"),
            ("成熟", "成熟应用阶段"),
            ("成熟应用", "成熟应用阶段"),
            ("成熟阶段", "成熟应用阶段"),
        ],
    },
    CodeList {
        name: "innovation",
        label_zh: "成果属性（创新类型）",
        label_en: "innovation attribute",
        schema_field: ("achievement", "/innovation_attribute"),
        synonyms: &[
            ("原始性创新", "原始创新"),
            ("集成性创新", "集成创新"),
            ("国外引进消化吸收创新", "引进消化吸收再创新"),
            ("引进消化吸收创新", "引进消化吸收再创新"),
            ("引进吸收再创新", "引进消化吸收再创新"),
        ],
    },
    CodeList {
        name: "level",
        label_zh: "成果水平",
        label_en: "level",
        schema_field: ("achievement", "/level"),
        synonyms: &[
            ("国际领先水平", "国际领先"),
            ("国际先进水平", "国际先进"),
            ("国内领先水平", "国内领先"),
            ("国内先进水平", "国内先进"),
        ],
    },
    CodeList {
        name: "forms",
        label_zh: "成果体现形式",
        label_en: "form of the result",
        schema_field: ("achievement", "/forms/0"),
        synonyms: &[
            ("学术论文", "论文"),
            ("科技论文", "论文"),
            ("计算机软件", "软件"),
            ("软件著作权", "软件"),
            ("技术标准", "标准"),
            ("新装备", "新装置"),
            ("新设备", "新装置"),
            ("农业、生物新品种", "生物新品种"),
            ("农业生物新品种", "生物新品种"),
            ("动植物新品种", "生物新品种"),
            ("新品种", "生物新品种"),
            ("报告", "研究报告"),
            ("咨询报告", "研究报告"),
            ("其他应用技术", "其他"),
        ],
    },
    CodeList {
        name: "evaluation_method",
        label_zh: "评价方式",
        label_en: "evaluation method",
        schema_field: ("achievement", "/evaluation/method"),
        synonyms: &[
            ("成果鉴定", "鉴定"),
            ("成果评价", "评价"),
            ("项目验收", "验收"),
            ("结题验收", "结题"),
        ],
    },
    CodeList {
        name: "transfer_mode",
        label_zh: "转化方式",
        label_en: "transfer mode",
        schema_field: ("achievement", "/transfer/modes/0"),
        synonyms: &[
            ("技术转让", "转让"),
            ("专利转让", "转让"),
            ("技术许可", "许可"),
            ("许可使用", "许可"),
            ("专利许可", "许可"),
            ("技术入股", "作价投资"),
            ("作价入股", "作价投资"),
            ("合作研发", "合作开发"),
        ],
    },
    CodeList {
        name: "transfer_status",
        label_zh: "转化状态",
        label_en: "transfer status",
        schema_field: ("achievement", "/transfer/status"),
        synonyms: &[("正在转化", "转化中"), ("尚未转化", "未转化")],
    },
    CodeList {
        name: "application_status",
        label_zh: "应用情况",
        label_en: "application status",
        schema_field: ("achievement", "/application/status"),
        synonyms: &[
            ("尚未应用", "未应用"),
            ("小批量应用", "小批量或小范围应用"),
            ("小范围应用", "小批量或小范围应用"),
            ("规模应用", "已规模应用"),
            ("大规模应用", "已规模应用"),
        ],
    },
    CodeList {
        name: "ip_type",
        label_zh: "知识产权类型",
        label_en: "IP type",
        schema_field: ("achievement", "/ip/0/type"),
        synonyms: &[
            ("发明", "发明专利"),
            ("实用新型", "实用新型专利"),
            ("外观设计", "外观设计专利"),
            ("pct专利", "国际专利"),
            ("pct", "国际专利"),
            ("计算机软件著作权", "软件著作权"),
            ("软著", "软件著作权"),
            ("植物新品种", "植物新品种权"),
            ("集成电路布图设计专有权", "集成电路布图设计"),
        ],
    },
    CodeList {
        name: "ip_status",
        label_zh: "知识产权状态",
        label_en: "IP status",
        schema_field: ("achievement", "/ip/0/status"),
        synonyms: &[
            ("受理", "申请中"),
            ("已受理", "申请中"),
            ("授权", "已授权"),
            ("失效", "已失效"),
        ],
    },
    CodeList {
        name: "unit_type",
        label_zh: "单位性质",
        label_en: "kind of institution",
        schema_field: ("achievement", "/institutions/0/unit_type"),
        synonyms: &[
            ("高校", "高等院校"),
            ("大专院校", "高等院校"),
            ("大学", "高等院校"),
            ("科研机构", "科研院所"),
            ("独立科研机构", "科研院所"),
            ("研究院所", "科研院所"),
            ("医院", "医疗机构"),
            ("机关", "政府机关"),
        ],
    },
    CodeList {
        name: "degree",
        label_zh: "学位",
        label_en: "degree",
        schema_field: ("achievement", "/completers/0/degree"),
        synonyms: &[
            ("博士研究生", "博士"),
            ("硕士研究生", "硕士"),
            ("本科", "学士"),
            ("无", "其他"),
        ],
    },
    CodeList {
        name: "field",
        label_zh: "技术领域",
        label_en: "technology field",
        schema_field: ("achievement", "/classification/field"),
        synonyms: &[
            ("电子与信息", "电子信息"),
            ("生物医药", "生物与新医药"),
            ("新能源及节能", "新能源与节能"),
            ("资源与环境保护", "资源与环境"),
            ("先进制造", "先进制造与自动化"),
            ("农业", "现代农业"),
        ],
    },
    CodeList {
        name: "project_status",
        label_zh: "项目状态",
        label_en: "project status",
        schema_field: ("funded_project", "/status"),
        synonyms: &[
            ("已立项", "立项"),
            ("执行中", "在研"),
            ("实施中", "在研"),
            ("已结题", "结题"),
            ("通过验收", "验收通过"),
            ("已验收", "验收通过"),
            ("未通过验收", "验收不通过"),
            ("已终止", "终止"),
        ],
    },
    CodeList {
        name: "acceptance_conclusion",
        label_zh: "验收结论",
        label_en: "acceptance conclusion",
        schema_field: ("funded_project", "/acceptance/conclusion"),
        synonyms: &[
            ("验收通过", "通过"),
            ("合格", "通过"),
            ("验收不通过", "不通过"),
            ("不合格", "不通过"),
        ],
    },
];

/// The built-in code list named `name`.
pub fn code_list(name: &str) -> Option<&'static CodeList> {
    CODE_LISTS.iter().find(|l| l.name == name)
}

/// Marks of a ticked box on a printed form, and of an empty one.
const TICKED: [char; 6] = ['☑', '☒', '■', '√', '✓', '✔'];
const UNTICKED: [char; 2] = ['□', '☐'];

/// If the text is a row of check boxes ("☑应用技术 □基础理论"), the ticked items' texts.
pub fn ticked_items(text: &str) -> Option<Vec<String>> {
    if !text.contains(UNTICKED) && !text.starts_with(TICKED) {
        return None;
    }
    let mut items = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| TICKED.contains(&c) || UNTICKED.contains(&c)) {
        let mark = rest[at..].chars().next().expect("found");
        let after = &rest[at + mark.len_utf8()..];
        let end = after
            .find(|c: char| TICKED.contains(&c) || UNTICKED.contains(&c))
            .unwrap_or(after.len());
        if TICKED.contains(&mark) {
            let item = after[..end]
                .trim()
                .trim_end_matches(['，', ',', '；', ';', '、']);
            if !item.trim().is_empty() {
                items.push(item.trim().to_owned());
            }
        }
        rest = &after[end..];
    }
    Some(items)
}

/// Looks a written value up: the schema's values as written, the mapping's own `values` (keys
/// already [`code_key`]ed), the list's synonyms, then the schema's values again compared by
/// [`code_key`]. `allowed` are the schema enum's values.
pub fn lookup(
    written: &str,
    list: Option<&CodeList>,
    allowed: &[String],
    extra: &[(String, String)],
) -> Result<String, ConvertError> {
    // Most cells are written exactly as the schema or the list writes them.
    let trimmed = written.trim();
    if let Some(v) = allowed.iter().find(|v| *v == trimmed) {
        return Ok(v.clone());
    }
    let key = code_key(written);
    if let Some((_, v)) = extra.iter().find(|(k, _)| *k == key) {
        return Ok(v.clone());
    }
    // Synonyms are written in their key form (a test checks it).
    if let Some((_, v)) = list.and_then(|l| l.synonyms.iter().find(|(k, _)| *k == key)) {
        return Ok((*v).to_owned());
    }
    if let Some(v) = allowed.iter().find(|v| code_key(v) == key) {
        return Ok(v.clone());
    }
    // 秘密★5年: the level before the star.
    if let Some((level, _)) = written.split_once(['★', '*'])
        && !level.trim().is_empty()
    {
        return lookup(level, list, allowed, extra);
    }
    let (label_zh, label_en) =
        list.map_or(("代码表", "code list"), |l| (l.label_zh, l.label_en));
    let shown: Vec<String> = match list {
        // Show what people write (公开, 内部…) where the schema's values are English.
        Some(l) if allowed.iter().all(|v| v.is_ascii()) => allowed
            .iter()
            .map(|v| {
                let written: Vec<&str> = l
                    .synonyms
                    .iter()
                    .filter(|(_, t)| t == v)
                    .map(|(k, _)| *k)
                    .take(1)
                    .collect();
                match written.first() {
                    Some(w) => format!("{w}({v})"),
                    None => v.clone(),
                }
            })
            .collect(),
        _ => allowed.to_vec(),
    };
    let written = written.trim();
    Err(ConvertError::new(
        format!(
            "「{written}」不是{label_zh}中的值；可填：{}",
            shown.join("、")
        ),
        format!(
            "{written:?} is not a value of the {label_en} list; expected one of: {}",
            shown.join(", ")
        ),
    ))
}

/// The phrases of a list that contain a list separator and must be kept whole when a cell is
/// split ("农业、生物新品种").
pub fn joined_phrases(list: Option<&CodeList>) -> impl Iterator<Item = &'static str> {
    list.into_iter().flat_map(|l| {
        l.synonyms
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| k.contains(['、', ',', '，', ';', '；']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rix_schema::schemas;

    /// The enum at `pointer` of a kind's schema, following `$ref`s and `items`.
    fn schema_enum(file: &str, pointer: &str) -> Vec<String> {
        let file = schemas::by_name(file).unwrap();
        let (mut file, mut node) = (file, file.json());
        let segments: Vec<&str> = pointer.split('/').skip(1).collect();
        let mut i = 0;
        loop {
            if let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
                (file, node) = file.resolve(r);
                continue;
            }
            let Some(seg) = segments.get(i) else { break };
            node = if seg.parse::<usize>().is_ok() {
                &node["items"]
            } else {
                &node["properties"][*seg]
            };
            i += 1;
        }
        node["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{pointer} has no enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_code_list_names_only_values_of_its_schema_enum() {
        for list in CODE_LISTS {
            let allowed = schema_enum(list.schema_field.0, list.schema_field.1);
            for (written, value) in list.synonyms {
                assert!(
                    allowed.iter().any(|a| a == value),
                    "{}: {written} → {value} is not in {allowed:?}",
                    list.name
                );
                assert_eq!(
                    code_key(written),
                    *written,
                    "{}: keys are written as compared",
                    list.name
                );
            }
        }
    }

    fn look(list: &str, written: &str) -> Result<String, ConvertError> {
        let list = code_list(list).unwrap();
        let allowed = schema_enum(list.schema_field.0, list.schema_field.1);
        lookup(written, Some(list), &allowed, &[])
    }

    #[test]
    fn the_forms_chinese_names_map_to_schema_values() {
        assert_eq!(look("secrecy", "公开").unwrap(), "public");
        assert_eq!(look("secrecy", " 内部 ").unwrap(), "internal");
        assert_eq!(look("secrecy", "秘密").unwrap(), "secret");
        assert_eq!(look("secrecy", "机密★10年").unwrap(), "confidential");
        assert_eq!(look("secrecy", "绝密").unwrap(), "top_secret");
        assert_eq!(look("secrecy", "public").unwrap(), "public");
        assert_eq!(look("stage", "成熟").unwrap(), "成熟应用阶段");
        assert_eq!(look("stage", "中期阶段").unwrap(), "中期阶段");
        assert_eq!(look("level", "国际先进水平").unwrap(), "国际先进");
        assert_eq!(look("level", "其它").unwrap(), "其他");
        assert_eq!(look("category", "软科学").unwrap(), "软科学");
        assert_eq!(look("category", "基础理论成果").unwrap(), "基础理论");
        assert_eq!(look("innovation", "原始性创新").unwrap(), "原始创新");
        assert_eq!(look("forms", "计算机软件").unwrap(), "软件");
        assert_eq!(look("unit_type", "高校").unwrap(), "高等院校");
        assert_eq!(look("project_status", "在研").unwrap(), "在研");
    }

    #[test]
    fn an_unknown_value_names_the_list_and_what_may_be_written() {
        let err = look("secrecy", "保密").unwrap_err();
        assert!(
            err.zh.contains("保密") && err.zh.contains("公开(public)"),
            "{}",
            err.zh
        );
        assert!(err.en.contains("secrecy level"), "{}", err.en);
        let err = look("stage", "后期").unwrap_err();
        assert!(err.zh.contains("成熟应用阶段"), "{}", err.zh);
    }

    #[test]
    fn a_mappings_own_values_come_first() {
        let list = code_list("forms").unwrap();
        let allowed = schema_enum("achievement", "/forms/0");
        let extra = vec![("新技术".to_owned(), "其他".to_owned())];
        assert_eq!(
            lookup("新技术", Some(list), &allowed, &extra).unwrap(),
            "其他"
        );
        assert!(lookup("新技术", Some(list), &allowed, &[]).is_err());
    }

    #[test]
    fn ticked_check_boxes_are_read() {
        assert_eq!(
            ticked_items("☑应用技术 □基础理论 □软科学").unwrap(),
            ["应用技术"]
        );
        assert_eq!(ticked_items("□论文 ■专利 √软件").unwrap(), ["专利", "软件"]);
        assert_eq!(ticked_items("应用技术"), None);
        assert_eq!(
            joined_phrases(code_list("forms")).collect::<Vec<_>>(),
            ["农业、生物新品种"]
        );
    }
}
