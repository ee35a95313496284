//! `hearth chat` on a real terminal: tmux runs it in a pane (send-keys, capture-pane),
//! so the line editor, multi-line input, Ctrl-C and the history file are the ones a
//! person gets. tmux is installed by `.ci/run`; without it this test fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{json, Value};

struct Tmux {
    /// A private tmux server's socket, removed when dropped.
    socket: PathBuf,
}

impl Tmux {
    /// Runs `cmdline` in a detached session on a private tmux server.
    fn start(cmdline: &str) -> Tmux {
        // A fresh server per session: a killed one may still be going away.
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let t = Tmux {
            socket: std::env::temp_dir()
                .join(format!("hearth-chat-tmux-{}-{n}.sock", std::process::id())),
        };
        t.run(&[
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            "160",
            "-y",
            "50",
            cmdline,
        ]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` as it is, then presses the given keys (tmux key names).
    fn type_line(&self, text: &str, keys: &[&str]) {
        if !text.is_empty() {
            self.run(&["send-keys", "-t", "chat", "-l", text]);
        }
        for k in keys {
            self.run(&["send-keys", "-t", "chat", k]);
        }
    }

    /// The pane's text, wrapped lines joined, trailing blank lines dropped.
    fn pane(&self) -> String {
        let text = self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "chat"]);
        text.trim_end().to_string()
    }

    fn last_line(&self) -> String {
        self.pane()
            .lines()
            .last()
            .unwrap_or("")
            .trim_end()
            .to_string()
    }

    fn wait(&self, what: &str, cond: impl Fn(&Tmux) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; pane:\n{}",
                self.pane()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn prompts(&self) -> usize {
        self.pane().lines().filter(|l| l.starts_with(">>>")).count()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn require_tmux() {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "this test needs tmux (apt-get install tmux)");
}

fn chat_in_tmux(base: &str, home: &Path) -> Tmux {
    let cmdline = format!(
        "env HEARTH_HOME='{}' '{}' chat --url '{base}' --temperature 0 --max-tokens 4000; \
         echo CHAT-EXIT=$?; sleep 600",
        home.display(),
        env!("CARGO_BIN_EXE_hearth")
    );
    let t = Tmux::start(&cmdline);
    t.wait("the prompt", |t| t.last_line() == ">>>");
    t
}

fn temp_home() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-chat-tmux-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp home");
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_in_a_terminal() {
    require_tmux();
    let s = Server::start(&[]);
    let home = temp_home();
    let t = chat_in_tmux(&s.base, &home);

    // A line ending in `\` continues: one question over two lines.
    t.type_line("What is the capital of France?\\", &["Enter"]);
    t.wait("the continuation prompt", |t| t.last_line() == "...");
    t.type_line("Answer in one word.", &["Enter"]);
    t.wait("the answer and a new prompt", |t| t.prompts() == 2);

    // Ctrl-C during a long answer stops it and returns to the prompt.
    let before = s.stats().await;
    t.type_line("Write a very long story about a dragon.", &["Enter"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = s.stats().await;
        let made = st["generated_tokens"].as_u64().unwrap_or(0);
        if st["running"] == 1 && made > before["generated_tokens"].as_u64().unwrap_or(0) + 30 {
            break;
        }
        assert!(Instant::now() < deadline, "no long answer: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.type_line("", &["C-c"]);
    t.wait("the stop", |t| {
        t.pane().contains("(stopped)") && t.last_line() == ">>>"
    });
    let idle = s.wait_idle(30).await;
    assert_eq!(
        idle["aborted_requests"].as_u64(),
        before["aborted_requests"].as_u64().map(|n| n + 1),
        "{idle}"
    );

    // Ctrl-C on a line with text clears the line and stays.
    t.type_line("abc", &[]);
    t.wait("the typed text", |t| t.last_line() == ">>> abc");
    t.type_line("", &["C-c"]);
    t.wait("the cleared line", |t| t.last_line() == ">>>");

    let saved = home.join("terminal.json");
    t.type_line(&format!("/save {}", saved.display()), &["Enter"]);
    t.wait("the saved file", |_| saved.exists());
    std::thread::sleep(Duration::from_millis(200));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).expect("read")).expect("saved JSON");
    let msgs = v["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 4, "{v}");
    assert_eq!(
        msgs[0],
        json!({"role": "user", "content": "What is the capital of France?\nAnswer in one word."})
    );
    assert_eq!(
        msgs[2]["content"],
        "Write a very long story about a dragon."
    );
    for a in [&msgs[1], &msgs[3]] {
        assert_eq!(a["role"], "assistant");
        assert!(!a["content"].as_str().unwrap_or("").is_empty(), "{v}");
    }

    // Up recalls the last input; Ctrl-D at an empty prompt leaves.
    t.type_line("", &["Up"]);
    t.wait("the recalled line", |t| {
        t.last_line().starts_with(">>> /save ")
    });
    t.type_line("", &["C-c"]);
    t.wait("the cleared line", |t| t.last_line() == ">>>");
    t.type_line("", &["C-d"]);
    t.wait("the exit", |t| t.pane().contains("CHAT-EXIT=0"));
    drop(t);

    // The history outlives the session: a new chat recalls it; Ctrl-C at an empty
    // prompt leaves.
    let history = std::fs::read_to_string(home.join("chat_history")).expect("chat_history");
    assert!(
        history.contains("Write a very long story about a dragon."),
        "{history}"
    );
    let t = chat_in_tmux(&s.base, &home);
    t.type_line("", &["Up"]);
    t.wait("the recalled line", |t| {
        t.last_line().starts_with(">>> /save ")
    });
    t.type_line("", &["C-c"]);
    t.wait("the cleared line", |t| t.last_line() == ">>>");
    t.type_line("", &["C-c"]);
    t.wait("the exit", |t| t.pane().contains("CHAT-EXIT=0"));
    drop(t);
    let _ = std::fs::remove_dir_all(&home);
}
