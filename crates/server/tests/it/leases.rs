//! `peregrine leases import` and `export` as an operator runs them: bad lines reported with
//! their line numbers and exit status 3, conflicts reported and left alone, `--dry-run`
//! writing nothing, a running server's directory refused, and export reading back what
//! import wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use peregrine_engine::BindingState;
use peregrine_store::LeaseDir;

/// A temporary directory with a configuration whose lease directory is inside it.
struct Setup {
    root: PathBuf,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let root = std::env::temp_dir().join(format!(
            "peregrine-leases-cli-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let config = format!(
            r#"
[[scope]]
name = "lan"
subnet = "10.0.0.0/24"

[[scope.pool]]
range = "10.0.0.10 - 10.0.0.200"

[leases]
directory = {:?}
"#,
            root.join("leases").display().to_string()
        );
        std::fs::write(root.join("config.toml"), config).unwrap();
        Setup { root }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.root.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn journal(&self) -> PathBuf {
        self.root.join("leases").join("journal")
    }

    fn peregrine(&self, args: &[&str], input: Option<&Path>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_peregrine"));
        c.arg("leases").args(args);
        c.arg("--config").arg(self.root.join("config.toml"));
        if let Some(i) = input {
            c.arg(i);
        }
        c.output().unwrap()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

const HEADER: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context";

/// What a command printed, standard output then standard error.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_bad_line_is_reported_with_its_number_and_the_rest_is_imported() {
    let s = Setup::new("bad-line");
    let input = s.file(
        "kea.csv",
        &format!(
            "{HEADER}\n10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,,0,\n\
             10.0.0.11,zz:00,,3600,1800000000,1,0,0,,0,\n\
             10.0.0.12,02:00:00:00:00:03,,3600,1800000000,1,0,0,,0,\n"
        ),
    );
    let out = s.peregrine(&["import", "--format", "kea-csv"], Some(&input));
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("imported 2 leases"), "{said}");
    assert!(
        said.contains("skipped 1\n  line 3: hwaddr \"zz:00\""),
        "{said}"
    );
    let journal = LeaseDir::open(&s.root.join("leases")).unwrap();
    assert_eq!(journal.recover().unwrap().events.len(), 2);
    drop(journal);

    // Everything imports: exit status 0. (The same leases again are the same clients'.)
    let good = s.file(
        "good.csv",
        &format!("{HEADER}\n10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,,0,\n"),
    );
    let out = s.peregrine(&["import", "--format", "kea-csv"], Some(&good));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_file_of_another_format_is_an_error_and_writes_nothing() {
    let s = Setup::new("wrong-format");
    // A Kea lease file given as a Windows export, and a UTF-16 export given as a Kea file.
    let kea = s.file(
        "kea.csv",
        &format!("{HEADER}\n10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,,0,\n"),
    );
    let out = s.peregrine(&["import", "--format", "windows-xml"], Some(&kea));
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("nothing could be read as windows-xml"),
        "{said}"
    );
    let export = "<?xml version=\"1.0\" encoding=\"utf-16\"?>\n<DHCPServer/>\n";
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(export.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let path = s.root.join("export.xml");
    std::fs::write(&path, utf16).unwrap();
    let out = s.peregrine(&["import", "--format", "kea-csv"], Some(&path));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!s.journal().exists() || std::fs::read(s.journal()).unwrap().is_empty());
}

#[test]
fn a_conflict_is_reported_and_not_overwritten() {
    let s = Setup::new("conflict");
    let first = s.file(
        "first.csv",
        &format!("{HEADER}\n10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,,0,\n"),
    );
    let out = s.peregrine(&["import", "--format", "kea-csv"], Some(&first));
    assert!(out.status.success(), "{}", text(&out));
    let other = s.file(
        "dhcpd.leases",
        "lease 10.0.0.10 {\n  starts epoch 1799996400;\n  ends epoch 1800000000;\n  \
         binding state active;\n  hardware ethernet 02:00:00:00:00:99;\n}\n",
    );
    let before = std::fs::read(s.journal()).unwrap();
    let out = s.peregrine(&["import", "--format", "dhcpd"], Some(&other));
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("conflicts 1\n  line 1: 10.0.0.10 is held by another client"),
        "{said}"
    );
    assert!(
        said.contains("02:00:00:00:00:01"),
        "names the holder: {said}"
    );
    assert_eq!(
        std::fs::read(s.journal()).unwrap(),
        before,
        "nothing appended"
    );
}

