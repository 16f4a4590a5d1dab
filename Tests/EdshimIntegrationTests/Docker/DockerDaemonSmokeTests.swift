import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real-dockerd fixture works end to end: a private dockerd 20.10 runs edshim as
/// its userland proxy, and a published port is served through Envoy.
///
/// Observed with Debian's dockerd 20.10.24 and `docker run -p H:80` (no host address):
/// dockerd starts two proxies, one per address family, each with argv[0] the full
/// `--userland-proxy-path` and `EDSHIM_SOCKET` from dockerd's environment:
///     <edshim> -proto tcp -host-ip 0.0.0.0 -host-port H -container-ip 10.x.y.2 -container-port 80
///     <edshim> -proto tcp -host-ip ::      -host-port H -container-ip 10.x.y.2 -container-port 80
/// (the `::` twin even though the daemon runs without `--ipv6`; no `-use-listen-fd`).
@Suite("Real dockerd fixture", .serialized)
struct DockerDaemonSmokeTests {
    @Test("a port dockerd publishes is served through Envoy right after docker run, and goes with the container")
    func publishedPortServedThroughEnvoy() async throws {
        try await withDockerTestbed { bed, docker in
            let port = try Sockets.freePort()
            try await docker.run(["run", "-d", "--name", "smoke", "-p", "\(port):80", BusyboxImage.name, "httpd", "-f", "-p", "80", "-h", "/www"])

            // Served the moment docker run returns: Envoy accepts on the host port.
            let host = SocketEndpoint(ip: .loopbackIPv4, port: port)
            close(try Sockets.connect(host))
            // The answer needs httpd inside, which may start a moment after docker run returns.
            try await docker.waitForContainerPort("smoke", port: 80)
            let response = try TestHTTP.get(host)
            #expect(response.status == 200, "\(docker.logTail())")
            #expect(response.body == BusyboxImage.indexHTML)
            #expect(response.servedByEnvoy, "the request went through Envoy")

            let proxies = docker.proxies()
            let hostIPs = proxies.compactMap { argv in argv.firstIndex(of: "-host-ip").map { argv[$0 + 1] } }
            #expect(Set(hostIPs) == ["0.0.0.0", "::"], "dockerd \(docker.version) started: \(proxies)")
            #expect(proxies.allSatisfy { $0.first == docker.edshim })
            let containerIP = try await docker.containerIP("smoke")
            #expect(try bed.clusters()["unknown-\(port)"] == ["\(containerIP):80"])
            #expect(try bed.listeners().values.filter { $0.hasSuffix(":\(port)") }.count == 2)

            try await docker.run(["rm", "-f", "smoke"])
            try await bed.eventually("Envoy drops the listeners of port \(port)", timeout: .seconds(20)) {
                try bed.listeners().values.allSatisfy { !$0.hasSuffix(":\(port)") }
            }
            #expect(docker.proxies().isEmpty)
        }
    }
}
