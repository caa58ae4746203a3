//! Every error: the line, column and key it reports, and the gist of its message.

use std::net::Ipv4Addr;
use std::path::Path;

use super::{FILE, assert_error, errors, parse, valid};

/// A scope `a` on 10.0.0.0/24 ending in a `[[scope.pool]]` header (lines 1 to 4); tests append
/// from line 5 on.
const POOL: &str = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\n[[scope.pool]]\n";

/// As [`POOL`], ending in a `[[scope.reservation]]` header.
const RESERVATION: &str =
    "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\n[[scope.reservation]]\n";

// ---- Syntax, types and unknown keys, from the TOML reader ----------------------------------------

#[test]
fn syntax_error() {
    let errors = errors("[server]\nlease-time = = 5\n");
    assert!(!errors.is_empty());
    assert_eq!((errors[0].line, errors[0].column), (2, 14), "{}", errors[0]);
}

#[test]
fn every_syntax_error_is_reported() {
    let errors = errors("a = \nb = 1\nc = ]\n");
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert!(lines.contains(&1) && lines.contains(&3), "{errors:#?}");
}

#[test]
fn duplicate_key() {
    // A syntax error: the position is exact; the key is unknown, the reader keeps the first.
    assert_error(
        "[server]\nlease-time = 5\nlease-time = 6\n",
        "3:1",
        "duplicate key",
    );
}

#[test]
fn unknown_key() {
    let text = format!("{POOL}range = \"10.0.0.10 - 10.0.0.20\"\ncolour = \"red\"\n");
    assert_error(
        &text,
        "6:1 scope[0].pool[0].colour",
        "unknown field `colour`",
    );
}

#[test]
fn unknown_key_in_inline_table() {
    let text = "[server.options]\ncustom = [{ code = 224, bytes = \"01\" }]\n";
    assert_error(
        text,
        "2:25 server.options.custom[0].bytes",
        "unknown field `bytes`",
    );
}

#[test]
fn unknown_top_level_table() {
    assert_error(
        "[serv]\nlease-time = 5\n",
        "1:2 serv",
        "unknown field `serv`",
    );
}

#[test]
fn wrong_type() {
    assert_error(
        "[server]\nlease-time = \"long\"\n",
        "2:14 server.lease-time",
        "invalid type",
    );
}

#[test]
fn out_of_range_integer() {
    assert_error(
        "[server]\noffer-hold = -1\n",
        "2:14 server.offer-hold",
        "expected u32",
    );
    let text = "[server.options]\ncustom = [{ code = 256, hex = \"\" }]\n";
    assert_error(text, "2:20 server.options.custom[0].code", "expected u8");
}

#[test]
fn missing_key() {
    assert_error(
        "[[scope]]\nname = \"a\"\n",
        "1:1 scope[0]",
        "missing field `subnet`",
    );
}

#[test]
fn unknown_state() {
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\nstate = \"off\"\n";
    assert_error(text, "4:9 scope[0].state", "unknown variant `off`");
}

// ---- Server ----------------------------------------------------------------------------------------

#[test]
fn lease_time_zero() {
    assert_error(
        "[server]\nlease-time = 0\n",
        "2:14 server.lease-time",
        "at least 1 second",
    );
}

#[test]
fn renew_not_below_rebind() {
    let text = "[server]\nrenew-timer = 3000\nrebind-timer = 2000\n";
    let message = "renew-timer 3000 must be less than rebind-timer 2000";
    assert_error(text, "2:15 server.renew-timer", message);
}

#[test]
fn rebind_not_below_lease_time() {
    let text = "[server]\nlease-time = 1000\nrebind-timer = 1000\n";
    let message = "rebind-timer 1000 must be less than lease-time 1000";
    assert_error(text, "3:16 server.rebind-timer", message);
}

#[test]
fn renew_above_derived_rebind() {
    // T2 defaults to 87.5 % of 3600: 3150.
    let text = "[server]\nrenew-timer = 3200\n";
    let message = "renew-timer 3200 must be less than rebind-timer 3150 (derived from lease-time)";
    assert_error(text, "2:15 server.renew-timer", message);
}

#[test]
fn bad_leasequery_requester() {
    let text = "[server]\nleasequery-requesters = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n";
    assert_error(
        text,
        "2:40 server.leasequery-requesters[1]",
        "host bits set",
    );
    let text = "[server]\nleasequery-requesters = [\"0.0.0.0\"]\n";
    assert_error(
        text,
        "2:26 server.leasequery-requesters[0]",
        "not a unicast address",
    );
}

#[test]
fn min_lease_time_above_lease_time() {
    let text = "[server]\nlease-time = 1000\nmin-lease-time = 2000\n";
    let message = "min-lease-time 2000 must be at most lease-time 1000";
    assert_error(text, "3:18 server.min-lease-time", message);
}

#[test]
fn max_lease_time_below_lease_time() {
    let text = "[server]\nmax-lease-time = 600\n";
    let message = "lease-time 3600 must be at most max-lease-time 600";
    assert_error(text, "2:18 server.max-lease-time", message);
}

#[test]
fn lease_time_too_short_to_derive() {
    // 50 % and 87.5 % of 1 are both 0.
    let text = "[server]\nlease-time = 1\n";
    assert_error(
        text,
        "2:14 server.lease-time",
        "renew-timer 0 (derived from lease-time)",
    );
}

#[test]
fn cache_threshold_out_of_range() {
    let text = "[server]\ncache-threshold = 1.5\n";
    assert_error(text, "2:19 server.cache-threshold", "between 0 and 1");
    let text = "[server]\ncache-threshold = -0.1\n";
    assert_error(text, "2:19 server.cache-threshold", "between 0 and 1");
    let text = "[server]\ncache-threshold = nan\n";
    assert_error(text, "2:19 server.cache-threshold", "between 0 and 1");
}

// ---- Classes ---------------------------------------------------------------------------------------

