//! The kubelet's way of stopping a container, played with podman: a preStop hook first,
//! then SIGTERM, and SIGKILL once the grace period is over.
//!
//! The image is FROM scratch: the static musl graceinit as ENTRYPOINT (`/graceinit --`)
//! and a static C app (tests/kubelet/app.c, `musl-gcc -static`) that, on SIGTERM, appends
//! `term` to a file in a directory bind-mounted from the host and exits 7. The config is
//! bind-mounted too and named by `GRACEINIT_CONFIG`, as a ConfigMap is in a pod; its one
//! pre_stop hook is an exec of the same app, which appends `pre_stop` to that file. The
//! file is the record: each line counted, in order.
//!
//! The two preStop hooks Kubernetes offers, each followed by `podman stop -t 10` (SIGTERM
//! to PID 1, SIGKILL after 10 s, which stands in for terminationGracePeriodSeconds):
//! - `exec: ["/graceinit", "drain"]`, run with `podman exec`;
//! - `httpGet /prestop` on graceinit's endpoint, called from the host (`--network host`:
//!   the endpoint listens on the host's loopback, as the kubelet reaches a pod's port).
//!
//! The image is built once per run of this file and removed when the test process exits.
//! Needs rootful podman configured by `ci/podman-setup.sh` and musl-gcc; the tests fail,
//! never skip, without them.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::podman::{
    MANIFEST_DIR, build_static_graceinit, check_podman_works, panic_text, podman, run, run_ok,
};
use common::{TempDir, lines, require_tool, serial, wait_until};

/// Any single podman command (build, run, exec, stop, inspect) gets this long.
const PODMAN_TIMEOUT: Duration = Duration::from_secs(60);
/// The kubelet's terminationGracePeriodSeconds, as `podman stop -t`.
const STOP_TIMEOUT_ARG: &str = "10";
/// The app exits 7 on SIGTERM: the container's exit code must be that.
const APP_EXIT_CODE: i32 = 7;
/// graceinit's own deadlines: the app gets its stop signal at the latest at
/// grace_period - stop_timeout = 8 s after the preStop hook started the drain. A `podman
/// stop` that returns well before that shows that its SIGTERM, not graceinit's stop_by,
/// stopped the app; one that took 10 s would mean podman had to SIGKILL.
const GRACE_PERIOD: &str = "10s";
const STOP_TIMEOUT: &str = "2s";
const STOP_WELL_BEFORE: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------------------------------
// The image, built once

/// The image's name (built at most once; a failure is kept, so every test reports it).
fn image() -> &'static str {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    match IMAGE.get_or_init(|| std::panic::catch_unwind(build_image).map_err(panic_text)) {
        Ok(image) => image,
        Err(message) => panic!("{message}"),
    }
}

/// The image's name, for the exit handler.
static BUILT_IMAGE: Mutex<Option<String>> = Mutex::new(None);

/// Runs when the test process exits (the harness returns from main or calls exit):
/// removes the image, whichever tests ran and however they ended.
extern "C" fn remove_image() {
    let image = BUILT_IMAGE.lock().ok().and_then(|mut image| image.take());
    if let Some(image) = image {
        let _ = std::panic::catch_unwind(|| {
            run(podman(["rmi", "-f", &image]), PODMAN_TIMEOUT);
        });
    }
}

