import Logging
import ServiceLifecycle

/// Checks every second that what the server keeps on disk is still there, as
/// `rm -rf /var/lib/edshim` under a running server would leave it otherwise: the xds
/// files are written again (`XDSPublisher.restoreIfLost`), the claims on the xds
/// directory and the state file taken again, so that a second server is still
/// refused, and the state file written again (`StateStore.restoreIfLost`), so that a
/// restart finds every registration.
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
                    await publisher.restoreIfLost()
                    relock(xdsClaim.relockIfLost, what: "the xds directory", reported: &reported)
                    relock(stateClaim.relockIfLost, what: "the state file", reported: &reported)
                    await state.restoreIfLost()
                }
            }
        } catch is CancellationError {
            // The server stops: the guard's sleep was cut short, which is no failure.
        }
    }

    /// Claims again what `relockIfLost` locks, logging what happened; a claim that
    /// fails (another server took it meanwhile) is an error to look into, logged once
    /// per reason (`reported`) and tried again every second.
    private func relock(_ relockIfLost: () throws(ServerStartupError) -> Bool, what: String, reported: inout [String: String]) {
        do throws(ServerStartupError) {
            if try relockIfLost() {
                reported[what] = nil
                logger.notice("\(what) was deleted or replaced; claimed again")
            }
        } catch {
            guard reported[what] != error.description else { return }
            reported[what] = error.description
            logger.error("\(what) was deleted or replaced and cannot be claimed again: \(error.description)")
        }
    }
}
