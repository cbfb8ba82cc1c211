//! XML exports with one element per record (the desktop 国家科技成果登记系统's export, a
//! platform's dump): each record element becomes a [`RowData::Tree`].
//!
//! The tree of a record: child elements are keys (a child that repeats becomes an array, in
//! document order); attributes are `@name` keys (namespace declarations are left out); an
//! element with neither children nor attributes is its text, as a string (`""` when empty);
//! otherwise an object, with its text under `$text` when it has any (for an element with
//! children, any text that is not only white space: mixed content). The record element
//! itself is always an object. Entities (the five predefined ones and character references)
//! are decoded; CDATA is text; comments and processing instructions are left out; line breaks
//! are normalised as XML says. Text is otherwise untouched (not trimmed).
//!
//! Why it is built so: a streaming pull parser (`quick-xml`) over a streaming decoder
//! (the private `decode` module), so a file of any size is read with memory bounded by its largest
//! record. The encoding is the one a byte order mark or the XML declaration names (GBK exports
//! exist), unless the caller forces one. [`Origin::row`] is the record's ordinal (from 1);
//! errors name the line. A record with an undefined entity, an element nested deeper than
//! [`MAX_DEPTH`], bad attribute syntax or bytes invalid in the encoding is an error for that
//! record only ([`SourceError::XmlRecord`], [`SourceError::Undecodable`]); a document that is
//! not well-formed stops the reader ([`SourceError::Xml`]) after the records before the fault.
//!
//! What it may not touch: which keys mean what (the mapping's paths say that), DTDs (their
//! entities are not expanded: an entity a DTD defines is reported, never fetched).

use std::io::Read;

use encoding_rs::{Encoding, UTF_8};
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use serde_json::{Map, Value};

use super::SourceError;
use super::decode::{self, MalformedLog, Transcoder};
use crate::row::{Origin, RowData, SourceRow};

/// Deepest nesting of elements inside a record (the record element counts as one).
pub const MAX_DEPTH: usize = 64;

/// How much of the file is read to find a byte order mark or the XML declaration.
const DECLARATION_SNIFF: usize = 1024;

type Input = Transcoder<Box<dyn Read + Send>>;

/// Which elements are records.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RecordPattern {
    /// Every element with this name that is not inside another record.
    Anywhere(String),
    /// Elements at exactly this path from the root.
    Path(Vec<String>),
}

impl RecordPattern {
    fn parse(text: &str) -> Result<RecordPattern, SourceError> {
        let text = text.trim();
        let invalid = || SourceError::Options {
            message: format!(
                "\"{text}\" does not name an XML record element; write a name (record = \"成果\") or an absolute path (record = \"/成果列表/成果\")"
            ),
        };
        if let Some(path) = text.strip_prefix('/') {
            let segments: Vec<String> = path.split('/').map(str::to_owned).collect();
            if segments
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
            {
                return Err(invalid());
            }
            Ok(RecordPattern::Path(segments))
        } else if text.is_empty() || text.contains('/') || text.contains(char::is_whitespace) {
            Err(invalid())
        } else {
            Ok(RecordPattern::Anywhere(text.to_owned()))
        }
    }
}

/// Whether an element's name (as written, with any prefix) answers to a pattern's segment: the
/// same name, or the same local name when the segment has no prefix.
fn name_matches(segment: &str, qualified: &str) -> bool {
    segment == qualified
        || (!segment.contains(':')
            && qualified
                .split_once(':')
                .is_some_and(|(_, local)| local == segment))
}

/// Whether an element named `name`, inside the elements `open`, is a record.
fn is_record(pattern: &RecordPattern, open: &[String], name: &str) -> bool {
    match pattern {
        RecordPattern::Anywhere(wanted) => name_matches(wanted, name),
        RecordPattern::Path(segments) => {
            segments.len() == open.len() + 1
                && segments[..open.len()]
                    .iter()
                    .zip(open)
                    .all(|(s, n)| name_matches(s, n))
                && name_matches(&segments[open.len()], name)
        }
    }
}

