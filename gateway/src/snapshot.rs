//! Bulk snapshots: the whole catalogue as one reader sees it, in one file, from which a ministry
//! starts and then follows `/v1/changes`.
//!
//! A snapshot has one gzip-compressed JSON Lines file per *view* (the public view always, and
//! each entitlement set `[snapshots] views` names), and beside each a manifest: how many entries
//! of each kind it holds, the SHA-256 and size of the file, the schema version, and
//! `changes_after` — the sealed position to pass as `/v1/changes?after=` to hear of every change
//! since. Each line is `{"unified_id", "kind", "record"}`, the record exactly as `/v1/changes`
//! and `/v1/export?format=jsonl` give it to that reader (`Unified::record_for` then
//! [`AccessFilter::view`]): the one access filter, nothing of its own.
//!
//! What it guarantees:
//! - **One moment.** Every file of a snapshot is read in one read transaction (SQLite: one
//!   deferred transaction, which pins the WAL snapshot at its first read; PostgreSQL:
//!   `REPEATABLE READ`), so the entries reflect exactly the change stream up to its head then.
//! - **No count of hidden changes.** `changes_after` is sealed ([`crate::access::CursorSeal`]),
//!   and is the last change *that view may hear of* at or before that head — where the feed
//!   itself would have left the reader — so it neither carries a change id nor moves with
//!   changes hidden from the view. A view's manifest is its own file: a reader never sees
//!   another view's counts or position.
//! - **Never half a snapshot.** It is written under `.tmp-{id}` and renamed into place once
//!   every file is synced; listings skip dot-directories. The oldest beyond `keep` are deleted,
//!   and so is what a writer that died mid-write left (its lock, `.tmp-{id}.lock`, no longer
//!   held: `sweep_abandoned`), at the next snapshot.
//! - **Only views a reader may read.** A reader may list and download a view whose entitlements
//!   are all among their own ("at least that view": a view of fewer entitlements shows them
//!   nothing they may not see). Other views are absent from the list, and their files answer
//!   404 exactly as a file that does not exist.
//!
//! What it does not do: snapshot a search or filters (a ministry that wants a province filters
//! the file), or keep per-entry history (the catalogue does; the feed tells what changed).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::http::header::{self, HttpDate};
use actix_web::{HttpRequest, HttpResponse, web};
use flate2::Compression;
use flate2::write::GzEncoder;
use rix_schema::RecordKind;
use rix_schema::sensitivity::Entitlements;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::access::{AccessFilter, CursorSeal};
use crate::api::{ApiError, ReadState};
use crate::catalogue;
use crate::db::{Db, DbConn, StoreError};

/// The version of the record schemas the lines follow (the `v1` of their `$id`s).
pub const SCHEMA_VERSION: &str = "v1";

/// Entries read from the catalogue at a time.
const PAGE: i64 = 400;

/// `[snapshots]` in the gateway's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Where snapshots live (default `{data_dir}/snapshots`). Env: `RIX_SNAPSHOTS_DIR`.
    pub dir: Option<PathBuf>,
    /// Take one every this many hours while the gateway serves; 0 (the default) takes none
    /// but those `rix gateway snapshot` takes. Env: `RIX_SNAPSHOTS_EVERY_HOURS`.
    pub every_hours: f64,
    /// How many snapshots to keep (at least 1). Env: `RIX_SNAPSHOTS_KEEP`.
    pub keep: usize,
    /// Entitlement sets to write a view for besides the public one, each as
    /// `rix token add` takes them: `["internal", "internal,commercial"]`.
    pub views: Vec<String>,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            dir: None,
            every_hours: 0.0,
            keep: 3,
            views: Vec::new(),
        }
    }
}

