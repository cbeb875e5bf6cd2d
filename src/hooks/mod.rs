//! Running hook actions — exec, http, tcp, sleep — each under a time limit, and reporting
//! how it went; probes' checks run on the same actions ([`Runner::check`]). The lifecycle
//! (when hooks run, what a failure means) is the supervisor's, the probes' schedule is
//! probes/'s; this module only runs one action and tells the truth about it.

mod exec;
mod quiet;
mod relay;

use std::sync::{Arc, Mutex, OnceLock};

use hyper_util::client::legacy::connect::HttpInfo;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Action, Hook, HttpRequest, redact_url, redact_urls_in};
use crate::reaper::Reaper;
use exec::Output;
use relay::Relays;
pub use relay::{Captured, CapturedLine};

/// How one run of a hook ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed(String),
    /// Its own `timeout` ran out.
    TimedOut(Duration),
    /// The drain's deadline came first (a sleep cut short this way still succeeds).
    CutShort,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }

    pub fn describe(&self) -> String {
        match self {
            Outcome::Succeeded => "succeeded".into(),
            Outcome::Failed(reason) => reason.clone(),
            Outcome::TimedOut(after) => {
                format!("timed out after {}", humantime::format_duration(*after))
            }
            Outcome::CutShort => "cut short at the drain deadline".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub label: String,
    pub outcome: Outcome,
    pub took: Duration,
}

/// Runs actions. Shared by every hook task; holds the HTTP client, built on first use so
/// that a config without http actions never pays for TLS set-up.
pub struct Runner {
    reaper: Arc<Reaper>,
    http: OnceLock<reqwest::Client>,
    relays: Relays,
}

impl Runner {
    pub fn new(reaper: Arc<Reaper>) -> Self {
        Runner {
            reaper,
            http: OnceLock::new(),
            relays: Relays::default(),
        }
    }

    /// Whether hook output may still be on its way to the log.
    pub fn output_in_flight(&self) -> bool {
        self.relays.any_running()
    }

    /// Lets hook output still in flight reach the log (until `deadline` at the latest),
    /// before exit.
    pub async fn finish_output(&self, deadline: Instant) {
        self.relays.finish(deadline).await;
    }

    /// Runs `hook` until it finishes, its timeout passes, or `deadline` (the drain's
    /// stop-by time) arrives, whichever is first.
    pub async fn run(&self, hook: &Hook, deadline: Option<Instant>) -> Report {
        let label = hook.label();
        let started = Instant::now();
        let own_limit = started + hook.timeout;
        let (limit, cut_by_deadline) = match deadline {
            Some(deadline) if deadline < own_limit => (deadline, true),
            _ => (own_limit, false),
        };
        let expired = if cut_by_deadline {
            Outcome::CutShort
        } else {
            Outcome::TimedOut(hook.timeout)
        };
        tracing::info!(hook = %label, action = %hook.action, "running hook");
        let output = Output::Log {
            phase: hook.phase.name(),
            index: hook.index,
        };
        let outcome = self
            .perform(&hook.action, &output, started, limit, expired)
            .await;
        let report = Report {
            label,
            outcome,
            took: started.elapsed(),
        };
        tracing::info!(hook = %report.label, outcome = %report.outcome.describe(), took = ?report.took, "hook finished");
        report
    }

    /// One run of a probe's action, cut at `timeout` (an exec probe's process group is
    /// killed then, and its status left to the reaper): Ok, or why it failed; and what an
    /// exec probe printed, at most `room` lines of it (the rest counted), for the probe
    /// to show or not.
    pub async fn check(
        &self,
        action: &Action,
        timeout: Duration,
        room: usize,
    ) -> (Result<(), String>, Captured) {
        let started = Instant::now();
        let captured = Arc::new(Mutex::new(Captured::with_room(room)));
        let outcome = self
            .perform(
                action,
                &Output::Capture(captured.clone()),
                started,
                started + timeout,
                Outcome::TimedOut(timeout),
            )
            .await;
        let result = match outcome {
            Outcome::Succeeded => Ok(()),
            other => Err(other.describe()),
        };
        // What reached the capture by now; a relay still held open by a process that left
        // the probe's group writes on into the shared copy, which nobody reads.
        let output = std::mem::take(&mut *captured.lock().unwrap_or_else(|e| e.into_inner()));
        (result, output)
    }

    /// Runs `action` until `limit`, when it ends as `expired`. `output` says where exec
    /// output goes.
    async fn perform(
        &self,
        action: &Action,
        output: &Output,
        started: Instant,
        limit: Instant,
        expired: Outcome,
    ) -> Outcome {
        match action {
            // A sleep always succeeds, however it ends (DESIGN: hooks and probes).
            Action::Sleep(duration) => {
                tokio::time::sleep_until((started + *duration).min(limit)).await;
                Outcome::Succeeded
            }
            Action::Exec { argv, env, workdir } => {
                exec::run(
                    &self.reaper,
                    &self.relays,
                    output,
                    argv,
                    env,
                    workdir.as_deref(),
                    limit,
                    expired,
                )
                .await
            }
            Action::Http(request) => self.http(request, limit, expired).await,
            Action::Tcp(address) => tcp(address, limit, expired).await,
            // Like a sleep, it always succeeds, however it ends.
            Action::WaitQuiet(wait) => {
                quiet::run(wait, limit).await;
                Outcome::Succeeded
            }
        }
    }

    async fn http(&self, request: &HttpRequest, limit: Instant, expired: Outcome) -> Outcome {
        let client = match self.client() {
            Ok(client) => client,
            Err(e) => return Outcome::Failed(e),
        };
        match tokio::time::timeout_at(limit, send_http(client, request)).await {
            Err(_) => expired,
            Ok(Err(reason)) => Outcome::Failed(format!(
                "{} {}: {reason}",
                request.method,
                redact_url(&request.url)
            )),
            Ok(Ok(_)) => Outcome::Succeeded,
        }
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        let client = http_client()?;
        Ok(self.http.get_or_init(|| client))
    }
}

/// Redirects are not followed: a pre-stop call that gets redirected did not reach the
/// registry it was meant for. No connection is kept alive, as the kubelet's prober keeps
/// none (DisableKeepAlives): a probe every period opens its own, and an idle pooled
/// connection would bring the pool's reaper timer, a wake-up of its own.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| format!("cannot create the HTTP client: {}", error_chain(&e)))
}

