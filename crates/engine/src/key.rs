//! Client identity: the key every binding and index is looked up by.

use std::hash::{BuildHasher, Hasher};

/// Bytes kept inline; longer identities are replaced by a keyed 128-bit digest.
const INLINE: usize = 30;

/// What identifies a client: option 61 when `match-client-id` is on and the client sends it,
/// else the hardware type and address.
///
/// Fixed size and `Copy`, so bindings and events carry it without allocating. An identity longer
/// than 30 bytes (RFC 4361 DUID-based client ids can be) is stored as a 128-bit SipHash digest
/// under the server's key secret ([`KeySecret`]): secret, so that collisions cannot be
/// engineered from outside, and kept with the leases, so that a restarted server derives the
/// same key for the same client.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientKey {
    kind: KeyKind,
    len: u8,
    bytes: [u8; INLINE],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
enum KeyKind {
    /// `htype` followed by `chaddr[..hlen]`.
    Hardware,
    /// Option 61 data.
    ClientId,
    /// Digest of an identity too long to keep inline (the first byte says which kind).
    Digest,
}

/// The secret that keys client-identity digests: 128 bits, kept with the lease state.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeySecret(pub [u8; 16]);

impl KeySecret {
    /// A fresh secret from the operating system's randomness (through std's `RandomState`,
    /// whose keys come from it).
    pub fn random() -> KeySecret {
        let a = std::hash::RandomState::new().hash_one(0u8);
        let b = std::hash::RandomState::new().hash_one(1u8);
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&a.to_le_bytes());
        s[8..].copy_from_slice(&b.to_le_bytes());
        KeySecret(s)
    }
}

impl KeySecret {
    /// A secret for another use, derived from this one under `label`: one secret kept with the
    /// leases keys every hash the engine makes, and no two uses share a key.
    pub(crate) fn derive(&self, label: &[u8]) -> KeySecret {
        let half = |n: u8| {
            let mut h = self.build_hasher();
            h.write(label);
            h.write_u8(n);
            h.finish()
        };
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&half(0).to_le_bytes());
        s[8..].copy_from_slice(&half(1).to_le_bytes());
        KeySecret(s)
    }
}

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySecret(..)")
    }
}

impl BuildHasher for KeySecret {
    type Hasher = siphasher::sip::SipHasher13;

    fn build_hasher(&self) -> Self::Hasher {
        siphasher::sip::SipHasher13::new_with_key(&self.0)
    }
}

impl ClientKey {
    /// The key as stored: a kind code and the bytes ([`Self::from_raw`] reverses it).
    pub fn to_raw(&self) -> (u8, &[u8]) {
        (self.kind as u8, self.as_bytes())
    }

    /// A key from [`Self::to_raw`]'s output; `None` if the kind or length is not one this
    /// type produces.
    pub fn from_raw(kind: u8, bytes: &[u8]) -> Option<ClientKey> {
        let kind = match kind {
            0 => KeyKind::Hardware,
            1 => KeyKind::ClientId,
            2 => KeyKind::Digest,
            _ => return None,
        };
        if bytes.len() > INLINE || (kind == KeyKind::Digest && bytes.len() != 17) {
            return None;
        }
        let mut inline = [0u8; INLINE];
        inline[..bytes.len()].copy_from_slice(bytes);
        Some(ClientKey {
            kind,
            len: bytes.len() as u8,
            bytes: inline,
        })
    }

    /// The key of a hardware address.
    pub fn hardware(htype: u8, chaddr: &[u8], seed: &impl BuildHasher) -> ClientKey {
        let mut id = [0u8; 17];
        id[0] = htype;
        let n = chaddr.len().min(16);
        id[1..=n].copy_from_slice(&chaddr[..n]);
        Self::build(KeyKind::Hardware, &id[..=n], seed)
    }

    /// The key of a client identifier (option 61 data).
    pub fn client_id(id: &[u8], seed: &impl BuildHasher) -> ClientKey {
        Self::build(KeyKind::ClientId, id, seed)
    }

