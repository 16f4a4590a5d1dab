import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// After `0\n` with dockerd ≥ 28: the shim still holds the socket dockerd bound,
/// which shares the port with Envoy's listeners. Connections the kernel queued on
/// it are accepted and relayed to the container, until dockerd has closed its copy;
/// then the shim closes the socket and Envoy alone serves the port.
enum TCPHandover {
    /// The most the shim waits for dockerd to close its copy.
    static let parentGraceMilliseconds: Int64 = 1000

    /// Runs the handover; returns true if a termination signal arrived meanwhile.
    static func run(_ held: HeldListenSocket, container: SocketEndpoint, signals: TerminationSignals) -> Bool {
        let listener = held.descriptor
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)
        let relay = TCPRelay(target: container)
        let grace = Deadline.after(milliseconds: parentGraceMilliseconds)
        var listening = true
        var handed = 0
        defer { relay.closeAll() }
        while listening || !relay.isIdle {
            if listening {
                handed += acceptPending(on: listener, into: relay)
                if grace.hasPassed || held.parentReleased() {
                    handed += acceptPending(on: listener, into: relay)
                    close(listener)
                    listening = false
                    if handed > 0 { ShimLog.info("relayed \(handed) connection(s) queued before Envoy took the port") }
                    continue
                }
            }
            var fds = [pollfd(fd: signals.descriptor, events: Int16(POLLIN), revents: 0)]
            if listening { fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0)) }
            let relayStart = fds.count
            relay.appendPollDescriptors(to: &fds)
            let ready = poll(&fds, nfds_t(fds.count), listening ? 10 : -1)
            if ready < 0, errno != EINTR { break }
            if fds[0].revents != 0, signals.takePending() {
                if listening { close(listener) }
                return true
            }
            relay.process(fds[relayStart...])
        }
        return false
    }

    private static func acceptPending(on listener: Int32, into relay: TCPRelay) -> Int {
        var count = 0
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return count }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            relay.add(client: client)
            count += 1
        }
    }
}
