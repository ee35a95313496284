//! The audit log: one SQLite record per request (who, what, how much, how it ended).
//!
//! `AuditLog` is a `RequestObserver`: it turns each finished request into an
//! `AuditRecord` and hands it to one writer thread over a channel, so the runtime
//! never waits on the disk. The file is in WAL mode with `synchronous=NORMAL`: a
//! committed record survives `kill -9`. Prompt and output text are stored only while
//! content logging is on (globally or for the request's key) and are cleared by the
//! sweeper once older than the content retention. Write failures are logged, counted
//! and shown (`AuditStatus`); with `fail_closed` the `/v1/*` routes refuse requests
//! until a write succeeds again.

pub mod capture;
pub mod query;
pub mod record;
pub mod store;
#[cfg(test)]
mod store_tests;
pub mod sweeper;
pub mod writer;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use query::ExportFilter;
pub use record::AuditRecord;
pub use store::AuditStore;
pub use sweeper::{Retention, Swept};
pub use writer::{AuditLog, AuditStatus};

/// Content is kept this long unless configured otherwise.
pub const DEFAULT_CONTENT_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// Metadata is kept this long unless configured otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(365 * 86_400);
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("audit database {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no audit log at {0}")]
    Missing(PathBuf),
    #[error("invalid time {0:?}: expected RFC 3339 in UTC, e.g. 2026-01-31T12:00:00Z")]
    BadTime(String),
    #[error("audit writer: {0}")]
    Writer(String),
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub path: PathBuf,
    /// Store request and output text for every key.
    pub log_content: bool,
    pub retention: Retention,
    /// Database size cap in bytes (SQLite `max_page_count`); `None`: unbounded.
    pub max_size: Option<u64>,
    /// Refuse `/v1/*` requests while records cannot be written.
    pub fail_closed: bool,
    pub sweep_interval: Duration,
}

impl AuditConfig {
    pub fn new(path: PathBuf) -> AuditConfig {
        AuditConfig {
            path,
            log_content: false,
            retention: Retention::default(),
            max_size: None,
            fail_closed: false,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
        }
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `2026-01-31T12:00:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses an RFC 3339 UTC time (`Z` or no zone; fractions allowed) or a bare date
/// (`2026-01-31`, midnight UTC) into Unix milliseconds.
pub fn parse_time_ms(s: &str) -> Result<i64, AuditError> {
    let t = s.trim();
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .map(unix_ms)
        .map_err(|_| AuditError::BadTime(s.to_string()))
}

/// Parses a duration like `30d`, `12h`, `90s`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let ms = parse_time_ms("2026-01-31T12:00:00.250Z").unwrap();
        assert_eq!(ms, 1_769_860_800_250);
        let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
        assert_eq!(rfc3339(t), "2026-01-31T12:00:00.250Z");
        assert_eq!(
            parse_time_ms("2026-01-31").unwrap(),
            parse_time_ms("2026-01-31T00:00:00Z").unwrap()
        );
        assert!(matches!(
            parse_time_ms("yesterday"),
            Err(AuditError::BadTime(_))
        ));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
    }
}
