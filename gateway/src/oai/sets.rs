//! Sets: how the catalogue's facets become OAI-PMH's `setSpec`s, and which sets an entry is in.
//!
//! Four hierarchies, each a top set with one child per value: `kind:achievement`,
//! `region:530000` (the province of the first institution, or of a project's lead), `field:…`
//! (the technology field) and `program:…` (a funding program). A setSpec may hold only ASCII
//! letters, digits and `-_.!~*'()`, so fields take a fixed English name each ([`FIELD_SLUGS`])
//! and programs, free Chinese text, are written as URL-safe base64 of their UTF-8 (the
//! setName carries the text itself). An entry is in a top set when it is in any of its
//! children. Membership is read from the reader's view of the entry, with the same reading the
//! search index's facets use ([`crate::search::searchable`]), so a set lists what the facet of
//! the same name counts.

use base64::Engine as _;
use rix_schema::RecordKind;
use rix_schema::record::Field as TechField;
use serde_json::Value;

/// The English name of each technology field in a setSpec, in the order of the schema's list
/// ([`TechField::ALL`]).
pub const FIELD_SLUGS: [&str; 10] = [
    "electronic-information",
    "biomedicine",
    "aerospace",
    "new-materials",
    "high-tech-services",
    "new-energy",
    "resources-environment",
    "advanced-manufacturing",
    "modern-agriculture",
    "other",
];

/// A set a request may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetSpec {
    /// `kind` or `kind:…`.
    Kind(Option<RecordKind>),
    /// `region` or `region:530000`.
    Region(Option<String>),
    /// `field` or `field:…` (the field's schema value).
    Field(Option<String>),
    /// `program` or `program:…` (the program's text).
    Program(Option<String>),
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.as_bytes())
}

/// The setSpec of a technology field's schema value.
fn field_slug(value: &str) -> Option<&'static str> {
    TechField::ALL
        .iter()
        .position(|f| f.as_str() == value)
        .and_then(|i| FIELD_SLUGS.get(i).copied())
}

impl SetSpec {
    /// Reads a setSpec; `None` if it names no set this repository has.
    pub fn parse(spec: &str) -> Option<SetSpec> {
        let (top, value) = match spec.split_once(':') {
            Some((t, v)) => (t, Some(v)),
            None => (spec, None),
        };
        Some(match (top, value) {
            ("kind", None) => SetSpec::Kind(None),
            ("kind", Some(k)) => SetSpec::Kind(Some(k.parse().ok()?)),
            ("region", None) => SetSpec::Region(None),
            ("region", Some(r)) => {
                let province =
                    r.len() == 6 && r.bytes().all(|b| b.is_ascii_digit()) && r.ends_with("0000");
                if !province {
                    return None;
                }
                SetSpec::Region(Some(r.to_owned()))
            }
            ("field", None) => SetSpec::Field(None),
            ("field", Some(slug)) => {
                let i = FIELD_SLUGS.iter().position(|s| *s == slug)?;
                SetSpec::Field(Some(TechField::ALL.get(i)?.as_str().to_owned()))
            }
            ("program", None) => SetSpec::Program(None),
            ("program", Some(encoded)) => {
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(encoded)
                    .ok()?;
                let text = String::from_utf8(bytes).ok()?;
                // One spelling per program: the one this repository writes.
                if b64(&text) != encoded {
                    return None;
                }
                SetSpec::Program(Some(text))
            }
            _ => return None,
        })
    }

    /// The setSpec as written.
    pub fn spec(&self) -> String {
        let child = |top: &str, value: Option<String>| match value {
            Some(v) => format!("{top}:{v}"),
            None => top.to_owned(),
        };
        match self {
            SetSpec::Kind(k) => child("kind", k.map(|k| k.as_str().to_owned())),
            SetSpec::Region(r) => child("region", r.clone()),
            SetSpec::Field(f) => child(
                "field",
                f.as_deref().and_then(field_slug).map(str::to_owned),
            ),
            SetSpec::Program(p) => child("program", p.as_deref().map(b64)),
        }
    }

    /// Its setName, for people.
    pub fn name(&self) -> String {
        match self {
            SetSpec::Kind(None) => "成果类型 (record kind)".into(),
            SetSpec::Kind(Some(RecordKind::Achievement)) => "科技成果 (achievements)".into(),
            SetSpec::Kind(Some(RecordKind::FundedProject)) => {
                "科技计划项目 (funded projects)".into()
            }
            SetSpec::Region(None) => "省级行政区 (province)".into(),
            SetSpec::Region(Some(code)) => match rix_schema::codes::province_name(code) {
                Some(name) => format!("{name} ({code})"),
                None => code.clone(),
            },
            SetSpec::Field(None) => "技术领域 (technology field)".into(),
            SetSpec::Field(Some(f)) => f.clone(),
            SetSpec::Program(None) => "科技计划 (funding program)".into(),
            SetSpec::Program(Some(p)) => p.clone(),
        }
    }

    /// The record kind every member of this set has, if the set says.
    pub fn kind(&self) -> Option<RecordKind> {
        match self {
            SetSpec::Kind(k) => *k,
            _ => None,
        }
    }

    /// Whether an entry in `member_of` (its leaf sets, as the function `member_of` gives them) is
    /// in this set.
    pub fn contains(&self, member_of: &[SetSpec]) -> bool {
        member_of.iter().any(|m| match (self, m) {
            (SetSpec::Kind(None), SetSpec::Kind(_))
            | (SetSpec::Region(None), SetSpec::Region(_))
            | (SetSpec::Field(None), SetSpec::Field(_))
            | (SetSpec::Program(None), SetSpec::Program(_)) => true,
            (a, b) => a == b,
        })
    }
}

/// The leaf sets an entry of `kind` is in, read from `view`, the reader's view of it (`None`
/// for a deleted entry: then only its kind is known).
pub fn member_of(kind: RecordKind, view: Option<&Value>) -> Vec<SetSpec> {
    let mut sets = vec![SetSpec::Kind(Some(kind))];
    let Some(found) = view.and_then(|v| crate::search::searchable(kind, v)) else {
        return sets;
    };
    sets.extend(found.region.map(|r| SetSpec::Region(Some(r))));
    sets.extend(
        found
            .field
            .filter(|f| field_slug(f).is_some())
            .map(|f| SetSpec::Field(Some(f))),
    );
    sets.extend(
        found
            .programs
            .into_iter()
            .map(|p| SetSpec::Program(Some(p))),
    );
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_technology_field_has_a_set_name() {
        assert_eq!(FIELD_SLUGS.len(), TechField::ALL.len());
        for f in TechField::ALL {
            let set = SetSpec::Field(Some(f.as_str().to_owned()));
            assert_eq!(SetSpec::parse(&set.spec()), Some(set));
        }
    }

    #[test]
    fn set_specs_read_back_and_unknown_ones_do_not() {
        for spec in [
            "kind",
            "kind:achievement",
            "kind:funded_project",
            "region",
            "region:530000",
            "field",
            "field:new-energy",
            "program",
        ] {
            assert_eq!(SetSpec::parse(spec).unwrap().spec(), spec);
        }
        let program = SetSpec::Program(Some("国家重点研发计划".into()));
        assert_eq!(SetSpec::parse(&program.spec()), Some(program.clone()));
        assert!(
            program
                .spec()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:".contains(c))
        );
        for bad in [
            "",
            "kind:thesis",
            "region:530100",
            "region:53",
            "field:新能源",
            "program:!!",
            "program:5Zu",
            "colour",
            "kind:achievement:x",
        ] {
            assert_eq!(SetSpec::parse(bad), None, "{bad:?}");
        }
    }
}
