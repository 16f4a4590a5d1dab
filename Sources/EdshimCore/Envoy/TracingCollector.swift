/// Where Envoy sends the spans of every HTTP request: the OTLP/HTTP endpoint of an
/// OpenTelemetry collector (`edshim server --tracing-otlp http://HOST[:PORT][/PATH]`),
/// or of anything that takes OTLP/HTTP (Jaeger, Tempo, …).
public struct TracingCollector: Hashable, Sendable, CustomStringConvertible {
    /// The cluster edshim adds for the collector. Never a service's name: those end in
    /// the host port (or the host address).
    public static let clusterName = "edshim-tracing"
    /// OTLP/HTTP's port.
    public static let defaultPort: UInt16 = 4318
    /// OTLP/HTTP's path for traces.
    public static let defaultPath = "/v1/traces"

    /// An IP address (in its canonical text), or a host name Envoy resolves.
    public let host: String
    /// The collector's port.
    public let port: UInt16
    /// The path spans are posted to.
    public let path: String

    /// The host as an address, when it is one.
    public var address: IPAddress? { IPAddress(host) }

    /// `http://127.0.0.1:4318/v1/traces`.
    public var description: String {
        let authority = address?.isIPv6 == true ? "[\(host)]" : host
        return "http://\(authority):\(port)\(path)"
    }

    /// Parses `http://HOST[:PORT][/PATH]`: HOST an IP address (IPv6 in brackets) or a
    /// host name; the port defaults to 4318, the path to `/v1/traces`. Nil for anything
    /// else (`https://` included: Envoy would need TLS settings edshim does not write).
    public init?(parsing text: String) {
        guard text.hasPrefix("http://") else { return nil }
        let rest = text.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = rest[slash...].isEmpty ? Self.defaultPath : String(rest[slash...])
        guard path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) else { return nil }

        var host = Substring(authority)
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
            guard IPAddress(String(host))?.isIPv6 == true else { return nil }
        } else if let colon = authority.firstIndex(of: ":") {
            // An IPv6 address goes in brackets: `http://[::1]:4318`.
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        }
        let address = IPAddress(String(host))
        guard address != nil || Self.isHostName(host) else { return nil }
        var port = Self.defaultPort
        if let portText {
            guard let parsed = UInt16(portText), parsed > 0 else { return nil }
            port = parsed
        }
        self.host = address?.description ?? String(host)
        self.port = port
        self.path = path
    }

    /// Letters, digits, dots and dashes, as DNS names are written.
    private static func isHostName(_ text: Substring) -> Bool {
        guard !text.isEmpty, text.count <= 253, !text.hasPrefix("-"), !text.hasPrefix("."), !text.contains("..") else { return false }
        return text.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D }
    }
}
