import Logging
import ServiceLifecycle

/// Checks every second that what the server keeps on disk is still there, as
/// `rm -rf /var/lib/edshim` under a running server would leave it otherwise: the
/// xds directory (`XDSPublisher.restoreIfLost`) and the state file
/// (`StateStore.restoreIfLost`) are each claimed again, so that a second server is
/// still refused, and then (unless another server claimed them meanwhile) written
/// again, so that Envoy and a restart find every registration.
struct OnDiskGuard: Service {
    let publisher: XDSPublisher
    let state: StateStore

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: .seconds(1))
                    await publisher.restoreIfLost()
                    await state.restoreIfLost()
                }
            }
        } catch is CancellationError {
            // The server stops: the guard's sleep was cut short, which is no failure.
        }
    }
}
