import EdshimCore
import Foundation
import Synchronization
import Testing

/// When the server or Envoy is not there, the shim serves the port itself, as
/// docker-proxy does, and hands it to Envoy as soon as it can.
@Suite("Fallback proxy")
struct FallbackTests {
    @Test("server down: the port is served at once; when the server and Envoy come up it moves to Envoy without a failed connection", arguments: SpawnStyle.allCases)
    func serverDownThenUp(style: SpawnStyle) async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            let shim = try await bed.publish(host, to: backend.endpoint, style: style)
            #expect(shim.status == "0\n", "served by the shim itself: \(shim.process.log)")
            let direct = try TestHTTP.get(dial)
            #expect(direct.status == 200)
            #expect(!direct.servedByEnvoy, "no Envoy yet")

            let load = ConnectionLoop(dial)
            defer { load.stop() }
            try await bed.startServer()
            try await bed.startEnvoy()
            // Envoy serves part of the connections as soon as it binds beside the shim;
            // the handover is complete once the shim retired its socket.
            try await bed.eventually("the shim handed the port to Envoy", timeout: .seconds(15)) {
                shim.process.log.contains("handed tcp 0.0.0.0:\(host.port) over to Envoy")
            }
            #expect(ListenTable.read().filter { $0.endpoint == host }.count == 1, "only Envoy's socket listens (one worker)")
            try await Task.sleep(for: .milliseconds(300))
            let (succeeded, failures) = load.stop()
            #expect(succeeded >= 5)
            if !failures.isEmpty {
                let ss = try await Binaries.run("/usr/bin/ss", ["-tanp"], in: bed.directory)
                let lines = ss.output.split(separator: "\n").filter { $0.contains("edshim") || $0.contains(":\(host.port)") || $0.contains(":\(backend.endpoint.port)") }
                Issue.record("connections failed during the handover: \(failures)\n\(lines.joined(separator: "\n"))")
            }
            #expect(try TestHTTP.get(dial).servedByEnvoy)
            #expect(try bed.registrations().map(\.owner.pid) == [shim.process.pid])
        }
    }

    @Test("a server that hangs (SIGSTOP): the shim serves the port itself once its request has waited unread 2 s (not the 12 s an answer may take), and hands it to Envoy once the server answers again")
    func serverHangs() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            let server = try #require(bed.server)
            server.signal(SIGSTOP)
            var resumed = false
            defer { if !resumed { server.signal(SIGCONT) } }

            let started = ContinuousClock.now
            let shim = try await bed.publish(host, to: backend.endpoint)
            let took = ContinuousClock.now - started
            #expect(shim.status == "0\n", "\(shim.process.log)")
            #expect(took >= .seconds(2) && took < .seconds(8), "reported after \(took): 2 s with the request unread, not the shim's 12 s deadline")
            #expect(shim.process.log.contains("the edshim server has not read the request in 2 s: it is stopped or hung"), "\(shim.process.log)")
            // Served by the shim itself: its socket alone listens on the port. (The
            // relay itself is what the other fallback tests exercise.)
            // (It logs that just after it reported 0.)
            try await bed.eventually("the shim says it serves the port itself") {
                shim.process.log.contains("serving tcp \(host) → \(backend.endpoint) itself, as docker-proxy would")
            }
            #expect(ListenTable.read().filter { $0.endpoint == host }.count == 1)

            server.signal(SIGCONT)
            resumed = true
            try await bed.eventually("the port moved to Envoy", timeout: .seconds(15)) {
                try TestHTTP.get(dial).servedByEnvoy
            }
            #expect(try bed.registrations().map(\.owner.pid) == [shim.process.pid])
        }
    }

    @Test("server down and another program listening on the port with SO_REUSEPORT: the shim refuses the port, naming that program, instead of sharing its connections")
    func portOfAnotherProgram() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let other = try Sockets.reusePortListener(host)
            defer { close(other) }
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            let name = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(shim.status == "1\nlisten tcp \(host): bind: address already in use: \(name) (pid \(getpid())) already listens on tcp \(host); stop it, or publish the container on another host port", "\(shim.process.log)")
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1)
            #expect(ListenTable.read().filter { $0.endpoint == host }.map(\.inode) == [Sockets.inode(of: other)], "the other program's socket alone listens")
        }
    }

    @Test("server stopped, Envoy still listening on a port whose container restarts: the new shim serves beside that Envoy, and hands the port to it once the server is back")
    func besideEnvoyFromBeforeTheServerStopped() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            let first = try await bed.publish(host, to: backend.endpoint)
            #expect(first.isReady)
            await bed.stopServer()
            first.process.signal(SIGTERM)
            #expect(await first.process.waitForExit(timeout: .seconds(2)) == 0)
            let envoyListens = ListenTable.read().filter { $0.endpoint == host }
            #expect(envoyListens.count == 1, "Envoy keeps the listener the server can no longer withdraw")

            let second = try await bed.publish(host, to: backend.endpoint)
            #expect(second.isReady, "\(second.process.log)")
            #expect(second.process.log.contains("still listens on tcp \(host), from before the server stopped: serving beside it"), "\(second.process.log)")
            try await bed.startServer()
            try await bed.eventually("the shim handed the port to Envoy", timeout: .seconds(15)) {
                second.process.log.contains("handed tcp \(host) over to Envoy")
            }
            #expect(try bed.registrations().map(\.owner.pid) == [second.process.pid])
            #expect(try TestHTTP.get(dial).servedByEnvoy)
        }
    }

    @Test("server stopped, Envoy still serving a port another dockerd's shim publishes: a shim for it is refused, not served beside that Envoy")
    func anotherDockerdsPortIsNotShared() async throws {
        try await withTestbed { bed in
            let theirs = try bed.httpBackend("theirs")
            let ours = try bed.httpBackend("ours")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            // Started by an `sh` standing in for another dockerd, which keeps running.
            let holder = try await OrphanableShim.start(bed, host, to: theirs.endpoint, grace: nil)
            defer { holder.killIfRunning() }
            #expect(holder.status == "0\n")
            await bed.stopServer()

            let shim = try await bed.publish(host, to: ours.endpoint)
            #expect(shim.status == "1\nlisten tcp \(host): bind: address already in use: tcp \(host) is already published, for \(theirs.endpoint) by shim pid \(holder.pid), which another process still running started (sh, pid \(holder.parent.pid)): a port is published once. Stop the container that publishes it first, or publish another host port", "\(shim.status.debugDescription)")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).body.hasPrefix("backend=theirs\n"))
        }
    }

    @Test("server stopped, another Envoy of the host (not run from `edshim bootstrap`) listening on the port: refused, naming it, never shared with it")
    func anotherEnvoyIsNotShared() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let theirs = try bed.httpBackend("theirs")
            let ours = try bed.httpBackend("ours")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let admin = SocketEndpoint(ip: .loopbackIPv4, port: try Sockets.freePort())
            // Envoy's own static listener, with reuse_port on (its Linux default), as root:
            // a shim could join its port's group.
            let config = """
                admin:
                  address: {socket_address: {address: 127.0.0.1, port_value: \(admin.port)}}
                static_resources:
                  listeners:
                  - name: theirs
                    address: {socket_address: {address: 0.0.0.0, port_value: \(host.port)}}
                    filter_chains:
                    - filters:
                      - name: envoy.filters.network.tcp_proxy
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                          stat_prefix: theirs
                          cluster: theirs
                  clusters:
                  - name: theirs
                    load_assignment:
                      cluster_name: theirs
                      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(theirs.endpoint.port)}}}}]}]
                """
            let path = bed.directory + "/their-envoy.yaml"
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            let envoy = try ChildProcess.spawn(try Binaries.envoy(), ["-c", path, "--disable-hot-restart", "--concurrency", "1", "-l", "warning"], logPath: bed.directory + "/their-envoy.log")
            defer { envoy.signal(SIGKILL) }
            try await bed.eventually("their Envoy listens", timeout: .seconds(30)) { ListenTable.read().contains { $0.endpoint == host } }

            let shim = try await bed.publish(host, to: ours.endpoint)
            #expect(shim.status == "1\nlisten tcp \(host): bind: address already in use: envoy (pid \(envoy.pid)) already listens on tcp \(host); stop it, or publish the container on another host port", "\(shim.status.debugDescription)")
            #expect(ListenTable.read().filter { $0.endpoint == host }.count == 1, "their Envoy's socket alone listens")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).body.hasPrefix("backend=theirs\n"))
        }
    }

    @Test("server down, -use-listen-fd with a socket bound but not listened on: the shim listens on it and serves the port")
    func heldSocketNotListenedOn() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let bound = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var one: Int32 = 1
            setsockopt(bound, SOL_SOCKET, SO_REUSEADDR, &one, 4)
            guard host.withSocketAddress({ bind(bound, $0, $1) }) == 0 else { throw TestFailure("binding \(host): \(String(cString: strerror(errno)))") }
            let arguments = ShimArguments(proto: .tcp, host: host, container: backend.endpoint).commandLine
            let shim = try await bed.spawnShim(arguments, style: .dockerd28, host: host, listenSocket: bound)
            #expect(shim.isReady, "\(shim.status.debugDescription)")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).body.hasPrefix("backend=web\n"), "served by the shim itself")
        }
    }

    @Test("Envoy not listening in time: served by the shim, then by Envoy once it runs")
    func envoyLate() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.readyTimeoutSeconds = 1
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            #expect(try TestHTTP.get(dial).status == 200)
            try await bed.startEnvoy()
            try await bed.eventually("the port moved to Envoy", timeout: .seconds(15)) {
                try TestHTTP.get(dial).servedByEnvoy
            }
        }
    }

    @Test("Envoy not running: ports are published without waiting out the readiness timeout (dockerd starts them one after another), served by their shims, then by Envoy once it runs")
    func envoyNotRunning() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.readyTimeoutSeconds = 10
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            var dials: [SocketEndpoint] = []
            var took: [Duration] = []
            for _ in 0..<3 {
                let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
                let start = ContinuousClock.now
                let shim = try await bed.publish(host, to: backend.endpoint)
                took.append(ContinuousClock.now - start)
                #expect(shim.isReady)
                dials.append(SocketEndpoint(ip: .loopbackIPv4, port: host.port))
            }
            // The first registration finds Envoy absent after a second (it has read none
            // of the server's files and listens on no registered port); the next ones,
            // within 10 s of that finding, at once. Before: 10 s each.
            #expect(took[0] < .seconds(5), "the first port within about a second: \(took)")
            #expect(took[1] < .milliseconds(900) && took[2] < .milliseconds(900), "the next ones at once: \(took)")
            // Each says why, just after it reported 0 on fd 3.
            try await bed.eventually("each shim says it serves its port itself because Envoy does not run") {
                let shims = try String(contentsOfFile: bed.directory + "/shims.log", encoding: .utf8)
                return shims.components(separatedBy: "itself, as docker-proxy would (Envoy does not run").count == 4
            }
            for dial in dials { #expect(try TestHTTP.get(dial).status == 200) }
            // The shims register again every few seconds while Envoy does not run; the
            // server says so once per port, not twice per retry.
            try await Task.sleep(for: .seconds(12))
            // (The testbed's server logs at debug, where the retries show.)
            let lines = (bed.server?.log ?? "").split(separator: "\n").filter { !$0.contains("debug") }
            let withdrawals = lines.filter { $0.contains("Envoy does not run (it reads none of the files") }
            #expect(withdrawals.count == 3, "\(withdrawals.count) withdrawals logged for 3 ports:\n\(withdrawals.joined(separator: "\n"))")
            #expect(lines.filter { $0.contains(" registered") }.count == 3, "each port's first registration only")

            try await bed.startEnvoy()
            try await bed.eventually("every port moved to Envoy", timeout: .seconds(20)) {
                try dials.allSatisfy { try TestHTTP.get($0).servedByEnvoy }
            }
            try await bed.eventually("the server says Envoy serves each") {
                bed.server?.log.components(separatedBy: "registered, and Envoy serves it").count == 4
            }
        }
    }

    @Test("an Envoy that is busy (stopped for 2 s) is not taken for absent: it still listens on the ports it has, and the next registration waits for it")
    func busyEnvoyIsWaitedFor() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let first = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(first, to: backend.endpoint).isReady)
            let envoy = try #require(bed.envoy)
            envoy.signal(SIGSTOP)
            let resume = Task {
                try await Task.sleep(for: .seconds(2))
                envoy.signal(SIGCONT)
            }
            defer { envoy.signal(SIGCONT) }
            let second = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(second, to: backend.endpoint)
            try await resume.value
            #expect(shim.isReady)
            #expect(!shim.process.log.contains("itself, as docker-proxy would"), "not served by the shim: \(shim.process.log)")
            #expect(try bed.registrations().count == 2, "registered, not withdrawn")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: second.port)).servedByEnvoy)
        }
    }

    @Test("an Envoy stopped for good (SIGSTOP) is waited for by one registration, the readiness timeout; the ones after it, while it still reads nothing, are answered within about a second, then at once, and their shims serve the ports until Envoy runs again")
    func stoppedEnvoyHoldsUpOneRegistration() async throws {
        var options = Testbed.Options()
        options.readyTimeoutSeconds = 2
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint).isReady)
            let envoy = try #require(bed.envoy)
            envoy.signal(SIGSTOP)
            defer { envoy.signal(SIGCONT) }
            var took: [Duration] = []
            var shims: [ShimRun] = []
            var ports: [UInt16] = []
            for _ in 0..<3 {
                let port = try Sockets.freePort()
                let start = ContinuousClock.now
                let shim = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint)
                took.append(ContinuousClock.now - start)
                #expect(shim.isReady, "\(shim.status)")
                shims.append(shim)
                ports.append(port)
            }
            #expect(took[0] >= .seconds(2), "the first waits the readiness timeout (Envoy may only be busy): \(took)")
            #expect(took[1] < .seconds(1.8), "the next, Envoy having read nothing for the timeout: about a second: \(took)")
            #expect(took[2] < .seconds(0.8), "then at once: \(took)")
            // Stopped, it is named: another Envoy started beside it would share the ports.
            #expect(bed.server?.log.contains("Envoy takes no update: it is stopped (pid \(envoy.pid), SIGSTOP) (resume it (kill -CONT \(envoy.pid)); do not start another Envoy, which would share the ports with the stopped one); registration withdrawn") == true, "\(bed.server?.log ?? "")\n\(ShimRefusalTests.threadStatesAndWatches(of: envoy.pid))")
            for port in ports {
                #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200, "served by its shim meanwhile")
            }
            envoy.signal(SIGCONT)
            try await bed.eventually("Envoy takes the ports over once it runs again", timeout: .seconds(20)) {
                try ports.allSatisfy { try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: $0)).servedByEnvoy }
            }
        }
    }

    @Test("SIGINT while a retried registration is in flight: the shim deregisters it before it exits")
    func stopWithRegistrationInFlight() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.readyTimeoutSeconds = 3
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            // An Envoy that reads the server's files but never listens (the test reads
            // them, every 20 ms): the first registration times out and the shim serves
            // the port itself; its retry then waits on the server for up to 3 s. (An
            // Envoy that reads nothing would be answered after a second: envoy_absent.)
            let reading = Mutex(true)
            let xds = bed.xdsDirectory
            Thread.detachNewThread {
                while reading.withLock({ $0 }) {
                    for name in ["lds.json", "cds.json"] { _ = FileManager.default.contents(atPath: "\(xds)/\(name)") }
                    usleep(20_000)
                }
            }
            defer { reading.withLock { $0 = false } }
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.status == "0\n", "served by the shim itself: \(shim.process.log)")
            try await bed.eventually("the retried registration reached the server", timeout: .seconds(5)) {
                (bed.server?.log ?? "").components(separatedBy: "\n").filter { $0.contains("registered") && !$0.contains("deregistered") && $0.contains(":\(host.port)") }.count >= 2
            }
            shim.process.signal(SIGINT)
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 0)
            let lines = (bed.server?.log ?? "").components(separatedBy: "\n").filter { $0.contains(":\(host.port)") }
            #expect(lines.contains { $0.contains(" deregistered") }, "the shim deregistered what it had in flight:\n\(lines.joined(separator: "\n"))")
            #expect(!lines.contains { $0.contains("shim exited without deregistering") }, "\(lines.joined(separator: "\n"))")
        }
    }

    @Test("server down: why the shim serves the port itself is logged once, not again at each retry that fails the same way")
    func unreachableServerLoggedOnce() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.isReady)
            // Retries after 250, 500 and 1,000 ms: three failures the same way by then.
            try await Task.sleep(for: .milliseconds(2_000))
            let reason = "cannot reach the edshim server at \(bed.socketPath)"
            #expect(shim.process.log.components(separatedBy: reason).count == 2, "\(shim.process.log)")
            #expect(!shim.process.log.contains("will retry"), "\(shim.process.log)")
        }
    }

    @Test("EDSHIM_FALLBACK with an unknown value is refused with what to write")
    func badPolicy() async throws {
        try await withTestbed { bed in
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9), environment: ["EDSHIM_FALLBACK": "maybe"])
            #expect(shim.status.hasPrefix("1\n"))
            #expect(shim.status.contains("EDSHIM_FALLBACK=maybe is not a fallback edshim knows: use proxy or fail"))
        }
    }

    @Test("an EDSHIM_SOCKET no server can ever be reached at (longer than a socket path can be, or relative) is refused with what to set, not served by the shim for good", arguments: [String(repeating: "/s", count: 60) + ".sock", "edshim.sock"])
    func unusableSocketSetting(_ path: String) async throws {
        try await withTestbed { bed in
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9), environment: ["EDSHIM_SOCKET": path])
            let advice = path.hasPrefix("/") ? "is longer than 107 bytes" : "is not an absolute path"
            #expect(shim.status.hasPrefix("1\nEDSHIM_SOCKET=\(path) \(advice)"), "\(shim.status.debugDescription)")
            #expect(shim.status.contains("set in dockerd's environment"), "\(shim.status.debugDescription)")
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1, "the shim exits, as after any refusal")
            #expect(Sockets.canBind(host), "nothing holds the port")
        }
    }
}
