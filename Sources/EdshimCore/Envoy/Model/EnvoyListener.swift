/// `envoy.config.listener.v3.Listener`, the subset edshim uses: a filter chain with
/// one network filter, and for HTTP a default chain that relays what is not HTTP.
public struct EnvoyListener: EnvoyMessage {
    public static let typeURL = "type.googleapis.com/envoy.config.listener.v3.Listener"

    /// `envoy.config.listener.v3.FilterChain`.
    public struct FilterChain: Encodable, Hashable, Sendable {
        /// `FilterChainMatch`: the application protocols a listener filter found.
        public struct Match: Encodable, Hashable, Sendable {
            public var applicationProtocols: [String]
        }

        /// Which connections take this chain; nil: all.
        public var filterChainMatch: Match? = nil
        /// The network filters.
        public var filters: [NetworkFilter]
    }

    /// `ListenerFilter`: the HTTP inspector.
    public struct ListenerFilter: Encodable, Hashable, Sendable {
        /// `envoy.extensions.filters.listener.http_inspector.v3.HttpInspector`.
        public struct HTTPInspector: EnvoyMessage {
            public static let typeURL = "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
        }

        public var name = "envoy.filters.listener.http_inspector"
        public var typedConfig = Typed(HTTPInspector())
    }

    /// `SocketOption`, set on the listening socket before it binds; accepted
    /// connections inherit it.
    public struct SocketOption: Encodable, Hashable, Sendable {
        public var level: Int32
        public var name: Int32
        public var intValue: Int64
        public var state = "STATE_PREBIND"
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
    /// TCP keepalive on every connection, as docker-proxy (Go) has.
    public var socketOptions: [SocketOption]
    /// The filter chain: for HTTP, matched by the protocols the inspector found.
    public var filterChains: [FilterChain]
    /// For HTTP: the HTTP inspector, which tells HTTP from anything else.
    public var listenerFilters: [ListenerFilter]? = nil
    /// For HTTP: how long the inspector waits for the client's first bytes.
    public var listenerFiltersTimeout: String? = nil
    /// For HTTP: a client that sends nothing for that long (a protocol in which the
    /// server speaks first) is relayed, not closed.
    public var continueOnListenerFiltersTimeout: Bool? = nil
    /// For HTTP: what is not HTTP (TLS, a database's protocol) is relayed as TCP.
    public var defaultFilterChain: FilterChain? = nil

    /// The clusters this listener routes to, and the tracing collector's.
    public var referencedClusters: Set<String> {
        Set((filterChains + (defaultFilterChain.map { [$0] } ?? [])).flatMap(\.filters).flatMap(\.config.referencedClusters))
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
