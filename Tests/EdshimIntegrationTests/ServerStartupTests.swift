import EdshimCore
import Foundation
import Testing

/// A server that cannot start says why and changes nothing: above all, not the
/// configuration a running server gave Envoy.
@Suite("Server startup")
struct ServerStartupTests {
    @Test("a second server that cannot start leaves the running one's ports, files and listeners alone")
    func secondServerChangesNothing() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            let listeners = try Data(contentsOf: URL(fileURLWithPath: bed.xdsDirectory + "/lds.json"))
            let clusters = try Data(contentsOf: URL(fileURLWithPath: bed.xdsDirectory + "/cds.json"))
            let removedBefore = try bed.stat("listener_manager.listener_removed")

            let stateBefore = try Data(contentsOf: URL(fileURLWithPath: bed.stateFile))
            let elsewhere = bed.directory + "/second"
            let ownFiles = ["--xds-dir", elsewhere + "-xds", "--state-file", elsewhere + ".json"]
            let runningXDS = ["--xds-dir", bed.xdsDirectory, "--state-file", elsewhere + ".json"]
            let cases: [(arguments: [String], refusal: String)] = [
                // Its own socket and state, but the running server's xds directory.
                (runningXDS + ["--socket", elsewhere + "-run/edshim.sock", "--admin-address", "off"], "another edshim server already publishes into it"),
                // Its own socket and xds directory, but the running server's state file.
                (["--xds-dir", elsewhere + "-xds", "--state-file", bed.stateFile, "--socket", elsewhere + "-run/edshim.sock", "--admin-address", "off"],
                 "--state-file \(bed.stateFile): another edshim server keeps its registry in it"),
                // The running server's socket.
                (ownFiles + ["--socket", bed.socketPath, "--admin-address", "off"], "--socket \(bed.socketPath): something already listens there"),
                // The running server's admin address, checked before the xds directory is touched.
                (ownFiles + ["--socket", elsewhere + "-run/edshim.sock", "--admin-address", bed.serverAdmin.description], "--admin-address \(bed.serverAdmin): Address already in use"),
                // An admin socket where something listens (the running server's shims' socket),
                // where a file that is not a socket is, or in a directory that is not there.
                (ownFiles + ["--socket", elsewhere + "-run/edshim.sock", "--admin-address", "unix:" + bed.socketPath], "--admin-address unix:\(bed.socketPath): something already listens there"),
                (ownFiles + ["--socket", elsewhere + "-run/edshim.sock", "--admin-address", "unix:" + bed.stateFile], "--admin-address unix:\(bed.stateFile) exists and is not a socket"),
                (ownFiles + ["--socket", elsewhere + "-run/edshim.sock", "--admin-address", "unix:\(elsewhere)-admin/admin.sock"], "\(elsewhere)-admin is not a directory: create it"),
                // A socket path no Unix socket can have.
                (ownFiles + ["--socket", bed.directory + "/" + String(repeating: "s", count: 120), "--admin-address", "off"], "a Unix socket path holds at most 107"),
            ]
            for (arguments, refusal) in cases {
                let second = try await Binaries.run(
                    bed.edshim,
                    ["server", "--docker-host", "unix://\(bed.directory)/no-docker.sock"] + arguments,
                    in: bed.directory
                )
                #expect(second.status == 1, "\(arguments): \(second.output)")
                #expect(second.output.contains(refusal), "\(arguments): \(second.output)")
                #expect(!FileManager.default.fileExists(atPath: elsewhere + ".json"), "\(arguments): wrote a state file")
                #expect(!FileManager.default.fileExists(atPath: elsewhere + "-xds"), "\(arguments): made an xds directory")
                #expect(!FileManager.default.fileExists(atPath: elsewhere + "-run"), "\(arguments): made a socket directory")
            }

