//! Record validation: the JSON Schema of the record's kind, then the rules JSON Schema cannot
//! express (code-list check characters, date order, cross-field consistency).
//!
//! Both halves report the same way, as a list of [`FieldError`]s whose `pointer` is a JSON Pointer
//! into the submitted document, so that a submitter, a node's problem+json response and a
//! gateway's audit row all say what is wrong and where. Validation does not stop at the first
//! error, because a person fixing a form wants the whole list; but it keeps at most
//! [`MAX_ERRORS`] of them (and counts the rest), so a document with a million bad fields costs a
//! count, not a million messages.
//!
//! Rules here that JSON Schema cannot say:
//! - code lists: USCC check character, region codes, registration numbers;
//! - date order, acceptance and transfer deadlines, budget parts adding up, distinct keywords,
//!   `confidential_fields` that point at real, hideable fields;
//! - **text** ([`check_text`]): no NUL or other C0/C1 control character but tab and line feed,
//!   line feeds only in multi-line fields (marked `"x-multiline": true` in the schema files,
//!   see [`multiline_fields`]), no Unicode line or paragraph separators, and no bidirectional
//!   embedding, override or isolate characters;
//! - **secrecy decisions**: a decision must change the level; and, given the level a record
//!   stands at, a version that lowers it (降解密) must carry the decision
//!   ([`check_level_change`]).
//!
//! What it may not touch: state. A record is judged on its own; what a rule needs from a node or
//! a catalogue comes in as an argument (the level a record stands at, for
//! [`check_level_change`]), and rules over many records (a registration number used twice, who
//! owns a record) are the services'. The schemas are compiled once, on first use.

use crate::RecordKind;
use crate::codes::{self, RegistrationNumber};
use crate::schemas::{self, SchemaFile};
use crate::secrecy::SecrecyLevel;
use jsonschema::error::ValidationErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One problem with a submitted document: where (JSON Pointer, `""` for the whole document) and
/// what, in words a submitter can act on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) into the submitted document.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// An error at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "(document)"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// Longest message kept from the JSON Schema validator: its messages quote the offending value,
/// which for a 5,000-character abstract would drown the answer.
const MAX_MESSAGE_CHARS: usize = 240;

struct Compiled {
    achievement: jsonschema::Validator,
    funded_project: jsonschema::Validator,
    batch: jsonschema::Validator,
}

/// The validators, compiled once per process: compiling costs milliseconds, validating
/// microseconds.
fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let registry = jsonschema::Registry::new()
            .add(schemas::COMMON.id, schemas::COMMON.json().clone())
            .expect("common.json is a valid resource")
            .prepare()
            .expect("the embedded schema registry resolves");
        let build = |file: &'static SchemaFile| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .with_registry(&registry)
                .build(file.json())
                .unwrap_or_else(|e| panic!("embedded schema {} does not compile: {e}", file.name))
        };
        Compiled {
            achievement: build(&schemas::ACHIEVEMENT),
            funded_project: build(&schemas::FUNDED_PROJECT),
            batch: build(&schemas::BATCH),
        }
    })
}

/// Most errors kept for one document (the rest are counted, see [`FieldErrors::total`]). A
/// person fixes a form a hundred fields at a time at most; beyond that the list only costs
/// memory and bandwidth.
pub const MAX_ERRORS: usize = 100;

/// The errors found in one document: the first ones found (at most the bound asked for),
/// sorted by pointer, and how many there were in all. Several documents' errors can be
/// [appended](FieldErrors::append) into one (a batch submit), each document's in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors {
    /// The errors kept: sorted by pointer within each document.
    pub errors: Vec<FieldError>,
    /// How many errors were found, kept or not (`>= errors.len()`).
    pub total: usize,
}

impl FieldErrors {
    /// Whether errors were found beyond those kept.
    pub fn truncated(&self) -> bool {
        self.total > self.errors.len()
    }

    /// Adds one more error found, keeping it if fewer than `max` are kept.
    pub fn push(&mut self, error: FieldError, max: usize) {
        self.total += 1;
        if self.errors.len() < max {
            self.errors.push(error);
        }
    }

    /// Adds another document's errors, keeping at most `max` in all.
    pub fn append(&mut self, other: FieldErrors, max: usize) {
        self.total += other.total;
        let room = max.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
    }
}

/// A complete list: every error found is in it.
impl From<Vec<FieldError>> for FieldErrors {
    fn from(errors: Vec<FieldError>) -> FieldErrors {
        FieldErrors {
            total: errors.len(),
            errors,
        }
    }
}

