//! Throw-away TLS material for tests over real TLS: CAs, server certificates for `localhost`
//! and client certificates, on P-256 keys, valid for two days.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

/// A certificate and its key.
pub struct Issued {
    /// The certificate.
    pub cert: X509,
    /// Its private key.
    pub key: PKey<Private>,
}

/// What a certificate is for.
enum Role<'a> {
    Ca,
    Server { ca: &'a Issued },
    Client { ca: &'a Issued },
}

impl Issued {
    /// A self-signed CA named `cn`.
    pub fn ca(cn: &str) -> Issued {
        Issued::issue(cn, Role::Ca)
    }

    /// A server certificate for `localhost` (CN and SAN), signed by `ca`.
    pub fn server(ca: &Issued) -> Issued {
        Issued::issue("localhost", Role::Server { ca })
    }

    /// A client certificate with subject `cn`, signed by `ca`.
    pub fn client(cn: &str, ca: &Issued) -> Issued {
        Issued::issue(cn, Role::Client { ca })
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap()
    }

    /// The key, PKCS#8 PEM.
    pub fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().unwrap()
    }

    /// The key as `openssl ecparam -genkey` writes it (SEC 1 PEM, not PKCS#8).
    pub fn sec1_key_pem(&self) -> Vec<u8> {
        self.key.ec_key().unwrap().private_key_to_pem().unwrap()
    }

    fn issue(cn: &str, role: Role<'_>) -> Issued {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        let issuer = match role {
            Role::Ca => {
                b.set_issuer_name(&name).unwrap();
                b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                    .unwrap();
                b.append_extension(
                    KeyUsage::new()
                        .critical()
                        .key_cert_sign()
                        .crl_sign()
                        .build()
                        .unwrap(),
                )
                .unwrap();
                None
            }
            Role::Server { ca } | Role::Client { ca } => {
                b.set_issuer_name(ca.cert.subject_name()).unwrap();
                b.append_extension(BasicConstraints::new().critical().build().unwrap())
                    .unwrap();
                b.append_extension(
                    KeyUsage::new()
                        .critical()
                        .digital_signature()
                        .build()
                        .unwrap(),
                )
                .unwrap();
                let mut usage = ExtendedKeyUsage::new();
                if let Role::Server { .. } = role {
                    usage.server_auth();
                    b.append_extension(usage.build().unwrap()).unwrap();
                    let san = SubjectAlternativeName::new()
                        .dns("localhost")
                        .build(&b.x509v3_context(Some(&ca.cert), None))
                        .unwrap();
                    b.append_extension(san).unwrap();
                } else {
                    usage.client_auth();
                    b.append_extension(usage.build().unwrap()).unwrap();
                }
                Some(ca)
            }
        };
        b.sign(issuer.map_or(&key, |ca| &ca.key), MessageDigest::sha256())
            .unwrap();
        Issued {
            cert: b.build(),
            key,
        }
    }
}

/// Writes `pem` to `dir/name`; returns the path.
pub fn write_pem(dir: &Path, name: &str, pem: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}
