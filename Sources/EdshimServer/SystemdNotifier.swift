import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// Tells systemd (`Type=notify`) that the server is ready: one datagram on
/// `$NOTIFY_SOCKET`, as sd_notify(3) sends it. Without the variable, nothing happens.
enum SystemdNotifier {
    static func notify(_ state: String) {
        guard let value = ProcessEnvironment.value("NOTIFY_SOCKET") else { return }
        var path = Array(value.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                Array(state.utf8).withUnsafeBytes { bytes in
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), socketAddress, length)
                }
            }
        }
    }
}
