import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// The bound socket dockerd ≥ 28 passes on fd 4 with `-use-listen-fd`.
///
/// dockerd keeps its own copy until the shim reports ready, so Envoy can only bind
/// the port beside it: the shim turns on SO_REUSEPORT on the shared socket, which
/// lets Envoy's reuse-port listeners join it. Readiness then waits for a listening
/// socket other than this one (its inode is sent to the server), and `listener.retire()`
/// takes it out before the shim reports.
struct HeldListenSocket {
    static let descriptor: Int32 = 4

    let descriptor: Int32
    let inode: UInt64

    /// Checks that fd 4 is a socket of the right type bound to `host`, and prepares it.
    static func adopt(for arguments: ShimArguments) throws(ShimFailure) -> HeldListenSocket {
        let fd = descriptor
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw ShimFailure("-use-listen-fd was given but fd 4 is not a socket: dockerd >= 28 passes the bound host port there; run by hand, leave -use-listen-fd out")
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length)
        let expectedType = arguments.proto == .udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        guard type == expectedType else {
            throw ShimFailure("fd 4 is not a \(arguments.proto.rawValue.uppercased()) socket, but -proto is \(arguments.proto.rawValue)")
        }
        guard let local = SocketEndpoint.local(of: fd), local == arguments.host else {
            let bound = SocketEndpoint.local(of: fd)?.description ?? "no IP address (not an IPv4 or IPv6 socket)"
            throw ShimFailure("fd 4 is bound to \(bound), not to \(arguments.host) as -host-ip/-host-port say")
        }
        if arguments.proto == .tcp {
            var one: Int32 = 1
            guard setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                throw .system("setting SO_REUSEPORT on fd 4 so Envoy can bind \(arguments.host)")
            }
            // dockerd listens on the socket before it passes it; one only bound would
            // accept nothing while the shim serves the port itself.
            var listening: Int32 = 0
            length = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening == 0, listen(fd, SOMAXCONN) != 0 {
                throw .system("listening on fd 4 (\(arguments.host), bound but not listened on)")
            }
        }
        return HeldListenSocket(descriptor: fd, inode: UInt64(info.st_ino))
    }

    /// The socket as a `PortListener` (to retire, or to serve from in fallback).
    var listener: PortListener {
        PortListener(descriptor: descriptor, inode: inode)
    }
}
