#!/usr/bin/env bash
# graceinit side by side with tini and dumb-init: start-up overhead, idle memory, binary
# size, reaping 20,000 orphans as PID 1, and signal-forwarding latency.
#
#   bash bench/run.sh            (from the repository root, as root; about 1-3 minutes)
#
# It installs what is missing (apt: tini dumb-init hyperfine gcc libc6-dev musl-tools),
# builds the static release binary, compiles its C helpers into a temporary directory,
# and prints a Markdown report on stdout (progress goes to stderr). See bench/README.md.
#
# Knobs (environment): GRACEINIT=path (skip the build and measure that binary),
# BENCH_RUNS (hyperfine runs per command, 300), BENCH_STARTUP_ROUNDS (3), BENCH_ORPHANS
# (20000), BENCH_REAP_ROUNDS (3), BENCH_SIG_TRIES (200).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RUNS=${BENCH_RUNS:-300}
ORPHANS=${BENCH_ORPHANS:-20000}
SIG_TRIES=${BENCH_SIG_TRIES:-200}
REAP_ROUNDS=${BENCH_REAP_ROUNDS:-3}
STARTUP_ROUNDS=${BENCH_STARTUP_ROUNDS:-3}
# Issue 14's targets: tini's class.
RSS_TARGET_MIB=1.5
STARTUP_TARGET_RATIO=1.2 # start-up overhead (median) / tini-static's
REAP_TARGET_RATIO=1.5
SIGNAL_TARGET_RATIO=1.2 # signal forwarding median / tini-static's
SIZE_TARGET_BYTES=$((3 * 1024 * 1024))
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-2}
T_START=$SECONDS
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d /tmp/graceinit-bench.XXXXXX)
LOG=$WORK/log
: >"$LOG"
# The one background process running now, killed with its whole tree on exit. It is
# cleared as soon as it has been waited for: pids wrap around here (each orphan run
# makes 40,000 processes), so a stale pid could be somebody else's by then.
CURRENT=

