import EdshimCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A Unix datagram socket bound at a path, standing in for systemd's notify socket
/// or the syslog socket: what processes send there, one datagram at a time.
final class UnixDatagramListener {
    let path: String
    private let fd: Int32

    init(path: String) throws {
        self.path = path
        // `fd` is set last: a throw once it is set runs `deinit`, which would close
        // the descriptor again (by then, maybe another test's).
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let bound = UnixSocketAddress.with(path: path) { bind(fd, $0, $1) }
        guard fd >= 0, bound == 0 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw TestFailure("binding a Unix datagram socket at \(path): \(reason)")
        }
        self.fd = fd
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next datagram as text, or nil when none comes within `seconds`.
    func receive(within seconds: Int) -> String? {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
    }
}
