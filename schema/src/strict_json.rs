//! Strict JSON: the one parser for JSON that arrives from outside (request bodies, batches).
//!
//! `serde_json` accepts an object that names the same key twice and keeps the last value, so
//! `{"secrecy":{"level":"secret"},"secrecy":{"level":"public"}}` reads as a public record while
//! another tool (a log viewer, an auditor's script, a different gateway) may read it as secret.
//! Two parties that disagree about what a document says cannot both be right, so a document that
//! can be read two ways is refused here, before anything looks at its contents.
//!
//! What this module guarantees, on top of RFC 8259 syntax:
//! - **no repeated key** in any object: [`StrictJsonError::DuplicateKey`] names the JSON Pointer
//!   of the repeated key, e.g. `/secrecy`;
//! - **bounded nesting**: no more than [`MAX_DEPTH`] nested arrays and objects (or the
//!   [`Limits`] given), so a document of ten thousand `[` cannot exhaust the stack;
//!   [`StrictJsonError::TooDeep`] names the pointer of the first container too deep;
//! - **UTF-8**: the bytes are checked before parsing; [`StrictJsonError::NotUtf8`] gives the
//!   byte offset, line and column of the first bad byte;
//! - every other failure is [`StrictJsonError::Syntax`] with line and column.
//!
//! What it deliberately does not do: judge the *contents* of strings (control characters,
//! bidirectional overrides — that is a rule of the record schema, [`crate::validate`]), or
//! bound the document's size (the caller's transport limit does that before the bytes arrive).
//!
//! Cost: [`parse_value`] builds the same [`Value`] as `serde_json::from_slice` in one pass and
//! only pays for the path of a failure when there is one; see `benches/records.rs`
//! (`strict_json` group) for the ratio.

use crate::validate::FieldError;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// Default bound on nesting: at most this many arrays and objects inside one another. Real
/// records nest four levels deep; 64 leaves room for any honest document.
pub const MAX_DEPTH: usize = 64;

/// The deepest nesting that can be allowed at all: `serde_json` itself stops at 128 levels
/// and would then report a plain syntax error without a pointer.
pub const MAX_DEPTH_CEILING: usize = 120;

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most arrays and objects nested inside one another (the top-level container counts as
    /// one). Values above [`MAX_DEPTH_CEILING`] are treated as the ceiling.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: MAX_DEPTH,
        }
    }
}

/// Why a document was refused. Every variant says where: a line and column (1-based; the
/// column counts bytes) and, where it means something, a JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictJsonError {
    /// The bytes are not UTF-8.
    #[error(
        "the document is not UTF-8: invalid byte at offset {offset} (line {line} column {column})"
    )]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
        /// Its line.
        line: usize,
        /// Its column.
        column: usize,
    },
    /// Not JSON: a syntax error, a number out of range, trailing characters…
    #[error("line {line} column {column}: {message}")]
    Syntax {
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
        /// What it found, in `serde_json`'s words.
        message: String,
    },
    /// An object names the same key twice.
    #[error(
        "{pointer} is given twice (line {line} column {column}); a key may appear only once in an object"
    )]
    DuplicateKey {
        /// JSON Pointer of the repeated key, e.g. `/secrecy`.
        pointer: String,
        /// Where the second occurrence ends.
        line: usize,
        /// Where the second occurrence ends.
        column: usize,
    },
    /// Arrays and objects nest deeper than allowed.
    #[error(
        "{pointer} nests deeper than {max_depth} levels (line {line} column {column}); flatten the document"
    )]
    TooDeep {
        /// JSON Pointer of the first container beyond the limit (`""` is the whole document).
        pointer: String,
        /// The limit that was applied.
        max_depth: usize,
        /// Where that container opens.
        line: usize,
        /// Where that container opens.
        column: usize,
    },
    /// Strict JSON, but not the shape the caller asked for ([`from_slice`] only).
    #[error("line {line} column {column}: {message}")]
    Shape {
        /// Where the mismatch was found.
        line: usize,
        /// Where the mismatch was found.
        column: usize,
        /// What was expected.
        message: String,
    },
}

impl StrictJsonError {
    /// JSON Pointer of the problem: the repeated key or the too-deep container, else `""` (the
    /// document as a whole).
    pub fn pointer(&self) -> &str {
        match self {
            StrictJsonError::DuplicateKey { pointer, .. }
            | StrictJsonError::TooDeep { pointer, .. } => pointer,
            _ => "",
        }
    }

