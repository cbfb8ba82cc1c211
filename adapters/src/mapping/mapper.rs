//! Applying a mapping to rows: header detection for tables, values through converters into a
//! record, defaults and constants, the row's identity, validation with `rix-schema`, and every
//! failure as a [`RowError`] naming the source column and the record pointer.
//!
//! Why one stateful [`Mapper`]: a table's rows only mean something after its header, and a
//! source may hand over several sheets or files one after the other; the mapper keeps, per
//! table (file and sheet), where it is — searching for the header, or mapping — and nothing
//! else, so memory does not grow with the rows.
//!
//! What it may not touch: where rows come from or where records go. It returns one outcome per
//! data row, in order; a refused row never stops the next.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use rix_schema::RecordKind;
use rix_schema::canonical::{canonical_value, sha256_hex};
use rix_schema::validate::validate_record_bounded;
use serde_json::{Map, Value};

use crate::convert::{
    self, Converter, cell_display, is_blank, text::header_key, text::to_halfwidth,
};
use crate::outcome::{Mapped, MappedRecord, RowError, SourceColumns, Writer};
use crate::row::{Cell, Origin, RowData, SourceRow};

use super::header::{self, Header};
use super::messages;
use super::target::{self, Step};
use super::{Field, Fixed, Mapping};

/// At most this many errors are reported for one row (validation counts the rest).
const MAX_ROW_ERRORS: usize = 50;

/// At most this many unmapped tree paths are remembered for the dry-run view.
const MAX_UNMAPPED_PATHS: usize = 200;

/// One line of the dry-run view: a source value beside what it became.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    /// The source column (header text), tree path, or `(默认值)` / `(常量)`.
    pub column: String,
    /// The source value as the source shows it.
    pub source: String,
    /// Where it went in the record.
    pub pointer: String,
    /// What it became.
    pub value: Value,
}

/// A field whose column the header does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingColumn {
    /// The column's first name in the mapping.
    pub column: String,
    /// The field's target.
    pub target: String,
    /// Whether the mapping or the schema requires it.
    pub required: bool,
}

/// Where a value in the record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WrittenBy {
    Field(usize),
    Default,
    Constant,
}

/// A value written into the record: by what, and at which element of a `*`/`-` target.
#[derive(Debug, Clone, Copy)]
struct Provenance {
    from: WrittenBy,
    index: Option<usize>,
    /// Position in a `[defaults]`/`[constants]` list.
    fixed: usize,
}

/// Where the mapper is in the current table.
#[derive(Debug)]
enum Table {
    /// Looking for the header: rows scanned and the last non-blank row (for a two-row header).
    Searching {
        scanned: usize,
        previous: Option<Vec<String>>,
        best: (usize, u64),
    },
    /// A header was found; the next row may still be its second row.
    Pending {
        header: Header,
        rows: Vec<Vec<String>>,
    },
    /// Mapping data rows.
    Found(Header),
    /// No header was found: every further row of the table is refused.
    Failed,
}

/// Applies a [`Mapping`] to rows ([`Mapper::map`]); see the module doc.
#[derive(Debug)]
pub struct Mapper<'m> {
    mapping: &'m Mapping,
    place: Option<(String, Option<String>)>,
    table: Table,
    unmapped_paths: BTreeSet<String>,
    /// The fields, defaults and constants as the current table's rows name them (its header
    /// texts), once its header is found; for tree rows, by path.
    writers: Option<Arc<[Writer]>>,
    tree_writers: Option<Arc<[Writer]>>,
}

/// A value taken from a row, before conversion.
enum Raw<'v> {
    Missing,
    One(Cow<'v, Cell>),
    Many(Vec<Cell>),
    Json(&'v Value),
}

/// The work on one row.
struct RowWork<'r> {
    record: Value,
    provenance: Vec<Provenance>,
    errors: Vec<RowError>,
    /// Pointers that already have an error: validation errors at or under them are dropped.
    errored: Vec<String>,
    explain: Option<&'r mut Vec<Explained>>,
    origin: &'r Origin,
}

