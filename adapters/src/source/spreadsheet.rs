//! Workbooks — XLSX (and XLSM), XLS and ODS — read with `calamine`: one [`RowData::Cells`] per
//! physical row of each chosen sheet.
//!
//! What a row holds, and why:
//! - Cells sit at their column's index (column A is 0) whatever cell the sheet's used range
//!   starts at, and [`Origin::row`] is the row number Excel shows (from 1): an error report
//!   must send a person to the right cell. A row runs from column A to its last non-empty cell
//!   (the mapping reads a missing cell as empty).
//! - A merged region's value (its top-left cell's) stands in every cell it covers: a real 登记表
//!   merges a completing institution over the rows of its completers, or a header over two
//!   columns, and the mapping must see the value where it reads.
//! - Types as the sheet has them: a date-formatted cell is [`Cell::DateSerial`] (Excel's serial,
//!   days since 1899-12-30; a workbook on the 1904 calendar is converted), a number is
//!   [`Cell::Number`] (also a duration), text is [`Cell::Text`] as stored (no trimming: the
//!   mapping decides what spaces and full-width digits mean), text that is only white space is
//!   [`Cell::Empty`], an error cell is its code as text (`#N/A`) so that a refusal shows it.
//! - Rows with no non-empty cell are not yielded (see the module [`super`]).
//! - Sheets: those named in the options, in that order; by default every visible worksheet in
//!   the workbook's order (a hidden sheet of a form holds its drop-down lists, not records).
//!
//! The format is the one the file's first bytes show, whatever its name says (an XLSX file
//! named `.xls` is read as XLSX); an HTML table saved as `.xls` is refused with what to do.
//!
//! Streaming: an XLSX sheet is read cell by cell on a reader thread and handed over in batches
//! of rows through a bounded channel, so memory holds the shared strings and a few batches, not
//! the sheet, and reading overlaps mapping on a second core. XLSX is read by `super::xlsx`
//! (not calamine: see there why), which first finds the sheet's merged regions (written after
//! the cells) by searching the inflated sheet rather than parsing it. XLS and ODS sheets are
//! loaded one at a time by calamine (it has no cell stream for them); ODS merged regions are
//! read from the file's `content.xml` (calamine does not report them).
//!
//! What it may not touch: headers, titles or note rows — they are rows like the others, and
//! the mapping finds its header.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use calamine::{
    Data, Dimensions, ExcelDateTime, Ods, Range, Reader, Sheet, SheetType, SheetVisible, Xls,
};
use quick_xml::events::{BytesStart, Event};

use super::xlsx::Package;
use super::{Format, RowIter, SheetRef, SourceError};
use crate::row::{Cell, Origin, RowData, SourceRow};

/// Rows handed from the XLSX reader thread at a time.
const BATCH_ROWS: usize = 256;
/// Batches the XLSX reader thread may have ready ahead of the consumer.
const BATCHES_AHEAD: usize = 4;

/// Opens a workbook of `format` and returns the rows of the chosen `sheets` (all visible
/// worksheets when empty). Fails here when the file is not such a workbook or a named sheet
/// is missing.
pub fn open(path: &Path, format: Format, sheets: &[SheetRef]) -> Result<RowIter, SourceError> {
    let file_name = path.display().to_string();
    let workbook_error = |message: String| SourceError::Workbook {
        file: file_name.clone(),
        sheet: None,
        message,
    };
    let mut input = BufReader::new(File::open(path).map_err(|source| SourceError::Io {
        file: file_name.clone(),
        source,
    })?);
    let format = match sniff_workbook(&mut input) {
        Ok(Ok(found)) if format == Format::Ods && found == Format::Xlsx => format,
        Ok(Ok(found)) => found,
        Ok(Err(message)) => return Err(workbook_error(message)),
        Err(source) => {
            return Err(SourceError::Io {
                file: file_name,
                source,
            });
        }
    };
    match format {
        Format::Xlsx => {
            let package = Package::open(input.into_inner()).map_err(workbook_error)?;
            let chosen = choose_sheets(&file_name, &package.sheets(), sheets)?;
            Ok(Box::new(XlsxRows::spawn(package, file_name, chosen)))
        }
        Format::Xls => {
            let workbook = Xls::new(input).map_err(|e| workbook_error(e.to_string()))?;
            let chosen = choose_sheets(&file_name, workbook.sheets_metadata(), sheets)?;
            Ok(Box::new(LoadedRows::new(
                LoadedBook::Xls(workbook),
                file_name,
                chosen,
            )))
        }
        Format::Ods => {
            let workbook = Ods::new(input).map_err(|e| workbook_error(e.to_string()))?;
            let chosen = choose_sheets(&file_name, workbook.sheets_metadata(), sheets)?;
            let merges = ods_merged_regions(path).map_err(workbook_error)?;
            Ok(Box::new(LoadedRows::new(
                LoadedBook::Ods(workbook, merges),
                file_name,
                chosen,
            )))
        }
        other => Err(SourceError::Options {
            message: format!("{file_name}: {other} is not a workbook format"),
        }),
    }
}

