import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A disk that refuses writes, as a full one would: nothing held up, nothing lost.
@Suite("Full disk")
struct FullDiskTests {
    @Test("a disk that refuses the state file's replacement (as a full one would) does not hold up the start, which dockerd waits for: the server comes up at once, withdraws the port of a shim that died meanwhile, and saves its state once the disk takes it", .needsPrivateNetworkNamespaces)
    func stateRefusedAtStart() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let (livePort, deadPort) = (try Sockets.freePort(), try Sockets.freePort())
            let live = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: livePort), to: backend.endpoint)
            let dead = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: deadPort), to: backend.endpoint)
            #expect(live.isReady && dead.isReady)
            await bed.killServer()
            dead.process.signal(SIGKILL)
            _ = await dead.process.waitForExit(timeout: .seconds(5))

            let started = ContinuousClock.now
            try await bed.startServer(refusingWritesTo: [bed.stateFile])
            #expect(ContinuousClock.now - started < .seconds(5), "the start waited for the state file")
            try await bed.eventually("Envoy let go of the dead shim's port") { try bed.listeners()["tcp_0.0.0.0_\(deadPort)"] == nil }
            #expect(try bed.registrations().map(\.owner.pid) == [live.process.pid])
            try await bed.eventually("the server says it cannot save its state") { bed.server?.log.contains("cannot save the state file; retrying") == true }
            let savedPorts = { try StateDocument.decode(Array(try Data(contentsOf: URL(fileURLWithPath: bed.stateFile)))).registrations.map(\.key.host.port) }
            #expect(Set(try savedPorts()) == [livePort, deadPort], "the state file as it was")

            // The disk takes writes again: the state follows.
            try await bed.setWrites(refused: false, to: [bed.stateFile])
            try await bed.eventually("the state is saved without the dead shim", timeout: .seconds(10)) { try savedPorts() == [livePort] }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: livePort)).status == 200)
        }
    }

    @Test("a disk that refuses the state file (as a full one would) holds up neither a registration, which Envoy serves at once, nor SIGTERM: the server says it cannot save, and saves once the disk takes it", .needsPrivateNetworkNamespaces)
    func stateRefusedWhileServing() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let firstPort = try await Self.publishThenRestart(backend, on: bed, refusingWritesTo: [bed.stateFile])

            let secondPort = try Sockets.freePort()
            let started = ContinuousClock.now
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: secondPort), to: backend.endpoint).isReady)
            #expect(ContinuousClock.now - started < .seconds(5), "the registration waited for the state file")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: secondPort)).status == 200)
            #expect(bed.server?.log.contains("cannot save the state file; retrying") == true)
            let savedPorts = { try StateDocument.decode(Array(try Data(contentsOf: URL(fileURLWithPath: bed.stateFile)))).registrations.map(\.key.host.port) }
            #expect(try savedPorts() == [firstPort], "the state file as it was")

            // The disk takes writes again: the state follows.
            try await bed.setWrites(refused: false, to: [bed.stateFile])
            try await bed.eventually("the state is saved with the new port", timeout: .seconds(10)) { Set(try savedPorts()) == [firstPort, secondPort] }
            // Logged just after the write the test saw.
            try await bed.eventually("the recovery is logged") { bed.server?.log.contains("the state file is saved again") == true }

            // Refused again, and SIGTERM: the server exits at once all the same.
            try await bed.setWrites(refused: true, to: [bed.stateFile])
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint).isReady)
            try await bed.expectServerStopsAtOnce()
        }
    }

    @Test("a disk that refuses Envoy's files (as a full one would): a registration is refused at once, not after the shim's 12 s, its shim serves the port itself, and hands it to Envoy once the files can be written; SIGTERM is not held up", .needsPrivateNetworkNamespaces)
    func envoyFilesRefused() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let files = [DiscoveryDocument.clusterFileName, DiscoveryDocument.listenerFileName].map { bed.xdsDirectory + "/" + $0 }
            let firstPort = try await Self.publishThenRestart(backend, on: bed, refusingWritesTo: files)

            let secondPort = try Sockets.freePort()
            let started = ContinuousClock.now
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: secondPort), to: backend.endpoint).isReady, "the shim serves the port itself")
            #expect(ContinuousClock.now - started < .seconds(4), "the registration waited for Envoy's files")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: secondPort)).status == 200)
            #expect(try bed.listeners()["tcp_0.0.0.0_\(secondPort)"] == nil, "Envoy never got it")
            #expect(bed.server?.log.contains("cannot write Envoy's configuration; registration withdrawn") == true)
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: firstPort)).status == 200, "Envoy keeps what it had")
            // The registration withdrawn, the registry is what the files hold again:
            // /healthz goes on saying they cannot be written, between the shim's retries too.
            var healthz: [Int] = []
            for _ in 0..<10 {
                healthz.append(try TestHTTP.get(bed.serverAdmin, path: "/healthz").status)
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(healthz.allSatisfy { $0 == 503 }, "\(healthz)")
            let warnings = (bed.server?.log ?? "").split(separator: "\n").filter { $0.contains(" warning ") && $0.contains("\(secondPort)") }
            #expect(warnings.count == 1 && warnings.allSatisfy { $0.contains("registration withdrawn") }, "the withdrawal once, not a refusal at each of the shim's retries: \(warnings)")

            // The disk takes writes again: the shim registers again, and Envoy takes the port.
            try await bed.setWrites(refused: false, to: files)
            try await bed.eventually("Envoy listens on the port its shim served", timeout: .seconds(20)) {
                try bed.listeners()["tcp_0.0.0.0_\(secondPort)"] != nil && Set(try bed.registrations().map(\.key.host.port)) == [firstPort, secondPort]
            }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: secondPort)).status == 200)
            try await bed.eventually("/healthz is ok again") { try TestHTTP.get(bed.serverAdmin, path: "/healthz").status == 200 }
            #expect(bed.server?.log.contains("Envoy's configuration is written again") == true, "the recovery is logged")

            // Refused again, a registration under way, and SIGTERM: the server exits at once.
            try await bed.setWrites(refused: true, to: files)
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint).isReady)
            try await bed.expectServerStopsAtOnce()
        }
    }

    /// Publishes `backend` on a free port, then restarts the server with `files`
    /// refusing writes; returns the port.
    @Test("a server restarted on a state file's directory remounted read-only (ext4's errors=remount-ro) comes up with its registrations, serves new ones through Envoy, and says it cannot save", .needsPrivateNetworkNamespaces)
    func stateDirectoryReadOnlyAtStart() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let stateDirectory = bed.directory + "/state"
            let stateArguments = ["--state-file", stateDirectory + "/state.json"]
            await bed.stopServer()
            try await bed.startServer(extraArguments: stateArguments)
            let firstPort = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: firstPort), to: backend.endpoint).isReady)
            await bed.stopServer()

            let unshare = try SystemExecutables.required("unshare", package: "util-linux")
            let readOnly = #"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@""#
            try await bed.startServer(extraArguments: stateArguments, launcher: [unshare, "-m", "--propagation", "private", "--", "sh", "-c", readOnly, "sh", stateDirectory])
            #expect(try bed.registrations().map(\.key.host.port) == [firstPort], "restored: \(bed.server?.log ?? "")")
            let secondPort = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: secondPort), to: backend.endpoint).isReady)
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: secondPort)).servedByEnvoy)
            try await bed.eventually("the server says it cannot save its state") {
                (bed.server?.log ?? "").contains("cannot save the state file; retrying (a restart meanwhile takes back from lds.json the ports Envoy serves")
            }
            let health = try TestHTTP.get(bed.serverAdmin, path: "/healthz")
            #expect(health.status == 503 && health.body.contains("Read-only file system"), "\(health.body)")
        }
    }

    private static func publishThenRestart(_ backend: LoopbackBackend, on bed: Testbed, refusingWritesTo files: [String]) async throws -> UInt16 {
        let port = try Sockets.freePort()
        #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
        await bed.stopServer()
        try await bed.startServer(refusingWritesTo: files)
        return port
    }
}
