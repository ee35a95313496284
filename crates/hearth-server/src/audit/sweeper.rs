//! Retention: content is cleared once older than its retention, whole records once
//! older than theirs. The clock is a parameter, so tests can move time.

use std::time::{Duration, SystemTime};

use super::{unix_ms, AuditError, AuditStore, DEFAULT_CONTENT_RETENTION, DEFAULT_RETENTION};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    /// How long request and output text are kept.
    pub content: Duration,
    /// How long records are kept; `None`: for ever.
    pub records: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            content: DEFAULT_CONTENT_RETENTION,
            records: Some(DEFAULT_RETENTION),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Swept {
    /// Records whose content was cleared.
    pub content_cleared: usize,
    pub records_deleted: usize,
}

fn cutoff_ms(now: SystemTime, keep: Duration) -> i64 {
    unix_ms(now).saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
}

impl AuditStore {
    /// Applies `retention` as of `now`.
    pub fn sweep(&mut self, now: SystemTime, retention: &Retention) -> Result<Swept, AuditError> {
        let tx = self.conn.transaction()?;
        let content_cleared = tx.execute(
            "UPDATE audit_log SET request_body = NULL, output_text = NULL
             WHERE time_ms < ?1 AND (request_body IS NOT NULL OR output_text IS NOT NULL)",
            [cutoff_ms(now, retention.content)],
        )?;
        let records_deleted = match retention.records {
            Some(keep) => tx.execute(
                "DELETE FROM audit_log WHERE time_ms < ?1",
                [cutoff_ms(now, keep)],
            )?,
            None => 0,
        };
        tx.commit()?;
        let swept = Swept {
            content_cleared,
            records_deleted,
        };
        if swept != Swept::default() {
            // Old content must not survive in the WAL either.
            self.checkpoint();
        }
        Ok(swept)
    }
}
