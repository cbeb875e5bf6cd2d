//! What each path answers. The health paths follow kube-apiserver's `/livez` and
//! `/readyz` (staging/src/k8s.io/apiserver/pkg/server/healthz): `ok`, `?verbose` for one
//! `[+]name ok` / `[-]name failed: reason` line per check, `?exclude=name` to leave a
//! check out; but a failure answers 503 (what the kubelet and load balancers read as
//! "not now") with the first failing check, where kube-apiserver answers 500 with them
//! all.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;

use super::{Endpoints, metrics};
use crate::supervisor::{Check, Handle, Snapshot};

/// How long any answer but `/prestop`'s may take (`/metrics` reads /proc on a thread).
/// `/prestop` answers when the pre_stop hooks are done, which the drain's own deadlines
/// bound.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

const TEXT: &str = "text/plain; charset=utf-8";
/// The Prometheus text exposition format, version 0.0.4.
const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";
const JSON: &str = "application/json";

/// The header `/prestop` checks against `[http] token`.
const TOKEN_HEADER: &str = "x-graceinit-token";

pub async fn answer(
    request: Request<Incoming>,
    handle: &Handle,
    endpoints: &Endpoints,
) -> Response<Full<Bytes>> {
    let read_only = matches!(*request.method(), Method::GET | Method::HEAD);
    match request.uri().path() {
        "/livez" | "/readyz" | "/startupz" | "/status" | "/metrics" if !read_only => {
            not_allowed("GET, HEAD")
        }
        "/prestop" if !endpoints.prestop => not_found(),
        "/prestop" if !matches!(*request.method(), Method::GET | Method::POST) => {
            not_allowed("GET, POST")
        }
        "/prestop" => prestop(&request, handle, endpoints).await,
        path @ ("/livez" | "/readyz" | "/startupz" | "/status" | "/metrics") => {
            let query = request.uri().query().unwrap_or("");
            match tokio::time::timeout(REQUEST_DEADLINE, read(path, query, handle)).await {
                Ok(response) => response,
                Err(_) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the answer took too long\n".into(),
                ),
            }
        }
        _ => not_found(),
    }
}

/// The read-only paths, from one snapshot. The health paths, which the kubelet asks
/// every few seconds and a load balancer maybe hundreds of times a second, read it in
/// place; the others take a copy (/metrics reads /proc on the blocking pool meanwhile).
async fn read(path: &str, query: &str, handle: &Handle) -> Response<Full<Bytes>> {
    let checks = match path {
        "/livez" => Some(("livez", handle.with_snapshot(Snapshot::liveness_checks))),
        "/readyz" => Some(("readyz", handle.with_snapshot(Snapshot::readiness_checks))),
        "/startupz" => Some(("startupz", handle.with_snapshot(Snapshot::startup_checks))),
        _ => None,
    };
    if let Some((name, checks)) = checks {
        let (status, body) = health(name, &checks, &HealthQuery::parse(query));
        return text(status, body);
    }
    let snapshot = handle.snapshot();
    match path {
        "/status" => {
            let mut body = crate::status::to_json(&snapshot).to_string();
            body.push('\n');
            respond(StatusCode::OK, JSON, body)
        }
        _ => {
            let body = metrics::render(&snapshot).await;
            respond(StatusCode::OK, METRICS, body)
        }
    }
}

/// `?verbose` and `?exclude=name` (repeatable), as kube-apiserver reads them.
#[derive(Debug, Default, PartialEq)]
struct HealthQuery {
    verbose: bool,
    exclude: Vec<String>,
}

impl HealthQuery {
    fn parse(query: &str) -> HealthQuery {
        let mut parsed = HealthQuery::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "verbose" => parsed.verbose = true,
                "exclude" => parsed.exclude.push(value.into_owned()),
                _ => {}
            }
        }
        parsed
    }
}

