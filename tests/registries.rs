//! The shipped examples for registries that cannot be installed here, Eureka and Consul,
//! run as they are (read from examples/, their `${VAR}`s set in graceinit's environment)
//! against a loopback server that records every call: the calls must be exactly those of
//! the registries' REST APIs (method, path with the expanded ids, query, headers, body),
//! in order, and every deregistration must come before the app's SIGTERM.
//!
//! And examples/k8s/deployment.yaml: its ConfigMap's config passes `graceinit check`,
//! its terminationGracePeriodSeconds covers the config's grace_period, and the paths of
//! its probes and its preStop command are ones a graceinit running that config serves.
//!
//! graceinit runs as a plain child of the test, the app is an `sh` script that records
//! its SIGTERM with a wall-clock stamp (tests/lifecycle_support), comparable with the
//! recording server's.

mod common;
#[allow(dead_code)]
mod lifecycle_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{TempDir, wait_until};
use lifecycle_support::{Graceinit, RecordingServer, Request, Scenario, crate_dir, run, secs};

const SECOND: i128 = 1_000_000_000;

/// Starts graceinit on `examples/NAME` with `env`, and an app that records its SIGTERM
/// and then exits 143 (as a JVM does); returns once the app is ready.
fn start_example(s: &Scenario, name: &str, env: &[(&str, &str)]) -> Graceinit {
    let config = crate_dir().join("examples").join(name);
    let config = config.to_str().expect("a UTF-8 path");
    let app = s.app_recording_term(143);
    let graceinit = Graceinit::start(&["--config", config, "--", "sh", "-c", &app], env);
    wait_until(Duration::from_secs(10), "the app to be ready", || {
        s.join("ready").exists()
    });
    graceinit
}

