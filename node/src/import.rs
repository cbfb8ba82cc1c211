//! Stage 1 for records that already exist elsewhere: the import (存量数据导入) behind
//! `POST /v1/{collection}/import`.
//!
//! What for: a province's history — years of 科技成果登记表 kept in spreadsheets, exports of the
//! desktop registration system, another platform's records — arrives through the adapters
//! (`rix import`), many rows per request, each with the source's own identity of the row
//! (`source_key`). Some rows are new results for review; some were registered long ago and
//! carry their 批准登记号, issued by this very node (or the body it replaces).
//!
//! Why it is built so:
//! - **Per item, not all or none.** One bad row of a 30,000-row sheet must not hold back the
//!   rest: every item is registered or refused on its own, the refusal pointing into the
//!   request (`/items/3/record/title`). The request itself is refused only when it is not an
//!   import at all (not `{"items": [...]}`, 0 or more than [`MAX_ITEMS`] items).
//! - **Idempotent per `source_key`.** The key and the record it became commit together
//!   (`import_keys`), so an import run twice, or resumed after a crash, registers nothing twice.
//!   A known key returns the record it names, `duplicate`, and changes nothing — even when the
//!   item differs from the one first imported under it, which `changed` says (their canonical
//!   JSON compared), so an operator sees edits in the source instead of having them applied
//!   silently. Revising stays the registration API's `PUT`, with its review.
//! - **One transaction per request, set-based.** The request's keys are looked up in one
//!   query, the holders of its historical numbers in one, and its new keys inserted in one
//!   multi-row insert; items are registered one after another without savepoints. Should an
//!   item be refused half way (after its record was inserted — the checks before the
//!   transaction make this rare), that run rolls back and the request runs again with each
//!   item in its own savepoint, so the refused item leaves nothing behind and the others
//!   commit. A conflict with a concurrent writer (the same key or number imported at the same
//!   moment) aborts the whole transaction, which `Db::write` runs again: the second run sees
//!   the first's rows.
//! - **Retries answered, not re-applied.** Under an `Idempotency-Key` the report is stored
//!   with the writes (as for batch submit); the same key and body get that report again.
//! - **The same rules and the same approval as online registration.** Records are checked by
//!   `register::check_document` and inserted by `register::insert_new_many` (what
//!   `register::insert_new` calls); approval — a historical number kept, or one assigned for
//!   `approve: true` — is `review::approve_submitted`, review's one set-based approval, given
//!   the rows just written instead of reading them back, which writes the log entry unless the
//!   record is classified `secret` or above. The import has no second way to approve, number
//!   or publish.
//!
//! Historical numbers (administrators only) are checked before anything is written: the
//! issuer code must be this node's, the year not after this one, the flag that of the record's
//! category, the serial above 0, and the number not held by any record at this node (as
//! assigned by review or imported). Taking one raises the serial counter of its issuer, year and
//! flag past it in the same transaction (`review::reserve_registration_no`), so review never
//! issues it again. Numbers are stored in their national form
//! ([`RegistrationNumber::format`], a four-digit serial at least).
//!
//! Who may import what: submitters (their own institution's records, for review), reviewers
//! (records they approve in the same request: `approve: true`), administrators (anything,
//! including historical numbers). An item the caller may not import is refused on its own with
//! status 403; the rest of the request goes on.
//!
//! What it may not touch: HTTP (the API renders what it returns), rules of its own for a
//! record's content, seqs and signatures (the log entry is review's, sealing the outbox's), and
//! any record it did not register (a duplicate is only read).

use std::collections::{BTreeSet, HashMap, HashSet};

use diesel::prelude::*;
use rix_runtime::clock::now;
use rix_schema::canonical::{sha256_hex, write_canonical_str, write_canonical_value};
use rix_schema::codes::{Issuer, RegistrationNumber};
use rix_schema::record::Category;
use rix_schema::validate::{FieldErrors, MAX_ERRORS, check_text};
use rix_schema::{FieldError, RecordKind};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Principal;
use crate::config::Role;
use crate::db::schema::{import_keys, records};
use crate::db::{AsConflict, Db, DbConn, StoreError, lock_counter};
use crate::error::{NodeError, ProblemField};
use crate::register::{self, Idempotency, RecordRow, RecordView};
use crate::review;

/// Most items in one import request.
pub const MAX_ITEMS: usize = 1000;

/// Longest `source_key`, in characters.
pub const MAX_SOURCE_KEY_CHARS: usize = 512;

/// The members an item may have.
const ITEM_MEMBERS: [&str; 4] = ["source_key", "record", "registration_no", "approve"];

/// An item registered by this request, or one a former import already registered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportedItem {
    /// Position of the item in the request.
    pub index: usize,
    /// The item's `source_key`.
    pub source_key: String,
    /// The record's node-local id.
    pub id: String,
    /// Its latest version.
    pub version: i64,
    /// The latest version's state (`submitted`, `approved`; for a duplicate, whatever it is now).
    pub state: String,
    /// 批准登记号, when approved.
    pub registration_no: Option<String>,
    /// The version standing in the node's feed (`null`: none — not approved yet, or classified
    /// `secret` or above and so kept at the node).
    pub published_version: Option<i64>,
    /// The key was imported before: nothing was registered or changed.
    pub duplicate: bool,
    /// For a duplicate: the item (record and registration number, as canonical JSON) differs
    /// from the one first imported under this key — the source was edited. Always `false` for
    /// an item registered now.
    pub changed: bool,
}

