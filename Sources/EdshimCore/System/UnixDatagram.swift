#if canImport(Glibc)
import Glibc
#endif

/// One datagram to a Unix socket named by its path, as sd_notify(3) and syslog(3)
/// send theirs (`@` first: the abstract namespace). Best effort: nobody listening, or
/// a receiver too busy to take it now (never waited for), is no error worth more than
/// the `false` it returns.
public enum UnixDatagram {
    @discardableResult
    public static func send(_ bytes: [UInt8], to socketPath: String) -> Bool {
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let sent = UnixSocketAddress.with(path: path) { address, length in
            bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), address, length) }
        }
        return sent == bytes.count
    }
}
