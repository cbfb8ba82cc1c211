//! Ed25519 keys and signatures, through OpenSSL.
//!
//! A node signs each batch header with its private key; the gateway and any ministry verify it
//! with the node's public key from the trust store. Keys are exchanged in the formats every tool
//! already reads: PKCS#8 PEM for private keys and SubjectPublicKeyInfo PEM for public keys (what
//! `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write), or the raw 32-byte
//! public key, base64, for configuration files and the trust store.
//!
//! Private key material never appears in `Debug` output, and the PEM export zeroes its buffer
//! when dropped. Loading never prompts for a passphrase: encrypted keys are refused.
//!
//! What it may not touch: what is signed, or files. It signs and verifies bytes ([`crate::batch`]
//! decides they are a header's canonical JSON), and keys come in and go out as PEM or base64 text:
//! reading and writing key files, and refusing one that others may read, are the callers' (the
//! node at start, `rix keygen`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::sign::{Signer, Verifier};

use crate::canonical::sha256;

/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// Length of a raw Ed25519 public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;

/// A key could not be loaded, parsed or exported.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM text could not be read as a key of the expected kind.
    #[error(
        "cannot read the {expected} PEM: {source}; expected a file written by `rix keygen` or `openssl genpkey -algorithm ed25519` (unencrypted)"
    )]
    Pem {
        /// What was expected: `PKCS#8 private key` or `SubjectPublicKeyInfo public key`.
        expected: &'static str,
        /// What OpenSSL said.
        #[source]
        source: openssl::error::ErrorStack,
    },
    /// The key parsed, but it is not an Ed25519 key.
    #[error("the key is {found}, not Ed25519; rix signs only with Ed25519 keys")]
    NotEd25519 {
        /// The algorithm OpenSSL found, for the operator.
        found: String,
    },
    /// Raw public key bytes of the wrong length or not a valid curve point encoding.
    #[error("a raw Ed25519 public key is {PUBLIC_KEY_LEN} bytes; got {len} bytes")]
    RawLength {
        /// The length received.
        len: usize,
    },
    /// The base64 text of a public key did not decode.
    #[error("the public key is not valid standard base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// OpenSSL failed on a valid key (out of memory, broken provider).
    #[error("OpenSSL failed: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// A node's Ed25519 private key: the only thing that can produce batches the exchange accepts.
///
/// Cloning is cheap (OpenSSL reference count). `Debug` shows the key id only.
#[derive(Clone)]
pub struct SigningKey {
    pkey: PKey<Private>,
    public: VerifyingKey,
}

impl SigningKey {
    /// A fresh key from OpenSSL's CSPRNG, for `rix keygen` and tests.
    pub fn generate() -> Result<SigningKey, KeyError> {
        SigningKey::from_pkey(PKey::generate_ed25519()?)
    }

    /// The key whose RFC 8032 private seed is `seed`.
    ///
    /// For deterministic test fixtures and seeded load generators; production keys come from
    /// [`SigningKey::generate`].
    pub fn from_seed(seed: &[u8; 32]) -> Result<SigningKey, KeyError> {
        SigningKey::from_pkey(PKey::private_key_from_raw_bytes(seed, Id::ED25519)?)
    }

    /// Reads an unencrypted PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    ///
    /// Encrypted keys are refused rather than prompting on a terminal: a service must never
    /// block on a passphrase prompt.
    pub fn from_pkcs8_pem(pem: &[u8]) -> Result<SigningKey, KeyError> {
        let pkey = PKey::private_key_from_pem_callback(pem, |_| Ok(0)).map_err(|source| {
            KeyError::Pem {
                expected: "PKCS#8 private key",
                source,
            }
        })?;
        SigningKey::from_pkey(pkey)
    }

    /// Writes the key as unencrypted PKCS#8 PEM, readable by `openssl pkey`.
    ///
    /// The caller decides where it goes (a 0600 file); the returned buffer zeroes itself when
    /// dropped.
    pub fn to_pkcs8_pem(&self) -> Result<SecretPem, KeyError> {
        Ok(SecretPem(zeroize::Zeroizing::new(
            self.pkey.private_key_to_pem_pkcs8()?,
        )))
    }

