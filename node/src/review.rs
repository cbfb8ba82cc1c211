//! Stage 2: review (审核). A reviewer approves a submitted version or rejects it with a reason.
//!
//! Approval is where a record becomes national: in one transaction it assigns the registration
//! number (批准登记号: the node's issuer code, the year, the category flag and a gap-free
//! serial per issuer, year and flag — past any historical number an import reserved, see
//! `reserve_registration_no`), marks the version approved, and — unless the record is
//! classified — puts it in the log ([`crate::outbox::append`]). A classified record is
//! approved and kept, but never logged; an approved revision that raises a published record to
//! a classified level logs a withdrawal instead, so the record leaves circulation.
//!
//! One approval path, set-based: a single approval is a set of one. The records are loaded in
//! one query (on PostgreSQL their rows locked, in id order), everything per record is decided
//! before any counter is touched, then the serial counters and the log's seq are taken late, in
//! one statement reserving every value the set needs, and the writes follow (on PostgreSQL one
//! statement for the log, the versions and the rows; on SQLite a multi-row insert and a statement
//! per row, in process). The counters are what concurrent approvals queue on (they keep numbers
//! and seqs gap-free and in commit order), so they are held only for that and the commit,
//! whatever the size of the set.
//!
//! Approval fails closed on secrecy: a version whose level cannot be read is refused (422 at
//! `/secrecy/level`), never taken for public; and a version that lowers the level in force
//! (降解密) is refused without the declassification decision (422 at `/secrecy/decision`),
//! even if it somehow got past the same check at revision.
//!
//! What it may not touch: what the submitter wrote, beyond the two fields approval adds
//! (`registration_no`, `registration_date`); seqs and signatures (the log's entries go through
//! [`crate::outbox::append`] in the approving transaction, with seqs reserved from
//! [`crate::outbox::SEQ_COUNTER`]; sealing comes later); HTTP (it answers with [`NodeError`]).

use std::collections::HashMap;

use rix_schema::RecordKind;
use rix_schema::batch::Op;
use rix_schema::codes::{Issuer, RegistrationNumber};
use rix_schema::record::Category;
use rix_schema::validate::{check_level_change, check_text};
use rix_schema::{FieldError, SecrecyLevel};
use serde_json::Value;

use crate::auth::Principal;
use crate::db::{Db, DbConn, take_counters};
use rix_runtime::clock::now;

use crate::error::NodeError;
use crate::outbox;
use crate::register::{
    RecordRow, RecordView, VersionRow, level_in_force, load_version, lock_row, save_row,
    set_version_state, state, view_of, view_with,
};

fn not_reviewable(kind: RecordKind, id: &str, current: &str, version: i64) -> NodeError {
    NodeError::Conflict {
        pointer: String::new(),
        message: format!(
            "{kind} {id} version {version} is {current}; only a submitted version can be reviewed"
        ),
    }
}

fn check_expected(expected: Option<i64>, version: i64) -> Result<(), NodeError> {
    match expected {
        Some(e) if e != version => Err(NodeError::Conflict {
            pointer: "/version".into(),
            message: format!(
                "you reviewed version {e} but the latest is version {version}; review the latest"
            ),
        }),
        _ => Ok(()),
    }
}

/// The counter behind the serials of one issuer, year and category flag.
pub(crate) fn serial_counter(issuer: &Issuer, year: u16, flag: char) -> String {
    format!("regno:{}:{year}:{flag}", issuer.code())
}

/// The registration year of numbers assigned now.
pub(crate) fn this_year() -> u16 {
    time::OffsetDateTime::now_utc().year() as u16
}

/// The record's category (成果类别), if it names one.
pub(crate) fn category_of(doc: &Value) -> Option<Category> {
    let text = doc.get("category")?.as_str()?;
    Category::ALL.iter().copied().find(|c| c.as_str() == text)
}

/// Approves the latest (submitted) version. `expected_version`, when given, must be it.
pub fn approve(
    db: &Db,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    id: &str,
    expected_version: Option<i64>,
) -> Result<RecordView, NodeError> {
    who.require_reviewer()?;
    ensure_serial_counters(db, issuer)?;
    let mut views = db.write(|conn| {
        approve_ids(conn, issuer, who, kind, &[id], expected_version).map_err(|(_, e)| e)
    })?;
    Ok(views.pop().expect("one view per id"))
}

