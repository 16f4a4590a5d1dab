#if canImport(Glibc)
import Glibc
#endif

/// The refusal of a host port that cannot be bound, in docker-proxy's wording
/// (`listen udp 0.0.0.0:53: bind: address already in use`), then what to do about it:
/// what the shim reports to dockerd, and what the server answers for an address Envoy
/// could not listen on.
public enum BindRefusal {
    /// The message for `code` (an errno of `bind` or `listen`); `advice` replaces the
    /// one chosen by the code, and `holders` name who listens on a port in use.
    public static func message(_ proto: String, _ host: SocketEndpoint, _ code: Int32, holders: [PortHolders.Holder] = [], advice: String? = nil) -> String {
        let reason = ErrorText.describe(code)
        let goStyle = reason.prefix(1).lowercased() + reason.dropFirst()
        return "listen \(proto) \(host): bind: \(goStyle): \(advice ?? Self.advice(proto, host, code, holders: holders))"
    }

    /// The advice for a TCP port no socket listens on that cannot be bound all the
    /// same: a connection of this host holds it, as its local port.
    public static func heldByAConnection(_ host: SocketEndpoint) -> String {
        let range = ephemeralRange(containing: host.port).map { " (\(host.port) is in this host's ephemeral range, \($0), net.ipv4.ip_local_port_range, which outgoing connections take their local ports from)" } ?? ""
        return "no process listens on it, but a connection of this host holds the port (an outgoing connection's local port, or one closing in TIME-WAIT: ss -tan 'sport = :\(host.port)' shows it), so nothing can listen there until it is closed\(range); publish the container on another host port"
    }

    /// The advice for a UDP port no bound socket holds, taken by `sockets` (connected
    /// ones, as their local port): who holds each, and where it goes. An edshim UDP
    /// proxy's flow is never to be stopped (that would take a port from its
    /// container): it frees the port once it expires.
    public static func heldByConnectedUDPSockets(_ sockets: [PortHolders.ConnectedHolder], port: UInt16) -> String {
        let held = sockets.map { "a connected UDP socket of \($0.holder) holds local port \(port) (\($0.socket.local.endpoint) → \($0.socket.peer)\($0.isEdshimFlow ? ": a flow of another edshim UDP proxy, which frees the port when the flow expires, after its idle timeout, 90 s by default" : ""))" }
        let range = ephemeralRange(containing: port)
        let rangeNote = range.map { "; \(port) is in this host's ephemeral range, \($0) (net.ipv4.ip_local_port_range), where UDP flows and outgoing connections take their local ports" } ?? ""
        let elsewhere = "publish the container on another host port" + (range == nil ? "" : ", outside that range")
        let action = sockets.allSatisfy(\.isEdshimFlow) ? "\(elsewhere), or start it again once the flow has expired" : "stop it, or \(elsewhere)"
        return "\(held.joined(separator: ", ")), ss -uanp 'sport = :\(port)' shows it\(rangeNote); \(action)"
    }

    /// `first-last` of this host's ephemeral range when `port` is in it.
    private static func ephemeralRange(containing port: UInt16) -> String? {
        guard let text = SystemFile.read("/proc/sys/net/ipv4/ip_local_port_range").map({ String(decoding: $0, as: UTF8.self) }) else { return nil }
        let bounds = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { UInt16($0) }
        guard bounds.count == 2, bounds[0] <= port, port <= bounds[1] else { return nil }
        return "\(bounds[0])-\(bounds[1])"
    }

    /// The refusal of `key` while `shim` publishes it for `container`, started by
    /// `starter`, a running process that did not start the caller (another dockerd):
    /// a port is published once. `hint` goes after "Stop the container that publishes
    /// it first".
    public static func alreadyPublished(_ key: RegistrationKey, for container: SocketEndpoint, by shim: Owner, startedBy starter: Owner, hint: String = "") -> String {
        let name = ProcessTable.name(of: starter.pid).map { "\($0), " } ?? ""
        return "\(key) is already published, for \(container) by shim \(shim), which another process still running started (\(name)\(starter)): a port is published once. Stop the container that publishes it first\(hint), or publish another host port"
    }

    private static func advice(_ proto: String, _ host: SocketEndpoint, _ code: Int32, holders: [PortHolders.Holder]) -> String {
        if code == EINVAL || code == EADDRNOTAVAIL, let mapped = host.ip.mappedIPv4 {
            return "\(host.ip) is an IPv4-mapped address, which IPv6 sockets bound v6-only (docker-proxy's, Envoy's, edshim's) cannot take; publish on \(mapped) instead"
        }
        switch code {
        case EADDRINUSE:
            // Another container's proxy: the port is published already, and stopping
            // that proxy would take it from its container.
            if let (holder, shim) = holders.lazy.compactMap({ holder in ShimProcesses.shim(pid: holder.pid).map { (holder, $0.arguments) } }).first(where: { $0.1.proto.rawValue == proto }) {
                return "\(proto) \(shim.host) is already published, for \(shim.container) by \(holder): publish the container on another host port (docker ps --filter publish=\(host.port)\(proto == "tcp" ? "" : "/\(proto)") shows the container)"
            }
            let verb = proto == "udp" ? "uses" : "listens on"
            let who = holders.isEmpty ? "another process already uses \(proto) \(host)" : holders.map { "\($0) already \(verb) \(proto) \($0.boundAddresses(else: host))" }.joined(separator: ", ")
            return "\(who); stop it, or publish the container on another host port"
        case EACCES:
            return "ports below 1024 need root or CAP_NET_BIND_SERVICE (or lower net.ipv4.ip_unprivileged_port_start)"
        case EADDRNOTAVAIL:
            return "this host has no address \(host.ip); publish on an address it has, or on \(host.ip.isIPv6 ? "::" : "0.0.0.0")"
        default:
            return "check -host-ip and -host-port"
        }
    }
}
