import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// How Envoy is found not there, so that a registration need not wait out the
/// readiness timeout (`Registrar.envoyAbsence`).
enum EnvoyAbsence: Sendable, Equatable {
    /// It listens on no registered port and reads none of the files.
    case notRunning
    /// It listens on registered ports but has read none of the files for the
    /// readiness timeout: stopped, or hung.
    case notReading
    /// Either, and the Envoy watching the server's xds directory is stopped
    /// (SIGSTOP): these process ids. Resumed, it takes the updates; another
    /// Envoy started beside it would share the ports with it.
    case stopped([Int32])
    /// It listens on registered ports and reads none of the files, the xds directory
    /// was deleted or replaced while this server ran (and made again), and no Envoy
    /// watches the directory there now: the Envoy that runs follows the one it
    /// found at start, and only a restart makes it read this one.
    case followsLostDirectory

    /// Why, naming the xds directory.
    func reason(_ directory: String) -> String {
        switch self {
        case .notRunning: "Envoy does not run (it reads none of the files in \(directory))"
        case .notReading: "Envoy takes no update (it listens on registered ports but has read none of the files in \(directory) for the readiness timeout: stopped, or hung)"
        case .stopped(let pids): "Envoy takes no update: it is stopped (\(Self.list(pids)), SIGSTOP)"
        case .followsLostDirectory: "Envoy takes no update: the xds directory \(directory) was deleted or replaced while the server ran, and no Envoy watches the one there now (the Envoy listening on registered ports follows the directory it found at its start)"
        }
    }

    /// What to do about it.
    func advice(_ directory: String) -> String {
        switch self {
        case .notRunning: "start Envoy with the bootstrap from `edshim bootstrap --xds-dir \(directory)`"
        case .notReading: "see why Envoy's main thread does not run (a stopped process, `kill -CONT`; or restart Envoy)"
        case .stopped(let pids): "resume it (kill -CONT \(pids.map(String.init).joined(separator: " "))); do not start another Envoy, which would share the ports with the stopped one"
        case .followsLostDirectory: "restart Envoy: it reads the files the server wrote into the new directory, and serves every registered port"
        }
    }

    /// When a registration kept for Envoy gets served.
    var whenServed: String? {
        switch self {
        case .notRunning: nil
        case .notReading, .stopped: "as soon as it takes updates again"
        case .followsLostDirectory: "once it is restarted"
        }
    }

    private static func list(_ pids: [Int32]) -> String {
        (pids.count == 1 ? "pid " : "pids ") + pids.map(String.init).joined(separator: ", ")
    }
}

/// Readiness: when Envoy serves a registered port, or is found not running, and
/// whether anything but Envoy keeps it from binding the port.
extension Registrar {
    /// Waits until Envoy serves `host` (see `waitUntilEnvoyServes`), for up to the
    /// readiness timeout (and never past `answerBy`), or until Envoy is found not
    /// running. A shim's own registration waits a second itself before it takes Envoy
    /// for absent (an Envoy still starting at boot, or busy, has that long to read),
    /// unless a registration found it absent a moment ago: then, as for resync's
    /// (`onBehalf`), the ports that follow (dockerd starts them one after another) are
    /// not held up a second each.
    func waitUntilEnvoyServesOrIsAbsent(_ host: SocketEndpoint, excluding excluded: Set<UInt64>, retired: Set<UInt64>, onBehalf: Bool, answerBy: ContinuousClock.Instant) async -> (ready: Bool, absence: EnvoyAbsence?) {
        let start = ContinuousClock.now
        let deadline = min(start + configuration.readyTimeout, answerBy)
        let threshold = min(Self.readyTimeoutWithoutEnvoy, configuration.readyTimeout)
        let absenceKnown = onBehalf || envoyFoundAbsent.map { start - $0 < Self.envoyAbsenceTrusted } ?? false
        while true {
            if absenceKnown || ContinuousClock.now - start >= threshold, let absence = await envoyAbsence(after: threshold, notReadingAfter: configuration.readyTimeout) {
                // Envoy may have come up just now: one last look.
                let served = await waitUntilEnvoyServes(host, excluding: excluded, retired: retired, timeout: .zero)
                return (served, served ? nil : absence)
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                if await waitUntilEnvoyServes(host, excluding: excluded, retired: retired, timeout: .zero) { return (true, nil) }
                return (false, await envoyAbsence(after: threshold, notReadingAfter: configuration.readyTimeout))
            }
            if await waitUntilEnvoyServes(host, excluding: excluded, retired: retired, timeout: min(left, .milliseconds(100))) { return (true, nil) }
        }
    }

