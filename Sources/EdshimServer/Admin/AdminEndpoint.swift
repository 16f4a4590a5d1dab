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
/// `edshim status --json` prints). Read-only; loopback unless told otherwise; at most
/// 128 connections at once, each closed after 30 s in which it sent nothing
/// (`AdminConnectionLimits`).
struct AdminEndpoint: Service {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let address: SocketEndpoint
    let registrar: Registrar
    let health: WriteHealth
    let logger: Logger
    private let budget = AdminConnectionBudget()

    init(address: SocketEndpoint, registrar: Registrar, health: WriteHealth, logger: Logger) {
        self.address = address
        self.registrar = registrar
        self.health = health
        self.logger = logger
    }

    /// Refuses an address something already listens on, before the server starts
    /// anything (the endpoint itself binds it when the services run).
    static func refuseIfTaken(_ address: SocketEndpoint) throws {
        let fd = socket(address.ip.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard address.withSocketAddress({ bind(fd, $0, $1) }) == 0 else {
            throw ServerStartupError("--admin-address \(address): \(String(cString: strerror(errno))); choose a free address, or off")
        }
    }

    func run() async throws {
        let server: NIOAsyncChannel<any Channel, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.autoRead, value: false)
                // A client may close its sending side after its request (HTTP/1.0
                // tools, `nc -N`): it still gets the answer.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(host: address.ip.description, port: Int(address.port)) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: AdminConnectionLimits.idleTimeout))
                        try channel.pipeline.syncOperations.addHandler(CloseWhenIdle())
                        try channel.pipeline.syncOperations.addHandler(InboundGate())
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        return channel
                    }
                }
        } catch {
            throw ServerStartupError("--admin-address \(address): \(error); choose a free address, or off")
        }
        logger.info("admin endpoint listening", metadata: ["address": "http://\(address)/status"])
        try await server.serveConnections { connection in await serve(connection) }
    }

    private func serve(_ channel: any Channel) async {
        guard budget.take() else {
            channel.close(promise: nil)
            return
        }
        defer { budget.giveBack() }
        guard let connection = try? await adopt(channel, as: Connection.self) else {
            channel.close(promise: nil)
            return
        }
        // On shutdown, stop reading: a request being answered still gets its answer,
        // and an idle keep-alive client (a dashboard) does not hold the server's stop.
        try? await withGracefulShutdownHandler {
            try await answerRequests(on: connection)
        } onGracefulShutdown: {
            channel.close(mode: .input, promise: nil)
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
                    if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
                    try await outbound.write(.head(HTTPResponseHead(version: head.version, status: status, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
                    try await outbound.write(.end(nil))
                    if !head.isKeepAlive { return }
                }
            }
        }
    }

    private func respond(to head: HTTPRequestHead) async -> (HTTPResponseStatus, String, String) {
        guard head.method == .GET || head.method == .HEAD else {
            return (.methodNotAllowed, "text/plain", "only GET\n")
        }
        switch head.uri.split(separator: "?").first.map(String.init) ?? head.uri {
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