impl SnapshotConfig {
    /// The views to write: public first, then those configured, each once.
    pub fn entitlements(&self) -> Result<Vec<Entitlements>, SnapshotError> {
        let mut out = vec![Entitlements::PUBLIC];
        for text in &self.views {
            let e: Entitlements =
                text.parse()
                    .map_err(|e: rix_schema::sensitivity::UnknownEntitlement| {
                        SnapshotError::Config(format!("snapshots.views: {e}"))
                    })?;
            if !out.contains(&e) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// What the keys cannot say alone.
    pub fn check(&self) -> Result<(), SnapshotError> {
        self.entitlements()?;
        if self.keep == 0 {
            return Err(SnapshotError::Config(
                "snapshots.keep must be at least 1 (the newest snapshot is what readers start from)"
                    .into(),
            ));
        }
        if !self.every_hours.is_finite() || self.every_hours < 0.0 {
            return Err(SnapshotError::Config(
                "snapshots.every_hours must be 0 (no schedule) or a positive number of hours"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The directory, `{data_dir}/snapshots` unless set.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| data_dir.join("snapshots"))
    }
}

/// Why a snapshot could not be taken or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The catalogue could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be written or read.
    #[error(
        "snapshot files at {path}: {source}; check that the directory exists, is writable and has room"
    )]
    Io {
        /// Which path.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// `[snapshots]` cannot be used.
    #[error("{0}")]
    Config(String),
}

impl From<diesel::result::Error> for SnapshotError {
    fn from(e: diesel::result::Error) -> Self {
        SnapshotError::Store(e.into())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The name of a view in file names and manifests: `public`, or its entitlements beyond public
/// joined by `-` (`internal-commercial`).
pub fn view_name(e: Entitlements) -> String {
    let names = e.names();
    if names.len() == 1 {
        "public".into()
    } else {
        names[1..].join("-")
    }
}

/// The entitlements a view name stands for (`None`: not a name [`view_name`] gives).
pub fn view_of_name(name: &str) -> Option<Entitlements> {
    let e: Entitlements = name.replace('-', ",").parse().ok()?;
    (view_name(e) == name).then_some(e)
}

/// Whether a reader with `reader` may read the view `view`: every entitlement of the view is
/// theirs.
pub fn may_read(reader: Entitlements, view: Entitlements) -> bool {
    (!view.internal || reader.internal)
        && (!view.commercial || reader.commercial)
        && (!view.personal || reader.personal)
}

/// One file of a snapshot, as its manifest describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileInfo {
    /// File name within the snapshot.
    pub name: String,
    /// Where to download it.
    pub url: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of its bytes (hex).
    pub sha256: String,
    /// Lines (entries) it holds.
    pub count: u64,
    /// Media type.
    pub content_type: String,
}

/// The manifest of one view of one snapshot (`{view}.manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The snapshot's id (its UTC time and a random suffix; sorts by time).
    pub id: String,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// The view's name ([`view_name`]).
    pub view: String,
    /// The entitlements of the view.
    pub entitlements: Vec<String>,
    /// The record schemas' version.
    pub schema_version: String,
    /// The `$id` of each kind's schema.
    pub schemas: BTreeMap<String, String>,
    /// The sealed position to follow `/v1/changes?after=` from; every change the view may
    /// hear of up to the moment of the snapshot is in the file.
    pub changes_after: String,
    /// Entries by kind, and `total`.
    pub counts: BTreeMap<String, u64>,
    /// The data files.
    pub files: Vec<FileInfo>,
    /// Where this manifest is.
    pub manifest_url: String,
}

/// What [`take`] wrote.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The snapshot's directory.
    pub dir: PathBuf,
    /// One manifest per view.
    pub manifests: Vec<Manifest>,
    /// Older snapshots deleted.
    pub pruned: Vec<String>,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct ViewWriter {
    entitlements: Entitlements,
    name: String,
    path: PathBuf,
    gz: GzEncoder<Hashing<BufWriter<std::fs::File>>>,
    counts: BTreeMap<String, u64>,
    position: i64,
}

/// Takes a snapshot of every view in `views` (public should be among them) into a new
/// directory under `root`, then keeps the newest `keep`.
pub fn take(
    db: &Db,
    seal: &CursorSeal,
    root: &Path,
    views: &[Entitlements],
    keep: usize,
) -> Result<Taken, SnapshotError> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    sweep_abandoned(root);
    let (id, created_at) = new_id(root)?;
    // Held locked while the snapshot is written: a process that dies mid-write lets go of it,
    // and the next snapshot (of any process) knows the directory is abandoned.
    let lock_path = root.join(format!(".tmp-{id}.lock"));
    let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let tmp = root.join(format!(".tmp-{id}"));
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let result = write_views(db, seal, &tmp, &id, &created_at, views);
    let manifests = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = std::fs::remove_file(&lock_path);
            return Err(e);
        }
    };
    let dir = root.join(&id);
    std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
    sync_dir(root)?;
    let _ = std::fs::remove_file(&lock_path);
    drop(lock);
    let pruned = prune(root, keep)?;
    tracing::info!(snapshot = %id, views = manifests.len(), pruned = pruned.len(), "snapshot taken");
    Ok(Taken {
        dir,
        manifests,
        pruned,
    })
}

