//! Peregrine's configuration: the TOML file schema, its validation, and the validated model.
//!
//! [`load`] reads a file and [`parse`] takes its text; both check everything and either hand out
//! a [`model::Config`] that the engine and runtime use as is, or return every problem found as
//! [`ConfigErrors`], each naming the file, line, column and key (`FILE:LINE:COL: KEY: MESSAGE`).
//! The crate does no I/O beyond reading the file it is asked to load.
//!
//! `config/example.toml` at the repository root documents every key, its default and its unit.
//! Inside, the file schema (serde) and the model stay apart: the schema keeps addresses and byte
//! strings as text with their position, validation turns them into the model, and the model
//! knows nothing of TOML.

mod error;
mod file;
pub mod model;
mod options;
mod text;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};

use error::Diagnostics;
use model::Config;

/// Reads and validates the configuration file at `path`.
///
/// Errors name the file as `path` displays.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: name.clone(),
        line: 0,
        column: 0,
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, &name)
}

/// Validates configuration `text`; errors name the file `file_name`.
pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigErrors> {
    let mut d = Diagnostics::new(file_name, text);
    let config = file::read(text, &mut d).and_then(|file| validate::config(&file, &mut d));
    d.finish(config)
}
