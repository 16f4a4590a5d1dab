/// `envoy.config.core.v3.Address` with a socket address.
public struct EnvoyAddress: Encodable, Hashable, Sendable {
    /// `envoy.config.core.v3.SocketAddress`.
    public struct SocketAddress: Encodable, Hashable, Sendable {
        /// The IP address text (or a host name, in a DNS cluster).
        public var address: String
        /// The port.
        public var portValue: UInt16
    }

    /// The socket address.
    public var socketAddress: SocketAddress

    /// The address of an endpoint. IPv6 listeners stay v6-only (`ipv4_compat` is
    /// false by default), so the `0.0.0.0` and `::` twins can bind side by side.
    public init(_ endpoint: SocketEndpoint) {
        self.init(host: endpoint.ip.description, port: endpoint.port)
    }

    /// An IP address, or a host name for a DNS cluster.
    public init(host: String, port: UInt16) {
        self.socketAddress = SocketAddress(address: host, portValue: port)
    }
}
