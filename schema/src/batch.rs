//! The signed batch envelope: how a node's log travels and how a receiver decides to trust it.
//!
//! A node's output is an append-only log of [`Entry`]s with gap-free seqs. Entries travel in
//! [`SignedBatch`]es: a [`BatchHeader`] naming the node, the batch's place in the node's chain of
//! batches, its range of seqs and the RFC 6962 Merkle root of its entries, signed once with the
//! node's Ed25519 key over the header's RFC 8785 canonical JSON. One signature per batch instead
//! of one per record is what lets a gateway verify tens of thousands of records a second.
//!
//! [`verify_batch`] is the receiving side's single gate: it takes the bytes as they arrived and
//! either returns a [`VerifiedBatch`] or a [`Refusal`] that says precisely what is wrong, with a
//! stable [`Refusal::reason`] code for metrics and audit rows. Nothing here does I/O or reads a
//! clock: the trust store comes in through [`KeyRing`], the chain position through
//! [`ChainPosition`], and time stamps are the header's own.
//!
//! The wire shape is `schemas/batch.json`; the Rust types refuse unknown fields, so what is
//! signed and hashed is exactly what was parsed.
//!
//! **Format 2** (the header says `"format": 2`): records travel in *placeholder form* — every
//! value some reader may not see is a salted digest `{"_sd": …}` — with their disclosures beside
//! the entries ([`crate::disclosure`]), and every entry carries a random `salt` of its own so
//! that no leaf hash, of any entry, can be recomputed from a guess. The Merkle leaf is the entry
//! in placeholder form, so a reader given only some disclosures can still verify what they see.
//! `schema/VERIFYING.md` specifies it for third-party verifiers.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::RecordKind;
use crate::canonical::{
    MAX_SAFE_INTEGER, NoWalker, Walker, parse_sha256_hex, sha256, to_canonical_vec,
    write_canonical_number, write_canonical_str, write_canonical_value_walked,
};
use crate::disclosure::{self, Disclosure, DisclosureError};
use crate::merkle::{self, InclusionProof, MerkleTree};
use crate::signing::{SIGNATURE_LEN, SigningKey, VerifyingKey};

/// The batch format this crate writes and reads: 2, selective disclosure (see the module doc).
pub const BATCH_FORMAT: u32 = 2;

/// `prev_batch_hash` of a node's first batch: 64 zeros.
pub const GENESIS_PREV_HASH: [u8; 32] = [0; 32];

/// What an entry does to the record it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Create the record or replace it with this newer version; the entry carries the record.
    Upsert,
    /// Withdraw the record from every read path; the entry carries no record.
    Withdraw,
}

impl Op {
    /// The wire name (`upsert`, `withdraw`).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Withdraw => "withdraw",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change in a node's log: a record version published, or a record withdrawn.
///
/// Its Merkle leaf is the RFC 8785 canonical JSON of the whole object, so the seq, the kind, the
/// id and the version are covered by the signature as much as the record is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the node's log: per node, starting at 1, gap-free.
    pub seq: u64,
    /// The kind of record the entry is about.
    pub kind: RecordKind,
    /// Upsert or withdraw.
    pub op: Op,
    /// Node-local record id; the global id is `{node_id}/{id}`.
    pub id: String,
    /// The record's version (monotonic per record), so receivers apply idempotently.
    pub version: u64,
    /// The record, present exactly when `op` is upsert. In a signed batch it is in placeholder
    /// form ([`crate::disclosure`]); before [`SignedBatch::sign`] it is the full record.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::strict_json::deserialize_optional_value"
    )]
    pub record: Option<Value>,
    /// 128 random bits (base64url), so that the entry's leaf hash cannot be recomputed from a
    /// guess at its content. Filled by [`SignedBatch::sign`]; empty before.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub salt: String,
}

impl Entry {
    /// An entry publishing `record` as `version` of record `id`.
    pub fn upsert(
        seq: u64,
        kind: RecordKind,
        id: impl Into<String>,
        version: u64,
        record: Value,
    ) -> Entry {
        Entry {
            seq,
            kind,
            op: Op::Upsert,
            id: id.into(),
            version,
            record: Some(record),
            salt: String::new(),
        }
    }

    /// An entry withdrawing record `id` as of `version`.
    pub fn withdraw(seq: u64, kind: RecordKind, id: impl Into<String>, version: u64) -> Entry {
        Entry {
            seq,
            kind,
            op: Op::Withdraw,
            id: id.into(),
            version,
            record: None,
            salt: String::new(),
        }
    }

    /// The entry's Merkle leaf bytes: RFC 8785 canonical JSON of the whole entry.
    ///
    /// Written member by member in canonical order with the fast writers of
    /// [`crate::canonical`]; the same bytes as [`to_canonical_vec`] of the entry (tested).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.canonical_bytes_walked(&mut NoWalker)
    }

    /// [`Entry::canonical_bytes`], noting on the way where the record's placeholders are.
    fn canonical_bytes_walked<'a, W: Walker<'a>>(&'a self, walker: &mut W) -> Vec<u8> {
        let record_hint = if self.record.is_some() { 1024 } else { 0 };
        let mut out = Vec::with_capacity(96 + self.id.len() + record_hint);
        // Members sorted by name: id, kind, op, record, salt, seq, version.
        out.extend_from_slice(b"{\"id\":");
        write_canonical_str(&self.id, &mut out);
        out.extend_from_slice(b",\"kind\":");
        write_canonical_str(self.kind.as_str(), &mut out);
        out.extend_from_slice(b",\"op\":");
        write_canonical_str(self.op.as_str(), &mut out);
        if let Some(record) = &self.record {
            out.extend_from_slice(b",\"record\":");
            write_canonical_value_walked(record, &mut out, walker);
        }
        if !self.salt.is_empty() {
            out.extend_from_slice(b",\"salt\":");
            write_canonical_str(&self.salt, &mut out);
        }
        out.extend_from_slice(b",\"seq\":");
        write_canonical_number(&self.seq.into(), &mut out);
        out.extend_from_slice(b",\"version\":");
        write_canonical_number(&self.version.into(), &mut out);
        out.push(b'}');
        out
    }

    /// The entry's RFC 6962 leaf hash.
    pub fn leaf_hash(&self) -> [u8; 32] {
        merkle::leaf_hash(&self.canonical_bytes())
    }
}

/// What a node signs for each batch.
///
/// Its SHA-256 over canonical JSON ([`BatchHeader::hash`]) is the batch's identity: the next
/// batch names it in `prev_batch_hash`, chaining every batch to all before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchHeader {
    /// The wire format: [`BATCH_FORMAT`].
    pub format: u32,
    /// The publishing node (`prov-530000`, `most`…).
    pub node_id: String,
    /// 1 for the node's first batch, then +1.
    pub batch_seq: u64,
    /// Seq of the first entry.
    pub first_seq: u64,
    /// Seq of the last entry.
    pub last_seq: u64,
    /// Hex SHA-256 of the previous batch's canonical header; 64 zeros for the first batch.
    pub prev_batch_hash: String,
    /// Hex RFC 6962 Merkle root of the canonical entries.
    pub merkle_root: String,
    /// When the node signed the batch, RFC 3339 in UTC. Key validity is judged at this instant.
    pub created_at: String,
    /// Which of the node's keys signed ([`VerifyingKey::key_id`]).
    pub key_id: String,
}

impl BatchHeader {
    /// The bytes the signature covers: RFC 8785 canonical JSON of the header.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        to_canonical_vec(self).expect("a header is strings and integers")
    }

    /// The batch hash: SHA-256 of the canonical header.
    pub fn hash(&self) -> [u8; 32] {
        sha256(&self.canonical_bytes())
    }

    /// The number of entries the header says the batch holds (0 if `last_seq < first_seq`,
    /// which no valid header has).
    pub fn entry_count(&self) -> u64 {
        match self.last_seq.checked_sub(self.first_seq) {
            Some(d) => d.saturating_add(1),
            None => 0,
        }
    }
}

