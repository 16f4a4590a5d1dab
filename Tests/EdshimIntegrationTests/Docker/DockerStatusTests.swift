import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `edshim status` asks dockerd which ports it publishes: a port whose proxy was
/// killed (dockerd never starts it again) is dark without a trace otherwise.
@Suite("Real dockerd, status")
struct DockerStatusTests {
    @Test("a published UDP and TCP port whose shims were SIGKILLed are listed no-proxy with the container's name, and fail status --check until docker restart publishes them again")
    func killedProxiesAreNamed() async throws {
        try await withDockerTestbed { bed, docker in
            let tcp = try Sockets.freePort()
            let udp = try Sockets.freeUDPPort()
            try await docker.run(["run", "-d", "--name", "web", "-p", "\(tcp):80", "-p", "\(udp):5353/udp", BusyboxImage.name, "sleep", "300"])
            func status(_ arguments: [String]) async throws -> (status: Int32, output: String) {
                try await Binaries.run(bed.edshim, ["status"] + arguments + ["--docker-host", docker.host], environment: bed.environment, in: bed.directory)
            }
            let healthy = try await status(["--check"])
            #expect(healthy.status == 0, "\(healthy.output)")
            #expect(!healthy.output.contains("no-proxy") && !healthy.output.contains("could not be asked"), "\(healthy.output)")

            // kill -9 of the IPv4 twins: dockerd does not notice.
            let killed = docker.proxyProcesses().filter { DockerUDPTests.value(of: "-host-ip", in: $0.argv) == "0.0.0.0" }
            #expect(killed.count == 2, "\(docker.proxies())")
            for proxy in killed { kill(proxy.pid, SIGKILL) }
            var table = ""
            let deadline = ContinuousClock.now + .seconds(10)
            repeat {
                try await Task.sleep(for: .milliseconds(100))
                table = try await status([]).output
            } while table.split(separator: "\n").filter({ $0.contains("no-proxy") }).count < 2 + 1 && ContinuousClock.now < deadline
            let rows = table.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            #expect(rows.contains(["0.0.0.0:\(udp)", "udp", "-:5353", "web", "-", "no-proxy", "-"]), "\(table)")
            #expect(rows.contains(["0.0.0.0:\(tcp)", "tcp", "-:80", "web", "-", "no-proxy", "-"]), "\(table)")
            #expect(!table.contains("[::]:\(udp)  udp  -:5353  web"), "the IPv6 twin still runs: \(table)")
            #expect(table.contains("no-proxy: dockerd publishes the port (docker ps lists it), but no proxy serves it"), "\(table)")

            let check = try await status(["--check"])
            #expect(check.status == 1, "\(check.output)")
            // In key order, which depends on the port numbers.
            #expect(check.output.contains("2 ports that dockerd publishes served by no proxy: 0.0.0.0:"), "\(check.output)")
            for port in ["0.0.0.0:\(tcp)/tcp", "0.0.0.0:\(udp)/udp"] {
                #expect(check.output.contains("\(port) (no proxy: dockerd publishes it for web)"), "\(check.output)")
            }

            // Docker out of reach: said, and not a failure of its own.
            let unreachable = try await Binaries.run(bed.edshim, ["status", "--docker-host", "unix://\(bed.directory)/none.sock"], environment: bed.environment, in: bed.directory)
            #expect(unreachable.status == 0 && unreachable.output.contains("Docker at unix://\(bed.directory)/none.sock could not be asked: no Docker socket at \(bed.directory)/none.sock."), "\(unreachable.output)")
            // Not allowed to use Docker's socket: says what to do.
            chmod(bed.directory, 0o755)
            let stranger = try await Binaries.run(try SystemExecutables.setpriv(), ["--reuid=65534", "--regid=65534", "--clear-groups", bed.edshim, "status", "--docker-host", docker.host], environment: bed.environment, in: bed.directory)
            #expect(stranger.output.contains("could not be asked: no permission to use \(docker.socketPath): run as root, or as a member of its group"), "\(stranger.output)")

            // The server down: the table still shows the dark ports, and --check names them.
            await bed.stopServer()
            let serverDown = try await status(["--check"])
            #expect(serverDown.status == 1 && serverDown.output.contains("0.0.0.0:\(udp)/udp (no proxy: dockerd publishes it for web)"), "\(serverDown.output)")
            try await bed.startServer(extraArguments: ["--docker-host", docker.host])

            try await docker.run(["restart", "-t", "1", "web"])
            let again = try await status(["--check"])
            #expect(again.status == 0, "published again: \(again.output)")

            // NAME is the container's as Docker names it now: UDP rows too, and after a
            // docker rename (the server keeps the name it registered the port with).
            try await docker.run(["rename", "web", "web2"])
            let renamed = try await status([]).output
            let named = renamed.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.filter { $0.first?.hasSuffix(":\(tcp)") == true || $0.first?.hasSuffix(":\(udp)") == true }
            #expect(named.count == 4, "both twins of both ports: \(renamed)")
            #expect(named.allSatisfy { $0.count > 3 && $0[3] == "web2" }, "\(renamed)")
        }
    }
}