/// The records of an XML stream.
pub struct XmlRows {
    reader: Reader<Input>,
    buf: Vec<u8>,
    pattern: RecordPattern,
    /// Names of the open elements around the reader's position, outside any record.
    open: Vec<String>,
    ordinal: u64,
    malformed: MalformedLog,
    encoding: &'static Encoding,
    file: String,
    done: bool,
}

impl XmlRows {
    /// Reads `input`, named `file_name` in every [`Origin`] and error; `record` names the record
    /// element (a name or an absolute `/path`); `encoding` forces an encoding. Reads the first
    /// KiB at once to find the encoding.
    pub fn new(
        input: impl Read + Send + 'static,
        file_name: String,
        record: &str,
        encoding: Option<&'static Encoding>,
    ) -> Result<XmlRows, SourceError> {
        let pattern = RecordPattern::parse(record)?;
        let mut input: Box<dyn Read + Send> = Box::new(input);
        let (mut prefix, _) =
            decode::read_prefix(&mut input, DECLARATION_SNIFF).map_err(|source| {
                SourceError::Io {
                    file: file_name.clone(),
                    source,
                }
            })?;
        let (encoding, skip) = match (encoding, decode::bom_encoding(&prefix)) {
            (Some(forced), Some((marked, len))) if marked == forced => (forced, len),
            (Some(forced), _) => (forced, 0),
            (None, Some((marked, len))) => (marked, len),
            (None, None) => match declared_encoding(&prefix) {
                None => (UTF_8, 0),
                Some(label) => match Encoding::for_label(label.as_bytes()) {
                    // Read as ASCII, so it is not really UTF-16 (no mark either).
                    Some(declared) if decode::is_utf16(declared) => (UTF_8, 0),
                    Some(declared) => (declared, 0),
                    None => {
                        return Err(SourceError::Xml {
                            file: file_name,
                            line: 1,
                            byte: 0,
                            message: format!(
                                "the XML declaration names encoding \"{label}\", which this reader does not know; give the encoding (encoding = \"gbk\", \"gb18030\" or \"utf-8\")"
                            ),
                        });
                    }
                },
            },
        };
        prefix.drain(..skip);
        let rest: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(prefix).chain(input));
        let transcoder = Transcoder::new(rest, encoding, skip as u64);
        let malformed = transcoder.malformed_log();
        let mut reader = Reader::from_reader(transcoder);
        let config = reader.config_mut();
        config.trim_text(false);
        config.expand_empty_elements = false;
        config.check_end_names = true;
        Ok(XmlRows {
            reader,
            buf: Vec::with_capacity(4096),
            pattern,
            open: Vec::new(),
            ordinal: 0,
            malformed,
            encoding,
            file: file_name,
            done: false,
        })
    }

    /// The encoding the file is read as.
    pub fn encoding(&self) -> &'static Encoding {
        self.encoding
    }

    /// The line the reader is on.
    fn line(&self) -> u64 {
        self.reader.get_ref().newlines_consumed() + 1
    }

    fn fatal(&mut self, message: String) -> SourceError {
        self.done = true;
        SourceError::Xml {
            file: self.file.clone(),
            line: self.line(),
            byte: self.reader.error_position(),
            message,
        }
    }

    /// Reads the rest of a record whose start tag was just read, up to its end tag.
    fn read_record(
        &mut self,
        root: Frame,
        start_offset: u64,
        line: u64,
    ) -> Result<SourceRow, SourceError> {
        self.ordinal += 1;
        let origin = Origin {
            file: self.file.clone(),
            sheet: None,
            row: self.ordinal,
        };
        let mut problem = root.problem.clone();
        let mut stack = vec![root];
        // Elements below MAX_DEPTH are skipped, counted so that their end tags are too.
        let mut skipped = 0usize;
        let finished = loop {
            self.buf.clear();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event,
                Err(error) => return Err(self.fatal(error.to_string())),
            };
            let depth = stack.len();
            let top = stack
                .last_mut()
                .expect("the record's frame is on the stack");
            match event {
                Event::Start(_) | Event::Empty(_) if skipped > 0 || depth >= MAX_DEPTH => {
                    problem.get_or_insert_with(|| {
                        format!("elements nest deeper than {MAX_DEPTH} levels inside the record")
                    });
                    if matches!(event, Event::Start(_)) {
                        skipped += 1;
                    }
                }
                Event::End(_) if skipped > 0 => skipped -= 1,
                Event::Start(start) => {
                    let frame = Frame::open(&start);
                    if let Some(p) = &frame.problem {
                        problem.get_or_insert_with(|| p.clone());
                    }
                    stack.push(frame);
                }
                Event::Empty(start) => {
                    let frame = Frame::open(&start);
                    if let Some(p) = &frame.problem {
                        problem.get_or_insert_with(|| p.clone());
                    }
                    let name = frame.name.clone();
                    top.add_child(name, frame.into_value());
                }
                Event::End(_) => {
                    let frame = stack.pop().expect("an end tag closes an open element");
                    match stack.last_mut() {
                        Some(parent) => {
                            let name = frame.name.clone();
                            parent.add_child(name, frame.into_value());
                        }
                        None => break frame,
                    }
                }
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) if skipped > 0 => {}
                Event::Text(text) => top.text.push_str(&text.xml10_content()),
                Event::CData(cdata) => top.text.push_str(&cdata.xml10_content()),
                Event::GeneralRef(reference) => match resolve_reference(&reference) {
                    Ok(resolved) => top.text.push_str(&resolved),
                    Err(message) => {
                        problem.get_or_insert(message);
                    }
                },
                Event::Eof => {
                    return Err(self.fatal(format!(
                        "the file ends inside record {} (opened on line {line})",
                        self.ordinal
                    )));
                }
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {}
            }
        };
        let end_offset = self.reader.buffer_position();
        if let Some(bad) = self.malformed.claim(start_offset, end_offset) {
            return Err(SourceError::Undecodable {
                origin,
                line,
                byte: bad.file_offset,
                encoding: self.encoding.name(),
            });
        }
        if let Some(message) = problem {
            return Err(SourceError::XmlRecord {
                origin,
                line,
                message,
            });
        }
        let tree = match finished.into_value() {
            Value::String(text) if text.is_empty() => Value::Object(Map::new()),
            Value::String(text) => {
                let mut object = Map::new();
                object.insert("$text".to_owned(), Value::String(text));
                Value::Object(object)
            }
            object => object,
        };
        Ok(SourceRow {
            origin,
            data: RowData::Tree(tree),
        })
    }
}

