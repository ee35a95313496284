//! Unit tests of the config layer on a small stand-in CLI shaped like hearth's.

use std::path::Path;

use clap::{Arg, ArgAction, Command};

use super::effective::{is_secret, render};
use super::file::parse;
use super::{parse_args, serve_matches, serve_options, with_env, with_file_defaults};

fn cli() -> Command {
    let serve = Command::new("serve")
        .arg(Arg::new("model"))
        .arg(Arg::new("config").long("config"))
        .arg(
            Arg::new("port")
                .long("port")
                .value_parser(clap::value_parser!(u16))
                .default_value("8000"),
        )
        .arg(
            Arg::new("max_num_seqs")
                .long("max-num-seqs")
                .value_parser(clap::value_parser!(usize)),
        )
        .arg(
            Arg::new("served_model_name")
                .long("served-model-name")
                .num_args(1..)
                .action(ArgAction::Append),
        )
        .arg(
            Arg::new("enable_prefix_caching")
                .long("enable-prefix-caching")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("no_enable_prefix_caching")
                .long("no-enable-prefix-caching")
                .action(ArgAction::SetTrue),
        )
        .arg(Arg::new("api_key").long("api-key"));
    Command::new("hearth")
        .arg(
            Arg::new("log_format")
                .long("log-format")
                .global(true)
                .default_value("text"),
        )
        .subcommand(serve.clone())
        .subcommand(Command::new("config").subcommand(serve.name("check")))
}

fn load(text: &str) -> anyhow::Result<super::file::ConfigFile> {
    let cmd = cli();
    parse(text, Path::new("/etc/hearth.toml"), &serve_options(&cmd))
}

#[test]
fn keys_in_either_case_and_typed_values() {
    let f = load("[serve]\nport = 9000\nmax_num_seqs = 8\nserved-model-name = [\"a\", \"b\"]\nno-enable-prefix-caching = true\n").unwrap();
    let get = |id: &str| f.values.iter().find(|v| v.id == id).unwrap().values.clone();
    assert_eq!(get("port"), ["9000"]);
    assert_eq!(get("max_num_seqs"), ["8"]);
    assert_eq!(get("served_model_name"), ["a", "b"]);
    assert_eq!(get("no_enable_prefix_caching"), ["true"]);
}

#[test]
fn bad_files_are_errors_naming_file_and_key() {
    let cases = [
        ("[serve]\nprot = 1\n", "serve.prot"),
        ("port = 1\n", "`port`"),
        ("[serve]\nport = \"many\"\n", "serve.port"),
        ("[serve]\nport = 70000\n", "serve.port"),
        ("[serve]\nport = [1, 2]\n", "not a list"),
        ("[serve]\nno-enable-prefix-caching = \"yes\"\n", "boolean"),
        (
            "[serve]\nmax_num_seqs = 1\nmax-num-seqs = 2\n",
            "same option",
        ),
        ("[serve]\nconfig = \"x.toml\"\n", "serve.config"),
        ("[serve\n", "not valid TOML"),
    ];
    for (text, want) in cases {
        let err = format!("{:#}", load(text).unwrap_err());
        assert!(
            err.contains("/etc/hearth.toml") && err.contains(want),
            "{text:?}: {err}"
        );
    }
}

fn effective(text: &str, argv: &[&str]) -> String {
    let file = load(text).unwrap();
    let cmd = with_file_defaults(with_env(cli()), &file);
    let m = cmd.try_get_matches_from(argv).unwrap();
    let options = serve_options(&with_env(cli()));
    render(&options, serve_matches(&m).unwrap(), Some(&file))
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} ")) || l.starts_with(&format!("# {key} ")))
        .unwrap()
}

#[test]
fn file_values_are_defaults_that_flags_override() {
    let text = "[serve]\nport = 9000\nmax-num-seqs = 4\napi-key = \"sk-very-secret\"\nlog_format = \"json\"\n";
    let out = effective(text, &["hearth", "config", "check", "--max-num-seqs", "2"]);
    assert!(
        line(&out, "port").starts_with("port = 9000") && line(&out, "port").ends_with("# file"),
        "{out}"
    );
    assert!(
        line(&out, "max-num-seqs").starts_with("max-num-seqs = 2")
            && line(&out, "max-num-seqs").ends_with("# flag")
    );
    assert!(line(&out, "api-key").contains("<redacted>") && !out.contains("sk-very-secret"));
    // A global option of the root command is a serve option too.
    assert!(
        line(&out, "log-format").starts_with("log-format = \"json\"")
            && line(&out, "log-format").ends_with("# file"),
        "{out}"
    );
    assert!(line(&out, "served-model-name").ends_with("# unset"));
    assert!(line(&out, "no-enable-prefix-caching").starts_with("no-enable-prefix-caching = false"));
    // What `config check` prints is itself a valid config file.
    let again = load(&out).unwrap();
    assert!(again
        .values
        .iter()
        .any(|v| v.id == "port" && v.values == ["9000"]));
}

#[test]
fn secret_names_are_words_not_substrings() {
    for s in [
        "api_key",
        "api-keys",
        "admin_token",
        "tls-key-file",
        "db_password",
        "client-secret",
    ] {
        assert!(is_secret(s), "{s}");
    }
    for s in [
        "max_num_batched_tokens",
        "port",
        "keep_alive",
        "monkey",
        "max_tokens",
    ] {
        assert!(!is_secret(s), "{s}");
    }
}

#[test]
fn a_flag_beats_the_files_no_flag_counterpart() {
    let path = std::env::temp_dir().join(format!("hearth-unit-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[serve]\nno-enable-prefix-caching = true\nport = 9\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let argv = |extra: &[&str]| -> Vec<std::ffi::OsString> {
        ["hearth", "serve", "--config", p]
            .iter()
            .chain(extra)
            .map(|s| s.into())
            .collect()
    };
    let parsed = parse_args(cli(), argv(&["--enable-prefix-caching"])).unwrap();
    let m = serve_matches(&parsed.matches).unwrap();
    assert!(m.get_flag("enable_prefix_caching"));
    assert!(!m.get_flag("no_enable_prefix_caching"));
    assert_eq!(m.get_one::<u16>("port"), Some(&9));
    let parsed = parse_args(cli(), argv(&[])).unwrap();
    assert!(serve_matches(&parsed.matches)
        .unwrap()
        .get_flag("no_enable_prefix_caching"));
    let _ = std::fs::remove_file(&path);
}
