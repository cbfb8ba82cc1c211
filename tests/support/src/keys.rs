//! Key files as the services demand them.

use std::path::Path;

use rix_schema::signing::SigningKey;

/// Writes a secret (a private key) readable by its owner only: a node refuses a signing key
/// other users may read.
pub fn write_private(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A fresh node signing key, written to `path` as a node reads it (PKCS#8 PEM, owner only).
pub fn signing_key_file(path: &Path) -> SigningKey {
    let key = SigningKey::generate().unwrap();
    write_private(path, key.to_pkcs8_pem().unwrap().as_bytes());
    key
}
