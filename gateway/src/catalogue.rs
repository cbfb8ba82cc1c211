//! The national catalogue: applying verified entries, merging the same result from several
//! nodes into one unified entry, linking achievements to projects, and the change stream.
//!
//! **Apply** is idempotent by `(node_id, id, version)`: a version at or below the one held is
//! ignored, so redelivered and reordered batches change nothing. Each applied version keeps its
//! provenance (node, batch, seq, the entry's canonical bytes and its inclusion proof; the
//! signed header is in `batches`), so anyone can re-verify it against the node's key.
//!
//! **Merge** only what is the same result: the same registration number (`reg:`), or — across
//! different nodes — the same patent number with the same normalised title
//! (`pat:number|title`) or the same funding project with the same normalised title
//! (`proj:program|number|title`: how a funding ministry and a province register one result
//! that has no patent); for projects the same program and number (`prj:program|number`). A
//! shared patent or project alone is not enough: different results of one group cite the same
//! patent and come from the same project.
//! Keys come only from values every reader of the record may see ([`meta_of`]). Records sharing
//! a key belong to one unified entry. **An entry's name is opaque** ([`EntryNamer`]): an HMAC,
//! under a secret of the catalogue, of the global id of the record that opened it. Named by
//! that id itself, an entry opened by an internal record told every public reader of its
//! later public sources which internal record it began with. **Which value shows** when sources disagree: the *primary* source — the active (not
//! withdrawn) source that appeared in the catalogue first (lowest `first_change`) **among those
//! the reader may see** ([`Unified::primary_for`]): a reader never sees, counts or hears of a
//! source they may not see. A node that publishes another node's registration number joins
//! that entry but cannot take it over: the earlier source stays primary. A withdrawal by one
//! source removes only that source; the entry stays while another source still publishes it,
//! and its primary moves to the next-oldest active source.
//!
//! **Link.** Achievements link to projects through `program + project_no` (an achievement's
//! `funding[]`, a project's own fields), whichever node published either side. A funding
//! reference the submitter hid makes a link only for readers entitled to see it.
//!
//! **Provenance.** `record_versions.entry` is the entry as signed (records in placeholder form,
//! batch format 2) and `record_versions.disclosures` its disclosures, so the record page can
//! give each reader the signed entry and exactly the disclosures they may see.
//!
//! **Change stream.** Every applied change gets the next `change_id` from a counter taken in
//! the applying transaction, so ids are gap-free and in commit order: a reader that has seen
//! id N has seen everything before it (the search index and the ministries' feed rely on it).
//!
//! What it may not touch: signatures, and fields on the way out. It trusts what ingest hands it
//! (verification, chain, validation and the secrecy gate are [`crate::ingest`]'s), and it returns
//! records whole, or as signed when the reader may see no sealed value ([`Reading`]): which
//! *sources* a reader may see is decided here, by record level; which *fields*, only by
//! [`crate::access`]. It knows no HTTP and no transport.

use std::collections::{BTreeSet, HashMap, HashSet};

use diesel::prelude::*;
use rix_schema::RecordKind;
use rix_schema::SecrecyLevel;
use rix_schema::batch::{Entry, Op, VerifiedBatch};
use rix_schema::disclosure;
use rix_schema::sensitivity::{Classes, Entitlements, HiddenField, hidden_fields};
use serde_json::Value;

use crate::db::schema::{
    batches, changes, merge_keys, node_chain, record_funding, record_versions, records,
};
use crate::db::{DbConn, StoreError};

pub use rix_runtime::clock::now;

/// What the catalogue extracts from a record to index, link and merge it.
///
/// Only from values every reader of the record may see: a merge or a link made through a
/// hidden value would tell a reader something about that value (that two records share a
/// hidden patent number, which project a confidential funding reference names). Funding
/// references are the one exception, kept with the classes that hide them, so that a link is
/// shown exactly to the readers entitled to the reference it comes from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordMeta {
    /// Title (empty if the submitter hid it).
    pub title: String,
    /// Secrecy level (`public` or `internal`; others never get here; `unknown` if unreadable,
    /// which no reader may see).
    pub secrecy: String,
    /// 批准登记号.
    pub registration_no: Option<String>,
    /// A project's program.
    pub program: Option<String>,
    /// A project's number.
    pub project_no: Option<String>,
    /// An achievement's funding references, with the classes a reader needs to see each.
    pub funding: Vec<(String, String, Classes)>,
    /// Merge keys, most specific first.
    pub merge_keys: Vec<String>,
}

