#!/usr/bin/env bash
# The static aarch64 binary: cross-compiled here (clang for ring's C, rust-lld to link;
# see .cargo/config.toml), checked to be a static aarch64 ELF, then the PID-1 test suite
# (tests/pid1.rs) run against it under qemu-user. qemu-aarch64-static is named as the
# runner (tests/common/mod.rs: GRACEINIT_TEST_RUNNER), so binfmt_misc need not be set up
# on this machine; graceinit's children (sh, sleep, the C helpers) are host programs,
# which qemu execs natively. Needs what ci/setup.sh installs. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-musl
# target/static: where the container test builds the x86_64 one (tests/container.rs), so
# the host-side release artifacts (build scripts, proc macros) are shared.
target_dir=$PWD/target/static
binary=$target_dir/$target/release/graceinit

cargo build --release --locked --target "$target" --target-dir "$target_dir"
kind=$(file -b "$binary")
case $kind in
  *"ARM aarch64"*"statically linked"*) echo "aarch64: $binary: $kind" ;;
  *) echo "aarch64: $binary is not a static aarch64 ELF: $kind" >&2; exit 1 ;;
esac

# Tests that cannot pass under qemu-user (Debian 12's, 7.2), each with the reason. They
# run against the x86_64 build in the main `cargo test`.
excluded=(
  # qemu-user answers prctl(PR_SET_CHILD_SUBREAPER) with EINVAL (not emulated), so
  # graceinit run directly cannot adopt orphans (it warns and goes on).
  leftovers_are_killed_and_reaped_as_subreaper
  not_pid1_becomes_a_subreaper_and_reaps_the_orphan
  # qemu-user renumbers real-time signals: host SIGRTMIN+2 (36, what tests/helpers/sigrec.c
  # records) arrives as guest signal 34, one of musl's internal signals, which graceinit
  # does not forward. Host 37 and up reach graceinit as musl's SIGRTMIN+0 and up.
  realtime_signals_are_forwarded_too
)
skip=()
for name in "${excluded[@]}"; do
  grep -q "^fn $name()" tests/pid1.rs || { echo "aarch64: no test $name in tests/pid1.rs" >&2; exit 1; }
  echo "aarch64: not run under qemu-user: $name"
  skip+=(--skip "$name")
done

GRACEINIT_TEST_BINARY=$binary GRACEINIT_TEST_RUNNER=qemu-aarch64-static \
  cargo test --locked --test pid1 -- --exact "${skip[@]}"
