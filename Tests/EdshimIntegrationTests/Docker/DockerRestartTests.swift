import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// dockerd itself restarting: stopped by systemd, or crashed.
@Suite("Real dockerd, dockerd restarts")
struct DockerRestartTests {
    @Test("after dockerd restarts, the containers it starts again serve through Envoy, named from their labels (read once dockerd opens its API); no old shim is left", arguments: [SIGTERM, SIGKILL])
    func containersRestartedByDockerd(signal: Int32) async throws {
        try await withDockerTestbed { bed, docker in
            let port = try Sockets.freePort()
            let dial = SocketEndpoint(ip: .loopbackIPv4, port: port)
            try await docker.run(["run", "-d", "--restart", "always", "--stop-timeout", "1", "--name", "web", "-l", "ServiceName=web", "-p", "\(port):80"] + DockerEndToEndTests.httpd)
            try await docker.waitForContainerPort("web", port: 80)
            #expect(try bed.clusters().keys.sorted() == ["web-\(port)"])
            let before = Set(docker.proxyProcesses().map(\.pid))

            try await docker.stopDockerd(signal: signal)
            try await docker.startDockerdAgain()
            // dockerd starts the container, and its shims, before it opens its API: the
            // server names the port once dockerd answers.
            try await bed.eventually("the port is named from its labels again", timeout: .seconds(10)) {
                try bed.clusters().keys.sorted() == ["web-\(port)"]
            }
            let now = Set(docker.proxyProcesses().map(\.pid))
            #expect(now.count == 2 && now.isDisjoint(with: before), "dockerd started new shims")
            #expect(Set(try bed.registrations().map(\.owner.pid)) == now, "registered by them")
            #expect(before.allSatisfy { !Self.runs($0) }, "the old dockerd's shims are gone")
            try await docker.waitForContainerPort("web", port: 80)
            #expect(try TestHTTP.get(dial).status == 200)
            #expect(try bed.stat("http.web-\(port).downstream_rq_completed") >= 1)
            try bed.expectNoRejectedUpdates()
        }
    }

    /// Whether `pid` runs: an exited process its new parent has not reaped yet (a
    /// zombie, with no command line) does not.
    static func runs(_ pid: pid_t) -> Bool {
        !(ProcessTable.commandLine(of: pid) ?? []).isEmpty
    }
}