/// Lower-case letters and digits only (CJK included): titles that differ in spaces,
/// punctuation, full-width forms or case compare equal.
pub fn normalise_title(title: &str) -> String {
    title
        .chars()
        .map(|c| match c {
            // Full-width ASCII forms to their half-width letters and digits.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Extracts [`RecordMeta`] from a validated full record.
///
/// Merge keys: the registration number (`reg:`), which names one registration; for an
/// achievement each patent number and each funding project **with the normalised title**
/// (`pat:number|title`, `proj:program|number|title`: two different results may cite one
/// patent or come from one project, the same result keeps its title), which [`apply_batch`]
/// follows only across nodes (one node does not register a result twice); for a project its
/// program and number (`prj:`).
pub fn meta_of(kind: RecordKind, record: &Value) -> RecordMeta {
    meta_of_hidden(kind, record, &hidden_fields(kind, record))
}

/// [`meta_of`] with the record's [`hidden_fields`] already listed (ingest lists them once for
/// the in-clear check and for this).
pub fn meta_of_hidden(kind: RecordKind, record: &Value, hidden: &[HiddenField]) -> RecordMeta {
    // Each hidden field's pointer, written once (asked about a dozen times per record).
    let hidden: Vec<(String, Classes)> = hidden.iter().map(|h| (h.pointer(), h.classes)).collect();
    // The classes a reader needs to see the value at `pointer` (its own and its ancestors').
    let needs = |pointer: &str| {
        hidden
            .iter()
            .filter(|(p, _)| {
                pointer == p
                    || pointer
                        .strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
            .fold(Classes::default(), |a, (_, c)| Classes {
                commercial: a.commercial || c.commercial,
                personal: a.personal || c.personal,
            })
    };
    let open = |pointer: &str| needs(pointer) == Classes::default();
    let text = |pointer: &str| {
        record
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let visible = |pointer: &str| text(pointer).filter(|_| open(pointer));
    let title = visible("/title").unwrap_or_default();
    // Fail closed: a level that cannot be read is one no reader may see.
    let secrecy = SecrecyLevel::of_record(record)
        .map(SecrecyLevel::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let mut meta = RecordMeta {
        title,
        secrecy,
        ..RecordMeta::default()
    };
    match kind {
        RecordKind::Achievement => {
            meta.registration_no = visible("/registration_no");
            if let Some(n) = &meta.registration_no {
                meta.merge_keys.push(format!("reg:{n}"));
            }
            let count = |name: &str| {
                record
                    .get(name)
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            };
            let norm = normalise_title(&meta.title);
            for i in 0..count("funding") {
                let (p, n) = (
                    format!("/funding/{i}/program"),
                    format!("/funding/{i}/project_no"),
                );
                if let (Some(program), Some(number)) = (text(&p), text(&n)) {
                    let classes = needs(&p);
                    let classes = Classes {
                        commercial: classes.commercial || needs(&n).commercial,
                        personal: classes.personal || needs(&n).personal,
                    };
                    if classes == Classes::default() && !norm.is_empty() {
                        meta.merge_keys
                            .push(format!("proj:{program}|{number}|{norm}"));
                    }
                    meta.funding.push((program, number, classes));
                }
            }
            for i in 0..count("ip") {
                let is_patent =
                    visible(&format!("/ip/{i}/type")).is_some_and(|t| t.contains("专利"));
                if let (true, Some(n), false) = (
                    is_patent,
                    visible(&format!("/ip/{i}/number")),
                    norm.is_empty(),
                ) {
                    meta.merge_keys.push(format!("pat:{n}|{norm}"));
                }
            }
        }
        RecordKind::FundedProject => {
            meta.program = visible("/program");
            meta.project_no = visible("/project_no");
            if let (Some(p), Some(n)) = (&meta.program, &meta.project_no) {
                meta.merge_keys.push(format!("prj:{p}|{n}"));
            }
        }
    }
    meta
}

/// What applying a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries that changed the catalogue.
    pub applied: usize,
    /// Entries ignored: a version at or below the one held.
    pub stale: usize,
    /// Entries refused against what the catalogue holds (index, reason): an id re-published
    /// as the other kind. The caller quarantines them.
    pub refused: Vec<(usize, String)>,
}

#[derive(Insertable)]
#[diesel(table_name = record_versions)]
#[diesel(treat_none_as_default_value = false)]
struct NewVersion<'a> {
    node_id: &'a str,
    id: &'a str,
    version: i64,
    kind: &'a str,
    op: &'a str,
    seq: i64,
    batch_seq: i64,
    entry: String,
    proof: String,
    applied_at: &'a str,
    disclosures: Option<String>,
}

#[derive(Insertable, Clone)]
#[diesel(table_name = records)]
#[diesel(treat_none_as_default_value = false)]
struct RecordRow {
    node_id: String,
    id: String,
    kind: String,
    version: i64,
    withdrawn: i32,
    secrecy: String,
    title: String,
    registration_no: Option<String>,
    program: Option<String>,
    project_no: Option<String>,
    unified_id: String,
    first_change: i64,
    last_change: i64,
}

#[derive(Insertable)]
#[diesel(table_name = changes)]
#[diesel(treat_none_as_default_value = false)]
struct NewChange<'a> {
    change_id: i64,
    node_id: &'a str,
    id: &'a str,
    kind: &'a str,
    version: i64,
    op: &'a str,
    unified_id: String,
    at: &'a str,
    moved_from: Option<String>,
    source_audience: i64,
}

/// A merge key first seen in a batch, and the entry it joins.
#[derive(Insertable)]
#[diesel(table_name = merge_keys)]
#[diesel(treat_none_as_default_value = false)]
struct NewMergeKey {
    kind: String,
    merge_key: String,
    unified_id: String,
}

/// An achievement's funding reference, for linking.
#[derive(Insertable)]
#[diesel(table_name = record_funding)]
#[diesel(treat_none_as_default_value = false)]
struct NewFunding<'a> {
    node_id: &'a str,
    id: String,
    program: String,
    project_no: String,
    classes: String,
}

const CHUNK: usize = 400;

/// Who may see an entry: [`AUDIENCE_PUBLIC`] everyone, [`AUDIENCE_INTERNAL`] internal readers
/// only, [`AUDIENCE_NOBODY`] no one (every source withdrawn, or levels no reader may see).
pub const AUDIENCE_PUBLIC: i64 = 0;
/// See [`AUDIENCE_PUBLIC`].
pub const AUDIENCE_INTERNAL: i64 = 1;
/// See [`AUDIENCE_PUBLIC`].
pub const AUDIENCE_NOBODY: i64 = 2;

/// Whether a reader with `entitlements` may see an entry of `audience`.
pub fn audience_visible(audience: i64, entitlements: Entitlements) -> bool {
    audience == AUDIENCE_PUBLIC || (audience == AUDIENCE_INTERNAL && entitlements.internal)
}

fn audience_of_level(secrecy: &str) -> i64 {
    match SecrecyLevel::parse(secrecy) {
        Some(SecrecyLevel::Public) => AUDIENCE_PUBLIC,
        Some(SecrecyLevel::Internal) => AUDIENCE_INTERNAL,
        _ => AUDIENCE_NOBODY,
    }
}

/// Whether a merge key joins only records of different nodes (patent or project + title).
fn across_nodes_only(key: &str) -> bool {
    key.starts_with("pat:") || key.starts_with("proj:")
}

/// Names new catalogue entries: `u` and 24 hex digits (96 bits) of HMAC-SHA-256, under the
/// catalogue's `entry_name_key`, of the opening record's `node_id/id`. Deterministic, so that
/// a catalogue rebuilt from the feeds in the same order, or restored from a dump (the key is
/// in the dump), names every entry as before; keyed, so that nobody without the catalogue's
/// key can test a guessed node/id against a name. At 10 million entries the chance that two
/// share a name is about 10⁻¹⁵.
pub struct EntryNamer {
    /// The HMAC with the key absorbed: cloned for each name, so the key's two blocks are
    /// hashed once per batch, not once per name.
    keyed: hmac::Hmac<sha2::Sha256>,
}

impl EntryNamer {
    /// The namer of the catalogue `conn` opens (its key, made by the migrations).
    pub fn of_catalogue(conn: &mut DbConn) -> Result<EntryNamer, StoreError> {
        use hmac::KeyInit as _;
        let key = catalogue_key(conn)?;
        Ok(EntryNamer {
            keyed: hmac::Hmac::new_from_slice(&key).expect("HMAC takes a key of any length"),
        })
    }

    /// The name of the entry that the record `node_id/id` opens.
    pub fn name(&self, node_id: &str, id: &str) -> String {
        use hmac::Mac as _;
        let mut mac = self.keyed.clone();
        mac.update(node_id.as_bytes());
        mac.update(b"/");
        mac.update(id.as_bytes());
        format!("u{}", hex::encode(&mac.finalize().into_bytes()[..12]))
    }
}

/// The catalogue's own secret (`catalogue_meta.entry_name_key`, made by the migrations and kept
/// in its dumps): the key of entry names, and the root of the keys that seal the positions
/// readers page with ([`crate::access::CursorSeal`]), so that every replica of one catalogue
/// names and seals alike.
pub fn catalogue_key(conn: &mut DbConn) -> Result<Vec<u8>, StoreError> {
    use crate::db::schema::catalogue_meta as m;
    let hex_key: String = m::table
        .find("entry_name_key")
        .select(m::value)
        .first(conn)?;
    hex::decode(hex_key.trim())
        .map_err(|e| StoreError::Corrupt(format!("catalogue_meta.entry_name_key is not hex: {e}")))
}

/// Takes `n` consecutive change ids (gap-free, in commit order); returns the first.
fn take_change_ids(conn: &mut DbConn, n: i64) -> Result<i64, diesel::result::Error> {
    use crate::db::schema::counters::dsl as c;
    let last: i64 = diesel::update(c::counters.filter(c::name.eq("change_id")))
        .set(c::value.eq(c::value + n))
        .returning(c::value)
        .get_result(conn)?;
    Ok(last - n + 1)
}

/// Applies the accepted entries of a verified batch and moves the node's chain forward, in
/// the caller's transaction. `accepted` are entry indexes that passed validation and the
/// secrecy gate; `metas` their extracted metadata (upserts only). Returns `Ok(None)` if the
/// chain moved meanwhile (another transport or replica applied this batch first).
pub fn apply_batch(
    conn: &mut DbConn,
    batch: &VerifiedBatch,
    transport: &str,
    accepted: &[(usize, Option<RecordMeta>)],
) -> Result<Option<ApplyStats>, StoreError> {
    let header = batch.header();
    let node_id = header.node_id.as_str();
    let at = now();

    // Claim the chain step first: only one applier wins a batch.
    let next = batch.next_position();
    let moved = if header.batch_seq == 1 {
        let exists: i64 = node_chain::table
            .filter(node_chain::node_id.eq(node_id))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            0
        } else {
            diesel::insert_into(node_chain::table)
                .values((
                    node_chain::node_id.eq(node_id),
                    node_chain::next_batch_seq.eq(next.next_batch_seq as i64),
                    node_chain::next_seq.eq(next.next_seq as i64),
                    node_chain::prev_batch_hash.eq(hex::encode(next.prev_batch_hash)),
                    node_chain::updated_at.eq(&at),
                    node_chain::last_created_at.eq(&header.created_at),
                ))
                .execute(conn)?
        }
    } else {
        diesel::update(
            node_chain::table
                .filter(node_chain::node_id.eq(node_id))
                .filter(node_chain::next_batch_seq.eq(header.batch_seq as i64)),
        )
        .set((
            node_chain::next_batch_seq.eq(next.next_batch_seq as i64),
            node_chain::next_seq.eq(next.next_seq as i64),
            node_chain::prev_batch_hash.eq(hex::encode(next.prev_batch_hash)),
            node_chain::updated_at.eq(&at),
            // As signed: the bound the next batch's created_at is checked against.
            node_chain::last_created_at.eq(&header.created_at),
        ))
        .execute(conn)?
    };
    if moved == 0 {
        return Ok(None);
    }
    diesel::insert_into(batches::table)
        .values((
            batches::node_id.eq(node_id),
            batches::batch_seq.eq(header.batch_seq as i64),
            batches::hash.eq(batch.batch_hash_hex()),
            batches::header.eq(serde_json::to_string(header).expect("a header is JSON")),
            batches::signature.eq(batch.signature()),
            batches::transport.eq(transport),
            batches::received_at.eq(&at),
        ))
        .execute(conn)?;

    // What the catalogue holds for these ids now.
    let entries = batch.entries();
    let ids: Vec<&str> = accepted
        .iter()
        .map(|(i, _)| entries[*i].id.as_str())
        .collect();
    let mut current: HashMap<String, (i64, String, i64, String, String)> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(String, i64, String, i64, String, String)> = records::table
            .filter(records::node_id.eq(node_id))
            .filter(records::id.eq_any(chunk))
            .select((
                records::id,
                records::version,
                records::unified_id,
                records::first_change,
                records::secrecy,
                records::kind,
            ))
            .load(conn)?;
        for (id, version, unified, first, secrecy, kind) in rows {
            current.insert(id, (version, unified, first, secrecy, kind));
        }
    }

    // Which entries change something (a batch may carry several versions of one record).
    let mut held: HashMap<&str, i64> = current.iter().map(|(k, v)| (k.as_str(), v.0)).collect();
    let mut to_apply: Vec<(usize, &Option<RecordMeta>)> = Vec::new();
    let mut stale = 0;
    let mut refused = Vec::new();
    for (index, meta) in accepted {
        let e = &entries[*index];
        // One id is one record of one kind for good: re-publishing it as the other kind would
        // turn a project into an achievement under every link and merge made of it.
        if let Some(held_kind) = current.get(e.id.as_str()).map(|c| c.4.as_str())
            && held_kind != e.kind.as_str()
        {
            refused.push((
                *index,
                format!(
                    "invalid: {} was published as {held_kind}, not {}",
                    e.id,
                    e.kind.as_str()
                ),
            ));
            continue;
        }
        if held
            .get(e.id.as_str())
            .is_some_and(|v| *v >= e.version as i64)
        {
            stale += 1;
            continue;
        }
        held.insert(e.id.as_str(), e.version as i64);
        to_apply.push((*index, meta));
    }
    if to_apply.is_empty() {
        return Ok(Some(ApplyStats {
            applied: 0,
            stale,
            refused,
        }));
    }

    // Merge keys already known.
    let kind_of = |e: &Entry| e.kind.as_str();
    let mut key_owner: HashMap<(String, String), String> = HashMap::new();
    let wanted: Vec<(String, String)> = to_apply
        .iter()
        .flat_map(|(i, meta)| {
            let kind = kind_of(&entries[*i]).to_owned();
            meta.iter()
                .flat_map(|m| m.merge_keys.iter())
                .map(move |k| (kind.clone(), k.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    for kind in [RecordKind::Achievement, RecordKind::FundedProject] {
        let keys: Vec<&str> = wanted
            .iter()
            .filter(|(k, _)| k == kind.as_str())
            .map(|(_, key)| key.as_str())
            .collect();
        for chunk in keys.chunks(CHUNK) {
            let rows: Vec<(String, String)> = merge_keys::table
                .filter(merge_keys::kind.eq(kind.as_str()))
                .filter(merge_keys::merge_key.eq_any(chunk))
                .select((merge_keys::merge_key, merge_keys::unified_id))
                .load(conn)?;
            for (key, unified) in rows {
                key_owner.insert((kind.as_str().to_owned(), key), unified);
            }
        }
    }

    // `pat:` and `proj:` keys join only records of different nodes: which nodes are in the entries they
    // name already?
    let pat_owners: Vec<String> = key_owner
        .iter()
        .filter(|((_, k), _)| across_nodes_only(k))
        .map(|(_, u)| u.clone())
        .collect();
    let mut owner_sources: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for chunk in pat_owners.chunks(CHUNK) {
        let rows: Vec<(String, String, String)> = records::table
            .filter(records::unified_id.eq_any(chunk))
            .select((records::unified_id, records::node_id, records::id))
            .load(conn)?;
        for (u, n, i) in rows {
            owner_sources.entry(u).or_default().push((n, i));
        }
    }
    let namer = EntryNamer::of_catalogue(conn)?;
    let first_change = take_change_ids(conn, to_apply.len() as i64)?;
    let mut versions = Vec::with_capacity(to_apply.len());
    let mut new_changes = Vec::with_capacity(to_apply.len());
    let mut rows: HashMap<&str, RecordRow> = HashMap::new();
    let mut new_keys: Vec<NewMergeKey> = Vec::new();
    let mut funding: Vec<NewFunding> = Vec::new();
    for (n, (index, meta)) in to_apply.iter().enumerate() {
        let e = &entries[*index];
        let change_id = first_change + n as i64;
        let kind = kind_of(e);
        let existing = current.get(e.id.as_str());
        // Unified entry: the owner of the first known merge key, else where it was, else new.
        // A `pat:` or `proj:` key joins only an entry in which this node has no other record.
        let unified = meta
            .iter()
            .flat_map(|m| m.merge_keys.iter())
            .find_map(|k| {
                let owner = key_owner.get(&(kind.to_owned(), k.clone()))?;
                if across_nodes_only(k) {
                    let other_here = |n: &str, i: &str| n == node_id && i != e.id;
                    let stored = owner_sources
                        .get(owner)
                        .is_some_and(|v| v.iter().any(|(n, i)| other_here(n, i)));
                    let pending = rows
                        .values()
                        .any(|r| r.unified_id == *owner && other_here(&r.node_id, &r.id));
                    if stored || pending {
                        return None;
                    }
                }
                Some(owner.clone())
            })
            .or_else(|| rows.get(e.id.as_str()).map(|r| r.unified_id.clone()))
            .or_else(|| existing.map(|c| c.1.clone()))
            .unwrap_or_else(|| namer.name(node_id, &e.id));
        if let Some(m) = meta {
            for k in &m.merge_keys {
                let slot = (kind.to_owned(), k.clone());
                if let std::collections::hash_map::Entry::Vacant(v) = key_owner.entry(slot) {
                    v.insert(unified.clone());
                    new_keys.push(NewMergeKey {
                        kind: kind.to_owned(),
                        merge_key: k.clone(),
                        unified_id: unified.clone(),
                    });
                }
            }
        }
        let was_in = rows
            .get(e.id.as_str())
            .map(|r| r.unified_id.clone())
            .or_else(|| existing.map(|c| c.1.clone()));
        let moved_from = was_in.filter(|w| *w != unified);
        let first = rows
            .get(e.id.as_str())
            .map(|r| r.first_change)
            .or_else(|| existing.map(|c| c.2))
            .unwrap_or(change_id);
        let row = match (e.op, meta) {
            (Op::Upsert, Some(m)) => RecordRow {
                node_id: node_id.to_owned(),
                id: e.id.clone(),
                kind: kind.to_owned(),
                version: e.version as i64,
                withdrawn: 0,
                secrecy: m.secrecy.clone(),
                title: m.title.clone(),
                registration_no: m.registration_no.clone(),
                program: m.program.clone(),
                project_no: m.project_no.clone(),
                unified_id: unified.clone(),
                first_change: first,
                last_change: change_id,
            },
            _ => {
                // A withdrawal keeps the row (and so the history and the merge) but empties it;
                // it keeps the level the record had, so that a reader who could never see the
                // record does not learn of it now. Unknown stays unknown: never public.
                let previous = rows.get(e.id.as_str()).cloned();
                let previous_level = previous
                    .as_ref()
                    .map(|p| p.secrecy.clone())
                    .or_else(|| existing.map(|c| c.3.clone()))
                    .unwrap_or_else(|| "unknown".into());
                RecordRow {
                    node_id: node_id.to_owned(),
                    id: e.id.clone(),
                    kind: kind.to_owned(),
                    version: e.version as i64,
                    withdrawn: 1,
                    secrecy: previous_level,
                    title: previous
                        .as_ref()
                        .map(|p| p.title.clone())
                        .unwrap_or_default(),
                    registration_no: None,
                    program: None,
                    project_no: None,
                    unified_id: unified.clone(),
                    first_change: first,
                    last_change: change_id,
                }
            }
        };
        if let Some(m) = meta {
            for (p, no, classes) in &m.funding {
                funding.push(NewFunding {
                    node_id,
                    id: e.id.clone(),
                    program: p.clone(),
                    project_no: no.clone(),
                    classes: classes.names(),
                });
            }
        }
        versions.push(NewVersion {
            node_id,
            id: &e.id,
            version: e.version as i64,
            kind,
            op: e.op.as_str(),
            seq: e.seq as i64,
            batch_seq: header.batch_seq as i64,
            // Canonical JSON is written from Rust strings: always UTF-8.
            entry: std::str::from_utf8(batch.canonical_entry(*index).unwrap_or_default())
                .expect("canonical JSON is UTF-8")
                .to_owned(),
            proof: serde_json::to_string(&batch.inclusion_proof(*index)).expect("a proof is JSON"),
            applied_at: &at,
            disclosures: (e.op == Op::Upsert).then(|| {
                serde_json::to_string(&batch.disclosures(*index)).expect("strings are JSON")
            }),
        });
        // Who could see this source before or after the change.
        let level_before = rows
            .get(e.id.as_str())
            .map(|r| r.secrecy.clone())
            .or_else(|| existing.map(|c| c.3.clone()));
        let source_audience = level_before
            .iter()
            .chain(std::iter::once(&row.secrecy))
            .map(|l| audience_of_level(l))
            .min()
            .unwrap_or(AUDIENCE_NOBODY);
        new_changes.push(NewChange {
            change_id,
            node_id,
            id: &e.id,
            kind,
            version: e.version as i64,
            op: e.op.as_str(),
            unified_id: unified,
            at: &at,
            moved_from,
            source_audience,
        });
        rows.insert(e.id.as_str(), row);
    }

    // Write everything in few statements. Only sources the catalogue held before are deleted
    // and written again: a new source has nothing to replace.
    let row_list: Vec<RecordRow> = rows.into_values().collect();
    let held_before: Vec<&str> = row_list
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| current.contains_key(*id))
        .collect();
    let mut seen = std::collections::HashSet::new();
    funding.retain(|f| seen.insert((f.id.clone(), f.program.clone(), f.project_no.clone())));
    let applied = Applied {
        node_id,
        held_before: &held_before,
        records: &row_list,
        versions: &versions,
        changes: &new_changes,
        merge_keys: &new_keys,
        funding: &funding,
    };
    match conn {
        DbConn::Postgresql(pg) => applied.write_postgres(pg)?,
        DbConn::Sqlite(_) => applied.write_rows(conn)?,
    }
    Ok(Some(ApplyStats {
        applied: to_apply.len(),
        stale,
        refused,
    }))
}

/// The rows one batch writes, built in memory first so that each table is written in few
/// statements.
struct Applied<'a> {
    node_id: &'a str,
    /// Ids of these records the catalogue held before this batch (their rows are replaced).
    held_before: &'a [&'a str],
    records: &'a [RecordRow],
    versions: &'a [NewVersion<'a>],
    changes: &'a [NewChange<'a>],
    /// Keys first seen in this batch.
    merge_keys: &'a [NewMergeKey],
    /// Funding references, without repeats.
    funding: &'a [NewFunding<'a>],
}

