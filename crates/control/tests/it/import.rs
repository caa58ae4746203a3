//! `POST /v1/leases/import/{format}`: a Kea lease file into a running server. Leases in a pool
//! are installed and durable before the reply; an address in no pool is skipped and one that
//! a live client holds is a conflict, each reported with its line; unknown formats, files
//! nothing can be read from and a server without a lease journal are refused.

use std::net::Ipv4Addr;
use std::sync::Arc;

use peregrine_control::{Control, ControlSources, Importer, spawn};
use peregrine_store::{Durability, Journal, LeaseDir};
use peregrine_testkit::process::TempDir;

use crate::{
    LOOPBACK, Lab, config, engine, get, json, parse, raw, sample, send, status_of_oversized,
};

use peregrine_migrate::kea_csv::HEADER;

fn row(address: Ipv4Addr, mac_last: u8) -> String {
    format!("{address},02:aa:00:00:00:{mac_last:02x},,3600,4000000000,2,0,0,,0,")
}

/// A control plane over `engine` (and `lab`'s worker) whose imports and lease writes are
/// journaled in a new lease directory: the directory, the journal's writer (to stop before
/// reading it back) and the control plane.
fn journaled(
    engine: &Arc<peregrine_engine::Engine>,
    lab: &Lab,
    name: &str,
) -> (TempDir, LeaseDir, peregrine_store::JournalWriter, Control) {
    let tmp = TempDir::new(name);
    let dir = LeaseDir::open(tmp.path()).unwrap();
    dir.recover().unwrap();
    let (writer, mut sides) = Journal::start(&dir, Durability::Fsync, 1).unwrap();
    let importer = Arc::new(Importer::new(Arc::new(config()), sides.pop().unwrap()));
    let control = spawn(
        LOOPBACK,
        ControlSources {
            workers: vec![lab.stats.clone()],
            journal: Some(writer.stats()),
            importer: Some(importer),
            snapshot: Some(writer.snapshot_trigger()),
            ..crate::bare(engine.clone())
        },
    )
    .unwrap();
    (tmp, dir, writer, control)
}

