import Logging
import ServiceLifecycle

/// Checks every second that what the server keeps on disk is still there, as
/// `rm -rf /var/lib/edshim` under a running server would leave it otherwise: the
/// claims on the xds directory and the state file are taken again, so that a second
/// server is still refused, and then (unless another server claimed them meanwhile)
/// the xds files written again (`XDSPublisher.restoreIfLost`), and the state file
/// (`StateStore.restoreIfLost`), so that a restart finds every registration.
struct OnDiskGuard: Service {
    let publisher: XDSPublisher
    let state: StateStore
    let xdsClaim: XDSDirectoryClaim
    let stateClaim: StateFileClaim
    let logger: Logger

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var reported: [String: String] = [:]
                while true {
                    try await Task.sleep(for: .seconds(1))
                    await publisher.restoreIfLost(claim: xdsClaim.relockIfLost)
                    if relock(stateClaim.relockIfLost, what: "the state file", reported: &reported) {
                        await state.restoreIfLost()
                    }
                }
            }
        } catch is CancellationError {
            // The server stops: the guard's sleep was cut short, which is no failure.
        }
    }

    /// Claims again what `relockIfLost` locks, logging what happened; false when the
    /// claim fails (another server took it meanwhile): an error to look into, logged
    /// once per reason (`reported`) and tried again every second.
    private func relock(_ relockIfLost: () throws(ServerStartupError) -> Bool, what: String, reported: inout [String: String]) -> Bool {
        do throws(ServerStartupError) {
            if try relockIfLost() {
                reported[what] = nil
                logger.notice("\(what) was deleted or replaced; claimed again")
            }
            return true
        } catch {
            if reported[what] != error.description {
                reported[what] = error.description
                logger.error("\(what) was deleted or replaced and cannot be claimed again; writing nothing into it: \(error.description)")
            }
            return false
        }
    }
}
