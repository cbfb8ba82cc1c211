//! Sources: reading rows out of what provinces and ministries already have — workbooks (XLSX,
//! XLS, ODS), CSV/TSV exports in UTF-8, GBK or GB18030, XML exports of the desktop registration
//! system, JSON Lines from another exchange, and provincial platforms' paginated HTTP APIs —
//! as [`SourceRow`]s, each with the place a person would look for it ([`Origin`]).
//!
//! Why it is built so:
//! - **One row type for every format** ([`crate::row`]): the mapping interprets rows in one
//!   place, so a source never guesses what a value means. Cells keep the type the source gave
//!   them (an Excel date cell stays a date serial); text is never trimmed here.
//! - **Streaming where the format allows**: CSV, TSV, XML and JSON Lines are read record by
//!   record through a bounded buffer, whatever the file's size; XLSX sheets are streamed cell
//!   by cell on a reader thread ([`spreadsheet`]). XLS and ODS are read a sheet at a time (their
//!   reader, `calamine`, has no streaming API for them).
//! - **An error says what and where** ([`SourceError`]): file, sheet, row or line, byte offset
//!   when known. An error about one row (a JSON Lines line that is not an object, a CSV row with
//!   bytes that are not valid in the file's encoding, an XML record with an unknown entity) is
//!   yielded in that row's place and reading goes on with the next row; any other error is the
//!   iterator's last item. [`SourceError::row_origin`] tells the two apart.
//! - **Rows with nothing in them are not yielded** (every tabular format): a row whose cells
//!   are all [`Cell::Empty`] carries nothing to map. [`Origin::row`] keeps the source's own
//!   numbering, so the gap shows where blank rows were.
//!
//! What it may not touch: meaning. Nothing here knows a header, a field, a code list or the
//! schema; that is [`crate::mapping`]'s. Nor does it write anywhere but an HTTP source's own
//! checkpoint file.
//!
//! [`Cell::Empty`]: crate::row::Cell::Empty

pub mod csv;
mod decode;
pub mod http;
pub mod jsonl;
pub mod spreadsheet;
mod xlsx;
pub mod xml;

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::row::{Origin, SourceRow};

pub use self::http::{
    HttpAuth, HttpSource, HttpSourceConfig, IncrementalConfig, Paging, RetryPolicy,
};

/// The rows of a file source, in the source's order. See the module doc for which errors end
/// the sequence and which are about one row only.
pub type RowIter = Box<dyn Iterator<Item = Result<SourceRow, SourceError>> + Send>;

/// A file format a source can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Office Open XML workbook (`.xlsx`, `.xlsm`).
    Xlsx,
    /// Excel 97–2003 workbook (`.xls`).
    Xls,
    /// OpenDocument spreadsheet (`.ods`), as WPS and LibreOffice save it.
    Ods,
    /// Comma-separated values (`.csv`, `.txt`).
    Csv,
    /// Tab-separated values (`.tsv`, `.tab`), including Excel's "Unicode text" export.
    Tsv,
    /// An XML export with one element per record (`.xml`).
    Xml,
    /// JSON Lines: one JSON object per line (`.jsonl`, `.ndjson`).
    #[serde(alias = "jsonl", alias = "ndjson")]
    JsonLines,
}

impl Format {
    /// The format a file's extension names (case-insensitive), if it names one.
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match extension.as_str() {
            "xlsx" | "xlsm" => Format::Xlsx,
            "xls" => Format::Xls,
            "ods" => Format::Ods,
            "csv" | "txt" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "xml" => Format::Xml,
            "jsonl" | "ndjson" => Format::JsonLines,
            _ => return None,
        })
    }

    /// The name used in options and messages (`xlsx`, `csv`, `jsonlines`…).
    pub fn name(self) -> &'static str {
        match self {
            Format::Xlsx => "xlsx",
            Format::Xls => "xls",
            Format::Ods => "ods",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Xml => "xml",
            Format::JsonLines => "jsonlines",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A sheet of a workbook, as a mapping file names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SheetRef {
    /// The sheet with this name (its tab's label, exactly).
    Name(String),
    /// The n-th sheet in the workbook's order, counting from 1 as a person does, hidden sheets
    /// included.
    Position(usize),
}

impl fmt::Display for SheetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SheetRef::Name(name) => write!(f, "\"{name}\""),
            SheetRef::Position(n) => write!(f, "number {n}"),
        }
    }
}

