//! What a validation error means for the person who filled in the sheet, in Chinese beside the
//! validator's English: "「成果简介」内容过短：至少 10 个字符，实为 4 个" rather than
//! `"abc" is shorter than 10 characters`.
//!
//! Why here: `rix-schema` reports in English for every client; an importer's report is read by
//! a provincial clerk. The Chinese is derived from the schema at the error's pointer and the
//! value found there (or, for the rules in code, from the message's subject), so it says what
//! was found and what is expected; the English message is kept as the validator wrote it.
//!
//! What it may not touch: which errors there are (the validator's) or where they came from (the
//! mapper's).

use rix_schema::{FieldError, RecordKind};
use serde_json::Value;

use super::target::SchemaNode;

/// A value for a message: text as it is (cut at 40 characters), anything else as JSON.
fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(40).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn type_zh(t: &str) -> &'static str {
    match t {
        "string" => "文本",
        "number" => "数字",
        "integer" => "整数",
        "boolean" => "是/否",
        "array" => "列表",
        "object" => "一组字段",
        _ => "其他类型",
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The Chinese and English messages of a validation error. `column` is the source column it
/// came from, if known, and `missing` whether that column is absent from the header.
pub(super) fn describe(
    kind: RecordKind,
    record: &Value,
    error: &FieldError,
    column: Option<&str>,
    missing: bool,
    registration_no: Option<&str>,
) -> (String, String) {
    let subject = column.map_or_else(|| error.pointer.clone(), |c| format!("「{c}」"));
    let en_subject = column.map_or_else(|| error.pointer.clone(), str::to_owned);
    let message = error.message.as_str();
    if message == "is required but missing" {
        return if missing {
            (
                format!(
                    "缺少必填项 {}：表头中没有「{}」列",
                    error.pointer,
                    column.unwrap_or_default()
                ),
                format!(
                    "{} is required but column {} is not in the header",
                    error.pointer,
                    column.unwrap_or_default()
                ),
            )
        } else if let Some(c) = column {
            (
                format!("必填项「{c}」为空"),
                format!("{} is required but column {c} is empty", error.pointer),
            )
        } else {
            (
                format!("缺少必填项 {}（映射文件没有对应的列）", error.pointer),
                format!(
                    "{} is required but missing (no column of the mapping gives it)",
                    error.pointer
                ),
            )
        };
    }
    if message == "is not a field of this schema" {
        return (
            format!(
                "{} 不是{}模式中的字段（请检查映射文件）",
                error.pointer, kind
            ),
            format!(
                "{} is not a field of the {kind} schema (check the mapping)",
                error.pointer
            ),
        );
    }
    let en = format!("{en_subject}: {message}");
    let value = if error.pointer == "/registration_no" {
        registration_no.map(|s| Value::String(s.to_owned()))
    } else {
        record.pointer(&error.pointer).cloned()
    };
    // The rules in code, by their subject.
    let rule = [
        ("social credit code", "统一社会信用代码无效"),
        ("region code", "行政区划代码无效"),
        (
            "province-level code",
            "行政区划代码无效：不是已知的省级代码",
        ),
        (
            "county part",
            "行政区划代码无效：有县级部分却没有地市级部分",
        ),
        ("listed twice", "关键词重复"),
        ("cannot be blank", "不能为空白"),
        ("before it starts", "结束日期早于开始日期"),
        (
            "technology readiness level",
            "应用技术成果必须填写技术就绪度（1–9）",
        ),
        (
            "category flag",
            "批准登记号的类别标志与成果类别不一致（应用技术 Y、基础理论 J、软科学 R）",
        ),
        ("issuer code", "批准登记号的发证机关代码无效"),
        ("add up to", "经费合计与中央财政、地方财政、自筹之和不一致"),
        (
            "requires the acceptance record",
            "该项目状态需要填写验收信息",
        ),
        ("requires conclusion", "验收结论与项目状态不一致"),
        (
            "cannot be before the project started",
            "日期早于项目开始日期",
        ),
        ("line break", "这是单行字段，不能换行"),
        ("control character", "含有控制字符，请删除"),
        ("bidirectional", "含有改变文字显示方向的控制字符，请删除"),
        ("carriage return", "含有回车符，请删除"),
        ("decision", "密级变更需要降解密决定"),
        ("JSON Pointer", "不是有效的字段路径"),
        ("cannot be confidential", "该字段不能声明为商业秘密"),
        ("points at no field", "指向的字段不存在"),
    ];
    if let Some((_, zh)) = rule.iter().find(|(needle, _)| message.contains(needle)) {
        let found = value
            .as_ref()
            .map(|v| format!("（填写的是「{}」）", shown(v)))
            .unwrap_or_default();
        return (format!("{subject}：{zh}{found}"), en);
    }
    let Some(node) = SchemaNode::at_pointer(kind, &error.pointer) else {
        return (format!("{subject}：校验未通过（{message}）"), en);
    };
    let Some(value) = value else {
        return (format!("{subject}：校验未通过（{message}）"), en);
    };
    let zh = describe_value(node, &value);
    (format!("{subject}：{zh}"), en)
}

/// A 登记日期 on a row without a 批准登记号: a registered result has its number, and a new one
/// is dated by the node when it is approved, so the date cannot be kept and is not dropped
/// silently either.
pub(super) fn date_without_number(date: &str) -> (String, String) {
    (
        format!(
            "有登记日期（{date}）却没有批准登记号：已登记的成果请填写其批准登记号；尚未登记的新成果请清空登记日期（由节点在批准时确定）"
        ),
        format!(
            "a 登记日期 ({date}) without a 批准登记号: give a registered result its number; for a new result leave the date empty (the node dates it when it is approved)"
        ),
    )
}

/// What is wrong with a value against its schema node, in Chinese.
fn describe_value(node: SchemaNode, value: &Value) -> String {
    let s = node.json;
    let found = shown(value);
    if let Some(values) = node.enum_values()
        && !values.iter().any(|v| Some(v.as_str()) == value.as_str())
    {
        return format!("「{found}」不在代码表中；可填：{}", values.join("、"));
    }
    if let Some(declared) = node.type_name() {
        let actual = json_type(value);
        if actual != declared && !(declared == "number" && actual == "integer") {
            return format!("应为{}，填写的是「{found}」", type_zh(declared));
        }
    }
    match value {
        Value::String(text) => {
            let n = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && n < min
            {
                return format!("内容过短：至少 {min} 个字符，实为 {n} 个");
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && n > max
            {
                return format!("内容过长：至多 {max} 个字符，实为 {n} 个");
            }
            if s.get("format").and_then(Value::as_str) == Some("date") {
                return format!("「{found}」不是有效日期（应为 YYYY-MM-DD）");
            }
            if s.get("format").and_then(Value::as_str) == Some("email") {
                return format!("「{found}」不是有效的电子邮箱地址");
            }
            if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
                return format!("「{found}」格式不符合要求（应匹配 {pattern}）");
            }
            format!("「{found}」校验未通过")
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(min) = s.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                return format!("{found} 小于最小值 {min}");
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                return format!("{found} 大于最大值 {max}");
            }
            format!("{found} 校验未通过")
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                return format!("至少要有 {min} 项，实有 {n} 项");
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                return format!("至多 {max} 项，实有 {n} 项");
            }
            if s.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
                return "有重复项".to_owned();
            }
            "列表校验未通过".to_owned()
        }
        _ => format!("「{found}」校验未通过"),
    }
}