#[test]
fn class_without_condition() {
    assert_error(
        "[[class]]\nname = \"x\"\n",
        "1:1 class[0]",
        "needs a condition",
    );
    let text = "class = [{ name = \"x\", options = { domain-name = \"a.b\" } }]\n";
    assert_error(text, "1:10 class[0]", "needs a condition");
}

#[test]
fn duplicate_class_name() {
    let text = "[[class]]\nname = \"x\"\nmac-prefix = \"02\"\n\
                [[class]]\nname = \"x\"\nmac-prefix = \"04\"\n";
    assert_error(
        text,
        "5:8 class[1].name",
        "`x` is the name of class[0].name already",
    );
}

#[test]
fn empty_name() {
    assert_error(
        "[[class]]\nname = \"\"\nmac-prefix = \"02\"\n",
        "2:8 class[0].name",
        "empty",
    );
}

#[test]
fn bad_class_conditions() {
    let text = "[[class]]\nname = \"x\"\n\
                vendor-class-prefix = \"\"\n\
                circuit-id-prefix = \"0x1\"\n\
                remote-id-prefix = \"0xzz\"\n\
                mac-prefix = \"00:11:22:33:44:55:66\"\n\
                giaddr = \"10.0.0.1/8\"\n";
    let found: Vec<_> = errors(text)
        .into_iter()
        .map(|e| (e.line, e.column, e.key))
        .collect();
    assert_eq!(
        found,
        [
            (3, 23, "class[0].vendor-class-prefix".to_owned()),
            (4, 21, "class[0].circuit-id-prefix".to_owned()),
            (5, 20, "class[0].remote-id-prefix".to_owned()),
            (6, 14, "class[0].mac-prefix".to_owned()),
            (7, 10, "class[0].giaddr".to_owned()),
        ]
    );
}

// ---- Scopes ----------------------------------------------------------------------------------------

#[test]
fn duplicate_scope_name() {
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\n\
                [[scope]]\nname = \"a\"\nsubnet = \"10.0.1.0/24\"\n";
    assert_error(
        text,
        "5:8 scope[1].name",
        "`a` is the name of scope[0].name already",
    );
}

#[test]
fn subnet_with_host_bits() {
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.1/24\"\n";
    let message = "`10.0.0.1/24` has host bits set; the network is 10.0.0.0/24";
    assert_error(text, "3:10 scope[0].subnet", message);
}

#[test]
fn bad_cidr() {
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/33\"\n";
    assert_error(text, "3:10 scope[0].subnet", "bad prefix length");
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0\"\n";
    assert_error(text, "3:10 scope[0].subnet", "not a network");
}

#[test]
fn overlapping_subnets() {
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/16\"\n\
                [[scope]]\nname = \"b\"\nsubnet = \"10.0.1.0/24\"\n";
    assert_error(
        text,
        "6:10 scope[1].subnet",
        "10.0.1.0/24 overlaps 10.0.0.0/16 of scope `a`",
    );
}

#[test]
fn bad_ipv4() {
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\nserver-id = \"10.0.0.300\"\n";
    assert_error(
        text,
        "4:13 scope[0].server-id",
        "`10.0.0.300` is not an IPv4 address",
    );
}

#[test]
fn server_id_not_unicast() {
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\nserver-id = \"0.0.0.0\"\n";
    assert_error(text, "4:13 scope[0].server-id", "not a unicast address");
}

#[test]
fn scope_timer_against_derived_one() {
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\nrenew-timer = 4000\n";
    let message = "renew-timer 4000 must be less than rebind-timer 3150 (derived from lease-time)";
    assert_error(text, "4:15 scope[0].renew-timer", message);
}

#[test]
fn scope_timer_against_inherited_one() {
    // The scope's value is named, not the server's, which is fine on its own.
    let text = "[server]\nrebind-timer = 3000\n\
                [[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\nrenew-timer = 3000\n";
    let message = "renew-timer 3000 must be less than rebind-timer 3000 (from [server])";
    assert_error(text, "6:15 scope[0].renew-timer", message);
}

#[test]
fn scope_lease_time_against_its_timer() {
    let text =
        "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\nlease-time = 100\nrebind-timer = 100\n";
    assert_error(
        text,
        "5:16 scope[0].rebind-timer",
        "less than lease-time 100",
    );
}

#[test]
fn scope_lease_time_above_inherited_max() {
    // The server's bound is fine for the server's lease time; the scope's lease time is named.
    let text = "[server]\nmax-lease-time = 7200\n\
                [[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\nlease-time = 86400\n";
    let message = "lease-time 86400 must be at most max-lease-time 7200 (from [server])";
    assert_error(text, "6:14 scope[0].lease-time", message);
}

#[test]
fn server_timer_error_is_reported_once() {
    // Both scopes inherit the broken timers; only [server] is named.
    let text = "[server]\nrenew-timer = 3200\n\
                [[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\n\
                [[scope]]\nname = \"b\"\nsubnet = \"10.0.1.0/24\"\n";
    assert_error(text, "2:15 server.renew-timer", "must be less than");
}

// ---- Pools -----------------------------------------------------------------------------------------

#[test]
fn pool_outside_subnet() {
    let text = format!("{POOL}range = \"10.0.0.200 - 10.0.1.9\"\n");
    let message = "10.0.0.200 - 10.0.1.9 is not inside the subnet 10.0.0.0/24";
    assert_error(&text, "5:9 scope[0].pool[0].range", message);
}

#[test]
fn pool_first_above_last() {
    let text = format!("{POOL}range = \"10.0.0.9 - 10.0.0.1\"\n");
    let message = "first address 10.0.0.9 is above the last, 10.0.0.1";
    assert_error(&text, "5:9 scope[0].pool[0].range", message);
}

#[test]
fn pool_with_network_or_broadcast_address() {
    let text = format!("{POOL}range = \"10.0.0.0 - 10.0.0.20\"\n");
    assert_error(
        &text,
        "5:9 scope[0].pool[0].range",
        "includes the network address",
    );
    let text = format!("{POOL}range = \"10.0.0.128/25\"\n");
    assert_error(
        &text,
        "5:9 scope[0].pool[0].range",
        "includes the broadcast address",
    );
}

