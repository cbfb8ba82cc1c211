//! Node configuration: a TOML file (annotated example: `ops/config/node.example.toml`), every
//! key overridable by a `RIX_*` environment variable.
//!
//! Tokens are secrets: [`Config`] never prints them (its `Debug` shows only their roles and the
//! gateways' names).
//!
//! What it may not touch: anything it configures. It reads the file and the variables it is
//! handed and checks the values; it opens no database, key, listener or broker connection —
//! [`crate::server`] does, with the result. How a file is read and the overrides both services
//! share (`RIX_LISTEN`, `RIX_DATA_DIR`, `RIX_DATABASE_URL`, `RIX_AMQP_URL`) are
//! `rix_runtime::config`'s.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rix_schema::codes::{Issuer, check_region};
use serde::Deserialize;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Registers and edits the records of one institution.
    Submitter,
    /// Approves and rejects submitted records.
    Reviewer,
    /// Everything: any institution's records, review.
    Admin,
}

impl Role {
    /// The role's name in configs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }
}

/// One bearer token and what it is bound to.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The bearer token itself (at least 16 characters).
    pub token: String,
    /// Its role.
    pub role: Role,
    /// For submitters: the USCC of the institution the token acts for.
    #[serde(default)]
    pub institution: Option<String>,
    /// Who holds it, for audit and logs (never the token).
    #[serde(default)]
    pub name: Option<String>,
}

/// One gateway this node serves its signed feed to (`[[gateways]]`).
///
/// The feed carries internal records and every disclosure (DESIGN.md §4), so it is closed:
/// only a request with one of these bearer tokens reads it — and, for a gateway with
/// `require_client_cert`, only over TLS with a client certificate chained to `tls.client_ca`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Who it is, for logs and audit (`national`); never the token.
    pub name: String,
    /// The bearer token the gateway presents (at least 16 characters); the gateway operator
    /// stores the same value with `rix trust add --feed-token-file`.
    pub token: String,
    /// Also require a TLS client certificate verified against `tls.client_ca`.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Pin the certificate's subject common name (CN); implies `require_client_cert`.
    #[serde(default)]
    pub client_cert_subject: Option<String>,
    /// Pin the certificate itself: SHA-256 of its DER, hex (colons allowed); implies
    /// `require_client_cert`.
    #[serde(default)]
    pub client_cert_sha256: Option<String>,
}

impl GatewayConfig {
    /// Whether requests with this gateway's token must carry a verified client certificate.
    pub fn needs_client_cert(&self) -> bool {
        self.require_client_cert
            || self.client_cert_subject.is_some()
            || self.client_cert_sha256.is_some()
    }
}

/// Listener TLS (`[tls]`): certificate chain, key, and the CA gateways' client certificates
/// must chain to (a gateway with `require_client_cert` must present one). The listener itself
/// is the shared one of `rix_runtime::serve`.
pub use rix_runtime::serve::TlsConfig;

/// How the publisher cuts the log into batches.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most entries in one signed batch.
    #[serde(default = "default_batch_max_entries")]
    pub max_entries: usize,
    /// How long the first waiting entry may wait for others before its batch is sealed.
    #[serde(default = "default_batch_linger_ms")]
    pub linger_ms: u64,
}

fn default_batch_max_entries() -> usize {
    500
}
fn default_batch_linger_ms() -> u64 {
    50
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_entries: default_batch_max_entries(),
            linger_ms: default_batch_linger_ms(),
        }
    }
}

/// The whole node configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The node's id in the federation (`prov-530000`, `most`): 2–63 of a-z, 0-9, '-'.
    pub node_id: String,
    /// Display name (云南省科学技术厅).
    #[serde(default)]
    pub name: Option<String>,
    /// The code registration numbers are issued under: a 6-digit region code for a province,
    /// a 3-digit department code for a ministry.
    pub registration_issuer: String,
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the SQLite database and other files live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; empty means SQLite at `data_dir/node.db`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Database pool size.
    #[serde(default = "default_db_connections")]
    pub db_connections: u32,
    /// `amqp://…` to publish to RabbitMQ; empty means the signed feed is the only transport.
    /// The nodes of a RabbitMQ cluster: several URLs, comma-separated or as a TOML array (kept
    /// here comma-separated); the publisher fails over from one to the next.
    #[serde(default, deserialize_with = "rix_runtime::config::url_list")]
    pub amqp_url: Option<String>,
    /// The topic exchange batches are published to.
    #[serde(default = "default_exchange")]
    pub amqp_exchange: String,
    /// The node's Ed25519 signing key, PKCS#8 PEM (`rix keygen`).
    pub signing_key: PathBuf,
    /// Batching.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Largest accepted request body, bytes (one record or a batch submit).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Optional TLS for the listener.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Bearer tokens.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// The gateways that may read the signed feed; none means nobody reads it.
    #[serde(default)]
    pub gateways: Vec<GatewayConfig>,
    /// How many days a reply stored under an `Idempotency-Key` is kept (answered again to a
    /// retry); older ones are deleted. 0 keeps them for ever.
    #[serde(default = "default_idempotency_retention_days")]
    pub idempotency_retention_days: u32,
}