    /// Line (1-based) of the problem.
    pub fn line(&self) -> usize {
        match self {
            StrictJsonError::NotUtf8 { line, .. }
            | StrictJsonError::Syntax { line, .. }
            | StrictJsonError::DuplicateKey { line, .. }
            | StrictJsonError::TooDeep { line, .. }
            | StrictJsonError::Shape { line, .. } => *line,
        }
    }

    /// Column (1-based, in bytes) of the problem.
    pub fn column(&self) -> usize {
        match self {
            StrictJsonError::NotUtf8 { column, .. }
            | StrictJsonError::Syntax { column, .. }
            | StrictJsonError::DuplicateKey { column, .. }
            | StrictJsonError::TooDeep { column, .. }
            | StrictJsonError::Shape { column, .. } => *column,
        }
    }

    /// The refusal as a `{pointer, message}` pair, as problem+json responses and audit rows
    /// report it.
    pub fn to_field_error(&self) -> FieldError {
        FieldError::new(self.pointer(), self.to_string())
    }
}

/// Parses `bytes` as strict JSON with the default [`Limits`].
pub fn parse_value(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    parse_value_with(bytes, Limits::default())
}

/// Parses `bytes` as strict JSON with the given limits.
pub fn parse_value_with(bytes: &[u8], limits: Limits) -> Result<Value, StrictJsonError> {
    let text = utf8(bytes)?;
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = ValueSeed {
        depth: 0,
        max_depth: limits.max_depth.min(MAX_DEPTH_CEILING),
        failure: &mut failure,
    };
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| refusal(e, failure, limits))
}

/// Checks that `bytes` are strict JSON (default [`Limits`]) without building anything: for a
/// caller that then parses into its own types with `serde_json`.
pub fn check(bytes: &[u8]) -> Result<(), StrictJsonError> {
    check_with(bytes, Limits::default())
}

/// Checks that `bytes` are strict JSON under the given limits, without building anything.
pub fn check_with(bytes: &[u8], limits: Limits) -> Result<(), StrictJsonError> {
    check_str(utf8(bytes)?, limits)
}

fn check_str(text: &str, limits: Limits) -> Result<(), StrictJsonError> {
    let mut failure = None;
    let mut keys = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = CheckSeed {
        depth: 0,
        max_depth: limits.max_depth.min(MAX_DEPTH_CEILING),
        failure: &mut failure,
        keys: &mut keys,
    };
    let checked = seed.deserialize(&mut de).and_then(|()| de.end());
    checked.map_err(|e| refusal(e, failure, limits))
}

/// Parses `bytes` as strict JSON (default [`Limits`]) into `T`.
///
/// The document is first checked without being built (repeated keys, depth, UTF-8, syntax),
/// then deserialized by `serde_json` straight into `T`; a document that is strict JSON but not a
/// `T` is [`StrictJsonError::Shape`].
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StrictJsonError> {
    let text = utf8(bytes)?;
    check_str(text, Limits::default())?;
    serde_json::from_str(text).map_err(|e| StrictJsonError::Shape {
        line: e.line(),
        column: e.column(),
        message: message_of(&e),
    })
}

/// A serde `deserialize_with` for a [`Value`] field inside a larger document: builds the value
/// in the same pass as the document (no second walk), refusing repeated keys and nesting past
/// the default limit. The error names the pointer inside the value (`repeated key at
/// /secrecy`); the caller's own error adds where the value is. Use it where a struct holds free
/// JSON (a signed entry's record): serde's derive already refuses a repeated *field*, so with
/// this on every `Value` field the whole document is strict in one pass.
pub fn deserialize_value<'de, D: de::Deserializer<'de>>(
    deserializer: D,
) -> Result<Value, D::Error> {
    let mut failure = None;
    let seed = ValueSeed {
        depth: 0,
        max_depth: Limits::default().max_depth.min(MAX_DEPTH_CEILING),
        failure: &mut failure,
    };
    seed.deserialize(deserializer).map_err(|e| match failure {
        Some(f) => {
            let what = match f.kind {
                FailureKind::DuplicateKey => "repeated key",
                FailureKind::TooDeep => "nested too deep",
            };
            de::Error::custom(format!("{what} at {}", f.pointer()))
        }
        None => e,
    })
}

/// [`deserialize_value`] for an optional field.
pub fn deserialize_optional_value<'de, D: de::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    deserialize_value(deserializer).map(Some)
}

