import EdshimCore
import Foundation
import Testing

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
            #expect(ListenTable.read().contains { $0.endpoint == bed.serverAdmin }, "bound to 127.0.0.1, as asked")
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

    @Test("the default admin address is loopback only")
    func defaultIsLoopback() async throws {
        let help = try await Binaries.run(try Binaries.edshim(), ["server", "--help"], in: NSTemporaryDirectory())
        #expect(help.output.contains("127.0.0.1:7776"))
    }
}
