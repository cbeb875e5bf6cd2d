//! `graceinit probe URL`: one check for images with no shell or curl, e.g. as a
//! Kubernetes exec probe or a container HEALTHCHECK. http(s)://: a 2xx or 3xx answer
//! (redirects are not followed) is healthy; tcp://host:port: a connection is.
//! Exit 0 healthy, 1 unhealthy, 2 bad usage.

use std::time::Duration;

use crate::cli::ProbeArgs;
use crate::commands::output;
use crate::config::redact_url;
use crate::exit_code;
use crate::hooks::{error_chain, http_client};

pub fn run(args: &ProbeArgs) -> i32 {
    // The URL is shown redacted: a probe's output lands in the kubelet's events.
    let shown = redact_url(&args.url);
    let check = match Check::parse(&args.url) {
        Ok(check) => check,
        Err(message) => {
            // A usage error whatever happens to its message.
            let _ = output::stderr_line(&format!("graceinit probe: `{shown}`: {message}"));
            return exit_code::USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = output::stderr_line(&format!("graceinit probe: cannot start: {e}"));
            return exit_code::FAILURE;
        }
    };
    let result = runtime.block_on(check.run(args.timeout));
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

enum Check {
    Http(reqwest::Url),
    Tcp(String),
}

impl Check {
    fn parse(text: &str) -> Result<Check, String> {
        if let Some(address) = text.strip_prefix("tcp://") {
            let valid = address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            return if valid {
                Ok(Check::Tcp(address.to_string()))
            } else {
                Err("expected tcp://host:port".to_string())
            };
        }
        let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        match url.scheme() {
            "http" | "https" => Ok(Check::Http(url)),
            other => Err(format!(
                "unsupported scheme `{other}` (expected http, https or tcp)"
            )),
        }
    }

    async fn run(self, timeout: Duration) -> Result<String, String> {
        let attempt = async {
            match self {
                Check::Tcp(address) => tokio::net::TcpStream::connect(&address)
                    .await
                    .map(|_| "connected".to_string())
                    .map_err(|e| e.to_string()),
                Check::Http(url) => {
                    let response = http_client()?
                        .get(url)
                        .send()
                        .await
                        .map_err(|e| error_chain(&e.without_url()))?;
                    let status = response.status();
                    if status.is_success() || status.is_redirection() {
                        Ok(status.to_string())
                    } else {
                        Err(format!("answered {status}"))
                    }
                }
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
}
