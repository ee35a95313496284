//! `hearth service install`: a hardened systemd unit or launchd plist that runs
//! `hearth serve --config FILE` as an unprivileged service account.

mod launchd;
mod spec;
mod systemd;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

pub use spec::ServiceSpec;

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Write (or with --print show) a systemd unit or a launchd plist.
    Install(InstallArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["systemd", "launchd"])))]
pub struct InstallArgs {
    /// A systemd unit (Linux), /etc/systemd/system/hearth.service.
    #[arg(long)]
    pub systemd: bool,
    /// A launchd daemon plist (macOS), /Library/LaunchDaemons/<label>.plist.
    #[arg(long)]
    pub launchd: bool,
    /// The unprivileged account the service runs as.
    #[arg(long, default_value = "hearth")]
    pub user: String,
    /// The config file the service reads [default: /etc/hearth/hearth.toml, on
    /// macOS /usr/local/etc/hearth/hearth.toml].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The hearth home (models, keys, audit log), the only path the service may
    /// write [default: /var/lib/hearth, on macOS /usr/local/var/hearth].
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// The hearth binary the service runs [default: this one].
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Let the service reach GPU devices (systemd: no PrivateDevices, NVIDIA
    /// devices allowed, no MemoryDenyWriteExecute).
    #[arg(long)]
    pub gpu: bool,
    /// Clients allowed besides localhost (an IP or CIDR, e.g. 192.168.1.0/24); systemd only.
    #[arg(long = "allow-ip")]
    pub allow_ip: Vec<String>,
    /// Print the file instead of writing it.
    #[arg(long)]
    pub print: bool,
    /// Write into this directory instead of the system one.
    #[arg(long, conflicts_with = "print")]
    pub output: Option<PathBuf>,
}

/// Runs a service command; `C` is the CLI, whose serve options check the config.
pub fn run<C: clap::CommandFactory>(command: ServiceCommand) -> Result<()> {
    let options = crate::config::serve_options(&crate::config::with_env(C::command()));
    match command {
        ServiceCommand::Install(args) => install(&args, &options),
    }
}

/// Validates the config file when it exists here, and warns when it listens beyond
/// loopback while the unit lets only localhost in.
fn check_config(spec: &ServiceSpec, systemd: bool, options: &[clap::Arg]) -> Result<()> {
    if !spec.config.is_file() {
        return Ok(());
    }
    let file = crate::config::file::load(&spec.config, options)?;
    let host = file.values.iter().find(|v| v.id == "host");
    let local = ["127.0.0.1", "::1", "localhost"];
    if let Some(h) = host.and_then(|h| h.values.first()) {
        if systemd && spec.allow_ip.is_empty() && !local.contains(&h.as_str()) {
            eprintln!(
                "warning: {} sets host = {h:?}, but the unit admits only localhost (IPAddressAllow); add --allow-ip for remote clients",
                spec.config.display()
            );
        }
    }
    Ok(())
}

fn install(args: &InstallArgs, options: &[clap::Arg]) -> Result<()> {
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("finding the hearth binary")?,
    };
    let spec = ServiceSpec::new(args, binary)?;
    check_config(&spec, args.systemd, options)?;
    let (text, file_name, system_dir) = if args.systemd {
        (
            systemd::unit(&spec),
            "hearth.service".to_string(),
            "/etc/systemd/system",
        )
    } else {
        (
            launchd::plist(&spec)?,
            format!("{}.plist", launchd::LABEL),
            "/Library/LaunchDaemons",
        )
    };
    if args.print {
        print!("{text}");
        return Ok(());
    }
    let dir = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(system_dir));
    let path = dir.join(&file_name);
    write(&path, &text)?;
    println!("wrote {}", path.display());
    println!("next steps:");
    let steps = if args.systemd {
        systemd::next_steps(&spec, &path)
    } else {
        launchd::next_steps(&spec, &path)
    };
    for step in steps {
        println!("  {step}");
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (run as root, or pass --output DIR or --print)"
        } else {
            ""
        };
        anyhow::anyhow!("writing {}: {e}{hint}", path.display())
    })
}

/// Refuses values that would need quoting in a unit file or shell step.
fn check_plain(what: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@:".contains(c));
    if !ok {
        bail!("{what} `{value}` may hold only letters, digits and / . _ - + @ :");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
