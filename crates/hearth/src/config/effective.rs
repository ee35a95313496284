//! The effective serve config as TOML: every option, its value and where the value
//! came from (flag, env, file, default), secrets redacted.

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches};

use super::env_name;
use super::file::{is_flag, is_multi, key_of, ConfigFile};

/// Options whose values are never printed: a name with a word like key, secret,
/// token or password (`api-key`, `admin-token`; not `max-num-batched-tokens`).
/// On/off flags are shown: a boolean holds no secret.
pub fn is_secret(id: &str) -> bool {
    const WORDS: &[&str] = &[
        "key",
        "keys",
        "apikey",
        "secret",
        "secrets",
        "token",
        "password",
        "passwd",
        "credential",
        "credentials",
    ];
    id.split(['_', '-'])
        .any(|w| WORDS.contains(&w.to_ascii_lowercase().as_str()))
}

/// A value as a TOML literal: booleans for flags, bare numbers, else quoted strings.
pub fn literal(arg: &Arg, raw: &str) -> String {
    // Bare only what TOML itself reads back as the same number.
    let numeric = !raw.is_empty()
        && !raw.chars().any(char::is_whitespace)
        && toml::from_str::<toml::Table>(&format!("x = {raw}"))
            .is_ok_and(|t| t.get("x").is_some_and(|v| v.is_integer() || v.is_float()));
    if is_flag(arg) && (raw == "true" || raw == "false") || numeric {
        raw.to_string()
    } else {
        toml::Value::String(raw.to_string()).to_string()
    }
}

/// `values` as TOML: a list for list options, else the single value.
pub fn toml_value(arg: &Arg, values: &[String]) -> String {
    let lits: Vec<String> = values.iter().map(|v| literal(arg, v)).collect();
    if is_multi(arg) {
        format!("[{}]", lits.join(", "))
    } else {
        lits.join(" ")
    }
}

fn source(arg: &Arg, m: &ArgMatches, file: Option<&ConfigFile>) -> String {
    let id = arg.get_id().as_str();
    match m.value_source(id) {
        Some(ValueSource::CommandLine) => "flag".into(),
        Some(ValueSource::EnvVariable) => format!(
            "env {}",
            arg.get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_else(|| env_name(arg))
        ),
        Some(ValueSource::DefaultValue) if file.is_some_and(|f| f.sets(id)) => "file".into(),
        Some(_) => "default".into(),
        None => "unset".into(),
    }
}

/// Renders the effective config of the serve `options` (env attached) from the
/// matches of `serve` or `config check`.
pub fn render(options: &[Arg], m: &ArgMatches, file: Option<&ConfigFile>) -> String {
    let mut out = String::from("# effective `hearth serve` configuration\n");
    match file {
        Some(f) => out += &format!("# config file: {}\n", f.path.display()),
        None => out += "# config file: none\n",
    }
    out += "[serve]\n";
    let rows: Vec<(String, String)> = options
        .iter()
        .map(|arg| {
            let id = arg.get_id().as_str();
            let key = key_of(arg);
            let values: Vec<String> = m
                .try_get_raw(id)
                .ok()
                .flatten()
                .map(|r| r.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let src = source(arg, m, file);
            let line = if values.is_empty() {
                format!("# {key} =")
            } else if is_secret(id) && !is_flag(arg) {
                format!("{key} = \"<redacted>\"")
            } else {
                format!("{key} = {}", toml_value(arg, &values))
            };
            (line, src)
        })
        .collect();
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (line, src) in rows {
        out += &format!("{line:width$}  # {src}\n");
    }
    out
}
