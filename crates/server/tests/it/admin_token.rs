//! The admin API's token from the operator's side: `check-config` reads the token and TLS files
//! as the server will (a file others may read is refused), and the command line's writes need
//! `--token-file` once the server has a token.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::TempDir;

use crate::{CONFIG, start, stop};

const PEREGRINE: &str = env!("CARGO_BIN_EXE_peregrine");

/// Runs the binary with `args`: success, and what it printed on both streams.
fn peregrine(args: &[&str]) -> (bool, String) {
    let out = Command::new(PEREGRINE)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.success(), crate::leases::text(&out))
}

#[test]
fn check_config_reads_the_token_file_and_writes_need_it() {
    let dir = TempDir::new("peregrine-admin-token");
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "5b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("token.toml");
    let text = format!(
        "{CONFIG}\n[control]\ntoken-file = \"{}\"\n",
        token.display()
    );
    std::fs::write(&config, text).unwrap();
    let config_arg = config.to_str().unwrap();

    let (ok, said) = peregrine(&["check-config", config_arg]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("control.token-file") && said.contains("(mode 644): chmod 600"),
        "{said}"
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, said) = peregrine(&["check-config", config_arg]);
    assert!(ok, "{said}");

    // TLS files are read at start too: a certificate file without a certificate is named.
    let cert = dir.path().join("admin.crt");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let tls_config = dir.path().join("tls.toml");
    let text = format!(
        "{CONFIG}\n[control]\ntls-cert = \"{}\"\ntls-key = \"{}\"\n",
        cert.display(),
        token.display()
    );
    std::fs::write(&tls_config, text).unwrap();
    let (ok, said) = peregrine(&["check-config", tls_config.to_str().unwrap()]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("control.tls-cert/tls-key") && said.contains("no PEM certificate"),
        "{said}"
    );

    let Some(ns) = Netns::new("admin_token") else {
        return;
    };
    ns.veth("srv0", "cli0");
    let mut server = start(&ns, &config);
    let partner_down = |token_file: Option<&str>| {
        let mut args = vec!["failover", "partner-down", "--server", "127.0.0.1:9167"];
        args.extend(
            token_file
                .map(|t| ["--token-file", t])
                .into_iter()
                .flatten(),
        );
        let out = ns.command(PEREGRINE).args(&args).output().unwrap();
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    // Without the token the write is refused as such; with it, it reaches the server, which
    // has no partner to declare down.
    let start = Instant::now();
    let refused = loop {
        let said = partner_down(None);
        if !said.contains("Connection refused") || start.elapsed() > Duration::from_secs(10) {
            break said;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        refused.contains("401") && refused.contains("needs the admin token"),
        "{refused}"
    );
    let with_token = partner_down(token.to_str());
    assert!(!with_token.contains("401"), "{with_token}");
    assert!(with_token.contains("failover"), "{with_token}");
    assert!(stop(&mut server).success());
}
