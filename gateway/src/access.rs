//! The access filter: who is asking, and what of a record they may see.
//!
//! [`AccessFilter::view`] is the one function every read path calls before a record (or any
//! part of it) leaves the gateway; it is [`rix_schema::sensitivity::redact`], driven by the
//! schema's `x-sensitivity` marks and the submitter's `confidential_fields`. No endpoint keeps
//! its own list of fields. A record a consumer may not see is reported as absent (404), never as
//! forbidden: a refusal would reveal that it exists.
//!
//! The signed form of a record follows the same rule: [`AccessFilter::disclosures`] picks, of
//! a record's disclosures (batch format 2, `rix_schema::disclosure`), exactly those of values
//! the reader may see — the same [`hidden_fields`] list `redact` cuts by — so the signed entry
//! plus what the reader receives reconstructs exactly the view they are shown, and nothing
//! they receive lets them test a guess at a value they may not see.
//!
//! Consumers hold bearer tokens with entitlements (`internal`, `commercial`, `personal`); no
//! token means `public`. Tokens live in the catalogue (`rix token add|list|revoke`), by SHA-256
//! digest only. Every read by a consumer with more than `public` is written to `read_audit`.
//!
//! What it may not touch: records at rest, and HTTP. Callers bring the record (this module reads
//! only `consumer_tokens` and writes only `read_audit`), and it takes the `Authorization` value as
//! text, so every endpoint, and the search index through the same `redact`, cuts the same way.

use diesel::prelude::*;
use rix_schema::RecordKind;
use rix_schema::canonical::sha256_hex;
use rix_schema::disclosure::Disclosure;
use rix_schema::sensitivity::{Entitlements, hidden_fields, redact};
use serde_json::Value;

use crate::db::schema::{consumer_tokens, read_audit};
use crate::db::{Db, StoreError};

/// Who is reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// The token's name (`public` without a token).
    pub name: String,
    /// What it may see.
    pub entitlements: Entitlements,
}

impl Consumer {
    /// The anonymous consumer.
    pub fn public() -> Consumer {
        Consumer {
            name: "public".into(),
            entitlements: Entitlements::PUBLIC,
        }
    }
}

/// Why a consumer could not be identified.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A token was sent but is unknown or revoked.
    #[error("unknown or revoked bearer token; leave Authorization out to read as public")]
    UnknownToken,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for AccessError {
    fn from(e: diesel::result::Error) -> Self {
        AccessError::Store(StoreError::Query(e))
    }
}

/// The access filter over the catalogue's tokens and audit log.
#[derive(Clone)]
pub struct AccessFilter {
    db: Db,
}

impl AccessFilter {
    /// The filter for the catalogue `db`.
    pub fn new(db: Db) -> AccessFilter {
        AccessFilter { db }
    }

    /// What a consumer with `entitlements` may see of `record`; `None` if not the record at all.
    pub fn view(kind: RecordKind, record: &Value, entitlements: Entitlements) -> Option<Value> {
        redact(kind, record, entitlements)
    }

    /// Of the disclosures `texts` of `record` (the full record), those a reader with
    /// `entitlements` may receive, in the order given. A disclosure whose place is not one the
    /// rules hide (a node that sealed more than needed) goes only to readers entitled to
    /// everything: fail closed.
    pub fn disclosures(
        kind: RecordKind,
        record: &Value,
        texts: &[String],
        entitlements: Entitlements,
    ) -> Vec<String> {
        let hidden = hidden_fields(kind, record);
        texts
            .iter()
            .filter(|text| {
                let Ok(d) = Disclosure::parse(text, 0) else {
                    return false;
                };
                match hidden.iter().find(|h| h.pointer() == d.pointer) {
                    Some(h) => h.classes.entitled(entitlements),
                    None => entitlements.commercial && entitlements.personal,
                }
            })
            .cloned()
            .collect()
    }

