//! The XLSX package read by hand: the workbook's sheet list, its date styles, its shared strings,
//! and a sheet's cells and merged regions, streamed from the zip without building a document.
//!
//! Why not calamine here (it still reads XLS and ODS): importing a 登记表 workbook must map and
//! validate ≥ 20,000 rows per CPU second (DESIGN §7), and calamine's generic XML events, its
//! per-cell attribute decoding and its merged-region pass (a second full XML parse of the
//! sheet, needed before streaming because `<mergeCells>` is written after the cells) cost
//! three times what the mapping does. A sheet's XML is regular: markup is found with `memchr`,
//! only the few attributes a cell has are looked at, and the merged regions are found by
//! searching the inflated sheet for `mergeCells` (no parse) — the price of filling merged cells
//! while streaming is now one extra inflation of the sheet.
//!
//! What it keeps from calamine, so that rows do not change with the reader: a `<t>` without
//! `xml:space="preserve"` loses its ASCII white space at both ends, rich-text runs are joined
//! and phonetic runs (`<rPh>`) dropped, `_xHHHH_` escapes are decoded, a cell is a date when
//! its style's number format is a date format (built-in or custom, by the same rules), a
//! duration format gives a number, the 1904 calendar is converted, and prefixed element names
//! (`<x:c>`) are read by their local name.
//!
//! What it may not touch: meaning, as every source (see [`super`]); and it writes nothing.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};

use calamine::{Dimensions, Sheet, SheetType, SheetVisible};
use quick_xml::events::Event;
use zip::ZipArchive;

use crate::row::Cell;

/// Bytes inflated at a time; a markup item longer than this grows the buffer.
const CHUNK: usize = 256 * 1024;

/// An opened XLSX package: what every sheet needs to be read.
pub(super) struct Package {
    zip: ZipArchive<BufReader<File>>,
    /// Every sheet in the workbook's order, with its part name in the zip.
    sheets: Vec<(Sheet, String)>,
    /// Per cell style (`s`): whether its number format shows a date, a duration, or neither.
    styles: Vec<NumberKind>,
    strings: SharedStrings,
    is_1904: bool,
}

/// What a cell style's number format makes of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberKind {
    Plain,
    Date,
    Duration,
}

/// The shared string table: one text buffer and where each string ends in it (no allocation
/// per string: a 登记表 of 100,000 rows has millions).
#[derive(Default)]
struct SharedStrings {
    text: String,
    ends: Vec<usize>,
}

impl SharedStrings {
    fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1],
        };
        Some(&self.text[start..end])
    }
}

