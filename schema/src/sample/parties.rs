//! The parties of a record: institutions (with stable credit codes and regions), people (names,
//! titles, contributions), contacts, and the identifiers they carry (USCC, resident identity
//! numbers, phone numbers, e-mail addresses).
//!
//! Why on its own: an institution's identity must be a pure function of its name — the same
//! name always comes with the same USCC and region on every node — and that rule is easier to
//! keep when the code that makes names and codes is in one place.
//!
//! What it may not touch: the words themselves (places, brands, roads, name patterns, names
//! and titles are in `places.toml`, `institutions.toml` and `people.toml`), or record-level
//! decisions such as secrecy.

use super::calendar::Ymd;
use super::draw::{Draw, fnv1a, splitmix};
use super::generator::{SampleGenerator, Scope};
use super::vocabulary::{City, Domain, Place, places, vocabulary};
use crate::codes::{USCC_CHARSET, uscc_check_character};
use crate::record::{Contact, Degree, Funder, Institution, Person, UnitType};
use std::fmt;

impl SampleGenerator {
    /// An institution: mostly in the node's province for a province node, anywhere otherwise.
    pub(super) fn org(&self, d: &mut Draw, scope: &Scope, domain: &Domain, home_only: bool) -> Org {
        let place_index = match scope.home {
            Some(home) if home_only || d.chance(0.85) => home,
            _ => d.below(places().len()),
        };
        let vocabulary = vocabulary();
        let place = &places()[place_index];
        let capital = &place.cities[0];
        let city_word = if place.municipality {
            &place.short
        } else {
            &capital.name
        };
        let kind = d.weighted(&[40, 25, 28, if domain.medical { 10 } else { 0 }]);
        let (name, unit, city, prefix, register) = match kind {
            0 => {
                let extra = &place.universities;
                let name = if !extra.is_empty() && d.chance(0.3) {
                    d.word(extra).to_owned()
                } else {
                    d.pick(&domain.university_shapes).render(place, city_word)
                };
                (name, UnitType::University, 0, "12", place.code.as_str())
            }
            1 => {
                if d.chance(0.6) {
                    let name = format!("{}{}院", place.full, domain.institute);
                    (name, UnitType::Institute, 0, "12", place.code.as_str())
                } else {
                    let name = if place.code == "110000" {
                        format!("中国科学院{}研究所", domain.cas)
                    } else {
                        format!("中国科学院{city_word}{}研究所", domain.cas)
                    };
                    (name, UnitType::Institute, 0, "12", "100000")
                }
            }
            2 => {
                let mut city = d.below(place.cities.len());
                let word = if place.municipality {
                    &place.short
                } else {
                    &place.cities[city].name
                };
                let institutions = &vocabulary.institutions;
                let name = format!(
                    "{word}{}{}{}",
                    d.word(&institutions.brands),
                    d.word(&domain.companies),
                    d.word(&institutions.company_suffixes)
                );
                if place.municipality {
                    // The name does not say the district: let the name decide it, so one name
                    // always comes with one region and one code.
                    city = (fnv1a(name.as_bytes()) % place.cities.len() as u64) as usize;
                }
                (
                    name,
                    UnitType::Company,
                    city,
                    "91",
                    place.cities[city].code.as_str(),
                )
            }
            _ => {
                let name = d
                    .pick(&vocabulary.institutions.hospitals)
                    .render(place, city_word);
                (name, UnitType::Hospital, 0, "12", place.code.as_str())
            }
        };
        let uscc = uscc_for(prefix, register, &name, unit == UnitType::Company);
        Org {
            name,
            uscc,
            place: place_index,
            city,
            unit,
        }
    }

    /// A completer or PI working at `org`; the first of a list carries the most detail.
    pub(super) fn person(
        &self,
        d: &mut Draw,
        who: &Who,
        org: &Org,
        position: usize,
        domain: &Domain,
        pi: bool,
    ) -> Person {
        let first = position == 0;
        let people = &vocabulary().people;
        let titles = match org.unit {
            UnitType::University => &people.titles.university,
            UnitType::Company => &people.titles.company,
            UnitType::Hospital => &people.titles.hospital,
            _ => &people.titles.other,
        };
        let city = &places()[org.place].cities[org.city];
        let title = (first || d.chance(0.8)).then(|| d.word(titles).to_owned());
        let degree = d.chance(0.8).then(|| match d.weighted(&[55, 25, 15, 5]) {
            0 => Degree::Doctor,
            1 => Degree::Master,
            2 => Degree::Bachelor,
            _ => Degree::Other,
        });
        let contribution = (!pi && position < 3 && d.chance(0.8)).then(|| {
            if first {
                format!("项目负责人，{}", d.word(&people.contributions))
            } else {
                format!(
                    "{}，负责{}",
                    d.word(&people.contributions),
                    d.word(&domain.techs)
                )
            }
        });
        let contactable = d.chance(if first { 0.6 } else { 0.2 });
        Person {
            name: who.name.clone(),
            title,
            degree,
            institution: Some(org.name.clone()),
            contribution,
            id_number: (first && !pi && d.chance(0.35)).then(|| id_number(d, city)),
            phone: contactable.then(|| phone(d, city)),
            email: contactable.then(|| email(d, who, city)),
        }
    }

    pub(super) fn contact(&self, d: &mut Draw, org: &Org) -> Contact {
        let place = &places()[org.place];
        let city = &place.cities[org.city];
        let who = who(d);
        let district = if place.municipality {
            format!("{}区", city.name)
        } else {
            format!("{}市", city.name)
        };
        Contact {
            phone: d.chance(0.9).then(|| phone(d, city)),
            email: d.chance(0.7).then(|| email(d, &who, city)),
            address: d.chance(0.8).then(|| {
                format!(
                    "{}{district}{}{}号",
                    place.full,
                    d.word(&vocabulary().institutions.roads),
                    d.range(1, 399)
                )
            }),
            postcode: d.chance(0.8).then(|| city.postcode.to_owned()),
            name: who.name,
        }
    }
}

