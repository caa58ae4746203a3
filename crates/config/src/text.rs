//! The textual value syntaxes of the file: addresses, networks, ranges, MACs, byte strings,
//! domain names, interface names and socket addresses. Each parser returns the message for the
//! error it finds.

use std::net::{Ipv4Addr, SocketAddr};

use crate::model::{Ipv4Net, VlanMatch};

/// An IPv4 address in dotted-quad form.
pub(crate) fn ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an IPv4 address"))
}

/// An IPv4 address a host can have: not 0.0.0.0, broadcast or multicast.
pub(crate) fn unicast(s: &str) -> Result<Ipv4Addr, String> {
    let a = ipv4(s)?;
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
        return Err(format!("`{s}` is not a unicast address"));
    }
    Ok(a)
}

/// A unicast address (as a /32) or a network in CIDR form.
pub(crate) fn address_or_network(s: &str) -> Result<Ipv4Net, String> {
    if s.contains('/') {
        network(s)
    } else {
        unicast(s).map(|addr| Ipv4Net { addr, prefix: 32 })
    }
}

/// A network in CIDR form, host bits zero.
pub(crate) fn network(s: &str) -> Result<Ipv4Net, String> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a network (address/prefix)"))?;
    let addr = ipv4(addr)?;
    let prefix = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("`{s}` has a bad prefix length (0 to 32)"))?;
    let net = Ipv4Net { addr, prefix };
    let canonical = Ipv4Addr::from_bits(addr.to_bits() & net.mask_bits());
    if canonical != addr {
        return Err(format!(
            "`{s}` has host bits set; the network is {canonical}/{prefix}"
        ));
    }
    Ok(net)
}

/// A pool range as written; a block's bounds depend on the scope's subnet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PoolRange {
    /// `first - last`, both included.
    Addresses(Ipv4Addr, Ipv4Addr),
    /// `network/prefix`.
    Block(Ipv4Net),
}

