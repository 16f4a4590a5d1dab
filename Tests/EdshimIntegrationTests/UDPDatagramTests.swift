import EdshimCore
import Foundation
import Testing

/// Datagrams through the UDP proxy, started each way dockerd (or a user) starts it,
/// over IPv4 and IPv6: whole, to the right client, from the right address.
@Suite("UDP datagrams")
struct UDPDatagramTests {
    @Test("large datagrams echo intact", arguments: UDPWay.allCases, UDPFamily.allCases)
    func largeDatagrams(way: UDPWay, family: UDPFamily) async throws {
        try await withUDPTestbed { bed, echoes in
            let (proxy, target) = try await bed.startUDPProxyToEcho(way, family, echoes: echoes)
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
            for size in [60_000, 65_507] {
                let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
                let reply = try await onThread { try UDPTestClient(family).exchange(payload, with: target) }
                #expect(reply.count == size)
                #expect(reply == payload, "a \(size)-byte datagram came back changed")
            }
            #expect(try bed.registrations().isEmpty, "UDP ports are not registered with the server")
        }
    }

    @Test("IPv6 to an IPv4 container: up to 65,507 bytes pass, a larger datagram is dropped with a log line and the flow goes on")
    func tooLargeForTheContainersFamily() async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv6, port: try Sockets.freeUDPPort())
            // dockerd maps the :: twin to the container's IPv4 address.
            let proxy = try await bed.startUDPProxy(.dockerd2010, host: host, container: echo.endpoint)
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
            let target = SocketEndpoint(ip: .loopbackIPv6, port: host.port)
            let (tooLarge, fits) = try await onThread { () -> ([UInt8]?, [UInt8]) in
                let client = try UDPTestClient(.ipv6)
                // IPv6 carries up to 65,527 bytes of UDP payload; IPv4 up to 65,507.
                try client.send([UInt8](repeating: 1, count: 65_527), to: target)
                let tooLarge = client.receive(timeout: 500)?.bytes
                return (tooLarge, try client.exchange([UInt8](repeating: 2, count: 65_507), with: target))
            }
            #expect(tooLarge == nil, "65,527 bytes cannot reach an IPv4 container")
            #expect(fits.count == 65_507, "the same flow carries the next datagram")
            let reports = proxy.process.log.split(separator: "\n").filter { $0.contains("refused by the kernel") }
            #expect(reports.count == 1 && reports.first?.contains("Message too long") == true, "the drop is logged, with its reason:\n\(proxy.process.log)")
        }
    }

    @Test("each kind of warning has its own once-a-minute throttle: a dropped datagram's report does not hide the first eviction at the flow limit, and neither repeats within the minute")
    func warningsThrottledApart() async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv6, port: try Sockets.freeUDPPort())
            let proxy = try await bed.startUDPProxy(.dockerd2010, host: host, container: echo.endpoint, maxFlows: 1)
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
            let target = SocketEndpoint(ip: .loopbackIPv6, port: host.port)
            try await onThread {
                let (a, b) = (try UDPTestClient(.ipv6), try UDPTestClient(.ipv6))
                // Too large for the IPv4 container: dropped, and reported.
                try a.send([UInt8](repeating: 1, count: 65_527), to: target)
                #expect(a.receive(timeout: 500) == nil)
                // A second client at a flow limit of 1: a's flow goes to b, and back.
                #expect(try b.exchange([2], with: target) == [2])
                #expect(try a.exchange([3], with: target) == [3])
                // Both again within the minute: held back.
                try a.send([UInt8](repeating: 4, count: 65_527), to: target)
                #expect(a.receive(timeout: 500) == nil)
                #expect(try b.exchange([5], with: target) == [5])
            }
            let lines = proxy.process.log.split(separator: "\n")
            #expect(lines.filter { $0.contains("refused by the kernel") }.count == 1, "one report of the drops:\n\(proxy.process.log)")
            #expect(lines.filter { $0.contains("flow limit (1) reached") }.count == 1, "one report of the evictions, not hidden by the drop's:\n\(proxy.process.log)")
        }
    }

    @Test("a burst of datagrams of mixed sizes comes back whole and in order", arguments: UDPWay.allCases, UDPFamily.allCases)
    func burst(way: UDPWay, family: UDPFamily) async throws {
        try await withUDPTestbed { bed, echoes in
            let (proxy, target) = try await bed.startUDPProxyToEcho(way, family, echoes: echoes)
            #expect(proxy.isReady)
            // Runs of equal sizes (sent on as one segmented send), shorter ones closing a
            // run, sizes on both sides of the segmentation limit, an empty datagram.
            let sizes = [64, 64, 64, 64, 32, 64, 64, 1200, 1200, 1201, 1201, 0, 500, 500, 500, 499, 9000, 64, 64, 64]
            let burst = sizes.enumerated().map { index, size in (0..<size).map { UInt8(truncatingIfNeeded: index &* 37 &+ $0) } }
            let replies = try await onThread { () -> [[UInt8]] in
                let client = try UDPTestClient(family)
                for datagram in burst { try client.send(datagram, to: target) }
                var replies: [[UInt8]] = []
                while replies.count < burst.count, let reply = client.receive(timeout: 2000) { replies.append(reply.bytes) }
                return replies
            }
            #expect(replies.map(\.count) == sizes)
            #expect(replies == burst, "the burst came back changed or reordered")
        }
    }

    @Test("a burst of 16 datagrams of 60,000 bytes comes back whole: the flow's socket holds the replies until the proxy reads them", arguments: UDPWay.allCases, UDPFamily.allCases)
    func burstOfLargeDatagrams(way: UDPWay, family: UDPFamily) async throws {
        try await withUDPTestbed { bed, echoes in
            let (proxy, target) = try await bed.startUDPProxyToEcho(way, family, echoes: echoes)
            #expect(proxy.isReady)
            let burst = (0..<16).map { index in (0..<60_000).map { UInt8(truncatingIfNeeded: index &* 131 &+ $0 / 7) } }
            let replies = try await onThread { () -> [[UInt8]] in
                let client = try UDPTestClient(family)
                // One datagram first: the flow exists before the burst.
                _ = try client.exchange(Array("hello".utf8), with: target)
                for datagram in burst { try client.send(datagram, to: target) }
                var replies: [[UInt8]] = []
                while replies.count < burst.count, let reply = client.receive(timeout: 2000) { replies.append(reply.bytes) }
                return replies
            }
            #expect(replies.count == burst.count, "\(burst.count - replies.count) of \(burst.count) replies lost")
            #expect(replies == burst, "the burst came back changed or reordered")
        }
    }

    @Test("concurrent clients each get only their own replies", arguments: UDPWay.allCases, UDPFamily.allCases)
    func concurrentClients(way: UDPWay, family: UDPFamily) async throws {
        try await withUDPTestbed { bed, echoes in
            let (proxy, target) = try await bed.startUDPProxyToEcho(way, family, echoes: echoes)
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription)")
            let clients = 24
            let rounds = 40
            let foreign = try await withThrowingTaskGroup(of: [String].self) { group in
                for client in 0..<clients {
                    group.addTask {
                        try await onThread { try Self.talk(as: client, rounds: rounds, family: family, to: target) }
                    }
                }
                var all: [String] = []
                for try await replies in group { all += replies }
                return all
            }
            #expect(foreign.isEmpty, "replies delivered to the wrong client: \(foreign.prefix(5))")
        }
    }

    /// Sends `rounds` numbered datagrams one at a time; returns any reply meant for
    /// another client of this test (a late duplicate of its own is fine).
    private static func talk(as client: Int, rounds: Int, family: UDPFamily, to target: SocketEndpoint) throws -> [String] {
        let socket = try UDPTestClient(family)
        var foreign: [String] = []
        for round in 0..<rounds {
            let message = "client-\(client)-round-\(round)"
            var answered = false
            for _ in 0..<3 where !answered {
                try socket.send(Array(message.utf8), to: target)
                while let reply = socket.receive(timeout: 2000) {
                    let text = String(decoding: reply.bytes, as: UTF8.self)
                    if text == message {
                        answered = true
                        break
                    }
                    if text.hasPrefix("client-"), !text.hasPrefix("client-\(client)-round-") { foreign.append("\(client) got \(text)") }
                }
            }
            guard answered else { throw TestFailure("client \(client): no answer to \(message)") }
        }
        return foreign
    }

    @Test("bound to 0.0.0.0, a reply leaves from the address the client sent to", arguments: UDPWay.allCases)
    func replySourceIPv4(way: UDPWay) async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
            let proxy = try await bed.startUDPProxy(way, host: host, container: echo.endpoint)
            #expect(proxy.isReady)
            // All of 127/8 is this host's: 127.0.0.2 is a second address without
            // touching the network configuration. The client's own source is 127.0.0.1,
            // so a reply the kernel addressed by route would come from 127.0.0.1.
            for address in ["127.0.0.2", "127.0.0.1", "127.0.0.2"] {
                let target = SocketEndpoint(ip: IPAddress(address) ?? .loopbackIPv4, port: host.port)
                let reply = try await onThread { () -> SocketEndpoint? in
                    let client = try UDPTestClient(.ipv4, bindTo: .loopbackIPv4)
                    return try client.replySource(of: Array("hello".utf8), to: target)
                }
                #expect(reply == target, "sent to \(target), answered from \(String(describing: reply))")
            }
        }
    }

    @Test("bound to 0.0.0.0, one client socket sending to three addresses of the host before it reads gets each reply from the address its request went to", arguments: UDPWay.allCases)
    func replySourcePerDestination(way: UDPWay) async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freeUDPPort())
            let proxy = try await bed.startUDPProxy(way, host: host, container: echo.endpoint)
            #expect(proxy.isReady)
            let targets = ["127.0.0.1", "127.0.0.2", "127.0.0.3"].map { SocketEndpoint(ip: IPAddress($0) ?? .loopbackIPv4, port: host.port) }
            let replies = try await onThread { () -> [String: SocketEndpoint] in
                let client = try UDPTestClient(.ipv4, bindTo: .loopbackIPv4)
                for target in targets { try client.send(Array(target.description.utf8), to: target) }
                var replies: [String: SocketEndpoint] = [:]
                while replies.count < targets.count, let reply = client.receive() {
                    replies[String(decoding: reply.bytes, as: UTF8.self)] = reply.from
                }
                return replies
            }
            for target in targets {
                #expect(replies[target.description] == target, "the request to \(target) answered from \(String(describing: replies[target.description])): \(replies)")
            }
        }
    }

    @Test("bound to ::, a reply leaves from the address the client sent to", .needsPrivateNetworkNamespaces, arguments: UDPWay.allCases)
    func replySourceIPv6(way: UDPWay) async throws {
        try await withUDPTestbed { bed, echoes in
            // ::1 may be the host's only IPv6 address, and a reply from it would prove
            // nothing: the test gets a namespace of its own, where fd00:ed5::2 is a
            // second address on lo. Echo server, proxy and client all run in there.
            guard let second = IPAddress("fd00:ed5::2") else { throw TestFailure("fd00:ed5::2 did not parse") }
            try await withPrivateNetworkNamespace(loopbackAddresses: ["\(second)/128"], logDirectory: bed.directory) { namespace in
                let echo = try await echoes.start(in: namespace, on: .loopbackIPv6)
                // The namespace is the test's alone: any port is free in it.
                let host = SocketEndpoint(ip: .anyIPv6, port: 5353)
                let proxy = try await bed.startUDPProxy(way, host: host, container: echo.endpoint, in: namespace)
                #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
                // The client's own source is ::1, so a reply the kernel addressed by
                // route would come from ::1 (the source address rule "prefer the
                // destination itself").
                for address in [second, .loopbackIPv6, second] {
                    let target = SocketEndpoint(ip: address, port: host.port)
                    let reply = try await namespace.run { () -> SocketEndpoint? in
                        let client = try UDPTestClient(.ipv6, bindTo: .loopbackIPv6)
                        return try client.replySource(of: Array("hello".utf8), to: target)
                    }
                    #expect(reply == target, "sent to \(target), answered from \(String(describing: reply))")
                }
            }
        }
    }

    @Test("on a dual-stack :: socket from dockerd, IPv4 clients get replies from the address they sent to, also when that was a broadcast")
    func dualStackSocket() async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv6, port: try Sockets.freeUDPPort())
            let socket = try Sockets.dockerdBoundUDPSocket(host, dualStack: true)
            let arguments = ShimArguments(proto: .udp, host: host, container: echo.endpoint).commandLine
            let proxy = try await bed.spawnShim(arguments, style: .dockerd28, host: host, listenSocket: socket)
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")

            let answered = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
            for target in [answered, SocketEndpoint(ip: try #require(IPAddress("127.255.255.255")), port: host.port)] {
                let reply = try await onThread { () -> (bytes: [UInt8], from: SocketEndpoint)? in
                    let client = try UDPTestClient(.ipv4, bindTo: .loopbackIPv4)
                    var one: Int32 = 1
                    setsockopt(client.fd, SOL_SOCKET, SO_BROADCAST, &one, 4)
                    try client.send(Array("hello".utf8), to: target)
                    return client.receive()
                }
                #expect(reply?.bytes == Array("hello".utf8), "sent to \(target): \(proxy.process.log)")
                #expect(reply?.from == answered, "sent to \(target), answered from \(String(describing: reply?.from))")
            }
        }
    }

    @Test("a socket from dockerd with IP_RECVERR (IPV6_RECVERR) on: the ICMP error for a reply to a client gone meanwhile costs the proxy no CPU, and the port goes on", arguments: UDPFamily.allCases)
    func socketWithErrorQueue(_ family: UDPFamily) async throws {
        try await withUDPTestbed { bed, _ in
            // The container is a plain socket of the test's, which answers when told to:
            // after the client is gone.
            let container = try UDPTestClient(family, bindTo: family.loopback)
            let host = SocketEndpoint(ip: family.any, port: try Sockets.freeUDPPort())
            let socket = try Sockets.dockerdBoundUDPSocket(host)
            var one: Int32 = 1
            let (level, option) = family == .ipv4 ? (Int32(IPPROTO_IP), IP_RECVERR) : (Int32(IPPROTO_IPV6), IPV6_RECVERR)
            #expect(setsockopt(socket, level, option, &one, 4) == 0)
            let arguments = ShimArguments(proto: .udp, host: host, container: try #require(container.local)).commandLine
            let proxy = try await bed.spawnShim(arguments, style: .dockerd28, host: host, listenSocket: socket)
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
            let target = SocketEndpoint(ip: family.loopback, port: host.port)

            // The reply reaches a port nobody holds any more: the kernel answers it with
            // ICMP port unreachable, which the proxy's socket queues.
            let flow = try await onThread { () -> SocketEndpoint? in
                let gone = try UDPTestClient(family)
                try gone.send(Array("bye".utf8), to: target)
                return container.receive()?.from
            }
            try await onThread { try container.send(Array("late".utf8), to: try #require(flow)) }
            try await Task.sleep(for: .milliseconds(200))
            let before = try Sockets.cpuTicks(of: proxy.process.pid)
            try await Task.sleep(for: .seconds(1))
            let used = try Sockets.cpuTicks(of: proxy.process.pid) - before
            #expect(used < 10, "the proxy used \(used) of 100 ticks of CPU in the second after the ICMP error")

            let client = try UDPTestClient(family)
            try client.send(Array("hello".utf8), to: target)
            let request = try await onThread { container.receive() }
            #expect(request?.bytes == Array("hello".utf8))
            try container.send(Array("hello".utf8), to: try #require(request?.from))
            #expect(try await onThread { client.receive()?.bytes } == Array("hello".utf8))
        }
    }

    @Test("the IPv4 and IPv6 twins dockerd starts for one port work side by side; one address works alone")
    func twinsAndSpecificAddress() async throws {
        try await withUDPTestbed { bed, echoes in
            let echo = try echoes.start(on: .loopbackIPv4)
            let port = try Sockets.freeUDPPort()
            let v4 = try await bed.startUDPProxy(.dockerd2010, host: SocketEndpoint(ip: .anyIPv4, port: port), container: echo.endpoint)
            // dockerd maps the IPv6 twin to the container's IPv4 address.
            let v6 = try await bed.startUDPProxy(.dockerd2010, host: SocketEndpoint(ip: .anyIPv6, port: port), container: echo.endpoint)
            #expect(v4.isReady && v6.isReady, "reported \(v4.status.debugDescription) and \(v6.status.debugDescription)")
            for family in UDPFamily.allCases {
                let target = SocketEndpoint(ip: family.loopback, port: port)
                let reply = try await onThread { try UDPTestClient(family).exchange(Array("twin".utf8), with: target) }
                #expect(reply == Array("twin".utf8))
            }
            let single = SocketEndpoint(ip: .loopbackIPv4, port: try Sockets.freeUDPPort())
            let proxy = try await bed.startUDPProxy(.dockerd2010, host: single, container: echo.endpoint)
            #expect(proxy.isReady)
            let reply = try await onThread { () -> SocketEndpoint? in
                let client = try UDPTestClient(.ipv4)
                return try client.replySource(of: Array("one".utf8), to: single)
            }
            #expect(reply == single)
        }
    }
}