impl<'m> Mapper<'m> {
    pub(super) fn new(mapping: &'m Mapping) -> Mapper<'m> {
        Mapper {
            mapping,
            place: None,
            table: Table::Searching {
                scanned: 0,
                previous: None,
                best: (0, 0),
            },
            unmapped_paths: BTreeSet::new(),
            writers: None,
            tree_writers: None,
        }
    }

    /// Every field, default and constant with the column it reads in a table with `header`
    /// (tree rows: `None`), indexed as [`Mapper::writer_index`] says.
    fn writers_for(&self, header: Option<&Header>) -> Arc<[Writer]> {
        let m = self.mapping;
        let fields = m.fields.iter().enumerate().map(|(f, field)| Writer {
            target: field.target.clone(),
            column: match header {
                Some(h) => h.column_text(f).unwrap_or(field.label()).to_owned(),
                None => field.path().unwrap_or(field.label()).to_owned(),
            },
            field: true,
        });
        let fixed = |list: &[Fixed], label: &str| -> Vec<Writer> {
            list.iter()
                .map(|x| Writer {
                    target: x.target.clone(),
                    column: label.to_owned(),
                    field: false,
                })
                .collect()
        };
        fields
            .chain(fixed(&m.defaults, "(默认值)"))
            .chain(fixed(&m.constants, "(常量)"))
            .collect()
    }

    /// A value's writer as an index into [`Mapper::writers_for`]: fields, then defaults, then
    /// constants.
    fn writer_index(&self, p: &Provenance) -> usize {
        let m = self.mapping;
        match p.from {
            WrittenBy::Field(f) => f,
            WrittenBy::Default => m.fields.len() + p.fixed,
            WrittenBy::Constant => m.fields.len() + m.defaults.len() + p.fixed,
        }
    }

    /// The mapping applied.
    pub fn mapping(&self) -> &'m Mapping {
        self.mapping
    }

    /// Maps one row. `None` for rows that are not data — title rows above the header, the
    /// header itself, blank rows, note rows, a repeated header; otherwise the record or the
    /// reasons it is refused.
    pub fn map(&mut self, row: &SourceRow) -> Option<Mapped> {
        self.map_inner(row, None)
    }

    /// Maps one row as [`Mapper::map`] does and lists, for the dry-run view, every source value
    /// beside the record field it became.
    pub fn map_explained(&mut self, row: &SourceRow) -> Option<(Mapped, Vec<Explained>)> {
        let mut lines = Vec::new();
        let mapped = self.map_inner(row, Some(&mut lines))?;
        Some((mapped, lines))
    }

    /// The current table's header, once found.
    pub fn header(&self) -> Option<&Header> {
        match &self.table {
            Table::Found(h) | Table::Pending { header: h, .. } => Some(h),
            _ => None,
        }
    }

    /// Columns of the current table's header that no field reads; for tree rows, the paths of
    /// values seen that no field reads (`*` for array elements, at most 200).
    pub fn unmapped_columns(&self) -> Vec<String> {
        match self.header() {
            Some(h) => h.unmapped().into_iter().map(str::to_owned).collect(),
            None => self.unmapped_paths.iter().cloned().collect(),
        }
    }

    /// Fields whose column the current table's header does not have, and no alternative of it
    /// either. A field's alternatives are its own column names (aliases) and the fields that
    /// give the same value another way: the same target (转让价格(万元) or 转让价格(元)), or one
    /// that holds it or lies within it (研究起止时间 for 研究开始时间 and 研究结束时间). A sheet
    /// that has one of them misses nothing.
    pub fn missing_columns(&self) -> Vec<MissingColumn> {
        let Some(h) = self.header() else {
            return Vec::new();
        };
        let fields = &self.mapping.fields;
        let overlap = |a: &str, b: &str| {
            let within = |inner: &str, outer: &str| {
                inner.len() > outer.len()
                    && inner.starts_with(outer)
                    && inner[outer.len()..].starts_with('/')
            };
            a == b || within(a, b) || within(b, a)
        };
        let found = |f: usize| !h.field_columns[f].is_empty();
        fields
            .iter()
            .enumerate()
            .filter(|(f, field)| !field.columns.is_empty() && !found(*f))
            .filter(|(_, field)| {
                !fields
                    .iter()
                    .enumerate()
                    .any(|(g, other)| found(g) && overlap(&field.target.text, &other.target.text))
            })
            .map(|(_, field)| MissingColumn {
                column: field.columns[0].clone(),
                target: field.target.text.clone(),
                required: field.required
                    || target::schema_requires(self.mapping.kind, &field.target.steps),
            })
            .collect()
    }

    fn map_inner(
        &mut self,
        row: &SourceRow,
        explain: Option<&mut Vec<Explained>>,
    ) -> Option<Mapped> {
        match &row.data {
            RowData::Tree(tree) => Some(self.map_tree(row, tree, explain)),
            RowData::Cells(cells) => self.map_cells(row, cells, explain),
        }
    }

