import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `docker run` publishing ports while `edshim status --check` watches: a port whose
/// registration is under way is neither lost nor broken, and a monitoring check must
/// not fail on it (nor the server's log cry wolf).
@Suite("Status while ports are being registered", .serialized)
struct StatusWhileRegisteringTests {
    /// The row of `host` in a status table, split into cells.
    private static func row(of host: SocketEndpoint, in table: String) -> [String]? {
        table.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.first { $0.first == host.description }
    }

    @Test("a port whose labels the server is still reading (a slow Docker) is listed as registering, and status --check passes")
    func registeringWhileDockerAnswersSlowly() async throws {
        let (socketPath, options) = LabelsReadAgainTests.askingDocker(at: "status-slow")
        let docker = try FakeDockerEngine(socketPath: socketPath)
        defer { docker.stop() }
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            docker.set(backend.endpoint.ip, labels: ["ServiceName": "web"])
            docker.delay.withLock { $0 = .milliseconds(400) }
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let asked = docker.requests.withLock { $0 }
            async let run = bed.publish(host, to: backend.endpoint)
            docker.waitForRequest(after: asked)
            let check = try await Binaries.run(bed.edshim, ["status", "--check"], environment: bed.environment, in: bed.directory)
            #expect(check.status == 0, "\(check.output)")
            #expect(Self.row(of: host, in: check.output)?.dropFirst(5).first == "registering", "\(check.output)")
            #expect(check.output.contains("registering: the server is registering the port (docker run is publishing it)"), "\(check.output)")
            #expect(try await run.isReady)
            let names = try bed.registrations().map(\.serviceName)
            #expect(names == ["web-\(host.port)"], "\(names) \(bed.server?.log ?? "")")
        }
    }

    @Test("a port registered and waiting for Envoy to listen is noted (registering), not (closed), in the table and in --json, and status --check passes")
    func registeringWhileEnvoyHasNotListened() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.readyTimeoutSeconds = 4
        try await withTestbed(options) { bed in
            let reader = try await ShimRefusalTests.envoyThatReadsAndDoesNotListen(on: bed)
            defer { reader.signal(SIGKILL) }
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            async let run = bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9), environment: ["EDSHIM_FALLBACK": "fail"])
            try await bed.eventually("registered, waiting for Envoy") { try !bed.registrations().isEmpty }
            let check = try await Binaries.run(bed.edshim, ["status", "--check"], environment: bed.environment, in: bed.directory)
            #expect(check.status == 0, "\(check.output)")
            #expect(Self.row(of: host, in: check.output)?.dropFirst(5).prefix(2) == ["http", "(registering)"], "\(check.output)")
            #expect(!check.output.contains("(closed)"), "\(check.output)")
            let json = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            #expect(json.output.contains(#""served_by":"nothing","registering":true"#), "\(json.output)")
            // Once answered (Envoy never listened: withdrawn), nothing is left registering.
            #expect(try await run.status.hasPrefix("1\n"))
            #expect(try bed.registrations().isEmpty)
        }
    }

    @Test("shims started after the server, their registration under way at its check for lost registrations (10 s after its start), are not reported as lost")
    func newShimsAreNotReportedLost() async throws {
        let (socketPath, options) = LabelsReadAgainTests.askingDocker(at: "status-lost")
        let docker = try FakeDockerEngine(socketPath: socketPath)
        defer { docker.stop() }
        try await withTestbed(options) { bed in
            let started = ContinuousClock.now
            let backend = try bed.httpBackend("web")
            docker.set(backend.endpoint.ip, labels: ["ServiceName": "web"])
            // Each registration reads the labels for about 1.2 s: one is under way
            // nearly all the time, at the check 10 s after the server's start too.
            docker.delay.withLock { $0 = .milliseconds(400) }
            var published = 0
            while ContinuousClock.now - started < .seconds(12) {
                #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint).isReady)
                published += 1
            }
            #expect(published >= 4, "registrations took about 1.2 s each")
            let log = bed.server?.log ?? ""
            #expect(!log.contains("ports are not registered and nothing serves them"), "\(log)")
        }
    }

    @Test("status --check run again and again while 40 ports are withdrawn one after another (as docker rm stops their shims) passes every time")
    func checkPassesWhilePortsAreWithdrawn() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            var shims: [ChildProcess] = []
            for _ in 0..<40 {
                let shim = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint)
                #expect(shim.isReady)
                shims.append(shim.process)
            }
            let removal = Task {
                for shim in shims {
                    shim.signal(SIGINT)
                    _ = await shim.waitForExit(timeout: .seconds(2))
                    // dockerd's own work between two proxies: the removal lasts a few seconds.
                    try? await Task.sleep(for: .milliseconds(60))
                }
            }
            var checks: [(status: Int32, output: String)] = []
            repeat {
                checks.append(try await Binaries.run(bed.edshim, ["status", "--check"], environment: bed.environment, in: bed.directory))
            } while try bed.registrations().count > 3 && checks.count < 30
            await removal.value
            #expect(checks.count >= 2)
            for check in checks where check.status != 0 {
                Issue.record("a check failed while ports were withdrawn: \(check.output)")
            }
        }
    }

    @Test("a shim serving its port itself because Envoy does not take it, registering again and again, fails status --check at every look: its retries are not 'registering'")
    func shimServingItselfFailsEveryCheck() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.readyTimeoutSeconds = 3
        try await withTestbed(options) { bed in
            // An Envoy that reads the files and never listens: each registration of the
            // shim waits the readiness timeout, so a retry is under way at most looks.
            let reader = try await ShimRefusalTests.envoyThatReadsAndDoesNotListen(on: bed)
            defer { reader.signal(SIGKILL) }
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            try await bed.eventually("the shim serves the port itself") { shim.process.log.contains("serving tcp \(host)") }
            let started = ContinuousClock.now
            var looks = 0
            while ContinuousClock.now - started < .seconds(6) {
                let check = try await Binaries.run(bed.edshim, ["status", "--check"], environment: bed.environment, in: bed.directory)
                looks += 1
                #expect(check.status == 1 && check.output.contains("TCP ports not served by Envoy as registered: \(host) ("), "look \(looks): \(check.output)")
            }
            #expect(looks >= 3)
        }
    }
}
