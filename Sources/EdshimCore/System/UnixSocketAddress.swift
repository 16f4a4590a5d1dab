#if canImport(Glibc)
import Glibc
#endif

/// A Unix socket's kernel address (`sockaddr_un`) from its path, for bind, connect
/// and sendto.
public enum UnixSocketAddress {
    /// The longest path that fits, in bytes.
    public static let maximumPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Calls `body` with the address of the socket at `path` (bytes as given: a 0
    /// first names the abstract namespace); nil when the path is empty or too long.
    public static func with<Result>(path: [UInt8], _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result? {
        guard !path.isEmpty, path.count <= maximumPathLength else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// The same for a path given as text.
    public static func with<Result>(path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result? {
        with(path: Array(path.utf8), body)
    }
}
