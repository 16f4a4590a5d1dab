/// `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
/// the subset edshim uses.
public struct HTTPConnectionManager: EnvoyMessage {
    public static let typeURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

    /// `envoy.config.route.v3.RouteConfiguration`, inline.
    public struct RouteConfiguration: Encodable, Hashable, Sendable {
        /// The route table name.
        public var name: String
        /// False: a listener may arrive a moment before its cluster (separate files),
        /// and Envoy must never reject it for that.
        public var validateClusters: Bool
        /// One catch-all virtual host.
        public var virtualHosts: [VirtualHost]
    }

    /// `envoy.config.route.v3.VirtualHost`.
    public struct VirtualHost: Encodable, Hashable, Sendable {
        /// The virtual host name.
        public var name: String
        /// `*`.
        public var domains: [String]
        /// One route.
        public var routes: [Route]
    }

    /// `envoy.config.route.v3.Route`.
    public struct Route: Encodable, Hashable, Sendable {
        /// `RouteMatch`.
        public struct Match: Encodable, Hashable, Sendable {
            /// `/`.
            public var prefix: String
        }

        /// `RouteAction`.
        public struct Action: Encodable, Hashable, Sendable {
            /// The service's cluster.
            public var cluster: String
            /// `0s`: no route timeout, so streams and long polls work.
            public var timeout: String
            /// When a request is sent again.
            public var retryPolicy: RetryPolicy
            /// The endpoint of the registration's own container address, when the
            /// cluster has another too.
            public var metadataMatch: EndpointSelection? = nil
        }

        /// `RetryPolicy`.
        public struct RetryPolicy: Encodable, Hashable, Sendable {
            /// `reset`: the container closed or reset the connection without an answer.
            public var retryOn: String
            /// Once.
            public var numRetries: UInt32
            /// Only requests that match one of these (idempotent ones) are sent again.
            public var retriableRequestHeaders: [HeaderMatcher]
        }

        /// `HeaderMatcher`: a header present, or a header equal to a value.
        public struct HeaderMatcher: Encodable, Hashable, Sendable {
            /// `StringMatcher`, exact.
            public struct Exact: Encodable, Hashable, Sendable {
                public var exact: String
            }

            /// The header (`:method` for the method).
            public var name: String
            /// The value it must have; nil with `presentMatch`.
            public var stringMatch: Exact?
            /// True: present with any value; nil with `stringMatch`.
            public var presentMatch: Bool?
        }

        /// `Decorator`.
        public struct Decorator: Encodable, Hashable, Sendable {
            /// The span name in traces: the service.
            public var operation: String
            /// False: the name stays in the trace; Envoy would otherwise send it to
            /// every client, and to the container, as `x-envoy-decorator-operation`.
            public var propagate = false
        }

        /// Matches every path.
        public var match: Match
        /// Sends to the cluster.
        public var route: Action
        /// Names the span.
        public var decorator: Decorator
    }

    /// `HttpFilter`: only the router.
    public struct HTTPFilter: Encodable, Hashable, Sendable {
        /// `envoy.extensions.filters.http.router.v3.Router`.
        public struct Router: EnvoyMessage {
            public static let typeURL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        }

        /// `envoy.filters.http.router`.
        public var name: String
        /// The router's (empty) configuration.
        public var typedConfig: Typed<Router>
    }

    /// `UpgradeConfig`.
    public struct UpgradeConfig: Encodable, Hashable, Sendable {
        /// `websocket`, `tcp`, `spdy/3.1`.
        public var upgradeType: String
    }

    /// `Http1ProtocolOptions`.
    public struct HTTP1Options: Encodable, Hashable, Sendable {
        /// True: HTTP/1.0 requests pass (Envoy answers them 426 by default), as
        /// through docker-proxy: nginx's `proxy_pass`, `ab` and `curl -0` send them.
        public var acceptHttp10: Bool
        /// The `Host` an HTTP/1.0 request without one is given (Envoy refuses it
        /// 400 otherwise): the service name as a host name (`ListenerBuilder.hostName`).
        public var defaultHostForHttp10: String
        /// The response's header names, and its reason phrase, as the container
        /// wrote them.
        public var headerKeyFormat = HeaderKeyFormat.preserveCase
        /// True: a chunked request's trailers reach the container, and the
        /// response's the client, as through docker-proxy (Envoy drops them by default).
        public var enableTrailers = true

        private enum CodingKeys: String, CodingKey {
            // The proto's names: snake case would write `accept_http10`.
            case acceptHttp10 = "accept_http_10"
            case defaultHostForHttp10 = "default_host_for_http_10"
            case headerKeyFormat, enableTrailers
        }
    }

    /// `AUTO`: HTTP/1.1 and h2c.
    public var codecType: String
    /// HTTP/1 as clients of docker-proxy spoke it.
    public var httpProtocolOptions: HTTP1Options
    /// `PASS_THROUGH`: the container's own `Server` header passes, and none is added
    /// where it sends none, as through docker-proxy (Envoy's default overwrites it with
    /// `envoy`).
    public var serverHeaderTransformation: String
    /// Stats under `http.<stat_prefix>.`: the service name.
    public var statPrefix: String
    /// True: Envoy is the edge; it appends the client's address to X-Forwarded-For.
    public var useRemoteAddress: Bool
    /// Proxies in front trusted (`edshim server --trusted-proxy-hops`); nil: none, and
    /// Envoy sets `X-Forwarded-Proto` from the connection itself.
    public var xffNumTrustedHops: UInt32?
    /// True: every request gets an `x-request-id`.
    public var generateRequestId: Bool
    /// True: a client's own `x-request-id` passes (a gateway's id stays the same
    /// across services); one is made only for a request without.
    public var preserveExternalRequestId: Bool
    /// True: `Expect: 100-continue` goes to the container, which may refuse a large
    /// upload before its body is sent (Envoy would answer 100 itself).
    public var proxy100Continue: Bool
    /// `0s`: a quiet stream (long poll, server-sent events) is never cut.
    public var streamIdleTimeout: String
    /// How long a client has to finish its request headers once it began them
    /// (Envoy then answers 408): Envoy holds them until they are whole, so the
    /// container's own header timeout (nginx's 60 s) no longer applies, and a client
    /// that never finishes them (slowloris) would hold its connection forever.
    public var requestHeadersTimeout: String
    /// The upgrades that pass (`ListenerBuilder.upgradeTypes`).
    public var upgradeConfigs: [UpgradeConfig]
    /// The inline route table.
    public var routeConfig: RouteConfiguration
    /// The router.
    public var httpFilters: [HTTPFilter]
    /// One line per request; nil: none.
    public var accessLog: [AccessLog]?
    /// Every request traced; nil: none.
    public var tracing: Tracing?

    private enum CodingKeys: String, CodingKey {
        case codecType, httpProtocolOptions, serverHeaderTransformation, statPrefix, useRemoteAddress, xffNumTrustedHops
        case generateRequestId, preserveExternalRequestId, streamIdleTimeout, requestHeadersTimeout, upgradeConfigs
        case routeConfig, httpFilters, accessLog, tracing
        // The proto's name: snake case would write `proxy100_continue`.
        case proxy100Continue = "proxy_100_continue"
    }
}
