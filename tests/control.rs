//! The control socket and its clients, `graceinit drain` (the preStop exec target) and
//! `graceinit status`, against the real binary.
//!
//! Where the socket is: most tests give graceinit `--socket` in a TempDir. The default
//! place is tested with graceinit as PID 1 of a PID and mount namespace, whose /run and
//! /tmp are tmpfs mounts of its own (as a container's are; the host's /run is never
//! touched): `Launch::pid1` mounts a fresh /run; the fallback tests launch unshare
//! themselves with /run read-only, or with no /run and no /tmp at all (a chroot into an
//! empty tmpfs holding only the libraries, as in a FROM-scratch image). From outside,
//! the socket is reached as /proc/PID/root/..., or the client runs in graceinit's mount
//! namespace with `nsenter --mount`, where it finds the socket as a preStop hook would:
//! with no flag at all. This needs root (unshare, mount, nsenter, setpriv): the tests
//! fail, never skip, without it.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    GRACEINIT, Launch, RUNNER, Running, TempDir, children, comm, lines, ns_pid, require_tool,
    serial, wait_for_line, wait_until,
};
use serde_json::Value;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// An app that writes `up` once its trap is in, then `term` on SIGTERM and exits 0.
fn app(dir: &TempDir) -> String {
    let file = dir.file("app");
    format!("trap 'echo term >> {file}; exit 0' TERM; echo up >> {file}; sleep 1000 & wait")
}

/// A pre_stop hook that records each run in `hooks` and takes `seconds`.
fn counted_hook(dir: &TempDir, seconds: &str) -> String {
    format!(
        "[[hooks.pre_stop]]\nexec = [\"sh\", \"-c\", \"echo run >> {hooks}; sleep {seconds}\"]\n",
        hooks = dir.file("hooks"),
    )
}

/// graceinit with `config`, its socket at `socket`, running [`app`]; returned once the
/// app is up (graceinit binds the socket before it starts the app).
fn supervise(dir: &TempDir, config: &str, socket: &str) -> Running {
    let config = dir.write("graceinit.toml", config);
    let app = app(dir);
    let graceinit = Launch::direct([
        "--config", &config, "--socket", socket, "--", "sh", "-c", &app,
    ])
    .start();
    wait_for_line(dir.join("app"), "up");
    graceinit
}

/// `graceinit ARGS...` as a client.
fn client(args: &[&str]) -> common::Finished {
    Launch::direct(args).run(CLIENT_TIMEOUT)
}

/// `graceinit status --json --socket PATH`, parsed.
fn status(socket: &str) -> Value {
    let status = client(&["status", "--json", "--socket", socket]);
    status.assert_code(0);
    serde_json::from_str(&status.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", status.stdout))
}

/// SIGTERM, then graceinit's exit (0: the app exits 0 on SIGTERM).
fn stop(graceinit: Running, dir: &TempDir) -> common::Finished {
    graceinit.signal(libc::SIGTERM);
    wait_for_line(dir.join("app"), "term");
    let finished = graceinit.wait(EXIT_TIMEOUT);
    finished.assert_code(0);
    finished
}

fn assert_socket_0600(path: &Path) {
    let meta = fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("no control socket at {}: {e}", path.display()));
    assert!(
        meta.file_type().is_socket(),
        "{} is a socket",
        path.display()
    );
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o600,
        "{} is mode 0600",
        path.display()
    );
}

// ---------------------------------------------------------------------------------------
// Where the socket is

/// The pid of graceinit started by `sh -c 'SETUP; exec graceinit ...'` under unshare:
/// unshare's child, once it has exec'd graceinit (or the runner that runs it).
fn graceinit_under(running: &Running) -> i32 {
    let program = Path::new(RUNNER.unwrap_or(GRACEINIT));
    let name: String = program
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .chars()
        .take(15)
        .collect();
    let mut found = 0;
    wait_until(
        Duration::from_secs(5),
        "the setup shell to exec graceinit",
        || match children(running.pid()).first() {
            Some(&pid) if comm(pid).as_deref() == Some(name.as_str()) => {
                found = pid;
                true
            }
            _ => false,
        },
    );
    found
}

