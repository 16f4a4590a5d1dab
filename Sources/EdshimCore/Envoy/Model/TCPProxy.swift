/// `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`.
public struct TCPProxy: EnvoyMessage {
    public static let typeURL = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

    /// Stats under `tcp.<stat_prefix>.`: the service name.
    public var statPrefix: String
    /// The service's cluster.
    public var cluster: String
    /// `0s`: no idle timeout, as with docker-proxy (Envoy's default would close
    /// connections idle for an hour).
    public var idleTimeout: String
    /// One line per connection; nil: none.
    public var accessLog: [AccessLog]?
    /// The endpoint of the registration's own container address, when the cluster
    /// has another too.
    public var metadataMatch: EndpointSelection? = nil
}