    fn map_cells(
        &mut self,
        row: &SourceRow,
        cells: &[Cell],
        explain: Option<&mut Vec<Explained>>,
    ) -> Option<Mapped> {
        let same_table = self
            .place
            .as_ref()
            .is_some_and(|(file, sheet)| *file == row.origin.file && *sheet == row.origin.sheet);
        if !same_table {
            self.place = Some((row.origin.file.clone(), row.origin.sheet.clone()));
            self.writers = None;
            self.table = Table::Searching {
                scanned: 0,
                previous: None,
                best: (0, 0),
            };
        }
        if header::is_blank_row(cells) {
            return None;
        }
        let fields = &self.mapping.fields;
        let layout = &self.mapping.layout;
        let table = std::mem::replace(&mut self.table, Table::Failed);
        let (table, outcome) = match table {
            Table::Searching {
                scanned,
                previous,
                best,
            } => {
                let texts = header::texts(cells);
                let alone = header::build(&[&texts], fields);
                let joined = previous
                    .as_ref()
                    .map(|p| header::build(&[p, &texts], fields));
                let (mut candidate, rows) = match joined {
                    Some(j) if j.matched > alone.matched => {
                        let mut rows = vec![previous.clone().unwrap_or_default(), texts];
                        rows.truncate(2);
                        (j, rows)
                    }
                    _ => (alone, vec![texts]),
                };
                let best = if candidate.matched > best.0 {
                    (candidate.matched, row.origin.row)
                } else {
                    best
                };
                if candidate.matched >= layout.header_min_matches {
                    candidate.rows = if rows.len() == 2 {
                        vec![row.origin.row.saturating_sub(1), row.origin.row]
                    } else {
                        vec![row.origin.row]
                    };
                    (
                        Table::Pending {
                            header: candidate,
                            rows,
                        },
                        None,
                    )
                } else if scanned + 1 >= layout.header_scan_rows {
                    (
                        Table::Failed,
                        Some(Err(vec![self.no_header(&row.origin, best)])),
                    )
                } else {
                    (
                        Table::Searching {
                            scanned: scanned + 1,
                            previous: Some(rows.into_iter().last().unwrap_or_default()),
                            best,
                        },
                        None,
                    )
                }
            }
            Table::Pending { header, mut rows } => {
                if header::is_note_row(cells, layout) {
                    (Table::Pending { header, rows }, None)
                } else {
                    rows.push(header::texts(cells));
                    let refs: Vec<&[String]> = rows.iter().map(Vec::as_slice).collect();
                    let extended = header::build(&refs, fields);
                    if extended.matched > header.matched && rows.len() <= 3 {
                        let mut extended = extended;
                        extended.rows = header.rows.clone();
                        extended.rows.push(row.origin.row);
                        (
                            Table::Pending {
                                header: extended,
                                rows,
                            },
                            None,
                        )
                    } else {
                        self.writers = Some(self.writers_for(Some(&header)));
                        let outcome = self.data_row(&header, row, cells, explain);
                        (Table::Found(header), outcome)
                    }
                }
            }
            Table::Found(header) => {
                let outcome = self.data_row(&header, row, cells, explain);
                (Table::Found(header), outcome)
            }
            Table::Failed => {
                let outcome = if header::is_note_row(cells, layout) {
                    None
                } else {
                    Some(Err(vec![RowError {
                        origin: row.origin.clone(),
                        column: None,
                        pointer: String::new(),
                        message_zh: "本表没有找到表头，此行未导入（见本表第一条错误）".to_owned(),
                        message_en: "this table's header was not found, so the row was not read (see the table's first error)".to_owned(),
                    }]))
                };
                (Table::Failed, outcome)
            }
        };
        self.table = table;
        outcome
    }

    fn no_header(&self, origin: &Origin, best: (usize, u64)) -> RowError {
        let names: Vec<&str> = self
            .mapping
            .fields
            .iter()
            .filter_map(|f| f.columns.first().map(String::as_str))
            .take(12)
            .collect();
        let need = self.mapping.layout.header_min_matches;
        let scanned = self.mapping.layout.header_scan_rows;
        RowError {
            origin: origin.clone(),
            column: None,
            pointer: String::new(),
            message_zh: format!(
                "前 {scanned} 个非空行中没有找到表头：表头行至少要有 {need} 个映射中的列名（如 {}）；最接近的是第 {} 行，只对上 {} 个。请检查映射文件是否适用于本表",
                names.join("、"),
                best.1,
                best.0
            ),
            message_en: format!(
                "no header in the first {scanned} non-blank rows: a header row needs at least {need} of the mapping's column names (e.g. {}); the closest was row {} with {}. Check that the mapping fits this sheet",
                names.join(", "),
                best.1,
                best.0
            ),
        }
    }