fn ensure_serial_counters(db: &Db, issuer: &Issuer) -> Result<(), NodeError> {
    let year = this_year();
    let names: Vec<String> = ['J', 'R', 'Y']
        .iter()
        .map(|flag| serial_counter(issuer, year, *flag))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok(db.ensure_counters(&names)?)
}

/// Approves many records in one transaction (批量审核): all of them, or none if any cannot be
/// approved — the error's pointer names it (`/ids/3`).
pub fn approve_many(
    db: &Db,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    ids: &[String],
) -> Result<Vec<RecordView>, NodeError> {
    who.require_reviewer()?;
    ensure_serial_counters(db, issuer)?;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    db.write(|conn| {
        approve_ids(conn, issuer, who, kind, &ids, None).map_err(|(at, e)| match at {
            Some(i) => at_position(kind, ids[i], i, e),
            None => e,
        })
    })
}

/// An error about the record at `/ids/{i}` of a bulk approval, saying which.
fn at_position(kind: RecordKind, id: &str, i: usize, e: NodeError) -> NodeError {
    match e {
        NodeError::Conflict { message, .. } => NodeError::Conflict {
            pointer: format!("/ids/{i}"),
            message,
        },
        NodeError::NotFound { .. } => NodeError::Invalid(
            vec![FieldError::new(
                format!("/ids/{i}"),
                format!("no {kind} with id {id:?}"),
            )]
            .into(),
        ),
        // The pointers are into the record; the message says which one.
        NodeError::Invalid(mut errors) => {
            for e in &mut errors.errors {
                e.message = format!("{kind} {id} (/ids/{i}): {}", e.message);
            }
            NodeError::Invalid(errors)
        }
        other => other,
    }
}

/// A submitted version to approve: the record's row (state `submitted`), its latest version's
/// row and that version's document.
pub(crate) struct Submitted {
    /// The `records` row.
    pub(crate) row: RecordRow,
    /// Its latest version's row.
    pub(crate) version: VersionRow,
    /// That version's document.
    pub(crate) doc: Value,
}

/// A failed approval of a set: the position of the record it is about (`None`: not one record's,
/// the store's) and the error.
pub(crate) type SetError = (Option<usize>, NodeError);

/// Loads the records `ids` names (in one query; on PostgreSQL their rows locked in id order,
/// so that concurrent approvals of the same record take turns and the second finds it
/// approved) and approves them with [`approve_submitted`]. An id this principal may not see is
/// not found; one named twice is, the second time, already approved.
fn approve_ids(
    conn: &mut DbConn,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    ids: &[&str],
    expected_version: Option<i64>,
) -> Result<Vec<RecordView>, SetError> {
    let mut loaded = load_latest(conn, kind, ids).map_err(|e| (None, e))?;
    let mut taken: HashMap<&str, i64> = HashMap::new();
    let mut items = Vec::with_capacity(ids.len());
    for (i, &id) in ids.iter().enumerate() {
        let fail = |e: NodeError| (Some(i), e);
        if let Some(&version) = taken.get(id) {
            return Err(fail(not_reviewable(kind, id, state::APPROVED, version)));
        }
        let (row, version) = match loaded.remove(id) {
            Some((row, version)) if who.may_access(&row.owner_uscc) => (row, version),
            _ => {
                return Err(fail(NodeError::NotFound {
                    kind: kind.as_str(),
                    id: id.to_owned(),
                }));
            }
        };
        check_expected(expected_version, row.version).map_err(fail)?;
        if row.state != state::SUBMITTED {
            return Err(fail(not_reviewable(kind, id, &row.state, row.version)));
        }
        let doc: Value = serde_json::from_str(version.document.as_deref().unwrap_or("null"))
            .map_err(|e| {
                fail(NodeError::Invalid(
                    vec![FieldError::new("", e.to_string())].into(),
                ))
            })?;
        taken.insert(id, row.version);
        items.push(Submitted { row, version, doc });
    }
    approve_submitted(conn, issuer, who, kind, items)
}

