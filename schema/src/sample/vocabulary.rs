//! The generator's vocabulary, read from the TOML files in `sample/vocabulary/`.
//!
//! Why data files: the words a sample record is made of (provinces and cities, technology
//! areas, programs, institution and people's names, phrases) are domain knowledge, and a domain
//! expert should be able to correct a term without reading Rust. Each file starts with a
//! comment (in Chinese and English) saying what its lists are and how the generator uses them.
//!
//! How: the files are compiled in with `include_str!` and parsed once, on first use, into the
//! typed tables below (a [`LazyLock`]); after that the generator reads plain vectors, as it read
//! constants before. Nothing is read from disk or the network at run time, so the crate stays
//! pure. A file that does not parse or breaks a rule the generator relies on (a fixed count, a
//! known placeholder, a known university shape) panics on first use with the file and the
//! reason; `every_vocabulary_file_parses_and_its_lists_are_sound` catches that in `cargo test`.
//!
//! What it may not do: compose text or draw random numbers (that is the generator's), or change
//! the order of a list — the position of a term is what a seeded draw picks, so the same seed
//! gives the same records only while the lists stay as they are.

use crate::record::{Field, Form};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Every table the generator draws from.
#[derive(Debug)]
pub(super) struct Vocabulary {
    /// `places.toml`: the 31 mainland province-level divisions, in GB/T 2260 order.
    pub places: Vec<Place>,
    /// `domains.toml`: the technology areas.
    pub domains: Vec<Domain>,
    /// Each domain's weight, in domain order (for a weighted draw).
    pub domain_weights: Vec<u32>,
    /// `programs.toml`.
    pub programs: Programs,
    /// `institutions.toml`.
    pub institutions: Institutions,
    /// `people.toml`.
    pub people: People,
    /// `phrases.toml`.
    pub phrases: Phrases,
}

/// The vocabulary, parsed on first use.
static VOCABULARY: LazyLock<Vocabulary> = LazyLock::new(Vocabulary::load);

/// The vocabulary (parsed once, then shared by every generator and thread).
pub(super) fn vocabulary() -> &'static Vocabulary {
    &VOCABULARY
}

/// The province-level divisions.
pub(super) fn places() -> &'static [Place] {
    &VOCABULARY.places
}

/// The source of each vocabulary file, by name (for the loader and its tests).
pub(super) const FILES: [(&str, &str); 6] = [
    ("places.toml", include_str!("vocabulary/places.toml")),
    ("domains.toml", include_str!("vocabulary/domains.toml")),
    ("programs.toml", include_str!("vocabulary/programs.toml")),
    (
        "institutions.toml",
        include_str!("vocabulary/institutions.toml"),
    ),
    ("people.toml", include_str!("vocabulary/people.toml")),
    ("phrases.toml", include_str!("vocabulary/phrases.toml")),
];

/// A city (or, in a municipality, a district) with what addresses and phones need.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct City {
    pub name: String,
    /// GB/T 2260 region code.
    pub code: String,
    /// For e-mail domains.
    pub pinyin: String,
    pub postcode: String,
    /// Telephone area code.
    pub area: String,
}

/// A mainland province-level division.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Place {
    pub code: String,
    pub full: String,
    pub short: String,
    pub municipality: bool,
    /// The capital first.
    pub cities: Vec<City>,
    /// Real universities beyond the generated names.
    #[serde(default)]
    pub universities: Vec<String>,
}

/// A value range of a technical indicator, rendered `{name}{value}{unit}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Metric {
    pub name: String,
    pub unit: String,
    pub lo: u32,
    pub hi: u32,
}

/// A 国家科技重大专项: its number (in project numbers) and name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Major {
    pub number: u8,
    pub name: String,
}