fn build_image() -> String {
    require_tool("podman", "podman");
    require_tool("musl-gcc", "musl-tools");
    check_podman_works(PODMAN_TIMEOUT);
    let graceinit = build_static_graceinit();
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));

    let context = target_tmp.join(format!("kubelet-image-{}", std::process::id()));
    let _ = fs::remove_dir_all(&context);
    fs::create_dir_all(&context).unwrap();
    fs::copy(&graceinit, context.join("graceinit"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", graceinit.display()));
    run_ok(
        Command::new("musl-gcc")
            .args(["-static", "-O2", "-Wall", "-Werror", "-o"])
            .arg(context.join("app"))
            .arg(Path::new(MANIFEST_DIR).join("tests/kubelet/app.c")),
        Duration::from_secs(60),
    );
    fs::write(
        context.join("Containerfile"),
        "FROM scratch\nCOPY graceinit /graceinit\nCOPY app /app\n\
         ENTRYPOINT [\"/graceinit\", \"--\"]\n",
    )
    .unwrap();

    let image = format!("localhost/graceinit-kubelet-{}:test", std::process::id());
    *BUILT_IMAGE.lock().unwrap_or_else(|e| e.into_inner()) = Some(image.clone());
    // SAFETY: registers a plain function to run at exit; nothing else to uphold.
    unsafe { libc::atexit(remove_image) };
    // --layers=false: no cached intermediate images, so removing the tag leaves nothing.
    run_ok(
        podman([
            "build",
            "--pull=never",
            "--layers=false",
            "--quiet",
            "-t",
            &image,
            "-f",
        ])
        .arg(context.join("Containerfile"))
        .arg(&context),
        PODMAN_TIMEOUT,
    );
    let _ = fs::remove_dir_all(&context);
    image
}

// ---------------------------------------------------------------------------------------
// One container

/// A running container of the image, with its bind-mounted directories; `Drop` removes
/// it, passed or failed.
struct Pod {
    name: String,
    /// Bind-mounted at /shared: the app's `ready` and the `events` record.
    shared: TempDir,
    config: TempDir,
    /// graceinit's endpoint on the host's loopback (`--network host`).
    port: u16,
}

impl Pod {
    /// `podman run -d` with graceinit as ENTRYPOINT and `/app serve /shared 7` as CMD;
    /// returns once the app has its SIGTERM handler in place.
    fn start(tag: &str) -> Pod {
        let port = free_port();
        let config = format!(
            r#"[app]
stop_timeout = "{STOP_TIMEOUT}"
grace_period = "{GRACE_PERIOD}"

[http]
listen = "127.0.0.1:{port}"
prestop = true

[[hooks.pre_stop]]
exec = ["/app", "hook", "/shared"]
timeout = "5s"
"#
        );
        Pod::start_with(tag, "host", port, &config)
    }

    /// As `start`, on podman's `network` (`host`: the host's namespace; `none`: one of
    /// the container's own with loopback alone), with `config` as graceinit's.
    fn start_with(tag: &str, network: &str, port: u16, config_text: &str) -> Pod {
        let image = image();
        let shared = TempDir::new(&format!("kubelet-{tag}-shared"));
        let config = TempDir::new(&format!("kubelet-{tag}-config"));
        config.write("graceinit.toml", config_text);
        let name = format!("graceinit-kubelet-{}-{tag}", std::process::id());
        let pod = Pod {
            name,
            shared,
            config,
            port,
        };
        let shared_mount = format!("{}:/shared", pod.shared.path().display());
        let config_mount = format!("{}:/etc/graceinit:ro", pod.config.path().display());
        run_ok(
            podman(["run", "-d", "--pull=never", "--network", network, "--name"])
                .arg(&pod.name)
                .args(["-v", &shared_mount, "-v", &config_mount])
                .args(["-e", "GRACEINIT_CONFIG=/etc/graceinit/graceinit.toml"])
                .arg(image)
                .args(["/app", "serve", "/shared"])
                .arg(APP_EXIT_CODE.to_string()),
            PODMAN_TIMEOUT,
        );
        wait_until(Duration::from_secs(20), "the app in the container", || {
            pod.shared.join("ready").exists()
        });
        pod
    }

    /// The lines of the record, in order.
    fn events(&self) -> Vec<String> {
        lines(self.shared.join("events"))
    }

    fn logs(&self) -> String {
        let out = run_ok(podman(["logs", &self.name]), PODMAN_TIMEOUT);
        format!("{}{}", out.stdout, out.stderr)
    }

    /// `podman stop -t 10`; returns how long it took.
    fn stop(&self) -> Duration {
        let started = Instant::now();
        run_ok(
            podman(["stop", "-t", STOP_TIMEOUT_ARG, &self.name]),
            PODMAN_TIMEOUT,
        );
        started.elapsed()
    }

    /// The exit code `podman wait` reports (at once for a stopped container).
    fn exit_code(&self) -> i32 {
        let out = run_ok(podman(["wait", &self.name]), PODMAN_TIMEOUT);
        let code = out.stdout.trim();
        code.parse()
            .unwrap_or_else(|_| panic!("podman wait printed {code:?}, not an exit code"))
    }

    /// What `podman stop` must have led to: the hook ran once, then the app got one
    /// SIGTERM and exited 7, which is the container's exit code, before podman's SIGKILL.
    fn assert_stopped_cleanly(&self, took: Duration) {
        let logs = self.logs();
        assert_eq!(
            self.exit_code(),
            APP_EXIT_CODE,
            "the container's exit code is the app's; logs:\n{logs}"
        );
        assert_eq!(
            self.events(),
            ["pre_stop", "term"],
            "the pre_stop hook ran exactly once, then the app got its stop signal once; \
             logs:\n{logs}"
        );
        assert!(
            took < STOP_WELL_BEFORE,
            "podman stop -t 10 took {took:?}: its SIGTERM should have stopped the app at \
             once (graceinit's own stop_by is 8 s after the drain); logs:\n{logs}"
        );
        assert_eq!(
            logs.lines().filter(|l| l.contains("DrainStarted")).count(),
            1,
            "one drain for the preStop hook and the SIGTERM together; logs:\n{logs}"
        );
        assert_eq!(
            logs.lines().filter(|l| l.contains("DrainFinished")).count(),
            1,
            "the drain finished; logs:\n{logs}"
        );
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            run(podman(["rm", "-f", "-t", "0", &self.name]), PODMAN_TIMEOUT)
        });
    }
}