    fn build(kind: KeyKind, id: &[u8], seed: &impl BuildHasher) -> ClientKey {
        let mut bytes = [0u8; INLINE];
        if id.len() <= INLINE {
            bytes[..id.len()].copy_from_slice(id);
            return ClientKey {
                kind,
                len: id.len() as u8,
                bytes,
            };
        }
        // Two independent keyed hashes of (kind, id): 128 bits.
        let digest = |salt: u8| seed.hash_one((salt, kind as u8, id));
        bytes[0] = kind as u8;
        bytes[1..9].copy_from_slice(&digest(1).to_le_bytes());
        bytes[9..17].copy_from_slice(&digest(2).to_le_bytes());
        ClientKey {
            kind: KeyKind::Digest,
            len: 17,
            bytes,
        }
    }

    /// This key, or the hardware key it stands for: a client identifier that is the client's
    /// own hardware type and address (`01` + MAC, what most clients that send option 61 send,
    /// and what Windows and Kea record for a client by its MAC) names the same client as that
    /// hardware address, so the client is found whether or not it sends option 61 (RFC 2131
    /// §4.2 leaves the choice to the server; Kea matches either). Any other identifier is a
    /// client of its own.
    #[must_use]
    pub fn canonical(self, htype: u8, chaddr: &[u8]) -> ClientKey {
        let len = usize::from(self.len);
        let own_address = self.kind == KeyKind::ClientId
            && !chaddr.is_empty()
            && len == chaddr.len() + 1
            && self.bytes[0] == htype
            && self.bytes[1..len] == *chaddr;
        if own_address {
            ClientKey {
                kind: KeyKind::Hardware,
                ..self
            }
        } else {
            self
        }
    }

    /// The identity bytes (or the digest, for long identities).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the key is a client identifier (or a digest of one).
    pub fn is_client_id(&self) -> bool {
        match self.kind {
            KeyKind::ClientId => true,
            KeyKind::Hardware => false,
            KeyKind::Digest => self.bytes[0] == KeyKind::ClientId as u8,
        }
    }
}

impl std::hash::Hash for ClientKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The identity only: the unused inline bytes are always zero.
        state.write_u8(self.kind as u8);
        state.write(self.as_bytes());
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}(", self.kind)?;
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::RandomState;

    #[test]
    fn raw_roundtrip_and_stable_digests_under_one_secret() {
        let secret = KeySecret([7; 16]);
        for key in [
            ClientKey::hardware(1, &[2, 0, 0, 0, 0, 1], &secret),
            ClientKey::client_id(&[1, 2, 3], &secret),
            ClientKey::client_id(&[9u8; 100], &secret),
        ] {
            let (kind, bytes) = key.to_raw();
            assert_eq!(ClientKey::from_raw(kind, bytes), Some(key));
        }
        // Same secret, same digest: what lets a restarted server recognise the client.
        assert_eq!(
            ClientKey::client_id(&[9u8; 100], &KeySecret([7; 16])),
            ClientKey::client_id(&[9u8; 100], &secret)
        );
        assert_ne!(
            ClientKey::client_id(&[9u8; 100], &KeySecret([8; 16])),
            ClientKey::client_id(&[9u8; 100], &secret)
        );
        assert_eq!(ClientKey::from_raw(3, &[]), None);
        assert_eq!(ClientKey::from_raw(0, &[0; 31]), None);
    }

    #[test]
    fn kinds_do_not_collide_and_long_ids_are_digested() {
        let seed = RandomState::new();
        let hw = ClientKey::hardware(1, &[2, 0, 0, 0, 0, 1], &seed);
        let cid = ClientKey::client_id(&[1, 2, 0, 0, 0, 0, 1], &seed);
        assert_eq!(hw.as_bytes(), cid.as_bytes());
        assert_ne!(hw, cid);
        let long = [7u8; 100];
        let a = ClientKey::client_id(&long, &seed);
        assert_eq!(a, ClientKey::client_id(&long, &seed));
        assert!(a.is_client_id());
        let mut other = long;
        other[99] = 8;
        assert_ne!(a, ClientKey::client_id(&other, &seed));
    }
}