impl Package {
    /// Reads the package's structure, styles and shared strings. `Err` is the reason, for a
    /// person (the caller adds the file's name).
    pub(super) fn open(file: File) -> Result<Package, String> {
        let mut zip = ZipArchive::new(BufReader::new(file))
            .map_err(|e| format!("it is not a readable XLSX package ({e})"))?;
        let names = part_names(&zip);
        let root_rels = read_small(&mut zip, &names, "_rels/.rels")?
            .map(|xml| relationships(&xml, ""))
            .transpose()?
            .unwrap_or_default();
        let workbook_part = root_rels
            .iter()
            .find(|r| r.kind.ends_with("/officeDocument"))
            .map_or_else(|| "xl/workbook.xml".to_owned(), |r| r.target.clone());
        let base = workbook_part
            .rsplit_once('/')
            .map_or(String::new(), |(dir, _)| format!("{dir}/"));
        let rels_part = format!("{base}_rels/{}.rels", &workbook_part[base.len()..]);
        let workbook_rels = match read_small(&mut zip, &names, &rels_part)? {
            Some(xml) => relationships(&xml, &base)?,
            None => Vec::new(),
        };
        let Some(workbook_xml) = read_small(&mut zip, &names, &workbook_part)? else {
            return Err(format!(
                "the package has no workbook part ({workbook_part})"
            ));
        };
        let (listed, is_1904) = workbook(&workbook_xml)?;
        let mut sheets = Vec::with_capacity(listed.len());
        for (name, visible, rel_id) in listed {
            let Some(rel) = workbook_rels.iter().find(|r| r.id == rel_id) else {
                continue;
            };
            let typ = match rel.kind.rsplit('/').next().unwrap_or_default() {
                "worksheet" => SheetType::WorkSheet,
                "chartsheet" => SheetType::ChartSheet,
                "dialogsheet" => SheetType::DialogSheet,
                "xlMacrosheet" | "xlIntlMacrosheet" => SheetType::MacroSheet,
                _ => continue,
            };
            sheets.push((Sheet { name, typ, visible }, rel.target.clone()));
        }
        let part_of = |suffix: &str| {
            workbook_rels
                .iter()
                .find(|r| r.kind.ends_with(suffix))
                .map(|r| r.target.clone())
        };
        let styles = match part_of("/styles") {
            Some(part) => match read_small(&mut zip, &names, &part)? {
                Some(xml) => number_kinds(&xml)?,
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        let strings = match part_of("/sharedStrings").and_then(|p| names.get(&p.to_lowercase())) {
            Some(entry) => {
                let entry = zip
                    .by_name(entry)
                    .map_err(|e| format!("the shared strings: {e}"))?;
                // The part's size bounds its text: one allocation, not a doubling series
                // (whose copies cost a tenth of the reading). Pages never written are never
                // resident, so memory is the text's.
                let bound = usize::try_from(entry.size()).unwrap_or(0);
                shared_strings(XmlScan::new(entry), bound)
                    .map_err(|e| format!("the shared strings: {e}"))?
            }
            None => SharedStrings::default(),
        };
        Ok(Package {
            zip,
            sheets,
            styles,
            strings,
            is_1904,
        })
    }

    /// Every sheet, in the workbook's order.
    pub(super) fn sheets(&self) -> Vec<Sheet> {
        self.sheets.iter().map(|(sheet, _)| sheet.clone()).collect()
    }

    /// The merged regions of sheet `name`.
    pub(super) fn merged_regions(&mut self, name: &str) -> Result<Vec<Dimensions>, String> {
        let entry = self.entry_of(name)?;
        let entry = self.zip.by_name(&entry).map_err(|e| e.to_string())?;
        merged_regions(XmlScan::new(entry)).map_err(|e| e.to_string())
    }

    /// Streams the non-empty cells of sheet `name`, in order, to `each` as (0-based row,
    /// 0-based column, cell); `each` returns false to stop.
    pub(super) fn cells(
        &mut self,
        name: &str,
        each: impl FnMut(u32, u32, Cell) -> bool,
    ) -> Result<(), String> {
        let entry = self.entry_of(name)?;
        let entry = self.zip.by_name(&entry).map_err(|e| e.to_string())?;
        let context = Context {
            styles: &self.styles,
            strings: &self.strings,
            is_1904: self.is_1904,
        };
        sheet_cells(XmlScan::new(entry), &context, each).map_err(|e| e.to_string())
    }

    /// The zip entry of sheet `name`.
    fn entry_of(&self, name: &str) -> Result<String, String> {
        let (_, part) = self
            .sheets
            .iter()
            .find(|(sheet, _)| sheet.name == name)
            .ok_or_else(|| format!("the workbook has no sheet \"{name}\""))?;
        let names = part_names(&self.zip);
        names
            .get(&part.to_lowercase())
            .cloned()
            .ok_or_else(|| format!("the sheet's part {part} is missing from the package"))
    }
}

/// The zip's entry names by their lower-cased, `/`-separated form: producers differ in case
/// and a few write `\`, while relationships name parts as the standard spells them.
fn part_names(zip: &ZipArchive<BufReader<File>>) -> HashMap<String, String> {
    zip.file_names()
        .flatten()
        .map(|name| (name.replace('\\', "/").to_lowercase(), name.into_owned()))
        .collect()
}

/// A small part (relationships, workbook, styles) read whole; `None` when the package lacks it.
fn read_small(
    zip: &mut ZipArchive<BufReader<File>>,
    names: &HashMap<String, String>,
    part: &str,
) -> Result<Option<Vec<u8>>, String> {
    let Some(entry) = names.get(&part.trim_start_matches('/').to_lowercase()) else {
        return Ok(None);
    };
    let mut entry = zip.by_name(entry).map_err(|e| format!("{part}: {e}"))?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{part}: {e}"))?;
    Ok(Some(bytes))
}

struct Relationship {
    id: String,
    kind: String,
    /// The part's name in the package, resolved against the source part's folder.
    target: String,
}

fn relationships(xml: &[u8], base: &str) -> Result<Vec<Relationship>, String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "Relationship" => {
                let mut rel = Relationship {
                    id: String::new(),
                    kind: String::new(),
                    target: String::new(),
                };
                let mut external = false;
                for attribute in e.attributes().flatten() {
                    let value = attribute_text(attribute.value.as_bytes())
                        .map_err(|e| format!("relationships: {e}"))?;
                    match attribute.key.local_name().as_ref() {
                        "Id" => rel.id = value,
                        "Type" => rel.kind = value,
                        "Target" => rel.target = value,
                        "TargetMode" => external = value == "External",
                        _ => {}
                    }
                }
                if !external {
                    rel.target = resolve(base, &rel.target);
                    out.push(rel);
                }
            }
            Ok(Event::Eof) => return Ok(out),
            Err(e) => return Err(format!("relationships: {e}")),
            _ => {}
        }
    }
}

/// A relationship target as a part name: absolute (`/xl/…`) as is, else relative to `base`
/// (which ends with `/`), with `..` steps applied.
fn resolve(base: &str, target: &str) -> String {
    let joined = match target.strip_prefix('/') {
        Some(absolute) => absolute.to_owned(),
        None => format!("{base}{target}"),
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// The workbook part: its sheets (name, visibility, relationship id) and its calendar.
type ListedSheet = (String, SheetVisible, String);

fn workbook(xml: &[u8]) -> Result<(Vec<ListedSheet>, bool), String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut sheets = Vec::new();
    let mut is_1904 = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => match e.local_name().as_ref() {
                "workbookPr" => {
                    for attribute in e.attributes().flatten() {
                        if attribute.key.local_name().as_ref() == "date1904" {
                            is_1904 = matches!(attribute.value.as_ref(), "1" | "true");
                        }
                    }
                }
                "sheet" => {
                    let (mut name, mut visible, mut id) =
                        (String::new(), SheetVisible::Visible, String::new());
                    for attribute in e.attributes().flatten() {
                        let value = attribute_text(attribute.value.as_bytes())
                            .map_err(|e| format!("the workbook part: {e}"))?;
                        match (
                            attribute.key.prefix().is_some(),
                            attribute.key.local_name().as_ref(),
                        ) {
                            (false, "name") => name = value,
                            (false, "state") => {
                                visible = match value.as_str() {
                                    "hidden" => SheetVisible::Hidden,
                                    "veryHidden" => SheetVisible::VeryHidden,
                                    _ => SheetVisible::Visible,
                                }
                            }
                            (true, "id") => id = value,
                            _ => {}
                        }
                    }
                    sheets.push((name, visible, id));
                }
                _ => {}
            },
            Ok(Event::Eof) => return Ok((sheets, is_1904)),
            Err(e) => return Err(format!("the workbook part: {e}")),
            _ => {}
        }
    }
}

