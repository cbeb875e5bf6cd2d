#!/usr/bin/env bash
# The health endpoints under load: /readyz throughput and p99 latency with wrk, graceinit
# pinned to one core and wrk to another, and graceinit's idle RSS with the endpoints and
# a readiness probe configured.
#
#   bash bench/endpoints.sh      (from the repository root; about 30 seconds)
#
# It installs wrk if missing (apt), builds the static release binary, and prints a
# Markdown table on stdout (progress goes to stderr).
#
# Knobs (environment): GRACEINIT=path (skip the build and measure that binary),
# BENCH_SECONDS (wrk's duration, 10), BENCH_CONNECTIONS (wrk's keep-alive connections,
# 16), BENCH_IDLE_SECONDS (time left idle before the RSS is read, 3), BENCH_SERVER_CPU
# (0) and BENCH_CLIENT_CPU (1).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SECONDS_LOAD=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-3}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
# Issue 11's targets.
RPS_TARGET=20000
P99_TARGET_MS=2
RSS_TARGET_MIB=3

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d /tmp/graceinit-endpoints.XXXXXX)
PID=
cleanup() {
  if [[ -n $PID ]]; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
if [[ -z ${GRACEINIT:-} ]]; then command -v musl-gcc >/dev/null || need+=(musl-tools); fi
if ((${#need[@]})); then
  say "installing ${need[*]}"
  "${SUDO[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${need[@]}" >&2 ||
    die "apt-get install ${need[*]} failed"
fi

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

cat >"$WORK/graceinit.toml" <<'EOF'
[probes.readiness]
exec = ["true"]
period = "10s"
EOF

say "starting graceinit on CPU $SERVER_CPU"
taskset -c "$SERVER_CPU" "$G" -v --config "$WORK/graceinit.toml" --listen 127.0.0.1:0 \
  -- sleep 3600 2>"$WORK/stderr" &
PID=$!
ADDRESS=
for _ in $(seq 500); do
  ADDRESS=$(grep -o 'serving the health endpoints on http://[^ ]*' "$WORK/stderr" | sed 's|.*http://||' || true)
  [[ -n $ADDRESS ]] && break
  sleep 0.01
done
[[ -n $ADDRESS ]] || die "graceinit did not log its address: $(cat "$WORK/stderr")"
URL=http://$ADDRESS/readyz

# Ready once the readiness probe has passed: wrk's own first request tells.
status_of() {
  local host=${ADDRESS%:*} port=${ADDRESS##*:} line
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf 'GET /readyz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n' >&3
  read -r line <&3 || true
  exec 3<&-
  echo "$line" | awk '{ print $2 }'
}
for _ in $(seq 500); do
  [[ $(status_of) == 200 ]] && break
  sleep 0.01
done
[[ $(status_of) == 200 ]] || die "/readyz is not 200"

say "idle for ${IDLE_SECONDS}s, then its RSS"
sleep "$IDLE_SECONDS"
RSS_KIB=$(awk '/^VmRSS:/ { print $2 }' /proc/"$PID"/status)
RSS_MIB=$(awk -v k="$RSS_KIB" 'BEGIN { printf "%.2f", k / 1024 }')

# graceinit's CPU time (utime + stime, clock ticks): requests per CPU-second is its
# capacity on one core, whatever else the machine runs meanwhile.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' /proc/"$PID"/stat; }
TICKS_BEFORE=$(cpu_ticks)
say "wrk on CPU $CLIENT_CPU: ${SECONDS_LOAD}s, $CONNECTIONS connections, GET $URL"
taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_LOAD}s" --latency "$URL" >"$WORK/wrk" ||
  die "wrk failed: $(cat "$WORK/wrk")"
cat "$WORK/wrk" >&2
TICKS_USED=$(($(cpu_ticks) - TICKS_BEFORE))
RPS=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$WORK/wrk")
REQUESTS=$(awk '/requests in/ { print $1 }' "$WORK/wrk")
PER_CPU_SECOND=$(awk -v r="$REQUESTS" -v t="$TICKS_USED" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { if (t > 0) printf "%d", r / (t / hz); else print 0 }')
CPU_SECONDS=$(awk -v t="$TICKS_USED" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')
# wrk prints the 99th percentile with a unit: us, ms or s.
P99_MS=$(awk '$1 == "99%" {
  v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
  if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000
  printf "%.3f", v }' "$WORK/wrk")
ERRORS=$(awk '/Non-2xx or 3xx responses:|Socket errors:/' "$WORK/wrk")
RSS_AFTER_KIB=$(awk '/^VmRSS:/ { print $2 }' /proc/"$PID"/status)
RSS_AFTER_MIB=$(awk -v k="$RSS_AFTER_KIB" 'BEGIN { printf "%.2f", k / 1024 }')

pass() { if awk "BEGIN { exit !($1) }"; then echo pass; else echo FAIL; fi; }

cat <<EOF
## graceinit's health endpoints

$(uname -sr), $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)),
load $(cut -d' ' -f1-3 /proc/loadavg) at the end. graceinit on CPU $SERVER_CPU, wrk
(1 thread, $CONNECTIONS keep-alive connections, ${SECONDS_LOAD}s) on CPU $CLIENT_CPU.

| measure | target | measured | result |
|---|---|---|---|
| \`GET /readyz\` throughput | ≥ $RPS_TARGET req/s | $RPS req/s | $(pass "$RPS >= $RPS_TARGET") |
| \`GET /readyz\` p99 latency | < $P99_TARGET_MS ms | $P99_MS ms | $(pass "$P99_MS < $P99_TARGET_MS") |
| requests per CPU-second of graceinit ($REQUESTS in ${CPU_SECONDS}s of CPU) | ≥ $RPS_TARGET | $PER_CPU_SECOND | $(pass "$PER_CPU_SECOND >= $RPS_TARGET") |
| idle RSS, endpoints and a readiness probe | ≤ $RSS_TARGET_MIB MiB | $RSS_MIB MiB | $(pass "$RSS_MIB <= $RSS_TARGET_MIB") |
| RSS after the load | | $RSS_AFTER_MIB MiB | |

${ERRORS:-wrk saw no errors and no non-2xx answer.}
EOF