/// SHA-256 of a header's canonical JSON: what the next batch's `prev_batch_hash` carries.
pub fn batch_hash(header: &BatchHeader) -> [u8; 32] {
    header.hash()
}

/// A batch as it travels: header, signature, entries, disclosures (`schemas/batch.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedBatch {
    /// The signed header.
    pub header: BatchHeader,
    /// Ed25519 signature over the canonical header, standard padded base64.
    pub signature: String,
    /// The entries, in seq order, records in placeholder form.
    pub entries: Vec<Entry>,
    /// The disclosures of the batch's records, in entry order. Each belongs to the entry whose
    /// record holds its digest: bound to the signature through that digest.
    pub disclosures: Vec<String>,
}

/// A batch could not be signed because it would not be a valid batch.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// Nothing to sign.
    #[error("a batch needs at least one entry")]
    Empty,
    /// The entries' seqs have a hole or go backwards.
    #[error(
        "entries of a batch must have consecutive seqs: entry #{index} has seq {found}, expected {expected}"
    )]
    NotContiguous {
        /// Position of the offending entry.
        index: usize,
        /// The seq it should have had.
        expected: u64,
        /// The seq it has.
        found: u64,
    },
    /// A field the receiving side would refuse (node id, record id, record presence…).
    #[error("the batch would be refused as malformed: {0}")]
    Invalid(String),
    /// The time stamp cannot be written as RFC 3339.
    #[error("created_at cannot be written as RFC 3339 (years 0000–9999 only): {0}")]
    Time(#[from] time::error::Format),
}

impl SignedBatch {
    /// Builds and signs a batch from entries carrying **full** records: seals every hidden value
    /// of each record behind a salted digest ([`disclosure::conceal`], salts from OpenSSL's
    /// random generator), gives each entry its own random salt, computes the seq range and the
    /// Merkle root, fills the header, signs its canonical JSON with `key`.
    ///
    /// `prev_batch_hash` is the previous batch's [`BatchHeader::hash`] ([`GENESIS_PREV_HASH`] for
    /// the first), `created_at` the signing time (written in UTC). Refuses anything
    /// [`verify_batch`] would call malformed, so a node never publishes a batch the gateway
    /// must refuse for its shape.
    pub fn sign(
        node_id: &str,
        batch_seq: u64,
        prev_batch_hash: [u8; 32],
        entries: Vec<Entry>,
        created_at: OffsetDateTime,
        key: &SigningKey,
    ) -> Result<SignedBatch, SignError> {
        Self::sign_with_salts(
            node_id,
            batch_seq,
            prev_batch_hash,
            entries,
            created_at,
            key,
            &mut disclosure::openssl_salt,
        )
    }

    /// [`SignedBatch::sign`] with the salts taken from `salt` (deterministic tests, fixtures).
    pub fn sign_with_salts(
        node_id: &str,
        batch_seq: u64,
        prev_batch_hash: [u8; 32],
        mut entries: Vec<Entry>,
        created_at: OffsetDateTime,
        key: &SigningKey,
        salt: &mut dyn FnMut() -> [u8; disclosure::SALT_LEN],
    ) -> Result<SignedBatch, SignError> {
        let first = entries.first().ok_or(SignError::Empty)?;
        let first_seq = first.seq;
        for (index, entry) in entries.iter().enumerate() {
            let expected = first_seq.checked_add(index as u64);
            if expected != Some(entry.seq) {
                return Err(SignError::NotContiguous {
                    index,
                    expected: expected.unwrap_or(u64::MAX),
                    found: entry.seq,
                });
            }
        }
        check_node_id(node_id).map_err(SignError::Invalid)?;
        check_counter("/header/batch_seq", batch_seq).map_err(SignError::Invalid)?;
        check_entries(&entries, false).map_err(SignError::Invalid)?;

        let mut disclosures = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter_mut().enumerate() {
            entry.salt = B64URL.encode(salt());
            let Some(record) = entry.record.take() else {
                continue;
            };
            if disclosure::uses_digest_key(&record) {
                return Err(SignError::Invalid(format!(
                    "/entries/{i}/record: a record may not have a member named \"_sd\" (it marks sealed values)"
                )));
            }
            let (sealed, ds) = disclosure::conceal(entry.kind, record, salt);
            entry.record = Some(sealed);
            disclosures.extend(ds.into_iter().map(|d| d.text));
        }
        Self::sign_as_is(
            node_id,
            batch_seq,
            prev_batch_hash,
            entries,
            disclosures,
            created_at,
            key,
        )
    }

    /// Signs entries exactly as given — records already in placeholder form, salts already
    /// set — with the given disclosures: no sealing. For adversarial tests and fixtures that
    /// must produce what a faulty or hostile node would; a node uses [`SignedBatch::sign`].
    pub fn sign_as_is(
        node_id: &str,
        batch_seq: u64,
        prev_batch_hash: [u8; 32],
        entries: Vec<Entry>,
        disclosures: Vec<String>,
        created_at: OffsetDateTime,
        key: &SigningKey,
    ) -> Result<SignedBatch, SignError> {
        let first_seq = entries.first().ok_or(SignError::Empty)?.seq;
        let last_seq = first_seq + (entries.len() as u64 - 1);
        let tree = MerkleTree::new(entries.iter().map(Entry::canonical_bytes));
        let header = BatchHeader {
            format: BATCH_FORMAT,
            node_id: node_id.to_owned(),
            batch_seq,
            first_seq,
            last_seq,
            prev_batch_hash: hex::encode(prev_batch_hash),
            merkle_root: hex::encode(tree.root()),
            created_at: created_at.to_offset(UtcOffset::UTC).format(&Rfc3339)?,
            key_id: key.key_id(),
        };
        let signature = BASE64.encode(key.sign(&header.canonical_bytes()));
        Ok(SignedBatch {
            header,
            signature,
            entries,
            disclosures,
        })
    }

    /// The batch as JSON bytes: what the node stores, publishes and serves byte for byte.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a batch is plain JSON")
    }

    /// The batch hash ([`BatchHeader::hash`]).
    pub fn hash(&self) -> [u8; 32] {
        self.header.hash()
    }

    /// The inclusion proof of the entry at position `index`; `None` past the end.
    ///
    /// Builds the batch's tree; for every entry's proof use [`SignedBatch::inclusion_proofs`].
    pub fn inclusion_proof(&self, index: usize) -> Option<InclusionProof> {
        self.tree().prove(index)
    }

    /// The inclusion proof of every entry, in entry order, from one tree.
    pub fn inclusion_proofs(&self) -> Vec<InclusionProof> {
        let tree = self.tree();
        (0..tree.len())
            .map(|i| tree.prove(i).expect("index is inside the tree"))
            .collect()
    }

    fn tree(&self) -> MerkleTree<Vec<u8>> {
        MerkleTree::new(self.entries.iter().map(Entry::canonical_bytes))
    }
}

/// How much a receiver accepts in one batch, checked before any expensive work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Largest batch in bytes, checked before parsing.
    pub max_bytes: usize,
    /// Most entries in one batch, checked right after parsing.
    pub max_entries: usize,
}

impl Default for BatchLimits {
    /// 16 MiB and 10,000 entries.
    ///
    /// A batch is verified in memory as a whole, so its size bounds what one delivery can make
    /// the gateway allocate; 16 MiB holds 10,000 typical records (1–1.5 KB each) with room to
    /// spare, and keeps a prefetch of a few batches per node well inside the gateway's memory
    /// budget. 10,000 entries amortise the one signature check (~150 µs) to nothing per record;
    /// bigger batches would only add latency and make a refused batch costlier to re-fetch.
    fn default() -> Self {
        BatchLimits {
            max_bytes: 16 * 1024 * 1024,
            max_entries: 10_000,
        }
    }
}