/// graceinit as PID 1 of new PID and mount namespaces, after `setup` (sh) has run there.
fn pid1_after(setup: &str, args: &[&str]) -> Running {
    require_tool("unshare", "util-linux");
    let mut command = vec![
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "sh",
        "-c",
    ];
    let script = format!("set -e; {setup}; exec \"$@\"");
    command.push(&script);
    command.push("sh");
    command.extend(RUNNER);
    command.push(GRACEINIT);
    command.extend(args);
    Launch::program("unshare", command).start()
}

/// `graceinit ARGS...` in the mount namespace of process `pid` (so /run and /tmp are
/// its), as a preStop exec hook runs in the container.
fn client_in_mounts_of(pid: i32, args: &[&str]) -> common::Finished {
    require_tool("nsenter", "util-linux");
    let target = pid.to_string();
    let mut command = vec!["--target", &target, "--mount"];
    command.extend(RUNNER);
    command.push(GRACEINIT);
    command.extend(args);
    Launch::program("nsenter", command).run(CLIENT_TIMEOUT)
}

#[test]
fn as_pid1_the_socket_is_on_by_default_at_run_graceinit_sock() {
    let dir = TempDir::new("control-default");
    let app = app(&dir);
    // Launch::pid1 gives graceinit a tmpfs of its own on /run.
    let graceinit = Launch::pid1(["--", "sh", "-c", &app]).start();
    wait_for_line(dir.join("app"), "up");
    let pid = graceinit.graceinit_pid();
    assert_socket_0600(&Path::new(&format!("/proc/{pid}/root")).join("run/graceinit.sock"));

    // No flag, no variable, no config: what a preStop exec hook runs.
    let status = client_in_mounts_of(pid, &["status", "--json"]);
    status.assert_code(0);
    let json: Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(json["phase"], "running");
    let app_pid = graceinit.wait_for_app("sh");
    assert_eq!(json["app"]["pid"], ns_pid(app_pid));
    let drain = client_in_mounts_of(pid, &["drain"]);
    drain.assert_code(0);
    assert_eq!(drain.stderr, "");
    stop(graceinit, &dir);
}

#[test]
fn as_pid1_with_run_read_only_the_socket_falls_back_to_tmp() {
    let dir = TempDir::new("control-fallback");
    let app = app(&dir);
    let graceinit = pid1_after(
        "mount -t tmpfs -o ro graceinit-run /run; mount -t tmpfs graceinit-tmp /tmp",
        &["--", "sh", "-c", &app],
    );
    wait_for_line(dir.join("app"), "up");
    let pid = graceinit_under(&graceinit);
    let root = Path::new(&format!("/proc/{pid}/root")).to_path_buf();
    assert!(
        !root.join("run/graceinit.sock").exists(),
        "nothing could be bound on the read-only /run"
    );
    assert_socket_0600(&root.join("tmp/graceinit.sock"));
    // The client looks in /run first, finds nothing there, and finds /tmp's.
    let status = client_in_mounts_of(pid, &["status", "--json"]);
    status.assert_code(0);
    let drain = client_in_mounts_of(pid, &["drain"]);
    drain.assert_code(0);

    common::send_signal(pid, libc::SIGTERM);
    wait_for_line(dir.join("app"), "term");
    graceinit.wait(EXIT_TIMEOUT).assert_code(0);
}

