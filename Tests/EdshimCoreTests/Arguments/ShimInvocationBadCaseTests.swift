@testable import EdshimCore
import Testing

/// Command lines that must be refused, each with a reason that names the problem.
@Suite("ShimInvocation.parse refuses bad command lines")
struct ShimInvocationBadCaseTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var arguments: [String]
        /// A substring the error's description must contain.
        var reason: String
        var testDescription: String { arguments.isEmpty ? "(no arguments)" : arguments.joined(separator: " ") }
    }

    static let host = ["-host-ip", "0.0.0.0", "-host-port", "8080"]
    static let container = ["-container-ip", "172.17.0.2", "-container-port", "80"]

    static let cases: [Case] = [
        // Unknown flags, Go's wording.
        Case(arguments: host + container + ["-bogus"], reason: "flag provided but not defined: -bogus"),
        Case(arguments: ["--bogus=1"] + host + container, reason: "flag provided but not defined: -bogus"),
        Case(arguments: ["-PROTO", "tcp"] + host + container, reason: "flag provided but not defined: -PROTO"),
        Case(arguments: host + container + ["-no-such-flag", "-h"], reason: "flag provided but not defined: -no-such-flag"),
        // Missing values.
        Case(arguments: host + container + ["-proto"], reason: "flag needs an argument: -proto"),
        Case(arguments: host + ["-container-ip", "172.17.0.2", "-container-port"], reason: "flag needs an argument: -container-port"),
        // Bad ports.
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "0"] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "65536"] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "abc"] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "-1"] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", ""] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "80.5"] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "80_"] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "_80"] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "8__0"] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "0_"] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "089"] + container, reason: "-host-port"),
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "99999999999999999999999"] + container, reason: "-host-port"),
        Case(arguments: host + ["-container-ip", "172.17.0.2", "-container-port", "0"], reason: "-container-port"),
        // Every occurrence is parsed, as Go's flag.Int does, not only the last.
        Case(arguments: ["-host-ip", "0.0.0.0", "-host-port", "abc", "-host-port", "8080"] + container, reason: "invalid value \"abc\" for -host-port"),
        Case(arguments: host + ["-container-ip", "172.17.0.2", "-container-port=70000"], reason: "-container-port"),
        // Bad addresses; host names are not addresses.
        Case(arguments: ["-host-ip", "256.0.0.1", "-host-port", "8080"] + container, reason: "-host-ip"),
        Case(arguments: ["-host-ip", "1.2.3", "-host-port", "8080"] + container, reason: "-host-ip"),
        Case(arguments: ["-host-ip", "localhost", "-host-port", "8080"] + container, reason: "-host-ip"),
        Case(arguments: ["-host-ip", "[::]", "-host-port", "8080"] + container, reason: "-host-ip"),
        Case(arguments: ["-host-ip", "fe80::1%eth0", "-host-port", "8080"] + container, reason: "-host-ip"),
        Case(arguments: ["-host-ip", "10.0.0.0/8", "-host-port", "8080"] + container, reason: "-host-ip"),
        Case(arguments: ["-host-ip=", "-host-port", "8080"] + container, reason: "-host-ip"),
        Case(arguments: host + ["-container-ip", "web.internal", "-container-port", "80"], reason: "-container-ip"),
        Case(arguments: host + ["-container-ip", ":::", "-container-port", "80"], reason: "-container-ip"),
        // Bad protocols.
        Case(arguments: ["-proto", "icmp"] + host + container, reason: "-proto"),
        Case(arguments: ["-proto", "TCP"] + host + container, reason: "-proto"),
        Case(arguments: ["-proto="] + host + container, reason: "-proto"),
        // Missing required flags.
        Case(arguments: [], reason: "missing -host-ip"),
        Case(arguments: ["-host-port", "8080"] + container, reason: "missing -host-ip"),
        Case(arguments: ["-host-ip", "0.0.0.0"] + container, reason: "missing -host-port"),
        Case(arguments: host + ["-container-port", "80"], reason: "missing -container-ip"),
        Case(arguments: host + ["-container-ip", "172.17.0.2"], reason: "missing -container-port"),
        // Positional arguments, including after `--` and a bool given a separate value.
        Case(arguments: host + container + ["extra"], reason: "unexpected argument \"extra\""),
        Case(arguments: ["extra"] + host + container, reason: "unexpected argument \"extra\""),
        Case(arguments: host + container + ["--", "-proto", "udp"], reason: "unexpected argument \"-proto\""),
        Case(arguments: host + container + ["-"], reason: "unexpected argument \"-\""),
        Case(arguments: host + container + ["-use-listen-fd", "false"], reason: "unexpected argument \"false\""),
        // Bad syntax.
        Case(arguments: host + container + ["---x"], reason: "bad flag syntax: ---x"),
        Case(arguments: host + container + ["-=x"], reason: "bad flag syntax: -=x"),
        Case(arguments: host + container + ["--=x"], reason: "bad flag syntax: --=x"),
        // Bad bool values.
        Case(arguments: host + container + ["-use-listen-fd=yes"], reason: "invalid boolean value \"yes\" for -use-listen-fd"),
        Case(arguments: host + container + ["-use-listen-fd="], reason: "invalid boolean value \"\" for -use-listen-fd"),
        Case(arguments: ["-v=maybe"], reason: "invalid boolean value \"maybe\" for -v"),
    ]

    @Test(arguments: cases)
    func refuses(_ testCase: Case) throws {
        let error = try #require(throws: ArgumentError.self) {
            try ShimInvocation.parse(testCase.arguments)
        }
        #expect(error.description.contains(testCase.reason), "\"\(error.description)\" should mention \(testCase.reason)")
        #expect(!error.description.contains("\n"), "reasons go to dockerd on one line")
    }
}
