#!/usr/bin/env bash
# UDP echoes per second through edshim and through Debian's docker-proxy, in the same
# run, against the same echo server: 64-byte datagrams, 16 in flight from one client
# (one flow) — or, with CLIENTS=16 IN_FLIGHT=1, from 16 clients with one each (16
# flows) — medians of ROUNDS rounds. Both proxies are started the way dockerd
# 20.10 starts docker-proxy (-proto udp -host-ip 0.0.0.0 …, status pipe on fd 3).
#
#   bench/udp-bench.sh            (make bench builds the release binary and the tools)
#
# Environment: EDSHIM (default .build/release/edshim), DOCKER_PROXY (default
# /usr/sbin/docker-proxy, fetched from Debian's docker.io package when missing),
# BENCH_DIR (where udp-load and udp-echo-server are), ROUNDS (5), SECONDS_PER_RUN (3),
# HOST_IP (0.0.0.0), CLIENTS (1), IN_FLIGHT (16, per client), GSO (0; 1: the client
# sends each burst as one UDP GSO send and takes coalesced replies, and the echo
# server does the same, as QUIC stacks do). Two more lines, for
# comparison: edshim with busy polling on (EDSHIM_UDP_BUSY_POLL=100, opt-in), and
# bench/udp-reference-proxy, the least a proxy on kernel sockets can do (a yardstick).
set -euo pipefail
cd "$(dirname "$0")/.."

EDSHIM=${EDSHIM:-$PWD/.build/release/edshim}
DOCKER_PROXY=${DOCKER_PROXY:-/usr/sbin/docker-proxy}
BENCH_DIR=${BENCH_DIR:-$PWD/.build/bench}
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
HOST_IP=${HOST_IP:-0.0.0.0}
SIZE=64
CLIENTS=${CLIENTS:-1}
IN_FLIGHT=${IN_FLIGHT:-16}
GSO=${GSO:-0}

say() { echo "udp-bench: $*" >&2; }

[[ -x "$EDSHIM" ]] || { say "no edshim at $EDSHIM: run make release (or make bench)"; exit 1; }
for tool in udp-load udp-echo-server udp-reference-proxy; do
    [[ -x "$BENCH_DIR/$tool" ]] || { say "no $BENCH_DIR/$tool: run make bench"; exit 1; }
done

# docker-proxy comes from Debian's docker.io package. Only the one binary is needed:
# unpack it rather than install the package (which would want to start dockerd).
if [[ ! -x "$DOCKER_PROXY" ]]; then
    mkdir -p "$BENCH_DIR/docker.io"
    if [[ ! -x "$BENCH_DIR/docker.io/usr/sbin/docker-proxy" ]]; then
        say "no docker-proxy at $DOCKER_PROXY: unpacking it from Debian's docker.io package"
        ( cd "$BENCH_DIR" && { apt-get download docker.io >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download docker.io >/dev/null; }; } )
        dpkg-deb -x "$BENCH_DIR"/docker.io_*.deb "$BENCH_DIR/docker.io"
    fi
    DOCKER_PROXY="$BENCH_DIR/docker.io/usr/sbin/docker-proxy"
fi

work=$(mktemp -d /tmp/edshim-bench-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_udp_port() {
    python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'
}

# Starts a docker-proxy-style proxy, waits for its report on fd 3.
start_proxy() {
    local name=$1 binary=$2 host_port=$3 busy_poll=${4:-0}
    mkfifo "$work/$name.status"
    EDSHIM_UDP_BUSY_POLL=$busy_poll "$binary" -proto udp -host-ip "$HOST_IP" -host-port "$host_port" \
        -container-ip 127.0.0.1 -container-port "$echo_port" \
        3>"$work/$name.status" 2>"$work/$name.log" &
    pids+=($!)
    local status
    status=$(timeout 16 cat "$work/$name.status" || true)
    [[ "$status" == 0* ]] || { say "$name did not start: ${status:-no report} $(cat "$work/$name.log")"; exit 1; }
}

echo_port=$(free_udp_port)
echo_flags=()
[[ "$GSO" == 1 ]] && echo_flags=(--gro)
"$BENCH_DIR/udp-echo-server" 127.0.0.1 "$echo_port" "${echo_flags[@]}" >"$work/echo.log" &
pids+=($!)
for _ in $(seq 50); do grep -q ready "$work/echo.log" 2>/dev/null && break; sleep 0.1; done

docker_proxy_port=$(free_udp_port)
edshim_port=$(free_udp_port)
polling_port=$(free_udp_port)
reference_port=$(free_udp_port)
start_proxy docker-proxy "$DOCKER_PROXY" "$docker_proxy_port"
start_proxy edshim "$EDSHIM" "$edshim_port"
start_proxy edshim-polling "$EDSHIM" "$polling_port" 100
start_proxy reference "$BENCH_DIR/udp-reference-proxy" "$reference_port"

# The address the client sends to a proxy: loopback of HOST_IP's family.
case $HOST_IP in
    0.0.0.0) proxy_address=127.0.0.1 ;;
    ::) proxy_address=::1 ;;
    *) proxy_address=$HOST_IP ;;