/// `first - last` (spaces around the dash optional) or a network in CIDR form.
pub(crate) fn pool_range(s: &str) -> Result<PoolRange, String> {
    if s.contains('/') {
        return network(s).map(PoolRange::Block);
    }
    let (first, last) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}` is not a range (`first - last` or `network/prefix`)"))?;
    Ok(PoolRange::Addresses(
        ipv4(first.trim())?,
        ipv4(last.trim())?,
    ))
}

/// A MAC address: six octets of two hex digits, separated by `:` or `-`.
pub(crate) fn mac(s: &str) -> Result<[u8; 6], String> {
    octets(s)
        .and_then(|o| o.try_into().ok())
        .ok_or_else(|| format!("`{s}` is not a MAC address (six octets, as in 02:00:5e:00:53:01)"))
}

/// The first one to six octets of a MAC address, written as in [`mac`].
/// A VLAN: `outer`, or `outer.inner` for QinQ; ids 1 to 4094.
pub(crate) fn vlan(s: &str) -> Result<VlanMatch, String> {
    let id = |t: &str| t.parse::<u16>().ok().filter(|v| (1..=4094).contains(v));
    let (outer, inner) = match s.split_once('.') {
        Some((o, i)) => (id(o), Some(id(i))),
        None => (id(s), None),
    };
    match (outer, inner) {
        (Some(outer), None) => Ok(VlanMatch { outer, inner: None }),
        (Some(outer), Some(Some(inner))) => Ok(VlanMatch {
            outer,
            inner: Some(inner),
        }),
        _ => Err(format!(
            "`{s}` is not a VLAN (an id 1 to 4094, or outer.inner for QinQ, as in 100.20)"
        )),
    }
}

pub(crate) fn mac_prefix(s: &str) -> Result<Vec<u8>, String> {
    octets(s)
        .filter(|o| o.len() <= 6)
        .ok_or_else(|| format!("`{s}` is not a MAC prefix (one to six octets, as in 02:00:5e)"))
}

fn octets(s: &str) -> Option<Vec<u8>> {
    s.split([':', '-']).map(|o| byte(o.as_bytes())).collect()
}

/// Hex digits, an even number of them, with an optional `0x` prefix; may be empty.
pub(crate) fn hex(s: &str) -> Result<Vec<u8>, String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    digits
        .as_bytes()
        .chunks(2)
        .map(byte)
        .collect::<Option<_>>()
        .ok_or_else(|| format!("`{s}` is not hex (an even number of hex digits)"))
}

/// The byte two hex digits spell.
fn byte(digits: &[u8]) -> Option<u8> {
    match digits {
        [high, low] => Some((nibble(*high)? << 4) | nibble(*low)?),
        _ => None,
    }
}

fn nibble(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|v| v as u8)
}

/// A byte string: hex after a `0x` prefix, else the UTF-8 text itself; not empty.
pub(crate) fn bytes(s: &str) -> Result<Vec<u8>, String> {
    let bytes = if s.starts_with("0x") {
        hex(s)?
    } else {
        s.as_bytes().to_vec()
    };
    if bytes.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(bytes)
}

/// Text that must not be empty.
pub(crate) fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(s.to_owned())
}

/// The longest interface name Linux takes, in bytes: `IFNAMSIZ` less the terminating NUL.
const MAX_INTERFACE_NAME: usize = 15;

/// An OS interface name, as Linux accepts it (`dev_valid_name`): 1 to 15 bytes, without `/`,
/// `:`, whitespace or control characters, and neither `.` nor `..`.
pub(crate) fn interface_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let shown = s.escape_debug();
    if s.len() > MAX_INTERFACE_NAME {
        return Err(format!(
            "`{shown}` is {} bytes long; an interface name has at most {MAX_INTERFACE_NAME}",
            s.len()
        ));
    }
    if s == "." || s == ".." {
        return Err(format!("`{s}` is not an interface name"));
    }
    let what = s.chars().find_map(|c| match c {
        '/' | ':' => Some(format!("`{c}`")),
        c if c.is_whitespace() => Some("whitespace".to_owned()),
        c if c.is_control() => Some("a control character".to_owned()),
        _ => None,
    });
    match what {
        Some(what) => Err(format!(
            "`{shown}` is not an interface name: it contains {what}"
        )),
        None => Ok(s.to_owned()),
    }
}

/// An address and port to listen on: `a.b.c.d:port` or `[v6 address]:port`, neither multicast
/// nor broadcast, and not port 0.
pub(crate) fn listen_address(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s.parse().map_err(|_| {
        format!("`{s}` is not a socket address (IP:port, as in 127.0.0.1:9167 or [::1]:9167)")
    })?;
    let ip = addr.ip();
    if ip.is_multicast() || ip == Ipv4Addr::BROADCAST {
        return Err(format!(
            "`{s}` is not an address to listen on: {ip} is not unicast"
        ));
    }
    if addr.port() == 0 {
        return Err(format!("`{s}` has port 0; give the port to listen on"));
    }
    Ok(addr)
}

/// A domain name: its labels, without the optional trailing dot.
///
/// Labels are letters, digits and inner hyphens (RFC 1123), 1 to 63 characters; the name is at
/// most 253 characters, so that its encoding fits the 255 bytes of RFC 1035.
pub(crate) fn domain_name(s: &str) -> Result<Vec<&str>, String> {
    let name = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !labels.iter().all(label_ok) {
        return Err(format!(
            "`{s}` is not a domain name (dot-separated labels of letters, digits and hyphens)"
        ));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(addr: [u8; 4], prefix: u8) -> Ipv4Net {
        Ipv4Net {
            addr: addr.into(),
            prefix,
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(ipv4("10.0.0.1"), Ok(Ipv4Addr::new(10, 0, 0, 1)));
        for bad in ["10.0.0", "10.0.0.256", "10.0.0.01", " 10.0.0.1", ""] {
            assert!(ipv4(bad).is_err(), "{bad}");
        }
        assert!(unicast("192.0.2.1").is_ok());
        for bad in ["0.0.0.0", "255.255.255.255", "224.0.0.1"] {
            assert!(unicast(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn networks() {
        assert_eq!(network("10.201.0.0/16"), Ok(net([10, 201, 0, 0], 16)));
        assert_eq!(network("0.0.0.0/0"), Ok(net([0, 0, 0, 0], 0)));
        assert_eq!(network("192.0.2.7/32"), Ok(net([192, 0, 2, 7], 32)));
        assert_eq!(
            network("10.201.1.0/16"),
            Err("`10.201.1.0/16` has host bits set; the network is 10.201.0.0/16".to_owned())
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            assert!(network(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pool_ranges() {
        let range = |a: [u8; 4], b: [u8; 4]| PoolRange::Addresses(a.into(), b.into());
        assert_eq!(
            pool_range("10.0.0.5 - 10.0.0.9"),
            Ok(range([10, 0, 0, 5], [10, 0, 0, 9]))
        );
        assert_eq!(
            pool_range("10.0.0.5-10.0.0.9"),
            Ok(range([10, 0, 0, 5], [10, 0, 0, 9]))
        );
        assert_eq!(
            pool_range("10.0.1.0/24"),
            Ok(PoolRange::Block(net([10, 0, 1, 0], 24)))
        );
        for bad in [
            "10.0.0.5",
            "10.0.0.5 -",
            "10.0.0.5 to 10.0.0.9",
            "10.0.1.1/24",
        ] {
            assert!(pool_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(mac("02:00:5e:00:53:01"), Ok([2, 0, 0x5e, 0, 0x53, 1]));
        assert_eq!(mac("02-00-5E-00-53-01"), Ok([2, 0, 0x5e, 0, 0x53, 1]));
        for bad in [
            "02:00:5e:00:53",
            "02:00:5e:00:53:01:02",
            "2:0:5e:0:53:1",
            "02:00:5e:00:53:0g",
        ] {
            assert!(mac(bad).is_err(), "{bad}");
        }
        assert_eq!(mac_prefix("00:11:22"), Ok(vec![0, 0x11, 0x22]));
        assert!(mac_prefix("").is_err());
        assert!(mac_prefix("00:11:22:33:44:55:66").is_err());
    }

    #[test]
    fn hex_and_bytes() {
        assert_eq!(hex("0102ff"), Ok(vec![1, 2, 0xff]));
        assert_eq!(hex("0x0102FF"), Ok(vec![1, 2, 0xff]));
        assert_eq!(hex(""), Ok(vec![]));
        for bad in ["012", "0x1", "zz", "01 02", "é0"] {
            assert!(hex(bad).is_err(), "{bad}");
        }
        assert_eq!(bytes("eth1/"), Ok(b"eth1/".to_vec()));
        assert_eq!(bytes("0x001122"), Ok(vec![0, 0x11, 0x22]));
        assert!(bytes("").is_err());
        assert!(bytes("0x").is_err());
        assert!(bytes("0xabc").is_err());
    }

    #[test]
    fn interface_names() {
        for good in [
            "eth1",
            "bond0.100",
            "enp3s0f1",
            "a",
            "fifteen-bytes-x",
            "wlö0",
        ] {
            assert_eq!(interface_name(good), Ok(good.to_owned()), "{good}");
        }
        for bad in [
            "",
            "sixteen-bytes-xx",
            // 14 characters, 16 bytes.
            "öö-twelve-more",
            ".",
            "..",
            "eth1/2",
            "eth0:1",
            "eth 1",
            "eth1\t",
            "eth\u{a0}1",
            "eth\u{0}1",
        ] {
            assert!(interface_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            interface_name("eth0:1"),
            Err("`eth0:1` is not an interface name: it contains `:`".to_owned())
        );
        assert_eq!(
            interface_name("eth\n1"),
            Err("`eth\\n1` is not an interface name: it contains whitespace".to_owned())
        );
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            listen_address("127.0.0.1:9167"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9167)))
        );
        assert_eq!(
            listen_address("0.0.0.0:80"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 80)))
        );
        assert_eq!(
            listen_address("[::1]:9167"),
            Ok(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 9167)))
        );
        for bad in [
            "",
            "127.0.0.1",
            "localhost:9167",
            "127.0.0.1:65536",
            "::1:9167",
            "224.0.0.1:9167",
            "255.255.255.255:9167",
            "[ff02::1]:9167",
            "127.0.0.1:0",
        ] {
            assert!(listen_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn domain_names() {
        assert_eq!(domain_name("example.net"), Ok(vec!["example", "net"]));
        assert_eq!(domain_name("example.net."), Ok(vec!["example", "net"]));
        assert_eq!(domain_name("cpe-1"), Ok(vec!["cpe-1"]));
        let long_label = "a".repeat(64);
        let long_name = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62),
        ]
        .join(".");
        assert_eq!(long_name.len(), 254);
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a_b",
            &long_label,
            &long_name,
        ] {
            assert!(domain_name(bad).is_err(), "{bad}");
        }
    }
}