/// An item refused: nothing of it was written.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefusedItem {
    /// Position of the item in the request.
    pub index: usize,
    /// The item's `source_key`, when it has a usable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    /// What the refusal would be for a request of its own: 422 (invalid), 403 (the caller may
    /// not import this), 409 (the registration number or the key is taken).
    pub status: u16,
    /// What to fix, with JSON Pointers into the request (`/items/3/record/title`); at most
    /// [`MAX_ERRORS`].
    pub errors: Vec<ProblemField>,
    /// How many errors were found in all.
    pub errors_total: usize,
}

/// The outcome of one item.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ItemOutcome {
    /// Registered now, or a duplicate.
    Imported(ImportedItem),
    /// Refused.
    Refused(RefusedItem),
}

/// The answer to an import request: one outcome per item, in request order, and the counts.
/// `accepted + duplicates + refused` is the number of items.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// One per item, in request order.
    pub items: Vec<ItemOutcome>,
    /// Items registered by this request.
    pub accepted: usize,
    /// Items whose key was already imported (nothing changed).
    pub duplicates: usize,
    /// Items refused.
    pub refused: usize,
    /// Of the accepted, those approved by this request (historical numbers and `approve: true`).
    pub approved: usize,
}

/// Why one item is refused.
#[derive(Debug)]
struct Refusal {
    status: u16,
    errors: FieldErrors,
}

impl Refusal {
    fn one(status: u16, pointer: impl Into<String>, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            errors: vec![FieldError::new(pointer, message)].into(),
        }
    }

    fn into_item(self, index: usize, source_key: Option<String>) -> RefusedItem {
        RefusedItem {
            index,
            source_key,
            status: self.status,
            errors_total: self.errors.total.max(self.errors.errors.len()),
            errors: self
                .errors
                .errors
                .into_iter()
                .map(|e| ProblemField {
                    pointer: e.pointer,
                    message: e.message,
                })
                .collect(),
        }
    }
}

/// An item's failure while it is registered: refused (its savepoint rolls back and the others
/// go on; without savepoints, the whole run does — see [`RunError::ItemRefused`]), or a failure
/// of the whole request (storage, or a conflict `Db::write` retries).
enum ItemError {
    Refused(Refusal),
    Failed(NodeError),
}

impl From<diesel::result::Error> for ItemError {
    fn from(e: diesel::result::Error) -> Self {
        ItemError::Failed(e.into())
    }
}

/// Sorts a stage's refusal of one item into the item's refusal (pointers into the record are
/// put under `/items/{index}/record`) or a failure of the request.
fn item_error(index: usize, e: NodeError) -> ItemError {
    let base = format!("/items/{index}");
    let refusal = match e {
        NodeError::Invalid(mut errors) => {
            for f in &mut errors.errors {
                f.pointer = format!("{base}/record{}", f.pointer);
            }
            Refusal {
                status: 422,
                errors,
            }
        }
        NodeError::Conflict { pointer, message } => {
            Refusal::one(409, format!("{base}{pointer}"), message)
        }
        NodeError::Forbidden(message) => Refusal::one(403, base, message),
        NodeError::NotFound { .. } => Refusal::one(409, base, e.to_string()),
        other => return ItemError::Failed(other),
    };
    ItemError::Refused(refusal)
}

/// One item as the request gives it, its shape checked.
#[derive(Debug)]
struct Item {
    index: usize,
    source_key: String,
    key_sha256: String,
    item_sha256: String,
    record: Value,
    registration_no: Option<String>,
    approve: bool,
}

impl Item {
    fn pointer(&self, member: &str) -> String {
        format!("/items/{}/{member}", self.index)
    }
}

/// Reads the request: `{"items": [...]}` with 1–[`MAX_ITEMS`] items. A request that is not an
/// import is refused whole; an item of the wrong shape is refused on its own. The body is
/// taken apart, not copied: each record moves into its item.
fn parse(body: Value) -> Result<Vec<Result<Item, RefusedItem>>, NodeError> {
    let invalid = |pointer: &str, message: &str| {
        NodeError::Invalid(vec![FieldError::new(pointer, message)].into())
    };
    let Value::Object(mut top) = body else {
        return Err(invalid(
            "",
            "an import is a JSON object {\"items\": [{\"source_key\", \"record\", ...}, ...]}",
        ));
    };
    if let Some(other) = top.keys().find(|k| *k != "items") {
        let mut pointer = String::new();
        rix_schema::validate::push_pointer_key(&mut pointer, other);
        return Err(invalid(
            &pointer,
            "unknown member; an import has only `items`",
        ));
    }
    let items = match top.remove("items") {
        Some(Value::Array(items)) if (1..=MAX_ITEMS).contains(&items.len()) => items,
        _ => {
            return Err(invalid(
                "/items",
                "must be an array of 1–1000 items; split a larger import into several requests",
            ));
        }
    };
    // One buffer for every item's canonical JSON.
    let mut canonical = Vec::new();
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| parse_item(index, item, &mut canonical))
        .collect())
}

/// SHA-256 of the canonical JSON of `{"record": record, "registration_no": number}`, written
/// member by member (RFC 8785 orders `record` before `registration_no`) so that the record is
/// not copied into a wrapper first. Stored per key, so it must stay this exact digest.
fn item_digest(record: &Value, registration_no: Option<&str>, buf: &mut Vec<u8>) -> String {
    buf.clear();
    buf.extend_from_slice(b"{\"record\":");
    write_canonical_value(record, buf);
    buf.extend_from_slice(b",\"registration_no\":");
    match registration_no {
        Some(n) => write_canonical_str(n, buf),
        None => buf.extend_from_slice(b"null"),
    }
    buf.push(b'}');
    sha256_hex(buf)
}

