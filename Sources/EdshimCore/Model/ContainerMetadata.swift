/// What edshim knows about the container behind a registration, read from its
/// Docker labels. Every field is optional: Docker may be unreachable.
public struct ContainerMetadata: Hashable, Sendable {
    /// `edshim.service` or `ServiceName`, as given.
    public var service: String?
    /// `edshim.environment` or `EnvironmentName`, as given.
    public var environment: String?
    /// `edshim.mode` or `ProxyMode`, when it named a known mode.
    public var mode: ProxyMode?
    /// The Docker container id, when known.
    public var containerID: String?
    /// The Docker container name, when known.
    public var containerName: String?

    /// Creates metadata.
    public init(
        service: String? = nil,
        environment: String? = nil,
        mode: ProxyMode? = nil,
        containerID: String? = nil,
        containerName: String? = nil
    ) {
        self.service = service
        self.environment = environment
        self.mode = mode
        self.containerID = containerID
        self.containerName = containerName
    }

    /// Nothing known: every name part takes its default.
    public static let unknown = ContainerMetadata()
}