#[test]
fn as_pid1_without_run_and_tmp_graceinit_creates_tmp_for_the_socket() {
    // A FROM-scratch image: a root with the shared libraries and graceinit, nothing else
    // (no /run, no /tmp, no shell: the app is `graceinit sleep`).
    let dir = TempDir::new("control-scratch");
    let root = dir.file("root");
    fs::create_dir(&root).expect("mkdir root");
    let binaries = Path::new(GRACEINIT)
        .parent()
        .expect("the binary's directory")
        .to_str()
        .expect("UTF-8 path")
        .to_string();
    let setup = format!(
        "mount -t tmpfs -o mode=755 scratch {root}
         for d in usr lib lib32 lib64 libx32; do
           if [ -L /$d ]; then ln -s \"$(readlink /$d)\" {root}/$d;
           elif [ -d /$d ]; then mkdir {root}/$d; mount --rbind /$d {root}/$d; fi
         done
         mkdir -p {root}{binaries} {root}/proc
         mount --bind {binaries} {root}{binaries}
         mount -t proc proc {root}/proc
         cd {root}
         set -- chroot {root} \"$@\""
    );
    let graceinit = pid1_after(&setup, &["--", GRACEINIT, "sleep", "1000"]);
    let pid = graceinit_under(&graceinit);
    let inside = Path::new(&format!("/proc/{pid}/root")).to_path_buf();
    let socket = inside.join("tmp/graceinit.sock");
    wait_until(Duration::from_secs(5), "the socket in the new /tmp", || {
        socket.exists()
    });
    assert!(!inside.join("run").exists(), "no /run was made");
    let tmp = fs::metadata(inside.join("tmp")).expect("/tmp");
    assert!(tmp.is_dir());
    assert_eq!(
        tmp.mode() & 0o7777,
        0o1777,
        "/tmp is made as every image has it"
    );
    assert_socket_0600(&socket);
    let socket = socket.to_str().expect("UTF-8").to_string();
    client(&["drain", "--socket", &socket]).assert_code(0);
    assert_eq!(status(&socket)["drain"]["stage"], "awaiting_signal");

    common::send_signal(pid, libc::SIGTERM);
    // `graceinit sleep` ends with 128 + SIGTERM.
    graceinit.wait(EXIT_TIMEOUT).assert_code(143);
}

#[test]
fn not_pid1_the_socket_is_off_unless_configured() {
    let dir = TempDir::new("control-off");
    let app = app(&dir);
    let graceinit = Launch::direct(["-vv", "--", "sh", "-c", &app]).start();
    wait_for_line(dir.join("app"), "up");
    let finished = stop(graceinit, &dir);
    assert_eq!(
        finished.stderr_lines_with("serving the control socket"),
        0,
        "{}",
        finished.stderr
    );

    let socket = dir.file("g.sock");
    let graceinit = Launch::direct(["-vv", "--socket", &socket, "--", "sh", "-c", &app]).start();
    wait_until(Duration::from_secs(5), "the app's second start", || {
        lines(dir.join("app")).len() == 3
    });
    let finished = stop(graceinit, &dir);
    assert_eq!(
        finished.stderr_lines_with(&format!("serving the control socket at {socket}")),
        1,
        "{}",
        finished.stderr
    );
    assert!(!Path::new(&socket).exists(), "removed at exit");
}

#[test]
fn the_socket_is_the_flag_then_the_variable_then_the_config() {
    let dir = TempDir::new("control-precedence");
    let (file, variable, flag) = (
        dir.file("file.sock"),
        dir.file("env.sock"),
        dir.file("flag.sock"),
    );
    let config = dir.write("g.toml", &format!("[control]\nsocket = \"{file}\"\n"));
    let app = app(&dir);
    let run = |args: &[&str], env: bool, expected: &str| {
        let mut launch = Launch::direct(args);
        if env {
            launch = launch.env("GRACEINIT_SOCKET", &variable);
        }
        let before = lines(dir.join("app")).len();
        let graceinit = launch.start();
        wait_until(Duration::from_secs(5), "the app", || {
            lines(dir.join("app")).len() == before + 1
        });
        for socket in [&file, &variable, &flag] {
            assert_eq!(
                Path::new(socket).exists(),
                socket == expected,
                "{socket} (expected {expected})"
            );
        }
        graceinit
    };
    let graceinit = run(
        &[
            "--config", &config, "--socket", &flag, "--", "sh", "-c", &app,
        ],
        true,
        &flag,
    );
    stop(graceinit, &dir);
    let graceinit = run(
        &["--config", &config, "--", "sh", "-c", &app],
        true,
        &variable,
    );
    // The client reads the variable too.
    let status = Launch::direct(["status"])
        .env("GRACEINIT_SOCKET", &variable)
        .run(CLIENT_TIMEOUT);
    status.assert_code(0);
    stop(graceinit, &dir);
    let graceinit = run(&["--config", &config, "--", "sh", "-c", &app], false, &file);
    // ...and the config named by GRACEINIT_CONFIG, as the supervisor's environment has it.
    let status = Launch::direct(["status"])
        .env("GRACEINIT_CONFIG", &config)
        .run(CLIENT_TIMEOUT);
    status.assert_code(0);
    assert!(status.stdout.starts_with("graceinit "), "{}", status.stdout);
    stop(graceinit, &dir);
}

