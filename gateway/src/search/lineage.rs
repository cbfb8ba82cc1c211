//! Which catalogue, and which point of its change stream, the search index reflects; what
//! happens when the two disagree; and how far behind the index is.
//!
//! **Why the index checks its lineage.** The index is derived from the catalogue's change
//! stream and remembers only the change id it reached. Restore the catalogue from a dump taken
//! at change 3 under an index that reached change 4, and the index would go on serving an
//! entry the catalogue no longer holds, then skip the new change 4 (it "has" it), without a
//! word. So every commit of the index records, beside its cursor, the catalogue it was built
//! from (`catalogue_meta.catalogue_id`, carried by dumps) and a fingerprint of the change at its
//! cursor ([`catalogue::change_fingerprint`]: every column and the time it was applied). Every
//! sync first checks both against the catalogue (two primary-key reads), and on any mismatch
//! — another catalogue, a cursor past the catalogue's head, a different change at the cursor,
//! an index that predates these records — the index rebuilds itself from change 0, with a
//! warning in the log and `rix_search_rebuilds_total{reason}`. An index merely behind the
//! catalogue (a gateway that was stopped, a restore of the index directory from an older
//! backup) is not a divergence: it catches up from its cursor, which is what a sync does.
//!
//! **Why a divergent index is emptied first.** A rebuild requested by the operator keeps the
//! old documents searchable until its first commit, since they are right. A divergent index's
//! documents are not (an entry the catalogue lost, another catalogue's entries), so they go at
//! once; until the rebuild catches up searches are incomplete, never wrong, and `/healthz`
//! says `rebuilding`.
//!
//! **How far behind.** The same checks give the catalogue's head; the metrics here (indexed
//! change id, lag in changes and in seconds, last commit, last successful sync, rebuilds) are
//! what the alert rules in `ops/prometheus/rix-alerts.yml` watch.

use std::sync::Mutex;

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalogue;
use crate::db::{DbConn, StoreError};

/// What a commit of the index records about its source, beside its cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Lineage {
    /// `catalogue_meta.catalogue_id` of the catalogue indexed (`None`: an index written before
    /// lineage was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalogue: Option<String>,
    /// [`catalogue::change_fingerprint`] of the change at the cursor (`None` at cursor 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// Why the index does not reflect the catalogue it syncs from. Each one means a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    /// The index holds changes but never recorded which catalogue they came from.
    Unrecorded {
        /// The index's cursor.
        cursor: i64,
    },
    /// The index was built from another catalogue.
    OtherCatalogue {
        /// The catalogue the index recorded.
        indexed: String,
        /// The catalogue the gateway opens.
        catalogue: String,
    },
    /// The index has seen changes the catalogue does not hold: the catalogue was restored from
    /// a dump older than the index.
    Ahead {
        /// The index's cursor.
        cursor: i64,
        /// The catalogue's newest change.
        head: i64,
    },
    /// The catalogue holds another change at the index's cursor: restored from an older dump
    /// and fed again since.
    Rewritten {
        /// The index's cursor.
        cursor: i64,
    },
}

impl Divergence {
    /// The label of `rix_search_rebuilds_total` and of `/healthz`.
    pub fn reason(&self) -> &'static str {
        match self {
            Divergence::Unrecorded { .. } => "unrecorded",
            Divergence::OtherCatalogue { .. } => "other_catalogue",
            Divergence::Ahead { .. } => "ahead_of_catalogue",
            Divergence::Rewritten { .. } => "catalogue_rewritten",
        }
    }
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Divergence::Unrecorded { cursor } => write!(
                f,
                "the index reached change {cursor} but records no catalogue identity (written by an older gateway)"
            ),
            Divergence::OtherCatalogue { indexed, catalogue } => write!(
                f,
                "the index was built from catalogue {indexed}, the gateway opens catalogue {catalogue}"
            ),
            Divergence::Ahead { cursor, head } => write!(
                f,
                "the index reached change {cursor} but the catalogue ends at change {head} (restored from an older backup?)"
            ),
            Divergence::Rewritten { cursor } => write!(
                f,
                "the catalogue holds another change {cursor} than the one the index reached (restored from an older backup and fed since?)"
            ),
        }
    }
}

/// The catalogue as a sync found it, when the index still reflects it.
#[derive(Debug, Clone)]
pub(super) struct Standing {
    /// The catalogue's identity, recorded by the next commit.
    pub catalogue: String,
    /// Its newest change id.
    pub head: i64,
    /// When the first change the index has not seen was applied (RFC 3339).
    pub next_at: Option<String>,
}

