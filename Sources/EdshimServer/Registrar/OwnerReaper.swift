import ServiceLifecycle

/// Passes the exits `OwnerWatcher` sees to the registrar, until shutdown.
struct OwnerReaper: Service {
    let owners: OwnerWatcher
    let registrar: Registrar

    func run() async {
        await withGracefulShutdownHandler {
            for await owner in owners.exits {
                await registrar.ownerExited(owner)
            }
        } onGracefulShutdown: {
            owners.stop()
        }
    }
}
