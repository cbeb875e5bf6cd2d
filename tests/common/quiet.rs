//! What the tests of `wait_quiet` and the drain's traffic report share: reading what
//! graceinit logged (the `wait_quiet over` line, the hook's `took`, the DrainFinished
//! event) and asking its endpoint.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::Finished;

/// Connections and reads in these helpers give up after this.
const WAIT: Duration = Duration::from_secs(10);

/// The body of `GET path` (HTTP/1.0: the server closes after its answer).
pub fn fetch(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&address, WAIT).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{raw}"
    );
    body.to_string()
}

pub fn traffic(endpoint: SocketAddr) -> serde_json::Value {
    let status: serde_json::Value =
        serde_json::from_str(&fetch(endpoint, "/status")).expect("/status is JSON");
    status["drain"]["traffic"].clone()
}

/// The DrainFinished event's log line.
pub fn drain_finished(finished: &Finished) -> &str {
    let mut lines = finished
        .stderr
        .lines()
        .filter(|l| l.contains("DrainFinished"));
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("no DrainFinished event:\n{}", finished.stderr));
    assert!(
        lines.next().is_none(),
        "two DrainFinished:\n{}",
        finished.stderr
    );
    line
}

/// The `wait_quiet over` log line.
pub fn over_line(finished: &Finished) -> &str {
    finished
        .stderr
        .lines()
        .find(|l| l.contains("wait_quiet over"))
        .unwrap_or_else(|| panic!("no `wait_quiet over` line:\n{}", finished.stderr))
}

/// The `arrivals=N` of the `wait_quiet over` log line.
pub fn arrivals(finished: &Finished) -> usize {
    let value = over_line(finished)
        .split("arrivals=")
        .nth(1)
        .expect("an arrivals field");
    value.split_whitespace().next().unwrap().parse().unwrap()
}

/// The `took=` of the pre_stop hook's `hook finished` line.
pub fn took(finished: &Finished) -> Duration {
    let line = finished
        .stderr
        .lines()
        .find(|l| l.contains("hook finished hook=pre_stop#1"))
        .unwrap_or_else(|| panic!("no `hook finished` line:\n{}", finished.stderr));
    let value = line.split("took=").nth(1).expect("a took field").trim();
    parse_debug_duration(value)
}

/// A Duration's Debug form: "1.50123s", "998.2ms", "12.5µs".
pub fn parse_debug_duration(text: &str) -> Duration {
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|i| text.split_at(i))
        .unwrap_or_else(|| panic!("not a duration: {text}"));
    let number: f64 = number.parse().unwrap();
    let seconds = match unit {
        "s" => number,
        "ms" => number / 1e3,
        "µs" => number / 1e6,
        "ns" => number / 1e9,
        other => panic!("unknown unit {other} in {text}"),
    };
    Duration::from_secs_f64(seconds)
}

pub fn assert_between(what: &str, value: Duration, low: Duration, high: Duration, f: &Finished) {
    assert!(
        value >= low && value <= high,
        "{what}: {value:?}, expected {low:?}..={high:?}\nstderr:\n{}",
        f.stderr
    );
}
