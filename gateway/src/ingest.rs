//! The ingest pipeline, one direction, one batch at a time (DESIGN.md §6):
//!
//! `verify` (envelope, trust store, signature, Merkle root, `created_at` not beyond the
//! gateway's clock and skew) → `check_chain` (gap, fork, replay, `created_at` not before the
//! previous batch's, against the node's stored position) → `validate` (each record against the schema)
//! → `secrecy_gate` (secret and above never stored) → `apply` (idempotent, with merge, link
//! and the change stream; [`crate::catalogue`]).
//!
//! Every transport (the AMQP consumer, the HTTP feed puller) hands batches to
//! [`Ingest::ingest`] exactly as they arrived — or, to use more than one core, runs
//! [`Ingest::prepare`] (the stages that need no catalogue state) for several batches at once and
//! [`Ingest::commit`] (chain check and apply) in arrival order — and acts on the answer: acknowledge on
//! [`Outcome`], dead-letter on [`IngestError::Refused`], fetch the missing batches from the
//! node's feed on [`IngestError::Gap`], retry later on [`IngestError::Store`].
//!
//! A refused batch is counted (`rix_gateway_batches_refused_total{reason}`), written to the
//! `refusals` audit table with the stage and reason, and never applied. An entry that fails
//! validation or the secrecy gate is not a reason to refuse its whole batch — the chain must go
//! on — so it is quarantined instead (node, seq, id, reason; never its content) and counted.
//!
//! What it may not touch: transports and readers. It takes the bytes a transport received and
//! returns an answer — it never acknowledges, fetches or retries — and knows no HTTP, broker or
//! search index; nothing it decides depends on who will read the record.

use diesel::prelude::*;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use rix_runtime::metrics::registered;
use rix_schema::batch::{
    BatchLimits, ChainPosition, Gap, Op, Refusal, VerifiedBatch, check_chain, check_not_future,
    verify_batch,
};
use rix_schema::canonical::parse_sha256_hex;
use rix_schema::sensitivity::{HiddenField, hidden_fields};
use rix_schema::{SecrecyLevel, validate_record};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalogue::{self, RecordMeta};
use crate::db::schema::{batches, node_chain, quarantine, refusals};
use crate::db::{Db, DbConn, StoreError};
use crate::trust::TrustStore;

/// How a batch arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Pushed through RabbitMQ.
    Amqp,
    /// Pulled from the node's signed feed.
    Feed,
}

impl Transport {
    /// Name for audit rows and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Amqp => "amqp",
            Transport::Feed => "feed",
        }
    }
}

/// A batch taken in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified and applied (some entries may have been stale or quarantined).
    Applied {
        /// Node.
        node_id: String,
        /// Batch.
        batch_seq: u64,
        /// Last seq of the batch.
        last_seq: u64,
        /// Entries that changed the catalogue.
        applied: usize,
        /// Entries at or below the version held.
        stale: usize,
        /// Entries quarantined (classified or invalid).
        quarantined: usize,
    },
    /// Already applied earlier (same batch, same hash): nothing to do.
    Duplicate {
        /// Node.
        node_id: String,
        /// Batch.
        batch_seq: u64,
    },
}

/// A batch not taken in.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Refused at `stage`: never applied, audited, counted.
    #[error("refused at {stage}: {refusal}")]
    Refused {
        /// The pipeline stage (`verify`, `check_chain`).
        stage: &'static str,
        /// Why (boxed: refusals are rare and large, outcomes common and small).
        refusal: Box<Refusal>,
    },
    /// Batches are missing before this one: fetch them from the node's feed, then this one.
    #[error(
        "batches missing from {node_id}: expected batch {expected_batch_seq}, got {found_batch_seq}"
    )]
    Gap {
        /// Node.
        node_id: String,
        /// The batch the catalogue waits for.
        expected_batch_seq: u64,
        /// The batch that came.
        found_batch_seq: u64,
    },
    /// Storage failed: nothing was applied; try again.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for IngestError {
    fn from(e: diesel::result::Error) -> Self {
        IngestError::Store(StoreError::Query(e))
    }
}

impl crate::db::AsConflict for IngestError {
    fn is_conflict(&self) -> bool {
        matches!(self, IngestError::Store(e) if e.is_conflict())
    }
}