/// The styles part: for each cell format (`cellXfs`, indexed by a cell's `s`), what its number
/// format makes of a number.
fn number_kinds(xml: &[u8]) -> Result<Vec<NumberKind>, String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut custom: HashMap<String, NumberKind> = HashMap::new();
    let mut kinds = Vec::new();
    let mut in_cell_xfs = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => match e.local_name().as_ref() {
                "numFmt" => {
                    let (mut id, mut code) = (None, None);
                    for attribute in e.attributes().flatten() {
                        match attribute.key.local_name().as_ref() {
                            "numFmtId" => id = Some(attribute.value.into_owned()),
                            "formatCode" => {
                                code = Some(
                                    attribute_text(attribute.value.as_bytes())
                                        .map_err(|e| format!("the styles part: {e}"))?,
                                );
                            }
                            _ => {}
                        }
                    }
                    if let (Some(id), Some(code)) = (id, code) {
                        custom.insert(id, custom_format_kind(&code));
                    }
                }
                "cellXfs" => in_cell_xfs = true,
                "xf" if in_cell_xfs => {
                    let id = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == "numFmtId")
                        .map(|a| a.value.into_owned());
                    kinds.push(match id {
                        None => NumberKind::Plain,
                        Some(id) => custom
                            .get(&id)
                            .copied()
                            .unwrap_or_else(|| builtin_format_kind(id.as_bytes())),
                    });
                }
                _ => {}
            },
            Ok(Event::End(e)) if e.local_name().as_ref() == "cellXfs" => in_cell_xfs = false,
            Ok(Event::Eof) => return Ok(kinds),
            Err(e) => return Err(format!("the styles part: {e}")),
            _ => {}
        }
    }
}

/// The built-in number formats (ECMA-376 §18.8.30) that show dates or times, East Asian ones
/// included (a Chinese Excel writes 年月日 dates as 31, 57, 58…).
fn builtin_format_kind(id: &[u8]) -> NumberKind {
    match std::str::from_utf8(id)
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
    {
        Some(14..=22 | 27..=36 | 45 | 47 | 50..=58) => NumberKind::Date,
        Some(46) => NumberKind::Duration,
        _ => NumberKind::Plain,
    }
}

/// Whether a custom number format code shows a date (a d, m, y, h or s outside quotes,
/// brackets and escapes, in its first section), a duration (`[h]`, `[mm]`, `[ss]`), or neither.
fn custom_format_kind(code: &str) -> NumberKind {
    let (mut escaped, mut quoted, mut brackets) = (false, false, 0u8);
    let (mut prev, mut elapsed, mut am_pm) = (' ', false, false);
    for c in code.chars() {
        if escaped {
            escaped = false;
        } else if quoted {
            quoted = c != '"';
        } else {
            match c {
                '_' | '\\' | '*' => escaped = true,
                '"' => quoted = true,
                ';' => return NumberKind::Plain,
                '[' => brackets = brackets.saturating_add(1),
                ']' if brackets == 1 && elapsed => return NumberKind::Duration,
                ']' => brackets = brackets.saturating_sub(1),
                'a' | 'A' if brackets == 0 && !am_pm => am_pm = true,
                'p' | 'm' | '/' | 'P' | 'M' if brackets == 0 && am_pm => return NumberKind::Date,
                'd' | 'm' | 'h' | 'y' | 's' | 'D' | 'M' | 'H' | 'Y' | 'S'
                    if brackets == 0 && !am_pm =>
                {
                    return NumberKind::Date;
                }
                _ => {
                    if !(elapsed && c.eq_ignore_ascii_case(&prev)) {
                        elapsed = prev == '[' && matches!(c, 'm' | 'h' | 's' | 'M' | 'H' | 'S');
                    }
                }
            }
        }
        prev = c;
    }
    NumberKind::Plain
}

/// An attribute's value, its entities resolved.
fn attribute_text(raw: &[u8]) -> Result<String, ScanError> {
    let mut out = String::new();
    decode_text(raw, 0, &mut out)?;
    Ok(out)
}

/// Why a streamed part could not be read.
#[derive(Debug, thiserror::Error)]
enum ScanError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the XML ends inside a {0}")]
    Truncated(&'static str),
    #[error("the XML is not UTF-8 near byte {0}")]
    NotUtf8(u64),
    #[error("{0}")]
    Invalid(String),
}

/// What a markup item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    /// `<name …>`, or `<name …/>` when `empty`.
    Open { empty: bool },
    /// `</name>`.
    Close,
    /// `<![CDATA[…]]>`: text.
    Cdata,
    /// A comment, processing instruction or declaration.
    Other,
}

/// A markup item found by [`XmlScan::next`]: its kind and where its bytes (between `<` and
/// `>`) are in the scanner's buffer, valid until the next call.
#[derive(Debug, Clone, Copy)]
struct Tag {
    markup: Markup,
    start: usize,
    end: usize,
}

/// A forward-only XML scanner over an inflating reader, a chunk at a time: it finds markup
/// with `memchr` and hands out the bytes between; what the tags mean is the caller's.
struct XmlScan<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// Bytes dropped from the front of `buf` so far (for error positions).
    consumed: u64,
}

impl<R: Read> XmlScan<R> {
    fn new(input: R) -> XmlScan<R> {
        XmlScan {
            input,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            consumed: 0,
        }
    }

    /// Reads more input, keeping the bytes from `pos` on; false at the end of the input.
    fn fill(&mut self) -> Result<bool, ScanError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.consumed += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn bytes(&self, tag: Tag) -> &[u8] {
        &self.buf[tag.start..tag.end]
    }

