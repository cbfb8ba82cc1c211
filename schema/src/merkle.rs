//! RFC 6962 Merkle trees over a batch's canonical entries, with inclusion proofs.
//!
//! The batch header carries the Merkle root of its entries, so one signature covers every
//! entry, and any single entry can later be shown to belong to a signed batch with a proof of
//! about log2(n) hashes — what the gateway stores next to each record so that a ministry can
//! re-verify a record without the rest of its batch.
//!
//! Hashing is exactly RFC 6962 §2.1 with SHA-256: a leaf is `H(0x00 ‖ bytes)`, an inner node is
//! `H(0x01 ‖ left ‖ right)`, the tree of n leaves splits at the largest power of two below n.
//! The domain separation keeps an inner node from ever passing for a leaf. The tree itself is
//! `ct_merkle`'s; this module fixes the hash function and gives proofs a JSON form.
//!
//! What it may not touch: what a leaf is. It hashes the bytes it is given; [`crate::batch`] decides
//! that a leaf is an entry's canonical JSON in placeholder form.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{HashableLeaf, RootHash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest tree size a proof may claim.
///
/// `ct_merkle`'s index arithmetic is only defined for trees that could exist; no batch comes
/// anywhere near 2^48 entries, so anything larger in an untrusted proof is simply invalid.
pub const MAX_TREE_SIZE: u64 = 1 << 48;

/// The RFC 6962 hash of one leaf: `SHA-256(0x00 ‖ bytes)`.
///
/// What a catalogue stores to name an entry's position in the tree without keeping its bytes.
pub fn leaf_hash(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(bytes);
    h.finalize().into()
}

/// A proof that one leaf is at `leaf_index` in a tree of `tree_size` leaves with a given root.
///
/// This JSON object is what the gateway stores with every record version and serves to
/// ministries: together with the entry's canonical bytes, the signed batch header (which carries
/// the root) and the node's public key, it proves the record is exactly what the node signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// Zero-based position of the leaf (an entry's position in its batch).
    pub leaf_index: u64,
    /// Number of leaves in the tree (entries in the batch).
    pub tree_size: u64,
    /// The audit path of RFC 6962 §2.1.1, leaf side first: SHA-256 digests as lowercase hex.
    pub path: Vec<String>,
}

/// A Merkle tree built once over its leaves, for a root and any number of proofs.
///
/// `L` is anything that is bytes: `Vec<u8>` to own canonical entries, `&[u8]` to borrow them.
pub struct MerkleTree<L: AsRef<[u8]>> {
    tree: MemoryBackedTree<Sha256, Bytes<L>>,
}

/// Adapts `AsRef<[u8]>` to `ct_merkle`'s leaf trait without asking callers to care.
struct Bytes<L>(L);

impl<L: AsRef<[u8]>> HashableLeaf for Bytes<L> {
    fn hash<H: ct_merkle::digest::Update>(&self, hasher: &mut H) {
        hasher.update(self.0.as_ref());
    }
}

impl<L: AsRef<[u8]>> MerkleTree<L> {
    /// Builds the tree over `leaves`, in order.
    pub fn new(leaves: impl IntoIterator<Item = L>) -> MerkleTree<L> {
        let mut tree = MemoryBackedTree::new();
        for leaf in leaves {
            tree.push(Bytes(leaf));
        }
        MerkleTree { tree }
    }

    /// The Merkle tree hash (RFC 6962 MTH); SHA-256 of nothing for an empty tree.
    pub fn root(&self) -> [u8; 32] {
        (*self.tree.root().as_bytes()).into()
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.tree.items().len()
    }

    /// Whether the tree has no leaves (its root is then SHA-256 of nothing, per RFC 6962).
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The leaf at `index`, as given.
    pub fn leaf(&self, index: usize) -> Option<&L> {
        self.tree.get(index).map(|b| &b.0)
    }

    /// The inclusion proof of the leaf at `index`; `None` past the end.
    pub fn prove(&self, index: usize) -> Option<InclusionProof> {
        if index >= self.len() {
            return None;
        }
        let proof = self.tree.prove_inclusion(index);
        Some(InclusionProof {
            leaf_index: index as u64,
            tree_size: self.len() as u64,
            path: proof.as_bytes().chunks(32).map(hex::encode).collect(),
        })
    }
}

/// The Merkle root of `leaves` (RFC 6962 MTH over their bytes).
pub fn merkle_root<L: AsRef<[u8]>>(leaves: &[L]) -> [u8; 32] {
    MerkleTree::new(leaves.iter().map(AsRef::as_ref)).root()
}

/// The inclusion proof of `leaves[index]`; `None` past the end.
///
/// Builds the whole tree; to prove many leaves of one batch, build a [`MerkleTree`] once.
pub fn prove<L: AsRef<[u8]>>(leaves: &[L], index: usize) -> Option<InclusionProof> {
    MerkleTree::new(leaves.iter().map(AsRef::as_ref)).prove(index)
}

