//! Field sensitivity and redaction: the one function every read path uses to cut a record down
//! to what a consumer may see.
//!
//! Which fields are commercial or personal is declared once, in the schema files, with the
//! custom keyword `x-sensitivity`; a submitter adds commercial secrets of its own with
//! `confidential_fields` (JSON Pointers). [`redact`] applies both. No endpoint keeps a list of
//! fields to hide: a field added to the schema with `x-sensitivity` is hidden everywhere at once.
//!
//! Record-level secrecy is applied first, and fails closed: a record whose level cannot be read
//! is hidden from everyone, and a classified one is never shown ([`Entitlements::may_see`]).
//!
//! What it may not touch: who a consumer is. Entitlements come in as a value; turning a bearer
//! token into them is the gateway's access filter's, and this module keeps no list of fields of
//! its own — the marks come from [`crate::schemas`].

use crate::RecordKind;
use crate::schemas::{self, SchemaFile};
use crate::secrecy::SecrecyLevel;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
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
            walk_schema(file, file.json(), &mut Vec::new(), 0, &mut |path, node| {
                match node
                    .get("x-sensitivity")
                    .and_then(Value::as_str)
                    .and_then(Sensitivity::parse)
                {
                    // A marked node hides its whole subtree: no need to look below it.
                    Some(class) => {
                        found.push(SensitiveField {
                            path: path.to_vec(),
                            class,
                        });
                        false
                    }
                    None => true,
                }
            });
            found
        })
    });
    &maps[RecordKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("listed")]
}

/// Walks a schema node and everything below it (following `$ref`s), calling `visit` with the
/// record path each node describes; `visit` returns whether to descend below the node.
fn walk_schema(
    file: &'static SchemaFile,
    node: &'static Value,
    path: &mut Vec<PathStep>,
    depth: usize,
    visit: &mut dyn FnMut(&[PathStep], &'static Value) -> bool,
) {
    // The shipped schemas are shallow; the bound only guards against a future recursive $ref.
    assert!(depth < 32, "schema nesting too deep at {path:?}");
    if !visit(path, node) {
        return;
    }
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let (target_file, target) = file.resolve(reference);
        walk_schema(target_file, target, path, depth + 1, visit);
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            path.push(PathStep::Key(name.clone()));
            walk_schema(file, child, path, depth + 1, visit);
            path.pop();
        }
    }
    if let Some(items) = node.get("items") {
        path.push(PathStep::AnyItem);
        walk_schema(file, items, path, depth + 1, visit);
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

/// The classes a hidden value belongs to: a reader sees it only with every one of them.
///
/// Usually one; two when, say, a submitter lists a personal field in `confidential_fields`
/// (then only a reader entitled to both commercial and personal values may see it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Classes {
    /// Needs the `commercial` entitlement.
    pub commercial: bool,
    /// Needs the `personal` entitlement.
    pub personal: bool,
}

impl Classes {
    fn of(class: Sensitivity) -> Classes {
        Classes {
            commercial: class == Sensitivity::Commercial,
            personal: class == Sensitivity::Personal,
        }
    }

    fn union(self, other: Classes) -> Classes {
        Classes {
            commercial: self.commercial || other.commercial,
            personal: self.personal || other.personal,
        }
    }

    /// Whether a reader with `entitlements` holds every class.
    pub fn entitled(self, entitlements: Entitlements) -> bool {
        (!self.commercial || entitlements.commercial) && (!self.personal || entitlements.personal)
    }

    /// The class names, comma-separated (`commercial`, `personal`, `commercial,personal`).
    pub fn names(self) -> String {
        let mut names = Vec::new();
        if self.commercial {
            names.push("commercial");
        }
        if self.personal {
            names.push("personal");
        }
        names.join(",")
    }
}

