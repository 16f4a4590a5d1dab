/// `envoy.config.cluster.v3.Cluster`, the subset edshim uses: a static cluster of
/// container endpoints.
public struct EnvoyCluster: EnvoyMessage {
    public static let typeURL = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

    /// `envoy.config.cluster.v3.CircuitBreakers`.
    public struct CircuitBreakers: Encodable, Hashable, Sendable {
        /// One threshold set.
        public struct Thresholds: Encodable, Hashable, Sendable {
            /// Concurrent upstream connections.
            public var maxConnections: UInt32
            /// Requests waiting for a connection.
            public var maxPendingRequests: UInt32
            /// Concurrent requests.
            public var maxRequests: UInt32
            /// Concurrent retries (Envoy's default: 3).
            public var maxRetries: UInt32
        }

        /// Thresholds for the default priority.
        public var thresholds: [Thresholds]
    }

    /// `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    public struct LoadAssignment: Encodable, Hashable, Sendable {
        /// `LocalityLbEndpoints`.
        public struct LocalityEndpoints: Encodable, Hashable, Sendable {
            /// `LbEndpoint`.
            public struct LBEndpoint: Encodable, Hashable, Sendable {
                /// `Endpoint`.
                public struct Endpoint: Encodable, Hashable, Sendable {
                    /// Where the container serves.
                    public var address: EnvoyAddress
                }

                /// The endpoint.
                public var endpoint: Endpoint
                /// Its container address, for a listener to ask for it; nil when
                /// every endpoint of the cluster has the same address.
                public var metadata: EndpointSelection? = nil
            }

            /// The endpoints.
            public var lbEndpoints: [LBEndpoint]
        }

        /// Same as the cluster's name.
        public var clusterName: String
        /// One locality.
        public var endpoints: [LocalityEndpoints]
    }

    /// `typed_extension_protocol_options`, the one edshim sets: how Envoy speaks HTTP
    /// to the container.
    public struct ProtocolOptions: Encodable, Hashable, Sendable {
        /// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`.
        public struct HTTP: EnvoyMessage {
            public static let typeURL = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

            /// `UseDownstreamHttpConfig`: the container is spoken to in the protocol
            /// its client spoke, as docker-proxy passed the client's bytes on: h2c
            /// (gRPC, with its trailers) as h2c, HTTP/1 as HTTP/1.1.
            public struct UseDownstream: Encodable, Hashable, Sendable {
                /// `Http1ProtocolOptions`: the request's header names as the client
                /// wrote them.
                public var httpProtocolOptions = HTTP1()
                /// `Http2ProtocolOptions`, Envoy's defaults.
                public var http2ProtocolOptions = Empty()
            }

            /// An options message with every field at Envoy's default.
            public struct Empty: Encodable, Hashable, Sendable {}

            /// `Http1ProtocolOptions` toward the container.
            public struct HTTP1: Encodable, Hashable, Sendable {
                public var headerKeyFormat = HeaderKeyFormat.preserveCase
                /// Trailers pass both ways (`HTTPConnectionManager.HTTP1Options`).
                public var enableTrailers = true
            }

            /// `config.core.v3.HttpProtocolOptions`: how long a connection to the
            /// container stays open with no request on it.
            public struct Common: Encodable, Hashable, Sendable {
                public var idleTimeout: String
            }

            /// Connections to the container close after `ClusterBuilder.idleTimeout`
            /// without a request.
            public var commonHttpProtocolOptions = Common(idleTimeout: ClusterBuilder.idleTimeout)
            /// The protocol follows the client's.
            public var useDownstreamProtocolConfig = UseDownstream()
        }

        /// Keyed by the extension's name, as Envoy looks it up.
        public var http: Typed<HTTP>

        private enum CodingKeys: String, CodingKey {
            case http = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        }
    }

    /// The cluster name: the service name.
    public var name: String
    /// `STATIC` (endpoints are IP addresses), or `STRICT_DNS` for a tracing
    /// collector named by its host name.
    public var type: String
    /// How long to wait for the container to accept.
    public var connectTimeout: String
    /// `ROUND_ROBIN` across the endpoints.
    public var lbPolicy: String
    /// A subset per container address, when the endpoints' addresses differ (the
    /// IPv4 and IPv6 addresses of one container: each listener sends to its own).
    public var lbSubsetConfig: SubsetConfig? = nil
    /// Which addresses of a host name are used (DNS clusters only).
    public var dnsLookupFamily: String? = nil
    /// Raised far above Envoy's defaults (1024), which docker-proxy never had.
    public var circuitBreakers: CircuitBreakers
    /// The container endpoints.
    public var loadAssignment: LoadAssignment
    /// HTTP toward the container, for a service's cluster; nil: Envoy's defaults
    /// (the tracing collector's).
    public var typedExtensionProtocolOptions: ProtocolOptions? = nil
    /// TCP keepalive toward the container; nil: none (the tracing collector's).
    public var upstreamConnectionOptions: ConnectionOptions? = nil

    /// `UpstreamConnectionOptions`.
    public struct ConnectionOptions: Encodable, Hashable, Sendable {
        /// `TcpKeepalive`: seconds idle before the first probe, and between probes.
        public struct Keepalive: Encodable, Hashable, Sendable {
            public var keepaliveTime: UInt32
            public var keepaliveInterval: UInt32
        }

        public var tcpKeepalive: Keepalive
    }
}