/// How to read a file: the part of a mapping file's `[source]` section that is about the
/// file rather than its meaning. Every field is optional; the defaults read what a province's
/// export usually is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceOptions {
    /// The file's format; by default the file's extension says it (see [`Format::from_path`]).
    #[serde(default)]
    pub format: Option<Format>,
    /// Workbooks: the sheets to read, in this order. Empty (the default): every **visible**
    /// worksheet in the workbook's order — a province keeps one sheet per year or per batch
    /// in one layout, and a hidden sheet holds the drop-down lists of the form, not records.
    #[serde(default)]
    pub sheets: Vec<SheetRef>,
    /// CSV, TSV and XML: the encoding, as a WHATWG label (`utf-8`, `gbk`, `gb18030`,
    /// `utf-16le`…). By default a byte order mark decides, else (XML) the declaration, else
    /// (CSV) the content is guessed from its first 64 KiB (UTF-8 when it is valid UTF-8).
    #[serde(default)]
    pub encoding: Option<String>,
    /// CSV and TSV: the field delimiter, one ASCII character. By default a tab for TSV and a
    /// comma for CSV.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// CSV and TSV: `"` is an ordinary character, not a quote. By default (false) a quoted
    /// field may hold delimiters and line breaks; set true for a TSV whose fields contain stray
    /// quotes.
    #[serde(default)]
    pub no_quoting: bool,
    /// XML: the record element — a name (`成果`: every such element not inside another record,
    /// at any depth) or an absolute path (`/成果列表/成果`). Required for XML.
    #[serde(default)]
    pub record: Option<String>,
}

/// Opens a file source: picks the reader by `options.format`, else by the file's extension,
/// and returns its rows.
///
/// Fails here (before any row) when the file cannot be opened, the format is unknown, an
/// option is wrong for the format (a missing XML record element, an unknown encoding label) or
/// a named sheet does not exist.
pub fn open(path: &Path, options: &SourceOptions) -> Result<RowIter, SourceError> {
    let file_name = path.display().to_string();
    let format = match options.format.or_else(|| Format::from_path(path)) {
        Some(format) => format,
        None => return Err(SourceError::UnknownFormat { file: file_name }),
    };
    let encoding = match &options.encoding {
        Some(label) => Some(encoding_for_label(label)?),
        None => None,
    };
    match format {
        Format::Xlsx | Format::Xls | Format::Ods => {
            spreadsheet::open(path, format, &options.sheets)
        }
        Format::Csv | Format::Tsv => {
            let delimiter = match options.delimiter {
                Some(c) if c.is_ascii() => c as u8,
                Some(c) => {
                    return Err(SourceError::Options {
                        message: format!(
                            "the delimiter must be one ASCII character, not {c:?}; write e.g. delimiter = \";\""
                        ),
                    });
                }
                None if format == Format::Tsv => b'\t',
                None => b',',
            };
            let file = open_file(path)?;
            let rows = self::csv::CsvRows::new(
                file,
                file_name,
                self::csv::CsvOptions {
                    delimiter,
                    quoting: !options.no_quoting,
                    encoding,
                },
            )?;
            Ok(Box::new(rows))
        }
        Format::Xml => {
            let Some(record) = &options.record else {
                return Err(SourceError::Options {
                    message: format!(
                        "{file_name} is XML: name its record element (record = \"成果\" or record = \"/成果列表/成果\")"
                    ),
                });
            };
            let file = open_file(path)?;
            let rows = xml::XmlRows::new(file, file_name, record, encoding)?;
            Ok(Box::new(rows))
        }
        Format::JsonLines => {
            let file = open_file(path)?;
            Ok(Box::new(jsonl::JsonLinesRows::new(file, file_name)))
        }
    }
}

/// The encoding a WHATWG label names (`gbk`, `GB18030`, `utf-8`…).
pub fn encoding_for_label(label: &str) -> Result<&'static encoding_rs::Encoding, SourceError> {
    encoding_rs::Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
        SourceError::UnknownEncoding {
            label: label.to_owned(),
        }
    })
}

fn open_file(path: &Path) -> Result<std::fs::File, SourceError> {
    std::fs::File::open(path).map_err(|source| SourceError::Io {
        file: path.display().to_string(),
        source,
    })
}