    /// The next markup item; the text before it is appended to `text` when given (raw: the
    /// caller decodes it). `None` at the end of the input.
    fn next(&mut self, mut text: Option<&mut Vec<u8>>) -> Result<Option<Tag>, ScanError> {
        loop {
            match memchr::memchr(b'<', &self.buf[self.pos..self.end]) {
                Some(i) => {
                    if let Some(text) = text.as_deref_mut() {
                        text.extend_from_slice(&self.buf[self.pos..self.pos + i]);
                    }
                    self.pos += i;
                    return self.markup().map(Some);
                }
                None => {
                    if let Some(text) = text.as_deref_mut() {
                        text.extend_from_slice(&self.buf[self.pos..self.end]);
                    }
                    self.pos = self.end;
                    if !self.fill()? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The markup item at `pos` (which holds `<`), whole: more input is read until its end.
    fn markup(&mut self) -> Result<Tag, ScanError> {
        loop {
            let item = &self.buf[self.pos..self.end];
            if let Some((markup, open, close, next)) = classify(item, self.eof) {
                let tag = Tag {
                    markup,
                    start: self.pos + open,
                    end: self.pos + close,
                };
                self.pos += next;
                return Ok(tag);
            }
            if !self.fill()? {
                return Err(ScanError::Truncated("tag"));
            }
        }
    }

    /// `open` text `close` at the scanner's position (`<v>42</v></c>`, no prefixes): the
    /// text's place in the buffer (valid until the next call), the scanner moved past `close`.
    /// `None` (nothing consumed) when the input is otherwise, or not all in the buffer yet.
    fn simple(&mut self, open: &[u8], close: &[u8]) -> Option<(usize, usize)> {
        let window = &self.buf[self.pos..self.end];
        let rest = window.strip_prefix(open)?;
        let lt = memchr::memchr(b'<', rest)?;
        if !rest[lt..].starts_with(close) {
            return None;
        }
        let start = self.pos + open.len();
        let end = start + lt;
        self.pos = end + close.len();
        Some((start, end))
    }

    /// Skips to the first element named `local` (any prefix) without parsing what comes
    /// before: true when found (the scanner is then at its `<`).
    fn skip_to_element(&mut self, local: &[u8]) -> Result<bool, ScanError> {
        // Bytes kept before a match for its prefix (`<x:`), when a match straddles reads.
        const PREFIX_ROOM: usize = 64;
        let finder = memchr::memmem::Finder::new(local);
        loop {
            let window = &self.buf[..self.end];
            let mut keep = self
                .end
                .saturating_sub(local.len() + PREFIX_ROOM)
                .max(self.pos);
            let mut from = self.pos;
            while let Some(i) = finder.find(&window[from..]) {
                let at = from + i;
                let after = window.get(at + local.len()).copied();
                if after.is_none() && !self.eof {
                    keep = keep.min(at.saturating_sub(PREFIX_ROOM).max(self.pos));
                    break;
                }
                // `<name` or `<prefix:name`, then white space, `>` or `/`: text cannot hold
                // a raw `<`, so this is the element.
                let ends_name = matches!(after, Some(b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/'));
                if ends_name && let Some(open) = element_start(&window[self.pos..at]) {
                    self.pos += open;
                    return Ok(true);
                }
                from = at + 1;
            }
            self.pos = keep;
            if !self.fill()? {
                return Ok(false);
            }
        }
    }
}

/// What the markup item at the start of `item` is, and where its content starts, ends, and
/// the item ends; `None` when more input is needed to tell (or to reach its end).
fn classify(item: &[u8], eof: bool) -> Option<(Markup, usize, usize, usize)> {
    match item.get(1)? {
        b'!' => {
            if item.starts_with(b"<!--") {
                find_from(item, b"-->", 4).map(|e| (Markup::Other, 4, e, e + 3))
            } else if item.starts_with(b"<![CDATA[") {
                find_from(item, b"]]>", 9).map(|e| (Markup::Cdata, 9, e, e + 3))
            } else if item.len() < 9 && !eof {
                None
            } else {
                find_from(item, b">", 2).map(|e| (Markup::Other, 1, e, e + 1))
            }
        }
        b'?' => find_from(item, b"?>", 2).map(|e| (Markup::Other, 1, e, e + 2)),
        b'/' => tag_end(item, 2).map(|e| (Markup::Close, 1, e, e + 1)),
        _ => tag_end(item, 1).map(|e| {
            let empty = item[e - 1] == b'/';
            (Markup::Open { empty }, 1, e, e + 1)
        }),
    }
}

/// Where `<name` or `<prefix:name` starts, given the bytes before `name`: the `<`'s index.
fn element_start(before: &[u8]) -> Option<usize> {
    let mut i = before.len();
    let last = *before.last()?;
    if last == b'<' {
        return Some(i - 1);
    }
    if last != b':' {
        return None;
    }
    i -= 1;
    while i > 0 {
        let b = before[i - 1];
        if b == b'<' {
            return (i < before.len() - 1).then_some(i - 1);
        }
        if !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') || b >= 0x80) {
            return None;
        }
        i -= 1;
    }
    None
}

fn find_from(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(haystack.get(from..)?, needle).map(|i| from + i)
}

/// The index of the `>` ending the tag that starts `item` (at its `<`): the first one outside
/// a quoted attribute value (a value may hold `>`).
fn tag_end(item: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let found = memchr::memchr3(b'>', b'"', b'\'', item.get(i..)?)? + i;
        match item[found] {
            b'>' => return Some(found),
            quote => i = memchr::memchr(quote, &item[found + 1..])? + found + 2,
        }
    }
}

/// A tag's name without its prefix (`x:c` → `c`).
fn local_name(tag: &[u8]) -> &[u8] {
    let tag = tag.strip_prefix(b"/").unwrap_or(tag);
    let end = tag
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/'))
        .unwrap_or(tag.len());
    let name = &tag[..end];
    match memchr::memrchr(b':', name) {
        Some(colon) => &name[colon + 1..],
        None => name,
    }
}

/// The raw value of attribute `name` (exactly so, prefix included) of a start tag.
fn attribute<'t>(tag: &'t [u8], name: &[u8]) -> Option<&'t [u8]> {
    attributes(tag)
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A start tag's attributes as raw (name, value) pairs, in order; ends at the first thing that
/// is not one.
fn attributes(tag: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut i = tag
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(tag.len());
    std::iter::from_fn(move || {
        while tag.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let start = i;
        while tag
            .get(i)
            .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'=')
        {
            i += 1;
        }
        let key = &tag[start..i];
        while tag
            .get(i)
            .is_some_and(|b| b.is_ascii_whitespace() || *b == b'=')
        {
            i += 1;
        }
        let quote = *tag.get(i)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let value_start = i + 1;
        let value_end = memchr::memchr(quote, &tag[value_start..])? + value_start;
        i = value_end + 1;
        Some((key, &tag[value_start..value_end]))
    })
}

/// Appends XML text (`raw`, between tags) to `out`, decoded: entities and character references
/// resolved, line ends normalised as XML 1.0 does (`\r\n` and `\r` are `\n`; `&#13;` stays).
fn decode_text(raw: &[u8], at: u64, out: &mut String) -> Result<(), ScanError> {
    if memchr::memchr2(b'&', b'\r', raw).is_none() {
        let text = std::str::from_utf8(raw)
            .map_err(|e| ScanError::NotUtf8(at + e.valid_up_to() as u64))?;
        out.push_str(text);
        return Ok(());
    }
    let text =
        std::str::from_utf8(raw).map_err(|e| ScanError::NotUtf8(at + e.valid_up_to() as u64))?;
    let mut rest = text;
    while let Some(i) = rest.find(['&', '\r']) {
        out.push_str(&rest[..i]);
        if rest.as_bytes()[i] == b'\r' {
            out.push('\n');
            rest = &rest[i + 1..];
            rest = rest.strip_prefix('\n').unwrap_or(rest);
            continue;
        }
        let Some(semi) = rest[i..].find(';') else {
            return Err(ScanError::Invalid(format!(
                "an unterminated entity in \"{}\"",
                truncate(rest)
            )));
        };
        let entity = &rest[i + 1..i + semi];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code =
                    if let Some(hex) = entity.strip_prefix("#x").or(entity.strip_prefix("#X")) {
                        u32::from_str_radix(hex, 16).ok()
                    } else if let Some(decimal) = entity.strip_prefix('#') {
                        decimal.parse().ok()
                    } else {
                        None
                    };
                code.and_then(char::from_u32).ok_or_else(|| {
                    ScanError::Invalid(format!("an unknown entity &{entity}; in the text"))
                })?
            }
        };
        out.push(c);
        rest = &rest[i + semi + 1..];
    }
    out.push_str(rest);
    Ok(())
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// Appends `text` to `out` with Excel's `_xHHHH_` escapes decoded (a UTF-16 unit each; a
/// surrogate pair is two escapes; `_x005F_` is the `_` that keeps a literal `_x…_`).
fn unescape_excel(text: &str, out: &mut String) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'_', &bytes[from..]).map(|i| from + i) {
        let Some(unit) = excel_escape(bytes, i) else {
            from = i + 1;
            continue;
        };
        out.push_str(&text[copied..i]);
        let mut next = i + 7;
        let c = match unit {
            0xD800..=0xDBFF => match excel_escape(bytes, next) {
                Some(low @ 0xDC00..=0xDFFF) => {
                    next += 7;
                    char::from_u32(
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00),
                    )
                }
                _ => None,
            },
            unit => char::from_u32(u32::from(unit)),
        };
        out.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
        copied = next;
        from = next;
    }
    out.push_str(&text[copied..]);
}

