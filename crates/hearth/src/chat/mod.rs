//! `hearth chat`: a terminal chat with a running server. On a terminal: a line editor
//! with history, multi-line input, slash commands, streamed answers that Ctrl-C stops.
//! From a pipe: each input line (or block) is sent and answered in turn.

mod client;
mod command;
mod conversation;
mod input;
mod multiline;

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;

use client::Client;
use command::Command;
use conversation::Conversation;
use input::{Input, Read};
use multiline::MultiLine;

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    #[arg(long, env = "HEARTH_API_KEY")]
    pub api_key: Option<String>,
    /// Model name; defaults to the server's first model.
    #[arg(long)]
    pub model: Option<String>,
    /// A system message to start every conversation with.
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub max_tokens: Option<u32>,
}

pub async fn run(args: ChatArgs) -> Result<()> {
    let client = Client::new(&args.url, args.api_key.clone());
    let model = match &args.model {
        Some(m) => m.clone(),
        None => client
            .models()
            .await
            .with_context(|| format!("asking {} for its models", client.base()))?
            .into_iter()
            .next()
            .context("the server lists no model")?,
    };
    let mut conv = Conversation::new(model, args.system.clone());
    conv.temperature = args.temperature;
    conv.max_tokens = args.max_tokens;
    let mut input = Input::open()?;
    // Notices go to stderr: piped stdout carries only the answers.
    eprintln!(
        "chatting with {} at {} (/help for commands, Ctrl-D leaves)",
        conv.model,
        client.base()
    );
    let mut lines = MultiLine::default();
    loop {
        let prompt = match (input.is_terminal(), lines.pending()) {
            (false, _) => "",
            (true, false) => ">>> ",
            (true, true) => "... ",
        };
        let line = match input.read(prompt).await? {
            Read::Line(l) => l,
            Read::Eof => break,
            Read::Interrupted if lines.pending() => {
                lines.reset();
                continue;
            }
            Read::Interrupted => break,
        };
        let Some(entry) = lines.push(&line) else {
            continue;
        };
        if entry.text.trim().is_empty() {
            continue;
        }
        input.remember(&entry.text);
        let cmd = match entry.literal {
            true => None,
            false => match command::parse(&entry.text) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    continue;
                }
            },
        };
        match cmd {
            Some(Command::Exit) => break,
            Some(cmd) => {
                if let Err(e) = run_command(cmd, &mut conv, &client).await {
                    eprintln!("error: {e:#}");
                }
            }
            None => turn(&client, &mut conv, &entry.text).await?,
        }
    }
    Ok(())
}

/// Sends `text` and streams the answer; Ctrl-C stops it (dropping the request makes
/// the server abort) and keeps what came so far.
async fn turn(client: &Client, conv: &mut Conversation, text: &str) -> Result<()> {
    conv.push_user(text);
    let body = conv.request();
    let mut answer = String::new();
    let mut out = std::io::stdout();
    let result = tokio::select! {
        r = client.answer(&body, &mut answer, &mut out) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    writeln!(out)?;
    match result {
        Some(Ok(())) => {}
        None => eprintln!("(stopped)"),
        Some(Err(e)) => eprintln!("error: {e:#}"),
    }
    // A turn without any answer is forgotten, so that it is not sent again.
    match answer.is_empty() {
        true => conv.pop_user(),
        false => conv.push_assistant(answer),
    }
    Ok(())
}

async fn run_command(cmd: Command, conv: &mut Conversation, client: &Client) -> Result<()> {
    match cmd {
        Command::System(None) => match &conv.system {
            Some(s) => println!("{s}"),
            None => eprintln!("(no system prompt)"),
        },
        Command::System(Some(s)) if s == "none" => {
            conv.system = None;
            eprintln!("(system prompt removed)");
        }
        Command::System(Some(s)) => {
            conv.system = Some(s);
            eprintln!("(system prompt set)");
        }
        Command::Model(None) => println!("{}", conv.model),
        Command::Model(Some(name)) => {
            let models = client.models().await?;
            anyhow::ensure!(
                models.contains(&name),
                "the server has no model `{name}` (/models lists them)"
            );
            eprintln!("(model: {name})");
            conv.model = name;
        }
        Command::Models => {
            for m in client.models().await? {
                let mark = if m == conv.model { "*" } else { " " };
                println!("{mark} {m}");
            }
        }
        Command::Clear => {
            conv.clear();
            eprintln!("(conversation cleared)");
        }
        Command::Save(path) => {
            let json = serde_json::to_string_pretty(&conv.to_json())?;
            std::fs::write(&path, json + "\n").with_context(|| format!("writing {path}"))?;
            eprintln!("(saved {} messages to {path})", conv.messages().len());
        }
        Command::Help => println!("{}", command::HELP),
        Command::Exit => {}
    }
    Ok(())
}
