#!/usr/bin/env python3
"""One run of the zero-drop benchmark (bench/zero-drop.sh runs it many times).

    zd_run.py --init tini|dumb-init|graceinit --app naive|graceful [--k8s [--unchecked]]
              [--pre-stop sleep|quiet] --work DIR [--graceinit PATH] [--tini PATH]
              [--dumb-init PATH]

Two replicas of bench/zd_app.py, each in a network and a PID namespace of its own, as a
pod (`unshare --net --pid --fork --mount-proc`; PID 1 is the init under test), reached
through a veth pair (host side `zd<pid>a` 10.211.N.1/30, replica side `eth0`
10.211.N.2/30, loopback up) by HAProxy in the host's namespace (retries 0, no redispatch,
checks inter 1s fall 2 rise 2). The veths go with their namespaces (PID 1's end ends the
namespace); any left after a run are deleted, and the run fails if one cannot be. A route
`unreachable 10.211.N.0/30 metric 4211` (under the veth's own) keeps what HAProxy sends to
a replica whose namespace is gone on this machine (refused: "No route to host", as a
deleted pod's address), not off to the default gateway; it is deleted at the end. Each
undo command is written to WORK/undo-net first (zero-drop.sh runs them if this run dies
before its own cleanup). An open-loop
client sends request i at start + i/rate over keep-alive connections, without retries,
and records every request. At --trigger-at seconds replica A's PID 1 gets SIGTERM, as
the kubelet sends it, and SIGKILL --grace seconds later if it still runs. With --k8s,
replica A is also taken out of HAProxy through its runtime API (`set server be/a state
maint`) --endpoint-delay seconds after the trigger, as the endpoints controller does.
With --unchecked as well, HAProxy does not health-check replica A at all (kube-proxy does
not probe): only that removal stops its traffic. graceinit's pre_stop hook is
`sleep = "--pre-stop-sleep s"` (--pre-stop sleep, the default) or
`wait_quiet = { ports = [A's app port], quiet = "--quiet s", max = "--quiet-max s" }`
(--pre-stop quiet); the latter's `wait_quiet over:` log line, and graceinit's
DrainFinished line (its connections report), are in the summary.

Prints one JSON object on stdout: requests sent, failed and how, the time from the
trigger to the app's exit, the init's exit status. Progress and errors go to stderr.
"""

import argparse
import asyncio
import ctypes
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(f"    {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def http_ok(host, port, path):
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := s.recv(4096):  # to the end, so the server never writes to a closed socket
                answer += chunk
            return answer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))
    except OSError:
        return False