/// Collects errors up to a bound, counting every one.
struct Collector {
    errors: Vec<FieldError>,
    total: usize,
    max: usize,
}

impl Collector {
    fn new(max: usize) -> Collector {
        Collector {
            errors: Vec::new(),
            total: 0,
            max,
        }
    }

    fn has_room(&self) -> bool {
        self.errors.len() < self.max
    }

    fn push(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.total += 1;
        if self.has_room() {
            self.errors.push(FieldError::new(pointer, message));
        }
    }

    /// Counts `n` errors, building (with `make`) only those there is room for.
    fn push_many<'i>(
        &mut self,
        items: impl ExactSizeIterator<Item = &'i str>,
        make: impl Fn(&str) -> FieldError,
    ) {
        self.total += items.len();
        let room = self.max.saturating_sub(self.errors.len());
        self.errors.extend(items.take(room).map(make));
    }

    fn finish(mut self) -> Result<(), FieldErrors> {
        if self.total == 0 {
            return Ok(());
        }
        self.errors.sort();
        let kept = self.errors.len();
        self.errors.dedup();
        // Nothing was dropped: the total is exactly what is listed.
        let total = if self.total == kept {
            self.errors.len()
        } else {
            self.total
        };
        Err(FieldErrors {
            errors: self.errors,
            total,
        })
    }
}

/// Validates a record of `kind`: its JSON Schema first, then the rules in code. Returns the
/// errors sorted by pointer, at most [`MAX_ERRORS`] of them (use [`validate_record_bounded`]
/// to learn how many there were).
pub fn validate_record(kind: RecordKind, record: &Value) -> Result<(), Vec<FieldError>> {
    validate_record_bounded(kind, record, MAX_ERRORS).map_err(|e| e.errors)
}

/// Validates a record of `kind`, keeping at most `max_errors` errors and counting all of them.
pub fn validate_record_bounded(
    kind: RecordKind,
    record: &Value,
    max_errors: usize,
) -> Result<(), FieldErrors> {
    let validator = match kind {
        RecordKind::Achievement => &compiled().achievement,
        RecordKind::FundedProject => &compiled().funded_project,
    };
    let mut errors = Collector::new(max_errors);
    schema_errors(validator, record, &mut errors);
    if record.is_object() {
        let mut rules = Rules {
            record,
            errors: &mut errors,
        };
        match kind {
            RecordKind::Achievement => rules.achievement(),
            RecordKind::FundedProject => rules.funded_project(),
        }
    }
    text_rule(kind, record, &mut errors);
    errors.finish()
}

/// Validates a batch envelope's shape against `batch.json` (not its signature or chain: see
/// [`crate::batch`]). At most [`MAX_ERRORS`] errors.
pub fn validate_envelope(batch: &Value) -> Result<(), Vec<FieldError>> {
    let mut errors = Collector::new(MAX_ERRORS);
    schema_errors(&compiled().batch, batch, &mut errors);
    errors.finish().map_err(|e| e.errors)
}

fn schema_errors(validator: &jsonschema::Validator, instance: &Value, out: &mut Collector) {
    // The fast path: most documents are valid and `is_valid` short-circuits.
    if validator.is_valid(instance) {
        return;
    }
    for error in validator.iter_errors(instance) {
        let at = error.instance_path().as_str();
        match error.kind() {
            // Point at the missing or unexpected property itself, not at its parent object.
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                out.push(child_pointer(at, name), "is required but missing");
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                out.push_many(unexpected.iter().map(String::as_str), |name| {
                    FieldError::new(child_pointer(at, name), "is not a field of this schema")
                });
            }
            _ if out.has_room() => out.push(at, shorten(error.to_string())),
            _ => out.total += 1,
        }
    }
}

/// `parent` + `/` + the RFC 6901-escaped `name`.
pub fn child_pointer(parent: &str, name: &str) -> String {
    let mut pointer = parent.to_owned();
    push_pointer_key(&mut pointer, name);
    pointer
}

/// Appends `/` and the member name `key`, RFC 6901-escaped (`~` → `~0`, `/` → `~1`), to a
/// JSON Pointer being built.
pub fn push_pointer_key(pointer: &mut String, key: &str) {
    pointer.push('/');
    if key.contains(['~', '/']) {
        pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
    } else {
        pointer.push_str(key);
    }
}

fn shorten(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message;
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push('…');
    cut
}

