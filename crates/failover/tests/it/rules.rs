//! The binding rules, the MCLT arithmetic and the RFC 3074 hash, against the draft's tables and
//! what the ISC lab showed.

use peregrine_failover::binding::{
    Held, Offered, PartnerTimes, TIME_UNCERTAINTY, Transition, accept_update, grantable_lease,
    local_transition, potential_expiration, reusable_at,
};
use peregrine_failover::hash::{BitOrder, HashBucketAssignment, bucket};
use peregrine_failover::message::RejectReason;
use peregrine_failover::{BindingStatus, Role};

const T: u64 = 1_795_390_176;

fn mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, n]
}

#[test]
fn rfc3074_buckets_match_the_lab() {
    // Brief §1.8: client-id 01||MAC and chaddr-only keys of the lab's six clients.
    let by_client_id = [14, 66, 222, 186, 242, 144];
    let by_chaddr = [133, 45, 182, 150, 13, 166];
    for n in 1..=6u8 {
        let mut id = vec![1];
        id.extend_from_slice(&mac(n));
        assert_eq!(
            bucket(&id),
            by_client_id[usize::from(n - 1)],
            "client-id of :{n:02}"
        );
        assert_eq!(
            bucket(&mac(n)),
            by_chaddr[usize::from(n - 1)],
            "chaddr of :{n:02}"
        );
    }
}

#[test]
fn split_128_gives_the_lab_its_answering_server() {
    // The lab's CONNECT carried ff x16 00 x16; the primary answered :01 and :02, the secondary
    // :03 to :06.
    let hba = HashBucketAssignment::split(128);
    assert_eq!(hba.0[..16], [0xff; 16]);
    assert_eq!(hba.0[16..], [0; 16]);
    let primary: Vec<bool> = (1..=6u8)
        .map(|n| {
            let mut id = vec![1];
            id.extend_from_slice(&mac(n));
            hba.primary_answers(bucket(&id), BitOrder::Isc)
        })
        .collect();
    assert_eq!(primary, [true, true, false, false, false, false]);
    // On a whole-byte split ISC's bit reading and the draft's agree; on a partial byte they do not.
    for b in 0..=255u8 {
        assert_eq!(
            hba.primary_answers(b, BitOrder::Isc),
            hba.primary_answers(b, BitOrder::Draft)
        );
    }
    let odd = HashBucketAssignment::split(6);
    assert!(odd.primary_answers(5, BitOrder::Draft));
    assert!(!odd.primary_answers(6, BitOrder::Draft));
    assert!(
        odd.primary_answers(6, BitOrder::Isc),
        "ISC reads bit 6 & 3 = 2"
    );
}

#[test]
fn the_mclt_bounds_a_first_lease_and_lifts_once_acknowledged() {
    // Brief §7 A.8: MCLT 30, desired 300: the first ACK is 30 s with PET t + 315.
    let fresh = PartnerTimes::default();
    assert_eq!(grantable_lease(T, 300, 30, &fresh), 30);
    assert_eq!(potential_expiration(T, 300, 30), T + 315);
    // Renewal at T + 15 after the partner acknowledged PET T + 315: the whole 300 s.
    let acked = PartnerTimes {
        sent: T + 315,
        acked: T + 315,
        received: 0,
    };
    assert_eq!(grantable_lease(T + 15, 300, 30, &acked), 300);
    // Sent but not acknowledged does not count.
    let unacked = PartnerTimes {
        sent: T + 315,
        ..PartnerTimes::default()
    };
    assert_eq!(grantable_lease(T + 15, 300, 30, &unacked), 30);
    // What the partner told us it may promise counts as well (D12 §7.1.5).
    let received = PartnerTimes {
        received: T + 100,
        ..PartnerTimes::default()
    };
    assert_eq!(grantable_lease(T, 300, 30, &received), 130);
    // S2 holds for every combination.
    for now in [T, T + 50, T + 400] {
        for acked in [0, T + 10, T + 315, T + 1000] {
            for desired in [10, 30, 300, 86_400] {
                let times = PartnerTimes {
                    acked,
                    ..PartnerTimes::default()
                };
                let lease = grantable_lease(now, desired, 30, &times);
                assert!(lease <= desired);
                assert!(now + u64::from(lease) <= now.max(acked) + 30);
            }
        }
    }
}