fn parse_item(index: usize, item: Value, canonical: &mut Vec<u8>) -> Result<Item, RefusedItem> {
    let base = format!("/items/{index}");
    let mut errors = FieldErrors::from(Vec::new());
    let Value::Object(mut members) = item else {
        return Err(Refusal::one(
            422,
            base,
            "an item is an object {\"source_key\", \"record\", \"registration_no\"?, \"approve\"?}",
        )
        .into_item(index, None));
    };
    for name in members.keys() {
        if !ITEM_MEMBERS.contains(&name.as_str()) {
            let mut pointer = base.clone();
            rix_schema::validate::push_pointer_key(&mut pointer, name);
            errors.push(
                FieldError::new(
                    pointer,
                    "unknown member; an item has source_key, record, registration_no and approve",
                ),
                MAX_ERRORS,
            );
        }
    }
    let source_key = match members.remove("source_key") {
        Some(Value::String(key)) => {
            let chars = key.chars().count();
            let problem = if chars == 0 || chars > MAX_SOURCE_KEY_CHARS {
                Some(format!(
                    "must be 1–{MAX_SOURCE_KEY_CHARS} characters (it has {chars})"
                ))
            } else {
                check_text(&key, false).err()
            };
            match problem {
                Some(message) => {
                    errors.push(
                        FieldError::new(format!("{base}/source_key"), message),
                        MAX_ERRORS,
                    );
                    None
                }
                None => Some(key),
            }
        }
        _ => {
            errors.push(
                FieldError::new(
                    format!("{base}/source_key"),
                    "the row's identity in its source is required: a string of 1–512 characters",
                ),
                MAX_ERRORS,
            );
            None
        }
    };
    let record = match members.remove("record") {
        Some(record @ Value::Object(_)) => Some(record),
        _ => {
            errors.push(
                FieldError::new(
                    format!("{base}/record"),
                    "the record is required: an object of the collection's schema",
                ),
                MAX_ERRORS,
            );
            None
        }
    };
    let registration_no = match members.remove("registration_no") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n),
        Some(_) => {
            errors.push(
                FieldError::new(
                    format!("{base}/registration_no"),
                    "must be a string (批准登记号) or null",
                ),
                MAX_ERRORS,
            );
            None
        }
    };
    let approve = match members.get("approve") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(
                FieldError::new(format!("{base}/approve"), "must be true or false"),
                MAX_ERRORS,
            );
            false
        }
    };
    match (source_key, record) {
        (Some(source_key), Some(record)) if errors.total == 0 => {
            let item_sha256 = item_digest(&record, registration_no.as_deref(), canonical);
            Ok(Item {
                index,
                key_sha256: sha256_hex(source_key.as_bytes()),
                source_key,
                item_sha256,
                record,
                registration_no,
                approve,
            })
        }
        (source_key, _) => Err(Refusal {
            status: 422,
            errors,
        }
        .into_item(index, source_key)),
    }
}

/// What the caller's role allows for this item (403 otherwise).
fn check_role(who: &Principal, item: &Item) -> Result<(), Refusal> {
    if item.registration_no.is_some() && who.role != Role::Admin {
        return Err(Refusal::one(
            403,
            item.pointer("registration_no"),
            "only an administrator may import a record with its 批准登记号; import it with an \
             admin token, or leave registration_no out to send the record to review",
        ));
    }
    match (item.approve, who.role) {
        (true, Role::Submitter) => Err(Refusal::one(
            403,
            item.pointer("approve"),
            "only reviewers and administrators may approve; leave approve out to send the \
             record to review",
        )),
        (false, Role::Reviewer) if item.registration_no.is_none() => Err(Refusal::one(
            403,
            item.pointer("approve"),
            "a reviewer imports records only to approve them (approve: true); to send them to \
             review, import with a submitter's or an administrator's token",
        )),
        _ => Ok(()),
    }
}

/// Today, `YYYY-MM-DD` (UTC).
fn today() -> String {
    now()[..10].to_owned()
}

/// The category whose registration flag is `flag`.
fn category_of_flag(flag: char) -> Option<Category> {
    Category::ALL
        .iter()
        .copied()
        .find(|c| c.registration_flag() == flag)
}

