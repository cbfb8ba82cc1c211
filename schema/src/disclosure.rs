//! Selective disclosure: how a signed entry commits to values that not every reader may see.
//!
//! The model is IETF SD-JWT's. When a node seals an entry, every value that some reader may
//! not see ([`crate::sensitivity::hidden_fields`]: the schema's `x-sensitivity` marks, the
//! submitter's `confidential_fields`, and what the arithmetic closure adds) is replaced in the
//! signed record by a **placeholder** `{"_sd": DIGEST}`. The value itself travels beside the
//! entry as a **disclosure**: the RFC 8785 canonical JSON text of `[salt, pointer, value]`,
//! where `salt` is 128 fresh random bits (base64url) and `pointer` the value's JSON Pointer in
//! the record. `DIGEST` is base64url (no padding) of SHA-256 over the disclosure's UTF-8 bytes.
//!
//! Why this shape:
//! - The Merkle leaf is the entry **in placeholder form**, so one signature still covers a whole
//!   batch, and a reader who receives a subset of the disclosures can still check the signature
//!   and the inclusion proof of exactly what they see.
//! - The salt makes every digest useless for testing a guess: without the disclosure, the digest
//!   of `[salt, "/transfer/price", 300]` says nothing about 300. No hash over a hidden value is
//!   ever unsalted.
//! - The pointer inside the disclosure binds it to one place: a disclosure cannot be shown at
//!   another field than the one the node sealed it at ([`reveal`] checks where it lands).
//!
//! Nested hidden values nest naturally: the node seals the deepest values first, so the
//! disclosure of an outer value carries the placeholders of the inner ones, and a reader
//! entitled to the outer value but not the inner one sees the outer with the inner still
//! sealed. `schema/VERIFYING.md` is the specification a third party implements a verifier from.
//!
//! What it may not touch: which values are hidden, or who may see one. The first is
//! [`crate::sensitivity::hidden_fields`]'s, so the node seals exactly what every read path cuts;
//! the second is the reader's entitlements, applied by the gateway's access filter. The salts come
//! from the caller ([`openssl_salt`] in production), so a test can fix them.

use std::collections::HashMap;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::Value;

use crate::RecordKind;
use crate::canonical::{canonical_value, sha256};
use crate::sensitivity::hidden_fields;
use crate::validate::push_pointer_key;

/// The member name of a placeholder object.
pub const DIGEST_KEY: &str = "_sd";

/// Length of a salt in bytes (128 bits, as SD-JWT recommends).
pub const SALT_LEN: usize = 16;

/// One disclosure: a hidden value with its salt and place, and the digest that commits to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Disclosure {
    /// The canonical JSON text `[salt, pointer, value]`: what travels and what is hashed.
    pub text: String,
    /// base64url(SHA-256(text)): the placeholder's `_sd` value.
    pub digest: String,
    /// Where the value sits in the full record (RFC 6901).
    pub pointer: String,
    /// The hidden value (it may itself hold placeholders of deeper values).
    pub value: Value,
}

/// A disclosure or a set of them does not fit the entry it is given with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisclosureError {
    /// The text is not a JSON array `[salt, pointer, value]`.
    #[error("disclosure #{index}: {detail}")]
    Malformed {
        /// Position among the entry's disclosures.
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// Two disclosures have the same digest.
    #[error("disclosure #{index} repeats the digest {digest}")]
    Repeated {
        /// Position among the entry's disclosures.
        index: usize,
        /// The digest.
        digest: String,
    },
    /// No placeholder of the entry (or of the disclosed values) carries this digest.
    #[error("disclosure for {pointer} matches no placeholder of the entry (digest {digest})")]
    Unused {
        /// The disclosure's pointer.
        pointer: String,
        /// Its digest.
        digest: String,
    },
    /// The placeholder with this digest is at another place than the disclosure names.
    #[error("disclosure for {pointer} belongs at {placeholder}, where its digest is")]
    Misplaced {
        /// The disclosure's pointer.
        pointer: String,
        /// Where its placeholder is.
        placeholder: String,
    },
    /// A placeholder has no disclosure where every disclosure was required.
    #[error("the placeholder at {pointer} has no disclosure")]
    Missing {
        /// The placeholder's place.
        pointer: String,
    },
}

