//! Where lines come from: on a terminal a line editor (rustyline) with history kept in
//! `$HEARTH_HOME/chat_history`; from a pipe, plain lines.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{
    Cmd, ConditionalEventHandler, Config, Editor, Event, EventContext, EventHandler, KeyEvent,
    Movement, RepeatCount,
};
use tokio::sync::mpsc;

pub enum Read {
    Line(String),
    /// Ctrl-C with nothing typed on the line.
    Interrupted,
    Eof,
}

type LineEditor = Editor<(), DefaultHistory>;

pub enum Input {
    Terminal {
        // Lent to a blocking thread while it reads a line.
        editor: Option<LineEditor>,
        history: Option<PathBuf>,
    },
    /// Lines read by a thread of its own: a read blocked in tokio's blocking pool
    /// would keep the runtime from shutting down when the chat leaves.
    Pipe(mpsc::Receiver<std::io::Result<String>>),
}

/// Ctrl-C clears a line that holds text; on an empty line it interrupts (leaves).
struct CtrlC;

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        (!ctx.line().is_empty()).then_some(Cmd::Kill(Movement::WholeBuffer))
    }
}

impl Input {
    /// The line editor when stdin is a terminal, else plain lines.
    pub fn open() -> Result<Input> {
        if !std::io::stdin().is_terminal() {
            let (tx, rx) = mpsc::channel(16);
            std::thread::spawn(move || {
                for line in std::io::stdin().lines() {
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
            });
            return Ok(Input::Pipe(rx));
        }
        let config = Config::builder()
            .max_history_size(1000)?
            .auto_add_history(false)
            .build();
        let mut editor = LineEditor::with_config(config).context("starting the line editor")?;
        editor.bind_sequence(
            KeyEvent::ctrl('C'),
            EventHandler::Conditional(Box::new(CtrlC)),
        );
        let history = history_path();
        if let Some(p) = &history {
            // A missing file is a first run; an unreadable one only costs the history.
            if p.exists() {
                if let Err(e) = editor.load_history(p) {
                    eprintln!("(could not read {}: {e})", p.display());
                }
            }
        }
        Ok(Input::Terminal {
            editor: Some(editor),
            history,
        })
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Input::Terminal { .. })
    }

    pub async fn read(&mut self, prompt: &str) -> Result<Read> {
        match self {
            Input::Pipe(lines) => tokio::select! {
                line = lines.recv() => Ok(match line.transpose()? {
                    Some(l) => Read::Line(l.trim_end_matches('\r').to_string()),
                    None => Read::Eof,
                }),
                _ = tokio::signal::ctrl_c() => Ok(Read::Interrupted),
            },
            Input::Terminal { editor, .. } => {
                let mut ed = editor.take().context("line editor lost")?;
                let prompt = prompt.to_string();
                let (ed, res) = tokio::task::spawn_blocking(move || {
                    let res = ed.readline(&prompt);
                    (ed, res)
                })
                .await?;
                *editor = Some(ed);
                match res {
                    Ok(l) => Ok(Read::Line(l)),
                    Err(ReadlineError::Interrupted) => Ok(Read::Interrupted),
                    Err(ReadlineError::Eof) => Ok(Read::Eof),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Adds an input to the history file (terminal only; piped input is not kept).
    pub fn remember(&mut self, text: &str) {
        let Input::Terminal {
            editor: Some(ed),
            history,
        } = self
        else {
            return;
        };
        if ed.add_history_entry(text).is_err() {
            return;
        }
        if let Some(p) = history {
            if let Err(e) = ed.save_history(p) {
                eprintln!("(could not write {}: {e})", p.display());
                *history = None;
            }
        }
    }
}

/// `$HEARTH_HOME/chat_history`, its folder made if needed; `None` when there is no home.
fn history_path() -> Option<PathBuf> {
    let home = hearth_models::store::Store::default_home().ok()?;
    std::fs::create_dir_all(&home).ok()?;
    Some(home.join("chat_history"))
}