/// A loopback port nothing listens on: bound, then released.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// `GET path` on 127.0.0.1:port with `Connection: close`, as the kubelet's httpGet does:
/// (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connecting to graceinit's endpoint on port {port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.30\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("reading the answer to GET {path}: {e}"));
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

// ---------------------------------------------------------------------------------------
// The cases

/// preStop `exec: ["/graceinit", "drain"]`: `podman exec` runs graceinit's client in the
/// container, which finds the control socket graceinit (PID 1 of a scratch image) made
/// for itself, and returns 0 once the pre_stop hook has run, the app still running. The
/// SIGTERM of `podman stop` then only stops the app: the hook does not run again, the app
/// exits 7 and so does the container, long before podman's SIGKILL.
#[test]
fn prestop_exec_graceinit_drain_then_podman_stop() {
    let _serial = serial();
    let pod = Pod::start("exec");

    let drain = run(
        podman(["exec", &pod.name, "/graceinit", "drain"]),
        PODMAN_TIMEOUT,
    );
    assert_eq!(
        drain.status.code(),
        Some(0),
        "`graceinit drain` in the container: {}\nstdout:\n{}\nstderr:\n{}\nlogs:\n{}",
        drain.status,
        drain.stdout,
        drain.stderr,
        pod.logs()
    );
    assert_eq!(
        pod.events(),
        ["pre_stop"],
        "`graceinit drain` returned after the pre_stop hook, with the app still running"
    );

    let took = pod.stop();
    pod.assert_stopped_cleanly(took);
}

/// preStop `httpGet: {path: /prestop, port: ...}`: the GET from the host answers 200 once
/// the pre_stop hook has run (readiness is 503 from then on), the app still running; then
/// the same `podman stop` as above, with the same outcome.
#[test]
fn prestop_http_get_then_podman_stop() {
    let _serial = serial();
    let pod = Pod::start("http");
    wait_until(
        Duration::from_secs(10),
        "graceinit's /readyz to answer 200",
        || {
            TcpStream::connect(("127.0.0.1", pod.port)).is_ok()
                && http_get(pod.port, "/readyz").0 == 200
        },
    );

    let (status, body) = http_get(pod.port, "/prestop");
    assert_eq!(
        (status, body.as_str()),
        (200, "1 pre_stop hook(s) done\n"),
        "GET /prestop; logs:\n{}",
        pod.logs()
    );
    assert_eq!(
        pod.events(),
        ["pre_stop"],
        "/prestop answered after the pre_stop hook, with the app still running"
    );
    assert_eq!(
        http_get(pod.port, "/readyz").0,
        503,
        "not ready once the drain has started"
    );

    let took = pod.stop();
    pod.assert_stopped_cleanly(took);
}

/// wait_quiet in an image with nothing but graceinit and the app, in a network namespace
/// of the container's own: the sockets are sampled (netlink and /proc work there), the
/// wait is over after `quiet` with nothing arriving, and the drain's report says so.
#[test]
fn wait_quiet_works_in_a_scratch_image() {
    let _serial = serial();
    let pod = Pod::start_with(
        "quiet",
        "none",
        0,
        r#"[app]
stop_timeout = "2s"
grace_period = "8s"

[log]
level = "info"

[[hooks.pre_stop]]
exec = ["/app", "hook", "/shared"]
timeout = "5s"

[[hooks.pre_stop]]
wait_quiet = { quiet = "1s", max = "5s" }
"#,
    );
    let took = pod.stop();
    let logs = pod.logs();
    assert_eq!(pod.exit_code(), APP_EXIT_CODE, "logs:\n{logs}");
    assert_eq!(pod.events(), ["pre_stop", "term"], "logs:\n{logs}");
    assert!(took < STOP_WELL_BEFORE, "{took:?}; logs:\n{logs}");
    assert!(
        logs.contains("wait_quiet over: quiet arrivals=0"),
        "logs:\n{logs}"
    );
    assert!(!logs.contains("cannot"), "logs:\n{logs}");
    assert!(
        logs.contains("connections: 0 open at the trigger, 0 arrived after it"),
        "logs:\n{logs}"
    );
}
