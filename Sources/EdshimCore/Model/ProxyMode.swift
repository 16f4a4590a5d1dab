/// How Envoy carries a TCP port.
public enum ProxyMode: String, Hashable, Sendable, CaseIterable {
    /// HTTP connection manager: HTTP/1.1 and h2c, request ids, X-Forwarded-For,
    /// tracing decorator, WebSocket upgrades.
    case http
    /// TCP proxy: bytes untouched.
    case tcp
    /// HTTP connection manager for every connection, with no relay as TCP: what is not
    /// HTTP is refused (400) instead of passed on, so a client cannot make its
    /// connection bypass Envoy's HTTP handling (and its own `X-Forwarded-For` reach
    /// the container as the last entry).
    case httpOnly = "http-only"

    /// Whether Envoy handles the port's requests as HTTP.
    public var isHTTP: Bool { self != .tcp }

    /// Parses a label value: trimmed, case-insensitive; `nil` when unknown.
    public init?(label: String) {
        let trimmed = label.trimmingASCIIWhitespace().lowercased()
        guard let mode = ProxyMode(rawValue: trimmed) else { return nil }
        self = mode
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs, CR and LF.
    /// (By scalar: as a `Character`, CR LF is one grapheme equal to neither.)
    func trimmingASCIIWhitespace() -> String {
        let isSpace: (Unicode.Scalar) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = unicodeScalars.firstIndex(where: { !isSpace($0) }),
              let end = unicodeScalars.lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(unicodeScalars[start...end])
    }
}
