/// Where the server learns about the container behind a container address.
public protocol ContainerMetadataSource: Sendable {
    /// What is known about the container serving at `container`. Never throws and
    /// never takes long: readiness waits on it.
    func metadata(for container: SocketEndpoint) async -> MetadataAnswer

    /// Whether the source can be asked now: the server asks again, once it can, about
    /// the registrations it could not ask about.
    func isReachable() async -> Bool
}

/// A source's answer about one container.
public enum MetadataAnswer: Hashable, Sendable {
    /// What the source knows: `.unknown` when no container has the address.
    case known(ContainerMetadata)
    /// The source could not be asked (Docker does not answer: dockerd is down, or
    /// still restoring its containers at boot before it opens its API).
    case unreachable
}

/// A source that knows nothing: every service is `unknown`.
public struct NoContainerMetadata: ContainerMetadataSource {
    /// Creates the source.
    public init() {}

    /// Always `.unknown`: there is nothing to ask again later.
    public func metadata(for container: SocketEndpoint) async -> MetadataAnswer { .known(.unknown) }

    /// Always true.
    public func isReachable() async -> Bool { true }
}