    fn data_row(
        &self,
        header: &Header,
        row: &SourceRow,
        cells: &[Cell],
        explain: Option<&mut Vec<Explained>>,
    ) -> Option<Mapped> {
        if header::is_note_row(cells, &self.mapping.layout) || self.repeats_header(header, cells) {
            return None;
        }
        let mut work = RowWork::new(&row.origin, explain);
        for (f, field) in self.mapping.fields.iter().enumerate() {
            if field.columns.is_empty() {
                continue;
            }
            let columns = &header.field_columns[f];
            let raw = columns
                .iter()
                .filter_map(|&j| cells.get(j))
                .find(|c| !is_blank(c))
                .map_or(Raw::Missing, |c| Raw::One(Cow::Borrowed(c)));
            let label = header.column_text(f).unwrap_or(field.label());
            let missing_column = columns.is_empty();
            self.field_value(&mut work, f, field, raw, label, missing_column);
        }
        let writers = match &self.writers {
            Some(w) => Arc::clone(w),
            None => self.writers_for(Some(header)),
        };
        Some(self.finish(work, Some(header), writers))
    }

    /// Whether a data row is the header again (a sheet printed with repeated headers).
    fn repeats_header(&self, header: &Header, cells: &[Cell]) -> bool {
        let Some((f, j)) = header
            .field_columns
            .iter()
            .enumerate()
            .find_map(|(f, cols)| cols.first().map(|&j| (f, j)))
        else {
            return false;
        };
        let Some(Cell::Text(t)) = cells.get(j) else {
            return false;
        };
        let key = header_key(t);
        if !self.mapping.fields[f]
            .column_keys
            .iter()
            .any(|k| key.contains(k.as_str()))
        {
            return false;
        }
        let texts = header::texts(cells);
        header::build(&[&texts], &self.mapping.fields).matched
            >= self.mapping.layout.header_min_matches
    }

    fn map_tree(
        &mut self,
        row: &SourceRow,
        tree: &Value,
        explain: Option<&mut Vec<Explained>>,
    ) -> Mapped {
        self.place = None;
        if self.tree_writers.is_none() {
            self.tree_writers = Some(self.writers_for(None));
        }
        let mut work = RowWork::new(&row.origin, explain);
        let mut used: Vec<&target::Pointer> = Vec::new();
        let mut used_keys: Vec<&str> = Vec::new();
        for (f, field) in self.mapping.fields.iter().enumerate() {
            let (raw, label) = if let Some(path) = &field.path {
                used.push(path);
                let mut found = Vec::new();
                lookup(tree, &path.steps, &mut found);
                let raw = if field.converter == Converter::Json {
                    found.retain(|v| !v.is_null());
                    match found.as_slice() {
                        [] => Raw::Missing,
                        [one] => Raw::Json(one),
                        _ => Raw::Many(found.iter().map(|v| leaf(v)).collect()),
                    }
                } else {
                    raw_of(&found, path.is_list())
                };
                (raw, path.text.clone())
            } else {
                // A top-level member named like the column.
                let member = tree.as_object().and_then(|o| {
                    field
                        .column_keys
                        .iter()
                        .find_map(|alias| o.iter().find(|(k, _)| header_key(k) == *alias))
                });
                match member {
                    Some((k, v)) => {
                        used_keys.push(k);
                        let raw = if field.converter == Converter::Json {
                            Raw::Json(v)
                        } else {
                            raw_of(&[v], false)
                        };
                        (raw, k.clone())
                    }
                    None => (Raw::Missing, field.label().to_owned()),
                }
            };
            self.field_value(&mut work, f, field, raw, &label, false);
        }
        if self.unmapped_paths.len() < MAX_UNMAPPED_PATHS {
            let mut leaves = Vec::new();
            leaf_paths(tree, &mut String::new(), &mut leaves);
            for path in leaves {
                let covered = used.iter().any(|p| covers(&p.text, &path))
                    || used_keys.iter().any(|k| {
                        let top = format!("/{}", k.replace('~', "~0").replace('/', "~1"));
                        path == top || path.starts_with(&format!("{top}/"))
                    });
                if !covered && self.unmapped_paths.len() < MAX_UNMAPPED_PATHS {
                    self.unmapped_paths.insert(path);
                }
            }
        }
        let writers = Arc::clone(self.tree_writers.as_ref().expect("set above"));
        self.finish(work, None, writers)
    }

