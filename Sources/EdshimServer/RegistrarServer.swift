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
        // SIGHUP would end the server while it starts, before `HangupIgnored` runs.
        HangupIgnored.ignoreUntilTrapped()
        // A descriptor per registered shim (its pidfd) and per client connection: as
        // many as the hard limit allows, whatever soft limit the shell or unit left.
        DescriptorLimit.raise(toward: Int(Int32.max))
        // What can refuse to start is checked before anything is written: a server
        // that cannot run must leave a running one, and Envoy's configuration, alone.
        try BuiltInNameServices.confine()
        let policy = try PeerPolicy.resolve(groupName: configuration.socketGroup)
        try SocketListener.refuseUnusable(path: configuration.socketPath)
        if let admin = configuration.adminAddress { try AdminEndpoint.refuseIfTaken(admin, besideShimsSocket: configuration.socketPath) }
        try StateFileClaim.refuseWritableByOthers(configuration.stateFile)
        try XDSDirectoryClaim.refuseWritableByOthers(configuration.xdsDirectory)
        let stateClaim = try StateFileClaim(configuration.stateFile)
        let claim = try XDSDirectoryClaim(configuration.xdsDirectory, logger: logger)
        defer { withExtendedLifetime((stateClaim, claim)) {} }
        try SocketListener.prepareDirectory(of: configuration.socketPath, policy: policy, logger: logger)
        let health = WriteHealth()
        let state = StateStore(path: configuration.stateFile, claim: stateClaim, health: health, logger: logger)
        let saved: [Registration]?
        do {
            saved = try await state.load()
        } catch {
            throw ServerError("\(error): check --state-file")
        }
        let owners = try OwnerWatcher(logger: logger)
        // Only registrations whose shim still runs (same PID and start time) and
        // publishes what they say come back, each in the mode its labels give it
        // under this server's --default-mode (the state file keeps the label's mode
        // apart from the one in force).
        let restored = saved ?? []
        var remoded = 0
        var registry = Registry(RestoredRegistrations.live(restored, watchedBy: owners, logger: logger).map { registration in
            var moded = registration
            moded.mode = registration.metadata.mode ?? configuration.defaultMode
            if moded.mode != registration.mode { remoded += 1 }
            return moded
        })
        let liveCount = registry.count
        if remoded > 0 {
            logger.notice("ports without a mode label take this server's --default-mode", metadata: ["default_mode": "\(configuration.defaultMode.rawValue)", "ports": "\(remoded)"])
        }
        // What Envoy serves for a running shim is kept, also when the state file
        // does not have it (none to go by, or one behind the xds files), rather than
        // taken from Envoy until resync puts it back.
        let taken = await LostStateRecovery.registrations(besides: registry, socketPath: configuration.socketPath, xdsDirectory: configuration.xdsDirectory, metadataSource: metadataSource, defaultMode: configuration.defaultMode)
        registry = Registry(registry.registrations + taken.filter { owners.watch($0.owner) })
        if !taken.isEmpty {
            logger.notice("took back the running shims whose ports Envoy serves (lds.json) and the state file \(saved == nil ? "could not give" : "did not have"); edshim resync registers any other", metadata: ["taken_back": "\(taken.count)"])
        }
        // The file holds this registry, unless dead shims were dropped or shims were
        // taken back (saved below).
        let fileHoldsIt = liveCount == restored.count && taken.isEmpty && remoded == 0
        if fileHoldsIt { await state.remember(registry) }
        if !restored.isEmpty {
            logger.info("restored registrations", metadata: ["restored": "\(liveCount)", "dropped_dead_owners": "\(restored.count - liveCount)"])
        }
        let publisher = XDSPublisher(directory: configuration.xdsDirectory, claim: claim, telemetry: configuration.telemetry, clusterRetention: configuration.clusterRetention, health: health, logger: logger)
        do {
            try await publisher.start(restored: Registry(restored + taken), live: registry)
        } catch {
            throw ServerError("\(error): check --xds-dir (Envoy reads its configuration there)")
        }
        // Saved with the shims taken back, and without the dead shims only once Envoy
        // was given the registry without them: a server killed before would otherwise
        // take this for what Envoy has, and drop their clusters with their listeners
        // at its next start. In the background: a disk that refuses the writes (full)
        // is retried, and must not hold up the start (READY=1, and dockerd after it).
        if !fileHoldsIt {
            Task { [registry] in
                await publisher.publish(registry, revision: 0)
                await state.save(registry, revision: 0)
            }
        }
        logger.info("publishing Envoy configuration", metadata: ["xds_dir": "\(configuration.xdsDirectory)"])
        // Socket diagnostics cost ~30 µs a read, so waiting registrations poll every
        // millisecond; /proc/net/tcp costs milliseconds, so only every 5 ms.
        let unavailableDiagnostics = ListenTable.unavailableDiagnostics()
        if let unavailableDiagnostics {
            logger.warning("reading listening sockets from /proc/net/tcp instead: slower, so each registration waits a few ms more", metadata: ["unavailable": "\(unavailableDiagnostics)"])
        }
        let registrar = Registrar(
            registry: registry,
            publisher: publisher,
            state: state,
            owners: owners,
            watcher: ListenWatcher(interval: .milliseconds(unavailableDiagnostics == nil ? 1 : 5)),
            metadataSource: metadataSource,
            configuration: configuration,
            xdsDirectoryCreated: claim.created,
            logger: logger
        )
        // Bound before the shims' socket (which the listener binds as it runs): a
        // server that answers there answers here too.
        var adminListening: AdminEndpoint.Listening?
        if let admin = configuration.adminAddress { adminListening = try await AdminEndpoint.listen(on: admin, policy: policy, logger: logger) }
        let listener = SocketListener(
            path: configuration.socketPath,
            policy: policy,
            peerRate: configuration.peerRequestsPerSecond,
            registrar: registrar,
            health: health,
            logger: logger
        )
        let reaper = OwnerReaper(owners: owners, registrar: registrar)
        let refresher = LabelRefresher(registrar: registrar, source: metadataSource)
        var services: [any Service] = [listener, reaper, refresher, OnDiskGuard(publisher: publisher, state: state), UnservedPortsLog(registrar: registrar, socketPath: configuration.socketPath, logger: logger), HangupIgnored(logger: logger)]
        if let admin = configuration.adminAddress, let adminListening {
            services.append(AdminEndpoint(address: admin, listening: adminListening, policy: policy, registrar: registrar, health: health, logger: logger))
        }
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        logger.info("stopped")
    }
}