/// A public key the receiver trusts for one node, with the window in which it may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The node's public key.
    pub key: VerifyingKey,
    /// Batches created before this instant are refused (`None`: no lower bound).
    pub valid_from: Option<OffsetDateTime>,
    /// Batches created at or after this instant are refused: the end of a planned rotation
    /// (`None`: no upper bound).
    pub valid_until: Option<OffsetDateTime>,
    /// The key was revoked (compromised or retired in a hurry). Every batch it signed is then
    /// refused, whatever its `created_at`: whoever holds a compromised key can backdate a header.
    pub revoked_at: Option<OffsetDateTime>,
    /// The key may have been in other hands since this instant: batches created at or after it
    /// are refused, earlier ones stay trusted (so a rebuild from the feeds keeps the history
    /// the key signed while it was safe). Backdating is what the receiver's chain check
    /// ([`ChainPosition::last_created_at`]) stops: a batch may not be created before the one
    /// it follows.
    pub compromised_since: Option<OffsetDateTime>,
}

impl TrustedKey {
    /// A key trusted without time limits, not revoked.
    pub fn new(key: VerifyingKey) -> TrustedKey {
        TrustedKey {
            key,
            valid_from: None,
            valid_until: None,
            revoked_at: None,
            compromised_since: None,
        }
    }
}

/// What a trust store knows about a `(node_id, key_id)` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// The node is known and this is one of its keys.
    Found(TrustedKey),
    /// The node is known, but no key with this id belongs to it.
    UnknownKey,
    /// The trust store has never heard of the node.
    UnknownNode,
}

/// The receiver's trust store, as verification needs it.
///
/// The gateway implements it over its database, the node over its own key for a self-check,
/// tests with [`MemoryKeyRing`]. An implementation must return the key whose
/// [`VerifyingKey::key_id`] is `key_id`; the signature check is what finally binds the two.
pub trait KeyRing {
    /// The trusted key `key_id` of node `node_id`, or which of the two is unknown.
    fn lookup(&self, node_id: &str, key_id: &str) -> KeyLookup;
}

impl<K: KeyRing + ?Sized> KeyRing for &K {
    fn lookup(&self, node_id: &str, key_id: &str) -> KeyLookup {
        (**self).lookup(node_id, key_id)
    }
}

/// A trust store in memory: the node's self-check, tests, small tools.
#[derive(Debug, Clone, Default)]
pub struct MemoryKeyRing {
    nodes: HashMap<String, HashMap<String, TrustedKey>>,
}

impl MemoryKeyRing {
    /// An empty trust store.
    pub fn new() -> MemoryKeyRing {
        MemoryKeyRing::default()
    }

    /// Makes a node known without any key yet (its batches are then refused as `unknown_key`).
    pub fn add_node(&mut self, node_id: &str) -> &mut MemoryKeyRing {
        self.nodes.entry(node_id.to_owned()).or_default();
        self
    }

    /// Trusts `key` for `node_id`, replacing any entry with the same key id.
    pub fn add_key(&mut self, node_id: &str, key: TrustedKey) -> &mut MemoryKeyRing {
        self.nodes
            .entry(node_id.to_owned())
            .or_default()
            .insert(key.key.key_id(), key);
        self
    }

    /// Trusts `key` for `node_id` without time limits.
    pub fn trust(&mut self, node_id: &str, key: VerifyingKey) -> &mut MemoryKeyRing {
        self.add_key(node_id, TrustedKey::new(key))
    }

    /// The stored entry, to adjust its validity or revoke it.
    pub fn key_mut(&mut self, node_id: &str, key_id: &str) -> Option<&mut TrustedKey> {
        self.nodes.get_mut(node_id)?.get_mut(key_id)
    }

    /// Revokes a key as of `at`; false if the key is not in the store.
    pub fn revoke(&mut self, node_id: &str, key_id: &str, at: OffsetDateTime) -> bool {
        match self.key_mut(node_id, key_id) {
            Some(k) => {
                k.revoked_at = Some(at);
                true
            }
            None => false,
        }
    }
}

impl KeyRing for MemoryKeyRing {
    fn lookup(&self, node_id: &str, key_id: &str) -> KeyLookup {
        match self.nodes.get(node_id) {
            None => KeyLookup::UnknownNode,
            Some(keys) => keys
                .get(key_id)
                .map_or(KeyLookup::UnknownKey, |k| KeyLookup::Found(k.clone())),
        }
    }
}

/// Where a node's chain stands at the receiver: what the next batch must look like.
///
/// Callers persist it per node and advance it with [`ChainPosition::after`] (or
/// [`VerifiedBatch::next_position`]) once they have committed a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPosition {
    /// The `batch_seq` the next batch must carry.
    pub next_batch_seq: u64,
    /// The `first_seq` the next batch must carry.
    pub next_seq: u64,
    /// The hash the next batch must name as `prev_batch_hash`.
    pub prev_batch_hash: [u8; 32],
    /// The `created_at` of the last batch accepted (`None` before the first, or where the
    /// receiver does not know it): the next batch may not be created earlier. Key validity is
    /// judged at a batch's own `created_at`, which its signer chooses; without this bound a
    /// retired or compromised key could sign a batch dated back inside its window.
    pub last_created_at: Option<OffsetDateTime>,
}

impl ChainPosition {
    /// Before a node's first batch: batch 1, seq 1, zero hash, no time yet.
    pub const fn genesis() -> ChainPosition {
        ChainPosition {
            next_batch_seq: 1,
            next_seq: 1,
            prev_batch_hash: GENESIS_PREV_HASH,
            last_created_at: None,
        }
    }

    /// The position right after the batch with this header.
    pub fn after(header: &BatchHeader) -> ChainPosition {
        ChainPosition {
            next_batch_seq: header.batch_seq.saturating_add(1),
            next_seq: header.last_seq.saturating_add(1),
            prev_batch_hash: header.hash(),
            last_created_at: OffsetDateTime::parse(&header.created_at, &Rfc3339).ok(),
        }
    }
}

impl Default for ChainPosition {
    fn default() -> Self {
        ChainPosition::genesis()
    }
}

/// Which limit an oversized batch broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeUnit {
    /// The batch's length in bytes.
    Bytes,
    /// The number of entries.
    Entries,
}

impl fmt::Display for SizeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SizeUnit::Bytes => "bytes",
            SizeUnit::Entries => "entries",
        })
    }
}

/// Where a node's log has a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// Inside the batch: the header covers `seq`, but no entry carries it (dropped in transit).
    MissingEntry {
        /// The first seq in the header's range that no entry carries.
        seq: u64,
    },
    /// Between batches: batches `expected_batch_seq..found_batch_seq` never arrived.
    MissingBatches {
        /// The batch the receiver is waiting for.
        expected_batch_seq: u64,
        /// The batch that came instead.
        found_batch_seq: u64,
    },
    /// The batch is next in the chain but its entries do not start where the last batch's
    /// ended: the node's own numbering skipped or repeated seqs.
    Discontinuity {
        /// The seq that comes next.
        expected_seq: u64,
        /// The batch's `first_seq`.
        found_first_seq: u64,
    },
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Gap::MissingEntry { seq } => write!(
                f,
                "its header covers seq {seq} but no entry carries it (an entry was dropped)"
            ),
            Gap::MissingBatches {
                expected_batch_seq,
                found_batch_seq,
            } => write!(
                f,
                "batch {expected_batch_seq} was expected next, so batches {expected_batch_seq}..={} never arrived",
                found_batch_seq - 1
            ),
            Gap::Discontinuity {
                expected_seq,
                found_first_seq,
            } => write!(
                f,
                "its entries start at seq {found_first_seq} but seq {expected_seq} comes next"
            ),
        }
    }
}