impl Applied<'_> {
    /// Portable: multi-row `INSERT … VALUES`, chunked under SQLite's limit of bound values.
    fn write_rows(&self, conn: &mut DbConn) -> Result<(), StoreError> {
        let node_id = self.node_id;
        for chunk in self.held_before.chunks(CHUNK) {
            diesel::delete(
                records::table
                    .filter(records::node_id.eq(node_id))
                    .filter(records::id.eq_any(chunk)),
            )
            .execute(conn)?;
            diesel::delete(
                record_funding::table
                    .filter(record_funding::node_id.eq(node_id))
                    .filter(record_funding::id.eq_any(chunk)),
            )
            .execute(conn)?;
        }
        for chunk in self.records.chunks(CHUNK / 4) {
            rix_runtime::batch_insert!(conn, diesel::insert_into(records::table).values(chunk))?;
        }
        for chunk in self.versions.chunks(CHUNK / 4) {
            rix_runtime::batch_insert!(
                conn,
                diesel::insert_into(record_versions::table).values(chunk)
            )?;
        }
        for chunk in self.changes.chunks(CHUNK / 4) {
            rix_runtime::batch_insert!(conn, diesel::insert_into(changes::table).values(chunk))?;
        }
        for chunk in self.merge_keys.chunks(CHUNK / 2) {
            rix_runtime::batch_insert!(conn, diesel::insert_into(merge_keys::table).values(chunk))?;
        }
        for chunk in self.funding.chunks(CHUNK / 2) {
            rix_runtime::batch_insert!(
                conn,
                diesel::insert_into(record_funding::table).values(chunk)
            )?;
        }
        Ok(())
    }

    /// PostgreSQL: one statement per table whatever the batch's size. Rows no table holds yet
    /// (new sources, versions, changes, merge keys, funding references) go by `COPY` in its
    /// binary form: no array to build, send as text and spread, and the server inserts the rows
    /// a page at a time (what is left of their cost is their indexes). Sources held before are
    /// upserted in place from one array per column (the text of that statement never changes,
    /// so a connection prepares it once).
    fn write_postgres(&self, conn: &mut diesel::PgConnection) -> Result<(), StoreError> {
        use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
        let node_id = self.node_id;
        fn column<'r, T: 'r, U>(rows: &[&'r T], f: impl Fn(&'r T) -> U) -> Vec<U> {
            rows.iter().map(|r| f(r)).collect()
        }

        if !self.held_before.is_empty() {
            diesel::delete(
                record_funding::table
                    .filter(record_funding::node_id.eq(node_id))
                    .filter(record_funding::id.eq_any(self.held_before)),
            )
            .execute(conn)?;
        }
        let held: std::collections::HashSet<&str> = self.held_before.iter().copied().collect();
        let (replaced, new): (Vec<&RecordRow>, Vec<&RecordRow>) = self
            .records
            .iter()
            .partition(|r| held.contains(r.id.as_str()));
        if !new.is_empty() {
            diesel::copy_from(records::table)
                .from_insertable(new)
                .execute(conn)?;
        }
        let r = &replaced;
        if !r.is_empty() {
            diesel::sql_query(
                "INSERT INTO records (node_id, id, kind, version, withdrawn, secrecy, title, \
                 registration_no, program, project_no, unified_id, first_change, last_change) \
                 SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::int8[], $5::int4[], \
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
                 $12::int8[], $13::int8[]) AS u \
                 ON CONFLICT (node_id, id) DO UPDATE SET kind = EXCLUDED.kind, \
                 version = EXCLUDED.version, withdrawn = EXCLUDED.withdrawn, \
                 secrecy = EXCLUDED.secrecy, title = EXCLUDED.title, \
                 registration_no = EXCLUDED.registration_no, program = EXCLUDED.program, \
                 project_no = EXCLUDED.project_no, unified_id = EXCLUDED.unified_id, \
                 first_change = EXCLUDED.first_change, last_change = EXCLUDED.last_change",
            )
            .bind::<Text, _>(node_id)
            .bind::<Array<Text>, _>(column(r, |r| r.id.as_str()))
            .bind::<Array<Text>, _>(column(r, |r| r.kind.as_str()))
            .bind::<Array<BigInt>, _>(column(r, |r| r.version))
            .bind::<Array<Integer>, _>(column(r, |r| r.withdrawn))
            .bind::<Array<Text>, _>(column(r, |r| r.secrecy.as_str()))
            .bind::<Array<Text>, _>(column(r, |r| r.title.as_str()))
            .bind::<Array<Nullable<Text>>, _>(column(r, |r| r.registration_no.as_deref()))
            .bind::<Array<Nullable<Text>>, _>(column(r, |r| r.program.as_deref()))
            .bind::<Array<Nullable<Text>>, _>(column(r, |r| r.project_no.as_deref()))
            .bind::<Array<Text>, _>(column(r, |r| r.unified_id.as_str()))
            .bind::<Array<BigInt>, _>(column(r, |r| r.first_change))
            .bind::<Array<BigInt>, _>(column(r, |r| r.last_change))
            .execute(conn)?;
        }

        if !self.versions.is_empty() {
            diesel::copy_from(record_versions::table)
                .from_insertable(self.versions)
                .execute(conn)?;
            diesel::copy_from(changes::table)
                .from_insertable(self.changes)
                .execute(conn)?;
        }
        if !self.merge_keys.is_empty() {
            diesel::copy_from(merge_keys::table)
                .from_insertable(self.merge_keys)
                .execute(conn)?;
        }
        if !self.funding.is_empty() {
            diesel::copy_from(record_funding::table)
                .from_insertable(self.funding)
                .execute(conn)?;
        }
        Ok(())
    }
}

