//! Body of the failover fuzz target. `fuzz/fuzz_targets/failover_decode.rs` runs it under
//! libFuzzer; `crates/failover/tests/it/fuzz_corpus.rs` runs it on stable over the checked-in
//! corpus (ISC's golden messages) and mutations of it, so every `cargo test` exercises it.

use peregrine_failover::codec::MAX_MESSAGE_LEN;
use peregrine_failover::message::{self, Message};

/// Decode a failover message; whatever is accepted re-encodes (a batch transaction by
/// transaction) to bytes that decode to the same message.
pub(crate) fn failover_decode(data: &[u8]) {
    let Ok((header, message)) = message::decode(data) else {
        return;
    };
    let mut out = [0u8; MAX_MESSAGE_LEN];
    match message {
        Message::BndUpd(batch) => {
            for u in batch.updates() {
                let len = u.encode(header, &mut out).expect("a decoded update fits");
                let (_, again) = message::decode(&out[..len]).expect("our update decodes");
                let Message::BndUpd(b) = again else {
                    panic!("a BNDUPD re-encoded as {:?}", again.message_type())
                };
                assert!(b.updates().eq([u]));
            }
        }
        Message::BndAck(batch) => {
            for a in batch.acks() {
                let len = a.encode(header, &mut out).expect("a decoded ack fits");
                let (_, again) = message::decode(&out[..len]).expect("our ack decodes");
                let Message::BndAck(b) = again else {
                    panic!("a BNDACK re-encoded as {:?}", again.message_type())
                };
                assert!(b.acks().eq([a]));
            }
        }
        other => {
            let len = other
                .encode(header, &mut out)
                .expect("a decoded message fits");
            let (h, again) = message::decode(&out[..len]).expect("our message decodes");
            assert_eq!(h, header);
            assert_eq!(again, other);
        }
    }
}