/// Why a batch was refused. Each variant says what happened and what to do; [`Refusal::reason`]
/// gives the stable code for the `reason` label of `rix_gateway_batches_refused_total`, audit
/// rows and dead-letter headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The batch is over a size limit.
    #[error(
        "batch has {size} {unit}, over the limit of {limit} {unit}; ask the node to publish smaller batches, or raise the receiver's batch limit if it is too tight"
    )]
    Oversized {
        /// Which limit.
        unit: SizeUnit,
        /// The batch's size in that unit.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a well-formed signed batch: not JSON, missing or extra fields, wrong types, or values
    /// of the wrong shape.
    #[error(
        "batch is malformed: {detail}; it is not a valid rix signed batch of format 2 — check the sender's version and logs"
    )]
    Malformed {
        /// serde's message (with line and column), or the JSON pointer and the rule broken.
        detail: String,
    },
    /// The trust store does not know the node.
    #[error(
        "batch {batch_seq} names node {node_id}, which is not in the trust store; if this node should publish here, add it and its key with `rix trust add`"
    )]
    UnknownNode {
        /// The node the header names.
        node_id: String,
        /// The batch.
        batch_seq: u64,
    },
    /// The node is known but the key the header names is not one of its keys.
    #[error(
        "batch {batch_seq} from {node_id} is signed with key {key_id}, which the trust store does not hold for this node; if the node rotated its key, add the new key with `rix trust add`"
    )]
    UnknownKey {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// The key the header names.
        key_id: String,
    },
    /// The key was revoked.
    #[error(
        "batch {batch_seq} from {node_id} is signed with key {key_id}, which was revoked at {at}; ask the node to rotate its key and publish again with the new one",
        at = rfc3339(revoked_at)
    )]
    KeyRevoked {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// The revoked key.
        key_id: String,
        /// When it was revoked.
        revoked_at: OffsetDateTime,
    },
    /// The key may be in other hands since `compromised_since`, and the batch was created at or
    /// after that instant. Batches it signed before stay accepted.
    #[error(
        "batch {batch_seq} from {node_id} was created at {created_at} and is signed with key {key_id}, which is compromised since {since}: batches it signed from then on are refused (earlier ones stay accepted); if the node still signs with this key, it must rotate to a new one (`rix keygen`, then `rix trust rotate` on the gateway)",
        since = rfc3339(compromised_since)
    )]
    KeyCompromised {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// The compromised key.
        key_id: String,
        /// The header's `created_at`.
        created_at: String,
        /// Since when the key is compromised.
        compromised_since: OffsetDateTime,
    },
    /// The batch was created outside the key's validity window.
    #[error(
        "batch {batch_seq} from {node_id} was created at {created_at}, outside the validity of key {key_id} ({window}); check the node's clock and that it signs with its current key",
        window = validity(valid_from.as_ref(), valid_until.as_ref())
    )]
    KeyNotValid {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// The key.
        key_id: String,
        /// The header's `created_at`.
        created_at: String,
        /// Start of the key's validity.
        valid_from: Option<OffsetDateTime>,
        /// End of the key's validity.
        valid_until: Option<OffsetDateTime>,
    },
    /// The signature does not verify over the canonical header with the named key.
    #[error(
        "batch {batch_seq} from {node_id} does not carry a valid signature by key {key_id}: the header or the signature was altered after signing; fetch the batch again from the node's feed, and if it persists check which key the node signs with"
    )]
    BadSignature {
        /// The node the header names.
        node_id: String,
        /// The batch the header names.
        batch_seq: u64,
        /// The key the header names.
        key_id: String,
    },
    /// A seq is missing: inside the batch, or between the last accepted batch and this one.
    #[error(
        "batch {batch_seq} from {node_id} leaves a gap: {gap}; fetch the missing range from the node's feed"
    )]
    SeqGap {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// Where the hole is.
        gap: Gap,
    },
    /// Every seq of the header's range is there, but not in order (or some appear twice, or
    /// beyond the range).
    #[error(
        "entry #{index} of batch {batch_seq} from {node_id} carries seq {seq} out of place: the header covers seqs {first_seq}..={last_seq}, each once and in order; the entries were reordered or duplicated in transit — fetch the batch again from the node's feed"
    )]
    OutOfOrder {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// Position of the first misplaced entry.
        index: usize,
        /// The seq it carries.
        seq: u64,
        /// The header's `first_seq`.
        first_seq: u64,
        /// The header's `last_seq`.
        last_seq: u64,
    },
    /// The entries are not the ones the signed header commits to.
    #[error(
        "the entries of batch {batch_seq} from {node_id} do not match the Merkle root its signed header carries ({expected}; the entries give {computed}): an entry was altered after signing; fetch the batch again from the node's feed"
    )]
    MerkleMismatch {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// The root in the header, hex.
        expected: String,
        /// The root of the entries received, hex.
        computed: String,
    },
    /// The batch names a different predecessor than the last batch accepted: a fork.
    #[error(
        "batch {batch_seq} from {node_id} does not follow the last accepted batch: it names {found} as its predecessor, but the last accepted batch hashes to {expected}; the node's log has forked (restored from an old backup? two nodes under one id?) — stop ingesting from this node and investigate"
    )]
    BrokenChain {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// Hash of the last accepted batch, hex.
        expected: String,
        /// The batch's `prev_batch_hash`.
        found: String,
    },
    /// A disclosure does not match the entry it travels with: altered, moved, missing or extra.
    #[error(
        "batch {batch_seq} from {node_id} has a bad disclosure{at}: {detail}; the disclosures were altered in transit or the node sealed the record wrongly — fetch the batch again from the node's feed",
        at = index.map(|i| format!(" for entry #{i}")).unwrap_or_default()
    )]
    BadDisclosure {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// Position of the entry whose record it concerns, when one does.
        index: Option<usize>,
        /// What is wrong.
        detail: String,
    },
    /// The batch arrived by way of another node than the one that signed it: under another
    /// node's routing key, or on another node's feed.
    #[error(
        "batch {batch_seq}, signed by {node_id}, arrived as {arrived_as}; a node publishes only its own batches, under its own routing key and on its own feed — check the broker's topic permissions and the feed URL in the trust store"
    )]
    Misdirected {
        /// The node that signed it.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// How it arrived (`routing key achievement.most`, `the feed of most`).
        arrived_as: String,
    },
    /// The batch says it was created before the batch it follows. A node's clock only moves
    /// forward along its chain (the node makes sure of it), so this is a forgery dated back into
    /// some key's window — or a node whose stored log was tampered with.
    #[error(
        "batch {batch_seq} from {node_id} says it was created at {created_at}, before the batch it follows ({previous}); a node dates its batches in chain order, so this one was dated back (by whoever holds a retired or compromised key?) — it is refused; investigate with the node's operator",
        previous = rfc3339(previous_created_at)
    )]
    Backdated {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// The header's `created_at`.
        created_at: String,
        /// The `created_at` of the last batch accepted.
        previous_created_at: OffsetDateTime,
    },
    /// The batch says it was created later than the receiver's clock allows.
    #[error(
        "batch {batch_seq} from {node_id} says it was created at {created_at}, more than {max_skew_secs} s after the receiver's clock ({now}); a batch from the future could pre-date a key's revocation or retirement — it is refused until then. Check the node's clock (NTP)",
        now = rfc3339(now)
    )]
    FutureDated {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// The header's `created_at`.
        created_at: String,
        /// The receiver's clock when it judged the batch.
        now: OffsetDateTime,
        /// How far ahead of that clock a batch may be dated.
        max_skew_secs: u64,
    },
    /// The batch is at or before a batch already accepted.
    #[error(
        "batch {batch_seq} from {node_id} was already accepted (next expected: batch {next_batch_seq}); a duplicate delivery is harmless — acknowledge and drop it, but if its hash {batch_hash} differs from the stored batch {batch_seq} the node's log has forked"
    )]
    Replay {
        /// The node.
        node_id: String,
        /// The batch.
        batch_seq: u64,
        /// The batch the receiver is waiting for.
        next_batch_seq: u64,
        /// This batch's hash, hex, to compare with the one stored.
        batch_hash: String,
    },
}

