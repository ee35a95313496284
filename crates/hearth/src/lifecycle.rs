//! `hearth serve`'s lifecycle flags: slow-client timeouts and the shutdown drain; and
//! the build's git commit for /version.

use std::time::Duration;

use clap::Args;
use hearth_server::serving::ServeOptions;

#[derive(Debug, Clone, Args)]
pub struct LifecycleArgs {
    /// On SIGTERM/SIGINT, how long requests in flight (streams included) get to finish
    /// before they are aborted; the process exits 0 either way. E.g. 30, 30s, 500ms, 2m.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,
    /// How long a client may take to send a request's header: from connecting, or
    /// from the header's first byte on a kept-alive connection.
    #[arg(long, value_parser = parse_positive_duration, default_value = "10s")]
    pub header_timeout: Duration,
    /// A kept-alive connection with no request for this long is closed.
    #[arg(long, value_parser = parse_positive_duration, default_value = "60s")]
    pub idle_timeout: Duration,
}

impl LifecycleArgs {
    pub fn options(&self) -> ServeOptions {
        ServeOptions {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            drain_timeout: self.drain_timeout,
        }
    }
}

/// The commit this binary was built from, when the build could ask git (build.rs).
pub fn git_commit() -> Option<String> {
    option_env!("HEARTH_GIT_COMMIT").map(str::to_string)
}

/// Seconds (`30`, `1.5`, `30s`), milliseconds (`500ms`) or minutes (`2m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let bad = || format!("`{s}` is not a duration (e.g. 30, 30s, 500ms, 2m)");
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(v * unit).map_err(|_| bad())
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be more than zero".to_string()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_each_unit() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "-1", "abc", "1h", "inf", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_positive_duration("0s").is_err());
    }
}
