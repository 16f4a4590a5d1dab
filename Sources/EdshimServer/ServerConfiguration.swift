import EdshimCore

/// Everything `edshim server` is told on its command line.
public struct ServerConfiguration: Sendable {
    /// The Unix socket shims register on.
    public var socketPath: String
    /// The group allowed on the socket besides root; nil: `docker` when it exists.
    public var socketGroup: String?
    /// Where `lds.json` and `cds.json` go.
    public var xdsDirectory: String
    /// Where the registry is kept across restarts.
    public var stateFile: String
    /// The server's own admin and status endpoint; nil: none.
    public var adminAddress: AdminAddress?
    /// The Docker Engine API.
    public var dockerHost: String
    /// The mode for containers without a mode label.
    public var defaultMode: ProxyMode
    /// How long a registration waits for Envoy to listen before it fails.
    public var readyTimeout: Duration
    /// How long a deregistration waits for Envoy to let go of the port.
    public var releaseTimeout: Duration
    /// Requests per second one peer process may send (bursts of twice as many).
    public var peerRequestsPerSecond: Double
    /// What every listener reports: the access log, and traces.
    public var telemetry: Telemetry
    /// How long a cluster no listener uses any more stays in Envoy: connections a
    /// changed listener drains still route to it (zero: removed at once).
    public var clusterRetention: Duration

    /// Creates a configuration.
    public init(
        socketPath: String = EdshimDefaults.socketPath,
        socketGroup: String? = nil,
        xdsDirectory: String = EdshimDefaults.xdsDirectory,
        stateFile: String = EdshimDefaults.stateFile,
        adminAddress: AdminAddress? = .tcp(SocketEndpoint(ip: .loopbackIPv4, port: 7776)),
        dockerHost: String = EdshimDefaults.dockerHost,
        defaultMode: ProxyMode = .http,
        readyTimeout: Duration = .seconds(5),
        releaseTimeout: Duration = .milliseconds(800),
        peerRequestsPerSecond: Double = 1000,
        telemetry: Telemetry = .standard,
        clusterRetention: Duration = .zero
    ) {
        self.socketPath = socketPath
        self.socketGroup = socketGroup
        self.xdsDirectory = xdsDirectory
        self.stateFile = stateFile
        self.adminAddress = adminAddress
        self.dockerHost = dockerHost
        self.defaultMode = defaultMode
        self.readyTimeout = readyTimeout
        self.releaseTimeout = releaseTimeout
        self.peerRequestsPerSecond = peerRequestsPerSecond
        self.telemetry = telemetry
        self.clusterRetention = clusterRetention
    }
}
