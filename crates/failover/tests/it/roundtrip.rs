//! Property tests: any message we can build decodes back to itself; no input makes the decoder
//! panic, and what it accepts re-encodes to a message that decodes the same.

use std::net::Ipv4Addr;

use peregrine_failover::codec::MAX_MESSAGE_LEN;
use peregrine_failover::message::{
    self, BindingAck, BindingUpdate, Connect, ConnectAck, Disconnect, HardwareAddr, Header,
    Message, RejectReason, State,
};
use peregrine_failover::{BindingStatus, ServerState};
use proptest::prelude::*;

use crate::failover_targets::failover_decode;

fn status() -> impl Strategy<Value = BindingStatus> {
    (1u8..=7).prop_map(|v| BindingStatus::from_u8(v).unwrap())
}

fn server_state() -> impl Strategy<Value = ServerState> {
    prop_oneof![1u8..=11, Just(254)].prop_map(|v| ServerState::from_u8(v).unwrap())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

/// The owned parts of a binding update; the update borrows them.
#[derive(Debug, Clone)]
struct UpdateParts {
    address: u32,
    status: BindingStatus,
    client_id: Option<Vec<u8>>,
    hardware: Option<(u8, Vec<u8>)>,
    times: [Option<u32>; 4],
    flags: Option<u16>,
    request: Option<Vec<u8>>,
}

impl UpdateParts {
    fn update(&self) -> BindingUpdate<'_> {
        let mut u = BindingUpdate::new(Ipv4Addr::from(self.address), self.status);
        u.client_id = self.client_id.as_deref();
        u.hardware = self.hardware.as_ref().map(|(htype, addr)| HardwareAddr {
            htype: *htype,
            addr,
        });
        [
            u.lease_expiration,
            u.potential_expiration,
            u.start_time_of_state,
            u.client_last_transaction,
        ] = self.times;
        u.ip_flags = self.flags;
        u.client_request_options = self.request.as_deref();
        u
    }
}

fn update_parts() -> impl Strategy<Value = UpdateParts> {
    (
        any::<u32>(),
        status(),
        proptest::option::of(bytes(64)),
        proptest::option::of((any::<u8>(), bytes(16))),
        any::<[Option<u32>; 4]>(),
        any::<Option<u16>>(),
        proptest::option::of(bytes(200)),
    )
        .prop_map(
            |(address, status, client_id, hardware, times, flags, request)| UpdateParts {
                address,
                status,
                client_id,
                hardware,
                times,
                flags,
                request,
            },
        )
}

fn header() -> impl Strategy<Value = Header> {
    (any::<u32>(), any::<u32>()).prop_map(|(time, xid)| Header { time, xid })
}

fn roundtrip(header: Header, message: &Message<'_>) {
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    let len = message.encode(header, &mut buf).unwrap();
    let (h, decoded) = message::decode(&buf[..len]).unwrap();
    assert_eq!(h, header);
    assert_eq!(&decoded, message);
}

proptest! {
    #[test]
    fn binding_updates_round_trip(h in header(), parts in update_parts()) {
        let update = parts.update();
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let len = update.encode(h, &mut buf).unwrap();
        let (got, message) = message::decode(&buf[..len]).unwrap();
        prop_assert_eq!(got, h);
        let Message::BndUpd(batch) = message else { panic!("not a BNDUPD") };
        prop_assert_eq!(batch.updates().collect::<Vec<_>>(), vec![update]);
    }

    #[test]
    fn binding_acks_round_trip(
        h in header(),
        address in any::<u32>(),
        reject in proptest::option::of(any::<u8>()),
        text in proptest::option::of(bytes(100)),
    ) {
        let ack = BindingAck {
            address: Ipv4Addr::from(address),
            reject: reject.map(RejectReason),
            message: text.as_deref(),
        };
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let len = ack.encode(h, &mut buf).unwrap();
        let (_, message) = message::decode(&buf[..len]).unwrap();
        let Message::BndAck(batch) = message else { panic!("not a BNDACK") };
        prop_assert_eq!(batch.acks().collect::<Vec<_>>(), vec![ack]);
    }

    #[test]
    fn control_messages_round_trip(
        h in header(),
        name in bytes(60),
        numbers in any::<(u32, u32, u32, u8)>(),
        vendor in proptest::option::of(bytes(30)),
        tls in any::<Option<u8>>(),
        hba in any::<Option<[u8; 32]>>(),
        state in server_state(),
        flags in any::<u8>(),
        reason in any::<u8>(),
    ) {
        let (unacked, timer, mclt, version) = numbers;
        let connect = Connect {
            relationship_name: &name,
            max_unacked_bndupd: unacked,
            receive_timer: timer,
            vendor_class: vendor.as_deref(),
            protocol_version: version,
            tls_request: tls,
            mclt,
            hash_bucket_assignment: hba.as_ref(),
        };
        roundtrip(h, &Message::Connect(connect));
        let ack = ConnectAck {
            relationship_name: Some(&name),
            max_unacked_bndupd: Some(unacked),
            receive_timer: None,
            vendor_class: vendor.as_deref(),
            protocol_version: Some(version),
            tls_reply: tls,
            reject: Some(RejectReason(reason)),
            message: Some(b"no"),
        };
        roundtrip(h, &Message::ConnectAck(ack));
        roundtrip(h, &Message::State(State { state, flags, start_time: mclt }));
        roundtrip(h, &Message::Disconnect(Disconnect { reason: RejectReason(reason), message: None }));
        roundtrip(h, &Message::PoolResp { addresses_transferred: unacked });
        for m in [Message::PoolReq, Message::UpdReqAll, Message::UpdDone, Message::UpdReq, Message::Contact] {
            roundtrip(h, &m);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(buf in bytes(300)) {
        failover_decode(&buf);
    }

    #[test]
    fn arbitrary_options_behind_a_valid_header_never_panic(kind in 0u8..=14, body in bytes(200)) {
        let mut buf = vec![0u8; 12];
        buf.extend_from_slice(&body);
        let len = u16::try_from(buf.len()).unwrap();
        buf[0..2].copy_from_slice(&len.to_be_bytes());
        buf[2] = kind;
        buf[3] = 12;
        failover_decode(&buf);
    }
}