/// Checks a historical number: this node's issuer, a year not after this one, the flag of the
/// record's category, a serial above 0, and the record's own `registration_no` /
/// `registration_date`, if it carries them, consistent with it.
fn check_number(
    kind: RecordKind,
    issuer: &Issuer,
    item: &Item,
    text: &str,
    errors: &mut FieldErrors,
) -> Option<RegistrationNumber> {
    let at = item.pointer("registration_no");
    let mut refuse = |pointer: &str, message: String| {
        errors.push(FieldError::new(pointer, message), MAX_ERRORS);
    };
    if kind != RecordKind::Achievement {
        refuse(
            &at,
            format!(
                "a {kind} has no 批准登记号 (only achievements are registered with one); \
                 leave registration_no out"
            ),
        );
        return None;
    }
    let number = match RegistrationNumber::parse(text) {
        Ok(n) => n,
        Err(e) => {
            refuse(&at, e.to_string());
            return None;
        }
    };
    let before = errors.total;
    let mut refuse = |pointer: &str, message: String| {
        errors.push(FieldError::new(pointer, message), MAX_ERRORS);
    };
    if number.issuer != *issuer {
        refuse(
            &at,
            format!(
                "{text} was issued by {}, but this node issues {}: a node imports only the numbers \
                 it issued; import this record at the node of {}",
                number.issuer.code(),
                issuer.code(),
                number.issuer.code()
            ),
        );
    }
    let year = review::this_year();
    if number.year > year {
        refuse(
            &at,
            format!(
                "{text} is of the year {}, after this one ({year}); a historical number cannot be \
                 from the future — check the year",
                number.year
            ),
        );
    }
    if number.serial == 0 {
        refuse(&at, format!("{text} has serial 0; serials start at 1"));
    }
    if let Some(category) = review::category_of(&item.record)
        && category.registration_flag() != number.flag
    {
        refuse(
            &at,
            format!(
                "{text} has the flag {} ({}), but the record's category is {} (flag {}); \
                 correct the number or the category",
                number.flag,
                category_of_flag(number.flag).map_or("?", Category::as_str),
                category.as_str(),
                category.registration_flag()
            ),
        );
    }
    if let Some(own) = item.record.get("registration_no").and_then(Value::as_str)
        && RegistrationNumber::parse(own).is_ok_and(|own| own != number)
    {
        refuse(
            &format!("{}/registration_no", item.pointer("record")),
            format!(
                "the record says {own} but the item's registration_no is {text}; they must be \
                 the same number (or leave it out of the record)"
            ),
        );
    }
    if let Some(date) = item.record.get("registration_date").and_then(Value::as_str)
        && date.len() == 10
        && *date > *today().as_str()
    {
        refuse(
            &format!("{}/registration_date", item.pointer("record")),
            format!(
                "the 登记日期 {date} is after today; a historical record was registered before"
            ),
        );
    }
    (errors.total == before).then_some(number)
}

/// Checks an item as submit checks a record, plus its historical number if it has one.
fn check_item(
    kind: RecordKind,
    issuer: &Issuer,
    who: &Principal,
    item: &Item,
) -> Result<Option<RegistrationNumber>, Refusal> {
    let record_base = item.pointer("record");
    // With a historical number the record may carry its number and 登记日期 itself: they are
    // checked against the item's number below, so check_document is told they are what the
    // record says. Without one, it refuses them as it refuses them at submit.
    let assigned = item.registration_no.as_ref().map(|_| {
        let text = |field: &str| item.record.get(field).and_then(Value::as_str).unwrap_or("");
        (text("registration_no"), text("registration_date"))
    });
    let mut errors = match register::check_document(kind, &item.record, who, assigned, &record_base)
    {
        Ok(()) => FieldErrors::from(Vec::new()),
        Err(e) => e,
    };
    let number = item
        .registration_no
        .as_deref()
        .and_then(|text| check_number(kind, issuer, item, text, &mut errors));
    if errors.total > 0 {
        return Err(Refusal {
            status: 422,
            errors,
        });
    }
    Ok(number)
}

/// An item ready for the transaction: its shape, role and (unless its key is known) content
/// checked.
struct Ready {
    item: Item,
    /// A historical number, checked, and its national form.
    number: Option<(RegistrationNumber, String)>,
    checked: bool,
}

enum Slot {
    Refused(RefusedItem),
    Ready(Box<Ready>),
}

/// What an import request got: applied now, or — a retry under the same `Idempotency-Key` —
/// the answer the first one got, word for word, with nothing applied again.
#[derive(Debug)]
pub enum ImportReply {
    /// Applied by this request; with an `Idempotency-Key`, also the report as stored, which is
    /// then the response's body word for word.
    Applied(ImportReport, Option<String>),
    /// The stored answer to an earlier request with the same key and body, as stored.
    Replayed(String),
}

/// Why one run of the request's transaction ended without a report.
enum RunError {
    /// An item was refused part way through a run without savepoints. Everything the run
    /// wrote rolls back, and the request runs again with a savepoint per item, where the
    /// refusal costs that item alone.
    ItemRefused,
    Failed(NodeError),
}

impl From<diesel::result::Error> for RunError {
    fn from(e: diesel::result::Error) -> Self {
        RunError::Failed(e.into())
    }
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        RunError::Failed(e.into())
    }
}

impl From<NodeError> for RunError {
    fn from(e: NodeError) -> Self {
        RunError::Failed(e)
    }
}

impl AsConflict for RunError {
    fn is_conflict(&self) -> bool {
        matches!(self, RunError::Failed(e) if e.is_conflict())
    }
}

/// Rows per multi-row insert into `import_keys`: 7 parameters a row stays far below both
/// backends' limit on parameters per statement.
const KEY_ROWS_PER_INSERT: usize = 500;