/// Whether `proof` shows that `leaf` (the leaf's bytes, not its hash) is at `proof.leaf_index`
/// in the tree of `proof.tree_size` leaves whose root is `root`.
///
/// Never panics: any malformed proof — bad hex, wrong path length for the claimed position,
/// index past the end, absurd tree size — is just a proof that does not verify. The caller must
/// separately check that `tree_size` and `leaf_index` are the ones it expects (for a batch
/// entry: the batch's entry count and the entry's position), since a path alone cannot.
pub fn verify_inclusion(leaf: &[u8], proof: &InclusionProof, root: &[u8; 32]) -> bool {
    if proof.tree_size == 0
        || proof.tree_size > MAX_TREE_SIZE
        || proof.leaf_index >= proof.tree_size
    {
        return false;
    }
    let mut path = Vec::with_capacity(proof.path.len() * 32);
    for node in &proof.path {
        match crate::canonical::parse_sha256_hex(node) {
            Some(digest) => path.extend_from_slice(&digest),
            None => return false,
        }
    }
    let Ok(path) = ct_merkle::InclusionProof::<Sha256>::try_from_bytes(path) else {
        return false;
    };
    let root = RootHash::<Sha256>::new((*root).into(), proof.tree_size);
    root.verify_inclusion(&Bytes(leaf), proof.leaf_index, &path)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962 MTH written straight from §2.1, independent of `ct_merkle`.
    fn mth(leaves: &[Vec<u8>]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest(b"").into(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n);
                node(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// RFC 6962 §2.1.1 PATH(m, D[n]).
    fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<[u8; 32]> {
        let n = leaves.len();
        if n == 1 {
            return Vec::new();
        }
        let k = split(n);
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    /// The largest power of two strictly less than n.
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([0x01]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    }

    fn rfc6962_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect()
    }

    #[test]
    fn roots_match_the_rfc6962_reference_vectors() {
        // The tree heads of the Certificate Transparency reference implementation's tests.
        let roots = [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves = rfc6962_leaves();
        for (n, want) in roots.iter().enumerate() {
            assert_eq!(hex::encode(merkle_root(&leaves[..n])), *want, "size {n}");
        }
    }

    #[test]
    fn proofs_match_the_rfc6962_reference_vectors() {
        // (zero-based index, tree size, audit path) from the same reference tests.
        let vectors: [(usize, usize, &[&str]); 4] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        let leaves = rfc6962_leaves();
        for (index, size, want) in vectors {
            let proof = prove(&leaves[..size], index).unwrap();
            assert_eq!(proof.path, want, "index {index} size {size}");
            let root = merkle_root(&leaves[..size]);
            assert!(verify_inclusion(&leaves[index], &proof, &root));
        }
    }

    #[test]
    fn every_proof_agrees_with_an_independent_rfc6962_implementation() {
        for n in 1..=20usize {
            let leaves: Vec<Vec<u8>> = (0..n)
                .map(|i| format!("{{\"seq\":{i},\"x\":\"leaf {i}\"}}").into_bytes())
                .collect();
            let root = merkle_root(&leaves);
            assert_eq!(root, mth(&leaves), "root of {n} leaves");
            let tree = MerkleTree::new(leaves.iter().map(Vec::as_slice));
            assert_eq!(tree.root(), root);
            for i in 0..n {
                let proof = tree.prove(i).unwrap();
                let want: Vec<String> = path(i, &leaves).iter().map(hex::encode).collect();
                assert_eq!(proof.path, want, "path of leaf {i} of {n}");
                assert!(verify_inclusion(&leaves[i], &proof, &root), "{i}/{n}");

                // The same proof does not vouch for other bytes, another position, another
                // tree size or another root.
                let mut changed = leaves[i].clone();
                changed[0] ^= 1;
                assert!(!verify_inclusion(&changed, &proof, &root));
                let wrong_root = mth(&leaves[..n - 1]);
                assert!(!verify_inclusion(&leaves[i], &proof, &wrong_root));
                if n > 1 {
                    let moved = InclusionProof {
                        leaf_index: ((i + 1) % n) as u64,
                        ..proof.clone()
                    };
                    assert!(!verify_inclusion(&leaves[i], &moved, &root));
                }
            }
            assert!(tree.prove(n).is_none());
        }
    }

    #[test]
    fn malformed_proofs_are_rejected_without_panicking() {
        let leaves: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i]).collect();
        let root = merkle_root(&leaves);
        let good = prove(&leaves, 3).unwrap();
        assert!(verify_inclusion(&leaves[3], &good, &root));
        let variants = [
            InclusionProof {
                tree_size: 0,
                ..good.clone()
            },
            InclusionProof {
                tree_size: u64::MAX,
                leaf_index: u64::MAX - 1,
                ..good.clone()
            },
            InclusionProof {
                leaf_index: 5,
                ..good.clone()
            },
            InclusionProof {
                path: good.path[1..].to_vec(),
                ..good.clone()
            },
            InclusionProof {
                path: [good.path.clone(), good.path.clone()].concat(),
                ..good.clone()
            },
            InclusionProof {
                path: vec!["zz".repeat(32); good.path.len()],
                ..good.clone()
            },
            InclusionProof {
                path: good.path.iter().map(|p| p.to_uppercase()).collect(),
                ..good.clone()
            },
        ];
        for bad in variants {
            assert!(!verify_inclusion(&leaves[3], &bad, &root), "{bad:?}");
        }
    }

    #[test]
    fn proof_json_shape_is_stable() {
        let leaves: Vec<&[u8]> = vec![b"a", b"b", b"c"];
        let proof = prove(&leaves, 2).unwrap();
        let json = serde_json::to_value(&proof).unwrap();
        assert_eq!(json["leaf_index"], 2);
        assert_eq!(json["tree_size"], 3);
        assert_eq!(json["path"].as_array().unwrap().len(), 1);
        let back: InclusionProof = serde_json::from_value(json).unwrap();
        assert_eq!(back, proof);
    }
}