/// One value of one record that some reader may not see: where it is, and who may.
///
/// [`hidden_fields`] lists them; the node seals each behind a salted digest
/// ([`crate::disclosure`]) and every read path cuts the same list out of a reader's view
/// ([`redact`]). Both sides use this one list, so what is concealed and what is withheld
/// cannot drift apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenField {
    steps: Vec<PointerStep>,
    /// Who may see it.
    pub classes: Classes,
}

impl HiddenField {
    /// The value's RFC 6901 JSON Pointer in the record (`/completers/0/phone`).
    pub fn pointer(&self) -> String {
        pointer_text(&self.steps)
    }
}

/// The values of `record` that some reader may not see, **deepest and last first**: the order
/// in which they can be cut out (or sealed) one by one without an array index that a later
/// pointer needs ever shifting.
///
/// Three sources, merged per pointer (the classes add up):
/// 1. the schema's `x-sensitivity` marks, expanded over the record's arrays;
/// 2. the submitter's `confidential_fields` that point at something (commercial). Never
///    `/secrecy` (every reader needs the level) nor `confidential_fields` itself (it tells a
///    reader why values are absent);
/// 3. **arithmetic closure**: where the schema declares that parts add up to a total
///    (`x-sum`), a reader who misses exactly one member could compute it from the others. So
///    whenever some reader would miss exactly one member of a sum, another member (the total,
///    or a part if the total is the hidden one) is hidden from the same readers. Repeated until
///    nothing changes.
pub fn hidden_fields(kind: RecordKind, record: &Value) -> Vec<HiddenField> {
    let mut hidden: BTreeMap<Vec<PointerStep>, Classes> = BTreeMap::new();
    for field in sensitive_fields(kind) {
        let mut at = Vec::new();
        expand(record, &field.path, &mut at, &mut |steps| {
            let slot = hidden.entry(steps.to_vec()).or_default();
            *slot = slot.union(Classes::of(field.class));
        });
    }
    for steps in submitter_confidential(record) {
        if resolve(record, &steps).is_some() {
            let slot = hidden.entry(steps).or_default();
            *slot = slot.union(Classes::of(Sensitivity::Commercial));
        }
    }
    close_sums(kind, record, &mut hidden);
    hidden
        .into_iter()
        .rev()
        .map(|(steps, classes)| HiddenField { steps, classes })
        .collect()
}

/// Calls `found` with the concrete steps of every value `path` names in `value`.
fn expand(
    value: &Value,
    path: &[PathStep],
    at: &mut Vec<PointerStep>,
    found: &mut dyn FnMut(&[PointerStep]),
) {
    let Some((step, rest)) = path.split_first() else {
        found(at);
        return;
    };
    match (step, value) {
        (PathStep::Key(k), Value::Object(o)) => {
            if let Some(child) = o.get(k) {
                at.push(PointerStep::Key(k.clone()));
                expand(child, rest, at, found);
                at.pop();
            }
        }
        (PathStep::AnyItem, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                at.push(PointerStep::Index(i));
                expand(item, rest, at, found);
                at.pop();
            }
        }
        _ => {}
    }
}

/// A sum the schema declares with `x-sum`: at `path`, member `total` equals the sum of `parts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumRule {
    /// Where the object holding the members is (`/budget`).
    pub path: Vec<PathStep>,
    /// The member that is the sum.
    pub total: String,
    /// The members that add up to it (an absent part counts as zero).
    pub parts: Vec<String>,
}

/// The sum rules of a record kind, read from `x-sum` in its schema once per process.
pub fn sum_rules(kind: RecordKind) -> &'static [SumRule] {
    static MAPS: OnceLock<[Vec<SumRule>; 2]> = OnceLock::new();
    let maps = MAPS.get_or_init(|| {
        RecordKind::ALL.map(|k| {
            let file = schemas::for_kind(k);
            let mut found = Vec::new();
            walk_schema(file, file.json(), &mut Vec::new(), 0, &mut |path, node| {
                if let Some(rule) = node.get("x-sum") {
                    let total = rule["total"].as_str().expect("x-sum.total").to_owned();
                    let parts = rule["parts"]
                        .as_array()
                        .expect("x-sum.parts")
                        .iter()
                        .map(|p| p.as_str().expect("x-sum part").to_owned())
                        .collect();
                    found.push(SumRule {
                        path: path.to_vec(),
                        total,
                        parts,
                    });
                }
                true
            });
            found
        })
    });
    &maps[RecordKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("listed")]
}

