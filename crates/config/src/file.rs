//! The file schema: what serde reads from the TOML text, before any check.
//!
//! Addresses, networks and byte strings stay text here and `validate` parses them, so that one
//! run reports every bad value rather than the first. Values validation may refuse are
//! `Spanned` so that its errors can point at them. `config/example.toml` documents every key.

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, Deserializer};

use crate::error::Diagnostics;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct File {
    #[serde(default)]
    pub(crate) server: Server,
    #[serde(default)]
    pub(crate) class: Vec<Spanned<Class>>,
    #[serde(default)]
    pub(crate) scope: Vec<Scope>,
    #[serde(default)]
    pub(crate) dataplane: Dataplane,
    #[serde(default)]
    pub(crate) interface: Vec<Interface>,
    #[serde(default)]
    pub(crate) control: Control,
    pub(crate) leases: Option<Leases>,
    pub(crate) failover: Option<Failover>,
    #[serde(default)]
    pub(crate) dpdk: Dpdk,
    #[serde(default)]
    pub(crate) limits: Limits,
}

/// `[limits]`: storm and flood control.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Limits {
    pub(crate) client_rate: Option<Spanned<u32>>,
    pub(crate) client_burst: Option<Spanned<u32>>,
    pub(crate) relay_rate: Option<Spanned<u32>>,
    pub(crate) relay_burst: Option<Spanned<u32>>,
    pub(crate) relay_key: Option<Spanned<String>>,
    pub(crate) overload_priority: Option<bool>,
}

/// `[dpdk]`: the EAL and the ports' buffers, for `backend = "dpdk"`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Dpdk {
    #[serde(default)]
    pub(crate) eal_args: Vec<Spanned<String>>,
    pub(crate) mbufs: Option<Spanned<u32>>,
    pub(crate) ring: Option<Spanned<u16>>,
}

/// `[failover]`: the failover partner this server shares every scope with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Failover {
    pub(crate) role: Spanned<String>,
    pub(crate) local: Spanned<String>,
    pub(crate) peer: Spanned<String>,
    pub(crate) relationship: Option<Spanned<String>>,
    pub(crate) mclt: Option<Spanned<i64>>,
    pub(crate) split: Option<Spanned<i64>>,
    pub(crate) max_response_delay: Option<Spanned<i64>>,
    pub(crate) max_unacked_updates: Option<Spanned<i64>>,
    pub(crate) load_balance_max_seconds: Option<Spanned<i64>>,
    pub(crate) auto_partner_down: Option<Spanned<i64>>,
    pub(crate) secret: Option<Spanned<String>>,
}

/// `[server]`: behaviour, and the defaults scopes inherit.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Server {
    pub(crate) authoritative: Option<bool>,
    pub(crate) match_client_id: Option<bool>,
    pub(crate) rapid_commit: Option<bool>,
    pub(crate) lease_time: Option<Spanned<u32>>,
    pub(crate) renew_timer: Option<Spanned<u32>>,
    pub(crate) rebind_timer: Option<Spanned<u32>>,
    pub(crate) min_lease_time: Option<Spanned<u32>>,
    pub(crate) max_lease_time: Option<Spanned<u32>>,
    pub(crate) offer_hold: Option<u32>,
    pub(crate) decline_probation: Option<u32>,
    pub(crate) cache_threshold: Option<Spanned<f64>>,
    pub(crate) stash_agent_options: Option<bool>,
    pub(crate) ping_check_ms: Option<Spanned<u32>>,
    #[serde(default)]
    pub(crate) leasequery_requesters: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) options: Options,
}

/// `[[class]]`: conditions (all must hold, at least one given) and options.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Class {
    pub(crate) name: Spanned<String>,
    pub(crate) vendor_class_prefix: Option<Spanned<String>>,
    pub(crate) circuit_id_prefix: Option<Spanned<String>>,
    pub(crate) remote_id_prefix: Option<Spanned<String>>,
    pub(crate) mac_prefix: Option<Spanned<String>>,
    pub(crate) giaddr: Option<Spanned<String>>,
    pub(crate) vlan: Option<Spanned<Vlan>>,
    #[serde(default)]
    pub(crate) options: Options,
}

/// A VLAN as the file writes it: a number (`100`), or text (`"100"`, QinQ `"100.20"`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Vlan {
    Id(i64),
    Text(String),
}

/// `value` as text, where it was, for [`crate::text::vlan`].
pub(crate) fn vlan_text(value: &Spanned<Vlan>) -> Spanned<String> {
    let text = match value.get_ref() {
        Vlan::Id(id) => id.to_string(),
        Vlan::Text(t) => t.clone(),
    };
    Spanned::new(value.span(), text)
}

/// `[[scope]]`: a subnet, its relays, pools, options and reservations.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Scope {
    pub(crate) name: Spanned<String>,
    pub(crate) subnet: Spanned<String>,
    #[serde(default)]
    pub(crate) relay_addresses: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) interfaces: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) vlans: Vec<Spanned<Vlan>>,
    pub(crate) shared_network: Option<Spanned<String>>,
    pub(crate) server_id: Option<Spanned<String>>,
    pub(crate) lease_time: Option<Spanned<u32>>,
    pub(crate) renew_timer: Option<Spanned<u32>>,
    pub(crate) rebind_timer: Option<Spanned<u32>>,
    pub(crate) min_lease_time: Option<Spanned<u32>>,
    pub(crate) max_lease_time: Option<Spanned<u32>>,
    pub(crate) authoritative: Option<bool>,
    pub(crate) match_client_id: Option<bool>,
    pub(crate) rapid_commit: Option<bool>,
    pub(crate) ping_check_ms: Option<Spanned<u32>>,
    pub(crate) failover: Option<bool>,
    #[serde(default)]
    pub(crate) state: State,
    #[serde(default)]
    pub(crate) pool: Vec<Pool>,
    #[serde(default)]
    pub(crate) options: Options,
    #[serde(default)]
    pub(crate) reservation: Vec<Spanned<Reservation>>,
}