/// One source of a unified entry.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Source {
    /// Publishing node.
    pub node_id: String,
    /// Its record id.
    pub id: String,
    /// Version held.
    pub version: i64,
    /// Withdrawn by this source.
    pub withdrawn: bool,
    /// The change that first brought this source in (merge precedence; not shown to readers).
    #[serde(skip)]
    pub first_change: i64,
    /// The record's secrecy level (its last one, if withdrawn): who may know of this source.
    #[serde(skip)]
    pub secrecy: String,
}

impl Source {
    /// Whether a reader with `entitlements` may know of this source at all.
    pub fn visible_to(&self, entitlements: Entitlements) -> bool {
        SecrecyLevel::parse(&self.secrecy).is_some_and(|l| entitlements.may_see(l))
    }
}

/// A unified entry as the catalogue holds it (before any access filter).
///
/// What a reader sees of it depends on who reads: [`Unified::primary_for`],
/// [`Unified::record_for`] and [`Unified::sources_for`] count only sources the reader may see,
/// so an internal source merged into a public entry is invisible to a public reader — not
/// listed, not counted, not the one whose fields show.
#[derive(Debug, Clone)]
pub struct Unified {
    /// Unified id (global id of the first source).
    pub unified_id: String,
    /// Kind.
    pub kind: String,
    /// The full record of the primary source for internal readers (`None` if every source
    /// withdrew); still sealed if read with [`Reading::Sealed`]. Use [`Unified::record_for`]
    /// for a given reader.
    pub record: Option<Value>,
    /// The primary source for internal readers.
    pub primary: Option<Source>,
    /// Every source, active first, oldest first.
    pub sources: Vec<Source>,
    /// The primary for public readers and its record, when it is not `primary` (the oldest
    /// active source is internal, and a public one exists too).
    pub public: Option<(Source, Value)>,
}

