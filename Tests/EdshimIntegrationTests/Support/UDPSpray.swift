import EdshimCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One datagram from each of many source addresses, all distinct: a socket bound
/// explicitly to (127.0.0.2, port), then the next port of `Sockets.sprayUDPPorts`,
/// then the same ports on 127.0.0.3, and so on through 127/8 (all of it this host's),
/// each socket closed right after its send. A port someone else holds on an address
/// is skipped. Blocking: run it on a thread of its own.
struct UDPSpray {
    private let target: SocketEndpoint
    private let ports = Sockets.sprayUDPPorts
    /// 127.0.0.2 to start with, as a host-order integer.
    private var address: UInt32 = 0x7F00_0002
    private var port: UInt16
    /// Source addresses sent from so far.
    private(set) var sent = 0

    init(to target: SocketEndpoint) {
        self.target = target
        port = ports.lowerBound
    }

    /// Sends `payload` from the next `count` source addresses.
    mutating func send(_ payload: [UInt8], fromNext count: Int) throws {
        for _ in 0..<count {
            while try !sendFromNextAddress(payload) {}
            sent += 1
        }
    }

    /// Sends `payload` from the next source address; false when it was in use.
    private mutating func sendFromNextAddress(_ payload: [UInt8]) throws -> Bool {
        let source = try nextSource()
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard source.withSocketAddress({ bind(fd, $0, $1) }) == 0 else {
            if errno == EADDRINUSE { return false }
            throw TestFailure("binding a spray source to \(source): \(String(cString: strerror(errno)))")
        }
        let count = payload.withUnsafeBytes { raw in
            target.withSocketAddress { sendto(fd, raw.baseAddress, raw.count, 0, $0, $1) }
        }
        guard count == payload.count else { throw TestFailure("sendto \(target) from \(source): \(String(cString: strerror(errno)))") }
        return true
    }

    /// The next (address, port), moving on to the next address after the last port.
    private mutating func nextSource() throws -> SocketEndpoint {
        if port == ports.upperBound {
            port = ports.lowerBound
            address += 1
        }
        guard address < 0x7FFF_FFFF else { throw TestFailure("the spray ran out of 127/8 addresses") }
        let bytes = withUnsafeBytes(of: address.bigEndian) { Array($0) }
        guard let ip = IPAddress(bytes: bytes) else { throw TestFailure("no address from \(bytes)") }
        defer { port += 1 }
        return SocketEndpoint(ip: ip, port: port)
    }
}
