import EdshimCore
import Foundation
import Testing

/// A port published the way dockerd does is served by Envoy, right after `0\n`.
@Suite("TCP ports served through Envoy")
struct ServesThroughEnvoyTests {
    @Test("an HTTP request right after 0\\n reaches the container through Envoy", arguments: SpawnStyle.allCases)
    func httpThroughEnvoy(style: SpawnStyle) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint, style: style)
            #expect(shim.status == "0\n", "shim log: \(shim.process.log)")

            let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port), path: "/hello")
            #expect(response.status == 200)
            #expect(response.body.contains("backend=web"))
            #expect(response.body.contains("path=/hello"))
            // Envoy appends the client's address; for a loopback client it appends its
            // own host address instead (Envoy's rule), so only presence is checked here.
            // The Docker end-to-end test checks a real client address.
            #expect(!response.body.contains("x-forwarded-for=\n"), "Envoy sets X-Forwarded-For")
            #expect(!response.body.contains("x-request-id=\n"), "Envoy generates request ids")

            let serviceName = "unknown-\(host.port)"
            #expect(try bed.listeners()["tcp_0.0.0.0_\(host.port)"] == "0.0.0.0:\(host.port)")
            #expect(try bed.clusters()[serviceName] == [backend.endpoint.description])
            #expect(try bed.stat("http.\(serviceName).downstream_rq_completed") >= 1)
        }
    }

    @Test("a server given only its paths, every other flag at its default, and an Envoy from `edshim bootstrap` alone serve a port in http mode")
    func defaults() async throws {
        var options = Testbed.Options()
        options.serverDefaults = true
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady, "shim log: \(shim.process.log)")
            let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
            #expect(response.status == 200)
            #expect(response.servedByEnvoy)
            #expect(!response.body.contains("x-request-id=\n"), "Envoy's HTTP connection manager generates request ids")
            #expect(try bed.registrations().map(\.mode) == [.http])
            #expect(try bed.stat("http.unknown-\(host.port).downstream_rq_completed") >= 1)
        }
    }

    @Test("a container come back with a new address: the port moves to it as the new shim says 0\\n")
    func replacementServed() async throws {
        try await withTestbed { bed in
            let backends = [try bed.httpBackend("first"), try bed.httpBackend("second")]
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            var shims: [ShimRun] = []
            for round in 0..<6 {
                let name = round % 2 == 0 ? "first" : "second"
                // The old shim stays up: the new registration replaces its own.
                let shim = try await bed.publish(host, to: backends[round % 2].endpoint)
                #expect(shim.status == "0\n", "round \(round): \(shim.process.log)")
                shims.append(shim)
                // The server answers once Envoy has read the new cluster; Envoy hands
                // it to its workers a moment later.
                try await bed.eventually("round \(round): requests reach \(name)", timeout: .seconds(10)) {
                    try TestHTTP.get(dial).body.contains("backend=\(name)")
                }
                #expect(try bed.registrations().map(\.owner.pid) == [shim.process.pid])
            }
        }
    }

    @Test("bytes pass both ways untouched in tcp mode", arguments: SpawnStyle.allCases)
    func bytesBothWays(style: SpawnStyle) async throws {
        var options = Testbed.Options()
        options.defaultMode = "tcp"
        try await withTestbed(options) { bed in
            let backend = try bed.echoBackend()
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint, style: style)
            #expect(shim.status == "0\n", "shim log: \(shim.process.log)")

            let fd = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
            defer { close(fd) }
            var generator = SystemRandomNumberGenerator()
            let payload = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // A thread, not a task: the test blocks in recv, and tasks share few threads.
            let sent = Thread.run { try? Sockets.sendAll(fd, payload) }
            let echoed = try Sockets.receive(fd, count: payload.count)
            sent.wait()
            #expect(echoed == payload)
            #expect(try bed.stat("tcp.unknown-\(host.port).downstream_cx_total") >= 1, "the connection went through Envoy")
        }
    }

    @Test("dockerd ≥ 28: the shim lets go of the socket from fd 4 once Envoy serves")
    func releasesHeldSocket() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint, style: .dockerd28)
            #expect(shim.status == "0\n", "shim log: \(shim.process.log)")
            var state = ""
            do {
                try await bed.eventually("only Envoy's sockets listen on the port") {
                    let listening = ListenTable.read().filter { $0.endpoint == host }
                    let envoyOwned = try envoySocketInodes(bed)
                    state = "listening \(listening.map(\.inode)), Envoy holds \(envoyOwned.sorted())"
                    return !listening.isEmpty && listening.allSatisfy { envoyOwned.contains($0.inode) }
                }
            } catch {
                Issue.record("\(error): \(state); shim log: \(shim.process.log)")
            }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200)
        }
    }

    @Test("dockerd ≥ 28: every connection after 0\\n reaches Envoy, none the socket dockerd bound")
    func everyConnectionReachesEnvoy() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint, style: .dockerd28)
            #expect(shim.isReady, "shim log: \(shim.process.log)")
            let count = 30
            for _ in 0..<count {
                let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
                #expect(response.servedByEnvoy)
            }
            #expect(try bed.stat("http.unknown-\(host.port).downstream_rq_completed") == count)
        }
    }

    @Test("dockerd ≥ 28: a connection queued on dockerd's socket before Envoy took the port is still answered")
    func queuedConnectionIsRelayed() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            var early: Int32 = -1
            let shim = try await bed.spawnShim(
                ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine,
                style: .dockerd28,
                host: host,
                whileDockerdHoldsThePort: {
                    early = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
                    try Sockets.sendAll(early, Array("GET /early HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
                }
            )
            defer { close(early) }
            #expect(shim.isReady, "shim log: \(shim.process.log)")
            let answer = String(decoding: try Sockets.receiveToEnd(early), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 200"))
            #expect(answer.contains("path=/early"))
        }
    }

    @Test("dockerd ≥ 28: 200 connections (as many as the backlog holds) queued before Envoy took the port are all answered, though dockerd leaves its proxies a small descriptor limit")
    func manyQueuedConnectionsAreRelayed() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            var early: [Int32] = []
            defer { for fd in early { close(fd) } }
            // Soft limit 32 (dockerd's is 1024, for many more connections), hard 4096.
            let shim = try await bed.spawnShim(
                ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine,
                style: .dockerd28,
                host: host,
                launcher: [try SystemExecutables.prlimit(), "--nofile=32:4096", "--"],
                whileDockerdHoldsThePort: {
                    // Within the listen backlog, which net.core.somaxconn caps (128 before Linux 5.4).
                    let somaxconn = (try? String(contentsOfFile: "/proc/sys/net/core/somaxconn", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 128
                    for index in 0..<min(200, somaxconn - 8) {
                        let fd = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
                        early.append(fd)
                        try Sockets.sendAll(fd, Array("GET /early-\(index) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
                    }
                }
            )
            #expect(shim.isReady, "shim log: \(shim.process.log)")
            var answered = 0
            var failures: [String] = []
            for (index, fd) in early.enumerated() {
                do {
                    let answer = String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
                    if answer.hasPrefix("HTTP/1.1 200"), answer.contains("path=/early-\(index)") { answered += 1 } else { failures.append("\(index): \(answer.prefix(40))") }
                } catch {
                    failures.append("\(index): \(error)")
                }
            }
            #expect(answered == early.count, "answered \(answered) of \(early.count); first failures: \(failures.prefix(3))")
        }
    }

    /// Socket inodes Envoy holds, from /proc/PID/fd.
    private func envoySocketInodes(_ bed: Testbed) throws -> Set<UInt64> {
        guard let pid = bed.envoy?.pid else { return [] }
        let directory = "/proc/\(pid)/fd"
        var inodes: Set<UInt64> = []
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(name)"),
                  link.hasPrefix("socket:["), let inode = UInt64(link.dropFirst(8).dropLast()) else { continue }
            inodes.insert(inode)
        }
        return inodes
    }
}
