//! Config errors that name the file, line and column, and suggest the nearest key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::redact::redact_urls_in;

/// A mistake in a config file, located.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The offending source line, as shown (URLs redacted), and what to underline.
    pub excerpt: Option<Excerpt>,
}

#[derive(Debug)]
pub struct Excerpt {
    pub text: String,
    /// 0-based, in characters of `text` (which redaction may have shortened).
    pub underline_from: usize,
    pub underline_width: usize,
}

impl fmt::Display for ConfigError {
    /// The message is redacted here too, so that no path that builds one can print a
    /// URL's password or query values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = redact_urls_in(&self.message);
        if self.line == 0 {
            // Not a position in a file: the file could not be read, or the command line.
            return write!(f, "{}: {message}", self.path.display());
        }
        write!(
            f,
            "{}:{}:{}: {message}",
            self.path.display(),
            self.line,
            self.column,
        )?;
        if let Some(excerpt) = &self.excerpt {
            let gutter = self.line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {}{}",
                "",
                self.line,
                excerpt.text,
                "",
                " ".repeat(excerpt.underline_from),
                "^".repeat(excerpt.underline_width.max(1)),
            )?;
        }
        Ok(())
    }
}

/// Turns byte offsets into 1-based line and column numbers for one file.
pub struct Locator<'a> {
    pub path: &'a Path,
    pub source: &'a str,
    /// Where the file holds values never printed (env values, header values, bodies,
    /// the endpoints' token): a quoted line shows `***` there.
    pub masked: Vec<Range<usize>>,
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
        let start = span.start.min(self.source.len());
        let end = span.end.clamp(start, self.source.len());
        let (line, column) = self.position(start);
        let line_start = self.source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.source[start..]
            .find('\n')
            .map_or(self.source.len(), |i| start + i);
        // Underline the span's part on this line, measured in the line as shown: what
        // precedes the span, then what precedes its end.
        let before = self.shown(line_start..start).chars().count();
        let through = self.shown(line_start..end.min(line_end)).chars().count();
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
            excerpt: Some(Excerpt {
                text: self.shown(line_start..line_end),
                underline_from: before,
                underline_width: through.saturating_sub(before),
            }),
        }
    }

    /// Part of the source as a message may quote it: masked values as `***`, URLs
    /// redacted.
    fn shown(&self, range: Range<usize>) -> String {
        let mut masked: Vec<&Range<usize>> = self
            .masked
            .iter()
            .filter(|m| m.start < range.end && m.end > range.start)
            .collect();
        masked.sort_by_key(|m| m.start);
        let mut text = String::new();
        let mut at = range.start;
        for m in masked {
            if m.start > at {
                text.push_str(&self.source[at..m.start]);
            }
            if m.end > at {
                text.push_str("***");
                at = m.end.min(range.end);
            }
        }
        if at < range.end {
            text.push_str(&self.source[at..range.end]);
        }
        redact_urls_in(&text)
    }

    /// A file that is not UTF-8 (TOML must be), located at its first bad byte: `valid`
    /// is the text before it.
    pub fn not_utf8(path: &Path, valid: &str, bad_line: &[u8]) -> ConfigError {
        let locator = Locator {
            path,
            source: valid,
            masked: Vec::new(),
        };
        let (line, column) = locator.position(valid.len());
        let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
        let shown = format!(
            "{}{}",
            &valid[line_start..],
            String::from_utf8_lossy(bad_line)
        );
        ConfigError {
            path: path.to_path_buf(),
            line,
            column,
            message: "not valid UTF-8 (a TOML file must be UTF-8)".into(),
            excerpt: Some(Excerpt {
                text: redact_urls_in(&shown),
                underline_from: redact_urls_in(&valid[line_start..]).chars().count(),
                underline_width: 1,
            }),
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
            masked: Vec::new(),
        };
        assert_eq!(locator.position(0), (1, 1));
        assert_eq!(locator.position(6), (2, 1));
        assert_eq!(locator.position(9), (2, 4));
    }
}
