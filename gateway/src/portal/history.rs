//! The version history of a record page: the versions of each source the gateway holds, as
//! the reader may see them.
//!
//! **A version the reader may not see does not exist for them.** Each held version is read
//! back as the full record and passed through the one access filter
//! ([`AccessFilter::view`]); a version whose level the reader may not see (an internal version
//! before a declassification, for a public reader) is dropped here, before anything about it
//! is rendered — no row, no date, no placeholder. A withdrawal has no record of its own: it is
//! shown exactly when the version it withdrew is. What survives is numbered by the page in the
//! order received (1, 2, 3 …), never by the node's version numbers, so neither a gap in the
//! numbering nor a count tells that hidden versions exist; what changed between two shown
//! versions is computed on the reader's views, so a change made in a hidden field, or in a
//! hidden version in between, shows as nothing more than the visible fields that differ.
//!
//! What it does not do: decide visibility itself (that is [`AccessFilter::view`] and
//! [`Unified::sources_for`](crate::catalogue::Unified::sources_for)), or show a version's
//! values (the page shows the current view; the history says when and what changed).

use diesel::prelude::*;
use rix_schema::RecordKind;
use rix_schema::batch::Op;
use rix_schema::sensitivity::Entitlements;
use serde_json::Value;

use crate::access::AccessFilter;
use crate::catalogue;
use crate::db::schema::record_versions;
use crate::db::{Db, StoreError};

/// One version a reader may see.
#[derive(Debug, Clone)]
pub struct SeenVersion {
    /// When the gateway received it (`applied_at`, RFC 3339).
    pub received: String,
    /// The reader's view of it; `None` for a withdrawal.
    pub view: Option<Value>,
}

/// The versions of one source the reader may see, oldest first.
#[derive(Debug, Clone)]
pub struct SourceHistory {
    pub node_id: String,
    pub id: String,
    pub versions: Vec<SeenVersion>,
}

/// The history of entry `unified_id` for a reader with `entitlements`: one list per source
/// they may know of, in the order the record page lists the sources.
pub fn history(
    db: &Db,
    unified_id: &str,
    entitlements: Entitlements,
) -> Result<Vec<SourceHistory>, StoreError> {
    let mut conn = db.conn()?;
    let Some(entry) = catalogue::unified(&mut conn, unified_id)? else {
        return Ok(Vec::new());
    };
    let Ok(kind) = entry.kind.parse::<RecordKind>() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for s in entry.sources_for(entitlements) {
        let held: Vec<(i64, String, String, Option<String>, String)> = record_versions::table
            .filter(record_versions::node_id.eq(&s.node_id))
            .filter(record_versions::id.eq(&s.id))
            .order(record_versions::version.asc())
            .select((
                record_versions::version,
                record_versions::op,
                record_versions::entry,
                record_versions::disclosures,
                record_versions::applied_at,
            ))
            .load(&mut *conn)?;
        out.push(SourceHistory {
            node_id: s.node_id.clone(),
            id: s.id.clone(),
            versions: seen(kind, &held, entitlements),
        });
    }
    Ok(out)
}

/// Of the held versions `(version, op, entry, disclosures, applied_at)`, oldest first, those
/// a reader with `entitlements` may see.
fn seen(
    kind: RecordKind,
    held: &[(i64, String, String, Option<String>, String)],
    entitlements: Entitlements,
) -> Vec<SeenVersion> {
    let mut out = Vec::new();
    // Whether the version a withdrawal withdraws was one the reader may see.
    let mut last_upsert_seen = false;
    for (_, op, entry, disclosures, applied_at) in held {
        if op == Op::Withdraw.as_str() {
            if last_upsert_seen {
                out.push(SeenVersion {
                    received: applied_at.clone(),
                    view: None,
                });
            }
            continue;
        }
        // A version that does not read back shows as nothing (fail closed).
        let view = catalogue::full_record(entry, disclosures.as_deref())
            .and_then(|full| AccessFilter::view(kind, &full, entitlements));
        last_upsert_seen = view.is_some();
        if let Some(view) = view {
            out.push(SeenVersion {
                received: applied_at.clone(),
                view: Some(view),
            });
        }
    }
    out
}

/// The top-level fields whose visible value differs between two views. A hidden value (a
/// selective-disclosure placeholder, salted afresh in every version) counts as equal to any
/// other hidden value: the reader cannot see it, so they cannot see it change either.
pub fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let a = before.as_object().unwrap_or(&empty);
    let b = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !same(a.get(k.as_str()), b.get(k.as_str())))
        .cloned()
        .collect()
}

fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_value(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    let hidden = |v: &Value| v.as_object().is_some_and(|o| o.contains_key("_sd"));
    match (a, b) {
        _ if hidden(a) && hidden(b) => true,
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_value(v, w))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hidden_values_never_count_as_changed() {
        let before = json!({"title": "a", "contact": {"_sd": "x"}, "keywords": ["k"]});
        let after = json!({"title": "b", "contact": {"_sd": "y"}, "keywords": ["k"]});
        assert_eq!(changed_fields(&before, &after), vec!["title".to_owned()]);
        let added = json!({"title": "a", "contact": {"_sd": "x"}, "keywords": ["k"], "trl": 5});
        assert_eq!(changed_fields(&before, &added), vec!["trl".to_owned()]);
    }
}
