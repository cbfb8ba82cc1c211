"""An independent verifier of rix record pages (schema/VERIFYING.md), written from the spec
with the Python standard library and `cryptography` only — none of rix's own code.

Reads a `GET /v1/records/{node}/{id}` response on stdin. For every source it checks:
  1. the header's RFC 8785 form (recomputed here) is the `header_canonical` served;
  2. the Ed25519 signature over it, with the node's public key;
  3. the entry (the leaf bytes) is at its position in the signed Merkle root (RFC 9162 §2.1.3.2),
     and its seq is the one its position in the batch says;
  4. every disclosure: its digest is the `_sd` of exactly one placeholder in the entry's record
     (or in a value disclosed before it), at the JSON Pointer the disclosure names;
then, for the primary source, that the record shown is the entry's record with the disclosures
put back and every remaining placeholder removed.

Prints one JSON line with what it checked; exits 1 with the reason on the first failure.
"""

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fail(reason):
    print(json.dumps({"ok": False, "reason": reason}, ensure_ascii=False))
    sys.exit(1)


def canonical(value):
    # RFC 8785 for what headers hold (strings, integers): sorted members, no white space,
    # minimal escaping. ensure_ascii=False keeps non-ASCII characters as they are.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sha256(data):
    return hashlib.sha256(data).digest()


def merkle_root_from_proof(leaf, index, size, path):
    """RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or None."""
    if index >= size:
        return None
    fn, sn = index, size - 1
    r = sha256(b"\x00" + leaf)
    for p in path:
        p = bytes.fromhex(p)
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def pointer_token(key):
    return str(key).replace("~", "~0").replace("/", "~1")


def is_placeholder(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("_sd"), str)


def reveal(value, by_digest, path, used):
    """Puts disclosures back (outer first), checking each lands where its pointer says."""
    if is_placeholder(value):
        d = by_digest.get(value["_sd"])
        if d is None:
            return value
        salt, pointer, disclosed = d
        if pointer != path:
            fail(f"disclosure for {pointer} sits at {path}")
        used.add(value["_sd"])
        return reveal(disclosed, by_digest, path, used)
    if isinstance(value, dict):
        return {k: reveal(v, by_digest, path + "/" + pointer_token(k), used) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v, by_digest, path + "/" + str(i), used) for i, v in enumerate(value)]
    return value


def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if not is_placeholder(v)}
    if isinstance(value, list):
        return [strip(v) for v in value if not is_placeholder(v)]
    return value


def main():
    detail = json.load(sys.stdin)
    checked = {"sources": 0, "disclosures": 0, "placeholders_left": 0}
    primary = detail.get("primary") or {}
    for source in detail["sources"]:
        v = source.get("verification")
        if v is None:
            fail(f"source {source['node_id']}/{source['id']} has no verification material")
        if "leaf_hash" in v:
            fail("a leaf hash is served: it is an unsalted hash over the whole entry")
        header = v["header"]
        header_bytes = canonical(header).encode()
        if v.get("header_canonical") is not None and v["header_canonical"].encode() != header_bytes:
            fail("header_canonical is not the RFC 8785 form of the header")
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(v["public_key"]))
        try:
            key.verify(base64.b64decode(v["signature"]), header_bytes)
        except Exception:
            fail(f"signature of batch {header['batch_seq']} of {header['node_id']} does not verify")
        if header["format"] != 2:
            fail(f"batch format {header['format']}")
        entry_bytes = v["entry"].encode()
        proof = v["inclusion_proof"]
        size = header["last_seq"] - header["first_seq"] + 1
        entry = json.loads(entry_bytes)
        if proof["tree_size"] != size or proof["leaf_index"] != entry["seq"] - header["first_seq"]:
            fail("the proof is not for this entry's position in the batch")
        root = merkle_root_from_proof(entry_bytes, proof["leaf_index"], proof["tree_size"], proof["path"])
        if root is None or root.hex() != header["merkle_root"]:
            fail(f"entry {entry['id']} is not in the signed Merkle root")
        by_digest = {}
        for text in v["disclosures"]:
            digest = b64url(sha256(text.encode()))
            salt, pointer, value = json.loads(text)
            if len(base64.urlsafe_b64decode(salt + "==")) != 16:
                fail("a salt is not 128 bits")
            by_digest[digest] = (salt, pointer, value)
        used = set()
        record = entry.get("record")
        revealed = reveal(record, by_digest, "", used) if record is not None else None
        if used != set(by_digest):
            fail("a disclosure matches no placeholder of the entry")
        checked["sources"] += 1
        checked["disclosures"] += len(used)
        if (source["node_id"], source["id"]) == (primary.get("node_id"), primary.get("id")):
            left = json.dumps(revealed).count('"_sd"')
            checked["placeholders_left"] = left
            if strip(revealed) != detail["record"]:
                fail("the record shown is not the signed entry with the disclosures given")
            checked["primary_matches"] = True
    print(json.dumps({"ok": True, **checked}))


if __name__ == "__main__":
    main()
