import Foundation
import EdshimCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// The server's own HTTP endpoint (`--admin-address`, 127.0.0.1:7776 by default):
/// `GET /healthz` for probes (503, saying why, while a write of the state file or of
/// Envoy's configuration keeps failing), `GET /status` for the registrations as JSON (what
/// `edshim status --json` prints). Read-only; loopback unless told otherwise, or a
/// Unix socket that only root and the socket group may use, as the registration
/// socket; at most 128 connections at once, each closed after 30 s in which it sent
/// nothing (`AdminConnectionLimits`).
struct AdminEndpoint: Service {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let address: AdminAddress
    let listening: Listening
    /// Who may use a Unix socket: the registration socket's owner and group.
    let policy: PeerPolicy
    let registrar: Registrar
    let health: WriteHealth
    let logger: Logger
    private let budget = AdminConnectionBudget()

    init(address: AdminAddress, listening: Listening, policy: PeerPolicy, registrar: Registrar, health: WriteHealth, logger: Logger) {
        self.address = address
        self.listening = listening
        self.policy = policy
        self.registrar = registrar
        self.health = health
        self.logger = logger
    }

    /// Refuses an address something already listens on, or a socket path that cannot
    /// be one, before the server starts anything (`listen` binds it once the server
    /// has read its state). A socket in the directory of the shims' socket
    /// (`/run/edshim`, gone after each reboot) may find it missing: the server makes
    /// it before the endpoint binds.
    static func refuseIfTaken(_ address: AdminAddress, besideShimsSocket shimsSocket: String) throws {
        switch address {
        case .tcp(let endpoint): try refuseIfTaken(endpoint)
        case .unixSocket(let path): try refuseIfTaken(path, madeDirectory: AtomicFile.parent(of: shimsSocket))
        }
    }

    private static func refuseIfTaken(_ address: SocketEndpoint) throws {
        let fd = socket(address.ip.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard address.withSocketAddress({ bind(fd, $0, $1) }) == 0 else {
            throw ServerError("--admin-address \(address): \(ErrorText.describe(errno)); choose a free address, or off")
        }
    }

    /// A path is free when nothing is there, or a socket nothing listens on (left by a
    /// server that was killed): that one is replaced.
    private static func refuseIfTaken(_ path: String, madeDirectory: String?) throws {
        try socketPath(path).refuseIfTaken()
        var info = stat()
        if lstat(path, &info) != 0, let directory = AtomicFile.parent(of: path), ResolvedPath.of(directory) != madeDirectory.map(ResolvedPath.of),
           stat(directory, &info) != 0 || (info.st_mode & S_IFMT) != S_IFDIR {
            throw ServerError("--admin-address unix:\(path): \(directory) is not a directory: create it, or choose another path")
        }
    }

    private static func socketPath(_ path: String) -> UnixSocketPath {
        UnixSocketPath(path: path, option: "--admin-address unix:")
    }

    /// The endpoint's socket, bound before the services run: the server binds it
    /// before the shims' socket, so a server whose socket answers (and that told
    /// systemd READY=1) answers on its admin address too.
    struct Listening {
        let server: UnixSocketPath.Server
        /// A Unix socket, removed at the stop if it is still the one bound.
        let unixSocket: (path: UnixSocketPath, identity: UnixSocketPath.Identity)?
    }

    static func listen(on address: AdminAddress, policy: PeerPolicy, logger: Logger) async throws -> Listening {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.autoRead, value: false)
            // A client may close its sending side after its request (HTTP/1.0 tools,
            // `nc -N`): it still gets the answer.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
        switch address {
        case .tcp(let endpoint):
            do {
                let server = try await bootstrap
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .bind(host: endpoint.ip.description, port: Int(endpoint.port), childChannelInitializer: Self.initializer)
                logListening(on: address, logger: logger)
                return Listening(server: server, unixSocket: nil)
            } catch {
                throw ServerError("--admin-address \(address): \(error); choose a free address, or off")
            }
        case .unixSocket(let path):
            let socket = Self.socketPath(path)
            let (server, bound) = try await socket.bind(policy: policy, logger: logger) {
                try await bootstrap.bind(unixDomainSocketPath: $0, childChannelInitializer: Self.initializer)
            }
            logListening(on: address, logger: logger)
            return Listening(server: server, unixSocket: (socket, bound))
        }
    }

