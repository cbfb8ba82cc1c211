//! Converters: pure functions from a source cell to a value of the common schema, one per kind
//! of value a registration form holds — text, lists and keywords, dates and research periods,
//! numbers, amounts (万元), readiness levels, yes/no, code lists by their Chinese names,
//! unified social credit codes, regions and registration numbers.
//!
//! Why pure functions over [`Cell`]s: a cell keeps the type its source gave it (an Excel date
//! stays a serial), so the one place that decides what "2019.03", 43525 or "２０１９年３月"
//! mean for a field is here, testable without a file. A converter that cannot read a cell
//! says, in Chinese and in English, what it found and what it expected ([`ConvertError`]); the
//! mapping adds the column and the pointer.
//!
//! What it may not touch: rows, headers, records or the mapping file. The schema's enums come
//! in as [`Options::allowed`], read by the mapping from `rix-schema`.

pub mod codes;
pub mod date;
pub mod ids;
pub mod number;
pub mod text;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::row::Cell;
pub use date::Fill;
pub use number::Unit;

/// Why a cell could not be converted: what was found and what is expected, in Chinese and in
/// English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    /// In Chinese.
    pub zh: String,
    /// In English.
    pub en: String,
}

impl ConvertError {
    /// An error with both messages.
    pub fn new(zh: impl Into<String>, en: impl Into<String>) -> ConvertError {
        ConvertError {
            zh: zh.into(),
            en: en.into(),
        }
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", self.zh, self.en)
    }
}

/// A converter, as named in a mapping file's `convert` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Converter {
    /// `text`: cleaned text ([`text::clean_text`]); one line unless the schema marks the field
    /// multi-line; full-width → half-width with the `halfwidth` option.
    Text,
    /// `keywords`: split on ；;，,、 and white space, trimmed, repeats dropped → a list.
    Keywords,
    /// `date`: → `YYYY-MM-DD` ([`date`]).
    Date,
    /// `period`: "2018.01-2020.12" → `{start, end}`.
    Period,
    /// `number`: a number, also stored as text.
    Number,
    /// `integer`: a whole number.
    Integer,
    /// `amount`: money, → 万元 ([`number::convert_amount`]).
    Amount,
    /// `year`: a year, 1900–2100.
    Year,
    /// `trl`: a technology readiness level, 1–9.
    Trl,
    /// `bool`: 是/否, 有/无, Y/N, true/false, 1/0, √/×.
    Bool,
    /// `uscc`: a unified social credit code, normalised and checked.
    Uscc,
    /// `region`: a GB/T 2260 code or a province's name → a code.
    Region,
    /// `registration_no`: a 批准登记号, normalised and checked.
    RegistrationNo,
    /// `phone`: a telephone number: half-width, "(0871)65123456" → "0871-65123456".
    Phone,
    /// `code`: a value of the target's enum, as the schema writes it (or as the mapping's
    /// `values` table says).
    Code,
    /// A built-in code list by name (`secrecy`, `stage`, `level`, `forms`, …,
    /// [`codes::CODE_LISTS`]): the schema's values and their Chinese synonyms.
    List(&'static codes::CodeList),
    /// `json`: the source's JSON value as it is (tree sources: XML, JSON Lines, APIs).
    Json,
}

impl Converter {
    /// The name used in mapping files.
    pub fn name(self) -> &'static str {
        match self {
            Converter::Text => "text",
            Converter::Keywords => "keywords",
            Converter::Date => "date",
            Converter::Period => "period",
            Converter::Number => "number",
            Converter::Integer => "integer",
            Converter::Amount => "amount",
            Converter::Year => "year",
            Converter::Trl => "trl",
            Converter::Bool => "bool",
            Converter::Uscc => "uscc",
            Converter::Region => "region",
            Converter::RegistrationNo => "registration_no",
            Converter::Phone => "phone",
            Converter::Code => "code",
            Converter::List(l) => l.name,
            Converter::Json => "json",
        }
    }

    /// Every converter name a mapping file may use.
    pub fn names() -> Vec<&'static str> {
        let mut names = vec![
            "text",
            "keywords",
            "date",
            "period",
            "number",
            "integer",
            "amount",
            "year",
            "trl",
            "bool",
            "uscc",
            "region",
            "registration_no",
            "phone",
            "code",
            "json",
        ];
        names.extend(codes::CODE_LISTS.iter().map(|l| l.name));
        names
    }

    /// The JSON type the converter produces (`string`, `number`, `integer`, `boolean`, `array`,
    /// `object`), to check against the target's schema; `None` for `json`.
    pub fn produces(self) -> Option<&'static str> {
        Some(match self {
            Converter::Keywords => "array",
            Converter::Period => "object",
            Converter::Number | Converter::Amount => "number",
            Converter::Integer | Converter::Year | Converter::Trl => "integer",
            Converter::Bool => "boolean",
            Converter::Json => return None,
            _ => "string",
        })
    }

    /// Whether the converter reads enum values (its target must have an enum).
    pub fn is_code(self) -> bool {
        matches!(self, Converter::Code | Converter::List(_))
    }
}

