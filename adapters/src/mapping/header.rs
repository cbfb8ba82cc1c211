//! Finding a sheet's header, and telling title, note and blank rows from data.
//!
//! The rule (documented in `adapters/mappings/README.md`):
//! - a row's cells are compared with the fields' column names by [`header_key`] (white space,
//!   `*`, (必填) marks and full-width forms ignored);
//! - the **header** is the first non-blank row in which at least `header_min_matches` fields
//!   find their column, searched within `header_scan_rows` non-blank rows (title rows above it
//!   are skipped). A two-row header (a group cell such as 第一完成单位 above 名称 | 统一社会信用代码)
//!   is recognised when reading the row above or below together with it matches more fields:
//!   a column's name is then also tried as the upper cell's text followed by the lower's
//!   ("第一完成单位名称");
//! - a column that repeats a matched header (a header cell merged over two columns) is the
//!   same field's second choice, used when the first is empty;
//! - after the header, a **blank** row (every cell empty or white space) and a **note** row
//!   (every non-empty cell holds the same text, which begins with a note prefix — 注, 说明,
//!   备注, 附注, 填表说明 — followed by a colon, a digit, a bracket, 、 or nothing: "注：",
//!   "说明1." but not "注射用…") are skipped, and so is a repeat of the header row.
//!
//! What it may not touch: values. A header only says which column feeds which field.

use crate::convert::{is_blank, text::header_key};
use crate::row::Cell;

use super::{Field, Layout};

/// A sheet's header as found: the rows it spans and each column's name and fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The source rows it spans (one, or two for a grouped header).
    pub rows: Vec<u64>,
    /// Every column that has a name, left to right.
    pub columns: Vec<HeaderColumn>,
    /// For each field of the mapping, the columns that feed it, best first.
    pub(super) field_columns: Vec<Vec<usize>>,
    /// How many fields found a column.
    pub(super) matched: usize,
    /// For each field, the position in `columns` of the column it reads first.
    pub(super) field_column_at: Vec<Option<usize>>,
}

/// One column of a header.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderColumn {
    /// Position in the row, from 0.
    pub index: usize,
    /// The header text as a person reads it (a grouped header as "第一完成单位/名称").
    pub text: String,
    /// Indexes of the mapping's fields it feeds (empty: unmapped).
    pub fields: Vec<usize>,
}

/// A row's cells as trimmed text, for header matching.
pub(super) fn texts(cells: &[Cell]) -> Vec<String> {
    cells.iter().map(crate::convert::cell_display).collect()
}

/// Builds a header from one to three rows (top first). A column's candidate names are the
/// lowest non-empty cell alone and joined with each non-empty cell above it.
pub(super) fn build(rows: &[&[String]], fields: &[Field]) -> Header {
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut candidates: Vec<Vec<(String, String)>> = Vec::with_capacity(width);
    for j in 0..width {
        let parts: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.get(j).map(|s| s.trim()))
            .filter(|s| !s.is_empty())
            .collect();
        // Consecutive equal parts are one cell merged down.
        let mut distinct: Vec<&str> = Vec::new();
        for p in parts {
            if distinct.last() != Some(&p) {
                distinct.push(p);
            }
        }
        let mut column = Vec::new();
        for from in (0..distinct.len()).rev() {
            let shown = distinct[from..].join("/");
            let key = header_key(&distinct[from..].concat());
            column.push((key, shown));
        }
        candidates.push(column);
    }
    let mut field_columns = vec![Vec::new(); fields.len()];
    let mut chosen_name: Vec<Option<String>> = vec![None; width];
    let mut matched = 0;
    for (f, field) in fields.iter().enumerate() {
        for alias in &field.column_keys {
            let hits: Vec<(usize, String)> = candidates
                .iter()
                .enumerate()
                .filter_map(|(j, names)| {
                    names
                        .iter()
                        .find(|(key, _)| key == alias)
                        .map(|(_, shown)| (j, shown.clone()))
                })
                .collect();
            if !hits.is_empty() {
                for (j, shown) in &hits {
                    chosen_name[*j].get_or_insert_with(|| shown.clone());
                }
                field_columns[f] = hits.into_iter().map(|(j, _)| j).collect();
                matched += 1;
                break;
            }
        }
    }
    let columns: Vec<HeaderColumn> = (0..width)
        .filter_map(|j| {
            let text = chosen_name[j]
                .clone()
                .or_else(|| candidates[j].last().map(|(_, shown)| shown.clone()))?;
            Some(HeaderColumn {
                index: j,
                text,
                fields: (0..fields.len())
                    .filter(|f| field_columns[*f].contains(&j))
                    .collect(),
            })
        })
        .collect();
    let field_column_at = field_columns
        .iter()
        .map(|cols| {
            let j = *cols.first()?;
            columns.iter().position(|c| c.index == j)
        })
        .collect();
    Header {
        rows: Vec::new(),
        columns,
        field_columns,
        matched,
        field_column_at,
    }
}