impl Unified {
    /// The reader's primary source: the oldest active source they may see.
    pub fn primary_for(&self, entitlements: Entitlements) -> Option<&Source> {
        self.sources
            .iter()
            .find(|s| !s.withdrawn && s.visible_to(entitlements))
    }

    /// The full record of the reader's primary source (not yet cut to the reader's view).
    pub fn record_for(&self, entitlements: Entitlements) -> Option<&Value> {
        let primary = self.primary_for(entitlements)?;
        if self.primary.as_ref() == Some(primary) {
            return self.record.as_ref();
        }
        match &self.public {
            Some((s, record)) if s == primary => Some(record),
            _ => None,
        }
    }

    /// [`Unified::record_for`], taking the record out of the entry instead of borrowing it.
    pub fn into_record_for(self, entitlements: Entitlements) -> Option<Value> {
        let primary = self.primary_for(entitlements)?.clone();
        if self.primary.as_ref() == Some(&primary) {
            return self.record;
        }
        match self.public {
            Some((s, record)) if s == primary => Some(record),
            _ => None,
        }
    }

    /// The sources a reader may know of, primary first.
    pub fn sources_for(&self, entitlements: Entitlements) -> Vec<&Source> {
        self.sources
            .iter()
            .filter(|s| s.visible_to(entitlements))
            .collect()
    }

    /// Who may see the entry now ([`AUDIENCE_PUBLIC`]…).
    pub fn audience(&self) -> i64 {
        self.sources
            .iter()
            .filter(|s| !s.withdrawn)
            .map(|s| audience_of_level(&s.secrecy))
            .min()
            .unwrap_or(AUDIENCE_NOBODY)
    }
}

/// The full record a source currently publishes: its current version's signed entry with every
/// disclosure put back.
pub fn current_record(
    conn: &mut DbConn,
    node_id: &str,
    id: &str,
    version: i64,
) -> Result<Option<Value>, StoreError> {
    let entry: Option<(String, Option<String>)> = record_versions::table
        .find((node_id, id, version))
        .select((record_versions::entry, record_versions::disclosures))
        .first(conn)
        .optional()?;
    Ok(entry.and_then(|(e, d)| full_record(&e, d.as_deref())))
}

/// The full record of a stored entry (placeholder form) and its stored disclosures. `None` if
/// either does not read back, which only a damaged catalogue gives: then nothing is shown.
pub fn full_record(entry: &str, disclosures: Option<&str>) -> Option<Value> {
    let mut record = sealed_record(entry)?;
    let texts: Vec<String> = match disclosures {
        Some(d) => serde_json::from_str(d).ok()?,
        None => Vec::new(),
    };
    let parsed = texts
        .iter()
        .enumerate()
        .map(|(i, t)| disclosure::Disclosure::parse(t, i))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    disclosure::reveal(&mut record, &parsed, true).ok()?;
    Some(record)
}

/// The record of a stored entry as signed (placeholder form), no disclosure put back. `None`
/// if it does not read back.
fn sealed_record(entry: &str) -> Option<Value> {
    serde_json::from_str::<Value>(entry)
        .ok()
        .and_then(|mut e| e.get_mut("record").map(Value::take))
}

/// How much of each record a read of the catalogue puts back. Records are stored as signed,
/// their sealed values placeholders, with the disclosures beside them (batch format 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Every disclosure put back: the full record. For readers entitled to some sealed class,
    /// and for record pages, which also pick each reader's disclosures out of it.
    Full,
    /// No disclosure read: the records keep their placeholders, which the access filter
    /// removes with everything else the reader may not see ([`crate::access`]).
    Sealed,
}

impl Reading {
    /// What a read for a reader with `entitlements` needs. A reader entitled to neither
    /// commercial nor personal values (public, internal) receives no disclosure
    /// ([`crate::access::AccessFilter::disclosures`]), so putting them back would only have them
    /// cut again — at a parse and a SHA-256 each, a fifth of a public export's time — and a
    /// value sealed where no rule hides it (a node that sealed more than needed) stays hidden
    /// from them, as its disclosure does.
    pub fn for_reader(entitlements: Entitlements) -> Reading {
        Reading::for_readers([entitlements])
    }

    /// What one read serving several readers at once needs: full records if any of them may
    /// see a sealed value.
    pub fn for_readers(readers: impl IntoIterator<Item = Entitlements>) -> Reading {
        if readers.into_iter().any(|e| e.commercial || e.personal) {
            Reading::Full
        } else {
            Reading::Sealed
        }
    }
}

/// The unified entry of `unified_id`.
pub fn unified(conn: &mut DbConn, unified_id: &str) -> Result<Option<Unified>, StoreError> {
    unified_reading(conn, unified_id, Reading::Full)
}

/// [`unified`], its records read as `reading` says.
pub fn unified_reading(
    conn: &mut DbConn,
    unified_id: &str,
    reading: Reading,
) -> Result<Option<Unified>, StoreError> {
    Ok(unified_many_reading(conn, &[unified_id], reading)?.remove(unified_id))
}

/// The unified entries of `unified_ids` that exist, by id, in a few statements per few
/// hundred entries rather than two per entry: what the search index reads as it catches up.
pub fn unified_many(
    conn: &mut DbConn,
    unified_ids: &[&str],
) -> Result<HashMap<String, Unified>, StoreError> {
    unified_many_reading(conn, unified_ids, Reading::Full)
}