/// A week: far longer than any client retries a request.
pub fn default_idempotency_retention_days() -> u32 {
    7
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8081".parse().expect("literal address")
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_db_connections() -> u32 {
    8
}
fn default_exchange() -> String {
    rix_runtime::config::DEFAULT_AMQP_EXCHANGE.to_owned()
}
fn default_max_body_bytes() -> usize {
    8 * 1024 * 1024
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles: Vec<&str> = self.tokens.iter().map(|t| t.role.as_str()).collect();
        let gateways: Vec<&str> = self.gateways.iter().map(|g| g.name.as_str()).collect();
        f.debug_struct("Config")
            .field("node_id", &self.node_id)
            .field("registration_issuer", &self.registration_issuer)
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::db::redact_url),
            )
            .field(
                "amqp_url",
                &self
                    .amqp_url
                    .as_deref()
                    .map(rix_runtime::config::redact_url_list),
            )
            .field("signing_key", &self.signing_key)
            .field("batch", &self.batch)
            .field("tls", &self.tls.is_some())
            .field("tokens", &roles)
            .field("gateways", &gateways)
            .finish()
    }
}

pub use rix_runtime::config::ConfigError;

impl Config {
    /// Reads `path`, applies `RIX_*` environment overrides, checks the result.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = rix_runtime::config::read_toml(path)?;
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check()?;
        Ok(config)
    }

    /// Applies the `RIX_*` overrides that `get` returns (`std::env::var` in production).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let env = rix_runtime::config::Env::new(get);
        env.apply_common(rix_runtime::config::Common {
            listen: &mut self.listen,
            data_dir: &mut self.data_dir,
            database_url: &mut self.database_url,
            amqp_url: &mut self.amqp_url,
        })?;
        let get = |name: &str| env.text(name);
        if let Some(v) = get("RIX_NODE_ID") {
            self.node_id = v;
        }
        if let Some(v) = get("RIX_SIGNING_KEY") {
            self.signing_key = PathBuf::from(v);
        }
        if let Some(v) = env.parsed("RIX_BATCH_MAX_ENTRIES")? {
            self.batch.max_entries = v;
        }
        if let Some(v) = env.parsed("RIX_BATCH_LINGER_MS")? {
            self.batch.linger_ms = v;
        }
        if let Some(v) = get("RIX_ADMIN_TOKEN") {
            self.tokens.push(TokenConfig {
                token: v,
                role: Role::Admin,
                institution: None,
                name: Some("RIX_ADMIN_TOKEN".to_owned()),
            });
        }
        if let Some(v) = get("RIX_GATEWAY_TOKEN") {
            self.gateways.push(GatewayConfig {
                name: "RIX_GATEWAY_TOKEN".to_owned(),
                token: v,
                require_client_cert: false,
                client_cert_subject: None,
                client_cert_sha256: None,
            });
        }
        if let Some(v) = get("RIX_TLS_CLIENT_CA") {
            let tls = self.tls.as_mut().ok_or(ConfigError::Env {
                name: "RIX_TLS_CLIENT_CA",
                message: "the listener has no TLS: set [tls] cert and key first".into(),
            })?;
            tls.client_ca = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
        }
        if let Some(v) = env.parsed("RIX_IDEMPOTENCY_RETENTION_DAYS")? {
            self.idempotency_retention_days = v;
        }
        Ok(())
    }

    /// Checks values that TOML types cannot.
    pub fn check(&self) -> Result<(), ConfigError> {
        let id = self.node_id.as_bytes();
        let id_ok = (2..=63).contains(&id.len())
            && id[0].is_ascii_lowercase()
            && id
                .iter()
                .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !id_ok {
            return Err(ConfigError::Invalid {
                key: "node_id",
                message: format!(
                    "{:?} must be 2–63 characters of a-z, 0-9 and '-', starting with a letter",
                    self.node_id
                ),
            });
        }
        self.issuer()?;
        rix_runtime::config::BrokerUrls::check(self.amqp_url.as_deref())?;
        if !(1..=10_000).contains(&self.batch.max_entries) {
            return Err(ConfigError::Invalid {
                key: "batch.max_entries",
                message: "must be 1–10000 (the gateway refuses larger batches)".into(),
            });
        }
        for (i, t) in self.tokens.iter().enumerate() {
            if t.token.len() < 16 {
                return Err(ConfigError::Invalid {
                    key: "tokens",
                    message: format!("token #{i} is shorter than 16 characters"),
                });
            }
            if t.role == Role::Submitter {
                match &t.institution {
                    Some(uscc) => {
                        rix_schema::codes::check_uscc(uscc).map_err(|e| ConfigError::Invalid {
                            key: "tokens",
                            message: format!("token #{i} institution: {e}"),
                        })?
                    }
                    None => {
                        return Err(ConfigError::Invalid {
                            key: "tokens",
                            message: format!(
                                "token #{i} is a submitter without `institution` (its USCC)"
                            ),
                        });
                    }
                }
            }
        }
        self.check_gateways()
    }

    fn check_gateways(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            key: "gateways",
            message,
        };
        let client_ca = self.tls.as_ref().and_then(|t| t.client_ca.as_ref());
        for (i, g) in self.gateways.iter().enumerate() {
            if g.name.trim().is_empty() {
                return Err(invalid(format!("gateway #{i} has an empty `name`")));
            }
            if self.gateways[..i].iter().any(|o| o.name == g.name) {
                return Err(invalid(format!(
                    "gateway #{i}: the name {:?} is used twice",
                    g.name
                )));
            }
            if g.token.len() < 16 {
                return Err(invalid(format!(
                    "gateway {:?}: the token is shorter than 16 characters",
                    g.name
                )));
            }
            let reused = self.tokens.iter().any(|t| t.token == g.token)
                || self.gateways[..i].iter().any(|o| o.token == g.token);
            if reused {
                return Err(invalid(format!(
                    "gateway {:?}: its token is also another token of this node; give every gateway its own",
                    g.name
                )));
            }
            if let Some(fp) = &g.client_cert_sha256
                && normalize_fingerprint(fp).is_none()
            {
                return Err(invalid(format!(
                    "gateway {:?}: client_cert_sha256 must be 64 hex digits (colons allowed), \
                     e.g. from `openssl x509 -noout -fingerprint -sha256 -in gateway.crt`",
                    g.name
                )));
            }
            if g.needs_client_cert() && client_ca.is_none() {
                return Err(invalid(format!(
                    "gateway {:?} requires a client certificate, but the listener does not \
                     verify any: set [tls] cert, key and client_ca",
                    g.name
                )));
            }
        }
        Ok(())
    }

    /// The registration-number issuer this node's code stands for.
    pub fn issuer(&self) -> Result<Issuer, ConfigError> {
        let code = &self.registration_issuer;
        let digits = code.bytes().all(|b| b.is_ascii_digit());
        match code.len() {
            6 if digits => {
                check_region(code).map_err(|e| ConfigError::Invalid {
                    key: "registration_issuer",
                    message: e.to_string(),
                })?;
                Ok(Issuer::Region(code.clone()))
            }
            3 if digits => Ok(Issuer::Department(code.clone())),
            _ => Err(ConfigError::Invalid {
                key: "registration_issuer",
                message: format!(
                    "{code:?} must be a 6-digit region code (province node) or a 3-digit department code (ministry node)"
                ),
            }),
        }
    }

    /// The database URL in effect: the configured one, or SQLite in the data dir.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => self.data_dir.join("node.db").to_string_lossy().into_owned(),
        }
    }
}

