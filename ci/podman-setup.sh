#!/usr/bin/env bash
# Install and configure rootful podman for graceinit's container tests (tests/container.rs).
#
# Made for the CI machines: Debian 12, root but without CAP_SYS_RESOURCE (rlimits can only be
# lowered), cgroup v1 "hybrid" layout, no systemd, no image registry. Out of the box podman
# fails there twice (see CONTAINER-TESTING.md, section 3):
#   - "crun: setrlimit RLIMIT_NOFILE: Operation not permitted": rootful podman asks for
#     nofile=1048576 and the kernel refuses to raise a hard limit, so the default ulimits are
#     set to what this machine allows;
#   - "crun: cgroups in hybrid mode not supported": runc is used instead of crun.
# Idempotent: packages are installed only when missing, and containers.conf is rewritten only
# when its content differs. A containers.conf this script did not write is kept as
# containers.conf.orig before it is replaced.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "podman-setup: must run as root (installs packages, writes /etc/containers)" >&2
    exit 1
fi

# musl-tools: musl-gcc, for the static graceinit build and the static test app (FROM scratch).
packages=(podman uidmap slirp4netns fuse-overlayfs crun catatonit runc musl-tools)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "podman-setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The highest limits this process may hand to a container: its hard limits, capped at what
# podman would ask for anyway. nproc above podman's own limit (32768 here) also fails.
limit() { # $1 = current hard limit ("unlimited" or a number), $2 = cap
    if [ "$1" = unlimited ] || [ "$1" -gt "$2" ]; then echo "$2"; else echo "$1"; fi
}
nofile=$(limit "$(ulimit -Hn)" 1048576)
nproc=$(limit "$(ulimit -Hu)" 32768)

marker="# Written by graceinit's ci/podman-setup.sh"
conf=/etc/containers/containers.conf
wanted="$marker
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]

[engine]
# crun refuses cgroup v1 hybrid hosts with a controller (hugetlb) on cgroup2.
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""

mkdir -p /etc/containers
if [ -f "$conf" ] && [ "$(cat "$conf")" = "$wanted" ]; then
    echo "podman-setup: $conf already up to date"
else
    if [ -f "$conf" ] && ! grep -qF "$marker" "$conf" && [ ! -e "$conf.orig" ]; then
        cp -p "$conf" "$conf.orig"
        echo "podman-setup: kept the previous $conf as $conf.orig"
    fi
    printf '%s\n' "$wanted" >"$conf.tmp"
    mv "$conf.tmp" "$conf"
    echo "podman-setup: wrote $conf (nofile=$nofile, nproc=$nproc, runtime runc)"
fi

# Fail here, with podman's own words, rather than later in the tests.
podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.EventLogger}}' \
    | sed 's/^/podman-setup: podman info: runtime, cgroup manager, events: /'
