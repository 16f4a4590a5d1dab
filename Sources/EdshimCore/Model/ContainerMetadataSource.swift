/// Where the server learns about the container behind a container address.
public protocol ContainerMetadataSource: Sendable {
    /// What is known about the container serving at `container`; `.unknown` when
    /// nothing is. Never throws and never takes long: readiness waits on it.
    func metadata(for container: SocketEndpoint) async -> ContainerMetadata
}

/// A source that knows nothing: every service is `unknown`.
public struct NoContainerMetadata: ContainerMetadataSource {
    /// Creates the source.
    public init() {}

    /// Always `.unknown`.
    public func metadata(for container: SocketEndpoint) async -> ContainerMetadata { .unknown }
}
