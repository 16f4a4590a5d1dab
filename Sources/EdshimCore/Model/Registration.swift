/// One published port: the host side dockerd asked for, the container behind it,
/// the shim that owns it and what the labels say about the container.
public struct Registration: Hashable, Sendable {
    /// Protocol, host address and host port.
    public var key: RegistrationKey
    /// Where the container serves.
    public var container: SocketEndpoint
    /// The shim process that registered it.
    public var owner: Owner
    /// Labels read from Docker.
    public var metadata: ContainerMetadata
    /// The mode Envoy uses: the label's, else the server default.
    public var mode: ProxyMode

    /// Creates a registration.
    public init(key: RegistrationKey, container: SocketEndpoint, owner: Owner, metadata: ContainerMetadata = .unknown, mode: ProxyMode) {
        self.key = key
        self.container = container
        self.owner = owner
        self.metadata = metadata
        self.mode = mode
    }
}
