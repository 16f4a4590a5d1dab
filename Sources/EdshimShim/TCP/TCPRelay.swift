import CEdshimLinux
import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// Copies bytes between accepted client connections and the container, on the
/// caller's thread: what docker-proxy does, for the moments the shim itself serves a
/// port (the server or Envoy not there, or connections queued on dockerd's socket
/// before Envoy took over). Half-closes are passed on; either side failing closes both.
///
/// The connections' descriptors sit in an epoll set that the caller polls through
/// `descriptor`, so a wakeup costs what is ready, not one entry per connection: a
/// fallback holding thousands of connections stays as quick as one holding a few.
final class TCPRelay {
    private final class Connection {
        let id: UInt64
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
        /// The events each side is watched for in the epoll set; 0: not in it.
        var clientWatched: UInt32 = 0
        var upstreamWatched: UInt32 = 0

        init(id: UInt64, client: Int32, upstream: Int32) {
            self.id = id
            self.client = client
            self.upstream = upstream
        }

        var finished: Bool {
            failed || (clientShut && upstreamShut)
        }
    }

    private static let readable = EPOLLIN.rawValue
    private static let writable = EPOLLOUT.rawValue
    private static let endOrError = EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue
    private static let readyCapacity = 64

    private let target: SocketEndpoint
    /// Created with the first connection: a shim that never relays has none.
    private var epoll: Int32 = -1
    private var connections: [UInt64: Connection] = [:]
    private var nextID: UInt64 = 0
    private var readyTokens = [UInt64](repeating: 0, count: TCPRelay.readyCapacity)
    private var readyEvents = [UInt32](repeating: 0, count: TCPRelay.readyCapacity)
    private var connectFailures = LogThrottle()
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    /// A relay to `target`, the container.
    init(target: SocketEndpoint) {
        self.target = target
    }

    deinit {
        closeAll()
    }

    /// True when no connection is open.
    var isIdle: Bool { connections.isEmpty }

    /// The connections being relayed.
    var count: Int { connections.count }

    /// Readable when a relayed connection is ready: poll it for `POLLIN` and call
    /// `process` then. -1 (which `poll` skips) before the first connection.
    var descriptor: Int32 { epoll }

    /// Takes over an accepted client connection and starts connecting to the container.
    func add(client: Int32) {
        if epoll < 0 {
            epoll = edshim_epoll_create()
            guard epoll >= 0 else {
                logConnectFailure(errno)
                close(client)
                return
            }
        }
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
        let connection = Connection(id: nextID, client: client, upstream: upstream)
        nextID += 1
        connections[connection.id] = connection
        watch(connection)
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

    /// Moves bytes for the connections that are ready; call it when `descriptor` is
    /// readable. Connections that finished are closed.
    func process() {
        guard epoll >= 0 else { return }
        let ready = Int(edshim_epoll_wait_events(epoll, &readyTokens, &readyEvents, Int32(Self.readyCapacity), 0))
        guard ready > 0 else { return }
        for index in 0..<ready {
            // A token is a connection's id and its side; a connection that finished
            // earlier in this batch is gone.
            let token = readyTokens[index]
            guard let connection = connections[token >> 1] else { continue }
            let events = readyEvents[index]
            let fromClient = token & 1 == 0
            step(connection, clientEvents: fromClient ? events : 0, upstreamEvents: fromClient ? 0 : events)
            if connection.finished {
                remove(connection)
            } else {
                watch(connection)
            }
        }
    }

    /// Closes every connection (the shim is stopping).
    func closeAll() {
        for connection in connections.values {
            close(connection.client)
            close(connection.upstream)
        }
        connections.removeAll()
        if epoll >= 0 { close(epoll) }
        epoll = -1
    }

    private func remove(_ connection: Connection) {
        // Closing a descriptor takes it out of the epoll set.
        close(connection.client)
        close(connection.upstream)
        connections[connection.id] = nil
    }

    /// Brings the epoll set in line with what each side of `connection` waits for.
    /// A side waited on for nothing is taken out: epoll reports errors and hang-ups
    /// whatever the events, and a reset socket reports them until it is closed, which
    /// would spin the caller's loop while the other side drains.
    private func watch(_ connection: Connection) {
        var client: UInt32 = 0
        var upstream: UInt32 = 0
        if connection.connecting {
            upstream = Self.writable
        } else {
            if connection.toUpstream.isEmpty, !connection.clientDone { client |= Self.readable }
            if !connection.toClient.isEmpty { client |= Self.writable }
            if connection.toClient.isEmpty, !connection.upstreamDone { upstream |= Self.readable }
            if !connection.toUpstream.isEmpty { upstream |= Self.writable }
        }
        let watched = update(connection.client, from: connection.clientWatched, to: client, token: connection.id << 1)
            && update(connection.upstream, from: connection.upstreamWatched, to: upstream, token: connection.id << 1 | 1)
        guard watched else {
            // No kernel memory for the set: the connection cannot be driven.
            logConnectFailure(errno)
            remove(connection)
            return
        }
        connection.clientWatched = client
        connection.upstreamWatched = upstream
    }

    private func update(_ fd: Int32, from old: UInt32, to new: UInt32, token: UInt64) -> Bool {
        guard old != new else { return true }
        let operation = old == 0 ? EPOLL_CTL_ADD : (new == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD)
        return edshim_epoll_control(epoll, operation, fd, new, token) == 0
    }

    private func step(_ connection: Connection, clientEvents: UInt32, upstreamEvents: UInt32) {
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
        if clientEvents & Self.endOrError != 0, connection.toUpstream.isEmpty, !connection.clientDone {
            connection.clientDone = read(from: connection.client, into: &connection.toUpstream, connection)
        }
        if upstreamEvents & Self.endOrError != 0, connection.toClient.isEmpty, !connection.upstreamDone {
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
        let message = "cannot forward a connection to \(target): \(ErrorText.describe(code)); the client's connection was closed"
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