    /// The consumer behind an `Authorization` header (none: public).
    pub fn consumer(&self, authorization: Option<&str>) -> Result<Consumer, AccessError> {
        let Some(header) = authorization else {
            return Ok(Consumer::public());
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(AccessError::UnknownToken)?;
        let mut conn = self.db.conn()?;
        let row: Option<(String, String)> = consumer_tokens::table
            .find(sha256_hex(token.as_bytes()))
            .filter(consumer_tokens::revoked_at.is_null())
            .select((consumer_tokens::name, consumer_tokens::entitlements))
            .first(&mut *conn)
            .optional()?;
        let (name, entitlements) = row.ok_or(AccessError::UnknownToken)?;
        Ok(Consumer {
            name,
            entitlements: entitlements.parse().unwrap_or(Entitlements::PUBLIC),
        })
    }

    /// Records a read by a non-public consumer (public reads are not audited: they are what
    /// anyone may read).
    pub fn audit(&self, consumer: &Consumer, endpoint: &str, subject: &str) {
        if consumer.entitlements == Entitlements::PUBLIC {
            return;
        }
        let row = (
            read_audit::at.eq(crate::catalogue::now()),
            read_audit::consumer.eq(consumer.name.clone()),
            read_audit::entitlements.eq(consumer.entitlements.to_string()),
            read_audit::endpoint.eq(endpoint.to_owned()),
            read_audit::subject.eq(subject.chars().take(500).collect::<String>()),
        );
        let written = self.db.write(|conn| {
            diesel::insert_into(read_audit::table)
                .values(row.clone())
                .execute(conn)
                .map_err(StoreError::from)
        });
        if let Err(e) = written {
            tracing::error!(error = %e, "could not write the read audit row");
        }
    }
}

/// Creates a consumer token; returns the token (shown once: only its digest is stored).
pub fn add_token(db: &Db, name: &str, entitlements: Entitlements) -> Result<String, StoreError> {
    let mut raw = [0u8; 24];
    openssl::rand::rand_bytes(&mut raw).map_err(|e| StoreError::Task(e.to_string()))?;
    let token = format!("rixc_{}", hex::encode(raw));
    add_token_value(db, name, entitlements, &token)?;
    Ok(token)
}

/// Stores a given token (for configs and tests that choose their own).
pub fn add_token_value(
    db: &Db,
    name: &str,
    entitlements: Entitlements,
    token: &str,
) -> Result<(), StoreError> {
    let digest = sha256_hex(token.as_bytes());
    db.write(|conn| {
        diesel::delete(consumer_tokens::table.find(&digest)).execute(conn)?;
        diesel::insert_into(consumer_tokens::table)
            .values((
                consumer_tokens::token_sha256.eq(&digest),
                consumer_tokens::name.eq(name),
                consumer_tokens::entitlements.eq(entitlements.to_string()),
                consumer_tokens::created_at.eq(crate::catalogue::now()),
            ))
            .execute(conn)
            .map_err(StoreError::from)
    })?;
    Ok(())
}

/// Revokes every token of consumer `name`; returns how many.
pub fn revoke_tokens(db: &Db, name: &str) -> Result<usize, StoreError> {
    db.write(|conn| {
        diesel::update(
            consumer_tokens::table
                .filter(consumer_tokens::name.eq(name))
                .filter(consumer_tokens::revoked_at.is_null()),
        )
        .set(consumer_tokens::revoked_at.eq(crate::catalogue::now()))
        .execute(conn)
        .map_err(StoreError::from)
    })
}

/// One consumer token as listed: `(name, entitlements, created_at, revoked_at)`.
pub type TokenRow = (String, String, String, Option<String>);

/// Every token, oldest first (never the token itself: only its digest is stored).
pub fn list_tokens(db: &Db) -> Result<Vec<TokenRow>, StoreError> {
    let mut conn = db.conn()?;
    Ok(consumer_tokens::table
        .order(consumer_tokens::created_at.asc())
        .select((
            consumer_tokens::name,
            consumer_tokens::entitlements,
            consumer_tokens::created_at,
            consumer_tokens::revoked_at,
        ))
        .load(&mut *conn)?)
}
