@testable import EdshimCore
import Foundation
import Testing

/// The ports dockerd publishes, read from its container listing, and those of them
/// no proxy serves (`edshim status`'s `no-proxy` rows).
@Suite("Published ports from Docker's listing")
struct PublishedPortsTests {
    /// `GET /containers/json` as dockerd 20.10 answers it: a port published on both
    /// families, one on loopback only, one only exposed, one SCTP.
    static let listing = """
        [{"Id":"aaaaaaaaaaaa1111","Names":["/web"],"State":"running","Ports":[
            {"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"IP":"::","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"PrivatePort":443,"Type":"tcp"}]},
         {"Id":"bbbbbbbbbbbb2222","Names":["/dns"],"State":"paused","Ports":[
            {"IP":"127.0.0.1","PrivatePort":53,"PublicPort":5353,"Type":"udp"},
            {"IP":"0.0.0.0","PrivatePort":9,"PublicPort":9999,"Type":"sctp"}]},
         {"Id":"cccccccccccc3333","Names":["/flaky"],"State":"restarting","Ports":[
            {"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8081,"Type":"tcp"}]}]
        """

    static func key(_ proto: TransportProtocol, _ ip: String, _ port: UInt16) -> RegistrationKey {
        RegistrationKey(proto: proto, host: SocketEndpoint(ip: IPAddress(ip)!, port: port))
    }

    @Test("each published TCP or UDP port of a running or paused container, by container name; exposed-only, SCTP and a restarting container's ports left out")
    func fromTheListing() throws {
        let containers = try JSONDecoder().decode([DockerEngine.ContainerSummary].self, from: Data(Self.listing.utf8))
        let published = PublishedPorts.of(containers)
        #expect(published == [
            PublishedPort(key: Self.key(.tcp, "0.0.0.0", 8080), container: "web", containerID: "aaaaaaaaaaaa1111", containerPort: 80),
            PublishedPort(key: Self.key(.tcp, "::", 8080), container: "web", containerID: "aaaaaaaaaaaa1111", containerPort: 80),
            PublishedPort(key: Self.key(.udp, "127.0.0.1", 5353), container: "dns", containerID: "bbbbbbbbbbbb2222", containerPort: 53),
        ].sorted { $0.key < $1.key })
    }

    @Test("a published port is unproxied only when no shim or registration lists it and nothing listens (TCP) or is bound (UDP) on its address")
    func unproxied() throws {
        let containers = try JSONDecoder().decode([DockerEngine.ContainerSummary].self, from: Data(Self.listing.utf8))
        let published = PublishedPorts.of(containers)
        let v4 = Self.key(.tcp, "0.0.0.0", 8080), v6 = Self.key(.tcp, "::", 8080), dns = Self.key(.udp, "127.0.0.1", 5353)
        // Nothing at all: every one.
        #expect(PublishedPorts.unproxied(published, listed: [], listeningTCP: [], boundUDP: []).map(\.key) == [v4, v6, dns].sorted())
        // Listed by status, served by a listening socket (a docker-proxy), a bound UDP socket.
        #expect(PublishedPorts.unproxied(published, listed: [v4], listeningTCP: [v6.host], boundUDP: [dns.host]).isEmpty)
        // A UDP socket on another address, or a TCP listener on the UDP port's, does not serve it.
        #expect(PublishedPorts.unproxied(published, listed: [v4, v6], listeningTCP: [dns.host], boundUDP: [SocketEndpoint(ip: .anyIPv4, port: 5353)]).map(\.key) == [dns])
        // UDP sockets that cannot be read: no UDP port counted.
        #expect(PublishedPorts.unproxied(published, listed: [v4, v6], listeningTCP: [], boundUDP: nil).isEmpty)
    }

    @Test("no-proxy rows come last in the table with the container's name and port, explained in a line; Docker unreachable is said, not a row")
    func inTheTable() {
        let port = PublishedPort(key: Self.key(.udp, "0.0.0.0", 5353), container: "dns", containerPort: 53)
        let table = StatusReport.table([], docker: .asked(unproxied: [port]))
        let lines = table.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(table)")
        #expect(lines[1].split(separator: " ", omittingEmptySubsequences: true) == ["0.0.0.0:5353", "udp", "-:53", "dns", "-", "no-proxy", "-"], "\(table)")
        #expect(lines[2].hasPrefix("no-proxy: dockerd publishes the port") && lines[2].hasSuffix("docker restart dns publishes it again"), "\(table)")
        #expect(StatusReport.unproxiedLines([port]).map(\.line) == ["0.0.0.0:5353/udp (no proxy: dockerd publishes it for dns)"])

        // Every container with a dark port is named in the command to run.
        let more = StatusReport.table([], docker: .asked(unproxied: [
            port, PublishedPort(key: Self.key(.tcp, "127.0.0.1", 8080), container: "web", containerPort: 80), PublishedPort(key: Self.key(.tcp, "0.0.0.0", 8080), container: "dns", containerPort: 80),
        ]))
        #expect(more.hasSuffix("docker restart dns web publishes them again"), "\(more)")

        let unreachable = StatusReport.table([], docker: .unreachable(host: "unix:///nope.sock", reason: "no Docker socket at /nope.sock"))
        #expect(unreachable == "no published ports registered\nDocker at unix:///nope.sock could not be asked: no Docker socket at /nope.sock. The ports it publishes that no proxy serves are not looked for (--docker-host, or DOCKER_HOST, says where dockerd listens)")
    }
}
