//! Zero egress: the real server runs inside a network namespace whose only
//! interface is loopback (ip netns, iproute2), and a full session with the official
//! `openai` SDK, also inside it, completes: serving needs no network at all.

mod common;

use std::process::Command;

use common::{model_path, Server};

/// A namespace with loopback up and nothing else; deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        let name = format!("hearth-egress-{}", std::process::id());
        let add = Command::new("ip").args(["netns", "add", &name]).output();
        match add {
            Ok(o) if o.status.success() => {}
            other => panic!(
                "this test needs `ip netns add` (iproute2, as root): {:?}",
                other.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            ),
        }
        let ns = NetNs(name);
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn exec(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(argv);
        c
    }

    fn run(&self, argv: &[&str]) -> String {
        let out = self.exec(argv).output().expect("ip netns exec");
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn a_full_session_runs_with_only_loopback() {
    let ns = NetNs::new();
    // Only `lo` exists in there: no route leaves the namespace.
    let links = ns.run(&["ip", "-o", "link"]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(str::trim))
        .collect();
    assert_eq!(names, vec!["lo"], "{links}");
    let routes = ns.run(&["ip", "route", "show", "default"]);
    assert!(routes.trim().is_empty(), "a default route: {routes}");

    let home = std::env::temp_dir().join(format!("hearth-egress-home-{}", std::process::id()));
    let model = model_path();
    let mut cmd = ns.exec(&[
        env!("CARGO_BIN_EXE_hearth"),
        "serve",
        model.to_str().expect("utf-8 path"),
        "--port",
        "0",
        "--kv-cache-memory",
        "128MiB",
    ]);
    cmd.env("HEARTH_HOME", &home).env("RUST_LOG", "warn");
    let s = Server::spawn(cmd);

    // The SDK session (chat, stream, completions, errors) from inside the namespace.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/test_openai_sdk.py"
    );
    let out = ns
        .exec(&["python3", script, &s.base])
        .output()
        .expect("python3 in the namespace");
    assert!(
        out.status.success(),
        "SDK session failed inside the namespace:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("openai SDK checks passed"));
    drop(s);
    let _ = std::fs::remove_dir_all(&home);
}
