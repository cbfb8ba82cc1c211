//! Gateway configuration: a TOML file (annotated example: `ops/config/gateway.example.toml`),
//! every key overridable by a `RIX_*` environment variable.
//!
//! What it may not touch: what it configures. It reads the file and the variables it is handed
//! and opens nothing, but for [`Config::open_database`], the one shortcut that opens (and
//! migrates) the catalogue for the server and the CLI alike. How a file is read and the overrides
//! both services share (`RIX_LISTEN`, `RIX_DATA_DIR`, `RIX_DATABASE_URL`, `RIX_AMQP_URL`) are
//! `rix_runtime::config`'s.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How the feed puller behaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// Pause between polls of a node that is caught up, ms.
    #[serde(default = "default_pull_interval_ms")]
    pub interval_ms: u64,
    /// Entries asked for per page.
    #[serde(default = "default_page_limit")]
    pub page_limit: u64,
    /// Connect timeout, ms.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout (a page must arrive completely within it), ms.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// The gateway's TLS client certificate chain (PEM), for nodes that bind the gateway to
    /// it. Env: `RIX_PULL_CLIENT_CERT`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM). Env: `RIX_PULL_CLIENT_KEY`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// CA certificates (PEM) the nodes' server certificates must chain to, instead of the
    /// system's roots. Env: `RIX_PULL_SERVER_CA`.
    #[serde(default)]
    pub server_ca: Option<PathBuf>,
}

fn default_pull_interval_ms() -> u64 {
    2000
}
fn default_page_limit() -> u64 {
    2000
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            interval_ms: default_pull_interval_ms(),
            page_limit: default_page_limit(),
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            client_cert: None,
            client_key: None,
            server_ca: None,
        }
    }
}

impl PullConfig {
    /// The puller's settings from this section (the rest keep [`crate::pull::PullConfig`]'s
    /// defaults).
    pub fn puller(&self) -> crate::pull::PullConfig {
        use std::time::Duration;
        crate::pull::PullConfig {
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            page_limit: self.page_limit.min(u32::MAX as u64) as u32,
            poll_interval: Duration::from_millis(self.interval_ms),
            tls: crate::pull::FeedTls {
                client_cert: self.client_cert.clone(),
                client_key: self.client_key.clone(),
                server_ca: self.server_ca.clone(),
            },
            ..crate::pull::PullConfig::default()
        }
    }
}

/// The whole gateway configuration. Every key has a default, all of them in
/// [`Config::default`]: an empty file is a valid configuration.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where to listen. Env: `RIX_LISTEN`.
    pub listen: SocketAddr,
    /// TLS for the listener (`[tls]` cert and key), when the gateway terminates it itself
    /// rather than behind a load balancer. Readers authenticate with bearer tokens, so
    /// `client_ca` is refused here.
    pub tls: Option<rix_runtime::serve::TlsConfig>,
    /// Data directory (SQLite catalogue when no database URL). Env: `RIX_DATA_DIR`.
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL (shared by replicas). Env: `RIX_DATABASE_URL`.
    pub database_url: Option<String>,
    /// Database pool size.
    pub db_connections: u32,
    /// RabbitMQ; without it the feed puller is the only transport. The nodes of a RabbitMQ
    /// cluster: several URLs, comma-separated or as a TOML array (kept here comma-separated);
    /// the consumer fails over from one to the next. Env: `RIX_AMQP_URL` (comma-separated).
    #[serde(deserialize_with = "rix_runtime::config::url_list")]
    pub amqp_url: Option<String>,
    /// The nodes' topic exchange.
    pub amqp_exchange: String,
    /// This gateway's durable queue (replicas share it to split the load).
    pub amqp_queue: String,
    /// Unacknowledged deliveries in flight: the backpressure on the broker.
    pub amqp_prefetch: u16,
    /// How far ahead of this gateway's clock a batch's `created_at` may lie, in seconds (default
    /// 300). Keys are judged at a batch's own `created_at`, which its signer chooses; a batch
    /// dated later than this is refused (`future_dated`) until its time comes. Env:
    /// `RIX_MAX_CLOCK_SKEW_SECS`.
    pub max_clock_skew_secs: u64,
    /// Feed puller.
    pub pull: PullConfig,
    /// Bounds on the heavy read endpoints (`[limits]`; see [`crate::limits`]).
    pub limits: crate::limits::LimitsConfig,
    /// Bearer token for `/metrics` and the detailed `/healthz` (operators' monitoring). Without
    /// it they answer only on loopback: counters of applied, quarantined and refused entries
    /// would tell an outside reader how much the catalogue holds that they may not see. Env:
    /// `RIX_METRICS_TOKEN`. A secret: never logged.
    pub metrics_token: Option<String>,
    /// When `/healthz` calls the gateway degraded (`[health]`; see [`crate::health`]).
    pub health: crate::health::HealthConfig,
    /// The OAI-PMH provider at `/oai` (`[oai]`; see [`crate::oai`]).
    pub oai: crate::oai::OaiConfig,
    /// Bulk snapshots (`[snapshots]`; see [`crate::snapshot`]).
    pub snapshots: crate::snapshot::SnapshotConfig,
}

