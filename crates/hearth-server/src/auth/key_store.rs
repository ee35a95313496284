//! API keys in SQLite (`$HEARTH_HOME/keys.sqlite`, WAL): only hashes are stored.
//!
//! The server looks every request's key up here, so a key revoked or expired by the
//! CLI (another process, another connection) stops working at once.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::key::{KeyInfo, NewKey};
use super::key_hash::{display_prefix, generate_key, hash_key, hashes_equal};
use super::AuthError;

pub const KEYS_FILE: &str = "keys.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    models TEXT NOT NULL,
    endpoints TEXT NOT NULL,
    rpm INTEGER,
    max_concurrency INTEGER,
    expires_at INTEGER,
    admin INTEGER NOT NULL,
    log_content INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
-- A name is unique among keys still in force; a revoked name can be reissued.
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys(name) WHERE revoked_at IS NULL;
";

const COLUMNS: &str = "id, name, prefix, models, endpoints, rpm, max_concurrency, expires_at, \
                       admin, log_content, created_at, revoked_at";

pub struct KeyStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl KeyStore {
    /// `home/keys.sqlite`, created if needed.
    pub fn open_home(home: &Path) -> Result<KeyStore, AuthError> {
        std::fs::create_dir_all(home)
            .map_err(|e| AuthError::Io(format!("creating {}: {e}", home.display())))?;
        KeyStore::open(&home.join(KEYS_FILE))
    }

    pub fn open(path: &Path) -> Result<KeyStore, AuthError> {
        let conn = Connection::open(path)?;
        // The CLI writes while the server reads: WAL lets both go on.
        conn.busy_timeout(Duration::from_secs(5))?;
        crate::sqlite_setup::retry_while_busy(&conn, Duration::from_secs(10), |c| {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.execute_batch(SCHEMA)
        })?;
        Ok(KeyStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a new key; returns the key (shown once) and its record.
    pub fn create(&self, new: &NewKey, now: u64) -> Result<(String, KeyInfo), AuthError> {
        new.validate()?;
        let key = generate_key()?;
        let models = serde_json::to_string(&new.models).map_err(AuthError::json)?;
        let endpoints = serde_json::to_string(&new.endpoints).map_err(AuthError::json)?;
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT INTO api_keys (name, prefix, hash, models, endpoints, rpm, max_concurrency,
                 expires_at, admin, log_content, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                new.name,
                display_prefix(&key),
                hash_key(&key).as_slice(),
                models,
                endpoints,
                new.rpm,
                new.max_concurrency,
                new.expires_at.map(to_i64),
                new.admin,
                new.log_content,
                to_i64(now),
            ],
        );
        match inserted {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(AuthError::NameTaken(new.name.clone()))
            }
            other => other?,
        };
        let id = conn.last_insert_rowid();
        let info = conn.query_row(
            &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
            [id],
            read_info,
        )?;
        Ok((key, info))
    }

    /// Every key, revoked ones included, oldest first.
    pub fn list(&self) -> Result<Vec<KeyInfo>, AuthError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY id"))?;
        let rows = stmt.query_map([], read_info)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Revokes the key in force under `name`.
    pub fn revoke(&self, name: &str, now: u64) -> Result<(), AuthError> {
        let n = self.conn().execute(
            "UPDATE api_keys SET revoked_at = ?1 WHERE name = ?2 AND revoked_at IS NULL",
            params![to_i64(now), name],
        )?;
        if n == 0 {
            return Err(AuthError::NoSuchKey(name.to_string()));
        }
        Ok(())
    }

