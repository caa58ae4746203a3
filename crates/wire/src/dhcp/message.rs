//! A received DHCP message with its options indexed in one pass.

use core::net::Ipv4Addr;

use crate::{Error, Result};

use super::codes::{MessageType, opt};
use super::options::{OptionIter, OptionValue, RawOption};
use super::packet::{DhcpPacket, field};
use super::relay::RelayAgentInfo;

/// Option codes indexed while parsing, so a server's lookups cost no second walk.
const TRACKED: [u8; 13] = [
    opt::MESSAGE_TYPE,
    opt::REQUESTED_IP,
    opt::LEASE_TIME,
    opt::SERVER_ID,
    opt::PARAMETER_REQUEST_LIST,
    opt::MAX_MESSAGE_SIZE,
    opt::CLIENT_ID,
    opt::HOSTNAME,
    opt::VENDOR_CLASS,
    opt::CLIENT_FQDN,
    opt::SUBNET_SELECTION,
    opt::RELAY_AGENT_INFO,
    opt::OVERLOAD,
];

/// `SLOTS[code]` is the index of `code` in `TRACKED`, or `NOT_TRACKED`.
const SLOTS: [u8; 256] = {
    let mut slots = [NOT_TRACKED; 256];
    let mut i = 0;
    while i < TRACKED.len() {
        slots[TRACKED[i] as usize] = i as u8;
        i += 1;
    }
    slots
};
const NOT_TRACKED: u8 = u8::MAX;

#[inline]
fn slot_of(code: u8) -> Option<usize> {
    match SLOTS[usize::from(code)] {
        NOT_TRACKED => None,
        i => Some(usize::from(i)),
    }
}

/// Where the first instance of a tracked option lies, and whether more follow.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    present: bool,
    multiple: bool,
    area: u8,
    len: u8,
    start: u32,
}

const AREA_OPTIONS: usize = 0;
const AREA_FILE: usize = 1;
const AREA_SNAME: usize = 2;

/// A parsed DHCP message: the BOOTP header view plus an index of the options a server reads.
///
/// [`DhcpMessage::parse`] checks the header and magic cookie, honours option 52 (overload into
/// `file` and `sname`) and validates every option's length in all areas, so the accessors
/// never fail on structure. Options are concatenated per RFC 3396 in the order options field,
/// `file`, `sname`.
#[derive(Debug, Clone)]
pub struct DhcpMessage<'a> {
    packet: DhcpPacket<&'a [u8]>,
    areas: [&'a [u8]; 3],
    slots: [Slot; TRACKED.len()],
    overload: u8,
}

impl<'a> DhcpMessage<'a> {
    /// Parses and indexes `buf`, the UDP payload of a DHCP message.
    pub fn parse(buf: &'a [u8]) -> Result<DhcpMessage<'a>> {
        let packet = DhcpPacket::new_checked(buf)?;
        let mut msg = DhcpMessage {
            packet,
            areas: [&buf[field::OPTIONS..], &[], &[]],
            slots: [Slot::default(); TRACKED.len()],
            overload: 0,
        };
        msg.index_area(AREA_OPTIONS)?;
        if let Some(v) = msg.tracked(opt::OVERLOAD) {
            // Option 52 must appear once in the options field with one byte, 1 to 3.
            msg.overload = match v.as_slice() {
                Some(&[o @ 1..=3]) => o,
                _ => return Err(Error::Malformed),
            };
        }
        if msg.overload & 1 != 0 {
            msg.areas[AREA_FILE] = &buf[field::FILE];
            msg.index_area(AREA_FILE)?;
        }
        if msg.overload & 2 != 0 {
            msg.areas[AREA_SNAME] = &buf[field::SNAME];
            msg.index_area(AREA_SNAME)?;
        }
        Ok(msg)
    }

    fn index_area(&mut self, area: usize) -> Result<()> {
        let mut it = OptionIter::new(self.areas[area]);
        while let Some(item) = it.next_span() {
            let (code, start, len) = item?;
            // Option 52 counts only in the options field (RFC 2131 §4.1).
            if code == opt::OVERLOAD && area != AREA_OPTIONS {
                continue;
            }
            if let Some(i) = slot_of(code) {
                let slot = &mut self.slots[i];
                if slot.present {
                    slot.multiple = true;
                } else {
                    *slot = Slot {
                        present: true,
                        multiple: false,
                        area: area as u8,
                        len: len as u8,
                        start: u32::try_from(start).map_err(|_| Error::Malformed)?,
                    };
                }
            }
        }
        Ok(())
    }

    fn tracked(&self, code: u8) -> Option<OptionValue<'a>> {
        let slot = self.slots[slot_of(code)?];
        slot.present.then(|| {
            let first = (
                usize::from(slot.area),
                slot.start as usize,
                usize::from(slot.len),
            );
            OptionValue::new(code, self.areas, first, slot.multiple)
        })
    }

