import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// How long a TCP port stays served through Envoy after the dockerd that started its
/// shim exited without stopping it (`EDSHIM_DOCKERD_RESTART_GRACE`, from dockerd's
/// environment; 0, the default, withdraws it at once as the contract says).
///
/// dockerd stops a proxy with SIGINT; when dockerd itself exits, the kernel sends its
/// proxies SIGTERM (Pdeathsig). With `"live-restore": true` dockerd leaves its
/// containers running as it exits, and the dockerd that starts next publishes their
/// ports again with new proxies. Envoy carries the traffic, not the shim, so within
/// the grace the shim leaves its registration in place until dockerd's new shim takes
/// it over (Envoy's listener never changes: the port never goes dark), and withdraws
/// it if none comes (a crashed dockerd whose containers are gone).
struct DockerdRestartGrace {
    static let variable = "EDSHIM_DOCKERD_RESTART_GRACE"
    /// The longest grace: a day.
    static let longestSeconds: Int64 = 86_400
    /// How often the shim asks whether dockerd's new shim took its port over.
    static let lookupIntervalMilliseconds: Int64 = 1000

    /// 0: off.
    let seconds: Int64
    /// The shim's parent at start.
    let dockerd: pid_t

    /// Reads `EDSHIM_DOCKERD_RESTART_GRACE`: seconds (`120`, `120s`) or minutes (`2m`).
    static func fromEnvironment(dockerd: pid_t) throws(ShimFailure) -> DockerdRestartGrace {
        guard let text = ProcessEnvironment.value(variable) else { return DockerdRestartGrace(seconds: 0, dockerd: dockerd) }
        let scale: Int64 = text.hasSuffix("m") ? 60 : 1
        let number = text.hasSuffix("m") || text.hasSuffix("s") ? String(text.dropLast()) : text
        guard let value = Int64(number), value >= 0, value <= longestSeconds / scale else {
            throw ShimFailure("\(variable)=\(text) is not a grace edshim knows: give seconds (120, 120s) or minutes (2m), at most 24 hours; 0 withdraws a port as soon as dockerd exits")
        }
        return DockerdRestartGrace(seconds: value * scale, dockerd: dockerd)
    }

    /// Ends the shim's registration of `arguments`' port once `signal` came (nil: a
    /// signal taken elsewhere, never dockerd's exit): withdraws it, or keeps it for
    /// the next dockerd (`keepRegistered`) when the grace applies.
    func release(_ arguments: ShimArguments, after signal: TerminationSignals.Received?, client: ServerClient, signals: TerminationSignals) {
        // The moment spent seeing whether dockerd exited counts against the shim's
        // second to deregister and exit.
        let deregistered = Deadline.after(milliseconds: TCPShim.deregisterTimeoutMilliseconds)
        if let signal, applies(to: arguments, signal: signal) {
            keepRegistered(arguments.key, client: client, signals: signals)
        } else {
            TCPShim.deregister(arguments.key, client: client, deadline: deregistered)
        }
    }

    /// Whether the shim keeps `arguments`' registration now that `signal` came: it is
    /// SIGTERM, dockerd (its parent at start) exited, and the shim holds no socket of
    /// dockerd's (≥ 28 binds the port itself when it publishes it again, which Envoy
    /// must then have let go). SIGINT is dockerd stopping the proxy: never kept.
    private func applies(to arguments: ShimArguments, signal: TerminationSignals.Received) -> Bool {
        seconds > 0 && !arguments.useListenFD && signal.number == SIGTERM && Self.exited(dockerd)
    }

    /// Whether `dockerd` exited. The kernel sends SIGTERM as the first of dockerd's
    /// threads exits, while the shim is still the child of the others: they get a
    /// moment to go. If dockerd is still there after that, the SIGTERM came some
    /// other way.
    private static func exited(_ dockerd: pid_t) -> Bool {
        let deadline = Deadline.after(milliseconds: 250)
        while getppid() == dockerd {
            if deadline.hasPassed { return false }
            usleep(2000)
        }
        return true
    }

    /// Keeps `key` registered until dockerd's new shim registers it (or someone
    /// removed it), another termination signal comes, or the grace ends; withdraws it
    /// in the last two cases. The kernel sends SIGTERM each time one of the exiting
    /// dockerd's threads hands the shim on to the next: those are not another signal.
    private func keepRegistered(_ key: RegistrationKey, client: ServerClient, signals: TerminationSignals) {
        ShimLog.warning("dockerd exited without stopping this proxy: \(key) stays served through Envoy until dockerd publishes it again, for at most \(seconds) s (\(Self.variable))")
        let deadline = Deadline.after(milliseconds: seconds * 1000)
        var fds = [pollfd(fd: signals.descriptor, events: Int16(POLLIN), revents: 0)]
        var question = WireRequest.lookup(key)
        while !deadline.hasPassed {
            let wait = min(deadline.remaining, Int32(Self.lookupIntervalMilliseconds))
            if poll(&fds, 1, wait) > 0, let signal = signals.takeSignal() {
                if signal.number == SIGTERM, signal.sender == dockerd { continue }
                ShimLog.info("stopped while dockerd was away: withdrawing \(key)")
                TCPShim.deregister(key, client: client)
                return
            }
            // Interrupted by a signal, it is taken at the top of the loop.
            let response = try? client.exchange(question, deadline: .after(milliseconds: Self.lookupIntervalMilliseconds), interrupt: signals.descriptor)
            if case .failure(let error) = response, error.code == .unknownOperation {
                question = .list  // a server from before lookup
                continue
            }
            guard case .registrations(let registrations) = response else { continue }
            guard let current = registrations.first(where: { $0.key == key }) else {
                ShimLog.info("\(key) is no longer registered")
                return
            }
            if current.owner.pid != getpid() {
                ShimLog.info("dockerd published \(key) again (its proxy is pid \(current.owner.pid)): exiting")
                return
            }
        }
        ShimLog.warning("dockerd did not publish \(key) again within \(seconds) s: withdrawing it")
        TCPShim.deregister(key, client: client)
    }
}
