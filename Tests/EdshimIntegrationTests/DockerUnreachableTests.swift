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

    @Test("a DOCKER_HOST the server cannot use does not keep it from starting: it says so once and names services unknown-<port>")
    func unusableDockerHostFromTheEnvironment() async throws {
        var options = Testbed.Options()
        options.serverEnvironment = ["DOCKER_HOST": "ssh://me@docker-host"]
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady, "\(shim.process.log)")
            #expect(try bed.clusters()["unknown-\(host.port)"] != nil)
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200)
            let log = bed.server?.log ?? ""
            let warnings = log.split(separator: "\n").filter { $0.contains("DOCKER_HOST cannot be used") }
            #expect(warnings.count == 1, "said once:\n\(log)")
            #expect(warnings.first?.contains("ssh:// is not supported") == true, "says why:\n\(log)")
            #expect(warnings.first?.contains("--docker-host unix:///var/run/docker.sock") == true, "says what to do:\n\(log)")
        }
    }

    @Test("a --docker-host the server cannot use is refused at start, saying what to write")
    func unusableDockerHostFlag() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let run = try await Binaries.run(
                bed.edshim,
                ["server", "--socket", bed.socketPath, "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile, "--admin-address", "off",
                 "--docker-host", "tcp://[::1"],
                in: bed.directory
            )
            #expect(run.status != 0)
            #expect(run.output.contains("--docker-host: docker host tcp://[::1 must be tcp://HOST[:PORT]"), "\(run.output)")
            #expect(!FileManager.default.fileExists(atPath: bed.stateFile + ".lock"), "refused before claiming anything")
        }
    }

    @Test("a network removed between Docker's list and its inspect (404) is passed over: the container's labels are read from the next")
    func networkGoneMeanwhile() async throws {
        try await withFakeDockerTestbed("gone") { bed, docker in
            docker.listsAGoneNetwork.withLock { $0 = true }
            let container = try #require(IPAddress("127.0.0.4"))
            let backend = try bed.httpBackend("web", on: container)
            docker.set(container, labels: ["ServiceName": "web"])
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(host, to: backend.endpoint).isReady)
            #expect(try bed.clusters().keys.sorted() == ["web-\(host.port)"], "\(bed.server?.log ?? "")")
            #expect(bed.server?.log.contains("cannot read container labels") == false, "not taken for Docker being down")
        }
    }

    @Test("a server stopped while it asks Docker for a container's labels finishes that registration first, and does not blame Docker")
    func stoppedDuringLabelLookup() async throws {
        try await withFakeDockerTestbed("stop") { bed, docker in
            // Slower than a stop, faster than the client's 800 ms per call.
            docker.delay.withLock { $0 = .milliseconds(600) }
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let publishing = Task { try await bed.publish(host, to: backend.endpoint) }
            await Task.detached { docker.waitForRequest(after: 0) }.value
            #expect(docker.requests.withLock { $0 } >= 1, "the server asked Docker")
            let server = try #require(bed.server)
            server.signal(SIGTERM)
            #expect(await server.waitForExit(timeout: .seconds(5)) == 0, "\(server.log)")
            let shim = try await publishing.value
            #expect(shim.isReady, "the registration under way was answered before the server exited")
            let log = server.log
            let blamesDocker = log.contains("cannot read container labels")
            #expect(!blamesDocker, "a stop is not Docker failing:\n\(log)")
            #expect(!log.contains("CancellationError"), "\(log)")
        }
    }

    @Test("a Docker API that stops in the middle of its answers holds no registration: the port is published at once, as unknown-<port>")
    func dockerStallsMidAnswer() async throws {
        try await withFakeDockerTestbed("stall") { bed, docker in
            docker.stallsMidBody.withLock { $0 = true }
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let started = ContinuousClock.now
            let shim = try await bed.publish(host, to: backend.endpoint)
            let took = ContinuousClock.now - started
            #expect(shim.isReady, "\(shim.process.log)")
            // Each call to Docker gives up after 800 ms, its body included.
            #expect(took < .seconds(5), "published after \(took)")
            #expect(try bed.registrations().map(\.owner.pid) == [shim.process.pid], "registered, not served by the shim itself")
            #expect(try bed.clusters().keys.sorted() == ["unknown-\(host.port)"])
        }
    }
}
