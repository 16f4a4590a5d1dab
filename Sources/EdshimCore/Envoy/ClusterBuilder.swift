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
    /// proxy ignores it). Endpoints at more than one address (a container's IPv4 and
    /// IPv6 addresses, behind the `0.0.0.0` and `::` twins of a dockerd run with
    /// `--ipv6`) each carry theirs, a subset apiece, so that each listener sends to its
    /// own (`ListenerBuilder`), as docker-proxy did.
    static func cluster(name: String, endpoints: [SocketEndpoint]) -> EnvoyCluster {
        let endpoints = Set(endpoints).sorted()
        var cluster = clusterDefaults(name: name, type: .static, addresses: endpoints.map(EnvoyAddress.init))
        if selectsByAddress(endpoints) {
            cluster.lbSubsetConfig = .init()
            for (index, endpoint) in endpoints.enumerated() {
                cluster.loadAssignment.endpoints[0].lbEndpoints[index].metadata = EndpointSelection(endpoint.ip)
            }
        }
        cluster.typedExtensionProtocolOptions = .init(http: Typed(.init()))
        // As docker-proxy's connection to the container has (Go's default).
        cluster.upstreamConnectionOptions = .init(tcpKeepalive: .init(keepaliveTime: ListenerBuilder.keepaliveSeconds, keepaliveInterval: ListenerBuilder.keepaliveSeconds))
        return cluster
    }

    /// Whether a cluster over `endpoints` makes a subset per address: only when they
    /// differ, so that a cluster of one address is written as it always was.
    static func selectsByAddress(_ endpoints: [SocketEndpoint]) -> Bool {
        Set(endpoints.map(\.ip)).count > 1
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
