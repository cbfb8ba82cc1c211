//! Reading a request's query parameters the same way in both services: an integer parameter
//! with its range, refused with a message that names what is accepted and what came, so that
//! `?limit=` reads alike at the node's list and the gateway's search.
//!
//! What it may not touch: the request. It takes the already-parsed parameters (each service
//! parses its query strictly in its own way) and returns the value or the message; the caller
//! puts the message at `/query/{name}` in its problem document.

use std::collections::HashMap;
use std::ops::RangeInclusive;

/// The integer parameter `name` of `query`, `default` when absent or empty; otherwise it must
/// lie in `range`. The error is the message for `/query/{name}`, saying what is accepted and
/// what came.
pub fn int_in_range(
    query: &HashMap<String, String>,
    name: &str,
    default: i64,
    range: RangeInclusive<i64>,
) -> Result<i64, String> {
    match query.get(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|v| range.contains(v))
            .ok_or_else(|| {
                format!(
                    "must be an integer {}–{}, got {text:?}",
                    range.start(),
                    range.end()
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_in_range_or_a_message_that_says_what_is_accepted() {
        let q: HashMap<String, String> =
            [("limit", "50"), ("after", ""), ("n", "x"), ("big", "101")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert_eq!(int_in_range(&q, "limit", 20, 1..=100), Ok(50));
        assert_eq!(int_in_range(&q, "after", 0, 0..=i64::MAX), Ok(0));
        assert_eq!(int_in_range(&q, "absent", 7, 0..=9), Ok(7));
        assert_eq!(
            int_in_range(&q, "n", 1, 1..=100),
            Err("must be an integer 1–100, got \"x\"".to_owned())
        );
        assert!(int_in_range(&q, "big", 1, 1..=100).is_err());
    }
}