impl Default for Config {
    /// What an empty file gives; a key the file leaves out takes its value from here
    /// (`#[serde(default)]` on the struct).
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            tls: None,
            data_dir: PathBuf::from("./gateway-data"),
            database_url: None,
            db_connections: 8,
            amqp_url: None,
            amqp_exchange: rix_runtime::config::DEFAULT_AMQP_EXCHANGE.into(),
            amqp_queue: "rix.gateway".into(),
            amqp_prefetch: 64,
            max_clock_skew_secs: crate::ingest::DEFAULT_MAX_FUTURE_SKEW.as_secs(),
            pull: PullConfig::default(),
            limits: crate::limits::LimitsConfig::default(),
            metrics_token: None,
            health: crate::health::HealthConfig::default(),
            oai: crate::oai::OaiConfig::default(),
            snapshots: crate::snapshot::SnapshotConfig::default(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("tls", &self.tls.is_some())
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
            .field("amqp_queue", &self.amqp_queue)
            .field("max_clock_skew_secs", &self.max_clock_skew_secs)
            .field("pull", &self.pull)
            .field("limits", &self.limits)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "(set)"),
            )
            .field("health", &self.health)
            .field("oai", &self.oai)
            .field("snapshots", &self.snapshots)
            .finish()
    }
}

pub use rix_runtime::config::ConfigError;

