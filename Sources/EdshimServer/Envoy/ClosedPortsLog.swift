import EdshimCore
import Logging
import ServiceLifecycle

/// Says in the server's log when registered ports have nothing listening on them:
/// Envoy died or was stopped (every port handed to it is closed until it runs again),
/// or cannot bind some of them. Without this the server, its `/healthz` and the
/// registry all look healthy while the ports are closed. A port counts once it has
/// been closed at two checks in a row (`interval` apart), so a registration Envoy is
/// about to serve, or a restart of Envoy by its unit, is not reported; each change of
/// the closed set is logged once, and the ports' return too.
struct ClosedPortsLog: Service {
    let registrar: Registrar
    let logger: Logger
    var interval: Duration = .seconds(5)
    var readTable: @Sendable () -> [ListeningSocket] = { ListenTable.read() }

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var seenClosed: Set<RegistrationKey> = []
                var reported: Set<RegistrationKey> = []
                while true {
                    try await Task.sleep(for: interval)
                    let registrations = await registrar.registrations()
                    let table = readTable()
                    let closed = Set(registrations.map(\.key).filter { key in !table.contains { $0.endpoint == key.host } })
                    // Closed now and at the check before.
                    let stillClosed = closed.intersection(seenClosed)
                    seenClosed = closed
                    guard stillClosed != reported else { continue }
                    report(stillClosed, of: registrations.count, after: reported)
                    reported = stillClosed
                }
            }
        } catch is CancellationError {
            // The server stops.
        }
    }

    private func report(_ closed: Set<RegistrationKey>, of registered: Int, after reported: Set<RegistrationKey>) {
        guard !closed.isEmpty else {
            logger.notice("every registered port is listened on again", metadata: ["registered": "\(registered)"])
            return
        }
        let ports = closed.sorted().prefix(10).map(\.host.description).joined(separator: " ")
        let all = closed.count == registered
        logger.error(
            "nothing listens on \(all ? "any" : "\(closed.count)") of the \(registered) registered ports: \(all ? "Envoy does not run" : "Envoy cannot bind them, or does not run") (is envoy-edshim running? its log says why it does not listen); they are closed until it does",
            metadata: ["closed": "\(ports)\(closed.count > 10 ? " …" : "")"]
        )
    }
}
