import EdshimCore
import Foundation
import Testing

/// Bursts that the kernel hands the proxy as one receive (UDP GRO): a client sending
/// with UDP GSO, as QUIC stacks do, and a container replying the same way. Each
/// datagram of a burst must arrive as it was sent, never two run together.
@Suite("UDP coalesced bursts")
struct UDPCoalescingTests {
    /// A burst sent as one UDP GSO send: `count` datagrams of `size` bytes, the last
    /// one `last` bytes.
    struct Burst: CustomStringConvertible {
        let size: Int
        let count: Int
        let last: Int
        /// Datagrams of `size` bytes sent one by one right after the burst: the proxy
        /// may read them with it, and send them on with it.
        var trailing = 0

        var description: String { "\(count) × \(size) bytes, the last \(last)" + (trailing > 0 ? ", then \(trailing) single" : "") }

        func datagrams(tag: Int) -> [[UInt8]] {
            (0..<(count + trailing)).map { index in
                (0..<(index == count - 1 ? last : size)).map { UInt8(truncatingIfNeeded: tag &* 97 &+ index &* 13 &+ $0) }
            }
        }

        /// Sends the burst from `client` to `target`, and the single datagrams after it.
        func send(_ datagrams: [[UInt8]], from client: UDPTestClient, to target: SocketEndpoint) throws {
            try client.sendSegmented(Array(datagrams[..<count]), size: size, to: target)
            for single in datagrams[count...] { try client.send(single, to: target) }
        }
    }

    static let bursts = [
        // Combined again on the way out, as one send.
        Burst(size: 64, count: 20, last: 37),
        Burst(size: 1200, count: 30, last: 1200),
        Burst(size: 100, count: 10, last: 100, trailing: 6),
        // More datagrams than one send may carry (64): sent in runs.
        Burst(size: 64, count: 100, last: 64),
        // Larger than the proxy combines (1,200 bytes): sent one by one.
        Burst(size: 1400, count: 5, last: 900),
        Burst(size: 8000, count: 8, last: 8000),
    ]

    @Test("a client's GSO bursts reach the container datagram by datagram, and the container's GSO bursts reach the client the same way", arguments: UDPWay.allCases, UDPFamily.allCases)
    func burstsKeepTheirDatagrams(way: UDPWay, family: UDPFamily) async throws {
        try await withUDPTestbed { bed, _ in
            let container = try UDPTestClient(family, bindTo: family.loopback)
            let containerEndpoint = try #require(container.local)
            let host = SocketEndpoint(ip: family.any, port: try Sockets.freeUDPPort())
            let proxy = try await bed.startUDPProxy(way, host: host, container: containerEndpoint)
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
            let target = SocketEndpoint(ip: family.loopback, port: host.port)
            try await onThread {
                let client = try UDPTestClient(family)
                for (tag, burst) in Self.bursts.enumerated() {
                    let sent = burst.datagrams(tag: tag)
                    try burst.send(sent, from: client, to: target)
                    let (arrived, flow) = container.receiveAll(sent.count)
                    #expect(arrived.map(\.count) == sent.map(\.count), "toward the container, \(burst)")
                    let arrivedIntact = arrived == sent
                    #expect(arrivedIntact, "toward the container, \(burst): datagrams changed or reordered")
                    guard let flow else { continue }
                    let replies = burst.datagrams(tag: tag + 50)
                    try burst.send(replies, from: container, to: flow)
                    let (answered, _) = client.receiveAll(replies.count)
                    #expect(answered.map(\.count) == replies.map(\.count), "toward the client, \(burst)")
                    let answeredIntact = answered == replies
                    #expect(answeredIntact, "toward the client, \(burst): datagrams changed or reordered")
                }
            }
            #expect(!proxy.process.log.contains("refused by the kernel"), "nothing dropped: \(proxy.process.log)")
        }
    }

