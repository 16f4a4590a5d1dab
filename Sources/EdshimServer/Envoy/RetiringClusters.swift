import EdshimCore

/// Clusters no listener uses any more, kept a while before they leave Envoy.
///
/// When a listener changes (a port renamed from its container's labels, twins named
/// apart), Envoy moves new connections to the new filter chain and drains the old
/// one's for its drain time (`--drain-time-s`, 600 s by default). Requests on those
/// connections still route to the cluster the old chain names: removed at once, they
/// would get 503 (no cluster) from a container that is still there.
///
/// Only a listener that is still there keeps a cluster: a port deregistered took its
/// container away, and a cluster kept for it would send its draining connections'
/// requests to whatever container gets that address next.
struct RetiringClusters {
    /// How long a cluster stays after the last listener using it changed or went.
    let retention: Duration
    /// Each kept cluster, until when, and the listeners that used it.
    private var kept: [String: (cluster: EnvoyCluster, until: ContinuousClock.Instant, listeners: Set<String>)] = [:]

    init(retention: Duration) {
        self.retention = retention
    }

    /// `target` with the clusters still retiring: those `published` has that `target`
    /// lacks start retiring `now`, when a listener that used them is in `target`
    /// still; one `target` has again, whose time is up, or whose listeners are all
    /// gone, goes.
    mutating func keep(in target: EnvoyConfiguration, after published: EnvoyConfiguration, now: ContinuousClock.Instant) -> EnvoyConfiguration {
        guard retention > .zero else { return target }
        let wanted = Set(target.clusters.map(\.name))
        let listening = Set(target.listeners.map(\.name))
        for cluster in published.clusters where !wanted.contains(cluster.name) && kept[cluster.name] == nil {
            let users = Set(published.listeners.filter { $0.referencedClusters.contains(cluster.name) }.map(\.name))
            kept[cluster.name] = (cluster, now + retention, users)
        }
        kept = kept.filter { !wanted.contains($0.key) && $0.value.until > now && !$0.value.listeners.isDisjoint(with: listening) }
        guard !kept.isEmpty else { return target }
        return EnvoyConfiguration(listeners: target.listeners, clusters: target.clusters + kept.values.map(\.cluster))
    }

    /// When the next retiring cluster's time is up; nil when none is retiring.
    var nextExpiry: ContinuousClock.Instant? {
        kept.values.map(\.until).min()
    }
}