fn excel_escape(bytes: &[u8], i: usize) -> Option<u16> {
    let escape = bytes.get(i..i + 7)?;
    if escape[1] != b'x' || escape[6] != b'_' || !escape[2..6].iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(&escape[2..6]).ok()?, 16).ok()
}

/// Reads a string item (`<si>` or a cell's `<is>`, whose start tag was just read) up to its
/// end tag, appending its text to `out`: the `<t>` of the item or of its rich-text runs,
/// not those of phonetic runs.
fn read_string_item<R: Read>(
    scan: &mut XmlScan<R>,
    end: &[u8],
    raw: &mut Vec<u8>,
    scratch: &mut String,
    out: &mut String,
) -> Result<(), ScanError> {
    let mut phonetic = false;
    loop {
        let Some(tag) = scan.next(None)? else {
            return Err(ScanError::Truncated("string"));
        };
        match tag.markup {
            Markup::Open { empty } => {
                let name = local_name(scan.bytes(tag));
                if name == b"rPh" && !empty {
                    phonetic = true;
                } else if name == b"t" && !empty {
                    let preserve = attribute(scan.bytes(tag), b"xml:space") == Some(b"preserve");
                    scratch.clear();
                    read_text(scan, raw, scratch)?;
                    if !phonetic {
                        let text = if preserve {
                            scratch.as_str()
                        } else {
                            scratch.trim_matches([' ', '\t', '\r', '\n'])
                        };
                        unescape_excel(text, out);
                    }
                }
            }
            Markup::Close => {
                let name = local_name(scan.bytes(tag));
                if name == b"rPh" {
                    phonetic = false;
                } else if name == end {
                    return Ok(());
                }
            }
            Markup::Cdata | Markup::Other => {}
        }
    }
}

/// Reads the text of the element whose start tag was just read, up to its end tag, decoded
/// into `out` (CDATA sections as they are).
fn read_text<R: Read>(
    scan: &mut XmlScan<R>,
    raw: &mut Vec<u8>,
    out: &mut String,
) -> Result<(), ScanError> {
    loop {
        raw.clear();
        let Some(tag) = scan.next(Some(raw))? else {
            return Err(ScanError::Truncated("text"));
        };
        let at = scan.consumed + tag.start as u64;
        decode_text(raw, at, out)?;
        match tag.markup {
            Markup::Close => return Ok(()),
            Markup::Cdata => {
                let text = std::str::from_utf8(scan.bytes(tag))
                    .map_err(|e| ScanError::NotUtf8(at + e.valid_up_to() as u64))?;
                out.push_str(text);
            }
            // Markup inside a text element (a comment) is skipped; a child element (none is
            // allowed) would be ignored the same way.
            Markup::Open { .. } | Markup::Other => {}
        }
    }
}

