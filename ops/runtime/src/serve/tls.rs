//! TLS for a service's listener: the `[tls]` section, the OpenSSL acceptor made from it, and
//! the verified client certificate a handler may ask a connection for.
//!
//! With `client_ca` the listener asks every client for a certificate (verify mode PEER, not
//! FAIL_IF_NO_PEER_CERT: at a node, institutions use the same port without one). A
//! certificate that does not chain to the CA ends the handshake; a verified one is handed to
//! the handlers as the connection's [`ClientCertificate`] — which is how a node knows the
//! gateway reading its feed is the one enrolled with that certificate.
//!
//! What it may not touch: who may do what with a certificate. That is each service's own
//! access rule; this module only says which certificate, verified, the client presented.

use std::path::PathBuf;

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ssl::{AlpnError, SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::{X509, X509Ref, X509VerifyResult};
use serde::Deserialize;

use super::ServeError;

/// The `[tls]` section of a service's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
    /// CA certificates (PEM) that clients' certificates must chain to. When set, the listener
    /// asks every client for a certificate but does not insist (module doc); a certificate
    /// that is presented and does not verify ends the handshake.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// A client certificate the TLS handshake verified against `client_ca`, as a connection's data
/// (`HttpRequest::conn_data::<ClientCertificate>()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub sha256: String,
    /// The subject's common name (CN), if it has one.
    pub subject_cn: Option<String>,
}

impl ClientCertificate {
    /// What an access rule needs of a verified certificate.
    pub fn from_x509(cert: &X509Ref) -> ClientCertificate {
        let sha256 = cert
            .digest(MessageDigest::sha256())
            .map(|d| hex::encode(&*d))
            .unwrap_or_default();
        let subject_cn = cert
            .subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .next()
            .and_then(|e| e.data().to_string().ok());
        ClientCertificate { sha256, subject_cn }
    }

    /// The certificate of `ssl`'s peer, if it presented one and it verified.
    pub(super) fn of(ssl: &openssl::ssl::SslRef) -> Option<ClientCertificate> {
        let cert = ssl.peer_certificate()?;
        (ssl.verify_result() == X509VerifyResult::OK).then(|| ClientCertificate::from_x509(&cert))
    }
}

/// The acceptor for `tls`: Mozilla's intermediate profile, HTTP/2 and HTTP/1.1 by ALPN (as
/// actix-web offers them), and client certificates when `client_ca` is set.
pub(super) fn acceptor(tls: &TlsConfig, service: &str) -> Result<SslAcceptor, ServeError> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    builder
        .set_private_key_file(&tls.key, SslFiletype::PEM)
        .map_err(|e| ServeError::Tls(format!("key {}: {e}", tls.key.display())))?;
    builder
        .set_certificate_chain_file(&tls.cert)
        .map_err(|e| ServeError::Tls(format!("certificate {}: {e}", tls.cert.display())))?;
    if let Some(ca) = &tls.client_ca {
        let what =
            |e: &dyn std::fmt::Display| ServeError::Tls(format!("client CA {}: {e}", ca.display()));
        let pem = std::fs::read(ca).map_err(|e| what(&e))?;
        let certs = X509::stack_from_pem(&pem).map_err(|e| what(&e))?;
        if certs.is_empty() {
            return Err(what(&"no PEM certificate in the file"));
        }
        for cert in &certs {
            // Trusted for verifying clients, and named in the CertificateRequest so a client
            // with several certificates picks the right one.
            builder
                .cert_store_mut()
                .add_cert(cert.clone())
                .map_err(|e| what(&e))?;
            builder.add_client_ca(cert).map_err(|e| what(&e))?;
        }
        builder.set_verify(SslVerifyMode::PEER);
        // Sessions resumed under client verification need a context id.
        builder
            .set_session_id_context(format!("rix-{service}").as_bytes())
            .map_err(|e| what(&e))?;
    }
    builder.set_alpn_select_callback(|_, offered| {
        if offered.windows(3).any(|w| w == b"\x02h2") {
            Ok(b"h2")
        } else if offered.windows(9).any(|w| w == b"\x08http/1.1") {
            Ok(b"http/1.1")
        } else {
            Err(AlpnError::NOACK)
        }
    });
    builder
        .set_alpn_protos(b"\x08http/1.1\x02h2")
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    Ok(builder.build())
}
