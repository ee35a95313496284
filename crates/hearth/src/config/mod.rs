//! Config for `hearth serve` from four places, in this order of precedence:
//! command-line flags > environment (`HEARTH_<ARG>`) > the `[serve]` table of
//! `hearth.toml` > built-in defaults. It works on clap's `Command`, not on a list of
//! options, so every serve argument (including ones added later) is covered: env
//! names are attached to every argument and file values become clap defaults, which
//! flags and env then override.

pub mod cmd;
mod effective;
mod example;
pub mod file;

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};

use file::{is_option, ConfigFile};

/// Subcommand paths whose arguments are the serve options.
pub const SERVE_PATHS: &[&[&str]] = &[&["serve"], &["config", "check"]];

/// The parsed command line plus the config file that fed it (if any).
pub struct Parsed {
    pub matches: ArgMatches,
    pub file: Option<ConfigFile>,
}

/// `HEARTH_` + the argument id in upper snake case (`max_num_seqs` -> `HEARTH_MAX_NUM_SEQS`).
pub fn env_name(arg: &Arg) -> String {
    format!(
        "HEARTH_{}",
        arg.get_id().as_str().replace('-', "_").to_uppercase()
    )
}

/// Applies `f` to the command at `path` below `cmd`.
fn at_path(cmd: Command, path: &[&str], f: &dyn Fn(Command) -> Command) -> Command {
    match path.split_first() {
        None => f(cmd),
        Some((first, rest)) if cmd.find_subcommand(first).is_some() => {
            cmd.mut_subcommand(first, |sc| at_path(sc, rest, f))
        }
        Some(_) => cmd,
    }
}

fn each_serve_path(mut cmd: Command, f: &dyn Fn(Command) -> Command) -> Command {
    for path in SERVE_PATHS {
        cmd = at_path(cmd, path, f);
    }
    cmd
}

/// Gives `a` an env variable unless it names one itself.
fn add_env(a: Arg) -> Arg {
    if a.get_env().is_some() || (!is_option(&a) && a.get_id() != "config") {
        return a;
    }
    let secret = effective::is_secret(a.get_id().as_str()) && !file::is_flag(&a);
    let name = env_name(&a);
    a.env(name).hide_env_values(secret)
}

/// Gives every serve option an env variable; `--config` gets `HEARTH_CONFIG` too.
pub fn with_env(cmd: Command) -> Command {
    let cmd = cmd.mut_args(|a| if a.is_global_set() { add_env(a) } else { a });
    each_serve_path(cmd, &|sc| sc.mut_args(add_env))
}

/// The serve options: the arguments of `serve` and the global ones of `root`
/// (clap gives those to every subcommand), without help, version and --config.
pub fn serve_options(root: &Command) -> Vec<Arg> {
    let globals = root.get_arguments().filter(|a| a.is_global_set());
    let serve = root.find_subcommand(SERVE_PATHS[0][0]);
    let own = serve.into_iter().flat_map(|s| s.get_arguments());
    own.chain(globals)
        .filter(|a| is_option(a))
        .cloned()
        .collect()
}

/// What a lenient first parse tells: the config file for this command line
/// (`--config` / `HEARTH_CONFIG`, else `$HEARTH_HOME/hearth.toml` when it exists; none
/// for commands without serve options) and the ids set by flag or env.
fn locate(cmd: &Command, args: &[OsString]) -> Result<(Option<PathBuf>, Vec<String>)> {
    let Ok(m) = cmd.clone().ignore_errors(true).try_get_matches_from(args) else {
        return Ok((None, Vec::new()));
    };
    let Some(sub) = serve_matches(&m) else {
        return Ok((None, Vec::new()));
    };
    let explicit = sub
        .ids()
        .filter(|id| {
            matches!(
                sub.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|id| id.as_str().to_string())
        .collect();
    if let Some(mut raw) = sub.try_get_raw("config").ok().flatten() {
        let p = PathBuf::from(raw.next().unwrap_or_default());
        if !p.is_file() {
            bail!("config file {} does not exist", p.display());
        }
        return Ok((Some(p), explicit));
    }
    let implicit = hearth_models::store::Store::default_home()
        .ok()
        .map(|h| h.join("hearth.toml"));
    Ok((implicit.filter(|p| p.is_file()), explicit))
}

/// Drops file values whose `--no-X` / `--X` counterpart is set by flag or env: the
/// pair overrides each other on the command line, and a file default of one must
/// not outlive an explicit other.
fn drop_overridden(file: &mut ConfigFile, options: &[Arg], explicit: &[String]) {
    let id_of_long = |long: &str| {
        options
            .iter()
            .find(|a| a.get_long() == Some(long))
            .map(|a| a.get_id().as_str().to_string())
    };
    file.values.retain(|v| {
        let long = v.key.replace('_', "-");
        let other = match long.strip_prefix("no-") {
            Some(rest) => rest.to_string(),
            None => format!("no-{long}"),
        };
        !id_of_long(&other).is_some_and(|id| explicit.contains(&id))
    });
}

/// Makes each value of `file` the default of its argument (a global one on the
/// root command, from where clap hands it to the subcommands).
fn with_file_defaults(mut cmd: Command, file: &ConfigFile) -> Command {
    let is_global = |cmd: &Command, id: &str| {
        cmd.get_arguments()
            .any(|a| a.get_id() == id && a.is_global_set())
    };
    let (global, own): (Vec<_>, Vec<_>) = file.values.iter().partition(|v| is_global(&cmd, &v.id));
    for v in global {
        let vals = v.values.clone();
        cmd = cmd.mut_arg(&v.id, |a| a.default_values(vals));
    }
    each_serve_path(cmd, &|mut sc| {
        for v in &own {
            let vals = v.values.clone();
            sc = sc.mut_arg(&v.id, |a| a.default_values(vals));
        }
        sc
    })
}

/// Parses `args` with env and config file applied. Clap's own errors (and --help)
/// exit the process as clap does; config file errors are returned.
pub fn parse_args(cmd: Command, args: Vec<OsString>) -> Result<Parsed> {
    let cmd = with_env(cmd);
    let (path, explicit) = locate(&cmd, &args)?;
    let (cmd, file) = match path {
        Some(p) => {
            let options = serve_options(&cmd);
            let mut f = file::load(&p, &options)?;
            drop_overridden(&mut f, &options, &explicit);
            (with_file_defaults(cmd, &f), Some(f))
        }
        None => (cmd, None),
    };
    let matches = cmd.try_get_matches_from(args).unwrap_or_else(|e| e.exit());
    Ok(Parsed { matches, file })
}

/// The matches of the first serve-like subcommand in `m`, with its path.
pub fn serve_matches(m: &ArgMatches) -> Option<&ArgMatches> {
    SERVE_PATHS.iter().find_map(|path| {
        let mut sub = m;
        for name in *path {
            match sub.subcommand() {
                Some((n, s)) if n == *name => sub = s,
                _ => return None,
            }
        }
        Some(sub)
    })
}

#[cfg(test)]
mod tests;
