import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// Relays the connections that were queued on dockerd's socket before Envoy took the
/// port (dockerd ≥ 28), to the container, as docker-proxy would have, while waiting
/// for a termination signal.
enum TCPHandover {
    /// Relays `clients` until they finish; returns true if a termination signal
    /// arrived first (the caller then stops; the connections close with the shim).
    static func relay(_ clients: [Int32], to container: SocketEndpoint, signals: TerminationSignals) -> Bool {
        guard !clients.isEmpty else { return false }
        ShimLog.info("relaying \(clients.count) connection(s) queued before Envoy took the port")
        let relay = TCPRelay(target: container)
        defer { relay.closeAll() }
        for client in clients { relay.add(client: client) }
        var pollFailures = LogThrottle()
        while !relay.isIdle {
            var fds = [
                pollfd(fd: signals.descriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: relay.descriptor, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 {
                guard TerminationSignals.afterFailedPoll(&fds[0], error: errno, doing: "relaying \(relay.count) connection(s)", log: &pollFailures) else { continue }
            }
            if fds[0].revents != 0, signals.takePending() { return true }
            if fds[1].revents != 0 { relay.process() }
        }
        return false
    }
}