/// A new snapshot's id and time: its UTC time to the millisecond and a random suffix, later
/// than every snapshot's under `root`, so that ids sort as the snapshots were taken.
fn new_id(root: &Path) -> Result<(String, String), SnapshotError> {
    let newest = snapshot_ids(root)?.into_iter().next();
    loop {
        let now = time::OffsetDateTime::now_utc();
        let stamp = now.format(ID_TIME).expect("a UTC time formats");
        if newest
            .as_deref()
            .is_some_and(|n| n[..ID_TIME_LEN] >= *stamp)
        {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let mut suffix = [0u8; 4];
        openssl::rand::rand_bytes(&mut suffix).expect("the system's random source");
        let created_at = now
            .format(&time::format_description::well_known::Rfc3339)
            .expect("a UTC time formats");
        return Ok((format!("{stamp}-{}", hex::encode(suffix)), created_at));
    }
}

const ID_TIME: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year][month][day]T[hour][minute][second][subsecond digits:3]Z"
);
const ID_TIME_LEN: usize = 19;

fn write_views(
    db: &Db,
    seal: &CursorSeal,
    tmp: &Path,
    id: &str,
    created_at: &str,
    views: &[Entitlements],
) -> Result<Vec<Manifest>, SnapshotError> {
    let mut writers = Vec::with_capacity(views.len());
    for &e in views {
        let name = view_name(e);
        let path = tmp.join(format!("{name}.jsonl.gz"));
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        writers.push(ViewWriter {
            entitlements: e,
            name,
            gz: GzEncoder::new(
                Hashing {
                    inner: BufWriter::with_capacity(1 << 16, file),
                    hash: Sha256::new(),
                    bytes: 0,
                },
                Compression::default(),
            ),
            path,
            counts: BTreeMap::new(),
            position: 0,
        });
    }
    let mut conn = db.conn()?;
    in_read_snapshot(&mut conn, |conn| {
        let head = catalogue::change_head(conn, i64::MAX)?.0;
        for w in &mut writers {
            w.position = catalogue::last_visible_change_id(conn, head, w.entitlements)?;
        }
        let reading = catalogue::Reading::for_readers(writers.iter().map(|w| w.entitlements));
        let mut after = String::new();
        loop {
            let ids = catalogue::unified_ids_after(conn, &after, PAGE)?;
            let Some(last) = ids.last() else { break };
            after = last.clone();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let entries = catalogue::unified_many_reading(conn, &refs, reading)?;
            for unified_id in &ids {
                let Some(u) = entries.get(unified_id) else {
                    continue;
                };
                let Ok(kind) = u.kind.parse::<RecordKind>() else {
                    continue;
                };
                for w in &mut writers {
                    let Some(record) = u
                        .record_for(w.entitlements)
                        .and_then(|r| AccessFilter::view(kind, r, w.entitlements))
                    else {
                        continue;
                    };
                    let line = serde_json::json!({
                        "unified_id": unified_id, "kind": u.kind, "record": record,
                    });
                    serde_json::to_writer(&mut w.gz, &line)
                        .map_err(std::io::Error::from)
                        .and_then(|()| w.gz.write_all(b"\n"))
                        .map_err(io(&w.path))?;
                    *w.counts.entry(u.kind.clone()).or_default() += 1;
                }
            }
        }
        Ok(())
    })?;
    drop(conn);

    let schemas: BTreeMap<String, String> = RecordKind::ALL
        .into_iter()
        .map(|k| {
            let id = rix_schema::schemas::for_kind(k).json()["$id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (k.as_str().to_owned(), id)
        })
        .collect();
    let mut manifests = Vec::with_capacity(writers.len());
    for w in writers {
        let hashing = w.gz.finish().map_err(io(&w.path))?;
        let Hashing { inner, hash, bytes } = hashing;
        let file = inner
            .into_inner()
            .map_err(|e| io(&w.path)(e.into_error()))?;
        file.sync_all().map_err(io(&w.path))?;
        let mut counts = w.counts;
        for k in RecordKind::ALL {
            counts.entry(k.as_str().to_owned()).or_default();
        }
        let total = counts.values().sum();
        counts.insert("total".into(), total);
        let file_name = format!("{}.jsonl.gz", w.name);
        let manifest_name = format!("{}.manifest.json", w.name);
        let manifest = Manifest {
            id: id.to_owned(),
            created_at: created_at.to_owned(),
            view: w.name.clone(),
            entitlements: w
                .entitlements
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            schema_version: SCHEMA_VERSION.into(),
            schemas: schemas.clone(),
            changes_after: seal.seal_position(w.position),
            counts,
            files: vec![FileInfo {
                url: format!("/v1/snapshots/{id}/{file_name}"),
                name: file_name,
                size: bytes,
                sha256: hex::encode(hash.finalize()),
                count: total,
                content_type: "application/gzip".into(),
            }],
            manifest_url: format!("/v1/snapshots/{id}/{manifest_name}"),
        };
        let path = tmp.join(&manifest_name);
        let bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
        let mut f = std::fs::File::create(&path).map_err(io(&path))?;
        f.write_all(&bytes).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        manifests.push(manifest);
    }
    sync_dir(tmp)?;
    Ok(manifests)
}

/// Runs `f` in one read transaction, so that every statement sees the catalogue as of one
/// moment: a deferred transaction on SQLite (in WAL mode its first read fixes what all later
/// ones see), `REPEATABLE READ` on PostgreSQL (its default, `READ COMMITTED`, would let each
/// statement see the commits made since the last, and the file would mix two moments).
fn in_read_snapshot<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, SnapshotError>,
) -> Result<T, SnapshotError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <DbConn as diesel::Connection>::TransactionManager;
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN DEFERRED")?,
        DbConn::Postgresql(c) => AnsiTransactionManager::begin_transaction_sql(
            c,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )?,
    }
    let result = f(conn);
    // Nothing was written: ending it either way releases the snapshot.
    match Manager::rollback_transaction(conn) {
        Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => result,
        Err(e) => result.and(Err(e.into())),
    }
}

fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// The complete snapshots under `root`, newest first (ids sort by time).
fn snapshot_ids(root: &Path) -> Result<Vec<String>, SnapshotError> {
    let read = match std::fs::read_dir(root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(root)(e)),
    };
    let mut ids: Vec<String> = read
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| valid_id(n))
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// Whether `id` is a name [`take`] gives (and so safe to join to a path).
fn valid_id(id: &str) -> bool {
    id.len() == ID_TIME_LEN + 9
        && id.as_bytes()[ID_TIME_LEN] == b'-'
        && id.bytes().all(|b| {
            b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'T' || b == b'Z' || b == b'-'
        })
}

/// Removes what snapshots that died mid-write left under `root` (a killed gateway, a full
/// disk): their `.tmp-{id}` directories — as large as a snapshot — once nobody holds their lock.
/// A writer creates and locks its lock file before its directory and removes it only after the
/// rename, so a directory without one was left by a gateway that kept no locks yet. Best effort:
/// what cannot be removed now is tried again at the next snapshot.
fn sweep_abandoned(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(id) = name.strip_prefix(".tmp-") else {
            continue;
        };
        if !valid_id(id) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let lock_path = root.join(format!(".tmp-{id}.lock"));
        let lock = match std::fs::File::open(&lock_path) {
            Ok(file) => match file.try_lock() {
                Ok(()) => Some(file),
                // Being written: leave it.
                Err(_) => continue,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => continue,
        };
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::warn!(snapshot = %id, "removed a snapshot abandoned mid-write");
                if lock.is_some() {
                    let _ = std::fs::remove_file(&lock_path);
                }
            }
            Err(e) => {
                tracing::warn!(snapshot = %id, error = %e, "cannot remove an abandoned snapshot")
            }
        }
    }
}