/// The workbook format the file's first bytes show — whatever its name says: systems export
/// XLSX files named `.xls`, and HTML tables named `.xls`. `Err` says what the file is instead.
fn sniff_workbook(input: &mut BufReader<File>) -> std::io::Result<Result<Format, String>> {
    use std::io::BufRead;
    let start = input.fill_buf()?;
    const OLE: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    Ok(if start.starts_with(OLE) {
        Ok(Format::Xls)
    } else if start.starts_with(b"PK\x03\x04") {
        // An OpenDocument file's first entry is its `mimetype` (the name starts at byte 30).
        Ok(if start.get(30..38) == Some(b"mimetype") {
            Format::Ods
        } else {
            Format::Xlsx
        })
    } else {
        let text = String::from_utf8_lossy(&start[..start.len().min(512)]);
        let text = text.trim_start_matches('\u{FEFF}').trim_start();
        Err(if text.starts_with('<') {
            "it is not a workbook but an HTML or XML page saved under a workbook's name (some systems export tables so); open it in Excel or WPS and save it as .xlsx, or export CSV".to_owned()
        } else {
            "it is not an XLSX, XLS or ODS workbook (it does not start as one); if it is a CSV or text export, name it .csv or give format = \"csv\"".to_owned()
        })
    })
}

/// The names of the sheets to read, in order.
fn choose_sheets(
    file: &str,
    metadata: &[Sheet],
    wanted: &[SheetRef],
) -> Result<Vec<String>, SourceError> {
    if wanted.is_empty() {
        return Ok(metadata
            .iter()
            .filter(|s| s.visible == SheetVisible::Visible && s.typ == SheetType::WorkSheet)
            .map(|s| s.name.clone())
            .collect());
    }
    wanted
        .iter()
        .map(|want| {
            let found = match want {
                SheetRef::Name(name) => metadata.iter().find(|s| &s.name == name),
                SheetRef::Position(n) => n.checked_sub(1).and_then(|i| metadata.get(i)),
            };
            found
                .map(|s| s.name.clone())
                .ok_or_else(|| SourceError::SheetNotFound {
                    file: file.to_owned(),
                    wanted: want.to_string(),
                    available: metadata.iter().map(|s| s.name.clone()).collect(),
                })
        })
        .collect()
}

/// Builds a sheet's rows from its non-empty cells, given in row order: fills merged regions,
/// drops rows with nothing in them, numbers rows as the sheet does.
struct SheetAssembler {
    file: String,
    sheet: String,
    merges: MergeFill,
    /// The row being gathered (0-based) and its cells.
    row: Option<u32>,
    cells: Vec<Cell>,
    out: VecDeque<SourceRow>,
}