/// The rows of these ids and their latest versions, in one query; locked on PostgreSQL (in id
/// order) until the transaction ends.
fn load_latest(
    conn: &mut DbConn,
    kind: RecordKind,
    ids: &[&str],
) -> Result<HashMap<String, (RecordRow, VersionRow)>, NodeError> {
    use crate::db::schema::{record_versions as v, records as r};
    use diesel::prelude::*;
    // The same query for each backend (a selection is typed by its backend).
    macro_rules! latest {
        () => {
            r::table
                .inner_join(
                    v::table.on(v::kind
                        .eq(r::kind)
                        .and(v::id.eq(r::id))
                        .and(v::version.eq(r::version))),
                )
                .filter(r::kind.eq(kind.as_str()))
                .filter(r::id.eq_any(ids))
                .order(r::id.asc())
                .select((RecordRow::as_select(), VersionRow::as_select()))
        };
    }
    let rows: Vec<(RecordRow, VersionRow)> = match conn {
        DbConn::Postgresql(pg) => latest!().for_update().load(pg)?,
        DbConn::Sqlite(sqlite) => latest!().load(sqlite)?,
    };
    Ok(rows
        .into_iter()
        .map(|(row, version)| (row.id.clone(), (row, version)))
        .collect())
}

/// Stands in a document for the registration number it is waiting for: the document is
/// serialized before the serial counters are taken, and the number written into the text after.
const NUMBER_PLACEHOLDER: &str = "rix:registration_no:placeholder:5f0c2a";

/// One record of an approval, decided before the counters are taken.
struct Planned {
    row: RecordRow,
    version: VersionRow,
    doc: Value,
    /// The document as stored, with [`NUMBER_PLACEHOLDER`] for a number still to assign.
    document: String,
    /// The category flag of the number to assign (none: it keeps the one it has, or is a project).
    flag: Option<char>,
    /// What it puts in the log.
    op: Option<Op>,
}

/// Approves submitted versions inside the caller's transaction: the one approval of the node,
/// which [`approve`], [`approve_many`] and the import ([`crate::import`], through
/// [`approve_loaded`]) all go through. All or nothing: an error names the position of the record
/// it is about.
///
/// Everything that can be decided per record is decided first — the secrecy checks, the number
/// a record keeps (a revision's, or a historical number the import reserved with
/// [`reserve_registration_no`]), the registration date, the log entry, the stored document. Then
/// the counters are taken late, in one statement that reserves every number and seq the set needs
/// (the serial counters of this year in flag order, then the log's seq: one global order, so
/// concurrent approvals cannot deadlock), and the writes follow ([`write_approved`]).
/// Numbers and seqs are handed out in the order of `items`, gap-free.
pub(crate) fn approve_submitted(
    conn: &mut DbConn,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    items: Vec<Submitted>,
) -> Result<Vec<RecordView>, SetError> {
    let at = now();
    let reviewer = who.audit_name();
    let mut plans = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        plans.push(plan(conn, kind, item, &at).map_err(|e| (Some(i), e))?);
    }
    let store = |e: diesel::result::Error| (None, NodeError::from(e));

    // The previously approved versions give way to these (row locks only, before the counters).
    for p in &plans {
        if let Some(previous) = p.version_superseded() {
            set_version_state(conn, kind, &p.row.id, previous, state::SUPERSEDED)
                .map_err(|e| (None, e))?;
        }
    }

    // The counters, late and at once.
    let year = this_year();
    let mut wants: Vec<(String, i64)> = Vec::new();
    for flag in ['J', 'R', 'Y'] {
        let n = plans.iter().filter(|p| p.flag == Some(flag)).count() as i64;
        if n > 0 {
            wants.push((serial_counter(issuer, year, flag), n));
        }
    }
    let entries = plans.iter().filter(|p| p.op.is_some()).count() as i64;
    if entries > 0 {
        wants.push((outbox::SEQ_COUNTER.to_owned(), entries));
    }
    let names: Vec<(&str, i64)> = wants.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    let firsts = take_counters(conn, &names).map_err(store)?;
    let mut next: HashMap<&str, i64> = names
        .iter()
        .zip(&firsts)
        .map(|((name, _), first)| (*name, *first))
        .collect();
    let mut take = |name: &str| {
        let slot = next.get_mut(name).expect("a counter taken for every want");
        *slot += 1;
        *slot - 1
    };

    // Seqs in request order, aligned with `plans` (none: nothing logged).
    let mut seqs = Vec::with_capacity(plans.len());
    for p in &mut plans {
        if let Some(flag) = p.flag {
            let serial = take(&serial_counter(issuer, year, flag));
            let number = RegistrationNumber {
                issuer: issuer.clone(),
                year,
                flag,
                serial: serial as u32,
            }
            .format();
            p.set_number(number);
        }
        seqs.push(p.op.map(|_| take(outbox::SEQ_COUNTER)));
    }
    write_approved(conn, kind, &plans, &seqs, &reviewer, &at).map_err(store)?;

    Ok(plans
        .into_iter()
        .map(|mut p| {
            p.row.published_version = p.published();
            p.row.state = state::APPROVED.to_owned();
            p.row.updated_at = at.clone();
            p.version.state = state::APPROVED.to_owned();
            p.version.reviewed_by = Some(reviewer.clone());
            p.version.reviewed_at = Some(at.clone());
            p.version.document = None;
            view_with(p.row, &p.version, Some(p.doc))
        })
        .collect())
}

