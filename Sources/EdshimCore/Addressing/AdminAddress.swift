/// Where an admin endpoint listens (Envoy's, or `edshim server`'s own): a TCP address,
/// which every local user can reach, or a Unix socket, which its file mode guards.
public enum AdminAddress: Equatable, Sendable, CustomStringConvertible {
    case tcp(SocketEndpoint)
    /// An absolute path.
    case unixSocket(String)

    /// The prefix of a Unix socket's address: `unix:/run/edshim/admin.sock`.
    public static let unixPrefix = "unix:"

    /// `HOST:PORT`, or `unix:/absolute/path`; nil for anything else.
    public init?(parsing text: String) {
        if text.hasPrefix(Self.unixPrefix) {
            let path = String(text.dropFirst(Self.unixPrefix.count))
            guard path.hasPrefix("/"), path.utf8.count <= UnixSocketAddress.maximumPathLength, !path.contains("\0") else { return nil }
            self = .unixSocket(path)
        } else if let endpoint = SocketEndpoint(parsing: text) {
            self = .tcp(endpoint)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .tcp(let endpoint): endpoint.description
        case .unixSocket(let path): Self.unixPrefix + path
        }
    }
}
