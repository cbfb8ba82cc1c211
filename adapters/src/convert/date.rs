//! Dates as people and spreadsheets write them, to the schema's date (`YYYY-MM-DD`,
//! common.json `$defs/date`): Excel serial numbers (with Excel's 1900 leap-year bug), text
//! such as "2019年3月5日", "2019年3月", "2019.03", "2019-3", "2019/03/05", "201903", with
//! full-width digits, and research periods "2018.01-2020.12".
//!
//! The schema only has full dates, so a month or a year is widened to its first day for a
//! start and to its last day for an end ([`Fill`]): "2018.01-2020.12" is 2018-01-01 to
//! 2020-12-31, the whole of both months, as the form means it.
//!
//! What it may not touch: which field a date is for (the mapping says, through [`Fill`]).

use time::{Date, Month};

use super::text::to_halfwidth;
use super::{ConvertError, cell_display};
use crate::row::Cell;

/// Earliest and latest year a converter accepts: older or later dates are typing mistakes.
pub const YEARS: std::ops::RangeInclusive<i32> = 1900..=2100;

/// How a date given to the month or the year becomes a full date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fill {
    /// The first day (a start date, a deadline written as a month is not one).
    #[default]
    Start,
    /// The last day (an end date, a deadline).
    End,
}

/// A date as precise as it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialDate {
    /// Year.
    pub year: i32,
    /// Month 1–12, if given.
    pub month: Option<u8>,
    /// Day of month, if given (only with a month).
    pub day: Option<u8>,
}

impl PartialDate {
    /// The full date, filling a missing month or day as `fill` says.
    pub fn to_date(self, fill: Fill) -> Option<Date> {
        let month = match (self.month, fill) {
            (Some(m), _) => Month::try_from(m).ok()?,
            (None, Fill::Start) => Month::January,
            (None, Fill::End) => Month::December,
        };
        let day = match (self.day, fill) {
            (Some(d), _) => d,
            (None, Fill::Start) => 1,
            (None, Fill::End) => month.length(self.year),
        };
        Date::from_calendar_date(self.year, month, day).ok()
    }
}

