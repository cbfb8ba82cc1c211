//! The dry run's view: for the first rows, each source value beside the record field it became
//! (column, source value, pointer, mapped value), the row's outcome and its errors; then the
//! header each table was found with, the columns no field reads and the fields whose column is
//! missing. Chinese is aligned by display width (two columns a character).
//!
//! What it may not touch: mapping (the mapper explains, this only lays it out) or counting.

use std::io::{self, Write};

use rix_adapters::mapping::{Explained, Mapper};
use rix_adapters::outcome::Mapped;
use rix_adapters::row::Origin;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::progress::Progress;

/// Widest a cell of the side-by-side table is drawn.
const CELL_WIDTH: usize = 36;

/// What the dry run has shown and has still to show.
pub(super) struct DryRun {
    want: usize,
    shown: usize,
    /// Header descriptions waiting for the sample rows to be shown first.
    queued: Vec<String>,
}

/// `text` cut to `width` display columns (with … when cut), line breaks shown as ⏎.
fn fit(text: &str, width: usize) -> String {
    let text = text.replace(['\r', '\n'], "⏎");
    if text.width() <= width {
        return text;
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

fn pad(text: &str, width: usize) -> String {
    let w = text.width();
    format!("{text}{}", " ".repeat(width.saturating_sub(w)))
}

fn place(origin: &Origin) -> String {
    match &origin.sheet {
        Some(sheet) => format!("{} [{sheet}]", origin.file),
        None => origin.file.clone(),
    }
}

impl DryRun {
    pub(super) fn new(want: usize) -> DryRun {
        DryRun {
            want,
            shown: 0,
            queued: Vec::new(),
        }
    }

    /// Whether more rows are to be shown side by side.
    pub(super) fn wants_more(&self) -> bool {
        self.shown < self.want
    }

    /// Shows one data row.
    pub(super) fn show(
        &mut self,
        out: &mut dyn Write,
        progress: &Progress,
        origin: &Origin,
        mapped: &Mapped,
        lines: &[Explained],
    ) -> io::Result<()> {
        self.shown += 1;
        let mut text = String::new();
        let outcome = match mapped {
            Ok(record) => {
                let mut s = format!("becomes a record, source key {}", record.source_key);
                if let Some(n) = &record.registration_no {
                    s.push_str(&format!(", imported as approved under 批准登记号 {n}"));
                }
                s
            }
            Err(errors) => format!("refused ({} error(s))", errors.len()),
        };
        text.push_str(&format!(
            "\n── {} row {}: {outcome}\n",
            place(origin),
            origin.row
        ));
        let rows: Vec<[String; 4]> = lines
            .iter()
            .map(|l| {
                let value = match &l.value {
                    serde_json::Value::String(s) => format!("\"{s}\""),
                    other => other.to_string(),
                };
                [
                    fit(&l.column, 24),
                    fit(&l.source, CELL_WIDTH),
                    fit(&l.pointer, 30),
                    fit(&value, CELL_WIDTH),
                ]
            })
            .collect();
        let head = [
            "column".to_owned(),
            "source value".to_owned(),
            "pointer".to_owned(),
            "mapped value".to_owned(),
        ];
        let widths: Vec<usize> = (0..4)
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].width())
                    .chain([head[c].width()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in std::iter::once(&head).chain(rows.iter()) {
            text.push_str(&format!(
                "  {}  {}  →  {}  {}\n",
                pad(&r[0], widths[0]),
                pad(&r[1], widths[1]),
                pad(&r[2], widths[2]),
                r[3]
            ));
        }
        if let Err(errors) = mapped {
            for e in errors {
                text.push_str(&format!(
                    "  ✗ {} {}: {} / {}\n",
                    e.column.as_deref().unwrap_or("-"),
                    if e.pointer.is_empty() {
                        "(record)"
                    } else {
                        &e.pointer
                    },
                    e.message_zh,
                    e.message_en
                ));
            }
        }
        if self.shown == self.want {
            for h in self.queued.drain(..) {
                text.push_str(&h);
            }
            text.push_str("\nmapping every row…\n");
        }
        progress.suspend(|| out.write_all(text.as_bytes()))
    }

    /// A table's header was found: shown after the sample rows (or now, after them).
    pub(super) fn header(
        &mut self,
        out: &mut dyn Write,
        progress: &Progress,
        mapper: &Mapper<'_>,
        origin: &Origin,
    ) -> io::Result<()> {
        let Some(header) = mapper.header() else {
            return Ok(());
        };
        let rows = match header.rows.as_slice() {
            [one] => format!("row {one}"),
            [first, .., last] => format!("rows {first}–{last}"),
            [] => "no row".to_owned(),
        };
        let read = header
            .columns
            .iter()
            .filter(|c| !c.fields.is_empty())
            .count();
        let mut text = format!(
            "\nheader of {}: {rows}, {} columns, {read} read by the mapping\n",
            place(origin),
            header.columns.len()
        );
        let unmapped = mapper.unmapped_columns();
        text.push_str(&format!(
            "  unmapped columns: {}\n",
            if unmapped.is_empty() {
                "(none)".to_owned()
            } else {
                unmapped.join(", ")
            }
        ));
        let missing = mapper.missing_columns();
        let missing: Vec<String> = missing
            .iter()
            .map(|m| {
                format!(
                    "{} → {}{}",
                    m.column,
                    m.target,
                    if m.required { " (required)" } else { "" }
                )
            })
            .collect();
        text.push_str(&format!(
            "  missing columns: {}\n",
            if missing.is_empty() {
                "(none)".to_owned()
            } else {
                missing.join("; ")
            }
        ));
        if self.wants_more() {
            self.queued.push(text);
            Ok(())
        } else {
            progress.suspend(|| out.write_all(text.as_bytes()))
        }
    }

    /// The end of the rows: what is still queued, and for tree rows (XML, JSON, an API) the
    /// paths no field reads.
    pub(super) fn finish(&mut self, out: &mut dyn Write, mapper: &Mapper<'_>) -> io::Result<()> {
        for h in self.queued.drain(..) {
            out.write_all(h.as_bytes())?;
        }
        if mapper.header().is_none() {
            let unmapped = mapper.unmapped_columns();
            if !unmapped.is_empty() {
                writeln!(out, "\npaths no field reads: {}", unmapped.join(", "))?;
            }
        }
        Ok(())
    }
}
