//! Unit tests of parsing, validation and error positions.

use std::env::VarError;
use std::path::Path;
use std::time::Duration;

use crate::signals::SignalTarget;

use super::*;

fn env(name: &str) -> Result<String, VarError> {
    match name {
        "HOSTNAME" => Ok("web-0".into()),
        "GRACEINIT_TOKEN" => Ok("secret".into()),
        "NOT_UTF8" => Err(VarError::NotUnicode("x".into())),
        _ => Err(VarError::NotPresent),
    }
}

fn parse(source: &str) -> Result<Settings, ConfigError> {
    resolve(
        Some((Path::new("g.toml"), source)),
        &Overrides::default(),
        env,
    )
}

fn error(source: &str) -> (usize, usize, String) {
    let e = parse(source).expect_err("the config should be rejected");
    (e.line, e.column, e.message)
}

/// DESIGN.md's "Configuration" example, verbatim.
const DESIGN_EXAMPLE: &str = r#"
[app]
command = ["/app/server", "--port", "8080"]   # used when no CMD is given; CMD wins
stop_signal = "SIGTERM"        # nginx: "SIGQUIT" (graceful), php-fpm: "SIGQUIT"
stop_timeout = "10s"           # the app always gets this long between stop signal and SIGKILL
grace_period = "30s"           # trigger -> SIGKILL; <= terminationGracePeriodSeconds
kill_leftovers_after = "2s"    # after the app exits, SIGTERM -> SIGKILL for what remains
restart = "never"              # never | on-failure | always
signal_target = "group"        # group | child

[signals]
drain = ["SIGTERM", "SIGINT"]  # signals that start the drain (default: SIGTERM only)
rewrite = { SIGWINCH = "SIGUSR1" }
remap_exit = { 143 = 0 }       # app exit code -> graceinit exit code

[http]
listen = "127.0.0.1:9090"      # off unless set
prestop = true                 # serve /prestop
token = "${GRACEINIT_TOKEN}"   # required for /prestop on a non-loopback address

[control]
socket = "/run/graceinit.sock" # graceinit drain / status talk to this

[log]
level = "info"                 # or -v / -vv
format = "text"                # text | json

[[hooks.post_start]]
exec = ["/bin/sh", "-c", "echo started > /tmp/message"]
timeout = "30s"

[[hooks.on_ready]]
http = { method = "POST", url = "http://registry:8500/v1/agent/service/register", body = '{"Name":"web","ID":"${HOSTNAME}","Port":8080}' }

[[hooks.pre_stop]]
http = { method = "PUT", url = "http://eureka:8761/eureka/apps/WEB/${HOSTNAME}/status?value=OUT_OF_SERVICE", expect_status = [200] }
timeout = "5s"

[[hooks.pre_stop]]
sleep = "10s"                  # let load balancers notice before the app stops accepting

[[hooks.post_stop]]
exec = ["/app/flush-metrics"]
on_failure = "ignore"

[probes.startup]
tcp = "127.0.0.1:8080"
period = "1s"
failure_threshold = 30

[probes.readiness]
http = { url = "http://127.0.0.1:8080/health" }
period = "2s"

[probes.liveness]
exec = ["/app/healthcheck"]
period = "10s"
failure_threshold = 3
"#;

