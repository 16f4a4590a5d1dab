import EdshimCore
import Logging
import ServiceLifecycle

/// Says in the server's log when published ports are closed while the server, its
/// `/healthz` and its registry all look healthy:
/// - registered ports nothing listens on: Envoy died or was stopped (every port
///   handed to it is closed until it runs again), or cannot bind some of them. A
///   port counts once it was closed at two checks in a row (`interval` apart), so a
///   registration Envoy is about to serve, or Envoy restarted by its unit, is not
///   reported; each change of the closed set is logged once, and the ports' return;
/// - once, two checks after the start: running shims whose ports the server does not
///   have and which do not serve them themselves (the state file was missing or
///   unreadable, and `edshim resync` did not run).
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
                var checks = 0
                while true {
                    try await Task.sleep(for: interval)
                    checks += 1
                    let registrations = await registrar.registrations()
                    let table = ListenTable.read()
                    if checks == 2 { reportUnregistered(registered: Set(registrations.map(\.key)), listening: table) }
                    let closed = Set(registrations.map(\.key).filter { key in !table.contains { $0.endpoint == key.host } })
                    // Closed now and at the check before.
                    let stillClosed = closed.intersection(seenClosed)
                    seenClosed = closed
                    guard stillClosed != reported else { continue }
                    reportClosed(stillClosed, of: registrations.count)
                    reported = stillClosed
                }
            }
        } catch is CancellationError {
            // The server stops.
        }
    }

    private func reportClosed(_ closed: Set<RegistrationKey>, of registered: Int) {
        guard !closed.isEmpty else {
            logger.notice("every registered port is listened on again", metadata: ["registered": "\(registered)"])
            return
        }
        let all = closed.count == registered
        logger.error(
            "nothing listens on \(all ? "any" : "\(closed.count)") of the \(registered) registered ports: \(all ? "Envoy does not run" : "Envoy cannot bind them, or does not run") (is envoy-edshim running? its log says why it does not listen); they are closed until it does",
            metadata: ["closed": "\(Self.list(closed))"]
        )
    }

    /// The TCP shims of this server whose port is not registered and which do not
    /// serve it themselves: closed until `edshim resync` registers them again.
    private func reportUnregistered(registered: Set<RegistrationKey>, listening: [ListeningSocket]) {
        let unserved = ShimProcesses.all().filter { shim in
            shim.arguments.proto == .tcp && !registered.contains(shim.arguments.key) && shim.registers(with: socketPath)
                && ShimProcesses.servesItself(shim, listening: listening) == false
        }
        guard !unserved.isEmpty else { return }
        logger.error(
            "\(unserved.count) running shims' ports are not registered and nothing serves them (the state file did not have them: missing, unreadable, or lost): run edshim resync (the contrib units run it after each start)",
            metadata: ["closed": "\(Self.list(Set(unserved.map(\.arguments.key))))"]
        )
    }

    /// Up to ten ports, in order.
    private static func list(_ keys: Set<RegistrationKey>) -> String {
        keys.sorted().prefix(10).map(\.host.description).joined(separator: " ") + (keys.count > 10 ? " …" : "")
    }
}
