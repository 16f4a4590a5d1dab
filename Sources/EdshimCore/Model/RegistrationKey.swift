/// What identifies a published port: protocol, host address and host port.
/// A new registration for a key replaces the old one.
public struct RegistrationKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// tcp or udp.
    public var proto: TransportProtocol
    /// The host address and port.
    public var host: SocketEndpoint

    /// Creates a key.
    public init(proto: TransportProtocol, host: SocketEndpoint) {
        self.proto = proto
        self.host = host
    }

    /// `tcp 0.0.0.0:8080`.
    public var description: String { "\(proto.rawValue) \(host)" }

    /// True when both keys could not be bound at once: same protocol, port and
    /// address family, and either the same address or one of them unspecified.
    /// (`0.0.0.0:80` and `127.0.0.1:80` overlap; `0.0.0.0:80` and `[::]:80` do not,
    /// because edshim's IPv6 listeners are v6-only.)
    public func overlaps(_ other: RegistrationKey) -> Bool {
        proto == other.proto && host.bindConflicts(with: other.host)
    }

    /// Orders by host address, port, then protocol, so listings read naturally.
    public static func < (lhs: RegistrationKey, rhs: RegistrationKey) -> Bool {
        (lhs.host, lhs.proto) < (rhs.host, rhs.proto)
    }
}
