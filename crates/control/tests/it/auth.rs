//! The admin API's bearer token: every route refused without it and with a wrong one, served
//! with it; reads open on loopback unless asked otherwise; refusals counted in `/metrics`.

use std::time::{Duration, Instant};

use peregrine_control::{AdminAccess, Control, ControlSources, spawn};

use crate::{LOOPBACK, engine, parse};

const TOKEN: &str = "3f1c2a9b8e7d6c5b4a39281706f5e4d3";

/// Every route, with a method and a path it answers.
const ROUTES: [(&str, &str); 10] = [
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/v1/pools"),
    ("GET", "/v1/leases/10.201.0.10"),
    ("POST", "/v1/leases/import/kea-csv"),
    ("GET", "/v1/scopes"),
    ("POST", "/v1/scopes/relayed/activate"),
    ("POST", "/v1/scopes/relayed/deactivate"),
    ("GET", "/v1/failover"),
    ("POST", "/v1/failover/partner-down"),
];

fn serve(reads_need_token: bool) -> Control {
    spawn(
        LOOPBACK,
        ControlSources {
            engine: engine(),
            workers: vec![],
            started: Instant::now(),
            journal: None,
            importer: None,
            failover: None,
            ports: None,
            access: AdminAccess {
                token: Some(TOKEN.to_owned()),
                reads_need_token,
            },
        },
    )
    .unwrap()
}

/// The status of `method` `path` with `authorization` (an `Authorization` header value).
fn status(control: &Control, method: &str, path: &str, authorization: Option<&str>) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let url = format!("http://{}{path}", control.local_addr());
    let reply = match (method, authorization) {
        ("POST", Some(a)) => agent.post(url).header("Authorization", a).send_empty(),
        ("POST", None) => agent.post(url).send_empty(),
        (_, Some(a)) => agent.get(url).header("Authorization", a).call(),
        (_, None) => agent.get(url).call(),
    };
    reply.unwrap().status().as_u16()
}

#[test]
fn every_route_needs_the_token_where_reads_need_it() {
    let control = serve(true);
    let good = format!("Bearer {TOKEN}");
    let wrong = format!("Bearer {}", TOKEN.replace('3', "4"));
    let mut refused = 0;
    for (method, path) in ROUTES {
        let open = path == "/healthz";
        for authorization in [None, Some(wrong.as_str()), Some("Basic dXNlcjpwYXNz")] {
            let got = status(&control, method, path, authorization);
            if open {
                assert_eq!(got, 200, "{method} {path} with {authorization:?}");
            } else {
                assert_eq!(got, 401, "{method} {path} with {authorization:?}");
                refused += 1;
            }
        }
        // With the token, whatever the route answers, it is not a refusal.
        let got = status(&control, method, path, Some(&good));
        assert_ne!(got, 401, "{method} {path} with the token");
        let lower = format!("bearer {TOKEN}");
        assert_ne!(status(&control, method, path, Some(&lower)), 401);
    }
    assert_eq!(refused, 27);
    let text = crate::get(&control, "/healthz").body;
    assert_eq!(text, "ok");
    let metrics = {
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        let url = format!("http://{}/metrics", control.local_addr());
        agent
            .get(url)
            .header("Authorization", &good)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let samples = parse(&metrics);
    let failures = |reason: &str| {
        samples[&(
            "peregrine_admin_auth_failures_total".to_owned(),
            [("reason".to_owned(), reason.to_owned())].into(),
        )]
            .clone()
    };
    // No header and the Basic scheme count as missing; the wrong bearer token as wrong.
    assert_eq!(
        (failures("missing"), failures("wrong")),
        ("18".into(), "9".into())
    );
}

#[test]
fn on_loopback_reads_are_open_and_writes_need_the_token() {
    let control = serve(false);
    for (method, path) in ROUTES {
        let got = status(&control, method, path, None);
        if method == "GET" {
            assert_ne!(got, 401, "{method} {path}");
        } else {
            assert_eq!(got, 401, "{method} {path}");
        }
    }
    let good = format!("Bearer {TOKEN}");
    assert_eq!(
        status(
            &control,
            "POST",
            "/v1/scopes/relayed/deactivate",
            Some(&good)
        ),
        200
    );
}
