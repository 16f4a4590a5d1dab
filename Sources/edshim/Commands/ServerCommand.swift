import ArgumentParser
import EdshimCore
import EdshimServer
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `edshim server`: the registrar daemon.
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run the registrar: take registrations from shims, publish them to Envoy.",
        discussion: """
            Listens on a Unix socket for the shims dockerd starts, keeps the registry of
            published TCP ports, and writes it as Envoy v3 filesystem xDS: lds.json and
            cds.json in --xds-dir, each replaced atomically, clusters before the listeners
            that use them. A registration is answered once Envoy listens on the port, which
            the server reads from the kernel's socket table — it needs no access to Envoy's
            admin API. Start Envoy with the bootstrap from `edshim bootstrap`.

            Every listener also carries Envoy's access log (--access-log, on Envoy's
            stdout unless told otherwise) and, given a collector, tracing of every HTTP
            request (--tracing-otlp), named from the container's labels.

            Runs in the foreground until SIGINT or SIGTERM (contrib/edshim.service runs it
            under systemd); SIGHUP is logged and ignored (nothing to reload). Every flag
            has a default that works with an Envoy started from `edshim bootstrap` alone.

            Examples:
              edshim server
              edshim server --socket /run/edshim-test/edshim.sock \\
                  --xds-dir /var/lib/edshim-test/xds \\
                  --state-file /var/lib/edshim-test/state.json --admin-address off
            """
    )

    @Option(name: .long, help: "Unix socket for shims, mode 0660 (default: $EDSHIM_SOCKET, which the shims, resync and status read too, else \(EdshimDefaults.socketPath)).")
    var socket: String?

    /// --socket, else what every client reads.
    private var socketPath: String {
        socket ?? ServerClient.fromEnvironment().socketPath
    }

    @Option(name: .customLong("socket-group"), help: "Group allowed to use the socket besides root: a name from /etc/group (the server looks nowhere else) or a group number (default: docker, when /etc/group has it).")
    var socketGroup: String?

    @Option(name: .customLong("xds-dir"), help: "Directory Envoy watches for lds.json and cds.json.")
    var xdsDirectory: String = EdshimDefaults.xdsDirectory

    @Option(name: .customLong("state-file"), help: "Where the registry is kept across restarts (claimed by this server through <file>.lock beside it).")
    var stateFile: String = EdshimDefaults.stateFile

    @Option(name: .customLong("admin-address"), help: "Where the server's own HTTP endpoint listens (GET /healthz: ok, or 503 naming a write that keeps failing; GET /status: the registrations, labels included): HOST:PORT, which every local user can reach, or unix:/absolute/path, a socket only root and the socket group may use (like the registration socket; curl --unix-socket PATH http://edshim/healthz), or off.")
    var adminAddress: String = EdshimDefaults.serverAdminAddress

    @Option(name: .customLong("docker-host"), help: "Docker Engine API, unix:// or tcp:// (default: $DOCKER_HOST, else \(EdshimDefaults.dockerHost)).")
    var dockerHost: String?

    @Option(name: .customLong("default-mode"), help: "Mode for containers without a ProxyMode / edshim.mode label: http, tcp or http-only (HTTP with no relay as TCP for what is not HTTP; docs/labels.md).")
    var defaultMode: String = "http"

    @Option(name: .customLong("ready-timeout"), parsing: .unconditional, help: "Seconds a registration waits for Envoy to listen before it fails, at most 10 (a starting shim waits 12 for the answer). An Envoy that does not run (it reads none of the server's files and listens on no registered port) is waited for a second at most.")
    var readyTimeout: Double = 5

    @Option(name: .customLong("envoy-drain-time"), parsing: .unconditional, help: ArgumentHelp(
        "Envoy's --drain-time-s, in seconds (its default: 600): how long a changed listener's connections drain.",
        discussion: "A cluster a renamed port's listener no longer uses stays that long and 5 s more, so that requests on its old connections still reach their container instead of getting 503. 0 removes it at once. A withdrawn port's cluster goes with its listener: its container is gone, and its address may be the next container's.",
        valueName: "seconds"))
    var envoyDrainTime: Double = 600

    @Option(name: .customLong("peer-rate"), parsing: .unconditional, help: "Requests per second one client process may send (bursts of twice as many).")
    var peerRate: Double = 1000

    @Option(name: .customLong("access-log"), help: ArgumentHelp(
        "Where Envoy writes a JSON line per request (HTTP) or connection (TCP): stdout, stderr, an absolute file path, or off.",
        discussion: "Envoy's own stdout is the journal under systemd and `docker logs` in a container. A file is opened by Envoy, so it must be writable by Envoy's user; SIGUSR1 to Envoy reopens it after rotation.",
        valueName: "destination"))
    var accessLog: String = AccessLogDestination.standard.description

    @Option(name: .customLong("tracing-otlp"), help: ArgumentHelp(
        "Trace every HTTP request: OTLP/HTTP endpoint of an OpenTelemetry collector, http://HOST[:PORT][/PATH] (default port 4318, path /v1/traces).",
        discussion: "Spans carry the container's service label as service.name and are named after it; the container gets a W3C traceparent header to continue the trace. Off unless given.",
        valueName: "url"))
    var tracingOTLP: String?

    @Option(name: .customLong("tracing-sample"), parsing: .unconditional, help: ArgumentHelp(
        "With --tracing-otlp: the percentage of requests traced, chosen at random, 0 to 100 (default: 100).",
        discussion: "Envoy is the edge and decides for every request: one that arrives with a traceparent keeps its trace id, but is sampled or not by this percentage.",
        valueName: "percent"))
    var tracingSample: Double?

    @Option(name: .customLong("trusted-proxy-hops"), parsing: .unconditional, help: ArgumentHelp(
        "Proxies in front of this host that HTTP listeners trust, 0 to 10 (0: Envoy is the edge).",
        discussion: "0: the client is whoever connected; Envoy appends its address to X-Forwarded-For and sets X-Forwarded-Proto from the connection, overwriting what a client sent (as a client could lie). Behind a load balancer that terminates TLS, 1: the last X-Forwarded-For entry is the client, and the balancer's X-Forwarded-Proto (https) reaches the containers. Only when every connection comes through those proxies: any other client could then name its own address and scheme.",
        valueName: "count"))
    var trustedProxyHops: UInt32 = 0

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    /// What a retired cluster outlives Envoy's drain time by.
    static let retentionMargin = Duration.seconds(5)

    func validate() throws {
        guard !socketPath.isEmpty else { throw ValidationError("--socket must name the socket's path, like \(EdshimDefaults.socketPath)") }
        guard !xdsDirectory.isEmpty else { throw ValidationError("--xds-dir must name the directory Envoy watches, like \(EdshimDefaults.xdsDirectory)") }
        guard !stateFile.isEmpty else { throw ValidationError("--state-file must name a file, like \(EdshimDefaults.stateFile)") }
        var info = stat()
        if stat(stateFile, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            throw ValidationError("--state-file \(stateFile) is a directory: name a file in it, like \(stateFile.hasSuffix("/") ? stateFile : stateFile + "/")state.json")
        }
        guard ProxyMode(rawValue: defaultMode) != nil else {
            throw ValidationError("--default-mode must be http, tcp or http-only, not \"\(defaultMode)\"")
        }
        guard adminAddress == "off" || AdminAddress(parsing: adminAddress) != nil else {
            throw ValidationError("--admin-address must be HOST:PORT with an IP address, like 127.0.0.1:7776 or [::1]:7776, unix: and an absolute path of at most \(UnixSocketAddress.maximumPathLength) bytes, like unix:/run/edshim/admin.sock, or off")
        }
        if case .unixSocket(let path) = AdminAddress(parsing: adminAddress), ResolvedPath.of(path) == ResolvedPath.of(absolute(socketPath)) {
            throw ValidationError("--admin-address unix:\(path) is the shims' socket (--socket): choose another path, like unix:/run/edshim/admin.sock")
        }
        guard envoyDrainTime >= 0, envoyDrainTime <= 86_400 else {
            throw ValidationError("--envoy-drain-time must be between 0 and 86400 seconds (Envoy's --drain-time-s; 600 unless Envoy is told otherwise), not \(envoyDrainTime)")
        }
        guard readyTimeout >= 0.001, readyTimeout <= Double(EdshimDefaults.longestReadyTimeoutSeconds) else {
            throw ValidationError("""
                --ready-timeout must be at least 0.001 and at most \(EdshimDefaults.longestReadyTimeoutSeconds) seconds: \
                a starting shim waits \(EdshimDefaults.shimRegisterTimeoutSeconds) s for the answer (dockerd waits 16 s for the shim)
                """)
        }
        guard trustedProxyHops <= 10 else {
            throw ValidationError("--trusted-proxy-hops must be between 0 and 10 (the proxies in front of this host), not \(trustedProxyHops)")
        }
        guard peerRate >= 1, peerRate <= 1_000_000 else {
            throw ValidationError("--peer-rate must be between 1 and 1000000 requests per second, not \(peerRate)")
        }
        guard let destination = AccessLogDestination(parsing: accessLog) else {
            throw ValidationError("--access-log must be stdout, stderr, off or an absolute file path (Envoy opens it, from its own working directory), not \"\(accessLog)\"")
        }
        if case .file(let path) = destination, let problem = AppendableFile.problem(at: path) {
            throw ValidationError("--access-log \(path): \(problem), and Envoy would refuse every listener that logs there; create it writable by Envoy's user, or choose stdout, stderr or another path")
        }
        // Envoy, as root, appends to the file: through a link another user planted
        // there, to any file.
        if case .file(let path) = destination, let refusal = WritableByOthers.refusal(directory: AtomicFile.parent(of: path) ?? "/") {
            throw ValidationError("--access-log \(path): \(refusal)")
        }
        if let tracingOTLP, TracingCollector(parsing: tracingOTLP) == nil {
            let https = tracingOTLP.hasPrefix("https://") ? " (https is not supported: give the collector's plain-HTTP OTLP endpoint, usually a collector on this host)" : ""
            throw ValidationError("--tracing-otlp must be http://HOST[:PORT][/PATH], HOST an IP address or host name, not \"\(tracingOTLP)\"\(https)")
        }
        if let tracingSample {
            guard tracingOTLP != nil else { throw ValidationError("--tracing-sample needs --tracing-otlp: there is nothing to sample without a collector") }
            guard tracingSample >= 0, tracingSample <= 100 else { throw ValidationError("--tracing-sample must be a percentage from 0 to 100, not \(tracingSample)") }
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        try DockerHost.validate(option: dockerHost)
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let journal = JournalLogHandler.stderrIsTheJournal
        LoggingSystem.bootstrap { label in
            if journal {
                var handler = JournalLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "edshim.server")
        let configuration = ServerConfiguration(
            socketPath: absolute(socketPath),
            socketGroup: socketGroup,
            xdsDirectory: absolute(xdsDirectory),
            stateFile: stateFile,
            adminAddress: AdminAddress(parsing: adminAddress),
            dockerHost: dockerHost ?? EdshimDefaults.environmentDockerHost,
            defaultMode: ProxyMode(rawValue: defaultMode) ?? .http,
            readyTimeout: .milliseconds(Int64(readyTimeout * 1000)),
            peerRequestsPerSecond: peerRate,
            telemetry: Telemetry(
                accessLog: AccessLogDestination(parsing: accessLog) ?? .standard,
                tracing: tracingOTLP.flatMap(TracingCollector.init(parsing:)),
                tracingSamplePercent: tracingSample ?? 100,
                trustedProxyHops: trustedProxyHops
            ),
            clusterRetention: envoyDrainTime > 0 ? .milliseconds(Int64(envoyDrainTime * 1000)) + Self.retentionMargin : .zero
        )
        let labels: any ContainerMetadataSource
        do {
            let docker = try DockerHost(parsing: configuration.dockerHost)
            labels = DockerMetadataSource(client: DockerEngineClient(host: docker), logger: Logger(label: "edshim.docker"))
        } catch {
            // Only DOCKER_HOST gets here (validate() refused a bad --docker-host): an
            // environment the server inherited must not keep it from starting, as
            // Docker being unreachable does not.
            logger.warning("""
                DOCKER_HOST cannot be used: \(error.description); container labels are not read and services \
                are named unknown-<port> — give the server --docker-host unix:///var/run/docker.sock (or tcp://HOST:PORT)
                """)
            labels = NoContainerMetadata()
        }
        do {
            try await RegistrarServer(configuration: configuration, metadataSource: labels, logger: logger).run()
        } catch {
            logger.critical("\(error)")
            throw ExitCode.failure
        }
    }
}
