//! Field sensitivity and redaction: the one function every read path uses to cut a record down
//! to what a consumer may see.
//!
//! Which fields are commercial or personal is declared once, in the schema files, with the
//! custom keyword `x-sensitivity`; a submitter adds commercial secrets of its own with
//! `confidential_fields` (JSON Pointers). [`redact`] applies both. No endpoint keeps a list of
//! fields to hide: a field added to the schema with `x-sensitivity` is hidden everywhere at once.

use crate::RecordKind;
use crate::schemas::{self, SchemaFile};
use crate::secrecy::SecrecyLevel;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The class of a sensitive field. Fields without a class are public once the record may be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    /// A commercial secret (商业秘密): prices, terms, benefits, know-how.
    Commercial,
    /// Personal information (个人信息): identity numbers, phones, e-mail, contact persons.
    Personal,
}

impl Sensitivity {
    fn parse(s: &str) -> Option<Sensitivity> {
        match s {
            "commercial" => Some(Sensitivity::Commercial),
            "personal" => Some(Sensitivity::Personal),
            _ => None,
        }
    }
}

/// One step of a field path: an object key, or any element of an array.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathStep {
    /// An object property.
    Key(String),
    /// Every element of an array.
    AnyItem,
}

/// A sensitive field declared in a schema: its path (`/completers/*/phone`) and class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensitiveField {
    /// Where the field is; `AnyItem` steps match every array element.
    pub path: Vec<PathStep>,
    /// Its class.
    pub class: Sensitivity,
}

impl SensitiveField {
    /// The path written as a JSON Pointer pattern, with `*` for any array element.
    pub fn pattern(&self) -> String {
        self.path
            .iter()
            .map(|s| match s {
                PathStep::Key(k) => format!("/{k}"),
                PathStep::AnyItem => "/*".to_owned(),
            })
            .collect()
    }
}

/// The sensitive fields of a record kind, read from its schema file (following `$ref`s into
/// `common.json`) once per process.
pub fn sensitive_fields(kind: RecordKind) -> &'static [SensitiveField] {
    static MAPS: OnceLock<[Vec<SensitiveField>; 2]> = OnceLock::new();
    let maps = MAPS.get_or_init(|| {
        RecordKind::ALL.map(|k| {
            let file = schemas::for_kind(k);
            let mut found = Vec::new();
            collect(file, file.json(), &mut Vec::new(), &mut found, 0);
            found
        })
    });
    &maps[RecordKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("listed")]
}

/// Walks a schema node, recording every `x-sensitivity` with the path that leads to it. A marked
/// node hides its whole subtree, so the walk does not descend below it.
fn collect(
    file: &'static SchemaFile,
    node: &'static Value,
    path: &mut Vec<PathStep>,
    found: &mut Vec<SensitiveField>,
    depth: usize,
) {
    // The shipped schemas are shallow; the bound only guards against a future recursive $ref.
    assert!(depth < 32, "schema nesting too deep at {path:?}");
    if let Some(class) = node
        .get("x-sensitivity")
        .and_then(Value::as_str)
        .and_then(Sensitivity::parse)
    {
        found.push(SensitiveField {
            path: path.clone(),
            class,
        });
        return;
    }
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let (target_file, fragment) = match reference.split_once('#') {
            Some(("", fragment)) => (file, fragment),
            Some((doc, fragment)) => (schemas::by_reference(doc).expect("known $ref"), fragment),
            None => (schemas::by_reference(reference).expect("known $ref"), ""),
        };
        let target = target_file
            .json()
            .pointer(fragment)
            .unwrap_or_else(|| panic!("unresolvable $ref {reference}"));
        collect(target_file, target, path, found, depth + 1);
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            path.push(PathStep::Key(name.clone()));
            collect(file, child, path, found, depth + 1);
            path.pop();
        }
    }
    if let Some(items) = node.get("items") {
        path.push(PathStep::AnyItem);
        collect(file, items, path, found, depth + 1);
        path.pop();
    }
}

