import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Nothing lost across restarts of the server or of Envoy.
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
            #expect(olderState == ["cds.json", "lds.json", "cds.json"], "files replaced, in order: \(olderState)")
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

            // The disk takes writes again: the shim registers again, and Envoy takes the port.
            try await bed.setWrites(refused: false, to: files)
            try await bed.eventually("Envoy listens on the port its shim served", timeout: .seconds(20)) {
                try bed.listeners()["tcp_0.0.0.0_\(secondPort)"] != nil && Set(try bed.registrations().map(\.key.host.port)) == [firstPort, secondPort]
            }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: secondPort)).status == 200)
            try await bed.eventually("/healthz is ok again") { try TestHTTP.get(bed.serverAdmin, path: "/healthz").status == 200 }

            // Refused again, a registration under way, and SIGTERM: the server exits at once.
            try await bed.setWrites(refused: true, to: files)
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint).isReady)
            try await bed.expectServerStopsAtOnce()
        }
    }

    /// Publishes `backend` on a free port, then restarts the server with `files`
    /// refusing writes; returns the port.
    private static func publishThenRestart(_ backend: LoopbackBackend, on bed: Testbed, refusingWritesTo files: [String]) async throws -> UInt16 {
        let port = try Sockets.freePort()
        #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
        await bed.stopServer()
        try await bed.startServer(refusingWritesTo: files)
        return port
    }

    @Test("a corrupt state file, or one of another format version (a downgrade), is reported and kept aside, the server starts, and takes back the running shim whose port Envoy serves: Envoy keeps its listener, untouched", arguments: [false, true])
    func corruptStateFile(anotherVersion: Bool) async throws {
        try await withTestbed { bed in
            var written: [UInt8] = []
            let port = try await Self.restartWithStateFile(of: bed) { path in
                let whole = try String(contentsOfFile: path, encoding: .utf8)
                if anotherVersion {
                    #expect(whole.contains(#""edshim_state":1"#), "\(whole)")
                    written = Array(whole.replacingOccurrences(of: #""edshim_state":1"#, with: #""edshim_state":2"#).utf8)
                } else {
                    written = Array(whole.utf8.prefix(40))
                }
                try Data(written).write(to: URL(fileURLWithPath: path))
            }
            let kept = try FileManager.default.contentsOfDirectory(atPath: bed.directory).filter { $0.hasPrefix("state.json.corrupt-") }
            #expect(kept.count == 1, "kept aside: \(kept)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: bed.directory + "/" + (kept.first ?? ""))) == Data(written))
            let log = bed.server?.log ?? ""
            #expect(log.contains("the state file is unreadable"), "\(log)")
            if anotherVersion { #expect(log.contains("state file version 2; this server reads version 1"), "\(log)") }
            try await Self.expectTakenBack(port, on: bed)
        }
    }

    @Test("a state file written in another boot of the host is not restored, though a process of this boot has its shim's PID and start time; a file without a boot id (an older server's) is")
    func stateFileOfAnotherBoot() async throws {
        let bootID = try #require(StateDocument.currentBootID())
        #expect(bootID.count == 36, "a UUID: \(bootID)")
        try await withTestbed { bed in
            let port = try await Self.restartWithStateFile(of: bed) { path in
                let whole = try String(contentsOfFile: path, encoding: .utf8)
                #expect(whole.contains(#""boot_id":"\#(bootID)""#), "saved with this boot's id: \(whole)")
                try Data(whole.replacingOccurrences(of: bootID, with: "00000000-0000-4000-8000-000000000000").utf8).write(to: URL(fileURLWithPath: path))
                // Nor is the running shim taken back from lds.json (it would be: it
                // really is a shim of this boot publishing the port).
                try Self.removeEveryListener(in: bed)
            }
            #expect(bed.server?.log.contains("the state file is from before the host restarted") == true, "\(bed.server?.log ?? "")")
            try await Self.expectResyncRestores(port, on: bed)
        }
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            _ = try await Self.restartWithStateFile(of: bed, publishing: port, to: backend) { path in
                let whole = try String(contentsOfFile: path, encoding: .utf8)
                try Data(whole.replacingOccurrences(of: #""boot_id":"\#(bootID)","#, with: "").utf8).write(to: URL(fileURLWithPath: path))
            }
            #expect(try bed.registrations().map(\.key.host.port) == [port], "restored: \(bed.server?.log ?? "")")
        }
    }

    @Test("a state file that cannot be read (a symlink loop; a FIFO, whose open would block the start) is reported, not taken silently for an empty one; the server starts and takes back the running shim whose port Envoy serves", arguments: [false, true])
    func stateFileThatCannotBeRead(fifo: Bool) async throws {
        try await withTestbed { bed in
            let port = try await Self.restartWithStateFile(of: bed) { path in
                try FileManager.default.removeItem(atPath: path)
                if fifo {
                    #expect(mkfifo(path, 0o600) == 0)
                } else {
                    try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: path)
                }
            }
            let log = bed.server?.log ?? ""
            if fifo {
                #expect(log.contains("the state file is not a regular file; starting without it") && log.contains("FIFO"), "\(log)")
            } else {
                #expect(log.contains("the state file cannot be read; starting without it") && log.contains("Too many levels of symbolic links"), "\(log)")
            }
            try await Self.expectTakenBack(port, on: bed)
        }
    }

    @Test("a state file deleted while the server was down: the server takes back the running shim whose port Envoy serves, and Envoy keeps its listener, untouched")
    func stateFileDeleted() async throws {
        try await withTestbed { bed in
            let port = try await Self.restartWithStateFile(of: bed) { path in
                try FileManager.default.removeItem(atPath: path)
            }
            try await Self.expectTakenBack(port, on: bed)
        }
    }

    @Test("a state file behind the xds files (a disk that refused its last write): the restarted server takes back the running shim the file lacks, and Envoy's listeners stay untouched")
    func stateFileBehind() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let first = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: first), to: backend.endpoint).isReady)
            let older = try Data(contentsOf: URL(fileURLWithPath: bed.stateFile))
            let second = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: second), to: backend.endpoint).isReady)
            let counters = ["listener_manager.listener_added", "listener_manager.listener_modified", "listener_manager.listener_removed"]
            let before = try counters.map { try bed.stat($0) }
            await bed.killServer()
            try older.write(to: URL(fileURLWithPath: bed.stateFile))
            try await bed.startServer()
            #expect(Set(try bed.registrations().map(\.key.host.port)) == [first, second], "\(bed.server?.log ?? "")")
            #expect(bed.server?.log.contains("and the state file did not have") == true, "\(bed.server?.log ?? "")")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: second)).status == 200)
            try await bed.expectEnvoyTookEveryUpdate()
            #expect(try counters.map { try bed.stat($0) } == before, "Envoy added, modified or removed no listener")
        }
    }

    @Test("twins of two containers, the plain-named one restarted (its new shim the newer), then the state file lost: each is taken back under the name Envoy has, not as the shims' start order would name them")
    func twinsTakenBackAsEnvoyHasThem() async throws {
        try await withTestbed { bed in
            let web = try bed.httpBackend("web")
            let api = try bed.httpBackend("api")
            let port = try Sockets.freePort()
            let v4 = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: web.endpoint)
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv6, port: port), to: api.endpoint).isReady)
            // The container of 0.0.0.0 restarts: dockerd stops its shim and starts a new
            // one, which takes the contract's name again (its twin is named apart).
            v4.process.signal(SIGINT)
            #expect(await v4.process.waitForExit(timeout: .seconds(1)) == 0)
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: web.endpoint).isReady)
            let apart = "unknown-\(port)-127_0_0_1_\(api.endpoint.port)"
            let names = try bed.registrations().map(\.serviceName)
            #expect(names == ["unknown-\(port)", apart], "0.0.0.0 first, by key: \(names)")
            let counters = ["listener_manager.listener_added", "listener_manager.listener_modified", "listener_manager.listener_removed"]
            let before = try counters.map { try bed.stat($0) }

            await bed.killServer()
            try FileManager.default.removeItem(atPath: bed.stateFile)
            try await bed.startServer()
            #expect(try bed.registrations().map(\.serviceName) == names, "\(bed.server?.log ?? "")")
            try await bed.expectEnvoyTookEveryUpdate()
            #expect(try counters.map { try bed.stat($0) } == before, "Envoy added, modified or removed no listener")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).body.contains("backend=web"))
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv6, port: port)).body.contains("backend=api"))
        }
    }

    @Test("a state file deleted, and the port's listener taken out of lds.json, while the server was down: the server says, once, which running shims' ports nothing serves and that resync brings them back; after resync nothing more is said")
    func stateFileDeletedIsReported() async throws {
        try await withTestbed { bed in
            let port = try await Self.restartWithStateFile(of: bed) { path in
                try FileManager.default.removeItem(atPath: path)
                // What Envoy was given no longer names the port: nothing to take back.
                try Self.removeEveryListener(in: bed)
            }
            var report: Substring?
            try await bed.eventually("the server names the port nothing serves", timeout: .seconds(20)) {
                report = (bed.server?.log ?? "").split(separator: "\n").first { $0.contains("running shims' ports are not registered and nothing serves them") }
                return report != nil
            }
            #expect(report?.contains("1 running shims'") == true && report?.contains("0.0.0.0:\(port)") == true, "\(report ?? "")")
            try await Self.expectResyncRestores(port, on: bed)
        }
    }

    /// Empties `lds.json`, as if Envoy had never been given a listener.
    private static func removeEveryListener(in bed: Testbed) throws {
        let noListeners = #"{"resources": [], "type_url": "type.googleapis.com/envoy.config.listener.v3.Listener", "version_info": "edited"}"#
        try Data(noListeners.utf8).write(to: URL(fileURLWithPath: bed.xdsDirectory + "/lds.json"))
    }

    /// The server started without a state file to go by, and took the port's
    /// registration back from its running shim: served through Envoy with no resync,
    /// its listener neither removed nor modified, and a resync then changes nothing.
    private static func expectTakenBack(_ port: UInt16, on bed: Testbed) async throws {
        #expect(try bed.registrations().map(\.key.host.port) == [port], "\(bed.server?.log ?? "")")
        #expect(bed.server?.log.contains("took back the running shims whose ports Envoy serves") == true, "\(bed.server?.log ?? "")")
        #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
        try await bed.expectEnvoyTookEveryUpdate()
        #expect(try bed.stat("listener_manager.listener_removed") == 0, "Envoy kept the listener")
        #expect(try bed.stat("listener_manager.listener_modified") == 0, "and did not drain it")
        try await bed.eventually("the state file holds it again") {
            (try? String(contentsOfFile: bed.stateFile, encoding: .utf8))?.contains("\"host_port\":\(port)") == true
        }
        let resync = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
        #expect(resync.output.contains("resynced 1 of 1"), "\(resync.output)")
        #expect(try bed.stat("listener_manager.listener_modified") == 0, "resync changed nothing")
    }

    /// Publishes one port, SIGKILLs the server, does `spoil` to its state file and
    /// starts it again; returns the port.
    private static func restartWithStateFile(of bed: Testbed, _ spoil: (String) throws -> Void) async throws -> UInt16 {
        let port = try Sockets.freePort()
        return try await restartWithStateFile(of: bed, publishing: port, to: try bed.httpBackend("web"), spoil)
    }

    private static func restartWithStateFile(of bed: Testbed, publishing port: UInt16, to backend: LoopbackBackend, _ spoil: (String) throws -> Void) async throws -> UInt16 {
        let shim = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint)
        #expect(shim.isReady)
        await bed.killServer()
        try spoil(bed.stateFile)
        try await bed.startServer()
        return port
    }

    /// The server started without the port's registration; `edshim resync` brings it back.
    private static func expectResyncRestores(_ port: UInt16, on bed: Testbed) async throws {
        #expect(try bed.registrations().isEmpty)
        let resync = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
        #expect(resync.output.contains("resynced 1 of 1"), "\(resync.output)")
        #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
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

    @Test("Envoy restarted alone gets the whole configuration back from the xds directory")
    func envoyRestart() async throws {
        try await withTestbed { bed in
            let ports = try await Self.publishThreePorts(on: bed)
            try await bed.restartEnvoy()
            try await bed.eventually("every listener is back") { try bed.listeners().count == 3 }
            for port in ports {
                #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
            }
        }
    }

    @Test("Envoy stopped: edshim status marks each port it carried (closed), and the server logs it within seconds (it looked healthy); once Envoy runs again, both say so")
    func envoyDownIsReported() async throws {
        try await withTestbed { bed in
            let ports = try await Self.publishThreePorts(on: bed)
            let before = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            #expect(before.status == 0 && !before.output.contains("(closed)"), "\(before.output)")
            try await bed.stopEnvoy()

            let table = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            for port in ports {
                #expect(table.output.split(separator: "\n").contains { $0.contains(":\(port) ") && $0.contains("http (closed)") }, "\(table.output)")
            }
            #expect(table.output.contains("(closed): nothing listens on the port: is Envoy running?"), "\(table.output)")
            let json = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            #expect(json.output.components(separatedBy: #""served_by":"nothing""#).count == 4, "\(json.output)")
            try await bed.eventually("the server logs that the ports are closed", timeout: .seconds(20)) {
                bed.server?.log.contains("nothing listens on any of the 3 registered ports: Envoy does not run") == true
            }

            try await bed.startEnvoy()
            try await bed.eventually("every listener is back") { try bed.listeners().count == 3 }
            let after = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            #expect(after.output.components(separatedBy: #""served_by":"envoy""#).count == 4, "\(after.output)")
            try await bed.eventually("the server logs that they are served again", timeout: .seconds(20)) {
                bed.server?.log.contains("no registered port is closed any more") == true
            }
            #expect(bed.server?.log.components(separatedBy: "nothing listens on").count == 2, "logged once, not at every check")
        }
    }

    @Test("Envoy listening but not accepting (stopped with SIGSTOP): the server logs once that connections wait unaccepted on the port, then that Envoy accepts again")
    func envoyNotAcceptingIsReported() async throws {
        try await withTestbed { bed in
            let ports = try await Self.publishThreePorts(on: bed)
            let envoy = try #require(bed.envoy)
            envoy.signal(SIGSTOP)
            defer { envoy.signal(SIGCONT) }
            // Each thread stops on its own: a worker still running could accept first.
            try await bed.eventually("every thread of Envoy has stopped") {
                let tasks = ShimProcesses.entryNames(in: "/proc/\(envoy.pid)/task").filter { Int($0) != nil }
                return !tasks.isEmpty && tasks.allSatisfy { task in
                    ((try? String(contentsOfFile: "/proc/\(envoy.pid)/task/\(task)/stat", encoding: .utf8)) ?? "").contains(") T ")
                }
            }
            // The kernel completes the handshake; the connection waits for Envoy to accept it.
            let waiting = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: ports[1]))
            defer { close(waiting) }
            do {
                try await bed.eventually("the server logs that connections wait unaccepted", timeout: .seconds(25)) {
                    bed.server?.log.contains("connections wait unaccepted on 1 registered port at two checks") == true
                }
            } catch {
                let queues = ListenTable.read().filter { $0.endpoint.port == ports[1] }.map { "\($0.endpoint) queue \($0.acceptQueue)" }
                let unaccepted = ListenTable.unacceptedConnections().filter { $0.local.port == ports[1] }.map { "\($0.local) cookie \($0.cookie)" }
                let holders = PortHolders.listening(on: SocketEndpoint(ip: .anyIPv4, port: ports[1]))
                let state = (try? String(contentsOfFile: "/proc/\(envoy.pid)/stat", encoding: .utf8)) ?? "gone"
                Issue.record("listening: \(queues); holders \(holders); envoy \(envoy.pid) stat \(state.prefix(60)); unaccepted: \(unaccepted); server log:\n\(bed.server?.log.suffix(3000) ?? "")")
                throw error
            }
            #expect(bed.server?.log.contains("ports=0.0.0.0:\(ports[1])") == true, "it names the port: \(bed.server?.log ?? "")")
            envoy.signal(SIGCONT)
            try await bed.eventually("the server logs that Envoy accepts again", timeout: .seconds(25)) {
                bed.server?.log.contains("Envoy accepts connections again on every registered port") == true
            }
            #expect(bed.server?.log.components(separatedBy: "connections wait unaccepted").count == 2, "logged once, not at every check")
            #expect(bed.server?.log.contains("nothing listens on") == false, "the ports were never closed")
        }
    }

    @Test("the xds directory deleted under a running server is written again within seconds; an Envoy restarted to follow it serves every port, with no resync", arguments: [false, true])
    func xdsDirectoryDeletedWhileRunning(seededByBootstrap: Bool) async throws {
        try await withTestbed { bed in
            let ports = try await Self.publishThreePorts(on: bed)
            let (lds, cds) = (bed.xdsDirectory + "/lds.json", bed.xdsDirectory + "/cds.json")
            let (listeners, clusters) = (try Data(contentsOf: URL(fileURLWithPath: lds)), try Data(contentsOf: URL(fileURLWithPath: cds)))
            try FileManager.default.removeItem(atPath: bed.xdsDirectory)
            if seededByBootstrap {
                // What envoy-edshim.service's ExecStartPre does first: the directory
                // again, with empty files.
                let bootstrap = try await Binaries.run(bed.edshim, ["bootstrap", "--xds-dir", bed.xdsDirectory], in: bed.directory)
                #expect(bootstrap.status == 0, "\(bootstrap.output)")
            }
            try await bed.eventually("the server wrote both files again", timeout: .seconds(5)) {
                (try? Data(contentsOf: URL(fileURLWithPath: lds))) == listeners && (try? Data(contentsOf: URL(fileURLWithPath: cds))) == clusters
            }
            #expect(bed.server?.log.contains("writing the configuration into it again") == true, "\(bed.server?.log ?? "")")
            // The Envoy that ran follows the deleted directory; the next one reads the new.
            try await bed.restartEnvoy()
            try await bed.eventually("every listener is back") { try bed.listeners().count == 3 }
            for port in ports {
                let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port))
                #expect(response.status == 200)
                #expect(response.servedByEnvoy)
            }
            #expect(try bed.registrations().count == 3)
        }
    }

    @Test("rm -rf of the state file, its lock and the xds directory under a running server: all are written and claimed again within seconds, a second server on them is still refused, and a restart brings every port back with no resync", arguments: [false, true])
    func stateDeletedWhileRunning(restartedFirst: Bool) async throws {
        try await withTestbed { bed in
            let ports = try await Self.publishThreePorts(on: bed)
            if restartedFirst {
                // A server that restored its registry and has written nothing since.
                await bed.stopServer()
                try await bed.startServer()
            }
            for path in [bed.stateFile, bed.stateFile + ".lock", bed.xdsDirectory] { try FileManager.default.removeItem(atPath: path) }
            try await bed.eventually("the server wrote the state file and the xds files again", timeout: .seconds(5)) {
                let saved = try? StateDocument.decode(Array(Data(contentsOf: URL(fileURLWithPath: bed.stateFile))))
                return Set(saved?.registrations.map(\.key.host.port) ?? []) == Set(ports)
                    && FileManager.default.fileExists(atPath: bed.xdsDirectory + "/lds.json")
            }
            #expect(bed.server?.log.contains("the state file was deleted; writing it again") == true, "\(bed.server?.log ?? "")")

            let second = try ChildProcess.spawn(bed.edshim, [
                "server", "--socket", bed.directory + "/second.sock", "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile,
                "--admin-address", "off", "--docker-host", "unix://\(bed.directory)/no-docker.sock",
            ], logPath: bed.directory + "/second.log")
            defer { second.signal(SIGKILL) }
            #expect(try await second.finish(within: .seconds(10), command: "a second edshim server") == 1, "\(second.log)")
            #expect(second.log.contains("another edshim server keeps its registry in it"), "\(second.log)")

            await bed.stopServer()
            try FileManager.default.removeItem(atPath: bed.stateFile + ".lock")
            try await bed.startServer()
            #expect(Set(try bed.registrations().map(\.key.host.port)) == Set(ports), "restored from the state file written again")
            // The Envoy that ran follows the deleted directory; the next one reads the new.
            try await bed.restartEnvoy()
            try await bed.eventually("every listener is back") { try bed.listeners().count == 3 }
        }
    }

    @Test("another server that claimed the state file and the xds directory while they were gone: the first server writes nothing into them, says so once for each, not every second, and refuses a registration rather than write it there")
    func claimTakenMeanwhileIsReportedOnce() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            let first = try #require(bed.server)
            first.signal(SIGSTOP)
            defer { first.signal(SIGCONT) }
            for path in [bed.stateFile + ".lock", bed.xdsDirectory] { try? FileManager.default.removeItem(atPath: path) }
            let second = try ChildProcess.spawn(bed.edshim, [
                "server", "--socket", bed.directory + "/second.sock", "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile,
                "--admin-address", "off", "--docker-host", "unix://\(bed.directory)/no-docker.sock",
            ], logPath: bed.directory + "/second.log")
            defer { second.signal(SIGKILL) }
            let client = ServerClient(socketPath: bed.directory + "/second.sock")
            try await bed.eventually("the second server answers") { (try? client.exchange(.list, deadline: .after(milliseconds: 500))) != nil }
            let secondsFiles = try TestFiles.identity(bed.xdsDirectory + "/lds.json")
            first.signal(SIGCONT)
            try await Task.sleep(for: .seconds(3))
            #expect(try TestFiles.identity(bed.xdsDirectory + "/lds.json") == secondsFiles, "the first server wrote nothing into the directory the second claimed")
            #expect(!first.log.contains("writing the configuration into it again"), "\(first.log)")
            let errors = (first.log).split(separator: "\n").filter { $0.contains("cannot be claimed again") }
            #expect(errors.count == 2, "\(first.log)")
            #expect(errors.contains { $0.contains("the xds directory") && $0.contains("another edshim server already publishes into it") }, "\(errors)")
            #expect(errors.contains { $0.contains("the state file") && $0.contains("another edshim server keeps its registry in it") }, "\(errors)")

            // A registration on the first server changes neither file the second has.
            let secondsState = FileManager.default.contents(atPath: bed.stateFile)
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady, "the shim serves the port itself")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
            #expect(try TestFiles.identity(bed.xdsDirectory + "/lds.json") == secondsFiles, "the first server wrote its registration into the second's directory")
            #expect(FileManager.default.contents(atPath: bed.stateFile) == secondsState, "the first server saved its registry into the second's state file")
            #expect(first.log.contains("cannot write Envoy's configuration; registration withdrawn"), "\(first.log)")
            let refusal = first.log.split(separator: "\n").first { $0.contains("registration withdrawn") }
            #expect(refusal?.contains("another edshim server already publishes into it") == true, "\(refusal ?? "")")
            // The shim registers again, and the server retries its writes, every few
            // seconds: each failure is logged once, the repeats at debug.
            try await Task.sleep(for: .seconds(6))
            let lines = first.log.split(separator: "\n").filter { !$0.contains("debug") }
            for failure in ["writing Envoy configuration failed; retrying", "cannot save the state file; retrying", "cannot write Envoy's configuration; registration withdrawn"] {
                #expect(lines.filter { $0.contains(failure) }.count == 1, "\(failure):\n\(lines.filter { $0.contains(failure) }.joined(separator: "\n"))")
            }
        }
    }


    /// Three IPv4 ports published to one backend, each served by Envoy.
    private static func publishThreePorts(on bed: Testbed) async throws -> [UInt16] {
        let backend = try bed.httpBackend("web")
        var ports: [UInt16] = []
        for _ in 0..<3 {
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            ports.append(port)
        }
        return ports
    }
}
