import EdshimCore
import Logging
import ServiceLifecycle

/// `edshim server`: the registrar daemon. Takes registrations on the Unix socket,
/// keeps the registry, and writes it to Envoy as filesystem xDS.
public struct RegistrarServer: Sendable {
    private let configuration: ServerConfiguration
    private let metadataSource: any ContainerMetadataSource
    private let logger: Logger

    /// Creates a server.
    public init(configuration: ServerConfiguration, metadataSource: any ContainerMetadataSource = NoContainerMetadata(), logger: Logger) {
        self.configuration = configuration
        self.metadataSource = metadataSource
        self.logger = logger
    }

    /// Runs until SIGINT or SIGTERM, then stops cleanly and removes the socket.
    public func run() async throws {
        let registry = Registry()
        let publisher = XDSPublisher(directory: configuration.xdsDirectory, logger: logger)
        do {
            try await publisher.start(with: registry)
        } catch {
            throw ServerStartupError("\(error): check --xds-dir (Envoy reads its configuration there)")
        }
        logger.info("publishing Envoy configuration", metadata: ["xds_dir": "\(configuration.xdsDirectory)"])
        let registrar = Registrar(
            registry: registry,
            publisher: publisher,
            watcher: ListenWatcher(),
            metadataSource: metadataSource,
            configuration: configuration,
            logger: logger
        )
        let listener = SocketListener(path: configuration.socketPath, registrar: registrar, logger: logger, onReady: {})
        let group = ServiceGroup(configuration: .init(
            services: [listener],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        logger.info("stopped")
    }
}