/// What a consumer is entitled to see, on top of public records' public fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Entitlements {
    /// Sees internal (内部) records as well as public ones.
    pub internal: bool,
    /// Sees commercial-secret fields.
    pub commercial: bool,
    /// Sees personal fields.
    pub personal: bool,
}

impl Entitlements {
    /// Anonymous consumers: public records, public fields.
    pub const PUBLIC: Entitlements = Entitlements {
        internal: false,
        commercial: false,
        personal: false,
    };

    /// Everything that may ever leave a node.
    pub const ALL: Entitlements = Entitlements {
        internal: true,
        commercial: true,
        personal: true,
    };

    /// Whether a record at `level` may be shown at all. Classified records never are, whatever
    /// the entitlements: they must not be in the catalogue in the first place.
    pub fn may_see(self, level: SecrecyLevel) -> bool {
        match level {
            SecrecyLevel::Public => true,
            SecrecyLevel::Internal => self.internal,
            _ => false,
        }
    }

    /// Whether fields of `class` may be shown.
    pub fn may_see_field(self, class: Sensitivity) -> bool {
        match class {
            Sensitivity::Commercial => self.commercial,
            Sensitivity::Personal => self.personal,
        }
    }

    /// The entitlement names, `public` first (every consumer has it).
    pub fn names(self) -> Vec<&'static str> {
        let mut names = vec!["public"];
        names.extend(
            [
                (self.internal, "internal"),
                (self.commercial, "commercial"),
                (self.personal, "personal"),
            ]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name)),
        );
        names
    }
}

/// An entitlement name that is not one of public, internal, commercial, personal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown entitlement {0:?}; expected a comma-separated list of public, internal, commercial, personal"
)]
pub struct UnknownEntitlement(pub String);

impl FromStr for Entitlements {
    type Err = UnknownEntitlement;

    /// Parses a comma-separated list such as `internal,commercial`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut e = Entitlements::PUBLIC;
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "public" => {}
                "internal" => e.internal = true,
                "commercial" => e.commercial = true,
                "personal" => e.personal = true,
                other => return Err(UnknownEntitlement(other.to_owned())),
            }
        }
        Ok(e)
    }
}

impl fmt::Display for Entitlements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// The one redaction function: what a consumer with `entitlements` may see of `record`.
///
/// Returns `None` when the record itself may not be seen (internal without the entitlement,
/// classified always, or no readable secrecy level — unknown means hidden). Otherwise returns a
/// copy without the schema-declared fields of classes the consumer lacks and, unless the consumer
/// has `commercial`, without the fields the submitter listed in `confidential_fields`.
pub fn redact(kind: RecordKind, record: &Value, entitlements: Entitlements) -> Option<Value> {
    let level = SecrecyLevel::of_record(record)?;
    if !entitlements.may_see(level) {
        return None;
    }
    redact_owned(kind, record.clone(), entitlements)
}

/// [`redact`] of a record the caller owns and needs no more: the view is cut out of it in
/// place instead of from a copy (the search index redacts every record it indexes).
pub fn redact_owned(kind: RecordKind, record: Value, entitlements: Entitlements) -> Option<Value> {
    let level = SecrecyLevel::of_record(&record)?;
    if !entitlements.may_see(level) {
        return None;
    }
    // The submitter's list is read before anything is removed, as `redact` reads the original.
    let confidential = if entitlements.commercial {
        Vec::new()
    } else {
        submitter_confidential(&record)
    };
    let mut view = record;
    for field in sensitive_fields(kind) {
        if !entitlements.may_see_field(field.class) {
            remove_path(&mut view, &field.path);
        }
    }
    for pointer in confidential {
        remove_pointer(&mut view, &pointer);
    }
    Some(view)
}

