//! What a key may do: its scopes, limits and lifetime, as stored and as listed.

use std::time::{Duration, UNIX_EPOCH};

use super::AuthError;

/// Highest `rpm` a key may have (the window keeps one timestamp per request).
pub const MAX_RPM: u32 = 1_000_000;

/// A key to create. Empty `models`/`endpoints` mean all of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewKey {
    pub name: String,
    pub models: Vec<String>,
    pub endpoints: Vec<String>,
    pub rpm: Option<u32>,
    pub max_concurrency: Option<u32>,
    /// Unix seconds from which the key no longer works.
    pub expires_at: Option<u64>,
    pub admin: bool,
    /// Requests made with it have their prompt and output stored in the audit log.
    pub log_content: bool,
}

/// A stored key (never the key itself, nor its hash).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    pub id: i64,
    pub name: String,
    /// `hth_` and the first hex digits, to tell keys apart.
    pub prefix: String,
    pub models: Vec<String>,
    pub endpoints: Vec<String>,
    pub rpm: Option<u32>,
    pub max_concurrency: Option<u32>,
    pub expires_at: Option<u64>,
    pub admin: bool,
    pub log_content: bool,
    pub created_at: u64,
    pub revoked_at: Option<u64>,
}

impl KeyInfo {
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }

    /// An entry matches its path exactly, or every path under it when it ends in `*`.
    pub fn allows_endpoint(&self, path: &str) -> bool {
        self.endpoints.is_empty()
            || self.endpoints.iter().any(|e| match e.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => e == path,
            })
    }
}

impl NewKey {
    pub fn validate(&self) -> Result<(), AuthError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(ok_char) {
            return Err(AuthError::Invalid(format!(
                "key name `{}`: use 1 to 64 letters, digits, '-', '_', '.', '@'",
                self.name
            )));
        }
        if self.models.iter().any(|m| m.trim().is_empty()) {
            return Err(AuthError::Invalid("empty model name in --models".into()));
        }
        if let Some(e) = self.endpoints.iter().find(|e| !e.starts_with('/')) {
            return Err(AuthError::Invalid(format!(
                "endpoint `{e}` must be a path such as /v1/chat/completions"
            )));
        }
        if self.rpm.is_some_and(|r| r == 0 || r > MAX_RPM) {
            return Err(AuthError::Invalid(format!("rpm must be in 1..={MAX_RPM}")));
        }
        if self.max_concurrency == Some(0) {
            return Err(AuthError::Invalid(
                "max concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// `YYYY-MM-DD` -> the unix second the key stops working: the end of that day (UTC),
/// so `--expires 2026-12-31` still works on the 31st.
pub fn parse_expiry_date(date: &str) -> Result<u64, AuthError> {
    let bad = || AuthError::Invalid(format!("expiry `{date}`: expected a date like 2026-12-31"));
    let well_formed = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !well_formed {
        return Err(bad());
    }
    let start = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).map_err(|_| bad())?;
    let secs = start
        .duration_since(UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_secs();
    Ok(secs + 86_400)
}

/// Unix seconds as an RFC 3339 UTC time, for listings.
pub fn format_time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(models: &[&str], endpoints: &[&str]) -> KeyInfo {
        KeyInfo {
            id: 1,
            name: "k".into(),
            prefix: "hth_x".into(),
            models: models.iter().map(|s| s.to_string()).collect(),
            endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
            rpm: None,
            max_concurrency: None,
            expires_at: Some(100),
            admin: false,
            log_content: false,
            created_at: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn scopes() {
        let all = info(&[], &[]);
        assert!(all.allows_model("x") && all.allows_endpoint("/v1/messages"));
        let k = info(&["a"], &["/v1/chat/completions", "/v1/models*"]);
        assert!(k.allows_model("a") && !k.allows_model("b"));
        assert!(k.allows_endpoint("/v1/chat/completions"));
        assert!(k.allows_endpoint("/v1/models/a"));
        assert!(!k.allows_endpoint("/v1/chat/completions/x"));
        assert!(!k.allows_endpoint("/v1/completions"));
        assert!(!k.is_expired(99) && k.is_expired(100));
    }

    #[test]
    fn expiry_dates() {
        // 2026-12-31T00:00:00Z is 1798675200; the key works through that day.
        assert_eq!(
            parse_expiry_date("2026-12-31").unwrap(),
            1798675200 + 86_400
        );
        for bad in [
            "2026-13-01",
            "2026-1-1",
            "tomorrow",
            "2026-12-31T00:00:00Z",
            "",
        ] {
            assert!(parse_expiry_date(bad).is_err(), "{bad}");
        }
        assert_eq!(format_time(1798675200), "2026-12-31T00:00:00Z");
    }

    #[test]
    fn validation() {
        let ok = NewKey {
            name: "svc-a".into(),
            ..NewKey::default()
        };
        assert!(ok.validate().is_ok());
        for bad in [
            NewKey {
                name: "".into(),
                ..ok.clone()
            },
            NewKey {
                name: "a b".into(),
                ..ok.clone()
            },
            NewKey {
                rpm: Some(0),
                ..ok.clone()
            },
            NewKey {
                max_concurrency: Some(0),
                ..ok.clone()
            },
            NewKey {
                endpoints: vec!["v1/x".into()],
                ..ok.clone()
            },
            NewKey {
                models: vec![" ".into()],
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
