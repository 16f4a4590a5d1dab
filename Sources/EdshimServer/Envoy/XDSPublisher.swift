import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Publishes the registry to Envoy through the filesystem: `cds.json` and `lds.json`
/// in the xds directory, replaced atomically, in an order Envoy never rejects
/// (`EnvoyConfiguration.steps`). Bursts coalesce (`Coalescer`).
actor XDSPublisher {
    private let directory: String
    /// This server's claim on the directory: nothing is written into one another
    /// server claimed.
    private let claim: XDSDirectoryClaim
    private let telemetry: Telemetry
    private let logger: Logger
    private var published: EnvoyConfiguration = .empty
    /// What is in each file, as this server wrote (or found) it; a file missing here
    /// is written again whole before the next step (`restoreIfLost`).
    private var lastWritten: [String: [UInt8]] = [:]
    /// The directory and each file as they were when written, to notice them removed
    /// or replaced behind the server's back.
    private var directoryIdentity: FileIdentity?
    private var writtenIdentity: [String: FileIdentity] = [:]
    /// Each resource's JSON from the last file, so a change encodes only what changed.
    private var listenerCache = DiscoveryDocument.ResourceCache<EnvoyListener>()
    private var clusterCache = DiscoveryDocument.ResourceCache<EnvoyCluster>()
    /// Envoy reading the files: the next file is written once it read the one before.
    private var reads: FileReadWatcher?
    /// The name of the file written last, while `reads` watches Envoy read them.
    private var unread: String?
    private var coalescer: Coalescer<Registry>?
    /// Clusters kept while connections on a changed listener drain.
    private var retiring: RetiringClusters
    /// When the timer that takes retired clusters out fires next.
    private var expiryScheduled: ContinuousClock.Instant?

    private let health: WriteHealth

    /// How many files were written, to tell a step that wrote nothing.
    private var writes = 0

    /// Counts the directories followed (`followReplacedDirectory`): a change whose
    /// step began in one writes nothing into the next (the guard may follow it while
    /// the step waits for Envoy to read), which is written whole, clusters first.
    private var directoryGeneration = 0
    /// The directory generation the change being written began in.
    private var applying: Int?

    /// Why the directory made again could not be claimed, as last logged.
    private var claimRefused: String?

    /// `lds.json` is owed to Envoy again as it is (`offerListenersAgain`).
    private var listenersOwedAgain = false
    /// The writes of the start not done yet (a full disk), in order: `apply` does
    /// them first.
    private var owedAtStart: [(bytes: [UInt8], name: String)] = []

    init(directory: String, claim: XDSDirectoryClaim, telemetry: Telemetry, clusterRetention: Duration, health: WriteHealth, logger: Logger) {
        self.directory = directory
        self.claim = claim
        self.telemetry = telemetry
        self.health = health
        self.logger = logger
        retiring = RetiringClusters(retention: clusterRetention)
    }

    /// Starts publishing into the directory the server claimed (`XDSDirectoryClaim`).
    /// First the configuration of `restored`, the registry as the state file had it —
    /// what Envoy was given last, so unchanged files are left alone and a restarted
    /// server republishes the same bytes — less the dead shims whose listeners
    /// lds.json no longer has, then `live`, without the registrations
    /// whose shim died while the server was down, as any other change: their
    /// listeners go before their clusters, which stay while Envoy drains (`apply`).
    /// Reads are watched from the start, so the first two files go in order too
    /// (clusters Envoy has read before the listeners that use them).
    func start(restored: Registry, live: Registry) async throws {
        // The directory claimed, which the path may no longer name: then the first
        // write finds it replaced, and `apply` claims the new one.
        directoryIdentity = claim.identity
        reads = FileReadWatcher(directory: directory)
        if reads == nil {
            logger.warning("cannot watch Envoy read the xds files (inotify); a request may meet a new listener before its cluster", metadata: ["error": "\(ErrorText.describe(errno))"])
        }
        // A shim that died just before the server was killed, after its listener left
        // lds.json but before the state was saved: Envoy has let go of its port, and
        // must not be given it back, not even for a moment (another process may
        // have the port by now).
        let listenersOnDisk = XDSFiles.listenerNames(in: directory)
        let given = restored.registrations.filter { registration in
            live[registration.key]?.owner == registration.owner
                || listenersOnDisk?.contains(ServiceNaming.listenerName(for: registration.key)) ?? true
        }
        let lastGiven = EnvoyConfiguration(registrations: given, telemetry: telemetry)
        let clusters = try DiscoveryDocument.clusters(lastGiven.clusters, reusing: &clusterCache)
        let listeners = try DiscoveryDocument.listeners(lastGiven.listeners, reusing: &listenerCache)
        // What Envoy has may differ from what the state file says: a server killed
        // between writing the xds files and saving its state, or restarted with other
        // telemetry (its tracing cluster gone). Clusters on disk that the state lacks
        // stay, as they were read, until the listeners have changed: no listener
        // routes to a cluster missing, either way.
        let wanted = Set(lastGiven.clusters.map(\.name))
        let cdsPath = directory + "/" + DiscoveryDocument.clusterFileName
        let onDisk = XDSFiles.resources(inFile: cdsPath)
        if onDisk == nil, access(cdsPath, F_OK) == 0 {
            logger.warning("cds.json cannot be read as a cluster file: the restored clusters replace it at once", metadata: ["file": "\(cdsPath)"])
        }
        let leaving = (onDisk ?? []).filter { !wanted.contains($0.name) }
        if !leaving.isEmpty {
            owedAtStart = [
                (try DiscoveryDocument.clusters(lastGiven.clusters, keeping: leaving.map(\.json)), DiscoveryDocument.clusterFileName),
                (listeners, DiscoveryDocument.listenerFileName),
            ]
        }
        owedAtStart += [(clusters, DiscoveryDocument.clusterFileName), (listeners, DiscoveryDocument.listenerFileName)]
        do {
            try await writeOwedAtStart()
        } catch let failure as AtomicFile.Failure where failure.mayPass {
            // A full or failing disk: the server starts all the same (dockerd waits for
            // it), Envoy keeps what it has, and the rest of these writes go, in order,
            // as soon as the disk takes them (`apply`).
            logger.error("cannot write Envoy configuration at start; starting all the same and retrying (Envoy keeps what it has)", metadata: ["error": "\(failure)"])
            health.failed(.envoyConfiguration, "\(failure)")
        } catch let replaced as DirectoryReplaced {
            // `rm -rf` during the start: `apply` claims the new directory and writes it whole.
            logger.warning("\(replaced)")
        }
        published = lastGiven
        let coalescer = Coalescer { [self] registry in await self.apply(registry) }
        self.coalescer = coalescer
        // Revision 0, before the registrar's first: also what `rewrite` writes again
        // when the files are lost before any registration changed. Not waited for: a
        // disk that refuses it must not hold up the start (`publish` waits).
        await coalescer.post(live, revision: 0)
    }

    private func writeOwedAtStart() async throws {
        while let (bytes, name) = owedAtStart.first {
            try await writeIfChanged(bytes, named: name)
            owedAtStart.removeFirst()
        }
    }

    /// Puts the files back when they, or the whole directory, were removed or
    /// replaced behind the server's back (`rm -rf /var/lib/edshim`, or `edshim
    /// bootstrap` seeding empty ones into a recreated directory): without this, a
    /// registry that does not change would never be written again, and an Envoy
    /// restarted to follow a new directory would start empty. Called every second
    /// (`OnDiskGuard`). One another server claimed meanwhile is left to it, logged once.
    func restoreIfLost() async {
        do {
            _ = try followReplacedDirectory()
        } catch {
            if claimRefused != error.description {
                claimRefused = error.description
                logger.error("the xds directory was deleted or replaced and cannot be claimed again; writing nothing into it: \(error.description)")
            }
            return
        }
        claimRefused = nil
        for name in [DiscoveryDocument.clusterFileName, DiscoveryDocument.listenerFileName]
        where lastWritten[name] != nil && FileIdentity(directory + "/" + name) != writtenIdentity[name] {
            logger.warning("\(name) was removed or replaced; writing it again", metadata: ["xds_dir": "\(directory)"])
            lastWritten[name] = nil
        }
        guard lastWritten.count < 2 else { return }
        await coalescer?.rewrite()
    }

    /// When the directory is no longer the one this server claimed (deleted, or
    /// replaced), makes it again if missing and claims it (before anything is written
    /// into it), and takes every file in it for lost; returns whether it had to. Throws
    /// when it cannot: another server claimed it meanwhile, or it cannot be made.
    private func followReplacedDirectory() throws(ServerError) -> Bool {
        let current = FileIdentity(directory)
        guard current == nil || current != directoryIdentity else { return false }
        if current == nil {
            do {
                try AtomicFile.makeDirectories(directory)
            } catch {
                throw ServerError("--xds-dir \(directory) is gone and cannot be made again: \(error.description)")
            }
        }
        _ = try claim.relockIfLost()
        logger.warning("the xds directory was \(current == nil ? "deleted" : "replaced"); writing the configuration into it again. An Envoy started before follows the directory it found at start: restart it", metadata: ["xds_dir": "\(directory)"])
        directoryIdentity = claim.identity
        directoryGeneration += 1
        // Reads are watched in the directory Envoy can see now.
        reads = FileReadWatcher(directory: directory)
        unread = nil
        lastWritten = [:]
        return true
    }

    /// Publishes the configuration of `registry`, the registrar's `revision`; returns
    /// true once it (or a newer one) is on disk, false once a write of it failed (a
    /// full disk: logged, reported by `/healthz`, and tried again in the background,
    /// with the newest registry by then).
    @discardableResult
    func publish(_ registry: Registry, revision: Int) async -> Bool {
        await coalescer?.attempt(registry, revision: revision) ?? true
    }

    /// Whether the xds directory was deleted or replaced (and made again) since the
    /// server started: an Envoy started before follows the one it found.
    var directoryWasReplaced: Bool { directoryGeneration > 0 }

    /// Why the last write of Envoy's files failed; nil once one succeeded.
    var writeFailure: String? { health.failure(of: .envoyConfiguration) }

    /// Writes the steps to `registry`'s configuration; false when a write failed (it is
    /// tried again, `Coalescer`).
    private func apply(_ registry: Registry) async -> Bool {
        let failing = health.failure(of: .envoyConfiguration) != nil
        let writesBefore = writes
        let offering = listenersOwedAgain
        listenersOwedAgain = false
        defer { applying = nil }
        do {
            _ = try followReplacedDirectory()
            applying = directoryGeneration
            try await writeOwedAtStart()
            try await rewriteLostFiles()
        } catch {
            failed(error)
            return false
        }
        let target = await Self.configuration(for: registry, telemetry: telemetry)
        // Taken on only once every step is written: a failed write is retried with
        // the clusters still retiring as they were, and their deadlines.
        var nextRetiring = retiring
        let destination = nextRetiring.keep(in: target, after: published, now: .now)
        defer { scheduleExpiry() }
        for step in EnvoyConfiguration.steps(from: published, to: destination) {
            let missing = step.missingClusters
            guard missing.isEmpty else {
                // A bug, not a condition that passes: trying again would not help.
                logger.critical("refusing to publish an inconsistent step", metadata: ["missing_clusters": "\(missing.sorted())"])
                return true
            }
            do {
                if step.clusters != published.clusters { try await write(step.clusters) }
                if step.listeners != published.listeners { try await write(step.listeners) }
                published = step
            } catch {
                failed(error)
                return false
            }
        }
        retiring = nextRetiring
        // After a failure, only a write that reached the disk says it takes writes
        // again: the registry may have come back to what is on disk (the registration
        // whose write failed was withdrawn), and writing nothing proves nothing. So
        // lds.json is written again as it is; so it is when Envoy is owed it again.
        if (failing && writes == writesBefore) || offering {
            do {
                try await write(published.listeners, evenUnchanged: true)
            } catch {
                failed(error)
                return false
            }
        }
        if let failedFor = health.succeeded(.envoyConfiguration) {
            logger.notice("Envoy's configuration is written again", metadata: ["failed_for": "\(failedFor.components.seconds) s"])
        }
        return true
    }

    /// Reports a failed write (`/healthz`), logged as an error when it is news
    /// (`WriteHealth.failed`), the repeats at debug.
    private func failed(_ error: any Error) {
        let description = "\(error)"
        if health.failed(.envoyConfiguration, description) {
            logger.error("writing Envoy configuration failed; retrying (logged again only when the reason changes)", metadata: ["error": "\(description)"])
        } else {
            logger.debug("writing Envoy configuration failed again; retrying", metadata: ["error": "\(description)"])
        }
    }

    /// Writes what Envoy should have now, clusters first, into a file found lost
    /// (`restoreIfLost`): the steps that follow start from it.
    private func rewriteLostFiles() async throws {
        if lastWritten[DiscoveryDocument.clusterFileName] == nil { try await write(published.clusters) }
        if lastWritten[DiscoveryDocument.listenerFileName] == nil { try await write(published.listeners) }
    }

    /// Encodes `clusters` into `cds.json`, reusing the JSON of those unchanged.
    private func write(_ clusters: [EnvoyCluster]) async throws {
        let (bytes, cache) = try await Self.encode(clusters, reusing: clusterCache, DiscoveryDocument.clusters)
        clusterCache = cache
        try await writeIfChanged(bytes, named: DiscoveryDocument.clusterFileName)
    }

    /// Encodes `listeners` into `lds.json`, reusing the JSON of those unchanged.
    /// `evenUnchanged`: written also when the file holds them already (the same
    /// listeners: Envoy changes nothing), to learn whether the disk takes the write.
    private func write(_ listeners: [EnvoyListener], evenUnchanged: Bool = false) async throws {
        let (bytes, cache) = try await Self.encode(listeners, reusing: listenerCache, DiscoveryDocument.listeners)
        listenerCache = cache
        try await writeIfChanged(bytes, named: DiscoveryDocument.listenerFileName, evenUnchanged: evenUnchanged)
    }

    /// Wakes when the next retiring cluster's time is up, to write the configuration
    /// without it.
    private func scheduleExpiry() {
        guard let next = retiring.nextExpiry, next != expiryScheduled else { return }
        expiryScheduled = next
        Task {
            try? await Task.sleep(until: next, clock: .continuous)
            await self.expiryDue(next)
        }
    }

    private func expiryDue(_ instant: ContinuousClock.Instant) async {
        guard expiryScheduled == instant else { return }
        expiryScheduled = nil
        await coalescer?.rewrite()
    }

    /// Builds the configuration off the actor.
    @concurrent
    private nonisolated static func configuration(for registry: Registry, telemetry: Telemetry) async -> EnvoyConfiguration {
        EnvoyConfiguration(registrations: registry.registrations, telemetry: telemetry)
    }

    /// Encodes off the actor; returns the file and the cache to keep for the next one.
    @concurrent
    private nonisolated static func encode<Resource: EnvoyMessage>(
        _ resources: [Resource],
        reusing cache: DiscoveryDocument.ResourceCache<Resource>,
        _ document: @Sendable ([Resource], inout DiscoveryDocument.ResourceCache<Resource>) throws -> [UInt8]
    ) async throws -> ([UInt8], DiscoveryDocument.ResourceCache<Resource>) {
        var cache = cache
        let bytes = try document(resources, &cache)
        return (bytes, cache)
    }

    /// Returns once Envoy has read the file written last (or the watcher ran out of
    /// patience): for a change to a port Envoy already listens on, such as a container
    /// come back with a new address, whose socket table shows nothing new. Whether it
    /// was read (true when reads cannot be watched, or nothing was written since the
    /// directory was found).
    @discardableResult
    func waitUntilRead(atMost: Duration? = nil) async -> Bool {
        guard let reads, let unread else { return true }
        return await reads.waitForRead(of: unread, atMost: atMost)
    }

    /// Writes `lds.json` again as it is, so that Envoy reads it again: Envoy tries a
    /// listener it could not create (its port held by another program when it read
    /// the file) only when it reads the file again, and leaves the others as they are
    /// (unchanged, not drained). In turn with the other writes.
    func offerListenersAgain() async {
        listenersOwedAgain = true
        await coalescer?.rewrite()
    }

    /// Whether Envoy was ever seen reading a file of the directory (true when reads
    /// cannot be watched).
    func envoyHasReadAny() async -> Bool {
        await reads?.anyReadSeen ?? true
    }

    /// How long Envoy has read nothing from the directory: since its last read, or
    /// since `start` when it read nothing after it. nil when reads cannot be watched.
    func envoyReadNothingFor(since start: ContinuousClock.Instant) async -> Duration? {
        guard let reads else { return nil }
        return await reads.readNothingFor ?? ContinuousClock.now - start
    }

    /// How long Envoy has read none of the files since one was written (nil: it read
    /// after the last write, or reads cannot be watched).
    func envoyLeftUnreadFor() async -> Duration? {
        await reads?.unreadFor
    }

    private func writeIfChanged(_ bytes: [UInt8], named name: String, evenUnchanged: Bool = false) async throws {
        let path = directory + "/" + name
        if !evenUnchanged, lastWritten[name] == nil, XDSFiles.readOwnFile(path) == bytes {
            lastWritten[name] = bytes
            writtenIdentity[name] = FileIdentity(path)
            return
        }
        guard evenUnchanged || lastWritten[name] != bytes else { return }
        // Envoy applies what it read in the order it read it: let it take in the
        // other file first (new clusters before the listeners that route to them;
        // listeners gone before their clusters go).
        if let reads, let unread, unread != name {
            await reads.waitForRead(of: unread)
        }
        // Replaced since this step began: written again whole, clusters first, from
        // the next try (`apply` claims it first).
        guard FileIdentity(directory) == directoryIdentity, applying.map({ $0 == directoryGeneration }) ?? true else {
            throw DirectoryReplaced(directory: directory)
        }
        await reads?.mark(name)
        try AtomicFile.write(bytes, to: path)
        writes += 1
        lastWritten[name] = bytes
        writtenIdentity[name] = FileIdentity(path)
        if reads != nil { unread = name }
    }
}

/// The xds directory went, or was replaced, between two writes of one change.
private struct DirectoryReplaced: Error, CustomStringConvertible {
    let directory: String
    var description: String { "the xds directory \(directory) was deleted or replaced while the configuration was written; writing it again" }
}
