import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A state file lost, spoiled or behind: the server takes back the running shims whose ports Envoy serves, and says what it could not.
@Suite("State file lost or spoiled")
struct StateFileRecoveryTests {
    @Test("a corrupt state file, one of another format version (a downgrade), or one larger than any state file, is reported and kept aside, the server starts, and takes back the running shim whose port Envoy serves: Envoy keeps its listener, untouched", arguments: ["truncated", "another version", "oversized"])
    func corruptStateFile(spoiled: String) async throws {
        try await withTestbed { bed in
            var written: [UInt8] = []
            let anotherVersion = spoiled == "another version"
            let port = try await Self.restartWithStateFile(of: bed) { path in
                let whole = try String(contentsOfFile: path, encoding: .utf8)
                if anotherVersion {
                    #expect(whole.contains(#""edshim_state":1"#), "\(whole)")
                    written = Array(whole.replacingOccurrences(of: #""edshim_state":1"#, with: #""edshim_state":2"#).utf8)
                } else if spoiled == "oversized" {
                    written = [UInt8](repeating: UInt8(ascii: " "), count: 64 << 20) + Array(whole.utf8)
                } else {
                    written = Array(whole.utf8.prefix(40))
                }
                try Data(written).write(to: URL(fileURLWithPath: path))
                // Copies set aside at earlier starts: the two newest are kept with this one.
                for time in 1_000_001...1_000_004 {
                    try Data("earlier \(time)\n".utf8).write(to: URL(fileURLWithPath: "\(path).corrupt-\(time)"))
                }
            }
            let kept = try FileManager.default.contentsOfDirectory(atPath: bed.directory).filter { $0.hasPrefix("state.json.corrupt-") }
            let earlier = ["state.json.corrupt-1000003", "state.json.corrupt-1000004"]
            #expect(kept.count == 3 && Set(earlier).isSubset(of: kept), "kept aside: \(kept)")
            let new = kept.first { !earlier.contains($0) } ?? ""
            #expect(try Data(contentsOf: URL(fileURLWithPath: bed.directory + "/" + new)) == Data(written))
            let log = bed.server?.log ?? ""
            #expect(log.contains("the state file is unreadable"), "\(log)")
            if anotherVersion { #expect(log.contains("state file version 2; this server reads version 1"), "\(log)") }
            if spoiled == "oversized" { #expect(log.contains("larger than the 64 MiB a state file is read up to"), "\(log.suffix(3000))") }
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
        // The same shim registered again replaces nobody: no replaced_owner naming itself.
        #expect(bed.server?.log.contains("replaced_owner") == false, "\(bed.server?.log ?? "")")
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
}
