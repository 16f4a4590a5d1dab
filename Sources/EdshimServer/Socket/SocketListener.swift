import CEdshimLinux
import EdshimCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// The Unix socket shims, `edshim status` and `edshim resync` talk to: one JSON
/// request line, one JSON response line, as often as the client likes on one
/// connection (docs/protocol.md).
struct SocketListener: Service {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    let path: String
    let policy: PeerPolicy
    let registrar: Registrar
    let logger: Logger
    let health: WriteHealth
    private let limiter: RateLimiter
    private let connections: ConnectionCount
    /// Those of peers the policy refuses, kept apart (`refusedLimit`).
    private let refusedConnections: ConnectionCount
    /// The most connections of refused peers open at once.
    static let refusedLimit = 64

    /// How long a connection may go without a request before it is closed
    /// (`IdleConnectionCloser`); one past the limit of open connections, before its
    /// first request.
    static let idleLimit = TimeAmount.seconds(30)
    static let idleLimitPastTheMost = TimeAmount.seconds(1)

    init(path: String, policy: PeerPolicy, peerRate: Double, registrar: Registrar, health: WriteHealth, logger: Logger) {
        self.path = path
        self.health = health
        self.policy = policy
        self.limiter = RateLimiter(capacity: max(1, peerRate * 2), perSecond: peerRate)
        self.connections = ConnectionCount(limit: ConnectionCount.limit(forDescriptors: DescriptorLimit.current), logger: logger)
        self.refusedConnections = ConnectionCount(limit: Self.refusedLimit, logger: logger, fullMessage: "\(Self.refusedLimit) connections of peers the socket refuses are open (its mode loosened past its group?): more are closed unanswered; the shims' connections are not affected")
        self.registrar = registrar
        self.logger = logger
    }

    /// Everything that can refuse the socket, checked before the server changes
    /// anything: the path fits, and no other server answers on it.
    static func refuseUnusable(path: String) throws {
        guard path.utf8.count <= UnixSocketAddress.maximumPathLength else {
            throw ServerError("--socket \(path) is \(path.utf8.count) bytes long; a Unix socket path holds at most \(UnixSocketAddress.maximumPathLength): choose a shorter one")
        }
        try UnixSocketPath(path: path, option: "--socket").refuseIfTaken()
    }

