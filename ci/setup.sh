#!/usr/bin/env bash
# Installs everything graceinit's build, tests and benchmark need on a fresh Debian 12
# machine with rustup: idempotent, safe to run again. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

packages=(
  musl-tools      # musl-gcc: the static release build compiles ring's C with it
  clang           # ring's C for the aarch64 build (ci/aarch64.sh; .cargo/config.toml)
  qemu-user-static  # qemu-aarch64-static: the PID-1 tests of the aarch64 binary
  file            # checks that the release binaries are static ELFs of their architecture
  util-linux      # unshare: PID-namespace tests
  bsdutils        # script: the TTY test
  procps          # ps, pgrep
  gcc libc6-dev   # cc: the tests compile small C helpers (signal recorders, orphan storms)
  tini dumb-init hyperfine   # the side-by-side benchmark
  python3 python3-prometheus-client  # tests/endpoints.rs parses /metrics with Prometheus' parser
  wrk             # bench/endpoints.sh: /readyz throughput and latency
  nginx-light etcd-server curl  # tests/real_systems.rs: nginx as the app, etcd as the registry
  iproute2        # ip: tests/wait_quiet.rs brings up loopback in a network namespace of its own
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# podman for the container test, configured for machines like these (see ci/podman-setup.sh).
bash ci/podman-setup.sh

rustup component add rustfmt clippy >/dev/null 2>&1 || rustup component add rustfmt clippy
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  rustup target add "$target" >/dev/null 2>&1 || rustup target add "$target"
done
echo "setup: done"
