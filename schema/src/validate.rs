//! Record validation: the JSON Schema of the record's kind, then the rules JSON Schema cannot
//! express (code-list check characters, date order, cross-field consistency).
//!
//! Both halves report the same way, as a list of [`FieldError`]s whose `pointer` is a JSON Pointer
//! into the submitted document, so that a submitter, a node's problem+json response and a
//! gateway's audit row all say what is wrong and where. Every error is collected; validation
//! never stops at the first one, because a person fixing a form wants the whole list.

use crate::RecordKind;
use crate::codes::{self, RegistrationNumber};
use crate::schemas::{self, SchemaFile};
use crate::secrecy::SecrecyLevel;
use jsonschema::error::ValidationErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

/// Validates a record of `kind`: its JSON Schema first, then the code rules. Returns every error,
/// sorted by pointer.
pub fn validate_record(kind: RecordKind, record: &Value) -> Result<(), Vec<FieldError>> {
    let validator = match kind {
        RecordKind::Achievement => &compiled().achievement,
        RecordKind::FundedProject => &compiled().funded_project,
    };
    let mut errors = schema_errors(validator, record);
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
    finish(errors)
}

/// Validates a batch envelope's shape against `batch.json` (not its signature or chain: see
/// [`crate::batch`]).
pub fn validate_envelope(batch: &Value) -> Result<(), Vec<FieldError>> {
    finish(schema_errors(&compiled().batch, batch))
}

fn finish(mut errors: Vec<FieldError>) -> Result<(), Vec<FieldError>> {
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort();
    errors.dedup();
    Err(errors)
}

fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<FieldError> {
    // The fast path: most documents are valid and `is_valid` short-circuits.
    if validator.is_valid(instance) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for error in validator.iter_errors(instance) {
        let at = error.instance_path().as_str().to_owned();
        match error.kind() {
            // Point at the missing or unexpected property itself, not at its parent object.
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                out.push(FieldError::new(
                    child_pointer(&at, name),
                    "is required but missing",
                ));
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    out.push(FieldError::new(
                        child_pointer(&at, name),
                        "is not a field of this schema",
                    ));
                }
            }
            _ => out.push(FieldError::new(at, shorten(error.to_string()))),
        }
    }
    out
}

/// `parent` + `/` + the RFC 6901-escaped `name`.
pub fn child_pointer(parent: &str, name: &str) -> String {
    format!("{parent}/{}", name.replace('~', "~0").replace('/', "~1"))
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
    errors: &'a mut Vec<FieldError>,
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
        self.errors.push(FieldError::new(pointer, message));
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
