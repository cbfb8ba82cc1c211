//! RFC 8785 canonical JSON and SHA-256: the bytes that get hashed and signed.
//!
//! A signature or a hash over JSON only means something if both sides produce the same bytes
//! from the same value. RFC 8785 (JSON Canonicalization Scheme) fixes those bytes: object members
//! sorted by their UTF-16 code units, no insignificant white space, ECMAScript number formatting,
//! minimal string escaping. Every hash and every signature in rix is taken over these bytes and
//! nothing else; the bytes that travel on the wire may be formatted any way serde_json likes.
//!
//! What it may not touch: what the bytes mean. It canonicalises and hashes any JSON and knows no
//! record, entry or header; its callers ([`crate::batch`], [`crate::disclosure`]) decide what
//! gets hashed and signed.

use std::cmp::Ordering;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A value could not be written as canonical JSON.
///
/// Only values outside the JSON data model fail: maps with non-string keys, duplicate keys
/// produced by a custom `Serialize`, NaN or infinite floats. A `serde_json::Value` never does.
#[derive(Debug, thiserror::Error)]
#[error("cannot write this value as RFC 8785 canonical JSON: {0}")]
pub struct CanonicalError(#[from] serde_json::Error);

/// The RFC 8785 canonical JSON of any serializable value.
///
/// Serializes straight to canonical bytes without an intermediate `serde_json::Value`, so
/// structs (a batch header, a feed entry) are canonicalized in one pass.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    Ok(serde_json_canonicalizer::to_vec(&value)?)
}

/// The RFC 8785 canonical JSON of a JSON value.
///
/// Infallible because a `serde_json::Value` is always inside the JSON data model: keys are
/// strings, numbers are finite, strings are valid Unicode.
pub fn canonical_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical_value(value, &mut out);
    out
}

/// Appends the RFC 8785 canonical JSON of a JSON value to `out`.
///
/// This is the hot path of batch signing and verification (every record of every batch), so it
/// walks the `Value` directly instead of going through `serde_json_canonicalizer`, which buffers
/// and re-parses every object key; several times faster. It produces the same bytes as
/// [`to_canonical_vec`] — the tests compare the two on tricky and on random values — so either
/// may be used on either side of the wire:
///
/// - object members sorted by the UTF-16 code units of their names (not by the map's order,
///   which depends on serde_json's features);
/// - strings with only `"`, `\` and control characters escaped (`\b \t \n \f \r`, others as
///   `\u00xx`), everything else as UTF-8;
/// - numbers as IEEE doubles in ECMAScript form: integers up to 2^53 as plain digits, anything
///   else formatted by `serde_json_canonicalizer` itself.
pub fn write_canonical_value(value: &Value, out: &mut Vec<u8>) {
    write_canonical_value_walked(value, out, &mut NoWalker);
}

/// What the canonical writer shows of a value's shape as it writes it: every object, and the
/// place (key or index) of every array and object inside another. Lets one walk of a record
/// both write its canonical bytes and find things in it (the placeholders of selective
/// disclosure), instead of two walks over memory that is slow to reach.
pub(crate) trait Walker<'a> {
    /// Entering the member `key` of an object (only members that are arrays or objects).
    fn enter_key(&mut self, key: &'a str);
    /// Entering the element `index` of an array (only elements that are arrays or objects).
    fn enter_index(&mut self, index: usize);
    /// Leaving what the last `enter_*` entered.
    fn leave(&mut self);
    /// An object, before its members.
    fn object(&mut self, map: &'a serde_json::Map<String, Value>);
}

/// The walker of a plain write: sees nothing, costs nothing.
pub(crate) struct NoWalker;

impl Walker<'_> for NoWalker {
    fn enter_key(&mut self, _: &str) {}
    fn enter_index(&mut self, _: usize) {}
    fn leave(&mut self) {}
    fn object(&mut self, _: &serde_json::Map<String, Value>) {}
}

