# A private dockerd for make demo (sourced by scripts/demo.sh): Debian's dockerd
# 20.10 and its own containerd, everything under $DIR/docker, on a bridge and in a
# cgroup of their own, with edshim as the userland proxy. It never touches docker0,
# iptables or a dockerd already on the machine. Needs root.
#
#   demo_dockerd_start EDSHIM EDSHIM_SOCKET   in $DIR/docker; sets DOCKER (the CLI,
#                                             with DOCKER_HOST and DOCKER_CONFIG
#                                             exported for it), DOCKER_HOST_URL,
#                                             DOCKERD_PID, DEMO_BRIDGE, DEMO_GATEWAY,
#                                             and imports DEMO_IMAGE
#   demo_dockerd_stop                         idempotent; removes every trace

DEMO_IMAGE=edshim-demo-busybox:latest
DOCKER_DIR=""
DEMO_BRIDGE=""
DEMO_GATEWAY=""
DOCKERD_PID=""
CONTAINERD_PID=""

# The docker CLI: Debian's own (20.10, dockerd's client) when there, else any on PATH.
demo_docker_cli() {
    if [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker; else command -v docker; fi
}

# A 10.200–254.x.0/24 that no route on this machine overlaps.
demo_free_subnet() {
    ip -4 -o route show table all | python3 -c '
import ipaddress, random, sys
kinds = {"local", "broadcast", "unicast", "unreachable", "blackhole", "prohibit", "throw", "multicast", "anycast", "nat"}
taken = []
for line in sys.stdin:
    words = [w for w in line.split() if w not in kinds]
    if words and words[0] != "default":
        try: taken.append(ipaddress.ip_network(words[0], strict=False))
        except ValueError: pass
for _ in range(200):
    net = ipaddress.ip_network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
    if not any(net.overlaps(t) for t in taken):
        print(net); break
else:
    sys.exit("no free 10.x.y.0/24 for the demo bridge")'
}

demo_dockerd_start() {
    local edshim=$1 socket=$2
    DOCKER_DIR="$DIR/docker"
    mkdir -p "$DOCKER_DIR"
    export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
    local missing=()
    for tool in dockerd containerd containerd-shim-runc-v2 runc ip tar; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [[ -x /bin/busybox ]] || missing+=(/bin/busybox)
    if (( ${#missing[@]} )); then
        echo "demo: missing ${missing[*]}: run scripts/ensure-test-deps.sh --docker-only" >&2
        return 1
    fi

    local subnet; subnet="$(demo_free_subnet)"
    DEMO_BRIDGE="edsdemo$(printf '%04x' $((RANDOM % 65536)))"
    ip link add name "$DEMO_BRIDGE" type bridge || {
        echo "demo: could not create the demo's bridge (it needs CAP_NET_ADMIN); DEMO_DOCKER=0 make demo runs without dockerd" >&2
        DEMO_BRIDGE=""
        return 1
    }
    DEMO_GATEWAY="${subnet%.0/24}.1"
    ip addr add "$DEMO_GATEWAY/24" dev "$DEMO_BRIDGE"
    ip link set "$DEMO_BRIDGE" up

    # Without the plugins dockerd does not use (the opt plugin would create /opt/containerd).
    printf 'version = 2\ndisabled_plugins = [%s]\n' \
        '"io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
         "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"' \
        >"$DOCKER_DIR/containerd.toml"
    setsid containerd --config "$DOCKER_DIR/containerd.toml" --address "$DOCKER_DIR/containerd.sock" \
        --root "$DOCKER_DIR/containerd/root" --state "$DOCKER_DIR/containerd/state" --log-level warn \
        >"$DOCKER_DIR/containerd.log" 2>&1 &
    CONTAINERD_PID=$!
    demo_wait 20 "containerd" "$DOCKER_DIR/containerd.log" test -S "$DOCKER_DIR/containerd.sock"

    DOCKER_HOST_URL="unix://$DOCKER_DIR/docker.sock"
    echo '{}' >"$DOCKER_DIR/daemon.json"
    # What makes dockerd run edshim for every published port: the two flags of
    # contrib/daemon.json, and EDSHIM_SOCKET, which dockerd hands to its proxies.
    EDSHIM_SOCKET="$socket" setsid dockerd --config-file "$DOCKER_DIR/daemon.json" \
        --data-root "$DOCKER_DIR/data" --exec-root "$DOCKER_DIR/exec" --pidfile "$DOCKER_DIR/docker.pid" \
        -H "$DOCKER_HOST_URL" --containerd "$DOCKER_DIR/containerd.sock" --storage-driver=vfs \
        --userland-proxy-path="$edshim" --iptables=false \
        --ip6tables=false --ip-forward=false --ip-masq=false --bridge="$DEMO_BRIDGE" \
        --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent="/$DEMO_BRIDGE" --shutdown-timeout=3 \
        >"$DOCKER_DIR/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    DOCKER=("$(demo_docker_cli)")
    export DOCKER_HOST="$DOCKER_HOST_URL" DOCKER_CONFIG="$DOCKER_DIR/cli"
    demo_wait 30 "dockerd" "$DOCKER_DIR/dockerd.log" "${DOCKER[@]}" version --format '{{.Server.Version}}'

    # The image: the machine's static busybox as a root filesystem (no registry needed).
    local root="$DOCKER_DIR/rootfs"
    mkdir -p "$root"/{bin,www,etc,tmp,root}
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
    done
    echo "hello from a Docker container, through Envoy" >"$root/www/index.html"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$DOCKER_DIR/rootfs.tar" .
    "${DOCKER[@]}" import "$DOCKER_DIR/rootfs.tar" "$DEMO_IMAGE" >/dev/null
    rm -rf "$root" "$DOCKER_DIR/rootfs.tar"
}

# demo_wait SECONDS NAME LOG COMMAND…: until COMMAND succeeds; fails with LOG's tail.
demo_wait() {
    local seconds=$1 name=$2 log=$3; shift 3
    for _ in $(seq $((seconds * 20))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "demo: $name did not come up in ${seconds}s; the end of $log:" >&2
    tail -20 "$log" >&2
    return 1
}

# Stops a process this script started: SIGTERM, then SIGKILL after GRACE seconds.
demo_terminate() {
    local pid=$1 grace=$2
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((grace * 20))); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

demo_dockerd_stop() {
    [[ -n "$DOCKER_DIR" ]] || return 0
    if [[ -n "$DOCKERD_PID" ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        local containers; containers="$("${DOCKER[@]}" ps -aq 2>/dev/null || true)"
        # shellcheck disable=SC2086 # one id per word
        [[ -z "$containers" ]] || "${DOCKER[@]}" rm -f -v $containers >/dev/null 2>&1 || true
    fi
    demo_terminate "$DOCKERD_PID" 15
    demo_terminate "$CONTAINERD_PID" 10
    # A containerd shim still running (none, normally): it names this containerd's socket.
    local pid
    for pid in $(pgrep -f -- "containerd-shim.* $DOCKER_DIR/containerd.sock" || true); do kill -KILL "$pid" 2>/dev/null || true; done
    # dockerd's mounts under its directories, deepest first.
    local mount
    for mount in $(awk -v dir="$DOCKER_DIR/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
        umount -l "$mount" 2>/dev/null || true
    done
    # The bridge, and the containers' cgroup named after it (v2, or each v1 hierarchy).
    if [[ -n "$DEMO_BRIDGE" ]]; then
        ip link del "$DEMO_BRIDGE" 2>/dev/null || true
        local cgroup
        for cgroup in /sys/fs/cgroup/"$DEMO_BRIDGE" /sys/fs/cgroup/*/"$DEMO_BRIDGE"; do
            [[ ! -d "$cgroup" ]] || find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
        done
    fi
    DOCKER_DIR=""
}
