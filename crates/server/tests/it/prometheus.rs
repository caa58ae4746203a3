//! The alert rules and a real Prometheus: `promtool` checks the rules and runs their unit
//! tests, and a Prometheus (Debian's package) scraping a running Peregrine in a namespace
//! reads back its metrics and loads the rules.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{Running, TempDir, require_tools};

use crate::{CONFIG, start, stop};

fn rules_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/prometheus")
}

#[test]
fn promtool_checks_the_alert_rules_and_their_tests_pass() {
    let Some([promtool]) = require_tools("promtool", ["promtool"], "prometheus") else {
        return;
    };
    for args in [
        ["check", "rules", "peregrine-rules.yml"],
        ["test", "rules", "peregrine-rules.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(rules_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `GET path` on the Prometheus in `ns`, once it answers: the body.
fn query(ns: &Netns, path: &str) -> Option<String> {
    let url = format!("http://127.0.0.1:9090{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    ns.enter(|| agent.get(&url).call())
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
}

#[test]
fn a_real_prometheus_scrapes_peregrine_and_loads_the_rules() {
    let Some([prometheus]) = require_tools("prometheus scrape", ["prometheus"], "prometheus")
    else {
        return;
    };
    let Some(ns) = Netns::new("prometheus") else {
        return;
    };
    ns.veth("srv0", "cli0");
    ns.ip("addr add 10.77.0.1/24 dev srv0");
    let dir = TempDir::new("prometheus-scrape");
    let config = dir.path().join("peregrine.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let scrape = dir.path().join("prometheus.yml");
    std::fs::write(
        &scrape,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {:?}\n\
             scrape_configs:\n  - job_name: peregrine\n    static_configs:\n      - targets: \
             ['127.0.0.1:9167']\n",
            rules_dir()
                .join("peregrine-rules.yml")
                .display()
                .to_string()
        ),
    )
    .unwrap();
    let mut server = start(&ns, &config);
    let child = ns
        .command(&prometheus.to_string_lossy())
        .arg(format!("--config.file={}", scrape.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg("--web.listen-address=127.0.0.1:9090")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut prometheus = Running::new(child);
    // Prometheus's own HTTP API: the uptime it scraped, and the rules it loaded.
    let deadline = Instant::now() + Duration::from_mins(1);
    let scraped = loop {
        let body = query(&ns, "/api/v1/query?query=peregrine_uptime_seconds");
        if let Some(body) = body.filter(|b| b.contains("\"job\":\"peregrine\"")) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape Peregrine within 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        scraped.contains("\"instance\":\"127.0.0.1:9167\""),
        "{scraped}"
    );
    let pools = query(
        &ns,
        "/api/v1/query?query=peregrine_pool_addresses%7Bstate%3D%22total%22%7D",
    )
    .unwrap();
    assert!(
        pools.contains("\"scope\":\"lan\"") && pools.contains("\"100\""),
        "{pools}"
    );
    let rules = query(&ns, "/api/v1/rules").unwrap();
    assert!(
        rules.contains("PeregrinePoolNearlyFull") && !rules.contains("\"health\":\"err\""),
        "{rules}"
    );
    assert!(prometheus.terminate(Duration::from_secs(10)).is_some());
    assert!(stop(&mut server).success());
}