/// The reader profiles that differ in which fields they see.
const FIELD_READERS: [Entitlements; 4] = [
    Entitlements {
        internal: true,
        commercial: false,
        personal: false,
    },
    Entitlements {
        internal: true,
        commercial: true,
        personal: false,
    },
    Entitlements {
        internal: true,
        commercial: false,
        personal: true,
    },
    Entitlements::ALL,
];

fn close_sums(kind: RecordKind, record: &Value, hidden: &mut BTreeMap<Vec<PointerStep>, Classes>) {
    for rule in sum_rules(kind) {
        let mut objects = Vec::new();
        expand(record, &rule.path, &mut Vec::new(), &mut |steps| {
            objects.push(steps.to_vec())
        });
        for object in objects {
            let Some(Value::Object(members)) = resolve(record, &object) else {
                continue;
            };
            // Total first, so that it is the member hidden next to a part.
            let present: Vec<Vec<PointerStep>> = std::iter::once(&rule.total)
                .chain(&rule.parts)
                .filter(|m| members.contains_key(*m))
                .map(|m| {
                    let mut p = object.clone();
                    p.push(PointerStep::Key(m.clone()));
                    p
                })
                .collect();
            if present.len() < 2 {
                continue;
            }
            loop {
                let mut added = false;
                for reader in FIELD_READERS {
                    let missed: Vec<(usize, Classes)> = present
                        .iter()
                        .enumerate()
                        .filter_map(|(i, m)| {
                            let c = classes_covering(hidden, m);
                            (!c.entitled(reader)).then_some((i, c))
                        })
                        .collect();
                    if let [(alone, classes)] = missed[..] {
                        let partner = if alone == 0 { 1 } else { 0 };
                        let slot = hidden.entry(present[partner].clone()).or_default();
                        *slot = slot.union(classes);
                        added = true;
                    }
                }
                if !added {
                    break;
                }
            }
        }
    }
}

/// The classes a reader needs to see the value at `steps`: its own and every ancestor's.
fn classes_covering(
    hidden: &BTreeMap<Vec<PointerStep>, Classes>,
    steps: &[PointerStep],
) -> Classes {
    (0..=steps.len())
        .filter_map(|n| hidden.get(&steps[..n]))
        .fold(Classes::default(), |a, c| a.union(*c))
}

fn resolve<'v>(value: &'v Value, steps: &[PointerStep]) -> Option<&'v Value> {
    let mut node = value;
    for step in steps {
        node = match (step, node) {
            (PointerStep::Index(i), Value::Array(a)) => a.get(*i)?,
            (PointerStep::Index(i), Value::Object(o)) => o.get(&i.to_string())?,
            (PointerStep::Key(k), Value::Object(o)) => o.get(k)?,
            _ => return None,
        };
    }
    Some(node)
}

fn pointer_text(steps: &[PointerStep]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            PointerStep::Index(i) => out.push_str(&format!("/{i}")),
            PointerStep::Key(k) => crate::validate::push_pointer_key(&mut out, k),
        }
    }
    out
}

/// The one redaction function: what a consumer with `entitlements` may see of `record`.
///
/// Returns `None` when the record itself may not be seen (internal without the entitlement,
/// classified always, or no readable secrecy level — unknown means hidden). Otherwise returns a
/// copy without every [`hidden_fields`] value whose classes the consumer lacks.
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
    if entitlements.commercial && entitlements.personal {
        return Some(record);
    }
    let hidden = hidden_fields(kind, &record);
    let mut view = record;
    for field in hidden {
        if !field.classes.entitled(entitlements) {
            remove_pointer(&mut view, &field.steps);
        }
    }
    Some(view)
}

