//! The error report of an import: every refused row's reasons, written as they come, for the
//! person who will fix the sheet — as CSV that Excel opens right, and as JSON Lines for tools.
//!
//! - **CSV** (RFC 4180, CRLF line ends) starts with a UTF-8 byte-order mark, without which
//!   Excel reads UTF-8 as the local code page and the Chinese is garbled. Columns: `file`,
//!   `sheet`, `row`, `column`, `pointer`, `错误说明`, `message` ([`CSV_COLUMNS`]). A cell that
//!   begins with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with `'` so that a
//!   spreadsheet shows it as text and never runs it as a formula (CSV injection: a source file
//!   name or a cell value quoted in a message is the sheet's author's text, not ours).
//! - **JSON Lines**: one JSON object per error, `{"file", "sheet", "row", "column", "pointer",
//!   "message_zh", "message_en"}` (`sheet` and `column` are `null` when there is none). JSON
//!   Lines rather than one array so that the file is valid however far an interrupted import
//!   got, and can be read a line at a time.
//!
//! Both are written row by row through buffered writers: the report never holds more than one
//! row's errors, whatever the size of the import.
//!
//! What it may not touch: what the errors say (the mapping's) or which rows are refused.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::outcome::RowError;

/// The CSV report's columns, in order.
pub const CSV_COLUMNS: [&str; 7] = [
    "file",
    "sheet",
    "row",
    "column",
    "pointer",
    "错误说明",
    "message",
];

/// Writes one CSV cell: neutralised against formula injection, quoted when needed.
fn write_cell(out: &mut impl Write, text: &str) -> io::Result<()> {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = risky || text.contains([',', '"', '\n', '\r']) || text != text.trim();
    if !quote {
        return out.write_all(text.as_bytes());
    }
    out.write_all(b"\"")?;
    if risky {
        out.write_all(b"'")?;
    }
    out.write_all(text.replace('"', "\"\"").as_bytes())?;
    out.write_all(b"\"")
}

/// The CSV report, written as errors come.
#[derive(Debug)]
pub struct CsvReport<W: Write> {
    out: W,
    errors: u64,
}

impl<W: Write> CsvReport<W> {
    /// Starts the report: the byte-order mark and the header line.
    pub fn new(mut out: W) -> io::Result<CsvReport<W>> {
        out.write_all("\u{FEFF}".as_bytes())?;
        out.write_all(CSV_COLUMNS.join(",").as_bytes())?;
        out.write_all(b"\r\n")?;
        Ok(CsvReport { out, errors: 0 })
    }

    /// Writes one error as one line.
    pub fn write(&mut self, error: &RowError) -> io::Result<()> {
        let row = error.origin.row.to_string();
        let cells = [
            error.origin.file.as_str(),
            error.origin.sheet.as_deref().unwrap_or_default(),
            row.as_str(),
            error.column.as_deref().unwrap_or_default(),
            error.pointer.as_str(),
            error.message_zh.as_str(),
            error.message_en.as_str(),
        ];
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            write_cell(&mut self.out, cell)?;
        }
        self.out.write_all(b"\r\n")?;
        self.errors += 1;
        Ok(())
    }

    /// Goes on with a report whose byte-order mark and header are already written (a file
    /// being appended to).
    pub fn continuing(out: W) -> CsvReport<W> {
        CsvReport { out, errors: 0 }
    }

    /// How many errors were written.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Flushes what was written so far.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One line of the JSON Lines report.
#[derive(Serialize)]
struct JsonLine<'a> {
    file: &'a str,
    sheet: Option<&'a str>,
    row: u64,
    column: Option<&'a str>,
    pointer: &'a str,
    message_zh: &'a str,
    message_en: &'a str,
}

/// The JSON Lines report, written as errors come.
#[derive(Debug)]
pub struct JsonLinesReport<W: Write> {
    out: W,
    errors: u64,
}

impl<W: Write> JsonLinesReport<W> {
    /// Starts the report (an empty file is an empty report).
    pub fn new(out: W) -> JsonLinesReport<W> {
        JsonLinesReport { out, errors: 0 }
    }

    /// Writes one error as one line.
    pub fn write(&mut self, error: &RowError) -> io::Result<()> {
        let line = JsonLine {
            file: &error.origin.file,
            sheet: error.origin.sheet.as_deref(),
            row: error.origin.row,
            column: error.column.as_deref(),
            pointer: &error.pointer,
            message_zh: &error.message_zh,
            message_en: &error.message_en,
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        self.errors += 1;
        Ok(())
    }

    /// How many errors were written.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Flushes what was written so far.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// What a finished report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportSummary {
    /// Refused rows.
    pub rows: u64,
    /// Errors over all of them.
    pub errors: u64,
}

/// Both reports of an import, side by side, each in its file.
#[derive(Debug)]
pub struct ErrorReport {
    csv: CsvReport<BufWriter<File>>,
    json: JsonLinesReport<BufWriter<File>>,
    rows: u64,
}

impl ErrorReport {
    /// Creates (or truncates) the two files and writes the CSV's header.
    pub fn create(csv: &Path, json_lines: &Path) -> io::Result<ErrorReport> {
        Ok(ErrorReport {
            csv: CsvReport::new(BufWriter::new(File::create(csv)?))?,
            json: JsonLinesReport::new(BufWriter::new(File::create(json_lines)?)),
            rows: 0,
        })
    }

