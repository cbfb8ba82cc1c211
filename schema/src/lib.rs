//! The common schema of rix, the national science-and-technology results exchange.
//!
//! Everything two parties must agree on lives here and nowhere else: the record kinds and their
//! JSON Schema files, validation (JSON Schema plus the code-list rules it cannot express), which
//! fields are commercial or personal and how a record is redacted for a consumer's entitlements,
//! record secrecy levels, and the wire format — RFC 8785 canonical JSON, SHA-256 entry hashes,
//! RFC 6962 Merkle trees with inclusion proofs, Ed25519 signatures and the signed batch envelope.
//!
//! The crate is deliberately pure: no I/O, no clock, no async. Callers pass in time stamps and
//! bytes; that keeps every rule here deterministic and testable, and lets the node, the gateway
//! and the adapters share it without sharing anything else. The one thing it takes from outside
//! is randomness, and only where a fresh secret is the point: new signing keys
//! ([`signing::SigningKey::generate`]) and disclosure salts ([`disclosure::openssl_salt`]), from
//! OpenSSL. The [`sample`] generator's randomness is seeded.
//!
//! What it may not depend on: any other crate of ours. All of them depend on this one
//! (DESIGN.md §2); a rule that needs a database, a transport or a service's configuration
//! belongs to that service, not here.

pub mod batch;
pub mod canonical;
pub mod codes;
pub mod disclosure;
pub mod kind;
pub mod merkle;
pub mod record;
pub mod sample;
pub mod schemas;
pub mod secrecy;
pub mod sensitivity;
pub mod signing;
pub mod strict_json;
pub mod validate;

pub use kind::RecordKind;
pub use secrecy::SecrecyLevel;
pub use validate::{FieldError, validate_record};