            #expect(try Data(contentsOf: URL(fileURLWithPath: bed.stateFile)) == stateBefore, "the running server's state is untouched")
            #expect(try Data(contentsOf: URL(fileURLWithPath: bed.xdsDirectory + "/lds.json")) == listeners)
            #expect(try Data(contentsOf: URL(fileURLWithPath: bed.xdsDirectory + "/cds.json")) == clusters)
            #expect(try bed.stat("listener_manager.listener_removed") == removedBefore, "Envoy removed no listener")
            let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
            #expect(response.status == 200)
            #expect(response.servedByEnvoy)
            #expect(try bed.registrations().map(\.owner.pid) == [shim.process.pid])
        }
    }

    @Test("EDSHIM_SOCKET, which the shims and resync read, places the server's socket too when --socket is not given")
    func socketFromEnvironment() async throws {
        var options = Testbed.Options()
        options.socketFlag = false
        options.socketName = "from-environment.sock"
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            let shim = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint)
            #expect(shim.isReady, "\(shim.process.log)")
            #expect(try bed.registrations().map(\.owner.pid) == [shim.process.pid], "registered through \(bed.socketPath)")
            #expect(bed.server?.log.contains(bed.socketPath) == true, "the server says where it listens:\n\(bed.server?.log ?? "")")
            let status = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            #expect(status.status == 0, "\(status.output)")
        }
    }

    @Test("a symbolic link where the state file's lock goes (planted in a directory others may write) is not followed: the server refuses to start, saying so, and creates nothing at its target")
    func stateLockSymlinkRefused() async throws {
        let directory = try ScratchDirectory.make("/tmp/edshim-test-lock-")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let target = directory + "/created-by-root"
        #expect(symlink(target, directory + "/state.json.lock") == 0)
        let server = try ChildProcess.spawn(try Binaries.edshim(), [
            "server", "--socket", directory + "/edshim.sock", "--xds-dir", directory + "/xds", "--state-file", directory + "/state.json",
            "--admin-address", "off", "--docker-host", "unix://\(directory)/no-docker.sock",
        ], logPath: directory + "/server.log")
        defer { server.signal(SIGKILL) }
        #expect(try await server.finish(within: .seconds(10), command: "edshim server") == 1, "\(server.log)")
        #expect(server.log.contains("a symbolic link, which is not followed here"), "\(server.log)")
        #expect(access(target, F_OK) != 0, "nothing created through the link")
    }

    @Test("an xds directory or state file where any user may write (the directory itself, or one above it without the sticky bit) is refused, naming the fix, before anything is created")
    func writableByOthersRefused() async throws {
        let directory = try ScratchDirectory.make("/tmp/edshim-test-open-")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let open = directory + "/open"
        try FileManager.default.createDirectory(atPath: open + "/below", withIntermediateDirectories: true)
        chmod(open, 0o777)
        let safe = directory + "/safe"
        for (xds, state, expected) in [
            (open + "/xds", safe + "/state.json", "--xds-dir \(open)/xds: \(open) may be written by any user (mode 777): another user could replace what is kept there; chmod o-w \(open), or chmod +t \(open), or choose a directory only root may write"),
            (open, safe + "/state.json", "--xds-dir \(open): \(open) may be written by any user (mode 777): another user could replace what is kept there; chmod o-w \(open), or choose a directory only root may write"),
            (safe + "/xds", open + "/below/state.json", "--state-file \(open)/below/state.json: \(open) may be written by any user (mode 777)"),
        ] {
            let server = try ChildProcess.spawn(try Binaries.edshim(), [
                "server", "--socket", directory + "/edshim.sock", "--xds-dir", xds, "--state-file", state,
                "--admin-address", "off", "--docker-host", "unix://\(directory)/no-docker.sock",
            ], logPath: directory + "/server.log")
            defer { server.signal(SIGKILL) }
            #expect(try await server.finish(within: .seconds(10), command: "edshim server") == 1, "\(server.log)")
            #expect(server.log.contains(expected), "\(server.log)")
            #expect(access(safe, F_OK) != 0, "nothing created: \(server.log)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: open) == ["below"], "nothing created")
            try? FileManager.default.removeItem(atPath: directory + "/server.log")
        }
        // Sticky, as /tmp: what another user plants there cannot replace root's files.
        chmod(open, 0o1777)
        #expect(WritableByOthers.refusal(directory: open + "/xds") == nil)
        #expect(WritableByOthers.refusal(directory: open)?.contains("as /tmp") == true, "the directory itself stays refused")
    }

    @Test("SIGHUP (logrotate, an operator's reload) is logged and ignored: the server runs on with its registrations, and still stops at SIGTERM")
    func hangupIgnored() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            let server = try #require(bed.server)
            try await bed.eventually("the server is past its start") { server.log.contains("listening") }
            server.signal(SIGHUP)
            try await bed.eventually("the server says it ignored SIGHUP") { server.log.contains("SIGHUP ignored") }
            #expect(!server.hasExited, "\(server.log)")
            #expect(try bed.registrations().map(\.key.host.port) == [port])
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
            try await bed.expectServerStopsAtOnce()
        }
    }

    @Test("under systemd, with stderr the journal's stream, each server line starts with its syslog priority")
    func journalPriorities() async throws {
        var options = Testbed.Options.neitherServerNorEnvoy
        options.serverEnvironment = ["DOCKER_HOST": "ssh://me@docker-host"]
        try await withTestbed(options) { bed in
            // What systemd does: JOURNAL_STREAM names the device and inode of stderr.
            _ = FileManager.default.createFile(atPath: bed.serverLogPath, contents: nil)
            var info = stat()
            #expect(stat(bed.serverLogPath, &info) == 0)
            try await bed.startServer(extraEnvironment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"])
            let lines = (bed.server?.log ?? "").split(separator: "\n")
            #expect(lines.contains { $0.hasPrefix("<6>info edshim.server:") && $0.hasSuffix("listening") }, "info is <6>:\n\(lines.joined(separator: "\n"))")
            #expect(lines.contains { $0.hasPrefix("<4>warning edshim.server:") && $0.contains("DOCKER_HOST cannot be used") }, "warning is <4>")
            #expect(lines.allSatisfy { $0.hasPrefix("<") }, "every line has its priority")
        }
    }

    @Test("a client that sends requests and never reads the answers does not hold up SIGTERM")
    func unreadAnswersDoNotHoldShutdown() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            let fd = try Sockets.connectUnix(bed.socketPath)
            defer { close(fd) }
            // Requests until the socket takes no more: the server's answers have filled
            // both buffers and its write waits for a reader that never comes.
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            let request = Array(#"{"v":1,"op":"list"}"#.utf8) + [UInt8(ascii: "\n")]
            let lines = [UInt8](Array(repeating: request, count: 256).joined())
            var refusedSince: ContinuousClock.Instant?
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                let sent = lines.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent > 0 {
                    refusedSince = nil
                    continue
                }
                #expect(errno == EAGAIN, "send: \(String(cString: strerror(errno)))")
                let since = refusedSince ?? .now
                refusedSince = since
                if ContinuousClock.now - since > .milliseconds(500) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(refusedSince != nil, "the server stopped taking requests once its answers went unread")
            let started = ContinuousClock.now
            bed.server?.signal(SIGTERM)
            let status = await bed.server?.waitForExit(timeout: .seconds(6))
            #expect(status == 0, "exited \(String(describing: status)) after \(ContinuousClock.now - started):\n\((try? String(contentsOfFile: bed.serverLogPath, encoding: .utf8)) ?? "")")
        }
    }

    @Test("a registration still waiting for Envoy when SIGTERM comes gets its answer, also after the 2 s in which stalled connections are closed")
    func answerInProgressAtShutdown() async throws {
        var options = Testbed.Options()
        options.readyTimeoutSeconds = 4
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            let served = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint)
            #expect(served.isReady, "\(served.status)")
            // Envoy stalls while listening on a registered port: it runs, so the next
            // registration waits the whole readiness timeout for it.
            let envoy = try #require(bed.envoy)
            envoy.signal(SIGSTOP)
            defer { envoy.signal(SIGCONT) }
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            async let waiting = bed.publish(host, to: backend.endpoint)
            try await bed.eventually("the registration waits for Envoy") {
                try bed.registrations().contains { $0.key.host == host }
            }
            bed.server?.signal(SIGTERM)
            let shim = try await waiting
            #expect(await bed.server?.waitForExit(timeout: .seconds(6)) == 0)
            #expect(shim.isReady, "serves the port itself: \(shim.status)")
            let log = try String(contentsOfFile: bed.directory + "/shims.log", encoding: .utf8)
            // Envoy read nothing for the whole timeout: either answer is the server's.
            #expect(log.contains("Envoy did not start listening on \(host) within") || log.contains("Envoy takes no update"), "the server's answer, not a closed connection:\n\(log)")
        }
    }
}
