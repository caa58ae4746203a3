//! `[[class]]`: a unique name, at least one condition, options.

use std::collections::HashMap;

use toml::Spanned;

use super::{Field, unique_name};
use crate::error::Diagnostics;
use crate::file;
use crate::model::{Class, ClassMatch};
use crate::options;
use crate::text;

pub(super) fn classes(
    classes: &[Spanned<file::Class>],
    d: &mut Diagnostics<'_>,
) -> Option<Vec<Class>> {
    let mut names = HashMap::new();
    let checked: Vec<_> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| class(&format!("class[{i}]"), c, &mut names, d))
        .collect();
    checked.into_iter().collect()
}

fn class<'f>(
    key: &str,
    spanned: &'f Spanned<file::Class>,
    names: &mut HashMap<&'f str, String>,
    d: &mut Diagnostics<'_>,
) -> Option<Class> {
    let c = spanned.get_ref();
    let name = unique_name(&c.name, key, names, d);
    let vlan = c.vlan.as_ref().map(file::vlan_text);
    let fields: [Field<'_, ClassMatch>; 6] = [
        ("vendor-class-prefix", c.vendor_class_prefix.as_ref(), |s| {
            text::bytes(s).map(ClassMatch::VendorClassPrefix)
        }),
        ("circuit-id-prefix", c.circuit_id_prefix.as_ref(), |s| {
            text::bytes(s).map(ClassMatch::CircuitIdPrefix)
        }),
        ("remote-id-prefix", c.remote_id_prefix.as_ref(), |s| {
            text::bytes(s).map(ClassMatch::RemoteIdPrefix)
        }),
        ("mac-prefix", c.mac_prefix.as_ref(), |s| {
            text::mac_prefix(s).map(ClassMatch::MacPrefix)
        }),
        ("giaddr", c.giaddr.as_ref(), |s| {
            text::network(s).map(ClassMatch::Giaddr)
        }),
        ("vlan", vlan.as_ref(), |s| {
            text::vlan(s).map(ClassMatch::Vlan)
        }),
    ];
    let conditions: Vec<_> = fields
        .into_iter()
        .filter_map(|(field, value, parse)| {
            Some(d.parse(value?, format_args!("{key}.{field}"), parse))
        })
        .collect();
    if conditions.is_empty() {
        let message = "needs a condition: vendor-class-prefix, circuit-id-prefix, \
                       remote-id-prefix, mac-prefix, giaddr or vlan";
        d.at(spanned, key, message);
    }
    let options = options::encode(&c.options, &format!("{key}.options"), d);
    Some(Class {
        name: name?,
        conditions: conditions
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .filter(|c| !c.is_empty())?,
        options: options?,
    })
}