def die_with_me(sig):
    """A preexec_fn: the child gets `sig` when this process dies, even of SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1

    def preexec():
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            os._exit(127)
    return preexec


def ip(*argv, netns_of=None):
    """Runs `ip ARGV` (in the network namespace of process netns_of, through nsenter)."""
    cmd = ["ip", *argv]
    if netns_of is not None:
        cmd = ["nsenter", f"--net=/proc/{netns_of}/ns/net", "--"] + cmd
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def link_exists(name):
    return os.path.exists(f"/sys/class/net/{name}")


def free_subnets(count):
    """`count` subnets 10.211.N.0/30 that no route on this machine overlaps."""
    taken = []
    for line in ip("-4", "-o", "route", "show", "table", "all").splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("default", "broadcast", "local", "unreachable", "blackhole", "prohibit"):
            word = line.split()[1] if len(line.split()) > 1 else ""
        try:
            taken.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            pass
    taken = [n for n in taken if n.prefixlen > 0]  # not the default route
    found = []
    for n in range(1, 255):
        net = ipaddress.ip_network(f"10.211.{n}.0/30")
        if not any(net.overlaps(t) for t in taken):
            found.append(n)
            if len(found) == count:
                return found
    raise RuntimeError("no free 10.211.N.0/30 subnet for the replicas' veths")


# The metric of the unreachable route under each replica's subnet.
UNREACHABLE_METRIC = "4211"


def undo_later(work, *argv):
    """Records `ip ARGV` in WORK/undo-net, for zero-drop.sh if this run dies first."""
    with open(os.path.join(work, "undo-net"), "a") as f:
        f.write(" ".join(argv) + "\n")


# In its own network namespace each replica has the same ports, as every pod does.
APP_PORT = 8080
HEALTH_PORT = 8081  # graceinit's [http] listen


class Replica:
    def __init__(self, name, subnet, args):
        self.name = name
        # The veth pair: the host's end (a name no one else uses: this process's pid) and
        # the replica's, `eth0` in its namespace.
        self.host_if = f"zd{os.getpid()}{name}"
        self.subnet = f"10.211.{subnet}.0/30"
        self.host_addr = f"10.211.{subnet}.1"
        self.addr = f"10.211.{subnet}.2"
        self.unreachable = ["unreachable", self.subnet, "metric", UNREACHABLE_METRIC]
        self.route_added = False
        self.unshare = None
        self.app_port = APP_PORT
        self.health_port = HEALTH_PORT if args.init == "graceinit" else self.app_port
        self.health_path = "/readyz" if args.init == "graceinit" else "/healthz"
        app = [sys.executable, os.path.join(HERE, "zd_app.py"), "--host", "0.0.0.0",
               "--port", str(self.app_port), "--mode", args.app, "--work-ms", str(args.work_ms)]
        if args.init == "tini":
            init = [args.tini, "--"]
        elif args.init == "dumb-init":
            init = [args.dumb_init]
        else:
            config = os.path.join(args.work, f"graceinit-{name}.toml")
            if args.pre_stop == "quiet":
                hook = (f'wait_quiet = {{ ports = [{self.app_port}], quiet = "{args.quiet:g}s", '
                        f'max = "{args.quiet_max:g}s" }}')
            else:
                hook = f'sleep = "{args.pre_stop_sleep:g}s"'
            # At info (for the random-delay variants) graceinit logs its hooks and the
            # `wait_quiet over:` line, kept in the run's summary.
            log_level = '\n[log]\nlevel = "info"\n' if args.unchecked else ""
            with open(config, "w") as f:
                f.write(f"""[app]
grace_period = "{args.grace:g}s"
stop_timeout = "{args.stop_timeout:g}s"

[control]
socket = "{args.work}/graceinit-{name}.sock"

[http]
listen = "0.0.0.0:{self.health_port}"
{log_level}
[[hooks.pre_stop]]
{hook}
""")
            init = [args.graceinit, "--config", config, "--"]
        self.stderr_path = os.path.join(args.work, f"{name}.stderr")
        self.stderr = open(self.stderr_path, "w")
        if link_exists(self.host_if):
            raise RuntimeError(f"a link named {self.host_if} exists already")
        undo_later(args.work, "route", "del", *self.unreachable)
        undo_later(args.work, "link", "del", self.host_if)
        ip("route", "add", *self.unreachable)
        self.route_added = True
        # PID 1 of the new namespaces is first a shell that waits for its network (a line
        # on stdin), then execs the init (same pid): the init starts with eth0 up. Should
        # this process die without its cleanup (SIGKILL), unshare dies with it and takes
        # PID 1, so the namespace and its veth, with it (--kill-child).
        self.unshare = subprocess.Popen(
            ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child",
             "sh", "-c", 'read -r go && exec "$@" </dev/null', "sh"] + init + app,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.stderr,
            start_new_session=True, preexec_fn=die_with_me(signal.SIGKILL))
        self.init_pid = None
        self.net_ready = False

    def setup_network(self):
        """The veth pair between the host and the replica's namespace, then the go."""
        name = self.name
        ours = os.readlink("/proc/self/ns/net")

        def pid1_in_own_netns():
            pid = (children(self.unshare.pid) or [0])[0]
            try:
                return pid if pid and os.readlink(f"/proc/{pid}/ns/net") != ours else 0
            except OSError:
                return 0
        pid1 = wait_until(f"{name}'s PID 1 in a network namespace of its own", pid1_in_own_netns, 5)
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", "eth0", "netns", str(pid1))
        ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("link", "set", "lo", "up", netns_of=pid1)
        ip("addr", "add", f"{self.addr}/30", "dev", "eth0", netns_of=pid1)
        ip("link", "set", "eth0", "up", netns_of=pid1)
        self.unshare.stdin.write(b"go\n")
        self.unshare.stdin.close()
        self.net_ready = True

    def wait_ready(self):
        name = self.name
        self.init_pid = wait_until(f"{name}'s init", lambda: (children(self.unshare.pid) or [0])[0], 5)
        self.app_pid = wait_until(f"{name}'s app", self.find_app, 5)
        wait_until(f"{name}'s app on {self.addr}:{self.app_port}",
                   lambda: http_ok(self.addr, self.app_port, "/healthz"), 10)
        wait_until(f"{name}'s {self.health_path}",
                   lambda: http_ok(self.addr, self.health_port, self.health_path), 10)
        self.app_fd = os.pidfd_open(self.app_pid)

    def find_app(self):
        for pid in children(self.init_pid):
            if any(b"zd_app.py" in word for word in cmdline(pid)):
                return pid
        return None

    def stop(self):
        if self.unshare is not None and self.unshare.poll() is None:
            # SIGKILL to PID 1 ends the whole namespace; unshare then exits.
            pid = self.init_pid or (children(self.unshare.pid) or [None])[0]
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.unshare.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.unshare.pid, signal.SIGKILL)
                self.unshare.wait()
        # The namespace is gone with its last process, and its veth pair with it (the
        # kernel frees it a moment later); a pair still here (the namespace never got its
        # end, or is slow to go) is deleted.
        deadline = time.monotonic() + 3
        while link_exists(self.host_if) and time.monotonic() < deadline:
            time.sleep(0.02)
        if link_exists(self.host_if):
            log(f"{self.host_if} outlived {self.name}'s namespace: deleting it")
            try:
                ip("link", "del", self.host_if)
            except RuntimeError as e:
                if link_exists(self.host_if):
                    raise
                log(f"({e})")
        if self.route_added:
            ip("route", "del", *self.unreachable)
            self.route_added = False


