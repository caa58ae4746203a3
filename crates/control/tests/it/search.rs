//! `GET /v1/leases`: leases found by what is known of the subscriber, a page at a time; bad
//! queries refused with the field named.

use serde_json::Value;

use crate::{get, json, serve};

fn addresses(page: &Value) -> Vec<String> {
    page["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["address"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn leases_are_found_by_subscriber_and_paged() {
    let (control, leased, _) = serve(None);
    let mut all: Vec<String> = leased.iter().map(ToString::to_string).collect();
    all.sort_by_key(|a| a.parse::<std::net::Ipv4Addr>().unwrap());

    // Every lease with a client (the offered one too), by address.
    let page = json(&get(&control, "/v1/leases"));
    assert_eq!(page["leases"].as_array().unwrap().len(), 3, "{page}");
    assert!(page.get("next").is_none(), "{page}");

    let by = |query: &str| addresses(&json(&get(&control, &format!("/v1/leases?{query}"))));
    assert_eq!(by("mac=02:CC:00:00:00:01"), [leased[0].to_string()]);
    assert_eq!(by("mac=02-cc-00-00-00-02"), [leased[1].to_string()]);
    assert_eq!(by("circuit-id=olt-1%2F1&scope=relayed").len(), 2);
    assert!(by("circuit-id=olt-9%2F9").is_empty());
    assert!(by("scope=direct").is_empty());
    assert!(by("client-id=01aabbccddeeff").is_empty());

    // A page of one, then the next after it.
    let first = json(&get(&control, "/v1/leases?limit=1&mac=02:cc:00:00:00:01"));
    assert!(first.get("next").is_none(), "{first}");
    let one = json(&get(&control, "/v1/leases?limit=1&circuit-id=olt-1%2F1"));
    let next = one["next"].as_str().unwrap().to_owned();
    assert_eq!(addresses(&one), std::slice::from_ref(&next));
    let rest = json(&get(
        &control,
        &format!("/v1/leases?limit=1&circuit-id=olt-1%2F1&after={next}"),
    ));
    assert_eq!(addresses(&rest).len(), 1);
    assert!(rest.get("next").is_none(), "{rest}");
    let mut both = addresses(&one);
    both.extend(addresses(&rest));
    assert_eq!(both, all);

    // Refused, naming the field, changing nothing.
    for (query, status, field) in [
        ("mac=02:cc:00", 400, "mac:"),
        ("limit=0", 400, "limit:"),
        ("limit=20000", 400, "limit:"),
        ("after=10.201.0", 400, "after:"),
        ("client-id=xyz", 400, "client-id:"),
        ("colour=blue", 400, "unknown field \"colour\""),
        ("scope=nosuch", 404, "scope:"),
    ] {
        let reply = get(&control, &format!("/v1/leases?{query}"));
        assert_eq!(reply.status, status, "{query}");
        let error = json(&reply)["error"].as_str().unwrap().to_owned();
        assert!(
            error.starts_with(field) || error.contains(field),
            "{query}: {error}"
        );
    }
    control.shutdown().unwrap();
}

#[test]
fn the_live_lease_set_is_exported() {
    let (control, leased, _) = serve(None);
    let csv = get(&control, "/v1/leases/export/kea-csv");
    assert_eq!((csv.status, csv.content_type.as_str()), (200, "text/csv"));
    let mut lines = csv.body.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("address,hwaddr,client_id"),
        "{}",
        csv.body
    );
    for address in &leased {
        assert!(
            csv.body
                .lines()
                .any(|l| l.starts_with(&format!("{address},02:cc:00:00:00:0"))),
            "{address} not in\n{}",
            csv.body
        );
    }
    let all = json(&get(&control, "/v1/leases/export/json"));
    let exported: Vec<(&str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["address"].as_str().unwrap(), l["scope"].as_str().unwrap()))
        .collect();
    for address in &leased {
        assert!(
            exported.contains(&(address.to_string().as_str(), "relayed")),
            "{all}"
        );
    }
    assert_eq!(get(&control, "/v1/leases/export/xml").status, 404);
    control.shutdown().unwrap();
}
