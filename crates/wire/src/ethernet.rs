//! Ethernet II frames with up to two VLAN tags (802.1Q, and QinQ with an 802.1ad or 802.1Q outer tag).

use core::fmt;

use crate::{Error, Result, be16};

/// EtherType values this crate recognises.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IEEE 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag, still sent by older carrier equipment.
    pub const QINQ_LEGACY: u16 = 0x9100;

    /// Whether `t` introduces a VLAN tag.
    pub const fn is_vlan_tpid(t: u16) -> bool {
        matches!(t, VLAN | QINQ | QINQ_LEGACY)
    }
}

mod field {
    use core::ops::Range;
    pub(super) const DST: Range<usize> = 0..6;
    pub(super) const SRC: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: usize = 12;
    pub(super) const HEADER_LEN: usize = 14;
    pub(super) const TAG_LEN: usize = 4;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Length of one VLAN tag (TPID + TCI).
pub const TAG_LEN: usize = field::TAG_LEN;
/// The most VLAN tags a frame may carry here (QinQ).
pub const MAX_TAGS: usize = 2;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Reads a MAC address from the first six bytes of `b`, if there are six.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        b.get(..6)
            .map(|s| MacAddr([s[0], s[1], s[2], s[3], s[4], s[5]]))
    }

    /// The six bytes.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit is set (multicast or broadcast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One VLAN tag: the tag protocol identifier and the tag control information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Tag protocol identifier (0x8100, 0x88a8 or 0x9100).
    pub tpid: u16,
    /// Tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// A tag with the given TPID, VLAN id (low 12 bits used) and priority (low 3 bits used).
    pub const fn new(tpid: u16, vid: u16, pcp: u8) -> VlanTag {
        VlanTag {
            tpid,
            tci: ((pcp as u16 & 7) << 13) | (vid & 0x0fff),
        }
    }

    /// VLAN identifier.
    pub const fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }

    /// Priority code point.
    pub const fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }

    /// Drop eligible indicator.
    pub const fn dei(&self) -> bool {
        self.tci & 0x1000 != 0
    }
}

/// The VLAN tags of a frame, outermost first: none, one (802.1Q) or two (QinQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTags {
    tags: [VlanTag; MAX_TAGS],
    len: u8,
}

impl VlanTags {
    /// No tags.
    pub const NONE: VlanTags = VlanTags {
        tags: [VlanTag { tpid: 0, tci: 0 }; MAX_TAGS],
        len: 0,
    };

    /// One 802.1Q tag with the given VLAN id.
    pub const fn single(tag: VlanTag) -> VlanTags {
        VlanTags {
            tags: [tag, VlanTag { tpid: 0, tci: 0 }],
            len: 1,
        }
    }

    /// A QinQ pair: service (outer) tag, then customer (inner) tag.
    pub const fn double(outer: VlanTag, inner: VlanTag) -> VlanTags {
        VlanTags {
            tags: [outer, inner],
            len: 2,
        }
    }

    /// Builds tags from a slice of at most [`MAX_TAGS`] tags.
    pub fn from_slice(tags: &[VlanTag]) -> Result<VlanTags> {
        match *tags {
            [] => Ok(VlanTags::NONE),
            [t] => Ok(VlanTags::single(t)),
            [o, i] => Ok(VlanTags::double(o, i)),
            _ => Err(Error::Unsupported),
        }
    }

    /// The tags, outermost first.
    pub fn as_slice(&self) -> &[VlanTag] {
        &self.tags[..usize::from(self.len)]
    }

    /// Number of tags.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the frame is untagged.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the tags occupy on the wire.
    pub const fn wire_len(&self) -> usize {
        self.len as usize * TAG_LEN
    }

    /// The outermost tag, if any.
    pub fn outer(&self) -> Option<VlanTag> {
        self.as_slice().first().copied()
    }

    /// The innermost tag, if any (the only tag of a single-tagged frame).
    pub fn inner(&self) -> Option<VlanTag> {
        self.as_slice().last().copied()
    }
}

