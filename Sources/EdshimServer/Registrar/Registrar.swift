import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The registry's one owner: takes requests from the socket, keeps the registry,
/// publishes it to Envoy and answers once Envoy has acted on it.
actor Registrar {
    private var registry: Registry
    /// Sockets Envoy listened on for a key just deregistered: until they close,
    /// readiness must not take them for the listener of a new registration.
    private var retired: [RegistrationKey: Set<UInt64>] = [:]
    /// Numbers the snapshots `commit` hands on, newest highest (0 was the start's).
    private var revision = 0
    /// Registrations taken and not answered yet, per key and shim: how many (a shim's
    /// own and resync's on its behalf can overlap), and whether the shim deregistered
    /// meanwhile, which cancels every one of them not yet in the registry.
    private var inProgress: [Pending: (count: Int, cancelled: Bool)] = [:]
    /// The sockets shims serving their ports themselves listen on, for each
    /// registration in progress that named one: not Envoy's.
    private var shimSockets: [Int: UInt64] = [:]
    /// Tells the registrations in progress apart (keys of `shimSockets`).
    private var requestsTaken = 0
    /// Ports whose shim serves them itself because their registration was withdrawn
    /// (Envoy did not take them, or its files could not be written): the shim
    /// registers again every few seconds until Envoy serves the port, and each
    /// withdrawal is logged at most once a minute (the retries at debug), not twice per
    /// retry.
    private var withdrawnAndRetrying: [RegistrationKey: LogThrottle] = [:]
    /// The process each shim ran under when it registered (its dockerd).
    private var starters = ShimStarters()
    /// Registrations made while Docker could not be asked for their labels.
    private var pendingLabels: PendingLabels
    /// Yields when a registration starts waiting for Docker: `LabelRefresher` waits on it.
    nonisolated let labelsPendingNotices: AsyncStream<Void>
    private let publisher: XDSPublisher
    private let state: StateStore
    private let owners: OwnerWatcher
    private let watcher: ListenWatcher
    private let metadataSource: any ContainerMetadataSource
    private let configuration: ServerConfiguration
    /// This server created the xds directory: an Envoy started before it may still
    /// listen on ports from the deleted one (`refuseIfPortTaken` says so).
    private let xdsDirectoryCreated: Bool
    /// When this server started: an Envoy that read nothing since, a while after it,
    /// and listens on none of the registered ports is not running.
    private let started = ContinuousClock.now
    /// When a registration last found Envoy not running: for a while after, the next
    /// ones need not wait a second each to find it again (`envoySeemsAbsent` still
    /// checks that nothing has changed since).
    private var envoyFoundAbsent: ContinuousClock.Instant?
    /// How long a finding that Envoy does not run is trusted.
    static let envoyAbsenceTrusted = Duration.seconds(10)
    private let logger: Logger

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
            .registrations(registry.registrations)
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
            if error.code == .foreignNamespace {
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
        if let conflict = overlapRefusal(key) ?? publishedRefusal(key, for: owner) { return .failure(conflict) }
        let pending = Pending(key: key, owner: owner)
        inProgress[pending, default: (0, false)].count += 1
        requestsTaken += 1
        let requestNumber = requestsTaken
        shimSockets[requestNumber] = request.heldSocketInode
        let onBehalf = request.onBehalfOf != nil
        if onBehalf { onBehalfInProgress += 1 }
        defer {
            if onBehalf { onBehalfInProgress -= 1 }
            inProgress[pending]?.count -= 1
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
        if let conflict = overlapRefusal(key) ?? publishedRefusal(key, for: owner) { return .failure(conflict) }
        if request.onBehalfOf != nil, let refusal = newerShimRefusal(key, for: owner) { return .failure(refusal) }
        guard owners.watch(owner) else {
            return .failure(WireError(.unavailable, "process \(owner.pid) exited while registering"))
        }
        let replaced = registry.register(registration)
        starters.note(owner)
        if let replaced, replaced.owner != owner { release(replaced.owner) }
        pendingLabels.note(key, answer: answer)
        // A shim registering again while Envoy does not take its port: logged when
        // Envoy takes it, or when it is withdrawn again (at most once a minute).
        logger.log(level: withdrawnAndRetrying[key] == nil ? .info : .debug, "registered", metadata: (registry[key] ?? registration).logMetadata(replacing: replaced))
        guard await commit() else {
            return await unpublishable(key, owner: owner, kept: gaveItsPortToEnvoy || hasSibling(pending))
        }

        // With Envoy not running, waiting the whole readiness timeout would only hold
        // up dockerd (it starts a container's proxies one after another) and resync
        // (and with it the server's start, ExecStartPost, and Envoy's after it). A
        // port its shim gave to Envoy is kept (below); one its shim serves itself stays
        // with the shim, which hands it over once Envoy listens.
        let (ready, envoyAbsent) = await waitUntilEnvoyServesOrIsAbsent(key.host, excluding: excluded, retired: retired[key] ?? [], onBehalf: request.onBehalfOf != nil, answerBy: answerBy)
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
            logger.warning("Envoy did not listen in time; registration kept for when it does (its shim no longer holds the port)", metadata: ["key": "\(key)", "envoy_reads_files": "\(!envoyAbsent)"])
            // Envoy not running is what resync counts as waiting; a running Envoy that
            // did not take the port is a failure to look into.
            let why = envoyAbsent
                ? "Envoy does not run (it reads none of the files in \(configuration.xdsDirectory))"
                : "Envoy did not start listening on \(key.host) within \(configuration.readyTimeout)"
            return .failure(WireError(envoyAbsent ? .envoyAbsent : .envoyTimeout, "\(why); the registration is kept, and Envoy serves the port as soon as it runs with the bootstrap from `edshim bootstrap --xds-dir \(configuration.xdsDirectory)`\(envoyAbsent ? "" : " (Envoy reads the files: its log and admin /listeners say why it did not bind)")"))
        }
        // The shim's own registration and resync's for it, at once: the last to end
        // withdraws it, so that neither takes away the registration the other waits on.
        let withdrawn = !hasSibling(pending)
        if withdrawn {
            registry.remove(key)
            release(owner)
            await commit()
        }
        logWithdrawal(key, withdrawn: withdrawn, envoyAbsent: envoyAbsent)
        if envoyAbsent {
            return .failure(WireError(.envoyAbsent, "Envoy does not run (it reads none of the files in \(configuration.xdsDirectory)): \(key) \(withdrawn ? "withdrawn" : "not served"); start Envoy with the bootstrap from `edshim bootstrap --xds-dir \(configuration.xdsDirectory)`"))
        }
        return .failure(WireError(.envoyTimeout, "Envoy did not start listening on \(key.host) within \(configuration.readyTimeout): check that Envoy runs with the bootstrap from `edshim bootstrap --xds-dir \(configuration.xdsDirectory)` (its log and admin /listeners say why it did not bind)"))
    }

    /// Logs that Envoy did not take `key` in time: the first time, then at most once a
    /// minute while its shim keeps registering again (the rest at debug).
    private func logWithdrawal(_ key: RegistrationKey, withdrawn: Bool, envoyAbsent: Bool) {
        let why = envoyAbsent
            ? "Envoy does not run (it reads none of the files in \(configuration.xdsDirectory))"
            : "Envoy did not listen in time"
        guard withdrawn else {
            logger.warning("\(why); registration left to the other registration of its shim in progress", metadata: ["key": "\(key)"])
            return
        }
        logRetried(key, "\(why); registration withdrawn; its shim serves the port and registers again every few seconds until Envoy takes it", metadata: ["key": "\(key)"])
    }

    /// Logs a withdrawal its shim will retry: the first as a warning, then at most
    /// once a minute for the same port (the rest at debug).
    private func logRetried(_ key: RegistrationKey, _ message: String, metadata: Logger.Metadata) {
        var throttle = withdrawnAndRetrying[key] ?? LogThrottle()
        let now = Int64((ContinuousClock.now - started) / .milliseconds(1))
        if let line = throttle.line(message, now: now) {
            logger.warning("\(line)", metadata: metadata)
        } else {
            logger.debug("\(message)", metadata: metadata)
        }
        withdrawnAndRetrying[key] = throttle
    }

    /// The answer to a registration whose configuration could not be written to the
    /// xds directory (a full disk): Envoy cannot serve the port until it is, so the
    /// shim is told at once, not after the readiness timeout, and serves its port
    /// itself (as docker-proxy did), registering again until the server can write.
    /// Withdrawn, unless its shim gave its port to Envoy long ago (`kept`, resync's):
    /// Envoy then serves it once the files are written.
    private func unpublishable(_ key: RegistrationKey, owner: Owner, kept: Bool) async -> WireResponse {
        let reason = await publisher.writeFailure ?? "the write failed"
        let directory = configuration.xdsDirectory
        if !kept, registry[key]?.owner == owner {
            registry.remove(key)
            release(owner)
            await commit()
        }
        let metadata: Logger.Metadata = ["key": "\(key)", "xds_dir": "\(directory)", "error": "\(reason)"]
        if kept {
            logger.warning("cannot write Envoy's configuration; registration kept for when it can", metadata: metadata)
        } else {
            logRetried(key, "cannot write Envoy's configuration; registration withdrawn", metadata: metadata)
        }
        return .failure(WireError(.unavailable, "cannot write Envoy's configuration in \(directory) (\(reason)): \(key) \(kept ? "is kept, and Envoy serves it once the server can write there" : "is not registered; its shim serves the port itself and registers again once the server can write there"); GET /healthz on the server's admin address says while writes fail (a full disk needs space freed)"))
    }

    /// Waits until Envoy serves `host` (see `waitUntilEnvoyServes`), for up to the
    /// readiness timeout (and never past `answerBy`), or until Envoy is found not
    /// running. A shim's own registration waits a second itself before it takes Envoy
    /// for absent (an Envoy still starting at boot, or busy, has that long to read),
    /// unless a registration found it absent a moment ago: then, as for resync's
    /// (`onBehalf`), the ports that follow (dockerd starts them one after another) are
    /// not held up a second each.
    private func waitUntilEnvoyServesOrIsAbsent(_ host: SocketEndpoint, excluding excluded: Set<UInt64>, retired: Set<UInt64>, onBehalf: Bool, answerBy: ContinuousClock.Instant) async -> (ready: Bool, envoyAbsent: Bool) {
        let start = ContinuousClock.now
        let deadline = min(start + configuration.readyTimeout, answerBy)
        let threshold = min(Self.readyTimeoutWithoutEnvoy, configuration.readyTimeout)
        let absenceKnown = onBehalf || envoyFoundAbsent.map { start - $0 < Self.envoyAbsenceTrusted } ?? false
        while true {
            if absenceKnown || ContinuousClock.now - start >= threshold, await envoySeemsAbsent(after: threshold) {
                // Envoy may have come up just now: one last look.
                return (await waitUntilEnvoyServes(host, excluding: excluded, retired: retired, timeout: .zero), true)
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                if await waitUntilEnvoyServes(host, excluding: excluded, retired: retired, timeout: .zero) { return (true, false) }
                return (false, await envoySeemsAbsent(after: threshold))
            }
            if await waitUntilEnvoyServes(host, excluding: excluded, retired: retired, timeout: min(left, .milliseconds(100))) { return (true, false) }
        }
    }

    /// Whether Envoy seems not to run: it listens on none of the registered ports
    /// (sockets of shims serving their ports themselves do not count), and it has
    /// read none of the files for `threshold` after one was written, or (a server
    /// restarted with its state intact writes nothing, so unread files cannot tell)
    /// none since this server started, that long ago. A read by any process counts
    /// (an operator's `cat` too): then the registration waits the readiness timeout,
    /// as for an Envoy that reads but does not listen. A finding of absence is noted
    /// in `envoyFoundAbsent`.
    private func envoySeemsAbsent(after threshold: Duration) async -> Bool {
        if let unread = await publisher.envoyLeftUnreadFor() {
            guard unread >= threshold else { return false }
        } else {
            guard ContinuousClock.now - started >= threshold, !(await publisher.envoyHasReadAny()) else { return false }
        }
        let notEnvoys = Set(shimSockets.values)
        let listening = Set(await watcher.snapshot().filter { !notEnvoys.contains($0.inode) }.map(\.endpoint))
        guard !registry.registrations.contains(where: { listening.contains($0.key.host) }) else { return false }
        envoyFoundAbsent = ContinuousClock.now
        return true
    }

    /// Waits until Envoy listens on `host` for a registration just published: on a
    /// socket that is none of `excluded`, or on one of the `retired` sockets of the
    /// same key deregistered a moment ago, if that still listens once Envoy has read
    /// the new configuration. Envoy then never applied the removal (it lagged, or the
    /// two updates reached it as one and it saw no change) and keeps serving the port
    /// on that socket: waiting for a new one would wait in vain. Until Envoy has read
    /// it, a retired socket is one Envoy may still close (a stalled Envoy reads the
    /// removal first): it serves nothing yet.
    private func waitUntilEnvoyServes(_ host: SocketEndpoint, excluding excluded: Set<UInt64>, retired: Set<UInt64>, timeout: Duration) async -> Bool {
        guard !retired.isEmpty else {
            return await watcher.waitUntilListening(on: host, excluding: excluded, timeout: timeout)
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { [watcher] in
                await watcher.waitUntilListening(on: host, excluding: excluded, timeout: timeout)
            }
            group.addTask { [watcher, publisher] in
                guard await publisher.waitUntilRead(atMost: timeout) else { return false }
                return await watcher.snapshot().contains { $0.endpoint == host && retired.contains($0.inode) }
            }
            for await served in group where served {
                group.cancelAll()
                return true
            }
            return false
        }
    }

    /// `edshim resync` registers running shims on their behalf: accepted only for a
    /// process that really is a shim publishing exactly this port, in this server's
    /// network namespace, from the shim's own user (or root for a shim of this
    /// server's user), and never over a newer live shim's registration.
    private func authorizeOnBehalf(of pid: Int32, _ request: RegisterRequest, peer: PeerCredentials) -> Result<Owner, WireError> {
        // /proc shows threads by their ids too; a shim is a process.
        if let process = ProcessTable.threadGroup(of: pid), process != pid {
            return .failure(WireError(.permissionDenied, "\(pid) is a thread of process \(process), not a process: name the shim's process id"))
        }
        let shim: ShimProcesses.Shim
        switch self.shim(pid, publishing: request, otherwise: "is not a running edshim shim") {
        case .success(let found): shim = found
        case .failure(let refusal): return .failure(refusal)
        }
        // Any local user can name a process edshim and give it docker-proxy flags, also
        // a setuid program's that runs as root (sudo, at its password prompt): only a
        // process running this server's edshim is a shim.
        switch ShimProcesses.executableCheck(of: pid) {
        case .same:
            break
        case .other(let path, let own):
            return .failure(WireError(.permissionDenied, "process \(pid) runs \(path), not this server's edshim (\(own)): a shim is registered on its behalf only when it runs the same edshim (dockerd's --userland-proxy-path, or a docker-proxy symlink to it)"))
        case .unreadable:
            return .failure(WireError(.permissionDenied, "cannot tell which program process \(pid) runs (/proc/\(pid)/exe cannot be read: another user's process, to a server not run as root)"))
        }
        // Root (resync, run by systemd) registers only shims of its own user or of this
        // server's (dockerd's shims run as dockerd's user), never another user's.
        let serverUser = getuid()
        let shimUser = ProcessTable.userID(of: pid)
        guard shimUser == peer.uid || (peer.uid == 0 && shimUser == serverUser) else {
            let runsAs = shimUser.map { "runs as uid \($0)" } ?? "has gone"
            return .failure(WireError(.permissionDenied, "process \(pid) \(runsAs): a shim is registered on its behalf only by its own user, or by root for a shim of this server's user (uid \(serverUser)), as dockerd's are"))
        }
        if let refusal = newerShimRefusal(request.key, for: shim.owner) { return .failure(refusal) }
        return .success(shim.owner)
    }

    /// The refusal of a registration on behalf of `owner` when a newer shim, still
    /// running, holds `key` (resync must not put back the shim it replaced).
    private func newerShimRefusal(_ key: RegistrationKey, for owner: Owner) -> WireError? {
        guard let current = registry[key]?.owner, current != owner,
              ProcessTable.owner(of: current.pid) == current, current.startTime > owner.startTime else { return nil }
        return WireError(.notOwner, "\(key) belongs to a newer shim (\(current)); left in place")
    }

    /// The shim process `pid`, if it is one and publishes exactly what `request` asks
    /// (its name, flags and start time, from /proc); else the refusal.
    private func shim(_ pid: Int32, publishing request: RegisterRequest, otherwise notAShim: String) -> Result<ShimProcesses.Shim, WireError> {
        guard let shim = ShimProcesses.shim(pid: pid) else {
            // Gone between its request and this look (killed just after asking, reaped
            // or not yet), or hidden from this server: nothing says it is not a shim.
            guard let present = ProcessTable.owner(of: pid), ProcessTable.liveness(of: present) == .running else {
                return .failure(WireError(.unavailable, "process \(pid) has exited, or /proc does not show it to this server (mounted with hidepid?): it cannot be checked"))
            }
            return .failure(WireError(.permissionDenied, "process \(pid) \(notAShim)"))
        }
        guard ShimProcesses.sharesNetworkNamespace(pid) != false else {
            return .failure(WireError(.foreignNamespace, "process \(pid) runs in another network namespace than this server (a dockerd inside a container?): the ports it publishes are not this host's, and Envoy here cannot serve them"))
        }
        guard shim.arguments.key == request.key, shim.arguments.container == request.container else {
            return .failure(WireError(.permissionDenied, "process \(pid) publishes \(shim.arguments.key) → \(shim.arguments.container), not \(request.key) → \(request.container)"))
        }
        return .success(shim)
    }

    /// A listener that is not Envoy's on the port would make Envoy's bind fail.
    /// Sockets still closing (Envoy letting go of a port just deregistered) get a
    /// moment to go. For a resync of a shim that gave its port to Envoy, in an xds
    /// directory this server created and no Envoy has read from yet, the listener is
    /// most likely an Envoy still serving what it read from the directory that was
    /// deleted: the refusal says so.
    private func refuseIfPortTaken(_ host: SocketEndpoint, excluding excluded: Set<UInt64>, gaveItsPortToEnvoy: Bool) async -> WireError? {
        let listening = await watcher.snapshot().filter { $0.keepsFromBinding(host) }
        // Nothing listens there: Envoy can bind the port, unless a connection holds it.
        if listening.isEmpty, let refusal = HostAddressCheck.portRefusal(host) {
            return WireError(.portInUse, refusal)
        }
        let takenSockets = listening.filter { !excluded.contains($0.inode) }
        let taken = Set(takenSockets.map(\.inode))
        guard !taken.isEmpty else { return nil }
        // Named, as the shim names them with the server down (a rare path: it reads
        // every process's descriptors). Only an Envoy's sockets (or sockets whose
        // process cannot be seen) may be closing, letting go of a registration of the
        // port withdrawn a moment ago: they get a moment to go, another program's none.
        var holders = PortHolders.holding(taken)
        if holders.isEmpty || holders.contains(where: \.isEnvoy) {
            if await watcher.waitUntilClosed(taken, timeout: .seconds(1)) { return nil }
            holders = PortHolders.holding(taken)
        }
        if gaveItsPortToEnvoy, xdsDirectoryCreated, !(await publisher.envoyHasReadAny()) {
            return WireError(.portInUse, "another process already listens on \(host), most likely an Envoy started before this server created the xds directory \(configuration.xdsDirectory): it serves the port from the deleted one and sees no change. Restart Envoy, then run `edshim resync` again")
        }
        // Where its socket is bound, when that is not `host` itself (127.0.0.1:80 for 0.0.0.0:80).
        let elsewhere = Set(takenSockets.map(\.endpoint)).subtracting([host]).map(\.description).sorted()
        let bound = elsewhere.isEmpty ? "" : " (bound to \(elsewhere.joined(separator: ", ")))"
        guard !holders.isEmpty else {
            return WireError(.portInUse, "another process already listens on \(host)\(bound): stop it, or publish the container on a free port")
        }
        let names = holders.map(\.description).joined(separator: ", ")
        // Another Envoy on the host, or the one this server configures still letting go.
        let envoy = holders.contains(where: \.isEnvoy) ? " (if that is the Envoy this server configures, it has not let go of a registration of the port withdrawn a moment ago yet: try again once it has read the update)" : ""
        return WireError(.portInUse, "another process already listens on \(host)\(bound): \(names); stop it, or publish the container on a free port\(envoy)")
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

    // MARK: Refusals

    /// The refusal of `key` when a registration on another address overlaps it.
    private func overlapRefusal(_ key: RegistrationKey) -> WireError? {
        guard let conflict = registry.overlapping(key).first else { return nil }
        return WireError(.addressConflict, "\(key) overlaps \(conflict.key), already published for \(conflict.container) by \(conflict.owner): Envoy cannot listen on both; publish another host port, or the same address (docker ps --filter publish=\(key.host.port) shows the container)")
    }

    /// The refusal of `key` for `owner` when another shim holds it that a process
    /// still running started, and not the one that started `owner`: two dockerds (or a
    /// dockerd and a shim run by hand) publishing one port. A port is published once,
    /// as docker-proxy's bind would say. A shim of the same dockerd replaces the
    /// registration (that dockerd published the port again: it stops a port's proxy
    /// before it lets the port go); so does the next dockerd's for a shim whose
    /// dockerd exited (`ShimStarters`).
    private func publishedRefusal(_ key: RegistrationKey, for owner: Owner) -> WireError? {
        guard let holder = registry[key], holder.owner != owner, let starter = starters.starter(of: holder.owner),
              starter != ProcessTable.starter(of: owner.pid) else { return nil }
        return WireError(.portInUse, BindRefusal.alreadyPublished(key, for: holder.container, by: holder.owner, startedBy: starter, hint: " (docker ps --filter publish=\(key.host.port), against each dockerd)"))
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

    // MARK: Owners that died

    /// A shim exited without deregistering (SIGKILL, OOM): its registrations go.
    func ownerExited(_ owner: Owner) async {
        let orphaned = registry.registrations(ownedBy: owner)
        guard !orphaned.isEmpty else { return }
        for registration in orphaned {
            registry.remove(registration.key)
            logger.notice("shim exited without deregistering; removed its port", metadata: registration.logMetadata())
        }
        await withdraw(orphaned)
    }

    /// Publishes the removal of `removed` (already out of the registry) and waits,
    /// briefly, until Envoy has closed their ports: `releaseTimeout` in all, the
    /// writes included, so that a deregistering shim (which waits 900 ms, to exit
    /// within dockerd's second) gets its answer also when Envoy lags.
    private func withdraw(_ removed: [Registration]) async {
        let begun = ContinuousClock.now
        var closing: Set<UInt64> = []
        let table = await watcher.snapshot()
        for registration in removed {
            release(registration.owner)
            let listening = Set(table.filter { $0.endpoint == registration.key.host }.map(\.inode))
            retired[registration.key, default: []].formUnion(listening)
            closing.formUnion(listening)
        }
        await commit()
        let left = configuration.releaseTimeout - (ContinuousClock.now - begun)
        if await watcher.waitUntilClosed(closing, timeout: max(left, .zero)) {
            for registration in removed where registry[registration.key] == nil {
                retired[registration.key] = nil
            }
        }
    }

    /// Whether another registration of the same port by the same shim is in progress
    /// beside this one (the shim's own and `edshim resync`'s for it).
    private func hasSibling(_ pending: Pending) -> Bool {
        (inProgress[pending]?.count ?? 0) > 1
    }

    /// Stops watching `owner` unless it still owns a registration.
    private func release(_ owner: Owner) {
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
    private func commit() async -> Bool {
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