fn prune(root: &Path, keep: usize) -> Result<Vec<String>, SnapshotError> {
    let mut pruned = Vec::new();
    for id in snapshot_ids(root)?.into_iter().skip(keep.max(1)) {
        let dir = root.join(&id);
        // A reader downloading from it keeps its open file; new requests get 404.
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        pruned.push(id);
    }
    Ok(pruned)
}

/// The manifests under `root` of views a reader with `reader` may read, newest first.
pub fn list(root: &Path, reader: Entitlements) -> Result<Vec<Manifest>, SnapshotError> {
    let mut out = Vec::new();
    for id in snapshot_ids(root)? {
        let dir = root.join(&id);
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = read
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".manifest.json").map(str::to_owned))
            .collect();
        names.sort();
        for name in names {
            let Some(view) = view_of_name(&name) else {
                continue;
            };
            if !may_read(reader, view) {
                continue;
            }
            let path = dir.join(format!("{name}.manifest.json"));
            // Pruned between the listing and this read: not listed.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            if let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) {
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// Where the served gateway keeps its snapshots, and which views it writes.
#[derive(Debug, Clone)]
pub struct Snapshots {
    /// The directory.
    pub root: PathBuf,
    /// The views written.
    pub views: Vec<Entitlements>,
    /// Snapshots kept.
    pub keep: usize,
}

impl Snapshots {
    /// From the config.
    pub fn of_config(config: &crate::config::Config) -> Result<Snapshots, SnapshotError> {
        Ok(Snapshots {
            root: config.snapshots.dir_in(&config.data_dir),
            views: config.snapshots.entitlements()?,
            keep: config.snapshots.keep,
        })
    }

    /// Takes a snapshot now.
    pub fn take(&self, db: &Db) -> Result<Taken, SnapshotError> {
        let seal = AccessFilter::new(db.clone()).cursor_seal()?.clone();
        take(db, &seal, &self.root, &self.views, self.keep)
    }
}

/// How long until the next scheduled snapshot: `every` after the newest one's time, or now if
/// there is none (or it is overdue).
pub fn next_due(
    newest: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
    every: Duration,
) -> Duration {
    match newest {
        None => Duration::ZERO,
        Some(at) => {
            let due = at + every;
            if due <= now {
                Duration::ZERO
            } else {
                (due - now).try_into().unwrap_or(every)
            }
        }
    }
}

fn newest_time(root: &Path) -> Option<time::OffsetDateTime> {
    let id = snapshot_ids(root).ok()?.into_iter().next()?;
    let at = time::PrimitiveDateTime::parse(&id[..ID_TIME_LEN], ID_TIME).ok()?;
    Some(at.assume_utc())
}

/// The served gateway's schedule: a snapshot every `every` (counted from the newest one on
/// disk, so a restart does not take one early), until `stop` says so.
pub async fn run_schedule(
    snapshots: Snapshots,
    db: Db,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let wait = next_due(
            newest_time(&snapshots.root),
            time::OffsetDateTime::now_utc(),
            every,
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let (s, d) = (snapshots.clone(), db.clone());
        match tokio::task::spawn_blocking(move || s.take(&d)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "scheduled snapshot failed; trying again in a minute");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    _ = stop.changed() => return,
                }
            }
            Err(e) => tracing::error!(error = %e, "scheduled snapshot task failed"),
        }
    }
}

// ---- HTTP -----------------------------------------------------------------------------------