/// An institution with where it is.
#[derive(Debug, Clone)]
pub(super) struct Org {
    pub(super) name: String,
    pub(super) uscc: String,
    /// Index into the places of `places.toml`.
    pub(super) place: usize,
    /// Index into the place's cities.
    pub(super) city: usize,
    pub(super) unit: UnitType,
}

impl Org {
    pub(super) fn institution(&self) -> Institution {
        Institution {
            name: self.name.clone(),
            uscc: self.uscc.clone(),
            region: places()[self.place].cities[self.city].code.clone(),
            unit_type: Some(self.unit),
        }
    }
}

/// A person's name, and the table rows it was built from (for the pinyin of e-mail addresses).
#[derive(Debug, Clone)]
pub(super) struct Who {
    pub(super) name: String,
    surname: usize,
    given: [Option<usize>; 2],
}

impl Who {
    fn pinyin(&self) -> impl fmt::Display + '_ {
        struct Pinyin<'a>(&'a Who);
        impl fmt::Display for Pinyin<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let people = &vocabulary().people;
                f.write_str(&people.surnames[self.0.surname].pinyin)?;
                for k in self.0.given.iter().flatten() {
                    f.write_str(&people.given[*k].pinyin)?;
                }
                Ok(())
            }
        }
        Pinyin(self)
    }
}

/// A person's name: a surname and one or two given-name characters.
pub(super) fn who(d: &mut Draw) -> Who {
    let people = &vocabulary().people;
    let surname = d.below(people.surnames.len());
    let mut name = String::with_capacity(12);
    name.push_str(&people.surnames[surname].name);
    let mut given = [Some(d.below(people.given.len())), None];
    if d.chance(0.65) {
        given[1] = Some(d.below(people.given.len()));
    }
    for k in given.iter().flatten() {
        name.push_str(&people.given[*k].name);
    }
    Who {
        name,
        surname,
        given,
    }
}

fn phone(d: &mut Draw, city: &City) -> String {
    if d.chance(0.5) {
        format!(
            "{}-{}{:07}",
            city.area,
            d.pick(&[6, 8]),
            d.range(0, 9_999_999)
        )
    } else {
        format!(
            "1{}{:09}",
            d.pick(&[3, 5, 7, 8, 9]),
            d.range(0, 999_999_999)
        )
    }
}

fn email(d: &mut Draw, who: &Who, city: &City) -> String {
    if d.chance(0.5) {
        format!("{}@{}.example.cn", who.pinyin(), city.pinyin)
    } else {
        format!(
            "{}{}@{}.example.cn",
            who.pinyin(),
            d.range(1, 99),
            city.pinyin
        )
    }
}

/// A resident identity number (GB 11643) with a correct check character. Synthetic: the
/// region is the person's city, the birth date and sequence are random.
fn id_number(d: &mut Draw, city: &City) -> String {
    let mut id = String::with_capacity(18);
    id.push_str(&city.code[..4]);
    let county = *d.pick(&["02", "03", "11", "21"]);
    id.push_str(county);
    let birth = Ymd::new(
        d.range(1960, 1995) as u16,
        d.range(1, 12) as u8,
        d.range(1, 28) as u8,
    );
    id.push_str(&format!(
        "{:04}{:02}{:02}{:03}",
        birth.y,
        birth.m,
        birth.d,
        d.range(1, 999)
    ));
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = id
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    id.push(b"10X98765432"[(sum % 11) as usize] as char);
    id
}

/// A valid unified social credit code for an institution, a pure function of its name: the
/// registration authority and type (`12` public institution, `91` company, `11` government),
/// the registering region, a 9-character organisation code derived from the name, and the
/// GB 32100 check character.
pub(super) fn uscc_for(prefix: &str, region: &str, name: &str, company: bool) -> String {
    let mut h = splitmix(fnv1a(name.as_bytes()));
    let mut first17 = String::with_capacity(18);
    first17.push_str(prefix);
    first17.push_str(region);
    if company && h & 1 == 0 {
        // Codes issued since 2015: MA + seven characters of the USCC set.
        first17.push_str("MA");
        for _ in 0..7 {
            h = splitmix(h);
            first17.push(USCC_CHARSET[(h % 31) as usize] as char);
        }
    } else {
        // An older GB 11714 organisation code: eight digits and its check character.
        let mut digits = [0u32; 8];
        for (k, digit) in digits.iter_mut().enumerate() {
            h = splitmix(h);
            *digit = if k == 0 && !company {
                4
            } else {
                (h % 10) as u32
            };
        }
        const WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
        for d in digits {
            first17.push(char::from_digit(d, 10).expect("a digit"));
        }
        first17.push(match 11 - sum % 11 {
            10 => 'X',
            11 => '0',
            c => char::from_digit(c, 10).expect("a digit"),
        });
    }
    let check = uscc_check_character(&first17).expect("built from the USCC character set");
    first17.push(check);
    first17
}

impl Place {
    /// The province's science and technology department.
    pub(super) fn department(&self) -> String {
        if self.municipality {
            format!("{}科学技术局", self.full)
        } else {
            format!("{}科学技术厅", self.full)
        }
    }

    /// The department as the funder of provincial programs.
    pub(super) fn department_funder(&self) -> Funder {
        let name = self.department();
        Funder {
            uscc: Some(uscc_for("11", &self.code, &name, false)),
            region: Some(self.code.clone()),
            name,
        }
    }
}
