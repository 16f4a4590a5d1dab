import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Nothing lost across restarts of the server: its registrations come back from its state file.
@Suite("Persistence")
struct PersistenceTests {
    @Test("a SIGKILLed server comes back with every live registration, republishes the same bytes, and Envoy drains nothing")
    func killedServerRestores() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            var shims: [ShimRun] = []
            var ports: [UInt16] = []
            for index in 0..<4 {
                let port = try Sockets.freePort()
                let shim = try await bed.publish(SocketEndpoint(ip: index == 3 ? .anyIPv6 : .anyIPv4, port: port), to: backend.endpoint)
                #expect(shim.isReady)
                shims.append(shim)
                ports.append(port)
            }
            let listenersBefore = try Data(contentsOf: URL(fileURLWithPath: bed.xdsDirectory + "/lds.json"))
            let clustersBefore = try Data(contentsOf: URL(fileURLWithPath: bed.xdsDirectory + "/cds.json"))
            let modifiedBefore = try bed.stat("listener_manager.listener_modified")
            let removedBefore = try bed.stat("listener_manager.listener_removed")

            await bed.killServer()
            // One shim dies while the server is down: it must not come back.
            shims[0].process.signal(SIGKILL)
            _ = await shims[0].process.waitForExit(timeout: .seconds(5))

            let restart = ContinuousClock.now
            try await bed.startServer()
            try await bed.eventually("the live registrations are back, the dead shim's is not", timeout: .seconds(5)) {
                Set(try bed.registrations().map(\.owner.pid)) == Set(shims.dropFirst().map(\.process.pid))
            }
            #expect(ContinuousClock.now - restart < .seconds(5), "back from the state file, not waiting for the shims' own retries")
            try await bed.eventually("Envoy lets go of the dead shim's port") { try bed.listeners()["tcp_0.0.0.0_\(ports[0])"] == nil }
            for (index, port) in ports.enumerated().dropFirst() {
                let ip: IPAddress = index == 3 ? .loopbackIPv6 : .loopbackIPv4
                #expect(try TestHTTP.get(SocketEndpoint(ip: ip, port: port)).status == 200)
            }
            #expect(try bed.stat("listener_manager.listener_modified") == modifiedBefore, "no surviving listener was touched")
            #expect(try bed.stat("listener_manager.listener_removed") == removedBefore + 1, "only the dead shim's listener went")

