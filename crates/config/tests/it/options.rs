//! Option encodings, byte for byte.

use super::valid;

/// The options of `[server.options]` holding `body`.
fn encode(body: &str) -> Vec<(u8, Vec<u8>)> {
    valid(&format!("[server.options]\n{body}\n"))
        .server
        .options
        .options
}

#[test]
fn addresses() {
    let options = encode(
        "routers = [\"10.0.0.1\", \"10.0.0.2\"]\n\
         domain-name-servers = [\"192.0.2.53\"]\n\
         ntp-servers = [\"192.0.2.123\", \"192.0.2.124\"]\n\
         broadcast-address = \"10.0.0.255\"",
    );
    assert_eq!(
        options,
        [
            (3, vec![10, 0, 0, 1, 10, 0, 0, 2]),
            (6, vec![192, 0, 2, 53]),
            (28, vec![10, 0, 0, 255]),
            (42, vec![192, 0, 2, 123, 192, 0, 2, 124]),
        ]
    );
}

#[test]
fn text_and_numbers() {
    let options = encode(
        "domain-name = \"example.net\"\n\
         interface-mtu = 1492\n\
         tftp-server = \"tftp.example.net\"\n\
         bootfile-name = \"pxelinux.0\"",
    );
    assert_eq!(
        options,
        [
            (15, b"example.net".to_vec()),
            (26, vec![0x05, 0xd4]),
            (66, b"tftp.example.net".to_vec()),
            (67, b"pxelinux.0".to_vec()),
        ]
    );
    assert_eq!(encode("interface-mtu = 68"), [(26, vec![0, 68])]);
    assert_eq!(encode("v6-only-wait = 1800"), [(108, vec![0, 0, 7, 8])]);
}

#[test]
fn vendor_specific_hex() {
    assert_eq!(
        encode("vendor-specific = \"0104c0000201\""),
        [(43, vec![1, 4, 192, 0, 2, 1])]
    );
    assert_eq!(
        encode("vendor-specific = \"0xFF01\""),
        [(43, vec![0xff, 1])]
    );
}

#[test]
fn domain_search_in_rfc_1035_encoding() {
    let options = encode("domain-search = [\"eng.example.net\", \"example.net.\", \"lab\"]");
    let mut expected = Vec::new();
    expected.extend_from_slice(b"\x03eng\x07example\x03net\x00");
    expected.extend_from_slice(b"\x07example\x03net\x00");
    expected.extend_from_slice(b"\x03lab\x00");
    assert_eq!(options, [(119, expected)]);
}

#[test]
fn classless_static_routes_in_rfc_3442_encoding() {
    let options = encode(
        "classless-static-routes = [\n\
         \"0.0.0.0/0 via 10.0.0.1\",\n\
         \"10.0.0.0/8 via 10.0.0.2\",\n\
         \"172.16.0.0/12 via 10.0.0.3\",\n\
         \"192.168.1.0/24 via 10.0.0.4\",\n\
         \"192.168.2.128/25 via 10.0.0.5\",\n\
         \"192.0.2.7/32 via 10.0.0.6\",\n\
         ]",
    );
    #[rustfmt::skip]
    let expected = vec![
        0, 10, 0, 0, 1,
        8, 10, 10, 0, 0, 2,
        12, 172, 16, 10, 0, 0, 3,
        24, 192, 168, 1, 10, 0, 0, 4,
        25, 192, 168, 2, 128, 10, 0, 0, 5,
        32, 192, 0, 2, 7, 10, 0, 0, 6,
    ];
    assert_eq!(options, [(121, expected)]);
}

#[test]
fn custom_options() {
    let options = encode(
        "custom = [\n\
         { code = 226, ips = [\"1.2.3.4\", \"5.6.7.8\"] },\n\
         { code = 224, hex = \"0102\" },\n\
         { code = 225, text = \"abc\" },\n\
         { code = 223, hex = \"\" },\n\
         { code = 254, text = \"é\" },\n\
         ]",
    );
    assert_eq!(
        options,
        [
            (223, vec![]),
            (224, vec![1, 2]),
            (225, b"abc".to_vec()),
            (226, vec![1, 2, 3, 4, 5, 6, 7, 8]),
            (254, vec![0xc3, 0xa9]),
        ]
    );
}

#[test]
fn long_options_are_kept_whole() {
    // RFC 3396 splits them on the wire; the model keeps them in one piece.
    let names: Vec<String> = (0..30)
        .map(|i| format!("\"zone{i:02}.example.net\""))
        .collect();
    let options = encode(&format!("domain-search = [{}]", names.join(", ")));
    assert_eq!(options[0].1.len(), 30 * (1 + 6 + 1 + 7 + 1 + 3 + 1));
}

#[test]
fn every_level_has_its_options() {
    let config = valid(
        "[server.options]\ndomain-name = \"example.net\"\n\
         [[class]]\nname = \"c\"\nmac-prefix = \"02\"\n\
         [class.options]\ntftp-server = \"t\"\n\
         [[scope]]\nname = \"s\"\nsubnet = \"10.0.0.0/24\"\n\
         [scope.options]\nrouters = [\"10.0.0.1\"]\n\
         [[scope.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.5\"\n\
         [scope.reservation.options]\nbootfile-name = \"b\"\n",
    );
    assert_eq!(
        config.server.options.options,
        [(15, b"example.net".to_vec())]
    );
    assert_eq!(config.classes[0].options.options, [(66, b"t".to_vec())]);
    let scope = &config.scopes[0];
    // Option 1 comes from the subnet at reply time; it is not stored here.
    assert_eq!(scope.options.options, [(3, vec![10, 0, 0, 1])]);
    assert_eq!(scope.reservations[0].options.options, [(67, b"b".to_vec())]);
}
