/// Builds the listener for a TCP registration.
public enum ListenerBuilder {
    /// One listener on the host address and port, carrying the port in the
    /// registration's mode to the service's cluster, reporting as `telemetry` says.
    public static func listener(for registration: Registration, telemetry: Telemetry = .standard) -> EnvoyListener {
        let serviceName = registration.serviceName
        let filter: NetworkFilter.Config = switch registration.mode {
        case .http:
            .http(httpConnectionManager(
                serviceName: serviceName,
                operation: ServiceNaming.service(registration.metadata),
                accessLog: AccessLog(destination: telemetry.accessLog, fields: AccessLogFields.http(serviceName: serviceName)),
                tracing: telemetry.tracing.map {
                    TracingBuilder.tracing(for: registration, serviceName: serviceName, collector: $0, samplePercent: telemetry.tracingSamplePercent)
                }
            ))
        case .tcp:
            .tcp(tcpProxy(
                serviceName: serviceName,
                accessLog: AccessLog(destination: telemetry.accessLog, fields: AccessLogFields.tcp(serviceName: serviceName))
            ))
        }
        return EnvoyListener(
            name: ServiceNaming.listenerName(for: registration.key),
            address: EnvoyAddress(registration.key.host),
            enableReusePort: true,
            trafficDirection: "INBOUND",
            filterChains: [EnvoyListener.FilterChain(filters: [NetworkFilter(filter)])]
        )
    }

    /// HTTP mode: auto codec (HTTP/1.0 too), one catch-all route to the cluster with no timeouts,
    /// client address in X-Forwarded-For, request ids, WebSockets, spans named after
    /// the service (traced when there is a collector), a line per request in the access log.
    static func httpConnectionManager(serviceName: String, operation: String, accessLog: AccessLog?, tracing: Tracing?) -> HTTPConnectionManager {
        typealias Manager = HTTPConnectionManager
        let route = Manager.Route(
            match: .init(prefix: "/"),
            route: .init(cluster: serviceName, timeout: "0s"),
            decorator: .init(operation: operation)
        )
        return Manager(
            codecType: "AUTO",
            httpProtocolOptions: .init(acceptHttp10: true, defaultHostForHttp10: serviceName),
            serverHeaderTransformation: "APPEND_IF_ABSENT",
            statPrefix: serviceName,
            useRemoteAddress: true,
            generateRequestId: true,
            streamIdleTimeout: "0s",
            upgradeConfigs: [.init(upgradeType: "websocket")],
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

    /// TCP mode: bytes untouched, no idle timeout, a line per connection in the access log.
    static func tcpProxy(serviceName: String, accessLog: AccessLog?) -> TCPProxy {
        TCPProxy(statPrefix: serviceName, cluster: serviceName, idleTimeout: "0s", accessLog: accessLog.map { [$0] })
    }
}