impl Refusal {
    /// Stable code for metrics labels, audit rows and dead-letter headers; never changes.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Oversized { .. } => "oversized",
            Refusal::Malformed { .. } => "malformed",
            Refusal::UnknownNode { .. } => "unknown_node",
            Refusal::UnknownKey { .. } => "unknown_key",
            Refusal::KeyRevoked { .. } => "key_revoked",
            Refusal::KeyCompromised { .. } => "key_compromised",
            Refusal::KeyNotValid { .. } => "key_not_valid",
            Refusal::BadSignature { .. } => "bad_signature",
            Refusal::SeqGap { .. } => "seq_gap",
            Refusal::OutOfOrder { .. } => "out_of_order",
            Refusal::MerkleMismatch { .. } => "merkle_mismatch",
            Refusal::BadDisclosure { .. } => "bad_disclosure",
            Refusal::Misdirected { .. } => "misdirected",
            Refusal::BrokenChain { .. } => "broken_chain",
            Refusal::Replay { .. } => "replay",
            Refusal::Backdated { .. } => "backdated",
            Refusal::FutureDated { .. } => "future_dated",
        }
    }

    /// Every reason code, for pre-registering metric label values.
    pub const REASONS: [&'static str; 17] = [
        "oversized",
        "malformed",
        "unknown_node",
        "unknown_key",
        "key_revoked",
        "key_compromised",
        "key_not_valid",
        "bad_signature",
        "seq_gap",
        "out_of_order",
        "merkle_mismatch",
        "bad_disclosure",
        "misdirected",
        "broken_chain",
        "replay",
        "backdated",
        "future_dated",
    ];

    /// The node the batch claims to come from, when the refusal got far enough to know it.
    pub fn node_id(&self) -> Option<&str> {
        match self {
            Refusal::Oversized { .. } | Refusal::Malformed { .. } => None,
            Refusal::UnknownNode { node_id, .. }
            | Refusal::UnknownKey { node_id, .. }
            | Refusal::KeyRevoked { node_id, .. }
            | Refusal::KeyCompromised { node_id, .. }
            | Refusal::Backdated { node_id, .. }
            | Refusal::FutureDated { node_id, .. }
            | Refusal::KeyNotValid { node_id, .. }
            | Refusal::BadSignature { node_id, .. }
            | Refusal::SeqGap { node_id, .. }
            | Refusal::OutOfOrder { node_id, .. }
            | Refusal::MerkleMismatch { node_id, .. }
            | Refusal::BadDisclosure { node_id, .. }
            | Refusal::Misdirected { node_id, .. }
            | Refusal::BrokenChain { node_id, .. }
            | Refusal::Replay { node_id, .. } => Some(node_id),
        }
    }

    /// The batch seq the header claims, when the refusal got far enough to know it.
    pub fn batch_seq(&self) -> Option<u64> {
        match self {
            Refusal::Oversized { .. } | Refusal::Malformed { .. } => None,
            Refusal::UnknownNode { batch_seq, .. }
            | Refusal::UnknownKey { batch_seq, .. }
            | Refusal::KeyRevoked { batch_seq, .. }
            | Refusal::KeyCompromised { batch_seq, .. }
            | Refusal::Backdated { batch_seq, .. }
            | Refusal::FutureDated { batch_seq, .. }
            | Refusal::KeyNotValid { batch_seq, .. }
            | Refusal::BadSignature { batch_seq, .. }
            | Refusal::SeqGap { batch_seq, .. }
            | Refusal::OutOfOrder { batch_seq, .. }
            | Refusal::MerkleMismatch { batch_seq, .. }
            | Refusal::BadDisclosure { batch_seq, .. }
            | Refusal::Misdirected { batch_seq, .. }
            | Refusal::BrokenChain { batch_seq, .. }
            | Refusal::Replay { batch_seq, .. } => Some(*batch_seq),
        }
    }
}

fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn validity(from: Option<&OffsetDateTime>, until: Option<&OffsetDateTime>) -> String {
    match (from, until) {
        (Some(f), Some(u)) => format!("valid from {} until {}", rfc3339(f), rfc3339(u)),
        (Some(f), None) => format!("valid from {}", rfc3339(f)),
        (None, Some(u)) => format!("valid until {}", rfc3339(u)),
        (None, None) => "valid at all times".to_owned(),
    }
}

/// Step 9 of [`verify_batch`] on its own: does an authentic batch (its header and hash) continue
/// the chain at `pos`? For receivers that verify batches in parallel without a position and
/// check the chain later, in order, where they commit.
pub fn check_chain(
    header: &BatchHeader,
    batch_hash: [u8; 32],
    pos: &ChainPosition,
) -> Result<(), Refusal> {
    if header.batch_seq < pos.next_batch_seq {
        return Err(Refusal::Replay {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            next_batch_seq: pos.next_batch_seq,
            batch_hash: hex::encode(batch_hash),
        });
    }
    if header.batch_seq > pos.next_batch_seq {
        return Err(Refusal::SeqGap {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            gap: Gap::MissingBatches {
                expected_batch_seq: pos.next_batch_seq,
                found_batch_seq: header.batch_seq,
            },
        });
    }
    if parse_sha256_hex(&header.prev_batch_hash) != Some(pos.prev_batch_hash) {
        return Err(Refusal::BrokenChain {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            expected: hex::encode(pos.prev_batch_hash),
            found: header.prev_batch_hash.clone(),
        });
    }
    if header.first_seq != pos.next_seq {
        return Err(Refusal::SeqGap {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            gap: Gap::Discontinuity {
                expected_seq: pos.next_seq,
                found_first_seq: header.first_seq,
            },
        });
    }
    if let Some(previous) = pos.last_created_at {
        // An unparseable time cannot be later than anything: refused as backdated too.
        let created_at = OffsetDateTime::parse(&header.created_at, &Rfc3339).ok();
        if created_at.is_none_or(|t| t < previous) {
            return Err(Refusal::Backdated {
                node_id: header.node_id.clone(),
                batch_seq: header.batch_seq,
                created_at: header.created_at.clone(),
                previous_created_at: previous,
            });
        }
    }
    Ok(())
}

/// Whether an authentic batch is dated no later than `now + max_skew`: the receiver's own
/// clock is the only bound on how far ahead a signer may date a batch (this crate reads no
/// clock; the caller passes it). A batch dated ahead would be judged against the key's
/// window at a time that has not come, e.g. before a retirement or revocation the operator is
/// about to record; refusing it until its time comes costs an honest node nothing but its
/// clock's error.
pub fn check_not_future(
    header: &BatchHeader,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
) -> Result<(), Refusal> {
    let limit =
        now.saturating_add(time::Duration::try_from(max_skew).unwrap_or(time::Duration::MAX));
    let created_at = OffsetDateTime::parse(&header.created_at, &Rfc3339).ok();
    if created_at.is_none_or(|t| t > limit) {
        return Err(Refusal::FutureDated {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            created_at: header.created_at.clone(),
            now,
            max_skew_secs: max_skew.as_secs(),
        });
    }
    Ok(())
}

/// A batch that passed every check of [`verify_batch`], with what the receiver stores next.
///
/// Keeps each entry's canonical bytes (computed once during verification) so leaf hashes and
/// inclusion proofs cost no second canonicalization.
pub struct VerifiedBatch {
    batch: SignedBatch,
    batch_hash: [u8; 32],
    created_at: OffsetDateTime,
    tree: MerkleTree<Vec<u8>>,
    /// Which of `batch.disclosures` belong to each entry.
    entry_disclosures: Vec<Vec<usize>>,
    /// The pointer of each of `batch.disclosures`.
    pointers: Vec<String>,
}

impl VerifiedBatch {
    /// The signed header.
    pub fn header(&self) -> &BatchHeader {
        &self.batch.header
    }

    /// The signature, base64, to store with the header for later re-verification.
    pub fn signature(&self) -> &str {
        &self.batch.signature
    }

    /// The entries, in seq order, with **full** records (every disclosure put back): what the
    /// receiver validates. The signed form of each, placeholders and all, is
    /// [`VerifiedBatch::canonical_entry`].
    pub fn entries(&self) -> &[Entry] {
        &self.batch.entries
    }

