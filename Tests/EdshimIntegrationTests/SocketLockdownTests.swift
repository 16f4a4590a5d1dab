import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Only root, the socket's group and real shims get in; refusals say why.
@Suite("Locked-down socket")
struct SocketLockdownTests {
    /// No Envoy; the server, its socket under run/edshim, started by the test.
    static var serverStartedByTheTest: Testbed.Options {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.startServer = false
        options.socketName = "run/edshim/edshim.sock"
        return options
    }

    @Test("the server creates the socket directory 0750 and the socket 0660, group docker")
    func modes() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.socketName = "run/edshim/edshim.sock"
        try await withTestbed(options) { bed in
            let directory = try FileManager.default.attributesOfItem(atPath: bed.directory + "/run/edshim")
            let socket = try FileManager.default.attributesOfItem(atPath: bed.socketPath)
            #expect((directory[.posixPermissions] as? Int) == 0o750)
            #expect((socket[.posixPermissions] as? Int) == 0o660)
            #expect((socket[.ownerAccountID] as? Int) == 0)
            // The group the server picks by default; docker.io, which the tests
            // install, creates it. Missing, this test fails rather than checking less.
            let docker = try groupID("docker")
            #expect((socket[.groupOwnerAccountID] as? Int) == Int(docker))
            #expect((directory[.groupOwnerAccountID] as? Int) == Int(docker))
        }
    }

    @Test("the server finds its socket group in /etc/group, or takes a group number, whatever else nsswitch.conf names (the fully static binary crashed in libnss_systemd on a group /etc/group lacks); a group missing there is refused saying so", .needsPrivateNetworkNamespaces)
    func socketGroupFromEtcGroup() async throws {
        let options = Self.serverStartedByTheTest
        try await withTestbed(options) { bed in
            // A host whose nsswitch.conf sends group lookups elsewhere than /etc/group
            // (here to a module that does not exist: a dynamic glibc skips it), in a
            // mount namespace of the server's own.
            let nsswitch = bed.directory + "/nsswitch.conf"
            try "passwd: files\ngroup: nosuchmodule\nhosts: files dns\n".write(toFile: nsswitch, atomically: true, encoding: .utf8)
            // And an /etc/group with a group whose line is longer than the first buffer
            // (16 KiB: a docker group with hundreds of members synced in).
            let groupFile = bed.directory + "/group"
            let members = (0..<3000).map { "member\($0)" }.joined(separator: ",")
            try (String(contentsOfFile: "/etc/group", encoding: .utf8) + "edshim-big:x:4343:\(members)\n").write(toFile: groupFile, atomically: true, encoding: .utf8)
            let unshare = try Binaries.onPath("unshare", install: "apt-get install util-linux")
            let launcher = [unshare, "--mount", "sh", "-c", #"mount --bind "$0" /etc/nsswitch.conf && mount --bind "$1" /etc/group && shift && exec "$@""#, nsswitch, groupFile]
            for (group, gid) in [("docker", try groupID("docker")), ("4242", 4242), ("edshim-big", 4343)] {
                try await bed.startServer(extraArguments: ["--socket-group", group], launcher: launcher)
                let socket = try FileManager.default.attributesOfItem(atPath: bed.socketPath)
                #expect((socket[.groupOwnerAccountID] as? Int) == Int(gid), "--socket-group \(group)")
                await bed.stopServer()
            }

            let refused = try await Binaries.run(
                launcher[0], Array(launcher.dropFirst()) + [bed.edshim, "server", "--socket", bed.socketPath, "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile, "--admin-address", "off", "--socket-group", "edshim-no-such-group"],
                in: bed.directory
            )
            #expect(refused.status == 1, "\(refused.output)")
            for (group, message) in [("", "--socket-group must name a group in /etc/group, or give a group number"), ("4294967295", "--socket-group 4294967295: a group number goes from 0 to 4294967294"), ("-1", "--socket-group -1: a group number goes from 0 to 4294967294")] {
                let bad = try await Binaries.run(bed.edshim, ["server", "--socket", bed.socketPath, "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile, "--admin-address", "off"] + (group.isEmpty ? ["--socket-group", ""] : ["--socket-group=\(group)"]), in: bed.directory)
                #expect(bad.status == 1 && bad.output.contains(message), "\(bad.output)")
            }
            #expect(refused.output.contains("--socket-group edshim-no-such-group: no such group in /etc/group (edshim looks nowhere else); create it (groupadd edshim-no-such-group), or give another group or a group number"), "\(refused.output)")
        }
    }

    @Test("an existing socket directory the group cannot enter is left as it is, with a warning saying how to fix it; one it can enter, without")
    func directoryTheGroupCannotEnter() async throws {
        let options = Self.serverStartedByTheTest
        try await withTestbed(options) { bed in
            let directory = bed.directory + "/run/edshim"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            chmod(directory, 0o750)
            try await bed.startServer()
            let warning = "members of the socket group cannot reach the socket: its directory does not let them in"
            let log = bed.server?.log ?? ""
            #expect(log.contains(warning) && log.contains("chgrp docker \(directory) && chmod 0750 \(directory)"), "\(log)")
            let attributes = try FileManager.default.attributesOfItem(atPath: directory)
            #expect((attributes[.groupOwnerAccountID] as? Int) == 0, "left as it is")

            await bed.stopServer()
            chown(directory, uid_t.max, try groupID("docker"))
            try await bed.startServer()
            #expect((bed.server?.log ?? "").components(separatedBy: warning).count == 2, "no second warning once the group can enter")
        }
    }

    @Test("a user who is neither root nor in the group is refused with the reason, even on a loosened socket")
    func strangerRefused() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.serverArguments = ["--socket-group", "docker"]
        try await withTestbed(options) { bed in
            chmod(bed.directory, 0o755)
            chmod(bed.socketPath, 0o666)
            let stranger = try await Binaries.run(
                try Binaries.onPath("setpriv", install: "apt-get install util-linux"),
                ["--reuid=65534", "--regid=65534", "--clear-groups", bed.edshim, "status"],
                environment: bed.environment, in: bed.directory
            )
            #expect(stranger.status != 0)
            #expect(stranger.output.contains("uid 65534 may not use this socket: only root or members of group docker may"), "\(stranger.output)")
            // A refused peer gets its answer and no more: connections it keeps open (or
            // opens and never uses) would take the ones the shims need.
            let holder = """
                import socket, sys, time
                s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
                s.sendall(b'{"v":1,"op":"list"}\\n'); data = b''
                while not data.endswith(b'\\n'): data += s.recv(4096)
                print('after-answer', s.recv(4096) == b'')
                idle = socket.socket(socket.AF_UNIX); idle.connect(sys.argv[1]); idle.settimeout(5); start = time.time()
                print('idle', idle.recv(4096) == b'', time.time() - start < 3)
                """
            let held = try await Binaries.run(
                try Binaries.onPath("setpriv", install: "apt-get install util-linux"),
                ["--reuid=65534", "--regid=65534", "--clear-groups", "python3", "-c", holder, bed.socketPath],
                environment: bed.environment, in: bed.directory
            )
            #expect(held.output.contains("after-answer True") && held.output.contains("idle True True"), "closed by the server: \(held.output)")

            let member = try await Binaries.run(
                try Binaries.onPath("setpriv", install: "apt-get install util-linux"),
                ["--reuid=65534", "--regid=\(try groupID("docker"))", "--clear-groups", bed.edshim, "status"],
                environment: bed.environment, in: bed.directory
            )
            #expect(member.status == 0, "a member of the group may: \(member.output)")
        }
    }

    @Test("refused peers flooding a loosened socket with connections take none of the shims': root's status still gets its answer")
    func refusedFloodLeavesRoomForShims() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.serverArguments = ["--socket-group", "docker"]
        // 512 descriptors: the server keeps 128 connections.
        options.serverLauncher = [try SystemExecutables.prlimit(), "--nofile=512", "--"]
        try await withTestbed(options) { bed in
            chmod(bed.directory, 0o755)
            chmod(bed.socketPath, 0o666)
            // 300 connections that send nothing, each opened again as soon as the
            // server closes it, for 4 s.
            let flood = """
                import selectors, socket, sys, time
                sel = selectors.DefaultSelector()
                def open_one():
                    s = socket.socket(socket.AF_UNIX); s.setblocking(False)
                    try: s.connect(sys.argv[1])
                    except BlockingIOError: pass
                    sel.register(s, selectors.EVENT_READ)
                for _ in range(300): open_one()
                end = time.time() + 4
                while time.time() < end:
                    for key, _ in sel.select(0.05):
                        try: data = key.fileobj.recv(4096)
                        except OSError: data = b''
                        if not data:
                            sel.unregister(key.fileobj); key.fileobj.close(); open_one()
                """
            let flooder = try ChildProcess.spawn(try SystemExecutables.setpriv(), ["--reuid=65534", "--regid=65534", "--clear-groups", "python3", "-c", flood, bed.socketPath], logPath: bed.directory + "/flood.log")
            defer { flooder.signal(SIGKILL) }
            try await Task.sleep(for: .seconds(1))
            for _ in 0..<5 {
                let status = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
                #expect(status.status == 0 && !status.output.contains("rate_limited") && !status.output.contains("client connections open"), "\(status.output)")
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(!flooder.hasExited, "the flood ran throughout: \(flooder.log)")
        }
    }

    @Test("a peer is judged as it was when it connected: a member's connection, kept by its child after it exited, stays a member's (its PID, read again, could be anyone's)")
    func judgedAtConnect() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.serverArguments = ["--socket-group", "docker"]
        try await withTestbed(options) { bed in
            chmod(bed.directory, 0o755)
            // A member through a supplementary group, which the server reads from /proc:
            // it connects, forks, and exits; its child asks once the parent is gone.
            let answers = bed.directory + "/answers"
            try FileManager.default.createDirectory(atPath: answers, withIntermediateDirectories: true)
            chmod(answers, 0o777)
            let answer = answers + "/list"
            let script = """
                import os, socket, sys, time
                s = socket.socket(socket.AF_UNIX)
                s.connect(sys.argv[1])
                if os.fork():
                    os._exit(0)
                time.sleep(0.5)
                s.sendall(b'{"v":1,"op":"list"}\\n')
                reply = s.recv(65536)
                with open(sys.argv[2] + ".part", "wb") as f:
                    f.write(reply)
                os.rename(sys.argv[2] + ".part", sys.argv[2])
                """
            // The server is stopped meanwhile, so that it takes the connection only once
            // the connecting process is gone (as a loaded server may).
            let server = try #require(bed.server)
            server.signal(SIGSTOP)
            let parent: (status: Int32, output: String)
            do {
                parent = try await Binaries.run(
                    try Binaries.onPath("setpriv", install: "apt-get install util-linux"),
                    ["--reuid=65534", "--regid=65534", "--groups=\(try groupID("docker"))", try Binaries.onPath("python3", install: "apt-get install python3"), "-c", script, bed.socketPath, answer],
                    environment: bed.environment, in: bed.directory
                )
            } catch {
                server.signal(SIGCONT)
                throw error
            }
            server.signal(SIGCONT)
            #expect(parent.status == 0, "\(parent.output)")
            try await bed.eventually("the child answered") { FileManager.default.fileExists(atPath: answer) }
            let reply = try String(contentsOfFile: answer, encoding: .utf8)
            #expect(reply.contains("registrations"), "refused once the connecting process was gone: \(reply)")
            #expect(!reply.contains("may not use this socket"), "\(reply)")
        }
    }

    @Test("a process that is not a shim cannot register a port")
    func nonShimRefused() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            let request = RegisterRequest(
                key: RegistrationKey(proto: .tcp, host: SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())),
                container: SocketEndpoint(ip: .loopbackIPv4, port: 80)
            )
            let response = try ServerClient(socketPath: bed.socketPath).exchange(.register(request), deadline: .after(milliseconds: 3000))
            guard case .failure(let error) = response else {
                Issue.record("accepted a registration from the test process: \(response)")
                return
            }
            #expect(error.code == .permissionDenied)
            #expect(error.message.contains("is not an edshim shim"))
            #expect(try bed.registrations().isEmpty)
        }
    }

    @Test("a peer sending too many requests is told to slow down")
    func rateLimited() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.serverArguments = ["--peer-rate", "5"]
        try await withTestbed(options) { bed in
            let client = ServerClient(socketPath: bed.socketPath)
            var limited: WireError?
            for _ in 0..<40 {
                if case .failure(let error) = try client.exchange(.list, deadline: .after(milliseconds: 3000)), error.code == .rateLimited {
                    limited = error
                    break
                }
            }
            #expect(limited?.message.contains("too many requests from pid \(getpid())") == true)
        }
    }

    @Test("an oversized request is answered too_large and the connection closed")
    func oversized() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            let connected = UnixSocketAddress.with(path: bed.socketPath) { connect(fd, $0, $1) }
            #expect(connected == 0)
            try? Sockets.sendAll(fd, [UInt8](repeating: UInt8(ascii: "x"), count: 200_000))
            let answer = String(decoding: (try? Sockets.receiveToEnd(fd)) ?? [], as: UTF8.self)
            #expect(answer.contains(#""code":"too_large""#), "\(answer)")
        }
    }

    @Test("a client that closes its sending side is still answered, last newline or not (echo … | socat)")
    func halfClosedClient() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            for request in [#"{"v":1,"op":"list"}"# + "\n", #"{"v":1,"op":"list"}"#, "{\"v\":1,\"op\":\"list\"}\n{\"v\":1,\"op\":\"nope\"}"] {
                let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                defer { close(fd) }
                #expect(UnixSocketAddress.with(path: bed.socketPath) { connect(fd, $0, $1) } == 0)
                try Sockets.sendAll(fd, Array(request.utf8))
                shutdown(fd, Int32(SHUT_WR))
                let answers = String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self).split(separator: "\n")
                let expected = request.split(separator: "\n").count
                #expect(answers.count == expected, "\(request.debugDescription) → \(answers)")
                #expect(answers.first?.contains(#""ok":true"#) == true, "\(answers)")
                if expected == 2 { #expect(answers.last?.contains(#""code":"unknown_op""#) == true, "\(answers)") }
            }
        }
    }

    @Test("an idle client does not hold the server's stop: SIGTERM ends it at once, exit 0")
    func idleClientDoesNotHoldStop() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let server = try ChildProcess.spawn(
                bed.edshim,
                ["server", "--socket", bed.socketPath, "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile, "--admin-address", "off"],
                logPath: bed.directory + "/idle-server.log"
            )
            defer { if !server.hasExited { server.signal(SIGKILL); _ = server.poll() } }
            try await bed.eventually("the server answers") {
                (try? ServerClient(socketPath: bed.socketPath).exchange(.list, deadline: .after(milliseconds: 500))) != nil
            }
            // Connected, one request answered, then silent: an operator's forgotten socat.
            let idle = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(idle) }
            #expect(UnixSocketAddress.with(path: bed.socketPath) { connect(idle, $0, $1) } == 0)
            try Sockets.sendAll(idle, Array((#"{"v":1,"op":"list"}"# + "\n").utf8))
            var answer = [UInt8](repeating: 0, count: 4096)
            #expect(answer.withUnsafeMutableBytes { recv(idle, $0.baseAddress, $0.count, 0) } > 0)
            server.signal(SIGTERM)
            #expect(await server.waitForExit(timeout: .seconds(3)) == 0, "\(server.log)")
        }
    }

    @Test("under systemd (Type=notify) the server says READY=1 once the socket accepts")
    func notifiesSystemd() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let notify = try UnixDatagramListener(path: bed.directory + "/notify.sock")
            let server = try ChildProcess.spawn(
                bed.edshim,
                ["server", "--socket", bed.socketPath, "--xds-dir", bed.xdsDirectory, "--state-file", bed.stateFile, "--admin-address", "off"],
                environment: ["NOTIFY_SOCKET": notify.path],
                logPath: bed.directory + "/notify-server.log"
            )
            defer { server.signal(SIGKILL); _ = server.poll() }
            #expect(notify.receive(within: 10) == "READY=1")
            #expect(FileManager.default.fileExists(atPath: bed.socketPath), "the socket exists when READY=1 arrives")
            #expect((try? ServerClient(socketPath: bed.socketPath).exchange(.list, deadline: .after(milliseconds: 2000))) != nil)
            server.signal(SIGTERM)
            _ = await server.waitForExit(timeout: .seconds(5))
        }
    }

    private func groupID(_ name: String) throws -> UInt32 {
        guard let entry = getgrnam(name) else { throw TestFailure("no group \(name)") }
        return entry.pointee.gr_gid
    }
}
