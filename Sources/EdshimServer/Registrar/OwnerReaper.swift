import ServiceLifecycle

/// Passes the exits `OwnerWatcher` sees to the registrar, until shutdown, each on a
/// task of its own: when many shims die at once (an OOM kill of a cgroup), their
/// withdrawals share the registrar's writes (`Coalescer`) and their waits for Envoy to
/// close the ports, instead of queueing behind one another.
struct OwnerReaper: Service {
    let owners: OwnerWatcher
    let registrar: Registrar

    func run() async {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await owner in owners.exits {
                    group.addTask { await registrar.ownerExited(owner) }
                }
            }
        } onGracefulShutdown: {
            owners.stop()
        }
    }
}