/// `state` of a scope.
#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum State {
    #[default]
    Active,
    Inactive,
}

/// `[[scope.pool]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Pool {
    pub(crate) range: Spanned<String>,
    #[serde(default)]
    pub(crate) classes: Vec<Spanned<String>>,
}

/// `[[scope.reservation]]`: exactly one of the four keys, and the address.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Reservation {
    pub(crate) mac: Option<Spanned<String>>,
    pub(crate) client_id: Option<Spanned<String>>,
    pub(crate) circuit_id: Option<Spanned<String>>,
    pub(crate) remote_id: Option<Spanned<String>>,
    pub(crate) address: Spanned<String>,
    pub(crate) hostname: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) options: Options,
}

/// `[dataplane]`: how frames reach the workers.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Dataplane {
    pub(crate) backend: Option<Spanned<String>>,
    /// Any integer, so that a negative count gets the same message as one too large.
    pub(crate) workers: Option<Spanned<i64>>,
    pub(crate) cores: Option<Spanned<Vec<Spanned<i64>>>>,
    pub(crate) handoff: Option<bool>,
    pub(crate) bulk_leasequery_listen: Option<Spanned<String>>,
}

/// `[[interface]]`: an interface to serve, and our address on it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Interface {
    pub(crate) name: Spanned<String>,
    pub(crate) address: Spanned<String>,
    pub(crate) trusted: Option<bool>,
    pub(crate) dpdk_port: Option<Spanned<String>>,
}

/// `[leases]`: the durable lease store.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Leases {
    pub(crate) directory: Spanned<String>,
    pub(crate) durability: Option<Spanned<String>>,
    pub(crate) compact_after: Option<Spanned<i64>>,
    pub(crate) writer_core: Option<Spanned<i64>>,
    pub(crate) commit_interval_us: Option<Spanned<i64>>,
}

/// `[control]`: the control plane.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Control {
    pub(crate) listen: Option<Spanned<String>>,
    pub(crate) token_file: Option<Spanned<String>>,
    pub(crate) tls_cert: Option<Spanned<String>>,
    pub(crate) tls_key: Option<Spanned<String>>,
}

/// An `options` table.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Options {
    pub(crate) routers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) domain_name_servers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) domain_name: Option<Spanned<String>>,
    pub(crate) ntp_servers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) broadcast_address: Option<Spanned<String>>,
    pub(crate) interface_mtu: Option<Spanned<u16>>,
    pub(crate) domain_search: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) tftp_server: Option<Spanned<String>>,
    pub(crate) bootfile_name: Option<Spanned<String>>,
    pub(crate) vendor_specific: Option<Spanned<String>>,
    pub(crate) classless_static_routes: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) v6_only_wait: Option<Spanned<u32>>,
    #[serde(default)]
    pub(crate) custom: Vec<Spanned<Custom>>,
}

/// One `custom` option: a code and exactly one of the three value forms.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Custom {
    pub(crate) code: Spanned<u8>,
    pub(crate) hex: Option<Spanned<String>>,
    pub(crate) text: Option<Spanned<String>>,
    pub(crate) ips: Option<Vec<Spanned<String>>>,
}

/// Reads `text` into the schema, recording syntax, type and unknown-key errors.
///
/// Every syntax error is reported; past those, serde stops at the first error it meets.
pub(crate) fn read(text: &str, d: &mut Diagnostics<'_>) -> Option<File> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    for error in &syntax {
        report(d, root.get_ref(), error);
    }
    if !syntax.is_empty() {
        return None;
    }
    // The tree is kept to name the key of a deserialization error.
    File::deserialize(Deserializer::from(root.clone()))
        .map_err(|error| report(d, root.get_ref(), &error))
        .ok()
}

fn report(d: &mut Diagnostics<'_>, root: &DeTable<'_>, error: &toml::de::Error) {
    let at = error.span().map(|span| span.start);
    let mut key = String::new();
    if let Some(at) = at {
        find_in_table(root, at, &mut key);
    }
    d.error(at, key, error.message());
}

/// Appends to `path` the key path of the innermost entry of `table` whose text covers `at`.
fn find_in_table(table: &DeTable<'_>, at: usize, path: &mut String) -> bool {
    for (key, value) in table {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if covers(key, at) || find_in_value(value, at, path) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn find_in_value(value: &Spanned<DeValue<'_>>, at: usize, path: &mut String) -> bool {
    // Children first: the span of a `[[table]]` element is its header only, its entries lie
    // outside it.
    let inside = match value.get_ref() {
        DeValue::Table(table) => find_in_table(table, at, path),
        DeValue::Array(array) => array.iter().enumerate().any(|(i, element)| {
            let len = path.len();
            path.push('[');
            path.push_str(&i.to_string());
            path.push(']');
            let found = find_in_value(element, at, path);
            if !found {
                path.truncate(len);
            }
            found
        }),
        _ => false,
    };
    inside || covers(value, at)
}

/// Whether the text of `value` covers offset `at`; an empty span covers its start.
fn covers<T>(value: &Spanned<T>, at: usize) -> bool {
    let span = value.span();
    span.start <= at && at < span.end.max(span.start + 1)
}
