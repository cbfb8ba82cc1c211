//! Pointers of a mapping: where a value goes in the record (a JSON Pointer with at most one
//! `*` or `-` step) and where it comes from in a tree row (a JSON Pointer with `*` steps);
//! what the schema says is at a pointer; and writing a value there.
//!
//! Why the schema is read here: a mapping file is checked when it is loaded — a target the
//! schema does not have, a code converter on a field without a code list, a number converter
//! on a text field — so that a mistake in a mapping is one error naming its key, not one error
//! per row.
//!
//! What it may not touch: cells and converters (the mapper's), validation (`rix-schema`'s).

use rix_schema::RecordKind;
use rix_schema::schemas::{self, SchemaFile};
use serde_json::{Map, Value};

/// One step of a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
    /// `*`: every element — in a target, element `first_index + i` gets item `i` of a list;
    /// in a tree path, every element of the array there.
    Each,
    /// `-` (a target only): a new element appended at the end of the array.
    Append,
}

/// A parsed pointer, with its text as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// As written in the mapping file.
    pub text: String,
    /// Its steps.
    pub steps: Vec<Step>,
}

impl Pointer {
    /// Parses a JSON Pointer (RFC 6901; `""` is the whole document) with `*` and `-` steps.
    /// A step of digits is an array index (no leading zeros).
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer {
                text: String::new(),
                steps: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a JSON Pointer: it must start with / (e.g. /title, /institutions/0/name)"
            ));
        };
        let steps = rest
            .split('/')
            .map(|raw| {
                let step = raw.replace("~1", "/").replace("~0", "~");
                match step.as_str() {
                    "*" => Ok(Step::Each),
                    "-" => Ok(Step::Append),
                    "" => Err(format!("{text:?} has an empty step")),
                    s if s.bytes().all(|b| b.is_ascii_digit()) => {
                        if s.len() > 1 && s.starts_with('0') {
                            Err(format!("{text:?}: index {s} has a leading zero"))
                        } else {
                            s.parse()
                                .map(Step::Index)
                                .map_err(|_| format!("{text:?}: index {s} is too large"))
                        }
                    }
                    _ => Ok(Step::Key(step)),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pointer {
            text: text.to_owned(),
            steps,
        })
    }

    /// How many `*` and `-` steps it has.
    pub fn wildcards(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Each | Step::Append))
            .count()
    }

    /// Whether it has a `*` or `-` step.
    pub fn is_list(&self) -> bool {
        self.wildcards() > 0
    }

    /// The pointer with its `*` (or `-`) step replaced by `index`.
    pub fn concrete(&self, index: Option<usize>) -> String {
        let mut out = String::with_capacity(self.text.len() + 2);
        for step in &self.steps {
            out.push('/');
            match step {
                Step::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Step::Index(i) => out.push_str(&i.to_string()),
                Step::Each | Step::Append => match index {
                    Some(i) => out.push_str(&i.to_string()),
                    None => out.push(if *step == Step::Each { '*' } else { '-' }),
                },
            }
        }
        out
    }

    /// Whether a concrete pointer (as in a validation error) is this one, a `*` or `-` step
    /// standing for any index.
    pub fn matches(&self, concrete: &str) -> bool {
        if concrete.is_empty() || !concrete.starts_with('/') {
            return concrete.is_empty() && self.steps.is_empty();
        }
        let parts: Vec<&str> = concrete[1..].split('/').collect();
        parts.len() == self.steps.len()
            && self.steps.iter().zip(parts).all(|(step, part)| match step {
                Step::Key(k) => part.replace("~1", "/").replace("~0", "~") == *k,
                Step::Index(i) => part.parse::<usize>().ok() == Some(*i),
                Step::Each | Step::Append => part.parse::<usize>().is_ok(),
            })
    }

    /// The last member name, if the pointer ends in one.
    pub fn last_key(&self) -> Option<&str> {
        match self.steps.last() {
            Some(Step::Key(k)) => Some(k),
            _ => None,
        }
    }
}

/// A node of a kind's schema, `$ref`s followed.
#[derive(Debug, Clone, Copy)]
pub struct SchemaNode {
    file: &'static SchemaFile,
    /// The schema object.
    pub json: &'static Value,
}

impl SchemaNode {
    /// The root of a kind's schema.
    pub fn root(kind: RecordKind) -> SchemaNode {
        let file = schemas::for_kind(kind);
        SchemaNode {
            file,
            json: file.json(),
        }
        .resolved()
    }

    fn resolved(mut self) -> SchemaNode {
        while let Some(reference) = self.json.get("$ref").and_then(Value::as_str) {
            let (file, json) = self.file.resolve(reference);
            self = SchemaNode { file, json };
        }
        self
    }

    /// The schema of member `name` of an object.
    pub fn member(self, name: &str) -> Option<SchemaNode> {
        let json = self.json.get("properties")?.get(name)?;
        Some(
            SchemaNode {
                file: self.file,
                json,
            }
            .resolved(),
        )
    }

