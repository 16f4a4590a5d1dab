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

        var description: String { "\(count) × \(size) bytes, the last \(last)" }

        func datagrams(tag: Int) -> [[UInt8]] {
            (0..<count).map { index in
                (0..<(index == count - 1 ? last : size)).map { UInt8(truncatingIfNeeded: tag &* 97 &+ index &* 13 &+ $0) }
            }
        }
    }

    static let bursts = [
        // Combined again on the way out, as one send.
        Burst(size: 64, count: 20, last: 37),
        Burst(size: 1200, count: 30, last: 1200),
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
                    try client.sendSegmented(sent, size: burst.size, to: target)
                    let (arrived, flow) = container.receiveAll(sent.count)
                    #expect(arrived.map(\.count) == sent.map(\.count), "toward the container, \(burst)")
                    let arrivedIntact = arrived == sent
                    #expect(arrivedIntact, "toward the container, \(burst): datagrams changed or reordered")
                    guard let flow else { continue }
                    let replies = burst.datagrams(tag: tag + 50)
                    try container.sendSegmented(replies, size: burst.size, to: flow)
                    let (answered, _) = client.receiveAll(replies.count)
                    #expect(answered.map(\.count) == replies.map(\.count), "toward the client, \(burst)")
                    let answeredIntact = answered == replies
                    #expect(answeredIntact, "toward the client, \(burst): datagrams changed or reordered")
                }
            }
            #expect(!proxy.process.log.contains("refused by the kernel"), "nothing dropped: \(proxy.process.log)")
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