/// Compares what the index recorded (`lineage` at `cursor`) with the catalogue `conn` opens.
pub(super) fn check(
    conn: &mut DbConn,
    lineage: &Lineage,
    cursor: i64,
) -> Result<Result<Standing, Divergence>, StoreError> {
    let catalogue = catalogue::catalogue_id(conn)?;
    let (head, next_at) = catalogue::change_head(conn, cursor)?;
    if cursor == 0 {
        // Nothing indexed, nothing to disagree about.
        return Ok(Ok(Standing {
            catalogue,
            head,
            next_at,
        }));
    }
    let divergence = match &lineage.catalogue {
        None => Some(Divergence::Unrecorded { cursor }),
        Some(indexed) if *indexed != catalogue => Some(Divergence::OtherCatalogue {
            indexed: indexed.clone(),
            catalogue: catalogue.clone(),
        }),
        Some(_) if cursor > head => Some(Divergence::Ahead { cursor, head }),
        Some(_) => {
            let held = catalogue::change_fingerprint(conn, cursor)?;
            (held.is_none() || held != lineage.fingerprint)
                .then_some(Divergence::Rewritten { cursor })
        }
    };
    Ok(match divergence {
        Some(d) => Err(d),
        None => Ok(Standing {
            catalogue,
            head,
            next_at,
        }),
    })
}

/// Seconds from an RFC 3339 time to now (0 when it does not parse or lies ahead).
fn seconds_since(at: &str) -> f64 {
    OffsetDateTime::parse(at, &Rfc3339)
        .map(|t| (OffsetDateTime::now_utc() - t).as_seconds_f64().max(0.0))
        .unwrap_or(0.0)
}

/// The last rebuild, as `/healthz` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Rebuild {
    /// [`Divergence::reason`], `format` (an index of another format) or `requested`.
    pub reason: String,
    /// What was found, in words.
    pub detail: String,
    /// When it began (RFC 3339).
    pub started_at: String,
    /// When it caught up with the catalogue (RFC 3339), `None` while it runs.
    pub finished_at: Option<String>,
}

/// How the index stands, for `/healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHealth {
    /// `current` (within [`CATCHING_UP_SECONDS`] of the catalogue), `catching_up`,
    /// `rebuilding`, or `failing` (the last sync failed).
    pub state: &'static str,
    /// The change id the index has committed everything up to.
    pub indexed_change_id: i64,
    /// The catalogue's newest change id, as the last sync saw it.
    pub catalogue_change_id: i64,
    /// How many changes the index is behind.
    pub lag_changes: i64,
    /// How long the oldest change the index has not committed has waited.
    pub lag_seconds: f64,
    /// The last rebuild, if this process made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rebuild: Option<Rebuild>,
    /// The last sync's error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl SearchHealth {
    /// Whether the gateway should call itself degraded because of its index.
    pub fn degraded(&self) -> bool {
        self.state != "current"
    }
}

/// An index further behind than this (in seconds of its oldest unindexed change) is
/// `catching_up`: well past the 1 s freshness bar, short of what a burst of ingest causes.
pub const CATCHING_UP_SECONDS: f64 = 30.0;

#[derive(Debug, Default)]
struct Status {
    rebuilding: bool,
    last_rebuild: Option<Rebuild>,
    last_error: Option<String>,
}

/// The index's metrics (`rix_search_*`) and the status `/healthz` reports. Created with the
/// index, registered by the server that serves it.
#[derive(Debug)]
pub(super) struct Monitor {
    indexed: IntGauge,
    head: IntGauge,
    lag_changes: IntGauge,
    lag_seconds: Gauge,
    last_commit: Gauge,
    last_sync: Gauge,
    documents: IntGauge,
    rebuilds: IntCounterVec,
    sync_failures: IntCounter,
    ranked_pages: IntCounter,
    status: Mutex<Status>,
}