#[test]
fn a_bad_socket_path_is_a_located_config_error() {
    let dir = TempDir::new("control-bad-path");
    let config = dir.write("g.toml", "[control]\nsocket = \"\"\n");
    let finished = Launch::direct(["--config", &config, "--", "true"]).run(EXIT_TIMEOUT);
    finished.assert_code(2);
    assert!(
        finished.stderr.starts_with(&format!(
            "graceinit: {config}:2:10: the control socket's path is empty"
        )),
        "{}",
        finished.stderr
    );
    let long = format!("/tmp/{}.sock", "x".repeat(120));
    let finished = Launch::direct(["--socket", &long, "--", "true"]).run(EXIT_TIMEOUT);
    finished.assert_code(2);
    assert_eq!(
        finished.stderr,
        format!(
            "graceinit: <command line>: the control socket's path `{long}` is 130 bytes long; a unix socket's path is at most 107\n"
        )
    );
}

// ---------------------------------------------------------------------------------------
// Who may connect; stale and live sockets

#[test]
fn the_socket_is_0600_and_other_uids_are_refused() {
    require_tool("setpriv", "util-linux");
    let dir = TempDir::new("control-peer");
    // The directory must let uid 65534 through, so that only the socket's mode and
    // then the peer check can stop it.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = dir.file("g.sock");
    let graceinit = supervise(&dir, &counted_hook(&dir, "0"), &socket);
    assert_socket_0600(Path::new(&socket));
    let as_nobody = || {
        let mut args = vec!["--reuid", "65534", "--regid", "65534", "--clear-groups"];
        args.extend(RUNNER);
        args.extend([GRACEINIT, "drain", "--socket", &socket]);
        Launch::program("setpriv", args).run(CLIENT_TIMEOUT)
    };

    let refused = as_nobody();
    refused.assert_code(1);
    assert_eq!(
        refused.stderr,
        format!(
            "graceinit drain: cannot connect to {socket}: permission denied (the socket is mode 0600: run as graceinit's user or root)\n"
        )
    );

    // Past the mode (opened up by root), the server itself refuses the uid.
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).expect("chmod");
    let refused = as_nobody();
    refused.assert_code(1);
    assert_eq!(
        refused.stderr,
        "graceinit drain: refused: uid 65534 may not use this control socket (only root)\n"
    );
    wait_until(Duration::from_secs(5), "the refusal in the log", || {
        graceinit
            .stderr_so_far()
            .contains("control socket: refused a client with uid 65534 (pid ")
    });
    let json = status(&socket);
    assert_eq!(json["drain"], Value::Null, "no drain was started");
    assert_eq!(lines(dir.join("hooks")), Vec::<String>::new());
    stop(graceinit, &dir);
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new("control-stale");
    let socket = dir.file("g.sock");
    // An earlier run's socket: the file stays, nobody listens.
    drop(UnixListener::bind(&socket).expect("bind"));
    // A mode graceinit never gives: its own socket is 0600.
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o755)).expect("chmod");
    let refused = client(&["status", "--socket", &socket]);
    refused.assert_code(1);
    assert_eq!(
        refused.stderr,
        format!(
            "graceinit status: no graceinit supervisor answers at {socket}: connection refused (a socket file left by a graceinit that is gone)\n"
        )
    );

    let graceinit = supervise(&dir, "", &socket);
    // Replaced: a new socket, with graceinit's mode, that answers.
    assert_socket_0600(Path::new(&socket));
    assert_eq!(status(&socket)["phase"], "running");
    stop(graceinit, &dir);
}

