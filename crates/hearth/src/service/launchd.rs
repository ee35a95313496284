//! The launchd daemon plist (macOS): `hearth serve` as a dedicated account, kept
//! alive on failure, logging to files under the hearth home.

use std::path::Path;

use anyhow::{Context, Result};
use plist::{Dictionary, Value};

use super::ServiceSpec;

pub const LABEL: &str = "org.hearth.serve";

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// The plist text (XML), written by the `plist` crate so every value is escaped.
pub fn plist(spec: &ServiceSpec) -> Result<String> {
    let home = spec.home.display().to_string();
    let log = |name: &str| format!("{home}/logs/{name}");
    let mut d = Dictionary::new();
    d.insert("Label".into(), s(LABEL));
    let argv = [
        spec.binary.display().to_string(),
        "serve".into(),
        "--config".into(),
        spec.config.display().to_string(),
    ];
    d.insert(
        "ProgramArguments".into(),
        Value::Array(argv.into_iter().map(s).collect()),
    );
    d.insert("UserName".into(), s(&spec.user));
    d.insert("GroupName".into(), s(&spec.user));
    d.insert("RunAtLoad".into(), Value::Boolean(true));
    // Restart only when it did not exit cleanly (systemd's Restart=on-failure).
    let mut keep = Dictionary::new();
    keep.insert("SuccessfulExit".into(), Value::Boolean(false));
    d.insert("KeepAlive".into(), Value::Dictionary(keep));
    d.insert("ThrottleInterval".into(), Value::Integer(5.into()));
    d.insert("ExitTimeOut".into(), Value::Integer(60.into()));
    d.insert("WorkingDirectory".into(), s(&home));
    // 0077: files the service creates are private to it.
    d.insert("Umask".into(), Value::Integer(0o077.into()));
    let mut env = Dictionary::new();
    env.insert("HEARTH_HOME".into(), s(&home));
    d.insert("EnvironmentVariables".into(), Value::Dictionary(env));
    d.insert("StandardOutPath".into(), s(log("hearth.out.log")));
    d.insert("StandardErrorPath".into(), s(log("hearth.err.log")));
    let mut out = Vec::new();
    Value::Dictionary(d)
        .to_writer_xml(&mut out)
        .context("writing the plist")?;
    let mut text = String::from_utf8(out).context("plist is not UTF-8")?;
    text.push('\n');
    Ok(text)
}

pub fn next_steps(spec: &ServiceSpec, path: &Path) -> Vec<String> {
    let user = &spec.user;
    let home = spec.home.display();
    let config = spec.config.display();
    let daemons = "/Library/LaunchDaemons";
    let mut steps = vec![
        format!("create a hidden role account `{user}` (e.g. sudo sysadminctl -addUser {user} -roleAccount -home {home}, or dscl)"),
        format!("sudo install -d -o {user} -m 0700 {home} {home}/logs"),
        format!("sudo install -d -m 0755 $(dirname {config}) && sudo touch {config}  # then edit it (`hearth config example`)"),
        format!("sudo -u {user} HEARTH_HOME={home} {} pull default", spec.binary.display()),
    ];
    if !path.starts_with(daemons) {
        steps.push(format!("sudo cp {} {daemons}/", path.display()));
    }
    steps.extend([
        format!("sudo chown root:wheel {daemons}/{LABEL}.plist && sudo chmod 0644 {daemons}/{LABEL}.plist"),
        format!("sudo launchctl bootstrap system {daemons}/{LABEL}.plist"),
    ]);
    steps
}