impl Iterator for XmlRows {
    type Item = Result<SourceRow, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let start_offset = self.reader.buffer_position();
            let line = self.line();
            self.buf.clear();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event,
                Err(error) => return Some(Err(self.fatal(error.to_string()))),
            };
            match event {
                Event::Start(start) => {
                    let name = start.name().as_ref().to_owned();
                    if is_record(&self.pattern, &self.open, &name) {
                        let root = Frame::open(&start);
                        return Some(self.read_record(root, start_offset, line));
                    }
                    self.open.push(name);
                }
                Event::Empty(start)
                    if is_record(&self.pattern, &self.open, start.name().as_ref()) =>
                {
                    let root = Frame::open(&start);
                    self.ordinal += 1;
                    let origin = Origin {
                        file: self.file.clone(),
                        sheet: None,
                        row: self.ordinal,
                    };
                    return Some(match root.problem {
                        Some(message) => Err(SourceError::XmlRecord {
                            origin,
                            line,
                            message,
                        }),
                        None => Ok(SourceRow {
                            origin,
                            data: RowData::Tree(Value::Object(root.object)),
                        }),
                    });
                }
                Event::End(_) => {
                    self.open.pop();
                }
                Event::Eof => self.done = true,
                _ => {}
            }
        }
        None
    }
}

/// An element being read inside a record.
struct Frame {
    /// Its name as written.
    name: String,
    /// Its attributes (`@name`) and children so far.
    object: Map<String, Value>,
    /// Its text so far.
    text: String,
    has_children: bool,
    /// Why it cannot be read (bad attribute syntax, undefined entity in an attribute).
    problem: Option<String>,
}