#[test]
fn a_path_a_live_graceinit_serves_is_an_error_before_the_app_starts() {
    let dir = TempDir::new("control-live");
    let socket = dir.file("g.sock");
    let first = supervise(&dir, "", &socket);

    let ran = dir.file("second-ran");
    let second = Launch::direct([
        "--socket",
        &socket,
        "--",
        "sh",
        "-c",
        &format!("touch {ran}"),
    ])
    .run(EXIT_TIMEOUT);
    second.assert_code(1);
    assert_eq!(
        second.stderr_lines_with(&format!(
            "cannot serve the control socket at {socket}: another graceinit is serving it (a connection to it succeeded)"
        )),
        1,
        "{}",
        second.stderr
    );
    assert!(!Path::new(&ran).exists(), "the second app never ran");
    // The first still serves, at the same file.
    assert_eq!(status(&socket)["phase"], "running");

    // Not a socket at all: left alone, an error too.
    let other = dir.write("not-a-socket", "keep me\n");
    let refused = Launch::direct([
        "--socket",
        &other,
        "--",
        "sh",
        "-c",
        &format!("touch {ran}"),
    ])
    .run(EXIT_TIMEOUT);
    refused.assert_code(1);
    assert_eq!(
        refused.stderr_lines_with(&format!(
            "cannot serve the control socket at {other}: it exists and is not a socket; not replacing it"
        )),
        1,
        "{}",
        refused.stderr
    );
    assert_eq!(dir.read("not-a-socket"), "keep me\n");
    assert!(!Path::new(&ran).exists());
    stop(first, &dir);
}

// ---------------------------------------------------------------------------------------
// graceinit drain

#[test]
fn drain_waits_for_the_pre_stop_hooks_then_sigterm_stops_the_app_at_once() {
    let _serial = serial();
    let dir = TempDir::new("control-drain");
    let socket = dir.file("g.sock");
    let graceinit = supervise(&dir, &counted_hook(&dir, "1"), &socket);

    let drain = client(&["drain", "--socket", &socket]);
    drain.assert_code(0);
    assert_eq!(drain.stderr, "", "quiet without -v");
    assert!(
        drain.elapsed >= Duration::from_millis(950),
        "drain returned after the 1s hook, not before: {:?}",
        drain.elapsed
    );
    assert_eq!(lines(dir.join("hooks")), ["run"]);
    assert_eq!(lines(dir.join("app")), ["up"], "no stop signal yet");
    let json = status(&socket);
    assert_eq!(json["drain"]["trigger"], "request");
    assert_eq!(json["drain"]["stage"], "awaiting_signal");
    assert_eq!(json["drain"]["stop_signal_at"], Value::Null);
    assert_eq!(json["ready"], false);

    // The kubelet's SIGTERM after the preStop hook: the stop signal now, no hook again.
    let sigterm_at = Instant::now();
    graceinit.signal(libc::SIGTERM);
    wait_for_line(dir.join("app"), "term");
    let after = sigterm_at.elapsed();
    assert!(
        after < Duration::from_millis(500),
        "the stop signal took {after:?}"
    );
    let finished = graceinit.wait(EXIT_TIMEOUT);
    finished.assert_code(0);
    assert_eq!(lines(dir.join("hooks")), ["run"], "pre_stop ran once");
    assert_eq!(finished.stderr_lines_with("DrainStarted"), 1);
    assert!(
        !Path::new(&socket).exists(),
        "the socket file is removed at exit"
    );
}

#[test]
fn drain_twice_both_succeed_and_the_hooks_run_once() {
    let _serial = serial();
    let dir = TempDir::new("control-twice");
    let socket = dir.file("g.sock");
    let graceinit = supervise(&dir, &counted_hook(&dir, "1"), &socket);

    let first = Launch::direct(["drain", "-v", "--socket", &socket]).start();
    let second = Launch::direct(["drain", "-v", "--socket", &socket]).start();
    let (first, second) = (first.wait(CLIENT_TIMEOUT), second.wait(CLIENT_TIMEOUT));
    for drain in [&first, &second] {
        drain.assert_code(0);
        assert_eq!(drain.stderr, "graceinit drain: 1 pre_stop hook(s) done\n");
    }
    // Once the hooks are done, another drain is answered at once.
    let third = client(&["drain", "--socket", &socket]);
    third.assert_code(0);
    assert!(
        third.elapsed < Duration::from_millis(900),
        "{:?}",
        third.elapsed
    );
    assert_eq!(lines(dir.join("hooks")), ["run"]);
    let finished = stop(graceinit, &dir);
    assert_eq!(lines(dir.join("hooks")), ["run"]);
    assert_eq!(finished.stderr_lines_with("DrainStarted"), 1);
}

