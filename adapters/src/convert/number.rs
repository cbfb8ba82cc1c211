//! Numbers as spreadsheets hold them: number cells, and numbers stored as text ("12.5",
//! "１２．５", "12,500", "12 500"), amounts with their unit ("12.5万元", "125000元"), integers,
//! years and technology readiness levels ("TRL5", "5级", "五级").
//!
//! Amounts: the schema keeps every amount in 万元 (achievement.json `transfer.price`,
//! `application.benefits`; funded_project.json `budget`), so an amount is converted to 万元
//! from the unit written after it, or, when none is, from the column's unit (a mapping option,
//! 万元 unless a header says "(元)"). Results are rounded to 6 decimals (0.01 元), so that
//! 12,500 元 is exactly 1.25 万元 and not 1.2500000000000002.
//!
//! What it may not touch: ranges. The schema says what is too large or negative.

use serde_json::{Number, Value};

use super::text::to_halfwidth;
use super::{ConvertError, cell_display};
use crate::row::Cell;

/// A unit of money an amount can be written in, as a factor to 万元.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    /// How it is written ("元", "万元", …).
    pub name: &'static str,
    /// What one of it is in 万元.
    pub in_wan: f64,
}

/// The units an amount may carry, longest spelling first (so 万元 is not read as 元).
pub const UNITS: [Unit; 6] = [
    Unit {
        name: "亿元",
        in_wan: 10_000.0,
    },
    Unit {
        name: "万元",
        in_wan: 1.0,
    },
    Unit {
        name: "千元",
        in_wan: 0.1,
    },
    Unit {
        name: "元",
        in_wan: 0.0001,
    },
    Unit {
        name: "亿",
        in_wan: 10_000.0,
    },
    Unit {
        name: "万",
        in_wan: 1.0,
    },
];

/// The unit named `name` (as in a mapping file's `unit` option).
pub fn unit(name: &str) -> Option<Unit> {
    UNITS.iter().copied().find(|u| u.name == name)
}

fn not_a_number(found: &str, what_zh: &str, what_en: &str) -> ConvertError {
    ConvertError::new(
        format!("「{found}」不是{what_zh}"),
        format!("{found:?} is not {what_en}"),
    )
}

/// Reads a number written as text: half-width, spaces removed, a leading `+`/`-`, thousands
/// separators `,` only in groups of three ("12,500", not "12,5").
pub fn parse_number_text(text: &str) -> Option<f64> {
    let s: String = to_halfwidth(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if s.is_empty() {
        return None;
    }
    let plain = if s.contains(',') {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s.as_str(), None),
        };
        let digits = int.trim_start_matches(['+', '-']);
        let mut groups = digits.split(',');
        let first = groups.next()?;
        if first.is_empty() || first.len() > 3 || groups.any(|g| g.len() != 3) {
            return None;
        }
        let mut plain = int.replace(',', "");
        if let Some(f) = frac {
            plain.push('.');
            plain.push_str(f);
        }
        plain
    } else {
        s
    };
    let body = plain.trim_start_matches(['+', '-']);
    if body.is_empty()
        || !body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || body.bytes().filter(|&b| b == b'.').count() > 1
        || body.starts_with('.')
        || body.ends_with('.')
        || plain.len() - body.len() > 1
    {
        return None;
    }
    plain.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A JSON number: an integer when the value is whole and exactly representable, else a float.
pub fn json_number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        Value::Number(Number::from(x as i64))
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// Converts a cell to a number.
pub fn convert_number(cell: &Cell) -> Result<Option<f64>, ConvertError> {
    match cell {
        Cell::Empty => Ok(None),
        Cell::Number(x) => Ok(Some(*x)),
        Cell::Text(t) if t.trim().is_empty() => Ok(None),
        Cell::Text(t) => parse_number_text(t).map(Some).ok_or_else(|| {
            not_a_number(
                t.trim(),
                "数字，如 12.5 或 12,500",
                "a number such as 12.5 or 12,500",
            )
        }),
        other => Err(not_a_number(&cell_display(other), "数字", "a number")),
    }
}

/// Converts a cell to a whole number.
pub fn convert_integer(cell: &Cell) -> Result<Option<i64>, ConvertError> {
    let Some(x) = convert_number(cell)? else {
        return Ok(None);
    };
    if x.fract() != 0.0 || x.abs() > 9e15 {
        let found = cell_display(cell);
        return Err(not_a_number(&found, "整数", "a whole number"));
    }
    Ok(Some(x as i64))
}

/// Converts an amount to 万元: a number with an optional unit after it ("12.5万元", "125000元",
/// "1.2亿"), or without, in `column_unit`.
pub fn convert_amount(cell: &Cell, column_unit: Unit) -> Result<Option<f64>, ConvertError> {
    let (x, unit) = match cell {
        Cell::Text(t) if !t.trim().is_empty() => {
            let half = to_halfwidth(t.trim()).replace(char::is_whitespace, "");
            let (number, unit) = match UNITS.iter().find(|u| half.ends_with(u.name)) {
                Some(u) => (&half[..half.len() - u.name.len()], *u),
                None => (half.as_str(), column_unit),
            };
            let x = parse_number_text(number).ok_or_else(|| {
                not_a_number(
                    t.trim(),
                    "金额，如 12.5、12.5万元 或 125000元",
                    "an amount such as 12.5, 12.5万元 or 125000元",
                )
            })?;
            (x, unit)
        }
        other => match convert_number(other)? {
            Some(x) => (x, column_unit),
            None => return Ok(None),
        },
    };
    Ok(Some((x * unit.in_wan * 1e6).round() / 1e6))
}

