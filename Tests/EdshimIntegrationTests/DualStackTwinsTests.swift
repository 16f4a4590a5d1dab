import EdshimCore
import Foundation
import Testing

/// dockerd publishes each port twice: `-host-ip 0.0.0.0` and `-host-ip ::`.
@Suite("The 0.0.0.0 and :: twins")
struct DualStackTwinsTests {
    @Test("both twins serve side by side, share the cluster, and stopping one keeps the other", arguments: SpawnStyle.allCases)
    func twins(style: SpawnStyle) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            let v4 = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint, style: style)
            let v6 = try await bed.publish(SocketEndpoint(ip: .anyIPv6, port: port), to: backend.endpoint, style: style)
            #expect(v4.status == "0\n", "v4 shim: \(v4.process.log)")
            #expect(v6.status == "0\n", "v6 shim: \(v6.process.log)")

            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv6, port: port)).status == 200)
            let listeners = try bed.listeners()
            #expect(listeners["tcp_0.0.0.0_\(port)"] != nil)
            #expect(listeners["tcp_[::]_\(port)"] != nil)
            #expect(try bed.clusters().keys.filter { $0.hasSuffix("-\(port)") } == ["unknown-\(port)"], "one shared cluster")

            v4.process.signal(SIGINT)
            #expect(await v4.process.waitForExit(timeout: .seconds(1)) == 0)
            #expect(try bed.listeners()["tcp_0.0.0.0_\(port)"] == nil)
            #expect(throws: (any Error).self) { try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)) }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv6, port: port)).status == 200, "the :: twin keeps serving")
            #expect(try bed.clusters()["unknown-\(port)"] == [backend.endpoint.description])
        }
    }
}