    /// Converts one field's raw value and writes it into the record.
    fn field_value(
        &self,
        work: &mut RowWork<'_>,
        f: usize,
        field: &Field,
        raw: Raw<'_>,
        label: &str,
        missing_column: bool,
    ) {
        let source_text = |raw: &Raw<'_>| match raw {
            Raw::Missing => String::new(),
            Raw::One(c) => cell_display(c),
            Raw::Many(cells) => cells
                .iter()
                .map(cell_display)
                .collect::<Vec<_>>()
                .join("；"),
            Raw::Json(v) => v.to_string(),
        };
        let shown = if work.explain.is_some() {
            source_text(&raw)
        } else {
            String::new()
        };
        let mut wrote = false;
        match raw {
            Raw::Missing => {}
            Raw::Json(v) => {
                wrote = true;
                work.write(f, field, None, v.clone(), label, &shown);
            }
            Raw::One(cell)
                if field.split.is_none() && !field.target.is_list() && !field.whole_list =>
            {
                match convert::convert(field.converter, &cell, &field.options) {
                    Ok(Some(value)) => {
                        wrote = true;
                        work.write(f, field, None, value, label, &shown);
                    }
                    Ok(None) => {}
                    Err(e) => work.convert_error(field, None, label, e),
                }
            }
            Raw::Many(cells)
                if !field.target.is_list() && !field.whole_list && field.split.is_none() =>
            {
                let distinct: Vec<&Cell> = cells.iter().fold(Vec::new(), |mut acc, c| {
                    if !is_blank(c) && !acc.contains(&c) {
                        acc.push(c);
                    }
                    acc
                });
                match distinct.as_slice() {
                    [] => {}
                    [one] => match convert::convert(field.converter, one, &field.options) {
                        Ok(Some(value)) => {
                            wrote = true;
                            work.write(f, field, None, value, label, &shown);
                        }
                        Ok(None) => {}
                        Err(e) => work.convert_error(field, None, label, e),
                    },
                    many => work.convert_error(
                        field,
                        None,
                        label,
                        convert::ConvertError::new(
                            format!(
                                "应为一个值，却有 {} 个：{}",
                                many.len(),
                                source_text(&Raw::Many(cells.clone()))
                            ),
                            format!(
                                "one value expected, found {}: {}",
                                many.len(),
                                source_text(&Raw::Many(cells.clone()))
                            ),
                        ),
                    ),
                }
            }
            Raw::One(_) | Raw::Many(_) => {
                // Borrowed: a sheet's cell is split or converted where it lies, not copied.
                let cells: &[Cell] = match &raw {
                    Raw::One(c) => std::slice::from_ref(c.as_ref()),
                    Raw::Many(cells) => cells,
                    _ => unreachable!(),
                };
                // A `*` target spreads items over elements by position: an empty value of a
                // tree's element (a 完成人 without 职称) is a hole that keeps the next value at
                // its own element, instead of shifting it onto the previous person.
                let holes = field.target.is_list();
                let split: Vec<Cell>;
                let items: Vec<&Cell> = match &field.split {
                    Some(seps) => {
                        split = cells
                            .iter()
                            .flat_map(|c| {
                                if holes && is_blank(c) {
                                    vec![Cell::Empty]
                                } else {
                                    convert::split_cell(c, seps, field.converter)
                                }
                            })
                            .collect();
                        split.iter().collect()
                    }
                    None => cells.iter().filter(|c| holes || !is_blank(c)).collect(),
                };
                let mut values: Vec<Option<Value>> = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match convert::convert(field.converter, item, &field.options) {
                        Ok(Some(Value::Array(inner))) if field.converter == Converter::Keywords => {
                            values.extend(inner.into_iter().map(Some));
                        }
                        Ok(Some(value)) => values.push(Some(value)),
                        Ok(None) if holes => values.push(None),
                        Ok(None) => {}
                        Err(e) => {
                            let index = if holes {
                                Some(field.first_index + i)
                            } else {
                                Some(i)
                            };
                            work.convert_error(field, index, label, e);
                            if holes {
                                values.push(None);
                            }
                        }
                    }
                }
                if field.converter == Converter::Keywords {
                    let mut seen: Vec<String> = Vec::new();
                    values.retain(|v| {
                        let Some(v) = v else { return true };
                        let key = v.as_str().unwrap_or_default().to_lowercase();
                        let fresh = !seen.contains(&key);
                        seen.push(key);
                        fresh
                    });
                }
                if values.iter().any(Option::is_some) {
                    wrote = true;
                }
                if holes {
                    for (i, value) in values.into_iter().enumerate() {
                        if let Some(value) = value {
                            work.write(f, field, Some(field.first_index + i), value, label, &shown);
                        }
                    }
                } else if wrote {
                    let mut distinct: Vec<Value> = Vec::with_capacity(values.len());
                    for v in values.into_iter().flatten() {
                        if !distinct.contains(&v) {
                            distinct.push(v);
                        }
                    }
                    work.write(f, field, None, Value::Array(distinct), label, &shown);
                }
            }
        }
        if !wrote
            && field.required
            && !work.has_error_at(&field.target.concrete(Some(field.first_index)))
        {
            let pointer = field.target.concrete(Some(field.first_index));
            let (zh, en) = if missing_column {
                (
                    format!("必填列「{label}」在表头中没有找到"),
                    format!("required column {label} is not in the header"),
                )
            } else {
                (
                    format!("「{label}」为必填项，但为空"),
                    format!("{label} is required but empty"),
                )
            };
            work.error(Some(label.to_owned()), pointer, zh, en);
        }
    }

    /// Defaults, constants, identity, validation: the row's outcome.
    fn finish(
        &self,
        mut work: RowWork<'_>,
        header: Option<&Header>,
        writers: Arc<[Writer]>,
    ) -> Mapped {
        let mapping = self.mapping;
        for (k, fixed) in mapping.defaults.iter().enumerate() {
            apply_fixed(&mut work, fixed, WrittenBy::Default, k, false);
        }
        for (k, fixed) in mapping.constants.iter().enumerate() {
            apply_fixed(&mut work, fixed, WrittenBy::Constant, k, true);
        }
        if !work.record.is_object() {
            work.record = Value::Object(Map::new());
        }
        let columns = SourceColumns::new(
            writers,
            work.provenance
                .iter()
                .map(|p| (self.writer_index(p), p.index))
                .collect(),
        );
        let kind = mapping.kind;
        let mut validation = match validate_record_bounded(kind, &work.record, MAX_ROW_ERRORS) {
            Ok(()) => Vec::new(),
            Err(e) => e.errors,
        };
        // The node assigns these to a new record; a historical record's number and date travel
        // beside it, to the node's import of historical records.
        let (registration_no, registration_date) = match work.record.as_object_mut() {
            Some(map) if kind == RecordKind::Achievement => {
                let mut text =
                    |key: &str| map.remove(key).and_then(|v| v.as_str().map(str::to_owned));
                (text("registration_no"), text("registration_date"))
            }
            _ => (None, None),
        };
        validation.retain(|e| !work.covered(&e.pointer));
        for e in validation {
            let (column, missing) = self.column_for(&columns, header, &e.pointer);
            let (zh, en) = messages::describe(
                kind,
                &work.record,
                &e,
                column.as_deref(),
                missing,
                registration_no.as_deref(),
            );
            work.error(column, e.pointer.clone(), zh, en);
        }
        if let (None, Some(date)) = (&registration_no, &registration_date)
            && !work.has_error_at("/registration_no")
        {
            let pointer = "/registration_date";
            let (zh, en) = messages::date_without_number(date);
            let column = columns.column_of(pointer).map(str::to_owned);
            work.error(column, pointer.to_owned(), zh, en);
        }
        if !work.errors.is_empty() {
            work.errors.truncate(MAX_ROW_ERRORS);
            return Err(work.errors);
        }
        let source_key = self.source_key(&work.record, registration_no.as_deref());
        Ok(MappedRecord {
            origin: work.origin.clone(),
            kind,
            source_key,
            record: work.record,
            registration_no,
            registration_date,
            columns,
        })
    }

    /// The column a validation error's pointer came from, and whether that column is missing
    /// from the header.
    fn column_for(
        &self,
        columns: &SourceColumns,
        header: Option<&Header>,
        pointer: &str,
    ) -> (Option<String>, bool) {
        let fields = &self.mapping.fields;
        let label_of = |f: usize| -> (Option<String>, bool) {
            let field = &fields[f];
            match header {
                Some(h) => match h.column_text(f) {
                    Some(t) => (Some(t.to_owned()), false),
                    None => (Some(field.label().to_owned()), !field.columns.is_empty()),
                },
                None => (
                    Some(field.path().unwrap_or(field.label()).to_owned()),
                    false,
                ),
            }
        };
        // The value itself, a value containing it, or the field that would have written it
        // (a missing value).
        match columns.writer_at(pointer) {
            Some(w) if w < fields.len() => return label_of(w),
            Some(_) => return (columns.column_of(pointer).map(str::to_owned), false),
            None => {}
        }
        // A missing object: the field that gives its required member (成果密级 for /secrecy).
        let kind = self.mapping.kind;
        let under = |field: &&Field| {
            field.target.text.starts_with(&format!("{pointer}/")) && !field.target.is_list()
        };
        if let Some(field) = fields
            .iter()
            .filter(under)
            .find(|field| target::schema_requires(kind, &field.target.steps))
            .or_else(|| fields.iter().find(under))
        {
            return label_of(field.index);
        }
        // Values under it, all from one field.
        let under: BTreeSet<usize> = columns
            .written()
            .filter(|(at, w)| *w < fields.len() && at.starts_with(&format!("{pointer}/")))
            .map(|(_, w)| w)
            .collect();
        if under.len() == 1 {
            return label_of(*under.iter().next().expect("one"));
        }
        (None, false)
    }

    /// The row's identity: the mapping's name and the first identity alternative whose values
    /// are all present, normalised (half-width, no white space, ASCII lower case; `|` and `%`
    /// escaped), joined with `|` — `name:v1|v2`. Without one: `name:#` and the first 32 hex
    /// digits of the SHA-256 of the record's canonical JSON, so the same content is the same
    /// key, wherever the row moves.
    fn source_key(&self, record: &Value, registration_no: Option<&str>) -> String {
        let name = &self.mapping.name;
        for alternative in &self.mapping.identity {
            let values: Option<Vec<String>> = alternative
                .iter()
                .map(|p| {
                    let value = if p.text == "/registration_no" {
                        registration_no.map(|s| Value::String(s.to_owned()))
                    } else {
                        target::get(record, &p.steps).cloned()
                    }?;
                    let text = match value {
                        Value::String(s) => s,
                        other => String::from_utf8(canonical_value(&other)).unwrap_or_default(),
                    };
                    let normal: String = to_halfwidth(&text)
                        .chars()
                        .filter(|c| !c.is_whitespace())
                        .map(|c| c.to_ascii_lowercase())
                        .collect::<String>()
                        .replace('%', "%25")
                        .replace('|', "%7C");
                    (!normal.is_empty()).then_some(normal)
                })
                .collect();
            if let Some(values) = values {
                return format!("{name}:{}", values.join("|"));
            }
        }
        let digest = sha256_hex(&canonical_value(record));
        format!("{name}:#{}", &digest[..32])
    }
}