/// The name is not a converter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown converter {0:?}; expected one of: {names}", names = Converter::names().join(", "))]
pub struct UnknownConverter(pub String);

impl FromStr for Converter {
    type Err = UnknownConverter;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(list) = codes::code_list(s) {
            return Ok(Converter::List(list));
        }
        Ok(match s {
            "text" => Converter::Text,
            "keywords" => Converter::Keywords,
            "date" => Converter::Date,
            "period" => Converter::Period,
            "number" => Converter::Number,
            "integer" => Converter::Integer,
            "amount" => Converter::Amount,
            "year" => Converter::Year,
            "trl" => Converter::Trl,
            "bool" => Converter::Bool,
            "uscc" => Converter::Uscc,
            "region" => Converter::Region,
            "registration_no" => Converter::RegistrationNo,
            "phone" => Converter::Phone,
            "code" => Converter::Code,
            "json" => Converter::Json,
            _ => return Err(UnknownConverter(s.to_owned())),
        })
    }
}

/// What a converter needs to know about its field, settled when the mapping is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Line breaks are kept (the schema marks the field `x-multiline`).
    pub multiline: bool,
    /// Full-width letters, digits and punctuation become half-width (`text`).
    pub halfwidth: bool,
    /// How a month or a year becomes a full date (`date`).
    pub fill: Fill,
    /// The unit of an amount written without one (`amount`).
    pub unit: Unit,
    /// The schema enum's values (code converters).
    pub allowed: Vec<String>,
    /// The mapping's own written value → schema value table, keys [`codes::code_key`]ed (code
    /// converters and `bool`).
    pub values: Vec<(String, String)>,
    /// Separators of `keywords`.
    pub separators: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            multiline: false,
            halfwidth: false,
            fill: Fill::Start,
            unit: number::UNITS[1],
            allowed: Vec::new(),
            values: Vec::new(),
            separators: text::KEYWORD_SEPARATORS.to_owned(),
        }
    }
}

/// A cell as text for messages and for text fields: a whole number without `.0`, a date cell
/// as `YYYY-MM-DD`, a boolean as 是/否.
pub fn cell_display(cell: &Cell) -> String {
    match cell {
        Cell::Empty => String::new(),
        Cell::Text(t) => t.trim().to_owned(),
        Cell::Number(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", *x as i64),
        Cell::Number(x) => format!("{x}"),
        Cell::DateSerial(s) => match date::from_excel_serial(*s) {
            Ok(d) => date::iso(d),
            Err(_) => format!("{s}"),
        },
        Cell::Bool(true) => "是".to_owned(),
        Cell::Bool(false) => "否".to_owned(),
    }
}

/// Whether a cell holds nothing (empty, or only white space).
pub fn is_blank(cell: &Cell) -> bool {
    match cell {
        Cell::Empty => true,
        Cell::Text(t) => match t.as_bytes().first() {
            None => true,
            // Called for every cell of every row: a cell that starts with a character no white
            // space begins with (ASCII other than space, or a UTF-8 lead byte other than those
            // of U+0085–U+3000's spaces and U+200B) is not blank, without decoding it.
            Some(&b) if b.is_ascii() && !b.is_ascii_whitespace() && b != 0x0B => false,
            Some(&b) if b >= 0x80 && !matches!(b, 0xC2 | 0xE1 | 0xE2 | 0xE3) => false,
            Some(_) => t.chars().all(|c| c.is_whitespace() || c == '\u{200B}'),
        },
        _ => false,
    }
}

/// The items of a list held in one cell: the ticked boxes of a check-box row, or the text
/// split at `separators`, keeping the converter's phrases that contain a separator whole
/// ("农业、生物新品种"). A non-text cell is one item.
pub fn split_cell(cell: &Cell, separators: &str, converter: Converter) -> Vec<Cell> {
    let Cell::Text(t) = cell else {
        return if is_blank(cell) {
            Vec::new()
        } else {
            vec![cell.clone()]
        };
    };
    if converter.is_code()
        && let Some(items) = codes::ticked_items(t)
    {
        return items.into_iter().map(Cell::Text).collect();
    }
    let list = match converter {
        Converter::List(l) => Some(l),
        _ => None,
    };
    let phrases: Vec<&str> = codes::joined_phrases(list)
        .filter(|p| t.contains(p))
        .collect();
    if phrases.is_empty() {
        return text::split_list(t, separators)
            .into_iter()
            .map(Cell::Text)
            .collect();
    }
    // Phrases with a separator inside are swapped for a private-use character while splitting.
    let mark = |i: usize| char::from_u32(0xE000 + i as u32).expect("a private-use character");
    let mut text = t.clone();
    for (i, phrase) in phrases.iter().enumerate() {
        text = text.replace(phrase, &mark(i).to_string());
    }
    text::split_list(&text, separators)
        .into_iter()
        .map(|mut item| {
            for (i, phrase) in phrases.iter().enumerate() {
                item = item.replace(mark(i), phrase);
            }
            Cell::Text(item)
        })
        .collect()
}

fn text_of(cell: &Cell, options: &Options) -> String {
    let shown = match cell {
        Cell::Text(t) => text::clean_text(t, options.multiline),
        other => cell_display(other),
    };
    if options.halfwidth {
        text::to_halfwidth(&shown).into_owned()
    } else {
        shown
    }
}

const YES: [&str; 10] = ["是", "有", "y", "yes", "true", "1", "√", "✓", "✔", "愿意"];
const NO: [&str; 10] = [
    "否",
    "无",
    "n",
    "no",
    "false",
    "0",
    "×",
    "✗",
    "不愿意",
    "没有",
];

fn convert_bool(cell: &Cell, options: &Options) -> Result<Option<bool>, ConvertError> {
    let written = match cell {
        Cell::Empty => return Ok(None),
        Cell::Bool(b) => return Ok(Some(*b)),
        other => cell_display(other),
    };
    let key = codes::code_key(&written);
    if key.is_empty() {
        return Ok(None);
    }
    if let Some((_, v)) = options.values.iter().find(|(k, _)| *k == key) {
        return match v.as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(ConvertError::new(
                format!("映射文件把「{written}」写成了 {v}，应为 true 或 false"),
                format!("the mapping maps {written:?} to {v}, which is neither true nor false"),
            )),
        };
    }
    if YES.contains(&key.as_str()) {
        Ok(Some(true))
    } else if NO.contains(&key.as_str()) {
        Ok(Some(false))
    } else {
        Err(ConvertError::new(
            format!("「{written}」不是“是/否”；应为 是 或 否"),
            format!("{written:?} is not yes or no; expected 是 or 否"),
        ))
    }
}

