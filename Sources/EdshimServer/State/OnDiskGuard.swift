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
    let stateClaim: StateFileClaim
    let logger: Logger

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var refused: String?
                while true {
                    try await Task.sleep(for: .seconds(1))
                    await publisher.restoreIfLost()
                    if reclaimStateFile(refused: &refused) {
                        await state.restoreIfLost()
                    }
                }
            }
        } catch is CancellationError {
            // The server stops: the guard's sleep was cut short, which is no failure.
        }
    }

    /// Claims the state file again when its lock file went; false when it cannot
    /// (another server took it meanwhile): an error to look into, logged once per
    /// reason (`refused`) and tried again every second.
    private func reclaimStateFile(refused: inout String?) -> Bool {
        do throws(ServerStartupError) {
            if try stateClaim.relockIfLost() {
                refused = nil
                logger.notice("the state file was deleted or replaced; claimed again")
            }
            return true
        } catch {
            if refused != error.description {
                refused = error.description
                logger.error("the state file was deleted or replaced and cannot be claimed again; writing nothing into it: \(error.description)")
            }
            return false
        }
    }
}