/// [`write_canonical_value`], showing `walker` the value's shape on the way.
pub(crate) fn write_canonical_value_walked<'a, W: Walker<'a>>(
    value: &'a Value,
    out: &mut Vec<u8>,
    walker: &mut W,
) {
    let container = |v: &Value| matches!(v, Value::Object(_) | Value::Array(_));
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_canonical_number(n, out),
        Value::String(s) => write_canonical_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if container(item) {
                    walker.enter_index(i);
                    write_canonical_value_walked(item, out, walker);
                    walker.leave();
                } else {
                    write_canonical_value_walked(item, out, walker);
                }
            }
            out.push(b']');
        }
        Value::Object(map) => {
            walker.object(map);
            out.push(b'{');
            let mut member = |i: usize, k: &'a String, v: &'a Value, out: &mut Vec<u8>| {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_str(k, out);
                out.push(b':');
                if container(v) {
                    walker.enter_key(k);
                    write_canonical_value_walked(v, out, walker);
                    walker.leave();
                } else {
                    write_canonical_value_walked(v, out, walker);
                }
            };
            // The map's own order is nearly always already RFC 8785's (serde_json's default
            // map sorts by code point, which differs from UTF-16 order only between a
            // supplementary character and U+E000–U+FFFF): check instead of sorting, and
            // spare every object an allocation.
            let in_order = map
                .keys()
                .zip(map.keys().skip(1))
                .all(|(a, b)| utf16_cmp(a, b) == Ordering::Less);
            if in_order {
                for (i, (k, v)) in map.iter().enumerate() {
                    member(i, k, v, out);
                }
            } else {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_unstable_by(|a, b| utf16_cmp(a.0, b.0));
                for (i, (k, v)) in members.into_iter().enumerate() {
                    member(i, k, v, out);
                }
            }
            out.push(b'}');
        }
    }
}

/// Largest integer an IEEE double holds exactly (2^53); up to here RFC 8785's number form of an
/// integer is just its digits.
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// The largest integer whose canonical form no other integer shares (2^53 − 1, ECMAScript's
/// `Number.MAX_SAFE_INTEGER`).
///
/// RFC 8785 writes every number as an IEEE double, so above this two different integers can
/// canonicalize (and hash, and sign) identically; fields that must be covered exactly by a
/// signature — seqs, versions — are kept at or below it.
pub const MAX_SAFE_INTEGER: u64 = MAX_EXACT_INTEGER - 1;

/// Appends a JSON number in RFC 8785 form.
pub fn write_canonical_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    use std::io::Write as _;
    if let Some(u) = n.as_u64().filter(|&u| u <= MAX_EXACT_INTEGER) {
        write!(out, "{u}").expect("writing to a Vec cannot fail");
    } else if let Some(i) = n
        .as_i64()
        .filter(|&i| i.unsigned_abs() <= MAX_EXACT_INTEGER)
    {
        // Negative here: non-negative integers in range took the branch above. `-0` cannot
        // occur as an integer.
        write!(out, "{i}").expect("writing to a Vec cannot fail");
    } else {
        // Floats and integers beyond 2^53: RFC 8785 formats them as the nearest double, the way
        // ECMAScript does; let the reference implementation do exactly that.
        serde_json_canonicalizer::to_writer(n, out).expect("a serde_json::Number is always finite");
    }
}

/// Appends a JSON string in RFC 8785 form.
pub fn write_canonical_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Nearly every string needs no escape at all: find out eight bytes at a time, then copy
    // it whole.
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any byte of `bytes` is a control character, `"` or `\\`, tested a word at a time
/// with the classic bit tricks (Hacker's Delight §6-1: a byte of `x` is below `n` iff
/// `(x - n·0x01…01) & !x & 0x80…80` is not zero, for `n` ≤ 128; equal to `c` iff `x ^ c·0x01…01`
/// has a zero byte). Exact for "any", which is all that is asked.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        if below(x, 0x20) | below(x ^ (ONES * 0x22), 1) | below(x ^ (ONES * 0x5c), 1) != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// RFC 8785 §3.2.3 member order: by UTF-16 code units. Equal to byte order for ASCII (the
/// common case, compared without re-encoding).
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// SHA-256 of some bytes.
///
/// The one hash function of the wire format (entry leaves, Merkle nodes, batch hashes, key
/// ids); kept here so no caller picks another by accident.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of some bytes, as 64 lowercase hex digits (the form headers and proofs carry).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

/// SHA-256 of the canonical JSON of a value: the content hash two parties agree on without
/// agreeing on formatting.
pub fn canonical_sha256<T: Serialize + ?Sized>(value: &T) -> Result<[u8; 32], CanonicalError> {
    Ok(sha256(&to_canonical_vec(value)?))
}