/// A view of an Ethernet II frame, tagged or not.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` and checks that the header and all its tags are present.
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds the untagged header and every VLAN tag it announces;
    /// a third tag is [`Error::Unsupported`].
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        let mut at = field::ETHERTYPE;
        for _ in 0..=MAX_TAGS {
            if b.len() < at + 2 {
                return Err(Error::Truncated);
            }
            if !ethertype::is_vlan_tpid(be16(b, at)) {
                return Ok(());
            }
            at += TAG_LEN;
        }
        Err(Error::Unsupported)
    }

    /// Consumes the view and returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC address.
    pub fn dst_addr(&self) -> MacAddr {
        let b = &self.buffer.as_ref()[field::DST];
        MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> MacAddr {
        let b = &self.buffer.as_ref()[field::SRC];
        MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// The VLAN tags, outermost first.
    pub fn vlan_tags(&self) -> VlanTags {
        let b = self.buffer.as_ref();
        let mut tags = VlanTags::NONE;
        let mut at = field::ETHERTYPE;
        while tags.len() < MAX_TAGS && ethertype::is_vlan_tpid(be16(b, at)) {
            tags.tags[tags.len()] = VlanTag {
                tpid: be16(b, at),
                tci: be16(b, at + 2),
            };
            tags.len += 1;
            at += TAG_LEN;
        }
        tags
    }

    /// Length of the header including tags.
    pub fn header_len(&self) -> usize {
        let b = self.buffer.as_ref();
        let mut at = field::ETHERTYPE;
        while at < field::ETHERTYPE + MAX_TAGS * TAG_LEN && ethertype::is_vlan_tpid(be16(b, at)) {
            at += TAG_LEN;
        }
        at + 2
    }

    /// The EtherType of the payload, after any tags.
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), self.header_len() - 2)
    }

    /// The payload after the header and tags.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(types: &[u16]) -> std::vec::Vec<u8> {
        let mut f = std::vec![0xffu8; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        for (i, t) in types.iter().enumerate() {
            f.extend_from_slice(&t.to_be_bytes());
            if i + 1 < types.len() {
                f.extend_from_slice(&(100 + i as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&[0xab; 4]);
        f
    }

    #[test]
    fn untagged() {
        let f = frame(&[ethertype::IPV4]);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert!(e.vlan_tags().is_empty());
        assert_eq!(e.ethertype(), ethertype::IPV4);
        assert_eq!(e.header_len(), 14);
        assert_eq!(e.payload(), &[0xab; 4]);
        assert!(e.dst_addr().is_broadcast());
    }

    #[test]
    fn qinq_outer_8021ad_and_8100() {
        for outer in [ethertype::QINQ, ethertype::VLAN, ethertype::QINQ_LEGACY] {
            let f = frame(&[outer, ethertype::VLAN, ethertype::ARP]);
            let e = EthernetFrame::new_checked(&f[..]).unwrap();
            let tags = e.vlan_tags();
            assert_eq!(tags.len(), 2);
            assert_eq!(tags.outer().unwrap().tpid, outer);
            assert_eq!(tags.outer().unwrap().vid(), 100);
            assert_eq!(tags.inner().unwrap().vid(), 101);
            assert_eq!(e.ethertype(), ethertype::ARP);
            assert_eq!(e.header_len(), 22);
        }
    }

    #[test]
    fn three_tags_unsupported_and_truncation() {
        let f = frame(&[
            ethertype::QINQ,
            ethertype::VLAN,
            ethertype::VLAN,
            ethertype::IPV4,
        ]);
        assert_eq!(
            EthernetFrame::new_checked(&f[..]).unwrap_err(),
            Error::Unsupported
        );
        let f = frame(&[ethertype::VLAN, ethertype::IPV4]);
        for cut in 0..18 {
            assert_eq!(
                EthernetFrame::new_checked(&f[..cut]).unwrap_err(),
                Error::Truncated
            );
        }
        assert!(EthernetFrame::new_checked(&f[..18]).is_ok());
    }

    #[test]
    fn tag_fields() {
        let t = VlanTag::new(ethertype::VLAN, 4095, 5);
        assert_eq!((t.vid(), t.pcp(), t.dei()), (4095, 5, false));
        assert!(
            VlanTag {
                tpid: 0x8100,
                tci: 0x1000
            }
            .dei()
        );
    }
}
