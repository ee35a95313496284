//! `hearth keys create|list|revoke`: API keys for service accounts, kept (hashed) in
//! `$HEARTH_HOME/keys.sqlite`. A running server sees changes at once.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hearth_models::store::Store;
use hearth_server::auth::key::{format_time, parse_expiry_date};
use hearth_server::auth::{KeyInfo, KeyStore, NewKey};
use hearth_server::state::unix_now;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (once: only its hash is stored).
    Create(CreateArgs),
    /// List keys: names, prefixes, scopes, limits, expiry (never the keys).
    List,
    /// Revoke the key in force under NAME; requests with it get 401 at once.
    Revoke { name: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The service account's name (recorded in the audit log).
    #[arg(long)]
    pub name: String,
    /// Models it may use, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Endpoints it may call, comma-separated, e.g. /v1/chat/completions; a trailing
    /// `*` matches every path under it (default: all).
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Requests per minute (a sliding minute); more get 429 with Retry-After.
    #[arg(long)]
    pub rpm: Option<u32>,
    /// Requests running at once (a stream counts until it ends); more get 429.
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Last day the key works (UTC), e.g. 2026-12-31.
    #[arg(long)]
    pub expires: Option<String>,
    /// May also call operator routes (/stats, /metrics).
    #[arg(long)]
    pub admin: bool,
    /// Store prompts and outputs of its requests in the audit log.
    #[arg(long)]
    pub log_content: bool,
}

fn open() -> Result<KeyStore> {
    let home = Store::default_home()?;
    KeyStore::open_home(&home)
        .with_context(|| format!("opening the API key store in {}", home.display()))
}

pub fn run(cmd: KeysCommand) -> Result<()> {
    let store = open()?;
    match cmd {
        KeysCommand::Create(a) => {
            let new = NewKey {
                name: a.name,
                models: a.models.into_iter().map(|m| m.trim().to_string()).collect(),
                endpoints: a
                    .endpoints
                    .into_iter()
                    .map(|e| e.trim().to_string())
                    .collect(),
                rpm: a.rpm,
                max_concurrency: a.max_concurrency,
                expires_at: a.expires.as_deref().map(parse_expiry_date).transpose()?,
                admin: a.admin,
                log_content: a.log_content,
            };
            let now = unix_now();
            let (key, info) = store.create(&new, now)?;
            // The key alone on stdout (`KEY=$(hearth keys create ...)`), notes on stderr.
            println!("{key}");
            eprintln!(
                "created API key `{}` ({}). It will not be shown again: store it now.",
                info.name, info.prefix
            );
            if info.is_expired(now) {
                eprintln!("note: its expiry date has already passed; it will be refused");
            }
        }
        KeysCommand::List => print!("{}", table(&store.list()?)),
        KeysCommand::Revoke { name } => {
            store.revoke(&name, unix_now())?;
            println!("revoked API key `{name}`");
        }
    }
    Ok(())
}

fn table(keys: &[KeyInfo]) -> String {
    let or_all = |v: &[String]| {
        if v.is_empty() {
            "all".to_string()
        } else {
            v.join(",")
        }
    };
    let opt = |v: Option<u32>| v.map_or("-".to_string(), |n| n.to_string());
    let time = |t: Option<u64>| t.map_or("-".to_string(), format_time);
    let mut rows = vec![[
        "NAME",
        "PREFIX",
        "MODELS",
        "ENDPOINTS",
        "RPM",
        "CONCURRENCY",
        "EXPIRES",
        "ADMIN",
        "LOG_CONTENT",
        "CREATED",
        "REVOKED",
    ]
    .map(String::from)];
    for k in keys {
        rows.push([
            k.name.clone(),
            k.prefix.clone(),
            or_all(&k.models),
            or_all(&k.endpoints),
            opt(k.rpm),
            opt(k.max_concurrency),
            time(k.expires_at),
            if k.admin { "yes" } else { "no" }.into(),
            if k.log_content { "yes" } else { "no" }.into(),
            format_time(k.created_at),
            time(k.revoked_at),
        ]);
    }
    let widths: Vec<usize> = (0..11)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