/// (method, path and query, body) of each request, for one exact comparison.
fn calls(requests: &[Request]) -> Vec<(&str, &str, &str)> {
    requests
        .iter()
        .map(|r| (r.method.as_str(), r.target.as_str(), r.body.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Eureka

/// examples/eureka.toml on SIGTERM: `PUT .../status?value=OUT_OF_SERVICE`, its 10 s
/// sleep, `DELETE /eureka/apps/{app}/{id}`, and only then SIGTERM to the app; the JVM's
/// 143 becomes 0. Registration is the app's own Eureka client's, so nothing is sent
/// before the drain.
#[test]
fn eureka_example_marks_out_of_service_then_deregisters_before_the_app_stops() {
    let s = Scenario::new("eureka");
    let eureka = RecordingServer::start();
    let host = format!("127.0.0.1:{}", eureka.port);
    let env = [
        ("EUREKA_HOST", host.as_str()),
        ("APP_NAME", "WEB"),
        ("HOSTNAME", "web-0"),
    ];
    let mut graceinit = start_example(&s, "eureka.toml", &env);
    assert!(
        eureka.requests().is_empty(),
        "nothing is sent to Eureka before the drain: {:?}",
        eureka.requests()
    );

    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "the JVM's 143 is remapped to 0");
    let term = s.term_once();
    let requests = eureka.requests();
    assert_eq!(
        calls(&requests),
        [
            (
                "PUT",
                "/eureka/apps/WEB/web-0/status?value=OUT_OF_SERVICE",
                ""
            ),
            ("DELETE", "/eureka/apps/WEB/web-0", ""),
        ],
        "stderr:\n{stderr}"
    );
    let between = requests[1].at_ns - requests[0].at_ns;
    assert!(
        between >= 10 * SECOND,
        "the 10s sleep lies between OUT_OF_SERVICE and the DELETE: {:.3}s",
        secs(between)
    );
    assert!(
        requests[1].at_ns < term,
        "the DELETE reached Eureka {:.3}s after the app's SIGTERM",
        secs(requests[1].at_ns - term)
    );
    assert!(
        !stderr.contains("FailedPreStopHook"),
        "both calls were answered as the API does (200): {stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// Consul

/// examples/consul.toml: on_ready `PUT /v1/agent/service/register` with the service
/// definition as JSON (the pod's name as ID, its IP in Address and in the check); on
/// SIGTERM `PUT /v1/agent/service/maintenance/{id}?enable=true`, its 5 s sleep, `PUT
/// /v1/agent/service/deregister/{id}`, then SIGTERM to the app. Each call carries
/// Consul's token header (empty: the anonymous token).
#[test]
fn consul_example_registers_when_ready_then_maintenance_and_deregisters_before_the_app_stops() {
    let s = Scenario::new("consul");
    let consul = RecordingServer::start();
    let address = format!("127.0.0.1:{}", consul.port);
    let env = [
        ("CONSUL_HTTP_ADDR", address.as_str()),
        ("CONSUL_HTTP_TOKEN", ""),
        ("HOSTNAME", "web-7"),
        ("POD_IP", "10.1.2.3"),
    ];
    let mut graceinit = start_example(&s, "consul.toml", &env);
    wait_until(Duration::from_secs(10), "the on_ready registration", || {
        !consul.requests().is_empty()
    });

    graceinit.drain();
    let (_, stderr) = graceinit.finish(143, "consul.toml remaps no exit code");
    let term = s.term_once();
    let requests = consul.requests();
    let body = r#"{"ID": "web-7", "Name": "web", "Address": "10.1.2.3", "Port": 8080, "Check": {"HTTP": "http://10.1.2.3:8080/health", "Interval": "10s", "DeregisterCriticalServiceAfter": "1m"}}"#;
    assert_eq!(
        calls(&requests),
        [
            ("PUT", "/v1/agent/service/register", body),
            ("PUT", "/v1/agent/service/maintenance/web-7?enable=true", ""),
            ("PUT", "/v1/agent/service/deregister/web-7", ""),
        ],
        "stderr:\n{stderr}"
    );
    // The body is the JSON Consul's agent expects: these keys, these types.
    let definition: serde_json::Value =
        serde_json::from_str(&requests[0].body).expect("the registration body is JSON");
    assert_eq!(
        definition,
        serde_json::json!({
            "ID": "web-7",
            "Name": "web",
            "Address": "10.1.2.3",
            "Port": 8080,
            "Check": {
                "HTTP": "http://10.1.2.3:8080/health",
                "Interval": "10s",
                "DeregisterCriticalServiceAfter": "1m"
            }
        })
    );
    assert_eq!(
        requests[0].header("Content-Type"),
        Some("application/json"),
        "{:?}",
        requests[0]
    );
    for request in &requests {
        assert_eq!(
            request.header("X-Consul-Token"),
            Some(""),
            "every call carries the (empty, anonymous) token: {request:?}"
        );
    }
    let between = requests[2].at_ns - requests[1].at_ns;
    assert!(
        between >= 5 * SECOND,
        "the 5s sleep lies between maintenance and deregistration: {:.3}s",
        secs(between)
    );
    assert!(
        requests[2].at_ns < term,
        "the deregistration reached Consul {:.3}s after the app's SIGTERM",
        secs(requests[2].at_ns - term)
    );
    assert!(
        !stderr.contains("FailedPreStopHook") && !stderr.contains("warning"),
        "every call was answered as the API does (200): {stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// examples/k8s/deployment.yaml, read with a few lines of line-based YAML

/// The block scalar under `key: |`: the following lines indented deeper than the key,
/// with that indentation removed.
fn block_scalar(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let key_line = lines
        .next()
        .unwrap_or_else(|| panic!("no `{key}: |` in the manifest"));
    let key_indent = key_line.len() - key_line.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > key_indent)
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .expect("the block is not empty");
    body.iter()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
        + "\n"
}

/// The value of the first `key:` at or after the first line whose trimmed text is
/// `after` (a comment and quotes removed).
fn value_after(yaml: &str, after: &str, key: &str) -> String {
    let prefix = format!("{key}:");
    let value = yaml
        .lines()
        .skip_while(|l| l.trim() != after)
        .find_map(|l| {
            l.trim()
                .trim_start_matches("- ")
                .strip_prefix(prefix.as_str())
        })
        .unwrap_or_else(|| panic!("no `{key}:` after `{after}` in the manifest"));
    let value = value.split(" #").next().unwrap_or_default().trim();
    value.trim_matches('"').to_string()
}

/// A flow sequence of strings, `["a", "b"]`, which is also JSON.
fn string_list(value: &str) -> Vec<String> {
    serde_json::from_str(value).unwrap_or_else(|e| panic!("{value:?} is not a list: {e}"))
}

/// `GET path` on 127.0.0.1:port, as the kubelet's httpGet probe does: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// The Deployment: graceinit as ENTRYPOINT, its config from the ConfigMap (mounted where
/// GRACEINIT_CONFIG points), a grace period that covers the config's as `graceinit
/// check` computes it, and probes and a preStop hook that a graceinit running this very
/// config answers: /readyz and /livez 200 while it runs, `graceinit drain` exits 0 once
/// the pre_stop hooks are done (/readyz 503 from then on, the app still running), and
/// the kubelet's SIGTERM then stops the app.
#[test]
fn k8s_deployment_example_is_consistent_with_the_config_graceinit_checks_and_serves() {
    let path = crate_dir().join("examples/k8s/deployment.yaml");
    let yaml = std::fs::read_to_string(&path).expect("examples/k8s/deployment.yaml");
    assert!(yaml.contains("\nkind: ConfigMap\n") && yaml.contains("\nkind: Deployment\n"));

    // graceinit is the entrypoint, and finds the ConfigMap's file.
    assert_eq!(
        string_list(&value_after(&yaml, "containers:", "command")),
        ["/graceinit", "--"]
    );
    let config_path = value_after(&yaml, "- name: GRACEINIT_CONFIG", "value");
    let mount = value_after(&yaml, "volumeMounts:", "mountPath");
    assert_eq!(config_path, format!("{mount}/graceinit.toml"));
    assert_eq!(
        value_after(&yaml, "configMap:", "name"),
        value_after(&yaml, "kind: ConfigMap", "name"),
        "the volume is the ConfigMap"
    );

    // `graceinit check` on the ConfigMap's config, and the grace periods.
    let dir = TempDir::new("k8s-deployment");
    let config = dir.write("graceinit.toml", &block_scalar(&yaml, "graceinit.toml"));
    let (code, stdout, stderr) = run(&["check", &config], &[], Duration::from_secs(10));
    assert_eq!(code, 0, "graceinit check: {stderr}");
    assert!(
        stdout.contains("fits, with") && !stdout.contains("DOES NOT FIT"),
        "{stdout}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    let needed: u64 = stdout
        .split("terminationGracePeriodSeconds must be at least ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("check prints the grace period Kubernetes needs:\n{stdout}"));
    let grace_period: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("grace_period"))
        .and_then(|rest| rest.trim().strip_suffix('s'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("check prints grace_period:\n{stdout}"));
    assert_eq!(needed, grace_period, "{stdout}");
    let declared: u64 = value_after(&yaml, "spec:", "terminationGracePeriodSeconds")
        .parse()
        .expect("terminationGracePeriodSeconds is a number");
    assert!(
        declared >= grace_period,
        "terminationGracePeriodSeconds {declared} < the config's grace_period {grace_period}s"
    );

    // The probes are on graceinit's port and paths, the preStop hook is `graceinit drain`.
    let readiness = value_after(&yaml, "readinessProbe:", "path");
    let liveness = value_after(&yaml, "livenessProbe:", "path");
    assert_eq!(
        (readiness.as_str(), liveness.as_str()),
        ("/readyz", "/livez")
    );
    let health_port = value_after(&yaml, "- name: health", "containerPort");
    let listen = block_scalar(&yaml, "graceinit.toml")
        .lines()
        .skip_while(|l| l.trim() != "[http]")
        .find_map(|l| l.trim().strip_prefix("listen = "))
        .and_then(|v| v.split(" #").next())
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("the config's [http] listen");
    assert_eq!(listen, format!("0.0.0.0:{health_port}"));
    assert_eq!(value_after(&yaml, "readinessProbe:", "port"), "health");
    assert_eq!(value_after(&yaml, "livenessProbe:", "port"), "health");
    let pre_stop = string_list(&value_after(&yaml, "preStop:", "command"));
    assert_eq!(pre_stop, ["/graceinit", "drain"]);

    // A graceinit on this config answers them (on loopback and a free port instead of
    // 0.0.0.0:8081; its control socket named, since it is not PID 1 here).
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let socket = dir.file("graceinit.sock");
    let env = [
        ("GRACEINIT_CONFIG", config.as_str()),
        ("GRACEINIT_LISTEN", listen.as_str()),
        ("GRACEINIT_SOCKET", socket.as_str()),
    ];
    let s = Scenario::new("k8s");
    let app = s.app_recording_term(143);
    let mut graceinit = Graceinit::start(&["--", "sh", "-c", &app], &env);
    wait_until(Duration::from_secs(10), "the app to be ready", || {
        s.join("ready").exists()
    });
    wait_until(Duration::from_secs(10), "/readyz 200", || {
        http_get(port, &readiness).0 == 200
    });
    assert_eq!(http_get(port, &liveness), (200, "ok".to_string()));

    let pre_stop_args: Vec<&str> = pre_stop[1..].iter().map(String::as_str).collect();
    let (code, stdout, stderr) = run(&pre_stop_args, &env, Duration::from_secs(20));
    assert_eq!(
        code, 0,
        "the preStop command: stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        s.events().is_empty(),
        "the app still runs after the preStop hook"
    );
    assert_eq!(http_get(port, &readiness).0, 503, "not ready once draining");
    assert_eq!(http_get(port, &liveness).0, 200, "alive while draining");

    graceinit.drain();
    graceinit.finish(0, "the app's 143 is remapped to 0");
    s.term_once();
}
