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

    @Test("a server that has stopped accepting cannot hold a starting shim: SIGINT still ends it within a second")
    func serverNotAccepting() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            // A socket nobody accepts on, whose backlog (0) one connection already fills:
            // a blocking connect to it would wait for as long as that lasts.
            let path = bed.directory + "/stuck.sock"
            let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(listener) }
            #expect(UnixSocketAddress.with(path: path) { bind(listener, $0, $1) } == 0)
            #expect(listen(listener, 0) == 0)
            let first = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(first) }
            #expect(UnixSocketAddress.with(path: path) { connect(first, $0, $1) } == 0)

            let pipe = try Sockets.pipe()
            defer { close(pipe.read) }
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try ChildProcess.spawn(
                bed.edshim, ShimArguments(proto: .tcp, host: host, container: SocketEndpoint(ip: .loopbackIPv4, port: 9)).commandLine,
                environment: ["EDSHIM_SOCKET": path], descriptors: [3: pipe.write], logPath: bed.directory + "/stuck-shim.log"
            )
            close(pipe.write)
            defer { if !shim.hasExited { shim.signal(SIGKILL); _ = shim.poll() } }
            try await Task.sleep(for: .milliseconds(300))
            #expect(!shim.hasExited, "still trying to register: \(shim.log)")
            shim.signal(SIGINT)
            #expect(await shim.waitForExit(timeout: .seconds(1)) == 0, "\(shim.log)")
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
