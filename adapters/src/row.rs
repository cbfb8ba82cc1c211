//! A row as a source has it, before any mapping: the contract between [`crate::source`] (which
//! only reads) and [`crate::mapping`] (which only interprets).
//!
//! Cells keep the type the source gave them (an Excel date cell stays a serial number, a
//! number stays a number) so that the mapping's converters decide, in one place, what
//! "2019.03", 43525 or "２０１９年３月" mean for a given field.
//!
//! What it may not touch: meaning. Nothing here knows a header, a field or a code list.

use std::fmt;

use serde::Serialize;

/// Where a row came from, as a person would look for it in the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The file it was read from, or the URL of the platform's page.
    pub file: String,
    /// The sheet, in a workbook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// The row as the source's own viewer numbers it, from 1: the spreadsheet row, the CSV or
    /// JSON Lines line (of the record's first line), the XML record element's ordinal, the
    /// item's position in the platform's sequence of pages.
    pub row: u64,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sheet {
            Some(sheet) => write!(f, "{} [{sheet}] row {}", self.file, self.row),
            None => write!(f, "{} row {}", self.file, self.row),
        }
    }
}

/// One cell of a tabular source, typed as far as the source itself types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Nothing in the cell (or only white space).
    Empty,
    /// Text, as stored (not trimmed, not normalised: the mapping does that).
    Text(String),
    /// A number the source stores as a number.
    Number(f64),
    /// A date or date-time the source itself typed (an Excel or ODS date cell), as an Excel
    /// serial: days since 1899-12-30, the fraction the time of day.
    DateSerial(f64),
    /// A boolean cell.
    Bool(bool),
}

/// The content of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowData {
    /// A physical row of a sheet or a CSV/TSV file, cells left to right. A merged region's
    /// value stands in every cell it covers.
    Cells(Vec<Cell>),
    /// A record-shaped item: an XML record element as JSON (attributes as `@name`, text as
    /// `$text`, repeated children as arrays), a JSON Lines object, or an item of a platform's
    /// API page.
    Tree(serde_json::Value),
}

/// One row of a source, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    /// Where it came from.
    pub origin: Origin,
    /// What it holds.
    pub data: RowData,
}
