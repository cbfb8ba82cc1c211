//! CSV and TSV: one [`RowData::Cells`] per record, every cell text (or empty), in the file's
//! own encoding — UTF-8 with or without a byte order mark, UTF-16 with one (Excel's "Unicode
//! text"), GBK or GB18030 — found from the mark, else guessed from the first 64 KiB, or as the
//! caller forces it.
//!
//! Why it is built so: provincial exports are large and often GBK, so the file is decoded to
//! UTF-8 a buffer at a time (the private `decode` module) and parsed by the `csv` crate as it
//! streams; memory stays bounded by the longest record. Records may have any number of fields
//! (exports grow columns over the years): each row holds what is there. A quoted field may
//! span lines; [`Origin::row`] is the line the record starts on, as an editor shows it (in a
//! file whose lines end in CR alone, the record's number). Bytes that are not valid in the
//! encoding make their row an error ([`SourceError::Undecodable`]) and reading goes on.
//!
//! What it may not touch: headers (the first row is a row like any other), trimming or any
//! reading of values.

use std::io::Read;

use encoding_rs::Encoding;

use super::SourceError;
use super::decode::{self, MalformedLog, Transcoder};
use crate::row::{Cell, Origin, RowData, SourceRow};

/// How to split a CSV or TSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field delimiter (`b','`, `b'\t'`, `b';'`…).
    pub delimiter: u8,
    /// Whether `"` quotes fields.
    pub quoting: bool,
    /// The encoding, when the caller knows it; `None`: a byte order mark, else a guess.
    pub encoding: Option<&'static Encoding>,
}

impl Default for CsvOptions {
    fn default() -> CsvOptions {
        CsvOptions {
            delimiter: b',',
            quoting: true,
            encoding: None,
        }
    }
}

type Input = Transcoder<Box<dyn Read + Send>>;

/// The rows of a CSV or TSV stream. Rows whose fields are all empty or white space are not
/// yielded.
pub struct CsvRows {
    reader: ::csv::Reader<Input>,
    record: ::csv::ByteRecord,
    malformed: MalformedLog,
    encoding: &'static Encoding,
    file: String,
    /// Lines end in CR alone: rows are numbered by record, not by line.
    cr_only: bool,
    done: bool,
}

impl CsvRows {
    /// Reads `input`, named `file_name` in every [`Origin`] and error. Reads the first 64 KiB
    /// at once to find the encoding; fails only if that read fails.
    pub fn new(
        input: impl Read + Send + 'static,
        file_name: String,
        options: CsvOptions,
    ) -> Result<CsvRows, SourceError> {
        let mut input: Box<dyn Read + Send> = Box::new(input);
        let (prefix, whole_file) =
            decode::read_prefix(&mut input, decode::SNIFF_LEN).map_err(|source| {
                SourceError::Io {
                    file: file_name.clone(),
                    source,
                }
            })?;
        let bom = decode::bom_encoding(&prefix);
        let (encoding, skip) = match (options.encoding, bom) {
            // A mark of the forced encoding is skipped; a mark of another one is text.
            (Some(forced), Some((marked, len))) if marked == forced => (forced, len),
            (Some(forced), _) => (forced, 0),
            (None, Some((marked, len))) => (marked, len),
            (None, None) => (decode::guess_encoding(&prefix, whole_file), 0),
        };
        // Lines end in LF or CRLF, except in old Macintosh exports (CR alone). Splitting on LF
        // (and dropping the CR before it) lets a row be numbered by its first line exactly;
        // the csv crate's own line count is off by the pending LF of a CRLF and by blank lines.
        let cr_only = prefix.contains(&b'\r') && !prefix.contains(&b'\n');
        let mut prefix = prefix;
        prefix.drain(..skip);
        let rest: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(prefix).chain(input));
        let transcoder = Transcoder::new(rest, encoding, skip as u64);
        let malformed = transcoder.malformed_log();
        let reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(options.delimiter)
            .quoting(options.quoting)
            .buffer_capacity(64 * 1024)
            .terminator(if cr_only {
                ::csv::Terminator::CRLF
            } else {
                ::csv::Terminator::Any(b'\n')
            })
            .from_reader(transcoder);
        Ok(CsvRows {
            reader,
            record: ::csv::ByteRecord::new(),
            malformed,
            encoding,
            file: file_name,
            cr_only,
            done: false,
        })
    }

    /// The encoding the file is read as (forced, marked or guessed).
    pub fn encoding(&self) -> &'static Encoding {
        self.encoding
    }
}

impl Iterator for CsvRows {
    type Item = Result<SourceRow, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => self.done = true,
                Err(error) => {
                    self.done = true;
                    let (line, byte) = error
                        .position()
                        .map(|p| (p.line(), p.byte()))
                        .unwrap_or_else(|| {
                            let p = self.reader.position();
                            (p.line(), p.byte())
                        });
                    return Some(Err(SourceError::Csv {
                        file: self.file.clone(),
                        line,
                        byte,
                        message: error.to_string(),
                    }));
                }
                Ok(true) => {
                    let start = self.record.position().map_or(0, |p| p.byte());
                    let end = self.reader.position();
                    let line = if self.cr_only {
                        end.record()
                    } else {
                        self.first_line(end.line(), end.byte())
                    };
                    let end = end.byte();
                    let origin = || Origin {
                        file: self.file.clone(),
                        sheet: None,
                        row: line,
                    };
                    if let Some(bad) = self.malformed.claim(start, end) {
                        return Some(Err(SourceError::Undecodable {
                            origin: origin(),
                            line,
                            byte: bad.file_offset,
                            encoding: self.encoding.name(),
                        }));
                    }
                    if let Some(cells) = cells_of(&self.record, !self.cr_only) {
                        return Some(Ok(SourceRow {
                            origin: origin(),
                            data: RowData::Cells(cells),
                        }));
                    }
                }
            }
        }
        None
    }
}

impl CsvRows {
    /// The line the record just read starts on, from the line the reader is on after it
    /// (`line_after`, which counts every LF read so far) less the LFs inside the record's
    /// fields and its own terminating LF (absent only at the end of a file that does not end
    /// with one).
    fn first_line(&self, line_after: u64, end: u64) -> u64 {
        let inside = self
            .record
            .as_slice()
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        let unterminated = self
            .reader
            .get_ref()
            .decoded_end()
            .is_some_and(|(length, ends_with_lf)| end == length && !ends_with_lf);
        line_after.saturating_sub(inside + u64::from(!unterminated))
    }
}

/// The record's cells, or `None` when every field is empty or white space. With LF-terminated
/// records, the CR of a CRLF is the end of the last field and is dropped.
fn cells_of(record: &::csv::ByteRecord, drop_final_cr: bool) -> Option<Vec<Cell>> {
    let mut cells = Vec::with_capacity(record.len());
    let mut any = false;
    let last = record.len().saturating_sub(1);
    for (index, field) in record.iter().enumerate() {
        let field = match field.strip_suffix(b"\r") {
            Some(stripped) if drop_final_cr && index == last => stripped,
            _ => field,
        };
        // The transcoder wrote UTF-8 and delimiters are ASCII, so this is never lossy.
        let text = String::from_utf8_lossy(field);
        if text.trim().is_empty() {
            cells.push(Cell::Empty);
        } else {
            any = true;
            cells.push(Cell::Text(text.into_owned()));
        }
    }
    any.then_some(cells)
}