    private static func logListening(on address: AdminAddress, logger: Logger) {
        logger.info("admin endpoint listening", metadata: ["address": "\(address)", "try": "\(example(address))"])
    }

    func run() async throws {
        defer { listening.unixSocket.map { $0.path.remove(ifStill: $0.identity) } }
        try await listening.server.serveConnections { connection in await serve(connection) }
    }

    /// Makes each accepted connection an HTTP/1.1 server's.
    private static let initializer: @Sendable (any Channel) -> EventLoopFuture<any Channel> = { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: AdminConnectionLimits.idleTimeout))
            try channel.pipeline.syncOperations.addHandler(CloseWhenIdle())
            try channel.pipeline.syncOperations.addHandler(InboundGate())
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            return channel
        }
    }

    /// How to ask it, for the log.
    private static func example(_ address: AdminAddress) -> String {
        switch address {
        case .tcp(let endpoint): "curl http://\(endpoint)/status"
        case .unixSocket(let path): "curl --unix-socket \(path) http://edshim/status"
        }
    }

    private func serve(_ channel: any Channel) async {
        guard budget.take() else {
            channel.close(promise: nil)
            return
        }
        defer { budget.giveBack() }
        // On a Unix socket, the same rule as the shims' socket, checked as the peer was
        // when it connected: a loosened file mode lets no one else in.
        if case .unixSocket = address, let peer = try? await SocketListener.credentials(of: channel), let refusal = policy.refusal(for: peer) {
            logger.notice("refused an admin endpoint peer", metadata: ["peer": "\(peer)", "reason": "\(refusal.message)"])
            channel.close(promise: nil)
            return
        }
        guard let connection = try? await adopt(channel, as: Connection.self) else {
            channel.close(promise: nil)
            return
        }
        // On shutdown, stop reading: a request being answered still gets its answer,
        // and an idle keep-alive client (a dashboard) does not hold the server's stop;
        // nor does one that does not read its answers: closed once they stall.
        try? await withGracefulShutdownHandler {
            try await answerRequests(on: connection)
        } onGracefulShutdown: {
            channel.close(mode: .input, promise: nil)
            SocketListener.closeOnceAnswersStall(channel)
        }
    }

    private func answerRequests(on connection: Connection) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var request: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let head): request = head
                case .body: continue
                case .end:
                    guard let head = request else { continue }
                    let (status, type, body) = await respond(to: head)
                    var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", String(body.utf8.count))])
                    if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
                    if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
                    try await outbound.write(.head(HTTPResponseHead(version: head.version, status: status, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
                    try await outbound.write(.end(nil))
                    if !head.isKeepAlive { return }
                }
            }
        }
    }

    /// The path a request names, without its query, also in absolute form
    /// (`http://host/healthz`, which HTTP/1.1 servers must take).
    static func path(of target: String) -> String {
        URLComponents(string: target)?.path ?? target
    }

    private func respond(to head: HTTPRequestHead) async -> (HTTPResponseStatus, String, String) {
        guard head.method == .GET || head.method == .HEAD else {
            return (.methodNotAllowed, "text/plain", "only GET or HEAD\n")
        }
        if let refusal = AdminHostCheck.refusal(host: head.headers.first(name: "Host"), at: address) {
            return (.forbidden, "text/plain", refusal)
        }
        switch Self.path(of: head.uri) {
        case "/healthz":
            // 503 while a write keeps failing (a full disk): the server runs, but
            // what changes reaches neither Envoy nor the state file.
            let problems = health.problems()
            return problems.isEmpty ? (.ok, "text/plain", "ok\n") : (.serviceUnavailable, "text/plain", problems.joined(separator: "\n") + "\n")
        case "/status":
            return (.ok, "application/json", StatusReport.json(await registrar.registrations()) + "\n")
        default:
            return (.notFound, "text/plain", "edshim admin: GET /healthz or /status\n")
        }
    }
}
