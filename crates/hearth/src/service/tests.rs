//! Unit tests of the service spec checks and the generated files.

use std::path::PathBuf;

use clap::Parser;

use super::{launchd, systemd, InstallArgs, ServiceSpec};

#[derive(Parser)]
struct T {
    #[command(flatten)]
    args: InstallArgs,
}

fn spec(argv: &[&str]) -> anyhow::Result<ServiceSpec> {
    let t = T::try_parse_from(std::iter::once("t").chain(argv.iter().copied()))?;
    ServiceSpec::new(&t.args, PathBuf::from("/usr/local/bin/hearth"))
}

#[test]
fn allow_ip_takes_addresses_cidrs_and_keywords_only() {
    for ok in [
        "10.0.0.1",
        "192.168.0.0/16",
        "fd00::/8",
        "::1",
        "link-local",
    ] {
        assert!(spec(&["--systemd", "--allow-ip", ok]).is_ok(), "{ok}");
    }
    for bad in [
        "10.0.0.0/33",
        "fd00::/129",
        "example.com",
        "10.0.0.1/x",
        "1.2.3.4 5.6.7.8",
    ] {
        assert!(spec(&["--systemd", "--allow-ip", bad]).is_err(), "{bad}");
    }
    assert!(spec(&["--launchd", "--allow-ip", "10.0.0.1"]).is_err());
}

#[test]
fn state_directory_only_for_a_direct_child_of_var_lib() {
    let s = spec(&["--systemd"]).unwrap();
    assert_eq!(s.state_directory().as_deref(), Some("hearth"));
    assert!(systemd::unit(&s).contains("StateDirectory=hearth\n"));
    for home in ["/srv/hearth", "/var/lib/a/b", "/var/lib"] {
        let s = spec(&["--systemd", "--home", home]).unwrap();
        assert_eq!(s.state_directory(), None, "{home}");
        let unit = systemd::unit(&s);
        assert!(
            !unit.contains("StateDirectory=") && unit.contains(&format!("ReadWritePaths={home}\n"))
        );
    }
}

#[test]
fn gpu_opens_devices_and_drops_wx_denial() {
    let cpu = systemd::unit(&spec(&["--systemd"]).unwrap());
    let gpu = systemd::unit(&spec(&["--systemd", "--gpu"]).unwrap());
    assert!(cpu.contains("PrivateDevices=yes\n") && cpu.contains("MemoryDenyWriteExecute=yes\n"));
    assert!(!cpu.contains("DeviceAllow="));
    assert!(
        gpu.contains("PrivateDevices=no\n")
            && gpu.contains("DeviceAllow=char-nvidia-frontend rw\n")
    );
    assert!(!gpu.contains("MemoryDenyWriteExecute"));
}

#[test]
fn plist_names_the_account_and_command() {
    let s = spec(&[
        "--launchd",
        "--user",
        "_hearth",
        "--config",
        "/opt/h/hearth.toml",
    ])
    .unwrap();
    let text = launchd::plist(&s).unwrap();
    let v = plist::Value::from_reader_xml(text.as_bytes()).unwrap();
    let d = v.as_dictionary().unwrap();
    assert_eq!(
        d.get("UserName").and_then(|u| u.as_string()),
        Some("_hearth")
    );
    let argv: Vec<&str> = d["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_string())
        .collect();
    assert_eq!(
        argv,
        [
            "/usr/local/bin/hearth",
            "serve",
            "--config",
            "/opt/h/hearth.toml"
        ]
    );
    assert_eq!(
        d.get("Umask").and_then(|u| u.as_signed_integer()),
        Some(0o077)
    );
}
