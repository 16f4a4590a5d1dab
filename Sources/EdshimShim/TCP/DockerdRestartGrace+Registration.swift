import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// A TCP shim through a dockerd restart: its registration stays with Envoy.
extension DockerdRestartGrace {
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
            guard case .registrations(let registrations, _) = response else { continue }
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
