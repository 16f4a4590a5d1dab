/// An IP address and a port: where a listener binds, or where a container serves.
public struct SocketEndpoint: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The address.
    public var ip: IPAddress
    /// The port, 1–65535.
    public var port: UInt16

    /// Creates an endpoint.
    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// `1.2.3.4:80` or `[::1]:80`, the form Go and Envoy print.
    public var description: String {
        ip.isIPv6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    /// True when sockets on both endpoints cannot listen at once: same port and
    /// family, and the same address or one of them unspecified. Families never
    /// conflict, because edshim's IPv6 listeners are v6-only.
    public func bindConflicts(with other: SocketEndpoint) -> Bool {
        guard port == other.port, ip.isIPv6 == other.ip.isIPv6 else { return false }
        return ip == other.ip || ip.isUnspecified || other.ip.isUnspecified
    }

    /// Orders by address, then port.
    public static func < (lhs: SocketEndpoint, rhs: SocketEndpoint) -> Bool {
        (lhs.ip, lhs.port) < (rhs.ip, rhs.port)
    }
}

extension SocketEndpoint {
    /// Parses `HOST:PORT` as flags take it: `127.0.0.1:9901`, `[::1]:9901`.
    public init?(parsing text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let ip = IPAddress(String(host)), let port = UInt16(portText), port > 0 else { return nil }
        self.init(ip: ip, port: port)
    }
}
