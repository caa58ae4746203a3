//! From the file schema to the validated model: every check, every default, every inheritance.
//!
//! Each check records its error and goes on, so that one run reports every problem. A value that
//! fails is `None` from there on; checks that depend on it are skipped rather than reporting
//! consequences of the first error. `None` is only ever produced after recording an error.
//!
//! One file per part of the file: [`server`] (`[server]`, and the lease times scopes inherit),
//! [`classes`], [`scopes`] (with their pools and reservations, and the checks across scopes),
//! [`interfaces`], [`runtime`] (`[dataplane]`, `[control]`, `[leases]`) and [`limits`]. [`config`] runs
//! them all; this file also holds the helpers several of them share. A new section is one more
//! file and one more call in [`config`].

mod classes;
mod failover;
mod interfaces;
mod limits;
mod runtime;
mod scopes;
mod server;

use std::collections::{HashMap, HashSet};
use std::fmt;

use toml::Spanned;

use crate::error::Diagnostics;
use crate::file;
use crate::model::Config;

/// Checks `file` and builds the model; `None` after recording every error in `d`.
pub(crate) fn config(file: &file::File, d: &mut Diagnostics<'_>) -> Option<Config> {
    let defaults = server::Defaults::new(&file.server);
    let server = server::server(&file.server, &defaults, d);
    let classes = classes::classes(&file.class, d);
    // Names as written, good or bad: a bad one is reported where it is defined, not again
    // where it is used.
    let known = Known {
        classes: file
            .class
            .iter()
            .map(|c| c.get_ref().name.get_ref().as_str())
            .collect(),
        interfaces: (!file.interface.is_empty()).then(|| {
            file.interface
                .iter()
                .map(|i| i.name.get_ref().as_str())
                .collect()
        }),
    };
    let scopes = scopes::scopes(&file.scope, &defaults, &known, d);
    let runtime = runtime::runtime(file, d);
    let failover = match &file.failover {
        None => Some(None),
        Some(f) => failover::failover(f, file.leases.is_some(), d).map(Some),
    };
    let limits = limits::limits(&file.limits, d);
    Some(Config {
        server: server?,
        classes: classes?,
        scopes: scopes?,
        runtime: runtime?,
        failover: failover?,
        limits: limits?,
    })
}

/// Names scopes may refer to.
struct Known<'f> {
    /// Every `[[class]]`.
    classes: HashSet<&'f str>,
    /// Every `[[interface]]`; `None` when the file has none, and scopes may name any interface.
    interfaces: Option<HashSet<&'f str>>,
}

/// A parser from `text`.
type Parser<T> = fn(&str) -> Result<T, String>;

/// An optional key of a table: its name, its value if given, how to parse it.
type Field<'f, T> = (&'static str, Option<&'f Spanned<String>>, Parser<T>);

/// A scope's or class's name: not empty, not used by another of its kind.
fn unique_name<'f>(
    name: &'f Spanned<String>,
    key: &str,
    seen: &mut HashMap<&'f str, String>,
    d: &mut Diagnostics<'_>,
) -> Option<String> {
    let key = format!("{key}.name");
    let text = name.get_ref();
    if text.is_empty() {
        d.at(name, key, "must not be empty");
        return None;
    }
    if let Some(first) = seen.get(text.as_str()) {
        d.at(
            name,
            key,
            format_args!("`{text}` is the name of {first} already"),
        );
        return None;
    }
    seen.insert(text, key);
    Some(text.clone())
}

/// An error was recorded.
struct Reported;

/// An optional value: `Ok(None)` when absent, an error when given but bad.
fn optional<T>(
    value: Option<&Spanned<String>>,
    key: impl fmt::Display,
    parse: Parser<T>,
    d: &mut Diagnostics<'_>,
) -> Result<Option<T>, Reported> {
    value
        .map(|value| d.parse(value, key, parse).ok_or(Reported))
        .transpose()
}
