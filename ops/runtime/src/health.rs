//! The health of a connection a service keeps open to something it depends on (the broker, a
//! node's feed), as `/healthz` reports it.
//!
//! **Why a state and not a flag.** A connected/disconnected flag made a node that had simply
//! not connected yet look like one with a wrong broker URL. A [`Link`] is `connecting` until
//! its first attempt ends, then `connected` or `failing`; while failing it keeps the last error
//! and since when it has been failing, and it keeps when it was last connected — what an
//! operator needs to tell "starting" from "broken" from "broken for an hour".
//!
//! What it may not touch: the connection itself and HTTP. The task that keeps the connection
//! reports into a [`Link`]; each service's `/healthz` renders the report in its own answer.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::rfc3339;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// The first attempt has not ended yet.
    Connecting,
    /// Up.
    Connected,
    /// The last attempt failed (or the connection broke); retrying.
    Failing,
}

impl LinkState {
    /// The word `/healthz` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Failing => "failing",
        }
    }
}

/// What `/healthz` shows of a [`Link`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkReport {
    /// Where it stands.
    pub state: LinkState,
    /// Since when it has been in that state (RFC 3339).
    pub since: String,
    /// When it was last connected (RFC 3339), if ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_connected_at: Option<String>,
    /// The last error, while failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failed attempts since it was last connected.
    pub failures: u64,
}

impl LinkReport {
    /// How long it has been in its state, in seconds.
    pub fn seconds_in_state(&self) -> f64 {
        OffsetDateTime::parse(&self.since, &Rfc3339)
            .map(|t| (OffsetDateTime::now_utc() - t).as_seconds_f64().max(0.0))
            .unwrap_or(0.0)
    }
}

#[derive(Debug)]
struct Inner {
    state: LinkState,
    since: OffsetDateTime,
    last_connected_at: Option<OffsetDateTime>,
    last_error: Option<String>,
    failures: u64,
}

/// A connection's health, shared between the task that keeps the connection and `/healthz`.
/// Cheap to clone (shared inside).
#[derive(Debug, Clone)]
pub struct Link {
    inner: Arc<Mutex<Inner>>,
}

impl Default for Link {
    fn default() -> Self {
        Link::new()
    }
}

impl Link {
    /// A link whose first attempt is under way.
    pub fn new() -> Link {
        Link {
            inner: Arc::new(Mutex::new(Inner {
                state: LinkState::Connecting,
                since: OffsetDateTime::now_utc(),
                last_connected_at: None,
                last_error: None,
                failures: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection is up.
    pub fn connected(&self) {
        let mut inner = self.lock();
        let now = OffsetDateTime::now_utc();
        if inner.state != LinkState::Connected {
            inner.state = LinkState::Connected;
            inner.since = now;
        }
        inner.last_connected_at = Some(now);
        inner.last_error = None;
        inner.failures = 0;
    }

    /// An attempt failed or the connection broke, with `error` (which should name the cause).
    pub fn failed(&self, error: impl std::fmt::Display) {
        let mut inner = self.lock();
        if inner.state != LinkState::Failing {
            inner.state = LinkState::Failing;
            inner.since = OffsetDateTime::now_utc();
        }
        inner.last_error = Some(error.to_string());
        inner.failures += 1;
    }

    /// Where it stands now.
    pub fn state(&self) -> LinkState {
        self.lock().state
    }

    /// What `/healthz` shows.
    pub fn report(&self) -> LinkReport {
        let inner = self.lock();
        LinkReport {
            state: inner.state,
            since: rfc3339(inner.since),
            last_connected_at: inner.last_connected_at.map(rfc3339),
            last_error: inner.last_error.clone(),
            failures: inner.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_tells_starting_from_failing_from_connected() {
        let link = Link::new();
        let r = link.report();
        assert_eq!(
            (r.state, r.failures, r.last_error),
            (LinkState::Connecting, 0, None)
        );

        link.failed("connection refused");
        link.failed("connection refused again");
        let failing = link.report();
        assert_eq!(failing.state, LinkState::Failing);
        assert_eq!(failing.failures, 2);
        assert_eq!(
            failing.last_error.as_deref(),
            Some("connection refused again")
        );
        assert_eq!(failing.last_connected_at, None);

        link.connected();
        let up = link.report();
        assert_eq!(up.state, LinkState::Connected);
        assert_eq!((up.failures, up.last_error.as_deref()), (0, None));
        assert!(up.last_connected_at.is_some());

        // Broken after having been up: failing since the break, still remembering when it was up.
        link.failed("connection reset");
        let broken = link.report();
        assert_eq!(broken.state, LinkState::Failing);
        assert_eq!(broken.last_connected_at, up.last_connected_at);
        assert_eq!(
            serde_json::to_value(&broken).unwrap()["state"],
            serde_json::json!("failing")
        );
    }
}