/// The shared strings part, streamed.
fn shared_strings<R: Read>(mut scan: XmlScan<R>, bound: usize) -> Result<SharedStrings, ScanError> {
    let mut strings = SharedStrings {
        text: String::with_capacity(bound),
        ends: Vec::new(),
    };
    let (mut raw, mut scratch) = (Vec::new(), String::new());
    while let Some(tag) = scan.next(None)? {
        if let Markup::Open { empty } = tag.markup
            && local_name(scan.bytes(tag)) == b"si"
        {
            if !empty && !plain_string(&mut scan, &mut strings.text)? {
                read_string_item(&mut scan, b"si", &mut raw, &mut scratch, &mut strings.text)?;
            }
            strings.ends.push(strings.text.len());
        }
    }
    Ok(strings)
}

/// Nearly every shared string is `<t>text</t></si>` with nothing to decode or trim: appended
/// at once (true), the scanner past `</si>`. False, nothing consumed, for any other string.
fn plain_string<R: Read>(scan: &mut XmlScan<R>, out: &mut String) -> Result<bool, ScanError> {
    let Some((start, end)) = scan.simple(b"<t>", b"</t></si>") else {
        return Ok(false);
    };
    let text = &scan.buf[start..end];
    let trimmed = |b: Option<&u8>| !matches!(b, Some(b' ' | b'\t' | b'\r' | b'\n'));
    if memchr::memchr3(b'&', b'\r', b'_', text).is_none()
        && trimmed(text.first())
        && trimmed(text.last())
    {
        let at = scan.consumed + start as u64;
        out.push_str(
            std::str::from_utf8(text)
                .map_err(|e| ScanError::NotUtf8(at + e.valid_up_to() as u64))?,
        );
        return Ok(true);
    }
    // Something to decode: rewind to `<t>` and read it the long way.
    scan.pos = start - 3;
    Ok(false)
}

/// A sheet's merged regions: the inflated sheet is searched for its `<mergeCells>` element
/// (after the cells), which alone is parsed.
fn merged_regions<R: Read>(mut scan: XmlScan<R>) -> Result<Vec<Dimensions>, ScanError> {
    let mut regions = Vec::new();
    if !scan.skip_to_element(b"mergeCells")? {
        return Ok(regions);
    }
    while let Some(tag) = scan.next(None)? {
        match tag.markup {
            Markup::Open { .. } if local_name(scan.bytes(tag)) == b"mergeCell" => {
                if let Some(reference) = attribute(scan.bytes(tag), b"ref") {
                    regions.push(dimensions(reference).ok_or_else(|| {
                        ScanError::Invalid(format!(
                            "a merged region \"{}\" is not a cell range",
                            String::from_utf8_lossy(reference)
                        ))
                    })?);
                }
            }
            Markup::Close if local_name(scan.bytes(tag)) == b"mergeCells" => break,
            _ => {}
        }
    }
    Ok(regions)
}

/// `A1:C3` (or `B2`, one cell) as 0-based (row, column) corners.
fn dimensions(reference: &[u8]) -> Option<Dimensions> {
    let (start, end) = match memchr::memchr(b':', reference) {
        Some(colon) => (&reference[..colon], &reference[colon + 1..]),
        None => (reference, reference),
    };
    let (start, end) = (cell_reference(start)?, cell_reference(end)?);
    Some(Dimensions::new((start.0?, start.1?), (end.0?, end.1?)))
}

/// `BD68580` as 0-based (row, column); either may be missing (`BD`, `68580`).
fn cell_reference(reference: &[u8]) -> Option<(Option<u32>, Option<u32>)> {
    let reference = reference.iter().copied().filter(|&b| b != b'$');
    let (mut column, mut row, mut digits) = (0u32, 0u32, false);
    for b in reference {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' if !digits => {
                column = column
                    .checked_mul(26)?
                    .checked_add(u32::from(b.to_ascii_uppercase() - b'A') + 1)?;
            }
            b'0'..=b'9' => {
                digits = true;
                row = row.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
            }
            _ => return None,
        }
    }
    Some((row.checked_sub(1), column.checked_sub(1)))
}

struct Context<'p> {
    styles: &'p [NumberKind],
    strings: &'p SharedStrings,
    is_1904: bool,
}

/// A cell's `t` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CellType {
    Number,
    Shared,
    Formula,
    Inline,
    Bool,
    Error,
    Iso,
}

/// Streams a sheet's cells (see [`Package::cells`]).
fn sheet_cells<R: Read>(
    mut scan: XmlScan<R>,
    context: &Context<'_>,
    mut each: impl FnMut(u32, u32, Cell) -> bool,
) -> Result<(), ScanError> {
    let (mut row, mut column) = (0u32, 0u32);
    let (mut raw, mut text) = (Vec::new(), String::new());
    let mut scratch = String::new();
    while let Some(tag) = scan.next(None)? {
        match tag.markup {
            Markup::Open { empty } => {
                let bytes = scan.bytes(tag);
                match local_name(bytes) {
                    b"c" => {
                        let (mut reference, mut style, mut typ) = (None, None, None);
                        for (key, value) in attributes(bytes) {
                            match key {
                                b"r" => reference = Some(value),
                                b"s" => style = Some(value),
                                b"t" => typ = Some(value),
                                _ => {}
                            }
                        }
                        if let Some(reference) = reference {
                            let (r, c) = cell_reference(reference).ok_or_else(|| {
                                ScanError::Invalid(format!(
                                    "a cell reference \"{}\" is not a cell",
                                    String::from_utf8_lossy(reference)
                                ))
                            })?;
                            row = r.unwrap_or(row);
                            column = c.unwrap_or(column);
                        }
                        let (r, c) = (row, column);
                        column = column.saturating_add(1);
                        if empty {
                            continue;
                        }
                        let style = style.and_then(parse_u32);
                        let kind = match typ {
                            None | Some(b"n") => CellType::Number,
                            Some(b"s") => CellType::Shared,
                            Some(b"str") => CellType::Formula,
                            Some(b"inlineStr" | b"is") => CellType::Inline,
                            Some(b"b") => CellType::Bool,
                            Some(b"e") => CellType::Error,
                            Some(b"d") => CellType::Iso,
                            Some(other) => {
                                return Err(ScanError::Invalid(format!(
                                    "a cell has the unknown type t=\"{}\"",
                                    String::from_utf8_lossy(other)
                                )));
                            }
                        };
                        let cell = read_cell(
                            &mut scan,
                            context,
                            kind,
                            style,
                            (&mut raw, &mut text, &mut scratch),
                        )?;
                        if cell != Cell::Empty && !each(r, c, cell) {
                            return Ok(());
                        }
                    }
                    b"row" => {
                        if let Some(r) = attribute(bytes, b"r").and_then(parse_u32) {
                            row = r.saturating_sub(1);
                        }
                        column = 0;
                        if empty {
                            row = row.saturating_add(1);
                        }
                    }
                    _ => {}
                }
            }
            Markup::Close => match local_name(scan.bytes(tag)) {
                b"row" => {
                    row = row.saturating_add(1);
                    column = 0;
                }
                b"sheetData" => return Ok(()),
                _ => {}
            },
            Markup::Cdata | Markup::Other => {}
        }
    }
    Ok(())
}

