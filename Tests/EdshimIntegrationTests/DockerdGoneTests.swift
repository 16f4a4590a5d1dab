import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A shim whose dockerd exited without stopping it (`"live-restore": true`, or a
/// crash) gets SIGTERM from the kernel (Pdeathsig), as here, where its parent stands
/// in for dockerd. With EDSHIM_DOCKERD_RESTART_GRACE it leaves its port with Envoy
/// until dockerd's next shim takes it over.
@Suite("dockerd gone: EDSHIM_DOCKERD_RESTART_GRACE")
struct DockerdGoneTests {
    @Test("within the grace the port stays served until a new shim registers it; Envoy's listener never changes and the old shim then exits")
    func keptUntilTakenOver() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            let orphan = try await OrphanableShim.start(bed, host, to: backend.endpoint, grace: "30")
            defer { orphan.killIfRunning() }
            #expect(orphan.status == "0\n")
            let changes = try Self.listenerChanges(bed)

            try await orphan.loseDockerd()
            try await Task.sleep(for: .milliseconds(600))
            #expect(orphan.isRunning, "it waits for dockerd's next shim")
            #expect(try bed.registrations().map(\.owner.pid) == [orphan.pid], "its registration is kept")
            #expect(try TestHTTP.get(dial).status == 200, "Envoy still serves the port")

            let successor = try await bed.publish(host, to: backend.endpoint)
            #expect(successor.isReady)
            #expect(try bed.registrations().map(\.owner.pid) == [successor.process.pid])
            try await bed.eventually("the old shim exits once the new one took over", timeout: .seconds(3)) { !orphan.isRunning }
            #expect(try TestHTTP.get(dial).status == 200)
            #expect(try Self.listenerChanges(bed) == changes, "Envoy's listener never changed")
            #expect(try String(contentsOfFile: bed.directory + "/shims.log", encoding: .utf8).contains("dockerd published \(RegistrationKey(proto: .tcp, host: host)) again"))
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("a shim that served its port itself until it handed it to Envoy keeps it within the grace too")
    func keptAfterAFallback() async throws {
        try await withTestbed(.neitherServerNorEnvoy) { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let orphan = try await OrphanableShim.start(bed, host, to: backend.endpoint, grace: "30")
            defer { orphan.killIfRunning() }
            #expect(orphan.status == "0\n", "served by the shim itself: no server yet")
            try await bed.startServer()
            try await bed.startEnvoy()
            try await bed.eventually("the shim handed the port to Envoy", timeout: .seconds(15)) {
                let log = (try? String(contentsOfFile: bed.directory + "/shims.log", encoding: .utf8)) ?? ""
                return log.contains("handed \(RegistrationKey(proto: .tcp, host: host)) over to Envoy")
            }

            try await orphan.loseDockerd()
            try await Task.sleep(for: .milliseconds(600))
            #expect(orphan.isRunning, "it waits for dockerd's next shim")
            #expect(try bed.registrations().map(\.owner.pid) == [orphan.pid], "its registration is kept")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).status == 200)
            #expect(try await bed.publish(host, to: backend.endpoint).isReady)
            try await bed.eventually("the old shim exits once the new one took over", timeout: .seconds(3)) { !orphan.isRunning }
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("when the grace ends without a new shim, the port is withdrawn and the shim exits")
    func withdrawnAfterTheGrace() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let orphan = try await OrphanableShim.start(bed, host, to: backend.endpoint, grace: "1s")
            defer { orphan.killIfRunning() }
            try await orphan.loseDockerd()
            try await Task.sleep(for: .milliseconds(500))
            #expect(try bed.registrations().count == 1, "kept during the grace")
            try await bed.eventually("withdrawn, and the shim gone, after the grace", timeout: .seconds(4)) {
                try bed.registrations().isEmpty && bed.listeners().isEmpty && !orphan.isRunning
            }
        }
    }

    /// The contract: SIGTERM through Pdeathsig, deregister, exit within a second.
    @Test("without the grace, or with dockerd alive (docker stop's SIGINT, or SIGTERM), or with a second signal, or holding dockerd ≥ 28's socket, or with SIGTERM from another process than dockerd (systemd stopping the whole cgroup, kill), the shim withdraws its port and exits within a second", arguments: OrphanableShim.Stop.allCases)
    func withdrawnAtOnce(_ stop: OrphanableShim.Stop) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let orphan = try await OrphanableShim.start(bed, host, to: backend.endpoint, grace: stop == .noGrace ? nil : "30", listenFD: stop == .heldSocket, deathSignal: stop != .terminatedByAnotherAfterDockerd)
            defer { orphan.killIfRunning() }
            #expect(orphan.status == "0\n")
            switch stop {
            case .dockerStop: kill(orphan.pid, SIGINT)
            case .terminatedWithDockerdAlive: kill(orphan.pid, SIGTERM)
            case .noGrace, .secondSignal, .heldSocket: try await orphan.loseDockerd()
            case .terminatedByAnotherAfterDockerd:
                try await orphan.loseDockerd()
                kill(orphan.pid, SIGTERM)
            }
            if stop == .secondSignal {
                try await Task.sleep(for: .milliseconds(300))
                #expect(orphan.isRunning)
                kill(orphan.pid, SIGTERM)
            }
            let stopped = ContinuousClock.now
            try await bed.eventually("deregistered and gone", timeout: .seconds(3)) { try bed.registrations().isEmpty && !orphan.isRunning }
            #expect(ContinuousClock.now - stopped < .seconds(1.5), "within about a second")
        }
    }

    /// A UDP shim to an echo server, started under `EDSHIM_DOCKERD_RESTART_GRACE=30`,
    /// whose dockerd is gone: it waits for the next dockerd's shim. The caller kills it.
    private static func udpShimWaitingUnderGrace(_ bed: Testbed, _ echoes: UDPEchoServers) async throws -> (echo: UDPEchoServer, host: SocketEndpoint, orphan: OrphanableShim) {
        let echo = try echoes.start(on: .loopbackIPv4)
        let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
        let orphan = try await OrphanableShim.start(bed, host, to: echo.endpoint, proto: .udp, grace: "30")
        do {
            #expect(orphan.status == "0\n")
            try await orphan.loseDockerd()
            try await Task.sleep(for: .milliseconds(300))
            #expect(orphan.isRunning, "waits for the next dockerd's shim")
            return (echo, host, orphan)
        } catch {
            orphan.killIfRunning()
            throw error
        }
    }

    @Test("a UDP shim waiting under the grace, its dockerd gone: edshim udp-proxy run by hand is refused the port; the next dockerd's shim, with the grace or started without it (the variable removed), binds beside it, and the waiting one leaves the port to it", arguments: [nil, "30"])
    func udpPortTakenOver(nextGrace: String?) async throws {
        try await withUDPTestbed { bed, echoes in
            let (echo, host, orphan) = try await Self.udpShimWaitingUnderGrace(bed, echoes)
            defer { orphan.killIfRunning() }
            let target = SocketEndpoint(ip: .loopbackIPv4, port: host.port)

            let byHand = try await bed.spawnShim(["udp-proxy"] + ShimArguments(proto: .udp, host: host, container: echo.endpoint).commandLine.dropFirst(2))
            #expect(byHand.status.hasPrefix("1\n") && byHand.status.contains("address already in use"), "\(byHand.status)")

            let next = try await bed.spawnShim(ShimArguments(proto: .udp, host: host, container: echo.endpoint).commandLine, environment: nextGrace.map { ["EDSHIM_DOCKERD_RESTART_GRACE": $0] } ?? [:])
            #expect(next.isReady, "reported \(next.status.debugDescription): \(next.process.log)")
            try await bed.eventually("the waiting shim leaves the port", timeout: .seconds(3)) { !orphan.isRunning }
            #expect(next.process.log.contains("is still carried by the previous dockerd's proxy (pid \(orphan.pid)) under EDSHIM_DOCKERD_RESTART_GRACE\(nextGrace == nil ? ", which this dockerd does not set" : ": bound beside it")"), "\(next.process.log)")
            let reply = try await onThread { try UDPTestClient(.ipv4).exchange(Array("hello".utf8), with: target) }
            #expect(reply == Array("hello".utf8))
        }
    }

    @Test("a UDP shim waiting under the grace leaves the port at once to the next dockerd's shim, even one that dockerd stops a moment later (its container exited while dockerd was down): the port is then free, not carried to an address another container may get", arguments: [nil, "30"])
    func udpPortLeftToABriefSuccessor(nextGrace: String?) async throws {
        try await withUDPTestbed { bed, echoes in
            let (echo, host, orphan) = try await Self.udpShimWaitingUnderGrace(bed, echoes)
            defer { orphan.killIfRunning() }

            let next = try await bed.spawnShim(ShimArguments(proto: .udp, host: host, container: echo.endpoint).commandLine, environment: nextGrace.map { ["EDSHIM_DOCKERD_RESTART_GRACE": $0] } ?? [:])
            #expect(next.isReady, "reported \(next.status.debugDescription): \(next.process.log)")
            // dockerd stops it at once, as docker-proxy: SIGINT.
            next.process.signal(SIGINT)
            #expect(await next.process.waitForExit(timeout: .seconds(2)) == 0)
            try await bed.eventually("the waiting shim left the port", timeout: .milliseconds(500)) { !orphan.isRunning }
            #expect(next.process.log.contains("told it to leave the port to this proxy"), "\(next.process.log)")
            // Both shims write to the testbed's shims.log.
            #expect(next.process.log.contains("stopped by signal 15 from pid \(next.process.pid) while carrying udp \(host)"), "\(next.process.log)")
            // Looked at until it is (once, in a full run, a look right after both had
            // exited still found it held).
            try await bed.eventually("nothing holds udp \(host) any more", timeout: .seconds(1)) { Sockets.canBindUDP(host) }
        }
    }

    @Test("under the grace, a UDP shim is refused a port that a proxy of an overlapping address (another container's, its dockerd running) or another program's SO_REUSEPORT socket holds, as docker-proxy's bind is", arguments: [("127.0.0.1", "0.0.0.0"), ("0.0.0.0", "127.0.0.1"), ("127.0.0.1", nil)])
    func overlappingUDPPortRefusedUnderGrace(_ first: String, _ second: String?) async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let port = try Sockets.freeUDPPort()
            let held = SocketEndpoint(ip: try #require(IPAddress(first)), port: port)
            var holder = "edshim"
            var program: Int32 = -1
            defer { if program >= 0 { close(program) } }
            let other: OrphanableShim?
            if second != nil {
                let shim = try await OrphanableShim.start(bed, held, to: echo.endpoint, proto: .udp, grace: "30")
                #expect(shim.status == "0\n")
                holder += " (pid \(shim.pid))"
                other = shim
            } else {
                // Another program of root's, with SO_REUSEPORT, on the very address.
                program = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
                var one: Int32 = 1
                setsockopt(program, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
                #expect(held.withSocketAddress { Glibc.bind(program, $0, $1) } == 0)
                holder = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) + " (pid \(getpid()))"
                other = nil
            }
            defer { other?.killIfRunning() }
            let host = SocketEndpoint(ip: try #require(IPAddress(second ?? first)), port: port)
            let refused = try await bed.spawnShim(ShimArguments(proto: .udp, host: host, container: echo.endpoint).commandLine, environment: ["EDSHIM_DOCKERD_RESTART_GRACE": "30"])
            // Another container's proxy is not to be stopped: its port is published.
            let advice = other == nil
                ? "\(holder) already uses udp \(held); stop it, or publish the container on another host port"
                : "udp \(held) is already published, for \(echo.endpoint) by \(holder): publish the container on another host port (docker ps --filter publish=\(port)/udp shows the container)"
            #expect(refused.status == "1\nlisten udp \(host): bind: address already in use: \(advice)", "\(refused.status.debugDescription)")
            #expect(other?.isRunning ?? true)
        }
    }

    @Test("a grace in seconds, minutes or hours (as EDSHIM_UDP_IDLE_TIMEOUT), up to a day, is taken at its value", arguments: [
        ("0", 0), ("120", 120), ("120s", 120), ("2m", 120), ("86400", 86400), ("1440m", 86400), ("24h", 86400), ("1.5", 2),
    ])
    func goodGrace(_ value: String, seconds: Int) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let orphan = try await OrphanableShim.start(bed, host, to: backend.endpoint, grace: value)
            defer { orphan.killIfRunning() }
            #expect(orphan.status == "0\n")
            try await orphan.loseDockerd()
            let log = { (try? String(contentsOfFile: bed.directory + "/shims.log", encoding: .utf8)) ?? "" }
            if seconds == 0 {
                try await bed.eventually("no grace: the shim withdraws its port and exits", timeout: .seconds(2)) { !orphan.isRunning }
                #expect(try bed.registrations().isEmpty)
            } else {
                try await bed.eventually("the shim says how long it keeps the port", timeout: .seconds(2)) {
                    log().contains("for at most \(seconds) s (EDSHIM_DOCKERD_RESTART_GRACE)")
                }
                #expect(orphan.isRunning)
            }
        }
    }

    @Test("a grace edshim cannot read is refused on fd 3, naming the variable", arguments: ["soon", "-1", "2d", "86401", "1441m", "25h"])
    func badGrace(_ value: String) async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let run = try await bed.publish(host, to: backend.endpoint, environment: ["EDSHIM_DOCKERD_RESTART_GRACE": value])
            #expect(run.status.hasPrefix("1\nEDSHIM_DOCKERD_RESTART_GRACE=\(value) is not a grace"), "\(run.status)")
            #expect(try bed.registrations().isEmpty, "nothing registered")
        }
    }

    static func listenerChanges(_ bed: Testbed) throws -> [Int] {
        try ["listener_manager.listener_added", "listener_manager.listener_modified", "listener_manager.listener_removed"].map { try bed.stat($0) }
    }
}

