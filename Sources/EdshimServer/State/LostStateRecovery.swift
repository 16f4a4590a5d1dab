import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// What a server takes back at start that its state file does not have, before it
/// writes Envoy's files: the running shims of this server whose listener Envoy was
/// last given (`lds.json`). The state file may be missing, unusable, or behind the
/// xds files (a disk that refused its last writes); publishing without them would
/// take their ports from Envoy, draining their connections, until `edshim resync`
/// put them back.
///
/// A shim is taken back on the terms a registration made on its behalf is accepted
/// (`Registrar.authorizeOnBehalf`): a process running this server's edshim, in its
/// network namespace, as this server's user, publishing the port its listener
/// carries. Its labels are read from Docker again, so an unchanged container encodes
/// to the listener Envoy has, which it then keeps untouched. A shim whose listener is
/// not in `lds.json` is left to register by itself, or to resync.
enum LostStateRecovery {
    /// The registrations to add to `registry` (what the state file gave, its shims
    /// running): none when `lds.json` holds no other listener.
    static func registrations(
        besides registry: Registry,
        socketPath: String,
        xdsDirectory: String,
        metadataSource: any ContainerMetadataSource,
        defaultMode: ProxyMode
    ) async -> [Registration] {
        guard let given = XDSFiles.listenerNames(in: xdsDirectory), !given.isEmpty else { return [] }
        let serverUser = getuid()
        let registered = Set(registry.registrations.map { ServiceNaming.listenerName(for: $0.key) })
        guard !given.isSubset(of: registered) else { return [] }
        let shims = ShimProcesses.tcpShims(registeringWith: socketPath).filter { shim in
            let listener = ServiceNaming.listenerName(for: shim.arguments.key)
            return given.contains(listener) && !registered.contains(listener)
                && ShimProcesses.executableCheck(of: shim.owner.pid) == .same
                && ProcessTable.userID(of: shim.owner.pid) == serverUser
        }
        let labelled = await withTaskGroup(of: Registration.self) { group in
            for shim in shims {
                group.addTask {
                    let answer = await metadataSource.metadata(for: shim.arguments.container)
                    let metadata = PendingLabels.labels(from: answer, replacing: nil, for: shim.arguments.container)
                    return Registration(
                        key: shim.arguments.key,
                        container: shim.arguments.container,
                        owner: shim.owner,
                        metadata: metadata,
                        mode: metadata.mode ?? defaultMode
                    )
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        // Two shims of one port (a dockerd that published it again): the newer holds
        // it, as its registration would have replaced the older's. Twins are named
        // as registrations arriving in that order would be.
        var takenBack = registry
        for registration in labelled.sorted(by: { ($0.owner.startTime, $0.owner.pid) < ($1.owner.startTime, $1.owner.pid) }) {
            takenBack.register(registration)
        }
        return takenBack.registrations.filter { registry[$0.key] == nil }
    }
}
