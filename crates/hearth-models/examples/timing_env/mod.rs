//! Environment settings shared by the CPU timing examples (`#[path]`-included by each).

/// A whole number from the environment, if set and valid.
pub fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// `NAME=VAR:a,b,...`: the variable an A/B alternates and its settings, if set.
pub fn ab_settings(name: &str) -> Option<(String, Vec<String>)> {
    let v = std::env::var(name).ok()?;
    let (var, vals) = v.split_once(':')?;
    Some((
        var.to_string(),
        vals.split(',').map(str::to_string).collect(),
    ))
}