/// Top-level fields a submitter may not declare confidential: the catalogue needs them to
/// identify, classify, route and link a record at all.
const NOT_CONFIDENTIAL: [&str; 9] = [
    "title",
    "category",
    "secrecy",
    "confidential_fields",
    "registration_no",
    "registration_date",
    "project_no",
    "program",
    "status",
];

/// The code rules, run over the raw JSON so they report alongside schema errors even when the
/// document does not deserialize.
struct Rules<'a> {
    record: &'a Value,
    errors: &'a mut Collector,
}

impl<'a> Rules<'a> {
    fn achievement(&mut self) {
        self.institution_list("/institutions");
        self.period("/research_period");
        self.keywords();
        self.confidential_fields();
        self.secrecy_decision();
        let category = self.str_at("/category");
        if category == Some("应用技术") && self.record.pointer("/trl").is_none() {
            self.push(
                "/trl",
                "an applied technology (应用技术) result must state its technology readiness level (1-9)",
            );
        }
        if let Some(number) = self.str_at("/registration_no") {
            match RegistrationNumber::parse(number) {
                Err(e) => self.push("/registration_no", e.to_string()),
                Ok(n) => {
                    let expected = match category {
                        Some("应用技术") => Some('Y'),
                        Some("基础理论") => Some('J'),
                        Some("软科学") => Some('R'),
                        _ => None,
                    };
                    if let Some(flag) = expected.filter(|&f| f != n.flag) {
                        self.push(
                            "/registration_no",
                            format!(
                                "category flag is {} but a {} result is registered with {flag}",
                                n.flag,
                                category.unwrap_or_default()
                            ),
                        );
                    }
                }
            }
        }
    }

    fn funded_project(&mut self) {
        self.institution("/lead");
        self.institution_list("/participants");
        self.uscc_and_region("/funder");
        self.period("/period");
        self.keywords();
        self.confidential_fields();
        self.secrecy_decision();
        self.budget();
        let status = self.str_at("/status");
        let conclusion = self.str_at("/acceptance/conclusion");
        let expected_conclusion = match status {
            Some("验收通过") => Some("通过"),
            Some("验收不通过") => Some("不通过"),
            _ => None,
        };
        if let Some(expected) = expected_conclusion {
            match conclusion {
                None if self.record.pointer("/acceptance").is_none() => self.push(
                    "/acceptance",
                    format!(
                        "status {} requires the acceptance record",
                        status.unwrap_or_default()
                    ),
                ),
                Some(c) if c != expected => self.push(
                    "/acceptance/conclusion",
                    format!(
                        "status {} requires conclusion {expected}, not {c}",
                        status.unwrap_or_default()
                    ),
                ),
                _ => {}
            }
        }
        if let (Some(start), Some(accepted)) = (
            self.date_at("/period/start"),
            self.date_at("/acceptance/date"),
        ) && accepted < start
        {
            self.push(
                "/acceptance/date",
                "acceptance cannot be before the project started",
            );
        }
        if let (Some(start), Some(deadline)) = (
            self.date_at("/period/start"),
            self.date_at("/transfer_obligation/deadline"),
        ) && deadline < start
        {
            self.push(
                "/transfer_obligation/deadline",
                "the transfer deadline cannot be before the project started",
            );
        }
    }

    fn push(&mut self, pointer: &str, message: impl Into<String>) {
        self.errors.push(pointer, message);
    }

