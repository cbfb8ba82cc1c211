//! Stage 1 of a record's journey: registration (科技成果在线登记).
//!
//! Submit, revise, withdraw, read and list, each one database transaction: a refused request
//! writes nothing. Every version is kept ([`crate::db::schema::record_versions`]); the
//! `records` row says which version is latest, in what state, and which version stands in the
//! node's feed. Review is the next stage ([`crate::review`]); withdrawing a published record is
//! the one registration action that writes to the log directly, since a withdrawal needs no
//! review to take a record out of circulation.
//!
//! What it may not touch: review decisions, seqs and HTTP. It never approves a version or issues a
//! registration number ([`crate::review`]); its one write to the log goes through
//! [`crate::outbox::enqueue`]; it answers with [`NodeError`], which the API renders.

use diesel::prelude::*;
use rix_runtime::clock::now;
use rix_schema::batch::Op;
use rix_schema::validate::{self, FieldErrors, MAX_ERRORS, validate_record_bounded};
use rix_schema::{FieldError, RecordKind, SecrecyLevel};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Principal;
use crate::db::schema::{idempotency, record_versions, records};
use crate::db::{Db, DbConn, take_counters};
use crate::error::NodeError;
use crate::outbox;

/// Review state of a record version.
pub mod state {
    /// Waiting for review.
    pub const SUBMITTED: &str = "submitted";
    /// Approved; published unless classified.
    pub const APPROVED: &str = "approved";
    /// Rejected with a reason; may be revised.
    pub const REJECTED: &str = "rejected";
    /// A pending or approved version that a later one replaced.
    pub const SUPERSEDED: &str = "superseded";
    /// The record was withdrawn.
    pub const WITHDRAWN: &str = "withdrawn";
}

/// A `records` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = records)]
#[diesel(treat_none_as_null = true)]
pub struct RecordRow {
    /// Kind (`achievement`, `funded_project`).
    pub kind: String,
    /// Node-local id.
    pub id: String,
    /// Listing order.
    pub serial: i64,
    /// Owning institution's USCC.
    pub owner_uscc: String,
    /// Latest version.
    pub version: i64,
    /// State of the latest version.
    pub state: String,
    /// Version standing in the feed.
    pub published_version: Option<i64>,
    /// 批准登记号, once approved.
    pub registration_no: Option<String>,
    /// 登记日期, once approved.
    pub registration_date: Option<String>,
    /// Title of the latest version.
    pub title: String,
    /// Secrecy level of the latest version.
    pub secrecy: String,
    /// First submission.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// A `record_versions` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = record_versions)]
pub struct VersionRow {
    /// Kind.
    pub kind: String,
    /// Id.
    pub id: String,
    /// Version.
    pub version: i64,
    /// Review state.
    pub state: String,
    /// The record as submitted (and, once approved, with its registration number).
    pub document: Option<String>,
    /// Who submitted it.
    pub submitted_by: String,
    /// When.
    pub submitted_at: String,
    /// Who reviewed it.
    pub reviewed_by: Option<String>,
    /// When.
    pub reviewed_at: Option<String>,
    /// Rejection reason.
    pub reason: Option<String>,
}

impl VersionRow {
    /// Version `version` of `kind` `id`, `doc` as `who` submitted it for review at `at`.
    fn submitted(
        kind: &str,
        id: String,
        version: i64,
        doc: &Value,
        who: &Principal,
        at: &str,
    ) -> VersionRow {
        VersionRow {
            kind: kind.to_owned(),
            id,
            version,
            state: state::SUBMITTED.to_owned(),
            document: Some(doc.to_string()),
            submitted_by: who.audit_name(),
            submitted_at: at.to_owned(),
            reviewed_by: None,
            reviewed_at: None,
            reason: None,
        }
    }
}

/// What the API returns for one record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordView {
    /// Kind.
    pub kind: String,
    /// Node-local id; the global id is `{node_id}/{id}`.
    pub id: String,
    /// Latest version; send it back in `If-Match` to revise.
    pub version: i64,
    /// State of the latest version.
    pub state: String,
    /// The version that stands in the node's feed, if any.
    pub published_version: Option<i64>,
    /// 批准登记号.
    pub registration_no: Option<String>,
    /// 登记日期.
    pub registration_date: Option<String>,
    /// Owning institution.
    pub owner: String,
    /// Secrecy level of the latest version.
    pub secrecy: String,
    /// First submission.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Reviewer, time and reason of the latest version's review.
    pub review: Option<ReviewView>,
    /// The latest version's record (`null` once withdrawn).
    #[schema(value_type = Object)]
    pub record: Option<Value>,
}

