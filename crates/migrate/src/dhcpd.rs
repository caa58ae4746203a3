//! ISC dhcpd's lease file, `dhcpd.leases` (the grammar of dhcpd.leases(5)): import.
//!
//! The file is a log of declarations, read in two steps: a tokenizer (words, quoted strings
//! with their escapes, `{ } ; = ,`, `#` comments), then statements, each either ended by `;`
//! or carrying a `{ … }` block. A `lease ADDRESS { … }` block gives a lease; the last block
//! of an address wins, as when dhcpd reads the file. `failover peer "…" state { … }` blocks
//! (the failover state machine's memory) and `server-duid` are not leases and are noted;
//! `host` blocks (hosts created over OMAPI) and anything unknown are skipped with a reason.
//!
//! Inside a lease: `starts`, `ends`, `cltt`, `tstp`, `tsfp`, `atsfp` (dates `W YYYY/MM/DD
//! HH:MM:SS` in UTC, `epoch N`, or `never`), `binding state`, `hardware TYPE XX:XX…`, `uid`
//! (a string, octal escapes included, or colon-separated hex), `client-hostname`, and the
//! pre-3.0 `abandoned;`. Other statements (`next binding state`, `set`, `option`, `on … { }`)
//! carry nothing Peregrine keeps. Failover times map to the binding: `tstp` to the
//! potential expiration sent to the partner, `atsfp` (or else `tsfp`) to the one it
//! acknowledged.

use std::net::Ipv4Addr;

use crate::lease::{HwAddr, Import, Lease, LeaseState, Time, parse_hex_bytes};

/// One token and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tok {
    line: usize,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A run of characters other than white space, quotes and punctuation.
    Word(String),
    /// A quoted string, escapes decoded (it may hold any bytes: `uid` does).
    Str(Vec<u8>),
    /// One of `{ } ; = ,`.
    Punct(u8),
}

/// Splits `text` into tokens. An unterminated string ends the input: the statement it is
/// in is then incomplete and reported so.
fn tokenize(text: &[u8]) -> (Vec<Tok>, Option<usize>) {
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            b'#' => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' | b'}' | b';' | b'=' | b',' => {
                toks.push(Tok {
                    line,
                    kind: Kind::Punct(c),
                });
                i += 1;
            }
            b'"' => {
                let start = line;
                let mut buf = Vec::new();
                i += 1;
                loop {
                    let Some(&c) = text.get(i) else {
                        return (toks, Some(start));
                    };
                    i += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            let Some(&esc) = text.get(i) else {
                                return (toks, Some(start));
                            };
                            i += 1;
                            match esc {
                                b'0'..=b'7' => {
                                    // Up to three octal digits.
                                    let mut value = u32::from(esc - b'0');
                                    for _ in 0..2 {
                                        match text.get(i) {
                                            Some(&digit @ b'0'..=b'7') => {
                                                value = value * 8 + u32::from(digit - b'0');
                                                i += 1;
                                            }
                                            _ => break,
                                        }
                                    }
                                    buf.push(value as u8);
                                }
                                b'n' => buf.push(b'\n'),
                                b't' => buf.push(b'\t'),
                                b'r' => buf.push(b'\r'),
                                b'\n' => line += 1,
                                other => buf.push(other),
                            }
                        }
                        b'\n' => {
                            line += 1;
                            buf.push(c);
                        }
                        c => buf.push(c),
                    }
                }
                toks.push(Tok {
                    line: start,
                    kind: Kind::Str(buf),
                });
            }
            _ => {
                let start = i;
                while i < text.len()
                    && !text[i].is_ascii_whitespace()
                    && !b"{};=,\"#".contains(&text[i])
                {
                    i += 1;
                }
                toks.push(Tok {
                    line,
                    kind: Kind::Word(String::from_utf8_lossy(&text[start..i]).into_owned()),
                });
            }
        }
    }
    (toks, None)
}

/// A statement: the tokens before its `;` or `{`, and its block.
#[derive(Debug)]
struct Stmt<'t> {
    line: usize,
    head: &'t [Tok],
    body: Option<&'t [Tok]>,
    /// Why the statement is broken (no `;`, unbalanced braces), if it is.
    broken: Option<&'static str>,
}

impl Stmt<'_> {
    fn word(&self, i: usize) -> Option<&str> {
        match self.head.get(i).map(|t| &t.kind) {
            Some(Kind::Word(w)) => Some(w),
            _ => None,
        }
    }
}