/// The text, or where it stops being UTF-8.
fn utf8(bytes: &[u8]) -> Result<&str, StrictJsonError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let before = &bytes[..offset];
        let line = 1 + before.iter().filter(|b| **b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        StrictJsonError::NotUtf8 {
            offset,
            line,
            column: offset - line_start + 1,
        }
    })
}

/// `serde_json`'s message without its trailing " at line L column C".
fn message_of(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// What the visitors found wrong, beside the opaque `serde_json::Error` that unwinds the
/// parse. `path` is filled on the way out, innermost step first, so a successful parse never
/// pays for it.
struct Failure {
    kind: FailureKind,
    path: Vec<Step>,
}

enum FailureKind {
    DuplicateKey,
    TooDeep,
}

enum Step {
    Key(String),
    Index(usize),
}

impl Failure {
    fn pointer(&self) -> String {
        let mut out = String::new();
        for step in self.path.iter().rev() {
            match step {
                Step::Key(k) => crate::validate::push_pointer_key(&mut out, k),
                Step::Index(i) => out.push_str(&format!("/{i}")),
            }
        }
        out
    }
}

fn refusal(e: serde_json::Error, failure: Option<Failure>, limits: Limits) -> StrictJsonError {
    let (line, column) = (e.line(), e.column());
    match failure {
        Some(f) => match f.kind {
            FailureKind::DuplicateKey => StrictJsonError::DuplicateKey {
                pointer: f.pointer(),
                line,
                column,
            },
            FailureKind::TooDeep => StrictJsonError::TooDeep {
                pointer: f.pointer(),
                max_depth: limits.max_depth.min(MAX_DEPTH_CEILING),
                line,
                column,
            },
        },
        None => StrictJsonError::Syntax {
            line,
            column,
            message: message_of(&e),
        },
    }
}

/// Records a failure and returns the error that unwinds the parse.
fn fail<E: de::Error>(slot: &mut Option<Failure>, kind: FailureKind, path: Vec<Step>) -> E {
    let message = match kind {
        FailureKind::DuplicateKey => "duplicate key",
        FailureKind::TooDeep => "nesting too deep",
    };
    *slot = Some(Failure { kind, path });
    E::custom(message)
}

/// Adds one step to the path of a failure that is unwinding through this container.
fn unwind(slot: &mut Option<Failure>, step: Step) {
    if let Some(f) = slot.as_mut() {
        f.path.push(step);
    }
}

/// Builds a [`Value`] exactly as `serde_json` would, refusing repeated keys and deep nesting.
struct ValueSeed<'f> {
    depth: usize,
    max_depth: usize,
    failure: &'f mut Option<Failure>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= self.max_depth {
            return Err(fail(self.failure, FailureKind::TooDeep, Vec::new()));
        }
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let child = ValueSeed {
                depth: self.depth + 1,
                max_depth: self.max_depth,
                failure: &mut *self.failure,
            };
            match seq.next_element_seed(child) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => return Ok(Value::Array(out)),
                Err(e) => {
                    unwind(self.failure, Step::Index(out.len()));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= self.max_depth {
            return Err(fail(self.failure, FailureKind::TooDeep, Vec::new()));
        }
        // Members come in sorted order nearly always (canonical JSON, our own writers): while
        // they do, a key can only repeat the one before it, and the map is built in one go at
        // the end instead of searched at every key. The first key out of order switches to
        // searching the map.
        let mut sorted: Vec<(String, Value)> = Vec::new();
        loop {
            let Some(key) = map.next_key::<String>()? else {
                return Ok(Value::Object(sorted.into_iter().collect()));
            };
            if sorted.last().is_some_and(|(last, _)| *last >= key) {
                let mut out: Map<String, Value> = sorted.into_iter().collect();
                return self
                    .visit_rest_of_map(map, &mut out, key)
                    .map(|()| Value::Object(out));
            }
            let value = self.member(&mut map, &key)?;
            sorted.push((key, value));
        }
    }
}

