import EdshimCore
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// dockerd itself restarting: stopped by systemd, or crashed.
@Suite("Real dockerd, dockerd restarts")
struct DockerRestartTests {
    /// How dockerd goes down.
    enum Stop: String, CaseIterable, CustomTestStringConvertible {
        /// systemd stops it (SIGTERM): it stops the containers, and their shims, first.
        case stopped
        /// It dies (SIGKILL): the kernel sends its shims SIGTERM.
        case crashed
        /// It dies, and its shims keep their ports for the next dockerd.
        case crashedWithGrace
        var testDescription: String { rawValue }
    }

    // Three tests rather than one with arguments: a case of a parameterized test that
    // skips (no Docker here) would be listed as passed (LoudSkip.swift).
    @Test("after dockerd is stopped and started, the containers it starts again serve through Envoy, named from their labels (read once dockerd opens its API); no old shim is left")
    func containersRestartedAfterStop() async throws { try await containersRestartedByDockerd(.stopped) }

    @Test("after dockerd crashes and starts again, the same")
    func containersRestartedAfterCrash() async throws { try await containersRestartedByDockerd(.crashed) }

    @Test("after dockerd crashes while its shims keep their ports for the next one (EDSHIM_DOCKERD_RESTART_GRACE), the same")
    func containersRestartedAfterCrashWithGrace() async throws { try await containersRestartedByDockerd(.crashedWithGrace) }

    private func containersRestartedByDockerd(_ stop: Stop) async throws {
        var options = Testbed.Options()
        if stop == .crashedWithGrace { options.dockerdEnvironment = ["EDSHIM_DOCKERD_RESTART_GRACE": "60"] }
        try await withDockerTestbed(options) { bed, docker in
            let port = try Sockets.freePort()
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: port)
            try await docker.run(["run", "-d", "--restart", "always", "--stop-timeout", "1", "--name", "web", "-l", "ServiceName=web", "-p", "\(port):80"] + DockerEndToEndTests.httpd)
            try await docker.waitForContainerPort("web", port: 80)
            #expect(try bed.clusters().keys.sorted() == ["web-\(port)"])
            let before = Set(docker.proxyProcesses().map(\.pid))

            try await docker.stopDockerd(signal: stop == .stopped ? SIGTERM : SIGKILL)
            try await docker.startDockerdAgain()
            // A container started as soon as dockerd answers is named from its labels
            // at once: lookups do not wait out their pause after the failures of the
            // restored container's (it was named unknown-<port> for 5 s).
            let freshPort = try Sockets.freePort()
            try await docker.run(["run", "-d", "--stop-timeout", "1", "--name", "fresh", "-l", "ServiceName=fresh", "-p", "\(freshPort):80"] + DockerEndToEndTests.httpd)
            let clusters = try bed.clusters().keys.sorted()
            #expect(clusters.contains("fresh-\(freshPort)"), "\(clusters)")
            try await docker.run(["rm", "-f", "fresh"])
            // dockerd starts the container, and its shims, before it opens its API: the
            // server names the port once dockerd answers.
            try await bed.eventually("the port is named from its labels again", timeout: .seconds(10)) {
                try bed.clusters().keys.sorted() == ["web-\(port)"]
            }
            let now = Set(docker.proxyProcesses().map(\.pid))
            #expect(now.count == 2 && now.isDisjoint(with: before), "dockerd started new shims")
            #expect(Set(try bed.registrations().map(\.owner.pid)) == now, "registered by them")
            // With the grace, they leave once the new ones have registered.
            try await bed.eventually("the old dockerd's shims are gone", timeout: .seconds(3)) { !before.contains(where: Self.runs) }
            try await docker.waitForContainerPort("web", port: 80)
            #expect(try TestHTTP.get(dial).status == 200)
            #expect(try bed.stat("http.web-\(port).downstream_rq_completed") >= 1)
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("with live restore and EDSHIM_DOCKERD_RESTART_GRACE, a published port answers throughout a dockerd restart and Envoy's listener never changes; the new dockerd's shims take it over and the old ones exit")
    func liveRestore() async throws {
        var options = Testbed.Options()
        options.dockerdEnvironment = ["EDSHIM_DOCKERD_RESTART_GRACE": "60"]
        try await withDockerTestbed(options) { bed, docker in
            try await docker.enableLiveRestore()
            let port = try Sockets.freePort()
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: port)
            try await docker.run(["run", "-d", "--name", "web", "-l", "ServiceName=web", "-p", "\(port):80"] + DockerEndToEndTests.httpd)
            try await docker.waitForContainerPort("web", port: 80)
            #expect(try TestHTTP.get(dial).status == 200)
            let before = Set(docker.proxyProcesses().map(\.pid))
            let changes = try DockerdGoneTests.listenerChanges(bed)

            let probe = Probe.requests(dial)
            defer { _ = probe.stop() }
            try await docker.stopDockerd()
            try await Task.sleep(for: .seconds(1))
            #expect(before.allSatisfy(Self.runs), "the old shims wait for dockerd's next ones")
            #expect(try TestHTTP.get(dial).status == 200, "served while dockerd is down")
            try await docker.startDockerdAgain()
            try await bed.eventually("the new dockerd's shims own the port", timeout: .seconds(10)) {
                let now = Set(docker.proxyProcesses().map(\.pid))
                return try now.count == 2 && now.isDisjoint(with: before) && Set(bed.registrations().map(\.owner.pid)) == now
            }
            try await bed.eventually("the old shims exit", timeout: .seconds(3)) { !before.contains(where: Self.runs) }
            let (answered, failed) = probe.stop()
            #expect(failed == 0 && answered >= 20, "\(answered) requests answered, \(failed) failed")
            #expect(try DockerdGoneTests.listenerChanges(bed) == changes, "Envoy's listener never changed")
            #expect(try bed.clusters().keys.sorted() == ["web-\(port)"])
            try bed.expectNoRejectedUpdates()
        }
    }

