#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address, parsed strictly and printed in canonical form.
///
/// Canonical printing matters: the registry keys on the host address, so `::`,
/// `0::0` and `0:0:0:0:0:0:0:0` must all be the same key.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The network-order bytes: 4 for IPv4, 16 for IPv6.
    public let bytes: [UInt8]

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text; `nil` for anything else
    /// (host names, zones, brackets, CIDR suffixes are not addresses).
    public init?(_ text: String) {
        // inet_pton reads a C string: text past a NUL would go unseen.
        guard !text.utf8.contains(0) else { return nil }
        if text.contains(":") {
            var storage = in6_addr()
            guard inet_pton(AF_INET6, text, &storage) == 1 else { return nil }
            self.bytes = withUnsafeBytes(of: &storage) { Array($0) }
        } else {
            var storage = in_addr()
            guard inet_pton(AF_INET, text, &storage) == 1 else { return nil }
            self.bytes = withUnsafeBytes(of: &storage) { Array($0) }
        }
    }

    /// Wraps raw network-order bytes (4 or 16 of them).
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    private init(validBytes: [UInt8]) {
        self.bytes = validBytes
    }

    /// The unspecified IPv4 address, `0.0.0.0`.
    public static let anyIPv4 = IPAddress(validBytes: [0, 0, 0, 0])
    /// The unspecified IPv6 address, `::`.
    public static let anyIPv6 = IPAddress(validBytes: [UInt8](repeating: 0, count: 16))
    /// `127.0.0.1`.
    public static let loopbackIPv4 = IPAddress(validBytes: [127, 0, 0, 1])
    /// `::1`.
    public static let loopbackIPv6 = IPAddress(validBytes: [UInt8](repeating: 0, count: 15) + [1])

    /// True for IPv6 addresses (including IPv4-mapped ones).
    public var isIPv6: Bool { bytes.count == 16 }

    /// The IPv4 address an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) stands for;
    /// nil for any other address.
    public var mappedIPv4: IPAddress? {
        guard isIPv6, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff else { return nil }
        return IPAddress(validBytes: Array(bytes[12...]))
    }

    /// True for 127.0.0.0/8 and `::1`: only this host reaches it.
    public var isLoopback: Bool { isIPv6 ? self == .loopbackIPv6 : bytes[0] == 127 }

    /// True for `0.0.0.0` and `::`: the address means "every address of the host".
    public var isUnspecified: Bool { bytes.allSatisfy { $0 == 0 } }

    /// The address to dial to reach a listener bound here from this host:
    /// loopback for the unspecified addresses, the address itself otherwise.
    public var dialable: IPAddress {
        guard isUnspecified else { return self }
        return isIPv6 ? .loopbackIPv6 : .loopbackIPv4
    }

    /// Canonical text: dotted quad, or RFC 5952 IPv6 (`::`, `::1`, `fd00::2`).
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = isIPv6 ? AF_INET6 : AF_INET
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil
        }
        guard ok else { return "invalid" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// IPv4 sorts before IPv6; within a family, by bytes.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.bytes.count != rhs.bytes.count { return lhs.bytes.count < rhs.bytes.count }
        return lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}