#[test]
fn partner_down_reuse_waits_for_every_promise_and_the_mclt() {
    let times = PartnerTimes {
        sent: T + 315,
        acked: T + 300,
        received: T + 500,
    };
    assert_eq!(reusable_at(T + 30, &times, 30, T), T + 530);
    assert_eq!(reusable_at(T + 30, &times, 30, T + 600), T + 630);
}

fn held(status: BindingStatus, lease_expiration: u64, cltt: Option<u64>) -> Held {
    Held {
        status,
        lease_expiration,
        client_last_transaction: cltt,
        start_time_of_state: T,
    }
}

fn offered(status: BindingStatus, cltt: Option<u64>, same_client: bool) -> Offered {
    Offered {
        status,
        client_last_transaction: cltt,
        same_client,
        lease_expiration: u64::MAX,
    }
}

#[test]
fn the_active_row_of_figure_7_1_3_1() {
    use BindingStatus::{Abandoned, Active, Backup, Expired, Free, Released, Reset};
    let outdated = Err(RejectReason::OUTDATED_BINDING_INFORMATION);
    let now = T + 100;
    // ACTIVE here, lease running until T + 200.
    let active = held(Active, T + 200, Some(T));
    let p = Role::Primary;
    let s = Role::Secondary;
    assert_eq!(
        accept_update(p, now, &active, &offered(Active, Some(T + 50), true)),
        Ok(())
    );
    // The same client's older lease (an update queued during a partition) does not undo a
    // later renewal.
    let renewed = held(Active, T + 200, Some(T + 60));
    assert_eq!(
        accept_update(p, now, &renewed, &offered(Active, Some(T + 50), true)),
        outdated
    );
    assert_eq!(
        accept_update(p, now, &renewed, &offered(Active, None, true)),
        outdated
    );
    assert_eq!(
        accept_update(p, now, &active, &offered(Active, Some(T + 50), false)),
        Err(RejectReason::FATAL_CONFLICT)
    );
    assert_eq!(
        accept_update(s, now, &active, &offered(Active, Some(T + 50), false)),
        Ok(())
    );
    for early in [Expired, Free, Backup] {
        assert_eq!(
            accept_update(p, now, &active, &offered(early, Some(T + 50), true)),
            outdated
        );
        assert_eq!(
            accept_update(p, T + 201, &active, &offered(early, None, true)),
            Ok(())
        );
    }
    // A release ends the lease only if it is clearly newer: the partner's clock is read
    // through a skew measured across the link's delay.
    assert_eq!(
        accept_update(
            p,
            now,
            &active,
            &offered(Released, Some(T + TIME_UNCERTAINTY + 1), true)
        ),
        Ok(())
    );
    assert_eq!(
        accept_update(
            p,
            now,
            &active,
            &offered(Released, Some(T + TIME_UNCERTAINTY), true)
        ),
        outdated
    );
    assert_eq!(
        accept_update(p, now, &active, &offered(Released, Some(T), true)),
        outdated
    );
    // Another client's lease that is already over is no conflict: old news.
    let mut over = offered(Active, Some(T + 50), false);
    over.lease_expiration = now;
    assert_eq!(accept_update(s, now, &active, &over), outdated);
    assert_eq!(
        accept_update(p, now, &active, &offered(Released, None, true)),
        outdated
    );
    assert_eq!(
        accept_update(p, now, &active, &offered(Reset, None, true)),
        Ok(())
    );
    assert_eq!(
        accept_update(p, now, &active, &offered(Abandoned, None, true)),
        Ok(())
    );
}

