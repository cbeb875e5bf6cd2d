#!/usr/bin/env bash
# Lists the functions graceinit runs from start-up through the idle loop to the app's exit,
# for the linker to lay out together (.cargo/config.toml says why), into
# .cargo/startup-symbols.txt. Run it again after changes that move start-up code (a new
# dependency or toolchain, renamed functions): the bench's idle RSS row says when.
#
#   bash bench/order-symbols.sh      (from the repository root; needs valgrind)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=x86_64-unknown-linux-musl
work=$(mktemp -d /tmp/graceinit-order.XXXXXX)
trap 'rm -rf "$work"' EXIT
command -v valgrind >/dev/null || { echo "order-symbols: needs valgrind (apt-get install valgrind)" >&2; exit 1; }

# The release build with its symbols kept. RUSTFLAGS replaces the target's rustflags,
# which are not part of any symbol's name: the same names as the release, without
# --strip-all and without the old list.
RUSTFLAGS="-C relocation-model=static -C link-arg=.cargo/no-unwind-tables.ld" \
    cargo build --release --locked --target "$target" --target-dir "$work/target" >&2
binary=$work/target/$target/release/graceinit

# Start-up, the idle loop, the app's exit and graceinit's (no config: the common case).
(cd "$work" && valgrind --tool=callgrind --callgrind-out-file="$work/callgrind" \
    --compress-strings=no --compress-pos=no --demangle=no \
    "$binary" -- sleep 0.3 2>/dev/null)
grep '^fn=' "$work/callgrind" | sed 's/^fn=//' | sort -u >"$work/run"
nm --defined-only "$binary" | awk '$2 ~ /^[tTwW]$/ { print $3 }' | sort -u >"$work/defined"
comm -12 "$work/run" "$work/defined" >.cargo/startup-symbols.txt
echo "order-symbols: $(wc -l <.cargo/startup-symbols.txt) functions in .cargo/startup-symbols.txt" >&2