fn convert_phone(cell: &Cell) -> Result<Option<String>, ConvertError> {
    let shown = cell_display(cell);
    let half = text::to_halfwidth(&shown);
    let s = half.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '(' => {}
            ')' => out.push('-'),
            '0'..='9' | '+' | '-' | ' ' => out.push(c),
            _ => {
                return Err(ConvertError::new(
                    format!("「{s}」不是一个电话号码；只能有数字、+、- 和空格（多个号码只填一个）"),
                    format!(
                        "{s:?} is not one telephone number; only digits, +, - and spaces (give one number)"
                    ),
                ));
            }
        }
    }
    Ok(Some(out.trim_matches('-').to_owned()))
}

/// Converts one cell. `Ok(None)` when the cell is empty: the field is left out, and the
/// schema says whether it was required.
pub fn convert(
    converter: Converter,
    cell: &Cell,
    options: &Options,
) -> Result<Option<Value>, ConvertError> {
    if is_blank(cell) {
        return Ok(None);
    }
    let string = |s: Option<String>| s.map(Value::String);
    let int = |n: Option<i64>| n.map(|n| Value::Number(n.into()));
    Ok(match converter {
        Converter::Text | Converter::Json => Some(Value::String(text_of(cell, options))),
        Converter::Keywords => {
            let items = match cell {
                Cell::Text(t) => text::split_keywords(t, &options.separators),
                other => vec![cell_display(other)],
            };
            Some(Value::Array(items.into_iter().map(Value::String).collect()))
        }
        Converter::Date => string(date::convert_date(cell, options.fill)?),
        Converter::Period => date::convert_period(cell)?
            .map(|(start, end)| serde_json::json!({ "start": start, "end": end })),
        Converter::Number => number::convert_number(cell)?.map(number::json_number),
        Converter::Integer => int(number::convert_integer(cell)?),
        Converter::Amount => number::convert_amount(cell, options.unit)?.map(number::json_number),
        Converter::Year => int(number::convert_year(cell)?),
        Converter::Trl => int(number::convert_trl(cell)?),
        Converter::Bool => convert_bool(cell, options)?.map(Value::Bool),
        Converter::Uscc => string(ids::convert_uscc(cell)?),
        Converter::Region => string(ids::convert_region(cell)?),
        Converter::RegistrationNo => string(ids::convert_registration_no(cell)?),
        Converter::Phone => string(convert_phone(cell)?),
        Converter::Code | Converter::List(_) => {
            let list = match converter {
                Converter::List(l) => Some(l),
                _ => None,
            };
            let shown = cell_display(cell);
            let written = match codes::ticked_items(&shown) {
                Some(items) if items.len() == 1 => items[0].clone(),
                Some(items) => {
                    return Err(ConvertError::new(
                        format!("「{shown}」勾选了 {} 项，只能选一项", items.len()),
                        format!(
                            "{shown:?} ticks {} boxes; exactly one is expected",
                            items.len()
                        ),
                    ));
                }
                None => shown,
            };
            Some(Value::String(codes::lookup(
                &written,
                list,
                &options.allowed,
                &options.values,
            )?))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    #[test]
    fn a_cell_is_blank_exactly_when_every_character_is_white_space() {
        let slow = |t: &str| t.chars().all(|c| c.is_whitespace() || c == '\u{200B}');
        for text in [
            "",
            " ",
            "\u{0B}",
            "\u{0B}x",
            "\t\r\n",
            "\u{85}",
            "\u{A0}a",
            "\u{1680}",
            "\u{2000}",
            "\u{200B}",
            "\u{200B}成果",
            "\u{2028}",
            "\u{205F}",
            "\u{3000}",
            "\u{3000}标题",
            "标题",
            "a",
            "é",
            "\u{FEFF}",
            "\u{2010}",
        ] {
            assert_eq!(is_blank(&t(text)), slow(text), "{text:?}");
        }
        assert!(is_blank(&Cell::Empty));
        assert!(!is_blank(&Cell::Number(0.0)));
    }

    #[test]
    fn every_converter_name_parses_back() {
        for name in Converter::names() {
            assert_eq!(name.parse::<Converter>().unwrap().name(), name);
        }
        assert!(
            "datum"
                .parse::<Converter>()
                .unwrap_err()
                .to_string()
                .contains("date")
        );
    }

    #[test]
    fn text_is_cleaned_and_optionally_half_width() {
        let opts = Options::default();
        assert_eq!(
            convert(Converter::Text, &t(" 标题\n续 "), &opts).unwrap(),
            Some(json!("标题续"))
        );
        let half = Options {
            halfwidth: true,
            ..Options::default()
        };
        assert_eq!(
            convert(Converter::Text, &t("ａｂｃ＠ｅｘａｍｐｌｅ．ｃｏｍ"), &half).unwrap(),
            Some(json!("abc@example.com"))
        );
        assert_eq!(
            convert(Converter::Text, &Cell::Number(650000.0), &opts).unwrap(),
            Some(json!("650000"))
        );
        assert_eq!(convert(Converter::Text, &t("  "), &opts).unwrap(), None);
    }

    #[test]
    fn booleans_and_phones() {
        let opts = Options::default();
        for (input, value) in [
            ("是", true),
            ("否", false),
            ("Y", true),
            ("无", false),
            ("√", true),
        ] {
            assert_eq!(
                convert(Converter::Bool, &t(input), &opts).unwrap(),
                Some(json!(value))
            );
        }
        assert_eq!(
            convert(Converter::Bool, &Cell::Bool(true), &opts).unwrap(),
            Some(json!(true))
        );
        assert!(
            convert(Converter::Bool, &t("也许"), &opts)
                .unwrap_err()
                .zh
                .contains("也许")
        );
        assert_eq!(
            convert(Converter::Phone, &t("（０８７１）６５１２３４５６"), &opts).unwrap(),
            Some(json!("0871-65123456"))
        );
        assert!(convert(Converter::Phone, &t("0871-1234567转8"), &opts).is_err());
    }

    #[test]
    fn keywords_and_split_cells() {
        let opts = Options::default();
        assert_eq!(
            convert(Converter::Keywords, &t("电池；储能 电池"), &opts).unwrap(),
            Some(json!(["电池", "储能"]))
        );
        let forms: Converter = "forms".parse().unwrap();
        assert_eq!(
            split_cell(
                &t("新产品、农业、生物新品种；专利"),
                text::LIST_SEPARATORS,
                forms
            ),
            [t("新产品"), t("农业、生物新品种"), t("专利")]
        );
        assert_eq!(
            split_cell(&t("☑论文 □专利 ☑软件"), text::LIST_SEPARATORS, forms),
            [t("论文"), t("软件")]
        );
        assert_eq!(
            split_cell(&Cell::Number(3.0), ",", Converter::Text),
            [Cell::Number(3.0)]
        );
    }

    #[test]
    fn a_code_cell_ticking_two_boxes_is_refused() {
        let category: Converter = "category".parse().unwrap();
        let opts = Options {
            allowed: vec!["应用技术".into(), "基础理论".into(), "软科学".into()],
            ..Options::default()
        };
        assert_eq!(
            convert(category, &t("☑应用技术 □基础理论 □软科学"), &opts).unwrap(),
            Some(json!("应用技术"))
        );
        assert!(convert(category, &t("☑应用技术 ☑基础理论"), &opts).is_err());
    }
}
