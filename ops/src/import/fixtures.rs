//! Import fixtures: files in the layouts provinces really keep, made from the sample
//! generator's records, with the messes real files have and rows broken on purpose — and, for
//! each file, what an import of it must give: the records (as the node must store them) and
//! the refusals (row, column, pointer).
//!
//! What for: the round-trip tests of `rix import` (every generated record recovered exactly,
//! every broken row refused where it is broken), `rix import-fixtures` for an operator who
//! wants a template to fill or to try the import on, and `rix demo` / `rix bench import`,
//! which need a real 登记表 workbook.
//!
//! The files ([`write_all`]):
//! - `科技成果登记表.xlsx` ([`achievement_form_xlsx`], read by the shipped `achievement-form`
//!   mapping): the national 科技成果登记表 layout over two yearly sheets and a hidden 代码表 sheet;
//!   a merged title row and a 填报单位 row above a two-row header (第一完成单位 grouped over 名称 |
//!   统一社会信用代码 | 所在地区 | 单位性质, the other header cells merged down), a note row under
//!   it, blank rows, the header repeated half way (a sheet printed page by page), 推荐单位 merged
//!   down over runs of rows, a closing 说明 row; dates as Excel date cells and as text in every
//!   form the date converter lists (2019年3月5日, 2019.03.05, 2019/3/5, 20190305, full-width
//!   digits, 2019年3月, 2019.03, 2019-3, a 研究起止时间 period), numbers stored as text (TRL
//!   "ＴＲＬ７", "7级", amounts "1,234.5", "12.5万元"), full-width codes, trailing spaces,
//!   category check boxes ("☑应用技术 □基础理论 □软科学"), lists joined with ；、， and spaces.
//! - `科技计划项目一览表.csv` ([`project_list_gbk_csv`], the shipped `funded-project-list`
//!   mapping): GBK, CRLF, a title and a 填报单位 line above the header, blank lines, a closing
//!   note, amounts with thousands separators and units, full-width project numbers.
//! - `成果登记数据.xml` ([`achievement_xml`], the shipped `achievement-xml` mapping): the desktop
//!   registration system's export, one `<成果>` per result, every field of the form.
//!
//! What a layout cannot carry ([`form_view`], [`project_list_view`], [`xml_view`]) is decided
//! here, once, and the expected records are the generator's records with exactly that taken
//! away; everything else must come back from the node exactly. The node's own fields
//! (`registration_no` and `registration_date`, which travel beside the record) are never part
//! of an expected record: a historical record's 批准登记号 and 登记日期 are expected beside it
//! ([`ExpectedRecord::registration_no`], [`ExpectedRecord::registration_date`]), kept by the
//! node as they are.
//!
//! What it may not touch: the mappings' meaning (it writes what they read; the tests prove it
//! by importing) or any service: it only writes files.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use rix_schema::{RecordKind, SecrecyLevel};
use rust_xlsxwriter::{ExcelDateTime, Format, FormatAlign, Workbook, Worksheet};
use serde::Serialize;
use serde_json::{Map, Value};

/// Generator indexes of the records broken rows are made from: far from any good record's, so
/// that no broken row shares an identity (title, registration number) with a good one.
const BROKEN_BASE: u64 = 500_000;

/// Generator indexes of the XML file's achievements: another range than the workbook's, so
/// that the two files never hold the same 批准登记号.
const XML_BASE: u64 = 200_000;

/// What to write.
#[derive(Debug, Clone)]
pub struct FixtureSpec {
    /// The generator: its seed, the province (whose 批准登记号 issuer the node must have) and the
    /// shares of internal and classified records.
    pub config: SampleConfig,
    /// Achievements in the 登记表 workbook (generator indexes `0..n`).
    pub form_achievements: u64,
    /// Achievements in the XML export (indexes from 200,000).
    pub xml_achievements: u64,
    /// Projects in the GBK CSV (indexes `0..n`).
    pub projects: u64,
    /// Add the broken rows: one per [`Breakage`] that fits each layout.
    pub broken: bool,
}

impl Default for FixtureSpec {
    /// Yunnan (530000), seed 20161, 10 % internal and 8 % classified records, 40 achievements
    /// in the workbook, 12 in the XML, 15 projects, broken rows included.
    fn default() -> Self {
        FixtureSpec {
            config: SampleConfig {
                share_classified: 0.08,
                ..SampleConfig::default()
            },
            form_achievements: 40,
            xml_achievements: 12,
            projects: 15,
            broken: true,
        }
    }
}

impl FixtureSpec {
    /// The same spec for another province (its region code, e.g. `210000`).
    pub fn for_province(mut self, region: &str) -> FixtureSpec {
        self.config.node = NodeProfile::province(region);
        self
    }
}

/// The layout of a fixture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// 科技成果登记表 workbook, mapping `achievement-form`.
    AchievementForm,
    /// 科技计划项目一览表 in GBK, mapping `funded-project-list`.
    ProjectListCsv,
    /// 科技成果登记数据 XML, mapping `achievement-xml`.
    AchievementXml,
}

impl Layout {
    /// The shipped mapping that reads it.
    pub fn mapping(self) -> &'static str {
        match self {
            Layout::AchievementForm => "achievement-form",
            Layout::ProjectListCsv => "funded-project-list",
            Layout::AchievementXml => "achievement-xml",
        }
    }

    /// The kind of its records.
    pub fn kind(self) -> RecordKind {
        match self {
            Layout::ProjectListCsv => RecordKind::FundedProject,
            _ => RecordKind::Achievement,
        }
    }
}

/// Where a broken row is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// By the mapping, before anything is sent (`rix import --dry-run` refuses it too).
    Mapping,
    /// By the node: the record is valid, but the node will not take it.
    Node,
}

/// A kind of broken row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breakage {
    /// 成果名称 (项目名称…) left empty.
    MissingTitle,
    /// A date that is none (2019年13月).
    BadDate,
    /// A research period that ends before it starts.
    EndBeforeStart,
    /// A USCC whose check character is wrong.
    BadUscc,
    /// A region that does not exist (火星).
    BadRegion,
    /// 成果密级 not on the list (保密).
    UnknownSecrecy,
    /// 成果密级 left empty: a blank must not make a result public.
    MissingSecrecy,
    /// TRL out of 1–9.
    BadTrl,
    /// 成果简介 shorter than the schema's 10 characters.
    ShortAbstract,
    /// An amount that is no number (面议).
    BadAmount,
    /// A 批准登记号 whose category flag is not the record's.
    WrongRegistrationFlag,
    /// A project status not on the list.
    UnknownStatus,
    /// A well-formed 批准登记号 issued by another province: valid here, refused by the node,
    /// which imports only numbers it issued.
    ForeignRegistrationNo,
}

impl Breakage {
    /// Where it is refused.
    pub fn stage(self) -> Stage {
        match self {
            Breakage::ForeignRegistrationNo => Stage::Node,
            _ => Stage::Mapping,
        }
    }
}

/// A record an import of the file must register, as the node must then hold it.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectedRecord {
    /// The sheet it is on (workbooks).
    pub sheet: Option<String>,
    /// Its row (sheet row, CSV line, XML element ordinal), as the error report and the
    /// checkpoint number rows.
    pub row: u64,
    /// The generator index it was made from.
    pub index: u64,
    /// The record without `registration_no` and `registration_date` (the node's fields), and
    /// without what the layout cannot carry.
    pub record: Value,
    /// The 批准登记号 it carries: imported as approved under it (an administrator's token).
    pub registration_no: Option<String>,
    /// The 登记日期 it carries with its number: the node keeps it.
    pub registration_date: Option<String>,
    /// 秘密 and above: registered at the node, never leaving it.
    pub classified: bool,
}

impl ExpectedRecord {
    /// The title.
    pub fn title(&self) -> &str {
        self.record["title"].as_str().unwrap_or_default()
    }
}

/// A broken row, and where the import must say it is broken.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectedRefusal {
    /// The sheet (workbooks).
    pub sheet: Option<String>,
    /// The row.
    pub row: u64,
    /// The source column (header text as the report shows it, or the XML path) of the value
    /// refused, by the mapping or by the node.
    pub column: Option<String>,
    /// JSON Pointer into the record.
    pub pointer: String,
    /// What was broken.
    pub breakage: Breakage,
}

impl ExpectedRefusal {
    /// Where it is refused.
    pub fn stage(&self) -> Stage {
        self.breakage.stage()
    }
}

/// One fixture file and what importing it must give.
#[derive(Debug, Clone, Serialize)]
pub struct FixtureFile {
    /// The file.
    pub path: PathBuf,
    /// Its layout.
    pub layout: Layout,
    /// The shipped mapping that reads it (`rix import --mapping NAME`).
    pub mapping: &'static str,
    /// The records it must give, in file order.
    pub records: Vec<ExpectedRecord>,
    /// The refusals it must give, in file order.
    pub refusals: Vec<ExpectedRefusal>,
}

impl FixtureFile {
    /// Rows that become records or refusals (the data rows).
    pub fn data_rows(&self) -> usize {
        self.records.len() + self.refusals.len()
    }
}

