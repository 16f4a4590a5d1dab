import EdshimCore
import Foundation
import Testing

/// Labels are a bonus: without Docker, ports are still published, named `unknown-<port>`.
@Suite("Docker unreachable")
struct DockerUnreachableTests {
    @Test("registrations succeed with default names, and the cause is logged once")
    func defaultsWhenDockerIsDown() async throws {
        var options = Testbed.Options()
        options.serverArguments = ["--docker-host", "unix:///nonexistent/docker.sock"]
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            var ports: [UInt16] = []
            for _ in 0..<2 {
                let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
                let shim = try await bed.publish(host, to: backend.endpoint)
                #expect(shim.isReady)
                ports.append(host.port)
            }
            let clusters = try bed.clusters()
            for port in ports { #expect(clusters["unknown-\(port)"] != nil) }
            let log = bed.server?.log ?? ""
            #expect(log.components(separatedBy: "cannot read container labels from Docker").count - 1 == 1, "logged once:\n\(log)")
            #expect(log.contains("/nonexistent/docker.sock"))
        }
    }
}