/// Reads a cell's content (its start tag was just read) up to `</c>`, as a [`Cell`].
fn read_cell<R: Read>(
    scan: &mut XmlScan<R>,
    context: &Context<'_>,
    kind: CellType,
    style: Option<u32>,
    (raw, text, scratch): (&mut Vec<u8>, &mut String, &mut String),
) -> Result<Cell, ScanError> {
    text.clear();
    // Nearly every cell is `<v>…</v></c>`: taken at once, without a markup item per tag.
    if kind != CellType::Inline
        && let Some((start, end)) = scan.simple(b"<v>", b"</v></c>")
    {
        let at = scan.consumed + start as u64;
        let value = &scan.buf[start..end];
        if memchr::memchr2(b'&', b'\r', value).is_none() {
            let value = std::str::from_utf8(value)
                .map_err(|e| ScanError::NotUtf8(at + e.valid_up_to() as u64))?;
            return cell_value(context, kind, style, value, scratch);
        }
        decode_text(value, at, text)?;
        return cell_value(context, kind, style, text, scratch);
    }
    let mut value = false;
    loop {
        let Some(tag) = scan.next(None)? else {
            return Err(ScanError::Truncated("cell"));
        };
        match tag.markup {
            Markup::Open { empty } => match local_name(scan.bytes(tag)) {
                b"v" if !empty && kind != CellType::Inline => {
                    read_text(scan, raw, text)?;
                    value = true;
                }
                b"is" if !empty => {
                    read_string_item(scan, b"is", raw, scratch, text)?;
                    value = true;
                }
                b"f" if !empty => {
                    // A formula's text is not a value: skip to its end.
                    scratch.clear();
                    read_text(scan, raw, scratch)?;
                }
                _ => {}
            },
            Markup::Close if local_name(scan.bytes(tag)) == b"c" => break,
            _ => {}
        }
    }
    if !value {
        return Ok(Cell::Empty);
    }
    cell_value(context, kind, style, text, scratch)
}

/// A cell of type `kind` and style `style` whose value (`<v>`, or `<is>`'s text) is `text`.
fn cell_value(
    context: &Context<'_>,
    kind: CellType,
    style: Option<u32>,
    text: &str,
    scratch: &mut String,
) -> Result<Cell, ScanError> {
    Ok(match kind {
        CellType::Shared => {
            let index = parse_u32(text.trim().as_bytes()).ok_or_else(|| {
                ScanError::Invalid(format!("a shared string index \"{text}\" is not a number"))
            })?;
            let shared = context.strings.get(index as usize).ok_or_else(|| {
                ScanError::Invalid(format!(
                    "the shared string {index} is not in the table (it has {})",
                    context.strings.ends.len()
                ))
            })?;
            text_cell(shared)
        }
        CellType::Inline => text_cell(text),
        CellType::Formula => {
            scratch.clear();
            unescape_excel(text, scratch);
            text_cell(scratch)
        }
        CellType::Bool => match text.trim() {
            "" => Cell::Empty,
            "0" => Cell::Bool(false),
            "1" => Cell::Bool(true),
            t if t.eq_ignore_ascii_case("false") => Cell::Bool(false),
            t if t.eq_ignore_ascii_case("true") => Cell::Bool(true),
            t => {
                return Err(ScanError::Invalid(format!("a boolean cell holds \"{t}\"")));
            }
        },
        CellType::Error => text_cell(text.trim()),
        CellType::Iso => super::spreadsheet::iso_date_serial(text.trim())
            .map_or_else(|| text_cell(text), Cell::DateSerial),
        CellType::Number => {
            if text.is_empty() {
                return Ok(Cell::Empty);
            }
            match text.parse::<f64>() {
                Ok(number) => {
                    let kind = match style {
                        Some(s) => context
                            .styles
                            .get(s as usize)
                            .copied()
                            .unwrap_or(NumberKind::Plain),
                        None => NumberKind::Plain,
                    };
                    match kind {
                        NumberKind::Date => date_cell(number, context.is_1904),
                        NumberKind::Plain | NumberKind::Duration => Cell::Number(number),
                    }
                }
                Err(_) => text_cell(text),
            }
        }
    })
}