    /// A tracked option's data as a fixed-size array, if it has exactly `N` bytes: what
    /// `tracked(code)?.to_array()` gives, read straight from the index when the option came in
    /// one piece (the message type alone is asked for several times per request).
    fn tracked_array<const N: usize>(&self, code: u8) -> Option<[u8; N]> {
        let slot = self.slots[slot_of(code)?];
        if !slot.present {
            return None;
        }
        if slot.multiple {
            return self.tracked(code)?.to_array();
        }
        let start = slot.start as usize;
        self.areas[usize::from(slot.area)]
            .get(start..start + usize::from(slot.len))?
            .try_into()
            .ok()
    }

    /// The BOOTP header view.
    pub fn packet(&self) -> &DhcpPacket<&'a [u8]> {
        &self.packet
    }

    /// The option 52 value: 0 (none), 1 (`file`), 2 (`sname`) or 3 (both).
    pub fn overload(&self) -> u8 {
        self.overload
    }

    /// Every option instance in aggregate order (options, then `file`, then `sname`).
    pub fn options(&self) -> impl Iterator<Item = RawOption<'a>> + 'a {
        // The areas were validated by `parse`, so the walk yields no errors.
        self.areas
            .into_iter()
            .flat_map(OptionIter::new)
            .filter_map(Result::ok)
    }

    /// The value of option `code`, concatenated over all its instances.
    pub fn get(&self, code: u8) -> Option<OptionValue<'a>> {
        if slot_of(code).is_some() {
            return self.tracked(code);
        }
        let mut first = None;
        for (area, bytes) in self.areas.iter().enumerate() {
            let mut it = OptionIter::new(bytes);
            while let Some(Ok((c, start, len))) = it.next_span() {
                if c != code {
                    continue;
                }
                if first.is_some() {
                    return first.map(|f| OptionValue::new(code, self.areas, f, true));
                }
                first = Some((area, start, len));
            }
        }
        first.map(|f| OptionValue::new(code, self.areas, f, false))
    }

    /// Option 53, if present, one byte long and a defined type.
    pub fn message_type(&self) -> Option<MessageType> {
        let [t] = self.tracked_array(opt::MESSAGE_TYPE)?;
        MessageType::from_u8(t)
    }

    /// Option 50, the address the client asks for.
    pub fn requested_ip(&self) -> Option<Ipv4Addr> {
        self.tracked_array::<4>(opt::REQUESTED_IP)
            .map(Ipv4Addr::from)
    }

    /// Option 51, the lease time the client asks for, in seconds.
    pub fn lease_time(&self) -> Option<u32> {
        self.tracked_array::<4>(opt::LEASE_TIME)
            .map(u32::from_be_bytes)
    }

    /// Option 54, the server the client addresses.
    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.tracked_array::<4>(opt::SERVER_ID).map(Ipv4Addr::from)
    }

    /// Option 55, the options the client wants, in its order of preference.
    pub fn parameter_request_list(&self) -> Option<OptionValue<'a>> {
        self.tracked(opt::PARAMETER_REQUEST_LIST)
    }

    /// Option 57, the largest DHCP message the client accepts.
    pub fn max_message_size(&self) -> Option<u16> {
        self.tracked_array::<2>(opt::MAX_MESSAGE_SIZE)
            .map(u16::from_be_bytes)
    }

    /// Option 61, the client identifier.
    pub fn client_id(&self) -> Option<OptionValue<'a>> {
        self.tracked(opt::CLIENT_ID)
    }

    /// Option 12, the client's host name.
    pub fn hostname(&self) -> Option<OptionValue<'a>> {
        self.tracked(opt::HOSTNAME)
    }

    /// Option 60, the vendor class identifier.
    pub fn vendor_class(&self) -> Option<OptionValue<'a>> {
        self.tracked(opt::VENDOR_CLASS)
    }

    /// Option 81, the client FQDN (RFC 4702).
    pub fn client_fqdn(&self) -> Option<OptionValue<'a>> {
        self.tracked(opt::CLIENT_FQDN)
    }

    /// Option 118, the subnet selection (RFC 3011).
    pub fn subnet_selection(&self) -> Option<Ipv4Addr> {
        self.tracked_array::<4>(opt::SUBNET_SELECTION)
            .map(Ipv4Addr::from)
    }

    /// Option 82 as raw data (to echo it back verbatim, RFC 3046 §2.2).
    pub fn relay_agent_info_raw(&self) -> Option<OptionValue<'a>> {
        self.tracked(opt::RELAY_AGENT_INFO)
    }

    /// Option 82 parsed into sub-options. A split option 82 is concatenated into `scratch`
    /// (255 bytes per fragment; 1 KiB covers any real relay).
    pub fn relay_agent_info<'s>(&self, scratch: &'s mut [u8]) -> Result<Option<RelayAgentInfo<'s>>>
    where
        'a: 's,
    {
        match self.tracked(opt::RELAY_AGENT_INFO) {
            None => Ok(None),
            Some(v) => RelayAgentInfo::new_checked(v.contiguous(scratch)?).map(Some),
        }
    }
}
