//! A closed or full stdout/stderr is an error exit, never a panic: 1 when the output
//! was the point (`check`'s report, `--help`, `probe -v`), 2 for a usage or config error
//! whose message could not be written. `print!` would panic instead (exit 101 in a debug
//! build, 134 in the release build, which aborts).

mod common;

use std::fs::File;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{GRACEINIT, TempDir};

/// Where one of graceinit's outputs goes.
enum Sink {
    /// /dev/full: every write fails with ENOSPC.
    Full,
    /// A pipe whose reader is gone before graceinit writes (`| head -c1` once head has
    /// exited): every write fails with EPIPE, as SIGPIPE is ignored.
    ClosedPipe,
    /// Read by nobody, written freely.
    Null,
}

impl Sink {
    fn stdio(&self) -> Stdio {
        match self {
            Sink::Full => File::options()
                .write(true)
                .open("/dev/full")
                .expect("open /dev/full")
                .into(),
            Sink::ClosedPipe => {
                let (reader, writer) = std::io::pipe().expect("pipe");
                drop(reader);
                writer.into()
            }
            Sink::Null => Stdio::null(),
        }
    }
}

/// Runs graceinit with `stdout` and `stderr` going to the sinks; its exit code. Bounded
/// at 20 s; a death by signal fails the test.
fn exit_code(args: &[&str], stdout: Sink, stderr: Sink) -> i32 {
    let mut child = Command::new(GRACEINIT)
        .args(args)
        .env_remove("GRACEINIT_CONFIG")
        .stdin(Stdio::null())
        .stdout(stdout.stdio())
        .stderr(stderr.stdio())
        .spawn()
        .expect("start graceinit");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait for graceinit") {
            return status
                .code()
                .unwrap_or_else(|| panic!("graceinit {args:?} died: {status:?}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("graceinit {args:?} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn configs() -> (TempDir, String, String, String) {
    let dir = TempDir::new("unwritable");
    let ok = dir.write(
        "ok.toml",
        "[app]\nstop_timeout = \"5s\"\n\n[[hooks.pre_stop]]\nsleep = \"1s\"\n",
    );
    // Valid, with a warning (the drain does not fit) for stderr.
    let warns = dir.write(
        "warns.toml",
        "[app]\nstop_timeout = \"25s\"\n\n[[hooks.pre_stop]]\nsleep = \"10s\"\n",
    );
    let bad = dir.write("bad.toml", "[app]\nstop_timout = \"5s\"\n");
    (dir, ok, warns, bad)
}

#[test]
fn check_whose_report_cannot_be_written_exits_1() {
    let (_dir, ok, warns, _) = configs();
    assert_eq!(exit_code(&["check", &ok], Sink::Null, Sink::Null), 0);
    assert_eq!(exit_code(&["check", &ok], Sink::Full, Sink::Null), 1);
    assert_eq!(exit_code(&["check", &ok], Sink::ClosedPipe, Sink::Null), 1);
    // Both outputs unwritable: still exit 1.
    assert_eq!(exit_code(&["check", &ok], Sink::Full, Sink::Full), 1);
    // Its warnings cannot be written.
    assert_eq!(exit_code(&["check", &warns], Sink::Null, Sink::Null), 0);
    assert_eq!(exit_code(&["check", &warns], Sink::Null, Sink::Full), 1);
    assert_eq!(
        exit_code(&["check", &warns], Sink::Null, Sink::ClosedPipe),
        1
    );
}

#[test]
fn check_names_the_failed_write_on_stderr() {
    let (_dir, ok, _, _) = configs();
    let done = Command::new(GRACEINIT)
        .args(["check", &ok])
        .stdout(Sink::Full.stdio())
        .output()
        .expect("run graceinit");
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert_eq!(
        String::from_utf8_lossy(&done.stderr),
        "graceinit check: cannot write: No space left on device (os error 28)\n"
    );
}

#[test]
fn a_config_error_that_cannot_be_written_still_exits_2() {
    let (_dir, _, _, bad) = configs();
    assert_eq!(exit_code(&["check", &bad], Sink::Null, Sink::Full), 2);
    assert_eq!(exit_code(&["check", &bad], Sink::Null, Sink::ClosedPipe), 2);
    // The supervisor's config error, and its "no command" usage error.
    assert_eq!(
        exit_code(&["--config", &bad, "--", "true"], Sink::Null, Sink::Full),
        2
    );
    assert_eq!(exit_code(&[], Sink::Null, Sink::Full), 2);
    // clap's usage errors.
    assert_eq!(exit_code(&["--no-such-flag"], Sink::Null, Sink::Full), 2);
    assert_eq!(exit_code(&["check"], Sink::Null, Sink::ClosedPipe), 2);
}

#[test]
fn help_and_version_that_cannot_be_written_exit_1() {
    for flag in ["--help", "--version"] {
        assert_eq!(exit_code(&[flag], Sink::Null, Sink::Null), 0, "{flag}");
        assert_eq!(exit_code(&[flag], Sink::Full, Sink::Null), 1, "{flag}");
        assert_eq!(
            exit_code(&[flag], Sink::ClosedPipe, Sink::Null),
            1,
            "{flag}"
        );
    }
    assert_eq!(exit_code(&["check", "--help"], Sink::Full, Sink::Null), 1);
    assert_eq!(exit_code(&["probe", "--help"], Sink::Full, Sink::Null), 1);
}

#[test]
fn probe_output_that_cannot_be_written_is_an_error_not_a_panic() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let healthy = format!("tcp://{}", open.local_addr().unwrap());
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("tcp://{}", listener.local_addr().unwrap())
    };
    // Quiet and healthy: nothing to write.
    assert_eq!(exit_code(&["probe", &healthy], Sink::Full, Sink::Full), 0);
    // -v: the report cannot be written.
    assert_eq!(
        exit_code(&["probe", "-v", &healthy], Sink::Null, Sink::Null),
        0
    );
    assert_eq!(
        exit_code(&["probe", "-v", &healthy], Sink::Null, Sink::Full),
        1
    );
    assert_eq!(
        exit_code(&["probe", "-v", &healthy], Sink::Null, Sink::ClosedPipe),
        1
    );
    // Unhealthy, and the reason cannot be written.
    assert_eq!(exit_code(&["probe", &closed], Sink::Null, Sink::Full), 1);
    // A bad URL whose message cannot be written.
    assert_eq!(exit_code(&["probe", "ftp://x/"], Sink::Null, Sink::Full), 2);
}
