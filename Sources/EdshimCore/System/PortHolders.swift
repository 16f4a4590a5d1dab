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

        /// Creates a holder.
        public init(pid: Int32, name: String) {
            self.pid = pid
            self.name = name
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
        holding(Set(ListenTable.read().filter { $0.keepsFromBinding(host) }.map(\.inode)), root: root)
    }

    /// The processes with a UDP socket bound (and not connected) where a bind of
    /// `host` conflicts, by process id; empty when there is none, or when they cannot
    /// be seen. Reads every process's descriptors: for a port that could not be bound.
    public static func boundUDP(on host: SocketEndpoint, root: String = "/proc") -> [Holder] {
        let sockets = (try? ListenTable.unconnectedUDPSockets(family: host.family).get()) ?? []
        return holding(Set(sockets.filter { $0.endpoint.bindConflicts(with: host) }.map(\.inode)), root: root)
    }

    /// The processes holding any of the sockets `inodes`, by process id; empty when
    /// their processes cannot be seen in `/proc` (a server not run as root).
    public static func holding(_ inodes: Set<UInt64>, root: String = "/proc") -> [Holder] {
        guard !inodes.isEmpty else { return [] }
        return ShimProcesses.entryNames(in: root).compactMap(Int32.init).sorted().compactMap { pid in
            guard !ShimProcesses.socketInodes(of: pid, root: root).isDisjoint(with: inodes) else { return nil }
            return Holder(pid: pid, name: ProcessTable.name(of: pid, root: root) ?? "?")
        }
    }
}