async fn tcp(address: &str, limit: Instant, expired: Outcome) -> Outcome {
    match tokio::time::timeout_at(limit, connect_tcp(address)).await {
        Err(_) => expired,
        Ok(Err(reason)) => Outcome::Failed(format!("tcp {address}: {reason}")),
        Ok(Ok(())) => Outcome::Succeeded,
    }
}

/// Sends an http action's request, hooks' and `graceinit probe`'s alike. Ok: the status,
/// one the request accepts (by default 2xx or 3xx, as Kubernetes' httpGet); Err: why
/// not, never naming the URL (reqwest's error is stripped of it): the caller names the
/// request, redacted. No time limit: the caller sets one.
pub async fn send_http(
    client: &reqwest::Client,
    request: &HttpRequest,
) -> Result<reqwest::StatusCode, String> {
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut builder = client.request(method, &request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let response = builder
        .send()
        .await
        .map_err(|e| error_chain(&e.without_url()))?;
    // A connection to a listener in this network namespace (no connection is reused) is
    // one of graceinit's own for the drain's traffic sampler; its two ends are known
    // while it is still open, so that the app's end is still graceinit's once
    // graceinit's is closed.
    if let Some(info) = response.extensions().get::<HttpInfo>() {
        own_if_local(info.local_addr(), info.remote_addr());
    }
    let status = response.status();
    if request.accepts(status.as_u16()) {
        Ok(status)
    } else {
        Err(format!("answered {status}"))
    }
}

/// Connects to a tcp action's address, hooks' and `graceinit probe`'s alike; the
/// connection is the answer, and is closed at once. No time limit: the caller sets one.
pub async fn connect_tcp(address: &str) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    if let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) {
        own_if_local(local, peer);
    }
    Ok(())
}

/// A connection of graceinit's own, from `local` to `peer`: if `peer` is a listener in
/// this network namespace (loopback, or this end's own address), the drain's traffic
/// sampler is told, so that it does not take it for the app's traffic.
fn own_if_local(local: std::net::SocketAddr, peer: std::net::SocketAddr) {
    if peer.ip().is_loopback() || peer.ip() == local.ip() {
        crate::traffic::own_connection(local, peer);
    }
}

/// reqwest's Display hides the cause ("error sending request"); the chain names it
/// ("connection refused"). Any URL a cause names is redacted.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    redact_urls_in(&text)
}
