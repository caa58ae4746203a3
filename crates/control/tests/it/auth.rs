//! The admin API's bearer token: every route refused without it and with a wrong one, served
//! with it; reads open on loopback unless asked otherwise; refusals counted in `/metrics`. And
//! the API over TLS with the certificate it is given.

use std::time::Duration;

use peregrine_control::{AdminAccess, Control, ControlSources, spawn};

use crate::{LOOPBACK, engine, parse};

const TOKEN: &str = "3f1c2a9b8e7d6c5b4a39281706f5e4d3";

/// Every route, with a method and a path it answers.
const ROUTES: [(&str, &str); 17] = [
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/leases"),
    ("GET", "/v1/leases/export/kea-csv"),
    ("GET", "/v1/pools"),
    ("GET", "/v1/leases/10.201.0.10"),
    ("PUT", "/v1/leases/10.201.0.10"),
    ("DELETE", "/v1/leases/10.201.0.10"),
    ("POST", "/v1/leases/import/kea-csv"),
    ("GET", "/v1/scopes"),
    ("POST", "/v1/scopes/relayed/activate"),
    ("POST", "/v1/scopes/relayed/deactivate"),
    ("GET", "/v1/failover"),
    ("POST", "/v1/failover/partner-down"),
    ("POST", "/v1/config/reload"),
    ("POST", "/v1/journal/snapshot"),
];

/// A control plane with [`TOKEN`], needed for reads too if `reads_need_token`, served over
/// `tls` if given.
fn serve_tls(reads_need_token: bool, tls: Option<peregrine_control::AdminTls>) -> Control {
    let access = AdminAccess {
        token: Some(TOKEN.to_owned()),
        reads_need_token,
        tls,
    };
    spawn(
        LOOPBACK,
        ControlSources {
            access,
            ..crate::bare(engine())
        },
    )
    .unwrap()
}

fn serve(reads_need_token: bool) -> Control {
    serve_tls(reads_need_token, None)
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
        ("PUT", Some(a)) => agent.put(url).header("Authorization", a).send_empty(),
        ("PUT", None) => agent.put(url).send_empty(),
        ("DELETE", Some(a)) => agent.delete(url).header("Authorization", a).call(),
        ("DELETE", None) => agent.delete(url).call(),
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
    assert_eq!(refused, 48);
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
        ("32".into(), "16".into())
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

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key, as PEM files in a
/// fresh directory (the key mode 600); and the certificate, for a client to trust.
fn certificate(name: &str) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("peregrine-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join("admin.crt"), dir.join("admin.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key, made.cert.der().to_vec())
}

/// `GET path` over TLS to `control`, trusting `trusted` only, with the admin token: the
/// status line and the body.
fn get_over_tls(control: &Control, trusted: &[u8], path: &str) -> (String, String) {
    use std::io::{Read as _, Write as _};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.to_vec().into()).unwrap();
    #[expect(deprecated, reason = "the provider the server uses")]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = "localhost".try_into().unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(control.local_addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    // The server closes without close_notify once it has answered: what came is the reply.
    let _ = tls.read_to_string(&mut reply);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[test]
fn the_api_is_served_over_tls_with_the_configured_certificate() {
    let (cert, key, trusted) = certificate("serve");
    let tls = peregrine_control::AdminTls::load(&cert, &key).unwrap();
    let control = serve_tls(true, Some(tls));
    let (status, body) = get_over_tls(&control, &trusted, "/v1/scopes");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains("\"relayed\""), "{body}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    assert!(
        agent
            .get(format!("http://{}/healthz", control.local_addr()))
            .call()
            .is_err()
    );
}

#[test]
fn a_key_others_may_read_or_that_does_not_match_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (cert, key, _) = certificate("refused");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = peregrine_control::AdminTls::load(&cert, &key).unwrap_err();
    assert!(e.contains("(mode 644): chmod 600"), "{e}");
    let (_, other_key, _) = certificate("other");
    let e = peregrine_control::AdminTls::load(&cert, &other_key).unwrap_err();
    assert!(e.contains("the key does not serve the certificate"), "{e}");
    let e = peregrine_control::AdminTls::load(&key, &other_key).unwrap_err();
    assert!(e.contains("no PEM certificate"), "{e}");
}

/// Every route the router has, as (method, path), read from the router's source.
fn routes_in_source() -> std::collections::BTreeSet<(String, String)> {
    let source = include_str!("../../src/api.rs");
    let mut routes = std::collections::BTreeSet::new();
    for (at, _) in source.match_indices(".route(") {
        // The path is the first string literal after `.route(`, on its line or the next; its
        // methods are the method routers called before the next route.
        let rest = source[at + ".route(".len()..].trim_start();
        let rest = rest.strip_prefix('"').unwrap();
        let path = &rest[..rest.find('"').unwrap()];
        let end = rest.find(".route(").unwrap_or(rest.len());
        let call = &rest[..end];
        let mut found = false;
        for method in ["get", "post", "put", "delete"] {
            let named = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                !call[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            });
            if named {
                routes.insert((method.to_owned(), path.to_owned()));
                found = true;
            }
        }
        assert!(found, "route {path} with no method");
    }
    routes
}

#[test]
fn the_openapi_document_is_served_and_names_every_route() {
    let control = serve(false);
    let reply = crate::get(&control, "/v1/openapi.json");
    assert_eq!(reply.status, 200);
    let doc = crate::json(&reply);
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let routes = routes_in_source();
    let listed: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| {
            (
                m.to_lowercase(),
                p.replace("10.201.0.10", "{ip}")
                    .replace("kea-csv", "{format}")
                    .replace("relayed", "{name}"),
            )
        })
        .collect();
    assert_eq!(listed, routes, "the token tests miss a route");
    assert_eq!(documented, routes);
}
