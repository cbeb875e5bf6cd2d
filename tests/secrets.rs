//! Nothing graceinit prints holds a secret: a URL's password and query values show as
//! `***` (in `check`, in events and logs at every level, in config errors, in `probe`),
//! `check` shows `${VAR}`s unexpanded, and header values, bodies and env values are never
//! printed at all.
//!
//! Every secret here contains `s3cr3t`, and no output may contain that string.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{Finished, Launch, TempDir, serial};

const WAIT: Duration = Duration::from_secs(20);

/// Each secret reaches graceinit through the environment, the way a Kubernetes Secret
/// does.
const SECRETS: &[(&str, &str)] = &[
    ("PASS", "pw-s3cr3t-userinfo"),
    ("TOKEN", "tok-s3cr3t-query"),
    ("HEADER", "hdr-s3cr3t"),
    ("BODY", "body-s3cr3t"),
    ("ENV_VALUE", "env-s3cr3t"),
    ("HTTP_TOKEN", "endpoint-s3cr3t"),
];

fn with_secrets(mut launch: Launch) -> Launch {
    for (name, value) in SECRETS {
        launch = launch.env(name, value);
    }
    launch
}

fn assert_no_secret(done: &Finished) {
    for (what, text) in [("stdout", &done.stdout), ("stderr", &done.stderr)] {
        assert!(
            !text.contains("s3cr3t"),
            "a secret in {what}:\nstdout:\n{}\nstderr:\n{}",
            done.stdout,
            done.stderr
        );
    }
}

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Hooks carrying every kind of secret: an http call with a password, a query token, a
/// header and a body; an exec with an env value and a URL in its argv. Both fail (the
/// port is closed, the exec exits 3), so each is reported.
fn config_with_secrets(port: u16) -> String {
    format!(
        r#"
[app]
stop_timeout = "5s"

[http]
token = "${{HTTP_TOKEN}}"

[[hooks.pre_stop]]
http = {{ method = "POST", url = "http://user:${{PASS}}@127.0.0.1:{port}/deregister?token=${{TOKEN}}&instance=web-0", headers = {{ Authorization = "Bearer ${{HEADER}}", X-Literal = "literal-hdr-s3cr3t" }}, body = "${{BODY}} literal-body-s3cr3t" }}
timeout = "5s"

[[hooks.pre_stop]]
exec = ["sh", "-c", "exit 3", "http://admin:${{PASS}}@127.0.0.1:{port}/?key=${{TOKEN}}"]
env = {{ SECRET = "${{ENV_VALUE}}", LITERAL = "literal-env-s3cr3t" }}
timeout = "5s"
"#
    )
}

#[test]
fn check_shows_variables_unexpanded_and_urls_redacted() {
    let dir = TempDir::new("secrets-check");
    let port = closed_port();
    let config = dir.write("c.toml", &config_with_secrets(port));
    let done = with_secrets(Launch::direct(["check", &config])).run(WAIT);
    done.assert_code(0);
    assert_no_secret(&done);
    assert!(
        done.stdout.contains(&format!(
            "[pre_stop#1] http POST http://user:***@127.0.0.1:{port}/deregister?token=***&instance=***  timeout 5s"
        )),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains(&format!(
            "[pre_stop#2] exec [\"sh\", \"-c\", \"exit 3\", \"http://admin:***@127.0.0.1:{port}/?key=***\"]  timeout 5s"
        )),
        "{}",
        done.stdout
    );
    for never in ["Bearer", "X-Literal", "SECRET", "LITERAL", "endpoint"] {
        assert!(!done.stdout.contains(never), "{never}: {}", done.stdout);
    }
    assert_eq!(done.stderr, "", "all variables are set: no warnings");
}

#[test]
fn check_shows_the_command_as_written() {
    let dir = TempDir::new("secrets-command");
    let config = dir.write(
        "c.toml",
        "[app]\ncommand = [\"/app\", \"--password=${PASS}\", \"--db=postgres://app:${PASS}@db/app?sslpassword=${TOKEN}\"]\n",
    );
    let done = with_secrets(Launch::direct(["check", &config])).run(WAIT);
    done.assert_code(0);
    assert_no_secret(&done);
    assert!(
        done.stdout.contains(
            "  command              [\"/app\", \"--password=${PASS}\", \"--db=postgres://app:***@db/app?sslpassword=***\"]\n"
        ),
        "{}",
        done.stdout
    );
}

/// The failed hooks' events at the default level, and everything -vv logs, drained by
/// SIGTERM.
fn failed_pre_stop_hooks(verbosity: &[&str]) -> (Finished, u16) {
    let _serial = serial();
    let dir = TempDir::new("secrets-drain");
    let port = closed_port();
    let config = dir.write("c.toml", &config_with_secrets(port));
    let mut args = vec!["--config", config.as_str()];
    args.extend_from_slice(verbosity);
    args.extend(["--", "sleep", "100"]);
    let running = with_secrets(Launch::direct(args)).start();
    running.wait_for_app("sleep");
    running.signal(libc::SIGTERM);
    let done = running.wait(WAIT);
    done.assert_code(143);
    (done, port)
}

#[test]
fn failed_hook_events_show_urls_redacted_at_the_default_level() {
    let (done, port) = failed_pre_stop_hooks(&[]);
    assert_no_secret(&done);
    let http_event: Vec<&str> = done
        .stderr
        .lines()
        .filter(|line| line.contains("FailedPreStopHook") && line.contains("pre_stop#1"))
        .collect();
    assert_eq!(http_event.len(), 1, "{}", done.stderr);
    assert!(
        http_event[0].contains(&format!(
            "pre_stop#1: POST http://user:***@127.0.0.1:{port}/deregister?token=***&instance=***: "
        )),
        "{}",
        done.stderr
    );
    assert_eq!(
        done.stderr_lines_with("FailedPreStopHook"),
        2,
        "both hooks failed: {}",
        done.stderr
    );
}