#[test]
fn transitory_reset_and_abandoned_rows_of_figure_7_1_3_1() {
    use BindingStatus::{Abandoned, Active, Backup, Expired, Free, Released, Reset};
    let outdated = Err(RejectReason::OUTDATED_BINDING_INFORMATION);
    let now = T + 100;
    let p = Role::Primary;
    // EXPIRED and RELEASED here: an older ACTIVE is refused; a cltt we lack counts as newer.
    let expired = held(Expired, T, Some(T + 10));
    assert_eq!(
        accept_update(p, now, &expired, &offered(Active, Some(T + 5), true)),
        outdated
    );
    assert_eq!(
        accept_update(p, now, &expired, &offered(Active, Some(T + 11), true)),
        Ok(())
    );
    assert_eq!(
        accept_update(
            p,
            now,
            &held(Expired, T, None),
            &offered(Active, Some(T), true)
        ),
        Ok(())
    );
    assert_eq!(
        accept_update(p, now, &expired, &offered(Released, None, true)),
        Ok(())
    );
    // An older ACTIVE is refused here too; an EXPIRED, newer or not, is taken (our deviation
    // from the figure: both say the lease is over, and two refusals would leave the address
    // waiting forever).
    let released = held(Released, T, Some(T + 10));
    assert_eq!(
        accept_update(p, now, &released, &offered(Active, Some(T), true)),
        outdated
    );
    assert_eq!(
        accept_update(p, now, &released, &offered(Expired, Some(T), true)),
        Ok(())
    );
    assert_eq!(
        accept_update(p, now, &released, &offered(Free, None, true)),
        Ok(())
    );
    // FREE and BACKUP here take anything.
    for status in [Free, Backup] {
        for theirs in [Active, Expired, Released, Free, Backup, Reset, Abandoned] {
            assert_eq!(
                accept_update(
                    p,
                    now,
                    &held(status, 0, None),
                    &offered(theirs, None, false)
                ),
                Ok(())
            );
        }
    }
    // RESET here: an ACTIVE must be newer than the reset.
    let reset = held(Reset, 0, None);
    assert_eq!(
        accept_update(p, now, &reset, &offered(Active, Some(T), true)),
        outdated
    );
    assert_eq!(
        accept_update(p, now, &reset, &offered(Active, Some(T + 1), true)),
        Ok(())
    );
    // ABANDONED here: only RESET or ABANDONED.
    let abandoned = held(Abandoned, 0, None);
    for theirs in [Active, Expired, Released, Free, Backup] {
        assert_eq!(
            accept_update(p, now, &abandoned, &offered(theirs, Some(T + 99), true)),
            Err(RejectReason::LESS_CRITICAL_BINDING_INFORMATION)
        );
    }
    assert_eq!(
        accept_update(p, now, &abandoned, &offered(Reset, None, true)),
        Ok(())
    );
}

#[test]
fn each_side_allocates_only_from_its_own_pool_on_its_own() {
    use BindingStatus::{Active, Backup, Expired, Free, Released, Reset};
    assert_eq!(
        local_transition(Role::Primary, Free, Active),
        Transition::Allowed
    );
    assert_eq!(
        local_transition(Role::Secondary, Free, Active),
        Transition::PartnerDownOnly
    );
    assert_eq!(
        local_transition(Role::Secondary, Backup, Active),
        Transition::Allowed
    );
    assert_eq!(
        local_transition(Role::Primary, Backup, Active),
        Transition::PartnerDownOnly
    );
    assert_eq!(
        local_transition(Role::Primary, Free, Backup),
        Transition::Allowed
    );
    assert_eq!(
        local_transition(Role::Secondary, Free, Backup),
        Transition::Forbidden
    );
    for transitory in [Expired, Released, Reset] {
        for role in [Role::Primary, Role::Secondary] {
            assert_eq!(
                local_transition(role, transitory, Free),
                Transition::AfterPartnerAck
            );
        }
    }
    assert_eq!(
        local_transition(Role::Primary, Expired, Active),
        Transition::RewindOnly
    );
    assert_eq!(
        local_transition(Role::Primary, Reset, Active),
        Transition::Forbidden
    );
    assert_eq!(Role::Primary.own_pool(), Free);
    assert_eq!(Role::Secondary.own_pool(), Backup);
}
