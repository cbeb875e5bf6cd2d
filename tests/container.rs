//! graceinit as PID 1 of a FROM-scratch podman container.
//!
//! The path these tests take (no image registry is reachable where they run): the static
//! musl binary is built on the host (`cargo build --release --target
//! x86_64-unknown-linux-musl --target-dir target/static`), the project's Containerfile is
//! built with `--target prebuilt` around it, and tests/container/Containerfile copies
//! `/graceinit` out of that image (`COPY --from=`, as a user would) next to a static C test
//! app (tests/container/testapp.c, built with `musl-gcc -static`). The Containerfile's Rust
//! build stage is never reached here.
//!
//! Needs rootful podman configured by `ci/podman-setup.sh`; the tests fail, never skip,
//! when podman or musl-gcc is missing or cannot run a container.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::podman::{
    MANIFEST_DIR, build_static_graceinit, check_podman_works, panic_text, podman, run, run_ok,
};
use common::{children, ns_pid};

/// podman on two busy cores is slow and the tests time `podman stop`: one at a time.
static LOCK: Mutex<()> = Mutex::new(());

fn serialize() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the Containerfile's prebuilt stage looks for the binary by default (its
/// `GRACEINIT_BINARY`), relative to the build context.
const PREBUILT_BINARY_PATH: &str = "target/x86_64-unknown-linux-musl/release/graceinit";

/// Any single podman command (build, run, stop, inspect) gets this long.
const PODMAN_TIMEOUT: Duration = Duration::from_secs(90);
/// `podman stop -t 10` must return well before its 10 s SIGKILL fallback.
const STOP_TIMEOUT_ARG: &str = "10";
const STOP_WELL_BEFORE: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------------------------------
// Running commands with a bound on every wait

fn scratch_dir() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("container-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

// ---------------------------------------------------------------------------------------
// Static binaries, built once per test binary

struct Artifacts {
    graceinit: PathBuf,
    testapp: PathBuf,
}

/// Built at most once; a failure is kept so that every test reports it without rebuilding.
fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Result<Artifacts, String>> = OnceLock::new();
    match ARTIFACTS.get_or_init(|| std::panic::catch_unwind(build_artifacts).map_err(panic_text)) {
        Ok(artifacts) => artifacts,
        Err(message) => panic!("{message}"),
    }
}

fn build_artifacts() -> Artifacts {
    check_podman_works(PODMAN_TIMEOUT);
    let graceinit = build_static_graceinit();
    assert_static(&graceinit);

    let testapp = graceinit.with_file_name("container-testapp");
    run_ok(
        Command::new("musl-gcc")
            .args(["-static", "-O2", "-Wall", "-Werror", "-o"])
            .arg(&testapp)
            .arg(Path::new(MANIFEST_DIR).join("tests/container/testapp.c")),
        Duration::from_secs(120),
    );
    assert_static(&testapp);
    Artifacts { graceinit, testapp }
}

