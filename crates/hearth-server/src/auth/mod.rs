//! Who may call the API: keys for service accounts (hashed in SQLite), their scopes
//! and per-key limits, the Host allowlist against DNS rebinding, and CORS.
//!
//! Which routes need what (`access_for`):
//! - `/v1/...`: a valid key when auth is on, allowed for the endpoint and model.
//! - `ADMIN_PREFIXES` (`/stats`, `/metrics`, `/admin`): a key created with `--admin`
//!   when auth is on.
//! - everything else (`/health`, unknown paths' 404): open.
//!
//! Auth is on when the server was started with `--require-api-key` or the key store
//! holds any key (revoked ones too: revoking the last key must not open the server).

pub mod key;
pub mod key_hash;
pub mod key_store;
pub mod layers;
pub mod middleware;
pub mod rate_limit;
pub mod reply;

pub mod host_guard;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use host_guard::HostGuard;
pub use key::{KeyInfo, NewKey};
pub use key_store::KeyStore;
pub use rate_limit::KeyLimiter;

/// Routes that need a key.
pub const KEYED_PREFIXES: &[&str] = &["/v1"];
/// Routes that need an admin key (add new operator routes here).
pub const ADMIN_PREFIXES: &[&str] = &["/stats", "/metrics", "/admin"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Key,
    Admin,
}

/// `prefix` itself or a path below it (`/stats` matches `/stats/x`, not `/statsx`).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub fn access_for(path: &str) -> Access {
    if ADMIN_PREFIXES.iter().any(|p| under(path, p)) {
        Access::Admin
    } else if KEYED_PREFIXES.iter().any(|p| under(path, p)) {
        Access::Key
    } else {
        Access::Open
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("key store: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("key store: {0}")]
    Io(String),
    #[error("the OS random number generator failed: {0}")]
    Rng(String),
    #[error("a key named `{0}` already exists (revoke it first to reissue it)")]
    NameTaken(String),
    #[error("no key in force is named `{0}`")]
    NoSuchKey(String),
    #[error("{0}")]
    Invalid(String),
}

impl AuthError {
    fn json(e: serde_json::Error) -> AuthError {
        AuthError::Io(format!("encoding scopes: {e}"))
    }
}

/// The server's side of API keys.
pub struct Auth {
    store: Arc<KeyStore>,
    /// Latched: once on, on until restart.
    on: AtomicBool,
    pub limiter: KeyLimiter,
}

impl Auth {
    /// `require`: keys are needed even while the store is empty (`--require-api-key`).
    pub fn new(store: KeyStore, require: bool) -> Auth {
        Auth {
            store: Arc::new(store),
            on: AtomicBool::new(require),
            limiter: KeyLimiter::default(),
        }
    }

    pub fn store(&self) -> &Arc<KeyStore> {
        &self.store
    }

    /// Whether requests need a key now. A key created while the server runs turns
    /// auth on without a restart.
    pub async fn enabled(&self) -> Result<bool, AuthError> {
        if self.on.load(Ordering::Acquire) {
            return Ok(true);
        }
        let store = self.store.clone();
        let any = blocking(move || store.has_any()).await?;
        if any {
            self.on.store(true, Ordering::Release);
        }
        Ok(any)
    }

    /// The record of a presented key (SQLite, off the async threads).
    pub async fn lookup(&self, key: String) -> Result<Option<KeyInfo>, AuthError> {
        let store = self.store.clone();
        blocking(move || store.lookup(&key)).await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuthError::Io(format!("key lookup task: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_access() {
        assert_eq!(access_for("/health"), Access::Open);
        assert_eq!(access_for("/"), Access::Open);
        assert_eq!(access_for("/v1/chat/completions"), Access::Key);
        assert_eq!(access_for("/v1"), Access::Key);
        assert_eq!(access_for("/v1x"), Access::Open);
        assert_eq!(access_for("/stats"), Access::Admin);
        assert_eq!(access_for("/metrics"), Access::Admin);
        assert_eq!(access_for("/admin/audit"), Access::Admin);
        assert_eq!(access_for("/statsx"), Access::Open);
    }
}
