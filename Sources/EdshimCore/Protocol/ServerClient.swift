#if canImport(Glibc)
import Glibc
#endif

/// A blocking client of the server's Unix socket: one request line, one response
/// line, per connection. Plain system calls, because the shim uses it.
public struct ServerClient: Sendable {
    /// Why an exchange did not produce a response.
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// The socket could not be connected (no server, no permission).
        case unreachable(String)
        /// The server did not answer before the deadline.
        case timedOut
        /// The server has not even read the request after `unreadPatienceMilliseconds`:
        /// it is stopped or hung (one that works reads at once, whatever the answer
        /// waits on). It may read and act on it later.
        case notRead
        /// The server did not take the connection before the deadline (its backlog
        /// full): the request was never sent.
        case timedOutBeforeSending
        /// The interrupt descriptor became readable first (a signal arrived).
        case interrupted
        /// The interrupt came while the server was not taking the connection: the
        /// request was never sent.
        case interruptedBeforeSending
        /// The server answered something that is not a response.
        case malformed(String)

        /// Whether the server may have received the request, and acted on it: not when
        /// no connection was made, or the request was never sent.
        public var requestMayHaveArrived: Bool {
            switch self {
            case .unreachable, .timedOutBeforeSending, .interruptedBeforeSending: false
            case .timedOut, .notRead, .interrupted, .malformed: true
            }
        }

        /// One line for people.
        public var description: String {
            switch self {
            case .unreachable(let reason): reason
            case .timedOut: "the edshim server did not answer in time"
            case .notRead: "the edshim server has not read the request in \(ServerClient.unreadPatienceMilliseconds / 1000) s: it is stopped or hung (systemctl status edshim)"
            case .timedOutBeforeSending: "the edshim server did not take the connection in time"
            case .interrupted: "interrupted by a signal"
            case .interruptedBeforeSending: "interrupted by a signal before the edshim server took the connection"
            case .malformed(let reason): "the edshim server answered something unreadable: \(reason)"
            }
        }
    }

    /// The socket path.
    public let socketPath: String

    /// How long a request may wait unread before the server counts as stopped or
    /// hung, not busy: the server reads every request as it comes, and answers
    /// later (a registration waits for Envoy for up to 10 s). Without it, each shim
    /// would wait the whole 12 s for a server stopped with SIGSTOP or hung, and
    /// dockerd starts a container's proxies one after another.
    public static let unreadPatienceMilliseconds: Int64 = 2000

    /// Whether what was written on `fd` still waits, unread by the server.
    static func requestUnread(on fd: Int32) -> Bool {
        SocketQueues.unreadBytes(fd) > 0
    }

    /// A client of `socketPath`.
    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// A client of `$EDSHIM_SOCKET`, else the default socket.
    public static func fromEnvironment() -> ServerClient {
        ServerClient(socketPath: ProcessEnvironment.value(EdshimDefaults.socketEnvironmentVariable) ?? EdshimDefaults.socketPath)
    }

    /// Sends `request` and waits for the response until `deadline`, or until
    /// `interrupt` (a signalfd) becomes readable.
    public func exchange(_ request: WireRequest, deadline: Deadline, interrupt: Int32? = nil) throws(Failure) -> WireResponse {
        let fd = try connect(deadline: deadline, interrupt: interrupt)
        defer { close(fd) }
        try send(request.encoded, on: fd)
        let line = try receiveLine(on: fd, deadline: deadline, interrupt: interrupt)
        do {
            return try WireResponse.decode(line)
        } catch {
            throw .malformed(error.message)
        }
    }

    /// How long `begin` waits for a server too busy to take the connection.
    public static let beginConnectMilliseconds: Int64 = 100

    /// Starts an exchange without waiting for its answer: for callers that run their
    /// own `poll` loop (the shim while it serves a port itself). Poll `descriptor` for
    /// input and call `receive()`; `close()` when done.
    public func begin(_ request: WireRequest) throws(Failure) -> PendingExchange {
        let fd = try connect(deadline: .after(milliseconds: Self.beginConnectMilliseconds), interrupt: nil)
        do {
            try send(request.encoded, on: fd)
        } catch {
            close(fd)
            throw error
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return PendingExchange(descriptor: fd)
    }

    /// Why no socket can ever be reached at `socketPath` (it is too long), or nil:
    /// waiting for a server would not help.
    public var pathProblem: String? {
        guard socketPath.utf8.count > UnixSocketAddress.maximumPathLength else { return nil }
        return "socket path \(socketPath) is longer than \(UnixSocketAddress.maximumPathLength) bytes: choose a shorter one (EDSHIM_SOCKET, or --socket)"
    }

    /// Whether nothing listens at `socketPath`: no such socket, or one no process
    /// listens on (refused). False when something does, or when it cannot be told
    /// (no permission): only a certain absence counts.
    public var nothingListens: Bool {
        guard pathProblem == nil else { return true }
        let fd = Self.nonBlockingSocket()
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return connectOnce(fd) != 0 && [ENOENT, ENOTDIR, ECONNREFUSED].contains(errno)
    }

    /// Why waiting for a server at `socketPath` would not help, or nil: the path is
    /// too long, names something that is not a socket (the server refuses to start
    /// there), or a socket this user may not connect to.
    public var lastingProblem: String? {
        if let pathProblem { return pathProblem }
        let unreachable = "cannot reach the edshim server at \(socketPath)"
        let denied = "\(unreachable): \(ErrorText.describe(EACCES)); run as root or as a member of the socket's group"
        var info = stat()
        guard stat(socketPath, &info) == 0 else { return errno == EACCES ? denied : nil }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            let kind = info.st_mode & S_IFMT == S_IFDIR ? "a directory" : "a file"
            return "\(unreachable): it is \(kind), not a socket; name the server's socket (--socket or EDSHIM_SOCKET: the server's --socket, by default \(EdshimDefaults.socketPath))"
        }
        return access(socketPath, W_OK) != 0 && errno == EACCES ? denied : nil
    }

    /// Connects without ever blocking past `deadline` or `interrupt`: a blocking
    /// connect to a Unix socket whose server has stopped accepting (its backlog full)
    /// would wait for as long as that lasts, deaf to signals taken by a signalfd.
    /// Non-blocking, such a connect fails at once with EAGAIN, and is tried again.
    private func connect(deadline: Deadline, interrupt: Int32?) throws(Failure) -> Int32 {
        if let pathProblem { throw .unreachable(pathProblem) }
        let fd = Self.nonBlockingSocket()
        guard fd >= 0 else { throw .unreachable("socket: \(ErrorText.describe(errno))") }
        var result: Int32
        while true {
            result = connectOnce(fd)
            guard result != 0, errno == EAGAIN || errno == EINTR else { break }
            guard !deadline.hasPassed else {
                close(fd)
                throw .timedOutBeforeSending
            }
            var waiter = [pollfd(fd: interrupt ?? -1, events: Int16(POLLIN), revents: 0)]
            if poll(&waiter, 1, min(10, deadline.remaining)) > 0 {
                close(fd)
                throw .interruptedBeforeSending
            }
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        guard result == 0 else {
            let code = errno
            close(fd)
            throw .unreachable(lastingProblem ?? "cannot reach the edshim server at \(socketPath): \(ErrorText.describe(code)); is `edshim server` running? (systemctl start edshim, or set EDSHIM_SOCKET)")
        }
        return fd
    }

    /// A Unix stream socket, non-blocking and closed on exec.
    private static func nonBlockingSocket() -> Int32 {
        socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    }

    /// One `connect` of `fd` to `socketPath`; -1 with `errno` set when it fails.
    private func connectOnce(_ fd: Int32) -> Int32 {
        UnixSocketAddress.with(path: socketPath) { Glibc.connect(fd, $0, $1) } ?? {
            errno = ENOENT  // an empty path names no socket
            return -1
        }()
    }

    private func send(_ bytes: [UInt8], on fd: Int32) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else {
                throw .unreachable("sending to the edshim server at \(socketPath): \(ErrorText.describe(errno))")
            }
            offset += written
        }
    }

    private func receiveLine(on fd: Int32, deadline: Deadline, interrupt: Int32?) throws(Failure) -> [UInt8] {
        var line: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        if let interrupt { fds.append(pollfd(fd: interrupt, events: Int16(POLLIN), revents: 0)) }
        // Once the server has read the request, it only remains to wait for the answer.
        var readBy: Deadline? = .after(milliseconds: Self.unreadPatienceMilliseconds)
        while true {
            if deadline.hasPassed { throw .timedOut }
            let ready = poll(&fds, nfds_t(fds.count), min(deadline.remaining, readBy?.remaining ?? Int32.max))
            if ready < 0, errno == EINTR { continue }
            if ready == 0 {
                if let due = readBy, due.hasPassed {
                    if Self.requestUnread(on: fd) { throw .notRead }
                    readBy = nil
                }
                continue
            }
            if fds.count > 1, fds[1].revents != 0 { throw .interrupted }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                throw .malformed(count == 0 ? "connection closed before a response" : ErrorText.describe(errno))
            }
            let searched = line.count
            line += chunk[0..<count]
            if let newline = line[searched...].firstIndex(of: UInt8(ascii: "\n")) {
                return Array(line[...newline])
            }
            if line.count > WireProtocol.maximumResponseBytes {
                throw .malformed("response larger than \(WireProtocol.maximumResponseBytes) bytes")
            }
        }
    }
}

