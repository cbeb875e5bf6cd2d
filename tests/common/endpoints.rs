//! What the tests of graceinit's health endpoints share: where it serves, and its
//! /metrics read by Prometheus' own parser.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Running, wait_until};

/// What graceinit logs (at info, `-v`) once it serves: `... on http://ADDR`.
pub const LOG_LINE: &str = "serving the health endpoints on http://";

/// Debian's python3, which sees Debian's python3-prometheus-client (a python3 earlier on
/// PATH may not).
pub const PYTHON: &str = "/usr/bin/python3";

/// The address graceinit logged (`serving the health endpoints on http://ADDR`), waited
/// for up to 10 s.
pub fn served_at(running: &Running) -> SocketAddr {
    let mut address = None;
    wait_until(Duration::from_secs(10), "the endpoints' log line", || {
        address = running.stderr_so_far().lines().find_map(|line| {
            let rest = &line[line.find(LOG_LINE)? + LOG_LINE.len()..];
            rest.split_whitespace().next()?.parse().ok()
        });
        address.is_some()
    });
    address.expect("found")
}

/// The samples of a Prometheus text exposition, as Prometheus' Python parser reads them.
pub fn parse_metrics(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    assert!(
        std::path::Path::new(PYTHON).is_file(),
        "{PYTHON} is missing: these tests need Debian's python3 with python3-prometheus-client"
    );
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        print(json.dumps([[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]))\n";
    let mut child = Command::new(PYTHON)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("the exposition to the parser");
    let output = child.wait_with_output().expect("the parser");
    assert!(
        output.status.success(),
        "the Prometheus parser rejected the exposition (is python3-prometheus-client installed?): {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the parser's JSON")
}

/// The value of sample `name{labels}`, if there is one.
pub fn sample(
    samples: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == labels)
        .map(|(_, _, value)| *value)
}
