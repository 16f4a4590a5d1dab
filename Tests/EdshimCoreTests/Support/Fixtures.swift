@testable import EdshimCore
import Testing

/// Builders for model values from readable text, so that tables stay short.
/// They throw through `#require` instead of force-unwrapping, so a typo in a
/// fixture fails the test that uses it with a clear message.
enum Fixture {
    static func address(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> IPAddress {
        try #require(IPAddress(text), "fixture address \(text) must parse", sourceLocation: sourceLocation)
    }

    static func endpoint(_ ip: String, _ port: UInt16, sourceLocation: SourceLocation = #_sourceLocation) throws -> SocketEndpoint {
        SocketEndpoint(ip: try address(ip, sourceLocation: sourceLocation), port: port)
    }

    static func key(_ proto: TransportProtocol, _ ip: String, _ port: UInt16, sourceLocation: SourceLocation = #_sourceLocation) throws -> RegistrationKey {
        RegistrationKey(proto: proto, host: try endpoint(ip, port, sourceLocation: sourceLocation))
    }

    static func key(_ ip: String, _ port: UInt16, sourceLocation: SourceLocation = #_sourceLocation) throws -> RegistrationKey {
        try key(.tcp, ip, port, sourceLocation: sourceLocation)
    }

    static let owner = Owner(pid: 4242, startTime: 987_654)

    static func registration(
        _ proto: TransportProtocol = .tcp,
        host: String,
        _ hostPort: UInt16,
        container: String,
        _ containerPort: UInt16,
        service: String? = nil,
        environment: String? = nil,
        mode: ProxyMode = .http,
        owner: Owner = Fixture.owner,
        containerID: String? = nil,
        containerName: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Registration {
        Registration(
            key: try key(proto, host, hostPort, sourceLocation: sourceLocation),
            container: try endpoint(container, containerPort, sourceLocation: sourceLocation),
            owner: owner,
            metadata: ContainerMetadata(service: service, environment: environment, containerID: containerID, containerName: containerName),
            mode: mode
        )
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
