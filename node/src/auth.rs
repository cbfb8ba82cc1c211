//! Bearer tokens and what their holders may do.
//!
//! Tokens are compared by SHA-256 digest, so the table in memory never holds them and a
//! digest is what idempotency rows and logs name ([`Principal::id`]).
//!
//! Two kinds of holders, kept apart: staff of the node and its institutions ([`Principal`]:
//! submitter, reviewer, admin) use the registration API; enrolled gateways ([`FeedReader`])
//! read the signed feed and nothing else. A gateway's token opens no registration endpoint and
//! no staff token opens the feed (DESIGN.md §4: the feed carries internal records and every
//! disclosure). A gateway may further be bound to a TLS client certificate
//! ([`ClientCertificate`]: the listener puts a verified one in the connection's data).
//!
//! What it may not touch: the database, and the tokens themselves. The table is built from the
//! configuration at start and holds digests only; whether a record may be read or changed by
//! a principal is decided by the stage that owns the record, from the principal's role.

use std::collections::HashMap;

use rix_runtime::serve::ClientCertificate;
use rix_schema::canonical::sha256_hex;

use crate::config::{GatewayConfig, Role, TokenConfig, normalize_fingerprint};
use crate::error::NodeError;

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stable, non-secret id: the first 16 hex digits of the token's SHA-256.
    pub id: String,
    /// Holder's name from the config, for audit.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// For a submitter, the USCC of its institution.
    pub institution: Option<String>,
}

impl Principal {
    /// How this principal is recorded as submitter or reviewer.
    pub fn audit_name(&self) -> String {
        format!("{} ({}, {})", self.name, self.role.as_str(), self.id)
    }

    /// Refuses anyone but reviewers and admins.
    pub fn require_reviewer(&self) -> Result<(), NodeError> {
        match self.role {
            Role::Reviewer | Role::Admin => Ok(()),
            Role::Submitter => Err(NodeError::Forbidden(
                "only reviewers may approve or reject records".into(),
            )),
        }
    }

    /// Refuses reviewers: they review, they do not register.
    pub fn require_submitter(&self) -> Result<(), NodeError> {
        match self.role {
            Role::Submitter | Role::Admin => Ok(()),
            Role::Reviewer => Err(NodeError::Forbidden(
                "reviewers cannot submit, revise or withdraw records; use a submitter token".into(),
            )),
        }
    }

    /// Whether this principal may see and edit a record owned by `owner_uscc`.
    pub fn may_access(&self, owner_uscc: &str) -> bool {
        match self.role {
            Role::Submitter => self.institution.as_deref() == Some(owner_uscc),
            Role::Reviewer | Role::Admin => true,
        }
    }
}

/// An enrolled gateway reading the feed.
#[derive(Debug, Clone)]
pub struct FeedReader {
    /// Stable, non-secret id: the first 16 hex digits of the token's SHA-256.
    pub id: String,
    /// The gateway's name from the config.
    pub name: String,
}

#[derive(Debug, Clone)]
struct GatewayEntry {
    reader: FeedReader,
    needs_client_cert: bool,
    subject_cn: Option<String>,
    sha256: Option<String>,
}

/// The configured tokens, by digest: staff tokens and gateways' feed tokens apart.
#[derive(Debug, Default, Clone)]
pub struct TokenTable {
    by_digest: HashMap<String, Principal>,
    gateways: HashMap<String, GatewayEntry>,
}

fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl TokenTable {
    /// Builds the table from the config.
    pub fn new(tokens: &[TokenConfig]) -> TokenTable {
        let by_digest = tokens
            .iter()
            .map(|t| {
                let digest = sha256_hex(t.token.as_bytes());
                let principal = Principal {
                    id: digest[..16].to_owned(),
                    name: t.name.clone().unwrap_or_else(|| t.role.as_str().to_owned()),
                    role: t.role,
                    institution: t.institution.clone(),
                };
                (digest, principal)
            })
            .collect();
        TokenTable {
            by_digest,
            gateways: HashMap::new(),
        }
    }

    /// Adds the gateways that may read the feed.
    pub fn with_gateways(mut self, gateways: &[GatewayConfig]) -> TokenTable {
        for g in gateways {
            let digest = sha256_hex(g.token.as_bytes());
            let entry = GatewayEntry {
                reader: FeedReader {
                    id: digest[..16].to_owned(),
                    name: g.name.clone(),
                },
                needs_client_cert: g.needs_client_cert(),
                subject_cn: g.client_cert_subject.clone(),
                sha256: g
                    .client_cert_sha256
                    .as_deref()
                    .and_then(normalize_fingerprint),
            };
            self.gateways.insert(digest, entry);
        }
        self
    }

    /// The principal of an `Authorization` header value. Gateways' feed tokens are not
    /// principals here: they open the feed only.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, NodeError> {
        let token = bearer(authorization).ok_or(NodeError::Unauthorized)?;
        self.by_digest
            .get(&sha256_hex(token.as_bytes()))
            .cloned()
            .ok_or(NodeError::Unauthorized)
    }

    /// The gateway an `Authorization` header (and the connection's verified client
    /// certificate, if any) stands for: `Unauthorized` (401) without a known token, `Forbidden`
    /// (403) for a staff token, or for a gateway's token without the client certificate it is
    /// bound to.
    pub fn authenticate_gateway(
        &self,
        authorization: Option<&str>,
        peer: Option<&ClientCertificate>,
    ) -> Result<FeedReader, NodeError> {
        let token = bearer(authorization).ok_or(NodeError::Unauthorized)?;
        let digest = sha256_hex(token.as_bytes());
        let Some(gateway) = self.gateways.get(&digest) else {
            return Err(match self.by_digest.get(&digest) {
                Some(staff) => NodeError::Forbidden(format!(
                    "the signed feed is for enrolled gateways only; a {} token cannot read it \
                     (a gateway is enrolled in the node's [[gateways]])",
                    staff.role.as_str()
                )),
                None => NodeError::Unauthorized,
            });
        };
        let name = &gateway.reader.name;
        if gateway.needs_client_cert {
            let Some(peer) = peer else {
                return Err(NodeError::Forbidden(format!(
                    "gateway {name:?} must read the feed over TLS with its client certificate \
                     (issued under the node's tls.client_ca); the bearer token alone is not enough"
                )));
            };
            if let Some(cn) = &gateway.subject_cn
                && peer.subject_cn.as_deref() != Some(cn.as_str())
            {
                return Err(NodeError::Forbidden(format!(
                    "the client certificate's subject is not the one enrolled for gateway {name:?}"
                )));
            }
            if let Some(fp) = &gateway.sha256
                && peer.sha256 != *fp
            {
                return Err(NodeError::Forbidden(format!(
                    "the client certificate is not the one enrolled for gateway {name:?}"
                )));
            }
        }
        Ok(gateway.reader.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_resolve_to_their_roles_and_nothing_else() {
        let table = TokenTable::new(&[TokenConfig {
            token: "reviewer-token-000001".into(),
            role: Role::Reviewer,
            institution: None,
            name: Some("审核员".into()),
        }]);
        let p = table
            .authenticate(Some("Bearer reviewer-token-000001"))
            .unwrap();
        assert_eq!(p.role, Role::Reviewer);
        assert!(p.require_reviewer().is_ok() && p.require_submitter().is_err());
        assert!(!p.audit_name().contains("reviewer-token-000001"));
        assert!(matches!(
            table.authenticate(Some("Bearer nope")),
            Err(NodeError::Unauthorized)
        ));
        assert!(matches!(
            table.authenticate(None),
            Err(NodeError::Unauthorized)
        ));
    }

    #[test]
    fn only_gateways_read_the_feed_and_a_bound_gateway_only_with_its_certificate() {
        let gateway = |name: &str, token: &str| GatewayConfig {
            name: name.into(),
            token: token.into(),
            require_client_cert: false,
            client_cert_subject: None,
            client_cert_sha256: None,
        };
        let mut bound = gateway("bound", "gateway-token-bound-0001");
        bound.client_cert_subject = Some("national-gateway".into());
        let table = TokenTable::new(&[TokenConfig {
            token: "reviewer-token-000001".into(),
            role: Role::Reviewer,
            institution: None,
            name: None,
        }])
        .with_gateways(&[gateway("open", "gateway-token-open-00001"), bound]);

        let open = table
            .authenticate_gateway(Some("Bearer gateway-token-open-00001"), None)
            .unwrap();
        assert_eq!(open.name, "open");
        // A feed token opens nothing else.
        assert!(matches!(
            table.authenticate(Some("Bearer gateway-token-open-00001")),
            Err(NodeError::Unauthorized)
        ));
        assert!(matches!(
            table.authenticate_gateway(Some("Bearer reviewer-token-000001"), None),
            Err(NodeError::Forbidden(_))
        ));
        assert!(matches!(
            table.authenticate_gateway(None, None),
            Err(NodeError::Unauthorized)
        ));
        assert!(matches!(
            table.authenticate_gateway(Some("Bearer "), None),
            Err(NodeError::Unauthorized)
        ));

        let bound_token = Some("Bearer gateway-token-bound-0001");
        assert!(matches!(
            table.authenticate_gateway(bound_token, None),
            Err(NodeError::Forbidden(_))
        ));
        let other = ClientCertificate {
            sha256: "00".repeat(32),
            subject_cn: Some("someone-else".into()),
        };
        assert!(matches!(
            table.authenticate_gateway(bound_token, Some(&other)),
            Err(NodeError::Forbidden(_))
        ));
        let right = ClientCertificate {
            subject_cn: Some("national-gateway".into()),
            ..other
        };
        assert_eq!(
            table
                .authenticate_gateway(bound_token, Some(&right))
                .unwrap()
                .name,
            "bound"
        );
    }
}