/// A shim started as dockerd starts it, with a parent (`sh`) that stands in for
/// dockerd: it asks the kernel for SIGTERM when that parent dies (`setpriv
/// --pdeathsig`, as dockerd's Pdeathsig), and the test can kill the parent.
struct OrphanableShim {
    enum Stop: String, CaseIterable, CustomTestStringConvertible {
        case noGrace, dockerStop, terminatedWithDockerdAlive, secondSignal, heldSocket
        /// SIGTERM from another process once dockerd exited (without Pdeathsig here,
        /// so that the kernel's own SIGTERM cannot come first).
        case terminatedByAnotherAfterDockerd
        var testDescription: String { rawValue }
    }

    let pid: pid_t
    let parent: ChildProcess
    let status: String
    let argv: [String]

    /// `deathSignal`: the shim asks for SIGTERM when its parent dies, as dockerd's do.
    static func start(_ bed: Testbed, _ host: SocketEndpoint, to container: SocketEndpoint, proto: TransportProtocol = .tcp, grace: String?, listenFD: Bool = false, deathSignal: Bool = true) async throws -> OrphanableShim {
        var arguments = ShimArguments(proto: proto, host: host, container: container).commandLine
        var descriptors: [Int32: Int32] = [:]
        var held: Int32?
        if listenFD {
            let socket = try Sockets.dockerdBoundSocket(host, for: arguments)
            held = socket
            descriptors[4] = socket
            arguments.append("-use-listen-fd")
        }
        defer { if let held { close(held) } }
        let status = try Sockets.pipe()
        let pids = try Sockets.pipe()
        defer { close(status.read); close(pids.read) }
        descriptors[3] = status.write
        descriptors[5] = pids.write
        var environment = bed.environment
        if let grace { environment["EDSHIM_DOCKERD_RESTART_GRACE"] = grace }
        // The shim inherits fds 3 and 4; sh keeps neither, and reports the shim's pid on fd 5.
        let script = #""$0" "$@" & echo $! >&5; exec 3>&- 4>&- 5>&-; wait"#
        let setpriv = (deathSignal ? ["--pdeathsig", "TERM"] : []) + ["--", bed.edshim]
        let parent = try ChildProcess.spawn("/bin/sh", ["-c", script, try SystemExecutables.setpriv()] + setpriv + arguments, environment: environment, descriptors: descriptors, logPath: bed.directory + "/shims.log")
        close(status.write)
        close(pids.write)
        let pidText = await Sockets.readAll(pids.read, timeout: .seconds(5))
        guard let pid = pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            parent.signal(SIGKILL)
            throw TestFailure("sh did not report the shim's pid: \(pidText.debugDescription)")
        }
        let report = await Sockets.readStatus(status.read)
        return OrphanableShim(pid: pid, parent: parent, status: report, argv: [bed.edshim] + arguments)
    }

    /// Kills the shim's parent: the kernel sends the shim SIGTERM, as when dockerd exits.
    func loseDockerd() async throws {
        parent.signal(SIGKILL)
        guard await parent.waitForExit(timeout: .seconds(5)) != nil else { throw TestFailure("the shim's parent did not exit") }
    }

    /// Running, and not a zombie waiting for its new parent to reap it.
    var isRunning: Bool { ProcessTable.commandLine(of: pid) == argv }

    func killIfRunning() {
        parent.signal(SIGKILL)
        if isRunning { kill(pid, SIGKILL) }
    }
}
