//! Stage 2: review (审核). A reviewer approves a submitted version or rejects it with a reason.
//!
//! Approval is where a record becomes national: in one transaction it assigns the registration
//! number (批准登记号: the node's issuer code, the year, the category flag and a gap-free
//! serial per issuer, year and flag — past any historical number an import reserved, see
//! `reserve_registration_no`), marks the version approved, and — unless the record is
//! classified — puts it in the log ([`crate::outbox::enqueue`]). A classified record is
//! approved and kept, but never logged; an approved revision that raises a published record to
//! a classified level logs a withdrawal instead, so the record leaves circulation.
//!
//! Approval fails closed on secrecy: a version whose level cannot be read is refused (422 at
//! `/secrecy/level`), never taken for public; and a version that lowers the level in force
//! (降解密) is refused without the declassification decision (422 at `/secrecy/decision`),
//! even if it somehow got past the same check at revision.
//!
//! What it may not touch: what the submitter wrote, beyond the two fields approval adds
//! (`registration_no`, `registration_date`); seqs and signatures (the log entry goes through
//! [`crate::outbox::enqueue`] in the approving transaction, sealing comes later); HTTP (it
//! answers with [`NodeError`]).

use rix_schema::RecordKind;
use rix_schema::batch::Op;
use rix_schema::codes::{Issuer, RegistrationNumber};
use rix_schema::record::Category;
use rix_schema::validate::{check_level_change, check_text};
use rix_schema::{FieldError, SecrecyLevel};
use serde_json::Value;

use crate::auth::Principal;
use crate::db::{Db, DbConn, lock_counter, next_counter};
use rix_runtime::clock::now;

use crate::error::NodeError;
use crate::outbox;
use crate::register::{
    RecordRow, RecordView, VersionRow, level_in_force, load_row, load_version, save_row,
    set_version_state, state, view_of,
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

/// The next registration number for `category` this year.
fn assign_registration_no(
    conn: &mut DbConn,
    issuer: &Issuer,
    category: Category,
    year: u16,
) -> Result<String, NodeError> {
    let flag = category.registration_flag();
    let serial = next_counter(conn, &serial_counter(issuer, year, flag))?;
    Ok(RegistrationNumber {
        issuer: issuer.clone(),
        year,
        flag,
        serial: serial as u32,
    }
    .format())
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
    db.write(|conn| approve_in(conn, issuer, who, kind, id, expected_version))
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
    db.write(|conn| {
        // Counter rows are locked (on PostgreSQL) in one global order — serial counters in
        // flag order, then the log's seq — so concurrent bulk approvals cannot deadlock.
        if kind == RecordKind::Achievement {
            let year = this_year();
            for flag in ['J', 'R', 'Y'] {
                lock_counter(conn, &serial_counter(issuer, year, flag))?;
            }
        }
        let mut views = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let view = approve_in(conn, issuer, who, kind, id, None).map_err(|e| match e {
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
            })?;
            views.push(view);
        }
        Ok(views)
    })
}

/// Approves the latest (submitted) version inside the caller's transaction: the one approval
/// of the node, which [`approve`], [`approve_many`] and the import ([`crate::import`]) all
/// call. A record whose row already holds a registration number that fits its category keeps
/// it (a revision, or a historical number the import reserved with
/// [`reserve_registration_no`]); any other is given the next one.
pub(crate) fn approve_in(
    conn: &mut DbConn,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    id: &str,
    expected_version: Option<i64>,
) -> Result<RecordView, NodeError> {
    let row = load_row(conn, who, kind, id)?;
    check_expected(expected_version, row.version)?;
    if row.state != state::SUBMITTED {
        return Err(not_reviewable(kind, id, &row.state, row.version));
    }
    let version = load_version(conn, kind, id, row.version)?;
    let doc: Value = serde_json::from_str(version.document.as_deref().unwrap_or("null"))
        .map_err(|e| NodeError::Invalid(vec![FieldError::new("", e.to_string())].into()))?;
    approve_loaded(conn, issuer, who, kind, row, version, doc)
}

/// The body of [`approve_in`] for a submitted version the caller holds: its row, its version
/// row and its document, as read by `approve_in` or as just written by the import (which
/// approves what it inserted without reading it back). `row` must be the record's row with
/// state `submitted`, `version` its latest version and `doc` that version's document.
pub(crate) fn approve_loaded(
    conn: &mut DbConn,
    issuer: &Issuer,
    who: &Principal,
    kind: RecordKind,
    mut row: RecordRow,
    mut version: VersionRow,
    mut doc: Value,
) -> Result<RecordView, NodeError> {
    debug_assert!(row.state == state::SUBMITTED && version.version == row.version);
    let id = row.id.clone();
    let id = id.as_str();
    {
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
            _ => level_in_force(conn, kind, id, row.version)?,
        };
        if let Some(standing) = in_force {
            check_level_change(standing, &doc).map_err(|e| NodeError::Invalid(e.into()))?;
        }
        let at = now();
        // The previously approved version, if any, gives way to this one. Done before the
        // counters below: from the first counter on, concurrent approvals wait for this one.
        if let Some(previous) = row.published_version {
            set_version_state(conn, kind, id, previous, state::SUPERSEDED)?;
        }

        if kind == RecordKind::Achievement {
            let category = category_of(&doc).ok_or_else(|| {
                NodeError::Invalid(vec![FieldError::new("/category", "missing or unknown")].into())
            })?;
            let keep = row.registration_no.as_deref().filter(|n| {
                RegistrationNumber::parse(n).is_ok_and(|r| r.flag == category.registration_flag())
            });
            let number = match keep {
                Some(n) => n.to_owned(),
                None => assign_registration_no(conn, issuer, category, this_year())?,
            };
            let date = row
                .registration_date
                .clone()
                .unwrap_or_else(|| at[..10].to_owned());
            let obj = doc.as_object_mut().expect("validated records are objects");
            obj.insert("registration_no".into(), Value::String(number.clone()));
            obj.insert("registration_date".into(), Value::String(date.clone()));
            row.registration_no = Some(number);
            row.registration_date = Some(date);
        }

        let document = doc.to_string();
        if level.may_leave_node() {
            outbox::enqueue(conn, kind, Op::Upsert, id, row.version, Some(&document))?;
            row.published_version = Some(row.version);
        } else if row.published_version.take().is_some() {
            outbox::enqueue(conn, kind, Op::Withdraw, id, row.version, None)?;
        }

        version.state = state::APPROVED.to_owned();
        version.document = Some(document);
        version.reviewed_by = Some(who.audit_name());
        version.reviewed_at = Some(at.clone());
        {
            use crate::db::schema::record_versions::dsl as v;
            use diesel::prelude::*;
            diesel::update(v::record_versions.find((kind.as_str(), id, row.version)))
                .set((
                    v::state.eq(&version.state),
                    v::document.eq(&version.document),
                    v::reviewed_by.eq(&version.reviewed_by),
                    v::reviewed_at.eq(&version.reviewed_at),
                ))
                .execute(conn)?;
        }
        row.state = state::APPROVED.to_owned();
        row.updated_at = at;
        save_row(conn, &row)?;
        Ok(view_of(row, &version))
    }
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
        let mut row = load_row(conn, who, kind, id)?;
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
