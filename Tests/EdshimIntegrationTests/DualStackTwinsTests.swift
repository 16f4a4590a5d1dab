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

    @Test("twins sent to one container's IPv4 and IPv6 addresses (a dockerd run with --ipv6) share the cluster, and each listener reaches only its own address, in either mode", arguments: [ProxyMode.http, .tcp])
    func twinsOfOneContainerOnTwoFamilies(mode: ProxyMode) async throws {
        try await withFakeDockerTestbed("families-\(mode.rawValue)") { bed, docker in
            // Each address answers with its own name, on the same container port.
            let v4Backend = try bed.httpBackend("v4")
            let v6Backend = try bed.httpBackend("v6", on: .loopbackIPv6, port: v4Backend.endpoint.port)
            let labels = ["ServiceName": "web", "ProxyMode": mode.rawValue]
            let id = FakeDockerEngine.id(of: .loopbackIPv4)
            docker.set(.loopbackIPv4, labels: labels, id: id)
            docker.set(.loopbackIPv6, labels: labels, id: id)
            let port = try Sockets.freePort()
            let v4 = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: v4Backend.endpoint)
            let v6 = try await bed.publish(SocketEndpoint(ip: .anyIPv6, port: port), to: v6Backend.endpoint)
            #expect(v4.isReady && v6.isReady, "\(v4.status) \(v6.status)")
            let clusters = try bed.clusters()
            #expect(Set(clusters["web-\(port)"] ?? []) == ["127.0.0.1:\(v4Backend.endpoint.port)", "::1:\(v4Backend.endpoint.port)"], "one cluster for both: \(clusters)")
            // docker-proxy sends each family to its own address: a container listening
            // on 0.0.0.0 alone must not refuse every other IPv4 client.
            for _ in 0..<10 {
                #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).body.contains("backend=v4"))
                #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv6, port: port)).body.contains("backend=v6"))
            }
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("twins serving two different containers each get their own cluster, and keep it when the other goes", arguments: [SpawnStyle.dockerd2010, .dockerd28])
    func twinsOfTwoContainers(style: SpawnStyle) async throws {
        try await withTestbed { bed in
            let web = try bed.httpBackend("web")
            let api = try bed.httpBackend("api")
            let port = try Sockets.freePort()
            let v4 = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: web.endpoint, style: style)
            let v6 = try await bed.publish(SocketEndpoint(ip: .anyIPv6, port: port), to: api.endpoint, style: style)
            #expect(v4.isReady && v6.isReady, "\(v4.status) \(v6.status)")

            let apart = "unknown-\(port)-127_0_0_1_\(api.endpoint.port)"
            #expect(try bed.clusters().filter { $0.key.hasPrefix("unknown-\(port)") } == [
                "unknown-\(port)": [web.endpoint.description],
                apart: [api.endpoint.description],
            ])
            for _ in 0..<10 {
                #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).body.contains("backend=web"))
                #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv6, port: port)).body.contains("backend=api"))
            }
            #expect(try bed.registrations().map(\.serviceName).sorted() == ["unknown-\(port)", apart])

            let modified = try bed.stat("listener_manager.listener_modified")
            v4.process.signal(SIGINT)
            #expect(await v4.process.waitForExit(timeout: .seconds(1)) == 0)
            try await bed.eventually("the 0.0.0.0 cluster goes") { try bed.clusters()["unknown-\(port)"] == nil }
            #expect(try bed.clusters()[apart] == [api.endpoint.description], "the :: twin keeps its cluster")
            #expect(try bed.stat("listener_manager.listener_modified") == modified, "and its listener is not touched")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv6, port: port)).body.contains("backend=api"))
            try bed.expectNoRejectedUpdates()
        }
    }
}