impl Disclosure {
    /// A disclosure of `value` at `pointer` with the given salt.
    pub fn new(salt: [u8; SALT_LEN], pointer: &str, value: Value) -> Disclosure {
        let array = Value::Array(vec![
            Value::String(B64URL.encode(salt)),
            Value::String(pointer.to_owned()),
            value,
        ]);
        let text = String::from_utf8(canonical_value(&array)).expect("canonical JSON is UTF-8");
        let digest = digest(&text);
        let Value::Array(mut parts) = array else {
            unreachable!("built as an array")
        };
        Disclosure {
            text,
            digest,
            pointer: pointer.to_owned(),
            value: parts.pop().expect("three members"),
        }
    }

    /// Reads a disclosure as it travels; `index` names it in errors.
    pub fn parse(text: &str, index: usize) -> Result<Disclosure, DisclosureError> {
        let bad = |detail: String| DisclosureError::Malformed { index, detail };
        let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let Value::Array(mut parts) = value else {
            return Err(bad("must be a JSON array [salt, pointer, value]".into()));
        };
        if parts.len() != 3 {
            return Err(bad(format!(
                "must have 3 members [salt, pointer, value], has {}",
                parts.len()
            )));
        }
        let value = parts.pop().expect("three");
        let pointer = match parts.pop() {
            Some(Value::String(p)) if p.starts_with('/') => p,
            _ => return Err(bad("member 2 must be a JSON Pointer starting with /".into())),
        };
        match parts.pop() {
            Some(Value::String(s)) if B64URL.decode(&s).is_ok_and(|raw| raw.len() == SALT_LEN) => {}
            _ => {
                return Err(bad(format!(
                    "member 1 must be a salt of {SALT_LEN} bytes in base64url without padding"
                )));
            }
        }
        Ok(Disclosure {
            digest: digest(text),
            text: text.to_owned(),
            pointer,
            value,
        })
    }
}

/// base64url (no padding) of SHA-256 over the disclosure text's UTF-8 bytes.
pub fn digest(text: &str) -> String {
    B64URL.encode(sha256(text.as_bytes()))
}

/// The digest of `value` if it is a placeholder `{"_sd": DIGEST}`.
pub fn placeholder_digest(value: &Value) -> Option<&str> {
    match value {
        Value::Object(o) if o.len() == 1 => o.get(DIGEST_KEY).and_then(Value::as_str),
        _ => None,
    }
}

/// A placeholder for `digest`.
pub fn placeholder(digest: &str) -> Value {
    let mut o = serde_json::Map::with_capacity(1);
    o.insert(DIGEST_KEY.to_owned(), Value::String(digest.to_owned()));
    Value::Object(o)
}

/// Whether `value` has a member named `_sd` anywhere: a full record never does (the schemas
/// refuse unknown members), so one that has it would be mistaken for a sealed value.
pub fn uses_digest_key(value: &Value) -> bool {
    match value {
        Value::Object(o) => o.contains_key(DIGEST_KEY) || o.values().any(uses_digest_key),
        Value::Array(a) => a.iter().any(uses_digest_key),
        _ => false,
    }
}

/// Seals every [`hidden_fields`] value of `record` behind a placeholder, deepest first, with a
/// fresh salt from `salt` for each. Returns the record in placeholder form and the
/// disclosures, in sealing order.
pub fn conceal(
    kind: RecordKind,
    mut record: Value,
    salt: &mut dyn FnMut() -> [u8; SALT_LEN],
) -> (Value, Vec<Disclosure>) {
    let hidden = hidden_fields(kind, &record);
    let mut disclosures = Vec::with_capacity(hidden.len());
    for field in hidden {
        let pointer = field.pointer();
        let Some(slot) = record.pointer_mut(&pointer) else {
            continue;
        };
        let value = slot.take();
        let d = Disclosure::new(salt(), &pointer, value);
        *slot = placeholder(&d.digest);
        disclosures.push(d);
    }
    (record, disclosures)
}

/// Puts the given disclosures back into `record` (placeholder form), outer values first so
/// that the placeholders inside a disclosed value can be disclosed in turn.
///
/// Every disclosure must land on a placeholder carrying its digest, at the place its pointer
/// names. With `complete`, every placeholder must be disclosed (the node's own feed carries
/// all of them); otherwise the ones left stay placeholders ([`strip`] removes them for
/// display).
pub fn reveal(
    record: &mut Value,
    disclosures: &[Disclosure],
    complete: bool,
) -> Result<(), DisclosureError> {
    if disclosures.is_empty() && !complete {
        return Ok(());
    }
    let mut set = DisclosureSet::new(disclosures)?;
    set.reveal(record, complete)?;
    set.check_all_used()
}