/// `YYYY-MM-DD`.
pub fn iso(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

fn expected() -> (&'static str, &'static str) {
    (
        "日期，如 2019-03-05、2019年3月5日、2019.03、201903 或 Excel 日期",
        "a date such as 2019-03-05, 2019年3月5日, 2019.03, 201903 or an Excel date",
    )
}

fn not_a_date(found: &str) -> ConvertError {
    let (zh, en) = expected();
    ConvertError::new(
        format!("「{found}」不是可识别的日期；应为{zh}"),
        format!("{found:?} is not a date; expected {en}"),
    )
}

/// An Excel serial number as a date. Excel counts 1900-01-01 as day 1 and believes 1900 was a
/// leap year (Lotus 1-2-3's bug, kept for compatibility): serial 60 is the non-existent
/// 1900-02-29 and serials from 61 on are days since 1899-12-30. The fraction (time of day) is
/// ignored.
pub fn from_excel_serial(serial: f64) -> Result<Date, ConvertError> {
    let bad = |why_zh: &str, why_en: &str| {
        ConvertError::new(
            format!("Excel 日期序号 {serial} {why_zh}"),
            format!("Excel date serial {serial} {why_en}"),
        )
    };
    if !serial.is_finite() || serial < 1.0 {
        return Err(bad("不是有效日期", "is not a date"));
    }
    let days = serial.floor() as i64;
    if days == 60 {
        return Err(bad(
            "是 Excel 虚构的 1900-02-29，不存在",
            "is 1900-02-29, a day Excel invents and that never existed",
        ));
    }
    let epoch = if days < 60 {
        Date::from_calendar_date(1899, Month::December, 31)
    } else {
        Date::from_calendar_date(1899, Month::December, 30)
    }
    .expect("a real date");
    let date = i32::try_from(days)
        .ok()
        .and_then(|d| Date::from_julian_day(epoch.to_julian_day().checked_add(d)?).ok())
        .filter(|d| YEARS.contains(&d.year()));
    date.ok_or_else(|| bad("超出 1900–2100 年", "is outside the years 1900-2100"))
}

/// Reads a date written as text (already trimmed; full-width digits allowed).
///
/// Accepted: `YYYY`, `YYYYMM`, `YYYYMMDD`; `YYYY年`, `YYYY年M月`, `YYYY年M月D日` (or 号);
/// `YYYY-M`, `YYYY-M-D`, with `.` or `/` instead of `-`; a time after the date
/// (`2019-03-05 00:00:00`, `2019-03-05T08:00`) is dropped.
pub fn parse_date_text(text: &str) -> Option<PartialDate> {
    let half = to_halfwidth(text);
    let mut s: &str = half.trim();
    // A time part after the date.
    if let Some(at) = s.find(['T', ' ']) {
        let (date, time) = s.split_at(at);
        if time[1..].contains(':') {
            s = date;
        }
    }
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let number = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
        return match s.len() {
            4 => Some(PartialDate {
                year: number(0..4)? as i32,
                month: None,
                day: None,
            }),
            6 => Some(PartialDate {
                year: number(0..4)? as i32,
                month: Some(number(4..6)? as u8),
                day: None,
            }),
            8 => Some(PartialDate {
                year: number(0..4)? as i32,
                month: Some(number(4..6)? as u8),
                day: Some(number(6..8)? as u8),
            }),
            _ => None,
        }
        .filter(valid);
    }
    // Digit groups with one separator between them.
    let mut groups: Vec<&str> = Vec::new();
    let mut seps: Vec<char> = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if c.is_ascii_digit() {
            start.get_or_insert(i);
        } else {
            match start.take() {
                Some(from) => groups.push(&s[from..i]),
                None => return None,
            }
            seps.push(c);
        }
    }
    if let Some(from) = start {
        groups.push(&s[from..]);
    }
    let trailing = seps.len() == groups.len();
    let between = &seps[..groups.len().saturating_sub(1).min(seps.len())];
    let ok_between = |i: usize, c: char| match i {
        0 => matches!(c, '-' | '/' | '.' | '年'),
        _ => matches!(c, '-' | '/' | '.' | '月'),
    };
    if groups.is_empty()
        || groups.len() > 3
        || groups[0].len() != 4
        || groups[1..].iter().any(|g| g.is_empty() || g.len() > 2)
        || !between.iter().enumerate().all(|(i, &c)| ok_between(i, c))
    {
        return None;
    }
    // 2019年3 is missing its 月.
    if seps.first() == Some(&'年') && groups.len() >= 2 && seps.get(1) != Some(&'月') {
        return None;
    }
    if trailing {
        let last = *seps.last()?;
        let ok = match groups.len() {
            1 => last == '年',
            2 => last == '月',
            _ => matches!(last, '日' | '号'),
        };
        if !ok {
            return None;
        }
    }
    let year: i32 = groups[0].parse().ok()?;
    let month = groups.get(1).map(|g| g.parse::<u8>()).transpose().ok()?;
    let day = groups.get(2).map(|g| g.parse::<u8>()).transpose().ok()?;
    Some(PartialDate { year, month, day }).filter(valid)
}

fn valid(d: &PartialDate) -> bool {
    YEARS.contains(&d.year)
        && d.month.is_none_or(|m| (1..=12).contains(&m))
        && d.to_date(Fill::Start).is_some()
}

/// A number cell that is not typed as a date: an Excel serial (a plausible date's serial is
/// 18,000–73,000), `YYYY`, `YYYYMM`, `YYYYMMDD`, or `YYYY.MM` typed into a number cell.
fn from_number(x: f64) -> Result<PartialDate, ConvertError> {
    let found = cell_display(&Cell::Number(x));
    if x.fract() == 0.0 && (1.0..=100_000.0).contains(&x) && !(1900.0..=2100.0).contains(&x) {
        let date = from_excel_serial(x)?;
        return Ok(PartialDate {
            year: date.year(),
            month: Some(u8::from(date.month())),
            day: Some(date.day()),
        });
    }
    if x.fract() != 0.0 {
        // 2019.03 typed into a number cell; 2019.1 is ambiguous (January, or October whose
        // trailing zero Excel dropped).
        if found.len() == 6 && found.as_bytes()[4] == b'.' {
            return Err(ConvertError::new(
                format!(
                    "数值单元格「{found}」可能是 1 月也可能是 10 月（Excel 去掉了末尾的 0）；请以文本填写，如 2019-10"
                ),
                format!(
                    "number cell {found} may be January or October (Excel drops a trailing zero); write the date as text, e.g. 2019-10"
                ),
            ));
        }
    }
    parse_date_text(&found).ok_or_else(|| not_a_date(&found))
}

