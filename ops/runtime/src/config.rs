//! Reading a service's TOML file and its `RIX_*` environment overrides, the same way in both
//! services.
//!
//! Each service keeps its own `Config` struct (its keys are its own); what is shared is how a
//! file is read and how a bad file or variable is reported (the file or variable, the key, what
//! is wrong), and the overrides every service has: `RIX_LISTEN`, `RIX_DATA_DIR`,
//! `RIX_DATABASE_URL`, `RIX_AMQP_URL`. An empty URL variable unsets the URL (`RIX_AMQP_URL=`
//! turns the broker off), so that an environment file can undo the TOML file.
//!
//! A broker address may be a list: the nodes of a RabbitMQ cluster, comma-separated in one
//! string (`RIX_AMQP_URL=amqp://…:5701/%2f,amqp://…:5702/%2f`) or a TOML array
//! ([`url_list`]). [`BrokerUrls`] hands them out in turn, for the node's publisher and the
//! gateway's consumer to fail over.
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

/// Reads `amqp_url` as one string (one URL, or several separated by commas) or as a TOML array
/// of URLs; either way the result is the comma-separated list (`None`: no broker). For
/// `#[serde(deserialize_with = "…")]` on an `Option<String>`.
pub fn url_list<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let list = match <Option<OneOrMany> as serde::Deserialize>::deserialize(deserializer)? {
        None => return Ok(None),
        Some(OneOrMany::One(s)) => s,
        Some(OneOrMany::Many(urls)) => {
            if let Some(u) = urls.iter().find(|u| u.contains(',')) {
                return Err(serde::de::Error::custom(format!(
                    "a URL in the list contains a comma ({}); write a comma in a password as %2C",
                    crate::db::redact_url(u)
                )));
            }
            urls.join(",")
        }
    };
    Ok(Some(list).filter(|s| !s.trim().is_empty()))
}

/// The addresses of one broker — a single node, or the nodes of a cluster — as the services
/// use them: tried in order, and after a failure the next one, round the list.
///
/// Built from a comma-separated list (a comma inside a password must be written `%2C`).
/// Its `Debug` never shows a password.
#[derive(Clone)]
pub struct BrokerUrls {
    urls: Vec<String>,
    current: usize,
}

