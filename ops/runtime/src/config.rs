//! Reading a service's TOML file and its `RIX_*` environment overrides, the same way in both
//! services.
//!
//! Each service keeps its own `Config` struct (its keys are its own); what is shared is how a
//! file is read and how a bad file or variable is reported (the file or variable, the key, what
//! is wrong), and the overrides every service has: `RIX_LISTEN`, `RIX_DATA_DIR`,
//! `RIX_DATABASE_URL`, `RIX_AMQP_URL`. An empty URL variable unsets the URL (`RIX_AMQP_URL=`
//! turns the broker off), so that an environment file can undo the TOML file.
//!
//! What it may not touch: what a key means. It knows only those four common overrides and the
//! defaults both services meet on ([`DEFAULT_AMQP_EXCHANGE`]); it opens nothing and checks no
//! value beyond its type.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::DeserializeOwned;

/// The topic exchange nodes publish their batches to and gateways consume them from, unless
/// `amqp_exchange` says otherwise. Both services default to it so that a node and a gateway
/// configured with nothing meet on the broker; `ops/rabbitmq/definitions.json` declares it.
pub const DEFAULT_AMQP_EXCHANGE: &str = "rix.records";

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is wrong.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where.
        message: String,
    },
    /// An environment override is not usable.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A value is not valid.
    #[error("config key {key}: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Reads and parses the TOML file at `path` (unknown keys are the struct's to refuse).
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The `RIX_*` variables as `get` returns them (`std::env::var` in production, a map in tests).
pub struct Env<F: Fn(&str) -> Option<String>> {
    get: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Overrides read through `get`.
    pub fn new(get: F) -> Self {
        Env { get }
    }

    /// The variable's text, if set.
    pub fn text(&self, name: &str) -> Option<String> {
        (self.get)(name)
    }

    /// An optional setting: `Some(None)` when the variable is set but empty (unset it).
    pub fn optional(&self, name: &str) -> Option<Option<String>> {
        self.text(name).map(|v| Some(v).filter(|v| !v.is_empty()))
    }

    /// An optional path: `Some(None)` when the variable is set but empty.
    pub fn optional_path(&self, name: &str) -> Option<Option<PathBuf>> {
        self.optional(name).map(|v| v.map(PathBuf::from))
    }

    /// The variable parsed as a `T`, if set; an error names the variable and the value.
    pub fn parsed<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.text(name)
            .map(|v| {
                v.parse().map_err(|e: T::Err| ConfigError::Env {
                    name,
                    message: format!("{v:?}: {e}"),
                })
            })
            .transpose()
    }

    /// The overrides every service has.
    pub fn apply_common(&self, common: Common<'_>) -> Result<(), ConfigError> {
        if let Some(v) = self.parsed("RIX_LISTEN")? {
            *common.listen = v;
        }
        if let Some(v) = self.text("RIX_DATA_DIR") {
            *common.data_dir = PathBuf::from(v);
        }
        if let Some(v) = self.optional("RIX_DATABASE_URL") {
            *common.database_url = v;
        }
        if let Some(v) = self.optional("RIX_AMQP_URL") {
            *common.amqp_url = v;
        }
        Ok(())
    }
}

/// The settings every service has, borrowed from its config for [`Env::apply_common`].
pub struct Common<'a> {
    /// Where to listen (`RIX_LISTEN`).
    pub listen: &'a mut SocketAddr,
    /// The data directory (`RIX_DATA_DIR`).
    pub data_dir: &'a mut PathBuf,
    /// The database URL (`RIX_DATABASE_URL`; empty: SQLite in the data dir).
    pub database_url: &'a mut Option<String>,
    /// The broker URL (`RIX_AMQP_URL`; empty: no broker).
    pub amqp_url: &'a mut Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn common_overrides_set_unset_and_name_what_is_wrong() {
        let vars: HashMap<&str, &str> = [
            ("RIX_LISTEN", "127.0.0.1:9999"),
            ("RIX_DATA_DIR", "/srv/rix"),
            ("RIX_DATABASE_URL", "postgres://db/rix"),
            ("RIX_AMQP_URL", ""),
        ]
        .into();
        let env = Env::new(|n: &str| vars.get(n).map(|v| v.to_string()));
        let mut listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut data_dir = PathBuf::from("./data");
        let mut database_url = None;
        let mut amqp_url = Some("amqp://broker".to_owned());
        env.apply_common(Common {
            listen: &mut listen,
            data_dir: &mut data_dir,
            database_url: &mut database_url,
            amqp_url: &mut amqp_url,
        })
        .unwrap();
        assert_eq!(listen.port(), 9999);
        assert_eq!(data_dir, PathBuf::from("/srv/rix"));
        assert_eq!(database_url.as_deref(), Some("postgres://db/rix"));
        assert_eq!(amqp_url, None, "an empty variable unsets the URL");

        let bad = Env::new(|n: &str| (n == "RIX_LISTEN").then(|| "not an address".to_owned()));
        let err = bad
            .apply_common(Common {
                listen: &mut listen,
                data_dir: &mut data_dir,
                database_url: &mut database_url,
                amqp_url: &mut amqp_url,
            })
            .unwrap_err();
        let said = err.to_string();
        assert!(
            said.contains("RIX_LISTEN") && said.contains("not an address"),
            "{said}"
        );
    }
}