/// Why a fixture could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// Writing the file failed.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A value cannot be written in the file's encoding.
    #[error("{path}: a value is not representable in GBK: {text}")]
    Encoding {
        /// The file.
        path: PathBuf,
        /// The text.
        text: String,
    },
}

fn write_error(path: &Path, e: impl std::fmt::Display) -> FixtureError {
    FixtureError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Writes the three fixture files into `dir` (created if missing): `科技成果登记表.xlsx`,
/// `科技计划项目一览表.csv` and `成果登记数据.xml`, and `expected.json` beside them (every
/// [`FixtureFile`] as JSON, for scripts).
pub fn write_all(dir: &Path, spec: &FixtureSpec) -> Result<Vec<FixtureFile>, FixtureError> {
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    let generator = SampleGenerator::new(spec.config.clone());
    let files = vec![
        achievement_form_xlsx(
            &dir.join("科技成果登记表.xlsx"),
            &generator,
            spec.form_achievements,
            spec.broken,
        )?,
        project_list_gbk_csv(
            &dir.join("科技计划项目一览表.csv"),
            &generator,
            spec.projects,
            spec.broken,
        )?,
        achievement_xml(
            &dir.join("成果登记数据.xml"),
            &generator,
            spec.xml_achievements,
            spec.broken,
        )?,
    ];
    let manifest = dir.join("expected.json");
    let text = serde_json::to_vec_pretty(&files).expect("fixtures serialize");
    std::fs::write(&manifest, text).map_err(|e| write_error(&manifest, e))?;
    Ok(files)
}

// ------------------------------------------------------------------ what a layout carries

fn take(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a parent");
    if let Some(Value::Object(map)) = if parent.is_empty() {
        Some(&mut *v)
    } else {
        v.pointer_mut(parent)
    } {
        map.remove(key);
    }
}

/// Keeps only `keys` of every element of the array at `pointer`.
fn keep_keys(v: &mut Value, pointer: &str, from: usize, keys: &[&str]) {
    if let Some(Value::Array(items)) = v.pointer_mut(pointer) {
        for item in items.iter_mut().skip(from) {
            if let Value::Object(map) = item {
                map.retain(|k, _| keys.contains(&k.as_str()));
            }
        }
    }
}

/// Drops `key` from every element of the array at `pointer` unless every element has it: a
/// sheet's parallel list (完成人 | 完成人职称) lines up by position, so a list with holes
/// cannot be written in one cell.
fn keep_if_all(v: &mut Value, pointer: &str, key: &str) {
    if let Some(Value::Array(items)) = v.pointer_mut(pointer) {
        let all = items.iter().all(|i| i.get(key).is_some());
        if !all {
            for item in items {
                if let Value::Object(map) = item {
                    map.remove(key);
                }
            }
        }
    }
}

/// The record a generated achievement becomes through the 登记表 sheet: what the form has no
/// column for is left out — the node's `registration_no` and `registration_date` (carried
/// beside); `ip` (知识产权); the 降解密 decision; `confidential_fields`; every
/// project source but the first, and its 专项 and 下达单位; the other institutions' 单位性质;
/// the completers' 学历, 分工, 身份证号, 电话 and 电子邮箱 — and their 职称 or 工作单位 unless
/// every completer has one (one cell holds the list); 转化条件.
pub fn form_view(achievement: &Value) -> Value {
    let mut v = achievement.clone();
    for p in [
        "/registration_no",
        "/registration_date",
        "/ip",
        "/confidential_fields",
        "/secrecy/decision",
        "/transfer/conditions",
    ] {
        take(&mut v, p);
    }
    if let Some(Value::Array(funding)) = v.get_mut("funding") {
        funding.truncate(1);
    }
    keep_keys(&mut v, "/funding", 0, &["program", "project_no"]);
    keep_keys(&mut v, "/institutions", 1, &["name", "uscc", "region"]);
    keep_keys(&mut v, "/completers", 0, &["name", "title", "institution"]);
    keep_if_all(&mut v, "/completers", "title");
    keep_if_all(&mut v, "/completers", "institution");
    if v.get("transfer")
        .is_some_and(|t| t.as_object().is_some_and(Map::is_empty))
    {
        take(&mut v, "/transfer");
    }
    v
}

/// The record a generated project becomes through the 项目一览表: without the 下达部门's region,
/// the participants' 单位性质, the 负责人's 学历, 工作单位, 分工 and 身份证号, the 降解密 decision
/// and `confidential_fields` (no columns for them).
pub fn project_list_view(project: &Value) -> Value {
    let mut v = project.clone();
    for p in [
        "/funder/region",
        "/secrecy/decision",
        "/confidential_fields",
        "/pi/degree",
        "/pi/institution",
        "/pi/contribution",
        "/pi/id_number",
    ] {
        take(&mut v, p);
    }
    keep_keys(&mut v, "/participants", 0, &["name", "uscc", "region"]);
    v
}

/// The record a generated achievement becomes through the XML export: everything but the
/// node's `registration_no` and `registration_date` (carried beside).
pub fn xml_view(achievement: &Value) -> Value {
    let mut v = achievement.clone();
    take(&mut v, "/registration_no");
    take(&mut v, "/registration_date");
    v
}

fn classified(record: &Value) -> bool {
    SecrecyLevel::of_record(record).is_some_and(|l| !l.may_leave_node())
}

// ------------------------------------------------------------------ values as people write them

/// A cell as it is written.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Empty,
    Text(String),
    Number(f64),
    Date(u16, u8, u8),
}

impl Out {
    fn text(s: impl Into<String>) -> Out {
        let s = s.into();
        if s.is_empty() {
            Out::Empty
        } else {
            Out::Text(s)
        }
    }

    /// As CSV or XML text (a date cell as ISO text).
    fn as_text(&self) -> String {
        match self {
            Out::Empty => String::new(),
            Out::Text(s) => s.clone(),
            Out::Number(n) => format_number(*n),
            Out::Date(y, m, d) => format!("{y:04}-{m:02}-{d:02}"),
        }
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// ASCII letters, digits and punctuation as their full-width forms.
fn fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
            _ => c,
        })
        .collect()
}

fn s<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn text_at(v: &Value, pointer: &str) -> Out {
    s(v, pointer).map_or(Out::Empty, Out::text)
}

fn list_at(v: &Value, pointer: &str, key: Option<&str>, sep: &str) -> Out {
    let Some(items) = v.pointer(pointer).and_then(Value::as_array) else {
        return Out::Empty;
    };
    let texts: Vec<&str> = items
        .iter()
        .filter_map(|i| match key {
            Some(k) => i.get(k).and_then(Value::as_str),
            None => i.as_str(),
        })
        .collect();
    if texts.is_empty() {
        Out::Empty
    } else {
        Out::text(texts.join(sep))
    }
}

fn ymd(date: &str) -> Option<(u16, u8, u8)> {
    let mut parts = date.split('-');
    let y = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let d = parts.next()?.parse().ok()?;
    Some((y, m, d))
}

fn month_end(y: u16, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        _ => 28,
    }
}

/// A date as people write it, in style `k`: a date cell, "2019年3月5日", "2019.03.05",
/// "2019/3/5 ", full-width digits, "20190305"; a month alone ("2019年3月", "2019.03",
/// "2019-3") when the day is the month's first (`end` false) or last (`end` true), which the
/// converter fills back in. `cells`: whether a date cell may be written (workbooks).
fn date_out(date: &str, k: u64, end: bool, cells: bool) -> Out {
    let Some((y, m, d)) = ymd(date) else {
        return Out::text(date);
    };
    let whole_month = if end { d == month_end(y, m) } else { d == 1 };
    let mut style = k % 9;
    if style >= 6 && !whole_month {
        style %= 6;
    }
    if style == 0 && !cells {
        style = 2;
    }
    match style {
        0 => Out::Date(y, m, d),
        1 => Out::Text(format!("{y}年{m}月{d}日")),
        2 => Out::Text(format!("{y:04}.{m:02}.{d:02}")),
        3 => Out::Text(format!("{y}/{m}/{d} ")),
        4 => Out::Text(fullwidth(&format!("{y:04}-{m:02}-{d:02}"))),
        5 => Out::Text(format!("{y:04}{m:02}{d:02}")),
        6 => Out::Text(format!("{y}年{m}月")),
        7 => Out::Text(format!("{y:04}.{m:02}")),
        _ => Out::Text(format!("{y}-{m}")),
    }
}

/// A period as one cell ("2019.03-2020.12", "2019年3月至2020年12月") when both ends are whole
/// months.
fn period_out(start: &str, end: &str, k: u64) -> Option<Out> {
    let (y1, m1, d1) = ymd(start)?;
    let (y2, m2, d2) = ymd(end)?;
    if d1 != 1 || d2 != month_end(y2, m2) {
        return None;
    }
    Some(Out::Text(if k.is_multiple_of(2) {
        format!("{y1:04}.{m1:02}-{y2:04}.{m2:02}")
    } else {
        format!("{y1}年{m1}月至{y2}年{m2}月")
    }))
}