impl Monitor {
    pub fn new() -> Monitor {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let fgauge = |name: &str, help: &str| Gauge::new(name, help).expect("valid metric");
        Monitor {
            indexed: gauge(
                "rix_search_indexed_change_id",
                "Change id the search index has committed everything up to",
            ),
            head: gauge(
                "rix_search_catalogue_change_id",
                "Newest change id of the catalogue, as the search index's last sync saw it",
            ),
            lag_changes: gauge(
                "rix_search_lag_changes",
                "Changes the catalogue holds that the search index has not committed",
            ),
            lag_seconds: fgauge(
                "rix_search_lag_seconds",
                "Age of the oldest change the search index has not committed (0 when current)",
            ),
            last_commit: fgauge(
                "rix_search_last_commit_timestamp_seconds",
                "Unix time of the search index's last commit",
            ),
            last_sync: fgauge(
                "rix_search_last_sync_timestamp_seconds",
                "Unix time of the search index's last successful sync",
            ),
            documents: gauge(
                "rix_search_documents",
                "Documents in the search index (an entry seen differently by public and internal readers has two)",
            ),
            rebuilds: IntCounterVec::new(
                Opts::new(
                    "rix_search_rebuilds_total",
                    "Rebuilds of the search index from change 0, by reason",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            sync_failures: IntCounter::new(
                "rix_search_sync_failures_total",
                "Syncs of the search index that failed (retried)",
            )
            .expect("valid metric"),
            ranked_pages: IntCounter::new(
                "rix_search_ranked_pages_total",
                "Later pages of text queries in relevance order found in a kept ranking (no pass over the matches)",
            )
            .expect("valid metric"),
            status: Mutex::new(Status::default()),
        }
    }

    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let collectors: [Box<dyn prometheus::core::Collector>; 10] = [
            Box::new(self.indexed.clone()),
            Box::new(self.head.clone()),
            Box::new(self.lag_changes.clone()),
            Box::new(self.lag_seconds.clone()),
            Box::new(self.last_commit.clone()),
            Box::new(self.last_sync.clone()),
            Box::new(self.documents.clone()),
            Box::new(self.rebuilds.clone()),
            Box::new(self.sync_failures.clone()),
            Box::new(self.ranked_pages.clone()),
        ];
        for c in collectors {
            registry.register(c)?;
        }
        Ok(())
    }

    /// A later page was found in a kept ranking.
    pub fn ranked_page(&self) {
        self.ranked_pages.inc();
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sync found the catalogue at `standing` with the index at `cursor`.
    pub fn observe(&self, standing: &Standing, cursor: i64) {
        self.head.set(standing.head);
        self.behind(cursor, standing.head, standing.next_at.as_deref());
    }

    /// The index committed up to `cursor` of a catalogue ending at `head`; the first change
    /// after `cursor` was applied at `next_at`.
    pub fn committed(&self, cursor: i64, head: i64, next_at: Option<&str>, documents: u64) {
        self.last_commit.set(unix_now());
        self.head.set(head.max(cursor));
        self.documents.set(documents as i64);
        self.behind(cursor, head, next_at);
    }

    fn behind(&self, cursor: i64, head: i64, next_at: Option<&str>) {
        self.indexed.set(cursor);
        self.lag_changes.set((head - cursor).max(0));
        self.lag_seconds.set(match next_at {
            Some(at) if head > cursor => seconds_since(at),
            _ => 0.0,
        });
    }

    pub fn rebuild_started(&self, reason: &str, detail: String) {
        self.rebuilds.with_label_values(&[reason]).inc();
        let mut status = self.status();
        status.rebuilding = true;
        status.last_rebuild = Some(Rebuild {
            reason: reason.to_owned(),
            detail,
            started_at: catalogue::now(),
            finished_at: None,
        });
    }

    /// A sync ran to the catalogue's head: a rebuild in progress is over.
    pub fn sync_succeeded(&self) {
        self.last_sync.set(unix_now());
        let mut status = self.status();
        status.last_error = None;
        if status.rebuilding {
            status.rebuilding = false;
            if let Some(r) = status.last_rebuild.as_mut() {
                r.finished_at.get_or_insert_with(catalogue::now);
            }
        }
    }

    pub fn sync_failed(&self, error: &str) {
        self.sync_failures.inc();
        self.status().last_error = Some(error.to_owned());
    }

    pub fn health(&self) -> SearchHealth {
        let status = self.status();
        let lag_seconds = self.lag_seconds.get();
        let state = if status.last_error.is_some() {
            "failing"
        } else if status.rebuilding {
            "rebuilding"
        } else if lag_seconds > CATCHING_UP_SECONDS {
            "catching_up"
        } else {
            "current"
        };
        SearchHealth {
            state,
            indexed_change_id: self.indexed.get(),
            catalogue_change_id: self.head.get(),
            lag_changes: self.lag_changes.get(),
            lag_seconds,
            last_rebuild: status.last_rebuild.clone(),
            last_error: status.last_error.clone(),
        }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