/// `GET /v1/snapshots`: the snapshots' views this reader may read, newest first, each with its
/// manifest.
#[utoipa::path(get, path = "/v1/snapshots",
    responses((status = 200, description = "`{\"snapshots\": [manifest…]}`, newest first: per snapshot and view the reader may read, its id, created_at, view, entitlements, schema_version, `changes_after` (the sealed position to pass as `/v1/changes?after=` to follow the catalogue from the snapshot), counts by kind, and the files with url, size, sha256 and count. A view is listed to a reader holding every entitlement it names. ETag and Last-Modified; 304 on conditional requests."),
              (status = 304, description = "not modified")),
    security((), ("bearer" = [])))]
pub async fn list_snapshots(
    state: web::Data<ReadState>,
    snapshots: web::Data<Snapshots>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let who = crate::api::consumer(&state, &req)?;
    let root = snapshots.root.clone();
    let entitlements = who.entitlements;
    let listed = crate::api::blocking(move || {
        list(&root, entitlements).map_err(|e| ApiError::Store(StoreError::Task(e.to_string())))
    })
    .await?;
    state.access.audit(&who, "/v1/snapshots", "");
    let modified = listed
        .iter()
        .filter_map(|m| crate::representation::http_date(&m.created_at))
        .max_by_key(|d| std::time::SystemTime::from(*d));
    let body = serde_json::to_vec(&serde_json::json!({ "snapshots": listed }))
        .expect("manifests serialise");
    Ok(crate::representation::with_validators(
        &req,
        HttpResponse::Ok(),
        "application/json",
        body,
        modified,
    ))
}

/// `GET /v1/snapshots/{id}/{file}`: a view's data file or manifest, with `Range` (one range),
/// `If-Range`, `ETag`, `Last-Modified` and 304.
#[utoipa::path(get, path = "/v1/snapshots/{id}/{file}",
    params(("id" = String, Path, description = "snapshot id, from the list"),
           ("file" = String, Path, description = "`{view}.jsonl.gz` (gzip JSON Lines: one `{unified_id, kind, record}` per entry) or `{view}.manifest.json`")),
    responses((status = 200, description = "the file; `Accept-Ranges: bytes`, a strong ETag (from its SHA-256) and Last-Modified (the snapshot's time)"),
              (status = 206, description = "one byte range (`Range: bytes=a-b`, `a-` or `-n`), with Content-Range"),
              (status = 304, description = "not modified"),
              (status = 404, description = "no such snapshot or file, or a view this reader may not read (the same answer)", content_type = "application/problem+json"),
              (status = 416, description = "the range lies beyond the file; Content-Range: bytes */size")),
    security((), ("bearer" = [])))]
