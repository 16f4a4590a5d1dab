#if canImport(Glibc)
import Glibc
#endif

/// Builds the listener for a TCP registration.
enum ListenerBuilder {
    /// One listener on the host address and port, carrying the port in the
    /// registration's mode to the service's cluster, reporting as `telemetry` says;
    /// `selectingOwnEndpoint`: the cluster has endpoints at other addresses too (the
    /// twin's container address is the container's other family), and the listener
    /// sends only to its registration's own.
    static func listener(for registration: Registration, telemetry: Telemetry = .standard, selectingOwnEndpoint: Bool = false) -> EnvoyListener {
        let serviceName = registration.serviceName
        let selection = selectingOwnEndpoint ? EndpointSelection(registration.container.ip) : nil
        let tcp = NetworkFilter(.tcp(tcpProxy(
            serviceName: serviceName,
            accessLog: AccessLog(destination: telemetry.accessLog, fields: AccessLogFields.tcp(serviceName: serviceName)),
            selection: selection
        )))
        var listener = EnvoyListener(
            name: ServiceNaming.listenerName(for: registration.key),
            address: EnvoyAddress(registration.key.host),
            enableReusePort: true,
            trafficDirection: "INBOUND",
            socketOptions: keepalive,
            filterChains: [EnvoyListener.FilterChain(filters: [tcp])]
        )
        guard registration.mode.isHTTP else { return listener }
        let http = NetworkFilter(.http(httpConnectionManager(
            serviceName: serviceName,
            operation: ServiceNaming.service(registration.metadata),
            trustedProxyHops: telemetry.trustedProxyHops,
            accessLog: AccessLog(destination: telemetry.accessLog, fields: AccessLogFields.http(serviceName: serviceName)),
            tracing: telemetry.tracing.map {
                TracingBuilder.tracing(for: registration, serviceName: serviceName, collector: $0, samplePercent: telemetry.tracingSamplePercent)
            },
            selection: selection
        )))
        guard registration.mode == .http else {
            // `http-only`: every connection is the connection manager's.
            listener.filterChains = [EnvoyListener.FilterChain(filters: [http])]
            return listener
        }
        // What the container serves in HTTP mode need not be HTTP (nginx's TLS, a
        // database published without a label): the inspector tells, and what is not
        // plain HTTP is relayed as TCP, as docker-proxy would have.
        listener.filterChains = [EnvoyListener.FilterChain(filterChainMatch: .init(applicationProtocols: httpProtocols), filters: [http])]
        listener.listenerFilters = [EnvoyListener.ListenerFilter()]
        listener.listenerFiltersTimeout = inspectorTimeout
        listener.continueOnListenerFiltersTimeout = true
        listener.defaultFilterChain = EnvoyListener.FilterChain(filters: [tcp])
        return listener
    }

    /// The upgrades that pass (Envoy refuses others 403), each then a byte stream
    /// both ways: WebSocket; `tcp`, which the Docker CLI asks of a Docker daemon for
    /// `attach` and `exec` (docker:dind publishing 2375); SPDY, kubectl's `exec` and
    /// `port-forward` to an API server or kubelet in a container.
    static let upgradeTypes = ["websocket", "tcp", "spdy/3.1"]

    /// How long the HTTP inspector waits for a client's first bytes before relaying
    /// the connection as TCP. A protocol in which the server speaks first (MySQL, SSH,
    /// SMTP) sends none: its clients wait this long for the greeting (Envoy's default,
    /// 15 s, outlasts health checks and many clients' connect timeouts). An HTTP client
    /// sends its request at once; one that waits longer (a browser's preconnected
    /// socket) is relayed as TCP, which still works, without Envoy's HTTP handling.
    static let inspectorTimeout = "2s"

    /// How long a client has to send its whole request headers once it began them:
    /// Envoy's recommendation for an edge proxy. A client that sent nothing yet is
    /// not timed by it (the inspector's 2 s relay it as TCP).
    static let requestHeadersTimeout = "10s"

    /// What the HTTP inspector names plain HTTP/1 and h2c: the connection manager's.
    static let httpProtocols = ["http/1.0", "http/1.1", "h2c"]