    /// Opens the two files to add to them — the report of an import that is resumed from its
    /// checkpoint goes on in the same files — or creates them as [`ErrorReport::create`] does
    /// when they are missing or empty.
    pub fn append(csv: &Path, json_lines: &Path) -> io::Result<ErrorReport> {
        let open = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        };
        let csv_file = open(csv)?;
        let started = csv_file.metadata()?.len() > 0;
        let csv_out = BufWriter::new(csv_file);
        Ok(ErrorReport {
            csv: if started {
                CsvReport::continuing(csv_out)
            } else {
                CsvReport::new(csv_out)?
            },
            json: JsonLinesReport::new(BufWriter::new(open(json_lines)?)),
            rows: 0,
        })
    }

    /// Flushes both files: what was written so far is on disk (before a checkpoint says the
    /// rows are done).
    pub fn flush(&mut self) -> io::Result<()> {
        self.csv.flush()?;
        self.json.flush()
    }

    /// Writes one refused row's errors to both files.
    pub fn refused(&mut self, errors: &[RowError]) -> io::Result<()> {
        for error in errors {
            self.csv.write(error)?;
            self.json.write(error)?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Flushes both files.
    pub fn finish(self) -> io::Result<ReportSummary> {
        let errors = self.csv.errors();
        self.csv.finish()?;
        self.json.finish()?;
        Ok(ReportSummary {
            rows: self.rows,
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Origin;

    fn error(file: &str, column: Option<&str>, zh: &str, en: &str) -> RowError {
        RowError {
            origin: Origin {
                file: file.into(),
                sheet: Some("Sheet1".into()),
                row: 7,
            },
            column: column.map(str::to_owned),
            pointer: "/title".into(),
            message_zh: zh.into(),
            message_en: en.into(),
        }
    }

    fn csv(errors: &[RowError]) -> String {
        let mut report = CsvReport::new(Vec::new()).unwrap();
        for e in errors {
            report.write(e).unwrap();
        }
        String::from_utf8(report.finish().unwrap()).unwrap()
    }

    #[test]
    fn csv_starts_with_a_bom_and_the_columns() {
        let text = csv(&[error(
            "登记表.xlsx",
            Some("成果名称"),
            "必填项「成果名称」为空",
            "required",
        )]);
        assert!(text.starts_with("\u{FEFF}file,sheet,row,column,pointer,错误说明,message\r\n"));
        assert!(
            text.ends_with(
                "登记表.xlsx,Sheet1,7,成果名称,/title,必填项「成果名称」为空,required\r\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        let text = csv(&[error(
            "=HYPERLINK(\"http://x\")",
            Some("@SUM(A1)"),
            "「-1+1」不是日期, 应为 \"2019-03\"",
            "+cmd|' /C calc'!A0",
        )]);
        let line = text.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "\"'=HYPERLINK(\"\"http://x\"\")\",Sheet1,7,\"'@SUM(A1)\",/title,\"「-1+1」不是日期, 应为 \"\"2019-03\"\"\",\"'+cmd|' /C calc'!A0\""
        );
        let tab = csv(&[error("\tx", None, "a\nb", "-x")]);
        assert!(
            tab.contains("\"'\tx\",Sheet1,7,,/title,\"a\nb\",\"'-x\""),
            "{tab:?}"
        );
    }

    #[test]
    fn an_appended_report_keeps_one_bom_and_header() {
        let dir = tempfile::tempdir().unwrap();
        let (csv, jsonl) = (dir.path().join("e.csv"), dir.path().join("e.jsonl"));
        let mut first = ErrorReport::create(&csv, &jsonl).unwrap();
        first
            .refused(&[error("a.xlsx", None, "一", "one")])
            .unwrap();
        first.finish().unwrap();
        let mut again = ErrorReport::append(&csv, &jsonl).unwrap();
        again
            .refused(&[error("a.xlsx", None, "二", "two")])
            .unwrap();
        assert_eq!(again.finish().unwrap().rows, 1);
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text.matches('\u{FEFF}').count(), 1, "{text}");
        assert_eq!(text.matches("file,sheet").count(), 1, "{text}");
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_eq!(std::fs::read_to_string(&jsonl).unwrap().lines().count(), 2);
        // Appending to nothing starts the files.
        let (csv2, jsonl2) = (dir.path().join("f.csv"), dir.path().join("f.jsonl"));
        ErrorReport::append(&csv2, &jsonl2)
            .unwrap()
            .finish()
            .unwrap();
        assert!(
            std::fs::read_to_string(&csv2)
                .unwrap()
                .starts_with("\u{FEFF}file,")
        );
    }

    #[test]
    fn json_lines_flatten_the_origin() {
        let mut report = JsonLinesReport::new(Vec::new());
        report.write(&error("a.csv", None, "错", "wrong")).unwrap();
        let mut no_sheet = error("b.xml", Some("/成果/名称"), "错", "wrong");
        no_sheet.origin.sheet = None;
        report.write(&no_sheet).unwrap();
        assert_eq!(report.errors(), 2);
        let text = String::from_utf8(report.finish().unwrap()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"file": "a.csv", "sheet": "Sheet1", "row": 7, "column": null,
                               "pointer": "/title", "message_zh": "错", "message_en": "wrong"})
        );
        assert_eq!(lines[1]["sheet"], serde_json::Value::Null);
        assert_eq!(lines[1]["column"], "/成果/名称");
    }
}