    /// Whether Envoy seems not to be there, and how:
    /// - `.notRunning`: it listens on none of the registered ports (sockets of shims
    ///   serving their ports themselves do not count), and it has read none of the
    ///   files for `threshold`: after one was written, or, with nothing left unread
    ///   (a server restarted with its state intact writes nothing; an Envoy that read
    ///   everything may have died since), after its last read, or since this server
    ///   started if it read nothing after that;
    /// - `.notReading`: it listens on registered ports but has read none of the files
    ///   for `notReadingAfter` (the readiness timeout) after one was written: stopped
    ///   (SIGSTOP) or hung, it takes no update (its main thread reads a file within
    ///   milliseconds of its renaming). A registration waits that long for an Envoy
    ///   that is only busy; the ones after it, while Envoy still reads nothing, do not
    ///   (dockerd starts a container's proxies one after another).
    /// A read by any process counts (an operator's `cat` too): then the registration
    /// waits the readiness timeout, as for an Envoy that reads but does not listen. A
    /// finding is noted in `envoyFoundAbsent`.
    func envoyAbsence(after threshold: Duration, notReadingAfter: Duration) async -> EnvoyAbsence? {
        let unreadTooLong: Bool
        if let unread = await publisher.envoyLeftUnreadFor() {
            guard unread >= threshold else { return nil }
            unreadTooLong = unread >= notReadingAfter
        } else {
            // Nothing waits to be read: Envoy has nothing new to take in, or it read
            // everything and went down since. One that has read nothing for
            // `threshold` (or, having read nothing since this server started, that
            // long after the start) and listens on no registered port does not run,
            // unless an Envoy still watches the directory: it runs, and did not bind
            // what it read (the readiness timeout, then its log, say why). Where the
            // watchers cannot be seen, only an Envoy that read nothing since this
            // server started counts as not running.
            guard let quiet = await publisher.envoyReadNothingFor(since: started), quiet >= threshold else { return nil }
            if let watchers = envoyWatchers() {
                guard watchers.allSatisfy(\.stopped) else { return nil }
            } else if await publisher.envoyHasReadAny() {
                return nil
            }
            unreadTooLong = false
        }
        let notEnvoys = Set(shimSockets.values)
        let listening = Set(await watcher.snapshot().filter { !notEnvoys.contains($0.inode) }.map(\.endpoint))
        let listensOnRegistered = registry.registrations.contains { listening.contains($0.key.host) }
        guard !listensOnRegistered || unreadTooLong else { return nil }
        envoyFoundAbsent = ContinuousClock.now
        // Said so rather than "start Envoy": a second Envoy would share the ports.
        let watchers = envoyWatchers() ?? []
        let stopped = watchers.filter(\.stopped).map(\.pid)
        if !stopped.isEmpty { return .stopped(stopped) }
        guard listensOnRegistered else { return .notRunning }
        // Not "stopped, or hung" when the server knows why no update is read.
        if await publisher.directoryWasReplaced, watchers.isEmpty { return .followsLostDirectory }
        return .notReading
    }

