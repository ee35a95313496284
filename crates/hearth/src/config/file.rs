//! Reading `hearth.toml`: its `[serve]` table, each key checked against the serve
//! command's arguments and each value turned into the strings clap parses.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Arg, ArgAction, Command};

/// One `[serve]` key of the file, matched to a clap argument.
#[derive(Debug, Clone)]
pub struct FileValue {
    /// The clap argument id (e.g. `max_num_seqs`).
    pub id: String,
    /// The key as written in the file.
    pub key: String,
    pub values: Vec<String>,
}

/// A loaded, checked config file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub values: Vec<FileValue>,
}

impl ConfigFile {
    pub fn sets(&self, id: &str) -> bool {
        self.values.iter().any(|v| v.id == id)
    }
}

/// The name a serve argument has in the file: its long flag, or for a positional
/// argument its id, in kebab-case.
pub fn key_of(arg: &Arg) -> String {
    match arg.get_long() {
        Some(l) => l.to_string(),
        None => arg.get_id().as_str().replace('_', "-"),
    }
}

/// Arguments that a file, env or `config check` deals with: not help/version, and
/// not `--config` itself.
pub fn is_option(arg: &Arg) -> bool {
    let meta = matches!(
        arg.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    );
    !meta && arg.get_id() != "config"
}

/// Flags that take no value on the command line: their file values are booleans.
pub fn is_flag(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// Arguments that accept a list.
pub fn is_multi(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|r| r.max_values() > 1)
}

/// Reads and checks `path` against the serve options.
pub fn load(path: &Path, options: &[Arg]) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    parse(&text, path, options)
}

pub fn parse(text: &str, path: &Path, options: &[Arg]) -> Result<ConfigFile> {
    let file = path.display();
    let doc: toml::Table =
        toml::from_str(text).with_context(|| format!("{file}: not valid TOML"))?;
    let mut values: Vec<FileValue> = Vec::new();
    for (top, item) in &doc {
        if top != "serve" {
            bail!("{file}: unknown key `{top}` (serve options go in the [serve] table)");
        }
        let Some(table) = item.as_table() else {
            bail!("{file}: `serve` must be a table ([serve])");
        };
        for (key, value) in table {
            let norm = key.replace('_', "-");
            if norm == "config" {
                bail!("{file}: serve.{key}: the config file cannot name another config file");
            }
            let Some(arg) = options.iter().find(|a| key_of(a) == norm) else {
                bail!("{file}: unknown key `serve.{key}` (not an option of `hearth serve`; see `hearth serve --help`)");
            };
            let id = arg.get_id().as_str().to_string();
            if let Some(prev) = values.iter().find(|v| v.id == id) {
                bail!(
                    "{file}: `serve.{key}` and `serve.{}` set the same option",
                    prev.key
                );
            }
            let vals =
                strings(arg, value).map_err(|e| anyhow::anyhow!("{file}: serve.{key}: {e}"))?;
            check_with_clap(arg, &norm, &vals)
                .map_err(|e| anyhow::anyhow!("{file}: serve.{key}: {e}"))?;
            values.push(FileValue {
                id,
                key: key.clone(),
                values: vals,
            });
        }
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        values,
    })
}

/// The TOML value as the strings clap would get on the command line.
fn strings(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    use toml::Value as V;
    if is_flag(arg) {
        return match value {
            V::Boolean(b) => Ok(vec![b.to_string()]),
            other => Err(format!(
                "expected a boolean (true or false), found {}",
                other.type_str()
            )),
        };
    }
    let scalar = |v: &V| -> Result<String, String> {
        match v {
            V::String(s) => Ok(s.clone()),
            V::Integer(i) => Ok(i.to_string()),
            V::Float(f) => Ok(f.to_string()),
            other => Err(format!(
                "expected a string or a number, found {}",
                other.type_str()
            )),
        }
    };
    match value {
        V::Array(items) if is_multi(arg) => items.iter().map(scalar).collect(),
        V::Array(_) => Err("expected one value, not a list".to_string()),
        v => Ok(vec![scalar(v)?]),
    }
}

/// Runs clap's own parser for `arg` over the values, so a wrong type is reported
/// with the file and key rather than later as if it came from the command line.
fn check_with_clap(arg: &Arg, key: &str, vals: &[String]) -> Result<(), String> {
    let probe = Arg::new("value")
        .long(key.to_string())
        .value_parser(arg.get_value_parser().clone())
        .action(ArgAction::Append)
        .num_args(1)
        .allow_hyphen_values(true);
    let argv = vals.iter().map(|v| format!("--{key}={v}"));
    Command::new("hearth.toml")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from(argv)
        .map(|_| ())
        .map_err(|e| {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or_default();
            first.trim_start_matches("error: ").to_string()
        })
}