/// A review outcome.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewView {
    /// Reviewer.
    pub reviewed_by: String,
    /// When.
    pub reviewed_at: String,
    /// Rejection reason.
    pub reason: Option<String>,
}

/// One line of a listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordSummary {
    /// Id.
    pub id: String,
    /// Latest version.
    pub version: i64,
    /// Its state.
    pub state: String,
    /// Title.
    pub title: String,
    /// Secrecy level.
    pub secrecy: String,
    /// 批准登记号.
    pub registration_no: Option<String>,
    /// Version in the feed.
    pub published_version: Option<i64>,
    /// Last change.
    pub updated_at: String,
}

/// A page of a listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordPage {
    /// The records, oldest first.
    pub items: Vec<RecordSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Listing filters.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only records whose latest version is in this state.
    pub state: Option<String>,
    /// Continue after this cursor.
    pub after: Option<i64>,
    /// Page size (1–1000).
    pub limit: i64,
}

/// A retried request's key and the digest of its body.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The client's `Idempotency-Key`.
    pub key: String,
    /// SHA-256 of method, path and body: the same key with another request is refused.
    pub request_hash: String,
}

/// A stored or fresh response: status and JSON body.
pub type Reply = (u16, Value);

fn id_prefix(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Achievement => "ach",
        RecordKind::FundedProject => "prj",
    }
}