impl SheetAssembler {
    fn new(file: String, sheet: String, merges: Vec<Dimensions>) -> SheetAssembler {
        SheetAssembler {
            file,
            sheet,
            merges: MergeFill::new(merges),
            row: None,
            cells: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// A cell at 0-based (`row`, `column`); rows must not go backwards.
    fn cell(&mut self, row: u32, column: u32, cell: Cell) {
        if cell == Cell::Empty {
            return;
        }
        if self.row != Some(row) {
            let next = match self.row {
                Some(previous) => {
                    self.end_row(previous);
                    previous + 1
                }
                None => 0,
            };
            self.gap(next, row);
            self.row = Some(row);
        }
        let column = column as usize;
        if column >= self.cells.len() {
            self.cells.resize(column + 1, Cell::Empty);
        }
        self.cells[column] = cell;
    }

    /// The sheet has no more cells.
    fn finish(&mut self) {
        let next = match self.row.take() {
            Some(last) => {
                self.end_row(last);
                last + 1
            }
            None => 0,
        };
        self.gap(next, u32::MAX);
    }

    fn end_row(&mut self, row: u32) {
        // The next row is likely as wide as this one: one allocation for its cells.
        let next = Vec::with_capacity(self.cells.len());
        let mut cells = std::mem::replace(&mut self.cells, next);
        self.merges.apply(row, &mut cells);
        self.emit(row, cells);
    }

    /// Rows `from..to` have no cells of their own: only merged regions may fill them.
    fn gap(&mut self, from: u32, to: u32) {
        let mut row = from;
        while row < to && self.merges.has_active() {
            let mut cells = Vec::new();
            self.merges.apply(row, &mut cells);
            self.emit(row, cells);
            row += 1;
        }
    }

    fn emit(&mut self, row: u32, mut cells: Vec<Cell>) {
        while cells.last() == Some(&Cell::Empty) {
            cells.pop();
        }
        if cells.is_empty() {
            return;
        }
        self.out.push_back(SourceRow {
            origin: Origin {
                file: self.file.clone(),
                sheet: Some(self.sheet.clone()),
                row: u64::from(row) + 1,
            },
            data: RowData::Cells(cells),
        });
    }
}

/// Merged regions of a sheet, applied row by row in order.
struct MergeFill {
    /// Regions not yet reached, latest start row first (popped from the end).
    pending: Vec<Dimensions>,
    /// Regions the current row may be in, with their value.
    active: Vec<(Dimensions, Cell)>,
}

impl MergeFill {
    fn new(mut regions: Vec<Dimensions>) -> MergeFill {
        regions.retain(|d| d.start.0 <= d.end.0 && d.start.1 <= d.end.1 && d.len() > 1);
        regions.sort_by_key(|d| std::cmp::Reverse(d.start));
        MergeFill {
            pending: regions,
            active: Vec::new(),
        }
    }

    fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// Fills `cells`, the cells of 0-based `row`, from the regions covering it. A region
    /// takes its value from its top-left cell when its first row is applied; a region whose
    /// first row had no cells has nothing to fill.
    fn apply(&mut self, row: u32, cells: &mut Vec<Cell>) {
        while let Some(region) = self.pending.last().copied() {
            if region.start.0 > row {
                break;
            }
            self.pending.pop();
            let value = if region.start.0 == row {
                cells
                    .get(region.start.1 as usize)
                    .cloned()
                    .unwrap_or(Cell::Empty)
            } else {
                Cell::Empty
            };
            if value != Cell::Empty && region.end.0 >= row {
                self.active.push((region, value));
            }
        }
        self.active.retain(|(region, _)| region.end.0 >= row);
        for (region, value) in &self.active {
            let last = region.end.1 as usize;
            if last >= cells.len() {
                cells.resize(last + 1, Cell::Empty);
            }
            for cell in &mut cells[region.start.1 as usize..=last] {
                cell.clone_from(value);
            }
        }
    }
}

/// A cell of a loaded (XLS, ODS) sheet.
fn cell_of(data: &Data) -> Cell {
    match data {
        Data::Empty => Cell::Empty,
        Data::String(text) => text_cell(text),
        Data::Float(number) => Cell::Number(*number),
        Data::Int(number) => Cell::Number(*number as f64),
        Data::Bool(value) => Cell::Bool(*value),
        Data::DateTime(datetime) => datetime_cell(datetime),
        Data::DateTimeIso(iso) => {
            iso_date_serial(iso).map_or_else(|| text_cell(iso), Cell::DateSerial)
        }
        Data::DurationIso(iso) => text_cell(iso),
        Data::Error(error) => Cell::Text(error.to_string()),
    }
}

fn text_cell(text: &str) -> Cell {
    if text.trim().is_empty() {
        Cell::Empty
    } else {
        Cell::Text(text.to_owned())
    }
}

/// A date cell as a serial on the 1900 calendar (a 1904 workbook's serial is converted); a
/// duration as its number of days.
fn datetime_cell(datetime: &ExcelDateTime) -> Cell {
    if datetime.is_duration() {
        return Cell::Number(datetime.as_f64());
    }
    let (year, month, day, hour, minute, second, milli) = datetime.to_ymd_hms_milli();
    let days = days_since_1899_12_30(i64::from(year), u32::from(month), u32::from(day));
    let millis = ((u64::from(hour) * 60 + u64::from(minute)) * 60 + u64::from(second)) * 1000
        + u64::from(milli);
    Cell::DateSerial(days as f64 + millis as f64 / 86_400_000.0)
}

/// `2019-03-01` or `2019-03-01T08:30:00(.5)` (an ODS date cell) as a serial.
pub(super) fn iso_date_serial(iso: &str) -> Option<f64> {
    let (date, time) = match iso.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (iso, None),
    };
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut serial = days_since_1899_12_30(year, month, day) as f64;
    if let Some(time) = time {
        let mut parts = time.splitn(3, ':');
        let hour: f64 = parts.next()?.parse().ok()?;
        let minute: f64 = parts.next().unwrap_or("0").parse().ok()?;
        let second: f64 = parts.next().unwrap_or("0").parse().ok()?;
        serial += (hour * 3600.0 + minute * 60.0 + second) / 86_400.0;
    }
    Some(serial)
}

/// Days from 1899-12-30 (Excel's day 0) to a date of the proleptic Gregorian calendar.
fn days_since_1899_12_30(year: i64, month: u32, day: u32) -> i64 {
    // Days since 1970-01-01, by H. Hinnant's civil calendar algorithm.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let unix_days = era * 146_097 + day_of_era - 719_468;
    unix_days + 25_569
}

/// XLSX rows, read on a thread of their own: reading overlaps mapping, and the cell stream
/// borrows the package, so it cannot live in an iterator beside it.
struct XlsxRows {
    batches: Receiver<Result<Vec<SourceRow>, SourceError>>,
    current: std::vec::IntoIter<SourceRow>,
    reader: Option<JoinHandle<()>>,
    file: String,
}

impl XlsxRows {
    fn spawn(workbook: Package, file: String, sheets: Vec<String>) -> XlsxRows {
        let (sender, batches) = sync_channel(BATCHES_AHEAD);
        let thread_file = file.clone();
        let reader = std::thread::Builder::new()
            .name("rix-xlsx-reader".to_owned())
            .spawn(move || {
                let mut workbook = workbook;
                for sheet in sheets {
                    let sent = read_xlsx_sheet(&mut workbook, &thread_file, &sheet, &sender);
                    if !sent {
                        return;
                    }
                }
            });
        match reader {
            Ok(handle) => XlsxRows {
                batches,
                current: Vec::new().into_iter(),
                reader: Some(handle),
                file,
            },
            Err(error) => {
                let (sender, batches) = sync_channel(1);
                let _ = sender.send(Err(SourceError::Workbook {
                    file: file.clone(),
                    sheet: None,
                    message: format!("cannot start a reader thread: {error}"),
                }));
                XlsxRows {
                    batches,
                    current: Vec::new().into_iter(),
                    reader: None,
                    file,
                }
            }
        }
    }
}

/// Streams one sheet into `sender`; false when the reading must stop (an error was sent, or
/// nobody is receiving any more).
fn read_xlsx_sheet(
    workbook: &mut Package,
    file: &str,
    sheet: &str,
    sender: &SyncSender<Result<Vec<SourceRow>, SourceError>>,
) -> bool {
    let failed = |message: String| {
        let _ = sender.send(Err(SourceError::Workbook {
            file: file.to_owned(),
            sheet: Some(sheet.to_owned()),
            message,
        }));
        false
    };
    let merges = match workbook.merged_regions(sheet) {
        Ok(merges) => merges,
        Err(error) => return failed(error),
    };
    let mut assembler = SheetAssembler::new(file.to_owned(), sheet.to_owned(), merges);
    let mut receiving = true;
    let read = workbook.cells(sheet, |row, column, cell| {
        assembler.cell(row, column, cell);
        if assembler.out.len() >= BATCH_ROWS {
            let batch: Vec<SourceRow> = assembler.out.drain(..).collect();
            receiving = sender.send(Ok(batch)).is_ok();
        }
        receiving
    });
    if let Err(error) = read {
        return failed(error);
    }
    if !receiving {
        return false;
    }
    assembler.finish();
    let batch: Vec<SourceRow> = assembler.out.drain(..).collect();
    batch.is_empty() || sender.send(Ok(batch)).is_ok()
}

impl Iterator for XlsxRows {
    type Item = Result<SourceRow, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(Ok(row));
            }
            match self.batches.recv() {
                Ok(Ok(batch)) => self.current = batch.into_iter(),
                Ok(Err(error)) => {
                    self.reader.take();
                    return Some(Err(error));
                }
                Err(_) => {
                    // The reader is done; if it died, say so rather than end quietly.
                    let reader = self.reader.take()?;
                    return match reader.join() {
                        Ok(()) => None,
                        Err(_) => Some(Err(SourceError::Workbook {
                            file: self.file.clone(),
                            sheet: None,
                            message: "the workbook reader stopped unexpectedly (a bug: please report it with the file)".to_owned(),
                        })),
                    };
                }
            }
        }
    }
}