    /// The record of `key`, revoked or expired ones included (the caller decides).
    pub fn lookup(&self, key: &str) -> Result<Option<KeyInfo>, AuthError> {
        let hash = hash_key(key);
        let conn = self.conn();
        let found = conn
            .query_row(
                &format!("SELECT hash, {COLUMNS} FROM api_keys WHERE hash = ?1"),
                [hash.as_slice()],
                |row| Ok((row.get::<_, Vec<u8>>(0)?, read_info_at(row, 1)?)),
            )
            .optional()?;
        // The index finds the row; the final word is a constant-time comparison.
        Ok(found
            .filter(|(stored, _)| hashes_equal(stored, &hash))
            .map(|(_, info)| info))
    }

    /// Whether any key was ever created (auth stays on once one was, even if all
    /// are revoked: revoking the last key must not open the server).
    pub fn has_any(&self) -> Result<bool, AuthError> {
        Ok(self
            .conn()
            .query_row("SELECT EXISTS(SELECT 1 FROM api_keys)", [], |r| r.get(0))?)
    }

    /// Whether a key is in force now (not revoked, not expired).
    pub fn has_usable(&self, now: u64) -> Result<bool, AuthError> {
        Ok(self.conn().query_row(
            "SELECT EXISTS(SELECT 1 FROM api_keys WHERE revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > ?1))",
            [to_i64(now)],
            |r| r.get(0),
        )?)
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn read_info(row: &Row<'_>) -> rusqlite::Result<KeyInfo> {
    read_info_at(row, 0)
}

fn read_info_at(row: &Row<'_>, o: usize) -> rusqlite::Result<KeyInfo> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let s: String = row.get(o + i)?;
        serde_json::from_str(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(o + i, rusqlite::types::Type::Text, e.into())
        })
    };
    let secs = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(row.get::<_, Option<i64>>(o + i)?.map(|v| v.max(0) as u64))
    };
    Ok(KeyInfo {
        id: row.get(o)?,
        name: row.get(o + 1)?,
        prefix: row.get(o + 2)?,
        models: list(3)?,
        endpoints: list(4)?,
        rpm: row.get(o + 5)?,
        max_concurrency: row.get(o + 6)?,
        expires_at: secs(7)?,
        admin: row.get(o + 8)?,
        log_content: row.get(o + 9)?,
        created_at: secs(10)?.unwrap_or(0),
        revoked_at: secs(11)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(tag: &str) -> (KeyStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("hearth-keys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (KeyStore::open_home(&dir).unwrap(), dir)
    }

    #[test]
    fn create_lookup_revoke() {
        let (store, dir) = temp_store("clr");
        assert!(!store.has_any().unwrap());
        let new = NewKey {
            name: "svc".into(),
            models: vec!["m".into()],
            rpm: Some(5),
            expires_at: Some(2_000),
            ..NewKey::default()
        };
        let (key, info) = store.create(&new, 1_000).unwrap();
        assert_eq!(
            (info.name.as_str(), info.rpm, info.created_at),
            ("svc", Some(5), 1_000)
        );
        assert!(key.starts_with(&info.prefix));
        assert!(store.has_any().unwrap() && store.has_usable(1_500).unwrap());
        assert!(!store.has_usable(2_000).unwrap());
        assert_eq!(store.lookup(&key).unwrap(), Some(info.clone()));
        assert_eq!(store.lookup("hth_wrong").unwrap(), None);
        // Names are unique among keys in force.
        assert!(matches!(
            store.create(&new, 1_001),
            Err(AuthError::NameTaken(_))
        ));
        store.revoke("svc", 1_100).unwrap();
        assert_eq!(store.lookup(&key).unwrap().unwrap().revoked_at, Some(1_100));
        assert!(matches!(
            store.revoke("svc", 1_200),
            Err(AuthError::NoSuchKey(_))
        ));
        // A revoked name can be issued again; the store never holds the key itself.
        let (key2, _) = store.create(&new, 1_300).unwrap();
        assert_ne!(key, key2);
        assert_eq!(store.list().unwrap().len(), 2);
        let raw = std::fs::read(store.path()).unwrap_or_default();
        let wal = std::fs::read(dir.join("keys.sqlite-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
