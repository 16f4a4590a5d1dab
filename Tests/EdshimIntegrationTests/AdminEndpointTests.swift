import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The server's own HTTP endpoint.
@Suite("Server admin endpoint")
struct AdminEndpointTests {
    @Test("GET /healthz and /status answer on loopback; /status lists the registrations")
    func healthAndStatus() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)

            let health = try TestHTTP.get(bed.serverAdmin, path: "/healthz")
            #expect(health.status == 200)
            #expect(health.body == "ok\n")
            let status = try TestHTTP.get(bed.serverAdmin, path: "/status")
            #expect(status.status == 200)
            #expect(status.headers["content-type"] == "application/json")
            let listed = try #require(try JSONSerialization.jsonObject(with: Data(status.body.utf8)) as? [[String: Any]])
            #expect(listed.count == 1)
            #expect(listed.first?["owner_pid"] as? Int == Int(shim.process.pid))
            #expect(listed.first?["service_name"] as? String == "unknown-\(host.port)")
            #expect(try TestHTTP.get(bed.serverAdmin, path: "/nope").status == 404)
            // The absolute form HTTP/1.1 servers must take, and a method it does not serve.
            #expect(try TestHTTP.get(bed.serverAdmin, path: "http://\(bed.serverAdmin)/healthz?verbose").body == "ok\n")
            let post = try TestHTTP.send("POST", to: bed.serverAdmin, path: "/healthz", body: "x")
            #expect(post.status == 405 && post.headers["allow"] == "GET, HEAD" && post.body == "only GET or HEAD\n", "\(post)")
            #expect(ListenTable.read().contains { $0.endpoint == bed.serverAdmin }, "bound to 127.0.0.1, as asked")

            // A web page's request through a DNS name rebound to 127.0.0.1 names that
            // host: refused. An address or localhost passes.
            func statusNaming(_ host: String) throws -> String {
                let fd = try Sockets.connect(bed.serverAdmin)
                defer { close(fd) }
                try Sockets.sendAll(fd, Array("GET /status HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8))
                return String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
            }
            let port = bed.serverAdmin.port
            let rebound = try statusNaming("attacker.example:\(port)")
            #expect(rebound.hasPrefix("HTTP/1.1 403") && !rebound.contains("owner_pid"), "\(rebound)")
            for host in ["localhost:\(port)", "127.0.0.1:\(port)", "[::1]:\(port)", "LOCALHOST"] {
                #expect(try statusNaming(host).hasPrefix("HTTP/1.1 200"), "Host: \(host)")
            }
        }
    }

    @Test("the admin endpoint listens before the shims' socket: once the socket answers (systemd was told READY=1), so does /healthz")
    func listensBeforeTheSocket() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            // The testbed returned as soon as the socket answered.
            #expect(try TestHTTP.get(bed.serverAdmin, path: "/healthz").status == 200)
            let log = try #require(bed.server?.log)
            let admin = try #require(log.range(of: "[EdshimServer] admin endpoint listening"), "\(log)")
            let socket = try #require(log.range(of: "socket=\(bed.socketPath) [EdshimServer] listening"), "\(log)")
            #expect(admin.lowerBound < socket.lowerBound, "bound before the socket: \(log)")
        }
    }

    @Test("GET /healthz answers 503 saying what cannot be written while the state file's writes fail (as on a full disk), and ok again once they succeed", .needsPrivateNetworkNamespaces)
    func healthzReportsFailingWrites() async throws {
        var options = Testbed.Options()
        options.startServer = false
        try await withTestbed(options) { bed in
            // The server in a mount namespace of its own, where the state file can be
            // made to refuse its replacement (bind-mounted over itself: EBUSY).
            let unshare = try SystemExecutables.required("unshare", package: "util-linux")
            try await bed.startServer(launcher: [unshare, "-m", "--propagation", "private", "--"])
            let backend = try bed.httpBackend("web")
            let shim = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint)
            #expect(shim.isReady)
            let healthy = try TestHTTP.get(bed.serverAdmin, path: "/healthz")
            #expect(healthy.status == 200 && healthy.body == "ok\n")

            let server = try #require(bed.server)
            let nsenter = try SystemExecutables.required("nsenter", package: "util-linux")
            let mount = try await Binaries.run(nsenter, ["--mount=/proc/\(server.pid)/ns/mnt", "mount", "--bind", bed.stateFile, bed.stateFile], in: bed.directory)
            #expect(mount.status == 0, "\(mount.output)")
            // The shim's deregistration is a change the state file cannot take.
            shim.process.signal(SIGINT)
            _ = await shim.process.waitForExit(timeout: .seconds(2))
            try await bed.eventually("/healthz says the state file cannot be written") {
                let health = try TestHTTP.get(bed.serverAdmin, path: "/healthz")
                return health.status == 503 && health.body.hasPrefix("cannot write the state file for ") && health.body.contains("busy")
            }

            let umount = try await Binaries.run(nsenter, ["--mount=/proc/\(server.pid)/ns/mnt", "umount", bed.stateFile], in: bed.directory)
            #expect(umount.status == 0, "\(umount.output)")
            try await bed.eventually("/healthz is ok again once the state is saved", timeout: .seconds(10)) {
                try TestHTTP.get(bed.serverAdmin, path: "/healthz").status == 200
            }
        }
    }

    @Test("--admin-address unix:PATH: the endpoint on a Unix socket of mode 0660 (root and the socket group, as the registration socket), also in the shims' socket directory that a reboot removed; nothing on TCP; a socket a killed server left is replaced; the socket goes when the server stops")
    func unixSocket() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.socketName = "run/edshim.sock"
        try await withTestbed(options) { bed in
            let path = bed.directory + "/run/admin.sock"
            await bed.stopServer()
            // As after a reboot: /run/edshim is gone, and the server makes it again.
            try FileManager.default.removeItem(atPath: bed.directory + "/run")
            try await bed.startServer(extraArguments: ["--admin-address", "unix:" + path])
            var info = stat()
            // The admin endpoint starts beside the registration socket, which the
            // start waits for: it may bind a moment later.
            try await bed.eventually("the admin socket is there") { stat(path, &info) == 0 }
            #expect((info.st_mode & S_IFMT) == S_IFSOCK)
            #expect(info.st_mode & 0o777 == 0o660, "mode \(String(info.st_mode & 0o777, radix: 8))")
            #expect(try Self.get("/healthz", on: path).hasSuffix("\r\n\r\nok\n"))
            #expect(try Self.get("/status", on: path).hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(throws: (any Error).self, "nothing on the TCP address") { try Sockets.connect(bed.serverAdmin) }

            await bed.killServer()
            #expect(stat(path, &info) == 0, "a killed server leaves its socket")
            try await bed.startServer(extraArguments: ["--admin-address", "unix:" + path])
            // Until the new server binds it (a moment after the registration socket),
            // the socket the killed one left refuses connections.
            try await bed.eventually("the new server answers on the socket the killed one left") {
                (try? Self.get("/healthz", on: path))?.hasSuffix("\r\n\r\nok\n") == true
            }
            try await bed.expectServerStopsAtOnce()
            #expect(stat(path, &info) != 0, "removed once the server stopped")
        }
    }

    /// `GET path` over the Unix socket at `socketPath`: the whole response.
    private static func get(_ path: String, on socketPath: String) throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        guard UnixSocketAddress.with(path: socketPath, { connect(fd, $0, $1) }) == 0 else {
            throw TestFailure("connect \(socketPath): \(String(cString: strerror(errno)))")
        }
        try Sockets.sendAll(fd, Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8))
        return String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
    }

    @Test("an idle keep-alive client of the admin endpoint (a dashboard, a browser tab) does not hold up SIGTERM")
    func idleClientDoesNotHoldShutdown() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            let fd = try Sockets.connect(bed.serverAdmin)
            defer { close(fd) }
            try Sockets.sendAll(fd, Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
            let answer = String(decoding: try Sockets.receive(fd, count: 12), as: UTF8.self)
            #expect(answer == "HTTP/1.1 200")
            let started = ContinuousClock.now
            bed.server?.signal(SIGTERM)
            let status = await bed.server?.waitForExit(timeout: .seconds(3))
            #expect(status == 0, "exited \(String(describing: status)) after \(ContinuousClock.now - started):\n\((try? String(contentsOfFile: bed.serverLogPath, encoding: .utf8)) ?? "")")
        }
    }

    @Test("a client of the admin endpoint that pipelines requests and reads no answer does not hold up SIGTERM for its 30 s idle timeout")
    func unreadAnswersDoNotHoldShutdown() async throws {
        try await withTestbed { bed in
            // Ten registrations make each /status answer a few kB.
            let backend = try bed.httpBackend("web")
            for _ in 0..<10 {
                #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint).isReady)
            }
            let fd = try Sockets.connect(bed.serverAdmin, receiveBuffer: 4096)
            defer { close(fd) }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            // Far more answers than the sockets' buffers hold: the server's writes stall.
            let requests = Array(String(repeating: "GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n", count: 5_000).utf8)
            var sent = 0
            let sending = ContinuousClock.now + .seconds(3)
            while sent < requests.count, ContinuousClock.now < sending {
                let count = requests[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if count > 0 { sent += count } else { try await Task.sleep(for: .milliseconds(10)) }
            }
            try await Task.sleep(for: .seconds(1))
            let started = ContinuousClock.now
            bed.server?.signal(SIGTERM)
            let status = await bed.server?.waitForExit(timeout: .seconds(15))
            #expect(status == 0, "exited \(String(describing: status)) after \(ContinuousClock.now - started)")
            #expect(ContinuousClock.now - started < .seconds(6), "stopped within a few seconds, not at the 30 s idle timeout")
        }
    }

    @Test("a client that sends nothing more for 30 s is disconnected: idle connections cannot pile up")
    func idleClientIsDisconnected() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            let fd = try Sockets.connect(bed.serverAdmin, timeoutSeconds: 45)
            defer { close(fd) }
            try Sockets.sendAll(fd, Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
            #expect(String(decoding: try Sockets.receive(fd, count: 12), as: UTF8.self) == "HTTP/1.1 200")
            let started = ContinuousClock.now
            let rest = try await onThread { try Sockets.receiveToEnd(fd) }
            let idle = ContinuousClock.now - started
            #expect(String(decoding: rest, as: UTF8.self).hasSuffix("ok\n"), "the answer, then the end")
            #expect(idle >= .seconds(29) && idle < .seconds(40), "closed after \(idle) without a request")
        }
    }

    @Test("at most 128 connections are served at once: one more is closed unanswered, and a place freed is taken again")
    func connectionLimit() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            func healthz(_ fd: Int32) throws -> String {
                try Sockets.sendAll(fd, Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
                return String(decoding: try Sockets.receive(fd, count: 12), as: UTF8.self)
            }
            var held: [Int32] = []
            defer { for fd in held { close(fd) } }
            for _ in 0..<128 {
                let fd = try Sockets.connect(bed.serverAdmin)
                held.append(fd)
                #expect(try healthz(fd) == "HTTP/1.1 200")
            }
            let refused = try Sockets.connect(bed.serverAdmin)
            defer { close(refused) }
            try? Sockets.sendAll(refused, Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
            // Closed without an answer: the end of the stream, or a reset (it sent a
            // request the server never read). Not a receive timeout: that would be a
            // connection left hanging.
            switch Result(catching: { try Sockets.receiveToEnd(refused) }) {
            case .success(let answer):
                #expect(answer.isEmpty, "the 129th connection is closed without an answer: \(String(decoding: answer, as: UTF8.self))")
            case .failure(let error):
                #expect("\(error)".contains("Connection reset"), "the 129th connection is closed, not left hanging: \(error)")
            }

            close(held.removeLast())
            try await bed.eventually("a place freed is taken again") {
                let fd = try Sockets.connect(bed.serverAdmin)
                defer { close(fd) }
                return try healthz(fd) == "HTTP/1.1 200"
            }
        }
    }

    @Test("a client that closes its sending side after the request still gets the answer")
    func halfClosedClient() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(fd) }
            #expect(bed.serverAdmin.withSocketAddress { connect(fd, $0, $1) } == 0)
            try Sockets.sendAll(fd, Array("GET /healthz HTTP/1.0\r\n\r\n".utf8))
            shutdown(fd, Int32(SHUT_WR))
            let answer = String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.0 200"), "\(answer)")
            #expect(answer.hasSuffix("ok\n"), "\(answer)")
        }
    }

    @Test("without --admin-address the server's endpoint listens on 127.0.0.1:7776, loopback only", .needsPrivateNetworkNamespaces)
    func defaultIsLoopback() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            // 7776 may be taken on this host (by an installed edshim): the server runs
            // in a network namespace of the test's own, where it is free.
            try await withPrivateNetworkNamespace(loopbackAddresses: [], logDirectory: bed.directory) { namespace in
                let (edshim, log) = (bed.edshim, bed.directory + "/default-admin-server.log")
                let arguments = ["server", "--socket", bed.socketPath, "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile]
                let server = try await namespace.run { try ChildProcess.spawn(edshim, arguments, logPath: log) }
                do {
                    try await bed.eventually("the server answers on its socket", timeout: .seconds(10)) { (try? bed.registrations()) != nil }
                    let listening = try await namespace.run { ListenTable.read().map(\.endpoint) }
                    #expect(listening.contains(SocketEndpoint(ip: .loopbackIPv4, port: 7776)), "\(listening)")
                    #expect(!listening.contains { $0.port == 7776 && $0.ip != .loopbackIPv4 }, "\(listening)")
                    let health = try await namespace.run { try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: 7776), path: "/healthz") }
                    #expect(health.status == 200)
                } catch {
                    await server.stop()
                    throw error
                }
                await server.stop()
            }
        }
    }
}