/// Splits tokens into statements at one nesting level.
fn statements(toks: &[Tok]) -> Vec<Stmt<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let start = i;
        let line = toks[i].line;
        while i < toks.len() && !matches!(toks[i].kind, Kind::Punct(b';' | b'{' | b'}')) {
            i += 1;
        }
        let head = &toks[start..i];
        let Some(end) = toks.get(i) else {
            out.push(Stmt {
                line,
                head,
                body: None,
                broken: Some("the file ends before this statement's `;`"),
            });
            break;
        };
        match end.kind {
            Kind::Punct(b';') => {
                i += 1;
                if !head.is_empty() {
                    out.push(Stmt {
                        line,
                        head,
                        body: None,
                        broken: None,
                    });
                }
            }
            Kind::Punct(b'{') => {
                let open = i;
                let mut depth = 1usize;
                i += 1;
                while i < toks.len() && depth > 0 {
                    match toks[i].kind {
                        Kind::Punct(b'{') => depth += 1,
                        Kind::Punct(b'}') => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                if depth > 0 {
                    out.push(Stmt {
                        line,
                        head,
                        body: None,
                        broken: Some("the file ends inside this block (a `}` is missing)"),
                    });
                    break;
                }
                out.push(Stmt {
                    line,
                    head,
                    body: Some(&toks[open + 1..i - 1]),
                    broken: None,
                });
                // dhcpd writes no `;` after a block, but tolerates one.
                if matches!(toks.get(i).map(|t| &t.kind), Some(Kind::Punct(b';'))) {
                    i += 1;
                }
            }
            _ => {
                i += 1;
                out.push(Stmt {
                    line,
                    head,
                    body: None,
                    broken: Some("a `}` that closes no block"),
                });
            }
        }
    }
    out
}

/// Reads a `dhcpd.leases` file. Never fails: whatever cannot be read is skipped with its
/// line and the reason.
pub fn import(text: &[u8]) -> Import {
    let mut out = Import::default();
    let (toks, unterminated) = tokenize(text);
    if let Some(line) = unterminated {
        out.skip(
            line,
            "a quoted string that is never closed: everything after it is ignored",
        );
    }
    for s in statements(&toks) {
        if let Some(why) = s.broken {
            out.skip(s.line, why);
            continue;
        }
        match (s.word(0), s.word(1), &s.body) {
            (Some("lease"), _, Some(body)) => match lease(&s, body) {
                Ok(l) => out.push(s.line, l),
                Err(reason) => out.skip(s.line, reason),
            },
            (Some("failover"), Some("peer"), Some(_)) => out.note(
                s.line,
                "failover peer state block ignored: Peregrine does not take over a failover \
                 relationship's state; the leases themselves are imported",
            ),
            (Some("server-duid"), _, None) => {
                out.note(s.line, "server-duid ignored (a DHCPv6 server identifier)");
            }
            (Some("authoring-byte-order" | "lease-id-format"), _, None) => {}
            (Some("host"), _, _) => out.skip(
                s.line,
                "host declaration (created over OMAPI): not a lease; configure it as a \
                 [[scope.reservation]]",
            ),
            (Some(w), _, _) => out.skip(s.line, format!("unknown statement `{w}`")),
            (None, _, _) => out.skip(s.line, "statement does not start with a keyword"),
        }
    }
    out.finish()
}

/// One `lease` block.
fn lease(s: &Stmt<'_>, body: &[Tok]) -> Result<Lease, String> {
    let address: Ipv4Addr = match (s.word(1), s.head.len()) {
        (Some(a), 2) => a
            .parse()
            .map_err(|_| format!("lease {a:?}: not an IPv4 address"))?,
        _ => return Err("`lease` must be followed by one IPv4 address".into()),
    };
    let mut l = Lease::new(address, LeaseState::Active);
    let mut state_seen = false;
    let mut starts = None;
    let mut tsfp = None;
    let mut atsfp = None;
    for st in statements(body) {
        let at = |why: String| format!("lease {address}, line {}: {why}", st.line);
        if let Some(why) = st.broken {
            return Err(at(why.into()));
        }
        let rest = st.head.get(1..).unwrap_or(&[]);
        match st.word(0) {
            Some(k @ ("starts" | "ends" | "cltt" | "tstp" | "tsfp" | "atsfp")) => {
                let t = date(rest).map_err(|e| at(format!("{k}: {e}")))?;
                match k {
                    "starts" => starts = t,
                    "ends" => l.expires = t,
                    "cltt" => l.cltt = t,
                    "tstp" => l.partner_sent = t,
                    "tsfp" => tsfp = t,
                    _ => atsfp = t,
                }
            }
            Some("binding") if st.word(1) == Some("state") => {
                let name = st.word(2).unwrap_or("");
                l.state = binding_state(name)
                    .ok_or_else(|| at(format!("unknown binding state {name:?}")))?;
                state_seen = true;
            }
            Some("abandoned") if !state_seen => l.state = LeaseState::Abandoned,
            Some("hardware") => l.hardware = Some(hardware(rest).map_err(at)?),
            Some("uid") => {
                let id = match rest {
                    [
                        Tok {
                            kind: Kind::Str(b), ..
                        },
                    ] => b.clone(),
                    [
                        Tok {
                            kind: Kind::Word(w),
                            ..
                        },
                    ] => parse_hex_bytes(w, ':')
                        .ok_or_else(|| at(format!("uid {w:?} is not colon-separated hex")))?,
                    _ => return Err(at("uid must be a string or colon-separated hex".into())),
                };
                l.client_id = (!id.is_empty()).then_some(id);
            }
            Some("client-hostname") => {
                if let [
                    Tok {
                        kind: Kind::Str(b), ..
                    },
                ] = rest
                {
                    l.hostname = Some(String::from_utf8_lossy(b).into_owned());
                }
            }
            // Statements that carry nothing a Peregrine binding keeps.
            _ => {}
        }
    }
    l.cltt = l.cltt.or(starts);
    l.partner_acked = atsfp.or(tsfp);
    if let (Some(e), Some(c)) = (l.expires, l.cltt) {
        l.valid_lifetime = u32::try_from(e.saturating_sub(c)).ok();
    }
    Ok(l)
}

