//! Helpers of the mapping tests: rows built by hand, as a spreadsheet source would give them.

#![allow(dead_code)]

use rix_adapters::row::{Cell, Origin, RowData, SourceRow};
use rix_adapters::schema::codes::uscc_check_character;

/// A valid unified social credit code from its first 17 characters.
pub fn uscc(first17: &str) -> String {
    format!("{first17}{}", uscc_check_character(first17).unwrap())
}

/// A cell from a string: "" is empty, "#n" a number cell, "@n" a date cell (Excel serial).
pub fn cell(s: &str) -> Cell {
    if s.is_empty() {
        Cell::Empty
    } else if let Some(n) = s.strip_prefix('#') {
        Cell::Number(n.parse().unwrap())
    } else if let Some(n) = s.strip_prefix('@') {
        Cell::DateSerial(n.parse().unwrap())
    } else {
        Cell::Text(s.to_owned())
    }
}

/// Row `n` of sheet `Sheet1` of `file`.
pub fn row_in(file: &str, sheet: &str, n: u64, cells: &[&str]) -> SourceRow {
    SourceRow {
        origin: Origin {
            file: file.to_owned(),
            sheet: Some(sheet.to_owned()),
            row: n,
        },
        data: RowData::Cells(cells.iter().map(|s| cell(s)).collect()),
    }
}

/// Row `n` of `登记表.xlsx`, sheet `Sheet1`.
pub fn row(n: u64, cells: &[&str]) -> SourceRow {
    row_in("登记表.xlsx", "Sheet1", n, cells)
}

/// A tree row (XML record element or JSON object).
pub fn tree(n: u64, value: serde_json::Value) -> SourceRow {
    SourceRow {
        origin: Origin {
            file: "export.xml".to_owned(),
            sheet: None,
            row: n,
        },
        data: RowData::Tree(value),
    }
}