    /// The schema of an array's elements.
    pub fn items(self) -> Option<SchemaNode> {
        let json = self.json.get("items")?;
        Some(
            SchemaNode {
                file: self.file,
                json,
            }
            .resolved(),
        )
    }

    /// The JSON type the schema declares, if it declares one.
    pub fn type_name(self) -> Option<&'static str> {
        self.json.get("type").and_then(Value::as_str)
    }

    /// The enum's values, if the schema has an enum of strings.
    pub fn enum_values(self) -> Option<Vec<String>> {
        let values = self.json.get("enum")?.as_array()?;
        Some(
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether the schema marks the text field `x-multiline`.
    pub fn multiline(self) -> bool {
        self.json.get("x-multiline").and_then(Value::as_bool) == Some(true)
    }

    /// The member names of an object schema, for messages.
    pub fn member_names(self) -> Vec<&'static str> {
        self.json
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The schema at a pointer of the kind's record, or why there is none.
    pub fn at(kind: RecordKind, steps: &[Step]) -> Result<SchemaNode, String> {
        let mut node = SchemaNode::root(kind);
        let mut at = String::new();
        for step in steps {
            node = match step {
                Step::Key(name) => node.member(name).ok_or_else(|| {
                    format!(
                        "the {kind} schema has no field {at}/{name}; the fields at {} are: {}",
                        if at.is_empty() { "the top" } else { &at },
                        node.member_names().join(", ")
                    )
                })?,
                _ => node.items().ok_or_else(|| {
                    format!(
                        "{} is not a list in the {kind} schema",
                        if at.is_empty() { "/" } else { &at }
                    )
                })?,
            };
            at.push('/');
            at.push_str(&match step {
                Step::Key(k) => k.clone(),
                Step::Index(i) => i.to_string(),
                Step::Each => "*".into(),
                Step::Append => "-".into(),
            });
        }
        Ok(node)
    }

    /// The schema at a concrete pointer string (as in a validation error), if any.
    pub fn at_pointer(kind: RecordKind, pointer: &str) -> Option<SchemaNode> {
        let steps = Pointer::parse(pointer).ok()?.steps;
        SchemaNode::at(kind, &steps).ok()
    }
}

/// Whether the schema requires a value at these steps: every member on the way is in its
/// object's `required` list and every index is below its array's `minItems` (a `*` or `-`
/// counts as the first element).
pub fn schema_requires(kind: RecordKind, steps: &[Step]) -> bool {
    let mut node = SchemaNode::root(kind);
    for step in steps {
        let next = match step {
            Step::Key(name) => {
                let required = node
                    .json
                    .get("required")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.iter().any(|v| v.as_str() == Some(name)));
                if !required {
                    return false;
                }
                node.member(name)
            }
            Step::Index(i) => {
                let min = node
                    .json
                    .get("minItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if (*i as u64) >= min {
                    return false;
                }
                node.items()
            }
            Step::Each | Step::Append => {
                if node
                    .json
                    .get("minItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    == 0
                {
                    return false;
                }
                node.items()
            }
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    true
}

/// Why a value could not be written at its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The pointer that is in the way.
    pub at: String,
}

/// The conflict at step `i`: the pointer of the steps before it.
fn conflict(steps: &[Step], i: usize, index: Option<usize>) -> Conflict {
    let prefix = Pointer {
        text: String::new(),
        steps: steps[..i].to_vec(),
    };
    Conflict {
        at: prefix.concrete(index),
    }
}

/// Writes `value` at `steps`, creating objects and arrays on the way (an array is padded with
/// `null` up to an index), and returns the index its `*`/`-` step took, if it has one.
/// `index` is the element a `*` step stands for. A value already there is replaced.
pub fn set(
    root: &mut Value,
    steps: &[Step],
    index: Option<usize>,
    value: Value,
) -> Result<Option<usize>, Conflict> {
    let mut node = root;
    let mut taken = None;
    for (i, step) in steps.iter().enumerate() {
        let next_is_array = matches!(
            steps.get(i + 1),
            Some(Step::Index(_) | Step::Each | Step::Append)
        );
        let fresh = || {
            if next_is_array {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        };
        let last = i + 1 == steps.len();
        node = match step {
            Step::Key(name) => {
                if node.is_null() {
                    *node = Value::Object(Map::new());
                }
                let Value::Object(map) = node else {
                    return Err(conflict(steps, i, index));
                };
                if last {
                    // One search of the object instead of three (is it there, insert, find).
                    map.insert(name.clone(), value);
                    return Ok(taken);
                }
                // Clone the key only when the member is new.
                if !map.contains_key(name.as_str()) {
                    map.insert(name.clone(), fresh());
                }
                map.get_mut(name.as_str()).expect("inserted above")
            }
            Step::Index(_) | Step::Each | Step::Append => {
                if node.is_null() {
                    *node = Value::Array(Vec::new());
                }
                let Value::Array(items) = node else {
                    return Err(conflict(steps, i, index));
                };
                let k = match step {
                    Step::Index(k) => *k,
                    Step::Each => index.unwrap_or(0),
                    _ => items.len(),
                };
                if matches!(step, Step::Each | Step::Append) {
                    taken = Some(k);
                }
                while items.len() <= k {
                    items.push(Value::Null);
                }
                if items[k].is_null() && !last {
                    items[k] = fresh();
                }
                &mut items[k]
            }
        };
        if last {
            *node = value;
            return Ok(taken);
        }
    }
    *node = value;
    Ok(taken)
}

/// The value at a pointer's concrete steps (no `*`/`-`), if present and not null.
pub fn get<'v>(root: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    let mut node = root;
    for step in steps {
        node = match step {
            Step::Key(k) => node.get(k.as_str())?,
            Step::Index(i) => node.get(*i)?,
            _ => return None,
        };
    }
    (!node.is_null()).then_some(node)
}

/// The length of the array before the first `*` step, and the steps before and after it.
pub fn split_each(steps: &[Step]) -> Option<(&[Step], &[Step])> {
    let at = steps.iter().position(|s| matches!(s, Step::Each))?;
    Some((&steps[..at], &steps[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_parse_with_wildcards_and_escapes() {
        let p = Pointer::parse("/institutions/*/name").unwrap();
        assert_eq!(p.steps[1], Step::Each);
        assert_eq!(p.concrete(Some(2)), "/institutions/2/name");
        assert_eq!(
            Pointer::parse("/a~1b/0").unwrap().steps,
            [Step::Key("a/b".into()), Step::Index(0)]
        );
        assert!(Pointer::parse("title").is_err());
        assert!(Pointer::parse("/x//y").is_err());
        assert!(Pointer::parse("/x/01").is_err());
    }

    #[test]
    fn the_schema_is_read_at_a_pointer() {
        let at =
            |p: &str| SchemaNode::at(RecordKind::Achievement, &Pointer::parse(p).unwrap().steps);
        assert_eq!(
            at("/secrecy/level").unwrap().enum_values().unwrap()[0],
            "public"
        );
        assert_eq!(
            at("/institutions/*/uscc").unwrap().type_name(),
            Some("string")
        );
        assert!(at("/abstract").unwrap().multiline());
        let err = at("/titel").unwrap_err();
        assert!(
            err.contains("no field /titel") && err.contains("title"),
            "{err}"
        );
        assert!(at("/title/0").is_err());
        assert!(
            SchemaNode::at(
                RecordKind::FundedProject,
                &Pointer::parse("/budget/total").unwrap().steps
            )
            .is_ok()
        );
    }

    #[test]
    fn wildcard_pointers_match_concrete_ones_and_requirements_are_read() {
        let p = Pointer::parse("/institutions/*/uscc").unwrap();
        assert!(p.matches("/institutions/3/uscc"));
        assert!(!p.matches("/institutions/3/name"));
        assert!(!p.matches("/institutions/x/uscc"));
        let req =
            |p: &str| schema_requires(RecordKind::Achievement, &Pointer::parse(p).unwrap().steps);
        assert!(req("/title"));
        assert!(req("/institutions/0/uscc"));
        assert!(!req("/institutions/1/uscc"));
        assert!(req("/secrecy/level"));
        assert!(!req("/trl"));
        assert!(!req("/contact/name"));
    }

    #[test]
    fn values_are_written_creating_what_is_missing() {
        let mut record = Value::Null;
        set(
            &mut record,
            &Pointer::parse("/title").unwrap().steps,
            None,
            json!("t"),
        )
        .unwrap();
        set(
            &mut record,
            &Pointer::parse("/institutions/*/name").unwrap().steps,
            Some(1),
            json!("B"),
        )
        .unwrap();
        set(
            &mut record,
            &Pointer::parse("/institutions/0/name").unwrap().steps,
            None,
            json!("A"),
        )
        .unwrap();
        let taken = set(
            &mut record,
            &Pointer::parse("/completers/-/name").unwrap().steps,
            None,
            json!("张三"),
        )
        .unwrap();
        assert_eq!(taken, Some(0));
        set(
            &mut record,
            &Pointer::parse("/completers/-/name").unwrap().steps,
            None,
            json!("李四"),
        )
        .unwrap();
        assert_eq!(
            record,
            json!({"title": "t", "institutions": [{"name": "A"}, {"name": "B"}],
                   "completers": [{"name": "张三"}, {"name": "李四"}]})
        );
        let conflict = set(
            &mut record,
            &Pointer::parse("/title/x").unwrap().steps,
            None,
            json!(1),
        )
        .unwrap_err();
        assert_eq!(conflict.at, "/title");
        assert_eq!(
            get(
                &record,
                &Pointer::parse("/institutions/1/name").unwrap().steps
            ),
            Some(&json!("B"))
        );
    }
}