/// [`unified_many`], each record read as `reading` says: with [`Reading::Sealed`] the records
/// are in placeholder form, fit only for [`crate::access::AccessFilter::view`].
pub fn unified_many_reading(
    conn: &mut DbConn,
    unified_ids: &[&str],
    reading: Reading,
) -> Result<HashMap<String, Unified>, StoreError> {
    type SourceRow = (String, String, String, String, i64, i32, i64, String);
    let internal = Entitlements {
        internal: true,
        ..Entitlements::PUBLIC
    };
    let mut out: HashMap<String, Unified> = HashMap::with_capacity(unified_ids.len());
    for chunk in unified_ids.chunks(CHUNK) {
        let rows: Vec<SourceRow> = records::table
            .filter(records::unified_id.eq_any(chunk))
            .order((
                records::unified_id.asc(),
                records::withdrawn.asc(),
                records::first_change.asc(),
            ))
            .select((
                records::unified_id,
                records::node_id,
                records::id,
                records::kind,
                records::version,
                records::withdrawn,
                records::first_change,
                records::secrecy,
            ))
            .load(conn)?;
        let mut entries: Vec<Unified> = Vec::new();
        for (unified_id, node_id, id, kind, version, withdrawn, first_change, secrecy) in rows {
            let source = Source {
                node_id,
                id,
                version,
                withdrawn: withdrawn != 0,
                first_change,
                secrecy,
            };
            match entries.last_mut() {
                Some(u) if u.unified_id == unified_id => u.sources.push(source),
                _ => entries.push(Unified {
                    unified_id,
                    kind,
                    record: None,
                    primary: None,
                    sources: vec![source],
                    public: None,
                }),
            }
        }
        // The primaries (for internal and for public readers) and their records, one
        // statement per publishing node.
        let mut wanted: Vec<Source> = Vec::new();
        for u in &mut entries {
            u.primary = u.primary_for(internal).cloned();
            wanted.extend(u.primary.clone());
            if let Some(p) = u.primary_for(Entitlements::PUBLIC)
                && Some(p) != u.primary.as_ref()
            {
                wanted.push(p.clone());
            }
        }
        let mut by_node: HashMap<&str, (Vec<&str>, BTreeSet<i64>)> = HashMap::new();
        for p in &wanted {
            let (ids, versions) = by_node.entry(&p.node_id).or_default();
            ids.push(&p.id);
            versions.insert(p.version);
        }
        let wanted_versions: HashSet<(&str, &str, i64)> = wanted
            .iter()
            .map(|w| (w.node_id.as_str(), w.id.as_str(), w.version))
            .collect();
        let mut held: HashMap<(String, String, i64), Value> = HashMap::new();
        for (node_id, (ids, versions)) in by_node {
            // Only the versions wanted (most often each id's one current version): the
            // statement reads no older entry it would parse for nothing, and the few rows of
            // another id's version number it still returns are left below.
            let versions: Vec<i64> = versions.into_iter().collect();
            let wanted_here = record_versions::table
                .filter(record_versions::node_id.eq(node_id))
                .filter(record_versions::id.eq_any(&ids))
                .filter(record_versions::version.eq_any(&versions));
            let is_wanted =
                |id: &str, version: i64| wanted_versions.contains(&(node_id, id, version));
            let found: Vec<(String, i64, Option<Value>)> = match reading {
                Reading::Full => wanted_here
                    .select((
                        record_versions::id,
                        record_versions::version,
                        record_versions::entry,
                        record_versions::disclosures,
                    ))
                    .load::<(String, i64, String, Option<String>)>(conn)?
                    .into_iter()
                    .filter(|(id, version, ..)| is_wanted(id, *version))
                    .map(|(id, version, entry, disclosures)| {
                        (id, version, full_record(&entry, disclosures.as_deref()))
                    })
                    .collect(),
                Reading::Sealed => wanted_here
                    .select((
                        record_versions::id,
                        record_versions::version,
                        record_versions::entry,
                    ))
                    .load::<(String, i64, String)>(conn)?
                    .into_iter()
                    .filter(|(id, version, _)| is_wanted(id, *version))
                    .map(|(id, version, entry)| (id, version, sealed_record(&entry)))
                    .collect(),
            };
            for (id, version, record) in found {
                if let Some(r) = record {
                    held.insert((node_id.to_owned(), id, version), r);
                }
            }
        }
        for mut u in entries {
            if let Some(p) = &u.primary {
                u.record = held.remove(&(p.node_id.clone(), p.id.clone(), p.version));
            }
            if let Some(p) = u.primary_for(Entitlements::PUBLIC).cloned()
                && Some(&p) != u.primary.as_ref()
                && let Some(r) = held.remove(&(p.node_id.clone(), p.id.clone(), p.version))
            {
                u.public = Some((p, r));
            }
            out.insert(u.unified_id.clone(), u);
        }
    }
    Ok(out)
}

/// The unified id a source record belongs to, if a reader with `entitlements` may know of the
/// source at all.
pub fn unified_id_of(
    conn: &mut DbConn,
    node_id: &str,
    id: &str,
    entitlements: Entitlements,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String, String)> = records::table
        .find((node_id, id))
        .select((records::unified_id, records::secrecy))
        .first(conn)
        .optional()?;
    Ok(row
        .filter(|(_, level)| SecrecyLevel::parse(level).is_some_and(|l| entitlements.may_see(l)))
        .map(|(u, _)| u))
}

/// Projects an achievement is linked to, and achievements of a project: unified ids of active
/// records on the other side — as a reader with `entitlements` may know them: only through
/// sources they may see, and only through funding references they may see.
pub fn links(
    conn: &mut DbConn,
    unified_id: &str,
    entitlements: Entitlements,
) -> Result<Vec<String>, StoreError> {
    type LinkRow = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    let level_ok =
        |secrecy: &str| SecrecyLevel::parse(secrecy).is_some_and(|l| entitlements.may_see(l));
    let classes_ok = |classes: &str| {
        (!classes.contains("commercial") || entitlements.commercial)
            && (!classes.contains("personal") || entitlements.personal)
    };
    let mine: Vec<LinkRow> = records::table
        .filter(records::unified_id.eq(unified_id))
        .filter(records::withdrawn.eq(0))
        .select((
            records::node_id,
            records::id,
            records::kind,
            records::program,
            records::project_no,
            records::secrecy,
        ))
        .load(conn)?;
    let mut out: Vec<String> = Vec::new();
    for (node_id, id, kind, program, project_no, secrecy) in mine {
        if !level_ok(&secrecy) {
            continue;
        }
        if kind == RecordKind::FundedProject.as_str() {
            if let (Some(p), Some(n)) = (program, project_no) {
                let ach: Vec<(String, String, String)> = record_funding::table
                    .inner_join(
                        records::table.on(records::node_id
                            .eq(record_funding::node_id)
                            .and(records::id.eq(record_funding::id))),
                    )
                    .filter(record_funding::program.eq(p))
                    .filter(record_funding::project_no.eq(n))
                    .filter(records::withdrawn.eq(0))
                    .select((
                        records::unified_id,
                        records::secrecy,
                        record_funding::classes,
                    ))
                    .load(conn)?;
                out.extend(
                    ach.into_iter()
                        .filter(|(_, s, c)| level_ok(s) && classes_ok(c))
                        .map(|(u, _, _)| u),
                );
            }
        } else {
            let refs: Vec<(String, String, String)> = record_funding::table
                .filter(record_funding::node_id.eq(&node_id))
                .filter(record_funding::id.eq(&id))
                .select((
                    record_funding::program,
                    record_funding::project_no,
                    record_funding::classes,
                ))
                .load(conn)?;
            for (p, n, _) in refs.into_iter().filter(|(_, _, c)| classes_ok(c)) {
                let projects: Vec<(String, String)> = records::table
                    .filter(records::kind.eq(RecordKind::FundedProject.as_str()))
                    .filter(records::program.eq(p))
                    .filter(records::project_no.eq(n))
                    .filter(records::withdrawn.eq(0))
                    .select((records::unified_id, records::secrecy))
                    .load(conn)?;
                out.extend(
                    projects
                        .into_iter()
                        .filter(|(_, s)| level_ok(s))
                        .map(|(u, _)| u),
                );
            }
        }
    }
    out.sort();
    out.dedup();
    out.retain(|u| u != unified_id);
    Ok(out)
}

/// Unified ids of every entry with at least one active source, by kind (tests, counts).
pub fn visible_unified_ids(conn: &mut DbConn, kind: RecordKind) -> Result<Vec<String>, StoreError> {
    let mut ids: Vec<String> = records::table
        .filter(records::kind.eq(kind.as_str()))
        .filter(records::withdrawn.eq(0))
        .select(records::unified_id)
        .distinct()
        .load(conn)?;
    ids.sort();
    Ok(ids)
}

/// One change of the catalogue: a source record's version applied (or withdrawn).
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct ChangeRow {
    /// Gap-free position in the change stream.
    pub change_id: i64,
    /// Publishing node.
    pub node_id: String,
    /// The node's record id.
    pub id: String,
    /// Record kind.
    pub kind: String,
    /// Version applied.
    pub version: i64,
    /// `upsert` or `withdraw`.
    pub op: String,
    /// The unified entry the record is in after the change.
    pub unified_id: String,
    /// The entry the record left, when the change moved it to another one (that entry
    /// changed too: it lost this source).
    pub moved_from: Option<String>,
    /// Who could see the changed source, before or after the change ([`AUDIENCE_PUBLIC`]…;
    /// `None` reads as nobody).
    pub source_audience: Option<i64>,
}

impl ChangeRow {
    /// Whether a reader with `entitlements` may hear of this change at all: only if they could
    /// see the changed source before or after it. A change to a source they never could see
    /// alters nothing they see.
    pub fn visible_to(&self, entitlements: Entitlements) -> bool {
        self.source_audience
            .is_some_and(|a| audience_visible(a, entitlements))
    }
}

