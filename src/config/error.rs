//! Config errors that name the file, line and column, and suggest the nearest key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A mistake in a config file, located.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The offending source line and the column range to underline.
    pub excerpt: Option<(String, usize)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            // Not a position in a file: the file could not be read, or the command line.
            return write!(f, "{}: {}", self.path.display(), self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some((text, width)) = &self.excerpt {
            let gutter = self.line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {}{}",
                "",
                self.line,
                text,
                "",
                " ".repeat(self.column - 1),
                "^".repeat((*width).max(1)),
            )?;
        }
        Ok(())
    }
}

/// Turns byte offsets into 1-based line and column numbers for one file.
pub struct Locator<'a> {
    pub path: &'a Path,
    pub source: &'a str,
}

impl Locator<'_> {
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let before = &self.source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.source[line_start..offset].chars().count() + 1;
        (line, column)
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.position(span.start);
        let text = self.source.lines().nth(line - 1).unwrap_or("").to_string();
        let width = self.source[span.start.min(self.source.len())..span.end.min(self.source.len())]
            .lines()
            .next()
            .map_or(1, |s| s.chars().count());
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
            excerpt: Some((text, width)),
        }
    }

    /// Converts a TOML/serde error, rewording serde's "unknown field" into a suggestion.
    pub fn toml_error(&self, error: &toml::de::Error) -> ConfigError {
        let message =
            suggest_known_key(error.message()).unwrap_or_else(|| error.message().to_string());
        match error.span() {
            Some(span) => self.error(span, message),
            None => ConfigError {
                path: self.path.to_path_buf(),
                line: 1,
                column: 1,
                message,
                excerpt: None,
            },
        }
    }
}

/// serde says: "unknown field `stop_timout`, expected one of `a`, `b`". We say which
/// known key is nearest.
fn suggest_known_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let known: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let nearest = known
        .iter()
        .map(|key| (strsim::damerau_levenshtein(unknown, key), *key))
        .filter(|(distance, key)| *distance <= (key.len() / 3).max(2))
        .min();
    let listing = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(match nearest {
        Some((_, key)) => {
            format!("unknown key `{unknown}`, did you mean `{key}`? (known keys: {listing})")
        }
        None => format!("unknown key `{unknown}` (known keys: {listing})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        let message =
            "unknown field `stop_timout`, expected one of `command`, `stop_signal`, `stop_timeout`";
        let suggestion = suggest_known_key(message).unwrap();
        assert!(
            suggestion.starts_with("unknown key `stop_timout`, did you mean `stop_timeout`?"),
            "{suggestion}"
        );
    }

    #[test]
    fn no_suggestion_when_nothing_is_close() {
        let message = "unknown field `zzzzzzzz`, expected one of `command`, `restart`";
        assert_eq!(
            suggest_known_key(message).unwrap(),
            "unknown key `zzzzzzzz` (known keys: `command`, `restart`)"
        );
    }

    #[test]
    fn positions_are_one_based() {
        let locator = Locator {
            path: Path::new("c.toml"),
            source: "a = 1\nbb = 2\n",
        };
        assert_eq!(locator.position(0), (1, 1));
        assert_eq!(locator.position(6), (2, 1));
        assert_eq!(locator.position(9), (2, 4));
    }
}