#[test]
fn bad_range() {
    let text = format!("{POOL}range = \"10.0.0.9\"\n");
    assert_error(&text, "5:9 scope[0].pool[0].range", "not a range");
    let text = format!("{POOL}range = \"10.0.0.9 - 10.0.0.x\"\n");
    assert_error(
        &text,
        "5:9 scope[0].pool[0].range",
        "`10.0.0.x` is not an IPv4 address",
    );
}

#[test]
fn overlapping_pools_in_a_scope() {
    let text = format!(
        "{POOL}range = \"10.0.0.10 - 10.0.0.20\"\n[[scope.pool]]\nrange = \"10.0.0.20 - 10.0.0.30\"\n"
    );
    let message = "overlaps pool 10.0.0.10 - 10.0.0.20 (scope[0].pool[0].range)";
    assert_error(&text, "7:9 scope[0].pool[1].range", message);
}

#[test]
fn overlapping_pools_across_scopes() {
    // Pools of two scopes overlap only where the subnets do, which is an error too.
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/16\"\n\
                pool = [{ range = \"10.0.1.10 - 10.0.1.20\" }]\n\
                [[scope]]\nname = \"b\"\nsubnet = \"10.0.1.0/24\"\n\
                pool = [{ range = \"10.0.1.15 - 10.0.1.25\" }]\n";
    let found: Vec<_> = errors(text)
        .into_iter()
        .map(|e| (e.line, e.column, e.key, e.message))
        .collect();
    assert_eq!(
        found,
        [
            (
                7,
                10,
                "scope[1].subnet".into(),
                "10.0.1.0/24 overlaps 10.0.0.0/16 of scope `a`".into()
            ),
            (
                8,
                19,
                "scope[1].pool[0].range".into(),
                "overlaps pool 10.0.1.10 - 10.0.1.20 (scope[0].pool[0].range)".into()
            ),
        ]
    );
}

#[test]
fn overlap_with_an_earlier_pool_listed_later() {
    // Sorted by address the later pool comes first; the error still names the later one.
    let text = format!(
        "{POOL}range = \"10.0.0.20 - 10.0.0.30\"\n[[scope.pool]]\nrange = \"10.0.0.10 - 10.0.0.20\"\n"
    );
    let message = "overlaps pool 10.0.0.20 - 10.0.0.30 (scope[0].pool[0].range)";
    assert_error(&text, "7:9 scope[0].pool[1].range", message);
}

#[test]
fn pool_names_unknown_class() {
    let text = format!("{POOL}range = \"10.0.0.10 - 10.0.0.20\"\nclasses = [\"nope\"]\n");
    assert_error(
        &text,
        "6:12 scope[0].pool[0].classes[0]",
        "unknown class `nope`",
    );
}

// ---- Relays and interfaces -------------------------------------------------------------------------

/// Two scopes on 10.0.0.0/24 and 10.0.1.0/24, with the given extra lines.
fn two_scopes(a: &str, b: &str) -> String {
    format!(
        "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\n{a}\n\
         [[scope]]\nname = \"b\"\nsubnet = \"10.0.1.0/24\"\n{b}\n"
    )
}

#[test]
fn relay_address_of_two_scopes() {
    let text = two_scopes(
        "relay-addresses = [\"192.0.2.1\"]",
        "relay-addresses = [\"192.0.2.2\", \"192.0.2.1\"]",
    );
    let message = "192.0.2.1 selects scope `a` already (scope[0].relay-addresses[0])";
    assert_error(&text, "8:33 scope[1].relay-addresses[1]", message);
}

#[test]
fn relay_address_in_another_scopes_subnet() {
    let text = two_scopes("", "relay-addresses = [\"10.0.0.1\"]");
    let message = "10.0.0.1 lies in subnet 10.0.0.0/24 and so selects scope `a` already";
    assert_error(&text, "8:20 scope[1].relay-addresses[0]", message);
}

#[test]
fn relay_address_listed_twice() {
    let text = two_scopes("relay-addresses = [\"192.0.2.1\", \"192.0.2.1\"]", "");
    assert_error(&text, "4:33 scope[0].relay-addresses[1]", "listed already");
}

#[test]
fn relay_address_not_unicast() {
    let text = two_scopes("relay-addresses = [\"255.255.255.255\"]", "");
    assert_error(
        &text,
        "4:20 scope[0].relay-addresses[0]",
        "not a unicast address",
    );
}

#[test]
fn relays_and_interfaces_shared_within_a_shared_network() {
    let text = two_scopes(
        "shared-network = \"n\"\nrelay-addresses = [\"192.0.2.1\"]\ninterfaces = [\"eth1\"]",
        "shared-network = \"n\"\nrelay-addresses = [\"192.0.2.1\", \"10.0.0.1\"]\n\
         interfaces = [\"eth1\"]",
    );
    let config = valid(&text);
    assert_eq!(config.scopes[1].relay_addresses.len(), 2);
    assert_eq!(config.scopes[1].interfaces, ["eth1"]);
}

#[test]
fn interface_of_two_scopes() {
    let text = two_scopes(
        "interfaces = [\"eth1\"]",
        "interfaces = [\"eth2\", \"eth1\"]",
    );
    assert_error(
        &text,
        "8:23 scope[1].interfaces[1]",
        "`eth1` serves scope `a` already",
    );
}

#[test]
fn vlans_of_one_interface_select_different_scopes() {
    // The untagged scope, one on VLAN 100 (numbers or text), one on QinQ 200.10.
    let text = two_scopes(
        "interfaces = [\"eth1\"]",
        "interfaces = [\"eth1\"]\nvlans = [100, \"200.10\"]",
    );
    let config = valid(&text);
    assert!(config.scopes[0].vlans.is_empty());
    let vlans: Vec<String> = config.scopes[1]
        .vlans
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(vlans, ["100", "200.10"]);
    assert_eq!(config.scopes[1].vlans[1].inner, Some(10));
}

