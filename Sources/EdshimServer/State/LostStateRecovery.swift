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
/// A shim is taken back on the main terms a registration made on its behalf is
/// accepted (`Registrar.authorizeOnBehalf`): a process running this server's edshim,
/// in its network namespace, as this server's user, publishing the port its listener
/// carries. Its labels are read from Docker again and its twin naming is read from
/// the listener, so an unchanged container encodes to the listener Envoy has, which
/// it then keeps untouched; with Docker not answering it gets the default names
/// until it does (`LabelRefresher`). A shim whose listener is
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
        guard let onDisk = XDSFiles.resources(inFile: xdsDirectory + "/" + DiscoveryDocument.listenerFileName), !onDisk.isEmpty else { return [] }
        // Each listener Envoy was given, by name, as the text it was written with.
        let given = Dictionary(onDisk.map { ($0.name, String(decoding: $0.json, as: UTF8.self)) }) { first, _ in first }
        let serverUser = getuid()
        let registered = Set(registry.registrations.map { ServiceNaming.listenerName(for: $0.key) })
        guard !Set(given.keys).isSubset(of: registered) else { return [] }
        let shims = ShimProcesses.tcpShims(registeringWith: socketPath).filter { shim in
            let listener = ServiceNaming.listenerName(for: shim.arguments.key)
            return given[listener] != nil && !registered.contains(listener) && ShimProcesses.isGenuine(shim, user: serverUser)
        }
        let labelled = await labels(of: shims, from: metadataSource, defaultMode: defaultMode)
        // Two shims of one port (a dockerd that published it again): the newer holds
        // it, as its registration would have replaced the older's.
        var chosen: [RegistrationKey: Registration] = [:]
        for registration in labelled.sorted(by: { ($0.owner.startTime, $0.owner.pid) < ($1.owner.startTime, $1.owner.pid) }) {
            chosen[registration.key] = registration
        }
        // A twin is named apart as Envoy has it (its listener routes to the cluster of
        // its separate name), not as the order of the shims' starts would decide: that
        // choice was made when the registrations arrived, and kept while their
        // containers stayed, so no listener Envoy has is renamed.
        return chosen.values.sorted { $0.key < $1.key }.map { registration in
            var named = registration
            let listener = given[ServiceNaming.listenerName(for: registration.key)] ?? ""
            named.namedApart = listener.contains("\"\(ServiceNaming.separateServiceName(for: registration))\"")
            return named
        }
    }

    /// How many Docker lookups run at once: a host with thousands of ports must not
    /// send dockerd thousands of requests together.
    static let parallelLookups = 16

    /// The registrations of `shims`, labelled from Docker (`defaultMode` where no label
    /// sets one).
    private static func labels(of shims: [ShimProcesses.Shim], from metadataSource: any ContainerMetadataSource, defaultMode: ProxyMode) async -> [Registration] {
        await withTaskGroup(of: Registration.self) { group in
            var waiting = shims.makeIterator()
            func lookUp(_ shim: ShimProcesses.Shim) {
                group.addTask {
                    let answer = await metadataSource.metadata(for: shim.arguments.container)
                    let metadata = PendingLabels.labels(from: answer, replacing: nil, for: shim.arguments.container)
                    return Registration(key: shim.arguments.key, container: shim.arguments.container, owner: shim.owner, metadata: metadata, mode: metadata.mode ?? defaultMode)
                }
            }
            for _ in 0..<parallelLookups {
                guard let shim = waiting.next() else { break }
                lookUp(shim)
            }
            var labelled: [Registration] = []
            while let registration = await group.next() {
                labelled.append(registration)
                if let shim = waiting.next() { lookUp(shim) }
            }
            return labelled
        }
    }
}
