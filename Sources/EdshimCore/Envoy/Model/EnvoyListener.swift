/// `envoy.config.listener.v3.Listener`, the subset edshim uses: one filter chain
/// with one network filter.
public struct EnvoyListener: EnvoyMessage {
    public static let typeURL = "type.googleapis.com/envoy.config.listener.v3.Listener"

    /// `envoy.config.listener.v3.FilterChain`.
    public struct FilterChain: Encodable, Hashable, Sendable {
        /// The network filters.
        public var filters: [NetworkFilter]
    }

    /// The listener name, derived from the registration key only so that a change of
    /// labels updates the listener in place instead of rebinding the port.
    public var name: String
    /// The host address and port.
    public var address: EnvoyAddress
    /// True: each worker binds its own socket (SO_REUSEPORT). Also what lets Envoy bind
    /// beside the socket dockerd ≥ 28 holds until the shim reports ready.
    public var enableReusePort: Bool
    /// `INBOUND`: traffic entering the host.
    public var trafficDirection: String
    /// The one filter chain.
    public var filterChains: [FilterChain]

    /// The clusters this listener routes to, and the tracing collector's.
    public var referencedClusters: Set<String> {
        Set(filterChains.flatMap(\.filters).flatMap(\.config.referencedClusters))
    }
}

/// `envoy.config.listener.v3.Filter`: an HTTP connection manager or a TCP proxy.
public struct NetworkFilter: Encodable, Hashable, Sendable {
    /// The filter's configuration.
    public enum Config: Hashable, Sendable {
        /// `envoy.filters.network.http_connection_manager`.
        case http(HTTPConnectionManager)
        /// `envoy.filters.network.tcp_proxy`.
        case tcp(TCPProxy)

        /// The cluster the filter sends traffic to, and the one it sends traces to.
        public var referencedClusters: [String] {
            if case .http(let manager) = self, let tracing = manager.tracing { return [cluster, tracing.cluster] }
            return [cluster]
        }

        /// The cluster the filter sends traffic to.
        public var cluster: String {
            switch self {
            case .http(let manager): manager.routeConfig.virtualHosts.flatMap(\.routes).map(\.route.cluster).first ?? ""
            case .tcp(let proxy): proxy.cluster
            }
        }
    }

    /// The configuration.
    public var config: Config

    /// Creates a filter.
    public init(_ config: Config) {
        self.config = config
    }

    private enum CodingKeys: String, CodingKey {
        case name, typedConfig
    }

    /// Encodes `name` and `typed_config`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch config {
        case .http(let manager):
            try container.encode("envoy.filters.network.http_connection_manager", forKey: .name)
            try container.encode(Typed(manager), forKey: .typedConfig)
        case .tcp(let proxy):
            try container.encode("envoy.filters.network.tcp_proxy", forKey: .name)
            try container.encode(Typed(proxy), forKey: .typedConfig)
        }
    }
}