def wait_quiet_line(path):
    """graceinit's `wait_quiet over:` line in replica A's log, and its fields."""
    with open(path, errors="replace") as f:
        lines = [line.rstrip("\n") for line in f if "wait_quiet over:" in line]
    if not lines:
        return None
    line = re.sub(r"\x1b\[[0-9;]*m", "", lines[-1])
    found = {"line": line, "why": line.split("wait_quiet over:", 1)[1].split(" arrivals=")[0].strip()}
    for key, value in re.findall(r"\b(arrivals|open|waited|since_last_arrival)=(\S+)", line):
        found[key] = value
    return found


def drain_report(path):
    """graceinit's DrainFinished line in replica A's log (with its connections report)."""
    with open(path, errors="replace") as f:
        lines = [line.rstrip("\n") for line in f if "DrainFinished:" in line]
    if not lines:
        return None
    line = re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]).split("DrainFinished:", 1)[1]
    return re.sub(r"\s+reason=DrainFinished\s*$", "", line).strip()


def haproxy_cmd(sock, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(sock)
        s.sendall(command.encode() + b"\n")
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return out.decode()
            out += chunk


def servers_up(sock):
    # `show servers state be`: field 6 is srv_op_state, 2 = running (UP).
    lines = [line.split() for line in haproxy_cmd(sock, "show servers state be").splitlines()]
    states = {f[3]: f[5] for f in lines if len(f) > 6 and f[1] == "be"}
    return states.get("a") == "2" and states.get("b") == "2"


# ------------------------------------------------------------------------------------
# The open-loop client


class Client:
    def __init__(self, port, rate, duration, timeout):
        self.port = port
        self.rate = rate
        self.duration = duration
        self.timeout = timeout
        self.idle = []
        self.records = []
        self.connections = 0

    async def connection(self):
        while self.idle:
            reader, writer = self.idle.pop()
            if not reader.at_eof():
                return reader, writer
            writer.close()
        self.connections += 1
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def one(self, i, start):
        loop = asyncio.get_running_loop()
        sent = loop.time() - start
        status, error = None, None
        writer = None
        try:
            async def exchange():
                nonlocal writer
                reader, writer = await self.connection()
                writer.write(f"GET /work?i={i} HTTP/1.1\r\nHost: zd\r\n\r\n".encode())
                await writer.drain()
                line = await reader.readline()
                if not line:
                    raise ConnectionError("closed before an answer")
                code = int(line.split()[1])
                length, close = 0, False
                while True:
                    header = await reader.readline()
                    if not header:
                        raise ConnectionError("closed in the headers")
                    if header in (b"\r\n", b"\n"):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "connection" and "close" in value.lower():
                        close = True
                await reader.readexactly(length)
                return code, close, reader
            status, close, reader = await asyncio.wait_for(exchange(), self.timeout)
            if close:
                writer.close()
            else:
                self.idle.append((reader, writer))
        except asyncio.TimeoutError:
            error = "timeout"
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            error = type(e).__name__
        if error and writer is not None:
            writer.close()
        self.records.append({"i": i, "t": round(sent, 4),
                             "latency": round(loop.time() - start - sent, 4),
                             "status": status, "error": error})

    async def run(self, on_start):
        loop = asyncio.get_running_loop()
        start = loop.time()
        on_start(start)
        tasks = []
        total = int(self.rate * self.duration)
        for i in range(total):
            delay = start + i / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.one(i, start)))
        await asyncio.gather(*tasks)
        return start


