#!/usr/bin/env bash
# HTTP requests per second and latency through edshim (Envoy, HTTP mode, access log
# on as by default) and through Debian's docker-proxy, in the same run, against the
# same backend: wrk with CONNECTIONS keep-alive connections, medians of ROUNDS rounds.
# This is the price (or not) of Envoy's HTTP handling, metrics and access log against
# a plain byte copier; direct to the backend is the ceiling, and a bare Envoy (router
# only, static cluster) the yardstick that tells Envoy's own cost from edshim's
# configuration's.
#
#   bench/http-bench.sh           (make bench runs it after building the release binary)
#
# Environment: EDSHIM (default .build/release/edshim), DOCKER_PROXY (default
# /usr/sbin/docker-proxy, or the copy udp-bench.sh unpacked), BENCH_DIR (where
# http-server is), ENVOY_BIN, ROUNDS (3), SECONDS_PER_RUN (5), CONNECTIONS (16),
# THREADS (wrk's, 2), ACCESS_LOG (the server's --access-log: stdout, its default,
# which this script sends to a file; off measures Envoy without it), MODE (http, or
# tcp for Envoy's TCP proxy: the server's --default-mode).
set -euo pipefail
cd "$(dirname "$0")/.."

EDSHIM=${EDSHIM:-$PWD/.build/release/edshim}
BENCH_DIR=${BENCH_DIR:-$PWD/.build/bench}
DOCKER_PROXY=${DOCKER_PROXY:-/usr/sbin/docker-proxy}
[[ -x "$DOCKER_PROXY" ]] || DOCKER_PROXY=$BENCH_DIR/docker.io/usr/sbin/docker-proxy
ENVOY=${ENVOY_BIN:-$(command -v envoy || true)}
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
ACCESS_LOG=${ACCESS_LOG:-stdout}
MODE=${MODE:-http}

say() { echo "http-bench: $*" >&2; }
[[ -x "$EDSHIM" ]] || { say "no edshim at $EDSHIM: run make release"; exit 1; }
[[ -x "$BENCH_DIR/http-server" ]] || { say "no $BENCH_DIR/http-server: run make bench"; exit 1; }
[[ -x "$DOCKER_PROXY" ]] || { say "no docker-proxy at $DOCKER_PROXY: run make bench (it fetches one)"; exit 1; }
[[ -x "$ENVOY" ]] || { say "no Envoy: scripts/ensure-test-deps.sh --envoy-only"; exit 1; }
if ! command -v wrk >/dev/null 2>&1; then
    (( EUID == 0 )) && command -v apt-get >/dev/null 2>&1 || { say "no wrk: install it (apt-get install wrk)"; exit 1; }
    say "installing wrk (apt-get install wrk)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
fi

work=$(mktemp -d /tmp/edshim-http-bench-XXXXXX)
pids=()
cleanup() {
    # The shims first (they deregister), then everything else.
    for pid in "${pids[@]:3}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'; }

backend=$(free_port)
"$BENCH_DIR/http-server" 127.0.0.1 "$backend" >"$work/backend.log" &
pids+=("$!")
export EDSHIM_SOCKET="$work/edshim.sock"
"$EDSHIM" server --socket "$EDSHIM_SOCKET" --xds-dir "$work/xds" --state-file "$work/state.json" --admin-address off \
    --access-log "$ACCESS_LOG" --default-mode "$MODE" >"$work/server.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do [[ -S "$EDSHIM_SOCKET" ]] && break; sleep 0.05; done
admin=$(free_port)
"$EDSHIM" bootstrap --xds-dir "$work/xds" --admin-address "127.0.0.1:$admin" >"$work/envoy.yaml"
# As contrib/envoy-edshim.service runs it (one worker per CPU); the access log goes to a file.
"$ENVOY" -c "$work/envoy.yaml" --disable-hot-restart -l error --file-flush-interval-msec 1000 >"$work/envoy.log" 2>&1 &
pids+=("$!")
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$admin/ready" >/dev/null 2>&1 && break; sleep 0.05; done
grep -q ready "$work/backend.log" || { sleep 0.5; grep -q ready "$work/backend.log"; }

# A bare Envoy beside it, as a yardstick: one listener with the HTTP connection manager
# and the router only, a static cluster to the same backend, no access log, no
# request id, nothing of edshim's. What edshim's Envoy costs beyond it is the price of
# edshim's configuration; what it costs alone is Envoy's own HTTP handling.
bare_port=$(free_port)
bare_admin=$(free_port)
while [[ "$bare_admin" == "$bare_port" ]]; do bare_admin=$(free_port); done
cat >"$work/bare-envoy.yaml" <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $bare_admin}}}
static_resources:
  listeners:
  - name: bare
    address: {socket_address: {address: 127.0.0.1, port_value: $bare_port}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bare
          route_config: {virtual_hosts: [{name: bare, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: backend}}]}]}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: backend
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $backend}}}}]}]
EOF
"$ENVOY" -c "$work/bare-envoy.yaml" --disable-hot-restart -l error >"$work/bare-envoy.log" 2>&1 &
pids+=("$!")
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$bare_admin/ready" >/dev/null 2>&1 && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$bare_port/" -o /dev/null || { say "the bare Envoy does not answer: $(cat "$work/bare-envoy.log")"; exit 1; }

