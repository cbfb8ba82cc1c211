//! Mapping, declared not coded: a TOML file per source layout says which column (or tree path)
//! becomes which field of a record, through which converter; a [`Mapper`] applies it row by
//! row, finding a sheet's header on the way, and validates every record with `rix-schema`.
//!
//! Why declared: every province's sheet is a little different (one more title row, 完成单位
//! instead of 第一完成单位, amounts in 元), and an operator must be able to adapt a mapping
//! without a Rust compiler. Why checked on load: a mapping is checked against the schema when
//! it is read ([`Mapping::from_toml`]) — unknown keys, targets the schema does not have, code
//! converters on fields without a code list, values a code list does not have — so a mistake
//! is one error naming its key, not a hundred thousand refused rows.
//!
//! The format, key by key, is documented on [`file::MappingFile`] and, with the shipped
//! mappings, in `adapters/mappings/README.md`.
//!
//! What it may not touch: reading files or talking to a node (sources and push do that), and
//! the `[source]` table, which is carried, opaque, to the source that reads the file.

pub mod file;
mod header;
mod mapper;
mod messages;
pub mod target;

use std::collections::BTreeMap;
use std::fmt;

use rix_schema::RecordKind;
use serde_json::Value;

use crate::convert::{self, Converter, Fill, Options, codes::code_key, text::header_key};
pub use header::{Header, HeaderColumn};
pub use mapper::{Explained, Mapper, MissingColumn};
use target::{Pointer, SchemaNode, Step};

/// The mappings shipped in `adapters/mappings/` (file name, text), documented in its README:
/// the national registration form of achievements (all three kinds), the desktop registration
/// system's XML export, a funded-project list, and JSON Lines already in the common schema.
pub const SHIPPED: [(&str, &str); 5] = [
    (
        "achievement-form.toml",
        include_str!("../../mappings/achievement-form.toml"),
    ),
    (
        "achievement-xml.toml",
        include_str!("../../mappings/achievement-xml.toml"),
    ),
    (
        "funded-project-list.toml",
        include_str!("../../mappings/funded-project-list.toml"),
    ),
    (
        "jsonl-achievement.toml",
        include_str!("../../mappings/jsonl-achievement.toml"),
    ),
    (
        "jsonl-funded-project.toml",
        include_str!("../../mappings/jsonl-funded-project.toml"),
    ),
];

/// A shipped mapping by its file name, with or without `.toml`, or by its `name` key.
pub fn shipped(name: &str) -> Option<Result<Mapping, MappingError>> {
    let file = name.strip_suffix(".toml").unwrap_or(name);
    SHIPPED
        .iter()
        .find(|(f, text)| {
            f.strip_suffix(".toml") == Some(file)
                || text.lines().any(|l| l.trim() == format!("name = {name:?}"))
        })
        .map(|(_, text)| Mapping::from_toml(text))
}

/// A mapping file that cannot be used: where (the TOML key, e.g. `field[3].target`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// Not TOML, or a key that does not exist, or a value of the wrong type (the TOML parser's
    /// message names the key, the line and the column).
    #[error("mapping file: {0}")]
    Toml(String),
    /// A key whose value cannot be used.
    #[error("mapping key `{key}`: {message}")]
    Invalid {
        /// The key, as a path (`field[3].convert`, `defaults."/secrecy/level"`).
        key: String,
        /// What is wrong and what to write instead.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> MappingError {
    MappingError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// One `[[field]]` of a mapping, checked and compiled.
#[derive(Debug, Clone)]
pub struct Field {
    /// Position in the file (0-based).
    index: usize,
    /// Header names as written, in order of preference.
    columns: Vec<String>,
    /// The same as header keys ([`header_key`]).
    column_keys: Vec<String>,
    path: Option<Pointer>,
    target: Pointer,
    converter: Converter,
    options: Options,
    required: bool,
    split: Option<String>,
    first_index: usize,
    /// The target is a whole list in the schema (keywords, forms…): items are collected into
    /// one array, repeats dropped.
    whole_list: bool,
}

impl Field {
    /// The header names (aliases) it takes its value from, in order of preference.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The tree path it takes its value from, if any.
    pub fn path(&self) -> Option<&str> {
        self.path.as_ref().map(|p| p.text.as_str())
    }

    /// Where the value goes in the record.
    pub fn target(&self) -> &str {
        &self.target.text
    }

    /// The converter's name.
    pub fn converter(&self) -> &'static str {
        self.converter.name()
    }

    /// Whether an empty value refuses the row.
    pub fn required(&self) -> bool {
        self.required
    }

    /// How the field is named in messages when no header was matched: its first column name,
    /// or its path.
    fn label(&self) -> &str {
        match (self.columns.first(), &self.path) {
            (Some(c), _) => c,
            (None, Some(path)) => &path.text,
            (None, None) => &self.target.text,
        }
    }
}

