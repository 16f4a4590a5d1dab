import CEdshimLinux
import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// The host-side UDP socket: bound by the proxy itself (dockerd 20.10, `edshim
/// udp-proxy`) or taken from dockerd on fd 4 (dockerd ≥ 28), then made ready to
/// serve: non-blocking, roomy buffers, packet info when bound to every address.
struct UDPListener {
    /// The socket.
    let descriptor: Int32
    /// Where it is bound.
    let endpoint: SocketEndpoint
    /// Whether the kernel hands over a burst from one client as one receive (UDP_GRO,
    /// Linux 5.0): from clients that send with UDP GSO (QUIC stacks do), or from a
    /// NIC's GRO. The proxy's flow sockets do the same for the container's bursts.
    let coalesces: Bool

    /// Receive and send buffers asked for: room for bursts while the proxy is busy with
    /// the other direction, and for a batch of large replies while a real NIC sends
    /// them. Beyond net.core.rmem_max / wmem_max under dockerd (root); capped by them
    /// when run by another user.
    static let bufferBytes: Int32 = 4 << 20

    /// True when bound to 0.0.0.0 or ::, so replies must name their source address.
    var answersFromDestination: Bool { endpoint.ip.isUnspecified }

    /// Binds `host` as docker-proxy does (IPv6 v6-only, no SO_REUSEADDR: a port
    /// someone else holds is an error, not shared). `sharedAcrossRestarts` (under
    /// `EDSHIM_DOCKERD_RESTART_GRACE`) adds SO_REUSEPORT, so that the next dockerd's
    /// proxy, which sets it too, can bind the port while this one still serves it
    /// (`UDPHandover`); the kernel lets only processes of the same user share it.
    static func bind(_ host: SocketEndpoint, sharedAcrossRestarts: Bool = false) throws(ShimFailure) -> UDPListener {
        let fd = socket(host.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("listen udp \(host): socket") }
        var one: Int32 = 1
        if host.ip.isIPv6, setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            let code = errno
            close(fd)
            throw .system("listen udp \(host): setting IPV6_V6ONLY", code)
        }
        if sharedAcrossRestarts, setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            let code = errno
            close(fd)
            throw .system("listen udp \(host): setting SO_REUSEPORT for \(DockerdRestartGrace.variable)", code)
        }
        guard host.withSocketAddress({ Glibc.bind(fd, $0, $1) }) == 0 else {
            let code = errno
            close(fd)
            throw .bind("udp", host, code, holders: code == EADDRINUSE ? PortHolders.boundUDP(on: host) : [])
        }
        return try prepare(fd, endpoint: host)
    }

    /// Takes the bound UDP socket dockerd ≥ 28 passes on fd 4 (checked to be UDP
    /// and bound to `arguments.host`).
    static func adopt(for arguments: ShimArguments) throws(ShimFailure) -> UDPListener {
        let held = try HeldListenSocket.adopt(for: arguments)
        return try prepare(held.descriptor, endpoint: arguments.host)
    }

    private static func prepare(_ fd: Int32, endpoint: SocketEndpoint) throws(ShimFailure) -> UDPListener {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        edshim_socket_buffer(fd, 1, bufferBytes)
        edshim_socket_buffer(fd, 0, bufferBytes)
        let coalesces = edshim_enable_receive_coalescing(fd) == 0
        let listener = UDPListener(descriptor: fd, endpoint: endpoint, coalesces: coalesces)
        if listener.answersFromDestination, edshim_enable_packet_info(fd, endpoint.family) != 0 {
            let code = errno
            close(fd)
            throw .system("udp \(endpoint): turning on packet info, needed to answer from the address each client sent to", code)
        }
        return listener
    }
}
