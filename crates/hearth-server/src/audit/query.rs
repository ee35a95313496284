//! Reading records back: `hearth audit export` filters by key, subject and time.

use rusqlite::types::Value;
use rusqlite::Row;

use super::{AuditError, AuditRecord, AuditStore};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportFilter {
    pub key_name: Option<String>,
    pub subject: Option<String>,
    /// Records at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Records before this time (Unix ms).
    pub until_ms: Option<i64>,
}

impl ExportFilter {
    /// The WHERE clause and its parameters.
    fn sql(&self) -> (String, Vec<Value>) {
        let mut conds = Vec::new();
        let mut args = Vec::new();
        if let Some(k) = &self.key_name {
            conds.push("key_name = ?");
            args.push(Value::Text(k.clone()));
        }
        if let Some(s) = &self.subject {
            conds.push("subject = ?");
            args.push(Value::Text(s.clone()));
        }
        if let Some(t) = self.since_ms {
            conds.push("time_ms >= ?");
            args.push(Value::Integer(t));
        }
        if let Some(t) = self.until_ms {
            conds.push("time_ms < ?");
            args.push(Value::Integer(t));
        }
        if conds.is_empty() {
            (String::new(), args)
        } else {
            (format!(" WHERE {}", conds.join(" AND ")), args)
        }
    }
}

impl AuditStore {
    /// Calls `each` with every matching record, oldest first.
    pub fn export<E>(
        &self,
        filter: &ExportFilter,
        mut each: impl FnMut(AuditRecord) -> Result<(), E>,
    ) -> Result<u64, AuditError>
    where
        E: std::fmt::Display,
    {
        let (cond, args) = filter.sql();
        let sql = format!(
            "SELECT time, time_ms, request_id, key_name, method, endpoint, model, subject,
                prompt_tokens, completion_tokens, cached_tokens, latency_ms, ttft_ms, status,
                finish_reason, completed, request_body, output_text
             FROM audit_log{cond} ORDER BY time_ms, id"
        );
        let mut st = self.conn.prepare(&sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(args))?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            each(read_record(row)?).map_err(|e| AuditError::Writer(e.to_string()))?;
            n += 1;
        }
        Ok(n)
    }

    /// Every matching record (tests and small exports).
    pub fn records(&self, filter: &ExportFilter) -> Result<Vec<AuditRecord>, AuditError> {
        let mut out = Vec::new();
        self.export(filter, |r| {
            out.push(r);
            Ok::<(), String>(())
        })?;
        Ok(out)
    }
}

fn read_record(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    let u = |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    Ok(AuditRecord {
        time: row.get(0)?,
        time_ms: row.get(1)?,
        request_id: row.get(2)?,
        key_name: row.get(3)?,
        method: row.get(4)?,
        endpoint: row.get(5)?,
        model: row.get(6)?,
        subject: row.get(7)?,
        prompt_tokens: u(8)?,
        completion_tokens: u(9)?,
        cached_tokens: u(10)?,
        latency_ms: u(11)?,
        ttft_ms: row.get::<_, Option<i64>>(12)?.map(|v| v.max(0) as u64),
        status: row.get(13)?,
        finish_reason: row.get(14)?,
        completed: row.get(15)?,
        request_body: row.get(16)?,
        output_text: row.get(17)?,
    })
}
