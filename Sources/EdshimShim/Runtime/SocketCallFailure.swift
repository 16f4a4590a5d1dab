import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// A system call that failed while the shim opened its port's socket (`PortListener`,
/// `UDPListener`), and its errno.
struct SocketCallFailure: Error {
    let call: String
    let code: Int32

    init(_ call: String, code: Int32 = errno) {
        self.call = call
        self.code = code
    }

    /// `call` failed on `fd`, which is closed (errno read first).
    init(_ call: String, closing fd: Int32) {
        self.init(call)
        close(fd)
    }

    /// A port taken in docker-proxy's words, naming `holders()` (looked for only
    /// then); any other failure as Go words a listen's: `listen udp [::]:53: setting
    /// IPV6_V6ONLY: …`.
    func shimFailure(_ proto: String, _ host: SocketEndpoint, holders: () -> [PortHolders.Holder] = { [] }) -> ShimFailure {
        guard call == "bind" || code == EADDRINUSE else { return .system("listen \(proto) \(host): \(call)", code) }
        return .bind(proto, host, code, holders: code == EADDRINUSE ? holders() : [])
    }
}