/// Converts a year ("2020", "2020年", a number or a date cell).
pub fn convert_year(cell: &Cell) -> Result<Option<i64>, ConvertError> {
    let year = match cell {
        Cell::DateSerial(serial) => i64::from(super::date::from_excel_serial(*serial)?.year()),
        Cell::Text(t) if !t.trim().is_empty() => {
            let half = to_halfwidth(t.trim()).into_owned();
            let digits = half.strip_suffix('年').unwrap_or(&half);
            match digits.parse::<i64>() {
                Ok(y) if digits.len() == 4 => y,
                _ => {
                    return Err(not_a_number(
                        t.trim(),
                        "年份，如 2020",
                        "a year such as 2020",
                    ));
                }
            }
        }
        other => match convert_integer(other)? {
            Some(y) => y,
            None => return Ok(None),
        },
    };
    if !(1900..=2100).contains(&year) {
        return Err(not_a_number(
            &cell_display(cell),
            "1900–2100 之间的年份",
            "a year in 1900-2100",
        ));
    }
    Ok(Some(year))
}

const CHINESE_DIGITS: [char; 9] = ['一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Converts a technology readiness level (技术就绪度, 1–9): "5", "TRL5", "TRL-5", "5级",
/// "第5级", "五级", "TRL 5级".
pub fn convert_trl(cell: &Cell) -> Result<Option<i64>, ConvertError> {
    let text = match cell {
        Cell::Empty => return Ok(None),
        Cell::Text(t) if t.trim().is_empty() => return Ok(None),
        Cell::Text(t) => to_halfwidth(t.trim())
            .to_ascii_uppercase()
            .replace(char::is_whitespace, ""),
        other => cell_display(other),
    };
    let core = text.strip_prefix("TRL").unwrap_or(&text);
    let core = core.trim_start_matches(['-', ':']);
    let core = core.strip_prefix('第').unwrap_or(core);
    let core = core.strip_suffix('级').unwrap_or(core);
    let level = match core.parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            let mut chars = core.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => CHINESE_DIGITS
                    .iter()
                    .position(|&d| d == c)
                    .map(|i| i as i64 + 1),
                _ => None,
            }
        }
    };
    match level {
        Some(n) if (1..=9).contains(&n) => Ok(Some(n)),
        _ => Err(not_a_number(
            &text,
            "技术就绪度（1–9 级，如 5、TRL5、5级）",
            "a technology readiness level 1-9 (e.g. 5, TRL5, 5级)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    #[test]
    fn numbers_stored_as_text() {
        for (input, expected) in [
            ("12.5", 12.5),
            ("１２．５", 12.5),
            ("12,500", 12500.0),
            ("1,234,567.5", 1234567.5),
            (" 12 500 ", 12500.0),
            ("-3", -3.0),
            ("+7", 7.0),
        ] {
            assert_eq!(
                convert_number(&t(input)).unwrap(),
                Some(expected),
                "{input}"
            );
        }
        for bad in ["12,5", "1.2.3", "abc", "12.", ".5", "--1", "1,2345"] {
            let err = convert_number(&t(bad)).unwrap_err();
            assert!(err.zh.contains(bad), "{bad}: {err:?}");
        }
        assert_eq!(convert_number(&Cell::Number(3.5)).unwrap(), Some(3.5));
        assert_eq!(convert_number(&t(" ")).unwrap(), None);
    }

    #[test]
    fn amounts_become_wan_yuan() {
        let wan = unit("万元").unwrap();
        let yuan = unit("元").unwrap();
        assert_eq!(convert_amount(&t("12.5"), wan).unwrap(), Some(12.5));
        assert_eq!(convert_amount(&t("12.5万元"), yuan).unwrap(), Some(12.5));
        assert_eq!(convert_amount(&t("125,000元"), wan).unwrap(), Some(12.5));
        assert_eq!(convert_amount(&t("12500"), yuan).unwrap(), Some(1.25));
        assert_eq!(convert_amount(&t("1.2亿"), wan).unwrap(), Some(12000.0));
        assert_eq!(
            convert_amount(&Cell::Number(3.0), yuan).unwrap(),
            Some(0.0003)
        );
        assert_eq!(
            convert_amount(&t("１２．５　万元"), wan).unwrap(),
            Some(12.5)
        );
        assert!(convert_amount(&t("约12万"), wan).is_err());
    }

    #[test]
    fn integers_years_and_readiness_levels() {
        assert_eq!(convert_integer(&t("１２")).unwrap(), Some(12));
        assert!(convert_integer(&t("1.5")).is_err());
        assert_eq!(convert_year(&t("2020年")).unwrap(), Some(2020));
        assert_eq!(convert_year(&Cell::Number(2021.0)).unwrap(), Some(2021));
        assert_eq!(
            convert_year(&Cell::DateSerial(43525.0)).unwrap(),
            Some(2019)
        );
        assert!(convert_year(&t("20")).is_err());
        for (input, level) in [
            ("5", 5),
            ("TRL5", 5),
            ("trl-7", 7),
            ("５级", 5),
            ("第3级", 3),
            ("九级", 9),
            ("TRL 4级", 4),
        ] {
            assert_eq!(convert_trl(&t(input)).unwrap(), Some(level), "{input}");
        }
        assert_eq!(convert_trl(&Cell::Number(6.0)).unwrap(), Some(6));
        assert!(convert_trl(&t("10")).is_err());
        assert!(convert_trl(&t("成熟")).is_err());
    }

    #[test]
    fn json_numbers_are_integers_when_whole() {
        assert_eq!(json_number(12.0), serde_json::json!(12));
        assert_eq!(json_number(12.5), serde_json::json!(12.5));
    }
}