#[test]
fn logs_show_urls_redacted_at_debug_level() {
    let (done, port) = failed_pre_stop_hooks(&["-vv"]);
    assert_no_secret(&done);
    let running: Vec<&str> = done
        .stderr
        .lines()
        .filter(|line| line.contains("running hook"))
        .collect();
    assert_eq!(running.len(), 2, "{}", done.stderr);
    assert!(
        running[0].contains(&format!(
            "http POST http://user:***@127.0.0.1:{port}/deregister?token=***&instance=***"
        )),
        "{}",
        running[0]
    );
    assert!(
        running[1].contains(&format!("http://admin:***@127.0.0.1:{port}/?key=***")),
        "{}",
        running[1]
    );
}

#[test]
fn config_errors_show_urls_redacted_and_values_masked() {
    let dir = TempDir::new("secrets-errors");
    // Port 99999 does not parse: the error quotes the URL as written only (once expanded,
    // a `/` or `#` inside a secret would hide it from the redaction).
    let bad_port = dir.write(
        "bad-port.toml",
        "[[hooks.pre_stop]]\nhttp = { url = \"http://user:${PASS}@${HOST}:99999/x?token=${TOKEN}\" }\n",
    );
    for args in [
        vec!["check", bad_port.as_str()],
        vec!["--config", bad_port.as_str(), "--", "true"],
    ] {
        let done = with_secrets(Launch::direct(args))
            .env("HOST", "127.0.0.1")
            .run(WAIT);
        done.assert_code(2);
        assert_no_secret(&done);
        assert!(
            done.stderr.contains(&format!(
                "graceinit: {bad_port}:2:16: `http://user:***@${{HOST}}:99999/x?token=***` (after expanding its ${{VAR}}s) is not a URL: invalid port number\n"
            )),
            "{}",
            done.stderr
        );
    }

    // A password written into the file itself: the quoted source line is redacted too.
    let literal = dir.write(
        "literal.toml",
        "[[hooks.pre_stop]]\nhttp = { url = \"ftp://user:literal-s3cr3t@127.0.0.1/x?token=literal-s3cr3t\" }\n",
    );
    let done = Launch::direct(["check", &literal]).run(WAIT);
    done.assert_code(2);
    assert_no_secret(&done);
    // The underline covers the redacted string, quotes included.
    let shown = "\"ftp://user:***@127.0.0.1/x?token=***\"";
    assert_eq!(
        done.stderr,
        format!(
            "graceinit: {literal}:2:16: `ftp://user:***@127.0.0.1/x?token=***`: only http:// and https:// URLs are supported\n  |\n2 | http = {{ url = {shown} }}\n  |                {}\n",
            "^".repeat(shown.len())
        )
    );

    // Env values, header values and bodies written into the file are masked in the
    // quoted line, whatever the error on it.
    let env_name = dir.write(
        "env-name.toml",
        "[[hooks.pre_stop]]\nexec = [\"true\"]\nenv = { \"A=B\" = \"literal-env-s3cr3t\" }\n",
    );
    let done = Launch::direct(["check", &env_name]).run(WAIT);
    done.assert_code(2);
    assert_no_secret(&done);
    assert_eq!(
        done.stderr,
        format!(
            "graceinit: {env_name}:3:9: `env`: \"A=B\" contains `=`, which would end the variable's name\n  |\n3 | env = {{ \"A=B\" = *** }}\n  |         ^^^^^\n"
        )
    );
    let header = dir.write(
        "header.toml",
        "[[hooks.pre_stop]]\nhttp = { url = \"http://h/\", headers = { \"Bad Name\" = \"literal-hdr-s3cr3t\" }, body = \"literal-body-s3cr3t\" }\n",
    );
    let done = Launch::direct(["check", &header]).run(WAIT);
    done.assert_code(2);
    assert_no_secret(&done);
    assert_eq!(
        done.stderr,
        format!(
            "graceinit: {header}:2:54: `Bad Name` is not an HTTP header name\n  |\n2 | http = {{ url = \"http://h/\", headers = {{ \"Bad Name\" = *** }}, body = *** }}\n  |                                                      ^^^\n"
        )
    );

    // A broken `${` in an env value does not quote the value.
    let broken = dir.write(
        "broken.toml",
        "[[hooks.pre_stop]]\nexec = [\"true\"]\nenv = { A = \"${ENV_VALUE\" }\n",
    );
    let done = with_secrets(Launch::direct(["check", &broken])).run(WAIT);
    done.assert_code(2);
    assert_no_secret(&done);
    assert!(
        done.stderr.starts_with(&format!(
            "graceinit: {broken}:3:13: unterminated `${{`: expected ${{NAME}} or ${{NAME:-default}}\n"
        )),
        "{}",
        done.stderr
    );
}

#[test]
fn probe_shows_its_url_redacted() {
    let port = closed_port();
    let url = format!("http://user:pw-s3cr3t@127.0.0.1:{port}/healthz?token=tok-s3cr3t");
    let done = Launch::direct(["probe", &url]).run(WAIT);
    done.assert_code(1);
    assert_no_secret(&done);
    assert!(
        done.stderr.starts_with(&format!(
            "graceinit probe: http://user:***@127.0.0.1:{port}/healthz?token=***: "
        )),
        "{}",
        done.stderr
    );
    let done = Launch::direct(["probe", "ftp://user:pw-s3cr3t@127.0.0.1/?t=tok-s3cr3t"]).run(WAIT);
    done.assert_code(2);
    assert_no_secret(&done);
}