impl Config {
    /// Reads `path` and applies `RIX_*` overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = rix_runtime::config::read_toml(path)?;
        config.apply_env(|n| std::env::var(n).ok())?;
        config.check()?;
        Ok(config)
    }

    /// What the file's keys cannot say alone: a listener's `client_ca` would ask readers for a
    /// certificate that nothing here checks, so it is refused rather than left to mislead.
    pub fn check(&self) -> Result<(), ConfigError> {
        rix_runtime::config::BrokerUrls::check(self.amqp_url.as_deref())?;
        if self.tls.as_ref().is_some_and(|t| t.client_ca.is_some()) {
            return Err(ConfigError::Invalid {
                key: "tls.client_ca",
                message: "the gateway authenticates readers with bearer tokens, not client certificates; remove client_ca (TLS needs only cert and key)".into(),
            });
        }
        self.snapshots.check().map_err(|e| ConfigError::Invalid {
            key: "snapshots",
            message: e.to_string(),
        })?;
        Ok(())
    }

    /// Applies the overrides `get` returns.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let env = rix_runtime::config::Env::new(get);
        env.apply_common(rix_runtime::config::Common {
            listen: &mut self.listen,
            data_dir: &mut self.data_dir,
            database_url: &mut self.database_url,
            amqp_url: &mut self.amqp_url,
        })?;
        let get = |name: &str| env.text(name);
        if let Some(v) = env.parsed("RIX_MAX_CLOCK_SKEW_SECS")? {
            self.max_clock_skew_secs = v;
        }
        if let Some(v) = env.optional("RIX_METRICS_TOKEN") {
            self.metrics_token = v;
        }
        self.limits
            .apply_env(get)
            .map_err(|(name, message)| ConfigError::Env { name, message })?;
        if let Some(v) = env.optional_path("RIX_PULL_CLIENT_CERT") {
            self.pull.client_cert = v;
        }
        if let Some(v) = env.optional_path("RIX_PULL_CLIENT_KEY") {
            self.pull.client_key = v;
        }
        if let Some(v) = env.optional_path("RIX_PULL_SERVER_CA") {
            self.pull.server_ca = v;
        }
        if let Some(v) = env.text("RIX_OAI_REPOSITORY_NAME") {
            self.oai.repository_name = v;
        }
        if let Some(v) = env.text("RIX_OAI_REPOSITORY_IDENTIFIER") {
            self.oai.repository_identifier = v;
        }
        if let Some(v) = env.text("RIX_OAI_ADMIN_EMAIL") {
            self.oai.admin_email = v;
        }
        if let Some(v) = env.optional("RIX_OAI_BASE_URL") {
            self.oai.base_url = v;
        }
        if let Some(v) = env.parsed("RIX_OAI_PAGE_SIZE")? {
            self.oai.page_size = v;
        }
        if let Some(v) = env.optional_path("RIX_SNAPSHOTS_DIR") {
            self.snapshots.dir = v;
        }
        if let Some(v) = env.parsed("RIX_SNAPSHOTS_EVERY_HOURS")? {
            self.snapshots.every_hours = v;
        }
        if let Some(v) = env.parsed("RIX_SNAPSHOTS_KEEP")? {
            self.snapshots.keep = v;
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => self
                .data_dir
                .join("catalogue.db")
                .to_string_lossy()
                .into_owned(),
        }
    }

    /// Opens (creating the data dir for SQLite) and migrates the catalogue.
    pub fn open_database(&self) -> Result<crate::db::Db, crate::db::StoreError> {
        if self.database_url.is_none() {
            std::fs::create_dir_all(&self.data_dir).map_err(|e| {
                crate::db::StoreError::Connect {
                    what: "catalogue database",
                    url: self.data_dir.display().to_string(),
                    detail: format!("cannot create the data dir: {e}"),
                }
            })?;
        }
        crate::db::Db::open(&self.effective_database_url(), self.db_connections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotated_example_is_a_valid_config() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/config/gateway.example.toml");
        let config = Config::load(&path).unwrap();
        assert_eq!(config.amqp_queue, "rix.gateway");
        assert_eq!(config.max_clock_skew_secs, 300);
        assert!(config.pull.request_timeout_ms > config.pull.connect_timeout_ms);
    }

    #[test]
    fn environment_overrides_and_secrets_stay_hidden() {
        let mut c = Config::default();
        assert_eq!(c.max_clock_skew_secs, 300);
        c.apply_env(|n| match n {
            "RIX_DATABASE_URL" => Some("postgres://rix:pw@db/rix".into()),
            "RIX_MAX_CLOCK_SKEW_SECS" => Some("60".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.effective_database_url(), "postgres://rix:pw@db/rix");
        assert_eq!(c.max_clock_skew_secs, 60);
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn the_pullers_tls_comes_from_the_file_or_the_environment() {
        let mut c: Config = toml::from_str(
            "[pull]\nclient_cert = \"/etc/rix/gw.crt\"\nclient_key = \"/etc/rix/gw.key\"\n",
        )
        .unwrap();
        c.apply_env(|n| (n == "RIX_PULL_SERVER_CA").then(|| "/etc/rix/nodes-ca.crt".into()))
            .unwrap();
        let pull = c.pull.puller();
        assert_eq!(pull.tls.client_cert, Some(PathBuf::from("/etc/rix/gw.crt")));
        assert_eq!(pull.tls.client_key, Some(PathBuf::from("/etc/rix/gw.key")));
        assert_eq!(
            pull.tls.server_ca,
            Some(PathBuf::from("/etc/rix/nodes-ca.crt"))
        );
        assert_eq!(pull.request_timeout.as_millis(), 30_000);
    }

    #[test]
    fn the_listener_takes_tls_but_no_client_ca() {
        let c: Config =
            toml::from_str("[tls]\ncert = \"/etc/rix/gw.crt\"\nkey = \"/etc/rix/gw.key\"\n")
                .unwrap();
        assert_eq!(
            c.tls.as_ref().map(|t| t.cert.clone()),
            Some(PathBuf::from("/etc/rix/gw.crt"))
        );
        c.check().unwrap();
        let c: Config =
            toml::from_str("[tls]\ncert = \"a\"\nkey = \"b\"\nclient_ca = \"/etc/rix/ca.crt\"\n")
                .unwrap();
        let e = c.check().unwrap_err().to_string();
        assert!(
            e.contains("tls.client_ca") && e.contains("bearer tokens"),
            "{e}"
        );
    }
}
