//! DHCP options: from an `options` table of the file to an [`OptionSet`] on the wire format.

use std::net::Ipv4Addr;

use toml::Spanned;

use crate::error::Diagnostics;
use crate::file;
use crate::model::OptionSet;
use crate::text;

/// Options the server writes itself, from the scope, the lease or the request; a `custom` entry
/// must not set them.
const SERVER_OWNED: [(u8, &str); 14] = [
    (1, "subnet mask, from the scope's subnet"),
    (50, "requested IP address"),
    (51, "lease time, from lease-time"),
    (52, "option overload"),
    (53, "message type"),
    (54, "server identifier, from server-id"),
    (55, "parameter request list"),
    (57, "maximum message size"),
    (58, "renewal time, from renew-timer"),
    (59, "rebinding time, from rebind-timer"),
    (61, "client identifier"),
    (80, "rapid commit, from rapid-commit"),
    (82, "relay agent information"),
    (118, "subnet selection, a relay's or a client's (RFC 3011)"),
];

/// RFC 8925's `MIN_V6ONLY_WAIT`, in seconds.
const MIN_V6ONLY_WAIT: u32 = 300;

/// Encodes the options table at `key` (`scope[0].options`, say); `None` after recording errors.
pub(crate) fn encode(
    options: &file::Options,
    key: &str,
    d: &mut Diagnostics<'_>,
) -> Option<OptionSet> {
    let mut e = Encoder {
        key,
        d,
        set: OptionSet::default(),
        set_by: Vec::new(),
        ok: true,
    };
    e.addresses(3, "routers", options.routers.as_ref());
    e.addresses(
        6,
        "domain-name-servers",
        options.domain_name_servers.as_ref(),
    );
    e.addresses(42, "ntp-servers", options.ntp_servers.as_ref());
    e.single(15, "domain-name", options.domain_name.as_ref(), |s| {
        text::domain_name(s).map(|_| s.as_bytes().to_vec())
    });
    e.single(
        28,
        "broadcast-address",
        options.broadcast_address.as_ref(),
        |s| text::ipv4(s).map(|a| a.octets().to_vec()),
    );
    e.single(66, "tftp-server", options.tftp_server.as_ref(), |s| {
        text::non_empty(s).map(String::into_bytes)
    });
    e.single(67, "bootfile-name", options.bootfile_name.as_ref(), |s| {
        text::non_empty(s).map(String::into_bytes)
    });
    e.single(
        43,
        "vendor-specific",
        options.vendor_specific.as_ref(),
        |s| text::hex(s).and_then(non_empty),
    );
    e.mtu(options.interface_mtu.as_ref());
    e.v6_only_wait(options.v6_only_wait.as_ref());
    e.list(
        119,
        "domain-search",
        options.domain_search.as_ref(),
        domain_search,
    );
    e.list(
        121,
        "classless-static-routes",
        options.classless_static_routes.as_ref(),
        route,
    );
    for (i, custom) in options.custom.iter().enumerate() {
        e.custom(i, custom);
    }
    e.ok.then_some(e.set)
}

struct Encoder<'k, 'd, 'a> {
    /// Key of the options table, for error paths.
    key: &'k str,
    d: &'d mut Diagnostics<'a>,
    set: OptionSet,
    /// Which key set each code, to name it when a `custom` entry sets the code again.
    set_by: Vec<(u8, String)>,
    /// Whether no error was recorded.
    ok: bool,
}

