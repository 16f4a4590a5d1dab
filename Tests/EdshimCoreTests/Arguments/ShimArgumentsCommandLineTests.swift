@testable import EdshimCore
import Testing

/// `ShimArguments.commandLine` writes what dockerd writes, and parses back unchanged.
@Suite("ShimArguments.commandLine")
struct ShimArgumentsCommandLineTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var proto: TransportProtocol
        var host: String
        var hostPort: UInt16
        var container: String
        var containerPort: UInt16
        var useListenFD: Bool
        var testDescription: String { "\(proto) \(host) \(hostPort) → \(container) \(containerPort) fd:\(useListenFD)" }

        func arguments() throws -> ShimArguments {
            ShimArguments(
                proto: proto,
                host: try Fixture.endpoint(host, hostPort),
                container: try Fixture.endpoint(container, containerPort),
                useListenFD: useListenFD
            )
        }
    }

    static let cases: [Case] = [
        Case(proto: .tcp, host: "0.0.0.0", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: false),
        Case(proto: .tcp, host: "::", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: true),
        Case(proto: .udp, host: "127.0.0.1", hostPort: 53, container: "fd00::53", containerPort: 53, useListenFD: true),
        Case(proto: .sctp, host: "::1", hostPort: 65535, container: "10.0.0.9", containerPort: 1, useListenFD: false),
    ]

    @Test(arguments: cases)
    func roundTripsThroughParse(_ testCase: Case) throws {
        let arguments = try testCase.arguments()
        #expect(try ShimInvocation.parse(arguments.commandLine) == .run(arguments))
    }

    @Test func writesDockerdsSpelling() throws {
        let arguments = try Self.cases[1].arguments()
        #expect(arguments.commandLine == [
            "-proto", "tcp", "-host-ip", "::", "-host-port", "8080",
            "-container-ip", "172.17.0.2", "-container-port", "80", "-use-listen-fd",
        ])
        #expect(try Self.cases[0].arguments().commandLine.contains("-use-listen-fd") == false)
    }

    @Test func keyIsProtoHostAddressAndPort() throws {
        let arguments = try Self.cases[2].arguments()
        #expect(arguments.key == (try Fixture.key(.udp, "127.0.0.1", 53)))
    }
}
