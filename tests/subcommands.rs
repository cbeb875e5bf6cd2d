//! `graceinit probe`, a tool for images with no shell, against real servers on loopback
//! (`graceinit sleep` is in tests/sleep.rs).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use common::{Finished, Launch};

fn graceinit(args: &[&str]) -> Finished {
    Launch::direct(args.iter().copied()).run(Duration::from_secs(20))
}

/// A loopback HTTP server answering every request with `status` (and a Location for 3xx),
/// for `requests` requests; returns its base URL.
fn http_server(status: &str, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let status = status.to_string();
    thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.read(&mut request);
            let answer = format!(
                "HTTP/1.1 {status}\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    url
}

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn probe_http_accepts_2xx_and_3xx_without_following_redirects() {
    for status in ["200 OK", "204 No Content", "302 Found"] {
        let url = http_server(status, 1);
        let done = graceinit(&["probe", &format!("{url}/health"), "--timeout", "5s"]);
        done.assert_code(0);
        assert_eq!(done.stderr, "", "a healthy probe is silent");
    }
}

#[test]
fn probe_http_fails_on_4xx_and_5xx_naming_the_status() {
    for (status, code) in [("404 Not Found", "404"), ("503 Service Unavailable", "503")] {
        let url = http_server(status, 1);
        let done = graceinit(&["probe", &format!("{url}/health"), "--timeout", "5s"]);
        done.assert_code(1);
        assert!(done.stderr.contains(code), "{}", done.stderr);
    }
}

#[test]
fn probe_http_fails_when_nothing_listens_or_nothing_answers() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let done = graceinit(&["probe", &url, "--timeout", "5s"]);
    done.assert_code(1);
    assert!(
        done.stderr.to_lowercase().contains("refused"),
        "{}",
        done.stderr
    );

    // Accepts the connection and never answers: the timeout decides.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let done = graceinit(&["probe", &url, "--timeout", "300ms"]);
    done.assert_code(1);
    assert!(
        done.stderr.contains("no answer within 300ms"),
        "{}",
        done.stderr
    );
    assert!(
        done.elapsed < Duration::from_secs(5),
        "took {:?}",
        done.elapsed
    );
}

#[test]
fn probe_tcp_checks_the_connection() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let done = graceinit(&["probe", &format!("tcp://{}", open.local_addr().unwrap())]);
    done.assert_code(0);
    let done = graceinit(&["probe", &format!("tcp://127.0.0.1:{}", closed_port())]);
    done.assert_code(1);
}

#[test]
fn probe_rejects_what_it_cannot_check_with_usage_error() {
    for url in [
        "ftp://127.0.0.1/",
        "not a url",
        "tcp://127.0.0.1",
        "tcp://:80",
    ] {
        let done = graceinit(&["probe", url]);
        done.assert_code(2);
        assert!(
            done.stderr.contains("graceinit probe:"),
            "{url}: {}",
            done.stderr
        );
    }
}