/// Imports the items of `body` into `kind`: see the module doc for what happens to each.
/// With `idem`, a request already answered under that key (and body) gets the stored answer
/// and changes nothing; the same key with another body is refused.
pub fn import(
    db: &Db,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    body: Value,
    idem: Option<&Idempotency>,
) -> Result<ImportReply, NodeError> {
    // A retry is answered before any item is checked; the transaction below asks again, for a
    // retry that raced its first attempt.
    if let Some(idem) = idem
        && let Some(stored) = register::replay(&mut *db.conn()?, who, idem)?
    {
        return Ok(ImportReply::Replayed(stored.1));
    }
    let parsed = parse(body)?;
    let mut slots: Vec<Slot> = parsed
        .into_iter()
        .map(|p| match p {
            Err(refused) => Slot::Refused(refused),
            Ok(item) => match check_role(who, &item) {
                Err(r) => {
                    let index = item.index;
                    Slot::Refused(r.into_item(index, Some(item.source_key)))
                }
                Ok(()) => Slot::Ready(Box::new(Ready {
                    item,
                    number: None,
                    checked: false,
                })),
            },
        })
        .collect();

    // Keys already imported need no checking: they register nothing. Keys are never deleted,
    // so what is known now is known in the transaction below.
    let digests = ready_digests(&slots);
    let known: HashSet<String> = if digests.is_empty() {
        HashSet::new()
    } else {
        import_keys::table
            .filter(import_keys::kind.eq(kind.as_str()))
            .filter(import_keys::key_sha256.eq_any(&digests))
            .select(import_keys::key_sha256)
            .load::<String>(&mut *db.conn()?)?
            .into_iter()
            .collect()
    };

    // The records are checked outside the write transaction, which then holds its locks only
    // for the writes.
    for slot in &mut slots {
        let Slot::Ready(ready) = slot else { continue };
        if known.contains(&ready.item.key_sha256) {
            continue;
        }
        match check_item(kind, issuer, who, &ready.item) {
            Ok(number) => {
                ready.number = number.map(|n| {
                    let text = n.format();
                    (n, text)
                });
                ready.checked = true;
            }
            Err(r) => {
                let index = ready.item.index;
                let key = Some(ready.item.source_key.clone());
                *slot = Slot::Refused(r.into_item(index, key));
            }
        }
    }

    // The serial counters this request may take: this year's for approvals that assign a
    // number, and those of the historical numbers it reserves. Created first (each in a short
    // transaction of its own), then locked in one global order — by name, which is also the
    // order `review::approve_many` takes this year's in — so concurrent approvals and imports
    // cannot deadlock.
    let mut counters = BTreeSet::new();
    for slot in &slots {
        let Slot::Ready(ready) = slot else { continue };
        if !ready.checked || kind != RecordKind::Achievement {
            continue;
        }
        match &ready.number {
            Some((n, _)) => {
                counters.insert(review::serial_counter(&n.issuer, n.year, n.flag));
            }
            None if ready.item.approve => {
                for flag in ['J', 'R', 'Y'] {
                    counters.insert(review::serial_counter(issuer, review::this_year(), flag));
                }
            }
            None => {}
        }
    }
    let names: Vec<&str> = counters.iter().map(String::as_str).collect();
    db.ensure_counters(&names)?;
    commit(db, issuer, who, kind, &slots, &counters, idem)
}

/// Writes the ready items of a request in one transaction, the `counters` (created) locked
/// first, and stores the report under `idem`.
fn commit(
    db: &Db,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    slots: &[Slot],
    counters: &BTreeSet<String>,
    idem: Option<&Idempotency>,
) -> Result<ImportReply, NodeError> {
    // First the whole request in one go, without a savepoint per item: a request of valid
    // rows — nearly every one — pays for no savepoints. Only if an item is refused part way
    // (after writing) does the request run again with one savepoint per item.
    let run = |savepoints: bool| {
        db.write(|conn| {
            if let Some(idem) = idem
                && let Some(stored) = register::replay(conn, who, idem)?
            {
                return Ok(ImportReply::Replayed(stored.1));
            }
            for name in counters {
                lock_counter(conn, name)?;
            }
            let report = apply(conn, issuer, who, kind, slots, savepoints)?;
            let stored = match idem {
                Some(idem) => {
                    let body = serde_json::to_string(&report).expect("a report is JSON");
                    register::remember(conn, who, idem, 200, &body)?;
                    Some(body)
                }
                None => None,
            };
            Ok(ImportReply::Applied(report, stored))
        })
    };
    match run(false) {
        Err(RunError::ItemRefused) => run(true),
        other => other,
    }
    .map_err(|e| match e {
        RunError::Failed(e) => e,
        RunError::ItemRefused => NodeError::Store(StoreError::Corrupt(
            "an import item was refused in a run with savepoints as if it had none".into(),
        )),
    })
}

/// The key digests of the items still to import.
fn ready_digests(slots: &[Slot]) -> Vec<&str> {
    slots
        .iter()
        .filter_map(|s| match s {
            Slot::Ready(r) => Some(r.item.key_sha256.as_str()),
            Slot::Refused(_) => None,
        })
        .collect()
}

