//! hearth.toml (precedence flags > env > file > defaults, errors, redaction, serve
//! really using it) and `hearth service install` (systemd-analyze verify and
//! security score, launchd plist parsing).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Highest `systemd-analyze security --offline=yes` exposure accepted for the unit.
/// Measured with systemd 252: 0.9 ("SAFE") by default, 1.2 ("OK") with --gpu and
/// --allow-ip; "OK" ends at 4.9.
const MAX_EXPOSURE: f64 = 1.5;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hearth-cfg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// `hearth ARGS` with a clean HEARTH_* environment (HEARTH_HOME set to `home`).
fn hearth(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .env("HEARTH_HOME", home)
        .envs(env.iter().copied());
    cmd.output().expect("running hearth")
}

fn ok_stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `key = value  # source` line of `config check` output.
fn line(out: &str, key: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} =")))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{out}"))
        .to_string()
}

fn assert_line(out: &str, key: &str, value: &str, source: &str) {
    let l = line(out, key);
    assert!(
        l.starts_with(&format!("{key} = {value} ")),
        "`{l}`: want value {value}"
    );
    assert!(
        l.trim_end().ends_with(&format!("# {source}")),
        "`{l}`: want source {source}"
    );
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let dir = temp_dir("precedence");
    let file = dir.join("hearth.toml");
    std::fs::write(
        &file,
        "[serve]\nport = 9001\nmax_num_seqs = 3\nserved-model-name = [\"a\", \"b\"]\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let home = dir.join("home");

    let out = ok_stdout(&hearth(&["config", "check", "--config", f], &[], &home));
    assert!(out.contains(&format!("# config file: {f}")), "{out}");
    assert_line(&out, "port", "9001", "file");
    assert_line(&out, "max-num-seqs", "3", "file");
    assert_line(&out, "served-model-name", "[\"a\", \"b\"]", "file");
    assert_line(&out, "host", "\"127.0.0.1\"", "default");

    let env = [("HEARTH_PORT", "9002"), ("HEARTH_CONFIG", f)];
    let out = ok_stdout(&hearth(&["config", "check"], &env, &home));
    assert_line(&out, "port", "9002", "env HEARTH_PORT");
    assert_line(&out, "max-num-seqs", "3", "file");

    let out = ok_stdout(&hearth(&["config", "check", "--port", "9003"], &env, &home));
    assert_line(&out, "port", "9003", "flag");

    // Without --config or HEARTH_CONFIG: $HEARTH_HOME/hearth.toml when it exists.
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy(&file, home.join("hearth.toml")).unwrap();
    let out = ok_stdout(&hearth(&["config", "check"], &[], &home));
    assert_line(&out, "port", "9001", "file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_files_are_errors_naming_file_and_key() {
    let dir = temp_dir("bad");
    let cases = [
        ("[serve]\nprot = 8080\n", "serve.prot"),
        ("[serve]\nport = \"eighty\"\n", "serve.port"),
        ("[serve]\nmax-num-seqs = -2\n", "serve.max-num-seqs"),
        (
            "[serve]\nkv-cache-memory = \"lots\"\n",
            "serve.kv-cache-memory",
        ),
        (
            "[serve]\nno-enable-prefix-caching = \"no\"\n",
            "serve.no-enable-prefix-caching",
        ),
        ("[server]\nport = 1\n", "`server`"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad{i}.toml"));
        std::fs::write(&file, text).unwrap();
        for cmd in [["config", "check"], ["serve", "--port"]] {
            let mut args: Vec<&str> = cmd.to_vec();
            if cmd[0] == "serve" {
                args.push("0");
            }
            args.extend(["--config", file.to_str().unwrap()]);
            let o = hearth(&args, &[], &dir);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{text:?} accepted by {args:?}");
            assert!(
                err.contains(want) && err.contains(file.to_str().unwrap()),
                "{text:?}: {err}"
            );
        }
    }
    let o = hearth(
        &["config", "check", "--config", "/nonexistent/hearth.toml"],
        &[],
        &dir,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/hearth.toml"));
    // A wrong env value is clap's error, naming the variable's flag.
    let o = hearth(&["config", "check"], &[("HEARTH_PORT", "x")], &dir);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--port"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `# key = value` lines made active, except placeholders (`"..."`).
fn uncomment_defaults(text: &str) -> String {
    let is_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    text.lines()
        .map(|l| {
            match l
                .strip_prefix("# ")
                .and_then(|kv| kv.split_once(" = ").map(|(k, _)| (kv, k)))
            {
                Some((kv, k)) if is_key(k) && !kv.contains("\"...\"") => format!("{kv}\n"),
                _ => format!("{l}\n"),
            }
        })
        .collect()
}

#[test]
fn example_config_lists_every_option_and_is_valid() {
    let dir = temp_dir("example");
    let example = ok_stdout(&hearth(&["config", "example"], &[], &dir));
    let help = ok_stdout(&hearth(&["serve", "--help"], &[], &dir));
    // Every long flag of `serve --help` is in the example (except help and config).
    for flag in help.split_whitespace().filter_map(|w| w.strip_prefix("--")) {
        let flag = flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        if flag != "help" && flag != "config" && !flag.is_empty() {
            assert!(
                example.contains(&format!("# {flag} = ")),
                "--{flag} missing from example"
            );
        }
    }
    // Uncommenting every option that has a real default gives a valid file, for the
    // generated example and for the committed hearth.example.toml.
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hearth.example.toml");
    let committed =
        std::fs::read_to_string(committed).expect("hearth.example.toml at the repo root");
    for (name, text) in [("generated", &example), ("committed", &committed)] {
        let active = uncomment_defaults(text);
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, &active).unwrap();
        let out = ok_stdout(&hearth(
            &["config", "check", "--config", file.to_str().unwrap()],
            &[],
            &dir,
        ));
        assert_line(&out, "port", "8000", "file");
        assert_line(&out, "host", "\"127.0.0.1\"", "file");
        let set = active
            .lines()
            .filter(|l| l.contains(" = ") && !l.starts_with('#'));
        let from_file = out.lines().filter(|l| l.trim_end().ends_with("# file"));
        assert_eq!(
            set.count(),
            from_file.count(),
            "{name}: every active key applies:\n{out}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn serve_reads_its_config_file() {
    let dir = temp_dir("serve");
    let model = common::model_path();
    let file = dir.join("hearth.toml");
    let text = format!(
        "[serve]\nmodel = {:?}\nport = 0\nserved-model-name = [\"from-file\", \"alias\"]\nkv-cache-memory = \"256MiB\"\n",
        model.to_str().unwrap()
    );
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.args(["serve", "--config", file.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .env_remove("HEARTH_CONFIG")
        .env_remove("HEARTH_PORT");
    let server = common::Server::spawn(cmd);
    let models: serde_json::Value = reqwest::get(server.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["from-file", "alias"], "{models}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `systemd-analyze ARGS`; fails the test when the tool is missing.
fn systemd_analyze(args: &[&str]) -> Output {
    match Command::new("systemd-analyze").args(args).output() {
        Ok(o) => o,
        Err(e) => {
            panic!("systemd-analyze is needed to check the unit (Debian package `systemd`): {e}")
        }
    }
}

/// Writes the unit for `extra` flags into a fresh directory and returns its path.
fn write_unit(name: &str, extra: &[&str]) -> PathBuf {
    let dir = temp_dir(name);
    let bin = env!("CARGO_BIN_EXE_hearth");
    let mut args = vec![
        "service",
        "install",
        "--systemd",
        "--binary",
        bin,
        "--output",
        dir.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = ok_stdout(&hearth(&args, &[], &dir));
    let unit = dir.join("hearth.service");
    assert!(
        out.contains(&format!("wrote {}", unit.display())) && out.contains("systemctl enable"),
        "{out}"
    );
    unit
}

/// The overall exposure score `systemd-analyze security --offline=yes` gives.
fn exposure(unit: &Path) -> f64 {
    let o = systemd_analyze(&["security", "--offline=yes", unit.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score: {text}\n{}", String::from_utf8_lossy(&o.stderr)));
    let score = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next());
    score
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unreadable score in `{line}`"))
}

#[test]
fn systemd_unit_verifies_and_scores_ok() {
    for (name, extra) in [
        ("unit-default", &[][..]),
        (
            "unit-gpu",
            &[
                "--gpu",
                "--allow-ip",
                "192.168.1.0/24",
                "--user",
                "llm",
                "--home",
                "/srv/hearth",
            ][..],
        ),
    ] {
        let unit = write_unit(name, extra);
        let text = std::fs::read_to_string(&unit).unwrap();
        let bin = env!("CARGO_BIN_EXE_hearth");
        assert!(
            text.contains(&format!(
                "ExecStart={bin} serve --config /etc/hearth/hearth.toml"
            )),
            "{text}"
        );
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "IPAddressDeny=any",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "CapabilityBoundingSet=\n",
            "SystemCallFilter=@system-service",
            "Restart=on-failure",
        ] {
            assert!(text.contains(line), "{name}: no {line:?} in\n{text}");
        }
        let gpu = name == "unit-gpu";
        assert_eq!(text.contains("PrivateDevices=yes"), !gpu, "{text}");
        assert_eq!(text.contains("MemoryDenyWriteExecute=yes"), !gpu, "{text}");
        let (user, home, allow) = if gpu {
            (
                "llm",
                "/srv/hearth",
                "IPAddressAllow=localhost 192.168.1.0/24\n",
            )
        } else {
            ("hearth", "/var/lib/hearth", "IPAddressAllow=localhost\n")
        };
        assert!(
            text.contains(&format!("User={user}\n")) && text.contains(allow),
            "{text}"
        );
        let rw: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ReadWritePaths="))
            .collect();
        assert_eq!(rw, [format!("ReadWritePaths={home}")], "{text}");
        assert!(text.contains(&format!("Environment=HEARTH_HOME={home}\n")));

        let o = systemd_analyze(&["verify", unit.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() && err.trim().is_empty(),
            "{name}: verify: {}\n{err}",
            o.status
        );
        let score = exposure(&unit);
        eprintln!("{name}: systemd-analyze security exposure {score}");
        assert!(
            score <= MAX_EXPOSURE,
            "{name}: exposure {score} > {MAX_EXPOSURE}"
        );
        let _ = std::fs::remove_dir_all(unit.parent().unwrap());
    }
}

#[test]
fn service_install_refuses_bad_input() {
    let dir = temp_dir("refuse");
    for (args, want) in [
        (
            &["--systemd", "--user", "root", "--print"][..],
            "unprivileged",
        ),
        (
            &["--systemd", "--user", "Bad User", "--print"][..],
            "--user",
        ),
        (
            &["--systemd", "--home", "relative/home", "--print"][..],
            "absolute",
        ),
        (
            &["--systemd", "--config", "/etc/my hearth.toml", "--print"][..],
            "--config",
        ),
        (
            &["--systemd", "--allow-ip", "10.0.0.0/99", "--print"][..],
            "--allow-ip",
        ),
        (&["--systemd", "--launchd", "--print"][..], "cannot be used"),
        (&["--print"][..], "required"),
    ] {
        let mut all = vec!["service", "install"];
        all.extend(args);
        let o = hearth(&all, &[], &dir);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn service_install_checks_the_config_it_will_use() {
    let dir = temp_dir("install-config");
    let cfg = dir.join("hearth.toml");
    let c = cfg.to_str().unwrap();
    std::fs::write(&cfg, "[serve]\nprot = 1\n").unwrap();
    let o = hearth(
        &["service", "install", "--systemd", "--print", "--config", c],
        &[],
        &dir,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("serve.prot") && err.contains(c),
        "{err}"
    );
    // Listening beyond loopback while the unit admits only localhost: a warning.
    std::fs::write(&cfg, "[serve]\nhost = \"0.0.0.0\"\n").unwrap();
    let o = hearth(
        &["service", "install", "--systemd", "--print", "--config", c],
        &[],
        &dir,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-ip"));
    let args = [
        "service",
        "install",
        "--systemd",
        "--print",
        "--config",
        c,
        "--allow-ip",
        "10.0.0.0/8",
    ];
    let o = hearth(&args, &[], &dir);
    assert!(ok_stdout(&o).contains("IPAddressAllow=localhost 10.0.0.0/8\n"));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn launchd_plist_is_a_property_list_with_a_dedicated_user() {
    let dir = temp_dir("plist");
    let bin = env!("CARGO_BIN_EXE_hearth");
    let args = [
        "service",
        "install",
        "--launchd",
        "--print",
        "--user",
        "_hearth",
        "--binary",
        bin,
    ];
    let text = ok_stdout(&hearth(&args, &[], &dir));
    // Python's plistlib reads it (an independent parser), and the plist crate too.
    let script =
        "import plistlib,sys,json; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed to parse the plist");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "plistlib rejected:\n{text}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["UserName"], "_hearth");
    assert_eq!(v["KeepAlive"]["SuccessfulExit"], false);
    assert_eq!(v["RunAtLoad"], true);
    assert_eq!(
        v["ProgramArguments"],
        serde_json::json!([
            bin,
            "serve",
            "--config",
            "/usr/local/etc/hearth/hearth.toml"
        ])
    );
    assert_eq!(
        v["EnvironmentVariables"]["HEARTH_HOME"],
        "/usr/local/var/hearth"
    );
    assert!(v["StandardErrorPath"]
        .as_str()
        .unwrap()
        .starts_with("/usr/local/var/hearth/"));
    let parsed = plist::Value::from_reader_xml(text.as_bytes()).expect("plist crate parses it");
    assert!(parsed
        .as_dictionary()
        .is_some_and(|d| d.contains_key("Label")));
    let _ = std::fs::remove_dir_all(&dir);
}
