//! The audit database: schema, connection settings, inserts and erasure.
//!
//! Several processes may open it at once (the server writes, `hearth audit` reads and
//! purges): WAL lets readers run beside the writer, and a busy timeout makes a purge
//! wait for the writer's transaction instead of failing.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection};

use super::{AuditError, AuditRecord};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    id                INTEGER PRIMARY KEY,
    time_ms           INTEGER NOT NULL,
    time              TEXT    NOT NULL,
    request_id        TEXT    NOT NULL,
    key_name          TEXT,
    method            TEXT    NOT NULL,
    endpoint          TEXT    NOT NULL,
    model             TEXT,
    subject           TEXT,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    ttft_ms           INTEGER,
    status            INTEGER NOT NULL,
    finish_reason     TEXT,
    completed         INTEGER NOT NULL,
    request_body      TEXT,
    output_text       TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log(time_ms);
CREATE INDEX IF NOT EXISTS audit_log_subject ON audit_log(subject);
";

/// How long a connection waits for another one's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AuditStore {
    pub(super) conn: Connection,
}

impl AuditStore {
    /// Opens the database at `path`, creating it (and its folder) if needed.
    pub fn open(path: &Path) -> Result<AuditStore, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| AuditError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // The mode is stored in the file; setting it again is a no-op.
        let mode: String = crate::sqlite_setup::retry_while_busy(&conn, BUSY_TIMEOUT, |c| {
            c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        })?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "audit database is not in WAL mode");
        }
        // Per connection: durable across a process crash, fsync at checkpoints only;
        // erased rows are overwritten, not left in free pages.
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA secure_delete=ON;")?;
        crate::sqlite_setup::retry_while_busy(&conn, BUSY_TIMEOUT, |c| c.execute_batch(SCHEMA))?;
        Ok(AuditStore { conn })
    }

    /// Opens an existing database only (for the CLI: a typo must not make an empty one).
    pub fn open_existing(path: &Path) -> Result<AuditStore, AuditError> {
        if !path.is_file() {
            return Err(AuditError::Missing(path.to_path_buf()));
        }
        AuditStore::open(path)
    }

    /// Caps the database file at about `bytes` (never below its current size);
    /// writes past it fail with "database or disk is full". Returns the cap in pages.
    pub fn set_max_size(&self, bytes: u64) -> Result<u64, AuditError> {
        let page: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = (bytes / page.max(1) as u64).max(1);
        let set: i64 = self
            .conn
            .query_row(&format!("PRAGMA max_page_count={pages}"), [], |r| r.get(0))?;
        Ok(set.max(0) as u64)
    }

    /// Writes `records` in one transaction: all of them or none.
    pub fn insert(&mut self, records: &[AuditRecord]) -> Result<(), AuditError> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO audit_log (time_ms, time, request_id, key_name, method, endpoint,
                    model, subject, prompt_tokens, completion_tokens, cached_tokens, latency_ms,
                    ttft_ms, status, finish_reason, completed, request_body, output_text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18)",
            )?;
            for r in records {
                st.execute(params![
                    r.time_ms,
                    r.time,
                    r.request_id,
                    r.key_name,
                    r.method,
                    r.endpoint,
                    r.model,
                    r.subject,
                    sql_int(r.prompt_tokens),
                    sql_int(r.completion_tokens),
                    sql_int(r.cached_tokens),
                    sql_int(r.latency_ms),
                    r.ttft_ms.map(sql_int),
                    r.status,
                    r.finish_reason,
                    r.completed,
                    r.request_body,
                    r.output_text,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes every record of `subject` (content included); returns how many.
    pub fn purge_subject(&mut self, subject: &str) -> Result<usize, AuditError> {
        let n = self
            .conn
            .execute("DELETE FROM audit_log WHERE subject = ?1", [subject])?;
        self.checkpoint();
        Ok(n)
    }

    /// Copies the WAL into the main file and empties it, so erased content does not
    /// linger there; best effort (a reader may hold it back until the next one).
    pub fn checkpoint(&self) {
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::debug!(error = %e, "audit checkpoint");
        }
    }

    pub fn count(&self) -> Result<u64, AuditError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }
}

/// SQLite integers are i64; counts never come near the limit.
fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
