import EdshimCore
import Foundation
import Testing

/// `edshim resync` brings back the registrations of running shims.
@Suite("Resync")
struct ResyncTests {
    /// What was lost while the server was down.
    enum Loss: String, CaseIterable, CustomTestStringConvertible {
        /// The state file and the xDS files; the xds directory stays.
        case files
        /// The state file and the whole xds directory: Envoy, which watches the
        /// directory it found at start, is restarted (as envoy-edshim.service is,
        /// docs/operations.md "Resync") before resync runs.
        case directory
        var testDescription: String { rawValue }
    }

    @Test("ten live shims serve again after a server restart without state or xds; a second resync changes nothing", arguments: Loss.allCases)
    func resyncRestoresEveryShim(loss: Loss) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            var ports: [UInt16] = []
            var pids: Set<Int32> = []
            let link = bed.directory + "/docker-proxy"
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: bed.edshim)
            for index in 0..<10 {
                let port = try Sockets.freePort()
                let host = SocketEndpoint(ip: index.isMultiple(of: 3) ? .anyIPv6 : .anyIPv4, port: port)
                var arguments = ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine
                var argv0: String?
                switch index % 3 {
                case 0: argv0 = link
                case 1: arguments.insert("shim", at: 0)
                default: break
                }
                let shim = try await bed.spawnShim(arguments, style: index.isMultiple(of: 2) ? .dockerd28 : .dockerd2010, argv0: argv0, host: host)
                #expect(shim.isReady, "shim \(index): \(shim.process.log)")
                ports.append(port)
                pids.insert(shim.process.pid)
            }

            switch loss {
            case .files:
                try await bed.restartServerWithoutState()
            case .directory:
                await bed.stopServer()
                try FileManager.default.removeItem(atPath: bed.xdsDirectory)
                try FileManager.default.removeItem(atPath: bed.stateFile)
                try await bed.startServer()
                try await bed.restartEnvoy()
                #expect(try bed.listeners().isEmpty, "Envoy starts from the new, empty directory")
            }

            let first = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(first.status == 0, "\(first.output)")
            #expect(first.output.contains("resynced 10 of 10"), "\(first.output)")
            #expect(try bed.listeners().count == 10)
            let registrations = try bed.registrations()
            #expect(Set(registrations.map(\.owner.pid)) == pids, "registered on behalf of the shims themselves")
            for (index, port) in ports.enumerated() {
                let ip: IPAddress = index.isMultiple(of: 3) ? .loopbackIPv6 : .loopbackIPv4
                let response = try TestHTTP.get(SocketEndpoint(ip: ip, port: port))
                #expect(response.status == 200)
                #expect(response.servedByEnvoy)
            }

            let listenersBefore = try String(contentsOfFile: bed.xdsDirectory + "/lds.json", encoding: .utf8)
            let clustersBefore = try String(contentsOfFile: bed.xdsDirectory + "/cds.json", encoding: .utf8)
            let modifiedBefore = try bed.stat("listener_manager.listener_modified")
            let logBefore = bed.server?.log.count ?? 0
            let second = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(second.status == 0, "\(second.output)")
            #expect(second.output.contains("resynced 10 of 10"), "\(second.output)")
            #expect(Set(try bed.registrations()) == Set(registrations), "the same registrations, owned by the same shims")
            #expect(try String(contentsOfFile: bed.xdsDirectory + "/lds.json", encoding: .utf8) == listenersBefore)
            #expect(try String(contentsOfFile: bed.xdsDirectory + "/cds.json", encoding: .utf8) == clustersBefore)
            #expect(try bed.stat("listener_manager.listener_modified") == modifiedBefore, "no listener was touched")
            // Nor is the log: each registration again, unchanged, at debug only.
            let logged = String(bed.server?.log.dropFirst(logBefore) ?? "").split(separator: "\n")
            #expect(logged.filter { $0.hasSuffix("registered again, unchanged") && $0.contains(" debug ") }.count == 10, "\(logged)")
            #expect(!logged.contains { $0.contains(" info ") || $0.contains(" warning ") }, "\(logged)")
        }
    }

    @Test("the xds directory lost too: resync says Envoy must be restarted; after that restart, resync serves every port again")
    func xdsDirectoryLost() async throws {
        try await withTestbed { bed in
            let shims = try await Self.publishThreePorts(on: bed)
            await bed.stopServer()
            try FileManager.default.removeItem(atPath: bed.xdsDirectory)
            try FileManager.default.removeItem(atPath: bed.stateFile)
            try await bed.startServer()
            #expect(bed.server?.log.contains("created the xds directory (on a first start, nothing to do); an Envoy started before this must be restarted") == true, "\(bed.server?.log ?? "")")

            // The Envoy started before still listens on the ports, from the deleted
            // directory, and sees nothing the server writes: the server cannot take
            // the ports, and says why.
            let first = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(first.status == 1, "\(first.output)")
            #expect(first.output.contains("resynced 0 of 3"), "\(first.output)")
            #expect(first.output.components(separatedBy: "most likely an Envoy started before this server created the xds directory").count - 1 == 3, "\(first.output)")
            #expect(first.output.contains("Restart Envoy, then run `edshim resync` again"), "\(first.output)")
            #expect(try bed.registrations().isEmpty)

            // Restarted, Envoy reads the new directory (empty); resync, which
            // envoy-edshim.service runs after every Envoy start, brings every port back.
            try await bed.restartEnvoy()
            let second = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(second.status == 0, "\(second.output)")
            #expect(second.output.contains("resynced 3 of 3"), "\(second.output)")
            #expect(try bed.listeners().count == shims.count)
            for shim in shims {
                let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: shim.host.port))
                #expect(response.status == 200)
                #expect(response.servedByEnvoy)
            }
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("resync says which shim it could not restore and why, exits 1, leaves UDP shims out; a rerun restores it")
    func partialFailure() async throws {
        try await withTestbed { bed in
            let shims = try await Self.publishThreePorts(on: bed)
            let echoes = UDPEchoServers()
            defer { echoes.stopAll() }
            let echo = try echoes.start(on: .loopbackIPv4)
            let udp = try await bed.startUDPProxy(.dockerd2010, host: SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort()), container: echo.endpoint)
            #expect(udp.isReady)

            try await bed.restartServerWithoutState()
            // While nothing serves it, another process takes the first shim's port.
            let blocked = shims[0]
            let squatter = try Sockets.dockerdBoundListener(blocked.host)
            let first = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            close(squatter)
            #expect(first.status == 1, "\(first.output)")
            #expect(first.output.contains("resynced 2 of 3"), "the UDP shim is not counted: \(first.output)")
            #expect(first.output.contains("edshim resync: pid \(blocked.pid) tcp \(blocked.host): another process already listens on \(blocked.host)"), "\(first.output)")
            #expect(Set(try bed.registrations().map(\.owner.pid)) == Set(shims.dropFirst().map(\.pid)))
            let refusals = (bed.server?.log ?? "").split(separator: "\n").filter { $0.contains("registration refused") }
            #expect(refusals.count == 1 && refusals[0].contains("code=port_in_use") && refusals[0].contains("on_behalf_of=\(blocked.pid)"),
                    "the server's log says what resync was told:\n\(bed.server?.log ?? "")")

            let second = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(second.status == 0, "\(second.output)")
            #expect(second.output.contains("resynced 3 of 3"), "\(second.output)")
            for shim in shims {
                #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: shim.host.port)).servedByEnvoy)
            }
        }
    }

    /// What the server had when `systemctl restart edshim envoy-edshim` started it
    /// again, Envoy down meanwhile.
    enum ServerState: String, CaseIterable, CustomStringConvertible {
        /// Lost: the server starts empty, and writes files Envoy leaves unread.
        case lost
        /// Intact: the server has nothing to write, so no file tells it Envoy is gone.
        case kept
        /// Not restarted: Envoy read all the server wrote, then died (nothing is left
        /// unread either).
        case running
        var description: String { rawValue }
    }

    @Test("resync while Envoy is down keeps the registrations, says they wait for Envoy and exits 0, with no port waiting the whole readiness timeout; once Envoy runs, every port serves again", arguments: ServerState.allCases)
    func resyncWhileEnvoyIsDown(state: ServerState) async throws {
        try await withTestbed { bed in
            let shims = try await Self.publishThreePorts(on: bed)
            // Envoy is down while the server starts and its ExecStartPost runs resync.
            try await bed.stopEnvoy()
            switch state {
            case .lost: try await bed.stopServerAndForgetState()
            case .kept: await bed.stopServer()
            case .running: break
            }
            if state != .running { try await bed.startServer() }

            let started = ContinuousClock.now
            let resync = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            let took = ContinuousClock.now - started
            // Registered and kept: nothing failed (the unit's journal shows no error
            // each time systemd restarts both).
            #expect(resync.status == 0, "\(resync.output)")
            // No registration waits the server's whole readiness timeout (5 s here),
            // which would hold up the server's start.
            #expect(took < .seconds(4), "resync took \(took)")
            #expect(resync.output.contains("resynced 3 of 3 (3 wait for Envoy)"), "\(resync.output)")
            #expect(resync.output.contains("edshim resync: Envoy does not listen yet on 3 of them: "), "\(resync.output)")
            #expect(resync.output.contains("the registration is kept"), "\(resync.output)")
            #expect(Set(try bed.registrations().map(\.owner.pid)) == Set(shims.map(\.pid)), "nothing withdrawn")

            try await bed.startEnvoy()
            for shim in shims {
                try await bed.eventually("Envoy serves \(shim.host) without another resync", timeout: .seconds(10)) {
                    try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: shim.host.port)).servedByEnvoy
                }
            }
            let again = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(again.status == 0 && again.output.contains("resynced 3 of 3\n"), "\(again.output)")
        }
    }

    @Test("resync while Envoy is down and one shim serves its port itself: that shim's socket is not taken for Envoy, every port waits for Envoy, none fails")
    func resyncWhileEnvoyIsDownBesideASelfServingShim() async throws {
        var options = Testbed.Options()
        options.readyTimeoutSeconds = 2
        try await withTestbed(options) { bed in
            let shims = try await Self.publishThreePorts(on: bed)
            try await bed.stopEnvoy()
            let backend = try bed.httpBackend("late")
            let late = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let selfServing = try await bed.publish(late, to: backend.endpoint)
            #expect(selfServing.isReady)
            try await bed.eventually("the late shim serves its port itself") { selfServing.process.log.contains("itself, as docker-proxy would") }
            await bed.stopServer()
            try await bed.startServer()

            let resync = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(resync.status == 0, "\(resync.output)")
            // The self-serving shim may be left out, when its own retry went first.
            let summary = resync.output.split(separator: "\n").first { $0.hasPrefix("resynced ") }.map(String.init) ?? ""
            #expect(["resynced 4 of 4 (4 wait for Envoy)", "resynced 3 of 3 (3 wait for Envoy)"].contains(summary), "\(resync.output)")

            try await bed.startEnvoy()
            for host in shims.map(\.host) + [late] {
                try await bed.eventually("Envoy serves \(host)", timeout: .seconds(15)) {
                    try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).servedByEnvoy
                }
            }
        }
    }

    @Test("resync while a dockerd ≥ 28 shim registers, Envoy not running (systemctl restart edshim envoy-edshim as dockerd starts a container): neither registration withdraws the one the other waits on; the shim serves its port itself and resync counts it", arguments: [100, 300, 600])
    func resyncBesideARegisteringShim(resyncAfterMilliseconds: Int) async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            // Both wait about a second for Envoy before they find it absent.
            async let resync = { () async throws -> (status: Int32, output: String) in
                try await Task.sleep(for: .milliseconds(resyncAfterMilliseconds))
                return try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            }()
            let shim = try await bed.publish(host, to: backend.endpoint, style: .dockerd28)
            let resynced = try await resync
            #expect(shim.status == "0\n", "\(shim.status) \(shim.process.log)")
            #expect(resynced.status == 0, "\(resynced.output)")
            #expect(resynced.output.contains("resynced 1 of 1 (1 wait for Envoy)"), "\(resynced.output)")
            let answer = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
            #expect(answer.status == 200 && !answer.servedByEnvoy, "served by the shim itself")
        }
    }

    @Test("a shim whose port a newer shim took over, still running (as through a dockerd restart's grace), is not a failure of resync")
    func supersededShimStillRunning() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let old = try await bed.publish(host, to: backend.endpoint)
            let new = try await bed.publish(host, to: backend.endpoint)
            #expect(old.isReady && new.isReady)
            #expect(old.process.hasExited == false, "both shims run")
            #expect(try bed.registrations().map(\.owner.pid) == [new.process.pid])

            let resync = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(resync.status == 0, "\(resync.output)")
            #expect(resync.output.contains("resynced 1 of 1\n"), "\(resync.output)")
            #expect(try bed.registrations().map(\.owner.pid) == [new.process.pid], "the newer shim keeps its port")
        }
    }

    @Test("resync finds the shims of its server however the socket's path is written: through a symlink, or relative")
    func socketPathSpelledAnotherWay() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            try await bed.restartServerWithoutState()
            // As /var/run is a symlink to /run: the shims name the socket one way, resync the other.
            let link = bed.directory + "/run-link"
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: bed.directory)
            let socketName = String(bed.socketPath.split(separator: "/").last ?? "")
            for socket in [link + "/" + socketName, socketName] {
                // Run from the testbed's directory, where the relative path names the socket.
                let resync = try await Binaries.run("/bin/sh", ["-c", "cd \"$0\" && exec \"$1\" resync --socket \"$2\"", bed.directory, bed.edshim, socket], in: bed.directory)
                #expect(resync.status == 0, "\(socket): \(resync.output)")
                #expect(resync.output.contains("resynced 1 of 1"), "\(socket): \(resync.output)")
            }
            #expect(try bed.registrations().map(\.owner.pid) == [shim.process.pid])
        }
    }

    @Test("a shim serving its port itself (the server was down when it started) is resynced beside its own socket")
    func resyncsShimServingItself() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.status == "0\n", "served by the shim itself: \(shim.process.log)")
            // Stopped, the shim cannot register by itself once the server is back: what
            // registers it is resync.
            shim.process.signal(SIGSTOP)
            defer { shim.process.signal(SIGCONT) }
            try await bed.startServer()
            try await bed.startEnvoy()
            let result = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("resynced 1 of 1"), "\(result.output)")
            #expect(try bed.registrations().map(\.owner.pid) == [shim.process.pid])
            shim.process.signal(SIGCONT)
            try await bed.eventually("the shim handed the port to Envoy", timeout: .seconds(10)) {
                shim.process.log.contains("handed tcp 0.0.0.0:\(host.port) over to Envoy")
            }
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).servedByEnvoy)
        }
    }

    @Test("the server refuses a registration on behalf of a process that is not that shim")
    func refusesImpostors() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            let client = ServerClient(socketPath: bed.socketPath)
            let other = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let cases: [(RegisterRequest, WireError.Code, String)] = [
                (RegisterRequest(key: RegistrationKey(proto: .tcp, host: other), container: backend.endpoint, onBehalfOf: shim.process.pid), .permissionDenied, "publishes"),
                (RegisterRequest(key: RegistrationKey(proto: .tcp, host: host), container: backend.endpoint, onBehalfOf: getpid()), .permissionDenied, "not a running edshim shim"),
                // No such process: it cannot be checked (a shim that exited since resync listed it).
                (RegisterRequest(key: RegistrationKey(proto: .tcp, host: host), container: backend.endpoint, onBehalfOf: 999_999), .unavailable, "has exited"),
                // /proc shows threads by their ids too.
                (RegisterRequest(key: RegistrationKey(proto: .tcp, host: host), container: backend.endpoint, onBehalfOf: try Self.threadOfThisProcess()), .permissionDenied, "is a thread of process \(getpid())"),
            ]
            for (request, code, reason) in cases {
                let response = try client.exchange(.register(request), deadline: .after(milliseconds: 5000))
                guard case .failure(let error) = response else {
                    Issue.record("accepted \(request)")
                    continue
                }
                #expect(error.code == code)
                #expect(error.message.contains(reason), "\(error.message)")
            }
            #expect(try bed.registrations().map(\.owner.pid) == [shim.process.pid])
        }
    }

    @Test("a process named edshim with a shim's flags that runs another program than the server's edshim (any program can take the name: a symlink named edshim to it, a setuid one too; here a copy) is left out by resync, and the server refuses to register it on its behalf")
    func anotherProgramNamedEdshim() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let copy = try bed.copyOfEdshim(at: "elsewhere/edshim")
            // Its own registration passes (the peer is that very process, which the
            // socket's permissions admit); only one made on its behalf needs the check.
            let arguments = ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine
            let other = try await bed.spawnShim(arguments, host: host, launcher: Testbed.launcher(running: copy))
            #expect(other.isReady, "\(other.process.log)")
            #expect(ShimProcesses.shim(pid: other.process.pid) != nil, "named edshim, with a shim's flags")

            let result = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("resynced 0 of 0"), "\(result.output)")
            #expect(result.output.contains("left out 1 process(es) named edshim that run another program (\(copy))"), "\(result.output)")

            let request = RegisterRequest(key: RegistrationKey(proto: .tcp, host: host), container: backend.endpoint, onBehalfOf: other.process.pid)
            let response = try ServerClient(socketPath: bed.socketPath).exchange(.register(request), deadline: .after(milliseconds: 5000))
            guard case .failure(let error) = response else {
                Issue.record("registered a process running another program on its behalf")
                return
            }
            #expect(error.code == .permissionDenied)
            #expect(error.message.contains("process \(other.process.pid) runs \(copy), not this server's edshim"), "\(error.message)")
            #expect(try bed.registrations().map(\.owner.pid) == [other.process.pid], "its own registration stands")
        }
    }

    @Test("a process of another user named edshim with a shim's flags (any local user can make one) is left out by resync, and the server refuses to register it on that user's behalf")
    func anotherUsersShim() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let arguments = ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine
            // The real shim, run by nobody: its own registration goes nowhere (nobody
            // is not in the socket's group), so it serves the port itself and lives on.
            let impostor = try await bed.spawnShim(arguments, host: host, launcher: [try SystemExecutables.setpriv(), "--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            #expect(impostor.status == "0\n", "\(impostor.process.log)")
            #expect(ProcessTable.userID(of: impostor.process.pid) == 65534)

            let result = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("resynced 0 of 0"), "\(result.output)")
            #expect(result.output.contains("left out 1 process(es) named edshim run by another user (uid 65534)"), "\(result.output)")

            let request = RegisterRequest(key: RegistrationKey(proto: .tcp, host: host), container: backend.endpoint, onBehalfOf: impostor.process.pid)
            let response = try ServerClient(socketPath: bed.socketPath).exchange(.register(request), deadline: .after(milliseconds: 5000))
            guard case .failure(let error) = response else {
                Issue.record("registered another user's process on its behalf")
                return
            }
            #expect(error.code == .permissionDenied)
            #expect(error.message.contains("process \(impostor.process.pid) runs as uid 65534"), "\(error.message)")
            #expect(try bed.registrations().isEmpty)
            #expect(try bed.listeners().isEmpty)
        }
    }

    @Test("run by a member of the socket's group (not root) against a socket that is not the default, resync and status cannot read the root shims' EDSHIM_SOCKET: resync says it left them out, status lists them as unregistered, neither reports silence")
    func groupMemberCannotSeeRootShims() async throws {
        var options = Testbed.Options()
        options.serverArguments = ["--socket-group", "docker"]
        try await withTestbed(options) { bed in
            chmod(bed.directory, 0o755)
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(host, to: backend.endpoint).isReady)
            try await bed.restartServerWithoutState()
            guard let docker = getgrnam("docker") else { throw TestFailure("no group docker") }
            let member = ["--reuid=65534", "--regid=\(docker.pointee.gr_gid)", "--clear-groups", bed.edshim]
            let setpriv = try SystemExecutables.setpriv()

            let resync = try await Binaries.run(setpriv, member + ["resync", "--wait", "5"], environment: bed.environment, in: bed.directory)
            // Other tests' shims, run beside this one, are counted too.
            #expect(resync.output.contains("edshim resync: left out ") && resync.output.contains(" process(es) named edshim run by another user (uid 0)"), "\(resync.output)")

            let status = try await Binaries.run(setpriv, member + ["status"], environment: bed.environment, in: bed.directory)
            #expect(status.output.contains("0.0.0.0:\(host.port)") && status.output.contains("unregistered"), "\(status.output)")
        }
    }

    @Test("a shim in another network namespace (a dockerd inside a container) is refused by the server, serves its port itself there, and is left out by resync", .needsPrivateNetworkNamespaces)
    func shimOfAnotherNetworkNamespace() async throws {
        try await withTestbed { bed in
            try await withPrivateNetworkNamespace(loopbackAddresses: [], logDirectory: bed.directory) { namespace in
                let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
                let container = try await namespace.run { try LoopbackBackend.echo() }
                defer { container.stop() }
                let arguments = ShimArguments(proto: .tcp, host: host, container: container.endpoint).commandLine
                let nested = try await bed.spawnShim(arguments, host: host, networkNamespace: namespace)
                #expect(nested.status == "0\n", "\(nested.process.log)")
                // Logged just after the shim reported 0. It asks again only every minute
                // (not every 5 s, each a line in the server's log).
                try await bed.eventually("the shim says why it serves the port itself, and how often it asks again") {
                    nested.process.log.contains("runs in another network namespace than this server")
                        && nested.process.log.contains("; asking the server again every minute")
                }
                try await Task.sleep(for: .seconds(1))
                let refusals = (bed.server?.log ?? "").components(separatedBy: "foreign_namespace").count - 1
                #expect(refusals == 1, "the server refused it \(refusals) times: \(bed.server?.log ?? "")")
                // Served in its own namespace, as docker-proxy would there.
                let echoed = try await namespace.run {
                    let fd = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
                    defer { close(fd) }
                    try Sockets.sendAll(fd, Array("nested".utf8))
                    return try Sockets.receive(fd, count: 6)
                }
                #expect(echoed == Array("nested".utf8))

                let result = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
                #expect(result.status == 0, "\(result.output)")
                #expect(result.output.contains("resynced 0 of 0"), "\(result.output)")
                #expect(try bed.registrations().isEmpty)
                #expect(try bed.listeners().isEmpty, "Envoy listens on the host for a port of another namespace")
                nested.process.signal(SIGINT)
                _ = await nested.process.waitForExit(timeout: .seconds(2))
            }
        }
    }

    @Test("resync with no server waits, then says how to start one")
    func noServer() async throws {
        let started = ContinuousClock.now
        let result = try await Binaries.run(try Binaries.edshim(), ["resync", "--wait", "0.5"], environment: ["EDSHIM_SOCKET": "/nonexistent/edshim.sock"], in: NSTemporaryDirectory())
        #expect(ContinuousClock.now - started >= .milliseconds(500), "it waits --wait for the server")
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("cannot reach the edshim server at /nonexistent/edshim.sock"), "\(result.output)")
        #expect(result.output.contains("is `edshim server` running? (systemctl start edshim"), "\(result.output)")
        #expect(result.output.contains("(waited 0.5 s)"), "\(result.output)")
    }

    /// Three IPv4 ports published to one backend, served by Envoy: each one's host
    /// address and shim.
    /// The id of a thread of this test process other than its main one.
    private static func threadOfThisProcess() throws -> Int32 {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap(Int32.init)
        return try #require(tasks.first { $0 != getpid() }, "the test process has threads")
    }

    private static func publishThreePorts(on bed: Testbed) async throws -> [(host: SocketEndpoint, pid: Int32)] {
        let backend = try bed.httpBackend("web")
        var shims: [(host: SocketEndpoint, pid: Int32)] = []
        for _ in 0..<3 {
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            shims.append((host, shim.process.pid))
        }
        return shims
    }
}