/// The vocabulary of one technology area (see the key list in `domains.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Domain {
    pub field: Field,
    /// Relative frequency among the domains.
    pub weight: u32,
    /// Results of this area are mostly soft science.
    #[serde(default)]
    pub soft_science: bool,
    /// Main terms: what titles are about.
    pub subjects: Vec<String>,
    /// Two-character words, always used as keywords and in the text.
    pub short: Vec<String>,
    pub keywords: Vec<String>,
    /// What an applied result achieves (title endings).
    pub aspects: Vec<String>,
    /// What a basic result explains.
    pub mechanisms: Vec<String>,
    pub problems: Vec<String>,
    pub techs: Vec<String>,
    pub metrics: Vec<Metric>,
    pub applications: Vec<String>,
    pub clc: Vec<String>,
    pub disciplines: Vec<String>,
    pub industries: Vec<String>,
    /// 国家重点研发计划 key special projects of the area.
    pub key_rd: Vec<String>,
    /// 国家科技重大专项, if one fits.
    #[serde(default)]
    pub major: Option<Major>,
    /// Result forms typical beyond patents and papers.
    pub forms: Vec<Form>,
    /// `{province}{institute}院`.
    pub institute: String,
    /// `中国科学院{city}{cas}研究所`.
    pub cas: String,
    /// Company name words.
    pub companies: Vec<String>,
    /// The name of a `[university_shapes]` list of `institutions.toml`.
    pub universities: String,
    /// That list, resolved when loading.
    #[serde(skip)]
    pub university_shapes: Vec<NamePattern>,
    /// Results also come from hospitals.
    pub medical: bool,
    /// The learned society that evaluates results.
    pub society: String,
    /// The agency that accepts key R&D projects.
    pub agency: String,
    /// Sub-program of a provincial key R&D project.
    pub prov_sub: String,
}

/// `programs.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Programs {
    pub most: Ministry,
    pub nsfc: Nsfc,
    pub key_rd: Named,
    pub major: Named,
    pub guide: WithSubPrograms,
    pub base_talent: WithSubPrograms,
    pub province: Provincial,
    pub transfer: TransferObligations,
}

/// The ministry of science and technology as a funder.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Ministry {
    pub name: String,
    pub uscc: String,
    pub region: String,
}

/// 国家自然科学基金 and its funding types.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Nsfc {
    pub name: String,
    pub funder: String,
    /// Exactly [`NSFC_TYPES`] rows: the type is a digit of the project number.
    pub types: Vec<NsfcType>,
}

/// How many NSFC funding types project numbers encode.
pub(super) const NSFC_TYPES: usize = 4;
/// How many provincial basic-research and talent types project numbers encode.
pub(super) const PROVINCE_TYPES: usize = 3;

/// One NSFC funding type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NsfcType {
    pub name: String,
    /// The fourth digit of the project number.
    pub digit: u8,
    /// Funding period in years.
    pub years: u16,
    /// Direct funding range in 万元, inclusive.
    pub budget: [u32; 2],
}

/// A program known by its name only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Named {
    pub name: String,
}

/// A program and its sub-programs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WithSubPrograms {
    pub name: String,
    pub sub_programs: Vec<String>,
}

/// Provincial program names (after the province's full name) and types.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Provincial {
    pub key_rd: String,
    pub basic: String,
    pub major: String,
    pub talent: String,
    pub basic_types: Vec<String>,
    pub talent_types: Vec<String>,
}

/// Descriptions of a project's transfer obligation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TransferObligations {
    pub obligations: Vec<String>,
}

/// `institutions.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Institutions {
    pub brands: Vec<String>,
    /// Repeats are weights.
    pub company_suffixes: Vec<String>,
    pub roads: Vec<String>,
    pub hospitals: Vec<NamePattern>,
    /// Named lists of university name patterns; repeats are weights.
    pub university_shapes: BTreeMap<String, Vec<NamePattern>>,
}

/// `people.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct People {
    pub surnames: Vec<NamePart>,
    pub given: Vec<NamePart>,
    pub contributions: Vec<String>,
    pub titles: Titles,
}

/// A surname or given-name character with its pinyin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NamePart {
    pub name: String,
    pub pinyin: String,
}

/// Professional titles by unit type; repeats are weights.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Titles {
    pub university: Vec<String>,
    pub company: Vec<String>,
    pub hospital: Vec<String>,
    /// Institutes and others.
    pub other: Vec<String>,
}

/// `phrases.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Phrases {
    pub qualifiers: Vec<String>,
    pub soft_aspects: Vec<String>,
    pub soft_methods: Vec<String>,
    pub social_benefits: Vec<String>,
    pub transfer_conditions: Vec<String>,
    pub software_words: Vec<String>,
    pub invention_endings: Vec<String>,
    pub utility_endings: Vec<String>,
}