/// Reads a cell as a date as precise as it was written.
pub fn parse_partial(cell: &Cell) -> Result<Option<PartialDate>, ConvertError> {
    match cell {
        Cell::Empty => Ok(None),
        Cell::DateSerial(serial) => {
            let date = from_excel_serial(*serial)?;
            Ok(Some(PartialDate {
                year: date.year(),
                month: Some(u8::from(date.month())),
                day: Some(date.day()),
            }))
        }
        Cell::Number(x) => from_number(*x).map(Some),
        Cell::Text(t) if t.trim().is_empty() => Ok(None),
        Cell::Text(t) => parse_date_text(t)
            .map(Some)
            .ok_or_else(|| not_a_date(t.trim())),
        Cell::Bool(_) => Err(not_a_date(&cell_display(cell))),
    }
}

/// Converts a cell to `YYYY-MM-DD`, widening a month or year as `fill` says.
pub fn convert_date(cell: &Cell, fill: Fill) -> Result<Option<String>, ConvertError> {
    let Some(partial) = parse_partial(cell)? else {
        return Ok(None);
    };
    partial
        .to_date(fill)
        .map(iso)
        .map(Some)
        .ok_or_else(|| not_a_date(&cell_display(cell)))
}

/// Separators between the two ends of a period other than a hyphen.
const PERIOD_SEPARATORS: [&str; 9] = ["至", "到", "~", "～", "—", "–", "―", "－－", "--"];

