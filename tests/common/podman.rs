//! Commands with a bound on every wait, podman, and the static release binary, for the
//! tests that build FROM-scratch images (tests/container.rs, tests/kubelet.rs).

use std::borrow::BorrowMut;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
/// A cold static release build on 2 cores.
pub const STATIC_BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `cmd` to completion or kills it at `timeout` and panics. Output goes to files, not
/// pipes: `podman run -d` leaves conmon behind, which must not keep a reader waiting.
pub fn run(mut cmd: impl BorrowMut<Command>, timeout: Duration) -> Output {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let cmd = cmd.borrow_mut();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("commands");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let out_path = dir.join(format!("{}-{seq}.stdout", std::process::id()));
    let err_path = dir.join(format!("{}-{seq}.stderr", std::process::id()));
    let described = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            let program = cmd.get_program().to_string_lossy().into_owned();
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!(
                    "`{program}` is not installed, so the container tests cannot run: \
                     run `bash ci/podman-setup.sh` as root ({e})"
                )
            }
            panic!("cannot start {described}: {e}")
        });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{described} did not finish within {timeout:?}; its stderr:\n{}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    output
}

/// Runs `cmd` and panics, with its output, unless it exits 0.
pub fn run_ok(mut cmd: impl BorrowMut<Command>, timeout: Duration) -> Output {
    let cmd = cmd.borrow_mut();
    let described = format!("{cmd:?}");
    let output = run(&mut *cmd, timeout);
    assert!(
        output.status.success(),
        "{described} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
    output
}

pub fn podman<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("podman");
    cmd.args(args);
    cmd
}

/// Panics, saying how to set podman up, unless it can run containers here.
pub fn check_podman_works(timeout: Duration) {
    let info = run(
        podman(["info", "--format", "{{.Host.OCIRuntime.Name}}"]),
        timeout,
    );
    assert!(
        info.status.success(),
        "podman cannot run here (`podman info` failed: {}); run `bash ci/podman-setup.sh` \
         as root:\n{}",
        info.status,
        info.stderr
    );
}

/// The static release graceinit, built in a target dir of its own beside this build's
/// (`cargo test` holds the lock on this one).
pub fn build_static_graceinit() -> PathBuf {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let static_dir = target_tmp.parent().unwrap_or(target_tmp).join("static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_ok(
        Command::new(cargo)
            .current_dir(MANIFEST_DIR)
            .args([
                "build",
                "--release",
                "--target",
                MUSL_TARGET,
                "--target-dir",
            ])
            .arg(&static_dir),
        STATIC_BUILD_TIMEOUT,
    );
    static_dir.join(MUSL_TARGET).join("release/graceinit")
}

/// The message of a caught panic (a build that failed once is reported by every test).
pub fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "building the test image failed".into())
}