impl Encoder<'_, '_, '_> {
    fn put(&mut self, code: u8, by: String, data: Option<Vec<u8>>) {
        match data {
            Some(data) => {
                self.set.set(code, data);
                self.set_by.push((code, by));
            }
            None => self.ok = false,
        }
    }

    /// An option of one value.
    fn single(
        &mut self,
        code: u8,
        name: &str,
        value: Option<&Spanned<String>>,
        encode: impl FnOnce(&str) -> Result<Vec<u8>, String>,
    ) {
        if let Some(value) = value {
            let data = self
                .d
                .parse(value, format_args!("{}.{name}", self.key), encode);
            self.put(code, name.to_owned(), data);
        }
    }

    /// An option whose data is its entries' encodings, one after the other; at least one entry.
    fn list(
        &mut self,
        code: u8,
        name: &str,
        list: Option<&Spanned<Vec<Spanned<String>>>>,
        encode: impl Fn(&str) -> Result<Vec<u8>, String>,
    ) {
        let Some(list) = list else { return };
        if list.get_ref().is_empty() {
            self.d.at(
                list,
                format_args!("{}.{name}", self.key),
                "must list at least one entry",
            );
            self.ok = false;
            return;
        }
        let parts: Vec<_> = list
            .get_ref()
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                self.d
                    .parse(entry, format_args!("{}.{name}[{i}]", self.key), &encode)
            })
            .collect();
        let data = parts
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.concat());
        self.put(code, name.to_owned(), data);
    }

    fn addresses(&mut self, code: u8, name: &str, list: Option<&Spanned<Vec<Spanned<String>>>>) {
        self.list(code, name, list, |s| {
            text::ipv4(s).map(|a| a.octets().to_vec())
        });
    }

    fn mtu(&mut self, mtu: Option<&Spanned<u16>>) {
        let Some(mtu) = mtu else { return };
        let data = if *mtu.get_ref() >= 68 {
            Some(mtu.get_ref().to_be_bytes().to_vec())
        } else {
            // RFC 2132 9.4: 68 is the least MTU an IPv4 link may have.
            self.d.at(
                mtu,
                format_args!("{}.interface-mtu", self.key),
                "must be at least 68",
            );
            None
        };
        self.put(26, "interface-mtu".to_owned(), data);
    }

    /// Option 108 (RFC 8925): sent only to a client that lists it, as every option is.
    fn v6_only_wait(&mut self, wait: Option<&Spanned<u32>>) {
        let Some(wait) = wait else { return };
        let data = if *wait.get_ref() >= MIN_V6ONLY_WAIT {
            Some(wait.get_ref().to_be_bytes().to_vec())
        } else {
            let message = format_args!(
                "must be at least {MIN_V6ONLY_WAIT}: RFC 8925 clients wait that long whatever is sent"
            );
            self.d
                .at(wait, format_args!("{}.v6-only-wait", self.key), message);
            None
        };
        self.put(108, "v6-only-wait".to_owned(), data);
    }

    fn custom(&mut self, i: usize, custom: &Spanned<file::Custom>) {
        let key = format!("{}.custom[{i}]", self.key);
        let c = custom.get_ref();
        let code = *c.code.get_ref();
        let code_ok = if code == 0 || code == 255 {
            self.d.at(
                &c.code,
                format_args!("{key}.code"),
                format_args!("{code} is pad or end, not an option"),
            );
            false
        } else if let Some((_, what)) = SERVER_OWNED.iter().find(|(owned, _)| *owned == code) {
            let message = format_args!("option {code} ({what}) is written by the server");
            self.d.at(&c.code, format_args!("{key}.code"), message);
            false
        } else if let Some((_, by)) = self.set_by.iter().find(|(set, _)| *set == code) {
            let message = format_args!("option {code} is set already, by `{by}`");
            self.d.at(&c.code, format_args!("{key}.code"), message);
            false
        } else {
            true
        };
        let data = match (&c.hex, &c.text, &c.ips) {
            (Some(hex), None, None) => self.d.parse(hex, format_args!("{key}.hex"), text::hex),
            (None, Some(value), None) => Some(value.get_ref().as_bytes().to_vec()),
            (None, None, Some(ips)) => {
                let parts: Vec<_> = ips
                    .iter()
                    .enumerate()
                    .map(|(j, ip)| self.d.parse(ip, format_args!("{key}.ips[{j}]"), text::ipv4))
                    .collect();
                parts
                    .into_iter()
                    .collect::<Option<Vec<Ipv4Addr>>>()
                    .map(|ips| ips.iter().flat_map(Ipv4Addr::octets).collect())
            }
            _ => {
                self.d
                    .at(custom, &key, "give exactly one of hex, text or ips");
                None
            }
        };
        self.put(code, key, data.filter(|_| code_ok));
    }
}

fn non_empty(data: Vec<u8>) -> Result<Vec<u8>, String> {
    if data.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(data)
}

/// One name of option 119, in RFC 1035 encoding without compression (RFC 3397).
fn domain_search(name: &str) -> Result<Vec<u8>, String> {
    let labels = text::domain_name(name)?;
    let mut data = Vec::with_capacity(name.len() + 2);
    for label in labels {
        data.push(label.len() as u8);
        data.extend_from_slice(label.as_bytes());
    }
    data.push(0);
    Ok(data)
}

/// One route of option 121, written `destination/prefix via router` (RFC 3442 encoding: the
/// prefix length, the significant octets of the destination, the router).
fn route(s: &str) -> Result<Vec<u8>, String> {
    let [destination, "via", router] = s.split_whitespace().collect::<Vec<_>>()[..] else {
        return Err(format!(
            "`{s}` is not a route (`destination/prefix via router`)"
        ));
    };
    let destination = text::network(destination)?;
    let router = text::ipv4(router)?;
    let significant = usize::from(destination.prefix.div_ceil(8));
    let mut data = Vec::with_capacity(1 + significant + 4);
    data.push(destination.prefix);
    data.extend_from_slice(&destination.addr.octets()[..significant]);
    data.extend_from_slice(&router.octets());
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_keep_significant_octets_only() {
        assert_eq!(route("0.0.0.0/0 via 10.0.0.1"), Ok(vec![0, 10, 0, 0, 1]));
        assert_eq!(
            route("10.0.0.0/8 via 10.0.0.1"),
            Ok(vec![8, 10, 10, 0, 0, 1])
        );
        assert_eq!(
            route("10.17.0.0/9 via 10.0.0.1"),
            Err("`10.17.0.0/9` has host bits set; the network is 10.0.0.0/9".to_owned())
        );
        assert_eq!(
            route("10.128.0.0/9  via\t10.0.0.1"),
            Ok(vec![9, 10, 128, 10, 0, 0, 1])
        );
        assert_eq!(
            route("192.0.2.128/25 via 10.0.0.1"),
            Ok(vec![25, 192, 0, 2, 128, 10, 0, 0, 1])
        );
        assert_eq!(
            route("192.0.2.7/32 via 10.0.0.1"),
            Ok(vec![32, 192, 0, 2, 7, 10, 0, 0, 1])
        );
        for bad in [
            "10.0.0.0/8",
            "10.0.0.0/8 10.0.0.1",
            "10.0.0.0/8 via",
            "10.0.0.0/8 via x",
        ] {
            assert!(route(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_names_end_with_the_root_label() {
        assert_eq!(
            domain_search("a.example."),
            Ok(b"\x01a\x07example\x00".to_vec())
        );
        assert!(domain_search("a..example").is_err());
    }
}
