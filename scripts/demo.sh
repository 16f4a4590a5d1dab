#!/usr/bin/env bash
# make demo: a published port, the way dockerd publishes it, served by Envoy.
#
# Starts, in a temporary directory: edshim server, Envoy (from `edshim bootstrap`),
# a small HTTP backend standing in for a container, and edshim exactly as dockerd
# runs it (docker-proxy flags, status pipe on fd 3). Then shows a request answered
# through Envoy, the registration in `edshim status` and Envoy's admin URL.
# Ctrl-C tears it all down.
set -euo pipefail

EDSHIM="${EDSHIM_BIN:-$(pwd)/.build/debug/edshim}"
ENVOY="${ENVOY_BIN:-$(command -v envoy || true)}"
[[ -x "$EDSHIM" ]] || { echo "demo: no edshim at $EDSHIM (run: swift build)" >&2; exit 1; }
[[ -x "$ENVOY" ]] || { echo "demo: Envoy not found (run: scripts/ensure-test-deps.sh --envoy-only)" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'
}

DIR="$(mktemp -d /tmp/edshim-demo-XXXXXX)"
export EDSHIM_SOCKET="$DIR/edshim.sock"
ADMIN_PORT="$(free_port)"
BACKEND_PORT="$(free_port)"
HOST_PORT="${DEMO_PORT:-$(free_port)}"
PIDS=()

# Every child runs in its own session, so Ctrl-C reaches only this script, which
# then stops them in order: the shim first (SIGINT, as dockerd does; it deregisters
# and Envoy lets go of the port), then the backend, Envoy and the server.
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "== tearing down"
    for pid in "${PIDS[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$DIR"
    echo "== done"
}
trap cleanup EXIT INT TERM

step() { echo; echo "== $*"; }

step "edshim server (socket $EDSHIM_SOCKET, xDS in $DIR/xds)"
setsid "$EDSHIM" server --socket "$EDSHIM_SOCKET" --xds-dir "$DIR/xds" --state-file "$DIR/state.json" \
    >"$DIR/server.log" 2>&1 &
PIDS=("$!" "${PIDS[@]}")
for _ in $(seq 100); do [[ -S "$EDSHIM_SOCKET" ]] && break; sleep 0.05; done

step "Envoy, from \`edshim bootstrap --xds-dir $DIR/xds --admin-address 127.0.0.1:$ADMIN_PORT\`"
"$EDSHIM" bootstrap --xds-dir "$DIR/xds" --admin-address "127.0.0.1:$ADMIN_PORT" >"$DIR/envoy.yaml"
setsid "$ENVOY" -c "$DIR/envoy.yaml" --disable-hot-restart -l warning >"$DIR/envoy.log" 2>&1 &
PIDS=("$!" "${PIDS[@]}")
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && break; sleep 0.05; done

step "a backend on 127.0.0.1:$BACKEND_PORT (standing in for a container)"
mkdir -p "$DIR/www" && echo "hello from the container behind Envoy" >"$DIR/www/index.html"
setsid python3 -m http.server "$BACKEND_PORT" --bind 127.0.0.1 --directory "$DIR/www" >"$DIR/backend.log" 2>&1 &
PIDS=("$!" "${PIDS[@]}")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$BACKEND_PORT/" >/dev/null 2>&1 && break; sleep 0.05; done

step "edshim, as dockerd runs it: status pipe on fd 3"
echo "   $EDSHIM -proto tcp -host-ip 0.0.0.0 -host-port $HOST_PORT -container-ip 127.0.0.1 -container-port $BACKEND_PORT"
mkfifo "$DIR/status"
setsid "$EDSHIM" -proto tcp -host-ip 0.0.0.0 -host-port "$HOST_PORT" \
    -container-ip 127.0.0.1 -container-port "$BACKEND_PORT" 3>"$DIR/status" 2>>"$DIR/shim.log" &
PIDS=("$!" "${PIDS[@]}")
STATUS="$(cat "$DIR/status")"
if [[ "$STATUS" != "0" ]]; then
    echo "   the shim reported: $STATUS" >&2
    exit 1
fi
echo "   fd 3 said: 0 (served)"

step "a request to 127.0.0.1:$HOST_PORT, answered through Envoy"
curl -si "http://127.0.0.1:$HOST_PORT/" | sed 's/^/   /'

step "edshim status"
"$EDSHIM" status | sed 's/^/   /'

step "Envoy"
echo "   admin:     http://127.0.0.1:$ADMIN_PORT/"
echo "   listeners: $(curl -s "http://127.0.0.1:$ADMIN_PORT/listeners" | tr '\n' ' ')"
echo "   stats:     curl -s http://127.0.0.1:$ADMIN_PORT/stats | grep unknown-$HOST_PORT"
echo
echo "Try: curl -i http://127.0.0.1:$HOST_PORT/   (Ctrl-C to stop and tear everything down)"
while true; do sleep 1; done