/// The submitter's `confidential_fields`, ordered so that removing them one by one never shifts
/// an array index another pointer still needs: deeper and later paths first.
fn submitter_confidential(record: &Value) -> Vec<Vec<PointerStep>> {
    let mut pointers: BTreeSet<Vec<PointerStep>> = record
        .get("confidential_fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|p| p.starts_with('/'))
        .map(|p| p[1..].split('/').map(PointerStep::parse).collect())
        .collect();
    // Keep confidential_fields itself: it tells the consumer why fields are absent.
    pointers.retain(|p| p.first() != Some(&PointerStep::Key("confidential_fields".into())));
    pointers.into_iter().rev().collect()
}

/// A decoded RFC 6901 reference token; indices compare numerically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PointerStep {
    Index(usize),
    Key(String),
}

impl PointerStep {
    fn parse(token: &str) -> PointerStep {
        let key = token.replace("~1", "/").replace("~0", "~");
        match key.parse::<usize>() {
            Ok(i) if !key.starts_with('+') && (key == "0" || !key.starts_with('0')) => {
                PointerStep::Index(i)
            }
            _ => PointerStep::Key(key),
        }
    }
}

fn remove_pointer(value: &mut Value, steps: &[PointerStep]) {
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut node = value;
    for step in parents {
        let next = match (step, node) {
            (PointerStep::Index(i), Value::Array(a)) => a.get_mut(*i),
            (PointerStep::Index(i), Value::Object(o)) => o.get_mut(&i.to_string()),
            (PointerStep::Key(k), Value::Object(o)) => o.get_mut(k),
            _ => None,
        };
        let Some(next) = next else { return };
        node = next;
    }
    match (last, node) {
        (PointerStep::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        (PointerStep::Index(i), Value::Object(o)) => {
            o.remove(&i.to_string());
        }
        (PointerStep::Key(k), Value::Object(o)) => {
            o.remove(k);
        }
        _ => {}
    }
}

fn remove_path(value: &mut Value, path: &[PathStep]) {
    let Some((step, rest)) = path.split_first() else {
        return;
    };
    match (step, value) {
        (PathStep::Key(k), Value::Object(o)) => {
            if rest.is_empty() {
                o.remove(k);
            } else if let Some(child) = o.get_mut(k) {
                remove_path(child, rest);
            }
        }
        (PathStep::AnyItem, Value::Array(items)) => {
            if rest.is_empty() {
                items.clear();
            } else {
                for item in items {
                    remove_path(item, rest);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patterns(kind: RecordKind) -> Vec<(String, Sensitivity)> {
        sensitive_fields(kind)
            .iter()
            .map(|f| (f.pattern(), f.class))
            .collect()
    }

    #[test]
    fn schema_marks_are_read_through_refs() {
        let a = patterns(RecordKind::Achievement);
        for expected in [
            ("/completers/*/phone", Sensitivity::Personal),
            ("/completers/*/id_number", Sensitivity::Personal),
            ("/contact", Sensitivity::Personal),
            ("/transfer/price", Sensitivity::Commercial),
            ("/application/benefits", Sensitivity::Commercial),
            ("/technical_indicators", Sensitivity::Commercial),
        ] {
            assert!(
                a.contains(&(expected.0.to_owned(), expected.1)),
                "{expected:?} missing from {a:?}"
            );
        }
        assert!(
            !a.iter()
                .any(|(p, _)| p == "/title" || p == "/completers/*/name")
        );
        let p = patterns(RecordKind::FundedProject);
        assert!(p.contains(&("/pi/email".to_owned(), Sensitivity::Personal)));
        assert!(p.contains(&("/budget/self_raised".to_owned(), Sensitivity::Commercial)));
    }

    fn record(level: &str) -> Value {
        json!({
            "title": "高安全固态锂电池",
            "secrecy": {"level": level},
            "abstract": "公开摘要",
            "technical_indicators": "能量密度 400 Wh/kg",
            "transfer": {"modes": ["许可"], "price": 300},
            "completers": [
                {"name": "张三", "phone": "13800000000", "contribution": "总体设计"},
                {"name": "李四", "email": "li@example.cn"}
            ],
            "ip": [{"type": "发明专利", "number": "ZL1"}, {"type": "发明专利", "number": "ZL2", "title": "秘密工艺"}],
            "evaluation": {"method": "评价", "conclusion": "达到国际先进水平"},
            "confidential_fields": ["/ip/1/title", "/ip/0", "/evaluation/conclusion"]
        })
    }

    #[test]
    fn public_view_drops_every_sensitive_field() {
        let view = redact(
            RecordKind::Achievement,
            &record("public"),
            Entitlements::PUBLIC,
        )
        .unwrap();
        assert_eq!(view["title"], "高安全固态锂电池");
        assert!(view.get("technical_indicators").is_none());
        assert!(view["transfer"].get("price").is_none());
        assert_eq!(view["transfer"]["modes"], json!(["许可"]));
        assert!(view["completers"][0].get("phone").is_none());
        assert!(view["completers"][1].get("email").is_none());
        assert_eq!(view["completers"][0]["contribution"], "总体设计");
        // Submitter-declared secrets: /ip/0 is gone, and /ip/1/title was removed before the
        // index shift, so the surviving item is ZL2 without its title.
        assert_eq!(view["ip"], json!([{"type": "发明专利", "number": "ZL2"}]));
        assert!(view["evaluation"].get("conclusion").is_none());
        assert!(!view.to_string().contains("秘密工艺"));
    }

    #[test]
    fn each_entitlement_adds_exactly_its_class() {
        let r = record("public");
        let commercial: Entitlements = "commercial".parse().unwrap();
        let view = redact(RecordKind::Achievement, &r, commercial).unwrap();
        assert_eq!(view["transfer"]["price"], 300);
        assert_eq!(view["ip"][1]["title"], "秘密工艺");
        assert!(view["completers"][0].get("phone").is_none());
        let personal: Entitlements = "personal".parse().unwrap();
        let view = redact(RecordKind::Achievement, &r, personal).unwrap();
        assert_eq!(view["completers"][0]["phone"], "13800000000");
        assert!(view.get("technical_indicators").is_none());
        assert_eq!(
            redact(RecordKind::Achievement, &r, Entitlements::ALL).unwrap(),
            r
        );
    }

    #[test]
    fn the_owned_view_is_the_borrowed_view() {
        let generator = crate::sample::SampleGenerator::new(crate::sample::SampleConfig::default());
        let mut records: Vec<(RecordKind, Value)> = vec![
            (RecordKind::Achievement, record("public")),
            (RecordKind::Achievement, record("internal")),
            (RecordKind::Achievement, record("secret")),
        ];
        for i in 0..200 {
            records.push((
                RecordKind::Achievement,
                serde_json::to_value(generator.achievement(i)).unwrap(),
            ));
            records.push((
                RecordKind::FundedProject,
                serde_json::to_value(generator.project(i)).unwrap(),
            ));
        }
        for (kind, r) in &records {
            for e in [
                "public",
                "internal",
                "commercial",
                "personal",
                "internal,commercial",
            ] {
                let e: Entitlements = e.parse().unwrap();
                assert_eq!(redact_owned(*kind, r.clone(), e), redact(*kind, r, e));
            }
        }
    }

    #[test]
    fn record_level_secrecy_decides_visibility() {
        let internal = record("internal");
        assert!(redact(RecordKind::Achievement, &internal, Entitlements::PUBLIC).is_none());
        let e: Entitlements = "internal".parse().unwrap();
        assert!(redact(RecordKind::Achievement, &internal, e).is_some());
        for level in ["secret", "confidential", "top_secret", "unknown"] {
            assert!(redact(RecordKind::Achievement, &record(level), Entitlements::ALL).is_none());
        }
        assert!(
            redact(
                RecordKind::Achievement,
                &json!({"title": "x"}),
                Entitlements::ALL
            )
            .is_none()
        );
    }

    #[test]
    fn entitlements_parse_and_print() {
        let e: Entitlements = "internal, personal".parse().unwrap();
        assert_eq!(e.to_string(), "public,internal,personal");
        assert!("root".parse::<Entitlements>().is_err());
        assert_eq!("".parse::<Entitlements>().unwrap(), Entitlements::PUBLIC);
    }
}
