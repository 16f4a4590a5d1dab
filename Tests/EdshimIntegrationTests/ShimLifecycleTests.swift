import EdshimCore
import Foundation
import Testing

/// Stopping, the names dockerd may use, and the version probe.
@Suite("Shim lifecycle")
struct ShimLifecycleTests {
    @Test("SIGINT and SIGTERM deregister, remove the listener and exit 0 within a second", arguments: [SIGINT, SIGTERM])
    func stopSignals(signal: Int32) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            #expect(try bed.listeners()["tcp_0.0.0.0_\(host.port)"] != nil)

            let start = ContinuousClock.now
            shim.process.signal(signal)
            let status = await shim.process.waitForExit(timeout: .seconds(1))
            #expect(status == 0, "exited \(String(describing: status)) after \(ContinuousClock.now - start)")
            #expect(try bed.listeners()["tcp_0.0.0.0_\(host.port)"] == nil, "Envoy let go of the listener before the shim exited")
            #expect(try bed.registrations().isEmpty)
            #expect(Sockets.canBind(host), "the port is free again, as dockerd expects after stopping the proxy")
        }
    }

    @Test("started as docker-proxy, envoy-docker-shim or `edshim shim`, it serves", arguments: ["docker-proxy", "envoy-docker-shim", "shim-subcommand"])
    func names(name: String) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            var arguments = ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine
            var argv0: String?
            if name == "shim-subcommand" {
                arguments.insert("shim", at: 0)
            } else {
                let link = bed.directory + "/" + name
                try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: bed.edshim)
                argv0 = link
            }
            let shim = try await bed.spawnShim(arguments, argv0: argv0)
            #expect(shim.isReady, "shim log: \(shim.process.log)")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200)
        }
    }

    @Test("-v and -version print the version and exit 0", arguments: ["-v", "-version", "--version"])
    func versionProbe(flag: String) async throws {
        let result = try await Binaries.run(try Binaries.edshim(), [flag], in: NSTemporaryDirectory())
        #expect(result.status == 0)
        #expect(result.output.contains(EdshimVersion.current))
    }
}