    /// The public half, to publish and to put in trust stores.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// The id batch headers carry to name this key (see [`VerifyingKey::key_id`]).
    pub fn key_id(&self) -> String {
        self.public.key_id()
    }

    /// Signs a message (Ed25519 is pure: the message is not pre-hashed).
    ///
    /// # Panics
    ///
    /// Only if OpenSSL itself fails on a valid Ed25519 key (allocation failure); there is no
    /// input for which signing fails.
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        let sig = Signer::new_without_digest(&self.pkey)
            .and_then(|mut s| s.sign_oneshot_to_vec(msg))
            .expect("OpenSSL Ed25519 signing with a valid key does not fail");
        sig.try_into()
            .expect("an Ed25519 signature is always 64 bytes")
    }

    fn from_pkey(pkey: PKey<Private>) -> Result<SigningKey, KeyError> {
        check_ed25519(pkey.id())?;
        let raw = pkey.raw_public_key()?;
        let public = VerifyingKey::from_raw(&raw)?;
        Ok(SigningKey { pkey, public })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// PEM text of a private key. Zeroed on drop (`zeroize`); `Debug` is redacted.
pub struct SecretPem(zeroize::Zeroizing<Vec<u8>>);

impl SecretPem {
    /// The PEM bytes, to write to a protected file.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem(<redacted>)")
    }
}

/// A node's Ed25519 public key, as the trust store holds it.
///
/// Equality is equality of the raw 32 bytes. Cloning is cheap.
#[derive(Clone)]
pub struct VerifyingKey {
    pkey: PKey<Public>,
    raw: [u8; PUBLIC_KEY_LEN],
}

impl VerifyingKey {
    /// The key from its raw 32-byte encoding (RFC 8032).
    pub fn from_raw(raw: &[u8]) -> Result<VerifyingKey, KeyError> {
        let raw: [u8; PUBLIC_KEY_LEN] = raw
            .try_into()
            .map_err(|_| KeyError::RawLength { len: raw.len() })?;
        let pkey = PKey::public_key_from_raw_bytes(&raw, Id::ED25519)?;
        Ok(VerifyingKey { pkey, raw })
    }

    /// The raw 32-byte encoding.
    pub fn to_raw(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.raw
    }

    /// The key from standard base64 of its raw bytes (the trust store's text form).
    pub fn from_base64(text: &str) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_raw(&BASE64.decode(text.trim())?)
    }

    /// Standard, padded base64 of the raw bytes.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.raw)
    }

    /// Reads a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), as written by
    /// `openssl pkey -pubout`.
    pub fn from_spki_pem(pem: &[u8]) -> Result<VerifyingKey, KeyError> {
        let pkey = PKey::public_key_from_pem(pem).map_err(|source| KeyError::Pem {
            expected: "SubjectPublicKeyInfo public key",
            source,
        })?;
        check_ed25519(pkey.id())?;
        VerifyingKey::from_raw(&pkey.raw_public_key()?)
    }

    /// Writes the key as SubjectPublicKeyInfo PEM.
    pub fn to_spki_pem(&self) -> Result<Vec<u8>, KeyError> {
        Ok(self.pkey.public_key_to_pem()?)
    }

    /// The short, stable name of this key: `ed25519:` and the first 16 hex digits of SHA-256 of
    /// the raw public key.
    ///
    /// Headers carry it so the verifier picks the right key during a rotation, when a node has
    /// two trusted keys; 64 bits is plenty to tell one node's keys apart, and the signature check
    /// is what actually binds the key.
    pub fn key_id(&self) -> String {
        let digest = sha256(&self.raw);
        format!("ed25519:{}", hex::encode(&digest[..8]))
    }

    /// Whether `sig` is a valid Ed25519 signature of `msg` by this key.
    ///
    /// Any malformed signature (wrong length included) is simply invalid.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != SIGNATURE_LEN {
            return false;
        }
        Verifier::new_without_digest(&self.pkey)
            .and_then(|mut v| v.verify_oneshot(sig, msg))
            .unwrap_or(false)
    }
}

