//! Facets: how many visible matches have each value of a filterable field, counted in the
//! same pass over the matches that finds the page ([`super::collect`]).
//!
//! **The packed facet column.** Facets cost a pass over every match, not just over the page, so
//! what is read per match must be as little as possible. The single-valued facets of an entry
//! (province, technology field, category, readiness level, transfer modes, year) are packed
//! into one number ([`Packed`]) kept in one dense fast column, `facets`: counting a match is one
//! column read, per block of matches, and a few shifts into fixed arrays ([`FacetTally`]).
//! Programs are the one open-ended facet: an entry's first program is a dense string column
//! (`program1`, [`NO_PROGRAM`] when it has none), the others — few entries have any — go to
//! `program_more`, read only for the matches whose packed number says they have more. Years
//! the packed number cannot hold (outside 1900–2921) are read from the `year` column. Filters
//! do not read these columns: they query the indexed fields.
//!
//! What it does not do: it does not compute facets "disjunctively" (a facet's counts are over
//! the filtered match set, its own filter included).
//!
//! What it may not touch: text, stored fields, audiences. It counts whatever matches the
//! collector hands it, so that what a caller may see stays decided in one place, the query
//! ([`super::query`] puts the audience filter in it). The packed layout is part of
//! [`FORMAT`](super::FORMAT).

use std::collections::HashMap;

use rix_schema::record::{Category, Field as TechField, TransferMode};
use serde::Serialize;

/// How many visible matches have each value of a filterable field, most frequent first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facets {
    /// Province codes.
    pub region: Vec<FacetCount>,
    /// Technology fields.
    pub field: Vec<FacetCount>,
    /// Achievement categories.
    pub category: Vec<FacetCount>,
    /// Programs.
    pub program: Vec<FacetCount>,
    /// Technology readiness levels.
    pub trl: Vec<FacetCount>,
    /// Years.
    pub year: Vec<FacetCount>,
    /// Transfer modes.
    pub transfer_mode: Vec<FacetCount>,
}

/// One facet value and how many matches have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FacetCount {
    /// The value as the filter takes it.
    pub value: String,
    /// Matches with it.
    pub count: u64,
}

/// `program1` of an entry without a program (programs are at least two characters).
pub(super) const NO_PROGRAM: &str = "-";

/// The single-valued facets of an entry packed into one number, so that counting a match
/// reads one dense column. Every part is 0 when the entry has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Packed {
    /// Province prefix (`53`), 7 bits.
    pub(super) region: u64,
    /// [`field_code`](super::document::field_code), 4 bits.
    pub(super) field: u64,
    /// [`category_code`](super::document::category_code), 3 bits.
    pub(super) category: u64,
    /// 1–9, 4 bits.
    pub(super) trl: u64,
    /// [`mode_bit`](super::document::mode_bit)s, 6 bits.
    pub(super) modes: u64,
    /// The year: 10 bits hold 1900–2921 (as year − 1899); others read the `year` column.
    pub(super) year: u64,
    /// More than one program: the others are in `program_more`.
    pub(super) more_programs: bool,
}

const YEAR_BASE: u64 = 1899;
pub(super) const YEAR_ODD: u64 = 1023;

impl Packed {
    pub(super) fn pack(&self) -> u64 {
        let year = match self.year {
            0 => 0,
            y if y > YEAR_BASE && y - YEAR_BASE < YEAR_ODD => y - YEAR_BASE,
            _ => YEAR_ODD,
        };
        (self.region.min(99))
            | (self.field.min(15) << 7)
            | (self.category.min(7) << 11)
            | (self.trl.min(15) << 14)
            | ((self.modes & 0x3f) << 18)
            | (year << 24)
            | (u64::from(self.more_programs) << 34)
    }
}

/// Facet counts of one segment (or, merged, of all), indexed like the parts of [`Packed`].
#[derive(Clone)]
pub(super) struct FacetTally {
    region: [u64; 128],
    field: [u64; 16],
    category: [u64; 8],
    trl: [u64; 16],
    modes: [u64; 6],
    /// By packed year (year − 1899); 0 and [`YEAR_ODD`] are not years.
    year: Vec<u64>,
    /// Years outside 1900–2921, by year.
    pub(super) odd_years: HashMap<u64, u64>,
    pub(super) program: HashMap<String, u64>,
}

impl Default for FacetTally {
    fn default() -> Self {
        FacetTally {
            region: [0; 128],
            field: [0; 16],
            category: [0; 8],
            trl: [0; 16],
            modes: [0; 6],
            year: vec![0; YEAR_ODD as usize + 1],
            odd_years: HashMap::new(),
            program: HashMap::new(),
        }
    }
}

fn sorted(counts: impl IntoIterator<Item = (String, u64)>) -> Vec<FacetCount> {
    let mut v: Vec<FacetCount> = counts
        .into_iter()
        .filter(|(_, c)| *c > 0)
        .map(|(value, count)| FacetCount { value, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    v
}

impl FacetTally {
    /// Counts one match's packed facets.
    #[inline]
    pub(super) fn count(&mut self, packed: u64) {
        self.region[(packed & 0x7f) as usize] += 1;
        self.field[((packed >> 7) & 0xf) as usize] += 1;
        self.category[((packed >> 11) & 0x7) as usize] += 1;
        self.trl[((packed >> 14) & 0xf) as usize] += 1;
        let mut modes = (packed >> 18) & 0x3f;
        while modes != 0 {
            self.modes[modes.trailing_zeros() as usize] += 1;
            modes &= modes - 1;
        }
        self.year[((packed >> 24) & 0x3ff) as usize] += 1;
    }

    pub(super) fn merge(&mut self, other: FacetTally) {
        fn add(into: &mut [u64], from: &[u64]) {
            for (a, b) in into.iter_mut().zip(from) {
                *a += b;
            }
        }
        add(&mut self.region, &other.region);
        add(&mut self.field, &other.field);
        add(&mut self.category, &other.category);
        add(&mut self.trl, &other.trl);
        add(&mut self.year, &other.year);
        add(&mut self.modes, &other.modes);
        for (k, c) in other.odd_years {
            *self.odd_years.entry(k).or_default() += c;
        }
        for (k, c) in other.program {
            *self.program.entry(k).or_default() += c;
        }
    }

    pub(super) fn into_facets(self) -> Facets {
        let listed = |counts: &[u64], names: &[&str]| {
            sorted(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| ((*n).to_owned(), counts[i + 1])),
            )
        };
        let fields: Vec<&str> = TechField::ALL.iter().map(|f| f.as_str()).collect();
        let categories: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        let modes = TransferMode::ALL
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str().to_owned(), self.modes[i]));
        let years = (1..YEAR_ODD as usize)
            .map(|i| ((YEAR_BASE + i as u64).to_string(), self.year[i]))
            .chain(self.odd_years.into_iter().map(|(y, c)| (y.to_string(), c)));
        Facets {
            region: sorted((1..100).map(|p| (format!("{p:02}0000"), self.region[p]))),
            field: listed(&self.field, &fields),
            category: listed(&self.category, &categories),
            program: sorted(self.program),
            trl: sorted((1..10).map(|t| (t.to_string(), self.trl[t]))),
            year: sorted(years),
            transfer_mode: sorted(modes),
        }
    }
}
