//! Record encoding: every binding event round-trips bit for bit; damaged or unknown records
//! are refused, never guessed.

use std::net::Ipv4Addr;

use peregrine_engine::{Binding, BindingEvent, BindingState, ClientKey, ScopeId};
use peregrine_store::record::{FormatError, PAYLOAD_LEN, RECORD_LEN, decode, encode};
use proptest::prelude::*;

use crate::support::event;

const STATES: [BindingState; 9] = [
    BindingState::Free,
    BindingState::Offered,
    BindingState::Active,
    BindingState::Expired,
    BindingState::Released,
    BindingState::Abandoned,
    BindingState::Reserved,
    BindingState::Reset,
    BindingState::Backup,
];

/// Every client key the engine can produce: none, inline hardware or client id (0 to 30
/// bytes), or a 17-byte digest.
fn client() -> impl Strategy<Value = Option<ClientKey>> {
    prop_oneof![
        Just(None),
        (0u8..2, proptest::collection::vec(any::<u8>(), 0..=30))
            .prop_map(|(kind, bytes)| ClientKey::from_raw(kind, &bytes)),
        proptest::collection::vec(any::<u8>(), 17).prop_map(|bytes| ClientKey::from_raw(2, &bytes)),
    ]
}

prop_compose! {
    fn binding_event()(
        scope in any::<u16>(),
        address in any::<u32>(),
        state in proptest::sample::select(&STATES[..]),
        client in client(),
        mac in any::<[u8; 6]>(),
        expires in any::<u64>(),
        cltt in any::<u64>(),
        granted in any::<u32>(),
        partner_sent in any::<u64>(),
        partner_acked in any::<u64>(),
        classes in any::<u32>(),
        version in any::<u32>(),
    ) -> BindingEvent {
        BindingEvent {
            scope: ScopeId(scope),
            address: Ipv4Addr::from_bits(address),
            binding: Binding { client, mac, state, expires, cltt, granted, partner_sent, partner_acked, classes, version, info: peregrine_engine::ClientInfo::EMPTY },
        }
    }
}

proptest! {
    #[test]
    fn every_event_roundtrips(e in binding_event()) {
        let mut record = [0xa5u8; RECORD_LEN];
        encode(&e, &mut record);
        prop_assert_eq!(decode(&record), Ok(e));
        // The bytes depend on the event only, not on what the buffer held before.
        let mut again = [0u8; RECORD_LEN];
        encode(&e, &mut again);
        prop_assert_eq!(record, again);
    }

    #[test]
    fn any_flipped_bit_is_caught(e in binding_event(), bit in 0..RECORD_LEN * 8) {
        let mut record = [0u8; RECORD_LEN];
        encode(&e, &mut record);
        record[bit / 8] ^= 1 << (bit % 8);
        let err = decode(&record).unwrap_err();
        prop_assert!(err.is_framing(), "{:?}", err);
    }
}

/// `record` with its payload byte `at` set to `value` and the CRC made to match again: a
/// record that arrived whole but that this build cannot read.
fn rewritten(record: &[u8; RECORD_LEN], at: usize, value: u8) -> [u8; RECORD_LEN] {
    let mut r = *record;
    r[8 + at] = value;
    let crc = crc32fast::hash(&r[8..]);
    r[4..8].copy_from_slice(&crc.to_le_bytes());
    r
}

#[test]
fn unknown_states_and_client_keys_are_refused() {
    let mut record = [0u8; RECORD_LEN];
    encode(&event(1, 0), &mut record);
    assert!(decode(&record).is_ok());
    // Offsets: state at 6, client key kind at 7 and length at 8.
    assert_eq!(
        decode(&rewritten(&record, 6, 10)),
        Err(FormatError::State(10))
    );
    assert_eq!(
        decode(&rewritten(&record, 7, 3)),
        Err(FormatError::ClientKey { kind: 3, len: 7 })
    );
    assert_eq!(
        decode(&rewritten(&record, 8, 31)),
        Err(FormatError::ClientKey { kind: 0, len: 31 })
    );
    // A digest is 17 bytes or nothing.
    let digest = rewritten(&rewritten(&record, 7, 2), 8, 16);
    assert_eq!(
        decode(&digest),
        Err(FormatError::ClientKey { kind: 2, len: 16 })
    );
    // Client options (length at 89, options from 90): more than their room, or an option that
    // runs past its length.
    let named = {
        let mut r = [0u8; RECORD_LEN];
        encode(&event(1, 0), &mut r);
        r
    };
    assert!(decode(&named).unwrap().binding.info.host_name().is_some());
    assert_eq!(
        decode(&rewritten(&named, 89, 129)),
        Err(FormatError::ClientInfo)
    );
    assert_eq!(
        decode(&rewritten(&named, 91, 200)),
        Err(FormatError::ClientInfo)
    );
    let mut long = record;
    long[..4].copy_from_slice(&(PAYLOAD_LEN as u32 + 1).to_le_bytes());
    assert_eq!(
        decode(&long),
        Err(FormatError::Length(PAYLOAD_LEN as u32 + 1))
    );
}

#[test]
fn encoding_allocates_nothing() {
    let e = event(3, 0);
    let mut record = [0u8; RECORD_LEN];
    let n = peregrine_testkit::allocations_during(|| {
        for _ in 0..1000 {
            encode(std::hint::black_box(&e), &mut record);
        }
    });
    assert_eq!(n, 0);
}