    fn str_at(&self, pointer: &str) -> Option<&'a str> {
        let record: &'a Value = self.record;
        record.pointer(pointer).and_then(Value::as_str)
    }

    /// A date at `pointer` if it is a real calendar date (the schema reports the rest).
    fn date_at(&self, pointer: &str) -> Option<time::Date> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(self.str_at(pointer)?, &format).ok()
    }

    fn institution_list(&mut self, pointer: &str) {
        let count = self
            .record
            .pointer(pointer)
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..count {
            self.institution(&format!("{pointer}/{i}"));
        }
    }

    fn institution(&mut self, pointer: &str) {
        self.uscc_and_region(pointer);
    }

    fn uscc_and_region(&mut self, pointer: &str) {
        let uscc_pointer = format!("{pointer}/uscc");
        if let Some(uscc) = self.str_at(&uscc_pointer)
            && let Err(e) = codes::check_uscc(uscc)
        {
            self.push(&uscc_pointer, e.to_string());
        }
        let region_pointer = format!("{pointer}/region");
        if let Some(region) = self.str_at(&region_pointer)
            && let Err(e) = codes::check_region(region)
        {
            self.push(&region_pointer, e.to_string());
        }
    }

    fn period(&mut self, pointer: &str) {
        if let (Some(start), Some(end)) = (
            self.date_at(&format!("{pointer}/start")),
            self.date_at(&format!("{pointer}/end")),
        ) && end < start
        {
            self.push(
                &format!("{pointer}/end"),
                format!("ends on {end} before it starts on {start}"),
            );
        }
    }

    fn keywords(&mut self) {
        let Some(keywords) = self.record.pointer("/keywords").and_then(Value::as_array) else {
            return;
        };
        let mut seen: Vec<String> = Vec::with_capacity(keywords.len());
        for (i, keyword) in keywords.iter().enumerate() {
            let Some(k) = keyword.as_str() else { continue };
            let normal = k.trim().to_lowercase();
            if normal.is_empty() {
                self.push(&format!("/keywords/{i}"), "a keyword cannot be blank");
            } else if seen.contains(&normal) {
                self.push(
                    &format!("/keywords/{i}"),
                    format!("keyword {k:?} is listed twice"),
                );
            }
            seen.push(normal);
        }
    }

    fn confidential_fields(&mut self) {
        let Some(pointers) = self
            .record
            .pointer("/confidential_fields")
            .and_then(Value::as_array)
        else {
            return;
        };
        for (i, pointer) in pointers.iter().enumerate() {
            let Some(p) = pointer.as_str() else { continue };
            let at = format!("/confidential_fields/{i}");
            let first = p.split('/').nth(1).unwrap_or_default();
            if !p.starts_with('/') {
                self.push(
                    &at,
                    format!("{p:?} is not a JSON Pointer (it must start with /)"),
                );
            } else if NOT_CONFIDENTIAL.contains(&first) {
                self.push(
                    &at,
                    format!(
                        "/{first} identifies or classifies the record and cannot be confidential"
                    ),
                );
            } else if self.record.pointer(p).is_none() {
                self.push(&at, format!("{p} points at no field of this record"));
            }
        }
    }

    fn secrecy_decision(&mut self) {
        let level = self.str_at("/secrecy/level").and_then(SecrecyLevel::parse);
        let previous = self
            .str_at("/secrecy/decision/previous_level")
            .and_then(SecrecyLevel::parse);
        if let (Some(level), Some(previous)) = (level, previous)
            && level == previous
        {
            self.push(
                "/secrecy/decision/previous_level",
                format!("a secrecy decision must change the level, but it stays {level}"),
            );
        }
    }

    fn budget(&mut self) {
        let Some(budget) = self.record.pointer("/budget").and_then(Value::as_object) else {
            return;
        };
        let amount = |name: &str| budget.get(name).and_then(Value::as_f64);
        let parts = ["central_fiscal", "local_fiscal", "self_raised"];
        if !parts.iter().any(|p| budget.contains_key(*p)) {
            return;
        }
        let (Some(total), sum) = (
            amount("total"),
            parts.iter().filter_map(|p| amount(p)).sum::<f64>(),
        ) else {
            return;
        };
        // Amounts are in 万元 with at most a few decimals; compare at 0.1 yuan.
        if (total - sum).abs() > 0.000_01 {
            self.push(
                "/budget/total",
                format!(
                    "total is {total} but central, local and self-raised funds add up to {sum}"
                ),
            );
        }
    }
}

/// Where in a record multi-line text is allowed, read from the schema files' `x-multiline`
/// marks: one node per schema property, with the array items under `items`.
#[derive(Debug, Default)]
struct TextShape {
    multiline: bool,
    keys: BTreeMap<String, TextShape>,
    items: Option<Box<TextShape>>,
}

impl TextShape {
    /// Drops every branch without a multi-line field below it, so that walking a record only
    /// looks keys up where it matters. Returns whether anything is left.
    fn prune(&mut self) -> bool {
        self.keys.retain(|_, child| child.prune());
        if self.items.as_mut().is_some_and(|items| !items.prune()) {
            self.items = None;
        }
        self.multiline || !self.keys.is_empty() || self.items.is_some()
    }
}

/// The text shape of a record kind, read once per process.
fn text_shape(kind: RecordKind) -> &'static TextShape {
    static SHAPES: OnceLock<Vec<TextShape>> = OnceLock::new();
    let shapes = SHAPES.get_or_init(|| {
        RecordKind::ALL
            .iter()
            .map(|k| {
                let file = schemas::for_kind(*k);
                let mut shape = TextShape::default();
                read_text_shape(file, file.json(), &mut shape, 0);
                shape.prune();
                shape
            })
            .collect()
    });
    &shapes[RecordKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is listed")]
}

