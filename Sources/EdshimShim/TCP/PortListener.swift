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

    /// Binds and listens on `host` so that Envoy can later listen beside it: SO_REUSEPORT
    /// is turned on after `bind` (and v6-only for IPv6, as Envoy's listeners are), so
    /// Envoy's reuse-port listeners can join the socket, while a port another program
    /// listens on is refused, as docker-proxy would refuse it, instead of shared with
    /// that program's own reuse-port group.
    ///
    /// One holder is served beside: an Envoy run with a bootstrap from `edshim
    /// bootstrap`, left listening on the port from before the server stopped (it
    /// withdraws or takes over that listener once it is back).
    static func bind(_ host: SocketEndpoint) throws(ShimFailure) -> PortListener {
        var settles: Deadline?
        while true {
            do {
                return try open(host, reusePortFirst: false)
            } catch let failure where failure.code == EADDRINUSE {
                let holders = PortHolders.listening(on: host)
                if holders.isEmpty, !ListenTable.read(onPorts: [host.port]).contains(where: { $0.keepsFromBinding(host) }) {
                    // Nothing listens there: a connection holds the port, or a socket
                    // bound and not listening yet, as an Envoy starting binds its
                    // listeners before it listens on them (a port just withdrawn from it
                    // included). That one listens, or goes, within moments: tried again.
                    let deadline = settles ?? .after(milliseconds: Self.settleMilliseconds)
                    settles = deadline
                    guard deadline.hasPassed else {
                        usleep(50_000)
                        continue
                    }
                    throw ShimFailure(BindRefusal.message("tcp", host, failure.code, advice: BindRefusal.heldByAConnection(host)))
                }
                return try bind(beside: holders, on: host, code: failure.code)
            } catch {
                throw error.shimFailure("tcp", host)
            }
        }
    }

    /// How long a port nothing listens on may stay taken before the bind is refused.
    static let settleMilliseconds: Int64 = 1500

    /// Binds `host` beside the edshim Envoy among `holders`, or refuses it naming them.
    private static func bind(beside holders: [PortHolders.Holder], on host: SocketEndpoint, code: Int32) throws(ShimFailure) -> PortListener {
        // Only the Envoy an edshim server configures (its bootstrap says so): never
        // another Envoy of the host.
        guard !holders.isEmpty, holders.allSatisfy({ $0.isEnvoy && EnvoyBootstrapCheck.runsEdshimBootstrap($0.pid) }) else {
            throw .bind("tcp", host, code, holders: holders)
        }
        // That Envoy's listener is another dockerd's port (its shim runs): a port is
        // published once, as the server would answer.
        let key = RegistrationKey(proto: .tcp, host: host)
        if let other = ShimProcesses.publishingUnderAnotherStarter(key) {
            throw ShimFailure(BindRefusal.message("tcp", host, code, advice: BindRefusal.alreadyPublished(key, for: other.shim.arguments.container, by: other.shim.owner, startedBy: other.starter)))
        }
        let names = holders.map(\.description).joined(separator: ", ")
        // A stopped Envoy accepts nothing: beside it, the connections the kernel hands
        // its socket would wait until it is resumed.
        let stopped = holders.filter { ProcessTable.isStopped($0.pid) }
        if !stopped.isEmpty {
            let pids = stopped.map { String($0.pid) }.joined(separator: " ")
            throw ShimFailure(BindRefusal.message("tcp", host, code, advice: "\(names) still listens on tcp \(host) and is stopped (SIGSTOP): connections the kernel gave its socket would wait until it runs again, so the port is not shared with it; resume it (kill -CONT \(pids)), then start the container again"))
        }
        ShimLog.warning("\(names) still listens on tcp \(host), from before the server stopped: serving beside it (connections are shared) until the server withdraws or takes over that listener")
        do {
            return try open(host, reusePortFirst: true)
        } catch let second where second.code == EADDRINUSE {
            // The kernel lets a socket join a reuse-port group only from the same
            // user, and only one whose sockets all have SO_REUSEPORT.
            throw ShimFailure(BindRefusal.message("tcp", host, second.code, advice: "\(names) already listens on tcp \(host), from before the server stopped, and cannot be joined: serving beside it needs Envoy to run as the same user as dockerd, with reuse_port on (its default on Linux); stop that Envoy, or start the server, which takes the port over"))
        } catch {
            throw error.shimFailure("tcp", host)
        }
    }

    /// `reusePortFirst`: SO_REUSEPORT before `bind`, which joins the reuse-port group of
    /// a socket already listening there (same user only).
    private static func open(_ host: SocketEndpoint, reusePortFirst: Bool) throws(SocketCallFailure) -> PortListener {
        let fd = socket(host.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketCallFailure("socket") }
        func fail(_ call: String) -> SocketCallFailure { SocketCallFailure(call, closing: fd) }
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size)
        if host.ip.isIPv6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, size) }
        if reusePortFirst { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, size) }
        guard host.withSocketAddress({ Glibc.bind(fd, $0, $1) }) == 0 else { throw fail("bind") }
        guard reusePortFirst || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, size) == 0 else { throw fail("setsockopt SO_REUSEPORT") }
        // With SO_REUSEPORT, a port taken can show at listen rather than at bind.
        guard listen(fd, SOMAXCONN) == 0 else { throw fail("listen") }
        var info = stat()
        fstat(fd, &info)
        return PortListener(descriptor: fd, inode: UInt64(info.st_ino))
    }

    /// Accepts every connection waiting, without blocking. `stalled`: `accept` failed
    /// with the connection still queued (errno: no descriptor left in the process or
    /// the system, or no kernel memory), so the socket stays readable until that
    /// passes; the caller pauses accepting instead of being woken for it again at once.
    func acceptPending() -> (clients: [Int32], stalled: Int32?) {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        var accepted: [Int32] = []
        var retries = 0
        while true {
            let client = accept(descriptor, nil, nil)
            guard client >= 0 else {
                let code = errno
                if code == EAGAIN || code == EWOULDBLOCK { return (accepted, nil) }
                // Aborted before it was taken, or a network error the connection
                // already carries (accept(2) says to retry): that one is gone, the next
                // may be fine. The same error over and over is a stall like any other.
                let passing = [EINTR, ECONNABORTED, EPROTO, ENOPROTOOPT, ENETDOWN, ENONET, EHOSTDOWN, EHOSTUNREACH, ENETUNREACH, EOPNOTSUPP]
                if passing.contains(code), retries < 64 {
                    retries += 1
                    continue
                }
                return (accepted, code)
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            accepted.append(client)
            retries = 0
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
