//! Message authentication between two Peregrine partners (`[failover] secret`).
//!
//! Every message gets one more option at its end, code [`OPTION`], holding an HMAC-SHA256 keyed
//! with the secret over the message (its length field counting the option) and the number of
//! messages sent before it on the connection in that direction. A message without it, with a
//! wrong one, replayed or out of order is refused, and the connection with it. The draft knows
//! no such option (it leaves authentication to TLS); ISC dhcpd would refuse it, which is why
//! only a pair of Peregrine servers uses a secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The option's code: from the range the draft leaves to vendors.
pub(super) const OPTION: u16 = 0xfe01;
/// HMAC-SHA256's length.
const MAC_LEN: usize = 32;
/// What the option adds to a message: code, length, the MAC.
pub(super) const TRAILER: usize = 4 + MAC_LEN;
/// The failover header's length.
const HEADER: usize = 12;

/// One connection's authentication state: the key and the messages counted each way.
pub(super) struct Auth {
    key: Box<[u8]>,
    sent: u64,
    received: u64,
}

impl Auth {
    pub(super) fn new(secret: &str) -> Auth {
        Auth {
            key: secret.as_bytes().into(),
            sent: 0,
            received: 0,
        }
    }

    /// A new connection: both sides count from zero again.
    pub(super) fn reset(&mut self) {
        self.sent = 0;
        self.received = 0;
    }

    fn mac(&self, count: u64, message: &[u8]) -> [u8; MAC_LEN] {
        // HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(&count.to_be_bytes());
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Appends the option to the message that starts at `start` of `out` (its end is `out`'s).
    pub(super) fn seal(&mut self, out: &mut Vec<u8>, start: usize) {
        let len = out.len() - start + TRAILER;
        let Ok(len16) = u16::try_from(len) else {
            return;
        };
        out[start..start + 2].copy_from_slice(&len16.to_be_bytes());
        out.extend_from_slice(&OPTION.to_be_bytes());
        out.extend_from_slice(&(MAC_LEN as u16).to_be_bytes());
        let mac = self.mac(self.sent, &out[start..]);
        out.extend_from_slice(&mac);
        self.sent += 1;
    }

    /// Checks the option at the end of `frame` (one whole message as received) and strips it:
    /// returns the length of the message as the partner's session wrote it.
    pub(super) fn open(&mut self, frame: &mut [u8]) -> Result<usize, &'static str> {
        let n = frame.len();
        if n < HEADER + TRAILER {
            return Err("unauthenticated: too short to carry the MAC");
        }
        let option = &frame[n - TRAILER..n - MAC_LEN];
        if option[..2] != OPTION.to_be_bytes() || option[2..] != (MAC_LEN as u16).to_be_bytes() {
            return Err(
                "unauthenticated: no MAC option (is the partner configured with the secret?)",
            );
        }
        let expected = self.mac(self.received, &frame[..n - MAC_LEN]);
        // Constant time: the comparison must not tell how much of a forged MAC was right.
        let diff = expected
            .iter()
            .zip(&frame[n - MAC_LEN..])
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff != 0 {
            return Err(
                "unauthenticated: wrong MAC (another secret, or a message altered, replayed or lost)",
            );
        }
        self.received += 1;
        let inner = n - TRAILER;
        let len16 = u16::try_from(inner).map_err(|_| "unauthenticated: too long")?;
        frame[..2].copy_from_slice(&len16.to_be_bytes());
        Ok(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 12-byte header (length, type 11 CONTACT, offset 12, time, xid) and `extra` bytes.
    fn message(extra: usize) -> Vec<u8> {
        let mut m = vec![0, 0, 11, 12, 0, 0, 0, 1, 0, 0, 0, 7];
        m.extend(std::iter::repeat_n(0xab, extra));
        let len = m.len() as u16;
        m[..2].copy_from_slice(&len.to_be_bytes());
        m
    }

    #[test]
    fn a_sealed_message_opens_to_itself_once_and_in_order() {
        let (mut a, mut b) = (Auth::new("0123456789abcdef"), Auth::new("0123456789abcdef"));
        let mut wire = Vec::new();
        for extra in [0, 5] {
            let start = wire.len();
            wire.extend(message(extra));
            a.seal(&mut wire, start);
        }
        let first = HEADER + TRAILER;
        let mut again = wire.clone();
        let one = &mut wire[..first];
        assert_eq!(b.open(one), Ok(HEADER));
        assert_eq!(one[..HEADER], message(0)[..]);
        // Replaying the first again fails: the count moved on.
        let mut replay = one.to_vec();
        replay[..2].copy_from_slice(&(first as u16).to_be_bytes());
        assert!(b.open(&mut replay).is_err());
        // The two, in order, open.
        let mut b2 = Auth::new("0123456789abcdef");
        assert_eq!(b2.open(&mut again[..first]), Ok(HEADER));
        assert_eq!(b2.open(&mut again[first..]), Ok(HEADER + 5));
    }

    #[test]
    fn another_secret_an_altered_byte_or_no_mac_is_refused() {
        let mut a = Auth::new("0123456789abcdef");
        let mut wire = message(3);
        a.seal(&mut wire, 0);
        let mut other = Auth::new("fedcba9876543210");
        assert!(other.open(&mut wire.clone()).is_err());
        let mut altered = wire.clone();
        altered[13] ^= 1;
        assert!(Auth::new("0123456789abcdef").open(&mut altered).is_err());
        let mut plain = message(40);
        assert!(Auth::new("0123456789abcdef").open(&mut plain).is_err());
        assert_eq!(
            Auth::new("0123456789abcdef").open(&mut wire),
            Ok(HEADER + 3)
        );
    }
}