#[test]
fn drain_without_a_supervisor_fails_clearly() {
    let dir = TempDir::new("control-none");
    let socket = dir.file("none.sock");
    let drain = client(&["drain", "--socket", &socket]);
    drain.assert_code(1);
    assert_eq!(
        drain.stderr,
        format!("graceinit drain: no graceinit supervisor answers at {socket}: no such socket\n")
    );

    // Nothing given, nothing in the default places (a mount namespace with empty ones).
    require_tool("unshare", "util-linux");
    let mut args = vec![
        "--mount",
        "sh",
        "-c",
        "set -e; mount -t tmpfs r /run; mount -t tmpfs t /tmp; exec \"$@\"",
        "sh",
    ];
    args.extend(RUNNER);
    args.extend([GRACEINIT, "drain"]);
    let drain = Launch::program("unshare", args).run(CLIENT_TIMEOUT);
    drain.assert_code(1);
    assert_eq!(
        drain.stderr,
        "graceinit drain: no graceinit supervisor answers (/run/graceinit.sock: no such socket; /tmp/graceinit.sock: no such socket); graceinit serves its control socket by default only as PID 1: otherwise give the path with --socket, GRACEINIT_SOCKET or [control] socket\n"
    );
}

#[test]
fn drain_fails_with_the_hook_that_failed_with_on_failure_fail() {
    let dir = TempDir::new("control-fail");
    let socket = dir.file("g.sock");
    let config = "[[hooks.pre_stop]]\nexec = [\"sh\", \"-c\", \"exit 3\"]\non_failure = \"fail\"\n";
    let graceinit = supervise(&dir, config, &socket);
    let drain = client(&["drain", "--socket", &socket]);
    drain.assert_code(1);
    assert_eq!(
        drain.stderr,
        "graceinit drain: pre_stop#1: \"sh\" ended with exit code 3\n"
    );
    stop(graceinit, &dir);
}

#[test]
fn drain_timeout_gives_up_waiting_and_the_drain_goes_on() {
    let _serial = serial();
    let dir = TempDir::new("control-timeout");
    let socket = dir.file("g.sock");
    let hooks = dir.file("hooks");
    let config = format!(
        "[[hooks.pre_stop]]\nexec = [\"sh\", \"-c\", \"echo start >> {hooks}; sleep 5; echo done >> {hooks}\"]\n"
    );
    let graceinit = supervise(&dir, &config, &socket);

    let drain = client(&["drain", "--timeout", "500ms", "--socket", &socket]);
    drain.assert_code(1);
    assert_eq!(
        drain.stderr,
        "graceinit drain: no answer within 500ms: the pre_stop hooks are still running (the drain goes on)\n"
    );
    assert!(
        drain.elapsed >= Duration::from_millis(450) && drain.elapsed < Duration::from_secs(2),
        "gave up after {:?}",
        drain.elapsed
    );
    assert_eq!(status(&socket)["drain"]["stage"], "pre_stop");
    wait_until(Duration::from_secs(10), "the 5s hook to finish", || {
        lines(&hooks) == ["start", "done"]
    });
    wait_until(Duration::from_secs(5), "the drain to await SIGTERM", || {
        status(&socket)["drain"]["stage"] == "awaiting_signal"
    });
    stop(graceinit, &dir);
    assert_eq!(lines(&hooks), ["start", "done"]);
}

#[test]
fn sigterm_alone_runs_pre_stop_once_then_stops_the_app() {
    let dir = TempDir::new("control-sigterm");
    let socket = dir.file("g.sock");
    let graceinit = supervise(&dir, &counted_hook(&dir, "0.2"), &socket);
    let finished = stop(graceinit, &dir);
    assert_eq!(lines(dir.join("hooks")), ["run"]);
    assert_eq!(lines(dir.join("app")), ["up", "term"]);
    assert_eq!(finished.stderr_lines_with("DrainStarted"), 1);
}

