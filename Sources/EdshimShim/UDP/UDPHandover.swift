import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// A UDP port through a dockerd restart with live restore, under
/// `EDSHIM_DOCKERD_RESTART_GRACE`: the SIGTERM the kernel sends as dockerd exits does
/// not stop the proxy. It goes on carrying the port's datagrams until the next
/// dockerd's proxy binds the port beside it (both bind with SO_REUSEPORT under the
/// grace) and tells it to leave (SIGTERM), or once it sees that proxy there (it looks
/// once a second), then exits, leaving the port to it; or, if none comes, when the
/// grace ends.
/// Any other signal stops it at once. The new proxy's flows get new sockets: a client
/// whose datagrams the kernel hands to the new proxy reaches the container from another
/// port, as after any proxy restart.
final class UDPHandover {
    private let grace: DockerdRestartGrace
    private let arguments: ShimArguments
    /// The proxy's own socket, which the kernel's table lists beside its successor's.
    private let ownInode: UInt64
    /// When the grace ends (monotonic milliseconds), once dockerd has exited.
    private var deadline: Int64?
    private var nextLook: Int64 = 0
    private var cannotLook = false
    /// Sockets beside this one that are not a shim's (another program joined the port
    /// with SO_REUSEPORT): looked at once.
    private var foreign: Set<UInt64> = []

    /// A handover for `arguments`' port, bound as `listener`; nil when the grace is
    /// off or cannot apply (dockerd ≥ 28's socket on fd 4: the next dockerd binds the
    /// port itself, so the proxy must let it go at once).
    init?(grace: DockerdRestartGrace, arguments: ShimArguments, listener: UDPListener) {
        guard grace.seconds > 0, !arguments.useListenFD else { return nil }
        var info = stat()
        guard fstat(listener.descriptor, &info) == 0 else { return nil }
        self.grace = grace
        self.arguments = arguments
        ownInode = UInt64(info.st_ino)
    }

    /// Whether the proxy carries its port on under the grace (dockerd exited).
    var isCarrying: Bool { deadline != nil }

    /// Whether the proxy goes on after `signal`: SIGTERM as dockerd exits starts the
    /// grace, and the exiting dockerd's other threads send it again (not another
    /// signal); any other signal stops the proxy.
    func keepsServing(after signal: TerminationSignals.Received) -> Bool {
        if deadline != nil {
            if signal.number == SIGTERM && signal.sender == grace.dockerd { return true }
            // The next dockerd's proxy sends it as it binds the port (`UDPPredecessors.release`).
            ShimLog.info("stopped by signal \(signal.number) from pid \(signal.sender) while carrying udp \(arguments.host) under \(DockerdRestartGrace.variable) (the next dockerd's proxy sends SIGTERM as it takes the port): exiting")
            return false
        }
        guard grace.applies(to: arguments, signal: signal) else { return false }
        deadline = Deadline.now() + grace.seconds * 1000
        ShimLog.warning("dockerd exited without stopping this proxy: udp \(arguments.host) → \(arguments.container) goes on until dockerd publishes it again, for at most \(grace.seconds) s (\(DockerdRestartGrace.variable))")
        return true
    }

    /// How long the proxy may wait for datagrams before it must look again (-1: no
    /// limit, no grace running).
    func millisecondsToNextLook(now: Int64) -> Int32 {
        guard deadline != nil else { return -1 }
        return Int32(clamping: max(0, nextLook - now))
    }

    /// Whether the proxy is done: the next dockerd's proxy bound the port, or the
    /// grace ended. Looks at the kernel's table at most once a second.
    func isOver(now: Int64) -> Bool {
        guard let deadline else { return false }
        if now >= deadline {
            let seen = cannotLook ? "whether dockerd published udp \(arguments.host) again could not be seen" : "dockerd did not publish udp \(arguments.host) again"
            ShimLog.warning("\(seen) within \(grace.seconds) s: exiting")
            return true
        }
        guard now >= nextLook else { return false }
        nextLook = now + DockerdRestartGrace.lookupIntervalMilliseconds
        guard let successor = successor() else { return false }
        ShimLog.info("dockerd published udp \(arguments.host) again (its proxy is pid \(successor)): exiting")
        return true
    }

    /// The process id of the shim that bound the port's address beside this one, if
    /// one did.
    private func successor() -> Int32? {
        switch ListenTable.unconnectedUDPSockets(family: arguments.host.family) {
        case .success(let sockets):
            for socket in sockets where socket.endpoint == arguments.host && socket.inode != ownInode && !foreign.contains(socket.inode) {
                if let shim = ShimProcesses.shim(holding: socket.inode, publishing: arguments.key) { return shim.owner.pid }
                foreign.insert(socket.inode)
                ShimLog.warning("a socket of another program shares udp \(arguments.host) (SO_REUSEPORT, as root; inode \(socket.inode)): not dockerd's next proxy, so this one goes on")
            }
            return nil
        case .failure(let failure):
            if !cannotLook {
                cannotLook = true
                ShimLog.warning("cannot see whether dockerd published udp \(arguments.host) again (\(failure); the kernel's udp_diag module is needed): serving it beside any new proxy until the grace ends")
            }
            return nil
        }
    }
}
