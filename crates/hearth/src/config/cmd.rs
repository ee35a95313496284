//! `hearth config check` and `hearth config example`.

use anyhow::{Context, Result};
use clap::{CommandFactory, Subcommand};

use super::{serve_matches, serve_options, with_env, Parsed};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config (file, env and flags exactly as `hearth serve` would read
    /// them) and print every serve option with its value and source; secrets redacted.
    Check(Box<crate::serve::ServeArgs>),
    /// Print a commented hearth.toml listing every serve option and its default.
    Example,
}

pub fn run<C: CommandFactory>(command: &ConfigCommand, parsed: &Parsed) -> Result<()> {
    // The options with env names attached, as parsing saw them.
    let options = serve_options(&with_env(C::command()));
    match command {
        ConfigCommand::Check(_) => {
            let m = serve_matches(&parsed.matches).context("no `config check` matches")?;
            print!(
                "{}",
                super::effective::render(&options, m, parsed.file.as_ref())
            );
        }
        ConfigCommand::Example => print!("{}", super::example::render(&options)),
    }
    Ok(())
}
