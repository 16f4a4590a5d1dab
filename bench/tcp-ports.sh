#!/usr/bin/env bash
# What a published TCP port costs, edshim against Debian's docker-proxy in the same
# run, each started the way dockerd 20.10 starts it (status pipe on fd 3).
#
# Idle memory: N edshim shims (registered, served by Envoy) and N docker-proxy
# processes. A host runs one of these per published port and address family, so what
# counts is what each process keeps to itself: its private memory (smaps_rollup
# Private_Clean + Private_Dirty), with N of each running so that the binary's pages
# are shared as they are on a busy host.
#
# Time to publish: from each one's start to "0" on fd 3, which dockerd waits for
# before it starts the next proxy and before `docker run` returns. For edshim that
# includes registering and Envoy listening on the port. Then more edshim shims, up to
# MANY in all, to show how that time grows with the ports already published (Envoy
# reads every listener again on each change).
#
#   bench/tcp-ports.sh          (make bench runs it after building the release binary)
#
# Environment: EDSHIM (default .build/release/edshim), DOCKER_PROXY (default
# /usr/sbin/docker-proxy, or the copy udp-bench.sh unpacked), ENVOY_BIN, N (20),
# MANY (120).
set -euo pipefail
cd "$(dirname "$0")/.."

EDSHIM=${EDSHIM:-$PWD/.build/release/edshim}
DOCKER_PROXY=${DOCKER_PROXY:-/usr/sbin/docker-proxy}
[[ -x "$DOCKER_PROXY" ]] || DOCKER_PROXY=${BENCH_DIR:-$PWD/.build/bench}/docker.io/usr/sbin/docker-proxy
ENVOY=${ENVOY_BIN:-$(command -v envoy || true)}
N=${N:-20}
MANY=${MANY:-120}

say() { echo "tcp-ports: $*" >&2; }
[[ -x "$EDSHIM" ]] || { say "no edshim at $EDSHIM: run make release"; exit 1; }
[[ -x "$DOCKER_PROXY" ]] || { say "no docker-proxy at $DOCKER_PROXY: run make bench (it fetches one)"; exit 1; }
[[ -x "$ENVOY" ]] || { say "no Envoy: scripts/ensure-test-deps.sh --envoy-only"; exit 1; }

work=$(mktemp -d /tmp/edshim-tcp-ports-XXXXXX)
pids=()
cleanup() {
    # The shims first (they deregister), then Envoy, the backend and the server.
    for pid in "${pids[@]:3}" "${pids[@]:0:3}"; do kill -INT "$pid" 2>/dev/null || true; done
    local status=0
    wait "${pids[0]}" 2>/dev/null || status=$?
    if (( status >= 128 )); then
        say "the server died of signal $((status - 128)) while stopping; the end of its log:"
        tail -n 40 "$work/server.log" >&2
    fi
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'; }

export EDSHIM_SOCKET="$work/edshim.sock"
"$EDSHIM" server --socket "$EDSHIM_SOCKET" --xds-dir "$work/xds" --state-file "$work/state.json" --admin-address off >"$work/server.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do [[ -S "$EDSHIM_SOCKET" ]] && break; sleep 0.05; done
admin=$(free_port)
"$EDSHIM" bootstrap --xds-dir "$work/xds" --admin-address "127.0.0.1:$admin" >"$work/envoy.yaml"
"$ENVOY" -c "$work/envoy.yaml" --disable-hot-restart --concurrency 1 -l error >"$work/envoy.log" 2>&1 &
pids+=("$!")
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$admin/ready" >/dev/null 2>&1 && break; sleep 0.05; done
backend=$(free_port)
python3 -m http.server "$backend" --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
pids+=("$!")

# Starts one proxy ($1) the way dockerd 20.10 does (status pipe on fd 3), waits for
# "0", leaves its PID in $started and adds the time that took (µs) to $work/$3.publish.
start() {
    local binary=$1 port=$2 fifo="$work/status-$2" begun=${EPOCHREALTIME/./}
    mkfifo "$fifo"
    "$binary" -proto tcp -host-ip 0.0.0.0 -host-port "$port" -container-ip 127.0.0.1 -container-port "$backend" \
        3>"$fifo" >/dev/null 2>>"$work/proxies.log" &
    started=$!
    pids+=("$started")
    local status; status=$(cat "$fifo")
    [[ "$status" == "0" ]] || { say "$binary on $port reported: $status"; exit 1; }
    echo "$(( ${EPOCHREALTIME/./} - begun ))" >>"$work/$3.publish"
}

edshim_pids=(); proxy_pids=()
for _ in $(seq "$N"); do
    start "$EDSHIM" "$(free_port)" edshim; edshim_pids+=("$started")
    start "$DOCKER_PROXY" "$(free_port)" docker-proxy; proxy_pids+=("$started")
done
# Freshly written binaries are dirty in the page cache, which smaps would count as
# dirty private pages: write them back, then let the processes settle.
sync
sleep 2

# field PID NAME: a value in kB from /proc/PID/smaps_rollup (0 when absent)
field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/smaps_rollup"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
measure() {
    local name=$1; shift
    local private dirty pss threads
    private=$(for pid in "$@"; do echo $(( $(field "$pid" Private_Clean) + $(field "$pid" Private_Dirty) )); done | median)
    dirty=$(for pid in "$@"; do field "$pid" Private_Dirty; done | median)
    pss=$(for pid in "$@"; do field "$pid" Pss; done | median)
    threads=$(for pid in "$@"; do awk '/^Threads:/ { print $2 }' "/proc/$pid/status"; done | median)
    printf '%-14s private %6d kB   dirty %6d kB   pss %6d kB   threads %d\n' "$name" "$private" "$dirty" "$pss" "$threads"
    echo "$private" >"$work/$name.private"
}

echo "idle TCP port, medians of $N processes each ($(uname -r), $(nproc) CPUs):"
measure edshim "${edshim_pids[@]}"
measure docker-proxy "${proxy_pids[@]}"
awk -v e="$(cat "$work/edshim.private")" -v d="$(cat "$work/docker-proxy.private")" \
    'BEGIN { printf "edshim / docker-proxy private memory: %.2f×\n", e / d }'

echo
echo "time to publish a TCP port, start to \"0\" on fd 3 ($N of each, one after another):"
for name in edshim docker-proxy; do
    median <"$work/$name.publish" >"$work/$name.publish-median"
    printf '%-14s median %5.1f ms   slowest %5.1f ms\n' "$name" \
        "$(awk '{ print $1 / 1000 }' "$work/$name.publish-median")" "$(sort -n "$work/$name.publish" | tail -1 | awk '{ print $1 / 1000 }')"
done
awk -v e="$(cat "$work/edshim.publish-median")" -v d="$(cat "$work/docker-proxy.publish-median")" \
    'BEGIN { printf "edshim / docker-proxy time to publish: %.1f×\n", e / d }'

# The same shims, and more, one after another: the time to publish one more port
# against the number already published.
echo
echo "time to publish one more TCP port through edshim, against the ports already published:"
while (( ${#edshim_pids[@]} < MANY )); do
    start "$EDSHIM" "$(free_port)" edshim; edshim_pids+=("$started")
done
points=(0 $((MANY / 4)) $((MANY / 2)) $((MANY * 3 / 4)) $((MANY - 3)))
for point in "${points[@]}"; do
    # The median of the five around the point, so that one slow start does not decide.
    printf '  %4d published: %5.1f ms\n' "$point" \
        "$(sed -n "$((point + 1)),$((point + 5))p" "$work/edshim.publish" | median | awk '{ print $1 / 1000 }')"
done
