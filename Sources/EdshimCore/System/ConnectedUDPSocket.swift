import CEdshimLinux
#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket connected to one peer: a UDP proxy's flow (edshim's hold up to 8,192
/// each, on ports of the ephemeral range), or a client's. It holds its local port as
/// a bound socket does, so a port published there cannot be bound until it closes.
public struct ConnectedUDPSocket: Equatable, Sendable {
    /// The local address and port (`acceptsIPv4`: an IPv6 socket that takes IPv4 too).
    public var local: ListeningSocket
    /// Where it is connected.
    public var peer: SocketEndpoint

    /// Creates an entry.
    public init(local: ListeningSocket, peer: SocketEndpoint) {
        self.local = local
        self.peer = peer
    }
}

extension ListenTable {
    /// The connected UDP sockets of `family` in this network namespace, from
    /// NETLINK_SOCK_DIAG (as `ss -uan state established` lists them).
    public static func connectedUDPSockets(family: Int32) -> Result<[ConnectedUDPSocket], Failure> {
        entries(family: family, reading: edshim_udp_connected_sockets).map { entries in
            entries.compactMap { entry in
                guard let local = socket(entry, family: family), let peer = address(entry.peer_address, family: family) else { return nil }
                return ConnectedUDPSocket(local: local, peer: SocketEndpoint(ip: peer, port: entry.peer_port))
            }
        }
    }
}
