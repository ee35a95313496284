//! What a service file describes, checked once for both systemd and launchd.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Result};

use super::{check_plain, InstallArgs};

#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub user: String,
    pub binary: PathBuf,
    pub config: PathBuf,
    pub home: PathBuf,
    pub gpu: bool,
    pub allow_ip: Vec<String>,
}

impl ServiceSpec {
    pub fn new(args: &InstallArgs, binary: PathBuf) -> Result<ServiceSpec> {
        let (config, home) = if args.launchd {
            ("/usr/local/etc/hearth/hearth.toml", "/usr/local/var/hearth")
        } else {
            ("/etc/hearth/hearth.toml", "/var/lib/hearth")
        };
        let spec = ServiceSpec {
            user: args.user.clone(),
            binary,
            config: args.config.clone().unwrap_or_else(|| config.into()),
            home: args.home.clone().unwrap_or_else(|| home.into()),
            gpu: args.gpu,
            allow_ip: args.allow_ip.clone(),
        };
        spec.check()?;
        if args.launchd && !spec.allow_ip.is_empty() {
            bail!("--allow-ip is for systemd; launchd has no per-service IP filter");
        }
        Ok(spec)
    }

    fn check(&self) -> Result<()> {
        let u = &self.user;
        let valid_user = u.len() <= 32
            && u.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && u.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid_user {
            bail!("--user `{u}`: use a system account name (lowercase letters, digits, _ and -)");
        }
        if u == "root" {
            bail!("--user root: the service must run as an unprivileged account");
        }
        for (what, p) in [
            ("--binary", &self.binary),
            ("--config", &self.config),
            ("--home", &self.home),
        ] {
            if !p.is_absolute() {
                bail!("{what} {} must be an absolute path", p.display());
            }
            check_plain(what, &p.to_string_lossy())?;
        }
        for ip in &self.allow_ip {
            check_ip(ip)?;
        }
        Ok(())
    }

    /// True when the home is systemd's StateDirectory (/var/lib/NAME), which systemd
    /// creates, owned by the service user.
    pub fn state_directory(&self) -> Option<String> {
        let rest = self.home.strip_prefix("/var/lib").ok()?.to_str()?;
        (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
    }
}

/// An address or CIDR, or a systemd keyword, for IPAddressAllow=.
fn check_ip(s: &str) -> Result<()> {
    if ["localhost", "link-local", "multicast", "any"].contains(&s) {
        return Ok(());
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        bail!("--allow-ip `{s}`: not an IP address or CIDR");
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if let Some(p) = prefix {
        if !p.parse::<u8>().is_ok_and(|n| n <= max) {
            bail!("--allow-ip `{s}`: prefix length must be 0..={max}");
        }
    }
    Ok(())
}
