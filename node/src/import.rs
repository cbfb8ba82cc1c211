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
//! - **One transaction per request**, each item in its own savepoint: an item refused half way
//!   (after its record was inserted) leaves nothing behind, the others commit. A conflict with
//!   a concurrent writer (the same key or number imported at the same moment) aborts the
//!   whole transaction, which `Db::write` runs again: the second run sees the first's rows.
//! - **The same rules and the same approval as online registration.** Records are checked by
//!   `register::check_document` and inserted by `register::insert_new`; approval — a
//!   historical number kept, or one assigned for `approve: true` — is `review::approve_in`,
//!   which writes the log entry unless the record is classified `secret` or above. The import
//!   has no second way to approve, number or publish.
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

use std::collections::{BTreeSet, HashSet};

use diesel::prelude::*;
use rix_runtime::clock::now;
use rix_schema::canonical::{canonical_value, sha256_hex};
use rix_schema::codes::{Issuer, RegistrationNumber};
use rix_schema::record::Category;
use rix_schema::validate::{FieldErrors, MAX_ERRORS, check_text};
use rix_schema::{FieldError, RecordKind};
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::config::Role;
use crate::db::schema::{import_keys, records};
use crate::db::{Db, DbConn, StoreError, lock_counter};
use crate::error::{NodeError, ProblemField};
use crate::register::{self, RecordRow, RecordView};
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

/// An item's failure inside its savepoint: refused (the savepoint rolls back, the others go
/// on), or a failure of the whole request (storage, or a conflict `Db::write` retries).
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
/// import is refused whole; an item of the wrong shape is refused on its own.
fn parse(body: &Value) -> Result<Vec<Result<Item, RefusedItem>>, NodeError> {
    let invalid = |pointer: &str, message: &str| {
        NodeError::Invalid(vec![FieldError::new(pointer, message)].into())
    };
    let Value::Object(top) = body else {
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
    let items = top
        .get("items")
        .and_then(Value::as_array)
        .filter(|a| (1..=MAX_ITEMS).contains(&a.len()))
        .ok_or_else(|| {
            invalid(
                "/items",
                "must be an array of 1–1000 items; split a larger import into several requests",
            )
        })?;
    Ok(items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_item(index, item))
        .collect())
}

