//! `graceinit probe URL`: one check for images with no shell or curl, e.g. as a
//! Kubernetes exec probe or a container HEALTHCHECK. http(s)://: a 2xx or 3xx answer
//! (redirects are not followed) is healthy; tcp://host:port: a connection is.
//! Exit 0 healthy, 1 unhealthy, 2 bad usage.
//!
//! The URL becomes the same [`Action`] an http or tcp hook is, checked by the config's
//! rules ([`validate`]) and run by the hooks' functions, so both accept and judge alike.

use std::time::Duration;

use crate::cli::ProbeArgs;
use crate::commands::output;
use crate::config::validate::{self, UrlError};
use crate::config::{Action, HttpRequest, redact_url};
use crate::hooks::{connect_tcp, http_client, send_http};
use crate::{exit_code, runtime};

pub fn run(args: &ProbeArgs) -> i32 {
    // The URL is shown redacted: a probe's output lands in the kubelet's events.
    let shown = redact_url(&args.url);
    let action = match action(&args.url) {
        Ok(action) => action,
        Err(problem) => {
            // A usage error whatever happens to its message.
            let _ = output::stderr_line(&format!("graceinit probe: {}", problem.about(&shown)));
            return exit_code::USAGE;
        }
    };
    let runtime = match runtime::event_loop() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = output::stderr_line(&format!("graceinit probe: cannot start: {e}"));
            return exit_code::FAILURE;
        }
    };
    let result = runtime.block_on(check(&action, args.timeout));
    // A name lookup still blocked on a pool thread must not outlive --timeout.
    runtime.shutdown_background();
    match result {
        Ok(answer) if args.log.verbose => {
            // Healthy, but a report that cannot be written is a failure like any other.
            match output::stderr_line(&format!("graceinit probe: {shown}: {answer}")) {
                Ok(()) => 0,
                Err(_) => exit_code::FAILURE,
            }
        }
        Ok(_) => 0,
        Err(reason) => {
            let _ = output::stderr_line(&format!("graceinit probe: {shown}: {reason}"));
            exit_code::FAILURE
        }
    }
}

/// Why a probe's URL cannot be checked. None quotes the URL: [`Problem::about`] is given
/// it redacted.
enum Problem {
    NotHostPort,
    Url(UrlError),
}

impl Problem {
    fn about(&self, shown: &str) -> String {
        let shown = format!("`{shown}`");
        match self {
            Problem::NotHostPort => format!("{shown}: expected tcp://host:port"),
            Problem::Url(e @ UrlError::Scheme) => {
                format!("{} (or tcp://host:port)", e.about(&shown))
            }
            Problem::Url(e) => e.about(&shown),
        }
    }
}

/// tcp://host:port becomes a tcp action, anything else an http GET that accepts what
/// Kubernetes' httpGet does.
fn action(text: &str) -> Result<Action, Problem> {
    if let Some(address) = text.strip_prefix("tcp://") {
        if !validate::is_host_port(address) {
            return Err(Problem::NotHostPort);
        }
        return Ok(Action::Tcp(address.to_string()));
    }
    let url = validate::http_url(text).map_err(Problem::Url)?;
    Ok(Action::Http(HttpRequest::get(&url)))
}

/// Ok: what answered (for -v); Err: why the check failed.
async fn check(action: &Action, timeout: Duration) -> Result<String, String> {
    let attempt = async {
        match action {
            Action::Tcp(address) => connect_tcp(address).await.map(|()| "connected".to_string()),
            Action::Http(request) => send_http(&http_client()?, request)
                .await
                .map(|status| status.to_string()),
            other => Err(format!("`{other}` is not a check graceinit probe makes")),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_becomes_a_plain_get_judged_by_the_hooks_rule() {
        let Ok(Action::Http(request)) = action("http://127.0.0.1:8080/healthz?x=1") else {
            panic!("an http URL is an http action");
        };
        assert_eq!(request.method, "GET");
        assert_eq!(request.url, "http://127.0.0.1:8080/healthz?x=1");
        assert!(request.headers.is_empty() && request.body.is_none());
        // Kubernetes' httpGet: 2xx and 3xx are healthy, nothing else.
        for (status, healthy) in [
            (199, false),
            (200, true),
            (302, true),
            (399, true),
            (400, false),
            (503, false),
        ] {
            assert_eq!(request.accepts(status), healthy, "{status}");
        }
        assert!(matches!(action("https://h/"), Ok(Action::Http(_))));
        let Ok(Action::Tcp(address)) = action("tcp://127.0.0.1:5432") else {
            panic!("a tcp URL is a tcp action");
        };
        assert_eq!(address, "127.0.0.1:5432");
    }

    #[test]
    fn what_a_hook_could_not_reach_is_a_usage_error_naming_the_url_as_shown() {
        let about = |url: &str| match action(url) {
            Ok(action) => panic!("{url} was accepted as {action}"),
            Err(problem) => problem.about(&redact_url(url)),
        };
        assert_eq!(
            about("ftp://u:pw@h/?t=x"),
            "`ftp://u:***@h/?t=***`: only http:// and https:// URLs are supported (or tcp://host:port)"
        );
        assert_eq!(
            about("http://h:99999/"),
            "`http://h:99999/` is not a URL: invalid port number"
        );
        assert_eq!(about("tcp://h"), "`tcp://h`: expected tcp://host:port");
        assert_eq!(about("tcp://:80"), "`tcp://:80`: expected tcp://host:port");
        assert_eq!(
            about("tcp://h:http"),
            "`tcp://h:http`: expected tcp://host:port"
        );
    }
}