impl<'r> RowWork<'r> {
    fn new(origin: &'r Origin, explain: Option<&'r mut Vec<Explained>>) -> RowWork<'r> {
        RowWork {
            record: Value::Object(Map::new()),
            provenance: Vec::with_capacity(64),
            errors: Vec::new(),
            errored: Vec::new(),
            explain,
            origin,
        }
    }

    fn error(&mut self, column: Option<String>, pointer: String, zh: String, en: String) {
        self.errored.push(pointer.clone());
        self.errors.push(RowError {
            origin: self.origin.clone(),
            column,
            pointer,
            message_zh: zh,
            message_en: en,
        });
    }

    fn convert_error(
        &mut self,
        field: &Field,
        index: Option<usize>,
        label: &str,
        e: convert::ConvertError,
    ) {
        let pointer = match (index, field.target.is_list()) {
            (Some(i), true) => field.target.concrete(Some(i)),
            (Some(i), false) if field.whole_list => format!("{}/{i}", field.target.text),
            _ => field.target.concrete(Some(field.first_index)),
        };
        self.error(Some(label.to_owned()), pointer, e.zh, e.en);
    }

    fn has_error_at(&self, pointer: &str) -> bool {
        self.errored.iter().any(|p| p == pointer)
    }

    /// Whether a validation error at `pointer` is already explained by an error of the mapping.
    fn covered(&self, pointer: &str) -> bool {
        self.errored.iter().any(|p| {
            pointer == p
                || pointer.starts_with(&format!("{p}/"))
                || (!pointer.is_empty() && p.starts_with(&format!("{pointer}/")))
        })
    }

    fn write(
        &mut self,
        f: usize,
        field: &Field,
        index: Option<usize>,
        value: Value,
        label: &str,
        shown: &str,
    ) {
        let explained = self.explain.is_some().then(|| value.clone());
        match target::set(&mut self.record, &field.target.steps, index, value) {
            Ok(taken) => {
                let p = Provenance {
                    from: WrittenBy::Field(f),
                    index: taken.or(index),
                    fixed: 0,
                };
                self.provenance.push(p);
                if let (Some(lines), Some(value)) = (self.explain.as_deref_mut(), explained) {
                    lines.push(Explained {
                        column: label.to_owned(),
                        source: shown.to_owned(),
                        pointer: field.target.concrete(p.index),
                        value,
                    });
                }
            }
            Err(conflict) => {
                let pointer = field.target.concrete(index);
                self.error(
                    Some(label.to_owned()),
                    pointer.clone(),
                    format!("无法写入 {pointer}：{} 处已有其他类型的值（映射文件有冲突）", conflict.at),
                    format!("cannot write {pointer}: {} already holds another kind of value (the mapping conflicts)", conflict.at),
                );
            }
        }
    }
}