/// A SHA-256 fingerprint as lowercase hex without separators, or `None` if it is not one.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
node_id = "prov-530000"
registration_issuer = "530000"
signing_key = "/tmp/k.pem"
[[tokens]]
token = "submitter-token-0001"
role = "submitter"
institution = "91330100799655058B"
"#;

    #[test]
    fn environment_overrides_the_file() {
        let mut c: Config = toml::from_str(MINIMAL).unwrap();
        c.apply_env(|name| match name {
            "RIX_LISTEN" => Some("0.0.0.0:9000".into()),
            "RIX_AMQP_URL" => Some("amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            "RIX_BATCH_MAX_ENTRIES" => Some("64".into()),
            _ => None,
        })
        .unwrap();
        c.check().unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.batch.max_entries, 64);
        assert!(c.amqp_url.is_some());
        let shown = format!("{c:?}");
        assert!(!shown.contains("submitter-token-0001"), "{shown}");
        assert!(!shown.contains("guest:guest"), "{shown}");
    }

    #[test]
    fn a_broker_cluster_is_a_list_of_addresses_shown_without_passwords() {
        let text = format!(
            "amqp_url = [\"amqp://n:pw-one@mq1:5672/%2f\", \"amqp://n:pw-two@mq2:5672/%2f\"]\n{MINIMAL}"
        );
        let c: Config = toml::from_str(&text).unwrap();
        c.check().unwrap();
        assert_eq!(
            c.amqp_url.as_deref(),
            Some("amqp://n:pw-one@mq1:5672/%2f,amqp://n:pw-two@mq2:5672/%2f")
        );
        let shown = format!("{c:?}");
        assert!(
            shown.contains("amqp://n@mq1:5672/%2f,amqp://n@mq2:5672/%2f") && !shown.contains("pw-"),
            "{shown}"
        );
        // The same list from the environment, comma-separated.
        let mut c: Config = toml::from_str(MINIMAL).unwrap();
        c.apply_env(|n| (n == "RIX_AMQP_URL").then(|| "amqp://a/%2f, amqp://b/%2f".into()))
            .unwrap();
        c.check().unwrap();
        let urls = rix_runtime::config::BrokerUrls::parse(c.amqp_url.as_deref().unwrap()).unwrap();
        assert_eq!(urls.len(), 2);
        // A list of nothing is refused, naming the key.
        c.amqp_url = Some(" , ".into());
        assert!(c.check().unwrap_err().to_string().contains("amqp_url"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c: Config = toml::from_str(MINIMAL).unwrap();
        c.registration_issuer = "999999".into();
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("registration_issuer"), "{e}");
        let mut c: Config = toml::from_str(MINIMAL).unwrap();
        c.tokens[0].institution = None;
        assert!(c.check().unwrap_err().to_string().contains("institution"));
        let e = c
            .apply_env(|n| (n == "RIX_LISTEN").then(|| "nowhere".into()))
            .unwrap_err();
        assert!(e.to_string().contains("RIX_LISTEN"));
    }

    #[test]
    fn the_annotated_example_is_a_valid_config() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ops/config/node.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config: Config = toml::from_str(&text).unwrap();
        config.check().unwrap();
        assert_eq!(config.tokens.len(), 2);
        assert_eq!(config.gateways.len(), 1);
        assert!(matches!(config.issuer().unwrap(), Issuer::Region(_)));
    }

    #[test]
    fn gateways_are_checked_and_their_tokens_never_shown() {
        let text = format!(
            "{MINIMAL}\n[[gateways]]\nname = \"national\"\ntoken = \"gateway-token-national-0001\"\n"
        );
        let mut c: Config = toml::from_str(&text).unwrap();
        c.check().unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("national"), "{shown}");
        assert!(!shown.contains("gateway-token-national-0001"), "{shown}");

        // A client certificate needs a CA to verify it against.
        c.gateways[0].require_client_cert = true;
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("client_ca"), "{e}");
        c.tls = Some(TlsConfig {
            cert: "/tmp/c.pem".into(),
            key: "/tmp/k.pem".into(),
            client_ca: None,
        });
        c.apply_env(|n| (n == "RIX_TLS_CLIENT_CA").then(|| "/etc/rix/gateways-ca.pem".into()))
            .unwrap();
        c.check().unwrap();

        // A gateway's token is its own: not a staff token, not another gateway's.
        c.gateways[0].token = "submitter-token-0001".into();
        assert!(c.check().unwrap_err().to_string().contains("its own"));
        c.gateways[0].token = "gateway-token-national-0001".into();
        c.gateways[0].client_cert_sha256 = Some("AB:CD".into());
        assert!(c.check().unwrap_err().to_string().contains("64 hex"));
        c.gateways[0].client_cert_sha256 = Some("Ab:".repeat(31) + "ab");
        c.check().unwrap();

        // RIX_GATEWAY_TOKEN enrols one more gateway.
        c.apply_env(|n| (n == "RIX_GATEWAY_TOKEN").then(|| "gateway-token-from-env-01".into()))
            .unwrap();
        assert_eq!(c.gateways.len(), 2);
        assert!(!c.gateways[1].needs_client_cert());
        c.check().unwrap();
    }
}