/// Whether every cell is empty.
pub(super) fn is_blank_row(cells: &[Cell]) -> bool {
    cells.iter().all(is_blank)
}

/// Whether a row is a note: every non-empty cell holds the same text, beginning with a note
/// prefix followed by a colon, digit, bracket, 、, a full stop or nothing.
pub(super) fn is_note_row(cells: &[Cell], layout: &Layout) -> bool {
    let mut text: Option<&str> = None;
    for cell in cells {
        match cell {
            Cell::Text(t) if !t.trim().is_empty() => match text {
                None => text = Some(t.trim()),
                Some(seen) if seen == t.trim() => {}
                Some(_) => return false,
            },
            c if is_blank(c) => {}
            _ => return false,
        }
    }
    let Some(text) = text else { return false };
    layout.note_prefixes.iter().any(|prefix| {
        text.strip_prefix(prefix.as_str()).is_some_and(|rest| {
            rest.chars().next().is_none_or(|c| {
                c.is_ascii_digit()
                    || matches!(
                        c,
                        ':' | '：' | '、' | '.' | '．' | '(' | '（' | '【' | '[' | ' ' | '\u{3000}'
                    )
                    || ('０'..='９').contains(&c)
            })
        })
    })
}

impl Header {
    /// The text of the column a field reads, as the header shows it.
    pub fn column_text(&self, field: usize) -> Option<&str> {
        let at = (*self.field_column_at.get(field)?)?;
        Some(self.columns[at].text.as_str())
    }

    /// Columns with a name that no field reads.
    pub fn unmapped(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.fields.is_empty())
            .map(|c| c.text.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Mapping;

    fn mapping() -> Mapping {
        Mapping::from_toml(
            r#"
kind = "achievement"
name = "t"
[[field]]
column = "成果名称"
target = "/title"
[[field]]
column = ["第一完成单位", "第一完成单位名称"]
target = "/institutions/0/name"
[[field]]
column = "第一完成单位统一社会信用代码"
target = "/institutions/0/uscc"
convert = "uscc"
[[field]]
column = "关键词"
target = "/keywords"
convert = "keywords"
"#,
        )
        .unwrap()
    }

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn one_row_header_with_messy_names() {
        let m = mapping();
        let r = row(&["序号", " 成果\n名称* ", "第一完成单位（必填）", "关 键 词"]);
        let h = build(&[&r], m.fields());
        assert_eq!(h.matched, 3);
        assert_eq!(h.field_columns[0], [1]);
        assert_eq!(h.unmapped(), ["序号"]);
        assert_eq!(h.column_text(1), Some("第一完成单位（必填）"));
    }

    #[test]
    fn grouped_two_row_header() {
        let m = mapping();
        let top = row(&["成果名称", "第一完成单位", "第一完成单位", "关键词"]);
        let bottom = row(&["成果名称", "名称", "统一社会信用代码", "关键词"]);
        let h = build(&[&top, &bottom], m.fields());
        assert_eq!(h.matched, 4);
        assert_eq!(h.field_columns[1], [1]);
        assert_eq!(h.field_columns[2], [2]);
        assert_eq!(h.column_text(2), Some("第一完成单位/统一社会信用代码"));
        // Read alone, the top row matches fewer fields.
        assert!(build(&[&top], m.fields()).matched < h.matched);
    }

    #[test]
    fn note_rows_and_blank_rows() {
        let m = mapping();
        let layout = m.layout();
        let t = |s: &str| Cell::Text(s.into());
        assert!(is_note_row(&[t("注：带*号为必填项"), Cell::Empty], layout));
        assert!(is_note_row(
            &[t("说明1. 金额单位万元"), t("说明1. 金额单位万元")],
            layout
        ));
        assert!(is_note_row(&[t("备注")], layout));
        assert!(!is_note_row(&[t("注射用重组蛋白")], layout));
        assert!(!is_note_row(&[t("注：x"), t("其他")], layout));
        assert!(is_blank_row(&[Cell::Empty, t("  ")]));
        assert!(!is_blank_row(&[Cell::Number(0.0)]));
    }
}