/// Decides one record's approval without writing: fails closed on secrecy, finds its number
/// or the flag of the one to assign, its date, its log entry and its stored document.
fn plan(
    conn: &mut DbConn,
    kind: RecordKind,
    Submitted {
        mut row,
        version,
        mut doc,
    }: Submitted,
    at: &str,
) -> Result<Planned, NodeError> {
    debug_assert!(row.state == state::SUBMITTED && version.version == row.version);
    // Fail closed: a record whose level cannot be read is never approved (and so never
    // published); one that lowers the level in force needs the declassification decision,
    // whatever happened at submission.
    let level = SecrecyLevel::of_record(&doc).ok_or_else(|| {
        NodeError::Invalid(
            vec![FieldError::new(
                "/secrecy/level",
                format!(
                    "the secrecy level of version {} cannot be read, so it cannot be approved; \
                     the submitter must revise it with one of public, internal, secret, confidential, top_secret",
                    row.version
                ),
            )]
            .into(),
        )
    })?;
    let in_force = match row.version {
        1 => None,
        _ => level_in_force(conn, kind, &row.id, row.version)?,
    };
    if let Some(standing) = in_force {
        check_level_change(standing, &doc).map_err(|e| NodeError::Invalid(e.into()))?;
    }
    let mut flag = None;
    if kind == RecordKind::Achievement {
        let category = category_of(&doc).ok_or_else(|| {
            NodeError::Invalid(vec![FieldError::new("/category", "missing or unknown")].into())
        })?;
        let keep = row.registration_no.clone().filter(|n| {
            RegistrationNumber::parse(n).is_ok_and(|r| r.flag == category.registration_flag())
        });
        if keep.is_none() {
            flag = Some(category.registration_flag());
        }
        let date = row
            .registration_date
            .clone()
            .unwrap_or_else(|| at[..10].to_owned());
        let obj = doc.as_object_mut().expect("validated records are objects");
        let shown = keep.as_deref().unwrap_or(NUMBER_PLACEHOLDER);
        obj.insert("registration_no".into(), Value::String(shown.to_owned()));
        obj.insert("registration_date".into(), Value::String(date.clone()));
        row.registration_no = keep;
        row.registration_date = Some(date);
    }
    let op = if level.may_leave_node() {
        Some(Op::Upsert)
    } else if row.published_version.is_some() {
        Some(Op::Withdraw)
    } else {
        None
    };
    let document = doc.to_string();
    Ok(Planned {
        row,
        version,
        doc,
        document,
        flag,
        op,
    })
}

impl Planned {
    /// The version standing in the feed once approved: this one if it is logged, none if it
    /// was withdrawn, else (classified, never published) the same as before.
    fn published(&self) -> Option<i64> {
        match self.op {
            Some(Op::Upsert) => Some(self.row.version),
            Some(Op::Withdraw) => None,
            None => self.row.published_version,
        }
    }