/// One run of the request inside its transaction: a query for the keys already imported, one
/// for the records they name, one for the holders of the request's historical numbers, each
/// new item registered, and one insert of the new keys (per [`KEY_ROWS_PER_INSERT`]).
fn apply(
    conn: &mut DbConn,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    slots: &[Slot],
    savepoints: bool,
) -> Result<ImportReport, RunError> {
    let digests = ready_digests(slots);
    // Asked again inside the transaction: a concurrent import may have committed since.
    let stored: HashMap<String, (String, String)> = if digests.is_empty() {
        HashMap::new()
    } else {
        import_keys::table
            .filter(import_keys::kind.eq(kind.as_str()))
            .filter(import_keys::key_sha256.eq_any(&digests))
            .select((
                import_keys::key_sha256,
                import_keys::record_id,
                import_keys::item_sha256,
            ))
            .load::<(String, String, String)>(conn)?
            .into_iter()
            .map(|(digest, id, item)| (digest, (id, item)))
            .collect()
    };
    let held_ids: Vec<&str> = stored.values().map(|(id, _)| id.as_str()).collect();
    let held: HashMap<String, RecordRow> = register::load_rows(conn, kind, &held_ids)?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let numbers: Vec<&str> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Ready(r) if !stored.contains_key(&r.item.key_sha256) => {
                r.number.as_ref().map(|(_, text)| text.as_str())
            }
            _ => None,
        })
        .collect();
    let holders: HashMap<String, String> = if numbers.is_empty() {
        HashMap::new()
    } else {
        records::table
            .filter(records::registration_no.eq_any(&numbers))
            .select((records::registration_no, records::id))
            .load::<(Option<String>, String)>(conn)?
            .into_iter()
            .filter_map(|(number, id)| Some((number?, id)))
            .collect()
    };

    // Keys and numbers taken by earlier items of this request: the position of the item that
    // took them.
    let mut keys_now: HashMap<&str, usize> = HashMap::new();
    let mut numbers_now: HashMap<&str, usize> = HashMap::new();
    let mut planned: Vec<Planned> = Vec::with_capacity(slots.len());
    for slot in slots {
        let next = match slot {
            Slot::Refused(refused) => Planned::Done(ItemOutcome::Refused(refused.clone())),
            Slot::Ready(ready) => {
                let item = &ready.item;
                if let Some((id, item_sha256)) = stored.get(&item.key_sha256) {
                    let changed = *item_sha256 != item.item_sha256;
                    Planned::Done(match held.get(id) {
                        Some(row) if who.may_access(&row.owner_uscc) => {
                            imported(item, row.clone().into(), true, changed)
                        }
                        // A submitter learns nothing of another institution's record, not even
                        // its id.
                        _ => ItemOutcome::Refused(
                            Refusal::one(
                                409,
                                item.pointer("source_key"),
                                "this source_key was already imported at this node, for a record \
                                 of another institution; ask the node's administrator",
                            )
                            .into_item(item.index, Some(item.source_key.clone())),
                        ),
                    })
                } else if let Some(&first) = keys_now.get(item.key_sha256.as_str()) {
                    // The second use of a key in one request is a duplicate of the first.
                    Planned::SameKeyAs { item, first }
                } else if !ready.checked {
                    return Err(RunError::Failed(NodeError::Store(StoreError::Corrupt(
                        format!(
                            "import key {} of {kind} was seen before the transaction and is gone \
                             in it",
                            item.key_sha256
                        ),
                    ))));
                } else if let Some((_, text)) = &ready.number
                    && let Some(holder) = holders.get(text)
                {
                    Planned::Done(number_taken(item, text, holder))
                } else if let Some((_, text)) = &ready.number
                    && let Some(&first) = numbers_now.get(text.as_str())
                {
                    Planned::SameNumberAs { item, text, first }
                } else if !savepoints {
                    keys_now.insert(&item.key_sha256, planned.len());
                    if let Some((_, text)) = &ready.number {
                        numbers_now.insert(text, planned.len());
                    }
                    Planned::Register(ready)
                } else {
                    let result = conn.transaction::<_, ItemError, _>(|conn| {
                        register_one(conn, issuer, who, kind, ready)
                    });
                    match result {
                        Ok(held) => {
                            keys_now.insert(&item.key_sha256, planned.len());
                            if let Some((_, text)) = &ready.number {
                                numbers_now.insert(text, planned.len());
                            }
                            Planned::Registered(imported(item, held, false, false))
                        }
                        Err(ItemError::Refused(r)) => Planned::Done(ItemOutcome::Refused(
                            r.into_item(item.index, Some(item.source_key.clone())),
                        )),
                        Err(ItemError::Failed(e)) => return Err(RunError::Failed(e)),
                    }
                }
            }
        };
        planned.push(next);
    }

    // Without savepoints, the new items are registered together: a few statements for the
    // request instead of several per item (each a round trip, which on PostgreSQL had made an
    // import a sixth as fast as a batch submit of the same records). A refusal sends the
    // request to the run with savepoints, which registers one item at a time.
    let to_register: Vec<(usize, &Ready)> = planned
        .iter()
        .enumerate()
        .filter_map(|(at, p)| match p {
            Planned::Register(ready) => Some((at, *ready)),
            _ => None,
        })
        .collect();
    for ((at, ready), held) in
        to_register
            .iter()
            .zip(register_many(conn, issuer, who, kind, &to_register)?)
    {
        planned[*at] = Planned::Registered(imported(&ready.item, held, false, false));
    }

    let mut report = ImportReport {
        items: Vec::with_capacity(slots.len()),
        ..ImportReport::default()
    };
    let mut new_keys: Vec<(&Item, String)> = Vec::new();
    for at in 0..planned.len() {
        let outcome = match &planned[at] {
            Planned::Done(outcome) => outcome.clone(),
            Planned::Registered(outcome) => {
                let (ItemOutcome::Imported(i), Slot::Ready(ready)) = (outcome, &slots[at]) else {
                    unreachable!("a registered item is imported from a ready slot");
                };
                new_keys.push((&ready.item, i.id.clone()));
                outcome.clone()
            }
            Planned::SameKeyAs { item, first } => {
                let (Planned::Registered(ItemOutcome::Imported(earlier)), Slot::Ready(first_ready)) =
                    (&planned[*first], &slots[*first])
                else {
                    unreachable!("keys_now names registered items only");
                };
                let held = Held {
                    id: earlier.id.clone(),
                    version: earlier.version,
                    state: earlier.state.clone(),
                    registration_no: earlier.registration_no.clone(),
                    published_version: earlier.published_version,
                };
                let changed = first_ready.item.item_sha256 != item.item_sha256;
                imported(item, held, true, changed)
            }
            Planned::SameNumberAs { item, text, first } => {
                let Planned::Registered(ItemOutcome::Imported(earlier)) = &planned[*first] else {
                    unreachable!("numbers_now names registered items only");
                };
                number_taken(item, text, &earlier.id)
            }
            Planned::Register(_) => unreachable!("every item to register was registered"),
        };
        match &outcome {
            ItemOutcome::Refused(_) => report.refused += 1,
            ItemOutcome::Imported(i) if i.duplicate => report.duplicates += 1,
            ItemOutcome::Imported(i) => {
                report.accepted += 1;
                if i.state == register::state::APPROVED {
                    report.approved += 1;
                }
            }
        }
        report.items.push(outcome);
    }

    // The keys and the records they name commit together; a key a concurrent import took
    // first is a unique violation here, which `Db::write` runs again (and then sees it).
    let (at, by) = (now(), who.audit_name());
    let rows: Vec<_> = new_keys
        .iter()
        .map(|(item, id)| {
            (
                import_keys::kind.eq(kind.as_str()),
                import_keys::key_sha256.eq(&item.key_sha256),
                import_keys::source_key.eq(&item.source_key),
                import_keys::record_id.eq(id),
                import_keys::item_sha256.eq(&item.item_sha256),
                import_keys::imported_by.eq(&by),
                import_keys::imported_at.eq(&at),
            )
        })
        .collect();
    for chunk in rows.chunks(KEY_ROWS_PER_INSERT) {
        rix_runtime::batch_insert!(conn, diesel::insert_into(import_keys::table).values(chunk))?;
    }
    Ok(report)
}