#[test]
fn vlan_of_two_scopes() {
    let text = two_scopes(
        "interfaces = [\"eth1\"]\nvlans = [\"100\"]",
        "interfaces = [\"eth1\"]\nvlans = [7, 100]",
    );
    assert_error(
        &text,
        "10:13 scope[1].vlans[1]",
        "VLAN 100 on `eth1` serves scope `a` already",
    );
    // On another interface, the same VLAN is another link.
    let text = two_scopes(
        "interfaces = [\"eth1\"]\nvlans = [100]",
        "interfaces = [\"eth2\"]\nvlans = [100]",
    );
    assert_eq!(valid(&text).scopes.len(), 2);
}

#[test]
fn bad_vlans() {
    let text = two_scopes("interfaces = [\"eth1\"]\nvlans = [4095]", "");
    assert_error(&text, "5:10 scope[0].vlans[0]", "`4095` is not a VLAN");
    let text = two_scopes("interfaces = [\"eth1\"]\nvlans = [\"100.x\"]", "");
    assert_error(&text, "5:10 scope[0].vlans[0]", "outer.inner");
    let text = two_scopes("interfaces = [\"eth1\"]\nvlans = [5, \"5\"]", "");
    assert_error(&text, "5:13 scope[0].vlans[1]", "VLAN 5 is listed already");
    let text = two_scopes("vlans = [5]", "");
    assert_error(&text, "4:10 scope[0].vlans", "list them in interfaces");
    let text = "[[class]]\nname = \"x\"\nvlan = 0\n";
    assert_error(text, "3:8 class[0].vlan", "`0` is not a VLAN");
}

#[test]
fn dpdk_ports_go_with_the_dpdk_backend() {
    let iface = "[[interface]]\nname = \"p0\"\naddress = \"10.0.0.1\"\n";
    let text = format!("[dataplane]\nbackend = \"dpdk\"\n{iface}");
    assert_error(
        &text,
        "4:8 interface[0].dpdk-port",
        "backend dpdk needs the DPDK port",
    );
    let text = format!("{iface}dpdk-port = \"net_af_packet0\"\n");
    assert_error(
        &text,
        "4:13 interface[0].dpdk-port",
        "only for backend = \"dpdk\"",
    );
    let text = format!(
        "[dataplane]\nbackend = \"dpdk\"\n[dpdk]\neal-args = [\"-l\", \"0\"]\nring = 512\n\
         {iface}dpdk-port = \"0000:03:00.0\"\n"
    );
    let config = valid(&text);
    assert_eq!(
        config.runtime.backend,
        peregrine_config::model::Backend::Dpdk
    );
    assert_eq!(
        config.runtime.interfaces[0].dpdk_port.as_deref(),
        Some("0000:03:00.0")
    );
    assert_eq!(config.runtime.dpdk.eal_args, ["-l", "0"]);
    assert_eq!(
        (config.runtime.dpdk.ring, config.runtime.dpdk.mbufs),
        (512, 16_383)
    );
    assert_error("[dpdk]\nring = 100\n", "2:8 dpdk.ring", "a power of two");
    assert_error("[dpdk]\nmbufs = 10\n", "2:9 dpdk.mbufs", "at least 1023");
}

#[test]
fn scope_names_an_unknown_interface() {
    let text = "[[interface]]\nname = \"eth1\"\naddress = \"10.0.0.1\"\n\
                [[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\n\
                interfaces = [\"eth1\", \"eth2\"]\n";
    assert_error(
        text,
        "7:23 scope[0].interfaces[1]",
        "unknown interface `eth2`: no [[interface]] has that name",
    );
}

#[test]
fn scope_naming_a_bad_interface_is_reported_once() {
    // The [[interface]] is named wrongly; the scope using the same name is not blamed too.
    let text = "[[interface]]\nname = \"eth1/2\"\naddress = \"10.0.0.1\"\n\
                [[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\n\
                interfaces = [\"eth1/2\"]\n";
    assert_error(text, "2:8 interface[0].name", "it contains `/`");
}

