import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What a Docker operator expects of HTTP mode, exercised through Envoy.
@Suite("HTTP mode")
struct HTTPModeTests {
    @Test("h2c with prior knowledge and HTTP/1.1 on the same port, each reaching the container in the client's own protocol: gRPC's trailers arrive, the container's Server header passes")
    func h2c() async throws {
        try await withTestbed { bed in
            let container = try await BothProtocolsBackend()
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let published = try await bed.publish(host, to: container.endpoint)
            #expect(published.isReady)
            let curl = try Binaries.onPath("curl", install: "apt-get install curl")
            let url = "http://127.0.0.1:\(host.port)/grpc.Echo/Say"
            let h2 = try await Binaries.run(curl, ["-s", "-D", "-", "--http2-prior-knowledge", "-d", "x", "-w", "\n%{http_version}", url], in: bed.directory)
            #expect(h2.output.contains("protocol=HTTP/2\npath=/grpc.Echo/Say"), "the container got HTTP/2: \(h2.output)")
            #expect(h2.output.contains("grpc-status: 0") && h2.output.contains("grpc-message: answered-over-h2"), "gRPC's trailers arrived: \(h2.output)")
            #expect(h2.output.contains("server: both-protocols-backend"), "the container's own Server header: \(h2.output)")
            #expect(h2.output.hasSuffix("\n2"), "spoke HTTP/2 to Envoy: \(h2.output)")
            let h1 = try await Binaries.run(curl, ["-s", "-D", "-", "--http1.1", "-w", "\n%{http_version}", url], in: bed.directory)
            #expect(h1.output.contains("protocol=HTTP/1.1\npath=/grpc.Echo/Say"), "the container got HTTP/1.1: \(h1.output)")
            #expect(h1.output.lowercased().contains("server: both-protocols-backend"), "\(h1.output)")
            #expect(h1.output.hasSuffix("\n1.1"))
            // A container that sets no Server header gets Envoy's, telling who answered.
            let backend = try bed.httpBackend("web")
            let other = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(other, to: backend.endpoint).isReady)
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: other.port)).servedByEnvoy)
            await container.stop()
        }
    }

    @Test("HTTP/1.0 requests pass, with a Host header and without (nginx's proxy_pass, ab and curl -0 send them), as through docker-proxy")
    func http10() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(host, to: backend.endpoint).isReady)
            for request in ["GET /ten HTTP/1.0\r\nHost: edshim\r\n\r\n", "GET /ten HTTP/1.0\r\n\r\n"] {
                let answer = try await onThread {
                    let fd = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
                    defer { close(fd) }
                    try Sockets.sendAll(fd, Array(request.utf8))
                    return String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
                }
                #expect(answer.hasPrefix("HTTP/1.0 200") || answer.hasPrefix("HTTP/1.1 200"), "\(request.debugDescription): \(answer.prefix(300))")
                #expect(answer.contains("backend=web") && answer.contains("path=/ten"), "\(request.debugDescription): \(answer.prefix(300))")
            }
        }
    }

    /// Upgrade requests as their clients send them: a browser's WebSocket, the Docker
    /// CLI's `attach` and `exec` to a Docker daemon in a container (docker:dind on
    /// 2375), kubectl's `exec` and `port-forward` over SPDY.
    static let upgrades = [
        "GET /ws HTTP/1.1\r\nHost: edshim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "POST /v1.41/containers/web/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: edshim\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: text/plain\r\n\r\n",
        "POST /api/v1/namespaces/default/pods/web/exec?command=sh HTTP/1.1\r\nHost: edshim\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
    ]

    @Test("upgrades pass, and bytes flow both ways after them: WebSocket, Docker's `Upgrade: tcp` (attach, exec), kubectl's SPDY", arguments: upgrades)
    func upgradePasses(upgrade: String) async throws {
        try await withTestbed { bed in
            let fd = try Sockets.connect(try await Self.published(try bed.httpBackend("web"), on: bed))
            defer { close(fd) }
            try Sockets.sendAll(fd, Array(upgrade.utf8))
            var head: [UInt8] = []
            while !head.ends(with: Array("\r\n\r\n".utf8)) { head += try Sockets.receive(fd, count: 1) }
            #expect(String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 101"), "\(String(decoding: head, as: UTF8.self))")
            let frame: [UInt8] = [0x81, 0x05] + Array("hello".utf8)
            try Sockets.sendAll(fd, frame)
            #expect(try Sockets.receive(fd, count: frame.count) == frame)
        }
    }

    @Test("no route timeout: a response 16 s late (a long poll) still arrives (Envoy's default would cut it at 15 s)")
    func longPoll() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(host, to: backend.endpoint).isReady)
            // 16 s of waiting on a thread of its own, not one the other tests' async code needs.
            let answer = try await onThread {
                let fd = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: host.port), timeoutSeconds: 30)
                defer { close(fd) }
                try Sockets.sendAll(fd, Array("GET /slow/16 HTTP/1.1\r\nHost: edshim\r\nConnection: close\r\n\r\n".utf8))
                return String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
            }
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(200))")
            #expect(answer.contains("path=/slow/16"))
        }
    }

    @Test("what is not plain HTTP on an HTTP-mode port (TLS the container terminates, a database's protocol) is relayed as TCP, as docker-proxy would; HTTP on it still gets Envoy's HTTP handling")
    func notHTTPIsRelayed() async throws {
        try await withTestbed { bed in
            let port = try await Self.published(try bed.echoBackend(), on: bed)
            #expect(try bed.registrations().first?.mode == .http)
            let service = "unknown-\(port.port)"
            let before = try bed.stat("tcp.\(service).downstream_cx_total")
            // A TLS ClientHello's first bytes, then a PostgreSQL startup message's.
            for message in [[0x16, 0x03, 0x01, 0x00, 0x05] + Array("hello".utf8), [0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f] as [UInt8]] {
                let fd = try Sockets.connect(port)
                defer { close(fd) }
                try Sockets.sendAll(fd, message)
                #expect(try Sockets.receive(fd, count: message.count) == message, "relayed to the container and back")
            }
            #expect(try bed.stat("tcp.\(service).downstream_cx_total") == before + 2)

            let httpPort = try await Self.published(try bed.httpBackend("web"), on: bed)
            let response = try TestHTTP.get(httpPort)
            #expect(response.status == 200)
            #expect(!response.body.contains("x-forwarded-for=\n") && !response.body.contains("x-request-id=\n"), "through Envoy's HTTP handling: \(response.body)")
            #expect(try bed.stat("http.unknown-\(httpPort.port).downstream_rq_total") == 1)
            #expect(try bed.stat("tcp.unknown-\(httpPort.port).downstream_cx_total") == 0)
        }
    }

    @Test("a port without a mode label takes the --default-mode of the server running now: restarted with another, the server changes its listener, and back")
    func defaultModeFollowsTheServer() async throws {
        try await withTestbed { bed in
            let port = try await Self.published(try bed.httpBackend("web"), on: bed)
            #expect(try bed.registrations().first?.mode == .http)
            for (mode, flag) in [(ProxyMode.tcp, "tcp"), (.http, "http")] {
                await bed.stopServer()
                try await bed.startServer(extraArguments: ["--default-mode", flag])
                #expect(try bed.registrations().first?.mode == mode, "restarted with --default-mode \(flag)")
                try await bed.eventually("Envoy serves the port in \(flag) mode") {
                    let before = (try? bed.stat("tcp.unknown-\(port.port).downstream_cx_total")) ?? 0
                    guard (try? TestHTTP.get(port).status) == 200 else { return false }
                    let after = (try? bed.stat("tcp.unknown-\(port.port).downstream_cx_total")) ?? 0
                    return (after > before) == (mode == .tcp)
                }
            }
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("a client's own x-request-id reaches the container (a gateway's id stays the same across services); a request without one gets one")
    func clientRequestIDKept() async throws {
        try await withTestbed { bed in
            let port = try await Self.published(try bed.httpBackend("web"), on: bed)
            let kept = try TestHTTP.get(port, headers: ["x-request-id": "gateway-7f3a"])
            #expect(kept.body.contains("x-request-id=gateway-7f3a\n"), "\(kept.body)")
            let made = try TestHTTP.get(port)
            #expect(!made.body.contains("x-request-id=\n"), "\(made.body)")
        }
    }

    @Test("Expect: 100-continue reaches the container, which may refuse an upload before its body is sent")
    func expectContinueReachesTheContainer() async throws {
        try await withTestbed { bed in
            let requests = RecordedRequests()
            let fd = try Sockets.connect(try await Self.published(try bed.recordingBackend(requests), on: bed))
            defer { close(fd) }
            try Sockets.sendAll(fd, Array("POST /upload HTTP/1.1\r\nHost: edshim\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello".utf8))
            try await bed.eventually("the container got the upload") { !requests.all.isEmpty }
            let request = try #require(requests.all.first)
            #expect(request.headers["expect"] == "100-continue", "\(request.headers)")
            #expect(request.body == Array("hello".utf8))
        }
    }

    @Test("connections both ways have TCP keepalive after 15 s idle, as docker-proxy's (Go's) have: a client gone without a word does not hold its connection, and the container's, forever")
    func keepalive() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let port = try await Self.published(backend, on: bed)
            let fd = try Sockets.connect(port)
            defer { close(fd) }
            try Sockets.sendAll(fd, Array("GET / HTTP/1.1\r\nHost: edshim\r\n\r\n".utf8))
            _ = try Sockets.receive(fd, count: 12)
            let ss = try Binaries.onPath("ss", install: "apt-get install iproute2")
            // Envoy's side of the client's connection, and its connection to the container.
            for filter in ["( sport = :\(port.port) )", "( dport = :\(backend.endpoint.port) )"] {
                let table = try await Binaries.run(ss, ["-tnoH", "state", "established", filter], in: bed.directory)
                #expect(table.output.contains("timer:(keepalive,"), "\(filter): \(table.output)")
            }
        }
    }

    @Test("behind a TLS-terminating load balancer, --trusted-proxy-hops 1 lets its X-Forwarded-Proto (https) reach the container; by default Envoy, the edge, sets it from the connection", arguments: [0, 1])
    func forwardedProto(trustedHops: Int) async throws {
        var options = Testbed.Options()
        if trustedHops > 0 { options.serverArguments = ["--trusted-proxy-hops", String(trustedHops)] }
        try await withTestbed(options) { bed in
            let requests = RecordedRequests()
            let port = try await Self.published(try bed.recordingBackend(requests), on: bed)
            // What a load balancer sends on: the client's address and scheme.
            _ = try TestHTTP.get(port, headers: ["x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"])
            let request = try #require(requests.all.first)
            #expect(request.headers["x-forwarded-proto"] == (trustedHops > 0 ? "https" : "http"), "\(request.headers)")
            #expect(request.headers["x-forwarded-for"]?.hasPrefix("203.0.113.9,") == true, "the client's address, then the balancer's: \(request.headers)")
            // Who Envoy takes for the client: the balancer's client only when trusted.
            #expect(request.headers["x-envoy-external-address"] == (trustedHops > 0 ? "203.0.113.9" : "127.0.0.1"), "\(request.headers)")
        }
    }

    @Test("a container that closes a kept-alive connection just as Envoy sends on it (its keep-alive timeout) costs an idempotent request nothing: it goes again on a new connection; a POST is not sent twice")
    func keepAliveRaceRetried() async throws {
        try await withTestbed { bed in
            let answered = Counter()
            let port = try await Self.published(bed.keep(try LoopbackBackend.closesReusedConnections(answered: answered)), on: bed)
            let cluster = "cluster.unknown-\(port.port)"
            #expect(try TestHTTP.get(port).status == 200, "the first request opens Envoy's connection to the container")
            for attempt in 1...3 {
                // Envoy (one worker) sends it on the connection it kept; the container closes that.
                let response = try TestHTTP.get(port)
                #expect(response.status == 200 && response.body == "answered", "attempt \(attempt): \(response.status) \(response.body)")
            }
            #expect(try bed.stat("\(cluster).upstream_rq_retry_success") == 3)
            #expect(answered.value == 4)

            let keyed = try TestHTTP.send("POST", to: port, headers: ["Idempotency-Key": "order-17"], body: "paid")
            #expect(keyed.status == 200, "a POST with an Idempotency-Key goes again: \(keyed.status) \(keyed.body)")
            let post = try TestHTTP.send("POST", to: port, body: "paid")
            #expect(post.status == 503, "a plain POST may have been acted on: not sent again: \(post.status) \(post.body)")
            #expect(try bed.stat("\(cluster).upstream_rq_retry") == 4)
            #expect(answered.value == 5)
        }
    }

    @Test("Envoy closes its connection to the container after 1 s without a request, before the container's keep-alive timeout could (gunicorn's 2 s) close it under a POST, which would get a 503; the next request opens a new one")
    func idleConnectionToTheContainerClosedFirst() async throws {
        try await withTestbed { bed in
            let requests = RecordedRequests()
            let port = try await Self.published(try bed.recordingBackend(requests), on: bed)
            let cluster = "cluster.unknown-\(port.port)"
            #expect(try TestHTTP.get(port).status == 200)
            try await bed.eventually("Envoy closed the idle connection to the container", timeout: .seconds(5)) {
                try bed.stat("\(cluster).upstream_cx_idle_timeout") == 1
            }
            #expect(try bed.stat("\(cluster).upstream_cx_active") == 0)
            let post = try TestHTTP.send("POST", to: port, body: "paid")
            #expect(post.status == 200, "\(post.status) \(post.body)")
            #expect(try bed.stat("\(cluster).upstream_cx_total") == 2, "a new connection for the POST")
            #expect(requests.all.count == 2)
        }
    }

    @Test("http-only: a request line Envoy cannot parse is refused, not relayed as TCP with the client's own X-Forwarded-For; a plain request gets Envoy's; TLS is refused too")
    func httpOnlyRefusesWhatIsNotHTTP() async throws {
        var options = Testbed.Options()
        options.defaultMode = "http-only"
        try await withTestbed(options) { bed in
            let requests = RecordedRequests()
            let port = try await Self.published(try bed.recordingBackend(requests), on: bed)
            let forged = "GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nConnection: close\r\n\r\n"
            let clientHello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]
            for bytes in [Array(forged.utf8), clientHello] {
                let answer = try await onThread {
                    let fd = try Sockets.connect(port)
                    defer { close(fd) }
                    try Sockets.sendAll(fd, bytes)
                    return String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
                }
                #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer.prefix(200))")
            }
            #expect(requests.all.isEmpty, "the container got \(requests.all.map(\.path))")
            let plain = try TestHTTP.get(port, headers: ["X-Forwarded-For": "10.0.0.1"])
            #expect(plain.status == 200)
            let received = try #require(requests.all.first)
            #expect(received.headers["x-forwarded-for"]?.hasPrefix("10.0.0.1,") == true && received.headers["x-forwarded-for"] != "10.0.0.1", "Envoy appended its entry: \(received.headers)")
            #expect(try bed.listeners()["tcp_0.0.0.0_\(port.port)"] != nil)
        }
    }

    @Test("HTTP/1 trailers of a chunked response reach the client, as through docker-proxy (Envoy drops them by default)")
    func responseTrailersPass() async throws {
        try await withTestbed { bed in
            let chunkedWithTrailer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n"
            let port = try await Self.published(try bed.recordingBackend(RecordedRequests(), answer: chunkedWithTrailer), on: bed)
            let answer = try await onThread {
                let fd = try Sockets.connect(port)
                defer { close(fd) }
                try Sockets.sendAll(fd, Array("GET / HTTP/1.1\r\nHost: edshim\r\nTE: trailers\r\nConnection: close\r\n\r\n".utf8))
                return String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
            }
            #expect(answer.hasPrefix("HTTP/1.1 200") && answer.contains("hello"), "\(answer)")
            #expect(answer.lowercased().contains("x-checksum: abc123"), "the trailer was dropped: \(answer)")
        }
    }

    @Test("header names keep their case both ways, and the container's reason phrase reaches the client, as through docker-proxy (Envoy would lowercase them: HTTP/1.1 says case does not matter, yet some clients and apps compare them exactly)")
    func headerCaseKept() async throws {
        try await withTestbed { bed in
            let requests = RecordedRequests()
            let backend = try bed.recordingBackend(requests, answer: "HTTP/1.1 200 Alright\r\nX-Legacy-Answer: yes\r\nContent-Length: 0\r\n\r\n")
            let fd = try Sockets.connect(try await Self.published(backend, on: bed))
            defer { close(fd) }
            try Sockets.sendAll(fd, Array("GET / HTTP/1.1\r\nHost: edshim\r\nX-Legacy-Token: abc\r\nConnection: close\r\n\r\n".utf8))
            let response = String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
            #expect(response.hasPrefix("HTTP/1.1 200 Alright\r\n"), "\(response.debugDescription)")
            #expect(response.contains("\r\nX-Legacy-Answer: yes\r\n"), "\(response.debugDescription)")
            let head = try #require(requests.all.first).head
            #expect(head.contains("X-Legacy-Token: abc"), "\(head)")
        }
    }

    @Test("the Server header is the container's: none where it sends none, its own where it sends one, as through docker-proxy (Envoy's default writes `server: envoy`)", arguments: [nil, "Apache/2.4"])
    func serverHeaderIsTheContainers(server: String?) async throws {
        try await withTestbed { bed in
            let requests = RecordedRequests()
            let header = server.map { "Server: \($0)\r\n" } ?? ""
            let backend = try bed.recordingBackend(requests, answer: "HTTP/1.1 200 OK\r\n\(header)Content-Length: 0\r\n\r\n")
            let response = try TestHTTP.get(try await Self.published(backend, on: bed))
            #expect(response.status == 200)
            #expect(response.servedByEnvoy, "\(response.headers)")
            #expect(response.headers["server"] == server, "\(response.headers)")
        }
    }

    @Test("the Host header reaches the container as the client sent it, for the container's own name-based virtual hosts: any name, its case, a port, an IP address", arguments: ["App.Example.COM", "shop.example:8080", "127.0.0.1:80", "[::1]:8443", "localhost"])
    func hostAsSent(host: String) async throws {
        try await withTestbed { bed in
            let requests = RecordedRequests()
            let backend = try bed.recordingBackend(requests, answer: "HTTP/1.1 204 No Content\r\n\r\n")
            let fd = try Sockets.connect(try await Self.published(backend, on: bed))
            defer { close(fd) }
            try Sockets.sendAll(fd, Array("GET /page HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8))
            let response = String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
            #expect(response.hasPrefix("HTTP/1.1 204"), "\(response.debugDescription)")
            let request = try #require(requests.all.first)
            #expect(request.headers["host"] == host, "\(request.head)")
            #expect(request.path == "/page")
        }
    }

    @Test("a protocol in which the server speaks first (MySQL, SMTP, SSH) on an HTTP-mode port gets its greeting within the inspector's 2 s, not Envoy's default 15 s, which outlasts health checks and clients' connect timeouts")
    func serverFirstGreetingPrompt() async throws {
        try await withTestbed { bed in
            let port = try await Self.published(bed.keep(try LoopbackBackend.greeting("220 ready\r\n")), on: bed)
            let started = ContinuousClock.now
            let fd = try Sockets.connect(port)
            defer { close(fd) }
            #expect(try Sockets.receive(fd, count: 11) == Array("220 ready\r\n".utf8))
            let waited = ContinuousClock.now - started
            #expect(waited < .seconds(4), "the greeting came after \(waited)")
            try Sockets.sendAll(fd, Array("EHLO edshim\r\n".utf8))
            #expect(try Sockets.receive(fd, count: 13) == Array("EHLO edshim\r\n".utf8), "relayed both ways after it")
            #expect(try bed.stat("tcp.unknown-\(port.port).downstream_cx_total") == 1)
        }
    }

    /// Publishes `backend` on a free port of 0.0.0.0, as dockerd would; returns where
    /// clients on the host reach it.
    private static func published(_ backend: LoopbackBackend, on bed: Testbed) async throws -> SocketEndpoint {
        let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
        #expect(try await bed.publish(host, to: backend.endpoint).isReady)
        return SocketEndpoint(ip: .loopbackIPv4, port: host.port)
    }
}
