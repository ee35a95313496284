//! The observer and its writer thread: records go over a bounded channel to one
//! thread that owns the database, commits them in batches, retries after a failure
//! and runs the retention sweep.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::{AuditConfig, AuditError, AuditRecord, AuditStore};
use crate::context::{FinishedRequest, RequestObserver};

/// Records waiting for the writer, at most (beyond it they are counted as lost).
const QUEUE: usize = 16_384;
/// Records kept for a retry while writes fail, at most.
const PENDING: usize = 16_384;
const BATCH: usize = 512;
const RETRY: Duration = Duration::from_secs(1);

/// Whether the log is being written; shared with /health, /stats and the gate.
#[derive(Debug, Default)]
pub struct AuditStatus {
    failing: AtomicBool,
    written: AtomicU64,
    write_errors: AtomicU64,
    lost: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl AuditStatus {
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        self.failing.store(true, Ordering::Relaxed);
        tracing::error!(error = %e, "audit log: {what}");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{what}: {e}"));
    }

    fn wrote(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("audit log: writing again");
        }
    }

    /// For /stats.
    pub fn json(&self) -> Value {
        let last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        json!({
            "status": if self.is_failing() { "failing" } else { "ok" },
            "records_written": self.written.load(Ordering::Relaxed),
            "write_errors": self.write_errors(),
            "records_lost": self.lost.load(Ordering::Relaxed),
            "last_error": *last,
        })
    }
}

enum Msg {
    Record(Box<AuditRecord>),
    /// Write what is queued, then answer.
    Flush(mpsc::Sender<()>),
}

pub struct AuditLog {
    tx: SyncSender<Msg>,
    status: Arc<AuditStatus>,
    /// Content logging for every key.
    pub log_content: bool,
    pub fail_closed: bool,
}

impl AuditLog {
    /// Opens the database and starts the writer thread (which sweeps once at start).
    pub fn start(cfg: AuditConfig) -> Result<Arc<AuditLog>, AuditError> {
        let store = AuditStore::open(&cfg.path)?;
        if let Some(bytes) = cfg.max_size {
            let pages = store.set_max_size(bytes)?;
            tracing::info!(pages, "audit database size capped");
        }
        let status = Arc::new(AuditStatus::default());
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let writer = Writer {
            store,
            cfg: cfg.clone(),
            status: status.clone(),
            pending: Vec::new(),
        };
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::Writer(e.to_string()))?;
        Ok(Arc::new(AuditLog {
            tx,
            status,
            log_content: cfg.log_content,
            fail_closed: cfg.fail_closed,
        }))
    }

    pub fn status(&self) -> &Arc<AuditStatus> {
        &self.status
    }

    /// Waits (up to `timeout`) until everything sent so far is written or failed.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Msg::Flush(done)).is_err() {
            return false;
        }
        wait.recv_timeout(timeout).is_ok()
    }
}

impl RequestObserver for AuditLog {
    fn finished(&self, request: &FinishedRequest) {
        let rec = Box::new(AuditRecord::from_finished(request));
        match self.tx.try_send(Msg::Record(rec)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.status.lost.fetch_add(1, Ordering::Relaxed);
                self.status.failed("record lost", &"writer queue full");
            }
            Err(TrySendError::Disconnected(_)) => {
                self.status.lost.fetch_add(1, Ordering::Relaxed);
                self.status.failed("record lost", &"writer thread stopped");
            }
        }
    }
}

struct Writer {
    store: AuditStore,
    cfg: AuditConfig,
    status: Arc<AuditStatus>,
    /// Received but not yet committed (after a failure, kept for a retry).
    pending: Vec<AuditRecord>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        self.sweep();
        let mut next_sweep = Instant::now() + self.cfg.sweep_interval;
        loop {
            let mut wait = next_sweep.saturating_duration_since(Instant::now());
            if !self.pending.is_empty() {
                wait = wait.min(RETRY);
            }
            let mut acks = Vec::new();
            match rx.recv_timeout(wait) {
                Ok(m) => self.take(m, &mut acks),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.write();
                    return;
                }
            }
            while self.pending.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => self.take(m, &mut acks),
                    Err(_) => break,
                }
            }
            self.write();
            for a in acks {
                let _ = a.send(());
            }
            if Instant::now() >= next_sweep {
                self.sweep();
                next_sweep = Instant::now() + self.cfg.sweep_interval;
            }
        }
    }

    fn take(&mut self, m: Msg, acks: &mut Vec<mpsc::Sender<()>>) {
        match m {
            Msg::Record(r) => self.pending.push(*r),
            Msg::Flush(a) => acks.push(a),
        }
    }

    fn write(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.store.insert(&self.pending) {
            Ok(()) => {
                self.status.wrote(self.pending.len());
                self.pending.clear();
            }
            Err(e) => {
                self.status.failed("write failed", &e);
                if self.pending.len() > PENDING {
                    let drop = self.pending.len() - PENDING;
                    self.pending.drain(..drop);
                    self.status.lost.fetch_add(drop as u64, Ordering::Relaxed);
                }
            }
        }
    }

    fn sweep(&mut self) {
        match self.store.sweep(SystemTime::now(), &self.cfg.retention) {
            Ok(s) if s.content_cleared + s.records_deleted > 0 => tracing::info!(
                content_cleared = s.content_cleared,
                records_deleted = s.records_deleted,
                "audit retention sweep"
            ),
            Ok(_) => {}
            Err(e) => self.status.failed("retention sweep failed", &e),
        }
    }
}
