#if canImport(Glibc)
import Glibc
#endif

/// The processes listening on a TCP address: who holds a port the shim could not bind,
/// and whether that is an Envoy (which the shim may serve beside) or another program
/// (which it must not share a port with).
public enum PortHolders {
    /// A process with a socket listening on the port.
    public struct Holder: Equatable, Sendable, CustomStringConvertible {
        /// Its process id.
        public var pid: Int32
        /// Its process name (`comm`).
        public var name: String
        /// Where its conflicting sockets are bound (`127.0.0.1:80` keeps `0.0.0.0:80`
        /// from binding), in order; empty when not known.
        public var addresses: [SocketEndpoint]

        /// Creates a holder.
        public init(pid: Int32, name: String, addresses: [SocketEndpoint] = []) {
            self.pid = pid
            self.name = name
            self.addresses = addresses
        }

        /// Where it is bound, for a refusal of `host`: its addresses, else `host`.
        public func boundAddresses(else host: SocketEndpoint) -> String {
            addresses.isEmpty ? host.description : addresses.map(\.description).joined(separator: " and ")
        }

        /// Whether the process is an Envoy: its executable is named `envoy…`.
        public var isEnvoy: Bool { name.hasPrefix("envoy") }

        public var description: String { "\(name) (pid \(pid))" }
    }

    /// The processes with a listening socket that a bind of `host` conflicts with (the
    /// same address, or a wildcard on either side; an IPv6 socket that takes IPv4 too),
    /// by process id. Empty when there is
    /// none, or when their processes cannot be seen in `/proc`.
    ///
    /// Reads every process's descriptors: meant for a port that could not be bound, not
    /// for a path taken once per port.
    public static func listening(on host: SocketEndpoint, root: String = "/proc") -> [Holder] {
        holding(ListenTable.read(onPorts: [host.port]).filter { $0.keepsFromBinding(host) }, root: root)
    }

    /// The processes with a UDP socket bound (and not connected) where a bind of
    /// `host` conflicts, by process id; empty when there is none, or when they cannot
    /// be seen. Reads every process's descriptors: for a port that could not be bound.
    public static func boundUDP(on host: SocketEndpoint, root: String = "/proc") -> [Holder] {
        let sockets = udpSockets(thatMayHold: host, reading: ListenTable.unconnectedUDPSockets)
        return holding(sockets.filter { $0.keepsFromBinding(host) }, root: root)
    }

    /// The processes holding any of `sockets`, by process id, each with where those
    /// it holds are bound; empty when their processes cannot be seen in `/proc` (a
    /// server not run as root).
    public static func holding(_ sockets: [ListeningSocket], root: String = "/proc") -> [Holder] {
        let endpoints = Dictionary(sockets.map { ($0.inode, $0.endpoint) }, uniquingKeysWith: { first, _ in first })
        return processes(holding: Set(endpoints.keys), root: root).map { pid, inodes in
            let addresses = Set(inodes.compactMap { endpoints[$0] }).sorted { $0.description < $1.description }
            return Holder(pid: pid, name: ProcessTable.name(of: pid, root: root) ?? "?", addresses: addresses)
        }
    }

    /// A connected UDP socket whose local port a bind wants, and who holds it.
    public struct ConnectedHolder: Equatable, Sendable {
        /// The process holding the socket (its `addresses`: the socket's local one).
        public var holder: Holder
        /// The socket.
        public var socket: ConnectedUDPSocket
        /// Whether it is a flow of an edshim UDP proxy (a `-proto udp` shim, or
        /// `edshim udp-proxy`): it goes once the flow has been idle for its timeout.
        public var isEdshimFlow: Bool
    }

    /// The connected UDP sockets (flows, clients) whose local address keeps a bind of
    /// `host` from binding, with the processes holding them; empty when there is none,
    /// or when they cannot be seen. A port that no bound socket holds may still be
    /// taken so. Reads every process's descriptors: for a port that could not be bound.
    public static func connectedUDP(on host: SocketEndpoint, root: String = "/proc") -> [ConnectedHolder] {
        let sockets = udpSockets(thatMayHold: host, reading: ListenTable.connectedUDPSockets)
        let conflicting = Dictionary(sockets.filter { $0.local.keepsFromBinding(host) }.map { ($0.local.inode, $0) }, uniquingKeysWith: { first, _ in first })
        return processes(holding: Set(conflicting.keys), root: root).flatMap { pid, inodes in
            let name = ProcessTable.name(of: pid, root: root) ?? "?"
            let isEdshimFlow = name == ShimProcesses.processName && isUDPProxy(pid, root: root)
            return inodes.compactMap { conflicting[$0] }.map { socket in
                ConnectedHolder(holder: Holder(pid: pid, name: name, addresses: [socket.local.endpoint]), socket: socket, isEdshimFlow: isEdshimFlow)
            }
        }
    }

    /// The UDP sockets `read` finds in `host`'s family and, for an IPv4 host, in
    /// IPv6 too: an IPv6 socket that takes IPv4 as well (not v6-only: on `::`, or
    /// connected to an IPv4-mapped peer) holds the IPv4 port. Empty where unreadable.
    private static func udpSockets<Socket>(thatMayHold host: SocketEndpoint, reading read: (Int32) -> Result<[Socket], ListenTable.Failure>) -> [Socket] {
        let families = host.ip.isIPv6 ? [host.family] : [host.family, AF_INET6]
        return families.flatMap { (try? read($0).get()) ?? [] }
    }

    /// Whether `pid` runs an edshim UDP proxy: a `-proto udp` shim, or `edshim udp-proxy`.
    private static func isUDPProxy(_ pid: Int32, root: String) -> Bool {
        if let shim = ShimProcesses.shim(pid: pid, root: root) { return shim.arguments.proto == .udp }
        return ProcessTable.commandLine(of: pid, root: root).map(ModeSelection.startsUDPProxy) ?? false
    }

    /// The processes holding any of the sockets `inodes`, by process id, each with
    /// those it holds (sorted); empty when their processes cannot be seen in `/proc`.
    private static func processes(holding inodes: Set<UInt64>, root: String) -> [(pid: Int32, inodes: [UInt64])] {
        guard !inodes.isEmpty else { return [] }
        return ShimProcesses.entryNames(in: root).compactMap(Int32.init).sorted().compactMap { pid in
            let held = ShimProcesses.socketInodes(of: pid, root: root).filter(inodes.contains).sorted()
            return held.isEmpty ? nil : (pid, held)
        }
    }
}
