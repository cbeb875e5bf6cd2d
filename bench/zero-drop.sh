#!/usr/bin/env bash
# The zero-drop benchmark: requests lost while one of two replicas behind HAProxy is
# terminated as the kubelet does it, with tini, dumb-init and graceinit as each replica's
# PID 1. Not run by CI (it takes minutes and measures timing): run it by hand.
#
#   bash bench/zero-drop.sh      (from the repository root, as root; about 7-8 minutes)
#
# It installs what is missing (apt: haproxy tini dumb-init util-linux python3), builds the
# static release binary, and prints a Markdown report on stdout (progress on stderr).
# One run is bench/zd_run.py (replicas of bench/zd_app.py, HAProxy, the open-loop client,
# the kubelet's SIGTERM/SIGKILL); see bench/README.md, "The zero-drop benchmark".
#
# Knobs (environment): GRACEINIT=path (skip the build and use that binary), ZD_RUNS (runs
# per variant, 3), ZD_VARIANTS (the variants, "INIT:APP[:k8s]" separated by spaces; the
# default is every init with naive, graceful and graceful:k8s), ZD_RATE (200 req/s),
# ZD_DURATION (15 s), ZD_TRIGGER_AT (4 s), ZD_GRACE (8 s: SIGTERM -> SIGKILL),
# ZD_PRE_STOP_SLEEP (3 s), ZD_ENDPOINT_DELAY (1 s: SIGTERM -> `state maint`), ZD_WORK_MS
# (20 ms of work per request).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RUNS=${ZD_RUNS:-3}
VARIANTS=${ZD_VARIANTS:-"tini:naive dumb-init:naive graceinit:naive tini:graceful dumb-init:graceful graceinit:graceful tini:graceful:k8s dumb-init:graceful:k8s graceinit:graceful:k8s"}
RATE=${ZD_RATE:-200}
DURATION=${ZD_DURATION:-15}
TRIGGER_AT=${ZD_TRIGGER_AT:-4}
GRACE=${ZD_GRACE:-8}
PRE_STOP_SLEEP=${ZD_PRE_STOP_SLEEP:-3}
ENDPOINT_DELAY=${ZD_ENDPOINT_DELAY:-1}
WORK_MS=${ZD_WORK_MS:-20}
T_START=$SECONDS

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'zero-drop: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d /tmp/graceinit-zero-drop.XXXXXX)
CURRENT=
cleanup() {
  # zd_run.py kills its replicas and HAProxy itself; this is for Ctrl-C.
  if [[ -n $CURRENT ]]; then kill -TERM "$CURRENT" 2>/dev/null || true; wait "$CURRENT" 2>/dev/null || true; fi
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
# Rounds, the variants taking turns in each, so that a burst of other load on the
# machine does not land on one variant only.
for round in $(seq "$RUNS"); do
  for v in "${variants[@]}"; do
    IFS=: read -r init app k8s <<<"$v"
    flags=()
    [[ ${k8s:-} == k8s ]] && flags+=(--k8s)
    say "round $round/$RUNS: $v ($((SECONDS - T_START)) s so far)"
    rm -rf "$WORK/run"
    "$PYTHON" "$ROOT/bench/zd_run.py" --init "$init" --app "$app" "${flags[@]}" \
      --work "$WORK/run" --graceinit "$G" --rate "$RATE" --duration "$DURATION" \
      --trigger-at "$TRIGGER_AT" --grace "$GRACE" --pre-stop-sleep "$PRE_STOP_SLEEP" \
      --endpoint-delay "$ENDPOINT_DELAY" --work-ms "$WORK_MS" >"$WORK/out" &
    CURRENT=$!
    status=0
    wait "$CURRENT" || status=$?
    CURRENT=
    if ((status != 0)); then
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
$RATE req/s for ${DURATION}s (open loop, keep-alive, no retries), ${WORK_MS} ms of work per request,
SIGTERM to replica A's PID 1 at ${TRIGGER_AT}s, SIGKILL ${GRACE}s later if it still runs;
HAProxy: \`retries 0\`, no \`option redispatch\`, checks \`inter 1s fall 2 rise 2\`;
graceinit: pre_stop \`sleep = "${PRE_STOP_SLEEP}s"\`, checked on \`/readyz\`;
"+ removed": \`set server be/a state maint\` ${ENDPOINT_DELAY}s after the SIGTERM.
$RUNS runs per variant; columns with "/" list every run.

EOF
"$PYTHON" - "$RESULTS" "$PRE_STOP_SLEEP" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
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
