import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The registry's one owner: takes requests from the socket, keeps the registry,
/// publishes it to Envoy and answers once Envoy has acted on it.
actor Registrar {
    var registry: Registry
    /// Sockets Envoy listened on for a key just deregistered: until they close,
    /// readiness must not take them for the listener of a new registration.
    var retired: [RegistrationKey: Set<UInt64>] = [:]
    /// Numbers the snapshots `commit` hands on, newest highest (0 was the start's).
    private var revision = 0
    /// Registrations taken and not answered yet, per key and shim: how many (a shim's
    /// own and resync's on its behalf can overlap), whether the shim deregistered
    /// meanwhile, which cancels every one of them not yet in the registry, and how
    /// many of them came from a shim that serves the port itself meanwhile (it named
    /// the socket it holds).
    private var inProgress: [Pending: (count: Int, cancelled: Bool, holdingSocket: Int)] = [:]
    /// The sockets shims serving their ports themselves listen on, for each
    /// registration in progress that named one: not Envoy's.
    var shimSockets: [Int: UInt64] = [:]
    /// Tells the registrations in progress apart (keys of `shimSockets`).
    private var requestsTaken = 0
    /// Ports whose shim serves them itself because their registration was withdrawn
    /// (Envoy did not take them, or its files could not be written): the shim
    /// registers again every few seconds until Envoy serves the port, and each
    /// withdrawal is logged at most once a minute (the retries at debug), not twice per
    /// retry.
    var withdrawnAndRetrying: [RegistrationKey: LogThrottle] = [:]
    /// The process each shim ran under when it registered (its dockerd).
    var starters = ShimStarters()
    /// Registrations made while Docker could not be asked for their labels.
    private var pendingLabels: PendingLabels
    /// Yields when a registration starts waiting for Docker: `LabelRefresher` waits on it.
    nonisolated let labelsPendingNotices: AsyncStream<Void>
    let publisher: XDSPublisher
    private let state: StateStore
    private let owners: OwnerWatcher
    let watcher: ListenWatcher
    private let metadataSource: any ContainerMetadataSource
    let configuration: ServerConfiguration
    /// This server created the xds directory: an Envoy started before it may still
    /// listen on ports from the deleted one (`refuseIfPortTaken` says so).
    let xdsDirectoryCreated: Bool
    /// When this server started: an Envoy that read nothing since, a while after it,
    /// and listens on none of the registered ports is not running.
    let started = ContinuousClock.now
    /// When a registration last found Envoy not running: for a while after, the next
    /// ones need not wait a second each to find it again (`envoyAbsence` still
    /// checks that nothing has changed since).
    var envoyFoundAbsent: ContinuousClock.Instant?
    /// The last look for Envoys watching the xds directory (`envoyWatchers`).
    var envoyWatchersSeen: (at: ContinuousClock.Instant, watchers: [EnvoyWatchers.Watcher]?)?
    /// How long a finding that Envoy does not run is trusted.
    static let envoyAbsenceTrusted = Duration.seconds(10)
    let logger: Logger

    init(
        registry: Registry,
        publisher: XDSPublisher,
        state: StateStore,
        owners: OwnerWatcher,
        watcher: ListenWatcher,
        metadataSource: any ContainerMetadataSource,
        configuration: ServerConfiguration,
        xdsDirectoryCreated: Bool,
        logger: Logger
    ) {
        self.registry = registry
        self.publisher = publisher
        self.state = state
        self.owners = owners
        self.watcher = watcher
        self.metadataSource = metadataSource
        self.configuration = configuration
        self.xdsDirectoryCreated = xdsDirectoryCreated
        self.logger = logger
        pendingLabels = PendingLabels(restoring: registry.registrations)
        labelsPendingNotices = pendingLabels.notices
    }

    /// Every registration, in key order.
    func registrations() -> [Registration] {
        registry.registrations
    }

    /// The registrations taken and not answered yet, in key order; not those of a
    /// shim that serves its port itself meanwhile (a retry after a withdrawal, or
    /// dockerd ≥ 28's socket): `edshim status` says that the shim serves it, not that
    /// it is being registered, and its --check counts it (a shim retrying every few
    /// seconds while Envoy is down would otherwise pass now and then).
    var registering: [RegistrationInProgress] {
        inProgress.filter { $0.value.holdingSocket == 0 }.keys.map { RegistrationInProgress(key: $0.key, owner: $0.owner) }.sorted { ($0.key, $0.owner.pid) < ($1.key, $1.owner.pid) }
    }

    /// Registrations made on a shim's behalf (`edshim resync`) not answered yet.
    private var onBehalfInProgress = 0

    /// Whether `edshim resync` is registering shims right now.
    var resyncing: Bool { onBehalfInProgress > 0 }

    /// Answers one request from `peer`.
    func handle(_ request: WireRequest, from peer: PeerCredentials) async -> WireResponse {
        switch request {
        case .register(let registration):
            logRefusal(await register(registration, from: peer), of: registration, from: peer)
        case .deregister(let key):
            await deregister(key, from: peer)
        case .list:
            .registrations(registry.registrations, registering: registering)
        case .lookup(let key):
            .registrations(registry[key].map { [$0] } ?? [])
        }
    }

    // MARK: Register

    /// How long Envoy may leave the files unread before it counts as not running (and
    /// registrations stop waiting for it): far more than an Envoy that runs, even on
    /// a loaded host, takes to read them.
    static let readyTimeoutWithoutEnvoy = Duration.seconds(1)

    /// Logs a refused registration and hands the response on: the operator sees in the
    /// journal what dockerd was told. (envoy_timeout is logged where it is decided;
    /// rate_limited would flood the log it protects.)
    private func logRefusal(_ response: WireResponse, of request: RegisterRequest, from peer: PeerCredentials) -> WireResponse {
        if case .failure(let error) = response, error.code != .envoyTimeout, error.code != .envoyAbsent, error.code != .rateLimited {
            var metadata: Logger.Metadata = ["key": "\(request.key)", "container": "\(request.container)", "peer_pid": "\(peer.pid)", "code": "\(error.code.rawValue)", "reason": "\(error.message)"]
            if let shim = request.onBehalfOf { metadata["on_behalf_of"] = "\(shim)" }
            // A dockerd inside a container publishing its own ports is no fault; its
            // shims ask again every minute, in case this server ran in the wrong namespace.
            // A withdrawal its shim retries (files that cannot be written) is logged as
            // such, at most once a minute: not again here at every retry.
            if error.code == .unavailable, withdrawnAndRetrying[request.key] != nil {
                logger.debug("registration refused", metadata: metadata)
            } else if error.code == .foreignNamespace {
                logger.info("registration refused", metadata: metadata)
            } else {
                logger.warning("registration refused", metadata: metadata)
            }
        }
        return response
    }

    private func register(_ request: RegisterRequest, from peer: PeerCredentials) async -> WireResponse {
        let key = request.key
        // The shim gives up on an answer after 12 s: the wait for Envoy ends 2 s before,
        // whatever the Docker lookup took, leaving time for the writes of a withdrawal.
        let answerBy = ContinuousClock.now + .seconds(EdshimDefaults.shimRegisterTimeoutSeconds - 2)
        guard key.proto == .tcp else {
            return .failure(WireError(.unsupportedProtocol, "the server registers TCP ports only; \(key.proto.rawValue) ports are served by the shim itself"))
        }
        if let refusal = HostAddressCheck.refusal(key.host) {
            return .failure(WireError(.addressUnavailable, refusal))
        }
        let owner: Owner
        if let pid = request.onBehalfOf {
            switch authorizeOnBehalf(of: pid, request, peer: peer) {
            case .success(let shim): owner = shim
            case .failure(let refusal): return .failure(refusal)
            }
        } else {
            let notAShim = "is not an edshim shim: ports are registered by the shims dockerd starts (or by edshim resync for them)"
            switch shim(peer.pid, publishing: request, otherwise: notAShim) {
            case .success(let shim): owner = shim.owner
            case .failure(let refusal): return .failure(refusal)
            }
        }
        if let conflict = overlapRefusal(key, to: request.container) ?? publishedRefusal(key, for: owner) { return .failure(conflict) }
        let pending = Pending(key: key, owner: owner)
        let holding = request.heldSocketInode != nil ? 1 : 0
        inProgress[pending, default: (0, false, 0)].count += 1
        inProgress[pending]?.holdingSocket += holding
        requestsTaken += 1
        let requestNumber = requestsTaken
        shimSockets[requestNumber] = request.heldSocketInode
        let onBehalf = request.onBehalfOf != nil
        if onBehalf { onBehalfInProgress += 1 }
        defer {
            if onBehalf { onBehalfInProgress -= 1 }
            inProgress[pending]?.count -= 1
            inProgress[pending]?.holdingSocket -= holding
            if inProgress[pending]?.count == 0 { inProgress[pending] = nil }
            shimSockets[requestNumber] = nil
        }
        var excluded = retired[key] ?? []
        if let held = request.heldSocketInode { excluded.insert(held) }
        let gaveItsPortToEnvoy = request.onBehalfOf != nil && request.heldSocketInode == nil
        if registry[key] == nil, let refusal = await refuseIfPortTaken(key.host, excluding: excluded, gaveItsPortToEnvoy: gaveItsPortToEnvoy) {
            return .failure(refusal)
        }

        let answer = await metadataSource.metadata(for: request.container)
        if inProgress[pending]?.cancelled == true {
            return .failure(WireError(.notRegistered, "\(key) was deregistered by its shim before it was registered"))
        }
        // The registration this one replaces may have been withdrawn while Docker
        // answered: Envoy's socket for it, closing now, is not this one's.
        excluded.formUnion(retired[key] ?? [])
        let metadata = PendingLabels.labels(from: answer, replacing: registry[key], for: request.container)
        let registration = Registration(
            key: key,
            container: request.container,
            owner: owner,
            metadata: metadata,
            mode: metadata.mode ?? configuration.defaultMode
        )
        // Again, now that nothing awaits before the registry changes: an overlapping
        // port, the same port by another live shim, or (for resync) by a newer shim,
        // may have been registered while this one waited for the socket table and for
        // Docker.
        if let conflict = overlapRefusal(key, to: request.container) ?? publishedRefusal(key, for: owner) { return .failure(conflict) }
        if request.onBehalfOf != nil, let refusal = newerShimRefusal(key, for: owner) { return .failure(refusal) }
        guard owners.watch(owner) else {
            return .failure(WireError(.unavailable, "process \(owner.pid) exited while registering"))
        }
        let replaced = registry.register(registration)
        starters.note(owner)
        if let replaced, replaced.owner != owner { release(replaced.owner) }
        pendingLabels.note(key, answer: answer)
        // A shim registering again while Envoy does not take its port: logged when
        // Envoy takes it, or when it is withdrawn again (at most once a minute). One
        // that changes nothing (resync's, for a port registered already) at debug.
        let unchanged = replaced == registry[key]
        logger.log(level: withdrawnAndRetrying[key] == nil && !unchanged ? .info : .debug, unchanged ? "registered again, unchanged" : "registered", metadata: (registry[key] ?? registration).logMetadata(replacing: replaced))
        guard await commit() else {
            return await unpublishable(key, owner: owner, kept: gaveItsPortToEnvoy || hasSibling(pending))
        }

        // With Envoy not running, waiting the whole readiness timeout would only hold
        // up dockerd (it starts a container's proxies one after another) and resync
        // (and with it the server's start, ExecStartPost, and Envoy's after it). A
        // port its shim gave to Envoy is kept (below); one its shim serves itself stays
        // with the shim, which hands it over once Envoy listens.
        let (ready, absence) = await waitUntilEnvoyServesOrIsAbsent(key.host, excluding: excluded, retired: retired[key] ?? [], onBehalf: request.onBehalfOf != nil, answerBy: answerBy)
        guard registry[key]?.owner == owner else {
            return .failure(WireError(.notOwner, "\(key) was deregistered or replaced before Envoy served it"))
        }
        if ready {
            retired[key] = nil
            if withdrawnAndRetrying.removeValue(forKey: key) != nil {
                logger.info("registered, and Envoy serves it", metadata: (registry[key] ?? registration).logMetadata())
            }
            // Replacing a registration, Envoy's socket on the port was there before:
            // answer once Envoy has taken in the new cluster, not merely listens. Envoy
            // listens, so it runs: waited for up to 2 s (a loaded host), not the 250 ms
            // that keep the files' order.
            if replaced != nil {
                await publisher.waitUntilRead(atMost: min(.seconds(2), max(.zero, answerBy - .now)))
            }
            return .ok
        }
        if gaveItsPortToEnvoy {
            // Resync, for a shim that gave its port to Envoy long ago and cannot serve
            // it again: withdrawn, the port would stay dark even once Envoy is back.
            // Kept, Envoy serves it as soon as it runs.
            let reason = absence?.reason(configuration.xdsDirectory)
            logger.warning("\(reason ?? "Envoy did not listen in time"); registration kept for when it listens (its shim no longer holds the port)", metadata: ["key": "\(key)", "envoy_reads_files": "\(absence == nil)"])
            // Envoy not there is what resync counts as waiting; a running Envoy that
            // did not take the port is a failure to look into.
            let why = reason ?? "Envoy did not start listening on \(key.host) within \(configuration.readyTimeout)"
            let when = absence?.whenServed ?? "as soon as it runs with the bootstrap from `edshim bootstrap --xds-dir \(configuration.xdsDirectory)`"
            return .failure(WireError(absence != nil ? .envoyAbsent : .envoyTimeout, "\(why); the registration is kept, and Envoy serves the port \(when)\(absence != nil ? "" : " (Envoy reads the files: its log and admin /listeners say why it did not bind)")"))
        }
        // The shim's own registration and resync's for it, at once: the last to end
        // withdraws it, so that neither takes away the registration the other waits on.
        let withdrawn = !hasSibling(pending)
        if withdrawn {
            registry.remove(key)
            release(owner)
            await commit()
        }
        logWithdrawal(key, withdrawn: withdrawn, absence: absence)
        if let absence {
            return .failure(WireError(.envoyAbsent, "\(absence.reason(configuration.xdsDirectory)): \(key) \(withdrawn ? "withdrawn" : "not served"); \(absence.advice(configuration.xdsDirectory))"))
        }
        return .failure(WireError(.envoyTimeout, "Envoy did not start listening on \(key.host) within \(configuration.readyTimeout): check that Envoy runs with the bootstrap from `edshim bootstrap --xds-dir \(configuration.xdsDirectory)` (its log and admin /listeners say why it did not bind)"))
    }

    // MARK: Deregister

    private func deregister(_ key: RegistrationKey, from peer: PeerCredentials) async -> WireResponse {
        // The shim is stopping: a later one of the port starts over, logged in full.
        withdrawnAndRetrying[key] = nil
        guard let owner = ProcessTable.owner(of: peer.pid) else {
            return .failure(WireError(.unavailable, "cannot read /proc/\(peer.pid)"))
        }
        // A shim stopped while its registration waited (on Docker): that registration
        // is never made, so Envoy never opens a port nobody serves any more, whoever
        // holds the key meanwhile.
        let pending = Pending(key: key, owner: owner)
        let cancelled = inProgress[pending] != nil
        if cancelled {
            inProgress[pending]?.cancelled = true
            logger.info("deregistered before the registration was made", metadata: ["key": "\(key)", "owner": "\(owner)"])
        }
        switch registry.deregister(key, owner: owner) {
        case .notRegistered:
            if cancelled { return .ok }
            return .failure(WireError(.notRegistered, "nothing is registered for \(key)"))
        case .ownedByAnother(let current) where cancelled:
            logger.info("kept a registration of another shim", metadata: ["key": "\(key)", "owner": "\(current)", "caller": "\(owner)"])
            return .ok
        case .ownedByAnother(let current):
            logger.info("kept a newer registration", metadata: ["key": "\(key)", "owner": "\(current)", "caller": "\(owner)"])
            return .failure(WireError(.notOwner, "\(key) now belongs to \(current); left in place"))
        case .removed(let registration):
            logger.info("deregistered", metadata: registration.logMetadata())
            await withdraw([registration])
            return .ok
        }
    }

    // MARK: Labels read again

    /// Whether registrations wait for Docker to answer about their labels (keys
    /// removed since do not count).
    var hasPendingLabels: Bool { pendingLabels.keys.contains { registry[$0] != nil } }

    /// Asks again about the labels of registrations made while Docker could not be
    /// asked, and publishes those that changed: a port republished while dockerd
    /// restored its containers at boot is named from its labels once dockerd answers.
    /// Only a container's labels replace those a registration has: an answer that
    /// finds none (no container there, or a server that reads no labels) keeps them.
    func refreshPendingLabels() async {
        var changed = false
        for key in pendingLabels.takeAll().sorted() {
            guard let before = registry[key] else { continue }
            let answer = await metadataSource.metadata(for: before.container)
            // Replaced or removed while Docker answered: that registration decides.
            guard let current = registry[key], current.owner == before.owner, current.container == before.container else { continue }
            pendingLabels.note(key, answer: answer)
            guard case .known(let metadata) = answer, metadata.containerID != nil, metadata != current.metadata else { continue }
            let relabelled = Registration(key: key, container: current.container, owner: current.owner, metadata: metadata, mode: metadata.mode ?? configuration.defaultMode)
            registry.register(relabelled)
            logger.notice("labels read once Docker answered", metadata: (registry[key] ?? relabelled).logMetadata())
            changed = true
        }
        if changed { await commit() }
    }

    /// Whether another registration of the same port by the same shim is in progress
    /// beside this one (the shim's own and `edshim resync`'s for it).
    private func hasSibling(_ pending: Pending) -> Bool {
        (inProgress[pending]?.count ?? 0) > 1
    }

    /// Stops watching `owner` unless it still owns a registration.
    func release(_ owner: Owner) {
        if registry.registrations(ownedBy: owner).isEmpty {
            owners.unwatch(owner)
            starters.forget(owner)
        }
    }

    /// Hands the registry to Envoy and to the state file; returns once each has it or
    /// refused it (a full disk: retried in the background; a request waiting for the
    /// disk would hang, and dockerd with it, and SIGTERM), with whether Envoy's files
    /// have it.
    @discardableResult
    func commit() async -> Bool {
        let snapshot = registry
        revision += 1
        let current = revision
        async let published = publisher.publish(snapshot, revision: current)
        async let saved = state.save(snapshot, revision: current)
        return await (published, saved).0
    }

    /// A registration in progress: its key and the shim making it.
    private struct Pending: Hashable {
        let key: RegistrationKey
        let owner: Owner
    }
}