    @Test("where the route's MTU is below a combined send's datagram size, the datagrams go one by one, fragmented, and none is dropped", .needsPrivateNetworkNamespaces)
    func routeMTUBelowTheSegmentSize() async throws {
        try await withUDPTestbed { bed, _ in
            try await withPrivateNetworkNamespace(loopbackAddresses: [], logDirectory: bed.directory) { namespace in
                // 1,200-byte datagrams are combined; on a 1,100-byte MTU the kernel
                // refuses such a send (EMSGSIZE) and fragments the datagrams sent alone.
                try await namespace.check(try SystemExecutables.ip(), ["link", "set", "lo", "mtu", "1100"], logDirectory: bed.directory)
                let container = try await namespace.run { try UDPTestClient(.ipv4, bindTo: .loopbackIPv4) }
                let client = try await namespace.run { try UDPTestClient(.ipv4, bindTo: .loopbackIPv4) }
                let host = SocketEndpoint(ip: .anyIPv4, port: 5353)
                let proxy = try await bed.startUDPProxy(.dockerd2010, host: host, container: try #require(container.local), in: namespace)
                #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
                let target = SocketEndpoint(ip: .loopbackIPv4, port: host.port)
                try client.send(Array("hello".utf8), to: target)
                let flow = try #require(container.receive()?.from, "the flow's first datagram")
                let burst = Burst(size: 1200, count: 1, last: 1200, trailing: 19)
                for (tag, toContainer) in [(1, true), (2, false)] {
                    let datagrams = burst.datagrams(tag: tag)
                    // Sent while the proxy is stopped, so that it reads them in one batch
                    // and combines them.
                    proxy.process.signal(SIGSTOP)
                    for datagram in datagrams {
                        if toContainer { try client.send(datagram, to: target) } else { try container.send(datagram, to: flow) }
                    }
                    proxy.process.signal(SIGCONT)
                    let arrived = try await onThread { (toContainer ? container : client).receiveAll(datagrams.count).datagrams }
                    let intact = arrived == datagrams
                    #expect(intact, "\(toContainer ? "toward the container" : "toward the client"): \(arrived.map(\.count)):\n\(proxy.process.log)")
                }
                #expect(!proxy.process.log.contains("dropped"), "\(proxy.process.log)")
            }
        }
    }

    @Test("an IPv6 client's GSO burst of 65,527 bytes to an IPv4 container (more than one IPv4 send carries) arrives datagram by datagram")
    func burstLargerThanIPv4Carries() async throws {
        try await withUDPTestbed { bed, _ in
            let container = try UDPTestClient(.ipv4, bindTo: .loopbackIPv4)
            let host = SocketEndpoint(ip: .anyIPv6, port: try Sockets.freeUDPPort())
            let proxy = try await bed.startUDPProxy(.dockerd2010, host: host, container: try #require(container.local))
            #expect(proxy.isReady, "reported \(proxy.status.debugDescription): \(proxy.process.log)")
            let burst = Burst(size: 1200, count: 55, last: 65_527 - 54 * 1200)
            let sent = burst.datagrams(tag: 7)
            let arrived = try await onThread { () -> [[UInt8]] in
                let client = try UDPTestClient(.ipv6)
                try burst.send(sent, from: client, to: SocketEndpoint(ip: .loopbackIPv6, port: host.port))
                return container.receiveAll(sent.count).datagrams
            }
            #expect(arrived.map(\.count) == sent.map(\.count))
            let intact = arrived == sent
            #expect(intact, "datagrams changed or reordered")
            #expect(!proxy.process.log.contains("dropped"), "\(proxy.process.log)")
        }
    }
}

extension UDPTestClient {
    /// Sends `datagrams` (all `size` bytes but the last) as one UDP GSO send: one
    /// buffer the kernel cuts every `size` bytes.
    func sendSegmented(_ datagrams: [[UInt8]], size: Int, to target: SocketEndpoint) throws {
        var segment = Int32(size)
        // SOL_UDP, UDP_SEGMENT (Linux 4.18).
        guard setsockopt(fd, 17, 103, &segment, 4) == 0 else { throw TestFailure("UDP_SEGMENT: \(String(cString: strerror(errno)))") }
        defer {
            var none: Int32 = 0
            setsockopt(fd, 17, 103, &none, 4)
        }
        try send(Array(datagrams.joined()), to: target)
    }

    /// Up to `count` datagrams, each waited for for up to 2 s, and who sent the first.
    func receiveAll(_ count: Int) -> (datagrams: [[UInt8]], from: SocketEndpoint?) {
        var datagrams: [[UInt8]] = []
        var sender: SocketEndpoint?
        while datagrams.count < count, let next = receive() {
            datagrams.append(next.bytes)
            sender = sender ?? next.from
        }
        return (datagrams, sender)
    }
}