/// Writes a `[defaults]` (only where nothing is) or `[constants]` (always) value.
fn apply_fixed(work: &mut RowWork<'_>, fixed: &Fixed, from: WrittenBy, k: usize, overwrite: bool) {
    let indexes: Vec<Option<usize>> = match target::split_each(&fixed.target.steps) {
        Some((before, _)) => {
            let len = target::get(&work.record, before)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            (0..len).map(Some).collect()
        }
        None => vec![None],
    };
    for index in indexes {
        let concrete: Vec<Step> = fixed
            .target
            .steps
            .iter()
            .map(|s| match (s, index) {
                (Step::Each, Some(i)) => Step::Index(i),
                _ => s.clone(),
            })
            .collect();
        if !overwrite && target::get(&work.record, &concrete).is_some() {
            continue;
        }
        if target::set(&mut work.record, &concrete, None, fixed.value.clone()).is_ok() {
            work.provenance.push(Provenance {
                from,
                index,
                fixed: k,
            });
            if let Some(lines) = work.explain.as_deref_mut() {
                lines.push(Explained {
                    column: if from == WrittenBy::Default {
                        "(默认值)"
                    } else {
                        "(常量)"
                    }
                    .to_owned(),
                    source: String::new(),
                    pointer: fixed.target.concrete(index),
                    value: fixed.value.clone(),
                });
            }
        }
    }
}

