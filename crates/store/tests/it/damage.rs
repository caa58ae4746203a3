//! Property: a journal of random changes, damaged at random (flipped bytes, zeroed ranges, a
//! duplicated block, a cut-out middle, up to three at once), then repaired and held back as
//! `peregrine leases recover` does: every change whose record survived is read back, and no
//! address a client holds is left for a new client while its hold-back runs.

use std::net::Ipv4Addr;

use peregrine_engine::{
    Binding, BindingEvent, BindingState, ClientInfo, ClientKey, Engine, EngineOptions, KeySecret,
};
use peregrine_store::record::{HEADER_LEN, RECORD_LEN, encode, encode_header};
use peregrine_store::{HoldBack, LeaseDir, repair};
use peregrine_testkit::config as fixture;
use proptest::prelude::*;

use crate::support::TempDir;

/// Addresses the changes fall on: 10.0.0.10 onwards, the scope's whole pool.
const ADDRESSES: u8 = 24;
const NOW: u64 = 1_800_000_000;
const LEASE: u64 = 3600;

/// One kind of damage, its place given as a fraction (of 2^16) of the file's length then.
#[derive(Debug, Clone)]
enum Damage {
    Flip { at: u16, mask: u8 },
    Zero { at: u16, len: u16 },
    Duplicate { from: u16, len: u16, to: u16 },
    Cut { at: u16, len: u16 },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<u16>(), 1..=255u8).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        (any::<u16>(), 1..700u16).prop_map(|(at, len)| Damage::Zero { at, len }),
        (any::<u16>(), 1..1500u16, any::<u16>()).prop_map(|(from, len, to)| Damage::Duplicate {
            from,
            len,
            to
        }),
        (any::<u16>(), 1..1500u16).prop_map(|(at, len)| Damage::Cut { at, len }),
    ]
}

/// The journal's bytes and, for each byte, which byte of the undamaged journal it still is.
struct File {
    bytes: Vec<u8>,
    origin: Vec<Option<usize>>,
}

impl File {
    fn place(&self, fraction: u16) -> usize {
        (self.bytes.len() * usize::from(fraction)) >> 16
    }

    fn damage(&mut self, d: &Damage) {
        match *d {
            Damage::Flip { at, mask } => {
                let at = self.place(at);
                self.bytes[at] ^= mask;
                self.origin[at] = None;
            }
            Damage::Zero { at, len } => {
                let at = self.place(at);
                let end = (at + usize::from(len)).min(self.bytes.len());
                self.bytes[at..end].fill(0);
                self.origin[at..end].fill(None);
            }
            Damage::Duplicate { from, len, to } => {
                let from = self.place(from);
                let end = (from + usize::from(len)).min(self.bytes.len());
                let to = self.place(to);
                let copy = self.bytes[from..end].to_vec();
                let n = copy.len();
                self.bytes.splice(to..to, copy);
                self.origin.splice(to..to, std::iter::repeat_n(None, n));
            }
            Damage::Cut { at, len } => {
                let at = self.place(at);
                let end = (at + usize::from(len)).min(self.bytes.len());
                self.bytes.drain(at..end);
                self.origin.drain(at..end);
            }
        }
    }

    /// Whether record `i` of the undamaged journal is still somewhere, every byte in order.
    fn intact(&self, i: usize) -> bool {
        let start = HEADER_LEN + i * RECORD_LEN;
        let Some(q) = self.origin.iter().position(|o| *o == Some(start)) else {
            return false;
        };
        (0..RECORD_LEN).all(|k| self.origin.get(q + k) == Some(&Some(start + k)))
    }
}

/// Change `n` of the history: address `address`, its `version`th, leased to one of a few
/// clients or released.
fn change(address: u8, lease: bool, client: u8, version: u32) -> BindingEvent {
    let mac = [2, 0, 0, 0, 0, client];
    BindingEvent {
        scope: peregrine_engine::ScopeId(0),
        address: Ipv4Addr::new(10, 0, 0, 10 + address),
        binding: Binding {
            client: Some(ClientKey::hardware(1, &mac, &KeySecret([7; 16]))),
            mac,
            state: if lease {
                BindingState::Active
            } else {
                BindingState::Released
            },
            expires: if lease { NOW + LEASE } else { NOW },
            cltt: NOW,
            granted: LEASE as u32,
            partner_sent: 0,
            partner_acked: 0,
            classes: 0,
            version,
            info: ClientInfo::EMPTY,
        },
    }
}