/// How a table's header and note rows are found (`[layout]`).
#[derive(Debug, Clone)]
pub struct Layout {
    /// A row is the header when at least this many fields find their column in it.
    pub header_min_matches: usize,
    /// Non-blank rows searched for the header before the table is given up.
    pub header_scan_rows: usize,
    /// What a note row's text begins with.
    pub note_prefixes: Vec<String>,
}

/// The default note prefixes: 注, 说明, 备注, 附注, 填表说明.
pub const NOTE_PREFIXES: [&str; 5] = ["注", "说明", "备注", "附注", "填表说明"];

/// Where a value written by `[defaults]` or `[constants]` goes, and the value.
#[derive(Debug, Clone)]
struct Fixed {
    target: Pointer,
    value: Value,
}

/// A mapping file, checked against the schema and ready to map rows ([`Mapping::mapper`]).
#[derive(Debug, Clone)]
pub struct Mapping {
    kind: RecordKind,
    name: String,
    description: Option<String>,
    identity: Vec<Vec<Pointer>>,
    source: Option<toml::Table>,
    layout: Layout,
    fields: Vec<Field>,
    defaults: Vec<Fixed>,
    constants: Vec<Fixed>,
}

/// TOML → JSON; a TOML date or time becomes its text.
fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::Number((*i).into()),
        toml::Value::Float(f) => convert::number::json_number(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

impl Mapping {
    /// Reads and checks a mapping file.
    pub fn from_toml(text: &str) -> Result<Mapping, MappingError> {
        let file: file::MappingFile = toml::from_str(text)
            .map_err(|e| MappingError::Toml(e.to_string().trim().to_owned()))?;
        Mapping::compile(file)
    }

    /// Checks a parsed mapping file against the schema of its kind.
    pub fn compile(file: file::MappingFile) -> Result<Mapping, MappingError> {
        let kind = file.kind;
        let name_ok = !file.name.is_empty()
            && file.name.len() <= 64
            && file
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok {
            return Err(invalid(
                "name",
                format!(
                    "{:?} must be 1-64 characters of A-Z a-z 0-9 . _ - (it starts every source key)",
                    file.name
                ),
            ));
        }
        if file.fields.is_empty() {
            return Err(invalid("field", "a mapping needs at least one [[field]]"));
        }
        let mut fields = Vec::with_capacity(file.fields.len());
        for (i, f) in file.fields.iter().enumerate() {
            fields.push(compile_field(kind, i, f)?);
        }
        let fixed = |table: &BTreeMap<String, toml::Value>, section: &str| {
            table
                .iter()
                .map(|(pointer, value)| {
                    let key = format!("{section}.{pointer:?}");
                    let target = Pointer::parse(pointer).map_err(|m| invalid(&key, m))?;
                    if target.steps.iter().any(|s| matches!(s, Step::Append))
                        || target.wildcards() > 1
                    {
                        return Err(invalid(&key, "only one * step is allowed here, and no -"));
                    }
                    check_target(kind, &target).map_err(|m| invalid(&key, m))?;
                    Ok(Fixed {
                        target,
                        value: toml_to_json(value),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let defaults = fixed(&file.defaults, "defaults")?;
        let constants = fixed(&file.constants, "constants")?;
        for c in &constants {
            if let Some(f) = fields.iter().find(|f| f.target.text == c.target.text) {
                return Err(invalid(
                    format!("constants.{:?}", c.target.text),
                    format!(
                        "field[{}] has the same target; a constant would overwrite it",
                        f.index
                    ),
                ));
            }
        }
        let identity = match &file.identity {
            None => Vec::new(),
            Some(file::Identity::One(list)) => vec![list.clone()],
            Some(file::Identity::Alternatives(lists)) => lists.clone(),
        }
        .into_iter()
        .enumerate()
        .map(|(i, list)| {
            if list.is_empty() {
                return Err(invalid(
                    format!("identity[{i}]"),
                    "an empty list identifies nothing",
                ));
            }
            list.iter()
                .map(|p| {
                    let key = format!("identity[{i}]");
                    let pointer = Pointer::parse(p).map_err(|m| invalid(&key, m))?;
                    if pointer.is_list() {
                        return Err(invalid(
                            &key,
                            format!("{p}: name one value, without * or -"),
                        ));
                    }
                    SchemaNode::at(kind, &pointer.steps).map_err(|m| invalid(&key, m))?;
                    Ok(pointer)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
        let with_columns = fields.iter().filter(|f| !f.columns.is_empty()).count();
        let layout = Layout {
            header_min_matches: file
                .layout
                .header_min_matches
                .unwrap_or(3.min(with_columns))
                .max(1),
            header_scan_rows: file.layout.header_scan_rows.unwrap_or(30).max(1),
            note_prefixes: file
                .layout
                .note_prefixes
                .clone()
                .unwrap_or_else(|| NOTE_PREFIXES.iter().map(|s| (*s).to_owned()).collect()),
        };
        if layout.header_min_matches > with_columns.max(1) {
            return Err(invalid(
                "layout.header_min_matches",
                format!(
                    "is {} but only {with_columns} fields have a column",
                    layout.header_min_matches
                ),
            ));
        }
        Ok(Mapping {
            kind,
            name: file.name,
            description: file.description,
            identity,
            source: file.source,
            layout,
            fields,
            defaults,
            constants,
        })
    }

    /// The kind of record every row becomes.
    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// The layout's name (the start of every source key).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `[source]` table as written, for the source that reads the file.
    pub fn source(&self) -> Option<&toml::Table> {
        self.source.as_ref()
    }

    /// How headers and note rows are found.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The fields, in file order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The identity alternatives, as pointer texts.
    pub fn identity(&self) -> Vec<Vec<&str>> {
        self.identity
            .iter()
            .map(|alt| alt.iter().map(|p| p.text.as_str()).collect())
            .collect()
    }

    /// A mapper that applies this mapping to rows, one source (or several, one after the
    /// other) at a time.
    pub fn mapper(&self) -> Mapper<'_> {
        Mapper::new(self)
    }
}

/// Whether a target may be written at all: the schema has it. The fields the node assigns on
/// approval, `/registration_no` and `/registration_date`, may be mapped too: a historical
/// record's number and date travel beside the record
/// ([`crate::outcome::MappedRecord::registration_no`]), to the node's import of historical
/// records, which keeps them.
fn check_target(kind: RecordKind, target: &Pointer) -> Result<SchemaNode, String> {
    SchemaNode::at(kind, &target.steps)
}

fn compile_field(kind: RecordKind, i: usize, f: &file::FieldFile) -> Result<Field, MappingError> {
    let key = |k: &str| format!("field[{i}].{k}");
    let converter: Converter = f
        .convert
        .as_deref()
        .unwrap_or("text")
        .parse()
        .map_err(|e: convert::UnknownConverter| invalid(key("convert"), e.to_string()))?;
    let columns = f
        .column
        .as_ref()
        .map(file::Names::to_vec)
        .unwrap_or_default();
    if columns.iter().any(|c| header_key(c).is_empty()) {
        return Err(invalid(key("column"), "a column name cannot be blank"));
    }
    let path = f
        .path
        .as_deref()
        .map(Pointer::parse)
        .transpose()
        .map_err(|m| invalid(key("path"), m))?;
    if let Some(p) = &path
        && p.steps.iter().any(|s| matches!(s, Step::Append))
    {
        return Err(invalid(key("path"), "a path may use * but not -"));
    }
    if columns.is_empty() && path.is_none() {
        return Err(invalid(
            format!("field[{i}]"),
            "needs a column (header name) or a path (tree rows)",
        ));
    }
    let target = Pointer::parse(&f.target).map_err(|m| invalid(key("target"), m))?;
    if target.wildcards() > 1 {
        return Err(invalid(key("target"), "at most one * or - step"));
    }
    if target.steps.is_empty() && converter != Converter::Json {
        return Err(invalid(
            key("target"),
            "only the json converter may write the whole record",
        ));
    }
    let node = check_target(kind, &target).map_err(|m| invalid(key("target"), m))?;
    let schema_list = node.type_name() == Some("array");
    let split = match &f.split {
        Some(file::Split::Flag(false)) => None,
        Some(file::Split::Flag(true)) => Some(convert::text::LIST_SEPARATORS.to_owned()),
        Some(file::Split::Chars(chars)) if chars.is_empty() => {
            return Err(invalid(
                key("split"),
                "give the separator characters, or true",
            ));
        }
        Some(file::Split::Chars(chars)) => Some(chars.clone()),
        None if matches!(converter, Converter::Keywords | Converter::Json) => None,
        None if target.is_list() || schema_list => Some(convert::text::LIST_SEPARATORS.to_owned()),
        None => None,
    };
    if split.is_some() && !target.is_list() && !schema_list {
        return Err(invalid(
            key("split"),
            format!(
                "{} holds one value; a list needs a * or - step in the target (e.g. /completers/*/name)",
                target.text
            ),
        ));
    }
    let whole_list = schema_list && !target.is_list() && converter != Converter::Json;
    // The schema of one converted value: a list's element, or the target itself.
    let value_node = if whole_list && converter != Converter::Keywords {
        node.items()
            .ok_or_else(|| invalid(key("target"), "the list has no element schema"))?
    } else {
        node
    };
    if let (Some(produces), Some(declared)) = (converter.produces(), value_node.type_name()) {
        let fits = produces == declared || (produces == "integer" && declared == "number");
        if !fits {
            return Err(invalid(
                key("convert"),
                format!(
                    "{} gives a {produces} but {} holds a {declared}{}",
                    converter.name(),
                    target.text,
                    if declared == "array" {
                        " (a list: use split, keywords, or a * target)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    let mut options = Options {
        multiline: value_node.multiline(),
        halfwidth: f.halfwidth,
        ..Options::default()
    };
    if converter == Converter::Keywords
        && let Some(file::Split::Chars(chars)) = &f.split
    {
        options.separators = chars.clone();
    }
    options.fill = match f.fill.as_deref() {
        Some("start") => Fill::Start,
        Some("end") => Fill::End,
        Some(other) => {
            return Err(invalid(
                key("fill"),
                format!("{other:?} must be start or end"),
            ));
        }
        None if matches!(target.last_key(), Some("end" | "deadline")) => Fill::End,
        None => Fill::Start,
    };
    if let Some(unit) = &f.unit {
        if converter != Converter::Amount {
            return Err(invalid(key("unit"), "only the amount converter has a unit"));
        }
        options.unit = convert::number::unit(unit).ok_or_else(|| {
            invalid(
                key("unit"),
                format!("{unit:?} must be one of 元, 千元, 万元, 亿元"),
            )
        })?;
    }
    if converter.is_code() {
        let allowed = value_node.enum_values().ok_or_else(|| {
            invalid(
                key("convert"),
                format!("{} has no code list in the schema; use text", target.text),
            )
        })?;
        if let Converter::List(list) = converter
            && let Some((_, value)) = list
                .synonyms
                .iter()
                .find(|(_, v)| !allowed.iter().any(|a| a == v))
        {
            return Err(invalid(
                key("convert"),
                format!(
                    "the {} list gives {value:?}, which {} does not take ({}); pick the converter of this field",
                    list.name,
                    target.text,
                    allowed.join(", ")
                ),
            ));
        }
        options.allowed = allowed;
    }
    for (written, value) in &f.values {
        let vkey = format!("field[{i}].values.{written:?}");
        let value = match (converter, value) {
            (Converter::Bool, toml::Value::Boolean(b)) => b.to_string(),
            (Converter::Bool, _) => return Err(invalid(vkey, "must be true or false")),
            (c, toml::Value::String(s)) if c.is_code() => {
                if !options.allowed.iter().any(|a| a == s) {
                    return Err(invalid(
                        vkey,
                        format!(
                            "{s:?} is not a value of {} ({})",
                            target.text,
                            options.allowed.join(", ")
                        ),
                    ));
                }
                s.clone()
            }
            (c, _) if c.is_code() => return Err(invalid(vkey, "must be a string")),
            _ => return Err(invalid(vkey, "values is for code converters and bool")),
        };
        options.values.push((code_key(written), value));
    }
    if f.first_index.is_some() && !target.steps.contains(&Step::Each) {
        return Err(invalid(key("first_index"), "needs a * step in the target"));
    }
    Ok(Field {
        index: i,
        column_keys: columns.iter().map(|c| header_key(c)).collect(),
        columns,
        path,
        target,
        converter,
        options,
        required: f.required,
        split,
        first_index: f.first_index.unwrap_or(0),
        whole_list,
    })
}

impl fmt::Display for Mapping {
    /// One line per field: column(s) or path → target (converter).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.name, self.kind)?;
        for field in &self.fields {
            let from = match &field.path {
                Some(p) => p.text.clone(),
                None => field.columns.join(" | "),
            };
            writeln!(
                f,
                "  {from} → {} ({}{})",
                field.target.text,
                field.converter.name(),
                if field.required { ", required" } else { "" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
