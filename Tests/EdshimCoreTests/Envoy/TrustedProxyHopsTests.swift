@testable import EdshimCore
import Foundation
import Testing

/// `edshim server --trusted-proxy-hops`: what HTTP listeners believe of a proxy in front.
@Suite("Trusted proxy hops")
struct TrustedProxyHopsTests {
    static func managerJSON(hops: UInt32) throws -> [String: Any] {
        let registration = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "web", mode: .http)
        let configuration = EnvoyConfiguration(registrations: [registration], telemetry: Telemetry(trustedProxyHops: hops))
        let document = try JSONSerialization.jsonObject(with: Data(try DiscoveryDocument.listeners(configuration.listeners))) as? [String: Any]
        let listener = try #require((document?["resources"] as? [[String: Any]])?.first)
        let chain = try #require((listener["filter_chains"] as? [[String: Any]])?.first)
        let filter = try #require((chain["filters"] as? [[String: Any]])?.first)
        return try #require(filter["typed_config"] as? [String: Any])
    }

    @Test("none by default: the field is left out, so Envoy is the edge (and the bytes stay those of earlier releases)")
    func noneByDefault() throws {
        #expect(try Self.managerJSON(hops: 0)["xff_num_trusted_hops"] == nil)
    }

    @Test("one proxy in front: xff_num_trusted_hops 1, beside use_remote_address")
    func one() throws {
        let manager = try Self.managerJSON(hops: 1)
        #expect(manager["xff_num_trusted_hops"] as? Int == 1)
        #expect(manager["use_remote_address"] as? Bool == true)
    }
}