/// An institution name pattern such as `{市}理工大学`: text with the placeholders `{省}` (the
/// province's short name), `{省全称}` (its full name) and `{市}` (the capital, or a
/// municipality's short name).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct NamePattern {
    parts: Vec<PatternPart>,
    /// The pattern as written (for messages and tests).
    source: String,
}

#[derive(Debug, Clone)]
enum PatternPart {
    Text(String),
    Province,
    ProvinceFull,
    City,
}

impl TryFrom<String> for NamePattern {
    type Error = String;

    fn try_from(source: String) -> Result<NamePattern, String> {
        let mut parts = Vec::new();
        let mut rest = source.as_str();
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(PatternPart::Text(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("{source:?}: a '{{' without its '}}'"))?;
            parts.push(match &rest[open + 1..open + close] {
                "省" => PatternPart::Province,
                "省全称" => PatternPart::ProvinceFull,
                "市" => PatternPart::City,
                other => {
                    return Err(format!(
                        "{source:?}: unknown placeholder {{{other}}} (use {{省}}, {{省全称}} or {{市}})"
                    ));
                }
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(PatternPart::Text(rest.to_owned()));
        }
        Ok(NamePattern { parts, source })
    }
}

impl NamePattern {
    /// The name for an institution in `place`, whose city word is `city`.
    pub fn render(&self, place: &Place, city: &str) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            out.push_str(match part {
                PatternPart::Text(text) => text,
                PatternPart::Province => &place.short,
                PatternPart::ProvinceFull => &place.full,
                PatternPart::City => city,
            });
        }
        out
    }

    /// The pattern as written.
    #[cfg(test)]
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The `places.toml` file: a list of `[[place]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlacesFile {
    place: Vec<Place>,
}

/// The `domains.toml` file: a list of `[[domain]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainsFile {
    domain: Vec<Domain>,
}

/// Parses one vocabulary file, or panics naming the file and what is wrong in it.
fn parse<T: serde::de::DeserializeOwned>(name: &str, source: &str) -> T {
    toml::from_str(source).unwrap_or_else(|e| {
        panic!("sample vocabulary schema/src/sample/vocabulary/{name} does not parse: {e}")
    })
}

fn source(name: &str) -> &'static str {
    FILES
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, source)| *source)
        .expect("a vocabulary file of FILES")
}

impl Vocabulary {
    /// Parses every file and checks what the generator relies on; panics with the file and the
    /// reason if something is wrong.
    fn load() -> Vocabulary {
        let places: PlacesFile = parse("places.toml", source("places.toml"));
        let domains: DomainsFile = parse("domains.toml", source("domains.toml"));
        let mut vocabulary = Vocabulary {
            places: places.place,
            domains: domains.domain,
            domain_weights: Vec::new(),
            programs: parse("programs.toml", source("programs.toml")),
            institutions: parse("institutions.toml", source("institutions.toml")),
            people: parse("people.toml", source("people.toml")),
            phrases: parse("phrases.toml", source("phrases.toml")),
        };
        for domain in &mut vocabulary.domains {
            let shapes = vocabulary
                .institutions
                .university_shapes
                .get(&domain.universities)
                .unwrap_or_else(|| {
                    panic!(
                        "domains.toml: universities = {:?} of {} is not a list of \
                         [university_shapes] in institutions.toml",
                        domain.universities,
                        domain.field.as_str()
                    )
                });
            domain.university_shapes = shapes.clone();
        }
        vocabulary.domain_weights = vocabulary.domains.iter().map(|d| d.weight).collect();
        let counts = [
            (
                "programs.toml: [[nsfc.types]]",
                vocabulary.programs.nsfc.types.len(),
                NSFC_TYPES,
            ),
            (
                "programs.toml: province.basic_types",
                vocabulary.programs.province.basic_types.len(),
                PROVINCE_TYPES,
            ),
            (
                "programs.toml: province.talent_types",
                vocabulary.programs.province.talent_types.len(),
                PROVINCE_TYPES,
            ),
        ];
        for (what, count, want) in counts {
            assert!(
                count == want,
                "{what} has {count} entries; project numbers encode exactly {want}"
            );
        }
        assert!(
            vocabulary.domain_weights.iter().sum::<u32>() > 0,
            "domains.toml: every weight is 0"
        );
        vocabulary
    }
}