#[test]
fn the_design_example_resolves() {
    let s = parse(DESIGN_EXAMPLE).unwrap();
    assert_eq!(s.command, ["/app/server", "--port", "8080"]);
    assert_eq!(s.stop_signal, libc::SIGTERM);
    assert_eq!(s.stop_timeout, Duration::from_secs(10));
    assert_eq!(s.grace_period, Duration::from_secs(30));
    assert_eq!(s.drain_signals, [libc::SIGTERM, libc::SIGINT]);
    assert_eq!(s.rewrite.apply(libc::SIGWINCH), Some(libc::SIGUSR1));
    assert_eq!(s.remap_exit.get(&143), Some(&0));
    assert_eq!(s.http.token.as_deref(), Some("secret"));
    assert_eq!(s.log_level, LogLevel::Info);
    assert_eq!(s.hooks.post_start.len(), 1);
    assert_eq!(s.hooks.pre_stop.len(), 2);
    assert_eq!(s.hooks.pre_stop[0].label(), "pre_stop#1");
    assert_eq!(s.hooks.pre_stop[0].on_failure, OnFailure::Continue);
    assert_eq!(s.hooks.post_start[0].on_failure, OnFailure::Fail);
    assert_eq!(s.hooks.post_stop[0].on_failure, OnFailure::Ignore);
    match &s.hooks.pre_stop[0].action {
        Action::Http(request) => {
            assert_eq!(request.method, "PUT");
            assert_eq!(
                request.url,
                "http://eureka:8761/eureka/apps/WEB/web-0/status?value=OUT_OF_SERVICE"
            );
            assert!(request.accepts(200) && !request.accepts(204));
        }
        other => panic!("expected http, got {other:?}"),
    }
    match &s.hooks.on_ready[0].action {
        Action::Http(request) => assert_eq!(
            request.body.as_deref(),
            Some(r#"{"Name":"web","ID":"web-0","Port":8080}"#)
        ),
        other => panic!("expected http, got {other:?}"),
    }
    assert_eq!(s.hooks.pre_stop[1].budget(), Duration::from_secs(10));
    let startup = s.probes.startup.as_ref().unwrap();
    assert_eq!(startup.failure_threshold, 30);
    assert_eq!(startup.timeout, Duration::from_secs(1));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn unknown_keys_name_their_position_and_nearest_key() {
    let (line, column, message) = error("[app]\nstop_signal = \"SIGTERM\"\nstop_timout = \"5s\"\n");
    assert_eq!((line, column), (3, 1));
    assert!(message.contains("did you mean `stop_timeout`"), "{message}");
    let (line, column, message) = error("[hooks]\n[[hooks.pre_stpo]]\nsleep = \"1s\"\n");
    assert_eq!((line, column), (2, 9));
    assert!(message.contains("did you mean `pre_stop`"), "{message}");
}

#[test]
fn bad_values_name_their_position() {
    let (line, column, message) = error("[app]\nstop_timeout = \"10 parsecs\"\n");
    assert_eq!((line, column), (2, 16));
    assert!(message.contains("not a duration"), "{message}");
    let (line, column, message) = error("[app]\nstop_signal = \"SIGNOPE\"\n");
    assert_eq!((line, column), (2, 15));
    assert!(message.contains("unknown signal"), "{message}");
    let (line, _, message) = error("[signals]\nremap_exit = { 300 = 0 }\n");
    assert_eq!(line, 2);
    assert!(message.contains("300"), "{message}");
    let (line, column, message) = error("x = [\n");
    assert_eq!((line, column), (1, 6));
    assert!(message.contains("unclosed array"), "{message}");
}

#[test]
fn each_hook_has_exactly_one_action() {
    let (line, column, message) = error("[[hooks.pre_stop]]\nsleep = \"1s\"\nexec = [\"true\"]\n");
    // A hook is located by its [[header]].
    assert_eq!((line, column), (1, 1));
    assert!(message.contains("one action per entry"), "{message}");
    let (_, _, message) = error("[[hooks.pre_stop]]\ntimeout = \"1s\"\n");
    assert!(message.contains("expected one action"), "{message}");
    let (_, _, message) = error("[[hooks.pre_stop]]\nexec = []\n");
    assert!(message.contains("at least the program"), "{message}");
    let (_, _, message) = error("[[hooks.pre_stop]]\nsleep = \"1s\"\nperiod = \"1s\"\n");
    assert!(message.contains("probe setting"), "{message}");
    let (_, _, message) = error("[probes.readiness]\nsleep = \"1s\"\n");
    assert!(message.contains("`sleep` is a hook action"), "{message}");
}

#[test]
fn empty_commands_and_zero_durations_are_errors() {
    let (line, column, message) = error("[app]\ncommand = []\n");
    assert_eq!((line, column), (2, 11));
    assert_eq!(message, "`command` needs at least the program to run");
    let (line, column, message) = error("[[hooks.pre_stop]]\nsleep = \"1s\"\ntimeout = \"0s\"\n");
    assert_eq!((line, column), (3, 11));
    assert_eq!(message, "`timeout` must be longer than 0s");
    let (line, column, message) =
        error("[probes.readiness]\ntcp = \"127.0.0.1:80\"\nperiod = \"0ms\"\n");
    assert_eq!((line, column), (3, 10));
    assert_eq!(message, "`period` must be longer than 0s");
    let (_, _, message) = error("[probes.startup]\ntcp = \"127.0.0.1:80\"\ntimeout = \"0s\"\n");
    assert_eq!(message, "`timeout` must be longer than 0s");
    // An initial delay of zero is the default, so it may be written out.
    let s = parse("[probes.startup]\ntcp = \"127.0.0.1:80\"\ninitial_delay = \"0s\"\n").unwrap();
    assert_eq!(s.probes.startup.unwrap().initial_delay, Duration::ZERO);
}

#[test]
fn http_actions_are_checked() {
    let (line, column, message) = error("[[hooks.pre_stop]]\nhttp = { url = \"not a url\" }\n");
    assert_eq!((line, column), (2, 16));
    assert!(message.contains("not a URL"), "{message}");
    let (_, _, message) = error("[[hooks.pre_stop]]\nhttp = { url = \"ftp://x/\" }\n");
    assert!(message.contains("only http"), "{message}");
    let (_, _, message) =
        error("[[hooks.pre_stop]]\nhttp = { url = \"http://x/\", expect_status = [99] }\n");
    assert!(message.contains("99 is not an HTTP status"), "{message}");
    let (line, _, message) = error(
        "[[hooks.pre_stop]]\nhttp = { url = \"http://x/\", headers = { \"a b\" = \"v\" } }\n",
    );
    assert_eq!(line, 2);
    assert!(
        message.contains("`a b` is not an HTTP header name"),
        "{message}"
    );
    let (_, _, message) =
        error("[[hooks.pre_stop]]\nhttp = { url = \"http://x/\", headers = { X = \"a\\nb\" } }\n");
    assert!(
        message.contains("not a valid HTTP header value"),
        "{message}"
    );
    let (_, _, message) = error("[[hooks.pre_stop]]\ntcp = \"localhost\"\n");
    assert!(message.contains("not host:port"), "{message}");
}

#[test]
fn stop_timeout_cannot_exceed_grace_period() {
    let (line, _, message) = error("[app]\nstop_timeout = \"40s\"\ngrace_period = \"30s\"\n");
    assert_eq!(line, 2);
    assert!(message.contains("longer than grace_period"), "{message}");
}

#[test]
fn unset_variables_warn_with_their_position() {
    let s = parse("[[hooks.pre_stop]]\nexec = [\"echo\", \"${NOT_SET_ANYWHERE}\"]\n").unwrap();
    assert_eq!(s.warnings.len(), 1);
    assert!(
        s.warnings[0].starts_with("g.toml:2:17: ${NOT_SET_ANYWHERE} is not set"),
        "{}",
        s.warnings[0]
    );
    match &s.hooks.pre_stop[0].action {
        Action::Exec { argv, .. } => assert_eq!(argv, &["echo", ""]),
        other => panic!("expected exec, got {other:?}"),
    }
}

#[test]
fn flags_override_the_file() {
    let overrides = Overrides {
        stop_signal: Some(libc::SIGQUIT),
        grace_period: Some(Duration::from_secs(60)),
        signal_target: Some(SignalTarget::Child),
        remap_exit: vec![(143, 7)],
        ..Overrides::default()
    };
    let source = "[app]\nstop_signal = \"SIGINT\"\ngrace_period = \"20s\"\n[signals]\nremap_exit = { 143 = 0 }\n";
    let s = resolve(Some((Path::new("g.toml"), source)), &overrides, env).unwrap();
    assert_eq!(s.stop_signal, libc::SIGQUIT);
    assert_eq!(s.grace_period, Duration::from_secs(60));
    assert_eq!(s.signal_target, SignalTarget::Child);
    assert_eq!(s.remap_exit.get(&143), Some(&7));
    // The app has its own session in child mode too: TSTP must become STOP.
    assert_eq!(s.rewrite.apply(libc::SIGTSTP), Some(libc::SIGSTOP));
}

#[test]
fn defaults_are_a_plain_init() {
    let s = defaults(&Overrides::default()).unwrap();
    assert!(s.command.is_empty());
    assert_eq!(s.drain_signals, [libc::SIGTERM]);
    assert_eq!(s.grace_period, DEFAULT_GRACE_PERIOD);
    assert_eq!(s.stop_timeout, DEFAULT_STOP_TIMEOUT);
    assert_eq!(s.signal_target, SignalTarget::Group);
    assert_eq!(s.rewrite.apply(libc::SIGTSTP), Some(libc::SIGSTOP));
}

#[test]
fn drain_signals_must_be_catchable() {
    let (line, column, message) = error("[signals]\ndrain = [\"SIGTERM\", \"SIGKILL\"]\n");
    assert_eq!((line, column), (2, 9));
    assert!(
        message.contains("SIGKILL cannot start the drain"),
        "{message}"
    );
    let (_, _, message) = error("[signals]\ndrain = [\"SIGPIPE\"]\n");
    assert!(
        message.contains("SIGPIPE cannot start the drain"),
        "{message}"
    );
    let (_, _, message) = error("[signals]\ndrain = []\n");
    assert!(message.contains("at least one signal"), "{message}");
}

#[test]
fn a_conflict_from_the_command_line_is_not_blamed_on_the_file() {
    let overrides = Overrides {
        stop_timeout: Some(Duration::from_secs(50)),
        grace_period: Some(Duration::from_secs(40)),
        ..Overrides::default()
    };
    let e = resolve(Some((Path::new("g.toml"), "[app]\n")), &overrides, env).unwrap_err();
    assert_eq!(e.path, Path::new("<command line>"));
    let overrides = Overrides {
        stop_timeout: Some(Duration::from_secs(50)),
        ..Overrides::default()
    };
    let e = resolve(
        Some((Path::new("g.toml"), "[app]\ngrace_period = \"40s\"\n")),
        &overrides,
        env,
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (2, 16));
}

#[test]
fn contradicting_flags_without_a_file_are_an_error() {
    let overrides = Overrides {
        stop_timeout: Some(Duration::from_secs(50)),
        ..Overrides::default()
    };
    let e = defaults(&overrides).unwrap_err();
    assert_eq!(
        e.to_string(),
        "<command line>: stop_timeout (50s) is longer than grace_period (30s, the default): the app could never get its stop_timeout before SIGKILL"
    );
}

#[test]
fn a_conflict_with_a_default_is_blamed_on_the_key_in_the_file() {
    let e = parse("[app]\ngrace_period = \"5s\"\n").unwrap_err();
    assert_eq!(e.path, Path::new("g.toml"));
    assert_eq!((e.line, e.column), (2, 16));
    assert_eq!(
        e.message,
        "stop_timeout (10s, the default) is longer than grace_period (5s): the app could never get its stop_timeout before SIGKILL"
    );
}

#[test]
fn what_exec_cannot_pass_is_rejected_at_load() {
    let (line, column, message) = error("[[hooks.pre_stop]]\nexec = [\"a\", \"b\\u0000c\"]\n");
    assert_eq!((line, column), (2, 14));
    assert_eq!(
        message,
        "argument 1 contains a NUL byte, which a program's argv cannot hold"
    );
    let (line, column, _) = error("[app]\ncommand = [\"\\u0000\"]\n");
    assert_eq!((line, column), (2, 12));
    let (line, column, message) =
        error("[[hooks.post_stop]]\nexec = [\"a\"]\nenv = { OK = \"1\", \"A=B\" = \"x\" }\n");
    assert_eq!((line, column), (3, 19));
    assert_eq!(
        message,
        "`env`: \"A=B\" contains `=`, which would end the variable's name"
    );
    let (line, column, message) =
        error("[[hooks.post_stop]]\nexec = [\"a\"]\nenv = { \"\" = \"x\" }\n");
    assert_eq!((line, column), (3, 9));
    assert_eq!(message, "`env`: an environment variable needs a name");
    let (line, column, message) =
        error("[[hooks.post_stop]]\nexec = [\"a\"]\nenv = { A = \"x\\u0000s3cret\" }\n");
    assert_eq!((line, column), (3, 13));
    assert!(!message.contains("s3cret"), "{message}");
    let shown = parse("[[hooks.post_stop]]\nexec = [\"a\"]\nenv = { A = \"x\\u0000s3cret\" }\n")
        .unwrap_err()
        .to_string();
    assert!(
        shown.ends_with("\n3 | env = { A = *** }\n  |             ^^^"),
        "{shown}"
    );
    let (line, column, _) = error("[[hooks.post_stop]]\nexec = [\"a\"]\nworkdir = \"/\\u0000\"\n");
    assert_eq!((line, column), (3, 11));
}

#[test]
fn a_variable_that_is_set_but_not_utf8_is_named() {
    let (line, column, message) = error("[[hooks.pre_stop]]\nexec = [\"a\", \"${NOT_UTF8}\"]\n");
    assert_eq!((line, column), (2, 14));
    assert_eq!(
        message,
        "`${NOT_UTF8}`: NOT_UTF8 is set but not valid UTF-8, so graceinit cannot use its value"
    );
}

#[test]
fn check_sees_actions_as_written_and_urls_redacted() {
    let s = parse(
        "[app]\ncommand = [\"/app\", \"--token=${GRACEINIT_TOKEN}\"]\n\
         [[hooks.pre_stop]]\nhttp = { url = \"http://u:${GRACEINIT_TOKEN}@h/x?t=${GRACEINIT_TOKEN}\", headers = { A = \"${GRACEINIT_TOKEN}\" } }\n",
    )
    .unwrap();
    assert_eq!(s.command, ["/app", "--token=secret"]);
    assert_eq!(s.command_as_written, ["/app", "--token=${GRACEINIT_TOKEN}"]);
    let hook = &s.hooks.pre_stop[0];
    assert_eq!(hook.action.to_string(), "http GET http://u:***@h/x?t=***");
    assert_eq!(
        hook.as_written.to_string(),
        "http GET http://u:***@h/x?t=***"
    );
    match &hook.as_written {
        Action::Http(request) => {
            assert_eq!(
                request.url,
                "http://u:${GRACEINIT_TOKEN}@h/x?t=${GRACEINIT_TOKEN}"
            );
            assert!(request.headers.is_empty());
        }
        other => panic!("expected http, got {other:?}"),
    }
}

#[test]
fn errors_show_urls_redacted_with_the_underline_in_place() {
    let source = "[[hooks.pre_stop]]\nhttp = { url = \"http://u:${GRACEINIT_TOKEN}@h:99999/?t=${GRACEINIT_TOKEN}\", method = \"GET\" }\n";
    let shown = parse(source).unwrap_err().to_string();
    assert!(!shown.contains("secret"), "{shown}");
    assert_eq!(
        shown,
        "g.toml:2:16: `http://u:***@h:99999/?t=***` (after expanding its ${VAR}s) is not a URL: invalid port number\n  |\n2 | http = { url = \"http://u:***@h:99999/?t=***\", method = \"GET\" }\n  |                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"
    );
    // A literal password in the file is redacted in the excerpt as well.
    let source = "[[hooks.pre_stop]]\nhttp = { url = \"http://u:hunter2@h/\", method = \"G T\" }\n";
    let shown = parse(source).unwrap_err().to_string();
    assert_eq!(
        shown,
        "g.toml:2:48: `G T` is not an HTTP method\n  |\n2 | http = { url = \"http://u:***@h/\", method = \"G T\" }\n  |                                            ^^^^^"
    );
}

#[test]
fn absurd_durations_are_rejected_not_overflowed() {
    let (line, column, message) = error("[app]\ngrace_period = \"100000000000h\"\n");
    assert_eq!((line, column), (2, 16));
    assert!(message.contains("longer than a year"), "{message}");
    assert!(parse_duration("18446744073709551615s").is_err());
}

#[test]
fn restart_backoff_defaults_to_the_kubelets() {
    let s = defaults(&Overrides::default()).unwrap();
    assert_eq!(s.restart, RestartPolicy::Never);
    assert_eq!(s.restart_backoff, Duration::from_secs(10));
    assert_eq!(s.restart_backoff_max, Duration::from_secs(300));
    let s = parse("[app]\nrestart = \"always\"\n").unwrap();
    assert_eq!(s.restart, RestartPolicy::Always);
}

#[test]
fn restart_backoff_keys_are_read() {
    let s = parse(
        "[app]\nrestart = \"on-failure\"\nrestart_backoff = \"250ms\"\nrestart_backoff_max = \"2s\"\n",
    )
    .unwrap();
    assert_eq!(s.restart, RestartPolicy::OnFailure);
    assert_eq!(s.restart_backoff, Duration::from_millis(250));
    assert_eq!(s.restart_backoff_max, Duration::from_secs(2));
    // A back-off that never doubles: base and cap equal.
    let s = parse("[app]\nrestart_backoff = \"1s\"\nrestart_backoff_max = \"1s\"\n").unwrap();
    assert_eq!(
        (s.restart_backoff, s.restart_backoff_max),
        (Duration::from_secs(1), Duration::from_secs(1))
    );
    // Only the cap: the default base stays.
    let s = parse("[app]\nrestart_backoff_max = \"1h\"\n").unwrap();
    assert_eq!(
        (s.restart_backoff, s.restart_backoff_max),
        (Duration::from_secs(10), Duration::from_secs(3600))
    );
    let (line, column, message) = error("[app]\nrestart_backoff = \"soon\"\n");
    assert_eq!((line, column), (2, 19));
    assert!(message.contains("`soon` is not a duration"), "{message}");
}

#[test]
fn restart_backoff_must_be_a_pause() {
    let (line, column, message) = error("[app]\nrestart_backoff = \"0s\"\n");
    assert_eq!((line, column), (2, 19));
    assert_eq!(message, "`restart_backoff` must be longer than 0s");
}

#[test]
fn restart_backoff_cannot_exceed_its_max() {
    let (line, column, message) =
        error("[app]\nrestart_backoff = \"1m\"\nrestart_backoff_max = \"30s\"\n");
    assert_eq!((line, column), (2, 19));
    assert_eq!(
        message,
        "restart_backoff (1m) is longer than restart_backoff_max (30s): the back-off starts at restart_backoff and doubles up to restart_backoff_max"
    );
    // With the default base, the cap in the file is what is wrong.
    let e = parse("[app]\nstop_signal = \"SIGINT\"\nrestart_backoff_max = \"5s\"\n").unwrap_err();
    assert_eq!(e.path, Path::new("g.toml"));
    assert_eq!((e.line, e.column), (3, 23));
    assert_eq!(
        e.message,
        "restart_backoff (10s, the default) is longer than restart_backoff_max (5s): the back-off starts at restart_backoff and doubles up to restart_backoff_max"
    );
    // A zero cap is reported as the base exceeding it.
    let (line, column, _) = error("[app]\nrestart_backoff_max = \"0s\"\n");
    assert_eq!((line, column), (2, 23));
}

#[test]
fn the_prestop_token_is_the_text_without_surrounding_whitespace() {
    // A Secret made from a file ends with a newline, which no header value can carry.
    let s = parse("[http]\nlisten = \"0.0.0.0:9090\"\nprestop = true\ntoken = \"s3cr3t\\n\"\n")
        .unwrap();
    assert_eq!(s.http.token.as_deref(), Some("s3cr3t"));
    let e =
        parse("[http]\nlisten = \"0.0.0.0:9090\"\nprestop = true\ntoken = \" \\n\"\n").unwrap_err();
    assert!(e.to_string().contains("token"), "{e}");
}

#[test]
fn wait_quiet_takes_its_defaults_and_its_max_as_timeout() {
    let settings = parse("[[hooks.pre_stop]]\nwait_quiet = {}\n").expect("valid");
    let hook = &settings.hooks.pre_stop[0];
    let Action::WaitQuiet(wait) = &hook.action else {
        panic!("not a wait_quiet: {:?}", hook.action)
    };
    assert_eq!(
        *wait,
        model::WaitQuiet {
            ports: vec![],
            quiet: Duration::from_secs(2),
            until_idle: false,
            min: Duration::ZERO,
            max: Duration::from_secs(30),
            ignore: vec![],
        }
    );
    assert_eq!(hook.timeout, Duration::from_secs(30));
    assert_eq!(hook.budget(), Duration::from_secs(30));
}

#[test]
fn wait_quiet_ignore_blocks_are_expanded_from_the_environment() {
    let settings = parse(
        "[[hooks.pre_stop]]\nwait_quiet = { ignore = [\"${NODE_IP:-10.0.0.9}\", \"${NET:-fd00::}/8\"] }\n",
    )
    .expect("valid");
    let Action::WaitQuiet(wait) = &settings.hooks.pre_stop[0].action else {
        panic!("not a wait_quiet")
    };
    let shown: Vec<String> = wait.ignore.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.0.9/32", "fd00::/8"]);
    let (line, column, message) =
        error("[[hooks.pre_stop]]\nwait_quiet = { ignore = [\"${GRACEINIT_TOKEN}\"] }\n");
    assert_eq!((line, column), (2, 26));
    assert_eq!(
        message,
        "`${GRACEINIT_TOKEN}` does not expand to an address block like \"10.0.0.0/8\" or \"fd00::/8\""
    );
}

#[test]
fn wait_quiet_reads_every_key() {
    let settings = parse(
        "[[hooks.pre_stop]]\nwait_quiet = { ports = [8080, 8443], quiet = \"1s\", until_idle = true, min = \"3s\", max = \"12s\", ignore = [\"10.0.0.1/32\", \"fd00::/8\", \"192.168.1.7\"] }\n",
    )
    .expect("valid");
    let hook = &settings.hooks.pre_stop[0];
    let Action::WaitQuiet(wait) = &hook.action else {
        panic!("not a wait_quiet: {:?}", hook.action)
    };
    assert_eq!(wait.ports, vec![8080, 8443]);
    assert_eq!(wait.quiet, Duration::from_secs(1));
    assert!(wait.until_idle);
    assert_eq!(wait.min, Duration::from_secs(3));
    assert_eq!(wait.max, Duration::from_secs(12));
    let shown: Vec<String> = wait.ignore.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.0.1/32", "fd00::/8", "192.168.1.7/32"]);
    assert_eq!(hook.budget(), Duration::from_secs(12));
    assert_eq!(
        hook.action.to_string(),
        "wait_quiet port 8080,8443, quiet 1s and idle, max 12s"
    );
    // A shorter timeout cuts it, as for any hook.
    let settings =
        parse("[[hooks.pre_stop]]\nwait_quiet = { max = \"12s\" }\ntimeout = \"5s\"\n").unwrap();
    assert_eq!(settings.hooks.pre_stop[0].budget(), Duration::from_secs(5));
}

#[test]
fn wait_quiet_is_pre_stop_only() {
    let (line, column, message) = error("[[hooks.post_start]]\nwait_quiet = {}\n");
    assert_eq!((line, column), (2, 14));
    assert_eq!(
        message,
        "`wait_quiet` is a pre_stop action; post_start hooks take `exec`, `http`, `tcp` or `sleep`"
    );
    let (line, _, message) = error("[[hooks.on_ready]]\nwait_quiet = {}\n");
    assert_eq!(line, 2);
    assert_eq!(
        message,
        "`wait_quiet` is a pre_stop action; on_ready hooks take `exec`, `http`, `tcp` or `sleep`"
    );
    let (line, _, message) = error("[probes.readiness]\nwait_quiet = {}\n");
    assert_eq!(line, 2);
    assert_eq!(
        message,
        "`wait_quiet` is a pre_stop action; probes take `exec`, `http` or `tcp`"
    );
    let (_, _, message) = error("[[hooks.pre_stop]]\nwait_quiet = {}\nsleep = \"1s\"\n");
    assert_eq!(message, "one action per entry, found sleep and wait_quiet");
}

#[test]
fn wait_quiet_rejects_bad_values_where_they_are() {
    let (line, column, message) =
        error("[[hooks.pre_stop]]\nwait_quiet = { ignore = [\"10.0.0.0/33\"] }\n");
    assert_eq!((line, column), (2, 26));
    assert_eq!(
        message,
        "`10.0.0.0/33` is not an address block like \"10.0.0.0/8\" or \"fd00::/8\""
    );
    let (_, _, message) = error("[[hooks.pre_stop]]\nwait_quiet = { ignore = [\"node\"] }\n");
    assert!(
        message.starts_with("`node` is not an address block"),
        "{message}"
    );
    let (line, column, message) =
        error("[[hooks.pre_stop]]\nwait_quiet = { min = \"5s\", max = \"2s\" }\n");
    assert_eq!((line, column), (2, 22));
    assert_eq!(message, "`min` (5s) is longer than `max` (2s)");
    let (_, _, message) = error("[[hooks.pre_stop]]\nwait_quiet = { quiet = \"0s\" }\n");
    assert_eq!(message, "`quiet` must be longer than 0s");
    let (_, _, message) = error("[[hooks.pre_stop]]\nwait_quiet = { ports = [0] }\n");
    assert_eq!(message, "`ports` are 1 to 65535; 0 is not a port");
    let (_, _, message) = error("[[hooks.pre_stop]]\nwait_quiet = { port = [80] }\n");
    assert!(message.contains("`ports`"), "{message}");
}

#[test]
fn cidr_contains_its_addresses_and_mapped_ipv4() {
    let block = model::Cidr::parse("10.1.0.0/16").unwrap();
    assert!(block.contains("10.1.255.3".parse().unwrap()));
    assert!(!block.contains("10.2.0.1".parse().unwrap()));
    assert!(block.contains("::ffff:10.1.0.9".parse().unwrap()));
    let all = model::Cidr::parse("0.0.0.0/0").unwrap();
    assert!(all.contains("203.0.113.5".parse().unwrap()));
    assert!(!all.contains("::1".parse().unwrap()));
    let v6 = model::Cidr::parse("fd00::/8").unwrap();
    assert!(v6.contains("fd12::1".parse().unwrap()));
    assert!(!v6.contains("fe80::1".parse().unwrap()));
    // Written as `ss` shows a dual-stack listener's IPv4 peers: the IPv4 block.
    let mapped = model::Cidr::parse("::ffff:127.0.0.0/104").unwrap();
    assert_eq!(mapped, model::Cidr::parse("127.0.0.0/8").unwrap());
    assert!(mapped.contains("::ffff:127.0.0.1".parse().unwrap()));
    assert!(mapped.contains("127.9.9.9".parse().unwrap()));
    let one = model::Cidr::parse("::ffff:10.0.0.7").unwrap();
    assert_eq!(one, model::Cidr::parse("10.0.0.7/32").unwrap());
}
