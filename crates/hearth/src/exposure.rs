//! Who may reach `serve`: API keys on or off, the refusal to bind a public address
//! without keys, the Host allowlist and CORS origins.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use hearth_models::store::Store;
use hearth_server::auth::{Auth, HostGuard, KeyStore};
use hearth_server::state::unix_now;
use hearth_server::AppState;

#[derive(Debug, Clone, Args)]
pub struct ExposureArgs {
    /// Require an API key on /v1 (and an admin key on /stats, /metrics) even while no
    /// key exists yet. Without it, keys are required once `hearth keys create` made one.
    #[arg(long)]
    pub require_api_key: bool,
    /// DANGEROUS: serve a non-loopback --host with no API key, so anyone who can reach
    /// the port can use the model. Without it such a start is refused.
    #[arg(long)]
    pub allow_unauthenticated_public_bind: bool,
    /// Host names (the Host header) accepted besides localhost, 127.0.0.1, [::1] and
    /// the bound address, comma-separated; `*` accepts any (turns off the DNS
    /// rebinding guard).
    #[arg(long, value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Origins allowed to call the API from a browser (CORS), comma-separated, e.g.
    /// https://app.example.com. None: CORS is off.
    #[arg(long, value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

/// `localhost` or a loopback IP (any other name may resolve anywhere).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Opens the key store and decides, before anything is loaded, whether this start
/// is allowed: a public address needs keys (or the loud override).
pub fn open_and_check(host: &str, args: &ExposureArgs) -> Result<Auth> {
    let home = Store::default_home()?;
    let store = KeyStore::open_home(&home)
        .with_context(|| format!("opening the API key store in {}", home.display()))?;
    let keys_on = args.require_api_key || store.has_any()?;
    if keys_on {
        if !store.has_usable(unix_now())? {
            tracing::warn!(
                "API keys are required but none is in force: every /v1 request gets 401 \
                 until `hearth keys create --name NAME`"
            );
        }
    } else if !is_loopback_host(host) {
        if !args.allow_unauthenticated_public_bind {
            bail!(
                "refusing to serve on {host}: no API key is configured, so anyone who can reach \
                 this address could use the model.\n\
                 Create a key with `hearth keys create --name NAME` (clients send it as \
                 `Authorization: Bearer KEY`), or serve on 127.0.0.1, or pass \
                 --allow-unauthenticated-public-bind to accept the risk."
            );
        }
        tracing::warn!(
            host,
            "--allow-unauthenticated-public-bind: serving a non-loopback address WITHOUT API \
             keys; anyone who can reach it can use the model"
        );
    }
    tracing::info!(
        keys = if keys_on { "required" } else { "off until a key is created" },
        store = %store.path().display(),
        "API keys"
    );
    Ok(Auth::new(store, args.require_api_key))
}

/// Puts auth, the Host allowlist and CORS into the server's state once it is bound.
pub fn apply(state: &mut AppState, args: &ExposureArgs, auth: Auth, host: &str, bound: SocketAddr) {
    state.auth = Some(Arc::new(auth));
    let mut extra = args.allowed_hosts.clone();
    let ip = bound.ip();
    if !ip.is_unspecified() {
        extra.push(host.to_string());
        extra.push(match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        });
    }
    let guard = HostGuard::new(&extra);
    if ip.is_unspecified() && args.allowed_hosts.is_empty() {
        tracing::warn!(
            allowed = ?guard.allowed(),
            "bound to all interfaces: requests must name one of these hosts; add the names \
             clients use with --allowed-hosts"
        );
    }
    state.host_guard = Some(guard);
    state.cors_origins = args.cors_origins.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "localhost",
            "::1",
            "[::1]",
            "127.0.0.2",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "0.0.0.0",
            "::",
            "10.1.2.3",
            "example.com",
            "localhost.example.com",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