impl<'de> ValueSeed<'_> {
    /// The value of the member `key`, one level deeper; a failure inside it is located there.
    fn member<A: MapAccess<'de>>(&mut self, map: &mut A, key: &str) -> Result<Value, A::Error> {
        let child = ValueSeed {
            depth: self.depth + 1,
            max_depth: self.max_depth,
            failure: &mut *self.failure,
        };
        map.next_value_seed(child).inspect_err(|_| {
            unwind(self.failure, Step::Key(key.to_owned()));
        })
    }

    /// The members of an object from `first` on, searching `out` for every key.
    fn visit_rest_of_map<A: MapAccess<'de>>(
        mut self,
        mut map: A,
        out: &mut Map<String, Value>,
        first: String,
    ) -> Result<(), A::Error> {
        let mut next = Some(first);
        while let Some(key) = next {
            if out.contains_key(&key) {
                return Err(fail(
                    self.failure,
                    FailureKind::DuplicateKey,
                    vec![Step::Key(key)],
                ));
            }
            let value = self.member(&mut map, &key)?;
            out.insert(key, value);
            next = map.next_key::<String>()?;
        }
        Ok(())
    }
}

/// Walks a document without building it, refusing repeated keys and deep nesting. The keys of
/// the objects being walked live on one shared stack (`keys`), borrowed from the input where
/// they have no escapes, so a walk allocates almost nothing.
struct CheckSeed<'f, 'de> {
    depth: usize,
    max_depth: usize,
    failure: &'f mut Option<Failure>,
    keys: &'f mut Vec<Cow<'de, str>>,
}

/// Objects with more keys than this are checked with a hash set instead of a scan.
const LINEAR_KEYS: usize = 16;

impl<'de> DeserializeSeed<'de> for CheckSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de> CheckSeed<'_, 'de> {
    fn child(&mut self) -> CheckSeed<'_, 'de> {
        CheckSeed {
            depth: self.depth + 1,
            max_depth: self.max_depth,
            failure: &mut *self.failure,
            keys: &mut *self.keys,
        }
    }
}

