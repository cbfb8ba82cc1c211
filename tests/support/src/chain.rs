//! Checking a node's published batches as a gateway would: signature, Merkle root and an
//! unbroken chain from genesis.

use rix_schema::batch::{
    BatchLimits, ChainPosition, Entry, MemoryKeyRing, SignedBatch, verify_batch,
};
use rix_schema::signing::SigningKey;

/// Verifies `batches` as one chain from genesis signed with `key`; every batch must follow
/// the one before (a batch sent twice fails). Returns the entries in log order.
pub fn verify_chain(node_id: &str, key: &SigningKey, batches: &[Vec<u8>]) -> Vec<Entry> {
    let mut ring = MemoryKeyRing::new();
    ring.trust(node_id, key.verifying_key().clone());
    let mut position = ChainPosition::genesis();
    let mut entries = Vec::new();
    for bytes in batches {
        let verified = verify_batch(bytes, &BatchLimits::default(), &ring, Some(&position))
            .unwrap_or_else(|r| panic!("batch refused: {r}"));
        position = verified.next_position();
        entries.extend(verified.entries().iter().cloned());
    }
    entries
}

/// `batches` without the re-sent ones (a batch seen before, as after a crash or a broker
/// restart): what a gateway drops as a replay. Anything else out of order is kept, for the
/// chain check to refuse.
pub fn without_resends(batches: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut next = 1u64;
    let mut out = Vec::new();
    for bytes in batches {
        let batch: SignedBatch = serde_json::from_slice(&bytes).expect("a batch");
        if batch.header.batch_seq < next {
            continue;
        }
        next = batch.header.batch_seq + 1;
        out.push(bytes);
    }
    out
}

/// [`verify_chain`] of what a node delivered at least once: re-sent batches are skipped,
/// anything else must chain exactly.
pub fn verify_log(node_id: &str, key: &SigningKey, batches: Vec<Vec<u8>>) -> Vec<Entry> {
    verify_chain(node_id, key, &without_resends(batches))
}
