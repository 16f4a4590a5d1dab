@testable import EdshimCore
import Testing

/// Command lines dockerd (or a person) may pass that must parse, with Go `flag` rules.
@Suite("ShimInvocation.parse accepts docker-proxy command lines")
struct ShimInvocationGoodCaseTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var arguments: [String]
        var expected: Expected
        var testDescription: String { arguments.joined(separator: " ") }
    }

    /// The expectation in plain text, turned into a `ShimInvocation` inside the test.
    enum Expected: Sendable {
        case run(proto: TransportProtocol, host: String, hostPort: UInt16, container: String, containerPort: UInt16, useListenFD: Bool)
        case version
        case help
    }

    static let standard = ["-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip", "172.17.0.2", "-container-port", "80"]
    static let standardRun = Expected.run(proto: .tcp, host: "0.0.0.0", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: false)

    static let cases: [Case] = [
        // The three spellings Go's flag package accepts.
        Case(arguments: ["-proto", "tcp"] + standard, expected: standardRun),
        Case(arguments: ["-proto=tcp", "-host-ip=0.0.0.0", "-host-port=8080", "-container-ip=172.17.0.2", "-container-port=80"], expected: standardRun),
        Case(arguments: ["--proto", "tcp", "--host-ip", "0.0.0.0", "--host-port", "8080", "--container-ip", "172.17.0.2", "--container-port", "80"], expected: standardRun),
        Case(arguments: ["--proto=tcp", "--host-ip=0.0.0.0", "--host-port=8080", "--container-ip=172.17.0.2", "--container-port=80"], expected: standardRun),
        // Order does not matter.
        Case(arguments: ["-container-port", "80", "-container-ip", "172.17.0.2", "-host-port", "8080", "-host-ip", "0.0.0.0", "-proto", "tcp"], expected: standardRun),
        // -proto defaults to tcp.
        Case(arguments: standard, expected: standardRun),
        Case(arguments: ["-proto", "udp"] + standard, expected: .run(proto: .udp, host: "0.0.0.0", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: false)),
        // sctp parses; the shim refuses it later with its own reason.
        Case(arguments: ["-proto", "sctp"] + standard, expected: .run(proto: .sctp, host: "0.0.0.0", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: false)),
        // -use-listen-fd is a bool: bare, =true, =false, Go's other spellings.
        Case(arguments: standard + ["-use-listen-fd"], expected: .run(proto: .tcp, host: "0.0.0.0", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: true)),
        Case(arguments: ["-use-listen-fd"] + standard, expected: .run(proto: .tcp, host: "0.0.0.0", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: true)),
        Case(arguments: standard + ["--use-listen-fd"], expected: .run(proto: .tcp, host: "0.0.0.0", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: true)),
        Case(arguments: standard + ["-use-listen-fd=true"], expected: .run(proto: .tcp, host: "0.0.0.0", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: true)),
        Case(arguments: standard + ["-use-listen-fd=1"], expected: .run(proto: .tcp, host: "0.0.0.0", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: true)),
        Case(arguments: standard + ["-use-listen-fd=false"], expected: standardRun),
        Case(arguments: standard + ["-use-listen-fd=0"], expected: standardRun),
        Case(arguments: standard + ["-use-listen-fd=F"], expected: standardRun),
        // Repeated flags: the last one wins.
        Case(arguments: standard + ["-use-listen-fd", "-use-listen-fd=false"], expected: standardRun),
        Case(arguments: standard + ["-use-listen-fd=false", "-use-listen-fd"], expected: .run(proto: .tcp, host: "0.0.0.0", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: true)),
        Case(arguments: standard + ["-host-port", "9090"], expected: .run(proto: .tcp, host: "0.0.0.0", hostPort: 9090, container: "172.17.0.2", containerPort: 80, useListenFD: false)),
        Case(arguments: ["-proto", "udp"] + standard + ["-proto", "tcp"], expected: standardRun),
        // IPv6, as dockerd passes it for the `::` twin, and canonicalisation.
        Case(arguments: ["-proto", "tcp", "-host-ip", "::", "-host-port", "8080", "-container-ip", "172.17.0.2", "-container-port", "80", "-use-listen-fd"],
             expected: .run(proto: .tcp, host: "::", hostPort: 8080, container: "172.17.0.2", containerPort: 80, useListenFD: true)),
        Case(arguments: ["-host-ip", "0:0::0", "-host-port", "443", "-container-ip", "FD00:0:0::2", "-container-port", "8443"],
             expected: .run(proto: .tcp, host: "::", hostPort: 443, container: "fd00::2", containerPort: 8443, useListenFD: false)),
        Case(arguments: ["-host-ip", "0:0:0:0:0:0:0:1", "-host-port", "9901", "-container-ip", "2001:db8::10", "-container-port", "9901"],
             expected: .run(proto: .tcp, host: "::1", hostPort: 9901, container: "2001:db8::10", containerPort: 9901, useListenFD: false)),
        // Port bounds.
        Case(arguments: ["-host-ip", "127.0.0.1", "-host-port", "1", "-container-ip", "10.0.0.2", "-container-port", "65535"],
             expected: .run(proto: .tcp, host: "127.0.0.1", hostPort: 1, container: "10.0.0.2", containerPort: 65535, useListenFD: false)),
        // Numbers as Go's strconv.ParseInt(s, 0, 64) reads them: hex, octal, binary, `_` between digits.
        Case(arguments: ["-host-ip", "127.0.0.1", "-host-port", "0x1F90", "-container-ip", "10.0.0.2", "-container-port", "0o120"],
             expected: .run(proto: .tcp, host: "127.0.0.1", hostPort: 8080, container: "10.0.0.2", containerPort: 80, useListenFD: false)),
        Case(arguments: ["-host-ip", "127.0.0.1", "-host-port", "8_080", "-container-ip", "10.0.0.2", "-container-port", "0_70"],
             expected: .run(proto: .tcp, host: "127.0.0.1", hostPort: 8080, container: "10.0.0.2", containerPort: 56, useListenFD: false)),
        Case(arguments: ["-host-ip", "127.0.0.1", "-host-port", "0b1_0000", "-container-ip", "10.0.0.2", "-container-port", "0120"],
             expected: .run(proto: .tcp, host: "127.0.0.1", hostPort: 16, container: "10.0.0.2", containerPort: 80, useListenFD: false)),
        // `--` ends the flags.
        Case(arguments: standard + ["--"], expected: standardRun),
        // Version and help.
        Case(arguments: ["-v"], expected: .version),
        Case(arguments: ["-version"], expected: .version),
        Case(arguments: ["--version"], expected: .version),
        Case(arguments: ["-v=true"], expected: .version),
        Case(arguments: standard + ["-v"], expected: .version),
        Case(arguments: standard + ["-v=false"], expected: standardRun),
        Case(arguments: ["-h"], expected: .help),
        Case(arguments: ["-help"], expected: .help),
        Case(arguments: ["--help"], expected: .help),
        Case(arguments: standard + ["-h"], expected: .help),
        // Go's flag package stops at -h/-help and returns ErrHelp, whatever follows.
        Case(arguments: ["-h", "-no-such-flag"], expected: .help),
    ]

    @Test(arguments: cases)
    func parses(_ testCase: Case) throws {
        let expected: ShimInvocation
        switch testCase.expected {
        case .version: expected = .version
        case .help: expected = .help
        case let .run(proto, host, hostPort, container, containerPort, useListenFD):
            expected = .run(ShimArguments(
                proto: proto,
                host: try Fixture.endpoint(host, hostPort),
                container: try Fixture.endpoint(container, containerPort),
                useListenFD: useListenFD
            ))
        }
        #expect(try ShimInvocation.parse(testCase.arguments) == expected)
    }

    @Test func canonicalisesEquivalentIPv6Spellings() throws {
        let spellings = ["::", "0::0", "0:0::0", "0:0:0:0:0:0:0:0", "::0"]
        let keys = try spellings.map { spelling -> RegistrationKey in
            let invocation = try ShimInvocation.parse(["-host-ip", spelling, "-host-port", "80", "-container-ip", "172.17.0.2", "-container-port", "80"])
            guard case .run(let arguments) = invocation else {
                Issue.record("\(spelling) did not parse to .run")
                return try Fixture.key("1.1.1.1", 1)
            }
            #expect(arguments.host.ip.description == "::")
            return arguments.key
        }
        #expect(Set(keys).count == 1)
    }
}