/// The record's institutions' USCCs, main institution first.
fn institution_usccs(kind: RecordKind, doc: &Value) -> Vec<&str> {
    fn uscc(v: &Value) -> Option<&str> {
        v.get("uscc").and_then(Value::as_str)
    }
    match kind {
        RecordKind::Achievement => doc
            .get("institutions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(uscc).collect())
            .unwrap_or_default(),
        RecordKind::FundedProject => {
            let mut all: Vec<&str> = doc.get("lead").and_then(uscc).into_iter().collect();
            if let Some(parts) = doc.get("participants").and_then(Value::as_array) {
                all.extend(parts.iter().filter_map(uscc));
            }
            all
        }
    }
}

/// Checks a submitted document: the schema and the rules in code (among them the text rule:
/// no control or bidirectional-override characters), then what the node itself assigns and
/// whose record it is. `pointer_base` prefixes pointers (batch submits: `/3`). At most
/// [`MAX_ERRORS`] errors are kept; all are counted. The import ([`crate::import`]) calls it too,
/// so that an imported record meets exactly the rules of a submitted one.
pub(crate) fn check_document(
    kind: RecordKind,
    doc: &Value,
    who: &Principal,
    assigned: Option<(&str, &str)>,
    pointer_base: &str,
) -> Result<(), FieldErrors> {
    let mut errors = match validate_record_bounded(kind, doc, MAX_ERRORS) {
        Ok(()) => FieldErrors::from(Vec::new()),
        Err(e) => e,
    };
    if kind == RecordKind::Achievement {
        for (field, kept) in [
            ("registration_no", assigned.map(|a| a.0)),
            ("registration_date", assigned.map(|a| a.1)),
        ] {
            if let Some(given) = doc.get(field)
                && given.as_str() != kept
            {
                errors.push(
                    FieldError::new(
                        format!("/{field}"),
                        match kept {
                            Some(k) => format!(
                                "is assigned by the node ({k}); send it unchanged or leave it out"
                            ),
                            None => "is assigned by the node on approval; leave it out".to_owned(),
                        },
                    ),
                    MAX_ERRORS,
                );
            }
        }
    }
    if let Some(mine) = who
        .institution
        .as_deref()
        .filter(|_| who.role == crate::config::Role::Submitter)
        && !institution_usccs(kind, doc).contains(&mine)
    {
        let pointer = match kind {
            RecordKind::Achievement => "/institutions",
            RecordKind::FundedProject => "/lead/uscc",
        };
        errors.push(
            FieldError::new(
                pointer,
                format!("your institution ({mine}) must be one of the record's institutions"),
            ),
            MAX_ERRORS,
        );
    }
    if errors.total == 0 {
        Ok(())
    } else {
        for e in &mut errors.errors {
            e.pointer = format!("{pointer_base}{}", e.pointer);
        }
        Err(errors)
    }
}

fn title_and_secrecy(doc: &Value) -> (String, String) {
    let title = doc
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // Validated documents always have a level; were one missing, the row must not look public.
    let level = SecrecyLevel::of_record(doc).unwrap_or(SecrecyLevel::TopSecret);
    (title, level.as_str().to_owned())
}

/// The secrecy level in force for a record: that of its last approved version before
/// `before`, or `None` if no version before it was approved. A stored level that cannot be
/// read counts as top secret, so that nothing is lowered from a level no one can read.
pub fn level_in_force(
    conn: &mut DbConn,
    kind: RecordKind,
    id: &str,
    before: i64,
) -> Result<Option<SecrecyLevel>, NodeError> {
    // Approved versions carry a reviewer and are not rejected; a later approval only turns
    // them superseded.
    let document: Option<Option<String>> = record_versions::table
        .filter(record_versions::kind.eq(kind.as_str()))
        .filter(record_versions::id.eq(id))
        .filter(record_versions::version.lt(before))
        .filter(record_versions::reviewed_at.is_not_null())
        .filter(record_versions::state.ne(state::REJECTED))
        .order(record_versions::version.desc())
        .select(record_versions::document)
        .first(conn)
        .optional()?;
    Ok(document.map(|d| {
        d.as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .and_then(|d| SecrecyLevel::of_record(&d))
            .unwrap_or(SecrecyLevel::TopSecret)
    }))
}

/// Refuses a new version that lowers the record's secrecy without the decision
/// ([`validate::check_level_change`]). At a revision the level to measure against is the
/// highest of the level in force and that of a version still waiting for review: the submitter
/// declared it, and replacing it is lowering it.
fn check_declassification(
    conn: &mut DbConn,
    row: &RecordRow,
    kind: RecordKind,
    doc: &Value,
) -> Result<(), NodeError> {
    let pending = (row.state == state::SUBMITTED)
        .then(|| SecrecyLevel::parse(&row.secrecy).unwrap_or(SecrecyLevel::TopSecret));
    let in_force = level_in_force(conn, kind, &row.id, row.version + 1)?;
    match pending.max(in_force) {
        Some(standing) => {
            validate::check_level_change(standing, doc).map_err(|e| NodeError::Invalid(e.into()))
        }
        None => Ok(()),
    }
}

/// Runs `f` once per idempotency key: a retry with the same key and request gets the stored
/// reply, one with a different request is refused. The key row commits with `f`'s writes.
fn once(
    conn: &mut DbConn,
    who: &Principal,
    idem: Option<&Idempotency>,
    f: impl FnOnce(&mut DbConn) -> Result<Reply, NodeError>,
) -> Result<Reply, NodeError> {
    let Some(idem) = idem else { return f(conn) };
    if let Some((status, body)) = replay(conn, who, idem)? {
        return Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)));
    }
    let (status, body) = f(conn)?;
    remember(conn, who, idem, status, &body.to_string())?;
    Ok((status, body))
}

/// The reply stored for this principal's key (status and body as stored), if the key was
/// used: refused when it was used for a different request.
pub(crate) fn replay(
    conn: &mut DbConn,
    who: &Principal,
    idem: &Idempotency,
) -> Result<Option<(u16, String)>, NodeError> {
    let stored: Option<(String, i32, String)> = idempotency::table
        .filter(idempotency::principal.eq(&who.id))
        .filter(idempotency::key.eq(&idem.key))
        .select((
            idempotency::request_hash,
            idempotency::status,
            idempotency::body,
        ))
        .first(conn)
        .optional()?;
    let Some((hash, status, body)) = stored else {
        return Ok(None);
    };
    if hash != idem.request_hash {
        return Err(NodeError::IdempotencyMismatch);
    }
    Ok(Some((status as u16, body)))
}