pub async fn download(
    state: web::Data<ReadState>,
    snapshots: web::Data<Snapshots>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let who = crate::api::consumer(&state, &req)?;
    let (id, file) = path.into_inner();
    let (view, is_manifest) = if let Some(v) = file.strip_suffix(".jsonl.gz") {
        (v, false)
    } else if let Some(v) = file.strip_suffix(".manifest.json") {
        (v, true)
    } else {
        return Err(ApiError::NotFound);
    };
    // Refused exactly as a file that is not there: a 403 would say the view exists.
    let Some(view_entitlements) = view_of_name(view) else {
        return Err(ApiError::NotFound);
    };
    if !valid_id(&id) || !may_read(who.entitlements, view_entitlements) {
        return Err(ApiError::NotFound);
    }
    let dir = snapshots.root.join(&id);
    let manifest_path = dir.join(format!("{view}.manifest.json"));
    let data_path = dir.join(&file);
    let read = crate::api::blocking(move || {
        let Ok(bytes) = std::fs::read(&manifest_path) else {
            return Ok(None);
        };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else {
            return Ok(None);
        };
        if is_manifest {
            let len = bytes.len() as u64;
            return Ok(Some((manifest, Some(bytes), len)));
        }
        match std::fs::metadata(&data_path) {
            Ok(m) => Ok(Some((manifest, None, m.len()))),
            Err(_) => Ok(None),
        }
    })
    .await?;
    let Some((manifest, bytes, size)) = read else {
        return Err(ApiError::NotFound);
    };
    state
        .access
        .audit(&who, "/v1/snapshots", &format!("{id}/{file}"));
    let etag = match &bytes {
        Some(b) => format!("\"{}\"", &hex::encode(Sha256::digest(b))[..32]),
        None => format!(
            "\"{}\"",
            manifest.files[0].sha256.get(..32).unwrap_or_default()
        ),
    };
    let modified = crate::representation::http_date(&manifest.created_at);
    let content_type = if is_manifest {
        "application/json"
    } else {
        "application/gzip"
    };
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, etag.clone()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::VARY, "Authorization"))
        // The bytes as stored: compressing them again would break ranges and the digest.
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .content_type(content_type);
    if let Some(m) = modified {
        response.insert_header((header::LAST_MODIFIED, m));
    }
    if !is_manifest {
        response.insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"rix-{id}-{file}\""),
        ));
    }
    if not_modified(&req, &etag, modified) {
        response.status(actix_web::http::StatusCode::NOT_MODIFIED);
        return Ok(response.finish());
    }
    let range = match req.headers().get(header::RANGE) {
        Some(r) if if_range_holds(&req, &etag, modified) => {
            match parse_range(r.to_str().unwrap_or(""), size) {
                RangeAnswer::Whole => None,
                RangeAnswer::Part(start, end) => Some((start, end)),
                RangeAnswer::Unsatisfiable => {
                    response
                        .status(actix_web::http::StatusCode::RANGE_NOT_SATISFIABLE)
                        .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
                    return Ok(response.finish());
                }
            }
        }
        _ => None,
    };
    let (start, len) = match range {
        Some((start, end)) => {
            response
                .status(actix_web::http::StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            (start, end - start + 1)
        }
        None => (0, size),
    };
    if let Some(bytes) = bytes {
        let part = bytes[start as usize..(start + len) as usize].to_vec();
        return Ok(response.body(part));
    }
    let path = snapshots.root.join(&id).join(&file);
    let stream = file_stream(path, start, len)
        .await
        .map_err(|_| ApiError::NotFound)?;
    Ok(response.body(actix_web::body::SizedStream::new(len, stream)))
}

/// RFC 9110 §13.1: `If-None-Match` decides when present, and only without it
/// `If-Modified-Since`.
fn not_modified(req: &HttpRequest, etag: &str, modified: Option<HttpDate>) -> bool {
    match req.headers().get(header::IF_NONE_MATCH) {
        Some(wanted) => wanted.to_str().is_ok_and(|list| {
            list.trim() == "*"
                || list
                    .split(',')
                    .map(|t| t.trim().trim_start_matches("W/"))
                    .any(|t| t == etag)
        }),
        None => match (
            modified,
            req.headers()
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<HttpDate>().ok()),
        ) {
            (Some(m), Some(since)) => {
                std::time::SystemTime::from(m) <= std::time::SystemTime::from(since)
            }
            _ => false,
        },
    }
}

/// RFC 9110 §13.1.5: a range applies only if `If-Range`, when sent, still names this file
/// (its strong ETag, or its exact date).
fn if_range_holds(req: &HttpRequest, etag: &str, modified: Option<HttpDate>) -> bool {
    match req
        .headers()
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(v) if v.trim().starts_with('"') => v.trim() == etag,
        Some(v) => match (v.parse::<HttpDate>(), modified) {
            (Ok(d), Some(m)) => std::time::SystemTime::from(d) == std::time::SystemTime::from(m),
            _ => false,
        },
    }
}

#[derive(Debug, PartialEq)]
enum RangeAnswer {
    /// Send the whole file (no usable range, or several ranges: RFC 9110 lets a server ignore
    /// a `Range` it does not support).
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// Not one byte of the range is in the file.
    Unsatisfiable,
}

fn parse_range(value: &str, size: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeAnswer::Whole;
        };
        if suffix == 0 || size == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Part(size.saturating_sub(suffix), size - 1);
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeAnswer::Whole;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeAnswer::Whole,
        }
    };
    if start >= size {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Part(start, end.min(size - 1))
}

