#!/usr/bin/env bash
# The zero-drop benchmark: requests lost while one of two replicas behind HAProxy is
# terminated as the kubelet does it, with tini, dumb-init and graceinit as each replica's
# PID 1. Not run by CI (it takes minutes and measures timing): run it by hand.
#
#   bash bench/zero-drop.sh      (from the repository root, as root; about 7-8 minutes)
#
# It installs what is missing (apt: haproxy tini dumb-init util-linux iproute2 python3),
# builds the static release binary, and prints a Markdown report on stdout (progress on
# stderr). One run is bench/zd_run.py (replicas of bench/zd_app.py, HAProxy, the open-loop
# client, the kubelet's SIGTERM/SIGKILL); see bench/README.md, "The zero-drop benchmark".
# Each replica runs in a network namespace of its own, as a pod, behind a veth pair
# (host side zd<pid>a / zd<pid>b, 10.211.N.1/30; replica side eth0, 10.211.N.2/30), and a
# route `unreachable 10.211.N.0/30 metric 4211` on the host while the run lasts, so that
# nothing sent to a replica that is gone leaves the machine.
#
# Two sets of variants:
# - classic: naive / graceful apps, HAProxy health-checking every replica, and "+ removed"
#   (`state maint` ZD_ENDPOINT_DELAY after the SIGTERM);
# - random: replica A is not health-checked (kube-proxy does not probe) and is put in
#   maint after a random delay between ZD_DELAY_MIN and ZD_DELAY_MAX seconds (1-8), drawn
#   per run from a seeded RNG (ZD_SEED): run i of every variant uses draw i. Variants
#   "graceinit:graceful:sleepN" (pre_stop sleep = "Ns"), "graceinit:graceful:quietN"
#   (pre_stop wait_quiet on A's app port, quiet = "Ns", max = "30s") and
#   "INIT:graceful:random" (tini, dumb-init: the reference, no drain).
#
# Knobs (environment): GRACEINIT=path (skip the build and use that binary), ZD_SET
# (classic, random or all: the default), ZD_RUNS (runs per variant: 3 classic, 5 random),
# ZD_VARIANTS (the variants, "INIT:APP[:k8s|random|sleepN|quietN]" separated by spaces,
# instead of ZD_SET's), ZD_RATE (200 req/s), ZD_DURATION (15 s; random: ZD_RANDOM_DURATION,
# ZD_TRIGGER_AT + ZD_DELAY_MAX + 12 s), ZD_TRIGGER_AT (4 s), ZD_GRACE (8 s: SIGTERM ->
# SIGKILL; random: ZD_RANDOM_GRACE, 30 s), ZD_PRE_STOP_SLEEP (3 s), ZD_ENDPOINT_DELAY (1 s:
# SIGTERM -> `state maint`), ZD_SEED (13), ZD_DELAY_MIN (1), ZD_DELAY_MAX (8), ZD_WORK_MS
# (20 ms of work per request).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SET=${ZD_SET:-all}
CLASSIC="tini:naive dumb-init:naive graceinit:naive tini:graceful dumb-init:graceful graceinit:graceful tini:graceful:k8s dumb-init:graceful:k8s graceinit:graceful:k8s"
RANDOM_SET="tini:graceful:random dumb-init:graceful:random graceinit:graceful:sleep10 graceinit:graceful:quiet2"
case $SET in
  all) DEFAULT_VARIANTS="$CLASSIC $RANDOM_SET" ;;
  classic) DEFAULT_VARIANTS=$CLASSIC ;;
  random) DEFAULT_VARIANTS=$RANDOM_SET ;;
  *) printf 'zero-drop: ZD_SET=%s: classic, random or all\n' "$SET" >&2; exit 2 ;;