#[test]
fn drain_and_status_usage_errors_exit_2() {
    let drain = client(&["drain", "--timeout", "soon"]);
    drain.assert_code(2);
    assert!(drain.stderr.contains("'--timeout <D>'"), "{}", drain.stderr);
    let status = client(&["status", "--yaml"]);
    status.assert_code(2);
    assert!(status.stderr.contains("--yaml"), "{}", status.stderr);
    let dir = TempDir::new("control-usage");
    let config = dir.write("g.toml", "[control]\nsockets = \"/x\"\n");
    let drain = Launch::direct(["drain"])
        .env("GRACEINIT_CONFIG", &config)
        .run(CLIENT_TIMEOUT);
    drain.assert_code(2);
    assert!(
        drain
            .stderr
            .starts_with(&format!("graceinit drain: {config}:2:1: ")),
        "{}",
        drain.stderr
    );
}

// ---------------------------------------------------------------------------------------
// graceinit status

#[test]
fn status_shows_the_supervisor_for_people_and_as_json_without_secrets() {
    let dir = TempDir::new("control-status");
    let socket = dir.file("g.sock");
    let config = r#"
[[hooks.pre_stop]]
http = { url = "http://user:s3cret-pw@127.0.0.1:9/hook?token=s3cret-query", headers = { Authorization = "Bearer s3cret-header" } }
timeout = "2s"

[[hooks.pre_stop]]
exec = ["sh", "-c", "echo \"$PASSWORD\" > /dev/null; exit 4"]
env = { PASSWORD = "s3cret-env" }
"#;
    let graceinit = supervise(&dir, config, &socket);
    let app_pid = graceinit.wait_for_app("sh");

    let json = status(&socket);
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["phase"], "running");
    assert_eq!(json["ready"], true);
    assert_eq!(json["app"]["pid"], app_pid);
    assert_eq!(json["app"]["argv0"], "\"sh\"");
    assert_eq!(json["app"]["restarts"], 0);
    assert_eq!(json["hooks"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["drain"], Value::Null);
    let text = client(&["status", "--socket", &socket]);
    text.assert_code(0);
    let shown: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(shown[0], format!("graceinit {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(shown[1], "phase:   running");
    assert_eq!(shown[2], "ready:   yes");
    assert!(
        shown[3].starts_with(&format!("app:     \"sh\", pid {app_pid}, started ")),
        "{}",
        shown[3]
    );
    assert!(shown.contains(&"drain:   none"), "{}", text.stdout);

    // Both hooks fail (nothing listens on port 9; exit 4): their messages are shown.
    let drain = client(&["drain", "--socket", &socket]);
    drain.assert_code(0);
    let json = status(&socket);
    assert_eq!(json["phase"], "draining");
    assert_eq!(json["ready"], false);
    assert_eq!(json["not_ready"], "draining: the drain has started");
    assert_eq!(json["drain"]["trigger"], "request");
    assert_eq!(json["drain"]["stage"], "awaiting_signal");
    assert!(
        json["drain"]["stop_by_in_seconds"]
            .as_f64()
            .is_some_and(|s| s > 10.0)
    );
    assert_eq!(json["hooks"][0]["runs"], 1);
    assert_eq!(json["hooks"][0]["last"]["ok"], false);
    assert_eq!(
        json["hooks"][1]["last"]["message"],
        "\"sh\" ended with exit code 4"
    );
    let text = client(&["status", "--socket", &socket]);
    text.assert_code(0);
    let shown: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(shown[1], "phase:   draining");
    assert_eq!(shown[2], "ready:   no (draining: the drain has started)");
    assert!(
        text.stdout.contains(
            "\n  pre_stop#2     exec   runs 1, failures 1, last: \"sh\" ended with exit code 4 ("
        ),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("\ndrain:   triggered by request at "),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("FailedPreStopHook"), "{}", text.stdout);
    for output in [&json.to_string(), &text.stdout] {
        assert!(!output.contains("s3cret"), "a secret is shown:\n{output}");
    }
    let finished = stop(graceinit, &dir);
    assert!(!finished.stderr.contains("s3cret"), "{}", finished.stderr);
}