    func run() async throws {
        let socket = UnixSocketPath(path: path, option: "--socket")
        let (server, bound) = try await socket.bind(policy: policy, logger: logger, bind)
        logger.info("listening", metadata: ["socket": "\(path)", "group": "\(policy.group?.name ?? "(root only)")"])
        SystemdNotifier.notify("READY=1")
        let (rebound, found) = AsyncStream.makeStream(of: UnixSocketPath.Server.self)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await serveConnections(on: server, notifyingSystemd: true) }
            group.addTask { await keepInPlace(socket, bound: (server, bound), rebound: found) }
            for await server in rebound {
                group.addTask { try await serveConnections(on: server, notifyingSystemd: false) }
            }
        }
    }

    /// Looks for the socket at its path every second until the server stops, and
    /// binds it again when it is gone (`rm` of the socket or its directory): a shim
    /// that cannot reach it serves its port itself, for as long as nobody notices.
    /// Each new socket goes to `rebound`, and the one it replaces stops listening. At
    /// the stop, removes the socket it bound last, if it is still at its path.
    private func keepInPlace(_ socket: UnixSocketPath, bound: (server: UnixSocketPath.Server, identity: UnixSocketPath.Identity), rebound: AsyncStream<UnixSocketPath.Server>.Continuation) async {
        var socket = socket
        var current = bound
        var lastProblem: String?
        defer {
            socket.remove(ifStill: current.identity)
            rebound.finish()
        }
        while await !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.socketCheckInterval) }
            guard await !Task.isShuttingDownGracefully, !socket.stillHolds(current.identity) else { continue }
            let replacement = UnixSocketPath(path: path, option: "--socket")
            do {
                // Its directory too, when that went (`rm -rf /run/edshim`).
                try Self.prepareDirectory(of: path, policy: policy, logger: logger)
                let (server, identity) = try await replacement.bind(policy: policy, logger: logger, bind)
                current.server.channel.close(promise: nil)
                current = (server, identity)
                socket = replacement
                rebound.yield(server)
                health.succeeded(.socket)
                lastProblem = nil
                logger.error("the socket was removed from its path while the server ran (shims could not reach it, and served their ports themselves): bound again", metadata: ["socket": "\(path)"])
            } catch {
                let problem = "\(error)"
                health.failed(.socket, problem)
                if problem != lastProblem {
                    logger.error("the socket is gone from its path and cannot be bound again; shims serve their ports themselves until it is (retried every second)", metadata: ["socket": "\(path)", "error": "\(problem)"])
                }
                lastProblem = problem
            }
        }
    }

    /// How often the socket is looked for at its path.
    static let socketCheckInterval = Duration.seconds(1)

    private func serveConnections(on server: UnixSocketPath.Server, notifyingSystemd: Bool) async throws {
        try await server.serveConnections(onShutdown: { if notifyingSystemd { SystemdNotifier.notify("STOPPING=1") } }) { connection in
            await serve(connection)
        }
    }

    private func bind(_ path: String) async throws -> UnixSocketPath.Server {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.autoRead, value: false)
            // A client may close its side once it has sent (`echo … | socat - UNIX-CONNECT:…`
            // does): its requests are still answered before the connection closes.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(unixDomainSocketPath: path) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(BoundedLineDecoder(maximumLength: WireProtocol.maximumRequestBytes)),
                        InboundGate()
                    )
                    return channel
                }
            }
    }

    /// The peer's credentials, as the kernel took them when it connected (SO_PEERCRED,
    /// SO_PEERGROUPS): the process may have exited since, and its PID be another's.
    static func credentials(of channel: any Channel) async throws -> PeerCredentials {
        guard let provider = channel as? any SocketOptionProvider else {
            throw ServerError("the connection offers no peer credentials")
        }
        let credentials: edshim_ucred = try await provider
            .unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)).get()
        let groups: edshim_peer_groups? = try? await provider
            .unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(EDSHIM_SO_PEERGROUPS)).get()
        return PeerCredentials(credentials, groups: groups)
    }

    private func serve(_ channel: any Channel) async {
        let peer: PeerCredentials
        do {
            peer = try await Self.credentials(of: channel)
        } catch {
            logger.debug("dropped a connection", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
            return
        }
        // Judged once, as the peer was when it connected (SO_PEERCRED, SO_PEERGROUPS):
        // its groups read from /proc later could be another process's, its PID
        // reused once it exited and a child kept the connection.
        let policyRefusal = policy.refusal(for: peer)
        // A refused peer (a socket mode loosened past the group) counts among the
        // refused only, gets its answer and no more: it cannot take the connections
        // the shims need. Past the refused ones' limit, it is closed unanswered.
        let count = policyRefusal == nil ? connections : refusedConnections
        let admitted = count.enter()
        defer { count.leave() }
        if policyRefusal != nil, !admitted {
            channel.close(promise: nil)
            return
        }
        let refusal = policyRefusal ?? (admitted ? nil : WireError(.rateLimited, "the server has \(connections.limit) client connections open, the most it keeps; retry in a moment"))
        let connection: Connection
        do {
            try await channel.pipeline.addHandler(IdleConnectionCloser(limit: refusal == nil ? Self.idleLimit : Self.idleLimitPastTheMost))
            connection = try await adopt(channel)
        } catch {
            logger.debug("dropped a connection", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
            return
        }
        do {
            // On shutdown, stop reading: the request being answered still gets its
            // answer, and an idle client (an operator's socat) does not hold the stop.
            // A client that does not read its answers would: closed once its answers
            // have stalled.
            try await withGracefulShutdownHandler {
                try await answerRequests(on: connection, from: peer, refusal: refusal, once: refusal != nil)
            } onGracefulShutdown: {
                channel.close(mode: .input, promise: nil)
                Self.closeOnceAnswersStall(channel)
            }
        } catch {
            logger.debug("connection ended", metadata: ["peer": "\(peer)", "error": "\(error)"])
        }
    }

    /// How often a stopping server looks for connections whose answers go unread.
    static let answerGrace = TimeAmount.seconds(2)

    /// Closes `channel` once answers wait in it that its client does not read (the
    /// channel is no longer writable); a request still being worked on (a registration
    /// waiting for Envoy, up to 10 s) keeps its connection and gets its answer.
    static func closeOnceAnswersStall(_ channel: any Channel) {
        channel.eventLoop.scheduleTask(in: answerGrace) {
            guard channel.isActive else { return }
            if channel.isWritable {
                closeOnceAnswersStall(channel)
            } else {
                channel.close(promise: nil)
            }
        }
    }

    /// Answers each request line in order until the client stops sending (after the
    /// first, when `once`).
    private func answerRequests(on connection: Connection, from peer: PeerCredentials, refusal: WireError?, once: Bool) async throws {
        try await connection.executeThenClose { inbound, outbound in
            do {
                for try await line in inbound {
                    let response = await answer(line, from: peer, refusal: refusal)
                    try await outbound.write(ByteBuffer(bytes: response.encoded))
                    if once { break }
                }
            } catch is BoundedLineDecoder.LineTooLong {
                let error = WireError(.tooLarge, "request line exceeds \(WireProtocol.maximumRequestBytes) bytes")
                logger.notice("refused an oversized request", metadata: ["peer": "\(peer)"])
                try await outbound.write(ByteBuffer(bytes: WireResponse.failure(error).encoded))
            }
        }
    }

    /// Checks the peer's rate, then refuses a peer the policy refused (`refusal`) and
    /// a malformed request, else asks the registrar.
    private func answer(_ line: ByteBuffer, from peer: PeerCredentials, refusal: WireError?) async -> WireResponse {
        // The rate first: a refused peer's requests must not flood the log either.
        guard await limiter.admit(peer.pid) else {
            return .failure(WireError(.rateLimited, "too many requests from pid \(peer.pid); slow down and retry"))
        }
        if let refusal {
            // One past the most connections: `ConnectionCount` logged the limit once.
            if refusal.code != .rateLimited {
                logger.notice("refused a peer", metadata: ["peer": "\(peer)", "reason": "\(refusal.message)"])
            }
            return .failure(refusal)
        }
        do throws(WireError) {
            return await registrar.handle(try WireRequest.decode(Array(buffer: line)), from: peer)
        } catch {
            logger.notice("refused a malformed request", metadata: ["peer": "\(peer)", "error": "\(error)"])
            return .failure(error)
        }
    }

    /// The socket's directory, created when missing (mode 0750, the socket group's, so
    /// only root and the group can reach the socket; missing parents above it get
    /// 0755, as `mkdir -p` gives them): once nothing else can refuse the server's
    /// start, so that a refused server leaves no directory behind. An existing
    /// directory is left as is.
    static func prepareDirectory(of path: String, policy: PeerPolicy, logger: Logger) throws {
        guard let directory = AtomicFile.parent(of: path) else { return }
        var info = stat()
        if stat(directory, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw ServerError("--socket \(path): \(directory) is not a directory")
            }
            warnIfGroupCannotEnter(directory, info: info, policy: policy, logger: logger)
            return
        }
        do {
            if let above = AtomicFile.parent(of: directory) { try AtomicFile.makeDirectories(above) }
            try AtomicFile.makeDirectories(directory, mode: 0o750)
        } catch {
            throw ServerError("\(error.description): create it or choose another --socket")
        }
        guard chmod(directory, 0o750) == 0 else {
            throw ServerError("cannot set mode 0750 on \(directory): \(ErrorText.describe(errno))")
        }
        try SocketGroup.give(directory, policy: policy, logger: logger) { chown(directory, $0, $1) }
    }

    /// An existing directory is left as it is (it may be shared, like /run), but one
    /// the socket group cannot enter keeps that group's shims out as surely as the
    /// socket's mode would: say so, and how to fix it. (A /run/edshim made before the
    /// group existed, or before --socket-group changed, stays so until the next boot.)
    private static func warnIfGroupCannotEnter(_ directory: String, info: stat, policy: PeerPolicy, logger: Logger) {
        guard let group = policy.group else { return }
        // A server not run as root outside the group cannot give it the socket either,
        // and has said so (`SocketGroup.give`).
        guard geteuid() == 0 || SocketGroup.isMember(of: group.gid) else { return }
        let mode = info.st_mode
        let groupCanEnter = info.st_gid == group.gid ? mode & S_IXGRP != 0 : mode & S_IXOTH != 0
        guard !groupCanEnter else { return }
        logger.warning("members of the socket group cannot reach the socket: its directory does not let them in", metadata: [
            "directory": "\(directory)", "group": "\(group.name)",
            "owner_gid": "\(info.st_gid)", "mode": "\(String(mode & 0o7777, radix: 8))",
            "fix": "chgrp \(group.name) \(directory) && chmod 0750 \(directory) (the server creates it so when it is missing)",
        ])
    }
}

