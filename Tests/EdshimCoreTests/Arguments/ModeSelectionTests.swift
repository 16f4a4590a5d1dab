@testable import EdshimCore
import Testing

/// Which argv starts shim mode, and what the shim then parses.
@Suite("ModeSelection.shimArguments")
struct ModeSelectionTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var argv: [String]
        var shimArguments: [String]?
        var testDescription: String { argv.isEmpty ? "(empty argv)" : argv.joined(separator: " ") }
    }

    static let flags = ["-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip", "172.17.0.2", "-container-port", "80"]

    static let cases: [Case] = [
        // Started under a docker-proxy name: everything after argv[0] is the shim's.
        Case(argv: ["docker-proxy"] + flags, shimArguments: flags),
        Case(argv: ["/usr/bin/docker-proxy"] + flags, shimArguments: flags),
        Case(argv: ["/usr/libexec/docker/docker-proxy"] + flags + ["-use-listen-fd"], shimArguments: flags + ["-use-listen-fd"]),
        Case(argv: ["./docker-proxy", "-v"], shimArguments: ["-v"]),
        Case(argv: ["envoy-docker-shim"] + flags, shimArguments: flags),
        Case(argv: ["/usr/local/bin/envoy-docker-shim", "server"], shimArguments: ["server"]),
        Case(argv: ["docker-proxy"], shimArguments: []),
        Case(argv: ["docker-proxy", "--help"], shimArguments: ["--help"]),
        // edshim as dockerd's --userland-proxy-path: the first argument is a flag.
        Case(argv: ["edshim"] + flags, shimArguments: flags),
        Case(argv: ["/usr/local/bin/edshim"] + flags, shimArguments: flags),
        Case(argv: ["/usr/local/bin/edshim", "-host-ip", "::"], shimArguments: ["-host-ip", "::"]),
        Case(argv: ["edshim", "-v"], shimArguments: ["-v"]),
        // edshim shim …
        Case(argv: ["edshim", "shim"] + flags, shimArguments: flags),
        Case(argv: ["/usr/local/bin/edshim", "shim", "-h"], shimArguments: ["-h"]),
        Case(argv: ["edshim", "shim"], shimArguments: []),
        // Every other mode, and edshim's own help.
        Case(argv: ["edshim", "server"], shimArguments: nil),
        Case(argv: ["/usr/local/bin/edshim", "server", "--socket", "/tmp/s"], shimArguments: nil),
        Case(argv: ["edshim", "bootstrap", "--xds-dir", "/x"], shimArguments: nil),
        Case(argv: ["edshim", "status"], shimArguments: nil),
        Case(argv: ["edshim", "--help"], shimArguments: nil),
        Case(argv: ["edshim", "-help"], shimArguments: nil),
        Case(argv: ["edshim", "-h"], shimArguments: nil),
        Case(argv: ["edshim"], shimArguments: nil),
        Case(argv: ["/usr/local/bin/edshim"], shimArguments: nil),
        Case(argv: [], shimArguments: nil),
        // A name that merely contains "docker-proxy" is not one.
        Case(argv: ["/opt/docker-proxy-old/edshim", "server"], shimArguments: nil),
        Case(argv: ["docker-proxy.bak", "server"], shimArguments: nil),
    ]

    @Test(arguments: cases)
    func selects(_ testCase: Case) {
        #expect(ModeSelection.shimArguments(testCase.argv) == testCase.shimArguments)
    }
}
