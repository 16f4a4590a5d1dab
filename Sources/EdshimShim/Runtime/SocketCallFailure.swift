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

    /// `shimFailure` for a UDP port, naming the processes whose bound socket holds
    /// it; when none does, the connected sockets (another UDP proxy's flows, a
    /// client's) whose local port it is.
    func udpShimFailure(_ host: SocketEndpoint) -> ShimFailure {
        guard code == EADDRINUSE else { return shimFailure("udp", host) }
        let bound = PortHolders.boundUDP(on: host)
        if bound.isEmpty, case let connected = PortHolders.connectedUDP(on: host), !connected.isEmpty {
            return ShimFailure(BindRefusal.message("udp", host, code, advice: BindRefusal.heldByConnectedUDPSockets(connected, port: host.port)))
        }
        return shimFailure("udp", host) { bound }
    }
}