    @Test("with live restore and EDSHIM_DOCKERD_RESTART_GRACE, a published UDP port echoes throughout a dockerd restart: the old dockerd's proxies serve until the new dockerd's bind the port beside them (another program's socket joining the port does not count), then exit")
    func liveRestoreUDP() async throws {
        var options = Testbed.Options.neitherServerNorEnvoy
        options.dockerdEnvironment = ["EDSHIM_DOCKERD_RESTART_GRACE": "60"]
        try await withDockerTestbed(options) { bed, docker in
            try await docker.enableLiveRestore()
            let port = try Sockets.freeUDPPort()
            try await docker.run(["run", "-d", "--name", "dns", "-p", "\(port):5353/udp", BusyboxImage.name, "sleep", "300"])
            // The busybox image has no UDP server: serve 5353 from the container's own
            // network namespace, which outlives dockerd's restart as the container does.
            let echoes = UDPEchoServers()
            defer { echoes.stopAll() }
            _ = try await echoes.start(in: .of(try await docker.containerPID("dns")), on: .anyIPv4, port: 5353)
            let target = SocketEndpoint(ip: .loopbackIPv4, port: port)
            let before = Set(docker.proxyProcesses().map(\.pid))
            #expect(before.count == 2, "\(docker.proxies())")

            let probe = try Probe.datagrams(to: target)
            defer { _ = probe.stop() }
            try await Task.sleep(for: .milliseconds(300))
            try await docker.stopDockerd(signal: SIGKILL)
            // Another program of root's joins the port with SO_REUSEPORT (an echo, so that
            // the probe's datagrams the kernel hands it are answered too): it is not
            // dockerd's next proxy, and the old ones go on.
            var one: Int32 = 1
            let shared = socket(AF_INET, UDPEchoServer.socketType, 0)
            setsockopt(shared, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
            let joined = try UDPEchoServer(socket: shared, on: .anyIPv4, port: port)
            try await Task.sleep(for: .seconds(2))
            joined.stop()
            #expect(before.allSatisfy(Self.runs), "the old proxies wait for dockerd's next ones, not for another program's socket")
            try await docker.startDockerdAgain()
            try await bed.eventually("the new dockerd's proxies run", timeout: .seconds(15)) {
                let now = Set(docker.proxyProcesses().map(\.pid))
                return now.count == 2 && now.isDisjoint(with: before)
            }
            try await bed.eventually("the old proxies exit once the new ones bound the port", timeout: .seconds(5)) { !before.contains(where: Self.runs) }
            try await Task.sleep(for: .milliseconds(300))
            let (answered, lost) = probe.stop()
            // One datagram can be lost: one on its way to or from the old proxy as it exits.
            #expect(lost <= 1 && answered >= 50, "\(answered) echoes, \(lost) lost")
            #expect(try await onThread { try UDPTestClient(.ipv4).exchange(Array("after".utf8), with: target) } == Array("after".utf8))
        }
    }

    @Test("with live restore, a dockerd started again without EDSHIM_DOCKERD_RESTART_GRACE (the variable removed) takes over the UDP port the old proxies carry under it: the container's TCP and UDP ports are both published again (dockerd dropped both when the UDP bind was refused), the old proxies exit, and no other program can join the UDP port afterwards")
    func graceRemovedAcrossLiveRestore() async throws {
        var options = Testbed.Options()
        options.dockerdEnvironment = ["EDSHIM_DOCKERD_RESTART_GRACE": "60"]
        try await withDockerTestbed(options) { bed, docker in
            try await docker.enableLiveRestore()
            let (tcpPort, udpPort) = (try Sockets.freePort(), try Sockets.freeUDPPort())
            try await docker.run(["run", "-d", "--name", "both", "-l", "ServiceName=both", "-p", "\(tcpPort):80", "-p", "\(udpPort):5353/udp"] + DockerEndToEndTests.httpd)
            try await docker.waitForContainerPort("both", port: 80)
            let echoes = UDPEchoServers()
            defer { echoes.stopAll() }
            _ = try await echoes.start(in: .of(try await docker.containerPID("both")), on: .anyIPv4, port: 5353)
            let (web, dns) = (SocketEndpoint(ip: .loopbackIPv4, port: tcpPort), SocketEndpoint(ip: .loopbackIPv4, port: udpPort))
            let before = Set(docker.proxyProcesses().map(\.pid))
            #expect(before.count == 4, "\(docker.proxies())")

            try await docker.stopDockerd()
            try await docker.startDockerdAgain(environment: [:])
            try await bed.eventually("the new dockerd's four proxies run", timeout: .seconds(15)) {
                let now = Set(docker.proxyProcesses().map(\.pid))
                return now.count == 4 && now.isDisjoint(with: before)
            }
            try await bed.eventually("the old proxies exit", timeout: .seconds(5)) { !before.contains(where: Self.runs) }
            #expect(!docker.logTail(lines: 400).contains("Failed to allocate and map port"), "\(docker.logTail())")
            #expect(try TestHTTP.get(web).status == 200)
            #expect(try await onThread { try UDPTestClient(.ipv4).exchange(Array("after".utf8), with: dns) } == Array("after".utf8))
            var one: Int32 = 1
            let intruder = socket(AF_INET, UDPEchoServer.socketType, 0)
            defer { close(intruder) }
            setsockopt(intruder, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
            let joined = SocketEndpoint(ip: .anyIPv4, port: udpPort).withSocketAddress { Glibc.bind(intruder, $0, $1) == 0 ? 0 : errno }
            #expect(joined == EADDRINUSE, "the new proxy turned SO_REUSEPORT off once bound")
            try bed.expectNoRejectedUpdates()
        }
    }

    /// Whether `pid` runs: an exited process its new parent has not reaped yet (a
    /// zombie, with no command line) does not.
    static func runs(_ pid: pid_t) -> Bool {
        !(ProcessTable.commandLine(of: pid) ?? []).isEmpty
    }
}

/// Tries something every 20 ms on a thread of its own (`attempt` gets the attempt's
/// number and says whether it succeeded), counting successes and failures.
final class Probe: Sendable {
    private let counts = Mutex((succeeded: 0, failed: 0, stopped: false))
    private let done = Mutex(false)

    init(_ attempt: @escaping @Sendable (Int) -> Bool) {
        Thread.detachNewThread { [self] in
            var number = 0
            while !counts.withLock({ $0.stopped }) {
                number += 1
                let succeeded = attempt(number)
                counts.withLock { if succeeded { $0.succeeded += 1 } else { $0.failed += 1 } }
                usleep(20_000)
            }
            done.withLock { $0 = true }
        }
    }

    /// Requests `endpoint` over HTTP; an answer 200 succeeds.
    static func requests(_ endpoint: SocketEndpoint) -> Probe {
        Probe { _ in (try? TestHTTP.get(endpoint).status) == 200 }
    }

    /// Sends a numbered datagram to `target` from one client; its echo within 500 ms
    /// succeeds (late echoes of earlier ones are skipped).
    static func datagrams(to target: SocketEndpoint) throws -> Probe {
        let client = try UDPTestClient(target.ip.isIPv6 ? .ipv6 : .ipv4)
        return Probe { number in
            let datagram = Array("probe \(number)".utf8)
            guard (try? client.send(datagram, to: target)) != nil else { return false }
            let deadline = ContinuousClock.now + .milliseconds(500)
            while ContinuousClock.now < deadline, let reply = client.receive(timeout: 500) {
                if reply.bytes == datagram { return true }
            }
            return false
        }
    }

    /// Stops the thread (again: no harm); returns the counts.
    func stop() -> (succeeded: Int, failed: Int) {
        counts.withLock { $0.stopped = true }
        while !done.withLock({ $0 }) { usleep(1000) }
        return counts.withLock { ($0.succeeded, $0.failed) }
    }
}