#[test]
fn scopes_name_any_interface_without_interface_tables() {
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\ninterfaces = [\"eth7\"]\n";
    assert_eq!(valid(text).scopes[0].interfaces, ["eth7"]);
}

#[test]
fn interface_address_outside_every_subnet_is_fine() {
    // A relay-facing interface: its address lies in no scope's subnet and is no relay address.
    let text = "[[interface]]\nname = \"eth0\"\naddress = \"192.0.2.10\"\n\
                [[interface]]\nname = \"eth1\"\naddress = \"10.0.0.1\"\n\
                [[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\ninterfaces = [\"eth1\"]\n\
                [[scope]]\nname = \"b\"\nsubnet = \"10.0.1.0/24\"\n";
    let config = valid(text);
    let addresses: Vec<_> = config
        .runtime
        .interfaces
        .iter()
        .map(|i| i.address)
        .collect();
    assert_eq!(
        addresses,
        [Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(10, 0, 0, 1)]
    );
}

// ---- Reservations ----------------------------------------------------------------------------------

#[test]
fn reservation_outside_subnet() {
    let text = format!("{RESERVATION}mac = \"02:00:00:00:00:01\"\naddress = \"10.0.1.5\"\n");
    let message = "10.0.1.5 is not inside the subnet 10.0.0.0/24";
    assert_error(&text, "6:11 scope[0].reservation[0].address", message);
}

#[test]
fn reservation_of_broadcast_address() {
    let text = format!("{RESERVATION}mac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.255\"\n");
    assert_error(
        &text,
        "6:11 scope[0].reservation[0].address",
        "broadcast address",
    );
}

#[test]
fn reservations_with_one_key() {
    // The same MAC written two ways.
    let text = format!(
        "{RESERVATION}mac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.5\"\n\
         [[scope.reservation]]\nmac = \"02-00-00-00-00-01\"\naddress = \"10.0.0.6\"\n"
    );
    let message = "scope[0].reservation[0] reserves for this mac already";
    assert_error(&text, "8:7 scope[0].reservation[1].mac", message);
}

#[test]
fn reservations_of_one_address() {
    let text = format!(
        "{RESERVATION}circuit-id = \"eth1/1\"\naddress = \"10.0.0.5\"\n\
         [[scope.reservation]]\ncircuit-id = \"eth1/2\"\naddress = \"10.0.0.5\"\n"
    );
    let message = "10.0.0.5 is reserved by scope[0].reservation[0] already";
    assert_error(&text, "9:11 scope[0].reservation[1].address", message);
}

#[test]
fn one_client_in_two_scopes_is_fine() {
    let text = two_scopes(
        "reservation = [{ mac = \"02:00:00:00:00:01\", address = \"10.0.0.5\" }]",
        "reservation = [{ mac = \"02:00:00:00:00:01\", address = \"10.0.1.5\" }]",
    );
    valid(&text);
}

#[test]
fn reservation_with_two_keys() {
    let text = format!(
        "{RESERVATION}mac = \"02:00:00:00:00:01\"\ncircuit-id = \"eth1/1\"\naddress = \"10.0.0.5\"\n"
    );
    let message =
        "give only one of mac, client-id, circuit-id or remote-id, not mac and circuit-id";
    assert_error(&text, "6:14 scope[0].reservation[0].circuit-id", message);
}

#[test]
fn reservation_without_key() {
    let text = format!("{RESERVATION}address = \"10.0.0.5\"\n");
    assert_error(
        &text,
        "4:1 scope[0].reservation[0]",
        "needs one of mac, client-id",
    );
}

#[test]
fn bad_mac() {
    let text = format!("{RESERVATION}mac = \"02:00:00:00:01\"\naddress = \"10.0.0.5\"\n");
    assert_error(
        &text,
        "5:7 scope[0].reservation[0].mac",
        "not a MAC address",
    );
}

#[test]
fn bad_hex() {
    let text = format!("{RESERVATION}client-id = \"0xabc\"\naddress = \"10.0.0.5\"\n");
    assert_error(
        &text,
        "5:13 scope[0].reservation[0].client-id",
        "`0xabc` is not hex",
    );
}

#[test]
fn bad_hostname() {
    let text = format!(
        "{RESERVATION}mac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.5\"\nhostname = \"cpe_1\"\n"
    );
    assert_error(
        &text,
        "7:12 scope[0].reservation[0].hostname",
        "not a domain name",
    );
}

// ---- Options ---------------------------------------------------------------------------------------

#[test]
fn custom_option_owned_by_the_server() {
    let text = "[server.options]\ncustom = [{ code = 51, hex = \"00000e10\" }]\n";
    let message = "option 51 (lease time, from lease-time) is written by the server";
    assert_error(text, "2:20 server.options.custom[0].code", message);
    for code in [1, 50, 52, 53, 54, 55, 57, 58, 59, 61, 82, 118] {
        let text = format!("[server.options]\ncustom = [{{ code = {code}, hex = \"00\" }}]\n");
        assert_error(
            &text,
            "2:20 server.options.custom[0].code",
            "is written by the server",
        );
    }
}

#[test]
fn custom_option_pad_or_end() {
    for code in [0, 255] {
        let text = format!("[server.options]\ncustom = [{{ code = {code}, hex = \"00\" }}]\n");
        assert_error(&text, "2:20 server.options.custom[0].code", "is pad or end");
    }
}

#[test]
fn custom_option_set_twice() {
    let text = "[server.options]\nrouters = [\"10.0.0.1\"]\n\
                custom = [{ code = 3, ips = [\"10.0.0.2\"] }, { code = 224, text = \"a\" }, \
                { code = 224, text = \"b\" }]\n";
    let found: Vec<_> = errors(text)
        .into_iter()
        .map(|e| (e.line, e.column, e.key, e.message))
        .collect();
    assert_eq!(
        found,
        [
            (
                3,
                20,
                "server.options.custom[0].code".into(),
                "option 3 is set already, by `routers`".into()
            ),
            (
                3,
                82,
                "server.options.custom[2].code".into(),
                "option 224 is set already, by `server.options.custom[1]`".into()
            ),
        ]
    );
}

#[test]
fn custom_option_with_no_or_two_values() {
    let text = "[server.options]\ncustom = [{ code = 224, hex = \"01\", text = \"a\" }]\n";
    assert_error(
        text,
        "2:11 server.options.custom[0]",
        "exactly one of hex, text or ips",
    );
    let text = "[server.options]\ncustom = [{ code = 224 }]\n";
    assert_error(
        text,
        "2:11 server.options.custom[0]",
        "exactly one of hex, text or ips",
    );
}

#[test]
fn bad_option_values() {
    let text = "[server.options]\n\
                routers = []\n\
                domain-name-servers = [\"192.0.2.1\", \"192.0.2\"]\n\
                domain-name = \"example..net\"\n\
                interface-mtu = 67\n\
                domain-search = [\"ok.example\", \"-bad.example\"]\n\
                tftp-server = \"\"\n\
                vendor-specific = \"\"\n\
                classless-static-routes = [\"10.0.0.0/8\"]\n\
                broadcast-address = \"x\"\n\
                custom = [{ code = 224, ips = [\"1.2.3\"] }]\n";
    let found: Vec<_> = errors(text)
        .into_iter()
        .map(|e| (e.line, e.column, e.key))
        .collect();
    let expected = [
        (2, 11, "server.options.routers"),
        (3, 37, "server.options.domain-name-servers[1]"),
        (4, 15, "server.options.domain-name"),
        (5, 17, "server.options.interface-mtu"),
        (6, 32, "server.options.domain-search[1]"),
        (7, 15, "server.options.tftp-server"),
        (8, 19, "server.options.vendor-specific"),
        (9, 28, "server.options.classless-static-routes[0]"),
        (10, 21, "server.options.broadcast-address"),
        (11, 32, "server.options.custom[0].ips[0]"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(l, c, k)| (*l, *c, (*k).to_owned()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn option_errors_name_their_table() {
    let text = format!(
        "{RESERVATION}mac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.5\"\n\
         [scope.reservation.options]\nrouters = [\"10.0.0.256\"]\n"
    );
    assert_error(
        &text,
        "8:12 scope[0].reservation[0].options.routers[0]",
        "not an IPv4 address",
    );
    let text = "[[class]]\nname = \"x\"\nmac-prefix = \"02\"\noptions = { interface-mtu = 1 }\n";
    assert_error(text, "4:29 class[0].options.interface-mtu", "at least 68");
    let text = "[server.options]\nv6-only-wait = 299\n";
    assert_error(text, "2:16 server.options.v6-only-wait", "at least 300");
}

// ---- Dataplane, interfaces, control plane ---------------------------------------------------------

#[test]
fn unknown_backend() {
    let message = "unknown backend `netmap`; the backends are af-packet, udp, tap and dpdk";
    assert_error(
        "[dataplane]\nbackend = \"netmap\"\n",
        "2:11 dataplane.backend",
        message,
    );
    // Names are exact.
    assert_error(
        "[dataplane]\nbackend = \"AF_PACKET\"\n",
        "2:11 dataplane.backend",
        "unknown backend `AF_PACKET`",
    );
}

#[test]
fn leases_durability_and_directory() {
    assert_error(
        "[leases]\ndirectory = \"/var/lib/peregrine\"\ndurability = \"sometimes\"\n",
        "3:14 leases.durability",
        "unknown durability `sometimes`; the modes are fsync and none-unsafe",
    );
    assert_error(
        "[leases]\ndirectory = \" \"\n",
        "2:13 leases.directory",
        "must name a directory",
    );
    for bytes in ["0", "65535", "-1"] {
        assert_error(
            &format!("[leases]\ndirectory = \"/l\"\ncompact-after = {bytes}\n"),
            "3:17 leases.compact-after",
            "must be at least 65536 bytes (64 KiB)",
        );
    }
}

#[test]
fn workers_out_of_range() {
    for workers in ["0", "65", "-1", "4294967297"] {
        let text = format!("[dataplane]\nworkers = {workers}\n");
        assert_error(&text, "2:11 dataplane.workers", "must be between 1 and 64");
    }
}

#[test]
fn cores_out_of_range_are_each_reported() {
    let errors = errors("[dataplane]\ncores = [0, -1, 1024, 3]\n");
    let found: Vec<String> = errors
        .iter()
        .map(|e| format!("{}:{} {}: {}", e.line, e.column, e.key, e.message))
        .collect();
    assert_eq!(
        found,
        [
            "2:13 dataplane.cores[1]: must be a CPU core number, 0 to 1023",
            "2:17 dataplane.cores[2]: must be a CPU core number, 0 to 1023",
        ]
    );
}

#[test]
fn commit_interval_out_of_range() {
    for us in ["-1", "100001"] {
        assert_error(
            &format!("[leases]\ndirectory = \"/tmp/x\"\ncommit-interval-us = {us}\n"),
            "3:22 leases.commit-interval-us",
            "must be between 0 and 100000 microseconds",
        );
    }
}

#[test]
fn writer_core_out_of_range() {
    assert_error(
        "[leases]\ndirectory = \"/tmp/x\"\nwriter-core = 4096\n",
        "3:15 leases.writer-core",
        "must be a CPU core number, 0 to 1023",
    );
}

#[test]
fn unknown_key_in_dataplane() {
    assert_error(
        "[dataplane]\nthreads = 4\n",
        "2:1 dataplane.threads",
        "unknown field `threads`",
    );
}

/// An `[[interface]]` named `name` (line 2, the value at column 8) with address `address` (line
/// 3, the value at column 11).
fn interface(name: &str, address: &str) -> String {
    format!("[[interface]]\nname = \"{name}\"\naddress = \"{address}\"\n")
}

#[test]
fn bad_interface_name() {
    let cases = [
        ("", "must not be empty"),
        (
            "sixteen-bytes-xx",
            "`sixteen-bytes-xx` is 16 bytes long; an interface name has at most 15",
        ),
        ("..", "`..` is not an interface name"),
        (
            "eth1/2",
            "`eth1/2` is not an interface name: it contains `/`",
        ),
        (
            "eth0:1",
            "`eth0:1` is not an interface name: it contains `:`",
        ),
        (
            "eth 1",
            "`eth 1` is not an interface name: it contains whitespace",
        ),
        (
            "eth\\u0000",
            "`eth\\0` is not an interface name: it contains a control character",
        ),
    ];
    for (name, message) in cases {
        assert_error(
            &interface(name, "10.0.0.1"),
            "2:8 interface[0].name",
            message,
        );
    }
}

#[test]
fn duplicate_interface_name() {
    let text = format!(
        "{}{}",
        interface("eth1", "10.0.0.1"),
        interface("eth1", "10.0.1.1")
    );
    assert_error(
        &text,
        "5:8 interface[1].name",
        "`eth1` is the name of interface[0].name already",
    );
}

#[test]
fn bad_interface_address() {
    assert_error(
        &interface("eth1", "10.0.0.300"),
        "3:11 interface[0].address",
        "`10.0.0.300` is not an IPv4 address",
    );
}

#[test]
fn interface_address_not_unicast() {
    for address in ["0.0.0.0", "255.255.255.255", "224.0.0.5"] {
        assert_error(
            &interface("eth1", address),
            "3:11 interface[0].address",
            "not a unicast address",
        );
    }
}

#[test]
fn duplicate_interface_address() {
    let text = format!(
        "{}{}",
        interface("eth1", "10.0.0.1"),
        interface("eth2", "10.0.0.1")
    );
    assert_error(
        &text,
        "6:11 interface[1].address",
        "10.0.0.1 is the address of interface[0] already",
    );
}

#[test]
fn interface_without_address() {
    assert_error(
        "[[interface]]\nname = \"eth1\"\n",
        "1:1 interface[0]",
        "missing field `address`",
    );
}

#[test]
fn bad_listen_address() {
    let cases = [
        (
            "localhost:9167",
            "`localhost:9167` is not a socket address (IP:port",
        ),
        ("127.0.0.1", "`127.0.0.1` is not a socket address"),
        (
            "127.0.0.1:65536",
            "`127.0.0.1:65536` is not a socket address",
        ),
        (
            "224.0.0.1:9167",
            "`224.0.0.1:9167` is not an address to listen on: 224.0.0.1 is not unicast",
        ),
        ("[ff02::1]:9167", "ff02::1 is not unicast"),
        ("127.0.0.1:0", "`127.0.0.1:0` has port 0"),
    ];
    for (listen, message) in cases {
        let text = format!("[control]\nlisten = \"{listen}\"\n");
        assert_error(&text, "2:10 control.listen", message);
    }
}

#[test]
fn an_api_off_loopback_needs_a_token() {
    assert_error(
        "[control]\nlisten = \"0.0.0.0:9167\"\n",
        "2:10 control.listen",
        "0.0.0.0:9167 is not a loopback address: whoever reaches it could change leases and \
         scopes; set control.token-file",
    );
    assert_error(
        "[control]\nlisten = \"127.0.0.1:9167\"\ntoken-file = \" \"\n",
        "3:14 control.token-file",
        "must name a file",
    );
    let config = crate::valid(
        "[control]\nlisten = \"10.255.0.10:9167\"\ntoken-file = \"/etc/peregrine/admin.token\"\n",
    );
    assert_eq!(
        config.runtime.control_token_file.as_deref(),
        Some(std::path::Path::new("/etc/peregrine/admin.token"))
    );
    assert_error(
        "[control]\ntls-key = \"/etc/peregrine/admin.key\"\n",
        "2:11 control.tls-key",
        "tls-cert and tls-key go together",
    );
    let on_loopback = crate::valid("[control]\nlisten = \"[::1]:9167\"\n");
    assert_eq!(on_loopback.runtime.control_token_file, None);
}

#[test]
fn a_token_file_others_may_read_or_a_short_token_is_refused() {
    use peregrine_config::model::AdminToken;
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("peregrine-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("admin.token");
    let write = |text: &str, mode: u32| {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("0123456789abcdef0123\n", 0o644);
    let e = AdminToken::read(&path).unwrap_err();
    assert!(
        e.contains("readable or writable by group or others (mode 644): chmod 600"),
        "{e}"
    );
    write("0123456789abcdef0123\n", 0o640);
    assert!(AdminToken::read(&path).is_err());
    write("short\n", 0o600);
    let e = AdminToken::read(&path).unwrap_err();
    assert!(e.contains("at least 16 characters"), "{e}");
    write("  0123456789abcdef0123\n", 0o600);
    let token = AdminToken::read(&path).unwrap();
    assert_eq!(token.expose(), "0123456789abcdef0123");
    assert_eq!(format!("{token:?}"), "AdminToken(<redacted>)");
    let e = AdminToken::read(&dir.join("missing")).unwrap_err();
    assert!(e.contains("missing: No such file"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_runtime_error_is_reported() {
    let text = "\
[dataplane]
backend = \"xdp\"
workers = 0

[[interface]]
name = \"a-very-long-name0\"
address = \"10.0.0.0.1\"

[[interface]]
name = \"eth2\"
address = \"10.0.1.1\"
trusted = true

[[interface]]
name = \"eth2\"
address = \"10.0.1.1\"

[control]
listen = \"9167\"

[[scope]]
name = \"a\"
subnet = \"10.0.0.0/24\"
interfaces = [\"eth3\"]
";
    let found: Vec<_> = errors(text)
        .into_iter()
        .map(|e| (e.line, e.column, e.key))
        .collect();
    let expected = [
        (2, 11, "dataplane.backend"),
        (3, 11, "dataplane.workers"),
        (6, 8, "interface[0].name"),
        (7, 11, "interface[0].address"),
        (15, 8, "interface[2].name"),
        (16, 11, "interface[2].address"),
        (19, 10, "control.listen"),
        (24, 15, "scope[0].interfaces[0]"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(l, c, k)| (*l, *c, (*k).to_owned()))
        .collect();
    assert_eq!(found, expected);
}

// ---- All at once -----------------------------------------------------------------------------------

#[test]
fn every_error_is_reported_in_file_order() {
    let text = "\
[server]
lease-time = 0
cache-threshold = 2.0

[[class]]
name = \"empty\"

[[scope]]
name = \"a\"
subnet = \"10.0.0.1/24\"
relay-addresses = [\"192.0.2.999\"]

[[scope.pool]]
range = \"10.0.0.50 - 10.0.0.40\"
classes = [\"nope\"]

[[scope.reservation]]
mac = \"02:00:00:00:00:01\"
address = \"10.0.0.256\"
";
    let errors = parse(text).unwrap_err();
    let expected = "\
test.toml:2:14: server.lease-time: must be at least 1 second
test.toml:3:19: server.cache-threshold: must be between 0 and 1
test.toml:5:1: class[0]: needs a condition: vendor-class-prefix, circuit-id-prefix, remote-id-prefix, mac-prefix, giaddr or vlan
test.toml:10:10: scope[0].subnet: `10.0.0.1/24` has host bits set; the network is 10.0.0.0/24
test.toml:11:20: scope[0].relay-addresses[0]: `192.0.2.999` is not an IPv4 address
test.toml:14:9: scope[0].pool[0].range: first address 10.0.0.50 is above the last, 10.0.0.40
test.toml:15:12: scope[0].pool[0].classes[0]: unknown class `nope`
test.toml:19:11: scope[0].reservation[0].address: `10.0.0.256` is not an IPv4 address";
    assert_eq!(errors.to_string(), expected);
    assert_eq!(errors.errors().len(), 8);
}

#[test]
fn errors_are_std_errors() {
    let errors = parse("[server]\nlease-time = 0\n").unwrap_err();
    let error: &dyn std::error::Error = &errors;
    assert_eq!(
        error.to_string(),
        "test.toml:2:14: server.lease-time: must be at least 1 second"
    );
    let one: &dyn std::error::Error = &errors.errors()[0];
    assert_eq!(one.to_string(), error.to_string());
}

#[test]
fn unreadable_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/no-such-file.toml");
    let errors = peregrine_config::load(&path).unwrap_err();
    let [error] = errors.errors() else {
        panic!("{errors}")
    };
    assert_eq!((error.line, error.column, error.key.as_str()), (0, 0, ""));
    assert!(error.message.starts_with("cannot read: "), "{error}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: cannot read: ", path.display()))
    );
    assert_ne!(error.file, FILE);
}

#[test]
fn a_ping_check_longer_than_a_client_waits_is_refused_where_it_is_set() {
    assert_error(
        "[server]\nping-check-ms = 5000\n",
        "2:17 server.ping-check-ms",
        "at most 2000 ms",
    );
    let text = "[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\nping-check-ms = 2001\n";
    assert_error(text, "4:17 scope[0].ping-check-ms", "at most 2000 ms");
    // Inherited from [server] unless the scope sets its own.
    let config = valid(
        "[server]\nping-check-ms = 300\n[[scope]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\n\
         [[scope]]\nname = \"b\"\nsubnet = \"10.0.1.0/24\"\nping-check-ms = 0\n",
    );
    let ms: Vec<u32> = config.scopes.iter().map(|s| s.ping_check_ms).collect();
    assert_eq!(ms, [300, 0]);
    assert_eq!(config.server.ping_check_ms, 300);
}

// ---- Failover -------------------------------------------------------------------------------------

/// A lease directory (lines 1-2); failover tests append from line 3 on.
const LEASES: &str = "[leases]\ndirectory = \"/var/lib/peregrine\"\n";

#[test]
fn failover_is_read_with_its_defaults() {
    let config = valid(&format!(
        "{LEASES}[failover]\nrole = \"secondary\"\nlocal = \"10.9.0.2\"\npeer = \"10.9.0.1:6470\"\n"
    ));
    let f = config.failover.expect("configured");
    assert!(!f.primary);
    assert_eq!(f.local, "10.9.0.2:647".parse().unwrap());
    assert_eq!(f.peer, "10.9.0.1:6470".parse().unwrap());
    assert_eq!(f.relationship, "peregrine");
    assert_eq!((f.mclt, f.split, f.max_response_delay), (3600, 128, 30));
    assert_eq!(
        (f.max_unacked_updates, f.load_balance_max_seconds),
        (1024, 3)
    );
    assert_eq!(f.auto_partner_down, None);
}

#[test]
fn failover_role_must_be_primary_or_secondary() {
    assert_error(
        &format!(
            "{LEASES}[failover]\nrole = \"master\"\nlocal = \"10.9.0.2\"\npeer = \"10.9.0.1\"\n"
        ),
        "4:8 failover.role",
        "`master` is not a role",
    );
}

#[test]
fn failover_needs_a_lease_directory() {
    assert_error(
        "[failover]\nrole = \"primary\"\nlocal = \"10.9.0.1\"\npeer = \"10.9.0.2\"\n",
        "2:8 failover.role",
        "needs [leases]",
    );
}

#[test]
fn failover_addresses_are_ipv4_unicast_and_not_our_own() {
    assert_error(
        &format!("{LEASES}[failover]\nrole = \"primary\"\nlocal = \"::1\"\npeer = \"10.9.0.2\"\n"),
        "5:9 failover.local",
        "not a unicast IPv4 address",
    );
    assert_error(
        &format!(
            "{LEASES}[failover]\nrole = \"primary\"\nlocal = \"10.9.0.1\"\npeer = \"10.9.0.1:647\"\n"
        ),
        "6:8 failover.peer",
        "own address",
    );
}

#[test]
fn failover_split_and_mclt_are_bounded() {
    assert_error(
        &format!(
            "{LEASES}[failover]\nrole = \"primary\"\nlocal = \"10.9.0.1\"\npeer = \"10.9.0.2\"\nsplit = 300\n"
        ),
        "7:9 failover.split",
        "between 0 and 256",
    );
    assert_error(
        &format!(
            "{LEASES}[failover]\nrole = \"primary\"\nlocal = \"10.9.0.1\"\npeer = \"10.9.0.2\"\nmclt = 0\n"
        ),
        "7:8 failover.mclt",
        "between 1 and",
    );
}

#[test]
fn failover_secret_is_long_enough() {
    assert_error(
        &format!(
            "{LEASES}[failover]\nrole = \"primary\"\nlocal = \"10.9.0.1\"\npeer = \"10.9.0.2\"\nsecret = \"short\"\n"
        ),
        "7:10 failover.secret",
        "at least 16 characters",
    );
}

#[test]
fn limits() {
    assert_error(
        "[limits]\nclient-burst = 5\n",
        "2:16 limits.client-burst",
        "a burst needs limits.client-rate",
    );
    assert_error(
        "[limits]\nrelay-rate = 100\nrelay-burst = 0\n",
        "3:15 limits.relay-burst",
        "at least 1",
    );
    assert_error(
        "[limits]\nrelay-key = \"mac\"\n",
        "2:13 limits.relay-key",
        "giaddr and circuit-id",
    );
    let l = crate::valid("[limits]\nclient-rate = 4\n").limits;
    assert_eq!((l.client_rate, l.client_burst, l.relay_rate), (4, 8, 0));
    assert!(crate::valid("").limits.overload_priority);
}