impl BrokerUrls {
    /// Checks a service's configured `amqp_url` (`None`: no broker, which is fine): refused,
    /// in words for the operator, when it is given but names no broker.
    pub fn check(amqp_url: Option<&str>) -> Result<(), ConfigError> {
        match amqp_url {
            Some(list) if BrokerUrls::parse(list).is_none() => Err(ConfigError::Invalid {
                key: "amqp_url",
                message: format!(
                    "{list:?} names no broker; give one amqp:// URL, or several separated by commas"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The URLs of `list` (one URL, or several separated by commas; blanks around them are
    /// ignored). `None` when it names none.
    pub fn parse(list: &str) -> Option<BrokerUrls> {
        let urls: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        (!urls.is_empty()).then_some(BrokerUrls { urls, current: 0 })
    }

    /// The address to use now.
    pub fn current(&self) -> &str {
        &self.urls[self.current]
    }

    /// Moves on to the next address (after the current one failed); back to the first after
    /// the last.
    pub fn advance(&mut self) {
        self.current = (self.current + 1) % self.urls.len();
    }

    /// How many addresses there are.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Never true: a list names at least one broker.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The list without passwords, for messages and logs.
    pub fn redacted(&self) -> String {
        redact_url_list(&self.urls.join(","))
    }
}

impl fmt::Debug for BrokerUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A comma-separated URL list (`amqp_url`) without its passwords, for messages and logs.
pub fn redact_url_list(list: &str) -> String {
    list.split(',')
        .map(|u| crate::db::redact_url(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

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
        message: parse_message(&text, &e),
    })
}

/// Where the TOML is wrong (line and column) and what is wrong, without the line itself, which
/// the parser's own message quotes: a config line may hold a password (`database_url`,
/// `amqp_url`), and this message goes to the terminal and the service's log. A URL the message
/// names loses its password too.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let message = redact_urls_in(e.message().trim_end());
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// `text` with every URL's password taken out (`scheme://user:secret@host` →
/// `scheme://user@host`), the URL ending at white space, a quote or a bracket.
fn redact_urls_in(text: &str) -> String {
    let ends = |c: char| c.is_whitespace() || "\"'`,[]{}()".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .char_indices()
            .rev()
            .find(|&(_, c)| ends(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let end = rest[at..].find(ends).map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..start]);
        out.push_str(&crate::db::redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
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

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Service {
        database_url: Option<String>,
        port: Option<u16>,
    }

    #[test]
    fn a_bad_config_file_says_where_without_quoting_its_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.toml");
        let said = |text: &str| {
            std::fs::write(&path, text).unwrap();
            read_toml::<Service>(&path).unwrap_err().to_string()
        };
        // Not TOML: the parser's message would show the line, password and all.
        let unquoted = said("port = 8080\ndatabase_url = postgres://rix:s3cret@db/rix\n");
        assert!(!unquoted.contains("s3cret"), "{unquoted}");
        assert!(unquoted.contains("line 2, column 16"), "{unquoted}");
        // The wrong type: serde's message names the value.
        let typed = said("port = \"amqp://guest:s3cret@broker:5672/%2f\"\n");
        assert!(!typed.contains("s3cret"), "{typed}");
        assert!(
            typed.contains("line 1, column 8") && typed.contains("amqp://guest@broker:5672/%2f"),
            "{typed}"
        );
        // Without a password nothing is taken out.
        assert_eq!(
            redact_urls_in("expected `\"` (\"http://example.org/x\")"),
            "expected `\"` (\"http://example.org/x\")"
        );
        assert_eq!(
            redact_urls_in("a \"postgres://u:p@h/d\", b amqp://x:y@z"),
            "a \"postgres://u@h/d\", b amqp://x@z"
        );
    }

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

    #[derive(serde::Deserialize)]
    struct WithUrls {
        #[serde(default, deserialize_with = "url_list")]
        amqp_url: Option<String>,
    }

    #[test]
    fn a_broker_address_is_one_url_a_comma_list_or_an_array() {
        let parse = |text: &str| toml::from_str::<WithUrls>(text).map(|c| c.amqp_url);
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("amqp_url = \"\"").unwrap(), None);
        assert_eq!(
            parse("amqp_url = \"amqp://a:5672/%2f\"")
                .unwrap()
                .as_deref(),
            Some("amqp://a:5672/%2f")
        );
        assert_eq!(
            parse("amqp_url = [\"amqp://u:p@a:5701/v\", \"amqp://u:p@b:5702/v\"]")
                .unwrap()
                .as_deref(),
            Some("amqp://u:p@a:5701/v,amqp://u:p@b:5702/v")
        );
        let err = parse("amqp_url = [\"amqp://u:p,w@a/v\"]")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("%2C") && err.contains("(amqp://u@a/v)"),
            "{err}"
        );

        let mut urls =
            BrokerUrls::parse(" amqp://u:s3cret@a:5701/v , amqp://u:s3cret@b:5702/v,").unwrap();
        assert_eq!(urls.len(), 2);
        assert_eq!(urls.current(), "amqp://u:s3cret@a:5701/v");
        urls.advance();
        assert_eq!(urls.current(), "amqp://u:s3cret@b:5702/v");
        urls.advance();
        assert_eq!(urls.current(), "amqp://u:s3cret@a:5701/v", "round the list");
        let shown = format!("{urls:?}");
        assert_eq!(shown, "amqp://u@a:5701/v,amqp://u@b:5702/v");
        assert!(BrokerUrls::parse(" , ").is_none());
        assert_eq!(
            redact_url_list("amqp://u:x@a/v,amqp://w:y@b/v"),
            "amqp://u@a/v,amqp://w@b/v"
        );
    }
}
