//! Setting up a SQLite file that other hearth processes may be opening at the same
//! moment (a server and `hearth keys`, or several servers on one home). Two connections
//! switching a new file to WAL, or creating its tables, can get SQLITE_BUSY at once,
//! without the busy handler waiting; the setup is idempotent, so it is simply retried.

use rusqlite::{Connection, ErrorCode};
use std::time::{Duration, Instant};

/// Runs `setup` on `conn`, again while the file is busy or locked, for up to `patience`.
pub fn retry_while_busy<T>(
    conn: &Connection,
    patience: Duration,
    mut setup: impl FnMut(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let deadline = Instant::now() + patience;
    loop {
        match setup(conn) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight threads set up one new file at once: every one succeeds.
    #[test]
    fn concurrent_setup_of_one_new_file_succeeds() {
        let path =
            std::env::temp_dir().join(format!("hearth-sqlite-setup-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let conn = Connection::open(&path).expect("open");
                    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
                    retry_while_busy(&conn, Duration::from_secs(10), |c| {
                        c.pragma_update(None, "journal_mode", "WAL")?;
                        c.execute_batch("CREATE TABLE IF NOT EXISTS t (x INTEGER);")
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread").expect("setup");
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