/// Walks a schema node (following `$ref`s, into `common.json` too) and records its
/// `x-multiline` mark and those of everything below it.
fn read_text_shape(
    file: &'static SchemaFile,
    node: &'static Value,
    shape: &mut TextShape,
    depth: usize,
) {
    // The shipped schemas are shallow; the bound only guards against a future recursive $ref.
    assert!(depth < 32, "schema nesting too deep in {}", file.name);
    if node.get("x-multiline").and_then(Value::as_bool) == Some(true) {
        shape.multiline = true;
    }
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let (target_file, target) = file.resolve(reference);
        read_text_shape(target_file, target, shape, depth + 1);
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let slot = shape.keys.entry(name.clone()).or_default();
            read_text_shape(file, child, slot, depth + 1);
        }
    }
    if let Some(items) = node.get("items") {
        let slot = shape.items.get_or_insert_with(Default::default);
        read_text_shape(file, items, slot, depth + 1);
    }
}

/// The fields of a record kind where text may span lines (`"x-multiline": true` in its
/// schema), as pointer patterns with `*` for any array element: `/abstract`,
/// `/completers/*/contribution`… Every other string is one line.
pub fn multiline_fields(kind: RecordKind) -> Vec<String> {
    fn walk(shape: &TextShape, at: &mut String, out: &mut Vec<String>) {
        if shape.multiline {
            out.push(at.clone());
        }
        let len = at.len();
        for (name, child) in &shape.keys {
            at.push('/');
            at.push_str(name);
            walk(child, at, out);
            at.truncate(len);
        }
        if let Some(items) = &shape.items {
            at.push_str("/*");
            walk(items, at, out);
            at.truncate(len);
        }
    }
    let mut out = Vec::new();
    walk(text_shape(kind), &mut String::new(), &mut out);
    out
}

/// Checks one text value: `Err` says what character is refused, where, and what to do.
///
/// Refused everywhere: NUL and every other C0 control character but tab (U+0009) and line
/// feed (U+000A), DEL (U+007F), the C1 controls (U+0080–U+009F), the Unicode line and
/// paragraph separators (U+2028, U+2029), and the bidirectional embeddings, overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069), which make text display in another order than it
/// is stored ("Trojan Source") and so let a title or a number read differently on screen
/// from what reviewers, search and the signature see. A line feed is refused unless
/// `multiline`. Carriage returns are refused: write line breaks as `\n`.
///
/// Deliberately allowed: the implicit direction marks U+200E (LRM), U+200F (RLM) and U+061C
/// (ALM). They cannot reorder a run of text, only settle the direction of neutral characters
/// next to them, and mixed-direction text needs them to display correctly — Uyghur, an
/// official language written right to left, mixed with digits and Latin letters.
pub fn check_text(text: &str, multiline: bool) -> Result<(), String> {
    let Some((at, c)) = first_forbidden(text, multiline) else {
        return Ok(());
    };
    let position = text[..at].chars().count() + 1;
    let code = u32::from(c);
    let what = match c {
        '\n' => {
            return Err(format!(
                "contains a line break at character {position}; this field is one line of text"
            ));
        }
        '\r' => "a carriage return (write line breaks as \\n)",
        '\0' => "a NUL character",
        '\u{2028}' | '\u{2029}' => {
            "a Unicode line or paragraph separator (write line breaks as \\n)"
        }
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {
            "a bidirectional override or isolate, which makes text display in a different order than it is stored"
        }
        _ => "a control character",
    };
    Err(format!(
        "contains U+{code:04X}, {what}, at character {position}; remove it"
    ))
}

