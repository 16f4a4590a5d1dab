import EdshimCore
import ServiceLifecycle

/// Asks Docker again about the labels of registrations made while it did not answer,
/// four times a second until it does (a ping: cheap while dockerd is down, and the
/// moment it answers, lookups resume for the ports published next). At boot dockerd restores its containers, and starts
/// their ports' shims, before it opens its API: without this, those ports would stay
/// named `unknown-<port>` until their containers restart. Sleeps while no
/// registration waits.
struct LabelRefresher: Service {
    let registrar: Registrar
    let source: any ContainerMetadataSource
    var interval: Duration = .milliseconds(250)

    func run() async {
        try? await cancelWhenGracefulShutdown {
            for await _ in registrar.labelsPendingNotices {
                while await registrar.hasPendingLabels {
                    try await Task.sleep(for: interval)
                    if await source.isReachable() { await registrar.refreshPendingLabels() }
                }
            }
        }
    }
}