esac
VARIANTS=${ZD_VARIANTS:-$DEFAULT_VARIANTS}
RATE=${ZD_RATE:-200}
DURATION=${ZD_DURATION:-15}
TRIGGER_AT=${ZD_TRIGGER_AT:-4}
GRACE=${ZD_GRACE:-8}
PRE_STOP_SLEEP=${ZD_PRE_STOP_SLEEP:-3}
ENDPOINT_DELAY=${ZD_ENDPOINT_DELAY:-1}
WORK_MS=${ZD_WORK_MS:-20}
SEED=${ZD_SEED:-13}
DELAY_MIN=${ZD_DELAY_MIN:-1}
DELAY_MAX=${ZD_DELAY_MAX:-8}
# The client still sends when the slowest random variant's app exits (the 10 s sleep
# after the trigger, or a wait_quiet that ends DELAY_MAX + quiet after it), with room.
RANDOM_DURATION=${ZD_RANDOM_DURATION:-$((TRIGGER_AT + DELAY_MAX + 12))}
# Long enough that SIGKILL never cuts a pre_stop wait (wait_quiet's max is 30 s; the
# drain's deadline, grace - stop_timeout, cuts it first).
RANDOM_GRACE=${ZD_RANDOM_GRACE:-30}
T_START=$SECONDS

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'zero-drop: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d /tmp/graceinit-zero-drop.XXXXXX)
CURRENT=
# What a run recorded before making it (its veths, its unreachable routes) and had not
# undone itself (it deletes the file once it has): for a run that died first.
undo_net() {
  [[ -f $WORK/run/undo-net ]] || return 0
  while read -r -a undo; do
    [[ ${undo[0]} == link && ! -e /sys/class/net/${undo[2]} ]] && continue
    ip "${undo[@]}" 2>/dev/null || true
  done <"$WORK/run/undo-net"
  rm -f "$WORK/run/undo-net"
}
cleanup() {
  # zd_run.py kills its replicas and HAProxy itself, and their veths go with their
  # namespaces; this is for Ctrl-C.
  if [[ -n $CURRENT ]]; then kill -TERM "$CURRENT" 2>/dev/null || true; wait "$CURRENT" 2>/dev/null || true; fi
  undo_net
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SUDO=()
((EUID == 0)) || SUDO=(sudo)
need=()
command -v haproxy >/dev/null || need+=(haproxy)
[[ -x /usr/bin/tini ]] || need+=(tini)
[[ -x /usr/bin/dumb-init ]] || need+=(dumb-init)
command -v unshare >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
[[ -x /usr/bin/python3 ]] || need+=(python3)
if [[ -z ${GRACEINIT:-} ]]; then command -v musl-gcc >/dev/null || need+=(musl-tools); fi
if ((${#need[@]})); then
  say "installing ${need[*]}"
  "${SUDO[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${need[@]}" >&2 ||
    die "apt-get install ${need[*]} failed"
fi
# Debian's python3 (the stdlib is all the client and the app need).
PYTHON=/usr/bin/python3

TARGET=x86_64-unknown-linux-musl
if [[ -n ${GRACEINIT:-} ]]; then
  G=$(realpath "$GRACEINIT")
  [[ -x $G ]] || die "GRACEINIT=$GRACEINIT is not executable"
else
  command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET" >&2 || die "rustup target add $TARGET failed"
  fi
  say "cargo build --release --target $TARGET"
  cargo build --release --target "$TARGET" >&2 2>"$WORK/build.log" ||
    { cat "$WORK/build.log" >&2; die "the release build failed"; }
  G=${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/graceinit
fi

RESULTS=$WORK/results.jsonl
: >"$RESULTS"
read -r -a variants <<<"$VARIANTS"
classic=() random=()
for v in "${variants[@]}"; do
  IFS=: read -r init app kind <<<"$v"
  [[ $init =~ ^(tini|dumb-init|graceinit)$ && $app =~ ^(naive|graceful)$ ]] || die "variant $v: INIT:APP[:KIND]"
  case ${kind:-} in
    "" | k8s) classic+=("$v") ;;
    random) random+=("$v") ;;
    sleep[0-9]* | quiet[0-9]*)
      n=${kind#sleep} n=${n#quiet}
      [[ $init == graceinit && $n =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "variant $v: sleepN / quietN are graceinit's, N in seconds"
      random+=("$v") ;;
    *) die "variant $v: the third field is k8s, random, sleepN or quietN" ;;
  esac
done
CLASSIC_RUNS=${ZD_RUNS:-3}
RANDOM_RUNS=${ZD_RUNS:-5}
# The random set's endpoint delays: draw i for run i of every variant.
DELAYS=()
if ((${#random[@]})); then
  read -r -a DELAYS <<<"$("$PYTHON" -c '
import random, sys
seed, runs, low, high = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rng = random.Random(seed)
print(" ".join(f"{rng.uniform(low, high):.2f}" for _ in range(runs)))
' "$SEED" "$RANDOM_RUNS" "$DELAY_MIN" "$DELAY_MAX")"
  say "seed $SEED: endpoint delays ${DELAYS[*]} s"
fi
ROUNDS=0
((${#classic[@]})) && ROUNDS=$CLASSIC_RUNS
((${#random[@]} && RANDOM_RUNS > ROUNDS)) && ROUNDS=$RANDOM_RUNS
# Rounds, the variants taking turns in each, so that a burst of other load on the
# machine does not land on one variant only.
for round in $(seq "$ROUNDS"); do
  for v in "${variants[@]}"; do
    IFS=: read -r init app kind <<<"$v"
    flags=(--label "$v")
    duration=$DURATION grace=$GRACE delay=$ENDPOINT_DELAY sleep=$PRE_STOP_SLEEP
    case ${kind:-} in
      "" | k8s)
        ((round <= CLASSIC_RUNS)) || continue
        [[ ${kind:-} == k8s ]] && flags+=(--k8s) ;;
      *)
        ((round <= RANDOM_RUNS)) || continue
        flags+=(--k8s --unchecked)
        duration=$RANDOM_DURATION grace=$RANDOM_GRACE delay=${DELAYS[round - 1]}
        case $kind in
          sleep*) sleep=${kind#sleep} ;;
          quiet*) flags+=(--pre-stop quiet --quiet "${kind#quiet}" --quiet-max 30) ;;
        esac ;;
    esac
    say "round $round/$ROUNDS: $v ($((SECONDS - T_START)) s so far)"
    rm -rf "$WORK/run"
    "$PYTHON" "$ROOT/bench/zd_run.py" --init "$init" --app "$app" "${flags[@]}" \
      --work "$WORK/run" --graceinit "$G" --rate "$RATE" --duration "$duration" \
      --trigger-at "$TRIGGER_AT" --grace "$grace" --pre-stop-sleep "$sleep" \
      --endpoint-delay "$delay" --work-ms "$WORK_MS" >"$WORK/out" &
    CURRENT=$!
    status=0
    wait "$CURRENT" || status=$?
    CURRENT=
    if ((status != 0)); then
      undo_net
      for f in "$WORK"/run/*.stderr "$WORK"/run/haproxy.log; do
        [[ -s $f ]] && { printf -- '--- %s\n' "$f" >&2; tail -n 20 "$f" >&2; }
      done
      die "run $v failed (exit $status)"
    fi
    cat "$WORK/out" >>"$RESULTS"
    cat "$WORK/out" >&2
  done
done

say "done in $((SECONDS - T_START)) s"
TOOK=$((SECONDS - T_START))
HAPROXY_VERSION=$(haproxy -v | awk 'NR == 1 { print $3 }')
TINI_VERSION=$(/usr/bin/tini --version | awk '{ print $3 }')
DUMB_INIT_VERSION=$(/usr/bin/dumb-init --version 2>&1 | awk '{ print $2 }')
GRACEINIT_VERSION=$("$G" --version | head -n 1)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)

cat <<EOF
## Zero requests lost

$(date -u '+%Y-%m-%d %H:%M UTC'); $(uname -sr), $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)),
load $(cut -d' ' -f1-3 /proc/loadavg) at the end; the script took ${TOOK} s.
$GRACEINIT_VERSION (commit $COMMIT, $TARGET release), tini $TINI_VERSION, dumb-init $DUMB_INIT_VERSION,
HAProxy $HAPROXY_VERSION, Python $("$PYTHON" -c 'import platform; print(platform.python_version())') (client and app).
EOF
if ((${#classic[@]})); then
  cat <<EOF

$RATE req/s for ${DURATION}s (open loop, keep-alive, no retries), ${WORK_MS} ms of work per request,
SIGTERM to replica A's PID 1 at ${TRIGGER_AT}s, SIGKILL ${GRACE}s later if it still runs;
each replica in a network and a PID namespace of its own, as a pod (veth to the host);
HAProxy: \`retries 0\`, no \`option redispatch\`, checks \`inter 1s fall 2 rise 2\`;
graceinit: pre_stop \`sleep = "${PRE_STOP_SLEEP}s"\`, checked on \`/readyz\`;
"+ removed": \`set server be/a state maint\` ${ENDPOINT_DELAY}s after the SIGTERM.
$CLASSIC_RUNS runs per variant; columns with "/" list every run.

EOF
  "$PYTHON" - "$RESULTS" "$PRE_STOP_SLEEP" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rows = [r for r in rows if not r.get("unchecked")]
sleep = sys.argv[2]
order = []
groups = {}
for r in rows:
    key = (r["init"], r["app"], r["k8s"])
    if key not in groups:
        order.append(key)
        groups[key] = []
    groups[key].append(r)
print("| init | app | endpoint | sent | failed | failed, % (mean) | failures by kind (all runs) | failures, s after SIGTERM (first – last) | SIGTERM → app exit, s | init's exit status |")
print("|---|---|---|---|---|---|---|---|---|---|")
for key in order:
    init, app, k8s = key
    g = groups[key]
    label = init
    app_label = app + (f", pre_stop sleep {sleep}s" if init == "graceinit" else "")
    endpoint = "+ removed" if k8s else "health checks only"
    sent = " / ".join(str(r["sent"]) for r in g)
    failed = " / ".join(str(r["failed"]) for r in g)
    pct = sum(r["failed"] / r["sent"] for r in g) / len(g) * 100
    kinds = {}
    for r in g:
        for k, n in r["kinds"].items():
            kinds[k] = kinds.get(k, 0) + n
    kinds_s = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())) or "—"
    firsts = [r["first_failure"] for r in g if r["first_failure"] is not None]
    lasts = [r["last_failure"] for r in g if r["last_failure"] is not None]
    window = f"{min(firsts):.2f} – {max(lasts):.2f}" if firsts else "—"
    exits = " / ".join(f"{r['app_exit']:.2f}" for r in g)
    status = " / ".join(str(r["init_status"]) + (" (SIGKILL)" if r["sigkill"] else "") for r in g)
    print(f"| {label} | {app_label} | {endpoint} | {sent} | {failed} | {pct:.2f} | {kinds_s} | {window} | {exits} | {status} |")
EOF
fi
if ((${#random[@]})); then
  cat <<EOF

### The endpoint removed after a random delay: a fixed sleep vs wait_quiet

$RATE req/s for ${RANDOM_DURATION}s (open loop, keep-alive, no retries), ${WORK_MS} ms of work per request,
SIGTERM to replica A's PID 1 at ${TRIGGER_AT}s, SIGKILL ${RANDOM_GRACE}s later if it still runs (never needed);
each replica in a network and a PID namespace of its own, as a pod (veth to the host: graceinit's
wait_quiet and drain report see only the replica's own connections and passive opens);
HAProxy: \`retries 0\`, no \`option redispatch\`, replica A **not health-checked** (kube-proxy does not probe):
only \`set server be/a state maint\`, after a delay drawn uniformly in [${DELAY_MIN}, ${DELAY_MAX}] s per run
(seed ${SEED}: ${DELAYS[*]} s; run i of every variant uses draw i), stops its traffic.
graceinit: \`grace_period = "${RANDOM_GRACE}s"\`, \`stop_timeout = "3s"\`, one pre_stop hook,
\`sleep = "Ns"\` (sleepN) or \`wait_quiet = { ports = [A's app port], quiet = "Ns", max = "30s" }\` (quietN).
Drain = SIGTERM → the app's exit. $RANDOM_RUNS runs per variant; columns with "/" list every run.

EOF
  "$PYTHON" - "$RESULTS" <<'EOF'
import json, re, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rows = [r for r in rows if r.get("unchecked")]
order, groups = [], {}
for r in rows:
    if r["variant"] not in groups:
        order.append(r["variant"])
        groups[r["variant"]] = []
    groups[r["variant"]].append(r)
mean = lambda xs: sum(xs) / len(xs)


def seconds(debug):
    """A Rust Duration's Debug form ("4.418205542s", "950.1ms") as "4.42 s"."""
    m = re.fullmatch(r"([\d.]+)(s|ms|µs|ns)", debug or "")
    if not m:
        return "?"
    scale = {"s": 1, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}[m.group(2)]
    return f"{float(m.group(1)) * scale:.2f} s"


def last_arrival(r):
    """The last arrival after the trigger, from graceinit's DrainFinished report."""
    m = re.search(r"\(the last (\S+) after the trigger\)", r.get("drain_report") or "")
    return seconds(m.group(1)).replace(" s", "") if m else "—"


print("| variant | lost, each run | lost, total | failures by kind | endpoint delay (drawn), s | drain, each run, s | mean drain, s | last arrival (graceinit's report), s | wait_quiet: arrivals, waited (each run) | init's exit status |")
print("|---|---|---|---|---|---|---|---|---|---|")
for v in order:
    g = groups[v]
    kinds = {}
    for r in g:
        for k, n in r["kinds"].items():
            kinds[k] = kinds.get(k, 0) + n
    kinds_s = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())) or "—"
    wq = " / ".join(f"{r['wait_quiet'].get('arrivals', '?')}, {seconds(r['wait_quiet'].get('waited'))}"
                    + ("" if r["wait_quiet"]["why"] == "quiet" else " (cut)")
                    if r.get("wait_quiet") else "—" for r in g) if any(r.get("wait_quiet") for r in g) else "—"
    status = " / ".join(str(r["init_status"]) + (" (SIGKILL)" if r["sigkill"] else "") for r in g)
    lost = " / ".join(str(r["failed"]) for r in g)
    total = f"{sum(r['failed'] for r in g)} of {sum(r['sent'] for r in g)}"
    delays = " / ".join(f"{r['delay']:.2f}" for r in g)
    drains = " / ".join(f"{r['app_exit']:.2f}" for r in g)
    drain = mean([r["app_exit"] for r in g])
    last = " / ".join(last_arrival(r) for r in g) if any(r.get("drain_report") for r in g) else "—"
    print(f"| `{v}` | {lost} | {total} | {kinds_s} | {delays} | {drains} | {drain:.2f} | {last} | {wq} | {status} |")
print()
print("| check | measured | result |")
print("|---|---|---|")
for v in order:
    if not v.startswith("graceinit:"):
        continue
    lost = sum(r["failed"] for r in groups[v])
    print(f"| `{v}` loses no request | {lost} lost | {'PASS' if lost == 0 else 'FAIL'} |")
sleeps = [v for v in order if re.fullmatch(r"graceinit:\w+:sleep[\d.]+", v)]
for v in order:
    m = re.fullmatch(r"graceinit:\w+:quiet([\d.]+)", v)
    if not m:
        continue
    g = groups[v]
    quiet = float(m.group(1))
    drain = mean([r["app_exit"] for r in g])
    bound = mean([r["delay"] for r in g]) + quiet + 0.5
    print(f"| `{v}`: mean drain ≤ mean delay + quiet + 0.5 s | {drain:.2f} s ≤ {bound:.2f} s | {'PASS' if drain <= bound else 'FAIL'} |")
    for s in sleeps:
        fixed = mean([r["app_exit"] for r in groups[s]])
        print(f"| `{v}` faster than `{s}` | mean drain {drain:.2f} s vs {fixed:.2f} s: {fixed - drain:.2f} s "
              f"({(1 - drain / fixed) * 100:.0f}%) less | {'PASS' if drain < fixed else 'FAIL'} |")
EOF
fi