/// Byte offset and character of the first character [`check_text`] refuses. Scans bytes: every
/// refused character starts with a byte below 0x20, 0x7F, 0xC2 (C1 controls) or 0xE2 (the
/// separators, embeddings, overrides and isolates), and those bytes never occur inside another
/// character's UTF-8 encoding.
fn first_forbidden(text: &str, multiline: bool) -> Option<(usize, char)> {
    /// Bytes that may start a refused character; everything else is skipped by a table lookup.
    const SUSPECT: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 0x20 {
            table[b] = true;
            b += 1;
        }
        table[0x7F] = true;
        table[0xC2] = true;
        table[0xE2] = true;
        table
    };
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(found) = bytes[from..].iter().position(|b| SUSPECT[usize::from(*b)]) {
        let i = from + found;
        let refused = match bytes[i] {
            b'\t' => false,
            b'\n' => !multiline,
            0xC2 => matches!(bytes.get(i + 1), Some(0x80..=0x9F)),
            0xE2 => matches!(
                (bytes.get(i + 1), bytes.get(i + 2)),
                (Some(0x80), Some(0xA8..=0xAE)) | (Some(0x81), Some(0xA6..=0xA9))
            ),
            _ => true,
        };
        if refused {
            let c = text[i..].chars().next().expect("at a character boundary");
            return Some((i, c));
        }
        from = i + 1;
    }
    None
}

/// Applies [`check_text`] to every string of a record, at its pointer. The path is kept as
/// borrowed steps and written out as a pointer only for a string that is refused.
fn text_rule(kind: RecordKind, record: &Value, out: &mut Collector) {
    enum Step<'a> {
        Key(&'a str),
        Index(usize),
    }
    fn pointer(path: &[Step<'_>]) -> String {
        let mut at = String::new();
        for step in path {
            match step {
                Step::Key(name) => push_pointer_key(&mut at, name),
                Step::Index(i) => {
                    at.push('/');
                    at.push_str(&i.to_string());
                }
            }
        }
        at
    }
    fn walk<'a>(
        value: &'a Value,
        shape: Option<&TextShape>,
        path: &mut Vec<Step<'a>>,
        out: &mut Collector,
    ) {
        match value {
            Value::String(s) => {
                let multiline = shape.is_some_and(|s| s.multiline);
                if first_forbidden(s, multiline).is_some()
                    && let Err(message) = check_text(s, multiline)
                {
                    out.push(pointer(path), message);
                }
            }
            Value::Array(items) => {
                let shape = shape.and_then(|s| s.items.as_deref());
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    walk(item, shape, path, out);
                    path.pop();
                }
            }
            Value::Object(fields) => {
                for (name, child) in fields {
                    let shape = shape.and_then(|s| s.keys.get(name));
                    path.push(Step::Key(name));
                    walk(child, shape, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    walk(record, Some(text_shape(kind)), &mut Vec::new(), out);
}

/// Checks a new version's secrecy against the level the record stands at (the highest of the
/// version in force and the version being revised): lowering the level is a declassification
/// (降解密) and needs `secrecy.decision` naming who decided (`authority`), when (`date`), on
/// what basis (`reference`, the decision's 文号), and the level it lowers from
/// (`previous_level`), which must be the level the record stands at. The schema leaves
/// `authority` optional for other decisions; a declassification must name it. Raising the
/// level or keeping it needs no decision. Pointers are into the new version.
///
/// A version whose own level cannot be read is refused too: nothing may be published, or
/// declassified, on a level no one can read.
pub fn check_level_change(standing: SecrecyLevel, record: &Value) -> Result<(), Vec<FieldError>> {
    let Some(level) = SecrecyLevel::of_record(record) else {
        return Err(vec![FieldError::new(
            "/secrecy/level",
            "the secrecy level cannot be read; it must be one of public, internal, secret, confidential, top_secret",
        )]);
    };
    if level >= standing {
        return Ok(());
    }
    let Some(decision) = record.pointer("/secrecy/decision") else {
        return Err(vec![FieldError::new(
            "/secrecy/decision",
            format!(
                "lowering the secrecy level from {standing} to {level} is a declassification (降解密) and needs the decision: \
                 secrecy.decision with the deciding authority, the date, the reference (文号) and previous_level \"{standing}\""
            ),
        )]);
    };
    let previous = decision
        .get("previous_level")
        .and_then(Value::as_str)
        .and_then(SecrecyLevel::parse);
    let mut errors = Vec::new();
    if previous != Some(standing) {
        errors.push(FieldError::new(
            "/secrecy/decision/previous_level",
            format!(
                "the record stands at {standing}, so the decision lowering it must name previous_level \"{standing}\""
            ),
        ));
    }
    for (field, what) in [
        ("authority", "who decided (authority)"),
        ("date", "when (date)"),
        ("reference", "its basis (reference, the decision's 文号)"),
    ] {
        let given = decision
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty());
        if !given {
            errors.push(FieldError::new(
                format!("/secrecy/decision/{field}"),
                format!("a declassification decision must state {what}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