impl PartialEq for VerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for VerifyingKey {}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("key_id", &self.key_id())
            .field("base64", &self.to_base64())
            .finish()
    }
}

fn check_ed25519(id: Id) -> Result<(), KeyError> {
    if id == Id::ED25519 {
        Ok(())
    } else {
        Err(KeyError::NotEd25519 {
            found: algorithm_name(id),
        })
    }
}

fn algorithm_name(id: Id) -> String {
    match id {
        Id::RSA => "RSA".to_owned(),
        Id::EC => "EC".to_owned(),
        Id::ED448 => "Ed448".to_owned(),
        Id::X25519 => "X25519".to_owned(),
        Id::DSA => "DSA".to_owned(),
        other => format!("OpenSSL key type {}", other.as_raw()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 §7.1, TEST 1: empty message.
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningKey::from_seed(&seed).unwrap();
        assert_eq!(
            hex::encode(key.verifying_key().to_raw()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = key.sign(b"");
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(key.verifying_key().verify(b"", &sig));
        assert!(!key.verifying_key().verify(b"x", &sig));
        assert!(!key.verifying_key().verify(b"", &sig[..63]));
    }

    #[test]
    fn pem_and_raw_round_trips_keep_the_key() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.as_bytes().starts_with(b"-----BEGIN PRIVATE KEY-----"));
        let again = SigningKey::from_pkcs8_pem(pem.as_bytes()).unwrap();
        assert_eq!(again.verifying_key(), key.verifying_key());

        let vk = key.verifying_key();
        let spki = vk.to_spki_pem().unwrap();
        assert!(spki.starts_with(b"-----BEGIN PUBLIC KEY-----"));
        assert_eq!(&VerifyingKey::from_spki_pem(&spki).unwrap(), vk);
        assert_eq!(&VerifyingKey::from_raw(&vk.to_raw()).unwrap(), vk);
        assert_eq!(&VerifyingKey::from_base64(&vk.to_base64()).unwrap(), vk);
        assert_eq!(vk.to_base64().len(), 44);
    }

    #[test]
    fn key_id_is_prefix_of_sha256_of_raw_key() {
        let key = SigningKey::from_seed(&[7; 32]).unwrap();
        let id = key.key_id();
        let expected = &crate::canonical::sha256_hex(&key.verifying_key().to_raw())[..16];
        assert_eq!(id, format!("ed25519:{expected}"));
    }

    #[test]
    fn debug_output_never_contains_secret_material() {
        let key = SigningKey::from_seed(&[0x42; 32]).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let pem_text = std::str::from_utf8(pem.as_bytes()).unwrap();
        let body: String = pem_text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for shown in [format!("{key:?}"), format!("{pem:?}")] {
            assert!(!shown.contains(&body), "{shown}");
            assert!(!shown.contains(&hex::encode([0x42; 32])), "{shown}");
            assert!(!shown.contains("BEGIN PRIVATE KEY"), "{shown}");
        }
    }

    #[test]
    fn wrong_inputs_are_refused_with_a_reason() {
        assert!(matches!(
            VerifyingKey::from_raw(&[0; 31]),
            Err(KeyError::RawLength { len: 31 })
        ));
        assert!(matches!(
            SigningKey::from_pkcs8_pem(b"not a pem"),
            Err(KeyError::Pem { .. })
        ));
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let rsa_pem = PKey::from_rsa(rsa)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert!(matches!(
            SigningKey::from_pkcs8_pem(&rsa_pem),
            Err(KeyError::NotEd25519 { .. })
        ));
    }

    #[test]
    fn encrypted_keys_are_refused_without_prompting() {
        let key = PKey::generate_ed25519().unwrap();
        let pem = key
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"secret")
            .unwrap();
        assert!(matches!(
            SigningKey::from_pkcs8_pem(&pem),
            Err(KeyError::Pem { .. })
        ));
    }
}