/// A workbook whose sheets calamine loads whole.
enum LoadedBook {
    Xls(Xls<BufReader<File>>),
    Ods(Ods<BufReader<File>>, HashMap<String, Vec<Dimensions>>),
}

impl LoadedBook {
    fn sheet(&mut self, name: &str) -> Result<(Range<Data>, Vec<Dimensions>), String> {
        match self {
            LoadedBook::Xls(workbook) => {
                let range = workbook.worksheet_range(name).map_err(|e| e.to_string())?;
                let merges = workbook
                    .merge_cells_by_sheet_name(name)
                    .map_err(|e| e.to_string())?;
                Ok((range, merges))
            }
            LoadedBook::Ods(workbook, merges) => {
                let range = workbook.worksheet_range(name).map_err(|e| e.to_string())?;
                Ok((range, merges.remove(name).unwrap_or_default()))
            }
        }
    }
}

/// XLS and ODS rows: a sheet at a time.
struct LoadedRows {
    book: LoadedBook,
    file: String,
    sheets: VecDeque<String>,
    current: Option<LoadedSheet>,
    done: bool,
}

struct LoadedSheet {
    range: Range<Data>,
    /// The next row to read, relative to the range's start.
    next_row: usize,
    assembler: SheetAssembler,
    finished: bool,
}

