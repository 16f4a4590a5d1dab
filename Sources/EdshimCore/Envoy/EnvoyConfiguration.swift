/// The Envoy resources for one registry snapshot: listeners and clusters, each
/// sorted by name, so that equal registries give equal configurations.
public struct EnvoyConfiguration: Hashable, Sendable {
    /// The listeners, by name.
    public private(set) var listeners: [EnvoyListener]
    /// The clusters, by name.
    public private(set) var clusters: [EnvoyCluster]

    /// Creates a configuration; the resources are put in name order.
    public init(listeners: [EnvoyListener], clusters: [EnvoyCluster]) {
        self.listeners = listeners.sorted { $0.name < $1.name }
        self.clusters = clusters.sorted { $0.name < $1.name }
    }

    /// Nothing: what Envoy gets before the first registration.
    public static let empty = EnvoyConfiguration(listeners: [], clusters: [])

    /// The configuration for `registrations`: a listener per TCP registration, a
    /// cluster per service name over the container endpoints of all registrations
    /// that share it (the `0.0.0.0` and `::` twins of one container; each listener sends
    /// to its own container address when they differ), every listener reporting as
    /// `telemetry` says, with the tracing collector's cluster when there is one. UDP
    /// registrations are not Envoy's.
    public init(registrations: [Registration], telemetry: Telemetry = .standard) {
        let tcp = registrations.filter { $0.key.proto == .tcp }
        var endpointsByCluster: [String: [SocketEndpoint]] = [:]
        for registration in tcp {
            endpointsByCluster[registration.serviceName, default: []].append(registration.container)
        }
        self.init(
            listeners: tcp.map { registration in
                let selecting = ClusterBuilder.selectsByAddress(endpointsByCluster[registration.serviceName] ?? [])
                return ListenerBuilder.listener(for: registration, telemetry: telemetry, selectingOwnEndpoint: selecting)
            },
            clusters: endpointsByCluster.map { ClusterBuilder.cluster(name: $0.key, endpoints: $0.value) }
                + (telemetry.tracing.map { [TracingBuilder.cluster(for: $0)] } ?? [])
        )
    }

    /// Clusters a listener routes to that the configuration lacks. Empty when the
    /// configuration is consistent, the only kind edshim ever publishes.
    public var missingClusters: Set<String> {
        let known = Set(clusters.map(\.name))
        return Set(listeners.flatMap(\.referencedClusters)).subtracting(known)
    }

    /// The steps that take Envoy from `old` to `new`, each a consistent configuration
    /// that differs from the one before in one resource type only: new and changed
    /// clusters first (keeping the old ones), then the listeners, then the clusters
    /// no listener uses any more.
    public static func steps(from old: EnvoyConfiguration, to new: EnvoyConfiguration) -> [EnvoyConfiguration] {
        guard old != new else { return [] }
        var steps: [EnvoyConfiguration] = []
        var current = old
        let newNames = Set(new.clusters.map(\.name))
        let oldClusters = Set(old.clusters)
        if new.clusters.contains(where: { !oldClusters.contains($0) }) {
            let kept = old.clusters.filter { !newNames.contains($0.name) }
            current = EnvoyConfiguration(listeners: current.listeners, clusters: new.clusters + kept)
            steps.append(current)
        }
        if current.listeners != new.listeners {
            current = EnvoyConfiguration(listeners: new.listeners, clusters: current.clusters)
            steps.append(current)
        }
        if current.clusters != new.clusters {
            steps.append(new)
        }
        return steps
    }
}
