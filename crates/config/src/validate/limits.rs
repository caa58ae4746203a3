//! `[limits]`: storm and flood control.

use toml::Spanned;

use crate::error::Diagnostics;
use crate::file;
use crate::model::{Limits, RelayKey};

/// `[limits]`: a burst, when not given, is two seconds' worth of its rate; one given needs its
/// rate, and is at least 1.
pub(super) fn limits(f: &file::Limits, d: &mut Diagnostics<'_>) -> Option<Limits> {
    let defaults = Limits::default();
    let client = bucket(
        (f.client_rate.as_ref(), f.client_burst.as_ref()),
        ("limits.client-rate", "limits.client-burst"),
        d,
    );
    let relay = bucket(
        (f.relay_rate.as_ref(), f.relay_burst.as_ref()),
        ("limits.relay-rate", "limits.relay-burst"),
        d,
    );
    let relay_key = match &f.relay_key {
        None => Some(defaults.relay_key),
        Some(k) => d.parse(k, "limits.relay-key", |k| match k {
            "giaddr" => Ok(RelayKey::Giaddr),
            "circuit-id" => Ok(RelayKey::CircuitId),
            other => Err(format!(
                "unknown relay key `{other}`; the keys are giaddr and circuit-id"
            )),
        }),
    };
    let ((client_rate, client_burst), (relay_rate, relay_burst)) = (client?, relay?);
    Some(Limits {
        client_rate,
        client_burst,
        relay_rate,
        relay_burst,
        relay_key: relay_key?,
        overload_priority: f.overload_priority.unwrap_or(defaults.overload_priority),
    })
}

/// A rate and its burst, as given or defaulted; `None` after recording what is wrong.
fn bucket(
    (rate, burst): (Option<&Spanned<u32>>, Option<&Spanned<u32>>),
    (rate_key, burst_key): (&str, &str),
    d: &mut Diagnostics<'_>,
) -> Option<(u32, u32)> {
    let r = rate.map_or(0, |r| *r.get_ref());
    match burst {
        None => Some((r, r.saturating_mul(2))),
        Some(b) if r == 0 => {
            d.at(b, burst_key, format!("a burst needs {rate_key}"));
            None
        }
        Some(b) if *b.get_ref() == 0 => {
            d.at(
                b,
                burst_key,
                "at least 1: a client or relay may send one request at once",
            );
            None
        }
        Some(b) => Some((r, *b.get_ref())),
    }
}