/// An amount in 万元 as people write it: a number cell, text, text with its unit, with
/// thousands separators, full-width.
fn amount_out(v: &Value, pointer: &str, k: u64, cells: bool) -> Out {
    let Some(n) = v.pointer(pointer).and_then(Value::as_f64) else {
        return Out::Empty;
    };
    let plain = format_number(n);
    match k % 5 {
        0 if cells => Out::Number(n),
        0 | 1 => Out::Text(plain),
        2 => Out::Text(format!("{plain}万元")),
        3 => Out::Text(fullwidth(&plain)),
        _ => {
            let (whole, fraction) = plain.split_once('.').unwrap_or((&plain, ""));
            let mut grouped = String::new();
            for (i, c) in whole.chars().enumerate() {
                if i > 0 && (whole.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            if !fraction.is_empty() {
                grouped.push('.');
                grouped.push_str(fraction);
            }
            Out::Text(grouped)
        }
    }
}

fn secrecy_out(v: &Value, k: u64) -> Out {
    let level = s(v, "/secrecy/level").unwrap_or_default();
    let term = v.pointer("/secrecy/term_years").and_then(Value::as_u64);
    let chinese = match level {
        "public" if k % 3 == 1 => "非密",
        "public" => "公开",
        "internal" => "内部",
        "secret" => "秘密",
        "confidential" => "机密",
        "top_secret" => "绝密",
        other => other,
    };
    match term {
        Some(t) if k.is_multiple_of(2) => Out::Text(format!("{chinese}★{t}年")),
        _ => Out::text(chinese),
    }
}

fn bool_out(v: &Value, pointer: &str, k: u64) -> Out {
    match v.pointer(pointer).and_then(Value::as_bool) {
        Some(true) => Out::text(if k.is_multiple_of(2) { "是" } else { "有" }),
        Some(false) => Out::text(if k.is_multiple_of(2) { "否" } else { "无" }),
        None => Out::Empty,
    }
}

fn with_trailing_space(out: Out, k: u64) -> Out {
    match out {
        Out::Text(t) if k.is_multiple_of(3) => Out::Text(format!("{t}  ")),
        other => other,
    }
}

/// Keywords joined as people join them (；、， or spaces).
fn keywords_out(v: &Value, pointer: &str, k: u64) -> Out {
    let sep = ["；", "、", " ", "，", ";"][(k % 5) as usize];
    list_at(v, pointer, None, sep)
}

// ------------------------------------------------------------------ the 登记表 workbook

/// A column of the form: its header (upper cell, and lower cell under a group) and how a record
/// fills it.
struct FormColumn {
    upper: &'static str,
    lower: Option<&'static str>,
}

const fn col(upper: &'static str) -> FormColumn {
    FormColumn { upper, lower: None }
}

const fn grouped(upper: &'static str, lower: &'static str) -> FormColumn {
    FormColumn {
        upper,
        lower: Some(lower),
    }
}

/// The form's columns, left to right.
const FORM_COLUMNS: [FormColumn; 57] = [
    col("序号"),
    col("批准登记号"),
    col("登记日期"),
    col("成果名称*"),
    col("成果类别"),
    col("成果简介"),
    col("关键词"),
    col("所属高新技术领域"),
    col("中图分类号"),
    col("学科分类"),
    col("国民经济行业"),
    col("成果属性"),
    col("所处阶段"),
    col("技术就绪度"),
    col("成果水平"),
    col("成果体现形式"),
    col("研究起止时间"),
    col("研究开始时间"),
    col("研究结束时间"),
    col("评价方式"),
    col("评价日期"),
    col("评价单位"),
    col("评价结论"),
    grouped("第一完成单位", "名称"),
    grouped("第一完成单位", "统一社会信用代码"),
    grouped("第一完成单位", "所在地区"),
    grouped("第一完成单位", "单位性质"),
    col("其他完成单位"),
    col("其他完成单位统一社会信用代码"),
    col("其他完成单位所在地区"),
    col("完成人"),
    col("完成人职称"),
    col("完成人工作单位"),
    col("项目来源"),
    col("项目编号"),
    col("转化意向"),
    col("转化方式"),
    col("转化状态"),
    col("转让价格(万元)"),
    col("应用情况"),
    col("应用行业"),
    col("效益年度"),
    col("新增销售额(万元)"),
    col("新增利润(万元)"),
    col("新增税收(万元)"),
    col("社会效益"),
    col("主要技术指标"),
    col("联系人"),
    col("联系电话"),
    col("电子邮箱"),
    col("通讯地址"),
    col("邮政编码"),
    col("推荐单位"),
    col("推荐单位代码"),
    col("成果密级"),
    col("保密期限"),
    col("填报人"),
];

impl FormColumn {
    /// The column's name as the import shows it (a grouped one as "第一完成单位/名称").
    fn shown(&self) -> String {
        match self.lower {
            Some(lower) => format!("{}/{lower}", self.upper),
            None => self.upper.to_owned(),
        }
    }
}

fn form_index(shown: &str) -> usize {
    FORM_COLUMNS
        .iter()
        .position(|c| c.shown() == shown)
        .unwrap_or_else(|| panic!("no form column {shown}"))
}

/// A generated record's 批准登记号 and, beside it, its 登记日期 (the node's fields, which a
/// historical record carries).
fn registered(full: &Value) -> (Option<String>, Option<String>) {
    let number = s(full, "/registration_no").map(str::to_owned);
    let date = number
        .as_ref()
        .and_then(|_| s(full, "/registration_date"))
        .map(str::to_owned);
    (number, date)
}

/// One row of the form for an achievement (its form view `v`, its number and 登记日期) in
/// style `k`.
fn form_row(v: &Value, number: Option<&str>, date: Option<&str>, k: u64, seq: u64) -> Vec<Out> {
    let mut row = vec![Out::Empty; FORM_COLUMNS.len()];
    let mut set = |name: &str, out: Out| row[form_index(name)] = out;
    set("序号", Out::Number(seq as f64));
    set(
        "批准登记号",
        number.map_or(Out::Empty, |n| {
            if k % 4 == 3 {
                Out::Text(format!(" {n} "))
            } else {
                Out::text(n)
            }
        }),
    );
    if let Some(date) = date {
        set("登记日期", date_out(date, k + 3, false, true));
    }
    set("成果名称*", with_trailing_space(text_at(v, "/title"), k));
    let category = s(v, "/category").unwrap_or_default();
    set(
        "成果类别",
        match k % 4 {
            1 => Out::Text(format!("{category}成果")),
            2 => Out::Text(
                ["应用技术", "基础理论", "软科学"]
                    .iter()
                    .map(|c| format!("{}{c}", if *c == category { "☑" } else { "□" }))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => Out::text(category),
        },
    );
    set("成果简介", text_at(v, "/abstract"));
    set("关键词", keywords_out(v, "/keywords", k));
    set("所属高新技术领域", text_at(v, "/classification/field"));
    let clc = text_at(v, "/classification/clc");
    set(
        "中图分类号",
        match clc {
            Out::Text(t) if k % 4 == 1 => Out::Text(fullwidth(&t)),
            other => other,
        },
    );
    set("学科分类", text_at(v, "/classification/discipline"));
    set("国民经济行业", text_at(v, "/classification/industry"));
    set("成果属性", text_at(v, "/innovation_attribute"));
    let stage = s(v, "/stage").unwrap_or_default();
    set(
        "所处阶段",
        if k % 2 == 1 {
            Out::text(stage.trim_end_matches("阶段").trim_end_matches("应用"))
        } else {
            Out::text(stage)
        },
    );
    set(
        "技术就绪度",
        match v.pointer("/trl").and_then(Value::as_u64) {
            None => Out::Empty,
            Some(t) => match k % 4 {
                0 => Out::Number(t as f64),
                1 => Out::Text(t.to_string()),
                2 => Out::Text(fullwidth(&format!("TRL{t}"))),
                _ => Out::Text(format!("{t}级")),
            },
        },
    );
    set("成果水平", text_at(v, "/level"));
    set("成果体现形式", list_at(v, "/forms", None, "；"));
    let start = s(v, "/research_period/start").unwrap_or_default();
    let end = s(v, "/research_period/end").unwrap_or_default();
    match period_out(start, end, k).filter(|_| k % 5 == 4) {
        Some(period) => set("研究起止时间", period),
        None => {
            set("研究开始时间", date_out(start, k, false, true));
            set("研究结束时间", date_out(end, k + 1, true, true));
        }
    }
    set("评价方式", text_at(v, "/evaluation/method"));
    if let Some(date) = s(v, "/evaluation/date") {
        set("评价日期", date_out(date, k + 2, false, true));
    }
    set("评价单位", text_at(v, "/evaluation/organization"));
    set("评价结论", text_at(v, "/evaluation/conclusion"));
    set(
        "第一完成单位/名称",
        with_trailing_space(text_at(v, "/institutions/0/name"), k + 1),
    );
    let uscc = s(v, "/institutions/0/uscc").unwrap_or_default();
    set(
        "第一完成单位/统一社会信用代码",
        if k % 5 == 2 {
            Out::Text(fullwidth(uscc))
        } else {
            Out::text(uscc)
        },
    );
    set(
        "第一完成单位/所在地区",
        text_at(v, "/institutions/0/region"),
    );
    set(
        "第一完成单位/单位性质",
        text_at(v, "/institutions/0/unit_type"),
    );
    let others = v
        .get("institutions")
        .and_then(Value::as_array)
        .map(|a| Value::Array(a.iter().skip(1).cloned().collect()))
        .unwrap_or(Value::Null);
    set("其他完成单位", list_at(&others, "", Some("name"), "；"));
    set(
        "其他完成单位统一社会信用代码",
        list_at(&others, "", Some("uscc"), "；"),
    );
    set(
        "其他完成单位所在地区",
        list_at(&others, "", Some("region"), "、"),
    );
    set(
        "完成人",
        list_at(
            v,
            "/completers",
            Some("name"),
            ["、", "，", "；"][(k % 3) as usize],
        ),
    );
    set("完成人职称", list_at(v, "/completers", Some("title"), "、"));
    set(
        "完成人工作单位",
        list_at(v, "/completers", Some("institution"), "；"),
    );
    set("项目来源", text_at(v, "/funding/0/program"));
    let project_no = s(v, "/funding/0/project_no").unwrap_or_default();
    set(
        "项目编号",
        if k % 3 == 2 {
            Out::Text(fullwidth(project_no))
        } else {
            Out::text(project_no)
        },
    );
    set("转化意向", bool_out(v, "/transfer/intention", k));
    set("转化方式", list_at(v, "/transfer/modes", None, "；"));
    set("转化状态", text_at(v, "/transfer/status"));
    set("转让价格(万元)", amount_out(v, "/transfer/price", k, true));
    set("应用情况", text_at(v, "/application/status"));
    set("应用行业", text_at(v, "/application/industries"));
    set(
        "效益年度",
        match v
            .pointer("/application/benefits/year")
            .and_then(Value::as_u64)
        {
            None => Out::Empty,
            Some(y) if k.is_multiple_of(2) => Out::Text(format!("{y}年")),
            Some(y) => Out::Number(y as f64),
        },
    );
    set(
        "新增销售额(万元)",
        amount_out(v, "/application/benefits/revenue", k + 1, true),
    );
    set(
        "新增利润(万元)",
        amount_out(v, "/application/benefits/profit", k + 2, true),
    );
    set(
        "新增税收(万元)",
        amount_out(v, "/application/benefits/tax", k + 3, true),
    );
    set("社会效益", text_at(v, "/application/social_benefit"));
    set("主要技术指标", text_at(v, "/technical_indicators"));
    set("联系人", text_at(v, "/contact/name"));
    set("联系电话", text_at(v, "/contact/phone"));
    let email = s(v, "/contact/email").unwrap_or_default();
    set(
        "电子邮箱",
        if k % 4 == 2 {
            Out::Text(fullwidth(email))
        } else {
            Out::text(email)
        },
    );
    set("通讯地址", text_at(v, "/contact/address"));
    let postcode = s(v, "/contact/postcode").unwrap_or_default();
    set(
        "邮政编码",
        if k % 3 == 1 {
            Out::Text(fullwidth(postcode))
        } else {
            Out::text(postcode)
        },
    );
    set("推荐单位", text_at(v, "/recommender/name"));
    set("推荐单位代码", text_at(v, "/recommender/code"));
    set("成果密级", secrecy_out(v, k));
    set(
        "保密期限",
        v.pointer("/secrecy/term_years")
            .and_then(Value::as_u64)
            .map_or(Out::Empty, |t| Out::Text(t.to_string())),
    );
    set(
        "填报人",
        Out::text(["李明", "王芳", "张伟"][(k % 3) as usize]),
    );
    row
}

/// Breaks a form row as `breakage` says; returns the column (as shown) and the pointer the
/// refusal must name.
fn break_form_row(row: &mut [Out], v: &Value, breakage: Breakage) -> (Option<String>, String) {
    let mut set = |name: &str, out: Out| row[form_index(name)] = out;
    let at = |name: &str, pointer: &str| (Some(name.to_owned()), pointer.to_owned());
    match breakage {
        Breakage::MissingTitle => {
            set("成果名称*", Out::Text("   ".into()));
            at("成果名称*", "/title")
        }
        Breakage::BadDate => {
            set("研究起止时间", Out::Empty);
            set("研究开始时间", Out::text("2019年13月"));
            set("研究结束时间", Out::text("2020年12月"));
            at("研究开始时间", "/research_period/start")
        }
        Breakage::EndBeforeStart => {
            set("研究开始时间", Out::Empty);
            set("研究结束时间", Out::Empty);
            set("研究起止时间", Out::text("2020.12-2019.01"));
            at("研究起止时间", "/research_period/end")
        }
        Breakage::BadUscc => {
            let mut uscc = s(v, "/institutions/0/uscc").unwrap_or_default().to_owned();
            let last = uscc.pop().unwrap_or('0');
            uscc.push(if last == '0' { '1' } else { '0' });
            set("第一完成单位/统一社会信用代码", Out::text(uscc));
            at("第一完成单位/统一社会信用代码", "/institutions/0/uscc")
        }
        Breakage::BadRegion => {
            set("第一完成单位/所在地区", Out::text("火星"));
            at("第一完成单位/所在地区", "/institutions/0/region")
        }
        Breakage::UnknownSecrecy => {
            set("成果密级", Out::text("保密"));
            set("保密期限", Out::Empty);
            at("成果密级", "/secrecy/level")
        }
        Breakage::MissingSecrecy => {
            set("成果密级", Out::Empty);
            set("保密期限", Out::Empty);
            at("成果密级", "/secrecy")
        }
        Breakage::BadTrl => {
            set("技术就绪度", Out::text("12级"));
            at("技术就绪度", "/trl")
        }
        Breakage::ShortAbstract => {
            set("成果简介", Out::text("很短"));
            at("成果简介", "/abstract")
        }
        Breakage::BadAmount => {
            set("转让价格(万元)", Out::text("面议"));
            at("转让价格(万元)", "/transfer/price")
        }
        Breakage::WrongRegistrationFlag => {
            let number = s(v, "/registration_no").unwrap_or("5300002020Y0001");
            let category = s(v, "/category").unwrap_or_default();
            let wrong = if category == "应用技术" { 'J' } else { 'Y' };
            let mut chars: Vec<char> = number.chars().collect();
            chars[10] = wrong;
            set(
                "批准登记号",
                Out::text(chars.into_iter().collect::<String>()),
            );
            at("批准登记号", "/registration_no")
        }
        Breakage::ForeignRegistrationNo => {
            let number = s(v, "/registration_no").unwrap_or("5300002020Y0001");
            set("批准登记号", Out::text(format!("510000{}", &number[6..])));
            at("批准登记号", "/registration_no")
        }
        Breakage::UnknownStatus => unreachable!("no project status on the form"),
    }
}

/// The breakages the form shows, in the order they are spread over the sheets.
const FORM_BREAKAGES: [Breakage; 12] = [
    Breakage::MissingTitle,
    Breakage::BadDate,
    Breakage::EndBeforeStart,
    Breakage::BadUscc,
    Breakage::BadRegion,
    Breakage::UnknownSecrecy,
    Breakage::MissingSecrecy,
    Breakage::BadTrl,
    Breakage::ShortAbstract,
    Breakage::BadAmount,
    Breakage::WrongRegistrationFlag,
    Breakage::ForeignRegistrationNo,
];

/// What goes on a sheet row.
enum SheetLine {
    Data(Vec<Out>),
    Blank,
    RepeatedHeader,
}

/// Writes the 登记表 workbook with `n` achievements (generator indexes `0..n`) and, with
/// `broken`, one broken row per kind of failure the form can show; returns what it must give.
pub fn achievement_form_xlsx(
    path: &Path,
    generator: &SampleGenerator,
    n: u64,
    broken: bool,
) -> Result<FixtureFile, FixtureError> {
    let err = |e: rust_xlsxwriter::XlsxError| write_error(path, e);
    // Which record goes where: the good ones in order, a broken one after every 4th good one
    // until every kind was used (the rest at the end), split over two yearly sheets.
    enum Planned {
        Good(u64),
        Broken(usize),
    }
    let mut plan: Vec<Planned> = Vec::new();
    let mut next_broken = 0;
    for i in 0..n {
        plan.push(Planned::Good(i));
        if broken && i % 4 == 3 && next_broken < FORM_BREAKAGES.len() {
            plan.push(Planned::Broken(next_broken));
            next_broken += 1;
        }
    }
    while broken && next_broken < FORM_BREAKAGES.len() {
        plan.push(Planned::Broken(next_broken));
        next_broken += 1;
    }
    let split = plan.len() * 3 / 5;
    let sheets = [("2024年度", &plan[..split]), ("2025年度", &plan[split..])];

    let mut workbook = Workbook::new();
    let title_format = Format::new().set_bold().set_align(FormatAlign::Center);
    let header_format = Format::new()
        .set_bold()
        .set_align(FormatAlign::Center)
        .set_text_wrap();
    let plain = Format::new();
    let date_format = Format::new().set_num_format("yyyy\"年\"m\"月\"d\"日\"");
    let last_col = (FORM_COLUMNS.len() - 1) as u16;
    let mut records = Vec::new();
    let mut refusals = Vec::new();
    let mut seq = 0;
    for (sheet_name, planned) in sheets {
        let sheet = workbook.add_worksheet();
        sheet.set_name(sheet_name).map_err(err)?;
        let province = generator.config().node.name().to_owned();
        sheet
            .merge_range(
                0,
                0,
                0,
                last_col,
                &format!("{sheet_name}{province}科技成果登记汇总表（科技成果登记表）"),
                &title_format,
            )
            .map_err(err)?;
        sheet
            .write_string(1, 0, format!("填报单位：{province}"))
            .map_err(err)?;
        sheet
            .write_string(1, 20, "填报日期：2025年1月10日")
            .map_err(err)?;
        write_form_header(sheet, 3, &header_format)?;
        sheet
            .merge_range(
                5,
                0,
                5,
                last_col,
                "注：带*为必填项；日期可写作2019年3月5日或2019.03；多个单位、人员之间用“；”或“、”分隔。",
                &plain,
            )
            .map_err(err)?;
        // The lines of data, with blank rows and a repeated header among them.
        let mut lines: Vec<(SheetLine, Option<Expect>)> = Vec::new();
        for (j, p) in planned.iter().enumerate() {
            if j > 0 && j % 7 == 0 {
                lines.push((SheetLine::Blank, None));
            }
            if j > 0 && j == planned.len() / 2 {
                lines.push((SheetLine::RepeatedHeader, None));
            }
            seq += 1;
            match *p {
                Planned::Good(i) => {
                    let full =
                        serde_json::to_value(generator.achievement(i)).expect("records serialize");
                    let view = form_view(&full);
                    let (number, date) = registered(&full);
                    let row = form_row(&view, number.as_deref(), date.as_deref(), i, seq);
                    lines.push((
                        SheetLine::Data(row),
                        Some(Expect::Record(ExpectedRecord {
                            sheet: Some(sheet_name.to_owned()),
                            row: 0,
                            index: i,
                            classified: classified(&view),
                            record: view,
                            registration_no: number,
                            registration_date: date,
                        })),
                    ));
                }
                Planned::Broken(b) => {
                    let breakage = FORM_BREAKAGES[b];
                    let index = BROKEN_BASE + b as u64;
                    let full = broken_achievement(generator, index, breakage);
                    let view = form_view(&full);
                    let (number, date) = registered(&full);
                    let mut row = form_row(&view, number.as_deref(), date.as_deref(), index, seq);
                    let (column, pointer) = break_form_row(&mut row, &full, breakage);
                    lines.push((
                        SheetLine::Data(row),
                        Some(Expect::Refusal(ExpectedRefusal {
                            sheet: Some(sheet_name.to_owned()),
                            row: 0,
                            column,
                            pointer,
                            breakage,
                        })),
                    ));
                }
            }
        }
        // Rows from 7 (index 6) on; 推荐单位 and its code merged down over runs of equal values.
        let first = 6u32;
        let recommender = form_index("推荐单位");
        let recommender_code = form_index("推荐单位代码");
        for (offset, (line, expect)) in lines.iter().enumerate() {
            let r = first + offset as u32;
            match line {
                SheetLine::Blank => {}
                SheetLine::RepeatedHeader => {
                    for (c, column) in FORM_COLUMNS.iter().enumerate() {
                        sheet
                            .write_string_with_format(r, c as u16, column.upper, &header_format)
                            .map_err(err)?;
                    }
                }
                SheetLine::Data(cells) => {
                    for (c, out) in cells.iter().enumerate() {
                        if c == recommender || c == recommender_code {
                            continue;
                        }
                        write_out(sheet, r, c as u16, out, &date_format).map_err(err)?;
                    }
                }
            }
            match expect {
                Some(Expect::Record(e)) => {
                    let mut e = e.clone();
                    e.row = u64::from(r) + 1;
                    records.push(e);
                }
                Some(Expect::Refusal(e)) => {
                    let mut e = e.clone();
                    e.row = u64::from(r) + 1;
                    refusals.push(e);
                }
                None => {}
            }
        }
        for c in [recommender, recommender_code] {
            let mut start = 0;
            while start < lines.len() {
                let value = |k: usize| match &lines[k].0 {
                    SheetLine::Data(cells) => Some(cells[c].clone()),
                    _ => None,
                };
                let Some(v) = value(start) else {
                    start += 1;
                    continue;
                };
                let mut end = start + 1;
                while end < lines.len() && value(end).as_ref() == Some(&v) {
                    end += 1;
                }
                let (r0, r1) = (first + start as u32, first + end as u32 - 1);
                match &v {
                    Out::Text(t) if r1 > r0 => {
                        sheet
                            .merge_range(r0, c as u16, r1, c as u16, t, &plain)
                            .map_err(err)?;
                    }
                    other => write_out(sheet, r0, c as u16, other, &date_format).map_err(err)?,
                }
                start = end;
            }
        }
        let closing = first + lines.len() as u32 + 1;
        sheet
            .merge_range(
                closing,
                0,
                closing,
                last_col,
                "说明：本表由各推荐单位汇总填报，金额单位为万元。",
                &plain,
            )
            .map_err(err)?;
        sheet.set_column_width(2, 30).map_err(err)?;
    }
    let codes = workbook.add_worksheet();
    codes.set_name("代码表").map_err(err)?;
    for (r, item) in [
        "应用技术",
        "基础理论",
        "软科学",
        "公开",
        "内部",
        "秘密",
        "机密",
        "绝密",
    ]
    .iter()
    .enumerate()
    {
        codes.write_string(r as u32, 0, *item).map_err(err)?;
    }
    codes.set_hidden(true);
    workbook.save(path).map_err(err)?;
    Ok(FixtureFile {
        path: path.to_owned(),
        layout: Layout::AchievementForm,
        mapping: Layout::AchievementForm.mapping(),
        records,
        refusals,
    })
}

#[derive(Clone)]
enum Expect {
    Record(ExpectedRecord),
    Refusal(ExpectedRefusal),
}

/// The generator's achievement `index`, made fit for `breakage`: applied technology with a
/// number for the breakages about those; public (a broken row's other values stay valid).
fn broken_achievement(generator: &SampleGenerator, index: u64, breakage: Breakage) -> Value {
    let needs_number = matches!(
        breakage,
        Breakage::WrongRegistrationFlag | Breakage::ForeignRegistrationNo
    );
    let needs_trl = matches!(breakage, Breakage::BadTrl);
    let needs_price = matches!(breakage, Breakage::BadAmount);
    let mut i = index;
    loop {
        let v = serde_json::to_value(generator.achievement(i)).expect("records serialize");
        let fits = (!needs_number || v.get("registration_no").is_some())
            && (!needs_trl || v.get("trl").is_some())
            && (!needs_price || v.pointer("/transfer/price").is_some());
        if fits {
            return v;
        }
        i += 1_000;
    }
}

fn write_form_header(sheet: &mut Worksheet, row: u32, format: &Format) -> Result<(), FixtureError> {
    let err = |e: rust_xlsxwriter::XlsxError| FixtureError::Write {
        path: PathBuf::from("(workbook)"),
        message: e.to_string(),
    };
    let mut c = 0;
    while c < FORM_COLUMNS.len() {
        let column = &FORM_COLUMNS[c];
        match column.lower {
            None => {
                sheet
                    .merge_range(row, c as u16, row + 1, c as u16, column.upper, format)
                    .map_err(err)?;
                c += 1;
            }
            Some(_) => {
                let group = FORM_COLUMNS[c..]
                    .iter()
                    .take_while(|g| g.upper == column.upper && g.lower.is_some())
                    .count();
                sheet
                    .merge_range(
                        row,
                        c as u16,
                        row,
                        (c + group - 1) as u16,
                        column.upper,
                        format,
                    )
                    .map_err(err)?;
                for (k, g) in FORM_COLUMNS[c..c + group].iter().enumerate() {
                    sheet
                        .write_string_with_format(
                            row + 1,
                            (c + k) as u16,
                            g.lower.unwrap_or_default(),
                            format,
                        )
                        .map_err(err)?;
                }
                c += group;
            }
        }
    }
    Ok(())
}

fn write_out(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    out: &Out,
    date_format: &Format,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    match out {
        Out::Empty => {}
        Out::Text(t) => {
            sheet.write_string(row, col, t)?;
        }
        Out::Number(n) => {
            sheet.write_number(row, col, *n)?;
        }
        Out::Date(y, m, d) => {
            sheet.write_datetime_with_format(
                row,
                col,
                ExcelDateTime::from_ymd(*y, *m, *d)?,
                date_format,
            )?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ the project list (GBK CSV)

const PROJECT_COLUMNS: [&str; 43] = [
    "序号",
    "项目编号",
    "项目名称",
    "计划类别",
    "专项名称",
    "项目管理部门",
    "管理部门统一社会信用代码",
    "项目简介",
    "关键词",
    "技术领域",
    "承担单位",
    "承担单位统一社会信用代码",
    "承担单位所在地区",
    "承担单位性质",
    "参与单位",
    "参与单位统一社会信用代码",
    "参与单位所在地区",
    "项目负责人",
    "负责人职称",
    "负责人电话",
    "负责人邮箱",
    "执行期",
    "开始日期",
    "结束日期",
    "总经费(万元)",
    "中央财政经费(万元)",
    "地方财政经费(万元)",
    "自筹经费(万元)",
    "项目状态",
    "验收日期",
    "验收结论",
    "验收组织单位",
    "验收报告编号",
    "是否有转化义务",
    "转化期限",
    "转化义务说明",
    "联系人",
    "联系电话",
    "电子邮箱",
    "通讯地址",
    "邮政编码",
    "密级",
    "保密期限",
];

fn project_index(name: &str) -> usize {
    PROJECT_COLUMNS
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no project column {name}"))
}

/// One line of the project list for a project (its view `v`) in style `k`.
fn project_row(v: &Value, k: u64, seq: u64) -> Vec<Out> {
    let mut row = vec![Out::Empty; PROJECT_COLUMNS.len()];
    let mut set = |name: &str, out: Out| row[project_index(name)] = out;
    set("序号", Out::Text(seq.to_string()));
    let number = s(v, "/project_no").unwrap_or_default();
    set(
        "项目编号",
        if k % 3 == 1 {
            Out::Text(fullwidth(number))
        } else {
            Out::text(number)
        },
    );
    set("项目名称", with_trailing_space(text_at(v, "/title"), k));
    set("计划类别", text_at(v, "/program"));
    set("专项名称", text_at(v, "/sub_program"));
    set("项目管理部门", text_at(v, "/funder/name"));
    set("管理部门统一社会信用代码", text_at(v, "/funder/uscc"));
    set("项目简介", text_at(v, "/abstract"));
    set("关键词", keywords_out(v, "/keywords", k));
    set("技术领域", text_at(v, "/field"));
    set(
        "承担单位",
        with_trailing_space(text_at(v, "/lead/name"), k + 1),
    );
    set("承担单位统一社会信用代码", text_at(v, "/lead/uscc"));
    set("承担单位所在地区", text_at(v, "/lead/region"));
    set("承担单位性质", text_at(v, "/lead/unit_type"));
    set("参与单位", list_at(v, "/participants", Some("name"), "；"));
    set(
        "参与单位统一社会信用代码",
        list_at(v, "/participants", Some("uscc"), "；"),
    );
    set(
        "参与单位所在地区",
        list_at(v, "/participants", Some("region"), "、"),
    );
    set("项目负责人", text_at(v, "/pi/name"));
    set("负责人职称", text_at(v, "/pi/title"));
    set("负责人电话", text_at(v, "/pi/phone"));
    set("负责人邮箱", text_at(v, "/pi/email"));
    let start = s(v, "/period/start").unwrap_or_default();
    let end = s(v, "/period/end").unwrap_or_default();
    match period_out(start, end, k).filter(|_| k % 3 != 2) {
        Some(period) => set("执行期", period),
        None => {
            set("开始日期", date_out(start, k, false, false));
            set("结束日期", date_out(end, k + 1, true, false));
        }
    }
    set("总经费(万元)", amount_out(v, "/budget/total", k, false));
    set(
        "中央财政经费(万元)",
        amount_out(v, "/budget/central_fiscal", k + 1, false),
    );
    set(
        "地方财政经费(万元)",
        amount_out(v, "/budget/local_fiscal", k + 2, false),
    );
    set(
        "自筹经费(万元)",
        amount_out(v, "/budget/self_raised", k + 3, false),
    );
    set("项目状态", text_at(v, "/status"));
    if let Some(date) = s(v, "/acceptance/date") {
        set("验收日期", date_out(date, k + 2, false, false));
    }
    set("验收结论", text_at(v, "/acceptance/conclusion"));
    set("验收组织单位", text_at(v, "/acceptance/organization"));
    set("验收报告编号", text_at(v, "/acceptance/report_no"));
    set(
        "是否有转化义务",
        bool_out(v, "/transfer_obligation/required", k),
    );
    if let Some(date) = s(v, "/transfer_obligation/deadline") {
        set("转化期限", date_out(date, k + 3, true, false));
    }
    set(
        "转化义务说明",
        text_at(v, "/transfer_obligation/description"),
    );
    set("联系人", text_at(v, "/contact/name"));
    set("联系电话", text_at(v, "/contact/phone"));
    set("电子邮箱", text_at(v, "/contact/email"));
    set("通讯地址", text_at(v, "/contact/address"));
    let postcode = s(v, "/contact/postcode").unwrap_or_default();
    set(
        "邮政编码",
        if k % 2 == 1 {
            Out::Text(fullwidth(postcode))
        } else {
            Out::text(postcode)
        },
    );
    set("密级", secrecy_out(v, k));
    set(
        "保密期限",
        v.pointer("/secrecy/term_years")
            .and_then(Value::as_u64)
            .map_or(Out::Empty, |t| Out::Text(format!("{t}"))),
    );
    row
}

/// A project as a provincial platform's API lists it: one JSON object whose members are the
/// 项目一览表's column names (the shipped `funded-project-list` mapping reads them by name),
/// with the values as the list writes them in style `k` (full-width numbers, amounts with
/// units…). `project` is the generator's project; the record an import gives back is
/// [`project_list_view`] of it.
pub fn project_list_item(project: &Value, k: u64) -> Value {
    let view = project_list_view(project);
    let row = project_row(&view, k, k + 1);
    let mut item = Map::new();
    for (name, out) in PROJECT_COLUMNS.iter().zip(row) {
        if *name != "序号" && out != Out::Empty {
            item.insert((*name).to_owned(), Value::String(out.as_text()));
        }
    }
    Value::Object(item)
}

const PROJECT_BREAKAGES: [Breakage; 5] = [
    Breakage::MissingTitle,
    Breakage::BadDate,
    Breakage::BadUscc,
    Breakage::BadAmount,
    Breakage::UnknownStatus,
];

fn break_project_row(row: &mut [Out], v: &Value, breakage: Breakage) -> (Option<String>, String) {
    let mut set = |name: &str, out: Out| row[project_index(name)] = out;
    let at = |name: &str, pointer: &str| (Some(name.to_owned()), pointer.to_owned());
    match breakage {
        Breakage::MissingTitle => {
            set("项目名称", Out::Empty);
            at("项目名称", "/title")
        }
        Breakage::BadDate => {
            set("执行期", Out::Empty);
            set("开始日期", Out::text("2021年2月30日"));
            set("结束日期", Out::text("2023-12-31"));
            at("开始日期", "/period/start")
        }
        Breakage::BadUscc => {
            let mut uscc = s(v, "/lead/uscc").unwrap_or_default().to_owned();
            let last = uscc.pop().unwrap_or('0');
            uscc.push(if last == '0' { '1' } else { '0' });
            set("承担单位统一社会信用代码", Out::text(uscc));
            at("承担单位统一社会信用代码", "/lead/uscc")
        }
        Breakage::BadAmount => {
            set("总经费(万元)", Out::text("待定"));
            at("总经费(万元)", "/budget/total")
        }
        Breakage::UnknownStatus => {
            set("项目状态", Out::text("暂停"));
            at("项目状态", "/status")
        }
        other => unreachable!("{other:?} is not on the project list"),
    }
}

/// CSV text of one line (RFC 4180 quoting where needed), CRLF-terminated.
fn csv_line(cells: &[String]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) || cell != cell.trim() {
            let _ = write!(line, "\"{}\"", cell.replace('"', "\"\""));
        } else {
            line.push_str(cell);
        }
    }
    line.push_str("\r\n");
    line
}

/// Writes the 科技计划项目一览表 in GBK with `n` projects (indexes `0..n`) and, with `broken`,
/// one broken line per kind of failure it can show; returns what it must give.
pub fn project_list_gbk_csv(
    path: &Path,
    generator: &SampleGenerator,
    n: u64,
    broken: bool,
) -> Result<FixtureFile, FixtureError> {
    let mut records = Vec::new();
    let mut refusals = Vec::new();
    write_project_list(path, generator, n, broken, |record, refusal| {
        records.extend(record);
        refusals.extend(refusal);
    })?;
    Ok(FixtureFile {
        path: path.to_owned(),
        layout: Layout::ProjectListCsv,
        mapping: Layout::ProjectListCsv.mapping(),
        records,
        refusals,
    })
}

/// The same project list with `n` good projects, without keeping what it must give: for a
/// benchmark's file of a million lines, whose expected records would not fit in memory.
pub fn project_list_gbk_csv_unchecked(
    path: &Path,
    generator: &SampleGenerator,
    n: u64,
) -> Result<(), FixtureError> {
    write_project_list(path, generator, n, false, |_, _| {})
}

/// Writes the project list, a line at a time through a buffer encoded to GBK every megabyte
/// (memory does not grow with `n`), handing each line's expectation to `expect`.
fn write_project_list(
    path: &Path,
    generator: &SampleGenerator,
    n: u64,
    broken: bool,
    mut expect: impl FnMut(Option<ExpectedRecord>, Option<ExpectedRefusal>),
) -> Result<(), FixtureError> {
    let province = generator.config().node.name().to_owned();
    let width = PROJECT_COLUMNS.len();
    let padded = |first: &str| {
        let mut cells = vec![String::new(); width];
        cells[0] = first.to_owned();
        cells
    };
    let file = std::fs::File::create(path).map_err(|e| write_error(path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut text = String::new();
    let mut line = 1u64;
    text.push_str(&csv_line(&padded(&format!(
        "{province}科技计划项目一览表（2021—2025年）"
    ))));
    line += 1;
    text.push_str(&csv_line(&padded(&format!("填报单位：{province}（盖章）"))));
    line += 1;
    text.push_str(&csv_line(
        &PROJECT_COLUMNS
            .iter()
            .map(|c| (*c).to_owned())
            .collect::<Vec<_>>(),
    ));
    line += 1;
    let mut next_broken = 0;
    let mut seq = 0;
    let emit = |text: &mut String, line: &mut u64, row: Vec<Out>| -> u64 {
        let at = *line;
        text.push_str(&csv_line(&row.iter().map(Out::as_text).collect::<Vec<_>>()));
        *line += 1;
        at
    };
    let broken_line = |seq: u64, next_broken: usize, text: &mut String, line: &mut u64| {
        let breakage = PROJECT_BREAKAGES[next_broken];
        let index = BROKEN_BASE + next_broken as u64;
        let full = serde_json::to_value(generator.project(index)).expect("records serialize");
        let view = project_list_view(&full);
        let mut cells = project_row(&view, index, seq);
        let (column, pointer) = break_project_row(&mut cells, &view, breakage);
        let row = emit(text, line, cells);
        ExpectedRefusal {
            sheet: None,
            row,
            column,
            pointer,
            breakage,
        }
    };
    for i in 0..n {
        if i > 0 && i % 6 == 0 {
            text.push_str(&csv_line(&vec![String::new(); width]));
            line += 1;
        }
        seq += 1;
        let full = serde_json::to_value(generator.project(i)).expect("records serialize");
        let view = project_list_view(&full);
        let row = emit(&mut text, &mut line, project_row(&view, i, seq));
        expect(
            Some(ExpectedRecord {
                sheet: None,
                row,
                index: i,
                classified: classified(&view),
                record: view,
                registration_no: None,
                registration_date: None,
            }),
            None,
        );
        if broken && i % 3 == 2 && next_broken < PROJECT_BREAKAGES.len() {
            seq += 1;
            expect(
                None,
                Some(broken_line(seq, next_broken, &mut text, &mut line)),
            );
            next_broken += 1;
        }
        if text.len() >= 1 << 20 {
            write_gbk(path, &mut out, &text)?;
            text.clear();
        }
    }
    while broken && next_broken < PROJECT_BREAKAGES.len() {
        seq += 1;
        expect(
            None,
            Some(broken_line(seq, next_broken, &mut text, &mut line)),
        );
        next_broken += 1;
    }
    text.push_str(&csv_line(&vec![String::new(); width]));
    text.push_str(&csv_line(&padded(
        "注：金额单位为万元；执行期写作2021.01-2023.12。",
    )));
    write_gbk(path, &mut out, &text)?;
    out.flush().map_err(|e| write_error(path, e))
}

/// Appends `text` (whole lines) to `out` in GBK, refusing a line GBK cannot hold.
fn write_gbk(path: &Path, out: &mut impl std::io::Write, text: &str) -> Result<(), FixtureError> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    if unmappable {
        let bad: String = text
            .lines()
            .find(|l| encoding_rs::GBK.encode(l).2)
            .unwrap_or_default()
            .chars()
            .take(80)
            .collect();
        return Err(FixtureError::Encoding {
            path: path.to_owned(),
            text: bad,
        });
    }
    out.write_all(&bytes).map_err(|e| write_error(path, e))
}

// ------------------------------------------------------------------ the XML export

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// `<name>text</name>` when the record has a text at `pointer`.
fn element(out: &mut String, indent: &str, name: &str, value: Option<&Value>) {
    let text = match value {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => (if *b { "是" } else { "否" }).to_owned(),
        _ => return,
    };
    let _ = writeln!(out, "{indent}<{name}>{}</{name}>", xml_escape(&text));
}

/// Elements of one value each, as the export writes them: (element, JSON Pointer into the
/// record or the item the elements are children of).
type Elements = &'static [(&'static str, &'static str)];

/// The `<成果>` element's own one-value children, in the export's order.
const XML_HEAD: Elements = &[("成果名称", "/title"), ("成果类别", "/category")];
const XML_CLASSIFICATION: Elements = &[
    ("所属高新技术领域", "/classification/field"),
    ("中图分类号", "/classification/clc"),
    ("学科分类", "/classification/discipline"),
    ("国民经济行业", "/classification/industry"),
    ("成果属性", "/innovation_attribute"),
    ("所处阶段", "/stage"),
    ("技术就绪度", "/trl"),
    ("成果水平", "/level"),
];
const XML_PERIOD: Elements = &[
    ("研究起始时间", "/research_period/start"),
    ("研究终止时间", "/research_period/end"),
];
const XML_EVALUATION: Elements = &[
    ("评价日期", "/date"),
    ("评价单位", "/organization"),
    ("评价结论", "/conclusion"),
];
const XML_INSTITUTION: Elements = &[
    ("单位名称", "/name"),
    ("统一社会信用代码", "/uscc"),
    ("所在地区", "/region"),
    ("单位性质", "/unit_type"),
];
const XML_COMPLETER: Elements = &[
    ("姓名", "/name"),
    ("职称", "/title"),
    ("学历", "/degree"),
    ("工作单位", "/institution"),
    ("分工", "/contribution"),
    ("身份证号", "/id_number"),
    ("电话", "/phone"),
    ("电子邮箱", "/email"),
];
const XML_IP: Elements = &[
    ("类型", "/type"),
    ("编号", "/number"),
    ("名称", "/title"),
    ("状态", "/status"),
    ("日期", "/date"),
];
const XML_FUNDING: Elements = &[
    ("计划名称", "/program"),
    ("专项名称", "/sub_program"),
    ("项目编号", "/project_no"),
    ("下达单位", "/funder"),
];
const XML_TRANSFER: Elements = &[
    ("转化意向", "/intention"),
    ("转化状态", "/status"),
    ("转化条件", "/conditions"),
];
const XML_APPLICATION: Elements = &[("应用情况", "/status"), ("应用行业", "/industries")];
const XML_BENEFITS: Elements = &[
    ("新增销售额", "/revenue"),
    ("新增利润", "/profit"),
    ("新增税收", "/tax"),
];
const XML_SOCIAL: Elements = &[("社会效益", "/social_benefit")];
const XML_INDICATORS: Elements = &[("主要技术指标", "/technical_indicators")];
const XML_CONTACT: Elements = &[
    ("姓名", "/name"),
    ("电话", "/phone"),
    ("电子邮箱", "/email"),
    ("通讯地址", "/address"),
    ("邮政编码", "/postcode"),
];

fn elements(out: &mut String, indent: &str, v: &Value, table: Elements) {
    for (name, pointer) in table {
        element(out, indent, name, v.pointer(pointer));
    }
}

/// One `<name>` per item of the list at `pointer` (repeated elements are the export's lists).
fn repeated(out: &mut String, indent: &str, name: &str, v: &Value, pointer: &str) {
    for item in v
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        element(out, indent, name, Some(item));
    }
}

/// One `<tag>` per object of the list at `pointer`, its children from `table`; `rank`: with
/// the item's place in the list as an attribute (完成人 排名="1").
fn objects(out: &mut String, v: &Value, pointer: &str, tag: &str, rank: bool, table: Elements) {
    let (i, j) = ("    ", "      ");
    let items = v.pointer(pointer).and_then(Value::as_array);
    for (n, item) in items.into_iter().flatten().enumerate() {
        let attribute = match rank {
            true => format!(" 排名=\"{}\"", n + 1),
            false => String::new(),
        };
        let _ = writeln!(out, "{i}<{tag}{attribute}>");
        elements(out, j, item, table);
        let _ = writeln!(out, "{i}</{tag}>");
    }
}

fn xml_record(v: &Value, number: Option<&str>, date: Option<&str>, ordinal: u64) -> String {
    let mut x = String::new();
    let _ = writeln!(x, "  <成果 序号=\"{ordinal}\">");
    let i = "    ";
    let j = "      ";
    if let Some(n) = number {
        let _ = writeln!(x, "{i}<批准登记号>{}</批准登记号>", xml_escape(n));
    }
    if let Some(d) = date {
        let _ = writeln!(x, "{i}<登记日期>{d}</登记日期>");
    }
    elements(&mut x, i, v, XML_HEAD);
    if let Some(abstract_text) = s(v, "/abstract") {
        if ordinal.is_multiple_of(2) {
            let _ = writeln!(x, "{i}<成果简介><![CDATA[{abstract_text}]]></成果简介>");
        } else {
            element(&mut x, i, "成果简介", v.get("abstract"));
        }
    }
    repeated(&mut x, i, "关键词", v, "/keywords");
    elements(&mut x, i, v, XML_CLASSIFICATION);
    repeated(&mut x, i, "成果体现形式", v, "/forms");
    elements(&mut x, i, v, XML_PERIOD);
    if let Some(e) = v.get("evaluation") {
        let _ = writeln!(
            x,
            "{i}<评价 方式=\"{}\">",
            xml_escape(s(e, "/method").unwrap_or_default())
        );
        elements(&mut x, j, e, XML_EVALUATION);
        let _ = writeln!(x, "{i}</评价>");
    }
    objects(
        &mut x,
        v,
        "/institutions",
        "完成单位",
        false,
        XML_INSTITUTION,
    );
    objects(&mut x, v, "/completers", "完成人", true, XML_COMPLETER);
    objects(&mut x, v, "/ip", "知识产权", false, XML_IP);
    objects(&mut x, v, "/funding", "项目来源", false, XML_FUNDING);
    if let Some(t) = v.get("transfer") {
        let _ = writeln!(x, "{i}<转化>");
        elements(&mut x, j, t, XML_TRANSFER);
        repeated(&mut x, j, "转化方式", t, "/modes");
        if let Some(price) = t.get("price") {
            let _ = writeln!(x, "{j}<转让价格 单位=\"万元\">{price}</转让价格>");
        }
        let _ = writeln!(x, "{i}</转化>");
    }
    if let Some(a) = v.get("application") {
        let _ = writeln!(x, "{i}<应用>");
        elements(&mut x, j, a, XML_APPLICATION);
        if let Some(b) = a.get("benefits") {
            match b.get("year") {
                Some(year) => {
                    let _ = writeln!(x, "{j}<经济效益 年度=\"{year}\">");
                }
                None => {
                    let _ = writeln!(x, "{j}<经济效益>");
                }
            }
            elements(&mut x, "        ", b, XML_BENEFITS);
            let _ = writeln!(x, "{j}</经济效益>");
        }
        elements(&mut x, j, a, XML_SOCIAL);
        let _ = writeln!(x, "{i}</应用>");
    }
    elements(&mut x, i, v, XML_INDICATORS);
    if let Some(c) = v.get("contact") {
        let _ = writeln!(x, "{i}<联系人>");
        elements(&mut x, j, c, XML_CONTACT);
        let _ = writeln!(x, "{i}</联系人>");
    }
    if let Some(r) = v.get("recommender") {
        let name = xml_escape(s(r, "/name").unwrap_or_default());
        match s(r, "/code") {
            Some(code) => {
                let _ = writeln!(
                    x,
                    "{i}<推荐单位 代码=\"{}\">{name}</推荐单位>",
                    xml_escape(code)
                );
            }
            None => {
                let _ = writeln!(x, "{i}<推荐单位>{name}</推荐单位>");
            }
        }
    }
    if let Some(level) = s(v, "/secrecy/level") {
        let chinese = match level {
            "public" => "公开",
            "internal" => "内部",
            "secret" => "秘密",
            "confidential" => "机密",
            "top_secret" => "绝密",
            other => other,
        };
        match v.pointer("/secrecy/term_years") {
            Some(term) => {
                let _ = writeln!(x, "{i}<密级 保密期限=\"{term}\">{chinese}</密级>");
            }
            None => {
                let _ = writeln!(x, "{i}<密级>{chinese}</密级>");
            }
        }
    }
    if let Some(d) = v.pointer("/secrecy/decision") {
        let attr = |k: &str| xml_escape(s(d, k).unwrap_or_default());
        let previous = match s(d, "/previous_level").unwrap_or_default() {
            "internal" => "内部",
            "secret" => "秘密",
            "confidential" => "机密",
            "top_secret" => "绝密",
            other => other,
        };
        let mut line = format!(
            "{i}<降解密 文号=\"{}\" 日期=\"{}\"",
            attr("/reference"),
            attr("/date")
        );
        if d.get("authority").is_some() {
            let _ = write!(line, " 决定机关=\"{}\"", attr("/authority"));
        }
        let _ = writeln!(x, "{line} 原密级=\"{previous}\"/>");
    }
    if v.get("confidential_fields").is_some_and(Value::is_array) {
        let _ = writeln!(x, "{i}<商业秘密>");
        repeated(&mut x, j, "字段", v, "/confidential_fields");
        let _ = writeln!(x, "{i}</商业秘密>");
    }
    x.push_str("  </成果>\n");
    x
}

const XML_BREAKAGES: [Breakage; 3] = [Breakage::MissingTitle, Breakage::BadDate, Breakage::BadUscc];

/// Writes the XML export with `n` achievements (indexes from 200,000) and, with `broken`, one
/// broken record per kind of failure it shows; returns what it must give.
pub fn achievement_xml(
    path: &Path,
    generator: &SampleGenerator,
    n: u64,
    broken: bool,
) -> Result<FixtureFile, FixtureError> {
    let mut text = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!-- 国家科技成果登记系统（单机版）导出 -->\n\
         <科技成果登记数据 导出系统=\"国家科技成果登记系统\" 导出时间=\"2025-06-30T10:00:00\">\n",
    );
    let mut records = Vec::new();
    let mut refusals = Vec::new();
    let mut ordinal = 0;
    let mut next_broken = 0;
    for i in 0..n {
        ordinal += 1;
        let index = XML_BASE + i;
        let full = serde_json::to_value(generator.achievement(index)).expect("records serialize");
        let view = xml_view(&full);
        let (number, date) = registered(&full);
        text.push_str(&xml_record(
            &view,
            number.as_deref(),
            date.as_deref(),
            ordinal,
        ));
        records.push(ExpectedRecord {
            sheet: None,
            row: ordinal,
            index,
            classified: classified(&view),
            record: view,
            registration_no: number,
            registration_date: date,
        });
        if broken && i % 3 == 1 && next_broken < XML_BREAKAGES.len() {
            ordinal += 1;
            let breakage = XML_BREAKAGES[next_broken];
            next_broken += 1;
            let (element, refusal) = broken_xml(generator, breakage, ordinal);
            text.push_str(&element);
            refusals.push(refusal);
        }
    }
    while broken && next_broken < XML_BREAKAGES.len() {
        ordinal += 1;
        let breakage = XML_BREAKAGES[next_broken];
        next_broken += 1;
        let (element, refusal) = broken_xml(generator, breakage, ordinal);
        text.push_str(&element);
        refusals.push(refusal);
    }
    text.push_str("</科技成果登记数据>\n");
    let mut file = std::fs::File::create(path).map_err(|e| write_error(path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| write_error(path, e))?;
    Ok(FixtureFile {
        path: path.to_owned(),
        layout: Layout::AchievementXml,
        mapping: Layout::AchievementXml.mapping(),
        records,
        refusals,
    })
}

fn broken_xml(
    generator: &SampleGenerator,
    breakage: Breakage,
    ordinal: u64,
) -> (String, ExpectedRefusal) {
    let index = BROKEN_BASE + XML_BASE + ordinal;
    let mut view =
        xml_view(&serde_json::to_value(generator.achievement(index)).expect("records serialize"));
    if let Some(level) = view.pointer_mut("/secrecy") {
        *level = serde_json::json!({"level": "public"});
    }
    let (column, pointer) = match breakage {
        Breakage::MissingTitle => {
            take(&mut view, "/title");
            ("/成果名称", "/title")
        }
        Breakage::BadDate => {
            view["research_period"]["start"] = Value::String("2019年13月".into());
            ("/研究起始时间", "/research_period/start")
        }
        Breakage::BadUscc => {
            // The second institution (the generator gives most results two or more).
            let at = if view.pointer("/institutions/1").is_some() {
                1
            } else {
                0
            };
            let uscc = view
                .pointer_mut(&format!("/institutions/{at}/uscc"))
                .expect("institutions have a USCC");
            let mut bad = uscc.as_str().unwrap_or_default().to_owned();
            let last = bad.pop().unwrap_or('0');
            bad.push(if last == '0' { '1' } else { '0' });
            *uscc = Value::String(bad);
            return (
                xml_record(&view, None, None, ordinal),
                ExpectedRefusal {
                    sheet: None,
                    row: ordinal,
                    column: Some("/完成单位/*/统一社会信用代码".into()),
                    pointer: format!("/institutions/{at}/uscc"),
                    breakage,
                },
            );
        }
        other => unreachable!("{other:?} is not in the XML"),
    };
    (
        xml_record(&view, None, None, ordinal),
        ExpectedRefusal {
            sheet: None,
            row: ordinal,
            column: Some(column.to_owned()),
            pointer: pointer.to_owned(),
            breakage,
        },
    )
}