/// Why a source could not give a row, or any more rows: what went wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The format is neither given nor told by the file's extension.
    #[error(
        "cannot tell the format of {file} from its name; give it (format = \"xlsx\", \"xls\", \"ods\", \"csv\", \"tsv\", \"xml\" or \"jsonl\")"
    )]
    UnknownFormat {
        /// The file.
        file: String,
    },
    /// An option does not fit the source.
    #[error("{message}")]
    Options {
        /// What is wrong and how to write it.
        message: String,
    },
    /// The encoding label is not one of the WHATWG encodings.
    #[error(
        "\"{label}\" is not an encoding this reader knows; use a label such as \"utf-8\", \"gbk\", \"gb18030\" or \"utf-16le\""
    )]
    UnknownEncoding {
        /// The label given.
        label: String,
    },
    /// The file could not be opened or read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A sheet named in the options is not in the workbook.
    #[error("{file} has no sheet {wanted}; its sheets are: {}", available.join(", "))]
    SheetNotFound {
        /// The workbook.
        file: String,
        /// The sheet asked for.
        wanted: String,
        /// The workbook's sheets, in order.
        available: Vec<String>,
    },
    /// The workbook reader refused the file or a sheet (not a workbook of this format,
    /// damaged, encrypted…).
    #[error("cannot read {file}{}: {message}", sheet.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default())]
    Workbook {
        /// The workbook.
        file: String,
        /// The sheet being read, if one was.
        sheet: Option<String>,
        /// The reader's reason.
        message: String,
    },
    /// CSV/TSV the reader cannot go on with.
    #[error("{file} line {line} (byte {byte}): {message}")]
    Csv {
        /// The file.
        file: String,
        /// The line where the reader stopped.
        line: u64,
        /// The byte offset in the decoded text where the reader stopped.
        byte: u64,
        /// What went wrong.
        message: String,
    },
    /// A row or record holds bytes that are not valid in the file's encoding. Only this row is
    /// skipped.
    #[error(
        "{origin} (line {line}): the bytes at offset {byte} are not valid {encoding}; the row is skipped — if the file is not {encoding}, name its encoding (encoding = \"gbk\", \"gb18030\" or \"utf-8\")"
    )]
    Undecodable {
        /// The row (for XML, the record).
        origin: Origin,
        /// The line the row starts on.
        line: u64,
        /// Byte offset of the first invalid byte in the file.
        byte: u64,
        /// The encoding the file was read as.
        encoding: &'static str,
    },
    /// XML the reader cannot go on with (not well-formed).
    #[error("{file} line {line} (byte {byte} of the decoded text): {message}")]
    Xml {
        /// The file.
        file: String,
        /// The line where the reader stopped.
        line: u64,
        /// Byte offset in the decoded (UTF-8) text where the reader stopped.
        byte: u64,
        /// What went wrong.
        message: String,
    },
    /// One XML record cannot be read (an undefined entity…). Only this record is skipped.
    #[error("{origin} (the record element on line {line}): {message}")]
    XmlRecord {
        /// The record (its ordinal in `row`).
        origin: Origin,
        /// The line the record element starts on.
        line: u64,
        /// What went wrong.
        message: String,
    },
    /// One JSON Lines line is not a JSON object. Only this line is skipped.
    #[error("{origin}: {message}")]
    JsonLine {
        /// The line (its number in `row`).
        origin: Origin,
        /// What is wrong with it.
        message: String,
    },
    /// A platform's page could not be had (after the retries the policy allows).
    #[error("{url} (page {page}, {attempts} attempt(s)): {message}")]
    Http {
        /// The page's URL (with its query).
        url: String,
        /// The page's number in this run, from 1.
        page: u64,
        /// How many times it was asked for.
        attempts: u32,
        /// What went wrong the last time, and what to do.
        message: String,
    },
    /// An HTTP source's checkpoint file cannot be read or written.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl SourceError {
    /// The row this error is about, when it is about one row only: the source has skipped
    /// that row and goes on with the next. `None`: the source cannot go on (this is its last
    /// item) or it never started.
    pub fn row_origin(&self) -> Option<&Origin> {
        match self {
            SourceError::Undecodable { origin, .. }
            | SourceError::XmlRecord { origin, .. }
            | SourceError::JsonLine { origin, .. } => Some(origin),
            _ => None,
        }
    }
}