impl LoadedRows {
    fn new(book: LoadedBook, file: String, sheets: Vec<String>) -> LoadedRows {
        LoadedRows {
            book,
            file,
            sheets: sheets.into(),
            current: None,
            done: false,
        }
    }
}

impl Iterator for LoadedRows {
    type Item = Result<SourceRow, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some(sheet) = &mut self.current else {
                let Some(name) = self.sheets.pop_front() else {
                    self.done = true;
                    break;
                };
                match self.book.sheet(&name) {
                    Ok((range, merges)) => {
                        self.current = Some(LoadedSheet {
                            range,
                            next_row: 0,
                            assembler: SheetAssembler::new(self.file.clone(), name, merges),
                            finished: false,
                        });
                    }
                    Err(message) => {
                        self.done = true;
                        return Some(Err(SourceError::Workbook {
                            file: self.file.clone(),
                            sheet: Some(name),
                            message,
                        }));
                    }
                }
                continue;
            };
            if let Some(row) = sheet.assembler.out.pop_front() {
                return Some(Ok(row));
            }
            if sheet.finished {
                self.current = None;
                continue;
            }
            sheet.read_row();
        }
        None
    }
}

impl LoadedSheet {
    /// Feeds the next row of the range to the assembler (or finishes the sheet).
    fn read_row(&mut self) {
        let Some((start_row, start_column)) = self.range.start() else {
            self.assembler.finish();
            self.finished = true;
            return;
        };
        if self.next_row >= self.range.height() {
            self.assembler.finish();
            self.finished = true;
            return;
        }
        let relative = self.next_row;
        self.next_row += 1;
        let row = start_row + relative as u32;
        for column in 0..self.range.width() {
            if let Some(data) = self.range.get((relative, column)) {
                let cell = cell_of(data);
                self.assembler.cell(row, start_column + column as u32, cell);
            }
        }
    }
}