async fn file_stream(
    path: PathBuf,
    start: u64,
    len: u64,
) -> std::io::Result<impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>>> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let mut file = tokio::fs::File::open(&path).await?;
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let reader = Some(file.take(len));
    Ok(futures_util::stream::unfold(reader, |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; 1 << 16];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(web::Bytes::from(buf)), Some(reader)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }))
}

/// The snapshot routes (they need [`Snapshots`] as app data beside [`ReadState`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/snapshots", web::get().to(list_snapshots))
        .route("/v1/snapshots/{id}/{file}", web::get().to(download));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_abandoned_mid_write_is_swept_and_one_being_written_is_not() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let started = |id: &str, locked: Option<bool>| {
            let dir = root.join(format!(".tmp-{id}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("public.jsonl.gz"), b"partial").unwrap();
            locked.map(|held| {
                let lock = std::fs::File::create(root.join(format!(".tmp-{id}.lock"))).unwrap();
                if held {
                    lock.lock().unwrap();
                }
                lock
            })
        };
        let dead = "20261130T120000123Z-0a1b2c3d";
        let live = "20261130T120001123Z-1b2c3d4e";
        let older = "20261130T120002123Z-2c3d4e5f";
        // A writer that died: its lock file is there, nobody holds it.
        drop(started(dead, Some(false)));
        // A writer at work (another process's lock: flock conflicts between open files).
        let _held = started(live, Some(true));
        // Left by a gateway that kept no locks.
        started(older, None);
        std::fs::create_dir_all(root.join("20261130T110000000Z-00000000")).unwrap();

        sweep_abandoned(root);
        let mut left: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                format!(".tmp-{live}"),
                format!(".tmp-{live}.lock"),
                "20261130T110000000Z-00000000".to_owned()
            ]
        );
    }

    #[test]
    fn view_names_go_both_ways_and_only_one_way_each() {
        for e in [
            Entitlements::PUBLIC,
            Entitlements::ALL,
            "internal".parse().unwrap(),
            "internal,commercial".parse().unwrap(),
            "personal".parse().unwrap(),
        ] {
            assert_eq!(view_of_name(&view_name(e)), Some(e), "{e}");
        }
        assert_eq!(
            view_name("commercial,internal".parse().unwrap()),
            "internal-commercial"
        );
        // Another spelling of the same set is not a name: one file per view.
        assert_eq!(view_of_name("commercial-internal"), None);
        assert_eq!(view_of_name("public-internal"), None);
        assert_eq!(view_of_name("../x"), None);
    }

    #[test]
    fn a_reader_may_read_views_of_fewer_entitlements_only() {
        let internal: Entitlements = "internal".parse().unwrap();
        let both: Entitlements = "internal,commercial".parse().unwrap();
        assert!(may_read(Entitlements::PUBLIC, Entitlements::PUBLIC));
        assert!(!may_read(Entitlements::PUBLIC, internal));
        assert!(may_read(both, internal));
        assert!(!may_read(internal, both));
        assert!(may_read(Entitlements::ALL, both));
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAnswer::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeAnswer::Part(90, 99));
        assert_eq!(parse_range("bytes=90-200", 100), RangeAnswer::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeAnswer::Part(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), RangeAnswer::Part(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAnswer::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeAnswer::Whole);
        assert_eq!(parse_range("bytes=5-1", 100), RangeAnswer::Whole);
    }

    #[test]
    fn the_schedule_counts_from_the_newest_snapshot() {
        let now = time::OffsetDateTime::now_utc();
        let day = Duration::from_secs(86_400);
        assert_eq!(next_due(None, now, day), Duration::ZERO);
        assert_eq!(next_due(Some(now - day * 2), now, day), Duration::ZERO);
        let wait = next_due(Some(now - Duration::from_secs(3600)), now, day);
        assert_eq!(wait, Duration::from_secs(82_800));
    }

    #[test]
    fn ids_sort_by_time_and_are_safe_path_parts() {
        assert!(valid_id("20261130T120000123Z-0a1b2c3d"));
        assert!(!valid_id(".tmp-20261130T120000123Z-0a1b2c3d"));
        assert!(!valid_id("../../../../etc/passwd.xx"));
    }
}