            // With every shim alive, a restart republishes exactly the same bytes (the
            // server publishes before its socket answers, which startServer waits for),
            // and Envoy sees no listener change.
            let listenersNow = try Data(contentsOf: URL(fileURLWithPath: bed.xdsDirectory + "/lds.json"))
            let clustersNow = try Data(contentsOf: URL(fileURLWithPath: bed.xdsDirectory + "/cds.json"))
            #expect(listenersNow != listenersBefore, "sanity: the dead shim's listener was removed in between")
            #expect(clustersNow != clustersBefore, "sanity: and its cluster")
            let counters = ["listener_manager.listener_added", "listener_manager.listener_modified", "listener_manager.listener_removed"]
            let countersNow = try counters.map { try bed.stat($0) }
            await bed.killServer()
            try await bed.startServer()
            #expect(try Data(contentsOf: URL(fileURLWithPath: bed.xdsDirectory + "/lds.json")) == listenersNow)
            #expect(try Data(contentsOf: URL(fileURLWithPath: bed.xdsDirectory + "/cds.json")) == clustersNow)
            try await bed.expectEnvoyTookEveryUpdate()
            #expect(try counters.map { try bed.stat($0) } == countersNow, "Envoy added, modified or removed no listener")
        }
    }

    @Test("restarted with tracing turned off, or with a state file older than the xds files (killed between its two writes), the server keeps the clusters on disk until the listeners changed, then drops them")
    func restartRemovesListenersFirst() async throws {
        var options = Testbed.Options()
        options.startServer = false
        try await withTestbed(options) { bed in
            let collector = try bed.recordingBackend(RecordedRequests())
            try await bed.startServer(extraArguments: ["--tracing-otlp", "http://\(collector.endpoint)"])
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            #expect(try bed.admin("/clusters").contains("edshim-tracing::"))

            // Tracing off: the tracing cluster goes, and the listeners that name it first.
            await bed.killServer()
            let tracingOff = try await Self.replacements(in: bed.xdsDirectory) { try await bed.startServer() }
            #expect(tracingOff == ["cds.json", "lds.json", "cds.json"], "files replaced, in order: \(tracingOff)")
            try await bed.eventually("Envoy let go of the tracing cluster") { !(try bed.admin("/clusters").contains("edshim-tracing::")) }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)

            // A port published, then its state taken back to before it (as if the
            // server was killed after writing the xds files, before saving the state).
            let stateBefore = try Data(contentsOf: URL(fileURLWithPath: bed.stateFile))
            let other = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(other, to: backend.endpoint)
            #expect(shim.isReady)
            await bed.killServer()
            shim.process.signal(SIGKILL)
            _ = await shim.process.waitForExit(timeout: .seconds(5))
            try stateBefore.write(to: URL(fileURLWithPath: bed.stateFile))
            let olderState = try await Self.replacements(in: bed.xdsDirectory) { try await bed.startServer() }
            // The first cds.json, the clusters as Envoy has them (the one the state lacks
            // last), is not written when those are the bytes on disk already: when that
            // cluster's name, which differs from the other's by its port, sorts last.
            let keptSortsLast = String(other.port) > String(port)
            #expect(olderState == (keptSortsLast ? ["lds.json", "cds.json"] : ["cds.json", "lds.json", "cds.json"]), "files replaced, in order: \(olderState)")
            try await bed.eventually("Envoy let go of the port the state file did not have") { try bed.listeners()["tcp_0.0.0.0_\(other.port)"] == nil }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
        }
    }

    @Test("a shim withdrawn just before the server was killed, its state not saved yet (the state file older than the xds files): the restarted server does not give its listener back to Envoy, even for a moment")
    func withdrawnBeforeKillStaysWithdrawn() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let (gone, kept) = (SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()))
            let goneShim = try await bed.publish(gone, to: backend.endpoint)
            #expect(try await bed.publish(kept, to: backend.endpoint).isReady && goneShim.isReady)
            let stateWithBoth = try Data(contentsOf: URL(fileURLWithPath: bed.stateFile))
            goneShim.process.signal(SIGKILL)
            _ = await goneShim.process.waitForExit(timeout: .seconds(5))
            try await bed.eventually("Envoy let go of the dead shim's port") { try bed.listeners()["tcp_0.0.0.0_\(gone.port)"] == nil }
            await bed.killServer()
            try stateWithBoth.write(to: URL(fileURLWithPath: bed.stateFile))
            let added = try bed.stat("listener_manager.listener_added")

            try await bed.startServer()
            #expect(try bed.registrations().map(\.key.host.port) == [kept.port])
            try await Task.sleep(for: .seconds(1))
            try await bed.expectEnvoyTookEveryUpdate()
            #expect(try bed.stat("listener_manager.listener_added") == added, "the withdrawn port's listener was not added again")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: kept.port)).servedByEnvoy)
        }
    }

    /// The names of the files renamed into `directory` while `work` runs, in order,
    /// and in the second after it (inotify).
    private static func replacements(in directory: String, during work: () async throws -> Void) async throws -> [String] {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0, inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO)) >= 0 else { throw TestFailure("inotify on \(directory): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try await work()
        try await Task.sleep(for: .seconds(1))
        var names: [String] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        var offset = 0
        let headerSize = MemoryLayout<inotify_event>.size
        while count > 0, offset + headerSize <= count {
            let length = buffer.withUnsafeBytes { Int($0.load(fromByteOffset: offset + MemoryLayout<inotify_event>.offset(of: \.len)!, as: UInt32.self)) }
            let name = String(decoding: buffer[(offset + headerSize)..<(offset + headerSize + length)].prefix { $0 != 0 }, as: UTF8.self)
            if !name.hasPrefix(".") { names.append(name) }
            offset += headerSize + length
        }
        return names
    }

    @Test("a shim that died while the server was down: the restarted server takes its listener out, then its cluster (its container's address may be another's next), as after any change")
    func shimDiedWhileServerWasDown() async throws {
        var options = Testbed.Options()
        options.envoyDrainTimeSeconds = 3
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            let kept = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let gone = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(kept, to: backend.endpoint).isReady)
            let dying = try await bed.publish(gone, to: backend.endpoint)
            #expect(dying.isReady)
            await bed.killServer()
            dying.process.signal(SIGKILL)
            _ = await dying.process.waitForExit(timeout: .seconds(2))

            try await bed.startServer()
            let listener = ServiceNaming.listenerName(for: RegistrationKey(proto: .tcp, host: gone))
            try await bed.eventually("the dead shim's listener is gone") { try bed.listeners()[listener] == nil }
            // Well within the 3 s drain time: the cluster is not kept for a port withdrawn.
            try await bed.eventually("then its cluster", timeout: .seconds(2)) { try bed.clusters()["unknown-\(gone.port)"] == nil }
            #expect(try bed.clusters()["unknown-\(kept.port)"] != nil)
            try bed.expectNoRejectedUpdates()
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: kept.port)).servedByEnvoy)
        }
    }
}
