#!/usr/bin/env python3
"""Latency of a TCP port a proxy relays itself, with many other connections open.

edshim's shim relays connections itself only while Envoy cannot take the port (the
server or Envoy down, or the connections queued on dockerd >= 28's socket before
Envoy listened); docker-proxy always does. A host whose Envoy stops can leave
thousands of connections on the shims, so what counts is that one more ready
connection costs the same whatever the others are doing.

Each proxy is started the way dockerd 20.10 starts it (status pipe on fd 3, edshim
told a server socket that does not exist, so it serves the port itself), N idle
connections are opened through it (each carried one byte both ways), then one
connection sends 4 bytes and waits for their echo, 300 times. Rounds alternate the
proxies; the script prints each round and the medians of the rounds' p50 and p99.

    bench/tcp-relay.py        (make bench runs it after building the release binary)

Environment: EDSHIM (default .build/release/edshim), DOCKER_PROXY (default
/usr/sbin/docker-proxy, or the copy udp-bench.sh unpacked), N (2000), ROUNDS (3),
PORT (43500: it uses PORT and PORT+1 on 127.0.0.1).
"""
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EDSHIM = os.environ.get("EDSHIM", os.path.join(ROOT, ".build/release/edshim"))
DOCKER_PROXY = os.environ.get("DOCKER_PROXY", "/usr/sbin/docker-proxy")
if not os.access(DOCKER_PROXY, os.X_OK):
    DOCKER_PROXY = os.path.join(os.environ.get("BENCH_DIR", os.path.join(ROOT, ".build/bench")), "docker.io/usr/sbin/docker-proxy")
N = int(os.environ.get("N", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
PORT = int(os.environ.get("PORT", "43500"))
EXCHANGES = 300

ECHO_SERVER = """
import resource, selectors, socket, sys
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
selector = selectors.EpollSelector()
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(4096)
listener.setblocking(False)
selector.register(listener, selectors.EVENT_READ)
while True:
    for key, _ in selector.select():
        if key.fileobj is listener:
            connection, _ = listener.accept()
            connection.setblocking(False)
            selector.register(connection, selectors.EVENT_READ)
            continue
        try:
            data = key.fileobj.recv(65536)
        except OSError:
            data = b""
        if data:
            key.fileobj.send(data)
        else:
            selector.unregister(key.fileobj)
            key.fileobj.close()
"""


def say(message):
    print(f"tcp-relay: {message}", file=sys.stderr, flush=True)


def start_proxy(binary, environment):
    """Starts `binary` with docker-proxy's flags and waits for its status on fd 3."""
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [binary, "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", str(PORT),
         "-container-ip", "127.0.0.1", "-container-port", str(PORT + 1)],
        env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, close_fds=False,
        preexec_fn=lambda: (os.dup2(write_end, 3), os.set_inheritable(3, True)))
    os.close(write_end)
    status = os.read(read_end, 512)
    os.close(read_end)
    if status != b"0\n":
        process.kill()
        process.wait()
        raise RuntimeError(f"{binary} reported {status!r}")
    return process


def measure(binary, environment):
    """(p50, p99) in milliseconds of one connection's echoes beside N idle ones."""
    process = start_proxy(binary, environment)
    idle = []
    try:
        for _ in range(N):
            connection = socket.create_connection(("127.0.0.1", PORT))
            connection.sendall(b"x")
            connection.recv(1)
            idle.append(connection)
        probe = socket.create_connection(("127.0.0.1", PORT))
        probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        idle.append(probe)
        times = []
        for _ in range(EXCHANGES):
            start = time.perf_counter()
            probe.sendall(b"ping")
            received = b""
            while len(received) < 4:
                received += probe.recv(16)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        return statistics.median(times), times[int(len(times) * 0.99)]
    finally:
        for connection in idle:
            connection.close()
        process.terminate()
        process.wait()


def main():
    for binary in (EDSHIM, DOCKER_PROXY):
        if not os.access(binary, os.X_OK):
            say(f"no executable at {binary}: run make bench (it builds edshim and fetches docker-proxy)")
            return 1
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="edshim-tcp-relay-") as directory:
        edshim_environment = dict(os.environ, EDSHIM_SOCKET=os.path.join(directory, "no-server.sock"))
        targets = [
            ("docker-proxy", DOCKER_PROXY, dict(os.environ)),
            ("edshim, serving the port itself", EDSHIM, edshim_environment),
        ]
        echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(PORT + 1)])
        try:
            time.sleep(0.5)
            results = {name: [] for name, _, _ in targets}
            for round_number in range(ROUNDS):
                order = targets if round_number % 2 == 0 else list(reversed(targets))
                for name, binary, environment in order:
                    p50, p99 = measure(binary, environment)
                    results[name].append((p50, p99))
                    say(f"round {round_number + 1}: {name}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
                    time.sleep(1)
        finally:
            echo.kill()
            echo.wait()
    print(f"TCP relay, one connection's echo beside {N} idle ones ({ROUNDS} rounds, medians):")
    medians = {}
    for name, _, _ in targets:
        p50 = statistics.median(r[0] for r in results[name])
        p99 = statistics.median(r[1] for r in results[name])
        medians[name] = p50
        print(f"  {name:34} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms")
    ratio = medians["edshim, serving the port itself"] / medians["docker-proxy"]
    print(f"  edshim / docker-proxy (p50)        {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