fn parse_u32(bytes: &[u8]) -> Option<u32> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Text as a cell: [`Cell::Empty`] when it is only white space (checked from the first
/// character, so that a non-blank text costs no scan).
fn text_cell(text: &str) -> Cell {
    if is_blank(text) {
        Cell::Empty
    } else {
        Cell::Text(text.to_owned())
    }
}

fn is_blank(text: &str) -> bool {
    match text.chars().next() {
        None => true,
        Some(first) if !first.is_whitespace() => false,
        Some(_) => text.trim().is_empty(),
    }
}

/// A date cell's number as a serial on the 1900 calendar, with the time of day kept to the
/// millisecond — the value calamine's date cells gave (through a calendar date), so rows are
/// the same whatever reader read them: a 1904 serial is moved by 1,462 days, and the 1900
/// calendar's phantom 29 February (serials before 61 are one day off) is corrected.
fn date_cell(serial: f64, is_1904: bool) -> Cell {
    if !serial.is_finite() || serial < 0.0 {
        return Cell::Number(serial);
    }
    let mut days = serial.floor();
    let seconds = serial.fract() * 86_400.0;
    let (mut whole, mut milli) = (seconds as u64, (seconds.fract() * 1000.0).round() as u64);
    if milli == 1000 {
        whole += 1;
        milli = 0;
    }
    if whole == 86_400 {
        days += 1.0;
        whole = 0;
    }
    if is_1904 {
        days += 1462.0;
    } else if days < 60.0 {
        days += 1.0;
    }
    let millis = whole * 1000 + milli;
    Cell::DateSerial(days + millis as f64 / 86_400_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(xml: &str) -> XmlScan<&[u8]> {
        XmlScan::new(xml.as_bytes())
    }

    #[test]
    fn text_is_decoded_as_xml_and_excel_write_it() {
        let mut out = String::new();
        decode_text(b"a &amp; b &#x4E2D;&#25991; \r\nc", 0, &mut out).unwrap();
        assert_eq!(out, "a & b 中文 \nc");
        let mut out = String::new();
        unescape_excel("x_x000D_y_x005F_x000D__xD83D__xDCF7_", &mut out);
        assert_eq!(out, "x\ry_x000D_\u{1F4F7}");
    }

    #[test]
    fn shared_strings_join_runs_drop_phonetics_and_trim_unpreserved_text() {
        let strings = shared_strings(
            scan(
            r#"<?xml version="1.0"?><sst xmlns="x"><si><t>  云南 </t></si><si/><si><r><rPr><b/></rPr><t xml:space="preserve">甲 </t></r><r><t>乙</t></r><rPh sb="0" eb="1"><t>じ</t></rPh></si><x:si><x:t><![CDATA[<c>]]></x:t></x:si></sst>"#,
            ),
            0,
        )
        .unwrap();
        let all: Vec<&str> = (0..4).map(|i| strings.get(i).unwrap()).collect();
        assert_eq!(all, ["云南", "", "甲 乙", "<c>"]);
        assert!(strings.get(4).is_none());
    }

    #[test]
    fn merged_regions_are_found_after_the_cells_whatever_the_prefix() {
        let xml = r#"<x:worksheet><x:sheetData><x:row r="1"><x:c r="A1" t="inlineStr"><x:is><x:t>mergeCells &lt;mergeCells</x:t></x:is></x:c></x:row></x:sheetData><x:mergeCells count="2"><x:mergeCell ref="A1:C1"/><x:mergeCell ref="$B$2:B40"/></x:mergeCells></x:worksheet>"#;
        let regions = merged_regions(scan(xml)).unwrap();
        assert_eq!(
            regions,
            vec![
                Dimensions::new((0, 0), (0, 2)),
                Dimensions::new((1, 1), (39, 1))
            ]
        );
        assert!(
            merged_regions(scan("<worksheet><sheetData/></worksheet>"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_scanner_reads_markup_across_chunk_boundaries() {
        // A tiny reader hands out one byte at a time: every item spans reads.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some((&first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = first;
                self.0 = rest;
                Ok(1)
            }
        }
        let xml = br#"<sheetData><row r="2"><c r="B2" s="0" t="str" a='x>y'><f>1&gt;0</f><v>ok_x0021_</v></c><!-- <c r="Z9"> --><c t="b"><v>1</v></c></row></sheetData><mergeCells><mergeCell ref="B2:C3"/></mergeCells>"#;
        let context = Context {
            styles: &[],
            strings: &SharedStrings::default(),
            is_1904: false,
        };
        let mut cells = Vec::new();
        let mut scanner = XmlScan::new(Trickle(xml));
        scanner.buf = vec![0; 4];
        sheet_cells(scanner, &context, |r, c, cell| {
            cells.push((r, c, cell));
            true
        })
        .unwrap();
        assert_eq!(
            cells,
            vec![
                (1, 1, Cell::Text("ok!".to_owned())),
                (1, 2, Cell::Bool(true))
            ]
        );
        let mut scanner = XmlScan::new(Trickle(xml));
        scanner.buf = vec![0; 4];
        assert_eq!(
            merged_regions(scanner).unwrap(),
            vec![Dimensions::new((1, 1), (2, 2))]
        );
    }

    #[test]
    fn number_formats_tell_dates_and_durations() {
        assert_eq!(
            custom_format_kind("yyyy\"年\"m\"月\"d\"日\""),
            NumberKind::Date
        );
        assert_eq!(custom_format_kind("[h]:mm:ss"), NumberKind::Duration);
        assert_eq!(custom_format_kind("#,##0.00\"万元\""), NumberKind::Plain);
        assert_eq!(custom_format_kind("0.00_);[Red](0.00)"), NumberKind::Plain);
        assert_eq!(builtin_format_kind(b"14"), NumberKind::Date);
        assert_eq!(builtin_format_kind(b"57"), NumberKind::Date);
        assert_eq!(builtin_format_kind(b"2"), NumberKind::Plain);
    }

    #[test]
    fn date_serials_match_the_calendar_dates_excel_shows() {
        assert_eq!(date_cell(43525.0, false), Cell::DateSerial(43525.0));
        assert_eq!(date_cell(43525.0 - 1462.0, true), Cell::DateSerial(43525.0));
        assert_eq!(
            date_cell(43789.604166666664, false),
            Cell::DateSerial(43789.0 + 52_200_000.0 / 86_400_000.0)
        );
        // 1900-01-01 is Excel's serial 1, two days after 1899-12-30.
        assert_eq!(date_cell(1.0, false), Cell::DateSerial(2.0));
    }
}
