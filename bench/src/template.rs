//! Option 82 sub-option templates such as `olt{relay}/port{port}`: parsed once, expanded per
//! message into a caller's buffer without allocating.
//!
//! Placeholders: `{relay}` (relay number, 0-based), `{port}` (the client's number on its relay),
//! `{client}` (the client number), `{mac}` (the client's MAC, 12 lowercase hex digits). `{{` and
//! `}}` stand for literal braces.

use std::io::{Cursor, Write};

use anyhow::{Result, bail};

/// One part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Relay,
    Port,
    Client,
    Mac,
}

/// What a template is expanded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscriber {
    /// Relay number.
    pub relay: u32,
    /// Port number on the relay.
    pub port: u32,
    /// Client number.
    pub client: u32,
    /// Client MAC address.
    pub mac: [u8; 6],
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `text`; unknown placeholders and unbalanced braces are errors.
    pub fn parse(text: &str) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some(r) = rest.strip_prefix("{{") {
                literal.push(b'{');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("}}") {
                literal.push(b'}');
                rest = r;
            } else if c == '{' {
                let Some(end) = rest.find('}') else {
                    bail!("template {text:?}: unclosed '{{'");
                };
                let piece = match &rest[1..end] {
                    "relay" => Piece::Relay,
                    "port" | "n" => Piece::Port,
                    "client" => Piece::Client,
                    "mac" => Piece::Mac,
                    other => bail!(
                        "template {text:?}: unknown placeholder {{{other}}} \
                         (known: relay, port, client, mac)"
                    ),
                };
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(piece);
                rest = &rest[end + 1..];
            } else if c == '}' {
                bail!("template {text:?}: lone '}}' (write '}}}}')");
            } else {
                let mut b = [0u8; 4];
                literal.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                rest = &rest[c.len_utf8()..];
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Self { pieces })
    }

    /// Writes the expansion for `s` into `out`; returns its length, or `None` if it does not
    /// fit (a sub-option holds at most 255 bytes).
    pub fn expand(&self, s: &Subscriber, out: &mut [u8]) -> Option<usize> {
        let mut w = Cursor::new(out);
        for p in &self.pieces {
            let r = match p {
                Piece::Text(t) => w.write_all(t),
                Piece::Relay => write!(w, "{}", s.relay),
                Piece::Port => write!(w, "{}", s.port),
                Piece::Client => write!(w, "{}", s.client),
                Piece::Mac => {
                    let m = s.mac;
                    write!(
                        w,
                        "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                        m[0], m[1], m[2], m[3], m[4], m[5]
                    )
                }
            };
            r.ok()?;
        }
        usize::try_from(w.position()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: Subscriber = Subscriber {
        relay: 3,
        port: 1207,
        client: 9659,
        mac: [2, 0, 0, 0, 0x25, 0xbb],
    };

    fn expand(t: &str) -> String {
        let mut buf = [0u8; 255];
        let n = Template::parse(t).unwrap().expand(&SUB, &mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn placeholders_expand() {
        assert_eq!(expand("olt{relay}/port{port}"), "olt3/port1207");
        assert_eq!(expand("olt{relay}/port{n}"), "olt3/port1207");
        assert_eq!(expand("sub-{client}"), "sub-9659");
        assert_eq!(expand("{mac}"), "0200000025bb");
        assert_eq!(expand("{{x}}{relay}"), "{x}3");
        assert_eq!(expand("plain"), "plain");
        assert_eq!(expand(""), "");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(Template::parse("olt{rel").is_err());
        assert!(Template::parse("olt{vlan}").is_err());
        assert!(Template::parse("a}b").is_err());
    }

    #[test]
    fn expansion_that_does_not_fit_is_none() {
        let t = Template::parse("port{port}").unwrap();
        let mut small = [0u8; 6];
        assert_eq!(t.expand(&SUB, &mut small), None);
        let mut exact = [0u8; 8];
        assert_eq!(t.expand(&SUB, &mut exact), Some(8));
    }
}
