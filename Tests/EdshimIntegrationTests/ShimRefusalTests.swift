import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Every failure answers `1\n<reason>` on fd 3, exits 1 and leaves nothing registered.
@Suite("Shim refusals")
struct ShimRefusalTests {
    struct BadCase: CustomStringConvertible, Sendable {
        let arguments: [String]
        let reason: String
        var description: String { arguments.joined(separator: " ") }
    }

    static let badFlags: [BadCase] = [
        BadCase(arguments: ["-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "0", "-container-ip", "127.0.0.1", "-container-port", "80"], reason: "-host-port"),
        BadCase(arguments: ["-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "70000", "-container-ip", "127.0.0.1", "-container-port", "80"], reason: "-host-port"),
        BadCase(arguments: ["-proto", "tcp", "-host-ip", "localhost", "-host-port", "8080", "-container-ip", "127.0.0.1", "-container-port", "80"], reason: "-host-ip"),
        BadCase(arguments: ["-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip", "127.0.0.1"], reason: "missing -container-port"),
        BadCase(arguments: ["-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip", "127.0.0.1", "-container-port", "80", "-bogus"], reason: "flag provided but not defined: -bogus"),
        BadCase(arguments: ["-proto", "icmp", "-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip", "127.0.0.1", "-container-port", "80"], reason: "-proto"),
        BadCase(arguments: ["-proto", "sctp", "-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip", "127.0.0.1", "-container-port", "80"], reason: "edshim does not proxy SCTP, and dockerd runs it for every published port: publish this port as tcp or udp, or run the container with --network host"),
        BadCase(arguments: ["-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip", "127.0.0.1", "-container-port", "80", "-use-listen-fd"], reason: "fd 4"),
    ]

    @Test("bad flags answer 1\\n<reason> with nothing registered", arguments: ShimRefusalTests.badFlags)
    func refusesBadFlags(_ bad: BadCase) async throws {
        try await withTestbed { bed in
            let shim = try await bed.spawnShim(bad.arguments)
            #expect(shim.status.hasPrefix("1\n"))
            #expect(shim.status.contains(bad.reason), "reason was: \(shim.status)")
            #expect(!shim.status.dropFirst(2).contains("\n"), "the reason is one line")
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1)
            #expect(try bed.registrations().isEmpty)
            #expect(try bed.listeners().isEmpty)
        }
    }

    @Test("with stderr on /dev/null, as dockerd starts it, a refusal reaches the system log as an error")
    func refusalLoggedAsError() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let syslog = try UnixDatagramListener(path: bed.directory + "/syslog.sock")
            let arguments = ["-proto", "sctp", "-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip", "127.0.0.1", "-container-port", "80"]
            let shim = try await bed.spawnShim(arguments, environment: ["EDSHIM_SYSLOG_SOCKET": syslog.path], outputToDevNull: true)
            #expect(shim.status.hasPrefix("1\n"))
            let line = syslog.receive(within: 5)
            // <27>: facility daemon, severity err, so `journalctl -p err` shows it.
            #expect(line?.hasPrefix("<27>edshim[\(shim.process.pid)]: failed: edshim does not proxy SCTP") == true, "\(line ?? "nothing logged")")
        }
    }

    @Test("no server, EDSHIM_FALLBACK=fail: the reason says how to start it")
    func serverUnreachable() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        try await withTestbed(options) { bed in
            await bed.stopServer()
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9), environment: ["EDSHIM_FALLBACK": "fail"])
            #expect(shim.status.hasPrefix("1\n"))
            #expect(shim.status.contains("cannot reach the edshim server"))
            #expect(shim.status.contains("edshim server"))
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1)
        }
    }

    @Test("Envoy not running, EDSHIM_FALLBACK=fail: the reason says so and how to start Envoy (with a readiness timeout under a second too), and nothing stays registered")
    func envoyTimeout() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.readyTimeoutSeconds = 0.5
        try await withTestbed(options) { bed in
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9), environment: ["EDSHIM_FALLBACK": "fail"])
            #expect(shim.status.hasPrefix("1\n"))
            #expect(shim.status.contains("Envoy does not run (it reads none of the files in \(bed.xdsDirectory)): tcp 0.0.0.0:\(host.port) withdrawn"), "\(shim.status)")
            #expect(shim.status.contains("edshim bootstrap"))
            #expect(await shim.process.waitForExit(timeout: .seconds(2)) == 1)
            #expect(try bed.registrations().isEmpty)
            let listeners = try String(contentsOfFile: bed.xdsDirectory + "/lds.json", encoding: .utf8)
            #expect(!listeners.contains("\(host.port)"), "the withdrawn listener is gone from lds.json")
        }
    }

    @Test("an Envoy that runs and reads the update but does not listen (it could not bind, or refused the listener) is waited for the readiness timeout and reported as such, with where to look, not as an Envoy that does not run")
    func envoyReadsButDoesNotListen() async throws {
        var options = Testbed.Options()
        options.startEnvoy = false
        options.readyTimeoutSeconds = 4
        try await withTestbed(options) { bed in
            let reader = try await Self.envoyThatReadsAndDoesNotListen(on: bed)
            defer { reader.signal(SIGKILL) }
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let started = ContinuousClock.now
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9), environment: ["EDSHIM_FALLBACK": "fail"])
            #expect(ContinuousClock.now - started >= .seconds(4), "waited the readiness timeout")
            #expect(shim.status.hasPrefix("1\nEnvoy did not start listening on \(host) within 4.0 seconds"), "\(shim.status)")
            #expect(shim.status.contains("its log and admin /listeners say why it did not bind"), "\(shim.status)")
        }
    }

    @Test("Envoy stopped (SIGSTOP) with no port registered, EDSHIM_FALLBACK=fail: the reason names the stopped Envoy and says to resume it, not to start one (a second Envoy would share the ports)")
    func envoyStoppedWithNoPortRegistered() async throws {
        var options = Testbed.Options()
        options.readyTimeoutSeconds = 2
        try await withTestbed(options) { bed in
            let envoy = try #require(bed.envoy)
            envoy.signal(SIGSTOP)
            defer { envoy.signal(SIGCONT) }
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9), environment: ["EDSHIM_FALLBACK": "fail"])
            #expect(shim.status.hasPrefix("1\nEnvoy takes no update: it is stopped (pid \(envoy.pid), SIGSTOP)"), "\(shim.status)\n\(Self.threadStatesAndWatches(of: envoy.pid))")
            #expect(shim.status.hasSuffix("resume it (kill -CONT \(envoy.pid)); do not start another Envoy, which would share the ports with the stopped one"), "\(shim.status)")
            #expect(try bed.registrations().isEmpty)
        }
    }

    /// An Envoy as the server sees one: named envoy…, watching the xds directory with
    /// inotify and reading each file renamed into it, listening on nothing; returned
    /// once it watches. The caller kills it.
    static func envoyThatReadsAndDoesNotListen(on bed: Testbed) async throws -> ChildProcess {
        let script = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(15, b"envoy-reader", 0, 0, 0)
            fd = libc.inotify_init1(0)
            libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x80)
            while True:
                os.read(fd, 4096)
                for name in ("cds.json", "lds.json"):
                    open(os.path.join(sys.argv[1], name), "rb").read()
            """
        let reader = try ChildProcess.spawn(try Binaries.onPath("python3", install: "apt-get install python3"), ["-c", script, bed.xdsDirectory], logPath: bed.directory + "/reader.log")
        do {
            try await bed.eventually("the reader watches the directory") {
                threadStatesAndWatches(of: reader.pid).contains("inotify wd:")
            }
        } catch {
            reader.signal(SIGKILL)
            throw error
        }
        return reader
    }

    /// What the server looks at to find a stopped Envoy: each thread's state, and the
    /// inotify watches (for a failure's message).
    static func threadStatesAndWatches(of pid: Int32) -> String {
        let states = ShimProcesses.entryNames(in: "/proc/\(pid)/task").sorted().map { thread in
            (try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/stat", encoding: .utf8)).map { String($0.split(separator: ")").last?.prefix(3) ?? "") } ?? "?"
        }
        let watches = ShimProcesses.entryNames(in: "/proc/\(pid)/fdinfo").compactMap { fd in
            (try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(fd)", encoding: .utf8))?.split(separator: "\n").filter { $0.hasPrefix("inotify") }.joined(separator: "; ")
        }.filter { !$0.isEmpty }
        return "threads: \(states); inotify: \(watches)"
    }

    @Test("a port another process listens on is refused, not handed to Envoy, naming that process")
    func portInUse() async throws {
        try await withTestbed { bed in
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let squatter = try Sockets.dockerdBoundListener(host)
            defer { close(squatter) }
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            let name = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(shim.status == "1\nanother process already listens on 0.0.0.0:\(host.port): \(name) (pid \(getpid())); stop it, or publish the container on a free port", "\(shim.status.debugDescription)")
            #expect(try bed.registrations().isEmpty)
        }
    }

    @Test("a port Envoy listens on for none of the server's registrations (its admin address) is refused naming Envoy, without telling to stop it or to try again; the server's own admin endpoint, naming it")
    func portOfEnvoysAdmin() async throws {
        try await withTestbed { bed in
            let shim = try await bed.publish(bed.envoyAdmin, to: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            let envoy = try #require(bed.envoy)
            #expect(shim.status == "1\nanother process already listens on \(bed.envoyAdmin): envoy (pid \(envoy.pid)), for none of this server's registrations (an Envoy's admin address, or another Envoy's listener); publish the container on a free port", "\(shim.status.debugDescription)")
            #expect(try bed.registrations().isEmpty)
            // Nor to stop the server, whose own admin endpoint it is.
            let own = try await bed.publish(bed.serverAdmin, to: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            #expect(own.status == "1\n\(bed.serverAdmin) is taken by this edshim server's own admin endpoint (--admin-address); publish the container on a free port", "\(own.status.debugDescription)")
            try bed.expectNoRejectedUpdates()
        }
    }

    /// Publishes 0.0.0.0:PORT, stops Envoy (SIGSTOP: it lags) and then the port's
    /// shim, so that Envoy keeps the withdrawn listener's socket; `publish` gets the
    /// backend, the port and Envoy, and returns where it published again. Envoy is
    /// resumed after it, and that address must then publish.
    private func whileAStoppedEnvoyKeepsAWithdrawnListener(_ publish: @escaping (Testbed, LoopbackBackend, UInt16, ChildProcess) async throws -> SocketEndpoint) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web", on: .loopbackIPv4)
            let port = try Sockets.freePort()
            let first = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint)
            #expect(first.isReady)
            let envoy = try #require(bed.envoy)
            envoy.signal(SIGSTOP)
            defer { envoy.signal(SIGCONT) }
            first.process.signal(SIGINT)
            #expect(await first.process.waitForExit(timeout: .seconds(2)) == 0)
            let host = try await publish(bed, backend, port, envoy)
            envoy.signal(SIGCONT)
            try await bed.eventually("Envoy lets go of the port once it runs") { !ListenTable.read().contains { $0.keepsFromBinding(host) } }
            #expect(try await bed.publish(host, to: backend.endpoint).isReady, "the same again, once it has")
        }
    }

    @Test("a port overlapping one withdrawn a moment ago, whose listener Envoy has not closed yet, is refused saying to try again once Envoy has read the update")
    func portEnvoyHasNotLetGoOf() async throws {
        try await whileAStoppedEnvoyKeepsAWithdrawnListener { bed, backend, port, envoy in
            let host = SocketEndpoint(ip: .loopbackIPv4, port: port)
            let second = try await bed.publish(host, to: backend.endpoint)
            #expect(second.status == "1\nanother process already listens on \(host) (bound to 0.0.0.0:\(port)): envoy (pid \(envoy.pid)), which has not let go of a registration of the port withdrawn a moment ago yet; try again once it has read the update", "\(second.status.debugDescription)")
            return host
        }
    }

    @Test("a port whose withdrawn listener a stopped Envoy still holds is refused by the shim, which would otherwise serve it beside that Envoy's socket (half the connections would wait), naming the stopped Envoy and kill -CONT")
    func portAStoppedEnvoyStillHolds() async throws {
        try await whileAStoppedEnvoyKeepsAWithdrawnListener { bed, backend, port, envoy in
            let host = SocketEndpoint(ip: .anyIPv4, port: port)
            let second = try await bed.publish(host, to: backend.endpoint)
            #expect(second.status == "1\nlisten tcp \(host): bind: address already in use: envoy (pid \(envoy.pid)) still listens on tcp \(host) and is stopped (SIGSTOP): connections the kernel gave its socket would wait until it runs again, so the port is not shared with it; resume it (kill -CONT \(envoy.pid)), then start the container again", "\(second.status.debugDescription)")
            return host
        }
    }

    @Test("a port a shim of another dockerd publishes (another process, still running, started it) is refused naming that shim, which keeps the port, as docker-proxy's bind fails")
    func portPublishedByAnotherDockerd() async throws {
        try await withTestbed { bed in
            let first = try bed.httpBackend("first")
            let second = try bed.httpBackend("second")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            // Started by an `sh` standing in for another dockerd, which keeps running.
            let holder = try await OrphanableShim.start(bed, host, to: first.endpoint, grace: nil)
            defer { holder.killIfRunning() }
            #expect(holder.status == "0\n")

            let refused = try await bed.publish(host, to: second.endpoint)
            #expect(refused.status == "1\ntcp 0.0.0.0:\(host.port) is already published, for \(first.endpoint) by shim pid \(holder.pid), which another process still running started (sh, pid \(holder.parent.pid)): a port is published once. Stop the container that publishes it first (docker ps --filter publish=\(host.port), against each dockerd), or publish another host port", "\(refused.status.debugDescription)")
            #expect(await refused.process.waitForExit(timeout: .seconds(2)) == 1)
            #expect(try bed.registrations().map(\.owner.pid) == [holder.pid])
            #expect(try TestHTTP.get(dial).body.hasPrefix("backend=first\n"), "the first container keeps the port")
            #expect((bed.server?.log ?? "").contains("code=port_in_use"), "the journal says what dockerd was told")

            kill(holder.pid, SIGINT)
            try await bed.eventually("the holder withdraws its port", timeout: .seconds(3)) { try !holder.isRunning && bed.registrations().isEmpty }
            let replacement = try await bed.publish(host, to: second.endpoint)
            #expect(replacement.isReady, "\(replacement.status.debugDescription)")
            // A newer shim of the same dockerd replaces the registration: that dockerd
            // published the port again.
            let newer = try await bed.publish(host, to: first.endpoint)
            #expect(newer.isReady, "\(newer.status.debugDescription)")
            #expect(try bed.registrations().map(\.owner.pid) == [newer.process.pid])
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("a port another process listens on only on 127.0.0.1 is refused for 0.0.0.0, saying where that socket is bound")
    func portInUseOnAnotherAddress() async throws {
        try await withTestbed { bed in
            let port = try Sockets.freePort()
            let squatter = try Sockets.dockerdBoundListener(SocketEndpoint(ip: .loopbackIPv4, port: port))
            defer { close(squatter) }
            let shim = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            let name = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(shim.status == "1\nanother process already listens on 0.0.0.0:\(port) (bound to 127.0.0.1:\(port)): \(name) (pid \(getpid())); stop it, or publish the container on a free port", "\(shim.status.debugDescription)")
            #expect(try bed.registrations().isEmpty)
        }
    }

    @Test("a port another Envoy listens on is refused too, naming it, without telling to stop it (it may serve every port) or to try again (no registration of the port was withdrawn)")
    func portInUseByAnEnvoy() async throws {
        try await withTestbed { bed in
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            // A process named like an Envoy (its comm), listening on the port: busybox's nc.
            let squatterPath = bed.directory + "/envoy-squatter"
            try FileManager.default.copyItem(atPath: try SystemExecutables.required("busybox", package: "busybox-static"), toPath: squatterPath)
            let squatter = try ChildProcess.spawn(squatterPath, ["-l", "-p", "\(host.port)"], argv0: "nc", logPath: bed.directory + "/squatter.log")
            defer { squatter.signal(SIGKILL) }
            try await bed.eventually("the squatter listens") { ListenTable.read().contains { $0.keepsFromBinding(host) } }
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            // busybox nc listens on [::] taking IPv4 too, where the host has IPv6: the
            // refusal says where its socket is bound.
            #expect(shim.status.hasPrefix("1\nanother process already listens on 0.0.0.0:\(host.port)"), "\(shim.status.debugDescription)")
            #expect(shim.status.hasSuffix(": envoy-squatter (pid \(squatter.pid)), for none of this server's registrations (an Envoy's admin address, or another Envoy's listener); publish the container on a free port"), "\(shim.status.debugDescription)")
            #expect(try bed.registrations().isEmpty)
        }
    }

    @Test("a port that another program's IPv6 socket taking IPv4 too listens on (Go's net.Listen(\":port\")) is refused for 0.0.0.0, never handed to an Envoy that cannot bind it")
    func portInUseByDualStackSocket() async throws {
        try await withTestbed { bed in
            let port = try Sockets.freePort()
            let squatter = try Sockets.dualStackListener(port: port)
            defer { close(squatter) }
            let host = SocketEndpoint(ip: .anyIPv4, port: port)
            let started = ContinuousClock.now
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            #expect(shim.status.hasPrefix("1\n"), "\(shim.status)")
            #expect(shim.status.contains("already listens on 0.0.0.0:\(port)"), "\(shim.status)")
            #expect(ContinuousClock.now - started < .seconds(4), "refused before the 5 s readiness timeout")
            #expect(try bed.registrations().isEmpty)
            #expect(try bed.listeners()["tcp_0.0.0.0_\(port)"] == nil)
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("a port no process listens on but a connection of this host holds (an outgoing connection's local port) is refused at once, never handed to an Envoy that could not bind it, with the server and without it")
    func portHeldByAConnection() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            // An outgoing connection: connect() took its local port from the ephemeral range.
            let connection = try Sockets.connect(backend.endpoint)
            defer { close(connection) }
            let port = try Sockets.localPort(of: connection)
            let host = SocketEndpoint(ip: .anyIPv4, port: port)
            let refusal = "1\nlisten tcp 0.0.0.0:\(port): bind: address already in use: no process listens on it, but a connection of this host holds the port (an outgoing connection's local port, or one closing in TIME-WAIT: ss -tan 'sport = :\(port)' shows it)"
            let started = ContinuousClock.now
            let shim = try await bed.publish(host, to: backend.endpoint)
            #expect(shim.status.hasPrefix(refusal), "\(shim.status.debugDescription)")
            #expect(ContinuousClock.now - started < .seconds(3), "refused before the readiness timeout")
            #expect(try bed.registrations().isEmpty)
            #expect(try bed.listeners()["tcp_0.0.0.0_\(port)"] == nil)
            try bed.expectNoRejectedUpdates()

            await bed.stopServer()
            let alone = try await bed.publish(host, to: backend.endpoint)
            #expect(alone.status.hasPrefix(refusal), "the shim's own bind, with no server: \(alone.status.debugDescription)")
        }
    }

    @Test("a port a socket holds bound but not listening yet (an Envoy starting binds its listeners before it listens on them) is tried again for a moment: served by the shim once that socket goes, not refused")
    func portBoundNotListeningSettles() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            await bed.stopServer()
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let bound = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            #expect(host.withSocketAddress { Glibc.bind(bound, $0, $1) } == 0)
            let released = Task {
                try await Task.sleep(for: .milliseconds(600))
                close(bound)
            }
            let shim = try await bed.publish(host, to: backend.endpoint)
            try await released.value
            #expect(shim.isReady, "served once the socket went: \(shim.status.debugDescription)")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200)
        }
    }

    @Test("with the server down, a port another process listens on is refused the way docker-proxy words it, naming that process and where its socket is bound", arguments: ["0.0.0.0", "127.0.0.1"])
    func portInUseWhileServerDown(squatterAddress: String) async throws {
        try await withTestbed { bed in
            await bed.stopServer()
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let bound = SocketEndpoint(ip: try #require(IPAddress(squatterAddress)), port: host.port)
            let squatter = try Sockets.dockerdBoundListener(bound)
            defer { close(squatter) }
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            let name = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(shim.status == "1\nlisten tcp \(host): bind: address already in use: \(name) (pid \(getpid())) already listens on tcp \(bound); stop it, or publish the container on another host port",
                    "reported \(shim.status.debugDescription)")
        }
    }

    @Test("a host address Envoy cannot listen on is refused at once, before Envoy sees it: one the host does not have, an IPv4-mapped one", arguments: ["198.51.100.77", "::ffff:127.0.0.1"])
    func addressEnvoyCannotListenOn(address: String) async throws {
        try await withTestbed { bed in
            let host = SocketEndpoint(ip: try #require(IPAddress(address)), port: try Sockets.freePort())
            try #require(!Sockets.canBind(SocketEndpoint(ip: host.ip, port: 0)), "the test needs an address the host cannot listen on")
            let started = ContinuousClock.now
            let shim = try await bed.publish(host, to: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            let advice = address == "198.51.100.77"
                ? "cannot assign requested address: this host has no address 198.51.100.77; publish on an address it has, or on 0.0.0.0"
                : "is an IPv4-mapped address, which IPv6 sockets bound v6-only (docker-proxy's, Envoy's, edshim's) cannot take; publish on 127.0.0.1 instead"
            #expect(shim.status.hasPrefix("1\nlisten tcp \(host): bind: ") && shim.status.contains(advice), "reported \(shim.status.debugDescription)")
            #expect(ContinuousClock.now - started < .seconds(2), "refused at once, not after Envoy's readiness timeout")
            #expect(try bed.registrations().isEmpty)
            #expect(try bed.listeners().isEmpty)
            // withTestbed: Envoy rejected no update (before, it rejected this listener).
        }
    }

    @Test("an address overlapping a registered one on the same port is refused")
    func overlappingAddress() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            let wildcard = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint)
            #expect(wildcard.isReady)
            let specific = try await bed.publish(SocketEndpoint(ip: .loopbackIPv4, port: port), to: backend.endpoint)
            #expect(specific.status.hasPrefix("1\n"))
            #expect(specific.status.contains("overlaps tcp 0.0.0.0:\(port)"))
            #expect(specific.status.contains("this container (\(backend.endpoint.ip)) already publishes tcp 0.0.0.0:\(port)") && specific.status.contains("on one address only"), "the same container's: \(specific.status)")
            let other = try bed.httpBackend("other", on: IPAddress(bytes: [127, 0, 0, 2])!)
            let another = try await bed.publish(SocketEndpoint(ip: .loopbackIPv4, port: port), to: other.endpoint)
            #expect(another.status.hasPrefix("1\n") && another.status.contains("already published for \(backend.endpoint)") && another.status.contains("docker ps --filter publish=\(port)"), "another container's: \(another.status)")
            #expect(try bed.registrations().count == 1)
        }
    }

    @Test("two overlapping addresses registering at the same moment: one is published, the other refused")
    func overlappingAtOnce() async throws {
        try await withFakeDockerTestbed("overlap") { bed, docker in
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            // Both wait for Docker at once, each past the first check of the other.
            docker.delay.withLock { $0 = .milliseconds(300) }
            async let wildcard = bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint)
            async let specific = bed.publish(SocketEndpoint(ip: .loopbackIPv4, port: port), to: backend.endpoint)
            let statuses = [try await wildcard.status, try await specific.status]
            #expect(statuses.filter { $0 == "0\n" }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0.hasPrefix("1\n") && $0.contains("overlaps") }.count == 1, "\(statuses)")
            #expect(try bed.registrations().count == 1)
        }
    }

    @Test("a refusal reaches dockerd on one line, whatever it holds: line breaks (\\r\\n too), escape sequences, NUL and line separators: each run becomes one space")
    func refusalOnOneLine() async throws {
        try await withTestbed { bed in
            await bed.stopServer()
            let server = try ScriptedServer(socketPath: bed.socketPath) { request in
                guard case .register = request else { return .ok }
                return .failure(WireError(.badRequest, "line one\nline two\r\n0\n\u{0}tail \u{1B}[31mred\u{2028}end\r\n"))
            }
            defer { server.stop() }
            let shim = try await bed.publish(SocketEndpoint(ip: .loopbackIPv4, port: try Sockets.freePort()), to: SocketEndpoint(ip: .loopbackIPv4, port: 9))
            #expect(shim.status == "1\nline one line two 0 tail  [31mred end", "\(shim.status.debugDescription)")
        }
    }
}
