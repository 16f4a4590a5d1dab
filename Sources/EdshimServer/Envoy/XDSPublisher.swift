import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Publishes configurations to Envoy through the filesystem: `cds.json` and
/// `lds.json` in the xds directory, replaced atomically, in an order Envoy never
/// rejects (`EnvoyConfiguration.steps`).
///
/// Bursts coalesce: while one publication is being written, newer requests only
/// replace the target; the next write takes the latest, and every caller whose
/// configuration it includes resumes.
actor XDSPublisher {
    private let directory: String
    private let logger: Logger
    private var published: EnvoyConfiguration = .empty
    private var target = Registry()
    private var requestedGeneration = 0
    private var writtenGeneration = 0
    private var writing = false
    private var waiters: [(generation: Int, continuation: CheckedContinuation<Void, Never>)] = []
    private var lastWritten: [String: [UInt8]] = [:]

    var listenerPath: String { directory + "/lds.json" }
    var clusterPath: String { directory + "/cds.json" }

    init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// Creates the directory and writes the configuration of `registry` (clusters
    /// first), whatever Envoy had before.
    func start(with registry: Registry) throws {
        if access(directory, F_OK) != 0 {
            logger.warning("created the xds directory; an Envoy started before this must be restarted to follow it (Envoy watches the directory it found at start)", metadata: ["xds_dir": "\(directory)"])
        }
        try AtomicFile.makeDirectories(directory)
        let initial = EnvoyConfiguration(registrations: registry.registrations)
        let clusters = try DiscoveryDocument.clusters(initial.clusters)
        let listeners = try DiscoveryDocument.listeners(initial.listeners)
        try writeIfChanged(clusters, to: clusterPath)
        try writeIfChanged(listeners, to: listenerPath)
        published = initial
        target = registry
    }

    /// Publishes the configuration of `registry` and returns once it (or a newer
    /// one) is on disk.
    func publish(_ registry: Registry) async {
        target = registry
        requestedGeneration += 1
        let generation = requestedGeneration
        if !writing {
            writing = true
            Task { await writeUntilCurrent() }
        }
        await withCheckedContinuation { continuation in
            waiters.append((generation, continuation))
        }
    }

    private func writeUntilCurrent() async {
        while writtenGeneration < requestedGeneration {
            let generation = requestedGeneration
            let destination = await Self.configuration(for: target)
            for step in EnvoyConfiguration.steps(from: published, to: destination) {
                let missing = step.missingClusters
                guard missing.isEmpty else {
                    logger.critical("refusing to publish an inconsistent step", metadata: ["missing_clusters": "\(missing.sorted())"])
                    break
                }
                do {
                    try await write(step)
                    published = step
                } catch {
                    logger.error("writing Envoy configuration failed; the next change retries", metadata: ["error": "\(error)"])
                    break
                }
            }
            writtenGeneration = generation
            let ready = waiters.filter { $0.generation <= generation }
            waiters.removeAll { $0.generation <= generation }
            for waiter in ready { waiter.continuation.resume() }
        }
        writing = false
    }

    private func write(_ step: EnvoyConfiguration) async throws {
        if step.clusters != published.clusters {
            try writeIfChanged(try await Self.encode(step.clusters, DiscoveryDocument.clusters), to: clusterPath)
        }
        if step.listeners != published.listeners {
            try writeIfChanged(try await Self.encode(step.listeners, DiscoveryDocument.listeners), to: listenerPath)
        }
    }

    /// Builds the configuration off the actor.
    @concurrent
    private nonisolated static func configuration(for registry: Registry) async -> EnvoyConfiguration {
        EnvoyConfiguration(registrations: registry.registrations)
    }

    /// Encodes off the actor, so that publications arriving meanwhile coalesce.
    @concurrent
    private nonisolated static func encode<Resource: Sendable>(
        _ resources: [Resource],
        _ document: @Sendable ([Resource]) throws -> [UInt8]
    ) async throws -> [UInt8] {
        try document(resources)
    }

    private func writeIfChanged(_ bytes: [UInt8], to path: String) throws {
        if lastWritten[path] == nil, SystemFile.read(path) == bytes {
            lastWritten[path] = bytes
            return
        }
        guard lastWritten[path] != bytes else { return }
        try AtomicFile.write(bytes, to: path)
        lastWritten[path] = bytes
    }
}
