//! The mapping file as written: TOML read with serde, every table `deny_unknown_fields`, so a
//! misspelt key is an error naming it rather than a silently ignored line.
//!
//! This module only says what keys exist and what they hold; [`super::Mapping::from_toml`]
//! checks them against the schema and compiles them. The format, key by key, with an example,
//! is in `adapters/mappings/README.md`.
//!
//! What it may not touch: meaning (the compiled [`super::Mapping`] has it), or the `[source]`
//! table, which belongs to the source that reads the file and is carried as it is.

use std::collections::BTreeMap;

use rix_schema::RecordKind;
use serde::Deserialize;

/// A whole mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// `kind`: the record kind every row becomes, `achievement` or `funded_project`.
    pub kind: RecordKind,
    /// `name`: the layout's name, 1–64 of `A-Z a-z 0-9 . _ -`; it starts every source key, so
    /// two layouts never share a record identity.
    pub name: String,
    /// `description`: free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// `identity`: record pointers whose values identify a row (e.g. `["/title",
    /// "/institutions/0/name"]`), or a list of such lists tried in order (the first whose values
    /// are all present is used: `[["/registration_no"], ["/title", "/institutions/0/name"]]`).
    #[serde(default)]
    pub identity: Option<Identity>,
    /// `[source]`: the source's own options (format, sheet, encoding, record element, HTTP
    /// paging…), carried as it is to the source that reads the file.
    #[serde(default)]
    pub source: Option<toml::Table>,
    /// `[layout]`: how a table's header and note rows are found.
    #[serde(default)]
    pub layout: LayoutFile,
    /// `[defaults]`: record pointer → value, written when the row gave none. A `*` step fills
    /// every element present (`"/institutions/*/region" = "530000"`).
    #[serde(default)]
    pub defaults: BTreeMap<String, toml::Value>,
    /// `[constants]`: record pointer → value, written in every record. No field may have the
    /// same target.
    #[serde(default)]
    pub constants: BTreeMap<String, toml::Value>,
    /// `[[field]]`: one entry per value taken from a row.
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldFile>,
}

/// `identity`: one list of pointers, or alternatives tried in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Identity {
    /// `identity = ["/title", "/institutions/0/name"]`.
    One(Vec<String>),
    /// `identity = [["/registration_no"], ["/title", "/institutions/0/name"]]`.
    Alternatives(Vec<Vec<String>>),
}

/// `[layout]` of a tabular source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutFile {
    /// `header_min_matches`: how many fields must find their column in a row for it to be the
    /// header. Default: 3, or the number of fields with a `column` if fewer.
    #[serde(default)]
    pub header_min_matches: Option<usize>,
    /// `header_scan_rows`: how many non-blank rows are searched for the header before the
    /// table is given up. Default 30.
    #[serde(default)]
    pub header_scan_rows: Option<usize>,
    /// `note_prefixes`: what a note row's text begins with. Default 注, 说明, 备注, 附注,
    /// 填表说明.
    #[serde(default)]
    pub note_prefixes: Option<Vec<String>>,
}

/// `column`: one header, or aliases in order of preference.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Names {
    /// `column = "成果名称"`.
    One(String),
    /// `column = ["成果名称", "项目成果名称"]`.
    Many(Vec<String>),
}

impl Names {
    /// The names in order.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Names::One(n) => vec![n.clone()],
            Names::Many(n) => n.clone(),
        }
    }
}

/// `split`: `true` (the default separators), `false`, or the separator characters.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Split {
    /// `split = true` / `split = false`.
    Flag(bool),
    /// `split = "；;"`: these characters (a space stands for any white space).
    Chars(String),
}

/// `[[field]]`: one value taken from a row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldFile {
    /// `column`: the header (tabular sources), or aliases in order of preference. Compared
    /// after removing white space, `*` and (必填)-style marks and full-width forms. Tree rows
    /// (XML, JSON) use it too when the field has no `path`: a top-level member of that name.
    #[serde(default)]
    pub column: Option<Names>,
    /// `path`: where the value is in a tree row (XML record element, JSON object): a JSON
    /// Pointer whose `*` steps take every element of an array (`/完成人/*/姓名`). An XML element
    /// with attributes gives its text from `$text`; a single element where a list is expected
    /// is a list of one.
    #[serde(default)]
    pub path: Option<String>,
    /// `target`: where the value goes in the record, a JSON Pointer (`/title`,
    /// `/institutions/0/name`). A `*` step spreads a list over the elements from `first_index`
    /// on (`/completers/*/name`); a `-` step appends a new element (`/completers/-/name`, one
    /// per column, for 完成人1, 完成人2…). `""` is the whole record (`json` only).
    pub target: String,
    /// `convert`: the converter (`text` if absent): text, keywords, date, period, number,
    /// integer, amount, year, trl, bool, uscc, region, registration_no, phone, code, json, or a
    /// code list (category, secrecy, stage, innovation, level, forms, evaluation_method,
    /// transfer_mode, transfer_status, application_status, ip_type, ip_status, unit_type,
    /// degree, field, project_status, acceptance_conclusion).
    #[serde(default)]
    pub convert: Option<String>,
    /// `required`: an empty cell refuses the row (beyond what the schema requires).
    #[serde(default)]
    pub required: bool,
    /// `split`: the cell holds a list. Default: on when the target is a list (`*`, `-`, or an
    /// array in the schema) with the separators ；;，,、 and line breaks.
    #[serde(default)]
    pub split: Option<Split>,
    /// `first_index`: the element a `*` target starts at (default 0): 其他完成单位 start at 1,
    /// after the 第一完成单位.
    #[serde(default)]
    pub first_index: Option<usize>,
    /// `fill`: `start` or `end`: a month or a year becomes its first or its last day. Default
    /// `end` for targets ending in `/end` or `/deadline`, else `start`.
    #[serde(default)]
    pub fill: Option<String>,
    /// `unit` (`amount`): the unit of a number written without one: 元, 千元, 万元 (default),
    /// 亿元.
    #[serde(default)]
    pub unit: Option<String>,
    /// `halfwidth` (`text`): full-width letters, digits and punctuation become half-width
    /// (e-mail addresses, codes; not titles).
    #[serde(default)]
    pub halfwidth: bool,
    /// `values` (code converters, `bool`): written value → schema value, tried before the
    /// built-in synonyms; each value must be one the target's enum has (`true`/`false` for
    /// `bool`).
    #[serde(default)]
    pub values: BTreeMap<String, toml::Value>,
}