/// Whether a string is exactly 64 lowercase hex digits, the only spelling of a SHA-256 digest
/// the wire format accepts (so that a digest has one string form and string comparison is
/// digest comparison).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses 64 lowercase hex digits into a digest; `None` for any other spelling.
pub fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    if !is_sha256_hex(s) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_members_are_sorted_and_whitespace_removed() {
        let v = json!({"b": 1, "a": [true, null, "x"], "c": {"z": 1.5, "y": 1e21}});
        assert_eq!(
            String::from_utf8(canonical_value(&v)).unwrap(),
            r#"{"a":[true,null,"x"],"b":1,"c":{"y":1e+21,"z":1.5}}"#
        );
    }

    #[test]
    fn members_sort_by_utf16_code_units_not_by_utf8() {
        // U+FF41 (fullwidth a) sorts before U+1F600 in UTF-16 (0xD83D) but after it in UTF-8.
        let v = json!({"\u{1F600}": 1, "\u{FF41}": 2, "科": 3});
        let s = String::from_utf8(canonical_value(&v)).unwrap();
        assert_eq!(s, "{\"科\":3,\"\u{1F600}\":1,\"\u{FF41}\":2}");
    }

    #[test]
    fn rfc8785_number_formatting() {
        let v: serde_json::Value =
            serde_json::from_str("[1.0, -0.0, 1e-7, 123456789012, 0.1]").unwrap();
        assert_eq!(
            String::from_utf8(canonical_value(&v)).unwrap(),
            "[1,0,1e-7,123456789012,0.1]"
        );
    }

    /// The reference: `serde_json_canonicalizer` through serde.
    fn reference(v: &Value) -> Vec<u8> {
        to_canonical_vec(v).unwrap()
    }

    #[test]
    fn fast_writer_matches_the_reference_on_tricky_values() {
        let controls: String = (0u8..0x20).map(char::from).collect();
        let values = vec![
            json!(null),
            json!({}),
            json!([]),
            json!(""),
            json!(controls),
            json!(
                "quote \" backslash \\ solidus / del \u{7f} nbsp \u{a0} ls \u{2028} bom \u{feff}"
            ),
            json!("中文 — 😀 \u{10FFFF} \u{E000} \u{FFFD}"),
            json!({
                "\u{1F600}": 1, "\u{FF41}": 2, "\u{E000}": 3, "\u{D7FF}": 4, "a": 5, "": 6,
                "A": 7, "aa": 8, "a\u{0}": 9, "é": 10, "\u{10000}": 11, "\n": 12
            }),
            json!([
                0,
                1,
                -1,
                9007199254740991_i64,
                9007199254740992_i64,
                9007199254740993_i64,
                -9007199254740993_i64,
                u64::MAX,
                i64::MIN,
                1e21,
                1e20,
                123456789012345680000.0,
                0.1,
                -0.0,
                1.5,
                5e-324,
                f64::MAX,
                f64::MIN_POSITIVE,
                1e-7,
                1e-6,
                100.0,
                2.5e-5,
                3.0e300,
                -1.25e-10
            ]),
        ];
        for v in values {
            assert_eq!(
                String::from_utf8(canonical_value(&v)).unwrap(),
                String::from_utf8(reference(&v)).unwrap(),
                "{v}"
            );
        }
    }

    /// A small deterministic generator, so the crate needs no RNG for its tests.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn string(&mut self) -> String {
            const PARTS: [&str; 16] = [
                "a",
                "Z",
                "0",
                "\"",
                "\\",
                "/",
                "\n",
                "\u{1}",
                "\u{1f}",
                "\u{7f}",
                "科",
                "技",
                "\u{FF41}",
                "\u{1F600}",
                "\u{E000}",
                " ",
            ];
            (0..self.below(6))
                .map(|_| PARTS[self.below(16) as usize])
                .collect()
        }

        fn number(&mut self) -> Value {
            match self.below(5) {
                0 => json!(self.below(1000)),
                1 => json!(-(self.below(1 << 60) as i64)),
                2 => json!(self.next()),
                3 => json!(f64::from_bits(self.next() >> 2) % 1e25),
                _ => json!((self.below(100_000) as f64) / 64.0),
            }
        }

        fn value(&mut self, depth: u32) -> Value {
            let pick = if depth == 0 {
                self.below(4)
            } else {
                self.below(6)
            };
            match pick {
                0 => Value::Null,
                1 => json!(self.below(2) == 0),
                2 => self.number(),
                3 => json!(self.string()),
                4 => Value::Array((0..self.below(5)).map(|_| self.value(depth - 1)).collect()),
                _ => Value::Object(
                    (0..self.below(6))
                        .map(|_| (self.string(), self.value(depth - 1)))
                        .collect(),
                ),
            }
        }
    }

    #[test]
    fn fast_writer_matches_the_reference_on_random_values() {
        let mut rng = XorShift(0x5eed_6962_8785);
        for _ in 0..3000 {
            let v = rng.value(4);
            assert_eq!(canonical_value(&v), reference(&v), "{v}");
        }
    }

    #[test]
    fn sha256_matches_the_fips_180_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn only_lowercase_64_digit_hex_is_a_digest() {
        let d = sha256_hex(b"");
        assert_eq!(parse_sha256_hex(&d), Some(sha256(b"")));
        assert_eq!(parse_sha256_hex(&d.to_uppercase()), None);
        assert_eq!(parse_sha256_hex(&d[1..]), None);
        assert_eq!(parse_sha256_hex(&format!("{}g", &d[1..])), None);
    }
}