/// An exchange whose answer has not been read yet (`ServerClient.begin`).
public struct PendingExchange: Sendable {
    /// Poll this for input.
    public let descriptor: Int32
    private var received: [UInt8] = []

    /// When the request, if still unread, shows a stopped or hung server.
    private let readBy = Deadline.after(milliseconds: ServerClient.unreadPatienceMilliseconds)

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Whether the server has still not read the request, `unreadPatienceMilliseconds`
    /// after it was sent: it is stopped or hung.
    public var isUnreadTooLong: Bool {
        readBy.hasPassed && ServerClient.requestUnread(on: descriptor)
    }

    /// Reads what has arrived; the response once the line is complete, nil before.
    public mutating func receive() throws(ServerClient.Failure) -> WireResponse? {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            if count < 0, errno == EAGAIN { return nil }
            guard count > 0 else {
                throw .malformed(count == 0 ? "connection closed before a response" : ErrorText.describe(errno))
            }
            let searched = received.count
            received += chunk[0..<count]
            if let newline = received[searched...].firstIndex(of: UInt8(ascii: "\n")) {
                do {
                    return try WireResponse.decode(Array(received[...newline]))
                } catch {
                    throw .malformed(error.message)
                }
            }
            if received.count > WireProtocol.maximumResponseBytes {
                throw .malformed("response larger than \(WireProtocol.maximumResponseBytes) bytes")
            }
        }
    }

    /// Closes the connection.
    public func close() {
        Glibc.close(descriptor)
    }
}