#[test]
fn dry_run_writes_nothing() {
    let s = Setup::new("dry-run");
    let input = s.file(
        "kea.csv",
        &format!("{HEADER}\n10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,,0,\n"),
    );
    let out = s.peregrine(
        &["import", "--format", "kea-csv", "--dry-run"],
        Some(&input),
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("would import 1 leases"), "{said}");
    assert!(
        !s.root.join("leases").exists(),
        "a dry run does not even create the lease directory"
    );
    // With a journal there, a dry run leaves it as it was.
    let out = s.peregrine(&["import", "--format", "kea-csv"], Some(&input));
    assert!(out.status.success(), "{}", text(&out));
    let before = std::fs::read(s.journal()).unwrap();
    let other = s.file(
        "more.csv",
        &format!("{HEADER}\n10.0.0.11,02:00:00:00:00:02,,3600,1800000000,1,0,0,,0,\n"),
    );
    let out = s.peregrine(
        &["import", "--format", "kea-csv", "--dry-run"],
        Some(&other),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(s.journal()).unwrap(), before);
}

#[test]
fn a_directory_in_use_is_refused() {
    let s = Setup::new("locked");
    let input = s.file(
        "kea.csv",
        &format!("{HEADER}\n10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,,0,\n"),
    );
    // This process holds the lock, as a running server would.
    let held = LeaseDir::open(&s.root.join("leases")).unwrap();
    for args in [
        &["import", "--format", "kea-csv"][..],
        &["export", "--format", "json"][..],
    ] {
        let out = s.peregrine(args, (args[0] == "import").then_some(&input));
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("in use by another process"), "{said}");
    }
    drop(held);
}

#[test]
fn export_writes_back_what_import_wrote() {
    let s = Setup::new("export");
    let rows = "10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,cpe-10,0,\n\
                10.0.0.11,02:00:00:00:00:02,01:02:00:00:00:00:02,600,1800000000,1,0,0,,1,\n";
    let input = s.file("kea.csv", &format!("{HEADER}\n{rows}"));
    let out = s.peregrine(&["import", "--format", "kea-csv"], Some(&input));
    assert!(out.status.success(), "{}", text(&out));
    let csv = s.root.join("out.csv");
    let out = s.peregrine(
        &[
            "export",
            "--format",
            "kea-csv",
            "--output",
            csv.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let written = std::fs::read_to_string(&csv).unwrap();
    let columns: Vec<String> = written
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect();
    // A client identifier that is 01 + the client's MAC names the client by its MAC (so that it
    // is found with or without option 61): it is written back as the MAC alone, which Kea
    // matches either way too.
    assert_eq!(
        columns,
        [
            HEADER.rsplit_once(',').unwrap().0,
            // The host name the client sent travels with its lease.
            "10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,cpe-10,0",
            "10.0.0.11,02:00:00:00:00:02,,600,1800000000,1,0,0,,1",
        ]
    );
    let out = s.peregrine(&["export", "--format", "json"], None);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[1]["state"], "abandoned");
    assert_eq!(json[1]["scope"], "lan");
}

/// Importing the lease files of several servers merges them: one lease per client and scope,
/// the later by last transaction time; the other is reported with its line, and `--dry-run`
/// previews the merge. (A client that held 10.0.0.10 at a Kea server and later 10.0.0.20 at an
/// ISC server was left with both active.)
#[test]
fn files_of_several_servers_merge_to_one_lease_per_client() {
    let s = Setup::new("merge");
    // Kea: the client's lease began at 1 799 996 400 (expire minus valid lifetime).
    let kea = s.file(
        "kea.csv",
        &format!("{HEADER}\n10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,,0,\n"),
    );
    // ISC: the same client, a day later, on another address.
    let isc = s.file(
        "dhcpd.leases",
        "lease 10.0.0.20 {\n  starts 6 2027/01/16 00:00:00;\n  ends 6 2027/01/16 01:00:00;\n  \
         cltt 6 2027/01/16 00:00:00;\n  binding state active;\n  \
         hardware ethernet 02:00:00:00:00:01;\n}\n",
    );
    let out = s.peregrine(&["import", "--format", "kea-csv"], Some(&kea));
    assert!(out.status.success(), "{}", text(&out));
    let preview = s.peregrine(&["import", "--format", "dhcpd", "--dry-run"], Some(&isc));
    let out = s.peregrine(&["import", "--format", "dhcpd"], Some(&isc));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("merged 1") && said.contains("line 1: its client's older lease on 10.0.0.10"),
        "{said}"
    );
    // The preview said the same, and wrote nothing.
    let previewed = text(&preview);
    assert!(
        previewed.contains("line 1: its client's older lease on 10.0.0.10"),
        "{previewed}"
    );
    // The Kea file again: its lease is the older one now, and is not imported.
    let out = s.peregrine(&["import", "--format", "kea-csv"], Some(&kea));
    let said = text(&out);
    assert!(
        said.contains("line 2: 10.0.0.10: not imported, its client holds 10.0.0.20"),
        "{said}"
    );
    let out = s.peregrine(&["export", "--format", "json"], None);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let active: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "active")
        .map(|l| l["address"].as_str().unwrap())
        .collect();
    assert_eq!(active, ["10.0.0.20"]);
}

