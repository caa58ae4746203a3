//! Configuration errors, each naming the file, line, column and key it concerns.

use std::fmt;

use toml::Spanned;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as named to [`crate::load`] or [`crate::parse`].
    pub file: String,
    /// Line of the offending text, from 1; 0 when the error has no position (the file could not
    /// be read).
    pub line: usize,
    /// Column of the offending text, from 1, counted in characters; 0 when `line` is 0.
    pub column: usize,
    /// Dotted path of the offending key with array indices, as in `scope[2].pool[0].range`;
    /// empty when no key applies (a syntax error between keys, an unreadable file).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `FILE:LINE:COL: KEY: MESSAGE`, leaving out the position and the key when there are none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line != 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file, in file order; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// The errors, ordered by line and column.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors {
            errors: vec![error],
        }
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects the errors of one file, turning byte offsets into lines and columns.
pub(crate) struct Diagnostics<'a> {
    file: &'a str,
    text: &'a str,
    /// Byte offset of the start of each line, to find a line by binary search.
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

impl<'a> Diagnostics<'a> {
    /// Diagnostics for `text`, read from the file named `file`.
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Diagnostics {
            file,
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// Records an error at byte offset `at` of the text, or without a position.
    pub(crate) fn error(
        &mut self,
        at: Option<usize>,
        key: impl fmt::Display,
        message: impl fmt::Display,
    ) {
        let (line, column) = at.map_or((0, 0), |at| self.position(at));
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            key: key.to_string(),
            message: message.to_string(),
        });
    }

    /// Records an error at the start of `value`.
    pub(crate) fn at<T>(
        &mut self,
        value: &Spanned<T>,
        key: impl fmt::Display,
        message: impl fmt::Display,
    ) {
        self.error(Some(value.span().start), key, message);
    }

    /// Parses `value` with `parse`, recording its error at `value` under `key`.
    pub(crate) fn parse<T>(
        &mut self,
        value: &Spanned<String>,
        key: impl fmt::Display,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        parse(value.get_ref())
            .map_err(|message| self.at(value, key, message))
            .ok()
    }

    /// The result of a run: `value` if nothing was recorded, else every error in file order.
    ///
    /// Validation yields `None` only after recording why, so no error is lost here.
    pub(crate) fn finish<T>(mut self, value: Option<T>) -> Result<T, ConfigErrors> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => {
                debug_assert!(
                    !self.errors.is_empty(),
                    "validation failed without an error"
                );
                self.errors.sort_by_key(|e| (e.line, e.column));
                Err(ConfigErrors {
                    errors: self.errors,
                })
            }
        }
    }

    /// 1-based line and column (in characters) of byte offset `at`.
    fn position(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= at);
        let start = self.line_starts[line - 1];
        // Spans from the parser fall on character boundaries; count bytes if one ever does not.
        let column = self
            .text
            .get(start..at)
            .map_or(at - start, |s| s.chars().count());
        (line, column + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: usize, key: &str) -> ConfigError {
        ConfigError {
            file: "f.toml".into(),
            line,
            column: if line == 0 { 0 } else { 7 },
            key: key.into(),
            message: "bad".into(),
        }
    }

    #[test]
    fn display_leaves_out_what_is_missing() {
        assert_eq!(
            error(3, "server.lease-time").to_string(),
            "f.toml:3:7: server.lease-time: bad"
        );
        assert_eq!(error(3, "").to_string(), "f.toml:3:7: bad");
        assert_eq!(error(0, "").to_string(), "f.toml: bad");
    }

    #[test]
    fn errors_display_one_per_line() {
        let errors = ConfigErrors {
            errors: vec![error(1, "a"), error(2, "b")],
        };
        assert_eq!(errors.to_string(), "f.toml:1:7: a: bad\nf.toml:2:7: b: bad");
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nb = \"é\" x\n\nlast";
        let d = Diagnostics::new("f", text);
        assert_eq!(d.position(0), (1, 1));
        assert_eq!(d.position(4), (1, 5));
        assert_eq!(d.position(5), (1, 6)); // the newline itself
        assert_eq!(d.position(6), (2, 1));
        // "é" is two bytes, one column.
        assert_eq!(d.position(text.find('x').unwrap()), (2, 9));
        assert_eq!(d.position(text.find("last").unwrap()), (4, 1));
        assert_eq!(d.position(text.len()), (4, 5));
    }

    #[test]
    fn finish_sorts_by_position() {
        let mut d = Diagnostics::new("f", "a\nb\nc");
        d.error(Some(4), "c", "third");
        d.error(Some(0), "a", "first");
        d.error(Some(2), "b", "second");
        let errors = d.finish(Some(())).unwrap_err();
        let keys: Vec<_> = errors.errors().iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }
}
