//! The redaction rule, in one place: whatever graceinit prints shows a URL's password
//! and query values as `***` (`http://user:***@host/x?token=***`). They are where
//! credentials go (`${PASS}` in userinfo, `?token=${TOKEN}`), and what graceinit prints
//! ends up in container logs and Kubernetes events, readable by more people than the
//! secrets are. Header values, bodies and env values are never printed at all.

const MASK: &str = "***";

/// `url` with its userinfo password and every query value replaced by `***`. The whole
/// of `url` is taken as the URL (as written or expanded, parsed or not). What the URL
/// parser reads as an http(s) URL is shown in the parser's canonical form, redacted: the
/// parser is lenient (`http:/u:p@h`, `http:\\u:p@h`, `http:///u:p@h` are all
/// `http://u:p@h/`), and only its own reading says for sure where a password is. Text it
/// cannot parse (a `${VAR}` as written) is redacted as written; text without `://` is
/// returned as it is.
pub fn redact_url(url: &str) -> String {
    if let Ok(parsed) = reqwest::Url::parse(url) {
        if matches!(parsed.scheme(), "http" | "https") && parsed.as_str() != url {
            return redact_written(parsed.as_str());
        }
    }
    redact_written(url)
}

/// The redaction of `url` read as written: the authority after `://`, the query after
/// the first `?`, the fragment after the first `#`.
fn redact_written(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let after_scheme = scheme_end + 3;
    // As the URL parser reads it: the authority ends at the first `/`, `?` or `#`, and
    // the userinfo at the authority's last `@`.
    let authority_end = url[after_scheme..]
        .find(['/', '?', '#', '\\'])
        .map_or(url.len(), |i| after_scheme + i);
    let authority = &url[after_scheme..authority_end];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..after_scheme]);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let rest = &url[authority_end..];
    // A fragment is masked whole: a `#` inside an expanded secret starts one early.
    let (rest, fragment) = match rest.find('#') {
        Some(hash) => (&rest[..hash], "#***"),
        None => (rest, ""),
    };
    let Some(question) = rest.find('?') else {
        out.push_str(rest);
        out.push_str(fragment);
        return out;
    };
    out.push_str(&rest[..=question]);
    let query = &rest[question + 1..];
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _value)) => format!("{key}={MASK}"),
            // `?SECRET` carries a value with no name.
            None if pair.is_empty() => String::new(),
            None => MASK.to_string(),
        })
        .collect();
    out.push_str(&pairs.join("&"));
    out.push_str(fragment);
    out
}

/// `text` with every URL in it redacted as [`redact_url`] does: for free text that may
/// contain URLs (an argv, an error's causes, a line of the config file). A URL starts
/// at its scheme and ends at whitespace, a quote, `<`, `>` or the end of the text.
pub fn redact_urls_in(text: &str) -> String {
    let ends_url = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(separator) = rest.find("://") {
        let scheme_start = rest[..separator]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[separator..]
            .find(ends_url)
            .map_or(rest.len(), |i| separator + i);
        out.push_str(&rest[..scheme_start]);
        out.push_str(&redact_url(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_query_values_are_masked() {
        assert_eq!(
            redact_url("http://user:s3cret@host:8080/x?token=abc&b=2#top"),
            "http://user:***@host:8080/x?token=***&b=***#***"
        );
        // A `#` inside an expanded secret starts a fragment early: masked whole.
        assert_eq!(
            redact_url("http://h/x?t=tok#en-tail"),
            "http://h/x?t=***#***"
        );
        assert_eq!(redact_url("http://h/x#frag"), "http://h/x#***");
        assert_eq!(
            redact_url("http://user:${PASS}@host/x?token=${TOKEN}"),
            "http://user:***@host/x?token=***"
        );
        assert_eq!(redact_url("https://host/?abc"), "https://host/?***");
        assert_eq!(redact_url("https://host/a?"), "https://host/a?");
    }

    #[test]
    fn what_holds_no_secret_stays() {
        for url in [
            "http://127.0.0.1:8500/v1/agent/service/deregister/web-0",
            "https://user@host/path",
            "http://${HOST}:${PORT:-80}/path",
            "not a url",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn the_last_at_sign_ends_the_userinfo() {
        assert_eq!(redact_url("http://u:p@ss@host/"), "http://u:***@host/");
        assert_eq!(redact_url("http://host/a@b?c=d@e"), "http://host/a@b?c=***");
    }

    #[test]
    fn urls_inside_text_are_found() {
        assert_eq!(
            redact_urls_in("curl -u x `https://a:b@h/p?q=1` --url=http://h/?t=z done"),
            "curl -u x `https://a:***@h/p?q=***` --url=http://h/?t=*** done"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
        assert_eq!(
            redact_urls_in("redact_url(x) twice: http://a:***@h/?q=***"),
            "redact_url(x) twice: http://a:***@h/?q=***"
        );
    }
}

#[cfg(test)]
mod slashes {
    use super::redact_url;

    #[test]
    fn urls_the_parser_reads_as_http_without_two_slashes_are_redacted() {
        for written in [
            "http:/user:pw@127.0.0.1:8080/health?token=q",
            "http:\\\\user:pw@127.0.0.1:8080/health?token=q",
            "http:user:pw@127.0.0.1:8080/health?token=q",
            "HTTP:///user:pw@127.0.0.1:8080/health?token=q",
        ] {
            let shown = redact_url(written);
            assert_eq!(
                shown, "http://user:***@127.0.0.1:8080/health?token=***",
                "{written}"
            );
        }
        assert_eq!(redact_url("not a url: pw"), "not a url: pw");
    }
}
