//! hearth: the binary. Parses the command line and hands each subcommand to its
//! module; the logic lives in the library crates.

mod audit_cmd;
mod bench;
mod chat;
mod config;
mod exposure;
mod heap;
mod keys_cmd;
mod lifecycle;
mod limit_args;
mod logs;
mod memory_check;
mod model_source;
mod models_cmd;
mod plan_cmd;
mod pull;
mod quantize_cmd;
mod serve;
mod service;
mod size;
mod sse_client;
mod tool_args;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hearth",
    version,
    about = "Local LLM inference server with an OpenAI-compatible API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text or as JSON objects (one a line), on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "HEARTH_LOG_FORMAT"
    )]
    log_format: logs::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a model over the OpenAI API.
    Serve(serve::ServeArgs),
    /// Download a model into the store ($HEARTH_HOME).
    Pull {
        /// A known model name (see `hearth models list`).
        name: String,
    },
    /// Manage stored models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Chat in the terminal with a running server.
    Chat(chat::ChatArgs),
    /// Benchmark a running server (like `vllm bench serve`).
    Bench(bench::BenchArgs),
    /// Convert a Hugging Face folder to a (quantized) GGUF file.
    Quantize(quantize_cmd::QuantizeArgs),
    /// Weights, KV cache per token and concurrent sequences for a memory budget.
    Plan(plan_cmd::PlanArgs),
    /// API keys for service accounts (create, list, revoke).
    Keys {
        #[command(subcommand)]
        command: keys_cmd::KeysCommand,
    },
    /// Export or erase audit log records (works beside a running server).
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// Check the serve config (hearth.toml, env, flags) or print an example file.
    Config {
        #[command(subcommand)]
        command: config::cmd::ConfigCommand,
    },
    /// Write a hardened systemd unit or launchd plist that runs `hearth serve`.
    Service {
        #[command(subcommand)]
        command: service::ServiceCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// List stored and known models.
    List,
}

fn store() -> Result<hearth_models::store::Store> {
    use hearth_models::store::Store;
    Ok(Store::open(Store::default_home()?)?)
}

fn main() -> Result<()> {
    // Before the runtime starts any thread.
    hearth_models::threads::single_compute_pool();
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<()> {
    // Flags, env (HEARTH_<FLAG>) and the config file, in that order of precedence.
    let parsed = config::parse_args(Cli::command(), std::env::args_os().collect())?;
    let cli = Cli::from_arg_matches(&parsed.matches).unwrap_or_else(|e| e.exit());
    logs::init(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Pull { name } => {
            let path = tokio::task::spawn_blocking(move || pull::pull(&store()?, &name)).await??;
            println!("{}", path.display());
            Ok(())
        }
        Command::Models {
            command: ModelsCommand::List,
        } => {
            print!("{}", models_cmd::list(&store()?)?);
            Ok(())
        }
        Command::Chat(args) => chat::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Quantize(args) => {
            tokio::task::spawn_blocking(move || quantize_cmd::run(args)).await?
        }
        Command::Plan(args) => plan_cmd::run(args),
        Command::Keys { command } => keys_cmd::run(command),
        Command::Audit { command } => audit_cmd::run(command),
        Command::Config { command } => config::cmd::run::<Cli>(&command, &parsed),
        Command::Service { command } => service::run::<Cli>(command),
    }
}