#[test]
fn verify_reports_damage_with_exit_status_3_and_recover_keeps_every_intact_record() {
    let s = Setup::new("verify");
    let input = s.file(
        "kea.csv",
        &format!(
            "{HEADER}\n10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,,0,\n\
             10.0.0.11,02:00:00:00:00:02,,3600,1800000000,1,0,0,,0,\n\
             10.0.0.12,02:00:00:00:00:03,,3600,1800000000,1,0,0,,0,\n"
        ),
    );
    assert!(
        s.peregrine(&["import", "--format", "kea-csv"], Some(&input))
            .status
            .success()
    );
    let dir = s.root.join("leases");
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_peregrine"))
            .args(["leases", "verify", "--dir"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    let out = verify();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("3 records intact"), "{}", text(&out));
    // One byte of the second record flipped.
    let mut bytes = std::fs::read(s.journal()).unwrap();
    let at = peregrine_store::record::HEADER_LEN + peregrine_store::record::RECORD_LEN + 9;
    bytes[at] ^= 1;
    std::fs::write(s.journal(), &bytes).unwrap();
    let out = verify();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("2 records intact") && said.contains("damaged: "),
        "{said}"
    );
    assert!(said.contains("leases recover"), "{said}");
    assert_eq!(
        std::fs::read(s.journal()).unwrap(),
        bytes,
        "verify changed the journal"
    );

    // Repaired: the records on both sides of the damage kept, the damaged one set aside.
    let out = s.peregrine(&["recover"], None);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("kept 2 intact records"), "{said}");
    // Held back: every address no record after the damage settles and a new client could have
    // been given (.10 is leased, .12's record follows the damage), the lost .11 among them.
    assert!(said.contains("held back 189 addresses"), "{said}");
    assert!(said.contains("lan: 10.0.0.11\n"), "{said}");
    assert!(said.contains("lan: 10.0.0.13-10.0.0.200\n"), "{said}");
    let out = verify();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let journal = LeaseDir::open(&dir).unwrap();
    let events = journal.recover().unwrap().events;
    let kept: Vec<std::net::Ipv4Addr> = events
        .iter()
        .filter(|e| e.binding.state != BindingState::HeldBack)
        .map(|e| e.address)
        .collect();
    assert_eq!(
        kept,
        [[10, 0, 0, 10], [10, 0, 0, 12]].map(std::net::Ipv4Addr::from)
    );
    let held = events
        .iter()
        .filter(|e| e.binding.state == BindingState::HeldBack)
        .count();
    assert_eq!(held, 189);
    drop(journal);
    // Repaired once: a second run finds nothing to do, and holds nothing more back.
    let out = s.peregrine(&["recover"], None);
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));
}

#[test]
fn a_repaired_pair_member_sets_its_failover_state_aside_to_recover_from_its_partner() {
    let s = Setup::new("recover-pair");
    let config = s.root.join("config.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{base}\n[failover]\nrole = \"primary\"\nlocal = \"10.0.0.1\"\npeer = \"10.0.0.2\"\n"
        ),
    )
    .unwrap();
    let input = s.file(
        "kea.csv",
        &format!(
            "{HEADER}\n10.0.0.10,02:00:00:00:00:01,,3600,1800000000,1,0,0,,0,\n\
             10.0.0.11,02:00:00:00:00:02,,3600,1800000000,1,0,0,,0,\n"
        ),
    );
    let out = s.peregrine(&["import", "--format", "kea-csv"], Some(&input));
    assert!(out.status.success(), "{}", text(&out));
    // In NORMAL with its partner when the first record was damaged.
    let state = s.root.join("leases/failover.state");
    std::fs::write(&state, "2 1800000000 60\n").unwrap();
    let mut bytes = std::fs::read(s.journal()).unwrap();
    bytes[peregrine_store::record::HEADER_LEN + 9] ^= 1;
    std::fs::write(s.journal(), &bytes).unwrap();

    let out = s.peregrine(&["recover"], None);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("starts in RECOVER"), "{said}");
    // Set aside, not deleted: the next start finds no state and asks the partner for all.
    assert!(!state.exists());
    let aside = std::fs::read_dir(s.root.join("leases"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("failover.state.before-repair-"))
        .count();
    assert_eq!(aside, 1);
}
