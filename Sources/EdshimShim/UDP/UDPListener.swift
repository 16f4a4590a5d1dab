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
    /// someone else holds is an error, not shared).
    ///
    /// `sharedAcrossRestarts` (under `EDSHIM_DOCKERD_RESTART_GRACE`): SO_REUSEPORT is
    /// turned on once bound, so that the next dockerd's proxy can bind the port while
    /// this one still serves it (`UDPHandover`); the kernel lets only processes of the
    /// same user share it. Such a proxy binds beside a socket only when every socket in
    /// the way is a shim's for the same address and port (the previous dockerd's,
    /// waiting under the grace): bound first without SO_REUSEPORT, it is refused a
    /// port that another container's proxy of an overlapping address (127.0.0.1 and
    /// 0.0.0.0) or another program holds, as docker-proxy's bind is.
    ///
    /// `succeedsPredecessors` (a shim, which dockerd started, without the grace): a
    /// port held only by the previous dockerd's proxies waiting under the grace
    /// (`UDPPredecessors`: that dockerd had the variable, this one has not) is bound
    /// beside them all the same, and SO_REUSEPORT is turned off again after the bind:
    /// they see this proxy and leave the port to it, and once they are gone no other
    /// socket can join the port (an IPv4 one cannot even before).
    static func bind(_ host: SocketEndpoint, sharedAcrossRestarts: Bool = false, succeedsPredecessors: Bool = false) throws(ShimFailure) -> UDPListener {
        func bindAlone() throws(SocketCallFailure) -> Int32 {
            let fd = try open(host, reusePort: false)
            if sharedAcrossRestarts { try setReusePort(fd, true) }
            return fd
        }
        let fd: Int32
        do {
            fd = try bindAlone()
        } catch let failure where failure.code == EADDRINUSE && (succeedsPredecessors || sharedAcrossRestarts) {
            // Under the grace, where the sockets cannot be seen, as before the check: beside them.
            guard let predecessors = UDPPredecessors.shims(on: host, dockerdExited: !sharedAcrossRestarts, unseen: sharedAcrossRestarts ? [] : nil) else {
                throw failure.udpShimFailure(host)
            }
            fd = try bind(host, beside: predecessors, keepingReusePort: sharedAcrossRestarts)
        } catch {
            throw error.udpShimFailure(host)
        }
        return try prepare(fd, endpoint: host)
    }

    /// Binds `host` beside the shims `predecessors` of the same port with SO_REUSEPORT,
    /// then, unless `keepingReusePort`, turns it off; logs it.
    private static func bind(_ host: SocketEndpoint, beside predecessors: [Int32], keepingReusePort: Bool) throws(ShimFailure) -> Int32 {
        let fd: Int32
        do {
            fd = try open(host, reusePort: true)
            if !keepingReusePort { try setReusePort(fd, false) }
        } catch {
            throw error.udpShimFailure(host)
        }
        UDPPredecessors.release(predecessors, of: host)
        let pids = predecessors.map(String.init).joined(separator: ", ")
        if predecessors.isEmpty {
            ShimLog.warning("udp \(host) is taken, and who holds it cannot be seen (no udp_diag): bound beside it under \(DockerdRestartGrace.variable), as the previous dockerd's proxy would be")
        } else if keepingReusePort {
            ShimLog.info("udp \(host) is still carried by the previous dockerd's proxy (pid \(pids)) under \(DockerdRestartGrace.variable): bound beside it, and told it to leave the port to this proxy")
        } else {
            ShimLog.warning("udp \(host) is still carried by the previous dockerd's proxy (pid \(pids)) under \(DockerdRestartGrace.variable), which this dockerd does not set: bound beside it, and told it to leave the port to this proxy")
        }
        return fd
    }

    /// Turns SO_REUSEPORT on or off on the bound socket `fd`; closes it on failure.
    private static func setReusePort(_ fd: Int32, _ on: Bool) throws(SocketCallFailure) {
        var value: Int32 = on ? 1 : 0
        guard setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SocketCallFailure(on ? "setting SO_REUSEPORT once bound" : "turning SO_REUSEPORT off after binding beside the previous dockerd's proxy", closing: fd)
        }
    }

    /// A UDP socket bound to `host`; `reusePort`: with SO_REUSEPORT, which joins the
    /// sockets bound there with it (same user only).
    private static func open(_ host: SocketEndpoint, reusePort: Bool) throws(SocketCallFailure) -> Int32 {
        let fd = socket(host.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketCallFailure("socket") }
        func fail(_ call: String) -> SocketCallFailure { SocketCallFailure(call, closing: fd) }
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        if host.ip.isIPv6, setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, size) != 0 { throw fail("setting IPV6_V6ONLY") }
        if reusePort, setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, size) != 0 { throw fail("setting SO_REUSEPORT") }
        guard host.withSocketAddress({ Glibc.bind(fd, $0, $1) }) == 0 else { throw fail("bind") }
        return fd
    }

    /// Takes the bound UDP socket dockerd ≥ 28 passes on fd 4 (checked to be UDP
    /// and bound to `arguments.host`).
    static func adopt(for arguments: ShimArguments) throws(ShimFailure) -> UDPListener {
        let held = try HeldListenSocket.adopt(for: arguments)
        // Given with IP_RECVERR (IPV6_RECVERR) on, the socket would queue the ICMP
        // error for a reply to a client gone meanwhile where only MSG_ERRQUEUE reads it,
        // and epoll would report it forever: the proxy would spin. Off (which empties
        // the queue), it ignores such errors, as the sockets the proxy binds itself do.
        var zero: Int32 = 0
        let size = socklen_t(MemoryLayout<Int32>.size)
        setsockopt(held.descriptor, Int32(IPPROTO_IP), IP_RECVERR, &zero, size)
        if arguments.host.ip.isIPv6 { setsockopt(held.descriptor, Int32(IPPROTO_IPV6), IPV6_RECVERR, &zero, size) }
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