# Every descendant of $1, parents first (needs /proc/PID/task/TID/children).
descendants() {
  local pid=$1 child
  # shellcheck disable=SC2013 # the file holds space-separated pids
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

kill_tree() {
  local pid=$1
  local tree
  mapfile -t tree < <(descendants "$pid")
  kill -KILL "$pid" "${tree[@]}" 2>/dev/null || true
}

# True while $1 exists and is not a zombie.
alive() {
  local state
  state=$(awk '{ sub(/.*\) /, ""); print $1 }' /proc/"$1"/stat 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

cleanup() {
  local status=$?
  if [[ -n $CURRENT ]] && alive "$CURRENT"; then kill_tree "$CURRENT"; fi
  if ((status != 0)); then
    printf 'bench: failed (exit %d); last lines of %s:\n' "$status" "$LOG" >&2
    tail -n 30 "$LOG" >&2 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Runs "$@" in the background with stdout to $WORK/out, and waits for it: a signal to
# this script then interrupts the wait at once, and the EXIT trap kills the whole tree.
bounded() {
  "$@" >"$WORK/out" 2>>"$LOG" &
  local status=0
  CURRENT=$!
  wait "$CURRENT" || status=$?
  CURRENT=
  return "$status"
}
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------
# Prerequisites
SUDO=()
if ((EUID != 0)); then
  command -v sudo >/dev/null && SUDO=(sudo)
fi
need=()
[[ -x /usr/bin/tini && -x /usr/bin/tini-static ]] || need+=(tini)
[[ -x /usr/bin/dumb-init ]] || need+=(dumb-init)
command -v hyperfine >/dev/null || need+=(hyperfine)
if ! command -v cc >/dev/null || [[ ! -e /usr/include/stdio.h ]]; then need+=(gcc libc6-dev); fi
command -v unshare >/dev/null || need+=(util-linux)
if [[ -z ${GRACEINIT:-} ]]; then command -v musl-gcc >/dev/null || need+=(musl-tools); fi
if ((${#need[@]})); then
  say "installing ${need[*]}"
  "${SUDO[@]}" apt-get update -qq >>"$LOG" 2>&1 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${need[@]}" >>"$LOG" 2>&1 ||
    die "apt-get install ${need[*]} failed"
fi
TINI_STATIC=/usr/bin/tini-static
TINI_DYN=/usr/bin/tini
DUMB_INIT=/usr/bin/dumb-init
TRUE_BIN=$(type -P true)

TARGET=x86_64-unknown-linux-musl
if [[ -n ${GRACEINIT:-} ]]; then
  G=$(realpath "$GRACEINIT")
  [[ -x $G ]] || die "GRACEINIT=$GRACEINIT is not executable"
else
  command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
    say "rustup target add $TARGET"
    rustup target add "$TARGET" >>"$LOG" 2>&1 || die "rustup target add $TARGET failed"
  fi
  say "cargo build --release --target $TARGET"
  cargo build --release --target "$TARGET" >>"$LOG" 2>&1 || die "the release build failed"
  G=$ROOT/target/$TARGET/release/graceinit
fi

say "compiling the C helpers"
for helper in orphans sigapp sigbench; do
  cc -O2 -Wall -Wextra -o "$WORK/$helper" "$ROOT/bench/$helper.c" -lpthread >>"$LOG" 2>&1 ||
    die "cc bench/$helper.c failed"
done

# PID namespaces need root; otherwise map ourselves to root in a user namespace.
UNSHARE=(unshare --pid --fork --mount-proc --kill-child)
((EUID == 0)) || UNSHARE=(unshare --user --map-root-user --pid --fork --mount-proc --kill-child)

INITS=(g ts td di)
declare -A NAME=([g]=graceinit [ts]=tini-static [td]="tini (dynamic)" [di]=dumb-init)
# Sets CMD to the init's command line, up to where the app's argv starts.
set_cmd() {
  case $1 in
    g) CMD=("$G" --) ;;
    ts) CMD=("$TINI_STATIC" --) ;;
    td) CMD=("$TINI_DYN" --) ;;
    di) CMD=("$DUMB_INIT") ;; # dumb-init takes no `--`
  esac
}
declare -A V # V[metric,init] = value

# Arithmetic on decimals.
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

# ---------------------------------------------------------------------------------------
# 1. Start-up overhead: INIT -- true, against bare true. Other load on the machine comes
# in bursts, so hyperfine runs in $STARTUP_ROUNDS rounds of $RUNS/$STARTUP_ROUNDS runs per
# command, the commands taking turns; the statistics are over all runs together.
per_round=$(((RUNS + STARTUP_ROUNDS - 1) / STARTUP_ROUNDS))
for round in $(seq "$STARTUP_ROUNDS"); do
  say "start-up, round $round/$STARTUP_ROUNDS: hyperfine -N --warmup 20 --runs $per_round (5 commands)"
  bounded hyperfine -N --warmup 20 --runs "$per_round" --style basic --export-json "$WORK/startup.json" \
    -n bare "$TRUE_BIN" \
    -n g "$G -- $TRUE_BIN" \
    -n ts "$TINI_STATIC -- $TRUE_BIN" \
    -n td "$TINI_DYN -- $TRUE_BIN" \
    -n di "$DUMB_INIT $TRUE_BIN" || die "hyperfine failed"
  cat "$WORK/out" >>"$LOG"
  # Each command's "times" (seconds), one per line, appended to $WORK/times.NAME in ms.
  awk -v dir="$WORK" '
    /"command":/ { gsub(/[",]/, "", $2); name = $2 }
    /"times": \[/ { collecting = 1; next }
    collecting && /\]/ { collecting = 0; next }
    collecting { gsub(/,/, "", $1); printf "%.6f\n", $1 * 1000 >> (dir "/times." name) }
  ' "$WORK/startup.json"
done
for name in bare "${INITS[@]}"; do
  # mean, sd, median over all runs
  read -r "V[mean,$name]" "V[sd,$name]" "V[median,$name]" "V[nruns,$name]" < <(sort -n "$WORK/times.$name" | awk '
    { x[NR] = $1; sum += $1; sq += $1 * $1 }
    END {
      mean = sum / NR; var = (sq - NR * mean * mean) / (NR > 1 ? NR - 1 : 1)
      median = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
      printf "%.3f %.3f %.3f %d\n", mean, sqrt(var > 0 ? var : 0), median, NR
    }')
done
for i in "${INITS[@]}"; do
  V[over,$i]=$(calc "${V[mean,$i]} - ${V[mean,bare]}" 3)
  V[overmed,$i]=$(calc "${V[median,$i]} - ${V[median,bare]}" 3)
done

# ---------------------------------------------------------------------------------------
# 2. Idle resident memory of INIT -- sleep 3600 (not PID 1), after 0.5 s.
say "idle memory and wake-ups: INIT -- sleep 3600"
# Context switches of every thread of process $1: each is a wake-up (or a preemption).
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches:/ { n += $2 } END { print n }'; }
for i in "${INITS[@]}"; do
  set_cmd "$i"
  "${CMD[@]}" sleep 3600 >/dev/null 2>>"$LOG" &
  pid=$!
  CURRENT=$pid
  sleep 0.5
  alive "$pid" || die "${NAME[$i]} died right after starting sleep"
  [[ -n $(descendants "$pid") ]] || die "${NAME[$i]} has no child after 0.5 s"
  kib=$(awk '/^VmRSS:/ { print $2 }' /proc/"$pid"/status)
  V[rss,$i]=$(calc "$kib/1024" 2)
  V[threads,$i]=$(awk '/^Threads:/ { print $2 }' /proc/"$pid"/status)
  before=$(switches "$pid")
  sleep "$IDLE_SECONDS"
  V[wakeups,$i]=$(($(switches "$pid") - before))
  # SIGTERM is forwarded to sleep, which dies of it, and the init follows (bounded).
  kill -TERM "$pid"
  for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && { echo "${NAME[$i]} outlived SIGTERM by 5 s: SIGKILL" >>"$LOG"; kill_tree "$pid"; }
  wait "$pid" 2>/dev/null || true
  CURRENT=
done

# 2b. Wake-ups of an idle graceinit whose config has a readiness probe every 10 s (a tcp
# probe of a loopback listener that perl holds open): one per period is the probe's own.
say "idle wake-ups with a readiness probe every 10 s: graceinit -- sleep 3600"
perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 128) or die "listen: $!"; $| = 1; print $s->sockport, "\n"; while ($c = $s->accept) { close $c }' >"$WORK/listener.port" 2>>"$LOG" &
LISTENER=$!
for _ in $(seq 50); do [[ -s $WORK/listener.port ]] && break; sleep 0.1; done
[[ -s $WORK/listener.port ]] || die "the loopback listener for the probe did not start"
printf '[probes.readiness]\ntcp = "127.0.0.1:%s"\nperiod = "10s"\n' "$(<"$WORK/listener.port")" >"$WORK/probe.toml"
"$G" --config "$WORK/probe.toml" -- sleep 3600 >/dev/null 2>>"$LOG" &
pid=$!
CURRENT=$pid
sleep 0.5
alive "$pid" || die "graceinit with a probe died right after starting"
before=$(switches "$pid")
sleep 10
V[probe_wakeups,g]=$(($(switches "$pid") - before))
kill -TERM "$pid"
for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
alive "$pid" && kill_tree "$pid"
wait "$pid" 2>/dev/null || true
CURRENT=
kill "$LISTENER" 2>/dev/null || true
wait "$LISTENER" 2>/dev/null || true

# ---------------------------------------------------------------------------------------
# 3. Binary size.
for i in "${INITS[@]}"; do
  set_cmd "$i"
  V[size,$i]=$(stat -L -c %s "${CMD[0]}")
done

# ---------------------------------------------------------------------------------------
# 4. Reaping: INIT as PID 1 of a new PID namespace, the app makes $ORPHANS orphans.
# The app's fork rate dominates the time and this machine's load varies, so the inits
# take turns for $REAP_ROUNDS rounds; the time is the best round's, the zombie counts the
# worst, the init's CPU time the least. tini (dynamic) runs the same code as tini-static and is left out (saves time).
REAP_INITS=(g ts di)
for round in $(seq "$REAP_ROUNDS"); do
  for i in "${REAP_INITS[@]}"; do
    say "reaping, round $round/$REAP_ROUNDS: ${NAME[$i]} as PID 1, $ORPHANS orphans"
    set_cmd "$i"
    # A result line is printed even when the app gave up (timed_out=1, zombies left).
    bounded timeout -k 5 120 "${UNSHARE[@]}" "${CMD[@]}" "$WORK/orphans" "$ORPHANS" 60 || true
    out=$(<"$WORK/out")
    line=$(grep '^elapsed_ms=' <<<"$out") || die "${NAME[$i]}: no result from the orphan run: $out"
    echo "${NAME[$i]} round $round: $line" >>"$LOG"
    say "    $line"
    declare -A R=()
    for kv in $line; do R[${kv%%=*}]=${kv#*=}; done
    [[ ${R[forks]} == "$ORPHANS" ]] || die "${NAME[$i]}: only ${R[forks]} of $ORPHANS orphans made"
    if [[ -z ${V[elapsed_ms,$i]:-} ]] || awk "BEGIN { exit !(${R[elapsed_ms]} < ${V[elapsed_ms,$i]}) }"; then
      for k in elapsed_ms create_ms tail_ms; do V[$k,$i]=${R[$k]}; done
    fi
    for k in max_zombies left; do # the worst round
      ((${V[$k,$i]:--1} >= ${R[$k]})) || V[$k,$i]=${R[$k]}
    done
    if [[ -z ${V[init_cpu_ms,$i]:-} ]] || [[ ${R[init_cpu_ms]} -lt ${V[init_cpu_ms,$i]} ]]; then
      V[init_cpu_ms,$i]=${R[init_cpu_ms]} # the least CPU time: other load only adds to it
    fi
    unset R
  done
done

# ---------------------------------------------------------------------------------------
# 5. Signal forwarding: SIGUSR1 to the init (not PID 1), until the app's handler runs.
for i in "${INITS[@]}"; do
  say "signal forwarding: ${NAME[$i]}, $SIG_TRIES x SIGUSR1"
  set_cmd "$i"
  # Exit status 1 means signals were lost: that shows in the table.
  bounded timeout -k 5 60 "$WORK/sigbench" "$SIG_TRIES" "${CMD[@]}" "$WORK/sigapp" || true
  out=$(<"$WORK/out")
  [[ $out == median_us=* ]] || die "${NAME[$i]}: no result from the signal run: $out"
  echo "${NAME[$i]}: $out" >>"$LOG"
  for kv in $out; do V[sig_${kv%%=*},$i]=${kv#*=}; done
done

# ---------------------------------------------------------------------------------------
# Report
ratio() { # graceinit / tini-static for metric $1
  local t=${V[$1,ts]:-}
  if [[ -z $t ]] || awk "BEGIN { exit !($t == 0) }"; then echo "—"; return; fi
  echo "$(calc "${V[$1,g]} / $t" 2)×"
}
thousands() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; }
row() { # label metric [metric for the ratio]; an init without a value shows —
  local label=$1 metric=$2 ratio_metric=${3:-$2} cells=() i v
  for i in "${INITS[@]}"; do
    v=${V[$metric,$i]:-}
    if [[ -z $v ]]; then cells+=("—"); else cells+=("$v"); fi
  done
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "${cells[@]}" "$(ratio "$ratio_metric")"
}
pass() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo FAIL; fi; }

for i in "${INITS[@]}"; do
  V[sizefmt,$i]=$(thousands "${V[size,$i]}")
  V[startup,$i]="${V[mean,$i]} ± ${V[sd,$i]}"
done

KERNEL=$(uname -sr)
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] || REV="$REV (+ local changes)"
cat <<EOF
## graceinit vs tini vs dumb-init

Machine: $(nproc) CPUs ($CPU), $KERNEL, load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end;
$(date -u '+%Y-%m-%d %H:%M UTC'). graceinit $REV ($TARGET release, static),
tini $("$TINI_STATIC" --version | awk '{ print $3 }') (Debian), dumb-init $("$DUMB_INIT" --version 2>&1 | awk '{ print $2 }') (Debian),
$(hyperfine --version). Ratios are graceinit / tini-static (the static build, like graceinit's).

| metric | graceinit | tini-static | tini (dynamic) | dumb-init | graceinit / tini-static |
|---|---|---|---|---|---|
EOF
# shellcheck disable=SC2016 # the backquotes are Markdown
printf '| `INIT -- true`, mean ± sd, ms (bare `true`: %s ± %s) | %s | %s | %s | %s | %s |\n' \
  "${V[mean,bare]}" "${V[sd,bare]}" "${V[startup,g]}" "${V[startup,ts]}" "${V[startup,td]}" "${V[startup,di]}" "$(ratio mean)"
row "start-up overhead over bare \`true\`, mean, ms" over
row "start-up overhead over bare \`true\`, median, ms" overmed
row "idle RSS (VmRSS of \`INIT -- sleep 3600\`), MiB" rss
row "threads of the idle init" threads
row "wake-ups while idle for ${IDLE_SECONDS} s (context switches)" wakeups
row "wake-ups per 10 s while idle, with a readiness probe every 10 s (context switches)" probe_wakeups
row "binary size, bytes" sizefmt size
row "reap $ORPHANS orphans as PID 1: first fork → 0 zombies, ms (best of $REAP_ROUNDS)" elapsed_ms
row "↳ of which creating them (the app's fork rate), ms" create_ms
row "↳ last fork → 0 zombies, ms" tail_ms
row "↳ CPU time the init used for it (user + sys, least of $REAP_ROUNDS), ms" init_cpu_ms
row "most zombies seen at once (sampled every ~0.5 ms; worst round)" max_zombies
row "zombies left at the end (worst round)" left
row "signal forwarding (SIGUSR1, $SIG_TRIES tries), median, µs" sig_median_us
row "signal forwarding, p99, µs" sig_p99_us
row "signals lost" sig_lost

over_ratio=$(calc "${V[overmed,g]} / ${V[overmed,ts]}" 2)
reap_ratio=$(calc "${V[elapsed_ms,g]} / ${V[elapsed_ms,ts]}" 2)
sig_ratio=$(calc "${V[sig_median_us,g]} / ${V[sig_median_us,ts]}" 2)
cat <<EOF

| target for graceinit | measured | result |
|---|---|---|
| start-up overhead (median) ≤ ${STARTUP_TARGET_RATIO}× tini-static's | ${V[overmed,g]} ms, ${over_ratio}× | $(pass "$over_ratio <= $STARTUP_TARGET_RATIO") |
| idle RSS ≤ $RSS_TARGET_MIB MiB | ${V[rss,g]} MiB | $(pass "${V[rss,g]} <= $RSS_TARGET_MIB") |
| no wake-up while idle | ${V[wakeups,g]} | $(pass "${V[wakeups,g]} == 0") |
| with a 10 s readiness probe, one wake-up per 10 s (its own) | ${V[probe_wakeups,g]} | $(pass "${V[probe_wakeups,g]} <= 2") |
| binary ≤ 3 MiB ($(thousands $SIZE_TARGET_BYTES) bytes) | ${V[sizefmt,g]} bytes | $(pass "${V[size,g]} <= $SIZE_TARGET_BYTES") |
| reap time ≤ ${REAP_TARGET_RATIO}× tini-static's | ${reap_ratio}× | $(pass "$reap_ratio <= $REAP_TARGET_RATIO") |
| no zombie left after reaping | ${V[left,g]} | $(pass "${V[left,g]} == 0") |
| signal forwarding median ≤ ${SIGNAL_TARGET_RATIO}× tini-static's, none lost | ${V[sig_median_us,g]} µs, ${sig_ratio}× | $(pass "$sig_ratio <= $SIGNAL_TARGET_RATIO && ${V[sig_lost,g]} == 0") |

How: start-up is \`hyperfine -N\` (no shell), ${V[nruns,g]} runs per command in $STARTUP_ROUNDS rounds
(20 warm-up runs each) with the commands taking turns. Idle RSS is VmRSS from
/proc/PID/status 0.5 s after \`INIT -- sleep 3600\` started (not PID 1); wake-ups are the
context switches of all its threads over the next $IDLE_SECONDS s; with a probe, the same
over 10 s for \`graceinit --config C -- sleep 3600\` where C has a tcp readiness probe
(period 10s) of a loopback listener. Reaping runs
\`unshare --pid --fork --mount-proc INIT -- orphans $ORPHANS\` (bench/orphans.c: one double fork at a
time, the child exits at once so the grandchild is orphaned to PID 1; a thread scans /proc for
zombies whose parent is PID 1), the inits taking turns for $REAP_ROUNDS rounds. Signal forwarding
runs the init as a child of bench/sigbench.c (not PID 1): CLOCK_MONOTONIC before kill(init,
SIGUSR1), against the time bench/sigapp.c's handler ran. Bench run took $((SECONDS - T_START)) s.
EOF