impl IngestError {
    /// The stable reason code (metrics label, audit row, dead-letter header).
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Refused { refusal, .. } => refusal.reason(),
            IngestError::Gap { .. } => "seq_gap",
            IngestError::Store(_) => "storage",
        }
    }
}

/// Ingest counters (`rix_gateway_*`).
#[derive(Clone)]
pub struct IngestMetrics {
    /// Batches applied, by transport.
    pub batches_applied: IntCounterVec,
    /// Batches that were already applied, by transport.
    pub batches_duplicate: IntCounterVec,
    /// Batches refused, by reason.
    pub batches_refused: IntCounterVec,
    /// Batches deferred because earlier ones are missing.
    pub batches_gap: IntCounter,
    /// Entries applied.
    pub entries_applied: IntCounter,
    /// Entries quarantined, by reason (`classified`, `invalid`).
    pub entries_quarantined: IntCounterVec,
    /// Classified entries seen: each is an alert (a node published what it must not).
    pub classified_alerts: IntCounter,
}

impl IngestMetrics {
    /// Registers the counters in `registry`.
    pub fn new(registry: &Registry) -> IngestMetrics {
        let vec = |name: &str, help: &str, label: &str| {
            registered(
                registry,
                IntCounterVec::new(Opts::new(name, help), &[label]),
            )
        };
        let one = |name: &str, help: &str| registered(registry, IntCounter::new(name, help));
        IngestMetrics {
            batches_applied: vec(
                "rix_gateway_batches_applied_total",
                "Batches verified and applied.",
                "transport",
            ),
            batches_duplicate: vec(
                "rix_gateway_batches_duplicate_total",
                "Batches received again after they were applied.",
                "transport",
            ),
            batches_refused: vec(
                "rix_gateway_batches_refused_total",
                "Batches refused and never applied.",
                "reason",
            ),
            batches_gap: one(
                "rix_gateway_batches_gap_total",
                "Batches that came before missing ones; the missing ones are pulled from the feed.",
            ),
            entries_applied: one(
                "rix_gateway_entries_applied_total",
                "Entries that changed the catalogue.",
            ),
            entries_quarantined: vec(
                "rix_gateway_entries_quarantined_total",
                "Entries kept out of the catalogue.",
                "reason",
            ),
            classified_alerts: one(
                "rix_gateway_classified_alerts_total",
                "Entries at secret or above received from a node (never stored): investigate.",
            ),
        }
    }
}

