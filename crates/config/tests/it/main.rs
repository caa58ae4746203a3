//! Integration tests of peregrine-config: the example file, every validation error with the
//! position and key it reports, option encodings, and defaults with their inheritance.

mod defaults;
mod errors;
mod example;
mod options;

use peregrine_config::model::Config;
use peregrine_config::{ConfigError, ConfigErrors};

/// The name tests give their text.
const FILE: &str = "test.toml";

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    peregrine_config::parse(text, FILE)
}

/// Parses `text`, which must be valid.
fn valid(text: &str) -> Config {
    parse(text).unwrap_or_else(|errors| panic!("unexpected errors:\n{errors}"))
}

/// The errors of `text`, which must be invalid.
fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors.into_iter().collect(),
    }
}

/// Asserts that `text` has exactly one error, at `at` (`LINE:COL KEY`, as in `2:14
/// server.lease-time`, or `LINE:COL` for no key), whose message contains `message`.
#[track_caller]
fn assert_error(text: &str, at: &str, message: &str) {
    let errors = errors(text);
    let [error] = &errors[..] else {
        panic!("expected one error, got {errors:#?}");
    };
    let found = format!("{}:{} {}", error.line, error.column, error.key);
    assert_eq!(found.trim_end(), at, "{error}");
    assert!(error.message.contains(message), "{error}");
    assert_eq!(error.file, FILE);
}