    /// The Envoys watching the xds directory (`EnvoyWatchers`), looked for at most
    /// once a second: a scan of /proc, while every registration may ask when Envoy
    /// takes nothing (at boot, a resync).
    func envoyWatchers() -> [EnvoyWatchers.Watcher]? {
        let now = ContinuousClock.now
        if let seen = envoyWatchersSeen, now - seen.at < .seconds(1) { return seen.watchers }
        let watchers = EnvoyWatchers.find(watching: configuration.xdsDirectory)
        envoyWatchersSeen = (now, watchers)
        return watchers
    }

    /// Waits until Envoy listens on `host` for a registration just published: on a
    /// socket that is none of `excluded`, or on one of the `retired` sockets of the
    /// same key deregistered a moment ago, if that still listens once Envoy has read
    /// the new configuration. Envoy then never applied the removal (it lagged, or the
    /// two updates reached it as one and it saw no change) and keeps serving the port
    /// on that socket: waiting for a new one would wait in vain. Until Envoy has read
    /// it, a retired socket is one Envoy may still close (a stalled Envoy reads the
    /// removal first): it serves nothing yet.
    func waitUntilEnvoyServes(_ host: SocketEndpoint, excluding excluded: Set<UInt64>, retired: Set<UInt64>, timeout: Duration) async -> Bool {
        guard !retired.isEmpty else {
            return await watcher.waitUntilListening(on: host, excluding: excluded, timeout: timeout)
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { [watcher] in
                await watcher.waitUntilListening(on: host, excluding: excluded, timeout: timeout)
            }
            group.addTask { [watcher, publisher] in
                guard await publisher.waitUntilRead(atMost: timeout) else { return false }
                return await watcher.snapshot(ports: [host.port]).contains { $0.endpoint == host && retired.contains($0.inode) }
            }
            for await served in group where served {
                group.cancelAll()
                return true
            }
            return false
        }
    }

    /// A listener that is not Envoy's on the port would make Envoy's bind fail.
    /// Sockets still closing (Envoy letting go of a port just deregistered) get a
    /// moment to go. For a resync of a shim that gave its port to Envoy, in an xds
    /// directory this server created and no Envoy has read from yet, the listener is
    /// most likely an Envoy still serving what it read from the directory that was
    /// deleted: the refusal says so.
    func refuseIfPortTaken(_ host: SocketEndpoint, excluding excluded: Set<UInt64>, gaveItsPortToEnvoy: Bool) async -> WireError? {
        let listening = await watcher.snapshot(ports: [host.port]).filter { $0.keepsFromBinding(host) }
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
        var holders = PortHolders.holding(takenSockets)
        if holders.isEmpty || holders.contains(where: \.isEnvoy) {
            if await watcher.waitUntilClosed(takenSockets, timeout: .seconds(1)) { return nil }
            holders = PortHolders.holding(takenSockets)
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
        // The server's own admin endpoint (--admin-address): not to be stopped either.
        if holders.contains(where: { $0.pid == getpid() }) {
            return WireError(.portInUse, "\(host) is taken by this edshim server's own admin endpoint (--admin-address)\(bound); publish the container on a free port")
        }
        let names = holders.map(\.description).joined(separator: ", ")
        // The Envoy this server configures, still letting go of a listener withdrawn
        // (for an overlapping address: this key's own are not counted) a moment ago.
        let withdrawn = Set(retired.values.joined())
        if takenSockets.contains(where: { withdrawn.contains($0.inode) }) {
            return WireError(.portInUse, "another process already listens on \(host)\(bound): \(names), which has not let go of a registration of the port withdrawn a moment ago yet; try again once it has read the update")
        }
        // An Envoy's socket that no registration of this server asked for: not to be
        // stopped (it may serve every published port), nor waited for.
        if holders.contains(where: \.isEnvoy) {
            return WireError(.portInUse, "another process already listens on \(host)\(bound): \(names), for none of this server's registrations (an Envoy's admin address, or another Envoy's listener); publish the container on a free port")
        }
        return WireError(.portInUse, "another process already listens on \(host)\(bound): \(names); stop it, or publish the container on a free port")
    }
}