/// The first value of `full` that the rules hide from some reader but that the node did not
/// seal (`sealed`: the pointers of the entry's disclosures) — a node that did not seal what it
/// must (an old or broken node). Such a record is never stored: the signed entry is what every
/// reader receives.
fn value_in_clear(hidden: &[HiddenField], sealed: &[&str]) -> Option<String> {
    hidden.iter().find_map(|h| {
        let pointer = h.pointer();
        // Sealed if the value, or a value around it, was.
        let covered = sealed.iter().any(|s| {
            pointer == *s
                || pointer
                    .strip_prefix(s)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        (!covered).then_some(pointer)
    })
}

/// The pipeline.
#[derive(Clone)]
pub struct Ingest {
    db: Db,
    trust: TrustStore,
    limits: BatchLimits,
    metrics: IngestMetrics,
    max_future_skew: std::time::Duration,
    /// Signalled after each commit that applied entries: what follows the catalogue in this
    /// process (the search index) takes them at once instead of at its next poll.
    applied: std::sync::Arc<tokio::sync::Notify>,
    /// The planner's statistics of the tables the ingest looks rows up in, kept up with it.
    statistics: crate::db::PlannerStatistics,
}

/// How far ahead of the gateway's clock a batch may be dated unless configured otherwise
/// (`max_clock_skew_secs`): five minutes covers nodes whose clocks NTP keeps within seconds
/// with room to spare, and is short beside the hours between a key's compromise and its
/// revocation that a batch dated ahead could otherwise straddle.
pub const DEFAULT_MAX_FUTURE_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

/// The stored chain position of a node, or genesis.
pub fn chain_position(db: &Db, node_id: &str) -> Result<ChainPosition, StoreError> {
    chain_position_in(&mut *db.conn()?, node_id)
}

/// [`chain_position`] as a transaction sees it.
fn chain_position_in(conn: &mut DbConn, node_id: &str) -> Result<ChainPosition, StoreError> {
    let row: Option<(i64, i64, String, Option<String>)> = node_chain::table
        .find(node_id)
        .select((
            node_chain::next_batch_seq,
            node_chain::next_seq,
            node_chain::prev_batch_hash,
            node_chain::last_created_at,
        ))
        .first(conn)
        .optional()?;
    let damaged = |what: String| {
        StoreError::Task(format!(
            "the catalogue's chain position of node {node_id} is damaged ({what}); restore node_chain from a backup or rebuild the catalogue from the feeds"
        ))
    };
    Ok(match row {
        // A damaged hash must not read as the start of the chain: that would let any batch 1
        // in again. Refuse, loudly, until an operator repairs the catalogue.
        Some((b, s, h, created)) => ChainPosition {
            next_batch_seq: b as u64,
            next_seq: s as u64,
            prev_batch_hash: parse_sha256_hex(&h)
                .ok_or_else(|| damaged(format!("prev_batch_hash {h:?} is not hex SHA-256")))?,
            // Likewise a damaged time must not lift the bound on backdating.
            last_created_at: match created {
                None => None,
                Some(t) => Some(OffsetDateTime::parse(&t, &Rfc3339).map_err(|_| {
                    damaged(format!("last_created_at {t:?} is not an RFC 3339 time"))
                })?),
            },
        },
        None => ChainPosition::genesis(),
    })
}

/// A batch through `verify`, `validate` and `secrecy_gate`, waiting for [`Ingest::commit`].
pub struct Prepared {
    verified: VerifiedBatch,
    accepted: Vec<(usize, Option<RecordMeta>)>,
    quarantined: Vec<(usize, String)>,
    transport: Transport,
}

impl Prepared {
    /// The batch's signed header.
    pub fn header(&self) -> &rix_schema::batch::BatchHeader {
        self.verified.header()
    }
}

impl Ingest {
    /// A pipeline over the catalogue `db`, trusting what `trust` trusts.
    pub fn new(db: Db, trust: TrustStore, limits: BatchLimits, metrics: IngestMetrics) -> Ingest {
        Ingest {
            db,
            trust,
            limits,
            metrics,
            max_future_skew: DEFAULT_MAX_FUTURE_SKEW,
            applied: Default::default(),
            statistics: Default::default(),
        }
    }

    /// Signalled (`notify_one`: a commit while nobody waits is kept for the next wait) after
    /// each commit that applied entries.
    pub fn applied_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.applied.clone()
    }

    /// How far ahead of this gateway's clock a batch's `created_at` may lie (default
    /// [`DEFAULT_MAX_FUTURE_SKEW`]); a batch dated later is refused as `future_dated`.
    pub fn with_max_future_skew(mut self, skew: std::time::Duration) -> Ingest {
        self.max_future_skew = skew;
        self
    }

    /// The catalogue database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Takes one batch, exactly as it arrived, through every stage.
    pub fn ingest(&self, bytes: &[u8], transport: Transport) -> Result<Outcome, IngestError> {
        match self.prepare(bytes, transport) {
            Ok(prepared) => self.commit(prepared),
            Err(e) => Err(e),
        }
    }

    /// The stages that need no catalogue state — `verify`, `validate`, `secrecy_gate` — so
    /// that a transport can run them for several batches at once, on several cores, and then
    /// [`Ingest::commit`] them in order. Refusals are accounted here.
    pub fn prepare(&self, bytes: &[u8], transport: Transport) -> Result<Prepared, IngestError> {
        self.prepare_from(bytes, transport, None)
    }

    /// [`Ingest::prepare`] of a batch that arrived by way of node `origin` (its routing key, its
    /// feed): refused as `misdirected` unless `origin` signed it, so that one node cannot pass
    /// its batches off through another node's channel (nor a channel carry another's).
    pub fn prepare_from(
        &self,
        bytes: &[u8],
        transport: Transport,
        origin: Option<(&str, &str)>,
    ) -> Result<Prepared, IngestError> {
        let result = self
            .verify_and_screen(bytes, transport)
            .and_then(|p| match origin {
                Some((node, how)) if node != p.header().node_id => Err(IngestError::Refused {
                    stage: "verify",
                    refusal: Box::new(Refusal::Misdirected {
                        node_id: p.header().node_id.clone(),
                        batch_seq: p.header().batch_seq,
                        arrived_as: how.to_owned(),
                    }),
                }),
                _ => Ok(p),
            });
        if let Err(e) = &result {
            self.account_error(e, transport);
        }
        result
    }

    /// `check_chain` and `apply`, in one transaction: a prepared batch enters the catalogue if
    /// it continues its node's chain. Call in the order batches arrived.
    pub fn commit(&self, prepared: Prepared) -> Result<Outcome, IngestError> {
        self.commit_group(vec![prepared])
            .pop()
            .expect("one answer per batch")
    }

    /// [`Ingest::commit`] of several prepared batches, in the order given, in one
    /// transaction: one answer per batch, in that order.
    ///
    /// Why group: most of a commit's cost is rewriting the index pages its inserts land in
    /// (registration numbers, patents and entry names are random keys), and batches committed
    /// together share those pages — a transport that finds several batches ready commits
    /// them at once instead of paying for the same pages again and again. A batch refused,
    /// found a duplicate or ahead of a gap writes nothing and does not hold back the others;
    /// a storage failure rolls the whole group back and every batch gets the error, to be
    /// retried as before.
    pub fn commit_group(&self, group: Vec<Prepared>) -> Vec<Result<Outcome, IngestError>> {
        let applied = self.db.write(|conn| {
            let mut answers = Vec::with_capacity(group.len());
            for prepared in &group {
                match self.check_and_apply(conn, prepared) {
                    Err(IngestError::Store(e)) => return Err(IngestError::Store(e)),
                    answer => answers.push(answer),
                }
            }
            Ok(answers)
        });
        let answers = match applied {
            Ok(answers) => {
                let applied = answers
                    .iter()
                    .filter_map(|a| match a {
                        Ok((Outcome::Applied { applied, .. }, _)) => Some(*applied as u64),
                        _ => None,
                    })
                    .reduce(|a, b| a + b);
                if let Some(entries) = applied {
                    self.applied.notify_one();
                    self.statistics.applied(&self.db, entries);
                }
                answers
            }
            Err(e) => {
                let first = e.to_string();
                let mut answers = vec![Err(e)];
                answers.extend((1..group.len()).map(|_| {
                    Err(IngestError::Store(StoreError::Task(format!(
                        "rolled back with the batch committed beside it: {first}"
                    ))))
                }));
                answers
            }
        };
        group
            .iter()
            .zip(answers)
            .map(|(prepared, answer)| {
                let transport = prepared.transport;
                let answer = answer.map(|(outcome, quarantined)| {
                    self.account_quarantine(&quarantined);
                    outcome
                });
                match &answer {
                    Ok(Outcome::Applied { applied, .. }) => {
                        self.metrics
                            .batches_applied
                            .with_label_values(&[transport.as_str()])
                            .inc();
                        self.metrics.entries_applied.inc_by(*applied as u64);
                    }
                    Ok(Outcome::Duplicate { .. }) => self
                        .metrics
                        .batches_duplicate
                        .with_label_values(&[transport.as_str()])
                        .inc(),
                    Err(e) => self.account_error(e, transport),
                }
                answer
            })
            .collect()
    }

    fn account_quarantine(&self, quarantined: &[(usize, String)]) {
        for (_, reason) in quarantined {
            let label = reason.split(':').next().unwrap_or("invalid");
            if label == "classified" {
                self.metrics.classified_alerts.inc();
            }
            self.metrics
                .entries_quarantined
                .with_label_values(&[label])
                .inc();
        }
    }

    fn account_error(&self, e: &IngestError, transport: Transport) {
        match e {
            IngestError::Gap { .. } => self.metrics.batches_gap.inc(),
            IngestError::Refused { stage, refusal } => {
                self.metrics
                    .batches_refused
                    .with_label_values(&[e.reason()])
                    .inc();
                tracing::warn!(
                    stage,
                    reason = e.reason(),
                    transport = transport.as_str(),
                    "{refusal}"
                );
                self.audit(refusal, stage, transport);
            }
            IngestError::Store(_) => {}
        }
    }

    fn audit(&self, refusal: &Refusal, stage: &str, transport: Transport) {
        let row = (
            refusals::at.eq(catalogue::now()),
            refusals::node_id.eq(refusal.node_id().map(str::to_owned)),
            refusals::batch_seq.eq(refusal.batch_seq().map(|b| b as i64)),
            refusals::transport.eq(transport.as_str()),
            refusals::reason.eq(refusal.reason()),
            refusals::detail.eq(format!("{stage}: {refusal}")),
        );
        let written = self.db.write(|conn| {
            diesel::insert_into(refusals::table)
                .values(row.clone())
                .execute(conn)
                .map_err(StoreError::from)
        });
        if let Err(e) = written {
            tracing::error!(error = %e, "could not write the refusal audit row");
        }
    }

    fn verify_and_screen(
        &self,
        bytes: &[u8],
        transport: Transport,
    ) -> Result<Prepared, IngestError> {
        // verify: envelope, trust store, signature, entry seqs, Merkle root. The chain is
        // checked at commit, against the position stored then.
        let verified = match verify_batch(bytes, &self.limits, &self.trust, None) {
            Ok(v) => v,
            Err(refusal) => {
                // "Unknown" may only mean the trust store could not be read: then it is a
                // storage error (retry), not a refusal (dead letter).
                if let Refusal::UnknownNode { node_id, .. } | Refusal::UnknownKey { node_id, .. } =
                    &refusal
                {
                    let key_id = match &refusal {
                        Refusal::UnknownKey { key_id, .. } => key_id.as_str(),
                        _ => "",
                    };
                    self.trust.find(node_id, key_id)?;
                }
                return Err(IngestError::Refused {
                    stage: "verify",
                    refusal: Box::new(refusal),
                });
            }
        };

        // Key validity was judged at the batch's own created_at: it may not lie ahead of our
        // clock by more than the skew allowed (it may not lie before the batch it follows
        // either, which check_chain judges at commit against the stored position).
        if let Err(refusal) = check_not_future(
            verified.header(),
            OffsetDateTime::now_utc(),
            self.max_future_skew,
        ) {
            return Err(IngestError::Refused {
                stage: "verify",
                refusal: Box::new(refusal),
            });
        }

        // validate + secrecy_gate, entry by entry.
        let node_id = verified.header().node_id.clone();
        let mut accepted: Vec<(usize, Option<RecordMeta>)> = Vec::new();
        let mut quarantined: Vec<(usize, String)> = Vec::new();
        for (index, entry) in verified.entries().iter().enumerate() {
            match (entry.op, verified.record(index)) {
                (Op::Withdraw, _) => accepted.push((index, None)),
                (Op::Upsert, Some(record)) => {
                    // Fail closed: a level that cannot be read is refused like a classified one.
                    let level = SecrecyLevel::of_record(record);
                    if level.is_none_or(|l| !l.may_leave_node()) {
                        let level = level.map_or("unreadable", SecrecyLevel::as_str);
                        quarantined.push((index, format!("classified: {level}")));
                        tracing::error!(
                            node_id = %node_id, seq = entry.seq, id = %entry.id, level,
                            "a node published a classified record (or one whose level cannot be read); it is not stored"
                        );
                        continue;
                    }
                    // Listed once: for the in-clear check and for the merge/link metadata.
                    let hidden = hidden_fields(entry.kind, record);
                    if let Some(pointer) = value_in_clear(&hidden, &verified.sealed_pointers(index))
                    {
                        quarantined.push((index, format!("sensitive value in clear: {pointer}")));
                        tracing::error!(
                            node_id = %node_id, seq = entry.seq, id = %entry.id, pointer,
                            "a node published a value some readers may not see without sealing it; it is not stored"
                        );
                        continue;
                    }
                    match validate_record(entry.kind, record) {
                        Ok(()) => accepted.push((
                            index,
                            Some(catalogue::meta_of_hidden(entry.kind, record, &hidden)),
                        )),
                        Err(errors) => {
                            let first = errors
                                .first()
                                .map(|e| format!("{}: {}", e.pointer, e.message))
                                .unwrap_or_default();
                            quarantined.push((index, format!("invalid: {first}")));
                        }
                    }
                }
                (Op::Upsert, None) => quarantined.push((index, "invalid: no record".into())),
            }
        }
        // What the catalogue needs of the records is in `accepted` now.
        let mut verified = verified;
        verified.drop_records();
        Ok(Prepared {
            verified,
            accepted,
            quarantined,
            transport,
        })
    }

    /// One batch of a group, inside the group's transaction: its outcome and the entries it
    /// quarantined (accounted once the transaction has committed).
    fn check_and_apply(
        &self,
        conn: &mut DbConn,
        prepared: &Prepared,
    ) -> Result<(Outcome, Vec<(usize, String)>), IngestError> {
        let Prepared {
            verified,
            accepted,
            quarantined,
            transport,
        } = prepared;
        let header = verified.header();
        // check_chain against the position as this transaction sees it: after the batches
        // committed beside this one, and re-checked by apply_batch's conditional update, so
        // replicas cannot both apply a batch.
        let position = chain_position_in(conn, &header.node_id)?;
        match check_chain(header, verified.batch_hash(), &position) {
            Ok(()) => {}
            Err(Refusal::Replay {
                node_id,
                batch_seq,
                batch_hash,
                ..
            }) => return replay(conn, node_id, batch_seq, batch_hash).map(|o| (o, Vec::new())),
            Err(Refusal::SeqGap {
                node_id,
                batch_seq,
                gap:
                    Gap::MissingBatches {
                        expected_batch_seq, ..
                    },
            }) => {
                return Err(IngestError::Gap {
                    node_id,
                    expected_batch_seq,
                    found_batch_seq: batch_seq,
                });
            }
            Err(refusal) => {
                return Err(IngestError::Refused {
                    stage: "check_chain",
                    refusal: Box::new(refusal),
                });
            }
        }

        // apply, with the quarantine rows.
        let Some(stats) = catalogue::apply_batch(conn, verified, transport.as_str(), accepted)?
        else {
            // The chain moved between our read and our write (another transport or replica
            // applied batch N first): a duplicate only if it is the very same batch; a batch
            // that lost the race with a different hash is a fork and is refused.
            return replay(
                conn,
                header.node_id.clone(),
                header.batch_seq,
                verified.batch_hash_hex(),
            )
            .map(|o| (o, Vec::new()));
        };
        let mut quarantined = quarantined.clone();
        quarantined.extend(stats.refused.iter().cloned());
        if !quarantined.is_empty() {
            let at = catalogue::now();
            let rows: Vec<_> = quarantined
                .iter()
                .map(|(i, reason)| {
                    let e = &verified.entries()[*i];
                    (
                        quarantine::at.eq(at.clone()),
                        quarantine::node_id.eq(header.node_id.clone()),
                        quarantine::seq.eq(e.seq as i64),
                        quarantine::id.eq(e.id.clone()),
                        quarantine::version.eq(e.version as i64),
                        quarantine::reason.eq(reason.clone()),
                    )
                })
                .collect();
            for chunk in rows.chunks(100) {
                rix_runtime::batch_insert!(
                    conn,
                    diesel::insert_into(quarantine::table).values(chunk)
                )?;
            }
        }
        let outcome = Outcome::Applied {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            last_seq: header.last_seq,
            applied: stats.applied,
            stale: stats.stale,
            quarantined: quarantined.len(),
        };
        Ok((outcome, quarantined))
    }
}

/// A batch from before the node's position: a harmless duplicate if it is the very batch
/// applied then, a refused replay (a fork or a forgery) if it differs.
fn replay(
    conn: &mut DbConn,
    node_id: String,
    batch_seq: u64,
    batch_hash: String,
) -> Result<Outcome, IngestError> {
    let stored: Option<String> = batches::table
        .find((&node_id, batch_seq as i64))
        .select(batches::hash)
        .first(conn)
        .optional()?;
    if stored.as_deref() == Some(batch_hash.as_str()) {
        return Ok(Outcome::Duplicate { node_id, batch_seq });
    }
    let next_batch_seq = chain_position_in(conn, &node_id)?.next_batch_seq;
    Err(IngestError::Refused {
        stage: "check_chain",
        refusal: Box::new(Refusal::Replay {
            node_id,
            batch_seq,
            next_batch_seq,
            batch_hash,
        }),
    })
}
