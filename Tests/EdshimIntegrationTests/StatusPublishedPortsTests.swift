import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `edshim status` against a Docker engine whose answers the test sets: which of the
/// published ports nothing serves it names, and which it leaves out.
@Suite("status and the ports Docker publishes")
struct StatusPublishedPortsTests {
    @Test("a container listed running whose main process has exited (dockerd stops its proxies one after another, seconds for a wide range) has no no-proxy rows; a live one's dark port has, and fails --check")
    func stoppingContainerLeftOut() async throws {
        try await withFakeDockerTestbed("stopping") { bed, docker in
            // A process that has exited: the stopping container's main process.
            let exited = try ChildProcess.spawn("/bin/true", [], logPath: bed.directory + "/true.log")
            _ = await exited.waitForExit(timeout: .seconds(5))
            let (stopping, dark) = (try Sockets.freePort(), try Sockets.freePort())
            docker.publishing.withLock {
                $0 = [
                    .init(id: String(repeating: "a", count: 64), name: "stopping", pid: exited.pid, ports: [("0.0.0.0", stopping, 80, "tcp"), ("0.0.0.0", stopping, 53, "udp")]),
                    .init(id: String(repeating: "b", count: 64), name: "dark", pid: getpid(), ports: [("0.0.0.0", dark, 80, "tcp")]),
                ]
            }
            let check = try await Binaries.run(bed.edshim, ["status", "--check", "--docker-host", "unix://\(docker.socketPath)"], environment: bed.environment, in: bed.directory)
            #expect(check.status == 1, "\(check.output)")
            let rows = check.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            #expect(rows.contains(["0.0.0.0:\(dark)", "tcp", "-:80", "dark", "-", "no-proxy", "-"]), "\(check.output)")
            #expect(!check.output.contains(":\(stopping) "), "the stopping container's ports are left out: \(check.output)")
            #expect(check.output.contains("1 port that dockerd publishes served by no proxy: 0.0.0.0:\(dark)/tcp (no proxy: dockerd publishes it for dark)"), "\(check.output)")
        }
    }
}