/// Disclosures indexed by digest, for revealing several records from one pool (a batch's
/// disclosures travel as one list) and checking at the end that every one was used.
pub struct DisclosureSet<'d> {
    by_digest: HashMap<&'d str, usize>,
    pointers: Vec<&'d str>,
    digests: Vec<&'d str>,
    values: Values<'d>,
    used: Vec<bool>,
}

/// Where a revealed value comes from: copied out of disclosures the caller keeps, or moved out
/// of ones it hands over (each disclosure is used once, so nothing needs copying).
enum Values<'d> {
    Shared(Vec<&'d Value>),
    Taken(Vec<&'d mut Value>),
}

impl<'d> DisclosureSet<'d> {
    /// Indexes `disclosures`; refuses two with the same digest.
    pub fn new(disclosures: &'d [Disclosure]) -> Result<DisclosureSet<'d>, DisclosureError> {
        let parts = disclosures
            .iter()
            .map(|d| (d.digest.as_str(), d.pointer.as_str()));
        let values = Values::Shared(disclosures.iter().map(|d| &d.value).collect());
        DisclosureSet::indexed(parts, values)
    }

    /// [`DisclosureSet::new`] over disclosures whose values may be moved into the records
    /// they reveal (their `value` is `null` afterwards).
    pub fn taking(disclosures: &'d mut [Disclosure]) -> Result<DisclosureSet<'d>, DisclosureError> {
        let mut parts = Vec::with_capacity(disclosures.len());
        let mut values = Vec::with_capacity(disclosures.len());
        for Disclosure {
            digest,
            pointer,
            value,
            ..
        } in disclosures.iter_mut()
        {
            parts.push((digest.as_str(), pointer.as_str()));
            values.push(value);
        }
        DisclosureSet::indexed(parts.into_iter(), Values::Taken(values))
    }

    fn indexed(
        parts: impl ExactSizeIterator<Item = (&'d str, &'d str)>,
        values: Values<'d>,
    ) -> Result<DisclosureSet<'d>, DisclosureError> {
        let n = parts.len();
        let mut by_digest = HashMap::with_capacity(n);
        let (mut pointers, mut digests) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (index, (digest, pointer)) in parts.enumerate() {
            if by_digest.insert(digest, index).is_some() {
                return Err(DisclosureError::Repeated {
                    index,
                    digest: digest.to_owned(),
                });
            }
            pointers.push(pointer);
            digests.push(digest);
        }
        Ok(DisclosureSet {
            by_digest,
            pointers,
            digests,
            values,
            used: vec![false; n],
        })
    }

    /// Reveals what of the pool belongs in `record`; returns the positions used, in the order
    /// they were put back (outer first).
    pub fn reveal(
        &mut self,
        record: &mut Value,
        complete: bool,
    ) -> Result<Vec<usize>, DisclosureError> {
        let mut path = String::new();
        let mut here = Vec::new();
        self.reveal_at(record, complete, &mut path, &mut here)?;
        Ok(here)
    }

    /// Fails on the first disclosure that matched no placeholder.
    pub fn check_all_used(&self) -> Result<(), DisclosureError> {
        match self.used.iter().position(|u| !u) {
            Some(i) => Err(DisclosureError::Unused {
                pointer: self.pointers[i].to_owned(),
                digest: self.digests[i].to_owned(),
            }),
            None => Ok(()),
        }
    }

    fn reveal_at(
        &mut self,
        value: &mut Value,
        complete: bool,
        path: &mut String,
        here: &mut Vec<usize>,
    ) -> Result<(), DisclosureError> {
        if let Some(digest) = placeholder_digest(value) {
            let Some(&index) = self.by_digest.get(digest) else {
                if complete {
                    return Err(DisclosureError::Missing {
                        pointer: path.clone(),
                    });
                }
                return Ok(());
            };
            if self.pointers[index] != path.as_str() {
                return Err(DisclosureError::Misplaced {
                    pointer: self.pointers[index].to_owned(),
                    placeholder: path.clone(),
                });
            }
            if self.used[index] {
                return Err(DisclosureError::Repeated {
                    index,
                    digest: self.digests[index].to_owned(),
                });
            }
            *value = match &mut self.values {
                Values::Shared(v) => v[index].clone(),
                Values::Taken(v) => std::mem::take(&mut *v[index]),
            };
            self.used[index] = true;
            here.push(index);
            // The disclosed value may hold deeper placeholders.
            return self.reveal_at(value, complete, path, here);
        }
        let len = path.len();
        match value {
            Value::Object(o) => {
                for (k, v) in o.iter_mut() {
                    if matches!(v, Value::Object(_) | Value::Array(_)) {
                        push_pointer_key(path, k);
                        self.reveal_at(v, complete, path, here)?;
                        path.truncate(len);
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter_mut().enumerate() {
                    if matches!(v, Value::Object(_) | Value::Array(_)) {
                        path.push('/');
                        let _ = write!(path, "{i}");
                        self.reveal_at(v, complete, path, here)?;
                        path.truncate(len);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Where a record's placeholders are, as the canonical writer finds them
/// ([`crate::canonical::Walker`]): the walk that writes the Merkle leaf also lists them, so
/// that putting the disclosures back visits only those places.
#[derive(Default)]
pub(crate) struct PlaceholderFinder<'a> {
    path: Vec<Step<'a>>,
    /// Each placeholder's JSON Pointer, in the order the writer met them.
    pub(crate) found: Vec<String>,
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> crate::canonical::Walker<'a> for PlaceholderFinder<'a> {
    fn enter_key(&mut self, key: &'a str) {
        self.path.push(Step::Key(key));
    }

    fn enter_index(&mut self, index: usize) {
        self.path.push(Step::Index(index));
    }

    fn leave(&mut self) {
        self.path.pop();
    }

    fn object(&mut self, map: &'a serde_json::Map<String, Value>) {
        if map.len() != 1 {
            return;
        }
        if let Some(Value::String(_)) = map.get(DIGEST_KEY) {
            let mut pointer = String::new();
            for step in &self.path {
                match step {
                    Step::Key(k) => push_pointer_key(&mut pointer, k),
                    Step::Index(i) => {
                        let _ = write!(pointer, "/{i}");
                    }
                }
            }
            self.found.push(pointer);
        }
    }
}

impl DisclosureSet<'_> {
    /// [`DisclosureSet::reveal`] when the placeholders of `record` are already known
    /// (`found`: the pointer of each, as [`PlaceholderFinder`] lists them): the same checks,
    /// the same result, without walking the whole record again.
    pub(crate) fn reveal_found(
        &mut self,
        record: &mut Value,
        found: &[String],
        complete: bool,
    ) -> Result<Vec<usize>, DisclosureError> {
        let mut here = Vec::new();
        for pointer in found {
            let mut path = pointer.clone();
            let Some(slot) = record.pointer_mut(pointer) else {
                return Err(DisclosureError::Missing { pointer: path });
            };
            // The placeholder itself, and whatever its disclosure nests.
            self.reveal_at(slot, complete, &mut path, &mut here)?;
        }
        Ok(here)
    }
}

/// What a reader given `texts` (some of an entry's disclosures) sees of the entry's record
/// (placeholder form): the disclosures put back, every placeholder left removed. Fails if a
/// disclosure does not belong to this record.
pub fn disclosed_view(sealed: &Value, texts: &[String]) -> Result<Value, DisclosureError> {
    let parsed = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Disclosure::parse(t, i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut view = sealed.clone();
    reveal(&mut view, &parsed, false)?;
    strip(&mut view);
    Ok(view)
}

/// Removes every placeholder left in `record`: an object member disappears, an array element
/// is dropped. What a reader sees of values they were not given.
pub fn strip(record: &mut Value) {
    match record {
        Value::Object(o) => {
            o.retain(|_, v| placeholder_digest(v).is_none());
            o.values_mut().for_each(strip);
        }
        Value::Array(a) => {
            a.retain(|v| placeholder_digest(v).is_none());
            a.iter_mut().for_each(strip);
        }
        _ => {}
    }
}

/// A fresh salt from OpenSSL's random generator.
pub fn openssl_salt() -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    openssl::rand::rand_bytes(&mut salt).expect("OpenSSL's random generator works");
    salt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensitivity::{Entitlements, redact};
    use serde_json::json;

    fn counter_salt() -> impl FnMut() -> [u8; SALT_LEN] {
        let mut n = 0u8;
        move || {
            n += 1;
            [n; SALT_LEN]
        }
    }

    fn record() -> Value {
        json!({
            "title": "高安全固态锂电池",
            "secrecy": {"level": "public"},
            "technical_indicators": "能量密度 400 Wh/kg",
            "transfer": {"modes": ["许可"], "price": 300},
            "completers": [
                {"name": "张三", "phone": "13800000000"},
                {"name": "李四", "email": "li@example.cn"}
            ],
            "ip": [{"type": "发明专利", "number": "ZL1"}, {"type": "发明专利", "number": "ZL2", "title": "秘密工艺"}],
            "confidential_fields": ["/ip/1/title", "/ip/0", "/transfer"]
        })
    }

    #[test]
    fn sealed_record_shows_no_hidden_value_and_reveals_back_exactly() {
        let full = record();
        let (sealed, ds) = conceal(RecordKind::Achievement, full.clone(), &mut counter_salt());
        let text = sealed.to_string();
        for secret in [
            "13800000000",
            "li@example.cn",
            "秘密工艺",
            "ZL1",
            "400 Wh/kg",
            "300",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // /transfer/price sealed first, then /transfer around it.
        let outer = ds.iter().find(|d| d.pointer == "/transfer").unwrap();
        assert!(placeholder_digest(&outer.value["price"]).is_some());
        let mut back = sealed.clone();
        reveal(&mut back, &ds, true).unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn the_view_from_disclosures_is_the_redacted_view() {
        let full = record();
        let (sealed, ds) = conceal(RecordKind::Achievement, full.clone(), &mut counter_salt());
        let hidden = hidden_fields(RecordKind::Achievement, &full);
        for e in ["public", "commercial", "personal", "commercial,personal"] {
            let e: Entitlements = e.parse().unwrap();
            let given: Vec<Disclosure> = ds
                .iter()
                .filter(|d| {
                    hidden
                        .iter()
                        .find(|h| h.pointer() == d.pointer)
                        .is_some_and(|h| h.classes.entitled(e))
                })
                .cloned()
                .collect();
            let mut view = sealed.clone();
            reveal(&mut view, &given, false).unwrap();
            strip(&mut view);
            assert_eq!(Some(view), redact(RecordKind::Achievement, &full, e), "{e}");
        }
    }

    #[test]
    fn a_disclosure_must_land_on_its_own_placeholder() {
        let (sealed, ds) = conceal(RecordKind::Achievement, record(), &mut counter_salt());
        // Moved: the phone's disclosure claims to be the e-mail's.
        let phone = ds
            .iter()
            .find(|d| d.pointer == "/completers/0/phone")
            .unwrap();
        let moved = Disclosure::new([9; SALT_LEN], "/completers/1/email", phone.value.clone());
        let mut r = sealed.clone();
        assert!(matches!(
            reveal(&mut r, &[moved], false),
            Err(DisclosureError::Unused { .. })
        ));
        // Same digest, other pointer: a forged text cannot keep the digest.
        let mut r = sealed.clone();
        let mut forged = phone.clone();
        forged.pointer = "/completers/1/email".into();
        assert!(matches!(
            reveal(&mut r, &[forged], false),
            Err(DisclosureError::Misplaced { .. })
        ));
        let mut r = sealed.clone();
        assert!(matches!(
            reveal(&mut r, &ds[1..], true),
            Err(DisclosureError::Missing { .. }) | Err(DisclosureError::Unused { .. })
        ));
    }

    #[test]
    fn disclosures_parse_back_to_themselves() {
        let d = Disclosure::new([7; SALT_LEN], "/transfer/price", json!(300));
        assert_eq!(
            d.text,
            r#"["BwcHBwcHBwcHBwcHBwcHBw","/transfer/price",300]"#
        );
        assert_eq!(Disclosure::parse(&d.text, 0).unwrap(), d);
        for bad in [
            "{}",
            "[1,2]",
            r#"["x","/a",1]"#,
            r#"["BwcHBwcHBwcHBwcHBwcHBw","a",1]"#,
        ] {
            assert!(Disclosure::parse(bad, 0).is_err(), "{bad}");
        }
    }
}
