import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What a Docker operator expects of HTTP mode, exercised through Envoy.
@Suite("HTTP mode")
struct HTTPModeTests {
    @Test("h2c with prior knowledge and HTTP/1.1 on the same port")
    func h2c() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(host, to: backend.endpoint).isReady)
            let curl = try Binaries.onPath("curl", install: "apt-get install curl")
            let url = "http://127.0.0.1:\(host.port)/h2"
            let h2 = try await Binaries.run(curl, ["-s", "--http2-prior-knowledge", "-w", "\\n%{http_version}", url], in: bed.directory)
            #expect(h2.output.contains("backend=web"))
            #expect(h2.output.hasSuffix("\n2"), "spoke HTTP/2 to Envoy: \(h2.output)")
            let h1 = try await Binaries.run(curl, ["-s", "--http1.1", "-w", "\\n%{http_version}", url], in: bed.directory)
            #expect(h1.output.hasSuffix("\n1.1"))
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