impl ChangeRow {
    /// Every unified entry this change altered: the one it left first, then the one it is in.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        touched_entries(&self.unified_id, self.moved_from.as_deref())
    }
}

/// The entries a change touched: the one it left (a move), then the one it is in.
fn touched_entries<'a>(
    unified_id: &'a str,
    moved_from: Option<&'a str>,
) -> impl Iterator<Item = &'a str> {
    moved_from.into_iter().chain(std::iter::once(unified_id))
}

/// The change stream after `after`, oldest first.
pub fn changes_after(
    conn: &mut DbConn,
    after: i64,
    limit: i64,
) -> Result<Vec<ChangeRow>, StoreError> {
    Ok(changes::table
        .filter(changes::change_id.gt(after))
        .order(changes::change_id.asc())
        .limit(limit)
        .select((
            changes::change_id,
            changes::node_id,
            changes::id,
            changes::kind,
            changes::version,
            changes::op,
            changes::unified_id,
            changes::moved_from,
            changes::source_audience,
        ))
        .load(conn)?)
}

/// When the last change a reader with `entitlements` may hear of, at or before `upto`, was
/// applied (RFC 3339), or `None` if there is none: what a reader's view of the catalogue is
/// "last modified" at. A change they may not hear of ([`ChangeRow::visible_to`]) does not move
/// it, so its time is not told either.
pub fn last_visible_change_at(
    conn: &mut DbConn,
    upto: i64,
    entitlements: Entitlements,
) -> Result<Option<String>, StoreError> {
    let widest = if entitlements.internal {
        AUDIENCE_INTERNAL
    } else {
        AUDIENCE_PUBLIC
    };
    Ok(changes::table
        .filter(changes::change_id.le(upto))
        .filter(changes::source_audience.le(widest))
        .order(changes::change_id.desc())
        .select(changes::at)
        .first(conn)
        .optional()?)
}

/// The last change a reader with `entitlements` may hear of, at or before `upto` (0 when there
/// is none): where `/v1/changes` would leave that reader once it had read up to `upto`, since
/// the feed never moves a reader's position past a change they may not hear of
/// ([`ChangeRow::visible_to`]). A snapshot hands this position out, sealed.
pub fn last_visible_change_id(
    conn: &mut DbConn,
    upto: i64,
    entitlements: Entitlements,
) -> Result<i64, StoreError> {
    let widest = if entitlements.internal {
        AUDIENCE_INTERNAL
    } else {
        AUDIENCE_PUBLIC
    };
    let id: Option<i64> = changes::table
        .filter(changes::change_id.le(upto))
        .filter(changes::source_audience.le(widest))
        .select(diesel::dsl::max(changes::change_id))
        .first(conn)?;
    Ok(id.unwrap_or(0))
}

/// Up to `limit` unified ids after `after`, in order: every entry the catalogue holds (visible
/// to someone or not; the caller's access filter decides), a page at a time.
pub fn unified_ids_after(
    conn: &mut DbConn,
    after: &str,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(records::table
        .filter(records::unified_id.gt(after))
        .select(records::unified_id)
        .distinct()
        .order(records::unified_id.asc())
        .limit(limit)
        .load(conn)?)
}

/// Which catalogue `conn` opens: `catalogue_meta.catalogue_id`, made once by the migrations and
/// carried by every dump. Derived data (a search index) records it to notice being pointed at
/// another catalogue.
pub fn catalogue_id(conn: &mut DbConn) -> Result<String, StoreError> {
    use crate::db::schema::catalogue_meta as m;
    Ok(m::table.find("catalogue_id").select(m::value).first(conn)?)
}

/// A digest of change `change_id` exactly as the catalogue holds it (every column, and when it
/// was applied), or `None` when the catalogue holds no such change. Two catalogues that agree
/// on it applied the same change at that position: a catalogue restored from an older dump and
/// fed again gives its new changes the ids the lost ones had, but not their digests.
pub fn change_fingerprint(conn: &mut DbConn, change_id: i64) -> Result<Option<String>, StoreError> {
    use sha2::Digest as _;
    let row: Option<(String, String, String, i64, String, String, String)> = changes::table
        .find(change_id)
        .select((
            changes::node_id,
            changes::id,
            changes::kind,
            changes::version,
            changes::op,
            changes::unified_id,
            changes::at,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(node_id, id, kind, version, op, unified_id, at)| {
        let mut digest = sha2::Sha256::new();
        for part in [
            change_id.to_string(),
            node_id,
            id,
            kind,
            version.to_string(),
            op,
            unified_id,
            at,
        ] {
            // Length-prefixed, so that no two different rows hash the same parts.
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        hex::encode(&digest.finalize()[..16])
    }))
}

/// Where the change stream stands: its newest change id (0 when empty) and when the first
/// change after `after` was applied (`None` when there is none).
pub fn change_head(conn: &mut DbConn, after: i64) -> Result<(i64, Option<String>), StoreError> {
    let head: Option<i64> = changes::table
        .select(diesel::dsl::max(changes::change_id))
        .first(conn)?;
    let next_at: Option<String> = changes::table
        .filter(changes::change_id.gt(after))
        .order(changes::change_id.asc())
        .select(changes::at)
        .first(conn)
        .optional()?;
    Ok((head.unwrap_or(0), next_at))
}

// ---- The change stream as the OAI-PMH provider reads it (crate::oai) -------------------------
//
// An OAI item is a unified entry; its datestamp is the time of the newest change to it that
// the reader may hear of ([`ChangeRow::visible_to`]): changes to sources the reader never could
// see do not date, list or count anything. Times are RFC 3339 text (`now()`), compared as text
// against bounds written without the zone (`YYYY-MM-DDThh:mm:ss`), so that fractions of a
// second sort inside their second.

/// Every `source_audience` a reader with `entitlements` may hear of.
pub fn audiences_visible_to(entitlements: Entitlements) -> Vec<i64> {
    [AUDIENCE_PUBLIC, AUDIENCE_INTERNAL, AUDIENCE_NOBODY]
        .into_iter()
        .filter(|a| audience_visible(*a, entitlements))
        .collect()
}

/// One change as a harvest reads it: where it is in the stream, when it was applied, and the
/// entries it touched.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct DatedChange {
    /// Position in the change stream.
    pub change_id: i64,
    /// When it was applied (RFC 3339).
    pub at: String,
    /// Record kind.
    pub kind: String,
    /// The entry the record is in after the change.
    pub unified_id: String,
    /// The entry it left, when the change moved it.
    pub moved_from: Option<String>,
}

impl DatedChange {
    /// The entries the change touched, as [`ChangeRow::entries`] names them.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        touched_entries(&self.unified_id, self.moved_from.as_deref())
    }
}

/// The changes after `after` of sources of `audiences`, applied at or after `from` and before
/// `before` (zone-less RFC 3339 prefixes), of `kind` if given, oldest first, at most `limit`.
pub fn audience_changes_after(
    conn: &mut DbConn,
    after: i64,
    audiences: &[i64],
    from: Option<&str>,
    before: Option<&str>,
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<DatedChange>, StoreError> {
    let mut query = changes::table
        .filter(changes::change_id.gt(after))
        .filter(changes::source_audience.eq_any(audiences.to_vec()))
        .into_boxed();
    if let Some(from) = from {
        query = query.filter(changes::at.ge(from.to_owned()));
    }
    if let Some(before) = before {
        query = query.filter(changes::at.lt(before.to_owned()));
    }
    if let Some(kind) = kind {
        query = query.filter(changes::kind.eq(kind.to_owned()));
    }
    Ok(query
        .order(changes::change_id.asc())
        .limit(limit)
        .select((
            changes::change_id,
            changes::at,
            changes::kind,
            changes::unified_id,
            changes::moved_from,
        ))
        .load(conn)?)
}

/// For each of `entries` that a change of a source of `audiences` touched without moving the
/// source between entries: its newest such change and the latest time any of them was
/// applied, `(change_id, at)`. A change that moved a source ([`audience_moves`]) is heard of by
/// each entry on its own terms — the entry it left only if the reader could see the source
/// before, the one it joined only if after — which the change stream alone cannot say.
pub fn newest_unmoved_changes(
    conn: &mut DbConn,
    entries: &[&str],
    audiences: &[i64],
) -> Result<HashMap<String, (i64, String)>, StoreError> {
    let mut out: HashMap<String, (i64, String)> = HashMap::new();
    for chunk in entries.chunks(CHUNK) {
        let rows: Vec<(String, Option<i64>, Option<String>)> = changes::table
            .filter(changes::unified_id.eq_any(chunk))
            .filter(changes::moved_from.is_null())
            .filter(changes::source_audience.eq_any(audiences.to_vec()))
            .group_by(changes::unified_id)
            .select((
                changes::unified_id,
                diesel::dsl::max(changes::change_id),
                diesel::dsl::max(changes::at),
            ))
            .load(conn)?;
        for (entry, id, at) in rows {
            if let (Some(id), Some(at)) = (id, at) {
                out.insert(entry, (id, at));
            }
        }
    }
    Ok(out)
}

/// A change that moved a source from one entry to another.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct MoveRow {
    /// Position in the change stream.
    pub change_id: i64,
    /// When it was applied.
    pub at: String,
    /// Publishing node.
    pub node_id: String,
    /// The node's record id.
    pub id: String,
    /// The version that moved it.
    pub version: i64,
    /// The entry it joined.
    pub unified_id: String,
    /// The entry it left.
    pub moved_from: Option<String>,
}