    /// The version this approval supersedes (the one standing in the feed), if any.
    fn version_superseded(&self) -> Option<i64> {
        self.row.published_version
    }

    /// Puts the number assigned into the row, the document and its stored text.
    fn set_number(&mut self, number: String) {
        let placeholder = format!("\"{NUMBER_PLACEHOLDER}\"");
        let obj = self
            .doc
            .as_object_mut()
            .expect("validated records are objects");
        obj.insert("registration_no".into(), Value::String(number.clone()));
        // The placeholder is the number's own value unless the submitter happened to write it
        // too: then the text is made again.
        self.document = match self.document.match_indices(&placeholder).count() {
            1 => self
                .document
                .replacen(&placeholder, &format!("\"{number}\""), 1),
            _ => self.doc.to_string(),
        };
        self.row.registration_no = Some(number);
    }
}

/// Writes the approved state: the log's entries (`seqs`, aligned with `plans`), each version's
/// state, document and review, and each row's state, feed version, number and date. On
/// PostgreSQL one statement for the three tables (the documents sent once), so that the counters
/// taken just before are held for one round trip and the commit; on SQLite, in process, the
/// outbox's multi-row insert ([`outbox::append`]) and a prepared statement per row.
fn write_approved(
    conn: &mut DbConn,
    kind: RecordKind,
    plans: &[Planned],
    seqs: &[Option<i64>],
    reviewer: &str,
    at: &str,
) -> Result<(), diesel::result::Error> {
    use crate::db::schema::{record_versions as v, records as r};
    use diesel::prelude::*;
    use diesel::sql_types::{Array, BigInt, Nullable, Text};
    match conn {
        DbConn::Postgresql(pg) => {
            let ids: Vec<&str> = plans.iter().map(|p| p.row.id.as_str()).collect();
            let versions: Vec<i64> = plans.iter().map(|p| p.row.version).collect();
            let documents: Vec<&str> = plans.iter().map(|p| p.document.as_str()).collect();
            let ops: Vec<Option<&str>> = plans.iter().map(|p| p.op.map(Op::as_str)).collect();
            let feed: Vec<Option<i64>> = plans.iter().map(Planned::published).collect();
            let numbers: Vec<Option<&str>> = plans
                .iter()
                .map(|p| p.row.registration_no.as_deref())
                .collect();
            let dates: Vec<Option<&str>> = plans
                .iter()
                .map(|p| p.row.registration_date.as_deref())
                .collect();
            // The log's entries are the outbox's (`outbox::append` on SQLite): the same columns,
            // an upsert carrying the stored document, a withdrawal none.
            diesel::sql_query(
                "WITH u AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], \
                        $4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::text[]) \
                        AS u(id, version, document, seq, op, published_version, \
                             registration_no, registration_date)), \
                 o AS (INSERT INTO outbox (seq, kind, op, id, version, record, created_at) \
                       SELECT seq, $9, op, id, version, \
                              CASE WHEN op = 'upsert' THEN document END, $10 \
                       FROM u WHERE seq IS NOT NULL ORDER BY seq), \
                 v AS (UPDATE record_versions AS v \
                       SET state = $11, document = u.document, reviewed_by = $12, \
                           reviewed_at = $10 \
                       FROM u WHERE v.kind = $9 AND v.id = u.id AND v.version = u.version) \
                 UPDATE records AS r \
                 SET state = $11, published_version = u.published_version, \
                     registration_no = u.registration_no, \
                     registration_date = u.registration_date, updated_at = $10 \
                 FROM u WHERE r.kind = $9 AND r.id = u.id",
            )
            .bind::<Array<Text>, _>(&ids)
            .bind::<Array<BigInt>, _>(&versions)
            .bind::<Array<Text>, _>(&documents)
            .bind::<Array<Nullable<BigInt>>, _>(seqs)
            .bind::<Array<Nullable<Text>>, _>(&ops)
            .bind::<Array<Nullable<BigInt>>, _>(&feed)
            .bind::<Array<Nullable<Text>>, _>(&numbers)
            .bind::<Array<Nullable<Text>>, _>(&dates)
            .bind::<Text, _>(kind.as_str())
            .bind::<Text, _>(at)
            .bind::<Text, _>(state::APPROVED)
            .bind::<Text, _>(reviewer)
            .execute(pg)?;
        }
        // One writer at a time, in process: a prepared statement per row costs little.
        DbConn::Sqlite(_) => {
            let appended: Vec<outbox::Appended<'_>> = plans
                .iter()
                .zip(seqs)
                .filter_map(|(p, seq)| {
                    let (seq, op) = ((*seq)?, p.op?);
                    Some(outbox::Appended {
                        seq,
                        op,
                        id: &p.row.id,
                        version: p.row.version,
                        record: (op == Op::Upsert).then_some(p.document.as_str()),
                    })
                })
                .collect();
            outbox::append(conn, kind, &appended, at)?;
            for p in plans {
                diesel::update(v::table.find((kind.as_str(), &p.row.id, p.row.version)))
                    .set((
                        v::state.eq(state::APPROVED),
                        v::document.eq(&p.document),
                        v::reviewed_by.eq(reviewer),
                        v::reviewed_at.eq(at),
                    ))
                    .execute(conn)?;
                diesel::update(r::table.find((kind.as_str(), &p.row.id)))
                    .set((
                        r::state.eq(state::APPROVED),
                        r::published_version.eq(p.published()),
                        r::registration_no.eq(&p.row.registration_no),
                        r::registration_date.eq(&p.row.registration_date),
                        r::updated_at.eq(at),
                    ))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

/// Approves one submitted version the caller holds: its row, its version row and its document,
/// as just written by the import (which approves what it inserted without reading it back).
/// `row` must be the record's row with state `submitted`, `version` its latest version and
/// `doc` that version's document. The same approval as every other ([`approve_submitted`]).
pub(crate) fn approve_loaded(
    conn: &mut DbConn,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    row: RecordRow,
    version: VersionRow,
    doc: Value,
) -> Result<RecordView, NodeError> {
    let mut views = approve_submitted(
        conn,
        issuer,
        who,
        kind,
        vec![Submitted { row, version, doc }],
    )
    .map_err(|(_, e)| e)?;
    Ok(views.pop().expect("one view per record"))
}

/// Reserves a number this node issued before it ran (a historical 批准登记号 being imported):
/// raises the serial counter of its issuer, year and flag to at least its serial, inside the
/// caller's transaction, so that no later approval issues it again. The serials it skips are
/// never issued: a gap the import made, not a number lost.
///
/// The counter's row must exist ([`rix_runtime::db::Db::ensure_counters`] with
/// [`serial_counter`]'s name), so that this only ever locks an existing row.
pub(crate) fn reserve_registration_no(
    conn: &mut DbConn,
    number: &RegistrationNumber,
) -> Result<(), NodeError> {
    use crate::db::schema::counters::dsl as c;
    use diesel::prelude::*;
    let name = serial_counter(&number.issuer, number.year, number.flag);
    let serial = i64::from(number.serial);
    diesel::update(
        c::counters
            .filter(c::name.eq(&name))
            .filter(c::value.lt(serial)),
    )
    .set(c::value.eq(serial))
    .execute(conn)?;
    Ok(())
}

/// Rejects the latest (submitted) version with a reason the submitter will read.
pub fn reject(
    db: &Db,
    who: &Principal,
    kind: RecordKind,
    id: &str,
    expected_version: Option<i64>,
    reason: &str,
) -> Result<RecordView, NodeError> {
    who.require_reviewer()?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(NodeError::Invalid(
            vec![FieldError::new(
                "/reason",
                "a rejection needs a reason of 1–2000 characters",
            )]
            .into(),
        ));
    }
    // The submitter reads the reason: the same text rule as a record's multi-line fields.
    if let Err(message) = check_text(reason, true) {
        return Err(NodeError::Invalid(
            vec![FieldError::new("/reason", message)].into(),
        ));
    }
    db.write(|conn| {
        let mut row = lock_row(conn, who, kind, id)?;
        check_expected(expected_version, row.version)?;
        if row.state != state::SUBMITTED {
            return Err(not_reviewable(kind, id, &row.state, row.version));
        }
        let mut version = load_version(conn, kind, id, row.version)?;
        let at = now();
        version.state = state::REJECTED.to_owned();
        version.reviewed_by = Some(who.audit_name());
        version.reviewed_at = Some(at.clone());
        version.reason = Some(reason.to_owned());
        {
            use crate::db::schema::record_versions::dsl as v;
            use diesel::prelude::*;
            diesel::update(v::record_versions.find((kind.as_str(), id, row.version)))
                .set((
                    v::state.eq(&version.state),
                    v::reviewed_by.eq(&version.reviewed_by),
                    v::reviewed_at.eq(&version.reviewed_at),
                    v::reason.eq(&version.reason),
                ))
                .execute(conn)?;
        }
        row.state = state::REJECTED.to_owned();
        row.updated_at = at;
        save_row(conn, &row)?;
        Ok(view_of(row, &version))
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use diesel::prelude::*;

    use super::*;
    use crate::config::Role;
    use crate::db::schema::outbox;

    /// How many sessions of this database wait for a lock.
    fn lock_waits(watcher: &mut diesel::PgConnection) -> i64 {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM pg_stat_activity \
              WHERE datname = current_database() AND wait_event_type = 'Lock')",
        ))
        .get_result(watcher)
        .unwrap()
    }

    /// A withdrawal begun while an approval of the same record is being written waits for it,
    /// then withdraws the version the approval published: the log says upsert, then withdraw.
    /// (SQLite's writers take turns, so the race is PostgreSQL's.)
    #[test]
    fn a_withdrawal_racing_an_approval_withdraws_what_it_published_on_postgres() {
        let url = rix_test_support::fresh_postgres_database();
        let db = Db::open(&url, 4).unwrap();
        let issuer = Issuer::Region("530000".into());
        let admin = Principal {
            id: "0123456789abcdef".into(),
            name: "admin".into(),
            role: Role::Admin,
            institution: None,
        };
        let kind = RecordKind::Achievement;
        let doc = rix_test_support::fixtures::fixture("achievement");
        let (_, submitted) = crate::register::submit(&db, &admin, kind, &doc, None).unwrap();
        let id = submitted["id"].as_str().unwrap().to_owned();
        let counters: Vec<String> = ['J', 'R', 'Y']
            .into_iter()
            .map(|flag| serial_counter(&issuer, this_year(), flag))
            .collect();
        db.ensure_counters(&counters.iter().map(String::as_str).collect::<Vec<_>>())
            .unwrap();

        let mut watcher = diesel::PgConnection::establish(&url).unwrap();
        let withdrawn = std::thread::scope(|scope| {
            let withdrawal = db
                .write(|conn| -> Result<_, NodeError> {
                    approve_ids(conn, &issuer, &admin, kind, &[id.as_str()], None)
                        .map_err(|(_, e)| e)?;
                    // The approval's writes are not committed yet: the withdrawal starts now,
                    // and this transaction commits only once it waits on a lock (before the
                    // fix it read the row unlocked here, and waited only to write it back).
                    let withdrawal =
                        scope.spawn(|| crate::register::withdraw(&db, &admin, kind, &id, None));
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while lock_waits(&mut watcher) == 0 {
                        assert!(Instant::now() < deadline, "the withdrawal never waited");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Ok(withdrawal)
                })
                .unwrap();
            withdrawal.join().unwrap().unwrap()
        });
        assert_eq!(withdrawn.state, state::WITHDRAWN);
        assert_eq!(
            withdrawn.version, 2,
            "the withdrawal follows the approved version"
        );
        assert_eq!(withdrawn.published_version, None);

        let mut conn = db.conn().unwrap();
        let logged: Vec<(String, i64)> = outbox::table
            .filter(outbox::id.eq(&id))
            .order(outbox::seq.asc())
            .select((outbox::op, outbox::version))
            .load(&mut *conn)
            .unwrap();
        assert_eq!(
            logged,
            [("upsert".to_owned(), 1), ("withdraw".to_owned(), 2)],
            "what the approval published is withdrawn from the feed"
        );
    }
}
