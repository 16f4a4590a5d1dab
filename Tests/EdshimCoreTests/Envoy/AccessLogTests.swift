@testable import EdshimCore
import Foundation
import Testing

/// `--access-log` and what it puts into every listener.
@Suite("Access log")
struct AccessLogTests {
    @Test(arguments: [
        ("stdout", AccessLogDestination.stdout), ("stderr", .stderr), ("off", .off),
        ("/var/log/envoy/access.log", .file("/var/log/envoy/access.log")), ("/tmp/a b.log", .file("/tmp/a b.log")),
    ])
    func parses(_ text: String, _ expected: AccessLogDestination) {
        #expect(AccessLogDestination(parsing: text) == expected)
        #expect(AccessLogDestination(parsing: text)?.description == text, "the flag's spelling round-trips")
    }

    @Test("anything else is refused", arguments: ["", "access.log", "logs/access.log", "/", "STDOUT", "file:/x", "/x\ny", "/x\u{0}"])
    func refuses(_ text: String) {
        #expect(AccessLogDestination(parsing: text) == nil)
    }

    @Test("the server's default is Envoy's stdout")
    func standard() {
        #expect(Telemetry.standard.accessLog == .stdout)
        #expect(AccessLogDestination.standard == .stdout)
    }

    @Test("every listener of a mode logs the same keys; HTTP adds the request's; the service is named in each line", arguments: [ProxyMode.http, .tcp])
    func fields(_ mode: ProxyMode) throws {
        let registration = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", environment: "prod", mode: mode)
        let fields = try Self.fields(of: ListenerBuilder.listener(for: registration, telemetry: .standard))
        #expect(fields["service"] == "nginx-prod-8080")
        let common: Set = ["start_time", "service", "client", "peer", "upstream", "upstream_failure", "bytes_received", "bytes_sent", "duration_ms", "flags"]
        let http: Set = ["method", "path", "protocol", "authority", "user_agent", "request_id", "status", "details"]
        #expect(Set(fields.keys) == (mode == .http ? common.union(http) : common))
    }

    @Test("off leaves the access log out of the listener entirely")
    func off() throws {
        let registration = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", mode: .http)
        let listener = ListenerBuilder.listener(for: registration, telemetry: Telemetry(accessLog: .off))
        let document = String(decoding: try DiscoveryDocument.listeners([listener]), as: UTF8.self)
        #expect(!document.contains("access_log"))
    }

    /// The `json_format` of the listener's one access log, read back from its JSON.
    static func fields(of listener: EnvoyListener) throws -> [String: String] {
        let json = try JSONSerialization.jsonObject(with: Data(try DiscoveryDocument.listeners([listener]))) as? [String: Any]
        let resource = try #require((json?["resources"] as? [[String: Any]])?.first)
        let filter = try #require(((resource["filter_chains"] as? [[String: Any]])?.first?["filters"] as? [[String: Any]])?.first)
        let logs = try #require((filter["typed_config"] as? [String: Any])?["access_log"] as? [[String: Any]])
        #expect(logs.count == 1)
        #expect(logs.first?["name"] as? String == "envoy.access_loggers.stdout")
        let format = (logs.first?["typed_config"] as? [String: Any])?["log_format"] as? [String: Any]
        return try #require(format?["json_format"] as? [String: String])
    }
}
