/// Builds the cluster of a service.
enum ClusterBuilder {
    /// How long Envoy waits for the container to accept a connection.
    static let connectTimeout = "5s"
    /// How long a connection to the container stays open with no request on it
    /// (Envoy's default: an hour). Envoy keeps them between requests, where through
    /// docker-proxy each client had its own, so a container's keep-alive timeout
    /// (gunicorn's 2 s, Node's and Apache's 5 s) could close one just as Envoy sends
    /// a request on it: an idempotent request is sent again (`ListenerBuilder.
    /// idempotentRetry`), any other gets a 503. Closing them first, Envoy never
    /// sends on a connection the container is closing. A new connection to a
    /// container on the same host costs a fraction of a millisecond.
    static let idleTimeout = "1s"
    /// Limits high enough never to be the bottleneck (Envoy's default is 1024),
    /// because docker-proxy, which edshim replaces, had none.
    static let unlimited: UInt32 = 1_000_000
    /// Every threshold at `unlimited`: also retries, which only a container closing or
    /// resetting connections causes, each once (`ListenerBuilder.idempotentRetry`); at
    /// Envoy's 3, a keep-alive timeout closing many idle connections at once under load
    /// would leave the fourth client with the 503 the retry is there to spare it.
    static let circuitBreakers = EnvoyCluster.CircuitBreakers(thresholds: [
        .init(maxConnections: unlimited, maxPendingRequests: unlimited, maxRequests: unlimited, maxRetries: unlimited),
    ])

    /// A static, round-robin cluster over the container endpoints (sorted, unique),
    /// spoken to over HTTP in the client's own protocol (for HTTP-mode ports; a TCP
    /// proxy ignores it).
    static func cluster(name: String, endpoints: [SocketEndpoint]) -> EnvoyCluster {
        var cluster = clusterDefaults(name: name, type: .static, addresses: Set(endpoints).sorted().map(EnvoyAddress.init))
        cluster.typedExtensionProtocolOptions = .init(http: Typed(.init()))
        // As docker-proxy's connection to the container has (Go's default).
        cluster.upstreamConnectionOptions = .init(tcpKeepalive: .init(keepaliveTime: ListenerBuilder.keepaliveSeconds, keepaliveInterval: ListenerBuilder.keepaliveSeconds))
        return cluster
    }

    /// How Envoy finds a cluster's endpoints.
    enum Discovery: String {
        /// The addresses as given.
        case `static` = "STATIC"
        /// A host name, resolved again as its DNS records change.
        case strictDNS = "STRICT_DNS"
    }

    /// What every cluster edshim writes shares (the containers' and the tracing
    /// collector's): round robin over one locality of `addresses`, the connect
    /// timeout, and limits that are never the bottleneck.
    static func clusterDefaults(name: String, type: Discovery, addresses: [EnvoyAddress]) -> EnvoyCluster {
        let endpoints = addresses.map { EnvoyCluster.LoadAssignment.LocalityEndpoints.LBEndpoint(endpoint: .init(address: $0)) }
        return EnvoyCluster(
            name: name,
            type: type.rawValue,
            connectTimeout: connectTimeout,
            lbPolicy: "ROUND_ROBIN",
            circuitBreakers: circuitBreakers,
            loadAssignment: .init(clusterName: name, endpoints: [.init(lbEndpoints: endpoints)])
        )
    }
}
