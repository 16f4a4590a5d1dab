import EdshimCore
import Foundation
import Testing

/// What a restarting server takes from its state file.
@Suite("State file restore")
struct StateFileRestoreTests {
    @Test("a state file entry its running shim does not publish (the file edited by hand: another port, another host address) is left out at restart, logged; the shim's own port is taken back from lds.json, and Envoy rejects nothing", arguments: ["port", "address"])
    func entryItsShimDoesNotPublish(edited: String) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(host, to: backend.endpoint).isReady)
            await bed.stopServer()
            let original = try String(contentsOfFile: bed.stateFile, encoding: .utf8)
            let other = try Sockets.freePort()
            let (from, to) = edited == "port" ? ("\"host_port\":\(host.port)", "\"host_port\":\(other)") : ("\"host_ip\":\"0.0.0.0\"", "\"host_ip\":\"192.0.2.9\"")
            #expect(original.contains(from), "\(original)")
            try original.replacingOccurrences(of: from, with: to).write(toFile: bed.stateFile, atomically: true, encoding: .utf8)

            try await bed.startServer()
            #expect(try bed.registrations().map(\.key.host) == [host], "only what the shim publishes")
            #expect(bed.server?.log.contains("the state file's registration is not what its shim publishes: left out") == true, "\(bed.server?.log ?? "")")
            try await bed.eventually("Envoy serves the shim's port, and nothing else") { Set(try bed.listeners().keys) == ["tcp_0.0.0.0_\(host.port)"] }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).servedByEnvoy)
            try bed.expectNoRejectedUpdates()
        }
    }
}