impl Frame {
    fn open(start: &BytesStart<'_>) -> Frame {
        let mut frame = Frame {
            name: start.name().as_ref().to_owned(),
            object: Map::new(),
            text: String::new(),
            has_children: false,
            problem: None,
        };
        for attribute in start.attributes() {
            let attribute = match attribute {
                Ok(attribute) => attribute,
                Err(error) => {
                    frame.problem = Some(format!("element <{}>: {error}", frame.name));
                    break;
                }
            };
            let key = attribute.key.as_ref();
            if key == "xmlns" || key.starts_with("xmlns:") {
                continue;
            }
            match attribute.normalized_value(XmlVersion::Implicit1_0) {
                Ok(value) => {
                    frame
                        .object
                        .insert(format!("@{key}"), Value::String(value.into_owned()));
                }
                Err(error) => {
                    frame.problem = Some(format!("attribute {key} of <{}>: {error}", frame.name));
                }
            }
        }
        frame
    }

    fn add_child(&mut self, name: String, value: Value) {
        self.has_children = true;
        match self.object.entry(name) {
            serde_json::map::Entry::Vacant(entry) => {
                entry.insert(value);
            }
            serde_json::map::Entry::Occupied(mut entry) => match entry.get_mut() {
                // A frame's value is never an array, so an array here is a repeated child.
                Value::Array(items) => items.push(value),
                existing => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
            },
        }
    }

    fn into_value(self) -> Value {
        if self.object.is_empty() {
            return Value::String(self.text);
        }
        let mut object = self.object;
        let has_text = if self.has_children {
            !self.text.trim().is_empty()
        } else {
            !self.text.is_empty()
        };
        if has_text {
            object.insert("$text".to_owned(), Value::String(self.text));
        }
        Value::Object(object)
    }
}

/// The text an entity or character reference stands for.
fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Result<String, String> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(c.to_string()),
            Ok(None) | Err(_) => Err(format!(
                "&{}; is not a valid character reference",
                &**reference
            )),
        };
    }
    match quick_xml::escape::resolve_predefined_entity(reference) {
        Some(text) => Ok(text.to_owned()),
        None => Err(format!(
            "the entity &{}; is not defined (only &lt; &gt; &amp; &apos; &quot; and character references are); write the character itself",
            &**reference
        )),
    }
}

/// The `encoding` the XML declaration at the start of `prefix` names, if any.
fn declared_encoding(prefix: &[u8]) -> Option<String> {
    let rest = prefix.strip_prefix(b"<?xml")?;
    let end = rest.windows(2).position(|w| w == b"?>")?;
    let declaration = std::str::from_utf8(&rest[..end]).ok()?;
    let after = &declaration[declaration.find("encoding")? + "encoding".len()..];
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &after[1..];
    Some(value[..value.find(quote)?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_encoding_is_found() {
        assert_eq!(
            declared_encoding(br#"<?xml version="1.0" encoding="GBK"?><a/>"#).as_deref(),
            Some("GBK")
        );
        assert_eq!(
            declared_encoding(b"<?xml version='1.0' encoding = 'gb18030' ?>").as_deref(),
            Some("gb18030")
        );
        assert_eq!(declared_encoding(br#"<?xml version="1.0"?>"#), None);
        assert_eq!(declared_encoding(b"<a/>"), None);
    }

    #[test]
    fn record_patterns_are_names_or_absolute_paths() {
        assert_eq!(
            RecordPattern::parse("成果").unwrap(),
            RecordPattern::Anywhere("成果".into())
        );
        assert_eq!(
            RecordPattern::parse("/root/records/record").unwrap(),
            RecordPattern::Path(vec!["root".into(), "records".into(), "record".into()])
        );
        assert!(RecordPattern::parse("a/b").is_err());
        assert!(RecordPattern::parse("/a//b").is_err());
        assert!(RecordPattern::parse("").is_err());
        assert!(name_matches("record", "ns:record"));
        assert!(!name_matches("x:record", "ns:record"));
    }
}