fn select_moves() -> (
    changes::change_id,
    changes::at,
    changes::node_id,
    changes::id,
    changes::version,
    changes::unified_id,
    changes::moved_from,
) {
    (
        changes::change_id,
        changes::at,
        changes::node_id,
        changes::id,
        changes::version,
        changes::unified_id,
        changes::moved_from,
    )
}

/// The changes of sources of `audiences` that moved a source into or out of any of `entries`.
pub fn audience_moves(
    conn: &mut DbConn,
    entries: &[&str],
    audiences: &[i64],
) -> Result<Vec<MoveRow>, StoreError> {
    let mut out: Vec<MoveRow> = Vec::new();
    for chunk in entries.chunks(CHUNK) {
        let joined: Vec<MoveRow> = changes::table
            .filter(changes::unified_id.eq_any(chunk))
            .filter(changes::moved_from.is_not_null())
            .filter(changes::source_audience.eq_any(audiences.to_vec()))
            .select(select_moves())
            .load(conn)?;
        let left: Vec<MoveRow> = changes::table
            .filter(changes::moved_from.eq_any(chunk))
            .filter(changes::source_audience.eq_any(audiences.to_vec()))
            .select(select_moves())
            .load(conn)?;
        out.extend(joined);
        out.extend(left);
    }
    out.sort_by_key(|m| m.change_id);
    out.dedup_by_key(|m| m.change_id);
    Ok(out)
}

/// The changes of sources of `audiences` (of `kind` if given) that moved a source, applied at
/// or after `from`. Moves are rare (a merge, or a split when a key changes).
pub fn audience_moves_since(
    conn: &mut DbConn,
    audiences: &[i64],
    from: Option<&str>,
    kind: Option<&str>,
) -> Result<Vec<MoveRow>, StoreError> {
    let mut query = changes::table
        .filter(changes::moved_from.is_not_null())
        .filter(changes::source_audience.eq_any(audiences.to_vec()))
        .into_boxed();
    if let Some(from) = from {
        query = query.filter(changes::at.ge(from.to_owned()));
    }
    if let Some(kind) = kind {
        query = query.filter(changes::kind.eq(kind.to_owned()));
    }
    Ok(query.select(select_moves()).load(conn)?)
}

/// The record kind change `change_id` is of.
pub fn change_kind(conn: &mut DbConn, change_id: i64) -> Result<Option<String>, StoreError> {
    Ok(changes::table
        .find(change_id)
        .select(changes::kind)
        .first(conn)
        .optional()?)
}

/// The secrecy level a source had as of `version` (its latest upsert at or below it), or just
/// before it (`before`: below it). `None` when it had none (not yet published).
pub fn level_as_of(
    conn: &mut DbConn,
    node_id: &str,
    id: &str,
    version: i64,
    before: bool,
) -> Result<Option<String>, StoreError> {
    let mut query = record_versions::table
        .filter(record_versions::node_id.eq(node_id))
        .filter(record_versions::id.eq(id))
        .filter(record_versions::op.eq(Op::Upsert.as_str()))
        .into_boxed();
    query = if before {
        query.filter(record_versions::version.lt(version))
    } else {
        query.filter(record_versions::version.le(version))
    };
    let entry: Option<String> = query
        .order(record_versions::version.desc())
        .select(record_versions::entry)
        .first(conn)
        .optional()?;
    // The level is never a hidden value: it decides who may see the record at all.
    Ok(entry.and_then(|e| {
        let entry: Value = serde_json::from_str(&e).ok()?;
        let record = entry.get("record")?;
        SecrecyLevel::of_record(record).map(|l| l.as_str().to_owned())
    }))
}

/// How many entries a change of a source of `audiences` (of `kind` if given) touched without
/// moving it, whose latest such change was applied at or after `from` and before `before`: the
/// size of a complete harvest but for moves (see [`newest_unmoved_changes`]; the caller adds
/// those). Counted in the database (one grouping of the changes since `from`), so that no
/// entry name leaves it; the statement differs between the backends only in how it numbers
/// its parameters.
pub fn count_audience_entries(
    conn: &mut DbConn,
    audiences: &[i64],
    from: Option<&str>,
    before: Option<&str>,
    kind: Option<&str>,
) -> Result<u64, StoreError> {
    #[derive(QueryableByName)]
    struct EntryCount {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    // Audiences are our own integers, written as literals; every text is a parameter.
    let audience_list = audiences
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut binds: Vec<&str> = Vec::new();
    let mut side = |entry: &str, extra: &str| {
        // Latest at or after `from` exactly when some change is: only those need reading.
        let mut sql = format!(
            "SELECT {entry} AS entry, at FROM changes WHERE source_audience IN ({audience_list}){extra}"
        );
        if let Some(from) = from {
            sql.push_str(" AND at >= ?");
            binds.push(from);
        }
        if let Some(kind) = kind {
            sql.push_str(" AND kind = ?");
            binds.push(kind);
        }
        sql
    };
    let unmoved = side("unified_id", " AND moved_from IS NULL");
    let mut sql = format!(
        "SELECT COUNT(*) AS n FROM (SELECT entry FROM ({unmoved}) AS touched GROUP BY entry"
    );
    if let Some(before) = before {
        sql.push_str(" HAVING MAX(at) < ?");
        binds.push(before);
    }
    sql.push_str(") AS entries");
    macro_rules! count_on {
        ($conn:expr, $backend:ty, $sql:expr) => {{
            let mut query = diesel::sql_query($sql).into_boxed::<$backend>();
            for b in &binds {
                query = query.bind::<diesel::sql_types::Text, _>(b.to_string());
            }
            query.get_result::<EntryCount>($conn)?.n
        }};
    }
    let n = match conn {
        DbConn::Sqlite(c) => count_on!(c, diesel::sqlite::Sqlite, sql),
        DbConn::Postgresql(c) => {
            let mut numbered = String::with_capacity(sql.len() + 8);
            let mut i = 0;
            for ch in sql.chars() {
                if ch == '?' {
                    i += 1;
                    numbered.push_str(&format!("${i}"));
                } else {
                    numbered.push(ch);
                }
            }
            count_on!(c, diesel::pg::Pg, numbered)
        }
    };
    Ok(n.max(0) as u64)
}

/// The newest change, by time, applied before `before` (a zone-less RFC 3339 prefix): where a
/// walk of the changes applied since some later time may start without reading the stream
/// from its beginning (`None`: there is none; start at 0).
pub fn last_change_before(conn: &mut DbConn, before: &str) -> Result<Option<i64>, StoreError> {
    Ok(changes::table
        .filter(changes::at.lt(before.to_owned()))
        .order(changes::at.desc())
        .select(changes::change_id)
        .first(conn)
        .optional()?)
}

/// When the oldest change of a source of `audiences` was applied (`None`: no such change).
pub fn earliest_audience_change(
    conn: &mut DbConn,
    audiences: &[i64],
) -> Result<Option<String>, StoreError> {
    Ok(changes::table
        .filter(changes::source_audience.eq_any(audiences.to_vec()))
        .order(changes::change_id.asc())
        .select(changes::at)
        .first(conn)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_that_differ_in_form_only_normalise_alike() {
        assert_eq!(
            normalise_title("高比能 锂离子电池（正极）材料"),
            normalise_title("高比能锂离子电池正极材料")
        );
        assert_eq!(
            normalise_title("５G Ｎetwork"),
            normalise_title("5g network")
        );
        assert_ne!(normalise_title("锂电池"), normalise_title("钠电池"));
    }
}
