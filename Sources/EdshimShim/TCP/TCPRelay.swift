import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// Copies bytes between accepted client connections and the container, on the
/// caller's thread, driven by `poll`: what docker-proxy does, for the moments the
/// shim itself serves a port (connections queued on dockerd's socket before Envoy
/// took over). Half-closes are passed on; either side failing closes both.
final class TCPRelay {
    private final class Connection {
        let client: Int32
        let upstream: Int32
        var connecting = true
        var toUpstream: [UInt8] = []
        var toClient: [UInt8] = []
        var clientDone = false
        var upstreamDone = false
        var upstreamShut = false
        var clientShut = false
        var failed = false

        init(client: Int32, upstream: Int32) {
            self.client = client
            self.upstream = upstream
        }

        var finished: Bool {
            failed || (clientShut && upstreamShut)
        }
    }

    private let target: SocketEndpoint
    private var connections: [Connection] = []
    private var connectFailures = LogThrottle()
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    /// A relay to `target`, the container.
    init(target: SocketEndpoint) {
        self.target = target
    }

    /// True when no connection is open.
    var isIdle: Bool { connections.isEmpty }

    /// The connections being relayed.
    var count: Int { connections.count }

    /// Takes over an accepted client connection and starts connecting to the container.
    func add(client: Int32) {
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        let upstream = socket(target.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard upstream >= 0 else {
            logConnectFailure(errno)
            close(client)
            return
        }
        Self.tune(client)
        Self.tune(upstream)
        let result = target.withSocketAddress { connect(upstream, $0, $1) }
        guard result == 0 || errno == EINPROGRESS else {
            logConnectFailure(errno)
            close(client)
            close(upstream)
            return
        }
        connections.append(Connection(client: client, upstream: upstream))
    }

    /// Both sides as docker-proxy's (Go's defaults): each write leaves at once (no
    /// Nagle delay behind an unacknowledged one: a request written in two parts would
    /// wait for the container's delayed ACK, 40 ms), and keepalive probes after 15 s
    /// idle, every 15 s, so that a peer gone silently (a NAT that forgot the
    /// connection) is found and the connection's two descriptors freed.
    private static func tune(_ fd: Int32) {
        var one: Int32 = 1
        var seconds: Int32 = 15
        let size = socklen_t(MemoryLayout<Int32>.size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, size)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &seconds, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &seconds, size)
    }

    /// The descriptors to poll and the events each waits for.
    func appendPollDescriptors(to fds: inout [pollfd]) {
        for connection in connections {
            var clientEvents: Int16 = 0
            var upstreamEvents: Int16 = 0
            if connection.connecting {
                upstreamEvents |= Int16(POLLOUT)
            } else {
                if connection.toUpstream.isEmpty, !connection.clientDone { clientEvents |= Int16(POLLIN) }
                if !connection.toClient.isEmpty { clientEvents |= Int16(POLLOUT) }
                if connection.toClient.isEmpty, !connection.upstreamDone { upstreamEvents |= Int16(POLLIN) }
                if !connection.toUpstream.isEmpty { upstreamEvents |= Int16(POLLOUT) }
            }
            // A side waited on for nothing is left out (a negative fd): poll reports
            // POLLERR and POLLHUP whatever the events, and a reset socket reports them
            // until it is closed, which would spin this loop while the other side drains.
            fds.append(pollfd(fd: clientEvents == 0 ? -1 : connection.client, events: clientEvents, revents: 0))
            fds.append(pollfd(fd: upstreamEvents == 0 ? -1 : connection.upstream, events: upstreamEvents, revents: 0))
        }
    }

    /// Moves bytes for the connections whose descriptors are ready. `fds` is the
    /// slice `appendPollDescriptors` added, after `poll`.
    func process(_ fds: ArraySlice<pollfd>) {
        var index = fds.startIndex
        for connection in connections {
            guard index + 1 < fds.endIndex else { break }
            let clientEvents = fds[index].revents
            let upstreamEvents = fds[index + 1].revents
            index += 2
            step(connection, clientEvents: clientEvents, upstreamEvents: upstreamEvents)
        }
        connections.removeAll { connection in
            guard connection.finished else { return false }
            close(connection.client)
            close(connection.upstream)
            return true
        }
    }

    /// Closes every connection (the shim is stopping).
    func closeAll() {
        for connection in connections {
            close(connection.client)
            close(connection.upstream)
        }
        connections.removeAll()
    }

    private func step(_ connection: Connection, clientEvents: Int16, upstreamEvents: Int16) {
        if connection.connecting {
            guard upstreamEvents != 0 else { return }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(connection.upstream, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else {
                logConnectFailure(error)
                connection.failed = true
                return
            }
            connection.connecting = false
            return
        }
        if clientEvents & Int16(POLLIN | POLLHUP | POLLERR) != 0, connection.toUpstream.isEmpty, !connection.clientDone {
            connection.clientDone = read(from: connection.client, into: &connection.toUpstream, connection)
        }
        if upstreamEvents & Int16(POLLIN | POLLHUP | POLLERR) != 0, connection.toClient.isEmpty, !connection.upstreamDone {
            connection.upstreamDone = read(from: connection.upstream, into: &connection.toClient, connection)
        }
        flush(&connection.toUpstream, to: connection.upstream, connection)
        flush(&connection.toClient, to: connection.client, connection)
        if connection.clientDone, connection.toUpstream.isEmpty, !connection.upstreamShut {
            shutdown(connection.upstream, Int32(SHUT_WR))
            connection.upstreamShut = true
        }
        if connection.upstreamDone, connection.toClient.isEmpty, !connection.clientShut {
            shutdown(connection.client, Int32(SHUT_WR))
            connection.clientShut = true
        }
    }

    /// A client's connection closed because the container could not be reached, as
    /// docker-proxy logs it (at most once a minute).
    private func logConnectFailure(_ code: Int32) {
        let message = "cannot forward a connection to \(target): \(String(cString: strerror(code))); the client's connection was closed"
        if let line = connectFailures.line(message, now: Deadline.now()) { ShimLog.warning(line) }
    }

    /// Reads what is available; returns true at end of stream.
    private func read(from fd: Int32, into pending: inout [UInt8], _ connection: Connection) -> Bool {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count > 0 {
            pending += buffer[0..<count]
            return false
        }
        if count < 0, errno == EAGAIN || errno == EINTR { return false }
        if count < 0 { connection.failed = true }
        return true
    }

    private func flush(_ pending: inout [UInt8], to fd: Int32, _ connection: Connection) {
        while !pending.isEmpty {
            let written = pending.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0, errno == EINTR { continue }
            if written < 0, errno == EAGAIN { return }
            guard written > 0 else {
                connection.failed = true
                return
            }
            // Drained, the buffer lets go of its memory: a connection that once carried
            // a burst does not keep 64 KiB for the rest of its life.
            if written == pending.count { pending = [] } else { pending.removeFirst(written) }
        }
    }
}
