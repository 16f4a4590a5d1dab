import EdshimCore

/// Clusters no listener uses any more, kept a while before they leave Envoy.
///
/// When a listener changes (a port renamed from its container's labels, twins named
/// apart), Envoy moves new connections to the new filter chain and drains the old
/// one's for its drain time (`--drain-time-s`, 600 s by default). Requests on those
/// connections still route to the cluster the old chain names: removed at once, they
/// would get 503 (no cluster) from a container that is still there.
struct RetiringClusters {
    /// How long a cluster stays after the last listener using it changed or went.
    let retention: Duration
    private var kept: [String: (cluster: EnvoyCluster, until: ContinuousClock.Instant)] = [:]

    init(retention: Duration) {
        self.retention = retention
    }

    /// `target` with the clusters still retiring: those `published` has that `target`
    /// lacks start retiring `now`; one `target` has again, or whose time is up, goes.
    mutating func keep(in target: EnvoyConfiguration, after published: EnvoyConfiguration, now: ContinuousClock.Instant) -> EnvoyConfiguration {
        guard retention > .zero else { return target }
        let wanted = Set(target.clusters.map(\.name))
        for cluster in published.clusters where !wanted.contains(cluster.name) && kept[cluster.name] == nil {
            kept[cluster.name] = (cluster, now + retention)
        }
        kept = kept.filter { !wanted.contains($0.key) && $0.value.until > now }
        guard !kept.isEmpty else { return target }
        return EnvoyConfiguration(listeners: target.listeners, clusters: target.clusters + kept.values.map(\.cluster))
    }

    /// When the next retiring cluster's time is up; nil when none is retiring.
    var nextExpiry: ContinuousClock.Instant? {
        kept.values.map(\.until).min()
    }
}
