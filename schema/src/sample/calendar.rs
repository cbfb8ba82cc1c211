//! Calendar dates of sample records, as plain year-month-day arithmetic.
//!
//! Why: records carry about ten dates each; a small `Copy` date with hand-written formatting
//! is cheap, and knows no clock (the crate stays pure: dates run up to [`CUTOFF`], not "now").
//!
//! What it may not touch: randomness or vocabulary. Callers draw the numbers and pass them in.

use std::fmt;

/// A calendar date; generated days are at most 28 except month ends, so every one is real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Ymd {
    pub(super) y: u16,
    pub(super) m: u8,
    pub(super) d: u8,
}

/// Research ends by this date, so evaluation, registration and decisions fall within 2025.
pub(super) const CUTOFF: Ymd = Ymd::new(2025, 6, 30);

impl Ymd {
    pub(super) const fn new(y: u16, m: u8, d: u8) -> Ymd {
        Ymd { y, m, d }
    }

    pub(super) fn parse(s: &str) -> Option<Ymd> {
        let y = s.get(0..4)?.parse().ok()?;
        let m = s.get(5..7)?.parse().ok()?;
        let d = s.get(8..10)?.parse().ok()?;
        ((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)).then_some(Ymd { y, m, d })
    }

    /// The first day of the month `months` later.
    pub(super) fn plus_months(self, months: u32) -> Ymd {
        let index = u32::from(self.y) * 12 + u32::from(self.m - 1) + months;
        Ymd::new((index / 12) as u16, (index % 12) as u8 + 1, 1)
    }

    pub(super) fn plus_years(self, years: u16) -> Ymd {
        let y = self.y + years;
        Ymd::new(y, self.m, self.d.min(days_in_month(y, self.m)))
    }

    pub(super) fn month_end(self) -> Ymd {
        Ymd::new(self.y, self.m, days_in_month(self.y, self.m))
    }

    pub(super) fn with_day(self, d: u8) -> Ymd {
        Ymd::new(self.y, self.m, d.min(days_in_month(self.y, self.m)))
    }

    /// Whole months from this date's month to `later`'s month.
    pub(super) fn months_until(self, later: Ymd) -> u32 {
        let a = u32::from(self.y) * 12 + u32::from(self.m);
        let b = u32::from(later.y) * 12 + u32::from(later.m);
        b.saturating_sub(a)
    }
}

impl fmt::Display for Ymd {
    /// `YYYY-MM-DD`, written by hand: records carry about ten dates each, and the formatting
    /// machinery was a measurable share of generating them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digit = |n: u16| b'0' + (n % 10) as u8;
        let (y, m, d) = (self.y, u16::from(self.m), u16::from(self.d));
        let bytes = [
            digit(y / 1000),
            digit(y / 100),
            digit(y / 10),
            digit(y),
            b'-',
            digit(m / 10),
            digit(m),
            b'-',
            digit(d / 10),
            digit(d),
        ];
        f.write_str(std::str::from_utf8(&bytes).expect("ASCII digits"))
    }
}

pub(super) fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The latest of the dates that parse (a record's dates all do), or the start of 2025.
pub(super) fn latest_date(dates: &[Option<&str>]) -> Ymd {
    dates
        .iter()
        .flatten()
        .filter_map(|d| Ymd::parse(d))
        .max()
        .unwrap_or(Ymd::new(2025, 1, 1))
}
