//! `[[interface]]`: each a valid interface name and a unicast address, both unique.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::error::Diagnostics;
use crate::file;
use crate::model::InterfaceConfig;
use crate::text;

/// Every `[[interface]]`: names and addresses unique; with `dpdk` (the backend), each names its
/// DPDK port, and without, none does.
pub(super) fn interfaces(
    list: &[file::Interface],
    dpdk: bool,
    d: &mut Diagnostics<'_>,
) -> Option<Vec<InterfaceConfig>> {
    let mut names: HashMap<&str, String> = HashMap::new();
    let mut addresses: HashMap<Ipv4Addr, String> = HashMap::new();
    let checked: Vec<_> = list
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let key = format!("interface[{i}]");
            let name_key = format!("{key}.name");
            let name = d
                .parse(&f.name, &name_key, text::interface_name)
                .and_then(|name| {
                    if let Some(first) = names.get(name.as_str()) {
                        let message = format!("`{name}` is the name of {first} already");
                        d.at(&f.name, &name_key, message);
                        return None;
                    }
                    names.insert(f.name.get_ref(), name_key.clone());
                    Some(name)
                });
            let address_key = format!("{key}.address");
            let address = d
                .parse(&f.address, &address_key, text::unicast)
                .and_then(|a| {
                    if let Some(first) = addresses.get(&a) {
                        d.at(
                            &f.address,
                            &address_key,
                            format_args!("{a} is the address of {first} already"),
                        );
                        return None;
                    }
                    addresses.insert(a, key.clone());
                    Some(a)
                });
            let dpdk_port = dpdk_port(f, &key, dpdk, d);
            Some(InterfaceConfig {
                name: name?,
                address: address?,
                trusted: f.trusted.unwrap_or(false),
                dpdk_port: dpdk_port.ok()?,
            })
        })
        .collect();
    checked.into_iter().collect()
}

/// The DPDK port of interface `f`: required with the DPDK backend, refused with another (`Err`
/// once the problem is recorded).
fn dpdk_port(
    f: &file::Interface,
    key: &str,
    dpdk: bool,
    d: &mut Diagnostics<'_>,
) -> Result<Option<String>, ()> {
    let at = format!("{key}.dpdk-port");
    match (&f.dpdk_port, dpdk) {
        (Some(port), true) => d.parse(port, &at, text::non_empty).map(Some).ok_or(()),
        (None, false) => Ok(None),
        (None, true) => {
            let message = "backend dpdk needs the DPDK port of each interface: a device name \
                           (net_af_packet0) or a PCI address";
            d.at(&f.name, at, message);
            Err(())
        }
        (Some(port), false) => {
            d.at(port, at, "only for backend = \"dpdk\"");
            Err(())
        }
    }
}
