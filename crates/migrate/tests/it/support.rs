//! An engine over the fixtures' addresses.

use std::net::Ipv4Addr;

use peregrine_config::model::Config;
use peregrine_engine::{Engine, EngineOptions, KeySecret};

/// Scope "lan" 10.0.0.0/24 with pool 10.0.0.10-10.0.0.200, matching client identifiers
/// unless `match_client_id` is false.
pub(crate) fn config(match_client_id: bool) -> Config {
    let text = format!(
        r#"
[[scope]]
name = "lan"
subnet = "10.0.0.0/24"
match-client-id = {match_client_id}

[[scope.pool]]
range = "10.0.0.10 - 10.0.0.200"
"#
    );
    peregrine_config::parse(&text, "test.toml").unwrap()
}

pub(crate) fn engine(config: &Config) -> Engine {
    let options = EngineOptions {
        key_secret: KeySecret([3; 16]),
        ..EngineOptions::default()
    };
    Engine::new(config, options).unwrap()
}

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Address 10.0.0.`last`, in the fixtures' scope.
pub(crate) fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

/// Each imported record as (source line, address, state).
pub(crate) fn rows(
    got: &peregrine_migrate::Import,
) -> Vec<(usize, Ipv4Addr, peregrine_migrate::LeaseState)> {
    got.records
        .iter()
        .map(|r| (r.line, r.lease.address, r.lease.state))
        .collect()
}