    /// Drops every full record, keeping what the batch is as signed (the leaves, disclosures
    /// and entries' ids, kinds, ops, versions and seqs). For a receiver that has read what it
    /// needs from the records and passes the batch on to be stored: freeing them on the thread
    /// that parsed them is cheaper than on another, and they are most of the batch's memory.
    /// Afterwards [`VerifiedBatch::record`] is `None` for every entry.
    pub fn drop_records(&mut self) {
        for entry in &mut self.batch.entries {
            entry.record = None;
        }
    }

    /// The full record of the entry at `index`; `None` for a withdrawal or past the end.
    pub fn record(&self, index: usize) -> Option<&Value> {
        self.batch
            .entries
            .get(index)
            .and_then(|e| e.record.as_ref())
    }

    /// Where the entry at `index` had sealed values (the pointers of its disclosures): a
    /// receiver checks that every value its rules hide was among them.
    pub fn sealed_pointers(&self, index: usize) -> Vec<&str> {
        self.entry_disclosures
            .get(index)
            .into_iter()
            .flatten()
            .map(|&d| self.pointers[d].as_str())
            .collect()
    }

    /// The disclosures of the entry at `index`, as they travelled, outer values first.
    pub fn disclosures(&self, index: usize) -> Vec<&str> {
        self.entry_disclosures
            .get(index)
            .into_iter()
            .flatten()
            .map(|&d| self.batch.disclosures[d].as_str())
            .collect()
    }

    /// The batch hash (SHA-256 of the canonical header); the next batch names it.
    pub fn batch_hash(&self) -> [u8; 32] {
        self.batch_hash
    }

    /// The batch hash as lowercase hex.
    pub fn batch_hash_hex(&self) -> String {
        hex::encode(self.batch_hash)
    }

    /// The canonical bytes (Merkle leaf) of the entry at `index`.
    pub fn canonical_entry(&self, index: usize) -> Option<&[u8]> {
        self.tree.leaf(index).map(Vec::as_slice)
    }

    /// The RFC 6962 leaf hash of the entry at `index`.
    pub fn leaf_hash(&self, index: usize) -> Option<[u8; 32]> {
        self.canonical_entry(index).map(merkle::leaf_hash)
    }

    /// The inclusion proof of the entry at `index`, to store with the record.
    pub fn inclusion_proof(&self, index: usize) -> Option<InclusionProof> {
        self.tree.prove(index)
    }

    /// Where the node's chain stands once this batch is committed.
    pub fn next_position(&self) -> ChainPosition {
        ChainPosition {
            next_batch_seq: self.batch.header.batch_seq.saturating_add(1),
            next_seq: self.batch.header.last_seq.saturating_add(1),
            prev_batch_hash: self.batch_hash,
            last_created_at: Some(self.created_at),
        }
    }

    /// The header's `created_at`, parsed.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }
}

impl fmt::Debug for VerifiedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedBatch")
            .field("header", &self.batch.header)
            .field("entries", &self.batch.entries.len())
            .field("batch_hash", &self.batch_hash_hex())
            .finish()
    }
}

