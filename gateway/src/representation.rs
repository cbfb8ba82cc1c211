//! How a read leaves the gateway as HTTP tools expect it: validators and `304 Not Modified`,
//! the next page as a `Link`, and `fields=` to take only some fields.
//!
//! Everything here works on what the access filter already let through, never on the
//! catalogue: an `ETag` is a digest of the very bytes this reader receives, a `Last-Modified`
//! the time of the last change this reader may know of, and a field selection picks among the
//! fields of the reader's view. So none of them can tell a reader anything the body does not —
//! a change to something hidden from them moves neither validator.

use std::time::SystemTime;

use actix_web::http::header::{self, HttpDate};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::ApiError;

/// The fields of a search hit, as `fields=` on `/v1/search` names them (`unified_id` always
/// stays: without it a hit leads nowhere).
pub const HIT_FIELDS: [&str; 8] = [
    "unified_id",
    "kind",
    "title",
    "year",
    "region",
    "secrecy",
    "score",
    "highlights",
];

/// The top-level fields of the records of every kind, from the schemas themselves: what
/// `fields=` may name on the change feed and the JSON Lines export.
pub fn record_fields() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = rix_schema::RecordKind::ALL
        .into_iter()
        .flat_map(|kind| {
            rix_schema::schemas::for_kind(kind).json()["properties"]
                .as_object()
                .into_iter()
                .flat_map(|p| p.keys().map(String::as_str))
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// A `fields=a,b,c` parameter, checked against the names the endpoint offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelection(Option<Vec<String>>);

impl FieldSelection {
    /// Reads `fields` (absent or empty: every field). An unknown name is refused at
    /// `/query/fields`, with the names it could have been.
    pub fn parse(value: Option<&String>, offered: &[&str]) -> Result<FieldSelection, ApiError> {
        let Some(value) = value.map(|v| v.trim()).filter(|v| !v.is_empty()) else {
            return Ok(FieldSelection(None));
        };
        let mut names = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !offered.contains(&name) {
                return Err(ApiError::BadParameter {
                    pointer: "/query/fields".into(),
                    message: format!("unknown field {name:?}; known: {}", offered.join(", ")),
                });
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        Ok(FieldSelection(Some(names)))
    }

    /// Whether every field is wanted.
    pub fn is_all(&self) -> bool {
        self.0.is_none()
    }

    /// Whether `name` is wanted.
    pub fn wants(&self, name: &str) -> bool {
        self.0.as_ref().is_none_or(|n| n.iter().any(|f| f == name))
    }

    /// The chosen names in the order asked, or `all` when every field is wanted.
    pub fn names_or<'a>(&'a self, all: &[&'a str]) -> Vec<&'a str> {
        match &self.0 {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => all.to_vec(),
        }
    }

    /// Keeps only the wanted members of `object` (and those in `always`).
    pub fn retain(&self, object: &mut Value, always: &[&str]) {
        if let (Some(_), Some(map)) = (&self.0, object.as_object_mut()) {
            map.retain(|k, _| always.contains(&k.as_str()) || self.wants(k));
        }
    }
}

/// A weak entity tag of a body: weak because the same representation may leave compressed or
/// not (`Content-Encoding` is negotiated after it is computed).
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!(
        "W/\"{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..18])
    )
}

/// An RFC 3339 time of the catalogue as an HTTP date (seconds; HTTP has no finer grain).
pub fn http_date(rfc3339: &str) -> Option<HttpDate> {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let seconds = u64::try_from(at.unix_timestamp()).ok()?;
    Some(HttpDate::from(
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
    ))
}

/// A body sent with its validators, or `304 Not Modified` when the request's conditions say the
/// client holds it already (RFC 9110 §13.1: `If-None-Match` decides when present, and only
/// without it `If-Modified-Since`).
pub fn with_validators(
    req: &HttpRequest,
    mut response: HttpResponseBuilder,
    content_type: &str,
    body: Vec<u8>,
    last_modified: Option<HttpDate>,
) -> HttpResponse {
    let etag = etag_of(&body);
    let not_modified = match req.headers().get(header::IF_NONE_MATCH) {
        Some(wanted) => wanted.to_str().is_ok_and(|list| {
            list.trim() == "*"
                || list
                    .split(',')
                    .map(|t| t.trim().trim_start_matches("W/"))
                    .any(|t| t == etag.trim_start_matches("W/"))
        }),
        None => match (
            last_modified,
            req.headers()
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<HttpDate>().ok()),
        ) {
            (Some(modified), Some(since)) => SystemTime::from(modified) <= SystemTime::from(since),
            _ => false,
        },
    };
    // Another token may read other bytes at the same URL: caches keep one copy per token and
    // ask again before using it.
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::VARY, "Authorization"))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if let Some(modified) = last_modified {
        response.insert_header((header::LAST_MODIFIED, modified));
    }
    if not_modified {
        response.status(actix_web::http::StatusCode::NOT_MODIFIED);
        return response.finish();
    }
    response.content_type(content_type.to_owned()).body(body)
}

/// `Link: <…>; rel="next"` for a paged response: this request's own path and query with
/// `name` set to `value` (RFC 8288; a reference relative to the request, as clients resolve it).
pub fn next_link(req: &HttpRequest, name: &str, value: &str) -> String {
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut query: Vec<String> = req
        .query_string()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| p.split_once('=').map_or(*p, |(n, _)| n) != name)
        .map(str::to_owned)
        .collect();
    query.push(format!("{name}={}", encode(value)));
    format!("<{}?{}>; rel=\"next\"", req.path(), query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_fields_are_the_fields_a_hit_serialises() {
        let hit = crate::search::SearchHit {
            unified_id: "u".into(),
            kind: "achievement".into(),
            title: "t".into(),
            year: Some(2020),
            region: Some("530000".into()),
            secrecy: "public".into(),
            score: 0.0,
            highlights: Vec::new(),
        };
        let value = serde_json::to_value(hit).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = HIT_FIELDS.to_vec();
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn a_selection_names_only_offered_fields_and_keeps_what_must_stay() {
        let offered = ["a", "b", "c"];
        let all = FieldSelection::parse(None, &offered).unwrap();
        assert!(all.is_all());
        let some = FieldSelection::parse(Some(&" b , a,b ".to_owned()), &offered).unwrap();
        assert_eq!(some.names_or(&offered), ["b", "a"]);
        let mut v = serde_json::json!({"id": 1, "a": 1, "b": 2, "c": 3});
        some.retain(&mut v, &["id"]);
        assert_eq!(v, serde_json::json!({"id": 1, "a": 1, "b": 2}));
        match FieldSelection::parse(Some(&"a,zz".to_owned()), &offered) {
            Err(ApiError::BadParameter { pointer, message }) => {
                assert_eq!(pointer, "/query/fields");
                assert!(message.contains("\"zz\""), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn record_fields_come_from_both_schemas() {
        let names = record_fields();
        for name in ["title", "keywords", "project_no", "budget", "transfer"] {
            assert!(names.contains(&name), "{name}");
        }
    }

    #[test]
    fn etags_are_weak_and_follow_the_bytes() {
        assert!(etag_of(b"x").starts_with("W/\""));
        assert_eq!(etag_of(b"x"), etag_of(b"x"));
        assert_ne!(etag_of(b"x"), etag_of(b"y"));
        assert!(http_date("2026-11-30T10:00:00Z").is_some());
        assert!(http_date("yesterday").is_none());
    }
}