/// The submitter's `confidential_fields` that may be hidden, parsed.
fn submitter_confidential(record: &Value) -> Vec<Vec<PointerStep>> {
    record
        .get("confidential_fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|p| p.starts_with('/'))
        .map(|p| p[1..].split('/').map(PointerStep::parse).collect::<Vec<_>>())
        .filter(|steps| {
            !matches!(steps.first(), Some(PointerStep::Key(k)) if k == "confidential_fields" || k == "secrecy")
        })
        .collect()
}

/// A decoded RFC 6901 reference token; indices compare numerically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// For every sum the schemas declare (`x-sum`), whatever members a submitter hides and
    /// whoever reads: a reader misses either none of the members or at least two, so no hidden
    /// member is the difference of visible ones. A new sum rule, a new mark or a change to the
    /// closure that reopens the hole fails here. And each declared sum is one validation
    /// enforces, so no sum rule exists that this test does not see.
    #[test]
    fn no_reader_can_compute_a_hidden_member_of_a_declared_sum() {
        let mut rules_seen = 0;
        for kind in RecordKind::ALL {
            for rule in sum_rules(kind) {
                rules_seen += 1;
                let members: Vec<&String> =
                    std::iter::once(&rule.total).chain(&rule.parts).collect();
                let object: String = rule
                    .path
                    .iter()
                    .map(|s| match s {
                        PathStep::Key(k) => format!("/{k}"),
                        PathStep::AnyItem => "/0".into(),
                    })
                    .collect();
                // Every subset of members present, every subset of them declared confidential.
                for present in 1u32..(1 << members.len()) {
                    for declared in 0u32..(1 << members.len()) {
                        if declared & !present != 0 {
                            continue;
                        }
                        let mut record = json!({"secrecy": {"level": "public"}});
                        let mut obj = serde_json::Map::new();
                        let mut confidential = Vec::new();
                        for (i, m) in members.iter().enumerate() {
                            if present & (1 << i) != 0 {
                                obj.insert((*m).clone(), json!(10 + i));
                            }
                            if declared & (1 << i) != 0 {
                                confidential.push(json!(format!("{object}/{m}")));
                            }
                        }
                        let mut slot = &mut record;
                        for step in &rule.path {
                            slot = match step {
                                PathStep::Key(k) => &mut slot[k.as_str()],
                                PathStep::AnyItem => {
                                    *slot = json!([null]);
                                    &mut slot[0]
                                }
                            };
                        }
                        *slot = Value::Object(obj);
                        record["confidential_fields"] = Value::Array(confidential);
                        let hidden = hidden_fields(kind, &record);
                        for reader in FIELD_READERS {
                            let missed = members
                                .iter()
                                .filter(|m| {
                                    present & (1 << members.iter().position(|x| x == *m).unwrap())
                                        != 0
                                })
                                .filter(|m| {
                                    let p = format!("{object}/{m}");
                                    hidden.iter().any(|h| {
                                        (p == h.pointer()
                                            || p.starts_with(&format!("{}/", h.pointer())))
                                            && !h.classes.entitled(reader)
                                    })
                                })
                                .count();
                            let n_present = present.count_ones() as usize;
                            assert!(
                                missed != 1 || n_present < 2,
                                "{kind:?} {object}: reader {reader} misses exactly one member of {record}"
                            );
                        }
                    }
                }
            }
        }
        assert!(rules_seen >= 1, "the budget rule is declared with x-sum");
        // Validation enforces each declared sum.
        let generator = crate::sample::SampleGenerator::new(crate::sample::SampleConfig::default());
        let mut project = serde_json::to_value(generator.project(1)).unwrap();
        project["budget"] =
            json!({"total": 100, "central_fiscal": 60, "local_fiscal": 30, "self_raised": 5});
        let errors = crate::validate_record(RecordKind::FundedProject, &project).unwrap_err();
        assert!(
            errors.iter().any(|e| e.pointer == "/budget/total"),
            "{errors:?}"
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