/// Verifies a batch exactly as it arrived and says precisely why it is refused.
///
/// The checks run in this order; the first failure is the answer. The order is chosen so that
/// each kind of damage is reported by the most specific check that can see it, and so that
/// cheap checks guard expensive ones:
///
/// 1. **size** in bytes, before parsing → `oversized`;
/// 2. **parse** as a signed batch, strictly (serde's message; unknown fields refused, since they
///    would not be covered by the signature; repeated keys refused with their pointer) →
///    `malformed`;
/// 3. **entry count** → `oversized`;
/// 4. **shape**: node id, key id, hex digests, base64 signature of 64 bytes, `created_at` as
///    RFC 3339 UTC, `first_seq ≤ last_seq`, record ids, a record exactly on upserts → `malformed`;
/// 5. **key**: node known → `unknown_node`; key known for that node → `unknown_key`; not revoked
///    → `key_revoked`; `created_at` before the key's `compromised_since` → `key_compromised`;
///    `created_at` inside the key's validity window → `key_not_valid`;
/// 6. **signature** over the canonical header → `bad_signature`. From here on the header is
///    authentic, so every later mismatch is in the (unsigned) entries or in the chain;
/// 7. **entry seqs** against the header's range: a seq of the range that no entry carries →
///    `seq_gap` (a dropped entry); all there but misplaced, repeated or extra → `out_of_order`.
///    Before the Merkle check, because a dropped or reordered entry would also break the root,
///    and "entry 7 is missing" says more than "the root differs";
/// 8. **Merkle root** recomputed from the canonical entries → `merkle_mismatch` (an altered entry);
/// 9. **disclosures**: each parses as `[salt, pointer, value]`, lands on the placeholder that
///    carries its digest at the place it names, and every placeholder has one (the node's own
///    feed carries them all) → `bad_disclosure`;
/// 10. **chain**, if a position is given, last because it only means something for an authentic
///     and intact batch: `batch_seq` before the next expected → `replay`; after it → `seq_gap`
///     (missing batches); `prev_batch_hash` not the last accepted batch's hash → `broken_chain`
///     (a fork: the batch continues some other history, so its seqs say nothing about ours);
///     `first_seq` not the next seq → `seq_gap`; `created_at` before the last accepted batch's
///     → `backdated`.
///
/// Whether `created_at` lies in the future is the receiver's to judge with its own clock:
/// [`check_not_future`].
pub fn verify_batch<K: KeyRing + ?Sized>(
    bytes: &[u8],
    limits: &BatchLimits,
    keys: &K,
    chain: Option<&ChainPosition>,
) -> Result<VerifiedBatch, Refusal> {
    if bytes.len() > limits.max_bytes {
        return Err(Refusal::Oversized {
            unit: SizeUnit::Bytes,
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    // Strict, in one pass: serde's derive refuses a repeated field of the envelope, and the
    // records (the only free JSON in it) are built refusing repeated keys and deep nesting —
    // a key given twice is malformed, not something to resolve to its last value.
    // UTF-8 checked once for the whole batch: parsing from text spares serde_json a check of
    // every string on its own.
    let text = std::str::from_utf8(bytes).map_err(|e| Refusal::Malformed {
        detail: format!("not UTF-8: invalid byte at offset {}", e.valid_up_to()),
    })?;
    let mut batch: SignedBatch = serde_json::from_str(text).map_err(|e| Refusal::Malformed {
        detail: e.to_string(),
    })?;
    if batch.entries.len() > limits.max_entries {
        return Err(Refusal::Oversized {
            unit: SizeUnit::Entries,
            size: batch.entries.len(),
            limit: limits.max_entries,
        });
    }
    let shape = check_shape(&batch).map_err(|detail| Refusal::Malformed { detail })?;
    let header = &batch.header;

    // 5. The key.
    let trusted = match keys.lookup(&header.node_id, &header.key_id) {
        KeyLookup::Found(k) => k,
        KeyLookup::UnknownNode => {
            return Err(Refusal::UnknownNode {
                node_id: header.node_id.clone(),
                batch_seq: header.batch_seq,
            });
        }
        KeyLookup::UnknownKey => {
            return Err(Refusal::UnknownKey {
                node_id: header.node_id.clone(),
                batch_seq: header.batch_seq,
                key_id: header.key_id.clone(),
            });
        }
    };
    if let Some(revoked_at) = trusted.revoked_at {
        return Err(Refusal::KeyRevoked {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            key_id: header.key_id.clone(),
            revoked_at,
        });
    }
    if let Some(since) = trusted.compromised_since
        && shape.created_at >= since
    {
        return Err(Refusal::KeyCompromised {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            key_id: header.key_id.clone(),
            created_at: header.created_at.clone(),
            compromised_since: since,
        });
    }
    let too_early = trusted.valid_from.is_some_and(|f| shape.created_at < f);
    let too_late = trusted.valid_until.is_some_and(|u| shape.created_at >= u);
    if too_early || too_late {
        return Err(Refusal::KeyNotValid {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            key_id: header.key_id.clone(),
            created_at: header.created_at.clone(),
            valid_from: trusted.valid_from,
            valid_until: trusted.valid_until,
        });
    }

    // 6. The signature.
    let header_bytes = header.canonical_bytes();
    if !trusted.key.verify(&header_bytes, &shape.signature) {
        return Err(Refusal::BadSignature {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            key_id: header.key_id.clone(),
        });
    }
    let batch_hash = sha256(&header_bytes);

    // 7. The entries' seqs.
    check_entry_seqs(&batch)?;

    // 8. The Merkle root, canonicalizing each entry once.
    // The same walk notes where each record's placeholders are, for step 9.
    let mut placeholders: Vec<Vec<String>> = Vec::with_capacity(batch.entries.len());
    let tree = MerkleTree::new(batch.entries.iter().map(|e| {
        let mut finder = disclosure::PlaceholderFinder::default();
        let leaf = e.canonical_bytes_walked(&mut finder);
        placeholders.push(finder.found);
        leaf
    }));
    let computed = tree.root();
    if computed != shape.merkle_root {
        return Err(Refusal::MerkleMismatch {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            expected: header.merkle_root.clone(),
            computed: hex::encode(computed),
        });
    }

    // 9. The disclosures: each lands on its own placeholder, and every placeholder has one.
    let parsed = batch
        .disclosures
        .iter()
        .enumerate()
        .map(|(i, t)| Disclosure::parse(t, i))
        .collect::<Result<Vec<_>, DisclosureError>>()
        .map_err(|e| Refusal::BadDisclosure {
            node_id: header.node_id.clone(),
            batch_seq: header.batch_seq,
            index: None,
            detail: e.to_string(),
        })?;
    let bad = |index: Option<usize>, e: DisclosureError| Refusal::BadDisclosure {
        node_id: header.node_id.clone(),
        batch_seq: header.batch_seq,
        index,
        detail: e.to_string(),
    };
    let mut parsed = parsed;
    let mut pool = disclosure::DisclosureSet::taking(&mut parsed).map_err(|e| bad(None, e))?;
    let mut entry_disclosures = Vec::with_capacity(batch.entries.len());
    // In place: the signed form lives on as the tree's leaves.
    for (index, entry) in batch.entries.iter_mut().enumerate() {
        let used = match entry.record.as_mut() {
            Some(record) => pool
                .reveal_found(record, &placeholders[index], true)
                .map_err(|e| bad(Some(index), e))?,
            None => Vec::new(),
        };
        entry_disclosures.push(used);
    }
    pool.check_all_used().map_err(|e| bad(None, e))?;
    let pointers = parsed.into_iter().map(|d| d.pointer).collect();

    // 10. The chain.
    if let Some(pos) = chain {
        check_chain(header, batch_hash, pos)?;
    }

    Ok(VerifiedBatch {
        batch,
        batch_hash,
        created_at: shape.created_at,
        tree,
        entry_disclosures,
        pointers,
    })
}

/// Re-verifies one entry on its own: the ministry's check of a record pulled from the gateway.
///
/// Needs the entry, its inclusion proof, the signed header it was published under, that
/// header's signature (base64) and the node's public key. Checks the signature over the header,
/// that the proof is for this entry's position in that batch, and that it leads to the header's
/// Merkle root.
pub fn verify_entry(
    entry: &Entry,
    proof: &InclusionProof,
    header: &BatchHeader,
    signature: &str,
    key: &VerifyingKey,
) -> Result<(), EntryProofError> {
    let sig = decode_signature(signature).ok_or(EntryProofError::BadSignature)?;
    if !key.verify(&header.canonical_bytes(), &sig) {
        return Err(EntryProofError::BadSignature);
    }
    let in_range = header.first_seq <= entry.seq && entry.seq <= header.last_seq;
    if !in_range
        || proof.tree_size != header.entry_count()
        || proof.leaf_index != entry.seq - header.first_seq
    {
        return Err(EntryProofError::WrongPosition);
    }
    let root = parse_sha256_hex(&header.merkle_root).ok_or(EntryProofError::NotIncluded)?;
    if merkle::verify_inclusion(&entry.canonical_bytes(), proof, &root) {
        Ok(())
    } else {
        Err(EntryProofError::NotIncluded)
    }
}

/// Why a single entry's proof does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryProofError {
    /// The header's signature does not verify with the key.
    #[error("the batch header's signature does not verify with this key")]
    BadSignature,
    /// The proof is for another position or another batch size than the entry's seq implies.
    #[error("the proof is not for this entry's position in the signed batch")]
    WrongPosition,
    /// The entry (as given) is not the leaf the signed Merkle root commits to at that position.
    #[error("the entry is not the one the signed batch commits to at that position")]
    NotIncluded,
}

/// The parsed forms of the header's string fields, checked once.
struct Shape {
    created_at: OffsetDateTime,
    signature: [u8; SIGNATURE_LEN],
    merkle_root: [u8; 32],
}

fn check_shape(batch: &SignedBatch) -> Result<Shape, String> {
    let h = &batch.header;
    if h.format != BATCH_FORMAT {
        return Err(format!(
            "/header/format: {} is not a batch format this receiver reads (it reads {BATCH_FORMAT}); upgrade the sender or the receiver so that both speak format {BATCH_FORMAT}",
            h.format
        ));
    }
    check_node_id(&h.node_id)?;
    for (name, value) in [
        ("batch_seq", h.batch_seq),
        ("first_seq", h.first_seq),
        ("last_seq", h.last_seq),
    ] {
        check_counter(&format!("/header/{name}"), value)?;
    }
    if h.last_seq < h.first_seq {
        return Err(format!(
            "/header/last_seq: {} is before first_seq {}",
            h.last_seq, h.first_seq
        ));
    }
    // Checked for shape here; compared with the receiver's chain in `check_chain`.
    parse_sha256_hex(&h.prev_batch_hash).ok_or_else(|| {
        format!(
            "/header/prev_batch_hash: must be 64 lowercase hex digits, got {:?}",
            h.prev_batch_hash
        )
    })?;
    let merkle_root = parse_sha256_hex(&h.merkle_root).ok_or_else(|| {
        format!(
            "/header/merkle_root: must be 64 lowercase hex digits, got {:?}",
            h.merkle_root
        )
    })?;
    let created_at = OffsetDateTime::parse(&h.created_at, &Rfc3339).map_err(|e| {
        format!(
            "/header/created_at: {:?} is not an RFC 3339 time stamp: {e}",
            h.created_at
        )
    })?;
    if created_at.offset() != UtcOffset::UTC {
        return Err(format!(
            "/header/created_at: {:?} must be in UTC (ending in Z)",
            h.created_at
        ));
    }
    let key_id_ok = h.key_id.strip_prefix("ed25519:").is_some_and(|digits| {
        digits.len() == 16
            && digits
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if !key_id_ok {
        return Err(format!(
            "/header/key_id: must be ed25519: and 16 lowercase hex digits, got {:?}",
            h.key_id
        ));
    }
    let signature = decode_signature(&batch.signature).ok_or_else(|| {
        "/signature: must be the standard base64 of a 64-byte Ed25519 signature (88 characters)"
            .to_owned()
    })?;
    check_entries(&batch.entries, true)?;
    Ok(Shape {
        created_at,
        signature,
        merkle_root,
    })
}

fn decode_signature(text: &str) -> Option<[u8; SIGNATURE_LEN]> {
    if text.len() != 88 {
        return None;
    }
    let mut out = [0u8; SIGNATURE_LEN];
    match BASE64.decode_slice(text, &mut out) {
        Ok(SIGNATURE_LEN) => Some(out),
        _ => None,
    }
}

/// Seqs and versions run from 1 to 2^53 − 1: beyond that RFC 8785 cannot tell two of them apart
/// (see [`MAX_SAFE_INTEGER`]), so a signature would not pin them down.
fn check_counter(pointer: &str, value: u64) -> Result<(), String> {
    if value == 0 {
        Err(format!("{pointer}: must be at least 1"))
    } else if value > MAX_SAFE_INTEGER {
        Err(format!(
            "{pointer}: {value} is above 2^53 - 1, which canonical JSON cannot represent exactly"
        ))
    } else {
        Ok(())
    }
}

fn check_node_id(node_id: &str) -> Result<(), String> {
    let b = node_id.as_bytes();
    let ok = (2..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "/header/node_id: {node_id:?} must be 2–63 characters of a-z, 0-9 and '-', starting with a letter"
        ))
    }
}

fn check_entries(entries: &[Entry], sealed: bool) -> Result<(), String> {
    if entries.is_empty() {
        return Err("/entries: a batch holds at least one entry".to_owned());
    }
    for (i, e) in entries.iter().enumerate() {
        if sealed
            && !B64URL
                .decode(&e.salt)
                .is_ok_and(|raw| raw.len() == disclosure::SALT_LEN)
        {
            return Err(format!(
                "/entries/{i}/salt: must be {} random bytes in base64url without padding",
                disclosure::SALT_LEN
            ));
        }
        check_counter(&format!("/entries/{i}/seq"), e.seq)?;
        check_counter(&format!("/entries/{i}/version"), e.version)?;
        let id = e.id.as_bytes();
        let id_ok = (1..=64).contains(&id.len())
            && id[0].is_ascii_alphanumeric()
            && id[1..]
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        if !id_ok {
            return Err(format!(
                "/entries/{i}/id: {:?} must be 1–64 characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
                e.id
            ));
        }
        match (e.op, &e.record) {
            (Op::Upsert, Some(Value::Object(_))) | (Op::Withdraw, None) => {}
            (Op::Upsert, Some(_)) => {
                return Err(format!("/entries/{i}/record: must be a JSON object"));
            }
            (Op::Upsert, None) => {
                return Err(format!(
                    "/entries/{i}/record: an upsert must carry the record"
                ));
            }
            (Op::Withdraw, Some(_)) => {
                return Err(format!(
                    "/entries/{i}/record: a withdrawal must not carry a record"
                ));
            }
        }
    }
    Ok(())
}

/// Step 7 of [`verify_batch`]: the entries are exactly the header's seqs, once each, in order.
fn check_entry_seqs(batch: &SignedBatch) -> Result<(), Refusal> {
    let h = &batch.header;
    let (first, last) = (h.first_seq, h.last_seq);
    let in_order = batch.entries.len() as u64 == h.entry_count()
        && batch
            .entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq.checked_sub(first) == Some(i as u64));
    if in_order {
        return Ok(());
    }
    // Something is off; classify it. Is any seq of the range missing? Only the first
    // `entries.len() + 1` seqs of the range need looking at to find the smallest missing one.
    let mut present: Vec<u64> = batch
        .entries
        .iter()
        .map(|e| e.seq)
        .filter(|s| (first..=last).contains(s))
        .collect();
    present.sort_unstable();
    present.dedup();
    let missing = present
        .iter()
        .enumerate()
        .find(|&(k, &s)| s != first + k as u64)
        .map(|(k, _)| first + k as u64)
        .or_else(|| {
            first
                .checked_add(present.len() as u64)
                .filter(|&next| next <= last)
        });
    if let Some(seq) = missing {
        return Err(Refusal::SeqGap {
            node_id: h.node_id.clone(),
            batch_seq: h.batch_seq,
            gap: Gap::MissingEntry { seq },
        });
    }
    // Every seq is there: so some entry is misplaced, repeated or beyond the range.
    let (index, seq) = batch
        .entries
        .iter()
        .enumerate()
        .find(|&(i, e)| e.seq.checked_sub(first) != Some(i as u64))
        .map(|(i, e)| (i, e.seq))
        .expect("a batch that is not in order has a misplaced entry");
    Err(Refusal::OutOfOrder {
        node_id: h.node_id.clone(),
        batch_seq: h.batch_seq,
        index,
        seq,
        first_seq: first,
        last_seq: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn entries(first: u64, n: u64) -> Vec<Entry> {
        (first..first + n)
            .map(|s| {
                Entry::upsert(
                    s,
                    RecordKind::Achievement,
                    format!("A{s}"),
                    1,
                    json!({"title": format!("成果 {s}"), "trl": 5}),
                )
            })
            .collect()
    }

    #[test]
    fn signed_batch_matches_the_published_json_schema_shape() {
        let key = SigningKey::from_seed(&[1; 32]).unwrap();
        let mut es = entries(1, 2);
        es.push(Entry::withdraw(3, RecordKind::FundedProject, "P1", 2));
        let b = SignedBatch::sign(
            "prov-530000",
            1,
            GENESIS_PREV_HASH,
            es,
            datetime!(2025-03-01 08:00:00 +08:00),
            &key,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&b.to_bytes()).unwrap();
        let h = &v["header"];
        assert_eq!(h["created_at"], "2025-03-01T00:00:00Z");
        assert_eq!(h["first_seq"], 1);
        assert_eq!(h["last_seq"], 3);
        assert_eq!(h["prev_batch_hash"], "0".repeat(64));
        assert_eq!(h.as_object().unwrap().len(), 9);
        assert_eq!(h["format"], 2);
        assert!(v["disclosures"].as_array().unwrap().is_empty());
        assert_eq!(v["entries"][0]["salt"].as_str().unwrap().len(), 22);
        assert_eq!(v["signature"].as_str().unwrap().len(), 88);
        assert!(v["signature"].as_str().unwrap().ends_with("=="));
        assert!(v["entries"][2].get("record").is_none());
        assert_eq!(v["entries"][2]["kind"], "funded_project");
        assert_eq!(v["entries"][2]["op"], "withdraw");
    }

    #[test]
    fn sign_refuses_what_verify_would_call_malformed() {
        let key = SigningKey::from_seed(&[1; 32]).unwrap();
        let t = datetime!(2025-03-01 0:00 UTC);
        let sign =
            |node: &str, es: Vec<Entry>| SignedBatch::sign(node, 1, GENESIS_PREV_HASH, es, t, &key);
        assert!(matches!(sign("n1", vec![]), Err(SignError::Empty)));
        assert!(matches!(
            sign("Prov", entries(1, 1)),
            Err(SignError::Invalid(_))
        ));
        let mut gap = entries(1, 3);
        gap.remove(1);
        assert!(matches!(
            sign("n1", gap),
            Err(SignError::NotContiguous {
                index: 1,
                expected: 2,
                found: 3
            })
        ));
        let mut no_record = entries(1, 1);
        no_record[0].record = None;
        assert!(matches!(sign("n1", no_record), Err(SignError::Invalid(_))));
        let mut bad_id = entries(1, 1);
        bad_id[0].id = "has space".into();
        assert!(matches!(sign("n1", bad_id), Err(SignError::Invalid(_))));
    }

    #[test]
    fn entry_leaf_bytes_equal_the_reference_canonicalization() {
        let mut all = entries(1, 3);
        all.push(Entry::withdraw(4, RecordKind::FundedProject, "P-1.a_b", 7));
        all.push(Entry::upsert(
            (1 << 53) + 1,
            RecordKind::FundedProject,
            "x",
            u64::MAX,
            json!({"z": [1.5, -0.0, "\u{1F600}"], "\u{FF41}": {"\n": null}}),
        ));
        for e in all {
            assert_eq!(
                String::from_utf8(e.canonical_bytes()).unwrap(),
                String::from_utf8(to_canonical_vec(&e).unwrap()).unwrap()
            );
        }
    }

    #[test]
    fn reason_codes_are_distinct_and_listed() {
        let mut seen = std::collections::HashSet::new();
        for r in Refusal::REASONS {
            assert!(seen.insert(r));
        }
        assert_eq!(seen.len(), 17);
    }
}