fn engine() -> Engine {
    let server = fixture::server(true);
    let scope = fixture::scope(
        "lan",
        fixture::net([10, 0, 0, 0], 24),
        [10, 0, 0, 10],
        [10, 0, 0, 10 + ADDRESSES - 1],
        &server,
    );
    Engine::new(
        &fixture::config(server, vec![scope]),
        EngineOptions::default(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn repair_keeps_every_intact_change_and_holds_back_what_clients_may_hold(
        steps in prop::collection::vec((0..ADDRESSES, any::<bool>(), 0..4u8), 8..120),
        damages in prop::collection::vec(damage(), 1..=3),
    ) {
        let mut versions = [0u32; ADDRESSES as usize];
        let changes: Vec<BindingEvent> = steps
            .iter()
            .map(|&(a, lease, client)| {
                versions[usize::from(a)] += 1;
                change(a, lease, client, versions[usize::from(a)])
            })
            .collect();
        let mut bytes = encode_header(NOW).to_vec();
        for c in &changes {
            let mut record = [0u8; RECORD_LEN];
            encode(c, &mut record);
            bytes.extend_from_slice(&record);
        }
        let mut file = File { origin: (0..bytes.len()).map(Some).collect(), bytes };
        for d in &damages {
            file.damage(d);
        }
        // Damage to the last record, with nothing intact after it, is what a crash leaves of
        // a write it interrupted: recovery cuts it as a torn tail (a record whose sync never
        // returned was never acknowledged). Only damage that intact records follow is damage.
        prop_assume!(file.intact(changes.len() - 1));
        let tmp = TempDir::new("property");
        drop(LeaseDir::open(&tmp.0).unwrap());
        std::fs::write(tmp.journal(), &file.bytes).unwrap();

        // Records removed whole, or cut so that what is left splices into valid records
        // (two cuts whose ends meet inside equal bytes of two records), leave a valid shorter
        // journal: records carry no sequence number, so no reader can tell. Such a case is
        // outside what framing detects.
        let lost = (0..changes.len()).any(|i| !file.intact(i));
        prop_assume!(!lost || peregrine_store::verify(&tmp.0).unwrap().damaged());
        let mut holds: Vec<HoldBack> = Vec::new();
        loop {
            let report = repair(&tmp.0).unwrap();
            if report.file.is_none() {
                break;
            }
            holds.extend(report.hold);
        }
        let dir = LeaseDir::open(&tmp.0).unwrap();
        let read = dir.recover().unwrap().events;
        // Every change whose record survived is read back.
        for (i, c) in changes.iter().enumerate() {
            if file.intact(i) {
                prop_assert!(read.contains(c), "intact change {i} ({c:?}) lost");
            }
        }
        // Restored and held back as `leases recover` does.
        let engine = engine();
        for e in &read {
            let _ = engine.replay(e);
        }
        engine.hold_back(NOW, NOW + 2 * LEASE, |scope, address| {
            holds.iter().any(|h| h.unsettled(scope, address))
        });
        // Every address whose newest change leased it stays out of a new client's reach.
        for a in 0..ADDRESSES {
            let Some(newest) = changes.iter().rfind(|c| c.address.octets()[3] == 10 + a) else {
                continue;
            };
            if newest.binding.state != BindingState::Active {
                continue;
            }
            let (_, b) = engine.binding(newest.address).unwrap();
            prop_assert!(
                !matches!(
                    b.state,
                    BindingState::Free
                        | BindingState::Expired
                        | BindingState::Released
                        | BindingState::Reset
                ),
                "{} (leased by its newest change) is {:?} after repair; damage {:?}, {} changes, {} holds, read {}",
                newest.address,
                b.state,
                damages,
                changes.len(),
                holds.len(),
                read.len()
            );
        }
    }
}