esac

measure() {
    "$BENCH_DIR/udp-load" "$1" "$2" --size "$SIZE" --in-flight "$IN_FLIGHT" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" --warmup 0.5 --gso "$GSO"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

endpoints="plain endpoints"
[[ "$GSO" == 1 ]] && endpoints="GSO/GRO endpoints"
say "$(nproc) CPUs, $(uname -r); $ROUNDS rounds of ${SECONDS_PER_RUN}s each; $SIZE-byte datagrams, $CLIENTS client(s) with $IN_FLIGHT in flight each, $endpoints, proxies on $HOST_IP"
direct=() through_docker_proxy=() through_edshim=() through_polling=() through_reference=()
for round in $(seq "$ROUNDS"); do
    # Rotate the order each round so that neither proxy always runs first.
    case $((round % 3)) in
        1) order="direct docker-proxy edshim edshim-polling reference" ;;
        2) order="docker-proxy edshim edshim-polling reference direct" ;;
        0) order="edshim edshim-polling reference direct docker-proxy" ;;
    esac
    line=""
    for target in $order; do
        case $target in
            direct) rate=$(measure 127.0.0.1 "$echo_port"); direct+=("$rate") ;;
            docker-proxy) rate=$(measure "$proxy_address" "$docker_proxy_port"); through_docker_proxy+=("$rate") ;;
            edshim) rate=$(measure "$proxy_address" "$edshim_port"); through_edshim+=("$rate") ;;
            edshim-polling) rate=$(measure "$proxy_address" "$polling_port"); through_polling+=("$rate") ;;
            reference) rate=$(measure "$proxy_address" "$reference_port"); through_reference+=("$rate") ;;
        esac
        line="$line $target=$rate"
    done
    say "round $round:$line"
done

direct_median=$(echo "${direct[*]}" | median)
docker_proxy_median=$(echo "${through_docker_proxy[*]}" | median)
edshim_median=$(echo "${through_edshim[*]}" | median)
polling_median=$(echo "${through_polling[*]}" | median)
reference_median=$(echo "${through_reference[*]}" | median)
over_docker_proxy() { awk -v a="$1" -v b="$docker_proxy_median" 'BEGIN { printf "%.2f", a / b }'; }
ratio=$(over_docker_proxy "$edshim_median")

printf '\nUDP echoes per second (median of %d rounds, %d-byte datagrams, %d client(s) with %d in flight each, %s)\n' "$ROUNDS" "$SIZE" "$CLIENTS" "$IN_FLIGHT" "$endpoints"
printf '  %-26s %10s\n' "direct to the echo server" "$direct_median"
printf '  %-26s %10s\n' "through docker-proxy" "$docker_proxy_median"
printf '  %-26s %10s\n' "through edshim" "$edshim_median"
printf '  %-26s %9sx\n' "edshim / docker-proxy" "$ratio"
printf '  %-26s %10s  (%sx; EDSHIM_UDP_BUSY_POLL=100)\n' "through edshim, polling" "$polling_median" "$(over_docker_proxy "$polling_median")"
printf '  %-26s %10s  (%sx; bench/udp-reference-proxy.c, a yardstick)\n' "through a minimal C proxy" "$reference_median" "$(over_docker_proxy "$reference_median")"
printf '  rounds: direct %s | docker-proxy %s | edshim %s | edshim polling %s | minimal C proxy %s\n' "${direct[*]}" "${through_docker_proxy[*]}" "${through_edshim[*]}" "${through_polling[*]}" "${through_reference[*]}"