    /// SO_KEEPALIVE with probes after 15 s idle, every 15 s: what docker-proxy (Go's
    /// default) does, so that a client gone without a word (NAT expired, a laptop
    /// asleep) does not hold its connection, and the container's, forever.
    static let keepalive: [EnvoyListener.SocketOption] = [
        .init(level: Int32(SOL_SOCKET), name: Int32(SO_KEEPALIVE), intValue: 1),
        .init(level: Int32(IPPROTO_TCP), name: Int32(TCP_KEEPIDLE), intValue: Int64(keepaliveSeconds)),
        .init(level: Int32(IPPROTO_TCP), name: Int32(TCP_KEEPINTVL), intValue: Int64(keepaliveSeconds)),
    ]

    /// Seconds of idleness before a keepalive probe, and between probes.
    static let keepaliveSeconds: UInt32 = 15

    /// HTTP mode: auto codec (HTTP/1.0 too), one catch-all route to the cluster with no timeouts,
    /// client address in X-Forwarded-For, request ids (a client's own kept), WebSockets,
    /// `Expect: 100-continue` left to the container, spans named after
    /// the service (traced when there is a collector), a line per request in the access log.
    static func httpConnectionManager(serviceName: String, operation: String, trustedProxyHops: UInt32, accessLog: AccessLog?, tracing: Tracing?, selection: EndpointSelection? = nil) -> HTTPConnectionManager {
        typealias Manager = HTTPConnectionManager
        let route = Manager.Route(
            match: .init(prefix: "/"),
            route: .init(cluster: serviceName, timeout: "0s", retryPolicy: idempotentRetry, metadataMatch: selection),
            decorator: .init(operation: operation)
        )
        return Manager(
            codecType: "AUTO",
            httpProtocolOptions: .init(acceptHttp10: true, defaultHostForHttp10: hostName(serviceName)),
            serverHeaderTransformation: "PASS_THROUGH",
            statPrefix: serviceName,
            useRemoteAddress: true,
            xffNumTrustedHops: trustedProxyHops > 0 ? trustedProxyHops : nil,
            generateRequestId: true,
            preserveExternalRequestId: true,
            proxy100Continue: true,
            streamIdleTimeout: "0s",
            requestHeadersTimeout: requestHeadersTimeout,
            upgradeConfigs: upgradeTypes.map { .init(upgradeType: $0) },
            routeConfig: .init(
                name: serviceName,
                validateClusters: false,
                virtualHosts: [.init(name: serviceName, domains: ["*"], routes: [route])]
            ),
            httpFilters: [.init(name: "envoy.filters.http.router", typedConfig: Typed(.init()))],
            accessLog: accessLog.map { [$0] },
            tracing: tracing
        )
    }

    /// The service name as a host name, for the `Host` of an HTTP/1.0 request that
    /// came without one (HAProxy's default health check): lowercase, `_` as `-`, since
    /// frameworks that check `Host` (Django) refuse an underscore.
    static func hostName(_ serviceName: String) -> String {
        String(serviceName.lowercased().map { $0 == "_" ? "-" : $0 })
    }

    /// An idempotent request the container closed its connection on without answering
    /// goes once more, on another connection: Envoy keeps connections to the container
    /// open between requests, and a container's keep-alive timeout (Node.js: 5 s) can
    /// close one just as Envoy sends on it; the client, whose own connection is still
    /// open, would get a 503 it never got through docker-proxy. Only the methods Go's
    /// and browsers' HTTP clients resend on a dead keep-alive connection themselves, and
    /// requests that carry an `Idempotency-Key`: others may have been acted on. `reset`
    /// covers every request the container did not answer at all: a connection it
    /// refused or did not accept within the connect timeout is tried once more too.
    static let idempotentRetry = HTTPConnectionManager.Route.RetryPolicy(
        retryOn: "reset",
        numRetries: 1,
        retriableRequestHeaders: ["GET", "HEAD", "OPTIONS", "TRACE"].map { .init(name: ":method", stringMatch: .init(exact: $0)) }
            + ["idempotency-key", "x-idempotency-key"].map { .init(name: $0, presentMatch: true) }
    )

    /// TCP mode: bytes untouched, no idle timeout, a line per connection in the access log.
    static func tcpProxy(serviceName: String, accessLog: AccessLog?, selection: EndpointSelection? = nil) -> TCPProxy {
        TCPProxy(statPrefix: serviceName, cluster: serviceName, idleTimeout: "0s", accessLog: accessLog.map { [$0] }, metadataMatch: selection)
    }
}