/// The answer of a health path `name` ("livez", "readyz", "startupz") for `checks`.
fn health(name: &str, checks: &[Check], query: &HealthQuery) -> (StatusCode, String) {
    let excluded = |check: &Check| query.exclude.iter().any(|e| e == check.name);
    let first_failure = checks
        .iter()
        .filter(|check| !excluded(check))
        .find_map(|check| Some((check.name, check.failure.as_ref()?)));
    let status = match first_failure {
        None => StatusCode::OK,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if !query.verbose {
        let body = match first_failure {
            None => "ok".to_string(),
            Some((check, why)) => format!("{check} failed: {why}"),
        };
        return (status, body);
    }
    let mut body = String::new();
    for check in checks {
        let line = match &check.failure {
            _ if excluded(check) => format!("[+]{} excluded: ok\n", check.name),
            None => format!("[+]{} ok\n", check.name),
            Some(why) => format!("[-]{} failed: {why}\n", check.name),
        };
        body.push_str(&line);
    }
    let unmatched = query
        .exclude
        .iter()
        .any(|e| !checks.iter().any(|check| check.name == e));
    if unmatched {
        // kube-apiserver names the unmatched names; they are query values, which
        // graceinit never echoes, so it names the checks there are instead.
        let known: Vec<&str> = checks.iter().map(|check| check.name).collect();
        body.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches (the checks are {})\n",
            known.join(", ")
        ));
    }
    let verdict = if status == StatusCode::OK {
        "passed"
    } else {
        "failed"
    };
    body.push_str(&format!("{name} check {verdict}\n"));
    (status, body)
}

/// Starts (or joins) the drain and answers once its pre_stop hooks are done: the
/// kubelet's `httpGet` preStop hook, after which it sends SIGTERM (which then only sends
/// the stop signal: the hooks ran once).
async fn prestop(
    request: &Request<Incoming>,
    handle: &Handle,
    endpoints: &Endpoints,
) -> Response<Full<Bytes>> {
    if let Some(token) = &endpoints.token {
        let given = request
            .headers()
            .get(TOKEN_HEADER)
            .map_or(&b""[..], HeaderValue::as_bytes);
        // Constant-time: how much of a guess matched must not show in the answer's time.
        if !bool::from(given.ct_eq(token.as_bytes())) {
            return text(
                StatusCode::UNAUTHORIZED,
                "/prestop needs the X-Graceinit-Token header set to [http] token\n".into(),
            );
        }
    }
    match handle.drain().await {
        Ok(outcome) => text(StatusCode::OK, format!("{outcome}\n")),
        Err(failure) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{failure}\n")),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "404 page not found\n".into())
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "405 method not allowed\n".into(),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = respond(status, TEXT, body);
    // As kube-apiserver: a browser must not guess HTML from a reason.
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &'static str, failure: Option<&str>) -> Check {
        Check {
            name,
            failure: failure.map(str::to_string),
        }
    }

    fn checks() -> Vec<Check> {
        vec![
            check("app", None),
            check("post_start", Some("post_start hooks have not finished")),
            check("draining", Some("the drain has started")),
        ]
    }

    #[test]
    fn the_query_reads_verbose_and_every_exclude() {
        assert_eq!(
            HealthQuery::parse("verbose&exclude=app&exclude=post%5Fstart&other=1"),
            HealthQuery {
                verbose: true,
                exclude: vec!["app".into(), "post_start".into()],
            }
        );
        assert_eq!(HealthQuery::parse(""), HealthQuery::default());
    }

    #[test]
    fn a_failure_answers_the_first_failing_check() {
        let (status, body) = health("readyz", &checks(), &HealthQuery::default());
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "post_start failed: post_start hooks have not finished"
        );
    }

    #[test]
    fn excluding_the_failing_checks_passes() {
        let query = HealthQuery::parse("exclude=post_start&exclude=draining");
        assert_eq!(
            health("readyz", &checks(), &query),
            (StatusCode::OK, "ok".to_string())
        );
        let query = HealthQuery::parse("exclude=post_start");
        assert_eq!(
            health("readyz", &checks(), &query).1,
            "draining failed: the drain has started"
        );
    }

    #[test]
    fn verbose_lists_every_check_as_kube_apiserver_does() {
        let query = HealthQuery::parse("verbose&exclude=draining&exclude=nosuch");
        let (status, body) = health("readyz", &checks(), &query);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "[+]app ok\n[-]post_start failed: post_start hooks have not finished\n[+]draining excluded: ok\nwarn: some health checks cannot be excluded: no matches (the checks are app, post_start, draining)\nreadyz check failed\n"
        );
        let (status, body) = health("livez", &[check("supervisor", None)], &query);
        assert_eq!(status, StatusCode::OK);
        assert!(body.ends_with("[+]supervisor ok\nwarn: some health checks cannot be excluded: no matches (the checks are supervisor)\nlivez check passed\n"), "{body}");
    }
}
