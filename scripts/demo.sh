#!/usr/bin/env bash
# make demo: a published Docker port, served by Envoy through edshim.
#
# As root (the usual case on a Docker host), in a temporary directory: a private
# dockerd 20.10 with edshim as its userland proxy (scripts/demo-dockerd.sh), edshim
# server reading that dockerd's labels, Envoy from `edshim bootstrap`, and then
# `docker run -p … -l ServiceName=hello …`. It shows the proxies dockerd started, a
# request answered through Envoy, a published UDP port that edshim proxies itself,
# `edshim status`, and the Envoy cluster named from the container's labels.
#
# Without root (dockerd needs it), or with DEMO_DOCKER=0, it says so and shows the
# same path without dockerd: small HTTP and UDP backends stand in for the container,
# and edshim is started exactly as dockerd runs it (docker-proxy flags, status pipe
# on fd 3), once for each.
#
# Ctrl-C tears it all down. DEMO_PORT and DEMO_UDP_PORT pick the host ports of the
# TCP and the UDP port, DEMO_ADMIN_PORT Envoy's admin port (a free one each,
# otherwise); DEMO_ONCE=1 tears down right after showing everything (the tests run
# it so).
set -euo pipefail
cd "$(dirname "$0")/.."

EDSHIM="${EDSHIM_BIN:-$(pwd)/.build/debug/edshim}"
ENVOY="${ENVOY_BIN:-$(command -v envoy || true)}"
[[ -x "$EDSHIM" ]] || { echo "demo: no edshim at $EDSHIM (run: swift build)" >&2; exit 1; }
[[ -x "$ENVOY" ]] || { echo "demo: Envoy not found (run: scripts/ensure-test-deps.sh --envoy-only)" >&2; exit 1; }
[[ "$EDSHIM" == /* ]] || EDSHIM="$PWD/$EDSHIM"

if [[ "${DEMO_DOCKER:-1}" == 0 ]]; then
    WITH_DOCKER=0
elif (( EUID != 0 )); then
    WITH_DOCKER=0
    # Not `sudo make demo`: that would build as root (a root-owned .build, and no
    # swift on sudo's PATH); the edshim and Envoy just found will do.
    echo "demo: not root, so no private dockerd (it needs root). With the edshim just built, as root:" >&2
    printf 'demo:   sudo env PATH=%q EDSHIM_BIN=%q ENVOY_BIN=%q %q\n' "$PATH" "$EDSHIM" "$ENVOY" "$PWD/scripts/demo.sh" >&2
    echo "demo: showing edshim as dockerd runs it, with a stand-in for the container." >&2
else
    WITH_DOCKER=1
    scripts/ensure-test-deps.sh --docker-only
fi

# A free port: TCP, or UDP with `free_port udp`.
free_port() {
    python3 -c 'import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1:] == ["udp"] else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])' "$@"
}

# docker run, its output (the container id) left out, and its warning that IPv4
# forwarding is disabled too: the private dockerd leaves the host's forwarding alone
# (--ip-forward=false), and a port published on this host needs none.
docker_run() {
    local status=0
    "${DOCKER[@]}" run "$@" >/dev/null 2>"$DIR/docker-run.err" || status=$?
    grep -v 'IPv4 forwarding is disabled' "$DIR/docker-run.err" >&2 || true
    return "$status"
}

PIDS=()
UDP_ECHO_PID=""
# Every child runs in its own session, so Ctrl-C reaches only this script, which
# then stops them in order: the containers and dockerd first (its proxies get SIGINT
# and deregister; Envoy lets go of the ports) — or, without dockerd, the shim and
# the backend — then Envoy and the server.
cleanup() {
    trap - EXIT
    # Its own lines may have no reader any more (make demo | head): not a reason to stop.
    trap '' PIPE
    set +e
    echo
    echo "== tearing down"
    if [[ -n "$UDP_ECHO_PID" ]]; then
        kill -TERM "$UDP_ECHO_PID" 2>/dev/null || true
        wait "$UDP_ECHO_PID" 2>/dev/null || true
    fi
    ! declare -F demo_dockerd_stop >/dev/null || demo_dockerd_stop
    for pid in "${PIDS[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$DIR"
    echo "== done"
}
DIR="$(mktemp -d /tmp/edshim-demo-XXXXXX)"
trap cleanup EXIT
trap 'exit 130' INT TERM
# Output piped to a reader that stopped (make demo | head) tears down too.
trap 'exit 141' PIPE
export EDSHIM_SOCKET="$DIR/edshim.sock"
# Two different ports (each free when chosen): Envoy's admin and the published one.
ADMIN_PORT="${DEMO_ADMIN_PORT:-$(free_port)}"
HOST_PORT="${DEMO_PORT:-$(free_port)}"
while [[ -z "${DEMO_PORT:-}" && "$HOST_PORT" == "$ADMIN_PORT" ]]; do HOST_PORT="$(free_port)"; done
# shellcheck source=scripts/demo-dockerd.sh
source scripts/demo-dockerd.sh

step() { echo; echo "== $*"; }
indent() { sed 's/^/   /'; }

# edshim started exactly as dockerd 20.10 starts a proxy, without dockerd: docker-proxy
# flags for protocol $1, host port in the variable named $2 on 0.0.0.0, the backend on
# 127.0.0.1:$3, and a status pipe on fd 3, whose answer it shows ($4: what 0 means for
# this protocol). A port another process took since free_port chose it (a busy host)
# is replaced by another free one, twice at most; not one given as $5=fixed (DEMO_PORT,
# DEMO_UDP_PORT).
shim_as_dockerd_runs_it() {
    local proto=$1 port_variable=$2 backend_port=$3 meaning=$4 fixed=${5:-} status attempt host_port
    for attempt in 1 2 3; do
        host_port=${!port_variable}
        rm -f "$DIR/$proto-status" && mkfifo "$DIR/$proto-status"
        setsid "$EDSHIM" -proto "$proto" -host-ip 0.0.0.0 -host-port "$host_port" \
            -container-ip 127.0.0.1 -container-port "$backend_port" 3>"$DIR/$proto-status" 2>>"$DIR/shim.log" &
        PIDS=("$!" "${PIDS[@]}")
        status="$(cat "$DIR/$proto-status")"
        if [[ "$status" == "0" ]]; then
            echo "   $EDSHIM -proto $proto -host-ip 0.0.0.0 -host-port $host_port -container-ip 127.0.0.1 -container-port $backend_port"
            echo "   fd 3 said: 0 ($meaning)"
            return 0
        fi
        if [[ ( "$status" == *"already in use"* || "$status" == *"already listens on"* ) && $attempt -lt 3 && -z "$fixed" ]]; then
            echo "   (port $host_port was taken meanwhile by another process: trying another)"
            printf -v "$port_variable" '%s' "$(free_port "$proto")"
            continue
        fi
        echo "   the $proto shim reported on fd 3: ${status:-nothing (it ended without reporting)}" >&2
        echo "   its log ($DIR/shim.log):" >&2
        tail -n 20 "$DIR/shim.log" 2>/dev/null | indent >&2
        exit 1
    done
}

SERVER_FLAGS=()
if (( WITH_DOCKER )); then
    step "a private dockerd, with edshim as its userland proxy"
    echo "   dockerd --userland-proxy-path=$EDSHIM --iptables=false …  (EDSHIM_SOCKET=$EDSHIM_SOCKET)"
    demo_dockerd_start "$EDSHIM" "$EDSHIM_SOCKET"
    echo "   dockerd $("${DOCKER[@]}" version --format '{{.Server.Version}}'), DOCKER_HOST=$DOCKER_HOST_URL"
    echo "   bridge $DEMO_BRIDGE ($DEMO_GATEWAY/24), cgroup /$DEMO_BRIDGE"
    SERVER_FLAGS=(--docker-host "$DOCKER_HOST_URL")
fi

step "edshim server (socket $EDSHIM_SOCKET, xDS in $DIR/xds)"
# No admin endpoint of its own (edshim status asks over the socket): its default port
# may be an installed server's, and one chosen here could be taken before it binds.
setsid "$EDSHIM" server --socket "$EDSHIM_SOCKET" --xds-dir "$DIR/xds" --state-file "$DIR/state.json" \
    --admin-address off "${SERVER_FLAGS[@]}" >"$DIR/server.log" 2>&1 &
PIDS=("$!" "${PIDS[@]}")
demo_wait 5 "edshim server" "$DIR/server.log" test -S "$EDSHIM_SOCKET"

step "Envoy, from \`edshim bootstrap --xds-dir $DIR/xds --admin-address 127.0.0.1:$ADMIN_PORT\`"
"$EDSHIM" bootstrap --xds-dir "$DIR/xds" --admin-address "127.0.0.1:$ADMIN_PORT" >"$DIR/envoy.yaml"
setsid "$ENVOY" -c "$DIR/envoy.yaml" --disable-hot-restart -l warning --file-flush-interval-msec 100 >"$DIR/envoy.log" 2>&1 &
PIDS=("$!" "${PIDS[@]}")
demo_wait 10 "Envoy" "$DIR/envoy.log" curl -sf "http://127.0.0.1:$ADMIN_PORT/ready"

if (( WITH_DOCKER )); then
    SERVICE=hello-demo-$HOST_PORT
    step "docker run: a busybox httpd, port 80 published on $HOST_PORT, with labels"
    echo "   docker run -d --name hello -l ServiceName=hello -l EnvironmentName=demo -p $HOST_PORT:80 $DEMO_IMAGE httpd -f -p 80 -h /www"
    docker_run -d --name hello -l ServiceName=hello -l EnvironmentName=demo -p "$HOST_PORT:80" \
        "$DEMO_IMAGE" httpd -f -p 80 -h /www
    echo "   dockerd started its userland proxies (one per address family):"
    ps --ppid "$DOCKERD_PID" -o pid=,args= | indent
    # docker run returns once the port is served; httpd itself may need a moment more.
    demo_wait 10 "the container's httpd" "$DOCKER_DIR/dockerd.log" curl -sf "http://127.0.0.1:$HOST_PORT/"
else
    BACKEND_PORT="$(free_port)"
    step "a backend on 127.0.0.1:$BACKEND_PORT (standing in for a container)"
    mkdir -p "$DIR/www" && echo "hello from the container behind Envoy" >"$DIR/www/index.html"
    setsid python3 -m http.server "$BACKEND_PORT" --bind 127.0.0.1 --directory "$DIR/www" >"$DIR/backend.log" 2>&1 &
    PIDS=("$!" "${PIDS[@]}")
    demo_wait 5 "the backend" "$DIR/backend.log" curl -sf "http://127.0.0.1:$BACKEND_PORT/"

    step "edshim, as dockerd runs it: status pipe on fd 3"
    shim_as_dockerd_runs_it tcp HOST_PORT "$BACKEND_PORT" served "${DEMO_PORT:+fixed}"
    SERVICE=unknown-$HOST_PORT
fi

step "a request to 127.0.0.1:$HOST_PORT, answered through Envoy"
curl -si "http://127.0.0.1:$HOST_PORT/" | indent

# A UDP answerer standing in for the container's server: python3 on port $1, in the
# network namespace of process $2 when given (the busybox image has no UDP server).
# Its command line names $DIR, so that a leftover would name the demo it came from.
udp_echo() {
    local netns=()
    [[ -z "${2:-}" ]] || netns=(nsenter --net="/proc/$2/ns/net")
    setsid "${netns[@]}" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(65535)
    reply = "the container got %r from %s:%d" % (data.decode(errors="replace"), peer[0], peer[1])
    s.sendto(reply.encode(), peer)' "$1" "$DIR" >"$DIR/udp-echo.log" 2>&1 &
    UDP_ECHO_PID=$!
}

UDP_PORT="${DEMO_UDP_PORT:-$(free_port udp)}"
if (( WITH_DOCKER )); then
    step "docker run: port 5353/udp published on $UDP_PORT — UDP stays with edshim, no Envoy"
    echo "   docker run -d --name dns -l ServiceName=dns -p $UDP_PORT:5353/udp $DEMO_IMAGE sleep 86400"
    docker_run -d --name dns -l ServiceName=dns -p "$UDP_PORT:5353/udp" "$DEMO_IMAGE" sleep 86400
    echo "   dockerd started edshim with -proto udp (one per address family):"
    ps --ppid "$DOCKERD_PID" -o pid=,args= | grep -e '-proto udp' | indent
    # Answer on 5353 inside the container's network namespace, so that the datagrams
    # really cross dockerd's bridge.
    udp_echo 5353 "$("${DOCKER[@]}" inspect -f '{{.State.Pid}}' dns)"
else
    UDP_BACKEND_PORT="$(free_port udp)"
    udp_echo "$UDP_BACKEND_PORT"
    step "edshim -proto udp, as dockerd runs it — UDP stays with edshim, no Envoy"
    shim_as_dockerd_runs_it udp UDP_PORT "$UDP_BACKEND_PORT" receiving "${DEMO_UDP_PORT:+fixed}"
fi
echo "   a datagram to 127.0.0.1:$UDP_PORT, and the reply edshim relayed back:"
python3 -c '
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
for _ in range(50):  # until the answerer is up
    s.sendto(b"hello over UDP", ("127.0.0.1", port))
    try:
        print(s.recv(65535).decode()); break
    except socket.timeout:
        pass
else:
    sys.exit("no reply through edshim on 127.0.0.1:%d" % port)' "$UDP_PORT" | indent

step "edshim status"
"$EDSHIM" status | indent

step "Envoy"
echo "   admin:     http://127.0.0.1:$ADMIN_PORT/"
echo "   listeners: $(curl -s "http://127.0.0.1:$ADMIN_PORT/listeners" | tr '\n' ' ')"
echo "   cluster:   $(curl -s "http://127.0.0.1:$ADMIN_PORT/clusters" | grep -m1 "^$SERVICE::.*::cx_total" || true)"
echo "   stats:     curl -s http://127.0.0.1:$ADMIN_PORT/stats | grep $SERVICE"
# Every change edshim made was taken: Envoy rejected none and failed to load none.
UPDATES="$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats?filter=(lds|cds)\.update_(rejected|failure)$" | sort)"
REFUSED="$(awk -F': ' '{ sum += $2 } END { print sum + 0 }' <<<"$UPDATES")"
echo "   updates rejected or failed: $REFUSED ($(tr '\n' ' ' <<<"$UPDATES" | sed 's/ $//'))"
ACCESS_LINE=""
for _ in $(seq 30); do
    ACCESS_LINE="$(grep -m1 "\"service\":\"$SERVICE\"" "$DIR/envoy.log" || true)"
    [[ -z "$ACCESS_LINE" ]] || break
    sleep 0.1
done
echo "   access log (Envoy's stdout): ${ACCESS_LINE:-(no line yet)}"
echo
echo "Try: curl -i http://127.0.0.1:$HOST_PORT/"
echo "     EDSHIM_SOCKET=$EDSHIM_SOCKET${DOCKER_HOST_URL:+ DOCKER_HOST=$DOCKER_HOST_URL} $EDSHIM status"
echo "     tail -f $DIR/envoy.log    # Envoy's access log, a JSON line per request"
if (( WITH_DOCKER )); then
    TRY_PORT="$(free_port)"
    echo "     DOCKER_HOST=$DOCKER_HOST_URL DOCKER_CONFIG=$DOCKER_DIR/cli ${DOCKER[*]} run -d -p $TRY_PORT:80 -l ServiceName=web $DEMO_IMAGE httpd -f -p 80 -h /www"
    echo "     (its warning that IPv4 forwarding is disabled is this private dockerd's: it leaves the host's forwarding alone, and a port published on this host needs none)"
fi
[[ "${DEMO_ONCE:-0}" != 1 ]] || exit 0
echo "(Ctrl-C to stop and tear everything down)"
while true; do sleep 1; done
