import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `docker run -p PORT:5353/udp` with a real dockerd 20.10: dockerd runs edshim with
/// `-proto udp` for each address family, and edshim carries the datagrams itself —
/// no server, no Envoy.
@Suite("Real dockerd, UDP")
struct DockerUDPTests {
    @Test("a published UDP port echoes through both twins, 60,000-byte datagrams intact, with no registration; docker stop frees the port")
    func publishedUDPPort() async throws {
        try await withDockerTestbed { bed, docker in
            let port = try Sockets.freeUDPPort()
            try await docker.run(["run", "-d", "--name", "dns", "-l", "ServiceName=dns", "-p", "\(port):5353/udp", BusyboxImage.name, "sleep", "300"])
            let proxies = docker.proxies()
            #expect(proxies.count == 2, "\(proxies)")
            #expect(proxies.allSatisfy { $0.first == bed.edshim && Self.value(of: "-proto", in: $0) == "udp" }, "\(proxies)")
            #expect(Set(proxies.compactMap { Self.value(of: "-host-ip", in: $0) }) == ["0.0.0.0", "::"], "\(proxies)")

            // The busybox image has no UDP server: serve 5353 from the container's own
            // network namespace, so datagrams really cross dockerd's bridge.
            let echoes = UDPEchoServers()
            defer { echoes.stopAll() }
            _ = try await echoes.start(in: .of(try await docker.containerPID("dns")), on: .anyIPv4, port: 5353)

            let large = (0..<60_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let gateway = docker.bridge.gateway
            for family in UDPFamily.allCases {
                let target = SocketEndpoint(ip: family.loopback, port: port)
                try await onThread {
                    let client = try UDPTestClient(family)
                    #expect(try client.exchange(Array("hello".utf8), with: target) == Array("hello".utf8), "via \(target)")
                    #expect(try client.exchange(large, with: target) == large, "60,000 bytes via \(target)")
                    // As with docker-proxy, the container sees the proxy: the host's address on the bridge.
                    let seen = try client.upstreamAddress(via: target)
                    #expect(seen.hasPrefix(gateway + ":"), "the container saw \(seen)")
                }
            }
            #expect(try bed.registrations().isEmpty, "a UDP port is not registered with the server")
            #expect(try bed.listeners().isEmpty)

            try await docker.run(["stop", "-t", "1", "dns"])
            try await bed.eventually("dockerd stopped both UDP shims") { docker.proxies().isEmpty }
            #expect(Sockets.canBindUDP(SocketEndpoint(ip: .anyIPv4, port: port)), "the port is free again")
        }
    }

    /// The value after `flag` in a Go-style command line (`-flag value`).
    static func value(of flag: String, in argv: [String]) -> String? {
        argv.firstIndex(of: flag).flatMap { argv.index(after: $0) < argv.endIndex ? argv[argv.index(after: $0)] : nil }
    }
}