fn parse_item(index: usize, item: &Value) -> Result<Item, RefusedItem> {
    let base = format!("/items/{index}");
    let mut errors = FieldErrors::from(Vec::new());
    let Value::Object(members) = item else {
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
    let source_key = match members.get("source_key") {
        Some(Value::String(key)) => {
            let chars = key.chars().count();
            let problem = if chars == 0 || chars > MAX_SOURCE_KEY_CHARS {
                Some(format!(
                    "must be 1–{MAX_SOURCE_KEY_CHARS} characters (it has {chars})"
                ))
            } else {
                check_text(key, false).err()
            };
            match problem {
                Some(message) => {
                    errors.push(
                        FieldError::new(format!("{base}/source_key"), message),
                        MAX_ERRORS,
                    );
                    None
                }
                None => Some(key.clone()),
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
    let record = match members.get("record") {
        Some(record @ Value::Object(_)) => Some(record.clone()),
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
    let registration_no = match members.get("registration_no") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.clone()),
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
            let item_sha256 = sha256_hex(&canonical_value(
                &json!({"record": record, "registration_no": registration_no}),
            ));
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
    number: Option<RegistrationNumber>,
    checked: bool,
}

enum Slot {
    Refused(RefusedItem),
    Ready(Box<Ready>),
}

/// Imports the items of `body` into `kind`: see the module doc for what happens to each.
pub fn import(
    db: &Db,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    body: &Value,
) -> Result<ImportReport, NodeError> {
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
    let digests: Vec<&str> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Ready(r) => Some(r.item.key_sha256.as_str()),
            Slot::Refused(_) => None,
        })
        .collect();
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
                ready.number = number;
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
            Some(n) => {
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

    db.write(|conn| {
        for name in &counters {
            lock_counter(conn, name)?;
        }
        let mut report = ImportReport {
            items: Vec::with_capacity(slots.len()),
            ..ImportReport::default()
        };
        for slot in &slots {
            let outcome = match slot {
                Slot::Refused(refused) => ItemOutcome::Refused(refused.clone()),
                Slot::Ready(ready) => import_one(conn, issuer, who, kind, ready)?,
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
        Ok(report)
    })
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

/// One item inside the request's transaction: the record its key names, or a new record (in
/// a savepoint of its own).
fn import_one(
    conn: &mut DbConn,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    ready: &Ready,
) -> Result<ItemOutcome, NodeError> {
    let item = &ready.item;
    let stored: Option<(String, String)> = import_keys::table
        .find((kind.as_str(), &item.key_sha256))
        .select((import_keys::record_id, import_keys::item_sha256))
        .first(conn)
        .optional()?;
    if let Some((id, item_sha256)) = stored {
        return Ok(match register::load_row(conn, who, kind, &id) {
            Ok(row) => imported(item, row.into(), true, item_sha256 != item.item_sha256),
            // A submitter learns nothing of another institution's record, not even its id.
            Err(NodeError::NotFound { .. }) => ItemOutcome::Refused(
                Refusal::one(
                    409,
                    item.pointer("source_key"),
                    "this source_key was already imported at this node, for a record of another \
                     institution; ask the node's administrator",
                )
                .into_item(item.index, Some(item.source_key.clone())),
            ),
            Err(e) => return Err(e),
        });
    }
    if !ready.checked {
        return Err(NodeError::Store(StoreError::Corrupt(format!(
            "import key {} of {kind} was seen before the transaction and is gone in it",
            item.key_sha256
        ))));
    }
    let result =
        conn.transaction::<_, ItemError, _>(|conn| register_one(conn, issuer, who, kind, ready));
    match result {
        Ok(view) => Ok(imported(item, view.into(), false, false)),
        Err(ItemError::Refused(r)) => Ok(ItemOutcome::Refused(
            r.into_item(item.index, Some(item.source_key.clone())),
        )),
        Err(ItemError::Failed(e)) => Err(e),
    }
}

/// Registers a new item: its record, its key, and — with a historical number or `approve` —
/// its approval, all or nothing.
fn register_one(
    conn: &mut DbConn,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    ready: &Ready,
) -> Result<RecordView, ItemError> {
    let item = &ready.item;
    let index = item.index;
    let number = ready.number.as_ref().map(|n| (n, n.format()));
    if let Some((_, text)) = &number {
        let holder: Option<String> = records::table
            .filter(records::registration_no.eq(text))
            .select(records::id)
            .first(conn)
            .optional()?;
        if let Some(holder) = holder {
            return Err(ItemError::Refused(Refusal::one(
                409,
                item.pointer("registration_no"),
                format!(
                    "{text} is already used at this node, by {holder}; a number names one record"
                ),
            )));
        }
    }
    let view =
        register::insert_new(conn, kind, &item.record, who).map_err(|e| item_error(index, e))?;
    diesel::insert_into(import_keys::table)
        .values((
            import_keys::kind.eq(kind.as_str()),
            import_keys::key_sha256.eq(&item.key_sha256),
            import_keys::source_key.eq(&item.source_key),
            import_keys::record_id.eq(&view.id),
            import_keys::item_sha256.eq(&item.item_sha256),
            import_keys::imported_by.eq(who.audit_name()),
            import_keys::imported_at.eq(now()),
        ))
        .execute(conn)?;
    let approve = match &number {
        Some((number, text)) => {
            // The number (and the 登记日期 the record gives, if any) goes on the row, where
            // approval keeps what it finds; the counter moves past it.
            let date = item
                .record
                .get("registration_date")
                .and_then(Value::as_str)
                .map(str::to_owned);
            diesel::update(records::table.find((kind.as_str(), &view.id)))
                .set((
                    records::registration_no.eq(text),
                    records::registration_date.eq(date),
                ))
                .execute(conn)?;
            review::reserve_registration_no(conn, number).map_err(|e| item_error(index, e))?;
            true
        }
        None => item.approve,
    };
    if !approve {
        return Ok(view);
    }
    review::approve_in(conn, issuer, who, kind, &view.id, Some(view.version))
        .map_err(|e| item_error(index, e))
}