fn binding_state(name: &str) -> Option<LeaseState> {
    Some(match name {
        "free" => LeaseState::Free,
        "active" | "bootp" => LeaseState::Active,
        "expired" => LeaseState::Expired,
        "released" => LeaseState::Released,
        "abandoned" => LeaseState::Abandoned,
        "reset" => LeaseState::Reset,
        "backup" => LeaseState::Backup,
        "reserved" => LeaseState::Reserved,
        _ => return None,
    })
}

/// `hardware TYPE XX:XX…`.
fn hardware(rest: &[Tok]) -> Result<HwAddr, String> {
    let (ty, addr) = match rest {
        [
            Tok {
                kind: Kind::Word(t),
                ..
            },
            Tok {
                kind: Kind::Word(a),
                ..
            },
        ] => (t.as_str(), a.as_str()),
        _ => return Err("hardware must be `hardware TYPE XX:XX:…`".into()),
    };
    let htype = match ty {
        "ethernet" => 1,
        "token-ring" => 6,
        "fddi" => 8,
        "infiniband" => 32,
        other => return Err(format!("unknown hardware type {other:?}")),
    };
    let bytes = parse_hex_bytes(addr, ':')
        .filter(|b| !b.is_empty() && b.len() <= 16)
        .ok_or_else(|| format!("hardware address {addr:?} is not colon-separated hex"))?;
    Ok(HwAddr { htype, bytes })
}

/// A date: `never` (`None`), `epoch N`, or `W YYYY/MM/DD HH:MM:SS` in UTC.
fn date(toks: &[Tok]) -> Result<Option<Time>, String> {
    let words: Vec<&str> = toks
        .iter()
        .map(|t| match &t.kind {
            Kind::Word(w) => Ok(w.as_str()),
            _ => Err("a date is made of words".to_string()),
        })
        .collect::<Result<_, _>>()?;
    match words.as_slice() {
        ["never"] => Ok(None),
        ["epoch", n] => n
            .parse()
            .map(Some)
            .map_err(|_| format!("epoch {n:?} is not a number")),
        [weekday, ymd, hms] => {
            if !matches!(weekday.as_bytes(), [b'0'..=b'6']) {
                return Err(format!("weekday {weekday:?} is not 0 to 6"));
            }
            let num = |s: &str, max: u64| s.parse::<u64>().ok().filter(|v| *v <= max);
            let date: Vec<Option<u64>> = ymd.split('/').map(|p| num(p, 9999)).collect();
            let time: Vec<Option<u64>> = hms.split(':').map(|p| num(p, 60)).collect();
            match (date.as_slice(), time.as_slice()) {
                (
                    [Some(year), Some(month @ 1..=12), Some(day @ 1..=31)],
                    [Some(hour @ 0..=23), Some(minute @ 0..=59), Some(sec)],
                ) if *year >= 1970 => Ok(Some(
                    days_from_civil(*year, *month, *day) * 86_400 + hour * 3600 + minute * 60 + sec,
                )),
                _ => Err(format!("{ymd} {hms} is not YYYY/MM/DD HH:MM:SS")),
            }
        }
        _ => Err(format!("{:?} is not a date", words.join(" "))),
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (year ≥ 1970).
pub(crate) fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    // Years start in March, so the leap day is the last day of the year.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let toks = tokenize(b"4 2026/11/19 10:00:00").0;
        assert_eq!(date(&toks), Ok(Some(1_795_082_400)));
        assert_eq!(date(&tokenize(b"epoch 17").0), Ok(Some(17)));
        assert_eq!(date(&tokenize(b"never").0), Ok(None));
        assert!(date(&tokenize(b"4 2026/13/19 10:00:00").0).is_err());
    }

    #[test]
    fn strings_decode_octal_escapes() {
        let (t, open) = tokenize(br#"uid "\001\000\021\"3DU";"#);
        assert_eq!(open, None);
        assert_eq!(
            t[1].kind,
            Kind::Str(vec![1, 0, 0o21, b'"', b'3', b'D', b'U'])
        );
    }
}