/// The merged regions of every sheet of an ODS file, from its `content.xml` (a cell with
/// `table:number-columns-spanned` / `table:number-rows-spanned`), by sheet name.
fn ods_merged_regions(path: &Path) -> Result<HashMap<String, Vec<Dimensions>>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| e.to_string())?;
    let content = archive
        .by_name("content.xml")
        .map_err(|e| format!("content.xml: {e}"))?;
    let mut reader = quick_xml::Reader::from_reader(BufReader::new(content));
    let mut buf = Vec::new();
    let mut regions: HashMap<String, Vec<Dimensions>> = HashMap::new();
    let mut table: Option<String> = None;
    let (mut row, mut column, mut rows_repeated) = (0u32, 0u32, 1u32);
    loop {
        buf.clear();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("content.xml: {e}"))?;
        let (start, is_empty) = match &event {
            Event::Start(start) => (start, false),
            Event::Empty(start) => (start, true),
            Event::End(end) => {
                match end.name().as_ref() {
                    "table:table" => table = None,
                    "table:table-row" => row = row.saturating_add(rows_repeated),
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match start.name().as_ref() {
            "table:table" => {
                table = attribute(start, "table:name");
                row = 0;
            }
            "table:table-row" => {
                rows_repeated = number_attribute(start, "table:number-rows-repeated");
                column = 0;
                if is_empty {
                    row = row.saturating_add(rows_repeated);
                }
            }
            name @ ("table:table-cell" | "table:covered-table-cell") => {
                let repeated = number_attribute(start, "table:number-columns-repeated");
                if name == "table:table-cell" {
                    let columns = number_attribute(start, "table:number-columns-spanned");
                    let rows = number_attribute(start, "table:number-rows-spanned");
                    if let Some(table) = &table
                        && (columns > 1 || rows > 1)
                    {
                        regions
                            .entry(table.clone())
                            .or_default()
                            .push(Dimensions::new(
                                (row, column),
                                (row + rows - 1, column + columns - 1),
                            ));
                    }
                }
                column = column.saturating_add(repeated);
            }
            _ => {}
        }
    }
    Ok(regions)
}

fn attribute(start: &BytesStart<'_>, name: &str) -> Option<String> {
    let attribute = start.try_get_attribute(name).ok()??;
    Some(attribute.value.into_owned())
}

fn number_attribute(start: &BytesStart<'_>, name: &str) -> u32 {
    attribute(start, name)
        .and_then(|value| value.trim().parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_count_days_from_1899_12_30() {
        assert_eq!(days_since_1899_12_30(1899, 12, 30), 0);
        assert_eq!(days_since_1899_12_30(1900, 3, 1), 61);
        assert_eq!(days_since_1899_12_30(2019, 3, 1), 43525);
        assert_eq!(days_since_1899_12_30(2024, 2, 29), 45351);
        assert_eq!(iso_date_serial("2019-03-01"), Some(43525.0));
        assert_eq!(iso_date_serial("2019-03-01T12:00:00"), Some(43525.5));
        assert_eq!(iso_date_serial("2019年3月"), None);
    }

    #[test]
    fn merged_regions_fill_covered_cells_and_rows_without_cells() {
        let text = |s: &str| Cell::Text(s.to_owned());
        let mut assembler = SheetAssembler::new(
            "f.xlsx".into(),
            "S".into(),
            vec![
                // B2:C2 across, A3:A5 down (rows 4 and 5 have no cells of their own).
                Dimensions::new((1, 1), (1, 2)),
                Dimensions::new((2, 0), (4, 0)),
            ],
        );
        assembler.cell(1, 1, text("完成单位"));
        assembler.cell(2, 0, text("云南大学"));
        assembler.cell(2, 1, text("张三"));
        assembler.finish();
        let rows: Vec<(u64, Vec<Cell>)> = assembler
            .out
            .into_iter()
            .map(|r| match r.data {
                RowData::Cells(cells) => (r.origin.row, cells),
                RowData::Tree(_) => unreachable!(),
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (2, vec![Cell::Empty, text("完成单位"), text("完成单位")]),
                (3, vec![text("云南大学"), text("张三")]),
                (4, vec![text("云南大学")]),
                (5, vec![text("云南大学")]),
            ]
        );
    }
}
