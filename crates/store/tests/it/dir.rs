//! The lease directory: the key secret is created once and kept; one server per directory.

use std::os::unix::fs::PermissionsExt;

use peregrine_store::{LeaseDir, StoreError};

use crate::support::TempDir;

#[test]
fn the_secret_is_created_once_private_and_kept() {
    let tmp = TempDir::new("secret");
    let first = LeaseDir::open(&tmp.0).unwrap();
    let secret = first.key_secret();
    let mode = std::fs::metadata(tmp.0.join("secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(first);
    assert_eq!(LeaseDir::open(&tmp.0).unwrap().key_secret(), secret);
    assert_ne!(
        LeaseDir::open(&TempDir::new("other").0)
            .unwrap()
            .key_secret(),
        secret,
        "each directory gets its own"
    );
}

#[test]
fn a_damaged_secret_is_refused_not_replaced() {
    let tmp = TempDir::new("bad-secret");
    drop(LeaseDir::open(&tmp.0).unwrap());
    std::fs::write(tmp.0.join("secret"), "xyz\n").unwrap();
    let err = LeaseDir::open(&tmp.0).unwrap_err();
    assert!(err.to_string().contains("secret"), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.0.join("secret")).unwrap(),
        "xyz\n"
    );
}

#[test]
fn a_directory_has_one_owner_and_the_error_says_who() {
    let tmp = TempDir::new("lock");
    let first = LeaseDir::open(&tmp.0).unwrap();
    let err = LeaseDir::open(&tmp.0).unwrap_err();
    let StoreError::Locked { dir, holder } = &err else {
        panic!("expected Locked, got {err}")
    };
    assert_eq!((dir, *holder), (&tmp.0, Some(std::process::id())));
    let text = err.to_string();
    assert!(
        text.contains(&tmp.0.display().to_string())
            && text.contains("in use by another process")
            && text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    drop(first);
    LeaseDir::open(&tmp.0).unwrap();
}

#[test]
fn a_running_writer_keeps_the_directory_locked() {
    let tmp = TempDir::new("writer-lock");
    let dir = LeaseDir::open(&tmp.0).unwrap();
    dir.recover().unwrap();
    let (writer, _sides) =
        peregrine_store::Journal::start(&dir, peregrine_store::Durability::Fsync, 1).unwrap();
    drop(dir);
    assert!(matches!(
        LeaseDir::open(&tmp.0),
        Err(StoreError::Locked { .. })
    ));
    writer.stop().unwrap();
    LeaseDir::open(&tmp.0).unwrap();
}