#[test]
fn a_kea_lease_file_is_imported_into_the_running_server_durably() {
    let engine = engine();
    let mut lab = Lab::new(&engine);
    let held = lab.lease(1);
    let (tmp, dir, writer, control) = journaled(&engine, &lab, "control-import");

    let (a, b) = (Ipv4Addr::new(10, 201, 1, 50), Ipv4Addr::new(10, 201, 1, 51));
    let file = [
        HEADER.to_string(),
        row(a, 1),
        row(b, 2),
        row(Ipv4Addr::new(192, 0, 2, 77), 3),
        row(held, 4),
    ]
    .join("\n");
    let reply = send(
        &control,
        "POST",
        "/v1/leases/import/kea-csv",
        Some(file.as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let report = json(&reply);
    assert_eq!(report["imported"], 2, "{report}");
    assert_eq!(report["skipped"][0]["line"], 4, "{report}");
    assert!(
        report["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("in no configured pool")
    );
    assert_eq!(report["conflicts"][0]["line"], 5, "{report}");
    assert_eq!(report["skipped"].as_array().unwrap().len(), 1);
    assert_eq!(report["conflicts"].as_array().unwrap().len(), 1);

    // Live at once: the lease API shows them, and the client that held its address keeps it.
    let lease = json(&get(&control, &format!("/v1/leases/{a}")));
    assert_eq!(
        (lease["state"].as_str(), lease["mac"].as_str()),
        (Some("active"), Some("02:aa:00:00:00:01"))
    );
    let kept = json(&get(&control, &format!("/v1/leases/{held}")));
    assert_eq!(kept["mac"], "02:cc:00:00:00:01");
    // The journal's figures count the two records; nothing was sealed, so nothing compacted.
    let m = parse(&get(&control, "/metrics").body);
    assert_eq!(sample(&m, "peregrine_journal_records_total", &[]), 2);
    assert_eq!(sample(&m, "peregrine_journal_compactions_total", &[]), 0);
    assert_eq!(
        raw(&m, "peregrine_journal_last_compaction_seconds", &[]),
        "0"
    );

    // Refused: an unknown format.
    let unknown = send(&control, "POST", "/v1/leases/import/csv", Some(b"x"));
    assert_eq!(unknown.status, 404);
    assert!(
        json(&unknown)["error"]
            .as_str()
            .unwrap()
            .contains("kea-csv")
    );
    unreadable_files_and_zones(&control);
    control.shutdown().unwrap();

    // Durable: the journal holds both imported leases (the reply waited for that).
    writer.stop().unwrap();
    drop(dir);
    let dir = LeaseDir::open(tmp.path()).unwrap();
    let mut journaled: Vec<Ipv4Addr> = dir
        .recover()
        .unwrap()
        .events
        .iter()
        .map(|e| e.address)
        .collect();
    journaled.sort();
    assert_eq!(journaled, [a, b, Ipv4Addr::new(10, 201, 1, 60)]);
}

/// A file nothing can be read from as the format named is refused with nothing installed; a
/// Windows export's zoneless times are read in the zone `?timezone=` names.
fn unreadable_files_and_zones(control: &Control) {
    // Refused: a file nothing can be read from as the format named (a Windows export posted
    // as a Kea file); nothing is installed or journaled.
    let export = "<?xml version=\"1.0\"?>\n<DHCPServer><IPv4/></DHCPServer>\n";
    let wrong = send(
        control,
        "POST",
        "/v1/leases/import/kea-csv",
        Some(export.as_bytes()),
    );
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    let why = json(&wrong)["error"].as_str().unwrap().to_owned();
    assert!(why.contains("nothing was imported"), "{why}");
    let m = parse(&get(control, "/metrics").body);
    assert_eq!(sample(&m, "peregrine_journal_records_total", &[]), 2);

    // A Windows export's zoneless times are read in the zone named by ?timezone=.
    let export = "<DHCPServer><IPv4><Scopes><Scope><Leases><Lease>\
        <IPAddress>10.201.1.60</IPAddress><ClientId>02-aa-00-00-00-60</ClientId>\
        <AddressState>Active</AddressState><LeaseExpiryTime>2096-11-19T10:00:00</LeaseExpiryTime>\
        </Lease></Leases></Scope></Scopes></IPv4></DHCPServer>";
    let path = "/v1/leases/import/windows-xml?timezone=Europe%2FBerlin";
    let reply = send(control, "POST", path, Some(export.as_bytes()));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let report = json(&reply);
    assert_eq!(report["imported"], 1, "{report}");
    assert!(
        report["notes"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Europe/Berlin"),
        "{report}"
    );
    let bad = "/v1/leases/import/windows-xml?timezone=Mars%2FOlympus";
    let refused = send(control, "POST", bad, Some(export.as_bytes()));
    assert_eq!(refused.status, 400, "{}", refused.body);
}

/// A server that journals nothing refuses imports: they would not survive a restart.
#[test]
fn a_server_without_a_lease_journal_refuses_imports() {
    let file = format!("{HEADER}\n{}", row(Ipv4Addr::new(10, 201, 1, 50), 1));
    let without = spawn(
        LOOPBACK,
        ControlSources {
            ..crate::bare(engine())
        },
    )
    .unwrap();
    let refused = send(
        &without,
        "POST",
        "/v1/leases/import/kea-csv",
        Some(file.as_bytes()),
    );
    assert_eq!(refused.status, 409);
    without.shutdown().unwrap();
}

#[test]
fn an_operator_puts_and_deletes_a_lease_through_the_journal() {
    let engine = engine();
    let mut lab = Lab::new(&engine);
    let held = lab.lease(1);
    let (tmp, dir, writer, control) = journaled(&engine, &lab, "control-lease-write");
    let a = Ipv4Addr::new(10, 201, 1, 60);
    let body = br#"{"mac": "02:aa:00:00:00:60", "hostname": "cpe-60", "valid_lifetime": 7200}"#;
    let put = send(&control, "PUT", &format!("/v1/leases/{a}"), Some(body));
    assert_eq!(put.status, 200, "{}", put.body);
    let lease = json(&put);
    assert_eq!(
        (lease["state"].as_str(), lease["mac"].as_str()),
        (Some("active"), Some("02:aa:00:00:00:60"))
    );
    assert_eq!(lease["hostname"], "cpe-60", "{lease}");
    // Updated: the same client, a longer lease.
    let longer = br#"{"mac": "02:aa:00:00:00:60", "valid_lifetime": 86400}"#;
    let again = send(&control, "PUT", &format!("/v1/leases/{a}"), Some(longer));
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(json(&again)["expires"].as_u64() > lease["expires"].as_u64());
    // Another client's address: 409, and it keeps it.
    let other = br#"{"mac": "02:aa:00:00:00:61", "valid_lifetime": 3600}"#;
    let taken = send(&control, "PUT", &format!("/v1/leases/{held}"), Some(other));
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert_eq!(
        json(&get(&control, &format!("/v1/leases/{held}")))["mac"],
        "02:cc:00:00:00:01"
    );
    bad_lease_writes_change_nothing(&control);
    // Deleted: released now, and nothing left to delete.
    let deleted = send(&control, "DELETE", &format!("/v1/leases/{a}"), None);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(json(&deleted)["state"], "released");
    assert_eq!(
        send(&control, "DELETE", &format!("/v1/leases/{a}"), None).status,
        404
    );
    control.shutdown().unwrap();

    // Every change was durable before its answer: put, put again, delete.
    writer.stop().unwrap();
    drop(dir);
    let dir = LeaseDir::open(tmp.path()).unwrap();
    let states: Vec<&str> = dir
        .recover()
        .unwrap()
        .events
        .iter()
        .filter(|e| e.address == a)
        .map(|e| e.binding.state.as_str())
        .collect();
    assert_eq!(states, ["active", "active", "released"]);
}

/// Bad `PUT /v1/leases/{ip}` requests say what is wrong, naming the field, and change nothing.
fn bad_lease_writes_change_nothing(control: &Control) {
    let cases: [(&str, &[u8], u16, &str); 8] = [
        (
            "10.201.1.62",
            br#"{"mac": "zz", "valid_lifetime": 60}"#,
            400,
            "mac",
        ),
        (
            "10.201.1.62",
            br#"{"mac": "02:aa:00:00:00:62"}"#,
            400,
            "valid_lifetime",
        ),
        (
            "10.201.1.62",
            br#"{"mac": "02:aa:00:00:00:62", "valid_lifetime": "1h"}"#,
            400,
            "u32",
        ),
        (
            "10.201.1.62",
            br#"{"mac": "02:aa:00:00:00:62", "colour": "red"}"#,
            400,
            "colour",
        ),
        (
            "10.201.1.62",
            br#"{"mac": "02:aa:00:00:00:62", "valid_li"#,
            400,
            "EOF",
        ),
        (
            "10.201.1.62",
            br#"{"mac": "02:aa:00:00:00:62", "client_id": "xyz", "valid_lifetime": 60}"#,
            400,
            "client-id",
        ),
        (
            "10.201.1.999",
            br#"{"mac": "02:aa:00:00:00:62", "valid_lifetime": 60}"#,
            400,
            "IPv4",
        ),
        (
            "192.0.2.9",
            br#"{"mac": "02:aa:00:00:00:62", "valid_lifetime": 60}"#,
            422,
            "pool",
        ),
    ];
    for (ip, body, status, names) in cases {
        let r = send(control, "PUT", &format!("/v1/leases/{ip}"), Some(body));
        assert_eq!(r.status, status, "{ip} {}", r.body);
        assert!(
            r.body.contains(names),
            "{ip}: {} does not name {names}",
            r.body
        );
    }
    let huge = 3 << 20;
    let status = status_of_oversized(control, "PUT", "/v1/leases/10.201.1.62", huge);
    assert_eq!(status, 413, "a {huge}-byte lease");
    let untouched = json(&get(control, "/v1/leases/10.201.1.62"));
    assert_eq!(untouched["state"], "free", "{untouched}");
}
