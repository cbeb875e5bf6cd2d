//! `${VAR}` and `${VAR:-default}` expansion from graceinit's environment, never through a
//! shell. `$${` is a literal `${`; every other `$` is left as it is, so a shell script in
//! an argv keeps its `$$` and `$1`.

use std::env::VarError;

/// The expanded text, plus the names of variables that were unset and had no default
/// (they expand to the empty string, as in a shell, and are reported as warnings).
/// `lookup` answers as `std::env::var` does; a variable that is set but not UTF-8 is an
/// error, not "unset": its value is there, graceinit cannot use it.
pub fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Result<String, VarError>,
) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut unset = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let close = inner.find('}').ok_or_else(|| {
                "unterminated `${`: expected ${NAME} or ${NAME:-default}".to_string()
            })?;
            let reference = &inner[..close];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if name.is_empty() || !name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                return Err(format!(
                    "`${{{reference}}}` is not a variable reference (expected ${{NAME}} or ${{NAME:-default}})"
                ));
            }
            match (lookup(name), default) {
                (Ok(value), _) => out.push_str(&value),
                (Err(VarError::NotUnicode(_)), _) => {
                    return Err(format!(
                        "`${{{name}}}`: {name} is set but not valid UTF-8, so graceinit cannot use its value"
                    ));
                }
                (Err(VarError::NotPresent), Some(default)) => out.push_str(default),
                (Err(VarError::NotPresent), None) => unset.push(name.to_string()),
            }
            rest = &inner[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok((out, unset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "HOSTNAME" => Ok("web-0".into()),
            "EMPTY" => Ok(String::new()),
            "LATIN1" => Err(VarError::NotUnicode("caf\u{e9}".into())),
            _ => Err(VarError::NotPresent),
        }
    }

    #[test]
    fn expands_set_defaulted_and_unset() {
        assert_eq!(
            expand("id=${HOSTNAME}", env).unwrap(),
            ("id=web-0".into(), vec![])
        );
        assert_eq!(
            expand("${PORT:-8080}", env).unwrap(),
            ("8080".into(), vec![])
        );
        assert_eq!(expand("${EMPTY:-x}", env).unwrap(), ("".into(), vec![]));
        assert_eq!(
            expand("a${NOPE}b", env).unwrap(),
            ("ab".into(), vec!["NOPE".into()])
        );
    }

    #[test]
    fn dollars_that_are_not_references_stay() {
        let text = "cost $5, pid $$, $HOME";
        assert_eq!(expand(text, env).unwrap().0, text);
        assert_eq!(expand("$$$", env).unwrap().0, "$$$");
        assert_eq!(
            expand("$${HOSTNAME} is ${HOSTNAME}", env).unwrap().0,
            "${HOSTNAME} is web-0"
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(expand("${HOSTNAME", env).is_err());
        assert!(expand("${}", env).is_err());
        assert!(expand("${A B}", env).is_err());
    }

    #[test]
    fn a_variable_that_is_not_utf8_is_an_error_not_unset() {
        let error = expand("x${LATIN1:-fallback}", env).unwrap_err();
        assert_eq!(
            error,
            "`${LATIN1}`: LATIN1 is set but not valid UTF-8, so graceinit cannot use its value"
        );
    }
}
