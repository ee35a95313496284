//! `hearth audit export|purge`: read and erase the audit log, also while a server
//! writes it (SQLite WAL; a purge waits for the writer's lock).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hearth_server::audit::{
    parse_duration, parse_time_ms, AuditConfig, AuditLog, AuditStore, ExportFilter, Retention,
};

use crate::size::parse_size;

/// `hearth serve`'s audit log flags.
#[derive(Debug, Args)]
pub struct AuditServeArgs {
    /// The audit database (default: $HEARTH_HOME/audit.sqlite).
    #[arg(long)]
    pub audit_db: Option<PathBuf>,
    /// Store request bodies and output text for every key (a key can also ask for it).
    #[arg(long)]
    pub audit_log_content: bool,
    /// How long stored request and output text is kept (e.g. 30d, 12h).
    #[arg(long, value_parser = parse_duration, default_value = "30d")]
    pub audit_content_retention: Duration,
    /// How long records are kept (e.g. 365d), or "forever".
    #[arg(long, value_parser = parse_retention, default_value = "365d")]
    pub audit_retention: Duration,
    /// Largest size of the audit database (e.g. 1GiB); writes beyond it fail loudly.
    #[arg(long, value_parser = parse_size)]
    pub audit_max_size: Option<u64>,
    /// Refuse /v1/* requests (503) while the audit log cannot be written.
    #[arg(long)]
    pub audit_fail_closed: bool,
    /// How often the retention sweep runs.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub audit_sweep_interval: Duration,
}

fn parse_retention(s: &str) -> Result<Duration, String> {
    if s.trim().eq_ignore_ascii_case("forever") {
        Ok(Duration::MAX)
    } else {
        parse_duration(s)
    }
}

impl AuditServeArgs {
    /// Opens the database and starts its writer.
    pub fn start(&self) -> Result<Arc<AuditLog>> {
        let path = match &self.audit_db {
            Some(p) => p.clone(),
            None => default_db()?,
        };
        let mut cfg = AuditConfig::new(path.clone());
        cfg.log_content = self.audit_log_content;
        cfg.retention = Retention {
            content: self.audit_content_retention,
            records: (self.audit_retention != Duration::MAX).then_some(self.audit_retention),
        };
        cfg.max_size = self.audit_max_size;
        cfg.fail_closed = self.audit_fail_closed;
        cfg.sweep_interval = self.audit_sweep_interval.max(Duration::from_millis(100));
        let log = AuditLog::start(cfg)
            .with_context(|| format!("opening the audit log {}", path.display()))?;
        tracing::info!(path = %path.display(), content = self.audit_log_content, "audit log");
        Ok(log)
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print records as JSON lines, oldest first.
    Export(ExportArgs),
    /// Delete every record of a data subject (erasure); prints how many.
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub struct DbArg {
    /// The audit database (default: $HEARTH_HOME/audit.sqlite).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Only records of this API key name.
    #[arg(long)]
    pub key: Option<String>,
    /// Only records of this subject (`user`, `metadata.user_id` or x-hearth-subject).
    #[arg(long)]
    pub subject: Option<String>,
    /// Only records at or after this time (RFC 3339 UTC, e.g. 2026-01-31T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only records before this time (RFC 3339 UTC).
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The subject whose records are deleted.
    #[arg(long)]
    pub subject: String,
}

/// `$HEARTH_HOME/audit.sqlite`.
pub fn default_db() -> Result<PathBuf> {
    Ok(hearth_models::store::Store::default_home()?.join("audit.sqlite"))
}

fn db_path(arg: &DbArg) -> Result<PathBuf> {
    match &arg.db {
        Some(p) => Ok(p.clone()),
        None => default_db(),
    }
}

pub fn run(cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Export(a) => export(&a),
        AuditCommand::Purge(a) => purge(&a),
    }
}

fn export(a: &ExportArgs) -> Result<()> {
    let filter = ExportFilter {
        key_name: a.key.clone(),
        subject: a.subject.clone(),
        since_ms: a.since.as_deref().map(parse_time_ms).transpose()?,
        until_ms: a.until.as_deref().map(parse_time_ms).transpose()?,
    };
    let store = AuditStore::open_existing(&db_path(&a.db)?)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    store.export(&filter, |r| {
        let line = serde_json::to_string(&r).map_err(|e| e.to_string())?;
        writeln!(out, "{line}").map_err(|e| e.to_string())
    })?;
    out.flush().context("writing to stdout")?;
    Ok(())
}

fn purge(a: &PurgeArgs) -> Result<()> {
    anyhow::ensure!(!a.subject.is_empty(), "--subject must not be empty");
    let mut store = AuditStore::open_existing(&db_path(&a.db)?)?;
    let n = store.purge_subject(&a.subject)?;
    println!("{n}");
    eprintln!("deleted {n} audit records of subject {:?}", a.subject);
    Ok(())
}
