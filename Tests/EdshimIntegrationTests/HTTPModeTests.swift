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
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: other.port)).headers["server"] == "envoy")
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

    @Test("WebSocket upgrades pass, and bytes flow both ways after them")
    func webSocket() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(host, to: backend.endpoint).isReady)
            let fd = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
            defer { close(fd) }
            let upgrade = "GET /ws HTTP/1.1\r\nHost: edshim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
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
}
