//! JSON Lines: one JSON object per line — records of our own schema exported by another
//! exchange — each yielded as a [`RowData::Tree`].
//!
//! Why it is built so: a line is parsed with the schema crate's strict parser
//! ([`rix_schema::strict_json`]), which refuses a repeated key: a record that reads as public to
//! one tool and as secret to another must not get in through an import either. A line that is
//! not JSON, or not an object, is an error for that line only ([`SourceError::JsonLine`]) and
//! reading goes on; blank lines are skipped; a UTF-8 byte order mark on the first line is
//! ignored. The file is read a line at a time, so memory is bounded by the longest line.
//!
//! What it may not touch: what the objects hold (the mapping and the schema judge that).

use std::io::{BufRead, BufReader, Read};

use rix_schema::strict_json;
use serde_json::Value;

use super::SourceError;
use crate::row::{Origin, RowData, SourceRow};

/// The objects of a JSON Lines stream, one per non-blank line.
pub struct JsonLinesRows {
    input: BufReader<Box<dyn Read + Send>>,
    line: Vec<u8>,
    line_number: u64,
    file: String,
    done: bool,
}

impl JsonLinesRows {
    /// Reads `input`, named `file_name` in every [`Origin`] and error.
    pub fn new(input: impl Read + Send + 'static, file_name: String) -> JsonLinesRows {
        let input: Box<dyn Read + Send> = Box::new(input);
        JsonLinesRows {
            input: BufReader::with_capacity(64 * 1024, input),
            line: Vec::new(),
            line_number: 0,
            file: file_name,
            done: false,
        }
    }
}

impl Iterator for JsonLinesRows {
    type Item = Result<SourceRow, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line.clear();
            match self.input.read_until(b'\n', &mut self.line) {
                Ok(0) => self.done = true,
                Err(source) => {
                    self.done = true;
                    return Some(Err(SourceError::Io {
                        file: self.file.clone(),
                        source,
                    }));
                }
                Ok(_) => {
                    self.line_number += 1;
                    let mut text = self.line.as_slice();
                    if self.line_number == 1 {
                        text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
                    }
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let origin = Origin {
                        file: self.file.clone(),
                        sheet: None,
                        row: self.line_number,
                    };
                    return Some(match strict_json::parse_value(text) {
                        Ok(Value::Object(object)) => Ok(SourceRow {
                            origin,
                            data: RowData::Tree(Value::Object(object)),
                        }),
                        Ok(other) => Err(SourceError::JsonLine {
                            origin,
                            message: format!(
                                "the line is JSON but {}, not an object; each line must be one record {{…}}",
                                kind_of(&other)
                            ),
                        }),
                        Err(error) => Err(SourceError::JsonLine {
                            origin,
                            message: describe(&error),
                        }),
                    });
                }
            }
        }
        None
    }
}

/// The parser's refusal in terms of this one line (its line number is the row's).
fn describe(error: &strict_json::StrictJsonError) -> String {
    use strict_json::StrictJsonError as E;
    match error {
        E::Syntax {
            column, message, ..
        } => format!("not valid JSON (column {column}): {message}"),
        E::DuplicateKey {
            pointer, column, ..
        } => format!(
            "{pointer} is given twice (column {column}); a key may appear only once in an object"
        ),
        E::NotUtf8 { column, .. } => {
            format!("not UTF-8 (column {column}); JSON Lines must be UTF-8")
        }
        other => other.to_string(),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
