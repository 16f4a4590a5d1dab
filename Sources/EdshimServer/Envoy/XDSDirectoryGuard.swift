import ServiceLifecycle

/// Checks every second that the xds files are still the ones the server wrote, and
/// has the publisher put them back when they are not (`XDSPublisher.restoreIfLost`).
struct XDSDirectoryGuard: Service {
    let publisher: XDSPublisher

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: .seconds(1))
                    await publisher.restoreIfLost()
                }
            }
        } catch is CancellationError {
            // The server stops: the guard's sleep was cut short, which is no failure.
        }
    }
}
