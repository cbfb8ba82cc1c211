//! The one way both services write "now": RFC 3339 in UTC.
//!
//! Times are stored as text in both SQLite and PostgreSQL and compared by the services after
//! parsing (`time::OffsetDateTime`), never as strings: the number of subsecond digits varies.
//! Every stored time comes from here, so that they all have one form.
//!
//! What it may not touch: time zones and schedules. It reads the system clock and formats;
//! what a time means (a key's validity, a batch's skew) is decided where it is used.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current time, RFC 3339 UTC (`2026-11-29T23:10:04.123456789Z`).
pub fn now() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// `t` as RFC 3339.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("a UTC time formats as RFC 3339")
}
