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
    /// Whether its service name carries its container's short id, to keep it apart
    /// from a twin that serves another container (`Registry.register` decides).
    public var namedApart: Bool

    /// Creates a registration.
    public init(
        key: RegistrationKey,
        container: SocketEndpoint,
        owner: Owner,
        metadata: ContainerMetadata = .unknown,
        mode: ProxyMode,
        namedApart: Bool = false
    ) {
        self.key = key
        self.container = container
        self.owner = owner
        self.metadata = metadata
        self.mode = mode
        self.namedApart = namedApart
    }

    /// Names its cluster, its stats and its access log lines (`ServiceNaming`).
    public var serviceName: String {
        namedApart ? ServiceNaming.separateServiceName(for: self) : contractServiceName
    }

    /// The name the contract gives it, from its key and labels: its twin's too.
    public var contractServiceName: String {
        ServiceNaming.serviceName(for: key, metadata: metadata)
    }

    /// Whether `other` carries its port to the same port of the same container: the
    /// same container port, of the same Docker container when both ids are known (its
    /// IPv4 and IPv6 addresses are one container), else of the same container address.
    /// Only then may the two share a cluster.
    public func servesTheSameContainer(as other: Registration) -> Bool {
        guard container.port == other.container.port else { return false }
        if let id = metadata.containerID, let otherID = other.metadata.containerID { return id == otherID }
        return container == other.container
    }
}
