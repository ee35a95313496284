//! The Host allowlist: a browser page on `evil.example` whose name an attacker
//! re-points at 127.0.0.1 (DNS rebinding) still sends `Host: evil.example`, so a
//! request naming a host the server was not told about is refused with a 403.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::reply::Shape;
use crate::anthropic::error::AnthropicError;
use crate::error::ApiError;
use crate::state::AppState;

/// Names every server answers to, with any port.
pub const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

#[derive(Debug, Clone, PartialEq)]
pub struct HostGuard {
    /// Lower-case host names without port; `*` allows any host.
    allowed: Vec<String>,
}

impl HostGuard {
    /// The loopback names plus `extra` (e.g. the bound address, `--allowed-hosts`).
    /// An entry may carry a port; it is ignored.
    pub fn new<S: AsRef<str>>(extra: &[S]) -> HostGuard {
        let mut allowed: Vec<String> = LOOPBACK_HOSTS.iter().map(|s| s.to_string()).collect();
        for e in extra {
            let e = e.as_ref().trim();
            let name = if e == "*" {
                Some("*".to_string())
            } else {
                host_name(e)
            };
            if let Some(n) = name.filter(|n| !allowed.contains(n)) {
                allowed.push(n);
            }
        }
        HostGuard { allowed }
    }

    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    pub fn allows(&self, host_header: &str) -> bool {
        if self.allowed.iter().any(|a| a == "*") {
            return true;
        }
        host_name(host_header).is_some_and(|h| self.allowed.contains(&h))
    }
}

/// `Name:port`, `[v6]:port`, a bare IPv6 address -> the lower-case name (`[v6]` kept
/// bracketed), without a trailing dot. `None` for an empty or malformed value.
pub fn host_name(value: &str) -> Option<String> {
    let v = value.trim().to_ascii_lowercase();
    let name = if let Some(rest) = v.strip_prefix('[') {
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        format!("[{}]", &rest[..end])
    } else if v.matches(':').count() > 1 {
        // A bare IPv6 address (as `--host ::1` gives).
        format!("[{v}]")
    } else {
        v.split(':').next().unwrap_or("").to_string()
    };
    let name = name.trim_end_matches('.').to_string();
    (!name.is_empty() && name != "[]").then_some(name)
}

pub async fn check_host(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(guard) = st.host_guard.as_ref() else {
        return next.run(req).await;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    if guard.allows(&host) {
        return next.run(req).await;
    }
    let shown: String = host.chars().take(100).collect();
    let e = ApiError {
        code: Some("host_not_allowed".into()),
        ..ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            format!(
                "the host `{shown}` is not allowed (DNS rebinding protection); \
                 start the server with --allowed-hosts {shown} to allow it"
            ),
        )
    };
    // In the error shape of the API that was called.
    match Shape::for_path(req.uri().path()) {
        Shape::Anthropic => AnthropicError::from(e).into_response(),
        Shape::OpenAi => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(host_name("LocalHost:8000").as_deref(), Some("localhost"));
        assert_eq!(host_name("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(host_name("::1").as_deref(), Some("[::1]"));
        assert_eq!(host_name("example.com.").as_deref(), Some("example.com"));
        assert_eq!(host_name(""), None);
        assert_eq!(host_name("[::1]x"), None);
    }

    #[test]
    fn allowlist() {
        let g = HostGuard::new(&["10.0.0.5", "api.internal:443"]);
        for ok in [
            "localhost",
            "localhost:1234",
            "127.0.0.1:8000",
            "[::1]:9",
            "10.0.0.5:8000",
            "API.internal",
        ] {
            assert!(g.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8000",
            "localhost.evil.example",
            "127.0.0.2",
            "",
            "[::2]",
        ] {
            assert!(!g.allows(bad), "{bad}");
        }
        assert!(HostGuard::new(&["*"]).allows("anything"));
    }
}
