//! Gateway configuration: a TOML file (annotated example: `ops/config/gateway.example.toml`),
//! every key overridable by a `RIX_*` environment variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How the feed puller behaves.
#[derive(Debug, Clone, Copy, Deserialize)]
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
        }
    }
}

/// The whole gateway configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen. Env: `RIX_LISTEN`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Data directory (SQLite catalogue when no database URL). Env: `RIX_DATA_DIR`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL (shared by replicas). Env: `RIX_DATABASE_URL`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Database pool size.
    #[serde(default = "default_db_connections")]
    pub db_connections: u32,
    /// RabbitMQ; without it the feed puller is the only transport. Env: `RIX_AMQP_URL`.
    #[serde(default)]
    pub amqp_url: Option<String>,
    /// The nodes' topic exchange.
    #[serde(default = "default_exchange")]
    pub amqp_exchange: String,
    /// This gateway's durable queue (replicas share it to split the load).
    #[serde(default = "default_queue")]
    pub amqp_queue: String,
    /// Unacknowledged deliveries in flight: the backpressure on the broker.
    #[serde(default = "default_prefetch")]
    pub amqp_prefetch: u16,
    /// Feed puller.
    #[serde(default)]
    pub pull: PullConfig,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("literal address")
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./gateway-data")
}
fn default_db_connections() -> u32 {
    8
}
fn default_exchange() -> String {
    "rix.records".into()
}
fn default_queue() -> String {
    "rix.gateway".into()
}
fn default_prefetch() -> u16 {
    64
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::db::redact_url),
            )
            .field(
                "amqp_url",
                &self.amqp_url.as_deref().map(crate::db::redact_url),
            )
            .field("amqp_queue", &self.amqp_queue)
            .field("pull", &self.pull)
            .finish()
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Bad TOML or value.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where.
        message: String,
    },
    /// Bad environment override.
    #[error("environment variable {name}: {message}")]
    Env {
        /// Variable.
        name: &'static str,
        /// Why.
        message: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("every key has a default")
    }
}

impl Config {
    /// Reads `path` and applies `RIX_*` overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.apply_env(|n| std::env::var(n).ok())?;
        Ok(config)
    }

    /// Applies the overrides `get` returns.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("RIX_LISTEN") {
            self.listen = v
                .parse()
                .map_err(|e: std::net::AddrParseError| ConfigError::Env {
                    name: "RIX_LISTEN",
                    message: e.to_string(),
                })?;
        }
        if let Some(v) = get("RIX_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("RIX_DATABASE_URL") {
            self.database_url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = get("RIX_AMQP_URL") {
            self.amqp_url = Some(v).filter(|v| !v.is_empty());
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
        assert!(config.pull.request_timeout_ms > config.pull.connect_timeout_ms);
    }

    #[test]
    fn environment_overrides_and_secrets_stay_hidden() {
        let mut c = Config::default();
        c.apply_env(|n| match n {
            "RIX_DATABASE_URL" => Some("postgres://rix:pw@db/rix".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.effective_database_url(), "postgres://rix:pw@db/rix");
        assert!(!format!("{c:?}").contains("pw"));
    }
}
