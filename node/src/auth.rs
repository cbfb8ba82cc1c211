//! Bearer tokens and what their holders may do.
//!
//! Tokens are compared by SHA-256 digest, so the table in memory never holds them and a
//! digest is what idempotency rows and logs name ([`Principal::id`]).

use std::collections::HashMap;

use rix_schema::canonical::sha256_hex;

use crate::config::{Role, TokenConfig};
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

/// The configured tokens, by digest.
#[derive(Debug, Default, Clone)]
pub struct TokenTable {
    by_digest: HashMap<String, Principal>,
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
        TokenTable { by_digest }
    }

    /// The principal of an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, NodeError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(NodeError::Unauthorized)?;
        self.by_digest
            .get(&sha256_hex(token.as_bytes()))
            .cloned()
            .ok_or(NodeError::Unauthorized)
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
}
