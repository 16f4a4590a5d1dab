import EdshimCore
import Foundation
import Testing

/// Ports registered while Docker does not answer (at boot dockerd restores its
/// containers, and starts their shims, before it opens its API) are named from their
/// labels once it does.
@Suite("Labels read again once Docker answers")
struct LabelsReadAgainTests {
    /// A fake Docker socket's path, named for the test, and a testbed whose server
    /// asks Docker there.
    static func askingDocker(at name: String) -> (String, Testbed.Options) {
        let socketPath = "/tmp/edshim-fake-docker-\(getpid())-\(name).sock"
        var options = Testbed.Options()
        options.serverArguments = ["--docker-host", "unix://\(socketPath)"]
        return (socketPath, options)
    }

    @Test("a port registered while Docker did not answer is renamed from its labels once Docker answers")
    func namedOnceDockerAnswers() async throws {
        var (socketPath, options) = Self.askingDocker(at: "late")
        // The testbed's Envoy drains for 2 s: the old cluster stays 2 + 5 s.
        options.envoyDrainTimeSeconds = 2
        try await withTestbed(options) { bed in
            let container = try #require(IPAddress("127.0.0.3"))
            let backend = try bed.httpBackend("web", on: container)
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            #expect(try bed.clusters().keys.sorted() == ["unknown-\(port)"], "Docker does not answer yet")

            // A client that keeps its connection across the rename.
            let kept = try KeepAliveClient(SocketEndpoint(ip: .loopbackIPv4, port: port))
            _ = try kept.request()
            #expect(kept.lastStatus == 200)

            let docker = try FakeDockerEngine(socketPath: socketPath)
            defer { docker.stop() }
            docker.set(container, labels: ["ServiceName": "web", "EnvironmentName": "prod"])
            // Until the listener changed: a new connection is counted under the new name.
            try await bed.eventually("named from its labels once Docker answers", timeout: .seconds(10)) {
                _ = try? TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port))
                return try bed.stat("http.web-prod-\(port).downstream_rq_total") >= 1
            }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
            // Its connection, on the listener's old filter chain until it drains (2 s),
            // still reaches the container: the old cluster outlives the drain.
            _ = try? kept.request()
            #expect(kept.lastStatus == 200, "a request on a connection opened before the rename")
            try await Task.sleep(for: .seconds(3))
            #expect(try bed.clusters().keys.contains("unknown-\(port)"), "kept past Envoy's drain time, by the margin")
            try await bed.eventually("the old cluster leaves Envoy once the drain is over", timeout: .seconds(15)) {
                try bed.clusters() == ["web-prod-\(port)": [backend.endpoint.description]]
            }
            #expect(try bed.stat("http.web-prod-\(port).downstream_rq_total") >= 1, "served under its new name")
            #expect(try bed.registrations().first?.metadata.service == "web", "the registry has the labels too (state file, edshim status)")
            #expect(bed.server?.log.contains("labels read once Docker answered") == true)
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("a port published as soon as Docker answers again is named from its labels: a lookup in the 5 s pause after a failure asks Docker anyway when it answers a ping (after every dockerd restart, containers started at once were named unknown-<port>)")
    func lookupsResumeOnceDockerAnswers() async throws {
        let (socketPath, options) = Self.askingDocker(at: "resume")
        try await withTestbed(options) { bed in
            let restored = try bed.httpBackend("restored", on: try #require(IPAddress("127.0.0.5")))
            let started = try bed.httpBackend("started", on: try #require(IPAddress("127.0.0.6")))
            // Published while dockerd restarts: the lookup fails, and lookups pause.
            let first = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(first, to: restored.endpoint).isReady)
            #expect(try bed.clusters().keys.sorted() == ["unknown-\(first.port)"], "Docker does not answer yet")

            let docker = try FakeDockerEngine(socketPath: socketPath)
            defer { docker.stop() }
            docker.set(restored.endpoint.ip, labels: ["ServiceName": "restored"])
            docker.set(started.endpoint.ip, labels: ["ServiceName": "started"])
            // At once: before the label refresher (four times a second) comes round.
            let second = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(second, to: started.endpoint).isReady)
            let clusters = try bed.clusters().keys.sorted()
            #expect(clusters.contains("started-\(second.port)"), "\(clusters)")
            // Docker gives an address to the next container at once: the log and the
            // status table name the container too.
            let name = "c-\(started.endpoint.ip)", shortID = String(FakeDockerEngine.id(of: started.endpoint.ip).prefix(12))
            let registered = bed.server?.log.split(separator: "\n").first { $0.contains("key=tcp \(second)") && $0.hasSuffix(" registered") }
            #expect(registered?.contains("container_name=\(name)") == true && registered?.contains("container_id=\(shortID)") == true, "\(String(describing: registered))")
            let status = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            let row = status.output.split(separator: "\n").first { $0.hasPrefix("\(second) ") }?.split(separator: " ").map(String.init)
            #expect(row?.prefix(5) == ["\(second)", "tcp", started.endpoint.description, name, "started-\(second.port)"], "\(status.output)")
            try await bed.eventually("the first port renamed too", timeout: .seconds(10)) {
                try bed.registrations().contains { $0.key.host == first && $0.metadata.service == "restored" }
            }
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("a port withdrawn and published again while Docker does not answer is still renamed once Docker answers")
    func republishedWhileDockerIsDown() async throws {
        let (socketPath, options) = Self.askingDocker(at: "again")
        try await withTestbed(options) { bed in
            let container = try #require(IPAddress("127.0.0.4"))
            let backend = try bed.httpBackend("web", on: container)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            // A container restarted at boot, before dockerd answers: its first shim
            // goes, and the next one publishes the same port.
            let first = try await bed.publish(host, to: backend.endpoint)
            #expect(first.isReady)
            first.process.signal(SIGINT)
            #expect(await first.process.waitForExit(timeout: .seconds(1)) == 0)
            // Long enough for the refresher to find nothing left waiting.
            try await Task.sleep(for: .milliseconds(2500))
            #expect(try await bed.publish(host, to: backend.endpoint).isReady)
            #expect(try bed.clusters().keys.sorted() == ["unknown-\(host.port)"], "Docker does not answer yet")

            let docker = try FakeDockerEngine(socketPath: socketPath)
            defer { docker.stop() }
            docker.set(container, labels: ["ServiceName": "web"])
            try await bed.eventually("named from its labels once Docker answers", timeout: .seconds(10)) {
                try bed.registrations().first?.metadata.service == "web"
            }
        }
    }

    @Test("a shim replacing a registration for the same container while Docker does not answer keeps its name and Envoy's listener; Docker's answer decides later")
    func replacementKeepsItsName() async throws {
        let (socketPath, options) = Self.askingDocker(at: "replace")
        let docker = try FakeDockerEngine(socketPath: socketPath)
        defer { docker.stop() }
        try await withTestbed(options) { bed in
            let container = try #require(IPAddress("127.0.0.4"))
            let backend = try bed.httpBackend("web", on: container)
            docker.set(container, labels: ["ServiceName": "web"])
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let first = try await bed.publish(host, to: backend.endpoint)
            #expect(first.isReady)
            #expect(try bed.clusters().keys.sorted() == ["web-\(host.port)"])

            docker.stop()
            let modified = try bed.stat("listener_manager.listener_modified")
            let second = try await bed.publish(host, to: backend.endpoint)
            #expect(second.isReady)
            #expect(try bed.registrations().map(\.owner.pid) == [second.process.pid], "the new shim owns the port")
            #expect(try bed.clusters().keys.sorted() == ["web-\(host.port)"], "the name it had")
            #expect(try bed.stat("listener_manager.listener_modified") == modified, "Envoy's listener did not change")

            // Docker back, with another container at that address (dockerd crashed and
            // gave it to a new one): Docker's answer wins.
            let back = try FakeDockerEngine(socketPath: socketPath)
            defer { back.stop() }
            back.set(container, labels: ["ServiceName": "api"], id: String(repeating: "ab", count: 32))
            try await bed.eventually("renamed from Docker's answer:\n\(bed.server?.log ?? "")", timeout: .seconds(10)) {
                try bed.clusters().keys.sorted() == ["api-\(host.port)"]
            }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200)
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("a server restarted where it cannot ask Docker keeps the names it restored")
    func restartWithoutDockerKeepsNames() async throws {
        let socketPath = "/tmp/edshim-fake-docker-\(getpid())-restart.sock"
        let docker = try FakeDockerEngine(socketPath: socketPath)
        defer { docker.stop() }
        var options = Testbed.Options()
        options.startServer = false
        try await withTestbed(options) { bed in
            try await bed.startServer(extraArguments: ["--docker-host", "unix://\(socketPath)"])
            let container = try #require(IPAddress("127.0.0.5"))
            let backend = try bed.httpBackend("web", on: container)
            docker.set(container, labels: ["ServiceName": "web"])
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            #expect(try bed.clusters().keys.sorted() == ["web-\(port)"])

            await bed.stopServer()
            // A DOCKER_HOST it cannot use: it asks no Docker at all.
            try await bed.startServer(extraEnvironment: ["DOCKER_HOST": "ssh://me@nowhere"])
            try await Task.sleep(for: .seconds(2))
            #expect(try bed.clusters().keys.sorted() == ["web-\(port)"], "the restored name stays")
        }
    }
}