/// Values at a tree path: `*` takes every element; a single value where a list is expected is
/// a list of one; a member name over an array is taken in every element.
fn lookup<'v>(value: &'v Value, steps: &[Step], out: &mut Vec<&'v Value>) {
    let Some((step, rest)) = steps.split_first() else {
        if !value.is_null() {
            out.push(value);
        }
        return;
    };
    match (step, value) {
        // One value per element, an element without it a hole (null), so that parallel
        // `*` paths (/完成人/*/姓名, /完成人/*/职称) stay aligned by element.
        (Step::Each, Value::Array(items)) => {
            for v in items {
                let before = out.len();
                lookup(v, rest, out);
                if out.len() == before {
                    out.push(&Value::Null);
                }
            }
        }
        (Step::Each, other) => lookup(other, rest, out),
        (Step::Index(i), Value::Array(items)) => {
            if let Some(v) = items.get(*i) {
                lookup(v, rest, out);
            }
        }
        (Step::Index(0), other) => lookup(other, rest, out),
        (Step::Key(k), Value::Object(map)) => {
            if let Some(v) = map.get(k) {
                lookup(v, rest, out);
            }
        }
        (Step::Key(_), Value::Array(items)) => items.iter().for_each(|v| lookup(v, steps, out)),
        _ => {}
    }
}

/// A tree value as a cell: text, number, boolean; an element with attributes by its `$text`.
fn leaf(value: &Value) -> Cell {
    match value {
        Value::Null => Cell::Empty,
        Value::String(s) => Cell::Text(s.clone()),
        Value::Number(n) => n.as_f64().map_or(Cell::Empty, Cell::Number),
        Value::Bool(b) => Cell::Bool(*b),
        Value::Object(map) => match map.get("$text") {
            Some(text) => leaf(text),
            None => Cell::Text(value.to_string()),
        },
        Value::Array(_) => Cell::Text(value.to_string()),
    }
}

/// The raw value of a tree lookup: one value, or a list (an array, or a `*` path).
fn raw_of(found: &[&Value], list: bool) -> Raw<'static> {
    let mut cells = Vec::new();
    for v in found {
        match v {
            Value::Array(items) => cells.extend(items.iter().map(leaf)),
            other => cells.push(leaf(other)),
        }
    }
    let array = found.iter().any(|v| v.is_array());
    match cells.len() {
        0 => Raw::Missing,
        1 if !list && !array => Raw::One(Cow::Owned(cells.pop().expect("one"))),
        _ => Raw::Many(cells),
    }
}

/// The paths of a tree's leaves, array indexes written `*`.
fn leaf_paths(value: &Value, at: &mut String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.contains_key("$text") || map.len() > 1 => {
            for (k, v) in map {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                leaf_paths(v, at, out);
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            let len = at.len();
            at.push_str("/*");
            let mut seen = Vec::new();
            for item in items {
                leaf_paths(item, at, &mut seen);
            }
            at.truncate(len);
            for p in seen {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        _ => {
            if !out.contains(at) {
                out.push(at.clone());
            }
        }
    }
}

/// Whether a field's path covers a leaf path (indexes and `*` alike).
fn covers(path: &str, leaf: &str) -> bool {
    let norm = |p: &str| -> String {
        p.split('/')
            .map(|s| {
                if s == "*" || s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
                    "*"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let (p, l) = (norm(path), norm(leaf));
    // A member over an array is read in every element.
    let l_flat = l.replace("/*", "");
    let p_flat = p.replace("/*", "");
    l == p
        || l.starts_with(&format!("{p}/"))
        || l_flat == p_flat
        || l_flat.starts_with(&format!("{p_flat}/"))
}
