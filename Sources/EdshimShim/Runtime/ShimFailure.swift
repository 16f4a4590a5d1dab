import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// A failure the shim reports to dockerd: one line saying what is wrong and what to do.
struct ShimFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }

    /// `context: strerror(errno)`.
    static func system(_ context: String, _ code: Int32 = errno) -> ShimFailure {
        ShimFailure("\(context): \(String(cString: strerror(code)))")
    }

    /// A port the shim could not bind, in docker-proxy's wording (`listen udp
    /// 0.0.0.0:53: bind: address already in use`), then what to do about it; naming
    /// the processes listening on the port, when they are known.
    static func bind(_ proto: String, _ host: SocketEndpoint, _ code: Int32, holders: [PortHolders.Holder] = []) -> ShimFailure {
        let reason = String(cString: strerror(code))
        let goStyle = reason.prefix(1).lowercased() + reason.dropFirst()
        let advice: String
        switch code {
        case EADDRINUSE:
            let who = holders.isEmpty ? "another process already uses" : "\(holders.map(\.description).joined(separator: ", ")) already listens on"
            advice = "\(who) \(proto) \(host); stop it, or publish the container on another host port"
        case EACCES:
            advice = "ports below 1024 need root or CAP_NET_BIND_SERVICE (or lower net.ipv4.ip_unprivileged_port_start)"
        case EADDRNOTAVAIL:
            advice = "this host has no address \(host.ip); publish on an address it has, or on \(host.ip.isIPv6 ? "::" : "0.0.0.0")"
        default:
            advice = "check -host-ip and -host-port"
        }
        return ShimFailure("listen \(proto) \(host): bind: \(goStyle): \(advice)")
    }
}
