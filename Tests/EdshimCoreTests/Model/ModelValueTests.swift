@testable import EdshimCore
import Testing

/// Small model values: label parsing for modes, protocol order, descriptions.
@Suite("Model values")
struct ModelValueTests {
    @Test(arguments: [
        ("http", ProxyMode.http), ("tcp", .tcp), ("HTTP", .http), (" Tcp \n", .tcp), ("\thttp\r", .http),
    ])
    func modeLabelsParse(_ label: String, _ mode: ProxyMode) {
        #expect(ProxyMode(label: label) == mode)
    }

    @Test(arguments: ["", " ", "grpc", "http2", "h t t p", "tcp/udp"])
    func unknownModeLabelsAreNil(_ label: String) {
        #expect(ProxyMode(label: label) == nil)
    }

    @Test func protocolsOrderTCPFirst() {
        #expect(TransportProtocol.allCases.sorted() == [.tcp, .udp, .sctp])
        #expect(TransportProtocol.tcp < .udp && TransportProtocol.udp < .sctp)
    }

    @Test func descriptions() throws {
        #expect(try Fixture.key("::", 8080).description == "tcp [::]:8080")
        #expect(try Fixture.key(.udp, "0.0.0.0", 53).description == "udp 0.0.0.0:53")
        #expect(Owner(pid: 1234, startTime: 5).description == "pid 1234")
    }

    @Test func noContainerMetadataKnowsNothing() async throws {
        #expect(await NoContainerMetadata().metadata(for: try Fixture.endpoint("172.17.0.2", 80)) == .known(.unknown))
        #expect(await NoContainerMetadata().isReachable(), "nothing to ask again later")
    }
}
