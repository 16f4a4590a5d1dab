import EdshimCore
import Foundation
import Synchronization
import Testing

/// The shim's own TCP relay, while it serves the port itself: it behaves as
/// docker-proxy's does, under load, faults and limits.
@Suite("Port served by the shim itself")
struct SelfServedRelayTests {
    @Test("serving the port itself, the relay passes each write on at once (no Nagle stall behind the container's delayed ACK) and probes idle connections, as docker-proxy does")
    func relaySocketsAsDockerProxys() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.status == "0\n", "served by the shim itself: \(shim.process.log)")
            let client = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
            defer { close(client) }
            // 50 keep-alive requests, each written in two parts a moment apart (the
            // relay then writes them to the container as two): with Nagle on the
            // relay's socket, the second part waits for the container's delayed ACK
            // of the first, 40 ms, once the exchange looks interactive to the kernel.
            let elapsed = try await onThread {
                var one: Int32 = 1
                setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
                let start = ContinuousClock.now
                for _ in 0..<50 {
                    try Sockets.sendAll(client, Array("GET /split HTTP/1.1\r\nHost: x\r\n".utf8))
                    usleep(2000)
                    try Sockets.sendAll(client, Array("\r\n".utf8))
                    try Self.receiveResponse(client)
                }
                return ContinuousClock.now - start
            }
            #expect(elapsed < .seconds(1), "50 split requests took \(elapsed) (about 2.1 s with Nagle, 0.1 s without)")

            // ss shows one timer per socket: keepalive's once no sent byte awaits its
            // ACK (the last response's may be delayed a moment).
            let ss = try SystemExecutables.required("ss", package: "iproute2")
            var shown = ""
            for _ in 0..<100 {
                shown = try await Binaries.run(ss, ["-tnoH", "state", "established", "( sport = :\(host.port) or dport = :\(backend.endpoint.port) )"], in: bed.directory).output
                let lines = shown.split(separator: "\n")
                if lines.count == 2, lines.allSatisfy({ $0.contains("timer:(keepalive,") }) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let lines = shown.split(separator: "\n")
            #expect(lines.count == 2, "the shim's two sockets of the connection: \(shown)")
            #expect(lines.allSatisfy { $0.contains("timer:(keepalive,") }, "keepalive on both: \(shown)")
        }
    }

    /// Reads one HTTP response (head, and a body of its Content-Length) from `fd`.
    private static func receiveResponse(_ fd: Int32) throws {
        var bytes: [UInt8] = []
        while true {
            if let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: bytes[..<end.lowerBound], as: UTF8.self).lowercased()
                let length = head.firstMatch(of: /content-length: *(\d+)/).flatMap { Int($0.1) } ?? 0
                if bytes.count >= end.upperBound + length { return }
            }
            bytes += try Sockets.receive(fd, count: 1)
        }
    }

    @Test("serving the port itself, a poll that fails (the open-files limit lowered under it) leaves the port served and its connections open, logged; SIGINT still stops it at once")
    func pollFailure() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.status == "0\n", "served by the shim itself: \(shim.process.log)")
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            let clients = try (0..<3).map { _ in try KeepAliveClient(dial) }
            for client in clients { #expect(try client.request()["content-length"] != nil) }

            let prlimit = try SystemExecutables.prlimit()
            func limit(_ soft: Int) async throws {
                let result = try await Binaries.run(prlimit, ["--pid", String(shim.process.pid), "--nofile=\(soft):4096"], in: bed.directory)
                #expect(result.status == 0, "\(result.output)")
            }
            // Three descriptors polled (signals, the listening socket, the relay's
            // epoll set): poll refuses more than the soft limit (EINVAL). A request
            // wakes the shim into that poll.
            try await limit(2)
            let waiting = try Sockets.connect(dial)
            defer { close(waiting) }
            try await bed.eventually("the shim logs the failing poll") { shim.process.log.contains("poll: Invalid argument") }
            #expect(shim.process.hasExited == false, "the shim still runs: \(shim.process.log)")

            try await limit(1024)
            for client in clients { #expect(try client.request()["content-length"] != nil, "the connections stayed open") }
            #expect(try TestHTTP.get(dial).status == 200, "and the port is served")

            try await limit(2)
            _ = try KeepAliveClient(dial)
            try await Task.sleep(for: .milliseconds(300))
            let stop = ContinuousClock.now
            shim.process.signal(SIGINT)
            let status = await shim.process.waitForExit(timeout: .seconds(2))
            #expect(status == 0, "exited \(String(describing: status)) after \(ContinuousClock.now - stop) while poll failed")
        }
    }

    @Test("serving the port itself, a container that resets while its client reads nothing costs the shim no CPU")
    func resetWhileClientStalls() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let container = try LoopbackBackend.floodThenReset()
            defer { container.stop() }
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: container.endpoint)
            #expect(shim.status == "0\n", "served by the shim itself: \(shim.process.log)")
            // A client with a small window that never reads: the shim holds the bytes
            // it could not pass on when the container's reset arrives.
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(client) }
            var small: Int32 = 4096
            setsockopt(client, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            #expect(SocketEndpoint(ip: .loopbackIPv4, port: host.port).withSocketAddress { connect(client, $0, $1) } == 0)
            try await Task.sleep(for: .milliseconds(300))
            let before = try Sockets.cpuTicks(of: shim.process.pid)
            try await Task.sleep(for: .seconds(1))
            let used = try Sockets.cpuTicks(of: shim.process.pid) - before
            #expect(used < 10, "the shim used \(used) of 100 ticks of CPU in the second after the reset")
            // Idle because it is done with that connection, not because it is gone:
            // the client got the container's bytes, and the next client is served.
            var byte: UInt8 = 0
            #expect(recv(client, &byte, 1, Int32(MSG_DONTWAIT)) == 1, "the stalled client was sent nothing")
            #expect(!shim.process.hasExited, "the shim exited: \(shim.process.log)")
            let next = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: host.port), timeoutSeconds: 2)
            defer { close(next) }
            #expect(try Sockets.receive(next, count: 1) == [UInt8(ascii: "x")], "the next client got nothing from the container")
        }
    }

    @Test("serving the port itself, a connection the container refuses is closed and logged as docker-proxy logs it, once for many")
    func containerRefusesConnections() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            // A port nothing listens on stands in for a container not listening yet.
            let container = SocketEndpoint(ip: .loopbackIPv4, port: try Sockets.freePort())
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: container)
            #expect(shim.status == "0\n", "served by the shim itself: \(shim.process.log)")
            for _ in 0..<3 {
                let fd = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
                defer { close(fd) }
                #expect(try Sockets.receiveToEnd(fd).isEmpty, "closed without a byte")
            }
            try await bed.eventually("the shim logs the refused connection") {
                shim.process.log.contains("cannot forward a connection to \(container): Connection refused")
            }
            let lines = shim.process.log.split(separator: "\n").filter { $0.contains("cannot forward a connection") }
            #expect(lines.count == 1, "three refusals, one line: \(shim.process.log)")
        }
    }

    @Test("serving the port itself with no descriptor left, the shim pauses accepting instead of spinning, and resumes")
    func outOfDescriptors() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.status == "0\n", "served by the shim itself: \(shim.process.log)")
            // Room for two relayed connections (a client and an upstream socket each).
            try Sockets.limitDescriptors(of: shim.process.pid, toFree: 4)
            var clients: [Int32] = []
            defer { for client in clients { close(client) } }
            for _ in 0..<6 {
                let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                clients.append(client)
                #expect(dial.withSocketAddress { connect(client, $0, $1) } == 0)
            }
            try await bed.eventually("the shim ran out of descriptors") { shim.process.log.contains("no file descriptor left") }
            let before = try Sockets.cpuTicks(of: shim.process.pid)
            try await Task.sleep(for: .seconds(1))
            let used = try Sockets.cpuTicks(of: shim.process.pid) - before
            #expect(used < 10, "the shim used \(used) of 100 ticks of CPU in a second with connections it cannot accept")
            for client in clients { close(client) }
            clients = []
            try await bed.eventually("connections are accepted again once descriptors are free") {
                try TestHTTP.get(dial).status == 200
            }
        }
    }

    @Test("SIGINT while serving the port itself: exits 0 at once and frees the port")
    func stopWhileServingItself() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            shim.process.signal(SIGINT)
            #expect(await shim.process.waitForExit(timeout: .seconds(1)) == 0)
            #expect(Sockets.canBind(host))
        }
    }
}
