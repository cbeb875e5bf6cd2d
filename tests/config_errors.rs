//! Config mistakes that used to go unlocated or unnoticed until run time: each is exit 2
//! with `file:line:column` pointing at what to fix, from `check` and from the supervisor.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use common::{Finished, Launch, TempDir};

const WAIT: Duration = Duration::from_secs(20);

/// `check FILE` and `--config FILE -- true`, each with `env`; both must reject the file
/// with the same first line, which is returned.
fn rejected(path: &str, env: &[(&str, &OsStr)]) -> String {
    let run = |args: &[&str]| -> Finished {
        let mut launch = Launch::direct(args.iter().copied());
        for (name, value) in env {
            launch = launch.env(name, value);
        }
        launch.run(WAIT)
    };
    let check = run(&["check", path]);
    check.assert_code(2);
    assert_eq!(check.stdout, "", "nothing on stdout");
    let supervise = run(&["--config", path, "--", "true"]);
    supervise.assert_code(2);
    let first = check.stderr.lines().next().unwrap_or("").to_string();
    assert_eq!(
        supervise.stderr.lines().next().unwrap_or(""),
        first,
        "check and the supervisor agree"
    );
    first
}

#[test]
fn a_grace_period_shorter_than_the_default_stop_timeout_points_at_the_key() {
    let dir = TempDir::new("grace");
    let path = dir.write("c.toml", "# short\n[app]\ngrace_period = \"5s\"\n");
    assert_eq!(
        rejected(&path, &[]),
        format!(
            "graceinit: {path}:3:16: stop_timeout (10s, the default) is longer than grace_period (5s): the app could never get its stop_timeout before SIGKILL"
        )
    );
}

#[test]
fn invalid_utf8_is_located() {
    let dir = TempDir::new("utf8");
    let path = dir.file("c.toml");
    // Latin-1 "café" on line 3, column 6 (after "# caf").
    std::fs::write(&path, b"[app]\nstop_timeout = \"5s\"\n# caf\xe9 au lait\n").unwrap();
    assert_eq!(
        rejected(&path, &[]),
        format!("graceinit: {path}:3:6: not valid UTF-8 (a TOML file must be UTF-8)")
    );
    // Inside a multi-byte line, after valid non-ASCII text: columns count characters.
    std::fs::write(
        &path,
        "x = \"h\u{e9}llo "
            .bytes()
            .chain(*b"\xff\"\n")
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    assert_eq!(
        rejected(&path, &[]),
        format!("graceinit: {path}:1:12: not valid UTF-8 (a TOML file must be UTF-8)")
    );
}

#[test]
fn nul_bytes_in_argv_are_rejected_at_load() {
    let dir = TempDir::new("nul");
    let path = dir.write(
        "hook.toml",
        "[[hooks.post_stop]]\nexec = [\"echo\", \"a\\u0000b\"]\n",
    );
    assert_eq!(
        rejected(&path, &[]),
        format!(
            "graceinit: {path}:2:17: argument 1 contains a NUL byte, which a program's argv cannot hold"
        )
    );
    let path = dir.write("app.toml", "[app]\ncommand = [\"/bin/\\u0000true\"]\n");
    assert_eq!(
        rejected(&path, &[]),
        format!(
            "graceinit: {path}:2:12: argument 0 contains a NUL byte, which a program's argv cannot hold"
        )
    );
}

#[test]
fn env_names_with_equals_signs_are_rejected_at_load() {
    let dir = TempDir::new("env-name");
    let path = dir.write(
        "c.toml",
        "[[hooks.pre_stop]]\nexec = [\"true\"]\nenv = { GOOD = \"1\", \"BAD=NAME\" = \"2\" }\n",
    );
    assert_eq!(
        rejected(&path, &[]),
        format!(
            "graceinit: {path}:3:21: `env`: \"BAD=NAME\" contains `=`, which would end the variable's name"
        )
    );
}

#[test]
fn a_variable_set_but_not_utf8_is_named_not_taken_as_unset() {
    let dir = TempDir::new("not-utf8");
    let path = dir.write(
        "c.toml",
        "[[hooks.pre_stop]]\nexec = [\"echo\", \"${GRACEINIT_X:-fallback}\"]\n",
    );
    let latin1 = OsStr::from_bytes(b"caf\xe9");
    assert_eq!(
        rejected(&path, &[("GRACEINIT_X", latin1)]),
        format!(
            "graceinit: {path}:2:17: `${{GRACEINIT_X}}`: GRACEINIT_X is set but not valid UTF-8, so graceinit cannot use its value"
        )
    );
}
