/// Builds the listener for a TCP registration.
public enum ListenerBuilder {
    /// One listener on the host address and port, carrying the port in the
    /// registration's mode to the service's cluster.
    public static func listener(for registration: Registration) -> EnvoyListener {
        let serviceName = ServiceNaming.serviceName(for: registration)
        let filter: NetworkFilter.Config = switch registration.mode {
        case .http:
            .http(httpConnectionManager(
                serviceName: serviceName,
                operation: ServiceNaming.service(registration.metadata)
            ))
        case .tcp:
            .tcp(tcpProxy(serviceName: serviceName))
        }
        return EnvoyListener(
            name: ServiceNaming.listenerName(for: registration.key),
            address: EnvoyAddress(registration.key.host),
            enableReusePort: true,
            trafficDirection: "INBOUND",
            filterChains: [EnvoyListener.FilterChain(filters: [NetworkFilter(filter)])]
        )
    }

    /// HTTP mode: auto codec, one catch-all route to the cluster with no timeouts,
    /// client address in X-Forwarded-For, request ids, WebSockets, traced as the service.
    static func httpConnectionManager(serviceName: String, operation: String) -> HTTPConnectionManager {
        typealias Manager = HTTPConnectionManager
        let route = Manager.Route(
            match: .init(prefix: "/"),
            route: .init(cluster: serviceName, timeout: "0s"),
            decorator: .init(operation: operation)
        )
        return Manager(
            codecType: "AUTO",
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
            httpFilters: [.init(name: "envoy.filters.http.router", typedConfig: Typed(.init()))]
        )
    }

    /// TCP mode: bytes untouched, no idle timeout.
    static func tcpProxy(serviceName: String) -> TCPProxy {
        TCPProxy(statPrefix: serviceName, cluster: serviceName, idleTimeout: "0s")
    }
}