# Starts a proxy the way dockerd 20.10 does (status pipe on fd 3), waits for "0".
start_proxy() {
    local binary=$1 port=$2 fifo="$work/status-$2"
    mkfifo "$fifo"
    "$binary" -proto tcp -host-ip 0.0.0.0 -host-port "$port" -container-ip 127.0.0.1 -container-port "$backend" \
        3>"$fifo" >/dev/null 2>>"$work/proxies.log" &
    pids+=("$!")
    local status; status=$(timeout 16 cat "$fifo" || true)
    [[ "$status" == "0" ]] || { say "$binary on $port reported: ${status:-nothing} $(cat "$work/proxies.log")"; exit 1; }
}
edshim_port=$(free_port)
docker_proxy_port=$(free_port)
start_proxy "$EDSHIM" "$edshim_port"
start_proxy "$DOCKER_PROXY" "$docker_proxy_port"
# The headers whole, then matched: `grep -q` leaving early would fail curl's write.
[[ "$MODE" != http ]] || [[ "$(curl -sf "http://127.0.0.1:$edshim_port/" -o /dev/null -D - | tr 'A-Z' 'a-z')" == *x-envoy-upstream-service-time:* ]] \
    || { say "edshim's port is not answered by Envoy"; exit 1; }

# One wrk run: "requests-per-second p50-ms p99-ms".
measure() {
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$1/" | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /^Requests\/sec:/ { rate = int($2) }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        / Non-2xx or 3xx responses:| Socket errors:/ { errors = errors " " $0 }
        END { printf "%d %.2f %.2f%s\n", rate, p50, p99, (errors ? " ERRORS" errors : "") }'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

say "$(nproc) CPUs, $(uname -r); $ROUNDS rounds of ${SECONDS_PER_RUN}s; wrk -t$THREADS -c$CONNECTIONS, keep-alive GET; Envoy in $MODE mode, access log $ACCESS_LOG"
declare -A rates p50s p99s
for round in $(seq "$ROUNDS"); do
    case $((round % 4)) in
        1) order="direct docker-proxy edshim bare-envoy" ;;
        2) order="docker-proxy edshim bare-envoy direct" ;;
        3) order="edshim bare-envoy direct docker-proxy" ;;
        0) order="bare-envoy direct docker-proxy edshim" ;;
    esac
    line=""
    for target in $order; do
        case $target in
            direct) port=$backend ;;
            docker-proxy) port=$docker_proxy_port ;;
            edshim) port=$edshim_port ;;
            bare-envoy) port=$bare_port ;;
        esac
        read -r rate p50 p99 rest < <(measure "$port")
        [[ -z "$rest" ]] || { say "$target: wrk reported$rest"; exit 1; }
        rates[$target]="${rates[$target]:-} $rate"
        p50s[$target]="${p50s[$target]:-} $p50"
        p99s[$target]="${p99s[$target]:-} $p99"
        line="$line $target=$rate/s (p50 ${p50} ms, p99 ${p99} ms)"
    done
    say "round $round:$line"
done

lines=$(grep -c '"service"' "$work/envoy.log" || true)
printf '\nHTTP requests per second (median of %d rounds of %ds, wrk -t%d -c%d, keep-alive GET)\n' "$ROUNDS" "$SECONDS_PER_RUN" "$THREADS" "$CONNECTIONS"
for target in direct docker-proxy edshim bare-envoy; do
    printf '  %-14s %8s req/s   p50 %6s ms   p99 %6s ms\n' "$target" \
        "$(echo "${rates[$target]}" | median)" "$(echo "${p50s[$target]}" | median)" "$(echo "${p99s[$target]}" | median)"
done
awk -v e="$(echo "${rates[edshim]}" | median)" -v d="$(echo "${rates[docker-proxy]}" | median)" \
    'BEGIN { printf "  edshim / docker-proxy: %.2f× the requests per second\n", e / d }'
awk -v e="$(echo "${rates[edshim]}" | median)" -v b="$(echo "${rates[bare-envoy]}" | median)" -v d="$(echo "${rates[docker-proxy]}" | median)" \
    'BEGIN { printf "  bare Envoy / docker-proxy: %.2f×; edshim / bare Envoy: %.2f× (the cost of edshim'"'"'s configuration)\n", b / d, e / b }'
echo "  (Envoy wrote $lines access log lines during the run)"