/// Converts a research period ("2018.01-2020.12", "2018年1月至2020年12月",
/// "2018/01/01 ~ 2020/12/31", "201801-202012") to `(start, end)`: the start widened to the
/// first day, the end to the last. A hyphen separates the ends when no other separator does;
/// the split is taken where both sides are dates, and refused if more than one split would be.
pub fn convert_period(cell: &Cell) -> Result<Option<(String, String)>, ConvertError> {
    let text = match cell {
        Cell::Empty => return Ok(None),
        Cell::Text(t) if t.trim().is_empty() => return Ok(None),
        Cell::Text(t) => to_halfwidth(t.trim()).into_owned(),
        other => {
            let shown = cell_display(other);
            return Err(ConvertError::new(
                format!("「{shown}」不是起止时间；应为如 2018.01-2020.12 的两个日期"),
                format!("{shown:?} is not a period; expected two dates such as 2018.01-2020.12"),
            ));
        }
    };
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let both = |a: &str, b: &str| -> Option<(String, String)> {
        let start = parse_date_text(a)?.to_date(Fill::Start)?;
        let end = parse_date_text(b)?.to_date(Fill::End)?;
        Some((iso(start), iso(end)))
    };
    let mut found = None;
    for sep in PERIOD_SEPARATORS {
        if let Some((a, b)) = text.split_once(sep) {
            found = both(a, b);
            if found.is_some() {
                break;
            }
        }
    }
    if found.is_none() {
        let splits: Vec<_> = text
            .match_indices('-')
            .filter_map(|(i, _)| both(&text[..i], &text[i + 1..]))
            .collect();
        if splits.len() > 1 {
            return Err(ConvertError::new(
                format!("起止时间「{text}」有多种读法；请用「至」分隔两个日期"),
                format!(
                    "period {text:?} can be read more than one way; separate the dates with 至"
                ),
            ));
        }
        found = splits.into_iter().next();
    }
    found.map(Some).ok_or_else(|| {
        ConvertError::new(
            format!("「{text}」不是起止时间；应为如 2018.01-2020.12、2018年1月至2020年12月的两个日期"),
            format!(
                "{text:?} is not a period; expected two dates such as 2018.01-2020.12 or 2018年1月至2020年12月"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(cell: Cell) -> String {
        convert_date(&cell, Fill::Start).unwrap().unwrap()
    }

    fn text(s: &str, fill: Fill) -> Result<Option<String>, ConvertError> {
        convert_date(&Cell::Text(s.into()), fill)
    }

    #[test]
    fn excel_serials_including_the_1900_leap_year_bug() {
        assert_eq!(date(Cell::DateSerial(43525.0)), "2019-03-01");
        assert_eq!(date(Cell::DateSerial(43529.75)), "2019-03-05");
        assert_eq!(date(Cell::DateSerial(1.0)), "1900-01-01");
        assert_eq!(date(Cell::DateSerial(59.0)), "1900-02-28");
        assert_eq!(date(Cell::DateSerial(61.0)), "1900-03-01");
        assert!(convert_date(&Cell::DateSerial(60.0), Fill::Start).is_err());
        assert!(convert_date(&Cell::DateSerial(0.0), Fill::Start).is_err());
        // A serial in a plain number cell.
        assert_eq!(date(Cell::Number(43525.0)), "2019-03-01");
    }

    #[test]
    fn text_dates_in_every_common_form() {
        for (input, start, end) in [
            ("2019年3月5日", "2019-03-05", "2019-03-05"),
            ("2019年3月5号", "2019-03-05", "2019-03-05"),
            ("2019年3月", "2019-03-01", "2019-03-31"),
            ("2019年", "2019-01-01", "2019-12-31"),
            ("2019.03", "2019-03-01", "2019-03-31"),
            ("2019.3.5", "2019-03-05", "2019-03-05"),
            ("2019-3", "2019-03-01", "2019-03-31"),
            ("2019/03/05", "2019-03-05", "2019-03-05"),
            ("201903", "2019-03-01", "2019-03-31"),
            ("20190305", "2019-03-05", "2019-03-05"),
            ("2019", "2019-01-01", "2019-12-31"),
            ("２０１９年２月", "2019-02-01", "2019-02-28"),
            ("2020年2月", "2020-02-01", "2020-02-29"),
            ("2019-03-05 00:00:00", "2019-03-05", "2019-03-05"),
            (" 2019-03-05T08:00 ", "2019-03-05", "2019-03-05"),
        ] {
            assert_eq!(text(input, Fill::Start).unwrap().unwrap(), start, "{input}");
            assert_eq!(text(input, Fill::End).unwrap().unwrap(), end, "{input}");
        }
    }

    #[test]
    fn numbers_typed_into_number_cells() {
        assert_eq!(date(Cell::Number(201903.0)), "2019-03-01");
        assert_eq!(date(Cell::Number(20190305.0)), "2019-03-05");
        assert_eq!(date(Cell::Number(2019.03)), "2019-03-01");
        assert_eq!(date(Cell::Number(2019.0)), "2019-01-01");
        let ambiguous = convert_date(&Cell::Number(2019.1), Fill::Start).unwrap_err();
        assert!(ambiguous.en.contains("January or October"), "{ambiguous:?}");
    }

    #[test]
    fn impossible_or_garbled_dates_are_refused_with_what_was_found() {
        for bad in [
            "2019-13",
            "2019-02-30",
            "19-03-05",
            "2019年3",
            "明年",
            "1850-01-01",
            "2019..3",
        ] {
            let err = text(bad, Fill::Start).unwrap_err();
            assert!(
                err.zh.contains(bad) && err.en.contains(bad),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(text("  ", Fill::Start).unwrap(), None);
    }

    #[test]
    fn periods_split_into_a_whole_month_start_and_end() {
        for (input, start, end) in [
            ("2018.01-2020.12", "2018-01-01", "2020-12-31"),
            ("2018年1月至2020年12月", "2018-01-01", "2020-12-31"),
            ("2018/01/01 ~ 2020/06/30", "2018-01-01", "2020-06-30"),
            ("201801-202012", "2018-01-01", "2020-12-31"),
            ("2018-01-2020-12", "2018-01-01", "2020-12-31"),
            ("2018-01-05-2020-12-31", "2018-01-05", "2020-12-31"),
            ("２０１８．０１—２０２０．１２", "2018-01-01", "2020-12-31"),
            ("2018—2020", "2018-01-01", "2020-12-31"),
        ] {
            let (s, e) = convert_period(&Cell::Text(input.into())).unwrap().unwrap();
            assert_eq!((s.as_str(), e.as_str()), (start, end), "{input}");
        }
        assert!(convert_period(&Cell::Text("2018.01".into())).is_err());
        assert!(convert_period(&Cell::Number(2018.0)).is_err());
        assert_eq!(convert_period(&Cell::Empty).unwrap(), None);
    }
}
