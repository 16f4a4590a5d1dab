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
        var sockets = (try? ListenTable.unconnectedUDPSockets(family: host.family).get()) ?? []
        // An IPv6 socket that takes IPv4 too (not v6-only) on `::` holds the IPv4 port.
        if !host.ip.isIPv6 { sockets += (try? ListenTable.unconnectedUDPSockets(family: AF_INET6).get()) ?? [] }
        return holding(sockets.filter { $0.keepsFromBinding(host) }, root: root)
    }

    /// The processes holding any of `sockets`, by process id, each with where those
    /// it holds are bound; empty when their processes cannot be seen in `/proc` (a
    /// server not run as root).
    public static func holding(_ sockets: [ListeningSocket], root: String = "/proc") -> [Holder] {
        guard !sockets.isEmpty else { return [] }
        let endpoints = Dictionary(sockets.map { ($0.inode, $0.endpoint) }, uniquingKeysWith: { first, _ in first })
        return ShimProcesses.entryNames(in: root).compactMap(Int32.init).sorted().compactMap { pid in
            let held = ShimProcesses.socketInodes(of: pid, root: root).compactMap { endpoints[$0] }
            guard !held.isEmpty else { return nil }
            let addresses = Set(held).sorted { $0.description < $1.description }
            return Holder(pid: pid, name: ProcessTable.name(of: pid, root: root) ?? "?", addresses: addresses)
        }
    }
}