impl<'de> Visitor<'de> for CheckSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= self.max_depth {
            return Err(fail(self.failure, FailureKind::TooDeep, Vec::new()));
        }
        let mut index = 0;
        loop {
            match seq.next_element_seed(self.child()) {
                Ok(Some(())) => index += 1,
                Ok(None) => return Ok(()),
                Err(e) => {
                    unwind(self.failure, Step::Index(index));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= self.max_depth {
            return Err(fail(self.failure, FailureKind::TooDeep, Vec::new()));
        }
        let start = self.keys.len();
        let mut many: Option<HashSet<Cow<'de, str>>> = None;
        let result = loop {
            let key = match map.next_key_seed(KeySeed) {
                Ok(Some(key)) => key,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let repeated = match many.as_mut() {
                Some(set) => !set.insert(key.clone()),
                None => {
                    let seen = self.keys[start..].contains(&key);
                    if !seen {
                        self.keys.push(key.clone());
                        if self.keys.len() - start > LINEAR_KEYS {
                            many = Some(self.keys.drain(start..).collect());
                        }
                    }
                    seen
                }
            };
            if repeated {
                break Err(fail(
                    self.failure,
                    FailureKind::DuplicateKey,
                    vec![Step::Key(key.into_owned())],
                ));
            }
            if let Err(e) = map.next_value_seed(self.child()) {
                unwind(self.failure, Step::Key(key.into_owned()));
                break Err(e);
            }
        };
        self.keys.truncate(start);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Both entry points agree on every refusal.
    fn refuse(text: &str) -> StrictJsonError {
        let built = parse_value(text.as_bytes()).unwrap_err();
        let checked = check(text.as_bytes()).unwrap_err();
        assert_eq!(built, checked, "{text}");
        built
    }

    #[test]
    fn a_repeated_key_is_refused_at_its_pointer() {
        let e = refuse(r#"{"secrecy":{"level":"secret"},"secrecy":{"level":"public"}}"#);
        assert!(
            matches!(&e, StrictJsonError::DuplicateKey { pointer, line: 1, .. } if pointer == "/secrecy"),
            "{e:?}"
        );
        assert_eq!(e.to_field_error().pointer, "/secrecy");
        assert!(e.to_string().contains("given twice"), "{e}");
    }

    #[test]
    fn a_repeated_key_deep_inside_names_the_whole_path() {
        let e = refuse(
            r#"{"institutions":[{"name":"a"},{"name":"b","a/b~c":1,"region":"1","a/b~c":2}]}"#,
        );
        assert_eq!(e.pointer(), "/institutions/1/a~1b~0c");
    }

    #[test]
    fn a_repeated_key_in_a_large_object_is_found() {
        let mut text = String::from("{");
        for i in 0..1000 {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        text.push_str("\"k500\":0}");
        assert_eq!(refuse(&text).pointer(), "/k500");
        // The same keys once each are fine.
        let ok = text.replace("\"k500\":0}", "\"k1000\":0}");
        assert_eq!(
            parse_value(ok.as_bytes()).unwrap(),
            serde_json::from_str::<Value>(&ok).unwrap()
        );
        check(ok.as_bytes()).unwrap();
    }

    #[test]
    fn escaped_and_plain_spellings_of_a_key_are_the_same_key() {
        let e = refuse(r#"{"level":1,"lev\u0065l":2}"#);
        assert_eq!(e.pointer(), "/level");
    }

    #[test]
    fn the_same_key_in_sibling_objects_is_fine() {
        let text = r#"[{"a":1,"b":{"a":2}},{"a":3}]"#;
        assert_eq!(
            parse_value(text.as_bytes()).unwrap(),
            json!([{"a":1,"b":{"a":2}},{"a":3}])
        );
        check(text.as_bytes()).unwrap();
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused_with_its_pointer() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        parse_value(ok.as_bytes()).unwrap();
        check(ok.as_bytes()).unwrap();
        let deep = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        let e = refuse(&deep);
        let expected = format!("/a{}", "/0".repeat(MAX_DEPTH - 1));
        assert!(
            matches!(&e, StrictJsonError::TooDeep { pointer, max_depth: MAX_DEPTH, .. } if *pointer == expected),
            "{e:?}"
        );
        // Far beyond serde_json's own limit still reads as "too deep", not a crash.
        let abyss = "[".repeat(100_000);
        assert!(matches!(refuse(&abyss), StrictJsonError::TooDeep { .. }));
    }

    #[test]
    fn the_depth_limit_can_be_set() {
        let text = br#"{"a":{"b":[1]}}"#;
        let tight = Limits { max_depth: 2 };
        let e = parse_value_with(text, tight).unwrap_err();
        assert_eq!(e.pointer(), "/a/b");
        assert_eq!(check_with(text, tight).unwrap_err(), e);
        parse_value_with(text, Limits { max_depth: 3 }).unwrap();
    }

    #[test]
    fn invalid_utf8_is_located() {
        let e = refuse_bytes(b"{\n  \"a\": \"\xff\"}");
        assert_eq!(
            e,
            StrictJsonError::NotUtf8 {
                offset: 10,
                line: 2,
                column: 9
            }
        );
    }

    fn refuse_bytes(bytes: &[u8]) -> StrictJsonError {
        let e = parse_value(bytes).unwrap_err();
        assert_eq!(check(bytes).unwrap_err(), e);
        e
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = refuse("{\n\"a\": tru}");
        assert!(
            matches!(&e, StrictJsonError::Syntax { line: 2, .. }),
            "{e:?}"
        );
        assert!(!e.to_string().contains(" at line "), "{e}");
        assert!(matches!(refuse("{} {}"), StrictJsonError::Syntax { .. }));
        assert!(matches!(refuse(""), StrictJsonError::Syntax { .. }));
        assert!(matches!(refuse("1e400"), StrictJsonError::Syntax { .. }));
        assert!(matches!(
            refuse(r#""\ud800""#),
            StrictJsonError::Syntax { .. }
        ));
    }

    #[test]
    fn values_are_exactly_what_serde_json_builds() {
        let text = r#"{"i":-12,"u":18446744073709551615,"f":0.1,"e":1.5e300,"z":-0.0,
            "s":"a\"\\\u00e9\ud83d\ude00","n":null,"b":[true,false,[]],"o":{}}"#;
        let strict = parse_value(text.as_bytes()).unwrap();
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(strict, plain);
        assert_eq!(strict.to_string(), plain.to_string());
    }

    #[test]
    fn from_slice_reads_types_strictly() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Header {
            node_id: String,
            extra: Value,
        }
        let ok: Header = from_slice(br#"{"node_id":"n","extra":{"a":1}}"#).unwrap();
        assert_eq!(ok.extra, json!({"a": 1}));
        let e = from_slice::<Header>(br#"{"node_id":"n","extra":{"a":1,"a":2}}"#).unwrap_err();
        assert_eq!(e.pointer(), "/extra/a");
        let e = from_slice::<Header>(br#"{"node_id":7,"extra":1}"#).unwrap_err();
        assert!(matches!(e, StrictJsonError::Shape { .. }), "{e:?}");
    }
}
