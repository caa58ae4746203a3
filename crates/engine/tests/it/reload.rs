//! A reload: the engine a new configuration describes, carrying the old one's bindings.

use std::net::Ipv4Addr;

use peregrine_config::model::{AdminState, ClassMatch, Pool, ReservationKey};
use peregrine_engine::{BindingState, Carried, DropReason, Verdict};
use peregrine_testkit::config as fixture;
use peregrine_wire::dhcp::{MessageType, opt};

use crate::support::{Client, Sim, class, lab_config, reservation};

/// Replaces `sim`'s engine by the one `config` describes.
fn reload(sim: &mut Sim, config: &peregrine_config::model::Config) -> Carried {
    let (next, carried) = sim.engine.reconfigured(config, sim.now).unwrap();
    sim.engine = next;
    carried
}

fn is_ack(v: &Verdict) -> bool {
    matches!(
        v,
        Verdict::Defer {
            kind: MessageType::Ack,
            ..
        } | Verdict::Reply {
            kind: MessageType::Ack,
            ..
        }
    )
}

#[test]
fn leases_stay_new_scopes_serve_and_changed_options_apply_at_once() {
    let config = lab_config();
    let mut sim = Sim::new(&config);
    let direct = Client::new(1);
    let relayed = Client::new(2).relayed([10, 201, 0, 1], b"olt-1");
    let a = sim.dora(&direct);
    let b = sim.dora(&relayed);
    let (relayed_id, before) = sim.engine.binding(b).unwrap();

    // A scope before the others (every scope id moves), new DNS servers for "relayed".
    let mut next = config.clone();
    next.scopes[1]
        .options
        .set(opt::DNS_SERVERS, vec![10, 0, 0, 54]);
    let added = fixture::scope(
        "added",
        fixture::net([10, 202, 0, 0], 16),
        [10, 202, 1, 0],
        [10, 202, 1, 255],
        &next.server,
    );
    next.scopes.insert(0, added);
    let carried = reload(&mut sim, &next);
    // Both pools are as they were: they change hands whole, nothing is copied.
    assert_eq!((carried.bindings, carried.copied), (2, 0), "{carried:?}");
    assert_eq!((carried.retired, carried.forgotten), (0, 0));

    // The binding as it was, version included, in its scope under the same id (changes
    // queued before the reload name it); the new scope has an id of its own.
    assert_eq!(sim.engine.binding(b).unwrap(), (relayed_id, before));
    assert_eq!(sim.engine.scope_id("relayed"), Some(relayed_id));
    let added_id = sim.engine.scope_id("added").unwrap();
    assert!(added_id.0 >= 2, "{added_id:?}");
    // The same clients renew the same addresses, with the new options.
    sim.advance(2000);
    let v = sim.send(&direct.renew(a));
    assert!(is_ack(&v), "{v:?}");
    assert_eq!(sim.reply(&v).packet().yiaddr(), a);
    let v = sim.send(&relayed.renew(b));
    assert!(is_ack(&v), "{v:?}");
    let ack = sim.reply(&v);
    assert_eq!(ack.packet().yiaddr(), b);
    assert_eq!(
        ack.get(opt::DNS_SERVERS).unwrap().as_slice().unwrap(),
        [10, 0, 0, 54]
    );
    // The new scope serves at once; the direct interface still selects its scope.
    let c = Client::new(3).relayed([10, 202, 0, 1], b"olt-2");
    assert!(sim.dora(&c).octets().starts_with(&[10, 202, 1]));
    assert_ne!(sim.dora(&Client::new(4)), a);

    // A scope removed, another added: the id of the one gone is never the other's.
    let mut again = next.clone();
    again.scopes.retain(|s| s.name != "relayed");
    again.scopes[0].name = "renamed".into();
    reload(&mut sim, &again);
    let renamed = sim.engine.scope_id("renamed").unwrap();
    assert!(![relayed_id, added_id].contains(&renamed), "{renamed:?}");
    assert_eq!(sim.engine.scope_id("relayed"), None);
}

