//! `[[interface]]`: each a valid interface name and a unicast address, both unique.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::error::Diagnostics;
use crate::file;
use crate::model::InterfaceConfig;
use crate::text;

/// Every `[[interface]]`: names and addresses unique.
pub(super) fn interfaces(
    list: &[file::Interface],
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
            Some(InterfaceConfig {
                name: name?,
                address: address?,
                trusted: f.trusted.unwrap_or(false),
            })
        })
        .collect();
    checked.into_iter().collect()
}
