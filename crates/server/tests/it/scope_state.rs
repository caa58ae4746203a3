//! A scope switched off through the admin API stays off through a restart (the lease directory
//! keeps it over the configuration's `state`), and on again once switched on.

use std::time::{Duration, Instant};

use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::TempDir;

use crate::{CONFIG, start, stop};

/// `method` `path` on the server's control plane in `ns`: the status and the body, retried
/// while the server is still starting.
pub(crate) fn call(ns: &Netns, method: &str, path: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:9167{path}");
    let start = Instant::now();
    loop {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let reply = ns.enter(|| {
            if method == "POST" {
                agent.post(&url).send_empty()
            } else {
                agent.get(&url).call()
            }
        });
        match reply {
            Ok(mut r) => {
                let status = r.status().as_u16();
                return (status, r.body_mut().read_to_string().unwrap());
            }
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(10),
                "{method} {path}: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_scope_switched_off_through_the_api_stays_off_through_a_restart() {
    let Some(ns) = Netns::new("scope_state") else {
        return;
    };
    ns.veth("srv0", "cli0");
    let dir = TempDir::new("peregrine-scope-state");
    let config = dir.path().join("scope.toml");
    let leases = dir.path().join("leases");
    let text = format!("{CONFIG}\n[leases]\ndirectory = \"{}\"\n", leases.display());
    std::fs::write(&config, text).unwrap();
    // Each start finds the scope as the previous run left it, then changes it.
    for (found, change) in [("active", "deactivate"), ("inactive", "activate")] {
        let mut server = start(&ns, &config);
        let states = call(&ns, "GET", "/v1/scopes").1;
        assert!(
            states.contains(&format!(r#""state":"{found}""#)),
            "{states}"
        );
        let (status, body) = call(&ns, "POST", &format!("/v1/scopes/lan/{change}"));
        assert_eq!(status, 200, "{body}");
        assert!(stop(&mut server).success());
    }
    let mut server = start(&ns, &config);
    let states = call(&ns, "GET", "/v1/scopes").1;
    assert!(states.contains(r#""state":"active""#), "{states}");
    assert_eq!(call(&ns, "POST", "/v1/scopes/nosuch/activate").0, 404);
    // A lease put from the shell is journaled before the answer: a restart has it.
    let put = [
        "lease-put",
        "10.77.0.150",
        "--mac",
        "02:00:00:00:77:50",
        "--lifetime",
        "600",
    ];
    let (ok, said) = ctl(&ns, &put);
    assert!(ok && said.contains(r#""state":"active""#), "{said}");
    let (ok, said) = ctl(&ns, &["snapshot"]);
    assert!(ok && said.contains(r#""snapshot":"written""#), "{said}");
    assert!(stop(&mut server).success());
    let mut server = start(&ns, &config);
    let lease = call(&ns, "GET", "/v1/leases/10.77.0.150").1;
    assert!(lease.contains(r#""mac":"02:00:00:00:77:50""#), "{lease}");
    let (ok, said) = ctl(&ns, &["lease-delete", "10.77.0.150"]);
    assert!(ok && said.contains(r#""state":"released""#), "{said}");
    assert!(stop(&mut server).success());
}

/// `peregrine ctl` in `ns` with `args`: success, and standard output or error.
fn ctl(ns: &Netns, args: &[&str]) -> (bool, String) {
    let out = ns
        .command(env!("CARGO_BIN_EXE_peregrine"))
        .arg("ctl")
        .args(args)
        .output()
        .unwrap();
    let said = if out.status.success() {
        String::from_utf8_lossy(&out.stdout)
    } else {
        String::from_utf8_lossy(&out.stderr)
    };
    (out.status.success(), said.into_owned())
}

#[test]
fn ctl_drives_the_api_from_the_shell() {
    let Some(ns) = Netns::new("ctl") else {
        return;
    };
    ns.veth("srv0", "cli0");
    let dir = TempDir::new("peregrine-ctl");
    let config = dir.path().join("ctl.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut server = start(&ns, &config);
    // Wait for the control plane, then ask as an operator would.
    call(&ns, "GET", "/healthz");
    let (ok, pools) = ctl(&ns, &["pools"]);
    assert!(ok && pools.contains(r#""total":100"#), "{pools}");
    let (ok, said) = ctl(&ns, &["deactivate", "lan"]);
    assert!(ok && said.contains(r#""state":"inactive""#), "{said}");
    let (ok, scopes) = ctl(&ns, &["scopes"]);
    assert!(ok && scopes.contains(r#""state":"inactive""#), "{scopes}");
    // A lease written and deleted from the shell: without a [leases] directory, refused.
    let (ok, said) = ctl(
        &ns,
        &[
            "lease-put",
            "10.77.0.150",
            "--mac",
            "02:00:00:00:77:50",
            "--lifetime",
            "600",
        ],
    );
    assert!(
        !ok && said.contains("409") && said.contains("[leases]"),
        "{said}"
    );
    // The file unchanged, reloaded: the operator's change stands.
    let (ok, said) = ctl(&ns, &["reload"]);
    assert!(ok && said.contains(r#""scopes":1"#), "{said}");
    let (ok, scopes) = ctl(&ns, &["scopes"]);
    assert!(ok && scopes.contains(r#""state":"inactive""#), "{scopes}");
    let (ok, leases) = ctl(&ns, &["leases", "--scope", "lan", "--all"]);
    assert!(ok && leases.contains(r#""leases":[]"#), "{leases}");
    let (ok, doc) = ctl(&ns, &["get", "/v1/openapi.json"]);
    assert!(
        ok && doc.contains("\"openapi\""),
        "{}",
        &doc[..doc.len().min(200)]
    );
    // Refusals come back as errors with the server's reason.
    let (ok, said) = ctl(&ns, &["leases", "--mac", "zz"]);
    assert!(
        !ok && said.contains("400") && said.contains("mac:"),
        "{said}"
    );
    let (ok, said) = ctl(&ns, &["lease", "192.0.2.1"]);
    assert!(
        !ok && said.contains("404") && said.contains("in no pool"),
        "{said}"
    );
    assert!(stop(&mut server).success());
}

/// A self-signed certificate for 127.0.0.1 and its key, made by openssl in `dir` as
/// docs/admin-api.md makes one; `None` (the test is skipped) without openssl.
fn certificate(
    dir: &std::path::Path,
    name: &str,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=peregrine-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .ok()?;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    Some((cert, key))
}

#[test]
fn ctl_speaks_tls_to_an_api_served_over_tls() {
    let Some(ns) = Netns::new("ctl_tls") else {
        return;
    };
    ns.veth("srv0", "cli0");
    let dir = TempDir::new("peregrine-ctl-tls");
    let Some((cert, key)) = certificate(dir.path(), "admin") else {
        return;
    };
    let (other, _) = certificate(dir.path(), "other").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = dir.path().join("tls.toml");
    let tls = format!("\n[control]\ntls-cert = {cert:?}\ntls-key = {key:?}\n");
    std::fs::write(&config, format!("{CONFIG}{tls}")).unwrap();
    let mut server = start(&ns, &config);
    let ca = cert.to_string_lossy().into_owned();
    let started = Instant::now();
    let pools = loop {
        let (ok, said) = ctl(&ns, &["--tls-ca", &ca, "pools"]);
        if ok {
            break said;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{said}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(pools.contains(r#""total":100"#), "{pools}");
    // Plain HTTP, or a certificate it does not trust: refused.
    assert!(!ctl(&ns, &["pools"]).0);
    let (ok, said) = ctl(&ns, &["--tls-ca", &other.to_string_lossy(), "pools"]);
    assert!(!ok, "{said}");
    assert!(stop(&mut server).success());
}
