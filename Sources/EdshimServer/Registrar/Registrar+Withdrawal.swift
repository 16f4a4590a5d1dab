import EdshimCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Withdrawal: taking a port back from Envoy (deregistered, its shim exited, not
/// taken in time, not writable), and the log lines its retries get.
extension Registrar {
    /// Logs that Envoy did not take `key` in time: the first time, then at most once a
    /// minute while its shim keeps registering again (the rest at debug).
    func logWithdrawal(_ key: RegistrationKey, withdrawn: Bool, absence: EnvoyAbsence?) {
        let why = absence.map { "\($0.reason(configuration.xdsDirectory)) (\($0.advice(configuration.xdsDirectory)))" } ?? "Envoy did not listen in time"
        guard withdrawn else {
            logger.warning("\(why); registration left to the other registration of its shim in progress", metadata: ["key": "\(key)"])
            return
        }
        logRetried(key, "\(why); registration withdrawn; its shim serves the port and registers again every few seconds until Envoy takes it (with EDSHIM_FALLBACK=fail in dockerd's environment, the container fails to start instead)", metadata: ["key": "\(key)"])
    }

    /// Logs a withdrawal its shim will retry: the first as a warning, then at most
    /// once a minute for the same port (the rest at debug).
    func logRetried(_ key: RegistrationKey, _ message: String, metadata: Logger.Metadata) {
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
    func unpublishable(_ key: RegistrationKey, owner: Owner, kept: Bool) async -> WireResponse {
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
    func withdraw(_ removed: [Registration]) async {
        let begun = ContinuousClock.now
        var closing: [ListeningSocket] = []
        let table = await watcher.snapshot(ports: Set(removed.map(\.key.host.port)))
        for registration in removed {
            release(registration.owner)
            let listening = table.filter { $0.endpoint == registration.key.host }
            retired[registration.key, default: []].formUnion(listening.map(\.inode))
            closing += listening
        }
        await commit()
        let left = configuration.releaseTimeout - (ContinuousClock.now - begun)
        if await watcher.waitUntilClosed(closing, timeout: max(left, .zero)) {
            for registration in removed where registry[registration.key] == nil {
                retired[registration.key] = nil
            }
        }
    }
}