# ------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--init", choices=["tini", "dumb-init", "graceinit"], required=True)
    p.add_argument("--app", choices=["naive", "graceful"], required=True)
    p.add_argument("--k8s", action="store_true")
    p.add_argument("--unchecked", action="store_true",
                   help="no health check of replica A: only the removal (--k8s) stops its traffic")
    p.add_argument("--pre-stop", choices=["sleep", "quiet"], default="sleep")
    p.add_argument("--quiet", type=float, default=2)
    p.add_argument("--quiet-max", type=float, default=30)
    p.add_argument("--label", default=None, help="the variant's name, copied to the summary")
    p.add_argument("--work", required=True)
    p.add_argument("--graceinit", default="graceinit")
    p.add_argument("--tini", default="/usr/bin/tini")
    p.add_argument("--dumb-init", default="/usr/bin/dumb-init")
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--trigger-at", type=float, default=4)
    p.add_argument("--grace", type=float, default=8)
    p.add_argument("--stop-timeout", type=float, default=3)
    p.add_argument("--pre-stop-sleep", type=float, default=3)
    p.add_argument("--endpoint-delay", type=float, default=1)
    p.add_argument("--work-ms", type=float, default=20)
    p.add_argument("--request-timeout", type=float, default=5)
    args = p.parse_args()
    if args.unchecked and not args.k8s:
        p.error("--unchecked needs --k8s: nothing would ever stop replica A's traffic")
    os.makedirs(args.work, exist_ok=True)
    # zero-drop.sh stops a run with SIGTERM (Ctrl-C): end it through the finally below,
    # which kills the replicas and HAProxy (they run in sessions of their own).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    replicas, haproxy = [], None
    try:
        for name, subnet in zip(("a", "b"), free_subnets(2)):
            replicas.append(Replica(name, subnet, args))
        for r in replicas:
            r.setup_network()
        for r in replicas:
            r.wait_ready()
        a = replicas[0]
        front = free_port()
        stats = os.path.join(args.work, "haproxy.sock")
        cfg = os.path.join(args.work, "haproxy.cfg")
        # With --unchecked, replica A has no `check`: HAProxy keeps sending to it until
        # it is put in maint, whatever its readiness (graceinit's /readyz) says.
        servers = "\n".join(
            f"  server {r.name} {r.addr}:{r.app_port}"
            + ("" if args.unchecked and r is a else f" check port {r.health_port}") for r in replicas)
        with open(cfg, "w") as f:
            f.write(f"""global
  stats socket {stats} mode 600 level admin
  maxconn 2000

defaults
  mode http
  retries 0
  # no "option redispatch": kube-proxy cannot resend a refused request
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s

frontend fe
  bind 127.0.0.1:{front}
  default_backend be

backend be
  balance roundrobin
  option httpchk
  http-check send meth GET uri {a.health_path} ver HTTP/1.1 hdr Host zd
  default-server inter 1s fall 2 rise 2
{servers}
""")
        haproxy = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL,
                                   stderr=open(os.path.join(args.work, "haproxy.log"), "w"),
                                   start_new_session=True, preexec_fn=die_with_me(signal.SIGTERM))
        wait_until("HAProxy's stats socket", lambda: os.path.exists(stats), 10)
        wait_until("both servers UP in HAProxy", lambda: servers_up(stats), 10)
        wait_until("HAProxy to answer", lambda: http_ok("127.0.0.1", front, "/work"), 10)

        client = Client(front, args.rate, args.duration, args.request_timeout)
        result = {"trigger": None, "app_exit": None, "killed": False, "maint": None}

        async def kubelet(start_box):
            loop = asyncio.get_running_loop()
            while not start_box:
                await asyncio.sleep(0.001)
            start = start_box[0]
            await asyncio.sleep(max(0, start + args.trigger_at - loop.time()))
            os.kill(a.init_pid, signal.SIGTERM)
            t0 = loop.time()
            result["trigger"] = round(t0 - start, 4)
            app_exited = asyncio.Event()

            def on_app_exit():
                if result["app_exit"] is None:
                    result["app_exit"] = round(loop.time() - t0, 4)
                    loop.remove_reader(a.app_fd)
                    app_exited.set()
            loop.add_reader(a.app_fd, on_app_exit)

            async def endpoints():
                await asyncio.sleep(args.endpoint_delay)
                out = await loop.run_in_executor(None, haproxy_cmd, stats, "set server be/a state maint")
                result["maint"] = round(loop.time() - t0, 4)
                if out.strip():
                    log(f"haproxy said: {out.strip()}")
            ep = asyncio.ensure_future(endpoints()) if args.k8s else None
            # The kubelet: SIGKILL at the end of the grace period if PID 1 still runs.
            deadline = t0 + args.grace
            while a.unshare.poll() is None and loop.time() < deadline:
                await asyncio.sleep(0.01)
            if a.unshare.poll() is None:
                os.kill(a.init_pid, signal.SIGKILL)
                result["killed"] = True
            await asyncio.wait_for(app_exited.wait(), 5)
            while a.unshare.poll() is None:
                await asyncio.sleep(0.01)
            result["init_exit_at"] = round(loop.time() - t0, 4)
            if ep:
                await ep

        async def both():
            start_box = []
            k = asyncio.ensure_future(kubelet(start_box))
            await client.run(start_box.append)
            await k

        asyncio.run(both())
        code = a.unshare.returncode
        init_status = code if code >= 0 else 128 - code
        records = client.records
        failed = [r for r in records if r["error"] or not (200 <= r["status"] < 300)]
        kinds = {}
        for r in failed:
            key = r["error"] or str(r["status"])
            kinds[key] = kinds.get(key, 0) + 1
        trig = result["trigger"]
        summary = {
            "variant": args.label or f"{args.init}:{args.app}" + (":k8s" if args.k8s else ""),
            "init": args.init, "app": args.app, "k8s": args.k8s, "unchecked": args.unchecked,
            "pre_stop": (f"wait_quiet quiet {args.quiet:g}s max {args.quiet_max:g}s"
                         if args.pre_stop == "quiet" else f"sleep {args.pre_stop_sleep:g}s")
            if args.init == "graceinit" else None,
            "delay": args.endpoint_delay if args.k8s else None,
            "sent": len(records), "failed": len(failed), "kinds": kinds,
            "first_failure": round(min(r["t"] for r in failed) - trig, 3) if failed else None,
            "last_failure": round(max(r["t"] for r in failed) - trig, 3) if failed else None,
            "app_exit": result["app_exit"], "init_exit_at": result["init_exit_at"],
            "init_status": init_status, "sigkill": result["killed"], "maint": result["maint"],
            "connections": client.connections,
            "wait_quiet": wait_quiet_line(a.stderr_path)
            if args.init == "graceinit" and args.pre_stop == "quiet" else None,
            "drain_report": drain_report(a.stderr_path) if args.init == "graceinit" else None,
            "replica_a": f"{a.addr} (netns, veth {a.host_if})",
            "p99_ms": round(sorted(r["latency"] for r in records)[int(0.99 * len(records)) - 1] * 1000, 1),
        }
        with open(os.path.join(args.work, "requests.json"), "w") as f:
            json.dump(records, f)
        print(json.dumps(summary), flush=True)
    finally:
        failures = []
        for r in replicas:
            try:
                r.stop()
            except Exception as e:  # the other replica and HAProxy are still stopped
                failures.append(e)
        if haproxy is not None and haproxy.poll() is None:
            haproxy.terminate()
            try:
                haproxy.wait(5)
            except subprocess.TimeoutExpired:
                haproxy.kill()
                haproxy.wait()
        if failures:
            raise failures[0]
        # Everything recorded is undone: nothing for zero-drop.sh to do.
        if all(not r.route_added and not link_exists(r.host_if) for r in replicas):
            try:
                os.remove(os.path.join(args.work, "undo-net"))
            except FileNotFoundError:
                pass


if __name__ == "__main__":
    main()