#[test]
fn a_removed_pool_keeps_its_leases_aside_until_it_returns_or_they_end() {
    let config = lab_config();
    let mut sim = Sim::new(&config);
    let held = Client::new(5).relayed([10, 201, 0, 1], b"olt-1");
    let addr = sim.dora(&held);
    // In the pool that stays: handed over whole, its client's index entry too.
    let direct = Client::new(13);
    let kept = sim.dora(&direct);
    // Offered then abandoned by its client: nobody holds it once the offer lapses.
    let lapsed = Client::new(6).relayed([10, 201, 0, 1], b"olt-1");
    let v = sim.send(&lapsed.discover());
    let offered = sim.reply(&v).packet().yiaddr();

    let mut without = config.clone();
    without.scopes[1].pools[0] = Pool {
        first: [10, 201, 2, 0].into(),
        last: [10, 201, 2, 255].into(),
        classes: vec![],
    };
    sim.advance(20);
    let carried = reload(&mut sim, &without);
    assert_eq!((carried.bindings, carried.copied), (1, 0), "{carried:?}");
    assert_eq!(carried.retired, 1, "{carried:?}");
    assert_eq!(carried.forgotten, 1, "the lapsed offer of {offered}");
    let v = sim.send(&direct.renew(kept));
    assert!(is_ack(&v), "{v:?}");
    assert!(sim.engine.binding(addr).is_none());
    // Not renewed: the address is in no pool (the scope is not authoritative: silence).
    sim.advance(1000);
    assert!(!is_ack(&sim.send(&held.renew(addr))));

    // Back in a pool before the lease ran out: still the client's, to it alone.
    let carried = reload(&mut sim, &config);
    assert_eq!((carried.bindings, carried.retired), (2, 0), "{carried:?}");
    let (_, b) = sim.engine.binding(addr).unwrap();
    assert_eq!(b.state, BindingState::Active);
    let stranger = Client::new(7).relayed([10, 201, 0, 1], b"olt-1");
    let v = sim.send(&stranger.message(
        MessageType::Discover,
        Ipv4Addr::UNSPECIFIED,
        Some(addr),
        None,
    ));
    assert_ne!(sim.reply(&v).packet().yiaddr(), addr);
    let v = sim.send(&held.renew(addr));
    assert!(is_ack(&v), "{v:?}");

    // Out again (with the stranger's offer), and past their ends by the next reload: forgotten.
    assert_eq!(reload(&mut sim, &without).retired, 2);
    sim.advance(10_000);
    let carried = reload(&mut sim, &without);
    assert_eq!((carried.retired, carried.forgotten), (0, 2), "{carried:?}");
}

#[test]
fn an_operators_scope_state_survives_unless_the_file_changes_it() {
    let config = lab_config();
    let mut sim = Sim::new(&config);
    assert!(sim.engine.set_scope_active("relayed", false));
    reload(&mut sim, &config);
    let c = Client::new(8).relayed([10, 201, 0, 1], b"olt-1");
    assert_eq!(
        sim.send(&c.discover()),
        Verdict::Drop(DropReason::ScopeInactive)
    );
    // The file now says inactive, then active again: the file's word.
    let mut inactive = config.clone();
    inactive.scopes[1].state = AdminState::Inactive;
    reload(&mut sim, &inactive);
    reload(&mut sim, &config);
    assert!(matches!(sim.send(&c.discover()), Verdict::Reply { .. }));
}

#[test]
fn classes_are_kept_by_name_and_reservations_are_the_new_files() {
    let mut config = lab_config();
    config.classes.push(class(
        "modems",
        vec![ClassMatch::VendorClassPrefix(b"docsis".to_vec())],
    ));
    let reserved = Client::new(9);
    config.scopes[0].reservations.push(reservation(
        ReservationKey::Mac(reserved.mac),
        [10, 200, 0, 150],
    ));
    let mut sim = Sim::new(&config);
    let mut modem = Client::new(10).relayed([10, 201, 0, 1], b"cm");
    modem.vendor_class = Some(b"docsis3.1".to_vec());
    let addr = sim.dora(&modem);
    assert_eq!(sim.engine.binding(addr).unwrap().1.classes, 1);

    // A class before it: its bit moves; the reservation is gone.
    let mut next = config.clone();
    next.classes.insert(0, class("first", vec![]));
    next.scopes[0].reservations.clear();
    let carried = reload(&mut sim, &next);
    assert_eq!(carried.copied, 1, "renumbered: {carried:?}");
    assert_eq!(sim.engine.binding(addr).unwrap().1.classes, 2);
    let freed = sim
        .engine
        .binding(Ipv4Addr::new(10, 200, 0, 150))
        .unwrap()
        .1;
    assert_eq!(freed.state, BindingState::Free);
}

#[test]
fn a_pool_handed_over_whole_keeps_its_timers_and_free_list() {
    let config = lab_config();
    let mut sim = Sim::new(&config);
    let c = Client::new(11);
    let addr = sim.dora(&c);
    assert_eq!(reload(&mut sim, &config).copied, 0);
    // The lease still runs out on time, and its address is the next one's only after the
    // other free addresses (affinity, as before the reload).
    sim.advance(3601);
    let expired = sim.tick();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0].address, addr);
    let other = sim.dora(&Client::new(12));
    assert_ne!(other, addr);
    // Its client comes back to it.
    assert_eq!(sim.dora(&c), addr);
}
