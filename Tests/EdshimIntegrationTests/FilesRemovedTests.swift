import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The state file and the xds directory removed or claimed under a running server.
@Suite("Files removed under a running server")
struct FilesRemovedTests {
    @Test("the xds directory deleted under a running server is written again within seconds; an Envoy restarted to follow it serves every port, with no resync", arguments: [false, true])
    func xdsDirectoryDeletedWhileRunning(seededByBootstrap: Bool) async throws {
        try await withTestbed { bed in
            let ports = try await bed.publishThreePorts()
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
            // The Envoy that ran follows the deleted directory, and takes no port
            // published now: the server says why, rather than "stopped, or hung".
            let latePort = try Sockets.freePort()
            let late = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: latePort), to: try bed.httpBackend("late").endpoint)
            #expect(late.isReady, "served by its shim meanwhile")
            let log = bed.server?.log ?? ""
            #expect(log.contains("was deleted or replaced while the server ran, and no Envoy watches the one there now") && log.contains("restart Envoy"), "\(log)")
            #expect(!log.contains("stopped, or hung"), "\(log)")
            // The next Envoy reads the new directory.
            try await bed.restartEnvoy()
            try await bed.eventually("every listener is back") { try bed.listeners().count == 4 }
            for port in ports + [latePort] {
                let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port))
                #expect(response.status == 200)
                #expect(response.servedByEnvoy)
            }
            #expect(try bed.registrations().count == 4)
        }
    }

    @Test("the shims' socket removed under a running server, its directory with it, is bound again within seconds, and a port published next goes to Envoy; while something else holds its path, /healthz says so and the server keeps trying")
    func socketRemovedWhileRunning() async throws {
        var options = Testbed.Options()
        options.socketName = "run/edshim.sock"
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            try FileManager.default.removeItem(atPath: bed.directory + "/run")
            try await bed.eventually("the socket is back", timeout: .seconds(5)) { (try? bed.registrations()) != nil }
            #expect(bed.server?.log.contains("the socket was removed from its path while the server ran") == true, "\(bed.server?.log ?? "")")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            #expect(try bed.registrations().map(\.key.host) == [host], "registered, not served by the shim itself")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).servedByEnvoy)

            // A file where the socket was: nothing can be bound there until it goes.
            unlink(bed.socketPath)
            #expect(FileManager.default.createFile(atPath: bed.socketPath, contents: Data("not a socket".utf8)))
            try await bed.eventually("/healthz says why", timeout: .seconds(5)) {
                let health = try TestHTTP.get(bed.serverAdmin, path: "/healthz")
                return health.status == 503 && health.body.contains("cannot put the shims' socket back at its path (--socket) for")
            }
            unlink(bed.socketPath)
            try await bed.eventually("bound again once the path is free", timeout: .seconds(5)) { (try? bed.registrations()) != nil }
            try await bed.eventually("/healthz is ok again") { try TestHTTP.get(bed.serverAdmin, path: "/healthz").body == "ok\n" }
            await bed.stopServer()
            #expect(access(bed.socketPath, F_OK) != 0, "the stopped server removed the socket it bound last")
        }
    }

    @Test("rm -rf of the state file, its lock and the xds directory under a running server: all are written and claimed again within seconds, a second server on them is still refused, and a restart brings every port back with no resync", arguments: [false, true])
    func stateDeletedWhileRunning(restartedFirst: Bool) async throws {
        try await withTestbed { bed in
            let ports = try await bed.publishThreePorts()
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
}
