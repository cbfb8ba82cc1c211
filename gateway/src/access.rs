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
use rix_schema::sensitivity::{Entitlements, hidden_fields, redact, redact_owned};
use serde_json::Value;

use crate::db::schema::{consumer_tokens, read_audit};
use crate::db::{Db, StoreError};

/// Seals the positions readers page with — the change feed's `after` and the search's
/// `cursor` — so that they carry no change id.
///
/// Why: change ids are gap-free over the whole catalogue. A reader who could see the ids of
/// the changes they are shown would count, from the gaps, the changes they are not shown
/// (internal records, classified updates) and when they happened. So a position leaves the
/// gateway only sealed with a key derived from the catalogue's secret
/// ([`crate::catalogue::catalogue_key`], the same on every replica):
/// - a change-feed position is one AES-256 block (the id and eight zero bytes) — deterministic,
///   so that a follower that got back the position it sent knows it has caught up, and a
///   token that was not made here opens to non-zero bytes and is refused;
/// - a search cursor is AES-256-GCM under a fresh nonce, since it is only ever handed back.
///
/// The change feed never moves a reader's position past a change they may not see (see
/// `/v1/changes`): otherwise the sealed position would change whenever a hidden change
/// happened, and polling it would count them again.
#[derive(Clone)]
pub struct CursorSeal {
    changes: [u8; 32],
    search: [u8; 32],
}

/// A sealed position that this gateway did not make (or made for another catalogue).
#[derive(Debug, thiserror::Error)]
#[error("not a cursor this API returned")]
pub struct ForeignCursor;

impl CursorSeal {
    /// The seal of the catalogue `conn` opens.
    pub fn of_catalogue(conn: &mut crate::db::DbConn) -> Result<CursorSeal, StoreError> {
        Ok(CursorSeal::from_secret(&crate::catalogue::catalogue_key(
            conn,
        )?))
    }

    /// A seal under a random key, good for this process only (an index opened without a
    /// catalogue: tests, benchmarks). A server seals with [`CursorSeal::of_catalogue`].
    pub fn ephemeral() -> CursorSeal {
        let mut secret = [0u8; 32];
        openssl::rand::rand_bytes(&mut secret).expect("the system's random source");
        CursorSeal::from_secret(&secret)
    }

    fn from_secret(secret: &[u8]) -> CursorSeal {
        use hmac::{KeyInit as _, Mac as _};
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
                .expect("HMAC takes a key of any length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        CursorSeal {
            changes: derive(b"rix cursor seal: change feed positions"),
            search: derive(b"rix cursor seal: search cursors"),
        }
    }

    /// The sealed form of change-feed position `change_id`.
    pub fn seal_position(&self, change_id: i64) -> String {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&change_id.to_be_bytes());
        let sealed = self.block(openssl::symm::Mode::Encrypt, &block);
        base64_url(&sealed)
    }

    /// The change id a sealed position stands for.
    pub fn open_position(&self, token: &str) -> Result<i64, ForeignCursor> {
        let bytes = from_base64_url(token).ok_or(ForeignCursor)?;
        let block: [u8; 16] = bytes.try_into().map_err(|_| ForeignCursor)?;
        let open = self.block(openssl::symm::Mode::Decrypt, &block);
        if open[8..] != [0u8; 8] {
            return Err(ForeignCursor);
        }
        let id = i64::from_be_bytes(open[..8].try_into().expect("8 bytes"));
        if id < 0 {
            return Err(ForeignCursor);
        }
        Ok(id)
    }

    /// One AES-256 block, with no mode around it: a keyed permutation of 16 bytes.
    fn block(&self, mode: openssl::symm::Mode, input: &[u8; 16]) -> [u8; 16] {
        let cipher = openssl::symm::Cipher::aes_256_ecb();
        let mut crypter = openssl::symm::Crypter::new(cipher, mode, &self.changes, None)
            .expect("AES-256 with a 32-byte key");
        crypter.pad(false);
        let mut out = [0u8; 32];
        let mut n = crypter.update(input, &mut out).expect("one whole block");
        n += crypter.finalize(&mut out[n..]).expect("one whole block");
        debug_assert_eq!(n, 16);
        out[..16].try_into().expect("16 bytes")
    }

    /// `cursor` sealed for handing out.
    pub fn seal_cursor(&self, cursor: &[u8]) -> String {
        let cipher = openssl::symm::Cipher::aes_256_gcm();
        let mut nonce = [0u8; 12];
        openssl::rand::rand_bytes(&mut nonce).expect("the system's random source");
        let mut tag = [0u8; 16];
        let sealed =
            openssl::symm::encrypt_aead(cipher, &self.search, Some(&nonce), &[], cursor, &mut tag)
                .expect("AES-256-GCM with a 32-byte key");
        let mut token = Vec::with_capacity(12 + sealed.len() + 16);
        token.extend_from_slice(&nonce);
        token.extend_from_slice(&sealed);
        token.extend_from_slice(&tag);
        base64_url(&token)
    }

    /// What a cursor sealed by [`CursorSeal::seal_cursor`] holds.
    pub fn open_cursor(&self, token: &str) -> Result<Vec<u8>, ForeignCursor> {
        let bytes = from_base64_url(token).ok_or(ForeignCursor)?;
        if bytes.len() < 12 + 16 {
            return Err(ForeignCursor);
        }
        let (nonce, rest) = bytes.split_at(12);
        let (sealed, tag) = rest.split_at(rest.len() - 16);
        openssl::symm::decrypt_aead(
            openssl::symm::Cipher::aes_256_gcm(),
            &self.search,
            Some(nonce),
            &[],
            sealed,
            tag,
        )
        .map_err(|_| ForeignCursor)
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn from_base64_url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()
}

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
    /// Read from the catalogue at first use.
    seal: std::sync::Arc<std::sync::OnceLock<CursorSeal>>,
}

impl AccessFilter {
    /// The filter for the catalogue `db`.
    pub fn new(db: Db) -> AccessFilter {
        AccessFilter {
            db,
            seal: Default::default(),
        }
    }

    /// The seal of the positions this catalogue's readers page with ([`CursorSeal`]).
    pub fn cursor_seal(&self) -> Result<&CursorSeal, StoreError> {
        if let Some(seal) = self.seal.get() {
            return Ok(seal);
        }
        let seal = CursorSeal::of_catalogue(&mut *self.db.conn()?)?;
        Ok(self.seal.get_or_init(|| seal))
    }

    /// What a consumer with `entitlements` may see of `record`; `None` if not the record at all.
    ///
    /// `record` is the full record, or one whose sealed values are still placeholders (read
    /// with `catalogue::Reading::Sealed`): the rules cut the same places either way, since a
    /// placeholder sits where its value was, and a placeholder left after them — a value the
    /// reader was not given — is removed as [`rix_schema::disclosure::strip`] removes it.
    pub fn view(kind: RecordKind, record: &Value, entitlements: Entitlements) -> Option<Value> {
        redact(kind, record, entitlements).map(without_placeholders)
    }

    /// [`AccessFilter::view`] of a record the caller owns and needs no more (an export's): the
    /// view is cut out of it in place, not out of a copy.
    pub fn view_owned(
        kind: RecordKind,
        record: Value,
        entitlements: Entitlements,
    ) -> Option<Value> {
        redact_owned(kind, record, entitlements).map(without_placeholders)
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

/// A view with no placeholder left: the rules have cut every place they hide, so what is still
/// sealed is a value this reader was not given.
fn without_placeholders(mut view: Value) -> Value {
    rix_schema::disclosure::strip(&mut view);
    view
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