/// Stores the reply to this principal's key, inside the transaction of the writes it reports.
/// A concurrent request with the same key makes this a unique violation, which `Db::write`
/// runs again: the second run replays the first's reply.
pub(crate) fn remember(
    conn: &mut DbConn,
    who: &Principal,
    idem: &Idempotency,
    status: u16,
    body: &str,
) -> Result<(), NodeError> {
    diesel::insert_into(idempotency::table)
        .values((
            idempotency::principal.eq(&who.id),
            idempotency::key.eq(&idem.key),
            idempotency::request_hash.eq(&idem.request_hash),
            idempotency::status.eq(status as i32),
            idempotency::body.eq(body),
            idempotency::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes the replies stored under idempotency keys before `cutoff` (an RFC 3339 time, as
/// `created_at` is written), in one statement over the `created_at` index; returns how many. A
/// retry after that gets no stored reply: the request runs again as a new one.
pub fn prune_idempotency(db: &Db, cutoff: &str) -> Result<usize, crate::db::StoreError> {
    db.write(|conn| {
        diesel::delete(idempotency::table.filter(idempotency::created_at.lt(cutoff)))
            .execute(conn)
            .map_err(crate::db::StoreError::from)
    })
}

/// Inserts a new record, version 1, submitted for review (ids from the `id:{kind}` counter).
pub(crate) fn insert_new(
    conn: &mut DbConn,
    kind: RecordKind,
    doc: &Value,
    who: &Principal,
) -> Result<RecordView, NodeError> {
    let (row, version) = insert_new_many(conn, kind, &[(doc, None, None)], who)?
        .pop()
        .expect("one row per document");
    Ok(view_of(row, &version))
}

/// Inserts new records, version 1, submitted for review, in few statements: their serials
/// taken from the `id:{kind}` counter at once (in the order given, gap-free) and each table
/// written by multi-row inserts. A batch submit of 500 had been 1,500 statements, one round
/// trip each: 1,300 records/s into PostgreSQL against 7,000–8,000 into SQLite. Each document
/// comes with the historical registration number and its 登记日期 it keeps, if any (the
/// import's historical records), which approval keeps; the rows are returned as written, so that
/// a caller approving them in the same transaction need not read them back.
pub(crate) fn insert_new_many(
    conn: &mut DbConn,
    kind: RecordKind,
    docs: &[(&Value, Option<String>, Option<String>)],
    who: &Principal,
) -> Result<Vec<(RecordRow, VersionRow)>, NodeError> {
    if docs.is_empty() {
        return Ok(Vec::new());
    }
    let first = take_counters(
        conn,
        &[(&format!("id:{}", kind.as_str()), docs.len() as i64)],
    )?[0];
    let at = now();
    let rows: Vec<(RecordRow, VersionRow)> = docs
        .iter()
        .zip(first..)
        .map(|((doc, registration_no, registration_date), serial)| {
            let id = format!("{}-{serial:06}", id_prefix(kind));
            let owner = match (&who.institution, who.role) {
                (Some(mine), crate::config::Role::Submitter) => mine.clone(),
                _ => institution_usccs(kind, doc)
                    .first()
                    .map(|s| (*s).to_owned())
                    .unwrap_or_default(),
            };
            let (title, secrecy) = title_and_secrecy(doc);
            let row = RecordRow {
                kind: kind.as_str().to_owned(),
                id: id.clone(),
                serial,
                owner_uscc: owner,
                version: 1,
                state: state::SUBMITTED.to_owned(),
                published_version: None,
                registration_no: registration_no.clone(),
                registration_date: registration_date.clone(),
                title,
                secrecy,
                created_at: at.clone(),
                updated_at: at.clone(),
            };
            let version = VersionRow::submitted(&row.kind, id, 1, doc, who, &at);
            (row, version)
        })
        .collect();
    // 100 rows of 13 columns stay well under SQLite's limit of bound values.
    for chunk in rows.chunks(100) {
        let records: Vec<&RecordRow> = chunk.iter().map(|(r, _)| r).collect();
        let versions: Vec<&VersionRow> = chunk.iter().map(|(_, v)| v).collect();
        rix_runtime::batch_insert!(conn, diesel::insert_into(records::table).values(records))?;
        rix_runtime::batch_insert!(
            conn,
            diesel::insert_into(record_versions::table).values(versions)
        )?;
    }
    Ok(rows)
}

/// Registers a new record (version 1, submitted for review).
pub fn submit(
    db: &Db,
    who: &Principal,
    kind: RecordKind,
    doc: &Value,
    idem: Option<&Idempotency>,
) -> Result<Reply, NodeError> {
    who.require_submitter()?;
    check_document(kind, doc, who, None, "").map_err(NodeError::Invalid)?;
    db.write(|conn| {
        once(conn, who, idem, |conn| {
            let view = insert_new(conn, kind, doc, who)?;
            Ok((201, serde_json::to_value(view).expect("view is JSON")))
        })
    })
}

/// Registers many records at once: all of them, or none if any is refused (pointers say which:
/// `/3/title` is the title of the fourth record).
pub fn submit_many(
    db: &Db,
    who: &Principal,
    kind: RecordKind,
    docs: &[Value],
    idem: Option<&Idempotency>,
) -> Result<Reply, NodeError> {
    who.require_submitter()?;
    if docs.is_empty() || docs.len() > 10_000 {
        return Err(NodeError::Invalid(
            vec![FieldError::new("", "a batch submit holds 1–10000 records")].into(),
        ));
    }
    // Every record is checked (the count is exact), but only the first MAX_ERRORS errors are
    // kept: ten thousand bad records must not cost a million messages.
    let mut errors = FieldErrors::from(Vec::new());
    for (i, doc) in docs.iter().enumerate() {
        if let Err(e) = check_document(kind, doc, who, None, &format!("/{i}")) {
            errors.append(e, MAX_ERRORS);
        }
    }
    if errors.total > 0 {
        return Err(NodeError::Invalid(errors));
    }
    let docs: Vec<_> = docs.iter().map(|doc| (doc, None, None)).collect();
    db.write(|conn| {
        once(conn, who, idem, |conn| {
            let items: Vec<Value> = insert_new_many(conn, kind, &docs, who)?
                .into_iter()
                .map(|(row, _)| {
                    serde_json::json!({ "id": row.id, "version": row.version, "state": row.state })
                })
                .collect();
            Ok((201, serde_json::json!({ "items": items })))
        })
    })
}

/// Loads a record row, refusing what this principal may not see as not found (a submitter
/// learns nothing about other institutions' records).
pub fn load_row(
    conn: &mut DbConn,
    who: &Principal,
    kind: RecordKind,
    id: &str,
) -> Result<RecordRow, NodeError> {
    let row: Option<RecordRow> = records::table
        .find((kind.as_str(), id))
        .select(RecordRow::as_select())
        .first(conn)
        .optional()?;
    visible(row, who, kind, id)
}

/// As [`load_row`], for a change: on PostgreSQL the row stays locked until the transaction
/// ends, so a concurrent approval, revision, rejection or withdrawal of the same record waits for
/// this one and then reads what it wrote. Read unlocked, a withdrawal racing an approval had
/// kept the row as it was before the approval — nothing published — so it wrote no withdraw
/// entry, and the version the approval had just published stayed in the national catalogue of a
/// record the node calls withdrawn. SQLite's writers take turns already.
pub fn lock_row(
    conn: &mut DbConn,
    who: &Principal,
    kind: RecordKind,
    id: &str,
) -> Result<RecordRow, NodeError> {
    // The same query for each backend (a selection is typed by its backend).
    macro_rules! one {
        () => {
            records::table
                .find((kind.as_str(), id))
                .select(RecordRow::as_select())
        };
    }
    let row: Option<RecordRow> = match conn {
        DbConn::Postgresql(pg) => one!().for_update().first(pg).optional()?,
        DbConn::Sqlite(sqlite) => one!().first(sqlite).optional()?,
    };
    visible(row, who, kind, id)
}

/// The row if this principal may see it; otherwise, as if there were none, not found.
fn visible(
    row: Option<RecordRow>,
    who: &Principal,
    kind: RecordKind,
    id: &str,
) -> Result<RecordRow, NodeError> {
    match row {
        Some(r) if who.may_access(&r.owner_uscc) => Ok(r),
        _ => Err(NodeError::NotFound {
            kind: kind.as_str(),
            id: id.to_owned(),
        }),
    }
}

/// Loads the rows of these ids of `kind` (those that exist), whoever may see them: the caller
/// decides what each principal learns of each.
pub(crate) fn load_rows(
    conn: &mut DbConn,
    kind: RecordKind,
    ids: &[&str],
) -> Result<Vec<RecordRow>, NodeError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(records::table
        .filter(records::kind.eq(kind.as_str()))
        .filter(records::id.eq_any(ids))
        .select(RecordRow::as_select())
        .load(conn)?)
}

/// Loads one version row.
pub fn load_version(
    conn: &mut DbConn,
    kind: RecordKind,
    id: &str,
    version: i64,
) -> Result<VersionRow, NodeError> {
    Ok(record_versions::table
        .find((kind.as_str(), id, version))
        .select(VersionRow::as_select())
        .first(conn)?)
}

/// Builds the API view of a record from its row and latest version.
pub fn view_of(row: RecordRow, latest: &VersionRow) -> RecordView {
    let record = latest
        .document
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok());
    view_with(row, latest, record)
}

/// As [`view_of`], with the latest version's record as the caller holds it (already parsed),
/// instead of parsed again from the version row.
pub fn view_with(row: RecordRow, latest: &VersionRow, record: Option<Value>) -> RecordView {
    let review = match (&latest.reviewed_by, &latest.reviewed_at) {
        (Some(by), Some(at)) => Some(ReviewView {
            reviewed_by: by.clone(),
            reviewed_at: at.clone(),
            reason: latest.reason.clone(),
        }),
        _ => None,
    };
    RecordView {
        kind: row.kind,
        id: row.id,
        version: row.version,
        state: row.state,
        published_version: row.published_version,
        registration_no: row.registration_no,
        registration_date: row.registration_date,
        owner: row.owner_uscc,
        secrecy: row.secrecy,
        created_at: row.created_at,
        updated_at: row.updated_at,
        review,
        record,
    }
}

/// Reads a record's latest version.
pub fn get(db: &Db, who: &Principal, kind: RecordKind, id: &str) -> Result<RecordView, NodeError> {
    let mut conn = db.conn()?;
    let row = load_row(&mut conn, who, kind, id)?;
    let latest = load_version(&mut conn, kind, id, row.version)?;
    Ok(view_of(row, &latest))
}

fn stale(expected: i64, row: &RecordRow) -> NodeError {
    NodeError::Conflict {
        pointer: "/headers/if-match".into(),
        message: format!(
            "you revise version {expected} but the latest is version {} ({}); read it again and redo your change",
            row.version, row.state
        ),
    }
}

/// Files a new version of a record for review. The published version (if any) stays in the
/// feed until the new one is approved. A version that lowers the secrecy level must carry the
/// declassification decision (`/secrecy/decision`).
pub fn revise(
    db: &Db,
    who: &Principal,
    kind: RecordKind,
    id: &str,
    expected_version: i64,
    doc: &Value,
    idem: Option<&Idempotency>,
) -> Result<Reply, NodeError> {
    who.require_submitter()?;
    db.write(|conn| {
        once(conn, who, idem, |conn| {
            let mut row = lock_row(conn, who, kind, id)?;
            if row.version != expected_version {
                return Err(stale(expected_version, &row));
            }
            if row.state == state::WITHDRAWN {
                return Err(NodeError::Conflict {
                    pointer: String::new(),
                    message: format!("{kind} {id} was withdrawn; register a new record instead"),
                });
            }
            let assigned = row
                .registration_no
                .as_deref()
                .zip(row.registration_date.as_deref());
            check_document(kind, doc, who, assigned, "").map_err(NodeError::Invalid)?;
            check_declassification(conn, &row, kind, doc)?;
            if row.state == state::SUBMITTED {
                set_version_state(conn, kind, id, row.version, state::SUPERSEDED)?;
            }
            let at = now();
            let version =
                VersionRow::submitted(&row.kind, id.to_owned(), row.version + 1, doc, who, &at);
            diesel::insert_into(record_versions::table)
                .values(&version)
                .execute(conn)?;
            let (title, secrecy) = title_and_secrecy(doc);
            row.version += 1;
            row.state = state::SUBMITTED.to_owned();
            row.title = title;
            row.secrecy = secrecy;
            row.updated_at = at;
            save_row(conn, &row)?;
            Ok((
                200,
                serde_json::to_value(view_of(row, &version)).expect("JSON"),
            ))
        })
    })
}

/// Withdraws a record: a new version in state withdrawn, and if a version stands in the feed,
/// a withdraw entry in the log in the same transaction.
pub fn withdraw(
    db: &Db,
    who: &Principal,
    kind: RecordKind,
    id: &str,
    expected_version: Option<i64>,
) -> Result<RecordView, NodeError> {
    who.require_submitter()?;
    db.write(|conn| {
        let mut row = lock_row(conn, who, kind, id)?;
        if let Some(expected) = expected_version.filter(|e| *e != row.version) {
            return Err(stale(expected, &row));
        }
        if row.state == state::WITHDRAWN {
            return Err(NodeError::Conflict {
                pointer: String::new(),
                message: format!("{kind} {id} is already withdrawn"),
            });
        }
        if row.state == state::SUBMITTED {
            set_version_state(conn, kind, id, row.version, state::SUPERSEDED)?;
        }
        let at = now();
        let version = VersionRow {
            kind: row.kind.clone(),
            id: id.to_owned(),
            version: row.version + 1,
            state: state::WITHDRAWN.to_owned(),
            document: None,
            submitted_by: who.audit_name(),
            submitted_at: at.clone(),
            reviewed_by: None,
            reviewed_at: None,
            reason: None,
        };
        diesel::insert_into(record_versions::table)
            .values(&version)
            .execute(conn)?;
        row.version += 1;
        if row.published_version.take().is_some() {
            outbox::enqueue(conn, kind, Op::Withdraw, id, row.version, None)?;
        }
        row.state = state::WITHDRAWN.to_owned();
        row.updated_at = at;
        save_row(conn, &row)?;
        Ok(view_of(row, &version))
    })
}

/// Writes a changed `records` row back.
pub fn save_row(conn: &mut DbConn, row: &RecordRow) -> Result<(), NodeError> {
    diesel::update(records::table.find((&row.kind, &row.id)))
        .set(row)
        .execute(conn)?;
    Ok(())
}

/// Changes the review state of one version.
pub fn set_version_state(
    conn: &mut DbConn,
    kind: RecordKind,
    id: &str,
    version: i64,
    new_state: &str,
) -> Result<(), NodeError> {
    diesel::update(record_versions::table.find((kind.as_str(), id, version)))
        .set(record_versions::state.eq(new_state))
        .execute(conn)?;
    Ok(())
}

/// Lists records this principal may see, oldest first, with a cursor.
pub fn list(
    db: &Db,
    who: &Principal,
    kind: RecordKind,
    query: &ListQuery,
) -> Result<RecordPage, NodeError> {
    let mut conn = db.conn()?;
    let mut q = records::table
        .filter(records::kind.eq(kind.as_str()))
        .filter(records::serial.gt(query.after.unwrap_or(0)))
        .order(records::serial.asc())
        .limit(query.limit + 1)
        .select(RecordRow::as_select())
        .into_boxed();
    if who.role == crate::config::Role::Submitter {
        q = q.filter(records::owner_uscc.eq(who.institution.clone().unwrap_or_default()));
    }
    if let Some(s) = &query.state {
        q = q.filter(records::state.eq(s.clone()));
    }
    let mut rows: Vec<RecordRow> = q.load(&mut *conn)?;
    let more = rows.len() as i64 > query.limit;
    rows.truncate(query.limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| r.serial.to_string())
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|r| RecordSummary {
            id: r.id,
            version: r.version,
            state: r.state,
            title: r.title,
            secrecy: r.secrecy,
            registration_no: r.registration_no,
            published_version: r.published_version,
            updated_at: r.updated_at,
        })
        .collect();
    Ok(RecordPage { items, next_cursor })
}
