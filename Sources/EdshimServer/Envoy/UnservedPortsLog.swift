import EdshimCore
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// Says in the server's log when published ports are closed while the server, its
/// `/healthz` and its registry all look healthy:
/// - registered ports nothing listens on: Envoy died or was stopped (every port
///   handed to it is closed until it runs again), refused its configuration, or
///   cannot bind some of them. A port counts once it was closed at two checks in a
///   row (`interval` apart), so a registration Envoy is about to serve, or Envoy
///   restarted by its unit, is not reported. Ports newly closed are logged as an
///   error; fewer closed, or none, as a notice;
/// - registered ports with a connection established and not accepted at two checks
///   in a row (the same connection, by its socket cookie: a busy port's accept queue
///   is seldom empty, but no connection stays in it for seconds while Envoy accepts):
///   Envoy listens but does not accept (stopped, hung, or far behind), so clients
///   connect and get no answer. Logged as an error when ports are newly found so, as a
///   notice once none is;
/// - registered ports closed at two checks in a row that nothing keeps from binding
///   any more, while Envoy has read the last file written: Envoy could not bind them
///   when it read `lds.json` (another program held the port then: the update was
///   rejected) and tries only when it reads the file again. It is written again as
///   it is (`XDSPublisher.offerListenersAgain`), and again after 2, 4, 8 … checks
///   (at most 64 apart) while such a port stays closed;
/// - registered ports another program listens on, at their very address, at two
///   checks in a row (`PortsHeldByOthers`): it took the port while Envoy restarted,
///   and the port's clients reach it instead of the container. Logged as an error when
///   ports are newly found so, as a notice once none is;
/// - once, from the second check on and when `edshim resync` is not under way:
///   shims started before the server whose ports it does not have, which nothing
///   listens on (neither the state file nor `lds.json` had them, and resync did not
///   run).
struct UnservedPortsLog: Service {
    let registrar: Registrar
    /// The socket the server's shims register with.
    let socketPath: String
    let logger: Logger
    var interval: Duration = .seconds(5)

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var seenClosed: Set<RegistrationKey> = []
                var reported: Set<RegistrationKey> = []
                var seenUnaccepted: Set<UInt64> = []
                var reportedStalled: Set<RegistrationKey> = []
                var others = PortsHeldByOthers()
                var seenHeld: Set<RegistrationKey> = []
                var reportedHeld: Set<RegistrationKey> = []
                var checks = 0
                var offers = OfferSchedule()
                var unregisteredChecked = false
                var unreadable: ListenTable.Failure?
                while true {
                    try await Task.sleep(for: interval)
                    // Cannot tell is not nothing listens: the checks wait until it can.
                    let table: [ListeningSocket]
                    switch ListenTable.readOrFailure() {
                    case .success(let sockets):
                        table = sockets
                        if unreadable != nil { logger.notice("the listening sockets can be read again; the checks of registered ports go on") }
                        unreadable = nil
                    case .failure(let failure):
                        if unreadable != failure { reportUnreadable(failure) }
                        unreadable = failure
                        continue
                    }
                    checks += 1
                    let registrations = await registrar.registrations()
                    // One set of the listening addresses: a host with thousands of ports has
                    // an Envoy socket per worker on each.
                    let listening = Set(table.map(\.endpoint))
                    let queued = UnacceptedConnections.queued(registrations, listening: table)
                    let unaccepted = queued.isEmpty ? [] : ListenTable.unacceptedConnections()
                    let stalled = UnacceptedConnections.stalled(queued, connections: unaccepted, earlier: seenUnaccepted)
                    seenUnaccepted = Set(unaccepted.map(\.cookie))
                    if stalled != reportedStalled {
                        reportStalled(stalled, after: reportedStalled)
                        reportedStalled = stalled
                    }
                    let held = others.update(registrations, listening: table)
                    let stillHeld = Set(held.keys).intersection(seenHeld)
                    seenHeld = Set(held.keys)
                    if stillHeld != reportedHeld {
                        reportHeld(held.filter { stillHeld.contains($0.key) }, after: reportedHeld)
                        reportedHeld = stillHeld
                    }
                    if checks >= 2, !unregisteredChecked, await !registrar.resyncing {
                        unregisteredChecked = true
                        await reportUnregistered(listening: listening)
                    }
                    let closed = Set(registrations.map(\.key).filter { !listening.contains($0.host) })
                    // Closed now and at the check before.
                    let stillClosed = closed.intersection(seenClosed)
                    seenClosed = closed
                    if stillClosed != reported {
                        reportClosed(stillClosed, of: registrations.count, after: reported)
                        reported = stillClosed
                    }
                    await offerAgain(stillClosed, listening: table, schedule: &offers, check: checks)
                }
            }
        } catch is CancellationError {
            // The server stops.
        }
    }

    private func reportClosed(_ closed: Set<RegistrationKey>, of registered: Int, after reported: Set<RegistrationKey>) {
        guard closed.subtracting(reported).isEmpty else {
            let all = closed.count == registered
            logger.error(
                "nothing listens on \(all ? "any" : "\(closed.count)") of the \(registered) registered ports: \(all ? "Envoy does not run, or refused its configuration" : "Envoy cannot bind them, or does not run") (is envoy-edshim running? its log says why it does not listen); they are closed until it does",
                metadata: ["closed": "\(Self.list(closed))"]
            )
            return
        }
        if closed.isEmpty {
            logger.notice("no registered port is closed any more", metadata: ["registered": "\(registered)"])
        } else {
            logger.notice("fewer registered ports are closed: \(closed.count) of \(registered) still are", metadata: ["closed": "\(Self.list(closed))"])
        }
    }

    private func reportUnreadable(_ failure: ListenTable.Failure) {
        let advice = failure.code == EMFILE || failure.code == ENFILE
            ? "the server is out of file descriptors (its open-files limit: LimitNOFILE in its unit; its client connections: ss -xp)"
            : "see the error"
        logger.error("cannot read which ports listen, so whether Envoy serves the registered ports is not checked until it can: \(advice)", metadata: ["error": "\(failure)"])
    }

    private func reportStalled(_ stalled: Set<RegistrationKey>, after reported: Set<RegistrationKey>) {
        if !stalled.subtracting(reported).isEmpty {
            logger.error(
                "connections wait unaccepted on \(stalled.count) registered \(stalled.count == 1 ? "port" : "ports") at two checks \(interval.components.seconds) s apart: Envoy listens but does not accept them (stopped, hung, or far behind: see its log and admin /stats, and whether its process runs); their clients connect and get no answer",
                metadata: ["ports": "\(Self.list(stalled))"]
            )
        } else if stalled.isEmpty {
            logger.notice("Envoy accepts connections again on every registered port")
        }
    }

    private func reportHeld(_ held: [RegistrationKey: [PortHolders.Holder]], after reported: Set<RegistrationKey>) {
        let keys = Set(held.keys)
        if !keys.subtracting(reported).isEmpty {
            let programs = Set(held.values.flatMap { $0.map(\.description) }).sorted()
            logger.error(
                "another program listens on \(keys.count) registered \(keys.count == 1 ? "port" : "ports"), at the very address Envoy should: it took \(keys.count == 1 ? "it" : "them") while Envoy did not hold \(keys.count == 1 ? "it" : "them") (restarting), and \(keys.count == 1 ? "its" : "their") clients reach that program, not the container; stop it, and the server offers the port to Envoy again",
                metadata: ["ports": "\(Self.list(keys))", "programs": "\(programs.prefix(10).joined(separator: ", "))"]
            )
        } else if keys.isEmpty {
            logger.notice("no other program listens on a registered port any more")
        }
    }

    /// When each closed port that can be bound is offered to Envoy again: at the
    /// first check that finds it so, then 2, 4, 8 … checks later, at most 64 apart.
    struct OfferSchedule {
        private var next: [RegistrationKey: (check: Int, gap: Int)] = [:]

        /// Of `closed`, the ports due at `check`; forgets the others, and schedules
        /// the next offer of those due.
        mutating func due(_ closed: Set<RegistrationKey>, at check: Int) -> Set<RegistrationKey> {
            next = next.filter { closed.contains($0.key) }
            let due = closed.filter { next[$0].map { $0.check <= check } ?? true }
            for key in due {
                let gap = next[key].map { min($0.gap * 2, 64) } ?? 2
                next[key] = (check + gap, gap)
            }
            return due
        }
    }

    /// Writes `lds.json` again for the ports of `closed` that nothing keeps from
    /// binding, once Envoy has read the file written last (it runs, and failed
    /// them); logged.
    private func offerAgain(_ closed: Set<RegistrationKey>, listening table: [ListeningSocket], schedule: inout OfferSchedule, check: Int) async {
        let bindable = closed.filter { key in
            !table.contains { $0.keepsFromBinding(key.host) } && HostAddressCheck.portRefusal(key.host) == nil
        }
        let due = schedule.due(bindable, at: check)
        guard !due.isEmpty, await registrar.publisher.envoyLeftUnreadFor() == nil, await registrar.publisher.envoyHasReadAny() else { return }
        logger.notice(
            "Envoy does not listen on \(due.count) registered ports that nothing else holds now: lds.json written again as it is (an Envoy that could not bind them when it read the file tries again only when it reads it again; one that does not run reads it when it starts)",
            metadata: ["ports": "\(Self.list(due))"]
        )
        await registrar.publisher.offerListenersAgain()
    }

    /// The TCP shims of this server, started before it, whose port is not registered
    /// nor being registered and which nothing listens on (their own socket, or an
    /// Envoy still following a deleted xds directory, would): closed until `edshim
    /// resync` registers them again. The shims are read first: one started since
    /// registers itself with this server, and is not counted.
    private func reportUnregistered(listening: Set<SocketEndpoint>) async {
        let serverStarted = ProcessTable.startTime(of: getpid()) ?? 0
        // Genuine ones only: any user can start a program that calls itself a shim.
        let shims = ShimProcesses.tcpShims(registeringWith: socketPath).filter { $0.owner.startTime < serverStarted && ShimProcesses.isGenuine($0, user: getuid()) }
        let registered = Set(await registrar.registrations().map(\.key)).union(await registrar.registering.map(\.key))
        let unserved = shims.filter { shim in
            !registered.contains(shim.arguments.key) && !listening.contains(shim.arguments.host)
        }
        guard !unserved.isEmpty else { return }
        logger.error(
            "\(unserved.count) running shims' ports are not registered and nothing serves them (neither the state file nor lds.json had them: both lost, or unreadable): run \(EdshimDefaults.resyncCommand(socketPath: socketPath)) (the contrib units run it after each start)",
            metadata: ["closed": "\(Self.list(Set(unserved.map(\.arguments.key))))"]
        )
    }

    /// Up to ten ports, in order.
    private static func list(_ keys: Set<RegistrationKey>) -> String {
        keys.sorted().prefix(10).map(\.host.description).joined(separator: " ") + (keys.count > 10 ? " …" : "")
    }
}
