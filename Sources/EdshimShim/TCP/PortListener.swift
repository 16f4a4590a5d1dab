import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// A listening socket on the published port that is not Envoy's: the one dockerd ≥ 28
/// passed on fd 4, or the one the shim binds to serve the port itself (fallback).
/// Either shares the port with Envoy through SO_REUSEPORT until it is retired.
struct PortListener {
    let descriptor: Int32
    let inode: UInt64

    /// Binds and listens on `host` the way Envoy's listeners do (SO_REUSEADDR,
    /// SO_REUSEPORT, v6-only for IPv6), so that Envoy can later bind beside it.
    static func bind(_ host: SocketEndpoint) throws(ShimFailure) -> PortListener {
        let fd = socket(host.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket for \(host)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        if host.ip.isIPv6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        guard host.withSocketAddress({ Glibc.bind(fd, $0, $1) }) == 0 else {
            let code = errno
            close(fd)
            throw .bind("tcp", host, code)
        }
        guard listen(fd, SOMAXCONN) == 0 else {
            // With SO_REUSEPORT, a port taken shows at listen rather than at bind.
            let code = errno
            close(fd)
            throw code == EADDRINUSE ? .bind("tcp", host, code) : .system("listen tcp \(host)", code)
        }
        var info = stat()
        fstat(fd, &info)
        return PortListener(descriptor: fd, inode: UInt64(info.st_ino))
    }

    /// Accepts every connection waiting, without blocking. `outOfDescriptors`: the
    /// process or the system has no descriptor left, so connections stay queued
    /// (and the socket readable) until some close.
    func acceptPending() -> (clients: [Int32], outOfDescriptors: Bool) {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        var accepted: [Int32] = []
        while true {
            let client = accept(descriptor, nil, nil)
            guard client >= 0 else {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return (accepted, errno == EMFILE || errno == ENFILE)
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            accepted.append(client)
        }
    }

    /// Takes the socket out of service once Envoy listens beside it: accepts the
    /// connections already queued on it (returned, to be relayed to the container),
    /// then `shutdown(SHUT_RD)`, which on Linux removes a listening socket from the
    /// listen table and from the reuse-port group at once — for every copy of the
    /// descriptor (dockerd's too). From then on every connection reaches Envoy; only one
    /// arriving in the microseconds between the last accept and the shutdown can be
    /// refused (unless net.ipv4.tcp_migrate_req=1, which hands it to Envoy).
    func retire() -> [Int32] {
        let queued = acceptPending().clients
        shutdown(descriptor, Int32(SHUT_RD))
        close(descriptor)
        return queued
    }
}
