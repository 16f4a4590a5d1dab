import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The flows of the UDP proxy, seen from outside: the echo server's `whoami` tells
/// which upstream socket (so which flow) carried a client's datagram, and the proxy's
/// open sockets in /proc tell how many flows it holds.
@Suite("UDP flows")
struct UDPFlowTests {
    @Test("a flow idle for the timeout closes; a new datagram opens a new one", arguments: UDPWay.allCases, UDPFamily.allCases)
    func idleExpiry(way: UDPWay, family: UDPFamily) async throws {
        try await withUDPTestbed { bed, echoes in
            let (proxy, target) = try await bed.startUDPProxyToEcho(way, family, echoes: echoes, idleTimeout: "1s")
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription)")
            let pid = proxy.process.pid
            let idleSockets = Sockets.openSockets(of: pid)
            let client = try UDPTestClient(family)

            // Both exchanges and the count on one thread, well within the idle timeout
            // even where the test's async threads are busy.
            let (first, again, flows) = try await onThread {
                (try client.upstreamAddress(via: target), try client.upstreamAddress(via: target), Sockets.openSockets(of: pid))
            }
            #expect(again == first, "a busy flow stays")
            #expect(flows == idleSockets + 1, "one flow, one upstream socket")

            try await bed.eventually("the idle flow closes", timeout: .seconds(10)) { Sockets.openSockets(of: pid) == idleSockets }
            let second = try await onThread { try client.upstreamAddress(via: target) }
            #expect(second != first, "after expiry the client gets a new flow (new upstream socket)")
        }
    }

    @Test("at the flow limit, a new client evicts the least recently used", arguments: UDPWay.allCases, UDPFamily.allCases)
    func leastRecentlyUsedEviction(way: UDPWay, family: UDPFamily) async throws {
        try await withUDPTestbed { bed, echoes in
            let (proxy, target) = try await bed.startUDPProxyToEcho(way, family, echoes: echoes, maxFlows: 2)
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription)")
            let pid = proxy.process.pid
            let idleSockets = Sockets.openSockets(of: pid)
            let (a, b, c) = (try UDPTestClient(family), try UDPTestClient(family), try UDPTestClient(family))

            let a1 = try await onThread { try a.upstreamAddress(via: target) }
            let b1 = try await onThread { try b.upstreamAddress(via: target) }
            #expect(try await onThread { try a.upstreamAddress(via: target) } == a1, "a is now the most recently used")
            _ = try await onThread { try c.upstreamAddress(via: target) }
            #expect(Sockets.openSockets(of: pid) == idleSockets + 2, "never more than --max-flows flows")
            #expect(try await onThread { try a.upstreamAddress(via: target) } == a1, "a kept its flow")
            let b2 = try await onThread { try b.upstreamAddress(via: target) }
            #expect(b2 != b1, "b, the least recently used, was evicted for c")
            #expect(Sockets.openSockets(of: pid) == idleSockets + 2)

            // Two evictions (b for c, then c for b): the operator hears of the first,
            // and of the rest in a minute, never once per eviction.
            let reports = proxy.process.log.split(separator: "\n").filter { $0.contains("flow limit (2) reached") }
            #expect(reports.count == 1, "one line for two evictions:\n\(proxy.process.log)")
            #expect(reports.first?.contains("EDSHIM_UDP_MAX_FLOWS or --max-flows") == true, "it says what to raise")
        }
    }

    @Test("under dockerd's soft open-files limit (1024), the proxy raises its own toward the flow limit, up to the hard limit it inherits")
    func raisesItsSoftDescriptorLimit() async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
            let arguments = ShimArguments(proto: .udp, host: host, container: echo.endpoint).commandLine
            // dockerd's proxies inherit a soft limit of 1024; the hard one is higher.
            let proxy = try await bed.spawnShim(arguments, environment: [UDPProxyOptions.maxFlowsEnvironmentVariable: "3000"], host: host, launcher: [try SystemExecutables.prlimit(), "--nofile=1024:8192", "--"])
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
            let limits = Sockets.procFile("/proc/\(proxy.process.pid)/limits")
            let line = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }.map(String.init) ?? ""
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            // "Max open files  SOFT  HARD  files": room for 3,000 flows and the proxy's own.
            #expect(fields.count >= 5 && fields[3] == "3064" && fields[4] == "8192", "\(line)")
            let reply = try await onThread { try UDPTestClient(.ipv4).exchange(Array("hello".utf8), with: SocketEndpoint(ip: .loopbackIPv4, port: host.port)) }
            #expect(reply == Array("hello".utf8))
        }
    }

    @Test("out of file descriptors, a new client takes the least recently used flow, and the log says what to raise")
    func descriptorExhaustion() async throws {
        try await withUDPTestbed { bed, echoes in
            let (proxy, target) = try await bed.startUDPProxyToEcho(.dockerd2010, .ipv4, echoes: echoes)
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription)")
            let pid = proxy.process.pid
            let idleSockets = Sockets.openSockets(of: pid)
            // As if dockerd's open-files limit were nearly used up: room for two flows.
            try Sockets.limitDescriptors(of: pid, toFree: 2)

            for round in 0..<2 {
                for (index, client) in try (0..<4).map({ _ in try UDPTestClient(.ipv4) }).enumerated() {
                    let message = Array("client \(index) of round \(round)".utf8)
                    let reply = try await onThread { try client.exchange(message, with: target) }
                    #expect(reply == message, "client \(index) of round \(round) is served")
                }
            }
            #expect(Sockets.openSockets(of: pid) == idleSockets + 2, "two flows, the descriptors there are room for")
            let reports = proxy.process.log.split(separator: "\n").filter { $0.contains("out of file descriptors at 2 flows") }
            #expect(reports.count == 1, "six evictions, one line:\n\(proxy.process.log)")
            #expect(reports.first?.contains("LimitNOFILE=") == true, "it says what to raise")
        }
    }

    @Test("out of local ports, a new client takes the least recently used flow, and the log says what to change", .needsPrivateNetworkNamespaces, arguments: UDPWay.allCases)
    func localPortExhaustion(way: UDPWay) async throws {
        try await withUDPTestbed { bed, echoes in
            // The ephemeral range is the network namespace's: the test narrows it in one
            // of its own to four ports, where the flows' sockets take theirs.
            try await withPrivateNetworkNamespace(loopbackAddresses: [], logDirectory: bed.directory) { namespace in
                let echo = try await echoes.start(in: namespace, on: .loopbackIPv4, port: 7)
                let host = SocketEndpoint(ip: .anyIPv4, port: 5353)
                let proxy = try await bed.startUDPProxy(way, host: host, container: echo.endpoint, in: namespace)
                #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
                try await namespace.narrowEphemeralPorts(to: 40000...40003)

                let target = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
                for round in 0..<2 {
                    for client in 0..<6 {
                        let message = Array("client \(client) of round \(round)".utf8)
                        let reply = try await namespace.run {
                            try UDPTestClient(.ipv4, bindTo: .loopbackIPv4, port: UInt16(30_000 + client)).exchange(message, with: target)
                        }
                        #expect(reply == message, "client \(client) of round \(round) is served")
                    }
                }
                let reports = proxy.process.log.split(separator: "\n").filter { $0.contains("out of local ports at 4 flows") }
                #expect(reports.count == 1, "eight evictions, one line:\n\(proxy.process.log)")
                #expect(reports.first?.contains("ip_local_port_range") == true, "it says what to change")
                // The seven held back are counted when the proxy stops, not lost.
                proxy.process.signal(SIGINT)
                #expect(await proxy.process.waitForExit(timeout: .seconds(2)) == 0)
                let counted = proxy.process.log.split(separator: "\n").filter { $0.contains("out of local ports at 4 flows") && $0.contains(": 7 more since the last report") }
                #expect(counted.count == 1, "\(proxy.process.log)")
            }
        }
    }

    @Test("out of local ports before its first flow (other programs' sockets hold them all), the log says so, not EAGAIN", .needsPrivateNetworkNamespaces)
    func localPortsHeldByOthers() async throws {
        try await withUDPTestbed { bed, echoes in
            try await withPrivateNetworkNamespace(loopbackAddresses: [], logDirectory: bed.directory) { namespace in
                let echo = try await echoes.start(in: namespace, on: .loopbackIPv4, port: 7)
                let host = SocketEndpoint(ip: .anyIPv4, port: 5353)
                let proxy = try await bed.startUDPProxy(.standalone, host: host, container: echo.endpoint, in: namespace)
                #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
                try await namespace.narrowEphemeralPorts(to: 40000...40003)
                // Another program's four connected sockets take the four ports.
                let holders = try await namespace.run {
                    try (0..<4).map { _ in try Sockets.connectedUDPSocket(to: echo.endpoint) }
                }
                defer { holders.forEach { close($0) } }

                let target = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
                let reply = try await namespace.run {
                    try? UDPTestClient(.ipv4, bindTo: .loopbackIPv4, port: 30_000).exchange(Array("hello".utf8), with: target, attempts: 1, timeout: 500)
                }
                #expect(reply == nil, "no local port for a flow: the datagram is dropped")
                try await bed.eventually("the proxy logs the drop") { proxy.process.log.contains("the datagram was dropped") }
                let line = proxy.process.log.split(separator: "\n").first { $0.contains("the datagram was dropped") }.map(String.init) ?? ""
                #expect(line.contains("out of local ports: every port of net.ipv4.ip_local_port_range is in use by other programs' UDP sockets, this proxy holding no flow"), "\(proxy.process.log)")
                #expect(!line.contains("Resource temporarily unavailable"), "\(line)")
            }
        }
    }

    @Test("link-local clients with one address on two links are two flows, each answered on its own link", .needsPrivateNetworkNamespaces, arguments: UDPWay.allCases)
    func linkLocalClientsOnTwoLinks(way: UDPWay) async throws {
        try await withUDPTestbed { bed, echoes in
            try await withPrivateNetworkNamespace(loopbackAddresses: [], logDirectory: bed.directory) { namespace in
                let ip = try SystemExecutables.ip()
                // fe80::1 on two links: two hosts as far as the kernel is concerned,
                // told apart by the scope id (the interface) of their address.
                let links = ["ll0", "ll1"]
                for link in links {
                    try await namespace.check(ip, ["link", "add", link, "type", "veth", "peer", "name", link + "peer"], logDirectory: bed.directory)
                    try await namespace.check(ip, ["link", "set", link + "peer", "up"], logDirectory: bed.directory)
                    try await namespace.check(ip, ["link", "set", link, "up"], logDirectory: bed.directory)
                    try await namespace.check(ip, ["-6", "addr", "add", "fe80::1/64", "dev", link, "nodad"], logDirectory: bed.directory)
                }
                let echo = try await echoes.start(in: namespace, on: .loopbackIPv6, port: 7)
                let host = SocketEndpoint(ip: .anyIPv6, port: 5353)
                let proxy = try await bed.startUDPProxy(way, host: host, container: echo.endpoint, in: namespace)
                #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")

                let linkLocal = try #require(IPAddress("fe80::1"))
                let clients = try await namespace.run {
                    try links.map { try UDPTestClient(.ipv6, bindTo: linkLocal, port: 5000, device: $0) }
                }
                let target = SocketEndpoint(ip: linkLocal, port: host.port)
                var upstreams: [String] = []
                for (client, link) in zip(clients, links) {
                    let upstream = try await onThread { try client.upstreamAddress(via: target) }
                    upstreams.append(upstream)
                    let again = try await onThread { try client.upstreamAddress(via: target) }
                    #expect(again == upstream, "the client on \(link) keeps its flow")
                }
                #expect(Set(upstreams).count == 2, "one flow per link, not one for both: \(upstreams)")
            }
        }
    }

    @Test("with stdout and stderr on /dev/null, as dockerd starts it, the shim logs to the syslog socket")
    func logsToSyslogWhereDockerdDiscardsStderr() async throws {
        try await withUDPTestbed { bed, echoes in
            let syslog = try UnixDatagramListener(path: bed.directory + "/syslog.sock")
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
            let proxy = try await bed.spawnShim(
                ShimArguments(proto: .udp, host: host, container: echo.endpoint).commandLine,
                environment: [UDPProxyOptions.maxFlowsEnvironmentVariable: "1", "EDSHIM_SYSLOG_SOCKET": syslog.path],
                host: host,
                outputToDevNull: true
            )
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription)")
            let target = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            for index in 0..<2 {
                let message = Array("client \(index)".utf8)
                let reply = try await onThread { try UDPTestClient(.ipv4).exchange(message, with: target) }
                #expect(reply == message)
            }
            var lines: [String] = []
            while let line = syslog.receive(within: 2) {
                lines.append(line)
                if line.contains("flow limit (1) reached") { break }
            }
            let tag = "edshim[\(proxy.process.pid)]: "
            #expect(lines.first?.hasPrefix("<30>" + tag + "proxying udp 0.0.0.0:\(host.port)") == true, "facility daemon, severity info:\n\(lines.joined(separator: "\n"))")
            #expect(lines.contains { $0.hasPrefix("<28>" + tag) && $0.contains("flow limit (1) reached") }, "the eviction reaches the system log as a warning")
        }
    }

    @Test("ICMP port unreachable from the container does not end the flow", arguments: UDPWay.allCases, UDPFamily.allCases)
    func refusedKeepsFlow(way: UDPWay, family: UDPFamily) async throws {
        try await withUDPTestbed { bed, echoes in
            let containerPort = try Sockets.freeUDPPort()
            let container = SocketEndpoint(ip: family.loopback, port: containerPort)
            let host = SocketEndpoint(ip: family.any, port: try Sockets.freeUDPPort())
            let proxy = try await bed.startUDPProxy(way, host: host, container: container)
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription)")
            let target = SocketEndpoint(ip: family.loopback, port: host.port)
            let client = try UDPTestClient(family)

            // Nothing listens yet: each datagram draws an ICMP port unreachable.
            let early = try await onThread { () -> [UInt8]? in
                for _ in 0..<5 { try client.send(Array("anyone?".utf8), to: target) }
                return client.receive(timeout: 300)?.bytes
            }
            #expect(early == nil)

            let echo = try echoes.start(on: family.loopback, port: containerPort)
            let first = try await onThread { try client.upstreamAddress(via: target) }

            // The container goes away and comes back: refused in between.
            echo.stop()
            let silent = try await onThread { () -> [UInt8]? in
                for _ in 0..<5 { try client.send(Array("gone?".utf8), to: target) }
                return client.receive(timeout: 300)?.bytes
            }
            #expect(silent == nil)
            _ = try echoes.start(on: family.loopback, port: containerPort)
            let second = try await onThread { try client.upstreamAddress(via: target) }
            #expect(second == first, "the same flow (same upstream socket) carries the client after the refusals")
            #expect(!proxy.process.hasExited)
        }
    }

    @Test("a spray from 100,000 source addresses stays within the flow limit, and memory stops growing once the table is full")
    func sprayIsBounded() async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
            let limit = Self.sprayFlowLimit
            let proxy = try await bed.startUDPProxy(
                .dockerd2010, host: host, container: echo.endpoint, idleTimeout: "60s",
                maxFlows: limit
            )
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription)")
            let pid = proxy.process.pid
            let idleSockets = Sockets.openSockets(of: pid)
            let target = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            // One `sink` datagram (never answered) from each of 100,000 distinct source
            // addresses (see `UDPSpray`: 127.0.0.2 and up, explicit ports); the pacer,
            // on 127.0.0.1, holds one flow more.
            let pacer = try UDPTestClient(.ipv4, bindTo: .loopbackIPv4)
            let sources = 100_000
            let tableFull = 25_000
            let (peak, socketsWhenFull, residentWhenFull) = try await onThread { () -> (Int, Int, Int) in
                var spray = UDPSpray(to: target)
                var (peak, socketsWhenFull, residentWhenFull) = (0, 0, 0)
                while spray.sent < sources {
                    try spray.send(Array(UDPEchoServer.sink.utf8), fromNext: Self.sprayPace)
                    // The proxy reads its socket in order: its answer to the pacer means it
                    // has read every datagram sent before, and the next ones find room.
                    _ = try pacer.exchange(Array("pace".utf8), with: target)
                    guard spray.sent % Self.spraySamplingInterval == 0 else { continue }
                    let sockets = Sockets.openSockets(of: pid)
                    peak = max(peak, sockets)
                    if spray.sent == tableFull { (socketsWhenFull, residentWhenFull) = (sockets, Sockets.residentKiB(of: pid)) }
                }
                return (peak, socketsWhenFull, residentWhenFull)
            }
            let resident = Sockets.residentKiB(of: pid)

            #expect(Sockets.udpDrops(of: pid, port: host.port) == 0, "every datagram of the spray reached the proxy")
            #expect(socketsWhenFull == idleSockets + limit, "after \(tableFull) sources the table is full: \(socketsWhenFull - idleSockets) flows for a limit of \(limit)")
            #expect(peak <= idleSockets + limit, "\(peak - idleSockets) upstream sockets for a limit of \(limit)")
            // 75,000 evictions in between: a leak of 10 bytes each would be 732 KiB.
            #expect(resident - residentWhenFull < 512, "memory grew from \(residentWhenFull) KiB to \(resident) KiB after the table filled")
            let reply = try await onThread { try UDPTestClient(.ipv4).exchange(Array("still here".utf8), with: target) }
            #expect(reply == Array("still here".utf8), "a new client is served after the spray")
            // One line at the first eviction; a slow run past a minute adds one more,
            // saying how many it held back.
            let reports = proxy.process.log.split(separator: "\n").filter { $0.contains("flow limit (\(limit)) reached") }
            #expect(reports.filter { !$0.contains("since the last report") }.count == 1, "\(sources + 1 - limit) evictions, one line in the log (and one a minute):\n\(reports.joined(separator: "\n"))")
        }
    }

    /// Spray datagrams sent between two exchanges of the pacer: few enough to fit the
    /// proxy's receive buffer even where net.core.rmem_max is the default (208 KiB).
    private static let sprayPace = 200
    /// Sources between two counts of the proxy's sockets (a multiple of `sprayPace`).
    private static let spraySamplingInterval = 5_000

    /// 1,024 flows, not the default 8,192: each flow's upstream socket holds an
    /// ephemeral port, and 8,192 of them would take much of the ephemeral range from
    /// the tests running beside this one (a port they found free is taken before they
    /// bind it). The bound is what is tested: 99,000 evictions at 1,024 or about
    /// 92,000 at the default 8,192 exercise the same code.
    private static let sprayFlowLimit = 1_024
}