/// What becomes of one item of a run, decided in request order.
enum Planned<'a> {
    /// Answered: refused, or a key imported by an earlier request.
    Done(ItemOutcome),
    /// To be registered with the others after every item is decided (a run without savepoints).
    Register(&'a Ready),
    /// Registered by this run.
    Registered(ItemOutcome),
    /// The second use of a key in this request: a duplicate of the item at `first`.
    SameKeyAs { item: &'a Item, first: usize },
    /// A historical number the item at `first` of this request registered.
    SameNumberAs {
        item: &'a Item,
        text: &'a str,
        first: usize,
    },
}

/// The refusal of an item whose historical number `holder` already has.
fn number_taken(item: &Item, text: &str, holder: &str) -> ItemOutcome {
    ItemOutcome::Refused(
        Refusal::one(
            409,
            item.pointer("registration_no"),
            format!("{text} is already used at this node, by {holder}; a number names one record"),
        )
        .into_item(item.index, Some(item.source_key.clone())),
    )
}

/// The record as an import outcome: from its row (a duplicate, which needs nothing else) or
/// from the view registration and approval return.
struct Held {
    id: String,
    version: i64,
    state: String,
    registration_no: Option<String>,
    published_version: Option<i64>,
}

impl From<RecordView> for Held {
    fn from(v: RecordView) -> Held {
        Held {
            id: v.id,
            version: v.version,
            state: v.state,
            registration_no: v.registration_no,
            published_version: v.published_version,
        }
    }
}

impl From<RecordRow> for Held {
    fn from(r: RecordRow) -> Held {
        Held {
            id: r.id,
            version: r.version,
            state: r.state,
            registration_no: r.registration_no,
            published_version: r.published_version,
        }
    }
}

fn imported(item: &Item, held: Held, duplicate: bool, changed: bool) -> ItemOutcome {
    ItemOutcome::Imported(ImportedItem {
        index: item.index,
        source_key: item.source_key.clone(),
        id: held.id,
        version: held.version,
        state: held.state,
        registration_no: held.registration_no,
        published_version: held.published_version,
        duplicate,
        changed,
    })
}

/// Registers a new item: its record and — with a historical number or `approve` — its
/// approval, all or nothing within the caller's run. Its key is inserted with the others
/// after the last item ([`apply`]); its number's holder was looked up before the first.
fn register_one(
    conn: &mut DbConn,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    ready: &Ready,
) -> Result<Held, ItemError> {
    let item = &ready.item;
    let index = item.index;
    // A historical number (and the 登记日期 the record gives, if any) goes on the row as it
    // is inserted, where approval keeps what it finds; the counter moves past it.
    let (number, date) = historical(ready);
    let (row, version) =
        register::insert_new_many(conn, kind, &[(&item.record, number, date)], who)
            .map_err(|e| item_error(index, e))?
            .pop()
            .expect("one row per document");
    if let Some((number, _)) = &ready.number {
        review::reserve_registration_no(conn, number).map_err(|e| item_error(index, e))?;
    }
    if ready.number.is_none() && !item.approve {
        return Ok(row.into());
    }
    // Approved as review approves, from the rows just written instead of read back.
    review::approve_loaded(conn, issuer, who, kind, row, version, item.record.clone())
        .map(Held::from)
        .map_err(|e| item_error(index, e))
}

/// Registers the new items of a run without savepoints, in request order, as [`register_one`]
/// does one: their records inserted together; their historical numbers reserved (before any
/// approval of this request takes a number, so none can collide with them); then those with a
/// historical number or `approve` approved together. A refusal of any item is
/// [`RunError::ItemRefused`]: the request runs again with a savepoint per item.
fn register_many(
    conn: &mut DbConn,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    items: &[(usize, &Ready)],
) -> Result<Vec<Held>, RunError> {
    let refused = |index: usize, e: NodeError| match item_error(index, e) {
        ItemError::Refused(_) => RunError::ItemRefused,
        ItemError::Failed(e) => RunError::Failed(e),
    };
    let docs: Vec<_> = items
        .iter()
        .map(|(_, ready)| {
            let (number, date) = historical(ready);
            (&ready.item.record, number, date)
        })
        .collect();
    let rows = register::insert_new_many(conn, kind, &docs, who).map_err(|e| match e {
        NodeError::Store(_) => RunError::Failed(e),
        _ => RunError::ItemRefused,
    })?;
    for (_, ready) in items {
        if let Some((number, _)) = &ready.number {
            review::reserve_registration_no(conn, number)
                .map_err(|e| refused(ready.item.index, e))?;
        }
    }
    // What the answer needs of a record is on its row: a record waiting for review is not
    // turned into a view (its document parsed again) only to be cut down to that.
    let mut held: Vec<Option<Held>> = Vec::with_capacity(items.len());
    let mut approving = Vec::new();
    let mut approving_at = Vec::new();
    for ((_, ready), (row, version)) in items.iter().zip(rows) {
        if ready.number.is_none() && !ready.item.approve {
            held.push(Some(row.into()));
        } else {
            approving_at.push((held.len(), ready.item.index));
            held.push(None);
            approving.push(review::Submitted {
                row,
                version,
                doc: ready.item.record.clone(),
            });
        }
    }
    if !approving.is_empty() {
        let approved =
            review::approve_submitted(conn, issuer, who, kind, approving).map_err(|(at, e)| {
                match at {
                    Some(at) => refused(approving_at[at].1, e),
                    None => RunError::Failed(e),
                }
            })?;
        for ((at, _), view) in approving_at.into_iter().zip(approved) {
            held[at] = Some(view.into());
        }
    }
    Ok(held
        .into_iter()
        .map(|v| v.expect("every item registered"))
        .collect())
}

/// A historical number and the 登记日期 the record gives, if any, as the row keeps them.
fn historical(ready: &Ready) -> (Option<String>, Option<String>) {
    match &ready.number {
        Some((_, text)) => (
            Some(text.clone()),
            ready
                .item
                .record
                .get("registration_date")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use rix_schema::canonical::canonical_value;
    use serde_json::json;

    use super::*;

    fn ready(index: usize, key: &str, record: Value) -> Slot {
        let mut buf = Vec::new();
        Slot::Ready(Box::new(Ready {
            item: Item {
                index,
                source_key: key.to_owned(),
                key_sha256: sha256_hex(key.as_bytes()),
                item_sha256: item_digest(&record, None, &mut buf),
                record,
                registration_no: None,
                approve: true,
            },
            number: None,
            checked: true,
        }))
    }

    // No request through the API reaches this today — every refusal is found before the
    // transaction — so the test hands `commit` an item whose approval fails after its record
    // was inserted (a level approval cannot read), as a refusal found late would.
    #[test]
    fn an_item_refused_after_writing_costs_only_itself_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        an_item_refused_after_writing_costs_only_itself(
            dir.path().join("node.db").to_str().unwrap(),
        );
    }

    #[test]
    fn an_item_refused_after_writing_costs_only_itself_on_postgres() {
        an_item_refused_after_writing_costs_only_itself(
            &rix_test_support::fresh_postgres_database(),
        );
    }

    fn an_item_refused_after_writing_costs_only_itself(url: &str) {
        let db = Db::open(url, 2).unwrap();
        let issuer = Issuer::Region("530000".into());
        let who = Principal {
            id: "0123456789abcdef".into(),
            name: "admin".into(),
            role: Role::Admin,
            institution: None,
        };
        let good = rix_test_support::fixtures::fixture("achievement");
        let mut unreadable = good.clone();
        unreadable["secrecy"] = json!({"level": "绝对保密"});
        let slots = vec![
            ready(0, "row#1", good.clone()),
            ready(1, "row#2", unreadable),
            ready(2, "row#3", good),
        ];
        let counters: BTreeSet<String> = ['J', 'R', 'Y']
            .into_iter()
            .map(|flag| review::serial_counter(&issuer, review::this_year(), flag))
            .collect();
        let names: Vec<&str> = counters.iter().map(String::as_str).collect();
        db.ensure_counters(&names).unwrap();

        let ImportReply::Applied(report, None) = commit(
            &db,
            &issuer,
            &who,
            RecordKind::Achievement,
            &slots,
            &counters,
            None,
        )
        .unwrap() else {
            panic!("no key, nothing stored")
        };
        assert_eq!(
            (report.accepted, report.approved, report.refused),
            (2, 2, 1)
        );
        let ItemOutcome::Refused(refused) = &report.items[1] else {
            panic!("{:?}", report.items[1])
        };
        assert_eq!(refused.errors[0].pointer, "/items/1/record/secrecy/level");
        let ids: Vec<&str> = report
            .items
            .iter()
            .filter_map(|i| match i {
                ItemOutcome::Imported(i) => Some(i.id.as_str()),
                ItemOutcome::Refused(_) => None,
            })
            .collect();
        let conn = &mut *db.conn().unwrap();
        let held: Vec<String> = records::table
            .select(records::id)
            .order(records::id)
            .load(conn)
            .unwrap();
        assert_eq!(
            held, ids,
            "the refused item's record was rolled back, the others kept"
        );
        let keys: i64 = import_keys::table.count().get_result(conn).unwrap();
        assert_eq!(keys, 2);
    }

    #[test]
    fn an_items_digest_is_that_of_its_canonical_wrapper() {
        let record =
            json!({"title": "成果", "keywords": ["a", "b"], "trl": 7, "z": {"b": 1, "a": null}});
        let mut buf = Vec::new();
        for number in [None, Some("5300002019Y0042")] {
            let wrapper = json!({"record": record, "registration_no": number});
            assert_eq!(
                item_digest(&record, number, &mut buf),
                sha256_hex(&canonical_value(&wrapper)),
            );
        }
    }
}