/// A FROM-scratch image has no dynamic loader: the ELF must have no PT_INTERP program header
/// (a static-pie still has PT_DYNAMIC, for its own relocations, so that one is allowed).
fn assert_static(path: &Path) {
    const PT_INTERP: u32 = 3;
    let elf = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        elf.len() > 64 && &elf[..4] == b"\x7fELF" && elf[4] == 2 && elf[5] == 1,
        "{} is not a 64-bit little-endian ELF file",
        path.display()
    );
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    assert!(phnum > 0, "{} has no program headers", path.display());
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
        assert_ne!(
            p_type,
            PT_INTERP,
            "{} is dynamically linked (it names a program interpreter), so it cannot run \
             FROM scratch",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Images and containers, removed when the test ends, passed or failed

/// Everything one test created in podman; `Drop` removes it (containers first, then images,
/// newest first) even when the test panics.
struct PodmanEnv {
    prefix: String,
    containers: Vec<String>,
    images: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl PodmanEnv {
    fn new(test: &str) -> PodmanEnv {
        PodmanEnv {
            prefix: format!("graceinit-test-{}-{test}", std::process::id()),
            containers: Vec::new(),
            images: Vec::new(),
            dirs: Vec::new(),
        }
    }

    fn context_dir(&mut self, name: &str) -> PathBuf {
        let dir = scratch_dir().join(format!("{}-{name}", self.prefix));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        self.dirs.push(dir.clone());
        dir
    }

    /// `podman build` without cached intermediate images, so that removing the tagged image
    /// leaves nothing behind; `--pull=never`: there is no registry.
    fn build(
        &mut self,
        name: &str,
        containerfile: &Path,
        context: &Path,
        extra: &[&str],
    ) -> String {
        let image = format!("localhost/{}-{name}:test", self.prefix);
        self.images.push(image.clone());
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
            .arg(containerfile)
            .args(extra)
            .arg(context),
            PODMAN_TIMEOUT,
        );
        image
    }

    /// The project's Containerfile, `--target prebuilt`, from a context laid out like the
    /// repository after `cargo build --release --target x86_64-unknown-linux-musl`, so that
    /// the stage's default `GRACEINIT_BINARY` is what gets exercised.
    fn build_graceinit_image(&mut self) -> String {
        let context = self.context_dir("prebuilt-context");
        let binary = context.join(PREBUILT_BINARY_PATH);
        fs::create_dir_all(binary.parent().unwrap()).unwrap();
        fs::copy(&artifacts().graceinit, &binary).unwrap();
        let containerfile = Path::new(MANIFEST_DIR).join("Containerfile");
        self.build(
            "graceinit",
            &containerfile,
            &context,
            &["--target", "prebuilt"],
        )
    }

    /// graceinit (from [`PodmanEnv::build_graceinit_image`]) as ENTRYPOINT, plus /testapp.
    fn build_test_image(&mut self) -> String {
        let graceinit_image = self.build_graceinit_image();
        let context = self.context_dir("app-context");
        fs::copy(&artifacts().testapp, context.join("testapp")).unwrap();
        let containerfile = Path::new(MANIFEST_DIR).join("tests/container/Containerfile");
        let build_arg = format!("GRACEINIT_IMAGE={graceinit_image}");
        self.build(
            "app",
            &containerfile,
            &context,
            &["--build-arg", &build_arg],
        )
    }

    fn container_name(&mut self, name: &str) -> String {
        let container = format!("{}-{name}", self.prefix);
        self.containers.push(container.clone());
        container
    }

    /// `podman run -d`; `run_args` go before the image, `command` after it (the CMD).
    fn run_detached(
        &mut self,
        name: &str,
        run_args: &[&str],
        image: &str,
        command: &[&str],
    ) -> String {
        let container = self.container_name(name);
        run_ok(
            podman(["run", "-d", "--pull=never", "--name", &container])
                .args(run_args)
                .arg(image)
                .args(command),
            PODMAN_TIMEOUT,
        );
        container
    }
}

impl Drop for PodmanEnv {
    fn drop(&mut self) {
        let bound = Duration::from_secs(60);
        for container in self.containers.iter().rev() {
            let _ =
                std::panic::catch_unwind(|| run(podman(["rm", "-f", "-t", "0", container]), bound));
        }
        for image in self.images.iter().rev() {
            let _ = std::panic::catch_unwind(|| run(podman(["rmi", "-f", image]), bound));
        }
        for dir in &self.dirs {
            let _ = fs::remove_dir_all(dir);
        }
        // Gone once empty, i.e. after the last test of this process.
        let _ = fs::remove_dir(scratch_dir());
    }
}

/// stdout and stderr of the container (graceinit logs to stderr, the app to stdout).
fn logs(container: &str) -> String {
    let out = run_ok(podman(["logs", container]), PODMAN_TIMEOUT);
    format!("{}{}", out.stdout, out.stderr)
}

/// Waits for the app's "ready ..." line (printed once its signal handling is set up) and
/// returns it.
fn wait_ready(container: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = logs(container);
        if let Some(line) = logs.lines().find(|line| line.starts_with("ready ")) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{container}: the app did not report ready within 30 s; logs:\n{logs}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// The fields of the app's "ready pid=P ppid=Q sigterm=S blocked=B" line, by name.
fn ready_field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in the app's line {line:?}"))
}

/// `podman stop -t <timeout>`; returns how long it took.
fn stop(container: &str, timeout: &str) -> Duration {
    let started = Instant::now();
    run_ok(podman(["stop", "-t", timeout, container]), PODMAN_TIMEOUT);
    started.elapsed()
}

fn inspect(container: &str, format: &str) -> String {
    let out = run_ok(
        podman(["inspect", "--format", format, container]),
        PODMAN_TIMEOUT,
    );
    out.stdout.trim().to_string()
}

fn exit_code(container: &str) -> i32 {
    let code = inspect(container, "{{.State.ExitCode}}");
    code.parse()
        .unwrap_or_else(|_| panic!("{container}: ExitCode {code:?} is not a number"))
}

// ---------------------------------------------------------------------------------------
// The cases

/// `podman stop` sends SIGTERM to PID 1 (graceinit), which forwards it to the app; the app
/// exits 42 on its own handler and that is the container's exit code, long before podman's
/// SIGKILL fallback.
#[test]
fn podman_stop_reaches_the_app_and_its_exit_code_comes_back() {
    let _serial = serialize();
    let mut env = PodmanEnv::new("stop42");
    let image = env.build_test_image();
    let container = env.run_detached("c", &[], &image, &["/testapp", "trap-term", "42"]);
    let ready = wait_ready(&container);
    assert_eq!(
        ready_field(&ready, "ppid"),
        "1",
        "the app's parent is PID 1: {ready}"
    );

    let took = stop(&container, STOP_TIMEOUT_ARG);
    assert_eq!(exit_code(&container), 42, "logs:\n{}", logs(&container));
    assert!(
        took < STOP_WELL_BEFORE,
        "podman stop -t 10 took {took:?}: SIGTERM did not end the app, podman had to SIGKILL"
    );
    let logs = logs(&container);
    assert_eq!(
        logs.lines()
            .filter(|line| *line == "caught SIGTERM")
            .count(),
        1,
        "the app caught exactly one SIGTERM; logs:\n{logs}"
    );
}

/// An app that exits by itself hands its exit code to `podman run`.
#[test]
fn the_apps_own_exit_code_is_the_containers() {
    let _serial = serialize();
    let mut env = PodmanEnv::new("exit7");
    let image = env.build_test_image();
    let container = env.container_name("c");
    let out = run(
        podman(["run", "--rm", "--pull=never", "--name", &container, &image])
            .args(["/testapp", "exit", "7"]),
        PODMAN_TIMEOUT,
    );
    assert_eq!(
        out.code(),
        Some(7),
        "podman run: {}\nstderr:\n{}",
        out.status,
        out.stderr
    );
}

/// The point of an init: an app with no SIGTERM handler would ignore SIGTERM as PID 1 (the
/// kernel drops default-action signals for a namespace's init), so `podman stop` needs its
/// SIGKILL fallback and the code is 137. Under graceinit the same app is an ordinary
/// process, dies of the forwarded SIGTERM at once, and the container exits 143 (128 + 15,
/// what tini reports too).
#[test]
fn an_app_without_a_sigterm_handler_dies_of_sigterm_under_graceinit() {
    let _serial = serialize();
    let mut env = PodmanEnv::new("noterm");
    let image = env.build_test_image();

    let container = env.run_detached("graceinit", &[], &image, &["/testapp", "default-term"]);
    let ready = wait_ready(&container);
    assert_eq!(
        (
            ready_field(&ready, "ppid"),
            ready_field(&ready, "sigterm"),
            ready_field(&ready, "blocked")
        ),
        ("1", "default", "no"),
        "graceinit starts the app as its child with SIGTERM neither ignored nor blocked: {ready}"
    );
    let took = stop(&container, STOP_TIMEOUT_ARG);
    assert_eq!(exit_code(&container), 143, "logs:\n{}", logs(&container));
    assert!(
        took < STOP_WELL_BEFORE,
        "podman stop -t 10 took {took:?}: the forwarded SIGTERM did not kill the app"
    );

    // The control: the same app as PID 1 itself ignores SIGTERM and is SIGKILLed.
    let alone = env.run_detached(
        "alone",
        &["--entrypoint", "/testapp"],
        &image,
        &["default-term"],
    );
    let ready = wait_ready(&alone);
    assert_eq!(
        ready_field(&ready, "pid"),
        "1",
        "without graceinit the app is PID 1: {ready}"
    );
    let took = stop(&alone, "2");
    assert_eq!(
        exit_code(&alone),
        137,
        "the app as PID 1 ignored SIGTERM and was SIGKILLed"
    );
    assert!(
        took >= Duration::from_secs(2),
        "podman waited its 2 s for SIGTERM: {took:?}"
    );
}

/// graceinit is the container's PID 1 and the app is its only child, seen from the host:
/// the container's init process is /graceinit, with PID 1 in its namespace.
#[test]
fn graceinit_is_pid_1_and_the_app_its_child() {
    let _serial = serialize();
    let mut env = PodmanEnv::new("pid1");
    let image = env.build_test_image();
    let container = env.run_detached("c", &[], &image, &["/testapp", "trap-term", "0"]);
    let ready = wait_ready(&container);
    let app_pid = ready_field(&ready, "pid").to_string();
    assert_eq!(ready_field(&ready, "ppid"), "1", "{ready}");
    assert_ne!(app_pid, "1", "{ready}");

    let host_pid = inspect(&container, "{{.State.Pid}}");
    let proc_dir = Path::new("/proc").join(&host_pid);
    let cmdline = fs::read(proc_dir.join("cmdline")).unwrap();
    assert_eq!(
        cmdline, b"/graceinit\0--\0/testapp\0trap-term\x000\0",
        "the container's init process is graceinit, with the image's ENTRYPOINT and CMD"
    );
    assert_eq!(
        ns_pid(host_pid.parse().unwrap()),
        1,
        "graceinit's PID inside the container"
    );

    // Its children, over all its threads: exactly one, the app, which reported its own PID.
    let children = children(host_pid.parse().unwrap());
    assert_eq!(
        children.len(),
        1,
        "graceinit's children (host PIDs): {children:?}"
    );
    assert_eq!(
        ns_pid(children[0]).to_string(),
        app_pid,
        "the child is the app"
    );

    stop(&container, STOP_TIMEOUT_ARG);
    assert_eq!(exit_code(&container), 0, "logs:\n{}", logs(&container));
}

/// The project's Containerfile as a user sees it: `--target prebuilt` builds from a local
/// context with no registry, the image is one layer holding /graceinit with
/// `ENTRYPOINT ["/graceinit", "--"]`, so the CMD is the supervised command.
#[test]
fn the_containerfile_prebuilt_stage_makes_a_scratch_image_with_graceinit_as_entrypoint() {
    let _serial = serialize();
    let mut env = PodmanEnv::new("containerfile");
    let image = env.build_graceinit_image();
    let config = run_ok(
        podman([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{len .RootFS.Layers}}",
            &image,
        ]),
        PODMAN_TIMEOUT,
    );
    assert_eq!(config.stdout.trim(), r#"["/graceinit","--"] null 1"#);

    // CMD runs under graceinit: the image's only program, as app, exits 0...
    let container = env.container_name("sleep");
    let out = run(
        podman(["run", "--rm", "--pull=never", "--name", &container, &image]).args([
            "/graceinit",
            "sleep",
            "10ms",
        ]),
        PODMAN_TIMEOUT,
    );
    assert_eq!(out.code(), Some(0), "stderr:\n{}", out.stderr);
    // ...and a command the scratch image does not have is graceinit's 127.
    let container = env.container_name("missing");
    let out = run(
        podman([
            "run",
            "--rm",
            "--pull=never",
            "--name",
            &container,
            &image,
            "/bin/sh",
        ]),
        PODMAN_TIMEOUT,
    );
    assert_eq!(out.code(), Some(127), "stderr:\n{}", out.stderr);
    // podman says 127 too when it cannot start the entrypoint itself: make sure this one
    // came from graceinit, which names the command, not from the OCI runtime.
    assert!(
        out.stderr.contains("/bin/sh") && !out.stderr.contains("OCI runtime"),
        "graceinit, running, reported the missing command; stderr:\n{}",
        out.stderr
    );
}
